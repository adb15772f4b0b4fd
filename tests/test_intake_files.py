"""Clinic exports as they arrive: messy CSV, Excel, SPSS/SAS/Stata, and unreadable files.

Every fixture file is written by the test itself (pandas, openpyxl, pyreadstat writers).
"""

from __future__ import annotations

import codecs

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _cohort_fixtures import valid_cohort, valid_tables, write_ods

from analysis import readers
from analysis.cli import main
from analysis.instruments import GAD7
from analysis.schema import (
    DataValidationError,
    load_cohort,
    validate_cohort,
    write_cohort,
)


def _csv(df: pd.DataFrame, sep: str = ",", line_end: str = "\n") -> str:
    return df.to_csv(index=False, sep=sep, lineterminator=line_end)


def _folder(tmp_path, **overrides):
    """A valid cohort folder (CSV) with some tables replaced by raw text or bytes."""
    folder = tmp_path / "clinic"
    write_cohort(valid_cohort(), folder)
    for name, content in overrides.items():
        path = folder / name
        for table in ("patients", "assessments", "sessions", "adverse_events"):
            if name.split(".")[0].lower().replace(" ", "_") == table:
                (folder / f"{table}.csv").unlink(missing_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return folder


def _checks(frame: pd.DataFrame) -> list[str]:
    return frame["check"].tolist()


# ----------------------------------------------------------------------------- the quirks


def test_a_clinic_folder_with_every_csv_quirk_loads_with_the_right_findings(tmp_path):
    tables = valid_tables()
    patients = tables["patients"].copy()
    patients.loc[0, "age"] = "N/A"
    patients.loc[1, "sex"] = "n/a"
    patients.loc[2, "primary_diagnosis"] = "NULL"
    patients.loc[3, "enrollment_year"] = "."
    patients = patients.rename(columns={"patient_id": "Patient_ID", "route": " Route "})
    assessments = tables["assessments"].rename(
        columns={"item_1": "Item_1 ", "total": "Total", "study_day": "Study Day"}
    )
    assessments = assessments.rename(columns={"item_14": "itm_14"})  # a typo
    sessions = tables["sessions"]
    folder = _folder(
        tmp_path,
        **{
            # semicolon-separated, UTF-8 with a byte-order mark, CRLF line ends
            "patients.csv": codecs.BOM_UTF8 + _csv(patients, ";", "\r\n").encode("utf-8"),
            # comma-separated with a BOM, the header in another case
            "Assessments.CSV": codecs.BOM_UTF8 + _csv(assessments).encode("utf-8"),
            # tab-separated
            "sessions.tsv": _csv(sessions, "\t"),
        },
    )
    cohort = load_cohort(folder)
    assert cohort.patients["age"].isna().tolist() == [True, False, False, True]
    assert cohort.patients.loc[1, "sex"] is pd.NA
    assert cohort.patients.loc[2, "primary_diagnosis"] is pd.NA
    assert cohort.patients["route"].tolist() == valid_tables()["patients"]["route"].tolist()
    assert cohort.assessments["item_1"].dtype == "Int64"
    assert len(cohort.sessions) == len(sessions)
    findings = cohort.findings
    renamed = findings[findings["check"] == "column_renamed"]
    assert sorted(zip(renamed["table"], renamed["column"], renamed["value"], strict=True)) == [
        ("assessments", "item_1", "Item_1"),
        # two capitalised words read as a personal name to the guard: the header is
        # renamed and listed, but its text is not echoed (deid.redact_failures)
        ("assessments", "study_day", ""),
        ("assessments", "total", "Total"),
        ("patients", "patient_id", ""),  # nothing of the identifier column is echoed
        ("patients", "route", "Route"),
    ]
    unknown = findings[findings["check"].str.startswith("unknown_column")]
    assert unknown[["table", "column", "check"]].values.tolist() == [
        ["patients", "baseline_phq9", "unknown_column: kept as an extra column"],
        ["assessments", "itm_14", "unknown_column: did you mean `item_14`?"],
    ]
    delimiters = findings[findings["check"].str.startswith("delimiter")]
    assert sorted(zip(delimiters["table"], delimiters["check"], strict=True)) == [
        ("patients", "delimiter: read as semicolon-separated"),
        ("sessions", "delimiter: read as tab-separated"),
    ]
    assert (findings["severity"] == "finding").all()


def test_an_unknown_column_is_named_with_the_closest_schema_name(tmp_path):
    tables = valid_tables()
    assessments = tables["assessments"].rename(columns={"item_3": "itm_3"})
    report = validate_cohort({"patients": tables["patients"], "assessments": assessments})
    unknown = report.findings[report.findings["column"] == "itm_3"]
    assert unknown["check"].tolist() == ["unknown_column: did you mean `item_3`?"]
    assert report.ok  # item_3 is optional: the column is kept as an extra


def test_missing_values_are_overridable(tmp_path):
    tables = valid_tables()
    tables["patients"].loc[0, "age"] = "-"
    folder = _folder(tmp_path, **{"patients.csv": _csv(tables["patients"])})
    with pytest.raises(DataValidationError, match="age"):  # "-" is not a number by default
        load_cohort(folder)
    cohort = load_cohort(folder, missing_values=["", "-"])
    assert cohort.patients.loc[0, "age"] is pd.NA


def test_an_undetectable_delimiter_says_what_the_file_looks_like(tmp_path):
    folder = _folder(tmp_path, **{"patients.csv": "PID;Weg\r\nP1;iv\r\n"})
    with pytest.raises(DataValidationError, match="looks semicolon-separated") as info:
        load_cohort(folder)
    assert "patients.csv" in str(info.value)


def test_a_utf16_file_with_a_byte_order_mark_is_decoded(tmp_path):
    tables = valid_tables()
    folder = _folder(tmp_path, **{"patients.csv": _csv(tables["patients"]).encode("utf-16")})
    cohort = load_cohort(folder)
    assert len(cohort.patients) == len(tables["patients"])
    assert "encoding: read as UTF-16" in cohort.findings["check"].iloc[0]


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted"])
def test_blank_rows_inside_a_table_are_listed_with_their_lines(tmp_path, capsys, quoted):
    # Blank rows hold no data and are skipped, but one between rows of data is listed (the
    # line numbers below it jump); blank rows after the data (a spreadsheet's empty rows
    # exported as separators only, a last line end) end the table and are not listed.
    # Quoted cells take the csv module's reader, plain ones the fast line split.
    tables = valid_tables()
    lines = _csv(tables["patients"], ";", "\r\n").split("\r\n")
    if quoted:
        lines = [lines[0]] + [
            f'"{line.split(";")[0]}";' + line.split(";", 1)[1] for line in lines[1:] if line
        ]
    separators = ";" * lines[0].count(";")
    # header, row (line 2), blank (3), separators only (4), rows (5, 6), spaces (7), row (8)
    body = [lines[0], lines[1], "", separators, lines[2], lines[3], "  ", lines[4]]
    text = "\r\n".join(body + [separators, separators, "", ""])
    folder = _folder(tmp_path, **{"patients.csv": text})
    report = validate_cohort(folder)
    assert report.ok
    blank = report.findings[report.findings["check"].str.startswith("blank_rows")]
    assert blank[["table", "line", "column", "check", "count"]].values.tolist() == [
        ["patients", n, "(file)", "blank_rows: skipped", 1] for n in (3, 4, 7)
    ]
    assert blank["row"].isna().all()  # not rows of the table
    assert len(load_cohort(folder).patients) == len(tables["patients"])
    assert main(["validate", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "  patients file: blank_rows: skipped (lines 3, 4, 7)" in printed
    assert "  patients file: delimiter: read as semicolon-separated" in printed


def test_blank_rows_inside_a_sheet_are_listed_with_their_lines(tmp_path):
    pytest.importorskip("openpyxl")
    tables = valid_tables()
    folder = write_cohort(valid_cohort(), tmp_path / "sheet")
    (folder / "patients.csv").unlink()
    patients = tables["patients"].replace({None: ""})
    gap = pd.DataFrame([[""] * patients.shape[1]], columns=patients.columns)
    # header (line 1), rows 2-3, blank (4), rows 5-6, then blank rows below the data
    pd.concat([patients.iloc[:2], gap, patients.iloc[2:], gap, gap]).to_excel(
        folder / "patients.xlsx", index=False
    )
    report = validate_cohort(folder)
    assert report.ok
    blank = report.findings[report.findings["check"].str.startswith("blank_rows")]
    assert blank[["line", "check"]].values.tolist() == [[4, "blank_rows: skipped"]]
    assert load_cohort(folder).patients["patient_id"].tolist() == patients["patient_id"].tolist()
    assert not report.findings["check"].str.startswith("sheets").any()  # one sheet


@pytest.mark.parametrize("named", [True, False], ids=["named", "first"])
def test_the_other_sheets_of_a_one_table_workbook_are_counted_never_named(tmp_path, named):
    pytest.importorskip("openpyxl")
    tables = valid_tables()
    folder = write_cohort(valid_cohort(), tmp_path / "book")
    (folder / "patients.csv").unlink()
    patients = tables["patients"].replace({None: ""})
    table_sheet = "Patients" if named else "Export"
    with pd.ExcelWriter(folder / "patients.xlsx") as writer:
        if named:
            pd.DataFrame({"x": [1]}).to_excel(writer, sheet_name="Jennifer Smith", index=False)
        patients.to_excel(writer, sheet_name=table_sheet, index=False)
        pd.DataFrame({"x": [1]}).to_excel(writer, sheet_name="P999999 notes", index=False)
    report = validate_cohort(folder)
    assert report.ok
    sheets = report.findings[report.findings["check"].str.startswith("sheets")]
    which = "the sheet named after the table" if named else "the first sheet"
    others = "2 others" if named else "1 other"
    assert sheets[["table", "column", "check"]].values.tolist() == [
        ["patients", "(file)", f"sheets: read {which}, {others} not read"]
    ]
    assert load_cohort(folder).patients["patient_id"].tolist() == patients["patient_id"].tolist()
    described = report.describe()
    assert f"patients file: sheets: read {which}" in described
    assert "Jennifer" not in described and "P999999" not in described


@pytest.mark.parametrize("categorical", [False, True], ids=["text", "categorical"])
def test_a_semicolon_file_with_decimal_commas_is_read_with_decimal_points(
    tmp_path, monkeypatch, categorical
):
    # Excel in a language that writes 42,5 saves CSV separated by semicolons with the
    # numbers as shown: the numeric columns are read with a decimal point and listed; the
    # same cohort written with points loads to the same tables. A large file (4 MB or
    # more) is read as categorical text: the same cells, converted on the categories.
    if categorical:
        monkeypatch.setattr(readers, "_CATEGORICAL_BYTES", 0)
    sessions = valid_tables()["sessions"]
    sessions.loc[1, "dose_mg_per_kg"] = "."  # a missing-value marker with a point
    sessions.loc[0, "dose_mg"] = "N/A"
    text = _csv(sessions.astype(str).replace({"None": ""}), ";").replace(".", ",")
    text = text.replace(";,;", ";.;")  # the marker stays a point
    assert "42,5" in text and "0,6" in text
    folder = _folder(tmp_path, **{"sessions.csv": text})
    cohort = load_cohort(folder)
    expected = load_cohort(_folder(tmp_path / "points", **{"sessions.csv": _csv(sessions)}))
    pd.testing.assert_frame_equal(cohort.sessions, expected.sessions)
    assert pd.isna(cohort.sessions.loc[0, "dose_mg"])  # N/A
    assert cohort.sessions["dose_mg"].tolist()[1:3] == [35.0, 42.5]
    assert pd.isna(cohort.sessions.loc[1, "dose_mg_per_kg"])  # "."
    assert cohort.sessions.loc[2, "dose_mg_per_kg"] == 0.6
    found = cohort.findings[cohort.findings["check"].str.startswith("decimal_comma")]
    assert sorted(found["column"]) == ["dose_mg", "dose_mg_per_kg"]  # the others are whole


def test_decimal_commas_are_not_guessed_where_a_point_or_comma_separates(tmp_path):
    # A file that mixes 42,5 (dose_mg) and 0.5 (dose_mg_per_kg) is left as written (its
    # commas fail their type check, as before); in a comma-separated file a quoted "42,5"
    # is not a number either.
    sessions = valid_tables()["sessions"]
    mixed = _csv(sessions.astype(str).replace({"None": ""}), ";").replace(";42.5;", ";42,5;")
    assert ";42,5;" in mixed and ";0.5;" in mixed
    report = validate_cohort(_folder(tmp_path / "mixed", **{"sessions.csv": mixed}))
    failed = report.errors[report.errors["check"] == "type number"]
    assert failed[["column", "line"]].values.tolist() == [["dose_mg", 4]]
    assert not report.findings["check"].str.startswith("decimal_comma").any()
    commas = _csv(sessions).replace(",42.5,", ',"42,5",')
    report = validate_cohort(_folder(tmp_path / "commas", **{"sessions.csv": commas}))
    failed = report.errors[report.errors["check"] == "type number"]
    assert failed[["column", "line"]].values.tolist() == [["dose_mg", 4]]


# ----------------------------------------------------------------------------- unreadable files


def _refused(folder, *fragments):
    with pytest.raises(DataValidationError) as info:
        load_cohort(folder)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Fix:" in message
    assert main(["validate", str(folder)]) == 1
    return info.value


def test_file_problems_are_data_validation_errors_naming_the_file_and_fix(tmp_path, capsys):
    tables = valid_tables()
    text = _csv(tables["patients"])
    cases = {
        "empty_required": ({"patients.csv": b""}, ["patients.csv", "empty (0 bytes)"]),
        "empty_optional": ({"adverse_events.csv": b""}, ["adverse_events.csv", "0 bytes"]),
        "latin1": (
            {"patients.csv": (text + "P9,,,,,,,,,iv,,café,,\n").encode("latin-1")},
            ["patients.csv", "latin-1", "save it as UTF-8"],
        ),
        "utf16_without_bom": (
            {"patients.csv": text.encode("utf-16-le")},
            ["patients.csv", "UTF-16", "save it as UTF-8"],
        ),
        "ragged": (
            {"patients.csv": text + "P9,S2,40\n"},
            ["patients.csv", "fields", "line"],
        ),
        "duplicate_header": (
            {"patients.csv": text.replace("enrollment_year", "Age", 1)},
            ["patients.csv", "more than once", "`Age`"],
        ),
    }
    for name, (files, fragments) in cases.items():
        folder = _folder(tmp_path / name, **files)
        _refused(folder, *fragments)
    capsys.readouterr()


def test_ragged_rows_name_their_spreadsheet_lines(tmp_path):
    text = _csv(valid_tables()["patients"])
    lines = text.splitlines()
    lines[2] += ",extra"
    folder = _folder(tmp_path, **{"patients.csv": "\n".join(lines) + "\n"})
    error = _refused(folder, "patients.csv", "lines 3")
    assert error.report.errors["line"].tolist() == [3]


def test_a_table_in_two_formats_and_a_dangling_link_are_refused(tmp_path):
    folder = _folder(tmp_path / "two")
    valid_tables()["patients"].to_parquet(folder / "patients.parquet")
    _refused(folder, "patients.csv", "patients.parquet", "keep one file per table")

    folder = _folder(tmp_path / "link")
    (folder / "sessions.csv").unlink()
    (folder / "sessions.csv").symlink_to(folder / "nowhere.csv")
    _refused(folder, "sessions.csv", "link to a file that does not exist")


def test_a_nested_parquet_column_is_refused(tmp_path):
    folder = _folder(tmp_path)
    (folder / "patients.csv").unlink()
    patients = valid_tables()["patients"][["patient_id", "route"]]
    table = pa.table(
        {
            "patient_id": patients["patient_id"].tolist(),
            "route": patients["route"].tolist(),
            "scores": [[1, 2]] * len(patients),
        }
    )
    pq.write_table(table, folder / "patients.parquet")
    _refused(folder, "patients.parquet", "`scores`", "one plain value per cell")


# ----------------------------------------------------------------------------- other formats


def test_one_xlsx_workbook_per_table(tmp_path):
    pytest.importorskip("openpyxl")
    tables = valid_tables()
    folder = tmp_path / "xlsx"
    folder.mkdir()
    for name, df in tables.items():
        df.replace({None: ""}).to_excel(folder / f"{name}.xlsx", index=False)
    cohort = load_cohort(folder)
    expected = load_cohort(write_cohort(valid_cohort(), tmp_path / "csv"))
    for name in tables:
        pd.testing.assert_frame_equal(getattr(cohort, name), getattr(expected, name))


def test_one_workbook_with_a_sheet_per_table(tmp_path):
    pytest.importorskip("openpyxl")
    tables = valid_tables()
    folder = tmp_path / "book"
    folder.mkdir()
    with pd.ExcelWriter(folder / "clinic_export.xlsx") as writer:
        for name, df in tables.items():
            df.to_excel(writer, sheet_name=name.replace("_", " ").title(), index=False)
    cohort = load_cohort(folder)
    assert [len(getattr(cohort, t)) for t in tables] == [len(df) for df in tables.values()]
    assert cohort.collected == tuple(tables)


def _as_a_spreadsheet_holds_it(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numbers (as a spreadsheet stores them), the rest as text."""
    out = frame.copy()
    for column in out.columns.drop("patient_id"):
        try:
            out[column] = pd.to_numeric(out[column])
        except ValueError:  # a text column
            pass
    return out


@pytest.mark.parametrize("one_workbook", [False, True], ids=["per_table", "one_workbook"])
def test_opendocument_spreadsheets_load_like_csv(tmp_path, one_workbook):
    # LibreOffice's .ods: a file per table, or one workbook with a sheet per table.
    tables = {
        n: _as_a_spreadsheet_holds_it(t.replace({None: ""})) for n, t in valid_tables().items()
    }
    folder = tmp_path / "ods"
    folder.mkdir()
    if one_workbook:
        write_ods(folder / "clinic_export.ods", {n.title(): t for n, t in tables.items()})
    else:
        for name, frame in tables.items():
            write_ods(folder / f"{name}.ods", {"Sheet1": frame})
    cohort = load_cohort(folder)
    expected = load_cohort(write_cohort(valid_cohort(), tmp_path / "csv"))
    for name in tables:
        pd.testing.assert_frame_equal(getattr(cohort, name), getattr(expected, name), obj=name)


@pytest.mark.parametrize("ext", ["sav", "dta", "xpt"])
def test_spss_stata_and_sas_transport_files_with_value_labels(tmp_path, ext):
    pyreadstat = pytest.importorskip("pyreadstat")
    tables = valid_tables()
    folder = _folder(tmp_path)
    (folder / "patients.csv").unlink()
    patients = valid_cohort().patients[["patient_id", "age", "sex", "route"]].copy()
    patients["age"] = patients["age"].astype(float)
    if ext == "xpt":  # the transport format carries no value labels: text codes
        patients["sex"] = patients["sex"].astype(object).fillna("")
        patients.columns = [c.upper() for c in patients.columns]
        pyreadstat.write_xport(patients, folder / "patients.xpt", file_format_version=8)
        cohort = load_cohort(folder)
        assert cohort.patients["route"].tolist() == tables["patients"]["route"].tolist()
        renamed = cohort.findings[cohort.findings["check"] == "column_renamed"]
        assert set(renamed["column"]) == {"patient_id", "age", "sex", "route"}
        return
    patients["sex"] = patients["sex"].map({"female": 1, "male": 2, "other": 3}).astype(float)
    patients["route"] = patients["route"].map(
        {"iv": 1, "im": 2, "intranasal": 3, "oral": 4, "sublingual": 5}
    )
    patients["route"] = patients["route"].astype(float)
    labels = {
        "sex": {1.0: "Female", 2.0: "Male", 3.0: "Other"},
        "route": {1.0: "IV", 2.0: "IM", 3.0: "Intranasal", 4.0: "Oral", 5.0: "Sublingual"},
    }
    path = folder / f"patients.{ext}"
    if ext == "sav":
        pyreadstat.write_sav(patients, path, variable_value_labels=labels)
    else:
        pyreadstat.write_dta(patients, path, variable_value_labels=labels)
    cohort = load_cohort(folder)
    ages = valid_cohort().patients["age"].astype(float)
    assert cohort.patients["age"].astype(float).tolist()[:3] == ages.tolist()[:3]
    assert cohort.patients["sex"].tolist()[:3] == ["female", "male", "other"]
    assert cohort.patients["route"].tolist() == tables["patients"]["route"].tolist()
    assert "value_labels" in " ".join(cohort.findings["check"])


def test_unlabelled_codes_are_refused_with_the_allowed_codes(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    folder = _folder(tmp_path)
    (folder / "patients.csv").unlink()
    patients = valid_cohort().patients[["patient_id", "route"]].copy()
    patients["route"] = 1.0
    pyreadstat.write_sav(patients, folder / "patients.sav")
    with pytest.raises(DataValidationError) as info:
        load_cohort(folder)
    assert set(info.value.failures["check"]) == {"one_of iv, im, intranasal, oral, sublingual"}


def test_gad7_item_names_in_other_cases_are_scored(tmp_path):
    tables = valid_tables()
    upper = {c: c.replace("item_", "Item_") for c in GAD7.item_columns}
    assessments = tables["assessments"].rename(columns={**upper, "total": "TOTAL"})
    folder = _folder(tmp_path, **{"assessments.csv": _csv(assessments)})
    cohort = load_cohort(folder)
    assert not any(c.startswith("unscorable") for c in _checks(cohort.findings))
