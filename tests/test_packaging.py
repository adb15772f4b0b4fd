"""The package as it is installed: package data, the version, and dependencies by use.

Timings (``import analysis`` under 1 s, a first ``load_cohort`` under 2 s) are measured by
``benchmarks/import_time.py``, not asserted here; these tests pin their causes instead:
what ``import analysis`` and loading data import. The full round trip (build the sdist and
wheel, install the wheel in a fresh environment, run the command line) is
``make test-wheel``, run by CI.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import analysis
from analysis._checks import _frictionless_to_pandera
from analysis.reports import NOTEBOOKS_DIR
from analysis.schema import TABLES, read_schema, schema_dir

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: The report and plotting stacks: optional extras, never needed by the statistics.
REPORT_STACK = ("papermill", "nbconvert", "nbclient", "ipykernel", "jupyterlab")
PLOTTING = ("matplotlib", "seaborn")

#: The modules of the statistics tier (everything but plots, reports and cli).
CORE_MODULES = (
    "agreement",
    "deid",
    "effect_sizes",
    "endpoints",
    "instruments",
    "mmrm",
    "rates",
    "safety",
    "schema",
    "survival",
    "synthetic",
    "tables",
)


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return done.stdout.split()


# --------------------------------------------------------------------- dependencies by use


def test_import_analysis_loads_neither_reports_nor_plotting():
    assert _loaded_after("import analysis", REPORT_STACK + PLOTTING) == []


def test_the_statistics_import_without_reports_or_plotting():
    code = "\n".join(f"import analysis.{name}" for name in CORE_MODULES)
    assert _loaded_after(code, REPORT_STACK + PLOTTING) == []


def test_the_probe_sees_a_heavy_import():
    """The check above can fail: importing the figures module loads seaborn."""
    assert _loaded_after("import analysis.plots", PLOTTING) == list(PLOTTING)


def test_loading_data_skips_frictionless_format_checkers(tmp_path):
    """Validators are built from the schema JSON without frictionless/jsonschema."""
    analysis.write_cohort(analysis.synthetic_cohort(20, seed=1), tmp_path)
    loaded = _loaded_after(
        f"import analysis\nanalysis.load_cohort({str(tmp_path)!r})",
        ("frictionless", "jsonschema", "rfc3987_syntax") + REPORT_STACK + PLOTTING,
    )
    assert loaded == []


@pytest.mark.parametrize("table", TABLES)
def test_validators_match_pandera_frictionless_reader(table):
    """The pandera schema equals the one pandera's own Frictionless reader builds."""
    from pandera.io.pandas_io import from_frictionless_schema

    descriptor = read_schema(table)
    assert _frictionless_to_pandera(descriptor) == from_frictionless_schema(descriptor)


def test_every_public_name_resolves_lazily():
    exported = analysis._exports()
    assert set(exported) == set(analysis.__all__)
    assert len(analysis.__all__) == len(set(analysis.__all__))
    for name in analysis.__all__:
        value = getattr(analysis, name)
        assert getattr(sys.modules[exported[name]], name) is value, name
    assert set(analysis.__all__) <= set(dir(analysis))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        analysis.nope  # noqa: B018


def test_init_exports_only_type_checking_imports():
    """Nothing but the version is imported eagerly by analysis/__init__.py."""
    tree = ast.parse((ROOT / "analysis" / "__init__.py").read_text())
    eager = [
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis")
        for alias in node.names
    ]
    assert eager == ["__version__"]


def test_extras_split_core_from_reports():
    core = " ".join(PYPROJECT["project"]["dependencies"])
    for name in REPORT_STACK + PLOTTING + ("polars", "duckdb"):
        assert name not in core, name
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"plots", "reports", "engines", "test", "docs", "spark"} <= set(extras)


def test_every_optional_module_belongs_to_an_extra_that_installs_it():
    # analysis._utils.EXTRAS names the extra a missing module's error tells users to
    # install: each must be an extra that lists it (directly or through another extra).
    from packaging.requirements import Requirement

    from analysis._utils import EXTRAS

    extras = PYPROJECT["project"]["optional-dependencies"]

    def names(extra):
        out = set()
        for requirement in map(Requirement, extras[extra]):
            if requirement.name == "anxiety-outcomes":  # another extra of the package
                out |= set().union(*(names(e) for e in requirement.extras))
            out.add(requirement.name.lower().replace("-", "_"))
        return out

    for module, extra in EXTRAS.items():
        installed = names(extra)
        # IPython comes with ipykernel, the reports extra's kernel
        assert module.lower() in installed or (module, extra) == ("IPython", "reports"), module
    for module in REPORT_STACK + PLOTTING:
        assert module in EXTRAS, module


@pytest.mark.parametrize(
    ("hidden", "code", "extra"),
    [
        ("seaborn", "import analysis.plots", "plots"),
        ("matplotlib", "from analysis.plots import plot_rates", "plots"),
        ("papermill", "import analysis; analysis.run_reports(None, 'out')", "reports"),
        ("duckdb", "import analysis; analysis.load_cohort('.', engine='duckdb')", "engines"),
        ("polars", "import analysis; analysis.validate_cohort('.', engine='polars')", "engines"),
    ],
)
def test_a_missing_optional_module_names_the_extra_to_install(tmp_path, hidden, code, extra):
    # A fresh interpreter in which the module cannot be imported (as after installing the
    # core alone): the error names the module and the pip command of its extra.
    probe = f"import sys; sys.modules[{hidden!r}] = None\n{code}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError:"), done.stderr
    assert (
        f'{hidden}, which the `{extra}` extra installs: pip install "anxiety-outcomes[{extra}]"'
        in last
    )


# ------------------------------------------------------------------------ package data


def test_package_data_is_the_top_level_folders():
    """One copy: analysis/data_schema and analysis/notebooks link to the user's folders."""
    for name in ("data_schema", "notebooks"):
        link = ROOT / "analysis" / name
        assert link.is_symlink(), name
        assert link.resolve() == (ROOT / name).resolve(), name
    assert schema_dir() == (ROOT / "data_schema").resolve()
    assert NOTEBOOKS_DIR == (ROOT / "notebooks").resolve()


def _package_data_globs() -> dict[str, list[str]]:
    return PYPROJECT["tool"]["setuptools"]["package-data"]


@pytest.mark.parametrize(
    ("folder", "package"),
    [("data_schema", "analysis.data_schema"), ("notebooks", "analysis.notebooks")],
)
def test_every_data_file_is_declared(folder, package):
    globs = _package_data_globs()[package]
    assert package in PYPROJECT["tool"]["setuptools"]["packages"]
    files = [p.name for p in (ROOT / folder).iterdir() if p.is_file()]
    assert files
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert unshipped == []


@pytest.mark.slow
def test_sdist_and_wheel_hold_schemas_and_notebooks(tmp_path):
    """``python -m build``: the sdist, and the wheel built from that sdist (as pip does).

    Built with the test environment's setuptools (``--no-isolation``: 2 CPU-seconds
    instead of 5, the isolated build installs setuptools twice); ``make test-wheel`` in
    CI builds them isolated, with only what ``[build-system]`` asks for."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("anxiety_outcomes-*.whl")
    (sdist,) = tmp_path.glob("anxiety_outcomes-*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for folder in ("data_schema", "notebooks"):
        for path in (ROOT / folder).iterdir():
            if path.is_file():
                assert f"analysis/{folder}/{path.name}" in in_wheel
                assert f"analysis/{folder}/{path.name}" in in_sdist
    assert "analysis/py.typed" in in_wheel


# ----------------------------------------------------------------------------- version


def test_version_is_read_from_the_metadata():
    assert analysis.__version__ == importlib.metadata.version("anxiety-outcomes")
    assert analysis.__version__ == PYPROJECT["project"]["version"]
    written = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "analysis").glob("*.py")
        if PYPROJECT["project"]["version"] in p.read_text()
    ]
    assert written == []


def test_cli_and_reports_take_the_version_from_one_module():
    """The --version of the command and manifest.json's package_version (checked in
    test_cli.py) read analysis._version, not the package root."""
    for name in ("cli", "reports"):
        tree = ast.parse((ROOT / "analysis" / f"{name}.py").read_text())
        roots = [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name == "analysis"
        ]
        assert roots == [], name


# ------------------------------------------------------------------ self-contained repo


def test_the_repository_refers_to_nothing_outside_it():
    """Docs, code and tests cite docs/design.md and docs/references.md, not outside files."""
    outside = ("/" + "work/", "../" + "shared", "DESIGN" + ".md", "REFERENCES" + ".md")
    folders = ("analysis", "tests", "docs", "notebooks", "data_schema", "benchmarks", ".ci")
    paths = [p for folder in folders for p in (ROOT / folder).rglob("*") if p.is_file()]
    paths += [p for p in ROOT.glob("*") if p.is_file()]
    skip = ("_build", "generated", "__pycache__", ".ipynb_checkpoints", ".git")
    offenders = []
    for path in paths:
        if any(part in skip for part in path.relative_to(ROOT).parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}: {o}" for o in outside if o in text]
    assert offenders == []
    assert (ROOT / "docs" / "design.md").is_file()
    assert (ROOT / "docs" / "references.md").is_file()
