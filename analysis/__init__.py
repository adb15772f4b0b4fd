"""anxiety-outcomes: response, remission and effect sizes from GAD-7 and HAM-A data.

The public API (the contract of ``docs/design.md``), re-exported from the modules that define it:

- data: :class:`Cohort`, :func:`load_cohort`, :func:`validate`, :class:`DataValidationError`,
  :class:`DeidentificationError`, :func:`synthetic_cohort`;
- instruments: :data:`GAD7`, :data:`HAMA`, :class:`Instrument`, :class:`Criteria`,
  :func:`score_items`;
- endpoints: :func:`derive_endpoints`, :func:`endpoint_accounting`, :func:`visit_order`;
- statistics: :func:`rate_table`, :func:`compare_rates`, :func:`effect_size`,
  :func:`effect_size_table`, :func:`fit_mmrm`, :func:`time_to_event`, :func:`kaplan_meier`,
  :func:`cronbach_alpha`, :func:`cohen_kappa`;
- missing data: :func:`multiple_imputation`, :func:`rubin_rules`, :func:`pool_rates`,
  :func:`pool_rate_differences`, :func:`pool_change_differences`,
  :func:`conditional_mean_analysis`, :func:`tipping_point`, :func:`missing_data_sensitivity`;
- safety: :func:`adverse_event_table`, :func:`blood_pressure_table`,
  :func:`dissociation_table`, :func:`dose_summary`;
- reports: :func:`table_one`, :func:`run_reports`.

Names are imported on first use (PEP 562 module ``__getattr__``): ``import analysis``
loads no submodule, so the statistics work without the plotting and report stacks
installed (the ``plots`` and ``reports`` extras), and a name costs only its own module.
The import lines below, read by type checkers and by :func:`_exports`, are the one list
of what is exported: to export a name add its import line there and its ``__all__``
entry.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from analysis._version import __version__ as __version__

if TYPE_CHECKING:
    from analysis.agreement import cohen_kappa, cronbach_alpha, instrument_agreement
    from analysis.deid import DeidentificationError
    from analysis.disclosure import audit_report_dir, cross_table_findings, number_at_risk
    from analysis.effect_sizes import (
        EffectSize,
        effect_size,
        effect_size_from_stats,
        effect_size_table,
    )
    from analysis.endpoints import derive_endpoints, endpoint_accounting, visit_order
    from analysis.instruments import GAD7, HAMA, Criteria, Instrument, score_items
    from analysis.missing_data import (
        conditional_mean_analysis,
        missing_data_sensitivity,
        multiple_imputation,
        pool_change_differences,
        pool_rate_differences,
        pool_rates,
        rubin_rules,
        tipping_point,
    )
    from analysis.mmrm import MMRMFitError, MMRMResult, fit_mmrm
    from analysis.rates import (
        adjust_pvalues,
        adjusted_compare_rates,
        compare_rates,
        compare_rates_stratified,
        newcombe_interval,
        proportion_ci,
        rate_table,
        suppress_small_cells,
    )
    from analysis.reports import run_reports
    from analysis.safety import (
        adverse_event_table,
        blood_pressure_table,
        dissociation_table,
        dose_summary,
    )
    from analysis.schema import (
        Cohort,
        DataValidationError,
        ValidationReport,
        load_cohort,
        validate,
        validate_cohort,
        write_cohort,
    )
    from analysis.survival import (
        kaplan_meier,
        logrank_test,
        median_time_to_event,
        time_to_event,
        time_to_relapse,
    )
    from analysis.synthetic import synthetic_cohort
    from analysis.tables import table_one

__all__ = [
    "GAD7",
    "HAMA",
    "Cohort",
    "Criteria",
    "DataValidationError",
    "DeidentificationError",
    "EffectSize",
    "Instrument",
    "MMRMFitError",
    "MMRMResult",
    "ValidationReport",
    "adjust_pvalues",
    "adverse_event_table",
    "audit_report_dir",
    "cross_table_findings",
    "number_at_risk",
    "blood_pressure_table",
    "adjusted_compare_rates",
    "cohen_kappa",
    "conditional_mean_analysis",
    "compare_rates",
    "compare_rates_stratified",
    "cronbach_alpha",
    "derive_endpoints",
    "dissociation_table",
    "dose_summary",
    "effect_size",
    "effect_size_from_stats",
    "effect_size_table",
    "endpoint_accounting",
    "fit_mmrm",
    "instrument_agreement",
    "kaplan_meier",
    "load_cohort",
    "logrank_test",
    "median_time_to_event",
    "missing_data_sensitivity",
    "multiple_imputation",
    "newcombe_interval",
    "pool_change_differences",
    "pool_rate_differences",
    "pool_rates",
    "proportion_ci",
    "rate_table",
    "rubin_rules",
    "run_reports",
    "score_items",
    "suppress_small_cells",
    "synthetic_cohort",
    "table_one",
    "time_to_event",
    "time_to_relapse",
    "tipping_point",
    "validate",
    "validate_cohort",
    "visit_order",
    "write_cohort",
]


@functools.cache
def _exports() -> dict[str, str]:
    """Exported name -> defining module, from the ``if TYPE_CHECKING:`` imports above."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }


def __getattr__(name: str):
    module = _exports().get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute access
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
