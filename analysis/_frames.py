"""The engine layer: everything that depends on which dataframe library holds the data.

The rest of the package is written once against narwhals; what must know the engine
lives here, behind one interface:

- reading frames in: :func:`as_frame` (any supported frame as narwhals, a clear error
  otherwise) and :func:`to_pandas` (a pandas frame out of any engine, for the small or
  patient-level tables that statistics and models need);
- columns: :func:`cast_columns` (the nullable pandas dtypes on pandas, a plain cast
  elsewhere), :func:`replace_columns` (set pandas columns without copying the frame) and
  :func:`as_nullable_int`;
- the reductions of the statistics (below).

The pandas fast paths of the endpoint derivation are one class,
``analysis.endpoints._PandasSteps``, a subclass of the generic steps ``_Steps`` chosen by
``_steps_for``; ``with analysis.endpoints._generic_steps():`` forces the generic steps on
pandas (the endpoint tests run both, and every other engine, through their ``backend``
fixture).

Design contract of the reductions (the statistics):

- Every statistic accepts any frame :func:`analysis.derive_endpoints` accepts (pandas,
  Polars eager or lazy, DuckDB, Spark) and asks that engine, through narwhals, only for
  what it needs: counts of an outcome per cell, or the count, mean and SD of a column per
  cell, or the distinct levels of a grouping column. The engine does the ``group_by``;
  only the small aggregated table comes back (as pandas), and the intervals are computed
  from those sufficient statistics by the same code for every engine.
- One query per statistic (each is a scan of the endpoints): :func:`count_cells` counts
  every outcome asked for at once, and with the counts or moments the same query returns
  the earliest ``target_day`` of each cell (the visit order) and, for a numeric outcome,
  the rows that are neither 0 nor 1; the outcome's type comes from the schema, the
  levels of a grouping column from the aggregated table (:class:`Cells`,
  :func:`levels_of`). ``effect_size_table`` asks a second question, whether a patient
  repeats within a cell: a hash aggregation over patients that costs more than the
  moments themselves, measured no faster folded into their query.
- The reductions are written once, for all engines, pandas included, so an engine cannot
  give a different answer through a different code path. The contract test
  (``tests/test_statistics_engines.py``) holds every public statistic identical across
  engines.
- Nothing here sorts patient-level rows or moves them out of the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

__all__ = [
    "as_frame",
    "as_nullable_int",
    "Cells",
    "binary_counts",
    "cast_columns",
    "column_names",
    "count_cells",
    "distinct",
    "indicator",
    "levels_of",
    "max_rows_per",
    "moment_cells",
    "moments",
    "replace_columns",
    "require_columns",
    "schedule_of",
    "small_to_pandas",
    "to_pandas",
]


def as_frame(data: object, name: str = "data") -> nw.DataFrame | nw.LazyFrame:
    """``data`` as a narwhals frame, eager or lazy as it came; raises for non-frames."""
    if isinstance(data, nw.DataFrame | nw.LazyFrame):
        return data
    try:
        return nw.from_native(data)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a data frame (pandas, Polars, DuckDB, Spark), but a "
            f"{type(data).__name__} was passed; build a DataFrame from it first."
        ) from None


def to_pandas(frame: object, name: str = "data") -> pd.DataFrame:
    """A pandas frame from a pandas, Polars, DuckDB or Spark frame (collects lazy ones).

    For the small, aggregated or patient-level tables that statistics need; the large
    derivations stay in their engine (see :mod:`analysis.endpoints`). A pandas frame is
    returned as it is (not copied).

    Examples
    --------
    >>> import polars as pl
    >>> to_pandas(pl.DataFrame({"n": [1, 2]}).lazy())["n"].tolist()
    [1, 2]
    >>> to_pandas([1, 2])
    Traceback (most recent call last):
    ...
    TypeError: `data` must be a data frame (pandas, Polars, DuckDB, Spark), but a list was ...
    """
    if isinstance(frame, pd.DataFrame):
        return frame
    return small_to_pandas(as_frame(frame, name))


def column_names(frame: nw.DataFrame | nw.LazyFrame) -> list[str]:
    """The column names, without collecting a lazy frame."""
    return list(frame.collect_schema().names())


def require_columns(frame: nw.DataFrame | nw.LazyFrame, required: Iterable[str], table: str):
    """Raise ``ValueError`` naming ``table`` when ``frame`` lacks any of ``required``."""
    names = column_names(frame)
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(
            f"Table `{table}` is missing the column(s) {missing}; it has {names}. "
            "Pass the output of the function that makes this table, or rename the columns."
        )


def small_to_pandas(frame: nw.DataFrame | nw.LazyFrame) -> pd.DataFrame:
    """Collect an aggregated (small) frame as pandas."""
    if isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    return frame.to_pandas()


_BINARY_MESSAGE = (
    "Column `{outcome}` must hold True/False (or 1/0) with NA where undefined, but {bad} "
    "row(s) hold other values. Pass a boolean outcome column of derive_endpoints, such as "
    "'response' or 'remission'."
)


def indicator(values: pd.Series, outcome: str) -> pd.Series:
    """A pandas outcome column as float 1.0 / 0.0 / NaN; raises unless boolean or 0/1."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("Float64").astype(float)
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = values.notna() & ~numbers.isin([0.0, 1.0])
    if bad.any():
        raise ValueError(_BINARY_MESSAGE.format(outcome=outcome, bad=int(bad.sum())))
    return numbers


def _outcome_value(frame, outcome: str) -> tuple[Any, bool]:
    """The outcome as 1.0 / 0.0 / null (an engine expression), and whether its values
    must be checked (in the aggregate query, see :func:`_check_binary`).

    The outcome's type comes from the frame's schema (no scan): a boolean column needs
    no check; a numeric one is checked in the same aggregate query as its counts.
    """
    dtype = frame.collect_schema()[outcome]
    value = nw.col(outcome).cast(nw.Float64)
    if dtype == nw.Boolean:
        return value, False
    if dtype.is_numeric():
        return value, True
    # text or another type: any value present is not an outcome (a rare, refused input)
    present: Any = small_to_pandas(frame.select(nw.col(outcome).count().alias("n"))).iloc[0, 0]
    if pd.notna(present) and int(present) > 0:
        raise ValueError(_BINARY_MESSAGE.format(outcome=outcome, bad=int(present)))
    return value, False


def _check_binary(out: pd.DataFrame, outcome: str) -> None:
    if _BAD + outcome in out.columns:
        bad = int(pd.to_numeric(out[_BAD + outcome]).fillna(0).sum())
        if bad > 0:
            raise ValueError(_BINARY_MESSAGE.format(outcome=outcome, bad=bad))


_Y = "__outcome__"
_BAD = "__not_binary__"
_DAY = "__first_target_day__"


def _nullable_keys(out: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Missing keys as NaN/None the way pandas' own groupby(dropna=False) returns them."""
    for key in keys:
        if out[key].dtype == object:
            out[key] = out[key].where(out[key].notna(), None)  # type: ignore[call-overload]  # pandas-stubs: where() takes no None
    return out


@dataclasses.dataclass(frozen=True)
class Cells:
    """The answer of one aggregate query: statistics per cell, and the visit order asked
    in the same query.

    Attributes
    ----------
    table : DataFrame
        ``keys...`` then the statistics, sorted by ``keys``.
    schedule : DataFrame
        What :func:`analysis.endpoints.sort_cells` ranks visits from: on pandas the frame
        itself (an ordered Categorical visit keeps its order), elsewhere the ``visit`` of
        each cell and its earliest ``target_day`` when the frame has one (empty unless
        ``visit`` is a key).
    """

    table: pd.DataFrame
    schedule: pd.DataFrame


def _aggregate(
    frame: nw.DataFrame | nw.LazyFrame,
    keys: Sequence[str],
    values: Mapping[str, Any],
    aggregates: list,
) -> Cells:
    """One ``group_by(keys).agg(...)`` of ``values`` (name -> expression), with the
    earliest target day per cell folded in (the visit order, no query of its own)."""
    native = nw.to_native(frame)
    pandas = isinstance(native, pd.DataFrame)
    names = column_names(frame)
    extra: dict[str, Any] = {}
    if not pandas and "visit" in keys and "target_day" in names:
        extra["target_day"] = nw.col("target_day")
        aggregates = [*aggregates, nw.col("target_day").cast(nw.Float64).min().alias(_DAY)]
    # derived columns first, so the aggregations are simple ones every engine runs natively
    work = frame.select(
        *[nw.col(k) for k in keys],
        *[expr.alias(name) for name, expr in values.items()],
        *[expr.alias(name) for name, expr in extra.items() if name not in keys],
    )
    if keys:
        out = small_to_pandas(work.group_by(*keys, drop_null_keys=False).agg(*aggregates))
    else:
        out = small_to_pandas(work.select(*aggregates))
    if pandas:
        schedule = native
    elif _DAY in out.columns:
        schedule = pd.DataFrame({"visit": out["visit"], "target_day": out.pop(_DAY)})
    elif "visit" in keys:  # no target days: the visits themselves (sort_cells' later rules)
        schedule = pd.DataFrame({"visit": out["visit"]})
    else:
        schedule = pd.DataFrame()
    out = _nullable_keys(out, keys)
    if keys:
        out = out.sort_values(list(keys), kind="stable").reset_index(drop=True)
    return Cells(out, schedule)


def count_cells(
    frame: nw.DataFrame | nw.LazyFrame, outcomes: Sequence[str], keys: Sequence[str]
) -> Cells:
    """``keys..., n_<outcome>, events_<outcome>`` per cell for every outcome, in one query.

    ``n`` counts the non-missing outcomes, ``events`` those that are 1. Cells where an
    outcome is missing for everyone are kept with n = 0, as in a pandas
    ``groupby(..., dropna=False)``; rows with a missing key form their own cell. Raises
    ``ValueError`` when an outcome holds values other than True/False (1/0) and missing.
    """
    native = nw.to_native(frame)
    pandas = isinstance(native, pd.DataFrame)
    values: dict[str, Any] = {}
    aggregates: list = []
    added: dict[str, Any] = {}
    for k, outcome in enumerate(outcomes):
        name = f"{_Y}{k}"
        check = False
        if pandas:  # the pandas rules of `indicator`, object columns too
            added[name] = indicator(native[outcome], outcome).to_numpy()
            values[name] = nw.col(name)
        else:
            values[name], check = _outcome_value(frame, outcome)
        y = nw.col(name)
        aggregates += [y.count().alias(f"n_{outcome}"), y.sum().alias(f"events_{outcome}")]
        if check:  # values other than 0 and 1, counted in the same query
            bad = ((y != 0.0) & (y != 1.0)).cast(nw.Int64).sum()
            aggregates.append(bad.alias(_BAD + outcome))
    work = nw.from_native(replace_columns(native, added)) if pandas else frame
    cells = _aggregate(work, keys, values, aggregates)
    out = cells.table
    for outcome in outcomes:
        _check_binary(out, outcome)
        out[f"n_{outcome}"] = pd.to_numeric(out[f"n_{outcome}"]).fillna(0).astype(int)
        events = pd.to_numeric(out[f"events_{outcome}"]).fillna(0)
        out[f"events_{outcome}"] = events.round().astype(int)
    stats = [c for o in outcomes for c in (f"n_{o}", f"events_{o}")]
    return dataclasses.replace(cells, table=out[[*keys, *stats]])


def binary_counts(
    frame: nw.DataFrame | nw.LazyFrame, outcome: str, keys: Sequence[str]
) -> pd.DataFrame:
    """``keys..., n, events`` per cell: n the non-missing outcomes, events those that are 1.

    :func:`count_cells` for one outcome.
    """
    table = count_cells(frame, [outcome], keys).table
    return table.rename(columns={f"n_{outcome}": "n", f"events_{outcome}": "events"})


def moment_cells(
    frame: nw.DataFrame | nw.LazyFrame,
    columns: Sequence[str],
    keys: Sequence[str],
) -> Cells:
    """``keys..., n, mean_<c>, sd_<c>`` per cell over the rows where every column is present.

    ``sd`` has the n - 1 denominator (NaN for n < 2). Only complete rows count, so paired
    columns (baseline and score) describe the same patients; a cell without a complete row
    is kept with n = 0.
    """
    # values of incomplete rows become null (not filtered out), so every cell stays, with n=0
    complete = nw.all_horizontal(*[~nw.col(c).is_null() for c in columns], ignore_nulls=False)
    values = {c: nw.when(complete).then(nw.col(c).cast(nw.Float64)) for c in columns}
    aggregates = [nw.col(columns[0]).count().alias("n")]
    for c in columns:
        aggregates += [nw.col(c).mean().alias(f"mean_{c}"), nw.col(c).std(ddof=1).alias(f"sd_{c}")]
    cells = _aggregate(frame, keys, values, aggregates)
    out = cells.table
    out["n"] = pd.to_numeric(out["n"]).fillna(0).astype(int)
    for c in columns:
        for stat in ("mean", "sd"):
            out[f"{stat}_{c}"] = pd.to_numeric(out[f"{stat}_{c}"]).astype(float)
        out.loc[out["n"] < 2, f"sd_{c}"] = float("nan")
    return cells


def moments(
    frame: nw.DataFrame | nw.LazyFrame, columns: Sequence[str], keys: Sequence[str]
) -> pd.DataFrame:
    """``keys..., n, mean_<c>, sd_<c>`` per cell: :func:`moment_cells` without the extras."""
    return moment_cells(frame, columns, keys).table


def levels_of(frame: nw.DataFrame | nw.LazyFrame, cells: pd.DataFrame, column: str) -> list:
    """The sorted non-missing values of ``column``, read from an aggregated table of
    ``frame`` grouped by it (which holds every value); on pandas :func:`distinct` (an
    ordered Categorical keeps its category order)."""
    if isinstance(nw.to_native(frame), pd.DataFrame):
        return distinct(frame, column)
    return sorted(cells[column].dropna().unique().tolist())


def distinct(frame: nw.DataFrame | nw.LazyFrame, column: str) -> list:
    """The sorted non-missing values of ``column`` (an ordered pandas Categorical keeps
    its category order)."""
    native = nw.to_native(frame)
    if isinstance(native, pd.DataFrame):
        values = native[column]
        if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.ordered:
            return [c for c in values.cat.categories if (values == c).any()]
    levels = small_to_pandas(frame.select(nw.col(column)).unique())[column]
    return sorted(levels.dropna().tolist())


def max_rows_per(frame: nw.DataFrame | nw.LazyFrame, keys: Sequence[str]) -> int:
    """The largest number of rows sharing one combination of ``keys`` (0 when empty)."""
    counts = small_to_pandas(
        frame.group_by(*keys, drop_null_keys=False)
        .agg(nw.len().alias("rows"))
        .select(nw.col("rows").max())
    )
    value = counts.iloc[0, 0] if len(counts) else 0
    return 0 if pd.isna(value) else int(value)  # type: ignore[arg-type]  # a count cell


def schedule_of(frame: nw.DataFrame | nw.LazyFrame) -> pd.DataFrame:
    """A small stand-in for ``frame`` that :func:`analysis.endpoints.sort_cells` can rank
    visits from: ``visit`` and its ``target_day`` (the earliest per visit).

    A pandas frame is returned as it is (sort_cells also honours a Categorical visit).
    """
    native = nw.to_native(frame)
    if isinstance(native, pd.DataFrame):
        return native
    names = column_names(frame)
    if "visit" not in names or "target_day" not in names:
        return pd.DataFrame({c: [] for c in names if c == "visit"})
    return small_to_pandas(frame.group_by("visit").agg(nw.col("target_day").cast(nw.Float64).min()))


# --------------------------------------------------------------------------- columns


#: Up to this many rows :func:`replace_columns` sets the columns on a shallow copy.
SMALL_FRAME_ROWS = 10_000


def replace_columns(native: pd.DataFrame, columns: Mapping[str, object]) -> pd.DataFrame:
    """``native`` with ``columns`` (name -> array or Series on its index) set, nothing copied.

    A new frame that shares every column: setting a column on a pandas frame copies the
    values set (``df[c] = v``), and ``assign`` first copies every column of the frame (the
    strings of ``patient_id`` included). Columns not in ``native`` are appended in order.

    Up to :data:`SMALL_FRAME_ROWS` rows the columns are set on a shallow copy of
    ``native`` instead of concatenating every column again (five times faster on the
    small frames of a clinic or a test; a column replaced inside a block of several
    copies that block, which is cheap at that size). ``native`` is never changed.
    """
    if len(native) <= SMALL_FRAME_ROWS:
        out = native.copy(deep=False)
        for name, values in columns.items():
            column: Any = values.array if isinstance(values, pd.Series) else values
            out[name] = column
        return out

    def series(name, values):
        values = values.array if isinstance(values, pd.Series) else values
        return pd.Series(values, index=native.index, name=name, copy=False)

    parts = [
        series(name, columns[name]) if name in columns else native.iloc[:, i]
        for i, name in enumerate(native.columns)
    ]
    parts += [series(name, v) for name, v in columns.items() if name not in native.columns]
    out = pd.concat(parts, axis=1, copy=False)
    out.columns = pd.Index([s.name for s in parts], name=native.columns.name)
    return out


def as_nullable_int(series: pd.Series, column: str, table: str = "assessments") -> pd.Series:
    """``series`` as nullable ``Int64``, with a clear error for non-integer values."""
    numpy = isinstance(series.dtype, np.dtype)
    if numpy and series.dtype.kind == "i":  # plain integers: nothing missing, nothing to check
        values = series.to_numpy(dtype=np.int64, copy=True)
        array = pd.arrays.IntegerArray(values, np.zeros(len(values), dtype=bool))
        return pd.Series(array, index=series.index, name=column)
    if numpy and series.dtype.kind == "f":  # floats (NaN missing): one copy, filled in place
        values = series.to_numpy(dtype=float, copy=True)
    else:
        try:
            values = pd.to_numeric(series).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            values = np.array([np.nan])
    missing = np.isnan(values)
    values[missing] = 0.0
    if len(values) != len(series):
        _not_whole(column, table)
    check_whole(values, column, table)
    array = pd.arrays.IntegerArray(values.astype(np.int64), missing)
    return pd.Series(array, index=series.index, name=column)


#: Rows per block of the pandas fast paths' elementwise array arithmetic (:func:`blocks`).
BLOCK_ROWS = 1 << 16


def blocks(n: int) -> list[slice]:
    """Slices of ``range(n)`` of :data:`BLOCK_ROWS` rows each (one empty slice if ``n`` is 0).

    The pandas fast paths compute elementwise arithmetic on large columns block by block,
    into arrays allocated once: each temporary of a whole-column expression is a fresh
    allocation of the column's size, which the operating system hands over page by page
    (on the benchmark's virtual machine about a third of a large derivation's time went to
    those page faults), whereas a block's temporaries (half a megabyte) stay in the CPU's
    cache and in memory the allocator reuses. Small frames are one block.
    """
    step = BLOCK_ROWS
    return [slice(i, min(i + step, n)) for i in range(0, max(n, 1), step)]


def filled(n: int, value: object) -> np.ndarray:
    """An object array of ``n`` references to ``value``.

    ``np.full(n, text, dtype=object)`` makes a new string object for every element (numpy
    converts the text through its fixed-width string type): on 16 million rows 0.84 s and
    about 1 GB of new memory, against 0.08 s and the array itself here.
    """
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def check_whole(values: np.ndarray, column: str, table: str = "assessments") -> None:
    """Raise :func:`as_nullable_int`'s error unless the floats ``values`` (NaN: missing)
    are whole numbers (checked block by block, :func:`blocks`)."""
    for block in blocks(len(values)):
        part = values[block]
        with np.errstate(invalid="ignore"):  # NaN where missing or infinite
            fraction = part - np.trunc(part)
        if (np.abs(fraction) > 0).any() or np.isinf(part).any():
            _not_whole(column, table)


def _not_whole(column: str, table: str) -> None:
    raise ValueError(
        f"Column `{column}` of the {table} must hold whole numbers (or be empty), "
        "but some values are not integers. Check the data with "
        f"analysis.validate(df, {table!r})."
    )


_PANDAS_NULLABLE = {
    nw.Int64: "Int64",
    nw.Float64: "Float64",
    nw.Boolean: "boolean",
    nw.String: "string",
}


def cast_columns(frame, dtypes: Mapping[str, type]):
    """Cast columns of a narwhals frame; pandas gets the nullable dtypes (``Int64`` ...).

    narwhals casts a numpy-backed pandas column to a numpy dtype, which cannot hold a
    missing integer or boolean; pandas is therefore cast natively.
    """
    if frame.implementation.is_pandas():
        native = frame.to_native()
        wanted = {c: _PANDAS_NULLABLE[d] for c, d in dtypes.items()}  # type: ignore[index]  # narwhals dtype classes
        wanted = {c: d for c, d in wanted.items() if native[c].dtype != d}
        if wanted:  # column by column: ``astype`` with a mapping copies every other column
            native = replace_columns(
                native, {column: native[column].astype(dtype) for column, dtype in wanted.items()}
            )
        return nw.from_native(native, eager_only=True)
    return frame.with_columns(nw.col(c).cast(d) for c, d in dtypes.items())


def typed_select(frame, columns: Mapping[str, nw.Expr], dtypes: Mapping[str, type]):
    """``frame.select`` of ``columns`` (name -> expression), then cast as
    :func:`cast_columns` casts ``dtypes``; on a lazy engine in one projection.

    DuckDB (2.0) binds the whole query again at each step of the relational API, so a
    select, then a cast, costs two binds of an ever longer query; the casts are folded
    into the select there. pandas selects, then casts natively (nullable dtypes).
    """
    if frame.implementation.is_pandas():
        return cast_columns(frame.select(**columns), dtypes)
    return frame.select(
        expr.cast(dtypes[name]).alias(name) if name in dtypes else expr.alias(name)
        for name, expr in columns.items()
    )
