"""Report tables on small cohorts whose every number can be checked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.agreement import instrument_agreement
from analysis.endpoints import REASONS, Visit, derive_endpoints, endpoint_accounting
from analysis.rates import rate_table
from analysis.schema import Cohort
from analysis.synthetic import synthetic_cohort
from analysis.tables import (
    accounting_summary,
    agreement_table,
    assessments_per_patient,
    cohort_endpoints,
    completeness_table,
    deidentification_summary,
    imputation_sensitivity,
    item_missingness,
    outcome_rates,
    table_one,
    validation_summary,
    visits_in_schedule_order,
)


def _gad7(patient_id: str, day: int, items: list, total=None) -> dict:
    row = {"patient_id": patient_id, "instrument": "GAD7", "study_day": day, "total": total}
    row.update({f"item_{k}": v for k, v in enumerate(items, 1)})
    return row


@pytest.fixture(scope="module")
def small_cohort() -> Cohort:
    patients = pd.DataFrame(
        {
            "patient_id": ["p1", "p2", "p3", "p4"],
            "route": ["iv", "iv", "im", "oral"],
            "age": [25, 35, 45, 90],
            "sex": ["female", "male", "female", "female"],
        }
    )
    assessments = pd.DataFrame(
        [
            _gad7("p1", -3, [2, 2, 2, 2, 2, 2, 2]),  # baseline
            _gad7("p1", 0, [3, 3, 3, 3, 3, 3, None]),  # baseline window again
            _gad7("p1", 8, [1, 1, 1, 1, 1, 1, 1]),  # week1
            _gad7("p2", 0, [None] * 7, total=15),  # baseline, total only
            _gad7("p2", 30, [0, None, 0, None, 0, 0, 0], total=1),  # week4
            _gad7("p3", 2, [1, 1, 1, 1, 1, 1, 1]),  # day1, no baseline
            {"patient_id": "p1", "instrument": "HAMA", "study_day": 0, "total": 20},
            {"patient_id": "p1", "instrument": "HAMA", "study_day": 2, "total": 18},  # no day1
        ]
    )
    return Cohort(patients, assessments)


def test_completeness_counts_each_patient_once_per_window(small_cohort):
    table = completeness_table(small_cohort).set_index(["instrument", "visit"])
    # GAD7 baseline window -14..0: p1 (twice) and p2 -> 2 of 4 enrolled.
    assert table.loc[("GAD7", "baseline"), ["expected", "observed"]].tolist() == [4, 2]
    assert table.loc[("GAD7", "baseline"), "percent"] == 50.0
    assert table.loc[("GAD7", "day1"), "observed"] == 1  # p3 on day 2
    assert table.loc[("GAD7", "week1"), "observed"] == 1  # p1 on day 8
    assert table.loc[("GAD7", "week4"), "observed"] == 1  # p2 on day 30
    assert table.loc[("GAD7", "week12"), "percent"] == 0.0
    # HAM-A: no day1 visit in the default schedule (docs/design.md), so day 2 counts nowhere.
    assert "day1" not in table.loc["HAMA"].index
    assert table.loc["HAMA", "observed"].tolist() == [1, 0, 0, 0, 0, 0]
    assert not table["suppressed"].any()


def test_completeness_follows_a_given_schedule(small_cohort):
    schedule = [Visit("baseline", 0, -7, 0), Visit("early", 3, 1, 14, ("GAD7",))]
    table = completeness_table(small_cohort, schedule)
    assert table[["instrument", "visit", "observed"]].values.tolist() == [
        ["GAD7", "baseline", 2],
        ["GAD7", "early", 2],  # p1 day 8, p3 day 2
        ["HAMA", "baseline", 1],
    ]


def test_completeness_suppresses_small_counts_and_complements(small_cohort):
    patients = pd.DataFrame({"patient_id": [f"p{k}" for k in range(30)], "route": "iv"})
    # 25 assessed at baseline (complement 5), 12 at week1 (complement 18), 0 at week2.
    assessments = pd.DataFrame(
        {
            "patient_id": [f"p{k}" for k in range(25)] + [f"p{k}" for k in range(12)],
            "instrument": "GAD7",
            "study_day": [0] * 25 + [7] * 12,
            "total": 10,
        }
    )
    table = completeness_table(Cohort(patients, assessments), min_cell=11).set_index("visit")
    assert table.loc["baseline", "suppressed"]
    assert pd.isna(table.loc["baseline", "observed"]) and pd.isna(table.loc["baseline", "percent"])
    assert table.loc["baseline", "expected"] == 30
    assert not table.loc["week1", "suppressed"] and table.loc["week1", "observed"] == 12
    assert not table.loc["week2", "suppressed"] and table.loc["week2", "observed"] == 0


def test_item_missingness_counts_among_assessments_with_items(small_cohort):
    table = item_missingness(small_cohort.assessments)
    gad = table[table["instrument"] == "GAD7"].set_index("item")
    # 5 GAD-7 assessments have items (p2's baseline is a total only).
    assert (gad["n"] == 5).all() and (gad["total_only"] == 1).all()
    assert gad["missing"].tolist() == [0, 1, 0, 1, 0, 0, 1]
    assert gad.loc[2, "percent"] == 20.0
    assert gad.loc[1, "label"] == "Feeling nervous, anxious, or on edge"
    # The two HAM-A assessments are totals only: no row per item has a denominator.
    hama = table[table["instrument"] == "HAMA"]
    assert len(hama) == 14 and (hama["n"] == 0).all() and (hama["total_only"] == 2).all()
    assert hama["percent"].isna().all()


def test_item_missingness_suppression():
    items = {f"item_{k}": [1] * 20 for k in range(1, 8)}
    items["item_1"] = [None] * 3 + [1] * 17
    table = item_missingness(pd.DataFrame({"instrument": "GAD7", **items}), min_cell=11)
    assert table.loc[0, "suppressed"] and pd.isna(table.loc[0, "missing"])
    assert table.loc[0, "n"] == 20
    assert table.loc[1:, "missing"].tolist() == [0] * 6


def test_assessments_per_patient_distribution(small_cohort):
    table = assessments_per_patient(small_cohort.assessments)
    assert table[["instrument", "assessments", "patients", "percent"]].values.tolist() == [
        ["GAD7", 1, 1, 33.3],  # p3
        ["GAD7", 2, 1, 33.3],  # p2
        ["GAD7", 3, 1, 33.3],  # p1
        ["HAMA", 2, 1, 100.0],  # p1
    ]


def test_assessments_per_patient_complementary_suppression():
    # 5 patients with one assessment, 20 with two, 30 with three.
    counts = {1: 5, 2: 20, 3: 30}
    ids, n = [], 0
    for k, patients in counts.items():
        for _ in range(patients):
            ids += [f"p{n}"] * k
            n += 1
    table = assessments_per_patient(
        pd.DataFrame({"patient_id": ids, "instrument": "GAD7"}), min_cell=11
    )
    # 5 is small; 55 - 20 - 30 would reveal it, so the next smallest (20) goes too.
    assert table["suppressed"].tolist() == [True, True, False]
    assert table["patients"].isna().tolist() == [True, True, False]
    assert table.loc[2, "patients"] == 30


def test_validation_summary_on_valid_cohort(small_cohort):
    cohort = synthetic_cohort(n_patients=30, seed=1)
    table = validation_summary(cohort)
    assert table["check"].eq("all checks passed").all()
    assert table["failures"].eq(0).all()
    assert table.set_index("table").loc["patients", "rows"] == 30


def test_validation_summary_counts_failures():
    cohort = synthetic_cohort(n_patients=30, seed=1)
    patients = cohort.patients.copy()
    patients["route"] = patients["route"].astype(object)
    patients.loc[[0, 3], "route"] = "rectal"
    table = validation_summary(Cohort(patients, cohort.assessments))
    bad = table[table["column"] == "route"]
    assert bad["table"].tolist() == ["patients"]
    assert bad["failures"].tolist() == [2]
    assert table.set_index("table").loc["assessments", "check"] == "all checks passed"


def test_deidentification_summary_on_clean_data():
    table = deidentification_summary(synthetic_cohort(n_patients=30, seed=1))
    assert list(table.columns) == ["table", "check", "columns_checked", "n_flagged"]
    assert {"patients", "assessments"} <= set(table["table"])
    assert table["n_flagged"].eq(0).all() and table["columns_checked"].gt(0).all()


def test_table_one_overall_counts(small_cohort):
    table = table_one(small_cohort).set_index(["variable", "level"])["Overall"]
    assert table[("n", "")] == "4"
    assert table[("age", "mean (SD)")] == "48.8 (28.7)"  # mean 48.75, SD sqrt(2468.75 / 3) = 28.69
    assert table[("age", "median [IQR]")] == "40.0 [32.5, 56.2]"  # numpy linear quantiles
    assert table[("sex", "female")] == "3 (75.0%)"
    assert table[("sex", "male")] == "1 (25.0%)"
    assert table[("route", "iv")] == "2 (50.0%)"
    assert ("sex", "missing") not in table.index


def test_table_one_by_group_has_a_column_per_level(small_cohort):
    table = table_one(small_cohort, by="route")
    assert table.columns.tolist() == ["variable", "level", "im", "iv", "oral", "Overall"]
    rows = table.set_index(["variable", "level"])
    assert rows.loc[("n", ""), ["im", "iv", "oral"]].tolist() == ["1", "2", "1"]
    assert rows.loc[("sex", "male"), "im"] == "0 (0.0%)"
    assert rows.loc[("sex", "male"), "iv"] == "1 (50.0%)"


def test_table_one_small_cell_suppression():
    n = 40
    patients = pd.DataFrame(
        {
            "patient_id": [f"p{k}" for k in range(n)],
            # 25 female, 12 male, 3 other: "other" is small and, being the only small
            # level, would be n - 25 - 12; the next smallest (male) is suppressed too.
            "sex": ["female"] * 25 + ["male"] * 12 + ["other"] * 3,
            # 35 yes, 5 no: the complement of "yes" is small.
            "comorbid_depression": [True] * 35 + [False] * 5,
            # 20 yes, 15 no, 5 missing: "no" is hidden, "missing" small.
            "treatment_resistant": [True] * 20 + [False] * 15 + [None] * 5,
            "route": ["iv"] * 35 + ["im"] * 5,
        }
    )
    rows = table_one(patients, by="route", min_cell=11).set_index(["variable", "level"])
    overall = rows["Overall"]
    assert overall[("sex", "female")] == "25 (62.5%)"
    assert overall[("sex", "other")] == "<11"
    assert overall[("sex", "male")] == "suppressed"
    assert overall[("comorbid_depression", "yes")] == "suppressed"
    assert overall[("treatment_resistant", "yes")] == "20 (50.0%)"
    assert overall[("treatment_resistant", "missing")] == "<11"
    # The im group has 5 patients: only its n is shown, as <11.
    assert rows.loc[("n", ""), "im"] == "<11"
    assert (rows["im"].drop(("n", "")) == "").all()
    # ... and iv (35) would give it back as Overall minus iv: hidden too (complementary).
    assert rows.loc[("n", ""), "iv"] == "suppressed"
    assert (rows["iv"].drop(("n", "")) == "").all()
    assert (
        table_one(patients, min_cell=None)
        .set_index(["variable", "level"])
        .loc[("sex", "other"), "Overall"]
        == "3 (7.5%)"
    )


# --------------------------------------------------------------------------------------
# outcome report tables

# HAM-A rated as totals only: no Cronbach's alpha, so a reliability is given (docs/design.md).
HAMA_RELIABILITY = {"HAMA": {"reliability": 0.9}}


@pytest.fixture(scope="module")
def two_scales() -> Cohort:
    """Three patients rated on both scales at baseline and week 4 (p3: GAD-7 week 1 only)."""
    patients = pd.DataFrame(
        {"patient_id": ["p1", "p2", "p3", "p4"], "route": ["iv", "oral", "iv", "im"],
         "sex": "female"}
    )  # fmt: skip
    rows = [
        # patient, instrument, day, total
        ("p1", "GAD7", 0, 16), ("p1", "GAD7", 28, 6),  # response, -62.5%
        ("p2", "GAD7", -2, 12), ("p2", "GAD7", 30, 11),
        ("p3", "GAD7", 0, 10), ("p3", "GAD7", 7, 4),  # response and remission at week 1
        ("p1", "HAMA", 0, 24), ("p1", "HAMA", 27, 10),
        ("p2", "HAMA", 0, 18), ("p2", "HAMA", 29, 14),
        ("p3", "HAMA", 0, 20),
    ]  # fmt: skip
    assessments = pd.DataFrame(rows, columns=["patient_id", "instrument", "study_day", "total"])
    return Cohort(patients, assessments)


def test_cohort_endpoints_stacks_instruments_and_merges_patient_columns(two_scales):
    ep = cohort_endpoints(two_scales, criteria=HAMA_RELIABILITY)
    assert ep[["patient_id", "instrument", "visit"]].values.tolist() == [
        ["p1", "GAD7", "week4"],
        ["p2", "GAD7", "week4"],
        ["p3", "GAD7", "week1"],
        ["p1", "HAMA", "week4"],
        ["p2", "HAMA", "week4"],
    ]
    # primary_diagnosis is not in this patients table: skipped; sex was not asked for.
    assert ep.columns[-2:].tolist() == ["imputed", "route"]
    assert ep["route"].tolist() == ["iv", "oral", "iv", "iv", "oral"]
    # visit stays the string column of derive_endpoints (not a Categorical).
    assert not isinstance(ep["visit"].dtype, pd.CategoricalDtype)
    assert ep["response"].tolist() == [True, False, True, True, False]


def test_cohort_endpoints_options(two_scales):
    gad7 = cohort_endpoints(two_scales, "GAD7", patient_columns=())
    assert gad7.columns.tolist() == derive_endpoints(two_scales, "GAD7").columns.tolist()
    # bocf: every scheduled post-baseline GAD-7 visit (6) for each of the 3 patients.
    assert len(cohort_endpoints(two_scales, "GAD7", impute="bocf")) == 18
    # Per-instrument criteria: a 40% response cut-off for the GAD-7 only.
    ep = cohort_endpoints(
        two_scales, criteria={"GAD7": {"response_reduction": 40}, **HAMA_RELIABILITY}
    )
    assert ep.loc[ep["instrument"] == "GAD7", "response"].tolist() == [True, False, True]
    with pytest.raises(ValueError, match="would overwrite endpoint columns"):
        cohort_endpoints(two_scales, "GAD7", patient_columns=("route", "visit"))


@pytest.fixture(scope="module")
def synthetic():
    cohort = synthetic_cohort(60, seed=1)
    return cohort, cohort_endpoints(cohort)


def test_cohort_endpoints_equals_derive_endpoints_per_instrument(synthetic):
    cohort, ep = synthetic
    by_hand = pd.concat(
        [derive_endpoints(cohort, "GAD7"), derive_endpoints(cohort, "HAMA")], ignore_index=True
    ).merge(cohort.patients[["patient_id", "route", "primary_diagnosis"]], on="patient_id")
    pd.testing.assert_frame_equal(ep, by_hand)


def test_outcome_rates_stack_rate_tables_and_drop_undefined_cells(two_scales):
    ep = cohort_endpoints(two_scales, criteria=HAMA_RELIABILITY)
    t = outcome_rates(ep, ["response", "recovery"])
    assert t.columns.tolist() == [
        "outcome", "instrument", "visit", "n", "events", "rate", "ci_low", "ci_high",
        "suppressed",
    ]  # fmt: skip
    assert t[["outcome", "instrument", "visit", "n", "events"]].values.tolist() == [
        ["response", "GAD7", "week1", 1, 1],
        ["response", "GAD7", "week4", 2, 1],
        ["response", "HAMA", "week4", 2, 1],
        # recovery (GAD-7 baseline >= 8, score < 8): p1 16 -> 6, p2 12 -> 11, p3 10 -> 4.
        # HAM-A has no recovery: its n = 0 cell is left out.
        ["recovery", "GAD7", "week1", 1, 1],
        ["recovery", "GAD7", "week4", 2, 1],
    ]
    with pytest.raises(ValueError, match="must not contain 'outcome'"):
        outcome_rates(ep, by=("outcome",))


def test_outcome_rates_equal_rate_table_per_outcome(synthetic):
    _, ep = synthetic
    t = outcome_rates(ep, min_cell=11)
    assert t["outcome"].unique().tolist() == [
        "response", "partial_response", "remission", "reliable_improvement",
        "reliable_deterioration", "recovery", "reliable_recovery",
    ]  # fmt: skip
    for outcome, rows in t.groupby("outcome", sort=False):
        subset = ep if "recovery" not in outcome else ep[ep["instrument"] == "GAD7"]
        expected = rate_table(subset, outcome, min_cell=11)
        pd.testing.assert_frame_equal(rows.drop(columns="outcome").reset_index(drop=True), expected)
    shown = t[["n", "events"]].apply(pd.to_numeric)
    assert not shown.stack().between(1, 10).any()
    assert not (shown["n"] - shown["events"]).between(1, 10).any()


def test_imputation_sensitivity_by_hand(two_scales):
    t = imputation_sensitivity(two_scales, "GAD7", outcomes="response")
    # week 4: observed p1 (response) and p2; locf adds p3 (week-1 response carried);
    # bocf gives p3 its baseline (no response).
    assert t[["impute", "n", "events"]].values.tolist() == [
        ["observed", 2, 1],
        ["locf", 3, 2],
        ["bocf", 3, 1],
    ]
    assert t.columns.tolist() == [
        "outcome", "instrument", "impute", "n", "events", "rate", "ci_low", "ci_high",
        "suppressed",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="`impute`"):
        imputation_sensitivity(two_scales, "GAD7", impute=("observed", "mean"))


def test_imputation_sensitivity_equals_rates_of_each_derivation(synthetic):
    cohort, _ = synthetic
    t = imputation_sensitivity(cohort, visit="week8", min_cell=11)
    assert t["impute"].tolist()[:3] == ["observed", "locf", "bocf"]
    for (outcome, instrument, impute), row in t.set_index(
        ["outcome", "instrument", "impute"]
    ).iterrows():
        ep = derive_endpoints(cohort, instrument, impute=impute).query("visit == 'week8'")
        expected = rate_table(ep, outcome, by=(), min_cell=11).iloc[0]
        assert row.equals(expected), (outcome, instrument, impute)


def test_accounting_summary_counts_every_reason():
    acc = pd.DataFrame(
        {"instrument": ["GAD7"] * 40 + ["HAMA"] * 25,
         "reason": ["visit"] * 20 + ["baseline"] * 12 + ["superseded_in_window"] * 3
                   + ["no_baseline"] * 5 + ["visit"] * 25}
    )  # fmt: skip
    t = accounting_summary(acc)
    assert t.columns.tolist() == ["instrument", "reason", "assessments", "suppressed"]
    assert t["reason"].tolist() == list(REASONS[::-1]) * 2
    assert t["assessments"].sum() == len(acc)
    gad7 = t[t["instrument"] == "GAD7"].set_index("reason")["assessments"]
    assert gad7.to_dict() == {
        "visit": 20, "baseline": 12, "superseded_in_window": 3, "no_baseline": 5,
        "outside_schedule": 0, "unscorable": 0,
    }  # fmt: skip


def test_accounting_summary_suppression_is_complementary_within_an_instrument():
    acc = pd.DataFrame(
        {"instrument": "GAD7", "reason": ["visit"] * 20 + ["baseline"] * 12 + ["unscorable"] * 3}
    )
    t = accounting_summary(acc, min_cell=11).set_index("reason")
    # 3 unscorable is small; the smallest other non-zero count (12 baselines) goes too,
    # else the 3 would be the GAD-7 total minus the others. Zeros stay.
    assert t["suppressed"].to_dict() == {
        "visit": False, "baseline": True, "superseded_in_window": False,
        "no_baseline": False, "outside_schedule": False, "unscorable": True,
    }  # fmt: skip
    assert t.loc["visit", "assessments"] == 20 and pd.isna(t.loc["baseline", "assessments"])


def _accounting(**reasons: int) -> pd.DataFrame:
    rows = [reason for reason, count in reasons.items() for _ in range(count)]
    return pd.DataFrame({"instrument": "GAD7", "reason": rows})


def test_accounting_baseline_stays_shown_when_other_counts_can_take_its_place():
    # 3 unscorable and 2 outside the schedule are hidden (5 people together): the
    # smallest other non-zero count would be the 15 baselines, which completeness shows;
    # superseded (20) is hidden instead, the hidden counts then add up to 25
    acc = _accounting(
        baseline=15, visit=40, superseded_in_window=20, unscorable=3, outside_schedule=2
    )
    t = accounting_summary(acc, min_cell=11, patients=30).set_index("reason")["assessments"]
    assert t["baseline"] == 15 and t["visit"] == 40
    hidden = t[t.isna()].index.tolist()
    assert sorted(hidden) == ["outside_schedule", "superseded_in_window", "unscorable"]
    # the baseline's own complement small (30 - 25 = 5): hidden by the primary rule
    acc = _accounting(baseline=25, visit=40, superseded_in_window=20, unscorable=3)
    t = accounting_summary(acc, min_cell=11, patients=30).set_index("reason")["assessments"]
    assert pd.isna(t["baseline"])


def test_accounting_baseline_fallback_hides_rather_than_shows():
    # GAD-7 has baselines and 3 unscorable assessments, no other non-zero count: nothing
    # can take the baseline's place as the complement of the 3, so it stays hidden
    # (showing it would give 3 as the instrument's total minus the baseline).
    acc = _accounting(baseline=480, unscorable=3)
    t = accounting_summary(acc, min_cell=11, patients=500).set_index("reason")["assessments"]
    assert pd.isna(t["unscorable"]) and pd.isna(t["baseline"])
    assert (t.drop(["unscorable", "baseline"]) == 0).all()
    # other counts too small together: 3 + 2 + 4 = 9 hidden would stay a small sum
    acc = _accounting(baseline=480, unscorable=3, no_baseline=2, outside_schedule=4)
    t = accounting_summary(acc, min_cell=11, patients=500).set_index("reason")["assessments"]
    assert t[["unscorable", "no_baseline", "outside_schedule", "baseline"]].isna().all()


def test_accounting_summary_of_a_synthetic_cohort(synthetic):
    cohort, _ = synthetic
    acc = endpoint_accounting(cohort)
    t = accounting_summary(acc)
    expected = acc.groupby(["instrument", "reason"]).size()
    shown = t[t["assessments"] > 0].set_index(["instrument", "reason"])["assessments"]
    pd.testing.assert_series_equal(
        shown.sort_index(),
        expected.rename("assessments"),
        check_dtype=False,
        check_index_type=False,
    )


def _agreeing(agree_true: int, gad_only: int, ham_only: int, agree_false: int) -> pd.DataFrame:
    gad = [True] * agree_true + [True] * gad_only + [False] * ham_only + [False] * agree_false
    ham = [True] * agree_true + [False] * gad_only + [True] * ham_only + [False] * agree_false
    ids = [f"p{i}" for i in range(len(gad))]
    return pd.concat(
        [pd.DataFrame({"patient_id": ids, "instrument": name, "visit": "week4",
                       "response": values, "remission": values})
         for name, values in (("GAD7", gad), ("HAMA", ham))]
    )  # fmt: skip


def test_agreement_table_one_row_per_outcome():
    ep = _agreeing(20, 5, 10, 15)
    t = agreement_table(ep)
    assert t.columns.tolist() == [
        "outcome", "visit", "n", "observed_agreement", "kappa", "ci_low", "ci_high",
        "suppressed",
    ]  # fmt: skip
    assert t["outcome"].tolist() == ["response", "remission"]
    # 35 of 50 alike; kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40 (p_e = .5 x .6 + .5 x .4).
    assert t.loc[0, "n"] == 50 and t.loc[0, "observed_agreement"] == pytest.approx(0.7)
    assert t.loc[0, "kappa"] == pytest.approx(0.4)
    res = instrument_agreement(ep, "response", "week4")
    assert (t.loc[0, "ci_low"], t.loc[0, "ci_high"]) == (res.kappa.ci_low, res.kappa.ci_high)


@pytest.mark.parametrize(
    ("cells", "suppressed", "n_shown"),
    [
        ((20, 5, 10, 15), False, True),  # 35 agree, 15 disagree
        ((30, 3, 2, 15), True, True),  # 5 disagree: a small count of people
        ((4, 1, 1, 2), True, False),  # 8 patients: n hidden too
    ],
)
def test_agreement_table_suppression(cells, suppressed, n_shown):
    t = agreement_table(_agreeing(*cells), "response", min_cell=11)
    assert t.loc[0, "suppressed"] == suppressed
    assert pd.notna(t.loc[0, "n"]) == n_shown
    stats = t.loc[0, ["observed_agreement", "kappa", "ci_low", "ci_high"]]
    assert stats.isna().all() == suppressed


def test_visits_in_schedule_order(synthetic):
    _, ep = synthetic
    hama = visits_in_schedule_order(ep[ep["instrument"] == "HAMA"])
    assert hama["visit"].cat.ordered
    assert hama["visit"].cat.categories.tolist() == ["week1", "week2", "week4", "week8", "week12"]
    assert (
        hama["visit"].astype(str).tolist() == ep.loc[ep["instrument"] == "HAMA", "visit"].tolist()
    )
    assert ep["visit"].dtype == "string"  # the input is not modified


# --------------------------------------------------------------------------------------
# tables behind the publication figures and the MMRM contrast table (issue 12)

import numpy as np  # noqa: E402

from analysis.tables import (  # noqa: E402
    mean_scores,
    mmrm_contrasts,
    patient_exposure,
    patient_flow,
    severity_transitions,
    subgroup_comparisons,
)


@pytest.fixture(scope="module")
def demo():
    return synthetic_cohort(300, seed=2)


def _flow_cohort():
    patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(30)], "route": "iv"})
    rows = []
    for i in range(30):
        if i < 25:  # 25 with a baseline
            rows.append((f"p{i}", 0, 15))
        if i < 20:  # 20 of them seen at week 1, 12 at week 4
            rows.append((f"p{i}", 7, 9))
        if i < 12:
            rows.append((f"p{i}", 28, 6))
    a = pd.DataFrame(rows, columns=["patient_id", "study_day", "total"]).assign(instrument="GAD7")
    return Cohort(patients, a)


def test_patient_flow_counts_by_hand():
    flow = patient_flow(_flow_cohort())
    counts = dict(zip(flow["stage"] + ":" + flow["visit"], flow["patients"], strict=True))
    assert counts["treated:"] == 30 and counts["baseline:"] == 25
    assert counts["post_baseline:"] == 20
    assert counts["visit:week1"] == 20 and counts["visit:week4"] == 12
    assert counts["visit:day1"] == 0 and counts["visit:week12"] == 0
    assert flow.loc[flow["visit"] == "week4", "percent"].item() == 40.0


def test_patient_flow_suppression():
    flow = patient_flow(_flow_cohort(), min_cell=11)
    # 25 with a baseline of 30: the 5 without one would be revealed, so it is blanked
    row = flow[flow["stage"] == "baseline"].iloc[0]
    assert pd.isna(row["patients"]) and row["suppressed"]
    assert flow.loc[flow["visit"] == "week4", "patients"].item() == 12


def test_severity_transitions_rows_add_up_and_are_suppressed_in_pairs(demo):
    ep = cohort_endpoints(demo, "GAD7", patient_columns=())
    table = severity_transitions(ep)
    week4 = ep[ep["visit"] == "week4"]
    assert table["patients"].sum() == len(week4)
    per_band = table.groupby("baseline_severity")["percent"].sum()
    assert np.allclose(per_band[per_band > 0], 100, atol=0.2)
    small = severity_transitions(ep, min_cell=11)
    for _, rows in small.groupby("baseline_severity"):
        assert rows["suppressed"].sum() != 1  # never a single blanked cell in a band


def test_subgroup_comparisons_adjust_across_every_comparison(demo):
    from statsmodels.stats.multitest import multipletests

    columns = ("route", "primary_diagnosis", "treatment_resistant")
    ep = cohort_endpoints(demo, "GAD7", patient_columns=columns)
    table = subgroup_comparisons(ep, subgroups=columns)
    assert list(dict.fromkeys(table["subgroup"])) == list(columns)
    assert set(table.loc[table["subgroup"] == "route", "reference"]) == {"iv"}
    assert set(table.loc[table["subgroup"] == "treatment_resistant", "group"]) == {"yes"}
    ok = table["p_value"].notna()
    expected = multipletests(table.loc[ok, "p_value"], method="holm")[1]
    np.testing.assert_allclose(table.loc[ok, "p_adjusted"], expected)


def test_subgroup_comparisons_refuse_a_reference_they_cannot_use(demo):
    columns = ("route", "treatment_resistant")
    ep = cohort_endpoints(demo, "GAD7", patient_columns=columns)
    flipped = subgroup_comparisons(ep, subgroups=columns, references={"treatment_resistant": True})
    assert set(flipped.loc[flipped["subgroup"] == "treatment_resistant", "reference"]) == {"yes"}
    im = subgroup_comparisons(ep, subgroups=columns, references={"route": "im"})
    assert set(im.loc[im["subgroup"] == "route", "reference"]) == {"im"}
    # before: "yes" became no reference at all and "IV" silently the first level
    with pytest.raises(ValueError, match=r"`references\['treatment_resistant'\]`.*\[False, True\]"):
        subgroup_comparisons(ep, subgroups=columns, references={"treatment_resistant": "yes"})
    with pytest.raises(ValueError, match=r"`references\['route'\]` must be one of the levels"):
        subgroup_comparisons(ep, subgroups=columns, references={"route": "IV"})


def test_mean_scores_t_interval():
    # R: t.test(c(16, 12))$conf.int -> -11.41241 39.41241 (t 0.975 on 1 df = 12.7062)
    ep = pd.DataFrame(
        {
            "patient_id": ["a", "b"],
            "instrument": "GAD7",
            "visit": "week4",
            "target_day": 28,
            "baseline": [16, 12],
            "score": [6, 8],
            "route": "iv",
        }
    )
    table = mean_scores(ep)
    base = table[table["visit"] == "baseline"].iloc[0]
    assert base["mean"] == 14.0
    assert base["ci_low"] == pytest.approx(-11.41241, abs=1e-3)
    assert base["ci_high"] == pytest.approx(39.41241, abs=1e-3)
    small = mean_scores(ep, min_cell=11)
    assert small["suppressed"].all() and small["mean"].isna().all()


def test_patient_exposure_bands(demo):
    exposure = patient_exposure(demo)
    assert len(exposure) == len(demo.patients)
    assert list(exposure["dose_band"].cat.categories) == [
        "under 0.6 mg/kg",
        "0.6 to under 0.8 mg/kg",
        "0.8 mg/kg or more",
    ]
    weight_based = demo.patients["route"].isin(["iv", "im"]).to_numpy()
    assert exposure["dose_band"].notna().to_numpy().tolist() == weight_based.tolist()
    sessions = demo.sessions
    done = sessions[sessions["completed"].fillna(True).astype(bool) & (sessions["study_day"] <= 28)]
    counts = done.groupby("patient_id").size()
    merged = exposure.set_index("patient_id")["sessions_received"]
    assert (merged.reindex(counts.index) == counts).all()
    assert set(exposure["phase_group"]) <= {"maintenance", "induction_only"}


@pytest.mark.slow
def test_mmrm_contrasts_holm(demo):
    from statsmodels.stats.multitest import multipletests

    from analysis.mmrm import fit_mmrm

    ep = visits_in_schedule_order(cohort_endpoints(demo, "GAD7", patient_columns=("route",)))
    model = fit_mmrm(ep, "change ~ baseline + route + visit", subject="patient_id", visit="visit")
    table = mmrm_contrasts(model, "route", by="visit", reference="iv")
    assert list(dict.fromkeys(table["visit"].astype(str))) == [
        "day1",
        "week1",
        "week2",
        "week4",
        "week8",
        "week12",
    ]
    np.testing.assert_allclose(table["p_adjusted"], multipletests(table["p"], method="holm")[1])


def test_summaries_list_the_tables_the_data_supplied(small_cohort):
    """Both summaries take the cohort's tables from `cohort_tables(collected_only=True)`:
    an optional table supplied with no rows is listed (0 rows), one not supplied is not."""
    cohort = synthetic_cohort(n_patients=30, seed=1)
    no_events = cohort.adverse_events.iloc[:0]
    supplied = Cohort(
        cohort.patients,
        cohort.assessments,
        adverse_events=no_events,
        collected=("patients", "assessments", "adverse_events"),
    )
    table = validation_summary(supplied)
    assert table["table"].tolist() == ["patients", "assessments", "adverse_events"]
    assert table.set_index("table").loc["adverse_events", "rows"] == 0
    scanned = deidentification_summary(supplied)
    assert "sessions" not in set(scanned["table"])
    assert set(scanned["table"]) <= {"patients", "assessments", "adverse_events"}
