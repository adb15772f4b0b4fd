"""Time `fit_mmrm` on synthetic trials of growing size.

Fits ``change ~ baseline + group * visit`` with an unstructured covariance (REML) to
synthetic data of N patients x 6 visits (two arms, a correlated residual with a variance
per visit, about 4% dropout per visit, monotone) and prints the time per size and how the
time per patient grows between sizes.

    python benchmarks/mmrm.py                 # 500, 2000 and 10000 patients
    python benchmarks/mmrm.py 2000 20000      # other sizes

Goal (issue 5): 2,000 patients x 6 visits in under 2 s on the 2-core CI machine, and work
growing no faster than linearly in patients. For comparison on that machine, R
``nlme::gls`` with ``corSymm + varIdent`` takes 12.6 s for 2,000 patients.

The matrices are small, so a multi-threaded BLAS mostly adds contention; since issue 13
`fit_mmrm` limits BLAS to one thread itself (threadpoolctl), so the default settings give
the single-thread speed. Measured on the shared 2-core machine (2,000 x 6, best of 3, three
runs each, under the same load): before, default BLAS 0.97-1.14 s and
`OPENBLAS_NUM_THREADS=1` 0.26-0.31 s; after, default 0.29 s.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from analysis.mmrm import fit_mmrm

N_VISITS = 6
REPEATS = 3


def synthetic_trial(n_patients: int, seed: int = 0) -> pd.DataFrame:
    """Long-format trial data: one row per patient x visit, missing after dropout."""
    rng = np.random.default_rng(seed)
    visits = np.arange(1, N_VISITS + 1)
    sd = np.linspace(4.0, 6.5, N_VISITS)
    corr = 0.7 ** np.abs(np.subtract.outer(visits, visits)) * 0.8 + 0.2 * np.eye(N_VISITS)
    cov = np.outer(sd, sd) * corr
    group = rng.integers(0, 2, n_patients)
    baseline = rng.normal(15.0, 3.0, n_patients)
    mean = (
        -0.8 * visits[None, :]
        - 0.6 * visits[None, :] * group[:, None]
        - 0.3 * (baseline[:, None] - 15.0)
    )
    change = mean + rng.multivariate_normal(np.zeros(N_VISITS), cov, n_patients)
    dropout = rng.geometric(0.04, n_patients)  # first visit missed
    change[visits[None, :] >= dropout[:, None]] = np.nan
    return pd.DataFrame(
        {
            "patient": np.repeat(np.arange(n_patients), N_VISITS),
            "visit": np.tile([f"visit{v}" for v in visits], n_patients),
            "group": np.repeat(np.where(group == 1, "ketamine", "control"), N_VISITS),
            "baseline": np.repeat(baseline, N_VISITS),
            "change": change.ravel(),
        }
    )


def time_fit(data: pd.DataFrame) -> float:
    """Best of REPEATS wall-clock times of one complete fit (including Satterthwaite)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fit_mmrm(data, "change ~ baseline + group * visit", subject="patient", visit="visit")
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [500, 2000, 10000]
    print(f"fit_mmrm, change ~ baseline + group * visit, us covariance, {N_VISITS} visits")
    print(f"{'patients':>9} {'rows used':>10} {'seconds':>9} {'ms/patient':>11}")
    previous = None
    for n in sizes:
        data = synthetic_trial(n)
        seconds = time_fit(data)
        per_patient = 1000 * seconds / n
        line = (
            f"{n:>9} {int(data['change'].notna().sum()):>10} {seconds:>9.3f} {per_patient:>11.4f}"
        )
        if previous is not None:
            line += f"   time per patient x{per_patient / previous:.2f} vs previous size"
        print(line)
        previous = per_patient


if __name__ == "__main__":
    main(sys.argv[1:])
