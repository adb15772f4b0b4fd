"""Safety summaries: adverse events, blood pressure, dissociation and dosing.

Every table function takes a :class:`~analysis.schema.Cohort` and returns a tidy
DataFrame with one row per cell of ``by`` (and per term or measure), with the columns
listed in its docstring. The figures of these tables are in :mod:`analysis.plots`.

Conventions shared by every function:

- ``by`` is a column name, a sequence of names, or ``()`` for one overall row. Patient
  tables (:func:`adverse_event_table`, :func:`dose_summary`) group by columns of
  ``patients``; session tables (:func:`blood_pressure_table`,
  :func:`dissociation_table`) by columns of ``sessions`` (``route``, ``phase``,
  ``session_number``) or, failing that, of ``patients`` (``primary_diagnosis``, ...).
- Percentages are on the 0-100 scale.
- ``min_cell``: when given, no count of people between 1 and ``min_cell - 1`` is shown,
  nor any statistic derived from one (CMS rule with ``min_cell=11``). A group of fewer
  than ``min_cell`` patients has every statistic blanked; a count under ``min_cell`` (or
  whose complement in its total is) is blanked with its percentage. Blanked cells are NA
  and the row has ``suppressed=True``. The rule is applied row by row
  (:func:`analysis.disclosure.suppress_cells`, with complementary suppression across
  the groups of a patient-level key such as ``route``).
- Sessions of one patient are correlated: session-level percentages carry no binomial
  interval, and the interval of a mean over sessions is cluster-robust by patient.

The clinical thresholds (:data:`SBP_PEAK_THRESHOLD`, :data:`DBP_PEAK_THRESHOLD`,
:data:`SBP_RISE_THRESHOLD`, :data:`DBP_RISE_THRESHOLD`, :data:`CADSS_THRESHOLD`,
:data:`INDUCTION_SESSIONS`) are module constants with their sources, and every function
takes them as arguments.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

# The tables' columns and the "not collected" note live below the figures that draw them.
from analysis._safety_columns import (
    _AE_COLUMNS,
    _BP_COLUMNS,
    _CADSS_COLUMNS,
    _DOSE_COLUMNS,
    NOT_COLLECTED,
)
from analysis._utils import (
    as_by,
    check_alpha,
    check_columns,
    check_min_cell,
    to_float_array,
)
from analysis.disclosure import hidden_levels, partition_margins, suppress_cells
from analysis.rates import proportion_ci

__all__ = [
    "ANY_EVENT",
    "ANY_SERIOUS",
    "ANY_SEVERE",
    "CADSS_THRESHOLD",
    "DBP_PEAK_THRESHOLD",
    "DBP_RISE_THRESHOLD",
    "INDUCTION_SESSIONS",
    "NOT_COLLECTED",
    "SBP_PEAK_THRESHOLD",
    "SBP_RISE_THRESHOLD",
    "adverse_event_table",
    "blood_pressure_table",
    "collection_status",
    "dissociation_table",
    "dose_summary",
]

#: Peak systolic / diastolic pressure (mmHg) counted as a hypertensive reading: grade 3
#: hypertension of the 2018 ESC/ESH guideline (SBP >= 180 and/or DBP >= 110; Williams B
#: et al. 2018, Eur Heart J 39:3021-3104), the level at which ketamine clinics commonly
#: stop or withhold a dose. **Convention**: no label defines a peak threshold.
SBP_PEAK_THRESHOLD = 180
DBP_PEAK_THRESHOLD = 110

#: Rise from before dosing to the peak (mmHg) reported in the esketamine (Spravato)
#: label, section 5.6: "an increase of greater than or equal to 40 mmHg in systolic BP
#: and/or 25 mmHg in diastolic BP in the first 1.5 hours after administration" (8-19%
#: of esketamine-treated patients at least once in 4 weeks).
SBP_RISE_THRESHOLD = 40
DBP_RISE_THRESHOLD = 25

#: CADSS total above which a session counts as having dissociative symptoms
#: (CADSS > 4, the cut-off of the esketamine phase 3 reports, e.g. Popova V et al. 2019,
#: Am J Psychiatry 176:428-438). **Convention**: no CADSS cut-off is validated for
#: ketamine (Williamson et al. 2023, Int J Neuropsychopharmacol 26:198-206).
CADSS_THRESHOLD = 4

#: Planned induction sessions per route. IV and IM: six sessions over 2-3 weeks
#: (Murrough JW et al. 2013, Biol Psychiatry 74:250-256); intranasal esketamine: twice a
#: week for weeks 1-4 (Spravato label). Sublingual and oral: **convention** (no standard
#: schedule; twice a week for 4 weeks, and every 2-3 days for 4 weeks). Override with the
#: program's own schedule.
INDUCTION_SESSIONS: Mapping[str, int] = {
    "iv": 6,
    "im": 6,
    "intranasal": 8,
    "sublingual": 8,
    "oral": 12,
}

#: Summary rows of :func:`adverse_event_table` (they cannot clash with a data term,
#: which has no spaces).
ANY_EVENT = "any adverse event"
ANY_SERIOUS = "any serious adverse event"
ANY_SEVERE = "any severe adverse event"

_ALL = "_all"  # stand-in grouping column for by=()


# --------------------------------------------------------------------------------------
# helpers


def _not_collected(cohort, table: str) -> bool:
    """True when the cohort says ``table`` was not supplied (see ``Cohort.is_collected``)."""
    is_collected = getattr(cohort, "is_collected", None)
    return is_collected is not None and not is_collected(table)


def _needs(table: str):
    """A table function returns no rows (``attrs["not_collected"]``) without ``table``.

    A missing adverse-events file is not "no adverse events": the result is empty, and
    the figure functions say :data:`NOT_COLLECTED` instead of drawing zeros.
    """

    def decorate(func):
        @functools.wraps(func)
        def wrapper(cohort, *args, **kwargs):
            result = func(cohort, *args, **kwargs)
            if _not_collected(cohort, table):
                result = result.iloc[0:0].copy()
                result.attrs["not_collected"] = table
            return result

        return wrapper

    return decorate


def collection_status(cohort) -> pd.DataFrame:
    """Which tables the data supplied: ``table, collected, rows, note``.

    Parameters
    ----------
    cohort : Cohort
        As loaded (:func:`analysis.schema.load_cohort` records the tables supplied).

    Returns
    -------
    DataFrame
        One row per table; ``note`` is :data:`NOT_COLLECTED` for a table that was not
        supplied (its sections show no numbers rather than zeros) and empty otherwise.

    Examples
    --------
    >>> from analysis.schema import Cohort
    >>> cohort = Cohort(pd.DataFrame({"patient_id": ["a"]}), pd.DataFrame({"patient_id": ["a"]}))
    >>> collection_status(cohort)[["table", "collected", "note"]]
                table  collected                           note
    0        patients       True
    1     assessments       True
    2        sessions      False  not collected in this data set
    3  adverse_events      False  not collected in this data set
    """
    rows = []
    for table in ("patients", "assessments", "sessions", "adverse_events"):
        missing = _not_collected(cohort, table)
        df = getattr(cohort, table)
        rows.append(
            (table, not missing, 0 if df is None else len(df), NOT_COLLECTED if missing else "")
        )
    return pd.DataFrame(rows, columns=["table", "collected", "rows", "note"])


def _patients(cohort, keys: list[str]) -> pd.DataFrame:
    """``patient_id`` and the ``keys`` of every treated patient (plus ``_all``)."""
    check_columns(cohort.patients, ["patient_id", *keys], "patients")
    return cohort.patients[["patient_id", *keys]].assign(**{_ALL: 0})


def _check_known(table: pd.DataFrame, known: pd.Series, name: str) -> None:
    unknown = ~table["patient_id"].isin(known)
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} row(s) of `{name}` refer to a patient_id that is not in "
            "`patients`; every row must belong to a treated patient (load the data with "
            "load_cohort, which checks this)."
        )


def _sessions(cohort, keys: list[str], needed: Sequence[str]) -> pd.DataFrame:
    """Session rows with the ``keys`` (from sessions, else patients) and ``_all``."""
    sessions = cohort.sessions
    if sessions is None or sessions.empty:
        present = [] if sessions is None else list(sessions.columns)
        sessions = pd.DataFrame(columns=list(dict.fromkeys(["patient_id", *needed, *present])))
    check_columns(sessions, ["patient_id", *needed], "sessions")
    from_patients = [k for k in keys if k not in sessions.columns]
    check_columns(cohort.patients, ["patient_id", *from_patients], "patients")
    _check_known(sessions, cohort.patients["patient_id"], "sessions")
    out = sessions.merge(
        cohort.patients[["patient_id", *from_patients]], on="patient_id", how="left"
    )
    return out.assign(**{_ALL: 0})


def _groups(frame: pd.DataFrame, keys: list[str]):
    """``(key dict, rows)`` per cell of ``keys`` (sorted, NA kept as a level)."""
    cols = keys or [_ALL]
    for key, rows in frame.groupby(cols, sort=True, dropna=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(keys, key if keys else (), strict=True)), rows


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else math.nan


def _quartiles(values: np.ndarray) -> tuple[float, float, float]:
    """Median, first and third quartile (linear interpolation, R type 7); NaN if empty."""
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan, math.nan
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return float(median), float(q1), float(q3)


def _mean_sd(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    mean = float(values.mean()) if len(values) else math.nan
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, sd


def _cluster_mean_ci(
    values: np.ndarray, clusters: np.ndarray, alpha: float
) -> tuple[float, float, float]:
    """Mean of ``values`` with a CI robust to correlation within ``clusters``.

    The CR1 sandwich variance of an intercept-only regression,
    ``G / (G - 1) * sum_g (sum_i in g (x_i - mean))^2 / N^2``, with a t quantile on
    ``G - 1`` df (what statsmodels' OLS with ``cov_type="cluster"`` gives). With one value
    per cluster it is the ordinary ``s / sqrt(n)`` t interval.
    """
    ok = ~np.isnan(values)
    x, g = values[ok], clusters[ok]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    sums = pd.Series(x - mean).groupby(g).sum().to_numpy()
    k = len(sums)
    if k < 2:
        return mean, math.nan, math.nan
    se = math.sqrt(k / (k - 1) * float(np.sum(sums**2))) / n
    half = float(stats.t.ppf(1 - alpha / 2, k - 1)) * se
    return mean, mean - half, mean + half


def _finish(
    rows: list[dict],
    keys: list[str],
    columns: list[str],
    counts: Mapping[str, str],
    min_cell: int | None,
    group_size: str,
    parts: Sequence[tuple[str, str, Sequence[str]]],
    within: Sequence[str] = (),
    decided: Mapping[str, set] | None = None,
) -> pd.DataFrame:
    """Tidy frame, counts as Int64, then the small-cell rule.

    ``decided``: per key column, the groups Table 1 hides
    (:func:`analysis.disclosure.hidden_levels`), hidden here too.

    ``group_size``: the column counting the patients a row describes (fewer than
    ``min_cell`` blanks every statistic). ``parts``: ``(count, total, derived)`` triples
    suppressed one by one, so a small count blanks only itself and what derives from it.
    ``within``: columns whose levels repeat the same patients (the ``measure`` of the
    blood-pressure rows); the margins of the groups are taken within each level.
    """
    out = pd.DataFrame(rows, columns=[*keys, *columns])
    for c in counts:
        out[c] = pd.to_numeric(out[c]).astype("Int64")
    out["suppressed"] = False
    if min_cell is None or out.empty:
        return out
    stats_columns = [
        c
        for c in columns
        if c not in (group_size, "suppressed")
        and (c in counts or pd.api.types.is_float_dtype(out[c].dtype))
    ]
    # The groups of a key (route, ...) add up to all patients: complementary suppression.
    margins = [[*m, *within] for m in partition_margins(keys)]
    out = suppress_cells(
        out,
        min_cell,
        (group_size,),
        total=None,
        derived=stats_columns,
        margins=margins,
        hidden=_decided_rows(out, decided),
    )
    for count, total, derived in parts:
        out = suppress_cells(out, min_cell, (count,), total=total, derived=list(derived))
    for c in counts:
        out[c] = pd.to_numeric(out[c]).astype("Int64")
    return out[[*keys, *columns]]


# --------------------------------------------------------------------------------------
# adverse events


def _decided(cohort, keys: Sequence[str], min_cell: int | None) -> dict[str, set]:
    """The groups of each key column that Table 1 hides (one decision, disclosure.py)."""
    return {
        k: hidden_levels(cohort.patients[k], min_cell) for k in keys if k in cohort.patients.columns
    }


def _decided_rows(out: pd.DataFrame, decided: Mapping[str, set] | None) -> np.ndarray:
    rows = np.zeros(len(out), dtype=bool)
    for k, levels in (decided or {}).items():
        if k in out.columns and levels:
            rows |= out[k].astype("string").isin(levels).fillna(False).to_numpy(dtype=bool)
    return rows


@_needs("adverse_events")
def adverse_event_table(
    cohort,
    by: str | Sequence[str] | None = "route",
    *,
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Patients with at least one adverse event, per term and group, with Wilson intervals.

    Parameters
    ----------
    cohort : Cohort
        ``patients`` (the denominator) and ``adverse_events`` (``patient_id, term`` and
        optionally ``serious``, ``severity``). A table supplied with no rows counts as no
        events; a table that was not supplied (``cohort.is_collected("adverse_events")``
        False, e.g. no file in the folder) gives an empty result marked
        ``attrs["not_collected"]``: it was not collected in this data set, which is not
        zero events. The same holds for ``sessions`` in the session tables.
    by : str, sequence of str or ()
        Columns of ``patients`` to group by (default ``"route"``); ``()`` for one overall
        group.
    alpha : float
        Two-sided error rate of the intervals (0.05 gives 95%).
    min_cell : int or None
        Small-cell rule (module docstring): ``patients``, ``n`` or ``n - patients`` in
        ``1 .. min_cell - 1`` blanks ``patients``, ``percent``, the interval and
        ``events``; ``n`` is blanked when under ``min_cell``.

    Returns
    -------
    DataFrame
        ``by..., term, n, patients, percent, ci_low, ci_high, events, suppressed``, one row
        per group and term: first ``"any adverse event"``, then ``"any serious adverse
        event"`` (when the table has a ``serious`` column) and ``"any severe adverse
        event"`` (when it has ``severity``), then every term of the data in alphabetical
        order (0 where a group has none). ``n``: treated patients of the group (rows of
        ``patients``); ``patients``: those with at least one event of the term;
        ``percent = 100 x patients / n`` with its Wilson score interval (``ci_low``,
        ``ci_high``, percent scale); ``events``: number of events (a patient may have
        several).

    Notes
    -----
    The denominator is every treated patient, whether or not they reported an event or
    stayed in treatment: the incidence proportion of a safety population (ICH E3
    section 12.2). Serious means ``serious == True``; severe means ``severity ==
    "severe"``. The Wilson interval is :func:`analysis.rates.proportion_ci`
    (statsmodels ``proportion_confint``).

    References
    ----------
    ICH E3 (1995). Structure and content of clinical study reports, section 12.2.
    Newcombe RG (1998). Two-sided confidence intervals for the single proportion:
    comparison of seven methods. Stat Med 17:857-872.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(40)],
    ...                          "route": ["iv"] * 20 + ["oral"] * 20})
    >>> events = pd.DataFrame({"patient_id": ["p0", "p0", "p1", "p25"],
    ...                        "study_day": [0, 3, 0, 7],
    ...                        "term": ["nausea", "nausea", "dizziness", "nausea"],
    ...                        "serious": [False, False, False, True]})
    >>> t = adverse_event_table(Cohort(patients, pd.DataFrame(), adverse_events=events))
    >>> t[["route", "term", "n", "patients", "percent", "ci_low", "events"]].round(2)
      route                       term   n  patients  percent  ci_low  events
    0    iv          any adverse event  20         2     10.0    2.79       3
    1    iv  any serious adverse event  20         0      0.0    0.00       0
    2    iv                  dizziness  20         1      5.0    0.89       1
    3    iv                     nausea  20         1      5.0    0.89       2
    4  oral          any adverse event  20         1      5.0    0.89       1
    5  oral  any serious adverse event  20         1      5.0    0.89       1
    6  oral                  dizziness  20         0      0.0    0.00       0
    7  oral                     nausea  20         1      5.0    0.89       1
    """
    keys = as_by(by)
    alpha = check_alpha(alpha)
    check_min_cell(min_cell)
    patients = _patients(cohort, keys)
    events = cohort.adverse_events
    if events is None or events.empty:
        events = pd.DataFrame(columns=["patient_id", "term"])
    check_columns(events, ["patient_id", "term"], "adverse_events")
    _check_known(events, patients["patient_id"], "adverse_events")
    events = events.merge(patients, on="patient_id", how="left")
    parts = [events.assign(term=ANY_EVENT)]
    summary_terms = [ANY_EVENT]
    if "serious" in events.columns:
        parts.append(events[events["serious"].fillna(False).astype(bool)].assign(term=ANY_SERIOUS))
        summary_terms.append(ANY_SERIOUS)
    if "severity" in events.columns:
        parts.append(events[events["severity"].eq("severe").fillna(False)].assign(term=ANY_SEVERE))
        summary_terms.append(ANY_SEVERE)
    terms = summary_terms + sorted(events["term"].dropna().astype(str).unique())
    long = pd.concat([events, *parts[1:], parts[0]], ignore_index=True)
    long["term"] = long["term"].astype(str)

    rows = []
    for key, group in _groups(patients, keys):
        n = len(group)
        mine = long[long["patient_id"].isin(group["patient_id"])]
        per_term = mine.groupby("term")
        n_patients = per_term["patient_id"].nunique()
        n_events = per_term.size()
        for term in terms:
            rows.append(
                {
                    **key,
                    "term": term,
                    "n": n,
                    "patients": int(n_patients.get(term, 0)),
                    "events": int(n_events.get(term, 0)),
                }
            )
    out = pd.DataFrame(rows, columns=[*keys, "term", "n", "patients", "events"])
    x, m = out["patients"].to_numpy(dtype=float), out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["percent"] = np.where(m > 0, 100 * x / np.where(m > 0, m, 1), np.nan)
    low, high = proportion_ci(x, m, "wilson", alpha)
    out["ci_low"], out["ci_high"] = 100 * low, 100 * high
    for c in ("n", "patients", "events"):
        out[c] = out[c].astype("Int64")
    out["suppressed"] = False
    if min_cell is not None:
        out = suppress_cells(
            out,
            min_cell,
            ("patients",),
            total="n",
            derived=("percent", "ci_low", "ci_high", "events"),
            margins=[[*m, "term"] for m in partition_margins(keys)],
            hidden=_decided_rows(out, _decided(cohort, keys, min_cell)),
        )
        out["events"] = out["events"].astype("Int64")
    return out[[*keys, *_AE_COLUMNS]].reset_index(drop=True)


# --------------------------------------------------------------------------------------
# blood pressure


@_needs("sessions")
def blood_pressure_table(
    cohort,
    by: str | Sequence[str] | None = "route",
    *,
    sbp_peak: float = SBP_PEAK_THRESHOLD,
    dbp_peak: float = DBP_PEAK_THRESHOLD,
    sbp_rise: float = SBP_RISE_THRESHOLD,
    dbp_rise: float = DBP_RISE_THRESHOLD,
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Blood pressure before dosing and at the peak, per session: change and high readings.

    Parameters
    ----------
    cohort : Cohort
        ``sessions`` with ``patient_id, sbp_pre, dbp_pre, sbp_peak, dbp_peak``.
    by : str, sequence of str or ()
        Columns of ``sessions`` (``route``, ``phase``, ``session_number``) or of
        ``patients``; ``()`` for one overall group.
    sbp_peak, dbp_peak : float
        A peak at or above these (mmHg) is a hypertensive reading; default 180 / 110
        (:data:`SBP_PEAK_THRESHOLD`, a **convention**: grade 3 hypertension, ESC/ESH 2018).
    sbp_rise, dbp_rise : float
        A rise from before dosing to the peak at or above these (mmHg) is a large rise;
        default 40 / 25 (:data:`SBP_RISE_THRESHOLD`, esketamine label section 5.6).
    alpha : float
        Two-sided error rate of the interval of the mean change.
    min_cell : int or None
        Small-cell rule (module docstring): a row describing fewer than ``min_cell``
        patients is blanked; a number of sessions over a threshold (or its complement in
        ``n_sessions``) under ``min_cell`` is blanked with its percentage.

    Returns
    -------
    DataFrame
        ``by..., measure, n_patients, n_sessions, pre_mean, peak_mean, change_mean,
        change_sd, change_ci_low, change_ci_high, peak_criterion, n_peak_over,
        pct_peak_over, rise_criterion, n_rise_over, pct_rise_over, suppressed``: three
        rows per group, ``measure`` ``"sbp"``, ``"dbp"`` and ``"sbp_or_dbp"``. For
        ``sbp``/``dbp``: the sessions with both readings of that pressure
        (``n_sessions``, from ``n_patients`` patients), mean before and at the peak, the
        mean and SD of the change (peak - pre) and the interval of the mean change; the
        sessions whose peak reaches the threshold and whose rise does. For
        ``sbp_or_dbp``: sessions with all four readings, counted when the systolic *or*
        the diastolic criterion is met (the means are NaN). The criteria are spelled out
        in ``peak_criterion`` and ``rise_criterion``.

    Notes
    -----
    Every session with readings counts, completed or not (a session stopped for a high
    pressure is exactly what the table is for). The interval of the mean change is a t
    interval with a cluster-robust (CR1) standard error by patient, because sessions of
    one patient are correlated; with one session per patient it is the ordinary
    ``mean +- t(n-1) s / sqrt(n)``. Ketamine raises SBP and DBP by about 10 mmHg at
    0.5 mg/kg (Glue et al. 2018); the esketamine label asks for blood pressure before
    and about 40 minutes after dosing, when the rise peaks.

    References
    ----------
    Glue P et al. (2018). Ketamine's dose-related effects on anxiety symptoms in patients
    with treatment refractory anxiety disorders. J Psychopharmacol 32:663-667.
    SPRAVATO (esketamine) nasal spray, US prescribing information, section 5.6.
    Williams B et al. (2018). 2018 ESC/ESH Guidelines for the management of arterial
    hypertension. Eur Heart J 39:3021-3104.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b", "c"], "route": "iv"})
    >>> sessions = pd.DataFrame({
    ...     "patient_id": ["a", "b", "c"], "session_number": 1, "route": "iv",
    ...     "sbp_pre": [120, 130, 140], "sbp_peak": [130, 150, 185],
    ...     "dbp_pre": [80, 80, 90], "dbp_peak": [85, 90, 112]})
    >>> t = blood_pressure_table(Cohort(patients, pd.DataFrame(), sessions))
    >>> t[["measure", "n_sessions", "change_mean", "change_sd", "n_peak_over"]].round(2)
          measure  n_sessions  change_mean  change_sd  n_peak_over
    0         sbp           3        25.00      18.03            1
    1         dbp           3        12.33       8.74            1
    2  sbp_or_dbp           3          NaN        NaN            1
    >>> t.loc[2, "peak_criterion"]
    'SBP >= 180 or DBP >= 110 mmHg'
    """
    keys = as_by(by)
    alpha = check_alpha(alpha)
    check_min_cell(min_cell)
    readings = ["sbp_pre", "dbp_pre", "sbp_peak", "dbp_peak"]
    sessions = _sessions(cohort, keys, readings)
    values = {c: to_float_array(sessions[c]) for c in readings}
    ids = sessions["patient_id"].to_numpy()
    criteria = {
        "sbp": (f"SBP >= {sbp_peak:g} mmHg", f"SBP rise >= {sbp_rise:g} mmHg"),
        "dbp": (f"DBP >= {dbp_peak:g} mmHg", f"DBP rise >= {dbp_rise:g} mmHg"),
        "sbp_or_dbp": (
            f"SBP >= {sbp_peak:g} or DBP >= {dbp_peak:g} mmHg",
            f"SBP rise >= {sbp_rise:g} or DBP rise >= {dbp_rise:g} mmHg",
        ),
    }
    with np.errstate(invalid="ignore"):
        high = {
            "sbp": values["sbp_peak"] >= sbp_peak,
            "dbp": values["dbp_peak"] >= dbp_peak,
        }
        rise = {
            "sbp": values["sbp_peak"] - values["sbp_pre"] >= sbp_rise,
            "dbp": values["dbp_peak"] - values["dbp_pre"] >= dbp_rise,
        }
    rows = []
    for key, group in _groups(sessions.reset_index(drop=True), keys):
        idx = group.index.to_numpy()
        for measure in ("sbp", "dbp", "sbp_or_dbp"):
            if measure == "sbp_or_dbp":
                ok = np.all([~np.isnan(values[c][idx]) for c in readings], axis=0)
                over_peak = (high["sbp"] | high["dbp"])[idx][ok]
                over_rise = (rise["sbp"] | rise["dbp"])[idx][ok]
                pre = peak = np.array([])
                change_mean = change_low = change_high = change_sd = math.nan
                pre_mean = peak_mean = math.nan
            else:
                pre, peak = values[f"{measure}_pre"][idx], values[f"{measure}_peak"][idx]
                ok = ~np.isnan(pre) & ~np.isnan(peak)
                pre, peak = pre[ok], peak[ok]
                change = peak - pre
                change_mean, change_low, change_high = _cluster_mean_ci(change, ids[idx][ok], alpha)
                change_sd = _mean_sd(change)[1]
                pre_mean, peak_mean = _mean_sd(pre)[0], _mean_sd(peak)[0]
                over_peak, over_rise = high[measure][idx][ok], rise[measure][idx][ok]
            n_sessions = int(ok.sum())
            rows.append(
                {
                    **key,
                    "measure": measure,
                    "n_patients": len(set(ids[idx][ok])),
                    "n_sessions": n_sessions,
                    "pre_mean": pre_mean,
                    "peak_mean": peak_mean,
                    "change_mean": change_mean,
                    "change_sd": change_sd,
                    "change_ci_low": change_low,
                    "change_ci_high": change_high,
                    "peak_criterion": criteria[measure][0],
                    "n_peak_over": int(over_peak.sum()),
                    "pct_peak_over": _pct(over_peak.sum(), n_sessions),
                    "rise_criterion": criteria[measure][1],
                    "n_rise_over": int(over_rise.sum()),
                    "pct_rise_over": _pct(over_rise.sum(), n_sessions),
                }
            )
    counts = {c: c for c in ("n_patients", "n_sessions", "n_peak_over", "n_rise_over")}
    parts = [
        ("n_peak_over", "n_sessions", ["pct_peak_over"]),
        ("n_rise_over", "n_sessions", ["pct_rise_over"]),
    ]
    decided = _decided(cohort, keys, min_cell)
    return _finish(
        rows, keys, _BP_COLUMNS, counts, min_cell, "n_patients", parts, ("measure",), decided
    )


# --------------------------------------------------------------------------------------
# dissociation


@_needs("sessions")
def dissociation_table(
    cohort,
    by: str | Sequence[str] | None = "route",
    *,
    threshold: float = CADSS_THRESHOLD,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """CADSS total per session: distribution and the share of sessions above a cut-off.

    Parameters
    ----------
    cohort : Cohort
        ``sessions`` with ``patient_id, cadss_total``.
    by : str, sequence of str or ()
        Columns of ``sessions`` (``route``, ``phase``, ``session_number``: e.g.
        ``("route", "session_number")`` shows tolerance over repeated sessions) or of
        ``patients``; ``()`` for one overall group.
    threshold : float
        A session with ``cadss_total > threshold`` counts as dissociative; default 4
        (:data:`CADSS_THRESHOLD`, the esketamine trials' cut-off; a **convention**).
    min_cell : int or None
        Small-cell rule (module docstring): a row describing fewer than ``min_cell``
        patients is blanked; ``n_over`` (or ``n_sessions - n_over``) under ``min_cell``
        is blanked with ``pct_over``.

    Returns
    -------
    DataFrame
        ``by..., n_patients, n_sessions, mean, sd, median, q1, q3, criterion, n_over,
        pct_over, suppressed``: sessions with a CADSS total (``n_sessions``, from
        ``n_patients`` patients), mean, SD (n - 1), median and quartiles (linear
        interpolation, R type 7), and the sessions above the threshold (``criterion``
        spells it out) with their percentage.

    Notes
    -----
    The Clinician-Administered Dissociative States Scale has 23 items scored 0-4 (total
    0-92; Bremner et al. 1998). Dissociation peaks about 40 minutes after dosing and
    wanes with repeated sessions; the esketamine label reports dissociative or perceptual
    changes on the CADSS in 61-75% of patients. The percentage is per session, not per
    patient, and has no binomial interval because sessions of a patient are correlated.

    References
    ----------
    Bremner JD et al. (1998). Measurement of dissociative states with the
    Clinician-Administered Dissociative States Scale (CADSS). J Trauma Stress 11:125-136.
    SPRAVATO (esketamine) nasal spray, US prescribing information, section 5.2.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b"], "route": "iv"})
    >>> sessions = pd.DataFrame({"patient_id": ["a", "a", "b", "b"],
    ...                          "session_number": [1, 2, 1, 2], "route": "iv",
    ...                          "cadss_total": [12, 4, 20, 2]})
    >>> t = dissociation_table(Cohort(patients, pd.DataFrame(), sessions))
    >>> t[["route", "n_sessions", "mean", "median", "q1", "q3", "n_over", "pct_over"]]
      route  n_sessions  mean  median   q1    q3  n_over  pct_over
    0    iv           4   9.5     8.0  3.5  14.0       2      50.0
    """
    keys = as_by(by)
    check_min_cell(min_cell)
    sessions = _sessions(cohort, keys, ["cadss_total"])
    rows = []
    for key, group in _groups(sessions, keys):
        x = to_float_array(group["cadss_total"])
        ok = ~np.isnan(x)
        x = x[ok]
        mean, sd = _mean_sd(x)
        median, q1, q3 = _quartiles(x)
        n_over = int((x > threshold).sum())
        rows.append(
            {
                **key,
                "n_patients": group.loc[ok, "patient_id"].nunique(),
                "n_sessions": len(x),
                "mean": mean,
                "sd": sd,
                "median": median,
                "q1": q1,
                "q3": q3,
                "criterion": f"CADSS > {threshold:g}",
                "n_over": n_over,
                "pct_over": _pct(n_over, len(x)),
            }
        )
    counts = {c: c for c in ("n_patients", "n_sessions", "n_over")}
    parts = [("n_over", "n_sessions", ["pct_over"])]
    decided = _decided(cohort, keys, min_cell)
    return _finish(rows, keys, _CADSS_COLUMNS, counts, min_cell, "n_patients", parts, (), decided)


# --------------------------------------------------------------------------------------
# dosing


@_needs("sessions")
def dose_summary(
    cohort,
    by: str | Sequence[str] | None = "route",
    *,
    induction_sessions: Mapping[str, int] | None = None,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Exposure: sessions per patient, induction completion, maintenance and doses.

    Parameters
    ----------
    cohort : Cohort
        ``patients`` (with ``route``) and ``sessions`` (``patient_id`` and optionally
        ``phase``, ``completed``, ``dose_mg``, ``dose_mg_per_kg``).
    by : str, sequence of str or ()
        Columns of ``patients`` (default ``"route"``); ``()`` for one overall group.
    induction_sessions : mapping of route to int, optional
        Planned induction sessions per route; default :data:`INDUCTION_SESSIONS` (IV and
        IM 6, intranasal 8, sublingual 8, oral 12).
    min_cell : int or None
        Small-cell rule (module docstring): a group of fewer than ``min_cell`` patients is
        blanked; ``induction_completed`` and ``maintenance_patients`` (or their
        complements) under ``min_cell`` are blanked with their percentages.

    Returns
    -------
    DataFrame
        One row per group: ``by..., n_patients, sessions, sessions_per_patient_mean,
        sessions_per_patient_sd, sessions_per_patient_median, sessions_per_patient_q1,
        sessions_per_patient_q3, pct_sessions_completed, induction_n,
        induction_completed, pct_induction_completed, maintenance_patients,
        pct_maintenance, dose_mg_median, dose_mg_q1, dose_mg_q3, dose_mg_per_kg_median,
        dose_mg_per_kg_q1, dose_mg_per_kg_q3, suppressed``.

        - ``n_patients``: treated patients of the group (rows of ``patients``);
          ``sessions``: their sessions; sessions per patient over every treated patient
          (0 for one without a session row).
        - ``pct_sessions_completed``: sessions not marked ``completed == False`` (NA
          counts as completed: the session was held and nothing says it was stopped).
        - ``induction_n``: patients whose route has a planned number of induction
          sessions; ``induction_completed``: those with at least that many held
          induction sessions (``phase == "induction"``, not ``completed == False``).
        - ``maintenance_patients``: patients with a ``maintenance`` session.
        - Doses: median and quartiles over sessions (R type 7) of ``dose_mg`` and
          ``dose_mg_per_kg`` (NaN when not recorded, e.g. fixed-dose esketamine).

    Notes
    -----
    Doses are only comparable within a route (intranasal esketamine is dosed in mg,
    IV/IM ketamine per kg, oral and sublingual with low bioavailability), so the default
    ``by`` is the route. Minimum and maximum are not shown: they are single patients'
    values.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b", "c"], "route": "iv"})
    >>> sessions = pd.DataFrame({
    ...     "patient_id": ["a"] * 7 + ["b"] * 3,
    ...     "session_number": [1, 2, 3, 4, 5, 6, 7, 1, 2, 3],
    ...     "phase": ["induction"] * 6 + ["maintenance"] + ["induction"] * 3,
    ...     "completed": [True] * 9 + [False],
    ...     "dose_mg_per_kg": [0.5] * 10})
    >>> t = dose_summary(Cohort(patients, pd.DataFrame(), sessions))
    >>> t[["n_patients", "sessions", "sessions_per_patient_median", "induction_completed"]]
       n_patients  sessions  sessions_per_patient_median  induction_completed
    0           3        10                          3.0                    1
    >>> t[["maintenance_patients", "pct_sessions_completed"]]
       maintenance_patients  pct_sessions_completed
    0                     1                    90.0
    """
    keys = as_by(by)
    check_min_cell(min_cell)
    plan = INDUCTION_SESSIONS if induction_sessions is None else induction_sessions
    patients = _patients(cohort, keys)
    if "route" in cohort.patients.columns:
        patients = patients.assign(_route=cohort.patients["route"].to_numpy())
    else:
        patients = patients.assign(_route=pd.Series(pd.NA, index=patients.index, dtype=object))
    sessions = _sessions(cohort, [], [])
    held = (
        ~sessions["completed"].eq(False).fillna(False).astype(bool)
        if "completed" in sessions.columns
        else pd.Series(True, index=sessions.index)
    )
    phase = sessions["phase"] if "phase" in sessions.columns else pd.Series(pd.NA, sessions.index)
    per_patient = sessions.groupby("patient_id").size()
    induction_held = (
        sessions[held & phase.eq("induction").fillna(False)].groupby("patient_id").size()
    )
    maintenance = set(sessions.loc[phase.eq("maintenance").fillna(False), "patient_id"])
    patients = patients.assign(
        _sessions=patients["patient_id"].map(per_patient).fillna(0).astype(float),
        _planned=patients["_route"]
        .map(lambda r: plan.get(r, math.nan) if pd.notna(r) else math.nan)
        .astype(float),
        _induction=patients["patient_id"].map(induction_held).fillna(0).astype(float),
        _maintenance=patients["patient_id"].isin(maintenance),
    )
    sessions = sessions.assign(_held=held.to_numpy())
    rows = []
    for key, group in _groups(patients, keys):
        mine = sessions[sessions["patient_id"].isin(group["patient_id"])]
        count = group["_sessions"].to_numpy()
        mean, sd = _mean_sd(count)
        median, q1, q3 = _quartiles(count)
        planned = group["_planned"].notna()
        completed = int((group["_induction"] >= group["_planned"])[planned].sum())
        n = len(group)
        dose = {}
        for column in ("dose_mg", "dose_mg_per_kg"):
            values = to_float_array(mine[column]) if column in mine.columns else np.array([])
            dose[f"{column}_median"], dose[f"{column}_q1"], dose[f"{column}_q3"] = _quartiles(
                values
            )
        rows.append(
            {
                **key,
                "n_patients": n,
                "sessions": len(mine),
                "sessions_per_patient_mean": mean,
                "sessions_per_patient_sd": sd,
                "sessions_per_patient_median": median,
                "sessions_per_patient_q1": q1,
                "sessions_per_patient_q3": q3,
                "pct_sessions_completed": _pct(mine["_held"].sum(), len(mine)),
                "induction_n": int(planned.sum()),
                "induction_completed": completed,
                "pct_induction_completed": _pct(completed, planned.sum()),
                "maintenance_patients": int(group["_maintenance"].sum()),
                "pct_maintenance": _pct(group["_maintenance"].sum(), n),
                **dose,
            }
        )
    counts = {c: c for c in ("n_patients", "sessions", "induction_n", "induction_completed")}
    counts["maintenance_patients"] = "maintenance_patients"
    parts = [
        ("induction_completed", "induction_n", ["pct_induction_completed"]),
        ("maintenance_patients", "n_patients", ["pct_maintenance"]),
    ]
    decided = _decided(cohort, keys, min_cell)
    return _finish(rows, keys, _DOSE_COLUMNS, counts, min_cell, "n_patients", parts, (), decided)


# --------------------------------------------------------------------------------------
# figures: moved to analysis.plots (the old names still work, with a DeprecationWarning)

_MOVED_TO_PLOTS = ("plot_adverse_events", "plot_blood_pressure", "plot_dissociation")


def __getattr__(name: str):
    if name in _MOVED_TO_PLOTS:
        import warnings

        from analysis import plots

        warnings.warn(
            f"analysis.safety.{name} has moved to analysis.plots.{name}; import it from "
            "there (the old name will be removed).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
