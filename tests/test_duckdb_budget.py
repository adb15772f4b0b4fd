"""``load_cohort(..., engine="duckdb", memory_limit=...)``: a budget for the whole process.

The library gives DuckDB's buffer manager :data:`DUCKDB_SHARE` of the budget, or the
budget less :data:`OUTSIDE_DUCKDB` where that is less (the rest is for what DuckDB does
not count: its Parquet readers, the allocator's slack, Python and Arrow), reads sizes as
DuckDB reads them, refuses a bad size with a message that says what to pass, and returns
the same results whatever the budget.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from analysis import derive_endpoints, effect_size_table, rate_table, synthetic_cohort
from analysis._engine_validation import (
    _SIZE_UNITS,
    DUCKDB_SHARE,
    OUTSIDE_DUCKDB,
    duckdb_memory_limit,
    open_tables,
    parse_size,
)
from analysis.schema import load_cohort

TABLES = ("patients", "assessments", "sessions", "adverse_events")


def _setting(con) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


_CON = duckdb.connect()


def _duckdb_reads(size: str) -> str:
    """The memory_limit DuckDB itself sets for ``size`` (as it prints it)."""
    _CON.execute("SET memory_limit = ?", [size])
    return _setting(_CON)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cohort = synthetic_cohort(80, seed=11)
    path = tmp_path_factory.mktemp("budget")
    for table in TABLES:
        getattr(cohort, table).to_parquet(path / f"{table}.parquet", index=False)
    return path


def test_the_share_is_the_documented_one():
    """README and the docstrings: 75% of the budget, or the budget less 512 MiB."""
    assert (DUCKDB_SHARE, OUTSIDE_DUCKDB) == (0.75, 512 * 2**20)
    assert duckdb_memory_limit("4GB") == "3000000000B"
    assert duckdb_memory_limit("4GiB") == f"{3 * 2**30}B"
    assert duckdb_memory_limit("2GiB") == f"{3 * 2**29}B"  # where the two rules meet
    assert duckdb_memory_limit("1GB") == f"{10**9 - 2**29}B"  # 441.7 MiB
    assert duckdb_memory_limit("640MiB") == f"{2**27}B"  # the least: 128 MiB


@given(st.integers(640 * 2**20, 2**44))
@example(2 * 2**30)
@example(2 * 2**30 + 1)
def test_duckdb_leaves_a_quarter_and_at_least_512_mib(budget):
    share = int(duckdb_memory_limit(f"{budget}B")[:-1])
    assert share <= budget * 0.75
    assert budget - share >= 512 * 2**20
    assert share == int(budget * 0.75) or budget - share == 512 * 2**20  # no less than that
    assert share >= 128 * 2**20


def test_duckdb_gets_its_share_of_the_budget(folder):
    """The connection of the tables (of the cohort load_cohort returns) holds 75% of the
    budget, not the budget; `test_duckdb_database_file_and_memory_limit` of
    `test_engine_validation.py` reads it on a loaded cohort."""
    tables, _ = open_tables(folder, "duckdb", memory_limit="4GB")
    setting = tables["assessments"].query("t", "SELECT current_setting('memory_limit')")
    assert setting.fetchall()[0][0] == _duckdb_reads("3GB") == "2.7 GiB"
    order = tables["assessments"].query("t", "SELECT current_setting('preserve_insertion_order')")
    assert order.fetchall()[0][0] is False
    assert _duckdb_reads("4GB") == "3.7 GiB"  # what DuckDB would take for the whole budget


_NUMBERS = st.one_of(
    st.integers(1, 4000).map(str),
    st.decimals(min_value="0.5", max_value="4000", places=2).map(str),
)
#: Units of a megabyte and up: a smaller limit is refused by a connection that holds more.
_UNITS = [u for u in _SIZE_UNITS if u[0] in "mgt"]


@given(
    number=_NUMBERS,
    unit=st.sampled_from(_UNITS),
    case=st.sampled_from([str.lower, str.upper, str.title]),
    space=st.sampled_from(["", " ", "  "]),
)
@example(number="4", unit="gb", case=str.upper, space="")
@example(number="4", unit="gib", case=str.title, space=" ")
@example(number="1.5", unit="tb", case=str.lower, space="")
def test_sizes_are_read_as_duckdb_reads_them(number, unit, case, space):
    """DuckDB sets the same limit for the size as for the bytes parse_size reads."""
    size = f"{number}{space}{case(unit)}"
    bytes_ = parse_size(size)
    assert isinstance(bytes_, int)
    assume(bytes_ >= 640 * 2**20)  # the least budget
    assert _duckdb_reads(size) == _duckdb_reads(f"{bytes_}B")
    share = min(int(bytes_ * DUCKDB_SHARE), bytes_ - OUTSIDE_DUCKDB)
    assert duckdb_memory_limit(size) == f"{share}B"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("4GB", 4 * 10**9),
        ("4 GiB", 4 * 2**30),
        ("500MB", 500 * 10**6),
        ("500mib", 500 * 2**20),
        ("1e9B", 10**9),
        (" 2.5 gigabytes ", 25 * 10**8),
        ("3T", 3 * 10**12),
        ("600 MB", 600 * 10**6),
    ],
)
def test_sizes(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize(
    ("size", "error", "message"),
    [
        ("4", ValueError, "'4' has no unit"),
        ("4GBs", ValueError, "unknown unit 'GBs'"),
        ("4 gigs", ValueError, "unknown unit 'gigs'"),
        ("-1GB", ValueError, "is not a size"),
        ("none", ValueError, "is not a size"),
        ("", ValueError, "is not a size"),
        ("0GB", ValueError, "is not a positive size"),
        ("0.1B", ValueError, "is not a positive size"),
        ("50%", ValueError, "a share of the machine's memory, not a size"),
        ("600MB", ValueError, "too small a budget .* at least 640 MiB"),
        (4_000_000_000, TypeError, "must be a string, not int"),
    ],
)
def test_a_bad_size_is_refused_with_what_to_pass(folder, size, error, message):
    with pytest.raises(error, match=message) as raised:
        load_cohort(folder, engine="duckdb", memory_limit=size)
    assert "memory_limit" in str(raised.value)
    assert "'1GB'" in str(raised.value) or "'4GB'" in str(raised.value)  # what to pass


def _sorted(findings: pd.DataFrame) -> pd.DataFrame:
    return findings.sort_values(["table", "column", "check"], ignore_index=True)


def _results(cohort) -> list[pd.DataFrame]:
    gad, hama = derive_endpoints(cohort, "GAD7"), derive_endpoints(cohort, "HAMA")
    return [
        gad.df(),
        rate_table(gad, "response", by="visit"),
        rate_table(gad, "remission", by="visit"),
        effect_size_table(hama),
    ]


@pytest.mark.slow
def test_results_do_not_depend_on_the_budget(folder):
    """Row order included: every result is sorted explicitly, so dropping DuckDB's
    insertion order (set with a budget) changes nothing."""
    cohort = load_cohort(folder, engine="duckdb", memory_limit="700MB")
    plain = load_cohort(folder, engine="duckdb")
    budgeted = _results(cohort)
    for ours, theirs in zip(budgeted, _results(plain), strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    endpoints = budgeted[0]  # sorted by the library, not by the order DuckDB keeps
    key = ["patient_id", "target_day"]
    pd.testing.assert_frame_equal(endpoints, endpoints.sort_values(key, ignore_index=True))
    pd.testing.assert_frame_equal(_sorted(cohort.findings), _sorted(plain.findings))
