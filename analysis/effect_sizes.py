"""Standardized mean differences with confidence intervals.

Every estimate here standardizes a difference ``x - y`` (or ``mean1 - mean2``): the raw
mean difference divided by a standard deviation that the ``measure`` names. One private
core computes every measure from summary statistics; :func:`effect_size` (raw data) and
:func:`effect_size_from_stats` (published means and SDs) both call it, so the two always
agree.

Measures
--------
Independent groups (``x`` and ``y`` are two samples):

- ``cohen_d``: pooled SD; CI by inverting the noncentral t (df = n1 + n2 - 2).
- ``hedges_g``: ``cohen_d`` times the exact small-sample correction J; the CI is the
  ``cohen_d`` CI times J (as R ``effectsize`` does).
- ``glass_delta``: SD of ``y`` (the control group); CI by inverting the noncentral t with
  df = n2 - 1 and the variance factor 1/n2 + s1^2 / (n1 s2^2) (as R ``effectsize``).

Paired (``x`` and ``y`` are the same units measured twice; ``x`` is the baseline):

- ``d_z``: SD of the differences; CI by inverting the noncentral t (df = n - 1).
- ``d_av``: average of the two SDs, sqrt((s1^2 + s2^2) / 2); normal-approximation CI.
- ``d_rm``: ``d_z`` x sqrt(2 (1 - r)); normal-approximation CI.
- ``d_b`` (Becker): SD of ``x`` (the baseline); normal-approximation CI.

No paired measure is bias-corrected (no J); the independent-groups ``hedges_g`` is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from analysis._frames import (
    as_frame,
    column_names,
    levels_of,
    moment_cells,
    require_columns,
    small_to_pandas,
)
from analysis._utils import as_by, check_choice
from analysis.endpoints import sort_cells

__all__ = [
    "EffectSize",
    "INDEPENDENT_MEASURES",
    "PAIRED_MEASURES",
    "effect_size",
    "effect_size_from_stats",
    "effect_size_table",
]

INDEPENDENT_MEASURES = ("cohen_d", "hedges_g", "glass_delta")
PAIRED_MEASURES = ("d_z", "d_av", "d_rm", "d_b")
MEASURES = INDEPENDENT_MEASURES + PAIRED_MEASURES

NONCENTRAL_T = "noncentral t"
NORMAL = "normal approximation"
NO_CI = "none"

#: Default measure of :func:`effect_size_table` without ``group``: pre/post effect
#: standardized by the average of the baseline and visit SDs (Lakens 2013 recommends
#: d_av for within-subject designs because, unlike d_z, it is comparable with
#: between-group d and does not grow with the pre/post correlation).
DEFAULT_WITHIN_MEASURE = "d_av"
#: Default measure of :func:`effect_size_table` with ``group`` (change scores).
DEFAULT_BETWEEN_MEASURE = "hedges_g"


@dataclass(frozen=True)
class EffectSize:
    """A standardized mean difference and its confidence interval.

    Attributes
    ----------
    measure : str
        One of ``cohen_d, hedges_g, glass_delta, d_z, d_av, d_rm, d_b``.
    estimate : float
        The standardized difference ``x - y``.
    ci_low, ci_high : float
        Confidence limits (NaN when no CI was requested).
    ci_level : float
        Coverage of the interval, e.g. 0.95 (NaN when no CI was requested).
    n1, n2 : int
        Observations used in ``x`` and ``y``; for paired measures both are the number of
        complete pairs.
    ci_method : str
        ``"noncentral t"``, ``"normal approximation"`` or ``"none"``.
    n_dropped : int
        Values left out because they were missing: incomplete pairs for paired measures,
        missing values of ``x`` plus ``y`` for independent groups. 0 for summary
        statistics.
    """

    measure: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    n1: int
    n2: int
    ci_method: str
    n_dropped: int = 0


def _hedges_j(df: float) -> float:
    """Exact small-sample correction J = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))."""
    return math.exp(
        special.gammaln(df / 2) - 0.5 * math.log(df / 2) - special.gammaln((df - 1) / 2)
    )


def _noncentral_t_ci(t: float, df: float, level: float) -> tuple[float, float]:
    """Noncentrality parameters whose t distributions put ``t`` at the CI quantiles.

    The CDF of the noncentral t at a fixed ``t`` decreases in the noncentrality, so each
    limit is the root of a monotone function, bracketed by stepping out from ``t``.
    """
    alpha = 1 - level

    def root(target: float, direction: float) -> float:
        def f(ncp: float) -> float:
            p = stats.nct.cdf(t, df, ncp)
            if math.isnan(p):  # scipy gives NaN far in the tails, where the CDF is 0 or 1
                p = 1.0 if ncp < t else 0.0
            return p - target

        step = 1.0 + 0.1 * abs(t)
        near, far = t, t + direction * step
        while f(far) * f(near) > 0:
            near, far = far, far + direction * step
            step *= 2
        return optimize.brentq(f, min(near, far), max(near, far), xtol=1e-12, rtol=1e-12)

    return root(1 - alpha / 2, -1.0), root(alpha / 2, 1.0)


def _check_ci(ci: float | None) -> None:
    if ci is not None and not (isinstance(ci, int | float) and 0 < ci < 1):
        raise ValueError(
            f"`ci` must be a coverage level strictly between 0 and 1 (e.g. 0.95) or None, "
            f"but {ci!r} was passed."
        )


def _smd(
    measure: str,
    m1: float,
    s1: float,
    n1: int,
    m2: float,
    s2: float,
    n2: int,
    *,
    s_diff: float | None,
    r: float | None,
    ci: float | None,
    n_dropped: int = 0,
) -> EffectSize:
    """The one core: every measure from means, SDs, ns and (paired) s_diff and r."""
    # numpy floats, so that an SD of 0 gives inf/nan (reported below), not ZeroDivisionError
    m1, s1, m2, s2 = (np.float64(v) for v in (m1, s1, m2, s2))
    s_diff = np.float64(math.nan if s_diff is None else s_diff)
    diff = m1 - m2
    z = stats.norm.ppf(0.5 + ci / 2) if ci is not None else math.nan
    method = NONCENTRAL_T
    with np.errstate(divide="ignore", invalid="ignore"):  # an SD of 0 is reported below
        if measure in ("cohen_d", "hedges_g"):
            df = n1 + n2 - 2
            s = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / df)
            d = diff / s
            scale = math.sqrt(1 / n1 + 1 / n2)
        elif measure == "glass_delta":
            df = n2 - 1
            d = diff / s2
            scale = math.sqrt(1 / n2 + s1**2 / (n1 * s2**2))
        elif measure == "d_z":
            df = n1 - 1
            d = diff / s_diff
            scale = math.sqrt(1 / n1)
        else:
            assert r is not None  # the paired measures are checked for r by their callers
            method = NORMAL
            n = n1
            if measure == "d_av":
                d = diff / math.sqrt((s1**2 + s2**2) / 2)
                se = s_diff / math.sqrt(n) / math.sqrt((s1**2 + s2**2) / 2)
            elif measure == "d_rm":
                f = 2 * (1 - r)
                d = diff / s_diff * math.sqrt(f)
                se = math.sqrt((1 / n + d**2 / (2 * n)) * f)
            else:  # d_b
                d = diff / s1
                se = math.sqrt(2 * (1 - r) / n + d**2 / (2 * n))
    if not math.isfinite(d):
        raise ValueError(
            f"{measure} is undefined here: the standardizing SD is 0 or missing "
            "(all values equal, or too few observations). Check the input data."
        )
    if ci is None:
        low = high = level = math.nan
        method = NO_CI
    elif method == NORMAL:
        low, high, level = d - z * se, d + z * se, float(ci)
    else:
        ncp_low, ncp_high = _noncentral_t_ci(d / scale, df, ci)
        low, high, level = ncp_low * scale, ncp_high * scale, float(ci)
    if measure == "hedges_g":
        j = _hedges_j(df)
        d, low, high = d * j, low * j, high * j
    return EffectSize(
        measure=measure,
        estimate=float(d),
        ci_low=float(low),
        ci_high=float(high),
        ci_level=level,
        n1=int(n1),
        n2=int(n2),
        ci_method=method,
        n_dropped=int(n_dropped),
    )


def _as_float_array(values: object, name: str) -> np.ndarray:
    try:
        out = np.asarray(pd.to_numeric(pd.Series(values), errors="raise"), dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must hold numbers (missing values allowed).") from exc
    n_infinite = int(np.isinf(out).sum())
    if n_infinite:
        raise ValueError(
            f"`{name}` holds {n_infinite} infinite value(s) (inf or -inf) of {len(out)}; "
            "means and SDs of such data are not defined. Set those values to missing (NaN), "
            "which is left out and counted in `n_dropped`, or correct them."
        )
    return out


def effect_size(
    x: Sequence[float] | np.ndarray | pd.Series,
    y: Sequence[float] | np.ndarray | pd.Series | None = None,
    *,
    measure: str = "hedges_g",
    ci: float | None = 0.95,
) -> EffectSize:
    """Standardized mean difference of ``x - y`` with a confidence interval.

    Parameters
    ----------
    x, y : array-like of float
        Independent groups: the two samples (the estimate is positive when ``x`` has the
        larger mean). Paired measures: the two measurements of the same units, aligned by
        position, ``x`` the baseline (so a fall in scores gives a positive estimate).
        ``y=None`` is allowed for ``d_z`` only: ``x`` then holds the paired differences.
        Missing values (NaN/NA) are left out and counted in ``n_dropped``: for paired
        measures a pair is dropped when either value is missing. Infinite values are an
        error (``ValueError`` naming the argument and the count), not missing values.
    measure : {"hedges_g", "cohen_d", "glass_delta", "d_z", "d_av", "d_rm", "d_b"}
        See Notes.
    ci : float or None
        Coverage of the confidence interval (default 0.95); None for no interval.

    Returns
    -------
    EffectSize
        ``measure, estimate, ci_low, ci_high, ci_level, n1, n2, ci_method, n_dropped``.

    Raises
    ------
    ValueError
        Unknown measure, too few observations (2 per group, 2 pairs), unequal lengths of
        paired data, or a standardizing SD of 0.

    Notes
    -----
    With group means M1, M2, SDs s1, s2 and sizes n1, n2 (Lakens 2013; Borenstein et al.
    2009, ch. 4):

    - ``cohen_d`` = (M1 - M2) / s_p, s_p = sqrt(((n1-1) s1^2 + (n2-1) s2^2) / (n1+n2-2)).
    - ``hedges_g`` = J d, J = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n1+n2-2
      (the exact J, not the approximation 1 - 3/(4 df - 1)).
    - ``glass_delta`` = (M1 - M2) / s2.
    - ``d_z`` = M_diff / s_diff; ``d_rm`` = d_z sqrt(2 (1 - r)); ``d_av`` = M_diff /
      sqrt((s1^2 + s2^2)/2); ``d_b`` = M_diff / s1 (Becker 1988), r the Pearson
      correlation of x and y.

    Confidence intervals: ``cohen_d``, ``hedges_g``, ``glass_delta`` and ``d_z`` invert
    the noncentral t distribution of the t statistic (Steiger & Fouladi 1997; the method
    of R ``effectsize``), solving for each limit with Brent's method; the ``hedges_g``
    limits are the ``cohen_d`` limits times J and the ``glass_delta`` interval uses
    df = n2 - 1, both as in R ``effectsize``. ``d_av``, ``d_rm`` and ``d_b`` use the
    normal approximation d +- z SE with SE(d_rm) = sqrt((1/n + d^2/(2n)) 2(1-r)),
    SE(d_av) = sqrt(var(x-y)/n) / s_av (Algina & Keselman 2003) and
    SE(d_b) = sqrt(2(1-r)/n + d^2/(2n)) (Becker 1988). ``ci_method`` says which.

    References
    ----------
    Lakens D (2013). Calculating and reporting effect sizes to facilitate cumulative
    science. Front Psychol 4:863.
    Borenstein M, Hedges LV, Higgins JPT, Rothstein HR (2009). Introduction to
    Meta-Analysis, ch. 4. Wiley.
    Hedges LV, Olkin I (1985). Statistical Methods for Meta-Analysis. Academic Press.
    Becker BJ (1988). Synthesizing standardized mean-change measures. Br J Math Stat
    Psychol 41:257-278.
    Algina J, Keselman HJ (2003). Approximate confidence intervals for effect sizes.
    Educ Psychol Meas 63:537-553.
    Ben-Shachar MS, Lüdecke D, Makowski D (2020). effectsize: estimation of effect size
    indices and standardized parameters. J Open Source Softw 5:2815.

    Examples
    --------
    Lakens (2013) movie ratings, as independent groups and as paired ratings:

    >>> from analysis.effect_sizes import effect_size
    >>> movie1 = [9, 7, 8, 9, 8, 9, 9, 10, 9, 9]
    >>> movie2 = [9, 6, 7, 8, 7, 9, 8, 8, 8, 7]
    >>> es = effect_size(movie1, movie2, measure="cohen_d")
    >>> round(es.estimate, 2), round(es.ci_low, 3), round(es.ci_high, 3), es.ci_method
    (1.13, 0.163, 2.062, 'noncentral t')
    >>> es = effect_size(movie1, movie2, measure="d_z")
    >>> round(es.estimate, 2), es.n1
    (1.5, 10)
    >>> effect_size([10, 12, None, 9], [6, 9, 8, 8], measure="d_av").n_dropped
    1
    """
    check_choice("measure", measure, MEASURES)
    _check_ci(ci)
    xs = _as_float_array(x, "x")
    if y is None:
        if measure != "d_z":
            raise ValueError(
                f"`y` is required for measure {measure!r}; only 'd_z' accepts x alone "
                "(x then holds the paired differences)."
            )
        ys = np.zeros_like(xs)
    else:
        ys = _as_float_array(y, "y")
    if measure in PAIRED_MEASURES:
        if len(xs) != len(ys):
            raise ValueError(
                f"Paired measure {measure!r} needs x and y of equal length (one pair per "
                f"position), but got {len(xs)} and {len(ys)}. Align the two measurements "
                "by unit, or use an independent-groups measure."
            )
        keep = ~(np.isnan(xs) | np.isnan(ys))
        n_dropped = int((~keep).sum())
        xs, ys = xs[keep], ys[keep]
        n = len(xs)
        if n < 2:
            raise ValueError(f"{measure} needs at least 2 complete pairs, but {n} were given.")
        diffs = xs - ys
        s1, s2 = np.std(xs, ddof=1), np.std(ys, ddof=1)
        r = float(np.corrcoef(xs, ys)[0, 1]) if s1 > 0 and s2 > 0 else math.nan
        if abs(abs(r) - 1) < 1e-12:  # perfectly (anti)correlated up to rounding
            r = math.copysign(1.0, r)
        return _smd(
            measure,
            xs.mean(),
            s1,
            n,
            ys.mean(),
            s2,
            n,
            s_diff=float(np.std(diffs, ddof=1)),
            r=r,
            ci=ci,
            n_dropped=n_dropped,
        )
    n_dropped = int(np.isnan(xs).sum() + np.isnan(ys).sum())
    xs, ys = xs[~np.isnan(xs)], ys[~np.isnan(ys)]
    if len(xs) < 2 or len(ys) < 2:
        raise ValueError(
            f"{measure} needs at least 2 non-missing values in each group, but got "
            f"{len(xs)} and {len(ys)}."
        )
    return _smd(
        measure,
        xs.mean(),
        np.std(xs, ddof=1),
        len(xs),
        ys.mean(),
        np.std(ys, ddof=1),
        len(ys),
        s_diff=None,
        r=None,
        ci=ci,
        n_dropped=n_dropped,
    )


def effect_size_from_stats(
    mean1: float,
    sd1: float,
    n1: int,
    mean2: float,
    sd2: float,
    n2: int,
    *,
    measure: str = "hedges_g",
    r: float | None = None,
    ci: float | None = 0.95,
) -> EffectSize:
    """Standardized mean difference of ``mean1 - mean2`` from summary statistics.

    For meta-analysts working from published means and SDs. Same measures, formulas and
    intervals as :func:`effect_size` (both call one core), so raw data and its summary
    statistics give the same result.

    Parameters
    ----------
    mean1, sd1, n1 : float, float, int
        Mean, SD (n - 1 denominator) and size of group 1 (paired: the baseline, ``x``).
    mean2, sd2, n2 : float, float, int
        The same for group 2 (paired: the follow-up, ``y``). For paired measures
        ``n1 == n2`` is the number of pairs.
    measure : {"hedges_g", "cohen_d", "glass_delta", "d_z", "d_av", "d_rm", "d_b"}
        See :func:`effect_size`.
    r : float, optional
        Pearson correlation between the paired measurements; required for the paired
        measures (it gives s_diff = sqrt(sd1^2 + sd2^2 - 2 r sd1 sd2)), ignored otherwise.
    ci : float or None
        Coverage of the confidence interval (default 0.95); None for no interval.

    Returns
    -------
    EffectSize
        With ``n_dropped`` 0.

    Notes
    -----
    See :func:`effect_size` for the formulas and interval methods.

    References
    ----------
    Borenstein M, Hedges LV, Higgins JPT, Rothstein HR (2009). Introduction to
    Meta-Analysis, ch. 4. Wiley.
    Lakens D (2013). Front Psychol 4:863.

    Examples
    --------
    Borenstein et al. (2009), ch. 4: means 103 vs 100, SDs 5.5 and 4.5, 50 per group:

    >>> from analysis.effect_sizes import effect_size_from_stats
    >>> round(effect_size_from_stats(103, 5.5, 50, 100, 4.5, 50, measure="cohen_d").estimate, 4)
    0.597
    >>> round(effect_size_from_stats(103, 5.5, 50, 100, 4.5, 50).estimate, 4)
    0.5924
    """
    check_choice("measure", measure, MEASURES)
    _check_ci(ci)
    for name, value in (("sd1", sd1), ("sd2", sd2)):
        if not (value >= 0):
            raise ValueError(f"`{name}` must be a non-negative standard deviation, got {value!r}.")
    if measure in PAIRED_MEASURES:
        if r is None or not (-1 <= r <= 1):
            raise ValueError(
                f"Paired measure {measure!r} needs `r`, the correlation between the two "
                f"measurements (between -1 and 1), but r={r!r} was passed."
            )
        if n1 != n2:
            raise ValueError(
                f"Paired measure {measure!r} needs n1 == n2 (the number of pairs), but got "
                f"{n1} and {n2}."
            )
        if n1 < 2:
            raise ValueError(f"{measure} needs at least 2 pairs, but n1={n1}.")
        s_diff = math.sqrt(max(sd1**2 + sd2**2 - 2 * r * sd1 * sd2, 0.0))
        return _smd(measure, mean1, sd1, n1, mean2, sd2, n2, s_diff=s_diff, r=r, ci=ci)
    if n1 < 2 or n2 < 2:
        raise ValueError(f"{measure} needs at least 2 observations per group, got {n1} and {n2}.")
    return _smd(measure, mean1, sd1, n1, mean2, sd2, n2, s_diff=None, r=None, ci=ci)


TABLE_COLUMNS = ["measure", "estimate", "ci_low", "ci_high", "ci_level", "n1", "n2", "ci_method"]


def _row(compute: Callable[..., EffectSize], measure: str, n1: int, n2: int) -> dict:
    """An effect-size row, NaN when the cell is too small or its SD is 0."""
    try:
        es = compute()
    except ValueError:
        return dict(
            measure=measure,
            estimate=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            ci_level=math.nan,
            n1=n1,
            n2=n2,
            ci_method=NO_CI,
        )
    return {c: getattr(es, c) for c in TABLE_COLUMNS}


def _check_one_row_per_patient(frame: nw.DataFrame | nw.LazyFrame, keys: list[str]) -> None:
    if "patient_id" not in column_names(frame):
        return
    rows = frame.group_by(*keys, "patient_id", drop_null_keys=False).agg(nw.len().alias("k"))
    dup: Any = small_to_pandas(rows.select((nw.col("k") - 1).sum().alias("dup"))).iloc[0, 0]
    if pd.notna(dup) and dup > 0:
        raise ValueError(
            f"{int(dup)} row(s) repeat a patient within a cell of by={keys}; an effect "
            "size needs one row per patient per cell. Add 'visit' (and 'instrument') to "
            "`by`, or filter the endpoints to one visit."
        )


def effect_size_table(
    endpoints: pd.DataFrame,
    *,
    group: str | None = None,
    reference: object | None = None,
    measure: str | None = None,
    by: str | Sequence[str] | None = ("instrument", "visit"),
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Effect sizes of an endpoint table: within patients, or between groups.

    Parameters
    ----------
    endpoints : DataFrame
        Output of ``derive_endpoints`` (columns ``baseline``, ``score``, ``change`` and the
        ``by`` and ``group`` columns), of any engine (pandas, Polars, DuckDB, Spark): the
        count, mean and SD per cell are computed there. Every row passed is used: imputed rows
        (``imputed=True``) count like observed ones, so pass
        ``endpoints[~endpoints["imputed"]]`` for an observed-cases analysis.
    group : str, optional
        A patient-level column (e.g. ``"arm"``, ``"route"``). None (default): within-patient
        effect of baseline vs each visit. Given: each level vs ``reference`` on the change
        scores.
    reference : optional
        The reference level of ``group``; default the first sorted level.
    measure : str, optional
        Within patients one of ``d_av`` (default), ``d_z``, ``d_rm``, ``d_b``; between
        groups one of ``hedges_g`` (default), ``cohen_d``, ``glass_delta`` (SD of the
        reference group).
    by : str or sequence of str
        Cells to compute separately (default instrument and visit); ``()`` for one overall
        row. Each patient may appear once per cell.
    min_cell : int, optional
        When given, small-cell suppression (:func:`analysis.disclosure.suppress_cells`
        with ``count_columns=("n1", "n2")``, no total): a row where ``n1`` or ``n2`` lies
        in ``1 .. min_cell - 1`` has both counts, ``estimate``, ``ci_low`` and
        ``ci_high`` blanked and ``suppressed=True``. Reports use 11.

    Returns
    -------
    DataFrame
        ``by..., [group, reference,] measure, estimate, ci_low, ci_high, ci_level, n1, n2,
        ci_method``. Within patients ``n1 == n2`` is the number of patients with both a
        baseline and a score; between groups ``n1`` counts the group, ``n2`` the reference.
        Rows with a missing value are left out of a cell. A cell with fewer than 2
        patients (per group) or an SD of 0 has NaN estimate and CI and ``ci_method`` "none".
        Rows are ordered by ``by``, visits in schedule order (by ``target_day``).
        With ``min_cell`` a boolean ``suppressed`` column is added (only then, so the
        columns without it are unchanged) and ``n1``, ``n2`` are nullable ``Int64``.

    Notes
    -----
    Signs. Within patients the estimate standardizes baseline - score, i.e. it calls
    ``effect_size(baseline, score)``, so a fall in symptoms (improvement) is *positive*,
    the convention of pre/post reports such as Hull et al. 2022 (GAD-7 d = 1.56). Between
    groups the estimate standardizes change(group) - change(reference), as every
    group-vs-reference comparison in this package does, so a larger fall in the group is
    *negative* (the convention of placebo-controlled meta-analyses, e.g. Hartland et al.
    2023, SMD -1.17).

    The within-patient default ``d_av`` (Lakens 2013) is comparable with between-group d
    and, unlike ``d_z``, does not grow with the baseline-follow-up correlation; ``d_z``
    (the paired t statistic / sqrt(n)) is available by name. The formulas and intervals
    are those of :func:`effect_size`.

    References
    ----------
    Lakens D (2013). Front Psychol 4:863.
    Hull TD et al. (2022). J Affect Disord 314:59-67.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.effect_sizes import effect_size_table
    >>> ep = pd.DataFrame({
    ...     "patient_id": ["a", "b", "c", "d", "e", "f"],
    ...     "instrument": "GAD7", "visit": "week4",
    ...     "baseline": [15, 12, 18, 14, 16, 11],
    ...     "score": [6, 9, 10, 5, 12, 8],
    ...     "arm": ["ketamine"] * 3 + ["placebo"] * 3})
    >>> ep["change"] = ep["score"] - ep["baseline"]
    >>> t = effect_size_table(ep)
    >>> t[["visit", "measure", "estimate", "n1"]].round(3)
      visit measure  estimate  n1
    0  week4    d_av     2.324   6
    >>> t = effect_size_table(ep, group="arm", reference="placebo", by=())
    >>> t[["group", "reference", "measure", "estimate", "n1", "n2"]].round(3)
          group reference   measure  estimate  n1  n2
    0  ketamine   placebo  hedges_g    -0.331   3   3
    >>> t = effect_size_table(ep, group="arm", reference="placebo", by=(), min_cell=5)
    >>> t[["group", "estimate", "ci_low", "n1", "n2", "suppressed"]]
          group  estimate  ci_low    n1    n2  suppressed
    0  ketamine       NaN     NaN  <NA>  <NA>        True
    """
    frame = as_frame(endpoints, "endpoints")
    keys = as_by(by)
    if group is None:
        measure = DEFAULT_WITHIN_MEASURE if measure is None else measure
        check_choice("measure", measure, PAIRED_MEASURES)
        require_columns(frame, keys + ["baseline", "score"], "endpoints")
        # a query of its own: folded into the moments' query (a count of distinct
        # patients per cell) it measured as slow on DuckDB and slower on Polars
        _check_one_row_per_patient(frame, keys)
        paired = frame.with_columns(
            (nw.col("baseline").cast(nw.Float64) - nw.col("score").cast(nw.Float64)).alias(_DIFF)
        )
        cells = moment_cells(paired, ["baseline", "score", _DIFF], keys)  # and the visit order
        rows = []
        for cell in cells.table.to_dict("records"):
            row = {k: cell[k] for k in keys}
            row.update(
                _row(lambda c=cell, m=measure: _paired_from_moments(c, m), measure, **_ns(cell))
            )
            rows.append(row)
        out = pd.DataFrame(rows, columns=keys + TABLE_COLUMNS)
        return _suppress_counts(sort_cells(out, cells.schedule, keys), min_cell, None)

    measure = DEFAULT_BETWEEN_MEASURE if measure is None else measure
    check_choice("measure", measure, INDEPENDENT_MEASURES)
    require_columns(frame, keys + [group, "change"], "endpoints")
    if group in keys:
        raise ValueError(f"`group` ({group!r}) must not also be in `by` ({keys}).")
    _check_one_row_per_patient(frame, keys)
    counted = moment_cells(frame, ["change"], [*keys, group])
    stats_ = counted.table
    levels = levels_of(frame, stats_, group)
    if reference is None:
        if not levels:
            raise ValueError(f"Column `{group}` has no non-missing values to compare.")
        reference = levels[0]
    check_choice("reference", reference, levels)
    cells = stats_[keys].drop_duplicates().to_dict("records") if keys else [{}]
    found = {(*(r[k] for k in keys), r[group]): r for r in stats_.to_dict("records")}
    absent = {"n": 0, "mean_change": math.nan, "sd_change": math.nan}
    rows = []
    for cell in cells:
        key = tuple(cell[k] for k in keys)
        ref = found.get((*key, reference), absent)
        for level in levels:
            if level == reference:
                continue
            grp = found.get((*key, level), absent)
            row = dict(zip(keys, key, strict=True))
            row.update(group=level, reference=reference)
            row.update(
                _row(
                    lambda g=grp, r=ref: _independent_from_moments(g, r, measure),
                    measure,
                    n1=int(grp["n"]),
                    n2=int(ref["n"]),
                )
            )
            rows.append(row)
    out = pd.DataFrame(rows, columns=keys + ["group", "reference"] + TABLE_COLUMNS)
    return _suppress_counts(sort_cells(out, counted.schedule, keys), min_cell, [keys])


_DIFF = "__baseline_minus_score__"


def _ns(cell: dict) -> dict:
    return {"n1": int(cell["n"]), "n2": int(cell["n"])}


def _paired_from_moments(cell: dict, measure: str) -> EffectSize:
    """A paired measure from a cell's moments, as :func:`effect_size` gives from the pairs."""
    n = int(cell["n"])
    if n < 2:
        raise ValueError(f"{measure} needs at least 2 complete pairs, but {n} were given.")
    s1, s2, s_diff = cell["sd_baseline"], cell["sd_score"], cell[f"sd_{_DIFF}"]
    # r from the three SDs: var(x - y) = var(x) + var(y) - 2 r sd(x) sd(y)
    r = (s1**2 + s2**2 - s_diff**2) / (2 * s1 * s2) if s1 > 0 and s2 > 0 else math.nan
    if abs(abs(r) - 1) < 1e-12:  # perfectly (anti)correlated up to rounding, as effect_size
        r = math.copysign(1.0, r)
    m1, m2 = cell["mean_baseline"], cell["mean_score"]
    return _smd(measure, m1, s1, n, m2, s2, n, s_diff=s_diff, r=r, ci=0.95)


def _independent_from_moments(group: dict, reference: dict, measure: str) -> EffectSize:
    """An independent-groups measure of group minus reference from their moments."""
    n1, n2 = int(group["n"]), int(reference["n"])
    if n1 < 2 or n2 < 2:
        raise ValueError(
            f"{measure} needs at least 2 non-missing values in each group, but got {n1} and {n2}."
        )
    return _smd(
        measure,
        group["mean_change"],
        group["sd_change"],
        n1,
        reference["mean_change"],
        reference["sd_change"],
        n2,
        s_diff=None,
        r=None,
        ci=0.95,
    )


def _suppress_counts(
    table: pd.DataFrame, min_cell: int | None, margins: list[list[str]] | None
) -> pd.DataFrame:
    """Blank the estimate, its CI and both counts where n1 or n2 is in 1..min_cell - 1.

    Between groups, the levels of a cell add up (with the reference) to the cell's
    patients, so ``margins`` adds complementary suppression of ``n1`` across levels
    (:func:`analysis.disclosure.suppress_cells`).
    """
    if min_cell is None:
        return table
    from analysis.disclosure import suppress_cells

    derived = ("estimate", "ci_low", "ci_high")
    return suppress_cells(
        table, min_cell, ("n1", "n2"), total=None, derived=derived, margins=margins
    )
