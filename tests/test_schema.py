"""Schema files, validation, loading and writing (DESIGN.md "Data model")."""

from __future__ import annotations

import pickle
import re
import tempfile
from pathlib import Path

import frictionless
import numpy as np
import pandas as pd
import pytest
from _cohort_fixtures import PATIENT_IDS, as_text, valid_cohort, valid_frames, valid_tables
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.deid import DeidentificationError
from analysis.instruments import GAD7, HAMA, INSTRUMENTS, MAX_ITEMS
from analysis.schema import (
    FAILURE_COLUMNS,
    TABLES,
    Cohort,
    DataValidationError,
    collect_failures,
    load_cohort,
    read_schema,
    schema_dir,
    validate,
    validate_cohort,
    write_cohort,
)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "data_schema"


def fields(table):
    return {f["name"]: f for f in read_schema(table)["fields"]}


def failures_of(tables):
    return collect_failures(tables)[list(FAILURE_COLUMNS)]


def only(failures, column):
    return failures[failures["column"] == column]


def write_csv(tables, folder):
    for name, df in tables.items():
        df.to_csv(Path(folder) / f"{name}.csv", index=False)
    return folder


# ----------------------------------------------------------------------------- schema files


@pytest.mark.parametrize("table", TABLES)
def test_schema_file_is_a_valid_table_schema(table):
    descriptor = read_schema(table)
    frictionless.Schema.from_descriptor(descriptor)  # raises on an invalid descriptor
    for f in descriptor["fields"]:
        assert f["description"], f"{table}.{f['name']} has no description"
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    for f in descriptor["fields"]:
        if not re.fullmatch(r"item_\d+", f["name"]):
            assert f"`{f['name']}`" in readme, f"README.md does not document {table}.{f['name']}"


def test_schema_dir_is_the_repository_folder():
    assert schema_dir() == SCHEMA_DIR
    assert sorted(p.stem for p in SCHEMA_DIR.glob("*.json")) == sorted(TABLES)


def test_read_schema_rejects_an_unknown_table_and_returns_a_copy():
    with pytest.raises(ValueError, match="must be one of"):
        read_schema("visits")
    read_schema("patients")["fields"].clear()
    assert read_schema("patients")["fields"]


def test_schema_agrees_with_the_instrument_constants():
    # DESIGN.md data model: items 1..14, GAD7 items 0-3 total 0-21, HAMA items 0-4 total 0-56;
    # the JSON holds the widest range, the instrument-specific rules live in schema.py.
    f = fields("assessments")
    items = [n for n in f if n.startswith("item_")]
    assert items == [f"item_{k}" for k in range(1, MAX_ITEMS + 1)]
    item_max = max(i.item_max for i in INSTRUMENTS.values())
    total_max = max(i.total_max for i in INSTRUMENTS.values())
    for name in items:
        assert f[name]["constraints"] == {"minimum": 0, "maximum": item_max}
    assert f["total"]["constraints"] == {"minimum": 0, "maximum": total_max}
    assert f["instrument"]["constraints"]["enum"] == list(INSTRUMENTS)


def test_schema_keys_follow_the_data_model():
    assert read_schema("patients")["primaryKey"] == ["patient_id"]
    assert read_schema("assessments")["primaryKey"] == ["patient_id", "instrument", "study_day"]
    assert read_schema("sessions")["primaryKey"] == ["patient_id", "session_number"]
    for table in ("assessments", "sessions", "adverse_events"):
        (fk,) = read_schema(table)["foreignKeys"]
        assert fk == {
            "fields": ["patient_id"],
            "reference": {"resource": "patients", "fields": ["patient_id"]},
        }
    required = {
        t: [n for n, f in fields(t).items() if f.get("constraints", {}).get("required")]
        for t in TABLES
    }
    assert required == {
        "patients": ["patient_id", "route"],
        "assessments": ["patient_id", "instrument", "study_day"],
        "sessions": ["patient_id", "session_number", "study_day", "route"],
        "adverse_events": ["patient_id", "study_day", "term"],
    }


def test_frictionless_accepts_a_written_valid_cohort(tmp_path):
    # The same JSON files validate the CSV files with the Frictionless tools (R, CLI, ...).
    folder = write_cohort(load_cohort(write_cohort(valid_cohort(), tmp_path / "a")), tmp_path / "b")
    for table in TABLES:
        frame = pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)
        schema = read_schema(table)
        names = [f["name"] for f in schema["fields"]]
        frame[names].to_csv(tmp_path / f"{table}.csv", index=False)
        schema.pop("foreignKeys", None)  # checked across files by the package
        resource = frictionless.Resource.from_descriptor(
            {
                "$schema": "https://datapackage.org/profiles/2.0/dataresource.json",
                "name": table,
                "path": f"{table}.csv",
                "schema": schema,
            },
            basepath=str(tmp_path),
        )
        report = resource.validate()
        assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])


# ----------------------------------------------------------------------------- valid data


def test_a_valid_cohort_has_no_failures():
    assert failures_of(valid_tables()).empty
    assert failures_of(valid_frames()).empty
    assert list(collect_failures(valid_tables()).columns) == list(FAILURE_COLUMNS)


def test_validate_returns_a_typed_copy_with_every_schema_column():
    raw = valid_tables()["patients"]
    before = raw.copy()
    typed = validate(raw, "patients")
    pd.testing.assert_frame_equal(raw, before)  # the input is not modified
    names = [f["name"] for f in read_schema("patients")["fields"]]
    assert list(typed.columns) == [*names, "baseline_phq9"]  # extra column kept, last
    assert typed["age"].dtype == "Int64"
    assert typed["patient_id"].dtype == "string"
    assert typed["comorbid_depression"].dtype == "boolean"
    assert validate(valid_tables()["sessions"], "sessions")["dose_mg"].dtype == "Float64"
    minimal = validate(pd.DataFrame({"patient_id": ["P1"], "route": ["iv"]}), "patients")
    assert list(minimal.columns) == names and minimal["age"].isna().all()


def test_validate_keeps_the_index_of_the_input():
    raw = valid_tables()["patients"].set_axis([10, 11, 12, 13])
    assert list(validate(raw, "patients").index) == [10, 11, 12, 13]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("Yes", True), ("1", True), (" yes ", True),
     ("false", False), ("No", False), ("0", False), ("FALSE", False), ("", pd.NA)],
)  # fmt: skip
def test_booleans_accept_true_false_yes_no_1_0_in_any_case(text, expected):
    raw = pd.DataFrame({"patient_id": ["P1"], "route": ["iv"], "comorbid_depression": [text]})
    value = validate(raw, "patients")["comorbid_depression"].iloc[0]
    assert value is pd.NA if expected is pd.NA else bool(value) is expected


# ----------------------------------------------------------------------------- one case each


def test_text_in_an_integer_column_is_a_type_failure():
    tables = valid_tables()
    tables["patients"].loc[1, "age"] = "thirty"
    tables["assessments"].loc[2, "study_day"] = "7.5"
    failures = failures_of(tables)
    assert failures[["table", "row", "column", "check"]].values.tolist() == [
        ["patients", 1, "age", "type integer"],
        ["assessments", 2, "study_day", "type integer"],
    ]
    assert failures["value"].tolist() == ["thirty", "7.5"]


def test_out_of_range_gad7_item():
    tables = valid_tables()
    tables["assessments"].loc[0, "item_3"] = str(GAD7.item_max + 1)
    failures = failures_of(tables)
    assert failures.values.tolist() == [
        ["assessments", 0, "item_3", f"in_range 0-{GAD7.item_max} for GAD7", "4"]
    ]


def test_total_disagreeing_with_complete_items():
    tables = valid_tables()
    row = tables["assessments"].index[tables["assessments"]["instrument"] == "HAMA"][0]
    total = int(tables["assessments"].loc[row, "total"])
    tables["assessments"].loc[row, "total"] = str(total + 1)
    failures = failures_of(tables)
    assert failures.values.tolist() == [
        ["assessments", row, "total", "total_matches_items for HAMA", str(total + 1)]
    ]


def test_gad7_row_with_hama_items_filled():
    tables = valid_tables()
    tables["assessments"].loc[0, GAD7.unused_item_columns[:2]] = "1"
    failures = failures_of(tables)
    assert failures["column"].tolist() == GAD7.unused_item_columns[:2]
    assert set(failures["check"]) == {"empty for GAD7"}


def test_duplicate_patient_instrument_study_day():
    tables = valid_tables()
    a = tables["assessments"]
    tables["assessments"] = pd.concat([a, a.iloc[[0]]], ignore_index=True)
    failures = failures_of(tables)
    assert failures["row"].tolist() == [0, len(a)]  # both rows of the duplicated key
    assert set(failures["column"]) == {"patient_id, instrument, study_day"}
    assert set(failures["check"]) == {"unique patient_id+instrument+study_day"}


def test_assessments_for_unknown_patients():
    tables = valid_tables()
    tables["assessments"].loc[[0, 1], "patient_id"] = "P999999"
    tables["sessions"].loc[0, "patient_id"] = "P999998"
    failures = failures_of(tables)
    assert failures[["table", "row", "column", "check"]].values.tolist() == [
        ["assessments", 0, "patient_id", "foreign_key patients.patient_id"],
        ["assessments", 1, "patient_id", "foreign_key patients.patient_id"],
        ["sessions", 0, "patient_id", "foreign_key patients.patient_id"],
    ]


def test_unknown_instrument_and_route():
    tables = valid_tables()
    tables["assessments"].loc[0, "instrument"] = "PHQ9"
    tables["patients"].loc[0, "route"] = "IV"  # codes are case-sensitive
    failures = failures_of(tables)
    assert failures[["table", "column", "check", "value"]].values.tolist() == [
        ["patients", "route", "one_of iv, im, intranasal, oral, sublingual", "IV"],
        ["assessments", "instrument", "one_of GAD7, HAMA", "PHQ9"],
    ]


def test_missing_required_columns():
    tables = valid_tables()
    tables["patients"] = tables["patients"].drop(columns="route")
    tables["assessments"] = tables["assessments"].drop(columns=["instrument", "study_day"])
    failures = failures_of(tables)
    assert failures[["table", "column", "check"]].values.tolist() == [
        ["patients", "route", "required_column"],
        ["assessments", "instrument", "required_column"],
        ["assessments", "study_day", "required_column"],
    ]
    assert failures["row"].isna().all()


def test_missing_required_value():
    tables = valid_tables()
    tables["assessments"].loc[3, "study_day"] = None
    assert failures_of(tables)[["row", "column", "check"]].values.tolist() == [
        [3, "study_day", "not_null"]
    ]


def test_patient_id_failing_the_pattern():
    tables = valid_tables()
    tables["patients"].loc[2, "patient_id"] = "P 125"
    tables["assessments"]["patient_id"] = tables["assessments"]["patient_id"].replace(
        PATIENT_IDS[2], "P 125"
    )
    failures = failures_of(tables)
    assert set(failures["check"]) == {"pattern [A-Za-z0-9_-]{1,64}"}
    assert set(failures["column"]) == {"patient_id"}
    assert (failures["table"] == "patients").sum() == 1
    # the malformed id still links the tables: no cascade of foreign-key failures
    assert not failures["check"].str.startswith("foreign_key").any()


def test_extra_unknown_columns_are_kept(tmp_path):
    tables = valid_tables()
    tables["assessments"]["visit_label"] = "week1"
    cohort = load_cohort(write_csv(tables, tmp_path))
    assert cohort.assessments["visit_label"].eq("week1").all()
    assert cohort.patients["baseline_phq9"].tolist()[:3] == [14, 9, 21]


def test_extra_columns_pass_through_the_deidentification_guard(tmp_path):
    tables = valid_tables()
    tables["assessments"]["visit_label"] = "week1"
    tables["assessments"].loc[4, "visit_label"] = "2024-03-05"
    with pytest.raises(DeidentificationError) as info:
        load_cohort(write_csv(tables, tmp_path))
    assert info.value.failures[["row", "column", "check", "value"]].values.tolist() == [
        [4, "visit_label", "date_value", ""]
    ]


def test_unscorable_row_is_a_finding_not_an_error():
    tables = valid_tables()
    row = 0
    dropped = GAD7.item_columns[: GAD7.max_missing_items + 1]
    tables["assessments"].loc[row, [*dropped, "total"]] = None
    needed = GAD7.n_items - GAD7.max_missing_items
    assert failures_of(tables).empty
    report = validate_cohort(tables)
    unscorable = report.findings[report.findings["check"].str.startswith("unscorable")]
    assert unscorable[["table", "row", "line", "column", "check", "severity"]].values.tolist() == [
        [
            "assessments",
            row,
            row + 2,
            "total",
            f"unscorable for GAD7: no total and fewer than {needed} of {GAD7.n_items} items",
            "finding",
        ]
    ]


def test_hama_item_above_its_range_and_gad7_total_above_its_range():
    tables = valid_tables()
    a = tables["assessments"]
    hama = a.index[a["instrument"] == "HAMA"][0]
    a.loc[hama, "item_14"] = str(HAMA.item_max + 1)
    a.loc[0, "total"] = str(GAD7.total_max + 1)
    checks = failures_of(tables)["check"].tolist()
    assert checks == [f"in_range 0-{GAD7.total_max} for GAD7", f"in_range 0-{HAMA.item_max}"]


def test_session_1_on_study_day_0():
    tables = valid_tables()
    tables["sessions"].loc[3, "study_day"] = "2"
    assert failures_of(tables)[["table", "row", "column", "check"]].values.tolist() == [
        ["sessions", 3, "study_day", "session_1_on_day_0"]
    ]


def test_every_failure_of_every_table_is_collected_before_raising(tmp_path):
    tables = valid_tables()
    tables["patients"].loc[0, "sex"] = "F"
    tables["assessments"].loc[[0, 5], "item_3"] = "4"
    tables["sessions"].loc[1, "dose_mg"] = "0"
    tables["adverse_events"].loc[2, "severity"] = "grade 3"
    with pytest.raises(DataValidationError) as info:
        load_cohort(write_csv(tables, tmp_path))
    assert type(info.value) is DataValidationError
    failures = info.value.failures
    assert failures[["table", "column"]].values.tolist() == [
        ["patients", "sex"],
        ["assessments", "item_3"],
        ["assessments", "item_3"],
        ["sessions", "dose_mg"],
        ["adverse_events", "severity"],
    ]
    message = str(info.value)
    assert "assessments.item_3: 2 rows fail `in_range 0-3 for GAD7`" in message
    assert "patients.sex: 1 row fails `one_of female, male, other, unknown`" in message
    assert "sessions.dose_mg: 1 row fails `exclusive_minimum 0`" in message
    assert "How to fix:" in message and "data_schema/README.md" in message


def test_message_never_echoes_values():
    tables = valid_tables()
    tables["assessments"].loc[0, "rater_id"] = "RATER ZQX"
    tables["patients"].loc[1, "arm"] = "ok"
    tables["patients"].loc[1, "age"] = "seventy-seven"
    with pytest.raises(DataValidationError) as info:
        validate(tables["patients"], "patients")
    assert "seventy-seven" not in str(info.value)
    with pytest.raises(DataValidationError) as info:
        validate(tables["assessments"], "assessments")
    assert "ZQX" not in str(info.value) and "ZQX" not in repr(info.value)
    assert info.value.failures["value"].tolist() == ["RATER ZQX"]


def test_message_for_a_missing_column_and_many_problems():
    failures = pd.DataFrame(
        {
            "table": ["patients"] + ["assessments"] * 60,
            "row": [pd.NA] + list(range(60)),
            "column": ["route"] + [f"c{k}" for k in range(60)],
            "check": ["required_column"] + ["type integer"] * 60,
            "value": [pd.NA] * 61,
        }
    )
    message = str(DataValidationError(failures))
    assert "patients.route: column fails `required_column`" in message
    assert "... and 21 more (see `.failures`)" in message


def test_data_validation_error_is_a_value_error_and_pickles():
    tables = valid_tables()
    tables["patients"].loc[0, "sex"] = "F"
    with pytest.raises(ValueError) as info:
        validate(tables["patients"], "patients")
    clone = pickle.loads(pickle.dumps(info.value))
    assert str(clone) == str(info.value)
    pd.testing.assert_frame_equal(clone.failures, info.value.failures)


def test_unknown_table_name_is_a_usage_error():
    with pytest.raises(ValueError, match="must be one of"):
        collect_failures({"visits": pd.DataFrame()})
    with pytest.raises(ValueError, match="must be one of"):
        validate(pd.DataFrame(), "visits")


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_write_then_load_round_trip(tmp_path, file_format):
    folder = write_cohort(valid_cohort(), tmp_path / "cohort", format=file_format)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.{file_format}" for t in TABLES)
    cohort = load_cohort(folder)
    expected = valid_frames()
    for table in TABLES:
        got = getattr(cohort, table)
        assert len(got) == len(expected[table])
        pd.testing.assert_frame_equal(got, validate(expected[table], table))
    again = load_cohort(write_cohort(cohort, tmp_path / "again", format=file_format))
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(again, table), getattr(cohort, table))


def test_absent_optional_tables_are_empty_frames_with_the_schema_columns(tmp_path):
    tables = valid_tables()
    write_csv({k: tables[k] for k in ("patients", "assessments")}, tmp_path)
    cohort = load_cohort(tmp_path)
    assert cohort.sessions.empty and cohort.adverse_events.empty
    assert list(cohort.sessions.columns) == list(fields("sessions"))
    assert cohort.sessions["session_number"].dtype == "Int64"


def test_missing_required_table_names_the_expected_files(tmp_path):
    tables = valid_tables()
    write_csv({"patients": tables["patients"]}, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"assessments\.csv or assessments\.parquet"):
        load_cohort(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cohort(tmp_path / "nowhere")


def test_a_table_in_both_formats_is_refused(tmp_path):
    write_cohort(valid_cohort(), tmp_path)
    valid_frames()["patients"].to_parquet(tmp_path / "patients.parquet")
    with pytest.raises(ValueError, match=r"patients\.csv and patients\.parquet"):
        load_cohort(tmp_path)


def test_write_cohort_replaces_the_folder_tables(tmp_path):
    write_cohort(valid_cohort(), tmp_path, format="parquet")
    (tmp_path / "notes.txt").write_text("kept")
    small = Cohort(valid_frames()["patients"], valid_frames()["assessments"])
    write_cohort(small, tmp_path, format="csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "assessments.csv",
        "notes.txt",
        "patients.csv",
    ]
    with pytest.raises(ValueError, match="must be one of"):
        write_cohort(small, tmp_path, format="xlsx")


def test_rows_are_zero_based_positions_in_the_csv_file(tmp_path):
    tables = valid_tables()
    tables["assessments"].loc[6, "instrument"] = "gad7"
    folder = write_csv(tables, tmp_path)
    with pytest.raises(DataValidationError) as info:
        load_cohort(folder)
    (row,) = info.value.failures["row"]
    lines = (folder / "assessments.csv").read_text().splitlines()
    assert lines[row + 1].split(",")[1] == "gad7"  # line 0 is the header


def test_csv_missing_values_and_surrounding_spaces(tmp_path):
    tables = valid_tables()
    tables["patients"].loc[0, "sex"] = " female "
    tables["patients"].loc[1, "age"] = "NA"
    cohort = load_cohort(write_csv(tables, tmp_path))
    assert cohort.patients.loc[0, "sex"] == "female"
    assert cohort.patients["age"].isna().tolist() == [False, True, False, True]


def test_synthetic_cohort_validates_cleanly(tmp_path):
    synthetic = pytest.importorskip("analysis.synthetic")
    cohort = synthetic.synthetic_cohort(200, seed=1)
    loaded = load_cohort(write_cohort(cohort, tmp_path))
    assert len(loaded.patients) == 200


# ----------------------------------------------------------------------------- property


def _violations(table, column, row, tables):
    """Values that break ``column``'s rule in ``row`` (from the schema and the instruments)."""
    f = fields(table)[column]
    c = f.get("constraints", {})
    out = []
    if c.get("required"):
        out.append(None)
    if table == "assessments" and (column.startswith("item_") or column == "total"):
        instrument = INSTRUMENTS[tables[table].loc[row, "instrument"]]
        if column == "total":
            out.append(str(instrument.total_max + 1))
        elif column in instrument.item_columns:
            out.append(str(instrument.item_max + 1))
        else:
            out.append("1")
    if f["type"] in ("integer", "number"):
        out.append("abc")
        if "minimum" in c:
            out.append(str(c["minimum"] - 1))
        if "maximum" in c:
            out.append(str(c["maximum"] + 1))
        if "exclusiveMinimum" in c:
            out.append(str(c["exclusiveMinimum"]))
    if f["type"] == "boolean":
        out.append("maybe")
    if "enum" in c:
        out.append("NOT_A_CODE")
    if "pattern" in c:
        out.append("Bad value!")
    return out


RULED = [
    (table, name)
    for table in TABLES
    for name, f in fields(table).items()
    if f.get("constraints") or f["type"] != "string"
]


@settings(max_examples=60)
@given(data=st.data())
def test_any_corrupted_cell_raises_data_validation_error_naming_its_column(data):
    tables = valid_tables()
    table, column = data.draw(st.sampled_from(RULED), label="column")
    row = data.draw(st.integers(0, len(tables[table]) - 1), label="row")
    value = data.draw(st.sampled_from(_violations(table, column, row, tables)), label="value")
    tables[table].loc[row, column] = value
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(DataValidationError) as info:
            load_cohort(write_csv(tables, folder))
    failures = info.value.failures
    named = failures[(failures["table"] == table) & (failures["column"] == column)]
    assert len(named) >= 1
    assert set(named["row"]) == {row}


# ----------------------------------------------------------------------------- scale


def _large_assessments(n_patients: int, rng) -> pd.DataFrame:
    days = np.array([0, 7, 14, 28, 56, 84, 1, 3, 10, 21])
    pid = np.repeat([f"P{k:06d}" for k in range(n_patients)], len(days) * 2)
    instrument = np.tile(np.repeat(["GAD7", "HAMA"], len(days)), n_patients)
    study_day = np.tile(np.concatenate([days, days]), n_patients)
    n = len(pid)
    df = pd.DataFrame({"patient_id": pid, "instrument": instrument, "study_day": study_day})
    gad = instrument == "GAD7"
    for k in range(1, MAX_ITEMS + 1):
        values = rng.integers(0, HAMA.item_max + 1, n).astype(float)
        values[gad] = np.minimum(values[gad], GAD7.item_max)
        if k > GAD7.n_items:
            values[gad] = np.nan
        df[f"item_{k}"] = pd.array(values, dtype="Float64").astype("Int64")
    df["total"] = df.filter(like="item_").sum(axis=1).astype("Int64")
    return df


@pytest.mark.slow
def test_validation_scales_to_large_frames():
    rng = np.random.default_rng(0)
    n_patients = 5_000  # 100,000 assessment rows; 100,000 patients is in the report
    assessments = _large_assessments(n_patients, rng)
    patients = pd.DataFrame(
        {"patient_id": assessments["patient_id"].unique(), "route": "iv", "age": 40}
    )
    text = as_text(assessments.head(1000))
    assert collect_failures({"patients": patients, "assessments": text}).empty
    assert collect_failures({"patients": patients, "assessments": assessments}).empty


def test_the_readme_examples_are_valid(tmp_path):
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    for table in TABLES:
        section = readme.split(f"### {table}", 1)[1]
        example = section.split("Example (CSV", 1)[1].split("```", 2)[1].strip()
        (tmp_path / f"{table}.csv").write_text(example + "\n", encoding="utf-8")
    cohort = load_cohort(tmp_path)
    assert [len(getattr(cohort, t)) for t in TABLES] == [1, 2, 1, 1]
