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


def test_the_session_the_library_starts_records_no_call_sites(monkeypatch):
    """Given no session, the library starts one without PySpark 4's call-site recording
    (seven JVM round trips per column function: a validation's checks took 90,000
    round trips with it, 54,000 without); given one, it uses the caller's as it is."""
    from pyspark.sql import SparkSession

    import analysis._engine_validation as engine_validation

    settings: dict[str, str] = {}

    class Builder:  # records what the library asks of SparkSession.builder
        def master(self, master):
            settings["master"] = master
            return self

        def appName(self, name):  # noqa: N802 - PySpark's name
            return self

        def config(self, key=None, value=None, *, map=None):  # noqa: A002 - PySpark's name
            settings.update(map if map is not None else {key: value})
            return self

        def getOrCreate(self):  # noqa: N802 - PySpark's name
            return "started"

    monkeypatch.setattr(SparkSession, "builder", Builder())
    monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: None))
    assert engine_validation._spark_session() == "started"
    assert settings["spark.python.sql.dataFrameDebugging.enabled"] == "false"
    assert settings["master"] == "local[*]"
    monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: "the caller's"))
    assert engine_validation._spark_session() == "the caller's"
