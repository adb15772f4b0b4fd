"""Proportions and their comparisons: rates, RD, RR, OR, NNT, small-cell suppression.

Every function takes the endpoint frame of :func:`analysis.derive_endpoints` (one row per
patient x visit, nullable boolean outcome columns) and returns a tidy DataFrame with one
row per cell of ``by`` (and per compared level of ``group``). Rows whose outcome is NA are
never counted: the outcome is not defined for them (for example remission for a patient
who was already under the cut-off at baseline).

Conventions shared by every function:

- ``by`` is a column name, a sequence of names, or ``()`` for a single overall row.
- ``alpha`` is the two-sided error rate of every interval (0.05 gives 95% intervals).
- ``group`` / ``reference``: the comparison is always ``group level - reference`` (or
  ``/ reference``); the default reference is the first sorted level of ``group``.
- Counts are nullable ``Int64``, statistics ``float64`` (NaN where undefined or
  suppressed).
- Rows are sorted by ``by``; visits follow the schedule (their ``target_day``) when the
  frame has a ``target_day`` column, so "week2" comes before "week12".
- Each ``by`` cell should hold one row per patient (for example ``by=("instrument",
  "visit")``); the methods assume independent rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import narwhals as nw
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from analysis._frames import (
    as_frame,
    count_cells,
    distinct,
    indicator,
    levels_of,
    require_columns,
    small_to_pandas,
)
from analysis._utils import (
    as_by,
    check_alpha,
    check_choice,
    check_columns,
    check_min_cell,
)
from analysis.endpoints import sort_cells

__all__ = [
    "adjust_pvalues",
    "adjusted_compare_rates",
    "compare_rates",
    "compare_rates_stratified",
    "newcombe_interval",
    "proportion_ci",
    "rate_table",
    "suppress_small_cells",
]

# Our names -> statsmodels' names for proportion_confint.
_CI_METHODS = {
    "wilson": "wilson",
    "exact": "beta",
    "jeffreys": "jeffreys",
    "agresti_coull": "agresti_coull",
}
# Our (R ``p.adjust``) names -> statsmodels' ``multipletests`` names.
_P_ADJUST_ALIASES = {"hochberg": "simes-hochberg", "BH": "fdr_bh", "BY": "fdr_by"}
_P_ADJUST_METHODS = [
    "holm",
    "fdr_bh",
    "bonferroni",
    "hochberg",
    "hommel",
    "sidak",
    "holm-sidak",
    "fdr_by",
    "BH",
    "BY",
]
_RATE_COLUMNS = ["n", "events", "rate", "ci_low", "ci_high", "suppressed"]
_COMPARE_COLUMNS = [
    "group",
    "reference",
    "n",
    "events",
    "n_ref",
    "events_ref",
    "risk_difference",
    "rd_ci_low",
    "rd_ci_high",
    "risk_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
    "nnt",
    "nnt_ci_low",
    "nnt_ci_high",
    "nnt_ci_includes_infinity",
    "nnt_note",
    "zero_cell_correction",
    "p_value",
    "test",
    "ratio_note",
]
_COUNT_COLUMNS = ("n", "events", "n_ref", "events_ref")


# --------------------------------------------------------------------------------------
# argument checks and counting


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def _binary(df: pd.DataFrame, outcome: str) -> pd.Series:
    """The outcome as float 1.0 / 0.0 / NaN; raises unless it is boolean or 0/1."""
    return indicator(df[outcome], outcome)


def _levels(
    df: object, group: str, reference: object, counts: pd.DataFrame | None = None
) -> tuple[list, object]:
    """The levels of ``group`` (any engine's frame) and the checked reference level;
    read from ``counts`` (a table of ``df`` grouped by ``group``) when given."""
    frame = as_frame(df)
    levels = distinct(frame, group) if counts is None else levels_of(frame, counts, group)
    if len(levels) < 2:
        raise ValueError(
            f"Column `{group}` must hold at least two levels to compare, but it holds "
            f"{levels}. Pass a grouping column such as 'route' or 'arm'."
        )
    if reference is None:
        reference = levels[0]
    check_choice("reference", reference, levels)
    return levels, reference


def _key(row: pd.Series | tuple, by: list[str]) -> tuple:
    return tuple(row[b] for b in by) if isinstance(row, pd.Series) else tuple(row)


# --------------------------------------------------------------------------------------
# single-proportion and two-proportion intervals


def proportion_ci(
    events: int | Sequence[int] | np.ndarray,
    n: int | Sequence[int] | np.ndarray,
    method: str = "wilson",
    alpha: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval for a binomial proportion ``events / n``.

    Parameters
    ----------
    events, n : int or array_like of int
        Number of events and of trials (``0 <= events <= n``). Where ``n`` is 0 the
        bounds are NaN.
    method : {"wilson", "exact", "jeffreys", "agresti_coull"}
        ``"wilson"``: score interval without continuity correction (default, Newcombe
        1998a method 3); ``"exact"``: Clopper-Pearson; ``"jeffreys"``: equal-tailed
        Beta(x + 1/2, n - x + 1/2) interval with the lower bound set to 0 when x = 0 and
        the upper bound to 1 when x = n (Brown, Cai and DasGupta 2001);
        ``"agresti_coull"``: the "add z^2/2 successes and failures" Wald interval,
        truncated to [0, 1].
    alpha : float
        Two-sided error rate; 0.05 gives a 95% interval.

    Returns
    -------
    (ci_low, ci_high) : tuple of numpy arrays (0-d for scalar input)

    Notes
    -----
    Computed by :func:`statsmodels.stats.proportion.proportion_confint`. The bound at 0
    events is exactly 0 and the bound at n events exactly 1 for every method, so the
    sample proportion always lies inside its interval.

    References
    ----------
    Newcombe RG (1998a). Two-sided confidence intervals for the single proportion:
    comparison of seven methods. Stat Med 17:857-872.
    Brown LD, Cai TT, DasGupta A (2001). Interval estimation for a binomial proportion.
    Stat Sci 16:101-133.

    Examples
    --------
    >>> from analysis.rates import proportion_ci
    >>> low, high = proportion_ci(81, 263)
    >>> print(f"{low:.4f} {high:.4f}")
    0.2553 0.3662
    >>> low, high = proportion_ci(1, 29, method="exact")
    >>> print(f"{low:.4f} {high:.4f}")
    0.0009 0.1776
    """
    check_choice("method", method, list(_CI_METHODS))
    alpha = check_alpha(alpha)
    x = np.asarray(events, dtype=float)
    m = np.asarray(n, dtype=float)
    if np.any(x < 0) or np.any(x > m):
        raise ValueError("`events` must lie between 0 and `n`; check the counts passed.")
    ok = m > 0
    safe_m = np.where(ok, m, 1.0)
    safe_x = np.where(ok, x, 0.0)
    low, high = proportion_confint(safe_x, safe_m, alpha=alpha, method=_CI_METHODS[method])
    low = np.clip(np.asarray(low, dtype=float), 0.0, 1.0)
    high = np.clip(np.asarray(high, dtype=float), 0.0, 1.0)
    low = np.where(safe_x == 0, 0.0, low)
    high = np.where(safe_x == safe_m, 1.0, high)
    low = np.where(ok, low, np.nan)
    high = np.where(ok, high, np.nan)
    return low, high


def newcombe_interval(
    events1: int, n1: int, events2: int, n2: int, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the risk difference ``p1 - p2``.

    Parameters
    ----------
    events1, n1 : int
        Events and patients in the first group.
    events2, n2 : int
        Events and patients in the second (reference) group.
    alpha : float
        Two-sided error rate; 0.05 gives a 95% interval.

    Returns
    -------
    (ci_low, ci_high) : tuple of float (NaN when either n is 0)

    Notes
    -----
    With ``(l_i, u_i)`` the Wilson score interval of ``p_i`` (no continuity correction),
    Newcombe's method 10 is::

        L = (p1 - p2) - sqrt((p1 - l1)^2 + (u2 - p2)^2)
        U = (p1 - p2) + sqrt((u1 - p1)^2 + (p2 - l2)^2)

    It never leaves [-1, 1], is defined for zero cells and has coverage close to nominal
    (Newcombe 1998b).

    References
    ----------
    Newcombe RG (1998b). Interval estimation for the difference between independent
    proportions: comparison of eleven methods. Stat Med 17:873-890, method 10.

    Examples
    --------
    >>> from analysis.rates import newcombe_interval
    >>> low, high = newcombe_interval(56, 70, 48, 80)
    >>> print(f"{low:.4f} {high:.4f}")
    0.0524 0.3339
    """
    alpha = check_alpha(alpha)
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    p1, p2 = events1 / n1, events2 / n2
    l1, u1 = (float(v) for v in proportion_ci(events1, n1, "wilson", alpha))
    l2, u2 = (float(v) for v in proportion_ci(events2, n2, "wilson", alpha))
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(low, -1.0), min(high, 1.0)


# --------------------------------------------------------------------------------------
# rate_table and small cells


def suppress_small_cells(
    table: pd.DataFrame,
    min_cell: int = 11,
    count_columns: Sequence[str] = ("events",),
    *,
    total: str | None = "n",
    derived: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Blank counts of 1 to ``min_cell - 1`` and everything derived from them, row by row.

    Parameters
    ----------
    table : DataFrame
        One row per cell of a report table.
    min_cell : int
        Smallest count that may be shown (besides 0). 11 implements the CMS rule "no cell
        of 1-10".
    count_columns : sequence of str
        Counts that are parts of ``total`` (events, patients in a category, ...).
    total : str or None
        Denominator column of ``count_columns`` (for example ``"n"``). When given, the
        complements ``total - count`` are checked too, since a visible total would reveal
        them.
    derived : sequence of str or None
        Statistics computed from the counts (rates, intervals, percentages). ``None``
        means every float column of ``table``.

    Returns
    -------
    DataFrame
        A copy with counts as nullable ``Int64``, ``derived`` columns as float and a
        boolean ``suppressed`` column (combined with an existing one by "or").

    Notes
    -----
    A row is flagged when any of ``count_columns``, ``total`` or ``total - count`` lies in
    ``1 .. min_cell - 1``. In a flagged row every count column and every derived column
    is blanked (NA), and ``total`` is blanked only when it is itself under ``min_cell``.
    Zero counts never trigger suppression (CMS allows 0). The rule is row-wise and is
    :func:`analysis.disclosure.suppress_cells` (the one implementation of the policy),
    which also does complementary suppression when given ``margins``.

    References
    ----------
    Centers for Medicare & Medicaid Services, Cell Size Suppression Policy (no cell of
    1-10, nor any value from which one can be derived).

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import suppress_small_cells
    >>> t = pd.DataFrame({"site": ["a", "b", "c"], "n": [40, 40, 6],
    ...                   "events": [12, 35, 3], "rate": [0.3, 0.875, 0.5]})
    >>> suppress_small_cells(t, min_cell=11)
      site     n  events  rate  suppressed
    0    a    40      12   0.3       False
    1    b    40    <NA>   NaN        True
    2    c  <NA>    <NA>   NaN        True
    """
    from analysis.disclosure import suppress_cells

    check_min_cell(min_cell, optional=False)
    counts = as_by(count_columns)
    check_columns(table, counts + ([total] if total else []), "table")
    return suppress_cells(
        table, min_cell, counts, total=total, derived=None if derived is None else as_by(derived)
    )


def rate_table(
    endpoints: pd.DataFrame,
    outcome: str = "response",
    by: str | Sequence[str] | None = ("instrument", "visit"),
    method: str = "wilson",
    alpha: float = 0.05,
    min_cell: int | None = None,
    margins: str | Sequence[Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Proportion of patients meeting ``outcome`` with a confidence interval, per cell.

    Parameters
    ----------
    endpoints : DataFrame
        Output of :func:`analysis.derive_endpoints` (or any frame with the ``by`` columns
        and a boolean ``outcome`` column): pandas, Polars (eager or lazy), DuckDB or
        Spark. The counts per cell are computed in that engine; only they come back.
    outcome : str
        Boolean outcome column: ``"response"``, ``"remission"``, ``"partial_response"``,
        ``"reliable_improvement"``, ``"reliable_deterioration"``, ``"recovery"``,
        ``"reliable_recovery"`` or any True/False/NA column.
    by : str, sequence of str or ()
        Cells of the table; ``()`` gives one overall row.
    method : {"wilson", "exact", "jeffreys", "agresti_coull"}
        Interval for each proportion, see :func:`proportion_ci`. ``"exact"`` is
        Clopper-Pearson.
    alpha : float
        Two-sided error rate; 0.05 gives 95% intervals.
    min_cell : int or None
        When given, the small-cell rule of :func:`suppress_small_cells` (``count_columns
        = ("events",)``, ``total = "n"``): a row whose n, events or n - events lies in
        ``1 .. min_cell - 1`` has events, rate and interval blanked and
        ``suppressed=True``; n is blanked too when under ``min_cell``. Reports use 11.
    margins : "auto", list of list of str, or None
        Complementary suppression (with ``min_cell``) for a table published next to its
        totals: rows sharing the values of a margin's columns add up to a shown total,
        so a single hidden cell among them is protected by hiding the next-smallest one
        (:func:`analysis.disclosure.suppress_cells`). ``"auto"`` takes one margin per
        ``by`` column that splits patients into disjoint groups (route, site,
        diagnosis, ...; not instrument or visit), see
        :func:`analysis.disclosure.partition_margins`; the reports use it. None (the
        default) applies the row rule alone.

    Returns
    -------
    DataFrame
        ``by..., n, events, rate, ci_low, ci_high, suppressed``, sorted by ``by`` (visits
        in schedule order when a ``target_day`` column is present); ``n`` counts the rows
        whose outcome is not NA (a cell where it is NA for everyone has n = 0 and NaN
        rate); ``n``/``events`` are ``Int64``, the rest float, ``suppressed`` bool.

    Notes
    -----
    ``rate = events / n``. The Wilson interval (default) is
    ``(p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``; it keeps good
    coverage for small n and for rates near 0 or 1, where the Wald interval fails.

    References
    ----------
    Newcombe RG (1998a). Two-sided confidence intervals for the single proportion:
    comparison of seven methods. Stat Med 17:857-872.
    Wilson EB (1927). Probable inference, the law of succession, and statistical
    inference. J Am Stat Assoc 22:209-212.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import rate_table
    >>> ep = pd.DataFrame({
    ...     "instrument": "GAD7", "visit": "week4",
    ...     "response": pd.array([True] * 15 + [False] * 133 + [None] * 3, dtype="boolean")})
    >>> rate_table(ep).round(4)
      instrument  visit    n  events    rate  ci_low  ci_high  suppressed
    0       GAD7  week4  148      15  0.1014  0.0624   0.1605       False
    >>> rate_table(ep, by=(), method="exact", min_cell=20).round(4)
         n  events  rate  ci_low  ci_high  suppressed
    0  148    <NA>   NaN     NaN      NaN        True
    """
    return _rate_tables(endpoints, [outcome], by, method, alpha, min_cell, margins)[0]


def _rate_tables(
    endpoints: object,
    outcomes: Sequence[str],
    by: str | Sequence[str] | None,
    method: str,
    alpha: float,
    min_cell: int | None,
    margins: str | Sequence[Sequence[str]] | None,
) -> list[pd.DataFrame]:
    """:func:`rate_table` of each outcome, counted in one query of the engine."""
    by = as_by(by)
    check_min_cell(min_cell)
    if isinstance(margins, str):
        check_choice("margins", margins, ["auto"])
    check_choice("method", method, list(_CI_METHODS))
    alpha = check_alpha(alpha)
    frame = as_frame(endpoints, "endpoints")
    require_columns(frame, [*by, *outcomes], "endpoints")
    cells = count_cells(frame, outcomes, by)
    return [
        _rates(cells.table, outcome, by, method, alpha, min_cell, margins, cells.schedule)
        for outcome in outcomes
    ]


def _rates(
    counts: pd.DataFrame,
    outcome: str,
    by: list[str],
    method: str,
    alpha: float,
    min_cell: int | None,
    margins: str | Sequence[Sequence[str]] | None,
    schedule: pd.DataFrame,
) -> pd.DataFrame:
    """The rate table of ``outcome`` from its counts per cell."""
    out = counts[by].copy()
    out["n"] = counts[f"n_{outcome}"].to_numpy()
    out["events"] = counts[f"events_{outcome}"].to_numpy()
    n = out["n"].to_numpy()
    events = out["events"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate"] = np.where(n > 0, events / np.where(n > 0, n, 1), np.nan)
    out["ci_low"], out["ci_high"] = proportion_ci(events, n, method, alpha)
    out["n"] = out["n"].astype("Int64")
    out["events"] = out["events"].astype("Int64")
    out["suppressed"] = False
    if min_cell is not None:
        from analysis.disclosure import partition_margins, suppress_cells

        out = suppress_cells(
            out,
            min_cell,
            ("events",),
            total="n",
            derived=("rate", "ci_low", "ci_high"),
            margins=partition_margins(by) if isinstance(margins, str) else margins,
        )
    return sort_cells(out[[*by, *_RATE_COLUMNS]], schedule, by)


# --------------------------------------------------------------------------------------
# two-group comparison


def _pvalue_2x2(a: int, n1: int, c: int, n2: int) -> tuple[float, str]:
    """Pearson chi-square (no continuity correction), Fisher when an expected count < 5."""
    table = np.array([[a, n1 - a], [c, n2 - c]], dtype=float)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if (expected < 5).any():
        return float(stats.fisher_exact(table.astype(int))[1]), "fisher"
    chi2 = stats.chi2_contingency(table, correction=False)
    return float(chi2.pvalue), "chi2"


def _reciprocal(x: float, zero: float) -> float:
    return zero if x == 0 else 1.0 / x


def _nnt_label(value: float, events_are: str) -> str:
    more_events = value > 0
    benefit = more_events if events_are == "benefit" else not more_events
    return "NNTB" if benefit else "NNTH"


def _nnt(rd: float, low: float, high: float, alpha: float, events_are: str) -> dict:
    """NNT = 1/RD; bounds the reciprocals of the RD bounds (Altman 1998)."""
    if any(math.isnan(v) for v in (rd, low, high)):
        return {
            "nnt": math.nan,
            "nnt_ci_low": math.nan,
            "nnt_ci_high": math.nan,
            "nnt_ci_includes_infinity": pd.NA,
            "nnt_note": pd.NA,
        }
    level = f"{100 * (1 - alpha):g}% CI"
    nnt = _reciprocal(rd, math.inf)
    through = low <= 0 <= high
    if through:
        # RD in [low, 0) gives NNT in (-inf, 1/low]; RD in (0, high] gives [1/high, inf).
        nnt_low, nnt_high = _reciprocal(low, -math.inf), _reciprocal(high, math.inf)
        ci = (
            f"{level} {_nnt_label(-1, events_are)} {abs(nnt_low):.1f} to infinity to "
            f"{_nnt_label(1, events_are)} {abs(nnt_high):.1f}"
        )
    else:
        nnt_low, nnt_high = 1.0 / high, 1.0 / low
        a, b = sorted((abs(nnt_low), abs(nnt_high)))
        ci = f"{level} {a:.1f} to {b:.1f}"
    head = "NNT infinite" if rd == 0 else f"{_nnt_label(rd, events_are)} {abs(nnt):.1f}"
    return {
        "nnt": nnt,
        "nnt_ci_low": nnt_low,
        "nnt_ci_high": nnt_high,
        "nnt_ci_includes_infinity": through,
        "nnt_note": f"{head} ({ci})",
    }


def _compare_2x2(a: int, n1: int, c: int, n2: int, alpha: float, events_are: str) -> dict:
    """Every statistic of one row of compare_rates (group a/n1 vs reference c/n2)."""
    res: dict = {"n": n1, "events": a, "n_ref": n2, "events_ref": c}
    nan_stats: dict[str, object] = dict.fromkeys(_COMPARE_COLUMNS[6:], math.nan)
    nan_stats.update(
        {
            "nnt_ci_includes_infinity": pd.NA,
            "nnt_note": pd.NA,
            "zero_cell_correction": pd.NA,
            "test": pd.NA,
            "ratio_note": pd.NA,
        }
    )
    if n1 == 0 or n2 == 0:
        return res | nan_stats
    z = _z(alpha)
    p1, p2 = a / n1, c / n2
    rd = p1 - p2
    rd_low, rd_high = newcombe_interval(a, n1, c, n2, alpha)
    b, d = n1 - a, n2 - c
    corrected = min(a, b, c, d) == 0
    aa, bb, cc, dd = (x + 0.5 if corrected else float(x) for x in (a, b, c, d))
    # Both groups at 0% or both at 100%: the table holds no information on a ratio (the
    # 0.5 correction would invent one, e.g. RR 0.99 next to RD 0), so RR and OR are
    # undefined, as for R metafor's ``drop00`` and epitools.
    one_sided = (a == 0 and c == 0) or (b == 0 and d == 0)
    ratio_note = pd.NA
    if one_sided:
        at = "0%" if a == 0 else "100%"
        ratio_note = (
            f"RR and OR undefined: both groups at {at}; the risk difference (0) and its "
            "interval carry the comparison"
        )
        rr = rr_low = rr_high = math.nan
    else:
        rr = (aa / (aa + bb)) / (cc / (cc + dd))
        se = math.sqrt(1 / aa - 1 / (aa + bb) + 1 / cc - 1 / (cc + dd))
        rr_low, rr_high = rr * math.exp(-z * se), rr * math.exp(z * se)
    if one_sided:
        odds = or_low = or_high = math.nan
    else:
        odds = aa * dd / (bb * cc)
        se = math.sqrt(1 / aa + 1 / bb + 1 / cc + 1 / dd)
        or_low, or_high = odds * math.exp(-z * se), odds * math.exp(z * se)
    p_value, test = _pvalue_2x2(a, n1, c, n2)
    return (
        res
        | {
            "risk_difference": rd,
            "rd_ci_low": rd_low,
            "rd_ci_high": rd_high,
            "risk_ratio": rr,
            "rr_ci_low": rr_low,
            "rr_ci_high": rr_high,
            "odds_ratio": odds,
            "or_ci_low": or_low,
            "or_ci_high": or_high,
        }
        | _nnt(rd, rd_low, rd_high, alpha, events_are)
        | {
            "zero_cell_correction": corrected and not one_sided,
            "p_value": p_value,
            "test": test,
            "ratio_note": ratio_note,
        }
    )


def _events_are(outcome: str, events_are: str | None) -> str:
    if events_are is None:
        return "harm" if "deterioration" in outcome else "benefit"
    check_choice("events_are", events_are, ["benefit", "harm"])
    return events_are


def _tidy_compare(rows: list[dict], by: list[str], columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=[*by, *columns])
    for c in columns:
        if c in _COUNT_COLUMNS or c == "n_strata":
            out[c] = out[c].astype("Int64")
        elif c in ("nnt_ci_includes_infinity", "zero_cell_correction"):
            out[c] = out[c].astype("boolean")
        elif c in ("nnt_note", "test", "ci_method", "ratio_note"):
            out[c] = out[c].astype("string")
        elif c not in ("group", "reference"):
            out[c] = out[c].astype(float)
    return out


def compare_rates(
    endpoints: pd.DataFrame,
    outcome: str,
    group: str,
    *,
    reference: object = None,
    by: str | Sequence[str] | None = ("instrument", "visit"),
    alpha: float = 0.05,
    p_adjust: str | None = None,
    events_are: str | None = None,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Compare the rate of ``outcome`` between each level of ``group`` and a reference.

    Parameters
    ----------
    endpoints : DataFrame
        Output of :func:`analysis.derive_endpoints` with ``group`` merged in; any
        engine's frame (pandas, Polars, DuckDB, Spark): the counts are computed there.
    outcome : str
        Boolean outcome column (``"response"``, ``"remission"``, ...).
    group : str
        Column whose levels are compared (``"route"``, ``"arm"``, ...). Rows where it is
        NA are left out.
    reference : optional
        Reference level; default the first sorted level of ``group`` (an ordered
        Categorical keeps its order).
    by : str, sequence of str or ()
        One comparison per cell; ``()`` for one overall comparison.
    alpha : float
        Two-sided error rate of every interval.
    p_adjust : {None, "holm", "fdr_bh", "bonferroni", "hochberg", "hommel", "sidak", "holm-sidak", "fdr_by", "BH", "BY"}
        When given, adds ``p_adjusted``: the p-values adjusted across all rows of the
        table by :func:`statsmodels.stats.multitest.multipletests`.
    events_are : {None, "benefit", "harm"}
        Only labels ``nnt_note`` (NNTB = number needed to treat for one more patient to
        benefit, NNTH = to harm). Default: ``"harm"`` when the outcome name contains
        "deterioration", else ``"benefit"``.
    min_cell : int or None
        When given, small-cell suppression (:func:`suppress_small_cells`) of both sides of
        each comparison: the group's counts (``events`` of ``n``) and the reference's
        (``events_ref`` of ``n_ref``). A side whose n, events or n - events lies in
        ``1 .. min_cell - 1`` has its events blanked (and its n when under
        ``min_cell``); a row with either side small has *every* statistic blanked, the
        text ``nnt_note``, the flags and ``test`` included (they would repeat or hint at
        the blanked counts), and ``suppressed=True``. P-values are adjusted
        (``p_adjust``) before blanking, over every comparison made. Reports use 11.

    Returns
    -------
    DataFrame
        One row per ``by`` cell and non-reference level, columns ``by..., group,
        reference, n, events, n_ref, events_ref, risk_difference, rd_ci_low, rd_ci_high,
        risk_ratio, rr_ci_low, rr_ci_high, odds_ratio, or_ci_low, or_ci_high, nnt,
        nnt_ci_low, nnt_ci_high, nnt_ci_includes_infinity, nnt_note,
        zero_cell_correction, p_value, test, ratio_note`` (+ ``p_adjusted``; +
        ``suppressed`` only
        when ``min_cell`` is given, so the columns without it are unchanged). Statistics
        are NaN when a level has no defined outcome in the cell.

    Notes
    -----
    With ``a/n1`` events in the level and ``c/n2`` in the reference (b = n1 - a,
    d = n2 - c):

    - risk difference ``p1 - p2`` with Newcombe's hybrid score interval
      (:func:`newcombe_interval`);
    - risk ratio ``p1 / p2``, log (Katz) interval
      ``exp(log RR +/- z sqrt(1/a - 1/n1 + 1/c - 1/n2))``;
    - odds ratio ``ad / bc``, logit (Woolf) interval
      ``exp(log OR +/- z sqrt(1/a + 1/b + 1/c + 1/d))``;
    - zero cells: when any of a, b, c, d is 0, 0.5 is added to all four cells for the
      RR and the OR *and* their intervals (Haldane-Anscombe; as metafor's default
      ``add=1/2, to="only0"``), flagged by ``zero_cell_correction``; the RD and its
      interval never use it. RR and OR are NaN when both groups are at 0% or both at
      100% (the table says nothing about a ratio; the correction would invent one,
      e.g. RR 0.99 (0.95-1.03) for 30/30 vs 40/40), with ``ratio_note`` saying why,
      ``zero_cell_correction`` False, and the RD (0) with its interval reported;
    - NNT = 1 / RD with bounds 1/rd_ci_high and 1/rd_ci_low (Altman 1998). When the RD
      interval contains 0, ``nnt_ci_includes_infinity`` is True and the NNT interval is
      the two rays ``(-inf, nnt_ci_low] U [nnt_ci_high, inf)``; ``nnt_note`` spells it
      out ("NNTB 5.2 (95% CI NNTH 12.1 to infinity to NNTB 2.4)");
    - ``p_value``: Pearson chi-square test without continuity correction (``test =
      "chi2"``), or Fisher's exact test, two-sided, when any expected count is under 5
      (``test = "fisher"``).

    References
    ----------
    Newcombe RG (1998b). Interval estimation for the difference between independent
    proportions: comparison of eleven methods. Stat Med 17:873-890.
    Katz D, Baptista J, Azen SP, Pike MC (1978). Obtaining confidence intervals for the
    risk ratio in cohort studies. Biometrics 34:469-474.
    Woolf B (1955). On estimating the relation between blood group and disease. Ann Hum
    Genet 19:251-253.
    Altman DG (1998). Confidence intervals for the number needed to treat. BMJ
    317:1309-1312.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import compare_rates
    >>> ep = pd.DataFrame({
    ...     "route": ["iv"] * 70 + ["oral"] * 80,
    ...     "response": [True] * 56 + [False] * 14 + [True] * 48 + [False] * 32})
    >>> res = compare_rates(ep, "response", "route", reference="oral", by=())
    >>> res[["group", "reference", "risk_difference", "rd_ci_low", "rd_ci_high"]].round(4)
      group reference  risk_difference  rd_ci_low  rd_ci_high
    0    iv      oral              0.2     0.0524      0.3339
    >>> print(res.loc[0, "nnt_note"])
    NNTB 5.0 (95% CI 3.0 to 19.1)
    >>> print(f"{res.loc[0, 'risk_ratio']:.3f} {res.loc[0, 'odds_ratio']:.3f}")
    1.333 2.667

    With ``min_cell=15`` the 14 IV non-responders are a small cell: the IV side's events
    and every statistic of the row are blanked, while the reference's counts stay.

    >>> res = compare_rates(ep, "response", "route", reference="oral", by=(), min_cell=15)
    >>> res[["n", "events", "n_ref", "events_ref", "risk_difference", "suppressed"]]
        n  events  n_ref  events_ref  risk_difference  suppressed
    0  70    <NA>     80          48              NaN        True
    >>> res.loc[0, "nnt_note"] is pd.NA
    True
    """
    by = as_by(by)
    alpha = check_alpha(alpha)
    if p_adjust is not None:
        check_choice("p_adjust", p_adjust, _P_ADJUST_METHODS)
    events_are = _events_are(outcome, events_are)
    frame = as_frame(endpoints, "endpoints")
    require_columns(frame, [*by, outcome, group], "endpoints")
    data = frame.filter(~nw.col(group).is_null())
    counted = count_cells(data, [outcome], [*by, group])
    counts = counted.table.rename(columns={f"n_{outcome}": "n", f"events_{outcome}": "events"})
    levels, reference = _levels(data, group, reference, counts)
    lookup = {
        (*_key(r, by), r[group]): (int(r["n"]), int(r["events"])) for _, r in counts.iterrows()
    }
    cells = counts[by].drop_duplicates() if by else pd.DataFrame(index=[0])
    rows = []
    for _, cell in cells.iterrows():
        key = _key(cell, by)
        n2, c = lookup.get((*key, reference), (0, 0))
        for level in levels:
            if level == reference:
                continue
            n1, a = lookup.get((*key, level), (0, 0))
            row = dict(zip(by, key, strict=True)) | {"group": level, "reference": reference}
            rows.append(row | _compare_2x2(a, n1, c, n2, alpha, events_are))
    out = sort_cells(_tidy_compare(rows, by, _COMPARE_COLUMNS), counted.schedule, by)
    if p_adjust is not None:
        out = adjust_pvalues(out, "p_value", p_adjust)
    if min_cell is not None:
        out = _suppress_comparison(out, min_cell)
    return out


def _suppress_comparison(
    out: pd.DataFrame, min_cell: int, extra_counts: Sequence[str] = ()
) -> pd.DataFrame:
    """Both sides of each comparison row by the disclosure policy, then its statistics.

    A row with either side small has every statistic blanked, not just the floats:
    ``nnt_note`` spells out numbers, and ``zero_cell_correction`` and ``test`` hint at
    small counts. Counts in ``extra_counts`` (patients left out) are hidden when small.
    """
    from analysis.disclosure import small_count, suppress_cells

    out = suppress_cells(out, min_cell, ("events",), total="n", derived=())
    out = suppress_cells(out, min_cell, ("events_ref",), total="n_ref", derived=())
    flag = out["suppressed"].to_numpy()
    for c in extra_counts:
        out[c] = out[c].mask(small_count(out[c], min_cell))
    first = out.columns.get_loc("risk_difference")
    if "risk" in out.columns:
        first = min(first, out.columns.get_loc("risk"))  # type: ignore[type-var]  # unique names
    for c in out.columns[first:]:
        if c != "suppressed":
            out[c] = out[c].mask(flag)
    return out


def adjust_pvalues(
    table: pd.DataFrame, column: str = "p_value", method: str = "holm"
) -> pd.DataFrame:
    """Add ``p_adjusted``: the p-values of ``column`` adjusted for multiplicity.

    Parameters
    ----------
    table : DataFrame
        Any table with a p-value column (``compare_rates``, ``compare_rates_stratified``,
        ``adjusted_compare_rates``, ...).
    column : str
        The p-value column.
    method : {"holm", "fdr_bh", "bonferroni", "hochberg", "hommel", "sidak", "holm-sidak", "fdr_by", "BH", "BY"}
        ``"holm"`` controls the family-wise error rate (Holm 1979), ``"fdr_bh"`` the false
        discovery rate (Benjamini and Hochberg 1995). The names are R ``p.adjust``'s
        where the two differ: ``"hochberg"`` is Hochberg's (1988) step-up method,
        statsmodels' ``"simes-hochberg"``; R's ``"BH"`` and ``"BY"`` are accepted for
        ``"fdr_bh"`` and ``"fdr_by"``.

    Returns
    -------
    DataFrame
        A copy with a float ``p_adjusted`` column; the family is every row with a
        non-missing p-value, and rows without one get NaN.

    Notes
    -----
    Computed by :func:`statsmodels.stats.multitest.multipletests`, except Holm's, which
    is computed here (:func:`_holm`, equal to statsmodels' to the last bit, tested):
    statsmodels' Holm runs a full garbage collection of the whole process on every call
    (``gc.collect()``, meant for large arrays), 0.1-0.4 CPU-seconds in a report kernel
    or a test process. Holm: sort the m p-values, multiply the i-th smallest by
    ``m - i + 1``, then enforce monotonicity (step-down) and cap at 1. Hochberg: the same
    multipliers, with the running minimum taken from the largest p-value down (step-up);
    R ``p.adjust(c(0.01, 0.04, 0.03), "hochberg")`` gives 0.03, 0.04, 0.04.

    References
    ----------
    Holm S (1979). A simple sequentially rejective multiple test procedure. Scand J Stat
    6:65-70. Hochberg Y (1988). A sharper Bonferroni procedure for multiple tests of
    significance. Biometrika 75:800-802. Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate. J R
    Stat Soc B 57:289-300.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import adjust_pvalues
    >>> adjust_pvalues(pd.DataFrame({"p_value": [0.01, 0.04, 0.03]}))
       p_value  p_adjusted
    0     0.01        0.03
    1     0.04        0.06
    2     0.03        0.06
    >>> adjust_pvalues(pd.DataFrame({"p_value": [0.01, 0.04, 0.03]}), method="hochberg")
       p_value  p_adjusted
    0     0.01        0.03
    1     0.04        0.04
    2     0.03        0.04
    """
    check_choice("method", method, _P_ADJUST_METHODS)
    check_columns(table, [column], "table")
    out = table.copy()
    p = pd.to_numeric(out[column], errors="coerce").astype(float)
    adjusted = pd.Series(np.nan, index=out.index)
    ok = p.notna()
    if ok.any():
        values = p[ok].to_numpy()
        if method == "holm":
            adjusted[ok] = _holm(values)
        else:
            engine = _P_ADJUST_ALIASES.get(method, method)
            adjusted[ok] = multipletests(values, method=engine)[1]
    out["p_adjusted"] = adjusted.astype(float)
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, in the order given.

    What ``multipletests(p, method="holm")[1]`` returns, without its ``gc.collect()``:
    the i-th smallest of the m p-values times ``m - i + 1``, the running maximum of these
    from the smallest up, capped at 1. Tied p-values get the same adjusted value
    whichever order the sort gives them (their products are folded into one maximum).

    Examples
    --------
    >>> _holm(np.array([0.01, 0.04, 0.03]))
    array([0.03, 0.06, 0.06])
    """
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * np.arange(m, 0, -1, dtype=float))
    out = np.empty(m, dtype=float)
    out[order] = np.minimum(stepped, 1.0)
    return out


# --------------------------------------------------------------------------------------
# stratified (Mantel-Haenszel)

_STRATIFIED_COLUMNS = [
    "group",
    "reference",
    "n_strata",
    "n",
    "events",
    "n_ref",
    "events_ref",
    "risk_difference",
    "rd_ci_low",
    "rd_ci_high",
    "risk_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
    "p_value",
    "breslow_day_p",
]


def _mantel_haenszel(
    a: ArrayLike, n1: ArrayLike, c: ArrayLike, n2: ArrayLike, alpha: float
) -> dict:
    """MH RD (Sato variance), RR (Greenland-Robins variance) and OR (RGB, statsmodels)."""
    a, n1, c, n2 = (np.asarray(v, dtype=float) for v in (a, n1, c, n2))
    b, d, big_n = n1 - a, n2 - c, n1 + n2
    z = _z(alpha)
    nan = math.nan
    res = dict.fromkeys(_STRATIFIED_COLUMNS[7:], nan)
    res.update(n_strata=len(a), n=n1.sum(), events=a.sum(), n_ref=n2.sum(), events_ref=c.sum())
    if len(a) == 0:
        return res
    # Risk difference: weights n1 n2 / N; Sato, Greenland and Robins (1989) variance.
    w = n1 * n2 / big_n
    rd = np.sum(a * n2 / big_n - c * n1 / big_n) / w.sum()
    p_term = np.sum(c * (n1 / big_n) ** 2 - a * (n2 / big_n) ** 2 + w / big_n * (n2 - n1) / 2)
    q_term = np.sum(a * (n2 - c) / big_n + c * (n1 - a) / big_n) / 2
    var_rd = (rd * p_term + q_term) / w.sum() ** 2
    se_rd = math.sqrt(var_rd) if var_rd >= 0 else nan
    res.update(risk_difference=rd, rd_ci_low=rd - z * se_rd, rd_ci_high=rd + z * se_rd)
    # Risk ratio: Greenland and Robins (1985) variance of log RR_MH.
    r, s = np.sum(a * n2 / big_n), np.sum(c * n1 / big_n)
    if r > 0 and s > 0:
        rr = r / s
        se = math.sqrt(np.sum(n1 * n2 * (a + c) / big_n**2 - a * c / big_n) / (r * s))
        res.update(
            risk_ratio=rr, rr_ci_low=rr * math.exp(-z * se), rr_ci_high=rr * math.exp(z * se)
        )
    # Odds ratio, its Robins-Breslow-Greenland interval, the CMH test and Breslow-Day.
    tables = np.stack([np.stack([a, b]), np.stack([c, d])])  # (2, 2, K): row 0 = group
    if np.sum(a * d / big_n) > 0 and np.sum(b * c / big_n) > 0:
        st = StratifiedTable(tables)
        low, high = st.oddsratio_pooled_confint(alpha=alpha)
        res.update(odds_ratio=float(st.oddsratio_pooled), or_ci_low=low, or_ci_high=high)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The chi-square survival function, not 1 - cdf: exact far below 1e-16.
            res["p_value"] = float(stats.chi2.sf(st.test_null_odds(correction=False).statistic, 1))
            res["breslow_day_p"] = _breslow_day_p(tables)
    return res


def _breslow_day_p(tables: np.ndarray) -> float:
    """Breslow-Day p over the informative strata (2 x 2 x K ``tables``).

    A stratum where nobody or everybody has the event in both arms has a fixed expected
    count equal to its observed one: it adds nothing to the statistic and no degree of
    freedom, so it is left out (as R ``metafor::rma.mh``); NaN with fewer than two
    informative strata.
    """
    events = tables[0, 0] + tables[1, 0]
    non_events = tables[0, 1] + tables[1, 1]
    informative = tables[:, :, (events > 0) & (non_events > 0)]
    k = informative.shape[2]
    if k < 2:
        return math.nan
    statistic = StratifiedTable(informative).test_equal_odds(adjust=False).statistic
    return float(stats.chi2.sf(statistic, k - 1))


def compare_rates_stratified(
    endpoints: pd.DataFrame,
    outcome: str,
    group: str,
    strata: str | Sequence[str],
    *,
    reference: object = None,
    by: str | Sequence[str] | None = ("instrument", "visit"),
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Mantel-Haenszel risk difference, risk ratio and odds ratio across ``strata``.

    Parameters
    ----------
    endpoints : DataFrame
        Output of :func:`analysis.derive_endpoints` with ``group`` and ``strata`` merged
        in; any engine's frame: the counts per stratum are computed there.
    outcome : str
        Boolean outcome column.
    group : str
        Column whose levels are compared with ``reference``.
    strata : str or sequence of str
        Stratification column(s) (``"site_id"``, ``"baseline_severity"``, ...). Rows
        where a stratum column is NA are left out.
    reference : optional
        Reference level; default the first sorted level of ``group``.
    by : str, sequence of str or ()
        One comparison per cell.
    alpha : float
        Two-sided error rate.
    min_cell : int or None
        When given, the small-cell rule of :mod:`analysis.disclosure` on both sides of
        each row (as in :func:`compare_rates`): a row with a count, or its complement, in
        ``1 .. min_cell - 1`` has its counts and every statistic blanked and
        ``suppressed=True`` (a column added only when ``min_cell`` is given).

    Returns
    -------
    DataFrame
        ``by..., group, reference, n_strata, n, events, n_ref, events_ref,
        risk_difference, rd_ci_low, rd_ci_high, risk_ratio, rr_ci_low, rr_ci_high,
        odds_ratio, or_ci_low, or_ci_high, p_value, breslow_day_p``. ``n_strata`` counts
        the strata used: a stratum where the level or the reference has no defined
        outcome carries no information and is left out (and from the counts).

    Notes
    -----
    For stratum k with a_k/n1k events in the level, c_k/n2k in the reference and
    N_k = n1k + n2k:

    - RD_MH = sum(a n2/N - c n1/N) / sum(n1 n2/N), variance of Sato, Greenland and
      Robins (1989), consistent both for many sparse strata and few large ones (as R
      metafor ``rma.mh(measure="RD")``); Wald interval;
    - RR_MH = sum(a n2/N) / sum(c n1/N), Greenland-Robins (1985) variance of log RR_MH;
    - OR_MH = sum(a d/N) / sum(b c/N) with the Robins-Breslow-Greenland (1986) interval
      (:class:`statsmodels.stats.contingency_tables.StratifiedTable`);
    - ``p_value``: Cochran-Mantel-Haenszel test of OR = 1 without continuity correction;
      ``breslow_day_p``: Breslow-Day test (without Tarone's adjustment) that the odds
      ratio is the same in every stratum, over the informative strata only (a stratum
      with all or no events in both arms adds nothing to the statistic and no degree of
      freedom, as in R ``metafor::rma.mh``); NaN with fewer than two informative strata
      or when zero cells leave it undefined. Both p-values come from the chi-square
      survival function, so they stay exact far below 1e-16.

    References
    ----------
    Mantel N, Haenszel W (1959). J Natl Cancer Inst 22:719-748.
    Greenland S, Robins JM (1985). Estimation of a common effect parameter from sparse
    follow-up data. Biometrics 41:55-68.
    Sato T, Greenland S, Robins JM (1989). On the variance estimator for the
    Mantel-Haenszel risk difference. Biometrics 45:1323-1324.
    Robins J, Breslow N, Greenland S (1986). Estimators of the Mantel-Haenszel variance
    consistent in both sparse data and large-strata limiting models. Biometrics
    42:311-323.
    Breslow NE, Day NE (1980). Statistical Methods in Cancer Research I. IARC.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import compare_rates_stratified
    >>> def arm(site, route, events, n):
    ...     return pd.DataFrame({"site_id": site, "route": route,
    ...                          "response": [True] * events + [False] * (n - events)})
    >>> ep = pd.concat([arm("A", "iv", 10, 20), arm("A", "oral", 10, 30),
    ...                 arm("B", "iv", 16, 20), arm("B", "oral", 20, 30)])
    >>> res = compare_rates_stratified(ep, "response", "route", "site_id",
    ...                                reference="oral", by=())
    >>> res[["n_strata", "risk_difference", "risk_ratio", "odds_ratio"]].round(4)
       n_strata  risk_difference  risk_ratio  odds_ratio
    0         2              0.15        1.3         2.0
    """
    by = as_by(by)
    check_min_cell(min_cell)
    strata = as_by(strata)
    if not strata:
        raise ValueError("`strata` must name at least one column, for example 'site_id'.")
    alpha = check_alpha(alpha)
    frame = as_frame(endpoints, "endpoints")
    require_columns(frame, [*by, outcome, group, *strata], "endpoints")
    data = frame.filter(*[~nw.col(c).is_null() for c in (group, *strata)])
    counted = count_cells(data, [outcome], [*by, *strata, group])
    counts = counted.table.rename(columns={f"n_{outcome}": "n", f"events_{outcome}": "events"})
    levels, reference = _levels(data, group, reference, counts)
    rows = []
    cells = counts[by].drop_duplicates() if by else pd.DataFrame(index=[0])
    for _, cell in cells.iterrows():
        key = _key(cell, by)
        in_cell = counts
        for b, v in zip(by, key, strict=True):
            in_cell = in_cell[(in_cell[b] == v) | (in_cell[b].isna() & pd.isna(v))]
        wide = in_cell.pivot_table(
            index=strata,
            columns=group,
            values=["n", "events"],
            aggfunc="sum",
            fill_value=0,
            observed=True,
        )
        for level in levels:
            if level == reference:
                continue
            row = dict(zip(by, key, strict=True)) | {"group": level, "reference": reference}
            if (("n", level) in wide.columns) and (("n", reference) in wide.columns):
                n1, a = wide[("n", level)], wide[("events", level)]
                n2, c = wide[("n", reference)], wide[("events", reference)]
                keep = (n1 > 0) & (n2 > 0)
                stats_ = _mantel_haenszel(a[keep], n1[keep], c[keep], n2[keep], alpha)
            else:
                stats_ = _mantel_haenszel([], [], [], [], alpha)
            rows.append(row | stats_)
    out = sort_cells(_tidy_compare(rows, by, _STRATIFIED_COLUMNS), counted.schedule, by)
    if min_cell is not None:
        out = _suppress_comparison(out, min_cell)
    return out


# --------------------------------------------------------------------------------------
# covariate-adjusted comparison (logistic regression + g-computation)

_ADJUSTED_COLUMNS = [
    "group",
    "reference",
    "n",
    "events",
    "n_ref",
    "events_ref",
    "n_excluded",
    "risk",
    "risk_ref",
    "risk_difference",
    "rd_ci_low",
    "rd_ci_high",
    "risk_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
    "p_value",
    "ci_method",
]


def _design(frame: pd.DataFrame, group: str, levels: list, covariates: list[str]) -> np.ndarray:
    """Intercept, one indicator per non-first level, then the covariates."""
    parts: list[np.ndarray] = [np.ones((len(frame), 1))]
    g = frame[group].to_numpy()
    parts += [(g == lev).astype(float)[:, None] for lev in levels[1:]]
    for cov in covariates:
        col = frame[cov]
        if pd.api.types.is_bool_dtype(col.dtype):
            x = col.astype(float).to_numpy()[:, None]
        elif pd.api.types.is_numeric_dtype(col.dtype):
            x = col.astype(float).to_numpy()[:, None]
        else:
            values = sorted(col.astype(str).unique().tolist())
            x = np.column_stack([(col.astype(str) == v).to_numpy(float) for v in values[1:]])
            if x.size == 0:
                continue
        keep = np.ptp(x, axis=0) > 0
        if keep.any():
            parts.append(x[:, keep])
    return np.hstack(parts)


# |coefficient| beyond which a logistic fit is taken as (quasi-)separated: exp(30) ~ 1e13.
_MAX_LOGIT = 30.0


def _logit_newton(x: np.ndarray, y: np.ndarray, max_iter: int = 50) -> np.ndarray | None:
    """Maximum-likelihood logistic fit by Newton-Raphson; None when it does not converge."""
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(x @ beta)))
        w = p * (1 - p)
        try:
            step = np.linalg.solve((x * w[:, None]).T @ x, x.T @ (y - p))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.abs(beta).max() > _MAX_LOGIT:
            return None
        if np.abs(step).max() < 1e-10:
            return beta
    return None


def _g_risks(x: np.ndarray, beta: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardized risk of every level and its gradient with respect to beta."""
    risks, grads = np.empty(n_levels), np.empty((n_levels, len(beta)))
    for k in range(n_levels):
        xk = x.copy()
        xk[:, 1:n_levels] = 0.0
        if k > 0:
            xk[:, k] = 1.0
        p = 1 / (1 + np.exp(-(xk @ beta)))
        risks[k] = p.mean()
        grads[k] = (xk * (p * (1 - p))[:, None]).mean(axis=0)
    return risks, grads


def _adjusted_cell(
    frame: pd.DataFrame,
    y: np.ndarray,
    group: str,
    levels: list,
    covariates: list[str],
    alpha: float,
    ci_method: str,
    n_boot: int,
    rng: np.random.Generator,
) -> list[dict]:
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    z = _z(alpha)
    present = [lev for lev in levels if (frame[group] == lev).any()]
    out = []
    base = {c: math.nan for c in _ADJUSTED_COLUMNS[7:-1]}
    g = frame[group].to_numpy()
    counts = {lev: (int((g == lev).sum()), int(y[g == lev].sum())) for lev in levels}
    fit = None
    # A level with no events (or only events) separates the data: no finite MLE.
    separated = any(counts[lev][1] in (0, counts[lev][0]) for lev in present)
    if levels[0] in present and len(present) > 1:
        x = _design(frame, group, present, covariates)
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            try:
                fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
            except (PerfectSeparationWarning, np.linalg.LinAlgError, ValueError):
                fit = None
        if fit is not None and (
            separated
            or not fit.converged
            or not np.all(np.isfinite(fit.bse))
            or np.abs(fit.params).max() > _MAX_LOGIT
        ):
            fit = None
        if fit is None:
            warnings.warn(
                "The logistic model of an adjusted comparison could not be fitted (perfect "
                "separation or too few events); its row is NaN. Use fewer covariates or "
                "compare_rates for this cell.",
                RuntimeWarning,
                stacklevel=4,
            )
    if fit is not None:
        beta, cov = np.asarray(fit.params), np.asarray(fit.cov_params())
        risks, grads = _g_risks(x, beta, len(present))
        boot: np.ndarray | None = None
        if ci_method == "bootstrap":
            draws = []
            idx_by_level = [np.flatnonzero(g == lev) for lev in present]
            for _ in range(n_boot):
                idx = np.concatenate([rng.choice(ix, size=len(ix)) for ix in idx_by_level])
                b = _logit_newton(x[idx], y[idx])
                if b is not None:
                    draws.append(_g_risks(x[idx], b, len(present))[0])
            boot = np.array(draws)
            if len(boot) < 0.95 * n_boot:
                warnings.warn(
                    f"{n_boot - len(boot)} of {n_boot} bootstrap fits did not converge and "
                    "were dropped; the bootstrap interval may be unreliable.",
                    RuntimeWarning,
                    stacklevel=4,
                )
    for lev in levels[1:]:
        row = {"group": lev, "reference": levels[0]}
        row |= {"n": counts[lev][0], "events": counts[lev][1]}
        row |= {"n_ref": counts[levels[0]][0], "events_ref": counts[levels[0]][1]}
        row |= base | {"ci_method": ci_method}
        if fit is None or lev not in present:
            out.append(row)
            continue
        j = present.index(lev)
        rd = risks[j] - risks[0]
        rr = risks[j] / risks[0]
        b, se_b = beta[j], math.sqrt(cov[j, j])
        row |= {
            "risk": risks[j],
            "risk_ref": risks[0],
            "risk_difference": rd,
            "risk_ratio": rr,
            "odds_ratio": math.exp(b),
            "or_ci_low": math.exp(b - z * se_b),
            "or_ci_high": math.exp(b + z * se_b),
            "p_value": float(2 * stats.norm.sf(abs(b / se_b))),
        }
        if ci_method == "delta":
            g_rd = grads[j] - grads[0]
            g_lrr = grads[j] / risks[j] - grads[0] / risks[0]
            se_rd = math.sqrt(g_rd @ cov @ g_rd)
            se_lrr = math.sqrt(g_lrr @ cov @ g_lrr)
            row |= {
                "rd_ci_low": rd - z * se_rd,
                "rd_ci_high": rd + z * se_rd,
                "rr_ci_low": rr * math.exp(-z * se_lrr),
                "rr_ci_high": rr * math.exp(z * se_lrr),
            }
        elif boot is not None and len(boot):
            q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
            # typed float arrays: on an untyped array mypy spent 0.5 s on each percentile
            differences: NDArray[np.float64] = boot[:, j] - boot[:, 0]
            rd_low, rd_high = np.percentile(differences, q)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios: NDArray[np.float64] = boot[:, j] / boot[:, 0]
                rr_low, rr_high = np.percentile(ratios, q)
            row |= {"rd_ci_low": rd_low, "rd_ci_high": rd_high}
            row |= {"rr_ci_low": rr_low, "rr_ci_high": rr_high}
        out.append(row)
    return out


def adjusted_compare_rates(
    endpoints: pd.DataFrame,
    outcome: str,
    group: str,
    *,
    covariates: str | Sequence[str] = ("baseline",),
    reference: object = None,
    by: str | Sequence[str] | None = ("instrument", "visit"),
    alpha: float = 0.05,
    ci_method: str = "delta",
    n_boot: int = 2000,
    seed: int = 0,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Covariate-adjusted comparison of a binary outcome: logistic model + g-computation.

    Parameters
    ----------
    endpoints : DataFrame
        Output of :func:`analysis.derive_endpoints` with ``group`` (and any covariate)
        merged in.
    outcome : str
        Boolean outcome column.
    group : str
        Column whose levels are compared with ``reference``.
    covariates : str or sequence of str
        Prognostic baseline covariates; numeric and boolean columns enter linearly,
        other columns as indicators of each level but the first sorted one. ``()``
        gives the unadjusted analysis. Rows with a missing covariate are left out and
        counted in ``n_excluded``.
    reference : optional
        Reference level; default the first sorted level of ``group``.
    by : str, sequence of str or ()
        One model per cell.
    alpha : float
        Two-sided error rate.
    ci_method : {"delta", "bootstrap"}
        Interval for the standardized RD and RR: delta method (Ge et al. 2011) or
        nonparametric percentile bootstrap (resampling patients within each level).
        The odds ratio always has the Wald interval of the model.
    n_boot : int
        Bootstrap replicates (``ci_method="bootstrap"``).
    seed : int
        Seed of the bootstrap.
    min_cell : int or None
        When given, the small-cell rule of :mod:`analysis.disclosure` on both sides of
        each row (as in :func:`compare_rates`): a side with a count or complement in
        ``1 .. min_cell - 1`` blanks the row's counts and every statistic, including the
        standardized risks; ``n_excluded`` is blanked when small; ``suppressed`` (added
        only when ``min_cell`` is given) marks the hidden rows.

    Returns
    -------
    DataFrame
        ``by..., group, reference, n, events, n_ref, events_ref, n_excluded, risk,
        risk_ref, risk_difference, rd_ci_low, rd_ci_high, risk_ratio, rr_ci_low,
        rr_ci_high, odds_ratio, or_ci_low, or_ci_high, p_value, ci_method``. ``n`` and
        ``events`` count the rows in the model; ``risk`` and ``risk_ref`` are the
        standardized (marginal) risks; ``odds_ratio`` is the conditional (adjusted) OR;
        ``p_value`` is the Wald test of its coefficient. A row is NaN when the model
        cannot be fitted (perfect separation: a level with no events, for example),
        with a ``RuntimeWarning``.

    Notes
    -----
    One logistic regression per cell, ``logit P(Y=1) = b0 + sum_k g_k [level k] +
    covariates`` (statsmodels GLM, binomial family), fitted on all levels of ``group``
    present in the cell. The standardized risk of level k is the mean over *every*
    patient of the cell of the predicted risk with the level set to k (g-computation);
    RD and RR contrast these with the reference. Delta method: with V the model
    covariance of the coefficients and ``grad r_k = mean(p_ik (1 - p_ik) x_ik)``,
    ``Var(RD) = (grad r_k - grad r_0)' V (grad r_k - grad r_0)``, and ``log RR`` uses
    ``grad r_k / r_k - grad r_0 / r_0``. Without covariates the standardized risks are
    the crude ones and the delta-method variance of the RD is the Wald variance. This is
    the estimator the FDA (2023) guidance describes for an unconditional treatment effect
    on a binary endpoint.

    References
    ----------
    US FDA (2023). Adjusting for Covariates in Randomized Clinical Trials for Drugs and
    Biological Products. Guidance for Industry.
    Ge M, Durham LK, Meyer RD, Xie W, Thomas N (2011). Covariate-adjusted difference in
    proportions from clinical trials using logistic regression and weighted risk
    differences. Drug Inf J 45:481-493.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import adjusted_compare_rates
    >>> def arm(severe, route, events, n):
    ...     return pd.DataFrame({"severe": severe, "route": route,
    ...                          "response": [True] * events + [False] * (n - events)})
    >>> ep = pd.concat([arm(False, "iv", 10, 20), arm(False, "oral", 10, 30),
    ...                 arm(True, "iv", 16, 20), arm(True, "oral", 20, 30)])
    >>> res = adjusted_compare_rates(ep, "response", "route", covariates=["severe"],
    ...                              reference="oral", by=())
    >>> res[["risk", "risk_ref", "risk_difference", "odds_ratio"]].round(4)
       risk  risk_ref  risk_difference  odds_ratio
    0  0.65       0.5             0.15         2.0
    """
    by = as_by(by)
    check_min_cell(min_cell)
    covariates = as_by(covariates)
    alpha = check_alpha(alpha)
    check_choice("ci_method", ci_method, ["delta", "bootstrap"])
    if not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"`n_boot` must be a positive integer, but {n_boot!r} was passed.")
    frame = as_frame(endpoints, "endpoints")
    require_columns(frame, [*by, outcome, group, *covariates], "endpoints")
    # a logistic model needs patient-level rows: only the columns it uses leave the engine
    endpoints = small_to_pandas(frame.select(*dict.fromkeys([*by, outcome, group, *covariates])))
    data = endpoints[endpoints[group].notna()]
    levels, reference = _levels(data, group, reference)
    levels = [reference] + [lev for lev in levels if lev != reference]
    y_all = _binary(data, outcome)
    data = data[y_all.notna().to_numpy()]
    y_all = y_all[y_all.notna()]
    complete = data[covariates].notna().all(axis=1).to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    groups: Iterable[tuple[object, np.ndarray]]
    if by:
        groups = data.groupby(by, dropna=False, sort=True, observed=True).indices.items()  # type: ignore[assignment]  # pandas-stubs: group keys are Hashable
    else:
        groups = [((), np.arange(len(data)))]
    for key, idx in groups:
        key = key if isinstance(key, tuple) else (key,)
        ok = idx[complete[idx]]
        cell = _adjusted_cell(
            data.iloc[ok],
            y_all.to_numpy()[ok],
            group,
            levels,
            covariates,
            alpha,
            ci_method,
            n_boot,
            rng,
        )
        for row in cell:
            row["n_excluded"] = len(idx) - len(ok)
            rows.append(dict(zip(by, key, strict=True)) | row)
    out = _tidy_compare(rows, by, _ADJUSTED_COLUMNS)
    out["n_excluded"] = out["n_excluded"].astype("Int64")
    out = sort_cells(out, data, by)
    if min_cell is not None:
        out = _suppress_comparison(out, min_cell, extra_counts=("n_excluded",))
    return out
