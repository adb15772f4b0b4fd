"""Multiple imputation, reference-based imputation, conditional mean and tipping point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import derive_endpoints, fit_mmrm
from analysis.missing_data import (
    conditional_mean_analysis,
    missing_data_sensitivity,
    multiple_imputation,
    pool_change_differences,
    pool_rate_differences,
    pool_rates,
    rubin_rules,
    tipping_point,
)

SCHEDULE = pd.DataFrame(
    {
        "visit": ["baseline", "week1", "week2", "week4"],
        "target_day": [0, 7, 14, 28],
        "window_low": [-14, 4, 11, 21],
        "window_high": [0, 10, 20, 41],
    }
)


def simulate(n=120, seed=0, effect=0.15, dropout=0.25):
    """A two-arm GAD-7 cohort with MAR dropout, as ``derive_endpoints(impute='bocf')``.

    Scores fall by a share of the baseline that grows over the visits (more in arm
    ``b``); a patient drops out after a visit with a probability rising with the score
    just observed (missing at random). Returns the endpoints with an ``arm`` column.
    """
    rng = np.random.default_rng(seed)
    baseline = np.clip(np.round(rng.normal(15, 3, n)), 8, 21)
    arm = np.where(np.arange(n) % 2 == 0, "a", "b")
    days = np.array([7, 14, 28])
    shrink = np.array([0.2, 0.3, 0.4]) + np.outer(arm == "b", [0.3, 0.6, 1.0]) * effect
    lag = np.abs(np.subtract.outer(np.arange(3), np.arange(3)))
    noise = rng.multivariate_normal(np.zeros(3), 9 * 0.6**lag, n)
    scores = np.clip(np.round(baseline[:, None] * (1 - shrink) + noise), 0, 21)
    present = np.ones((n, 3), dtype=bool)
    for t in range(1, 3):
        p = 1 / (1 + np.exp(-(np.log(dropout / (1 - dropout)) + 0.3 * (scores[:, t - 1] - 9))))
        present[:, t] = present[:, t - 1] & (rng.random(n) > p)
    ids = [f"P{i:04d}" for i in range(n)]
    rows = [pd.DataFrame({"patient_id": ids, "study_day": 0, "total": baseline})]
    for t in range(3):
        keep = present[:, t]
        rows.append(
            pd.DataFrame(
                {
                    "patient_id": np.array(ids)[keep],
                    "study_day": days[t],
                    "total": scores[keep, t],
                }
            )
        )
    assessments = pd.concat(rows, ignore_index=True).assign(instrument="GAD7")
    assessments["total"] = assessments["total"].astype(int)
    endpoints = derive_endpoints(assessments, "GAD7", schedule=SCHEDULE, impute="bocf")
    return endpoints.merge(pd.DataFrame({"patient_id": ids, "arm": arm}), on="patient_id")


@pytest.fixture(scope="module")
def trial():
    return simulate()


# -- Rubin's rules -----------------------------------------------------------------------

# R 4.2.2, mice 3.15.0: tests/reference/rubin_mice_pool.R (output beside it).
Q = [1.0, 1.2, 0.9, 1.1, 1.3]
U = [0.04, 0.05, 0.04, 0.05, 0.045]


@pytest.mark.parametrize(
    ("df_complete", "df", "fmi"),
    [(50, 13.3975481611, 0.4731816725), (None, 25.0, 0.4428571429)],
)
def test_rubin_rules_matches_mice_pool_scalar(df_complete, df, fmi):
    pooled = rubin_rules(Q, U, df_complete=df_complete)
    # mice::pool.scalar: qbar 1.1, ubar 0.045, b 0.025, t 0.075, r 0.6666666667.
    assert pooled.estimate == pytest.approx(1.1, abs=1e-10)
    assert pooled.within == pytest.approx(0.045, abs=1e-10)
    assert pooled.between == pytest.approx(0.025, abs=1e-10)
    assert pooled.total == pytest.approx(0.075, abs=1e-10)
    assert pooled.riv == pytest.approx(0.6666666667, abs=1e-9)
    assert pooled.df == pytest.approx(df, abs=1e-8)
    assert pooled.fmi == pytest.approx(fmi, abs=1e-9)


def test_rubin_rules_matches_mice_pool_on_nhanes():
    # mice::pool(with(mice(nhanes, m = 5, seed = 1), lm(chl ~ bmi))), the bmi row:
    # per-imputation estimates and variances, then the pooled row and summary().
    est = [3.3020894778, 5.1672037210, 1.4467150944, 3.4500072697, 2.7689493965]
    var = [3.5656360291, 3.3472489409, 3.1983269698, 4.0607465739, 4.3850583725]
    pooled = rubin_rules(est, var, df_complete=23)
    assert pooled.estimate == pytest.approx(3.2269929919, abs=1e-9)
    assert pooled.within == pytest.approx(3.7114033772, abs=1e-9)
    assert pooled.between == pytest.approx(1.7997464628, abs=1e-9)
    assert pooled.total == pytest.approx(5.8710991326, abs=1e-9)
    assert pooled.df == pytest.approx(9.2302911318, abs=1e-8)
    assert pooled.riv == pytest.approx(0.5819081183, abs=1e-9)
    assert pooled.lambda_ == pytest.approx(0.3678520336, abs=1e-9)
    assert pooled.fmi == pytest.approx(0.4712261822, abs=1e-9)
    assert pooled.ci_low == pytest.approx(-2.2335175159, abs=1e-8)
    assert pooled.ci_high == pytest.approx(8.6875034996, abs=1e-8)
    assert pooled.p_value == pytest.approx(0.2148760393, abs=1e-9)


def test_rubin_rules_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        rubin_rules([1.0], [0.1])
    with pytest.raises(ValueError, match="same length"):
        rubin_rules([1.0, 2.0], [0.1])
    with pytest.raises(ValueError, match="finite"):
        rubin_rules([1.0, np.inf], [0.1, 0.1])


finite = st.floats(-100, 100, allow_nan=False)
positive = st.floats(1e-3, 10, allow_nan=False)


@given(
    st.lists(st.tuples(finite, positive), min_size=2, max_size=30),
    st.floats(0.1, 10),
    finite,
    st.one_of(st.none(), st.floats(2, 500)),
)
def test_rubin_rules_invariants(pairs, scale, shift, df_complete):
    q = np.array([p[0] for p in pairs])
    u = np.array([p[1] for p in pairs])
    pooled = rubin_rules(q, u, df_complete=df_complete)
    assert pooled.total >= pooled.within - 1e-12
    assert pooled.ci_low <= pooled.estimate <= pooled.ci_high
    assert 0 <= pooled.lambda_ <= 1 and 0 <= pooled.fmi <= 1
    if df_complete is not None:  # Barnard-Rubin df never exceed the complete-data df
        assert pooled.df <= df_complete * (1 + 1e-9)
    # order of the imputations does not matter; an affine change of scale carries through
    again = rubin_rules(q[::-1], u[::-1], df_complete=df_complete)
    assert again.estimate == pytest.approx(pooled.estimate, rel=1e-9, abs=1e-9)
    assert again.df == pytest.approx(pooled.df, rel=1e-9)
    moved = rubin_rules(scale * q + shift, scale**2 * u, df_complete=df_complete)
    assert moved.estimate == pytest.approx(scale * pooled.estimate + shift, rel=1e-9, abs=1e-6)
    assert moved.se == pytest.approx(scale * pooled.se, rel=1e-6)
    assert moved.df == pytest.approx(pooled.df, rel=1e-6)


def test_rubin_rules_without_between_variance_is_the_complete_data_analysis():
    pooled = rubin_rules([2.0, 2.0, 2.0], [0.25, 0.25, 0.25], df_complete=30)
    assert pooled.between == 0 and pooled.total == pytest.approx(0.25)
    assert pooled.df == pytest.approx(30 * 31 / 33)  # nu_obs with lambda = 0


# -- multiple imputation -------------------------------------------------------------------


def test_same_seed_same_imputations(trial):
    one = multiple_imputation(trial, group="arm", n_imputations=3, seed=11)
    two = multiple_imputation(trial, group="arm", n_imputations=3, seed=11)
    other = multiple_imputation(trial, group="arm", n_imputations=3, seed=12)
    pd.testing.assert_frame_equal(one, two)
    assert not one["score_continuous"].equals(other["score_continuous"])


def test_same_seed_same_imputations_whatever_signs_lapack_gives(trial, monkeypatch):
    """LAPACK builds (OpenBLAS' kernel for the CPU) may return an eigenvector or its
    negative; a seed must still give the same imputations on every machine."""
    from scipy import linalg

    from analysis import missing_data

    one = multiple_imputation(trial, group="arm", strategy="j2r", n_imputations=3, seed=5)
    eigh = linalg.eigh

    def flipped_eigh(a, *args, **kwargs):
        values, vectors = eigh(a, *args, **kwargs)
        return values, -vectors

    def no_cholesky(*args, **kwargs):
        raise linalg.LinAlgError("forced")

    monkeypatch.setattr(missing_data.linalg, "eigh", flipped_eigh)
    two = multiple_imputation(trial, group="arm", strategy="j2r", n_imputations=3, seed=5)
    pd.testing.assert_frame_equal(one, two)
    # The eigen root of a rank-deficient covariance is signed the same way whatever
    # LAPACK returns, and is a square root.
    monkeypatch.setattr(missing_data.linalg, "cholesky", no_cholesky)
    cov = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 9.0]])
    flipped = missing_data._root(cov)
    monkeypatch.setattr(missing_data.linalg, "eigh", eigh)
    plain = missing_data._root(cov)
    np.testing.assert_array_equal(flipped, plain)
    np.testing.assert_allclose(plain @ plain.T, cov, atol=1e-12)


def test_observed_rows_are_kept_and_missing_rows_filled(trial):
    sets = multiple_imputation(trial, group="arm", n_imputations=4, seed=1)
    assert len(sets) == 4 * len(trial)
    for _, one in sets.groupby("imputation"):
        one = one.set_index(["patient_id", "visit"]).loc[
            trial.set_index(["patient_id", "visit"]).index
        ]
        observed = ~trial["imputed"].to_numpy(bool)
        kept = one.reset_index()[observed]
        original = trial[observed].reset_index(drop=True)
        for column in ("score", "change", "response", "remission", "study_day"):
            pd.testing.assert_series_equal(
                kept[column].reset_index(drop=True), original[column], check_names=False
            )
        filled = one.reset_index()[~observed]
        assert filled["score"].notna().all() and filled["imputed"].all()
        assert filled["score"].between(0, 21).all()
        assert filled["study_day"].isna().all()


def test_imputed_flags_follow_derive_endpoints_rules(trial):
    """An imputed set re-derived from its scores by derive_endpoints gives the same flags."""
    sets = multiple_imputation(trial, group="arm", n_imputations=2, seed=5)
    one = sets[sets["imputation"] == 2]
    base = one.drop_duplicates("patient_id").assign(study_day=0, total=lambda d: d["baseline"])
    days = one.assign(study_day=one["target_day"], total=one["score"])
    assessments = pd.concat([base, days])[["patient_id", "study_day", "total"]].assign(
        instrument="GAD7"
    )
    assessments["total"] = assessments["total"].astype(int)
    again = derive_endpoints(assessments, "GAD7", schedule=SCHEDULE)
    flags = ["response", "partial_response", "remission", "reliable_improvement", "recovery"]
    mine = one.sort_values(["patient_id", "target_day"]).reset_index(drop=True)
    for column in [*flags, "severity", "pct_change"]:
        pd.testing.assert_series_equal(mine[column], again[column], check_names=False)


def test_pool_rates_equals_the_complete_data_rate_when_nothing_is_missing(trial):
    complete = trial.assign(imputed=False, score=trial["score"].fillna(trial["baseline"]))
    complete["response"] = complete["response"].fillna(False)
    sets = multiple_imputation(complete, n_imputations=3, seed=0)
    pooled = pool_rates(sets, by="visit", scale="raw")
    expected = complete.groupby("visit")["response"].mean()
    got = pooled.set_index("visit")["rate"]
    assert got.to_dict() == pytest.approx(expected.astype(float).to_dict(), abs=1e-12)
    n = len(complete["patient_id"].unique())
    p = pooled["rate"].to_numpy()
    np.testing.assert_allclose(pooled["se"], np.sqrt(p * (1 - p) / n), rtol=1e-12)


def test_pool_rates_stay_in_the_unit_interval(trial):
    sets = multiple_imputation(trial, group="arm", n_imputations=5, seed=2)
    for scale in ("logit", "raw"):
        out = pool_rates(sets, "remission", by=("visit", "arm"), scale=scale)
        assert ((out["ci_low"] >= 0) & (out["ci_high"] <= 1)).all()
        assert ((out["ci_low"] <= out["rate"]) & (out["rate"] <= out["ci_high"])).all()
    small = pool_rates(sets, "response", by=("visit", "arm"), min_cell=100)
    assert small["suppressed"].all() and small["rate"].isna().all()


def test_rate_difference_flips_sign_when_the_reference_changes(trial):
    sets = multiple_imputation(trial, group="arm", n_imputations=5, seed=3)
    ab = pool_rate_differences(sets, "response", "arm", reference="a", by="visit")
    ba = pool_rate_differences(sets, "response", "arm", reference="b", by="visit")
    np.testing.assert_allclose(ab["risk_difference"], -ba["risk_difference"], atol=1e-12)
    np.testing.assert_allclose(ab["se"], ba["se"], rtol=1e-12)
    np.testing.assert_allclose(ab["rd_ci_low"], -ba["rd_ci_high"], atol=1e-12)


def test_mi_change_difference_is_close_to_the_mmrm(trial):
    sets = multiple_imputation(trial, group="arm", n_imputations=40, seed=4)
    pooled = pool_change_differences(sets, "arm", reference="a")
    fit = _mmrm(trial)
    direct = fit.pairwise("arm", by="visit", reference="a")
    week4 = pooled.set_index("visit").loc["week4"]
    mmrm = direct.set_index("visit").loc["week4"]
    # MI under MAR estimates the same quantity as the MMRM; with M = 40 the Monte Carlo
    # error of the estimate is about se * sqrt(fmi / M).
    assert abs(week4["estimate"] - mmrm["estimate"]) < 0.25 * mmrm["se"]
    assert week4["se"] == pytest.approx(mmrm["se"], rel=0.2)


def _mmrm(endpoints):
    data = endpoints[~endpoints["imputed"].astype(bool)].copy()
    visits = ["week1", "week2", "week4"]
    data["visit"] = pd.Categorical(data["visit"], categories=visits, ordered=True)
    data["change"] = data["change"].astype(float)
    data["baseline"] = data["baseline"].astype(float)
    data["arm"] = data["arm"].astype(str)
    return fit_mmrm(data, "change ~ visit * (baseline + arm)", subject="patient_id", visit="visit")


# -- conditional mean --------------------------------------------------------------------


def test_conditional_mean_under_mar_reproduces_the_mmrm_difference(trial):
    """Wolbers et al. 2022 (Pharm Stat 21:1246-1257), sec. 3.2: with the imputation model's
    covariates in the ANCOVA, conditional mean imputation under MAR returns the MMRM
    estimate of the treatment difference exactly."""
    cm = conditional_mean_analysis(trial, group="arm", reference="a", jackknife_groups=2, seed=0)
    cm = cm[cm["statistic"] == "change_difference"].set_index("visit")["estimate"]
    direct = _mmrm(trial).pairwise("arm", by="visit", reference="a").set_index("visit")
    for visit in ("week1", "week2", "week4"):
        assert cm[visit] == pytest.approx(direct.loc[visit, "estimate"], abs=1e-8)


# R 4.2.2, nlme 3.1.162: tests/reference/missing_data/conditional_mean_nlme.R, an
# independent implementation (gls with corSymm + varIdent, REML; the strategies' mean
# profiles and conditional means written out in R) on trial.csv = simulate().
R_WEEK4_DIFFERENCE = {
    "mar": -0.9535494307,
    "j2r": -0.3962388767,
    "cr": -0.6788811328,
    "cir": -0.9970735358,
}


@pytest.mark.parametrize("strategy", list(R_WEEK4_DIFFERENCE))
def test_conditional_mean_matches_an_independent_r_implementation(trial, strategy):
    cm = conditional_mean_analysis(
        trial, group="arm", reference="a", strategy=strategy, jackknife_groups=2, seed=0
    )
    row = cm[(cm["statistic"] == "change_difference") & (cm["visit"] == "week4")]
    # the two REML optimizers stop within about 1e-6 of each other
    assert row["estimate"].iloc[0] == pytest.approx(R_WEEK4_DIFFERENCE[strategy], abs=1e-5)


def test_conditional_mean_jackknife_of_complete_data_is_the_textbook_se():
    """Without missing values the rate is the observed proportion and the leave-one-out
    jackknife SE of a mean is sd / sqrt(n) (Efron & Tibshirani 1993, sec. 11.2)."""
    ep = simulate(n=30, seed=3, dropout=1e-9)
    assert not ep["imputed"].any()
    cm = conditional_mean_analysis(ep, outcome="remission")
    week4 = ep[ep["visit"] == "week4"]["remission"].dropna().astype(float)
    row = cm.set_index("visit").loc["week4"]
    assert row["estimate"] == pytest.approx(week4.mean(), abs=1e-12)
    assert row["se"] == pytest.approx(week4.std(ddof=1) / np.sqrt(len(week4)), rel=1e-9)


def test_reference_based_never_observed_patients_follow_the_reference(trial):
    """A treated patient with no post-baseline visit has, under J2R, CR and CIR, the mean
    profile of a reference patient with the same baseline (Carpenter et al. 2013)."""
    extra = trial[trial["patient_id"].isin(["P0000", "P0001"])].copy()  # arms a and b
    extra["patient_id"] = extra["patient_id"].str.replace("P", "X")
    extra["baseline"] = 16
    extra["imputed"] = True
    data = pd.concat([trial, extra], ignore_index=True)
    from analysis.missing_data import _conditional, _Model, _Wide

    wide = _Wide(data, "arm", (), "a", True)
    model = _Model(wide)
    rows = [wide.patients.index[wide.patients["patient_id"] == p][0] for p in ("X0000", "X0001")]
    for strategy, same in (("mar", False), ("j2r", True), ("cr", True), ("cir", True)):
        mean = model.means(model.beta, strategy)
        cmean = _conditional(wide, mean, model.sigma, wide.change)[0]
        assert np.allclose(cmean[rows[0]], cmean[rows[1]], atol=1e-10) == same


def test_reference_based_effects_shrink_towards_the_reference():
    """With an effect growing over the visits: J2R keeps none of the effect after dropout,
    CIR the effect reached at dropout, MAR all of it, so |J2R| < |CIR| < |MAR| at the last
    visit (Carpenter et al. 2013, sec. 4)."""
    ep = simulate(n=300, seed=8, effect=0.3, dropout=0.35)
    estimates = {}
    for strategy in ("mar", "cir", "j2r"):
        cm = conditional_mean_analysis(
            ep, group="arm", reference="a", strategy=strategy, jackknife_groups=2, seed=0
        )
        row = cm[(cm["statistic"] == "change_difference") & (cm["visit"] == "week4")]
        estimates[strategy] = float(row["estimate"].iloc[0])
    assert estimates["mar"] < estimates["cir"] < estimates["j2r"] < 0


def test_reference_patients_are_imputed_alike_under_every_strategy(trial):
    sets = {
        s: multiple_imputation(
            trial, group="arm", reference="a", strategy=s, n_imputations=2, seed=21
        )
        for s in ("mar", "j2r", "cr", "cir")
    }
    ref = sets["mar"]["arm"] == "a"
    for s in ("j2r", "cr", "cir"):
        np.testing.assert_allclose(
            sets[s].loc[ref, "score_continuous"], sets["mar"].loc[ref, "score_continuous"]
        )
        assert not np.allclose(
            sets[s].loc[~ref, "score_continuous"], sets["mar"].loc[~ref, "score_continuous"]
        )


# -- tipping point -----------------------------------------------------------------------


def test_tipping_point_at_zero_is_the_mar_analysis():
    ep = simulate(n=240, seed=4, effect=0.3)
    tp = tipping_point(
        ep, "arm", reference="a", deltas=range(0, 9), n_imputations=10, seed=7, visit="week4"
    )
    sets = multiple_imputation(ep, group="arm", reference="a", n_imputations=10, seed=7)
    mar = pool_rate_differences(sets, "response", "arm", reference="a", by="visit")
    mar = mar.set_index("visit").loc["week4"]
    zero = tp.grid[tp.grid["delta"] == 0].iloc[0]
    assert zero["risk_difference"] == pytest.approx(mar["risk_difference"], abs=1e-12)
    assert zero["ci_low"] == pytest.approx(mar["rd_ci_low"], abs=1e-12)
    summary = tp.tipping_points.iloc[0]
    assert summary["shifted"] == "b" and summary["significant_at_zero"]
    # shifting arm b's missing patients worse lowers its rate, never raises it
    assert (np.diff(tp.grid["risk_difference"]) <= 1e-12).all()
    first = tp.grid[~tp.grid["significant"]]["delta"].min()
    assert summary["tipping_point"] == first


def test_tipping_point_with_one_group_says_the_comparison_is_not_defined(trial):
    one = trial[trial["arm"] == "a"]
    tp = tipping_point(one, "arm", n_imputations=2, seed=0)
    assert "not defined" in tp.note
    assert tp.tipping_points["note"].tolist() == [tp.note] and len(tp.grid) == 1
    table = missing_data_sensitivity(one, "arm", n_imputations=2, seed=0)
    assert table["note"].tolist() == [tp.note]


# -- input checks ------------------------------------------------------------------------


def test_errors_name_the_problem_and_the_fix(trial):
    with pytest.raises(ValueError, match="missing the column"):
        multiple_imputation(trial.drop(columns="imputed"))
    with pytest.raises(ValueError, match="must be one of"):
        multiple_imputation(trial, group="arm", strategy="locf")
    with pytest.raises(ValueError, match="n_imputations"):
        multiple_imputation(trial, n_imputations=1)
    with pytest.raises(ValueError, match="one level"):
        multiple_imputation(trial[trial["arm"] == "a"], group="arm", strategy="j2r")
    two = pd.concat([trial, trial.assign(instrument="HAMA")])
    with pytest.raises(ValueError, match="one scale at a time"):
        multiple_imputation(two)
    broken = trial.copy()
    broken.loc[broken.index[:3], "arm"] = None
    broken = pd.concat([broken, broken.iloc[[5]]])
    with pytest.raises(ValueError, match=r"repeat a \(patient_id, visit\).*`arm`: 3 row"):
        multiple_imputation(broken, group="arm")


def test_a_group_never_seen_at_a_visit_is_no_imputation(trial):
    from analysis import MMRMFitError

    unseen = trial.copy()
    unseen.loc[(unseen["arm"] == "b") & (unseen["visit"] == "week4"), "imputed"] = True
    with pytest.raises(MMRMFitError, match="estimable|linear combinations"):
        multiple_imputation(unseen, group="arm", n_imputations=2, seed=0)
    table = missing_data_sensitivity(unseen, "arm", n_imputations=2, seed=0)
    assert len(table) == 1 and table["note"][0].startswith("No imputation")
    assert tipping_point(unseen, "arm", n_imputations=2, seed=0).note.startswith("No imputation")


@settings(max_examples=5)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["mar", "j2r", "cr", "cir"]))
def test_every_patient_and_visit_imputed_once_per_set(seed, strategy):
    ep = simulate(n=40, seed=seed % 1000)
    sets = multiple_imputation(ep, group="arm", strategy=strategy, n_imputations=2, seed=seed)
    counts = sets.groupby(["imputation", "patient_id", "visit"]).size()
    assert (counts == 1).all() and len(counts) == 2 * len(ep)
    assert sets["score"].notna().all()
    assert (sets["score"] == sets["baseline"] + sets["change"]).all()


@pytest.fixture(scope="module")
def imputation_grids():
    """(wide, rules) of two imputation problems: the two-arm GAD-7 trial, and HAM-A by
    route with the primary diagnosis as a covariate (synthetic cohort)."""
    from analysis.missing_data import _Rules, _Wide
    from analysis.synthetic import synthetic_cohort
    from analysis.tables import cohort_endpoints

    cohort = synthetic_cohort(n_patients=120, seed=0)
    columns = ("route", "primary_diagnosis")
    hama = cohort_endpoints(cohort, "HAMA", impute="bocf", patient_columns=columns)
    grids = []
    for wide in (
        _Wide(simulate(n=60, seed=2), "arm", (), "a", True),
        _Wide(hama, "route", ("primary_diagnosis",), "iv", True),
    ):
        grids.append((wide, _Rules(wide.instrument, None)))
    return grids


@settings(max_examples=25, deadline=None)
@given(
    problem=st.sampled_from([0, 1]),
    n_sets=st.integers(1, 4),
    spread=st.sampled_from([0.5, 4.0, 40.0]),  # 40: imputed scores past both ends, clipped
    seed=st.integers(0, 2**32 - 1),
)
def test_imputed_sets_built_at_once_equal_the_sets_built_one_by_one(
    imputation_grids, problem, n_sets, spread, seed
):
    # _assemble builds the M imputed sets as one frame (fast); the plain form builds a
    # block per set and concatenates: the same frame, values and dtypes, for any draws.
    from analysis.missing_data import _assemble

    wide, rules = imputation_grids[problem]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_sets):
        change = np.where(wide.observed, wide.change, rng.normal(0, spread, wide.change.shape))
        draws.append(change)
    fast = _assemble(wide, rules, draws)
    plain = _assemble(wide, rules, draws, fast=False)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
    assert len(fast) == n_sets * wide.n * wide.m
