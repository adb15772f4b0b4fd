"""Validation and the de-identification guard inside DuckDB and Polars (Spark: `make test-spark`).

The same Parquet folders, valid and invalid, are validated by the pandas path and by each
engine (``load_cohort(..., engine=...)``, ``validate_cohort(..., engine=...)``); the
engine's report, aggregated per table, column, check and severity, must give the pandas
path's counts exactly. The engine never lists rows or values, so the comparison is on the
counts the pandas rows add up to.
"""

from __future__ import annotations

import narwhals as nw
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from analysis import derive_endpoints, rate_table, synthetic_cohort
from analysis.deid import DeidentificationError
from analysis.schema import DataValidationError, load_cohort, validate_cohort

ENGINES = ["duckdb", "polars"]


def counts(report) -> dict:
    """``{(table, column, check, severity): rows}`` of a report (errors and findings)."""
    frames = pd.concat([report.errors, report.findings], ignore_index=True)
    if frames.empty:
        return {}
    grouped = frames.groupby(["table", "column", "check", "severity"])["count"].sum()
    return {key: int(n) for key, n in grouped.items()}


@pytest.fixture(scope="module")
def base():
    return synthetic_cohort(60, seed=5)


def _tables(base):
    return {
        "patients": base.patients.copy(),
        "assessments": base.assessments.copy(),
        "sessions": base.sessions.copy(),
        "adverse_events": base.adverse_events.copy(),
    }


def _write(tables: dict, folder) -> None:
    for name, df in tables.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)


def _set(df, rows, column, value):
    df.loc[df.index[rows], column] = value


def _values_errors(t):
    p, a, s, ae = t["patients"], t["assessments"], t["sessions"], t["adverse_events"]
    _set(p, [0, 3], "age", 17)  # in_range 18-90
    _set(p, [1], "route", "IV")  # one_of
    _set(p, [2], "sex", "NA")  # a missing token: missing, not an error
    p.loc[p.index[4], "patient_id"] = p["patient_id"].iloc[5]  # duplicate key
    gad = np.flatnonzero((a["instrument"] == "GAD7").to_numpy())
    hama = np.flatnonzero((a["instrument"] == "HAMA").to_numpy())
    _set(a, gad[:2], "item_3", 4)  # in_range 0-3 for GAD7
    _set(a, gad[2:5], "item_9", 1)  # empty for GAD7
    _set(a, gad[5:6], "total", 25)  # in_range 0-21 for GAD7
    _set(a, gad[6:8], "total", 0)  # total_matches_items (complete rows)
    for column in [f"item_{k}" for k in range(1, 8)] + ["total"]:  # unscorable (finding)
        _set(a, gad[8:11], column, pd.NA)
    _set(a, hama[:1], "item_14", 9)  # in_range 0-4
    _set(a, gad[11:12], "patient_id", "P999999")  # foreign_key
    _set(a, gad[12:13], "patient_id", "bad id!")  # pattern (then not a foreign key)
    _set(a, gad[13:16], "study_day", 500)  # outside_schedule (finding)
    first = np.flatnonzero((s["session_number"] == 1).to_numpy())
    _set(s, first[:2], "study_day", 3)  # session_1_on_day_0
    _set(s, [4], "dose_mg", 0.0)  # exclusive_minimum 0
    t["adverse_events"] = pd.concat([ae, ae.iloc[[0, 1]]], ignore_index=True)  # duplicate_row
    return t


def _types_and_columns(t):
    p, a = t["patients"], t["assessments"]
    age = (
        p["age"]
        .astype(object)
        .where(p["age"].notna(), None)
        .map(lambda v: None if v is None else str(v))
    )
    age.iloc[0], age.iloc[1], age.iloc[2] = "thirty", " 41 ", "n/a"
    p["age"] = age  # a text column in an integer field: type integer, spaces, missing token
    p["enrollment_year"] = p["enrollment_year"].astype("Float64")
    p.loc[p.index[3], "enrollment_year"] = 2010.5  # type integer (not whole)
    p["comorbid_depression"] = p["comorbid_depression"].map(
        {True: "Yes", False: "no"}, na_action="ignore"
    )
    p.loc[p.index[4], "comorbid_depression"] = "maybe"  # type boolean
    t["patients"] = p.rename(columns={"site_id": "Site_ID "}).drop(columns="route")
    t["assessments"] = a.assign(extra_note_code="x1")  # unknown column (finding)
    return t


def _identifiers(t):
    p, a = t["patients"], t["assessments"]
    n = len(p)
    p["email"] = "someone@example.org"  # identifier_name + email_value
    p["visit_when"] = pd.Timestamp("2024-01-01")  # temporal_dtype
    p["enrolled_on"] = pd.to_datetime(["2024-03-05"] * n).date  # a date column
    p["code"] = ["+1 555 010 0199" if k % 3 == 0 else f"C{k}" for k in range(n)]  # phone_value
    p["contact_person"] = "Jennifer"  # identifier_name (contact) + person_name_value
    p["age"] = p["age"].astype("Float64")
    p.loc[p.index[:2], "age"] = 95  # age_over_90 and in_range
    a["memo_text"] = "see 12 Oak Street"  # identifier_name (memo) + street_address_value
    return t


def _padded(t):
    """Text keys with whitespace at an end and missing tokens: the engine converts them as
    pandas does (so the simpler expressions after the aggregate pass must not apply)."""
    p, a, s = t["patients"], t["assessments"], t["sessions"]
    p.loc[p.index[4], "patient_id"] = " " + p["patient_id"].iloc[5]  # repeats row 5 once stripped
    a.loc[a.index[:5], "patient_id"] = a["patient_id"].iloc[:5] + "  "  # still known
    a.loc[a.index[5:8], "patient_id"] = "NA"  # missing: not_null, and not a foreign key
    s.loc[s.index[:2], "patient_id"] = "\t" + s["patient_id"].iloc[:2]
    s.loc[s.index[2], "patient_id"] = "P999998 "  # unknown once stripped
    return t


def _tokens(t):
    """Missing tokens in text keys with no whitespace at an end anywhere in the table: the
    aggregate pass counts them on the stored text (nothing to strip), so the queries after
    it still treat them as missing (not_null, and not an unknown patient or a key)."""
    s, ae = t["sessions"], t["adverse_events"]
    s.loc[s.index[:2], "patient_id"] = "NA"
    ae.loc[ae.index[:3], "patient_id"] = "N/A"
    return t


def _big_integers(t):
    """Integer columns holding values pandas cannot type (|value| >= 2**53): DuckDB reads
    each integer column's bounds before the pass, and only where they are within 2**53
    does the pass drop the type test (so here it must keep it)."""
    p, a = t["patients"], t["assessments"]
    a["study_day"] = a["study_day"].astype("int64")
    a.loc[a.index[:2], "study_day"] = 2**60  # type integer, not in_range
    p["prior_treatment_count"] = p["prior_treatment_count"].astype("Int64")
    p.loc[p.index[0], "prior_treatment_count"] = -(2**55)
    return t


CASES = {
    "valid": lambda t: t,
    "values": _values_errors,
    "types_columns": _types_and_columns,
    "identifiers": _identifiers,
    "padded": _padded,
    "tokens": _tokens,
    "big_integers": _big_integers,
}


@pytest.fixture(scope="module", params=list(CASES))
def folder(request, base, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    _write(CASES[request.param](_tables(base)), path)
    return request.param, path


@pytest.fixture(scope="module")
def pandas_results():
    """The pandas path's results per folder, computed once for both engines:
    ``pandas_results(path, "report")`` is ``validate_cohort(path)``,
    ``pandas_results(path, "error")`` the DataValidationError ``load_cohort(path)`` raised."""
    cache: dict = {}

    def results(path, kind):
        if (path, kind) not in cache:
            if kind == "report":
                cache[path, kind] = validate_cohort(path)
            else:
                with pytest.raises(DataValidationError) as raised:
                    load_cohort(path)
                cache[path, kind] = raised.value
        return cache[path, kind]

    return results


@pytest.fixture(scope="module")
def engine_results():
    """Each engine's ``validate_cohort`` of a folder, run once for the tests that read it
    (its counts, its queries): ``engine_results(path, engine)`` is ``(report, queries)``,
    with one entry in ``queries`` per query the engine ran (:func:`_queries`)."""
    cache: dict = {}

    def results(path, engine):
        if (path, engine) not in cache:
            with pytest.MonkeyPatch.context() as patch:
                ran = _queries(patch, engine)
                report = validate_cohort(path, engine=engine)
            cache[path, engine] = report, len(ran)
        return cache[path, engine]

    return results


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_report_counts_equal_pandas(folder, engine, pandas_results, engine_results):
    case, path = folder
    expected = pandas_results(path, "report")
    got, _ = engine_results(path, engine)
    assert counts(got) == counts(expected)
    assert got.ok == expected.ok and got.deidentification == expected.deidentification
    assert got.collected == expected.collected
    if case != "valid":
        assert not got.ok
    assert got.errors["value"].isna().all()  # values are never shown


@pytest.mark.parametrize("engine", ENGINES)
def test_load_raises_like_pandas_without_values(folder, engine, pandas_results):
    case, path = folder
    if case == "valid":
        return
    pandas_error = pandas_results(path, "error")
    with pytest.raises(DataValidationError) as engine_error:
        load_cohort(path, engine=engine)
    assert type(engine_error.value) is type(pandas_error)
    message = str(engine_error.value)
    assert message.splitlines()[0] == str(pandas_error).splitlines()[0]
    for secret in ("someone@example.org", "555 010", "Jennifer", "Oak Street", "P999999"):
        assert secret not in message and secret not in repr(engine_error.value.report.errors)


@pytest.mark.parametrize("engine", ENGINES)
def test_guard_refuses_identifiers(engine, base, tmp_path):
    tables = _tables(base)
    tables["assessments"]["comment"] = "fine"
    _write(tables, tmp_path)
    with pytest.raises(DeidentificationError) as error:
        load_cohort(tmp_path, engine=engine)
    assert "assessments.comment: column fails `identifier_name`" in str(error.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_strict_counts_findings_as_errors(engine, base, tmp_path):
    _write(_tables(base), tmp_path)
    cohort = load_cohort(tmp_path, engine=engine)
    assert len(cohort.findings) > 0
    with pytest.raises(DataValidationError) as error:
        load_cohort(tmp_path, engine=engine, strict=True)
    assert len(error.value.report.errors) == len(cohort.findings)


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    """A cohort written in chunks: one folder of Parquet files per table."""
    path = tmp_path_factory.mktemp("chunked")
    cohort = synthetic_cohort(150, seed=9)
    for name in ("patients", "assessments", "sessions", "adverse_events"):
        df = getattr(cohort, name)
        (path / name).mkdir()
        for k, part in enumerate(np.array_split(np.arange(len(df)), 3)):
            df.iloc[part].to_parquet(path / name / f"part-{k}.parquet", index=False)
    return cohort, path


@pytest.mark.parametrize("engine", ENGINES)
def test_lazy_cohort_gives_the_pandas_results(engine, chunked):
    cohort, path = chunked
    loaded = load_cohort(path, engine=engine)
    assert not isinstance(loaded.assessments, pd.DataFrame)  # the engine's lazy frame
    assert loaded.collected == ("patients", "assessments", "sessions", "adverse_events")
    expected_ep = derive_endpoints(cohort, "GAD7")
    ep = derive_endpoints(loaded, "GAD7")
    pd.testing.assert_frame_equal(
        rate_table(ep, "response"), rate_table(expected_ep, "response"), check_dtype=False
    )
    with_loaded = counts(validate_cohort(path, engine=engine))
    assert with_loaded == counts(validate_cohort(cohort))


def test_duckdb_database_file_and_memory_limit(tmp_path, base):
    import duckdb

    database = tmp_path / "registry.duckdb"
    con = duckdb.connect(str(database))
    for name, df in _tables(base).items():
        con.register("df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM df")
        con.unregister("df")
    con.close()
    cohort = load_cohort(database, engine="duckdb", memory_limit="1GB")
    limit = cohort.assessments.query("t", "SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit == "441.6 MiB"  # DuckDB's share of the 1 GB budget: 1 GB less 512 MiB
    ep = derive_endpoints(cohort, "GAD7")
    expected = derive_endpoints(base, "GAD7")
    pd.testing.assert_frame_equal(
        rate_table(ep, "remission"), rate_table(expected, "remission"), check_dtype=False
    )


def test_engine_arguments_are_checked(tmp_path, base):
    _write(_tables(base), tmp_path)
    with pytest.raises(ValueError, match="engine"):
        load_cohort(tmp_path, engine="sqlite")
    with pytest.raises(ValueError, match="memory_limit"):
        load_cohort(tmp_path, engine="polars", memory_limit="1GB")
    (tmp_path / "assessments.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="assessments"):
        load_cohort(tmp_path, engine="duckdb")


def test_one_table_discovery_for_files_and_engines(tmp_path, base):
    """The engines find their Parquet sources with the readers' discovery (kind="parquet"):
    chunk folders (also Spark's `<table>.parquet/`), one source per table, broken links."""
    from analysis.readers import find_table_files

    tables = _tables(base)
    tables["patients"].to_parquet(tmp_path / "patients.parquet", index=False)
    spark_style = tmp_path / "Assessments.parquet"  # a folder, as Spark writes a table
    spark_style.mkdir()
    tables["assessments"].to_parquet(spark_style / "part-0.parquet", index=False)
    tables["sessions"].to_csv(tmp_path / "sessions.csv", index=False)  # not Parquet
    found, problems = find_table_files(tmp_path, ["patients", "assessments", "sessions"])
    assert sorted(found) == ["patients", "sessions"] and problems == []
    found, problems = find_table_files(
        tmp_path, ["patients", "assessments", "sessions"], kind="parquet"
    )
    assert {t: p.name for t, (p, _) in found.items()} == {
        "patients": "patients.parquet",
        "assessments": "Assessments.parquet",
    }
    assert problems == []
    assert counts(validate_cohort(tmp_path, engine="duckdb")) == counts(
        validate_cohort({"patients": tables["patients"], "assessments": tables["assessments"]})
    )
    with pytest.raises(ValueError, match="kind"):
        find_table_files(tmp_path, ["patients"], kind="csv")  # type: ignore[arg-type]

    (tmp_path / "patients").mkdir()  # a second source of one table
    tables["patients"].to_parquet(tmp_path / "patients" / "part-0.parquet", index=False)
    (tmp_path / "adverse_events.parquet").symlink_to(tmp_path / "nowhere.parquet")
    report = validate_cohort(tmp_path, engine="polars")
    checks = report.failures["value"].tolist()
    assert sorted(checks) == ["broken_link", "several_files"]
    message = " ".join(report.errors["check"])
    assert "table `patients` is in 2 sources (patients, patients.parquet)" in message
    assert "keep one file or folder of Parquet files per table" in message
    assert "adverse_events.parquet: the file is a link to a file that does not exist" in message


def _queries(monkeypatch, engine) -> list[int]:
    """One entry per query the engine runs (DuckDB: a relation turned into Arrow; Polars:
    a LazyFrame collected)."""
    ran: list[int] = []
    if engine == "duckdb":
        import duckdb

        original = duckdb.DuckDBPyRelation.to_arrow_table

        def spy(self, *args, **kwargs):
            ran.append(1)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(duckdb.DuckDBPyRelation, "to_arrow_table", spy)
    else:
        import polars as pl

        original_collect = pl.LazyFrame.collect

        def spy_collect(self, *args, **kwargs):
            ran.append(1)
            return original_collect(self, *args, **kwargs)

        monkeypatch.setattr(pl.LazyFrame, "collect", spy_collect)
    return ran


# A valid cohort of four tables: Polars (and Spark) get two queries, the aggregate pass of
# every table, then the keys, references and findings; DuckDB runs the same counts one
# query each (one per table, three keys, the repeated adverse events, three references,
# the findings, two "after the last assessment"), which keeps each on every thread, after
# two small queries per table that settle its columns before the pass (the text facts,
# and the integer columns' bounds, read from the Parquet statistics).
VALID_QUERIES = {"polars": 2, "duckdb": 22}


@pytest.mark.parametrize("engine", ENGINES)
def test_validation_asks_the_engine_in_two_batches(engine, folder, pandas_results, engine_results):
    """The counts of a cohort come in two batches; only failed checks ask for more (the
    guard's candidate values, one query per text column whose filter matched)."""
    case, path = folder
    expected = pandas_results(path, "report")
    report, ran = engine_results(path, engine)  # the validation counted, run once
    assert counts(report) == counts(expected)
    # the guard's exact check of candidate values: one query per text column that matched
    values = report.errors[report.errors["check"].str.endswith("_value")]
    candidates = values[values["check"] != "date_value"].groupby(["table", "column"]).ngroups
    assert ran == VALID_QUERIES[engine] + candidates
    assert (candidates > 0) == (case == "identifiers")


def _duckdb_queries(monkeypatch) -> list[str]:
    """The SQL of every query DuckDB runs from now on (a list that fills as they run)."""
    import duckdb

    texts: list[str] = []
    original = duckdb.DuckDBPyRelation.to_arrow_table

    def spy(self, *args, **kwargs):
        texts.append(self.sql_query())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(duckdb.DuckDBPyRelation, "to_arrow_table", spy)
    return texts


def test_queries_after_the_pass_read_stored_text_where_nothing_needs_stripping(
    base, tmp_path, monkeypatch
):
    """DuckDB counts the values with whitespace at an end before the aggregate pass
    (one query per table); where there are none, the pass, the keys, references and
    findings compare the stored text (as the SQL would), without the strip test on every
    row; where there are some, they strip."""
    texts = _duckdb_queries(monkeypatch)
    edge = "ends_with("  # the strip test (an end of the value is whitespace), in the SQL
    for name, expect_strip in (("valid", False), ("padded", True)):
        folder = tmp_path / name
        folder.mkdir()
        _write(CASES[name](_tables(base)), folder)
        texts.clear()
        validate_cohort(folder, engine="duckdb")
        early, rest = texts[:8], texts[8:]  # per table: the text facts, the bounds
        assert sum(edge in t for t in early) == 4
        assert any(edge in t for t in rest) == expect_strip, name


def test_a_number_stored_as_text_is_cleaned_once_not_in_every_check(base, tmp_path, monkeypatch):
    """An integer field stored as text (with spaces and missing tokens) is converted from
    one cleaned column: the queries stay about the size of a clean cohort's. Written into
    every use, the conversion made the patients' aggregate query 6.5 times larger
    (297,000 characters of SQL, 16,600 expression nodes for one range check)."""
    queries = _duckdb_queries(monkeypatch)
    sizes = {}
    for case in ("valid", "types_columns"):
        folder = tmp_path / case
        folder.mkdir()
        _write(CASES[case](_tables(base)), folder)
        queries.clear()
        validate_cohort(folder, engine="duckdb")
        sizes[case] = max(len(q) for q in queries)
    assert sizes["types_columns"] < 1.5 * sizes["valid"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_column_named_like_the_cleaned_text_is_kept(engine, base, tmp_path):
    """The cleaned text of ``age`` (stored as text) is a column of the engine's frame; a
    column of the data with the name it would take stays the data's own."""
    tables = _types_and_columns(_tables(base))
    tables["patients"]["_text_age"] = "kept"
    _write(tables, tmp_path)
    report = validate_cohort(tmp_path, engine=engine)
    assert counts(report) == counts(validate_cohort(tmp_path))
    typed = nw.from_native(report.tables["patients"]).lazy().collect().to_pandas()
    assert (typed["_text_age"] == "kept").all()


def test_typed_tables_of_a_clean_cohort_are_the_stored_columns(base, tmp_path):
    """The typed tables a lazy cohort hands to the statistics convert only what the
    aggregate pass found needs it: on clean Parquet the patients' text columns are read as
    stored (no strip test, no missing-token test), so a join on them (rates by site)
    costs what a join of the files costs; the values are pandas' typed values."""
    _write(_tables(base), tmp_path)
    cohort = load_cohort(tmp_path, engine="duckdb")
    sql = cohort.patients.sql_query()
    assert "ends_with(" not in sql and "trim" not in sql and "'N/A'" not in sql
    typed = cohort.patients.df().sort_values("patient_id", ignore_index=True)
    expected = load_cohort(tmp_path).patients.sort_values("patient_id", ignore_index=True)
    pd.testing.assert_frame_equal(typed, expected, check_dtype=False)


_EDGES = st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\xa0", "\u2003", "\x1c", ""])


@given(
    values=st.lists(
        st.one_of(
            st.none(),
            st.tuples(_EDGES, st.text(max_size=6), _EDGES).map("".join),
        ),
        max_size=12,
    )
)
@example(values=[" a", "b\t", "\x0bc\x0c", "\xa0d", "e", "", None, "\r\n"])
def test_duckdb_strips_only_where_an_end_is_whitespace_and_equals_the_strip(values):
    """On DuckDB, text is stripped only where an end is whitespace (prefix and suffix
    tests, :func:`_ends_in_space`): equal to the strip on every value, and the edge count
    of the aggregate pass equal to the values the strip changes."""
    import duckdb
    import narwhals as nw

    from analysis._engine_validation import _ends_in_space, _strip, _strip_if_needed

    rel = duckdb.from_arrow(pd.DataFrame({"v": pd.Series(values, dtype=object)}).astype("string"))
    text = nw.col("v").cast(nw.String)
    got = nw.from_native(rel).select(
        _strip(text).alias("plain"),
        _strip_if_needed(text).alias("fast"),
        _ends_in_space(text).alias("edge"),
        text.alias("stored"),
    )
    rows = got.to_native().df()
    assert rows["fast"].tolist() == rows["plain"].tolist()
    stored = rows["stored"].tolist()
    changed = [v is not None and p != v for p, v in zip(rows["plain"], stored, strict=True)]
    edge = [bool(e) if v is not None else False for e, v in zip(rows["edge"], stored, strict=True)]
    assert edge == changed


@given(flags=st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=30))
@example(flags=[None, None])
@example(flags=[True, None, False, True])
def test_counts_as_case_equal_the_filled_sum(flags):
    """A count of the aggregate pass, ``sum(CASE WHEN c THEN 1 ELSE 0 END)``
    (:func:`_count`), equals the filled and cast sum (:func:`_count_plain`) and the rows
    where the condition is true (null is not true), on every engine."""
    import duckdb
    import narwhals as nw
    import polars as pl

    from analysis._engine_validation import _count, _count_plain, _counts

    native = pl.DataFrame({"c": flags}, schema={"c": pl.Boolean})
    for frame in (native.lazy(), duckdb.from_arrow(native.to_arrow())):
        got = _counts(
            nw.from_native(frame).select(
                _count(nw.col("c")).alias("fast"), _count_plain(nw.col("c")).alias("plain")
            )
        )
        assert got == {"fast": flags.count(True), "plain": flags.count(True)}
