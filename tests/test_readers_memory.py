"""The memory-lean pandas path gives the reports of the plain one.

Large CSV files are read into categorical columns, Parquet text too, the checks of a
column run on its distinct values and keep only failing rows, and duplicated keys are
found from combined codes. Each of these is held here to the result of the simple form it
replaces: object columns, pandera's own lazy validation, ``DataFrame.duplicated``,
``re.split`` of the whole text.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from _cohort_fixtures import valid_tables
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import readers
from analysis._checks import _duplicated_complete, _table_validator
from analysis.schema import TABLES, validate_cohort

# Cells a clinic export holds beside valid values: wrong types, out of range, codes in
# another case, missing-value markers, padding, identifiers, numbers as text.
_JUNK = [
    "", " 3 ", "x", "-1", "999", "2.5", "NA", ".", "n/a", "True", "yes", "1e3", "  ",
    "someone@example.com", "555-123-4567", "2024-01-03", "P 1", "GAD7 ", "gad7", "0",
    "4", "5", "57", "inf", "nan", "1.0", "mild ", "Mild", "IV", "S-1", "Ketamine",
    "abcdefghij" * 8, "+2",
]  # fmt: skip


def _messy_tables(seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    tables = {t: df.astype(object).copy() for t, df in valid_tables().items()}
    for table, df in tables.items():
        for _ in range(12):
            row, col = int(rng.integers(len(df))), int(rng.integers(df.shape[1]))
            df.iat[row, col] = _JUNK[int(rng.integers(len(_JUNK)))]
        df["notes"] = [f"free text {k}" if k % 3 else None for k in range(len(df))]
        df["extra_count"] = np.arange(len(df))
        tables[table] = pd.concat([df, df.iloc[[0]]], ignore_index=True)  # a repeated row
    return tables


def _assert_same_report(left, right) -> None:
    pd.testing.assert_frame_equal(left.errors, right.errors)
    pd.testing.assert_frame_equal(left.findings, right.findings)
    pd.testing.assert_frame_equal(left.failures, right.failures)
    assert left.tables.keys() == right.tables.keys()
    for table in left.tables:
        pd.testing.assert_frame_equal(left.tables[table], right.tables[table])
    assert left.describe() == right.describe()


@pytest.mark.parametrize("seed", range(4))
def test_a_csv_read_as_categorical_columns_gives_the_report_of_object_columns(
    tmp_path, monkeypatch, seed
):
    tables = _messy_tables(seed)
    folder = tmp_path / "clinic"
    folder.mkdir()
    for table, df in tables.items():
        text = df.to_csv(index=False, sep=";", lineterminator="\r\n")
        (folder / f"{table}.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    small = validate_cohort(folder)  # these files are small: object columns
    assert len(small.errors) > 0 and len(small.findings) > 0
    monkeypatch.setattr(readers, "_CATEGORICAL_BYTES", 0)  # every file "large"
    read = readers.read_table_file(
        folder / "assessments.csv", "assessments", _table_validator("assessments").fields
    )
    assert isinstance(read.frame["patient_id"].dtype, pd.CategoricalDtype)
    assert read.frame["notes"].dtype == object  # an extra column stays as read
    _assert_same_report(validate_cohort(folder), small)


@pytest.mark.parametrize("seed", range(4))
def test_a_parquet_folder_gives_the_report_of_the_same_tables_in_memory(tmp_path, seed):
    """Parquet text is read as categorical columns; the report is the frames' report."""
    tables = _messy_tables(seed)
    folder = tmp_path / "clinic"
    folder.mkdir()
    texts = {}
    for table, df in tables.items():
        text = df.drop(columns="extra_count").astype(str).where(df.notna(), None)
        text["extra_count"] = df["extra_count"].astype("int64")
        text.to_parquet(folder / f"{table}.parquet", index=False)
        texts[table] = text
    from_files = validate_cohort(folder)
    assert len(from_files.errors) > 0
    assert from_files.tables["patients"]["notes"].dtype == object
    # the same files read as object columns, cleaned as the reader cleans text
    as_objects = {}
    for table in texts:
        frame = pd.read_parquet(folder / f"{table}.parquet")
        text = [c for c in frame.columns if frame[c].dtype == object]
        frame[text] = readers._missing_to_na(frame[text], set(readers.MISSING_VALUES))
        as_objects[table] = frame
    _assert_same_report(from_files, validate_cohort(as_objects))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # pandera's own concat of its cases
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("table", TABLES)
def test_column_checks_fail_the_rows_pandera_fails(seed, table):
    """check_columns applies the pandera checks itself: the same failing rows and labels."""
    from pandera.errors import SchemaErrors

    validator = _table_validator(table)
    raw = _messy_tables(seed)[table]
    raw = raw[[c for c in raw.columns if c in validator.fields]]
    typed, _, bad = validator.coerce(raw)
    ours = validator.check_columns(raw, typed, {c: m.copy() for c, m in bad.items()})
    got = {(f["column"].iat[0], f["check"].iat[0], int(r)) for f in ours for r in f["row"]}
    try:
        validator.pandera.validate(typed, lazy=True)
        cases = pd.DataFrame(columns=["column", "check", "check_number", "index"])
    except SchemaErrors as exc:
        cases = exc.failure_cases
    want = set()
    for column, check, number, row in cases[
        ["column", "check", "check_number", "index"]
    ].itertuples(index=False):
        if check == "not_nullable":
            if not bad[column][int(row)]:  # a cell that failed its type is reported once
                want.add((column, "not_null", int(row)))
        else:
            want.add((column, validator.labels[(column, int(number))], int(row)))
    assert got == want
    assert len(want) > 0 or table == "adverse_events"


_keys = st.lists(
    st.tuples(st.sampled_from(["P1", "P2", None]), st.sampled_from([0, 1, None])), max_size=40
)


@settings(max_examples=100, deadline=None)
@given(_keys, st.booleans())
def test_duplicated_keys_from_codes_are_those_of_duplicated(rows, two_columns):
    frame = pd.DataFrame(
        {
            "patient_id": pd.array([r[0] for r in rows], dtype="string"),
            "study_day": pd.array([r[1] for r in rows], dtype="Int64"),
        }
    )
    key = ["patient_id", "study_day"] if two_columns else ["patient_id"]
    complete = frame[key].notna().all(axis=1).to_numpy()
    want = frame[key].duplicated(keep=False).to_numpy() & complete
    np.testing.assert_array_equal(_duplicated_complete(frame, key), want)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", ",", " ", "\n", "\r", "\r\n", "\n\n"]), max_size=60).map(
        "".join
    ),
    st.integers(1, 10),
)
def test_a_text_split_a_piece_at_a_time_has_the_lines_of_the_whole(text, size):
    pieces = readers._line_chunks(text, size)
    lines = [line for piece in pieces for line in re.split("\r\n|\r|\n", piece)]
    assert lines == re.split("\r\n|\r|\n", text)
