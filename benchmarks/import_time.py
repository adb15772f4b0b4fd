"""Time ``import analysis`` and the first ``load_cohort`` of a demo folder, cold.

Targets (issue 11, this 2-core machine): ``import analysis`` under 1 s and the first
``load_cohort`` of a demo folder under 2 s. They are measured here, not asserted in the
test suite (a shared machine makes wall-clock tests flaky); ``tests/test_packaging.py``
checks the cause instead: the report and plotting stacks are not imported by ``import
analysis`` or by loading data.

Each measurement runs in a fresh interpreter, ``REPEAT`` times, and the median is shown:

- ``import analysis``: wall time of ``python -c "import analysis"`` minus that of
  ``python -c "pass"`` (the interpreter's own start-up), plus the modules it loaded;
- ``first load_cohort``: the time of ``load_cohort(folder)`` in a fresh interpreter
  after ``import analysis``, on a folder written by ``synthetic_cohort`` (500 patients);
- the ten slowest imports of the import plus the load (``python -X importtime``,
  cumulative microseconds), to see what to make lazy next.

Usage::

    python benchmarks/import_time.py            # 5 repeats
    python benchmarks/import_time.py --repeat 9
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = (
    "papermill",
    "nbconvert",
    "nbclient",
    "ipykernel",
    "jupyterlab",
    "matplotlib",
    "seaborn",
    "frictionless",
    "jsonschema",
)


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def _wall(code: str) -> float:
    start = time.perf_counter()
    _run(code)
    return time.perf_counter() - start


def _importtime(code: str) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "demo"
        _run(
            "from analysis import synthetic_cohort, write_cohort; "
            f"write_cohort(synthetic_cohort(500, seed=0), {str(folder)!r})"
        )
        start_up = statistics.median(_wall("pass") for _ in range(args.repeat))
        imports = [_wall("import analysis") - start_up for _ in range(args.repeat)]
        load_code = (
            "import time, analysis; t = time.perf_counter(); "
            f"analysis.load_cohort({str(folder)!r}); print(time.perf_counter() - t)"
        )
        loads = [float(_run(load_code)) for _ in range(args.repeat)]
        loaded = _run(
            "import sys, analysis; "
            f"analysis.load_cohort({str(folder)!r}); "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
        ).split()
        after_import = _run(
            f"import sys, analysis; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
        ).split()
        slowest = sorted(
            _importtime(f"import analysis; analysis.load_cohort({str(folder)!r})"),
            reverse=True,
        )[:10]

    print(f"python {sys.version.split()[0]}, median of {args.repeat} fresh interpreters")
    print(f"import analysis      {statistics.median(imports):6.2f} s   (target < 1 s)")
    print(f"first load_cohort    {statistics.median(loads):6.2f} s   (target < 2 s)")
    print(f"heavy modules after import analysis: {', '.join(after_import) or 'none'}")
    print(f"heavy modules after load_cohort:     {', '.join(loaded) or 'none'}")
    print("slowest imports (cumulative, import analysis + load_cohort):")
    for micros, name in slowest:
        print(f"  {micros / 1e6:6.2f} s  {name.strip()}")


if __name__ == "__main__":
    main()
