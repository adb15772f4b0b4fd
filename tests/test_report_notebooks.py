"""Report notebooks 02-05 (outcomes, effect sizes, durability, safety) and their figures.

The notebooks are run once per test run on a small synthetic cohort; the checks are the
ones specific to these reports: every table they promise is saved, no count of people
between 1 and min_cell - 1 reaches a CSV, and the runs are clean. The suite-wide checks
(stripped outputs, parameter cell, no logic in cells) live in ``test_notebooks.py``.
"""

from __future__ import annotations

import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.plots import (
    plot_change_trajectory,
    plot_cumulative_incidence,
    plot_effect_sizes,
    plot_rates,
)

MIN_CELL = 11  # the reports' default (CMS rule)

#: Per report: table -> columns counting patients (each must be 0 or >= MIN_CELL) and
#: (part, whole) pairs whose difference counts patients too.
TABLES = {
    "outcomes": {
        "rates_by_visit": (["n", "events"], [("events", "n")]),
        "response_by_route_visit": (["n", "events"], [("events", "n")]),
        "week4_by_route": (["n", "events"], [("events", "n")]),
        "week4_by_diagnosis": (["n", "events"], [("events", "n")]),
        "week4_response_route_vs_iv": (
            ["n", "events", "n_ref", "events_ref"],
            [("events", "n"), ("events_ref", "n_ref")],
        ),
        "week4_imputation_sensitivity": (["n", "events"], [("events", "n")]),
        "week4_response_mi_route_vs_iv": (["n", "n_ref"], []),
        "week4_response_tipping_point": (["n", "n_ref"], []),
        "week4_response_tipping_point_grid": (["n", "n_ref"], []),
        "endpoint_accounting": (["assessments"], []),
        "gad7_severity_transitions_week4": (["patients"], []),
        "week4_response_subgroups": (
            ["n", "events", "n_ref", "events_ref"],
            [("events", "n"), ("events_ref", "n_ref")],
        ),
        "gad7_week4_by_dose": (["n", "events"], [("events", "n")]),
        "gad7_week4_by_sessions": (["n", "events"], [("events", "n")]),
        "gad7_response_by_phase": (["n", "events"], [("events", "n")]),
    },
    "effect_sizes": {
        "within_patient_effect_sizes": (["n1", "n2"], []),
        "between_route_effect_sizes": (["n1", "n2"], []),
        "gad7_mmrm_lsmeans": ([], []),
        "gad7_mmrm_route_vs_iv": ([], []),
        "hama_mmrm_lsmeans": ([], []),
        "hama_mmrm_route_vs_iv": ([], []),
        "mean_scores_by_route": (["n"], []),
    },
    "durability": {
        "gad7_median_time_to_response": (["n", "n_events"], [("n_events", "n")]),
        "gad7_time_to_response_logrank": ([], []),
        "gad7_median_response_duration": (["n", "n_events"], [("n_events", "n")]),
        "gad7_response_duration_logrank": ([], []),
        "gad7_hama_agreement_week4": (["n"], []),
    },
    "safety": {
        "exposure": (
            ["n_patients", "induction_completed", "maintenance_patients"],
            [("induction_completed", "induction_n"), ("maintenance_patients", "n_patients")],
        ),
        "adverse_events": (["n", "patients", "events"], [("patients", "n")]),
        "blood_pressure": (["n_patients"], []),
        "dissociation": (["n_patients"], []),
        "dissociation_by_session": (["n_patients"], []),
    },
}


@pytest.fixture
def rendered(rendered_reports):
    """All reports, rendered once per test run (conftest.py)."""
    return rendered_reports


@pytest.mark.slow
@pytest.mark.parametrize("report", list(TABLES))
def test_report_saves_its_tables(rendered, report):
    out, manifest = rendered
    entry = next(r for r in manifest["reports"] if r["name"] == report)
    expected = {f"tables/{report}/{name}.csv" for name in TABLES[report]}
    assert set(entry["tables"]) == expected
    for name in TABLES[report]:
        assert len(pd.read_csv(out / "tables" / report / f"{name}.csv")) > 0, name


@pytest.mark.slow
@pytest.mark.parametrize("report", list(TABLES))
def test_saved_tables_show_no_small_counts_of_people(rendered, report):
    out, _ = rendered
    for name, (counts, parts) in TABLES[report].items():
        table = pd.read_csv(out / "tables" / report / f"{name}.csv")
        for column in counts:
            values = pd.to_numeric(table[column]).dropna()
            assert not values.between(1, MIN_CELL - 1).any(), (name, column)
        for part, whole in parts:
            both = table[[part, whole]].apply(pd.to_numeric).dropna()
            assert not (both[whole] - both[part]).between(1, MIN_CELL - 1).any(), (name, part)


@pytest.mark.slow
def test_durability_hides_the_responders_the_time_to_response_table_hides(rendered):
    # Durability counts responders: its n is the time-to-response table's n_events. The
    # demo at 60 patients showed IV's 19 responders of 26 patients (7 never responded)
    # that the time-to-response table hid.
    out, _ = rendered
    folder = out / "tables" / "durability"
    response = pd.read_csv(folder / "gad7_median_time_to_response.csv").set_index("group")
    duration = pd.read_csv(folder / "gad7_median_response_duration.csv").set_index("group")
    assert (duration["among"] == "responders").all()
    hidden = response.index[response["n_events"].isna()]
    assert len(hidden) > 0  # the demo at 60 patients has such routes
    assert duration.loc[duration.index.isin(hidden), ["n", "n_events"]].isna().all().all()
    shown = duration["n"].dropna()
    assert (shown == response.loc[shown.index, "n_events"]).all()


@pytest.mark.slow
def test_suppressed_comparison_rows_hide_every_statistic(rendered):
    out, _ = rendered
    table = pd.read_csv(out / "tables/outcomes/week4_response_route_vs_iv.csv")
    hidden = table[table["suppressed"]]
    assert not hidden.empty
    # nnt_note is text that repeats the numbers: it is blanked with them.
    for column in ("risk_difference", "rd_ci_low", "nnt", "odds_ratio", "p_value", "nnt_note"):
        assert hidden[column].isna().all(), column


@pytest.mark.slow
@pytest.mark.parametrize("report", list(TABLES))
def test_report_ran_clean_with_figures_and_no_code(rendered, report):
    out, manifest = rendered
    entry = next(r for r in manifest["reports"] if r["name"] == report)
    nb = nbformat.read(out / entry["notebook"], as_version=4)
    noise = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
    ]
    assert not noise, f"errors or warnings in {report}"
    page = (out / entry["html"]).read_text(encoding="utf-8")
    assert "<img" in page and "References" in page
    assert "import " not in page and "save_table(" not in page


# --------------------------------------------------------------------------------------
# figures of analysis.plots (fast; drawn from hand-made tables)


def _rates() -> pd.DataFrame:
    visits = ["day1", "week1", "week12", "week4"]  # deliberately not in schedule order
    return pd.DataFrame(
        {
            "instrument": ["GAD7"] * 8,
            "visit": visits * 2,
            "route": ["iv"] * 4 + ["oral"] * 4,
            "rate": [0.2, 0.5, 0.4, 0.6, 0.1, np.nan, 0.3, 0.5],
            "ci_low": [0.1, 0.4, 0.3, 0.5, 0.05, np.nan, 0.2, 0.4],
            "ci_high": [0.3, 0.6, 0.5, 0.7, 0.2, np.nan, 0.4, 0.6],
        }
    )


def test_plot_rates_orders_visits_by_schedule_and_leaves_gaps():
    fig = plot_rates(_rates(), group="route")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["day1", "week1", "week4", "week12"]
    assert ax.get_ylim() == (0, 100)
    # the suppressed oral week1 cell is a marker with a legend entry, not a gap
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["iv", "oral", "suppressed (small cell)"]


def test_plot_change_trajectory_and_effect_sizes():
    table = _rates().rename(columns={"rate": "estimate"})
    fig = plot_change_trajectory(table, group="route")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "day1",
        "week1",
        "week4",
        "week12",
    ]
    fig = plot_effect_sizes(table, group="route")
    assert isinstance(fig, Figure) and fig.axes[0].get_legend() is not None


def test_plot_cumulative_incidence_leaves_out_small_groups():
    km = pd.DataFrame(
        {
            "group": ["iv", "iv", "oral"],
            "time": [7, 14, 7],
            "n_at_risk": [40, 30, 6],
            "n_events": [10, 12, 2],
            "survival": [0.75, 0.45, 0.67],
            "ci_low": [0.6, 0.3, 0.2],
            "ci_high": [0.85, 0.6, 0.9],
        }
    )
    fig = plot_cumulative_incidence(km, min_cell=11)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["IV ketamine", "Oral ketamine: fewer than 11, not shown"]
    iv = ax.get_lines()[0]
    # 1 - S: starts at 0%, then 25% and 55%.
    assert iv.get_ydata().tolist() == pytest.approx([0, 25, 55])
    fig = plot_cumulative_incidence(km, cumulative=False)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == pytest.approx([100, 75, 45])
