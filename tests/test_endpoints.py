"""Endpoint derivation: hand-worked cases for every rule of docs/design.md, "Endpoint semantics".

Each small cohort below is worked by hand; the expected numbers are in the test. The
tests take the ``backend`` fixture, so every case runs on every engine: pandas (fast
path), pandas through the generic narwhals steps, Polars eager and lazy, and DuckDB
(``tests/_engines.py``).
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from _engines import ENGINES, Backend
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.endpoints import (
    DEFAULT_SCHEDULE,
    ENDPOINT_COLUMNS,
    REASONS,
    Visit,
    derive_endpoints,
    endpoint_accounting,
    make_schedule,
)
from analysis.instruments import GAD7, HAMA, MAX_ITEMS, Criteria, score_items
from analysis.schema import Cohort


@pytest.fixture(scope="module", params=ENGINES)
def backend(request) -> Backend:
    """The engine a test runs the derivation on; every hand-worked case runs on all."""
    return Backend(request.param)


POST_BASELINE = {
    name: [v.name for v in DEFAULT_SCHEDULE[1:] if name in v.instruments]
    for name in ("GAD7", "HAMA")
}


def totals(rows, instrument="GAD7"):
    """Assessments from ``(patient_id, study_day, total)`` tuples."""
    df = pd.DataFrame(rows, columns=["patient_id", "study_day", "total"])
    df.insert(1, "instrument", instrument)
    return df


def one(ep, patient, visit):
    """The endpoint row of a patient at a visit."""
    row = ep[(ep.patient_id == patient) & (ep.visit == visit)]
    assert len(row) == 1, row
    return row.iloc[0]


# --- Output shape -------------------------------------------------------------------------------


def test_columns_types_and_order(backend):
    df = totals([("b", 0, 12), ("b", 28, 6), ("a", -2, 10), ("a", 14, 9), ("a", 7, 7)])
    ep = backend.derive_endpoints(df, "GAD7")
    assert tuple(ep.columns) == ENDPOINT_COLUMNS
    assert ep[["patient_id", "visit"]].values.tolist() == [
        ["a", "week1"],
        ["a", "week2"],
        ["b", "week4"],
    ]
    assert ep.target_day.tolist() == [7, 14, 28]
    assert str(ep.score.dtype) == "Int64" and str(ep["pct_change"].dtype) == "Float64"
    for flag in ("response", "remission", "recovery", "imputed"):
        assert str(ep[flag].dtype) == "boolean"
    assert (ep.instrument == "GAD7").all() and not ep.imputed.any()


def test_cohort_input_and_other_instruments_ignored(backend):
    df = pd.concat([totals([("a", 0, 12), ("a", 7, 6)]), totals([("a", 0, 30)], "HAMA")])
    cohort = Cohort(patients=pd.DataFrame({"patient_id": ["a"], "route": ["iv"]}), assessments=df)
    ep = backend.derive_endpoints(cohort, GAD7)
    assert len(ep) == 1 and tuple(ep.columns) == ENDPOINT_COLUMNS
    # No HAM-A data: no rows (and no Jacobson-Truax threshold needed).
    assert backend.derive_endpoints(cohort.assessments.iloc[:2], "HAMA").empty


@pytest.mark.parametrize(
    ("convert", "kind"),
    [
        (pl.from_pandas, pl.DataFrame),
        (lambda df: pl.from_pandas(df).lazy(), pl.LazyFrame),
        (duckdb.from_df, duckdb.DuckDBPyRelation),
    ],
)
def test_result_is_of_the_input_kind(convert, kind):
    df = totals([("a", 0, 12), ("a", 7, 6)])
    assert isinstance(derive_endpoints(convert(df), "GAD7"), kind)


# --- Visit windows and baseline --------------------------------------------------------------


def test_closest_to_target_and_ties_to_the_earlier_day(backend):
    # week1 targets day 7 (window 4..10). a: days 6 and 8 are equally close -> day 6.
    # b: days 5 and 8 -> day 8 (1 day off rather than 2). c: days 4 and 10 -> day 4.
    df = totals(
        [
            ("a", 0, 10), ("a", 6, 8), ("a", 8, 2),
            ("b", 0, 10), ("b", 5, 8), ("b", 8, 2),
            ("c", 0, 10), ("c", 10, 8), ("c", 4, 2),
        ]
    )  # fmt: skip
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep.study_day.tolist() == [6, 8, 4]
    assert ep.score.tolist() == [8, 2, 2]


def test_baseline_is_the_latest_in_window_and_day0_counts(backend):
    # a: days -10 and -3 -> -3. b: days -5 and 0 -> day 0 (before the first dose).
    # c: only day -15 (outside the window -14..0) -> no baseline, no rows.
    df = totals(
        [
            ("a", -10, 20), ("a", -3, 16), ("a", 7, 8),
            ("b", -5, 20), ("b", 0, 12), ("b", 7, 8),
            ("c", -15, 20), ("c", 7, 8),
        ]
    )  # fmt: skip
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep.patient_id.tolist() == ["a", "b"]
    assert ep.baseline.tolist() == [16, 12]
    assert ep.change.tolist() == [-8, -4]
    assert ep["pct_change"].tolist() == [-50.0, pytest.approx(-100 / 3)]


def test_unscorable_assessment_does_not_hide_a_scorable_one(backend):
    df = pd.DataFrame(
        {
            "patient_id": ["a"] * 4,
            "instrument": "GAD7",
            "study_day": [-1, 0, 7, 9],
            "total": [14, None, None, 6],  # day 0 and day 7 have no items and no total
        }
    )
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep[["study_day", "baseline", "score"]].values.tolist() == [[9, 14, 6]]
    acc = backend.endpoint_accounting(df, "GAD7")
    assert acc.reason.tolist() == ["baseline", "unscorable", "unscorable", "visit"]


def test_prorated_scores_feed_the_endpoints(backend):
    # Baseline: six GAD-7 items summing to 9 (one missing) -> 10.5 -> 11 (half up).
    # Week 1: five items answered (too many missing) with a recorded total of 4.
    items = {f"item_{k}": [3, 1] for k in range(1, 8)}
    items["item_4"] = [0, None]
    items["item_5"] = [0, 1]
    items["item_6"] = [0, 1]
    items["item_7"] = [None, None]
    df = pd.DataFrame({"patient_id": ["a", "a"], "instrument": "GAD7", "study_day": [0, 7]})
    df = df.assign(**items, total=[None, 4])
    ep = backend.derive_endpoints(df, "GAD7")
    assert (ep.baseline[0], ep.score[0], ep.change[0]) == (11, 4, -7)
    assert score_items(df).score.tolist() == [11, 4]


# --- Outcome flags --------------------------------------------------------------------------


def test_response_and_partial_response_boundaries(backend):
    # Baseline 10 (and 12): -50% is a response, -40% and -25% partial, -20% neither.
    df = totals(
        [
            ("a", 0, 10), ("a", 7, 5), ("a", 14, 6), ("a", 28, 8), ("a", 56, 12),
            ("b", 0, 12), ("b", 7, 9),
        ]
    )  # fmt: skip
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep["pct_change"].tolist() == [-50.0, -40.0, -20.0, 20.0, -25.0]
    assert ep.response.tolist() == [True, False, False, False, False]
    assert ep.partial_response.tolist() == [False, True, False, False, True]


def test_baseline_of_zero(backend):
    # pct_change, response and partial response undefined; remission undefined (baseline
    # already under the cut-off); change and reliable deterioration defined.
    df = totals([("a", 0, 0), ("a", 7, 5)])
    row = backend.derive_endpoints(df, "GAD7").iloc[0]
    assert row.change == 5
    assert pd.isna(row["pct_change"]) and pd.isna(row.response) and pd.isna(row.partial_response)
    assert pd.isna(row.remission)
    assert row.reliable_deterioration and not row.reliable_improvement
    assert pd.isna(row.recovery) and pd.isna(row.reliable_recovery)
    assert (row.severity, row.baseline_severity) == ("mild", "minimal")


def test_remission_undefined_when_baseline_at_or_under_cutoff(backend):
    # GAD-7 remission: score <= 4; a baseline of 4 is already remitted -> NA.
    df = totals([("a", 0, 4), ("a", 7, 2), ("b", 0, 5), ("b", 7, 4), ("c", 0, 12), ("c", 7, 5)])
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep.remission.tolist() == [pd.NA, True, False]


def test_gad7_reliable_change_is_four_points(backend):
    # NHS Talking Therapies: reliable improvement is a drop of 4 or more.
    df = totals([("a", 0, 12), ("a", 7, 8), ("a", 14, 9), ("a", 28, 16), ("a", 56, 15)])
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep.change.tolist() == [-4, -3, 4, 3]
    assert ep.reliable_improvement.tolist() == [True, False, False, False]
    assert ep.reliable_deterioration.tolist() == [False, False, True, False]


def test_recovery_only_for_baseline_cases(backend):
    # Caseness GAD-7 >= 8. a: 8 -> 7 recovered, not reliably (drop 1). b: 12 -> 7 recovered
    # reliably (drop 5). c: 7 -> 2 not a case at baseline -> NA. d: 10 -> 8 still a case.
    df = totals(
        [
            ("a", 0, 8), ("a", 7, 7),
            ("b", 0, 12), ("b", 7, 7),
            ("c", 0, 7), ("c", 7, 2),
            ("d", 0, 10), ("d", 7, 8),
        ]
    )  # fmt: skip
    ep = backend.derive_endpoints(df, "GAD7")
    assert ep.recovery.tolist() == [True, True, pd.NA, False]
    assert ep.reliable_recovery.tolist() == [False, True, pd.NA, False]


def test_hama_has_no_recovery_and_matza_bands(backend):
    df = totals([("a", 0, 24), ("a", 7, 7), ("b", 0, 30), ("b", 7, 23)], "HAMA")
    ep = backend.derive_endpoints(df, "HAMA", criteria={"reliability": 0.9})
    assert ep.recovery.isna().all() and ep.reliable_recovery.isna().all()
    assert ep.severity.tolist() == ["minimal", "moderate"]
    assert ep.baseline_severity.tolist() == ["severe", "severe"]
    assert ep.remission.tolist() == [True, False]  # HAM-A remission: <= 7


def test_hama_jacobson_truax_from_cronbach_alpha(backend):
    # Four complete HAM-A baselines; the threshold is 1.96 x SD x sqrt(2 (1 - alpha)),
    # computed here independently with numpy.
    baseline_items = np.array(
        [[2] * 14, [3] * 14, [1] * 7 + [2] * 7, [2] * 7 + [3] * 7, [1, 2] * 7]
    )
    k = baseline_items.shape[1]
    item_var = baseline_items.var(axis=0, ddof=1).sum()
    totals_ = baseline_items.sum(axis=1)
    alpha = k / (k - 1) * (1 - item_var / totals_.var(ddof=1))
    threshold = 1.96 * totals_.std(ddof=1) * math.sqrt(2 * (1 - alpha))
    assert 0 < alpha < 1 and 3 < threshold < 20
    rows = []
    for i, items in enumerate(baseline_items):
        rows.append({"patient_id": f"p{i}", "study_day": 0, **_items(items)})
    # p0 drops by ceil(threshold) (reliable), p1 by floor(threshold) (not reliable),
    # p2 rises by ceil(threshold) (reliable deterioration).
    rows.append({"patient_id": "p0", "study_day": 7, "total": totals_[0] - math.ceil(threshold)})
    rows.append({"patient_id": "p1", "study_day": 7, "total": totals_[1] - math.floor(threshold)})
    rows.append({"patient_id": "p2", "study_day": 7, "total": totals_[2] + math.ceil(threshold)})
    df = pd.DataFrame(rows).assign(instrument="HAMA")
    ep = backend.derive_endpoints(df, "HAMA")
    assert ep.reliable_improvement.tolist() == [True, False, False]
    assert ep.reliable_deterioration.tolist() == [False, False, True]


def test_hama_jacobson_truax_with_given_reliability(backend):
    # Baselines 10, 20, 30: SD 10; r = 0.8 -> threshold 1.96 x 10 x sqrt(0.4) = 12.396.
    df = totals(
        [("a", 0, 10), ("b", 0, 20), ("c", 0, 30), ("b", 7, 7), ("c", 7, 18), ("a", 7, 23)],
        "HAMA",
    )
    ep = backend.derive_endpoints(df, "HAMA", criteria={"reliability": 0.8})
    assert ep.change.tolist() == [13, -13, -12]
    assert ep.reliable_deterioration.tolist() == [True, False, False]
    assert ep.reliable_improvement.tolist() == [False, True, False]
    # The same threshold asked of the GAD-7 (Jacobson-Truax instead of 4 points).
    gad = backend.derive_endpoints(
        df.assign(instrument="GAD7", total=df.total // 2),
        "GAD7",
        criteria=Criteria(reliability=0.8, remission_cutoff=4, severity_bands="spitzer2006"),
    )
    # Baselines 5, 10, 15: SD 5 -> threshold 6.198; changes 6, -7, -6: only -7 is reliable.
    assert gad.change.tolist() == [6, -7, -6]
    assert gad.reliable_improvement.tolist() == [False, True, False]
    assert not gad.reliable_deterioration.any()


def test_hama_jacobson_truax_needs_alpha_or_reliability(backend):
    df = totals([("a", 0, 10), ("b", 0, 20), ("a", 7, 5)], "HAMA")
    with pytest.raises(ValueError, match=r"criteria=\{'reliability': 0.9\}"):
        backend.derive_endpoints(df, "HAMA")
    with pytest.raises(ValueError, match="at least 2 patients"):
        backend.derive_endpoints(df[df.patient_id == "a"], "HAMA", criteria={"reliability": 0.9})


def _items(values):
    return {f"item_{k}": int(v) for k, v in enumerate(values, start=1)}


# --- Criteria overrides ---------------------------------------------------------------------


def test_criteria_overrides(backend):
    df = totals([("a", 0, 10), ("a", 7, 6), ("a", 14, 9), ("a", 28, 4)])
    default = backend.derive_endpoints(df, "GAD7")
    assert default.response.tolist() == [False, False, True]
    # A 40% response threshold (-40% is now a response), remission <= 6, 6-point RCI.
    ep = backend.derive_endpoints(
        df,
        "GAD7",
        criteria={"response_reduction": 40, "remission_cutoff": 6, "reliable_change": 6},
    )
    assert ep.response.tolist() == [True, False, True]
    assert ep.partial_response.tolist() == [False, False, False]
    assert ep.remission.tolist() == [True, False, True]
    assert ep.reliable_improvement.tolist() == [False, False, True]
    with pytest.raises(TypeError, match="`criteria` must be a Criteria"):
        backend.derive_endpoints(df, "GAD7", criteria=40)


def test_hama_score_sheet_bands_by_name(backend):
    df = totals([("a", 0, 31), ("a", 7, 17), ("b", 0, 25), ("b", 7, 18)], "HAMA")
    ep = backend.derive_endpoints(
        df, "HAMA", criteria={"severity_bands": "score_sheet", "reliable_change": 5}
    )
    assert ep.baseline_severity.tolist() == ["severe", "moderate_to_severe"]
    assert ep.severity.tolist() == ["mild", "mild_to_moderate"]
    with pytest.raises(ValueError, match="`severity_bands` must be one of"):
        backend.derive_endpoints(df, "HAMA", criteria={"severity_bands": "spitzer2006"})


# --- Imputation -----------------------------------------------------------------------------


def imputation_cohort():
    # a: baseline 15, observed week2 (10) and week8 (6).
    # b: baseline 12, nothing after. c: no baseline (only week1).
    return totals([("a", 0, 15), ("a", 14, 10), ("a", 56, 6), ("b", -2, 12), ("c", 7, 9)])


def test_observed(backend):
    ep = backend.derive_endpoints(imputation_cohort(), "GAD7")
    assert ep[["patient_id", "visit", "score"]].values.tolist() == [
        ["a", "week2", 10],
        ["a", "week8", 6],
    ]


def test_locf_starts_at_the_first_observed_visit(backend):
    ep = backend.derive_endpoints(imputation_cohort(), "GAD7", impute="locf")
    assert ep[["patient_id", "visit", "score", "imputed"]].values.tolist() == [
        ["a", "week2", 10, False],
        ["a", "week4", 10, True],
        ["a", "week8", 6, False],
        ["a", "week12", 6, True],
    ]
    assert ep.study_day.isna().tolist() == [False, True, False, True]
    # Outcomes come from the imputed score: week4 carries -5 (-33%): partial response.
    assert one(ep, "a", "week4").partial_response


def test_bocf_fills_every_visit_of_every_patient_with_a_baseline(backend):
    ep = backend.derive_endpoints(imputation_cohort(), "GAD7", impute="bocf")
    visits = POST_BASELINE["GAD7"]
    assert ep.patient_id.tolist() == ["a"] * len(visits) + ["b"] * len(visits)
    assert ep.visit.tolist() == visits * 2
    a = ep[ep.patient_id == "a"]
    assert a.score.tolist() == [15, 15, 10, 15, 6, 15]
    assert a.imputed.tolist() == [True, True, False, True, False, True]
    b = ep[ep.patient_id == "b"]
    assert (b.score == 12).all() and b.imputed.all() and b.study_day.isna().all()
    assert (b.change == 0).all() and not b.response.any()


def test_imputation_follows_the_instrument_schedule(backend):
    # The HAM-A is not scheduled at day 1: bocf gives 5 visits, not 6.
    df = totals([("a", 0, 20), ("a", 28, 8), ("b", 0, 25)], "HAMA")
    ep = backend.derive_endpoints(df, "HAMA", impute="bocf", criteria={"reliable_change": 6})
    assert ep[ep.patient_id == "a"].visit.tolist() == POST_BASELINE["HAMA"]
    locf = backend.derive_endpoints(df, "HAMA", impute="locf", criteria={"reliable_change": 6})
    assert locf.visit.tolist() == ["week4", "week8", "week12"]
    assert locf.score.tolist() == [8, 8, 8]


def test_impute_must_be_known(backend):
    with pytest.raises(ValueError, match=r"`impute` must be one of \['observed', 'locf', 'bocf'\]"):
        backend.derive_endpoints(imputation_cohort(), "GAD7", impute="mice")


# --- Schedules ------------------------------------------------------------------------------


def custom_schedule():
    return pd.DataFrame(
        {
            "visit": ["baseline", "day7", "day28"],
            "target_day": [0, 7, 28],
            "window_low": [-7, 5, 20],
            "window_high": [0, 9, 35],
            "instruments": ["GAD7, HAMA", "GAD7", None],
        }
    )


def test_custom_schedule(backend):
    df = totals([("a", -8, 20), ("a", -1, 14), ("a", 4, 12), ("a", 9, 8), ("a", 30, 7)])
    ep = backend.derive_endpoints(df, "GAD7", schedule=custom_schedule(), impute="locf")
    assert ep[["visit", "target_day", "study_day", "score"]].values.tolist() == [
        ["day7", 7, 9, 8],
        ["day28", 28, 30, 7],
    ]
    acc = backend.endpoint_accounting(df, "GAD7", schedule=custom_schedule())
    assert (
        acc.reason.tolist() == ["outside_schedule", "baseline", "outside_schedule"] + ["visit"] * 2
    )
    hama = backend.endpoint_accounting(
        df.assign(instrument="HAMA"), "HAMA", schedule=custom_schedule()
    )
    assert hama.reason.tolist()[3] == "outside_schedule"  # day7 is GAD-7 only
    visits = make_schedule(custom_schedule())
    assert visits[2] == Visit("day28", 28, 20, 35, ("GAD7", "HAMA"))


@pytest.mark.parametrize(
    ("visits", "message"),
    [
        ([Visit("base", 0, -7, 0)], "needs a visit named 'baseline'"),
        (
            [Visit("baseline", 0, -7, 0), Visit("w1", 7, 5, 10), Visit("w2", 10, 10, 12)],
            "'w1' \\(5..10\\) and 'w2' \\(10..12\\) do",
        ),
        ([Visit("baseline", 0, -7, 0), Visit("w1", 12, 5, 10)], "target day 12 outside"),
        ([Visit("baseline", 0, -7, 0), Visit("pre", -10, -12, -8)], "before the baseline"),
        ([Visit("baseline", 0, -7, 0), Visit("baseline", 7, 5, 9)], "unique"),
        ([Visit("baseline", 0, -7, 0, ("PHQ9",))], "`instruments` must be one of"),
    ],
)
def test_schedule_errors(visits, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(visits)


def test_schedule_with_a_baseline_only(backend):
    ep = backend.derive_endpoints(
        totals([("a", 0, 12), ("a", 7, 3)]),
        "GAD7",
        schedule=[Visit("baseline", 0, -7, 0)],
        impute="bocf",
    )
    assert ep.empty and tuple(ep.columns) == ENDPOINT_COLUMNS


def test_schedule_without_baseline_for_the_instrument(backend):
    schedule = [Visit("baseline", 0, -7, 0, ("GAD7",)), Visit("w1", 7, 1, 9)]
    with pytest.raises(ValueError, match="no baseline visit for HAMA"):
        backend.derive_endpoints(totals([("a", 0, 20)], "HAMA"), "HAMA", schedule=schedule)


def test_missing_columns_are_named(backend):
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['study_day'\]"):
        backend.derive_endpoints(
            pd.DataFrame({"patient_id": ["a"], "instrument": ["GAD7"]}), "GAD7"
        )
    with pytest.raises(TypeError, match="must be a Cohort or an assessments frame"):
        backend.derive_endpoints([1, 2], "GAD7")


# --- Accounting -------------------------------------------------------------------------------


def test_accounting_reasons(backend):
    df = pd.concat(
        [
            totals(
                [
                    ("a", -3, 16), ("a", 0, 15), ("a", 6, 9), ("a", 8, 8), ("a", 200, 4),
                    ("a", 14, None), ("b", 7, 9), ("b", 2, 9),
                ]
            ),
            totals([("a", 0, 20), ("a", 2, 15), ("a", 28, 10)], "HAMA"),
            totals([("a", 0, 9)], "PHQ9"),
        ],
        ignore_index=True,
    )  # fmt: skip
    acc = backend.endpoint_accounting(df)
    assert acc.row.tolist() == list(range(len(df)))
    assert acc.reason.tolist() == [
        "superseded_in_window",  # baseline window, not the latest
        "baseline",
        "visit",  # day 6 and day 8 tie for week1: the earlier day wins
        "superseded_in_window",
        "outside_schedule",  # day 200
        "unscorable",
        "no_baseline",
        "no_baseline",
        "baseline",
        "outside_schedule",  # HAM-A is not scheduled at day 1
        "visit",
        "unscorable",  # unknown instrument
    ]
    assert acc.visit.tolist()[:5] == ["baseline", "baseline", "week1", "week1", pd.NA]
    assert list(acc.columns) == ["row", *df.columns, "score", "visit", "reason"]
    only = backend.endpoint_accounting(df, "GAD7")
    assert only.row.tolist() == list(range(8))


def test_accounting_lazy_input_orders_rows_by_key():
    df = totals([("b", 0, 10), ("a", 7, 5), ("a", 0, 10)])
    acc = endpoint_accounting(duckdb.from_df(df), "GAD7").df()
    assert acc.sort_values("row")[["patient_id", "study_day"]].values.tolist() == [
        ["a", 0],
        ["a", 7],
        ["b", 0],
    ]


# --- Property: every input row accounted once; endpoints are exactly the visit rows ------------


def _assessment_rows(draw_rows):
    rows = []
    for patient, instrument, day, kind, values, total in draw_rows:
        inst = GAD7 if instrument == "GAD7" else HAMA
        items = [min(v, inst.item_max) for v in values[: inst.n_items]]
        missing = {"complete": 0, "prorate": inst.max_missing_items, "few": inst.n_items}[kind]
        items = items[: inst.n_items - missing] + [None] * missing
        row = {"patient_id": f"p{patient}", "instrument": instrument, "study_day": day}
        row |= {f"item_{k}": None for k in range(1, MAX_ITEMS + 1)}
        row |= {f"item_{k}": v for k, v in enumerate(items, start=1)}
        row["total"] = None if total is None else min(total, inst.total_max)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


cohorts = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.sampled_from(["GAD7", "HAMA"]),
        st.integers(-20, 130),
        st.sampled_from(["complete", "prorate", "few"]),
        st.lists(st.integers(0, 4), min_size=14, max_size=14),
        st.one_of(st.none(), st.integers(0, 56)),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda r: (r[0], r[1], r[2]),
).map(_assessment_rows)


# pandas only: the same random cohorts on every engine are compared row for row in
# test_endpoints_backends.py (and the fast path against the generic steps in
# test_endpoints_fast_path.py); five engines here would cost minutes for no new check.
@settings(max_examples=40)
@given(cohorts)
def test_accounting_covers_every_row_once_and_matches_endpoints(df):
    acc = endpoint_accounting(df)
    assert acc.row.tolist() == list(range(len(df)))
    assert set(acc.reason) <= set(REASONS)
    pd.testing.assert_frame_equal(
        acc[["patient_id", "instrument", "study_day"]],
        df[["patient_id", "instrument", "study_day"]].astype({"study_day": "Int64"}),
    )
    for name in ("GAD7", "HAMA"):
        mine = acc[acc.instrument == name]
        visits = mine[mine.reason == "visit"]
        base = mine[mine.reason == "baseline"].set_index("patient_id").score
        assert base.index.is_unique
        expected = set(zip(visits.patient_id, visits.visit, visits.study_day, strict=True))
        criteria = {"reliable_change": 5}  # random cohorts need not allow Cronbach's alpha
        by_method = {}
        for impute in ("observed", "locf", "bocf"):
            ep = derive_endpoints(df, name, impute=impute, criteria=criteria)
            by_method[impute] = ep
            observed = ep[~ep.imputed]
            got = set(zip(observed.patient_id, observed.visit, observed.study_day, strict=True))
            assert got == expected and len(observed) == len(expected)
            assert ep.study_day[ep.imputed].isna().all()
            assert (ep.baseline.to_numpy() == base.loc[ep.patient_id].to_numpy()).all()
            assert not ep.duplicated(["patient_id", "visit"]).any()
        bocf, locf = by_method["bocf"], by_method["locf"]
        assert len(bocf) == len(base) * len(POST_BASELINE[name])
        imputed = bocf[bocf.imputed]
        assert (imputed.score == imputed.baseline).all()
        keys = set(zip(bocf.patient_id, bocf.visit, strict=True))
        assert set(zip(locf.patient_id, locf.visit, strict=True)) <= keys
        for _, rows in locf.groupby("patient_id"):
            assert not rows.imputed.iloc[0]  # starts at the first observed visit
            previous = rows.score.shift()
            assert (rows.score[rows.imputed] == previous[rows.imputed]).all()


def test_tied_baseline_assessments_give_the_larger_score(backend):
    # Unvalidated, two assessments on the same day with different scores tie for the
    # baseline window: the baseline is the larger score on every engine (a maximum in the
    # generic steps, the first of the scores ordered from the highest in DuckDB's SQL),
    # and both week-4 assessments of a tied day are rows.
    cohort = pd.DataFrame(
        {
            "patient_id": ["a", "a", "a", "a", "b", "b", "b"],
            "instrument": "GAD7",
            "study_day": [0, 0, 28, 28, -1, 28, 28],
            "total": [10, 14, 5, 3, 12, 6, 2],
        }
    )
    expected = [["a", 14, 3], ["a", 14, 5], ["b", 12, 2], ["b", 12, 6]]
    got = backend.derive_endpoints(cohort, "GAD7").sort_values(["patient_id", "score"])
    assert got[["patient_id", "baseline", "score"]].values.tolist() == expected
    # In either order of the tied rows (the pandas fast path once took the last one).
    cohort = cohort.iloc[[1, 0, 2, 3, 4, 5, 6]].reset_index(drop=True)
    got = backend.derive_endpoints(cohort, "GAD7").sort_values(["patient_id", "score"])
    assert got[["patient_id", "baseline", "score"]].values.tolist() == expected


@pytest.mark.parametrize("impute", ["locf", "bocf"])
def test_tied_assessments_under_locf_and_bocf_give_the_rows_of_observed(backend, impute):
    # Unvalidated, two assessments on one day: a's baseline day (10 and 14) and b's
    # week-4 day (6 and 2). Imputation adds rows for the missing visits only: the observed
    # rows are those of impute="observed" (both tied week-4 rows of b), each missing visit
    # gets one row, the baseline is the larger tied score, locf carries the larger tied
    # score. The generic steps once gave a's every visit twice (one grid per tied
    # baseline row); the pandas fast path kept one of b's tied week-4 rows and, under
    # bocf, gave a a second grid with the smaller tied score (10) as its baseline.
    cohort = totals(
        [("a", 0, 10), ("a", 0, 14), ("a", 14, 8), ("b", -1, 12), ("b", 28, 6), ("b", 28, 2)]
    )
    got = backend.derive_endpoints(cohort, "GAD7", impute=impute)
    got = got.assign(order=got["visit"].map(_VISIT_ORDER))
    got = got.sort_values(["patient_id", "order", "score"])  # tied rows in either order
    rows = got[["patient_id", "visit", "baseline", "score", "imputed"]].values.tolist()
    # a: week2 observed (8); locf drops day1 and week1 (nothing before them) and carries
    # 8 to weeks 4-12; bocf fills day1, week1 and weeks 4-12 with the baseline, 14.
    # b: week4 observed twice (2 and 6); locf drops day1-week2 and carries 6 (the larger);
    # bocf fills every other visit with 12.
    if impute == "locf":
        a = [["a", "week2", 14, 8, False]]
        a += [["a", v, 14, 8, True] for v in ("week4", "week8", "week12")]
        b = [["b", "week4", 12, 2, False], ["b", "week4", 12, 6, False]]
        b += [["b", v, 12, 6, True] for v in ("week8", "week12")]
    else:
        a = [["a", v, 14, 14, True] for v in ("day1", "week1")] + [["a", "week2", 14, 8, False]]
        a += [["a", v, 14, 14, True] for v in ("week4", "week8", "week12")]
        b = [["b", v, 12, 12, True] for v in ("day1", "week1", "week2")]
        b += [["b", "week4", 12, 2, False], ["b", "week4", 12, 6, False]]
        b += [["b", v, 12, 12, True] for v in ("week8", "week12")]
    assert rows == a + b
    observed = backend.derive_endpoints(cohort, "GAD7")
    assert (~got["imputed"]).sum() == len(observed)


_VISIT_ORDER = {v.name: k for k, v in enumerate(DEFAULT_SCHEDULE)}


def test_one_hama_baseline_asks_for_a_fixed_threshold(backend):
    # The Jacobson-Truax threshold needs the SD of at least two baselines: with one, every
    # engine raises the same error, which says how many baselines there are and the fix.
    one = pd.DataFrame(
        {"patient_id": ["a", "a"], "instrument": "HAMA", "study_day": [0, 28], "total": [22, 9]}
    )
    message = r"at least 2 patients, but only 1 patient has a baseline\. Pass a fixed threshold"
    with pytest.raises(ValueError, match=message):
        backend.derive_endpoints(one, "HAMA")
    fixed = backend.derive_endpoints(one, "HAMA", criteria={"reliable_change": 6})
    assert fixed["reliable_improvement"].tolist() == [True]
