"""Intake from a wide visit sheet: a hand-checked example, de-identification, the CLI.

The fixture sheet is written by the tests (invented people, no real data). Every expected
number below is worked out by hand from the sheet in `visit_sheet`: study days count from
each patient's first ketamine date, GAD-7 totals are the sums of the items, and the
endpoint flags follow the definitions in README.md ("Definitions").
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cohort_fixtures import write_ods

from analysis import derive_endpoints, load_cohort
from analysis.cli import main
from analysis.intake import (
    IMPORT_LOG,
    IntakeError,
    MappingError,
    from_wide,
    load_key,
    pseudonym,
    read_mapping,
    write_import,
)
from analysis.schema import DataValidationError

ROOT = Path(__file__).resolve().parent.parent
WIDE_MAP = ROOT / "data_schema" / "mappings" / "wide.yaml"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

# (mrn, name, dob, sex, route, diagnosis, clinic, visit_date, ketamine_date, dose, gad7 items,
#  hama_total, notes)
ROWS = [
    ("00012345", "Ada Example", "1931-02-10", "F", "IV", "GAD", "Northside Clinic",
     "2024-03-01", "", "", [3, 3, 2, 2, 2, 2, 1], "24", "anxious before first dose"),
    ("00012345", "Ada Example", "1931-02-10", "F", "IV", "GAD", "Northside Clinic",
     "2024-03-04", "2024-03-04", "35", None, "", ""),
    ("00012345", "Ada Example", "1931-02-10", "F", "IV", "GAD", "Northside Clinic",
     "2024-03-11", "2024-03-11", "35", [1, 1, 1, 1, 1, 1, 1], "", "call 555-010-0199"),
    ("00012345", "Ada Example", "1931-02-10", "F", "IV", "GAD", "Northside Clinic",
     "2024-04-01", "", "", [1, 0, 0, 1, 0, 1, 0], "10", ""),
    ("00067890", "Alan Sample", "1980-06-23", "M", "im", "PTSD", "Northside Clinic",
     "2024-05-10", "", "", [2, 2, 2, 2, 2, 2, 2], "", ""),
    ("00067890", "Alan Sample", "1980-06-23", "M", "im", "PTSD", "Northside Clinic",
     "2024-05-14", "2024-05-14", "50", None, "", ""),
    ("00067890", "Alan Sample", "1980-06-23", "M", "im", "PTSD", "Northside Clinic",
     "2024-05-28", "2024-05-28", "50", [2, 2, 1, 2, 1, 2, 1], "", "doing better"),
    ("00099999", "Nora Nosession", "1990-01-01", "F", "oral", "GAD", "Southside Clinic",
     "2024-01-02", "", "", [1, 1, 1, 1, 1, 1, 1], "", ""),
]  # fmt: skip


def visit_sheet() -> pd.DataFrame:
    records = []
    for mrn, name, dob, sex, route, dx, clinic, visit, ket, dose, items, hama, notes in ROWS:
        row = {
            "mrn": mrn,
            "patient_name": name,
            "email": name.lower().replace(" ", ".") + "@example.org",
            "dob": dob,
            "sex": sex,
            "route": route,
            "diagnosis": dx,
            "clinic": clinic,
            "visit_date": visit,
            "ketamine_date": ket,
            "dose_mg": dose,
            "hama_total": hama,
            "notes": notes,
        }
        for k in range(1, 8):
            row[f"gad7_{k}"] = "" if items is None else str(items[k - 1])
        records.append(row)
    return pd.DataFrame(records)


@pytest.fixture
def sheet_file(tmp_path) -> Path:
    path = tmp_path / "source" / "visits.csv"
    path.parent.mkdir()
    visit_sheet().to_csv(path, index=False)
    return path


def test_example_mapping_reads():
    mapping = read_mapping(WIDE_MAP)
    assert mapping.source == "wide"
    assert mapping.patient == "mrn"
    assert mapping.sessions.date == "ketamine_date"
    assert mapping.instruments["GAD7"].items[6] == "gad7_7"


def test_wide_example_cell_by_cell(tmp_path):
    cohort = from_wide(visit_sheet(), WIDE_MAP, key=KEY)
    ada, alan = pseudonym("00012345", KEY), pseudonym("00067890", KEY)
    site = pseudonym("Northside Clinic", KEY, "site")

    # written and re-loaded: load_cohort accepts the folder
    folder = write_import(cohort, tmp_path / "cohort")
    cohort = load_cohort(folder)

    patients = cohort.patients.set_index("patient_id")
    assert list(patients.index) == [ada, alan]  # Nora has no ketamine date: left out
    assert patients.loc[ada, "site_id"] == site == patients.loc[alan, "site_id"]
    # Ada: born 1931-02-10, first session 2024-03-04 -> 93 years -> recorded as 90
    assert patients.loc[ada, "age"] == 90
    # Alan: born 1980-06-23, first session 2024-05-14 -> 43 (birthday not yet reached)
    assert patients.loc[alan, "age"] == 43
    assert patients.loc[ada, "sex"] == "female" and patients.loc[alan, "sex"] == "male"
    assert patients.loc[ada, "route"] == "iv" and patients.loc[alan, "route"] == "im"
    assert patients.loc[ada, "primary_diagnosis"] == "GAD"
    assert patients.loc[alan, "primary_diagnosis"] == "PTSD"

    sessions = cohort.sessions
    assert sessions["patient_id"].tolist() == [ada, ada, alan, alan]
    assert sessions["session_number"].tolist() == [1, 2, 1, 2]
    assert sessions["study_day"].tolist() == [0, 7, 0, 14]  # 03-04, 03-11; 05-14, 05-28
    assert sessions["route"].tolist() == ["iv", "iv", "im", "im"]
    assert sessions["dose_mg"].tolist() == [35.0, 35.0, 50.0, 50.0]

    a = cohort.assessments
    gad = a[a["instrument"] == "GAD7"]
    assert gad["patient_id"].tolist() == [ada, ada, ada, alan, alan]
    # 03-01, 03-11, 04-01 from 03-04; 05-10, 05-28 from 05-14
    assert gad["study_day"].tolist() == [-3, 7, 28, -4, 14]
    items = gad[[f"item_{k}" for k in range(1, 8)]].to_numpy(dtype=int).tolist()
    assert items == [row[10] for row in ROWS if row[10] is not None and row[0] != "00099999"]
    assert gad["total"].isna().all()
    assert (gad["administration"] == "self_report").all()
    hama = a[a["instrument"] == "HAMA"]
    assert hama["patient_id"].tolist() == [ada, ada]
    assert hama["study_day"].tolist() == [-3, 28]
    assert hama["total"].tolist() == [24, 10]
    assert (hama["administration"] == "clinician").all()
    assert hama[[f"item_{k}" for k in range(1, 15)]].isna().all().all()
    assert len(cohort.adverse_events) == 0


def test_wide_example_endpoints():
    """GAD-7 endpoints of the example, by hand from the item sums."""
    cohort = from_wide(visit_sheet(), WIDE_MAP, key=KEY)
    ada, alan = pseudonym("00012345", KEY), pseudonym("00067890", KEY)
    ep = derive_endpoints(cohort, "GAD7").set_index(["patient_id", "visit"])
    assert sorted(ep.index) == sorted([(ada, "week1"), (ada, "week4"), (alan, "week2")])
    expected = {
        # baseline 15 (day -3); day 7 sum 7; day 28 sum 3; Alan baseline 14 (day -4), day 14 11
        (ada, "week1"): dict(study_day=7, baseline=15, score=7, change=-8, response=True,
                             partial_response=False, remission=False, reliable_improvement=True,
                             reliable_deterioration=False, recovery=True, reliable_recovery=True,
                             severity="mild", baseline_severity="severe"),
        (ada, "week4"): dict(study_day=28, baseline=15, score=3, change=-12, response=True,
                             partial_response=False, remission=True, reliable_improvement=True,
                             reliable_deterioration=False, recovery=True, reliable_recovery=True,
                             severity="minimal", baseline_severity="severe"),
        (alan, "week2"): dict(study_day=14, baseline=14, score=11, change=-3, response=False,
                              partial_response=False, remission=False,
                              reliable_improvement=False, reliable_deterioration=False,
                              recovery=False, reliable_recovery=False, severity="moderate",
                              baseline_severity="moderate"),
    }  # fmt: skip
    for index, cells in expected.items():
        for column, value in cells.items():
            assert ep.loc[index, column] == value, (index, column)
    # pct_change = 100 x change / baseline
    np.testing.assert_allclose(
        ep.loc[[(ada, "week1"), (ada, "week4"), (alan, "week2")], "pct_change"].to_numpy(float),
        [-800 / 15, -1200 / 15, -300 / 14],
    )


def test_import_log_counts_and_names_only(tmp_path):
    cohort = from_wide(visit_sheet(), WIDE_MAP, key=KEY)
    log = cohort.import_log
    assert log["source_kind"] == "wide"
    assert log["rows_in"] == {"source_rows": 8}
    assert log["rows_out"] == {"patients": 2, "assessments": 7, "sessions": 4, "adverse_events": 0}
    assert log["rows_left_out"] == {
        "assessments: patient has no ketamine session date (no day 0)": 1,
        "patients: no ketamine session date (no day 0)": 1,
    }
    assert log["columns_dropped"] == ["patient_name", "email", "notes"]
    assert "mrn" in log["columns_used"] and "dob" in log["columns_used"]
    assert log["changes"] == {"ages over 89 recorded as 90": 1}
    folder = write_import(cohort, tmp_path / "cohort")
    assert json.loads((folder / IMPORT_LOG).read_text()) == log


def test_same_key_same_codes_other_key_other_codes():
    first = from_wide(visit_sheet(), WIDE_MAP, key=KEY)
    again = from_wide(visit_sheet().sample(frac=1, random_state=1), WIDE_MAP, key=KEY)
    other = from_wide(visit_sheet(), WIDE_MAP, key=OTHER_KEY)
    assert sorted(first.patients["patient_id"]) == sorted(again.patients["patient_id"])
    assert set(first.patients["patient_id"]).isdisjoint(other.patients["patient_id"])
    assert set(first.patients["site_id"]).isdisjoint(other.patients["site_id"])
    pd.testing.assert_frame_equal(
        first.assessments.sort_values(["patient_id", "instrument", "study_day"]).reset_index(
            drop=True
        ),
        again.assessments.sort_values(["patient_id", "instrument", "study_day"]).reset_index(
            drop=True
        ),
    )


def test_codes_match_the_schema_pattern():
    codes = [
        pseudonym(x, KEY, kind)
        for x in ("1", "ü", " ", "x" * 500)
        for kind in ("patient", "site", "rater")
    ]
    assert all(pd.Series(codes).str.fullmatch(r"[A-Za-z0-9_-]{1,64}"))


def test_key_file_created_private_and_reused(tmp_path):
    path = tmp_path / "keys" / "site.key"
    key = load_key(path)
    assert len(key) == 32
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key
    first = from_wide(visit_sheet(), WIDE_MAP, key=path)
    again = from_wide(visit_sheet(), WIDE_MAP, key=path)
    assert first.patients["patient_id"].tolist() == again.patients["patient_id"].tolist()
    assert first.patients["patient_id"].tolist()[0] == pseudonym("00012345", key)


def test_short_or_shared_key_file(tmp_path):
    short = tmp_path / "short.key"
    short.write_text("abcd\n")
    short.chmod(0o600)
    with pytest.raises(ValueError, match="holds 2 bytes"):
        load_key(short)
    with pytest.raises(FileNotFoundError):
        load_key(tmp_path / "absent.key", create=False)
    if os.name == "posix":
        shared = tmp_path / "shared.key"
        shared.write_text("ab" * 32)
        shared.chmod(0o644)
        with pytest.warns(UserWarning, match="chmod 600"):
            load_key(shared)


def test_source_file_is_not_modified(sheet_file, tmp_path):
    before = hashlib.sha256(sheet_file.read_bytes()).hexdigest()
    mtime = sheet_file.stat().st_mtime_ns
    write_import(from_wide(sheet_file, WIDE_MAP, key=KEY), tmp_path / "cohort")
    assert hashlib.sha256(sheet_file.read_bytes()).hexdigest() == before
    assert sheet_file.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in sheet_file.parent.iterdir()) == ["visits.csv"]


def test_sheet_files_as_a_clinic_saves_them_import_like_the_frame(tmp_path, monkeypatch):
    # The same sheet as an Excel workbook with real dates and numbers (read with
    # python-calamine: openpyxl, pandas' default, is only a test dependency and is hidden
    # here), as an OpenDocument sheet, as a semicolon- and a tab-separated CSV with a
    # byte-order mark: the same cohort.
    import sys

    expected = from_wide(visit_sheet(), WIDE_MAP, key=KEY)
    typed = visit_sheet()
    for column in ("visit_date", "ketamine_date", "dob"):
        typed[column] = pd.to_datetime(typed[column].replace("", None))
    for k in range(1, 8):
        typed[f"gad7_{k}"] = pd.to_numeric(typed[f"gad7_{k}"])
    typed.to_excel(tmp_path / "visits.xlsx", index=False)
    for name, sep in (("visits_semicolon.csv", ";"), ("visits.tsv", "\t")):
        (tmp_path / name).write_text(
            visit_sheet().to_csv(index=False, sep=sep), encoding="utf-8-sig"
        )
    write_ods(tmp_path / "visits.ods", {"Visits": visit_sheet()})  # LibreOffice's format
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    for name in ("visits.xlsx", "visits.ods", "visits_semicolon.csv", "visits.tsv"):
        got = from_wide(tmp_path / name, WIDE_MAP, key=KEY)
        for table in ("patients", "assessments", "sessions"):
            pd.testing.assert_frame_equal(
                getattr(got, table), getattr(expected, table), obj=f"{name} {table}"
            )


def test_refuses_a_folder_holding_a_cohort_unless_forced(tmp_path):
    cohort = from_wide(visit_sheet(), WIDE_MAP, key=KEY)
    folder = write_import(cohort, tmp_path / "cohort")
    with pytest.raises(FileExistsError, match="already holds a cohort"):
        write_import(cohort, folder)
    other = from_wide(visit_sheet(), WIDE_MAP, key=OTHER_KEY)
    write_import(other, folder, force=True)
    assert set(load_cohort(folder).patients["patient_id"]) == set(other.patients["patient_id"])


def test_separate_session_log():
    sheet = visit_sheet().drop(columns=["ketamine_date", "dose_mg"])
    log = pd.DataFrame(
        {
            "mrn": ["00012345", "00012345", "00067890"],
            "ketamine_date": ["2024-03-04", "2024-03-11", "2024-05-14"],
            "dose_mg": ["35", "35", "50"],
            "nurse": ["Kim", "Kim", "Lee"],
        }
    )
    cohort = from_wide(sheet, WIDE_MAP, key=KEY, sessions=log)
    assert cohort.sessions["study_day"].tolist() == [0, 7, 0]
    assert cohort.import_log["rows_in"] == {"source_rows": 8, "session_log_rows": 3}
    assert "sessions:nurse" in cohort.import_log["columns_dropped"]


def test_dates_in_another_format_need_date_format():
    sheet = visit_sheet()
    for column in ("visit_date", "ketamine_date", "dob"):
        sheet[column] = pd.to_datetime(sheet[column]).dt.strftime("%d/%m/%Y").fillna("")
    with pytest.raises(IntakeError) as info:
        from_wide(sheet, WIDE_MAP, key=KEY)
    failures = info.value.failures
    assert set(failures["column"]) == {"visit_date", "ketamine_date", "dob"}
    assert set(failures["check"]) == {"date_format"}
    assert (failures["value"] == "").all()
    assert "01/03/2024" not in str(info.value) and "date_format" in str(info.value)
    mapping = read_mapping(WIDE_MAP).__dict__ | {"date_format": "%d/%m/%Y"}
    from analysis.intake import ImportMapping

    cohort = from_wide(sheet, ImportMapping(**mapping), key=KEY)
    assert cohort.sessions["study_day"].tolist() == [0, 7, 0, 14]


def test_datetime_columns_from_a_spreadsheet_reader():
    sheet = visit_sheet()
    for column in ("visit_date", "ketamine_date", "dob"):
        sheet[column] = pd.to_datetime(sheet[column].replace("", None))
    for k in range(1, 8):
        sheet[f"gad7_{k}"] = pd.to_numeric(sheet[f"gad7_{k}"])  # floats with NaN
    cohort = from_wide(sheet, WIDE_MAP, key=KEY)
    assert cohort.assessments["study_day"].tolist() == [-3, 7, 28, -4, 14, -3, 28]


def test_unusable_values_are_collected_without_echoing_them():
    sheet = visit_sheet()
    sheet.loc[0, "gad7_3"] = "two"
    sheet.loc[4, "sex"] = "F"  # Alan has F on one row and M on the others
    with pytest.raises(IntakeError) as info:
        from_wide(sheet, WIDE_MAP, key=KEY)
    failures = info.value.failures
    assert set(zip(failures["column"], failures["check"], strict=True)) == {
        ("gad7_3", "not_a_score"),
        ("sex", "conflicting_values"),
    }
    assert failures.loc[failures["check"] == "not_a_score", "row"].tolist() == [0]
    assert failures.loc[failures["check"] == "conflicting_values", "row"].tolist() == [4, 5, 6]
    assert "two" not in str(info.value)


def test_out_of_range_item_is_a_validation_error():
    sheet = visit_sheet()
    sheet.loc[0, "gad7_1"] = "4"
    with pytest.raises(DataValidationError) as info:
        from_wide(sheet, WIDE_MAP, key=KEY)
    assert info.value.failures[["check", "value"]].values.tolist() == [
        ["in_range 0-3 for GAD7", "4"]
    ]


def test_text_values_are_not_shown_in_validation_failures():
    sheet = visit_sheet()
    sheet.loc[sheet["mrn"] == "00067890", "route"] = "Alan Sample"  # a name in the wrong column
    with pytest.raises(DataValidationError) as info:
        from_wide(sheet, WIDE_MAP, key=KEY)
    failures = info.value.failures
    assert set(failures["column"]) == {"route"} and (failures["value"] == "").all()
    assert "Alan" not in str(info.value)


def test_mapping_problems_are_listed_together():
    with pytest.raises(MappingError) as info:
        read_mapping(
            {
                "patient": "mrn",
                "sessoins": {"date": "x"},
                "patients": {"name": "patient_name"},
                "instruments": {"PHQ9": {}, "GAD7": {"items": ["a", "b"]}},
                "covariates": {"home_address": "addr"},
            }
        )
    problems = info.value.problems
    assert len(problems) == 5
    text = str(info.value)
    for word in ("sessoins", "name", "PHQ9", "7 item columns", "home_address"):
        assert word in text
    mapping = read_mapping(WIDE_MAP).__dict__ | {"patient": "record_number"}
    from analysis.intake import ImportMapping

    with pytest.raises(MappingError, match="`patient` names `record_number`"):
        from_wide(visit_sheet(), ImportMapping(**mapping), key=KEY)
    with pytest.raises(MappingError, match="`sessions.date` is required"):
        from_wide(visit_sheet(), {"patient": "mrn"}, key=KEY)
    with pytest.raises(MappingError, match="for a `wide` source, but a `fhir`"):
        from analysis.intake import from_fhir

        from_fhir([], WIDE_MAP, key=KEY)


def test_mapping_accepts_schema_names_and_scale_spellings():
    import yaml

    text = WIDE_MAP.read_text().replace("patient: mrn", "patient_id: mrn")
    text = text.replace("site: clinic", "site_id: clinic").replace("GAD7:", "GAD-7:")
    assert read_mapping(yaml.safe_load(text)) == read_mapping(WIDE_MAP)


def test_identifying_columns_cannot_be_copied_into_the_cohort():
    from analysis.intake import FieldSpec, ImportMapping

    base = read_mapping(WIDE_MAP).__dict__
    patients = dict(base["patients"]) | {"arm": FieldSpec("patient_name")}
    with pytest.raises(MappingError, match="`patient_name`, whose name announces an identifier"):
        from_wide(visit_sheet(), ImportMapping(**base | {"patients": patients}), key=KEY)
    # the same kind of column may be a site: its values are coded
    sheet = visit_sheet().assign(clinic_name=lambda d: d["clinic"])
    cohort = from_wide(sheet, ImportMapping(**base | {"site": FieldSpec("clinic_name")}), key=KEY)
    assert set(cohort.patients["site_id"]) == {pseudonym("Northside Clinic", KEY, "site")}


def test_covariates_must_be_numbers():
    base = read_mapping(WIDE_MAP).__dict__
    from analysis.intake import FieldSpec, ImportMapping

    sheet = visit_sheet().assign(phq9="12")
    mapping = ImportMapping(**base | {"covariates": {"phq9_baseline": FieldSpec("phq9")}})
    cohort = from_wide(sheet, mapping, key=KEY)
    assert cohort.patients["phq9_baseline"].tolist() == [12, 12]
    mapping = ImportMapping(**base | {"covariates": {"clinic_coded": FieldSpec("clinic")}})
    with pytest.raises(IntakeError, match="not_numeric"):
        from_wide(sheet, mapping, key=KEY)


# --------------------------------------------------------------------------- CLI


def test_cli_import_wide(sheet_file, tmp_path, capsys):
    out, key = tmp_path / "cohort", tmp_path / "keys" / "site.key"
    args = ["import", "wide", str(sheet_file), "--map", str(WIDE_MAP), "--key", str(key)]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("wrote 2 patients, 7 assessments, 4 sessions, 0 adverse events")
    assert "3 source column(s) dropped, 2 row(s) left out" in printed
    assert key.is_file()
    cohort = load_cohort(out)
    assert cohort.patients["patient_id"].tolist()[0] == pseudonym("00012345", load_key(key))
    assert main(["validate", str(out)]) == 0

    # a folder holding a cohort is refused (exit 2) unless --force
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2
    assert "already holds a cohort" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--force"]) == 0


def test_cli_import_wide_with_a_session_log_as_parquet(tmp_path, capsys):
    sheet = visit_sheet().drop(columns=["ketamine_date", "dose_mg"])
    log = visit_sheet()[["mrn", "ketamine_date", "dose_mg"]].query("ketamine_date != ''")
    sheet.to_csv(tmp_path / "visits.csv", index=False)
    log.to_csv(tmp_path / "sessions.csv", index=False)
    out = tmp_path / "cohort"
    code = main(["import", "wide", str(tmp_path / "visits.csv"), "--sessions",
                 str(tmp_path / "sessions.csv"), "--map", str(WIDE_MAP), "--key",
                 str(tmp_path / "site.key"), "--out", str(out), "--format", "parquet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "assessments.parquet", "import_log.json", "patients.parquet", "sessions.parquet"
    ]  # fmt: skip
    assert load_cohort(out).sessions["study_day"].tolist() == [0, 7, 0, 14]


def test_cli_import_exit_codes(sheet_file, tmp_path, capsys):
    out = tmp_path / "cohort"
    base = ["import", "wide", str(sheet_file), "--map", str(WIDE_MAP)]
    # the key may not travel with the cohort
    assert main([*base, "--key", str(out / "site.key"), "--out", str(out)]) == 2
    assert "may not be inside the output folder" in capsys.readouterr().err
    # a mapping naming a column that is not there: usage error
    bad_map = tmp_path / "bad.yaml"
    bad_map.write_text(WIDE_MAP.read_text().replace("patient: mrn", "patient: chart_no"))
    key = ["--key", str(tmp_path / "k.key")]
    cmd = ["import", "wide", str(sheet_file), "--map", str(bad_map), *key, "--out", str(out)]
    assert main(cmd) == 2
    assert "chart_no" in capsys.readouterr().err
    # invalid data: exit 1 with the summary, nothing written
    sheet = pd.read_csv(sheet_file, dtype=str, keep_default_na=False)
    sheet.loc[2, "gad7_1"] = "4"
    bad_sheet = tmp_path / "bad.csv"
    sheet.to_csv(bad_sheet, index=False)
    cmd = ["import", "wide", str(bad_sheet), "--map", str(WIDE_MAP), *key, "--out", str(out)]
    assert main(cmd) == 1
    err = capsys.readouterr().err
    assert "in_range 0-3 for GAD7" in err and "00012345" not in err
    assert not out.exists()
    # missing source or mapping: usage error
    cmd = ["import", "wide", str(tmp_path / "nope.csv"), "--map", str(WIDE_MAP), *key]
    assert main([*cmd, "--out", str(out)]) == 2
    # a key file that cannot be read: environment problem
    cmd = ["import", "wide", str(sheet_file), "--map", str(WIDE_MAP), "--key", str(tmp_path)]
    assert main([*cmd, "--out", str(out)]) == 3
    # redcap without its data dictionary
    cmd = ["import", "redcap", str(sheet_file), "--map", str(WIDE_MAP), *key]
    assert main([*cmd, "--out", str(out)]) == 2


# --------------------------------------------------------------------------- README


def _readme_blocks(after: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From your system to a cohort folder", 1)[1].split("\n## ", 1)[0]
    part = section.split(after, 1)[1]
    return [block.split("\n", 1)[1] for block in part.split("```")[1::2]]


def test_readme_mappings_are_the_example_files():
    import yaml

    for title, name in (("**A wide sheet**", "wide"), ("**A REDCap project**", "redcap"),
                        ("**FHIR R4**", "fhir")):  # fmt: skip
        block = next(b for b in _readme_blocks(title) if b.startswith("source:"))
        in_readme = read_mapping(yaml.safe_load(block))
        in_file = read_mapping(ROOT / "data_schema" / "mappings" / f"{name}.yaml")
        assert in_readme == in_file, name


def test_readme_wide_example_gives_what_it_says(tmp_path):
    import io

    sheet = pd.read_csv(io.StringIO(_readme_blocks("**A wide sheet**")[0]), dtype=str)
    cohort = from_wide(sheet, WIDE_MAP, key=KEY)
    p = cohort.patients
    assert len(p) == 1 and p.loc[0, "patient_id"].startswith("P")
    assert (p.loc[0, "age"], p.loc[0, "route"], p.loc[0, "sex"]) == (90, "iv", "female")
    assert cohort.sessions["study_day"].tolist() == [0, 7]
    a = cohort.assessments
    assert a.loc[a["instrument"] == "GAD7", "study_day"].tolist() == [-3, 7]
    assert a.loc[a["instrument"] == "HAMA", ["study_day", "total"]].values.tolist() == [[-3, 24]]
    assert cohort.import_log["columns_dropped"] == ["patient_name", "notes"]


def test_day_0_assessment_timed_after_the_dose_is_left_out():
    sheet = visit_sheet()
    sheet.loc[1, "ketamine_date"] = "2024-03-04 09:00"
    sheet.loc[1, "gad7_1":"gad7_7"] = ["2"] * 7  # a GAD-7 on day 0 ...
    sheet.loc[1, "visit_date"] = "2024-03-04 11:15"  # ... filled in after the first dose
    cohort = from_wide(sheet, WIDE_MAP, key=KEY)
    gad = cohort.assessments[cohort.assessments["instrument"] == "GAD7"]
    assert 0 not in gad["study_day"].tolist()
    assert cohort.import_log["rows_left_out"]["assessments: on day 0 after the first dose"] == 1
    sheet.loc[1, "visit_date"] = "2024-03-04 08:40"  # before the dose: the day-0 baseline
    cohort = from_wide(sheet, WIDE_MAP, key=KEY)
    gad = cohort.assessments[cohort.assessments["instrument"] == "GAD7"]
    assert gad["study_day"].tolist()[:4] == [-3, 0, 7, 28]


def test_wide_adverse_events_with_terms_as_codes():
    from analysis.intake import Block, FieldSpec, ImportMapping

    sheet = visit_sheet()
    sheet["side_effect"] = ""
    sheet["side_effect_severity"] = ""
    sheet.loc[[2, 6], "side_effect"] = ["Nausea", "Elevated blood pressure"]
    sheet.loc[[2, 6], "side_effect_severity"] = ["Mild", "moderate"]
    ae = Block(
        date="visit_date",
        fields={"term": FieldSpec("side_effect"), "severity": FieldSpec("side_effect_severity")},
    )
    mapping = ImportMapping(**read_mapping(WIDE_MAP).__dict__ | {"adverse_events": ae})
    events = from_wide(sheet, mapping, key=KEY).adverse_events
    ada, alan = pseudonym("00012345", KEY), pseudonym("00067890", KEY)
    assert events[["patient_id", "study_day", "term", "severity"]].values.tolist() == [
        [ada, 7, "nausea", "mild"],  # 2024-03-11, first session 2024-03-04
        [alan, 14, "elevated_blood_pressure", "moderate"],  # 2024-05-28 from 2024-05-14
    ]
