"""``benchmarks/scale.py`` at a tiny size: the whole run, as CI can afford it.

The script first holds its hand-written SQL equal to the library (validation counts of a
registry with injected errors and identifiers, endpoint rows, rates with Wilson intervals,
d_av effect sizes) and raises otherwise, then writes the registry in chunks, runs both
pipelines in fresh processes and prints one line per step; the files are deleted after.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "scale.py"


def test_scale_benchmark_runs_at_tiny_size(tmp_path):
    data = tmp_path / "registry"
    command = [sys.executable, str(SCRIPT), "--patients", "600", "--chunk", "300"]
    command += ["--spark-patients", "0", "--check-patients", "400", "--data", str(data)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    assert "The SQL reference gives the library's validation counts" in out
    assert "patients 600 rows" in out
    assert "memory_limit='4GB' set by load_cohort" in out
    for step in ("validate", "derive", "rates", "effect_sizes", "total"):
        line = next(x for x in out.splitlines() if x.startswith(step))
        assert re.search(r"\d+\.\d\d(-\d+\.\d\d)?x", line), line  # a ratio to the SQL
    assert not data.exists()  # generated files are deleted


def test_a_worker_run_by_hand_makes_its_work_folder(tmp_path, monkeypatch, capsys):
    # `--worker ... --work DIR` (how the script runs each pipeline, and how one is rerun
    # by hand) failed when DIR did not exist yet. The pipeline itself is the run above's.
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import scale

    seen = []

    def pipeline(folder, work, kind, memory_limit):
        seen.append(work.is_dir())
        return [{"step": "validate"}], None

    monkeypatch.setattr(scale, "library_pipeline", pipeline)
    work = tmp_path / "not" / "yet"
    scale.main(["--worker", "duckdb", "--data", str(tmp_path), "--work", str(work)])
    assert seen == [True]
    assert json.loads(capsys.readouterr().out) == [{"step": "validate"}]
