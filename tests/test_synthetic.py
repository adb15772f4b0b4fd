"""Tests of `synthetic_cohort`: shape and types, validity, reproducibility, calibration.

The calibration targets are the published open-label ketamine results in docs/references.md:
Hull et al. 2022 (J Affect Disord 314:59-67), GAD-7 at week 4: response 62.9%, remission
31.3%, d = 1.56; Hietamies et al. 2023: d = -1.17 after IV induction. The synthetic
cohort must land near them (ranges below), not reproduce them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.agreement import cronbach_alpha
from analysis.deid import scan_identifiers
from analysis.effect_sizes import effect_size
from analysis.endpoints import derive_endpoints, endpoint_accounting
from analysis.instruments import GAD7, HAMA, INSTRUMENTS
from analysis.schema import Cohort, collect_failures
from analysis.synthetic import synthetic_cohort

TABLES = ("patients", "assessments", "sessions", "adverse_events")
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data_schema"
# Frictionless field type -> the pandas nullable dtype the validator produces.
DTYPES = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return synthetic_cohort()


@pytest.fixture(scope="module")
def large() -> Cohort:
    return synthetic_cohort(n_patients=5000, seed=0)


# ------------------------------------------------------------------ shape, types, validity


@pytest.mark.parametrize("table", TABLES)
def test_columns_and_dtypes_follow_the_schema(cohort, table):
    fields = json.loads((SCHEMA_DIR / f"{table}.json").read_text())["fields"]
    frame = getattr(cohort, table)
    assert list(frame.columns) == [f["name"] for f in fields]
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        f["name"]: DTYPES[f["type"]] for f in fields
    }
    assert len(frame) > 0


def test_default_cohort_is_valid_and_deidentified(cohort):
    assert collect_failures(cohort).empty
    assert scan_identifiers(cohort)["n_flagged"].sum() == 0


@settings(max_examples=15)
@given(n_patients=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_every_cohort_is_valid_and_deidentified(n_patients, seed):
    cohort = synthetic_cohort(n_patients=n_patients, seed=seed)
    assert len(cohort.patients) == n_patients
    assert cohort.patients["patient_id"].is_unique
    assert collect_failures(cohort).empty
    assert scan_identifiers(cohort)["n_flagged"].sum() == 0


def test_one_patient():
    cohort = synthetic_cohort(n_patients=1, seed=3)
    assert cohort.patients["patient_id"].tolist() == ["P000001"]
    assert cohort.sessions["session_number"].iloc[0] == 1
    assert collect_failures(cohort).empty


@pytest.mark.parametrize("n", [0, -1, -500])
def test_fewer_than_one_patient_is_refused(n):
    with pytest.raises(ValueError, match=r"`n_patients` must be at least 1, but -?\d+ was passed"):
        synthetic_cohort(n_patients=n)


@pytest.mark.parametrize("n", [2.5, "10", True])
def test_non_integer_size_is_refused(n):
    with pytest.raises(TypeError, match="`n_patients` must be an integer"):
        synthetic_cohort(n_patients=n)


# ------------------------------------------------------------------ reproducibility


def test_same_seed_same_data():
    first, second = synthetic_cohort(200, seed=11), synthetic_cohort(200, seed=11)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(first, table), getattr(second, table))


def test_different_seed_different_data():
    first, second = synthetic_cohort(200, seed=11), synthetic_cohort(200, seed=12)
    for table in ("patients", "assessments", "sessions"):
        assert not getattr(first, table).equals(getattr(second, table))


def test_numpy_integer_size_and_seed():
    a = synthetic_cohort(np.int64(20), seed=np.int64(4))
    b = synthetic_cohort(20, seed=4)
    pd.testing.assert_frame_equal(a.assessments, b.assessments)


# ------------------------------------------------------------------ internal consistency


def test_patients(large):
    p = large.patients
    assert p["patient_id"].str.fullmatch(r"P\d{6}").all()
    assert p["age"].between(18, 90).all()  # 90 means 90 or older (Safe Harbor)
    assert p["site_id"].isin([f"S{k:02d}" for k in range(1, 9)]).all()
    # GAD is the most common diagnosis and IV the most common route (docs/design.md)
    assert p["primary_diagnosis"].value_counts().index[0] == "GAD"
    assert p["route"].value_counts().index[0] == "iv"
    assert set(p["route"]) == {"iv", "im", "intranasal", "oral", "sublingual"}
    assert (p["arm"] == "ketamine").all()
    # treatment resistant means at least two failed treatments
    resistant = p["treatment_resistant"].fillna(False)
    assert (p.loc[resistant, "prior_treatment_count"] >= 2).all()


def test_sessions_follow_the_schedules(large):
    s = large.sessions
    routes = large.patients.set_index("patient_id")["route"]
    assert (s["route"] == s["patient_id"].map(routes)).all()
    first = s.groupby("patient_id").first()
    assert (first["study_day"] == 0).all() and (first["session_number"] == 1).all()
    assert s.groupby("patient_id")["study_day"].apply(lambda d: d.is_monotonic_increasing).all()
    assert (s.groupby("patient_id")["session_number"].diff().dropna() == 1).all()
    assert set(large.patients["patient_id"]) == set(s["patient_id"])  # all were treated
    induction = s[s["phase"] == "induction"]
    per_patient = induction.groupby("patient_id").size()
    # IV induction: about six sessions over two to three weeks
    iv = induction[induction["route"] == "iv"].groupby("patient_id")
    assert iv.size().max() == 6 and iv["study_day"].max().max() <= 19
    assert per_patient.max() == 12  # oral: every 2-3 days for 4 weeks
    assert s.loc[s["phase"] == "maintenance", "study_day"].max() <= 86
    # IV 0.5 mg/kg for most; esketamine 56/84 mg
    assert s.loc[s["route"] == "iv", "dose_mg_per_kg"].median() == 0.5
    assert set(s.loc[s["route"] == "intranasal", "dose_mg"]) == {56.0, 84.0}
    assert s.loc[s["route"] == "intranasal", "dose_mg_per_kg"].isna().all()


def test_blood_pressure_and_dissociation(large):
    s = large.sessions
    clinic = s[s["route"].isin(["iv", "im", "intranasal"])]
    rise = (clinic["sbp_peak"] - clinic["sbp_pre"]).mean()
    assert 7 <= rise <= 13  # Glue et al. 2018: about +10 mmHg
    assert 115 <= s["sbp_pre"].mean() <= 135 and 72 <= s["dbp_pre"].mean() <= 88
    cadss = s["cadss_total"].dropna()
    assert cadss.between(0, 92).all() and cadss.median() < 15  # most values low
    by_route = s.groupby("route")["cadss_total"].mean()
    assert by_route["iv"] > by_route["sublingual"] and by_route["im"] > by_route["oral"]
    assert 0 < (~s["completed"]).mean() < 0.05


def test_assessment_items_and_totals(large):
    a = large.assessments
    assert not a.duplicated(["patient_id", "instrument", "study_day"]).any()
    for name, instrument in INSTRUMENTS.items():
        rows = a[a["instrument"] == name]
        items = rows[instrument.item_columns]
        assert rows[instrument.unused_item_columns].isna().all().all()
        assert ((items >= 0) & (items <= instrument.item_max)).fillna(True).all().all()
        complete = items.notna().all(axis=1) & rows["total"].notna()
        assert (rows.loc[complete, "total"] == items[complete].sum(axis=1)).all()
        missing = instrument.n_items - items.notna().sum(axis=1)
        prorated = missing.between(1, instrument.max_missing_items)
        assert prorated.sum() > 0 and rows.loc[prorated, "total"].isna().all()
        beyond = missing > instrument.max_missing_items
        assert beyond.sum() > 0 and rows.loc[beyond, "total"].notna().all()
    admin = a.groupby("instrument")["administration"].unique()
    assert set(admin["GAD7"]) == {"self_report"}
    assert set(admin["HAMA"]) == {"clinician", "sigh_a"}
    assert a.loc[a["instrument"] == "GAD7", "rater_id"].isna().all()
    assert a.loc[a["instrument"] == "HAMA", "rater_id"].notna().all()


def test_every_accounting_case_occurs(cohort):
    # Every reason the endpoint accounting distinguishes occurs in the default demo cohort,
    # except unscorable, which the schema forbids.
    reasons = set(endpoint_accounting(cohort, "GAD7")["reason"])
    assert {
        "baseline",
        "visit",
        "superseded_in_window",
        "outside_schedule",
        "no_baseline",
    } <= reasons


def test_dropout_is_monotone(large):
    endpoints = derive_endpoints(large, "GAD7")
    seen = endpoints.groupby("visit")["patient_id"].nunique()
    assert seen["week1"] > seen["week4"] > seen["week8"] > seen["week12"]
    # sessions stop at drop-out, they do not pause: no gap exceeds the longest maintenance
    # interval (4 weeks, each session jittered by up to 2 days)
    gaps = large.sessions.groupby("patient_id")["study_day"].diff().dropna()
    assert gaps.max() <= 28 + 4


def test_adverse_events(large):
    ae = large.adverse_events
    assert set(ae["term"]) == {
        "nausea",
        "vomiting",
        "dizziness",
        "dissociation",
        "sedation",
        "headache",
        "elevated_blood_pressure",
        "anxiety_increase",
    }
    sessions = large.sessions.set_index(["patient_id", "study_day"]).index
    assert ae.set_index(["patient_id", "study_day"]).index.isin(sessions).all()
    assert ae["severity"].value_counts(normalize=True)["mild"] > 0.6
    assert ae["serious"].mean() < 0.02 and ae["related"].mean() > 0.8
    route = large.patients.set_index("patient_id")["route"]
    patients_with = ae.drop_duplicates(["patient_id", "term"])
    counts = patients_with.groupby([patients_with["patient_id"].map(route), "term"]).size()
    incidence = counts / counts.index.get_level_values(0).map(route.value_counts()).to_numpy()
    # dissociation common with IV and esketamine (label: 61-75% by CADSS), rare at home;
    # nausea 10-50% of patients
    assert incidence[("iv", "dissociation")] > 0.3 > incidence[("oral", "dissociation")]
    assert incidence[("intranasal", "dissociation")] > 0.3
    assert all(0.1 <= incidence[(r, "nausea")] <= 0.5 for r in route.unique())


# ------------------------------------------------------------------ calibration


def _week4(cohort: Cohort) -> pd.DataFrame:
    endpoints = derive_endpoints(cohort, "GAD7")
    return endpoints[endpoints["visit"] == "week4"]


@pytest.mark.parametrize("which", ["cohort", "large"])
def test_gad7_week4_calibrated_to_hull_2022(which, request):
    week4 = _week4(request.getfixturevalue(which))
    # Hull et al. 2022: response 62.9%, remission 31.3%, d = 1.56 (docs/references.md)
    assert 0.55 <= week4["response"].mean() <= 0.65
    assert 0.25 <= week4["remission"].mean() <= 0.40
    d = effect_size(week4["baseline"].astype(float), week4["score"].astype(float), measure="d_av")
    assert 1.2 <= d.estimate <= 1.7


def test_baseline_severity_and_alpha(large):
    a = large.assessments
    baseline = a[a["study_day"].between(-14, 0)]
    for instrument, (low, high) in ((GAD7, (13.5, 16.0)), (HAMA, (21.0, 27.0))):
        rows = baseline[baseline["instrument"] == instrument.name]
        complete = rows[instrument.item_columns].dropna()
        assert low <= complete.sum(axis=1).mean() <= high
        alpha = cronbach_alpha(complete.astype(float)).alpha
        assert 0.8 <= alpha <= 0.9, (instrument.name, alpha)


def test_rapid_drop_then_plateau(large):
    endpoints = derive_endpoints(large, "GAD7")
    mean_change = endpoints.groupby("visit")["change"].mean()
    assert mean_change["day1"] < -2  # rapid effect after the first session
    assert mean_change["week2"] < mean_change["week1"] < mean_change["day1"]
    assert abs(mean_change["week4"] - mean_change["week2"]) < 1.5  # plateau
