"""Tests of analysis.rates: rates, RD/RR/OR/NNT, Mantel-Haenszel, adjusted comparisons.

Every expected number names its source. Endpoint frames are built by hand here (no
dependency on analysis.endpoints): a frame with the columns the functions read.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats

from analysis.rates import (
    adjust_pvalues,
    adjusted_compare_rates,
    compare_rates,
    compare_rates_stratified,
    newcombe_interval,
    proportion_ci,
    rate_table,
    suppress_small_cells,
)

Z975 = stats.norm.ppf(0.975)


def outcome_rows(events: int, n: int, **columns: object) -> pd.DataFrame:
    """n endpoint rows with `events` responders, other columns constant."""
    response = pd.array([True] * events + [False] * (n - events), dtype="boolean")
    return pd.DataFrame({**columns, "response": response})


def two_groups(a: int, n1: int, c: int, n2: int, **columns: object) -> pd.DataFrame:
    return pd.concat(
        [outcome_rows(a, n1, route="iv", **columns), outcome_rows(c, n2, route="oral", **columns)],
        ignore_index=True,
    )


# --------------------------------------------------------------------------------------
# rate_table

# Newcombe 1998a (Stat Med 17:857-872), Table I, 95% Wilson score interval, no continuity
# correction (method 3), and Clopper-Pearson "exact" interval (method 5).
NEWCOMBE_1998A_WILSON = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]
NEWCOMBE_1998A_EXACT = [
    (15, 148, 0.0578, 0.1617),
    (0, 20, 0.0000, 0.1684),
    (1, 29, 0.0009, 0.1776),
]


@pytest.mark.parametrize(("events", "n", "low", "high"), NEWCOMBE_1998A_WILSON)
def test_rate_table_wilson_matches_newcombe_1998a_table_1(events, n, low, high):
    res = rate_table(outcome_rows(events, n, visit="week4"), by="visit")
    assert res.loc[0, "n"] == n and res.loc[0, "events"] == events
    assert res.loc[0, "rate"] == pytest.approx(events / n)
    # Newcombe 1998a Table I (values above), 4 dp.
    assert round(res.loc[0, "ci_low"], 4) == low
    assert round(res.loc[0, "ci_high"], 4) == high


@pytest.mark.parametrize(("events", "n", "low", "high"), NEWCOMBE_1998A_EXACT)
def test_rate_table_clopper_pearson_matches_newcombe_1998a_table_1(events, n, low, high):
    res = rate_table(outcome_rows(events, n), by=(), method="exact")
    # Newcombe 1998a Table I, Clopper-Pearson, 4 dp.
    assert round(res.loc[0, "ci_low"], 4) == low
    assert round(res.loc[0, "ci_high"], 4) == high


def test_proportion_ci_vectorised_matches_newcombe_1998a():
    low, high = proportion_ci([81, 15, 0, 1], [263, 148, 20, 29])
    # Newcombe 1998a Table I, Wilson.
    np.testing.assert_allclose(low, [0.2553, 0.0624, 0.0, 0.0061], atol=5e-5)
    np.testing.assert_allclose(high, [0.3662, 0.1605, 0.1611, 0.1718], atol=5e-5)


def test_jeffreys_bounds_are_0_and_1_at_the_extremes():
    # Brown, Cai and DasGupta 2001 (Stat Sci 16:101-133), section 4.1.2: the Jeffreys
    # lower bound is set to 0 at x = 0 and the upper bound to 1 at x = n.
    low, high = proportion_ci([0, 10], [10, 10], method="jeffreys")
    assert low[0] == 0.0 and high[1] == 1.0
    # Beta(x + 1/2, n - x + 1/2) quantiles elsewhere (definition).
    low, high = proportion_ci(3, 10, method="jeffreys")
    assert low == pytest.approx(stats.beta.ppf(0.025, 3.5, 7.5))
    assert high == pytest.approx(stats.beta.ppf(0.975, 3.5, 7.5))


def test_rate_table_ignores_na_outcomes_and_groups_by_cells():
    ep = pd.concat(
        [
            outcome_rows(15, 148, instrument="GAD7", visit="week4"),
            outcome_rows(81, 263, instrument="GAD7", visit="week8"),
            pd.DataFrame(
                {
                    "instrument": "GAD7",
                    "visit": "week4",
                    "response": pd.array([None] * 7, dtype="boolean"),
                }
            ),
        ],
        ignore_index=True,
    )
    res = rate_table(ep)
    assert list(res.columns) == [
        "instrument",
        "visit",
        "n",
        "events",
        "rate",
        "ci_low",
        "ci_high",
        "suppressed",
    ]
    assert res["visit"].tolist() == ["week4", "week8"]
    assert res["n"].tolist() == [148, 263]  # the 7 NA rows are not counted
    assert str(res["n"].dtype) == "Int64" and str(res["events"].dtype) == "Int64"
    assert res["rate"].dtype == float and res["suppressed"].dtype == bool
    # Newcombe 1998a Table I, Wilson.
    assert round(res.loc[1, "ci_low"], 4) == 0.2553


def test_visits_follow_the_schedule_not_the_alphabet():
    # docs/design.md visit schedule: week2 (day 14) comes before week12 (day 84).
    ep = pd.concat(
        [
            outcome_rows(3, 10, visit="week12", target_day=84),
            outcome_rows(4, 10, visit="week2", target_day=14),
            outcome_rows(5, 10, visit="day1", target_day=1),
        ],
        ignore_index=True,
    )
    assert rate_table(ep, by="visit")["visit"].tolist() == ["day1", "week2", "week12"]
    ep["route"] = ["iv", "oral"] * 15
    res = compare_rates(ep, "response", "route", by="visit")
    assert res["visit"].tolist() == ["day1", "week2", "week12"]


def test_rate_table_by_empty_gives_one_overall_row():
    ep = pd.concat([outcome_rows(5, 10, visit="week1"), outcome_rows(10, 10, visit="week4")])
    res = rate_table(ep, by=())
    assert list(res.columns) == ["n", "events", "rate", "ci_low", "ci_high", "suppressed"]
    assert len(res) == 1 and res.loc[0, "n"] == 20 and res.loc[0, "events"] == 15


def test_rate_table_cell_with_only_na_has_n_zero_and_nan_rate():
    ep = pd.DataFrame(
        {"visit": ["week1", "week1", "week4"], "remission": pd.array([None, None, True])}
    )
    res = rate_table(ep, "remission", by="visit")
    assert res["n"].tolist() == [0, 1]
    assert math.isnan(res.loc[0, "rate"]) and math.isnan(res.loc[0, "ci_low"])


def test_rate_table_accepts_plain_bool_and_0_1_outcomes():
    ep = pd.DataFrame({"response": [True, False, True, True]})
    assert rate_table(ep, by=()).loc[0, "events"] == 3
    ep = pd.DataFrame({"response": [1.0, 0.0, np.nan, 1.0]})
    assert rate_table(ep, by=()).loc[0, "n"] == 3


def test_rate_table_errors_name_the_problem_and_the_fix():
    ep = outcome_rows(3, 10)
    with pytest.raises(ValueError, match=r"The value for `method` must be one of"):
        rate_table(ep, by=(), method="wald")
    with pytest.raises(ValueError, match=r"`alpha` must be a number strictly between 0 and 1"):
        rate_table(ep, by=(), alpha=5)
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['visit'\]"):
        rate_table(ep, by="visit")
    with pytest.raises(ValueError, match=r"must hold True/False"):
        rate_table(pd.DataFrame({"response": [0, 2, 1]}), by=())
    with pytest.raises(ValueError, match=r"`min_cell` must be a positive integer"):
        rate_table(ep, by=(), min_cell=0)


# --------------------------------------------------------------------------------------
# small cells


def test_small_cell_rule_of_design_md():
    # docs/design.md "Small cells", CMS rule with min_cell = 11 (no cell of 1-10).
    ep = pd.concat(
        [
            outcome_rows(12, 40, site="a"),  # nothing small: shown
            outcome_rows(35, 40, site="b"),  # n - events = 5: events, rate, CI blanked
            outcome_rows(3, 6, site="c"),  # n = 6 < 11: n blanked too
            outcome_rows(0, 40, site="d"),  # zero events is allowed
            outcome_rows(5, 40, site="e"),  # events = 5: blanked, n shown
        ],
        ignore_index=True,
    )
    res = rate_table(ep, by="site", min_cell=11)
    assert res["suppressed"].tolist() == [False, True, True, False, True]
    assert res["events"].isna().tolist() == [False, True, True, False, True]
    assert res["n"].isna().tolist() == [False, False, True, False, False]
    assert res.loc[[1, 2, 4], ["rate", "ci_low", "ci_high"]].isna().all().all()
    assert res.loc[3, "events"] == 0 and res.loc[3, "ci_high"] > 0
    assert str(res["n"].dtype) == "Int64" and res["rate"].dtype == float


def test_suppress_small_cells_for_an_arbitrary_count_table():
    # A report table: adverse events by arm with a percentage derived from each count.
    table = pd.DataFrame(
        {
            "term": ["nausea", "dizziness", "headache"],
            "n_patients": [120, 120, 120],
            "n_events": [30, 4, 0],
            "pct": [25.0, 3.3, 0.0],
        }
    )
    res = suppress_small_cells(table, 11, ["n_events"], total="n_patients")
    assert res["n_events"].isna().tolist() == [False, True, False]
    assert res["pct"].isna().tolist() == [False, True, False]
    assert res["n_patients"].tolist() == [120, 120, 120]
    assert res["suppressed"].tolist() == [False, True, False]
    # Without a total, every count of a flagged row is blanked.
    wide = pd.DataFrame({"site": ["x", "y"], "iv": [30, 12], "oral": [25, 3]})
    res = suppress_small_cells(wide, 11, ["iv", "oral"], total=None)
    assert res["iv"].isna().tolist() == [False, True]
    assert res["oral"].isna().tolist() == [False, True]


@given(
    counts=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda t: (min(t), max(t))),
        min_size=1,
        max_size=8,
    ),
    min_cell=st.integers(1, 15),
)
def test_property_suppression_never_shows_a_small_count(counts, min_cell):
    ep = pd.concat(
        [outcome_rows(e, n, site=f"s{i}") for i, (e, n) in enumerate(counts)],
        ignore_index=True,
    )
    res = rate_table(ep, by="site", min_cell=min_cell)
    for _, row in res.iterrows():
        shown = [row["n"], row["events"]]
        if not pd.isna(row["n"]) and not pd.isna(row["events"]):
            shown.append(row["n"] - row["events"])  # derivable from the two shown
        for value in shown:
            assert pd.isna(value) or value == 0 or value >= min_cell
        if row["suppressed"]:
            assert pd.isna(row["rate"]) and pd.isna(row["ci_low"]) and pd.isna(row["ci_high"])


@given(
    events=st.integers(0, 200),
    extra=st.integers(0, 200),
    method=st.sampled_from(["wilson", "exact", "jeffreys", "agresti_coull"]),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
)
def test_property_rate_lies_in_0_1_and_inside_its_interval(events, extra, method, alpha):
    n = events + extra
    if n == 0:
        return
    res = rate_table(outcome_rows(events, n), by=(), method=method, alpha=alpha)
    rate, low, high = res.loc[0, ["rate", "ci_low", "ci_high"]]
    assert 0.0 <= low <= rate <= high <= 1.0


# --------------------------------------------------------------------------------------
# compare_rates

# Newcombe 1998b (Stat Med 17:873-890), Table II, method 10 (hybrid score), p1 - p2.
NEWCOMBE_1998B = [
    ("a", 56, 70, 48, 80, 0.0524, 0.3339),
    ("b", 9, 10, 3, 10, 0.1705, 0.8090),
    ("c", 6, 7, 2, 7, 0.0582, 0.8062),
    ("d", 5, 56, 0, 29, -0.0381, 0.1926),
    ("e", 0, 10, 0, 20, -0.1611, 0.2775),
    ("f", 0, 10, 0, 10, -0.2775, 0.2775),
    ("g", 10, 10, 0, 20, 0.6791, 1.0000),
    ("h", 10, 10, 0, 10, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("example", "a", "n1", "c", "n2", "low", "high"), NEWCOMBE_1998B)
def test_risk_difference_interval_matches_newcombe_1998b_table_2(example, a, n1, c, n2, low, high):
    res = compare_rates(two_groups(a, n1, c, n2), "response", "route", reference="oral", by=())
    assert res.loc[0, "group"] == "iv" and res.loc[0, "reference"] == "oral"
    assert res.loc[0, "risk_difference"] == pytest.approx(a / n1 - c / n2)
    # Newcombe 1998b Table II, example (example), method 10, 4 dp.
    assert round(res.loc[0, "rd_ci_low"], 4) == low
    assert round(res.loc[0, "rd_ci_high"], 4) == high
    assert newcombe_interval(a, n1, c, n2) == pytest.approx(
        (res.loc[0, "rd_ci_low"], res.loc[0, "rd_ci_high"])
    )


def test_compare_rates_columns_and_dtypes():
    res = compare_rates(
        two_groups(56, 70, 48, 80, instrument="GAD7", visit="week4"),
        "response",
        "route",
        reference="oral",
    )
    assert list(res.columns) == [
        "instrument", "visit", "group", "reference", "n", "events", "n_ref", "events_ref",
        "risk_difference", "rd_ci_low", "rd_ci_high", "risk_ratio", "rr_ci_low",
        "rr_ci_high", "odds_ratio", "or_ci_low", "or_ci_high", "nnt", "nnt_ci_low",
        "nnt_ci_high", "nnt_ci_includes_infinity", "nnt_note", "zero_cell_correction",
        "p_value", "test", "ratio_note",
    ]  # fmt: skip
    for c in ["n", "events", "n_ref", "events_ref"]:
        assert str(res[c].dtype) == "Int64"
    for c in ["risk_difference", "rr_ci_low", "odds_ratio", "nnt", "p_value"]:
        assert res[c].dtype == float
    assert res.loc[0, ["n", "events", "n_ref", "events_ref"]].tolist() == [70, 56, 80, 48]


def test_risk_ratio_katz_and_odds_ratio_woolf_by_hand():
    res = compare_rates(
        two_groups(56, 70, 48, 80), "response", "route", reference="oral", by=()
    ).loc[0]
    # Hand computation (Katz 1978): RR = 0.8 / 0.6; SE(log RR) = sqrt(1/56 - 1/70 + 1/48
    # - 1/80) = 0.109109; RR x exp(-/+ 1.959964 x 0.109109).
    assert res["risk_ratio"] == pytest.approx(4 / 3)
    assert res["rr_ci_low"] == pytest.approx(1.076626, abs=1e-6)
    assert res["rr_ci_high"] == pytest.approx(1.651249, abs=1e-6)
    # Hand computation (Woolf 1955): OR = 56 x 32 / (14 x 48); SE(log OR) =
    # sqrt(1/56 + 1/14 + 1/48 + 1/32) = 0.375991.
    assert res["odds_ratio"] == pytest.approx(8 / 3)
    assert res["or_ci_low"] == pytest.approx(1.276218, abs=1e-6)
    assert res["or_ci_high"] == pytest.approx(5.572020, abs=1e-6)
    assert not res["zero_cell_correction"]


def test_zero_cell_uses_haldane_correction_for_rr_and_or_only():
    res = compare_rates(two_groups(5, 56, 0, 29), "response", "route", reference="oral", by=()).loc[
        0
    ]
    assert res["zero_cell_correction"]
    # Hand computation with 0.5 added to every cell (Haldane 1956): a = 5.5, b = 51.5,
    # c = 0.5, d = 29.5: RR = (5.5/57)/(0.5/30) = 5.789474, OR = 5.5 x 29.5/(51.5 x 0.5)
    # = 6.300971; Katz / Woolf intervals on those cells.
    assert res["risk_ratio"] == pytest.approx(5.789474, abs=1e-6)
    assert res["rr_ci_low"] == pytest.approx(0.331190, abs=1e-6)
    assert res["rr_ci_high"] == pytest.approx(101.204824, abs=1e-5)
    assert res["odds_ratio"] == pytest.approx(6.300971, abs=1e-6)
    assert res["or_ci_low"] == pytest.approx(0.336380, abs=1e-6)
    assert res["or_ci_high"] == pytest.approx(118.027932, abs=1e-5)
    # The RD is never corrected: 5/56 - 0/29 (definition).
    assert res["risk_difference"] == pytest.approx(5 / 56)


def test_no_events_in_either_group_leaves_rr_and_or_undefined():
    res = compare_rates(two_groups(0, 10, 0, 10), "response", "route", reference="oral", by=()).loc[
        0
    ]
    assert math.isnan(res["risk_ratio"]) and math.isnan(res["rr_ci_low"])
    assert math.isnan(res["odds_ratio"]) and math.isnan(res["or_ci_high"])
    assert res["risk_difference"] == 0.0
    assert math.isinf(res["nnt"]) and res["nnt_ci_includes_infinity"]
    assert res["nnt_note"].startswith("NNT infinite (95% CI NNTH 3.6 to infinity to NNTB 3.6)")
    # Everyone responding in both groups: RR and OR undefined too (issue 10: the 0.5
    # correction used to report RR (10.5/11)/(20.5/21) = 0.98 beside RD 0).
    res = compare_rates(
        two_groups(10, 10, 20, 20), "response", "route", reference="oral", by=()
    ).loc[0]
    assert math.isnan(res["odds_ratio"]) and math.isnan(res["risk_ratio"])
    assert "both groups at 100%" in res["ratio_note"]


def test_nnt_altman_1998_finite_interval():
    res = compare_rates(
        two_groups(56, 70, 48, 80), "response", "route", reference="oral", by=()
    ).loc[0]
    # Altman 1998 (BMJ 317:1309): NNT = 1/RD = 1/0.2 and its bounds are the reciprocals of
    # the RD bounds, here Newcombe 1998b ex. a: 1/0.3339 and 1/0.0524.
    assert res["nnt"] == pytest.approx(5.0)
    assert res["nnt_ci_low"] == pytest.approx(1 / res["rd_ci_high"])
    assert res["nnt_ci_high"] == pytest.approx(1 / res["rd_ci_low"])
    assert not res["nnt_ci_includes_infinity"]
    assert res["nnt_note"] == "NNTB 5.0 (95% CI 3.0 to 19.1)"


def test_nnt_interval_through_infinity_is_flagged_and_spelled_out():
    res = compare_rates(two_groups(5, 56, 0, 29), "response", "route", reference="oral", by=()).loc[
        0
    ]
    # Newcombe 1998b ex. d: RD 0.0893 (-0.0381, 0.1926); Altman 1998: NNTB 11.2 with the
    # interval NNTH 1/0.0381 = 26.2 to infinity to NNTB 1/0.1926 = 5.2.
    assert res["nnt_ci_includes_infinity"]
    assert res["nnt_ci_low"] == pytest.approx(1 / res["rd_ci_low"]) and res["nnt_ci_low"] < 0
    assert res["nnt_ci_high"] == pytest.approx(1 / res["rd_ci_high"])
    assert res["nnt_note"] == "NNTB 11.2 (95% CI NNTH 26.2 to infinity to NNTB 5.2)"
    # For a harm outcome the labels swap (Altman 1998: NNTH when treatment adds harm).
    ep = two_groups(5, 56, 0, 29).rename(columns={"response": "reliable_deterioration"})
    res = compare_rates(ep, "reliable_deterioration", "route", reference="oral", by=()).loc[0]
    assert res["nnt_note"] == "NNTH 11.2 (95% CI NNTB 26.2 to infinity to NNTH 5.2)"


def test_p_value_chi_square_or_fisher():
    res = compare_rates(
        two_groups(56, 70, 48, 80), "response", "route", reference="oral", by=()
    ).loc[0]
    # Pearson chi-square without continuity correction (scipy.stats.chi2_contingency).
    assert res["test"] == "chi2"
    assert res["p_value"] == pytest.approx(0.0080450814, rel=1e-6)
    res = compare_rates(two_groups(9, 10, 3, 10), "response", "route", reference="oral", by=()).loc[
        0
    ]
    # Expected counts of 4 and 4 < 5: Fisher's exact test, two-sided (scipy.stats.fisher_exact).
    assert res["test"] == "fisher"
    assert res["p_value"] == pytest.approx(0.0197666111, rel=1e-6)


def test_reference_default_levels_and_by_cells():
    ep = pd.concat(
        [
            two_groups(56, 70, 48, 80, visit="week4"),
            outcome_rows(10, 20, route="im", visit="week4"),
            two_groups(9, 10, 3, 10, visit="week8"),
        ],
        ignore_index=True,
    )
    res = compare_rates(ep, "response", "route", by="visit")
    # Default reference: first sorted level ("im"); one row per other level per cell.
    assert res["reference"].unique().tolist() == ["im"]
    assert res[["visit", "group"]].values.tolist() == [
        ["week4", "iv"], ["week4", "oral"], ["week8", "iv"], ["week8", "oral"],
    ]  # fmt: skip
    # week8 has no "im" patients: the row is kept with NaN statistics.
    assert res.loc[2, "n_ref"] == 0 and math.isnan(res.loc[2, "risk_difference"])
    with pytest.raises(ValueError, match=r"The value for `reference` must be one of"):
        compare_rates(ep, "response", "route", reference="IV", by="visit")
    with pytest.raises(ValueError, match=r"at least two levels"):
        compare_rates(outcome_rows(3, 9, route="iv"), "response", "route", reference="oral", by=())


def test_p_adjust_holm_and_fdr_across_rows():
    ep = pd.concat(
        [
            two_groups(56, 70, 48, 80, visit="week4"),
            two_groups(9, 10, 3, 10, visit="week8"),
            two_groups(6, 12, 5, 12, visit="week12"),
        ],
        ignore_index=True,
    )
    res = compare_rates(ep, "response", "route", by="visit", p_adjust="holm")
    p = res["p_value"].to_numpy()
    order = np.argsort(p)
    # Holm 1979 by hand: sorted p x (3, 2, 1), then running maximum, capped at 1.
    holm = np.minimum(np.maximum.accumulate(p[order] * np.array([3, 2, 1])), 1)
    np.testing.assert_allclose(res["p_adjusted"].to_numpy()[order], holm)
    res = compare_rates(ep, "response", "route", by="visit", p_adjust="fdr_bh")
    # Benjamini-Hochberg 1995 by hand: p_(i) x m / i, running minimum from the top.
    bh = np.minimum.accumulate((p[order] * 3 / np.array([1, 2, 3]))[::-1])[::-1]
    np.testing.assert_allclose(res["p_adjusted"].to_numpy()[order], np.minimum(bh, 1))
    with pytest.raises(ValueError, match=r"The value for `p_adjust` must be one of"):
        compare_rates(ep, "response", "route", by="visit", p_adjust="tukey")


@given(
    st.lists(
        st.one_of(
            st.floats(0, 1),
            st.sampled_from([0.0, 0.01, 0.05, 0.5, 1.0]),  # ties and the ends
        ),
        min_size=1,
        max_size=40,
    )
)
def test_holm_is_statsmodels_holm_to_the_last_bit(p):
    # adjust_pvalues computes Holm itself (statsmodels' Holm runs gc.collect() on every
    # call): the adjusted p-values are statsmodels' exactly, ties and all.
    from statsmodels.stats.multitest import multipletests

    values = np.array(p, dtype=float)
    expected = multipletests(values, method="holm")[1]
    got = adjust_pvalues(pd.DataFrame({"p_value": values}))["p_adjusted"].to_numpy()
    np.testing.assert_array_equal(got, expected)


def test_adjust_pvalues_keeps_missing_p_values_out_of_the_family():
    t = pd.DataFrame({"p_value": [0.01, np.nan, 0.04]})
    res = adjust_pvalues(t, method="bonferroni")
    # Bonferroni over the two non-missing p-values: x 2.
    assert res["p_adjusted"].tolist()[0] == pytest.approx(0.02)
    assert math.isnan(res["p_adjusted"][1]) and res["p_adjusted"][2] == pytest.approx(0.08)


counts_2x2 = st.tuples(st.integers(1, 60), st.integers(1, 60)).flatmap(
    lambda ns: st.tuples(st.integers(0, ns[0]), st.just(ns[0]), st.integers(0, ns[1]),
                         st.just(ns[1]))
)  # fmt: skip


@given(counts_2x2)
def test_property_swapping_group_and_reference_flips_rd_and_inverts_rr_or(cells):
    a, n1, c, n2 = cells
    ep = two_groups(a, n1, c, n2)
    fwd = compare_rates(ep, "response", "route", reference="oral", by=()).loc[0]
    rev = compare_rates(ep, "response", "route", reference="iv", by=()).loc[0]
    assert rev["risk_difference"] == pytest.approx(-fwd["risk_difference"], abs=1e-12)
    assert rev["rd_ci_low"] == pytest.approx(-fwd["rd_ci_high"], abs=1e-12)
    assert rev["rd_ci_high"] == pytest.approx(-fwd["rd_ci_low"], abs=1e-12)
    assert fwd["rd_ci_low"] <= fwd["risk_difference"] <= fwd["rd_ci_high"]
    for est, low, high in [("risk_ratio", "rr_ci_low", "rr_ci_high"),
                           ("odds_ratio", "or_ci_low", "or_ci_high")]:  # fmt: skip
        if math.isnan(fwd[est]):
            assert math.isnan(rev[est])
            continue
        assert rev[est] == pytest.approx(1 / fwd[est], rel=1e-9)
        assert rev[low] == pytest.approx(1 / fwd[high], rel=1e-9)
        assert rev[high] == pytest.approx(1 / fwd[low], rel=1e-9)
        assert fwd[low] <= fwd[est] * (1 + 1e-12) and fwd[est] <= fwd[high] * (1 + 1e-12)
    assert rev["p_value"] == pytest.approx(fwd["p_value"])
    assert bool(rev["nnt_ci_includes_infinity"]) == bool(fwd["nnt_ci_includes_infinity"])


# --------------------------------------------------------------------------------------
# Mantel-Haenszel

# BCG vaccine trials (Colditz et al. 1994, JAMA 271:698-702; metafor's dat.bcg): tpos,
# tneg, cpos, cneg per trial.
BCG = [
    (4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619),
    (33, 5036, 47, 5761), (180, 1361, 372, 1079), (8, 2537, 10, 619), (505, 87886, 499, 87892),
    (29, 7470, 45, 7232), (17, 1699, 65, 1600), (186, 50448, 141, 27197), (5, 2493, 3, 2338),
    (27, 16886, 29, 17825),
]  # fmt: skip


def bcg_frame() -> pd.DataFrame:
    frames = []
    for k, (tpos, tneg, cpos, cneg) in enumerate(BCG):
        frames.append(outcome_rows(tpos, tpos + tneg, trial=k, arm="vaccine"))
        frames.append(outcome_rows(cpos, cpos + cneg, trial=k, arm="control"))
    return pd.concat(frames, ignore_index=True).rename(columns={"response": "tb"})


@pytest.fixture(scope="module")
def bcg_mh() -> pd.Series:
    return compare_rates_stratified(bcg_frame(), "tb", "arm", "trial", reference="control",
                                    by=()).loc[0]  # fmt: skip


def test_mantel_haenszel_rd_matches_metafor_sato_variance(bcg_mh):
    # R metafor tests (test_misc_rma_mh.r, dat.bcg): rma.mh(measure="RD"): estimate -0.0033,
    # CI -0.0039 to -0.0027, z -11.4708 (Sato, Greenland and Robins 1989 variance).
    assert round(bcg_mh["risk_difference"], 4) == -0.0033
    assert round(bcg_mh["rd_ci_low"], 4) == -0.0039
    assert round(bcg_mh["rd_ci_high"], 4) == -0.0027
    se = (bcg_mh["rd_ci_high"] - bcg_mh["rd_ci_low"]) / (2 * Z975)
    assert bcg_mh["risk_difference"] / se == pytest.approx(-11.4708, abs=1e-4)


def test_mantel_haenszel_rr_and_or_match_metafor(bcg_mh):
    # metafor tests, dat.bcg, rma.mh(measure="RR"): log RR -0.4537 (-0.5308, -0.3766),
    # z -11.5338; exp: 0.6353 (0.5881, 0.6862).
    assert round(math.log(bcg_mh["risk_ratio"]), 4) == -0.4537
    assert round(math.log(bcg_mh["rr_ci_low"]), 4) == -0.5308
    assert round(math.log(bcg_mh["rr_ci_high"]), 4) == -0.3766
    assert round(bcg_mh["risk_ratio"], 4) == 0.6353
    # metafor tests, dat.bcg, rma.mh(measure="OR"): log OR -0.4734 (-0.5538, -0.3930),
    # z -11.5444; exp: 0.6229 (0.5748, 0.6750).
    assert round(math.log(bcg_mh["odds_ratio"]), 4) == -0.4734
    assert round(math.log(bcg_mh["or_ci_low"]), 4) == -0.5538
    assert round(math.log(bcg_mh["or_ci_high"]), 4) == -0.3930
    assert round(bcg_mh["odds_ratio"], 4) == 0.6229
    assert bcg_mh["n_strata"] == 13
    assert bcg_mh["breslow_day_p"] < 1e-10  # the trials are famously heterogeneous


def test_mantel_haenszel_single_stratum_reduces_to_crude_estimates():
    ep = two_groups(56, 70, 48, 80, site="A")
    mh = compare_rates_stratified(ep, "response", "route", "site", reference="oral", by=())
    crude = compare_rates(ep, "response", "route", reference="oral", by=())
    # Greenland-Robins 1985: with one stratum RR_MH and its variance are Katz's, and the
    # MH OR is the crude OR (Mantel and Haenszel 1959).
    for c in ["risk_ratio", "rr_ci_low", "rr_ci_high", "odds_ratio"]:
        assert mh.loc[0, c] == pytest.approx(crude.loc[0, c])
    assert mh.loc[0, "risk_difference"] == pytest.approx(0.2)
    assert math.isnan(mh.loc[0, "breslow_day_p"])


def test_mantel_haenszel_homogeneous_strata():
    # Hand-made strata with the same OR of 2 (10/20 vs 10/30 and 16/20 vs 20/30): OR_MH =
    # sum(ad/N)/sum(bc/N) = (10*20/50 + 16*10/50) / (10*10/50 + 4*20/50) = 7.2/3.6 = 2;
    # RD_MH = sum(a n2/N - c n1/N)/sum(n1 n2/N) = (2 + 1.6)/24 = 0.15; RR_MH =
    # (6 + 9.6)/(4 + 8) = 1.3; Breslow-Day p = 1 (identical ORs).
    ep = pd.concat(
        [
            two_groups(10, 20, 10, 30, site="A", instrument="GAD7"),
            two_groups(16, 20, 20, 30, site="B", instrument="GAD7"),
            outcome_rows(3, 9, route="im", site="A", instrument="GAD7"),
        ],
        ignore_index=True,
    )
    res = compare_rates_stratified(ep, "response", "route", ["site"], reference="oral",
                                   by="instrument")  # fmt: skip
    row = res[res["group"] == "iv"].iloc[0]
    assert row["odds_ratio"] == pytest.approx(2.0)
    assert row["risk_difference"] == pytest.approx(0.15)
    assert row["risk_ratio"] == pytest.approx(1.3)
    assert row["breslow_day_p"] == pytest.approx(1.0)
    # "im" only has patients in stratum A: one stratum used.
    assert res[res["group"] == "im"].iloc[0]["n_strata"] == 1


# --------------------------------------------------------------------------------------
# covariate-adjusted comparison


def test_adjusted_without_covariates_equals_crude_rd_with_wald_variance():
    ep = two_groups(56, 70, 48, 80)
    res = adjusted_compare_rates(ep, "response", "route", covariates=(), reference="oral",
                                 by=()).loc[0]  # fmt: skip
    # Identity: with no covariate the standardized risks are the crude ones (0.8, 0.6) and
    # the delta-method variance is the Wald variance p1 q1/n1 + p2 q2/n2.
    assert res["risk"] == pytest.approx(0.8) and res["risk_ref"] == pytest.approx(0.6)
    assert res["odds_ratio"] == pytest.approx(8 / 3)
    se = math.sqrt(0.8 * 0.2 / 70 + 0.6 * 0.4 / 80)
    assert res["rd_ci_low"] == pytest.approx(0.2 - Z975 * se, rel=1e-6)
    assert res["rd_ci_high"] == pytest.approx(0.2 + Z975 * se, rel=1e-6)
    # log RR delta method without covariates: Var = q1/(n1 p1) + q2/(n2 p2) (Katz).
    se = math.sqrt(1 / 56 - 1 / 70 + 1 / 48 - 1 / 80)
    assert res["rr_ci_low"] == pytest.approx(4 / 3 * math.exp(-Z975 * se), rel=1e-6)


def test_adjusted_rd_is_stratum_size_weighted_rd_when_model_fits_exactly():
    # Two strata with a common OR of 2 (10/20 vs 10/30 and 16/20 vs 20/30): the additive
    # logistic model reproduces every cell, so g-computation gives the stratum-size-weighted
    # average of the stratum RDs: 0.5 x (1/2 - 1/3) + 0.5 x (4/5 - 2/3) = 0.15, and
    # standardized risks 0.5 x 0.5 + 0.5 x 0.8 = 0.65 and 0.5 x 1/3 + 0.5 x 2/3 = 0.5.
    ep = pd.concat(
        [two_groups(10, 20, 10, 30, severe=False), two_groups(16, 20, 20, 30, severe=True)],
        ignore_index=True,
    )
    res = adjusted_compare_rates(ep, "response", "route", covariates=["severe"],
                                 reference="oral", by=()).loc[0]  # fmt: skip
    assert res["risk"] == pytest.approx(0.65, abs=1e-9)
    assert res["risk_ref"] == pytest.approx(0.5, abs=1e-9)
    assert res["risk_difference"] == pytest.approx(0.15, abs=1e-9)
    assert res["risk_ratio"] == pytest.approx(1.3, abs=1e-9)
    assert res["odds_ratio"] == pytest.approx(2.0, abs=1e-9)


def _simulated(seed: int = 1, n: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    route = np.where(rng.random(n) < 0.5, "iv", "oral")
    baseline = rng.integers(8, 22, n).astype(float)
    site = rng.choice(["s1", "s2", "s3"], n)
    lin = -2 + 0.9 * (route == "iv") + 0.12 * baseline + 0.4 * (site == "s2")
    response = rng.random(n) < 1 / (1 + np.exp(-lin))
    return pd.DataFrame(
        {
            "instrument": "GAD7",
            "visit": "week4",
            "route": route,
            "baseline": baseline,
            "site_id": site,
            "response": pd.array(response, dtype="boolean"),
        }
    )


def test_adjusted_delta_method_matches_an_independent_computation():
    ep = _simulated()
    res = adjusted_compare_rates(ep, "response", "route", covariates=["baseline", "site_id"],
                                 reference="oral").loc[0]  # fmt: skip
    # Independent computation (Ge et al. 2011, delta method): maximise the logistic
    # likelihood with scipy, invert a finite-difference Hessian, and differentiate the
    # g-computation RD numerically.
    y = ep["response"].astype(bool).to_numpy(float)
    x = np.column_stack([
        np.ones(len(ep)), (ep["route"] == "iv"), ep["baseline"], (ep["site_id"] == "s2"),
        (ep["site_id"] == "s3"),
    ]).astype(float)  # fmt: skip

    def nll(b):
        eta = x @ b
        return np.sum(np.logaddexp(0, eta) - y * eta)

    beta = optimize.minimize(nll, np.zeros(5), method="BFGS", options={"gtol": 1e-10}).x

    def risks(b):
        x1, x0 = x.copy(), x.copy()
        x1[:, 1], x0[:, 1] = 1, 0
        return np.mean(1 / (1 + np.exp(-x1 @ b))), np.mean(1 / (1 + np.exp(-x0 @ b)))

    p = 1 / (1 + np.exp(-x @ beta))
    cov = np.linalg.inv((x * (p * (1 - p))[:, None]).T @ x)
    h = 1e-6
    grad = np.array([
        (np.subtract(*risks(beta + h * e)) - np.subtract(*risks(beta - h * e))) / (2 * h)
        for e in np.eye(5)
    ])  # fmt: skip
    rd = np.subtract(*risks(beta))
    se = math.sqrt(grad @ cov @ grad)
    assert res["risk_difference"] == pytest.approx(rd, abs=1e-6)
    assert res["rd_ci_low"] == pytest.approx(rd - Z975 * se, abs=1e-6)
    assert res["odds_ratio"] == pytest.approx(math.exp(beta[1]), rel=1e-5)
    assert res["or_ci_low"] == pytest.approx(math.exp(beta[1] - Z975 * math.sqrt(cov[1, 1])),
                                             rel=1e-5)  # fmt: skip
    assert res["p_value"] == pytest.approx(2 * stats.norm.sf(beta[1] / math.sqrt(cov[1, 1])),
                                           rel=1e-4)  # fmt: skip


def test_adjusted_bootstrap_is_seeded_and_close_to_the_delta_method():
    ep = _simulated(n=300)
    kw = dict(covariates=["baseline"], reference="oral", ci_method="bootstrap", n_boot=300)
    a = adjusted_compare_rates(ep, "response", "route", seed=3, **kw).loc[0]
    b = adjusted_compare_rates(ep, "response", "route", seed=3, **kw).loc[0]
    delta = adjusted_compare_rates(ep, "response", "route", covariates=["baseline"],
                                   reference="oral").loc[0]  # fmt: skip
    assert a["rd_ci_low"] == b["rd_ci_low"] and a["ci_method"] == "bootstrap"
    # Large-sample agreement of bootstrap and delta method (Ge et al. 2011): within 0.03.
    assert a["rd_ci_low"] == pytest.approx(delta["rd_ci_low"], abs=0.03)
    assert a["rd_ci_high"] == pytest.approx(delta["rd_ci_high"], abs=0.03)
    assert a["risk_difference"] == delta["risk_difference"]


def test_adjusted_counts_excluded_rows_and_flags_separation():
    ep = _simulated()
    ep.loc[:4, "baseline"] = np.nan
    res = adjusted_compare_rates(ep, "response", "route", reference="oral")
    assert res.loc[0, "n_excluded"] == 5
    assert res.loc[0, "n"] + res.loc[0, "n_ref"] == len(ep) - 5
    # No responder under "oral": perfect separation, the row is NaN with a warning.
    ep = two_groups(12, 30, 0, 30)
    ep["baseline"] = np.arange(60.0) % 7
    with pytest.warns(RuntimeWarning, match="could not be fitted"):
        res = adjusted_compare_rates(ep, "response", "route", reference="oral", by=())
    assert math.isnan(res.loc[0, "risk_difference"]) and res.loc[0, "n"] == 30


def test_adjusted_errors():
    ep = _simulated()
    with pytest.raises(ValueError, match=r"The value for `ci_method` must be one of"):
        adjusted_compare_rates(ep, "response", "route", ci_method="wald")
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['age'\]"):
        adjusted_compare_rates(ep, "response", "route", covariates=["age"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adjusted_compare_rates(ep, "response", "route", covariates="baseline")


# --------------------------------------------------------------------------------------
# compare_rates: small-cell suppression (docs/design.md "Small cells", CMS rule with min_cell=11)

STATISTICS = [
    "risk_difference", "rd_ci_low", "rd_ci_high", "risk_ratio", "rr_ci_low", "rr_ci_high",
    "odds_ratio", "or_ci_low", "or_ci_high", "nnt", "nnt_ci_low", "nnt_ci_high",
    "nnt_ci_includes_infinity", "nnt_note", "zero_cell_correction", "p_value", "test",
]  # fmt: skip


def test_compare_rates_min_cell_keeps_rows_without_small_cells():
    ep = two_groups(30, 50, 12, 40)  # complements 20 and 28: nothing under 11
    plain = compare_rates(ep, "response", "route", reference="oral", by=())
    res = compare_rates(ep, "response", "route", reference="oral", by=(), min_cell=11)
    assert "suppressed" not in plain.columns  # columns unchanged without min_cell
    assert list(res.columns) == [*plain.columns, "suppressed"]
    assert not res.loc[0, "suppressed"]
    pd.testing.assert_frame_equal(res.drop(columns="suppressed"), plain)


@pytest.mark.parametrize(
    ("a", "n1", "c", "n2", "shown"),
    [
        (5, 50, 20, 40, [50, None, 40, 20]),  # 5 group events: the group's events hidden
        (45, 50, 20, 40, [50, None, 40, 20]),  # 5 group non-events
        (20, 50, 35, 40, [50, 20, 40, None]),  # 5 reference non-events
        (4, 8, 20, 40, [None, None, 40, 20]),  # group of 8 patients: n hidden too
    ],
)
def test_compare_rates_min_cell_hides_the_small_side_and_every_statistic(a, n1, c, n2, shown):
    ep = two_groups(a, n1, c, n2)
    res = compare_rates(ep, "response", "route", reference="oral", by=(), min_cell=11).loc[0]
    counts = [res[k] for k in ("n", "events", "n_ref", "events_ref")]
    assert [None if pd.isna(v) else int(v) for v in counts] == shown
    assert res["suppressed"]
    for column in STATISTICS:
        assert pd.isna(res[column]), column


def test_compare_rates_min_cell_zero_counts_are_shown():
    # CMS allows 0: 0/50 vs 20/40 is shown with its (Haldane-corrected) statistics.
    res = compare_rates(two_groups(0, 50, 20, 40), "response", "route", reference="oral",
                        by=(), min_cell=11).loc[0]  # fmt: skip
    assert not res["suppressed"] and res["events"] == 0
    assert res["risk_difference"] == pytest.approx(-0.5) and res["zero_cell_correction"]


def test_compare_rates_min_cell_adjusts_p_values_before_blanking():
    ep = pd.concat(
        [outcome_rows(20, 40, route="iv"), outcome_rows(5, 40, route="im"),
         outcome_rows(28, 40, route="oral")],
        ignore_index=True,
    )  # fmt: skip
    plain = compare_rates(ep, "response", "route", reference="oral", by=(), p_adjust="holm")
    res = compare_rates(ep, "response", "route", reference="oral", by=(), p_adjust="holm",
                        min_cell=11)  # fmt: skip
    assert res["group"].tolist() == ["im", "iv"] and res["suppressed"].tolist() == [True, False]
    # iv's Holm p-value is still adjusted for both comparisons (blanking is display only).
    assert res.loc[1, "p_adjusted"] == plain.loc[1, "p_adjusted"]
    assert pd.isna(res.loc[0, "p_adjusted"])


@given(
    cells=st.lists(counts_2x2, min_size=1, max_size=4),
    min_cell=st.integers(1, 15),
)
def test_property_compare_rates_never_shows_a_small_count(cells, min_cell):
    ep = pd.concat(
        [two_groups(a, n1, c, n2, site=f"s{i}") for i, (a, n1, c, n2) in enumerate(cells)],
        ignore_index=True,
    )
    res = compare_rates(ep, "response", "route", reference="oral", by="site",
                        min_cell=min_cell)  # fmt: skip
    for _, row in res.iterrows():
        shown = [row["n"], row["events"], row["n_ref"], row["events_ref"]]
        for events, n in (("events", "n"), ("events_ref", "n_ref")):
            if not (pd.isna(row[events]) or pd.isna(row[n])):
                shown.append(row[n] - row[events])
        for value in shown:
            assert pd.isna(value) or value == 0 or value >= min_cell
        if row["suppressed"]:
            assert all(pd.isna(row[c]) for c in STATISTICS)
        else:
            assert not any(pd.isna(row[c]) for c in ("n", "events", "n_ref", "events_ref"))


# ---------------------------------------------------------------------------------------
# Issue 13: defects found by the R cross-check


def test_hochberg_matches_r_p_adjust():
    # R 4.x: p.adjust(c(0.01, 0.04, 0.03), method = "hochberg") -> 0.03 0.04 0.04 (issue 13).
    out = adjust_pvalues(pd.DataFrame({"p_value": [0.01, 0.04, 0.03]}), method="hochberg")
    assert out["p_adjusted"].tolist() == pytest.approx([0.03, 0.04, 0.04], abs=1e-12)


def test_compare_rates_accepts_hochberg():
    data = pd.concat(
        [
            two_groups(20, 40, 10, 40, visit="week1"),
            two_groups(22, 40, 12, 40, visit="week2"),
            two_groups(15, 40, 14, 40, visit="week4"),
        ]
    )
    res = compare_rates(data, "response", "route", by="visit", p_adjust="hochberg")
    p = res["p_value"].to_numpy()
    # Hochberg step-up, written out: sort descending, multiply by rank, running minimum.
    order = np.argsort(-p)
    running = np.minimum.accumulate(p[order] * (np.arange(len(p)) + 1))
    expected = np.empty_like(p)
    expected[order] = np.minimum(running, 1)
    assert res["p_adjusted"].to_numpy() == pytest.approx(expected)


def _strata(cells):
    return pd.concat(
        [
            pd.concat(
                [
                    outcome_rows(a, n1, site_id=site, group="ketamine"),
                    outcome_rows(c, n2, site_id=site, group="control"),
                ]
            )
            for site, (a, n1, c, n2) in cells.items()
        ],
        ignore_index=True,
    )


@pytest.mark.parametrize("stratum_a", [(10, 10, 12, 12), (0, 10, 0, 12)])
def test_breslow_day_ignores_strata_with_all_or_no_events_in_both_arms(stratum_a):
    # Issue 13: strata A (10/10 vs 12/12, or 0/10 vs 0/12), B 8/20 vs 4/22, C 5/9 vs 1/10.
    # R metafor::rma.mh(ai, n1i, ci, n2i, measure = "OR"): Breslow-Day p = 0.352 in both
    # cases (stratum A adds nothing and no degree of freedom).
    data = _strata({"A": stratum_a, "B": (8, 20, 4, 22), "C": (5, 9, 1, 10)})
    res = compare_rates_stratified(
        data, "response", "group", "site_id", reference="control", by=()
    ).iloc[0]
    assert res["breslow_day_p"] == pytest.approx(0.352, abs=5e-4)
    # Breslow-Day over the two informative strata, 1 df, written out (Breslow & Day 1980):
    # the MH OR is unchanged by stratum A, and each stratum's expected count solves
    # (A (n2 - m1 + A)) / ((n1 - A)(m1 - A)) = OR_MH.
    or_mh = (8 * 18 / 42 + 5 * 9 / 19) / (12 * 4 / 42 + 4 * 1 / 19)
    assert res["odds_ratio"] == pytest.approx(or_mh)
    statistic = 0.0
    for a, n1, c, n2 in [(8, 20, 4, 22), (5, 9, 1, 10)]:
        m1 = a + c

        def gap(x, n1=n1, n2=n2, m1=m1):
            return x * (n2 - m1 + x) - or_mh * (n1 - x) * (m1 - x)

        x = optimize.brentq(gap, max(0, m1 - n2) + 1e-9, min(n1, m1) - 1e-9)
        var = 1 / (1 / x + 1 / (n1 - x) + 1 / (m1 - x) + 1 / (n2 - m1 + x))
        statistic += (a - x) ** 2 / var
    assert res["breslow_day_p"] == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-9)


def test_cmh_p_value_does_not_underflow_for_a_very_strong_effect():
    # Two strata, 95/100 vs 5/100 each: the CMH chi-square is about 323.6, p about 3e-72,
    # far below where 1 - cdf underflows to 0 (about 1e-16).
    data = _strata({"A": (95, 100, 5, 100), "B": (95, 100, 5, 100)})
    res = compare_rates_stratified(
        data, "response", "group", "site_id", reference="control", by=()
    ).iloc[0]
    # CMH statistic (no continuity correction), written out per stratum:
    # (sum a - E a)^2 / sum n1 n2 m1 m0 / (N^2 (N - 1)).
    num = 2 * (95 - 100 * 100 / 200)
    var = 2 * (100 * 100 * 100 * 100 / (200**2 * 199))
    chi2 = num**2 / var
    # The chi-square(1) tail as the normal tail: P(chi2 > x) = erfc(sqrt(x / 2)).
    from scipy.special import erfc

    expected = erfc(math.sqrt(chi2 / 2))
    assert expected < 1e-60
    assert res["p_value"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("events", [(0, 0), (30, 40)])
def test_rr_and_or_undefined_when_both_groups_at_0_or_100_percent(events):
    # Issue 10: 30/30 vs 40/40 gave RR 0.99 (0.95-1.03) beside RD 0 through the 0.5
    # correction. A table with both groups at 0% or 100% says nothing about a ratio: R
    # metafor (drop00) leaves such a study out of a ratio analysis.
    a, c = events
    res = compare_rates(
        two_groups(a, 30, c, 40), "response", "route", reference="oral", by=()
    ).iloc[0]
    for column in ("risk_ratio", "rr_ci_low", "rr_ci_high", "odds_ratio", "or_ci_low"):
        assert math.isnan(res[column])
    assert res["risk_difference"] == 0
    assert res["rd_ci_low"] < 0 < res["rd_ci_high"]
    assert not res["zero_cell_correction"]
    at = "0%" if a == 0 else "100%"
    assert f"both groups at {at}" in res["ratio_note"]


def test_ratio_note_is_na_when_ratios_are_defined():
    res = compare_rates(
        two_groups(30, 30, 20, 40), "response", "route", reference="oral", by=()
    ).iloc[0]
    assert res["zero_cell_correction"] and res["risk_ratio"] > 1
    assert pd.isna(res["ratio_note"])


def test_r_names_bh_and_by_are_the_fdr_methods():
    # R: p.adjust(c(0.01, 0.04, 0.03), "BH") -> 0.03 0.04 0.04; "BY" -> 0.055 0.0733 0.0733
    # (BH times sum(1/(1:3)) = 11/6).
    p = pd.DataFrame({"p_value": [0.01, 0.04, 0.03]})
    assert adjust_pvalues(p, method="BH")["p_adjusted"].tolist() == pytest.approx(
        [0.03, 0.04, 0.04]
    )
    assert adjust_pvalues(p, method="BY")["p_adjusted"].tolist() == pytest.approx(
        [0.055, 0.04 * 11 / 6, 0.04 * 11 / 6]
    )
