"""The `anxiety-outcomes` command: exit codes, messages and files.

More situations (awkward cohorts, output safety, disk full, exit code 3) are in
``test_report_batch.py``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import analysis
from analysis.cli import main


@pytest.fixture
def cohort_dir(tmp_path):
    folder = tmp_path / "cohort"
    assert main(["synth", "--patients", "40", "--seed", "3", "--out", str(folder)]) == 0
    return folder


def test_synth_writes_a_valid_cohort(cohort_dir, capsys):
    assert {p.name for p in cohort_dir.iterdir()} >= {"patients.csv", "assessments.csv"}
    capsys.readouterr()
    assert main(["validate", str(cohort_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: 40 patients, ")
    assert "assessments" in out


def test_validate_invalid_data_exits_1_with_the_summary(cohort_dir, capsys):
    patients = pd.read_csv(cohort_dir / "patients.csv")
    patients.loc[[0, 1], "route"] = "rectal"
    patients.to_csv(cohort_dir / "patients.csv", index=False)
    capsys.readouterr()
    assert main(["validate", str(cohort_dir)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "patients" in captured.err and "route" in captured.err


def test_validate_a_folder_missing_or_doubling_a_table_exits_1(cohort_dir, capsys):
    (cohort_dir / "patients.csv").rename(cohort_dir / "elsewhere.csv")
    capsys.readouterr()
    assert main(["validate", str(cohort_dir)]) == 1
    assert "patients" in capsys.readouterr().err
    (cohort_dir / "elsewhere.csv").rename(cohort_dir / "patients.csv")
    pd.read_csv(cohort_dir / "assessments.csv").to_parquet(cohort_dir / "assessments.parquet")
    assert main(["validate", str(cohort_dir)]) == 1
    assert "assessments" in capsys.readouterr().err


def test_validate_identifying_data_exits_1_without_echoing(cohort_dir, capsys):
    patients = pd.read_csv(cohort_dir / "patients.csv")
    patients["email"] = "jane.doe@example.org"
    patients.to_csv(cohort_dir / "patients.csv", index=False)
    capsys.readouterr()
    assert main(["validate", str(cohort_dir)]) == 1
    err = capsys.readouterr().err
    assert "email" in err and "jane.doe@example.org" not in err


@pytest.mark.slow
def test_report_on_a_folder(cohort_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as `make report` passes
    out = tmp_path / "reports"
    assert main(["report", str(cohort_dir), "--out", "reports", "--only", "data_quality"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "reports/index.html"
    assert "[1/1] data_quality: done in" in captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["package_version"] == analysis.__version__
    assert (out / "01_data_quality.html").is_file()


def test_report_on_invalid_data_exits_1(cohort_dir, tmp_path, capsys):
    (cohort_dir / "assessments.csv").write_text("patient_id,instrument,study_day\nx,GAD9,0\n")
    assert main(["report", str(cohort_dir), "--out", str(tmp_path / "r")]) == 1
    assert "instrument" in capsys.readouterr().err
    assert not (tmp_path / "r" / "index.html").exists()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["validate"],
        ["synth", "--patients", "many", "--out", "x"],
        ["report", "--only"],
        ["report", "--bogus"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_report_or_missing_folder_exit_2(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path), "--only", "nope"]) == 2
    assert "Unknown report" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing")]) == 2
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


def test_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "report" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert analysis.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["missing_table", "both_formats", "bad_value"])
def test_report_and_validate_agree_on_invalid_data(cohort_dir, tmp_path, capsys, problem):
    if problem == "missing_table":
        (cohort_dir / "patients.csv").unlink()
    elif problem == "both_formats":
        pd.read_csv(cohort_dir / "patients.csv").to_parquet(cohort_dir / "patients.parquet")
    else:
        (cohort_dir / "assessments.csv").write_text("patient_id,instrument,study_day\nx,GAD9,0\n")
    assert main(["validate", str(cohort_dir)]) == 1
    assert main(["report", str(cohort_dir), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("patients" in err or "instrument" in err)
    assert not (tmp_path / "r").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".r.", "r."))]
