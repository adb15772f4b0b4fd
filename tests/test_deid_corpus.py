"""The de-identification guard on its corpus and on the cases of issue 9.

HIPAA Safe Harbor (45 CFR 164.514(b)(2)), docs/references.md "De-identification and
disclosure": names, geography below state, all date elements but the year, ages over 89,
phone, e-mail, record numbers, URLs, IP addresses, any other unique identifying number.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cohort_fixtures import valid_tables

from analysis.deid import (
    DeidentificationError,
    check_deidentified,
    is_identifier_column,
    redact_failures,
    scan_identifiers,
)
from analysis.schema import DataValidationError, load_cohort, validate

ROOT = Path(__file__).resolve().parent.parent


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "deid_corpus", ROOT / "benchmarks" / "deid_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_has_at_least_100_identifiers_and_100_look_alikes():
    corpus = _benchmark().load_corpus()
    counts = corpus["expected"].value_counts()
    assert counts["identifier"] >= 100 and counts["ordinary"] >= 100
    assert set(corpus["kind"]) == {"column_name", "value"}
    assert not corpus.duplicated(["kind", "text"]).any()


def test_corpus_false_negatives_and_false_positives_are_zero(capsys):
    bench = _benchmark()
    scored = bench.score(bench.load_corpus())
    wrong = scored[scored["outcome"].isin(["false_negative", "false_positive"])]
    assert wrong.empty, wrong[["outcome", "kind", "text"]].to_string()
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "false negatives: 0" in out and "false positives: 0" in out


# ----------------------------------------------------------------------------- temporal


@pytest.mark.parametrize(
    "values",
    [
        pd.to_datetime(["2024-03-05", "2024-04-01"]),
        pd.to_datetime(["2024-03-05", "2024-04-01"]).tz_localize("America/New_York"),
        pd.period_range("2024-03", periods=2, freq="M"),
        pd.Series([pd.Timestamp("2024-03-05").date(), None], dtype=object),
        pd.Series(pd.to_datetime(["2024-03-05", "2024-04-01"])).astype("timestamp[ns][pyarrow]"),
    ],
    ids=["naive", "tz_aware", "period", "date_objects", "arrow_timestamp"],
)
@pytest.mark.parametrize("name", ["visit", "enrolled"])
def test_temporal_dtypes_are_refused_whatever_the_name(values, name):
    frame = pd.DataFrame({"patient_id": ["P1", "P2"], name: list(values)})
    frame[name] = pd.Series(values).reset_index(drop=True)
    with pytest.raises(DeidentificationError) as info:
        check_deidentified({"patients": frame})
    assert info.value.failures[["column", "check", "value"]].values.tolist() == [
        [name, "temporal_dtype", ""]
    ]


@pytest.mark.parametrize("tz", [None, "UTC"])
def test_load_cohort_refuses_a_parquet_datetime_column(tmp_path, tz):
    tables = valid_tables()
    patients = tables["patients"].copy()
    stamps = pd.date_range("2024-01-01", periods=len(patients), freq="D", tz=tz)
    patients["enrolled"] = stamps
    for name, df in tables.items():
        (patients if name == "patients" else df).to_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(DeidentificationError) as info:
        load_cohort(tmp_path)
    failures = info.value.failures
    assert ("enrolled", "temporal_dtype") in set(
        zip(failures["column"], failures["check"], strict=True)
    )
    assert "2024-01" not in str(info.value)


# ----------------------------------------------------------------------------- issue cases


def _load_with(tmp_path, table, column, value, row=0):
    tables = valid_tables()
    tables[table][column] = tables[table][column].astype(object)
    tables[table].loc[row, column] = value
    for name, df in tables.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    return load_cohort(tmp_path)


@pytest.mark.parametrize(
    ("table", "column", "value", "secret"),
    [
        ("patients", "arm", "Jane Q Public MRN 00123456", ["jane", "public", "00123456"]),
        ("adverse_events", "term", "fall_at_home_jane_public", ["jane", "public"]),
        ("patients", "site_id", "Springfield General", ["springfield"]),
        ("assessments", "rater_id", "JaneDoe", ["janedoe"]),
    ],
)
def test_identifying_labels_are_refused_and_never_shown(tmp_path, table, column, value, secret):
    with pytest.raises(DataValidationError) as info:
        _load_with(tmp_path, table, column, value)
    text = (str(info.value) + repr(info.value) + info.value.failures.to_string()).lower()
    for part in secret:
        assert part not in text, part
    assert (info.value.failures["value"].fillna("") == "").all()


def test_codes_that_look_like_dates_pass(tmp_path):
    cohort = _load_with(tmp_path, "assessments", "rater_id", "R-03-05-24", row=0)
    assert cohort.assessments["rater_id"].iloc[0] == "R-03-05-24"


def test_ordinary_columns_of_the_issue_pass():
    frame = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "age_months": [240, 300],  # 20 and 25 years
            "name_of_scale": ["GAD-7 v2.1.0.3", "HAM-A"],
            "bp_series": ["120 135 140", "100 150 200"],
            "schedule": ["15-10-06", "1-2"],
        }
    )
    assert scan_identifiers({"patients": frame})["n_flagged"].sum() == 0


def test_a_header_that_is_an_identifier_is_refused_and_not_echoed():
    for header in ["jane.doe@example.org", "555-010-0199", "2024-03-05", "Jane Doe"]:
        frame = pd.DataFrame({"patient_id": ["P1"], header: ["x"]})
        assert is_identifier_column(header)
        with pytest.raises(DeidentificationError) as info:
            check_deidentified({"patients": frame})
        assert header not in str(info.value) and header not in info.value.failures.to_string()
        assert info.value.failures["column"].tolist() == ["<column 2>"]


def test_failures_never_carry_a_value_from_a_free_text_column():
    tables = valid_tables()
    tables["patients"]["arm"] = tables["patients"]["arm"].astype(object)
    tables["patients"].loc[0, "arm"] = "Ketamine Arm B"  # a pattern failure
    tables["patients"]["extra"] = "x y z"
    tables["patients"].loc[1, "sex"] = "Jane Smith"  # a coded column holding a name
    tables["patients"].loc[2, "age"] = "thirty"  # a harmless token may be shown
    with pytest.raises(DataValidationError) as info:
        validate(tables["patients"], "patients")
    failures = info.value.failures.fillna({"value": ""})
    values = failures.groupby("column")["value"].agg("".join)
    assert values["arm"] == "" and values["sex"] == "" and values["age"] == "thirty"


def test_redact_failures_keeps_short_tokens_of_coded_columns_only():
    f = pd.DataFrame(
        {
            "table": ["patients"] * 4,
            "row": [0, 1, 2, 3],
            "column": ["route", "route", "patient_id", "unknown_extra"],
            "check": ["one_of"] * 4,
            "value": ["IV", "Robert", "P1", "abc"],
        }
    )
    assert redact_failures(f)["value"].tolist() == ["IV", "", "", ""]


def test_scan_counts_every_new_value_check():
    frame = pd.DataFrame(
        {
            "text": [
                "MRN 00123456",
                "90210-1234",
                "12 Main Street, Springfield",
                "93 years old",
                "John Smith",
                "2024-03",
                "010-0199",
            ]
        }
    )
    hits = scan_identifiers({"patients": frame}).query("n_flagged > 0")
    assert set(hits["check"]) >= {
        "record_number_value",
        "zip_code_value",
        "street_address_value",
        "age_over_90_value",
        "person_name_value",
        "date_value",
        "phone_value",
    }
    assert np.all(hits["column"] == "text")
