"""The disclosure audit's fast paths give the results of the plain computations.

Every rendered batch is audited (``run_reports`` audits its staging folder), so the audit
is on the path of every report test. Two of its steps have a fast form, each checked
here against its reference on random inputs:

- typing a table read as text (``_typed``; reference ``_typed_generic``, pandas' string
  methods on every column);
- the interval check of hidden cells (``_interval_disclosed``: ``prune=True`` skips the
  linear programs of cells that feasible points already show are not disclosed, and
  seeks the largest value first; ``prune=False`` solves both programs for every cell;
  ``persistent=True`` keeps one HiGHS model per system and changes only the objective,
  ``persistent=False`` calls ``scipy.optimize.linprog`` for every program).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analysis.disclosure import _interval_disclosed, _persistent_highs, _typed, _typed_generic

#: Cell texts as the audit reads them: numbers (signs, decimals, exponents, padding),
#: marks and labels, missing cells; and, in frames built in memory, non-text objects.
NUMBERS = st.from_regex(r"\A ?[+-]?(\d{1,3}(\.\d{0,2})?|\.\d{1,2})([eE][+-]?\d)? ?\Z")
TEXTS = st.one_of(
    NUMBERS,
    st.sampled_from(["<11", "suppressed", "12 (40.0%)", "-", "", " ", "nan", "1\n", "iv"]),
    st.text(max_size=4),
)
CELLS = st.one_of(st.none(), TEXTS)
OBJECTS = st.one_of(CELLS, st.integers(-5, 50), st.floats(allow_nan=True), st.just(pd.NA))


@st.composite
def frames(draw):
    n_rows = draw(st.integers(0, 6))
    columns = {}
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["text", "objects", "float", "int", "string"]))
        if kind == "text":
            columns[f"c{k}"] = pd.Series(
                draw(st.lists(CELLS, min_size=n_rows, max_size=n_rows)), dtype=object
            )
        elif kind == "objects":
            columns[f"c{k}"] = pd.Series(
                draw(st.lists(OBJECTS, min_size=n_rows, max_size=n_rows)), dtype=object
            )
        elif kind == "float":
            values = draw(
                st.lists(
                    st.floats(allow_nan=True, allow_infinity=False),
                    min_size=n_rows,
                    max_size=n_rows,
                )
            )
            columns[f"c{k}"] = pd.Series(values, dtype="float64")
        elif kind == "int":
            columns[f"c{k}"] = pd.Series(
                draw(st.lists(st.integers(-9, 99), min_size=n_rows, max_size=n_rows)), dtype="int64"
            )
        else:
            values = draw(st.lists(st.one_of(st.none(), NUMBERS), min_size=n_rows, max_size=n_rows))
            columns[f"c{k}"] = pd.Series(values, dtype="string")
    return pd.DataFrame(columns)


@given(frames())
@example(pd.DataFrame({"n": ["12", " 3.5 ", None], "label": ["iv", "12", None]}, dtype=object))
@example(pd.DataFrame({"n": [None, None]}, dtype=object))
@example(pd.DataFrame({"n": ["1e3", "+.5", "-7."]}, dtype=object))
@example(pd.DataFrame({"n": ["12", 13]}, dtype=object))  # not all text: the generic path
def test_typed_equals_the_generic_typing(df):
    fast = _typed(df)
    pd.testing.assert_frame_equal(fast, _typed_generic(df))
    assert fast is not df


@st.composite
def systems(draw):
    """``matrix @ x = rhs`` with coefficients -1, 0, 1 (margins: a total minus its parts),
    usually solved by counts of 0 to 15 (sometimes made inconsistent)."""
    n_vars = draw(st.integers(1, 6))
    n_rows = draw(st.integers(1, 4))
    matrix = np.array(
        draw(
            st.lists(
                st.lists(st.sampled_from([-1.0, 0.0, 1.0, 1.0]), min_size=n_vars, max_size=n_vars),
                min_size=n_rows,
                max_size=n_rows,
            )
        )
    )
    counts = np.array(
        draw(st.lists(st.integers(0, 15), min_size=n_vars, max_size=n_vars)), dtype=float
    )
    rhs = matrix @ counts
    if draw(st.booleans()) and draw(st.booleans()):
        rhs[draw(st.integers(0, n_rows - 1))] += draw(st.integers(1, 5))
    min_cell = draw(st.integers(2, 11))
    return matrix, rhs, min_cell


@settings(max_examples=100)
@given(systems())
@example((np.array([[-1.0, 1.0, 1.0]]), np.array([-12.0]), 11))  # total 12: 0..12 each
@example((np.array([[1.0, 1.0]]), np.array([1.0]), 11))  # two cells adding up to 1
@example((np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]), np.array([5.0, 5.0]), 11))
@example((np.array([[1.0, -1.0]]), np.array([3.0]), 11))  # x0 = 3 + x1: unbounded
@example((np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([2.0, 3.0]), 11))  # infeasible
@example((np.array([[1.0, 1.0, 1.0]]), np.array([3.0]), 4))  # 0..3 each: within 1..3? no
@example((np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([4.0, 1.0]), 11))  # both determined
def test_pruned_interval_check_finds_the_cells_of_the_full_check(system):
    matrix, rhs, min_cell = system
    position = {k: k for k in range(matrix.shape[1])}
    cells = list(range(matrix.shape[1]))
    reference = _interval_disclosed(
        matrix, rhs, position, cells, min_cell, prune=False, persistent=False
    )
    assert _interval_disclosed(matrix, rhs, position, cells, min_cell) == reference
    assert _interval_disclosed(matrix, rhs, position, cells, min_cell, prune=False) == reference
    assert (
        _interval_disclosed(matrix, rhs, position, cells, min_cell, persistent=False) == reference
    )


def test_the_interval_check_finds_small_and_narrow_ranges_with_either_solver():
    # x0 + x1 = 3 with x1 = 1 given by a second margin: x0 = 2 exactly (small);
    # x2 + x3 = 1: each 0 or 1 (narrow); x4 + x5 = 30: 0 .. 30 (not disclosed)
    matrix = np.array(
        [
            [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        ]
    )
    rhs = np.array([3.0, 1.0, 1.0, 30.0])
    position = {k: k for k in range(6)}
    for persistent in (True, False):
        found = _interval_disclosed(
            matrix, rhs, position, list(range(6)), 11, persistent=persistent
        )
        assert found == {0, 1, 2, 3}, persistent


def test_the_persistent_model_is_used_where_scipy_binds_highs():
    # scipy 1.15 and later ship the binding: the audit's programs must not fall back to
    # a linprog call each there (about 7x slower on a report batch).
    major, minor = (int(part) for part in scipy.__version__.split(".")[:2])
    if (major, minor) < (1, 15):
        assert _persistent_highs(np.ones((1, 2)), np.ones(1)) is None
        return
    solve = _persistent_highs(np.array([[1.0, 1.0]]), np.array([5.0]))
    assert solve is not None
    value, x = solve(np.array([-1.0, 0.0]))  # the largest x0 with x0 + x1 = 5
    assert value == -5.0 and list(x) == [5.0, 0.0]
    value, x = solve(np.array([1.0, -1.0]))  # the same model, another objective
    assert value == -5.0 and list(x) == [0.0, 5.0]
    unbounded = _persistent_highs(np.array([[1.0, -1.0]]), np.array([3.0]))
    assert unbounded(np.array([-1.0, 0.0])) is None  # x0 = 3 + x1 grows without bound
