"""The time of ``make test``'s pytest run, beside a reference loop timed in the same run.

    python benchmarks/suite_time.py               # the suite as make test runs it
    python benchmarks/suite_time.py --with-mypy   # and mypy beside it, from a cold cache
    python benchmarks/suite_time.py -- tests/test_plots.py   # a part of the suite

This machine's speed drifts: the same suite took 175 s and 230 s of wall time within two
hours, while a pure-Python loop (``sum(i * i for i in range(10**7))``) took 0.56 s and
0.87 s. A wall time alone cannot say whether a change made the suite faster; its ratio to
the loop, timed just before and just after, can. Prints the wall time, the CPU-seconds of
the run (pytest, its workers, their kernels and subprocesses; mypy when asked), the loop
(best of three, before and after) and the ratios of the wall and the CPU time to the
loop's mean. ``make test`` runs ruff before pytest (about a second); it is left out.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = ["-m", "pytest", "-n", "2", "--dist", "loadgroup", "-m", "not spark", "-q"]


def reference_loop(repeat: int = 3) -> float:
    """Seconds of ``sum(i * i for i in range(10**7))``, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        sum(i * i for i in range(10**7))
        best = min(best, time.perf_counter() - start)
    return best


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(paths: list[str], with_mypy: bool) -> dict[str, float]:
    """Time the suite (the tests under ``paths``, or all) with the loop on each side."""
    before = reference_loop()
    env = {**os.environ, "HYPOTHESIS_PROFILE": "full", "MPLBACKEND": "Agg"}
    cpu, start = _children_cpu(), time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        typing = None
        if with_mypy:  # as make test runs it: niced, beside pytest, from an empty cache
            mypy = [sys.executable, "-m", "mypy", "--cache-dir", cache]
            typing = subprocess.Popen(
                ["nice", *mypy], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        tests = subprocess.run(
            [sys.executable, *PYTEST, *paths], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        typed = typing.wait() if typing is not None else 0
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    after = reference_loop()
    if tests.returncode or typed:
        raise SystemExit(f"the suite failed (pytest {tests.returncode}, mypy {typed})")
    return {"wall": wall, "cpu": cpu, "before": before, "after": after}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-mypy", action="store_true", help="run mypy beside pytest")
    parser.add_argument("paths", nargs="*", help="test files or folders (default: all)")
    args = parser.parse_args(argv)
    r = run(args.paths, args.with_mypy)
    loop = (r["before"] + r["after"]) / 2
    what = "pytest and mypy" if args.with_mypy else "pytest"
    print(f"{what}: {r['wall']:.1f} s wall, {r['cpu']:.1f} CPU-seconds")
    print(f"reference loop: {r['before']:.3f} s before, {r['after']:.3f} s after")
    print(f"wall / loop {r['wall'] / loop:.0f}x, CPU / loop {r['cpu'] / loop:.0f}x")


if __name__ == "__main__":
    main()
