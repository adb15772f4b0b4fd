"""The fast paths of the pandas validation equal their plain forms.

Every ``load_cohort``, ``validate`` and ``collect_failures`` types each column and applies
its Table Schema checks (``analysis._checks``). On the small tables of the property tests
pandas' fixed cost per operation was most of a validation, so two steps have a numpy
form, each held equal here to the plain pandas form it replaced:

- the range checks of an ``Int64`` or ``Float64`` column (``_check_result(..., fast=False)``
  is the pandas comparison);
- the text checks of a ``string`` column (``_passes(..., fast=False)``: ``isin``,
  ``Series.str.match`` and ``Series.str.len`` on a Series of the distinct values);
- the foreign-key lookup of a one-column key (``schema._unknown_keys(..., fast=False)``:
  MultiIndex of the child's and the parent's key frames);
- the message of a :class:`DataValidationError` (``_summarise(..., fast=False)``: the
  counts per table, column and check by a pandas groupby);
- the typed conversion (``_Coercer.__call__(..., fast=False)``): the column's object
  array is factorized rather than an object Series, and whole-number text is read by
  ``int`` rather than ``pandas.to_numeric``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from hypothesis import example, given
from hypothesis import strategies as st

from analysis._checks import _WHOLE, _check_result, _passes, _table_validator
from analysis.cohort import TABLES, DataValidationError
from analysis.deid import DeidentificationError
from analysis.schema import _unknown_keys

_bounds = st.one_of(
    st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False, width=64)
)


@st.composite
def range_checks(draw):
    kind = draw(st.sampled_from(["in_range", "ge", "le", "gt", "lt"]))
    low = draw(_bounds)
    if kind == "in_range":
        high = draw(_bounds.filter(lambda x: x >= low))
        include = (True, True) if high == low else (draw(st.booleans()), draw(st.booleans()))
        return pa.Check.in_range(low, high, include_min=include[0], include_max=include[1])
    return getattr(pa.Check, kind)(low)


def _schema_checks():
    """Every check of every schema column, with the column's dtype."""
    out = []
    for table in TABLES:
        validator = _table_validator(table)
        for name, column in validator.pandera.columns.items():
            for check in column.checks:
                out.append((validator.coercers[name].dtype, check))
    return out


_numbers = st.one_of(
    st.none(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)


@st.composite
def numeric_columns(draw):
    """An Int64 or Float64 column, with missing cells and (Float64) NaN that is not NA."""
    values = draw(st.lists(_numbers, max_size=12))
    if draw(st.booleans()):
        whole = [v for v in values if isinstance(v, int)] + [None] * values.count(None)
        return pd.Series(pd.array(whole, dtype="Int64"))
    data = np.array([0.0 if v is None else float(v) for v in values], dtype=float)
    missing = np.array([v is None for v in values], dtype=bool)
    if draw(st.booleans()):  # NaN as missing, as pandas makes it from a float array
        missing |= np.isnan(data)
    return pd.Series(pd.arrays.FloatingArray(data, missing))


@given(
    values=numeric_columns(),
    check=st.one_of(
        range_checks(),
        st.sampled_from([c for dtype, c in _schema_checks() if dtype in ("Int64", "Float64")]),
    ),
)
def test_checks_of_number_columns_equal_the_pandas_comparisons(values, check):
    fast = _check_result(check, values)
    plain = _check_result(check, values, fast=False)
    assert fast.dtype == plain.dtype == bool
    np.testing.assert_array_equal(fast, plain)


def test_the_schema_checks_of_number_columns_take_the_numpy_form():
    """The fast form is the one the schema's numeric checks reach (not an unused branch)."""
    numeric = [c for dtype, c in _schema_checks() if dtype in ("Int64", "Float64")]
    assert numeric
    values = pd.Series(pd.array([None, 1, 2, 99], dtype="Int64"))
    fast = [_check_result(c, values) for c in numeric]
    assert all(isinstance(r, np.ndarray) and r.dtype == bool and r[0] for r in fast)


_words = st.text(st.sampled_from("aAz09_-. \u00e9\n"), max_size=6)


@st.composite
def text_checks(draw):
    kind = draw(st.sampled_from(["isin", "str_matches", "str_length"]))
    if kind == "isin":
        allowed = draw(st.lists(st.one_of(_words, st.integers(0, 9)), max_size=4))
        return pa.Check.isin(allowed)
    if kind == "str_matches":
        pattern = draw(st.sampled_from(["^[a-z]+$", "[A-Z]", "a|z$", r"\d{2}", "^$", ".", "z"]))
        return pa.Check.str_matches(pattern)
    low = draw(st.one_of(st.none(), st.integers(0, 4)))
    high = draw(st.one_of(st.none(), st.integers(low or 0, 6)))
    if low is None and high is None:
        low = 0
    return pa.Check.str_length(low, high)


@given(
    values=st.lists(st.one_of(st.none(), _words), max_size=12),
    check=st.one_of(
        text_checks(),
        st.sampled_from([c for dtype, c in _schema_checks() if dtype == "string"]),
    ),
)
@example(values=["Ab", "a", None, "ab\n", "b"], check=pa.Check.str_matches("[A-Z]|a$"))
@example(values=["1", "x", None], check=pa.Check.isin([1, "x"]))
@example(values=[" ab ", "\u00e9", "", None], check=pa.Check.str_length(1, 3))
def test_text_checks_equal_the_pandas_string_methods(values, check):
    column = pd.Series(values, dtype="string", index=pd.RangeIndex(5, 5 + len(values)))
    fast = _passes(check, column)
    plain = _passes(check, column, fast=False)
    assert fast.dtype == plain.dtype == bool
    np.testing.assert_array_equal(fast, plain)


_text_numbers = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{1,18}\Z"),  # whole numbers, some longer than 15 digits
    st.from_regex(r"\A *[+-]?[0-9]{0,4}\.?[0-9]{0,4}(e[+-]?[0-9]{1,3})? *\Z"),
    st.sampled_from(["", " ", "NA", "inf", "-inf", "nan", "1_000", "0x10", "١٢", "yes"]),
    st.text(max_size=4),
)
_cells = st.one_of(
    _text_numbers,
    st.none(),
    st.just(np.nan),
    st.just(pd.NA),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(width=64),
)
_fields = [(t, n) for t in TABLES for n in _table_validator(t).coercers]


@given(
    field=st.sampled_from(_fields),
    values=st.lists(_cells, max_size=10),
    dtype=st.sampled_from([object, "string", "category"]),
)
@example(field=("assessments", "item_1"), values=["1", "02", "+3", None, "", "1"], dtype=object)
@example(field=("assessments", "total"), values=["9" * 16, "-0", "12"], dtype=object)
@example(field=("assessments", "study_day"), values=["1_000", "7"], dtype=object)
@example(field=("assessments", "study_day"), values=["\uff11\uff12", "7"], dtype=object)
@example(field=("patients", "comorbid_depression"), values=["Yes", "0", None], dtype="string")
def test_typed_conversion_equals_the_plain_form(field, values, dtype):
    table, name = field
    coercer = _table_validator(table).coercers[name]
    if dtype is not object:
        values = [v if isinstance(v, str) or v is None else None for v in values]
    raw = pd.Series(values, dtype=dtype, index=pd.RangeIndex(3, 3 + len(values)))
    typed, bad = coercer(raw)
    plain_typed, plain_bad = coercer(raw, fast=False)
    pd.testing.assert_series_equal(typed, plain_typed)
    np.testing.assert_array_equal(bad, plain_bad)


@given(st.from_regex(r"\A[+-]?[0-9]{1,15}\Z"))
def test_whole_number_text_reads_alike_with_int_and_pandas(text):
    """What ``_WHOLE`` lets through is read the same, and exactly, by both."""
    assert _WHOLE.fullmatch(text)
    through_pandas = pd.to_numeric(pd.Series([text], dtype=object)).astype("Float64")
    assert float(int(text)) == through_pandas.to_numpy(dtype=float)[0] == int(text)


_key_values = st.one_of(st.none(), st.integers(0, 5))


@given(
    child=st.lists(_key_values, max_size=10),
    parent=st.lists(_key_values, max_size=6),
    dtype=st.sampled_from(["string", "Int64", object]),
    mixed=st.booleans(),
)
@example(child=["P1", "P2", None], parent=["P1", None], dtype="string", mixed=False)
def test_unknown_keys_of_one_column_equal_the_multiindex_lookup(child, parent, dtype, mixed):
    def column(values):
        if dtype == "string" or (dtype is object and mixed):
            values = [v if v is None or isinstance(v, str) else f"P{v}" for v in values]
        if dtype is object and mixed:  # text and numbers side by side: "P1" is not 1
            values = [
                v if k % 2 else (None if v is None else int(v[1:])) for k, v in enumerate(values)
            ]
        return pd.Series(values, dtype=dtype)

    child_frame = pd.DataFrame(
        {"patient_id": column(child)}, index=pd.RangeIndex(7, 7 + len(child))
    )
    parent_frame = pd.DataFrame({"patient_id": column(parent)})
    args = (child_frame, ["patient_id"], parent_frame, ["patient_id"])
    fast = _unknown_keys(*args)
    plain = _unknown_keys(*args, fast=False)
    assert fast.dtype == plain.dtype == bool
    np.testing.assert_array_equal(fast, plain)


_failure_rows = st.tuples(
    st.sampled_from([*TABLES, "other_table", "Patients"]),
    st.sampled_from(["patient_id", "age", "(row)", "item_1", "Age", "total, study_day"]),
    st.sampled_from(
        [
            "type integer",
            "in_range 0-21 for GAD7",
            "foreign_key patients.patient_id",
            "unique patient_id",
            "email",
            "required_column",
            "Type integer",
        ]
    ),
    st.one_of(st.none(), st.integers(0, 50)),
)


@given(
    rows=st.lists(_failure_rows, max_size=30),
    max_lines=st.integers(1, 45),
    error=st.sampled_from([DataValidationError, DeidentificationError]),
)
@example(
    rows=[("sessions", "age", "type integer", None), ("patients", "age", "type integer", 3)]
    + [("patients", "age", "type integer", 4), ("other_table", "(row)", "email", 1)],
    max_lines=40,
    error=DataValidationError,
)
def test_the_error_message_equals_the_groupby_form(rows, max_lines, error):
    failures = pd.DataFrame(rows, columns=["table", "column", "check", "row"])
    failures = failures.astype({"table": "string", "column": "string", "check": "string"})
    failures["row"] = failures["row"].astype("Int64")
    fast = error._summarise(failures, max_lines)
    assert fast == error._summarise(failures, max_lines, fast=False)
