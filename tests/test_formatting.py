"""The display layer: labels, estimate text and the great_tables renderings.

String-level assertions on the formatted cells and on the HTML of each table; the
numbers come from the library's tidy tables, which stay unchanged.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from analysis.formatting import (
    LABELS,
    MISSING,
    SUPPRESSED_MARK,
    format_estimate,
    format_interval,
    format_p,
    gt_comparison,
    gt_contrasts,
    gt_lsmeans,
    gt_rates,
    gt_table,
    gt_table_one,
    label,
    rates_wide,
)
from analysis.rates import compare_rates, rate_table
from analysis.synthetic import synthetic_cohort
from analysis.tables import cohort_endpoints, completeness_table, outcome_rates, table_one


@pytest.fixture(scope="module")
def cohort():
    return synthetic_cohort(n_patients=200, seed=4)


@pytest.fixture(scope="module")
def endpoints(cohort):
    return cohort_endpoints(cohort)


def _plain(html: str) -> str:
    """The HTML with the tables' no-break spaces and hyphens as plain ones."""
    return html.replace("\u00a0", " ").replace("\u2011", "-")


def _body_cells(html: str) -> list[str]:
    body = _plain(html).split("<tbody", 1)[1]
    return [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", body, re.S)
    ]


def test_estimate_text_matches_the_issue_example():
    # "239/407 (58.7%) [53.9-63.4]": the format asked for in issue 12.
    assert format_estimate(239, 407, 239 / 407, 0.5392, 0.6336) == "239/407 (58.7%) [53.9-63.4]"
    assert format_estimate(239, 407) == "239/407 (58.7%)"


def test_suppressed_and_empty_estimates():
    assert format_estimate(pd.NA, 407) == f"n=407, suppressed{SUPPRESSED_MARK}"
    assert format_estimate(np.nan, np.nan) == f"suppressed{SUPPRESSED_MARK}"
    assert format_estimate(0, 0) == MISSING


@given(st.integers(0, 500), st.integers(1, 500))
@example(36, 192)  # 18.75 % shown as 18.8: off by exactly half a unit of the last digit
def test_estimate_percent_is_events_over_n(events, n):
    events = min(events, n)
    text = format_estimate(events, n)
    shown = float(re.search(r"\(([\d.]+)%\)", text)[1])
    assert text.startswith(f"{events}/{n} ")
    # one decimal: at most half a unit off (18.8 - 18.75 is 0.05 plus a float's rounding)
    assert shown == pytest.approx(100 * events / n, abs=0.05 + 1e-9)


def test_interval_and_p_text():
    assert format_interval(-4.31, -5.12, -3.5) == "\u22124.3 [\u22125.1 to \u22123.5]"
    assert format_interval(0.2, 0.1, 0.3, scale=100, digits=0) == "20 [10 to 30]"
    assert format_p(0.0009) == "<0.001"
    assert format_p(0.001) == "0.001"
    assert format_p(np.nan) == MISSING


def test_label_registry_covers_every_value_a_report_shows():
    from analysis.endpoints import REASONS, make_schedule
    from analysis.instruments import INSTRUMENTS
    from analysis.schema import read_schema

    enums = {
        f["name"]: f.get("constraints", {}).get("enum", [])
        for f in read_schema("patients")["fields"]
    }
    for kind in ("route", "primary_diagnosis", "sex"):
        assert set(enums[kind]) <= set(LABELS[kind]), kind
    assert {v.name for v in make_schedule(None)} <= set(LABELS["visit"])
    assert set(INSTRUMENTS) <= set(LABELS["instrument"])
    assert set(REASONS) <= set(LABELS["reason"])
    for outcome in ("response", "partial_response", "remission", "reliable_recovery"):
        assert label(outcome, "outcome") != outcome
    # no label is the snake_case machine name
    assert not any("_" in text for kinds in LABELS.values() for text in kinds.values())


def test_rates_wide_puts_visits_in_schedule_order(endpoints):
    table = outcome_rates(endpoints, ("response", "remission"), min_cell=11)
    wide = rates_wide(table)
    visits = [c for c in wide.columns if c not in ("outcome", "instrument")]
    assert visits == ["Day 1", "Week 1", "Week 2", "Week 4", "Week 8", "Week 12"]
    row = wide[(wide["outcome"] == "Response") & (wide["instrument"] == "GAD-7")].iloc[0]
    tidy = table.query("outcome == 'response' and instrument == 'GAD7' and visit == 'week4'")
    r = tidy.iloc[0]
    assert row["Week 4"] == (
        f"{int(r.events)}/{int(r.n)} ({100 * r.rate:.1f}%) "
        f"[{100 * r.ci_low:.1f}-{100 * r.ci_high:.1f}]"
    )
    # HAM-A is not scheduled at day 1: an empty cell, not a zero
    hama = wide[(wide["outcome"] == "Response") & (wide["instrument"] == "HAM-A")].iloc[0]
    assert hama["Day 1"] == MISSING


def test_gt_rates_html_has_labels_footnotes_and_no_index(endpoints):
    table = rate_table(endpoints, "response", by=("instrument", "visit", "route"), min_cell=11)
    raw = gt_rates(table, ("instrument", "route"), title="Response", min_cell=11).as_raw_html()
    html = _plain(raw)
    assert "IV ketamine" in html and "Week 12" in html and "GAD-7" in html
    assert "Wilson" in html and "Response: score 50% or more below baseline." not in html
    assert "week12" not in html and ">iv<" not in html
    assert not re.search(r"<t[dh][^>]*>\s*0\s*</t[dh]>", html)  # no 0..N index column
    cells = _body_cells(html)
    assert any(re.fullmatch(r"\d+/\d+ \(\d+\.\d%\) \[\d+\.\d-\d+\.\d\]", c) for c in cells)
    # a cell may wrap only before its interval
    assert re.search(r"\d+/\d+\xa0\(\d+\.\d%\) \[\d+\.\d\u2011\d+\.\d\]", raw)
    if table["suppressed"].any():
        assert "Suppressed: a count of 1 to 10 patients" in html


def test_gt_rates_footnote_defines_the_outcomes(endpoints):
    html = _plain(gt_rates(outcome_rates(endpoints, ("response", "remission"))).as_raw_html())
    assert "Response: score 50% or more below baseline." in html
    assert "Remission: GAD-7 4 or less, HAM-A 7 or less" in html
    assert SUPPRESSED_MARK not in html  # nothing suppressed without min_cell


def test_gt_table_one_by_route_with_overall(cohort):
    t1 = table_one(cohort, by="route", min_cell=11)
    html = _plain(gt_table_one(t1, min_cell=11).as_raw_html())
    n_iv = t1.loc[t1["variable"] == "n", "iv"].iloc[0]
    assert f"IV ketamine (N = {n_iv})" in html
    assert f"Overall (N = {len(cohort.patients)})" in html
    assert "Age, years" in html and "Primary diagnosis" in html
    assert "Mean (SD)" in html and "Median [IQR]" in html
    assert "primary_diagnosis" not in html and "Generalized anxiety disorder" in html
    if (t1 == "suppressed").any().any() or t1.apply(
        lambda c: c.astype(str).str.startswith("<")
    ).any().any():
        assert f"<11{SUPPRESSED_MARK}" in html or f"suppressed{SUPPRESSED_MARK}" in html
        assert "Suppressed:" in html


def test_gt_comparison_cells(endpoints):
    week4 = endpoints[endpoints["visit"] == "week4"]
    args = dict(reference="iv", by="instrument", p_adjust="holm")
    table = compare_rates(week4, "response", "route", **args)
    html = _plain(gt_comparison(table).as_raw_html())
    assert "Oral ketamine vs IV ketamine" in html
    assert "Adjusted p" in html and "Newcombe" in html and "Holm" in html
    first = table.iloc[0]
    rd = format_interval(
        first["risk_difference"], first["rd_ci_low"], first["rd_ci_high"], scale=100
    )
    assert rd in html and format_p(first["p_adjusted"]) in _body_cells(html)
    small = compare_rates(week4, "response", "route", **args, min_cell=11)
    assert small["suppressed"].any()  # 200 patients: some routes have few responders
    html = _plain(gt_comparison(small, min_cell=11).as_raw_html())
    assert f"suppressed{SUPPRESSED_MARK}" in html and "min_cell = 11" in html


def test_gt_lsmeans_and_contrasts_visit_order():
    lsm = pd.DataFrame(
        {
            "route": ["iv", "im"] * 3,
            "visit": ["week12", "week12", "week2", "week2", "week4", "week4"],
            "estimate": [-6.0, -5.5, -4.0, -3.0, -5.0, -4.5],
            "ci_low": [-7.0, -6.5, -5.0, -4.0, -6.0, -5.5],
            "ci_high": [-5.0, -4.5, -3.0, -2.0, -4.0, -3.5],
        }
    )
    html = _plain(gt_lsmeans(lsm, title="GAD-7").as_raw_html())
    assert html.index("Week 2") < html.index("Week 4") < html.index("Week 12")
    assert "\u22124.0 [\u22125.0 to \u22123.0]" in html and "IM ketamine" in html
    pairs = pd.DataFrame(
        {
            "visit": ["week12", "week2"],
            "contrast": ["im - iv", "im - iv"],
            "estimate": [0.5, 1.0],
            "ci_low": [-0.5, 0.1],
            "ci_high": [1.5, 1.9],
            "p": [0.3, 0.03],
            "p_adjusted": [0.3, 0.06],
        }
    )
    html = _plain(gt_contrasts(pairs).as_raw_html())
    assert html.index("Week 2") < html.index("Week 12")
    assert "IM ketamine \u2212 IV ketamine" in html and "0.060" in html and "Holm" in html


def test_gt_table_marks_suppressed_cells(cohort):
    table = completeness_table(synthetic_cohort(n_patients=30, seed=1), min_cell=11)
    html = _plain(gt_table(table, group="instrument", min_cell=11).as_raw_html())
    assert "Expected" in html and "Week 12" in html
    assert ">suppressed<" not in html  # the flag column is not shown
    if table["suppressed"].any():
        assert f"{MISSING}{SUPPRESSED_MARK}" in html and "min_cell = 11" in html


def test_gt_table_transposed_and_joined_interval():
    table = pd.DataFrame(
        {
            "route": ["iv", "oral"],
            "n": [120, 40],
            "patients": pd.array([30, pd.NA], dtype="Int64"),
            "percent": [25.0, np.nan],
            "ci_low": [18.1, np.nan],
            "ci_high": [33.5, np.nan],
            "suppressed": [False, True],
        }
    )
    html = _plain(gt_table(table, columns="route", min_cell=11).as_raw_html())
    cells = _body_cells(html)
    assert "IV ketamine" in html.split("<tbody")[0]  # routes are the columns
    assert cells[:3] == ["N", "120", "40"]
    k = cells.index("95% CI")
    assert cells[k : k + 3] == ["95% CI", "18.1 to 33.5", f"{MISSING}{SUPPRESSED_MARK}"]


def test_tidy_tables_unchanged_by_formatting(endpoints):
    table = outcome_rates(endpoints, "response", min_cell=11)
    before = table.copy()
    gt_rates(table, min_cell=11).as_raw_html()
    pd.testing.assert_frame_equal(table, before)


def test_gt_table_labels_a_column_whose_kind_the_caller_names():
    # median_time_to_event names its grouping column "group"; report 04 says it is a route
    from analysis.formatting import gt_table

    t = pd.DataFrame({"group": ["iv", "im"], "n": [40, 30], "median": [11.0, 9.0]})
    plain = gt_table(t).as_raw_html()
    named = gt_table(t, kinds={"group": "route"}).as_raw_html()
    assert ">iv<" in plain and "IV ketamine" not in plain
    assert "IV ketamine" in named and "IM ketamine" in named and ">iv<" not in named


def test_gt_table_decimals_per_column_and_the_risk_difference_interval():
    # The multiple-imputation tables of report 02: rates and differences to 3 decimals,
    # whole points of a tipping point to none, the risk difference's bounds joined into
    # one interval, and the missing-data assumption spelled out.
    table = pd.DataFrame(
        {
            "strategy": ["mar", "j2r"],
            "group": ["im", "im"],
            "rate": [0.6604, 0.6581],
            "risk_difference": [0.0493, 0.0468],
            "rd_ci_low": [-0.0903, -0.0921],
            "rd_ci_high": [0.1884, 0.1853],
            "tipping_point": [2.0, np.nan],
            "fmi": [0.1671, 0.1623],
        }
    )
    digits = {"rate": 3, "risk_difference": 3, "rd_ci_low": 3, "rd_ci_high": 3, "tipping_point": 0}
    html = _plain(gt_table(table, group="strategy", digits=digits).as_raw_html())
    cells = _body_cells(html)
    assert "Missing at random (MAR)" in html and "Jump to reference (J2R)" in html
    assert "Risk difference, 95% CI" in html.split("<tbody")[0] and "FMI" in html
    first = cells[cells.index("im") :][:6]
    assert first == ["im", "0.660", "0.049", "−0.090 to 0.188", "2", "0.2"]
    assert gt_table(table, digits=2).as_raw_html().count("0.66<") == 2  # one int for all
    # a section run on too little data holds its note alone: no row groups, no stub asked
    note = pd.DataFrame({"group": ["im"], "reference": ["iv"], "note": ["too few patients"]})
    html = _plain(gt_table(note, group="strategy", stub="delta").as_raw_html())
    assert "too few patients" in html and "im" in _body_cells(html)
