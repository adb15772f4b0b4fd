"""Every report notebook is committed clean: no outputs, a parameter cell, the python3 kernel."""

from __future__ import annotations

import ast

import nbformat
import pytest
from _notebooks import code_cells

from analysis.reports import (
    NOTEBOOKS_DIR,
    REPORT_PARAMETERS,
    SNAPSHOT_PARAMETERS,
    discover_reports,
)

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_there_are_report_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"
    assert [r.path for r in discover_reports()] == NOTEBOOKS, "names must be NN_name.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        k
        for k, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or an execution count; clear them "
        "(JupyterLab: Edit > Clear Outputs of All Cells; or `jupyter nbconvert "
        "--clear-output --inplace`) before committing."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameter_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert tagged[0].cell_type == "code"
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(tagged[0].source).body
        if isinstance(node, ast.Assign)
    }
    assert assigned == {
        "data_dir": None,
        "tables_dir": None,
        **REPORT_PARAMETERS,
        **SNAPSHOT_PARAMETERS,  # None by hand: the notebook loads data_dir or the demo
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_and_format(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_only_call(path):
    """Narrative and calls, no logic (STYLE.md): no loops, branches or function definitions."""
    for source, tree in code_cells(path):
        for node in ast.walk(tree):
            assert not isinstance(
                node,
                ast.For
                | ast.While
                | ast.If
                | ast.IfExp
                | ast.FunctionDef
                | ast.Lambda
                | ast.ListComp
                | ast.DictComp
                | ast.GeneratorExp,
            ), f"{path.name}: logic in a code cell; move it into a tested function:\n{source}"
