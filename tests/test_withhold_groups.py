"""Durability among responders may not show what the time-to-response table hides.

The durability analysis (time to loss of response) counts, per route, the patients who
responded: its ``n``, its number at risk on day 0 and its curve's steps give each route's
number of responders, the ``n_events`` of the time-to-response table. That table hides
them when they, or the patients who never responded, are 1 to ``min_cell - 1`` (or by
complementary suppression). ``withhold_groups`` hides such routes in the durability
outputs; the report test is the ``few_non_responders`` cohort of ``test_report_batch``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.disclosure import audit_table, number_at_risk, withhold_groups
from analysis.survival import kaplan_meier, median_time_to_event, time_to_event, time_to_relapse

DAYS = (7, 14, 28, 56)
ROUTES = ("im", "iv", "oral")


@st.composite
def endpoints(draw):
    """Visits of 1-60 patients in up to three routes, response met or not at each."""
    n = draw(st.integers(1, 60))
    routes = draw(st.lists(st.sampled_from(ROUTES), min_size=n, max_size=n))
    rate = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**16))
    met = np.random.default_rng(seed).random((n, len(DAYS))) < rate
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n) for _ in DAYS],
            "study_day": list(DAYS) * n,
            "response": met.ravel(),
            "route": [r for r in routes for _ in DAYS],
        }
    )


def _shown(table: pd.DataFrame, counts: tuple[str, ...]) -> pd.Series:
    """Whether a row shows any of its counts."""
    return table[list(counts)].notna().any(axis=1)


@settings(max_examples=40)  # about 0.1 s each: four survival tables per example
@given(ep=endpoints(), min_cell=st.integers(2, 12))
def test_property_durability_never_shows_the_responders_the_response_table_hides(ep, min_cell):
    response_time = time_to_event(ep, "response")
    relapse_time = time_to_relapse(ep, "response")
    # the link the rule rests on: the durability population of a route is its responders
    responders = response_time.groupby("route")["event"].sum()
    sizes = relapse_time.groupby("route").size()
    assert sizes.reindex(responders.index, fill_value=0).tolist() == responders.tolist()
    if relapse_time.empty:  # nobody responded: no durability to show (a report says so)
        return

    shown_in = median_time_to_event(response_time, group="route", min_cell=min_cell)
    hidden = set(shown_in.loc[shown_in["n_events"].isna(), "group"])
    table = median_time_to_event(relapse_time, group="route", min_cell=min_cell)
    kept = withhold_groups(table, shown_in, among="responders")
    # every row stays (a hidden route reads as a small one), nothing of a hidden route shows
    assert kept["group"].tolist() == table["group"].tolist()
    assert (kept["among"] == "responders").all()
    assert not _shown(kept[kept["group"].isin(hidden)], ("n", "n_events", "median")).any()
    assert kept.loc[kept["group"].isin(hidden), "suppressed"].all()
    # the shown routes are untouched, and their n is the count the response table shows
    visible = ~table["group"].isin(hidden)
    pd.testing.assert_frame_equal(
        kept.loc[visible].drop(columns="among"), table.loc[visible], check_dtype=False
    )
    counts = shown_in.set_index("group")["n_events"]
    for group, n in zip(kept["group"], kept["n"], strict=True):
        assert pd.isna(n) or n == counts[group]
    assert audit_table(kept, min_cell).empty

    at_risk = withhold_groups(
        number_at_risk(relapse_time, [0, 14], group="route", min_cell=min_cell), shown_in
    )
    assert at_risk.loc[at_risk["group"].isin(hidden), "n_at_risk"].isna().all()
    curve = kaplan_meier(relapse_time, group="route", min_cell=min_cell)
    try:
        drawn = withhold_groups(curve, shown_in)
    except ValueError as error:  # no curve left to draw: the figure says so
        assert "Every curve is left out" in str(error)
        assert set(curve["group"]) <= hidden
    else:
        assert not set(drawn["group"]) & hidden
        assert set(drawn["group"]) == set(curve["group"]) - hidden


def test_the_report_case_hides_the_routes_whose_responders_are_hidden():
    # IM: 16 of 20 respond (4 never do: hidden); IV: 30 of 47 respond (shown)
    response = pd.DataFrame(
        {"group": ["im", "iv"], "n": [20, 47], "n_events": pd.array([pd.NA, 30], dtype="Int64")}
    )
    durability = pd.DataFrame(
        {
            "group": ["im", "iv"],
            "n": [16, 30],
            "n_events": [12, 14],
            "median": [30.0, 41.0],
            "suppressed": [False, False],
        }
    )
    out = withhold_groups(durability, response)
    assert out["n"].tolist() == [pd.NA, 30] and out["n_events"].tolist() == [pd.NA, 14]
    assert np.isnan(out["median"][0]) and out["median"][1] == 41.0
    assert out["suppressed"].tolist() == [True, False]
    assert durability["n"].tolist() == [16, 30]  # a copy: the input is unchanged
    # a shown row whose mark is missing is not marked suppressed by the hidden one's
    unmarked = durability.assign(suppressed=pd.array([pd.NA, pd.NA], dtype="boolean"))
    assert withhold_groups(unmarked, response)["suppressed"].tolist() == [True, False]
    # a group the response table does not list is hidden as well (nothing vouches for it)
    assert withhold_groups(durability, response.iloc[1:]).equals(out)


def test_a_curve_loses_the_hidden_groups_and_keeps_its_attrs():
    response = pd.DataFrame({"group": ["im", "iv"], "n_events": pd.array([pd.NA, 30], "Int64")})
    curve = pd.DataFrame({"group": ["im", "iv"], "time": [3, 5], "survival": [0.9, 0.8]})
    curve.attrs["group_column"] = "route"
    kept = withhold_groups(curve, response)
    assert kept["group"].tolist() == ["iv"] and kept.attrs == {"group_column": "route"}
    assert withhold_groups(curve.iloc[:0], response).empty
    with pytest.raises(ValueError, match=r"Every curve is left out.*column `n_events`"):
        withhold_groups(curve.iloc[:1], response)


def test_missing_columns_are_named_together():
    with pytest.raises(ValueError) as info:
        withhold_groups(pd.DataFrame({"route": ["im"]}), pd.DataFrame({"group": ["im"]}))
    message = str(info.value)
    assert "`result` has no column `group`" in message
    assert "`shown_in` has no column `n_events`" in message
