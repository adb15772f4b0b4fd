"""The batch report machinery, end to end on a small synthetic cohort."""

from __future__ import annotations

import html
import json
import os
import re

import nbformat
import pandas as pd
import pytest

import analysis
from analysis.reports import (
    data_fingerprint,
    definitions,
    discover_reports,
    run_reports,
    save_table,
)
from analysis.schema import Cohort, load_cohort, write_cohort
from analysis.synthetic import synthetic_cohort

MANIFEST_KEYS = {
    "package",
    "package_version",
    "created",
    "dependencies",
    "data",
    "data_fingerprint",
    "parameters",
    "definitions",
    "reports",
    "files",
}


@pytest.fixture
def rendered(rendered_reports):
    """All reports, rendered once per test run (conftest.py)."""
    return rendered_reports


@pytest.mark.xdist_group("rendered_reports")
def test_a_group_of_tests_is_one_unit_for_pytest_xdist(request):
    """Under ``--dist loadgroup`` a grouped test's node id ends with ``@<group>``: that is
    what makes pytest-xdist run the tests of the shared render on one worker (on pytest
    9.2 only because ``tests/conftest.py`` sets it; without it both workers waited on the
    one render). Without pytest-xdist the id is the plain one."""
    name = "test_a_group_of_tests_is_one_unit_for_pytest_xdist"
    grouped = bool(os.environ.get("PYTEST_XDIST_WORKER")) and request.config.getvalue("loadgroup")
    assert request.node.nodeid.endswith(name + ("@rendered_reports" if grouped else ""))


@pytest.mark.slow
def test_every_output_file_is_written(rendered):
    out, manifest = rendered
    reports = discover_reports()
    assert [r["name"] for r in manifest["reports"]] == [r.name for r in reports]
    for report in reports:
        assert (out / f"{report.stem}.html").is_file()
        assert (out / f"{report.stem}.ipynb").is_file()
    assert (out / "index.html").is_file() and (out / "manifest.json").is_file()
    listed = set(manifest["files"])
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert listed == on_disk
    # Nothing is left beside the folder: no staging folder, no failed run.
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    assert not (out.parent / f"{out.name}.failed").exists()


@pytest.mark.slow
def test_html_has_narrative_and_results_but_no_code(rendered):
    out, _ = rendered
    page = (out / "01_data_quality.html").read_text(encoding="utf-8")
    assert "Completeness by visit" in page  # markdown kept
    assert "all checks passed" in page  # outputs kept
    assert "<img" in page  # figures embedded
    for code in ("load_report_cohort(", "synthetic_cohort(", "save_table(", "import "):
        assert code not in page
    assert "Traceback" not in page


@pytest.mark.slow
def test_html_tables_are_shown_whole(rendered):
    out, _ = rendered
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        # pandas marks an elided table with a "..." row and an "N rows x M columns" footer.
        assert "rows × " not in text, page.name


@pytest.mark.slow
def test_notebook_ran_clean(rendered):
    out, _ = rendered
    nb = nbformat.read(out / "01_data_quality.ipynb", as_version=4)
    noise = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
    ]
    assert not noise, "errors or warnings in the report"


@pytest.mark.slow
def test_executed_notebook_ran_with_the_parameters(rendered):
    out, _ = rendered
    nb = nbformat.read(out / "01_data_quality.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "n_patients = 60" in injected[0].source
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_tables_are_saved_as_csv_and_suppressed(rendered):
    out, manifest = rendered
    tables = manifest["reports"][0]["tables"]
    assert "tables/data_quality/completeness.csv" in tables
    completeness = pd.read_csv(out / "tables/data_quality/completeness.csv")
    assert set(completeness["instrument"]) == {"GAD7", "HAMA"}
    counts = completeness[["expected", "observed"]].stack()
    assert not counts.between(1, 10).any()  # min_cell=11 by default
    table_one = pd.read_csv(out / "tables/data_quality/table_one.csv", keep_default_na=False)
    assert table_one.iloc[0].tolist()[:2] == ["n", ""]  # by route, then Overall
    assert table_one.columns[-1] == "Overall" and table_one.iloc[0, -1] == "60"


@pytest.mark.slow
def test_every_table_of_every_page_is_a_publication_table(rendered):
    # A notebook cell ending in a bare data frame shows pandas' own table: the index,
    # machine column names, True/False, "<NA>" and text cut at 50 characters. Reports 01,
    # 02 and 05 did (findings, the multiple-imputation and tipping-point tables, the
    # tables collected); every table goes through analysis.formatting instead.
    out, manifest = rendered
    for entry in manifest["reports"]:
        page = (out / entry["html"]).read_text(encoding="utf-8")
        assert 'class="dataframe"' not in page, entry["html"]


@pytest.mark.slow
def test_every_figure_of_every_page_is_described(rendered):
    # nbconvert gives an image without alt text "No description has been provided for
    # this image"; each report figure's image gets its own description instead.
    out, manifest = rendered
    for entry in manifest["reports"]:
        page = (out / entry["html"]).read_text(encoding="utf-8")
        images = re.findall(r"<img\b[^>]*>", page)
        assert images, entry["html"]
        for tag in images:
            alt = html.unescape(re.search(r'alt="([^"]*)"', tag).group(1))
            assert alt.startswith("Figure. ") and len(alt) > len("Figure. ") + 10, alt


@pytest.mark.slow
def test_findings_are_a_saved_publication_table(rendered):
    # Report 01's findings were shown as a pandas frame: its index, "<NA>" for a hidden
    # count, a True/False column and fixes cut at 50 characters, and no saved table. They
    # are a table like the others: saved, counts of people hidden, shown whole.
    out, manifest = rendered
    assert "tables/data_quality/findings.csv" in manifest["reports"][0]["tables"]
    findings = pd.read_csv(out / "tables/data_quality/findings.csv")
    assert list(findings.columns) == ["table", "column", "check", "rows", "fix", "suppressed"]
    assert not findings["rows"].dropna().between(1, 10).any()  # min_cell=11
    assert findings["suppressed"].any()  # the 60-patient demo has small findings
    page = (out / "01_data_quality.html").read_text(encoding="utf-8")
    section = page[page.index("Findings: rows loaded and accounted for") :]
    section = html.unescape(re.sub(r"<[^>]+>", " ", section[: section.index("</table>")]))
    assert "<NA>" not in section and "..." not in section
    assert not re.search(r"\b(True|False)\b", section)  # no flag column: a dagger instead
    for fix in findings["fix"].dropna():
        assert " ".join(fix.split()) in " ".join(section.split())  # whole, not cut


@pytest.mark.slow
def test_manifest(rendered):
    out, manifest = rendered
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert set(on_disk) == MANIFEST_KEYS
    assert on_disk["package_version"] == analysis.__version__
    assert on_disk["data_fingerprint"] == data_fingerprint(synthetic_cohort(60, 0))
    assert on_disk["parameters"] == {"data_dir": None, "n_patients": 60, "seed": 0, "min_cell": 11}
    assert on_disk["definitions"] == json.loads(json.dumps(definitions()))
    assert on_disk["data"]["rows"]["patients"] == 60
    for entry in on_disk["reports"]:  # each report records its status and provenance
        assert entry["status"] == "ok" and "reason" not in entry
        assert entry["data_fingerprint"] == on_disk["data_fingerprint"]
        assert entry["parameters"] == on_disk["parameters"]


@pytest.mark.slow
def test_index_links_every_report_and_has_no_date(rendered):
    out, manifest = rendered
    index = (out / "index.html").read_text(encoding="utf-8")
    for report in manifest["reports"]:
        assert f'href="{report["html"]}"' in index
    assert manifest["data_fingerprint"] in index and analysis.__version__ in index
    assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}:\d{2}\b", index)


def test_definitions_hold_criteria_and_schedule():
    defs = definitions()
    assert defs["instruments"]["HAMA"]["criteria"]["remission_cutoff"] == 7
    assert defs["instruments"]["GAD7"]["severity_bands"]["spitzer2006"]["lower"] == [0, 5, 10, 15]
    visits = {v["name"]: v for v in defs["schedule"]}
    assert visits["week4"]["window_low"] == 21 and visits["day1"]["instruments"] == ["GAD7"]
    json.dumps(defs)


def test_fingerprint_is_stable_for_the_same_data(tmp_path):
    cohort = synthetic_cohort(40, 5)
    write_cohort(cohort, tmp_path)
    shuffled = Cohort(
        cohort.patients.sample(frac=1, random_state=1)[cohort.patients.columns[::-1]],
        cohort.assessments,
        cohort.sessions,
        cohort.adverse_events,
    )
    fingerprint = data_fingerprint(cohort)
    assert len(fingerprint) == 64
    assert data_fingerprint(synthetic_cohort(40, 5)) == fingerprint
    assert data_fingerprint(load_cohort(tmp_path)) == fingerprint  # CSV round trip
    assert data_fingerprint(shuffled) == fingerprint  # row and column order


def test_fingerprint_changes_with_the_data():
    cohort = synthetic_cohort(40, 5)
    fingerprint = data_fingerprint(cohort)
    assessments = cohort.assessments.copy()
    assessments.loc[0, "study_day"] += 1
    assert data_fingerprint(Cohort(cohort.patients, assessments)) != fingerprint
    assert data_fingerprint(Cohort(cohort.patients, cohort.assessments)) != fingerprint  # no AEs
    assert data_fingerprint(synthetic_cohort(40, 6)) != fingerprint


@pytest.mark.slow
def test_run_reports_on_a_data_folder_and_only(tmp_path):
    data = tmp_path / "data"
    write_cohort(synthetic_cohort(40, 2), data)
    manifest = run_reports(data, tmp_path / "out", reports=["01_data_quality"], progress=False)
    assert manifest["parameters"] == {"data_dir": str(data), "min_cell": 11}
    assert manifest["data_fingerprint"] == data_fingerprint(load_cohort(data))
    nb = nbformat.read(tmp_path / "out/01_data_quality.ipynb", as_version=4)
    assert str(data) in nb.cells[2].source  # the injected data_dir


def test_run_reports_rejects_unknown_reports_and_parameters(tmp_path):
    with pytest.raises(ValueError, match="Unknown report"):
        run_reports(None, tmp_path, reports=["nope"])
    with pytest.raises(ValueError, match="Unknown report parameter"):
        run_reports(None, tmp_path, n_patient=10)
    with pytest.raises(ValueError, match="min_cell"):
        run_reports(None, tmp_path, min_cell="11")
    assert not any(tmp_path.iterdir())


def test_save_table(tmp_path):
    df = pd.DataFrame({"visit": ["week1"], "n": [12]})
    assert save_table(df, "counts") is df  # interactive: nothing written
    assert save_table(df, "counts", tmp_path / "t") is df
    assert (tmp_path / "t/counts.csv").read_text() == "visit,n\nweek1,12\n"
    with pytest.raises(ValueError, match="lower-case"):
        save_table(df, "../counts", tmp_path)


@pytest.mark.slow
def test_pages_have_a_title_a_provenance_header_and_index_summaries(rendered):
    out, manifest = rendered
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="definitions"' in index
    for report in manifest["reports"]:
        page = (out / report["html"]).read_text(encoding="utf-8")
        title = re.search(r"<title>(.*?)</title>", page, re.S)[1]
        assert title == f"{html.escape(report['title'])} | anxiety-outcomes"
        assert "synthetic demo cohort, 60 patients, seed 0" in page
        assert manifest["data_fingerprint"] in page and 'href="index.html#definitions"' in page
        assert report["summary"] and html.escape(report["summary"]) in index
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", manifest["created"])
    assert manifest["dependencies"]["pandas"] == pd.__version__
    assert manifest["dependencies"]["great_tables"]


_RUN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


@pytest.mark.slow
def test_serial_and_parallel_runs_write_the_same_reports(rendered, tmp_path):
    """The shared fixture renders with the default jobs (2 here); a serial run of two
    reports gives the same tables byte for byte and the same pages but for the run time."""
    out, _ = rendered
    serial = tmp_path / "serial"
    wanted = ["data_quality", "effect_sizes"]
    run_reports(None, serial, wanted, progress=False, jobs=1, n_patients=60)
    written = sorted(p.relative_to(serial).as_posix() for p in serial.rglob("*.csv"))
    assert written and all((out / name).is_file() for name in written)
    for name in written:
        assert (serial / name).read_bytes() == (out / name).read_bytes(), name
    for page in ("01_data_quality.html", "03_effect_sizes.html"):
        one = _RUN_TIME.sub("", (serial / page).read_text(encoding="utf-8"))
        two = _RUN_TIME.sub("", (out / page).read_text(encoding="utf-8"))
        assert one == two, page


#: Site sizes of the --by-site run below: two sites of different sizes and patients without a
#: site (16, 4 of them with PTSD). Primary diagnosis per block of rows.
SITES = {"S01": 46, "S02": 44, None: 16}
DIAGNOSES = (
    ["PTSD"] * 15 + ["GAD"] * 31 + ["PTSD"] * 12 + ["SAD"] * 32 + ["PTSD"] * 4 + ["GAD"] * 12
)


@pytest.fixture(scope="module")
def by_site_run(tmp_path_factory):
    """One real ``--by-site`` run of report 01, shared by the tests of this module that
    check different things about it: ``(cohort, out, manifest)``."""
    cohort = synthetic_cohort(sum(SITES.values()), seed=5)
    p = cohort.patients.copy()
    sites = [site for site, n in SITES.items() for _ in range(n)]
    p["site_id"] = pd.array(sites, dtype=p["site_id"].dtype)
    p["primary_diagnosis"] = pd.array(DIAGNOSES, dtype=p["primary_diagnosis"].dtype)
    root = tmp_path_factory.mktemp("by_site")
    data = write_cohort(Cohort(p, *_rest(cohort)), root / "data")
    out = root / "out"
    manifest = run_reports(data, out, ["data_quality"], progress=False, by_site=True)
    return cohort, out, manifest


@pytest.mark.slow
@pytest.mark.xdist_group("by_site_run")  # one worker: one run
def test_by_site_with_the_real_report(by_site_run):
    _, out, manifest = by_site_run
    assert list(manifest["sites"]["shown"]) == ["S01", "S02"]
    assert manifest["sites"]["withheld"] == []
    for site, n in (("S01", 46), ("S02", 44)):
        page = (out / "sites" / site / "01_data_quality.html").read_text(encoding="utf-8")
        assert f"site {site} ({n} patients)" in page  # the provenance header says which data
        assert f"<title>Data quality: site {site} | anxiety-outcomes</title>" in page
        assert manifest["sites"]["shown"][site]["data_fingerprint"] in page
        table_one = pd.read_csv(out / "sites" / site / "tables/data_quality/table_one.csv")
        assert table_one.columns[-1] == "Overall" and str(table_one.iloc[0, -1]) == str(n)
        # the provenance header links the definitions of the site's own index page
        assert 'href="index.html#definitions"' in page
        assert 'id="definitions"' in (out / "sites" / site / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.xdist_group("by_site_run")  # one worker: one run
def test_by_site_run_hides_a_population_whose_remainder_is_small(by_site_run):
    # 16 patients have no site, 4 of them with PTSD: pooled PTSD (31) minus S01's 15 and
    # S02's 12 would give those 4. The run hides PTSD at S02, the smallest site showing
    # it (12 + 4 hidden together), and its audit passes (issue 9, session 5).
    cohort, out, manifest = by_site_run
    assert manifest["sites"]["patients_without_site"] is True
    assert list(manifest["sites"]["shown"]) == ["S01", "S02"]

    def diagnoses(folder):
        t1 = pd.read_csv(out / folder / "tables/data_quality/table_one.csv")
        return t1[t1["variable"] == "primary_diagnosis"].set_index("level")["Overall"]

    assert diagnoses(".")["PTSD"].startswith("31 ")  # pooled: unchanged
    assert diagnoses("sites/S01")["PTSD"].startswith("15 ")
    assert diagnoses("sites/S02")["PTSD"] == "suppressed"  # shown before the fix
    assert diagnoses("sites/S02")["SAD"] == "suppressed"  # its margin: not one hidden cell
    result = analysis.audit_report_dir(out, identifiers=cohort.patients["patient_id"])
    assert result.ok, result.message()


def _rest(cohort):
    return cohort.assessments, cohort.sessions, cohort.adverse_events
