"""Valid but awkward cohorts for the end-to-end report tests.

Each builder takes nothing and returns a :class:`~analysis.schema.Cohort` that passes
``load_cohort`` once written with ``write_cohort``: small programs, one-sided programs
(one route, nobody responding, everybody responding), HAM-A recorded as totals only,
header-only tables. They start from a small seeded synthetic cohort and change only what
the situation needs, so each stays realistic elsewhere.
"""

from __future__ import annotations

import pandas as pd

from analysis.instruments import HAMA
from analysis.schema import Cohort
from analysis.synthetic import synthetic_cohort

N_PATIENTS = 48  # small enough to render fast, big enough for the default us MMRM


def _base(n: int = N_PATIENTS, seed: int = 11) -> Cohort:
    return synthetic_cohort(n_patients=n, seed=seed)


def _replace(cohort: Cohort, **tables) -> Cohort:
    parts = {
        name: getattr(cohort, name)
        for name in ("patients", "assessments", "sessions", "adverse_events")
    }
    parts.update(tables)
    return Cohort(**parts)


def _one_route(route: str, cohort: Cohort | None = None) -> Cohort:
    cohort = cohort if cohort is not None else _base()
    patients = cohort.patients.assign(route=route)
    sessions = cohort.sessions.assign(route=route)
    return _replace(cohort, patients=patients, sessions=sessions)


def all_iv() -> Cohort:
    """Every patient treated with IV ketamine: no between-route comparison exists."""
    return _one_route("iv")


def no_iv() -> Cohort:
    """No IV patient: the reports' reference route is absent."""
    cohort = _base()
    route = cohort.patients["route"].replace({"iv": "im"})
    sessions = cohort.sessions.assign(route=cohort.sessions["route"].replace({"iv": "im"}))
    return _replace(cohort, patients=cohort.patients.assign(route=route), sessions=sessions)


def hama_totals_only() -> Cohort:
    """HAM-A recorded as totals without items (the data-schema README's example)."""
    cohort = _base()
    assessments = cohort.assessments.copy()
    hama = assessments["instrument"] == "HAMA"
    scored = assessments.loc[hama, "total"].isna()
    # Rows that were scored from items (prorated or complete) keep their score as a total.
    items = assessments.loc[hama, list(HAMA.item_columns)]
    answered = items.notna().sum(axis=1)
    prorated = (items.sum(axis=1) / answered * HAMA.n_items + 0.5).floordiv(1)
    fill = scored[scored].index
    assessments.loc[fill, "total"] = prorated.loc[fill].astype("Int64")
    assessments.loc[hama, list(HAMA.item_columns)] = pd.NA
    assessments = assessments[~(hama & assessments["total"].isna())]
    return _replace(cohort, assessments=assessments.reset_index(drop=True))


def small_program() -> Cohort:
    """Fifteen patients: too few for an unstructured covariance over six visits."""
    return _base(n=15, seed=4)


def tiny_route_cell() -> Cohort:
    """One route with only two patients among many."""
    cohort = _base()
    route = cohort.patients["route"].where(cohort.patients["route"] != "oral", "iv")
    route.iloc[:2] = "oral"
    patients = cohort.patients.assign(route=route)
    by_patient = patients.set_index("patient_id")["route"]
    sessions = cohort.sessions.assign(route=cohort.sessions["patient_id"].map(by_patient))
    return _replace(cohort, patients=patients, sessions=sessions)


def _post_baseline_scores(cohort: Cohort, value) -> Cohort:
    """Every post-baseline assessment scored ``value(baseline-ish score)`` as a total."""
    assessments = cohort.assessments.copy()
    item_columns = [c for c in assessments if c.startswith("item_")]
    later = assessments["study_day"] > 0
    baseline = (
        assessments[~later]
        .sort_values("study_day")
        .groupby(["patient_id", "instrument"])["total"]
        .last()
    )
    key = pd.MultiIndex.from_frame(assessments.loc[later, ["patient_id", "instrument"]])
    start = pd.Series(baseline.reindex(key).to_numpy(), index=assessments.index[later])
    assessments.loc[later, item_columns] = pd.NA
    assessments.loc[later, "total"] = value(start).astype("Int64")
    assessments = assessments[assessments["total"].notna() | ~later]
    return _replace(cohort, assessments=assessments.reset_index(drop=True))


def _with_totals(cohort: Cohort) -> Cohort:
    """Every scorable assessment carries its total (so baselines are known as totals)."""
    from analysis.instruments import score_items

    scored = score_items(cohort.assessments)
    assessments = cohort.assessments.copy()
    items = [c for c in assessments if c.startswith("item_")]
    complete = assessments[items].notna().sum(axis=1) == assessments["instrument"].map(
        {"GAD7": 7, "HAMA": 14}
    )
    fill = assessments["total"].isna() & scored["score"].notna() & complete
    assessments.loc[fill, "total"] = scored.loc[fill, "score"].astype("Int64")
    return _replace(cohort, assessments=assessments)


def nobody_responds() -> Cohort:
    """Every post-baseline score equals the baseline: no response, no time to response."""
    return _post_baseline_scores(_with_totals(_base()), lambda start: start)


def everybody_responds() -> Cohort:
    """Every post-baseline score is 0: everyone responds and nobody loses the response."""
    return _post_baseline_scores(_with_totals(_base()), lambda start: start * 0)


def header_only() -> Cohort:
    """Patients and assessments with their columns but no rows."""
    cohort = _base()
    return Cohort(
        cohort.patients.iloc[:0],
        cohort.assessments.iloc[:0],
        cohort.sessions.iloc[:0],
        cohort.adverse_events.iloc[:0],
    )


def gad7_only() -> Cohort:
    """The program records the GAD-7 only."""
    cohort = _base()
    assessments = cohort.assessments[cohort.assessments["instrument"] == "GAD7"]
    return _replace(cohort, assessments=assessments.reset_index(drop=True))


def hama_only() -> Cohort:
    """The program records the HAM-A only."""
    cohort = _base()
    assessments = cohort.assessments[cohort.assessments["instrument"] == "HAMA"]
    return _replace(cohort, assessments=assessments.reset_index(drop=True))


def baselines_only() -> Cohort:
    """Only baseline assessments: no change, no outcome at any visit."""
    cohort = _base()
    assessments = cohort.assessments[cohort.assessments["study_day"] <= 0]
    return _replace(cohort, assessments=assessments.reset_index(drop=True))


def one_patient() -> Cohort:
    """A program of a single patient."""
    cohort = _base(n=1, seed=2)
    return cohort


def few_non_responders() -> Cohort:
    """Most patients of each route respond at some visit, and 1 to 10 of a route never do.

    The time-to-response table then hides each route's responders (their complement is
    small), so the durability section, whose every number counts responders, must leave
    the routes out (the seeded demo cohort of 120 patients, seed 1, is such a program).
    """
    return _base(n=120, seed=1)


def no_adverse_events() -> Cohort:
    """Adverse events collected and none reported."""
    cohort = _base()
    return _replace(cohort, adverse_events=cohort.adverse_events.iloc[:0])


#: Every situation by name: the end-to-end suite renders each one.
COHORTS = {
    "all_iv": all_iv,
    "no_iv": no_iv,
    "hama_totals_only": hama_totals_only,
    "small_program": small_program,
    "tiny_route_cell": tiny_route_cell,
    "nobody_responds": nobody_responds,
    "everybody_responds": everybody_responds,
    "header_only": header_only,
    "gad7_only": gad7_only,
    "hama_only": hama_only,
    "baselines_only": baselines_only,
    "one_patient": one_patient,
    "few_non_responders": few_non_responders,
    "no_adverse_events": no_adverse_events,
}
