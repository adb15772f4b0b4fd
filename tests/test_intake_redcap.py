"""Intake from a REDCap project: raw export + data dictionary, longitudinal and repeating.

The fixture project (invented records, written by the tests) has the layout of a REDCap
"CSV (raw data)" export: one row per record and event, one row per instance of the
repeating `ketamine_session` instrument, radio and checkbox answers as codes
(`field___code` columns for checkboxes), survey timestamps, `*_complete` status fields
and a data access group. Expected values are worked out by hand below.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import derive_endpoints, load_cohort
from analysis.cli import main
from analysis.intake import (
    ImportMapping,
    IntakeError,
    MappingError,
    from_redcap,
    pseudonym,
    read_mapping,
    write_import,
)

ROOT = Path(__file__).resolve().parent.parent
REDCAP_MAP = ROOT / "data_schema" / "mappings" / "redcap.yaml"
KEY = bytes(range(32))

GAD = "0, Not at all | 1, Several days | 2, More than half the days | 3, Nearly every day"
HAM = "0, Not present | 1, Mild | 2, Moderate | 3, Severe | 4, Very severe"


def dictionary() -> pd.DataFrame:
    rows = [
        ("record_id", "demographics", "text", "", "", ""),
        ("first_name", "demographics", "text", "", "", "y"),
        ("last_name", "demographics", "text", "", "", "y"),
        ("dob", "demographics", "text", "", "date_ymd", "y"),
        ("phone", "demographics", "text", "", "phone", "y"),
        ("sex", "demographics", "radio", "1, Female | 2, Male", "", ""),
        ("route", "demographics", "radio", "1, IV | 2, IM | 3, Intranasal esketamine", "", ""),
        ("dx", "demographics", "dropdown", "1, GAD | 2, PTSD", "", ""),
        ("comorbid", "demographics", "checkbox", "1, Major depression | 2, Substance use", "", ""),
        ("clinician_notes", "demographics", "notes", "", "", ""),
        ("gad7_date", "gad7", "text", "", "date_ymd", ""),
        *[(f"gad7_{k}", "gad7", "radio", GAD, "", "") for k in range(1, 8)],
        ("gad7_total", "gad7", "calc", "sum([gad7_1],[gad7_2])", "", ""),
        ("hama_date", "hama", "text", "", "date_ymd", ""),
        ("hama_rater", "hama", "text", "", "", ""),
        *[(f"hama_{k}", "hama", "radio", HAM, "", "") for k in range(1, 15)],
        ("ket_date", "ketamine_session", "text", "", "date_ymd", ""),
        ("ket_dose_mg", "ketamine_session", "text", "", "number", ""),
        ("ket_side_effects", "ketamine_session", "checkbox",
         "1, nausea | 2, dizziness | 3, dissociation", "", ""),
    ]  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "Variable / Field Name",
            "Form Name",
            "Field Type",
            "Choices, Calculations, OR Slider Labels",
            "Text Validation Type OR Show Slider Number",
            "Identifier?",
        ],
    )


def records() -> pd.DataFrame:
    def row(record, event, repeat="", instance="", **values):
        return {
            "record_id": record,
            "redcap_event_name": event,
            "redcap_repeat_instrument": repeat,
            "redcap_repeat_instance": instance,
            "redcap_data_access_group": "downtown_clinic",
            **values,
        }

    def gad(date, items, total=None):
        out = {"gad7_date": date, "gad7_timestamp": date + " 09:12:44", "gad7_complete": "2"}
        out |= {f"gad7_{k}": str(v) for k, v in enumerate(items, start=1)}
        return out | {"gad7_total": str(sum(items) if total is None else total)}

    def ham(date, items, rater):
        out = {"hama_date": date, "hama_rater": rater, "hama_complete": "2"}
        return out | {f"hama_{k}": str(v) for k, v in enumerate(items, start=1)}

    def session(date, dose, ticked):
        out = {"ket_date": date, "ket_dose_mg": dose, "ketamine_session_complete": "2"}
        return out | {f"ket_side_effects___{c}": str(int(c in ticked)) for c in "123"}

    demo_1001 = {
        "first_name": "Grace", "last_name": "Examplewoman", "dob": "1975-08-15",
        "phone": "(555) 010-0123", "sex": "1", "route": "1", "dx": "1",
        "comorbid___1": "1", "comorbid___2": "0", "clinician_notes": "lives with sister",
        "demographics_complete": "2",
    }  # fmt: skip
    demo_1002 = {
        "first_name": "Henry", "last_name": "Samplesmith", "dob": "1950-01-01",
        "phone": "(555) 010-0456", "sex": "2", "route": "2", "dx": "2",
        "comorbid___1": "0", "comorbid___2": "0", "clinician_notes": "",
        "demographics_complete": "2",
    }  # fmt: skip
    rows = [
        row("1001", "baseline_arm_1", **demo_1001, **gad("2024-02-01", [3, 2, 3, 2, 3, 2, 3]),
            **ham("2024-02-01", [2] * 14, "Dr Rater")),
        row("1001", "baseline_arm_1", "ketamine_session", "1", **session("2024-02-02", "40", "1")),
        row("1001", "baseline_arm_1", "ketamine_session", "2", **session("2024-02-05", "40", "")),
        row("1001", "baseline_arm_1", "ketamine_session", "3", **session("2024-02-09", "40", "23")),
        row("1001", "week_1_arm_1", **gad("2024-02-09", [1] * 7)),
        row("1001", "week_4_arm_1", **gad("2024-03-01", [0, 1, 0, 1, 0, 1, 0]),
            **ham("2024-03-01", [1] * 14, "Dr Rater")),
        row("1002", "baseline_arm_1", **demo_1002, **gad("2024-06-03", [2] * 7)),
        row("1002", "baseline_arm_1", "ketamine_session", "1", **session("2024-06-03", "60", "")),
        row("1002", "week_1_arm_1", **gad("2024-06-10", [1, 1, 2, 1, 1, 1, 1])),
    ]  # fmt: skip
    return pd.DataFrame(rows).fillna("")


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "redcap"
    folder.mkdir()
    records().to_csv(folder / "records.csv", index=False)
    dictionary().to_csv(folder / "dictionary.csv", index=False)
    return folder / "records.csv", folder / "dictionary.csv"


def test_redcap_example_cell_by_cell(project, tmp_path):
    records_csv, dictionary_csv = project
    cohort = from_redcap(records_csv, dictionary_csv, REDCAP_MAP, key=KEY)
    cohort = load_cohort(write_import(cohort, tmp_path / "cohort"))
    p1, p2 = pseudonym("1001", KEY), pseudonym("1002", KEY)

    patients = cohort.patients.set_index("patient_id")
    assert list(patients.index) == [p1, p2]
    assert set(patients["site_id"]) == {pseudonym("downtown_clinic", KEY, "site")}
    assert patients["sex"].tolist() == ["female", "male"]  # radio 1, 2 through the dictionary
    assert patients["route"].tolist() == ["iv", "im"]  # labels IV, IM -> schema codes
    assert patients["primary_diagnosis"].tolist() == ["GAD", "PTSD"]
    assert patients["comorbid_depression"].tolist() == [True, False]  # comorbid___1
    # 1975-08-15 to 2024-02-02 -> 48; 1950-01-01 to 2024-06-03 -> 74
    assert patients["age"].tolist() == [48, 74]

    sessions = cohort.sessions
    assert sessions["patient_id"].tolist() == [p1, p1, p1, p2]
    assert sessions["session_number"].tolist() == [1, 2, 3, 1]
    assert sessions["study_day"].tolist() == [0, 3, 7, 0]
    assert sessions["dose_mg"].tolist() == [40.0, 40.0, 40.0, 60.0]
    assert sessions["route"].tolist() == ["iv", "iv", "iv", "im"]

    a = cohort.assessments
    gad = a[a["instrument"] == "GAD7"]
    assert gad["patient_id"].tolist() == [p1, p1, p1, p2, p2]
    assert gad["study_day"].tolist() == [-1, 7, 28, 0, 7]
    assert gad["total"].tolist() == [18, 7, 3, 14, 8]
    assert gad["item_1"].tolist() == [3, 1, 0, 2, 1]
    assert gad["item_3"].tolist() == [3, 1, 0, 2, 2]
    hama = a[a["instrument"] == "HAMA"]
    assert hama["study_day"].tolist() == [-1, 28]
    assert hama[[f"item_{k}" for k in range(1, 15)]].sum(axis=1).tolist() == [28, 14]
    assert set(hama["rater_id"]) == {pseudonym("Dr Rater", KEY, "rater")}

    ae = cohort.adverse_events
    # session 1 (day 0) nausea; session 3 (day 7) dizziness and dissociation
    assert sorted(zip(ae["patient_id"], ae["study_day"], ae["term"], strict=True)) == sorted(
        [(p1, 0, "nausea"), (p1, 7, "dizziness"), (p1, 7, "dissociation")]
    )


def test_redcap_example_endpoints(project):
    cohort = from_redcap(*project, REDCAP_MAP, key=KEY)
    p1, p2 = pseudonym("1001", KEY), pseudonym("1002", KEY)
    ep = derive_endpoints(cohort, "GAD7").set_index(["patient_id", "visit"])
    assert sorted(ep.index) == sorted([(p1, "week1"), (p1, "week4"), (p2, "week1")])
    expected = {
        # 1001: baseline 18 (day -1); day 7: 7; day 28: 3. 1002: baseline 14 (day 0); day 7: 8
        (p1, "week1"): dict(baseline=18, score=7, change=-11, response=True,
                            partial_response=False, remission=False, reliable_improvement=True,
                            recovery=True, reliable_recovery=True),
        (p1, "week4"): dict(baseline=18, score=3, change=-15, response=True,
                            partial_response=False, remission=True, reliable_improvement=True,
                            recovery=True, reliable_recovery=True),
        (p2, "week1"): dict(baseline=14, score=8, change=-6, response=False,
                            partial_response=True, remission=False, reliable_improvement=True,
                            recovery=False, reliable_recovery=False),
    }  # fmt: skip
    for index, cells in expected.items():
        for column, value in cells.items():
            assert ep.loc[index, column] == value, (index, column)
    order = [(p1, "week1"), (p1, "week4"), (p2, "week1")]
    np.testing.assert_allclose(
        ep.loc[order, "pct_change"].to_numpy(float), [-1100 / 18, -1500 / 18, -600 / 14]
    )


def test_redcap_log_lists_dropped_fields_by_name(project):
    cohort = from_redcap(*project, REDCAP_MAP, key=KEY)
    log = cohort.import_log
    assert log["source_kind"] == "redcap"
    assert log["rows_in"] == {"records_rows": 9}
    assert log["rows_out"] == {"patients": 2, "assessments": 7, "sessions": 4, "adverse_events": 3}
    dropped = set(log["columns_dropped"])
    assert {"first_name", "last_name", "phone", "clinician_notes", "gad7_timestamp"} <= dropped
    assert {"gad7_complete", "demographics_complete", "comorbid___2"} <= dropped
    assert not dropped & {"record_id", "dob", "gad7_1", "redcap_event_name", "ket_date"}


def test_api_style_dictionary_and_frames(project):
    """The API's metadata export (field_name, form_name, ...) works as the CSV download."""
    api = dictionary().rename(
        columns={
            "Variable / Field Name": "field_name",
            "Form Name": "form_name",
            "Field Type": "field_type",
            "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
            "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number",
            "Identifier?": "identifier",
        }
    )
    a = from_redcap(records(), api, REDCAP_MAP, key=KEY)
    b = from_redcap(*project, REDCAP_MAP, key=KEY)
    pd.testing.assert_frame_equal(a.assessments, b.assessments)
    pd.testing.assert_frame_equal(a.patients, b.patients)


def test_source_files_are_not_modified(project, tmp_path):
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in project]
    write_import(from_redcap(*project, REDCAP_MAP, key=KEY), tmp_path / "cohort")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in project] == digests


def _mapping(**changes) -> ImportMapping:
    return ImportMapping(**read_mapping(REDCAP_MAP).__dict__ | changes)


def test_identifier_and_free_text_fields_cannot_be_mapped_as_values():
    from analysis.intake import FieldSpec

    base = read_mapping(REDCAP_MAP)
    mapping = _mapping(
        patients=dict(base.patients) | {"arm": FieldSpec("last_name")},
        covariates={"notes_flag": FieldSpec("clinician_notes")},
    )
    with pytest.raises(MappingError) as info:
        from_redcap(records(), dictionary(), mapping, key=KEY)
    text = str(info.value)
    assert "`last_name`, flagged as an identifier" in text
    assert "`clinician_notes`, a free-text (notes) field" in text
    assert "Examplewoman" not in text


def test_fields_must_belong_to_the_named_form():
    from dataclasses import replace

    base = read_mapping(REDCAP_MAP)
    gad = replace(base.instruments["GAD7"], form="hama")
    mapping = _mapping(instruments=dict(base.instruments) | {"GAD7": gad})
    with pytest.raises(MappingError, match="`gad7_1` is on form `gad7`, not `hama`"):
        from_redcap(records(), dictionary(), mapping, key=KEY)


def test_several_ticked_boxes_for_a_single_value():
    from analysis.intake import FieldSpec

    base = read_mapping(REDCAP_MAP)
    mapping = _mapping(patients=dict(base.patients) | {"arm": FieldSpec("comorbid")})
    frame = records()
    frame.loc[0, "comorbid___2"] = "1"
    with pytest.raises(IntakeError) as info:
        from_redcap(frame, dictionary(), mapping, key=KEY)
    assert info.value.failures[["row", "column", "check"]].values.tolist() == [
        [0, "comorbid", "several_ticked"]
    ]


def test_values_map_codes_or_labels():
    from analysis.intake import FieldSpec

    base = read_mapping(REDCAP_MAP)
    spec = FieldSpec("route", values={"Intranasal esketamine": "intranasal", "1": "iv"})
    frame = records()
    frame.loc[frame["record_id"] == "1002", "route"] = frame.loc[
        frame["record_id"] == "1002", "route"
    ].replace("2", "3")
    cohort = from_redcap(
        frame, dictionary(), _mapping(patients=dict(base.patients) | {"route": spec}), key=KEY
    )
    assert cohort.patients["route"].tolist() == ["iv", "intranasal"]


def test_cli_import_redcap(project, tmp_path, capsys):
    records_csv, dictionary_csv = project
    out = tmp_path / "cohort"
    code = main(
        [
            "import", "redcap", str(records_csv), "--dictionary", str(dictionary_csv),
            "--map", str(REDCAP_MAP), "--key", str(tmp_path / "site.key"), "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (
        "wrote 2 patients, 7 assessments, 4 sessions, 3 adverse events" in capsys.readouterr().out
    )
    assert len(load_cohort(out).adverse_events) == 3
