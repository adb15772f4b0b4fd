"""Safety tables: hand-built cohorts with hand-checkable numbers, published intervals,
and properties of the small-cell rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure
from scipy import stats

from analysis.plots import plot_adverse_events, plot_blood_pressure, plot_dissociation
from analysis.safety import (
    ANY_EVENT,
    ANY_SERIOUS,
    ANY_SEVERE,
    adverse_event_table,
    blood_pressure_table,
    dissociation_table,
    dose_summary,
)
from analysis.schema import Cohort
from analysis.synthetic import synthetic_cohort


def _patients(counts: dict[str, int]) -> pd.DataFrame:
    """``counts`` patients per route, ids ``<route><k>``."""
    rows = [(f"{route}{k}", route) for route, n in counts.items() for k in range(n)]
    return pd.DataFrame(rows, columns=["patient_id", "route"])


def _events(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "term", "serious", "severity"]).assign(
        study_day=0
    )


def _row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


# --------------------------------------------------------------------------------------
# adverse_event_table


@pytest.fixture
def ae_cohort() -> Cohort:
    # iv: 148 patients, 15 with nausea (one of them twice); oral: 29 patients, 1 with
    # nausea, none with dizziness (Newcombe 1998a Table I counts: 15/148, 1/29, 0/29).
    patients = _patients({"iv": 148, "oral": 29})
    rows = [(f"iv{k}", "nausea", False, "mild") for k in range(15)]
    rows += [("iv0", "nausea", False, "moderate"), ("iv1", "dizziness", True, "severe")]
    rows += [("oral0", "nausea", False, "mild")]
    return Cohort(patients, pd.DataFrame(), adverse_events=_events(rows))


def test_adverse_events_count_patients_over_treated_patients(ae_cohort):
    t = adverse_event_table(ae_cohort)
    nausea = _row(t, route="iv", term="nausea")
    # 15 patients had nausea (16 events, iv0 twice); denominator every treated patient.
    assert (nausea["n"], nausea["patients"], nausea["events"]) == (148, 15, 16)
    assert nausea["percent"] == pytest.approx(100 * 15 / 148)
    any_iv = _row(t, route="iv", term=ANY_EVENT)
    assert (any_iv["patients"], any_iv["events"]) == (15, 17)  # iv1 nausea + dizziness
    assert _row(t, route="iv", term=ANY_SERIOUS)["patients"] == 1
    assert _row(t, route="iv", term=ANY_SEVERE)["patients"] == 1


def test_adverse_event_wilson_intervals_match_newcombe_table_1(ae_cohort):
    t = adverse_event_table(ae_cohort)
    # Newcombe 1998a, Table I, Wilson score interval without continuity correction:
    # 15/148 -> 0.0624, 0.1605; 1/29 -> 0.0061, 0.1718 (percent here).
    iv = _row(t, route="iv", term="nausea")
    assert (iv["ci_low"], iv["ci_high"]) == pytest.approx((6.24, 16.05), abs=0.005)
    oral = _row(t, route="oral", term="nausea")
    assert (oral["ci_low"], oral["ci_high"]) == pytest.approx((0.61, 17.18), abs=0.005)
    # 0/29: lower bound exactly 0; upper 1 - ... = z^2 / (n + z^2) = 11.70%.
    zero = _row(t, route="oral", term="dizziness")
    z2 = stats.norm.ppf(0.975) ** 2
    assert zero["patients"] == 0 and zero["ci_low"] == 0
    assert zero["ci_high"] == pytest.approx(100 * z2 / (29 + z2))


def test_adverse_event_terms_every_group_in_fixed_order(ae_cohort):
    t = adverse_event_table(ae_cohort)
    expected = [ANY_EVENT, ANY_SERIOUS, ANY_SEVERE, "dizziness", "nausea"]
    assert t["term"].tolist() == expected * 2
    assert t["route"].tolist() == ["iv"] * 5 + ["oral"] * 5
    assert list(t.columns) == [
        "route",
        "term",
        "n",
        "patients",
        "percent",
        "ci_low",
        "ci_high",
        "events",
        "suppressed",
    ]


def test_adverse_events_overall_and_group_without_events(ae_cohort):
    overall = adverse_event_table(ae_cohort, by=())
    assert "route" not in overall.columns
    assert _row(overall, term="nausea")[["n", "patients", "events"]].tolist() == [177, 16, 17]
    ae_cohort.patients = pd.concat([ae_cohort.patients, _patients({"im": 12})])
    t = adverse_event_table(ae_cohort)
    im = t[t["route"] == "im"]
    assert im["n"].eq(12).all() and im["patients"].eq(0).all() and im["events"].eq(0).all()


def test_adverse_events_summary_rows_follow_available_columns():
    patients = _patients({"iv": 12})
    events = pd.DataFrame({"patient_id": ["iv0"], "study_day": [0], "term": ["nausea"]})
    t = adverse_event_table(Cohort(patients, pd.DataFrame(), adverse_events=events))
    assert t["term"].tolist() == [ANY_EVENT, "nausea"]
    none = pd.DataFrame(columns=["patient_id", "study_day", "term"])  # collected, no rows
    empty = adverse_event_table(Cohort(patients, pd.DataFrame(), adverse_events=none))
    assert empty["term"].tolist() == [ANY_EVENT]
    assert empty["patients"].tolist() == [0]
    absent = adverse_event_table(Cohort(patients, pd.DataFrame()))  # not collected
    assert absent.empty and absent.attrs["not_collected"] == "adverse_events"


def test_adverse_events_refuse_unknown_patient(ae_cohort):
    ae_cohort.adverse_events = pd.concat(
        [ae_cohort.adverse_events, _events([("zz9", "nausea", False, "mild")])]
    )
    with pytest.raises(ValueError, match="1 row\\(s\\) of `adverse_events`"):
        adverse_event_table(ae_cohort)


def test_adverse_events_small_cells(ae_cohort):
    ae_cohort.patients = pd.concat([ae_cohort.patients, _patients({"im": 5})])
    t = adverse_event_table(ae_cohort, min_cell=11)
    # iv's 15 of 148 would be shown alone, but oral's hidden 1 and im's hidden 0 would
    # then add up to the overall 16 minus 15 = 1 person: hidden sums in a margin must be
    # 0 or at least min_cell, so iv's count is hidden too.
    both = _row(t, route="iv", term="nausea")
    assert pd.isna(both["patients"]) and both["suppressed"]
    hidden = _row(t, route="oral", term="nausea")  # 1 of 29: blanked
    assert pd.isna(hidden["patients"]) and pd.isna(hidden["events"])
    assert math.isnan(hidden["percent"]) and hidden["suppressed"]
    small = t[t["route"] == "im"]  # a group of 5: n blanked too
    assert small["n"].isna().all() and small["suppressed"].all()
    # Complementary suppression: im's 5 would be all patients minus iv and oral, so the
    # next-smallest group (oral, 29) has its n hidden too, in every term.
    assert t.loc[t["route"] == "oral", "n"].isna().all()
    assert (t.loc[t["route"] == "iv", "n"] == 148).all()
    # Without the small group, oral's n stays. Its 1 with nausea is hidden, and since
    # iv's 15 would give it back from the overall table (16), iv's count is hidden too.
    ae_cohort.patients = ae_cohort.patients[ae_cohort.patients["route"] != "im"]
    t = adverse_event_table(ae_cohort, min_cell=11)
    assert _row(t, route="oral", term="nausea")["n"] == 29
    assert pd.isna(_row(t, route="iv", term="nausea")["patients"])
    # A zero is shown when nothing in its margin is hidden (0 is allowed).
    ae_cohort.adverse_events = ae_cohort.adverse_events[
        ~ae_cohort.adverse_events["patient_id"].isin(["oral0", "iv1"])
    ]
    t = adverse_event_table(ae_cohort, min_cell=11)
    zero = _row(t, route="oral", term="nausea")  # 0 of 29, iv 15 of 148
    assert zero["patients"] == 0 and not zero["suppressed"]


def test_adverse_events_bad_arguments(ae_cohort):
    with pytest.raises(ValueError, match="`min_cell` must be a positive integer"):
        adverse_event_table(ae_cohort, min_cell=0)
    with pytest.raises(ValueError, match="`alpha`"):
        adverse_event_table(ae_cohort, alpha=5)
    with pytest.raises(ValueError, match="missing the column"):
        adverse_event_table(ae_cohort, by="sex")


# --------------------------------------------------------------------------------------
# blood_pressure_table


def _sessions(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def test_blood_pressure_change_one_session_per_patient_is_a_t_interval():
    patients = _patients({"iv": 3})
    sessions = _sessions(
        [
            ("iv0", 1, "iv", 120, 130, 80, 85),
            ("iv1", 1, "iv", 130, 150, 80, 90),
            ("iv2", 1, "iv", 140, 185, 90, 112),
        ],
        ["patient_id", "session_number", "route", "sbp_pre", "sbp_peak", "dbp_pre", "dbp_peak"],
    )
    t = blood_pressure_table(Cohort(patients, pd.DataFrame(), sessions))
    sbp = _row(t, measure="sbp")
    # Changes 10, 20, 45: mean 25, SD sqrt(325) = 18.03; 95% CI 25 -+ t(0.975, 2) SD/sqrt(3).
    half = stats.t.ppf(0.975, 2) * math.sqrt(325) / math.sqrt(3)
    assert sbp["change_mean"] == pytest.approx(25)
    assert sbp["change_sd"] == pytest.approx(math.sqrt(325))
    assert (sbp["change_ci_low"], sbp["change_ci_high"]) == pytest.approx((25 - half, 25 + half))
    assert (sbp["pre_mean"], sbp["peak_mean"]) == pytest.approx((130, 155))
    # Peak 185 >= 180 and rise 45 >= 40 (iv2); DBP 112 >= 110, rise 22 < 25.
    assert (sbp["n_peak_over"], sbp["n_rise_over"]) == (1, 1)
    dbp = _row(t, measure="dbp")
    assert (dbp["n_peak_over"], dbp["n_rise_over"]) == (1, 0)
    either = _row(t, measure="sbp_or_dbp")
    assert (either["n_sessions"], either["n_peak_over"], either["n_rise_over"]) == (3, 1, 1)
    assert either["pct_peak_over"] == pytest.approx(100 / 3)
    assert math.isnan(either["change_mean"])


def test_blood_pressure_thresholds_are_inclusive_and_arguments():
    patients = _patients({"iv": 2})
    cols = ["patient_id", "session_number", "sbp_pre", "sbp_peak", "dbp_pre", "dbp_peak"]
    sessions = _sessions([("iv0", 1, 140, 180, 85, 110), ("iv1", 1, 139, 178, 84, 108)], cols)
    cohort = Cohort(patients, pd.DataFrame(), sessions)
    t = blood_pressure_table(cohort, by="route")
    # iv0: peak 180/110 and rise 40/25, each exactly at the threshold, counts; iv1 does not.
    for measure in ("sbp", "dbp", "sbp_or_dbp"):
        row = _row(t, measure=measure)
        assert (row["n_peak_over"], row["n_rise_over"]) == (1, 1)
    t = blood_pressure_table(cohort, by="route", sbp_peak=178, sbp_rise=50)
    sbp = _row(t, measure="sbp")
    assert (sbp["n_peak_over"], sbp["n_rise_over"]) == (2, 0)
    assert sbp["peak_criterion"] == "SBP >= 178 mmHg"
    assert sbp["rise_criterion"] == "SBP rise >= 50 mmHg"


def test_blood_pressure_interval_is_cluster_robust_by_patient():
    rng = np.random.default_rng(3)
    ids = np.repeat([f"p{k}" for k in range(12)], 4)
    pre = rng.normal(125, 10, len(ids)).round()
    patient_effect = np.repeat(rng.normal(0, 6, 12), 4)
    peak = (pre + 10 + patient_effect + rng.normal(0, 3, len(ids))).round()
    sessions = pd.DataFrame(
        {
            "patient_id": ids,
            "session_number": np.tile([1, 2, 3, 4], 12),
            "sbp_pre": pre,
            "sbp_peak": peak,
            "dbp_pre": 80,
            "dbp_peak": 85,
        }
    )
    patients = pd.DataFrame({"patient_id": [f"p{k}" for k in range(12)], "route": "iv"})
    t = blood_pressure_table(Cohort(patients, pd.DataFrame(), sessions), by=())
    sbp = _row(t, measure="sbp")
    # Reference: statsmodels OLS of the change on a constant, CR1 cluster covariance by
    # patient, t on G - 1 = 11 df.
    change = peak - pre
    fit = sm.OLS(change, np.ones(len(change))).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(ids)[0]}, use_t=True
    )
    low, high = fit.conf_int()[0]
    assert sbp["change_mean"] == pytest.approx(change.mean())
    assert (sbp["change_ci_low"], sbp["change_ci_high"]) == pytest.approx((low, high))
    assert (sbp["n_patients"], sbp["n_sessions"]) == (12, 48)


def test_blood_pressure_missing_readings_and_grouping_columns():
    patients = pd.DataFrame({"patient_id": ["a", "b"], "route": "iv", "sex": ["female", "male"]})
    sessions = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b"],
            "session_number": [1, 2, 1],
            "route": "iv",
            "phase": ["induction", "maintenance", "induction"],
            "sbp_pre": pd.array([120, None, 130], dtype="Int64"),
            "sbp_peak": pd.array([130, 150, 140], dtype="Int64"),
            "dbp_pre": pd.array([80, 80, 80], dtype="Int64"),
            "dbp_peak": pd.array([90, 90, 90], dtype="Int64"),
        }
    )
    cohort = Cohort(patients, pd.DataFrame(), sessions)
    t = blood_pressure_table(cohort, by=("route", "phase"))
    assert _row(t, phase="induction", measure="sbp")["n_sessions"] == 2
    assert _row(t, phase="maintenance", measure="sbp")["n_sessions"] == 0
    assert _row(t, phase="maintenance", measure="dbp")["n_sessions"] == 1
    by_sex = blood_pressure_table(cohort, by="sex")  # a patients column
    assert _row(by_sex, sex="female", measure="dbp")["n_sessions"] == 2


def test_blood_pressure_small_groups_blanked():
    patients = _patients({"iv": 3})
    cols = ["patient_id", "session_number", "sbp_pre", "sbp_peak", "dbp_pre", "dbp_peak"]
    sessions = _sessions([(f"iv{k}", 1, 120, 130, 80, 88) for k in range(3)], cols)
    t = blood_pressure_table(Cohort(patients, pd.DataFrame(), sessions), by=(), min_cell=11)
    assert t["suppressed"].all()
    for column in ("n_patients", "n_sessions", "change_mean", "change_sd", "pct_peak_over"):
        assert t[column].isna().all(), column


def test_blood_pressure_without_sessions_table():
    t = blood_pressure_table(Cohort(_patients({"iv": 3}), pd.DataFrame()))
    assert t.empty and "change_mean" in t.columns


# --------------------------------------------------------------------------------------
# dissociation_table


def test_dissociation_distribution_and_strict_threshold():
    patients = _patients({"iv": 2, "oral": 1})
    sessions = pd.DataFrame(
        {
            "patient_id": ["iv0", "iv0", "iv1", "iv1", "oral0"],
            "session_number": [1, 2, 1, 2, 1],
            "route": ["iv"] * 4 + ["oral"],
            "cadss_total": pd.array([12, 4, 20, 5, None], dtype="Int64"),
        }
    )
    t = dissociation_table(Cohort(patients, pd.DataFrame(), sessions))
    iv = _row(t, route="iv")
    # Values 4, 5, 12, 20: mean 10.25, median 8.5, quartiles (type 7) 4.75 and 14.
    assert (iv["n_patients"], iv["n_sessions"]) == (2, 4)
    assert iv["mean"] == pytest.approx(10.25)
    assert iv["sd"] == pytest.approx(np.std([4, 5, 12, 20], ddof=1))
    assert (iv["median"], iv["q1"], iv["q3"]) == pytest.approx((8.5, 4.75, 14.0))
    assert iv["n_over"] == 3  # 4 is not > 4
    assert iv["pct_over"] == pytest.approx(75.0)
    assert iv["criterion"] == "CADSS > 4"
    oral = _row(t, route="oral")
    assert oral["n_sessions"] == 0 and math.isnan(oral["mean"])
    t = dissociation_table(Cohort(patients, pd.DataFrame(), sessions), threshold=12)
    assert _row(t, route="iv")["n_over"] == 1


def test_dissociation_by_session_number_and_small_cells():
    cohort = synthetic_cohort(n_patients=60, seed=2)
    t = dissociation_table(cohort, by=("route", "session_number"), min_cell=11)
    shown = t[~t["suppressed"]]
    assert ((shown["n_patients"] == 0) | (shown["n_patients"] >= 11)).all()
    small = t["n_patients"].isna()
    assert t.loc[small, ["mean", "median", "q1", "q3", "pct_over"]].isna().all().all()
    over = pd.to_numeric(t["n_over"]).dropna()
    assert not ((over >= 1) & (over <= 10)).any()


# --------------------------------------------------------------------------------------
# dose_summary


def test_dose_summary_exposure_and_induction_completion():
    patients = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "route": ["iv"] * 3 + ["oral"]})
    sessions = pd.DataFrame(
        {
            "patient_id": ["a"] * 7 + ["b"] * 6 + ["d"] * 2,
            "session_number": [*range(1, 8), *range(1, 7), 1, 2],
            "phase": ["induction"] * 6 + ["maintenance"] + ["induction"] * 6 + ["induction"] * 2,
            # b's sixth session was stopped: b did not complete the 6-session induction.
            "completed": [True] * 12 + [False] + [True, True],
            "dose_mg": [35.0] * 13 + [100.0, 150.0],
            "dose_mg_per_kg": [0.5] * 6 + [0.7] + [0.5] * 6 + [None, None],
        }
    )
    t = dose_summary(Cohort(patients, pd.DataFrame(), sessions))
    iv = _row(t, route="iv")
    # Sessions per patient 7, 6, 0 (c has none): mean 13/3, median 6, quartiles 3 and 6.5.
    assert (iv["n_patients"], iv["sessions"]) == (3, 13)
    assert iv["sessions_per_patient_mean"] == pytest.approx(13 / 3)
    assert (
        iv["sessions_per_patient_median"],
        iv["sessions_per_patient_q1"],
        iv["sessions_per_patient_q3"],
    ) == pytest.approx((6.0, 3.0, 6.5))
    assert iv["pct_sessions_completed"] == pytest.approx(100 * 12 / 13)
    assert (iv["induction_n"], iv["induction_completed"]) == (3, 1)
    assert iv["maintenance_patients"] == 1
    assert iv["dose_mg_per_kg_median"] == pytest.approx(0.5)
    assert iv["dose_mg_per_kg_q3"] == pytest.approx(0.5)
    oral = _row(t, route="oral")  # planned 12 oral sessions, 2 held
    assert (oral["induction_completed"], oral["dose_mg_median"]) == (0, 125.0)
    assert math.isnan(oral["dose_mg_per_kg_median"])
    t = dose_summary(
        Cohort(patients, pd.DataFrame(), sessions), induction_sessions={"iv": 5, "oral": 2}
    )
    assert _row(t, route="iv")["induction_completed"] == 2
    assert _row(t, route="oral")["induction_completed"] == 1
    assert _row(t, route="oral")["pct_induction_completed"] == 100.0


def test_dose_summary_small_cells_on_synthetic_cohort():
    cohort = synthetic_cohort(n_patients=120, seed=4)
    t = dose_summary(cohort, min_cell=11)
    for count in ("n_patients", "induction_completed", "maintenance_patients"):
        values = pd.to_numeric(t[count]).dropna()
        assert not ((values >= 1) & (values <= 10)).any(), count
    small = t["n_patients"].isna()
    assert t.loc[small, "sessions_per_patient_mean"].isna().all()
    overall = dose_summary(cohort, by=())
    assert overall["n_patients"].tolist() == [120]
    assert overall["sessions"].tolist() == [len(cohort.sessions)]


# --------------------------------------------------------------------------------------
# properties of the small-cell rule


@st.composite
def _ae_cohorts(draw):
    sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=3))
    patients = _patients({f"r{k}": n for k, n in enumerate(sizes)})
    ids = patients["patient_id"].tolist()
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(ids),
                st.sampled_from(["nausea", "dizziness", "headache"]),
                st.booleans(),
                st.sampled_from(["mild", "moderate", "severe"]),
            ),
            max_size=120,
        )
    )
    return Cohort(patients, pd.DataFrame(), adverse_events=_events(rows))


@given(cohort=_ae_cohorts(), min_cell=st.integers(2, 15))
def test_property_adverse_event_percent_and_suppression(cohort, min_cell):
    raw = adverse_event_table(cohort)
    percent = raw["percent"].dropna()
    assert ((percent >= 0) & (percent <= 100)).all()
    assert (raw["ci_low"] <= raw["percent"] + 1e-9).all()
    assert (raw["percent"] <= raw["ci_high"] + 1e-9).all()

    t = adverse_event_table(cohort, min_cell=min_cell)
    for column in ("n", "patients", "events"):
        shown = pd.to_numeric(t[column]).dropna()
        assert not ((shown >= 1) & (shown < min_cell)).any(), column
    complement = (pd.to_numeric(t["n"]) - pd.to_numeric(t["patients"])).dropna()
    assert not ((complement >= 1) & (complement < min_cell)).any()
    assert t.loc[t["patients"].isna(), "percent"].isna().all()
    # Unsuppressed rows are unchanged.
    keep = ~t["suppressed"]
    pd.testing.assert_series_equal(
        t.loc[keep, "percent"], raw.loc[keep, "percent"], check_names=False
    )


@given(n_patients=st.integers(1, 40), seed=st.integers(0, 50), min_cell=st.integers(2, 15))
def test_property_session_tables_never_show_small_counts(n_patients, seed, min_cell):
    cohort = synthetic_cohort(n_patients=n_patients, seed=seed)
    tables = {
        "bp": (blood_pressure_table(cohort, min_cell=min_cell), ["n_patients"]),
        "cadss": (dissociation_table(cohort, min_cell=min_cell), ["n_patients"]),
        "dose": (
            dose_summary(cohort, min_cell=min_cell),
            ["n_patients", "induction_completed", "maintenance_patients"],
        ),
    }
    for name, (table, people) in tables.items():
        for column in people:
            shown = pd.to_numeric(table[column]).dropna()
            assert not ((shown >= 1) & (shown < min_cell)).any(), (name, column)
        for column in [c for c in table.columns if c.startswith("pct_")]:
            pct = pd.to_numeric(table[column]).dropna()
            assert ((pct >= 0) & (pct <= 100)).all(), (name, column)
    bp = tables["bp"][0]
    for count in ("n_peak_over", "n_rise_over"):
        shown = pd.to_numeric(bp[count]).dropna()
        assert not ((shown >= 1) & (shown < min_cell)).any()


# --------------------------------------------------------------------------------------
# figures


def test_safety_figures_draw_their_tables():
    cohort = synthetic_cohort(n_patients=80, seed=1)
    figures = [
        plot_adverse_events(adverse_event_table(cohort, min_cell=11)),
        plot_blood_pressure(blood_pressure_table(cohort, min_cell=11)),
        plot_dissociation(dissociation_table(cohort, min_cell=11)),
        plot_dissociation(
            dissociation_table(cohort, by=("route", "session_number"), min_cell=11),
            x="session_number",
        ),
    ]
    for fig in figures:
        assert isinstance(fig, Figure) and fig.axes
