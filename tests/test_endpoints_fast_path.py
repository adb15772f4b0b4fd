"""The pandas fast path of the derivation gives exactly the results of the generic steps.

``analysis.endpoints._PandasSteps`` replaces a few steps of the narwhals algorithm on
pandas (integer patient codes, lookup tables, direct-address window minimum and baseline,
counting sort); ``_generic_steps()`` forces the generic narwhals steps on pandas, the
algorithm every other engine runs. On random cohorts the two must agree to the last
value and dtype.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.endpoints import (
    DEFAULT_SCHEDULE,
    IMPUTE,
    _generic_steps,
    _identity_codes,
    _PandasSteps,
    _sorted_codes,
    _sorted_value_codes,
    _Steps,
    _steps_for,
    derive_endpoints,
    endpoint_accounting,
)
from analysis.instruments import INSTRUMENTS, MAX_ITEMS

#: The score columns of an assessments frame: drawn as nullable ``Int64`` or NumPy floats.
SCORE_COLUMNS = ["total", *(f"item_{k}" for k in range(1, MAX_ITEMS + 1))]


def _as_floats(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its score columns as NumPy floats (NaN missing), as a raw export reads."""
    return df.astype(dict.fromkeys(SCORE_COLUMNS, "float64"))


def _both(function, frame, *args, **kwargs):
    fast = function(frame, *args, **kwargs)
    with _generic_steps():
        generic = function(frame, *args, **kwargs)
    return fast, generic


@st.composite
def cohorts(draw):
    """Assessments with several per window, days outside and between windows, two on one
    day (which validation refuses), missing items (prorated or unscorable), total-only
    rows, patients without a baseline, and ids that are strings or integers, in any row
    order; items and totals as nullable ``Int64`` or as NumPy floats (NaN missing, as a
    raw export reads)."""
    n_patients = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    integer_ids = draw(st.booleans())
    floats = draw(st.booleans())
    rows = []
    for p in rng.permutation(n_patients):
        for instrument in INSTRUMENTS.values():
            n = int(rng.integers(0, 10))
            days = rng.choice(np.arange(-20, 130), size=n, replace=False)
            if rng.random() < 0.8:
                days = np.union1d(days, rng.integers(-14, 1, 2))
            if len(days) and rng.random() < 0.2:  # two assessments on one day (unvalidated)
                days = np.append(days, rng.choice(days))
            for day in days:
                items = rng.integers(0, instrument.item_max + 1, instrument.n_items).astype(object)
                missing = rng.choice([0, 0, 1, instrument.max_missing_items + 1])
                items[rng.choice(instrument.n_items, missing, replace=False)] = None
                row = {
                    "patient_id": int(p) * 7 if integer_ids else f"P{p:03d}",
                    "instrument": instrument.name,
                    "study_day": int(day),
                    "total": None,
                }
                row |= {f"item_{k}": None for k in range(1, MAX_ITEMS + 1)}
                if rng.random() < 0.1:
                    row["total"] = int(rng.integers(0, instrument.total_max + 1))
                else:
                    row |= {f"item_{k}": v for k, v in enumerate(items, start=1)}
                rows.append(row)
    columns = ["patient_id", "instrument", "study_day", "total"]
    columns += [f"item_{k}" for k in range(1, MAX_ITEMS + 1)]
    df = pd.DataFrame(rows, columns=columns)
    df = df.sample(frac=1, random_state=seed % 2**31, ignore_index=True)
    scores = "float64" if floats else "Int64"
    return df.astype(dict.fromkeys(SCORE_COLUMNS, scores) | {"study_day": "int64"})


def test_switch_selects_the_generic_steps():
    frame = pd.DataFrame({"patient_id": ["a"], "instrument": ["GAD7"], "study_day": [0]})
    import narwhals as nw

    assert type(_steps_for(nw.from_native(frame))) is _PandasSteps
    with _generic_steps():
        assert type(_steps_for(nw.from_native(frame))) is _Steps
    assert type(_steps_for(nw.from_native(frame))) is _PandasSteps


#: Outcome definitions overridden at random: the pandas outcomes are arrays compared with
#: the same thresholds as the expressions (integer and fractional percentages, cut-offs
#: on either side of the scores, no caseness cut-off).
criteria_overrides = st.fixed_dictionaries(
    {},
    optional={
        "response_reduction": st.sampled_from([50, 40.0, 33.3, 100]),
        "partial_response_reduction": st.sampled_from([25, 12.5, 0.1]),
        "remission_cutoff": st.integers(0, 12),
        "caseness_cutoff": st.one_of(st.none(), st.integers(0, 20)),
        "reliable_change": st.sampled_from([0.5, 4, 7.0, 12.25]),
        "severity_bands": st.integers(0, 1),  # which of the instrument's schemes
    },
)


#: Rows per block of the fast path's array arithmetic (``analysis._frames.BLOCK_ROWS``):
#: the default (one block on these small frames) or a few rows, so that values cross
#: block boundaries as they do on a large frame.
block_rows = st.sampled_from([None, 1, 2, 5])


@contextlib.contextmanager
def blocks_of(rows: int | None):
    """``analysis._frames.BLOCK_ROWS`` set to ``rows`` (the default if ``None``) inside."""
    from analysis import _frames

    with pytest.MonkeyPatch.context() as patch:
        if rows is not None:
            patch.setattr(_frames, "BLOCK_ROWS", rows)
        yield


@settings(max_examples=40)
@given(
    cohort=cohorts(),
    instrument=st.sampled_from(sorted(INSTRUMENTS)),
    impute=st.sampled_from(IMPUTE),
    criteria=st.one_of(st.none(), criteria_overrides),
    rows=block_rows,
)
def test_fast_path_equals_generic_steps(cohort, instrument, impute, criteria, rows):
    if criteria is not None:
        criteria = dict(criteria)
        if "severity_bands" in criteria:
            schemes = sorted(INSTRUMENTS[instrument].bands)
            criteria["severity_bands"] = schemes[criteria["severity_bands"] % len(schemes)]
        partial = criteria.get("partial_response_reduction", 25)
        criteria["response_reduction"] = max(criteria.get("response_reduction", 50), partial)
    if instrument == "HAMA":  # Jacobson-Truax from the data needs two varying baselines
        criteria = {"reliable_change": 7.0} | (criteria or {})
    with blocks_of(rows):
        fast, generic = _both(
            derive_endpoints, cohort, instrument, impute=impute, criteria=criteria
        )
    pd.testing.assert_frame_equal(fast, generic)


@given(cohort=cohorts(), instrument=st.sampled_from(sorted(INSTRUMENTS)))
def test_fast_path_baseline_sums_equal_the_generic_ones(cohort, instrument):
    # The Jacobson-Truax sums (count, sum and sum of squares of the scores; of the scores
    # and each item over the rows with every item answered) on arrays equal those of the
    # narwhals expressions exactly: whole numbers add up exactly in any order. All scored
    # rows are summed here (the derivation passes the chosen baselines).
    from analysis import endpoints

    inst = INSTRUMENTS[instrument]
    visits = [v for v in DEFAULT_SCHEDULE if instrument in v.instruments]
    keep = ["patient_id", "study_day", "n_items_answered", *inst.item_columns]
    scored = endpoints._Steps().score(endpoints._assessments(cohort, inst), inst, visits, keep)
    for items in (True, False):
        fast = _PandasSteps().baseline_sums(scored, inst, items=items)
        generic = _Steps().baseline_sums(scored, inst, items=items)
        assert fast.keys() == generic.keys()
        assert {k: float(v) for k, v in fast.items()} == {k: float(v) for k, v in generic.items()}


@settings(max_examples=20)
@given(cohort=cohorts(), rows=block_rows)
def test_fast_path_equals_generic_steps_for_accounting(cohort, rows):
    with blocks_of(rows):
        fast, generic = _both(endpoint_accounting, cohort)
    pd.testing.assert_frame_equal(fast, generic)


@pytest.mark.parametrize("instrument", sorted(INSTRUMENTS))
def test_fast_path_equals_generic_steps_with_reliability_from_data(instrument):
    from test_endpoints_backends import random_assessments

    cohort = random_assessments(80, seed=3)
    # the same cohort with float items and totals (NaN missing): the fast path scores the
    # floats as they are (no Int64 round trip), the threshold and rows are the same
    floats = _as_floats(cohort)
    for impute in IMPUTE:
        fast, generic = _both(derive_endpoints, cohort, instrument, impute=impute)
        pd.testing.assert_frame_equal(fast, generic)
        assert len(fast) > 50  # a cohort that exercises the derivation
        fast_floats, generic_floats = _both(derive_endpoints, floats, instrument, impute=impute)
        pd.testing.assert_frame_equal(fast_floats, fast)
        pd.testing.assert_frame_equal(generic_floats, fast)


@pytest.mark.parametrize("value", [1.5, np.inf, -np.inf])
@pytest.mark.parametrize("rows", [None, 4])
def test_a_float_item_that_is_not_a_whole_number_is_refused_on_either_path(value, rows):
    from test_endpoints_backends import random_assessments

    floats = _as_floats(random_assessments(5, seed=1))
    # checked block by block (``rows``): the bad value in the last block
    floats.loc[floats.index[floats["instrument"] == "GAD7"][-1], "item_2"] = value
    for generic in (False, True):
        with _generic_steps() if generic else contextlib.nullcontext(), blocks_of(rows):
            with pytest.raises(ValueError, match="`item_2` of the assessments must hold whole"):
                derive_endpoints(floats, "GAD7")


def test_a_row_without_a_patient_id_has_no_baseline_on_either_path():
    # A row without an id belongs to no patient (a join never matches a missing key, on
    # Polars, DuckDB and Spark alike): the two id-less rows, one in the baseline window,
    # give no endpoint row and are accounted for as no_baseline; the patients are unchanged.
    cohort = pd.DataFrame(
        {
            "patient_id": ["b", None, "a", None, "b", "a"],
            "instrument": "GAD7",
            "study_day": [0, -2, -1, 8, 7, 30],
            "total": [15, 12, 18, 9, 10, 4],
        }
    )
    for impute in IMPUTE:
        fast, generic = _both(derive_endpoints, cohort, "GAD7", impute=impute)
        pd.testing.assert_frame_equal(fast, generic)
        assert fast["patient_id"].notna().all()
        with_ids = cohort.dropna(subset=["patient_id"])
        expected = derive_endpoints(with_ids, "GAD7", impute=impute)
        pd.testing.assert_frame_equal(fast.reset_index(drop=True), expected)
    fast, generic = _both(endpoint_accounting, cohort, "GAD7")
    pd.testing.assert_frame_equal(fast, generic)
    assert list(fast.loc[fast["patient_id"].isna(), "reason"]) == ["no_baseline"] * 2


_ID = st.one_of(
    st.text(max_size=3),
    st.integers(-3, 3),
    st.sampled_from([None, np.nan, "P0001", "p0001", "P0010"]),
)


@given(ids=st.lists(_ID, max_size=30), as_string=st.booleans())
def test_sorted_codes_are_pandas_sorted_factorisation(ids, as_string):
    """The patient codes of the pandas fast path are ``pd.factorize(..., sort=True)``'s,
    whatever the ids: text, integers, a mix that does not sort, missing values."""
    series = pd.Series(ids, dtype=object)
    if as_string:
        series = series.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        series = series.astype("string")
    try:
        expected, uniques = pd.factorize(series, sort=True)
    except TypeError:
        with pytest.raises(TypeError):
            _sorted_codes(series)
        return
    for sorted_codes in (_sorted_codes, _sorted_value_codes):  # by identity first, or not
        codes, n_ids = sorted_codes(series)
        np.testing.assert_array_equal(codes, expected)
        assert n_ids == len(uniques)


@given(
    picks=st.lists(st.integers(0, 7), max_size=60),
    pool=st.lists(st.sampled_from(["P1", "P2", "P10", ""]), min_size=8, max_size=8),
)
def test_identity_codes_number_the_objects_and_sorted_codes_merge_equal_values(picks, pool):
    """Rows holding one object share a code, rows holding equal strings in different
    objects do not (the pool holds equal values as distinct objects); the sorted codes,
    factorised by value afterwards, are pandas' all the same."""
    objects = [("#" + value)[1:] for value in pool]  # a new object for every value
    values = np.empty(len(picks), dtype=object)
    values[:] = [objects[k] for k in picks]
    found = _identity_codes(values)
    assert (found is None) == (not picks)  # a few blocks of memory fit the slot table
    if found is not None:
        codes, distinct = found
        assert codes.min() == 0 and codes.max() == len(distinct) - 1
        assert all(distinct[c] is v for c, v in zip(codes, values, strict=True))
        assert len({id(v) for v in values}) == len(distinct)
    series = pd.Series(values, dtype=object)
    codes, n_ids = _sorted_codes(series)
    expected, uniques = pd.factorize(series, sort=True)
    np.testing.assert_array_equal(codes, expected)
    assert n_ids == len(uniques)


def test_objects_spread_too_far_for_the_slot_table_are_hashed(monkeypatch):
    """Where the slot table would grow past its bound (here: blocks made huge), the
    objects are not numbered by address, and the codes are pandas' all the same."""
    import analysis.endpoints

    monkeypatch.setattr(analysis.endpoints, "_BLOCK_BITS", 48)
    values = np.array([("#" + v)[1:] for v in ["b", "a", "b", "c"] * 3], dtype=object)
    assert _identity_codes(values) is None
    codes, n_ids = _sorted_codes(pd.Series(values))
    np.testing.assert_array_equal(codes, [1, 0, 1, 2] * 3)
    assert n_ids == 3


def test_ids_read_from_a_file_are_numbered_by_identity(tmp_path):
    """A CSV's and a Parquet file's ids are few objects repeated: the fast numbering
    applies to what the readers give, not only to the benchmark's data."""
    ids = np.repeat([f"P{k:05d}" for k in range(5000)], 8)
    pd.DataFrame({"patient_id": ids}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"patient_id": ids}).to_parquet(tmp_path / "a.parquet")
    for column in (
        pd.read_csv(tmp_path / "a.csv")["patient_id"],
        pd.read_parquet(tmp_path / "a.parquet")["patient_id"].astype(object),
    ):
        found = _identity_codes(column.to_numpy())
        assert found is not None and len(found[1]) <= len(ids) // 2


def test_an_instrument_without_rows_gives_the_same_empty_results():
    cohort = pd.DataFrame(
        {"patient_id": ["a", "a"], "instrument": "GAD7", "study_day": [0, 7], "total": [9, 4]}
    )
    for impute in IMPUTE:
        fast, generic = _both(derive_endpoints, cohort, "HAMA", impute=impute)
        pd.testing.assert_frame_equal(fast, generic)
        assert fast.empty
    fast, generic = _both(endpoint_accounting, cohort.iloc[0:0])
    pd.testing.assert_frame_equal(fast, generic)


_column_values = st.one_of(
    st.lists(st.integers(-5, 5), min_size=4, max_size=4).map(np.array),
    st.lists(st.floats(allow_nan=True), min_size=4, max_size=4).map(np.array),
    st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=4, max_size=4).map(
        lambda v: pd.array(v, dtype="Int64")
    ),
    st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=4, max_size=4).map(
        lambda v: pd.Series(v, index=[9, 8, 7, 6], dtype=object)  # its index is not used
    ),
)


@given(
    base=st.dictionaries(st.sampled_from("abcdef"), _column_values, min_size=1),
    columns=st.dictionaries(st.sampled_from("abcxyz"), _column_values),
)
def test_replace_columns_small_frames_equal_the_concatenation(base, columns, monkeypatch_module):
    """Small frames take a shallow copy: the same frame as the concatenation of columns,
    and the frame passed in unchanged."""
    from analysis import _frames

    native = pd.DataFrame({k: pd.Series(v).array for k, v in base.items()}, index=[3, 1, 2, 0])
    before = native.copy(deep=True)
    small = _frames.replace_columns(native, columns)
    with monkeypatch_module.context() as patch:
        patch.setattr(_frames, "SMALL_FRAME_ROWS", -1)
        concatenated = _frames.replace_columns(native, columns)
    pd.testing.assert_frame_equal(small, concatenated)
    pd.testing.assert_frame_equal(native, before)


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A monkeypatch a property test may use (each example undoes its own changes)."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_pandas_steps_do_not_keep_the_encoded_assessments(monkeypatch):
    # _PandasSteps.encode hands the assessments with coded ids over to the derivation;
    # holding them on the steps object kept them (0.7 GB at 1,000,000 patients) alive
    # through every later step, and the peak of a derivation a quarter higher.
    import gc
    import weakref

    from test_endpoints_backends import random_assessments

    encoded, alive = [], []
    encode, rows = _PandasSteps.encode, _PandasSteps.rows

    def spied_encode(self, frame):
        out = encode(self, frame)
        encoded.append(weakref.ref(out.to_native()))
        return out

    def spied_rows(self, frame, visits, impute):
        gc.collect()
        alive.append(encoded[-1]() is not None)
        return rows(self, frame, visits, impute)

    monkeypatch.setattr(_PandasSteps, "encode", spied_encode)
    monkeypatch.setattr(_PandasSteps, "rows", spied_rows)
    result = derive_endpoints(random_assessments(40, seed=5), "GAD7")
    assert len(result) > 20
    assert alive == [False]
