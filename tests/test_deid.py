"""De-identification guard (docs/references.md "De-identification and disclosure": HIPAA Safe
Harbor, 45 CFR 164.514(b)(2))."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from _cohort_fixtures import valid_cohort, valid_frames, valid_tables
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.deid import (
    IDENTIFIER_CHECKS,
    DeidentificationError,
    check_deidentified,
    is_identifier_column,
    scan_identifiers,
)
from analysis.schema import TABLES, DataValidationError, load_cohort, read_schema, validate


def write_csv(tables, folder):
    for name, df in tables.items():
        df.to_csv(Path(folder) / f"{name}.csv", index=False)
    return folder


def assert_never_shown(value: str, exc: Exception) -> None:
    assert value not in str(exc)
    assert value not in repr(exc)
    assert value not in exc.args[0]
    failures = exc.failures.astype(str)
    assert not failures.apply(lambda c: c.str.contains(value, regex=False)).any().any()
    assert value not in exc.failures.to_string()


# ----------------------------------------------------------------------------- column names


@pytest.mark.parametrize(
    "column",
    ["name", "patient_name", "PatientName", "first_name", "LastName", "surname", "initials",
     "email", "e-mail", "eMail", "email_address", "phone", "phone_number", "Telephone",
     "mobile", "fax", "address", "street", "city", "zip", "ZIPCode", "zip_code", "postcode",
     "postal_code", "dob", "DOB", "date_of_birth", "birth_date", "BirthDate", "visit_date",
     "mrn", "MRN", "medical_record_number", "ssn", "social_security_number",
     "insurance_id", "account_number", "licence_number", "license_no", "ip_address",
     "IPAddress", "url", "website", "notes", "clinician_comments", "site_name"],
)  # fmt: skip
def test_identifier_column_names_are_refused(column):
    assert is_identifier_column(column)
    with pytest.raises(DeidentificationError) as info:
        check_deidentified({"patients": pd.DataFrame({"patient_id": ["P1"], column: [1]})})
    assert info.value.failures[["column", "check", "value"]].values.tolist() == [
        [column, "identifier_name", ""]
    ]
    assert pd.isna(info.value.failures["row"].iloc[0])


def test_schema_and_covariate_columns_are_not_mistaken_for_identifiers():
    columns = {f["name"] for t in TABLES for f in read_schema(t)["fields"]}
    columns |= {"baseline_phq9", "drug_name", "scale_name", "visit", "age_group", "dosage",
                "stage", "weight_kg", "bmi", "state", "country", "language",
                "session_number", "study_arm", "mailed_questionnaire"}  # fmt: skip
    flagged = sorted(c for c in columns if is_identifier_column(c))
    assert flagged == []


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "check"),
    [("jd.1970@example.org", "email_value"), ("write to a_b+c@clinic.co.uk", "email_value"),
     ("+1 555 010 0199", "phone_value"), ("(555) 010-0199", "phone_value"),
     ("555-010-0199", "phone_value"), ("555.010.0199", "phone_value"),
     ("+44 20 7946 0958", "phone_value"), ("+15550100199", "phone_value"),
     ("123-45-6789", "ssn_value"), ("2024-03-05", "date_value"), ("03/05/2024", "date_value"),
     ("5.3.2024", "date_value"), ("5 March 2024", "date_value"), ("March 5, 2024", "date_value"),
     ("05-Mar-2024", "date_value"), ("March 2024", "date_value"),
     ("2024-03-05T10:30:00", "date_value"), ("seen 5/3/24 by the team", "date_value"),
     ("https://example.org/p/1", "url_value"), ("www.example.org", "url_value"),
     ("192.168.10.20", "ip_address_value")],
)  # fmt: skip
def test_identifier_shaped_values_are_flagged_in_any_text_column(value, check):
    tables = valid_frames()
    tables["assessments"]["extra_text"] = "ok"
    tables["assessments"].loc[3, "extra_text"] = value
    summary = scan_identifiers(tables)
    hits = summary[summary["n_flagged"] > 0]
    assert hits[["table", "column", "check", "n_flagged"]].values.tolist() == [
        ["assessments", "extra_text", check, 1]
    ]
    with pytest.raises(DeidentificationError) as info:
        check_deidentified(tables)
    assert info.value.failures[["row", "column", "check", "value"]].values.tolist() == [
        [3, "extra_text", check, ""]
    ]
    assert_never_shown(value, info.value)


@pytest.mark.parametrize(
    "value",
    ["P000123", "SITE-04", "S2", "R01", "12.5", "2024", "100000", "5550100199", "123456789",
     "20240305", "+100", "-3", "1-2", "10-20", "2021-22", "0.123456789", "1e-05", "week1",
     "nausea", "elevated_blood_pressure", "GAD7", "ketamine"],
)  # fmt: skip
def test_pseudonymous_codes_and_numbers_are_not_flagged(value):
    frame = pd.DataFrame({"code": [value], "number": [value]})
    assert scan_identifiers({"patients": frame})["n_flagged"].sum() == 0


def test_ages_over_90_are_refused_and_90_passes():
    ok = pd.DataFrame({"patient_id": ["P1", "P2"], "age": [90, 45]})
    assert check_deidentified({"patients": ok})["n_flagged"].sum() == 0
    old = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "age": ["91", "45", "102"]})
    with pytest.raises(DeidentificationError) as info:
        check_deidentified({"patients": old})
    assert info.value.failures[["row", "column", "check", "value"]].values.tolist() == [
        [0, "age", "age_over_90", ""],
        [2, "age", "age_over_90", ""],
    ]
    assert "record ages over 89 as 90" in str(info.value)


def test_scan_reports_one_row_per_check_performed_even_when_nothing_is_flagged():
    summary = scan_identifiers(valid_tables())
    assert list(summary.columns) == ["table", "column", "check", "n_flagged"]
    assert summary["n_flagged"].sum() == 0
    assert set(summary["check"]) == set(IDENTIFIER_CHECKS)
    patients = summary[summary["table"] == "patients"]
    assert set(patients.loc[patients["column"] == "patient_id", "check"]) == (
        set(IDENTIFIER_CHECKS) - {"age_over_90"}
    )
    # numeric columns get the name check only (plus the age check for `age`)
    typed = scan_identifiers({"patients": valid_frames()["patients"]})
    assert typed.loc[typed["column"] == "age", "check"].tolist() == [
        "identifier_name",
        "temporal_dtype",
        "age_over_90",
    ]


def test_a_deidentified_cohort_passes_the_guard(tmp_path):
    assert check_deidentified(valid_cohort())["n_flagged"].sum() == 0
    assert check_deidentified(valid_tables())["n_flagged"].sum() == 0
    load_cohort(write_csv(valid_tables(), tmp_path))


def test_deidentification_error_is_a_data_validation_error_and_load_cohort_runs_the_guard(
    tmp_path,
):
    tables = valid_tables()
    tables["patients"]["patient_name"] = "Jane Roe"
    tables["patients"].loc[1, "sex"] = "F"  # an ordinary failure is reported too
    with pytest.raises(DataValidationError) as info:
        load_cohort(write_csv(tables, tmp_path))
    assert isinstance(info.value, DeidentificationError)
    assert isinstance(info.value, ValueError)
    checks = info.value.failures[["column", "check"]].drop_duplicates().values.tolist()
    assert checks == [
        ["patient_name", "identifier_name"],
        ["patient_name", "person_name_value"],
        ["sex", "one_of female, male, other, unknown"],
    ]
    message = str(info.value)
    assert message.startswith("Direct identifiers found")
    assert "patients.patient_name: column fails `identifier_name`" in message
    assert_never_shown("Jane Roe", info.value)


def test_failures_in_a_flagged_column_have_their_value_blanked():
    tables = valid_tables()
    email = "jo@example.org"
    tables["assessments"].loc[[0, 1], "patient_id"] = email  # also breaks pattern and keys
    tables["assessments"].loc[2, "total"] = "555-010-0199"  # also a type failure
    with pytest.raises(DeidentificationError) as info:
        validate(tables["assessments"], "assessments")
    failures = info.value.failures
    assert set(failures["check"]) >= {"email_value", "pattern [A-Za-z0-9_-]{1,64}", "type integer"}
    assert (failures["value"].fillna("") == "").all()
    assert_never_shown(email, info.value)
    assert_never_shown("555-010-0199", info.value)


def test_check_deidentified_rejects_other_arguments():
    with pytest.raises(TypeError, match="Cohort or a mapping"):
        check_deidentified([pd.DataFrame()])


# ----------------------------------------------------------------------------- property

_digits = st.text("0123456789", min_size=1, max_size=1)


def _group(n):
    return st.text("0123456789", min_size=n, max_size=n)


phones = st.one_of(
    st.builds(lambda cc, a, b, c: f"+{cc} {a} {b} {c}", _group(1), _group(3), _group(3), _group(4)),
    st.builds(lambda a, b, c: f"({a}) {b}-{c}", _group(3), _group(3), _group(4)),
    st.builds(lambda a, b, c: f"{a}-{b}-{c}", _group(3), _group(3), _group(4)),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", _group(3), _group(3), _group(4)),
    st.builds(lambda cc, a, b, c: f"+{cc}{a}{b}{c}", _group(2), _group(3), _group(3), _group(4)),
)
identifiers = st.one_of(st.emails(), phones)
TEXT_TARGETS = [
    ("patients", "patient_id"),
    ("patients", "site_id"),
    ("patients", "sex"),
    ("patients", "arm"),
    ("patients", "baseline_phq9"),
    ("assessments", "patient_id"),
    ("assessments", "rater_id"),
    ("assessments", "total"),
    ("sessions", "phase"),
    ("adverse_events", "term"),
    ("adverse_events", "free_field"),
]


@settings(max_examples=80)
@given(value=identifiers, target=st.sampled_from(TEXT_TARGETS), data=st.data())
def test_an_email_or_phone_anywhere_is_refused_and_never_shown(value, target, data):
    tables = valid_tables()
    table, column = target
    row = data.draw(st.integers(0, len(tables[table]) - 1), label="row")
    if column not in tables[table].columns:
        tables[table][column] = "x"
    tables[table][column] = tables[table][column].astype(object)
    tables[table].loc[row, column] = value
    with pytest.raises(DeidentificationError) as info:
        check_deidentified(tables)
    assert_never_shown(value, info.value)
    with pytest.raises(DeidentificationError) as info:
        validate(tables[table], table)
    assert_never_shown(value, info.value)
    flagged = info.value.failures
    assert ((flagged["column"] == column) & (flagged["row"] == row)).any()


@settings(max_examples=15)
@given(value=identifiers)
def test_load_cohort_never_shows_an_identifier(value):
    tables = valid_tables()
    tables["assessments"]["free_field"] = "x"
    tables["assessments"].loc[5, "free_field"] = value
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(DeidentificationError) as info:
            load_cohort(write_csv(tables, folder))
    assert_never_shown(value, info.value)


def _is_temporal_by_series(series: pd.Series) -> bool:
    """The guard's former test of an object or categorical column, through pandas Series."""
    import datetime

    import numpy as np

    values = series.dropna()
    if isinstance(series.dtype, pd.CategoricalDtype):
        values = pd.Series(series.dtype.categories)
    sample = values.iloc[:1000]
    kinds = (datetime.date, datetime.time, pd.Timestamp, pd.Period, np.datetime64)
    return bool(len(sample)) and any(isinstance(v, kinds) for v in sample)


_cell_values = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.text(max_size=3),
    st.integers(0, 9),
    st.dates(),
    st.times(),
    st.datetimes().map(pd.Timestamp),
)


@given(
    values=st.lists(_cell_values, max_size=6),
    filler=st.integers(0, 1200),
    categorical=st.booleans(),
)
def test_temporal_columns_are_found_as_through_pandas_series(values, filler, categorical):
    """The guard reads an object column's first 1000 present values from its array: the
    same answer as the Series it used to build (a date after 1000 other values is not
    looked at, by either)."""
    from analysis.deid import _is_temporal

    series = pd.Series(["x"] * filler + values, dtype=object)
    if categorical:
        series = series.astype("category")
    assert _is_temporal(series) == _is_temporal_by_series(series)
