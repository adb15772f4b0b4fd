"""Smoke tests of the report figures: a Figure with the expected axes and bars."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
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
    assert [ax.get_title() for ax in fig.axes] == ["GAD-7", "HAM-A"]  # the label registry
    raw = plot_item_missingness(table, human_labels=False)
    assert [ax.get_title() for ax in raw.axes] == ["GAD7", "HAMA"]
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


# --------------------------------------------------------------------------------------
# publication figures (issue 12)

import warnings  # noqa: E402

import numpy as np  # noqa: E402

from analysis import plots  # noqa: E402
from analysis.rates import rate_table  # noqa: E402
from analysis.tables import (  # noqa: E402
    cohort_endpoints,
    mean_scores,
    outcome_rates,
    patient_exposure,
    patient_flow,
    severity_transitions,
    subgroup_comparisons,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo():
    cohort = synthetic_cohort(n_patients=300, seed=2)
    columns = ("route", "primary_diagnosis", "sex", "comorbid_depression", "treatment_resistant")
    return cohort, cohort_endpoints(cohort, patient_columns=columns)


def _drawn(fig):
    """Draw ``fig`` (the constrained layout places its axes) and return the renderer,
    for the window extents of what it drew."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_every_figure_is_a_report_figure_that_renders_png(demo):
    cohort, ep = demo
    figures = [
        plots.plot_patient_flow(patient_flow(cohort, min_cell=11)),
        plots.plot_waterfall(ep, min_cell=11),
        plots.plot_severity_transitions(severity_transitions(ep, min_cell=11)),
        plots.plot_forest(subgroup_comparisons(ep, min_cell=11)),
        plots.plot_mean_trajectories(mean_scores(ep, min_cell=11)),
        plots.plot_completeness(completeness_table(cohort, min_cell=11)),
    ]
    for fig in figures:
        assert isinstance(fig, plots.ReportFigure)
        assert fig._repr_png_().startswith(PNG)
    assert plt.get_fignums() == []


def test_patient_flow_boxes_show_counts_and_suppression():
    table = pd.DataFrame(
        {
            "stage": ["treated", "baseline", "post_baseline", "visit", "visit"],
            "visit": ["", "", "", "week1", "week4"],
            "patients": pd.array([120, 115, 100, 90, pd.NA], dtype="Int64"),
            "percent": [100.0, 95.8, 83.3, 75.0, np.nan],
        }
    )
    texts = _texts(plots.plot_patient_flow(table))
    assert "Treated with ketamine\nn = 120 (100.0%)" in texts
    assert "With a GAD-7 baseline\nn = 115 (95.8%)" in texts
    assert "Week 1\nn = 90\n(75.0%)" in texts
    assert "Week 4\nsuppressed" in texts


def test_waterfall_sorted_bars_and_small_groups_hidden():
    ep = pd.DataFrame(
        {
            "instrument": "GAD7",
            "visit": "week4",
            "pct_change": [-80.0, 10.0, -50.0, -20.0, 0.0] * 3 + [-90.0],
            "route": ["iv"] * 15 + ["oral"],
        }
    )
    fig = plots.plot_waterfall(ep.assign(route=["iv"] * 15 + ["oral"]), min_cell=None, binned=False)
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 16 and heights == sorted(heights, reverse=True)
    assert {round(line.get_ydata()[0]) for line in ax.lines} >= {-50, -25, 0}
    # One oral patient: oral is hidden, and IV with it, since 16 patients at week 4 (a
    # count the rate tables show) minus the 15 drawn would give the one oral patient.
    fig = plots.plot_waterfall(ep, min_cell=11, binned=False)
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == []
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["IV ketamine: suppressed", "Oral ketamine: suppressed"]
    # the legend entry of a hidden route is the grey X of every figure, not a colour patch
    handles = ax.get_legend().legend_handles
    assert [(h.get_marker(), h.get_color()) for h in handles] == [("X", "0.3")] * 2
    # With 12 IM patients beside them, oral (1) goes with IM (12): 13 left out, IV drawn.
    more = pd.concat([ep, ep.head(12).assign(route="im")], ignore_index=True)
    fig = plots.plot_waterfall(more, min_cell=11, binned=False)
    (ax,) = fig.axes
    assert len(ax.patches) == 15 and "Patients (15)" in ax.get_xlabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["IV ketamine", "IM ketamine: suppressed", "Oral ketamine: suppressed"]


def test_severity_transitions_stacks_to_100_and_marks_suppressed(demo):
    _, ep = demo
    table = severity_transitions(ep, min_cell=None)
    fig = plots.plot_severity_transitions(table)
    (ax,) = fig.axes
    tops = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        tops[x] = max(tops.get(x, 0), bar.get_y() + bar.get_height())
    shown = table.groupby("baseline_severity", sort=False)["patients"].sum()
    for x, band in enumerate(dict.fromkeys(table["baseline_severity"])):
        if shown[band] > 0:
            assert tops[x] == pytest.approx(100, abs=0.2)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Minimal",
        "Mild",
        "Moderate",
        "Severe",
    ]
    small = plots.plot_severity_transitions(severity_transitions(ep, min_cell=11))
    assert "suppressed" in _texts(small)


def test_forest_plot_rows_p_values_and_suppressed_rows(demo):
    _, ep = demo
    table = subgroup_comparisons(ep, min_cell=11)
    fig = plots.plot_forest(table)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "Route: IM ketamine vs IV ketamine"
    assert len(labels) == len(table)
    # a long label takes two lines, broken before its reference ("vs ..."), so the
    # labels leave the intervals most of the width
    broken = [label for label in labels if "\n" in label]
    assert broken and all(label.split("\n")[1].startswith("vs ") for label in broken)
    assert max(len(line) for label in labels for line in label.split("\n")) <= 50
    texts = _texts(fig)
    assert "adj. p" in texts
    assert texts.count("suppressed") == int(table["suppressed"].sum()) > 0
    assert "percentage" not in ax.get_xlabel() and "% points" in ax.get_xlabel()
    shown = table[~table["suppressed"]]
    (errorbar,) = ax.containers
    assert len(errorbar.lines[0].get_xdata()) == len(shown)
    np.testing.assert_allclose(
        sorted(errorbar.lines[0].get_xdata()), sorted(100 * shown["risk_difference"])
    )
    # the p-values stand in a column right of the plotting area: no interval and no frame
    # runs through them (inside the axes, the right spine crossed "adj. p" and the values)
    renderer = _drawn(fig)
    frame = ax.get_window_extent(renderer)
    p_texts = [t for t in ax.texts if t.get_text() != "suppressed"]
    assert len(p_texts) == len(shown) + 1
    for text in p_texts:
        assert text.get_window_extent(renderer).x0 > frame.x1, text.get_text()


def test_mean_trajectories_bands_and_labels(demo):
    _, ep = demo
    table = mean_scores(ep, min_cell=11)
    fig = plots.plot_mean_trajectories(table)
    assert [ax.get_title() for ax in fig.axes] == ["GAD-7", "HAM-A"]
    gad = fig.axes[0]
    assert [t.get_text() for t in gad.get_xticklabels()][:2] == ["Baseline", "Day 1"]
    assert len(gad.collections) == table[table["instrument"] == "GAD7"]["route"].nunique()
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert "IV ketamine" in legend


def test_exposure_response_order_and_suppression(demo):
    cohort, ep = demo
    exposure = ep.merge(patient_exposure(cohort), on="patient_id")
    week4 = exposure[(exposure["visit"] == "week4") & (exposure["instrument"] == "GAD7")]
    table = outcome_rates(
        week4, ("response", "reliable_deterioration"), by=("dose_band",), min_cell=11
    )
    table = table[table["dose_band"].notna()]  # patients without a mg/kg dose
    fig = plots.plot_exposure_response(table, "dose_band")
    (ax,) = fig.axes
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    order = ["Under 0.6 mg/kg", "0.6 to under 0.8 mg/kg", "0.8 mg/kg or more"]
    assert ticks == [t for t in order if t in ticks]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    marker = [t for t in legend if t.lower() == plots.SUPPRESSED_LABEL]
    assert [t for t in legend if t not in marker] == ["Response", "Reliable deterioration"]
    assert len(marker) == int(table["suppressed"].any())  # one legend entry for the marker
    assert _texts(fig).count("suppressed") == int(table["suppressed"].sum())


def test_exposure_response_keeps_the_suppressed_labels_inside_the_frame():
    # The first band's cells hidden: its "suppressed" labels, dodged sideways, stood on
    # the frame's left edge and the y tick labels (the axis was only as wide as the marks,
    # as in a 15-patient demo); each band now has its own width, as on a categorical axis.
    table = pd.DataFrame(
        {
            "sessions_band": ["6-7", "8+"] * 2,
            "outcome": ["response"] * 2 + ["reliable_deterioration"] * 2,
            "rate": [np.nan, 0.6, np.nan, np.nan],
            "ci_low": [np.nan, 0.5, np.nan, np.nan],
            "ci_high": [np.nan, 0.7, np.nan, np.nan],
        }
    )
    fig = plots.plot_exposure_response(table, "sessions_band")
    (ax,) = fig.axes
    renderer = _drawn(fig)
    frame = ax.get_window_extent(renderer)
    labels = [t for t in ax.texts if t.get_text() == "suppressed"]
    assert len(labels) == 3
    for text in labels:
        box = text.get_window_extent(renderer)
        assert frame.x0 < box.x0 and box.x1 < frame.x1


def test_plot_rates_human_labels(demo):
    cohort, ep = demo
    exposure = ep.merge(patient_exposure(cohort), on="patient_id")
    table = rate_table(
        exposure[exposure["instrument"] == "GAD7"],
        "response",
        by=("instrument", "visit", "phase_group"),
    )
    fig = plots.plot_rates(table, group="phase_group", human_labels=True)
    (ax,) = fig.axes
    assert ax.get_title() == "GAD-7"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Induction only",
        "Induction and maintenance",
    ]
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "Day 1"


def test_safety_figures_show_labels_not_codes():
    """Report 05's figures read "IV ketamine" and "Elevated blood pressure", not ``iv``
    and ``elevated_blood_pressure``; ``human_labels=False`` keeps the codes."""
    from analysis.plots import plot_adverse_events, plot_blood_pressure, plot_dissociation
    from analysis.safety import adverse_event_table, blood_pressure_table, dissociation_table

    cohort = synthetic_cohort(n_patients=200, seed=1)
    ae = adverse_event_table(cohort, min_cell=11)
    (ax,) = plot_adverse_events(ae).axes
    terms = [t.get_text() for t in ax.get_yticklabels()]
    assert "Elevated blood pressure" in terms and "Any adverse event" in terms
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"IV ketamine", "Oral ketamine"} <= set(legend)
    assert not {"iv", "oral"} & set(legend)
    assert ax.get_legend().get_title().get_text() == "Route"
    # A suppressed cell's marker still sits in its group's slot of its term.
    hidden = ae[ae["percent"].isna()]
    assert len(hidden) and plots.SUPPRESSED_LABEL in legend
    marks = ax.collections[-1].get_offsets()[:, 1]
    levels = list(dict.fromkeys(ae["route"]))
    codes = list(dict.fromkeys(ae["term"]))
    width = 0.8 / len(levels)
    expected = [
        codes.index(t) - 0.4 + width * (levels.index(r) + 0.5)
        for t, r in zip(hidden["term"], hidden["route"], strict=True)
    ]
    assert sorted(marks) == pytest.approx(sorted(expected))
    (ax,) = plot_adverse_events(ae, human_labels=False).axes
    assert "elevated_blood_pressure" in [t.get_text() for t in ax.get_yticklabels()]
    assert "iv" in [t.get_text() for t in ax.get_legend().get_texts()]

    (ax,) = plot_blood_pressure(blood_pressure_table(cohort, min_cell=11)).axes
    assert "IV ketamine" in [t.get_text() for t in ax.get_xticklabels()]
    assert ax.get_xlabel() == "Route"

    table = dissociation_table(cohort, by=("route", "session_number"), min_cell=11)
    (ax,) = plot_dissociation(table, x="session_number").axes
    assert "IV ketamine" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_legend().get_title().get_text() == "Route"
    (ax,) = plot_dissociation(dissociation_table(cohort, min_cell=11)).axes
    assert "IV ketamine" in [t.get_text() for t in ax.get_xticklabels()]
    assert ax.get_xlabel() == "Route"


def test_an_adverse_event_figure_without_bars_has_a_percent_axis_and_says_why():
    """A 40-patient program hides every adverse-event cell but two zeros: the axis ran
    from -0.05 to 0.05 around the suppressed marks, and the "nothing to show" text lay
    under the marks in the middle of the panel."""
    from analysis.plots import plot_adverse_events
    from analysis.safety import adverse_event_table

    ae = adverse_event_table(synthetic_cohort(n_patients=40, seed=7), min_cell=11)
    assert not (ae["percent"] > 0).any() and ae["percent"].isna().any()
    (ax,) = plot_adverse_events(ae).axes
    assert ax.get_xlim() == (0.0, 100.0)
    (ax,) = plot_adverse_events(ae.assign(percent=float("nan"))).axes
    assert ax.get_xlim() == (0.0, 100.0)
    (text,) = [t for t in ax.texts if t.get_text() == plots.EMPTY_PANEL_TEXT]
    marks = max(c.get_zorder() for c in ax.collections)
    assert text.get_zorder() > marks and text.get_bbox_patch() is not None
    # with bars, the axis starts at 0 and ends past the longest bar
    ae = adverse_event_table(synthetic_cohort(n_patients=300, seed=7), min_cell=11)
    (ax,) = plot_adverse_events(ae).axes
    low, high = ax.get_xlim()
    assert low == 0 and ae["percent"].max() <= high < 100 * 1.2


def test_safety_figures_moved_with_deprecated_aliases():
    import analysis.safety as safety

    for name in ("plot_adverse_events", "plot_blood_pressure", "plot_dissociation"):
        with pytest.warns(DeprecationWarning, match=f"analysis.plots.{name}"):
            assert getattr(safety, name) is getattr(plots, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            safety.plot_nothing  # noqa: B018


def test_figures_display_in_a_fresh_notebook_without_matplotlib_inline():
    """A returned figure shows as an image/png output, with no `%matplotlib inline`."""
    import nbformat
    from nbclient import NotebookClient

    from analysis.reports import _kernel_manager_class

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import pandas as pd\n"
            "from analysis.plots import plot_completeness\n"
            "plot_completeness(pd.DataFrame({'instrument': ['GAD7'], 'visit': ['week1'],"
            " 'percent': [50.0]}))"
        )
    ]
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        kernel_manager_class=_kernel_manager_class(),
    )
    client.execute()
    outputs = nb.cells[0].outputs
    assert len(outputs) == 1
    assert "image/png" in outputs[0]["data"]


def test_human_labels_on_the_older_figures():
    table = pd.DataFrame(
        {"instrument": ["GAD7", "HAMA"], "visit": ["week1", "week12"], "percent": [80.0, 60.0]}
    )
    (ax,) = plots.plot_completeness(table, human_labels=True).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Week 1", "Week 12"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GAD-7", "HAM-A"]
    lsm = pd.DataFrame(
        {
            "route": ["iv", "oral"],
            "visit": ["week2", "week2"],
            "estimate": [-5.0, -4.0],
            "ci_low": [-6.0, -5.0],
            "ci_high": [-4.0, -3.0],
        }
    )
    (ax,) = plots.plot_change_trajectory(lsm, human_labels=True).axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["IV ketamine", "Oral ketamine"]
    assert ax.get_legend().get_title().get_text() == "Route"


def test_a_figure_is_described_by_its_panels_labels_and_series():
    # The report pages give each figure's image this text as its alt (the reports test
    # that no image keeps nbconvert's "No description has been provided").
    cohort = synthetic_cohort(60, seed=1)
    fig = plot_completeness(completeness_table(cohort))
    text = plots._alt_text(fig)
    assert text.startswith("Figure. ") and text.endswith(".")
    ax = fig.axes[0]
    assert f"{ax.get_ylabel()} by {ax.get_xlabel()}" in text
    for name in (t.get_text() for t in ax.get_legend().get_texts()):
        assert name in text
    flow = plots.plot_patient_flow(patient_flow(cohort, min_cell=11))  # boxes of text only
    assert "Treated with ketamine" in plots._alt_text(flow)
    assert plots._alt_text(plots.ReportFigure()) == "Figure."  # nothing to say
