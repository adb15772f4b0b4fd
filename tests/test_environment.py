"""environment.yml (conda) must list the same packages and ranges as pyproject.toml."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


#: Extras an analyst's environment holds (besides the core): environment.yml mirrors these.
#: `docs` (Sphinx, `make docs`) and `spark` (Java too, `make test-spark`) are installed on
#: demand.
CONDA_EXTRAS = ("plots", "reports", "engines", "test")

#: PyPI name -> conda-forge name where the two differ.
CONDA_NAMES = {"build": "python-build"}


def pyproject_requirements(root: Path) -> dict[str, str]:
    """Name -> version range of the core dependencies plus the extras of CONDA_EXTRAS.

    An extra that pulls in another extra of the package itself
    (``anxiety-outcomes[plots]``) adds nothing here: that extra is listed on its own.
    """
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in CONDA_EXTRAS for r in extras[extra]]
    out = {
        CONDA_NAMES.get(r.name.lower(), r.name.lower()): str(r.specifier)
        for r in reqs
        if r.name != project["name"]
    }
    out["python"] = project["requires-python"]
    return out


def conda_requirements(root: Path) -> tuple[dict[str, str], list[str]]:
    """Name -> version range of environment.yml's conda packages, and its pip section."""
    env = yaml.safe_load((root / "environment.yml").read_text())
    out, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
            continue
        name, spec = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", dep).groups()
        if name != "pip":
            out[name.lower()] = str(Requirement(f"x{spec.replace(' ', '')}").specifier)
    return out, pip


def drift(root: Path) -> set[tuple[str, str]]:
    """Entries present in one file but not the other (empty when in step)."""
    conda, _ = conda_requirements(root)
    return set(conda.items()) ^ set(pyproject_requirements(root).items())


def test_environment_yml_matches_pyproject():
    assert drift(ROOT) == set(), "environment.yml and pyproject.toml disagree on these"


def test_environment_yml_installs_this_package():
    _, pip = conda_requirements(ROOT)
    assert pip == ["-e ."]


def test_extras_pull_in_only_extras_that_exist():
    """A self-reference such as ``anxiety-outcomes[plots]`` names a defined extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for extra, reqs in extras.items():
        for req in map(Requirement, reqs):
            if req.name == project["name"]:
                assert req.extras <= set(extras) - {extra}, (extra, req)


def test_drift_is_detected(tmp_path):
    """The check can fail: a range changed in environment.yml only is reported."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    text = (ROOT / "environment.yml").read_text()
    assert "pandas>=2.2,<2.4\n" in text
    (tmp_path / "environment.yml").write_text(text.replace("pandas>=2.2,<2.4", "pandas>=2.2"))
    assert drift(tmp_path) == {("pandas", ">=2.2"), ("pandas", "<2.4,>=2.2")}
