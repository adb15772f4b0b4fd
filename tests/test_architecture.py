"""The shape of the package: which module may import which.

The data layer imports one way (``instruments``/``readers`` <- ``cohort`` <- ``deid`` <-
``schema``); a circle between two modules means neither can be read, imported or
tested without the other. These tests read the import statements with :mod:`ast`, so
they fail on a new circle before anything runs.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import analysis

PACKAGE = Path(analysis.__file__).parent

# Circles through imports made inside functions (deferred on purpose, to keep
# `import analysis` light) are circles too: none is allowed. The last two were broken by
# moving the shared piece down (safety tables' columns to `_safety_columns`,
# `NotAvailable` to `_unavailable`, the cohort fingerprint and `SnapshotCohort` to
# `cohort`); the old import paths re-export them.
KNOWN_DEFERRED_CIRCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    return "analysis" if path.stem == "__init__" else f"analysis.{path.stem}"


def _imported_modules(node: ast.AST) -> set[str]:
    """The package modules an ``import`` / ``from ... import`` statement loads."""
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module == "analysis":
            return {f"analysis.{a.name}" for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
        if node.module.startswith("analysis."):
            return {node.module}
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.startswith("analysis.")}
    return set()


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"


@functools.cache
def _parsed_modules() -> tuple[tuple[Path, ast.Module], ...]:
    """Each module of the package and its syntax tree, parsed once per run (read only)."""
    return tuple(
        (path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.glob("*.py"))
    )


def import_graph(*, deferred: bool) -> dict[str, set[str]]:
    """Module -> package modules it imports: at module level, or anywhere (``deferred``).

    Imports under ``if TYPE_CHECKING:`` never run and are left out.
    """
    graph = {}
    for path, tree in _parsed_modules():
        nodes = []
        stack = [n for n in tree.body if not _is_type_checking_block(n)]
        while stack:
            node = stack.pop()
            nodes.append(node)
            if deferred:
                stack.extend(
                    child
                    for child in ast.iter_child_nodes(node)
                    if not _is_type_checking_block(child)
                )
        deps = set().union(*(_imported_modules(n) for n in nodes)) if nodes else set()
        graph[_module_name(path)] = deps - {_module_name(path)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [frozenset({"a", "b", "c"})]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_the_data_layer():
    graph = import_graph(deferred=False)
    assert "analysis.cohort" in graph["analysis.deid"]
    assert "analysis.deid" in graph["analysis.schema"]


def test_no_import_circles_at_module_level():
    assert circles(import_graph(deferred=False)) == []


def test_no_import_circles_inside_functions():
    found = set(circles(import_graph(deferred=True)))
    assert found <= KNOWN_DEFERRED_CIRCLES, found - KNOWN_DEFERRED_CIRCLES
    assert not KNOWN_DEFERRED_CIRCLES  # no circle is tolerated any more


def test_names_moved_to_break_circles_keep_their_old_homes():
    from analysis import (
        _safety_columns,
        _unavailable,
        cohort,
        plots,
        report_sections,
        reports,
        safety,
    )

    assert report_sections.NotAvailable is _unavailable.NotAvailable
    assert "NotAvailable" in report_sections.__all__
    assert reports.SnapshotCohort is cohort.SnapshotCohort
    assert reports.data_fingerprint is cohort.data_fingerprint
    assert issubclass(reports.SnapshotCohort, cohort.Cohort)
    assert safety.NOT_COLLECTED == _safety_columns.NOT_COLLECTED == "not collected in this data set"
    assert "NOT_COLLECTED" in safety.__all__
    graph = import_graph(deferred=True)
    # the table builders and the figures no longer import the modules above them
    assert (
        "analysis.reports" not in graph["analysis.formatting"] | graph["analysis.report_sections"]
    )
    assert "analysis.report_sections" not in graph["analysis.tables"] | graph["analysis.formatting"]
    assert "analysis.safety" not in graph["analysis.plots"]
    with pytest.warns(DeprecationWarning, match="moved to analysis.plots"):
        assert safety.plot_adverse_events is plots.plot_adverse_events


@pytest.mark.parametrize("module", ["analysis.cohort", "analysis.deid"])
def test_data_layer_imports_without_schema(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith(('analysis', 'pandera'))))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = ast.literal_eval(out.strip())
    assert module in loaded
    assert "analysis.schema" not in loaded
    assert not any(m.startswith("pandera") for m in loaded)  # validation is not loaded


def test_schema_reexports_the_data_model():
    from analysis import cohort, deid, schema

    for name in cohort.__all__:
        assert getattr(schema, name) is getattr(cohort, name), name
    assert issubclass(deid.DeidentificationError, schema.DataValidationError)
    assert analysis.Cohort is cohort.Cohort
    assert analysis.DataValidationError is cohort.DataValidationError


def test_one_engine_layer():
    from analysis import _frames, _utils, instruments

    # the old homes keep their names (the endpoint derivation imports them there)
    assert _utils.to_pandas is _frames.to_pandas
    for name in ("cast_columns", "replace_columns"):
        assert getattr(instruments, name) is getattr(_frames, name)
    graph = import_graph(deferred=True)
    assert graph["analysis._frames"] == set()  # the bottom layer imports no package module


def test_one_result_idiom():
    """Results are frozen dataclasses; the three exceptions keep what docs/design.md promises.

    - ``cronbach_alpha`` returns ``(alpha, ci_low, ci_high)``: a tuple (it indexes,
      compares and unpacks as one), with its counts as extra attributes;
    - ``cohen_kappa`` returns the kappa as a float (it compares, formats and computes as
      one) with its interval and counts as read-only attributes;
    - ``MMRMResult`` is a fitted model (statsmodels' results idiom: methods that compute
      LS means, contrasts and a summary from the fit).
    """
    import dataclasses

    from analysis import report_sections
    from analysis.agreement import CronbachAlpha, InstrumentAgreement, Kappa
    from analysis.disclosure import AuditResult
    from analysis.missing_data import TippingPointResult

    results = [
        AuditResult,
        analysis.EffectSize,
        analysis.ValidationReport,
        InstrumentAgreement,
        TippingPointResult,
        report_sections.ReportMMRM,
        report_sections.NotAvailable,
    ]
    for cls in results:
        assert dataclasses.is_dataclass(cls), cls
        assert cls.__dataclass_params__.frozen, f"{cls.__name__} is not frozen"
    assert issubclass(CronbachAlpha, tuple) and issubclass(Kappa, float)
    alpha = analysis.cronbach_alpha(pd.DataFrame({"a": [1, 2, 3, 4], "b": [1, 3, 2, 4]}))
    value, low, high = alpha
    assert (value, low, high) == alpha and alpha[0] == alpha.alpha and alpha.n == 4
    kappa = analysis.cohen_kappa(pd.Series([0, 1, 1, 0, 1]), pd.Series([0, 1, 0, 0, 1]))
    assert f"{kappa:.3f}" == f"{float(kappa):.3f}" and kappa.ci_low < kappa < kappa.ci_high
    with pytest.raises(AttributeError):
        kappa.n = 3


def _design_module_rows() -> list[str]:
    """The modules named in the first cell of the Layout table of docs/design.md."""
    text = (PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8")
    layout = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return [
        cell.strip().strip("`").removeprefix("analysis/")
        for line in layout.splitlines()
        if line.startswith("| `analysis/") and (cell := line.split("|")[1]).strip() != "`analysis/`"
    ]


def test_the_design_contract_lists_every_module_once():
    """docs/design.md has one row per module of analysis/: a new module needs its line."""
    rows = _design_module_rows()
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert sorted(rows) == sorted(set(rows)), "a module has two rows"
    assert sorted(rows) == modules, {
        "missing from docs/design.md": sorted(set(modules) - set(rows)),
        "not a module": sorted(set(rows) - set(modules)),
    }


def test_every_type_ignore_names_its_error_and_why():
    """``# type: ignore[code]  # reason``: mypy checks the code (warn_unused_ignores), the
    reason says why the typing cannot say it (usually a gap in pandas-stubs)."""
    import re

    pattern = re.compile(r"# type: ignore(?P<code>\[[-a-z, ]+\])?(?P<reason>  # \S.*)?$")
    without: dict[str, list[int]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = pattern.search(line)
            if match and not (match["code"] and match["reason"]):
                without.setdefault(path.name, []).append(number)
    assert without == {}, without
