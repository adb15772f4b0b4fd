"""The two anxiety scales: items, ranges, severity bands, outcome criteria, item scoring.

Every clinical constant of the package lives here, once, with its source. Other modules
read them from an :class:`Instrument` (``GAD7``, ``HAMA``) or its :class:`Criteria`; none
hard-codes a scale range, a cut-off or a response threshold.

Conventions that the literature does not settle (how many missing items may be prorated,
partial response) are marked **convention** and are overridable through
:class:`Criteria` or :func:`dataclasses.replace`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

import narwhals as nw
import numpy as np
import pandas as pd

from analysis._frames import (
    as_nullable_int,
    blocks,
    cast_columns,
    check_whole,
    replace_columns,
)
from analysis._utils import check_choice

__all__ = [
    "GAD7",
    "HAMA",
    "INSTRUMENTS",
    "MAX_ITEMS",
    "Criteria",
    "Instrument",
    "SeverityBands",
    "get_instrument",
    "score_items",
]

#: Number of ``item_<k>`` columns in the assessments table (the HAM-A has the most items).
MAX_ITEMS = 14


@dataclass(frozen=True)
class SeverityBands:
    """Named severity bands: band ``k`` covers ``lower[k] <= score < lower[k + 1]``.

    Parameters
    ----------
    name : str
        Short name used to select the scheme (``Criteria.severity_bands``).
    labels : tuple of str
        Band labels, mildest first.
    lower : tuple of int
        Inclusive lower bound of each band; the first is 0.
    source : str
        Where the bands come from.

    Examples
    --------
    >>> GAD7.bands["spitzer2006"].classify([0, 4, 5, 10, 15, 21])
    ['minimal', 'minimal', 'mild', 'moderate', 'severe', 'severe']
    """

    name: str
    labels: tuple[str, ...]
    lower: tuple[int, ...]
    source: str

    def classify(self, scores) -> list:
        """Band label of each score (``None`` for a missing score)."""
        values = pd.to_numeric(pd.Series(scores, dtype="object"), errors="coerce").to_numpy(
            dtype=float
        )
        return self._label_array(values).tolist()

    def _label_array(self, values: np.ndarray, na: object = None) -> np.ndarray:
        """:meth:`classify` of a float array (NaN missing), as an object array (``na``
        where missing: ``pd.NA`` makes it a ready ``StringArray``).

        The form the pandas fast paths use: no conversion of every score to a Python
        object and back (about 1 s per call on 10 million scores).
        """
        lower = np.asarray(self.lower, dtype=float)
        labels = np.asarray((*self.labels, na), dtype=object)
        out = np.empty(len(values), dtype=object)
        for block in blocks(len(values)):  # block by block: no column-sized temporaries
            part = values[block]
            index = np.searchsorted(lower, part, side="right") - 1
            out[block] = labels[np.where(np.isnan(part), len(self.labels), np.maximum(index, 0))]
        return out


class _Unset:
    """Marks a :class:`Criteria` field the caller did not name."""

    def __repr__(self) -> str:
        return "<instrument default>"


_UNSET = _Unset()

#: What a Criteria field holds when it is read without an instrument to take it from.
_GENERIC_CRITERIA = MappingProxyType(
    {
        "response_reduction": 50.0,
        "partial_response_reduction": 25.0,
        "remission_cutoff": 4,
        "reliable_change": None,
        "reliability": None,
        "rci_z": 1.96,
        "caseness_cutoff": None,
        "severity_bands": "",
    }
)


@dataclass(frozen=True)
class Criteria:
    """Outcome definitions applied by :func:`analysis.derive_endpoints`.

    Parameters
    ----------
    response_reduction : float
        Response is a reduction from baseline of at least this many percent
        (``pct_change <= -response_reduction``). Default 50, the usual definition for
        both scales (HAM-A: GAD trials, e.g. Khan et al. 2016; GAD-7: Hull et al. 2022).
    partial_response_reduction : float
        Partial response is ``-response_reduction < pct_change <= -partial_response_reduction``.
        Default 25 (**convention**).
    remission_cutoff : int
        Remission is ``score <= remission_cutoff``; undefined (NA) for a patient whose
        baseline is already at or under it. GAD-7 4 (score < 5, the "minimal" band,
        Spitzer 2006; Hull et al. 2022); HAM-A 7 (GAD trials, e.g. Khan et al. 2016).
    reliable_change : float or None
        Fixed reliable-change threshold in points (GAD-7: 4, NHS Talking Therapies).
        ``None`` means the Jacobson-Truax (1991) threshold computed from the data:
        ``rci_z * SD_baseline * sqrt(2 * (1 - reliability))``.
    reliability : float or None
        Reliability used by the Jacobson-Truax threshold; ``None`` means Cronbach's alpha of
        the complete baseline assessments in the data passed in.
    rci_z : float
        Critical value of the reliable change index (1.96, Jacobson & Truax 1991).
    caseness_cutoff : int or None
        A score of at least this is a "case" (GAD-7 8, NHS Talking Therapies). Recovery is
        a baseline case that is no longer a case; ``None`` leaves recovery undefined.
    severity_bands : str
        Name of the severity scheme in ``Instrument.bands``.

    Notes
    -----
    **Overrides keep the instrument's own defaults.** A ``Criteria`` remembers which
    fields the caller named (:attr:`named`). :func:`analysis.derive_endpoints` (and every
    function taking ``criteria=``) starts from the instrument's default criteria
    (``GAD7.criteria``, ``HAMA.criteria``) and replaces only those fields, so
    ``Criteria(response_reduction=40)`` keeps the HAM-A remission cut-off 7, and the
    GAD-7 reliable change of 4 points and caseness 8. A mapping
    (``criteria={"response_reduction": 40}``) works the same way. One rule links fields:
    naming ``reliability`` or ``rci_z`` without ``reliable_change`` asks for the
    Jacobson-Truax threshold (``reliable_change=None``), since those two are used only by
    it. Read on its own, a field not named holds the generic default shown in the
    signature (response 50%, partial response 25%, remission 4, ...), not an instrument's.

    Examples
    --------
    >>> from dataclasses import replace
    >>> replace(GAD7.criteria, response_reduction=40).response_reduction
    40
    >>> overrides = Criteria(response_reduction=40)
    >>> sorted(overrides.named)
    ['response_reduction']
    >>> merged = overrides.applied_to(HAMA.criteria)
    >>> merged.response_reduction, merged.remission_cutoff
    (40, 7)
    >>> gad = overrides.applied_to(GAD7.criteria)
    >>> gad.remission_cutoff, gad.reliable_change, gad.caseness_cutoff
    (4, 4.0, 8)
    """

    response_reduction: float = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    partial_response_reduction: float = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    remission_cutoff: int = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    reliable_change: float | None = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    reliability: float | None = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    rci_z: float = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    caseness_cutoff: int | None = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it
    severity_bands: str = _UNSET  # type: ignore[assignment]  # sentinel: __post_init__ sets it

    @property
    def named(self) -> frozenset[str]:
        """The fields the caller set (the others hold the generic defaults)."""
        return self._named  # type: ignore[attr-defined]  # set in __post_init__

    def applied_to(self, base: Criteria) -> Criteria:
        """``base`` (an instrument's criteria) with the fields named here replaced."""
        changes = {name: getattr(self, name) for name in self.named}
        if {"reliability", "rci_z"} & self.named and "reliable_change" not in self.named:
            changes["reliable_change"] = None
        return replace(base, **changes)

    def __post_init__(self) -> None:
        named = frozenset(f.name for f in fields(self) if getattr(self, f.name) is not _UNSET)
        for name, value in _GENERIC_CRITERIA.items():
            if name not in named:
                object.__setattr__(self, name, value)
        # A plain attribute, not a field: asdict(), ==, hash and repr see the values only.
        object.__setattr__(self, "_named", named)
        if not 0 < self.partial_response_reduction <= self.response_reduction <= 100:
            raise ValueError(
                "Criteria need 0 < partial_response_reduction <= response_reduction <= 100, "
                f"but got {self.partial_response_reduction} and {self.response_reduction}."
            )
        if self.reliability is not None and not 0 <= self.reliability < 1:
            raise ValueError(
                f"`reliability` must lie in [0, 1), but {self.reliability!r} was passed."
            )
        if self.reliable_change is not None and self.reliable_change <= 0:
            raise ValueError(
                f"`reliable_change` must be a positive number of points or None, "
                f"but {self.reliable_change!r} was passed."
            )


@dataclass(frozen=True)
class Instrument:
    """A rating scale: its items, ranges, bands, subscales and default outcome criteria.

    Attributes
    ----------
    name : str
        Code used in the ``instrument`` column (``"GAD7"``, ``"HAMA"``).
    title : str
        Full name.
    items : tuple of str
        Item wording or label, in order (item 1 first).
    item_max : int
        Highest score of one item (items start at 0).
    max_missing_items : int
        How many missing items may be prorated (**convention**).
    bands : mapping of str to SeverityBands
        Available severity schemes; ``criteria.severity_bands`` names the default.
    subscales : mapping of str to tuple of int
        Subscale name to 1-based item numbers.
    criteria : Criteria
        Default outcome definitions.
    source : str
        Reference for the scale.
    """

    name: str
    title: str
    items: tuple[str, ...]
    item_max: int
    max_missing_items: int
    bands: Mapping[str, SeverityBands]
    criteria: Criteria
    subscales: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    source: str = ""

    @property
    def n_items(self) -> int:
        """Number of items."""
        return len(self.items)

    @property
    def item_min(self) -> int:
        """Lowest score of one item."""
        return 0

    @property
    def total_max(self) -> int:
        """Highest total score (``n_items * item_max``)."""
        return self.n_items * self.item_max

    @property
    def item_columns(self) -> list[str]:
        """Names of the item columns used by this scale (``item_1`` ...)."""
        return [f"item_{k}" for k in range(1, self.n_items + 1)]

    @property
    def unused_item_columns(self) -> list[str]:
        """Item columns of the assessments table that must stay empty for this scale."""
        return [f"item_{k}" for k in range(self.n_items + 1, MAX_ITEMS + 1)]

    @property
    def severity_bands(self) -> SeverityBands:
        """The default severity scheme (named by ``criteria.severity_bands``)."""
        return self.bands[self.criteria.severity_bands]

    def band(self, name: str) -> SeverityBands:
        """A severity scheme by name, with a clear error for an unknown name."""
        check_choice("severity_bands", name, list(self.bands))
        return self.bands[name]

    def __repr__(self) -> str:
        return (
            f"Instrument({self.name}: {self.n_items} items 0-{self.item_max}, "
            f"total 0-{self.total_max})"
        )


_SPITZER_2006 = "Spitzer, Kroenke, Williams, Loewe 2006, Arch Intern Med 166:1092-1097"
_HAMILTON_1959 = "Hamilton 1959, Br J Med Psychol 32:50-55"

GAD7 = Instrument(
    name="GAD7",
    title="Generalized Anxiety Disorder 7-item scale",
    items=(
        "Feeling nervous, anxious, or on edge",
        "Not being able to stop or control worrying",
        "Worrying too much about different things",
        "Trouble relaxing",
        "Being so restless that it is hard to sit still",
        "Becoming easily annoyed or irritable",
        "Feeling afraid, as if something awful might happen",
    ),
    # 0 not at all, 1 several days, 2 more than half the days, 3 nearly every day.
    item_max=3,
    # No published rule for missing GAD-7 items: **convention** prorate at most one.
    max_missing_items=1,
    bands=MappingProxyType(
        {
            "spitzer2006": SeverityBands(
                "spitzer2006",
                ("minimal", "mild", "moderate", "severe"),
                (0, 5, 10, 15),
                _SPITZER_2006,
            ),
        }
    ),
    criteria=Criteria(
        remission_cutoff=4,  # score < 5 (Spitzer 2006 minimal band; Hull et al. 2022)
        reliable_change=4.0,  # NHS Talking Therapies reliable improvement: a drop of 4+
        caseness_cutoff=8,  # NHS Talking Therapies caseness: GAD-7 >= 8
        severity_bands="spitzer2006",
    ),
    source=_SPITZER_2006,
)

HAMA = Instrument(
    name="HAMA",
    title="Hamilton Anxiety Rating Scale",
    items=(
        "Anxious mood",
        "Tension",
        "Fears",
        "Insomnia",
        "Intellectual (cognitive)",
        "Depressed mood",
        "Somatic (muscular)",
        "Somatic (sensory)",
        "Cardiovascular symptoms",
        "Respiratory symptoms",
        "Gastrointestinal symptoms",
        "Genitourinary symptoms",
        "Autonomic symptoms",
        "Behaviour at interview",
    ),
    # 0 not present, 1 mild, 2 moderate, 3 severe, 4 very severe (Hamilton 1959).
    item_max=4,
    # No published rule for missing HAM-A items: **convention** prorate at most two.
    max_missing_items=2,
    bands=MappingProxyType(
        {
            "matza2010": SeverityBands(
                "matza2010",
                ("minimal", "mild", "moderate", "severe"),
                (0, 8, 15, 24),
                "Matza et al. 2010, Int J Methods Psychiatr Res 19:223-232, doi:10.1002/mpr.323",
            ),
            "score_sheet": SeverityBands(
                "score_sheet",
                ("mild", "mild_to_moderate", "moderate_to_severe", "severe"),
                (0, 18, 25, 31),
                "HAM-A score-sheet convention: <=17 mild, 18-24 mild to moderate, "
                "25-30 moderate to severe, >30 severe",
            ),
        }
    ),
    criteria=Criteria(
        remission_cutoff=7,  # HAM-A <= 7 (GAD trials, e.g. pooled vilazodone, Khan 2016)
        reliable_change=None,  # Jacobson-Truax from the data (no fixed HAM-A threshold)
        caseness_cutoff=None,  # recovery is defined for the GAD-7 only
        severity_bands="matza2010",
    ),
    # Psychic items 1-6 and 14, somatic items 7-13 (as reported in GAD trials; Maier 1988).
    subscales=MappingProxyType(
        {"psychic": (1, 2, 3, 4, 5, 6, 14), "somatic": (7, 8, 9, 10, 11, 12, 13)}
    ),
    source=_HAMILTON_1959,
)

#: The instruments by code, as they appear in the ``instrument`` column.
INSTRUMENTS: Mapping[str, Instrument] = MappingProxyType({"GAD7": GAD7, "HAMA": HAMA})


def get_instrument(instrument: str | Instrument) -> Instrument:
    """Return the :class:`Instrument` for a code (``"GAD7"``, ``"HAMA"``) or pass one through.

    Examples
    --------
    >>> get_instrument("HAMA").total_max
    56
    """
    if isinstance(instrument, Instrument):
        return instrument
    check_choice("instrument", instrument, list(INSTRUMENTS))
    return INSTRUMENTS[instrument]


# --- Item scoring -------------------------------------------------------------------------
#
# The scoring rules are narwhals expressions so that the same code scores a pandas frame
# here and every backend in :func:`analysis.derive_endpoints`.

_ASSESSMENT_NUMERIC = ("study_day", *(f"item_{k}" for k in range(1, MAX_ITEMS + 1)), "total")


def _total(exprs) -> nw.Expr:
    return functools.reduce(operator.add, exprs)


def answered_expr(instrument: Instrument) -> nw.Expr:
    """Number of the instrument's items that were answered (not missing).

    The number of items less the missing ones: one null test per item, which every engine
    evaluates without touching the values (pandas gives a plain ``int64`` column; nothing
    built on it is ever missing).
    """
    missing = _total(nw.col(c).is_null().cast(nw.Int64) for c in instrument.item_columns)
    return instrument.n_items - missing


def item_sum_expr(instrument: Instrument) -> nw.Expr:
    """Sum of the instrument's answered items (0 when none is)."""
    return _total(nw.col(c).fill_null(0) for c in instrument.item_columns)


def score_expr(
    instrument: Instrument, answered: nw.Expr | None = None, item_sum: nw.Expr | None = None
) -> nw.Expr:
    """The analysis score of an assessment of ``instrument`` (null when unscorable).

    ``answered`` is the expression (or column) counting answered items; it defaults to
    :func:`answered_expr`. ``item_sum`` likewise defaults to :func:`item_sum_expr`; it is
    used twice, so passing a column computed beforehand saves summing the items again on
    engines that evaluate each use of an expression (pandas). The proration ``mean x
    n_items`` rounded half up is ``floor(sum * k / n + 1/2) = (2 * k * sum + n) // (2 * n)``,
    computed in integers so that an exact half always rounds up (never to even, as Python's
    ``round`` does).
    """
    n = answered_expr(instrument) if answered is None else answered
    item_sum = item_sum_expr(instrument) if item_sum is None else item_sum
    k, m = instrument.n_items, instrument.max_missing_items
    safe_n = nw.when(n > 0).then(n).otherwise(1)
    prorated_value = (2 * k * item_sum + safe_n) // (2 * safe_n)
    return (
        nw.when(n == k)
        .then(item_sum)
        .otherwise(nw.when((n >= k - m) & (n > 0)).then(prorated_value).otherwise(nw.col("total")))
    )


def prorated_expr(instrument: Instrument, answered: nw.Expr | None = None) -> nw.Expr:
    """True when the score is prorated from the answered items (some, but few, missing)."""
    n = answered_expr(instrument) if answered is None else answered
    k, m = instrument.n_items, instrument.max_missing_items
    return (n < k) & (n >= k - m) & (n > 0)


def subscale_expr(instrument: Instrument, name: str) -> nw.Expr:
    """Sum of a subscale's items, null unless every one of them is answered."""
    columns = [f"item_{k}" for k in instrument.subscales[name]]
    complete = _total((~nw.col(c).is_null()).cast(nw.Int64) for c in columns) == len(columns)
    return nw.when(complete).then(_total(nw.col(c) for c in columns))


def severity_expr(bands: SeverityBands, score: nw.Expr) -> nw.Expr:
    """Band label of ``score`` (a narwhals expression) under ``bands``; null when missing."""
    expr = nw.lit(bands.labels[0])
    for lower, label in zip(bands.lower[1:], bands.labels[1:], strict=True):
        expr = nw.when(score >= lower).then(nw.lit(label)).otherwise(expr)
    return nw.when(~score.is_null()).then(expr)


def prepare_assessments(native, columns=None, *, float_scores: bool = False):
    """A narwhals frame of assessments with every ``item_<k>``/``total`` column present.

    ``columns`` (optional) limits the item and total columns to those named. Missing item
    or total columns are added as nulls. A pandas frame gets its integer
    columns as nullable ``Int64``: pandas stores a missing integer as a float NaN, on which
    comparisons are False rather than missing, and the outcome flags rely on three-valued
    logic. On other backends, integer columns narrower than 64 bits are widened to
    ``Int64`` (sums of 8-bit items overflow) and the rest is only wrapped.

    With ``float_scores`` (pandas), item and total columns of NumPy ``float64`` stay
    ``float64`` (NaN missing) once checked to hold whole numbers, with the same error:
    the pandas fast path of the endpoint derivation scores floats, and the round trip
    through ``Int64`` took about a tenth of its time on a raw float frame.
    """
    numeric = [c for c in _ASSESSMENT_NUMERIC if columns is None or c in (*columns, "study_day")]
    if isinstance(native, pd.DataFrame):
        converted: dict[str, object] = {}
        for column in numeric:
            if column not in native.columns:
                converted[column] = pd.array([pd.NA] * len(native), dtype="Int64")
            elif float_scores and column != "study_day" and native[column].dtype == np.float64:
                check_whole(native[column].to_numpy(), column)
            elif not isinstance(native[column].dtype, pd.Int64Dtype):
                converted[column] = as_nullable_int(native[column], column)
        if converted:
            native = replace_columns(native, converted)
        return nw.from_native(native, eager_only=True)
    frame = nw.from_native(native)
    schema = frame.collect_schema()
    # Integers narrower than 64 bits (a Parquet file's INT8 items) are widened: the
    # proration multiplies the item sum by twice the number of items, which overflows an
    # 8-bit integer (DuckDB raises, Polars wraps around silently).
    narrow = [
        c for c in numeric if c in schema and schema[c].is_integer() and schema[c] != nw.Int64
    ]
    missing = [c for c in numeric if c not in schema and c != "study_day"]
    if narrow or missing:
        frame = frame.with_columns(
            *(nw.col(c).cast(nw.Int64) for c in narrow),
            *(nw.lit(None, dtype=nw.Int64).alias(c) for c in missing),
        )
    return frame


def _by_instrument(make, instruments) -> nw.Expr:
    """``make(instrument)`` on the rows of each instrument, null on other rows."""
    expr: nw.Expr | None = None
    for instrument in instruments:
        # ``is_in`` rather than ``==``: pandas hashes the strings rather than comparing
        # each in Python; other engines read it as the same equality.
        branch = nw.when(nw.col("instrument").is_in([instrument.name])).then(make(instrument))
        expr = branch if expr is None else branch.otherwise(expr)
    assert expr is not None  # the callers pass at least one instrument
    return expr


#: False inside :func:`_generic_scoring`: pandas frames then take the narwhals expressions.
_SCORE_FAST_PATH: ContextVar[bool] = ContextVar("analysis_score_fast_path", default=True)


@contextmanager
def _generic_scoring() -> Iterator[None]:
    """Score pandas frames through the generic narwhals expressions (for tests).

    ``tests/test_instruments.py`` holds :func:`score_items`' pandas fast path equal to the
    generic form every other engine runs.
    """
    token = _SCORE_FAST_PATH.set(False)
    try:
        yield
    finally:
        _SCORE_FAST_PATH.reset(token)


def _score_arrays(
    instrument: Instrument, items: Sequence[np.ndarray], recorded: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rules of :func:`score_expr` and :func:`prorated_expr` on arrays (pandas).

    ``items`` holds one float array per item of ``instrument`` (NaN unanswered),
    ``recorded`` the recorded totals (NaN missing).
    Returns the items answered, the score (0 where unscorable), whether there is a
    score, and whether it is prorated: the numpy form of the narwhals expressions, shared
    by :func:`score_items` and the endpoint derivation's pandas fast path (each held equal
    to the expressions by a test).
    """
    rows = len(recorded)
    n = np.empty(rows, dtype=np.int64)
    value = np.empty(rows, dtype=np.int64)
    has = np.empty(rows, dtype=bool)
    prorate = np.empty(rows, dtype=bool)
    k, m = instrument.n_items, instrument.max_missing_items
    for block in blocks(rows):  # block by block: the temporaries stay small
        count = np.zeros(block.stop - block.start, dtype=np.int64)
        total = np.zeros(block.stop - block.start, dtype=np.float64)
        for column in items:  # column by column: no stacked copy of the items
            part = column[block]
            present = ~np.isnan(part)
            count += present
            np.add(total, part, out=total, where=present)
        item_sum = total.astype(np.int64)
        pro = (count < k) & (count >= k - m) & (count > 0)
        safe_n = np.maximum(count, 1)
        full = count == k
        scored = np.where(full, item_sum, (2 * k * item_sum + safe_n) // (2 * safe_n))
        given = recorded[block]
        n[block], prorate[block] = count, pro
        has[block] = full | pro | ~np.isnan(given)
        value[block] = np.where(full | pro, scored, np.nan_to_num(given).astype(np.int64))
    return n, value, has, prorate


def _score_pandas(
    native: pd.DataFrame,
    original: list[str],
    every: list[Instrument],
    subscales: Mapping[str, list[Instrument]],
) -> pd.DataFrame:
    """:func:`score_items` on a prepared pandas frame, with numpy (the same rules).

    The narwhals expressions cost a fixed time per expression node, which dominates on
    the small frames a clinic export or a test gives; this is the same computation on
    arrays, one instrument's rows at a time.
    """
    rows = len(native)
    answered = np.zeros(rows, dtype=np.int64)
    score = np.zeros(rows, dtype=np.int64)
    prorated = np.zeros(rows, dtype=bool)
    known = np.zeros(rows, dtype=bool)
    scored = np.zeros(rows, dtype=bool)
    severity = np.full(rows, None, dtype=object)
    parts = {
        name: (np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=bool)) for name in subscales
    }
    instrument = native["instrument"]
    total = native["total"]
    for inst in every:
        on = instrument.isin([inst.name]).to_numpy(dtype=bool)
        if not on.any():
            continue
        known |= on
        items = {
            c: native[c].to_numpy(dtype="float64", na_value=np.nan)[on] for c in inst.item_columns
        }
        recorded = total.to_numpy(dtype="float64", na_value=np.nan)[on]
        n, value, has, prorate = _score_arrays(inst, list(items.values()), recorded)
        answered[on], score[on], prorated[on], scored[on] = n, value, prorate, has
        severity[on] = inst.severity_bands._label_array(np.where(has, value, np.nan))
        for name, having in subscales.items():
            if inst not in having:
                continue
            columns = [f"item_{j}" for j in inst.subscales[name]]
            block = np.column_stack([items[c] for c in columns])
            complete = ~np.isnan(block).any(axis=1)
            total_of, ok = parts[name]
            total_of[on] = np.where(complete, np.nan_to_num(block).sum(axis=1), 0).astype(np.int64)
            ok[on] = complete

    added: dict[str, object] = {
        "score": pd.arrays.IntegerArray(score, ~scored),
        "n_items_answered": pd.arrays.IntegerArray(answered, ~known),
        "prorated": pd.arrays.BooleanArray(prorated, ~known),
        "severity": pd.array(severity, dtype="string"),
    }
    for name, (total_of, ok) in parts.items():
        added[name] = pd.arrays.IntegerArray(total_of, ~ok)
    out = native[original].copy()
    for name, column in added.items():
        out[name] = pd.Series(column, index=native.index)
    return out


def score_items(assessments):
    """Score each assessment: the analysis total, items answered, proration, severity.

    Parameters
    ----------
    assessments : DataFrame
        Assessments in the long format of ``data_schema/assessments`` (``instrument``,
        ``item_1`` .. ``item_14``, ``total``; other columns are kept). pandas by default;
        a Polars, DuckDB or Spark frame gives a frame of the same kind.

    Returns
    -------
    DataFrame
        A copy with the columns ``score`` (the total used for analysis), ``n_items_answered``,
        ``prorated``, ``severity`` (the instrument's default bands) and, for HAM-A rows,
        ``psychic`` and ``somatic`` (missing for GAD-7 rows). Rows of an unknown
        instrument get missing values. A pandas result uses the nullable dtypes
        (``Int64``, ``boolean``, ``string``), its item and total columns included.

    Notes
    -----
    With ``k`` items, ``n`` answered and ``m = max_missing_items`` (GAD-7 1, HAM-A 2,
    a **convention**):

    - ``n = k``: the sum of the items (a recorded ``total`` is not consulted here; that it
      equals the sum is checked by :func:`analysis.validate`);
    - ``k - m <= n < k``: prorated, ``floor(mean x k + 1/2)`` (half rounds up), even when a
      total was recorded;
    - fewer answered: the recorded ``total`` when given, otherwise unscorable (missing).

    A subscale (HAM-A psychic, items 1-6 and 14; somatic, items 7-13) is the sum of its
    items when all of them are answered and missing otherwise: it is not prorated, since
    proration from one half of the scale would rest on fewer than seven items.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "patient_id": ["p1", "p2", "p3", "p4"],
    ...     "instrument": ["GAD7", "GAD7", "GAD7", "GAD7"],
    ...     "study_day": [0, 0, 0, 0],
    ...     "item_1": [3, 3, None, None], "item_2": [2, 2, None, None],
    ...     "item_3": [2, 2, None, None], "item_4": [1, 1, None, None],
    ...     "item_5": [1, 1, None, None], "item_6": [1, 1, None, None],
    ...     "item_7": [2, None, None, None], "total": [None, None, 15, None],
    ... })
    >>> score_items(df)[["patient_id", "score", "n_items_answered", "prorated", "severity"]]
      patient_id  score  n_items_answered  prorated  severity
    0         p1     12                 7     False  moderate
    1         p2     12                 6      True  moderate
    2         p3     15                 0     False    severe
    3         p4   <NA>                 0     False      <NA>

    Patient p2 answered six items summing to 10: 10 / 6 x 7 = 11.67, rounded to 12.
    """
    native = nw.to_native(assessments, pass_through=True)
    original = list(nw.from_native(native).columns)
    frame = prepare_assessments(native)
    every = list(INSTRUMENTS.values())
    subscales = {
        name: [i for i in every if name in i.subscales] for i in every for name in i.subscales
    }
    if frame.implementation.is_pandas() and _SCORE_FAST_PATH.get():
        return _score_pandas(frame.to_native(), original, every, subscales)
    # In stages, so that each rule reads the previous column instead of recomputing it.
    answered, item_sum = nw.col("n_items_answered"), nw.col("_item_sum")
    out = frame.with_columns(
        # As floats, so that pandas nulls the rows of other instruments without the
        # warning it gives when a plain ``int64`` column is made to hold missing values.
        n_items_answered=_by_instrument(lambda i: answered_expr(i).cast(nw.Float64), every),
        _item_sum=_by_instrument(item_sum_expr, every),
    )
    # Nullable integers on pandas (missing for rows of an unknown instrument), as the
    # rules expect.
    out = cast_columns(out, {"n_items_answered": nw.Int64, "_item_sum": nw.Int64})
    out = out.with_columns(
        score=_by_instrument(lambda i: score_expr(i, answered, item_sum), every),
        prorated=_by_instrument(lambda i: prorated_expr(i, answered), every),
        **{
            name: _by_instrument(lambda i, name=name: subscale_expr(i, name), having)
            for name, having in subscales.items()
        },
    )
    out = out.with_columns(
        severity=_by_instrument(lambda i: severity_expr(i.severity_bands, nw.col("score")), every)
    )
    dtypes = {"score": nw.Int64, "n_items_answered": nw.Int64, "prorated": nw.Boolean}
    dtypes |= {"severity": nw.String} | dict.fromkeys(subscales, nw.Int64)
    return cast_columns(out, dtypes).select(*original, *dtypes).to_native()
