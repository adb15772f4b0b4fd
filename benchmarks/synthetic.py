"""Time `synthetic_cohort` for a large cohort and print rows per second.

    python benchmarks/synthetic.py                # 100,000 patients, seed 0
    python benchmarks/synthetic.py 20000 250000   # other sizes

Goal (foundation issue, item 6): 100,000 patients in under a minute on the 2-core CI
machine (the generator is vectorised with numpy; there is no per-patient Python loop).
Prints, per size, the best wall-clock time of a few runs, the rows of each table and the
total rows written per second.
"""

from __future__ import annotations

import sys
import time

from analysis.synthetic import synthetic_cohort

TABLES = ("patients", "assessments", "sessions", "adverse_events")
REPEATS = 2


def main(sizes: list[int]) -> None:
    for n in sizes:
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            cohort = synthetic_cohort(n_patients=n, seed=0)
            best = min(best, time.perf_counter() - start)
        rows = {table: len(getattr(cohort, table)) for table in TABLES}
        total = sum(rows.values())
        detail = ", ".join(f"{table} {count:,}" for table, count in rows.items())
        print(
            f"n_patients={n:,}: {best:.2f} s (best of {REPEATS}); {total:,} rows "
            f"({detail}); {total / best:,.0f} rows/s"
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100_000])
