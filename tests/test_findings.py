"""Errors refuse the data; findings load, are listed and are accounted for.

The rule (docs/design.md, "Errors and findings"): refuse only what makes the
numbers wrong or the data unsafe; account for everything else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cohort_fixtures import valid_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main
from analysis.deid import DeidentificationError
from analysis.endpoints import endpoint_accounting
from analysis.instruments import GAD7, HAMA, INSTRUMENTS
from analysis.schema import (
    REPORT_COLUMNS,
    DataValidationError,
    load_cohort,
    validate,
    validate_cohort,
    write_cohort,
)


def _write(tables, folder) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


# ----------------------------------------------------------------------------- error classes


def _break(kind: str) -> dict:
    """The valid fixture with one error of the given class."""
    t = valid_tables()
    a, p = t["assessments"], t["patients"]
    gad = a.index[a["instrument"] == "GAD7"]
    if kind == "identifier":
        p["email"] = "someone@example.org"
    elif kind == "type":
        p.loc[0, "age"] = "thirty"
    elif kind == "item_range":
        a.loc[gad[0], "item_2"] = str(GAD7.item_max + 1)
    elif kind == "total_range":
        a.loc[gad[0], [*GAD7.item_columns]] = None
        a.loc[gad[0], "total"] = str(GAD7.total_max + 1)
    elif kind == "total_contradicts_items":
        a.loc[gad[0], "total"] = str(int(a.loc[gad[0], "total"]) - 1)
    elif kind == "duplicate_key":
        t["assessments"] = pd.concat([a, a.iloc[[0]]], ignore_index=True)
    elif kind == "unknown_patient":
        a.loc[0, "patient_id"] = "NOBODY"
    elif kind == "missing_required_column":
        t["assessments"] = a.drop(columns="study_day")
    elif kind == "duplicate_adverse_event":
        ae = t["adverse_events"]
        t["adverse_events"] = pd.concat([ae, ae.iloc[[0]]], ignore_index=True)
    elif kind == "impossible_adverse_event_day":
        t["adverse_events"].loc[0, "study_day"] = "-99999"
    elif kind == "implausible_dose":
        t["sessions"].loc[0, "dose_mg"] = "1e300"
    elif kind == "implausible_dose_per_kg":
        t["sessions"].loc[0, "dose_mg_per_kg"] = "14"
    elif kind == "impossible_session_day":
        t["sessions"].loc[1, "study_day"] = "99999"
    return t


ERRORS = {
    "identifier": "identifier_name",
    "type": "type integer",
    "item_range": "in_range 0-3 for GAD7",
    "total_range": "in_range 0-21 for GAD7",
    "total_contradicts_items": "total_matches_items for GAD7",
    "duplicate_key": "unique patient_id+instrument+study_day",
    "unknown_patient": "foreign_key patients.patient_id",
    "missing_required_column": "required_column",
    "duplicate_adverse_event": "duplicate_row: every column repeated",
    "impossible_adverse_event_day": "in_range -90-1095",
    "implausible_dose": "maximum 2000",
    "implausible_dose_per_kg": "maximum 13",
    "impossible_session_day": "in_range 0-1095",
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_each_error_class_is_still_refused(kind, tmp_path):
    folder = _write(_break(kind), tmp_path)
    with pytest.raises(DataValidationError) as info:
        load_cohort(folder)
    assert ERRORS[kind] in set(info.value.failures["check"]), info.value.failures
    report = info.value.report
    assert list(report.errors.columns) == list(REPORT_COLUMNS)
    assert (report.errors["severity"] == "error").all()
    if kind == "identifier":
        assert isinstance(info.value, DeidentificationError)
        assert "someone@example.org" not in str(info.value)


def test_the_valid_fixture_has_no_errors(tmp_path):
    assert load_cohort(_write(valid_tables(), tmp_path)).patients.shape[0] == 4


def test_a_duplicate_adverse_event_with_another_severity_is_two_events():
    t = valid_tables()
    ae = t["adverse_events"]
    second = ae.iloc[[0]].assign(severity="severe")
    t["adverse_events"] = pd.concat([ae, second], ignore_index=True)
    assert validate_cohort(t).ok


# ----------------------------------------------------------------------------- findings


def _with_findings() -> dict:
    """Valid tables plus one row or patient of each kind of finding."""
    t = valid_tables()
    a = t["assessments"]
    extra = a.iloc[[0, 0, 0]].reset_index(drop=True)
    extra["study_day"] = ["9", "200", "35"]
    extra.loc[extra.index[0], [*GAD7.item_columns[:3], "total"]] = None  # unscorable
    extra.loc[extra.index[2], "patient_id"] = "P000999"  # a patient without baseline
    p = pd.concat([t["patients"], t["patients"].iloc[[0]].assign(patient_id="P000999")])
    t["patients"] = pd.concat(
        [p, t["patients"].iloc[[0]].assign(patient_id="P000998")], ignore_index=True
    )
    t["assessments"] = pd.concat([a, extra], ignore_index=True)
    s = t["sessions"]
    t["sessions"] = pd.concat(
        [s, s.iloc[[0]].assign(session_number="9", study_day="400")], ignore_index=True
    )
    return t


def test_findings_load_are_listed_and_strict_refuses_them(tmp_path):
    tables = _with_findings()
    folder = _write(tables, tmp_path)
    cohort = load_cohort(folder)
    n = len(valid_tables()["assessments"])
    rows = cohort.findings[~cohort.findings["check"].str.startswith("unknown_column")]
    got = set(zip(rows["table"], rows["row"], rows["check"], strict=True))
    assert got == {
        ("assessments", n, "unscorable for GAD7: no total and fewer than 6 of 7 items"),
        ("assessments", n + 1, "outside_schedule for GAD7"),
        ("patients", 4, "no_baseline for GAD7"),
        ("patients", 5, "no_assessments"),
        ("sessions", len(valid_tables()["sessions"]), "after_last_assessment"),
    }
    unscorable = cohort.findings[cohort.findings["check"].str.startswith("unscorable")]
    assert unscorable["line"].tolist() == [n + 2]  # header = line 1
    assert unscorable["value"].isna().all()
    # the rows are in the cohort and accounted for
    accounting = endpoint_accounting(cohort)
    assert accounting.loc[n, "reason"] == "unscorable"
    assert accounting.loc[n + 1, "reason"] == "outside_schedule"
    assert accounting.loc[n + 2, "reason"] == "no_baseline"
    with pytest.raises(DataValidationError) as info:
        load_cohort(folder, strict=True)
    assert "unscorable for GAD7" in str(info.value)
    assert len(info.value.failures) == len(cohort.findings)


def test_values_are_shown_only_where_they_cannot_identify_anyone():
    t = valid_tables()
    t["assessments"].loc[0, "patient_id"] = "NOBODY"
    t["assessments"].loc[1, "item_2"] = "4"
    report = validate_cohort(t)
    shown = dict(zip(report.errors["check"], report.errors["value"], strict=True))
    assert shown["foreign_key patients.patient_id"] is pd.NA
    assert shown["in_range 0-3 for GAD7"] == "4"
    text = report.describe()
    assert "NOBODY" not in text and "values: 4" in text
    assert "(line 2)" in text and "(line 3)" in text
    # `.failures` never carries a value of a column that can hold free text or an
    # identifier (issue 9's rule, deid.redact_failures); the range value stays
    assert "NOBODY" not in set(report.failures["value"].dropna())
    assert "4" in set(report.failures["value"].dropna())


def test_validate_returns_a_report_on_request():
    t = valid_tables()
    t["assessments"].loc[0, [*GAD7.item_columns, "total"]] = None
    typed = validate(t["assessments"], "assessments")
    assert len(typed) == len(t["assessments"])
    report = validate(t["assessments"], "assessments", report=True)
    assert report.ok and report.findings["check"].str.startswith("unscorable").sum() == 1
    assert report.tables["assessments"].shape == typed.shape


# ----------------------------------------------------------------------------- property


def _assessment_row(pid, instrument, day, kind, rng_values):
    """One assessment: ``complete``, ``prorated``, ``total_only`` or ``unscorable``."""
    n, top = instrument.n_items, instrument.item_max
    items = [int(v) % (top + 1) for v in rng_values[:n]]
    row = {"patient_id": pid, "instrument": instrument.name, "study_day": day}
    total = sum(items)
    if kind == "prorated":
        items[: instrument.max_missing_items] = [None] * instrument.max_missing_items
        total = None
    elif kind == "total_only":
        items = [None] * n
    elif kind == "unscorable":
        items[: instrument.max_missing_items + 1] = [None] * (instrument.max_missing_items + 1)
        total = None
    for k, column in enumerate(instrument.item_columns):
        row[column] = items[k]
    row["total"] = total
    return row


@st.composite
def cohorts_with_findings(draw):
    n_patients = draw(st.integers(1, 6))
    ids = [f"P{k:03d}" for k in range(n_patients + draw(st.integers(0, 2)))]
    rows, used = [], set()
    for pid in ids[:n_patients]:
        for _ in range(draw(st.integers(0, 6))):
            instrument = draw(st.sampled_from(list(INSTRUMENTS.values())))
            day = draw(st.one_of(st.integers(-90, 120), st.integers(-90, 1095)))
            if (pid, instrument.name, day) in used:
                continue
            used.add((pid, instrument.name, day))
            kind = draw(st.sampled_from(["complete", "prorated", "total_only", "unscorable"]))
            values = draw(st.lists(st.integers(0, 4), min_size=14, max_size=14))
            rows.append(_assessment_row(pid, instrument, day, kind, values))
    patients = pd.DataFrame({"patient_id": ids, "route": "iv"})
    columns = ["patient_id", "instrument", "study_day", *HAMA.item_columns, "total"]
    assessments = pd.DataFrame(rows, columns=columns)
    return {"patients": patients, "assessments": assessments}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tables=cohorts_with_findings())
def test_random_mixes_of_valid_and_finding_rows_load_and_every_row_is_accounted(tables):
    with tempfile.TemporaryDirectory() as folder:
        cohort = load_cohort(_write(tables, folder))
    n = len(tables["assessments"])
    assert len(cohort.assessments) == n
    accounting = endpoint_accounting(cohort)
    assert accounting["row"].tolist() == list(range(n))  # every input row, once
    assert accounting["reason"].notna().all()
    findings = cohort.findings
    unscorable_rows = set(findings.loc[findings["check"].str.startswith("unscorable"), "row"])
    assert unscorable_rows == set(np.flatnonzero(accounting["reason"] == "unscorable"))
    outside = set(findings.loc[findings["check"].str.startswith("outside_schedule"), "row"])
    accounted_outside = set(np.flatnonzero(accounting["reason"] == "outside_schedule"))
    assert accounted_outside == outside - unscorable_rows
    no_baseline = findings[findings["check"].str.startswith("no_baseline")]
    flagged = {
        (cohort.patients.loc[r, "patient_id"], c.rsplit(" ", 1)[1])
        for r, c in zip(no_baseline["row"], no_baseline["check"], strict=True)
    }
    rows = accounting[accounting["reason"] == "no_baseline"]
    assert set(zip(rows["patient_id"], rows["instrument"], strict=True)) <= flagged


# ----------------------------------------------------------------------------- command line


def test_cli_validate_lists_findings_exits_0_strict_exits_1_and_writes_failures(tmp_path, capsys):
    folder = _write(_with_findings(), tmp_path / "cohort")
    n = len(valid_tables()["assessments"])
    capsys.readouterr()
    assert main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: 6 patients")
    assert f"(line {n + 2})" in out and "unscorable for GAD7" in out
    assert "P000999" not in out  # patient codes are never printed
    target = tmp_path / "failures.csv"
    assert main(["validate", str(folder), "--strict", "--failures", str(target)]) == 1
    err = capsys.readouterr().err
    assert "Errors (refused)" in err and "fix:" in err
    written = pd.read_csv(target)
    assert {"table", "row", "line", "column", "check", "severity", "value"} <= set(written)
    assert (written["severity"] == "error").all()
    assert len(written) == len(validate_cohort(folder).findings)


def test_cli_validate_errors_print_lines_and_fix(tmp_path, capsys):
    folder = _write(_break("item_range"), tmp_path)
    capsys.readouterr()
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "assessments.item_2: 1 row `in_range 0-3 for GAD7` (line 2); values: 4" in err
    assert "fix: correct the value" in err


# ----------------------------------------------------------------------------- optional tables


def test_absent_optional_tables_are_not_collected_and_not_zero_events(tmp_path):
    from analysis.safety import adverse_event_table, collection_status, dose_summary

    t = valid_tables()
    folder = _write({"patients": t["patients"], "assessments": t["assessments"]}, tmp_path)
    cohort = load_cohort(folder)
    assert cohort.collected == ("patients", "assessments")
    assert not cohort.is_collected("adverse_events") and cohort.adverse_events.empty
    ae = adverse_event_table(cohort)
    assert ae.empty and ae.attrs["not_collected"] == "adverse_events"
    assert dose_summary(cohort).empty
    status = collection_status(cohort)
    assert status.loc[status["table"] == "adverse_events", "note"].item() == (
        "not collected in this data set"
    )
    # written back, an uncollected table stays uncollected
    again = load_cohort(write_cohort(cohort, tmp_path / "again"))
    assert again.collected == ("patients", "assessments")
    # a file with its header and no rows: collected, zero events
    pd.DataFrame(columns=["patient_id", "study_day", "term"]).to_csv(
        folder / "adverse_events.csv", index=False
    )
    cohort = load_cohort(folder)
    assert cohort.is_collected("adverse_events")
    assert adverse_event_table(cohort)["patients"].eq(0).all()


@pytest.mark.slow
def test_every_report_renders_for_a_folder_with_only_patients_and_assessments(tmp_path, capsys):
    from analysis.synthetic import synthetic_cohort

    cohort = synthetic_cohort(60, seed=2)
    folder = write_cohort(type(cohort)(cohort.patients, cohort.assessments), tmp_path / "cohort")
    assert sorted(p.name for p in folder.iterdir()) == ["assessments.csv", "patients.csv"]
    out = tmp_path / "reports"
    assert main(["report", str(folder), "--out", str(out), "--quiet"]) == 0
    safety = (out / "05_safety.html").read_text(encoding="utf-8")
    assert "not collected in this data set" in safety
