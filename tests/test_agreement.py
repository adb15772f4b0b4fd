"""Tests of analysis.agreement: Cronbach's alpha, Cohen's kappa, GAD-7 vs HAM-A agreement.

Every expected number names its source.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.agreement import (
    CronbachAlpha,
    Kappa,
    cohen_kappa,
    cronbach_alpha,
    instrument_agreement,
)

# Statology, "How to Calculate Cronbach's Alpha in Python" (Bobbitt 2021): 10 respondents,
# 3 items; pingouin.cronbach_alpha gives (0.7734375, [0.336, 0.939]) (Feldt interval).
SURVEY = pd.DataFrame(
    {
        "q1": [1, 2, 2, 3, 2, 2, 3, 3, 2, 3],
        "q2": [1, 1, 1, 2, 3, 3, 2, 3, 3, 3],
        "q3": [1, 1, 2, 1, 2, 3, 3, 3, 2, 3],
    }
)


def expand(table: list[list[int]]) -> tuple[list[int], list[int]]:
    """Rater pairs from a contingency table (rows rater a, columns rater b)."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return a, b


# --------------------------------------------------------------------------------------
# Cronbach's alpha


def test_cronbach_alpha_matches_pingouin_published_example():
    res = cronbach_alpha(SURVEY)
    assert isinstance(res, CronbachAlpha)
    alpha, low, high = res
    # Statology / pingouin output: alpha 0.7734375, 95% CI [0.336, 0.939].
    assert alpha == pytest.approx(0.7734375, abs=1e-12)
    assert round(low, 3) == 0.336 and round(high, 3) == 0.939
    assert (res.n, res.n_dropped, res.n_items) == (10, 0, 3)


def test_cronbach_alpha_by_hand_and_feldt_formula():
    # Hand computation in exact fractions: item variances (ddof 1) 41/90, 38/45, 23/30, sum
    # 31/15; total-score variance 64/15; alpha = 3/2 x (1 - 31/64) = 99/128 = 0.7734375.
    x = SURVEY.to_numpy(float)
    assert x.var(axis=0, ddof=1).sum() == pytest.approx(31 / 15)
    assert x.sum(axis=1).var(ddof=1) == pytest.approx(64 / 15)
    # Feldt 1965: bounds 1 - (1 - alpha) F(1 - a/2 or a/2; 9, 18), with the F quantiles
    # F(0.975; 9, 18) = 2.9291 and F(0.025; 9, 18) = 0.2702 (scipy.stats.f.ppf).
    alpha, low, high = cronbach_alpha(SURVEY)
    assert alpha == pytest.approx(99 / 128, abs=1e-12)
    assert low == pytest.approx(1 - (1 - alpha) * 2.9291, abs=1e-4)
    assert high == pytest.approx(1 - (1 - alpha) * 0.2702, abs=1e-4)


def test_cronbach_alpha_drops_incomplete_rows_and_counts_them():
    items = SURVEY.astype("Int64").copy()
    extra = pd.DataFrame({"q1": [1, 3], "q2": [pd.NA, 2], "q3": [2, pd.NA]}, dtype="Int64")
    res = cronbach_alpha(pd.concat([items, extra], ignore_index=True))
    # Listwise deletion: the two incomplete rows are dropped, giving the published value.
    assert res.alpha == pytest.approx(0.7734375)
    assert (res.n, res.n_dropped) == (10, 2)


def test_cronbach_alpha_errors_and_degenerate_input():
    with pytest.raises(ValueError, match="at least two item columns"):
        cronbach_alpha([[1], [2], [3]])
    with pytest.raises(ValueError, match="at least two respondents"):
        cronbach_alpha([[1, 2], [np.nan, 1]])
    assert all(math.isnan(v) for v in cronbach_alpha([[1, 1], [1, 1], [1, 1]]))


@given(st.integers(0, 2**32 - 1))
def test_property_alpha_lies_inside_its_feldt_interval(seed):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(30, 1))
    items = latent + rng.normal(scale=rng.uniform(0.3, 3), size=(30, 5))
    alpha, low, high = cronbach_alpha(items)
    assert low <= alpha <= high <= 1


# --------------------------------------------------------------------------------------
# Cohen's kappa

# SAS/STAT User's Guide, PROC FREQ, Getting Started "Agreement Study": skin condition
# ratings of two dermatologists (terrible, poor, marginal, clear).
SKIN = [[10, 4, 1, 0], [5, 10, 12, 2], [2, 4, 12, 5], [0, 2, 6, 13]]


def test_kappa_matches_sas_agreement_study():
    a, b = expand(SKIN)
    k = cohen_kappa(a, b)
    assert isinstance(k, Kappa) and k.n == 88
    # SAS PROC FREQ output, simple kappa: 0.3449, ASE 0.0724, 95% CI 0.2030 to 0.4868.
    assert round(k.kappa, 4) == 0.3449
    assert round(k.se, 4) == 0.0724
    assert (round(k.ci_low, 4), round(k.ci_high, 4)) == (0.2030, 0.4868)
    w = cohen_kappa(a, b, weights="linear")
    # SAS PROC FREQ output, weighted kappa (Cicchetti-Allison weights): 0.5082, ASE 0.0655,
    # 95% CI 0.3798 to 0.6366.
    assert round(w.kappa, 4) == 0.5082
    assert round(w.se, 4) == 0.0655
    assert (round(w.ci_low, 4), round(w.ci_high, 4)) == (0.3798, 0.6366)


def test_kappa_matches_sas_printout_in_statsmodels_tests():
    # SAS printout reproduced in statsmodels' test_inter_rater.py (table10): simple kappa
    # 0.4842, ASE 0.1380, CI 0.2137 to 0.7547, two-sided p 0.0011; weighted (linear)
    # 0.4701, ASE 0.1457, CI 0.1845 to 0.7558, p 0.0010.
    a, b = expand([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
    k = cohen_kappa(a, b)
    assert [round(v, 4) for v in (k.kappa, k.se, k.ci_low, k.ci_high, k.p_value)] == [
        0.4842, 0.1380, 0.2137, 0.7547, 0.0011,
    ]  # fmt: skip
    w = cohen_kappa(a, b, weights="linear")
    assert [round(v, 4) for v in (w.kappa, w.se, w.ci_low, w.ci_high, w.p_value)] == [
        0.4701, 0.1457, 0.1845, 0.7558, 0.0010,
    ]  # fmt: skip


def test_kappa_fleiss_1981_example_by_hand():
    # Fleiss 1981 (Statistical Methods for Rates and Proportions, 2nd ed., p. 213): 100
    # subjects, 3 categories; p_o = 0.89, p_e = 0.8 x 0.8 + 0.1 x 0.05 + 0.1 x 0.15 = 0.66,
    # kappa = (0.89 - 0.66) / (1 - 0.66) = 0.676.
    a, b = expand([[75, 1, 4], [5, 4, 1], [0, 0, 10]])
    assert cohen_kappa(a, b).kappa == pytest.approx(0.23 / 0.34)


def test_quadratic_weighted_kappa_by_hand():
    a, b = expand(SKIN)
    # Hand computation with Fleiss-Cohen weights w_ij = 1 - (i - j)^2 / 9:
    # kappa_w = (p_o(w) - p_e(w)) / (1 - p_e(w)).
    t = np.array(SKIN, float) / 88
    i, j = np.indices(t.shape)
    w = 1 - (i - j) ** 2 / 9
    po, pe = (w * t).sum(), (w * np.outer(t.sum(1), t.sum(0))).sum()
    assert cohen_kappa(a, b, weights="quadratic").kappa == pytest.approx((po - pe) / (1 - pe))


def test_kappa_categories_order_matters_for_weights_and_missing_pairs_dropped():
    labels = ["minimal", "mild", "moderate", "severe"]
    a_idx, b_idx = expand(SKIN)
    a = [labels[i] for i in a_idx] + [None]
    b = [labels[j] for j in b_idx] + ["mild"]
    k = cohen_kappa(a, b, weights="linear", categories=labels)
    # Same table as SAS "Agreement Study" once the ordinal order is given: 0.5082.
    assert round(k.kappa, 4) == 0.5082 and k.n == 88
    assert k.categories == tuple(labels)
    # An ordered Categorical supplies the order itself.
    cat = pd.Categorical(a, categories=labels, ordered=True)
    assert round(cohen_kappa(cat, b, weights="linear").kappa, 4) == 0.5082
    with pytest.raises(ValueError, match="not among `categories`"):
        cohen_kappa(a, b, categories=labels[:3])


def test_kappa_errors_and_degenerate_cases():
    with pytest.raises(ValueError, match="The value for `weights` must be one of"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    with pytest.raises(ValueError, match="must rate the same units"):
        cohen_kappa([1, 2], [1])
    # Both raters always choose the same single category: chance agreement 1, kappa NaN.
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]).kappa)
    # Perfect agreement: kappa 1 (definition).
    assert cohen_kappa([0, 1, 1, 0], [0, 1, 1, 0]).kappa == pytest.approx(1.0)


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=60),
    st.sampled_from([None, "linear", "quadratic"]),
)
def test_property_kappa_is_symmetric_and_at_most_one(pairs, weights):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    k1 = cohen_kappa(a, b, weights=weights, categories=[0, 1, 2, 3])
    k2 = cohen_kappa(b, a, weights=weights, categories=[0, 1, 2, 3])
    if math.isnan(k1.kappa):
        assert math.isnan(k2.kappa)
        return
    assert k1.kappa == pytest.approx(k2.kappa)
    assert k1.kappa <= 1 + 1e-12


# --------------------------------------------------------------------------------------
# instrument agreement


def _two_instruments() -> pd.DataFrame:
    # GAD-7 vs HAM-A response for 50 patients at week 4: 20 both, 5 GAD-7 only, 10 HAM-A
    # only, 15 neither; plus one patient without a HAM-A at week 4, one whose HAM-A
    # response is NA, and week 8 rows that must be ignored.
    gad = [True] * 25 + [False] * 25 + [True, True]
    ham = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15 + [pd.NA]
    ids = [f"p{i}" for i in range(52)]
    return pd.concat(
        [
            pd.DataFrame({"patient_id": ids, "instrument": "GAD7", "visit": "week4",
                          "response": pd.array(gad, dtype="boolean")}),
            pd.DataFrame({"patient_id": ids[:51], "instrument": "HAMA", "visit": "week4",
                          "response": pd.array(ham, dtype="boolean")}),
            pd.DataFrame({"patient_id": ids[:5], "instrument": "HAMA", "visit": "week8",
                          "response": pd.array([False] * 5, dtype="boolean")}),
        ],
        ignore_index=True,
    )  # fmt: skip


def test_instrument_agreement_table_and_kappa_by_hand():
    res = instrument_agreement(_two_instruments(), "response", visit="week4")
    assert res.n == 50
    assert res.table.to_numpy().tolist() == [[15, 10], [5, 20]]
    assert res.table.index.name == "GAD7" and res.table.columns.name == "HAMA"
    # Hand computation (Cohen 1960): p_o = 35/50 = 0.70; p_e = 0.5 x 0.6 + 0.5 x 0.4 =
    # 0.50; kappa = (0.70 - 0.50) / 0.50 = 0.40.
    assert res.observed_agreement == pytest.approx(0.70)
    assert res.kappa.kappa == pytest.approx(0.40)
    assert res.kappa.n == 50
    assert res.instruments == ("GAD7", "HAMA")


def test_instrument_agreement_errors():
    ep = _two_instruments()
    with pytest.raises(ValueError, match="The value for `visit` must be one of"):
        instrument_agreement(ep, visit="week2")
    with pytest.raises(ValueError, match="The value for `instruments` must be one of"):
        instrument_agreement(ep, instruments=("GAD7", "PHQ9"))
    with pytest.raises(ValueError, match="more than one row"):
        instrument_agreement(pd.concat([ep, ep.iloc[:1]]))
    with pytest.raises(ValueError, match="missing the column"):
        instrument_agreement(ep.drop(columns="visit"))


def test_instrument_agreement_without_common_patients_is_nan_not_an_error():
    ep = _two_instruments()
    hama = (ep["instrument"] == "HAMA") & (ep["visit"] == "week4")
    ep.loc[hama, "patient_id"] = "other-" + ep.loc[hama, "patient_id"]
    res = instrument_agreement(ep)
    assert res.n == 0 and math.isnan(res.kappa.kappa)
    assert res.table.to_numpy().sum() == 0


def test_kappa_is_the_number_and_carries_its_interval():
    # Fleiss 1981 p. 213 example as above: kappa = 0.23 / 0.34.
    a, b = expand([[75, 1, 4], [5, 4, 1], [0, 0, 10]])
    k = cohen_kappa(a, b)
    assert k == pytest.approx(0.23 / 0.34) and isinstance(k, float)
    assert k.ci_low < k < k.ci_high and k.n == 100
    with pytest.raises(AttributeError):
        k.n = 3
    assert "ci_low=" in repr(k)


# ---------------------------------------------------------------------------------------
# Issue 10: degenerate input gives a documented NaN with its reason, never a silent one


def test_cronbach_alpha_of_constant_items_is_nan_with_a_reason():
    # Every respondent at the floor on every item: alpha = k/(k-1) (1 - 0/0).
    res = cronbach_alpha(np.zeros((12, 14)))
    assert all(math.isnan(v) for v in res)
    assert "total score is the same for all 12 respondents" in res.note
    assert "14 of 14 items constant" in res.note
    # Constant items among varying ones are fine: alpha is computed, no note.
    x = np.column_stack([np.zeros(6), [1, 2, 3, 2, 1, 3], [1, 3, 3, 2, 1, 2]])
    ok = cronbach_alpha(x)
    assert math.isfinite(ok.alpha) and ok.note is None
    # By hand: k = 3, item variances 0, 0.8, 0.8; total variance 2.8 -> 3/2 (1 - 1.6/2.8).
    assert ok.alpha == pytest.approx(1.5 * (1 - 1.6 / 2.8))


def test_kappa_with_one_category_is_nan_with_a_reason():
    k = cohen_kappa(["mild"] * 8, ["mild"] * 8)
    assert math.isnan(k) and math.isnan(k.ci_low) and math.isnan(k.se)
    assert "one and the same category" in k.note and "8 units" in k.note
    assert cohen_kappa([0, 1, 1, 0], [0, 1, 0, 0]).note is None
    # Pinned to R irr::kappa2 / psych::cohen.kappa: kappa NaN (0/0) for one category.


def test_instrument_agreement_without_common_patients_says_why():
    from analysis import derive_endpoints, synthetic_cohort

    cohort = synthetic_cohort(n_patients=40, seed=1)
    gad = derive_endpoints(cohort, "GAD7")
    hama = derive_endpoints(cohort, "HAMA").assign(patient_id=lambda d: "other_" + d.patient_id)
    res = instrument_agreement(pd.concat([gad, hama]), "response", visit="week4")
    assert math.isnan(res.kappa) and "no patient" in res.kappa.note
