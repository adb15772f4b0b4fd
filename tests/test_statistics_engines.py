"""Contract: every public statistic gives the pandas answer on every engine.

The statistics ask the caller's engine (narwhals) for counts and moments per cell and
compute the intervals from those (``analysis._frames``). The same endpoint rows are
passed as pandas, Polars (eager and lazy) and DuckDB; counts must be identical and
estimates equal to 1e-12. Spark runs the same contract under ``make test-spark``
(``tests/test_endpoints_spark.py``).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest

from analysis import (
    compare_rates,
    compare_rates_stratified,
    effect_size_table,
    kaplan_meier,
    median_time_to_event,
    rate_table,
    synthetic_cohort,
    time_to_event,
)
from analysis.tables import cohort_endpoints, outcome_rates


@pytest.fixture(scope="module")
def endpoints() -> pd.DataFrame:
    cohort = synthetic_cohort(n_patients=240, seed=7)
    ep = cohort_endpoints(cohort, patient_columns=("route", "site_id", "primary_diagnosis"))
    return ep


ENGINES = {
    "polars": pl.from_pandas,
    "polars_lazy": lambda df: pl.from_pandas(df).lazy(),
    "duckdb": lambda df: duckdb.from_df(df),
}


def _same(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Identical columns and counts; floats equal to 1e-12 (relative or absolute)."""
    assert list(result.columns) == list(expected.columns)
    assert len(result) == len(expected)
    for column in expected.columns:
        want, got = expected[column], result[column]
        if pd.api.types.is_float_dtype(want.dtype) and not pd.api.types.is_integer_dtype(
            want.dtype
        ):
            np.testing.assert_allclose(
                got.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-12, atol=1e-12
            )
        else:
            assert got.astype(object).where(got.notna(), None).tolist() == (
                want.astype(object).where(want.notna(), None).tolist()
            ), column


STATISTICS = {
    "rate_table": lambda ep: rate_table(ep, "response", min_cell=11),
    "rate_table_overall_exact": lambda ep: rate_table(ep, "remission", by=(), method="exact"),
    "rate_table_by_route": lambda ep: rate_table(ep, "response", by=("instrument", "route")),
    "outcome_rates": lambda ep: outcome_rates(ep, ["response", "remission", "recovery"]),
    "compare_rates": lambda ep: compare_rates(ep, "response", "route", reference="iv"),
    "compare_rates_min_cell": lambda ep: compare_rates(ep, "remission", "route", min_cell=11),
    "compare_rates_stratified": lambda ep: compare_rates_stratified(
        ep, "response", "route", strata="site_id", reference="iv"
    ),
    "effect_size_within": lambda ep: effect_size_table(ep),
    "effect_size_within_dz": lambda ep: effect_size_table(ep, measure="d_z", min_cell=11),
    "effect_size_between": lambda ep: effect_size_table(ep, group="route", reference="iv"),
    "time_to_event": lambda ep: time_to_event(ep, "response", instrument="GAD7"),
}


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("statistic", list(STATISTICS))
def test_statistic_is_engine_agnostic(endpoints, engine, statistic):
    compute = STATISTICS[statistic]
    expected = compute(endpoints)
    assert len(expected) > 0
    _same(compute(ENGINES[engine](endpoints)), expected)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_kaplan_meier_and_median_are_engine_agnostic(endpoints, engine):
    tte = time_to_event(endpoints, "response", instrument="GAD7")
    for group in (None, "route"):
        expected = kaplan_meier(tte, group=group)
        _same(kaplan_meier(ENGINES[engine](tte), group=group), expected)
        _same(
            median_time_to_event(ENGINES[engine](tte), group=group),
            median_time_to_event(tte, group=group),
        )


def test_statistics_do_not_collect_patient_rows(endpoints, monkeypatch):
    """Only aggregated tables leave the engine: no call collects a frame as long as the
    endpoints (the largest frame handed back is one row per cell or per patient)."""
    sizes = _collects(monkeypatch)
    lazy = pl.from_pandas(endpoints).lazy()
    rate_table(lazy, "response")
    compare_rates(lazy, "response", "route", reference="iv")
    effect_size_table(lazy)
    effect_size_table(lazy, group="route", reference="iv")
    assert sizes and max(sizes) < 100 < len(endpoints)


def test_rate_table_refuses_non_binary_outcome_on_every_engine(endpoints):
    bad = endpoints.assign(response=endpoints["score"])
    for make in ENGINES.values():
        with pytest.raises(ValueError, match="must hold True/False"):
            rate_table(make(bad), "response")


@pytest.mark.parametrize("engine", ["polars", "polars_lazy", "duckdb"])
def test_cohort_endpoints_stack_and_join_in_the_engine(engine):
    from analysis.schema import Cohort

    cohort = synthetic_cohort(n_patients=60, seed=1)
    expected = cohort_endpoints(cohort)
    make = ENGINES[engine]
    if engine == "duckdb":
        con = duckdb.connect()
        make = con.from_df
    native = cohort_endpoints(Cohort(make(cohort.patients), make(cohort.assessments)))
    assert not isinstance(native, pd.DataFrame)
    keys = ["instrument", "patient_id", "target_day"]
    result = _to_pandas(native).sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    _same(result[list(expected.columns)], expected)


def _to_pandas(native) -> pd.DataFrame:
    import narwhals as nw

    frame = nw.from_native(native)
    return (frame.collect() if isinstance(frame, nw.LazyFrame) else frame).to_pandas()


def _collects(monkeypatch) -> list[int]:
    """The number of rows of each frame a narwhals LazyFrame collects (one per query)."""
    import narwhals as nw

    sizes: list[int] = []
    original = nw.LazyFrame.collect

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(nw.LazyFrame, "collect", spy)
    return sizes


QUERIES = {  # statistic: the aggregate queries it sends to the engine
    "rate_table": (lambda ep: rate_table(ep, "response"), 1),  # counts and visit order
    "rate_table_by_route": (lambda ep: rate_table(ep, "response", by="route"), 1),
    "outcome_rates": (lambda ep: outcome_rates(ep, ["response", "remission", "recovery"]), 1),
    "compare_rates": (lambda ep: compare_rates(ep, "response", "route", reference="iv"), 1),
    # the moments and the visit order; rows repeating a patient in a cell, a second query
    "effect_size_within": (lambda ep: effect_size_table(ep), 2),
    "effect_size_between": (lambda ep: effect_size_table(ep, group="route", reference="iv"), 2),
}


@pytest.mark.parametrize("name", list(QUERIES))
@pytest.mark.parametrize("engine", ["polars_lazy", "duckdb"])
def test_each_statistic_asks_the_engine_once(endpoints, monkeypatch, engine, name):
    """One aggregate query per statistic (a scan of the endpoints each), not one per
    piece of information (the outcome's type comes from the schema)."""
    statistic, queries = QUERIES[name]
    data = ENGINES[engine](endpoints)
    sizes = _collects(monkeypatch)
    if engine == "duckdb":  # a DuckDB relation runs a query when it is turned into Arrow
        sizes.clear()
        ran: list[int] = []
        original = duckdb.DuckDBPyRelation.to_arrow_table

        def spy(self, *args, **kwargs):
            ran.append(1)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(duckdb.DuckDBPyRelation, "to_arrow_table", spy)
        statistic(data)
        assert len(ran) == queries
    else:
        statistic(data)
        assert len(sizes) == queries


@pytest.mark.parametrize("engine", ["pandas", *ENGINES])
def test_repeated_patients_are_refused_with_their_count_on_every_engine(endpoints, engine):
    """Every engine counts the repeated rows as pandas does: three repeated rows, and two
    more rows without a patient id in one cell (a missing id is one value, as pandas
    groups it)."""
    make = ENGINES.get(engine, lambda df: df)
    repeated = pd.concat([endpoints, endpoints.head(3)], ignore_index=True)
    with pytest.raises(ValueError, match=r"^3 row\(s\) repeat a patient"):
        effect_size_table(make(repeated))
    no_id = endpoints.head(3).assign(visit="week4", instrument="GAD7")
    no_id["patient_id"] = no_id["patient_id"].where(np.zeros(3, dtype=bool))  # missing ids
    with pytest.raises(ValueError, match=r"^2 row\(s\) repeat a patient"):
        effect_size_table(make(pd.concat([endpoints, no_id], ignore_index=True)))
    with pytest.raises(ValueError, match=r"^3 row\(s\) repeat a patient"):
        effect_size_table(make(repeated), group="route", reference="iv")


@pytest.mark.parametrize("engine", list(ENGINES))
def test_visits_without_target_days_sort_as_on_pandas(endpoints, engine):
    """Without ``target_day`` the visits come in sort_cells' later order (the default
    schedule's, then natural), on every engine as on pandas (not alphabetically)."""
    no_days = endpoints.drop(columns="target_day")
    expected = rate_table(no_days, "response")
    assert expected["visit"].tolist() != sorted(expected["visit"].tolist())
    _same(rate_table(ENGINES[engine](no_days), "response"), expected)
    _same(effect_size_table(ENGINES[engine](no_days)), effect_size_table(no_days))
