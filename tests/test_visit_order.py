"""One visit ordering for every table, figure and model, custom schedules included.

The schedule below is chosen so that every wrong ordering gives a different answer:
alphabetical and "natural" sorting put ``month1`` before ``week1``, and the default
schedule's order (names it knows first) puts ``week1`` and ``week12`` before ``day3``.
Only the schedule's own (target-day) order is right.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis import derive_endpoints, fit_mmrm, rate_table, synthetic_cohort
from analysis.endpoints import Visit, make_schedule, visit_order
from analysis.formatting import gt_lsmeans, label, rates_wide
from analysis.plots import plot_change_trajectory, plot_rates
from analysis.tables import visits_in_schedule_order

CUSTOM = pd.DataFrame(
    {
        "visit": ["baseline", "day3", "week1", "month1", "week12"],
        "target_day": [0, 3, 7, 30, 84],
        "window_low": [-14, 1, 6, 11, 46],
        "window_high": [0, 5, 10, 45, 111],
    }
)
IN_ORDER = ["day3", "week1", "month1", "week12"]  # post-baseline visits, schedule order


@pytest.fixture(scope="module")
def custom_endpoints() -> pd.DataFrame:
    return derive_endpoints(synthetic_cohort(120, seed=3), "GAD7", schedule=CUSTOM)


def test_the_schedule_defeats_every_wrong_order():
    labels = IN_ORDER[::-1]
    assert sorted(labels) != IN_ORDER
    assert visit_order(labels, unknown="natural") != IN_ORDER
    assert visit_order(labels) != IN_ORDER  # neither the default schedule nor these rows


def test_visit_order_rules():
    assert visit_order(IN_ORDER[::-1], [84, 30, 7, 3]) == IN_ORDER
    assert visit_order(IN_ORDER[::-1], schedule=CUSTOM) == IN_ORDER
    assert visit_order(IN_ORDER[::-1], schedule=make_schedule(CUSTOM)) == IN_ORDER
    assert visit_order(["week12", "week2", "baseline"]) == ["baseline", "week2", "week12"]
    ordered = pd.Series(pd.Categorical(["b", "a"], categories=["b", "a", "c"], ordered=True))
    assert visit_order(ordered) == ["b", "a", "c"]
    assert visit_order(["x", "y10", "y2"], unknown="natural") == ["x", "y2", "y10"]
    assert visit_order(["y10", "x", "y2", None]) == ["y10", "x", "y2"]
    with pytest.raises(ValueError, match="`unknown`"):
        visit_order(["a"], unknown="alphabetical")


@given(
    st.lists(st.integers(1, 1000), min_size=1, max_size=8, unique=True),
    st.randoms(use_true_random=False),
)
def test_visit_order_follows_the_target_days(days, random):
    names = [f"v{random.randrange(10**6)}_{k}" for k in range(len(days))]
    rows = list(zip(names, days, strict=True)) * 2
    random.shuffle(rows)
    expected = [n for _, n in sorted(zip(days, names, strict=True))]
    assert visit_order([n for n, _ in rows], [d for _, d in rows]) == expected
    visits = [Visit(n, d, d, d) for n, d in zip(names, days, strict=True)]
    schedule = make_schedule([Visit("baseline", 0, -14, 0), *visits])
    assert visit_order([n for n, _ in rows], schedule=schedule) == expected


def test_endpoints_and_rate_table_follow_a_custom_schedule(custom_endpoints):
    assert set(custom_endpoints["visit"]) == set(IN_ORDER)
    table = rate_table(custom_endpoints, by=("visit",))
    assert table["visit"].tolist() == IN_ORDER
    ordered = visits_in_schedule_order(custom_endpoints)
    assert ordered["visit"].cat.categories.tolist() == IN_ORDER


def test_tables_follow_a_custom_schedule(custom_endpoints):
    wide = rates_wide(rate_table(custom_endpoints, by=("instrument", "visit")), "instrument")
    headers = [label(v) for v in IN_ORDER]  # "Day 3", "Week 1", "Month 1", "Week 12"
    assert [c for c in wide.columns if c in headers] == headers


def test_figures_follow_a_custom_schedule(custom_endpoints):
    fig = plot_rates(rate_table(custom_endpoints, by=("instrument", "visit")))
    try:
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    finally:
        plt.close(fig)
    assert labels == IN_ORDER


def test_mmrm_tables_and_figures_follow_a_custom_schedule(custom_endpoints):
    result = fit_mmrm(
        custom_endpoints, "change ~ baseline + visit", subject="patient_id", visit="visit"
    )
    assert list(result.covariance.index) == IN_ORDER
    lsmeans = result.lsmeans("visit")
    assert lsmeans["visit"].astype(str).tolist() == IN_ORDER
    html = gt_lsmeans(lsmeans.assign(arm="all"), factor="arm").as_raw_html()
    positions = [html.index(label(v)) for v in IN_ORDER]
    assert positions == sorted(positions)
    fig = plot_change_trajectory(lsmeans, group=None)
    try:
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    finally:
        plt.close(fig)
    assert labels == IN_ORDER


def test_result_tables_order_visits_with_visit_order_whatever_the_visit_dtype(custom_endpoints):
    """The statistics sort their cells with `endpoints.sort_cells`, i.e. `visit_order`.

    An unordered Categorical visit (as a parquet reader or ``astype("category")`` gives)
    lists its categories alphabetically; the rows still follow the schedule's target days.
    """
    from analysis.effect_sizes import effect_size_table

    as_category = custom_endpoints.assign(visit=custom_endpoints["visit"].astype("category"))
    assert list(as_category["visit"].cat.categories) != IN_ORDER
    assert rate_table(as_category, by=("visit",))["visit"].astype(str).tolist() == IN_ORDER
    effects = effect_size_table(as_category, by=("visit",))
    assert list(dict.fromkeys(effects["visit"].astype(str))) == IN_ORDER


def test_result_tables_without_target_days_use_the_default_schedule():
    endpoints = derive_endpoints(synthetic_cohort(60, seed=3), "GAD7").drop(columns="target_day")
    expected = visit_order(endpoints["visit"])  # the default schedule's order
    assert sorted(expected) != expected  # "week12" sorts before "week2" alphabetically
    assert rate_table(endpoints, by=("visit",))["visit"].tolist() == expected
