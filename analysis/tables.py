"""Report tables: Table 1 of patient characteristics and the data-quality tables.

Every function takes the output of an earlier step (a :class:`~analysis.Cohort` or its
``assessments`` table) and returns a tidy DataFrame with documented columns, so that a
notebook only calls and displays. Each count-bearing table accepts ``min_cell``: when it
is given, counts between 1 and ``min_cell - 1`` are blanked (small-cell suppression, the
CMS rule of no cell of 1-10 with the report default ``min_cell=11``; see ``DESIGN.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis._utils import check_columns
from analysis.instruments import INSTRUMENTS
from analysis.rates import suppress_small_cells

__all__ = [
    "assessments_per_patient",
    "completeness_table",
    "deidentification_summary",
    "item_missingness",
    "table_one",
    "validation_summary",
]

#: Tables of a cohort in report order; the first two are required.
_TABLES = ("patients", "assessments", "sessions", "adverse_events")

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

#: Level order of the categorical columns (the data schema's order); others sort after.
_LEVELS = {
    "sex": ("female", "male", "other", "unknown"),
    "primary_diagnosis": ("GAD", "SAD", "PD", "PTSD", "MIXED", "OTHER"),
    "route": ("iv", "im", "intranasal", "oral", "sublingual"),
}


def _cohort_tables(cohort) -> dict[str, pd.DataFrame]:
    """The cohort's tables by name; the optional ones only when they hold rows."""
    tables = {}
    for name in _TABLES:
        df = getattr(cohort, name, None)
        if df is None or (name not in _TABLES[:2] and df.empty):
            continue
        tables[name] = df
    return tables


def _suppress(
    table: pd.DataFrame,
    min_cell: int | None,
    *,
    n: str,
    events: str,
    derived: Sequence[str] = (),
    partition: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Small-cell suppression of a report table; adds the ``suppressed`` column.

    The row rule is :func:`analysis.rates.suppress_small_cells` (``events``, ``n`` or
    ``n - events`` in 1..min_cell - 1 blanks ``events`` and ``derived``). When the rows
    of a ``partition`` group add up to ``n`` (a distribution), a group with exactly one
    suppressed row would reveal it as ``n`` minus the others, so the smallest other
    non-zero row of the group is suppressed too (complementary suppression).
    """
    if min_cell is None:
        return table.assign(suppressed=False)
    out = suppress_small_cells(table, min_cell, [events], total=n, derived=list(derived))
    if partition:
        flag = out["suppressed"].copy()
        for rows in out.groupby(list(partition), sort=False).groups.values():
            if flag[rows].sum() == 1:
                others = table.loc[rows, events][~flag[rows] & (table.loc[rows, events] > 0)]
                if len(others):
                    flag[others.astype(float).idxmin()] = True
        out.loc[flag, [events, *derived]] = pd.NA
        out["suppressed"] = flag
    return out


def _percent(part: pd.Series, whole: pd.Series) -> pd.Series:
    """100 x part / whole, rounded to one decimal (NA when whole is 0)."""
    whole = whole.astype(float).where(whole > 0)
    return (100 * part.astype(float) / whole).round(1)


def validation_summary(cohort) -> pd.DataFrame:
    """Summarise the schema checks of every table of a cohort.

    Runs :func:`analysis.schema.collect_failures` on the cohort's tables (the optional
    ``sessions`` and ``adverse_events`` only when they hold rows) and counts the failures
    per table, column and check.

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

    tables = _cohort_tables(cohort)
    failures = collect_failures(tables)
    counts = (
        failures.groupby(["table", "column", "check"], sort=False).size().rename("failures")
        if len(failures)
        else pd.Series(dtype="int64", name="failures")
    )
    rows = []
    for name, df in tables.items():
        if len(counts) and name in counts.index.get_level_values("table"):
            for (_, column, check), count in counts.loc[[name]].items():
                rows.append((name, len(df), column, check, int(count)))
        else:
            rows.append((name, len(df), "", "all checks passed", 0))
    return pd.DataFrame(rows, columns=["table", "rows", "column", "check", "failures"])


def deidentification_summary(cohort) -> pd.DataFrame:
    """What the de-identification guard checked, per table and check.

    Runs :func:`analysis.deid.scan_identifiers` on the cohort's tables and counts, for
    each table and check, the columns it looked at and the values it flagged.

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

    scan = scan_identifiers(_cohort_tables(cohort))
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
    assessments: pd.DataFrame, *, min_cell: int | None = None
) -> pd.DataFrame:
    """Distribution of the number of assessments per patient, by instrument.

    Parameters
    ----------
    assessments : DataFrame
        The assessments table (``patient_id`` and ``instrument``).
    min_cell : int, optional
        Suppress small cells (see module docstring). The rows of an instrument add up to
        its patients, so when one row is suppressed the next smallest is too.

    Returns
    -------
    DataFrame
        Columns ``instrument, assessments, patients, percent, suppressed``: ``patients``
        had exactly ``assessments`` assessments of the instrument; ``percent`` is of the
        patients with at least one assessment of it.

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


def _format_count(count: int, total: int, min_cell: int | None) -> tuple[str, bool]:
    """'n (p%)' for a count of a group, and whether it is suppressed."""
    if min_cell is not None and 0 < count < min_cell:
        return f"<{min_cell}", True
    if min_cell is not None and 0 < total - count < min_cell:
        return "suppressed", True
    percent = 100 * count / total if total else np.nan
    return f"{count} ({percent:.1f}%)", False


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
        order = [v for v in _LEVELS.get(column, ()) if v in observed.index]
        order += sorted(set(observed.index) - set(order))
        counts = observed.reindex(order)
    else:
        counts = pd.Series(dtype="int64")
    if missing:
        counts["missing"] = missing
    return counts.astype("int64")


def _table_one_column(
    patients: pd.DataFrame, columns: list[tuple[str, str]], min_cell: int | None
) -> dict[tuple[str, str], str]:
    """Table 1 cells of one group: (variable, level) -> text, in display order."""
    total = len(patients)
    if min_cell is not None and 0 < total < min_cell:
        return {("n", ""): f"<{min_cell}"}
    cells = {("n", ""): str(total)}
    for column, kind in columns:
        values = patients[column]
        if kind in ("continuous", "count"):
            cells.update({(column, k): v for k, v in _summaries(values, kind).items()})
        counts = _level_counts(values, column, kind)
        texts, small = {}, {}
        for level, count in counts.items():
            texts[level], small[level] = _format_count(int(count), total, min_cell)
        # The hidden "no" of a yes/no row is n - yes - missing: protect it through "yes".
        no = total - int(counts.sum())
        if kind == "boolean" and min_cell is not None and 0 < no < min_cell:
            texts["yes"] = texts["yes"] if small["yes"] else "suppressed"
        # A category with one suppressed level would reveal it as n minus the others.
        if kind == "categorical" and sum(small.values()) == 1:
            shown = counts[[not small[k] and counts[k] > 0 for k in counts.index]]
            if len(shown):
                texts[shown.idxmin()] = "suppressed"
        cells.update({(column, level): text for level, text in texts.items()})
    return cells


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
        Suppress small cells: a count between 1 and ``min_cell - 1`` shows as
        ``"<min_cell>"``; a count whose complement in its group is that small, and the
        smallest other level of a category with exactly one small level, show as
        ``"suppressed"``; a group with fewer than ``min_cell`` patients shows only its
        ``n``, as ``"<min_cell>"``.

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
    ``missing`` row add up to 100%. Suppression acts within each column: a group smaller
    than ``min_cell`` can still be derived as Overall minus the other groups, so combine
    small groups before splitting by them.

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
    cells = {name: _table_one_column(group, columns, min_cell) for name, group in groups}
    rows = list(cells["Overall"])
    table = pd.DataFrame(rows, columns=["variable", "level"])
    for name, column in cells.items():
        # A level absent from a group is a count of 0; a suppressed group shows only n.
        absent = "" if len(column) == 1 else "0 (0.0%)"
        table[name] = [column.get(key, absent) for key in rows]
    return table
