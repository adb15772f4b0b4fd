"""Data model: the `Cohort` container, table validation and loading.

:class:`Cohort`, :class:`DataValidationError`, :data:`TABLES`, :func:`read_schema` and
the other names of the data model's foundation are defined in :mod:`analysis.cohort` and
re-exported here unchanged (``from analysis.schema import Cohort`` keeps working); this
module adds validation and loading on top, and the de-identification guard
(:mod:`analysis.deid`) sits between the two, so neither imports the other in a circle.

The table definitions live once, as Frictionless Table Schema files in ``data_schema/``
(one JSON file per table, documented for data managers in ``data_schema/README.md``).
Everything here is built from them:

* per-column rules (required columns and values, types, ranges, allowed codes, patterns)
  are pandera checks made by pandera's Frictionless field parser from the JSON (without
  importing frictionless itself), with the nullable pandas dtypes below and
  ``exclusiveMinimum`` added; they are applied one column at a time, on the distinct
  values of a text column, keeping only the failing rows (pandera's semantics, without
  the copies of its lazy validation);
* the primary and foreign keys come from the JSON ``primaryKey`` and ``foreignKeys``;
* rules a Table Schema cannot express are small validator classes that read the
  instrument constants of :mod:`analysis.instruments`: item and total ranges per scale,
  items a scale does not use left empty, a given total equal to the sum of complete items,
  a row scorable (a total, or at most ``max_missing_items`` items missing), and session 1
  on study day 0.

The rule: **refuse only what makes the numbers wrong or the data unsafe; account for
everything else.** *Errors* (identifiers, wrong types, out-of-range values, a total that
contradicts complete items, duplicate keys or adverse events entered twice, unknown
patients, missing required columns, files that cannot be read faithfully) refuse the data;
*findings* (unscorable questionnaires, assessments outside every visit window, patients
without a baseline or follow-up, sessions or adverse events after the last assessment,
renamed or unknown columns) load, are listed in :class:`ValidationReport` and
``Cohort.findings``, and are accounted for by
:func:`analysis.endpoints.endpoint_accounting`. Files are read by
:mod:`analysis.readers` (CSV dialects and encodings, Parquet, Excel, SPSS, SAS, Stata).

Validation never stops at the first problem: every failure of every table is collected
into one tidy frame (``table, row, column, check, value``) before anything is raised.
``row`` is the 0-based position of the row in the input file or frame (for a CSV file,
row 0 is the first line after the header); it is empty for a problem of a whole column
(a required column missing, a refused column name). ``value`` is the offending cell as a
string, blank in any column the de-identification guard (:mod:`analysis.deid`) flagged.

Types of a validated table: ``string`` -> ``"string"``, ``integer`` -> ``"Int64"``,
``number`` -> ``"Float64"``, ``boolean`` -> ``"boolean"`` (pandas nullable dtypes, ``<NA>``
for a missing value). Text is stripped of surrounding spaces; an empty cell, ``NA``, ``N/A``,
``n/a``, ``NULL`` or ``.`` is missing (the JSON ``missingValues``); booleans accept ``true/false``, ``yes/no`` and
``1/0`` in any case. Optional columns absent from the input are added, empty, so that
every validated table has all its schema columns (in schema order), followed by any extra
columns, which are kept as read.

Where the schema files are found: package data ``analysis/data_schema/``, read through
:mod:`importlib.resources` (in the repository a link to the top-level ``data_schema/``
folder, the one copy that is edited; a wheel ships the files themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from analysis._checks import (
    ValidationReport,
    _as_text,
    _fail,
    _match_columns,
    _problem_report,
    _showable,
    _table_validator,
)
from analysis._utils import check_choice, positional_deprecated
from analysis.cohort import (
    FAILURE_COLUMNS,
    OPTIONAL_TABLES,
    REPORT_COLUMNS,
    REQUIRED_TABLES,
    TABLES,
    Cohort,
    DataValidationError,
    _check_kind,
    _empty_failures,
    cohort_tables,
    read_schema,
    schema_dir,
)
from analysis.deid import IDENTIFIER_CHECKS, _scan, redact_failures
from analysis.instruments import INSTRUMENTS
from analysis.readers import MISSING_VALUES, FileProblem

__all__ = [
    "FAILURE_COLUMNS",
    "MISSING_VALUES",
    "REPORT_COLUMNS",
    "OPTIONAL_TABLES",
    "REQUIRED_TABLES",
    "TABLES",
    "Cohort",
    "DataValidationError",
    "ValidationReport",
    "collect_failures",
    "findings_summary",
    "load_cohort",
    "read_schema",
    "schema_dir",
    "validate",
    "validate_cohort",
    "write_cohort",
]

#: Formats :func:`write_cohort` writes (:func:`load_cohort` reads more, see
#: :mod:`analysis.readers`).
FILE_FORMATS = ("csv", "parquet")


@positional_deprecated("min_cell")
def findings_summary(findings: pd.DataFrame, *, min_cell: int | None = None) -> pd.DataFrame:
    """Findings counted per table, column and check, for a report.

    Parameters
    ----------
    findings : DataFrame or Cohort
        ``cohort.findings`` or :attr:`ValidationReport.findings`; a Cohort gives its
        findings (a cohort built in memory, such as the synthetic one, is validated).
    min_cell : int, optional
        Small-cell rule: a count of 1 to ``min_cell - 1`` rows is blanked
        (:func:`analysis.rates.suppress_small_cells`), since a finding about patients
        counts people.

    Returns
    -------
    DataFrame
        ``table, column, check, rows, fix, suppressed``: rows concerned (for a whole
        column, the table's rows) and what to do, in table order. No values, no row
        numbers: those are for ``anxiety-outcomes validate`` on the data manager's side.

    Examples
    --------
    >>> patients = pd.DataFrame({"patient_id": ["P1"], "route": ["iv"]})
    >>> assessments = pd.DataFrame({"patient_id": "P1", "instrument": "GAD7",
    ...                             "study_day": [0, 7, 400], "total": [15, 9, 5]})
    >>> report = validate_cohort({"patients": patients, "assessments": assessments})
    >>> findings_summary(report.findings)[["table", "check", "rows"]]
             table                      check  rows
    0  assessments  outside_schedule for GAD7     1
    """
    from analysis.rates import suppress_small_cells

    columns = ["table", "column", "check", "rows", "fix", "suppressed"]
    if isinstance(findings, Cohort):  # loaded: its findings; built in memory: validate it
        cohort = findings
        findings = cohort.findings if cohort.collected is not None else None
        if findings is None:
            findings = validate_cohort(cohort).findings
    if findings is None or findings.empty:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return out.astype({"rows": "Int64", "suppressed": "boolean"})
    order = findings["table"].map({t: k for k, t in enumerate(TABLES)}).fillna(len(TABLES))
    grouped = (
        findings.assign(_order=order, _rows=findings["count"].fillna(1))
        .groupby(["_order", "table", "column", "check"], sort=True, dropna=False)["_rows"]
        .sum()
        .reset_index()
        .rename(columns={"_rows": "rows"})
    )
    grouped["fix"] = [
        DataValidationError.hints.get(_check_kind(str(c)), "") for c in grouped["check"]
    ]
    grouped = grouped.drop(columns="_order").assign(rows=lambda d: d["rows"].astype("Int64"))
    if min_cell is not None:
        grouped = suppress_small_cells(
            grouped, min_cell, count_columns=("rows",), total=None, derived=[]
        )
    else:
        grouped["suppressed"] = False
    return grouped[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- validators


def _answered_and_sum(clean: pd.DataFrame, columns) -> tuple[np.ndarray, np.ndarray]:
    """Items answered per row and their sum (missing items count 0), column by column.

    One float column at a time: a row-wise sum over a frame of nullable integer columns
    goes through a 2-D object array (about 1.5 GB for 2 million assessments).
    """
    answered = np.zeros(len(clean), dtype=np.int64)
    total = np.zeros(len(clean), dtype=float)
    for column in columns:
        values = clean[column].to_numpy(dtype=float, na_value=np.nan)
        present = ~np.isnan(values)
        answered += present
        total += np.where(present, values, 0.0)
    return answered, total


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
                clean[column] = clean[column].mask(mask)  # a new column: typed keeps it

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
            answered, item_sum = _answered_and_sum(clean, instrument.item_columns)
            has_total = clean["total"].notna().to_numpy(dtype=bool)
            complete = answered == instrument.n_items
            total_value = clean["total"].to_numpy(dtype=float, na_value=np.nan)
            mismatch = ok & complete & has_total & (total_value != item_sum)
            if mismatch.any():
                flag(mismatch, "total", f"total_matches_items for {name}")
            needed = instrument.n_items - instrument.max_missing_items
            unscorable = ok & ~has_total & (answered < needed)
            if unscorable.any():  # a finding: the row loads and is accounted as unscorable
                check = (
                    f"unscorable for {name}: no total and fewer than {needed} of "
                    f"{instrument.n_items} items"
                )
                failures.append(
                    _fail(
                        self.table,
                        np.flatnonzero(unscorable),
                        "total",
                        check,
                        None,
                        severity="finding",
                    )
                )
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


class _AdverseEventRules:
    """An adverse event entered twice (every column equal) would be counted twice."""

    table = "adverse_events"

    def check(self, raw: pd.DataFrame, clean: pd.DataFrame, bad: dict) -> list[pd.DataFrame]:
        if clean.empty:
            return []
        columns = list(clean.columns) + [c for c in raw.columns if c not in clean.columns]
        both = pd.concat([clean, raw[[c for c in columns if c not in clean.columns]]], axis=1)
        dup = both.astype(object).duplicated(keep=False).to_numpy(dtype=bool)
        if not dup.any():
            return []
        rows = np.flatnonzero(dup)
        return [_fail(self.table, rows, "(row)", "duplicate_row: every column repeated", None)]


_TABLE_RULES: dict[str, _AssessmentRules | _SessionRules | _AdverseEventRules] = {
    "assessments": _AssessmentRules(),
    "sessions": _SessionRules(),
    "adverse_events": _AdverseEventRules(),
}


def _unknown_keys(
    child: pd.DataFrame,
    fields: list[str],
    parent: pd.DataFrame,
    ref_fields: list[str],
    *,
    fast: bool = True,
) -> np.ndarray:
    """Rows of ``child`` whose ``fields`` are all present and not a row of ``ref_fields``.

    ``fast`` (default): a one-column key (the schema's ``patient_id`` keys) is looked up
    in the parent's values with ``pandas.Index.isin`` on object arrays, without the
    frames and the two MultiIndex of the plain form (``fast=False``, which
    ``tests/test_validation_fast_paths.py`` holds it equal to).
    """
    if fast and len(fields) == 1:
        column, known = child[fields[0]], parent[ref_fields[0]]
        present = column.notna().to_numpy(dtype=bool)
        values = known.to_numpy(dtype=object)[known.notna().to_numpy(dtype=bool)]
        return present & ~pd.Index(column.to_numpy(dtype=object)).isin(values)
    keys = child[fields]
    index = pd.MultiIndex.from_frame(parent[ref_fields].dropna().astype(object))
    present = keys.notna().all(axis=1).to_numpy()
    return present & ~pd.MultiIndex.from_frame(keys.astype(object)).isin(index)


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
        unknown = _unknown_keys(clean, fields, parent, ref_fields)
        if unknown.any():
            rows = np.flatnonzero(unknown)
            text = raw[fields].iloc[rows].astype(object).astype(str).agg(", ".join, axis=1)
            check = f"foreign_key {ref_table}.{'+'.join(ref_fields)}"
            failures.append(_fail(table, rows, ", ".join(fields), check, text.to_numpy()))
    return failures


def _validate_table(
    table: str, raw: pd.DataFrame, *, share: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Typed table, its pre-check typed values (for keys), and its failures and findings."""
    validator = _table_validator(table)
    raw, failures = _match_columns(table, raw)
    typed, more, bad = validator.coerce(raw, share=share)
    failures += more
    failures += validator.check_columns(raw, typed, bad)
    failures += validator.check_unique(raw, typed)
    for name in validator.fields:  # absent optional columns: empty, all of them "passed"
        if name not in typed.columns:
            typed[name] = pd.Series(pd.NA, index=raw.index, dtype=validator.coercers[name].dtype)
            bad.setdefault(name, np.zeros(len(raw), dtype=bool))
    clean = typed.copy(deep=False)  # columns without a failed cell are shared, not copied
    for name, mask in bad.items():
        if mask.any():
            clean[name] = typed[name].mask(mask)
    if table in _TABLE_RULES:
        failures += _TABLE_RULES[table].check(raw, clean, bad)
    # Series by Series: selecting a list of columns (typed[list]) would copy every column.
    # Extra columns are copied: the typed table must not share data with the caller's frame.
    columns = [typed[name] for name in validator.fields]
    columns += [
        raw.iloc[:, k].copy() for k, c in enumerate(raw.columns) if c not in validator.fields
    ]
    out: pd.DataFrame = pd.concat(columns, axis=1, copy=False)
    return out, clean, failures


def _scorable(assessments: pd.DataFrame) -> np.ndarray:
    """Rows with a total or at most ``max_missing_items`` items missing (checked values)."""
    out = np.zeros(len(assessments), dtype=bool)
    for instrument in INSTRUMENTS.values():
        rows = (assessments["instrument"] == instrument.name).to_numpy(bool, na_value=False)
        answered, _ = _answered_and_sum(assessments, instrument.item_columns)
        enough = answered >= instrument.n_items - instrument.max_missing_items
        out |= rows & (assessments["total"].notna().to_numpy(dtype=bool) | enough)
    return out


def _cohort_findings(clean: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
    """Rows that load but are not used as they stand (see :class:`ValidationReport`).

    Judged on the default visit schedule (:data:`analysis.endpoints.DEFAULT_SCHEDULE`),
    with the cells that failed a check treated as missing.
    """
    from analysis.endpoints import DEFAULT_SCHEDULE, _instrument_visits

    if "assessments" not in clean or "patients" not in clean:
        return []
    a, p = clean["assessments"], clean["patients"]
    out: list[pd.DataFrame] = []
    day = a["study_day"].to_numpy(dtype=float, na_value=np.nan)
    known_day = ~np.isnan(day)
    scorable = _scorable(a)
    pid = a["patient_id"]
    patient_rows = pd.Series(np.arange(len(p)), index=p["patient_id"].astype(object))
    patient_rows = patient_rows[~patient_rows.index.duplicated() & patient_rows.index.notna()]

    def patient_finding(ids, check):
        ids = [i for i in ids if i in patient_rows.index]
        if ids:
            rows = np.sort(patient_rows.loc[ids].to_numpy())
            out.append(_fail("patients", rows, "patient_id", check, None, severity="finding"))

    for instrument in INSTRUMENTS.values():
        name = instrument.name
        rows = (a["instrument"] == name).to_numpy(dtype=bool, na_value=False) & known_day
        if not rows.any():
            continue
        visits = _instrument_visits(DEFAULT_SCHEDULE, instrument)
        windows = [v.contains(day) for v in visits]
        in_base, in_post = windows[0], np.logical_or.reduce(windows[1:])
        outside = rows & ~in_base & ~in_post
        if outside.any():
            positions = np.flatnonzero(outside)
            out.append(
                _fail(
                    "assessments",
                    positions,
                    "study_day",
                    f"outside_schedule for {name}",
                    _as_text(a["study_day"].iloc[positions]),
                    severity="finding",
                )
            )
        everyone = set(pid[rows].dropna())
        with_base = set(pid[rows & scorable & in_base].dropna())
        with_post = set(pid[rows & scorable & in_post].dropna())
        patient_finding(sorted(everyone - with_base), f"no_baseline for {name}")
        patient_finding(sorted(with_base - with_post), f"no_post_baseline for {name}")
    patient_finding(sorted(set(patient_rows.index) - set(pid.dropna())), "no_assessments")
    last = pd.Series(day, index=pid.astype(object)).groupby(level=0).max()
    for table in ("sessions", "adverse_events"):
        df = clean.get(table)
        if df is None or df.empty or "study_day" not in df.columns:
            continue
        limit = df["patient_id"].astype(object).map(last).to_numpy(dtype=float, na_value=np.nan)
        after = df["study_day"].to_numpy(dtype=float, na_value=np.nan) > limit
        if after.any():
            positions = np.flatnonzero(after)
            out.append(
                _fail(
                    table,
                    positions,
                    "study_day",
                    "after_last_assessment",
                    _as_text(df["study_day"].iloc[positions]),
                    severity="finding",
                )
            )
    return out


def _positional(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` indexed 0..n-1, sharing its columns (``reset_index`` would copy them all)."""
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        return df
    out = df.copy(deep=False)
    out.index = pd.RangeIndex(len(df))
    return out


def _validate_tables(tables, lines=None, read_findings=None) -> ValidationReport:
    """Validate tables together: every error and finding, typed tables, guard outcome."""

    raw = {name: _positional(df) for name, df in cohort_tables(tables, collected_only=True).items()}
    typed, clean, failures = {}, {}, list(read_findings or [])
    for table in TABLES:
        if table in raw:
            typed[table], clean[table], table_failures = _validate_table(
                table, raw[table], share=lines is not None
            )
            failures += table_failures
    for table in TABLES:
        if table in raw:
            failures += _check_foreign_keys(table, raw[table], clean[table], typed)
    failures += _cohort_findings(clean)
    _, identifiers = _scan(raw)
    failures.append(identifiers)
    failures = [f for f in failures if len(f)]
    result = pd.concat(failures, ignore_index=True) if failures else _empty_failures()
    if "severity" not in result.columns:
        result["severity"] = "error"
    if "count" not in result.columns:
        result["count"] = pd.NA
    result["severity"] = result["severity"].fillna("error")
    deid = result["check"].isin(list(IDENTIFIER_CHECKS))
    result = redact_failures(result)  # no value of a flagged or free-text column
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
            "severity": "string",
        }
    )
    is_error = (result["severity"] == "error").to_numpy(dtype=bool)
    failures_frame = result.loc[is_error, list(FAILURE_COLUMNS)].reset_index(drop=True)
    report = _report_frame(result, raw, lines or {})
    return ValidationReport(
        errors=report[is_error].reset_index(drop=True),
        findings=report[~is_error].reset_index(drop=True),
        tables=typed,
        failures=failures_frame,
        collected=tuple(t for t in TABLES if t in raw),
        deidentification=bool(deid.any()),
    )


def _report_frame(result: pd.DataFrame, raw: dict, lines: dict) -> pd.DataFrame:
    """Failures in the :data:`REPORT_COLUMNS` layout (line numbers, counts, safe values).

    A row's line comes from its position; a finding on lines outside the table (a blank
    row) brings its own ``line``."""
    line = pd.array([pd.NA] * len(result), dtype="Int64")
    if "line" in result.columns:
        line[:] = result["line"].astype("Int64").array
    for table in result["table"].dropna().unique():
        mask = (result["table"] == table).to_numpy(dtype=bool) & result["row"].notna().to_numpy(
            dtype=bool
        )
        if not mask.any():
            continue
        rows = result.loc[mask, "row"].to_numpy(dtype=np.int64)
        numbers = lines.get(table)
        if numbers is not None and len(numbers):
            within = rows < len(numbers)
            values = np.where(
                within, np.asarray(numbers)[np.minimum(rows, len(numbers) - 1)], rows + 2
            )
        else:
            values = rows + 2
        line[np.flatnonzero(mask)] = values
    sizes = result["table"].map({t: len(df) for t, df in raw.items()})
    count = result["count"].astype("Float64")
    count = count.where(count.notna(), np.where(result["row"].notna(), 1, sizes.fillna(0)))  # type: ignore[call-overload]  # pandas-stubs: where() with an array or NA
    showable = [
        _showable(str(t), str(c), str(k))
        for t, c, k in zip(result["table"], result["column"], result["check"], strict=True)
    ]
    value = result["value"].where(np.asarray(showable, dtype=bool), pd.NA)  # type: ignore[call-overload]  # pandas-stubs: where() with an array or NA
    out = pd.DataFrame(
        {
            "table": result["table"],
            "row": result["row"],
            "line": line,
            "column": result["column"],
            "check": result["check"],
            "count": count.round().astype("Int64"),
            "severity": result["severity"],
            "value": value.astype("string"),
        }
    )
    return out


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
        The errors, with columns ``table, row, column, check, value`` (see
        :class:`DataValidationError`); empty when the tables are valid. Sorted by table,
        row and column. Findings (rows that load, see :class:`ValidationReport`) are not
        failures: :func:`validate_cohort` lists both.

    Examples
    --------
    >>> patients = pd.DataFrame({"patient_id": ["P1", "P2"], "route": ["iv", "IV"]})
    >>> assessments = pd.DataFrame({"patient_id": ["P1", "P3"], "instrument": "GAD7",
    ...                             "study_day": 0, "total": [12, 30]})
    >>> failures = collect_failures({"patients": patients, "assessments": assessments})
    >>> print(failures[["table", "row", "column", "check"]].to_string())
             table  row      column                                        check
    0     patients    1       route  one_of iv, im, intranasal, oral, sublingual
    1  assessments    1  patient_id              foreign_key patients.patient_id
    2  assessments    1       total                       in_range 0-21 for GAD7
    >>> failures["value"].tolist()  # a patient_id could hold free text: never kept
    ['IV', '', '30']
    """
    return _validate_tables(tables).failures


def validate(df: pd.DataFrame, table: str, *, report: bool = False):
    """A validated, typed copy of one table, or :class:`DataValidationError`.

    Parameters
    ----------
    df : DataFrame
        The table as read (CSV text or typed columns). Column names are matched ignoring
        case and spaces (``"Item_1 "`` is ``item_1``; each renaming is a finding).
    table : {"patients", "assessments", "sessions", "adverse_events"}
        Which table it is.
    report : bool
        False (default): return the typed table or raise on any error (findings do not
        raise). True: never raise for the data; return the :class:`ValidationReport`
        (``.errors``, ``.findings``, ``.tables[table]``).

    Returns
    -------
    DataFrame or ValidationReport
        Schema columns in schema order with nullable dtypes (absent optional columns
        added, empty), then the extra columns as read; the index of ``df``.

    Raises
    ------
    DataValidationError
        With every error; :class:`~analysis.deid.DeidentificationError` when direct
        identifiers are among them. Foreign keys and findings across tables need the
        other tables: use :func:`validate_cohort` or :func:`load_cohort`.

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
    >>> validate(patients.rename(columns={"age": "Age "}), "patients", report=True).findings[
    ...     ["column", "check", "value"]]
      column           check value
    0    age  column_renamed  Age
    """
    check_choice("table", table, TABLES)
    result = _validate_tables({table: df})
    if report:
        if table in result.tables:
            result.tables[table].index = df.index
        return result
    result.raise_for_errors()
    out = result.tables[table]
    out.index = df.index
    return out


def _read_folder(folder: Path, missing_values) -> tuple[dict, dict, list, list[FileProblem]]:
    """Raw tables, their line numbers, reading findings and file problems of a folder."""
    from analysis.readers import find_table_files, read_table_file

    sources, problems = find_table_files(folder, TABLES)
    missing = [t for t in REQUIRED_TABLES if t not in sources]
    if missing and not any(p.check == "several_files" for p in problems):
        table = missing[0]
        raise FileNotFoundError(
            f"Table `{table}` not found in {folder}: expected {table}.csv or {table}.parquet "
            f"(or .xlsx, .ods, .sav, .sas7bdat, .xpt, .dta, or a sheet named {table} in a "
            "workbook). A cohort folder holds "
            f"{', '.join(t + '.csv' for t in REQUIRED_TABLES)} (or another format) and "
            f"optionally {', '.join(t + '.csv' for t in OPTIONAL_TABLES)}."
        )
    raw, lines, findings = {}, {}, []
    for table, (path, sheet) in sources.items():
        try:
            fields = _table_validator(table).fields
            read = read_table_file(
                path,
                table,
                fields,
                sheet=sheet,
                missing_values=missing_values,
                numeric_columns=[
                    n for n, f in fields.items() if f.get("type") in ("integer", "number")
                ],
            )
        except FileProblem as problem:
            problems.append(problem)
            continue
        raw[table], lines[table] = read.frame, read.lines
        for column, check, value, at in read.findings:
            if at:  # rows not in the table (blank ones): one finding per line
                note = _fail(table, [None] * len(at), column, check, value or None, "finding")
                note["count"], note["line"] = 1, pd.array(at, dtype="Int64")
            else:  # how the whole table was read
                note = _fail(table, [None], column, check, value or None, severity="finding")
                note["count"] = len(read.frame)
            findings.append(note)
    return raw, lines, findings, problems


def validate_cohort(
    source, *, missing_values=None, engine: str = "pandas", **engine_options
) -> ValidationReport:
    """Validate a cohort folder (or tables) and list its errors and findings, never raising.

    Parameters
    ----------
    source : str, Path, Cohort or mapping of str to DataFrame
        A cohort folder (as for :func:`load_cohort`) or the tables.
    missing_values : sequence of str, optional
        Cell values read as missing in files (default :data:`MISSING_VALUES`: ``""``,
        ``NA``, ``N/A``, ``n/a``, ``NULL``, ``.``). Tables passed as frames use the
        schema's ``missingValues`` (the same list).
    engine : {"pandas", "duckdb", "polars", "spark"}
        As for :func:`load_cohort`: another engine validates a folder of Parquet files
        (or a DuckDB file) in place; the report counts rows per table, column and check.
    **engine_options
        ``memory_limit`` (DuckDB) or ``spark`` (a SparkSession), as for
        :func:`load_cohort`.

    Returns
    -------
    ValidationReport
        ``.errors`` (the data would be refused), ``.findings`` (the data loads; the rows
        are accounted for), ``.tables`` (typed), ``.collected``. A file that cannot be read
        faithfully is an error of column ``(file)`` whose ``check`` names the file, the
        problem and the fix.

    Raises
    ------
    FileNotFoundError
        The folder or a required table is missing.

    Examples
    --------
    >>> patients = pd.DataFrame({"patient_id": ["P1", "P2"], "route": "iv"})
    >>> assessments = pd.DataFrame({"patient_id": "P1", "instrument": "GAD7",
    ...                             "study_day": [0, 28], "total": [15, 6]})
    >>> report = validate_cohort({"patients": patients, "assessments": assessments})
    >>> report.findings[["table", "row", "line", "check"]]
          table  row  line           check
    0  patients    1     3  no_assessments
    >>> print(report.describe())
    Findings (loaded, accounted):
      patients.patient_id: 1 row `no_assessments` (line 3)
          fix: add the patient's assessments, or remove the patient if never treated
    """
    if engine != "pandas":  # validation inside DuckDB, Polars or Spark
        from analysis._engine_validation import ENGINES, open_tables, validate_engine_cohort

        check_choice("engine", engine, ENGINES)
        natives, problems = open_tables(source, engine, **engine_options)
        return validate_engine_cohort(natives, missing_values=missing_values, problems=problems)
    if isinstance(source, Cohort | Mapping):
        return _validate_tables(source)
    folder = Path(source)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cohort folder {folder} does not exist or is not a folder; pass the folder "
            "holding patients.csv and assessments.csv (or .parquet)."
        )
    raw, lines, findings, problems = _read_folder(folder, missing_values)
    if problems:
        return _problem_report(problems)
    return _validate_tables(raw, lines, findings)


def load_cohort(
    path,
    strict: bool = False,
    *,
    missing_values=None,
    engine: str = "pandas",
    memory_limit: str | None = None,
    spark=None,
) -> Cohort:
    """Read, validate and de-identification-check a cohort folder.

    Parameters
    ----------
    path : str or Path
        A folder holding ``patients`` and ``assessments`` and optionally ``sessions`` and
        ``adverse_events``: each a file named after the table (any case) as ``.csv``
        (``.tsv``/``.txt``), ``.parquet``, ``.xlsx``, ``.ods``, SPSS ``.sav``, SAS
        ``.sas7bdat`` or ``.xpt``, or Stata ``.dta``, or a sheet named after the table in a
        workbook; one source per table. Other files are ignored. CSV files are UTF-8 (a byte-order mark
        and CRLF line ends are fine) with a header row; the delimiter (comma, semicolon,
        tab) is detected. See :mod:`analysis.readers`.
    strict : bool
        False (default): findings (rows that load but are not used as they stand, see
        :class:`ValidationReport`) are kept in ``cohort.findings``. True: any finding
        refuses the data like an error.
    missing_values : sequence of str, optional
        Cell values read as missing (default :data:`MISSING_VALUES`).
    engine : {"pandas", "duckdb", "polars", "spark"}
        ``"pandas"`` (default): the files are read into pandas, as described above.
        ``"duckdb"``, ``"polars"``, ``"spark"``: the tables are Parquet (``<table>.parquet``
        or a folder ``<table>/`` of Parquet files, e.g. written in chunks; for DuckDB also
        a database file whose tables are named after the tables), opened lazily by that
        engine. Validation and the de-identification guard run inside the engine with the
        same checks and messages, counting failing rows per table, column and check
        instead of listing them (``row``, ``line`` and ``value`` are empty); nothing is
        read into pandas. See :mod:`analysis._engine_validation`.
    memory_limit : str, optional
        ``engine="duckdb"`` only: the memory budget of the whole process, e.g. ``"4GB"``
        (sizes as DuckDB writes them: ``"4GB"``, ``"4GiB"``, ``"1500MB"``; at least 640
        MiB). DuckDB's buffers get three quarters of it, or the budget less 512 MiB where
        that is less (``"1GB"``: 442 MiB; DuckDB's own ``memory_limit`` bounds only its
        buffers); the rest is left for what DuckDB does not count (its Parquet readers,
        the allocator's slack) and for Python, pandas and Arrow. Beyond its share DuckDB
        spills to its temporary folder (``.tmp`` in the working folder). Set on the
        connection the returned tables belong to, so that
        :func:`~analysis.endpoints.derive_endpoints` and the statistics on them stay
        within it. Default: no budget, DuckDB's defaults (its buffers may take 80% of the
        machine's memory). A size that is not one, or too small, raises ``ValueError``.
    spark : SparkSession, optional
        ``engine="spark"`` only: the session to read with (default: the active one, or
        a new local one).

    Returns
    -------
    Cohort
        Typed tables (see :func:`validate`); an absent optional table is an empty frame
        with the schema's columns and is not in ``cohort.collected``;
        ``cohort.findings`` lists the findings. With an engine other than pandas the
        tables are that engine's lazy frames (DuckDB relations, Polars LazyFrames, Spark
        DataFrames) with the same columns and types; :func:`analysis.derive_endpoints`
        and the statistics accept them.

    Raises
    ------
    FileNotFoundError
        The folder or a required table is missing (the message names the files expected).
    DataValidationError
        Any error, in any table or file (all are collected first; the message names each
        file that could not be read and its fix: two files for one table, an empty file,
        a link to nothing, a non-UTF-8 CSV, ragged rows, a repeated column name, a nested
        Parquet column, an undetectable delimiter). ``.report`` holds the full
        :class:`ValidationReport`.
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
    >>> len(cohort.sessions), cohort.sessions.columns[1], cohort.collected
    (0, 'session_number', ('patients', 'assessments'))
    >>> cohort.findings[["table", "column", "check"]]
          table      column                        check
    0  patients  patient_id  no_post_baseline for GAD7
    """
    if engine != "pandas":  # read lazily; validated and guarded inside the engine
        from analysis._engine_validation import ENGINES, load_engine_cohort

        check_choice("engine", engine, ENGINES)
        return load_engine_cohort(
            path,
            engine,
            strict=strict,
            missing_values=missing_values,
            memory_limit=memory_limit,
            spark=spark,
        )
    report = validate_cohort(path, missing_values=missing_values)
    if strict:
        report = report.strict()
    report.raise_for_errors()
    typed = dict(report.tables)
    for table in OPTIONAL_TABLES:
        if table not in typed:  # (setdefault would build the empty table every time)
            typed[table] = _table_validator(table).empty()
    return Cohort(**typed, findings=report.findings, collected=report.collected)


def write_cohort(cohort: Cohort, path, format: str = "csv") -> Path:
    """Write a cohort as the folder :func:`load_cohort` reads.

    Parameters
    ----------
    cohort : Cohort
        The tables; an optional table that was not collected (``cohort.is_collected``)
        is not written, so that reading the folder back says the same.
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
        if table in OPTIONAL_TABLES and (len(df.columns) == 0 or not cohort.is_collected(table)):
            continue  # not collected: no file (a file with a header would mean "none occurred")
        target = folder / f"{table}.{format}"
        if format == "csv":
            df.to_csv(target, index=False)
        else:
            df.to_parquet(target, index=False)
    return folder
