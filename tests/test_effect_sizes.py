"""Tests of analysis.effect_sizes.

Reference values: Lakens 2013 and Borenstein et al. 2009 ch. 4 (REFERENCES.md), and R
output written by tests/reference/effect_sizes/effectsize_reference.R into
tests/reference/effect_sizes/effectsize_values.csv (tests do not need R).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from analysis.effect_sizes import (
    INDEPENDENT_MEASURES,
    PAIRED_MEASURES,
    EffectSize,
    effect_size,
    effect_size_from_stats,
    effect_size_table,
)

REF = Path(__file__).parent / "reference" / "effect_sizes"
MOVIE1 = [9, 7, 8, 9, 8, 9, 9, 10, 9, 9]  # Lakens 2013, movie 1
MOVIE2 = [9, 6, 7, 8, 7, 9, 8, 8, 8, 7]  # Lakens 2013, movie 2


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = pd.read_csv(REF / "datasets.csv").sort_values(["dataset", "sample", "position"])
    return {
        name: tuple(d.loc[d["sample"] == s, "value"].to_numpy(dtype=float) for s in ("x", "y"))
        for name, d in data.groupby("dataset")
    }


DATASETS = _datasets()
R_VALUES = pd.read_csv(REF / "effectsize_values.csv")
# Tolerances per source: effectsize solves the noncentral t with optim() (good to ~1e-6
# on these data); the uniroot() and written-out formula values are exact to print
# precision (12 significant digits).
R_TOL = {"uniroot": 1e-8, "formula": 1e-9}


def test_effect_size_is_a_frozen_dataclass_with_the_design_fields():
    es = effect_size(MOVIE1, MOVIE2)
    assert isinstance(es, EffectSize)
    assert list(es.__dataclass_fields__)[:8] == [
        "measure",
        "estimate",
        "ci_low",
        "ci_high",
        "ci_level",
        "n1",
        "n2",
        "ci_method",
    ]
    with pytest.raises(AttributeError):
        es.estimate = 0  # type: ignore[misc]


def test_lakens_2013_movies_as_independent_groups():
    # Lakens 2013, Front Psychol 4:863: t(18) = 2.52, d_s = 1.13, g_s = 1.08 (2 dp).
    d = effect_size(MOVIE1, MOVIE2, measure="cohen_d")
    g = effect_size(MOVIE1, MOVIE2, measure="hedges_g")
    assert round(d.estimate, 2) == 1.13
    assert round(g.estimate, 2) == 1.08
    assert round(d.estimate / math.sqrt(1 / 10 + 1 / 10), 2) == 2.52  # t = d / sqrt(1/n1+1/n2)
    assert (d.n1, d.n2, d.ci_method) == (10, 10, "noncentral t")


def test_lakens_2013_movies_paired_d_z():
    # Lakens 2013: paired t(9) = 4.74, d_z = 1.50.
    dz = effect_size(MOVIE1, MOVIE2, measure="d_z")
    assert round(dz.estimate, 2) == 1.50
    assert round(dz.estimate * math.sqrt(10), 2) == 4.74
    assert (dz.n1, dz.n2, dz.n_dropped) == (10, 10, 0)


def test_borenstein_2009_chapter_4():
    # Borenstein et al. 2009 ch. 4: means 103/100, SD 5.5/4.5, n 50/50 -> d = 0.5970,
    # V(d) = 0.0418, g = 0.5924 (4 dp).
    d = effect_size_from_stats(103, 5.5, 50, 100, 4.5, 50, measure="cohen_d")
    g = effect_size_from_stats(103, 5.5, 50, 100, 4.5, 50, measure="hedges_g")
    assert d.estimate == pytest.approx(0.5970, abs=5e-5)
    assert g.estimate == pytest.approx(0.5924, abs=5e-5)
    # With n = 100 the noncentral-t interval is close to Borenstein's d +- 1.96 sqrt(V(d)).
    assert (d.ci_high - d.ci_low) / 2 == pytest.approx(1.959964 * math.sqrt(0.0418), abs=0.002)


@pytest.mark.parametrize(
    "row", [r for _, r in R_VALUES.iterrows()], ids=lambda r: f"{r.dataset}-{r.measure}-{r.source}"
)
def test_matches_r_reference(row):
    # Source: the `source` column (R effectsize 0.8.3, uniroot or base-R formula), see
    # tests/reference/effect_sizes/effectsize_reference.R.
    x, y = DATASETS[row.dataset]
    es = effect_size(x, y, measure=row.measure)
    tol = R_TOL.get(row.source, 1e-5)
    assert es.estimate == pytest.approx(row.estimate, abs=1e-9)
    assert es.ci_low == pytest.approx(row.ci_low, abs=tol)
    assert es.ci_high == pytest.approx(row.ci_high, abs=tol)
    expected_method = (
        "normal approximation" if row.measure in ("d_av", "d_rm", "d_b") else "noncentral t"
    )
    assert es.ci_method == expected_method
    assert es.ci_level == 0.95


def test_hedges_g_uses_the_exact_j():
    # REFERENCES.md: J = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)); df = 18 here.
    d = effect_size(MOVIE1, MOVIE2, measure="cohen_d")
    g = effect_size(MOVIE1, MOVIE2, measure="hedges_g")
    exact = math.gamma(9) / (math.sqrt(9) * math.gamma(8.5))
    approx = 1 - 3 / (4 * 18 - 1)
    assert g.estimate / d.estimate == pytest.approx(exact, rel=1e-12)
    assert abs(g.estimate / d.estimate - approx) > 1e-5
    assert g.ci_low / d.ci_low == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "measure"),
    [
        (name, measure)
        for name, (x, y) in sorted(DATASETS.items())
        for measure in INDEPENDENT_MEASURES + (PAIRED_MEASURES if len(x) == len(y) else ())
    ],
)
def test_summary_statistics_and_raw_data_agree(name, measure):
    x, y = DATASETS[name]
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) == len(y) else None
    raw = effect_size(x, y, measure=measure)
    summ = effect_size_from_stats(
        x.mean(), x.std(ddof=1), len(x), y.mean(), y.std(ddof=1), len(y), measure=measure, r=r
    )
    for field in ("estimate", "ci_low", "ci_high"):
        assert getattr(summ, field) == pytest.approx(getattr(raw, field), rel=1e-9, abs=1e-12)
    assert (summ.n1, summ.n2, summ.ci_method) == (raw.n1, raw.n2, raw.ci_method)


def test_d_rm_equals_d_z_times_sqrt_2_1_minus_r():
    # Lakens 2013 eq. 9: d_rm = d_z sqrt(2 (1 - r)).
    r = np.corrcoef(MOVIE1, MOVIE2)[0, 1]
    dz = effect_size(MOVIE1, MOVIE2, measure="d_z").estimate
    drm = effect_size(MOVIE1, MOVIE2, measure="d_rm").estimate
    assert drm == pytest.approx(dz * math.sqrt(2 * (1 - r)), rel=1e-12)


def test_d_b_standardizes_by_the_baseline_sd():
    x = np.array([15, 12, 18, 14, 16, 11.0])
    y = np.array([6, 9, 10, 5, 12, 8.0])
    es = effect_size(x, y, measure="d_b")
    assert es.estimate == pytest.approx((x - y).mean() / x.std(ddof=1), rel=1e-12)


def test_d_z_of_differences_alone():
    diffs = np.subtract(MOVIE1, MOVIE2)
    one = effect_size(diffs, measure="d_z")
    two = effect_size(MOVIE1, MOVIE2, measure="d_z")
    assert (one.estimate, one.ci_low, one.ci_high) == pytest.approx(
        (two.estimate, two.ci_low, two.ci_high), rel=1e-12
    )


def test_paired_measures_drop_incomplete_pairs_and_say_how_many():
    x = [10, 12, None, 9, 14, np.nan]
    y = [6, 9, 8, np.nan, 10, 7]
    es = effect_size(x, y, measure="d_z")
    complete = effect_size([10, 12, 14], [6, 9, 10], measure="d_z")
    assert (es.n1, es.n2, es.n_dropped) == (3, 3, 3)
    assert es.estimate == pytest.approx(complete.estimate)


def test_independent_measures_drop_missing_values_and_count_them():
    es = effect_size([1, 2, np.nan, 4], [2, np.nan, 5, 6, 7], measure="cohen_d")
    assert (es.n1, es.n2, es.n_dropped) == (3, 4, 2)


def test_ci_none_and_ci_level():
    es = effect_size(MOVIE1, MOVIE2, ci=None)
    assert math.isnan(es.ci_low) and math.isnan(es.ci_high) and math.isnan(es.ci_level)
    assert es.ci_method == "none"
    wide = effect_size(MOVIE1, MOVIE2, ci=0.99)
    narrow = effect_size(MOVIE1, MOVIE2, ci=0.90)
    assert wide.ci_low < narrow.ci_low < narrow.estimate < narrow.ci_high < wide.ci_high
    assert narrow.ci_level == 0.90


def test_errors_name_the_problem_and_the_fix():
    with pytest.raises(ValueError, match=r"The value for `measure` must be one of .*'hedges'"):
        effect_size(MOVIE1, MOVIE2, measure="hedges")
    with pytest.raises(ValueError, match="only 'd_z' accepts x alone"):
        effect_size(MOVIE1, measure="d_av")
    with pytest.raises(ValueError, match="equal length"):
        effect_size([1, 2, 3], [1, 2], measure="d_z")
    with pytest.raises(ValueError, match="at least 2 complete pairs"):
        effect_size([1, np.nan], [2, 3], measure="d_z")
    with pytest.raises(ValueError, match="at least 2 non-missing values"):
        effect_size([1], [2, 3], measure="cohen_d")
    with pytest.raises(ValueError, match="standardizing SD is 0"):
        effect_size([3, 3, 3], [3, 3, 3], measure="cohen_d")
    with pytest.raises(ValueError, match="needs `r`"):
        effect_size_from_stats(10, 2, 20, 8, 2, 20, measure="d_z")
    with pytest.raises(ValueError, match="n1 == n2"):
        effect_size_from_stats(10, 2, 20, 8, 2, 21, measure="d_av", r=0.5)
    with pytest.raises(ValueError, match="`ci` must be"):
        effect_size(MOVIE1, MOVIE2, ci=95)
    with pytest.raises(ValueError, match="`x` must hold numbers"):
        effect_size(["a", "b"], [1, 2])


# --- property tests ---------------------------------------------------------------

scores = st.lists(st.integers(0, 21), min_size=3, max_size=12)


@settings(max_examples=40, deadline=None)
@given(x=scores, y=scores, measure=st.sampled_from(["cohen_d", "hedges_g"]))
def test_swapping_groups_flips_the_sign(x, y, measure):
    assume(np.std(x) > 0 and np.std(y) > 0)
    a = effect_size(x, y, measure=measure)
    b = effect_size(y, x, measure=measure)
    assert b.estimate == pytest.approx(-a.estimate, abs=1e-9)
    assert b.ci_low == pytest.approx(-a.ci_high, abs=1e-6)
    assert b.ci_high == pytest.approx(-a.ci_low, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(x=scores, y=scores)
def test_glass_delta_sign_follows_the_mean_difference(x, y):
    assume(np.std(x) > 0 and np.std(y) > 0 and np.mean(x) != np.mean(y))
    a = effect_size(x, y, measure="glass_delta")
    b = effect_size(y, x, measure="glass_delta")
    assert np.sign(a.estimate) == -np.sign(b.estimate) == np.sign(np.mean(x) - np.mean(y))


pairs = st.lists(st.tuples(st.integers(0, 21), st.integers(0, 21)), min_size=3, max_size=12)


@settings(max_examples=40, deadline=None)
@given(p=pairs, measure=st.sampled_from(["d_z", "d_av", "d_rm"]))
def test_swapping_paired_measurements_flips_the_sign(p, measure):
    x, y = (np.array(v, dtype=float) for v in zip(*p, strict=True))
    assume(np.std(x - y) > 0 and np.std(x) > 0 and np.std(y) > 0)
    a = effect_size(x, y, measure=measure)
    b = effect_size(y, x, measure=measure)
    assert b.estimate == pytest.approx(-a.estimate, abs=1e-9)
    assert b.ci_low == pytest.approx(-a.ci_high, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(p=pairs, measure=st.sampled_from(INDEPENDENT_MEASURES + PAIRED_MEASURES))
def test_ci_contains_the_estimate(p, measure):
    x, y = (np.array(v, dtype=float) for v in zip(*p, strict=True))
    assume(np.std(x - y) > 0 and np.std(x) > 0 and np.std(y) > 0)
    es = effect_size(x, y, measure=measure)
    assert es.ci_low <= es.estimate <= es.ci_high


# --- effect_size_table ------------------------------------------------------------


def _endpoints() -> pd.DataFrame:
    """A hand-built endpoint frame: 8 patients x 2 visits, two arms, one imputed row."""
    base = [15, 12, 18, 14, 16, 11, 19, 13]
    week1 = [10, 11, 14, 12, 15, 10, 16, 13]
    week4 = [6, 9, 10, 5, 12, 8, 17, 11]
    rows = []
    for i, b in enumerate(base):
        for visit, score, day in (("week1", week1[i], 7), ("week4", week4[i], 28)):
            rows.append(
                dict(
                    patient_id=f"p{i}",
                    instrument="GAD7",
                    visit=visit,
                    study_day=day,
                    baseline=b,
                    score=score,
                    change=score - b,
                    imputed=False,
                    arm="ketamine" if i < 4 else "placebo",
                )
            )
    ep = pd.DataFrame(rows)
    ep.loc[(ep.patient_id == "p7") & (ep.visit == "week4"), ["imputed", "study_day"]] = [True, None]
    return ep


def test_within_patient_table_is_effect_size_of_baseline_vs_score():
    ep = _endpoints()
    t = effect_size_table(ep)
    assert list(t.columns) == [
        "instrument",
        "visit",
        "measure",
        "estimate",
        "ci_low",
        "ci_high",
        "ci_level",
        "n1",
        "n2",
        "ci_method",
    ]
    assert t["visit"].tolist() == ["week1", "week4"]
    for _, row in t.iterrows():
        cell = ep[ep.visit == row.visit]
        es = effect_size(cell.baseline, cell.score, measure="d_av")  # default within measure
        assert (row.measure, row.n1, row.n2) == ("d_av", 8, 8)
        assert row.estimate == pytest.approx(es.estimate)
        assert row.ci_low == pytest.approx(es.ci_low)
        assert row.estimate > 0  # scores fell: improvement is positive within patients


def test_table_rows_follow_the_visit_schedule_not_the_alphabet():
    ep = _endpoints().assign(target_day=lambda d: d.visit.map({"week1": 7, "week4": 28}))
    week12 = ep[ep.visit == "week4"].assign(visit="week12", target_day=84)
    week2 = ep[ep.visit == "week1"].assign(visit="week2", target_day=14)
    both = pd.concat([ep, week12, week2], ignore_index=True)
    assert effect_size_table(both, by="visit")["visit"].tolist() == [
        "week1",
        "week2",
        "week4",
        "week12",
    ]
    between = effect_size_table(both.assign(route=["iv", "im"] * (len(both) // 2)), group="route")
    assert between["visit"].tolist() == ["week1", "week2", "week4", "week12"]


def test_within_patient_measure_by_and_imputed_rows():
    ep = _endpoints()
    t = effect_size_table(ep[~ep.imputed], measure="d_z", by="visit")
    assert list(t.columns[:2]) == ["visit", "measure"]
    assert t.set_index("visit").loc["week4", "n1"] == 7  # the imputed row was filtered out
    assert effect_size_table(ep, by="visit").set_index("visit").loc["week4", "n1"] == 8
    one = effect_size_table(ep[ep.visit == "week4"], by=())
    assert len(one) == 1 and one.columns[0] == "measure"


def test_between_groups_on_change_scores():
    ep = _endpoints()
    t = effect_size_table(ep, group="arm")
    assert list(t.columns[:4]) == ["instrument", "visit", "group", "reference"]
    # default reference: the first sorted level ("ketamine"); group minus reference.
    assert set(t["reference"]) == {"ketamine"} and set(t["group"]) == {"placebo"}
    row = t.set_index("visit").loc["week4"]
    cell = ep[ep.visit == "week4"]
    es = effect_size(
        cell.loc[cell.arm == "placebo", "change"], cell.loc[cell.arm == "ketamine", "change"]
    )
    assert (row.measure, row.n1, row.n2) == ("hedges_g", 4, 4)
    assert row.estimate == pytest.approx(es.estimate)
    flipped = effect_size_table(ep, group="arm", reference="placebo").set_index("visit")
    assert flipped.loc["week4", "estimate"] == pytest.approx(-es.estimate)
    assert flipped.loc["week4", "estimate"] < 0  # ketamine fell more: negative
    glass = effect_size_table(ep, group="arm", measure="glass_delta", by="visit")
    assert (glass["measure"] == "glass_delta").all()


def test_table_small_cells_give_nan_not_an_error():
    ep = _endpoints()
    ep = ep[~((ep.arm == "ketamine") & (ep.patient_id != "p0"))]
    t = effect_size_table(ep, group="arm", reference="ketamine")
    assert t["estimate"].isna().all() and (t["ci_method"] == "none").all()
    assert (t["n2"] == 1).all()


def test_table_errors():
    ep = _endpoints()
    with pytest.raises(ValueError, match="repeat a patient"):
        effect_size_table(ep, by="instrument")
    with pytest.raises(ValueError, match=r"`measure` must be one of \['d_z'"):
        effect_size_table(ep, measure="hedges_g")
    with pytest.raises(ValueError, match=r"`measure` must be one of \['cohen_d'"):
        effect_size_table(ep, group="arm", measure="d_z")
    with pytest.raises(ValueError, match=r"`reference` must be one of"):
        effect_size_table(ep, group="arm", reference="midazolam")
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['route'\]"):
        effect_size_table(ep, group="route")


def test_summary_statistics_with_zero_sd_raise_value_error():
    with pytest.raises(ValueError, match="standardizing SD is 0"):
        effect_size_from_stats(10, 0, 5, 8, 0, 5, measure="cohen_d")
    with pytest.raises(ValueError, match="standardizing SD is 0"):
        effect_size_from_stats(10, 2, 5, 8, 2, 5, measure="d_z", r=1.0)


def test_polars_endpoints_are_accepted():
    pl = pytest.importorskip("polars")
    ep = _endpoints()
    pd.testing.assert_frame_equal(
        effect_size_table(pl.from_pandas(ep), group="arm"), effect_size_table(ep, group="arm")
    )


# --------------------------------------------------------------------------------------
# effect_size_table: small-cell suppression (DESIGN.md "Small cells")


def _changes(sizes: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Endpoint rows per (visit, route): `sizes` maps "visit/route" to a patient count."""
    rng = np.random.default_rng(seed)
    frames = []
    for cell, n in sizes.items():
        visit, route = cell.split("/")
        baseline = rng.integers(10, 21, n)
        score = baseline - rng.integers(0, 10, n)
        frames.append(pd.DataFrame({
            "patient_id": [f"{cell}-{i}" for i in range(n)], "instrument": "GAD7",
            "visit": visit, "route": route, "baseline": baseline, "score": score,
            "change": score - baseline}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_effect_size_table_min_cell_within_patients():
    ep = _changes({"week1/iv": 12, "week4/iv": 5})
    plain = effect_size_table(ep)
    t = effect_size_table(ep, min_cell=11)
    assert "suppressed" not in plain.columns
    assert list(t.columns) == [*plain.columns, "suppressed"]
    assert t["suppressed"].tolist() == [False, True]
    # week1 (12 patients) unchanged; week4 (5 patients) keeps only measure, level, method.
    assert t.loc[0, "estimate"] == plain.loc[0, "estimate"] and t.loc[0, "n1"] == 12
    assert t.loc[1, ["estimate", "ci_low", "ci_high", "n1", "n2"]].isna().all()


def test_effect_size_table_min_cell_between_groups_hides_both_counts():
    ep = _changes({"week4/iv": 15, "week4/oral": 4, "week4/im": 11})
    t = effect_size_table(ep, group="route", reference="iv", min_cell=11)
    assert t["group"].tolist() == ["im", "oral"]
    assert t.loc[0, ["n1", "n2"]].tolist() == [11, 15] and not t.loc[0, "suppressed"]
    assert t.loc[1, ["estimate", "ci_low", "ci_high", "n1", "n2"]].isna().all()
    assert t.loc[1, "suppressed"]


@settings(max_examples=40)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 25), st.integers(1, 25)), min_size=1, max_size=4),
    min_cell=st.integers(1, 15),
)
def test_property_effect_size_table_never_shows_a_small_count(sizes, min_cell):
    cells = {}
    for k, (n_group, n_ref) in enumerate(sizes):
        cells[f"v{k}/oral"], cells[f"v{k}/iv"] = n_group, n_ref
    ep = _changes(cells)
    for t in (
        effect_size_table(ep, by="visit", min_cell=min_cell),
        effect_size_table(ep, group="route", reference="iv", by="visit", min_cell=min_cell),
    ):
        for column in ("n1", "n2"):
            shown = pd.to_numeric(t[column]).dropna()
            assert not shown.between(1, min_cell - 1).any()
        hidden = t[t["suppressed"]]
        assert hidden[["estimate", "ci_low", "ci_high"]].isna().all().all()


@pytest.mark.parametrize("bad", [math.inf, -math.inf])
@pytest.mark.parametrize("measure", ["hedges_g", "d_z", "d_av"])
def test_infinite_values_are_an_error_naming_the_problem(bad, measure):
    # Issue 10: an inf value used to surface as "the standardizing SD is 0".
    with pytest.raises(ValueError, match=r"`y` holds 1 infinite value\(s\)") as info:
        effect_size(MOVIE1, [*MOVIE2[:-1], bad], measure=measure)
    assert "SD is 0" not in str(info.value)
    with pytest.raises(ValueError, match=r"`x` holds 2 infinite value\(s\)"):
        effect_size([bad, bad, *MOVIE1[2:]], MOVIE2, measure=measure)
