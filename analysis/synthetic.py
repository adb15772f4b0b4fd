"""Synthetic ketamine-program cohort: the embedded demo and benchmark data.

:func:`synthetic_cohort` draws a de-identified cohort in the four tables of the data model
(``patients``, ``assessments``, ``sessions``, ``adverse_events``) from the generative model
below. It is the data behind the notebooks when no clinic export is given, the input of the
benchmarks, and a test bed: every case the endpoint accounting distinguishes occurs in it
(a baseline screening plus a day-0 rating, missed visits, extra ratings in a window, ratings
outside every window, prorated rows, rows scored from the recorded total, patients without
a baseline). Everything is vectorised with numpy (one ``np.random.default_rng(seed)``
stream), so 100,000 patients take seconds; the same seed always gives the same tables.

The data are invented. Parameters are set so that the summary numbers look like the
published open-label ketamine reports (anchors in brackets; see ``docs/references.md``), not
to reproduce any one study.

Generative model
----------------
Design
    Open-label, real-world program: every patient is treated with ketamine
    (``arm == "ketamine"``); there is no control arm. Comparisons are demonstrated between
    routes, treatment-resistant vs not, or with vs without psychotherapy.
Patients
    ``P000001``... pseudonymous ids, 8 sites ``S01``-``S08`` of unequal size, enrolled
    2019-2024. Age normal(42, 13) rounded, limited to 18-90 (90 = "90 or older").
    Sex 57% female, 40% male, 1.5% other, 1.5% unknown. Primary diagnosis GAD 45%,
    MIXED 20%, SAD 12%, PTSD 12%, PD 7%, OTHER 4%. Comorbid depression 60%. Prior
    treatments negative binomial (mean about 3, 3% missing); treatment resistant (at least
    two failed adequate treatments) for 80% of those with two or more. Substance use
    history 15% (2% missing), concurrent psychotherapy 40%. Route: IV 45%, IM 15%,
    intranasal esketamine 15%, sublingual 15%, oral 10%.
Sessions (one row per administration, day 0 is session 1)
    Induction: IV and IM 6 sessions spread over 11-18 days; intranasal esketamine twice a
    week in weeks 1-4 (8 sessions; Spravato label); sublingual at home twice a week for 4
    weeks (8); oral at home every 2-3 days for 4 weeks (12). Maintenance (phase
    ``maintenance``) for about half of the patients (55% of responders, 30% of the others,
    75% with esketamine): a session every 2, 3 or 4 weeks (esketamine every 1 or 2 weeks)
    until week 12.
    Doses: IV 0.5 mg/kg over 40 min for most (0.6-1.0 for some), IM 0.5-1 mg/kg
    (``dose_mg`` from a body weight of about 78 kg, SD 17); esketamine 56 mg on day 0 then
    56 or 84 mg (``dose_mg_per_kg`` empty); sublingual 200-450 mg, oral 50-200 mg.
    Blood pressure before dosing: patient mean normal(125 + 0.3 (age - 42), 12) /
    normal(80, 8) mmHg, session noise SD 6/5; rise to the peak about +10/+8 mmHg after
    IV 0.5 mg/kg, more with dose and IM, less with oral and sublingual [Glue 2017, 2018].
    CADSS (0-92) log-normal around 12 after IV, 10 after esketamine, 14 after IM,
    3 after oral/sublingual, higher with dose and lower with each repeated session, so most
    values are low but a quarter to a half of clinic sessions reach 10+ [esketamine label:
    dissociation common]. At-home oral and sublingual sessions record blood pressure and
    CADSS only for the first, supervised, dose. 1.5% of sessions are not completed (more
    when the peak SBP reaches 180).
Outcomes (GAD-7 and HAM-A)
    Each patient has a latent baseline severity (GAD-7 normal(15, 4.2) limited to 3-21;
    HAM-A normal(23.5, 5) limited to 6-56, correlated 0.6 with the GAD-7) and belongs to a
    responder class: probability about 0.8 overall; on the logit scale -0.4 per SD of baseline
    severity, -0.4 treatment resistant, -0.1 comorbid depression, -0.2 PTSD, -0.1 SAD,
    -0.1 substance use, +0.3 psychotherapy, route -0.3 (oral) to +0.05 (IM), +0.4 per log
    of the dose relative to the route's usual dose. The fraction of symptoms removed at the
    plateau is beta-distributed (responders mean 0.62, SD 0.15; non-responders mean 0.01,
    a few slightly worse) and reached quickly: ``gain (1 - exp(-(t + 0.5) / tau))`` with
    ``tau`` about 3 days (5 orally), so about a third of it on day 1. Without maintenance a
    patient loses on average 35% of the gain between weeks 4 and 12 (with maintenance 8%).
    A rating adds error (GAD-7 SD 1.8, about the test-retest ICC of 0.83 of Spitzer 2006;
    HAM-A SD 2.5) and, once treatment has started, week-to-week fluctuation of the state
    (SD 1.8 and 3.0); SIGH-A sites (S03, S07) rate the HAM-A 3 points higher [Shear 2001].
    Item scores sum exactly to the total and share a stable patient-level profile
    (Cronbach's alpha about 0.85-0.89 at baseline for both scales). With these values the
    GAD-7 week-4 response is about 60%, remission about 32% and the within-patient d_av
    about 1.6 [Hull 2022: 62.9%, 31.3%, d = 1.56; Hietamies 2023: d = -1.17].
Assessments
    Baseline: 55% have a screening visit (day -14 to -1; 3% of them earlier, outside the
    baseline window) with GAD-7 and HAM-A; a day-0 pre-dose GAD-7 for 70% of those and 97%
    of the others (HAM-A on day 0 for 90% of those not screened), so a few patients have no
    baseline. Follow-up GAD-7 on day 1 and weeks 1, 2, 4, 8, 12, HAM-A at weeks 1-12, on
    days jittered inside the visit windows (slightly late on average); each visit is
    missed with probability 0.08-0.15 (HAM-A more often, and much more for at-home routes),
    and nothing is recorded on or after the drop-out day (exponential, about 8% by week 4
    and 22% by week 12, faster for non-responders). 3% of patients have an extra GAD-7 in
    the week-2 window, 2% one after day 111 (outside every window). GAD-7 is self-reported;
    HAM-A is rated by one of four pseudonymous raters of the site. 2% of ratings miss up to
    ``max_missing_items`` items with the total left empty (to be prorated); 0.5% miss more
    items but carry the total the site recorded; 3% of complete ratings have no total
    entered. No row is unscorable: the schema rejects a row without a total or enough
    items to score.
Adverse events (one row per event, on the session day)
    Per session, falling by 15% with each repeated session (tolerance): nausea (IV 8%,
    IM 10%, esketamine 8%, at home 5-6%), vomiting (a quarter of nausea), dizziness,
    sedation, headache, anxiety increase; dissociation reported for 80% of sessions with
    CADSS >= 25, otherwise 1-4% per session; elevated blood pressure for half the sessions
    whose peak reaches 170/105. Severity mostly mild (dissociation and blood pressure graded
    by magnitude); serious rare (about 0.4% of events); related to ketamine 90% (headache
    and anxiety increase 70%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.cohort import Cohort
from analysis.instruments import GAD7, HAMA, MAX_ITEMS, Instrument

__all__ = ["synthetic_cohort"]

SITES = tuple(f"S{k:02d}" for k in range(1, 9))
_SITE_P = (0.20, 0.16, 0.14, 0.12, 0.12, 0.10, 0.08, 0.08)
_SIGH_A_SITES = ("S03", "S07")
_RATERS_PER_SITE = 4

ROUTES = ("iv", "im", "intranasal", "sublingual", "oral")
_ROUTE_P = (0.45, 0.15, 0.15, 0.15, 0.10)
_AT_HOME = ("sublingual", "oral")

_DIAGNOSES = ("GAD", "MIXED", "SAD", "PTSD", "PD", "OTHER")
_DIAGNOSIS_P = (0.45, 0.20, 0.12, 0.12, 0.07, 0.04)
_SEXES = ("female", "male", "other", "unknown")
_SEX_P = (0.57, 0.40, 0.015, 0.015)
_YEARS = np.arange(2019, 2025)
_YEAR_P = (0.08, 0.12, 0.16, 0.19, 0.22, 0.23)

# Induction session days (before jitter) by route; IV/IM use a 2-3 week spread instead.
_INDUCTION = {
    "intranasal": (0, 3, 7, 10, 14, 17, 21, 24),  # twice weekly, weeks 1-4 (Spravato label)
    "sublingual": (0, 3, 7, 10, 14, 17, 21, 24),
    "oral": tuple(round(2.35 * k) for k in range(12)),  # every 2-3 days, at home
}
_IV_IM_SESSIONS = 6
_MAX_INDUCTION = max(_IV_IM_SESSIONS, *(len(v) for v in _INDUCTION.values()))
_LAST_MAINTENANCE_DAY = 84  # maintenance to week 12
_MAX_MAINTENANCE = _LAST_MAINTENANCE_DAY // 7

# Per-route parameters: efficacy shift (logit), CADSS log-median, SBP rise (mmHg) at the
# standard dose, nausea per session, dissociation AE per session when CADSS is not recorded.
_ROUTE_LOGIT = {"iv": 0.0, "im": 0.05, "intranasal": -0.15, "sublingual": -0.1, "oral": -0.3}
_ROUTE_CADSS = {"iv": 12.0, "im": 14.0, "intranasal": 10.0, "sublingual": 3.0, "oral": 3.0}
_ROUTE_SBP_RISE = {"iv": 10.0, "im": 12.0, "intranasal": 9.0, "sublingual": 5.0, "oral": 4.0}
_ROUTE_NAUSEA = {"iv": 0.08, "im": 0.10, "intranasal": 0.08, "sublingual": 0.06, "oral": 0.05}
_ROUTE_DISSOCIATION = {"iv": 0.04, "im": 0.04, "intranasal": 0.04, "sublingual": 0.02, "oral": 0.01}

# Visit schedule used to place the ratings: (visit, target day, first day, last day, SD of
# the jitter in days, probability the GAD-7 is missed).
_VISITS = (
    ("day1", 1, 1, 3, 0.0, 0.15),
    ("week1", 7, 4, 10, 1.2, 0.08),
    ("week2", 14, 11, 20, 1.8, 0.08),
    ("week4", 28, 21, 41, 3.0, 0.08),
    ("week8", 56, 42, 69, 4.5, 0.12),
    ("week12", 84, 70, 111, 6.0, 0.15),
)

# Item "difficulty" on the log-weight scale: how the total tends to split over the items.
_GAD7_ITEM_LOGW = np.array([0.15, 0.10, 0.15, 0.10, -0.25, -0.05, -0.20])
_HAMA_ITEM_LOGW = np.array(
    [0.40, 0.35, 0.0, 0.20, 0.10, 0.15, 0.0, -0.20, -0.20, -0.30, -0.20, -0.60, -0.10, 0.10]
)
# Per scale: SD of the rating error (GAD-7 from a test-retest ICC of about 0.83, Spitzer
# 2006), SD of the fluctuation of the state once treatment has started, item log-weights.
_SCALE_NOISE = {"GAD7": (1.8, 1.8, _GAD7_ITEM_LOGW), "HAMA": (2.5, 3.0, _HAMA_ITEM_LOGW)}
_SIGH_A_SHIFT = 3.0  # SIGH-A rates higher than the unstructured HAM-A (Shear et al. 2001)

_AE_TERMS = (
    "nausea",
    "vomiting",
    "dizziness",
    "dissociation",
    "sedation",
    "headache",
    "elevated_blood_pressure",
    "anxiety_increase",
)


def synthetic_cohort(n_patients: int = 500, seed: int = 0) -> Cohort:
    """Draw a synthetic, de-identified cohort of a ketamine treatment program.

    The generative model (schedules, doses, blood pressure, dissociation, GAD-7 and HAM-A
    trajectories, missing data, adverse events) and its literature anchors are described in
    the module docstring of :mod:`analysis.synthetic`.

    Parameters
    ----------
    n_patients : int, default 500
        Number of treated patients (at least 1).
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives the same tables.

    Returns
    -------
    Cohort
        ``patients`` (one row per patient), ``assessments`` (GAD-7 and HAM-A ratings, items
        ``item_1`` ... ``item_14``), ``sessions`` and ``adverse_events``, typed with pandas
        nullable dtypes (``string``, ``Int64``, ``Float64``, ``boolean``) as the schema
        expects and the schema column order. Rows are sorted by patient, then instrument
        and study day (assessments) or session (sessions, adverse events).

    Raises
    ------
    ValueError
        If ``n_patients`` is less than 1.
    TypeError
        If ``n_patients`` is not an integer.

    Notes
    -----
    Calibrated so that the GAD-7 week-4 response (a reduction of at least 50% from the
    baseline) is about 60%, remission (GAD-7 <= 4) about 32% and the within-patient
    standardized change (d_av) about 1.6, close to the at-home sublingual program of Hull
    et al. (2022). The data are invented and only for demonstrations, tests and benchmarks.

    References
    ----------
    Hull TD et al. (2022). At-home, sublingual ketamine telehealth is a safe and effective
    treatment for moderate to severe anxiety and depression. J Affect Disord 314:59-67.

    Glue P et al. (2018). Ketamine's dose-related effects on anxiety symptoms in patients
    with treatment refractory anxiety disorders. J Psychopharmacol 32:663-667.

    Examples
    --------
    >>> cohort = synthetic_cohort(n_patients=5, seed=1)
    >>> cohort.patients.shape
    (5, 13)
    >>> cohort.patients["patient_id"].tolist()
    ['P000001', 'P000002', 'P000003', 'P000004', 'P000005']
    >>> sorted(cohort.assessments["instrument"].unique())
    ['GAD7', 'HAMA']
    >>> bool(cohort.sessions.groupby("patient_id")["study_day"].min().eq(0).all())
    True
    >>> str(cohort.assessments["total"].dtype), str(cohort.sessions["dose_mg"].dtype)
    ('Int64', 'Float64')
    """
    if isinstance(n_patients, bool) or not isinstance(n_patients, int | np.integer):
        raise TypeError(
            f"`n_patients` must be an integer, but {type(n_patients).__name__} was passed."
        )
    if n_patients < 1:
        raise ValueError(
            f"`n_patients` must be at least 1, but {n_patients} was passed. "
            "Ask for one or more patients."
        )
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    pat = _draw_patients(rng, n)
    sessions, session_arrays = _draw_sessions(rng, pat)
    assessments = _draw_assessments(rng, pat)
    adverse_events = _draw_adverse_events(rng, pat, session_arrays)
    return Cohort(
        patients=_patients_frame(pat),
        assessments=assessments,
        sessions=sessions,
        adverse_events=adverse_events,
    )


# --------------------------------------------------------------------------------------
# Patients and their latent characteristics


def _draw_patients(rng: np.random.Generator, n: int) -> dict:
    """Observed covariates and the latent outcome parameters of each patient."""
    p: dict = {"n": n}
    p["site"] = rng.choice(len(SITES), size=n, p=_SITE_P)
    p["age"] = np.clip(np.rint(rng.normal(42, 13, n)), 18, 90).astype(np.int64)
    p["sex"] = rng.choice(len(_SEXES), size=n, p=_SEX_P)
    p["diagnosis"] = rng.choice(len(_DIAGNOSES), size=n, p=_DIAGNOSIS_P)
    p["depression"] = rng.random(n) < 0.60
    p["prior"] = rng.negative_binomial(3, 0.5, n)  # mean 3
    p["prior_missing"] = rng.random(n) < 0.03
    p["resistant"] = (p["prior"] >= 2) & (rng.random(n) < 0.80)
    p["substance"] = rng.random(n) < 0.15
    p["substance_missing"] = rng.random(n) < 0.02
    p["route"] = rng.choice(len(ROUTES), size=n, p=_ROUTE_P)
    p["psychotherapy"] = rng.random(n) < 0.40
    p["year"] = rng.choice(_YEARS, size=n, p=_YEAR_P)
    female = _SEXES.index("female")
    p["weight"] = np.clip(rng.normal(np.where(p["sex"] == female, 72, 85), 16), 42, 180)

    route = np.asarray(ROUTES)[p["route"]]
    p["route_name"] = route
    # Per-patient dose and dose relative to the route's usual dose (drives efficacy, CADSS,
    # blood pressure).
    u = rng.random(n)
    iv_mgkg = np.select([u < 0.70, u < 0.80, u < 0.95], [0.5, 0.6, 0.75], 1.0)
    im_mgkg = np.select([u < 0.40, u < 0.75], [0.5, 0.75], 1.0)
    esk_mg = np.where(u < 0.60, 84.0, 56.0)
    sl_mg = np.select([u < 0.20, u < 0.70, u < 0.90], [200.0, 300.0, 400.0], 450.0)
    oral_mg = np.select([u < 0.25, u < 0.65, u < 0.90], [50.0, 100.0, 150.0], 200.0)
    p["mgkg"] = np.select([route == "iv", route == "im"], [iv_mgkg, im_mgkg], np.nan)
    p["mg"] = np.select(
        [route == "iv", route == "im", route == "intranasal", route == "sublingual"],
        [iv_mgkg * p["weight"], im_mgkg * p["weight"], esk_mg, sl_mg],
        oral_mg,
    )
    p["dose_rel"] = np.select(
        [route == "iv", route == "im", route == "intranasal", route == "sublingual"],
        [iv_mgkg / 0.5, im_mgkg / 0.75, esk_mg / 84.0, sl_mg / 300.0],
        oral_mg / 100.0,
    )

    # Latent baseline severity (standard normal); the more severe respond less often.
    z_gad = rng.standard_normal(n)
    z_ham = 0.6 * z_gad + 0.8 * rng.standard_normal(n)
    diagnosis = np.asarray(_DIAGNOSES)[p["diagnosis"]]
    logit = (
        1.9
        - 0.4 * p["resistant"]
        - 0.1 * p["depression"]
        - 0.2 * (diagnosis == "PTSD")
        - 0.1 * (diagnosis == "SAD")
        - 0.1 * p["substance"]
        + 0.3 * p["psychotherapy"]
        + np.vectorize(_ROUTE_LOGIT.get, otypes=[float])(route)
        + 0.4 * np.log(p["dose_rel"])
        - 0.4 * z_gad
    )
    p["responder"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    # Fraction of symptoms removed at the plateau, and how fast (days).
    p["gain"] = np.where(p["responder"], rng.beta(6.0, 3.6, n), rng.beta(1.2, 8.0, n) - 0.12)
    p["tau"] = np.where(route == "oral", 5.0, 3.0) * rng.lognormal(0, 0.3, n)
    p_maint = np.where(route == "intranasal", 0.75, np.where(p["responder"], 0.55, 0.30))
    p["maintenance"] = rng.random(n) < p_maint
    p["wane"] = np.where(p["maintenance"], rng.beta(1, 12, n), rng.beta(3, 5.6, n))
    hazard = 0.0034 * np.where(p["responder"], 0.75, 1.4)
    p["dropout_day"] = rng.exponential(1 / hazard)

    p["gad7_base"] = np.clip(15.0 + 4.2 * z_gad, 3, GAD7.total_max)
    p["hama_base"] = np.clip(23.5 + 5.0 * z_ham, 6, HAMA.total_max)
    p["hama_gain"] = np.clip(p["gain"] + rng.normal(0, 0.08, n), -0.2, 0.98)
    # Stable item profiles (what makes the items of one patient hang together over visits).
    p["gad7_profile"] = rng.normal(0, 0.2, (n, GAD7.n_items))
    p["hama_profile"] = rng.normal(0, 0.2, (n, HAMA.n_items))

    # Blood pressure: patient means.
    p["sbp_mean"] = rng.normal(125 + 0.3 * (p["age"] - 42), 12)
    p["dbp_mean"] = 80 + 0.45 * (p["sbp_mean"] - 125) + rng.normal(0, 6.5, n)
    p["cadss_susceptibility"] = rng.normal(0, 0.45, n)
    return p


def _patients_frame(p: dict) -> pd.DataFrame:
    n = p["n"]
    return pd.DataFrame(
        {
            "patient_id": _strings(_patient_ids(n)),
            "site_id": _strings(np.asarray(SITES)[p["site"]]),
            "age": _ints(p["age"]),
            "sex": _strings(np.asarray(_SEXES)[p["sex"]]),
            "primary_diagnosis": _strings(np.asarray(_DIAGNOSES)[p["diagnosis"]]),
            "comorbid_depression": _bools(p["depression"]),
            "treatment_resistant": _bools(p["resistant"], p["prior_missing"]),
            "prior_treatment_count": _ints(p["prior"], p["prior_missing"]),
            "substance_use_history": _bools(p["substance"], p["substance_missing"]),
            "route": _strings(p["route_name"]),
            "concurrent_psychotherapy": _bools(p["psychotherapy"]),
            "arm": _strings(np.full(n, "ketamine")),
            "enrollment_year": _ints(p["year"]),
        }
    )


# --------------------------------------------------------------------------------------
# Sessions


def _draw_sessions(rng: np.random.Generator, p: dict) -> tuple[pd.DataFrame, dict]:
    """One row per administration; also returns the flat arrays the adverse events use."""
    n = p["n"]
    route = p["route_name"]

    # Induction days: n x _MAX_INDUCTION, NaN where a route has fewer sessions.
    ind = np.full((n, _MAX_INDUCTION), np.nan)
    span = rng.integers(11, 19, n)  # IV/IM: 6 sessions over 2-3 weeks
    frac = np.linspace(0, 1, _IV_IM_SESSIONS)
    iv_im = np.isin(route, ("iv", "im"))
    ind[iv_im, :_IV_IM_SESSIONS] = np.rint(span[iv_im, None] * frac)
    for name, days in _INDUCTION.items():
        rows = route == name
        ind[rows, : len(days)] = days
    jitter = rng.integers(-1, 2, (n, _MAX_INDUCTION)).astype(float)
    jitter[:, 0] = 0  # session 1 is day 0 by definition
    ind = ind + jitter
    for k in range(1, _MAX_INDUCTION):  # keep days strictly increasing
        ind[:, k] = np.maximum(ind[:, k], ind[:, k - 1] + 1)  # NaN stays NaN
    last_induction = np.nanmax(ind, axis=1)

    # Maintenance every 2-4 weeks (esketamine every 1-2 weeks) until week 12.
    interval = np.where(
        route == "intranasal", rng.choice([7, 14], n), rng.choice([14, 21, 28], n)
    ).astype(float)
    steps = np.arange(1, _MAX_MAINTENANCE + 1)
    maint = last_induction[:, None] + interval[:, None] * steps[None, :]
    maint[(maint > _LAST_MAINTENANCE_DAY) | ~p["maintenance"][:, None]] = np.nan
    maint = maint + np.where(np.isnan(maint), 0, rng.integers(-2, 3, maint.shape))

    days = np.concatenate([ind, maint], axis=1)
    phase_grid = np.concatenate(
        [np.zeros(ind.shape, dtype=np.int8), np.ones(maint.shape, dtype=np.int8)], axis=1
    )
    held = ~np.isnan(days) & (days < p["dropout_day"][:, None])
    number_grid = np.cumsum(held, axis=1)

    pidx = np.broadcast_to(np.arange(n)[:, None], days.shape)[held]
    day = days[held].astype(np.int64)
    number = number_grid[held]
    phase = phase_grid[held]
    m = len(day)
    r = route[pidx]
    dose_rel = p["dose_rel"][pidx]

    # Doses: esketamine starts at 56 mg (label); sublingual starts at 300 mg at most.
    dose_mg = p["mg"][pidx].copy()
    first = number == 1
    dose_mg[(r == "intranasal") & first] = 56.0
    dose_mg[(r == "sublingual") & (number <= 2)] = np.minimum(
        dose_mg[(r == "sublingual") & (number <= 2)], 300.0
    )
    dose_mg = np.round(dose_mg, 1)
    dose_mgkg = p["mgkg"][pidx]

    # Blood pressure before and at the peak (Glue 2018: about +10 mmHg at 0.5 mg/kg).
    sbp_pre = p["sbp_mean"][pidx] + rng.normal(0, 6, m)
    dbp_pre = p["dbp_mean"][pidx] + rng.normal(0, 5, m)
    rise = np.vectorize(_ROUTE_SBP_RISE.get, otypes=[float])(r) * np.sqrt(dose_rel)
    sbp_rise = rng.normal(rise, 6)
    dbp_rise = 0.8 * sbp_rise + rng.normal(0, 3.5, m)
    sbp_peak = np.clip(np.rint(sbp_pre + sbp_rise), 70, 260)
    dbp_peak = np.clip(np.rint(dbp_pre + dbp_rise), 40, 160)
    sbp_pre = np.clip(np.rint(sbp_pre), 80, 240)
    dbp_pre = np.clip(np.rint(dbp_pre), 40, 150)

    # CADSS: log-normal, dose related, tolerance with repeated sessions.
    log_median = (
        np.log(np.vectorize(_ROUTE_CADSS.get, otypes=[float])(r))
        + 0.8 * np.log(dose_rel)
        - 0.06 * (np.minimum(number, 10) - 1)
        + p["cadss_susceptibility"][pidx]
    )
    cadss = np.clip(np.rint(np.exp(log_median + rng.normal(0, 0.6, m)) - 1), 0, 92)

    # At home only the first, supervised dose has vitals and CADSS.
    unobserved = np.isin(r, _AT_HOME) & ~first
    vitals_missing = unobserved | (rng.random(m) < 0.02)
    cadss_missing = unobserved | (rng.random(m) < 0.03)
    completed = rng.random(m) >= np.where(sbp_peak >= 180, 0.5, 0.015)

    ids = _patient_ids(n)
    frame = pd.DataFrame(
        {
            "patient_id": _strings(ids[pidx]),
            "session_number": _ints(number),
            "study_day": _ints(day),
            "route": _strings(r),
            "dose_mg": pd.array(dose_mg, dtype="Float64"),
            "dose_mg_per_kg": pd.array(dose_mgkg, dtype="Float64"),
            "phase": _strings(np.asarray(["induction", "maintenance"])[phase]),
            "sbp_pre": _ints(sbp_pre, vitals_missing),
            "dbp_pre": _ints(dbp_pre, vitals_missing),
            "sbp_peak": _ints(sbp_peak, vitals_missing),
            "dbp_peak": _ints(dbp_peak, vitals_missing),
            "cadss_total": _ints(cadss, cadss_missing),
            "completed": _bools(completed),
        }
    )
    arrays = {
        "pidx": pidx,
        "day": day,
        "number": number,
        "route": r,
        "sbp_peak": np.where(vitals_missing, np.nan, sbp_peak),
        "dbp_peak": np.where(vitals_missing, np.nan, dbp_peak),
        "cadss": np.where(cadss_missing, np.nan, cadss),
    }
    return frame, arrays


# --------------------------------------------------------------------------------------
# Assessments


def _reduction(p: dict, idx: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of the baseline GAD-7 and HAM-A severity removed on study ``day``.

    ``gain * (1 - exp(-(t + 0.5) / tau))`` from day 1 on (0 before), waning linearly
    between weeks 4 and 12 by the patient's ``wane`` fraction.
    """
    t = np.maximum(day, 0).astype(float)
    onset = 1 - np.exp(-(t + 0.5) / p["tau"][idx])
    waning = 1 - p["wane"][idx] * np.clip((t - 28) / 56, 0, 1)
    treated = day >= 1
    return (
        np.where(treated, p["gain"][idx] * onset * waning, 0.0),
        np.where(treated, p["hama_gain"][idx] * onset * waning, 0.0),
    )


def _draw_assessments(rng: np.random.Generator, p: dict) -> pd.DataFrame:
    n = p["n"]
    everyone = np.arange(n)
    at_home = np.isin(p["route_name"], _AT_HOME)
    rows: list[tuple[np.ndarray, np.ndarray, int]] = []  # (patient index, day, instrument)

    # Baseline: a screening visit (GAD-7 and HAM-A) and/or a day-0 pre-dose rating.
    screened = rng.random(n) < 0.55
    screen_day = np.where(rng.random(n) < 0.03, rng.integers(-30, -14, n), rng.integers(-14, 0, n))
    day0_gad = rng.random(n) < np.where(screened, 0.70, 0.97)
    day0_ham = ~screened & (rng.random(n) < 0.90)
    rows += [
        (everyone[screened], screen_day[screened], 0),
        (everyone[screened], screen_day[screened], 1),
        (everyone[day0_gad], np.zeros(day0_gad.sum(), dtype=np.int64), 0),
        (everyone[day0_ham], np.zeros(day0_ham.sum(), dtype=np.int64), 1),
    ]

    # Scheduled follow-up visits, nothing on or after the drop-out day.
    for visit, target, lo, hi, sd, p_miss in _VISITS:
        if visit == "day1":
            day = rng.choice([1, 2, 3], n, p=[0.75, 0.20, 0.05])
        else:
            day = np.clip(np.rint(target + 0.3 * sd + rng.normal(0, sd, n)), lo, hi)
        day = day.astype(np.int64)
        alive = day < p["dropout_day"]
        gad = alive & (rng.random(n) >= p_miss)
        rows.append((everyone[gad], day[gad], 0))
        if visit != "day1":  # HAM-A is not rated on day 1
            ham = alive & (rng.random(n) >= p_miss + np.where(at_home, 0.35, 0.07))
            rows.append((everyone[ham], day[ham], 1))

    # Extra GAD-7 ratings: unscheduled inside the week-2 window, or after day 111.
    extra_day = rng.integers(11, 21, n)
    extra = (rng.random(n) < 0.03) & (extra_day < p["dropout_day"])
    late_day = rng.integers(112, 181, n)
    late = (rng.random(n) < 0.02) & (late_day < p["dropout_day"])
    rows += [(everyone[extra], extra_day[extra], 0), (everyone[late], late_day[late], 0)]

    pidx = np.concatenate([r[0] for r in rows])
    day = np.concatenate([r[1] for r in rows]).astype(np.int64)
    inst = np.concatenate([np.full(len(r[0]), r[2], dtype=np.int8) for r in rows])
    # Sort by patient, instrument, day; an extra rating on a scheduled day is dropped.
    order = np.lexsort((day, inst, pidx))
    pidx, day, inst = pidx[order], day[order], inst[order]
    keep = np.ones(len(day), dtype=bool)
    keep[1:] = (pidx[1:] != pidx[:-1]) | (inst[1:] != inst[:-1]) | (day[1:] != day[:-1])
    pidx, day, inst = pidx[keep], day[keep], inst[keep]

    m = len(day)
    items = np.full((m, MAX_ITEMS), -1, dtype=np.int64)
    total = np.zeros(m, dtype=np.int64)
    sigh_a = np.isin(p["site"], _site_codes(_SIGH_A_SITES))
    for code, instrument in enumerate((GAD7, HAMA)):
        sel = inst == code
        q = pidx[sel]
        key = instrument.name.lower()
        noise_sd, state_sd, logw = _SCALE_NOISE[instrument.name]
        shift = np.where(sigh_a, _SIGH_A_SHIFT, 0.0)[q] if instrument is HAMA else 0.0
        latent = p[f"{key}_base"][q] * (1 - _reduction(p, q, day[sel])[code]) + shift
        # rating error, plus week-to-week fluctuation of the state after treatment starts
        sd = np.where(day[sel] >= 1, np.hypot(noise_sd, state_sd), noise_sd)
        t = np.clip(np.rint(latent + rng.normal(0, sd)), 0, instrument.total_max).astype(np.int64)
        total[sel] = t
        profile = p[f"{key}_profile"][q]
        items[sel, : instrument.n_items] = _items_from_totals(rng, t, instrument, logw, profile)

    # Missing items: a few prorated rows (total empty), rarer rows scored from the recorded
    # total, and some complete rows whose total was not entered.
    u = rng.random(m)
    max_missing = np.where(inst == 0, GAD7.max_missing_items, HAMA.max_missing_items)
    n_items = np.where(inst == 0, GAD7.n_items, HAMA.n_items)
    n_missing = np.select(
        [u < 0.02, u < 0.025],
        [rng.integers(1, max_missing + 1), max_missing + 1 + rng.integers(0, 3, m)],
        0,
    )
    # Blank the n_missing items with the smallest random keys among the scale's items.
    keys = np.where(np.arange(MAX_ITEMS)[None, :] < n_items[:, None], rng.random((m, MAX_ITEMS)), 2)
    items[keys.argsort(axis=1).argsort(axis=1) < n_missing[:, None]] = -1
    total_missing = (n_missing >= 1) & (n_missing <= max_missing)
    total_missing |= (n_missing == 0) & (rng.random(m) < 0.03)

    site = p["site"][pidx]
    is_ham = inst == 1
    administration = np.where(
        is_ham,
        np.where(np.isin(site, _site_codes(_SIGH_A_SITES)), "sigh_a", "clinician"),
        "self_report",
    )
    rater = site * _RATERS_PER_SITE + rng.integers(0, _RATERS_PER_SITE, m) + 1
    rater_id = np.char.add("R", np.char.zfill(rater.astype(str), 3))

    data = {
        "patient_id": _strings(_patient_ids(n)[pidx]),
        "instrument": _strings(np.asarray(["GAD7", "HAMA"])[inst]),
        "study_day": _ints(day),
    }
    for k in range(MAX_ITEMS):
        data[f"item_{k + 1}"] = _ints(items[:, k], items[:, k] < 0)
    data["total"] = _ints(total, total_missing)
    data["administration"] = _strings(administration)
    data["rater_id"] = _strings(rater_id, ~is_ham)
    return pd.DataFrame(data)


def _items_from_totals(
    rng: np.random.Generator,
    totals: np.ndarray,
    instrument: Instrument,
    logw: np.ndarray,
    profile: np.ndarray,
) -> np.ndarray:
    """Integer item scores in ``0..item_max`` that sum exactly to ``totals``.

    Each row splits its total over the items in proportion to random weights (item
    difficulty + the patient's stable profile + visit noise), caps items at ``item_max``
    and hands the excess to the others, then rounds by largest remainder.
    """
    k, top = instrument.n_items, float(instrument.item_max)
    w = np.exp(logw[None, :] + profile + rng.normal(0, 0.2, (len(totals), k)))
    x = totals[:, None] * w / w.sum(axis=1, keepdims=True)
    for _ in range(k):
        excess = np.clip(x - top, 0, None).sum(axis=1)
        if not (excess > 1e-9).any():
            break
        x = np.minimum(x, top)
        free_w = np.where(x < top, w, 0.0)
        norm = free_w.sum(axis=1, keepdims=True)
        x = x + excess[:, None] * np.divide(free_w, norm, out=np.zeros_like(w), where=norm > 0)
    x = np.minimum(x, top)
    floor = np.floor(x + 1e-9)
    short = totals - floor.sum(axis=1).astype(np.int64)
    key = np.where(floor < top, x - floor, -np.inf)
    rank = np.argsort(-key, axis=1, kind="stable").argsort(axis=1)
    return (floor + (rank < short[:, None])).astype(np.int64)


# --------------------------------------------------------------------------------------
# Adverse events


def _draw_adverse_events(rng: np.random.Generator, p: dict, s: dict) -> pd.DataFrame:
    m = len(s["day"])
    r = s["route"]
    tolerance = 0.85 ** (np.minimum(s["number"], 10) - 1)
    nausea = np.vectorize(_ROUTE_NAUSEA.get, otypes=[float])(r) * tolerance
    clinic = ~np.isin(r, _AT_HOME)
    cadss = s["cadss"]
    sbp, dbp = s["sbp_peak"], s["dbp_peak"]
    with np.errstate(invalid="ignore"):
        high_cadss = cadss >= 25
        high_bp = (sbp >= 170) | (dbp >= 105)
    dissociation_rate = np.where(
        np.isnan(cadss),
        np.vectorize(_ROUTE_DISSOCIATION.get, otypes=[float])(r),
        np.where(high_cadss, 0.80, 0.02),
    )
    rates = {
        "nausea": nausea,
        "vomiting": 0.25 * nausea,
        "dizziness": np.where(clinic, 0.07, 0.05) * tolerance,
        "dissociation": dissociation_rate * np.where(np.isnan(cadss), tolerance, 1.0),
        "sedation": np.where(clinic, 0.05, 0.06) * tolerance,
        "headache": np.full(m, 0.03),
        "elevated_blood_pressure": np.where(high_bp, 0.5, 0.0),
        "anxiety_increase": np.full(m, 0.008),
    }
    parts = []
    for code, term in enumerate(_AE_TERMS):
        hit = rng.random(m) < rates[term]
        u = rng.random(hit.sum())
        if term == "dissociation":
            magnitude = np.nan_to_num(cadss[hit], nan=20.0)
            severity = np.select([magnitude >= 45, magnitude >= 30], [2, 1], 0)
        elif term == "elevated_blood_pressure":
            severity = np.select([sbp[hit] >= 200, sbp[hit] >= 180], [2, 1], 0)
        else:
            severity = np.select([u < 0.04, u < 0.24], [2, 1], 0)
        parts.append((np.flatnonzero(hit), np.full(hit.sum(), code), severity))
    session = np.concatenate([x[0] for x in parts]).astype(np.int64)
    term = np.concatenate([x[1] for x in parts]).astype(np.int64)
    severity = np.concatenate([x[2] for x in parts]).astype(np.int64)
    order = np.lexsort((term, session))
    session, term, severity = session[order], term[order], severity[order]
    k = len(session)
    serious = rng.random(k) < np.where(severity == 2, 0.05, 0.001)
    unrelated_p = np.isin(term, [_AE_TERMS.index("headache"), _AE_TERMS.index("anxiety_increase")])
    related = rng.random(k) >= np.where(unrelated_p, 0.30, 0.10)
    return pd.DataFrame(
        {
            "patient_id": _strings(_patient_ids(p["n"])[s["pidx"][session]]),
            "study_day": _ints(s["day"][session]),
            "term": _strings(np.asarray(_AE_TERMS)[term]),
            "severity": _strings(np.asarray(["mild", "moderate", "severe"])[severity]),
            "serious": _bools(serious),
            "related": _bools(related),
        }
    )


# --------------------------------------------------------------------------------------
# Small helpers


def _patient_ids(n: int) -> np.ndarray:
    return np.char.add("P", np.char.zfill(np.arange(1, n + 1).astype(str), 6))


def _site_codes(names: tuple[str, ...]) -> list[int]:
    return [SITES.index(s) for s in names]


def _ints(values: np.ndarray, missing: np.ndarray | None = None) -> pd.arrays.IntegerArray:
    values = np.asarray(values)
    mask = np.zeros(len(values), dtype=bool) if missing is None else np.asarray(missing)
    filled = np.where(mask, 0, values).astype(np.int64)
    return pd.arrays.IntegerArray(filled, mask.copy())


def _bools(values: np.ndarray, missing: np.ndarray | None = None) -> pd.arrays.BooleanArray:
    values = np.asarray(values, dtype=bool)
    mask = np.zeros(len(values), dtype=bool) if missing is None else np.asarray(missing)
    return pd.arrays.BooleanArray(values.copy(), mask.copy())


def _strings(values: np.ndarray, missing: np.ndarray | None = None) -> pd.arrays.StringArray:
    out: pd.arrays.StringArray = pd.array(np.asarray(values, dtype=object), dtype="string")  # type: ignore[assignment]  # pandas-stubs: pd.array(dtype='string') is a StringArray
    if missing is not None:
        out[np.asarray(missing)] = pd.NA
    return out
