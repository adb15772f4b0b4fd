"""Time the report batch (`run_reports`) on synthetic cohorts and print seconds per report.

    python benchmarks/reports.py                 # 500 and 20,000 patients
    python benchmarks/reports.py 500             # other sizes

Goal (issue 12, item 5): every report for 500 patients in under 60 s on the 2-core CI
machine. Each size renders all reports once into a temporary folder; the script prints
the wall-clock time of the whole batch and of each report (from the per-report progress
lines of `run_reports`) and the peak resident memory of this process.
"""

from __future__ import annotations

import contextlib
import io
import re
import resource
import sys
import tempfile
import time

from analysis.reports import run_reports

GOAL_SECONDS = {500: 60.0}


def main(sizes: list[int]) -> None:
    for n in sizes:
        progress = io.StringIO()
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stderr(progress):
            start = time.perf_counter()
            run_reports(None, out, n_patients=n, seed=0)
            total = time.perf_counter() - start
        per_report = re.findall(
            r"\] (\w+): executing \.\.\..*? done in ([\d.]+) s", progress.getvalue(), re.S
        )
        detail = ", ".join(f"{name} {float(sec):.1f} s" for name, sec in per_report)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        goal = GOAL_SECONDS.get(n)
        verdict = (
            ""
            if goal is None
            else f" (goal < {goal:.0f} s: {'met' if total < goal else 'NOT met'})"
        )
        print(
            f"n_patients={n:,}: all reports {total:.1f} s{verdict}; {detail}; peak RSS {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [500, 20_000])
