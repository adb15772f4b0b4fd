"""Every legend of the report figures stands beside the plot, never on its data.

Legends placed inside the axes ("best" or a fixed corner) covered data on real cohorts:
report 03's GAD-7 LS means hid the IM week-12 estimate behind the legend at 120 patients,
the completeness bars reached into the legend's box, the adverse-event legend sat on the
lowest bars. ``plots._legend`` places each legend to the right of its axes and widens the
figure by it, so the plotting area keeps its width. These tests hold every call to that
one place, and draw the report figures from a synthetic cohort as the notebooks make
them: no legend overlaps a plotting area, each lies inside the canvas (so the PNG is
cropped from one drawing), and each figure is as wide as it was made plus its legend.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import plots
from analysis.disclosure import number_at_risk
from analysis.effect_sizes import effect_size_table
from analysis.rates import rate_table
from analysis.safety import adverse_event_table, blood_pressure_table, dissociation_table
from analysis.survival import kaplan_meier, time_to_event
from analysis.synthetic import synthetic_cohort
from analysis.tables import (
    cohort_endpoints,
    completeness_table,
    mean_scores,
    outcome_rates,
    patient_exposure,
    severity_transitions,
)

MIN_CELL = 11


def test_every_legend_is_placed_by_the_one_helper():
    tree = ast.parse(inspect.getsource(plots))
    helper = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "_legend"
    )
    inside = {id(node) for node in ast.walk(helper)}
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("legend", "add_legend")
    ]
    assert calls, "the check must see the helper's own call"
    outside = [node.lineno for node in calls if id(node) not in inside]
    assert outside == [], f"analysis/plots.py places a legend itself at lines {outside}"


@pytest.fixture(scope="module")
def demo():
    """The demo cohort at the size of the test reports, with its endpoints."""
    cohort = synthetic_cohort(n_patients=120, seed=0)
    endpoints = cohort_endpoints(cohort, patient_columns=("route",))
    return cohort, endpoints


def _ls_means() -> pd.DataFrame:
    """LS means by route with an isolated week-12 estimate (the one the legend hid)."""
    rows = [
        {"route": route, "visit": visit, "estimate": -3.0 - k - shift, "ci_low": -6.0 - k}
        for shift, route in enumerate(("iv", "im", "oral"))
        for k, visit in enumerate(["week1", "week2", "week4", "week8", "week12"])
        if not (route == "im" and visit == "week8")
    ]
    return pd.DataFrame(rows).assign(ci_high=lambda t: t["estimate"] + 2.5)


def _item_missingness() -> pd.DataFrame:
    """Long bars at the bottom right (where the legend stood) and a suppressed item."""
    return pd.DataFrame(
        {
            "instrument": "GAD7",
            "item": [1, 2, 3, 4],
            "label": ["Nervous", "Worrying", "Relaxing", "Afraid"],
            "percent": [2.0, np.nan, 9.0, 12.0],
        }
    )


def _figures(demo):
    cohort, ep = demo
    gad7 = ep.query("instrument == 'GAD7'")
    exposure = ep.merge(patient_exposure(cohort), on="patient_id")
    week4 = exposure.query("instrument == 'GAD7' and visit == 'week4'")
    response = time_to_event(gad7, "response")
    by_route = rate_table(
        ep, "response", by=("instrument", "visit", "route"), min_cell=MIN_CELL, margins="auto"
    )
    outcomes = rate_table(ep, "response", by=("instrument", "visit"), min_cell=MIN_CELL)
    yield (
        "completeness",
        lambda: plots.plot_completeness(
            completeness_table(cohort, min_cell=MIN_CELL), human_labels=True
        ),
    )
    yield "item missingness", lambda: plots.plot_item_missingness(_item_missingness())
    yield "rates by route", lambda: plots.plot_rates(by_route, group="route", human_labels=True)
    yield "rates", lambda: plots.plot_rates(outcomes.assign(outcome="response"), group="outcome")
    yield (
        "LS means",
        lambda: plots.plot_change_trajectory(
            _ls_means(), group="route", ylabel="GAD-7 change from baseline\n(LS mean, 95% CI)"
        ),
    )
    yield (
        "cumulative incidence",
        lambda: plots.plot_cumulative_incidence(
            kaplan_meier(response, group="route", min_cell=MIN_CELL),
            max_time=112,
            min_cell=MIN_CELL,
            at_risk=number_at_risk(response, range(0, 113, 14), group="route", min_cell=MIN_CELL),
        ),
    )
    yield "effect sizes", lambda: plots.plot_effect_sizes(effect_size_table(ep, min_cell=MIN_CELL))
    yield (
        "adverse events",
        lambda: plots.plot_adverse_events(adverse_event_table(cohort, min_cell=MIN_CELL)),
    )
    yield (
        "blood pressure",
        lambda: plots.plot_blood_pressure(blood_pressure_table(cohort, min_cell=MIN_CELL)),
    )
    yield (
        "dissociation",
        lambda: plots.plot_dissociation(
            dissociation_table(cohort, by=("route", "session_number"), min_cell=MIN_CELL),
            x="session_number",
        ),
    )
    yield "waterfall", lambda: plots.plot_waterfall(ep, min_cell=MIN_CELL)
    yield (
        "severity transitions",
        lambda: plots.plot_severity_transitions(
            severity_transitions(ep, "GAD7", "week4", min_cell=MIN_CELL)
        ),
    )
    yield (
        "mean trajectories",
        lambda: plots.plot_mean_trajectories(mean_scores(ep, min_cell=MIN_CELL)),
    )
    yield (
        "exposure response",
        lambda: plots.plot_exposure_response(
            outcome_rates(
                week4, ("response", "reliable_deterioration"), by=("dose_band",), min_cell=MIN_CELL
            ),
            "dose_band",
        ),
    )


def test_no_legend_covers_a_plotting_area_and_each_fits_its_canvas(demo):
    seen = []
    for name, make in _figures(demo):
        fig = make()
        legends = [legend for ax in fig.axes if (legend := ax.get_legend()) is not None]
        assert legends, f"{name}: the figure was meant to have a legend"
        seen.append(name)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        # what plots._tight_png needs to crop its one drawing: nothing past the canvas
        x0, y0, x1, y1 = fig.get_tightbbox(renderer).extents * fig.dpi
        assert x0 >= -0.5 and y0 >= -0.5, name
        assert x1 <= fig.bbox.width + 0.5 and y1 <= fig.bbox.height + 0.5, name
        boxes = [legend.get_window_extent(renderer) for legend in legends]
        for box in boxes:
            assert 0 <= box.x0 and box.x1 <= fig.bbox.width, name
            for ax in fig.axes:
                if ax.get_visible():
                    assert not box.overlaps(ax.get_window_extent(renderer)), (name, ax)
        widest = max(box.width for box in boxes) / fig.dpi
        made = getattr(fig, "_width_without_legends", None)
        assert made is not None and fig.get_figwidth() == pytest.approx(
            made + widest + plots._LEGEND_GAP
        ), name
    assert len(seen) == 14
