"""The report notebooks' code cells as Python syntax trees, for tests that read them."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat


def code_cells(path: Path) -> list[tuple[str, ast.Module]]:
    """``(source, tree)`` of each code cell of the notebook at ``path``; IPython magics
    (lines starting with ``%``) are left out of the tree, which ``ast`` cannot parse."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        cells.append((cell.source, ast.parse(code)))
    return cells
