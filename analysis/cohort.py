"""The data model's foundation: the tables of a cohort, their schemas and the error.

This module holds what every other module of the data layer needs and nothing that
validates: the table names (:data:`TABLES`), the :class:`Cohort` container, the
:class:`DataValidationError` every check raises (with the ``.failures`` layout of
:data:`FAILURE_COLUMNS`), the Frictionless Table Schema files of ``data_schema/``
(:func:`read_schema`) and :func:`cohort_tables`, the one way to turn a Cohort or a
mapping into a dict of tables. It also holds what the report layer reads at every level:
:func:`data_fingerprint` (the content hash of a cohort's tables) and
:class:`SnapshotCohort` (a cohort a report batch validated once); their documented home,
:mod:`analysis.reports`, re-exports them (they are not re-exported by
:mod:`analysis.schema`).

Design contract (the import order of the data layer, one way only)::

    instruments, readers  <-  cohort  <-  deid  <-  schema  <-  endpoints, intake, ...

:mod:`analysis.deid` (the guard) and :mod:`analysis.schema` (validation and loading)
both build on this module and :mod:`analysis.schema` uses the guard; the guard never
imports :mod:`analysis.schema`, so the two can be read, imported and tested apart.
Every name here is re-exported by :mod:`analysis.schema`, where the public API
(``analysis.schema.Cohort``, ``analysis.schema.DataValidationError``, ...) keeps working
unchanged; new code in the package imports from here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis._utils import check_choice
from analysis.instruments import INSTRUMENTS

__all__ = [
    "FAILURE_COLUMNS",
    "OPTIONAL_TABLES",
    "REPORT_COLUMNS",
    "REQUIRED_TABLES",
    "TABLES",
    "Cohort",
    "DataValidationError",
    "cohort_tables",
    "read_schema",
    "schema_dir",
]

#: The tables of a cohort, in the order they are validated and reported.
TABLES = ("patients", "assessments", "sessions", "adverse_events")
#: Tables :func:`~analysis.schema.load_cohort` requires; the others may be absent.
REQUIRED_TABLES = ("patients", "assessments")
OPTIONAL_TABLES = ("sessions", "adverse_events")
#: Columns of ``DataValidationError.failures`` and of :func:`~analysis.schema.collect_failures`.
FAILURE_COLUMNS = ("table", "row", "column", "check", "value")
#: Columns of :attr:`~analysis.schema.ValidationReport.errors` and
#: :attr:`~analysis.schema.ValidationReport.findings`.
REPORT_COLUMNS = ("table", "row", "line", "column", "check", "count", "severity", "value")


@dataclass
class Cohort:
    """The four tables of a de-identified cohort (pandas DataFrames).

    ``sessions`` and ``adverse_events`` are empty frames when the data has none.

    Attributes
    ----------
    patients, assessments, sessions, adverse_events : DataFrame
        The tables.
    findings : DataFrame
        The data-quality findings of :func:`~analysis.schema.load_cohort`
        (:data:`REPORT_COLUMNS`; see :class:`~analysis.schema.ValidationReport`): rows that loaded but are not used as they stand
        (unscorable questionnaires, assessments outside every visit window, ...). Empty
        for a cohort built in memory.
    collected : tuple of str or None
        The tables the data supplied. :func:`~analysis.schema.load_cohort` sets it (an optional table
        without a file was *not collected*, which is not the same as collected with no
        rows); ``None`` (default) means every table with columns, so that
        ``Cohort(patients, assessments)`` has no sessions or adverse events collected.

    Examples
    --------
    >>> cohort = Cohort(pd.DataFrame({"patient_id": ["P1"]}), pd.DataFrame())
    >>> cohort.is_collected("adverse_events"), cohort.is_collected("patients")
    (False, True)
    """

    patients: pd.DataFrame
    assessments: pd.DataFrame
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    adverse_events: pd.DataFrame = field(default_factory=pd.DataFrame)
    findings: pd.DataFrame = field(default_factory=lambda: _empty_report(), repr=False)
    collected: tuple[str, ...] | None = None

    def is_collected(self, table: str) -> bool:
        """Whether the data supplied ``table`` (an absent optional table was not collected).

        A table that was supplied with no rows *was* collected (e.g. no adverse event
        occurred); one that was not supplied says nothing about events.
        """
        check_choice("table", table, TABLES)
        if self.collected is not None:
            return table in self.collected
        df = getattr(self, table)
        return df is not None and len(df.columns) > 0


# --------------------------------------------------------------------------- fingerprint
#
# The report batch (analysis.reports) validates a cohort once, writes it as a snapshot and
# checks its fingerprint in every notebook; the report sections and page headers read
# both, so they live here, below all of them.


#: Text of the integers most cohort values are (items, totals, study days, ages), looked up.
_INT_TEXT_LOW = -1000
_INT_TEXT = np.array([str(k) for k in range(_INT_TEXT_LOW, 10_000)], dtype=object)


def _canonical_column(values: pd.Series) -> np.ndarray:
    """Text of each value that does not depend on the dtype the file format produced.

    Booleans ``true``/``false``; integral numbers without a decimal point (``12`` whether
    stored as integer or float); other numbers with 12 significant digits; text as is;
    missing values empty. Vectorised where it can be (a 20,000-patient cohort has
    millions of values).
    """
    missing = values.isna().to_numpy(dtype=bool)
    if pd.api.types.is_bool_dtype(values.dtype):
        text = values.map({True: "true", False: "false"}, na_action="ignore").to_numpy(dtype=object)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        text = np.full(len(numbers), "", dtype=object)
        finite = np.isfinite(numbers)
        integral = finite & (numbers == np.round(numbers))
        common = integral & (numbers >= _INT_TEXT_LOW) & (numbers < _INT_TEXT_LOW + len(_INT_TEXT))
        text[common] = _INT_TEXT[numbers[common].astype(np.int64) - _INT_TEXT_LOW]
        small = integral & ~common & (np.abs(numbers) < 2.0**62)
        text[small] = numbers[small].astype(np.int64).astype(str).astype(object)
        for k in np.flatnonzero(integral & ~common & ~small):
            text[k] = str(int(numbers[k]))
        other = ~integral & ~missing
        text[other] = [format(x, ".12g") for x in numbers[other].tolist()]
    elif pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        text = values.to_numpy(dtype=object)
    else:
        text = values.map(
            lambda v: (
                {True: "true", False: "false"}.get(v, str(v)) if isinstance(v, bool) else str(v)
            ),
            na_action="ignore",
        ).to_numpy(dtype=object)
    return np.where(missing, "", text).astype(object)


def data_fingerprint(cohort) -> str:
    """SHA-256 of the canonical content of a cohort's tables.

    Canonical content: for each table in the order patients, assessments, sessions,
    adverse_events, its non-empty columns sorted by name and its rows as text sorted, with
    numbers written without their storage type (``12`` whether read as integer or
    float) and missing values empty. So the fingerprint is the same for the same data
    read from CSV or Parquet, in any row or column order, and changes when any value does.

    Parameters
    ----------
    cohort : Cohort

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> p = pd.DataFrame({"patient_id": ["a", "b"], "age": [30, 41]})
    >>> a = pd.DataFrame({"patient_id": ["a"], "instrument": ["GAD7"], "study_day": [0]})
    >>> fp = data_fingerprint(Cohort(p, a))
    >>> fp == data_fingerprint(Cohort(p.iloc[::-1].astype({"age": float}), a))
    True
    >>> fp == data_fingerprint(Cohort(p.assign(age=[30, 42]), a))
    False
    """
    digest = hashlib.sha256()
    for name in TABLES:
        table = getattr(cohort, name, None)
        if table is None:
            table = pd.DataFrame()
        table = table.dropna(axis=1, how="all")
        columns = sorted(map(str, table.columns))
        table = table.set_axis([str(c) for c in table.columns], axis=1)
        texts = [_canonical_column(table[column]).tolist() for column in columns]
        rows = sorted(map("\x1f".join, zip(*texts, strict=True))) if texts else [""] * len(table)
        digest.update(f"\x1e{name}\x1d{chr(0x1F).join(columns)}\x1d{len(rows)}\n".encode())
        if rows:
            digest.update(("\n".join(rows) + "\n").encode())
    return digest.hexdigest()


@dataclass(eq=False)
class SnapshotCohort(Cohort):
    """A cohort loaded from a batch's snapshot: validated once by
    :func:`analysis.reports.run_reports` (:func:`analysis.reports.load_snapshot`).

    Besides the :class:`~analysis.schema.Cohort` tables, ``findings`` and ``collected``
    (as the batch's validation left them): ``fingerprint`` (:func:`data_fingerprint`,
    checked on loading), ``source`` (what the data are, for the page header: "folder
    clinic, site S01 (96 patients)") and ``site`` (the site of a ``--by-site`` report,
    else None). The page header (:func:`analysis.formatting.provenance`) shows the
    fingerprint checked on loading, so the tables are not to be changed in place
    afterwards (the reports derive new frames, they never do).
    """

    fingerprint: str = ""
    source: str = ""
    site: str | None = None


# --------------------------------------------------------------------------- errors


def _empty_failures() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": pd.array([], dtype="string"),
            "row": pd.array([], dtype="Int64"),
            "column": pd.array([], dtype="string"),
            "check": pd.array([], dtype="string"),
            "value": pd.array([], dtype="string"),
        }
    )


def _empty_report() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": pd.array([], dtype="string"),
            "row": pd.array([], dtype="Int64"),
            "line": pd.array([], dtype="Int64"),
            "column": pd.array([], dtype="string"),
            "check": pd.array([], dtype="string"),
            "count": pd.array([], dtype="Int64"),
            "severity": pd.array([], dtype="string"),
            "value": pd.array([], dtype="string"),
        }
    )


def _check_kind(check: str) -> str:
    """The kind of a check name: its first word (``in_range 0-3 for GAD7`` -> ``in_range``)."""
    return check.split(" ", 1)[0].rstrip(":")


class DataValidationError(ValueError):
    """Input data break the data model; raised with every failure, not just the first.

    Attributes
    ----------
    failures : DataFrame
        One row per failing cell (or column): ``table, row, column, check, value``.
        ``row`` is the 0-based position in the input file or frame (empty for a problem of
        the whole column), ``value`` the offending cell as a string (blank in a column
        flagged by the de-identification guard).

    Notes
    -----
    The message counts failing rows per table, column and check, and says how to fix each
    kind of problem. It never contains a value from the data.

    Examples
    --------
    >>> assessments = pd.DataFrame({"patient_id": ["P1", "P2"], "instrument": ["GAD7", "GAD7"],
    ...                             "study_day": [0, 0], "item_3": [4, 9], "total": [10, 12]})
    >>> from analysis.schema import validate
    >>> try:
    ...     validate(assessments, "assessments")
    ... except DataValidationError as exc:
    ...     print(exc.failures.to_string(index=False))
    ...     print(str(exc).splitlines()[1])
          table  row column                check value
    assessments    0 item_3 in_range 0-3 for GAD7     4
    assessments    1 item_3          in_range 0-4     9
      assessments.item_3: 1 row fails `in_range 0-3 for GAD7`
    """

    title = "Data validation failed"

    #: How to fix each kind of check (keyed by the first word of the check name).
    hints = {
        "required_column": "add the missing column; data_schema/README.md lists each table's columns",
        "not_null": "fill in the required value in every row, or remove rows that cannot be completed",
        "type": (
            "write plain values of the column's type: whole numbers in integer columns (no "
            "text, units or decimals), numbers with a '.' decimal point, true/false, yes/no "
            "or 1/0 in boolean columns; leave the cell empty when the value is unknown"
        ),
        "in_range": "correct the value, or leave the cell empty when it is unknown",
        "minimum": "correct the value, or leave the cell empty when it is unknown",
        "maximum": "correct the value, or leave the cell empty when it is unknown",
        "exclusive_minimum": "correct the value, or leave the cell empty when it is unknown",
        "length": "shorten or complete the value",
        "one_of": "use one of the listed codes exactly as written (codes are case-sensitive)",
        "pattern": (
            "use only the characters the pattern allows (codes: letters, digits, '_' and '-', "
            "at most 64 characters; adverse event terms: lower-case letters, digits and '_')"
        ),
        "unique": "keep one row per key: remove the duplicated rows or correct their key",
        "foreign_key": "add the missing patients to the patients table, or remove their rows",
        "empty": (
            "leave the item columns a scale does not use empty (GAD7 uses "
            f"{', '.join(INSTRUMENTS['GAD7'].item_columns)}), or correct the instrument"
        ),
        "total_matches_items": (
            "correct the items or the total, or leave the total empty so that it is computed "
            "from the items"
        ),
        "scorable": "give the total or answer enough items, or remove the row",
        "session_1_on_day_0": (
            "study days count from the first ketamine session: shift the patient's study "
            "days (sessions and assessments) so that session 1 is on day 0"
        ),
        "duplicate_row": (
            "remove the repeated copy of the row (an event entered twice is counted twice); "
            "two distinct events of one term on one day differ in severity, seriousness "
            "or relatedness"
        ),
        "duplicate_column": "keep one column of each name (delete or rename the copy)",
        # findings: the rows load and are accounted for; the fix is optional
        "unscorable": (
            "give the total or answer more items if the form has them; otherwise the row "
            "is kept and accounted as `unscorable` (it is not used for any score)"
        ),
        "outside_schedule": (
            "check the study day; an assessment outside every visit window is kept and "
            "accounted as `outside_schedule`"
        ),
        "no_baseline": (
            "add the baseline assessment (day -14 to 0) if it exists; without one the "
            "patient has no change from baseline (accounted as `no_baseline`)"
        ),
        "no_post_baseline": (
            "add the follow-up assessments if they exist; the patient counts in the "
            "baseline table only"
        ),
        "no_assessments": "add the patient's assessments, or remove the patient if never treated",
        "after_last_assessment": (
            "nothing to fix if the patient was treated after the last rating; outcomes "
            "after the last assessment are unknown"
        ),
        "column_renamed": "nothing to fix; use the column names of data_schema/README.md next time",
        "unknown_column": (
            "rename the column if it is one of the schema's (see the suggestion); otherwise "
            "it is kept as an extra column"
        ),
        "encoding": "nothing to fix; save files as UTF-8 next time",
        "delimiter": "nothing to fix; comma-separated files are the standard",
        "value_labels": "nothing to fix; check the codes in the loaded table",
        "decimal_comma": "nothing to fix; numbers with a '.' decimal point are the standard",
        "sheets": (
            "nothing to fix if the other sheets hold no rows of this table; otherwise put "
            "all its rows on one sheet (or one sheet per table, named after the tables)"
        ),
        "blank_rows": (
            "nothing to fix; a blank row holds no data (the other rows keep their line numbers)"
        ),
    }

    def __init__(
        self, failures: pd.DataFrame | str, message: str | None = None, report=None
    ) -> None:
        if isinstance(failures, str):
            message, failures = failures, _empty_failures()
        self.failures = failures
        #: The :class:`~analysis.schema.ValidationReport` (errors, findings, spreadsheet
        #: line numbers) when raised by :func:`~analysis.schema.load_cohort` or
        #: :func:`~analysis.schema.validate`, else None.
        self.report = report
        super().__init__(message if message is not None else self._summarise(failures))

    def __reduce__(self):
        return (type(self), (self.failures, str(self), self.report))

    @classmethod
    def _summarise(cls, failures: pd.DataFrame, max_lines: int = 40, *, fast: bool = True) -> str:
        """Counts per table, column and check, then one hint per kind of check.

        ``fast`` (default): when every table, column and check is a string, the groups
        are counted in a dict and sorted in Python (about 8 ms less per error raised
        than the pandas groupby of ``fast=False``, which gives the same text:
        ``tests/test_validation_fast_paths.py``).
        """
        if failures.empty:
            return f"{cls.title}."
        order = {t: k for k, t in enumerate(TABLES)}
        labels = [failures[c].tolist() for c in ("table", "column", "check")]
        if fast and all(type(v) is str for values in labels for v in values):
            has_row = failures["row"].notna().to_numpy(dtype=bool).tolist()
            counted: dict[tuple, int] = {}
            for table, column, check, with_row in zip(*labels, has_row, strict=True):
                key = (order.get(table, len(order)), table, column, check)
                counted[key] = counted.get(key, 0) + with_row
            groups = [(*key[1:], n) for key, n in sorted(counted.items())]
            n_tables = len({table for table, _, _, _ in groups})
        else:
            frame = (
                failures.assign(
                    _table_order=failures["table"].map(order).fillna(len(order)),
                    _has_row=failures["row"].notna(),
                )
                .groupby(["_table_order", "table", "column", "check"], sort=True, dropna=False)
                .agg(n=("_has_row", "sum"), size=("_has_row", "size"))
                .reset_index()
            )
            columns = (frame["table"], frame["column"], frame["check"], frame["n"])
            groups = list(zip(*columns, strict=True))
            n_tables = frame["table"].nunique()
        lines = [
            f"{cls.title}: {len(groups)} problem(s) in {n_tables} table(s); nothing was loaded."
        ]
        for table, column, check, n in groups[:max_lines]:
            where = f"{table}.{column}"
            if n == 0:
                lines.append(f"  {where}: column fails `{check}`")
            else:
                rows = "row fails" if n == 1 else "rows fail"
                lines.append(f"  {where}: {n} {rows} `{check}`")
        if len(groups) > max_lines:
            lines.append(f"  ... and {len(groups) - max_lines} more (see `.failures`)")
        kinds = dict.fromkeys(_check_kind(c) for _, _, c, _ in groups)
        lines.append("How to fix:")
        for kind in kinds:
            hint = cls.hints.get(kind, "see data_schema/README.md for the rule")
            lines.append(f"  - {kind}: {hint}")
        lines.append(
            "`.failures` lists every failing cell (rows are 0-based positions in each input "
            "file, header excluded); data_schema/README.md describes every column."
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------- schema files


def schema_dir() -> Path:
    """The folder holding the Table Schema JSON files (see the module docstring)."""
    folder = importlib.resources.files("analysis") / "data_schema"
    if folder.joinpath("patients.json").is_file():
        return Path(str(folder)).resolve()  # in the repository: the top-level folder
    raise FileNotFoundError(
        f"The table schemas were not found: expected {folder}/patients.json (package data "
        "of `analysis`). Reinstall the package (pip install anxiety-outcomes, or "
        "pip install -e . from the repository)."
    )


@functools.cache
def _schema_text(table: str) -> str:
    return (schema_dir() / f"{table}.json").read_text(encoding="utf-8")


def read_schema(table: str) -> dict:
    """The Frictionless Table Schema of a table, as a dict (a fresh copy).

    Examples
    --------
    >>> schema = read_schema("assessments")
    >>> schema["primaryKey"]
    ['patient_id', 'instrument', 'study_day']
    >>> [f["name"] for f in schema["fields"]][:4]
    ['patient_id', 'instrument', 'study_day', 'item_1']
    """
    check_choice("table", table, TABLES)
    return json.loads(_schema_text(table))


def cohort_tables(
    tables, *, collected_only: bool = False, check: bool = True
) -> dict[str, pd.DataFrame]:
    """A dict of table name to DataFrame from a :class:`Cohort` or a mapping.

    Parameters
    ----------
    tables : Cohort or mapping of str to DataFrame
        A cohort, or tables keyed by name (each name one of :data:`TABLES`, each value a
        pandas DataFrame).
    collected_only : bool, default False
        For a Cohort: keep only the required tables and the optional ones the data
        supplied (:meth:`Cohort.is_collected`). False gives every table of :data:`TABLES`.
    check : bool, default True
        For a mapping: require table names of :data:`TABLES` and pandas DataFrames. The
        de-identification guard passes False: it scans whatever it is given.

    Returns
    -------
    dict of str to DataFrame
        A new dict (the frames themselves are not copied).

    Raises
    ------
    TypeError
        ``tables`` is neither, or (``check=True``) a value of the mapping is not a pandas
        DataFrame.
    ValueError
        A key of the mapping is not a table name (``check=True``).

    Examples
    --------
    >>> cohort = Cohort(pd.DataFrame({"patient_id": ["P1"]}), pd.DataFrame())
    >>> list(cohort_tables(cohort))
    ['patients', 'assessments', 'sessions', 'adverse_events']
    >>> list(cohort_tables(cohort, collected_only=True))
    ['patients', 'assessments']
    """
    if isinstance(tables, Cohort):
        names = [
            t
            for t in TABLES
            if not collected_only or t in REQUIRED_TABLES or tables.is_collected(t)
        ]
        return {name: getattr(tables, name) for name in names}
    if not isinstance(tables, Mapping):
        raise TypeError(
            "`tables` must be a Cohort or a mapping of table name to DataFrame, "
            f"but a {type(tables).__name__} was passed."
        )
    for name, df in tables.items() if check else ():
        check_choice("table", name, TABLES)
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Table `{name}` must be a pandas DataFrame, not {type(df).__name__}.")
    return dict(tables)
