"""The derivation on Spark gives the pandas result (run with `make test-spark`)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_endpoints_backends import random_assessments, to_pandas

from analysis.endpoints import derive_endpoints, endpoint_accounting
from analysis.instruments import score_items

# Deselected by `make test`, run by `make test-spark`, which installs the `spark` extra: a
# missing pyspark there is a failure, not a skip.
pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def cohort():
    return random_assessments(60, seed=11)


@pytest.fixture(scope="module")
def spark_cohort(spark, cohort):
    return spark.createDataFrame(cohort.astype(object).where(cohort.notna(), None))


@pytest.mark.parametrize("impute", ["observed", "locf", "bocf"])
@pytest.mark.parametrize("instrument", ["GAD7", "HAMA"])
def test_spark_endpoints_equal_pandas(cohort, spark_cohort, instrument, impute):
    result = derive_endpoints(spark_cohort, instrument, impute=impute)
    assert type(result).__name__ == "DataFrame" and hasattr(result, "toPandas")
    expected = to_pandas(derive_endpoints(cohort, instrument, impute=impute))
    pd.testing.assert_frame_equal(to_pandas(result), expected)


def test_spark_accounting_and_scores_equal_pandas(cohort, spark_cohort):
    got = to_pandas(endpoint_accounting(spark_cohort)).drop(columns="row")
    expected = to_pandas(endpoint_accounting(cohort)).drop(columns="row")
    pd.testing.assert_frame_equal(got, expected)
    got = to_pandas(score_items(spark_cohort))
    expected = to_pandas(score_items(cohort))
    pd.testing.assert_frame_equal(got[expected.columns], expected)


def test_spark_statistics_equal_pandas(spark):
    """The statistics contract of tests/test_statistics_engines.py, on Spark."""
    from test_statistics_engines import STATISTICS, _same

    from analysis import kaplan_meier, synthetic_cohort, time_to_event
    from analysis.tables import cohort_endpoints

    endpoints = cohort_endpoints(
        synthetic_cohort(n_patients=240, seed=7),
        patient_columns=("route", "site_id", "primary_diagnosis"),
    )
    frame = spark.createDataFrame(endpoints.astype(object).where(endpoints.notna(), None))
    for name, compute in STATISTICS.items():
        expected = compute(endpoints)
        assert len(expected) > 0, name
        _same(compute(frame), expected)
    tte = time_to_event(endpoints, "response", instrument="GAD7")
    spark_tte = spark.createDataFrame(tte.astype(object).where(tte.notna(), None))
    _same(kaplan_meier(spark_tte, group="route"), kaplan_meier(tte, group="route"))


@pytest.mark.parametrize("impute", ["locf", "bocf"])
def test_spark_tied_assessments_under_imputation_equal_pandas(spark, impute):
    # Two assessments on one day (a's baseline, b's week 4): one grid per patient, both
    # tied week-4 rows, as pandas gives them (tests/test_endpoints.py works the rows).
    tied = pd.DataFrame(
        [("a", 0, 10), ("a", 0, 14), ("a", 14, 8), ("b", -1, 12), ("b", 28, 6), ("b", 28, 2)],
        columns=["patient_id", "study_day", "total"],
    ).assign(instrument="GAD7")
    order = ["patient_id", "target_day", "score"]
    got = to_pandas(derive_endpoints(spark.createDataFrame(tied), "GAD7", impute=impute))
    expected = to_pandas(derive_endpoints(tied, "GAD7", impute=impute))
    pd.testing.assert_frame_equal(
        got.sort_values(order, ignore_index=True), expected.sort_values(order, ignore_index=True)
    )
