"""Arguments mean the same thing, and are spelled the same way, across the public API.

- ``min_cell`` (the small-cell rule) is a keyword-only option, except where it is the
  subject of the function (the disclosure policy's own functions) and in ``rate_table``,
  whose positional signature docs/design.md fixes;
- one line or bar per level of a column is ``group`` (the word of the statistics:
  ``compare_rates(..., group)``, ``kaplan_meier(tte, group)``), never ``hue``;
- imputation is ``impute`` (as in ``derive_endpoints``), never ``methods``; ``method``
  is the interval method;
- ``alpha`` is the error rate of an interval everywhere (0.05 gives 95%); the function
  whose result is Cronbach's alpha takes the confidence level ``ci``, as
  ``effect_size`` does.

Old spellings keep working for one release with a DeprecationWarning (tested below).
"""

from __future__ import annotations

import importlib
import inspect
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import plots, tables
from analysis.agreement import cronbach_alpha
from analysis.schema import findings_summary, validate_cohort
from analysis.synthetic import synthetic_cohort

MODULES = [
    "agreement", "effect_sizes", "endpoints", "formatting", "instruments", "missing_data",
    "mmrm", "plots", "rates", "safety", "schema", "survival", "tables", "reports",
]  # fmt: skip

# min_cell is the subject of these (what they do is apply the rule), or docs/design.md
# fixes their positional signature (rate_table).
MIN_CELL_POSITIONAL = {
    "rates.rate_table",
    "rates.suppress_small_cells",
    "formatting.suppression_note",
}


def public_functions():
    seen = {}
    for name in MODULES:
        module = importlib.import_module(f"analysis.{name}")
        for attr in getattr(module, "__all__", []):
            func = getattr(module, attr)
            if inspect.isfunction(func) and func.__module__ == module.__name__:
                seen[f"{name}.{attr}"] = func
    return seen


FUNCTIONS = public_functions()


def test_the_survey_sees_the_api():
    assert {"rates.rate_table", "plots.plot_rates", "tables.table_one"} <= set(FUNCTIONS)
    assert len(FUNCTIONS) > 60


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_argument_names_and_kinds(name):
    parameters = inspect.signature(FUNCTIONS[name]).parameters
    min_cell = parameters.get("min_cell")
    if min_cell is not None and name not in MIN_CELL_POSITIONAL:
        assert min_cell.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: min_cell"
    assert "hue" not in parameters, f"{name}: say `group`"
    assert "methods" not in parameters, f"{name}: say `impute` (or `method` for intervals)"
    alpha = parameters.get("alpha")
    if alpha is not None:
        assert alpha.default == 0.05, f"{name}: alpha is the error rate"


# --------------------------------------------------------------------------- deprecations


def _warns(call):
    with pytest.warns(DeprecationWarning, match="deprecated") as caught:
        result = call()
    assert all(w.filename == __file__ for w in caught)  # points at the caller's line
    return result


def test_cronbach_alpha_alpha_becomes_ci():
    rng = np.random.default_rng(1)
    items = pd.DataFrame(rng.integers(0, 4, size=(40, 5)))
    new = cronbach_alpha(items, ci=0.90)
    old = _warns(lambda: cronbach_alpha(items, alpha=0.10))
    assert tuple(old) == pytest.approx(tuple(new), abs=1e-12)
    assert cronbach_alpha(items) == cronbach_alpha(items, ci=0.95)
    assert new.ci_low > cronbach_alpha(items).ci_low  # a 90% interval is narrower
    with pytest.raises(TypeError, match="both `alpha`"):
        cronbach_alpha(items, alpha=0.1, ci=0.9)
    with pytest.raises(ValueError, match="`ci` must be a confidence level"):
        cronbach_alpha(items, ci=95)


@pytest.fixture(scope="module")
def cohort():
    return synthetic_cohort(60, seed=2)


def test_min_cell_by_position_warns_and_still_works(cohort):
    findings = validate_cohort(cohort).findings
    pd.testing.assert_frame_equal(
        _warns(lambda: findings_summary(findings, 11)), findings_summary(findings, min_cell=11)
    )
    endpoints = tables.cohort_endpoints(cohort)
    accounting = analysis.endpoint_accounting(cohort)
    pd.testing.assert_frame_equal(
        _warns(lambda: tables.accounting_summary(accounting, 11)),
        tables.accounting_summary(accounting, min_cell=11),
    )
    pd.testing.assert_frame_equal(
        _warns(lambda: tables.agreement_table(endpoints, "response", "week4", 11)),
        tables.agreement_table(endpoints, "response", "week4", min_cell=11),
    )
    with pytest.raises(TypeError, match="multiple values"):
        tables.accounting_summary(accounting, 11, min_cell=11)


def test_imputation_sensitivity_methods_becomes_impute(cohort):
    new = tables.imputation_sensitivity(cohort, "GAD7", impute=("observed", "bocf"))
    old = _warns(
        lambda: tables.imputation_sensitivity(cohort, "GAD7", methods=("observed", "bocf"))
    )
    pd.testing.assert_frame_equal(old, new)
    by_position = _warns(
        lambda: tables.imputation_sensitivity(
            cohort, "GAD7", "week4", ("response", "remission"), ("observed", "bocf")
        )
    )
    pd.testing.assert_frame_equal(by_position, new)


@pytest.mark.parametrize(
    ("function", "table", "column"),
    [
        (plots.plot_rates, "rates", "outcome"),
        (plots.plot_effect_sizes, "effects", "instrument"),
    ],
)
def test_plots_hue_becomes_group(cohort, function, table, column):
    endpoints = analysis.derive_endpoints(cohort, "GAD7")
    data = {
        "rates": lambda: tables.outcome_rates(endpoints, ("response", "remission")),
        "effects": lambda: analysis.effect_size_table(endpoints),
    }[table]()

    def legend(fig):
        try:
            return [
                t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts
            ]
        finally:
            plt.close(fig)

    new = legend(function(data, group=column))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling does not warn
        plt.close(function(data, group=column))
    old = legend(_warns(lambda: function(data, hue=column)))
    assert old == new and len(new) >= 1
