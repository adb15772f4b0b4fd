"""Run the endpoint derivation on one engine and read the result back as pandas.

The hand-worked endpoint tests (``tests/test_endpoints.py``) take the ``backend``
fixture, so every expectation written there holds on every engine: pandas (with its fast
path), pandas through the generic narwhals steps (:func:`analysis.endpoints._generic_steps`,
the form every other engine runs), Polars eager and lazy, and DuckDB. Spark has its own
module (``test_endpoints_spark.py``, marked ``spark``).

Results come back as pandas, cast to the dtypes the pandas engine gives for the same
input (the values and the row order are the engine's own: the derivation sorts before
returning, on every engine).
"""

from __future__ import annotations

import contextlib
import dataclasses

import duckdb
import narwhals as nw
import pandas as pd
import polars as pl

from analysis import endpoints
from analysis.cohort import Cohort

ENGINES = ("pandas", "pandas_generic", "polars", "polars_lazy", "duckdb")
#: Engines without a row order (accounting rows are numbered in key order).
LAZY = ("polars_lazy", "duckdb")

_CONVERT = {
    "pandas": lambda df: df,
    "pandas_generic": lambda df: df,
    "polars": pl.from_pandas,
    "polars_lazy": lambda df: pl.from_pandas(df).lazy(),
    "duckdb": duckdb.from_df,
}


class Backend:
    """``derive_endpoints`` and ``endpoint_accounting`` on one engine, pandas out."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def convert(self, data):
        """The input on this engine (a Cohort's assessments; a pandas frame otherwise)."""
        if isinstance(data, Cohort):
            return dataclasses.replace(data, assessments=self.convert(data.assessments))
        if not isinstance(data, pd.DataFrame):
            return data  # not a frame: let the function under test raise
        if self.name.startswith("pandas"):
            return data
        return _CONVERT[self.name](_typed(data))

    def derive_endpoints(self, data, *args, **kwargs) -> pd.DataFrame:
        return self._run(endpoints.derive_endpoints, data, *args, **kwargs)

    def endpoint_accounting(self, data, *args, **kwargs) -> pd.DataFrame:
        return self._run(endpoints.endpoint_accounting, data, *args, **kwargs)

    def _run(self, function, data, *args, **kwargs) -> pd.DataFrame:
        generic = endpoints._generic_steps() if self.name == "pandas_generic" else None
        with generic or contextlib.nullcontext():
            result = function(self.convert(data), *args, **kwargs)
        if isinstance(result, pd.DataFrame):
            return result
        out = as_pandas(result)
        if self.name in LAZY and "row" in out.columns and isinstance(data, pd.DataFrame):
            out = _in_input_order(out, data)
        # the dtypes (only) of the pandas engine's result, which the tests were written for
        dtypes = function(data, *args, **kwargs).dtypes.to_dict()
        return out.astype(dtypes)


_KEY = ["patient_id", "instrument", "study_day"]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding only numbers and missing values as nullable numbers.

    pandas infers nothing from a column of Python ints and ``None``; Polars and DuckDB
    would read an all-missing one as text. Typed columns are what
    :func:`analysis.validate` gives and what these engines are handed in practice.
    """
    out = df.copy()
    for column in [c for c in out.columns if pd.api.types.is_object_dtype(out[c])]:
        try:
            values = pd.to_numeric(out[column])
        except (TypeError, ValueError):
            continue
        whole = values.dropna().eq(values.dropna().round()).all()
        out[column] = values.astype("Int64" if whole else "Float64")
    return out


def _in_input_order(out: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """Accounting rows of a lazy engine in the input's order, ``row`` its positions.

    A lazy frame has no row order, so a lazy engine numbers the rows in key order
    (``tests/test_endpoints.py::test_accounting_lazy_input_orders_rows_by_key``); the key
    (patient, instrument, study day) is unique, so each row maps back to its input row.
    """
    keys = data[_KEY].astype({"patient_id": str, "instrument": str, "study_day": "Int64"})
    position = pd.Series(range(len(data)), index=pd.MultiIndex.from_frame(keys))
    found = out[_KEY].astype({"patient_id": str, "instrument": str, "study_day": "Int64"})
    rows = position.reindex(pd.MultiIndex.from_frame(found)).to_numpy()
    return out.assign(row=rows).sort_values("row", kind="stable").reset_index(drop=True)


def as_pandas(result) -> pd.DataFrame:
    """A result of any engine as a pandas frame (a lazy one collected)."""
    frame = nw.from_native(result)
    if isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    return frame.to_pandas()
