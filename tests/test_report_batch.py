"""The nightly batch, end to end through ``anxiety-outcomes report``: awkward cohorts and
the user's files.

Two kinds of situations:

- valid but awkward cohorts (``tests/_report_cohorts.py``): every report renders (exit
  0), every page exists, and a section the data cannot support says why in one sentence.
  Rendering is slow (a kernel per notebook), so the key cohorts render the full set and
  the others only the reports their situation reaches; each is rendered once per module.
- output safety and exit codes, mostly on two tiny stand-in notebooks (a few seconds per
  run): failed runs leave the previous report untouched, files a run did not write are
  never deleted or overwritten, the output folder cannot shadow the kernel's imports.

Every situation checks that nothing outside the run's own output changed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import _report_cohorts as cohorts
import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import analysis.reports as reports
from analysis.cli import main
from analysis.reports import FAILED_MARKER, discover_reports
from analysis.schema import write_cohort

ALL = [r.name for r in discover_reports()]

#: Cohort -> (reports to render, text each situation's pages must show).
SITUATIONS = {
    # key situations: the full set
    "all_iv": (ALL, {"outcomes": "only one route (iv)", "durability": "only one route (iv)"}),
    "hama_totals_only": (ALL, {"outcomes": "HAM-A reliable change is not defined"}),
    "header_only": (ALL, {"outcomes": "no data for it", "durability": "no data for it"}),
    # the reports each situation reaches
    "small_program": (["effect_sizes"], {"effect_sizes": "could not be fitted"}),
    "no_iv": (["outcomes", "effect_sizes"], {"outcomes": "reference route (iv)"}),
    "tiny_route_cell": (["effect_sizes"], {}),
    "nobody_responds": (["durability"], {"durability": "log-rank test is not defined"}),
    "everybody_responds": (["durability"], {"durability": "log-rank test is not defined"}),
    "gad7_only": (["durability"], {"durability": "agreement between the scales: not available"}),
    "few_non_responders": (["durability"], {"durability": "Every curve is left out"}),
    "hama_only": (["effect_sizes"], {"effect_sizes": "GAD-7 MMRM: not available"}),
    "baselines_only": (["outcomes"], {"outcomes": "no data for it"}),
    "one_patient": (
        ["outcomes", "effect_sizes"],
        {"outcomes": "reliable change is not defined", "effect_sizes": "at least two patients"},
    ),
    "no_adverse_events": (["safety"], {}),
}


def _snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Path -> SHA-256 (or link target) of everything under ``root`` except ``skip``."""
    state = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[key] = "link:" + os.readlink(path)
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "dir"
    return state


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render a situation once per module: name -> (root, out, exit code, stderr)."""
    cache: dict[str, tuple] = {}

    def render(name: str):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            data = root / "data"
            write_cohort(cohorts.COHORTS[name](), data)
            before = _snapshot(root)
            out = root / "reports"
            wanted, _ = SITUATIONS[name]
            code = main(["report", str(data), "--out", str(out), "--quiet", "--only", *wanted])
            cache[name] = (root, out, code, before)
        return cache[name]

    return render


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SITUATIONS))
def test_awkward_cohort_renders_every_report(rendered, name):
    root, out, code, before = rendered(name)
    assert code == 0, name
    wanted, says = SITUATIONS[name]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["name"] for r in manifest["reports"]] == [n for n in ALL if n in wanted]
    assert {r["status"] for r in manifest["reports"]} == {"ok"}
    index = (out / "index.html").read_text(encoding="utf-8")
    for report in discover_reports():
        if report.name not in wanted:
            continue
        page = (out / f"{report.stem}.html").read_text(encoding="utf-8")
        assert f'href="{report.stem}.html"' in index
        assert "Traceback" not in page and "FAILED" not in page, report.name
        if report.name in says:
            assert says[report.name] in page, (name, report.name)
    # Nothing outside the output folder changed, and no staging or failed folder is left.
    assert _snapshot(root, skip=out) == before
    assert sorted(p.name for p in root.iterdir()) == ["data", "reports"]
    owned = set(manifest["files"])
    assert owned == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------------------
# Output safety on stand-in notebooks (fast)


def _notebook(*sources: str) -> nbformat.NotebookNode:
    parameters = new_code_cell(
        "data_dir = None\nn_patients = 500\nseed = 0\nmin_cell = 11\ntables_dir = None"
    )
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(
        cells=[new_markdown_cell("# Stand-in"), parameters, *map(new_code_cell, sources)]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    return nb


#: A stand-in report that saves one table (without importing pandas: kernels start fast).
GOOD = (
    "import os\nos.makedirs(tables_dir, exist_ok=True)\n"
    "open(os.path.join(tables_dir, 'counts.csv'), 'w').write(f'n\\n{n_patients}\\n')"
)


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """Two quick notebooks in place of the real ones: 01_first and 02_second."""
    folder = tmp_path / "nb"
    folder.mkdir()
    nbformat.write(_notebook(GOOD), folder / "01_first.ipynb")
    nbformat.write(_notebook(GOOD), folder / "02_second.ipynb")
    monkeypatch.setattr(reports, "NOTEBOOKS_DIR", folder)
    return folder


def _run(out: Path, *extra: str) -> int:
    return main(["report", "--patients", "20", "--out", str(out), "--quiet", *extra])


@pytest.mark.slow
def test_rerun_keeps_files_it_did_not_write_and_never_follows_links(tmp_path, stand_ins):
    out = tmp_path / "reports"
    assert _run(out) == 0
    mine = out / "tables" / "first" / "my_analysis.csv"
    mine.write_text("kept\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.csv").write_text("precious\n")
    (out / "tables" / "linked").symlink_to(elsewhere, target_is_directory=True)
    (out / "notes.txt").write_text("mine\n")
    # The previous manifest claims a file outside the folder: never honoured.
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"] += ["../elsewhere/precious.csv", "tables/linked/precious.csv"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = _snapshot(tmp_path, skip=out)
    assert _run(out, "--seed", "3") == 0
    assert mine.read_text() == "kept\n" and (out / "notes.txt").read_text() == "mine\n"
    assert (elsewhere / "precious.csv").read_text() == "precious\n"
    assert _snapshot(tmp_path, skip=out) == before
    assert json.loads((out / "manifest.json").read_text())["parameters"]["seed"] == 3


@pytest.mark.slow
def test_only_keeps_the_other_reports_in_the_index(tmp_path, stand_ins, capfd):
    out = tmp_path / "reports"
    assert _run(out) == 0
    # The kernel's own log (e.g. "KeyboardInterrupt caught in kernel" at shutdown) stays
    # out of the terminal on a successful run.
    assert "IPKernelApp" not in capfd.readouterr().err
    second = (out / "02_second.html").read_bytes()
    assert _run(out, "--only", "first", "--seed", "5") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["name"] for r in manifest["reports"]] == ["first", "second"]
    assert (out / "02_second.html").read_bytes() == second
    assert "tables/second/counts.csv" in manifest["files"]
    index = (out / "index.html").read_text()
    assert 'href="02_second.html"' in index and "earlier run on other data" in index


@pytest.mark.slow
def test_a_failing_report_does_not_stop_the_others_nor_touch_the_previous_run(
    tmp_path, stand_ins, capsys
):
    out = tmp_path / "reports"
    assert _run(out) == 0
    previous = _snapshot(out)
    nbformat.write(
        _notebook("raise ValueError('boom in the notebook')"), stand_ins / "01_first.ipynb"
    )
    capsys.readouterr()
    assert _run(out) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "first" in err and "boom in the notebook" in err
    assert _snapshot(out) == previous  # the previous good report is untouched
    failed = tmp_path / "reports.failed"
    assert (failed / FAILED_MARKER).is_file()
    page = (failed / "01_first.html").read_text()
    assert "This report failed" in page and "boom in the notebook" in page
    assert (failed / "02_second.html").is_file()  # the other report still ran
    index = (failed / "index.html").read_text()
    assert "FAILED" in index and "boom in the notebook" in index
    manifest = json.loads((failed / "manifest.json").read_text())
    assert [r["status"] for r in manifest["reports"]] == ["failed", "ok"]
    assert not list(tmp_path.glob(".reports.partial-*"))
    # The next good run replaces the failure marker folder.
    nbformat.write(_notebook(GOOD), stand_ins / "01_first.ipynb")
    assert _run(out) == 0
    assert not failed.exists()


@pytest.mark.slow
def test_a_failing_report_into_a_fresh_folder_leaves_only_the_failed_folder(tmp_path, stand_ins):
    nbformat.write(_notebook("1 / 0"), stand_ins / "02_second.ipynb")
    assert _run(tmp_path / "reports") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb", "reports.failed"]


@pytest.mark.slow
def test_disk_full_half_way_leaves_the_previous_report(tmp_path, stand_ins, monkeypatch, capsys):
    out = tmp_path / "reports"
    assert _run(out) == 0
    previous = _snapshot(out)
    real_write = reports._write_text

    def write_half_then_fail(path, text):
        if Path(path).name == "02_second.html":
            real_write(path, text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, text)

    monkeypatch.setattr(reports, "_write_text", write_half_then_fail)
    capsys.readouterr()
    assert _run(out) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _snapshot(out) == previous
    assert (tmp_path / "reports.failed" / FAILED_MARKER).is_file()
    assert not list(tmp_path.glob(".reports.partial-*"))


@pytest.mark.slow
def _saving(name: str, counts: list) -> str:
    """A stand-in cell that saves ``name``: the week-4 patients of four routes."""
    return (
        "import pandas as pd\n"
        "from analysis.reports import load_report_cohort, save_table\n"
        "snapshot, fingerprint = globals().get('snapshot'), globals().get('fingerprint')\n"
        "load_report_cohort(data_dir, n_patients, seed, snapshot=snapshot, "
        "fingerprint=fingerprint)\n"
        f"save_table(pd.DataFrame({{'visit': ['week4'] * 4, "
        f"'route': ['iv', 'im', 'oral', 'sublingual'], "
        f"'n': pd.array({counts!r}, dtype='Int64')}}), {name!r}, tables_dir)"
    )


def test_tables_that_hide_different_cells_of_one_population_are_linked(tmp_path, stand_ins):
    """Two tables count the same patients (a route at week 4) and chose their complementary
    suppression apart: the first shows IM and hides oral, the second the reverse, so
    together they show both. A batch of 120 demo patients with seed 2 did so (the rate and
    the mean-score tables) and failed its audit; the run now hides both routes in both
    tables and renders the reports again."""
    nbformat.write(_notebook(_saving("rates", [40, 15, None, None])), stand_ins / "01_first.ipynb")
    nbformat.write(_notebook(_saving("means", [40, None, 12, None])), stand_ins / "02_second.ipynb")
    out = tmp_path / "reports"
    assert _run(out) == 0
    for name in ("first/rates", "second/means"):
        table = pd.read_csv(out / "tables" / f"{name}.csv").set_index("route")
        assert table["n"].isna().to_dict() == {
            "iv": False, "im": True, "oral": True, "sublingual": True
        }, name  # fmt: skip
    # tables that agree need nothing more: rendered once, unchanged
    assert reports._linked_table_suppression(out, 11) == {}


def test_the_output_folder_cannot_shadow_the_kernels_imports(tmp_path, stand_ins):
    out = tmp_path / "reports"
    assert _run(out) == 0
    trap = tmp_path / "imported"
    (out / "pandas.py").write_text(f"open({str(trap)!r}, 'w').write('shadowed')\n")
    (out / "seaborn.py").write_text(f"open({str(trap)!r}, 'w').write('shadowed')\n")
    nbformat.write(_notebook("import seaborn\n" + GOOD), stand_ins / "01_first.ipynb")
    assert _run(out) == 0
    assert not trap.exists()
    assert (out / "seaborn.py").is_file()  # not the run's: kept


def test_foreign_files_with_a_report_name_are_refused_before_running(tmp_path, stand_ins, capsys):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "index.html").write_text("the clinic's own page")
    assert _run(out) == 2
    assert "index.html" in capsys.readouterr().err
    assert (out / "index.html").read_text() == "the clinic's own page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb", "reports"]


@pytest.mark.parametrize(
    "where",
    ["notebooks", "data_schema", "analysis"],
)
def test_out_inside_the_package_is_refused(where, capsys):
    root = Path(reports.__file__).resolve().parent.parent
    target = root / where / "executed"
    before = sorted((root / where).iterdir())
    assert main(["report", "--out", str(target), "--quiet"]) == 2
    assert "inside the package" in capsys.readouterr().err
    assert sorted((root / where).iterdir()) == before


def test_out_onto_a_cohort_folder_or_a_file_is_refused(tmp_path, capsys):
    data = tmp_path / "clinic"
    write_cohort(cohorts.one_patient(), data)
    before = _snapshot(tmp_path)
    assert main(["report", str(data), "--out", str(data), "--quiet"]) == 2
    assert main(["report", "--out", str(data), "--quiet"]) == 2
    assert main(["report", str(data), "--out", str(data / "reports"), "--quiet"]) == 2
    (tmp_path / "afile").write_text("x")
    assert main(["report", "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a cohort" in err and "is a file" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == {**before, "afile": _snapshot(tmp_path)["afile"]}


def test_an_unwritable_output_folder_exits_3(tmp_path, monkeypatch, capsys):
    def refuse(out):
        raise PermissionError(errno.EACCES, "Permission denied", str(out.parent))

    monkeypatch.setattr(reports, "_make_staging", refuse)
    assert main(["report", "--out", str(tmp_path / "r"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "Permission denied" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--min-cell", "0"],
        ["report", "--min-cell", "-3"],
        ["report", "--patients", "0"],
        ["report", "--seed", "-1"],
        ["synth", "--patients", "0", "--out", "x"],
    ],
)
def test_argument_values_are_checked_before_anything_runs(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "at least" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_invalid_data_exits_1_in_every_command_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "clinic"
    write_cohort(cohorts.one_patient(), data)
    (data / "patients.csv").write_text("patient_id,route\nP1,rectal\n")
    before = _snapshot(tmp_path)
    assert main(["validate", str(data)]) == 1
    assert main(["report", str(data), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    assert "route" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_debug_shows_the_traceback(tmp_path):
    data = tmp_path / "clinic"
    write_cohort(cohorts.one_patient(), data)
    (data / "patients.csv").write_text("patient_id,route\nP1,rectal\n")
    from analysis.schema import DataValidationError

    out = str(tmp_path / "r")
    with pytest.raises(DataValidationError):
        main(["--debug", "report", str(data), "--out", out, "--quiet"])
    with pytest.raises(DataValidationError):
        main(["report", str(data), "--out", out, "--quiet", "--debug"])


def test_synth_refuses_a_cohort_folder_unless_forced(tmp_path, capsys):
    data = tmp_path / "clinic"
    write_cohort(cohorts.one_patient(), data)
    (data / "notes.txt").write_text("the clinic's notes")
    before = _snapshot(tmp_path)
    assert main(["synth", "--patients", "5", "--out", str(data), "--format", "parquet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before
    assert main(["synth", "--patients", "5", "--out", str(data), "--force"]) == 0
    assert (data / "notes.txt").read_text() == "the clinic's notes"
    assert main(["validate", str(data)]) == 0
    (tmp_path / "afile").write_text("x")
    assert main(["synth", "--out", str(tmp_path / "afile")]) == 2


def test_a_missing_dependency_exits_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "papermill", None)
    assert main(["report", "--out", str(tmp_path / "r"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "missing dependency papermill" in err and "Traceback" not in err
    assert 'pip install "anxiety-outcomes[reports]"' in err  # the extra that installs it
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------
# One validation per batch, parallel jobs, reports per site


#: A stand-in report that loads the batch's snapshot and records, from inside the kernel,
#: how many validations loading it took and what it loaded.
LOADS_SNAPSHOT = (
    "import os\n"
    "import analysis.schema as schema\n"
    "calls = []\n"
    "real = schema._validate_tables\n"
    "schema._validate_tables = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
    "from analysis.reports import load_report_cohort\n"
    "cohort = load_report_cohort(data_dir, n_patients, seed, snapshot=snapshot, "
    "fingerprint=fingerprint)\n"
    "os.makedirs(tables_dir, exist_ok=True)\n"
    "open(os.path.join(tables_dir, 'loaded.csv'), 'w').write("
    "f'validations,snapshot,fingerprint\\n{len(calls)},{snapshot is not None},{cohort.fingerprint}\\n')"
)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["folder", "demo"])
def test_a_batch_validates_once_and_every_notebook_loads_the_snapshot(
    tmp_path, stand_ins, counted_validations, source
):
    nbformat.write(_notebook(LOADS_SNAPSHOT), stand_ins / "01_first.ipynb")
    nbformat.write(_notebook(LOADS_SNAPSHOT), stand_ins / "02_second.ipynb")
    argv = ["report", "--out", str(tmp_path / "reports"), "--quiet", "--jobs", "2"]
    if source == "folder":
        data = tmp_path / "data"
        write_cohort(cohorts.small_program(), data)
        argv.insert(1, str(data))
    else:
        argv += ["--patients", "30"]
    assert main(argv) == 0
    assert len(counted_validations) == 1  # the batch's one validation
    manifest = json.loads((tmp_path / "reports" / "manifest.json").read_text())
    for name in ("first", "second"):
        loaded = (tmp_path / "reports" / "tables" / name / "loaded.csv").read_text()
        assert loaded.splitlines()[1] == f"0,True,{manifest['data_fingerprint']}"
    # the snapshot (patient-level rows) was private and is gone
    assert not list(tmp_path.rglob("*.parquet")) or source == "folder"
    assert not list((tmp_path / "reports").rglob("*.parquet"))


@pytest.mark.slow
def test_a_snapshot_changed_after_validation_is_refused_by_the_notebooks(
    tmp_path, stand_ins, monkeypatch, capsys
):
    import pandas as pd

    nbformat.write(_notebook(LOADS_SNAPSHOT), stand_ins / "01_first.ipynb")
    real_write = reports.write_snapshot

    def write_then_tamper(cohort, folder, **kwargs):
        fingerprint = real_write(cohort, folder, **kwargs)
        patients = pd.read_parquet(Path(folder) / "patients.parquet")
        patients.loc[0, "age"] = 18 if patients.loc[0, "age"] != 18 else 19
        patients.to_parquet(Path(folder) / "patients.parquet", index=False)
        return fingerprint

    monkeypatch.setattr(reports, "write_snapshot", write_then_tamper)
    capsys.readouterr()
    assert _run(tmp_path / "reports") == 1
    err = capsys.readouterr().err
    assert "first" in err and "SnapshotError" in err and "does not match" in err
    assert not (tmp_path / "reports").exists()
    page = (tmp_path / "reports.failed" / "01_first.html").read_text()
    assert "This report failed" in page and "does not match the data fingerprint" in page


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    """The stand-ins (01 loading the snapshot) rendered once with ``--jobs 1`` in reused
    kernels: the reference both the parallel run and the fresh-kernel run are compared
    with. Returns the files of the run (path -> SHA-256) and the notebooks' folder (the
    other runs use these very files: a notebook written again gets new cell ids)."""
    root = tmp_path_factory.mktemp("serial")
    folder = root / "nb"
    folder.mkdir()
    nbformat.write(_notebook(LOADS_SNAPSHOT), folder / "01_first.ipynb")
    nbformat.write(_notebook(GOOD), folder / "02_second.ipynb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reports, "NOTEBOOKS_DIR", folder)
        patch.setattr(reports, "FRESH_KERNELS", False)
        assert _run(root / "serial", "--jobs", "1") == 0
    return _snapshot(root / "serial"), folder


@pytest.mark.slow
@pytest.mark.xdist_group("serial_run")  # one worker: one serial run
def test_parallel_jobs_give_the_same_files_as_serial(tmp_path, stand_ins, serial_run):
    serial, notebooks = serial_run
    for notebook in notebooks.glob("*.ipynb"):
        shutil.copyfile(notebook, stand_ins / notebook.name)
    assert _run(tmp_path / "parallel", "--jobs", "2") == 0
    parallel = _snapshot(tmp_path / "parallel")
    # the executed notebooks record their timings, the manifest its timestamp
    varying = {"manifest.json", "01_first.ipynb", "02_second.ipynb"}
    assert {k: v for k, v in serial.items() if k not in varying} == {
        k: v for k, v in parallel.items() if k not in varying
    }


def test_jobs_below_one_is_a_usage_error(tmp_path, capsys):
    assert main(["report", "--jobs", "0", "--out", str(tmp_path / "r")]) == 2
    assert "at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="jobs"):
        reports.run_reports(None, tmp_path / "r", jobs=0)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_progress_goes_to_stderr_one_line_per_report(tmp_path, stand_ins, capsys):
    assert main(["report", "--patients", "20", "--out", str(tmp_path / "r"), "--jobs", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "r" / "index.html")  # stdout: the result
    lines = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert sorted(line.split("]")[0] for line in lines) == ["[1/2", "[2/2"]
    assert all(" done in " in line for line in lines)


def _links(page: Path) -> list[str]:
    return re.findall(r'href="([^"#]+)', page.read_text(encoding="utf-8"))


def _sited(cohort_sizes: dict[str, int]):
    """The 60-patient demo cohort with its patients assigned to sites of these sizes."""
    from analysis.synthetic import synthetic_cohort

    cohort = synthetic_cohort(60, seed=4)
    sites = [site for site, n in cohort_sizes.items() for _ in range(n)]
    assert len(sites) == 60
    patients = cohort.patients.assign(site_id=sites)
    return cohorts._replace(cohort, patients=patients)


@pytest.mark.slow
def test_by_site_renders_each_site_and_withholds_small_ones(tmp_path, stand_ins):
    data = tmp_path / "data"
    write_cohort(_sited({"S01": 30, "S02": 25, "S03": 5}), data)
    out = tmp_path / "reports"
    assert main(["report", str(data), "--out", str(out), "--quiet", "--by-site"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # S03 has 5 patients; S02 is held back too, or S03 = pooled - S01 - S02
    assert list(manifest["sites"]["shown"]) == ["S01"]
    assert manifest["sites"]["withheld"] == ["S02", "S03"]
    assert [(r.get("site"), r["name"]) for r in manifest["reports"]] == [
        (None, "first"),
        (None, "second"),
        ("S01", "first"),
        ("S01", "second"),
    ]
    site = manifest["sites"]["shown"]["S01"]
    assert site["folder"] == "sites/S01"
    assert (out / "sites/S01/tables/first/counts.csv").is_file()
    assert site["data_fingerprint"] != manifest["data_fingerprint"]
    index = (out / "index.html").read_text()
    assert 'href="sites/S01/index.html"' in index and "S02, S03" in index
    assert "Not reported separately" in index
    # no size of a withheld site: the only number said about them is min_cell
    withheld = re.search(r"<p>Not reported separately.*?</p>", index, re.S)[0]
    assert re.findall(r"\b\d+\b", withheld.replace("S02", "").replace("S03", "")) == ["11"]
    assert not re.search(r"\b(5|25) patients", index)
    # every link of every index resolves; the manifest owns exactly what is on disk
    for page in [out / "index.html", out / "sites/S01/index.html"]:
        for link in _links(page):
            assert (page.parent / link).is_file(), (page, link)
    assert set(manifest["files"]) == {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
    }
    # a plain run afterwards keeps the site reports in the index, marked as earlier
    assert main(["report", str(data), "--out", str(out), "--quiet", "--only", "first"]) == 0
    index = (out / "index.html").read_text()
    assert 'href="sites/S01/01_first.html"' in index and "earlier --by-site run" in index


def test_by_site_without_sites_exits_1(tmp_path, capsys):
    data = tmp_path / "data"
    cohort = cohorts.small_program()
    write_cohort(cohorts._replace(cohort, patients=cohort.patients.drop(columns="site_id")), data)
    assert main(["report", str(data), "--out", str(tmp_path / "r"), "--by-site", "--quiet"]) == 1
    assert "site_id" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.failed").exists()


#: A stand-in that changes every piece of kernel state a report could change.
POLLUTES = (
    "import os, sys, warnings\nimport matplotlib\nimport pandas as pd\n"
    "LEFT_OVER = 1\n"
    "os.environ['ANXIETY_OUTCOMES_LEFT_OVER'] = '1'\n"
    "sys.path.append('/left-over')\n"
    "warnings.simplefilter('error')\n"
    "matplotlib.rcParams['lines.linewidth'] = 9.5\n"
    "pd.set_option('display.max_rows', 3)\n"
    "open('left-over.txt', 'w').write('x')\n" + GOOD
)

#: A stand-in that fails unless it starts from the state of a fresh kernel.
EXPECTS_A_FRESH_KERNEL = (
    "import os, sys, warnings\nimport matplotlib\nimport pandas as pd\n"
    "assert 'LEFT_OVER' not in globals()\n"
    "assert 'ANXIETY_OUTCOMES_LEFT_OVER' not in os.environ\n"
    "assert '/left-over' not in sys.path\n"
    "assert ('error', None, Warning, None, 0) not in warnings.filters\n"
    "assert matplotlib.rcParams['lines.linewidth'] != 9.5\n"
    "assert pd.get_option('display.max_rows') == 60\n"
    "assert os.listdir('.') == [], os.listdir('.')\n"
    "assert len(In) == 4, In  # '' and this notebook's three cells only\n" + GOOD
)


@pytest.mark.slow
def test_a_reused_kernel_starts_each_notebook_from_a_fresh_state(tmp_path, stand_ins):
    # One job: both notebooks run one after the other in the same kernel.
    nbformat.write(_notebook(POLLUTES), stand_ins / "01_first.ipynb")
    nbformat.write(_notebook(EXPECTS_A_FRESH_KERNEL), stand_ins / "02_second.ipynb")
    out = tmp_path / "reports"
    assert _run(out, "--jobs", "1") == 0
    executed = nbformat.read(out / "02_second.ipynb", as_version=4)
    counts = [c.execution_count for c in executed.cells if c.cell_type == "code"]
    assert counts == [1, 2, 3]  # numbered as in a fresh kernel (parameters, injected, cell)


@pytest.mark.slow
def test_a_notebook_that_kills_its_kernel_fails_alone(tmp_path, stand_ins):
    nbformat.write(_notebook("import os\nos._exit(3)"), stand_ins / "01_first.ipynb")
    out = tmp_path / "reports"
    assert _run(out, "--jobs", "1") == 1
    manifest = json.loads((tmp_path / "reports.failed" / "manifest.json").read_text())
    assert [r["status"] for r in manifest["reports"]] == ["failed", "ok"]
    nbformat.write(_notebook(GOOD), stand_ins / "01_first.ipynb")
    assert _run(out, "--jobs", "1") == 0  # and the next run gets working kernels


@pytest.mark.slow
@pytest.mark.xdist_group("serial_run")  # one worker: one serial run
def test_fresh_kernels_give_the_same_files_as_reused_ones(
    tmp_path, stand_ins, monkeypatch, serial_run
):
    reused, notebooks = serial_run  # --jobs 1 in reused kernels
    for notebook in notebooks.glob("*.ipynb"):
        shutil.copyfile(notebook, stand_ins / notebook.name)
    monkeypatch.setattr(reports, "FRESH_KERNELS", True)
    assert _run(tmp_path / "fresh", "--jobs", "1") == 0
    fresh = _snapshot(tmp_path / "fresh")
    varying = {"manifest.json", "01_first.ipynb", "02_second.ipynb"}  # timings, timestamp
    assert {k: v for k, v in reused.items() if k not in varying} == {
        k: v for k, v in fresh.items() if k not in varying
    }


class _CountedKernel:
    """A stand-in for ``reports._Kernel``: numbered, always alive, closing recorded."""

    made = 0

    def __init__(self):
        _CountedKernel.made += 1
        self.number, self.closed = _CountedKernel.made, False

    def alive(self):
        return True

    def close(self):
        self.closed = True


def test_the_kernel_pool_reuses_idle_kernels_and_fresh_kernels_leave_them_idle(monkeypatch):
    # Under FRESH_KERNELS every notebook gets a kernel of its own (closed after it), and
    # the kernels already idle in a shared pool stay there for the runs after; a notebook
    # that failed has its kernel closed either way. (Before, the switch took an idle
    # kernel for the first notebook, so that notebook did not run in a fresh kernel, and
    # closed it: the suite's shared kernels were started again after the fresh-kernel test.)
    monkeypatch.setattr(reports, "_Kernel", _CountedKernel)
    pool = reports._KernelPool()
    first = pool.acquire()
    pool.release(first, healthy=True)
    assert pool.acquire() is first  # reused
    pool.release(first, healthy=True)
    monkeypatch.setattr(reports, "FRESH_KERNELS", True)
    fresh = [pool.acquire() for _ in range(2)]
    assert first not in fresh and fresh[0] is not fresh[1]
    for kernel in fresh:
        pool.release(kernel, healthy=True)
        assert kernel.closed
    assert not first.closed
    monkeypatch.setattr(reports, "FRESH_KERNELS", False)
    assert pool.acquire() is first  # still idle after the fresh-kernel notebooks
    pool.release(first, healthy=False)  # a failed notebook's kernel is not kept
    assert first.closed and pool.acquire() is not first
    pool.close()


def test_report_kernels_use_the_prompt_client_whose_wait_reads_iopub_briefly():
    # jupyter_client's wait_for_ready reads IOPub until 0.2 s pass without a message: on
    # a kept kernel, most of a small notebook's time (benchmarks/kernel_latency.py). The
    # report kernels' client waits IOPUB_SETTLE_SECONDS and still checks that IOPub is
    # connected (every render test runs on it; outputs are compared across runs).
    from jupyter_client.asynchronous import AsyncKernelClient

    manager = reports._kernel_manager_class()()
    client = manager.client()
    assert isinstance(client, AsyncKernelClient)
    assert type(client).wait_for_ready is not AsyncKernelClient.wait_for_ready
    assert reports.IOPUB_SETTLE_SECONDS < 0.2
