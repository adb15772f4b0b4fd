"""Property: no identifying value of the source reaches the cohort folder.

Hypothesis invents clinics (names, record numbers, birth and visit dates, e-mail
addresses, phone numbers, free-text notes, a site name) as a wide sheet, a REDCap export
and FHIR resources; each is imported and written, and every file of the output folder
(tables and import_log.json) is searched for every identifying value, in the forms a
date can be written.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.intake import GAD7_LOINC, from_fhir, from_redcap, from_wide, write_import

KEY = bytes(range(32))
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Names use letters that never occur in hexadecimal codes or in the log's own words.
names = st.text(alphabet="qwxzjkv", min_size=5, max_size=9).map(lambda s: "Zq" + s)
record_numbers = st.integers(10**8, 10**9 - 1).map(str)
days = st.dates(dt.date(2015, 1, 1), dt.date(2025, 12, 31))
births = st.dates(dt.date(1925, 1, 1), dt.date(1995, 12, 31))  # 19 or older on day 0


@st.composite
def clinics(draw):
    n = draw(st.integers(1, 4))
    mrns = draw(st.lists(record_numbers, min_size=n, max_size=n, unique=True))
    people = []
    for mrn in mrns:
        first = draw(days)
        people.append(
            {
                "mrn": mrn,
                "name": draw(names),
                "dob": draw(births),
                "phone": "+1 " + draw(st.from_regex(r"[2-9]\d{2} \d{3} \d{4}", fullmatch=True)),
                "note": draw(names) + " said " + draw(names),
                "first": first,
                # baseline a few days before, sessions and visits after the first session
                "visits": sorted(
                    {first - dt.timedelta(days=draw(st.integers(0, 14))), first}
                    | {
                        first + dt.timedelta(days=d)
                        for d in draw(st.lists(st.integers(1, 100), max_size=3))
                    }
                ),
                "scores": draw(st.lists(st.integers(0, 3), min_size=7, max_size=7)),
            }
        )
    site = draw(names) + " Clinic"
    return people, site


def identifiers(people, site) -> list[str]:
    values = [site]
    for p in people:
        values += [p["mrn"], p["name"], p["phone"], p["note"], p["name"].lower() + "@example.org"]
        for day in [p["dob"], p["first"], *p["visits"]]:
            values += [day.isoformat(), day.strftime("%Y%m%d"), day.strftime("%d/%m/%Y")]
    return values


def assert_nothing_leaks(folder: Path, values: list[str]) -> None:
    files = sorted(folder.iterdir())
    assert {p.name for p in files} >= {"patients.csv", "assessments.csv", "import_log.json"}
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    leaked = [v for v in values if v in text]
    assert not leaked, f"{len(leaked)} identifying value(s) in the output folder"


def wide_sheet(people, site) -> pd.DataFrame:
    rows = []
    for p in people:
        for day in p["visits"]:
            rows.append(
                {
                    "mrn": p["mrn"], "patient_name": p["name"], "phone": p["phone"],
                    "email": p["name"].lower() + "@example.org", "notes": p["note"],
                    "dob": p["dob"].isoformat(), "clinic": site, "visit_date": day.isoformat(),
                    "ketamine_date": day.isoformat() if day >= p["first"] else "",
                    **{f"gad7_{k}": str(v) for k, v in enumerate(p["scores"], 1)},
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


WIDE_MAPPING = {
    "patient": "mrn",
    "site": "clinic",
    "birth_date": "dob",
    "patients": {"route": {"value": "iv"}},
    "sessions": {"date": "ketamine_date"},
    "instruments": {"GAD7": {"date": "visit_date", "items": [f"gad7_{k}" for k in range(1, 8)]}},
}


@SETTINGS
@given(clinics())
def test_wide_import_writes_no_identifier(clinic):
    people, site = clinic
    with tempfile.TemporaryDirectory() as tmp:
        cohort = from_wide(wide_sheet(people, site), WIDE_MAPPING, key=KEY)
        assert len(cohort.patients) == len(people)
        folder = write_import(cohort, Path(tmp) / "cohort")
        assert_nothing_leaks(folder, identifiers(people, site))


REDCAP_DICTIONARY = pd.DataFrame(
    [
        ("record_id", "demographics", "text", ""),
        ("full_name", "demographics", "text", "y"),
        ("dob", "demographics", "text", "y"),
        ("phone", "demographics", "text", "y"),
        ("comments", "demographics", "notes", ""),
        ("visit_date", "gad7", "text", ""),
        *[(f"gad7_{k}", "gad7", "radio", "") for k in range(1, 8)],
        ("ket_date", "session", "text", ""),
    ],
    columns=["field_name", "form_name", "field_type", "identifier"],
)
REDCAP_MAPPING = {
    "birth_date": "dob",
    "site": "redcap_data_access_group",
    "patients": {"route": {"value": "im"}},
    "sessions": {"instrument": "session", "date": "ket_date"},
    "instruments": {
        "GAD7": {
            "instrument": "gad7",
            "date": "visit_date",
            "items": [f"gad7_{k}" for k in range(1, 8)],
        }
    },
}


@SETTINGS
@given(clinics())
def test_redcap_import_writes_no_identifier(clinic):
    people, site = clinic
    rows = []
    for p in people:
        base = {"record_id": p["mrn"], "redcap_data_access_group": site}
        rows.append(base | {"redcap_event_name": "baseline_arm_1", "full_name": p["name"],
                            "dob": p["dob"].isoformat(), "phone": p["phone"], "comments": p["note"]})  # fmt: skip
        for k, day in enumerate(p["visits"]):
            rows.append(base | {"redcap_event_name": f"visit_{k}_arm_1", "visit_date": day.isoformat(),
                                **{f"gad7_{j}": str(v) for j, v in enumerate(p["scores"], 1)}})  # fmt: skip
            if day >= p["first"]:
                rows.append(base | {"redcap_event_name": f"visit_{k}_arm_1",
                                    "redcap_repeat_instrument": "session",
                                    "redcap_repeat_instance": "1", "ket_date": day.isoformat()})  # fmt: skip
    records = pd.DataFrame(rows).fillna("")
    with tempfile.TemporaryDirectory() as tmp:
        cohort = from_redcap(records, REDCAP_DICTIONARY, REDCAP_MAPPING, key=KEY)
        assert len(cohort.patients) == len(people)
        folder = write_import(cohort, Path(tmp) / "cohort")
        assert_nothing_leaks(folder, identifiers(people, site))


@SETTINGS
@given(clinics())
def test_fhir_import_writes_no_identifier(clinic):
    people, site = clinic
    resources = []
    for p in people:
        ref = f"Patient/{p['mrn']}"
        resources.append(
            {"resourceType": "Patient", "id": p["mrn"], "name": [{"text": p["name"]}],
             "telecom": [{"system": "phone", "value": p["phone"]}], "birthDate": p["dob"].isoformat(),
             "gender": "unknown", "managingOrganization": {"display": site}}
        )  # fmt: skip
        for day in p["visits"]:
            items = [{"linkId": c, "answer": [{"valueInteger": v}]} for c, v in zip(GAD7_LOINC["items"], p["scores"], strict=True)]  # fmt: skip
            items.append({"linkId": "note", "answer": [{"valueString": p["note"]}]})
            resources.append({"resourceType": "QuestionnaireResponse", "status": "completed",
                              "subject": {"reference": ref}, "authored": day.isoformat() + "T10:00:00Z",
                              "item": items})  # fmt: skip
            if day >= p["first"]:
                resources.append({"resourceType": "MedicationAdministration", "status": "completed",
                                  "subject": {"reference": ref}, "effectiveDateTime": day.isoformat(),
                                  "medicationCodeableConcept": {"text": "ketamine"},
                                  "dosage": {"route": {"text": "IV"}}})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cohort = from_fhir(
            {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}, key=KEY
        )
        assert len(cohort.patients) == len(people)
        folder = write_import(cohort, Path(tmp) / "cohort")
        assert_nothing_leaks(
            folder, identifiers(people, site) + [f"Patient/{p['mrn']}" for p in people]
        )


def test_the_leak_check_can_fail(tmp_path):
    """A folder that does hold an identifier is caught by the same check."""
    (tmp_path / "patients.csv").write_text("patient_id\nP1\n")
    (tmp_path / "assessments.csv").write_text("note\nZqwxzjk said hello\n")
    (tmp_path / "import_log.json").write_text(json.dumps({}))
    try:
        assert_nothing_leaks(tmp_path, ["Zqwxzjk"])
    except AssertionError as error:
        assert "1 identifying value" in str(error)
    else:
        raise AssertionError("the leak was not found")
