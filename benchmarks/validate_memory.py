"""Peak memory of validating about 2 million assessments with the pandas path.

Writes a synthetic cohort (``--patients``, default 190,000: about 2 million assessment
rows) as CSV and as Parquet, then, each in a fresh process, measures the peak resident
set size while ``load_cohort`` reads and validates the folder, and while
``validate_cohort`` validates the tables already in memory. The peak is the whole
process's (``VmHWM`` and 5 ms samples, see ``benchmarks/derive.py``), reported with its
growth over the process before the step.

With ``--steps``, each run also prints the steps of the validation (reading each file,
coercing, checking, the table rules, keys, findings and the de-identification guard)
with the process's resident size before, at its peak during, and after each step (MB),
nested as the steps call one another: where the memory goes.

With ``--small N`` (no big cohort), it times ``load_cohort`` of an N-patient CSV folder
instead: the CPU time per call (the test suite loads small folders hundreds of times).

Usage::

    nice python benchmarks/validate_memory.py
    python benchmarks/validate_memory.py --patients 20000 --steps
    python benchmarks/validate_memory.py --small 40
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

#: The steps ``--steps`` measures: (module, owner or None, function name).
_STEPS = [
    ("analysis.readers", None, "read_table_file"),
    ("analysis.readers", None, "_read_csv"),
    ("analysis.readers", None, "_read_parquet"),
    ("analysis.readers", None, "_missing_to_na"),
    ("analysis.schema", None, "_read_folder"),
    ("analysis.schema", None, "_validate_table"),
    ("analysis._checks", "_TableValidator", "coerce"),
    ("analysis._checks", "_TableValidator", "check_columns"),
    ("analysis._checks", "_TableValidator", "check_unique"),
    ("analysis.schema", None, "_check_foreign_keys"),
    ("analysis.schema", None, "_cohort_findings"),
    ("analysis.schema", None, "_scan"),
    ("analysis.schema", None, "_report_frame"),
]


def _trace_steps(records: list) -> None:
    """Wrap the steps so that each call appends (depth, step, table, before, peak, after)."""
    import functools
    import importlib
    import threading

    import psutil

    process = psutil.Process()
    state = {"peak": 0, "depth": 0}

    def sample():
        while True:
            state["peak"] = max(state["peak"], process.memory_info().rss)
            threading.Event().wait(0.003)

    threading.Thread(target=sample, daemon=True).start()

    def wrap(owner, name, label):
        function = getattr(owner, name, None)
        if function is None:  # a step this version does not have
            return

        @functools.wraps(function)
        def traced(*args, **kwargs):
            outer, before = state["peak"], process.memory_info().rss
            state["peak"] = before
            state["depth"] += 1
            try:
                return function(*args, **kwargs)
            finally:
                state["depth"] -= 1
                after = process.memory_info().rss
                peak = max(state["peak"], after)
                table = next((a for a in args if isinstance(a, str)), "")
                owner_table = getattr(args[0], "table", None) if args else None
                table = owner_table if isinstance(owner_table, str) else table
                records.append((state["depth"], label, str(table), before, peak, after))
                state["peak"] = max(outer, peak)

        setattr(owner, name, traced)

    for module, owner, name in _STEPS:
        target = importlib.import_module(module)
        wrap(getattr(target, owner) if owner else target, name, name)
    schema = importlib.import_module("analysis.schema")
    for table, rules in getattr(schema, "_TABLE_RULES", {}).items():
        wrap(rules, "check", f"rules of {table}")


def _small_worker(patients: int, calls: int) -> dict:
    """CPU seconds per ``load_cohort`` of a small CSV folder (after one warm-up call)."""
    from analysis import synthetic_cohort
    from analysis.schema import load_cohort, write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_cohort(synthetic_cohort(patients, seed=0), Path(tmp) / "csv")
        load_cohort(folder)
        times = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(calls):
                load_cohort(folder)
            times.append((time.process_time() - start) / calls)
    return {"cpu_ms": [1000 * t for t in times]}


def _worker(kind: str, folder: Path, steps: bool = False) -> dict:
    import gc

    import pandas as pd
    import psutil

    from analysis.schema import TABLES, load_cohort, validate_cohort

    records: list = []
    if steps:
        _trace_steps(records)
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
        "steps": [(d, s, t, b / 2**20, p / 2**20, a / 2**20) for d, s, t, b, p, a in records],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=190_000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--steps", action="store_true", help="print each step's memory")
    parser.add_argument("--small", type=int, help="time load_cohort of a small CSV folder")
    parser.add_argument("--calls", type=int, default=20, help="calls per --small repeat")
    args = parser.parse_args(argv)
    if args.small:
        r = _small_worker(args.small, args.calls)
        spread = ", ".join(f"{t:.0f}" for t in sorted(r["cpu_ms"]))
        print(f"load_cohort of a {args.small}-patient CSV folder: CPU ms per call {spread}")
        return
    if args.worker:
        print(json.dumps(_worker(args.worker, Path(args.folder), args.steps)))
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
            if args.steps:
                command.append("--steps")
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{kind:<10}{r['rows']:>14,}{r['seconds']:>10.1f}{r['peak_mb']:>10,.0f}"
                f"{r['growth_mb']:>11,.0f}"
            )
            if args.steps:  # in the order the steps finished (inner steps first)
                print(f"    {'step':<34}{'table':<20}{'before':>8}{'peak':>8}{'after':>8}")
                for depth, step, table, before, peak, after in r["steps"]:
                    name = "  " * depth + step
                    print(f"    {name:<34}{table:<20}{before:>8,.0f}{peak:>8,.0f}{after:>8,.0f}")


if __name__ == "__main__":
    main()
