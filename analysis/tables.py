"""Report tables: Table 1, the data-quality tables and the outcome report tables.

Every function takes the output of an earlier step (a :class:`~analysis.Cohort`, its
``assessments`` table, or the endpoint rows of :func:`cohort_endpoints`) and returns a
tidy DataFrame with documented columns, so that a notebook only calls and displays. Each
count-bearing table accepts ``min_cell``: when it is given, counts between 1 and
``min_cell - 1`` are blanked (small-cell suppression, the CMS rule of no cell of 1-10 with
the report default ``min_cell=11``; see ``docs/design.md``), and the table has a boolean
``suppressed`` column, with or without ``min_cell`` (Table 1, whose cells are text, says
so in the text instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis._frames import as_frame, column_names, require_columns, to_pandas
from analysis._utils import (
    as_by,
    check_choice,
    check_columns,
    check_min_cell,
    positional_deprecated,
    renamed_arguments,
)
from analysis.cohort import cohort_tables
from analysis.disclosure import suppress_cells
from analysis.instruments import INSTRUMENTS
from analysis.rates import _rate_tables
from analysis.schema import read_schema
from analysis.survival import EVENTS

if TYPE_CHECKING:
    from analysis._unavailable import NotAvailable

__all__ = [
    "accounting_summary",
    "agreement_table",
    "assessments_per_patient",
    "cohort_endpoints",
    "completeness_table",
    "deidentification_summary",
    "imputation_sensitivity",
    "item_missingness",
    "mean_scores",
    "mmrm_contrasts",
    "outcome_rates",
    "patient_exposure",
    "patient_flow",
    "severity_transitions",
    "subgroup_comparisons",
    "table_one",
    "validation_summary",
    "visits_in_schedule_order",
]

#: Table 1 rows: (column, kind) in display order. Columns absent from the data are skipped.
_TABLE_ONE_ROWS = (
    ("age", "continuous"),
    ("sex", "categorical"),
    ("primary_diagnosis", "categorical"),
    ("route", "categorical"),
    ("arm", "categorical"),
    ("comorbid_depression", "boolean"),
    ("treatment_resistant", "boolean"),
    ("prior_treatment_count", "count"),
    ("substance_use_history", "boolean"),
    ("concurrent_psychotherapy", "boolean"),
)


@cache
def _levels(column: str) -> tuple:
    """Level order of a categorical patients column: its enum in the data schema."""
    for field in read_schema("patients")["fields"]:
        if field["name"] == column:
            return tuple(field.get("constraints", {}).get("enum", ()))
    return ()


def _suppress(
    table: pd.DataFrame,
    min_cell: int | None,
    *,
    n: str | None,
    events: str,
    derived: Sequence[str] = (),
    partition: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Small-cell suppression of a report table; adds the ``suppressed`` column.

    The policy is :func:`analysis.disclosure.suppress_cells`: ``events``, ``n`` or
    ``n - events`` in 1..min_cell - 1 blanks ``events`` and ``derived`` (``n=None``
    checks ``events`` alone). When the rows of a ``partition`` group add up to a total
    (a distribution), a group with exactly one suppressed row would reveal it as the
    total minus the others, so the smallest other non-zero row of the group is
    suppressed too (complementary suppression).
    """
    margins = [list(partition)] if partition else None
    return suppress_cells(
        table, min_cell, [events], total=n, derived=list(derived), margins=margins
    )


def _percent(part: pd.Series, whole: pd.Series) -> pd.Series:
    """100 x part / whole, rounded to one decimal (NA when whole is 0)."""
    whole = whole.astype(float).where(whole > 0)
    return (100 * part.astype(float) / whole).round(1)


def validation_summary(cohort) -> pd.DataFrame:
    """Summarise the schema checks of every table of a cohort.

    Runs :func:`analysis.schema.collect_failures` on the cohort's tables (the optional
    ``sessions`` and ``adverse_events`` when the data supplied them, even with no rows:
    :meth:`analysis.Cohort.is_collected`) and counts the failures per table, column and check.

    Parameters
    ----------
    cohort : Cohort
        The cohort to check.

    Returns
    -------
    DataFrame
        Columns ``table, rows, column, check, failures``: ``rows`` is the table's row
        count, ``failures`` the number of failing cells for that column and check. A table
        without failures has one row with ``column`` empty and ``check`` "all checks
        passed".

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["p1", "p2"], "route": ["iv", "im"]})
    >>> assessments = pd.DataFrame(
    ...     {"patient_id": ["p1"], "instrument": ["GAD7"], "study_day": [0], "total": [12]}
    ... )
    >>> validation_summary(Cohort(patients, assessments))
             table  rows column              check  failures
    0     patients     2         all checks passed         0
    1  assessments     1         all checks passed         0
    """
    from analysis.schema import collect_failures

    tables = cohort_tables(cohort, collected_only=True)
    failures = collect_failures(tables)
    counts = (
        failures.groupby(["table", "column", "check"], sort=False).size().rename("failures")
        if len(failures)
        else pd.Series(dtype="int64", name="failures")
    )
    rows = []
    for name, df in tables.items():
        if len(counts) and name in counts.index.get_level_values("table"):
            cells = counts.loc[[name]]
            for column, check, count in zip(
                cells.index.get_level_values("column"),
                cells.index.get_level_values("check"),
                cells.to_numpy(),
                strict=True,
            ):
                rows.append((name, len(df), column, check, int(count)))
        else:
            rows.append((name, len(df), "", "all checks passed", 0))
    return pd.DataFrame(rows, columns=["table", "rows", "column", "check", "failures"])


def deidentification_summary(cohort) -> pd.DataFrame:
    """What the de-identification guard checked, per table and check.

    Runs :func:`analysis.deid.scan_identifiers` on the cohort's tables (the optional ones
    when the data supplied them) and counts, for each table and check, the columns it
    looked at and the values it flagged.

    Parameters
    ----------
    cohort : Cohort
        The cohort to scan.

    Returns
    -------
    DataFrame
        Columns ``table, check, columns_checked, n_flagged`` (``n_flagged`` is 0 for
        every check on data that :func:`analysis.load_cohort` accepted).
    """
    from analysis.deid import scan_identifiers

    scan = scan_identifiers(cohort_tables(cohort, collected_only=True))
    return (
        scan.groupby(["table", "check"], sort=False)
        .agg(columns_checked=("column", "nunique"), n_flagged=("n_flagged", "sum"))
        .reset_index()
    )


def completeness_table(cohort, schedule=None, *, min_cell: int | None = None) -> pd.DataFrame:
    """How many patients were assessed at each scheduled visit, by instrument.

    Every enrolled patient (``cohort.patients``) is *expected* at every visit scheduled
    for the instrument; a patient is *observed* at a visit when at least one of their
    assessments of the instrument falls inside the visit window (scorable or not).
    Instruments without any assessment are left out.

    Parameters
    ----------
    cohort : Cohort
        The cohort.
    schedule : sequence of Visit or DataFrame, optional
        Visit schedule as accepted by :func:`analysis.endpoints.make_schedule`; default
        :data:`analysis.endpoints.DEFAULT_SCHEDULE`. A visit counts for the instruments
        scheduled at it.
    min_cell : int, optional
        Suppress small cells (see module docstring).

    Returns
    -------
    DataFrame
        Columns ``instrument, visit, target_day, window_low, window_high, expected,
        observed, percent, suppressed``, by instrument in schedule order;
        ``percent`` = 100 x observed / expected.

    Notes
    -----
    The denominator is the same at every visit (all enrolled patients) rather than, say,
    the patients with a baseline: a denominator that is a count of an earlier row would
    reveal that row's suppressed complement.

    Examples
    --------
    Three patients: ``a`` assessed at baseline and week 1 (day 8), ``b`` at baseline and
    day 2, ``c`` at week 1 only:

    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b", "c"], "route": "iv"})
    >>> assessments = pd.DataFrame({
    ...     "patient_id": ["a", "a", "b", "b", "c"], "instrument": "GAD7",
    ...     "study_day": [-2, 8, 0, 2, 8], "total": [15, 7, 12, 10, 9]})
    >>> completeness_table(Cohort(patients, assessments))[
    ...     ["instrument", "visit", "expected", "observed", "percent"]]
      instrument     visit  expected  observed  percent
    0       GAD7  baseline         3         2     66.7
    1       GAD7      day1         3         1     33.3
    2       GAD7     week1         3         2     66.7
    3       GAD7     week2         3         0      0.0
    4       GAD7     week4         3         0      0.0
    5       GAD7     week8         3         0      0.0
    6       GAD7    week12         3         0      0.0
    """
    from analysis.endpoints import make_schedule

    check_columns(cohort.patients, ["patient_id"], "patients")
    check_columns(cohort.assessments, ["patient_id", "instrument", "study_day"], "assessments")
    visits = make_schedule(schedule)
    enrolled = pd.Index(cohort.patients["patient_id"].unique())
    assessments = cohort.assessments
    rows = []
    for instrument in INSTRUMENTS:
        days = assessments.loc[assessments["instrument"] == instrument]
        if days.empty:
            continue
        for visit in (v for v in visits if instrument in v.instruments):
            inside = days["study_day"].between(visit.window_low, visit.window_high)
            seen = pd.Index(days.loc[inside, "patient_id"].unique()).intersection(enrolled)
            window = (visit.target_day, visit.window_low, visit.window_high)
            rows.append((instrument, visit.name, *window, len(enrolled), len(seen)))
    columns = ["instrument", "visit", "target_day", "window_low", "window_high"]
    table = pd.DataFrame(rows, columns=[*columns, "expected", "observed"])
    table["percent"] = _percent(table["observed"], table["expected"])
    return _suppress(table, min_cell, n="expected", events="observed", derived=["percent"])


def item_missingness(assessments: pd.DataFrame, *, min_cell: int | None = None) -> pd.DataFrame:
    """Missing answers per item, by instrument.

    Counts, among the assessments of each instrument that record at least one item,
    those where the item is empty. Assessments recorded as a total only (no items) are
    left out of the denominator and counted in ``total_only``.

    Parameters
    ----------
    assessments : DataFrame
        The assessments table (``instrument`` and ``item_1`` ... columns).
    min_cell : int, optional
        Suppress small cells (see module docstring).

    Returns
    -------
    DataFrame
        Columns ``instrument, item, label, n, missing, percent, total_only, suppressed``:
        ``item`` is the item number, ``label`` its wording, ``n`` the assessments with
        any item answered, ``percent`` = 100 x missing / n.

    Examples
    --------
    Three GAD-7 assessments with items (one lacks item 2) and one recorded as a total:

    >>> import pandas as pd
    >>> items = {f"item_{k}": [1, 1, 1, None] for k in range(1, 8)}
    >>> items["item_2"] = [2, None, 0, None]
    >>> a = pd.DataFrame({"instrument": "GAD7", "total": [8, 6, 6, 12], **items})
    >>> item_missingness(a)[["instrument", "item", "n", "missing", "percent", "total_only"]]
      instrument  item  n  missing  percent  total_only
    0       GAD7     1  3        0      0.0           1
    1       GAD7     2  3        1     33.3           1
    2       GAD7     3  3        0      0.0           1
    3       GAD7     4  3        0      0.0           1
    4       GAD7     5  3        0      0.0           1
    5       GAD7     6  3        0      0.0           1
    6       GAD7     7  3        0      0.0           1
    """
    check_columns(assessments, ["instrument"], "assessments")
    rows = []
    for name, instrument in INSTRUMENTS.items():
        subset = assessments.loc[assessments["instrument"] == name]
        if subset.empty:
            continue
        items = subset.reindex(columns=instrument.item_columns)
        answered = items.notna()
        any_item = answered.any(axis=1)
        for k, (column, label) in enumerate(
            zip(instrument.item_columns, instrument.items, strict=True), 1
        ):
            missing = int((any_item & ~answered[column]).sum())
            rows.append((name, k, label, int(any_item.sum()), missing, int((~any_item).sum())))
    table = pd.DataFrame(
        rows, columns=["instrument", "item", "label", "n", "missing", "total_only"]
    )
    table.insert(5, "percent", _percent(table["missing"], table["n"]))
    return _suppress(table, min_cell, n="n", events="missing", derived=["percent"])


def assessments_per_patient(
    assessments: pd.DataFrame,
    *,
    min_cell: int | None = None,
    patients: int | pd.DataFrame | Sequence[object] | None = None,
) -> pd.DataFrame:
    """Distribution of the number of assessments per patient, by instrument.

    Parameters
    ----------
    assessments : DataFrame
        The assessments table (``patient_id`` and ``instrument``).
    min_cell : int, optional
        Suppress small cells (see module docstring). The rows of an instrument add up to
        its patients, so when one row is suppressed the next smallest is too.
    patients : int, DataFrame or sequence, optional
        The enrolled patients: their number, the cohort's ``patients`` table (its
        ``patient_id``) or their ids. When given, every instrument has a row
        ``assessments = 0`` for the enrolled patients without any assessment of it, so
        that the rows of each instrument add up to all enrolled patients (the ``n`` of
        Table 1) and complementary suppression works on the margin a reader knows. The
        reports pass it; without it a patient with no assessment of an instrument is in
        no row and the rows add up to the patients assessed at least once.

    Returns
    -------
    DataFrame
        Columns ``instrument, assessments, patients, percent, suppressed``: ``patients``
        had exactly ``assessments`` assessments of the instrument; ``percent`` is of the
        rows' total (all enrolled patients when ``patients`` is given, else the patients
        with at least one assessment of the instrument).

    Raises
    ------
    ValueError
        When ``patients`` is fewer than the patients assessed, or a negative number.

    Notes
    -----
    Without the zero row the distribution of an instrument misses the patients never
    assessed with it: a reader who knows the number of patients (Table 1) recovers that
    count as the difference, however small (e.g. 500 - 499 = 1).

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c", "c"],
    ...                   "instrument": ["GAD7", "GAD7", "GAD7", "GAD7", "GAD7", "HAMA"]})
    >>> assessments_per_patient(a)
      instrument  assessments  patients  percent  suppressed
    0       GAD7            1         1     33.3       False
    1       GAD7            2         2     66.7       False
    2       HAMA            1         1    100.0       False
    >>> assessments_per_patient(a, patients=4)
      instrument  assessments  patients  percent  suppressed
    0       GAD7            0         1     25.0       False
    1       GAD7            1         1     25.0       False
    2       GAD7            2         2     50.0       False
    3       HAMA            0         3     75.0       False
    4       HAMA            1         1     25.0       False
    """
    check_columns(assessments, ["patient_id", "instrument"], "assessments")
    per_patient = assessments.groupby(["instrument", "patient_id"]).size().rename("assessments")
    table = (
        per_patient.reset_index()
        .groupby(["instrument", "assessments"])
        .size()
        .rename("patients")
        .reset_index()
    )
    if patients is not None:
        table = _with_unassessed(table, per_patient, patients)
    total = table.groupby("instrument")["patients"].transform("sum")
    table["percent"] = _percent(table["patients"], total)
    table.insert(2, "_total", total)
    out = _suppress(
        table,
        min_cell,
        n="_total",
        events="patients",
        derived=["percent"],
        partition=["instrument"],
    )
    return out.drop(columns="_total")


def _with_unassessed(table: pd.DataFrame, per_patient: pd.Series, patients: object) -> pd.DataFrame:
    """``table`` with an ``assessments = 0`` row per instrument (the patients not assessed)."""
    assessed = per_patient.reset_index().groupby("instrument")["patient_id"]
    if isinstance(patients, int | np.integer) and not isinstance(patients, bool):
        if patients < 0:
            raise ValueError(f"`patients` must be a number of patients >= 0, not {patients}.")
        unassessed = int(patients) - assessed.nunique()
    else:
        if isinstance(patients, pd.DataFrame):
            check_columns(patients, ["patient_id"], "patients")
            patients = patients["patient_id"]
        listed = list(patients)  # type: ignore[call-overload]  # `patients`: any iterable of ids
        ids = pd.Index(pd.Series(listed, dtype=object).dropna().unique())
        unassessed = assessed.agg(lambda s: len(ids.difference(pd.Index(s.unique()))))
        outside = assessed.agg(lambda s: len(pd.Index(s.unique()).difference(ids)))
        if (outside > 0).any():
            raise ValueError(
                "assessments_per_patient: the `assessments` table refers to "
                f"{int(outside.max())} patient(s) not in `patients`; pass the cohort's "
                "full patients table (validation refuses such assessments)."
            )
    if (unassessed < 0).any():
        raise ValueError(
            "assessments_per_patient: `patients` is smaller than the number of patients "
            f"with an assessment ({int(assessed.nunique().max())}); pass the number of "
            "enrolled patients (Table 1's n)."
        )
    zero = pd.DataFrame(
        {
            "instrument": unassessed.index,
            "assessments": 0,
            "patients": unassessed.to_numpy(dtype="int64"),
        }
    )
    return (
        pd.concat([zero, table], ignore_index=True)
        .sort_values(["instrument", "assessments"], kind="stable")
        .reset_index(drop=True)
    )


def _count_text(count: int, total: int) -> str:
    """'n (p%)' for a count of a group."""
    percent = 100 * count / total if total else np.nan
    return f"{count} ({percent:.1f}%)"


def _summaries(values: pd.Series, kind: str) -> dict[str, str]:
    """Mean (SD) (continuous only) and median [IQR] of a numeric column."""
    numbers = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    cells = {}
    if kind == "continuous":
        sd = numbers.std(ddof=1) if len(numbers) > 1 else np.nan
        cells["mean (SD)"] = f"{numbers.mean():.1f} ({sd:.1f})" if len(numbers) else "-"
    if len(numbers):
        q1, median, q3 = numbers.quantile([0.25, 0.5, 0.75])
        cells["median [IQR]"] = f"{median:.1f} [{q1:.1f}, {q3:.1f}]"
    else:
        cells["median [IQR]"] = "-"
    return cells


def _level_counts(values: pd.Series, column: str, kind: str) -> pd.Series:
    """Counts per displayed level, ``missing`` last (only when values are missing)."""
    missing = int(values.isna().sum())
    if kind == "boolean":
        counts = pd.Series({"yes": int(values.dropna().astype(bool).sum())})
    elif kind == "categorical":
        observed = values.dropna().astype(str).value_counts()
        order = [v for v in _levels(column) if v in observed.index]
        order += sorted(set(observed.index) - set(order))
        counts = observed.reindex(order)
    else:
        counts = pd.Series(dtype="int64")
    if missing:
        counts["missing"] = missing
    return counts.astype("int64")


def _table_one_column(
    patients: pd.DataFrame, columns: list[tuple[str, str]]
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], int]]:
    """Table 1 of one group: statistics texts and counts by (variable, level).

    The counts include the rows that are not displayed but follow from the displayed
    ones (the ``no`` of a yes/no characteristic, key level ``"_no"``), so that
    disclosure control sees every cell of each margin.
    """
    total = len(patients)
    stats: dict[tuple[str, str], str] = {}
    counts: dict[tuple[str, str], int] = {("n", ""): total}
    for column, kind in columns:
        values = patients[column]
        if kind in ("continuous", "count"):
            stats.update({(column, k): v for k, v in _summaries(values, kind).items()})
        level_counts = _level_counts(values, column, kind)
        counts.update({(column, str(level)): int(c) for level, c in level_counts.items()})
        if kind == "boolean":
            counts[(column, "_no")] = total - int(level_counts.sum())
    return stats, counts


def _table_one_hidden(
    counts: pd.DataFrame, variables: pd.Series, min_cell: int
) -> tuple[np.ndarray, np.ndarray]:
    """Primary and complementary suppression of the Table 1 count grid.

    ``counts``: rows (variable, level), columns the groups then Overall (and a hidden
    ``_no_group`` column for patients without a group). Margins: the levels of a variable
    add up to the group's n; the groups add up to Overall. A group whose n is hidden has
    every count hidden. Returns (hidden, primary) boolean grids.
    """
    from analysis.disclosure import complementary_mask, small_count

    values = counts.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    primary = small_count(values.ravel(), min_cell).reshape(values.shape)
    hidden = primary.copy()
    row_of = np.repeat(np.arange(n_rows), n_cols)
    col_of = np.tile(np.arange(n_cols), n_rows)
    var_codes = pd.factorize(variables)[0]
    is_n_row = (variables == "n").to_numpy()
    # levels of a variable within a group column (the n row is the margin's total)
    level_groups = np.where(is_n_row[row_of], -1, var_codes[row_of] * n_cols + col_of).astype(float)
    level_groups[level_groups < 0] = np.nan
    overall = n_cols - 2  # the Overall column (before _no_group)
    # groups (with _no_group) against Overall: the row's cells except Overall add up to it
    group_groups = np.where(col_of == overall, np.nan, row_of).astype(float)
    while True:
        before = hidden.copy()
        # a hidden group n hides its whole column
        hidden[:, hidden[is_n_row].any(axis=0)] = True
        flat = complementary_mask(
            values.ravel(), hidden.ravel(), [level_groups, group_groups], min_cell=min_cell
        )
        hidden = flat.reshape(values.shape)
        if (hidden == before).all():
            return hidden, primary


def table_one(cohort, by: str | None = None, *, min_cell: int | None = None) -> pd.DataFrame:
    """Table 1: the patients' characteristics, overall or by group.

    Parameters
    ----------
    cohort : Cohort or DataFrame
        The cohort (its ``patients`` table is used) or a patients table.
    by : str, optional
        Column of ``patients`` to split by (e.g. ``"route"`` or ``"arm"``). Patients with
        no value of ``by`` appear in the Overall column only.
    min_cell : int, optional
        Suppress small cells (:mod:`analysis.disclosure`): a count between 1 and
        ``min_cell - 1`` shows as ``"<min_cell>"``; cells hidden so that a small one
        cannot be recovered from a margin show as ``"suppressed"`` (complementary
        suppression: the levels of a characteristic add up to the group's n, including
        the ``no`` of a yes/no row, and the groups add up to Overall). A group of fewer
        than ``min_cell`` patients, or whose n is hidden, has every cell hidden, its
        means and medians too.

    Returns
    -------
    DataFrame
        Columns ``variable, level``, then one column per level of ``by`` (sorted) and
        ``Overall``; every cell is display text. Rows: ``n``; age as mean (SD) and
        median [IQR]; counts with the percent of the group's patients for sex, primary
        diagnosis, route, arm and the yes/no characteristics (the "yes" count, e.g.
        comorbid depression, treatment resistant); prior treatments as median [IQR]; a
        ``missing`` level wherever values are missing. Columns absent from the data or
        empty are skipped.

    Notes
    -----
    Percentages are of all patients of the group, so the levels of a category and its
    ``missing`` row add up to 100%. Suppression acts on the whole grid: a group smaller
    than ``min_cell`` would be Overall minus the other groups, so the next-smallest group
    is hidden with it (combine small groups before splitting by them to keep more cells).

    Examples
    --------
    >>> import pandas as pd
    >>> patients = pd.DataFrame({
    ...     "patient_id": ["a", "b", "c", "d"], "age": [30, 40, 50, 60],
    ...     "sex": ["female", "female", "male", None], "route": ["iv", "iv", "im", "im"],
    ...     "treatment_resistant": [True, False, True, True]})
    >>> table_one(patients)
                  variable         level            Overall
    0                    n                                4
    1                  age     mean (SD)        45.0 (12.9)
    2                  age  median [IQR]  45.0 [37.5, 52.5]
    3                  sex        female          2 (50.0%)
    4                  sex          male          1 (25.0%)
    5                  sex       missing          1 (25.0%)
    6                route            iv          2 (50.0%)
    7                route            im          2 (50.0%)
    8  treatment_resistant           yes          3 (75.0%)
    >>> table_one(patients, by="route").columns.tolist()
    ['variable', 'level', 'im', 'iv', 'Overall']
    """
    patients = cohort if isinstance(cohort, pd.DataFrame) else cohort.patients
    columns = [
        (column, kind)
        for column, kind in _TABLE_ONE_ROWS
        if column in patients.columns and patients[column].notna().any()
    ]
    groups: list[tuple[str, pd.DataFrame]] = []
    if by is not None:
        check_columns(patients, [by], "patients")
        labels = patients[by].astype(str).where(patients[by].notna())
        groups += [(str(level), group) for level, group in patients.groupby(labels)]
    groups.append(("Overall", patients))
    check_min_cell(min_cell)
    parts = {name: _table_one_column(group, columns) for name, group in groups}
    keys = list(parts["Overall"][1])
    counts = pd.DataFrame({name: [c.get(k, 0) for k in keys] for name, (_, c) in parts.items()})
    if by is not None:
        counts["_no_group"] = counts["Overall"] - counts.drop(columns="Overall").sum(axis=1)
    else:
        counts["_no_group"] = 0
    variables = pd.Series([k[0] for k in keys])
    if min_cell is not None:
        hidden, primary = _table_one_hidden(counts, variables, min_cell)
    else:
        hidden = primary = np.zeros(counts.shape, dtype=bool)
    texts: dict[str, dict[tuple[str, str], str]] = {}
    for j, name in enumerate(parts):
        stats, _ = parts[name]
        group_n = int(counts.iloc[0, j])  # type: ignore[arg-type]  # a count
        column = {}
        for i, key in enumerate(keys):
            value = int(counts.iloc[i, j])  # type: ignore[arg-type]  # a count
            if hidden[i, j]:
                text = f"<{min_cell}" if primary[i, j] else "suppressed"
            elif key == ("n", ""):
                text = str(value)
            else:
                text = _count_text(value, group_n)
            column[key] = text
        n_hidden = bool(hidden[0, j])
        if n_hidden:  # a hidden group shows its n as hidden, nothing else
            column = {key: (column[key] if key == ("n", "") else "") for key in column}
        # no statistic of a group smaller than min_cell (or whose size is hidden)
        small_group = min_cell is not None and (n_hidden or group_n < min_cell)
        for key, text in stats.items():
            column[key] = ("" if n_hidden else "suppressed") if small_group else text
        texts[name] = column
    order = [("n", "")]
    for column, _kind in columns:
        order += [k for k in parts["Overall"][0] if k[0] == column]
        order += [k for k in keys if k[0] == column and k[1] != "_no"]
    table = pd.DataFrame(order, columns=["variable", "level"])
    for name, column in texts.items():
        table[name] = [column.get(key, "") for key in order]
    return table


# --------------------------------------------------------------------------------------
# outcome report tables (endpoints of both instruments, rates, agreement)


def _criteria_for(criteria, name: str, names: list[str]):
    """The ``criteria`` argument of one instrument: per-instrument mapping or shared."""
    if isinstance(criteria, Mapping) and criteria and set(criteria) <= set(names):
        return criteria.get(name)
    return criteria


def cohort_endpoints(
    cohort,
    instruments: str | Sequence[str] = ("GAD7", "HAMA"),
    *,
    impute: str = "observed",
    patient_columns: str | Sequence[str] = ("route", "primary_diagnosis"),
    schedule=None,
    criteria=None,
) -> pd.DataFrame:
    """Endpoint rows of several instruments with patient characteristics merged in.

    Calls :func:`analysis.derive_endpoints` for each instrument, stacks the results and
    adds the requested columns of ``cohort.patients`` (one value per patient), so that
    rates, comparisons and models can be split by route, diagnosis, arm, ...

    Parameters
    ----------
    cohort : Cohort
        The cohort (its ``assessments`` and ``patients``).
    instruments : str or sequence of str
        Instruments to derive, in output order (default GAD-7 then HAM-A).
    impute : {"observed", "locf", "bocf"}
        Handling of missed visits, as in :func:`analysis.derive_endpoints`.
    patient_columns : str or sequence of str
        Columns of ``cohort.patients`` to merge by ``patient_id``; those absent from the
        patients table are skipped (``primary_diagnosis`` is optional, for example).
        ``()`` merges nothing; an endpoint column name (``visit``, ``score``, ...) is an
        error.
    schedule : sequence of Visit or DataFrame, optional
        Visit windows, as in :func:`analysis.derive_endpoints`.
    criteria : Criteria or mapping, optional
        Outcome definitions passed to every instrument, or a mapping from instrument
        name to its criteria (``{"GAD7": {"response_reduction": 40}}``; instruments not
        named keep their defaults).

    Returns
    -------
    DataFrame
        The columns of :func:`analysis.derive_endpoints` (``visit`` stays the plain
        string column of that contract; see :func:`visits_in_schedule_order` for a
        model-ready ordered one), then the merged patient columns. Rows: the first
        instrument's, then the next one's, each in ``derive_endpoints`` order.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b"], "route": ["iv", "oral"]})
    >>> assessments = pd.DataFrame({
    ...     "patient_id": ["a", "a", "b", "b"] * 2,
    ...     "instrument": ["GAD7"] * 4 + ["HAMA"] * 4,
    ...     "study_day": [0, 28, -2, 30] * 2, "total": [16, 6, 12, 11, 24, 10, 18, 14]})

    HAM-A totals without items give no Cronbach's alpha for the reliable change, so the
    example passes a reliability for the HAM-A only:

    >>> ep = cohort_endpoints(Cohort(patients, assessments),
    ...                       criteria={"HAMA": {"reliability": 0.9}})
    >>> ep[["patient_id", "instrument", "visit", "baseline", "score", "response", "route"]]
      patient_id instrument  visit  baseline  score  response route
    0          a       GAD7  week4        16      6      True    iv
    1          b       GAD7  week4        12     11     False  oral
    2          a       HAMA  week4        24     10      True    iv
    3          b       HAMA  week4        18     14     False  oral
    """
    from analysis.endpoints import ENDPOINT_COLUMNS, derive_endpoints

    names = [instruments] if isinstance(instruments, str) else list(instruments)
    if not names:
        raise ValueError("`instruments` must name at least one instrument, e.g. ('GAD7',).")
    people = as_frame(cohort.patients, "patients")
    require_columns(people, ["patient_id"], "patients")
    patient_names = column_names(people)
    requested = as_by(patient_columns)
    reserved = [c for c in requested if c in ENDPOINT_COLUMNS]
    if reserved:
        raise ValueError(
            f"`patient_columns` {reserved} would overwrite endpoint columns; pass patient "
            "characteristics such as 'route' or 'arm'."
        )
    columns = [c for c in requested if c in patient_names]
    frames = [
        derive_endpoints(
            cohort,
            name,
            schedule=schedule,
            impute=impute,
            criteria=_criteria_for(criteria, str(name), [str(n) for n in names]),
        )
        for name in names
    ]
    if not isinstance(frames[0], pd.DataFrame):  # stacked and joined in the engine
        return _stack_in_engine(frames, cohort.patients, columns)
    nonempty = [f for f in frames if len(f)] or frames[:1]
    endpoints = pd.concat(nonempty, ignore_index=True)
    if not columns:
        return endpoints
    patients = cohort.patients[["patient_id", *columns]]
    return endpoints.merge(patients, on="patient_id", how="left", validate="many_to_one")


def _stack_in_engine(frames: list, patients, columns: list[str]):
    """Endpoint frames of a Polars, DuckDB or Spark cohort stacked, with the patient
    columns joined, in that engine (the result is of the same kind)."""
    import narwhals as nw

    stacked = nw.concat([nw.from_native(f) for f in frames], how="vertical")
    if not columns:
        return nw.to_native(stacked)
    people = nw.from_native(patients)
    if people.implementation != stacked.implementation:
        raise TypeError(
            "The cohort's `patients` and `assessments` must be tables of the same engine to "
            f"join them (got {people.implementation} and {stacked.implementation})."
        )
    people = people.select("patient_id", *columns)
    return nw.to_native(stacked.join(people, on="patient_id", how="left"))


def visits_in_schedule_order(endpoints: pd.DataFrame) -> pd.DataFrame:
    """A copy of the endpoints with ``visit`` as an ordered Categorical in schedule order.

    :func:`analysis.fit_mmrm` (like every model formula) orders a string column
    alphabetically, so "week12" would come before "week2" and the covariance matrix,
    LS means and contrasts would list the visits out of time order. An ordered
    Categorical keeps its order there.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows with ``visit`` and ``target_day``, e.g. of
        :func:`cohort_endpoints`, usually of one instrument.

    Returns
    -------
    DataFrame
        The same rows and columns; ``visit`` is an ordered Categorical whose levels are
        the visits present, by their ``target_day`` (ties by name).

    Examples
    --------
    >>> import pandas as pd
    >>> ep = pd.DataFrame({"visit": ["week12", "week2", "week4", "week2"],
    ...                    "target_day": [84, 14, 28, 14]})
    >>> visits_in_schedule_order(ep)["visit"].cat.categories.tolist()
    ['week2', 'week4', 'week12']
    """
    check_columns(endpoints, ["visit", "target_day"], "endpoints")
    from analysis.endpoints import visit_order

    visit = endpoints["visit"].astype("string")
    order = visit_order(visit.astype(object), endpoints["target_day"], unknown="natural")
    return endpoints.assign(visit=pd.Categorical(visit, categories=order, ordered=True))


def outcome_rates(
    endpoints: pd.DataFrame,
    outcomes: str | Sequence[str] = EVENTS,
    *,
    by: str | Sequence[str] | None = ("instrument", "visit"),
    method: str = "wilson",
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Rates of several outcomes in one long table.

    One :func:`analysis.rate_table` per outcome, stacked; the counts of every outcome
    come from one aggregate query of the endpoints' engine.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows (e.g. of :func:`cohort_endpoints`) with the ``by`` columns.
    outcomes : str or sequence of str
        Boolean outcome columns, in output order; default every outcome of
        ``derive_endpoints``: response, partial_response, remission,
        reliable_improvement, reliable_deterioration, recovery, reliable_recovery.
    by : str, sequence of str or ()
        Cells of each rate, as in :func:`analysis.rate_table`.
    method : {"wilson", "exact", "jeffreys", "agresti_coull"}
        Interval of each rate.
    alpha : float
        Two-sided error rate; 0.05 gives 95% intervals.
    min_cell : int, optional
        Small-cell rule of :func:`analysis.rate_table`.

    Returns
    -------
    DataFrame
        ``outcome, by..., n, events, rate, ci_low, ci_high, suppressed``, by outcome
        (in the order given) then ``by`` (visits in schedule order). A cell where the
        outcome is defined for nobody (``n`` = 0) is left out, so an outcome defined
        only for some instruments (recovery: GAD-7 only) has rows only for those.

    Examples
    --------
    >>> import pandas as pd
    >>> ep = pd.DataFrame({
    ...     "instrument": ["GAD7"] * 4 + ["HAMA"] * 4, "visit": "week4",
    ...     "response": [True, True, False, False, True, False, False, False],
    ...     "recovery": pd.array([True, False, None, True] + [None] * 4, dtype="boolean")})
    >>> outcome_rates(ep, ["response", "recovery"]).round(3)
        outcome instrument  visit  n  events   rate  ci_low  ci_high  suppressed
    0  response       GAD7  week4  4       2  0.500   0.150    0.850       False
    1  response       HAMA  week4  4       1  0.250   0.046    0.699       False
    2  recovery       GAD7  week4  3       2  0.667   0.208    0.939       False
    """
    names = as_by(outcomes)
    if not names:
        raise ValueError("`outcomes` must name at least one outcome, e.g. ('response',).")
    if "outcome" in as_by(by):
        raise ValueError("`by` must not contain 'outcome': it names the outcome column.")
    tables = _rate_tables(endpoints, names, by, method, alpha, min_cell, "auto")
    out = pd.concat(
        [t.assign(outcome=name) for name, t in zip(names, tables, strict=True)],
        ignore_index=True,
    )
    out = out[["outcome", *(c for c in out.columns if c != "outcome")]]
    defined = ~out["n"].eq(0).fillna(False).to_numpy(dtype=bool)
    return out[defined].reset_index(drop=True)


@renamed_arguments(methods="impute")
@positional_deprecated("impute", "min_cell")
def imputation_sensitivity(
    cohort,
    instruments: str | Sequence[str] = ("GAD7", "HAMA"),
    visit: str = "week4",
    outcomes: str | Sequence[str] = ("response", "remission"),
    *,
    impute: str | Sequence[str] = ("observed", "locf", "bocf"),
    min_cell: int | None = None,
    schedule=None,
    criteria=None,
) -> pd.DataFrame:
    """Rates at one visit under each way of handling missed visits.

    Derives the endpoints once per imputation method (:func:`cohort_endpoints`) and
    tabulates the outcomes at ``visit`` (:func:`outcome_rates`), so that observed cases
    can be set against last and baseline observation carried forward.

    Parameters
    ----------
    cohort : Cohort
        The cohort.
    instruments : str or sequence of str
        Instruments to derive.
    visit : str
        The visit compared (default ``"week4"``).
    outcomes : str or sequence of str
        Boolean outcome columns.
    impute : str or sequence of str
        Imputation methods of :func:`analysis.derive_endpoints` (``"observed"``,
        ``"locf"``, ``"bocf"``), in output order.
    min_cell : int, optional
        Small-cell rule of :func:`analysis.rate_table`.
    schedule, criteria : optional
        As in :func:`cohort_endpoints`.

    Returns
    -------
    DataFrame
        ``outcome, instrument, impute, n, events, rate, ci_low, ci_high, suppressed``,
        by outcome, instrument and method (in the order of ``impute``); Wilson 95%
        intervals.

    Notes
    -----
    LOCF fills a missed visit with the latest earlier post-baseline score and leaves out
    patients never assessed after baseline; BOCF fills it with the baseline score (no
    change, never a response). When observed cases are clearly above both, the patients
    who missed the visit were probably doing worse.

    Examples
    --------
    Patient ``a`` is assessed at week 4, ``b`` only at week 1 (a response), ``c`` only
    at baseline:

    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b", "c"], "route": "iv"})
    >>> assessments = pd.DataFrame({
    ...     "patient_id": ["a", "a", "b", "b", "c"], "instrument": "GAD7",
    ...     "study_day": [0, 28, 0, 7, 0], "total": [16, 6, 12, 5, 14]})
    >>> t = imputation_sensitivity(Cohort(patients, assessments), "GAD7",
    ...                            outcomes="response")
    >>> t[["outcome", "instrument", "impute", "n", "events", "rate"]].round(3)
        outcome instrument    impute  n  events   rate
    0  response       GAD7  observed  1       1  1.000
    1  response       GAD7      locf  2       2  1.000
    2  response       GAD7      bocf  3       1  0.333
    """
    from analysis.endpoints import IMPUTE

    check_min_cell(min_cell)  # before the derivations, not after them
    names = as_by(impute)
    if not names:
        raise ValueError("`impute` must name at least one of ('observed', 'locf', 'bocf').")
    for name in names:
        check_choice("impute", name, IMPUTE)
    frames = {
        name: cohort_endpoints(
            cohort,
            instruments,
            impute=name,
            patient_columns=(),
            schedule=schedule,
            criteria=criteria,
        )
        for name in names
    }
    endpoints = pd.concat([f.assign(impute=name) for name, f in frames.items()], ignore_index=True)
    at_visit = endpoints[(endpoints["visit"] == visit).fillna(False).to_numpy(dtype=bool)]
    # An ordered Categorical keeps the methods in the order given (not alphabetical).
    at_visit = at_visit.assign(
        impute=pd.Categorical(at_visit["impute"], categories=names, ordered=True)
    )
    out = outcome_rates(at_visit, outcomes, by=("instrument", "impute"), min_cell=min_cell)
    return out.assign(impute=out["impute"].astype(object))


@positional_deprecated("min_cell")
def accounting_summary(
    accounting: pd.DataFrame, *, min_cell: int | None = None, patients: int | None = None
) -> pd.DataFrame:
    """How many assessments were used, and why the others were not, by instrument.

    Parameters
    ----------
    accounting : DataFrame
        Output of :func:`analysis.endpoint_accounting` (``instrument`` and ``reason``).
    min_cell : int, optional
        Suppress small cells: a count of 1 to ``min_cell - 1`` is blanked; when that
        leaves one blanked count in an instrument, the smallest other non-zero count of
        the instrument is blanked too, since the instrument's total may be known from
        other tables (complementary suppression).
    patients : int, optional
        The number of enrolled patients (shown in Table 1). A patient has at most one
        baseline, so with ``min_cell`` the ``baseline`` count is also hidden when
        ``patients - baseline`` is small, as the completeness table hides it.

    Returns
    -------
    DataFrame
        ``instrument, reason, assessments, suppressed``: one row for every reason of
        :data:`analysis.endpoints.REASONS` (0 when no assessment had it) per instrument
        present, the uses (``visit``, ``baseline``) first, then the reasons for not
        using an assessment; reasons unknown to this package last. Counts are of
        assessments, not patients.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"instrument": "GAD7",
    ...                     "reason": ["baseline"] * 3 + ["visit"] * 8 + ["unscorable"]})
    >>> accounting_summary(acc)
      instrument                reason  assessments  suppressed
    0       GAD7                 visit            8       False
    1       GAD7              baseline            3       False
    2       GAD7  superseded_in_window            0       False
    3       GAD7           no_baseline            0       False
    4       GAD7      outside_schedule            0       False
    5       GAD7            unscorable            1       False
    """
    from analysis.endpoints import REASONS

    check_columns(accounting, ["instrument", "reason"], "accounting")
    counts = accounting.groupby(["instrument", "reason"]).size()
    present = accounting["reason"].dropna().unique().tolist()
    # REASONS is in order of priority (unscorable first); reports list the uses first.
    reasons = list(REASONS[::-1]) + sorted(set(present) - set(REASONS))
    instruments = sorted(accounting["instrument"].dropna().unique().tolist())
    index = pd.MultiIndex.from_product([instruments, reasons], names=["instrument", "reason"])
    table = counts.reindex(index, fill_value=0).rename("assessments").reset_index()
    table["assessments"] = table["assessments"].astype("int64")
    if patients is None:
        return _suppress(table, min_cell, n=None, events="assessments", partition=["instrument"])
    # one baseline per patient: its complement in the enrolled patients is a count too
    table["_patients"] = np.where(table["reason"] == "baseline", float(patients), np.nan)
    out = _suppress(table, min_cell, n="_patients", events="assessments", partition=["instrument"])
    return _baseline_shown_as_in_completeness(out, table, min_cell).drop(columns="_patients")


def _baseline_shown_as_in_completeness(out, table, min_cell):
    """Complementary suppression of the accounting never picks the baseline count.

    The baselines used are the patients observed at baseline, which the completeness
    table (report 01) shows unless small; hiding them here only as a complement would
    show in one table what another hides. Other non-zero counts of the instrument are
    hidden instead, the smallest first, until the hidden counts are not a single cell
    and add up to 0 or to at least ``min_cell`` (the policy of
    :func:`analysis.disclosure.complementary_mask`).

    Fallback: when the instrument's other non-zero counts cannot do that (there are
    none, or too few), the baseline count stays hidden: hiding rather than showing.
    The completeness table then shows what this one hides, which the batch's audit
    reports (``shown_elsewhere``), rather than a small count following from this table.
    """
    from analysis.disclosure import small_count

    if min_cell is None:
        return out
    value = table["assessments"].to_numpy(dtype=float)
    total = table["_patients"].to_numpy(dtype=float)
    primary = small_count(value, min_cell) | small_count(total - value, min_cell)
    hidden = out["assessments"].isna().to_numpy(dtype=bool)
    out = out.copy()

    def safe(cells: list[int]) -> bool:
        together = float(value[cells].sum()) if cells else 0.0
        return len(cells) != 1 and not (0 < together < min_cell)

    for instrument in out["instrument"].unique():
        rows = (out["instrument"] == instrument).to_numpy(dtype=bool)
        is_base = (out["reason"] == "baseline").to_numpy(dtype=bool)
        base = np.flatnonzero(rows & is_base)
        if len(base) != 1 or not hidden[base[0]] or primary[base[0]]:
            continue
        others = [int(k) for k in np.flatnonzero(rows & hidden & ~is_base)]
        candidates = sorted(
            (int(k) for k in np.flatnonzero(rows & ~hidden & (value > 0))), key=lambda k: value[k]
        )
        swap: list[int] = []
        while not safe(others + swap) and candidates:
            swap.append(candidates.pop(0))
        if not safe(others + swap):
            continue  # the fallback: the baseline count stays hidden
        out.loc[out.index[base[0]], "assessments"] = int(value[base[0]])
        out.loc[out.index[base[0]], "suppressed"] = False
        for k in swap:
            out.loc[out.index[k], "assessments"] = pd.NA
            out.loc[out.index[k], "suppressed"] = True
    return out


@positional_deprecated("min_cell")
def agreement_table(
    endpoints: pd.DataFrame,
    outcomes: str | Sequence[str] = ("response", "remission"),
    visit: str = "week4",
    *,
    min_cell: int | None = None,
    instruments: tuple[str, str] = ("GAD7", "HAMA"),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Agreement of the GAD-7 and HAM-A classifications at a visit, one row per outcome.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows of both instruments (e.g. of :func:`cohort_endpoints`).
    outcomes : str or sequence of str
        Boolean outcomes compared (default response and remission).
    visit : str
        The visit (default ``"week4"``).
    min_cell : int, optional
        Suppress small cells: a row whose ``n``, number of patients classified alike
        (``n x observed_agreement``) or classified differently lies in
        ``1 .. min_cell - 1`` has the agreement, kappa and interval blanked (``n`` too
        when under ``min_cell``) and ``suppressed=True``.
    instruments : tuple of two str
        The instruments compared.
    alpha : float
        Two-sided error rate of the kappa interval.

    Returns
    -------
    DataFrame
        ``outcome, visit, n, observed_agreement, kappa, ci_low, ci_high, suppressed``
        from :func:`analysis.agreement.instrument_agreement` (unweighted Cohen's kappa
        with its large-sample interval); ``n`` counts the patients with the outcome
        defined on both instruments at the visit. The 2 x 2 table itself is not
        returned, as its cells can be small.

    Examples
    --------
    >>> import pandas as pd
    >>> gad = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    >>> ham = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    >>> ids = [f"p{i}" for i in range(50)]
    >>> ep = pd.concat([
    ...     pd.DataFrame({"patient_id": ids, "instrument": "GAD7", "visit": "week4",
    ...                   "response": gad}),
    ...     pd.DataFrame({"patient_id": ids, "instrument": "HAMA", "visit": "week4",
    ...                   "response": ham})])
    >>> agreement_table(ep, "response").round(3)
        outcome  visit   n  observed_agreement  kappa  ci_low  ci_high  suppressed
    0  response  week4  50                 0.7    0.4   0.151    0.649       False
    """
    from analysis.agreement import instrument_agreement

    rows = []
    for outcome in as_by(outcomes):
        res = instrument_agreement(endpoints, outcome, visit, instruments, alpha=alpha)
        kappa = (res.kappa.kappa, res.kappa.ci_low, res.kappa.ci_high)
        rows.append((outcome, visit, res.n, res.observed_agreement, *kappa))
    columns = ["outcome", "visit", "n", "observed_agreement", "kappa", "ci_low", "ci_high"]
    table = pd.DataFrame(rows, columns=columns)
    table["n"] = table["n"].astype("int64")
    if min_cell is None:
        return table.assign(suppressed=False)
    # n x observed_agreement patients agree, the rest disagree: both are counts of people.
    agree = (table["n"] * table["observed_agreement"]).round()
    derived = ["observed_agreement", "kappa", "ci_low", "ci_high"]
    out = suppress_cells(
        table.assign(_agree=agree), min_cell, ("_agree",), total="n", derived=derived
    )
    return out.drop(columns="_agree")


# --------------------------------------------------------------------------------------
# tables behind the report figures (flow, transitions, subgroups, trajectories, exposure)
# and the MMRM contrast table


def patient_flow(
    cohort, instrument: str = "GAD7", *, schedule=None, min_cell: int | None = None
) -> pd.DataFrame:
    """CONSORT-style flow of patients: treated, with a baseline, followed, seen per visit.

    Parameters
    ----------
    cohort : Cohort
        The cohort.
    instrument : str
        The scale followed (default ``"GAD7"``).
    schedule : optional
        Visit windows, as in :func:`analysis.derive_endpoints`.
    min_cell : int, optional
        Suppress small cells (see module docstring); every stage is a count of the
        treated patients.

    Returns
    -------
    DataFrame
        ``stage, visit, patients, percent, suppressed``: the stages ``treated`` (every
        patient), ``baseline`` (with a scorable baseline), ``post_baseline`` (with at
        least one observed post-baseline visit) and one ``visit`` stage per scheduled
        visit of the instrument (observed at it); ``percent`` is of the treated.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b", "c"], "route": "iv"})
    >>> assessments = pd.DataFrame({"patient_id": ["a", "a", "b"], "instrument": "GAD7",
    ...                             "study_day": [0, 28, 0], "total": [15, 6, 12]})
    >>> patient_flow(Cohort(patients, assessments))[["stage", "visit", "patients"]].head(4)
               stage  visit  patients
    0        treated               3
    1       baseline               2
    2  post_baseline               1
    3          visit   day1         0
    """
    from analysis.endpoints import derive_endpoints, make_schedule

    check_columns(cohort.patients, ["patient_id"], "patients")
    treated = cohort.patients["patient_id"].nunique()
    assessments = cohort.assessments
    bocf = to_pandas(derive_endpoints(cohort, instrument, schedule=schedule, impute="bocf"))
    observed = to_pandas(derive_endpoints(cohort, instrument, schedule=schedule))
    rows = [
        ("treated", "", treated),
        ("baseline", "", bocf["patient_id"].nunique()),
        ("post_baseline", "", observed["patient_id"].nunique()),
    ]
    if assessments.empty:
        rows = rows[:1] + [("baseline", "", 0), ("post_baseline", "", 0)]
    for visit in make_schedule(schedule):
        if instrument in visit.instruments and visit.target_day > 0:
            seen = observed.loc[observed["visit"] == visit.name, "patient_id"].nunique()
            rows.append(("visit", visit.name, seen))
    table = pd.DataFrame(rows, columns=["stage", "visit", "patients"])
    table["patients"] = table["patients"].astype("int64")
    table["percent"] = _percent(table["patients"], pd.Series(treated, index=table.index))
    table["_total"] = treated
    return _suppress(table, min_cell, n="_total", events="patients", derived=["percent"]).drop(
        columns="_total"
    )


def severity_transitions(
    endpoints: pd.DataFrame,
    instrument: str = "GAD7",
    visit: str = "week4",
    *,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Severity band at a visit by severity band at baseline (observed patients).

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows (``instrument, visit, baseline_severity, severity``).
    instrument, visit : str
        The scale and the visit (default GAD-7 at week 4).
    min_cell : int, optional
        Suppress small cells: the rows of one baseline band add up to its patients, so
        when one is blanked the next smallest is too (complementary suppression).

    Returns
    -------
    DataFrame
        ``baseline_severity, severity, patients, percent, suppressed``: every pair of
        bands of the instrument, mildest first (0 where no patient moved so); ``percent``
        is of the patients of the baseline band seen at the visit.

    Examples
    --------
    >>> import pandas as pd
    >>> ep = pd.DataFrame({"instrument": "GAD7", "visit": "week4",
    ...                    "baseline_severity": ["severe", "severe", "moderate"],
    ...                    "severity": ["mild", "severe", "mild"]})
    >>> t = severity_transitions(ep)
    >>> t[t["patients"] > 0][["baseline_severity", "severity", "patients", "percent"]]
       baseline_severity severity  patients  percent
    9           moderate     mild         1    100.0
    13            severe     mild         1     50.0
    15            severe   severe         1     50.0
    """
    check_columns(endpoints, ["instrument", "visit", "baseline_severity", "severity"], "endpoints")
    bands = list(INSTRUMENTS[instrument].severity_bands.labels)
    rows = endpoints[
        (endpoints["instrument"] == instrument).fillna(False).to_numpy(dtype=bool)
        & (endpoints["visit"].astype(str) == visit).to_numpy(dtype=bool)
    ]
    if "imputed" in rows.columns:
        rows = rows[~rows["imputed"].fillna(False).astype(bool).to_numpy()]
    counts = rows.groupby(["baseline_severity", "severity"]).size()
    index = pd.MultiIndex.from_product([bands, bands], names=["baseline_severity", "severity"])
    table = counts.reindex(index, fill_value=0).rename("patients").reset_index()
    table["patients"] = table["patients"].astype("int64")
    table["_total"] = table.groupby("baseline_severity")["patients"].transform("sum")
    table["percent"] = _percent(table["patients"], table["_total"])
    out = _suppress(
        table,
        min_cell,
        n="_total",
        events="patients",
        derived=["percent"],
        partition=["baseline_severity"],
    )
    return out.drop(columns="_total")


def subgroup_comparisons(
    endpoints: pd.DataFrame,
    outcome: str = "response",
    subgroups: str | Sequence[str] = (
        "route",
        "primary_diagnosis",
        "sex",
        "comorbid_depression",
        "treatment_resistant",
    ),
    *,
    references: Mapping[str, object] | None = None,
    instrument: str = "GAD7",
    visit: str = "week4",
    p_adjust: str = "holm",
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Risk differences between the levels of each patient characteristic, one family.

    For each characteristic in ``subgroups`` present in ``endpoints``, every level is
    compared with the characteristic's reference level by :func:`analysis.compare_rates`
    at one visit of one instrument; the p-values of all comparisons are adjusted together.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows with the characteristics merged in (:func:`cohort_endpoints` with
        ``patient_columns``).
    outcome : str
        Boolean outcome (default ``"response"``).
    subgroups : str or sequence of str
        Patient columns; absent ones are skipped.
    references : mapping, optional
        Reference level per characteristic (default: ``iv`` for route, ``GAD`` for the
        diagnosis, ``False`` for yes/no characteristics, else the first sorted level).
        A yes/no characteristic takes ``True`` or ``False``; any other takes one of its
        levels in the rows compared.
    instrument, visit : str
        Where the outcome is compared (default GAD-7 at week 4).
    p_adjust : str
        Multiplicity adjustment over all comparisons (:func:`analysis.adjust_pvalues`).
    min_cell : int, optional
        Small-cell rule of :func:`analysis.compare_rates`.

    Returns
    -------
    DataFrame
        ``subgroup`` (the characteristic), then the columns of
        :func:`analysis.compare_rates` with ``by=()`` (``group, reference, n, events,
        n_ref, events_ref, risk_difference, rd_ci_low, rd_ci_high, ...``, ``p_value``,
        ``p_adjusted`` and ``suppressed`` when ``min_cell`` is given); ``group`` and
        ``reference`` as text.

    Raises
    ------
    ValueError
        A reference of ``references`` is not ``True``/``False`` for a yes/no
        characteristic, or not one of the characteristic's levels; or no characteristic
        has two levels.
    """
    from analysis.rates import adjust_pvalues, compare_rates

    defaults = {"route": "iv", "primary_diagnosis": "GAD"}
    references = dict(references or {})
    rows = endpoints[
        (endpoints["instrument"] == instrument).fillna(False).to_numpy(dtype=bool)
        & (endpoints["visit"].astype(str) == visit).to_numpy(dtype=bool)
    ]
    frames = []
    for column in as_by(subgroups):
        if column not in rows.columns or rows[column].dropna().nunique() < 2:
            continue
        values = rows[column].dropna()
        if pd.api.types.is_bool_dtype(values.dtype) or set(values.unique()) <= {True, False}:
            data = rows.assign(**{column: rows[column].map({True: "yes", False: "no"})})
            chosen = references.get(column, False)
            if not isinstance(chosen, bool | np.bool_):
                raise ValueError(
                    f"`references[{column!r}]` must be one of [False, True] (`{column}` is a "
                    f"yes/no characteristic), but {chosen!r} was passed."
                )
            reference = "yes" if chosen else "no"
        else:
            data = rows.assign(**{column: rows[column].astype("string")})
            levels = sorted(values.astype(str).unique())
            if column in references:
                reference = str(references[column])
                if reference not in levels:
                    raise ValueError(
                        f"`references[{column!r}]` must be one of the levels of `{column}` "
                        f"at {instrument} {visit}, {levels}, but {references[column]!r} "
                        "was passed."
                    )
            else:  # the default reference when the data has it, else the first level
                reference = str(defaults.get(column, levels[0]))
                reference = reference if reference in levels else levels[0]
        out = compare_rates(
            data, outcome, column, reference=str(reference), by=(), min_cell=min_cell
        )
        frames.append(out.assign(subgroup=column))
    if not frames:
        raise ValueError(
            f"None of the subgroups {as_by(subgroups)} has two levels in `endpoints` at "
            f"{instrument} {visit}; merge patient columns with cohort_endpoints(..., "
            "patient_columns=...)."
        )
    table = pd.concat(frames, ignore_index=True)
    table["group"] = table["group"].astype(str)
    table["reference"] = table["reference"].astype(str)
    table = adjust_pvalues(table, "p_value", p_adjust)
    if "suppressed" in table.columns:
        table.loc[table["suppressed"].fillna(False).astype(bool), "p_adjusted"] = np.nan
    return table[["subgroup", *(c for c in table.columns if c != "subgroup")]]


def mean_scores(
    endpoints: pd.DataFrame,
    by: str | Sequence[str] = ("instrument", "visit", "route"),
    *,
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Mean score with its t interval at baseline and each visit, by group.

    The baseline rows come from the ``baseline`` column (one per patient and
    instrument), the visit rows from ``score`` of the observed (not imputed) rows.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows (``patient_id, instrument, visit, target_day, baseline, score``) with
        the ``by`` columns.
    by : str or sequence of str
        Cells; must contain ``visit``.
    alpha : float
        Two-sided error rate of the interval (mean +/- t SD / sqrt(n)).
    min_cell : int, optional
        A cell of fewer than ``min_cell`` patients has every statistic blanked and
        ``suppressed=True``; the cells of a column that splits patients (route, ...)
        add up to the visit's patients, so with one such cell hidden the next smallest
        is hidden too (complementary suppression, :mod:`analysis.disclosure`).

    Returns
    -------
    DataFrame
        ``by..., n, mean, sd, ci_low, ci_high, suppressed``, visits in schedule order
        (baseline first).

    Examples
    --------
    >>> import pandas as pd
    >>> ep = pd.DataFrame({"patient_id": ["a", "b"], "instrument": "GAD7",
    ...                    "visit": "week4", "target_day": 28, "baseline": [16, 12],
    ...                    "score": [6, 8], "route": "iv"})
    >>> mean_scores(ep)[["visit", "n", "mean", "sd"]]
          visit  n  mean     sd
    0  baseline  2  14.0  2.828
    1     week4  2   7.0  1.414
    """
    from scipy import stats

    keys = as_by(by)
    if "visit" not in keys:
        raise ValueError("`by` must contain 'visit', e.g. ('instrument', 'visit', 'route').")
    check_columns(endpoints, ["patient_id", "baseline", "score", "target_day", *keys], "endpoints")
    visits = endpoints
    if "imputed" in visits.columns:
        visits = visits[~visits["imputed"].fillna(False).astype(bool).to_numpy()]
    others = [k for k in keys if k != "visit"]
    base = endpoints.drop_duplicates(["patient_id", *[k for k in others if k != "patient_id"]])
    base = base.assign(visit="baseline", target_day=0, score=base["baseline"])
    data = pd.concat([base, visits], ignore_index=True)
    data = data.assign(score=pd.to_numeric(data["score"], errors="coerce").astype(float))
    grouped = data.groupby(keys, sort=False, dropna=True)
    table = grouped["score"].agg(n="count", mean="mean", sd="std").reset_index()
    day = grouped["target_day"].min().reset_index(drop=True)
    t = stats.t.ppf(1 - alpha / 2, np.maximum(table["n"] - 1, 1))
    half = t * table["sd"] / np.sqrt(table["n"])
    table["ci_low"] = table["mean"] - half
    table["ci_high"] = table["mean"] + half
    table["n"] = table["n"].astype("int64")
    order = [k for k in others]
    table = (
        table.assign(_day=pd.to_numeric(day).to_numpy())
        .sort_values([*order, "_day"], kind="stable")
        .drop(columns="_day")
        .reset_index(drop=True)
    )
    table[["mean", "sd", "ci_low", "ci_high"]] = table[["mean", "sd", "ci_low", "ci_high"]].round(3)
    if min_cell is None:
        return table.assign(suppressed=False)
    from analysis.disclosure import partition_margins

    # the routes of a visit add up to its patients (shown elsewhere): complementary
    # suppression, the same decision as the rate tables by route (rate_table, "auto")
    return suppress_cells(
        table,
        min_cell,
        ("n",),
        total=None,
        derived=["mean", "sd", "ci_low", "ci_high"],
        margins=partition_margins(keys),
    )


def patient_exposure(
    cohort,
    *,
    visit_day: int = 28,
    dose_bands: Sequence[float] = (0.6, 0.8),
    session_bands: Sequence[int] = (4, 6, 8),
) -> pd.DataFrame:
    """Per patient: sessions received by a day, typical dose and whether maintained.

    Parameters
    ----------
    cohort : Cohort
        The cohort (``patients`` and ``sessions``).
    visit_day : int
        Sessions on days ``0 .. visit_day`` count as received by the visit (default
        28, week 4).
    dose_bands : sequence of float
        Cut points (mg/kg) of the dose bands; a patient's dose is the median
        ``dose_mg_per_kg`` of their sessions (weight-based routes, IV and IM, only).
    session_bands : sequence of int
        Lower bounds (after the first band) of the session-count bands.

    Returns
    -------
    DataFrame
        ``patient_id, sessions_received, sessions_band, dose_mg_per_kg, dose_band,
        maintenance, phase_group``: ``sessions_band`` like "1-3", "4-5", "6-7", "8+" and
        ``dose_band`` like "under 0.6 mg/kg" (NA without a mg/kg dose), both ordered
        Categoricals; ``maintenance`` True when the patient had any session of phase
        ``maintenance``, and ``phase_group`` the same as ``"maintenance"`` or
        ``"induction_only"``. Sessions marked not completed
        are not counted.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> p = pd.DataFrame({"patient_id": ["a", "b"], "route": ["iv", "oral"]})
    >>> s = pd.DataFrame({"patient_id": ["a", "a", "b"], "session_number": [1, 2, 1],
    ...                   "study_day": [0, 40, 0], "route": ["iv", "iv", "oral"],
    ...                   "dose_mg_per_kg": [0.5, 0.5, None],
    ...                   "phase": ["induction", "maintenance", "induction"]})
    >>> e = patient_exposure(Cohort(p, pd.DataFrame(), sessions=s))
    >>> e[["patient_id", "sessions_received", "sessions_band", "dose_band", "maintenance"]]
      patient_id  sessions_received sessions_band        dose_band  maintenance
    0          a                  1           1-3  under 0.6 mg/kg         True
    1          b                  1           1-3              NaN        False
    """
    check_columns(cohort.patients, ["patient_id"], "patients")
    ids = cohort.patients["patient_id"]
    sessions = cohort.sessions
    if sessions is None or sessions.empty:
        sessions = pd.DataFrame(columns=["patient_id", "study_day"])
    check_columns(sessions, ["patient_id", "study_day"], "sessions")
    done = sessions
    if "completed" in done.columns:
        done = done[done["completed"].fillna(True).astype(bool).to_numpy()]
    by_visit = done[pd.to_numeric(done["study_day"]) <= visit_day]
    received = by_visit.groupby("patient_id").size().reindex(ids, fill_value=0).to_numpy()
    dose = (
        pd.to_numeric(done["dose_mg_per_kg"], errors="coerce").groupby(done["patient_id"]).median()
        if "dose_mg_per_kg" in done.columns
        else pd.Series(dtype=float)
    )
    maintained = (
        (done["phase"] == "maintenance").fillna(False).groupby(done["patient_id"]).any()
        if "phase" in done.columns
        else pd.Series(dtype=bool)
    )
    edges = [1, *session_bands]
    session_labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    session_labels.append(f"{edges[-1]}+")
    sessions_band = pd.cut(received, [*edges, np.inf], right=False, labels=session_labels)
    cuts = list(dose_bands)
    dose_labels = [f"under {cuts[0]:g} mg/kg"]
    dose_labels += [
        f"{lo:g} to under {hi:g} mg/kg" for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    dose_labels.append(f"{cuts[-1]:g} mg/kg or more")
    dose_values = dose.reindex(ids).to_numpy(dtype=float)
    dose_band = pd.cut(dose_values, [-np.inf, *cuts, np.inf], right=False, labels=dose_labels)
    maintenance = maintained.reindex(ids, fill_value=False).astype(bool).to_numpy()
    return pd.DataFrame(
        {
            "patient_id": ids.to_numpy(),
            "sessions_received": received.astype("int64"),
            "sessions_band": pd.Categorical(
                pd.Series(sessions_band).where(received > 0),
                categories=session_labels,
                ordered=True,
            ),
            "dose_mg_per_kg": dose_values,
            "dose_band": pd.Categorical(dose_band, categories=dose_labels, ordered=True),
            "maintenance": maintenance,
            "phase_group": np.where(maintenance, "maintenance", "induction_only"),
        }
    )


def mmrm_contrasts(
    result,
    factor: str = "route",
    by: str | Sequence[str] | None = "visit",
    reference=None,
    *,
    alpha: float = 0.05,
    p_adjust: str = "holm",
) -> pd.DataFrame | NotAvailable:
    """MMRM contrasts against the reference level with multiplicity-adjusted p-values.

    Parameters
    ----------
    result : MMRMResult or ReportMMRM
        A fitted model (:func:`analysis.fit_mmrm`), or a report's model
        (:func:`analysis.report_sections.fit_report_mmrm`), whose unavailable contrasts
        are returned as they are.
    factor, by, reference, alpha
        As in :meth:`analysis.mmrm.MMRMResult.pairwise`.
    p_adjust : str
        Method of :func:`analysis.adjust_pvalues` over every contrast of the table
        (default Holm).

    Returns
    -------
    DataFrame or NotAvailable
        The columns of ``pairwise`` (``by..., contrast, estimate, se, df, t, p, ci_low,
        ci_high``) and ``p_adjusted``; a report's unavailable contrasts as they are.
    """
    from analysis._unavailable import NotAvailable
    from analysis.rates import adjust_pvalues

    contrasts = result.pairwise(factor, by=by, reference=reference, alpha=alpha)
    if isinstance(contrasts, NotAvailable):  # a report's model these data cannot support
        return contrasts
    return adjust_pvalues(contrasts, "p", p_adjust)
