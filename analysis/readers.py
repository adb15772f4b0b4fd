"""Reading a clinic's files: find each table in a folder and read it as text-like columns.

:func:`analysis.schema.load_cohort` calls this module; it does not validate anything
beyond what is needed to read a file faithfully. What it reads:

* **CSV** (``.csv``, ``.tsv``, ``.txt``): UTF-8 with or without a byte-order mark, LF or
  CRLF line ends. The delimiter (comma, semicolon, tab or ``|``) is detected from the
  header line: the one whose fields match the most column names of the table's schema
  (then the one giving the most fields); a delimiter other than the comma is listed as a
  finding. A file with a UTF-16 byte-order mark is decoded (and listed); a file that is
  not UTF-8 is refused with the encoding it looks like (UTF-16 without a byte-order mark,
  latin-1/Windows-1252), because a wrong guess would silently change text. The numeric
  columns of a semicolon-separated file written with decimal commas (``42,5``) are read
  with points and listed, unless some numeric cell of the file holds a point
  (:func:`_decimal_commas`).
* **Parquet** (``.parquet``): flat columns only; a list, struct or map column is refused.
* **Excel** (``.xlsx``, ``.xlsm``, ``.xls``) and **OpenDocument** (``.ods``, LibreOffice)
  workbooks, read with python-calamine: a workbook named
  after a table (its sheet named after the table, else its first sheet), or any workbook
  whose sheets are named after the tables (one sheet per table). A workbook of one table
  with other sheets besides is read from its table's sheet and lists the finding
  ``sheets`` (how many were not read; sheet names are never shown).
* **SPSS** ``.sav``/``.zsav``, **SAS** ``.sas7bdat``/``.xpt`` and **Stata** ``.dta``
  (read with pyreadstat). Value labels are mapped to the schema's codes where every
  labelled value of a column matches one (``1 = "Female"`` -> ``female``; booleans from
  ``Yes``/``No``); other columns keep their stored values.

Every cell is read as it is written, except that text is stripped of surrounding spaces
and a cell equal to one of the *missing values* (:data:`MISSING_VALUES`: ``""``, ``NA``,
``N/A``, ``n/a``, ``NULL``, ``.``; overridable) becomes missing. Entirely blank rows are
skipped; the others keep the spreadsheet line number they had (header = line 1), which
error messages print. Blank rows between the header and the last row of data are listed
as the finding ``blank_rows`` (with their lines); those below the data end the table.
Text of a large CSV file (4 MB or more) and of a Parquet file is held as categorical
columns (each distinct value once), which the validation reads value by value: the same
cells, in a fraction of the memory of Python strings; extra columns are handed on as
object columns, as read.

A file that cannot be read faithfully raises :class:`FileProblem` (collected by
:func:`analysis.schema.load_cohort` into one :class:`~analysis.schema.DataValidationError`
naming every file and its fix): an empty (0-byte) file, a link to nothing, two files for
one table, a non-UTF-8 CSV, a CSV whose delimiter cannot be told, rows with more or fewer
fields than the header (ragged rows), a repeated column name, a nested Parquet column,
or a file the reader rejects.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "EXCEL_FORMATS",
    "FILE_FORMATS",
    "MISSING_VALUES",
    "SOURCE_KINDS",
    "STAT_FORMATS",
    "FileProblem",
    "ReadTable",
    "find_table_files",
    "normalise_name",
    "read_table_file",
]

#: Cell values read as missing (case-sensitive, after stripping surrounding spaces).
MISSING_VALUES: tuple[str, ...] = ("", "NA", "N/A", "n/a", "NULL", ".")

CSV_FORMATS = ("csv", "tsv", "txt")
EXCEL_FORMATS = ("xlsx", "xlsm", "xls", "ods")
STAT_FORMATS = ("sav", "zsav", "sas7bdat", "xpt", "dta")
#: Every file extension a table may have.
FILE_FORMATS = (*CSV_FORMATS, "parquet", *EXCEL_FORMATS, *STAT_FORMATS)

_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

#: CSV files of at least this many bytes are read into categorical columns (see _read_csv).
_CATEGORICAL_BYTES = 1 << 22


class FileProblem(Exception):
    """A table file that cannot be read faithfully.

    Attributes
    ----------
    file : str
        The file name (and sheet), as the user sees it.
    check : str
        Short name of the problem (``empty_file``, ``encoding``, ``delimiter``,
        ``ragged_rows``, ``duplicate_column``, ``nested_column``, ``several_files``,
        ``broken_link``, ``unreadable``).
    problem, fix : str
        What is wrong and what to do, in words a data manager can act on.
    lines : list of int
        Spreadsheet line numbers concerned (header = line 1), when there are some.
    """

    def __init__(self, file, check, problem, fix, lines: Sequence[int] = ()) -> None:
        self.file, self.check, self.problem, self.fix = str(file), check, problem, fix
        self.lines = list(lines)
        super().__init__(f"{self.file}: {problem}. Fix: {fix}.")


#: A reading finding: ``(column, check, value, lines)``: the spreadsheet lines it concerns,
#: none for the whole table.
Finding = tuple[str, str, str, tuple[int, ...]]


@dataclass
class ReadTable:
    """One table as read: the frame, its spreadsheet line numbers and reading findings."""

    frame: pd.DataFrame
    source: str
    lines: np.ndarray
    #: ``(column, check, value, lines)``: the lines concerned (none: the whole table)
    findings: list[Finding] = field(default_factory=list)


def normalise_name(name) -> str:
    """A column or file name compared case- and space-insensitively.

    Examples
    --------
    >>> normalise_name(" Item 1 "), normalise_name("Study-Day"), normalise_name("TOTAL")
    ('item_1', 'study_day', 'total')
    """
    return re.sub(r"[\s\-.]+", "_", str(name).strip().lower()).strip("_")


# --------------------------------------------------------------------------- finding files


def _split_name(path: Path) -> tuple[str, str]:
    name = path.name
    for ext in sorted(FILE_FORMATS, key=len, reverse=True):
        if name.lower().endswith("." + ext):
            return normalise_name(name[: -len(ext) - 1]), ext
    return normalise_name(path.stem), path.suffix.lower().lstrip(".")


def _sheet_names(path: Path) -> list[str]:
    from python_calamine import CalamineWorkbook

    return list(CalamineWorkbook.from_path(str(path)).sheet_names)


#: What :func:`find_table_files` looks for: every format this module reads (``"files"``,
#: the pandas path), or Parquet only, as a file or a folder of Parquet files (``"parquet"``,
#: the lazy engines of :mod:`analysis._engine_validation`).
SOURCE_KINDS = ("files", "parquet")


def find_table_files(
    folder: str | Path, tables: Sequence[str], *, kind: Literal["files", "parquet"] = "files"
) -> tuple[dict[str, tuple[Path, str | None]], list[FileProblem]]:
    """Where each table is in ``folder``: ``{table: (path, sheet or None)}`` and problems.

    Parameters
    ----------
    folder : str or Path
        The cohort folder.
    tables : sequence of str
        The table names looked for.
    kind : {"files", "parquet"}
        ``"files"`` (default): a table is a file named after it (any case; spaces or
        ``-`` for ``_``) with one of :data:`FILE_FORMATS`, or a sheet named after it in
        a workbook. ``"parquet"`` (the engines that read Parquet lazily): a file
        ``<table>.parquet`` or a folder ``<table>/`` (or ``<table>.parquet/``, as Spark
        writes it) holding Parquet files, a table written in chunks; the sheet is
        always None.

    Returns
    -------
    dict, list of FileProblem
        The source of each table found, and the problems: more than one source for a
        table (``several_files``), or a name that links to no file (``broken_link``).
        Hidden files and Excel lock files (``~$...``) are ignored, as is any other file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name in ("Patients.csv", "assessments.parquet", "notes.txt"):
    ...         _ = (Path(folder) / name).write_text("x")
    ...     found, problems = find_table_files(folder, ["patients", "assessments"])
    ...     parquet, _ = find_table_files(folder, ["patients", "assessments"], kind="parquet")
    >>> sorted((t, p.name) for t, (p, _) in found.items()), problems
    ([('assessments', 'assessments.parquet'), ('patients', 'Patients.csv')], [])
    >>> sorted(parquet)
    ['assessments']
    """
    if kind not in SOURCE_KINDS:
        raise ValueError(f"`kind` must be one of {list(SOURCE_KINDS)}, not {kind!r}.")
    folder = Path(folder)
    formats = FILE_FORMATS if kind == "files" else ("parquet",)
    sources: dict[str, list[tuple[Path, str | None]]] = {t: [] for t in tables}
    problems: list[FileProblem] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "~$")):
            continue
        if kind == "parquet" and entry.is_dir():  # `patients/` or Spark's `patients.parquet/`
            stem = normalise_name(entry.name.removesuffix(".parquet").removesuffix(".PARQUET"))
            if stem in sources and any(entry.glob("*.parquet")):
                sources[stem].append((entry, None))
            continue
        stem, ext = _split_name(entry)
        if ext not in formats:
            continue
        if entry.is_symlink() and not entry.exists():
            if stem in sources or ext in EXCEL_FORMATS:
                problems.append(
                    FileProblem(
                        entry.name,
                        "broken_link",
                        "the file is a link to a file that does not exist",
                        "copy the real file into the folder (or fix the link)",
                    )
                )
            continue
        if not entry.is_file():
            continue
        if stem in sources:
            sources[stem].append((entry, None))
        elif ext in EXCEL_FORMATS:
            try:
                sheets = _sheet_names(entry)
            except Exception:  # not a workbook of tables: ignored like any other file
                continue
            for sheet in sheets:
                if normalise_name(sheet) in sources:
                    sources[normalise_name(sheet)].append((entry, sheet))
    found = {}
    noun, fix = {
        "files": ("files", "keep one file per table (delete or rename the others)"),
        "parquet": ("sources", "keep one file or folder of Parquet files per table"),
    }[kind]
    for table, candidates in sources.items():
        if len(candidates) > 1:
            names = [_source_name(p, s) for p, s in candidates]
            problems.append(
                FileProblem(
                    " and ".join(names),
                    "several_files",
                    f"table `{table}` is in {len(names)} {noun} ({', '.join(names)})",
                    fix,
                )
            )
        elif candidates:
            found[table] = candidates[0]
    return found, problems


def _source_name(path: Path, sheet: str | None) -> str:
    return path.name if sheet is None else f"{path.name} [sheet {sheet}]"


# --------------------------------------------------------------------------- reading


def read_table_file(
    path,
    table: str,
    known_columns: Iterable[str],
    *,
    sheet=None,
    missing_values=None,
    numeric_columns: Iterable[str] = (),
) -> ReadTable:
    """Read one table file (see the module docstring); raises :class:`FileProblem`.

    ``numeric_columns`` (of ``known_columns``) may be written with a decimal comma in a
    semicolon-separated file (see :func:`_decimal_commas`)."""
    path = Path(path)
    missing = set(MISSING_VALUES if missing_values is None else missing_values)
    known = {normalise_name(c) for c in known_columns}
    numeric = {normalise_name(c): str(c) for c in numeric_columns}
    name = _source_name(path, sheet)
    _, ext = _split_name(path)
    if path.stat().st_size == 0:
        raise FileProblem(
            name,
            "empty_file",
            "the file is empty (0 bytes)",
            "export the table again; a table with no rows still needs its header line "
            "(or remove the file of an optional table that was not collected)",
        )
    try:
        if ext in CSV_FORMATS:
            header, rows, lines, findings = _read_csv(path, name, known, numeric, missing)
        elif ext == "parquet":
            return _read_parquet(path, name, missing, known)
        elif ext in EXCEL_FORMATS:
            header, rows, lines, findings = _read_excel(path, name, sheet)
        else:
            return _read_stat(path, name, ext, table, missing)
    except FileProblem:
        raise
    except Exception as exc:  # the reader itself failed: a damaged or mislabelled file
        raise FileProblem(
            name,
            "unreadable",
            f"the file could not be read as {ext.upper()} ({type(exc).__name__})",
            f"check that it is a {ext.upper()} file (open it in the program that wrote it and "
            "save it again), or send the table as CSV UTF-8",
        ) from exc
    _check_header(header, name)
    if isinstance(rows, pd.DataFrame):
        frame = rows.set_axis(header, axis=1)
    else:
        frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame = _missing_to_na(frame, missing)
    for column in frame.columns:  # extra columns: numbers as numbers, as pandas reads them
        if normalise_name(column) not in known:
            frame[column] = _infer(_as_objects(frame[column]))
    return ReadTable(frame, name, np.asarray(lines, dtype=np.int64), findings)


def _infer(values: pd.Series) -> pd.Series:
    """A text column as numbers when every value is one (else unchanged)."""
    present = values.dropna()
    if present.empty or not all(isinstance(v, str | int | float) for v in present):
        return values
    try:
        numbers = pd.to_numeric(values, errors="raise")
    except (ValueError, TypeError):
        return values
    return numbers


def _check_header(header: list, name: str) -> None:
    normal = [normalise_name(h) for h in header]
    seen, dups = set(), []
    for original, key in zip(header, normal, strict=True):
        if key in seen and original not in dups:
            dups.append(str(original))
        seen.add(key)
    if dups:
        raise FileProblem(
            name,
            "duplicate_column",
            "the header names a column more than once (compared ignoring case and spaces): "
            + ", ".join(f"`{d}`" for d in dups),
            "keep one column of each name (delete or rename the copy)",
        )


def _missing_to_na(frame: pd.DataFrame, missing: set[str]) -> pd.DataFrame:
    """Text stripped, missing values to None, dates as ISO text; on the distinct values.

    An object column stays an object column; a categorical column (as the CSV and Parquet
    readers read text) stays categorical, with the cleaned values as its categories.
    """
    out: dict[Any, Any] = {}
    for column in frame.columns:
        values = frame[column]
        categorical = isinstance(values.dtype, pd.CategoricalDtype)
        if categorical:  # the categories are the distinct values; small integer codes
            codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
        else:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
        cleaned = []
        for v in uniques:
            if isinstance(v, str):
                v = v.strip()
                cleaned.append(None if v in missing else v)
            elif isinstance(v, _dt.datetime | _dt.date | pd.Timestamp):
                cleaned.append(v.isoformat())  # a calendar date stays visible to the guard
            else:
                cleaned.append(v)
        table = np.empty(len(cleaned) + 1, dtype=object)  # last slot: missing (code -1)
        table[: len(cleaned)] = cleaned
        if categorical:
            # values equal once cleaned (" a" and "a") become one category
            kept, categories = pd.factorize(table, use_na_sentinel=True)
            new_codes: Any = kept.astype(codes.dtype)[codes]  # pandas-stubs: a list only
            out[column] = pd.Categorical.from_codes(
                new_codes, categories=pd.Index(categories, dtype=object)
            ).remove_unused_categories()
        else:
            out[column] = table[codes]
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def _as_objects(values: pd.Series) -> pd.Series:
    """A categorical column as the object column it stands for (None where missing)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values
    categories = values.cat.categories
    table = np.empty(len(categories) + 1, dtype=object)
    table[: len(categories)] = categories.to_numpy(dtype=object)
    return pd.Series(table[values.cat.codes.to_numpy()], index=values.index, name=values.name)


def _decode(data: bytes, name: str) -> tuple[str, list[Finding]]:
    findings: list[Finding] = []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        findings.append(("(file)", "encoding: read as UTF-16 (save as UTF-8 next time)", "", ()))
        return data.decode("utf-16"), findings
    if b"\x00" in data[:4096]:
        raise FileProblem(
            name,
            "encoding",
            "the file looks UTF-16 encoded (it holds NUL bytes), not UTF-8",
            'save it as UTF-8 (in Excel: File > Save As > "CSV UTF-8 (Comma delimited)")',
        )
    try:
        return data.decode("utf-8-sig"), findings
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileProblem(
            name,
            "encoding",
            f"the file is not UTF-8: it looks latin-1 (Windows-1252) encoded (first "
            f"non-UTF-8 character on line {line})",
            'save it as UTF-8 (in Excel: File > Save As > "CSV UTF-8 (Comma delimited)")',
            [line],
        ) from None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _delimiter(text: str, name: str, known: set[str]) -> tuple[str, list[Finding]]:
    header = _first_line(text)
    scores = {}
    for delimiter in _DELIMITERS:
        fields = next(csv.reader([header], delimiter=delimiter), [])
        matched = sum(normalise_name(f) in known for f in fields)
        scores[delimiter] = (matched, len(fields))
    best = max(scores, key=lambda d: scores[d])
    matched, n_fields = scores[best]
    if matched == 0:  # no known column name whatever the delimiter: it cannot be told
        likely = max(_DELIMITERS, key=lambda d: (header.count(d), d == ","))
        looks = (
            f"the file looks {_DELIMITERS[likely]}-separated, but " if header.count(likely) else ""
        )
        raise FileProblem(
            name,
            "delimiter",
            f"the delimiter cannot be told: {looks}the header line names none of the "
            "table's columns with any delimiter (comma, semicolon, tab, |)",
            "write the header row with the column names of data_schema/README.md (e.g. "
            "patient_id) and separate the values with commas",
        )
    findings: list[Finding] = []
    if best != ",":
        findings.append(("(file)", f"delimiter: read as {_DELIMITERS[best]}-separated", "", ()))
    return best, findings


def _line_chunks(text: str, size: int = 1 << 20):
    """``text`` in pieces of about ``size`` characters, each but the last ending a line.

    Split one piece at a time, the lines of a 100 MB file are never all held as strings
    at once. A piece is cut at a line break (``\\n`` or ``\\r\\n``), which it leaves
    out, so that the lines of the pieces are the lines of the text.
    """
    start = 0
    while len(text) - start > size:
        cut = text.rfind("\n", start, start + size)
        if cut < 0:
            cut = text.find("\n", start + size)
            if cut < 0:
                break
        yield text[start : cut - 1 if cut > start and text[cut - 1] == "\r" else cut]
        start = cut + 1
    yield text[start:]


def _records(text: str, delimiter: str):
    """``(line number, fields, blank)`` of each record of a CSV text.

    Without any quote character a record is a line, split in C (fast); otherwise the
    :mod:`csv` module reads the records (quoted delimiters and line breaks).
    """
    if '"' not in text:
        strip = " \t\f\v" + delimiter
        number = 0
        for chunk in _line_chunks(text):
            for line in re.split("\r\n|\r|\n", chunk):
                number += 1
                yield number, line.split(delimiter), not line.strip(strip)
        return
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for number, record in enumerate(records, start=1):
        yield number, record, not any(cell.strip() for cell in record)


def _read_csv(
    path: Path,
    name: str,
    known: set[str],
    numeric: Mapping[str, str] | None = None,
    missing: Collection[str] = (),
):
    """Header, rows (a frame of text), spreadsheet line numbers and reading findings.

    One streaming pass with :mod:`csv` finds blank lines and rows whose number of fields
    differs from the header (nothing is stored but line numbers); pandas' C parser then
    reads the cells, with the same quoting rules.
    """
    data = path.read_bytes()
    text, findings = _decode(data, name)
    if findings:  # decoded from UTF-16: pandas reads the UTF-8 encoding of the same text
        data = text.encode("utf-8")
    delimiter, more = _delimiter(text, name, known)
    findings += more
    ragged: dict[int, list[int]]
    header, lines, ragged, widest = None, [], {}, 0
    blanks: list[int] = []  # blank lines after the header
    for number, record, blank in _records(text, delimiter):
        widest = max(widest, len(record))
        if blank:
            if header is not None:
                blanks.append(number)
            continue
        if header is None:
            header = [cell.strip() for cell in record]
            while header and header[-1] == "":  # a trailing delimiter on the header line
                header.pop()
            width = len(header)
            header_line = number
            continue
        if len(record) != width and (len(record) < width or any(c.strip() for c in record[width:])):
            ragged.setdefault(len(record), []).append(number)
            continue
        lines.append(number)
    if header is None:
        raise FileProblem(
            name,
            "empty_file",
            "the file holds only blank lines",
            "export the table again with its header line",
        )
    if ragged:
        all_lines = sorted(n for v in ragged.values() for n in v)
        detail = "; ".join(f"{len(v)} line(s) with {k} fields" for k, v in sorted(ragged.items()))
        first = ", ".join(map(str, all_lines[:5]))
        raise FileProblem(
            name,
            "ragged_rows",
            f"the header (line {header_line}) has {width} fields but {detail} "
            f"(lines {first}{', ...' if len(all_lines) > 5 else ''})",
            "every line needs one value per column: quote values that contain the "
            f"delimiter ({_DELIMITERS[delimiter]}), and add or remove the missing or extra "
            "separators (empty cells still need their separator)",
            all_lines,
        )
    findings += _blank_rows(blanks, lines)
    del text
    # A large file is read into categorical columns: each distinct text once plus a small
    # integer code per cell (62 MB instead of about 900 MB of Python strings for 2 million
    # assessments); a small one into object columns, which pandas reads four times faster.
    # Read from the bytes: a StringIO of the text would hold four bytes per character.
    cells = pd.read_csv(
        io.BytesIO(data),
        sep=delimiter,
        header=None,
        names=list(range(max(widest, width))),
        dtype="category" if len(data) >= _CATEGORICAL_BYTES else object,
        encoding="utf-8",
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=True,
        engine="c",
    )
    cells = cells.iloc[:, :width]
    blank = np.ones(len(cells), dtype=bool)
    for column in cells.columns:  # on the distinct values: one pass per column
        codes, uniques = pd.factorize(cells[column], use_na_sentinel=True)
        empty = np.array([str(u).strip() == "" for u in uniques] + [True], dtype=bool)
        blank &= empty[codes]
    cells = cells[~blank].iloc[1:]  # the first non-blank record is the header
    if len(cells) != len(lines):  # the two parsers disagree: fall back to positions
        lines = list(range(2, len(cells) + 2))
    cells = cells.reset_index(drop=True)
    if delimiter == ";" and numeric:
        findings += _decimal_commas(cells, header, numeric, missing)
    return header, cells, lines, findings


#: A number written with a decimal comma (``34,2``, ``-0,5``): digits on both sides.
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def _decimal_commas(
    cells: pd.DataFrame, header: list[str], numeric: Mapping[str, str], missing: Collection[str]
) -> list[Finding]:
    """Read the numeric columns of a semicolon-separated file written with a decimal comma.

    Spreadsheets set to a language that writes ``34,2`` save CSV files separated by
    semicolons, with the numbers as shown. The numeric columns of such a file are read
    with a decimal point (in place, on the text) when some cell is a number with a decimal
    comma and no numeric cell of the file holds a point (the missing-value markers aside):
    a file that mixes ``34,2`` and ``0.5`` is left as written, and its cells with a comma
    fail their type check as before. Each column read so is listed (``decimal_comma``).
    """
    columns = {}  # position -> (schema name, distinct texts)
    for position, column in enumerate(header):
        field_name = numeric.get(normalise_name(column))
        if field_name is None:
            continue
        values = cells.iloc[:, position]
        if isinstance(values.dtype, pd.CategoricalDtype):
            distinct = [str(v) for v in values.cat.categories]
        else:
            distinct = [str(v) for v in pd.unique(values.dropna())]
        texts = [t.strip() for t in distinct if t.strip() not in missing]
        if any("." in t for t in texts):
            return []
        if any(_DECIMAL_COMMA.fullmatch(t) for t in texts):
            columns[position] = field_name, distinct
    findings: list[Finding] = []
    for position, (field_name, distinct) in columns.items():
        point = {
            t: t.replace(",", ".") if _DECIMAL_COMMA.fullmatch(t.strip()) else t for t in distinct
        }
        values = cells.iloc[:, position]
        if isinstance(values.dtype, pd.CategoricalDtype):
            cells.isetitem(position, values.cat.rename_categories(point).array)
        else:
            cells.isetitem(position, values.map(point, na_action="ignore").to_numpy(dtype=object))
        findings.append((field_name, "decimal_comma: read as a decimal point", "", ()))
    return findings


def _read_parquet(path: Path, name: str, missing: set[str], known: set[str]) -> ReadTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    nested = [f.name for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise FileProblem(
            name,
            "nested_column",
            "list, struct or map column(s) "
            + ", ".join(f"`{n}`" for n in nested)
            + " hold several values per cell",
            "write one plain value per cell (one row per assessment, session or event)",
        )
    table = pq.read_table(path)
    # Text as categorical columns (each distinct value once: 2 million assessments take
    # about 1 GB less than as Python strings), the Arrow columns freed as they convert.
    frame = table.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True)
    _check_header(list(frame.columns), name)
    arrow = {f.name: f.type for f in schema}
    encoded = [  # text and binary columns, made categorical by strings_to_categorical
        c
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
        and c in arrow
        and not pa.types.is_dictionary(arrow[c])
    ]
    for c in encoded:  # binary cells and extra columns: object columns, as read
        if not pa.types.is_string(arrow[c]) and not pa.types.is_large_string(arrow[c]):
            frame[c] = _as_objects(frame[c])
        elif normalise_name(c) not in known:
            frame[c] = _as_objects(frame[c])
    text = [
        c
        for c in frame.columns
        if frame[c].dtype == object
        or frame[c].dtype == "string"
        or (c in encoded and isinstance(frame[c].dtype, pd.CategoricalDtype))
    ]
    if text:
        categorical = [c for c in text if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        plain = [c for c in text if c not in categorical]
        if plain:
            frame[plain] = _missing_to_na(frame[plain].astype(object), missing)
        if categorical:
            cleaned = _missing_to_na(frame[categorical], missing)
            for c in categorical:
                frame[c] = cleaned[c]
    return ReadTable(frame, name, np.arange(len(frame), dtype=np.int64) + 2)


def _read_excel(path: Path, name: str, sheet):
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(str(path))
    findings: list[Finding] = []
    if sheet is None:
        sheets = list(workbook.sheet_names)
        wanted = [s for s in sheets if normalise_name(s) == normalise_name(path.stem)]
        sheet = wanted[0] if wanted else sheets[0]
        if len(sheets) > 1:  # the others are not read: said, without their names
            which = "the sheet named after the table" if wanted else "the first sheet"
            others = f"{len(sheets) - 1} other{'s' if len(sheets) > 2 else ''}"
            findings.append(("(file)", f"sheets: read {which}, {others} not read", "", ()))
    values = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    header, rows, lines = None, [], []
    blanks: list[int] = []  # blank rows after the header
    for number, record in enumerate(values, start=1):
        cells = ["" if v is None else v for v in record]
        if not any(str(c).strip() for c in cells):
            if header is not None:
                blanks.append(number)
            continue
        if header is None:
            header = [str(c).strip() for c in cells]
            while header and header[-1] == "":
                header.pop()
            width = len(header)
            continue
        if len(cells) > width and any(str(c).strip() for c in cells[width:]):
            raise FileProblem(
                name,
                "ragged_rows",
                f"line {number} has values beyond the last named column",
                "give every column a name in the header row, or delete the stray values",
                [number],
            )
        cells = list(cells[:width]) + [""] * (width - len(cells))
        rows.append([_excel_value(c) for c in cells])
        lines.append(number)
    if header is None:
        raise FileProblem(
            name, "empty_file", "the sheet is empty", "put the header row and the data in it"
        )
    return header, rows, lines, findings + _blank_rows(blanks, lines)


def _blank_rows(blanks: list[int], lines: list[int]) -> list[Finding]:
    """The finding for blank rows between the header and the last row of data (skipped;
    listed so that the line numbers that jump are explained). Blank rows after the last
    row of data end the table (a file's last line end, the empty rows a spreadsheet
    exports below its data) and are not listed."""
    last = lines[-1] if lines else 0
    inside = tuple(n for n in blanks if n < last)
    return [("(file)", "blank_rows: skipped", "", inside)] if inside else []


def _excel_value(value):
    """Whole numbers stored as floats by Excel come back as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _read_stat(path: Path, name: str, ext: str, table: str, missing: set[str]) -> ReadTable:
    import pyreadstat

    reader: Any = {  # pyreadstat's readers are untyped
        "sav": pyreadstat.read_sav,
        "zsav": pyreadstat.read_sav,
        "sas7bdat": pyreadstat.read_sas7bdat,
        "xpt": pyreadstat.read_xport,
        "dta": pyreadstat.read_dta,
    }[ext]
    frame, meta = reader(str(path))
    _check_header(list(frame.columns), name)
    findings: list[Finding] = []
    labels = getattr(meta, "variable_value_labels", None) or {}
    from analysis.cohort import read_schema

    fields = {normalise_name(f["name"]): f for f in read_schema(table)["fields"]}
    for column, mapping in labels.items():
        f = fields.get(normalise_name(column))
        if f is None or not mapping:
            continue
        mapped = _map_labels(f, mapping)
        if mapped is not None:
            frame[column] = frame[column].map(lambda v, m=mapped: m.get(v, v))
            findings.append((str(column), "value_labels: mapped to the schema's codes", "", ()))
    text = [c for c in frame.columns if frame[c].dtype == object]
    if text:
        frame[text] = _missing_to_na(frame[text].astype(object), missing)
    return ReadTable(frame, name, np.arange(len(frame), dtype=np.int64) + 2, findings)


def _map_labels(field_: dict, mapping: dict) -> dict | None:
    """``{stored value: schema code}`` when every label names a code of the field."""
    if field_.get("type") == "boolean":
        true = {str(v).lower() for v in field_.get("trueValues", ["true"])}
        false = {str(v).lower() for v in field_.get("falseValues", ["false"])}
        out = {}
        for value, label in mapping.items():
            key = str(label).strip().lower()
            if key not in true | false:
                return None
            out[value] = key in true
        return out
    codes = field_.get("constraints", {}).get("enum")
    if not codes:
        return None
    by_key = {re.sub(r"[^a-z0-9]", "", str(c).lower()): c for c in codes}
    out = {}
    for value, label in mapping.items():
        code = by_key.get(re.sub(r"[^a-z0-9]", "", str(label).lower()))
        if code is None:
            return None
        out[value] = code
    return out
