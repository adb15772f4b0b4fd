"""Tests for analysis.mmrm: the MMRM against SAS PROC MIXED and R nlme on fev_data.

Sources of the expected numbers:
- "SAS": SAS PROC MIXED listings quoted in /work/shared/REFERENCES.md (section "MMRM").
- "nlme": R 4.2.2, nlme 3.1-162 gls and emmeans 1.8.4.1, written to
  tests/reference/mmrm/nlme_reference.json by tests/reference/mmrm/nlme_reference.R.
The data, tests/reference/mmrm/fev_data.csv, is the mmrm R package's simulated FEV1 trial
(Apache-2.0): 200 subjects x 4 visits, 537 non-missing FEV1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.mmrm import MMRMFitError, MMRMResult, fit_mmrm

HERE = Path(__file__).parent / "reference" / "mmrm"
FORMULA = "FEV1 ~ RACE + SEX + ARMCD * AVISIT"
NLME = json.loads((HERE / "nlme_reference.json").read_text())


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(HERE / "fev_data.csv")


@pytest.fixture(scope="module")
def fev_sas(fev) -> pd.DataFrame:
    """fev_data with SAS's reference cell: SAS takes the last level (Male) as reference, we
    take the first, so SEX is made an ordered Categorical with Male first."""
    out = fev.copy()
    out["SEX"] = pd.Categorical(out["SEX"], categories=["Male", "Female"], ordered=True)
    return out


@pytest.fixture(scope="module")
def us_fit(fev_sas) -> MMRMResult:
    return fit_mmrm(fev_sas, FORMULA, subject="USUBJID", visit="AVISIT")


def close(actual, expected, rel, scale=None):
    """|actual - expected| <= rel x max(|expected|, scale) elementwise."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    bound = np.abs(expected) if scale is None else np.maximum(np.abs(expected), scale)
    return np.all(np.abs(actual - expected) <= rel * bound)


# ---------------------------------------------------------------------------------------
# Item 1 and 4: unstructured covariance, REML, against SAS PROC MIXED
# ---------------------------------------------------------------------------------------

# SAS PROC MIXED via REFERENCES.md: FEV1 ~ RACE + SEX + ARMCD*AVISIT, us, REML.
SAS_US_FIXED = {
    "Intercept": (30.7774, 0.8865),
    "ARMCD[T.TRT]": (3.7745, 1.0741),
    "AVISIT[T.VIS2]": (4.8396, 0.8016),
    "AVISIT[T.VIS3]": (10.3422, 0.8227),
    "AVISIT[T.VIS4]": (15.0537, 1.3129),
    "ARMCD[T.TRT]:AVISIT[T.VIS2]": (-0.04231, 1.1292),
    "ARMCD[T.TRT]:AVISIT[T.VIS3]": (-0.6939, 1.1876),
    "ARMCD[T.TRT]:AVISIT[T.VIS4]": (0.6240, 1.8510),
    "RACE[T.Black or African American]": (1.5305, 0.6244),
    "RACE[T.White]": (5.6436, 0.6656),
    "SEX[T.Female]": (0.3262, 0.5319),
}


def test_us_reml_fixed_effects_match_sas_proc_mixed(us_fit):
    # SAS PROC MIXED via REFERENCES.md. Relative 1e-3 of max(|estimate|, SE): the one
    # estimate near zero, VIS2:TRT = -0.04231 (SE 1.13), differs by 2e-4 (0.0002 SE), a
    # difference of stopping rules (R nlme gives -0.04206; our optimum is exact to 1e-10 in
    # -2 log L, see test_us_reml_covariance_and_loglik_match_nlme).
    names = list(SAS_US_FIXED)
    expected = np.array([SAS_US_FIXED[n] for n in names])
    assert close(us_fit.params[names], expected[:, 0], 1e-3, scale=expected[:, 1])
    assert close(us_fit.bse[names], expected[:, 1], 1e-3)


def test_us_reml_loglik_and_variances_match_sas_proc_mixed(us_fit):
    # SAS PROC MIXED via REFERENCES.md: -2 res log likelihood 3386.45; R(i,i) by visit.
    assert abs(-2 * us_fit.loglike - 3386.45) < 0.01
    variances = np.diag(us_fit.covariance)
    assert close(variances, [40.5509, 26.5692, 14.8970, 95.5528], 1e-3)
    assert list(us_fit.covariance.index) == ["VIS1", "VIS2", "VIS3", "VIS4"]


def test_us_lsmeans_match_sas_proc_mixed(us_fit):
    # SAS PROC MIXED LSMEANS ARMCD*AVISIT via REFERENCES.md (estimate, SE, Satterthwaite df).
    expected = pd.DataFrame(
        [
            ("PBO", "VIS1", 33.3318, 0.7554, 148),
            ("TRT", "VIS1", 37.1063, 0.7626, 143),
            ("PBO", "VIS2", 38.1715, 0.6117, 147),
            ("TRT", "VIS2", 41.9037, 0.6023, 144),
            ("PBO", "VIS3", 43.6740, 0.4617, 130),
            ("TRT", "VIS3", 46.7546, 0.5086, 130),
            ("PBO", "VIS4", 48.3855, 1.1886, 134),
            ("TRT", "VIS4", 52.7841, 1.1877, 133),
        ],
        columns=["ARMCD", "AVISIT", "estimate", "se", "df"],
    )
    got = us_fit.lsmeans("ARMCD", by="AVISIT")
    assert list(got.columns) == ["ARMCD", "AVISIT", "estimate", "se", "df", "ci_low", "ci_high"]
    assert got[["ARMCD", "AVISIT"]].astype(str).equals(expected[["ARMCD", "AVISIT"]])
    assert close(got["estimate"], expected["estimate"], 1e-3)
    assert close(got["se"], expected["se"], 1e-3)
    assert np.all(np.abs(got["df"] - expected["df"]) <= 1)


def test_us_treatment_differences_match_sas_proc_mixed(us_fit):
    # SAS PROC MIXED LSMEANS / DIFF, TRT - PBO by visit, via REFERENCES.md
    # (estimate, SE, df, 95% CI).
    expected = np.array(
        [
            (3.7745, 1.0741, 146, 1.6517, 5.8974),
            (3.7322, 0.8588, 145, 2.0348, 5.4296),
            (3.0806, 0.6896, 131, 1.7164, 4.4448),
            (4.3985, 1.6805, 133, 1.0746, 7.7225),
        ]
    )
    got = us_fit.pairwise("ARMCD", by="AVISIT")
    assert list(got.columns) == [
        "AVISIT", "contrast", "estimate", "se", "df", "t", "p", "ci_low", "ci_high",
    ]  # fmt: skip
    assert list(got["contrast"]) == ["TRT - PBO"] * 4
    assert list(got["AVISIT"].astype(str)) == ["VIS1", "VIS2", "VIS3", "VIS4"]
    assert close(got["estimate"], expected[:, 0], 1e-3)
    assert close(got["se"], expected[:, 1], 1e-3)
    assert np.all(np.abs(got["df"] - expected[:, 2]) <= 1)
    assert close(got[["ci_low", "ci_high"]], expected[:, 3:], 1e-3)


def test_conf_int_of_treatment_main_effect_is_the_sas_visit1_difference(us_fit):
    # SAS PROC MIXED via REFERENCES.md: with PBO/VIS1 as reference the TRT coefficient is
    # the TRT - PBO difference at VIS1, 95% CI [1.6517, 5.8974], df 146.
    ci = us_fit.conf_int().loc["ARMCD[T.TRT]"]
    assert close(ci, [1.6517, 5.8974], 1e-3)
    assert abs(us_fit.df["ARMCD[T.TRT]"] - 146) <= 1
    assert us_fit.tvalues["ARMCD[T.TRT]"] == pytest.approx(3.7745 / 1.0741, rel=1e-3)
    assert 0 < us_fit.pvalues["ARMCD[T.TRT]"] < 0.001


@pytest.mark.parametrize(
    ("reml", "expected"),
    [
        # SAS PROC MIXED via REFERENCES.md, FEV1 ~ ARMCD + SEX, us, REML.
        (True, [(41.0762, 0.5504), (3.8265, 0.6421), (-0.1404, 0.6434)]),
        # SAS PROC MIXED via REFERENCES.md, FEV1 ~ ARMCD + SEX, us, ML.
        (False, [(41.0840, 0.5452), (3.8276, 0.6362), (-0.1382, 0.6374)]),
    ],
    ids=["reml", "ml"],
)
def test_smaller_model_matches_sas_proc_mixed_under_reml_and_ml(fev_sas, reml, expected):
    fit = fit_mmrm(fev_sas, "FEV1 ~ ARMCD + SEX", subject="USUBJID", visit="AVISIT", reml=reml)
    expected = np.array(expected)
    names = ["Intercept", "ARMCD[T.TRT]", "SEX[T.Female]"]
    assert close(fit.params[names], expected[:, 0], 1e-3)
    assert close(fit.bse[names], expected[:, 1], 1e-3)
    assert fit.reml is reml


# ---------------------------------------------------------------------------------------
# Item 2 and 4: the other covariance structures against R nlme::gls
# ---------------------------------------------------------------------------------------


def _r_name(column: str) -> str:
    """formulaic's 'ARMCD[T.TRT]:AVISIT[T.VIS2]' as R's 'ARMCDTRT:AVISITVIS2'."""
    return "(Intercept)" if column == "Intercept" else column.replace("[T.", "").replace("]", "")


@pytest.mark.parametrize("covariance", ["cs", "csh", "ar1", "ar1h", "us"])
def test_structures_match_r_nlme_gls(fev, covariance):
    # R nlme 3.1-162 gls (cs: corCompSymm; csh: + varIdent(~1|AVISIT); ar1:
    # corAR1(~VISITN|USUBJID); ar1h: + varIdent; us: corSymm + varIdent) and emmeans 1.8.4.1,
    # tests/reference/mmrm/nlme_reference.R -> nlme_reference.json. Both use Female as the
    # SEX reference here. nlme stops at a looser tolerance than we do, hence 1e-3 (of
    # max(|estimate|, SE) for the coefficients); our log-likelihood is never lower.
    ref = NLME["models"][covariance]
    fit = fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", covariance=covariance)
    coefficients = pd.DataFrame(ref["coefficients"]).set_index("term")
    assert [_r_name(c) for c in fit.params.index] == list(coefficients.index)
    se = coefficients["se"].to_numpy()
    assert close(fit.params, coefficients["estimate"], 1e-3, scale=se)
    assert close(fit.bse, se, 1e-3)
    assert fit.loglike == pytest.approx(ref["loglik_nlme"], abs=1e-3)
    assert fit.loglike >= ref["loglik_nlme"] - 1e-6
    assert close(fit.covariance, np.array(ref["covariance"]), 1e-3)
    lsmeans = fit.lsmeans("ARMCD", by="AVISIT")
    r_lsmeans = pd.DataFrame(ref["lsmeans"])
    assert (lsmeans["ARMCD"].astype(str) == r_lsmeans["ARMCD"]).all()
    assert close(lsmeans["estimate"], r_lsmeans["estimate"], 1e-3)
    assert close(lsmeans["se"], r_lsmeans["se"], 1e-3)
    differences = fit.pairwise("ARMCD", by="AVISIT")
    r_differences = pd.DataFrame(ref["pairwise"])
    assert list(differences["contrast"]) == list(r_differences["contrast"])
    assert close(differences["estimate"], r_differences["estimate"], 1e-3)
    assert close(differences["se"], r_differences["se"], 1e-3)


def test_structured_covariances_have_their_shape(fev):
    # Definitions (SAS PROC MIXED TYPE=CS/CSH/AR(1)/ARH(1), R mmrm cs/csh/ar1/ar1h).
    fits = {
        c: fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", covariance=c).covariance
        for c in ["cs", "csh", "ar1", "ar1h"]
    }
    sigma = fits["cs"].to_numpy()
    assert np.allclose(np.diag(sigma), sigma[0, 0])
    assert np.allclose(sigma[~np.eye(4, dtype=bool)], sigma[0, 1])
    sd = np.sqrt(np.diag(fits["csh"]))
    corr = fits["csh"].to_numpy() / np.outer(sd, sd)
    assert np.allclose(corr[~np.eye(4, dtype=bool)], corr[0, 1])
    for name in ["ar1", "ar1h"]:
        sigma = fits[name].to_numpy()
        sd = np.sqrt(np.diag(sigma))
        corr = sigma / np.outer(sd, sd)
        rho = corr[0, 1]
        lag = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
        assert np.allclose(corr, rho**lag)


# ---------------------------------------------------------------------------------------
# Item 3: the result object
# ---------------------------------------------------------------------------------------


def test_missing_rows_are_counted_and_reported(us_fit):
    # fev_data: 800 rows, 263 with FEV1 missing (REFERENCES.md: 537 non-missing).
    assert (us_fit.n_obs, us_fit.n_dropped, us_fit.n_subjects) == (537, 263, 197)
    assert us_fit.missing_by_column == {"FEV1": 263}
    text = str(us_fit.summary())
    assert "263 row(s) had a missing value" in text
    assert "3386.4499" in text and "Satterthwaite" in text
    assert repr(us_fit.summary()) == text


def test_information_criteria_follow_sas_definitions(us_fit, fev_sas):
    # SAS PROC MIXED "Fit Statistics" (also R mmrm): REML counts the 10 covariance
    # parameters of a 4-visit us; BIC uses the number of subjects (197). ML adds the 3
    # fixed effects of FEV1 ~ ARMCD + SEX.
    m2 = -2 * us_fit.loglike
    assert us_fit.aic == pytest.approx(m2 + 20)
    assert us_fit.bic == pytest.approx(m2 + 10 * np.log(197))
    ml = fit_mmrm(fev_sas, "FEV1 ~ ARMCD + SEX", subject="USUBJID", visit="AVISIT", reml=False)
    assert ml.aic == pytest.approx(-2 * ml.loglike + 2 * 13)


def test_lsmeans_differences_equal_pairwise_estimates(us_fit):
    # Property: a pairwise contrast is the difference of the two LS means (same L rows).
    lsmeans = us_fit.lsmeans("ARMCD", by="AVISIT").set_index(["AVISIT", "ARMCD"])["estimate"]
    differences = us_fit.pairwise("ARMCD", by="AVISIT").set_index("AVISIT")["estimate"]
    for visit, difference in differences.items():
        assert difference == pytest.approx(lsmeans[visit, "TRT"] - lsmeans[visit, "PBO"])


def test_lsmeans_average_other_factors_equally(us_fit):
    # emmeans/SAS LSMEANS definition: the ARMCD mean over visits is the plain average of
    # the four visit means (equal weights, whatever the number of observations per cell).
    by_visit = us_fit.lsmeans("ARMCD", by="AVISIT")
    overall = us_fit.lsmeans("ARMCD")
    assert list(overall.columns) == ["ARMCD", "estimate", "se", "df", "ci_low", "ci_high"]
    expected = by_visit.groupby("ARMCD", observed=True)["estimate"].mean()
    assert np.allclose(overall.set_index("ARMCD")["estimate"], expected)


def test_pairwise_reference_level_and_sign(us_fit):
    flipped = us_fit.pairwise("ARMCD", by="AVISIT", reference="TRT")
    usual = us_fit.pairwise("ARMCD", by="AVISIT")
    assert list(flipped["contrast"]) == ["PBO - TRT"] * 4
    assert np.allclose(flipped["estimate"], -usual["estimate"])
    assert np.allclose(flipped["df"], usual["df"])
    with pytest.raises(ValueError, match="`reference` must be one of"):
        us_fit.pairwise("ARMCD", reference="placebo")
    race = us_fit.pairwise("RACE")
    assert list(race["contrast"]) == [
        "Black or African American - Asian",
        "White - Asian",
    ]


def test_effect_size_is_difference_over_visit_residual_sd(us_fit):
    # Definition (issue 5): difference / sqrt(Sigma[v, v]), CI = contrast CI / same SD.
    es = us_fit.effect_size("ARMCD", by="AVISIT")
    pw = us_fit.pairwise("ARMCD", by="AVISIT")
    sd = np.sqrt(np.diag(us_fit.covariance))
    assert list(es.columns) == [
        "AVISIT", "contrast", "difference", "sd", "estimate", "ci_low", "ci_high",
    ]  # fmt: skip
    assert np.allclose(es["sd"], sd)
    assert np.allclose(es["estimate"], pw["estimate"] / sd)
    assert np.allclose(es[["ci_low", "ci_high"]], pw[["ci_low", "ci_high"]] / sd[:, None])
    # SAS PROC MIXED via REFERENCES.md: VIS1 3.7745 / sqrt(40.5509).
    assert es["estimate"].iloc[0] == pytest.approx(3.7745 / np.sqrt(40.5509), rel=1e-3)
    with pytest.raises(ValueError, match="pass a `by` that includes the visit column 'AVISIT'"):
        us_fit.effect_size("ARMCD")


def test_factor_coding_first_sorted_level_unless_ordered(fev, fev_sas, us_fit):
    # Contract (DESIGN.md): strings -> first sorted level is the reference; an ordered
    # Categorical keeps its order. LS means do not depend on the coding.
    plain = fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT")
    assert "SEX[T.Male]" in plain.params.index and "SEX[T.Female]" in us_fit.params.index
    assert plain.params["SEX[T.Male]"] == pytest.approx(-us_fit.params["SEX[T.Female]"])
    assert np.allclose(
        plain.lsmeans("ARMCD", by="AVISIT")["estimate"],
        us_fit.lsmeans("ARMCD", by="AVISIT")["estimate"],
    )


def test_numeric_visit_column_is_a_factor(fev):
    # R mmrm also requires the visit to be a factor; VISITN (1..4) gives the AVISIT fit.
    by_label = fit_mmrm(fev, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    by_number = fit_mmrm(fev, "FEV1 ~ ARMCD * VISITN", subject="USUBJID", visit="VISITN")
    assert np.allclose(by_label.params.to_numpy(), by_number.params.to_numpy())
    assert list(by_number.covariance.index) == [1, 2, 3, 4]


# ---------------------------------------------------------------------------------------
# Item 5: robustness
# ---------------------------------------------------------------------------------------


def test_results_identical_when_rows_are_shuffled(fev, us_fit, fev_sas):
    shuffled = fev_sas.sample(frac=1.0, random_state=20240601)
    again = fit_mmrm(shuffled, FORMULA, subject="USUBJID", visit="AVISIT")
    for attribute in ["params", "bse", "df", "covariance"]:
        assert np.allclose(getattr(again, attribute), getattr(us_fit, attribute), rtol=0, atol=1e-8)
    assert again.loglike == pytest.approx(us_fit.loglike, abs=1e-8)
    assert np.allclose(
        again.lsmeans("ARMCD", by="AVISIT")[["estimate", "se", "df"]],
        us_fit.lsmeans("ARMCD", by="AVISIT")[["estimate", "se", "df"]],
        rtol=0,
        atol=1e-8,
    )


def test_replicated_subjects_under_ml_keep_the_estimates(fev):
    # Property of ML: copying every subject r times multiplies the log-likelihood by r, so
    # the estimates stay and the SEs shrink by sqrt(r). With r = 3 the larger missingness
    # patterns are held as cross-products and the smaller as rows, so both paths are used.
    copies = [fev.assign(USUBJID=fev["USUBJID"] + f"-{i}") for i in range(3)]
    one = fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", reml=False)
    three = fit_mmrm(pd.concat(copies), FORMULA, subject="USUBJID", visit="AVISIT", reml=False)
    assert np.allclose(three.params, one.params, rtol=0, atol=1e-6)
    assert np.allclose(three.covariance, one.covariance, rtol=1e-5)
    assert np.allclose(three.bse * np.sqrt(3), one.bse, rtol=1e-5)
    assert three.loglike == pytest.approx(3 * one.loglike, rel=1e-9)


@settings(max_examples=8)
@given(shift=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False))
def test_adding_a_constant_to_the_response_moves_only_the_intercept(fev, shift):
    base = fit_mmrm(
        fev, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT", covariance="cs"
    )
    moved = fit_mmrm(
        fev.assign(FEV1=fev["FEV1"] + shift),
        "FEV1 ~ ARMCD * AVISIT",
        subject="USUBJID",
        visit="AVISIT",
        covariance="cs",
    )
    assert moved.params["Intercept"] == pytest.approx(base.params["Intercept"] + shift, abs=1e-5)
    others = base.params.index != "Intercept"
    assert np.allclose(moved.params[others], base.params[others], rtol=0, atol=1e-5)
    assert np.allclose(moved.bse, base.bse, rtol=1e-5)
    assert np.allclose(moved.covariance, base.covariance, rtol=1e-5)


def test_visit_without_observations_is_an_error(fev):
    extra = fev[fev["AVISIT"] == "VIS4"].assign(AVISIT="VIS5", FEV1=np.nan)
    with pytest.raises(MMRMFitError, match=r"`visit` level\(s\) \['VIS5'\] have no observations"):
        fit_mmrm(pd.concat([fev, extra]), FORMULA, subject="USUBJID", visit="AVISIT")


def test_fewer_subjects_than_covariance_parameters_is_an_error(fev):
    three = fev[fev["USUBJID"].isin(["PT2", "PT3", "PT4"])]
    with pytest.raises(
        MMRMFitError, match="has 10 parameters but there are only 3 subjects"
    ) as info:
        fit_mmrm(three, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT")
    assert isinstance(info.value, ValueError)


def test_non_convergence_is_an_error_naming_the_optimizer(fev):
    with pytest.raises(MMRMFitError, match=r"did not converge.*BFGS.*1 iterations") as info:
        fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", max_iter=1)
    assert "fewer parameters" in str(info.value)


def test_duplicate_subject_visit_rows_are_an_error(fev):
    with pytest.raises(MMRMFitError, match=r"1 row\(s\) repeat a \(`USUBJID`, `AVISIT`\)"):
        fit_mmrm(pd.concat([fev, fev.iloc[[1]]]), FORMULA, subject="USUBJID", visit="AVISIT")


def test_aliased_fixed_effect_is_dropped_and_reported_as_sas_does(fev):
    # SAS PROC MIXED: a column that is a linear combination of earlier columns is set
    # aside ("0" with a missing SE); the other estimates are those of the model without it.
    fit = fit_mmrm(
        fev.assign(ARM2=fev["ARMCD"]), "FEV1 ~ ARMCD + ARM2", subject="USUBJID", visit="AVISIT"
    )
    plain = fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT")
    assert fit.not_estimable == ["ARM2[T.TRT]"]
    assert list(fit.params.index) == ["Intercept", "ARMCD[T.TRT]", "ARM2[T.TRT]"]
    for attr in ("params", "bse", "df", "pvalues"):
        assert np.isnan(getattr(fit, attr)["ARM2[T.TRT]"])
        pd.testing.assert_series_equal(
            getattr(fit, attr).iloc[:2], getattr(plain, attr), rtol=1e-6, check_names=False
        )
    assert fit.cov_params.loc["ARM2[T.TRT]"].isna().all()
    assert "ARM2[T.TRT]" in fit.summary() and "not estimable" in fit.summary()
    # An LS mean that averages over ARM2's levels needs the cell ARMCD = TRT, ARM2 = PBO,
    # which has no data: not estimable (SAS prints "Non-est").
    assert fit.lsmeans("ARMCD")["estimate"].isna().all()
    # A numeric covariate twice (BL2 = 2 x FEV1_BL): LS means at the covariate means are
    # estimable and equal those of the model with it once.
    twice = fit_mmrm(
        fev.assign(BL2=2 * fev["FEV1_BL"]),
        "FEV1 ~ ARMCD + FEV1_BL + BL2",
        subject="USUBJID",
        visit="AVISIT",
    )
    once = fit_mmrm(fev, "FEV1 ~ ARMCD + FEV1_BL", subject="USUBJID", visit="AVISIT")
    assert twice.not_estimable == ["BL2"]
    pd.testing.assert_frame_equal(twice.lsmeans("ARMCD"), once.lsmeans("ARMCD"), rtol=1e-6)


def test_empty_treatment_by_visit_cell_marks_only_the_means_that_need_it(fev):
    # No TRT patient at VIS4: the TRT x VIS4 interaction is not estimable. LS means that
    # do not involve that cell equal those of the cell-means model fitted without it
    # (the same column space); those that do are NaN with a note, as SAS's "Non-est".
    data = fev[~((fev.ARMCD == "TRT") & (fev.AVISIT == "VIS4"))].dropna(subset=["FEV1"])
    fit = fit_mmrm(data, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    assert fit.not_estimable == ["ARMCD[T.TRT]:AVISIT[T.VIS4]"]
    cells = data.assign(cell=data.ARMCD + "_" + data.AVISIT)
    reference = fit_mmrm(cells, "FEV1 ~ 0 + cell", subject="USUBJID", visit="AVISIT")
    lsm = fit.lsmeans("ARMCD", by="AVISIT")
    assert list(lsm.columns) == [
        "ARMCD",
        "AVISIT",
        "estimate",
        "se",
        "df",
        "ci_low",
        "ci_high",
        "note",
    ]
    for row in lsm.itertuples():
        name = f"cell[{row.ARMCD}_{row.AVISIT}]"
        if row.ARMCD == "TRT" and row.AVISIT == "VIS4":
            assert np.isnan(row.estimate) and np.isnan(row.se) and "not estimable" in row.note
        else:
            assert row.estimate == pytest.approx(reference.params[name], rel=1e-6)
            assert row.se == pytest.approx(reference.bse[name], rel=1e-5)
            assert pd.isna(row.note)
    # The marginal TRT mean averages over VIS4, so it is not estimable either.
    marginal = fit.lsmeans("ARMCD").set_index("ARMCD")
    assert np.isnan(marginal.loc["TRT", "estimate"]) and not np.isnan(
        marginal.loc["PBO", "estimate"]
    )
    diff = fit.pairwise("ARMCD", by="AVISIT").set_index("AVISIT")
    assert np.isnan(diff.loc["VIS4", "estimate"]) and diff["estimate"].notna().sum() == 3


def test_visits_never_seen_together_are_an_error_for_us(fev):
    # Each subject keeps either VIS1 or VIS2, never both: their covariance has no data.
    odd = fev["USUBJID"].str[2:].astype(int) % 2 == 1
    keep = ~((odd & (fev["AVISIT"] == "VIS1")) | (~odd & (fev["AVISIT"] == "VIS2")))
    with pytest.raises(MMRMFitError, match="'VIS1' and 'VIS2' are never observed"):
        fit_mmrm(fev[keep], "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    # A structured covariance can still be fitted.
    fit_mmrm(
        fev[keep], "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT", covariance="ar1h"
    )


def test_argument_errors_name_the_choices(fev, us_fit):
    with pytest.raises(ValueError, match=r"`covariance` must be one of \['us', 'cs'"):
        fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", covariance="toep")
    with pytest.raises(ValueError, match="not in `data`"):
        fit_mmrm(fev, FORMULA, subject="patient", visit="AVISIT")
    with pytest.raises(ValueError, match="`specs` must be one of"):
        us_fit.lsmeans("FEV1_BL")
    with pytest.raises(ValueError, match="has no response"):
        fit_mmrm(fev, "~ ARMCD", subject="USUBJID", visit="AVISIT")


def test_polars_input_is_collected(fev):
    # DESIGN.md: models that need patient-level rows collect other frame kinds.
    polars = pytest.importorskip("polars")
    expected = fit_mmrm(fev, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    fit = fit_mmrm(
        polars.from_pandas(fev), "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT"
    )
    assert np.allclose(fit.params, expected.params, rtol=0, atol=1e-8)
    with pytest.raises(TypeError, match="`data` must be a data frame"):
        fit_mmrm([1, 2], FORMULA, subject="USUBJID", visit="AVISIT")


# ---------------------------------------------------------------------------------------
# Issue 13: Kenward-Roger, visit order, BLAS threads
# ---------------------------------------------------------------------------------------

# SAS PROC MIXED, REML, DDFM=KR, `FEV1 ~ ARMCD` on fev_data, as listed in the R mmrm
# package's design/KR folder (kr_us.txt, kr_cs.txt, kr_ar1.txt, kr_csh.txt: SAS listings,
# Dec 2022). Solution for fixed effects (estimate, SE, df) and LS means (SE, df).
SAS_KR = {
    "us": {
        "Intercept": (41.0058, 0.4547, 162),
        "ARMCD[T.TRT]": (3.8197, 0.6612, 161),
        "lsmean_TRT": (44.8255, 0.4801, 159),
    },
    "cs": {
        "Intercept": (40.2495, 0.5560, 187),
        "ARMCD[T.TRT]": (4.1966, 0.7965, 177),
        "lsmean_TRT": (44.4461, 0.5703, 168),
    },
    "ar1": {
        "Intercept": (40.2881, 0.6651, 194),
        "ARMCD[T.TRT]": (4.2257, 0.9587, 188),
        "lsmean_TRT": (44.5139, 0.6904, 183),
    },
    "csh": {  # kr_csh.txt
        "Intercept": (40.2471, 0.4656, 191),
        "ARMCD[T.TRT]": (3.7709, 0.6741, 191),
        "lsmean_TRT": (44.0180, 0.4875, 189),
    },
}


@pytest.mark.parametrize("covariance", list(SAS_KR))
def test_kenward_roger_matches_sas_ddfm_kr(fev, covariance):
    fit = fit_mmrm(
        fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", covariance=covariance, ddf="kr"
    )
    lsm = fit.lsmeans("ARMCD").set_index("ARMCD").loc["TRT"]
    got = {
        "Intercept": (fit.params["Intercept"], fit.bse["Intercept"], fit.df["Intercept"]),
        "ARMCD[T.TRT]": (fit.params["ARMCD[T.TRT]"], fit.bse["ARMCD[T.TRT]"], fit.df.iloc[1]),
        "lsmean_TRT": (lsm["estimate"], lsm["se"], lsm["df"]),
    }
    for name, (estimate, se, df) in SAS_KR[covariance].items():
        # 1.5e-3 absolute on estimates and 1.5e-4 on SEs: for `us` and `csh` the
        # likelihood is flat at the optimum (for `us` our -2 REML log L is 7e-6 below
        # SAS's 3667.96276), which moves the third or fourth decimal of an estimate and
        # the fourth of an SE; cs and ar1 agree to the printed digits.
        assert got[name][0] == pytest.approx(estimate, abs=1.5e-3), name
        assert got[name][1] == pytest.approx(se, abs=1.5e-4), name
        # df: SAS prints integers; within 1 (us: 158.48 here for SAS's 159, the flat
        # optimum again; R mmrm gets 160.73 for SAS's 161 where we get 160.69).
        assert abs(got[name][2] - df) <= 1, name
    # The R mmrm package's own checks against SAS (tests/testthat/test-kenwardroger.R):
    # TRT SE and df for ar1 0.95865439662225, 188.46934887972; cs 0.7965 (SAS),
    # 177.038485931223.
    if covariance == "ar1":
        assert fit.bse.iloc[1] == pytest.approx(0.95865439662225, rel=1e-4)
        assert fit.df.iloc[1] == pytest.approx(188.46934887972, rel=1e-4)
    if covariance == "cs":
        assert fit.df.iloc[1] == pytest.approx(177.038485931223, rel=1e-4)


def test_kenward_roger_inflates_the_se_and_keeps_estimates(fev):
    sat = fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT")
    kr = fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", ddf="kr")
    pd.testing.assert_series_equal(kr.params, sat.params)
    assert (kr.bse > sat.bse).all()
    # SAS: model-based SE of TRT 0.6389 (DDFM=SATTERTH) vs 0.6612 (DDFM=KR).
    assert sat.bse.iloc[1] == pytest.approx(0.6389, abs=1.5e-4)
    # The per-call switch gives the same as the fit-level one.
    pd.testing.assert_frame_equal(
        sat.pairwise("ARMCD", ddf="kr"), kr.pairwise("ARMCD"), check_exact=False
    )
    pd.testing.assert_frame_equal(sat.conf_int(ddf="kr"), kr.conf_int())
    assert "SE and df: Kenward-Roger" in kr.summary()


@pytest.mark.parametrize("covariance", ["us", "cs"])
def test_kenward_roger_reproduces_exact_anova_on_a_balanced_design(covariance):
    # Balanced, complete data: the arm difference at a visit is a two-sample t with
    # n - 2 df and the model-based SE is exact, so KR adds nothing (Kenward & Roger 1997,
    # sec. 4); under compound symmetry a within-subject contrast has the split-plot
    # ANOVA's (n - 2)(m - 1) df.
    rng = np.random.default_rng(11)
    n, visits = 40, ["week1", "week2", "week4"]
    data = pd.DataFrame(
        {
            "patient": np.repeat(np.arange(n), 3),
            "visit": np.tile(visits, n),
            "arm": np.repeat(np.where(np.arange(n) % 2 == 0, "ketamine", "control"), 3),
        }
    )
    data["change"] = np.repeat(rng.normal(0, 3, n), 3) + rng.normal(0, 2, 3 * n)
    fit = fit_mmrm(
        data, "change ~ arm * visit", subject="patient", visit="visit", covariance=covariance
    )
    between_sat = fit.pairwise("arm", by="visit")
    between_kr = fit.pairwise("arm", by="visit", ddf="kr")
    assert between_kr["se"].to_numpy() == pytest.approx(between_sat["se"].to_numpy(), rel=1e-6)
    if covariance == "us":
        assert between_kr["df"].to_numpy() == pytest.approx(n - 2, abs=1e-4)
    within = fit.pairwise("visit", by="arm", ddf="kr")
    if covariance == "cs":
        assert within["df"].to_numpy() == pytest.approx((n - 2) * 2, abs=1e-4)
    # For a two-sample comparison at one visit, the df and SE of the classical t test.
    at = data[data.visit == "week4"]
    groups = [at.loc[at.arm == a, "change"] for a in ("control", "ketamine")]
    pooled = ((len(groups[0]) - 1) * groups[0].var() + (len(groups[1]) - 1) * groups[1].var()) / (
        n - 2
    )
    if covariance == "us":
        row = between_kr[between_kr.visit == "week4"].iloc[0]
        assert row["se"] == pytest.approx(np.sqrt(pooled * (2 / (n / 2))), rel=1e-5)


def test_kenward_roger_needs_reml(fev):
    with pytest.raises(ValueError, match="REML fits only"):
        fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", reml=False, ddf="kr")
    with pytest.raises(ValueError, match="`ddf`"):
        fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", ddf="bw")


def test_visits_from_derive_endpoints_are_in_schedule_order():
    # Issue 13: sorted labels put week12 before week2; the endpoints' schedule order wins.
    from analysis import derive_endpoints, synthetic_cohort

    ep = derive_endpoints(synthetic_cohort(n_patients=120, seed=2), "GAD7")
    fit = fit_mmrm(ep, "change ~ baseline + visit", subject="patient_id", visit="visit")
    assert list(fit.covariance.index) == ["day1", "week1", "week2", "week4", "week8", "week12"]
    lsm = fit.lsmeans("visit")
    assert lsm["visit"].astype(str).tolist() == list(fit.covariance.index)
    # Without target_day: default schedule names keep the schedule order; other labels
    # compare their numbers as numbers.
    no_days = ep.drop(columns="target_day")
    fit2 = fit_mmrm(no_days, "change ~ visit", subject="patient_id", visit="visit")
    assert list(fit2.covariance.index) == list(fit.covariance.index)
    renamed = no_days.assign(visit=no_days["visit"].str.replace("week", "wk"))
    renamed = renamed[renamed.visit != "day1"]
    fit3 = fit_mmrm(renamed, "change ~ visit", subject="patient_id", visit="visit")
    assert list(fit3.covariance.index) == ["wk1", "wk2", "wk4", "wk8", "wk12"]


def test_fit_runs_with_one_blas_thread(fev, monkeypatch):
    # Issue 13: small matrices, so the fit runs single-threaded whatever the BLAS default.
    import threadpoolctl

    import analysis.mmrm as mmrm_module

    seen = []
    original = mmrm_module._fit

    def spy(*args, **kwargs):
        seen.extend(
            info["num_threads"]
            for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"
        )
        return original(*args, **kwargs)

    monkeypatch.setattr(mmrm_module, "_fit", spy)
    fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT")
    assert seen and set(seen) == {1}


def test_fallback_order_uses_the_first_structure_that_fits(fev):
    # Issue 10: 8 subjects cannot carry the 10 parameters of 'us' over 4 visits; a
    # pre-specified fallback order ("us", "csh", "cs") fits 'csh' and says why.
    few = fev[fev["USUBJID"].isin([f"PT{i}" for i in range(1, 9)])]
    fit = fit_mmrm(few, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", covariance=("us", "csh"))
    direct = fit_mmrm(few, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", covariance="csh")
    assert fit.covariance_structure == "csh"
    assert "'us': The 'us' covariance over 4 visits has 10 parameters" in fit.covariance_fallback
    assert fit.loglike == pytest.approx(direct.loglike)
    assert fit.covariance_fallback in fit.summary()
    assert fit_mmrm(fev, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT").covariance_fallback is None
    # None fits: one error naming every structure and its cause (2 subjects, 3 visits).
    two = few[few["USUBJID"].isin(["PT4", "PT7"])].dropna(subset=["FEV1"])
    with pytest.raises(MMRMFitError, match=r"None of the covariance structures \['us', 'csh'\]"):
        fit_mmrm(two, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", covariance=("us", "csh"))
    # Data problems are not a reason to try another structure.
    extra = fev[fev["AVISIT"] == "VIS4"].assign(AVISIT="VIS5", FEV1=np.nan)
    with pytest.raises(MMRMFitError, match=r"`visit` level\(s\) \['VIS5'\] have no observations"):
        fit_mmrm(
            pd.concat([fev, extra]),
            "FEV1 ~ 1",
            subject="USUBJID",
            visit="AVISIT",
            covariance=("us", "cs"),
        )


def test_kenward_roger_matches_r_pbkrtest_on_the_full_unbalanced_model(fev):
    # R lme4 + pbkrtest, random-intercept model = cs MMRM (positive correlation), full
    # fev_data model, 537 of 800 visits observed: tests/reference/mmrm/kr_pbkrtest.R wrote
    # kr_pbkrtest.csv. pbkrtest takes W from the expected information, SAS (and our
    # default) from the observed one; with pbkrtest's W every term agrees to 1e-8, and the
    # full KR df formula equals the Satterthwaite df for one-row contrasts.
    from analysis.mmrm import _kenward_roger, _kr_ddf

    ref = pd.read_csv(HERE / "kr_pbkrtest.csv")
    fit = fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", covariance="cs", ddf="kr")
    names = [
        "Intercept",
        "RACE[T.Black or African American]",
        "RACE[T.White]",
        "SEX[T.Male]",
        "ARMCD[T.TRT]",
        "AVISIT[T.VIS2]",
        "AVISIT[T.VIS3]",
        "AVISIT[T.VIS4]",
        "ARMCD[T.TRT]:AVISIT[T.VIS2]",
        "ARMCD[T.TRT]:AVISIT[T.VIS3]",
        "ARMCD[T.TRT]:AVISIT[T.VIS4]",
    ]
    assert list(fit.params.index) == names
    fixed = ref.iloc[:11]
    assert fit.params.to_numpy() == pytest.approx(fixed["estimate"].to_numpy(), rel=1e-6)
    phi_a, (phi, P, W) = _kenward_roger(
        fit._data, fit._problem, fit.theta, fit._h_inv, information="expected"
    )
    assert np.sqrt(np.diag(phi)) == pytest.approx(fixed["se_model"].to_numpy(), rel=1e-6)
    assert np.sqrt(np.diag(phi_a)) == pytest.approx(fixed["se_kr"].to_numpy(), rel=1e-6)
    L = np.eye(len(names))
    df = [_kr_ddf(L[i : i + 1], phi, P, W) for i in range(len(names))]
    assert df == pytest.approx(fixed["df_kr"].to_numpy(), rel=1e-6)
    # Observed information (SAS's choice): the SEs move by under 1e-4 relative, the df by
    # about 1.5%; the KR df of each coefficient is its Satterthwaite df.
    assert fit.bse.to_numpy() == pytest.approx(fixed["se_kr"].to_numpy(), rel=1e-4)
    _, (phi, P, W) = _kenward_roger(fit._data, fit._problem, fit.theta, fit._h_inv)
    df = [_kr_ddf(L[i : i + 1], phi, P, W) for i in range(len(names))]
    assert df == pytest.approx(fit.df.to_numpy(), rel=1e-8)
    # TRT - PBO by visit (the last three rows of the csv), with KR SEs.
    diff = fit.pairwise("ARMCD", by="AVISIT").set_index("AVISIT")
    for v in ("VIS2", "VIS3", "VIS4"):
        row = ref.set_index("name").loc[f"TRT-PBO@{v}"]
        assert diff.loc[v, "estimate"] == pytest.approx(row["estimate"], rel=1e-6)
        assert diff.loc[v, "se"] == pytest.approx(row["se_kr"], rel=1e-4)
