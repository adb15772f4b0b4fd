"""The checks of a table and the report they fill, shared by every validation path.

:mod:`analysis.schema` (tables in pandas) and :mod:`analysis._engine_validation` (tables
in DuckDB, Polars or Spark) validate with the same rules, built here once from the Table
Schema files of ``data_schema/``: the column matching (case and spaces ignored, renamings
and unknown columns as findings), the typed conversion, the pandera checks and their
labels, the keys, and :class:`ValidationReport` with the report of files that could not
be read. Both paths import this module; neither imports the other, so the engine
validation can be read and tested without the pandas loader.

The data layer below it (:mod:`analysis.cohort`, :mod:`analysis.deid`,
:mod:`analysis.readers`) does not import it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.cohort import (
    FAILURE_COLUMNS,
    TABLES,
    DataValidationError,
    _check_kind,
    _empty_failures,
    _empty_report,
    read_schema,
)
from analysis.deid import IDENTIFIER_CHECKS, DeidentificationError
from analysis.readers import FileProblem, normalise_name

if TYPE_CHECKING:
    from pandera.api.checks import Check
    from pandera.api.pandas.container import DataFrameSchema

__all__ = ["ValidationReport"]

#: The text of a whole number that Python's ``int`` and ``pandas.to_numeric`` read alike,
#: exactly as a float (at most 15 digits).
_WHOLE = re.compile(r"[+-]?[0-9]{1,15}")

_DTYPES = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}


def _showable(table: str, column: str, check: str) -> bool:
    """Whether values of a check may be shown: only those that cannot identify anyone.

    Numbers, yes/no and coded values of the schema are shown; identifier checks, keys,
    patient, site and rater codes, adverse-event terms, free text and extra columns never.
    """
    if check in IDENTIFIER_CHECKS or _check_kind(check) in ("unique", "foreign_key"):
        return False
    if _check_kind(check) == "column_renamed":
        return True
    if table not in TABLES:
        return False
    f = _table_validator(table).fields.get(column)
    if f is None or column.endswith("_id"):
        return False
    return f.get("type") in ("integer", "number", "boolean") or "enum" in f.get("constraints", {})


@dataclass(frozen=True)
class ValidationReport:
    """What validation found: the errors that refuse the data and the findings that do not.

    The rule: **refuse only what makes the numbers wrong or the data unsafe; account for
    everything else.** Errors are identifiers, wrong types, out-of-range values, a total
    that contradicts complete items, duplicate keys or rows, unknown patients, missing
    required columns and files that cannot be read faithfully. Findings load and are
    listed: unscorable questionnaires (too many items missing and no total), assessments
    outside every visit window, patients without a baseline or without a post-baseline
    assessment, sessions or adverse events after the last assessment, renamed or unknown
    columns and how a file was read. :func:`analysis.endpoints.endpoint_accounting`
    accounts for every assessment row (reason ``unscorable``, ``outside_schedule``,
    ``no_baseline``, ...).

    Attributes
    ----------
    errors, findings : DataFrame
        One row per failing cell, row or column, with :data:`~analysis.schema.REPORT_COLUMNS`: ``table``;
        ``row`` (0-based position in the table, NA for a whole column or file);
        ``line`` (the line number a spreadsheet shows, header = line 1); ``column``;
        ``check``; ``count`` (rows concerned: 1 for a cell or row, the table's rows for a
        column); ``severity`` (``"error"`` or ``"finding"``); ``value`` (only for checks
        and columns that cannot identify anyone, else missing).
    tables : dict of str to DataFrame
        The typed tables (as :func:`~analysis.schema.validate` returns them).
    failures : DataFrame
        The errors in the ``DataValidationError.failures`` layout (values kept except
        where the de-identification guard flagged the column).
    collected : tuple of str
        The tables supplied.

    Examples
    --------
    >>> from analysis import validate_cohort
    >>> patients = pd.DataFrame({"patient_id": ["P1"], "route": ["iv"]})
    >>> assessments = pd.DataFrame({"patient_id": "P1", "instrument": "GAD7",
    ...                             "study_day": [0, 7, 28, 400], "total": [15, None, 9, 5]})
    >>> report = validate_cohort({"patients": patients, "assessments": assessments})
    >>> report.ok, len(report.errors)
    (True, 0)
    >>> print(report.findings[["row", "line", "column", "check", "value"]].to_string(index=False))
     row  line    column                                                     check value
       1     3     total unscorable for GAD7: no total and fewer than 6 of 7 items  <NA>
       3     5 study_day                                 outside_schedule for GAD7   400
    """

    errors: pd.DataFrame
    findings: pd.DataFrame
    tables: dict = field(default_factory=dict, repr=False)
    failures: pd.DataFrame = field(default_factory=_empty_failures, repr=False)
    collected: tuple[str, ...] = ()
    deidentification: bool = False

    @property
    def ok(self) -> bool:
        """True when there is no error (findings do not count)."""
        return self.errors.empty

    def strict(self) -> ValidationReport:
        """The report with every finding counted as an error (``strict=True``)."""
        moved = self.findings.assign(severity="error")
        errors = pd.concat([self.errors, moved], ignore_index=True) if len(moved) else self.errors
        failures = moved.loc[:, list(FAILURE_COLUMNS)].astype(self.failures.dtypes.to_dict())
        failures = pd.concat([self.failures, failures], ignore_index=True)
        return ValidationReport(
            errors.reset_index(drop=True),
            _empty_report(),
            self.tables,
            failures,
            self.collected,
            self.deidentification,
        )

    def raise_for_errors(self) -> None:
        """Raise :class:`DataValidationError` (or the de-identification error) if not ok."""
        if self.ok:
            return
        if self.deidentification:
            raise DeidentificationError(self.failures, report=self)
        message = None
        files = self.errors[self.errors["column"] == "(file)"]
        if len(files):
            message = _file_message(files)
        raise DataValidationError(self.failures, message, report=self)

    def describe(self, max_rows: int = 5) -> str:
        """The report as a data manager reads it: per check, count, lines and fix.

        Each failing check gets one line with the number of rows, the first ``max_rows``
        spreadsheet line numbers (header = line 1), the values where they cannot
        identify anyone, and the fix. Errors first, then findings.
        """
        out = []
        for title, frame in (("Errors", self.errors), ("Findings", self.findings)):
            if frame.empty:
                continue
            out.append(f"{title} ({'refused' if title == 'Errors' else 'loaded, accounted'}):")
            order = frame["table"].map({t: k for k, t in enumerate(TABLES)}).fillna(len(TABLES))
            groups = frame.assign(_order=order).groupby(
                ["_order", "table", "column", "check"], sort=True, dropna=False
            )
            for (_, table, column, check), group in groups:
                if column == "(file)" and title == "Errors":
                    out.append(f"  {check}")  # it names the file, the problem and the fix
                    continue
                lines = group["line"].dropna().astype(int).tolist()
                at = ""
                if lines:
                    more = ", ..." if len(lines) > max_rows else ""
                    label = "line" if len(lines) == 1 else "lines"
                    at = f" ({label} {', '.join(map(str, lines[:max_rows]))}{more})"
                if column == "(file)":  # how a file was read (blank rows: on which lines)
                    out.append(f"  {table} file: {check}{at}")
                    continue
                rows = group["row"].notna()
                n = int(group["count"].fillna(0).sum()) if not rows.any() else int(rows.sum())
                noun = "row" if n == 1 else "rows"
                text = f"  {table}.{column}: {n} {noun} `{check}`{at}"
                values = group["value"].dropna().astype(str)
                values = [v for v in dict.fromkeys(values) if v != ""]
                if values:
                    more = ", ..." if len(values) > max_rows else ""
                    text += f"; values: {', '.join(values[:max_rows])}{more}"
                out.append(text)
                hint = DataValidationError.hints.get(_check_kind(str(check)))
                if hint:
                    out.append(f"      fix: {hint}")
        if not out:
            return "No errors and no findings."
        return "\n".join(out)


def _file_message(files: pd.DataFrame) -> str:
    lines = [
        f"{DataValidationError.title}: {len(files)} file(s) could not be read faithfully; "
        "nothing was loaded."
    ]
    lines += [f"  {check}" for check in files["check"]]
    lines.append("data_schema/README.md describes the files and columns of a cohort folder.")
    return "\n".join(lines)


def _fail(
    table: str,
    rows: Sequence[int | None] | np.ndarray,
    column: str,
    check: str,
    values: object,
    severity: str = "error",
) -> pd.DataFrame:
    """Failures frame for ``rows`` (positions; ``[None]`` for the whole column)."""
    rows = np.asarray(rows, dtype=object)
    if not isinstance(values, pd.Series | pd.api.extensions.ExtensionArray | np.ndarray):
        values = [values] * len(rows)
    return pd.DataFrame(
        {
            "table": table,
            "row": pd.array(rows, dtype="Int64"),
            "column": column,
            "check": check,
            "value": pd.array(np.asarray(values, dtype=object), dtype="string"),
            "severity": severity,
        }
    )


def _as_text(values: pd.Series) -> np.ndarray:
    """Cells as strings (missing stays missing), for the ``value`` column."""
    cells = values.astype(object).to_numpy()
    out = cells.astype(str).astype(object)
    out[pd.isna(cells)] = None
    return out


class _Coercer:
    """Turn a raw column (CSV text or any dtype) into the field's nullable dtype.

    Works on the distinct values (``pd.factorize``), so a 2-million-row column costs one
    pass; returns the typed column and a mask of cells that could not be converted.
    """

    def __init__(self, field: dict, missing_values: set[str]) -> None:
        self.type = field.get("type", "string")
        self.dtype = _DTYPES.get(self.type, "string")
        self.missing = missing_values
        self.true = {str(v).strip().lower() for v in field.get("trueValues", ["true"])}
        self.false = {str(v).strip().lower() for v in field.get("falseValues", ["false"])}

    def __call__(
        self, raw: pd.Series, *, share: bool = False, fast: bool = True
    ) -> tuple[pd.Series, np.ndarray]:
        """The typed column and its cells that failed the type.

        ``fast`` (default) factorizes the column's object array rather than an object
        Series and reads whole-number text with ``int`` (see :meth:`_convert_numbers`);
        ``fast=False`` is the plain form it equals (``tests/test_validation_fast_paths.py``).
        """
        if pd.api.types.is_bool_dtype(raw.dtype) and self.type in ("integer", "number"):
            return pd.Series(pd.NA, index=raw.index, dtype=self.dtype), raw.notna().to_numpy()
        numeric = self.type in ("integer", "number")
        if numeric and pd.api.types.is_numeric_dtype(raw.dtype):
            numbers = raw.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            data, mask, bad = self._numbers(numbers)
            if share and self.type == "integer" and raw.dtype == "Int64" and not bad.any():
                return raw, bad  # already typed and valid: the same values, not a copy
            return pd.Series(self._array(data, mask), index=raw.index), bad
        if isinstance(raw.dtype, pd.CategoricalDtype):  # the distinct values are at hand
            codes = raw.cat.codes.to_numpy()
            uniques = raw.cat.categories.to_numpy(dtype=object)
        elif fast:  # the same values as the Series, without building one
            codes, uniques = pd.factorize(raw.to_numpy(dtype=object), use_na_sentinel=True)
        else:
            codes, uniques = pd.factorize(raw.astype(object), use_na_sentinel=True)
        if numeric:  # numpy on the distinct values, spread to the rows by their codes
            data, mask, bad = self._convert_numbers(list(uniques), fast=fast)
            data, mask = np.append(data, data.dtype.type(0)), np.append(mask, True)
            typed = pd.Series(self._array(data[codes], mask[codes]), index=raw.index)
            return typed, np.append(bad, False)[codes]
        converted, bad = self._convert(pd.Series(np.asarray(uniques, dtype=object)))
        converted = pd.Series([*converted, pd.NA], dtype=self.dtype).array
        bad = np.append(bad, False)
        typed = pd.Series(converted.take(codes), index=raw.index, dtype=self.dtype)
        return typed, bad[codes]

    def _array(self, data: np.ndarray, mask: np.ndarray) -> pd.api.extensions.ExtensionArray:
        """The ``Int64`` or ``Float64`` array of values ``data`` (missing where ``mask``)."""
        if self.type == "integer":
            return pd.arrays.IntegerArray(data, mask)
        return pd.arrays.FloatingArray(data, mask)

    def _numbers(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values, missing mask and failures of numbers (NaN = missing) for the field's type.

        A number that is not finite (or, for an integer, not whole or beyond 2**53) is a
        failure and becomes missing.
        """
        present = ~np.isnan(numbers)
        ok = np.isfinite(numbers)
        if self.type == "integer":
            ok &= (np.floor(numbers) == numbers) & (np.abs(numbers) < 2**53)
            data = np.where(ok, numbers, 0.0).round().astype(np.int64)
        else:
            data = np.where(ok, numbers, 0.0)
        return data, ~ok, present & ~ok

    def _convert_numbers(
        self, values: list, *, fast: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct non-missing values as numbers: strings stripped, missingValues -> NA.

        A value that is not a number (text that ``pandas.to_numeric`` does not read, a
        yes/no value) is a failure, unless it is one of the missing values. ``fast``
        (default): when every value is missing or the text of a whole number of at most
        15 digits (``_WHOLE``), Python's ``int`` reads them; ``fast=False`` always goes
        through ``pandas.to_numeric`` (``tests/test_validation_fast_paths.py`` holds the
        two equal).
        """
        text = [v.strip() if isinstance(v, str) else v for v in values]
        missing = np.array([isinstance(v, str) and v in self.missing for v in text], dtype=bool)
        is_bool = np.array([isinstance(v, bool | np.bool_) for v in text], dtype=bool)
        candidates = [None if m or b else v for v, m, b in zip(text, missing, is_bool, strict=True)]
        if fast and all(v is None or (type(v) is str and _WHOLE.fullmatch(v)) for v in candidates):
            # whole numbers of at most 15 digits (CSV text): exact as floats, the values
            # pandas.to_numeric reads, without its Series (about 0.3 ms a column)
            numbers = np.array([np.nan if v is None else int(v) for v in candidates], dtype=float)
        else:
            numbers = (
                pd.to_numeric(pd.Series(candidates, dtype=object), errors="coerce")
                .astype("Float64")
                .to_numpy(dtype=float, na_value=np.nan)
            )
        data, mask, _ = self._numbers(numbers)
        return data, mask, ~missing & mask

    def _convert(self, values: pd.Series) -> tuple[list, np.ndarray]:
        """Convert distinct non-missing text or yes/no values; strings are stripped."""
        text = [v.strip() if isinstance(v, str) else v for v in values]
        missing = np.array([isinstance(v, str) and v in self.missing for v in text], dtype=bool)
        if self.type == "boolean":
            out = [pd.NA if m else self._boolean(v) for v, m in zip(text, missing, strict=True)]
            bad = np.array([o is None for o in out], dtype=bool)
            return [pd.NA if o is None else o for o in out], bad
        out = [pd.NA if m else _as_string(v) for v, m in zip(text, missing, strict=True)]
        return out, np.zeros(len(text), dtype=bool)

    def _boolean(self, value: object) -> bool | None:
        """True, False, or None when the value is not a boolean."""
        if isinstance(value, bool | np.bool_):
            return bool(value)
        key = _as_string(value).lower()
        if key in self.true:
            return True
        if key in self.false:
            return False
        return None


def _as_string(value: object) -> str:
    """A value read into a text column; a whole float is written without its ``.0``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _pandera_label(check: Check) -> str:
    """Readable name of a pandera check made from a Table Schema constraint."""
    stats = check.statistics or {}
    name = check.name
    if name == "in_range":
        return f"in_range {stats['min_value']}-{stats['max_value']}"
    if name == "greater_than_or_equal_to":
        return f"minimum {stats['min_value']}"
    if name == "less_than_or_equal_to":
        return f"maximum {stats['max_value']}"
    if name == "greater_than":
        return f"exclusive_minimum {stats['min_value']}"
    if name == "less_than":
        return f"exclusive_maximum {stats['max_value']}"
    if name == "isin":
        return "one_of " + ", ".join(map(str, stats["allowed_values"]))
    if name == "str_matches":
        return "pattern " + str(stats["pattern"]).removeprefix("^").removesuffix("$")
    if name == "str_length":
        return f"length {stats.get('min_value') or 0}-{stats.get('max_value') or ''}"
    return str(name)


def _frictionless_to_pandera(descriptor: Mapping[str, Any]) -> DataFrameSchema:
    """The pandera schema :func:`pandera.io.pandas_io.from_frictionless_schema` builds.

    Same field parser, same checks, but the descriptor is read as the plain JSON it is:
    ``frictionless.Schema`` would load jsonschema's format checkers (about 2 s of imports
    on the first ``load_cohort``) only to re-check our own schema files, which
    ``tests/test_schema.py`` validates with frictionless instead.
    """
    from types import SimpleNamespace

    from pandera.io.pandas_io import FrictionlessFieldParser, deserialize_schema

    primary_key = descriptor.get("primaryKey", [])
    primary_key = [primary_key] if isinstance(primary_key, str) else list(primary_key)
    columns = {}
    for spec in descriptor["fields"]:
        field = SimpleNamespace(
            name=spec["name"],
            type=spec.get("type", "any"),
            constraints=spec.get("constraints", {}),
            description=spec.get("description", ""),
            title=spec.get("title", ""),
        )
        columns[field.name] = FrictionlessFieldParser(field, primary_key).to_pandera_column()
    return deserialize_schema(
        {
            "columns": columns,
            "index": None,
            "checks": None,
            "coerce": True,
            "strict": True,
            "unique": None if len(primary_key) == 1 else primary_key,
        }
    )


def _passes(check: Check, values: pd.Series, *, fast: bool = True) -> np.ndarray:
    """Rows of a typed column that pass a pandera check (missing values pass).

    The operators of pandera's built-in checks (``in_range`` is ``min <= x <= max``,
    ``str_matches`` is ``Series.str.match``, ...); on the distinct values of a text or
    yes/no column, then spread to the rows. ``fast`` (default): the text checks of a
    ``string`` column (Python storage) run on the distinct values as Python strings
    (:func:`_text_passes`, what pandas runs for that storage, without its Series) and
    the range checks of numbers on numpy arrays (:func:`_check_result`); ``fast=False``
    is the plain form they equal (``tests/test_validation_fast_paths.py``).
    """
    if (
        fast
        and isinstance(values.dtype, pd.StringDtype)
        and values.dtype.storage == "python"
        and check.name in ("isin", "str_matches", "str_length")
    ):
        codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
        return np.append(_text_passes(check, list(uniques)), True)[codes]
    if isinstance(values.dtype, pd.StringDtype | pd.BooleanDtype):
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        ok = _check_result(check, pd.Series(uniques), fast=fast)
        return np.append(ok, True)[codes]
    return _check_result(check, values, fast=fast)


def _text_passes(check: Check, texts: list[str]) -> np.ndarray:
    """A text check of distinct present strings: ``re.match``, ``in`` and ``len``.

    The operations pandas applies to a ``string`` column of Python storage
    (``Series.str.match`` compiles the pattern and calls ``match``; ``isin`` compares
    strings; ``Series.str.len`` is ``len``).
    """
    stats = check.statistics or {}
    if check.name == "isin":
        allowed = {v for v in stats["allowed_values"] if isinstance(v, str)}
        return np.array([t in allowed for t in texts], dtype=bool)
    if check.name == "str_matches":
        pattern = re.compile(str(stats["pattern"]))
        return np.array([pattern.match(t) is not None for t in texts], dtype=bool)
    n = np.array([len(t) for t in texts], dtype=np.int64)
    ok = np.ones(len(texts), dtype=bool)
    if stats.get("min_value") is not None:
        ok &= n >= stats["min_value"]
    if stats.get("max_value") is not None:
        ok &= n <= stats["max_value"]
    return ok


_COMPARISONS = {
    "in_range",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "greater_than",
    "less_than",
}


def _compared(name: str, stats: dict, data: Any) -> Any:
    """The comparison check ``name`` of numbers ``data``: a numpy array, a Series, or a
    narwhals expression (the engines' validation builds its conditions with it too)."""
    if name == "in_range":
        low, high = stats["min_value"], stats["max_value"]
        above = data >= low if stats.get("include_min", True) else data > low
        below = data <= high if stats.get("include_max", True) else data < high
        return above & below
    if name == "greater_than_or_equal_to":
        return data >= stats["min_value"]
    if name == "less_than_or_equal_to":
        return data <= stats["max_value"]
    if name == "greater_than":
        return data > stats["min_value"]
    return data < stats["max_value"]


def _check_result(check: Check, values: pd.Series, *, fast: bool = True) -> np.ndarray:
    """Rows of ``values`` that pass ``check``; a missing value passes.

    ``fast`` (default): a range check of an ``Int64`` or ``Float64`` column compares the
    column's numpy values, as pandas' masked arrays do, then lets the missing cells pass,
    without building the Series of each comparison (about 0.3 ms a check on a small
    table, paid for every numeric column of every validation). ``fast=False`` is the
    plain pandas form it equals (``tests/test_validation_fast_paths.py``).
    """
    stats = check.statistics or {}
    name = check.name
    if fast and name in _COMPARISONS and isinstance(values.dtype, pd.Int64Dtype | pd.Float64Dtype):
        array = values.array
        missing = np.asarray(array.isna(), dtype=bool)
        kind = np.int64 if isinstance(values.dtype, pd.Int64Dtype) else np.float64
        data = array.to_numpy(dtype=kind, na_value=0)
        out = np.asarray(_compared(name, stats, data), dtype=bool)
        out[missing] = True
        return out
    if name in _COMPARISONS:
        result = _compared(name, stats, values)
    elif name == "isin":
        result = values.isin(list(stats["allowed_values"]))
    elif name == "str_matches":
        result = values.str.match(str(stats["pattern"]), na=False)
    elif name == "str_length":
        n = values.str.len()
        result = pd.Series(True, index=values.index)
        if stats.get("min_value") is not None:
            result &= n >= stats["min_value"]
        if stats.get("max_value") is not None:
            result &= n <= stats["max_value"]
    else:  # pragma: no cover - the Table Schema constraints make only the checks above
        raise NotImplementedError(f"check {name} is not applied to pandas columns")
    return pd.Series(result).to_numpy(dtype=bool, na_value=True)


@functools.cache
def _table_validator(table: str) -> _TableValidator:
    return _TableValidator(table)


class _TableValidator:
    """Per-column rules and keys of one table, built from its Table Schema."""

    def __init__(self, table: str) -> None:
        import pandera.pandas as pa

        self.table = table
        descriptor = read_schema(table)
        self.fields = {f["name"]: f for f in descriptor["fields"]}
        self.required = [
            name for name, f in self.fields.items() if f.get("constraints", {}).get("required")
        ]
        self.missing_values = set(descriptor.get("missingValues", [""]))
        self.primary_key = list(descriptor.get("primaryKey", []))
        self.foreign_keys = descriptor.get("foreignKeys", [])
        self.unique_keys = [self.primary_key] if self.primary_key else []
        for name, f in self.fields.items():
            if f.get("constraints", {}).get("unique") and [name] not in self.unique_keys:
                self.unique_keys.append([name])
        self.coercers = {n: _Coercer(f, self.missing_values) for n, f in self.fields.items()}

        base = _frictionless_to_pandera(descriptor)
        columns = {}
        for name, column in base.columns.items():
            constraints = self.fields[name].get("constraints", {})
            checks = list(column.checks)
            if "exclusiveMinimum" in constraints:
                checks.append(pa.Check.gt(constraints["exclusiveMinimum"]))
            if "exclusiveMaximum" in constraints:
                checks.append(pa.Check.lt(constraints["exclusiveMaximum"]))
            columns[name] = pa.Column(
                self.coercers[name].dtype,
                checks=checks,
                nullable=column.nullable,
                required=name in self.required,
                unique=False,  # keys are checked below, with all duplicated rows reported
                coerce=False,
                name=name,
                description=column.description,
                title=column.title,
            )
        self.pandera = pa.DataFrameSchema(columns, strict=False, coerce=False, name=table)
        self.labels = {
            (name, k): _pandera_label(check)
            for name, column in columns.items()
            for k, check in enumerate(column.checks)
        }

    def empty(self) -> pd.DataFrame:
        """An empty table with every schema column and dtype."""
        return pd.DataFrame({name: pd.Series(dtype=c.dtype) for name, c in self.coercers.items()})

    def coerce(
        self, raw: pd.DataFrame, *, share: bool = False
    ) -> tuple[pd.DataFrame, list[pd.DataFrame], dict]:
        """Typed columns (present ones only), type failures, and the cells that failed.

        ``share=True`` (a table read from a file, which nobody else holds): a column that
        already has the field's nullable dtype and valid values is used as it is, not
        copied (a Parquet file written from typed tables).
        """
        typed, failures, bad = {}, [], {}
        for name, coercer in self.coercers.items():
            if name not in raw.columns:
                continue
            typed[name], bad_cells = coercer(raw[name], share=share)
            bad[name] = bad_cells
            if bad_cells.any():
                rows = np.flatnonzero(bad_cells)
                failures.append(
                    _fail(
                        self.table,
                        rows,
                        name,
                        f"type {coercer.type}",
                        _as_text(raw[name].iloc[rows]),
                    )
                )
        return pd.DataFrame(typed, index=raw.index, copy=False), failures, bad

    def check_columns(
        self, raw: pd.DataFrame, typed: pd.DataFrame, bad: dict[str, np.ndarray]
    ) -> list[pd.DataFrame]:
        """Required columns and values, ranges, codes and patterns, column by column.

        The rules are the pandera checks built from the Table Schema (``self.pandera``,
        which the engine validation reads too), applied here one column at a time with
        pandera's semantics (a missing value passes every check but ``not_null``) and
        pandera's check functions' operators, on the distinct values of a text or yes/no
        column. Only the failing rows are kept: no frame of results per check, and none
        of the copies pandera's lazy validation makes (about 0.1 s per small table).
        """
        failures = []
        for name in self.required:
            if name not in typed.columns:
                failures.append(_fail(self.table, [None], name, "required_column", None))
        for name, column in self.pandera.columns.items():
            if name not in typed.columns:
                continue
            values = typed[name]
            present = values.notna().to_numpy(dtype=bool)
            found: list[tuple[np.ndarray, str]] = []
            if not column.nullable:  # a cell that failed its type is reported once
                found.append((np.flatnonzero(~present & ~bad[name]), "not_null"))
            for k, check in enumerate(column.checks):
                failing = present & ~_passes(check, values)
                found.append((np.flatnonzero(failing), self.labels[(name, k)]))
            for rows, label in found:
                if len(rows):
                    bad[name][rows] = True
                    failures.append(
                        _fail(self.table, rows, name, label, _as_text(raw[name].iloc[rows]))
                    )
        return failures

    def check_unique(self, raw: pd.DataFrame, typed: pd.DataFrame) -> list[pd.DataFrame]:
        """Every row of a duplicated primary key (or unique column) value."""
        failures = []
        for key in self.unique_keys:
            if not all(c in typed.columns for c in key):
                continue
            dup = _duplicated_complete(typed, key)
            if dup.any():
                rows = np.flatnonzero(dup)
                text = raw[key].iloc[rows].astype(object).astype(str).agg(", ".join, axis=1)
                failures.append(
                    _fail(
                        self.table, rows, ", ".join(key), "unique " + "+".join(key), text.to_numpy()
                    )
                )
        return failures


def _duplicated_complete(typed: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Rows whose ``key`` values are all present and repeated in another such row.

    The key's columns are factorized one at a time and combined into one integer per
    row, so that no frame of the key's columns is built (``DataFrame.duplicated`` makes
    several, about 190 MB for 2 million assessments).
    """
    combined = np.zeros(len(typed), dtype=np.int64)
    complete = np.ones(len(typed), dtype=bool)
    for column in key:
        codes, uniques = pd.factorize(typed[column], use_na_sentinel=True)
        complete &= codes >= 0
        combined = combined * (len(uniques) + 1) + (codes + 1)
        if len(key) > 1:  # keep the combined codes small (they could overflow)
            combined, _ = pd.factorize(combined)
    return pd.Series(combined).duplicated(keep=False).to_numpy() & complete


def _match_columns(table: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Schema columns matched ignoring case and spaces; renamings and unknown columns listed.

    ``Item_1 `` becomes ``item_1`` (a finding); a column matching nothing is kept as an
    extra column and named in a finding with the closest schema name. Two columns that
    match the same name are an error (``duplicate_column``); the first is kept.
    """
    import difflib

    fields = _table_validator(table).fields
    by_key = {normalise_name(name): name for name in fields}
    n = len(raw)
    notes: list[pd.DataFrame] = []
    targets = []
    for column in raw.columns:
        if column in fields:
            targets.append(column)
        else:
            targets.append(by_key.get(normalise_name(column), column))
    seen: dict = {}
    keep = []
    for k, (column, target) in enumerate(zip(raw.columns, targets, strict=True)):
        if target in seen:
            notes.append(
                _fail(
                    table,
                    [None],
                    str(target),
                    f"duplicate_column: `{column}` repeats `{raw.columns[seen[target]]}`",
                    None,
                )
            )
            continue
        seen[target] = k
        keep.append(k)
    # all columns kept (the usual case): a shallow copy, the columns' data is shared
    out = raw.copy(deep=False) if len(keep) == raw.shape[1] else raw.iloc[:, keep].copy()
    out.columns = [targets[k] for k in keep]
    present = set(out.columns)
    for k in keep:
        column, target = raw.columns[k], targets[k]
        if target in fields and column != target:
            notes.append(
                _fail(table, [None], target, "column_renamed", str(column), severity="finding")
            )
        elif target not in fields:
            absent = [f for f in fields if f not in present]
            close = difflib.get_close_matches(normalise_name(column), absent, n=1, cutoff=0.6)
            check = (
                f"unknown_column: did you mean `{close[0]}`?"
                if close
                else "unknown_column: kept as an extra column"
            )
            notes.append(_fail(table, [None], str(column), check, None, severity="finding"))
    for note in notes:
        note["count"] = n
    return out, notes


def _problem_report(problems: list[FileProblem]) -> ValidationReport:
    """A report whose errors are the files that could not be read."""
    table_of = {}
    for p in problems:
        stem = normalise_name(Path(p.file.split(" and ")[0].split(" [")[0]).stem)
        table_of[p.file] = stem if stem in TABLES else ""
    errors = pd.DataFrame(
        {
            "table": pd.array([table_of[p.file] for p in problems], dtype="string"),
            "row": pd.array([pd.NA] * len(problems), dtype="Int64"),
            "line": pd.array([p.lines[0] if p.lines else pd.NA for p in problems], dtype="Int64"),
            "column": pd.array(["(file)"] * len(problems), dtype="string"),
            "check": pd.array(
                [f"{p.file}: {p.problem}. Fix: {p.fix}." for p in problems], dtype="string"
            ),
            "count": pd.array([len(p.lines) or pd.NA for p in problems], dtype="Int64"),
            "severity": pd.array(["error"] * len(problems), dtype="string"),
            "value": pd.array([pd.NA] * len(problems), dtype="string"),
        }
    )
    failures = errors[["table", "row", "column", "check", "value"]].copy()
    failures["value"] = pd.array([p.check for p in problems], dtype="string")
    return ValidationReport(errors, _empty_report(), {}, failures.reset_index(drop=True))
