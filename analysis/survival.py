"""Time to response and to relapse, Kaplan-Meier curves, medians and the log-rank test.

Design contract: an endpoint table (``derive_endpoints``) becomes one row per patient
(``patient_id, time, event``: a time-to-event table, "tte"); every other function here
takes a tte. Both may be frames of any engine (pandas, Polars, DuckDB, Spark): the
per-patient reduction and the number of events and censorings per time are computed in
that engine, and the Kaplan-Meier product and Greenwood's variance from those counts
(the product-limit formula, written here because statsmodels' ``SurvfuncRight`` needs
patient-level rows and weights its variance differently under frequency weights); the
log-rank test is statsmodels' ``survdiff``. The confidence intervals and the median follow
R ``survival`` (``survfit`` with ``conf.type = "log-log"``), and the tests hold the numbers
to R.

Patient-level columns the caller merged into the endpoints (e.g. ``route``, ``arm``:
any column that is not an endpoint column and is constant within each patient) are
carried into the tte, so ``kaplan_meier(time_to_event(ep), group="route")`` works.
"""

from __future__ import annotations

import math
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.survfunc import survdiff

from analysis._frames import (
    as_frame,
    column_names,
    distinct,
    require_columns,
    small_to_pandas,
    to_pandas,
)
from analysis._utils import check_choice
from analysis.endpoints import ENDPOINT_COLUMNS, OUTCOMES

__all__ = [
    "EVENTS",
    "kaplan_meier",
    "logrank_test",
    "median_time_to_event",
    "time_to_event",
    "time_to_relapse",
]

#: The boolean outcome columns of ``derive_endpoints`` that can define an event.
EVENTS = OUTCOMES


def _observed_defined(
    endpoints: object, event: str, instrument: str | None
) -> nw.DataFrame | nw.LazyFrame:
    """The observed visits (not imputed) of one instrument where ``event`` is defined,
    as a frame of the caller's engine."""
    frame = as_frame(endpoints, "endpoints")
    check_choice("event", event, EVENTS)
    require_columns(frame, ["patient_id", "study_day", event], "endpoints")
    names = column_names(frame)
    if "instrument" in names:
        present = distinct(frame, "instrument")
        if instrument is not None:
            check_choice("instrument", instrument, present)
            frame = frame.filter(nw.col("instrument") == instrument)
        elif len(present) > 1:
            raise ValueError(
                f"The endpoints hold several instruments {present}; a time to event is "
                "defined on one. Pass `instrument=` (e.g. instrument='GAD7') or filter the "
                "endpoints first."
            )
    elif instrument is not None:
        raise ValueError(
            "`instrument` was given but the endpoints have no `instrument` column; "
            "leave `instrument=None`."
        )
    if "imputed" in names:
        frame = frame.filter(~nw.col("imputed").fill_null(False))
    return frame.filter(~nw.col("study_day").is_null(), ~nw.col(event).is_null())


def _patient_columns(
    frame: nw.DataFrame | nw.LazyFrame, observed: nw.DataFrame | nw.LazyFrame
) -> pd.DataFrame | None:
    """The non-endpoint columns constant within each patient, one row per patient."""
    extra = [c for c in column_names(frame) if c not in ENDPOINT_COLUMNS]
    if not extra:
        return None
    counts = small_to_pandas(
        observed.group_by("patient_id").agg(*[nw.col(c).n_unique() for c in extra])
    )
    extra = [c for c in extra if counts[c].max() <= 1 or not len(counts)]
    if not extra:
        return None
    firsts = observed.group_by("patient_id").agg(*[nw.col(c).min() for c in extra])
    return small_to_pandas(firsts).set_index("patient_id").sort_index()


def _defined_event_rows(
    endpoints: pd.DataFrame, event: str, instrument: str | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Observed visits with a defined ``event``, sorted, and the patient-level columns."""
    observed = _observed_defined(endpoints, event, instrument)
    ep = small_to_pandas(observed)
    rows = pd.DataFrame(
        {
            "patient_id": ep["patient_id"].to_numpy(),
            "day": pd.to_numeric(ep["study_day"]).to_numpy(dtype=float),
            "met": ep[event].astype("boolean").to_numpy(dtype=bool),
        }
    ).sort_values(["patient_id", "day"], kind="stable")
    return rows, _patient_columns(as_frame(endpoints), observed)


def _finish(out: pd.DataFrame, patients: pd.DataFrame | None) -> pd.DataFrame:
    out = out.reset_index(drop=True)
    out["time"] = out["time"].astype(float)
    if out["time"].notna().all() and (out["time"] == out["time"].round()).all():
        out["time"] = out["time"].astype("int64")
    out["event"] = out["event"].astype("int64")
    if patients is not None and len(patients.columns):
        out = out.merge(patients, left_on="patient_id", right_index=True, how="left")
    return out


def time_to_event(
    endpoints: pd.DataFrame, event: str = "response", *, instrument: str | None = None
) -> pd.DataFrame:
    """Time from day 0 to the first visit meeting ``event``, one row per patient.

    Parameters
    ----------
    endpoints : DataFrame
        Output of ``derive_endpoints`` (``patient_id``, ``study_day``, the ``event``
        column, optionally ``imputed`` and ``instrument``), of any engine: the first
        event day and last defined day of each patient are computed there.
    event : str
        A boolean outcome column: ``response`` (default), ``partial_response``,
        ``remission``, ``reliable_improvement``, ``reliable_deterioration``, ``recovery``
        or ``reliable_recovery``.
    instrument : str, optional
        Which instrument to use when the endpoints hold more than one (else a
        ``ValueError``: times to event of GAD-7 and HAM-A are never mixed).

    Returns
    -------
    DataFrame
        ``patient_id, time, event`` (``event`` 1 = met, 0 = censored), sorted by
        ``patient_id``, then any patient-level columns of the endpoints (columns that are
        not endpoint columns and are constant within each patient, e.g. ``route``).

    Notes
    -----
    Only observed visits count: imputed rows (``imputed=True``, which have no study day)
    are ignored, and so are visits where the event is NA (not defined, e.g. remission for
    a patient whose baseline is already under the cut-off). ``time`` is the study day of
    the first visit meeting the event. A patient who never meets it is censored at the
    study day of the last visit with a defined value (``event`` 0). Patients with no
    defined value at any visit are left out. The time is measured from day 0 (the first
    ketamine session), so it is the study day itself; as visits are scheduled, the event
    is interval-censored in truth and this is the usual visit-day approximation.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.survival import time_to_event
    >>> ep = pd.DataFrame({
    ...     "patient_id": ["a", "a", "a", "b", "b", "c"],
    ...     "visit": ["week1", "week2", "week4", "week1", "week2", "week1"],
    ...     "study_day": [7, 15, 28, 6, 14, 8],
    ...     "response": pd.array([False, True, True, False, False, pd.NA], dtype="boolean"),
    ...     "imputed": False})
    >>> time_to_event(ep)
      patient_id  time  event
    0          a    15      1
    1          b    14      0
    """
    observed = _observed_defined(endpoints, event, instrument)
    day = nw.col("study_day").cast(nw.Float64)
    per_patient = (
        observed.select(
            nw.col("patient_id"),
            day.alias("last_day"),
            nw.when(nw.col(event)).then(day).alias("met_day"),
        )
        .group_by("patient_id")
        .agg(nw.col("met_day").min(), nw.col("last_day").max())
    )
    out = small_to_pandas(per_patient).sort_values("patient_id", kind="stable")
    met_day = pd.to_numeric(out["met_day"]).astype(float)
    out["time"] = met_day.fillna(pd.to_numeric(out["last_day"]).astype(float)).to_numpy()
    out["event"] = met_day.notna().astype("int64").to_numpy()
    patients = _patient_columns(as_frame(endpoints), observed)
    return _finish(out[["patient_id", "time", "event"]], patients)


def time_to_relapse(
    endpoints: pd.DataFrame, event: str = "response", *, instrument: str | None = None
) -> pd.DataFrame:
    """Durability: time from first meeting ``event`` to the first visit no longer meeting it.

    Parameters
    ----------
    endpoints : DataFrame
        Output of ``derive_endpoints``; see :func:`time_to_event`.
    event : str
        The outcome whose loss is a relapse (default ``response``); see
        :func:`time_to_event`.
    instrument : str, optional
        See :func:`time_to_event`.

    Returns
    -------
    DataFrame
        ``patient_id, time, event`` (``event`` 1 = relapse, 0 = censored) for the patients
        who met ``event`` at an observed visit, then the patient-level columns.

    Notes
    -----
    **Convention** (no standard definition for open-label clinic data): the origin is the
    study day of the first observed visit meeting the event; relapse is the first later
    observed visit where the event is defined and no longer met (for ``response``: the
    reduction from baseline is now under 50%). ``time`` = relapse day - origin day. A
    patient who keeps the event at every later defined visit is censored at the last
    defined visit (time 0 when the event was first met at the last visit). Imputed rows
    and visits with the event NA are ignored, as in :func:`time_to_event`. This is the
    "loss of response" notion of durability; randomized-withdrawal trials such as
    SUSTAIN-1 (Daly et al. 2019, JAMA Psychiatry 76:893-903) use stricter, trial-specific
    relapse criteria (e.g. a threshold score on two consecutive visits), which this
    function does not implement.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.survival import time_to_relapse
    >>> ep = pd.DataFrame({
    ...     "patient_id": ["a", "a", "a", "b", "b", "b", "c"],
    ...     "study_day": [7, 14, 28, 7, 14, 28, 7],
    ...     "response": [True, True, False, False, True, True, False]})
    >>> time_to_relapse(ep)
      patient_id  time  event
    0          a    21      1
    1          b    14      0
    """
    rows, patients = _defined_event_rows(endpoints, event, instrument)
    origin = rows[rows["met"]].groupby("patient_id", sort=True)["day"].min()
    after = rows[rows["patient_id"].isin(origin.index)].copy()
    after["origin"] = after["patient_id"].map(origin)
    after = after[after["day"] >= after["origin"]]
    relapse_day = after[~after["met"]].groupby("patient_id")["day"].min()
    last_day = after.groupby("patient_id", sort=True)["day"].max()
    out = pd.DataFrame({"patient_id": origin.index})
    end = out["patient_id"].map(relapse_day)
    out["event"] = end.notna().astype("int64").to_numpy()
    end = end.fillna(out["patient_id"].map(last_day))
    out["time"] = (end - out["patient_id"].map(origin)).to_numpy()
    return _finish(out[["patient_id", "time", "event"]], patients)


def _check_tte(tte: object, group: str | None) -> None:
    """Validate a time-to-event table of any engine (failures counted in the engine)."""
    frame = as_frame(tte, "tte")
    require_columns(frame, ["time", "event"] + ([group] if group is not None else []), "tte")
    time, event = nw.col("time").cast(nw.Float64), nw.col("event").cast(nw.Float64)
    checks = {
        "missing": (nw.col("time").is_null() | nw.col("event").is_null()),
        "bad_event": (~event.is_null()) & (event != 0.0) & (event != 1.0),
        "negative": (~time.is_null()) & (time < 0.0),
    }
    if group is not None:
        checks["no_group"] = nw.col(group).is_null()
    found = small_to_pandas(
        frame.select(*[c.cast(nw.Int64).sum().alias(name) for name, c in checks.items()])
    ).iloc[0]
    count = {name: int(found[name]) if pd.notna(found[name]) else 0 for name in checks}
    if count["missing"]:
        raise ValueError(
            "`tte` has missing `time` or `event` values; every row needs both. Use the "
            "output of time_to_event(), or drop the incomplete rows."
        )
    if count["bad_event"]:
        raise ValueError("`tte['event']` must be 1 (event) or 0 (censored).")
    if count["negative"]:
        raise ValueError("`tte['time']` must be non-negative (days from day 0).")
    if count.get("no_group"):
        raise ValueError(
            f"Column `{group}` has {count['no_group']} missing value(s); fill them "
            "(e.g. 'unknown') or drop those patients before grouping."
        )


def _groups(tte: pd.DataFrame, group: str | None) -> list[tuple[Any, pd.DataFrame]]:
    if group is None:
        return [(None, tte)]
    return list(tte.groupby(group, sort=True, observed=True))


_KM_COLUMNS = ["time", "n_at_risk", "n_events", "survival", "ci_low", "ci_high"]


def _km_counts(
    time: np.ndarray, events: np.ndarray, censored: np.ndarray, alpha: float
) -> pd.DataFrame:
    """KM at the event times with pointwise log-log Greenwood limits (R survfit), from the
    number of events and of censorings at each distinct time (sorted ascending)."""
    if events.sum() == 0:
        return pd.DataFrame(columns=_KM_COLUMNS)
    at_risk = (
        events.sum() + censored.sum() - np.concatenate(([0], np.cumsum(events + censored)[:-1]))
    )
    keep = events > 0
    d, n = events[keep].astype(float), at_risk[keep].astype(float)
    surv = np.cumprod(1 - d / n)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Greenwood SE of log S; the log-log interval is undefined where S is 0 or 1.
        se_log = np.sqrt(np.cumsum(d / (n * (n - d))))
        log_surv = np.where((surv > 0) & (surv < 1), np.log(surv), np.nan)
        half = z * se_log / log_surv
        low = np.exp(-np.exp(np.log(-log_surv) - half))
        high = np.exp(-np.exp(np.log(-log_surv) + half))
    times = time[keep]
    if np.all(time == np.round(time)):  # study days stay integers
        times = times.astype("int64")
    return pd.DataFrame(
        {
            "time": times,
            "n_at_risk": n.astype("int64"),
            "n_events": d.astype("int64"),
            "survival": surv,
            "ci_low": low,
            "ci_high": high,
        }
    )


def _km(time: np.ndarray, event: np.ndarray, alpha: float) -> pd.DataFrame:
    """KM of patient-level times and event indicators (see :func:`_km_counts`)."""
    times, index = np.unique(time, return_inverse=True)
    events = np.bincount(index, weights=event, minlength=len(times))
    censored = np.bincount(index, weights=1 - event, minlength=len(times))
    return _km_counts(times, events, censored, alpha)


def kaplan_meier(
    tte: pd.DataFrame,
    group: str | None = None,
    *,
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Kaplan-Meier estimate with pointwise log-log confidence limits.

    Parameters
    ----------
    tte : DataFrame
        One row per patient with ``time`` and ``event`` (1 event, 0 censored), e.g. from
        :func:`time_to_event` or :func:`time_to_relapse`; any engine's frame (only the
        events and censorings per time leave it).
    group : str, optional
        A column of ``tte`` (e.g. ``"route"``); one curve per level (sorted).
    alpha : float
        1 - coverage of the pointwise intervals (default 0.05).
    min_cell : int, optional
        Disclosure control (:mod:`analysis.disclosure`; reports use 11): no curve for a
        group of fewer than ``min_cell`` patients (its steps of 1/n would give its event
        counts), each curve ends before the first time with fewer than ``min_cell``
        patients at risk, and ``n_events`` of 1 to ``min_cell - 1`` is blanked (the
        curve itself is kept); a ``suppressed`` column marks the rows with a blanked
        count. The estimate is computed on all patients, so the shown part is unchanged.

    Returns
    -------
    DataFrame
        ``[group,] time, n_at_risk, n_events, survival, ci_low, ci_high``: one row per
        distinct event time (as R ``summary(survfit(...))``), ``group`` holding the level.
        Censoring-only times add no row; a level without events has no rows. The limits
        are NaN where the survival is 0 (undefined on the log-log scale, NA in R).

    Notes
    -----
    S(t) = prod over event times t_i <= t of (1 - d_i / n_i). Greenwood's variance of
    log S is sum d_i / (n_i (n_i - d_i)); with se its square root, the limits are
    S^exp(+-z se / log S), i.e. exp(-exp(log(-log S) -+ z se / log S)), the same as R
    ``survfit(..., conf.type = "log-log")``. For a time to *response* the curve is the
    proportion not yet responding; 1 - survival is the cumulative response.

    References
    ----------
    Kaplan EL, Meier P (1958). J Am Stat Assoc 53:457-481.
    Kalbfleisch JD, Prentice RL (2002). The Statistical Analysis of Failure Time Data,
    2nd ed. Wiley (log-log limits).
    Therneau T (2024). survival: A Package for Survival Analysis in R.

    Examples
    --------
    The R ``survival`` example of docs/references.md:

    >>> import pandas as pd
    >>> from analysis.survival import kaplan_meier
    >>> tte = pd.DataFrame({"time": [3, 1, 2, 3, 2, 1, 5, 3],
    ...                     "event": [0, 1, 1, 1, 0, 0, 1, 0]})
    >>> kaplan_meier(tte).round(4)
       time  n_at_risk  n_events  survival  ci_low  ci_high
    0     1          8         1    0.8750  0.3870   0.9814
    1     2          6         1    0.7292  0.2764   0.9254
    2     3          4         1    0.5469  0.1372   0.8324
    3     5          1         1    0.0000     NaN      NaN
    """
    from analysis.disclosure import check_min_cell, suppress_survival_curve

    min_cell = check_min_cell(min_cell)
    frame = as_frame(tte, "tte")
    _check_tte(frame, group)
    keys = [group] if group is not None else []
    # only the number of events and censorings per (group, time) leave the engine
    counts = small_to_pandas(
        frame.select(
            *[nw.col(k) for k in keys],
            nw.col("time").cast(nw.Float64),
            nw.col("event").cast(nw.Float64).alias("events"),
            (1.0 - nw.col("event").cast(nw.Float64)).alias("censored"),
        )
        .group_by(*keys, "time")
        .agg(nw.col("events").sum(), nw.col("censored").sum())
    ).sort_values([*keys, "time"], kind="stable")
    frames = []
    for level, sub in _groups(counts, group):
        km = _km_counts(
            sub["time"].to_numpy(dtype=float),
            sub["events"].to_numpy(dtype=float),
            sub["censored"].to_numpy(dtype=float),
            alpha,
        )
        if min_cell is not None:  # the small-group rule of analysis.disclosure
            size = float(sub["events"].sum() + sub["censored"].sum())  # the group's patients
            km = suppress_survival_curve(km, min_cell, sizes={None: size})
        if group is not None:
            km.insert(0, "group", level)
        frames.append(km)
    nonempty = [f for f in frames if len(f)]
    out = pd.concat(nonempty, ignore_index=True) if nonempty else frames[0]
    out.attrs["group_column"] = group  # figures follow the tables' hidden groups by it
    return out


def _first_half(times: np.ndarray, curve: np.ndarray) -> float:
    """First time ``curve`` is at or below 0.5, by the rule of R ``print(survfit)``.

    The rule of R survival's ``survmean`` (what ``print(survfit)`` and
    ``summary(fit)$table`` show): the first time the curve is <= 0.5 within a tolerance of
    ``sqrt(machine epsilon)``; when the curve equals 0.5 there and drops below it later,
    the midpoint of that time and the time of the next drop; when it stays at 0.5 to the
    end of follow-up, that first time. Missing curve values (a log-log limit at S = 0)
    are skipped; NaN when the curve never gets to 0.5.
    """
    tol = math.sqrt(np.finfo(float).eps)
    keep = ~np.isnan(curve) & (curve < 0.5 + tol)
    if not keep.any():
        return math.nan
    x, y = times[keep], curve[keep]
    lower = np.flatnonzero(y < y[0])
    if abs(y[0] - 0.5) < tol and len(lower):
        return float((x[0] + x[lower[0]]) / 2)
    return float(x[0])


def median_time_to_event(
    tte: pd.DataFrame,
    group: str | None = None,
    *,
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Median time to event with its confidence interval.

    Parameters
    ----------
    tte : DataFrame
        One row per patient with ``time`` and ``event``; see :func:`kaplan_meier`.
    group : str, optional
        A column of ``tte``; one row per level (sorted).
    alpha : float
        1 - coverage of the interval (default 0.05).
    min_cell : int, optional
        When given, small-cell suppression (:func:`analysis.disclosure.suppress_cells`
        with ``count_columns=("n_events",)``, ``total="n"``): a row whose n, n_events or
        n - n_events (the censored) lies in ``1 .. min_cell - 1`` has ``n_events``, the
        median and its CI blanked, ``n`` too when under ``min_cell``, and
        ``suppressed=True``. Reports use 11.

    Returns
    -------
    DataFrame
        ``[group,] n, n_events, median, ci_low, ci_high`` (+ ``suppressed`` only when
        ``min_cell`` is given; counts are then nullable ``Int64``). NaN where the curve
        (or a confidence curve) never falls to 0.5 (the median or a limit is not reached).

    Notes
    -----
    The median is the first time the Kaplan-Meier curve is at or below 0.5, compared
    with a tolerance of ``sqrt(machine epsilon)`` (about 1.5e-8) so that a curve that is
    0.5 up to rounding (``0.75 x 2/3 = 0.5000000000000001``) counts as 0.5. **Convention
    when S is exactly 0.5 over an interval:** the median is the midpoint of the flat
    stretch, from the time S reaches 0.5 to the time of the next event, which takes it
    below; when no later event does (S stays at 0.5 to the end of follow-up) the median is
    the time S reached 0.5. This is the rule of R survival's ``print(survfit)`` and
    ``summary(fit)$table`` (function ``survmean``): time [1, 2, 4, 6], event [1, 1, 0, 0]
    gives 2. (R's ``quantile(survfit)`` instead extends a final flat stretch to the last
    follow-up time; SAS LIFETEST takes the midpoint too.) The limits are the times at which
    the lower and the upper pointwise log-log confidence curves of :func:`kaplan_meier`
    fall to 0.5 by the same rule (Brookmeyer & Crowley 1982).

    References
    ----------
    Brookmeyer R, Crowley J (1982). A confidence interval for the median survival time.
    Biometrics 38:29-41.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.survival import median_time_to_event
    >>> tte = pd.DataFrame({"time": [7, 14, 28, 56], "event": [1, 1, 1, 0]})
    >>> median_time_to_event(tte)
       n  n_events  median  ci_low  ci_high
    0  4         3    21.0     7.0      NaN
    >>> median_time_to_event(tte, min_cell=3)  # 1 censored patient: a small cell
       n  n_events  median  ci_low  ci_high  suppressed
    0  4      <NA>     NaN     NaN      NaN        True
    """
    tte = to_pandas(tte, "tte")
    _check_tte(tte, group)
    rows = []
    for level, sub in _groups(tte, group):
        time = pd.to_numeric(sub["time"]).to_numpy(dtype=float)
        event = sub["event"].astype(int).to_numpy()
        km = _km(time, event, alpha)
        times = km["time"].to_numpy(dtype=float)
        row = {} if group is None else {"group": level}
        row.update(
            n=len(sub),
            n_events=int(event.sum()),
            median=_first_half(times, km["survival"].to_numpy(dtype=float)),
            ci_low=_first_half(times, km["ci_low"].to_numpy(dtype=float)),
            ci_high=_first_half(times, km["ci_high"].to_numpy(dtype=float)),
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    if min_cell is None:
        return out
    from analysis.disclosure import suppress_cells

    derived = ("median", "ci_low", "ci_high")
    margins: list[list[str]] | None = [[]] if group is not None else None  # groups add to all
    return suppress_cells(out, min_cell, ("n_events",), total="n", derived=derived, margins=margins)


def logrank_test(tte: pd.DataFrame, group: str) -> pd.DataFrame:
    """Log-rank test of equal time-to-event distributions across the levels of ``group``.

    Parameters
    ----------
    tte : DataFrame
        One row per patient with ``time``, ``event`` and the ``group`` column.
    group : str
        The column whose levels are compared (two or more levels).

    Returns
    -------
    DataFrame
        One row: ``n_groups, chi2, df, p_value, note`` (df = number of levels - 1).
        ``note`` is NA when the test was computed; otherwise ``chi2`` and ``p_value`` are
        NaN and ``note`` says why: no events in any group (nobody responded, nobody lost
        response), or no event time with patients of two groups at risk (the variance
        of observed minus expected is zero).

    Notes
    -----
    The Mantel-Haenszel log-rank statistic (observed minus expected events at each event
    time, with the hypergeometric variance), computed by
    ``statsmodels.duration.survfunc.survdiff``; equal to R ``survdiff`` (rho = 0). The
    p-value is the chi-square survival function of the statistic (not ``1 - cdf``), so
    it stays exact far below 1e-16. Where R ``survdiff`` returns a statistic of 0 on
    1 df with p = 1 for data without events, the result here is NaN with the reason in
    ``note``, so that a report never shows "no difference" for a test that could not be
    done.

    References
    ----------
    Mantel N (1966). Cancer Chemother Rep 50:163-170.
    Peto R, Peto J (1972). J R Stat Soc A 135:185-207.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.survival import logrank_test
    >>> tte = pd.DataFrame({"time": [1, 7, 7, 14, 28, 7, 14, 28, 56, 84],
    ...                     "event": [1, 1, 1, 1, 0, 0, 1, 0, 1, 0],
    ...                     "route": ["iv"] * 5 + ["oral"] * 5})
    >>> logrank_test(tte, "route").round(4)
       n_groups    chi2  df  p_value  note
    0         2  3.6437   1   0.0563  <NA>
    """
    tte = to_pandas(tte, "tte")
    _check_tte(tte, group)
    levels = sorted(tte[group].unique().tolist())
    if len(levels) < 2:
        raise ValueError(
            f"A log-rank test needs at least two levels of `{group}`, but it has {levels}."
        )
    event = tte["event"].astype(int).to_numpy()
    note = pd.NA
    chi2 = p = math.nan
    if event.sum() == 0:
        note = "no events in any group: the log-rank test is not defined"
    else:
        try:
            chi2 = float(
                survdiff(
                    pd.to_numeric(tte["time"]).to_numpy(dtype=float), event, tte[group].to_numpy()
                )[0]
            )
        except np.linalg.LinAlgError:
            note = (
                "no event time has patients of two groups at risk (zero variance): the "
                "log-rank test is not defined"
            )
        else:
            # The chi-square survival function, not 1 - cdf: exact far below 1e-16.
            p = float(stats.chi2.sf(chi2, len(levels) - 1))
    return pd.DataFrame(
        {
            "n_groups": [len(levels)],
            "chi2": [chi2],
            "df": [len(levels) - 1],
            "p_value": [p],
            "note": pd.array([note], dtype="string"),
        }
    )
