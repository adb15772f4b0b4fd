"""Data model: the `Cohort` container, table validation and loading.

The table definitions live once, as Frictionless Table Schema files in ``data_schema/``
(one JSON file per table, documented for data managers in ``data_schema/README.md``).
Everything here is built from them:

* per-column rules (required columns and values, types, ranges, allowed codes, patterns)
  are pandera checks made by pandera's Frictionless field parser from the JSON (without
  importing frictionless itself), with the nullable pandas dtypes below and
  ``exclusiveMinimum`` added;
* the primary and foreign keys come from the JSON ``primaryKey`` and ``foreignKeys``;
* rules a Table Schema cannot express are small validator classes that read the
  instrument constants of :mod:`analysis.instruments`: item and total ranges per scale,
  items a scale does not use left empty, a given total equal to the sum of complete items,
  a row scorable (a total, or at most ``max_missing_items`` items missing), and session 1
  on study day 0.

Validation never stops at the first problem: every failure of every table is collected
into one tidy frame (``table, row, column, check, value``) before anything is raised.
``row`` is the 0-based position of the row in the input file or frame (for a CSV file,
row 0 is the first line after the header); it is empty for a problem of a whole column
(a required column missing, a refused column name). ``value`` is the offending cell as a
string, blank in any column the de-identification guard (:mod:`analysis.deid`) flagged.

Types of a validated table: ``string`` -> ``"string"``, ``integer`` -> ``"Int64"``,
``number`` -> ``"Float64"``, ``boolean`` -> ``"boolean"`` (pandas nullable dtypes, ``<NA>``
for a missing value). Text is stripped of surrounding spaces; an empty cell or ``NA`` is
missing (the JSON ``missingValues``); booleans accept ``true/false``, ``yes/no`` and
``1/0`` in any case. Optional columns absent from the input are added, empty, so that
every validated table has all its schema columns (in schema order), followed by any extra
columns, which are kept as read.

Where the schema files are found: package data ``analysis/data_schema/``, read through
:mod:`importlib.resources` (in the repository a link to the top-level ``data_schema/``
folder, the one copy that is edited; a wheel ships the files themselves).
"""

from __future__ import annotations

import functools
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
    "REQUIRED_TABLES",
    "TABLES",
    "Cohort",
    "DataValidationError",
    "collect_failures",
    "load_cohort",
    "read_schema",
    "schema_dir",
    "validate",
    "write_cohort",
]

#: The tables of a cohort, in the order they are validated and reported.
TABLES = ("patients", "assessments", "sessions", "adverse_events")
#: Tables :func:`load_cohort` requires; the others may be absent.
REQUIRED_TABLES = ("patients", "assessments")
OPTIONAL_TABLES = ("sessions", "adverse_events")
#: Columns of ``DataValidationError.failures`` and of :func:`collect_failures`.
FAILURE_COLUMNS = ("table", "row", "column", "check", "value")
FILE_FORMATS = ("csv", "parquet")

_DTYPES = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}


@dataclass
class Cohort:
    """The four tables of a de-identified cohort (pandas DataFrames).

    ``sessions`` and ``adverse_events`` are empty frames when the data has none.
    """

    patients: pd.DataFrame
    assessments: pd.DataFrame
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    adverse_events: pd.DataFrame = field(default_factory=pd.DataFrame)


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


def _check_kind(check: str) -> str:
    """The kind of a check name: its first word (``in_range 0-3 for GAD7`` -> ``in_range``)."""
    return check.split(" ", 1)[0]


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
    }

    def __init__(self, failures: pd.DataFrame | str, message: str | None = None) -> None:
        if isinstance(failures, str):
            message, failures = failures, _empty_failures()
        self.failures = failures
        super().__init__(message if message is not None else self._summarise(failures))

    def __reduce__(self):
        return (type(self), (self.failures, str(self)))

    @classmethod
    def _summarise(cls, failures: pd.DataFrame, max_lines: int = 40) -> str:
        """Counts per table, column and check, then one hint per kind of check."""
        if failures.empty:
            return f"{cls.title}."
        order = {t: k for k, t in enumerate(TABLES)}
        groups = (
            failures.assign(
                _table_order=failures["table"].map(order).fillna(len(order)),
                _has_row=failures["row"].notna(),
            )
            .groupby(["_table_order", "table", "column", "check"], sort=True, dropna=False)
            .agg(n=("_has_row", "sum"), size=("_has_row", "size"))
            .reset_index()
        )
        n_tables = groups["table"].nunique()
        lines = [
            f"{cls.title}: {len(groups)} problem(s) in {n_tables} table(s); nothing was loaded."
        ]
        for row in groups.head(max_lines).itertuples(index=False):
            where = f"{row.table}.{row.column}"
            if row.n == 0:
                lines.append(f"  {where}: column fails `{row.check}`")
            else:
                rows = "row fails" if row.n == 1 else "rows fail"
                lines.append(f"  {where}: {row.n} {rows} `{row.check}`")
        if len(groups) > max_lines:
            lines.append(f"  ... and {len(groups) - max_lines} more (see `.failures`)")
        kinds = dict.fromkeys(_check_kind(c) for c in groups["check"])
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


# --------------------------------------------------------------------------- validators


def _fail(table: str, rows, column: str, check: str, values) -> pd.DataFrame:
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
        }
    )


def _as_text(values: pd.Series) -> np.ndarray:
    """Cells as strings (missing stays missing), for the ``value`` column."""
    out = values.astype(object).to_numpy()
    mask = pd.isna(out)
    out = np.where(mask, None, out.astype(str))
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

    def __call__(self, raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
        if pd.api.types.is_bool_dtype(raw.dtype) and self.type in ("integer", "number"):
            return pd.Series(pd.NA, index=raw.index, dtype=self.dtype), raw.notna().to_numpy()
        if self.type in ("integer", "number") and pd.api.types.is_numeric_dtype(raw.dtype):
            return self._numbers(raw.astype("Float64"))
        codes, uniques = pd.factorize(raw.astype(object), use_na_sentinel=True)
        converted, bad = self._convert(pd.Series(np.asarray(uniques, dtype=object)))
        converted = pd.array(list(converted) + [pd.NA], dtype=self.dtype)
        bad = np.append(bad, False)
        typed = pd.Series(converted.take(codes), index=raw.index, dtype=self.dtype)
        return typed, bad[codes]

    def _numbers(self, numbers: pd.Series) -> tuple[pd.Series, np.ndarray]:
        finite = numbers.notna() & np.isfinite(numbers.fillna(0).to_numpy(dtype=float))
        ok = finite.copy()
        if self.type == "integer":
            whole = numbers.fillna(0).to_numpy(dtype=float)
            ok &= (np.floor(whole) == whole) & (np.abs(whole) < 2**53)
        bad = (numbers.notna() & ~ok).to_numpy(dtype=bool)
        typed = numbers.where(ok, pd.NA)
        if self.type == "integer":
            typed = typed.round().astype("Int64")
        return typed, bad

    def _convert(self, values: pd.Series) -> tuple[list, np.ndarray]:
        """Convert distinct non-missing values; strings are stripped, missingValues -> NA."""
        text = [v.strip() if isinstance(v, str) else v for v in values]
        missing = np.array([isinstance(v, str) and v in self.missing for v in text], dtype=bool)
        if self.type == "string":
            out = [pd.NA if m else _as_string(v) for v, m in zip(text, missing, strict=True)]
            return out, np.zeros(len(text), dtype=bool)
        if self.type == "boolean":
            out = [pd.NA if m else self._boolean(v) for v, m in zip(text, missing, strict=True)]
            bad = np.array([o is None for o in out], dtype=bool)
            return [pd.NA if o is None else o for o in out], bad
        is_bool = np.array([isinstance(v, bool | np.bool_) for v in text], dtype=bool)
        candidates = pd.Series(
            [None if m or b else v for v, m, b in zip(text, missing, is_bool, strict=True)],
            dtype=object,
        )
        numbers = pd.to_numeric(candidates, errors="coerce").astype("Float64")
        typed, bad = self._numbers(numbers)
        bad = ~missing & (bad | typed.isna().to_numpy(dtype=bool))
        return list(typed.astype(object)), bad

    def _boolean(self, value):
        """True, False, or None when the value is not a boolean."""
        if isinstance(value, bool | np.bool_):
            return bool(value)
        key = _as_string(value).lower()
        if key in self.true:
            return True
        if key in self.false:
            return False
        return None


def _as_string(value) -> str:
    """A value read into a text column; a whole float is written without its ``.0``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _pandera_label(check) -> str:
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


def _frictionless_to_pandera(descriptor: dict):
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

    def coerce(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame], dict]:
        """Typed columns (present ones only), type failures, and the cells that failed."""
        typed, failures, bad = {}, [], {}
        for name, coercer in self.coercers.items():
            if name not in raw.columns:
                continue
            typed[name], bad_cells = coercer(raw[name])
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
        return pd.DataFrame(typed, index=raw.index), failures, bad

    def check_columns(self, raw, typed, bad) -> list[pd.DataFrame]:
        """Required columns and values, ranges, codes and patterns (pandera, lazily)."""
        from pandera.errors import SchemaErrors

        try:
            self.pandera.validate(typed, lazy=True)
        except SchemaErrors as exc:
            cases = exc.failure_cases
        else:
            return []
        failures = []
        for (column, check, number), group in cases.groupby(
            ["column", "check", "check_number"], dropna=False, sort=False
        ):
            if check == "column_in_dataframe":
                for missing in group["failure_case"]:
                    failures.append(
                        _fail(self.table, [None], str(missing), "required_column", None)
                    )
                continue
            rows = group["index"].to_numpy(dtype=np.int64)
            if check == "not_nullable":
                rows = rows[~bad[column][rows]]  # a cell that failed its type is reported once
                label = "not_null"
            else:
                label = self.labels.get((column, int(number)), str(check))
            bad[column][rows] = True
            failures.append(
                _fail(self.table, rows, column, label, _as_text(raw[column].iloc[rows]))
            )
        return failures

    def check_unique(self, raw, typed) -> list[pd.DataFrame]:
        """Every row of a duplicated primary key (or unique column) value."""
        failures = []
        for key in self.unique_keys:
            if not all(c in typed.columns for c in key):
                continue
            complete = typed[key].notna().all(axis=1)
            dup = typed[key].duplicated(keep=False) & complete
            if dup.any():
                rows = np.flatnonzero(dup.to_numpy())
                text = raw[key].iloc[rows].astype(object).astype(str).agg(", ".join, axis=1)
                failures.append(
                    _fail(
                        self.table, rows, ", ".join(key), "unique " + "+".join(key), text.to_numpy()
                    )
                )
        return failures


class _AssessmentRules:
    """Rules that depend on the instrument of each assessment (read from ``INSTRUMENTS``)."""

    table = "assessments"

    def check(self, raw: pd.DataFrame, clean: pd.DataFrame, bad: dict) -> list[pd.DataFrame]:
        if "instrument" not in clean.columns:
            return []
        failures = []
        n = len(clean)
        for instrument in INSTRUMENTS.values():
            rows = (clean["instrument"] == instrument.name).to_numpy(dtype=bool, na_value=False)
            if not rows.any():
                continue
            name = instrument.name

            def flag(mask, column, check, with_value=True):
                positions = np.flatnonzero(mask)
                values = _as_text(raw[column].iloc[positions]) if with_value else None
                failures.append(_fail(self.table, positions, column, check, values))
                bad[column] = bad.get(column, np.zeros(n, dtype=bool)) | mask
                clean.loc[mask, column] = pd.NA

            for column in instrument.item_columns:
                over = rows & (clean[column] > instrument.item_max).to_numpy(bool, na_value=False)
                if over.any():
                    flag(
                        over,
                        column,
                        f"in_range {instrument.item_min}-{instrument.item_max} for {name}",
                    )
            for column in instrument.unused_item_columns:
                filled = rows & clean[column].notna().to_numpy(dtype=bool)
                if filled.any():
                    flag(filled, column, f"empty for {name}")
            total = clean["total"]
            over = rows & (total > instrument.total_max).to_numpy(bool, na_value=False)
            if over.any():
                flag(over, "total", f"in_range 0-{instrument.total_max} for {name}")

            # Cross-field rules only on rows whose items and total passed their own checks.
            scoring = ["total", *instrument.item_columns, *instrument.unused_item_columns]
            ok = rows & ~np.logical_or.reduce([bad[c] for c in scoring])
            items = clean[instrument.item_columns]
            answered = items.notna().sum(axis=1).to_numpy()
            has_total = clean["total"].notna().to_numpy(dtype=bool)
            complete = answered == instrument.n_items
            item_sum = items.sum(axis=1, skipna=True).to_numpy(dtype=float)
            total_value = clean["total"].to_numpy(dtype=float, na_value=np.nan)
            mismatch = ok & complete & has_total & (total_value != item_sum)
            if mismatch.any():
                flag(mismatch, "total", f"total_matches_items for {name}")
            needed = instrument.n_items - instrument.max_missing_items
            unscorable = ok & ~has_total & (answered < needed)
            if unscorable.any():
                check = f"scorable for {name}: a total or >= {needed} of {instrument.n_items} items"
                flag(unscorable, "total", check, with_value=False)
        return failures


class _SessionRules:
    """Day 0 is the first ketamine session, so session 1 must be on study day 0."""

    table = "sessions"

    def check(self, raw: pd.DataFrame, clean: pd.DataFrame, bad: dict) -> list[pd.DataFrame]:
        if not {"session_number", "study_day"} <= set(clean.columns):
            return []
        first = (clean["session_number"] == 1).to_numpy(dtype=bool, na_value=False)
        off = first & (clean["study_day"] != 0).to_numpy(dtype=bool, na_value=False)
        if not off.any():
            return []
        rows = np.flatnonzero(off)
        return [
            _fail(
                self.table,
                rows,
                "study_day",
                "session_1_on_day_0",
                _as_text(raw["study_day"].iloc[rows]),
            )
        ]


_TABLE_RULES = {"assessments": _AssessmentRules(), "sessions": _SessionRules()}


def _check_foreign_keys(table, raw, clean, typed_tables) -> list[pd.DataFrame]:
    """Rows whose key is absent from the referenced table (when that table is given)."""
    failures = []
    for fk in _table_validator(table).foreign_keys:
        fields, ref = fk["fields"], fk["reference"]
        ref_table, ref_fields = ref.get("resource") or table, ref["fields"]
        fields = [fields] if isinstance(fields, str) else list(fields)
        ref_fields = [ref_fields] if isinstance(ref_fields, str) else list(ref_fields)
        parent = typed_tables.get(ref_table)
        if parent is None or not set(ref_fields) <= set(parent.columns):
            continue
        if not set(fields) <= set(clean.columns):
            continue
        child = clean[fields]
        known = pd.MultiIndex.from_frame(parent[ref_fields].dropna().astype(object))
        present = child.notna().all(axis=1).to_numpy()
        found = pd.MultiIndex.from_frame(child.astype(object)).isin(known)
        unknown = present & ~found
        if unknown.any():
            rows = np.flatnonzero(unknown)
            text = raw[fields].iloc[rows].astype(object).astype(str).agg(", ".join, axis=1)
            check = f"foreign_key {ref_table}.{'+'.join(ref_fields)}"
            failures.append(_fail(table, rows, ", ".join(fields), check, text.to_numpy()))
    return failures


def _validate_table(table: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Typed table, its pre-check typed values (for keys), and its failures."""
    validator = _table_validator(table)
    typed, failures, bad = validator.coerce(raw)
    failures += validator.check_columns(raw, typed, bad)
    failures += validator.check_unique(raw, typed)
    for name in validator.fields:  # absent optional columns: empty, all of them "passed"
        if name not in typed.columns:
            typed[name] = pd.Series(pd.NA, index=raw.index, dtype=validator.coercers[name].dtype)
            bad.setdefault(name, np.zeros(len(raw), dtype=bool))
    clean = typed.copy()
    for name, mask in bad.items():
        if mask.any():
            clean.loc[mask, name] = pd.NA
    if table in _TABLE_RULES:
        failures += _TABLE_RULES[table].check(raw, clean, bad)
    extras = [c for c in raw.columns if c not in validator.fields]
    out = pd.concat([typed[list(validator.fields)], raw[extras]], axis=1)
    return out, clean, failures


def _as_tables(tables) -> dict[str, pd.DataFrame]:
    if isinstance(tables, Cohort):
        tables = {name: getattr(tables, name) for name in TABLES}
        return {n: df for n, df in tables.items() if n in REQUIRED_TABLES or len(df.columns)}
    if not isinstance(tables, Mapping):
        raise TypeError(
            "`tables` must be a Cohort or a mapping of table name to DataFrame, "
            f"but a {type(tables).__name__} was passed."
        )
    for name, df in tables.items():
        check_choice("table", name, TABLES)
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Table `{name}` must be a pandas DataFrame, not {type(df).__name__}.")
    return dict(tables)


def _validate_tables(tables) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, bool]:
    """Typed tables, every failure, and whether the de-identification guard flagged any."""
    from analysis.deid import IDENTIFIER_CHECKS, _scan

    raw = {name: df.reset_index(drop=True) for name, df in _as_tables(tables).items()}
    typed, clean, failures = {}, {}, []
    for table in TABLES:
        if table in raw:
            typed[table], clean[table], table_failures = _validate_table(table, raw[table])
            failures += table_failures
    for table in TABLES:
        if table in raw:
            failures += _check_foreign_keys(table, raw[table], clean[table], typed)
    _, identifiers = _scan(raw)
    failures.append(identifiers)
    failures = [f for f in failures if len(f)]
    result = pd.concat(failures, ignore_index=True) if failures else _empty_failures()
    deid = result["check"].isin(list(IDENTIFIER_CHECKS))
    if deid.any():
        flagged = set(zip(result.loc[deid, "table"], result.loc[deid, "column"], strict=True))
        in_flagged = [
            any((t, c.strip()) in flagged for c in str(cols).split(","))
            for t, cols in zip(result["table"], result["column"], strict=True)
        ]
        result.loc[np.asarray(in_flagged, dtype=bool), "value"] = ""
    order = result["table"].map({t: k for k, t in enumerate(TABLES)})
    result = (
        result.assign(_order=order)
        .sort_values(["_order", "row", "column"], kind="stable", na_position="first")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    result = result.astype(
        {
            "table": "string",
            "row": "Int64",
            "column": "string",
            "check": "string",
            "value": "string",
        }
    )
    return typed, result, bool(deid.any())


def _raise(failures: pd.DataFrame, deid: bool) -> None:
    if deid:
        from analysis.deid import DeidentificationError

        raise DeidentificationError(failures)
    raise DataValidationError(failures)


# --------------------------------------------------------------------------- public API


def collect_failures(tables) -> pd.DataFrame:
    """Every validation and de-identification failure of some tables, without raising.

    Parameters
    ----------
    tables : Cohort or mapping of str to DataFrame
        Tables by name (any of :data:`TABLES`), as read. Foreign keys are checked when
        ``patients`` is among them.

    Returns
    -------
    DataFrame
        Columns ``table, row, column, check, value`` (see :class:`DataValidationError`);
        empty when the tables are valid. Sorted by table, row and column.

    Examples
    --------
    >>> patients = pd.DataFrame({"patient_id": ["P1", "P2"], "route": ["iv", "IV"]})
    >>> assessments = pd.DataFrame({"patient_id": ["P1", "P3"], "instrument": "GAD7",
    ...                             "study_day": 0, "total": [12, 30]})
    >>> print(collect_failures({"patients": patients, "assessments": assessments}).to_string())
             table  row      column                                        check value
    0     patients    1       route  one_of iv, im, intranasal, oral, sublingual    IV
    1  assessments    1  patient_id                 foreign_key patients.patient_id    P3
    2  assessments    1       total                        in_range 0-21 for GAD7    30
    """
    return _validate_tables(tables)[1]


def validate(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """A validated, typed copy of one table, or :class:`DataValidationError`.

    Parameters
    ----------
    df : DataFrame
        The table as read (CSV text or typed columns).
    table : {"patients", "assessments", "sessions", "adverse_events"}
        Which table it is.

    Returns
    -------
    DataFrame
        Schema columns in schema order with nullable dtypes (absent optional columns
        added, empty), then the extra columns as read; the index of ``df``.

    Raises
    ------
    DataValidationError
        With every failure; :class:`~analysis.deid.DeidentificationError` when direct
        identifiers are among them. Foreign keys need the other tables: use
        :func:`load_cohort` or :func:`collect_failures`.

    Examples
    --------
    >>> patients = pd.DataFrame({"patient_id": ["P1", "P2"], "route": ["iv", "oral"],
    ...                          "age": ["34", ""], "comorbid_depression": ["Yes", "0"]})
    >>> typed = validate(patients, "patients")
    >>> typed[["patient_id", "age", "comorbid_depression"]]
      patient_id   age  comorbid_depression
    0         P1    34                 True
    1         P2  <NA>                False
    >>> typed["age"].dtype
    Int64Dtype()
    """
    check_choice("table", table, TABLES)
    typed, failures, deid = _validate_tables({table: df})
    if len(failures):
        _raise(failures, deid)
    out = typed[table]
    out.index = df.index
    return out


def _table_file(folder: Path, table: str) -> Path | None:
    candidates = [folder / f"{table}.{ext}" for ext in FILE_FORMATS]
    found = [p for p in candidates if p.is_file()]
    if len(found) > 1:
        raise ValueError(
            f"Both {found[0].name} and {found[1].name} are in {folder}: keep one file per "
            "table (delete or rename the other)."
        )
    if not found and table in REQUIRED_TABLES:
        raise FileNotFoundError(
            f"Table `{table}` not found in {folder}: expected {table}.csv or {table}.parquet. "
            f"A cohort folder holds {', '.join(t + '.csv' for t in REQUIRED_TABLES)} (or "
            f".parquet) and optionally {', '.join(t + '.csv' for t in OPTIONAL_TABLES)}."
        )
    return found[0] if found else None


def _read_table(path: Path, table: str) -> pd.DataFrame:
    """Read one table file; schema columns of a CSV are read as text (typed by validation)."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    descriptor = read_schema(table)
    missing = list(descriptor.get("missingValues", [""]))
    return pd.read_csv(
        path,
        dtype={f["name"]: object for f in descriptor["fields"]},
        keep_default_na=False,
        na_values=missing,
        encoding="utf-8-sig",
    )


def load_cohort(path) -> Cohort:
    """Read, validate and de-identification-check a cohort folder.

    Parameters
    ----------
    path : str or Path
        A folder holding ``patients`` and ``assessments`` and optionally ``sessions`` and
        ``adverse_events``, each as ``<table>.csv`` or ``<table>.parquet`` (not both).
        Other files are ignored. CSV files are UTF-8 with a header row; an empty cell or
        ``NA`` is a missing value.

    Returns
    -------
    Cohort
        Typed tables (see :func:`validate`); an absent optional table is an empty frame
        with the schema's columns.

    Raises
    ------
    FileNotFoundError
        The folder or a required table is missing (the message names the files expected).
    ValueError
        A table is present both as CSV and as Parquet.
    DataValidationError
        Any rule broken, in any table (all failures are collected first).
    DeidentificationError
        Direct identifiers found (a :class:`DataValidationError` too).

    Examples
    --------
    >>> import tempfile
    >>> patients = pd.DataFrame({"patient_id": ["P1"], "route": ["iv"]})
    >>> assessments = pd.DataFrame({"patient_id": ["P1"], "instrument": ["GAD7"],
    ...                             "study_day": [0], "total": [15]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     cohort = load_cohort(write_cohort(Cohort(patients, assessments), folder))
    >>> cohort.assessments[["patient_id", "instrument", "study_day", "total"]]
      patient_id instrument  study_day  total
    0         P1       GAD7          0     15
    >>> len(cohort.sessions), cohort.sessions.columns[1]
    (0, 'session_number')
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cohort folder {folder} does not exist or is not a folder; pass the folder "
            "holding patients.csv and assessments.csv (or .parquet)."
        )
    files = {table: _table_file(folder, table) for table in TABLES}
    raw = {table: _read_table(p, table) for table, p in files.items() if p is not None}
    typed, failures, deid = _validate_tables(raw)
    if len(failures):
        _raise(failures, deid)
    for table in OPTIONAL_TABLES:
        typed.setdefault(table, _table_validator(table).empty())
    return Cohort(**typed)


def write_cohort(cohort: Cohort, path, format: str = "csv") -> Path:
    """Write a cohort as the folder :func:`load_cohort` reads.

    Parameters
    ----------
    cohort : Cohort
        The tables; an optional table without columns is not written.
    path : str or Path
        Folder to write (created if needed). Its ``<table>.csv`` / ``<table>.parquet``
        files are replaced, and a file of the other format or of a table not written is
        removed, so that the folder holds exactly this cohort. Other files are untouched.
    format : {"csv", "parquet"}
        File format.

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> cohort = Cohort(pd.DataFrame({"patient_id": ["P1"], "route": ["iv"]}),
    ...                 pd.DataFrame({"patient_id": ["P1"], "instrument": ["GAD7"],
    ...                               "study_day": [0], "total": [15]}))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sorted(p.name for p in write_cohort(cohort, folder, format="parquet").iterdir())
    ['assessments.parquet', 'patients.parquet']
    """
    check_choice("format", format, FILE_FORMATS)
    if not isinstance(cohort, Cohort):
        raise TypeError(f"`cohort` must be a Cohort, not {type(cohort).__name__}.")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        df = getattr(cohort, table)
        for ext in FILE_FORMATS:
            (folder / f"{table}.{ext}").unlink(missing_ok=True)
        if table in OPTIONAL_TABLES and len(df.columns) == 0:
            continue
        target = folder / f"{table}.{format}"
        if format == "csv":
            df.to_csv(target, index=False)
        else:
            df.to_parquet(target, index=False)
    return folder
