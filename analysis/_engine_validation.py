"""Validation and the de-identification guard inside DuckDB, Polars or Spark.

:func:`analysis.schema.load_cohort` with ``engine="duckdb" | "polars" | "spark"`` comes
here. The tables are opened lazily (a folder of Parquet files, or a DuckDB database file),
and every rule of the pandas path is evaluated by the engine as narwhals expressions:
types, required values, ranges, codes and patterns, keys, the instrument rules (item and
total ranges, unused items empty, total equal to the sum of complete items, scorable),
session 1 on day 0, adverse events entered twice, unknown patients, the findings
(unscorable, outside the schedule, no baseline, no post-baseline, no assessments,
sessions or events after the last assessment, renamed and unknown columns) and the
de-identification guard (column names, temporal dtypes, identifier-shaped text values,
ages over 90). Only counts leave the engine; no table is materialised in pandas.

Design contract:

- The checks, their names and their messages are those of the pandas path (the check
  labels are read from the same pandera checks built from ``data_schema/``); the
  difference is that failures are **aggregated**: one row per table, column and check,
  with ``count`` the number of rows concerned (``row`` and ``line`` empty, ``value``
  never shown). ``tests/test_engine_validation.py`` holds the counts equal to the pandas
  path's on valid and invalid Parquet folders for every engine.
- The counts come in two batches (:class:`_Batch`): the aggregate pass of every table,
  then the keys, references and findings, written with expressions the first batch's
  counts simplified (stored text where no value needs stripping or is a missing token).
  Polars and Spark get each batch as one query; DuckDB one query per count, after a
  small batch that settles the columns before the pass (:meth:`_Table.ask_facts`: the
  text values with whitespace at an end, the missing tokens, the integer columns'
  bounds), so that the pass too compares stored values where nothing needs converting.
- Identifier-shaped values are found in two steps: the engine filters each text column
  with a regular expression that matches a superset of the guard's patterns (lookarounds
  dropped and back-references widened, since RE2, Rust's regex and Java agree on that
  subset), then only the distinct candidate values, usually none, are checked with the
  guard's own patterns in Python to count their rows. A value is never shown or logged.
- The returned :class:`~analysis.schema.Cohort` holds the engine's lazy frames, typed as
  the pandas path types them (schema columns in schema order, absent optional columns
  added empty, then the extra columns); :func:`analysis.derive_endpoints` and the
  statistics accept them.

Where a table may be: ``<table>.parquet`` or a folder ``<table>/`` of Parquet files
(e.g. written in chunks) in the cohort folder, or a table named after it in a DuckDB
database file (``engine="duckdb"``).
"""

from __future__ import annotations

import functools
import importlib
import operator
import re
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import narwhals as nw
import pandas as pd

from analysis._checks import (
    _COMPARISONS,
    ValidationReport,
    _compared,
    _match_columns,
    _problem_report,
    _table_validator,
)
from analysis._frames import column_names, small_to_pandas
from analysis._utils import needs_extra
from analysis.cohort import (
    FAILURE_COLUMNS,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    TABLES,
    Cohort,
    DataValidationError,
    _check_kind,
    _empty_report,
)
from analysis.deid import IDENTIFIER_CHECKS, DeidentificationError
from analysis.instruments import INSTRUMENTS
from analysis.readers import MISSING_VALUES, FileProblem, find_table_files, normalise_name

if TYPE_CHECKING:
    from narwhals.dtypes import DType
    from narwhals.typing import IntoLazyFrame, IntoLazyFrameT

#: A table in its engine, seen through narwhals (a DuckDB relation, a Polars LazyFrame or
#: a Spark DataFrame inside).
Lazy = nw.LazyFrame[Any]
#: A failure or finding counted in the engine: ``(table, column, check, rows, severity)``.
Entry = tuple[str, str, str, int, str]

__all__ = ["ENGINES", "open_tables", "load_engine_cohort", "validate_engine_cohort"]

#: Engines :func:`analysis.schema.load_cohort` accepts.
ENGINES = ("pandas", "duckdb", "polars", "spark")
_LAZY_ENGINES = ENGINES[1:]
_DUCKDB_SUFFIXES = (".duckdb", ".ddb", ".db")


# --------------------------------------------------------------------------- opening


#: The share of a ``memory_limit`` budget that :func:`open_tables` gives DuckDB's buffer
#: manager (DuckDB's own ``memory_limit``, which bounds only those buffers) ...
DUCKDB_SHARE = 0.75
#: ... but never so much that less than this is left (bytes) for what DuckDB does not
#: count: Python with pandas, Arrow and the library (about 170 MiB), DuckDB's Parquet
#: readers and the allocator's slack (measured 260-300 MiB in all at 1,000,000 patients).
OUTSIDE_DUCKDB = 512 * 2**20
#: The least DuckDB's buffers get: a smaller budget is refused.
_LEAST_FOR_DUCKDB = 128 * 2**20

# DuckDB's memory units (``DBConfig::ParseMemoryLimit``), lower case: 1000**i and 1024**i.
_SIZE_UNITS = {
    **dict.fromkeys(("b", "byte", "bytes"), 1),
    **{
        name: 1000**power
        for power, names in enumerate(
            [
                ("kb", "k", "kilobyte", "kilobytes"),
                ("mb", "m", "megabyte", "megabytes"),
                ("gb", "g", "gigabyte", "gigabytes"),
                ("tb", "t", "terabyte", "terabytes"),
            ],
            start=1,
        )
        for name in names
    },
    **{name: 1024**power for power, name in enumerate(("kib", "mib", "gib", "tib"), start=1)},
}
_SIZE = re.compile(r"\s*((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S*)\s*")


def parse_size(value: str, name: str = "memory_limit") -> int:
    """Bytes of a size written as DuckDB reads it (``"4GB"``, ``"4 GiB"``, ``"500MB"``).

    Units (any case): ``B``, ``KB``/``MB``/``GB``/``TB`` (powers of 1000, also ``K``,
    ``M``, ``G``, ``T`` and ``kilobytes`` ...) and ``KiB``/``MiB``/``GiB``/``TiB`` (powers
    of 1024); the number may have a decimal point and an exponent, and spaces may surround
    it. Raises ``TypeError`` or ``ValueError`` naming ``name`` and what to pass for
    anything else: no unit, an unknown unit, zero or a negative size, and a share of the
    machine's memory (``"50%"``, which DuckDB reads), since a budget is a size.
    """
    fix = (
        f"pass a size such as '4GB', '4GiB' or '1500MB' (units B, KB, MB, GB, TB for "
        f"powers of 1000, KiB, MiB, GiB, TiB for powers of 1024), or leave `{name}` out "
        "for DuckDB's defaults"
    )
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a string, not {type(value).__name__} {value!r}: {fix}.")
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ValueError(f"`{name}`={value!r} is not a size: {fix}.")
    number, unit = float(match[1]), match[2].lower()
    if unit == "%":
        raise ValueError(
            f"`{name}`={value!r} is a share of the machine's memory, not a size: the budget "
            f"of the process is a size; {fix}."
        )
    if unit not in _SIZE_UNITS:
        what = "has no unit" if not unit else f"has an unknown unit {match[2]!r}"
        raise ValueError(f"`{name}`={value!r} {what}: {fix}.")
    size = int(number * _SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"`{name}`={value!r} is not a positive size: {fix}.")
    return size


def duckdb_memory_limit(budget: str) -> str:
    """DuckDB's ``memory_limit`` (in bytes, ``"<n>B"``) for a process budget.

    :data:`DUCKDB_SHARE` of the budget, or the budget less :data:`OUTSIDE_DUCKDB` where
    that is smaller: ``"4GB"`` gives ``"3000000000B"``, ``"1GB"`` gives ``"463129088B"``
    (1 GB less 512 MiB). See :func:`parse_size` for the sizes accepted; a budget that
    leaves DuckDB under 128 MiB is refused.
    """
    size = parse_size(budget)
    share = min(int(size * DUCKDB_SHARE), size - OUTSIDE_DUCKDB)
    if share < _LEAST_FOR_DUCKDB:
        least = (OUTSIDE_DUCKDB + _LEAST_FOR_DUCKDB) // 2**20
        raise ValueError(
            f"`memory_limit`={budget!r} is too small a budget for the process: "
            f"{OUTSIDE_DUCKDB // 2**20} MiB of it is left for Python, Arrow and DuckDB's "
            f"Parquet readers, and DuckDB's buffers need at least "
            f"{_LEAST_FOR_DUCKDB // 2**20} MiB; pass at least {least} MiB (e.g. '1GB')."
        )
    return f"{share}B"


def _duckdb_connection(memory_limit: str | None, database: Path | None = None) -> Any:
    import duckdb

    setting = None if memory_limit is None else duckdb_memory_limit(memory_limit)
    con = duckdb.connect(str(database) if database else ":memory:", read_only=bool(database))
    if setting is not None:
        con.execute("SET memory_limit = ?", [setting])
        # Order of rows is not part of the data model (every result the library returns
        # is sorted explicitly): dropping it lets DuckDB stream (and spill) instead of
        # buffering whole tables to keep their order.
        con.execute("SET preserve_insertion_order = false")
    return con


def open_tables(
    path: str | Path,
    engine: str,
    *,
    memory_limit: str | None = None,
    spark: Any = None,
) -> tuple[dict[str, IntoLazyFrame], list[FileProblem]]:
    """The native lazy frames of a cohort folder (or DuckDB file), and file problems.

    Parameters
    ----------
    path : str or Path
        A folder holding ``<table>.parquet`` or ``<table>/*.parquet`` per table, or (for
        ``engine="duckdb"``) a DuckDB database file with tables named after the tables.
    engine : {"duckdb", "polars", "spark"}
        The engine that reads the files.
    memory_limit : str, optional
        DuckDB only: the memory budget of the process (e.g. ``"4GB"``, read by
        :func:`parse_size`); DuckDB's ``memory_limit`` is set to DuckDB's share of it
        (:func:`duckdb_memory_limit`), beyond which DuckDB spills to disk, and insertion
        order is dropped (every result is sorted explicitly). Default: DuckDB's defaults.
    spark : SparkSession, optional
        Spark only: the session to read with (default: the active one, or a new local
        one).

    Returns
    -------
    dict, list
        ``{table: native frame}`` for the tables found, and the
        :class:`~analysis.readers.FileProblem` of a table given twice.
    """
    if engine not in _LAZY_ENGINES:
        raise ValueError(f"`engine` must be one of {list(_LAZY_ENGINES)}, not {engine!r}.")
    if memory_limit is not None and engine != "duckdb":
        raise ValueError(
            "`memory_limit` is a DuckDB setting; Polars has none and a Spark session's "
            "memory is set when it starts (spark.driver.memory). Drop it or use "
            "engine='duckdb'."
        )
    # before the files, the engine's module (the imports below then find it loaded)
    with needs_extra(f"engine={engine!r}"):
        importlib.import_module({"duckdb": "duckdb", "polars": "polars"}.get(engine, "pyspark"))
    path = Path(path)
    if engine == "duckdb" and path.is_file() and path.suffix.lower() in _DUCKDB_SUFFIXES:
        con = _duckdb_connection(memory_limit, path)
        names = {normalise_name(n): n for (n,) in con.execute("SHOW TABLES").fetchall()}
        tables = {t: con.table(names[t]) for t in TABLES if t in names}
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise FileNotFoundError(
                f"Table `{missing[0]}` not found in the DuckDB database {path}: it has "
                f"{sorted(names.values())}. A cohort database holds "
                f"{', '.join(REQUIRED_TABLES)} and optionally {', '.join(OPTIONAL_TABLES)}."
            )
        return tables, []
    if not path.is_dir():
        raise FileNotFoundError(
            f"Cohort folder {path} does not exist or is not a folder; pass the folder "
            "holding patients.parquet and assessments.parquet (or folders of Parquet files"
            + (", or a DuckDB database file)." if engine == "duckdb" else ").")
        )
    found, problems = find_table_files(path, TABLES, kind="parquet")
    sources = {table: source for table, (source, _) in found.items()}
    missing = [t for t in REQUIRED_TABLES if t not in sources]
    if missing and not problems:
        raise FileNotFoundError(
            f"Table `{missing[0]}` not found in {path}: expected {missing[0]}.parquet or a "
            f"folder {missing[0]}/ of Parquet files (engine={engine!r} reads Parquet; use "
            "the default engine for CSV, Excel, SPSS, SAS or Stata files). A cohort folder "
            f"holds {', '.join(REQUIRED_TABLES)} and optionally {', '.join(OPTIONAL_TABLES)}."
        )
    natives: dict[str, IntoLazyFrame] = {}
    if engine == "duckdb":
        con = _duckdb_connection(memory_limit)
        for table, source in sources.items():
            target = source / "*.parquet" if source.is_dir() else source
            natives[table] = con.read_parquet(str(target))
    elif engine == "polars":
        import polars as pl

        for table, source in sources.items():
            target = source / "*.parquet" if source.is_dir() else source
            natives[table] = pl.scan_parquet(target)
    else:
        session = spark or _spark_session()
        for table, source in sources.items():
            natives[table] = session.read.parquet(str(source))
    return natives, problems


#: The settings of the Spark session the library starts when it is given none. PySpark 4
#: records, for every column function called, the Python call site in the JVM for its
#: error messages (``spark.python.sql.dataFrameDebugging.enabled``): about seven JVM
#: round trips per function besides the function's own. The call sites would be the
#: library's own lines, and building the checks of one validation took 90,000 round
#: trips with it and 54,000 without (a 40-patient folder: 20 s against 11 s).
SPARK_SETTINGS: dict[str, bool | float | int | str | None] = {
    "spark.python.sql.dataFrameDebugging.enabled": "false"
}


def _spark_session() -> Any:
    """The active Spark session, or a local one (``local[*]``, :data:`SPARK_SETTINGS`)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master("local[*]").appName("anxiety-outcomes")
    return builder.config(map=SPARK_SETTINGS).getOrCreate()


# --------------------------------------------------------------------------- typing


def _is_text(dtype: DType) -> bool:
    return dtype == nw.String or dtype == nw.Categorical or dtype == nw.Enum


def _is_float(dtype: DType) -> bool:
    return dtype == nw.Float64 or dtype == nw.Float32


_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _field_dtype(field: Mapping[str, Any]) -> DType:
    """The narwhals type of a schema field (as the pandas path's nullable dtypes)."""
    kind = field.get("type", "string")
    if kind == "integer":
        return nw.Int64()
    if kind == "number":
        return nw.Float64()
    if kind == "boolean":
        return nw.Boolean()
    return nw.String()


def _is_token(text: nw.Expr, tokens: Sequence[str]) -> nw.Expr:
    """``text`` is one of the missing-value ``tokens`` (null where ``text`` is null), as
    ``text = 'NA' OR text = '' OR ...``: equal to ``is_in``, and cheaper on DuckDB, where
    ``is_in`` on a text column inlined into a join became a join of its own (measured on
    a 2.1M-row join of the typed patients: 0.60 s with ``=``, 0.84 s with ``is_in``)."""
    if not tokens:
        return text.is_in([])
    return functools.reduce(operator.or_, [text == token for token in tokens])


def _strip(text: nw.Expr) -> nw.Expr:
    return text.str.strip_chars()


#: A value that may start or end with whitespace (a superset of what ``strip_chars``
#: removes in RE2, Rust's regex and Java: ``\s`` plus the vertical tab).
_EDGE_SPACE = r"^[\s\x0b]|[\s\x0b]$"


def _ends_in_space(text: nw.Expr) -> nw.Expr:
    """``text`` starts or ends with a character that :func:`_strip` removes on DuckDB
    (narwhals trims ``string.whitespace`` there): exactly where the strip changes the
    value, as prefix and suffix comparisons, which DuckDB evaluates faster than the
    regular expression :data:`_EDGE_SPACE` (measured on the 8.7 million session rows of
    1,000,000 patients, one thread: ``patient_id`` 0.71-0.76 CPU-seconds against
    0.91-0.95, ``route`` 0.29-0.40 against 0.61-0.91)."""
    ends = [text.str.starts_with(c) | text.str.ends_with(c) for c in string.whitespace]
    return functools.reduce(operator.or_, ends)


def _strip_if_needed(text: nw.Expr) -> nw.Expr:
    """``text`` stripped, calling the strip only where an end is whitespace: equal to
    :func:`_strip` on DuckDB, and several times faster there, whose ``trim`` with a set
    of characters costs more than testing the two ends (DuckDB only)."""
    return nw.when(_ends_in_space(text)).then(_strip(text)).otherwise(text)


def _stripped(column: str, strip: Callable[[nw.Expr], nw.Expr] | None) -> nw.Expr:
    """The text of ``column``, stripped by ``strip`` (the engine's form; :func:`_strip`)."""
    return (strip or _strip)(nw.col(column).cast(nw.String))


def _clean_text(stripped: nw.Expr, missing: Sequence[str]) -> nw.Expr:
    """Stripped text with the missing-value tokens null: what a field converts."""
    return nw.when(~_is_token(stripped, missing)).then(stripped)


def _unused_name(name: str, taken: Sequence[str]) -> str:
    """``name``, with underscores before it until no column in ``taken`` has it."""
    while name in taken:
        name = "_" + name
    return name


#: The schema types whose fields convert a text column (to a number or a boolean).
_CONVERTED = frozenset({"integer", "number", "boolean"})


class _Field:
    """One schema column in the engine: its typed value and its type failures.

    ``typed`` is the value in the field's type (null where missing or not convertible),
    ``type_bad`` marks the cells that could not be converted (the ``type <t>`` check of
    the pandas path's ``_Coercer``). ``plain`` equals ``typed`` wherever ``present``
    holds and ``type_bad`` does not, but reads the column as stored where its type
    already fits (an integer column for an integer field, text stripped for a text
    field), so that the checks and rules compare stored values as SQL would rather than
    a conditional value; ``never_bad`` says ``type_bad`` cannot hold.
    """

    typed: nw.Expr
    type_bad: nw.Expr
    plain: nw.Expr
    present: nw.Expr

    def __init__(
        self,
        field: Mapping[str, Any],
        dtype: DType,
        column: str,
        missing: Sequence[str],
        strip: Callable[[nw.Expr], nw.Expr] | None = None,
        text_column: str | None = None,
    ) -> None:
        self.type: str = field.get("type", "string")
        self.column, self.stored, self.missing = column, dtype, list(missing)
        # whitespace at an end: tested as the strip tests it on DuckDB (exact), else
        # with the superset regular expression
        self._edge: Callable[[nw.Expr], nw.Expr] = (
            _ends_in_space
            if strip is _strip_if_needed
            else (lambda text: text.str.contains(_EDGE_SPACE))
        )
        col = nw.col(column)
        if _is_float(dtype):
            col = nw.when(~col.is_nan()).then(col)  # NaN is missing, as in pandas
        never = col.is_null() & nw.lit(False)  # a column expression, so it can be summed
        text: nw.Expr | None = None
        if _is_text(dtype):
            stripped = _stripped(column, strip)
            # its cleaned text: a column of the table's ``raw`` where the table computed
            # it once (``text_column``), else written here
            text = (
                nw.col(text_column) if text_column is not None else _clean_text(stripped, missing)
            )
        if self.type in ("integer", "number"):
            if dtype == nw.Boolean:
                self.typed, self.type_bad = nw.lit(None).cast(nw.Float64), ~col.is_null()
            else:
                if text is not None:
                    parses = text.str.contains(_NUMBER)
                    number = nw.when(parses).then(text).cast(nw.Float64)
                    unparsed = ~text.is_null() & ~parses
                elif dtype.is_integer():  # whole already: only the 2**53 bound of pandas
                    number, unparsed = None, never
                    too_big = col.abs() >= 2**53
                    self.type_bad = too_big
                    typed = nw.when(~too_big).then(col)
                    self.typed = typed if self.type == "integer" else typed.cast(nw.Float64)
                elif dtype.is_numeric():
                    number, unparsed = col.cast(nw.Float64), never
                else:  # temporal, binary, ...: no value converts
                    number, unparsed = nw.lit(None).cast(nw.Float64), ~col.is_null()
                if number is not None:
                    ok = number.is_finite()
                    if self.type == "integer":
                        ok = ok & (number.floor() == number) & (number.abs() < 2.0**53)
                    self.type_bad = unparsed | (~number.is_null() & ~ok)
                    typed = nw.when(ok).then(number)
                    self.typed = typed.cast(nw.Int64) if self.type == "integer" else typed
        elif self.type == "boolean":
            true = {str(v).strip().lower() for v in field.get("trueValues", ["true"])}
            false = {str(v).strip().lower() for v in field.get("falseValues", ["false"])}
            if dtype == nw.Boolean:
                self.typed, self.type_bad = col, never
            else:
                if text is not None:
                    key = text.str.to_lowercase()
                    is_true, is_false = key.is_in(sorted(true)), key.is_in(sorted(false))
                    present = ~text.is_null()
                elif dtype.is_numeric():
                    number = col.cast(nw.Float64)
                    is_true, is_false = number == 1.0, number == 0.0
                    present = ~col.is_null()
                else:
                    is_true = is_false = never
                    present = ~col.is_null()
                self.typed = nw.when(is_true).then(nw.lit(True)).when(is_false).then(nw.lit(False))
                self.type_bad = present & ~is_true.fill_null(False) & ~is_false.fill_null(False)
        else:  # string
            if text is not None:
                self.typed = text
            elif dtype.is_integer():
                self.typed = col.cast(nw.String)
            elif _is_float(dtype):
                whole = col.floor() == col
                self.typed = (
                    nw.when(whole)
                    .then(col.cast(nw.Int64).cast(nw.String))
                    .otherwise(col.cast(nw.String))
                )
            else:
                self.typed = col.cast(nw.String)
            self.type_bad = never
        self.dtype = _field_dtype(field)
        #: the cell holds a value (see :meth:`_Table.filled`), where simpler than the rule
        self.filled: nw.Expr | None = None
        self.never_bad = self.type == "string" or (self.type == "boolean" and dtype == nw.Boolean)
        if self.type == "string" and text is not None:
            self.plain = stripped
            self.present = (~_is_token(stripped, missing)).fill_null(False)
        elif self.type in ("integer", "number") and dtype.is_integer() and text is None:
            self.plain, self.present = col, ~col.is_null()
            self.filled = self.present  # ``type_bad`` (too big) holds only on a value
        else:
            self.plain, self.present = self.typed, ~self.typed.is_null()

    def facts(self) -> dict[str, nw.Expr]:
        """Counts that show a step of the conversion changes nothing (for :meth:`settle`):
        values with whitespace at an end, and values that are missing tokens.

        The tokens are counted on the stored text, not stripped: :meth:`settle` reads the
        token count only where no value has whitespace at an end, where stripping changes
        nothing, so the count is the same and costs a comparison instead of a strip per
        value (measured on the 8.7 million session rows of 1,000,000 patients, DuckDB:
        2.4 CPU-seconds with ``trim`` on every ``patient_id``, 0.3 without)."""
        if not _is_text(self.stored) or self.type != "string":
            return {}
        text = nw.col(self.column).cast(nw.String)
        return {
            "edge": _count(self._edge(text)),
            "token": _count(_is_token(text, self.missing)),
        }

    def settle(self, facts: Mapping[str, int], type_bad: int) -> None:
        """Simpler expressions, equal on this table, where the aggregate pass found that
        no value needs stripping, no value is a missing token or no value fails its type:
        the queries after the pass (keys, references, findings) then read the stored
        column as the hand-written SQL does instead of converting every value again."""
        if self.type == "string" and facts and not facts["edge"]:
            col = nw.col(self.column)
            stripped = col if self.stored == nw.String else col.cast(nw.String)
            if facts["token"]:
                keep = ~_is_token(stripped, self.missing)
                self.typed = nw.when(keep).then(stripped)
                self.present = keep.fill_null(False)
            else:
                self.typed, self.present = stripped, ~stripped.is_null()
            self.plain = stripped
        elif self.type in ("integer", "number") and self.stored.is_integer() and not type_bad:
            col = nw.col(self.column)
            self.typed = col if self.type == "integer" else col.cast(nw.Float64)
            self.type_bad, self.never_bad = col.is_null() & nw.lit(False), True
            self.plain, self.present = col, ~col.is_null()


def _check_expr(check: Any, value: nw.Expr) -> nw.Expr:
    """A pandera check (made from a Table Schema constraint) as a narwhals condition."""
    stats = check.statistics or {}
    name = check.name
    if name in _COMPARISONS:  # the pandas path's comparisons, on an expression
        return _compared(name, stats, value)
    if name == "isin":
        return value.is_in(list(stats["allowed_values"]))
    if name == "str_matches":
        pattern = str(stats["pattern"])
        return value.str.contains(pattern if pattern.startswith("^") else "^" + pattern)
    if name == "str_length":
        n = value.str.len_chars()
        out = nw.lit(True)
        if stats.get("min_value") is not None:
            out = out & (n >= stats["min_value"])
        if stats.get("max_value") is not None:
            out = out & (n <= stats["max_value"])
        return out
    raise NotImplementedError(f"check {name} has no engine form")  # pragma: no cover


def _count(condition: nw.Expr) -> nw.Expr:
    """The rows where ``condition`` holds (null counts as false), as ``sum(CASE WHEN
    condition THEN 1 ELSE 0 END)``: equal to :func:`_count_plain`, and cheaper on DuckDB,
    which evaluates a ``CASE`` on the rows its condition selects instead of filling and
    casting every row (14 range checks over 2.7 million assessment rows, one thread:
    0.25 CPU-seconds against 0.57)."""
    return nw.when(condition).then(nw.lit(1, nw.Int64())).otherwise(nw.lit(0, nw.Int64())).sum()


def _count_plain(condition: nw.Expr) -> nw.Expr:
    """The rows where ``condition`` holds, as a filled and cast sum (the plain form of
    :func:`_count`, which ``tests/test_engine_validation.py`` holds it equal to)."""
    return condition.fill_null(False).cast(nw.Int64).sum()


def _counts(frame: Lazy) -> dict[str, int]:
    """The one row of an aggregate query, as counts (a null count is 0)."""
    rows = small_to_pandas(frame)
    if len(rows) != 1:  # pragma: no cover - every aggregate without groups is one row
        raise RuntimeError(f"an aggregate query returned {len(rows)} rows instead of one")
    row = rows.iloc[0]
    return {str(k): 0 if pd.isna(v) else int(v) for k, v in row.items()}


class _Batch:
    """The validation's counts, gathered and asked of the engine together.

    Every count the checks need is a one-row aggregate over some frame: a table's pass
    over its rows (the column checks, the instrument rules, the guard's filters), the
    rows repeating a key, the rows whose patient is unknown, the cohort findings.
    :meth:`ask` registers one (its aggregates and what to do with their counts);
    :meth:`run` sends them and hands each its counts. Polars and Spark get them as a
    single query, the one-row frames side by side (a cross join of one row with one row):
    one ``collect`` (one Spark action) instead of one per table, key, reference and
    finding. DuckDB gets them one by one: measured on 1,000,000 patients, the single
    query took the same CPU time but twice the wall time (DuckDB ran the cross join's
    branches one after the other instead of each on every thread), while a query costs
    DuckDB only milliseconds to start.

    A validation asks two batches: the aggregate pass of every table, whose counts settle
    the columns' expressions (:meth:`_Table.settle`), then the keys, references and
    findings on the settled expressions. Only checks that failed ask for more (the
    guard's candidate values). On DuckDB a smaller batch comes first
    (:meth:`_Table.ask_facts`, two queries per table): the facts that settle the columns
    before the pass is written (measured on 250,000 patients, 2.7 million assessment
    rows: the assessments' pass 11.5 CPU-seconds before, 6.2-7.1 after, the facts query
    0.5 s and the bounds, read from the Parquet statistics, about 0 s).
    """

    def __init__(self) -> None:
        self._frames: list[Lazy] = []
        self._then: list[tuple[dict[str, str], Callable[[dict[str, int]], None]]] = []

    def ask(
        self,
        frame: Lazy,
        aggregates: Mapping[str, nw.Expr],
        then: Callable[[dict[str, int]], None],
    ) -> None:
        """Count ``aggregates`` (one-row expressions) over ``frame``; :meth:`run` calls
        ``then`` with ``{alias: count}`` (a null count is 0)."""
        k = len(self._frames)
        names = {f"_q{k}_{j}": alias for j, alias in enumerate(aggregates)}
        exprs = [e.alias(n) for n, e in zip(names, aggregates.values(), strict=True)]
        self._frames.append(frame.select(*exprs))
        self._then.append((names, then))

    def run(self) -> None:
        """Send the registered counts (one query, or one per count on DuckDB) and hand
        each its counts."""
        if not self._frames:
            return
        if self._frames[0].implementation.is_duckdb():
            row: dict[str, int] = {}
            for frame in self._frames:
                row.update(_counts(frame))
        else:
            combined = functools.reduce(lambda a, b: a.join(b, how="cross"), self._frames)
            row = _counts(combined)
        then, self._frames, self._then = self._then, [], []
        for names, callback in then:
            callback({alias: row[name] for name, alias in names.items()})


# --------------------------------------------------------------------------- one table


class _Table:
    """One table in the engine: matched columns, typed and clean values, failures.

    Every per-row quantity is a narwhals expression over the columns as read (never a
    column of an intermediate projection, but for the cleaned text of a text column that
    converts to a number or a boolean, which ``raw`` adds as a column): ``typed(c)`` the
    value in the field's type, ``bad(c)`` the cell failed its type or a check,
    ``clean(c)`` the cell holds a value that passed them (the pandas path keeps it),
    ``value(c)`` that value or null. The
    expressions stay flat (a condition on the typed column, not a value wrapped in a
    value wrapped in a value), so an engine that inlines projections, as DuckDB does,
    evaluates each rule about as the hand-written SQL does; all per-row counts of a table
    are sums in one aggregate query (:meth:`ask`, sent with the other counts by :class:`_Batch`).
    """

    aggregates: dict[str, nw.Expr]
    pending: dict[str, tuple[str, str, str]]
    counts: dict[str, int]
    n: int

    def __init__(self, table: str, frame: Lazy, missing: Sequence[str]) -> None:
        self.table = table
        self.validator = validator = _table_validator(table)
        self.missing = list(missing)
        names = column_names(frame)
        schema = frame.collect_schema()
        _, self.notes = _match_columns(table, pd.DataFrame(columns=names))
        fields = validator.fields
        strip = _strip_if_needed if frame.implementation.is_duckdb() else None
        by_key = {normalise_name(n): n for n in fields}
        self.source: dict[str, str] = {}  # matched name -> column as read
        for column in names:
            target = column if column in fields else by_key.get(normalise_name(column), column)
            self.source.setdefault(target, column)
        self.extras = [t for t in self.source if t not in fields]
        #: the columns as read and their types (``raw`` adds the converted texts)
        self.read_schema = schema
        # A text column of a number, integer or boolean field: its cleaned text (stripped,
        # the missing tokens null) is a column of ``raw`` that the field's expressions
        # read. Written into each of them it was repeated dozens of times over: a range
        # check of an integer stored as text grew to 16,600 expression nodes, and a
        # DuckDB validation of a 60-patient folder with such columns took 6.3 s (1.4 s
        # with the column).
        texts: dict[str, str] = {}
        for name, f in fields.items():
            column = self.source.get(name)
            if column is not None and f.get("type") in _CONVERTED and _is_text(schema[column]):
                texts[name] = _unused_name(f"_text_{name}", names)
        if texts:
            frame = frame.with_columns(
                **{
                    helper: _clean_text(_stripped(self.source[name], strip), missing)
                    for name, helper in texts.items()
                }
            )
        self.raw = frame
        self.fields = {
            name: _Field(
                f, schema[self.source[name]], self.source[name], missing, strip, texts.get(name)
            )
            for name, f in fields.items()
            if name in self.source
        }
        self.results: list[tuple[str, str, int, str]] = []  # column, check, rows, severity
        self.aggregates = {"__rows__": nw.len()}
        self.pending = {}
        self._passes: dict[str, list[nw.Expr]] = {}  # column checks, on ``plain``
        self.scorable: nw.Expr | None = None  # set by _assessment_rules
        #: instrument -> a row of it is scorable (with its rows: ``scorable`` on them)
        self.scorable_of: dict[str, nw.Expr] = {}
        self.frame = frame  # the frame the aggregate pass reads (stages added to it)
        self.staged: dict[str, str] = {}  # column -> its clean flag in ``frame``
        self.rows: dict[str, nw.Expr] = {}  # instrument -> its rows, in ``frame``
        self.after_pass: list[Callable[[], None]] = []  # run once the counts are known
        #: the facts counted before the pass (:meth:`ask_facts`, DuckDB); None: not asked
        self.early: dict[str, int] | None = None
        #: text columns (as read) where no value has whitespace at an end (known early)
        self.unpadded: set[str] = set()

    # -- expressions
    def typed(self, name: str) -> nw.Expr:
        """The value of ``name`` in its field's type (null where missing or unconvertible)."""
        return self.fields[name].typed

    def plain(self, name: str) -> nw.Expr:
        """The typed value of ``name`` where it is clean (see :class:`_Field`)."""
        return self.fields[name].plain

    def type_ok(self, name: str) -> nw.Expr:
        """The cell is present and of its field's type (never null)."""
        f = self.fields[name]
        if f.never_bad:
            return f.present.fill_null(False)
        return (f.present & ~f.type_bad.fill_null(False)).fill_null(False)

    def clean(self, name: str) -> nw.Expr:
        """The cell holds a value that passed its type, its column's checks and (for
        assessments) its instrument's rules (never null); where it holds, ``plain`` is the
        value."""
        if name not in self.fields:
            return nw.lit(False)
        if name in self.staged:
            return nw.col(self.staged[name])
        ok = self.type_ok(name)
        passes = [p.fill_null(True) for p in self._passes.get(name, [])]
        return nw.all_horizontal(ok, *passes, ignore_nulls=True) if passes else ok

    def filled(self, name: str) -> nw.Expr:
        """The cell holds a value, convertible or not (not missing; never null): where
        it holds, :meth:`bad` is the negation of :meth:`clean` before the instrument
        rules."""
        f = self.fields[name]
        if f.filled is not None:
            return f.filled
        if f.never_bad:
            return f.present.fill_null(False)
        return f.present.fill_null(False) | f.type_bad.fill_null(False)

    def bad(self, name: str) -> nw.Expr:
        """The cell failed its type or a check of its column (never null)."""
        if name not in self.fields:
            return nw.lit(False)
        f = self.fields[name]
        failed = [
            f.present.fill_null(False) & ~p.fill_null(True) for p in self._passes.get(name, [])
        ]
        if not f.never_bad:
            failed.insert(0, f.type_bad.fill_null(False))
        if not failed:
            return nw.lit(False)
        return nw.any_horizontal(*failed, ignore_nulls=True).fill_null(False)

    def value(self, name: str) -> nw.Expr:
        """The clean value of ``name`` (null where missing or failed): the pandas path's
        validated column."""
        return nw.when(self.clean(name)).then(self.plain(name).cast(self.fields[name].dtype))

    def typed_frame(self) -> Lazy:
        """The typed table (as the pandas path returns it): schema columns, then extras."""
        columns = []
        for name, f in self.validator.fields.items():
            expr = self.fields[name].typed if name in self.fields else nw.lit(None)
            columns.append(expr.cast(_field_dtype(f)).alias(name))
        columns += [nw.col(self.source[e]).alias(e) for e in self.extras]
        return self.raw.select(*columns)

    def checked(self) -> None:
        """Register the per-column checks (type, constraints, required values) as counts
        and set each column's ``bad`` condition."""
        for name, f in self.fields.items():
            self.count(f"_type_{name}", f.type_bad, name, f"type {f.type}")
            if self.early is not None:  # its facts are known: settled before the pass
                continue
            for fact, expr in f.facts().items():
                self.aggregates[f"_fact_{fact}_{name}"] = expr
        for name, column in self.validator.pandera.columns.items():
            if name not in self.fields:
                continue
            f = self.fields[name]
            passes = []
            for k, check in enumerate(column.checks):
                label = self.validator.labels[(name, k)]
                passing = _check_expr(check, f.plain)
                self.count(f"_check_{name}_{k}", self.type_ok(name) & ~passing, name, label)
                passes.append(passing)
            if not column.nullable:
                missing = ~f.present
                if not f.never_bad:
                    missing = missing & ~f.type_bad.fill_null(False)
                self.count(f"_null_{name}", missing, name, "not_null")
            self._passes[name] = passes

    def count(
        self, alias: str, condition: nw.Expr, column: str, check: str, severity: str = "error"
    ) -> None:
        """Count the rows where ``condition`` holds in the table's single aggregate pass."""
        self.aggregates[alias] = _count(condition)
        self.pending[alias] = (column, check, severity)

    def ask_facts(self, batch: _Batch) -> None:
        """Ask, before the pass, what settles the columns' expressions (DuckDB): the
        values with whitespace at an end of every text column and the missing-token
        count of every text field, in one query, and the smallest and largest value of
        every integer column of a number field, in another (which DuckDB answers from the
        Parquet statistics without reading the values). :meth:`_facts_counted` then
        settles each column before the pass is written, so the pass itself compares
        stored values where nothing needs converting, as the SQL does."""
        schema = self.read_schema
        facts: dict[str, nw.Expr] = {}
        for column in schema.names():
            if _is_text(schema[column]):
                text = nw.col(column).cast(nw.String)
                facts[f"_edge_{column}"] = _count(_ends_in_space(text))
        for name, f in self.fields.items():
            if _is_text(f.stored) and f.type == "string":
                text = nw.col(f.column).cast(nw.String)
                facts[f"_token_{name}"] = _count(_is_token(text, f.missing))
        bounds: dict[str, nw.Expr] = {}
        for name, f in self.fields.items():
            if f.type in ("integer", "number") and f.stored.is_integer():
                bounds[f"_min_{name}"] = nw.col(f.column).min()
                bounds[f"_max_{name}"] = nw.col(f.column).max()
        early: dict[str, int] = {}
        self.early = early
        for aggregates in (facts, bounds):
            if aggregates:
                batch.ask(self.raw, aggregates, early.update)

    def settle_early(self) -> None:
        """After :meth:`ask_facts`: each column's expressions as simple as its facts
        allow (:meth:`_Field.settle`), before the pass is written."""
        counts = self.early
        assert counts is not None, "ask_facts comes first"
        schema = self.read_schema
        self.unpadded = {
            c for c in schema.names() if _is_text(schema[c]) and not counts[f"_edge_{c}"]
        }
        for name, f in self.fields.items():
            facts: dict[str, int] = {}
            if f"_token_{name}" in counts:
                facts = {"edge": counts[f"_edge_{f.column}"], "token": counts[f"_token_{name}"]}
            too_big = 0
            if f"_min_{name}" in counts:  # pandas' bound: |value| < 2**53 (type integer)
                low, high = counts[f"_min_{name}"], counts[f"_max_{name}"]
                too_big = int(low <= -(2**53) or high >= 2**53)
            f.settle(facts, too_big)

    def ask(self, batch: _Batch) -> None:
        """Ask for the aggregate pass (every count registered); its counts settle the
        columns' expressions (:meth:`settle`) for the queries after it."""
        batch.ask(self.frame, self.aggregates, self._counted)

    def ask_keys(self, batch: _Batch) -> None:
        """Ask for the rows repeating a key (after the aggregate pass)."""
        for key in self.validator.unique_keys:
            if not all(c in self.fields for c in key):
                continue
            complete = self.raw.filter(
                nw.all_horizontal(*[self.type_ok(c) for c in key], ignore_nulls=True)
            ).select(*[self.plain(c).alias(c) for c in key])
            dup = complete.group_by(*key).agg(nw.len().alias("_n")).filter(nw.col("_n") > 1)
            batch.ask(dup, {"n": nw.col("_n").sum()}, functools.partial(self._repeated, key))

    def _counted(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.n = counts["__rows__"]
        for alias, (column, check, severity) in self.pending.items():
            if counts[alias]:
                self.add(column, check, counts[alias], severity)
        for name in self.validator.required:
            if name not in self.fields:
                self.add(name, "required_column", self.n)
        self.settle()

    def settle(self) -> None:
        """After the aggregate pass: each column's expressions made as simple as its
        counts allow (:meth:`_Field.settle`); a column whose checks no cell failed keeps
        ``clean`` equal to ``type_ok`` without re-evaluating the checks."""
        for name, f in self.fields.items():
            prefix = "_fact_"
            facts = {
                k: self.counts[f"{prefix}{k}_{name}"]
                for k in ("edge", "token")
                if f"{prefix}{k}_{name}" in self.counts
            }
            f.settle(facts, self.counts[f"_type_{name}"])
            passes = self._passes.get(name, [])
            if passes and not any(self.counts[f"_check_{name}_{k}"] for k in range(len(passes))):
                self._passes[name] = []
        for settled in self.after_pass:
            settled()

    def _repeated(self, key: Sequence[str], counts: dict[str, int]) -> None:
        if counts["n"]:
            self.add(", ".join(key), "unique " + "+".join(key), counts["n"])

    def add(self, column: str, check: str, n: int, severity: str = "error") -> None:
        self.results.append((column, check, n, severity))


# --------------------------------------------------------------------------- table rules


def _rows_of(t: _Table, instrument: str) -> nw.Expr:
    """The rows of ``instrument`` (a clean instrument code equal to it; never null)."""
    if "instrument" not in t.fields:
        return nw.lit(False)
    if instrument in t.rows:
        return t.rows[instrument]
    same = (t.plain("instrument") == instrument).fill_null(False)
    field = t.fields["instrument"]
    checks = t.validator.pandera.columns["instrument"].checks
    if field.never_bad and field.type == "string" and instrument not in t.missing:
        if all(
            c.name == "isin" and instrument in set((c.statistics or {})["allowed_values"])
            for c in checks
        ):  # the code itself passes every check: equal to it is enough
            return same
    return same & t.clean("instrument")


def _assessment_rules(t: _Table) -> None:
    """The instrument rules of ``_AssessmentRules`` (errors and the unscorable finding).

    A cell an instrument rule flags is missing afterwards (as in pandas) and bad for the
    cross-field rules. Computed in stages of boolean columns (the clean cells, the rows of
    each instrument, the flags, the cells left, per row the items answered and their sum,
    the rule outcomes) over the stored values, so that each query refers to a flag
    computed once rather than to a value wrapped in conditions that the engine would
    inline into every rule. Sets ``t.frame`` to the last stage (``_scorable``: the row
    has a total or enough items, and ``_rows_<instrument>``) for the findings.
    """
    present = set(t.fields)
    if "instrument" not in present:
        return
    scoring = list(
        dict.fromkeys(
            c
            for i in INSTRUMENTS.values()
            for c in ["total", *i.item_columns, *i.unused_item_columns]
            if c in present
        )
    )
    # stage 1: the clean cells (type and column checks) and the rows of each instrument
    stage = t.frame.with_columns(
        *[t.clean(c).alias(f"_ok1_{c}") for c in scoring],
        *[_rows_of(t, i).alias(f"_rows_{i}") for i in INSTRUMENTS],
    )
    # stage 2: the flags of the instrument rules, on the values that passed the checks
    flags: dict[str, nw.Expr] = {}
    of: dict[str, list[str]] = {}
    for instrument in INSTRUMENTS.values():
        name = instrument.name
        rows = nw.col(f"_rows_{name}")
        for c in instrument.item_columns:
            if c in present:
                key = f"_f_{name}_{c}"
                over = nw.col(f"_ok1_{c}") & (t.plain(c) > instrument.item_max)
                flags[key] = (rows & over).fill_null(False)
                check = f"in_range {instrument.item_min}-{instrument.item_max} for {name}"
                t.count(key, nw.col(key), c, check)
                of.setdefault(c, []).append(key)
        for c in instrument.unused_item_columns:
            if c in present:
                key = f"_f_{name}_{c}"
                flags[key] = rows & nw.col(f"_ok1_{c}")
                t.count(key, nw.col(key), c, f"empty for {name}")
                of.setdefault(c, []).append(key)
        if "total" in present:
            key = f"_f_{name}_total"
            over = nw.col("_ok1_total") & (t.plain("total") > instrument.total_max)
            flags[key] = (rows & over).fill_null(False)
            check = f"in_range 0-{instrument.total_max} for {name}"
            t.count(key, nw.col(key), "total", check)
            of.setdefault("total", []).append(key)
    stage = stage.with_columns(**flags)
    # stage 3: cells flagged are missing (as in pandas), and bad for the cross-field rules
    left, bad = {}, {}
    for c in scoring:
        flagged = [nw.col(k) for k in of.get(c, [])]
        ok = nw.col(f"_ok1_{c}")
        if flagged:
            left[f"_ok_{c}"] = ok & ~nw.any_horizontal(*flagged, ignore_nulls=True)
        else:
            left[f"_ok_{c}"] = ok
        # failed its type or a check: filled and not clean in stage 1 (equal to
        # ``t.bad(c)``, without evaluating the type and the checks a second time)
        failed = t.filled(c) & ~ok
        bad[f"_bad_{c}"] = nw.any_horizontal(failed, *flagged, ignore_nulls=True)
    stage = stage.with_columns(**left, **bad)
    t.staged.update({c: f"_ok_{c}" for c in scoring})
    # stage 4: per instrument, items answered, their sum and whether the row may be judged
    per_row: dict[str, nw.Expr] = {}
    for instrument in INSTRUMENTS.values():
        name = instrument.name
        items = [c for c in instrument.item_columns if c in present]
        judged = [c for c in ["total", *instrument.item_columns, *instrument.unused_item_columns]]
        per_row[f"_ans_{name}"] = nw.sum_horizontal(
            *[nw.col(f"_ok_{c}").cast(nw.Int64) for c in items], nw.lit(0)
        )
        per_row[f"_sum_{name}"] = nw.sum_horizontal(
            *[
                nw.when(nw.col(f"_ok_{c}")).then(t.plain(c).cast(nw.Float64)).otherwise(0.0)
                for c in items
            ],
            nw.lit(0.0),
        )
        bads = [nw.col(f"_bad_{c}") for c in judged if c in present]
        per_row[f"_judged_{name}"] = nw.col(f"_rows_{name}") & ~nw.any_horizontal(
            *bads, nw.lit(False), ignore_nulls=True
        )
    stage = stage.with_columns(**per_row)
    # stage 5: the cross-field rules
    has_total = nw.col("_ok_total") if "total" in present else nw.lit(False)
    total = t.plain("total").cast(nw.Float64) if "total" in present else nw.lit(None)
    rules: dict[str, nw.Expr] = {}
    scorable = []
    for instrument in INSTRUMENTS.values():
        name = instrument.name
        answered, ok = nw.col(f"_ans_{name}"), nw.col(f"_judged_{name}")
        key = f"_mismatch_{name}"
        rules[key] = (
            ok & (answered == instrument.n_items) & has_total & (total != nw.col(f"_sum_{name}"))
        )
        t.count(key, nw.col(key), "total", f"total_matches_items for {name}")
        needed = instrument.n_items - instrument.max_missing_items
        key = f"_unscorable_{name}"
        rules[key] = ok & ~has_total & (answered < needed)
        check = (
            f"unscorable for {name}: no total and fewer than {needed} of {instrument.n_items} items"
        )
        t.count(key, nw.col(key), "total", check, "finding")
        scorable.append(nw.col(f"_rows_{name}") & (has_total | (answered >= needed)))
    scorable_ = nw.any_horizontal(*scorable, ignore_nulls=True).fill_null(False)
    t.frame = stage.with_columns(**rules, _scorable=scorable_)
    t.scorable = nw.col("_scorable")
    t.rows = {i: nw.col(f"_rows_{i}") for i in INSTRUMENTS}
    _outside_schedule(t)

    def settled() -> None:
        """No instrument rule flagged a cell: the cells left are the clean cells, and the
        findings read ``scorable`` from them on the stored table, without the stages."""
        if any(t.counts[k] for k in flags):
            return
        t.frame, t.rows, t.staged = t.raw, {}, {}
        has_total = t.clean("total") if "total" in present else nw.lit(False)
        parts = []
        for instrument in INSTRUMENTS.values():
            items = [c for c in instrument.item_columns if c in present]
            answered = nw.sum_horizontal(*[t.clean(c).cast(nw.Int64) for c in items], nw.lit(0))
            needed = instrument.n_items - instrument.max_missing_items
            enough = has_total | (answered >= needed)
            t.scorable_of[instrument.name] = enough
            parts.append(_rows_of(t, instrument.name) & enough)
        t.scorable = nw.any_horizontal(*parts, ignore_nulls=True).fill_null(False)

    t.after_pass.append(settled)


def _windows(t: _Table, instrument: str) -> list[nw.Expr]:
    """Per visit of ``instrument``'s schedule: the clean study day falls in its window."""
    from analysis.endpoints import DEFAULT_SCHEDULE, _instrument_visits

    day = t.plain("study_day")
    visits = _instrument_visits(DEFAULT_SCHEDULE, INSTRUMENTS[instrument])
    return [v.contains(day).fill_null(False) for v in visits]


def _outside_schedule(t: _Table) -> None:
    """Assessments on a day outside every window of their instrument (a finding)."""
    if not {"instrument", "study_day"} <= set(t.fields):
        return
    for instrument in INSTRUMENTS.values():
        name = instrument.name
        rows = _rows_of(t, name) & t.clean("study_day")
        outside = rows & ~nw.any_horizontal(*_windows(t, name), ignore_nulls=True)
        t.count(f"_outside_{name}", outside, "study_day", f"outside_schedule for {name}", "finding")


def _session_rules(t: _Table) -> None:
    if not {"session_number", "study_day"} <= set(t.fields):
        return
    off = (t.clean("session_number") & (t.plain("session_number") == 1)) & (
        t.clean("study_day") & (t.plain("study_day") != 0)
    )
    t.count("_session_1", off, "study_day", "session_1_on_day_0")


def _adverse_event_rules(t: _Table, batch: _Batch) -> None:
    columns = [t.value(c).alias(c) for c in t.fields]
    columns += [nw.col(t.source[e]).alias(e) for e in t.extras]
    if not columns:
        return
    keys = [*t.fields, *t.extras]
    dup = (
        t.raw.select(*columns)
        .group_by(*keys, drop_null_keys=False)
        .agg(nw.len().alias("_n"))
        .filter(nw.col("_n") > 1)
    )

    def repeated(counts: dict[str, int]) -> None:
        if counts["n"]:
            t.add("(row)", "duplicate_row: every column repeated", counts["n"])

    batch.ask(dup, {"n": nw.col("_n").sum()}, repeated)


def _foreign_keys(t: _Table, parents: Mapping[str, _Table], batch: _Batch) -> None:
    """Rows whose (clean) key is absent from the referenced table's typed keys."""
    for fk in t.validator.foreign_keys:
        fields, ref = fk["fields"], fk["reference"]
        ref_table, ref_fields = ref.get("resource") or t.table, ref["fields"]
        fields = [fields] if isinstance(fields, str) else list(fields)
        ref_fields = [ref_fields] if isinstance(ref_fields, str) else list(ref_fields)
        parent = parents.get(ref_table)
        if parent is None or not set(ref_fields) <= set(parent.fields):
            continue
        if not set(fields) <= set(t.fields):
            continue
        child = t.raw.filter(
            nw.all_horizontal(*[t.clean(c) for c in fields], ignore_nulls=True)
        ).select(*[t.plain(c).alias(k) for c, k in zip(fields, ref_fields, strict=True)])
        known = parent.raw.filter(
            nw.all_horizontal(*[parent.type_ok(k) for k in ref_fields], ignore_nulls=True)
        ).select(
            *[parent.plain(k).alias(k) for k in ref_fields]
        )  # no need to make it unique: an anti join only asks whether a key is there
        unknown = child.join(known, on=list(ref_fields), how="anti")
        check = f"foreign_key {ref_table}.{'+'.join(ref_fields)}"

        def found(
            counts: dict[str, int], column: str = ", ".join(fields), check: str = check
        ) -> None:
            if counts["n"]:
                t.add(column, check, counts["n"])

        batch.ask(unknown, {"n": nw.len()}, found)


def _cohort_findings(tables: Mapping[str, _Table], batch: _Batch) -> None:
    """The findings of ``schema._cohort_findings``, counted in the engine."""
    if "assessments" not in tables or "patients" not in tables:
        return
    a, p = tables["assessments"], tables["patients"]
    if not {"patient_id", "instrument", "study_day"} <= set(a.fields):
        return
    if "patient_id" not in p.fields:
        return
    scorable = a.scorable if a.scorable is not None else nw.lit(False)
    flags: dict[str, nw.Expr] = {}
    for instrument in INSTRUMENTS.values():
        name = instrument.name
        rows = _rows_of(a, name) & a.clean("study_day")
        windows = _windows(a, name)
        flags[f"every_{name}"] = rows
        # on the rows of one instrument, ``scorable`` is that instrument's part of it
        # (the instruments' rows are disjoint): after the pass the findings evaluate one
        # instrument's items per flag instead of every instrument's (``scorable_of``)
        enough = a.scorable_of.get(name, scorable)
        flags[f"base_{name}"] = rows & enough & windows[0]
        flags[f"post_{name}"] = rows & enough & nw.any_horizontal(*windows[1:], ignore_nulls=True)
    per_patient = (
        a.frame.filter(a.clean("patient_id"))
        .select(
            a.plain("patient_id").alias("patient_id"),
            a.value("study_day").alias("_last"),
            *[f.fill_null(False).cast(nw.Int64).alias(k) for k, f in flags.items()],
        )
        .group_by("patient_id")
        .agg(nw.col("_last").max(), *[nw.col(k).max() for k in flags])
    )
    patients = (
        p.raw.filter(p.clean("patient_id"))
        .select(p.plain("patient_id").alias("patient_id"))
        .group_by("patient_id")  # distinct (a hash aggregate, not a window)
        .agg(nw.len().alias("_rows"))
        .select("patient_id")
    )
    joined = patients.join(per_patient, on="patient_id", how="left")
    aggregates = {"no_assessments": _count(nw.col(f"every_{next(iter(INSTRUMENTS))}").is_null())}
    for name in INSTRUMENTS:
        every, base, post = (nw.col(f"{k}_{name}").fill_null(0) for k in ("every", "base", "post"))
        aggregates[f"no_baseline for {name}"] = _count((every == 1) & (base == 0))
        aggregates[f"no_post_baseline for {name}"] = _count((base == 1) & (post == 0))
    order = [f"{k} for {n}" for n in INSTRUMENTS for k in ("no_baseline", "no_post_baseline")]

    def found(counts: dict[str, int]) -> None:
        for check in [*order, "no_assessments"]:
            if counts[check]:
                p.add("patient_id", check, counts[check], "finding")

    batch.ask(joined, aggregates, found)
    last = (  # from the stored values alone, not through the rule stages
        a.raw.filter(a.clean("patient_id"))
        .select(a.plain("patient_id").alias("patient_id"), a.value("study_day").alias("_last"))
        .group_by("patient_id")
        .agg(nw.col("_last").max())
    )
    for table in ("sessions", "adverse_events"):
        if table not in tables:
            continue
        t = tables[table]
        if not {"patient_id", "study_day"} <= set(t.fields):
            continue
        events = t.raw.filter(t.clean("patient_id")).select(
            t.plain("patient_id").alias("patient_id"), t.value("study_day").alias("_day")
        )
        after = events.join(last, on="patient_id", how="left")

        def later(counts: dict[str, int], t: _Table = t) -> None:
            if counts["n"]:
                t.add("study_day", "after_last_assessment", counts["n"], "finding")

        batch.ask(after, {"n": _count(nw.col("_day") > nw.col("_last"))}, later)


# --------------------------------------------------------------------------- the guard


def _strip_lookarounds(pattern: str) -> str:
    """``pattern`` without lookarounds and with ``\\1`` widened to its group: a regular
    expression RE2, Rust's regex and Java all accept, matching a superset."""
    out: list[str] = []
    i, n = 0, len(pattern)
    first_group: str | None = None

    def class_end(j: int) -> int:
        j += 1
        if j < n and pattern[j] == "^":
            j += 1
        if j < n and pattern[j] == "]":
            j += 1
        while j < n and pattern[j] != "]":
            j += 2 if pattern[j] == "\\" else 1
        return j + 1

    def group_end(j: int) -> int:
        depth = 0
        while j < n:
            c = pattern[j]
            if c == "\\":
                j += 2
                continue
            if c == "[":
                j = class_end(j)
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return j

    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1 : i + 2] == "1" and first_group is not None:
                out.append(first_group)
            else:
                out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            j = class_end(i)
            out.append(pattern[i:j])
            i = j
        elif pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            i = group_end(i)
        else:
            if c == "(" and not pattern.startswith("(?", i) and first_group is None:
                first_group = pattern[i : group_end(i)]  # the guard's groups: [- ], [-/.]
            out.append(c)
            i += 1
    return "".join(out)


def _engine_regex(pattern: re.Pattern[str]) -> str:
    body = _strip_lookarounds(pattern.pattern)
    return f"(?i:{body})" if pattern.flags & re.IGNORECASE else f"(?:{body})"


def _found(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.search(value) is not None


def _guard_patterns(column: str) -> tuple[str, list[tuple[str, Callable[[str], bool]]]]:
    """The superset filter of a text column and the exact checks (check, test) behind it."""
    from analysis import deid

    is_code = deid._name_tokens(column)[-1:] == ["id"]
    checks = []
    for check, (_, pattern) in deid._VALUE_PATTERNS.items():
        if check == "zip_code_value" and is_code:
            pattern = deid._ZIP_IN_CODES
        checks.append((check, pattern))
    names = "|".join(sorted(deid._GIVEN_NAMES, key=len, reverse=True))
    superset = "|".join([*(_engine_regex(p) for _, p in checks), f"(?i:{names})"])
    tests: list[tuple[str, Callable[[str], bool]]] = [
        (check, functools.partial(_found, p)) for check, p in checks
    ]
    tests.append((deid._NAME_VALUE_CHECK, deid._has_given_name))
    return superset, tests


def _kept(text: nw.Expr) -> nw.Expr:
    return text


#: One check of the guard: ``(kind, column label, check or column, count alias)``; kind
#: ``rows`` (the whole column), ``count`` (an aggregate) or ``text`` (candidates to test).
_GuardStep = tuple[Literal["rows", "count", "text"], str, str, str | None]


def _guard_plan(t: _Table, frame: Lazy) -> list[_GuardStep]:
    """The guard's checks of a table: names and dtypes now, value counts registered in
    the table's aggregate pass (``t.aggregates``); returns the plan for :func:`_guard_finish`."""
    from analysis import deid

    schema = frame.collect_schema()
    _stripper = _strip_if_needed if frame.implementation.is_duckdb() else _strip
    plan: list[_GuardStep] = []
    for position, column in enumerate(schema.names()):
        label = deid._column_label(column, position)
        dtype = schema[column]
        # no value of the column has whitespace at an end (counted before the pass):
        # stripping changes nothing, so the filter reads the stored text
        strip = _kept if column in t.unpadded else _stripper
        if deid.is_identifier_column(column):
            plan.append(("rows", label, deid._NAME_CHECK, None))
        temporal = dtype in (nw.Datetime, nw.Time) or isinstance(dtype, nw.Datetime)
        if temporal:
            plan.append(("rows", label, deid._TEMPORAL_CHECK, None))
        elif dtype == nw.Date:  # pandas reads a date column as text "YYYY-MM-DD"
            alias = f"_guard_date_{position}"
            t.aggregates[alias] = _count(~nw.col(column).is_null())
            plan.append(("count", label, "date_value", alias))
        elif _is_text(dtype):
            superset, _ = _guard_patterns(column)
            alias = f"_guard_text_{position}"
            text = strip(nw.col(column).cast(nw.String))
            t.aggregates[alias] = _count(text.str.contains(superset))
            plan.append(("text", label, column, alias))
        if deid._is_age_in_years(column) and not temporal:
            if _is_text(dtype):
                text = strip(nw.col(column).cast(nw.String))
                age = nw.when(text.str.contains(_NUMBER)).then(text).cast(nw.Float64)
            elif dtype.is_numeric():
                age = nw.col(column).cast(nw.Float64)
            else:
                continue
            alias = f"_guard_age_{position}"
            t.aggregates[alias] = _count(age > deid.AGE_TOP_CODE)
            plan.append(("count", label, deid._AGE_CHECK, alias))
    return plan


def _guard_finish(t: _Table, frame: Lazy, plan: list[_GuardStep]) -> list[Entry]:
    """The guard's failures ``(table, column, check, rows, "error")`` from the counts;
    identifier-shaped candidates are checked exactly here (values never leave)."""
    out: list[Entry] = []
    for kind, label, check, alias in plan:
        if kind == "rows" or alias is None:
            out.append((t.table, label, check, t.n, "error"))
        elif kind == "count":
            if t.counts[alias]:
                out.append((t.table, label, check, t.counts[alias], "error"))
        elif t.counts[alias]:
            column = check
            superset, tests = _guard_patterns(column)
            text = nw.col(column).cast(nw.String).str.strip_chars()
            candidates = small_to_pandas(
                frame.select(text.alias("v"))
                .filter(nw.col("v").str.contains(superset))
                .group_by("v")
                .agg(nw.len().alias("n"))
            )
            values = candidates["v"].astype(str).tolist()
            sizes = candidates["n"].astype(int).to_numpy()
            for name, test in tests:
                hit = sum(int(n) for v, n in zip(values, sizes, strict=True) if test(v))
                if hit:
                    out.append((t.table, label, name, hit, "error"))
            del candidates, values  # the values never leave this function
    return out


# --------------------------------------------------------------------------- the report


def _report(entries: Sequence[Entry]) -> pd.DataFrame:
    """The counted failures in the report layout (``row``, ``line``, ``value`` empty)."""
    if not entries:
        return _empty_report()
    order = {t: k for k, t in enumerate(TABLES)}
    frame = pd.DataFrame(entries, columns=["table", "column", "check", "count", "severity"])
    frame = frame.assign(_order=frame["table"].map(order)).sort_values(
        ["_order", "column", "check"], kind="stable"
    )
    out = frame.assign(row=None, line=None, value=None)[list(_empty_report().columns)]
    return out.astype(_empty_report().dtypes.to_dict()).reset_index(drop=True)


def validate_engine_cohort(
    natives: Mapping[str, IntoLazyFrame],
    *,
    missing_values: Sequence[str] | None = None,
    problems: Sequence[FileProblem] = (),
) -> ValidationReport:
    """The :class:`~analysis.schema.ValidationReport` of lazy tables, computed in their
    engine (aggregated: one row per table, column and check, with its row count).

    ``.tables`` holds the typed lazy frames (narwhals-native: DuckDB relations, Polars
    LazyFrames or Spark DataFrames).
    """
    if problems:
        return _problem_report(list(problems))
    missing = list(MISSING_VALUES if missing_values is None else missing_values)
    frames: dict[str, Lazy] = {t: nw.from_native(natives[t]) for t in TABLES if t in natives}
    for table, frame in frames.items():
        nested = [
            c for c, d in frame.collect_schema().items() if d in (nw.List, nw.Struct, nw.Array)
        ]
        if nested:
            problem = FileProblem(
                table,
                "nested_column",
                "list, struct or map column(s) "
                + ", ".join(f"`{n}`" for n in nested)
                + " hold several values per cell",
                "write one plain value per cell (one row per assessment, session or event)",
            )
            return _problem_report([problem])
    checked: dict[str, _Table] = {}
    plans: dict[str, list[_GuardStep]] = {}
    tables = {table: _Table(table, frame, missing) for table, frame in frames.items()}
    early = _Batch()  # DuckDB: the facts that settle the columns, before the pass
    for t in tables.values():
        if t.raw.implementation.is_duckdb():
            t.ask_facts(early)
    early.run()
    batch = _Batch()  # the aggregate pass of every table, in one query
    for table, frame in frames.items():
        t = tables[table]
        if t.early is not None:
            t.settle_early()
        t.checked()
        if table == "assessments":
            _assessment_rules(t)
        elif table == "sessions":
            _session_rules(t)
        plans[table] = _guard_plan(t, frame)
        t.ask(batch)
        checked[table] = t
    batch.run()  # the per-row counts; each column's expressions settled by them
    for table, t in checked.items():  # the keys, references and findings, in one query
        t.ask_keys(batch)
        if table == "adverse_events":
            _adverse_event_rules(t, batch)
    for t in checked.values():
        _foreign_keys(t, checked, batch)
    _cohort_findings(checked, batch)
    batch.run()
    entries: list[Entry] = []
    for table, t in checked.items():
        for note in t.notes:
            column, check = str(note["column"].iloc[0]), str(note["check"].iloc[0])
            entries.append((table, column, check, t.n, str(note["severity"].iloc[0])))
        entries += [(table, c, k, n, s) for c, k, n, s in t.results]
    for table, t in checked.items():
        entries += _guard_finish(t, frames[table], plans[table])
    report = _report(entries)
    is_error = (report["severity"] == "error").to_numpy(dtype=bool)
    errors = report[is_error].reset_index(drop=True)
    failures = errors[list(FAILURE_COLUMNS)].copy()
    return ValidationReport(
        errors=errors,
        findings=report[~is_error].reset_index(drop=True),
        tables={name: nw.to_native(t.typed_frame()) for name, t in checked.items()},
        failures=failures,
        collected=tuple(checked),
        deidentification=bool(errors["check"].isin(list(IDENTIFIER_CHECKS)).any()),
    )


def summary_message(
    errors: pd.DataFrame, title: str, hints: Mapping[str, str], max_lines: int = 40
) -> str:
    """The message of the pandas path's ``DataValidationError``, from aggregated counts."""
    order = {t: k for k, t in enumerate(TABLES)}
    groups = (
        errors.assign(_order=errors["table"].map(order).fillna(len(order)))
        .groupby(["_order", "table", "column", "check"], sort=True, dropna=False)["count"]
        .sum()
        .reset_index()
    )
    lines = [
        f"{title}: {len(groups)} problem(s) in {groups['table'].nunique()} table(s); "
        "nothing was loaded."
    ]
    shown = groups.head(max_lines)
    for table, column, check, count in zip(
        shown["table"], shown["column"], shown["check"], shown["count"], strict=True
    ):
        where = f"{table}.{column}"
        if check == "required_column" or str(check).startswith(
            ("identifier_name", "temporal_dtype", "duplicate_column")
        ):
            lines.append(f"  {where}: column fails `{check}`")
        else:
            rows = "row fails" if int(count) == 1 else "rows fail"
            lines.append(f"  {where}: {int(count)} {rows} `{check}`")
    if len(groups) > max_lines:
        lines.append(f"  ... and {len(groups) - max_lines} more (see `.report`)")
    kinds = dict.fromkeys(_check_kind(str(c)) for c in groups["check"])
    lines.append("How to fix:")
    for kind in kinds:
        lines.append(f"  - {kind}: {hints.get(kind, 'see data_schema/README.md for the rule')}")
    lines.append(
        "Counts are rows per table, column and check (the engine validates without "
        "listing rows); data_schema/README.md describes every column."
    )
    return "\n".join(lines)


def raise_for_errors(report: ValidationReport) -> None:
    """Raise the pandas path's error (or the guard's) with the aggregated counts."""
    if report.ok:
        return
    if report.errors["column"].eq("(file)").any():
        report.raise_for_errors()
    error = DeidentificationError if report.deidentification else DataValidationError
    message = summary_message(report.errors, error.title, error.hints)
    raise error(report.failures, message, report=report)


def load_engine_cohort(
    path: str | Path,
    engine: str,
    *,
    strict: bool = False,
    missing_values: Sequence[str] | None = None,
    memory_limit: str | None = None,
    spark: Any = None,
) -> Cohort:
    """:func:`analysis.schema.load_cohort` for ``engine`` in ``duckdb, polars, spark``."""
    natives, problems = open_tables(path, engine, memory_limit=memory_limit, spark=spark)
    report = validate_engine_cohort(natives, missing_values=missing_values, problems=problems)
    if strict:
        report = report.strict()
    raise_for_errors(report)
    typed = dict(report.tables)
    for table in OPTIONAL_TABLES:
        if table not in typed:
            typed[table] = _empty_like(typed["patients"], table)
    return Cohort(**typed, findings=report.findings, collected=report.collected)


def _empty_like(native: IntoLazyFrameT, table: str) -> IntoLazyFrameT:
    """An empty lazy table of ``table``'s schema columns, in the engine of ``native``."""
    frame = nw.from_native(native)
    columns = [
        nw.lit(None).cast(_field_dtype(f)).alias(name)
        for name, f in _table_validator(table).fields.items()
    ]
    return nw.to_native(frame.select(*columns).filter(nw.lit(False)))
