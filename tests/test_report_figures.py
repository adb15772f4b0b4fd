"""Labels and disclosure of the item-missingness, effect-size and waterfall figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analysis import plots
from analysis.disclosure import hidden_levels


def _waterfall_endpoints(sizes: dict, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    routes = [route for route, n in sizes.items() for _ in range(n)]
    return pd.DataFrame(
        {
            "instrument": "GAD7",
            "visit": "week4",
            "route": routes,
            "pct_change": rng.uniform(-100, 60, len(routes)).round(1),
        }
    )


@pytest.mark.parametrize(("sizes", "binned"), [({"iv": 30, "im": 24}, True), ({"iv": 60}, False)])
def test_waterfall_draws_bands_for_small_cohorts_automatically(sizes, binned):
    ep = _waterfall_endpoints(sizes)
    (ax,) = plots.plot_waterfall(ep, min_cell=11).axes
    widths = [round(p.get_width(), 9) for p in ax.patches]
    assert sum(widths) == sum(sizes.values())  # every patient in exactly one bar
    if binned:
        assert min(widths) >= 11 and len(widths) == 30 // 11 + 24 // 11
        assert "bands of at least 11" in ax.get_xlabel()
    else:
        assert set(widths) == {1.0} and len(widths) == 60


@settings(max_examples=40)
@example(sizes=[11, 12], min_cell=12, seed=0)  # IV under 12 hides IM (12) with it: no bars
@given(
    sizes=st.lists(st.integers(11, 80), min_size=1, max_size=4),
    min_cell=st.integers(2, 15),
    seed=st.integers(0, 1000),
)
def test_waterfall_bands_hold_min_cell_patients_at_their_mean(sizes, min_cell, seed):
    """Banded: no bar is fewer than min_cell patients, the bars' patients add up (those of
    the routes not hidden), each bar's height is the mean of its patients, and the bars are
    sorted."""
    routes = ["iv", "im", "oral", "intranasal"][: len(sizes)]
    ep = _waterfall_endpoints(dict(zip(routes, sizes, strict=True)), seed)
    # The routes Table 1 would hide: under min_cell, and the next-smallest with them.
    shown = ~ep["route"].isin(hidden_levels(ep["route"], min_cell))
    (ax,) = plots.plot_waterfall(ep, min_cell=min_cell, binned=True).axes
    bars = sorted(ax.patches, key=lambda p: p.get_x())
    widths = np.array([p.get_width() for p in bars])
    heights = np.array([p.get_height() for p in bars])
    assert (widths >= min_cell - 1e-9).all()
    assert round(widths.sum()) == int(shown.sum())
    assert (np.diff(heights) <= 1e-9).all()
    # the sum of (mean x size) over the bars of a route is the route's total change
    total = (heights * widths).sum()
    assert total == pytest.approx(ep.loc[shown, "pct_change"].sum(), abs=1e-6)


def test_waterfall_of_fewer_than_min_cell_patients_draws_nothing():
    ep = _waterfall_endpoints({"iv": 6})
    (ax,) = plots.plot_waterfall(ep, group=None, min_cell=11).axes
    assert not ax.patches and any("Nothing to show" in t.get_text() for t in ax.texts)


def test_effect_size_figure_uses_human_labels():
    table = pd.DataFrame(
        {
            "instrument": ["GAD7", "GAD7", "HAMA"],
            "visit": ["week1", "week4", "week4"],
            "estimate": [0.8, 1.1, 0.9],
            "ci_low": [0.6, 0.9, 0.7],
            "ci_high": [1.0, 1.3, 1.1],
        }
    )
    (ax,) = plots.plot_effect_sizes(table).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Week 1", "Week 4"]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["GAD-7", "HAM-A"]
    assert legend.get_title().get_text() == "Instrument" and ax.get_xlabel() == "Visit"
    (raw,) = plots.plot_effect_sizes(table, human_labels=False).axes
    assert [t.get_text() for t in raw.get_xticklabels()] == ["week1", "week4"]
