"""The hand-written SQL references of the benchmarks compute what derive_endpoints does.

A benchmark ratio means something only when the reference does the same work: these
tests hold the DuckDB SQL of ``benchmarks/derive.py`` equal to ``derive_endpoints`` for
both instruments (the HAM-A query computes the Jacobson-Truax threshold from the
baselines, as the derivation does).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("instrument", ["GAD7", "HAMA"])
def test_derive_reference_sql_equals_derive_endpoints(instrument):
    derive = _module("derive")
    # check_reference raises (assert_frame_equal) unless every cell is equal
    rows = derive.check_reference(2_000, seed=3, instrument=instrument)
    assert rows > 1_000
