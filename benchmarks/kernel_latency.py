"""Wall time per notebook of a batch of trivial notebooks in kept kernels: the report
kernels' kernel client against jupyter_client's own, in the same run.

    python benchmarks/kernel_latency.py              # 4 notebooks x 5 runs per client
    python benchmarks/kernel_latency.py --runs 10

Each notebook gets a new kernel client (nbclient makes one per notebook, also for a kept
kernel). jupyter_client's ``wait_for_ready`` ends by reading IOPub until no message came
for 0.2 s; the report kernels' client (``analysis.reports._prompt_client_class``) waits
``IOPUB_SETTLE_SECONDS`` instead. The notebooks do nearly nothing, so the time per
notebook is the fixed cost of running one: the kernel's reset, the messages, papermill
and nbconvert. Prints seconds per notebook (median of the runs) and the CPU-seconds of
this process and its kernels per notebook, for each client, and the ratio of the walls.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

NOTEBOOKS = ("01_first", "02_second", "03_third", "04_fourth")
CODE = "x = sum(range(1000))\nprint(x)"


def _notebooks(folder: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    for name in NOTEBOOKS:
        parameters = new_code_cell("data_dir = None\nn_patients = 20\nseed = 0\nmin_cell = 11")
        parameters.metadata["tags"] = ["parameters"]
        nb = new_notebook(
            cells=[parameters, new_code_cell("tables_dir = None"), new_code_cell(CODE)]
        )
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
        nbformat.write(nb, folder / f"{name}.ipynb")


def _tree_cpu() -> float:
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def measure(runs: int, stock: bool) -> tuple[float, float]:
    """Median wall seconds and mean CPU-seconds per notebook over ``runs`` batches."""
    import analysis.reports as reports

    original = reports._prompt_client_class
    if stock:
        from jupyter_client.asynchronous import AsyncKernelClient

        reports._prompt_client_class = lambda: AsyncKernelClient
    walls, cpu = [], 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp, reports.reusing_kernels():
            folder = Path(tmp) / "nb"
            folder.mkdir()
            _notebooks(folder)
            reports.NOTEBOOKS_DIR = folder
            quiet = contextlib.redirect_stdout(io.StringIO())
            with quiet, contextlib.redirect_stderr(io.StringIO()):
                reports.run_reports(None, Path(tmp) / "warm", n_patients=20, jobs=1)
                before = _tree_cpu()
                for k in range(runs):
                    start = time.perf_counter()
                    reports.run_reports(None, Path(tmp) / f"run{k}", n_patients=20, jobs=1)
                    walls.append((time.perf_counter() - start) / len(NOTEBOOKS))
                cpu = (_tree_cpu() - before) / (runs * len(NOTEBOOKS))
    finally:
        reports._prompt_client_class = original
    return statistics.median(walls), cpu


def main(runs: int) -> None:
    stock = measure(runs, stock=True)
    prompt = measure(runs, stock=False)
    for label, (wall, cpu) in (("jupyter_client", stock), ("report kernels", prompt)):
        print(f"{label:<16} {wall:.3f} s a notebook (median of {runs}), {cpu:.3f} CPU-s")
    print(f"ratio of the walls (report kernels / jupyter_client): {prompt[0] / stock[0]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args().runs)
