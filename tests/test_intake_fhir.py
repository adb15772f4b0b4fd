"""Intake from FHIR R4: GAD-7 by LOINC code, HAM-A by linkId, ketamine administrations.

The fixture export (invented people, written by the tests) mixes the shapes EHRs send: a
folder with single resources, a `collection` Bundle, a `transaction` Bundle whose
references are `urn:uuid` full URLs, LOINC codes as linkIds with and without the
LHC-Forms path prefix, LOINC answer codes and plain integers, a free-text item, and a
questionnaire still in progress. Expected values are worked out by hand below.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import derive_endpoints, load_cohort
from analysis.cli import main
from analysis.intake import (
    GAD7_LOINC,
    LOINC_ANSWER_SCORES,
    IntakeError,
    from_fhir,
    pseudonym,
    write_import,
)

ROOT = Path(__file__).resolve().parent.parent
FHIR_MAP = ROOT / "data_schema" / "mappings" / "fhir.yaml"
KEY = bytes(range(32))
ANSWER = {v: k for k, v in LOINC_ANSWER_SCORES.items()}  # score -> LOINC answer code


def test_gad7_loinc_codes_are_those_of_the_loinc_panel():
    """LOINC 69737-5 (GAD-7) items in order and the total, as loinc.org lists them in the
    PHQ-SADS panel 69729-2 (which contains the GAD-7) and the HL7 PHR IG GAD-7 example."""
    assert GAD7_LOINC == {
        "panel": "69737-5",
        "items": ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
        "total": "70274-6",
    }
    # LOINC answer list of the GAD-7/PHQ-9: Not at all 0 ... Nearly every day 3
    assert LOINC_ANSWER_SCORES == {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}


def gad7_response(subject, authored, scores, *, prefix="", coded=True, total=None, **extra):
    items = []
    for code, score in zip(GAD7_LOINC["items"], scores, strict=True):
        answer = {"valueCoding": {"system": "http://loinc.org", "code": ANSWER[score]}}
        items.append(
            {"linkId": prefix + code, "answer": [answer if coded else {"valueInteger": score}]}
        )
    if total is not None:
        items.append({"linkId": prefix + GAD7_LOINC["total"], "answer": [{"valueInteger": total}]})
    items.append(
        {"linkId": "comments", "answer": [{"valueString": "Worried about her job at Acme"}]}
    )
    return {
        "resourceType": "QuestionnaireResponse",
        "status": extra.pop("status", "completed"),
        "questionnaire": "http://loinc.org/q/69737-5",
        "subject": {"reference": subject},
        "authored": authored,
        "author": {"reference": subject},
        "item": [{"linkId": "/69737-5", "item": items}] if prefix else items,
        **extra,
    }


def hama_response(subject, authored, scores):
    items = [
        {"linkId": f"hama-{k}", "answer": [{"valueInteger": v}]} for k, v in enumerate(scores, 1)
    ]
    items.append({"linkId": "hama-total", "answer": [{"valueInteger": sum(scores)}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": subject},
        "authored": authored,
        "item": items,
    }


def administration(subject, when, route, dose, unit, medication="Ketamine HCl 50 mg/mL"):
    return {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "medicationCodeableConcept": {"text": medication},
        "dosage": {
            "route": {"coding": [{"display": route}]},
            "dose": {"value": dose, "unit": unit},
        },
        "performer": [{"actor": {"reference": "Practitioner/nurse-7"}}],
    }


PATIENT_A = {
    "resourceType": "Patient",
    "id": "pa-1",
    "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-55501"}],
    "name": [{"family": "Zephyrine", "given": ["Quilla"]}],
    "telecom": [{"system": "email", "value": "quilla.zephyrine@example.org"}],
    "address": [{"line": ["12 Example Road"], "city": "Springfield", "postalCode": "99999"}],
    "gender": "female",
    "birthDate": "1990-05-20",
}
PATIENT_B = {
    "resourceType": "Patient",
    "id": "pb-2",
    "name": [{"family": "Oldmanson", "given": ["Wystan"]}],
    "gender": "male",
    "birthDate": "1930-01-01",
}
B_URL = "urn:uuid:8c1d5c1e-0000-4000-8000-000000000002"


def write_export(folder: Path) -> Path:
    folder.mkdir(parents=True)
    # patient A: single resources in files
    singles = [
        PATIENT_A,
        administration("Patient/pa-1", "2024-09-02T08:30:00-04:00", "Intravenous route", 0.5, "mg/kg"),
        administration("Patient/pa-1", "2024-09-05T08:30:00-04:00", "Intravenous route", 0.5, "mg/kg"),
        administration("Patient/pa-1", "2024-09-03T08:30:00-04:00", "Oral", 20, "mg", "Sertraline"),
        gad7_response("Patient/pa-1", "2024-08-30T10:00:00-04:00", [3, 3, 3, 2, 2, 2, 2], total=17),
        gad7_response("Patient/pa-1", "2024-09-09T23:30:00-04:00", [1, 1, 1, 1, 1, 1, 0], coded=False),
        hama_response("Patient/pa-1", "2024-08-30", [2] * 14),
        {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/pa-1"}},
    ]  # fmt: skip
    for k, resource in enumerate(singles):
        (folder / f"resource_{k}.json").write_text(json.dumps(resource))
    # patient B: a transaction bundle with urn:uuid references, LHC-Forms linkIds
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": B_URL, "resource": PATIENT_B},
            {"resource": administration(B_URL, "2024-10-01T09:00:00Z", "Nasal route", 56, "mg",
                                        "Esketamine 28 mg nasal spray")},
            {"resource": gad7_response(B_URL, "2024-10-01T08:00:00Z", [2] * 7, prefix="/69737-5/")},
            {"resource": gad7_response(B_URL, "2024-10-15", [1] * 7, prefix="/69737-5/")},
            {"resource": gad7_response(B_URL, "2024-10-20", [0] * 7, status="in-progress")},
            {"resource": gad7_response(B_URL, "2024-10", [0] * 7)},
        ],
    }  # fmt: skip
    sub = folder / "bundles"
    sub.mkdir()
    (sub / "b.json").write_text(json.dumps(bundle))
    return folder


@pytest.fixture
def export(tmp_path) -> Path:
    return write_export(tmp_path / "export")


def test_fhir_example_cell_by_cell(export, tmp_path):
    cohort = load_cohort(write_import(from_fhir(export, FHIR_MAP, key=KEY), tmp_path / "cohort"))
    a, b = pseudonym("Patient/pa-1", KEY), pseudonym("Patient/pb-2", KEY)

    patients = cohort.patients.set_index("patient_id")
    assert sorted(patients.index) == sorted([a, b])
    assert patients.loc[a, "sex"] == "female" and patients.loc[b, "sex"] == "male"
    # 1990-05-20 to 2024-09-02 -> 34; 1930-01-01 to 2024-10-01 -> 94 -> 90
    assert patients.loc[a, "age"] == 34 and patients.loc[b, "age"] == 90
    assert patients.loc[a, "route"] == "iv" and patients.loc[b, "route"] == "intranasal"
    assert set(patients["site_id"]) == {pseudonym("SITE-01", KEY, "site")}

    sessions = cohort.sessions.set_index(["patient_id", "session_number"])
    assert sessions.loc[(a, 1), "study_day"] == 0 and sessions.loc[(a, 2), "study_day"] == 3
    assert sessions.loc[(b, 1), "study_day"] == 0
    assert sessions.loc[(a, 1), "dose_mg_per_kg"] == 0.5  # 0.5 mg/kg
    assert pd.isna(sessions.loc[(a, 1), "dose_mg"])
    assert sessions.loc[(b, 1), "dose_mg"] == 56.0
    assert len(sessions) == 3  # sertraline is not a ketamine session

    x = cohort.assessments.set_index(["patient_id", "instrument", "study_day"])
    assert sorted(x.index) == sorted(
        [(a, "GAD7", -3), (a, "GAD7", 7), (a, "HAMA", -3), (b, "GAD7", 0), (b, "GAD7", 14)]
    )
    items = [f"item_{k}" for k in range(1, 8)]
    assert x.loc[(a, "GAD7", -3), items].tolist() == [3, 3, 3, 2, 2, 2, 2]
    assert x.loc[(a, "GAD7", -3), "total"] == 17
    # authored 23:30 at -04:00 is still 9 September where it was written: day 7
    assert x.loc[(a, "GAD7", 7), items].tolist() == [1, 1, 1, 1, 1, 1, 0]
    assert x.loc[(b, "GAD7", 0), items].tolist() == [2] * 7
    assert x.loc[(b, "GAD7", 14), items].tolist() == [1] * 7
    hama = x.loc[(a, "HAMA", -3)]
    assert hama[[f"item_{k}" for k in range(1, 15)]].tolist() == [2] * 14
    assert hama["total"] == 28 and hama["administration"] == "clinician"
    assert x.loc[(a, "GAD7", -3), "administration"] == "self_report"


def test_fhir_example_endpoints(export):
    cohort = from_fhir(export, FHIR_MAP, key=KEY)
    a, b = pseudonym("Patient/pa-1", KEY), pseudonym("Patient/pb-2", KEY)
    ep = derive_endpoints(cohort, "GAD7").set_index(["patient_id", "visit"])
    assert sorted(ep.index) == sorted([(a, "week1"), (b, "week2")])
    expected = {
        # A: baseline 17 (day -3), day 7 score 6; B: baseline 14 (day 0), day 14 score 7
        (a, "week1"): dict(baseline=17, score=6, change=-11, response=True, partial_response=False,
                           remission=False, reliable_improvement=True, recovery=True),
        # exactly 50% is a response
        (b, "week2"): dict(baseline=14, score=7, change=-7, response=True, partial_response=False,
                           remission=False, reliable_improvement=True, recovery=True),
    }  # fmt: skip
    for index, cells in expected.items():
        for column, value in cells.items():
            assert ep.loc[index, column] == value, (index, column)
    np.testing.assert_allclose(
        ep.loc[[(a, "week1"), (b, "week2")], "pct_change"].to_numpy(float), [-1100 / 17, -50]
    )


def test_fhir_log_counts_and_element_names(export):
    log = from_fhir(export, FHIR_MAP, key=KEY).import_log
    assert log["source_kind"] == "fhir"
    assert log["rows_in"] == {
        "MedicationAdministration resources": 4,
        "Observation resources": 1,
        "Patient resources": 2,
        "QuestionnaireResponse resources": 7,
    }
    assert log["rows_out"] == {"patients": 2, "assessments": 5, "sessions": 3, "adverse_events": 0}
    assert log["rows_left_out"] == {
        "MedicationAdministration: not a ketamine session": 1,
        "Observation: resource type not used": 1,
        "assessments: date_incomplete": 1,
        "assessments: status in-progress": 1,
    }
    dropped = set(log["columns_dropped"])
    assert {"Patient.name", "Patient.telecom", "Patient.address", "Patient.identifier"} <= dropped
    assert {"QuestionnaireResponse.item[comments]", "QuestionnaireResponse.author"} <= dropped
    assert "MedicationAdministration.performer" in dropped


def test_bundle_dict_and_ndjson_give_the_same_cohort(export, tmp_path):
    resources = [json.loads(p.read_text()) for p in sorted(export.glob("*.json"))]
    bundle = json.loads((export / "bundles" / "b.json").read_text())
    ndjson = tmp_path / "export.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in [*resources, bundle]) + "\n")
    from_folder = from_fhir(export, FHIR_MAP, key=KEY)
    from_list = from_fhir([*resources, bundle], FHIR_MAP, key=KEY)
    from_file = from_fhir(ndjson, FHIR_MAP, key=KEY)
    for other in (from_list, from_file):
        for table in ("patients", "assessments", "sessions"):
            left = getattr(from_folder, table).sort_values(list(getattr(other, table).columns[:3]))
            right = getattr(other, table).sort_values(list(getattr(other, table).columns[:3]))
            assert left.reset_index(drop=True).equals(right.reset_index(drop=True)), table


def test_answers_that_are_not_scores_fail_by_position(export):
    bad = gad7_response("Patient/pa-1", "2024-09-20", [1] * 7)
    bad["item"][2]["answer"] = [{"valueString": "sometimes"}]
    resources = [json.loads(p.read_text()) for p in sorted(export.glob("*.json"))] + [bad]
    with pytest.raises(IntakeError) as info:
        from_fhir(resources, FHIR_MAP, key=KEY)
    failures = info.value.failures
    assert failures[["table", "row", "column", "check"]].values.tolist() == [
        ["fhir", len(resources) - 1, "QuestionnaireResponse.item_3", "not_a_score"]
    ]
    assert "sometimes" not in str(info.value)


def test_gad7_needs_no_mapping(export):
    cohort = from_fhir(export, key=KEY)  # GAD-7 by LOINC; no HAM-A linkIds, no site
    assert set(cohort.assessments["instrument"]) == {"GAD7"}
    assert cohort.patients["site_id"].isna().all()


def test_cli_import_fhir(export, tmp_path, capsys):
    out = tmp_path / "cohort"
    code = main(["import", "fhir", str(export), "--map", str(FHIR_MAP),
                 "--key", str(tmp_path / "site.key"), "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "wrote 2 patients, 5 assessments, 3 sessions" in capsys.readouterr().out
    assert len(load_cohort(out).assessments) == 5


@pytest.mark.parametrize(
    ("authored", "kept"),
    [
        ("2024-10-01T10:30:00Z", False),  # after the 09:00Z dose: not a pre-dose baseline
        ("2024-10-01T10:30:00+02:00", True),  # 08:30Z: before the dose
        ("2024-10-01", True),  # a date alone is taken as before dosing
    ],
)
def test_day_0_questionnaire_after_the_first_dose_is_left_out(tmp_path, authored, kept):
    export = write_export(tmp_path / "export")
    bundle_file = export / "bundles" / "b.json"
    bundle = json.loads(bundle_file.read_text())
    bundle["entry"][2]["resource"]["authored"] = authored
    bundle_file.write_text(json.dumps(bundle))
    cohort = from_fhir(export, FHIR_MAP, key=KEY)
    b = pseudonym("Patient/pb-2", KEY)
    days = cohort.assessments.loc[cohort.assessments["patient_id"] == b, "study_day"].tolist()
    assert days == ([0, 14] if kept else [14])
    left_out = cohort.import_log["rows_left_out"].get("assessments: on day 0 after the first dose")
    assert left_out == (None if kept else 1)
