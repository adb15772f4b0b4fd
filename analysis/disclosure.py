"""Disclosure control: what may leave the package (tables, figures, report folders).

The guard (:mod:`analysis.deid`) decides what may *enter*; this module decides what may
be *shown*. It is the only place that implements suppression; every public function of
the package that outputs counts of people or statistics of groups takes a keyword
``min_cell`` (validated by :func:`check_min_cell`) and calls the functions below.

The policy, with ``min_cell = 11`` in the reports (the CMS cell-size suppression policy:
no cell of 1 to 10 may be displayed, nor any value from which one can be derived):

1. **Primary rule.** A count of people between 1 and ``min_cell - 1`` is hidden, and so
   is everything derived from it (a rate, a percentage, an interval). A denominator
   ``n`` shown next to a count reveals its complement ``n - count``, so a row is hidden
   also when the complement is small; ``n`` itself is blanked only when it is under
   ``min_cell``. Zero is shown (CMS allows 0).
2. **Complementary (secondary) suppression.** When the rows of a group add up to a total
   that is shown (or shown elsewhere, e.g. the patients of each route add up to all
   patients), one hidden cell in the group is recoverable as the total minus the shown
   cells. The next-smallest cell of the group is then hidden too, and this is repeated
   over every margin until no margin has exactly one hidden cell (as statistical
   agencies do; Hundepool et al. 2012, ch. 5). Several hidden cells are not enough
   when they are small: the total minus the shown cells is their *sum*, the people of
   the hidden groups together (2 + 3 = 5). So within every margin the hidden cells must
   add up to 0 or to at least ``min_cell``; the next-smallest shown non-zero cell is
   hidden until they do (or nothing non-zero is shown). The same holds for the
   complements ``n - count`` of the hidden rows, and, in a ``--by-site`` run, for the
   *remainder* of every population (the pooled count minus the shown sites' counts:
   the withheld sites and the patients without a site), see
   :func:`linked_suppression`.
3. **Small groups.** No estimate, mean, LS mean, effect size, survival curve or median
   is given for a group of fewer than ``min_cell`` patients.

:func:`audit_report_dir` checks a folder of rendered reports against the same policy,
table by table (:func:`audit_table`) and across the tables of the whole batch
(:func:`cross_table_findings`: a count hidden in one table may be neither shown in
another nor follow from the margins the tables show together).

References
----------
Centers for Medicare & Medicaid Services. CMS Cell Size Suppression Policy (no cell of
1-10 and no cell from which such a value can be derived).
Hundepool A, Domingo-Ferrer J, Franconi L, et al. (2012). Statistical Disclosure
Control. Wiley. Chapter 5 (magnitude and frequency tables, secondary suppression).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_MIN_CELL",
    "AuditResult",
    "DisclosureAuditError",
    "hidden_levels",
    "hide_populations",
    "linked_suppression",
    "linked_hidden_levels",
    "linked_level",
    "audit_report_dir",
    "apply_linked_suppression",
    "audit_table",
    "check_min_cell",
    "complementary_mask",
    "cross_table_findings",
    "model_summary",
    "number_at_risk",
    "partition_margins",
    "set_linked_suppression",
    "report_site_sets",
    "shown_count",
    "small_count",
    "suppress_cells",
    "suppress_group_statistics",
    "suppress_small_groups",
    "suppress_survival_curve",
    "withhold_groups",
]

#: The reports' small-cell threshold: no count of 1 to 10 is shown (CMS rule).
DEFAULT_MIN_CELL = 11

#: Grouping columns whose levels do *not* split patients into disjoint groups (a patient
#: has a row at every visit and for both instruments), so they form no margin.
NON_PARTITION_COLUMNS = frozenset(  # fmt: skip
    {
        "instrument",
        "visit",
        "impute",
        "outcome",
        "time",
        "term",
        "variable",
        "level",
        "session_number",
        "session",
        "phase",
        "study_day",
        "week",
        "day",
        "target_day",
        "contrast",
        "reference",
    }
)


@overload
def check_min_cell(min_cell: object, *, optional: Literal[False]) -> int: ...
@overload
def check_min_cell(min_cell: object, *, optional: bool = True) -> int | None: ...
def check_min_cell(min_cell: object, *, optional: bool = True) -> int | None:
    """Validate ``min_cell``: a positive integer, or None when ``optional``.

    Parameters
    ----------
    min_cell : int or None
        Smallest count of people that may be shown (besides 0); 11 is the CMS rule.
    optional : bool
        Whether ``None`` (no suppression) is accepted.

    Returns
    -------
    int or None
        ``min_cell`` as a Python int (None stays None).

    Raises
    ------
    ValueError
        For 0, a negative number, a bool, a float or anything else.

    Examples
    --------
    >>> check_min_cell(11)
    11
    >>> check_min_cell(-3)
    Traceback (most recent call last):
    ...
    ValueError: `min_cell` must be a positive integer (11 for the CMS rule) or None, but -3 was passed.
    """  # noqa: E501
    if min_cell is None and optional:
        return None
    if not isinstance(min_cell, int | np.integer) or isinstance(min_cell, bool | np.bool_):
        ok = False
    else:
        ok = min_cell >= 1
    if not ok:
        raise ValueError(
            "`min_cell` must be a positive integer (11 for the CMS rule)"
            f"{' or None' if optional else ''}, but {min_cell!r} was passed."
        )
    return int(min_cell)  # type: ignore[call-overload]  # an integer, checked above


def small_count(values: object, min_cell: int) -> np.ndarray:
    """Whether each value is a count in ``1 .. min_cell - 1`` (missing values: False).

    Examples
    --------
    >>> small_count([0, 1, 10, 11, None], 11).tolist()
    [False, True, True, False, False]
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":  # numbers: no parsing
        numbers = values.astype(float, copy=False)
        return (numbers >= 1) & (numbers < min_cell)  # NaN compares False
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(float)
    return ((v >= 1) & (v < min_cell)).fillna(False).to_numpy(dtype=bool)


def shown_count(count: int, min_cell: int | None) -> int | str:
    """A count as it may be printed: itself, or ``"<min_cell"`` when 1 to min_cell - 1.

    Examples
    --------
    >>> shown_count(3, 11), shown_count(0, 11), shown_count(300, 11)
    ('<11', 0, 300)
    """
    min_cell = check_min_cell(min_cell)
    if min_cell is not None and small_count([count], min_cell)[0]:
        return f"<{min_cell}"
    return int(count)


def partition_margins(by: Iterable[str]) -> list[list[str]]:
    """The margins of a table grouped by ``by``: one per column that partitions patients.

    For every grouping column whose levels split patients into disjoint groups (route,
    site, diagnosis, sex, arm, ...; not instrument, visit, imputation, outcome), the rows
    that share the *other* grouping values add up to a total that is shown elsewhere
    (the table without that column). Each such margin is returned as the list of the
    other columns (``[]`` means all rows form one margin).

    Examples
    --------
    >>> partition_margins(["instrument", "visit", "route"])
    [['instrument', 'visit']]
    >>> partition_margins(["instrument", "visit"])
    []
    """
    by = list(by)
    return [[c for c in by if c != col] for col in by if col not in NON_PARTITION_COLUMNS]


def complementary_mask(
    values: Sequence[float] | np.ndarray,
    hidden: Sequence[bool] | np.ndarray,
    groups: Sequence[np.ndarray | Sequence[object]],
    *,
    min_cell: int | None = None,
) -> np.ndarray:
    """Hidden cells after complementary suppression within every margin.

    Parameters
    ----------
    values : array of numbers
        The cells (counts), one per position.
    hidden : array of bool
        Cells already hidden (by the primary rule).
    groups : sequence of arrays
        One array of group labels per margin: the cells sharing a label add up to a total
        that is shown (``None``/NaN labels belong to no group).
    min_cell : int, optional
        The small-cell threshold (validated by :func:`check_min_cell`). With it, the
        hidden cells of a group must also *add up* to 0 or to at least ``min_cell``:
        their sum is the shown total minus the shown cells, a count of people (the
        union of the hidden groups). None keeps only the rule on the number of hidden
        cells (the old behaviour).

    Returns
    -------
    ndarray of bool
        ``hidden`` plus the complementary cells: whenever a group has exactly one hidden
        cell, or (with ``min_cell``) hidden cells whose known values add up to 1 to
        ``min_cell - 1``, its smallest shown non-zero cell (else, for a single hidden
        cell, its smallest shown cell) is hidden too; repeated until no group of any
        margin has either.

    Notes
    -----
    A hidden cell whose value is unknown (NaN) makes the group's hidden sum unknown;
    only the one-hidden-cell rule applies to such a group.

    Examples
    --------
    >>> complementary_mask([40, 4, 20, 30], [False, True, False, False],
    ...                    [["a", "a", "a", "a"]]).tolist()
    [False, True, True, False]

    Two small cells of 2 and 3 are hidden, but the total minus the shown cells gives
    their union, 5 people; the next smallest shown cell goes too:

    >>> complementary_mask([40, 2, 3, 30], [False, True, True, False],
    ...                    [["a", "a", "a", "a"]], min_cell=11).tolist()
    [False, True, True, True]
    """
    min_cell = check_min_cell(min_cell)
    vals = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    mask = np.asarray(hidden, dtype=bool).copy()
    labels = [pd.factorize(pd.Series(list(g), dtype=object))[0] for g in groups]
    changed = True
    while changed:
        changed = False
        for codes in labels:
            for code in np.unique(codes[codes >= 0]):
                members = np.flatnonzero(codes == code)
                if len(members) < 2:
                    continue
                hid = members[mask[members]]
                if not len(hid):
                    continue
                shown = members[~mask[members] & ~np.isnan(vals[members])]
                if not len(shown):
                    continue
                positive = shown[vals[shown] > 0]
                if len(hid) == 1:
                    pool = positive if len(positive) else shown
                elif (
                    min_cell is not None
                    and not np.isnan(vals[hid]).any()
                    and 0 < vals[hid].sum() < min_cell
                ):
                    pool = positive  # hiding a zero would not change the sum
                else:
                    continue
                if not len(pool):
                    continue
                mask[pool[np.argmin(vals[pool])]] = True
                changed = True
    return mask


def _blank(out: pd.DataFrame, column: str, mask: np.ndarray) -> None:
    col = out[column]
    if pd.api.types.is_bool_dtype(col.dtype):
        values: Any = col.array.astype("boolean", copy=True)
    elif pd.api.types.is_integer_dtype(col.dtype):
        values = col.array.astype("Int64", copy=True)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype=float, na_value=np.nan, copy=True)
    else:
        out[column] = col.mask(mask) if mask.any() else col
        return
    # ``Series.mask`` on the typed column, on its array (a column per derived statistic
    # of every suppressed table: the Series method's overhead adds up).
    values[mask] = np.nan if isinstance(values, np.ndarray) else pd.NA
    out[column] = values


def _hide_rows(table: pd.DataFrame, hide: np.ndarray, labels: Iterable[str]) -> pd.DataFrame:
    """A copy of ``table`` with the rows ``hide`` blanked in every column but ``labels``,
    and marked in its ``suppressed`` column when it has one."""
    keep = {str(c) for c in labels} | {"suppressed"}
    out = table.copy()
    for c in out.columns:
        if str(c) not in keep:
            _blank(out, c, hide)
    if "suppressed" in out.columns:
        out["suppressed"] = out["suppressed"].fillna(False).astype(bool).to_numpy() | hide
    return out


def _masked_counts(values: np.ndarray, mask: np.ndarray) -> Any:
    """Counts (floats, NaN missing) as nullable ``Int64``, rounded, NA where ``mask``."""
    counts = pd.array(values, dtype="Float64").round().astype("Int64")  # type: ignore[attr-defined]  # pandas-stubs: ExtensionArray has no round
    counts[mask] = pd.NA
    return counts


def suppress_cells(
    table: pd.DataFrame,
    min_cell: int | None,
    counts: Sequence[str] = ("events",),
    *,
    total: str | None = "n",
    derived: Sequence[str] | None = None,
    margins: Sequence[Sequence[str]] | None = None,
    hidden: Sequence[bool] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Primary and complementary suppression of the counts of a table, row by row.

    Parameters
    ----------
    table : DataFrame
        One row per cell of a report table.
    min_cell : int or None
        Smallest count that may be shown besides 0 (validated by
        :func:`check_min_cell`); None returns the table with ``suppressed=False``.
    counts : sequence of str
        Counts of people that are parts of ``total`` (events, patients in a category).
    total : str or None
        Denominator of ``counts`` (``"n"``); its complements ``total - count`` are checked
        too. None checks the counts alone.
    derived : sequence of str or None
        Statistics computed from the counts of a row (rates, intervals, percentages),
        blanked with them. None means every float column.
    margins : sequence of sequence of str, optional
        Margins for complementary suppression: each is a list of columns; rows sharing
        their values add up to a shown total (``[]``: all rows). See
        :func:`partition_margins`.
    hidden : array of bool, optional
        Rows hidden whatever their counts, by a decision taken elsewhere (the groups
        Table 1 hides, :func:`hidden_levels`); complementary suppression starts from
        them.

    Returns
    -------
    DataFrame
        A copy: counts as nullable ``Int64`` with hidden ones blanked, ``derived`` blanked
        in hidden rows, ``total`` blanked where under ``min_cell`` (or hidden as a
        complement), and a boolean ``suppressed`` column (or-ed with an existing one).

    Examples
    --------
    >>> t = pd.DataFrame({"site": ["a", "b", "c"], "n": [40, 40, 6],
    ...                   "events": [12, 35, 3], "rate": [0.3, 0.875, 0.5]})
    >>> suppress_cells(t, 11)
      site     n  events  rate  suppressed
    0    a    40      12   0.3       False
    1    b    40    <NA>   NaN        True
    2    c  <NA>    <NA>   NaN        True
    >>> suppress_cells(t, 11, margins=[[]])["n"].tolist()  # 6 = total - 40 - 40
    [<NA>, 40, <NA>]
    """
    min_cell = check_min_cell(min_cell)
    counts = [counts] if isinstance(counts, str) else list(counts)
    needed = counts + ([total] if total else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"Table is missing the count column(s) {missing}.")
    out = table.copy()
    previous = (
        out["suppressed"].fillna(False).astype(bool).to_numpy()
        if "suppressed" in out
        else np.zeros(len(out), dtype=bool)
    )
    if min_cell is None:
        out["suppressed"] = previous
        return out
    if derived is None:
        derived = [
            c for c in out.columns if pd.api.types.is_float_dtype(out[c].dtype) and c not in needed
        ]
    derived = [c for c in ([derived] if isinstance(derived, str) else derived)]
    values = {c: pd.to_numeric(out[c], errors="coerce").astype(float).to_numpy() for c in needed}
    flag = np.zeros(len(out), dtype=bool)
    for c in counts:
        flag |= small_count(values[c], min_cell)
        if total:
            flag |= small_count(values[total] - values[c], min_cell)
    hide_total = small_count(values[total], min_cell) if total else np.zeros(len(out), bool)
    flag |= hide_total
    if hidden is not None:
        flag |= np.asarray(hidden, dtype=bool)
    groups = [
        out[list(m)].astype(str).agg("\x1f".join, axis=1).to_numpy()
        if len(m)
        else np.zeros(len(out), dtype=int)
        for m in (margins or [])
    ]
    if groups:
        while True:
            before = (flag.copy(), hide_total.copy())
            for c in counts:
                flag = complementary_mask(values[c], flag, groups, min_cell=min_cell)
                if total:  # the hidden rows' complements add up to a count of people too
                    flag = complementary_mask(
                        values[total] - values[c], flag, groups, min_cell=min_cell
                    )
            if total:
                hide_total = complementary_mask(
                    values[total], hide_total, groups, min_cell=min_cell
                )
                flag |= hide_total
            if (flag == before[0]).all() and (hide_total == before[1]).all():
                break
    for c in counts:
        out[c] = _masked_counts(values[c], flag)
    if total:
        out[total] = _masked_counts(values[total], hide_total)
    for c in derived:
        _blank(out, c, flag)
    out["suppressed"] = flag | previous
    return out


def hidden_levels(levels: pd.Series, min_cell: int | None) -> set[str]:
    """The groups Table 1 hides when it splits patients by a column (one decision).

    Parameters
    ----------
    levels : Series
        The column of the patients table (one value per patient; missing: no group).
    min_cell : int or None
        As in :func:`check_min_cell`; None hides nothing.

    Returns
    -------
    set of str
        The levels (as text) of fewer than ``min_cell`` patients and, since the groups
        (with the patients without a group) add up to all patients, the next-smallest
        groups that complementary suppression hides with them: the group columns
        :func:`analysis.tables.table_one` with ``by`` blanks. The safety tables hide
        the same groups (``suppress_cells(..., hidden=...)``), so that one table does
        not show a group another hides.

    Examples
    --------
    >>> route = pd.Series(["iv"] * 40 + ["oral"] * 20 + ["im"] * 30 + ["sc"] * 4)
    >>> sorted(hidden_levels(route, 11))  # sc is 4; oral, the next smallest, goes with it
    ['oral', 'sc']
    """
    min_cell = check_min_cell(min_cell)
    if min_cell is None:
        return set()
    text = levels.astype("string")
    sizes = text.value_counts(dropna=True).sort_index()
    names = [str(k) for k in sizes.index] + ["\x00none"]
    values = np.append(sizes.to_numpy(dtype=float), float(text.isna().sum()))
    hidden = complementary_mask(
        values, small_count(values, min_cell), [np.zeros(len(values))], min_cell=min_cell
    )
    return {name for name, h in zip(names, hidden, strict=True) if h and name != "\x00none"}


def suppress_small_groups(
    table: pd.DataFrame,
    min_cell: int | None,
    size: str | Sequence[str],
    stats: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Blank the statistics of groups of fewer than ``min_cell`` patients.

    Parameters
    ----------
    table : DataFrame
        One row per group statistic (an estimate, mean, LS mean, median, ...).
    min_cell : int or None
        As in :func:`check_min_cell`; None only adds ``suppressed=False``.
    size : str or sequence of str
        Column(s) holding the number of patients behind each row (``n``, ``n1``/``n2``);
        a row is hidden when any of them is under ``min_cell`` (0 included: no group, no
        statistic), and these size columns are blanked when in ``1 .. min_cell - 1``.
    stats : sequence of str, optional
        Columns to blank; default every column that is not a size column, not
        ``suppressed`` and not text (the row labels).

    Returns
    -------
    DataFrame
        A copy with the statistics blanked and a boolean ``suppressed`` column.

    Examples
    --------
    >>> t = pd.DataFrame({"route": ["iv", "im"], "n": [40, 2], "mean": [-8.1, -3.0]})
    >>> suppress_small_groups(t, 11, "n")
      route     n  mean  suppressed
    0    iv    40  -8.1       False
    1    im  <NA>   NaN        True
    """
    min_cell = check_min_cell(min_cell)
    sizes = [size] if isinstance(size, str) else list(size)
    out = table.copy()
    previous = (
        out["suppressed"].fillna(False).astype(bool).to_numpy()
        if "suppressed" in out
        else np.zeros(len(out), dtype=bool)
    )
    if min_cell is None:
        out["suppressed"] = previous
        return out
    if stats is None:
        stats = [
            c
            for c in out.columns
            if c not in sizes
            and c != "suppressed"
            and (
                pd.api.types.is_numeric_dtype(out[c].dtype)
                or pd.api.types.is_bool_dtype(out[c].dtype)
            )
        ]
    flag = np.zeros(len(out), dtype=bool)
    for s in sizes:
        v = pd.to_numeric(out[s], errors="coerce").astype(float).to_numpy()
        flag |= ~(v >= min_cell)
        out[s] = pd.array(v, dtype="Float64").round().astype("Int64")  # type: ignore[attr-defined]  # pandas-stubs: ExtensionArray has no round
        out[s] = out[s].mask(small_count(v, min_cell))
    for c in stats:
        _blank(out, c, flag)
    out["suppressed"] = flag | previous
    return out


def suppress_group_statistics(
    table: pd.DataFrame,
    data: pd.DataFrame,
    min_cell: int | None,
    *,
    subject: str = "patient_id",
) -> pd.DataFrame:
    """The small-group rule for model outputs (LS means, contrasts) that carry no n.

    Parameters
    ----------
    table : DataFrame
        Rows of group statistics whose label columns (``route``, ``visit``, ...) are
        columns of ``data``; a ``contrast`` column ``"a - b"`` names two levels of the
        one label column of ``data`` it does not otherwise contain (as
        :meth:`analysis.mmrm.MMRMResult.pairwise` writes it).
    data : DataFrame
        The patient-level rows the model was fitted on.
    min_cell : int or None
        Groups of fewer than ``min_cell`` distinct ``subject`` have every numeric
        column blanked; None only adds ``suppressed=False``.
    subject : str
        Column of ``data`` identifying patients.

    Returns
    -------
    DataFrame
        A copy with a boolean ``suppressed`` column; no count is added.

    Examples
    --------
    >>> data = pd.DataFrame({"patient_id": list("abcdefghijklmn"),
    ...                      "route": ["iv"] * 12 + ["im"] * 2})
    >>> ls = pd.DataFrame({"route": ["im", "iv"], "estimate": [-3.0, -8.0]})
    >>> suppress_group_statistics(ls, data, 11)
      route  estimate  suppressed
    0    im       NaN        True
    1    iv      -8.0       False
    """
    min_cell = check_min_cell(min_cell)
    out = table.copy()
    flag = np.zeros(len(out), dtype=bool)
    if min_cell is not None:
        labels = [c for c in out.columns if c in data.columns and c != subject]
        if labels:
            sizes = data.groupby(labels, dropna=False, observed=True)[subject].nunique()
            keys = pd.MultiIndex.from_frame(out[labels].astype(object))
            n = sizes.reindex(keys.to_flat_index() if len(labels) > 1 else out[labels[0]])
            flag |= ~(pd.to_numeric(pd.Series(n.to_numpy()), errors="coerce") >= min_cell)
        if "contrast" in out.columns:
            others = [
                c
                for c in data.columns
                if c not in labels
                and c != subject
                and not pd.api.types.is_numeric_dtype(data[c].dtype)
            ]
            for c in others:
                per_level = data.groupby(c, observed=True)[subject].nunique()
                levels = set(per_level.index.astype(str))
                parts = out["contrast"].astype(str).str.split(" - ", n=1)
                if not all(set(p) <= levels for p in parts if len(p) == 2):
                    continue
                small = {str(k) for k, v in per_level.items() if v < min_cell}
                flag |= np.array([bool(set(p) & small) for p in parts], dtype=bool)
        numeric = [
            c
            for c in out.columns
            if pd.api.types.is_numeric_dtype(out[c].dtype)
            and not pd.api.types.is_bool_dtype(out[c].dtype)
        ]
        for c in numeric:
            _blank(out, c, flag)
    previous = out["suppressed"].astype(bool).to_numpy() if "suppressed" in out else flag
    out["suppressed"] = flag | previous
    return out


def suppress_survival_curve(
    km: pd.DataFrame,
    min_cell: int | None,
    *,
    group: str | None = None,
    sizes: dict | None = None,
) -> pd.DataFrame:
    """The small-group rule for Kaplan-Meier tables and curves.

    Parameters
    ----------
    km : DataFrame
        Rows ``[group,] time, n_at_risk, n_events, survival, ...`` sorted by time within
        a group (as :func:`analysis.survival.kaplan_meier` returns them).
    min_cell : int or None
        None returns ``km`` unchanged.
    group : str, optional
        The column holding each curve's level.
    sizes : dict, optional
        Patients per level (None: the first ``n_at_risk`` of the level).

    Returns
    -------
    DataFrame
        Without the levels of fewer than ``min_cell`` patients, each curve cut before
        its first time with fewer than ``min_cell`` at risk, ``n_events`` of 1 to
        ``min_cell - 1`` blanked and a boolean ``suppressed`` column marking them.

    Examples
    --------
    >>> km = pd.DataFrame({"time": [1, 2, 3], "n_at_risk": [30, 12, 9],
    ...                    "n_events": [18, 3, 2], "survival": [0.4, 0.3, 0.23]})
    >>> suppress_survival_curve(km, 11)
       time  n_at_risk  n_events  survival  suppressed
    0     1         30        18       0.4       False
    1     2         12      <NA>       0.3        True
    """
    min_cell = check_min_cell(min_cell)
    if min_cell is None:
        return km
    parts = []
    levels = [(None, km)] if group is None else list(km.groupby(group, sort=False))
    for level, sub in levels:
        risk = pd.to_numeric(sub["n_at_risk"], errors="coerce").to_numpy(dtype=float)
        size = (sizes or {}).get(level, risk[0] if len(risk) else 0)
        if size < min_cell:
            continue
        end = np.flatnonzero(~(risk >= min_cell))
        parts.append(sub.iloc[: end[0] if len(end) else len(sub)])
    out = pd.concat(parts) if parts else km.iloc[:0]
    out = out.copy()
    hide = small_count(out["n_events"], min_cell) if "n_events" in out else np.zeros(len(out))
    if "n_events" in out:
        out["n_events"] = pd.to_numeric(out["n_events"]).astype("Int64").mask(hide)  # type: ignore[arg-type]  # pandas-stubs: Series.mask takes an ndarray condition
    out["suppressed"] = np.asarray(hide, dtype=bool)
    return out.reset_index(drop=True)


def withhold_groups(
    result: pd.DataFrame,
    shown_in: pd.DataFrame,
    count: str = "n_events",
    *,
    group: str = "group",
    labels: Sequence[str] = ("time",),
    among: str | None = None,
) -> pd.DataFrame:
    """Hide the groups of an analysis of a sub-population whose size another table hides.

    An analysis restricted to the patients with an outcome (durability among
    responders) counts, in each group, the patients of that sub-population: its ``n``,
    its number at risk at day 0, the 1/n steps of its Kaplan-Meier curve all give the
    group's number of responders. That number is a cell of the table of the outcome
    itself (the number of responders of a route in the time-to-response table), which
    may hide it: because it is small, because the patients *without* the outcome are
    (``n`` minus it), or by complementary suppression. Whatever the reason, the
    sub-population's analysis must then not show the group either, or the two tables
    together give what the first one hides.

    Parameters
    ----------
    result : DataFrame
        A table or curve of the sub-population by group, with the small-cell rules
        already applied (:func:`analysis.survival.median_time_to_event`,
        :func:`number_at_risk`, :func:`analysis.survival.kaplan_meier` with
        ``min_cell``).
    shown_in : DataFrame
        The table, as shown, whose column ``count`` counts each group's sub-population
        (for durability among responders: the time-to-response table of
        :func:`analysis.survival.median_time_to_event`, whose ``n_events`` are the
        responders).
    count : str
        That column (default ``"n_events"``).
    group : str
        The column holding the groups' levels in both tables (default ``"group"``).
    labels : sequence of str
        Other label columns of ``result``, kept as they are (default ``("time",)``).
    among : str, optional
        The sub-population's name (``"responders"``): when given, a column ``among``
        holding it follows ``group``. The audit knows a population only by the labels
        of a table's rows (:func:`cross_table_findings`), and would otherwise take a
        hidden ``n`` of responders for the hidden count of all the group's patients,
        which other tables show.

    Returns
    -------
    DataFrame
        A copy of ``result`` in which every group whose ``count`` is hidden in
        ``shown_in`` (or that ``shown_in`` does not list) is hidden as a group of fewer
        than ``min_cell`` patients is: a table keeps its rows with every column but the
        labels blanked and ``suppressed`` (when present) True; a curve (a table with a
        ``survival`` column) loses them, so that it is not drawn. The reports'
        durability section applies it to its table, its curve and its number at risk.

    Raises
    ------
    ValueError
        When a column is missing, and when a curve of at least one row would lose every
        row (no curve can be drawn; a report section built with
        :func:`analysis.report_sections.section` says so in one sentence).

    Examples
    --------
    The time-to-response table hides IM's responders (4 of its 20 patients did not
    respond), so the durability table must not show them as its ``n``:

    >>> response = pd.DataFrame({"group": ["im", "iv"], "n": [20, 47],
    ...                          "n_events": pd.array([pd.NA, 30], dtype="Int64")})
    >>> durability = pd.DataFrame({"group": ["im", "iv"], "n": [16, 30],
    ...                            "n_events": [12, 14], "suppressed": [False, False]})
    >>> withhold_groups(durability, response, among="responders")
      group       among     n  n_events  suppressed
    0    im  responders  <NA>      <NA>        True
    1    iv  responders    30        14       False
    """
    problems = [
        f"`{name}` has no column `{column}`"
        for name, frame, columns in (
            ("result", result, [group]),
            ("shown_in", shown_in, [group, count]),
        )
        for column in columns
        if column not in frame.columns
    ]
    if problems:
        raise ValueError(
            f"withhold_groups: {'; '.join(problems)}. Pass the column that holds the groups' "
            "levels in both tables as `group` and the count of the sub-population as `count`."
        )
    shown = shown_in.loc[shown_in[count].notna().to_numpy(), group]
    hide = ~result[group].isin(shown).to_numpy()
    if "survival" in result.columns:  # a curve: not drawn, as a small group's
        if len(result) and hide.all():
            raise ValueError(
                f"Every curve is left out, because the table that counts its patients hides "
                f"the count (column `{count}`) of each; drawing one would reveal it."
            )
        out = result.loc[~hide].reset_index(drop=True)
    else:
        out = _hide_rows(result, hide, [group, *labels]) if hide.any() else result.copy()
    if among is not None:
        out.insert(list(out.columns).index(group) + 1, "among", among)
    out.attrs = dict(result.attrs)
    return out


def number_at_risk(
    tte: pd.DataFrame,
    times: Sequence[float] | None = None,
    *,
    group: str | None = None,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """The number-at-risk table printed under a Kaplan-Meier plot, disclosure-controlled.

    Parameters
    ----------
    tte : DataFrame
        One row per patient with ``time`` (and ``group``), e.g. from
        :func:`analysis.survival.time_to_event`.
    times : sequence of float, optional
        The times of the table's columns; default every 14 days from 0 to the last time.
    group : str, optional
        Column of ``tte`` holding each curve's level (``"route"``); None for one curve.
    min_cell : int or None
        The small-group rule of the curves (:func:`suppress_survival_curve`): a level of
        fewer than ``min_cell`` patients has every number hidden, and a number at risk
        under ``min_cell`` (0 included) is hidden; the levels at one time add up to the
        patients at risk then, so a single hidden level at a time hides the next
        smallest too (complementary suppression). None hides nothing. In a ``--by-site``
        run, a level the linked decision hides (:func:`linked_hidden_levels`) has every
        number hidden too, as in the tables.

    Returns
    -------
    DataFrame
        ``[group,] time, n_at_risk, suppressed``: ``n_at_risk`` (nullable ``Int64``,
        NA when hidden) is the number of patients whose event or censoring time is at
        or after ``time``; ``group`` holds the level as text (the column is named
        ``group`` whatever ``group`` names, as in :func:`analysis.survival.kaplan_meier`).

    Notes
    -----
    Under a curve a number at risk is shown only where the curve itself is drawn (a
    level of at least ``min_cell`` patients, while at least ``min_cell`` are at risk);
    elsewhere the figure prints a suppression mark.

    Examples
    --------
    Thirty IV patients, twenty oral and four IM: IM is hidden, and with it the oral
    number at day 0 (else the patients at risk minus IV would give IM's 4); at day 14
    seven oral patients remain, under ``min_cell``, and IM (0) and oral together would be
    the patients at risk minus IV's 17 = 7, so IV's number is hidden too:

    >>> tte = pd.DataFrame({"route": ["iv"] * 30 + ["oral"] * 20 + ["im"] * 4,
    ...                     "time": list(range(1, 31)) + list(range(1, 21)) + [1, 2, 3, 4]})
    >>> number_at_risk(tte, [0, 14], group="route", min_cell=11)
      group  time  n_at_risk  suppressed
    0    im     0       <NA>        True
    1    im    14       <NA>        True
    2    iv     0         30       False
    3    iv    14       <NA>        True
    4  oral     0       <NA>        True
    5  oral    14       <NA>        True
    """
    min_cell = check_min_cell(min_cell)
    if "time" not in tte.columns or (group is not None and group not in tte.columns):
        raise ValueError(
            "number_at_risk: `tte` needs the columns `time`"
            + (f" and `{group}`" if group is not None else "")
            + " (one row per patient, e.g. from time_to_event)."
        )
    time = pd.to_numeric(tte["time"], errors="coerce").astype(float).to_numpy()
    if times is None:
        last = np.nanmax(time) if np.isfinite(time).any() else 0.0
        times = np.arange(0, last + 1, 14)
    times = [float(t) for t in times]
    levels = (
        [(None, np.ones(len(tte), dtype=bool))]
        if group is None
        else [
            (str(level), (tte[group].astype(str) == str(level)).to_numpy())
            for level in sorted(tte[group].dropna().astype(str).unique())
        ]
    )
    rows = []
    linked = linked_hidden_levels(group) if min_cell is not None else set()
    for level, members in levels:
        size = int(members.sum())
        hidden_here = level is not None and linked_level(level) in linked
        for t in times:
            at_risk = int((time[members] >= t).sum())
            small = min_cell is not None and (size < min_cell or at_risk < min_cell)
            rows.append((level, t, at_risk, small or hidden_here))
    out = pd.DataFrame(rows, columns=["group", "time", "n_at_risk", "suppressed"])
    if times and all(float(t).is_integer() for t in times):
        out["time"] = out["time"].astype("int64")
    if min_cell is not None and group is not None:
        hidden = complementary_mask(
            out["n_at_risk"].to_numpy(),
            out["suppressed"].to_numpy(),
            [out["time"].to_numpy()],
            min_cell=min_cell,
        )
        out["suppressed"] = hidden
    out["n_at_risk"] = out["n_at_risk"].astype("Int64").mask(out["suppressed"])
    return out if group is not None else out.drop(columns="group")


def model_summary(result, n_patients: int, min_cell: int | None) -> str:
    """A fitted model's text summary with its counts of people disclosure-controlled.

    Parameters
    ----------
    result : object with ``summary()`` and ``n_subjects``
        E.g. an :class:`analysis.mmrm.MMRMResult`.
    n_patients : int
        Patients in the population the model was fitted in (shown elsewhere, e.g. in
        Table 1): ``n_patients - n_subjects`` patients are left out of the model.
    min_cell : int or None
        The subject count is written ``suppressed`` when it, or the patients left out,
        is 1 to ``min_cell - 1``; counts of left-out rows of 1 to ``min_cell - 1`` are
        written ``<min_cell``.

    Returns
    -------
    str
        The summary text.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> fit = SimpleNamespace(n_subjects=297, summary=lambda: "Subjects: 297   Observations: 900")
    >>> model_summary(fit, 300, 11)
    'Subjects: suppressed   Observations: 900'
    """
    min_cell = check_min_cell(min_cell)
    text = str(result.summary())
    if min_cell is None:
        return text
    n = int(result.n_subjects)
    if small_count([n, n_patients - n], min_cell).any():
        text = re.sub(r"Subjects: \d+", "Subjects: suppressed", text)

    def small(match: re.Match) -> str:
        value = int(match.group(2))
        return match.group(1) + (f"<{min_cell}" if 0 < value < min_cell else str(value))

    text = re.sub(r"(Rows left out \(missing values\): )(\d+)", small, text)
    text = re.sub(r"(Note: )(\d+)", small, text)
    return text


# --------------------------------------------------------------------------------------
# audit of a report folder


class DisclosureAuditError(RuntimeError):
    """A report folder shows something the disclosure policy forbids (see ``.result``)."""

    def __init__(self, result: AuditResult):
        self.result = result
        super().__init__(result.message())


@dataclass(frozen=True)
class AuditResult:
    """Findings of :func:`audit_report_dir`: one row per problem, never a value shown.

    ``findings`` columns: ``file, table, column, row, check``. ``check`` is one of
    ``small_count`` (a count of 1 to ``min_cell - 1``), ``small_complement`` (``n``
    minus a shown count is 1 to ``min_cell - 1``), ``recoverable`` (a hidden cell
    equal to a shown total minus the shown cells of the same table),
    ``shown_elsewhere`` (a hidden count that another table of the batch shows),
    ``recoverable_across`` (a hidden count that the shown cells of several tables
    determine; see :func:`cross_table_findings`), ``interval`` (a hidden count that
    they confine, with non-negativity, to a small positive range), ``hidden_sum``
    (hidden cells whose sum, a shown total minus the shown cells of its margin, is 1 to
    ``min_cell - 1``: the people of these groups together), ``remainder`` (in a
    ``--by-site`` run, a shown pooled count minus the shown sites' counts of the same
    population is 1 to ``min_cell - 1``: the withheld sites and the patients without a
    site), ``identifier`` (a patient id or an identifier-shaped value), ``formula`` (a
    cell a spreadsheet would run). ``files``: the files read, relative to the report
    folder (a tuple; the result is frozen).
    """

    min_cell: int
    files: tuple[str, ...] = ()
    findings: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["file", "table", "column", "row", "check"])
    )

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return self.findings.empty

    def message(self) -> str:
        """A summary naming files, tables and checks (counts only)."""
        if self.ok:
            return f"Disclosure audit passed: {len(self.files)} file(s), min_cell={self.min_cell}."
        lines = [
            f"Disclosure audit failed (min_cell={self.min_cell}): "
            f"{len(self.findings)} problem(s) in {self.findings['file'].nunique()} file(s)."
        ]
        summary = self.findings.groupby(["file", "table", "column", "check"], sort=True).size()
        for (file, table, column, check), count in summary.head(40).items():  # type: ignore[misc]  # pandas-stubs: MultiIndex keys are Hashable
            lines.append(f"- {file} [{table}] column `{column}`: {count} cell(s) fail `{check}`")  # type: ignore[has-type]  # the keys unpacked on the line above
        if len(summary) > 40:
            lines.append(f"... and {len(summary) - 40} more (see `.findings`)")
        lines.append(
            "How to fix: pass min_cell to every table and figure function (or combine the "
            "small groups) and render the reports again."
        )
        return "\n".join(lines)


# A column holds counts of people when its name says so.
_COUNT_NAME = re.compile(
    r"^(?:n|count|events|patients|subjects|observed|expected|missing|"
    r"n_[a-z0-9_]+|[a-z0-9_]+_n|events_ref|n_ref|n1|n2|responders|non_responders|"
    r"persons|people|participants)$",
    re.IGNORECASE,
)
#: Columns (or Table 1 rows) whose cells are counts written as text (``"12 (4.0%)"``).
_COUNT_TEXT = re.compile(r"^\s*(\d+)\s*(?:\(\s*\d+(?:\.\d+)?\s*%\s*\))?\s*$")
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


#: Count-like names that do not count people (groups of a test, strata, items, ...).
_NOT_PEOPLE = frozenset(
    {"n_groups", "n_strata", "n_items", "n_items_answered", "n_boot", "n_levels", "n_visits",
     "n_params", "n_parameters", "n_iter", "n_terms"}
)  # fmt: skip


def _count_columns(df: pd.DataFrame) -> list[str]:
    return [
        str(c)
        for c in df.columns
        if _COUNT_NAME.match(str(c).strip()) and str(c).strip() not in _NOT_PEOPLE
    ]


def _is_text_count_table(df: pd.DataFrame) -> bool:
    cols = [str(c) for c in df.columns]
    return cols[:2] == ["variable", "level"]


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").astype(float).to_numpy()


def audit_table(
    df: pd.DataFrame,
    min_cell: int = DEFAULT_MIN_CELL,
    *,
    name: str = "table",
    identifiers: Iterable[str] = (),
    formulas: bool = True,
) -> pd.DataFrame:
    """Disclosure findings of one report table (see :class:`AuditResult`).

    Checks: (1) no cell of a count column (``n``, ``events``, ``patients``, ``n_*``, ...,
    and the ``"n (p%)"`` cells of a Table 1 layout) in ``1 .. min_cell - 1``, and no
    ``n - events`` complement in that range; (2) in every margin (rows sharing the values
    of all but one partitioning label column), a table whose shown cells include a
    total row (``Overall``/``all``/``total``) may not have exactly one hidden cell;
    (3) no cell equals one of ``identifiers`` (patient ids) or, with ``formulas`` (the
    default; the audit sets it for CSV files, which spreadsheets open), starts like a
    formula (an HTML page shows ``-14..0`` as text: nothing runs it).

    Examples
    --------
    >>> t = pd.DataFrame({"route": ["iv", "im"], "n": [40, 3]})
    >>> audit_table(t, 11, name="demo")[["table", "column", "row", "check"]]
      table column  row        check
    0  demo      n    1  small_count
    """
    min_cell = check_min_cell(min_cell, optional=False)
    ids = {str(i) for i in identifiers}
    found: list[tuple[str, str, int, str]] = []
    counts = _count_columns(df)
    for c in counts:
        v = _numeric(df[c])
        for r in np.flatnonzero(small_count(v, min_cell)):
            found.append((name, c, int(r), "small_count"))
    if "n" in df.columns:
        n = _numeric(df["n"])
        parts = ["patients", "observed", "missing", "n_events"]
        if "patients" not in df.columns:  # events of people, not events per person
            parts.append("events")
        for c in parts:
            if c in df.columns:
                for r in np.flatnonzero(small_count(n - _numeric(df[c]), min_cell)):
                    found.append((name, c, int(r), "small_complement"))
    if "expected" in df.columns and "observed" in df.columns:
        diff = _numeric(df["expected"]) - _numeric(df["observed"])
        for r in np.flatnonzero(small_count(diff, min_cell)):
            found.append((name, "observed", int(r), "small_complement"))
    if _is_text_count_table(df):
        for c in df.columns[2:]:
            text = df[c].astype(str)
            for r, t in enumerate(text):
                m = _COUNT_TEXT.match(t)
                if m and 0 < int(m.group(1)) < min_cell:
                    found.append((name, str(c), r, "small_count"))
        found += _recoverable_table_one(df, min_cell, name)
    found += _recoverable(df, counts, name, min_cell)
    for c in df.columns:
        text = df[c].dropna().astype(str)
        if ids:
            for r in np.flatnonzero(text.isin(ids).to_numpy()):
                found.append((name, str(c), int(text.index[int(r)]), "identifier"))
        for r, t in zip(text.index, text, strict=True) if formulas else ():
            if _FORMULA.match(t) and not _NUMERIC.match(t.strip()):
                found.append((name, str(c), int(r), "formula"))
    return pd.DataFrame(found, columns=["table", "column", "row", "check"]).drop_duplicates()


_TOTAL_LABELS = {"overall", "all", "total", "all patients"}


def _recoverable(
    df: pd.DataFrame, counts: list[str], name: str, min_cell: int | None = None
) -> list:
    """Hidden count cells recoverable as a shown total row minus the other shown rows.

    A single hidden cell of a margin is ``recoverable``; several hidden cells whose sum
    (the total minus the shown cells) is 1 to ``min_cell - 1`` are ``hidden_sum``.
    """
    labels = [
        c
        for c in df.columns
        if str(c) not in counts
        and not pd.api.types.is_float_dtype(df[c].dtype)
        and str(c) not in NON_PARTITION_COLUMNS
        and str(c) != "suppressed"
    ]
    found = []
    for label in labels:
        is_total = df[label].astype(str).str.strip().str.lower().isin(_TOTAL_LABELS).to_numpy()
        if not is_total.any():
            continue
        keys = [c for c in labels if c != label] + [
            c for c in df.columns if str(c) in NON_PARTITION_COLUMNS
        ]
        grouped = (
            df.groupby([df[k].astype(str) for k in keys], sort=False).indices
            if keys
            else {"": np.arange(len(df))}
        )
        for rows in grouped.values():
            rows = np.asarray(rows)
            tot, parts = rows[is_total[rows]], rows[~is_total[rows]]
            if len(tot) != 1 or len(parts) < 2:
                continue
            for c in counts:
                v = _numeric(df[c])
                if np.isnan(v[tot[0]]):
                    continue
                hidden = parts[np.isnan(v[parts])]
                if len(hidden) == 1:
                    found.append((name, c, int(hidden[0]), "recoverable"))
                elif len(hidden) > 1 and min_cell is not None:
                    rest = v[tot[0]] - np.nansum(v[parts])
                    if small_count([round(rest, 6)], min_cell)[0]:
                        found += [(name, c, int(h), "hidden_sum") for h in hidden]
    return found


def _recoverable_table_one(df: pd.DataFrame, min_cell: int, name: str) -> list:
    """Table 1 layout: a hidden group cell recoverable as Overall minus the shown groups."""
    if "Overall" not in df.columns:
        return []
    groups = [c for c in df.columns[2:] if c != "Overall"]
    found: list[tuple[str, str, int, str]] = []
    if len(groups) < 2:
        return found
    for r in range(len(df)):
        overall = _COUNT_TEXT.match(str(df["Overall"].iloc[r]))
        if not overall:
            continue
        cells = [str(df[g].iloc[r]) for g in groups]
        hidden = [k for k, t in enumerate(cells) if not _COUNT_TEXT.match(t) and t != ""]
        if len(hidden) == 1:
            found.append((name, str(groups[hidden[0]]), r, "recoverable"))
        elif len(hidden) > 1:
            # Overall minus the shown groups: the hidden groups together (and the patients
            # without a group, whom Table 1 never shows)
            shown = [_COUNT_TEXT.match(t) for t in cells]
            rest = int(overall.group(1)) - sum(int(m.group(1)) for m in shown if m)
            if 0 < rest < min_cell:
                found += [(name, str(groups[k]), r, "hidden_sum") for k in hidden]
    return found


# --------------------------------------------------------------------------------------
# recoverability across the tables of a batch

#: Label values that name the whole of a partition (a total row or column).
_TOTAL_KEY = "\x00total"
_MISSING_KEY = "\x00missing"


#: Text columns that describe a row's statistics rather than label its population.
_DESCRIPTIVE = re.compile(
    r"note|(^|_)ci($|_)|%|test|method|correction|significant|estimate|mean|median"
    r"|(^|_)sd($|_)|p_value|wording|^label$",
    re.IGNORECASE,
)

#: Label columns of report tables whose levels describe the same patients several ways
#: (a measure, a criterion, a stage of a flow, an imputation strategy, ...): with the
#: columns of :data:`NON_PARTITION_COLUMNS`, they form no margin in the audit.
_AUDIT_NON_PARTITION = NON_PARTITION_COLUMNS | {
    "measure",
    "criterion",
    "stage",
    "strategy",
    "shifted",
    "delta",
    "significant",
    "significant_at_zero",
    "item",
    "subgroup",
    "check",
    "table",
    "ci_method",
}

#: Count columns that name the same thing (the patients of the row's population).
_SAME_COUNT = {"n_patients": "n"}


def _label_columns(df: pd.DataFrame, counts: list[str]) -> list[str]:
    """Columns that label a row: text, categories, booleans and integer codes (not counts)."""
    labels = []
    for c in df.columns:
        name = str(c).strip()
        if not name or name in counts or name == "suppressed" or name.startswith("Unnamed"):
            continue
        if _DESCRIPTIVE.search(name):
            continue
        dtype = df[c].dtype
        if pd.api.types.is_integer_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            labels.append(str(c))
    return labels


def _label_value(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return _MISSING_KEY
    text = " ".join(str(value).split()).lower()
    return _TOTAL_KEY if text in _TOTAL_LABELS else text


def _table_one_cells(df: pd.DataFrame) -> tuple[list, list]:
    """Table 1's Overall column as population cells and margins.

    Returns ``(cells, margins)``: cells ``(row, key, {"n": value})`` for the ``n`` row
    (all patients: the empty key) and each level of a categorical characteristic (key
    ``{variable: level}``; NaN when hidden); margins ``(total_key, [keys])``: the levels
    of each characteristic add up to all patients.
    """
    if "Overall" not in df.columns:
        return [], []
    cells: list = []
    levels: dict = {}
    key: frozenset
    for r, (variable, level, cell) in enumerate(
        zip(df["variable"], df["level"], df["Overall"], strict=True)
    ):
        variable, level, text = str(variable), str(level), str(cell)
        match = _COUNT_TEXT.match(text)
        if variable == "n":
            key = frozenset()
        elif match or (text and not any(ch.isdigit() for ch in text)) or "<" in text:
            if level in ("", "nan", "None", "yes"):
                continue
            key = frozenset({(variable, _label_value(level))})
            levels.setdefault(variable, []).append(key)
        else:  # a mean (SD) or median [IQR]
            continue
        cells.append((r, key, {"n": float(match.group(1)) if match else np.nan}))
    margins: list = [(frozenset(), keys) for keys in levels.values() if len(keys) >= 2]
    return cells, margins


def _table_cells(df: pd.DataFrame) -> tuple[list, list]:
    """A long table's population cells and margins (see :func:`cross_table_findings`)."""
    counts = _count_columns(df)
    if not counts:
        return [], []
    labels = _label_columns(df, counts)
    keys = pd.DataFrame({c: [_label_value(v) for v in df[c]] for c in labels})
    if keys.duplicated().any():
        return [], []
    values = {c: _numeric(df[c]) for c in counts}
    row_keys = [
        frozenset((c, v) for c, v in zip(labels, row, strict=True) if v != _TOTAL_KEY)
        for row in keys.itertuples(index=False)
    ]
    cells = [
        (r, key, {_SAME_COUNT.get(c, c): values[c][r] for c in counts})
        for r, key in enumerate(row_keys)
    ]
    margins = []
    for col in labels:
        if col in _AUDIT_NON_PARTITION:
            continue
        others = [k for k in labels if k != col]
        parts = keys[keys[col] != _TOTAL_KEY]
        for _, group in parts.groupby(others, sort=False) if others else [(None, parts)]:
            if len(group) < 2:
                continue
            total = frozenset(
                (k, group[k].iloc[0]) for k in others if group[k].iloc[0] != _TOTAL_KEY
            )
            margins.append((total, [row_keys[r] for r in group.index]))
    return cells, margins


def _contradicting_columns(parsed: list) -> set[tuple[str, str, str]]:
    """Count columns ``(file, table, column)`` that count other populations than their keys say.

    When two tables show different values for the same population key (e.g. the
    patients of a route in Table 1 and the patients of that route *with a dissociation
    score*), the keys do not identify one population. The count column with the most
    such contradictions is kept apart (its keys are qualified by its table), and so on
    until no contradiction is left.
    """
    shown: dict[tuple, dict[tuple[str, str, str], float]] = {}
    for file, name, table_cells, _ in parsed:
        for _, key, values in table_cells:
            for c, value in values.items():
                if not np.isnan(value):
                    shown.setdefault((key, c), {})[(file, name, c)] = value
    apart: set[tuple[str, str, str]] = set()
    while True:
        clashes: dict[tuple[str, str, str], int] = {}
        for sources in shown.values():
            live = {k: v for k, v in sources.items() if k not in apart}
            if len(set(live.values())) > 1:
                for k, v in live.items():
                    others = sum(1 for w in live.values() if w != v)
                    clashes[k] = clashes.get(k, 0) + others
        if not clashes:
            return apart
        apart.add(max(sorted(clashes), key=lambda k: clashes[k]))


def cross_table_findings(
    tables: Sequence[tuple[str, str, pd.DataFrame]],
    *,
    tolerance: float = 1e-8,
    site_sets: Mapping[str, str] | None = None,
    all_sites_reported: bool = False,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Hidden counts that the tables of a batch reveal *together*.

    Parameters
    ----------
    tables : sequence of (file, table, DataFrame)
        Every table of a batch of reports, as :func:`audit_report_dir` reads them (CSV
        files, HTML tables, tables in notebook outputs).
    tolerance : float
        Numerical tolerance of the rank computation.
    site_sets : mapping of str to str, optional
        The sets of reports of a ``--by-site`` run: folder (``"sites/S01"``) -> site
        code. A table whose file lies under such a folder counts the patients of that
        site: its population keys carry the site, and the pooled key is the sum over
        the sites (below). Other tables are the pooled set.
    all_sites_reported : bool
        Whether ``site_sets`` holds *every* patient's site (no site withheld by
        :func:`analysis.reports.plan_sites`, no patient without a site). When False,
        each pooled key also has an unknown remainder (the withheld sites), so no
        hidden site cell is taken for recoverable when it is not.
    min_cell : int, optional
        With a threshold, also look for **interval disclosure**: a hidden cell that the
        equations and non-negativity confine to ``1 .. min_cell - 1``, or to a range of
        at most one unit with a positive end (``0 or 1``), is ``interval``. None skips
        this check.

    Returns
    -------
    DataFrame
        ``file, table, column, row, check``: ``shown_elsewhere`` for a hidden cell whose
        population count another table shows, ``recoverable_across`` for a hidden cell
        that the shown cells of the batch determine through the margins below.

    Notes
    -----
    Each count cell (a column :func:`audit_table` treats as a count of people) gets a
    **population key**: the count column's name (``n_patients`` is read as ``n``) and
    the set of ``(column, value)`` of the row's label columns (text, category and
    integer columns that are not counts; a value ``Overall``/``All``/``Total`` marks
    the whole of a partition and is dropped from the key, a missing label is a level
    of its own). Two cells with the same key
    count the same people wherever they are shown, so the batch is treated as one
    system of linear equations over these keys:

    1. a key shown in any table is known; its hidden copies in other tables are
       ``shown_elsewhere``;
    2. for every column that partitions patients (route, site, diagnosis, severity, ...;
       not instrument, visit, outcome, term, measure, stage and the other columns of
       :data:`NON_PARTITION_COLUMNS` and ``_AUDIT_NON_PARTITION``), the rows of a table
       that share all other labels add up to the key without that column:
       ``P(L) = sum_v P(L + {col: v})``. The total ``P(L)`` may be shown in the same
       table (a total row), in another table (the same labels without the column), or
       nowhere; two tables that partition the same population by different columns
       (by route and by diagnosis) then share it.

    Table 1 takes part through its Overall column: its ``n`` (all patients) and the
    patients of each level of a characteristic (``{route: iv}``, ...), whose levels add
    up to its ``n``.

    A count column whose shown cells contradict another table's for the same key
    counts another population under the same labels (the patients of a route with a
    dissociation score, not all the route's patients); such columns are kept apart
    (their keys qualified by their table, the most contradicted first), so that only
    keys that agree wherever both are shown are equated.

    With ``site_sets`` (a ``--by-site`` run), the sets are linked: a key ``K`` of a
    table of site ``s`` is the key ``K + {site: s}``, and for every key the pooled count
    is the sum of the sites' counts, ``P(K) = sum_s P(K + {site: s}) [+ R(K)]``, where
    a site whose reports lack the table enters as an unknown and ``R(K)`` (the
    withheld sites and the patients without a site) is an unknown unless
    ``all_sites_reported``. A cell hidden in one site's report that is the pooled count
    minus the other sites' shown counts is then found.

    A hidden cell is **recoverable** when the equations determine it uniquely, i.e. its
    unit vector lies in the row space of the system restricted to the hidden keys (its
    component of every null-space vector is zero); this is the exact test for linear
    disclosure (Hundepool et al. 2012, sec. 5.3). A table whose rows its labels do
    not tell apart takes no part. Limits: a population is recognised only through the
    labels a table carries, and through its name for ``instrument`` and ``visit``: a
    table without such a column whose name has exactly one word (``_``-separated)
    that other tables of the batch carry in that column counts that level
    (``gad7_week4_by_dose`` meets the ``instrument = GAD7, visit = week4`` rows of
    other tables; an HTML table, named by its position, does not). With ``min_cell``,
    each hidden key of a connected component of the equations that is not determined
    is bounded by two linear programs (counts are non-negative), as in the interval
    (protection-level) checks of Hundepool et al. (2012, sec. 5.4).

    References
    ----------
    Hundepool A, Domingo-Ferrer J, Franconi L, et al. (2012). Statistical Disclosure
    Control. Wiley. Chapter 5 (linked tables, secondary suppression).

    Examples
    --------
    A count hidden in one table but shown in another, and a hidden route whose count is
    the total of a second table minus the routes the first one shows:

    >>> a = pd.DataFrame({"visit": ["baseline"], "n": [491]})
    >>> b = pd.DataFrame({"visit": ["baseline"], "n": [None]})
    >>> cross_table_findings([("a.csv", "a", a), ("b.csv", "b", b)])
        file table column  row           check
    0  b.csv     b      n    0  shown_elsewhere
    >>> by_route = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [40, None, 30]})
    >>> overall = pd.DataFrame({"route": ["Overall"], "n": [74]})
    >>> cross_table_findings([("r.csv", "r", by_route), ("o.csv", "o", overall)])
        file table column  row               check
    0  r.csv     r      n    1  recoverable_across
    """
    found, _ = _cross_table(
        tables,
        tolerance=tolerance,
        site_sets=site_sets,
        all_sites_reported=all_sites_reported,
        min_cell=check_min_cell(min_cell),
    )
    return found.drop(columns="population")


#: The label of a population key that names the site of a ``--by-site`` report set.
_SITE_KEY = "\x00site"


def _set_of(file: str, site_sets: Mapping[str, str]) -> tuple[str | None, str]:
    """``(site, file relative to its set)`` of a report file (site None: the pooled set)."""
    for folder, site in site_sets.items():
        prefix = folder.rstrip("/") + "/"
        if file.startswith(prefix):
            return site, file[len(prefix) :]
    return None, file


def _with_site(key: frozenset, site: str | None) -> frozenset:
    return key if site is None else key | {(_SITE_KEY, site)}


#: Label columns whose value a table may give in its name instead (``gad7_week4_by_dose``).
_NAMED_COLUMNS = ("instrument", "visit")


def _named_levels(tables: Sequence[tuple[str, str, pd.DataFrame]]) -> dict[str, set[str]]:
    """The values (as population keys write them) of ``instrument`` and ``visit`` in a batch."""
    levels: dict[str, set[str]] = {c: set() for c in _NAMED_COLUMNS}
    for _, _, df in tables:
        if df is None:
            continue
        for c in _NAMED_COLUMNS:
            if c in df.columns:
                levels[c] |= {_label_value(v) for v in df[c].dropna().unique()}
    return {c: v - {_TOTAL_KEY, _MISSING_KEY} for c, v in levels.items()}


def _with_named_population(df: pd.DataFrame, name: str, named: dict[str, set[str]]) -> pd.DataFrame:
    """A table whose name gives its visit or instrument gets it as a label column.

    ``gad7_week4_by_dose`` has no ``instrument`` or ``visit`` column: its rows are the
    GAD-7 week-4 rows, named only in its title. When exactly one ``_``-separated word of
    the table's name is a value that other tables of the batch carry in that column,
    the column is added with that value, so that its counts meet the same populations
    elsewhere (Table 1's layout is left alone).
    """
    if _is_text_count_table(df):
        return df
    words = set(str(name).lower().split("_"))
    added = {}
    for c in _NAMED_COLUMNS:
        if c in df.columns:
            continue
        hits = words & named.get(c, set())
        if len(hits) == 1:
            added[c] = next(iter(hits))
    return df.assign(**added) if added else df


def _lp_solver(matrix: np.ndarray, rhs: np.ndarray, *, persistent: bool = True):
    """``solve(objective)``: the optimum of ``min objective @ x`` subject to
    ``matrix @ x = rhs`` and ``x >= 0`` as ``(value, x)``, or None when there is none
    (unbounded or infeasible).

    An audit asks hundreds of these small programs (about 800 for a 60-patient batch),
    the same constraints each time with another objective. With ``persistent`` the model
    is handed to HiGHS once, through the binding scipy ships for ``linprog`` (scipy 1.15
    and later), and only the objective changes between programs, so HiGHS starts each
    from the previous basis: about 7x faster than a ``linprog`` call per program, whose
    option checks and sparse conversion took most of the time. Without ``persistent``,
    or where scipy has no such binding, each program is a ``linprog(method="highs")``
    call; ``tests/test_audit_fast_paths.py`` holds the two to the same findings.
    """
    highs = _persistent_highs(matrix, rhs) if persistent else None
    if highs is not None:
        return highs
    from scipy.optimize import linprog

    def solve(objective: np.ndarray):
        result = linprog(objective, A_eq=matrix, b_eq=rhs, bounds=(0, None), method="highs")
        return (float(result.fun), result.x) if result.status == 0 else None

    return solve


def _persistent_highs(matrix: np.ndarray, rhs: np.ndarray):
    """:func:`_lp_solver`'s HiGHS model kept between programs (None without the binding)."""
    try:
        from scipy.optimize._highspy import _core
    except ImportError:  # scipy before 1.15: no binding of HiGHS' own interface
        return None
    highs = _core._Highs()
    highs.setOptionValue("output_flag", False)
    n_rows, n_cols = matrix.shape
    lp = _core.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.col_cost_ = np.zeros(n_cols)
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.full(n_cols, _core.kHighsInf)
    lp.row_lower_ = lp.row_upper_ = np.asarray(rhs, dtype=float)
    var, eq = np.nonzero(matrix.T)  # column-wise: by unknown, then by equation
    lp.a_matrix_.format_ = _core.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.searchsorted(var, np.arange(n_cols + 1)).astype(np.int32)
    lp.a_matrix_.index_ = eq.astype(np.int32)
    lp.a_matrix_.value_ = matrix.T[var, eq].astype(float)
    if highs.passModel(lp) != _core.HighsStatus.kOk:  # pragma: no cover - a valid model
        return None
    every = np.arange(n_cols, dtype=np.int32)
    optimal = _core.HighsModelStatus.kOptimal

    def solve(objective: np.ndarray):
        highs.changeColsCost(n_cols, every, np.asarray(objective, dtype=float))
        highs.run()
        if highs.getModelStatus() != optimal:
            return None
        return float(highs.getObjectiveValue()), np.array(highs.getSolution().col_value)

    return solve


def _interval_disclosed(
    matrix: np.ndarray,
    rhs: np.ndarray,
    position: dict[int, int],
    cells: list[int],
    min_cell: int,
    *,
    prune: bool = True,
    persistent: bool = True,
) -> set[int]:
    """Hidden unknowns whose feasible range (equations, counts >= 0) discloses them.

    For each unknown in ``cells``, its smallest and largest values subject to
    ``matrix @ x = rhs`` and ``x >= 0`` (two linear programs, HiGHS: :func:`_lp_solver`;
    ``persistent=False`` solves each with ``linprog``). The cell is disclosed when its
    range lies within ``1 .. min_cell - 1`` (it is known to be a small count, not 0), or
    when it spans at most one unit with a positive end (``0 or 1``, say: present means
    exactly that small count). A range such as ``0 .. 10`` says no more than the ``<11``
    mark itself. An infeasible system (tables that disagree) discloses nothing.

    Every solution found is a feasible point of the same system, so the smallest and
    largest value each unknown took in them bound its range from inside; a cell whose
    values seen so far already span more than one unit, from below 1 or up to above
    ``min_cell - 1``, is disclosed by neither rule and needs no program of its own (the
    same cells are found; ``prune=False`` solves the programs of every cell, tested). The
    largest value is sought first: a cell without one (most hidden cells, whose margin
    is hidden too) is not disclosed whatever its smallest value.
    """
    found: set[int] = set()
    seen_low = np.full(matrix.shape[1], np.inf)  # per unknown, over the solutions found
    seen_high = np.full(matrix.shape[1], -np.inf)
    program = _lp_solver(matrix, rhs, persistent=persistent)

    def solve(objective: np.ndarray):
        result = program(objective)
        if result is not None and prune:
            np.minimum(seen_low, result[1], out=seen_low)
            np.maximum(seen_high, result[1], out=seen_high)
        return result

    for k in cells:
        j = position[k]
        if (
            prune
            and seen_high[j] - seen_low[j] > 1 + 1e-6
            and (seen_low[j] < 1 - 1e-6 or seen_high[j] > min_cell - 1 + 1e-6)
        ):
            continue  # neither within 1 .. min_cell - 1 nor within one unit
        objective = np.zeros(matrix.shape[1])
        objective[j] = 1.0
        if prune:
            high = solve(-objective)
            if high is None:  # unbounded (or infeasible: no disclosure either)
                continue
            low = solve(objective)
        else:
            low = solve(objective)
            if low is None:
                continue
            high = solve(-objective)
        if low is None:
            continue
        lo = low[0]
        hi = -high[0] if high is not None else np.inf
        small = lo >= 1 - 1e-6 and hi <= min_cell - 1 + 1e-6
        narrow = hi - lo <= 1 + 1e-6 and hi >= 1 - 1e-6
        if small or narrow:
            found.add(k)
    return found


#: The unknown of a ``--by-site`` run's equation ``pooled = sum of the sites + rest``.
_REST = "\x00rest"


def _small_sums(
    matrix: np.ndarray,
    rhs: np.ndarray,
    position: dict[int, int],
    determined: set[int],
    min_cell: int,
) -> list[set[int]]:
    """Sets of unknowns whose *sum* the equations give as a count in ``1 .. min_cell - 1``.

    A margin ``total = sum of parts`` with the total shown and several parts hidden gives
    the sum of the hidden parts (the people of these groups together): e.g. hidden
    cells of 2 and 3 next to a shown total give 5. Each equation, with the determined
    unknowns replaced by their values, whose remaining unknowns all have the same sign
    gives their sum; a sum in ``1 .. min_cell - 1`` is returned (a single determined
    unknown too, for the remainder of a ``--by-site`` run). An inconsistent system
    (tables that disagree) gives nothing.
    """
    if not len(position):
        return []
    values, *_ = np.linalg.lstsq(matrix, rhs, rcond=None)
    if len(rhs) and np.abs(matrix @ values - rhs).max() > 1e-6:
        return []
    found = []
    by_column = {j: k for k, j in position.items()}
    for i in range(matrix.shape[0]):
        row = matrix[i]
        nonzero = [int(j) for j in np.flatnonzero(row)]
        free = [j for j in nonzero if by_column[j] not in determined]
        fixed = [j for j in nonzero if by_column[j] in determined]
        if free:
            signs = {np.sign(row[j]) for j in free}
            if len(signs) != 1 or not all(abs(row[j]) == 1 for j in free):
                continue
            total = (rhs[i] - sum(row[j] * values[j] for j in fixed)) * signs.pop()
            group = {by_column[j] for j in free}
        else:
            continue
        if 1 - 1e-6 <= total <= min_cell - 1 + 1e-6:
            found.append(group)
    for k in determined:
        if 1 - 1e-6 <= values[position[k]] <= min_cell - 1 + 1e-6:
            found.append({k})
    return found


def _cross_table(
    tables: Sequence[tuple[str, str, pd.DataFrame]],
    *,
    tolerance: float = 1e-8,
    site_sets: Mapping[str, str] | None = None,
    all_sites_reported: bool = False,
    min_cell: int | None = None,
) -> tuple[pd.DataFrame, dict[tuple, float]]:
    """:func:`cross_table_findings` with a ``population`` column, and the shown keys."""
    from scipy.linalg import null_space

    site_sets = dict(site_sets or {})
    parsed = []
    relative: dict[tuple[str, str], str] = {}
    named = _named_levels(tables)
    for file, name, df in tables:
        if df is None or df.empty:
            continue
        df = _with_named_population(df, name, named)
        table_cells, margins = (
            _table_one_cells(df) if _is_text_count_table(df) else _table_cells(df)
        )
        if table_cells:
            site, rel = _set_of(file, site_sets)
            relative[(file, name)] = rel
            table_cells = [(r, _with_site(k, site), v) for r, k, v in table_cells]
            margins = [
                (_with_site(t, site), [_with_site(p, site) for p in ps]) for t, ps in margins
            ]
            parsed.append((file, name, table_cells, margins))
    apart = _contradicting_columns(parsed)
    cells: dict[tuple, list[tuple[str, str, str, int]]] = {}
    known: dict[tuple, float] = {}
    equations: list[tuple[tuple, list[tuple]]] = []
    blank: set[tuple[str, str, str, int]] = set()

    def population(key: frozenset, c: str, file: str, name: str) -> tuple:
        # a column kept apart is qualified by its table within its set, so that the same
        # table of the pooled set and of each site's set still add up
        return (key, c, relative[(file, name)], name) if (file, name, c) in apart else (key, c)

    for file, name, table_cells, margins in parsed:
        columns = set()
        for r, key, values in table_cells:
            for c, value in values.items():
                columns.add(c)
                pop = population(key, c, file, name)
                cells.setdefault(pop, []).append((file, name, c, r))
                if np.isnan(value):
                    blank.add((file, name, c, r))
                else:
                    known[pop] = value
        for total, parts in margins:
            for c in columns:
                equations.append(
                    (
                        population(total, c, file, name),
                        [population(p, c, file, name) for p in parts],
                    )
                )
    if site_sets:
        # the pooled count of a key is the sum of its sites' counts (+ an unknown rest)
        sites = sorted(set(site_sets.values()))
        pooled: set[tuple] = set()
        for pop in [*cells, *(p for t, ps in equations for p in (t, *ps))]:
            site_labels = {v for k, v in pop[0] if k == _SITE_KEY}
            if site_labels:
                pooled.add((pop[0] - {(_SITE_KEY, v) for v in site_labels}, *pop[1:]))
        for base in sorted(pooled, key=repr):
            parts = [(_with_site(base[0], s), *base[1:]) for s in sites]
            if not all_sites_reported:
                parts.append((_REST, base))
            equations.append((base, parts))
    hidden = {pop for pop in cells if pop not in known}
    # 1. a count shown in one table and hidden in another
    shown_elsewhere = [
        (file, name, c, r, "shown_elsewhere", pop)
        for pop, places in cells.items()
        if pop in known
        for file, name, c, r in places
        if (file, name, c, r) in blank
    ]
    # 2. hidden keys determined by the margins; a total shown nowhere is an unknown too
    unknown = hidden | {
        pop for total, parts in equations for pop in (total, *parts) if pop not in known
    }
    index = {pop: k for k, pop in enumerate(sorted(unknown, key=repr))}
    rows = []
    rhs: list[float] = []  # sum of coef * unknown = rhs (the shown values moved right)
    for total, parts in equations:
        coef: dict[int, float] = {}
        constant = 0.0
        for pop, sign in [(total, -1.0)] + [(p, 1.0) for p in parts]:
            if pop in index:
                coef[index[pop]] = coef.get(index[pop], 0.0) + sign
            else:
                constant += sign * known[pop]
        coef = {k: v for k, v in coef.items() if v}
        if coef:
            rows.append(coef)
            rhs.append(-constant)
    parent = list(range(len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for coef in rows:
        ks = list(coef)
        for k in ks[1:]:
            parent[root(k)] = root(ks[0])
    components: dict[int, list[int]] = {}
    for coef_index, coef in enumerate(rows):
        components.setdefault(root(next(iter(coef))), []).append(coef_index)
    determined: set[int] = set()
    narrowed: set[int] = set()
    summed: dict[int, str] = {}
    remainders: set[tuple] = set()
    by_index = {k: pop for pop, k in index.items()}
    for eq_rows in components.values():
        variables = sorted({k for i in eq_rows for k in rows[i]})
        position = {k: j for j, k in enumerate(variables)}
        matrix = np.zeros((len(eq_rows), len(variables)))
        for i, eq in enumerate(eq_rows):
            for k, v in rows[eq].items():
                matrix[i, position[k]] = v
        basis = null_space(matrix, rcond=tolerance)
        norms = np.linalg.norm(basis, axis=1) if basis.size else np.zeros(len(variables))
        now = {k for k, j in position.items() if norms[j] < 1e-6}
        determined |= now
        if min_cell is not None:
            bounds_of = [
                k
                for k in variables
                if k not in now and by_index[k] in hidden and by_index[k] in cells
            ]
            vector = np.array([rhs[i] for i in eq_rows])
            narrowed |= _interval_disclosed(matrix, vector, position, bounds_of, min_cell)
            for group in _small_sums(matrix, vector, position, now, min_cell):
                cells_in = [k for k in group if by_index[k] in hidden and by_index[k] in cells]
                rests = [by_index[k][1] for k in group if by_index[k][0] == _REST]
                if cells_in and len(group) >= 2:  # hidden cells (and the rest) together
                    summed.update({k: "hidden_sum" for k in cells_in})
                elif rests and not cells_in:  # the remainder (and cells no table shows)
                    remainders.update(rests)
    recovered = []
    for k in sorted(determined):
        for file, name, c, r in cells.get(by_index[k], []):
            recovered.append((file, name, c, r, "recoverable_across", by_index[k]))
    for k in sorted(narrowed - determined):
        for file, name, c, r in cells.get(by_index[k], []):
            recovered.append((file, name, c, r, "interval", by_index[k]))
    for k in sorted(set(summed) - determined - narrowed):
        for file, name, c, r in cells.get(by_index[k], []):
            recovered.append((file, name, c, r, "hidden_sum", by_index[k]))
    # the pooled count minus the shown sites' counts (withheld sites, no site): small
    for base in sorted(remainders, key=repr):
        for file, name, c, r in cells.get(base, []):
            if (file, name, c, r) not in blank:
                recovered.append((file, name, c, r, "remainder", base))
    out = pd.DataFrame(
        shown_elsewhere + recovered,
        columns=["file", "table", "column", "row", "check", "population"],
    )
    out = out.drop_duplicates(subset=["file", "table", "column", "row"]).reset_index(drop=True)
    return out, known


# --------------------------------------------------------------------------------------
# linked suppression across the report sets of a --by-site run

#: Populations ``(key, count column)`` that this process hides in every table it saves
#: (:func:`apply_linked_suppression`); set per report by :func:`set_linked_suppression`.
_LINKED_HIDDEN: frozenset = frozenset()
#: The threshold that goes with :data:`_LINKED_HIDDEN` (None: not set).
_LINKED_MIN_CELL: int | None = None


def _csv_view(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the audit reads it back from its CSV file (same labels and types)."""
    import io

    text = table.to_csv(index=False, lineterminator="\n")
    return _typed(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""]))


def hide_populations(
    table: pd.DataFrame,
    populations: Iterable[tuple[Iterable[tuple[str, str]], str]],
    *,
    min_cell: int | None = None,
    name: str | None = None,
) -> pd.DataFrame:
    """Hide the rows of a report table that count the given populations.

    Parameters
    ----------
    table : DataFrame
        A report table as saved (long layout, or Table 1's ``variable, level`` layout).
    populations : iterable of (key, column)
        Population keys as :func:`cross_table_findings` builds them: ``key`` the
        ``(label column, value)`` pairs of a row (values as the audit writes them:
        lower-case text, totals dropped), ``column`` the count column (``"n"`` for the
        patients of Table 1's rows).
    min_cell : int, optional
        The threshold of the complementary suppression within the table's margins
        (:func:`complementary_mask`): with it, the rows hidden in a margin must also add
        up to 0 or to at least ``min_cell``. None: only no single hidden row.
    name : str, optional
        The table's name (``gad7_week4_by_dose``): as in :func:`cross_table_findings`,
        a table without an ``instrument`` or ``visit`` column whose name has exactly
        one word that the populations give in that column counts that level, so its
        rows match the populations that carry it.

    Returns
    -------
    DataFrame
        A copy in which every row counting one of ``populations`` has all but its label
        columns blanked (Table 1: its counts written ``suppressed``), with complementary
        suppression (:func:`complementary_mask`) within every margin of the table and
        every count column on its own (a row whose ``events`` are hidden but whose ``n``
        is shown is a shown cell of the ``n`` margin), so that no newly hidden cell is
        the only hidden cell of its margin; a ``suppressed``
        column, when present, marks them. Unchanged when no row matches.

    Examples
    --------
    >>> t = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [40, 30, 20]})
    >>> hide_populations(t, [({("route", "im")}, "n")])
      route     n
    0    iv    40
    1    im  <NA>
    2  oral  <NA>
    """
    min_cell = check_min_cell(min_cell)
    pops = {(frozenset(tuple(x) for x in key), str(c)) for key, c in populations}
    if not pops or table is None or not isinstance(table, pd.DataFrame) or table.empty:
        return table
    view = _csv_view(table)
    if name is not None:
        named = {c: {v for key, _ in pops for k, v in key if k == c} for c in _NAMED_COLUMNS}
        view = _with_named_population(view, name, named)
    if _is_text_count_table(view):
        cells, _ = _table_one_cells(view)
        if not cells:
            return table
        rows = np.array([r for r, _, _ in cells])
        values = np.array([v["n"] for _, _, v in cells], dtype=float)
        keys = [key for _, key, _ in cells]
        target = np.array([(key, "n") in pops for key in keys], dtype=bool)
        if not target.any():
            return table
        variable = [next(iter(k))[0] if k else None for k in keys]
        mask = complementary_mask(values, np.isnan(values) | target, [variable], min_cell=min_cell)
        new = rows[mask & ~np.isnan(values) | target]
        out = table.copy()
        for c in out.columns[2:]:
            column = out[c].astype(object)
            column.iloc[new] = "suppressed"
            out[c] = column
        return out
    counts = _count_columns(view)
    if not counts:
        return table
    labels = _label_columns(view, counts)
    keys_frame = pd.DataFrame({c: [_label_value(v) for v in view[c]] for c in labels})
    row_keys = [
        frozenset((c, v) for c, v in zip(labels, row, strict=True) if v != _TOTAL_KEY)
        for row in keys_frame.itertuples(index=False)
    ]
    target = np.array(
        [any((key, _SAME_COUNT.get(c, c)) in pops for c in counts) for key in row_keys],
        dtype=bool,
    )
    if not target.any():
        return table
    columns = {c: _numeric(view[c]) for c in counts}
    groups = []
    for col in labels:
        if col in _AUDIT_NON_PARTITION:
            continue
        others = [k for k in labels if k != col]
        joined = (
            keys_frame[others].agg("\x1f".join, axis=1)
            if others
            else pd.Series("", index=keys_frame.index)
        )
        group = joined.to_numpy(dtype=object)
        group[(keys_frame[col] == _TOTAL_KEY).to_numpy(dtype=bool)] = None  # a total row
        groups.append(group)
    # Margin by margin and count column by count column: a row whose events are hidden but
    # whose n is shown is a shown cell of the n margin, so it does not stand in for the
    # complement of a newly hidden n. Rows hidden for one column are hidden whole, which
    # can leave another column's margin with one hidden cell: repeat until nothing changes.
    hide = target.copy()
    changed = bool(groups)
    while changed:
        before = hide.copy()
        for values in columns.values():
            blank = np.isnan(values)
            mask = complementary_mask(values, blank | hide, groups, min_cell=min_cell)
            hide |= mask & ~blank
        changed = bool((hide != before).any())
    return _hide_rows(table, hide, labels)


def set_linked_suppression(populations: Iterable, *, min_cell: int | None = None) -> None:
    """Set the populations every table saved in this process hides (a --by-site run).

    ``populations``: ``(key, column)`` pairs as in :func:`hide_populations` (JSON lists
    accepted). :func:`analysis.reports.load_snapshot` sets them from the snapshot of a
    report set (none: an empty set). ``min_cell``: the threshold of the run, used by
    the complementary suppression within each table (:func:`hide_populations`).
    The figures follow the same decision (:func:`linked_hidden_levels`).
    """
    global _LINKED_HIDDEN, _LINKED_MIN_CELL
    _LINKED_MIN_CELL = check_min_cell(min_cell)
    _LINKED_HIDDEN = frozenset((frozenset(tuple(x) for x in key), str(c)) for key, c in populations)


def apply_linked_suppression(table: pd.DataFrame, name: str | None = None) -> pd.DataFrame:
    """:func:`hide_populations` with the populations set by :func:`set_linked_suppression`.

    :func:`analysis.reports.save_table` calls it on every table it saves and displays
    (with the table's ``name``, which may give its instrument and visit); outside a
    ``--by-site`` run nothing is set and ``table`` is returned as is.
    """
    if not _LINKED_HIDDEN:
        return table
    return hide_populations(table, _LINKED_HIDDEN, min_cell=_LINKED_MIN_CELL, name=name)


def linked_hidden_levels(column: str | None, **labels: object) -> set[str]:
    """The levels of ``column`` whose patients the linked decision of this process hides.

    In a ``--by-site`` run the tables hide, in addition, the populations set by
    :func:`set_linked_suppression` (from the report set's snapshot). The figures follow
    the same decision: a level of ``column`` (a route, a diagnosis, ...) is hidden in a
    figure when a hidden population is that level, alone or with labels that do not
    split patients (an instrument, a visit, an outcome: the same patients seen at one
    visit, say). Figures call this for the groups they draw per level (Kaplan-Meier
    curves and their number-at-risk table, the waterfall) and apply
    :func:`apply_linked_suppression` to the tables they draw.

    Parameters
    ----------
    column : str or None
        The grouping column (``"route"``); None gives an empty set.
    **labels
        The figure's own labels (``instrument="GAD7"``, ``visit="week4"``): a hidden
        population with another value of one of them does not concern the figure.

    Returns
    -------
    set of str
        The hidden levels, as population keys write them (lower-case text; compare
        with :func:`linked_level`). Empty outside a ``--by-site`` run.

    Examples
    --------
    >>> set_linked_suppression([[[["instrument", "gad7"], ["route", "im"]], "n"]], min_cell=11)
    >>> linked_hidden_levels("route"), linked_hidden_levels("route", instrument="HAMA")
    ({'im'}, set())
    >>> set_linked_suppression([])
    >>> linked_hidden_levels("route")
    set()
    """
    if column is None or not _LINKED_HIDDEN:
        return set()
    wanted = {str(k): _label_value(v) for k, v in labels.items()}
    found = set()
    for key, _count in _LINKED_HIDDEN:
        mine = [v for k, v in key if k == column]
        if len(mine) != 1:
            continue
        others = [(k, v) for k, v in key if k != column]
        if all(k in _AUDIT_NON_PARTITION and wanted.get(k, v) == v for k, v in others):
            found.add(mine[0])
    return found


def linked_level(value: object) -> str:
    """A level as population keys (and :func:`linked_hidden_levels`) write it.

    Examples
    --------
    >>> linked_level("IV"), linked_level(" Oral  route ")
    ('iv', 'oral route')
    """
    return _label_value(value)


def linked_suppression(
    tables: Sequence[tuple[str, str, pd.DataFrame]],
    site_sets: Mapping[str, str],
    *,
    all_sites_reported: bool = False,
    min_cell: int | None = None,
    max_rounds: int = 20,
) -> dict[str, list]:
    """The cells to hide in addition so that no site's hidden cell follows from the pooled.

    Secondary suppression across the linked tables of a ``--by-site`` run: a population
    hidden in one site's report whose count the pooled count minus the other sites'
    shown counts gives (a ``recoverable_across`` finding of
    :func:`cross_table_findings` with ``site_sets``) is hidden too in the site where
    it is smallest among those that show it (or, when no other site shows it, in the
    pooled reports); a site cell shown in one of the site's tables and hidden in another
    is hidden in all of them. The **remainder** of a population (its pooled count minus
    the shown sites' counts: the withheld sites and the patients without a site) is
    treated as a cell too: when it is 1 to ``min_cell - 1`` (a ``remainder`` finding),
    the population is hidden at the smallest site that shows it with a positive count,
    so that the hidden part (that site and the remainder) is at least ``min_cell``, or,
    when no site shows it, in the pooled reports. Hidden site cells whose sum a margin
    gives as a small count (``hidden_sum``) are treated like recoverable ones. Repeated
    on the tables with these cells hidden (:func:`hide_populations`, which also
    suppresses within each table's margins) until no site cell is recoverable.

    Parameters
    ----------
    tables : sequence of (file, table, DataFrame)
        The saved tables of the run (files relative to the report folder).
    site_sets, all_sites_reported, min_cell
        As in :func:`cross_table_findings` (with ``min_cell``, a site cell confined to a
        small range, ``interval``, is treated like a recoverable one).
    max_rounds : int
        Bound on the repetitions.

    Returns
    -------
    dict
        Set folder (``""`` for the pooled reports, ``"sites/S01"``, ...) -> the sorted
        list of ``[key, column]`` populations to hide there (``key``: list of
        ``[label, value]``), for :func:`set_linked_suppression`; empty when nothing needs
        hiding.

    Examples
    --------
    Route IM has 3 patients at S01 (hidden there, with oral) and 27 at S02: the pooled
    30 minus S02's 27 would give S01's 3, so S02 hides IM (and, within its margin, the
    next smallest route):

    >>> pooled = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [60, 30, 40]})
    >>> s01 = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [30, None, None]})
    >>> s02 = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [30, 27, 20]})
    >>> tables = [("t.csv", "t", pooled), ("sites/S01/t.csv", "t", s01),
    ...           ("sites/S02/t.csv", "t", s02)]
    >>> linked_suppression(tables, {"sites/S01": "S01", "sites/S02": "S02"},
    ...                    all_sites_reported=True)
    {'sites/S02': [[[['route', 'im']], 'n'], [[['route', 'oral']], 'n']]}
    """
    site_sets = dict(site_sets)
    folder_of = {site: folder for folder, site in site_sets.items()}
    extra: dict[str, set] = {}
    for _ in range(max_rounds):
        current = []
        for file, name, df in tables:
            site, _rel = _set_of(file, site_sets)
            folder = "" if site is None else folder_of[site]
            hidden_here = extra.get(folder, ())
            current.append(
                (file, name, hide_populations(df, hidden_here, min_cell=min_cell, name=name))
            )
        found, known = _cross_table(
            current,
            site_sets=site_sets,
            all_sites_reported=all_sites_reported,
            min_cell=check_min_cell(min_cell),
        )
        added = False
        deferred: list[tuple] = []
        for check, pop in zip(found["check"], found["population"], strict=True):
            sites = {v for k, v in pop[0] if k == _SITE_KEY}
            if check == "remainder" and not sites:
                # pooled minus the shown sites is a small count: hide the population at
                # the smallest shown site with a positive count (then the remainder and
                # that site together are hidden, >= min_cell). With no such site the
                # remainder follows from site cells that are themselves recoverable
                # (found too, and hidden at their sites first): the next round decides.
                positive = [
                    (known[(_with_site(pop[0], other), *pop[1:])], other)
                    for other in sorted(folder_of)
                    if (_with_site(pop[0], other), *pop[1:]) in known
                    and known[(_with_site(pop[0], other), *pop[1:])] > 0
                ]
                if not positive:
                    continue
                target = folder_of[min(positive)[1]]
                if (pop[0], pop[1]) not in extra.setdefault(target, set()):
                    extra[target].add((pop[0], pop[1]))
                    added = True
                continue
            if not sites:
                if check == "shown_elsewhere":  # the pooled set hides it in every table
                    if (pop[0], pop[1]) not in extra.setdefault("", set()):
                        extra[""].add((pop[0], pop[1]))
                        added = True
                continue
            site = next(iter(sites))
            base = (pop[0] - {(_SITE_KEY, site)}, pop[1])
            if check == "shown_elsewhere":
                target = folder_of[site]
            else:
                shown = [
                    (known[(_with_site(base[0], other), *pop[1:])], other)
                    for other in sorted(folder_of)
                    if other != site and (_with_site(base[0], other), *pop[1:]) in known
                ]
                positive = [x for x in shown if x[0] > 0] or shown
                if not positive:
                    # no other site shows it: the pooled set hides it, but only when
                    # nothing else changes this round (a cell shown elsewhere in its own
                    # site often makes it recoverable; hiding that comes first)
                    deferred.append(base)
                    continue
                target = folder_of[min(positive)[1]]
            if base not in extra.setdefault(target, set()):
                extra[target].add(base)
                added = True
        if not added:
            for base in deferred:
                if base not in extra.setdefault("", set()):
                    extra[""].add(base)
                    added = True
        if not added:
            break
    return {
        folder: sorted(([sorted(list(x) for x in key), c] for key, c in pops), key=repr)
        for folder, pops in sorted(extra.items())
        if pops
    }


class _TableParser(HTMLParser):
    """The cell texts of every ``<table>`` of an HTML page (standard library only)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[list[list[str]], int]] = []
        self._stack: list[tuple[list[list[str]], list[int]]] = []
        self._cell: list[str] | None = None
        self._in_head = False
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self._stack.append(([], [0]))
        elif not self._stack:
            return
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._stack[-1][0].append([])
            if self._in_head:
                self._stack[-1][1][0] += 1
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip = max(self._skip - 1, 0)
        elif tag == "table" and self._stack:
            rows, head = self._stack.pop()
            self.tables.append((rows, head[0]))
        elif not self._stack:
            return
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            rows = self._stack[-1][0]
            if not rows:
                rows.append([])
            rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _html_tables(text: str) -> list[pd.DataFrame]:
    """Every HTML table of a page as a frame (last header row as column names)."""
    if "<table" not in text:
        return []
    parser = _TableParser()
    parser.feed(text)
    frames = []
    for rows, n_head in parser.tables:
        rows = [r for r in rows if r]
        if not rows:
            continue
        n_head = max(n_head, 1)
        width = max(len(r) for r in rows)
        header = rows[n_head - 1] + [""] * (width - len(rows[n_head - 1]))
        if n_head > 1:  # pandas: a second header row names the index only
            first = rows[0] + [""] * (width - len(rows[0]))
            header = [a or b for a, b in zip(first, header, strict=True)]
        body = [r + [""] * (width - len(r)) for r in rows[n_head:]]
        seen: dict[str, int]
        names, seen = [], {}
        for h in header:
            seen[h] = seen.get(h, 0) + 1
            names.append(h if seen[h] == 1 else f"{h}.{seen[h] - 1}")
        df = pd.DataFrame(body, columns=names).replace({"": None, "<NA>": None, "NaN": None})
        frames.append(_typed(df))
    return frames


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Columns whose every non-missing cell is a number become numeric.

    The audit types every table it reads (CSV files, page and notebook tables: columns
    of text). A column of Python strings is checked string by string with the compiled
    pattern; any other column as :func:`_typed_generic` does (the same result, tested).
    """
    out = df.copy()
    for c in out.columns:
        column = out[c]
        values = column.to_numpy()
        if values.dtype != object:
            if _numeric_text(column):
                out[c] = pd.to_numeric(column, errors="coerce")
            continue
        present = values[~pd.isna(values)]
        if not all(type(v) is str for v in present):
            if _numeric_text(column):
                out[c] = pd.to_numeric(column, errors="coerce")
            continue
        if len(present) and all(_NUMERIC_TEXT.match(v.strip()) for v in present):
            out[c] = pd.to_numeric(column, errors="coerce")
    return out


#: :data:`_NUMERIC` as pandas' ``str.match`` compiles its pattern (no flags).
_NUMERIC_TEXT = re.compile(_NUMERIC.pattern)


def _numeric_text(column: pd.Series) -> bool:
    """Whether every non-missing cell of ``column``, as text and stripped, is a number."""
    text = column.dropna().astype(str).str.strip()
    return bool(len(text) and text.str.match(_NUMERIC.pattern).all())


def _typed_generic(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`_typed` through pandas' string methods for every column (the reference)."""
    out = df.copy()
    for c in out.columns:
        if _numeric_text(out[c]):
            out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def _text_identifier_findings(text: str, ids: set[str], name: str) -> list:
    """Patient ids appearing anywhere in a text (printed output, page text)."""
    if not ids:
        return []
    hits = {t for t in _TOKEN.findall(text) if t in ids}
    return [(name, "text", 0, "identifier")] * bool(hits)


def _notebook_text(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            for value in [output.get("text", ""), *output.get("data", {}).values()]:
                if isinstance(value, list):
                    value = "".join(str(v) for v in value)
                if isinstance(value, str) and not value.startswith("iVBOR"):  # not images
                    parts.append(value)
    return "\n".join(parts)


def _notebook_tables(path: Path) -> list[tuple[str, pd.DataFrame]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for k, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            html_text = data.get("text/html")
            if html_text:
                html_text = "".join(html_text) if isinstance(html_text, list) else html_text
                for j, t in enumerate(_html_tables(html_text)):
                    out.append((f"cell {k} table {j + 1}", t))
    return out


def _flatten(df: pd.DataFrame) -> pd.DataFrame:
    if isinstance(df.columns, pd.MultiIndex):
        df = df.copy()
        df.columns = [
            next((str(x) for x in reversed(col) if not str(x).startswith("Unnamed")), "")
            for col in df.columns
        ]
    return df


def _manifest_findings(path: Path, min_cell: int) -> list:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    rows = manifest.get("data", {}).get("rows", {})
    found = []
    for table, count in rows.items():
        if isinstance(count, int | float) and small_count([count], min_cell)[0]:
            found.append(("manifest", str(table), 0, "small_count"))
    return found


def report_site_sets(report_dir: str | Path) -> tuple[dict[str, str], bool]:
    """The site sets of a report folder and whether they hold every patient's site.

    Parameters
    ----------
    report_dir : str or Path
        A report folder; a ``--by-site`` run records its site plan in ``manifest.json``
        (``sites``: the sites reported separately with their folders, the sites
        withheld, whether some patients have no site).

    Returns
    -------
    (dict, bool)
        Folder (``"sites/S01"``) -> site code, and True only when the manifest says no
        site was withheld and every patient has a site. Without a site plan in the
        manifest, every folder ``sites/<name>`` holding files is a site set and the
        sites are taken as incomplete (an unknown remainder: no false alarm).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> report_site_sets(folder)
    ({}, False)
    """
    folder = Path(report_dir)
    manifest_path = folder / "manifest.json"
    plan = None
    if manifest_path.is_file():
        try:
            plan = json.loads(manifest_path.read_text(encoding="utf-8")).get("sites")
        except (OSError, ValueError, AttributeError):
            plan = None
    if isinstance(plan, dict) and isinstance(plan.get("shown"), dict):
        sets = {
            str(info["folder"]).rstrip("/"): str(site)
            for site, info in plan["shown"].items()
            if isinstance(info, dict) and isinstance(info.get("folder"), str)
        }
        complete = not plan.get("withheld") and not plan.get("patients_without_site", True)
        return sets, bool(complete and len(sets) == len(plan["shown"]))
    sites = folder / "sites"
    sets = {
        f"sites/{p.name}": p.name
        for p in (sorted(sites.iterdir()) if sites.is_dir() else [])
        if p.is_dir()
    }
    return sets, False


def audit_report_dir(
    report_dir: str | Path,
    min_cell: int | None = None,
    *,
    identifiers: Iterable[str] = (),
    raise_on_failure: bool = False,
) -> AuditResult:
    """Audit a folder of rendered reports against the disclosure policy.

    Parameters
    ----------
    report_dir : str or Path
        A folder written by :func:`analysis.run_reports` (or by other means): HTML pages,
        CSV tables (in any subfolder), executed notebooks and ``manifest.json``.
    min_cell : int, optional
        Threshold; default the ``min_cell`` recorded in ``manifest.json``, else 11.
    identifiers : iterable of str
        Values that must not appear in any table cell (the cohort's patient ids); ids of
        at least 4 characters that are not all digits are also looked for in the text
        of HTML pages and notebook outputs.
    raise_on_failure : bool
        Raise :class:`DisclosureAuditError` instead of returning a failed result.

    Returns
    -------
    AuditResult
        ``ok``, ``findings`` (``file, table, column, row, check``; no values) and
        ``message()``.

    Notes
    -----
    Every table found is checked with :func:`audit_table`: in CSV files, in HTML pages
    and in the HTML outputs of executed notebooks; ``manifest.json`` may not give a table
    a row count of 1 to ``min_cell - 1``. Then all these tables are checked together
    with :func:`cross_table_findings` (a count hidden in one table and shown in
    another, or determined by the margins of several tables). The tables of each
    site's reports of a ``--by-site`` run (``sites/<site>/``) count that site's
    patients and are linked to the pooled ones (the pooled count of a population is the
    sum of the sites' counts; see :func:`report_site_sets`), so a cell hidden in a
    site's report that equals the pooled count minus the other sites' shown counts is
    found. Values are never copied into the findings.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"route": ["iv", "im"], "n": [40, 3]}).to_csv(folder / "t.csv", index=False)
    >>> audit_report_dir(folder).findings[["file", "column", "check"]]
        file column        check
    0  t.csv      n  small_count
    """
    folder = Path(report_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"No report folder at {folder}.")
    manifest_path = folder / "manifest.json"
    if min_cell is None:
        min_cell = DEFAULT_MIN_CELL
        if manifest_path.is_file():
            params = json.loads(manifest_path.read_text(encoding="utf-8")).get("parameters", {})
            min_cell = params.get("min_cell", DEFAULT_MIN_CELL) or DEFAULT_MIN_CELL
    min_cell = check_min_cell(min_cell, optional=False)
    ids = [str(i) for i in identifiers]
    # ids that cannot be mistaken for a number or a word in running text
    id_set = {i for i in ids if len(i) >= 4 and not i.isdigit()}
    files: list[str] = []
    frames = []
    batch: list[tuple[str, str, pd.DataFrame]] = []

    def add(file: str, findings: pd.DataFrame) -> None:
        if len(findings):
            frames.append(findings.assign(file=file))

    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        suffix = path.suffix.lower()
        if suffix == ".csv":
            df = _typed(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
            add(rel, audit_table(df, min_cell, name=path.stem, identifiers=ids))
            batch.append((rel, path.stem, df))
        elif suffix in (".html", ".htm"):
            page = path.read_text(encoding="utf-8")
            for k, t in enumerate(_html_tables(page)):
                batch.append((rel, f"table {k + 1}", _flatten(t)))
                add(
                    rel,
                    audit_table(
                        _flatten(t),
                        min_cell,
                        name=f"table {k + 1}",
                        identifiers=ids,
                        formulas=False,
                    ),
                )
            found = _text_identifier_findings(page, id_set, "page text")
            add(rel, pd.DataFrame(found, columns=["table", "column", "row", "check"]))
        elif suffix == ".ipynb":
            for label, t in _notebook_tables(path):
                batch.append((rel, label, _flatten(t)))
                add(
                    rel,
                    audit_table(_flatten(t), min_cell, name=label, identifiers=ids, formulas=False),
                )
            found = _text_identifier_findings(_notebook_text(path), id_set, "outputs")
            add(rel, pd.DataFrame(found, columns=["table", "column", "row", "check"]))
        elif path.name == "manifest.json":
            found = _manifest_findings(path, min_cell)
            add(rel, pd.DataFrame(found, columns=["table", "column", "row", "check"]))
        else:
            continue
        files.append(rel)
    # One linear system for the whole folder: the pooled set and each site's set of a
    # ``--by-site`` run (``sites/<site>/``), linked by "pooled = sum of the sites".
    site_sets, complete = report_site_sets(folder)
    across = cross_table_findings(
        batch, site_sets=site_sets, all_sites_reported=complete, min_cell=min_cell
    )
    if len(across):
        within = pd.concat(frames, ignore_index=True) if frames else across.iloc[:0]
        place = ["file", "table", "column", "row"]
        seen = set(within[place].itertuples(index=False, name=None))
        keep = [p not in seen for p in across[place].itertuples(index=False, name=None)]
        frames.append(across[keep])
    result = AuditResult(min_cell=min_cell, files=tuple(files))
    if frames:
        columns = ["file", "table", "column", "row", "check"]
        result = AuditResult(min_cell, tuple(files), pd.concat(frames, ignore_index=True)[columns])
    if raise_on_failure and not result.ok:
        raise DisclosureAuditError(result)
    return result
