"""Disclosure control (analysis.disclosure): one policy for every table, figure and file.

Policy (docs/references.md "De-identification and disclosure"): CMS cell-size suppression, no
cell of 1-10 nor any value from which one can be derived; secondary (complementary)
suppression as in Hundepool et al. (2012), Statistical Disclosure Control, ch. 5.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

import analysis
from analysis import disclosure
from analysis.cli import main as cli_main
from analysis.disclosure import (
    audit_report_dir,
    audit_table,
    check_min_cell,
    complementary_mask,
    suppress_cells,
    suppress_group_statistics,
    suppress_small_groups,
)
from analysis.endpoints import endpoint_accounting
from analysis.plots import (
    SUPPRESSED_LABEL,
    plot_adverse_events,
    plot_cumulative_incidence,
    plot_rates,
    plot_waterfall,
)
from analysis.rates import (
    adjusted_compare_rates,
    compare_rates,
    compare_rates_stratified,
    rate_table,
    suppress_small_cells,
)
from analysis.reports import save_table
from analysis.safety import (
    adverse_event_table,
    blood_pressure_table,
    dissociation_table,
    dose_summary,
)
from analysis.survival import kaplan_meier, median_time_to_event, time_to_event
from analysis.synthetic import synthetic_cohort
from analysis.tables import (
    accounting_summary,
    agreement_table,
    assessments_per_patient,
    cohort_endpoints,
    completeness_table,
    imputation_sensitivity,
    item_missingness,
    outcome_rates,
    table_one,
)

BAD_MIN_CELL = [0, -3, True, False, 1.5, "11", 11.0]


@functools.cache
def small_cohort():
    return synthetic_cohort(n_patients=120, seed=3)


@functools.cache
def endpoints():
    return cohort_endpoints(small_cohort(), patient_columns=("route", "primary_diagnosis"))


@functools.cache
def _week4():
    return endpoints().query("visit == 'week4'")


@functools.cache
def _accounting():
    return endpoint_accounting(small_cohort())


@functools.cache
def _gad7_tte():
    return time_to_event(endpoints().query("instrument == 'GAD7'"), "response")


# Every public function that outputs counts or group statistics, called with `min_cell`.
COUNT_FUNCTIONS = {
    "rate_table": lambda m: rate_table(endpoints(), min_cell=m),
    "compare_rates": lambda m: compare_rates(
        _week4(), "response", "route", reference="iv", min_cell=m
    ),
    "compare_rates_stratified": lambda m: compare_rates_stratified(
        _week4(), "response", "route", "primary_diagnosis", reference="iv", min_cell=m
    ),
    "adjusted_compare_rates": lambda m: adjusted_compare_rates(
        _week4(), "response", "route", reference="iv", min_cell=m
    ),
    "effect_size_table": lambda m: analysis.effect_size_table(
        _week4(), group="route", reference="iv", min_cell=m
    ),
    "kaplan_meier": lambda m: kaplan_meier(_gad7_tte(), group="route", min_cell=m),
    "median_time_to_event": lambda m: median_time_to_event(_gad7_tte(), group="route", min_cell=m),
    "table_one": lambda m: table_one(small_cohort(), by="route", min_cell=m),
    "completeness_table": lambda m: completeness_table(small_cohort(), min_cell=m),
    "item_missingness": lambda m: item_missingness(small_cohort().assessments, min_cell=m),
    "assessments_per_patient": lambda m: assessments_per_patient(
        small_cohort().assessments, min_cell=m
    ),
    "outcome_rates": lambda m: outcome_rates(endpoints(), min_cell=m),
    "mean_scores": lambda m: analysis.tables.mean_scores(endpoints(), min_cell=m),
    "imputation_sensitivity": lambda m: imputation_sensitivity(small_cohort(), min_cell=m),
    "accounting_summary": lambda m: accounting_summary(_accounting(), min_cell=m),
    "agreement_table": lambda m: agreement_table(endpoints(), min_cell=m),
    "adverse_event_table": lambda m: adverse_event_table(small_cohort(), min_cell=m),
    "blood_pressure_table": lambda m: blood_pressure_table(small_cohort(), min_cell=m),
    "dissociation_table": lambda m: dissociation_table(small_cohort(), min_cell=m),
    "dose_summary": lambda m: dose_summary(small_cohort(), min_cell=m),
    "suppress_small_cells": lambda m: suppress_small_cells(
        pd.DataFrame({"n": [20], "events": [3]}), min_cell=m
    ),
    "plot_cumulative_incidence": lambda m: plot_cumulative_incidence(
        kaplan_meier(_gad7_tte(), group="route"), min_cell=m
    ),
    "number_at_risk": lambda m: disclosure.number_at_risk(
        _gad7_tte().merge(small_cohort().patients[["patient_id", "route"]]),
        group="route",
        min_cell=m,
    ),
}


@pytest.mark.parametrize("name", sorted(COUNT_FUNCTIONS))
@pytest.mark.parametrize("bad", BAD_MIN_CELL, ids=repr)
def test_every_count_function_refuses_an_invalid_min_cell(name, bad):
    with pytest.raises(ValueError, match="`min_cell` must be a positive integer"):
        COUNT_FUNCTIONS[name](bad)


def test_imputation_sensitivity_refuses_min_cell_before_deriving(monkeypatch):
    # It derived the endpoints once per imputation method (about 0.3 s here) before
    # outcome_rates refused the min_cell.
    import analysis.tables

    def derive(*args, **kwargs):
        raise AssertionError("derived before checking min_cell")

    monkeypatch.setattr(analysis.tables, "cohort_endpoints", derive)
    with pytest.raises(ValueError, match="`min_cell` must be a positive integer"):
        imputation_sensitivity(small_cohort(), min_cell=0)


@pytest.mark.parametrize("name", sorted(COUNT_FUNCTIONS))
def test_every_count_function_accepts_none_and_a_numpy_integer(name):
    if name == "suppress_small_cells":  # its min_cell is required (default 11)
        with pytest.raises(ValueError, match="but None was passed"):
            COUNT_FUNCTIONS[name](None)
    else:
        COUNT_FUNCTIONS[name](None)
    COUNT_FUNCTIONS[name](np.int64(11))


def test_check_min_cell_is_the_one_validator():
    assert check_min_cell(11) == 11 and check_min_cell(None) is None
    with pytest.raises(ValueError, match="or None"):
        check_min_cell(0)
    with pytest.raises(ValueError, match=r"\(11 for the CMS rule\), but None"):
        check_min_cell(None, optional=False)
    from analysis._utils import check_min_cell as utils_check

    with pytest.raises(ValueError, match="`min_cell` must be a positive integer"):
        utils_check(-3)


# ----------------------------------------------------------------------------- the rules


def test_primary_rule_blanks_small_counts_complements_and_derived_values():
    t = pd.DataFrame({"site": list("abcd"), "n": [40, 40, 6, 40], "events": [12, 35, 3, 0]}).assign(
        rate=lambda d: d["events"] / d["n"]
    )
    out = suppress_cells(t, 11, total="n")
    assert out["suppressed"].tolist() == [False, True, True, False]
    assert out["events"].isna().tolist() == [False, True, True, False]
    assert out["rate"].isna().tolist() == [False, True, True, False]
    assert out["n"].isna().tolist() == [False, False, True, False]  # n only when small
    assert out.loc[3, "events"] == 0  # zero is shown


def test_complementary_suppression_hides_the_next_smallest_cell_of_a_margin():
    # week4_by_diagnosis (issue 9): OTHER's n blank but 249 - 239 = 10.
    t = pd.DataFrame(
        {
            "dx": ["GAD", "PD", "PTSD", "OTHER"],
            "n": [150, 50, 39, 10],
            "events": [60, 20, 15, 4],
        }
    )
    out = suppress_cells(t, 11, total="n", margins=[[]])
    assert out["n"].isna().tolist() == [False, False, True, True]
    assert out["events"].isna().tolist() == [False, False, True, True]
    # whatever is shown, no margin has exactly one hidden cell
    assert out["n"].isna().sum() != 1 and out["events"].isna().sum() != 1


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(st.integers(0, 60), min_size=2, max_size=8),
    groups=st.integers(1, 3),
    min_cell=st.integers(2, 15),
)
def test_property_no_margin_has_exactly_one_hidden_cell(cells, groups, min_cell):
    labels = np.arange(len(cells)) % groups
    hidden = disclosure.small_count(cells, min_cell)
    mask = complementary_mask(cells, hidden, [labels])
    assert (mask >= hidden).all()
    for g in range(groups):
        members = labels == g
        assert mask[members].sum() != 1 or members.sum() == 1
    shown = np.asarray(cells)[~mask]
    assert not ((shown >= 1) & (shown < min_cell)).any()


def test_hidden_cells_of_a_margin_add_up_to_zero_or_at_least_min_cell():
    # Two small diagnoses of 2 and 3 patients, both hidden: the shown total (Table 1's n)
    # minus the shown rows gives 5, the people of the two together. The next smallest
    # shown cell is hidden too (issue 9, session 5).
    values, primary = [150, 50, 2, 3], [False, False, True, True]
    assert complementary_mask(values, primary, [np.zeros(4)]).tolist() == primary  # old form
    mask = complementary_mask(values, primary, [np.zeros(4)], min_cell=11)
    assert mask.tolist() == [False, True, True, True]
    # 6 + 7 = 13 people is no small count: nothing more is hidden
    mask = complementary_mask([150, 50, 6, 7], primary, [np.zeros(4)], min_cell=11)
    assert mask.tolist() == primary
    # hiding a zero would not change the sum: the smallest non-zero cell goes
    mask = complementary_mask([0, 150, 50, 2, 3], [False, False, False, True, True],
                              [np.zeros(5)], min_cell=11)  # fmt: skip
    assert mask.tolist() == [False, False, True, True, True]
    with pytest.raises(ValueError, match="min_cell"):
        complementary_mask(values, primary, [np.zeros(4)], min_cell=0)
    t = pd.DataFrame({"dx": ["GAD", "PD", "PTSD", "OTHER"], "n": [150, 50, 2, 3]})
    out = suppress_cells(t, 11, (), total="n", margins=[[]])
    assert out["n"].isna().tolist() == [False, True, True, True]


def test_audit_finds_hidden_cells_whose_sum_is_a_small_count():
    t = pd.DataFrame({"route": ["iv", "im", "oral", "Overall"], "n": [150, None, None, 155]})
    found = audit_table(t, 11, name="by_route")
    assert found[["table", "row", "check"]].values.tolist() == [
        ["by_route", 1, "hidden_sum"],
        ["by_route", 2, "hidden_sum"],
    ]
    assert audit_table(t.assign(n=[150, None, None, 180]), 11).empty  # 30 together
    # the same across tables: the total shown in another table
    by_route = t.iloc[:3]
    overall = pd.DataFrame({"route": ["Overall"], "n": [155]})
    found = disclosure.cross_table_findings(
        [("r.csv", "by_route", by_route), ("o.csv", "overall", overall)], min_cell=11
    )
    assert found[["table", "row", "check"]].values.tolist() == [
        ["by_route", 1, "hidden_sum"],
        ["by_route", 2, "hidden_sum"],
    ]
    # Table 1 layout: Overall minus the shown groups
    t1 = pd.DataFrame({"variable": ["n"], "level": [""], "im": ["<11"], "iv": ["150"],
                       "oral": ["<11"], "Overall": ["155"]})  # fmt: skip
    found = audit_table(t1, 11, name="table_one")
    assert set(found.loc[found["check"] == "hidden_sum", "column"]) == {"im", "oral"}


@settings(max_examples=80, deadline=None)
@given(
    grid=st.lists(
        st.lists(st.integers(0, 40), min_size=2, max_size=5), min_size=1, max_size=4
    ).filter(lambda g: len({len(r) for r in g}) == 1),
    min_cell=st.integers(2, 15),
)
@example(grid=[[150, 50, 2, 3]], min_cell=11)
def test_property_hidden_cells_of_every_margin_add_up_to_zero_or_min_cell(grid, min_cell):
    values = np.asarray(grid, dtype=float)
    rows, cols = np.indices(values.shape)
    margins = [rows.ravel(), cols.ravel()] if values.shape[0] > 1 else [rows.ravel()]
    flat = values.ravel()
    mask = complementary_mask(flat, disclosure.small_count(flat, min_cell), margins,
                              min_cell=min_cell)  # fmt: skip
    assert not disclosure.small_count(flat[~mask], min_cell).any()
    for labels in margins:
        for g in np.unique(labels):
            members = labels == g
            hidden_sum = flat[members & mask].sum()
            shown_positive = (flat[members & ~mask] > 0).any()
            assert not (0 < hidden_sum < min_cell) or not shown_positive
            assert mask[members].sum() != 1 or members.sum() == 1 or not (~mask[members]).any()


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=2, max_size=6),
    min_cell=st.integers(2, 15),
)
def test_property_suppress_cells_never_shows_a_small_count_or_complement(sizes, min_cell):
    n = [a + b for a, b in sizes]
    events = [a for a, _ in sizes]
    out = suppress_cells(
        pd.DataFrame({"g": range(len(n)), "n": n, "events": events}),
        min_cell,
        total="n",
        margins=[[]],
    )
    shown_n = out["n"].dropna().astype(int)
    shown_e = out["events"].dropna().astype(int)
    assert not shown_n.between(1, min_cell - 1).any()
    assert not shown_e.between(1, min_cell - 1).any()
    both = out.dropna(subset=["n", "events"])
    assert not (both["n"] - both["events"]).astype(int).between(1, min_cell - 1).any()
    assert out["n"].isna().sum() != 1


@given(
    values=st.lists(st.one_of(st.none(), st.integers(-3, 30), st.floats(-3, 30)), max_size=8),
    integers=st.booleans(),
    min_cell=st.integers(1, 15),
)
def test_small_count_of_numbers_equals_the_parsing_path(values, integers, min_cell):
    """The numpy shortcut for arrays of numbers flags what parsing each value flags."""
    if integers:
        values = [int(v) for v in values if v is not None]
    array = np.array(values, dtype=np.int64 if integers else float)  # None -> NaN
    parsed = disclosure.small_count(values, min_cell)  # a list: parsed one by one
    assert disclosure.small_count(array, min_cell).tolist() == parsed.tolist()


@given(
    column=st.one_of(
        st.lists(st.floats(allow_nan=True), min_size=3, max_size=3).map(pd.Series),
        st.lists(st.integers(0, 9), min_size=3, max_size=3).map(pd.Series),
        st.lists(st.booleans(), min_size=3, max_size=3).map(pd.Series),
        st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=3, max_size=3).map(
            lambda v: pd.Series(v, dtype="Int64")
        ),
        st.lists(st.one_of(st.none(), st.floats(0, 9)), min_size=3, max_size=3).map(
            lambda v: pd.Series(v, dtype="Float64")
        ),
        st.lists(st.one_of(st.none(), st.booleans()), min_size=3, max_size=3).map(
            lambda v: pd.Series(v, dtype="boolean")
        ),
        st.lists(st.one_of(st.none(), st.text(max_size=2)), min_size=3, max_size=3).map(
            lambda v: pd.Series(v, dtype=object)
        ),
    ),
    mask=st.lists(st.booleans(), min_size=3, max_size=3).map(np.array),
)
def test_blanking_a_column_equals_the_series_mask_of_the_typed_column(column, mask):
    """Blanking masks the typed column's array: the column ``Series.mask`` gives."""
    out = pd.DataFrame({"c": column})
    disclosure._blank(out, "c", mask)
    if pd.api.types.is_bool_dtype(column.dtype):
        expected = column.astype("boolean").mask(mask)
    elif pd.api.types.is_integer_dtype(column.dtype):
        expected = column.astype("Int64").mask(mask)
    elif pd.api.types.is_numeric_dtype(column.dtype):
        expected = column.astype(float).mask(mask)
    else:
        expected = column.mask(mask)
    pd.testing.assert_series_equal(out["c"], expected, check_names=False)


def test_small_group_rule_for_statistics():
    t = pd.DataFrame({"route": ["iv", "im"], "n": [40, 2], "mean": [-8.1, -3.0]})
    out = suppress_small_groups(t, 11, "n")
    assert out["mean"].isna().tolist() == [False, True] and out["n"].isna().tolist() == [
        False,
        True,
    ]
    data = pd.DataFrame({"patient_id": range(14), "route": ["iv"] * 12 + ["im"] * 2})
    ls = pd.DataFrame({"route": ["im", "iv"], "estimate": [-3.0, -8.0]})
    assert suppress_group_statistics(ls, data, 11)["estimate"].isna().tolist() == [True, False]
    pw = pd.DataFrame({"contrast": ["im - iv"], "estimate": [5.0]})
    assert suppress_group_statistics(pw, data, 11)["estimate"].isna().all()


def test_kaplan_meier_min_cell_drops_small_groups_and_stops_at_min_cell_at_risk():
    tte = pd.DataFrame(
        {
            "route": ["iv"] * 30 + ["im"] * 4,
            "time": list(range(1, 31)) + [1, 2, 3, 4],
            "event": [1] * 34,
        }
    )
    km = kaplan_meier(tte, group="route", min_cell=11)
    assert set(km["group"]) == {"iv"}  # 4 patients: no curve
    assert km["n_at_risk"].min() >= 11
    assert (km["n_events"].dropna() == 0).all() or km["suppressed"].all()
    full = kaplan_meier(tte, group="route")
    shown = full[(full["group"] == "iv") & (full["n_at_risk"] >= 11)]
    np.testing.assert_allclose(km["survival"], shown["survival"])  # unchanged estimate


# ----------------------------------------------------------------------------- figures


def _legend_labels(fig: Figure) -> list[str]:
    return [t for ax in fig.axes for t in ax.get_legend_handles_labels()[1]]


def test_a_suppressed_adverse_event_cell_is_a_marker_with_a_legend_entry():
    t = adverse_event_table(small_cohort(), min_cell=11)
    assert t["suppressed"].any()
    fig = plot_adverse_events(t)
    assert SUPPRESSED_LABEL in _legend_labels(fig)
    assert len(fig.axes[0].collections) >= 1  # the markers


def test_rates_panel_left_empty_says_so():
    table = rate_table(endpoints(), by=("instrument", "visit"), min_cell=10_000)
    fig = plot_rates(table)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("every cell is suppressed" in t for t in texts)
    assert SUPPRESSED_LABEL in _legend_labels(fig)


def test_km_figure_without_any_curve_says_so():
    km = kaplan_meier(_gad7_tte(), group="route")
    fig = plot_cumulative_incidence(km, min_cell=10_000)
    assert any("No curve shown" in t.get_text() for t in fig.axes[0].texts)


# ----------------------------------------------------------------------------- the audit


def test_audit_table_finds_small_counts_recoverable_cells_identifiers_and_formulas():
    t = pd.DataFrame(
        {
            "instrument": ["GAD7"] * 4,
            "route": ["iv", "im", "oral", "Overall"],
            "n": [40, None, 30, 74],
        }
    )
    found = audit_table(t, 11, name="t")
    assert found[["column", "row", "check"]].values.tolist() == [["n", 1, "recoverable"]]
    t.loc[0, "n"] = None  # two hidden cells: nothing recoverable
    assert audit_table(t, 11).empty
    labels = pd.DataFrame({"note": ["ok", "P000123", "=HYPERLINK(1)"]})
    found = audit_table(labels, 11, identifiers=["P000123"])
    assert found[["row", "check"]].values.tolist() == [[1, "identifier"], [2, "formula"]]
    assert audit_table(pd.DataFrame({"n": [3]}), 11)["check"].tolist() == ["small_count"]
    assert audit_table(pd.DataFrame({"n": [20], "events": [15]}), 11)["check"].tolist() == [
        "small_complement"
    ]


def test_audit_of_a_folder_reads_csv_html_notebooks_and_manifest(tmp_path):
    pd.DataFrame({"route": ["iv"], "n": [40]}).to_csv(tmp_path / "ok.csv", index=False)
    (tmp_path / "page.html").write_text(
        "<html><style>td {color: red}</style><table><thead><tr><th></th><th>n</th></tr>"
        "</thead><tbody><tr><th>0</th><td>7</td></tr></tbody></table></html>"
    )
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "data": {
                            "text/html": [
                                "<table><tr><th>patients</th></tr>",
                                "<tr><td>2</td></tr></table>",
                            ]
                        }
                    }
                ],
            }
        ]
    }
    (tmp_path / "r.ipynb").write_text(json.dumps(nb))
    (tmp_path / "manifest.json").write_text(
        json.dumps({"parameters": {"min_cell": 11}, "data": {"rows": {"adverse_events": 3}}})
    )
    result = audit_report_dir(tmp_path)
    assert not result.ok
    files = set(result.findings["file"])
    assert files == {"page.html", "r.ipynb", "manifest.json"}
    message = result.message()
    assert "page.html" in message and "small_count" in message
    assert "7" not in message.replace("page.html", "")  # counts of problems, never values
    with pytest.raises(disclosure.DisclosureAuditError, match="audit failed"):
        audit_report_dir(tmp_path, raise_on_failure=True)


def test_cli_audit_exit_codes(tmp_path, capsys):
    pd.DataFrame({"n": [40]}).to_csv(tmp_path / "ok.csv", index=False)
    assert cli_main(["audit", str(tmp_path)]) == 0
    pd.DataFrame({"n": [4]}).to_csv(tmp_path / "bad.csv", index=False)
    assert cli_main(["audit", str(tmp_path), "--min-cell", "11"]) == 1
    assert "bad.csv" in capsys.readouterr().err
    assert cli_main(["audit", str(tmp_path / "missing")]) == 2
    assert cli_main(["audit", str(tmp_path), "--min-cell", "0"]) == 2


def test_save_table_neutralises_formulas(tmp_path):
    t = pd.DataFrame({"label": ['=HYPERLINK("x")', "+1", "@SUM(A1)", "-x", "-3", "ok"]})
    save_table(t, "t", tmp_path)
    text = (tmp_path / "t.csv").read_text().splitlines()[1:]
    assert text == ['"\'=HYPERLINK(""x"")"', "+1", "'@SUM(A1)", "'-x", "-3", "ok"]
    assert audit_table(pd.read_csv(tmp_path / "t.csv", dtype=str), 11).empty


# ------------------------------------------------------------ reports of tiny-group cohorts


def tiny_group_cohort(seed: int, column: str, size: int, n_patients: int = 150):
    """A synthetic cohort whose ``column`` has one level held by ``size`` patients."""
    return tiny_groups_cohort(seed, {column: size}, n_patients)


def tiny_groups_cohort(seed: int, sizes: dict[str, int], n_patients: int = 150):
    """A synthetic cohort where each ``column`` of ``sizes`` has one level held by
    ``sizes[column]`` patients (a route, a site, a diagnosis: drawn independently)."""
    cohort = synthetic_cohort(n_patients=n_patients, seed=seed)
    p = cohort.patients.copy()
    rng = np.random.default_rng(seed)
    for column, size in sizes.items():
        rare = {"route": "sublingual", "site_id": "S99", "primary_diagnosis": "PTSD"}[column]
        common = {"route": "oral", "site_id": "S01", "primary_diagnosis": "GAD"}[column]
        p[column] = p[column].astype(object).where(p[column] != rare, common)
        chosen = rng.choice(len(p), size=size, replace=False)
        p.loc[p.index[chosen], column] = rare
        p[column] = p[column].astype(cohort.patients[column].dtype)
    cohort.patients = p
    if "route" in sizes and len(cohort.sessions):
        routes = p.set_index("patient_id")["route"]
        cohort.sessions = cohort.sessions.assign(
            route=cohort.sessions["patient_id"].map(routes).astype(cohort.sessions["route"].dtype)
        )
    return cohort


def render_report_tables(cohort, folder, min_cell: int = 11) -> None:
    """The tables the report notebooks save, made by the same library calls."""
    ep = cohort_endpoints(cohort, patient_columns=("route", "primary_diagnosis"))
    week4 = ep.query("visit == 'week4'")
    gad7 = ep.query("instrument == 'GAD7'")
    tables = {
        "table_one": table_one(cohort, min_cell=min_cell),
        "table_one_by_route": table_one(cohort, by="route", min_cell=min_cell),
        "completeness": completeness_table(cohort, min_cell=min_cell),
        "item_missingness": item_missingness(cohort.assessments, min_cell=min_cell),
        "assessments_per_patient": assessments_per_patient(
            cohort.assessments, min_cell=min_cell, patients=cohort.patients
        ),
        "rates_by_visit": outcome_rates(ep, min_cell=min_cell),
        "response_by_route_visit": rate_table(
            ep, "response", by=("instrument", "visit", "route"), min_cell=min_cell, margins="auto"
        ),
        "week4_by_route": outcome_rates(
            week4, ("response", "remission"), by=("instrument", "route"), min_cell=min_cell
        ),
        "week4_by_diagnosis": outcome_rates(
            week4,
            ("response", "remission"),
            by=("instrument", "primary_diagnosis"),
            min_cell=min_cell,
        ),
        "accounting": accounting_summary(endpoint_accounting(cohort), min_cell=min_cell),
        "between_route": analysis.effect_size_table(
            ep, group="route", reference="iv", min_cell=min_cell
        ),
        "median_ttr": median_time_to_event(
            time_to_event(gad7, "response"), group="route", min_cell=min_cell
        ),
        "km": kaplan_meier(time_to_event(gad7, "response"), group="route", min_cell=min_cell),
        "exposure": dose_summary(cohort, min_cell=min_cell),
        "adverse_events": adverse_event_table(cohort, min_cell=min_cell),
        "blood_pressure": blood_pressure_table(cohort, min_cell=min_cell),
        "dissociation": dissociation_table(cohort, min_cell=min_cell),
    }
    for name, table in tables.items():
        save_table(table, name, folder)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    column=st.sampled_from(["route", "site_id", "primary_diagnosis"]),
    size=st.integers(1, 12),
)
def test_property_reports_of_cohorts_with_tiny_groups_pass_the_audit(
    seed, column, size, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("tables")
    cohort = tiny_group_cohort(seed, column, size)
    render_report_tables(cohort, folder)
    result = audit_report_dir(folder, 11, identifiers=cohort.patients["patient_id"])
    assert result.ok, result.message()


@pytest.mark.slow
@settings(
    max_examples=1,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    sizes=st.dictionaries(
        st.sampled_from(["route", "site_id", "primary_diagnosis"]),
        st.integers(1, 12),
        min_size=1,
    ),
)
@example(seed=7, sizes={"site_id": 1, "primary_diagnosis": 7, "route": 4})
def test_property_every_rendered_report_of_a_tiny_group_cohort_passes_the_audit(
    seed, sizes, tmp_path_factory
):
    """Issue 9 point 4 over the real batch: the five notebooks executed by run_reports.

    A route, a site and/or a diagnosis held by 1 to 12 patients each; ``run_reports``
    audits its staging folder (a failing audit fails the run), and the folder is audited
    again here with the patient ids. Few examples, since each renders every notebook: the
    explicit one holds a tiny group of all three kinds (a site of one patient), so every
    kind is rendered in every run, and the drawn one adds one to three tiny groups.
    """
    from analysis.schema import write_cohort

    tmp_path = tmp_path_factory.mktemp("batch")
    cohort = tiny_groups_cohort(seed=seed, sizes=sizes, n_patients=120)
    data = write_cohort(cohort, tmp_path / "data")
    manifest = analysis.run_reports(data, tmp_path / "out", progress=False)
    rows = manifest["data"]["rows"]
    assert all(v == 0 or v == "<11" or v >= 11 for v in rows.values())
    result = audit_report_dir(tmp_path / "out", identifiers=cohort.patients["patient_id"])
    assert result.ok, result.message()
    assert len(result.files) >= 10


def test_accounting_hides_the_baseline_count_whose_complement_is_small():
    # Issue 9: completeness blanks GAD-7 baseline (491 of 500) but the accounting showed
    # 491, so 9 was recoverable.
    acc = pd.DataFrame(
        {
            "instrument": "GAD7",
            "reason": ["baseline"] * 491 + ["visit"] * 800 + ["unscorable"] * 30,
        }
    )
    shown = accounting_summary(acc, min_cell=11).set_index("reason")["assessments"]
    assert shown["baseline"] == 491
    hidden = accounting_summary(acc, min_cell=11, patients=500).set_index("reason")["assessments"]
    assert pd.isna(hidden["baseline"]) and pd.isna(hidden["unscorable"])  # + complement
    assert hidden["visit"] == 800


def test_audit_finds_a_patient_id_printed_in_a_notebook_output(tmp_path):
    nb = {"cells": [{"cell_type": "code", "outputs": [{"text": ["worst case: P000123\n"]}]}]}
    (tmp_path / "r.ipynb").write_text(json.dumps(nb))
    assert audit_report_dir(tmp_path, 11, identifiers=["P000999"]).ok
    found = audit_report_dir(tmp_path, 11, identifiers=["P000123"]).findings
    assert found[["file", "check"]].values.tolist() == [["r.ipynb", "identifier"]]


# ------------------------------------------------------- distributions add up to their margin


@functools.cache
def demo_cohort():
    return synthetic_cohort(n_patients=500, seed=0)


def test_assessments_per_patient_adds_up_to_the_enrolled_patients_on_the_demo():
    # Issue 9: on the demo the HAM-A rows added up to 499 of 500 patients, so the one
    # patient without a HAM-A was recoverable from Table 1's n.
    cohort = demo_cohort()
    plain = assessments_per_patient(cohort.assessments)
    assert plain.groupby("instrument")["patients"].sum().to_dict() == {"GAD7": 500, "HAMA": 499}
    full = assessments_per_patient(cohort.assessments, patients=cohort.patients)
    assert full.groupby("instrument")["patients"].sum().to_dict() == {"GAD7": 500, "HAMA": 500}
    zero = full[full["assessments"] == 0].set_index("instrument")["patients"]
    assert zero.to_dict() == {"GAD7": 0, "HAMA": 1}
    assert full.groupby("instrument")["percent"].sum().round(0).tolist() == [100.0, 100.0]
    # the same with the number of patients instead of the table
    same = assessments_per_patient(cohort.assessments, patients=500)
    pd.testing.assert_frame_equal(same, full)
    hidden = assessments_per_patient(cohort.assessments, min_cell=11, patients=500)
    hama = hidden[hidden["instrument"] == "HAMA"]
    assert hama["patients"].isna().tolist()[:2] == [True, True]  # 1 and its complement 18
    assert hama["patients"].isna().sum() == 2 and hama["percent"].isna().sum() == 2


def test_assessments_per_patient_refuses_too_few_patients():
    cohort = demo_cohort()
    with pytest.raises(ValueError, match="smaller than the number of patients"):
        assessments_per_patient(cohort.assessments, patients=400)
    with pytest.raises(ValueError, match="not in `patients`"):
        assessments_per_patient(cohort.assessments, patients=cohort.patients.iloc[:10])


@settings(max_examples=40, deadline=None)
@given(
    per_patient=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=80),
    min_cell=st.integers(2, 12),
)
def test_property_assessments_per_patient_margin_is_all_patients(per_patient, min_cell):
    rows = [
        (f"p{k}", instrument)
        for k, counts in enumerate(per_patient)
        for instrument, times in zip(("GAD7", "HAMA"), counts, strict=True)
        for _ in range(times)
    ]
    if not rows:
        return
    a = pd.DataFrame(rows, columns=["patient_id", "instrument"])
    n = len(per_patient)
    full = assessments_per_patient(a, patients=n)
    assert (full.groupby("instrument")["patients"].sum() == n).all()
    out = assessments_per_patient(a, patients=n, min_cell=min_cell)
    for _, group in out.groupby("instrument"):
        shown = group["patients"].dropna().astype(int)
        assert not shown.between(1, min_cell - 1).any()
        # the margin (n, shown in Table 1) never leaves exactly one hidden row
        assert group["patients"].isna().sum() != 1


# ------------------------------------------------------------- recoverable across tables


def _batch(**tables):
    return [(f"{name}.csv", name, table) for name, table in tables.items()]


def test_cross_table_a_hidden_route_is_a_shown_total_minus_the_shown_routes():
    # Issue 9: a route hidden in one table, while another table of the batch shows the
    # total of the routes: 74 - 40 - 30 = 4.
    by_route = pd.DataFrame(
        {"instrument": "GAD7", "route": ["iv", "im", "oral"], "n": [40, None, 30]}
    )
    overall = pd.DataFrame({"instrument": ["GAD7"], "n": [74]})
    found = disclosure.cross_table_findings(_batch(by_route=by_route, overall=overall))
    assert found.values.tolist() == [["by_route.csv", "by_route", "n", 1, "recoverable_across"]]
    # each table alone is fine
    assert audit_table(by_route, 11).empty and audit_table(overall, 11).empty
    # the same pair with a second hidden route leaks nothing
    by_route.loc[0, "n"] = None
    assert disclosure.cross_table_findings(_batch(by_route=by_route, overall=overall)).empty


def test_cross_table_a_count_hidden_in_one_table_and_shown_in_another():
    # completeness vs accounting (issue 9): the same population, one decision.
    completeness = pd.DataFrame({"instrument": ["GAD7"], "visit": ["baseline"], "n": [None]})
    accounting = pd.DataFrame({"instrument": ["GAD7"], "visit": ["baseline"], "n": [491]})
    found = disclosure.cross_table_findings(_batch(a=completeness, b=accounting))
    assert found.values.tolist() == [["a.csv", "a", "n", 0, "shown_elsewhere"]]
    # a different population (another visit) is no leak
    accounting["visit"] = "week1"
    assert disclosure.cross_table_findings(_batch(a=completeness, b=accounting)).empty


def test_cross_table_two_partitions_of_the_same_population_meet():
    # By route (one hidden) and by diagnosis (all shown): both add up to the week-4
    # patients, which no table shows, and still 40 + 30 + x = 50 + 30.
    route = pd.DataFrame(
        {"outcome": "response", "route": ["iv", "im", "oral"], "n": [40, 30, None]}
    )
    dx = pd.DataFrame({"outcome": "response", "primary_diagnosis": ["GAD", "PD"], "n": [50, 30]})
    found = disclosure.cross_table_findings(_batch(route=route, dx=dx))
    assert found[["table", "row", "check"]].values.tolist() == [["route", 2, "recoverable_across"]]
    dx.loc[1, "n"] = None  # hidden on both sides: two unknowns, one equation
    found = disclosure.cross_table_findings(_batch(route=route, dx=dx))
    assert found.empty


def test_cross_table_table_one_route_sizes_meet_tables_by_route():
    # A route with 4 patients is "<11" in Table 1, but a table by route shows every other
    # route's patients and Table 1 shows n: 104 - 40 - 30 - 30 = 4.
    t1 = table_one(
        pd.DataFrame(
            {
                "patient_id": range(104),
                "route": ["iv"] * 40 + ["im"] * 30 + ["oral"] * 30 + ["sc"] * 4,
            }
        ),
        min_cell=11,
    )
    exposure = pd.DataFrame({"route": ["im", "iv", "oral", "sc"], "n_patients": [30, 40, 30, None]})
    found = disclosure.cross_table_findings(_batch(table_one=t1, exposure=exposure))
    checks = dict(zip(zip(found["table"], found["row"], strict=True), found["check"], strict=True))
    assert checks[("exposure", 3)] == "recoverable_across"
    # Table 1 hides "sc" and, complementary, a route of 30; the exposure table shows it
    assert t1.set_index("level").loc["sc", "Overall"] == "<11"
    second = int(np.flatnonzero(t1["Overall"].eq("suppressed"))[0])
    assert checks[("table_one", second)] == "shown_elsewhere"
    # with that route hidden in the exposure table too, nothing is recoverable
    exposure.loc[exposure["route"].eq(t1.loc[second, "level"]), "n_patients"] = None
    assert disclosure.cross_table_findings(_batch(table_one=t1, exposure=exposure)).empty


def test_audit_report_dir_reports_leaks_across_files(tmp_path):
    pd.DataFrame({"instrument": "GAD7", "route": ["iv", "im", "oral"], "n": [40, None, 30]}).to_csv(
        tmp_path / "by_route.csv", index=False
    )
    pd.DataFrame({"instrument": ["GAD7"], "n": [74]}).to_csv(tmp_path / "overall.csv", index=False)
    result = audit_report_dir(tmp_path, 11)
    assert result.findings[["file", "column", "row", "check"]].values.tolist() == [
        ["by_route.csv", "n", 1, "recoverable_across"]
    ]
    assert "recoverable_across" in result.message()
    (tmp_path / "overall.csv").unlink()
    assert audit_report_dir(tmp_path, 11).ok


def _site_manifest(folder, shown=("S01", "S02"), withheld=(), without_site=False):
    sites = {s: {"folder": f"sites/{s}", "data_fingerprint": "x"} for s in shown}
    manifest = {
        "parameters": {"min_cell": 11},
        "sites": {
            "shown": sites,
            "withheld": list(withheld),
            "patients_without_site": without_site,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _write(folder, relative, frame):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def test_audit_links_the_site_sets_to_the_pooled_set(tmp_path):
    # Route IM: 30 pooled, hidden at S01 (with oral, complementary), 27 at S02: the
    # pooled count minus S02's gives S01's 3 (the by-site leak); so does oral.
    _write(tmp_path, "t.csv", pd.DataFrame({"route": ["iv", "im", "oral"], "n": [60, 30, 40]}))
    s01 = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [30, None, None]})
    s02 = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [30, 27, 20]})
    _write(tmp_path, "sites/S01/t.csv", s01)
    _write(tmp_path, "sites/S02/t.csv", s02)
    _site_manifest(tmp_path)
    result = audit_report_dir(tmp_path, 11)
    assert sorted(result.findings[["file", "row", "check"]].values.tolist()) == [
        ["sites/S01/t.csv", 1, "recoverable_across"],
        ["sites/S01/t.csv", 2, "recoverable_across"],
    ]
    # a withheld site (or patients without a site) is an unknown remainder: S01's IM is
    # no longer determined, but S01's IM and the remainder together are 30 - 27 = 3
    # people (hidden_sum); oral's 40 - 20 = 20 is no small count
    expected = [["sites/S01/t.csv", 1, "hidden_sum"]]
    _site_manifest(tmp_path, withheld=["S03"])
    assert audit_report_dir(tmp_path, 11).findings[["file", "row", "check"]].values.tolist() == (
        expected
    )
    _site_manifest(tmp_path, without_site=True)
    assert audit_report_dir(tmp_path, 11).findings[["file", "row", "check"]].values.tolist() == (
        expected
    )
    # a shown site whose reports lack the table enters as an unknown too (with S01: 3)
    _site_manifest(tmp_path, shown=("S01", "S02", "S04"))
    assert audit_report_dir(tmp_path, 11).findings[["file", "row", "check"]].values.tolist() == (
        expected
    )
    # S02 with 19 IM patients: S01's IM and the rest are 11 together, nothing follows
    _write(tmp_path, "sites/S02/t.csv", s02.assign(n=[30, 19, 20]))
    _site_manifest(tmp_path, withheld=["S03"])
    assert audit_report_dir(tmp_path, 11).ok
    # the same cells hidden at S02 as well: two hidden sites per route, nothing follows
    _site_manifest(tmp_path)
    _write(tmp_path, "sites/S02/t.csv", s02.assign(n=[30, None, None]))
    assert audit_report_dir(tmp_path, 11).ok


def test_audit_without_a_site_plan_takes_the_site_folders_as_incomplete(tmp_path):
    # No manifest: the folders under sites/ are the site sets and some sites may be
    # missing, so a hidden site cell is not taken for recoverable; a hidden cell of a
    # site's table that the same site shows in another table is.
    _write(tmp_path, "by_route.csv", pd.DataFrame({"route": ["iv", "im"], "n": [40, 30]}))
    site = pd.DataFrame({"route": ["iv", "im"], "n": [40, None]})
    _write(tmp_path, "sites/S01/by_route.csv", site)
    assert disclosure.report_site_sets(tmp_path) == ({"sites/S01": "S01"}, False)
    assert audit_report_dir(tmp_path, 11).ok
    _write(tmp_path, "sites/S01/other.csv", pd.DataFrame({"route": ["im"], "n": [12]}))
    result = audit_report_dir(tmp_path, 11)
    assert result.findings[["file", "row", "check"]].values.tolist() == [
        ["sites/S01/by_route.csv", 1, "shown_elsewhere"]
    ]
    site.to_csv(tmp_path / "by_route_hidden.csv", index=False)  # pooled set: shown there
    found = audit_report_dir(tmp_path, 11).findings
    assert ["by_route_hidden.csv", 1, "shown_elsewhere"] in found[
        ["file", "row", "check"]
    ].values.tolist()


def _two_site_cohort():
    """90 patients at two sites; PTSD: 3 patients at S01 (hidden there), 20 at S02."""
    cohort = synthetic_cohort(90, seed=3)
    p = cohort.patients.copy()
    p["site_id"] = pd.array(["S01"] * 40 + ["S02"] * 50, dtype=p["site_id"].dtype)
    diagnoses = ["GAD"] * 22 + ["SAD"] * 15 + ["PTSD"] * 3 + ["GAD"] * 15 + ["SAD"] * 15
    p["primary_diagnosis"] = pd.array(diagnoses + ["PTSD"] * 20, dtype=p["primary_diagnosis"].dtype)
    cohort.patients = p
    return cohort


def test_linked_suppression_hides_the_next_smallest_site_cell():
    from analysis.reports import site_cohort

    cohort = _two_site_cohort()
    sets = {"": cohort, "sites/S01": site_cohort(cohort, "S01")}
    sets["sites/S02"] = site_cohort(cohort, "S02")
    tables = [
        (f"{folder}/t1.csv".lstrip("/"), "t1", table_one(part, by="route", min_cell=11))
        for folder, part in sets.items()
    ]
    site_sets = {"sites/S01": "S01", "sites/S02": "S02"}
    found = disclosure.cross_table_findings(tables, site_sets=site_sets, all_sites_reported=True)
    # without the mechanism: S01's PTSD (3) = pooled 23 - S02's 20, and its SAD too
    s01 = tables[1][2]
    assert s01.set_index("level").loc["PTSD", "Overall"] == "<11"
    assert set(found["file"]) == {"sites/S01/t1.csv"}
    assert set(s01.loc[found["row"], "level"]) == {"PTSD", "SAD"}
    hidden = disclosure.linked_suppression(tables, site_sets, all_sites_reported=True)
    assert hidden == {
        "sites/S02": [
            [[["primary_diagnosis", "ptsd"]], "n"],
            [[["primary_diagnosis", "sad"]], "n"],
        ]
    }
    fixed = [
        (f, n, disclosure.hide_populations(t, hidden.get(f.rsplit("/", 1)[0], [])))
        for f, n, t in tables
    ]
    s02 = fixed[2][2].set_index("level")
    assert (s02.loc[["PTSD", "SAD"]].iloc[:, 1:] == "suppressed").all().all()
    assert s02.loc["GAD", "Overall"] == tables[2][2].set_index("level").loc["GAD", "Overall"]
    assert disclosure.cross_table_findings(
        fixed, site_sets=site_sets, all_sites_reported=True
    ).empty


def test_linked_suppression_treats_the_by_site_remainder_as_a_cell():
    # Pooled IM 40; S01 shows 20 and S02 16; a withheld site (or patients without a
    # site) holds the other 4: pooled minus the shown sites gives them.
    pooled = pd.DataFrame({"route": ["iv", "im"], "n": [100, 40]})
    s01 = pd.DataFrame({"route": ["iv", "im"], "n": [50, 20]})
    s02 = pd.DataFrame({"route": ["iv", "im"], "n": [30, 16]})
    tables = [("t.csv", "t", pooled), ("sites/S01/t.csv", "t", s01),
              ("sites/S02/t.csv", "t", s02)]  # fmt: skip
    site_sets = {"sites/S01": "S01", "sites/S02": "S02"}
    found = disclosure.cross_table_findings(tables, site_sets=site_sets, min_cell=11)
    # the shown pooled IM count is where the remainder (4) shows; IV's (20) is no problem
    assert found[["file", "row", "check"]].values.tolist() == [["t.csv", 1, "remainder"]]
    assert disclosure.cross_table_findings(tables, site_sets=site_sets).empty  # no min_cell
    # every site reported: no remainder, nothing to find
    assert disclosure.cross_table_findings(
        tables, site_sets=site_sets, all_sites_reported=True, min_cell=11
    ).empty
    hidden = disclosure.linked_suppression(tables, site_sets, min_cell=11)
    # IM is hidden at S02, the smallest site showing it (16 + 4 = 20 hidden together);
    # hide_populations hides IV with it (S02's margin)
    assert hidden == {"sites/S02": [[[["route", "im"]], "n"]]}
    fixed = [
        (f, n, disclosure.hide_populations(t, hidden.get(f.rsplit("/", 1)[0], []), min_cell=11))
        for f, n, t in tables
    ]
    assert fixed[2][2]["n"].isna().all() and fixed[1][2]["n"].notna().all()
    assert disclosure.cross_table_findings(fixed, site_sets=site_sets, min_cell=11).empty
    # no site shows it: the pooled count is hidden instead
    s02 = s02.assign(n=[30, 0])
    tables[2] = ("sites/S02/t.csv", "t", s02)
    s01 = s01.assign(n=[50, 36])
    tables[1] = ("sites/S01/t.csv", "t", s01)
    assert disclosure.cross_table_findings(tables, site_sets=site_sets, min_cell=11)[
        "check"
    ].tolist() == ["remainder"]
    hidden = disclosure.linked_suppression(tables, site_sets, min_cell=11)
    assert [[["route", "im"]], "n"] in hidden["sites/S01"]


def test_hide_populations_keeps_complementary_suppression_within_the_table():
    t = pd.DataFrame(
        {
            "instrument": ["GAD7"] * 3 + ["HAMA"] * 3,
            "route": ["iv", "im", "oral"] * 2,
            "n": [40, 30, 20, 40, 30, 20],
            "events": [20, 15, 12, 20, 15, 12],
            "rate": [0.5, 0.5, 0.6, 0.5, 0.5, 0.6],
        }
    )
    out = disclosure.hide_populations(t, [({("instrument", "gad7"), ("route", "im")}, "n")])
    # GAD-7/IM hidden with its derived rate, and the next smallest GAD-7 route with it
    assert out["n"].isna().tolist() == [False, True, True, False, False, False]
    assert out["rate"].isna().tolist() == [False, True, True, False, False, False]
    assert out["route"].tolist() == t["route"].tolist()  # labels stay
    assert disclosure.hide_populations(t, []) is t
    assert disclosure.hide_populations(t, [({("route", "sc")}, "n")]) is t


def test_save_table_applies_the_linked_suppression_of_its_report_set(tmp_path):
    t = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [40, 30, 20]})
    try:
        disclosure.set_linked_suppression([[[["route", "im"]], "n"]])
        shown = save_table(t, "by_route", tmp_path)
        assert shown["n"].isna().tolist() == [False, True, True]
        saved = pd.read_csv(tmp_path / "by_route.csv")
        assert saved["n"].isna().tolist() == [False, True, True]
    finally:
        disclosure.set_linked_suppression([])
    assert save_table(t, "by_route", tmp_path) is t


@pytest.mark.slow
def test_by_site_run_hides_what_the_pooled_and_other_sites_would_reveal(tmp_path):
    # A real --by-site run of report 01: S01's hidden PTSD count (3) would be the pooled
    # count minus S02's (see test_linked_suppression_hides_the_next_smallest_site_cell);
    # the run hides PTSD (and SAD) at S02 too, and its linked audit passes.
    from analysis.schema import write_cohort

    cohort = _two_site_cohort()
    data = write_cohort(cohort, tmp_path / "data")
    out = tmp_path / "out"
    manifest = analysis.run_reports(data, out, ["data_quality"], progress=False, by_site=True)
    # report 01's tables of S01 hide other cells the pooled ones and S02's would give
    # (completeness, missingness, ...): cells are hidden in addition in both site sets
    assert manifest["sites"]["linked_suppression"]["sites/S02"] >= 2
    t1 = pd.read_csv(out / "sites/S02/tables/data_quality/table_one.csv").set_index("level")
    assert (t1.loc[["PTSD", "SAD"], "Overall"] == "suppressed").all()
    pooled = pd.read_csv(out / "tables/data_quality/table_one.csv").set_index("level")
    assert pooled.loc["PTSD", "Overall"].startswith("23")  # the pooled report is unchanged
    html = (out / "sites/S02/01_data_quality.html").read_text(encoding="utf-8")
    assert "20 (40.0%)" not in html  # S02's PTSD count is hidden on the page too
    result = audit_report_dir(out, identifiers=cohort.patients["patient_id"])
    assert result.ok, result.message()


def test_cross_table_interval_disclosure_from_non_negativity():
    # total 12, one route shown with 11, two hidden: each hidden route is 0 or 1 (and
    # one of them is 1), although neither is determined by the equations
    by_route = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [11, None, None]})
    overall = pd.DataFrame({"route": ["Overall"], "n": [12]})
    batch = [("r.csv", "r", by_route), ("o.csv", "o", overall)]
    assert disclosure.cross_table_findings(batch).empty  # no linear disclosure
    found = disclosure.cross_table_findings(batch, min_cell=11)
    assert found[["row", "check"]].values.tolist() == [[1, "interval"], [2, "interval"]]
    # the pair adds up to 9: each is 0..9, no more than "<11" says, but their sum, 9
    # people of IM or oral, is a small count itself (hidden_sum)
    overall["n"] = [20]
    found = disclosure.cross_table_findings(batch, min_cell=11)
    assert found[["row", "check"]].values.tolist() == [[1, "hidden_sum"], [2, "hidden_sum"]]
    overall["n"] = [30]  # they add up to 19: nothing is disclosed
    assert disclosure.cross_table_findings(batch, min_cell=11).empty
    overall["n"] = [20]
    # a hidden cell confined to 3..5 by a second margin: a small count, not 0
    by_route = pd.DataFrame({"route": ["iv", "im", "oral"], "n": [40, None, None]})
    by_sex = pd.DataFrame(
        {"route": ["im", "im", "oral", "oral"], "sex": ["f", "m"] * 2, "n": [3, None, None, 20]}
    )
    batch = [("r.csv", "r", by_route), ("o.csv", "o", overall.assign(n=[68]))]
    batch.append(("s.csv", "s", by_sex))
    found = disclosure.cross_table_findings(batch, min_cell=11)
    # im = 3 + (im, m), oral = (oral, f) + 20, im + oral = 28 -> the two hidden sex
    # cells add up to 5 (each 0..5: accepted), im in 3..8 (a small count), oral 20..25
    assert ["s.csv", 1, "interval"] not in found[["file", "row", "check"]].values.tolist()
    assert "recoverable_across" not in set(found["check"])
    im = found[(found["file"] == "r.csv") & (found["row"] == 1)]
    assert im["check"].tolist() == ["interval"]
    # infeasible (disagreeing) tables disclose nothing
    batch[1] = ("o.csv", "o", overall.assign(n=[10]))
    assert "interval" not in set(disclosure.cross_table_findings(batch, min_cell=11)["check"])


def test_audit_report_dir_reports_interval_disclosure(tmp_path):
    _write(tmp_path, "r.csv", pd.DataFrame({"route": ["iv", "im", "oral"], "n": [11, None, None]}))
    _write(tmp_path, "o.csv", pd.DataFrame({"route": ["Overall"], "n": [12]}))
    result = audit_report_dir(tmp_path, 11)
    assert set(result.findings["check"]) == {"interval"}
    assert "interval" in result.message()


def test_cross_table_reads_the_visit_and_instrument_from_a_table_name(tmp_path):
    # report 02's "gad7_week4_by_dose" has no instrument or visit column: its rows are the
    # GAD-7 week-4 rows, which "rates_by_visit" counts (60): the hidden band is 60 - 55
    by_dose = pd.DataFrame({"dose_band": ["low", "mid", "high"], "n": [30, None, 25]})
    rates = pd.DataFrame(
        {
            "instrument": ["GAD7", "GAD7", "HAMA"],
            "visit": ["week4", "week1", "week4"],
            "n": [60, 70, 58],
        }
    )
    batch = [("r.csv", "rates_by_visit", rates), ("d.csv", "gad7_week4_by_dose", by_dose)]
    found = disclosure.cross_table_findings(batch)
    assert found[["file", "row", "check"]].values.tolist() == [["d.csv", 1, "recoverable_across"]]
    # a name that does not say which instrument: the population is not matched
    batch[1] = ("d.csv", "week4_by_dose", by_dose)
    assert disclosure.cross_table_findings(batch).empty
    # a name with two visits is ambiguous: not matched either
    batch[1] = ("d.csv", "gad7_week1_week4_by_dose", by_dose)
    assert disclosure.cross_table_findings(batch).empty
    # through audit_report_dir, where the CSV file's stem is the table's name
    folder = tmp_path
    _write(folder, "tables/outcomes/rates_by_visit.csv", rates)
    _write(folder, "tables/outcomes/gad7_week4_by_dose.csv", by_dose)
    assert set(audit_report_dir(folder, 11).findings["check"]) == {"recoverable_across"}


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(12, 40),
    seed=st.integers(0, 1_000),
    missing=st.integers(0, 14),
    instrument=st.sampled_from(["GAD7", "HAMA"]),
    min_cell=st.sampled_from([5, 11]),
)
@example(n=12, seed=0, missing=0, instrument="GAD7", min_cell=11)  # found by hypothesis
def test_property_completeness_and_accounting_agree_on_the_baseline_count(
    n, seed, missing, instrument, min_cell
):
    """Issue 9 point 2: the patients with a baseline are one count in reports 01 and 02.

    Completeness (report 01) counts the patients observed in the baseline window, the
    accounting (report 02) the assessments used as baselines; when the two counts are
    the same number of the same patients, one table may not show it while the other
    hides it (else the hidden one is read off the other table).
    """
    cohort = synthetic_cohort(n, seed=seed)
    a = cohort.assessments
    ids = a["patient_id"].drop_duplicates().sample(frac=1, random_state=seed)[:missing]
    drop = a["patient_id"].isin(ids) & a["instrument"].eq(instrument) & a["study_day"].le(0)
    cohort.assessments = a[~drop].reset_index(drop=True)

    accounting = endpoint_accounting(cohort)  # one accounting, summarised twice

    def counts(m):
        comp = completeness_table(cohort, min_cell=m).set_index(["instrument", "visit"])
        acc = accounting_summary(accounting, min_cell=m, patients=len(cohort.patients)).set_index(
            ["instrument", "reason"]
        )
        return comp.loc[(instrument, "baseline"), "observed"], acc.loc[
            (instrument, "baseline"), "assessments"
        ]

    raw_observed, raw_baselines = counts(None)
    observed, baselines = counts(min_cell)
    if raw_observed == raw_baselines:
        assert pd.isna(observed) == pd.isna(baselines), (raw_observed, observed, baselines)
    for shown in (observed, baselines):
        assert pd.isna(shown) or not (0 < shown < min_cell)
        assert pd.isna(shown) or not (0 < len(cohort.patients) - shown < min_cell)


def _route_cohort():
    """Routes iv 40, oral 25, im 20, sc 4; 10 oral patients have no session.

    Table 1 hides sc (4) and, complementary, im (20, the next smallest route). Counted
    by the patients with sessions (the safety tables' own n), oral (15) is smaller than
    im: deciding alone, a safety table would hide oral with sc and show im.
    """
    cohort = synthetic_cohort(89, seed=5)
    p = cohort.patients.copy()
    routes = ["iv"] * 40 + ["oral"] * 25 + ["im"] * 20 + ["sc"] * 4
    p["route"] = pd.array(routes, dtype=p["route"].dtype)
    cohort.patients = p
    route_of = p.set_index("patient_id")["route"]
    sessions = cohort.sessions.assign(
        route=cohort.sessions["patient_id"].map(route_of).astype(cohort.sessions["route"].dtype)
    )
    without = set(p.loc[p["route"].eq("oral"), "patient_id"][:10])
    cohort.sessions = sessions[~sessions["patient_id"].isin(without)].reset_index(drop=True)
    if cohort.adverse_events is not None and len(cohort.adverse_events):
        ae = cohort.adverse_events
        cohort.adverse_events = ae[~ae["patient_id"].isin(without)].reset_index(drop=True)
    return cohort


def test_safety_tables_hide_the_routes_table_one_hides():
    cohort = _route_cohort()
    assert disclosure.hidden_levels(cohort.patients["route"], 11) == {"sc", "im"}
    t1 = table_one(cohort, by="route", min_cell=11)
    assert t1.loc[0, "im"] == "suppressed" and t1.loc[0, "sc"] == "<11"
    assert t1.loc[0, "oral"] == "25"
    tables = {
        "exposure": dose_summary(cohort, min_cell=11),
        "dissociation": dissociation_table(cohort, min_cell=11),
        "blood_pressure": blood_pressure_table(cohort, min_cell=11),
        "adverse_events": adverse_event_table(cohort, min_cell=11),
    }
    for name, table in tables.items():
        size = "n" if name == "adverse_events" else "n_patients"
        by_route = table.groupby(table["route"].astype(str))[size].apply(lambda v: v.isna().all())
        assert by_route.get("im", True) and by_route.get("sc", True), name
        # oral (15 patients with sessions) is not hidden only because im is
        assert not by_route["oral"] and not by_route["iv"], name
    # the two decisions agree, so nothing follows across Table 1 and the safety tables
    batch = [(f"{k}.csv", k, v) for k, v in tables.items()] + [("t1.csv", "table_one", t1)]
    found = disclosure.cross_table_findings(batch, min_cell=11)
    assert found.empty, found


def test_blood_pressure_hides_a_second_route_within_each_measure():
    # The three rows of a route (SBP, DBP, either) count the same patients, so the
    # routes of one measure are the margin: one hidden route per measure would be all
    # patients minus the others (found by the cross-table audit with Table 1's n).
    cohort = tiny_group_cohort(seed=0, column="route", size=1)
    bp = blood_pressure_table(cohort, min_cell=11)
    hidden = bp.groupby("measure")["n_patients"].agg(lambda s: int(s.isna().sum()))
    assert hidden.to_dict() == {"dbp": 2, "sbp": 2, "sbp_or_dbp": 2}
    full = blood_pressure_table(cohort)
    assert (full.groupby("measure")["n_patients"].apply(lambda s: s.lt(11).sum()) == 1).all()


# ------------------------------------------------------ the number at risk under a KM plot


def _tte_with_a_small_route():
    return pd.DataFrame(
        {
            "route": ["iv"] * 30 + ["oral"] * 25 + ["im"] * 4,
            "time": list(range(1, 31)) + list(range(2, 52, 2)) + [1, 2, 3, 4],
            "event": [1, 0] * 15 + [1] * 25 + [1] * 4,
        }
    )


def test_number_at_risk_counts_patients_still_followed():
    tte = _tte_with_a_small_route()
    table = disclosure.number_at_risk(tte, [0, 10, 20, 30], group="route")
    wide = table.pivot(index="group", columns="time", values="n_at_risk")
    # iv: times 1..30 -> at risk at t is 31 - t (t >= 1); oral: times 2, 4, ..., 50
    assert wide.loc["iv"].tolist() == [30, 21, 11, 1]
    assert wide.loc["oral"].tolist() == [25, 21, 16, 11]
    assert wide.loc["im"].tolist() == [4, 0, 0, 0]
    assert not table["suppressed"].any()


def test_number_at_risk_obeys_the_small_group_rule_and_complementary_suppression():
    tte = _tte_with_a_small_route()
    table = disclosure.number_at_risk(tte, [0, 10, 20, 30], group="route", min_cell=11)
    wide = table.pivot(index="group", columns="time", values="n_at_risk")
    assert wide.loc["im"].isna().all()  # 4 patients: no number at all
    # IM hidden alone at a time would be (all at risk) - IV - oral, so the smaller of IV
    # and oral goes too (oral's 25 at day 0; IV's 21 tied with oral's at day 10 and its
    # 11 at day 20); at day 30 IV's 1 is hidden itself, and since IV and IM (0) together
    # would be all at risk minus oral = 1 person, oral's 11 goes too (hidden cells of a
    # margin add up to 0 or at least min_cell).
    assert wide.loc["iv"].tolist()[0] == 30 and wide.loc["iv"].isna().tolist()[1:] == [True] * 3
    assert wide.loc["oral"].isna().tolist() == [True, False, False, True]
    assert wide.loc["oral"].tolist()[1:3] == [21, 16]
    for _, column in table.groupby("time"):
        shown = column["n_at_risk"].dropna()
        assert not shown.between(1, 10).any()
        assert column["n_at_risk"].isna().sum() != 1


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    min_cell=st.integers(2, 15),
    seed=st.integers(0, 1000),
)
def test_property_number_at_risk_never_shows_a_small_number(sizes, min_cell, seed):
    rng = np.random.default_rng(seed)
    tte = pd.DataFrame(
        {
            "route": np.repeat([f"r{k}" for k in range(len(sizes))], sizes),
            "time": rng.integers(1, 60, size=sum(sizes)),
        }
    )
    table = disclosure.number_at_risk(tte, [0, 14, 28, 42], group="route", min_cell=min_cell)
    shown = table.dropna(subset=["n_at_risk"])
    assert (shown["n_at_risk"] >= min_cell).all()
    small_groups = [f"r{k}" for k, n in enumerate(sizes) if n < min_cell]
    assert table[table["group"].isin(small_groups)]["n_at_risk"].isna().all()
    if len(sizes) > 1:
        assert (table.groupby("time")["n_at_risk"].apply(lambda s: s.isna().sum()) != 1).all()


def test_km_figure_prints_the_number_at_risk_with_marks_and_human_labels():
    tte = _tte_with_a_small_route()
    km = kaplan_meier(tte, group="route", min_cell=11)
    risk = disclosure.number_at_risk(tte, [0, 10, 20, 30], group="route", min_cell=11)
    fig = plot_cumulative_incidence(km, min_cell=11, at_risk=risk)
    main, below = fig.axes
    assert main.get_legend_handles_labels()[1] == ["IV ketamine", "Oral ketamine"]
    full = plot_cumulative_incidence(kaplan_meier(tte, group="route"), min_cell=11)
    assert full.axes[0].get_legend_handles_labels()[1][0] == "IM ketamine: fewer than 11, not shown"
    rows = [t.get_text() for t in below.get_yticklabels()]
    assert rows == ["IM ketamine", "IV ketamine", "Oral ketamine"]
    texts = [t.get_text() for t in below.texts]
    assert texts[:4] == ["X"] * 4  # IM: every number hidden, never a blank
    assert texts[4:8] == ["30", "X", "X", "X"]
    assert texts[8:] == ["X", "21", "16", "X"]  # day 30: IV (1) + IM (0) = all - oral
    assert SUPPRESSED_LABEL in below.get_xlabel()
    # no number under a curve where the curve is not drawn
    assert all(int(t) >= 11 for t in texts if t.isdigit())


# ------------------------------------------------------------- missing-data outputs


def _imputed_sets(sizes: dict, n_sets: int = 2, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(1, n_sets + 1):
        for route, n in sizes.items():
            for _ in range(n):
                rows.append((k, route, bool(rng.random() < 0.5)))
    return pd.DataFrame(rows, columns=["imputation", "route", "response"])


def test_missing_data_comparisons_use_complementary_suppression():
    from analysis.missing_data import pool_rate_differences, pool_rates

    sets = _imputed_sets({"iv": 40, "im": 30, "oral": 20, "sc": 5})
    plain = pool_rate_differences(sets, "response", "route", reference="iv", by=())
    assert plain.set_index("group")["n"].to_dict() == {"im": 30, "oral": 20, "sc": 5}
    out = pool_rate_differences(sets, "response", "route", reference="iv", by=(), min_cell=11)
    hidden = out.set_index("group")["n"].isna()
    # sc (5) hidden, and oral (20, the next smallest) with it: 95 - 40 - 30 - x no longer
    # gives sc
    assert hidden.to_dict() == {"im": False, "oral": True, "sc": True}
    assert out.set_index("group").loc[["oral", "sc"], "risk_difference"].isna().all()
    assert out.loc[out["group"] == "im", "risk_difference"].notna().all()
    rates = pool_rates(sets, by=("route",), min_cell=11).set_index("route")
    assert rates["n"].isna().to_dict() == {"im": False, "iv": False, "oral": True, "sc": True}
    assert rates.loc[["oral", "sc"], "rate"].isna().all()


@pytest.mark.slow
def test_tipping_point_hides_a_tiny_route_and_the_next_smallest():
    from analysis.missing_data import tipping_point

    cohort = tiny_group_cohort(seed=5, column="route", size=4, n_patients=150)
    ep = cohort_endpoints(cohort, "GAD7", impute="bocf", patient_columns=("route",))
    result = tipping_point(
        ep, "route", reference="iv", deltas=[0, 2], n_imputations=2, seed=1, min_cell=11
    )
    for table in (result.tipping_points, result.grid):
        keys = ["delta"] if "delta" in table else []
        for _, rows in table.groupby(keys) if keys else [(None, table)]:
            assert rows["n"].isna().sum() != 1  # never one hidden group per margin
            assert not rows["n"].dropna().between(1, 10).any()
        assert table.loc[table["group"] == "sublingual", "n"].isna().all()


def test_mean_scores_by_route_take_the_same_decision_as_response_by_route():
    # Found by the cross-table audit on a full batch: response by route hid a route as
    # the complement of a small one, while mean scores by route showed it.
    cohort = tiny_group_cohort(seed=7, column="route", size=3, n_patients=150)
    ep = cohort_endpoints(cohort, patient_columns=("route",))
    means = analysis.tables.mean_scores(ep, min_cell=11)
    for _, visit in means.groupby(["instrument", "visit"]):
        assert visit["n"].isna().sum() != 1
        assert not visit["n"].dropna().between(1, 10).any()
    rates = rate_table(ep, "response", by=("instrument", "visit", "route"), min_cell=11,
                       margins="auto")  # fmt: skip
    both = means.merge(rates, on=["instrument", "visit", "route"], suffixes=("_m", "_r"))
    same = both[both["n_m"].eq(both["n_r"]).fillna(False) | both["n_m"].isna()]
    assert len(same) > 10
    tables = _batch(means=means[["instrument", "visit", "route", "n"]],
                    rates=rates[["instrument", "visit", "route", "n"]])  # fmt: skip
    assert disclosure.cross_table_findings(tables).empty


# ------------------------------------------------ figures follow linked suppression


@pytest.fixture
def im_hidden_by_the_linked_decision():
    """A --by-site report set whose tables hide route IM (as load_snapshot sets it)."""
    disclosure.set_linked_suppression([[[["route", "im"]], "n"]], min_cell=11)
    try:
        yield
    finally:
        disclosure.set_linked_suppression([])


def _three_routes_tte():
    return pd.DataFrame(
        {
            "route": ["iv"] * 30 + ["oral"] * 25 + ["im"] * 20,
            "time": list(range(1, 31)) + list(range(2, 52, 2)) + list(range(3, 63, 3)),
            "event": 1,
        }
    )


def test_km_figure_draws_a_group_the_tables_hide_as_the_suppressed_mark(
    im_hidden_by_the_linked_decision,
):
    tte = _three_routes_tte()
    km = kaplan_meier(tte, group="route", min_cell=11)
    assert set(km["group"]) == {"im", "iv", "oral"}  # 20 IM patients: a curve of its own
    risk = disclosure.number_at_risk(tte, [0, 14], group="route", min_cell=11)
    fig = plot_cumulative_incidence(km, min_cell=11, at_risk=risk)
    main, below = fig.axes
    handles, labels = main.get_legend_handles_labels()
    assert labels == [f"IM ketamine: {SUPPRESSED_LABEL}, not shown", "IV ketamine", "Oral ketamine"]
    assert handles[0].get_marker() == "X" and len(handles[0].get_xdata()) == 0  # no curve
    assert len([line for line in main.get_lines() if len(line.get_xdata())]) == 2
    texts = [t.get_text() for t in below.texts]
    assert texts[:2] == ["X", "X"]  # IM's numbers at risk are hidden as in the tables
    assert risk.loc[risk["group"] == "im", "n_at_risk"].isna().all()
    disclosure.set_linked_suppression([])  # outside a --by-site run: IM is drawn
    fig = plot_cumulative_incidence(km, min_cell=11)
    assert fig.axes[0].get_legend_handles_labels()[1][0] == "IM ketamine"


def test_table_figures_and_the_waterfall_follow_the_linked_decision(
    im_hidden_by_the_linked_decision,
):
    table = pd.DataFrame(
        {
            "instrument": "GAD7",
            "visit": ["week1", "week4"] * 3,
            "route": ["iv", "iv", "im", "im", "oral", "oral"],
            "n": [40, 40, 30, 30, 20, 20],
            "events": [20, 22, 15, 14, 12, 11],
            "rate": [0.5, 0.55, 0.5, 0.47, 0.6, 0.55],
            "ci_low": [0.3] * 6,
            "ci_high": [0.7] * 6,
        }
    )
    assert (
        SUPPRESSED_LABEL
        not in plot_rates(table, group="route").axes[0].get_legend_handles_labels()[1]
    )
    # the tables of this set hide the GAD-7 week-4 IM patients (a population key)
    disclosure.set_linked_suppression(
        [
            [[["route", "im"]], "n"],
            [[["instrument", "gad7"], ["route", "im"], ["visit", "week4"]], "n"],
        ],
        min_cell=11,
    )
    ax = plot_rates(table, group="route").axes[0]
    assert SUPPRESSED_LABEL in ax.get_legend_handles_labels()[1]
    marks = [c for c in ax.collections if isinstance(c, PathCollection)]
    # IM at week 4, and oral's (hidden with it in the visit's margin): two marks at 0
    assert sum(len(c.get_offsets()) for c in marks) == 2
    ep = pd.DataFrame(
        {
            "instrument": "GAD7",
            "visit": "week4",
            "route": ["iv"] * 60 + ["im"] * 60,
            "pct_change": [-1.0 * k for k in range(120)],
        }
    )
    ax = plot_waterfall(ep, min_cell=11, binned=False).axes[0]
    assert len(ax.patches) == 60  # IV's bars only
    assert "IM ketamine: suppressed" in ax.get_legend_handles_labels()[1]
    # a population of another instrument does not concern a GAD-7 figure
    disclosure.set_linked_suppression([[[["instrument", "hama"], ["route", "im"]], "n"]])
    assert len(plot_waterfall(ep, min_cell=11, binned=False).axes[0].patches) == 120


def test_hide_populations_complements_each_count_column_on_its_own():
    # The oral row's events are hidden (a small count) but its n is shown. Hiding the IM row
    # must hide a second n of the margin: counting the oral row as "already hidden" left
    # IM's n = total - 40 - 20 recoverable from any table that shows the total (a --by-site
    # run on a 300-patient cohort failed its audit this way, week4_by_route).
    t = pd.DataFrame(
        {
            "route": ["iv", "im", "oral"],
            "n": [40, 30, 20],
            "events": pd.array([20, 15, pd.NA], dtype="Int64"),
        }
    )
    out = disclosure.hide_populations(t, [({("route", "im")}, "n")], min_cell=11)
    assert out["n"].isna().tolist() == [False, True, True]
    assert out.loc[0, "n"] == 40 and out.loc[0, "events"] == 20
