"""Report tables on small cohorts whose every number can be checked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.endpoints import Visit
from analysis.schema import Cohort
from analysis.synthetic import synthetic_cohort
from analysis.tables import (
    assessments_per_patient,
    completeness_table,
    deidentification_summary,
    item_missingness,
    table_one,
    validation_summary,
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
    # HAM-A: no day1 visit in the default schedule (DESIGN.md), so day 2 counts nowhere.
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
    assert (
        table_one(patients, min_cell=None)
        .set_index(["variable", "level"])
        .loc[("sex", "other"), "Overall"]
        == "3 (7.5%)"
    )
