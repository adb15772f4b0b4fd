"""Peak memory of validating about 2 million assessments with the pandas path.

Writes a synthetic cohort (``--patients``, default 190,000: about 2 million assessment
rows) as CSV and as Parquet, then, each in a fresh process, measures the peak resident
set size while ``load_cohort`` reads and validates the folder, and while
``validate_cohort`` validates the tables already in memory. The peak is the whole
process's (``VmHWM`` and 5 ms samples, see ``benchmarks/derive.py``), reported with its
growth over the process before the step.

Usage::

    nice python benchmarks/validate_memory.py
    python benchmarks/validate_memory.py --patients 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from derive import _PeakRSS  # noqa: E402


def _worker(kind: str, folder: Path) -> dict:
    import gc

    import pandas as pd
    import psutil

    from analysis.schema import TABLES, load_cohort, validate_cohort

    tables = None
    if kind == "memory":
        tables = {t: pd.read_parquet(folder / "parquet" / f"{t}.parquet") for t in TABLES}
    gc.collect()
    base = psutil.Process().memory_info().rss
    with _PeakRSS() as rss:
        start = time.perf_counter()
        if kind == "memory":
            report = validate_cohort(tables)
            rows = len(report.tables["assessments"])
        else:
            rows = len(load_cohort(folder / kind).assessments)
        seconds = time.perf_counter() - start
    return {
        "kind": kind,
        "rows": rows,
        "seconds": seconds,
        "peak_mb": rss.peak / 2**20,
        "growth_mb": (rss.peak - base) / 2**20,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=190_000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, Path(args.folder))))
        return
    from analysis import synthetic_cohort
    from analysis.schema import write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cohort = synthetic_cohort(args.patients, seed=0)
        write_cohort(cohort, folder / "csv", format="csv")
        write_cohort(cohort, folder / "parquet", format="parquet")
        del cohort
        print(f"{'input':<10}{'assessments':>14}{'seconds':>10}{'peak MB':>10}{'growth MB':>11}")
        for kind in ("csv", "parquet", "memory"):
            command = [sys.executable, __file__, "--worker", kind, "--folder", str(folder)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{kind:<10}{r['rows']:>14,}{r['seconds']:>10.1f}{r['peak_mb']:>10,.0f}"
                f"{r['growth_mb']:>11,.0f}"
            )


if __name__ == "__main__":
    main()
