"""The same derivation on pandas, Polars (eager and lazy) and DuckDB gives identical results."""

from __future__ import annotations

import math
import re

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from _engines import ENGINES, Backend
from hypothesis import given, settings
from hypothesis import strategies as st
from test_endpoints_fast_path import cohorts as fast_path_cohorts
from test_endpoints_fast_path import criteria_overrides

from analysis import endpoints
from analysis.endpoints import (
    DEFAULT_SCHEDULE,
    ENDPOINT_COLUMNS,
    _generic_steps,
    derive_endpoints,
    endpoint_accounting,
)
from analysis.instruments import INSTRUMENTS, MAX_ITEMS, score_items

PANDAS_DTYPES = {
    "patient_id": "string",
    "instrument": "string",
    "visit": "string",
    "severity": "string",
    "baseline_severity": "string",
    "reason": "string",
    "pct_change": "Float64",
}


def random_assessments(n_patients: int, seed: int = 0) -> pd.DataFrame:
    """A random cohort exercising every rule: several assessments per window, days outside
    the schedule, missing items (prorated or not), total-only and unscorable rows, patients
    without a baseline and baselines of 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for instrument in INSTRUMENTS.values():
            if instrument.name == "HAMA" and rng.random() < 0.5:
                continue
            days = rng.choice(np.arange(-20, 130), size=rng.integers(1, 12), replace=False)
            if rng.random() < 0.9:
                days = np.union1d(days, rng.integers(-14, 1, 2))  # usually a baseline
            level = rng.uniform(0.05, 0.95)
            for day in days:
                p_item = level * np.exp(-max(day, 0) / 50) if rng.random() > 0.03 else 0.0
                items = rng.binomial(instrument.item_max, p_item, instrument.n_items)
                items = items.astype(object)
                missing = rng.choice([0, 0, 0, 1, instrument.max_missing_items + 1])
                items[rng.choice(instrument.n_items, missing, replace=False)] = None
                row = {"patient_id": f"P{p:04d}", "instrument": instrument.name}
                row |= {"study_day": int(day), "total": None}
                row |= {f"item_{k}": None for k in range(1, MAX_ITEMS + 1)}
                if rng.random() < 0.1:
                    row["total"] = int(rng.integers(0, instrument.total_max + 1))
                else:
                    row |= {f"item_{k}": v for k, v in enumerate(items, start=1)}
                rows.append(row)
    df = pd.DataFrame(rows)
    numeric = ["total", *(f"item_{k}" for k in range(1, MAX_ITEMS + 1))]
    return df.astype(dict.fromkeys(numeric, "Int64"))


def to_pandas(result) -> pd.DataFrame:
    """Any backend's result as pandas with one set of dtypes, sorted, for comparison."""
    if isinstance(result, pl.LazyFrame):
        result = result.collect()
    if isinstance(result, pl.DataFrame):
        result = result.to_pandas()
    elif isinstance(result, duckdb.DuckDBPyRelation):
        result = result.df()
    elif not isinstance(result, pd.DataFrame):  # Spark
        result = result.toPandas()
    dtypes = {}
    for column in result.columns:
        if column in PANDAS_DTYPES:
            dtypes[column] = PANDAS_DTYPES[column]
        elif column in ENDPOINT_COLUMNS and column not in ("target_day", "study_day"):
            kind = result[column].dropna()
            is_bool = kind.map(lambda v: isinstance(v, bool | np.bool_)).all()
            dtypes[column] = "boolean" if is_bool and len(kind) else "Int64"
        else:
            dtypes[column] = "Int64"
    result = result.astype(dtypes)
    keys = (
        ["patient_id", "instrument", "study_day"]
        if "reason" in result
        else list(result.columns[:4])
    )
    return result.sort_values(keys, kind="stable").reset_index(drop=True)


BACKENDS = {
    "polars": pl.from_pandas,
    "polars_lazy": lambda df: pl.from_pandas(df).lazy(),
    "duckdb": duckdb.from_df,
}


@pytest.fixture(scope="module")
def cohort():
    df = random_assessments(300, seed=7)
    assert len(df) > 1500
    return df


@pytest.mark.parametrize("impute", ["observed", "locf", "bocf"])
@pytest.mark.parametrize("instrument", ["GAD7", "HAMA"])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_same_endpoints_on_every_backend(cohort, backend, instrument, impute):
    expected = to_pandas(derive_endpoints(cohort, instrument, impute=impute))
    assert len(expected) > 100 and expected.response.notna().any()
    got = to_pandas(derive_endpoints(BACKENDS[backend](cohort), instrument, impute=impute))
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("impute", ["observed", "locf"])
@pytest.mark.parametrize("backend", ["polars", "polars_lazy"])
def test_polars_rows_come_sorted_by_patient_and_visit(cohort, backend, impute):
    # Polars keeps its rows' order, so they are sorted before the outcome columns are
    # added and not at the end: the result is in the order of pandas' without a sort.
    expected = derive_endpoints(cohort, "GAD7", impute=impute)
    got = derive_endpoints(BACKENDS[backend](cohort), "GAD7", impute=impute)
    got = got.collect() if isinstance(got, pl.LazyFrame) else got
    keys = ["patient_id", "target_day"]
    assert got.select(keys).to_pandas().values.tolist() == expected[keys].values.tolist()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_same_accounting_on_every_backend(cohort, backend):
    expected = to_pandas(endpoint_accounting(cohort))
    got = to_pandas(endpoint_accounting(BACKENDS[backend](cohort)))
    assert set(expected.reason) == {
        "baseline",
        "visit",
        "superseded_in_window",
        "outside_schedule",
        "no_baseline",
        "unscorable",
    }
    if backend == "polars":  # eager: the row positions agree too
        pd.testing.assert_frame_equal(got, expected)
    else:
        pd.testing.assert_frame_equal(got.drop(columns="row"), expected.drop(columns="row"))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_same_scores_on_every_backend(cohort, backend):
    expected = to_pandas(score_items(cohort))
    got = to_pandas(score_items(BACKENDS[backend](cohort)))
    pd.testing.assert_frame_equal(got[expected.columns], expected)


def test_default_schedule_is_exercised(cohort):
    acc = endpoint_accounting(cohort)
    assert set(acc.visit.dropna()) == {v.name for v in DEFAULT_SCHEDULE}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_rows_without_a_patient_id_have_no_baseline_on_every_backend(cohort, backend):
    # Some ids blanked, among them a patient's baseline rows: those rows belong to no
    # patient on every engine (the window of the derivation would group them as one).
    blanked = cohort.copy()
    blanked["patient_id"] = blanked["patient_id"].astype(object)
    blank = blanked["patient_id"].isin(["P0003", "P0011", "P0042"]) | (blanked.index % 97 == 0)
    blanked.loc[blank, "patient_id"] = None
    for instrument in ["GAD7", "HAMA"]:
        expected = to_pandas(derive_endpoints(blanked, instrument, impute="bocf"))
        assert expected["patient_id"].notna().all() and len(expected) > 100
        # As if the rows were not there (the HAM-A's Jacobson-Truax SD included).
        dropped = blanked.dropna(subset=["patient_id"])
        pd.testing.assert_frame_equal(
            expected, to_pandas(derive_endpoints(dropped, instrument, impute="bocf"))
        )
        got = to_pandas(derive_endpoints(BACKENDS[backend](blanked), instrument, impute="bocf"))
        pd.testing.assert_frame_equal(got, expected)
    accounted = to_pandas(endpoint_accounting(BACKENDS[backend](blanked)))
    no_id = accounted[accounted["patient_id"].isna()]
    assert len(no_id) == blank.sum()
    assert set(no_id["reason"]) <= {"no_baseline", "unscorable", "outside_schedule"}
    assert (no_id["reason"] == "no_baseline").any()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_duplicated_assessment_is_chosen_twice_on_every_backend(cohort, backend):
    # Validation refuses a duplicated (patient, instrument, day); unvalidated, both copies
    # tie for their window on every engine (DuckDB ranks where the others compare with the
    # window's minimum), so both become rows, as on pandas.
    doubled = pd.concat([cohort, cohort.iloc[::50]], ignore_index=True)
    for instrument in ["GAD7", "HAMA"]:
        expected = to_pandas(derive_endpoints(doubled, instrument))
        assert len(expected) > len(to_pandas(derive_endpoints(cohort, instrument)))
        got = to_pandas(derive_endpoints(BACKENDS[backend](doubled), instrument))
        pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("impute", ["locf", "bocf"])
@pytest.mark.parametrize("backend", ENGINES)
def test_float_study_days_are_imputed_on_every_backend(cohort, backend, impute):
    # A study day read as a float (a pandas column with NaN, converted to Polars) gives
    # float target days, which the imputation joins with its integer grid of visits:
    # Polars refused to join keys of two types.
    floats = cohort.assign(study_day=cohort["study_day"].astype("float64"))
    expected = to_pandas(derive_endpoints(cohort, "GAD7", impute=impute))
    got = to_pandas(Backend(backend).derive_endpoints(floats, "GAD7", impute=impute))
    assert len(expected) > 100
    pd.testing.assert_frame_equal(got, expected)


def test_duckdb_derivation_reads_no_table_of_the_callers_connection_by_name(cohort):
    # DuckDB's choice is written in SQL on the relation itself, not on a view named in
    # the connection, where a table of the caller's of the same name would be read
    # instead (a first version read a table called "_scored").
    con = duckdb.connect()
    for name in ["_scored", "scored", "assessments", "t"]:
        con.execute(f"CREATE TABLE {name} AS SELECT 42 AS score, 1 AS patient_id")
    con.register("cohort_frame", cohort)
    relation = con.sql("SELECT * FROM cohort_frame")
    for instrument in ["GAD7", "HAMA"]:
        expected = to_pandas(derive_endpoints(cohort, instrument))
        pd.testing.assert_frame_equal(to_pandas(derive_endpoints(relation, instrument)), expected)
    assert con.sql("SELECT * FROM _scored").fetchall() == [(42, 1)]


@pytest.mark.parametrize("backend", ["pandas", *BACKENDS])
def test_a_row_without_a_patient_id_is_not_in_the_jacobson_truax_sd(backend):
    # Baselines 20, 22, 24: SD 2, threshold 1.96 x 2 x sqrt(2 x 0.1) = 1.75, so the drops
    # of 10 points are reliable. An id-less baseline of 56 would make the SD 17.1 and the
    # threshold 15.0, and no drop reliable.
    cohort = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b", "b", "c", "c", None],
            "instrument": "HAMA",
            "study_day": [0, 28, 0, 28, 0, 28, 0],
            "total": [20, 10, 22, 12, 24, 14, 56],
        }
    )
    make = BACKENDS.get(backend, lambda df: df)
    got = to_pandas(derive_endpoints(make(cohort), "HAMA", criteria={"reliability": 0.9}))
    assert list(got["patient_id"]) == ["a", "b", "c"]
    assert got["reliable_improvement"].tolist() == [True, True, True]


@pytest.mark.parametrize("engine", ["pandas", *BACKENDS])
def test_typed_select_equals_a_select_then_cast_columns(engine):
    # The derivation's last projection (typed_select: the casts folded into the select on
    # a lazy engine) gives what a select, then cast_columns, gives.
    import narwhals as nw

    from analysis._frames import cast_columns, typed_select

    df = pd.DataFrame({"a": [1.0, None, 3.0], "b": [0, 1, 0], "c": ["x", None, "z"]})
    native = BACKENDS.get(engine, lambda df: df)(df)
    columns = {"c": nw.col("c"), "a": nw.col("a") * 2, "flag": nw.col("b") == 1}
    dtypes = {"a": nw.Int64, "flag": nw.Boolean}

    def collected(frame):  # as pandas, with the engine's own dtypes (to_pandas casts)
        frame = frame.collect() if isinstance(frame, nw.LazyFrame) else frame
        return frame.to_pandas()

    got = typed_select(nw.from_native(native), columns, dtypes)
    expected = cast_columns(nw.from_native(native).select(**columns), dtypes)
    assert got.columns == ["c", "a", "flag"]
    assert got.collect_schema() == expected.collect_schema()
    pd.testing.assert_frame_equal(collected(got), collected(expected))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    item_type=st.sampled_from(
        ["BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "DECIMAL(6, 1)"]
    ),
    total_type=st.sampled_from(["BIGINT", "DOUBLE"]),
    day_type=st.sampled_from(["BIGINT", "DOUBLE"]),
    lowest_item=st.sampled_from([0, -3]),
    instrument=st.sampled_from(sorted(INSTRUMENTS)),
)
def test_duckdb_sql_scoring_equals_the_generic_steps(
    seed, item_type, total_type, day_type, lowest_item, instrument
):
    # DuckDB scores in SQL of its own (endpoints._DuckDBSteps.score: integer or float
    # items, floor division written out) and sums the Jacobson-Truax baselines in SQL:
    # the endpoints equal those of the generic narwhals steps on pandas, whatever the
    # column types, with negative items (the floor of a negative proration), rows with no
    # item answered, and a threshold from the data. Decimals take the generic form.
    rng = np.random.default_rng(seed)
    inst = INSTRUMENTS[instrument]
    rows = []
    for p in range(int(rng.integers(2, 9))):
        for day in np.union1d(rng.choice(np.arange(-16, 120), 5, replace=False), [0, -3]):
            items = rng.integers(lowest_item, inst.item_max + 1, inst.n_items).astype(float)
            items[rng.random(inst.n_items) < rng.choice([0.0, 0.1, 0.5, 1.0])] = np.nan
            row = {"patient_id": f"P{p}", "instrument": instrument, "study_day": int(day)}
            row |= {f"item_{k}": v for k, v in enumerate(items, start=1)}
            row["total"] = (
                float(rng.integers(0, inst.total_max + 1)) if rng.random() < 0.3 else None
            )
            rows.append(row)
    df = pd.DataFrame(rows).astype({"total": "float64"})
    con = duckdb.connect()
    con.register("raw", df)
    casts = ", ".join(
        f"CAST(item_{k} AS {item_type}) AS item_{k}" for k in range(1, inst.n_items + 1)
    )
    relation = con.sql(
        f"SELECT patient_id, instrument, CAST(study_day AS {day_type}) AS study_day, {casts}, "
        f"CAST(total AS {total_type}) AS total FROM raw"
    )
    # The two forms of the steps on the same relation: the scores, then the sums of the
    # scored rows the Jacobson-Truax threshold is computed from (to 1e-12).
    frame = endpoints._assessments(relation, inst)  # as the derivation reads it
    keep = ["patient_id", "study_day", "n_items_answered", *inst.item_columns]
    visits = [v for v in DEFAULT_SCHEDULE if instrument in v.instruments]
    forms = [endpoints._Steps(), endpoints._DuckDBSteps()]
    generic, sql = (f.score(frame, inst, visits, keep).to_native() for f in forms)
    assert [str(t) for t in sql.types] == [str(t) for t in generic.types]
    pd.testing.assert_frame_equal(to_pandas(sql), to_pandas(generic))
    generic_sums, sql_sums = (
        f.baseline_sums(forms[0].score(frame, inst, visits, keep), inst, items=True) for f in forms
    )
    assert sql_sums.keys() == generic_sums.keys()
    for key, value in generic_sums.items():
        if value is None or key in ("n", "nc"):  # counts exactly (a Decimal from narwhals)
            assert sql_sums[key] == value, key
        else:
            assert sql_sums[key] == pytest.approx(float(value), rel=1e-12), key
    typed = relation.df()
    criteria = None if instrument == "HAMA" and seed % 2 else {"reliable_change": 3.0}
    with _generic_steps():
        try:
            expected = to_pandas(derive_endpoints(typed, instrument, criteria=criteria))
        except ValueError as error:  # too few complete baselines for Cronbach's alpha
            with pytest.raises(ValueError, match=re.escape(str(error))):
                derive_endpoints(relation, instrument, criteria=criteria)
            return
    got = to_pandas(derive_endpoints(relation, instrument, criteria=criteria))
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("dtype", [pl.Int8, pl.UInt8, pl.Int16, pl.Int32])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_narrow_integer_items_are_scored_as_pandas_scores_them(backend, dtype):
    # A prorated HAM-A of 13 items of 3 is floor((2 x 14 x 39 + 13) / 26) = 42: the
    # product 1,092 overflows an 8-bit integer, which Polars wrapped around silently (a
    # baseline of 3) and DuckDB refused; the items are widened to 64 bits first.
    rows = [
        {"patient_id": p, "instrument": "HAMA", "study_day": day, "total": np.nan}
        | {f"item_{k}": value for k in range(1, 15)}
        for p, after in [("a", 1), ("b", 2)]
        for day, value in [(0, 3), (28, after)]
    ]
    df = pd.DataFrame(rows)
    df.loc[0, "item_1"] = np.nan
    narrow = pl.from_pandas(df).with_columns(pl.col(f"item_{k}").cast(dtype) for k in range(1, 15))
    native = {
        "polars": narrow,
        "polars_lazy": narrow.lazy(),
        "duckdb": duckdb.from_arrow(narrow.to_arrow()),
    }[backend]
    criteria = {"reliability": 0.9}
    got = to_pandas(derive_endpoints(native, "HAMA", criteria=criteria))
    expected = to_pandas(derive_endpoints(df, "HAMA", criteria=criteria))
    assert got["baseline"].tolist() == [42, 42]
    pd.testing.assert_frame_equal(got, expected)


@settings(max_examples=30, deadline=None)
@given(
    cohort=fast_path_cohorts(),
    instrument=st.sampled_from(sorted(INSTRUMENTS)),
    impute=st.sampled_from(["observed", "locf", "bocf"]),
    criteria=st.one_of(st.none(), criteria_overrides),
    threshold=st.sampled_from([0.5, 4, 7.0, 12.25, math.inf]),
)
def test_duckdb_sql_outcomes_equal_the_generic_steps(
    cohort, instrument, impute, criteria, threshold
):
    # DuckDB writes the outcome columns in SQL of its own (endpoints._DuckDBSteps.outcomes):
    # on the same endpoint rows they equal the generic narwhals form's, types included,
    # under criteria drawn at random (integer and fractional percentages, cut-offs either
    # side of the scores, no caseness cut-off, either severity scheme) and an infinite
    # threshold (no baseline to compute one from).
    inst = INSTRUMENTS[instrument]
    criteria = dict(criteria or {})
    if "severity_bands" in criteria:
        schemes = sorted(inst.bands)
        criteria["severity_bands"] = schemes[criteria["severity_bands"] % len(schemes)]
    partial = criteria.get("partial_response_reduction", 25)
    criteria["response_reduction"] = max(criteria.get("response_reduction", 50), partial)
    resolved = endpoints._resolve_criteria(inst, criteria)
    bands = inst.band(resolved.severity_bands)
    visits = [v for v in DEFAULT_SCHEDULE if instrument in v.instruments]
    steps = endpoints._DuckDBSteps()
    frame = endpoints._assessments(Backend("duckdb").convert(cohort), inst)
    keep = ["patient_id", "study_day"]
    chosen = endpoints._annotate(frame, inst, visits, steps, keep, filtered=True, every_row=False)
    rows = steps.rows(chosen, visits, impute)
    generic, sql = (
        form.outcomes(rows, inst, visits, resolved, threshold, bands).to_native()
        for form in (endpoints._Steps(), steps)
    )
    assert sql.columns == generic.columns
    assert [str(t) for t in sql.types] == [str(t) for t in generic.types]
    pd.testing.assert_frame_equal(to_pandas(sql), to_pandas(generic))
