"""Time the report batch (`run_reports`) on synthetic cohorts and print seconds per report.

    python benchmarks/reports.py                 # 500 and 20,000 patients, default jobs
    python benchmarks/reports.py 500 --jobs 1    # other sizes, serial

Goal (issue 12, item 5): every report for 500 patients in under 60 s on the 2-core CI
machine. Each size renders all reports once into a temporary folder; the script prints
the wall-clock time of the whole batch, the time spent outside the notebooks (reading
and validating the cohort once, its snapshot, index, audit, install), each report's own
time (from the per-report progress lines of `run_reports`) and the peak resident memory
of this process (the kernels are separate processes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import resource
import tempfile
import time

from analysis.reports import default_jobs, run_reports

GOAL_SECONDS = {500: 60.0}


def main(sizes: list[int], jobs: int) -> None:
    for n in sizes:
        progress = io.StringIO()
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stderr(progress):
            start = time.perf_counter()
            run_reports(None, out, n_patients=n, seed=0, jobs=jobs)
            total = time.perf_counter() - start
        per_report = re.findall(
            r"\] (\w+): done in ([\d.]+) s \(elapsed (\d+) s\)", progress.getvalue()
        )
        detail = ", ".join(f"{name} {float(sec):.1f} s" for name, sec, _ in per_report)
        rendering = max((float(elapsed) for *_, elapsed in per_report), default=0.0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        goal = GOAL_SECONDS.get(n)
        verdict = (
            ""
            if goal is None
            else f" (goal < {goal:.0f} s: {'met' if total < goal else 'NOT met'})"
        )
        print(
            f"n_patients={n:,}, jobs={jobs}: all {len(per_report)} reports {total:.1f} s"
            f"{verdict}; outside the notebooks about {total - rendering:.0f} s; "
            f"per report: {detail}; peak RSS of the batch process {peak:.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[500, 20_000])
    parser.add_argument("--jobs", type=int, default=default_jobs())
    arguments = parser.parse_args()
    main(arguments.sizes, arguments.jobs)
