"""Validation and the guard inside Spark give the pandas counts (run by `make test-spark`)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_engine_validation import CASES, _tables, _write, counts

from analysis import derive_endpoints, rate_table, synthetic_cohort
from analysis.deid import DeidentificationError
from analysis.schema import DataValidationError, load_cohort, validate_cohort

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def base():
    return synthetic_cohort(40, seed=5)


@pytest.mark.parametrize("case", list(CASES))
def test_spark_report_counts_equal_pandas(spark, base, tmp_path, case):
    _write(CASES[case](_tables(base)), tmp_path)
    expected = validate_cohort(tmp_path)
    got = validate_cohort(tmp_path, engine="spark", spark=spark)
    assert counts(got) == counts(expected)
    assert got.deidentification == expected.deidentification
    if case != "valid":
        with pytest.raises(DataValidationError) as error:
            load_cohort(tmp_path, engine="spark", spark=spark)
        assert isinstance(error.value, DeidentificationError) == expected.deidentification


def test_spark_cohort_feeds_the_statistics(spark, base, tmp_path):
    _write(_tables(base), tmp_path)
    cohort = load_cohort(tmp_path, engine="spark", spark=spark)
    assert hasattr(cohort.assessments, "toPandas")  # a Spark DataFrame, not pandas
    got = rate_table(derive_endpoints(cohort, "GAD7"), "response")
    expected = rate_table(derive_endpoints(base, "GAD7"), "response")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
