"""Smoke tests of the report figures: a Figure with the expected axes and bars."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.plots import plot_completeness, plot_item_missingness
from analysis.synthetic import synthetic_cohort
from analysis.tables import completeness_table, item_missingness


def _bars(ax) -> list:
    return [p for p in ax.patches if p.get_height() > 0 and p.get_width() > 0]


def test_plot_completeness_one_bar_per_instrument_and_visit():
    table = pd.DataFrame(
        {
            "instrument": ["GAD7", "GAD7", "GAD7", "HAMA", "HAMA"],
            "visit": ["baseline", "day1", "week1", "baseline", "week1"],
            "percent": [90.0, 80.0, 70.0, 60.0, None],  # a suppressed cell has no bar
        }
    )
    fig = plot_completeness(table)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(_bars(ax)) == 4
    assert sorted(round(p.get_height(), 1) for p in _bars(ax)) == [60.0, 70.0, 80.0, 90.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "day1", "week1"]
    assert [t.get_text() for t in ax.texts] == ["suppressed"]
    assert ax.texts[0].get_position()[0] == pytest.approx(2.2)  # week1, second of two bars
    assert plt.get_fignums() == []  # not registered with pyplot


def test_plot_item_missingness_one_panel_per_instrument():
    table = item_missingness(synthetic_cohort(n_patients=40, seed=3).assessments)
    fig = plot_item_missingness(table)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["GAD7", "HAMA"]
    assert [len(ax.patches) for ax in fig.axes] == [7, 14]


def test_plot_item_missingness_labels_suppressed_items():
    table = pd.DataFrame(
        {
            "instrument": "GAD7",
            "item": range(1, 8),
            "label": list("abcdefg"),
            "percent": [1.0, None, 0.0, 2.0, None, 0.5, 0.0],
        }
    )
    (ax,) = plot_item_missingness(table).axes
    assert len(_bars(ax)) == 3
    assert [round(t.get_position()[1]) for t in ax.texts] == [1, 4]


def test_plots_draw_the_real_tables():
    cohort = synthetic_cohort(n_patients=40, seed=3)
    fig = plot_completeness(completeness_table(cohort, min_cell=11))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getbuffer().nbytes > 1000
