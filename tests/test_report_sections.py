"""Report sections that degrade gracefully (analysis.report_sections), without a kernel."""

from __future__ import annotations

import _report_cohorts as cohorts
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.mmrm import MMRMFitError, fit_mmrm
from analysis.plots import plot_completeness
from analysis.report_sections import (
    NotAvailable,
    compare_section,
    fit_report_mmrm,
    report_endpoints,
    section,
)
from analysis.reports import save_table
from analysis.tables import cohort_endpoints, completeness_table, visits_in_schedule_order

RELIABLE = ["reliable_improvement", "reliable_deterioration", "reliable_recovery"]


def test_section_passes_results_and_explains_refusals():
    table = pd.DataFrame({"x": [1, 2]})
    assert section("Sum", lambda df: int(df["x"].sum()), table) == 3
    empty = section("Sum", lambda df: int(df["x"].sum()), table.iloc[:0])
    assert isinstance(empty, NotAvailable) and "no data" in empty.reason

    def refuse(df):
        raise MMRMFitError("The model has 21 parameters but 14 subjects. Use fewer.")

    refused = section("Model", refuse, table)
    assert refused.reason == "The model has 21 parameters but 14 subjects"
    assert str(refused) == "Model: not available; The model has 21 parameters but 14 subjects."
    # An unavailable input makes the next section unavailable for the same reason.
    chained = section("Figure", lambda t: 1 / 0, refused)
    assert chained == NotAvailable("Figure", refused.reason)
    assert section("Division", lambda t: 1 / 0, table).reason == "division by zero"


def test_section_lets_bugs_through():
    with pytest.raises(TypeError):
        section("Bug", lambda df: df + None, pd.DataFrame({"x": [1]}).x.tolist())


def test_compare_section_checks_groups_reference_and_events():
    calls = []

    def compare(data, reference=None):
        calls.append(reference)
        return "compared"

    one = pd.DataFrame({"route": ["iv", "iv", None]})
    assert "only one route (iv)" in compare_section("C", compare, one, groups="route").reason
    no_ref = pd.DataFrame({"route": ["im", "oral"]})
    result = compare_section("C", compare, no_ref, groups="route", reference="iv")
    assert "reference route (iv)" in result.reason
    no_events = pd.DataFrame({"route": ["iv", "im"], "time": [7, 14], "event": [0, 0]})
    assert "not defined" in compare_section("C", compare, no_events, groups="route").reason
    assert calls == []
    both = pd.DataFrame({"route": ["iv", "im"], "time": [7, 14], "event": [1, 0]})
    assert compare_section("C", compare, both, groups="route", reference="iv") == "compared"
    assert calls == ["iv"]


def test_save_table_writes_nothing_for_an_unavailable_section(tmp_path):
    note = NotAvailable("Table", "only one route (iv) in these data")
    assert save_table(note, "table", tmp_path) is note
    assert not any(tmp_path.iterdir())


def test_report_endpoints_leaves_hama_reliable_change_undefined_for_totals_only():
    cohort = cohorts.hama_totals_only()
    with pytest.raises(ValueError, match="Cronbach"):
        cohort_endpoints(cohort)
    endpoints, notes = report_endpoints(cohort, patient_columns=("route",))
    hama = endpoints[endpoints["instrument"] == "HAMA"]
    gad7 = endpoints[endpoints["instrument"] == "GAD7"]
    assert len(hama) and hama[RELIABLE].isna().all().all()
    assert len(notes) == 1 and notes[0].startswith("HAM-A reliable change is not defined")
    assert notes.criteria == {"HAMA": {"reliable_change": np.inf}}
    # Every other column is what a given reliability would give (they do not use it).
    reference = cohort_endpoints(
        cohort, patient_columns=("route",), criteria={"HAMA": {"reliability": 0.9}}
    )
    kept = [c for c in endpoints.columns if c not in RELIABLE]
    pd.testing.assert_frame_equal(endpoints[kept], reference[kept])
    # The GAD-7 (fixed 4-point threshold) keeps its reliable change.
    assert gad7["reliable_improvement"].notna().all()


def test_report_endpoints_is_cohort_endpoints_when_everything_is_defined():
    cohort = cohorts.all_iv()
    endpoints, notes = report_endpoints(cohort, patient_columns=("route",))
    pd.testing.assert_frame_equal(endpoints, cohort_endpoints(cohort, patient_columns=("route",)))
    assert list(notes) == [] and notes.criteria is None
    assert "Every outcome definition applies" in notes._repr_markdown_()


def _gad7(cohort):
    endpoints = cohort_endpoints(cohort, "GAD7", patient_columns=("route",))
    return visits_in_schedule_order(endpoints)


def test_fit_report_mmrm_falls_back_to_the_next_covariance_that_fits():
    data = _gad7(cohorts.small_program())
    with pytest.raises(MMRMFitError, match="parameters but there are only"):
        fit_mmrm(data, "change ~ baseline + visit", subject="patient_id", visit="visit")
    fit = fit_report_mmrm(data, "change ~ baseline + visit", subject="patient_id", visit="visit")
    assert fit.covariance == "csh" and fit.formula == "change ~ baseline + visit"
    assert "unstructured (us) covariance could not be fitted" in fit.notes[0]
    assert "heterogeneous compound symmetry (csh)" in fit._repr_markdown_()
    direct = fit_mmrm(
        data, "change ~ baseline + visit", subject="patient_id", visit="visit", covariance="csh"
    )
    pd.testing.assert_series_equal(fit.result.params, direct.params)
    assert fit.summary().startswith("The unstructured (us) covariance could not be fitted")


def test_fit_report_mmrm_falls_back_to_a_simpler_formula():
    # A covariate never recorded: the first model cannot be fitted with any covariance.
    data = _gad7(cohorts.small_program()).assign(phq9=np.nan)
    formula = "change ~ baseline + phq9 + visit"
    with pytest.raises(MMRMFitError):
        fit_mmrm(data, formula, subject="patient_id", visit="visit", covariance="ar1")
    fit = fit_report_mmrm(
        data, formula, subject="patient_id", visit="visit", simpler=["change ~ baseline + visit"]
    )
    assert fit.formula == "change ~ baseline + visit" and fit.covariance == "csh"
    assert f"The model `{formula}` could not be fitted" in fit.notes[0]
    lsmeans = fit.lsmeans("visit")
    assert isinstance(lsmeans, pd.DataFrame) and len(lsmeans) == data["visit"].nunique()


def test_fit_report_mmrm_without_any_fit_says_so():
    data = _gad7(cohorts.all_iv()).query("patient_id == patient_id.min()")
    fit = fit_report_mmrm(data, "change ~ visit", subject="patient_id", visit="visit")
    assert fit.result is None and "at least two patients" in fit.notes[0]
    # Two patients observed at different visits only: no structure can be fitted.
    two = _gad7(cohorts.all_iv())
    first, second = sorted(two["patient_id"].unique())[:2]
    two = two[
        ((two["patient_id"] == first) & (two["visit"] == "week1"))
        | ((two["patient_id"] == second) & (two["visit"] == "week4"))
    ]
    none = fit_report_mmrm(two, "change ~ visit", subject="patient_id", visit="visit")
    assert none.result is None and none.notes[0].startswith("No MMRM could be fitted")
    assert isinstance(fit.lsmeans("visit"), NotAvailable)
    assert isinstance(fit.pairwise("visit"), NotAvailable)
    assert isinstance(fit.summary(), NotAvailable)
    empty = fit_report_mmrm(data.iloc[:0], "change ~ visit", subject="patient_id", visit="visit")
    assert empty.result is None and "no post-baseline visits" in empty.notes[0]


def test_mmrm_contrasts_with_one_route_are_not_available():
    data = _gad7(cohorts.all_iv())
    fit = fit_report_mmrm(
        data, "change ~ baseline + route + visit", subject="patient_id", visit="visit"
    )
    contrasts = fit.pairwise("route", reference="iv")
    assert isinstance(contrasts, NotAvailable) and "only one route" in contrasts.reason


def test_plot_completeness_of_header_only_tables():
    table = completeness_table(cohorts.header_only(), min_cell=11)
    assert len(table) == 0
    assert isinstance(plot_completeness(table), Figure)
