"""Tests of analysis.survival.

Reference values: the R survival example of docs/references.md and R output written by
tests/reference/survival/survival_reference.R (survival 3.5.3) into
tests/reference/survival/*.csv (tests do not need R).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.survival import (
    kaplan_meier,
    logrank_test,
    median_time_to_event,
    time_to_event,
    time_to_relapse,
)

REF = Path(__file__).parent / "reference" / "survival"
DATA = pd.read_csv(REF / "survival_data.csv")
R_KM = pd.read_csv(REF / "km.csv")
R_MEDIAN = pd.read_csv(REF / "median.csv")
R_LOGRANK = pd.read_csv(REF / "logrank.csv")
Z = 1.959963984540054


def _same(a, b, tol):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def test_km_matches_references_md():
    # docs/references.md (R survival, as in statsmodels' tests): times 3 1 2 3 2 1 5 3, events
    # 0 1 1 1 0 0 1 0 -> S = 0.8750000, 0.7291667, 0.5468750, 0.0 at 1, 2, 3, 5; Greenwood
    # SE 0.1169268, 0.1649762, 0.2005800.
    tte = pd.DataFrame({"time": [3, 1, 2, 3, 2, 1, 5, 3], "event": [0, 1, 1, 1, 0, 0, 1, 0]})
    km = kaplan_meier(tte)
    assert list(km.columns) == [
        "time",
        "n_at_risk",
        "n_events",
        "survival",
        "ci_low",
        "ci_high",
    ]
    assert km["time"].tolist() == [1, 2, 3, 5]
    assert km["survival"].to_numpy() == pytest.approx(
        [0.8750000, 0.7291667, 0.5468750, 0.0], abs=5e-8
    )
    # Greenwood SE of S recovered from the log-log lower limit:
    # log(-log L) = log(-log S) - z se/log S, se the SE of log S.
    s, low = km["survival"].to_numpy()[:3], km["ci_low"].to_numpy()[:3]
    se_log = (np.log(-np.log(s)) - np.log(-np.log(low))) * np.log(s) / Z
    assert s * se_log == pytest.approx([0.1169268, 0.1649762, 0.2005800], abs=5e-8)
    assert math.isnan(km["ci_low"].iloc[3]) and math.isnan(km["ci_high"].iloc[3])


@pytest.mark.parametrize(
    ("dataset", "group"), sorted({(r.dataset, r.group) for r in R_KM.itertuples()})
)
def test_km_matches_r_survfit_log_log(dataset, group):
    # Source: R survival 3.5.3, summary(survfit(..., conf.type = "log-log")), km.csv.
    d = DATA[(DATA.dataset == dataset) & (DATA.group == group)]
    expected = R_KM[(R_KM.dataset == dataset) & (R_KM.group == group)].reset_index(drop=True)
    km = kaplan_meier(d[["time", "event"]])
    assert km["time"].tolist() == expected["time"].tolist()
    assert km["n_at_risk"].tolist() == expected["n_at_risk"].tolist()
    assert km["n_events"].tolist() == expected["n_events"].tolist()
    for col in ("survival", "ci_low", "ci_high"):
        for a, b in zip(km[col], expected[col], strict=True):
            assert _same(a, b, 1e-10), (col, a, b)


def test_km_grouped_matches_r_per_group():
    # Source: km.csv, dataset two_routes (R survival 3.5.3).
    d = DATA[DATA.dataset == "two_routes"].rename(columns={"group": "route"})
    km = kaplan_meier(d, group="route")
    assert list(km.columns[:2]) == ["group", "time"]
    expected = R_KM[R_KM.dataset == "two_routes"]
    assert km["group"].tolist() == expected["group"].tolist()
    assert km["survival"].to_numpy() == pytest.approx(expected["survival"].to_numpy(), abs=1e-12)
    assert km["ci_high"].to_numpy() == pytest.approx(expected["ci_high"].to_numpy(), abs=1e-10)


@pytest.mark.parametrize("row", list(R_MEDIAN.itertuples()), ids=lambda r: f"{r.dataset}-{r.group}")
def test_median_matches_r(row):
    # Source: R survival 3.5.3, summary(fit)$table median, 0.95LCL, 0.95UCL; median.csv.
    d = DATA[(DATA.dataset == row.dataset) & (DATA.group == row.group)]
    med = median_time_to_event(d[["time", "event"]]).iloc[0]
    assert (med.n, med.n_events) == (row.n, row.n_events)
    for col in ("median", "ci_low", "ci_high"):
        assert _same(med[col], getattr(row, col), 1e-12), (col, med[col], getattr(row, col))


def test_median_by_group():
    d = DATA[DATA.dataset == "two_routes"]
    med = median_time_to_event(d, group="group")
    assert list(med.columns) == ["group", "n", "n_events", "median", "ci_low", "ci_high"]
    # Source: median.csv (R survival 3.5.3): iv 28 [1, NA]; oral not reached [28, NA].
    assert med["median"].iloc[0] == 28 and math.isnan(med["median"].iloc[1])
    assert med["ci_low"].tolist() == [1, 28]


def test_logrank_matches_r_survdiff():
    # Source: R survival 3.5.3 survdiff(Surv(time, event) ~ group), logrank.csv.
    d = DATA[DATA.dataset == "two_routes"]
    expected = R_LOGRANK.set_index("dataset").loc["two_routes"]
    res = logrank_test(d, "group")
    assert list(res.columns) == ["n_groups", "chi2", "df", "p_value", "note"]
    assert pd.isna(res["note"].iloc[0])
    assert res["chi2"].iloc[0] == pytest.approx(expected["chi2"], rel=1e-10)
    assert res["p_value"].iloc[0] == pytest.approx(expected["p_value"], rel=1e-8)
    assert res["df"].iloc[0] == expected["df"] == 1


def test_tte_input_errors():
    tte = pd.DataFrame({"time": [1, 2, 3], "event": [1, 0, 1], "g": ["a", "a", None]})
    with pytest.raises(ValueError, match="`g` has 1 missing"):
        kaplan_meier(tte, group="g")
    with pytest.raises(ValueError, match="at least two levels"):
        logrank_test(tte.fillna("a"), "g")
    with pytest.raises(ValueError, match="1 \\(event\\) or 0"):
        kaplan_meier(tte.assign(event=[1, 2, 0]))
    with pytest.raises(ValueError, match="missing `time` or `event`"):
        kaplan_meier(tte.assign(time=[1, None, 3]))
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['time'\]"):
        kaplan_meier(tte.drop(columns="time"))


def test_km_group_without_events_has_no_rows():
    tte = pd.DataFrame({"time": [7, 14, 28, 28], "event": [1, 0, 0, 0], "g": list("aabb")})
    km = kaplan_meier(tte, group="g")
    assert km["group"].tolist() == ["a"]


# --- time_to_event and time_to_relapse from endpoint rows -------------------------


def _endpoints() -> pd.DataFrame:
    """Hand-built endpoints (one instrument): see the comment of each patient."""
    b = "boolean"
    rows = [
        # p1: responds at week2 (day 15) -> time 15, event 1; later loses response.
        ("p1", "week1", 7, False, False, "iv"),
        ("p1", "week2", 15, True, False, "iv"),
        ("p1", "week4", 28, True, True, "iv"),
        ("p1", "week8", 55, False, pd.NA, "iv"),
        # p2: never responds; last defined visit week4 (day 27) -> censored at 27.
        ("p2", "week1", 6, False, False, "oral"),
        ("p2", "week4", 27, False, False, "oral"),
        ("p2", "week8", 57, pd.NA, pd.NA, "oral"),
        # p3: responds at week1 (imputed week4 must not count).
        ("p3", "week1", 8, True, pd.NA, "oral"),
        ("p3", "week4", pd.NA, False, pd.NA, "oral"),
        # p4: response never defined (e.g. baseline 0) -> left out.
        ("p4", "week1", 7, pd.NA, pd.NA, "iv"),
    ]
    ep = pd.DataFrame(
        rows, columns=["patient_id", "visit", "study_day", "response", "remission", "route"]
    )
    ep["instrument"] = "GAD7"
    ep["study_day"] = ep["study_day"].astype("Int64")
    ep["response"] = ep["response"].astype(b)
    ep["remission"] = ep["remission"].astype(b)
    ep["imputed"] = ep["study_day"].isna()
    ep["score"] = 5.0
    return ep


def test_time_to_event_semantics():
    # docs/design.md "Time to event": first visit meeting the event; else censored at the last
    # visit with a defined value; NA rows ignored; imputed rows ignored; patients with
    # no defined value left out.
    tte = time_to_event(_endpoints())
    assert list(tte.columns) == ["patient_id", "time", "event", "route"]
    assert tte["patient_id"].tolist() == ["p1", "p2", "p3"]
    assert tte["time"].tolist() == [15, 27, 8]
    assert tte["event"].tolist() == [1, 0, 1]
    assert tte["route"].tolist() == ["iv", "oral", "oral"]


def test_time_to_event_other_event_and_choice_error():
    tte = time_to_event(_endpoints(), "remission")
    # p1 remits at day 28; p2 never, censored at 27; p3's only defined remission value is
    # on an imputed row, so p3 is left out.
    assert tte[["patient_id", "time", "event"]].values.tolist() == [["p1", 28, 1], ["p2", 27, 0]]
    with pytest.raises(ValueError, match=r"The value for `event` must be one of \["):
        time_to_event(_endpoints(), "responder")


def test_time_to_event_never_mixes_instruments():
    ep = _endpoints()
    hama = ep.assign(instrument="HAMA", response=pd.array([pd.NA] * len(ep), dtype="boolean"))
    both = pd.concat([ep, hama], ignore_index=True)
    with pytest.raises(ValueError, match="several instruments.*Pass `instrument=`"):
        time_to_event(both)
    assert time_to_event(both, instrument="GAD7")["time"].tolist() == [15, 27, 8]
    assert time_to_event(both, instrument="HAMA").empty
    with pytest.raises(ValueError, match="`instrument` must be one of"):
        time_to_event(both, instrument="PHQ9")


def test_time_to_relapse_convention():
    # p1: first response day 15, no longer responding at day 55 -> relapse after 40 days.
    # p3: responds at day 8, no later observed visit -> censored at time 0.
    tte = time_to_relapse(_endpoints())
    assert tte[["patient_id", "time", "event"]].values.tolist() == [["p1", 40, 1], ["p3", 0, 0]]
    # Remission: p1 remits at day 28, the day-55 value is NA -> censored at 0.
    tte = time_to_relapse(_endpoints(), "remission")
    assert tte[["patient_id", "time", "event"]].values.tolist() == [["p1", 0, 0]]


def test_end_to_end_km_by_route():
    tte = time_to_event(_endpoints())
    km = kaplan_meier(tte, group="route")
    # iv: p1 responds at 15 (1 of 1) -> S = 0; oral: p3 at 8 (1 of 2) -> S = 0.5.
    assert km[["group", "time", "n_at_risk", "survival"]].values.tolist() == [
        ["iv", 15, 1, 0.0],
        ["oral", 8, 2, 0.5],
    ]


# --- property tests ---------------------------------------------------------------

tte_strategy = st.lists(
    st.tuples(st.sampled_from([1, 7, 14, 28, 56, 84]), st.integers(0, 1)), min_size=1, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(rows=tte_strategy)
def test_km_is_non_increasing_in_unit_interval_and_inside_its_ci(rows):
    tte = pd.DataFrame(rows, columns=["time", "event"])
    km = kaplan_meier(tte)
    s = km["survival"].to_numpy()
    assert ((s >= 0) & (s <= 1)).all()
    assert (np.diff(s) <= 1e-15).all()
    ok = km["ci_low"].notna()
    assert (km.loc[ok, "ci_low"] <= km.loc[ok, "survival"]).all()
    assert (km.loc[ok, "survival"] <= km.loc[ok, "ci_high"]).all()
    assert km["n_events"].sum() == tte["event"].sum()


visit_days = {"day1": 2, "week1": 7, "week2": 14, "week4": 28, "week8": 56, "week12": 84}
endpoint_rows = st.lists(
    st.tuples(
        st.integers(0, 9),
        st.sampled_from(sorted(visit_days)),
        st.sampled_from([True, False, None]),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=endpoint_rows)
def test_every_patient_with_a_defined_outcome_appears_once(rows):
    ep = pd.DataFrame(rows, columns=["pid", "visit", "response", "imputed"])
    ep = ep.drop_duplicates(["pid", "visit"])
    ep["patient_id"] = "p" + ep["pid"].astype(str)
    ep["study_day"] = ep["visit"].map(visit_days).astype("Int64").mask(ep["imputed"])
    ep["response"] = ep["response"].astype("boolean")
    tte = time_to_event(ep)
    observed = ep[~ep["imputed"] & ep["response"].notna()]
    assert sorted(tte["patient_id"]) == sorted(observed["patient_id"].unique())
    assert tte["patient_id"].is_unique
    for row in tte.itertuples():
        mine = observed[observed.patient_id == row.patient_id]
        met = mine.loc[mine["response"].astype(bool), "study_day"]
        if row.event:
            assert row.time == met.min()
        else:
            assert met.empty and row.time == mine["study_day"].max()
    relapse = time_to_relapse(ep)
    assert set(relapse["patient_id"]) == set(tte.loc[tte["event"] == 1, "patient_id"])
    assert (relapse["time"] >= 0).all()


def test_polars_endpoints_are_accepted():
    pl = pytest.importorskip("polars")
    ep = _endpoints()
    expected = time_to_event(ep)
    got = time_to_event(pl.from_pandas(ep))
    assert got[["patient_id", "time", "event"]].values.tolist() == (
        expected[["patient_id", "time", "event"]].values.tolist()
    )
    km = kaplan_meier(pl.from_pandas(expected[["time", "event"]]))
    assert km["survival"].tolist() == kaplan_meier(expected)["survival"].tolist()


# --------------------------------------------------------------------------------------
# median_time_to_event: small-cell suppression (docs/design.md "Small cells")


def _tte(groups: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Per group (events, censored): events on days 7, 14, ... censoring on day 84."""
    frames = []
    for group, (events, censored) in groups.items():
        times = [7 * (1 + k % 8) for k in range(events)] + [84] * censored
        frames.append(pd.DataFrame({"time": times, "event": [1] * events + [0] * censored,
                                    "route": group}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_median_time_to_event_min_cell():
    tte = _tte({"iv": (15, 15), "im": (20, 5), "oral": (4, 2)})
    plain = median_time_to_event(tte, group="route")
    med = median_time_to_event(tte, group="route", min_cell=11)
    assert list(med.columns) == [*plain.columns, "suppressed"]
    assert med["group"].tolist() == ["im", "iv", "oral"]
    # iv (30 patients, 15 events) is hidden too: im's 5 censored and oral's 2 are hidden
    # by the primary rule, and all censored (22) minus iv's 15 would give them together,
    # 7 patients (hidden cells of a margin must add up to 0 or at least min_cell).
    assert med["suppressed"].tolist() == [True, True, True]
    assert med.loc[1, "n"] == 30 and pd.isna(med.loc[1, "n_events"])
    assert pd.isna(med.loc[1, "median"])
    # with a larger oral group nothing forces iv out: shown unchanged
    tte = _tte({"iv": (15, 15), "im": (20, 5), "oral": (14, 12)})
    med = median_time_to_event(tte, group="route", min_cell=11)
    plain = median_time_to_event(tte, group="route")
    assert med["suppressed"].tolist() == [True, False, True]
    assert med.loc[1, ["n", "n_events"]].tolist() == [30, 15]
    assert med.loc[1, "median"] == plain.loc[1, "median"]
    tte = _tte({"iv": (15, 15), "im": (20, 5), "oral": (4, 2)})
    med = median_time_to_event(tte, group="route", min_cell=11)
    # im: 5 censored would be n - n_events: the counts and the median are blanked; its n
    # (25) is hidden too, since oral's 6 would otherwise be all (61) minus iv and im.
    assert med.loc[0, ["n", "n_events", "median", "ci_low"]].isna().all()
    # oral: only 6 patients, so n is blanked too.
    assert med.loc[2, ["n", "n_events", "median", "ci_low", "ci_high"]].isna().all()


@settings(max_examples=40)
@given(
    groups=st.lists(
        st.tuples(st.integers(0, 25), st.integers(0, 25)), min_size=1, max_size=4
    ).filter(lambda g: all(e + c > 0 for e, c in g)),
    min_cell=st.integers(1, 15),
)
def test_property_median_time_to_event_never_shows_a_small_count(groups, min_cell):
    tte = _tte({f"g{k}": cell for k, cell in enumerate(groups)})
    med = median_time_to_event(tte, group="route", min_cell=min_cell)
    for _, row in med.iterrows():
        shown = [row["n"], row["n_events"]]
        if not (pd.isna(row["n"]) or pd.isna(row["n_events"])):
            shown.append(row["n"] - row["n_events"])
        assert all(pd.isna(v) or v == 0 or v >= min_cell for v in shown)
        if row["suppressed"]:
            assert all(pd.isna(row[c]) for c in ("median", "ci_low", "ci_high"))


# ---------------------------------------------------------------------------------------
# Issue 13 / issue 10: median at S = 0.5, p-values far in the tail, degenerate log-rank


def test_median_when_curve_stays_at_one_half_to_the_end():
    # Issue 13: S = 0.75 x 2/3 = 0.5000000000000001 from day 2 to the end of follow-up.
    # R survival: print(survfit(Surv(c(1, 2, 4, 6), c(1, 1, 0, 0)) ~ 1)) shows median 2.
    tte = pd.DataFrame({"time": [1, 2, 4, 6], "event": [1, 1, 0, 0]})
    assert median_time_to_event(tte)["median"].iloc[0] == 2


def test_median_is_midpoint_of_a_flat_stretch_at_one_half():
    # S = 0.5 exactly from day 2 until the event on day 5 takes it below: the median is
    # the midpoint (2 + 5) / 2 = 3.5 (R print(survfit), SAS LIFETEST).
    tte = pd.DataFrame({"time": [1, 2, 3, 5], "event": [1, 1, 0, 1]})
    km = kaplan_meier(tte)
    assert km.loc[km.time == 2, "survival"].iloc[0] == pytest.approx(0.5)
    assert median_time_to_event(tte)["median"].iloc[0] == 3.5


def _logrank_by_hand(time, event, group):
    """Two-group log-rank chi-square: (O - E)^2 / V over the distinct event times."""
    time, event, group = map(np.asarray, (time, event, group))
    o_minus_e = var = 0.0
    for t in np.unique(time[event == 1]):
        at_risk = time >= t
        n, n1 = at_risk.sum(), (at_risk & (group == 1)).sum()
        d = ((time == t) & (event == 1)).sum()
        d1 = ((time == t) & (event == 1) & (group == 1)).sum()
        o_minus_e += d1 - d * n1 / n
        if n > 1:
            var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return o_minus_e**2 / var


def test_logrank_p_value_does_not_underflow_for_a_very_strong_effect():
    # 60 responders in one group by day 60, none in the other (censored on day 100):
    # chi-square about 94, p about 3e-22; 1 - cdf would give 0 (issue 13).
    from scipy.special import erfc

    time = np.r_[np.arange(1, 61), np.full(60, 100)]
    event = np.r_[np.ones(60, int), np.zeros(60, int)]
    group = np.r_[np.ones(60, int), np.zeros(60, int)]
    tte = pd.DataFrame({"time": time, "event": event, "arm": np.where(group == 1, "k", "p")})
    res = logrank_test(tte, "arm").iloc[0]
    chi2 = _logrank_by_hand(time, event, group)
    assert res["chi2"] == pytest.approx(chi2, rel=1e-10)
    expected = erfc(math.sqrt(chi2 / 2))  # P(chi2_1 > x) = erfc(sqrt(x / 2))
    assert expected < 1e-16
    assert res["p_value"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("responders", [0, 1])
def test_logrank_without_events_or_without_overlap_is_documented_nan(responders):
    # Issue 10: nobody responds (or nobody loses response) -> numpy LinAlgError before.
    tte = pd.DataFrame(
        {"time": [7, 14, 28, 28, 56, 84], "event": [0] * 6, "route": ["iv"] * 3 + ["oral"] * 3}
    )
    if responders:
        # One event, at a time when only one group is still at risk: zero variance.
        tte = pd.DataFrame(
            {"time": [7, 14, 90, 1, 2, 3], "event": [0, 0, 1, 0, 0, 0], "route": tte["route"]}
        )
    res = logrank_test(tte, "route").iloc[0]
    assert math.isnan(res["chi2"]) and math.isnan(res["p_value"])
    assert res["df"] == 1
    reason = "no events in any group" if responders == 0 else "zero variance"
    assert reason in res["note"]
