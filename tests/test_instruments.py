"""GAD-7 and HAM-A definitions (docs/references.md) and item scoring (docs/design.md, Scoring)."""

from __future__ import annotations

from dataclasses import replace

import narwhals as nw
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.instruments import (
    GAD7,
    HAMA,
    INSTRUMENTS,
    MAX_ITEMS,
    Criteria,
    answered_expr,
    get_instrument,
    item_sum_expr,
    score_expr,
    score_items,
)

# --- Constants, each against docs/references.md ----------------------------------------------------


def test_gad7_ranges_spitzer_2006():
    # Spitzer et al. 2006: 7 items scored 0-3, total 0-21.
    assert (GAD7.name, GAD7.n_items, GAD7.item_min, GAD7.item_max, GAD7.total_max) == (
        "GAD7",
        7,
        0,
        3,
        21,
    )
    assert GAD7.items[0] == "Feeling nervous, anxious, or on edge"
    assert GAD7.items[6].startswith("Feeling afraid")
    assert GAD7.max_missing_items == 1  # convention: prorate at most one missing item
    assert "Spitzer" in GAD7.source


def test_hama_ranges_hamilton_1959():
    # Hamilton 1959: 14 items scored 0-4, total 0-56.
    assert (HAMA.name, HAMA.n_items, HAMA.item_max, HAMA.total_max) == ("HAMA", 14, 4, 56)
    assert HAMA.items[0] == "Anxious mood" and HAMA.items[13] == "Behaviour at interview"
    assert HAMA.max_missing_items == 2  # convention: prorate at most two missing items
    assert "Hamilton" in HAMA.source
    assert max(i.n_items for i in INSTRUMENTS.values()) == MAX_ITEMS


def test_hama_subscales_partition_the_items():
    # Psychic items 1-6 and 14, somatic items 7-13 (docs/references.md, Maier et al. 1988).
    assert HAMA.subscales["psychic"] == (1, 2, 3, 4, 5, 6, 14)
    assert HAMA.subscales["somatic"] == (7, 8, 9, 10, 11, 12, 13)
    both = sorted(HAMA.subscales["psychic"] + HAMA.subscales["somatic"])
    assert both == list(range(1, HAMA.n_items + 1))
    assert GAD7.subscales == {}


@pytest.mark.parametrize(
    ("bands", "scores", "expected"),
    [
        # GAD-7, Spitzer 2006: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe.
        (
            GAD7.severity_bands,
            [0, 4, 5, 9, 10, 14, 15, 21],
            ["minimal"] * 2 + ["mild"] * 2 + ["moderate"] * 2 + ["severe"] * 2,
        ),
        # HAM-A, Matza et al. 2010: 0-7 minimal, 8-14 mild, 15-23 moderate, >= 24 severe.
        (
            HAMA.severity_bands,
            [0, 7, 8, 14, 15, 23, 24, 56],
            ["minimal"] * 2 + ["mild"] * 2 + ["moderate"] * 2 + ["severe"] * 2,
        ),
        # HAM-A score sheet: <= 17 mild, 18-24 mild to moderate, 25-30 moderate to severe,
        # > 30 severe.
        (
            HAMA.band("score_sheet"),
            [0, 17, 18, 24, 25, 30, 31, 56],
            ["mild"] * 2 + ["mild_to_moderate"] * 2 + ["moderate_to_severe"] * 2 + ["severe"] * 2,
        ),
    ],
)
def test_severity_band_boundaries(bands, scores, expected):
    assert bands.classify(scores) == expected
    assert bands.source


def test_default_criteria():
    # GAD-7: remission score < 5, NHS Talking Therapies reliable change 4 and caseness 8.
    assert GAD7.criteria.response_reduction == 50
    assert GAD7.criteria.partial_response_reduction == 25
    assert GAD7.criteria.remission_cutoff == 4
    assert GAD7.criteria.reliable_change == 4
    assert GAD7.criteria.caseness_cutoff == 8
    # HAM-A: remission <= 7, Jacobson-Truax from the data, no caseness (no recovery).
    assert HAMA.criteria.remission_cutoff == 7
    assert HAMA.criteria.reliable_change is None
    assert HAMA.criteria.caseness_cutoff is None
    assert HAMA.criteria.rci_z == 1.96
    assert HAMA.severity_bands.name == "matza2010"


def test_criteria_reject_inconsistent_values():
    with pytest.raises(ValueError, match="partial_response_reduction <= response_reduction"):
        Criteria(response_reduction=20, partial_response_reduction=25)
    with pytest.raises(ValueError, match="`reliability` must lie in"):
        Criteria(reliability=1.0)
    with pytest.raises(ValueError, match="`reliable_change` must be a positive"):
        replace(GAD7.criteria, reliable_change=0)


def test_get_instrument():
    assert get_instrument("GAD7") is GAD7
    assert get_instrument(HAMA) is HAMA
    with pytest.raises(ValueError, match=r"`instrument` must be one of \['GAD7', 'HAMA'\]"):
        get_instrument("PHQ9")
    with pytest.raises(ValueError, match="`severity_bands` must be one of"):
        HAMA.band("nope")


# --- score_items --------------------------------------------------------------------------------


def _rows(instrument, items, total=None):
    """One assessment row with the given item values (None = missing)."""
    row = {"patient_id": "p", "instrument": instrument.name, "study_day": 0, "total": total}
    row |= {f"item_{k}": None for k in range(1, MAX_ITEMS + 1)}
    row |= {f"item_{k}": v for k, v in enumerate(items, start=1)}
    return row


def _score(instrument, items, total=None):
    out = score_items(pd.DataFrame([_rows(instrument, items, total)]))
    return out.iloc[0]


def test_complete_items_are_summed():
    row = _score(GAD7, [3, 2, 2, 1, 1, 1, 2])
    assert (row.score, row.n_items_answered, row.prorated, row.severity) == (
        12,
        7,
        False,
        "moderate",
    )


@pytest.mark.parametrize(
    ("instrument", "items", "total", "expected", "prorated"),
    [
        # GAD-7, one item missing: six items summing to 9 -> 9 / 6 x 7 = 10.5 -> 11 (half up;
        # Python's round would give 10).
        (GAD7, [3, 3, 3, 0, 0, 0, None], None, 11, True),
        # six items summing to 10 -> 11.67 -> 12; a recorded total does not override.
        (GAD7, [3, 2, 2, 1, 1, 1, None], 13, 12, True),
        # two items missing: more than max_missing_items -> the recorded total.
        (GAD7, [3, 2, 2, 1, 1, None, None], 13, 13, False),
        # ... and no total: unscorable.
        (GAD7, [3, 2, 2, 1, 1, None, None], None, None, False),
        # no items, a total: the total.
        (GAD7, [], 15, 15, False),
        # HAM-A, two missing: 12 items summing to 9 -> 9 / 12 x 14 = 10.5 -> 11.
        (HAMA, [1] * 9 + [0, 0, 0, None, None], None, 11, True),
        # HAM-A, three missing -> total.
        (HAMA, [2] * 11 + [None] * 3, 30, 30, False),
        (HAMA, [2] * 11 + [None] * 3, None, None, False),
    ],
)
def test_proration_boundaries(instrument, items, total, expected, prorated):
    row = _score(instrument, items, total)
    if expected is None:
        assert pd.isna(row.score) and pd.isna(row.severity)
    else:
        assert row.score == expected
    assert row.prorated == prorated
    assert row.n_items_answered == sum(v is not None for v in items)


def test_hama_subscales_only_when_complete():
    items = [3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 1, 2]
    row = _score(HAMA, items)
    assert row.psychic == 3 + 3 + 3 + 2 + 2 + 2 + 2
    assert row.somatic == 1 + 1 + 1 + 0 + 0 + 0 + 1
    assert row.score == row.psychic + row.somatic
    # A missing somatic item: the total is prorated, the somatic subscale is not.
    row = _score(HAMA, items[:8] + [None] + items[9:])
    assert row.prorated and row.psychic == 17 and pd.isna(row.somatic)
    # GAD-7 rows have no subscales.
    assert pd.isna(_score(GAD7, [1] * 7).psychic)


def test_score_items_mixed_instruments_keeps_columns_and_input():
    df = pd.DataFrame(
        [_rows(GAD7, [1] * 7) | {"rater_id": "r1"}, _rows(HAMA, [2] * 14) | {"rater_id": "r2"}]
    )
    df = df.assign(instrument=["GAD7", "HAMA"])
    before = df.copy()
    out = score_items(df)
    pd.testing.assert_frame_equal(df, before)
    assert list(out.columns[: len(df.columns)]) == list(df.columns)
    assert out.score.tolist() == [7, 28]
    assert out.severity.tolist() == ["mild", "severe"]
    assert str(out.score.dtype) == "Int64" and str(out.prorated.dtype) == "boolean"


def test_score_items_total_only_frame_and_polars():
    df = pd.DataFrame(
        {"patient_id": ["a", "b"], "instrument": ["GAD7", "HAMA"], "study_day": [0, 0]}
    )
    df["total"] = [9, 30]
    out = score_items(df)
    assert out.score.tolist() == [9, 30]
    assert "item_1" not in out.columns
    polars_out = score_items(pl.from_pandas(df))
    assert isinstance(polars_out, pl.DataFrame)
    assert polars_out["score"].to_list() == [9, 30]


def test_score_items_rejects_fractional_items():
    df = pd.DataFrame([_rows(GAD7, [1.5, 1, 1, 1, 1, 1, 1])])
    with pytest.raises(ValueError, match="`item_1` of the assessments must hold whole numbers"):
        score_items(df)


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1.0, np.nan, 3.0]),
        pd.Series([1, np.nan, 2], dtype="float32"),
        pd.Series([1.0, None, 2.0], dtype="Float64"),
        pd.Series([1, None, 2], dtype="Int32"),
        pd.Series([1, 2, -3], dtype="int8"),
        pd.Series([1, None, "3"], dtype=object),
        pd.Series([], dtype=float),
    ],
    ids=["float", "float32", "Float64", "Int32", "int8", "object", "empty"],
)
def test_score_items_converts_any_integer_like_items_without_touching_the_input(values):
    n = len(values)
    df = pd.DataFrame({"patient_id": ["p"] * n, "instrument": "GAD7", "study_day": 0})
    df["study_day"] = df["study_day"].astype("int32")
    df["item_1"] = values.to_numpy()
    df["item_1"] = df["item_1"].astype(values.dtype)
    before = df.copy(deep=True)
    out = score_items(df)
    expected = pd.array([None if pd.isna(v) else int(v) for v in values], dtype="Int64")
    pd.testing.assert_extension_array_equal(out["item_1"].array, expected)
    assert str(out["study_day"].dtype) == "Int64"
    # The result shares no memory with the input: changing it leaves the input as it was.
    out.loc[:, ["item_1", "study_day"]] = 9
    pd.testing.assert_frame_equal(df, before)


def test_score_expressions_agree_across_engines_and_forms():
    # score_expr from the stock expressions or from columns computed beforehand.
    rng = np.random.default_rng(3)
    items = rng.integers(0, 4, (200, 7)).astype(float)
    items[rng.random(items.shape) < 0.2] = np.nan
    df = pd.DataFrame(items, columns=GAD7.item_columns)
    df["total"] = rng.integers(0, 22, 200)
    expected = score_items(df.assign(instrument="GAD7"))["score"].tolist()
    for native in (df.astype("Int64"), pl.from_pandas(df).fill_nan(None)):
        frame = nw.from_native(native, eager_only=True)
        staged = frame.with_columns(_n=answered_expr(GAD7), _s=item_sum_expr(GAD7))
        staged = staged.with_columns(score=score_expr(GAD7, nw.col("_n"), nw.col("_s")))
        direct = frame.with_columns(score=score_expr(GAD7))
        for out in (staged, direct):
            assert [None if pd.isna(v) else v for v in out["score"].to_list()] == [
                None if pd.isna(v) else v for v in expected
            ]


@given(
    st.sampled_from([GAD7, HAMA]).flatmap(
        lambda i: st.tuples(
            st.just(i),
            st.lists(
                st.one_of(st.none(), st.integers(0, i.item_max)),
                min_size=i.n_items,
                max_size=i.n_items,
            ),
        )
    )
)
def test_score_is_in_range_and_matches_the_rules(case):
    instrument, items = case
    row = _score(instrument, items)
    answered = [v for v in items if v is not None]
    missing = instrument.n_items - len(answered)
    if missing == 0:
        assert row.score == sum(answered)
    elif missing <= instrument.max_missing_items:
        exact = sum(answered) * instrument.n_items / len(answered)
        assert row.score == int(np.floor(exact + 0.5))
        assert 0 <= row.score <= instrument.total_max
    else:
        assert pd.isna(row.score)


# --- Criteria overrides keep the instrument's own defaults (issue 13) -------------------------


def test_hama_override_keeps_hama_remission_and_jacobson_truax():
    # Issue 13: Criteria(response_reduction=40, severity_bands=...) for the HAM-A applied
    # the GAD-7 remission cut-off 4. Only the named fields may change.
    merged = Criteria(response_reduction=40, severity_bands="score_sheet").applied_to(HAMA.criteria)
    assert merged.response_reduction == 40
    assert merged.severity_bands == "score_sheet"
    assert merged.remission_cutoff == 7  # HAM-A <= 7 (docs/references.md, Khan et al. 2016)
    assert merged.reliable_change is None  # Jacobson-Truax from the data
    assert merged.caseness_cutoff is None
    assert merged.partial_response_reduction == 25


def test_gad7_override_keeps_reliable_change_4_and_caseness_8():
    merged = Criteria(response_reduction=40).applied_to(GAD7.criteria)
    assert merged.response_reduction == 40
    assert merged.remission_cutoff == 4
    assert merged.reliable_change == 4  # NHS Talking Therapies reliable improvement
    assert merged.caseness_cutoff == 8  # NHS Talking Therapies caseness
    assert merged.severity_bands == "spitzer2006"


def test_naming_reliability_asks_for_jacobson_truax_unless_reliable_change_named():
    assert Criteria(reliability=0.8).applied_to(GAD7.criteria).reliable_change is None
    both = Criteria(reliability=0.8, reliable_change=5).applied_to(GAD7.criteria)
    assert both.reliable_change == 5
    # An explicit None is a named value, not "use the default".
    assert Criteria(caseness_cutoff=None).applied_to(GAD7.criteria).caseness_cutoff is None


def test_criteria_named_fields_and_generic_values():
    c = Criteria(remission_cutoff=5)
    assert c.named == frozenset({"remission_cutoff"})
    assert c.response_reduction == 50 and c.reliable_change is None
    assert c == Criteria(remission_cutoff=5, response_reduction=50)  # == compares values
    assert replace(GAD7.criteria, rci_z=2.0).named >= {"rci_z", "remission_cutoff"}


@pytest.mark.parametrize("instrument", ["GAD7", "HAMA"])
@pytest.mark.parametrize("as_mapping", [False, True])
def test_derive_endpoints_override_changes_only_the_named_outcome(instrument, as_mapping):
    # End to end on the demo cohort: a new response threshold changes response only;
    # remission, reliable change, recovery and severity stay the instrument's.
    from analysis import derive_endpoints, synthetic_cohort

    cohort = synthetic_cohort(n_patients=150, seed=3)
    default = derive_endpoints(cohort, instrument)
    override = {"response_reduction": 40}
    changed = derive_endpoints(
        cohort, instrument, criteria=override if as_mapping else Criteria(**override)
    )
    for column in (
        "remission",
        "reliable_improvement",
        "reliable_deterioration",
        "recovery",
        "severity",
    ):
        pd.testing.assert_series_equal(changed[column], default[column])
    expected = (changed["pct_change"] <= -40).astype("boolean")
    expected[changed["pct_change"].isna()] = pd.NA
    pd.testing.assert_series_equal(changed["response"], expected, check_names=False)
    assert (changed["response"].fillna(False) >= default["response"].fillna(False)).all()


_OVERRIDES = {
    "response_reduction": st.sampled_from([40.0, 50.0, 60.0]),
    "remission_cutoff": st.integers(0, 10),
    "reliable_change": st.sampled_from([None, 3.0, 6.0]),
    "caseness_cutoff": st.sampled_from([None, 7, 10]),
    "rci_z": st.sampled_from([1.645, 1.96]),
}


@given(
    st.sampled_from(["GAD7", "HAMA"]),
    st.dictionaries(st.sampled_from(sorted(_OVERRIDES)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: _OVERRIDES[k] for k in keys})
    ),
)
def test_property_overrides_change_exactly_the_named_fields(code, overrides):
    base = INSTRUMENTS[code].criteria
    merged = Criteria(**overrides).applied_to(base)
    linked = (
        {"reliable_change"}
        if "rci_z" in overrides and "reliable_change" not in overrides
        else set()
    )
    for name in (
        "response_reduction",
        "partial_response_reduction",
        "remission_cutoff",
        "reliable_change",
        "reliability",
        "rci_z",
        "caseness_cutoff",
        "severity_bands",
    ):
        if name in overrides:
            assert getattr(merged, name) == overrides[name]
        elif name in linked:
            assert merged.reliable_change is None
        else:
            assert getattr(merged, name) == getattr(base, name)


# --- The pandas fast path of score_items equals the generic narwhals form -------------------


@st.composite
def _assessment_frames(draw):
    """A pandas frame of GAD-7, HAM-A and unknown-instrument rows with missing items."""
    n = draw(st.integers(0, 12))
    rows = []
    for _ in range(n):
        name = draw(st.sampled_from(["GAD7", "HAMA", "PHQ9", None]))
        inst = {"GAD7": GAD7, "HAMA": HAMA}.get(name, HAMA)
        items = draw(
            st.lists(
                st.one_of(st.none(), st.integers(0, inst.item_max)),
                min_size=inst.n_items,
                max_size=inst.n_items,
            )
        )
        row = {"patient_id": f"p{len(rows)}", "instrument": name, "study_day": 0}
        row |= {f"item_{k}": v for k, v in enumerate(items, start=1)}
        row["total"] = draw(st.one_of(st.none(), st.integers(0, inst.total_max)))
        rows.append(row)
    items = [f"item_{k}" for k in range(1, HAMA.n_items + 1)]
    frame = pd.DataFrame(rows, columns=["patient_id", "instrument", "study_day", *items, "total"])
    if draw(st.booleans()):  # an index that is not 0..n-1
        frame.index = frame.index * 3 + 7
    return frame if rows else frame.head(0)


# Each example is a frame of up to 12 assessments (every instrument, missing items, recorded
# totals), and the generic form costs about 0.25 s a call: 30 frames cover some 180 rows.
@settings(max_examples=30)
@given(_assessment_frames(), st.sampled_from([None, 1, 3]))
def test_score_items_fast_path_equals_the_generic_expressions(frame, block_rows):
    from test_endpoints_fast_path import blocks_of

    from analysis.instruments import _generic_scoring

    with blocks_of(block_rows):  # the arrays computed a few rows at a time
        fast = score_items(frame)
    with _generic_scoring():
        generic = score_items(frame)
    pd.testing.assert_frame_equal(fast, generic)
