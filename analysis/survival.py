"""Time to response and to relapse, Kaplan-Meier curves, medians and the log-rank test.

Design contract: an endpoint table (``derive_endpoints``) becomes one row per patient
(``patient_id, time, event``: a time-to-event table, "tte"); every other function here
takes a tte. The estimates come from statsmodels (``SurvfuncRight``, ``survdiff``); the
confidence intervals and the median follow R ``survival`` (``survfit`` with
``conf.type = "log-log"``) so the numbers match the reference implementation.

Patient-level columns the caller merged into the endpoints (e.g. ``route``, ``arm``:
any column that is not an endpoint column and is constant within each patient) are
carried into the tte, so ``kaplan_meier(time_to_event(ep), group="route")`` works.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from analysis._utils import check_choice, check_columns, to_pandas
from analysis.endpoints import ENDPOINT_COLUMNS, OUTCOMES
from analysis.rates import suppress_small_cells

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


def _defined_event_rows(
    endpoints: pd.DataFrame, event: str, instrument: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed visits with a defined ``event``, sorted, and the patient-level columns."""
    endpoints = to_pandas(endpoints, "endpoints")
    check_choice("event", event, EVENTS)
    check_columns(endpoints, ["patient_id", "study_day", event], "endpoints")
    ep = endpoints
    if "instrument" in ep.columns:
        present = sorted(ep["instrument"].dropna().unique().tolist())
        if instrument is not None:
            check_choice("instrument", instrument, present)
            ep = ep[ep["instrument"] == instrument]
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
    if "imputed" in ep.columns:
        ep = ep[~ep["imputed"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    ep = ep[ep["study_day"].notna() & ep[event].notna()]

    extra = [c for c in ep.columns if c not in ENDPOINT_COLUMNS]
    if extra:
        constant = ep.groupby("patient_id", sort=False)[extra].nunique(dropna=False).max() <= 1
        extra = [c for c in extra if constant.get(c, True)]
    patients = ep.groupby("patient_id", sort=True)[extra].first() if extra else None

    rows = pd.DataFrame(
        {
            "patient_id": ep["patient_id"].to_numpy(),
            "day": pd.to_numeric(ep["study_day"]).to_numpy(dtype=float),
            "met": ep[event].astype("boolean").to_numpy(dtype=bool),
        }
    ).sort_values(["patient_id", "day"], kind="stable")
    return rows, patients


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
        column, optionally ``imputed`` and ``instrument``).
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
    rows, patients = _defined_event_rows(endpoints, event, instrument)
    by_patient = rows.groupby("patient_id", sort=True)
    first_met = rows[rows["met"]].groupby("patient_id", sort=True)["day"].min()
    last_day = by_patient["day"].max()
    out = pd.DataFrame({"patient_id": last_day.index})
    met_day = out["patient_id"].map(first_met)
    out["time"] = met_day.fillna(out["patient_id"].map(last_day)).to_numpy()
    out["event"] = met_day.notna().astype("int64").to_numpy()
    return _finish(out, patients)


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


def _check_tte(tte: pd.DataFrame, group: str | None) -> None:
    check_columns(tte, ["time", "event"] + ([group] if group is not None else []), "tte")
    if tte["time"].isna().any() or tte["event"].isna().any():
        raise ValueError(
            "`tte` has missing `time` or `event` values; every row needs both. Use the "
            "output of time_to_event(), or drop the incomplete rows."
        )
    if not tte["event"].isin([0, 1, True, False]).all():
        raise ValueError("`tte['event']` must be 1 (event) or 0 (censored).")
    if (pd.to_numeric(tte["time"]) < 0).any():
        raise ValueError("`tte['time']` must be non-negative (days from day 0).")
    if group is not None and tte[group].isna().any():
        raise ValueError(
            f"Column `{group}` has {int(tte[group].isna().sum())} missing value(s); fill them "
            "(e.g. 'unknown') or drop those patients before grouping."
        )


def _groups(tte: pd.DataFrame, group: str | None):
    if group is None:
        return [(None, tte)]
    return list(tte.groupby(group, sort=True, observed=True))


def _km(time: np.ndarray, event: np.ndarray, alpha: float) -> pd.DataFrame:
    """KM at the event times with pointwise log-log Greenwood limits (R survfit)."""
    if event.sum() == 0:
        return pd.DataFrame(
            columns=["time", "n_at_risk", "n_events", "survival", "ci_low", "ci_high"]
        )
    sf = SurvfuncRight(time, event)
    surv = sf.surv_prob
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Greenwood SE of log S; the log-log interval is undefined where S is 0 or 1.
        se_log = sf.surv_prob_se / surv
        log_surv = np.where((surv > 0) & (surv < 1), np.log(surv), np.nan)
        half = z * se_log / log_surv
        low = np.exp(-np.exp(np.log(-log_surv) - half))
        high = np.exp(-np.exp(np.log(-log_surv) + half))
    times = sf.surv_times
    if np.all(time == np.round(time)):  # study days stay integers
        times = times.astype("int64")
    return pd.DataFrame(
        {
            "time": times,
            "n_at_risk": sf.n_risk.astype("int64"),
            "n_events": sf.n_events.astype("int64"),
            "survival": surv,
            "ci_low": low,
            "ci_high": high,
        }
    )


def kaplan_meier(
    tte: pd.DataFrame, group: str | None = None, *, alpha: float = 0.05
) -> pd.DataFrame:
    """Kaplan-Meier estimate with pointwise log-log confidence limits.

    Parameters
    ----------
    tte : DataFrame
        One row per patient with ``time`` and ``event`` (1 event, 0 censored), e.g. from
        :func:`time_to_event` or :func:`time_to_relapse`.
    group : str, optional
        A column of ``tte`` (e.g. ``"route"``); one curve per level (sorted).
    alpha : float
        1 - coverage of the pointwise intervals (default 0.05).

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
    tte = to_pandas(tte, "tte")
    _check_tte(tte, group)
    frames = []
    for level, sub in _groups(tte, group):
        km = _km(
            pd.to_numeric(sub["time"]).to_numpy(dtype=float),
            sub["event"].astype(int).to_numpy(),
            alpha,
        )
        if group is not None:
            km.insert(0, "group", level)
        frames.append(km)
    nonempty = [f for f in frames if len(f)]
    return pd.concat(nonempty, ignore_index=True) if nonempty else frames[0]


def _findq(times: np.ndarray, curve: np.ndarray, last_time: float, p: float = 0.5) -> float:
    """First time ``curve`` falls to ``1 - p`` or below, by R survival's rule (``findq``).

    Where the curve equals ``1 - p`` (within a tolerance) over a stretch, the quantile is
    the midpoint of that stretch, or of the stretch to ``last_time`` (the last follow-up)
    when the curve ends there. Missing curve values (log-log limits at S = 0) are skipped.
    """
    tol = math.sqrt(np.finfo(float).eps)
    x = np.concatenate([[0.0], times])
    y = np.concatenate([[0.0], 1 - curve])
    if np.nanmax(y) < p:
        return math.nan
    keep = ~pd.Series(y).duplicated().to_numpy()
    x, y = x[keep], y[keep]
    valid = np.flatnonzero(~np.isnan(y))

    def first_reaching(shift: float) -> float:
        hits = valid[y[valid] + shift >= p]
        return x[hits[0]] if len(hits) else math.nan

    at_or_after = first_reaching(tol)
    if not np.isnan(y[-1]) and abs(p - y[-1]) < tol:
        return (at_or_after + last_time) / 2
    return (at_or_after + first_reaching(-tol)) / 2


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
        When given, small-cell suppression (:func:`analysis.rates.suppress_small_cells`
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
    The median is the first time the Kaplan-Meier curve is at or below 0.5 (the
    midpoint of the flat stretch when it is exactly 0.5). The limits are the times at
    which the lower and the upper pointwise log-log confidence curves of
    :func:`kaplan_meier` fall to 0.5 (Brookmeyer & Crowley 1982), the rule of R
    ``survfit``. statsmodels' ``SurvfuncRight.quantile_ci`` (the SAS rule) gives the same
    limits except at ties with 0.5 and at the end of follow-up, so R's rule is coded
    here.

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
        last = float(time.max()) if len(time) else math.nan
        row = {} if group is None else {"group": level}
        row.update(
            n=len(sub),
            n_events=int(event.sum()),
            median=_findq(times, km["survival"].to_numpy(dtype=float), last),
            ci_low=_findq(times, km["ci_low"].to_numpy(dtype=float), last),
            ci_high=_findq(times, km["ci_high"].to_numpy(dtype=float), last),
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    if min_cell is None:
        return out
    derived = ("median", "ci_low", "ci_high")
    return suppress_small_cells(out, min_cell, ("n_events",), total="n", derived=derived)


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
        One row: ``n_groups, chi2, df, p_value`` (df = number of levels - 1).

    Notes
    -----
    The Mantel-Haenszel log-rank statistic (observed minus expected events at each event
    time, with the hypergeometric variance), computed by
    ``statsmodels.duration.survfunc.survdiff``; equal to R ``survdiff`` (rho = 0).

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
       n_groups    chi2  df  p_value
    0         2  3.6437   1   0.0563
    """
    tte = to_pandas(tte, "tte")
    _check_tte(tte, group)
    levels = sorted(tte[group].unique().tolist())
    if len(levels) < 2:
        raise ValueError(
            f"A log-rank test needs at least two levels of `{group}`, but it has {levels}."
        )
    chi2, p = survdiff(
        pd.to_numeric(tte["time"]).to_numpy(dtype=float),
        tte["event"].astype(int).to_numpy(),
        tte[group].to_numpy(),
    )
    return pd.DataFrame(
        {
            "n_groups": [len(levels)],
            "chi2": [float(chi2)],
            "df": [len(levels) - 1],
            "p_value": [float(p)],
        }
    )
