"""Endpoints: visit windows, baseline, change from baseline, outcome flags, imputation.

From raw GAD-7 and HAM-A assessments to one row per patient x instrument x visit with
every outcome flag the literature uses (``derive_endpoints``), and the fate of every input
row (``endpoint_accounting``). The semantics are those of docs/design.md, "Endpoint semantics";
every clinical constant comes from :mod:`analysis.instruments`.

Design
------
The derivation is written once, as narwhals expressions (window functions ``over``,
joins, concatenation), so that it runs unchanged on pandas, Polars, DuckDB and Spark; the
result is of the same kind as the input (lazy for lazy backends). Each assessment is
assigned to the window that contains its study day; within a window one assessment is
chosen by the smallest *key*:

- baseline window: ``window_high - study_day`` (the latest assessment);
- other windows: ``2 x |study_day - target_day| + (study_day > target_day)`` (the closest
  to the target day; of two equally close, the earlier day has the smaller key).

Keys are distinct within a window because ``(patient_id, instrument, study_day)`` is
unique, so exactly one assessment per patient and window is chosen.

The steps an engine may run in a cheaper form are gathered behind one interface,
:class:`_Steps` (the generic narwhals form, used by every engine and the single source of
truth: scoring, choosing, the endpoint rows, their outcomes, the accounting reasons) and
its subclasses :class:`_PandasSteps` (same results, computed with numpy on integer
patient codes), :class:`_PolarsSteps` (Polars: the rows sorted before their outcomes),
:class:`_SQLSteps` (DuckDB and Spark: the choice in a window as a rank, which
those engines plan better) and :class:`_DuckDBSteps` (DuckDB: the choice and the baseline
of the derivation with SQL window functions that share one sort); nothing else in the
module tests which engine it runs on.
``with _generic_steps():`` forces the generic form on pandas too, which is how
``tests/test_endpoints_fast_path.py`` holds the two forms equal on random cohorts. The
backend tests (``tests/test_endpoints_backends.py``) require identical results on every
engine, and ``benchmarks/derive.py`` times each one against a hand-written DuckDB SQL
query of the same rules.

Choices where docs/design.md is silent (a clinical-trial statistician's reading):

- Endpoint rows are the post-baseline visits. The baseline visit itself has no row: its
  score is the ``baseline`` column of every row (change at baseline is 0 by definition and
  would inflate every rate's denominator).
- Only scorable assessments compete in a window: an unscorable assessment closer to the
  target does not hide a scorable one.
- The Jacobson-Truax threshold uses the chosen baseline assessments of the data passed in
  (one per patient).
- Outcome comparisons are done in integers where possible: response is
  ``100 x change <= -response_reduction x baseline`` rather than a comparison of the
  rounded percentage, so that a reduction of exactly 50% is a response.
- A row without a ``patient_id`` belongs to no patient: it has no baseline, so it gives
  no endpoint row and :func:`endpoint_accounting` gives it ``no_baseline`` (validation
  refuses such rows; this is what an unvalidated frame gets, alike on every engine).
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import narwhals as nw
import numpy as np
import pandas as pd

from analysis._frames import blocks, filled, typed_select
from analysis._utils import check_choice
from analysis.cohort import Cohort
from analysis.instruments import (
    INSTRUMENTS,
    Criteria,
    Instrument,
    _score_arrays,
    answered_expr,
    cast_columns,
    get_instrument,
    item_sum_expr,
    prepare_assessments,
    replace_columns,
    score_expr,
    severity_expr,
)

if TYPE_CHECKING:
    from narwhals.typing import IntoFrame, IntoFrameT

#: What ``schedule`` accepts: visits, a schedule table, or None for the default.
_ScheduleArg: TypeAlias = "Sequence[Visit] | pd.DataFrame | None"
#: What ``criteria`` accepts: Criteria, a mapping of fields to override, or None.
_CriteriaArg: TypeAlias = "Criteria | Mapping[str, Any] | None"

__all__ = [
    "BASELINE",
    "DEFAULT_SCHEDULE",
    "ENDPOINT_COLUMNS",
    "IMPUTE",
    "OUTCOMES",
    "REASONS",
    "Visit",
    "derive_endpoints",
    "endpoint_accounting",
    "make_schedule",
    "visit_order",
]

#: Name of the baseline visit in a schedule.
BASELINE = "baseline"

#: Imputation methods of :func:`derive_endpoints`.
IMPUTE = ("observed", "locf", "bocf")

#: Reasons given by :func:`endpoint_accounting`, in order of priority.
REASONS = (
    "unscorable",
    "outside_schedule",
    "no_baseline",
    "superseded_in_window",
    "baseline",
    "visit",
)

#: The outcome flags of :func:`derive_endpoints` (nullable booleans: NA where undefined).
OUTCOMES = (
    "response",
    "partial_response",
    "remission",
    "reliable_improvement",
    "reliable_deterioration",
    "recovery",
    "reliable_recovery",
)

#: Columns of :func:`derive_endpoints`, in order.
ENDPOINT_COLUMNS = (
    "patient_id",
    "instrument",
    "visit",
    "target_day",
    "study_day",
    "baseline",
    "score",
    "change",
    "pct_change",
    *OUTCOMES,
    "severity",
    "baseline_severity",
    "imputed",
)

_DTYPES = {
    "visit": nw.String,
    "target_day": nw.Int64,
    "study_day": nw.Int64,
    "baseline": nw.Int64,
    "score": nw.Int64,
    "change": nw.Int64,
    "pct_change": nw.Float64,
    **dict.fromkeys((*OUTCOMES, "imputed"), nw.Boolean),
    "severity": nw.String,
    "baseline_severity": nw.String,
}

#: Types of the columns :func:`endpoint_accounting` adds.
_ACCOUNT_DTYPES = {"score": nw.Int64, "visit": nw.String, "reason": nw.String}

_REQUIRED = ("patient_id", "instrument", "study_day")


@dataclass(frozen=True)
class Visit:
    """One visit of a schedule: a target study day and an inclusive window around it.

    Parameters
    ----------
    name : str
        Visit name (``"baseline"`` for the baseline visit).
    target_day : int
        Study day the visit aims at.
    window_low, window_high : int
        Inclusive window of study days counted as this visit.
    instruments : tuple of str
        Instruments scheduled at this visit (an assessment of another instrument in this
        window is outside the schedule).

    Examples
    --------
    >>> Visit("week4", 28, 21, 41).contains(41)
    True
    """

    name: str
    target_day: int
    window_low: int
    window_high: int
    instruments: tuple[str, ...] = tuple(INSTRUMENTS)

    @overload
    def contains(self, day: int) -> bool: ...
    @overload
    def contains(self, day: np.ndarray) -> np.ndarray: ...
    @overload
    def contains(self, day: nw.Expr) -> nw.Expr: ...
    def contains(self, day):
        """Whether ``day`` lies in the window: a bool for a day, elementwise for a NumPy
        array of days or a narwhals expression (null where the day is missing)."""
        return (day >= self.window_low) & (day <= self.window_high)


#: The default visit schedule (docs/design.md, "Endpoint semantics"): the HAM-A is not
#: scheduled at day 1.
DEFAULT_SCHEDULE: tuple[Visit, ...] = (
    Visit(BASELINE, 0, -14, 0),
    Visit("day1", 1, 1, 3, ("GAD7",)),
    Visit("week1", 7, 4, 10),
    Visit("week2", 14, 11, 20),
    Visit("week4", 28, 21, 41),
    Visit("week8", 56, 42, 69),
    Visit("week12", 84, 70, 111),
)


def make_schedule(schedule=None) -> tuple[Visit, ...]:
    """Normalise and check a visit schedule.

    Parameters
    ----------
    schedule : sequence of Visit, pandas DataFrame or None
        ``None`` is :data:`DEFAULT_SCHEDULE`. A DataFrame has the columns ``visit``,
        ``target_day``, ``window_low``, ``window_high`` and optionally ``instruments``
        (codes separated by commas or spaces, or a list; empty means every instrument).

    Returns
    -------
    tuple of Visit
        Sorted by target day.

    Raises
    ------
    ValueError
        No visit named ``"baseline"``, duplicated names, a target outside its window,
        overlapping windows (both are named), a visit before or overlapping the baseline
        window, or an unknown instrument.

    Examples
    --------
    >>> import pandas as pd
    >>> sched = pd.DataFrame({"visit": ["baseline", "day7"], "target_day": [0, 7],
    ...                       "window_low": [-7, 1], "window_high": [0, 13]})
    >>> [v.name for v in make_schedule(sched)]
    ['baseline', 'day7']
    >>> make_schedule([Visit("baseline", 0, -7, 0), Visit("a", 7, 0, 9)])
    Traceback (most recent call last):
    ...
    ValueError: Visit windows must not overlap, but 'baseline' (-7..0) and 'a' (0..9) do. ...
    """
    if schedule is None:
        return DEFAULT_SCHEDULE
    if isinstance(schedule, pd.DataFrame):
        schedule = _visits_from_frame(schedule)
    visits = tuple(sorted(schedule, key=lambda v: v.target_day))
    names = [v.name for v in visits]
    if BASELINE not in names:
        raise ValueError(
            f"The schedule needs a visit named {BASELINE!r} (the baseline window), but it has "
            f"{names}. Rename the baseline visit to {BASELINE!r}."
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"Visit names must be unique, but {duplicated} appear more than once.")
    for v in visits:
        if not v.window_low <= v.target_day <= v.window_high:
            raise ValueError(
                f"Visit {v.name!r} has its target day {v.target_day} outside its window "
                f"{v.window_low}..{v.window_high}; widen the window or move the target."
            )
        for code in v.instruments:
            check_choice("instruments", code, list(INSTRUMENTS))
    by_low = sorted(visits, key=lambda v: v.window_low)
    for a, b in zip(by_low, by_low[1:], strict=False):
        if b.window_low <= a.window_high:
            raise ValueError(
                f"Visit windows must not overlap, but {a.name!r} ({a.window_low}.."
                f"{a.window_high}) and {b.name!r} ({b.window_low}..{b.window_high}) do. "
                "Each study day may belong to one visit only; shrink one of the windows."
            )
    if visits[0].name != BASELINE:
        raise ValueError(
            f"Visit {visits[0].name!r} lies before the baseline window; every visit after "
            "baseline must have a window after the baseline window."
        )
    return visits


def _visits_from_frame(frame: pd.DataFrame) -> list[Visit]:
    required = ["visit", "target_day", "window_low", "window_high"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"A schedule frame needs the columns {required} (and optionally `instruments`), "
            f"but it lacks {missing}."
        )
    visits = []
    for row in frame.to_dict("records"):
        codes = row.get("instruments")
        if isinstance(codes, str):
            codes = tuple(codes.replace(",", " ").split())
        elif codes is None or (not isinstance(codes, Iterable) and pd.isna(codes)):
            codes = ()
        visits.append(
            Visit(
                str(row["visit"]),
                int(row["target_day"]),
                int(row["window_low"]),
                int(row["window_high"]),
                tuple(codes) or tuple(INSTRUMENTS),
            )
        )
    return visits


def _instrument_visits(schedule, instrument: Instrument) -> tuple[Visit, ...]:
    visits = tuple(v for v in make_schedule(schedule) if instrument.name in v.instruments)
    if not visits or visits[0].name != BASELINE:
        raise ValueError(
            f"The schedule has no baseline visit for {instrument.name}; add "
            f"{instrument.name!r} to the instruments of the {BASELINE!r} visit."
        )
    return visits


def _resolve_criteria(instrument: Instrument, criteria) -> Criteria:
    if criteria is None:
        return instrument.criteria
    # Only the fields the caller named replace the instrument's own defaults.
    if isinstance(criteria, Criteria):
        return criteria.applied_to(instrument.criteria)
    if isinstance(criteria, Mapping):
        return Criteria(**criteria).applied_to(instrument.criteria)
    raise TypeError(
        "`criteria` must be a Criteria, a mapping of Criteria fields to override "
        f"(e.g. {{'response_reduction': 40}}) or None, but {type(criteria).__name__} was passed."
    )


# --- Reading the input ----------------------------------------------------------------------


def _assessments(data, instrument: Instrument | None = None):
    """The assessments of ``data`` (a Cohort or a frame) as a prepared narwhals frame.

    With ``instrument``, only its rows and the columns its scoring needs.
    """
    native = data.assessments if isinstance(data, Cohort) else nw.to_native(data, pass_through=True)
    try:
        columns = nw.from_native(native).columns
    except TypeError:
        raise TypeError(
            "`data` must be a Cohort or an assessments frame (pandas, Polars, DuckDB or "
            f"Spark), but {type(data).__name__} was passed."
        ) from None
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ValueError(
            f"Table `assessments` is missing the column(s) {missing}; it has {list(columns)}. "
            "Pass the assessments table of the cohort (see data_schema/assessments)."
        )
    if instrument is None:
        return prepare_assessments(native)
    needed = ["total", *instrument.item_columns]
    frame = _select(nw.from_native(native), *_REQUIRED, *(c for c in needed if c in columns))
    frame = frame.filter(_of_instrument(instrument))
    # The pandas fast path scores floats: float item columns need no Int64 round trip.
    return prepare_assessments(frame.to_native(), needed, float_scores=_pandas_fast_path(frame))


def _of_instrument(instrument: Instrument) -> nw.Expr:
    """The rows of ``instrument``: ``is_in`` rather than ``==``, which pandas evaluates on a
    column of strings by comparing each one in Python, where ``is_in`` hashes (2.5x
    faster); the SQL engines read both as the same equality."""
    return nw.col("instrument").is_in([instrument.name])


class _PatientCodes:
    """pandas: ``patient_id`` as dense integer codes in the order of the ids, and back.

    Grouping, joining and sorting on a column of Python strings is what pandas does
    slowest (every ``over``, join and the final sort hashes or compares the strings
    again); the derivation only needs ``patient_id`` as a key. Codes from one sorted
    factorisation group, join and sort exactly as the ids do (ids with a missing value
    are kept as they are: a join never matches a missing key, a code would), and :meth:`restore` puts the input's own
    values back (same dtype) once, at the end. Other backends keep their ids: their
    engines group and sort strings well, and a global ranking would be a window over the
    whole table.
    """

    def __init__(self, frame):
        self.ids = None
        native = frame.to_native()
        if not frame.implementation.is_pandas():
            self.frame = frame
            return
        ids = native["patient_id"]
        try:
            codes, n_ids = _sorted_codes(ids)
        except TypeError:  # ids of mixed types that do not sort: keep them
            self.frame = frame
            return
        if len(codes) and codes.min() < 0:
            # A missing id: joins never match it on other engines (nor in the generic
            # steps), where its code would; keep the ids.
            self.frame = frame
            return
        codes = codes.astype(np.int64, copy=False)
        # A row holding each code (shifted by one for the missing id, code -1).
        self.position = np.zeros(n_ids + 1, dtype=np.intp)
        for block in blocks(len(codes)):
            self.position[codes[block] + 1] = np.arange(block.start, block.stop)
        self.ids = ids
        self.frame = nw.from_native(_with_column(native, "patient_id", codes), eager_only=True)

    def restore(self, frame):
        """``frame`` with the codes in ``patient_id`` replaced by the ids."""
        if self.ids is None:
            return frame
        native = frame.to_native()
        codes = native["patient_id"].to_numpy()
        rows = np.empty(len(codes), dtype=np.intp)
        for block in blocks(len(codes)):
            rows[block] = self.position[codes[block] + 1]
        ids = self.ids.take(rows).to_numpy()
        ids = pd.Series(ids, index=native.index, dtype=self.ids.dtype)
        return nw.from_native(_with_column(native, "patient_id", ids), eager_only=True)


def _sorted_codes(ids: pd.Series) -> tuple[np.ndarray, int]:
    """The codes of ``pd.factorize(ids, sort=True)`` and the number of distinct ids.

    Ids of Python objects are first numbered by identity (:func:`_identity_codes`), and
    only the distinct objects are hashed by value: the 9.6 million ids of the benchmark's
    1,000,000 patients take 0.6-0.9 s, against 3.7 s hashed, measured side by side. Then
    (:func:`_sorted_value_codes`) the distinct values, found in input order, are sorted
    and the codes renumbered through the inverse of that order, where pandas' sorted
    factorisation renumbers them through a second hash table. Where an id is missing or
    the distinct ids do not sort by ``<`` (mixed types), pandas' own sorted factorisation
    gives the codes, so they are always its.
    """
    found = _identity_codes(ids.to_numpy()) if ids.dtype == object else None
    if found is None:
        return _sorted_value_codes(ids)
    identity, objects = found
    codes, n_ids = _sorted_value_codes(pd.Series(objects, dtype=object, copy=False))
    return codes[identity], n_ids


def _sorted_value_codes(ids: pd.Series) -> tuple[np.ndarray, int]:
    """:func:`_sorted_codes` by hashing the values."""
    codes, uniques = pd.factorize(ids, sort=False)
    order = None
    if not (len(codes) and codes.min() < 0):
        try:
            order = np.asarray(uniques.argsort(kind="stable"))
        except TypeError:
            pass
    if order is None:
        codes, uniques = pd.factorize(ids, sort=True)
        return codes, len(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], len(uniques)


#: The address bits below a block of :func:`_identity_codes` (1 MiB: pymalloc's arenas).
_BLOCK_BITS = 20


def _identity_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Dense codes of the distinct objects of an object array, by identity, and those objects.

    A column of ids read from a file holds few string objects, each repeated: pandas' CSV
    reader and Arrow's conversion to pandas give equal cells one shared object. Hashing
    the strings (:func:`pandas.factorize`) probes a table of one entry per patient for
    every row, at random: 3.7 s for the 9.6 million rows of a million patients, most of
    it waiting on memory. The objects' addresses (the array's buffer of pointers) number
    them without hashing: the address's block (1 MiB) is factorised (a table of a few
    hundred entries, in cache) and its offset in the block, divided by the spacing common
    to all addresses, indexes a table of every possible slot; the slots in use, in order,
    are the codes (about 0.5 s). Equal strings held by different objects get different
    codes here; the caller factorises the distinct objects (one per patient, at best)
    by value.

    Returns ``None`` when ``values`` is not an object array or when the addresses spread
    over so many blocks that the slot table would outgrow four times the number of rows
    (and a million); the caller then hashes the values.
    """
    n = len(values)
    if n == 0 or values.dtype != object:
        return None
    values = np.ascontiguousarray(values)
    # A view of the buffer of n pointers (PyObject *), alive as long as ``values``.
    address = np.ctypeslib.as_array((ctypes.c_size_t * n).from_address(values.ctypes.data))
    # (Array arithmetic on the n addresses goes block by block: see `blocks`.)
    spacing = 0
    for part in blocks(n):
        spacing |= int(np.bitwise_or.reduce(address[part] - address[0]))
    # The spacing's trailing zeros (all rows one object: any shift numbers it 0).
    shift = min((spacing & -spacing).bit_length() - 1, _BLOCK_BITS) if spacing else _BLOCK_BITS
    block_codes, memory_blocks = pd.factorize(address >> _BLOCK_BITS, sort=False)
    per_block = 1 << (_BLOCK_BITS - shift)
    span = len(memory_blocks) * per_block
    if span > 4 * n + (1 << 20):  # at most 5 bytes a slot: used, then its code
        return None
    slot = block_codes.astype(np.int64, copy=False)
    slot *= per_block
    for part in blocks(n):
        slot[part] += ((address[part] & ((1 << _BLOCK_BITS) - 1)) >> shift).astype(np.int64)
    used = np.zeros(span, dtype=bool)
    used[slot] = True
    # The code of each slot in use: the number of slots in use before it.
    table = np.cumsum(used, dtype=np.int32 if span < 2**31 else np.int64)
    del used
    codes = np.empty(n, dtype=table.dtype)
    one_of_each = np.empty(int(table[-1]), dtype=np.intp)
    for part in blocks(n):
        codes[part] = table[slot[part]] - 1
        one_of_each[codes[part]] = np.arange(part.start, part.stop)
    return codes, values[one_of_each]


def _with_column(native: pd.DataFrame, name: str, values) -> pd.DataFrame:
    """``native`` with the column ``name`` replaced, the other columns not copied."""
    return replace_columns(native, {name: values})


def _input_columns(data):
    native = data.assessments if isinstance(data, Cohort) else data
    return nw.from_native(native).columns


def _select(frame, *names: str):
    """``frame.select(*names)``, through column expressions: narwhals selects names on
    pandas with ``df[names]``, which copies every column, whereas expressions reuse them."""
    return frame.select(*(nw.col(name) for name in names))


def _to_native(frame):
    native = frame.to_native()
    if isinstance(native, pd.DataFrame):  # a fresh 0..n-1 index, without copying the data
        native = native.copy(deep=False)
        native.index = pd.RangeIndex(len(native))
    return native


def _lazy_polars(frame):
    """An eager Polars frame as a LazyFrame, and whether it was one (collect at the end).

    The derivation is a chain of a dozen steps; eager Polars runs each as a query of its
    own, a LazyFrame lets Polars plan the chain as one query (on 1,000,000 patients
    8.1 s eager, 4.8 s lazy). The result is collected back to an eager frame.
    """
    if isinstance(frame, nw.DataFrame) and frame.implementation.is_polars():
        return frame.lazy(), True
    return frame, False


def _collect(frame):
    return frame.collect() if isinstance(frame, nw.LazyFrame) else frame


# --- Engine-specific steps: the generic form and the pandas fast path ------------------------

_FAST_PATH: ContextVar[bool] = ContextVar("analysis_endpoints_fast_path", default=True)


@contextmanager
def _generic_steps() -> Iterator[None]:
    """Run the derivation on pandas through the generic narwhals steps (for tests).

    Inside the block :func:`_steps_for` gives :class:`_Steps` for every engine, so that
    the pandas fast path can be checked against the algorithm it replaces.
    """
    token = _FAST_PATH.set(False)
    try:
        yield
    finally:
        _FAST_PATH.reset(token)


class _Steps:
    """The steps of the derivation an engine may run in a cheaper form, in narwhals.

    This is the generic form, run by every engine (pandas, Polars, DuckDB, Spark) and the
    definition of the results: :func:`derive_endpoints` and :func:`endpoint_accounting`
    go through these methods for every engine-dependent step, and a faster form
    (:class:`_PandasSteps`) must give identical results.

    - :meth:`encode` / :meth:`restore` / :meth:`restore_rows`: the representation of
      ``patient_id`` while the derivation runs (the ids themselves here);
    - :meth:`score`: ``n_items_answered``, ``target_day`` (of the window) and ``score``;
    - :meth:`choose`: ``_chosen`` (the assessment with the smallest key in its patient's
      window) and ``baseline`` (the score of the patient's chosen baseline assessment; none
      for a row without a ``patient_id``), on every row or on the chosen ones only;
    - :meth:`rows`: the endpoint rows (observed, then imputed), eager ones sorted by
      ``patient_id, target_day`` (:meth:`sort`);
    - :meth:`outcomes`: the output columns of :func:`derive_endpoints` from those rows;
    - :meth:`baseline_sums`: the sufficient statistics of the chosen baselines for the
      Jacobson-Truax threshold;
    - :meth:`account`: the ``visit`` and ``reason`` of :func:`endpoint_accounting`.
    """

    def encode(self, frame):
        """``frame`` with ``patient_id`` in the form the steps work on."""
        return frame

    def restore(self, frame):
        """``frame`` with the input's own ``patient_id`` values back."""
        return frame

    def restore_rows(self, frame):
        """:meth:`restore` for a frame of input rows numbered by ``row`` (the accounting)."""
        return self.restore(frame)

    def score(self, frame, instrument: Instrument, visits: Sequence[Visit], keep=None):
        """Add ``n_items_answered``, ``target_day`` (of the window holding ``study_day``,
        null outside the schedule) and ``score`` (:func:`~analysis.instruments.score_expr`)
        to assessments of ``instrument``; with ``keep``, only the columns ``keep``,
        ``target_day`` and ``score`` (in one projection with the score: a lazy engine
        binds each step of the query again, see :func:`_annotate`)."""
        frame = frame.with_columns(
            n_items_answered=answered_expr(instrument),
            _item_sum=item_sum_expr(instrument),
            target_day=_target_day(visits),
        )
        score = score_expr(instrument, nw.col("n_items_answered"), nw.col("_item_sum"))
        if keep is None:
            return frame.with_columns(score=score)
        return frame.select(*(nw.col(c) for c in keep), nw.col("target_day"), score.alias("score"))

    def choose(self, frame, visits: Sequence[Visit], every_row: bool = True, baseline: bool = True):
        """Add ``_chosen`` and (``baseline``) ``baseline`` to scored assessments
        (``patient_id``, ``study_day``, ``target_day``, ``score``).

        With ``every_row`` every row is kept and flagged (the accounting); without it, the
        rows not chosen may be left out, as the derivation reads only the chosen ones: the
        unscorable and unscheduled rows and those without a ``patient_id`` are dropped
        before the window, and the rows kept are those of :meth:`first_in_window`.
        """
        base = visits[0]
        day, target, score = nw.col("study_day"), nw.col("target_day"), nw.col("score")
        key = (
            nw.when(target == base.target_day)
            .then(base.window_high - day)
            .otherwise(2 * (day - target).abs() + (day > target).cast(nw.Int64))
        )
        # A row without a patient_id belongs to no patient: it is never chosen, so it gives
        # no baseline, no endpoint row and nothing to the Jacobson-Truax SD.
        candidate = ~score.is_null() & ~target.is_null() & ~nw.col("patient_id").is_null()
        # A join of the baselines instead of this window was about as fast on DuckDB at
        # 1,000,000 patients but held 1.6x the memory (the shared input computed twice).
        own_baseline = target == base.target_day
        if every_row:
            frame = frame.with_columns(_key=nw.when(candidate).then(key))
            frame = frame.with_columns(
                _chosen=self.first_in_window(nw.col("_key")).fill_null(False)
            )
            own_baseline = nw.col("_chosen") & own_baseline
            if not baseline:
                return frame
            return frame.with_columns(
                baseline=nw.when(own_baseline).then(score).max().over("patient_id")
            )
        # Every row left is chosen: ``_chosen`` and the baseline come in one step (each
        # step of a lazy query is bound again by DuckDB, see :func:`_annotate`).
        frame = frame.filter(candidate).filter(self.first_in_window(key))
        added = {"_chosen": nw.lit(True)}
        if baseline:
            added["baseline"] = nw.when(own_baseline).then(score).max().over("patient_id")
        return frame.with_columns(**added)

    def baseline_sums(self, base, instrument: Instrument, items: bool) -> dict[str, Any]:
        """Sufficient statistics of the chosen baselines ``base`` for :func:`_jacobson_truax`:
        ``n``, ``s``, ``ss`` (count, sum and sum of squares of the scores) and, with
        ``items``, ``nc`` (the baselines with every item answered) and ``<column>_s``,
        ``<column>_ss`` of their scores and items. Sums over no value may be ``None``."""
        score = nw.col("score").cast(nw.Float64)
        complete = nw.col("n_items_answered") == instrument.n_items
        aggs = {"n": score.count(), "s": score.sum(), "ss": (score * score).sum()}
        if items:
            aggs["nc"] = complete.cast(nw.Int64).sum()
            for c in ["score", *instrument.item_columns]:
                x = nw.when(complete).then(nw.col(c).cast(nw.Float64))
                aggs[f"{c}_s"], aggs[f"{c}_ss"] = x.sum(), (x * x).sum()
        return {k: v[0] for k, v in _collect(base.select(**aggs)).to_dict(as_series=False).items()}

    def first_in_window(self, key: nw.Expr) -> nw.Expr:
        """Whether a row's ``key`` is the smallest in its patient's window (ties all
        are); null where the row has no key."""
        return key == key.min().over("patient_id", "target_day")

    def rows(self, frame, visits: Sequence[Visit], impute: str):
        """The endpoint rows of a chosen frame (:meth:`choose`): ``patient_id,
        target_day, study_day, baseline, score, imputed``, the chosen post-baseline
        assessments of patients with a baseline and (``impute``) the imputed visits;
        eager rows sorted by ``patient_id, target_day``."""
        if impute == "observed":
            rows = _observed(frame, visits[0], imputed=True)
        else:
            rows = _impute(frame, _observed(frame, visits[0]), visits, impute)
        # Eager rows are sorted now, on few columns, rather than every output column at the end.
        return self.sort(rows, visits)

    #: Whether a lazy query of the engine keeps the order of its rows through elementwise
    #: steps (Polars does, a SQL engine does not), so that its rows may be sorted before the
    #: outcome columns are added rather than after.
    keeps_order = False

    def sort(self, rows, visits: Sequence[Visit]):
        """``rows`` (one per patient and window) sorted by ``patient_id, target_day`` when
        eager or :attr:`keeps_order`; other lazy ones unchanged (sorted at the very end, as
        the engine keeps no order)."""
        if isinstance(rows, nw.DataFrame) or self.keeps_order:
            return rows.sort("patient_id", "target_day")
        return rows

    def outcomes(
        self,
        rows,
        instrument: Instrument,
        visits: Sequence[Visit],
        criteria: Criteria,
        threshold: float,
        bands,
    ):
        """The columns :data:`ENDPOINT_COLUMNS` (typed) from :meth:`rows`."""
        rows = rows.with_columns(change=nw.col("score") - nw.col("baseline"))
        added = {
            "instrument": nw.lit(instrument.name),
            "visit": _visit_name(visits),
            **_outcomes(criteria, threshold, bands),
        }
        return typed_select(rows, {c: added.get(c, nw.col(c)) for c in ENDPOINT_COLUMNS}, _DTYPES)

    def account(self, annotated, visits: Sequence[Visit], columns: Sequence[str]):
        """``columns`` (typed) of an annotated frame (:func:`_annotate`) with ``visit``
        and ``reason`` added (:func:`endpoint_accounting`)."""
        annotated = annotated.with_columns(
            _is_baseline_window=nw.col("target_day") == visits[0].target_day
        )
        added = {"visit": _visit_name(visits), "reason": _reason()}
        return typed_select(
            annotated, {c: added.get(c, nw.col(c)) for c in columns}, _ACCOUNT_DTYPES
        )


class _PandasSteps(_Steps):
    """pandas: the steps of :class:`_Steps` with the same results, with numpy.

    narwhals evaluates an expression on pandas node by node, each node a pass over a
    column with pandas' fixed overhead, which dominates on the small frames of a clinic
    or a test; here each step is a few array operations:

    - ``patient_id`` is carried as dense integer codes in the order of the ids
      (:class:`_PatientCodes`), which group, join and sort as the ids do;
    - :meth:`score`: the scoring rules on arrays (``analysis.instruments._score_arrays``,
      shared with :func:`~analysis.instruments.score_items`) and the window of each day
      read from a table of the schedule's days;
    - :meth:`choose`: the window minimum of the key and the patient's baseline are
      direct-address reductions on ``patient code x visit`` (``np.minimum.at`` into an
      array with a slot per patient and visit, then a scatter of the baseline scores)
      instead of two sorting group transforms;
    - :meth:`rows`: the imputation grid is an array with a slot per patient and
      post-baseline visit (the observed visits scattered into it, locf a running maximum
      of the last observed slot), read off in slot order, which is the output order
      (so no sort);
    - :meth:`baseline_sums`: the Jacobson-Truax sums on arrays (about 60 narwhals
      expressions for the HAM-A, three quarters of a small derivation's time);
    - :meth:`outcomes` and :meth:`account`: the flags, bands and reasons on arrays.

    Without integer codes (ids of mixed types that do not sort, or a missing id) the
    steps that need them (:meth:`choose`, :meth:`rows`) fall back to the generic ones.
    """

    def __init__(self):
        self.codes: _PatientCodes | None = None

    def encode(self, frame):
        self.codes = _PatientCodes(frame)
        # The encoded frame is handed over, not kept: the steps object lives until the
        # end of the derivation, and holding the assessments there kept them (0.7 GB at
        # 1,000,000 patients) alive through every later step.
        encoded, self.codes.frame = self.codes.frame, None
        return encoded

    def restore(self, frame):
        return frame if self.codes is None else self.codes.restore(frame)

    def restore_rows(self, frame):
        if self.codes is None or self.codes.ids is None:
            return frame
        native = frame.to_native()
        ids = self.codes.ids.to_numpy()[native["row"].to_numpy(dtype=np.intp)]
        ids = pd.Series(ids, index=native.index, dtype=self.codes.ids.dtype)
        return nw.from_native(_with_column(native, "patient_id", ids), eager_only=True)

    @property
    def _coded(self) -> bool:
        return self.codes is not None and self.codes.ids is not None

    def _slots(self, native: pd.DataFrame, visits: Sequence[Visit]):
        """The slot ``(code + 1) x n_visits + visit`` of each row (rows whose
        ``target_day`` is missing get a slot of their patient, to be masked), and the
        number of slots."""
        assert self.codes is not None  # without codes the callers take the generic steps
        first = visits[0].target_day
        position = np.zeros(visits[-1].target_day - first + 1, dtype=np.int64)
        for i, v in enumerate(visits):
            position[v.target_day - first] = i
        target = native["target_day"].array
        code = native["patient_id"].to_numpy()
        slots = np.empty(len(native), dtype=np.int64)
        for block in blocks(len(native)):  # block by block: no column-sized temporaries
            day = target[block].to_numpy(dtype=np.int64, na_value=first)
            # A missing id is -1 (code + 1 is 0).
            slots[block] = (code[block].astype(np.int64) + 1) * len(visits) + position[day - first]
        return slots, len(self.codes.position) * len(visits)

    def score(self, frame, instrument: Instrument, visits: Sequence[Visit], keep=None):
        native = frame.to_native()
        items = [_floats(native[c]) for c in instrument.item_columns]
        answered, value, scored, _ = _score_arrays(instrument, items, _floats(native["total"]))
        target, known = _window_target(visits, native["study_day"])
        added = {
            "n_items_answered": answered,
            "target_day": pd.arrays.IntegerArray(target, ~known),
            "score": pd.arrays.IntegerArray(value, ~scored),
        }
        scored_frame = nw.from_native(replace_columns(native, added), eager_only=True)
        return scored_frame if keep is None else _select(scored_frame, *keep, "target_day", "score")

    def baseline_sums(self, base, instrument: Instrument, items: bool) -> dict[str, Any]:
        # Scores and items are whole numbers: their sums (and sums of squares) are exact
        # in float64 in any order, so these equal the generic steps' to the last bit.
        native = base.to_native()
        score = _floats(native["score"])
        score = score[~np.isnan(score)]
        sums: dict[str, Any] = {
            "n": len(score),
            "s": float(score.sum()),
            "ss": float((score * score).sum()),
        }
        if items:
            answered = native["n_items_answered"].to_numpy(dtype=np.int64, na_value=-1)
            complete = answered == instrument.n_items
            sums["nc"] = int(complete.sum())
            for c in ["score", *instrument.item_columns]:
                x = _floats(native[c])[complete]
                x = x[~np.isnan(x)]
                sums[f"{c}_s"], sums[f"{c}_ss"] = float(x.sum()), float((x * x).sum())
        return sums

    def choose(self, frame, visits: Sequence[Visit], every_row: bool = True, baseline: bool = True):
        if not self._coded:
            return super().choose(frame, visits, every_row, baseline)
        assert self.codes is not None
        native = frame.to_native()
        base = visits[0]
        n = len(native)
        target, day = native["target_day"].array, native["study_day"].array
        valid = (native["score"].notna() & native["target_day"].notna()).to_numpy()
        is_base = np.empty(n, dtype=bool)
        key = np.empty(n, dtype=np.int64)
        never = np.iinfo(np.int64).max  # the key of rows without a score or a window
        for block in blocks(n):  # block by block: no column-sized temporaries
            t = target[block].to_numpy(dtype=np.int64, na_value=base.target_day)
            d = day[block].to_numpy(dtype=np.int64, na_value=0)
            is_base[block] = at_base = t == base.target_day
            close = np.where(at_base, base.window_high - d, 2 * np.abs(d - t) + (d > t))
            key[block] = np.where(valid[block], close, never)
        slots, n_slots = self._slots(native, visits)
        lowest = np.full(n_slots, never)
        np.minimum.at(lowest, slots, key)
        chosen = np.empty(n, dtype=bool)
        for block in blocks(n):
            chosen[block] = valid[block] & (key[block] == lowest[slots[block]])
        del key, lowest
        # The patient's baseline: the largest score of its chosen baseline rows (one, but
        # for assessments tied on the same day), as the generic steps' maximum.
        at_base = np.flatnonzero(chosen & is_base)
        patients = len(self.codes.position)
        scores = np.full(patients, np.iinfo(np.int64).min)
        has = np.zeros(patients, dtype=bool)
        patient = slots[at_base] // len(visits)
        np.maximum.at(scores, patient, native["score"].array[at_base].to_numpy(dtype=np.int64))
        has[patient] = True
        values = np.empty(n, dtype=np.int64)
        unknown = np.empty(n, dtype=bool)
        for block in blocks(n):
            patient = slots[block] // len(visits)
            values[block], unknown[block] = scores[patient], ~has[patient]
        baseline = pd.arrays.IntegerArray(values, unknown)
        out = replace_columns(native, {"_chosen": chosen, "baseline": baseline})
        return nw.from_native(out, eager_only=True)

    def rows(self, frame, visits: Sequence[Visit], impute: str):
        if not self._coded:
            return super().rows(frame, visits, impute)
        native = frame.to_native()
        base, n_visits = visits[0], len(visits)
        code = native["patient_id"].to_numpy(dtype=np.int64)
        chosen = native["_chosen"].to_numpy(dtype=bool, na_value=False)
        observed = chosen & native["baseline"].notna().to_numpy()
        target = native["target_day"].array
        for block in blocks(len(native)):
            days = target[block].to_numpy(dtype=np.int64, na_value=base.target_day)
            observed[block] &= days != base.target_day  # post-baseline visits only
        slots, _ = self._slots(native, visits)
        if impute == "observed" or n_visits == 1:
            take = np.flatnonzero(observed)
            take = take[np.argsort(slots[take], kind="stable")]  # one row per slot
            del slots, observed
            columns = {
                "patient_id": code[take],
                "target_day": _gather(native["target_day"], take),
                "study_day": pd.arrays.IntegerArray(
                    _gather(native["study_day"], take), np.zeros(len(take), dtype=bool)
                ),
                "baseline": _gather(native["baseline"], take),
                "score": _gather(native["score"], take),
                "imputed": np.zeros(len(take), dtype=bool),
            }
            return nw.from_native(_frame_of(columns, len(take)), eager_only=True)
        target = target.to_numpy(dtype=np.int64, na_value=base.target_day)
        score = native["score"].to_numpy(dtype=np.int64, na_value=0)
        day = native["study_day"].to_numpy(dtype=np.int64, na_value=0)
        # The grid: a slot per patient with a baseline (in code order) and post visit.
        # Two assessments tied on the baseline day (unvalidated data) are two chosen
        # rows of one patient, with the same (largest) baseline: one grid each patient.
        at_base = np.flatnonzero(chosen & (target == base.target_day))
        patients, first = np.unique(code[at_base], return_index=True)
        baselines = _gather(native["baseline"], at_base[first])
        n_post = n_visits - 1
        index = np.full(int(code.max(initial=-1)) + 1, -1, dtype=np.int64)
        index[patients] = np.arange(len(patients))
        grid = np.flatnonzero(observed)
        grid_slot = index[code[grid]] * n_post + (slots[grid] % n_visits - 1)
        size = len(patients) * n_post
        seen = np.zeros(size, dtype=bool)
        seen[grid_slot] = True
        carried_baseline = np.repeat(baselines, n_post)
        if impute == "locf":
            # The latest observed visit at or before each visit of the patient; of two
            # assessments tied on that visit's day, the larger score (as the generic
            # steps' maximum).
            value = np.full(size, np.iinfo(np.int64).min)
            np.maximum.at(value, grid_slot, score[grid])
            last = np.where(seen, np.arange(size), -1).reshape(len(patients), n_post)
            last = np.maximum.accumulate(last, axis=1).ravel()
            filled = value[np.maximum(last, 0)]
            missing = np.flatnonzero(~seen & (last >= 0))
        else:  # bocf
            filled = carried_baseline
            missing = np.flatnonzero(~seen)
        # The rows: every observed one (both of a tied visit, as impute="observed" gives
        # them), then one per missing visit, put in slot order (observed rows of one slot
        # in their input order).
        slot = np.concatenate([grid_slot, missing])
        order = np.argsort(slot, kind="stable")
        n_seen = len(grid)
        posts = np.array([v.target_day for v in visits[1:]], dtype=np.int64)

        def rows_of(observed_values, imputed_values):
            return np.concatenate([observed_values, imputed_values])[order]

        imputed = rows_of(np.zeros(n_seen, dtype=bool), np.ones(len(missing), dtype=bool))
        columns = {
            "patient_id": rows_of(code[grid], patients[missing // n_post]),
            "target_day": rows_of(target[grid], posts[missing % n_post]),
            "study_day": pd.arrays.IntegerArray(
                rows_of(day[grid], np.zeros(len(missing), dtype=np.int64)), imputed.copy()
            ),
            "baseline": rows_of(carried_baseline[grid_slot], carried_baseline[missing]),
            "score": rows_of(score[grid], filled[missing]),
            "imputed": imputed,
        }
        return nw.from_native(_frame_of(columns, len(slot)), eager_only=True)

    def outcomes(
        self,
        rows,
        instrument: Instrument,
        visits: Sequence[Visit],
        criteria: Criteria,
        threshold: float,
        bands,
    ):
        native = rows.to_native()
        n = len(native)
        score, no_score = _ints(native["score"])
        baseline, no_baseline = _ints(native["baseline"])
        target, no_target = _ints(native["target_day"])
        change, no_change = np.empty(n, dtype=np.int64), np.empty(n, dtype=bool)
        pct, no_pct = np.empty(n, dtype=np.float64), np.empty(n, dtype=bool)
        # Each flag is a nullable boolean: its values, and NA where undefined or a term is
        # missing (as the expressions' ``when``).
        flags = {name: (np.empty(n, dtype=bool), np.empty(n, dtype=bool)) for name in OUTCOMES}
        case = criteria.caseness_cutoff
        for block in blocks(n):  # block by block: no column-sized temporaries
            now, base = score[block], baseline[block]
            changed, unknown = now - base, no_score[block] | no_baseline[block]
            change[block], no_change[block] = changed, unknown
            hundred = 100 * changed
            pct[block] = np.divide(hundred, base, out=np.zeros(len(base)), where=base != 0)
            no_pct[block] = (base == 0) | unknown
            positive = base > 0
            response = -criteria.response_reduction * base
            partial = -criteria.partial_response_reduction * base
            remission = criteria.remission_cutoff
            values = [
                ("response", hundred <= response, positive),
                ("partial_response", (hundred > response) & (hundred <= partial), positive),
                ("remission", now <= remission, base > remission),
                ("reliable_improvement", -changed >= threshold, True),
                ("reliable_deterioration", changed >= threshold, True),
            ]
            if case is None:
                values += [(name, now < 0, False) for name in ("recovery", "reliable_recovery")]
            else:
                values += [
                    ("recovery", now < case, base >= case),
                    ("reliable_recovery", (now < case) & (-changed >= threshold), base >= case),
                ]
            for name, value, defined in values:
                flags[name][0][block] = value
                flags[name][1][block] = ~(defined & ~unknown)
        columns: dict[str, object] = {
            "patient_id": native["patient_id"],
            "instrument": filled(n, instrument.name),
            "visit": _visit_labels(visits, target, no_target),
            "target_day": pd.arrays.IntegerArray(target, no_target),
            "study_day": native["study_day"],
            "baseline": pd.arrays.IntegerArray(baseline, no_baseline),
            "score": pd.arrays.IntegerArray(score, no_score),
            "change": pd.arrays.IntegerArray(change, no_change),
            "pct_change": pd.arrays.FloatingArray(pct, no_pct),
            **{name: pd.arrays.BooleanArray(*flags[name]) for name in OUTCOMES},
            "severity": _bands(bands, score, no_score),
            "baseline_severity": _bands(bands, baseline, no_baseline),
            "imputed": native["imputed"],
        }
        out = _frame_of({c: columns[c] for c in ENDPOINT_COLUMNS}, native.index)
        return cast_columns(nw.from_native(out, eager_only=True), _DTYPES)

    def account(self, annotated, visits: Sequence[Visit], columns: Sequence[str]):
        native = annotated.to_native()
        target, no_target = _ints(native["target_day"])
        visit = _visit_labels(visits, target, no_target)
        reason = filled(len(native), "visit")
        chosen = native["_chosen"].to_numpy(dtype=bool, na_value=False)
        # The first reason that applies wins: assigned from the last to the first.
        cases = [
            (native["score"].isna().to_numpy(), "unscorable"),
            (no_target, "outside_schedule"),
            (native["baseline"].isna().to_numpy(), "no_baseline"),
            (~chosen, "superseded_in_window"),
            (~no_target & (target == visits[0].target_day), "baseline"),
        ]
        for condition, label in reversed(cases):
            reason[condition] = label
        reason = pd.arrays.StringArray(reason)  # the cast to ``string`` would copy it
        out = replace_columns(native, {"visit": visit, "reason": reason})[list(columns)]
        return cast_columns(nw.from_native(out, eager_only=True), _ACCOUNT_DTYPES)


def _frame_of(columns: Mapping[str, object], index: pd.Index | int) -> pd.DataFrame:
    """A pandas frame of ``columns`` (arrays or Series on ``index``), none of them copied.

    ``pd.DataFrame(dict)`` copies the columns of one dtype into one block: on 10 million
    rows that is about half a gigabyte more at the derivation's peak.
    """
    index = pd.RangeIndex(index) if isinstance(index, int) else index
    return replace_columns(pd.DataFrame(index=index), columns)


def _gather(series: pd.Series, take: np.ndarray) -> np.ndarray:
    """The int64 values of an integer column at the positions ``take`` (none missing),
    gathered block by block: no int64 copy of the whole column on the way."""
    values = series.array
    out = np.empty(len(take), dtype=np.int64)
    for block in blocks(len(take)):
        out[block] = values.take(take[block]).to_numpy(dtype=np.int64)
    return out


def _floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="float64", na_value=np.nan)


def _ints(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A (nullable) integer column as int64 values (0 where missing) and its missing mask."""
    missing = series.isna().to_numpy()
    return series.to_numpy(dtype=np.int64, na_value=0), missing


def _visit_labels(
    visits: Sequence[Visit], target: np.ndarray, missing: np.ndarray
) -> pd.arrays.StringArray:
    """The visit name of each target day (NA where missing or not a visit's day):
    :func:`_visit_name` on arrays, as a ``string`` array (built directly: the cast of an
    object column to ``string`` copies it)."""
    names = {v.target_day: v.name for v in visits}
    days = np.array(sorted(names), dtype=np.int64)
    labels = np.array([names[d] for d in days.tolist()] + [pd.NA], dtype=object)
    out = np.empty(len(target), dtype=object)
    for block in blocks(len(target)):  # block by block: no column-sized temporaries
        part = target[block]
        at = np.minimum(np.searchsorted(days, part), len(days) - 1)
        found = ~missing[block] & (days[at] == part) if len(days) else np.zeros(len(part), bool)
        out[block] = labels[np.where(found, at, len(days))]
    return pd.arrays.StringArray(out)


def _bands(bands, values: np.ndarray, missing: np.ndarray) -> pd.arrays.StringArray:
    """The band label of each value (NA where missing): ``bands.classify``, as a
    ``string`` array (as :func:`_visit_labels`)."""
    scores = values.astype(float)
    scores[missing] = np.nan
    return pd.arrays.StringArray(bands._label_array(scores, pd.NA))


def _window_target(visits: Sequence[Visit], study_day: pd.Series):
    """The target day of the window holding each study day, and whether one does
    (:func:`_target_day` through a table of the schedule's days)."""
    low = min(v.window_low for v in visits)
    high = max(v.window_high for v in visits)
    table = np.zeros(high - low + 1, dtype=np.int64)
    covered = np.zeros(high - low + 1, dtype=bool)
    for v in visits:
        table[v.window_low - low : v.window_high - low + 1] = v.target_day
        covered[v.window_low - low : v.window_high - low + 1] = True
    days = study_day.array
    target = np.empty(len(days), dtype=np.int64)
    known = np.empty(len(days), dtype=bool)
    for block in blocks(len(days)):  # block by block: no column-sized temporaries
        part = days[block]
        day = part.to_numpy(dtype=np.int64, na_value=low - 1)  # a missing day: no window
        at = np.clip(day, low, high) - low
        known[block] = inside = ~part.isna() & (day >= low) & (day <= high) & covered[at]
        target[block] = np.where(inside, table[at], 0)
    return target, known


class _PolarsSteps(_Steps):
    """Polars: the generic steps, the endpoint rows sorted before their outcome columns
    are added.

    A Polars query keeps the order of its rows through elementwise steps (:attr:`keeps_order`),
    so the rows are sorted on their six columns rather than on the twenty output columns
    at the end: at 100,000 patients the first GAD-7 derivation of a process grew it by
    about 225 MB instead of 290 MB, at 1,000,000 patients about 1.4 GB instead of 2.0 GB,
    at the same speed (``docs/performance.md``).

    A sort of the assessments instead of the two windows of :meth:`_Steps.choose` (the
    window's first key and the patient's first score carried forward) took a further 20%
    less time but held more memory at once (the sort's keys), so the windows stay.
    """

    keeps_order = True


class _SQLSteps(_Steps):
    """SQL engines (DuckDB, Spark): the first row of a window as a ``rank() = 1`` filter.

    The engine plans it as a top-1 per window instead of a window minimum compared with
    every row: DuckDB at 1,000,000 patients takes about 12% less time for the GAD-7
    derivation. Polars takes the other way round (the rank 1.6x slower), so the
    comparison stays the generic form. Both keep the rows with the smallest key (ties
    alike, ``rank("min")``).
    """

    def first_in_window(self, key: nw.Expr) -> nw.Expr:
        return key.rank("min").over("patient_id", "target_day") == 1


class _DuckDBSteps(_SQLSteps):
    """DuckDB: the derivation's :meth:`score`, :meth:`choose`, :meth:`baseline_sums` and
    :meth:`outcomes` written in SQL on the relation itself (no named view), with the
    generic results and column types.

    Written in narwhals, the choice and the baseline are two windows on different
    partitions (``patient_id, target_day`` for the rank, ``patient_id`` for the
    baseline), and with the final ``ORDER BY`` DuckDB sorts the rows three times. Here
    every window is partitioned by ``patient_id`` alone and ordered by ``target_day``
    then the key:

    - a row is the first of its window when its rank by ``(target_day, key)`` equals its
      rank by ``target_day`` alone (the rank of its window's first row; ties alike, as
      ``rank("min")``);
    - the baseline is the first value of the patient's rows in that order when that row
      lies in the baseline window, which comes first in every schedule
      (:func:`make_schedule`); ordered by the score too, from the highest, so that the
      baseline of tied keys is their largest score, as :meth:`_Steps.choose`'s maximum.

    The GAD-7 derivation took 0.67-0.83x the hand-written SQL at 1,000,000 patients
    instead of 0.91-0.96x, and 0.78-1.17x at 3,000,000 instead of 1.05-1.30x
    (``docs/performance.md``). The threshold's query takes the same choice without the
    baseline; the accounting (``every_row``) keeps the narwhals form.

    Scoring, the threshold's sums and the outcome columns are SQL of their own for the
    fixed cost: in narwhals they spent about 0.13 s per HAM-A derivation in Python and in
    DuckDB's binding of each step, at any size, a third of that derivation at 100,000
    patients (1.29-1.43x the hand-written SQL there, 0.76-0.89x in SQL; the GAD-7
    derivation binds 13 times instead of 16, the HAM-A 21 instead of 28).
    ``tests/test_endpoints_backends.py`` holds the results identical to pandas' and each
    SQL step equal to its generic form, types included.
    """

    def score(self, frame, instrument: Instrument, visits: Sequence[Visit], keep=None):
        """:meth:`_Steps.score` as one projection written in SQL, for the derivation (with
        ``keep``) on 64-bit integer or floating-point items and totals (narrower integers
        are widened before, by :func:`~analysis.instruments.prepare_assessments`).

        The same expressions as :func:`~analysis.instruments.score_expr` and
        :func:`_target_day`, types included: the narwhals form spends about 30 ms a call in
        Python and binding at any size (its floor division alone is a dozen nodes), a
        tenth of the HAM-A derivation at 100,000 patients. Other column types (decimals)
        and the accounting (without ``keep``) take the generic form.
        """
        native = frame.to_native()
        types = dict(zip(native.columns, (str(t) for t in native.types), strict=True))
        scored = [*instrument.item_columns, "total", "study_day"]
        if keep is None or not all(types.get(c) in ("BIGINT", "DOUBLE") for c in scored):
            return super().score(frame, instrument, visits, keep)
        items = [_sql_name(c) for c in instrument.item_columns]
        k, m = instrument.n_items, instrument.max_missing_items
        answered = f"{k} - (" + " + ".join(f"CAST({c} IS NULL AS BIGINT)" for c in items) + ")"
        item_sum = " + ".join(f"coalesce({c}, 0)" for c in items)
        day = "study_day"
        # The visits in the order of :func:`_by_visit` (the windows of a schedule do not
        # overlap, so no day is in two).
        target = (
            "CASE "
            + " ".join(
                f"WHEN {day} >= {v.window_low} AND {day} <= {v.window_high} "
                f"THEN 0 * {day} + {v.target_day}"
                for v in reversed(visits)
            )
            + " END"
        )
        # ``greatest(_n, 1)`` as ``safe_n`` in score_expr: no row divides by 0, whichever rows
        # DuckDB evaluates a branch of the CASE on.
        dividend, divisor = f"{2 * k} * _item_sum + greatest(_n, 1)", "2 * greatest(_n, 1)"
        if any(types[c] == "DOUBLE" for c in instrument.item_columns):
            prorated = f"floor(({dividend}) / ({divisor}))"
        else:  # DuckDB's ``//`` truncates integers towards zero: floor below zero
            prorated = (
                f"({dividend}) // ({divisor}) - CAST(({dividend}) % ({divisor}) <> 0 "
                f"AND ({dividend}) < 0 AS BIGINT)"
            )
        score = (
            f"CASE WHEN _n = {k} THEN _item_sum WHEN _n >= {k - m} AND _n > 0 THEN {prorated} "
            "ELSE total END"
        )
        names = {"n_items_answered": "_n AS n_items_answered"}
        kept = ", ".join(names.get(c, _sql_name(c)) for c in keep)
        inner = ", ".join(_sql_name(c) for c in dict.fromkeys([*keep, "total", day]) if c in types)
        scored_rows = native.project(
            f"{inner}, {answered} AS _n, {item_sum} AS _item_sum, {target} AS target_day"
        ).project(f"{kept}, target_day, {score} AS score")
        return nw.from_native(scored_rows)

    def choose(self, frame, visits: Sequence[Visit], every_row: bool = True, baseline: bool = True):
        if every_row:
            return super().choose(frame, visits, every_row, baseline)
        base = visits[0]
        columns = ", ".join(_sql_name(c) for c in frame.columns)
        day, target = "study_day", "target_day"
        key = (
            f"CASE WHEN {target} = {base.target_day} THEN {base.window_high} - {day} "
            f"ELSE 2 * abs({day} - {target}) + CAST({day} > {target} AS BIGINT) END"
        )
        by_target = f"PARTITION BY patient_id ORDER BY {target}"
        base_score = f"CASE WHEN {target} = {base.target_day} THEN score END"
        # The relation's own methods rather than SQL over a named view: a name could be
        # shadowed by a table of the caller's connection.
        first = f"rank() OVER ({by_target}, {key}) = rank() OVER ({by_target}) AS _chosen"
        if baseline:
            first += (
                f", first_value({base_score}) OVER ({by_target}, {key}, score DESC) AS baseline"
            )
        chosen = (
            frame.to_native()
            .filter(f"score IS NOT NULL AND {target} IS NOT NULL AND patient_id IS NOT NULL")
            .project(f"{columns}, {first}")
            .filter("_chosen")
        )
        return nw.from_native(chosen)

    def baseline_sums(self, base, instrument: Instrument, items: bool) -> dict[str, Any]:
        """:meth:`_Steps.baseline_sums` as one aggregate written in SQL."""
        aggs = {
            "n": "count(CAST(score AS DOUBLE))",
            "s": "sum(CAST(score AS DOUBLE))",
            "ss": "sum(CAST(score AS DOUBLE) * CAST(score AS DOUBLE))",
        }
        if items:
            complete = f"n_items_answered = {instrument.n_items}"
            aggs["nc"] = f"sum(CAST({complete} AS BIGINT))"
            for c in ["score", *instrument.item_columns]:
                x = f"CASE WHEN {complete} THEN CAST({_sql_name(c)} AS DOUBLE) END"
                aggs[f"{c}_s"], aggs[f"{c}_ss"] = f"sum({x})", f"sum({x} * {x})"
        sums = ", ".join(f"{v} AS {_sql_name(k)}" for k, v in aggs.items())
        (row,) = base.to_native().aggregate(sums).fetchall()
        return dict(zip(aggs, row, strict=True))

    def outcomes(
        self,
        rows,
        instrument: Instrument,
        visits: Sequence[Visit],
        criteria: Criteria,
        threshold: float,
        bands,
    ):
        """:meth:`_Steps.outcomes` written in SQL: the expressions of :func:`_outcomes`,
        :func:`_visit_name` and :func:`~analysis.instruments.severity_expr`, each cast as
        :func:`~analysis._frames.typed_select` casts, with the criteria as literals of the
        narwhals form's types (integers, or doubles). Criteria of other Python types take
        the generic form."""
        numbers = [
            criteria.response_reduction,
            criteria.partial_response_reduction,
            criteria.remission_cutoff,
            criteria.caseness_cutoff,
            threshold,
            *bands.lower,
        ]
        if not all(v is None or type(v) in (int, float) for v in numbers):
            return super().outcomes(rows, instrument, visits, criteria, threshold, bands)
        n = _sql_number

        def severity(x: str) -> str:
            whens = " ".join(
                f"WHEN {x} >= {n(low)} THEN {_sql_text(label)}"
                for low, label in reversed(
                    list(zip(bands.lower[1:], bands.labels[1:], strict=True))
                )
            )
            return f"CASE WHEN {x} IS NULL THEN NULL {whens} ELSE {_sql_text(bands.labels[0])} END"

        visit = (
            "CASE "
            + " ".join(
                f"WHEN target_day = {v.target_day} THEN {_sql_text(v.name)}"
                for v in reversed(visits)
            )
            + " END"
        )
        rr, pr = n(-criteria.response_reduction), n(-criteria.partial_response_reduction)
        rc, rt = n(criteria.remission_cutoff), n(threshold)
        added = {
            "instrument": _sql_text(instrument.name),
            "visit": visit,
            "pct_change": "CASE WHEN baseline <> 0 THEN 100 * change / baseline END",
            "response": f"CASE WHEN baseline > 0 THEN 100 * change <= baseline * {rr} END",
            "partial_response": (
                f"CASE WHEN baseline > 0 THEN 100 * change > baseline * {rr} "
                f"AND 100 * change <= baseline * {pr} END"
            ),
            "remission": f"CASE WHEN baseline > {rc} THEN score <= {rc} END",
            "reliable_improvement": f"-change >= {rt}",
            "reliable_deterioration": f"change >= {rt}",
            "severity": severity("score"),
            "baseline_severity": severity("baseline"),
        }
        case = criteria.caseness_cutoff
        if case is None:
            added["recovery"] = added["reliable_recovery"] = "CAST(NULL AS BOOLEAN)"
        else:
            added["recovery"] = f"CASE WHEN baseline >= {n(case)} THEN score < {n(case)} END"
            added["reliable_recovery"] = (
                f"CASE WHEN baseline >= {n(case)} THEN score < {n(case)} AND -change >= {rt} END"
            )
        types = {
            nw.Int64: "BIGINT",
            nw.Float64: "DOUBLE",
            nw.Boolean: "BOOLEAN",
            nw.String: "VARCHAR",
        }
        columns = []
        for c in ENDPOINT_COLUMNS:
            expr = added.get(c, _sql_name(c))
            if c in _DTYPES:
                expr = f"CAST({expr} AS {types[_DTYPES[c]]})"
            columns.append(f"{expr} AS {_sql_name(c)}")
        native = (
            rows.to_native().project("*, score - baseline AS change").project(", ".join(columns))
        )
        return nw.from_native(native)


def _sql_number(value: float | None) -> str:
    """``value`` as a SQL literal of the type narwhals gives a Python number: an integer,
    or a double (``inf`` included)."""
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _sql_text(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _sql_name(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _pandas_fast_path(frame) -> bool:
    """Whether ``frame``'s derivation takes :class:`_PandasSteps` (pandas, unless
    :func:`_generic_steps` is in force)."""
    return frame.implementation.is_pandas() and _FAST_PATH.get()


def _steps_for(frame) -> _Steps:
    """The form of the engine-dependent steps for ``frame``'s engine."""
    if _pandas_fast_path(frame):
        return _PandasSteps()
    if frame.implementation.is_polars():
        return _PolarsSteps()
    if frame.implementation.is_duckdb():
        return _DuckDBSteps()
    if frame.implementation.is_spark_like():
        return _SQLSteps()
    return _Steps()


# --- The derivation -------------------------------------------------------------------------


def _by_visit(visits: Sequence[Visit], condition, value) -> nw.Expr:
    """``value(v)`` on the rows where ``condition(v)`` holds, null elsewhere."""
    expr = nw.when(condition(visits[0])).then(value(visits[0]))
    for v in visits[1:]:
        expr = nw.when(condition(v)).then(value(v)).otherwise(expr)
    return expr


def _target_day(visits: Sequence[Visit]) -> nw.Expr:
    """Target day of the window holding ``study_day`` (null outside every window)."""
    day = nw.col("study_day")
    # ``0 * day + target`` rather than a literal keeps pandas in its nullable integer dtype.
    return _by_visit(
        visits,
        _in_window_expr,
        lambda v: 0 * day + v.target_day,
    )


def _in_window_expr(visit: Visit) -> nw.Expr:
    """Whether ``study_day`` lies in ``visit``'s window (null where the day is missing)."""
    return visit.contains(nw.col("study_day"))


def _in_window(frame, visit: Visit):
    """The rows of ``frame`` whose ``study_day`` lies in ``visit``'s window."""
    return frame.filter(_in_window_expr(visit))


def _visit_name(visits: Sequence[Visit]) -> nw.Expr:
    """Name of the visit of ``target_day``."""
    target = nw.col("target_day")
    return _by_visit(visits, lambda v: target == v.target_day, lambda v: nw.lit(v.name))


def _annotate(
    frame,
    instrument: Instrument,
    visits: Sequence[Visit],
    steps: _Steps,
    keep=None,
    *,
    filtered: bool = False,
    every_row: bool = True,
    baseline: bool = True,
):
    """Assessments of ``instrument`` with their score, window, choice and baseline.

    Adds ``n_items_answered``, ``score``, ``target_day`` (of the window, null outside the
    schedule), ``_chosen`` (the assessment that represents its window) and ``baseline``
    (the patient's baseline score, null without one). ``keep`` names the input columns to
    carry along (default all); fewer columns make the window functions cheaper.
    ``filtered`` says that ``frame`` holds only rows of ``instrument`` already; ``steps``
    is the engine's form of the steps (:class:`_Steps`). Without ``every_row`` the rows
    not chosen may be left out, and without ``baseline`` the ``baseline`` column may be
    (:meth:`_Steps.choose`).

    The steps are few on purpose: DuckDB (2.0) binds the whole query so far again at each
    step of its relational API (about 2 ms a step at 100,000 patients; the GAD-7
    derivation binds 13 times, with the HAM-A's threshold query 21), and Spark analyses
    the plan again at each step.
    """
    if not filtered:
        frame = frame.filter(_of_instrument(instrument))
    frame = steps.score(frame, instrument, visits, keep)
    return steps.choose(frame, visits, every_row, baseline)


def _reason() -> nw.Expr:
    score, target, baseline = nw.col("score"), nw.col("target_day"), nw.col("baseline")
    cases = [
        (score.is_null(), "unscorable"),
        (target.is_null(), "outside_schedule"),
        (baseline.is_null(), "no_baseline"),
        (~nw.col("_chosen"), "superseded_in_window"),
        (nw.col("_is_baseline_window"), "baseline"),
    ]
    expr = nw.lit("visit")
    for condition, reason in reversed(cases):
        expr = nw.when(condition).then(nw.lit(reason)).otherwise(expr)
    return expr


def _observed(frame, base: Visit, imputed: bool = False):
    """The chosen post-baseline assessments of patients with a baseline (and, with
    ``imputed``, the column ``imputed``: whether the score is missing)."""
    target = nw.col("target_day")
    columns = ["patient_id", "target_day", "study_day", "baseline", "score"]
    # Select before filtering, so that only the columns kept are gathered.
    observed = _select(frame, *columns, "_chosen").filter(
        nw.col("_chosen") & (target != base.target_day) & ~nw.col("baseline").is_null()
    )
    flag = {"imputed": nw.col("score").is_null()} if imputed else {}
    return observed.select(*(nw.col(c) for c in columns), **flag)


def _impute(frame, observed, visits: Sequence[Visit], method: str):
    """Every scheduled post-baseline visit of each patient with a baseline, imputed.

    ``locf`` carries the latest earlier observed visit forward (rows before the first
    observed visit stay empty and are dropped); ``bocf`` fills a missing visit with the
    baseline score.
    """
    base = visits[0]
    if len(visits) == 1:  # a schedule with a baseline only has nothing to impute
        return observed.with_columns(imputed=nw.col("score").is_null())
    patients = frame.filter(nw.col("_chosen") & (nw.col("target_day") == base.target_day))
    # One grid per patient: two assessments tied on the baseline day (unvalidated data)
    # are two chosen rows with the same (largest) baseline.
    patients = _select(patients, "patient_id", "baseline").unique()
    grid = nw.concat(
        [patients.with_columns(target_day=nw.lit(v.target_day, dtype=nw.Int64)) for v in visits[1:]]
    )
    # The observed target days take the type of ``study_day`` (float days give float
    # targets) and the grid's are integers: Polars joins keys of one type only.
    observed_rows = _select(observed, "patient_id", "target_day", "study_day", "score")
    observed_rows = observed_rows.with_columns(nw.col("target_day").cast(nw.Int64))
    grid = grid.join(observed_rows, on=["patient_id", "target_day"], how="left")
    if method == "locf":
        # The latest observed score at or before each visit, from one column per visit
        # (a patient-level table) rather than an ordered fill, which pandas lacks for
        # nullable columns.
        post = visits[1:]
        names = [f"_score_{i}" for i in range(len(post))]
        target = nw.col("target_day")
        wide = observed.with_columns(
            **{
                n: nw.when(target == v.target_day).then(nw.col("score"))
                for n, v in zip(names, post, strict=True)
            }
        )
        wide = wide.group_by("patient_id").agg(nw.col(n).max() for n in names)
        grid = grid.join(wide, on="patient_id", how="left")
        position = {v.target_day: i for i, v in enumerate(post)}
        carried = _by_visit(
            post,
            lambda v: target == v.target_day,
            lambda v: nw.coalesce(
                *(nw.col(n) for n in reversed(names[: position[v.target_day] + 1]))
            ),
        )
    else:
        carried = nw.col("baseline")
    score = nw.col("score")
    grid = grid.with_columns(imputed=score.is_null(), score=nw.coalesce(score, carried))
    return _select(
        grid.filter(~nw.col("score").is_null()),
        *("patient_id", "target_day", "study_day", "baseline", "score", "imputed"),
    )


def _jacobson_truax(
    frame, instrument: Instrument, criteria: Criteria, base_target: int, steps: _Steps
) -> float:
    """Jacobson-Truax threshold ``z x SD_baseline x sqrt(2 (1 - r))`` from the baselines.

    ``SD_baseline`` is the sample SD of the chosen baseline scores; ``r`` is
    ``criteria.reliability`` or Cronbach's alpha of the baselines with every item answered,
    ``k / (k - 1) x (1 - sum of item variances / variance of the totals)``. Only the
    sufficient statistics (counts, sums, sums of squares) leave the engine.
    """
    base = frame.filter(nw.col("_chosen") & (nw.col("target_day") == base_target))
    stats = steps.baseline_sums(base, instrument, items=criteria.reliability is None)

    def variance(n, s, ss):
        return (float(ss or 0) - float(s or 0) ** 2 / n) / (n - 1)

    if stats["n"] == 0:
        return math.inf  # no baseline, hence no endpoint row to flag
    if stats["n"] < 2:
        raise ValueError(
            f"The Jacobson-Truax reliable change of {instrument.name} needs the baseline SD of "
            f"at least 2 patients, but only {stats['n']} patient has a baseline. Pass a fixed "
            "threshold: "
            "criteria={'reliable_change': ...}."
        )
    reliability = criteria.reliability
    if reliability is None:
        nc, k = int(stats["nc"] or 0), instrument.n_items
        total_var = variance(nc, stats["score_s"], stats["score_ss"]) if nc >= 2 else 0.0
        if nc < 2 or total_var <= 0:
            raise ValueError(
                f"Cronbach's alpha of the {instrument.name} baselines cannot be computed "
                f"({nc} baselines with every item answered, needing at least 2 with varying "
                "totals). Pass a reliability, criteria={'reliability': 0.9}, or a fixed "
                "threshold, criteria={'reliable_change': ...}."
            )
        item_var = sum(
            variance(nc, stats[f"{c}_s"], stats[f"{c}_ss"]) for c in instrument.item_columns
        )
        reliability = k / (k - 1) * (1 - item_var / total_var)
    sd = max(variance(stats["n"], stats["s"], stats["ss"]), 0.0) ** 0.5
    return criteria.rci_z * sd * (2 * (1 - reliability)) ** 0.5


def _outcomes(criteria: Criteria, threshold: float, bands) -> dict[str, nw.Expr]:
    """The outcome columns from ``score``, ``baseline`` and ``change`` (docs/design.md, Endpoint
    semantics); ``change`` is a column computed beforehand, which every flag reads rather
    than subtracting again (pandas evaluates each use of an expression)."""
    score, baseline, change = nw.col("score"), nw.col("baseline"), nw.col("change")
    hundred_change = 100 * change
    out = {
        "pct_change": nw.when(baseline != 0).then(hundred_change / baseline),
        "response": nw.when(baseline > 0).then(
            hundred_change <= -criteria.response_reduction * baseline
        ),
        "partial_response": nw.when(baseline > 0).then(
            (hundred_change > -criteria.response_reduction * baseline)
            & (hundred_change <= -criteria.partial_response_reduction * baseline)
        ),
        "remission": nw.when(baseline > criteria.remission_cutoff).then(
            score <= criteria.remission_cutoff
        ),
        "reliable_improvement": -change >= threshold,
        "reliable_deterioration": change >= threshold,
        "severity": severity_expr(bands, score),
        "baseline_severity": severity_expr(bands, baseline),
    }
    case = criteria.caseness_cutoff
    if case is None:
        out["recovery"] = out["reliable_recovery"] = nw.when(nw.lit(False)).then(score > 0)
    else:
        out["recovery"] = nw.when(baseline >= case).then(score < case)
        out["reliable_recovery"] = nw.when(baseline >= case).then(
            (score < case) & (-change >= threshold)
        )
    return out


@overload
def derive_endpoints(
    data: Cohort,
    instrument: str | Instrument,
    *,
    schedule: _ScheduleArg = None,
    impute: str = "observed",
    criteria: _CriteriaArg = None,
) -> pd.DataFrame: ...
@overload
def derive_endpoints(
    data: IntoFrameT,
    instrument: str | Instrument,
    *,
    schedule: _ScheduleArg = None,
    impute: str = "observed",
    criteria: _CriteriaArg = None,
) -> IntoFrameT: ...
def derive_endpoints(
    data: Cohort | IntoFrame,
    instrument: str | Instrument,
    *,
    schedule: _ScheduleArg = None,
    impute: str = "observed",
    criteria: _CriteriaArg = None,
) -> IntoFrame:
    """One row per patient x visit with change from baseline and every outcome flag.

    Parameters
    ----------
    data : Cohort or DataFrame
        A :class:`~analysis.schema.Cohort` (its ``assessments`` are used) or an
        assessments frame: pandas, Polars (eager or lazy), DuckDB or Spark. The result is
        a frame of the same kind (lazy for lazy inputs).
    instrument : {"GAD7", "HAMA"} or Instrument
        The scale to derive; rows of other instruments are ignored.
    schedule : sequence of Visit or DataFrame, optional
        Visit windows; default :data:`DEFAULT_SCHEDULE` (see :func:`make_schedule`).
    impute : {"observed", "locf", "bocf"}
        ``"observed"``: rows for observed visits only. ``"locf"``: every scheduled visit
        from the patient's first observed post-baseline visit on; a missing visit takes the
        latest earlier observed visit's score. ``"bocf"``: every scheduled visit for every
        patient with a baseline; a missing visit takes the baseline score. The observed
        rows are those of ``"observed"`` (two assessments tied on a visit's day, which
        validation refuses, are two rows; ``"locf"`` carries the larger of their scores).
    criteria : Criteria or mapping, optional
        Outcome definitions; default ``instrument.criteria``. A mapping overrides fields
        of the default, e.g. ``{"response_reduction": 40}``.

    Returns
    -------
    DataFrame
        Columns :data:`ENDPOINT_COLUMNS`, sorted by ``patient_id`` then ``target_day``:
        one row per patient and post-baseline visit (the baseline is the ``baseline``
        column, not a row). Booleans are nullable: NA where the outcome is not defined
        (response and partial response when the baseline is 0; remission when the
        baseline is already at or under the cut-off; recovery when the baseline is not a
        case or the instrument has no caseness cut-off). Imputed rows have
        ``imputed=True`` and ``study_day`` missing.

    Notes
    -----
    - Score: :func:`~analysis.instruments.score_items` (sum, prorated, or recorded total).
    - Baseline: the latest scorable assessment in the baseline window (day 0 is before
      dosing, so it counts). A patient without one has no rows, nor has a row without a
      ``patient_id`` (it belongs to no patient; validation refuses such rows).
    - Visit: in each window, the scorable assessment closest to the target day; a tie goes
      to the earlier day.
    - ``change = score - baseline``; ``pct_change = 100 x change / baseline`` (NA when the
      baseline is 0).
    - response: ``pct_change <= -response_reduction``; partial response:
      ``-response_reduction < pct_change <= -partial_response_reduction``; remission:
      ``score <= remission_cutoff``.
    - Reliable change: a fixed threshold ``reliable_change`` (GAD-7 4 points), or
      Jacobson-Truax ``rci_z x SD_baseline x sqrt(2 (1 - r))`` (HAM-A) with ``SD_baseline``
      the sample SD of the baselines and ``r`` the reliability given in the criteria or
      Cronbach's alpha of the baselines with every item answered. reliable improvement:
      ``-change >= threshold``; reliable deterioration: ``change >= threshold``.
    - recovery: ``baseline >= caseness_cutoff`` and ``score < caseness_cutoff``;
      reliable recovery: recovery and reliable improvement.

    References
    ----------
    Jacobson NS, Truax P (1991). Clinical significance: a statistical approach to defining
    meaningful change in psychotherapy research. J Consult Clin Psychol 59:12-19.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "patient_id": ["p1", "p1", "p1", "p1", "p2"],
    ...     "instrument": "GAD7",
    ...     "study_day": [-3, 0, 8, 27, 0],
    ...     "total": [16, 15, 9, 4, 3],
    ... })
    >>> ep = derive_endpoints(df, "GAD7")
    >>> ep[["patient_id", "visit", "study_day", "baseline", "score", "pct_change"]]
      patient_id  visit  study_day  baseline  score  pct_change
    0         p1  week1          8        15      9       -40.0
    1         p1  week4         27        15      4  -73.333333
    >>> ep[["response", "remission", "recovery", "severity", "baseline_severity"]]
       response  remission  recovery severity baseline_severity
    0     False      False     False     mild            severe
    1      True       True      True  minimal            severe

    Patient p2 has a baseline but no later visit; with ``bocf`` p2's visits carry the
    baseline forward, and remission is undefined (the baseline 3 is already under 5):

    >>> ep = derive_endpoints(df, "GAD7", impute="bocf")
    >>> ep.loc[ep.patient_id == "p2", ["visit", "score", "imputed", "remission"]].head(2)
       visit  score  imputed  remission
    6   day1      3     True       <NA>
    7  week1      3     True       <NA>
    """
    check_choice("impute", impute, list(IMPUTE))
    instrument = get_instrument(instrument)
    visits = _instrument_visits(schedule, instrument)
    criteria = _resolve_criteria(instrument, criteria)
    bands = instrument.band(criteria.severity_bands)
    frame, eager = _lazy_polars(_assessments(data, instrument))
    steps = _steps_for(frame)
    frame = steps.encode(frame)
    keep = ["patient_id", "study_day"]
    items = ["n_items_answered", *instrument.item_columns]
    threshold = criteria.reliable_change
    if threshold is None and isinstance(frame, nw.LazyFrame):
        # A lazy engine would run the whole derivation once for the threshold and again
        # for the rows; the threshold needs only the assessments of the baseline window.
        base = _in_window(frame, visits[0])
        base = _annotate(
            base,
            instrument,
            visits,
            steps,
            keep + items,
            filtered=True,
            every_row=False,
            baseline=False,
        )
        threshold = _jacobson_truax(base, instrument, criteria, visits[0].target_day, steps)
    if threshold is None:  # an eager frame: annotated once, for the threshold and the rows
        frame = _annotate(
            frame, instrument, visits, steps, keep + items, filtered=True, every_row=False
        )
        threshold = _jacobson_truax(frame, instrument, criteria, visits[0].target_day, steps)
    else:
        frame = _annotate(frame, instrument, visits, steps, keep, filtered=True, every_row=False)
    rows = steps.rows(frame, visits, impute)
    rows = steps.outcomes(rows, instrument, visits, criteria, threshold, bands)
    if isinstance(rows, nw.LazyFrame) and not steps.keeps_order:
        rows = rows.sort("patient_id", "target_day")
    rows = steps.restore(rows)
    return _to_native(rows.collect() if eager else rows)


@overload
def endpoint_accounting(
    data: Cohort,
    instrument: str | Instrument | None = None,
    *,
    schedule: _ScheduleArg = None,
    impute: str = "observed",
    criteria: _CriteriaArg = None,
) -> pd.DataFrame: ...
@overload
def endpoint_accounting(
    data: IntoFrameT,
    instrument: str | Instrument | None = None,
    *,
    schedule: _ScheduleArg = None,
    impute: str = "observed",
    criteria: _CriteriaArg = None,
) -> IntoFrameT: ...
def endpoint_accounting(
    data: Cohort | IntoFrame,
    instrument: str | Instrument | None = None,
    *,
    schedule: _ScheduleArg = None,
    impute: str = "observed",
    criteria: _CriteriaArg = None,
) -> IntoFrame:
    """Every input assessment with what became of it in :func:`derive_endpoints`.

    Parameters
    ----------
    data : Cohort or DataFrame
        As for :func:`derive_endpoints`.
    instrument : {"GAD7", "HAMA"}, Instrument or None
        Account for the rows of this instrument; ``None`` (default) accounts for every
        row, each under the rules of its own instrument.
    schedule : sequence of Visit or DataFrame, optional
        As for :func:`derive_endpoints`.
    impute, criteria
        Accepted so that the call mirrors :func:`derive_endpoints`; what becomes of an
        input row does not depend on them (imputation only adds rows, criteria only
        change flags).

    Returns
    -------
    DataFrame
        The input rows (all their columns) with ``row`` (0-based position in the input;
        for a lazy input, which has no row order, the position in the order of
        ``patient_id, instrument, study_day``), ``score``, ``visit`` (the window the study
        day falls in, NA outside the schedule) and ``reason``, sorted by ``row``.
        ``reason`` is the first that applies of:

        - ``unscorable``: too many missing items and no total (or an unknown instrument);
        - ``outside_schedule``: the day is in no window scheduled for the instrument;
        - ``no_baseline``: the patient has no scorable baseline assessment;
        - ``superseded_in_window``: another assessment represents the window;
        - ``baseline``: the patient's baseline;
        - ``visit``: an endpoint row of :func:`derive_endpoints`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "patient_id": ["p1", "p1", "p1", "p1", "p1", "p2"],
    ...     "instrument": ["GAD7", "GAD7", "GAD7", "GAD7", "GAD7", "GAD7"],
    ...     "study_day": [-3, 0, 6, 8, 200, 9],
    ...     "total": [16, 15, 9, 8, 4, None],
    ... })
    >>> endpoint_accounting(df, "GAD7")[["row", "study_day", "visit", "reason"]]
       row  study_day     visit                reason
    0    0         -3  baseline  superseded_in_window
    1    1          0  baseline              baseline
    2    2          6     week1                 visit
    3    3          8     week1  superseded_in_window
    4    4        200      <NA>      outside_schedule
    5    5          9     week1            unscorable
    """
    check_choice("impute", impute, list(IMPUTE))
    instruments = list(INSTRUMENTS.values()) if instrument is None else [get_instrument(instrument)]
    plans = [(i, _instrument_visits(schedule, i)) for i in instruments]
    for i, _ in plans:
        _resolve_criteria(i, criteria)
    columns = list(_input_columns(data))
    frame = _assessments(data)
    if isinstance(frame, nw.LazyFrame):
        frame = frame.with_row_index("row", order_by=["patient_id", "instrument", "study_day"])
    else:
        frame = frame.with_row_index("row")
    frame, eager = _lazy_polars(frame)
    out_columns = ["row", *columns, "score", "visit", "reason"]
    steps = _steps_for(frame)
    frame = steps.encode(frame)
    parts = [
        steps.account(_annotate(frame, i, visits, steps), visits, out_columns)
        for i, visits in plans
    ]
    if instrument is None:
        unknown = frame.filter(~nw.col("instrument").is_in(list(INSTRUMENTS)))
        never = nw.lit(False)
        unknown = unknown.with_columns(
            score=nw.when(never).then(nw.col("study_day")),
            visit=nw.when(never).then(nw.lit("")),
            reason=nw.lit("unscorable"),
        )
        parts.append(cast_columns(_select(unknown, *out_columns), _ACCOUNT_DTYPES))
    rows = steps.restore_rows(nw.concat(parts).sort("row"))
    return _to_native(rows.collect() if eager else rows)


# --------------------------------------------------------------------------- visit order


def _natural_key(label) -> tuple:
    """'week12' after 'week2': digit runs compare as numbers, the rest as text."""
    parts = re.split(r"(\d+)", str(label))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def visit_order(visits, target_day=None, *, schedule=None, unknown: str = "appearance") -> list:
    """The visits present in ``visits``, in schedule (time) order: the one visit ordering.

    Every table, figure and model of the package orders visits with this function, so a
    custom schedule (``derive_endpoints(..., schedule=...)``) comes out in its own order
    everywhere, not alphabetically ("week12" before "week2") and not in the default
    schedule's order.

    Parameters
    ----------
    visits : Series or sequence
        Visit labels (missing values are ignored).
    target_day : Series or sequence, optional
        The target day of each row (aligned with ``visits``), as ``derive_endpoints``
        writes it.
    schedule : sequence of Visit, DataFrame or sequence of str, optional
        A schedule (as :func:`make_schedule` accepts) or visit names in order.
    unknown : {"appearance", "natural"}
        How to order visits that nothing above places: as they first appear
        (``"appearance"``; the statistics return their rows in schedule order) or by their
        labels with digit runs compared as numbers (``"natural"``; numbers as numbers).

    Returns
    -------
    list
        Each visit once. The first rule that applies decides:

        1. an ordered pandas Categorical keeps its category order (unused categories too);
        2. a ``schedule``: its order (visits not in it after, by ``unknown``);
        3. ``target_day`` giving one day per visit: by that day (ties by label);
        4. visits all of the default schedule (:data:`DEFAULT_SCHEDULE`): its order;
        5. ``unknown``.

    Examples
    --------
    >>> visit_order(["week12", "baseline", "week2", "week2"])
    ['baseline', 'week2', 'week12']
    >>> visit_order(["week1", "week10", "week2"], [7, 70, 14])
    ['week1', 'week2', 'week10']
    >>> visit_order(["month1", "day3"], schedule=["day3", "month1"])
    ['day3', 'month1']
    >>> visit_order(["month1", "day3", "week12", "week2"], unknown="natural")
    ['day3', 'month1', 'week2', 'week12']
    """
    check_choice("unknown", unknown, ("appearance", "natural"))
    values = visits if isinstance(visits, pd.Series) else pd.Series(list(visits), dtype=object)
    if isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered:
        return list(values.dtype.categories)
    levels = list(pd.unique(values.dropna()))

    def rest(labels: list) -> list:
        if unknown == "appearance":
            return labels
        try:
            if all(isinstance(v, str) for v in labels):
                return sorted(labels, key=_natural_key)
            return sorted(labels)
        except TypeError:  # mixed types: sort by their text
            return sorted(labels, key=str)

    if schedule is not None:
        if isinstance(schedule, pd.DataFrame) or any(isinstance(v, Visit) for v in schedule):
            names = [v.name for v in make_schedule(schedule)]
        else:
            names = [str(v) for v in schedule]
        rank = {name: i for i, name in enumerate(names)}
        known = sorted((v for v in levels if str(v) in rank), key=lambda v: rank[str(v)])
        return known + rest([v for v in levels if str(v) not in rank])
    if target_day is not None:
        days = pd.to_numeric(pd.Series(list(target_day), dtype=object), errors="coerce")
        pairs = pd.DataFrame({"visit": list(values), "day": days.to_numpy()})
        pairs = pairs.dropna().drop_duplicates()
        if pairs["visit"].is_unique and set(pairs["visit"]) == set(levels):
            day = dict(zip(pairs["visit"], pairs["day"], strict=True))
            return sorted(levels, key=lambda v: (day[v], _natural_key(v)))
    default = {v.name: i for i, v in enumerate(DEFAULT_SCHEDULE)}
    if levels and all(isinstance(v, str) and v in default for v in levels):
        return sorted(levels, key=default.__getitem__)
    return rest(levels)


def sort_cells(out: pd.DataFrame, df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """The rows of a result table in a fixed order: by ``by``, visits by :func:`visit_order`.

    The statistics (rate tables, comparisons, effect sizes) return one row per cell of
    ``by``. Each column of ``by`` is sorted, except ``visit``, which follows the schedule
    of ``df``, the frame the cells were computed from: an ordered Categorical keeps its
    order; else the visits go by their ``target_day`` (the earliest of each visit; visits
    without one after); else by :func:`visit_order`'s later rules (the default schedule's
    order, then labels with numbers compared as numbers). So a table orders the visits of
    a custom schedule as the figures and models do.

    Parameters
    ----------
    out : DataFrame
        The result table (one row per cell of ``by``).
    df : DataFrame
        The rows the cells were computed from, or a small stand-in holding ``visit`` and
        ``target_day`` (:func:`analysis._frames.schedule_of`).
    by : sequence of str
        The columns that identify a cell.

    Returns
    -------
    DataFrame
        ``out`` sorted (stable; missing keys last), with a fresh index.

    Examples
    --------
    >>> cells = pd.DataFrame({"visit": ["week12", "week2", "month1"], "n": [3, 1, 2]})
    >>> rows = pd.DataFrame({"visit": ["week2", "month1", "week12"], "target_day": [14, 30, 84]})
    >>> sort_cells(cells, rows, ["visit"])["visit"].tolist()
    ['week2', 'month1', 'week12']
    >>> sort_cells(cells, rows.drop(columns="target_day"), ["visit"])["visit"].tolist()
    ['month1', 'week2', 'week12']
    """
    by = list(by)
    if not by:
        return out.reset_index(drop=True)
    rank: dict | None = None
    if "visit" in by and "visit" in df.columns:
        visits = df["visit"]
        if isinstance(visits.dtype, pd.CategoricalDtype) and visits.dtype.ordered:
            order = visit_order(visits)
        elif "target_day" in df.columns:
            days = pd.to_numeric(df["target_day"], errors="coerce").groupby(
                visits.to_numpy(dtype=object), sort=False
            )
            first = days.min()
            known = first.dropna()
            order = visit_order(list(known.index), known.to_numpy(), unknown="natural")
            order += visit_order(list(first.index[first.isna()]), unknown="natural")
        else:
            order = visit_order(visits.to_numpy(dtype=object), unknown="natural")
        rank = {v: i for i, v in enumerate(order)}

    def key(col: pd.Series) -> pd.Series:
        if rank is not None and col.name == "visit":
            return col.astype(object).map(rank)
        return col

    return out.sort_values(by, key=key, kind="stable", na_position="last").reset_index(drop=True)
