"""Inside a report kernel: start each notebook from the state of a fresh kernel.

:func:`analysis.reports.run_reports` executes several notebooks one after the other in
one kernel (starting a kernel and importing the analysis stack costs about 3 CPU-seconds,
more than most reports take to compute). Before each notebook the runner calls
:func:`reset` in the kernel; this module imports only the standard library, so a kernel
pays nothing for it.

What a notebook may have changed, and what :func:`reset` puts back:

- the user namespace, ``In``/``Out`` and the execution counter (``InteractiveShell.reset``,
  so the executed notebook numbers its cells from 1 as in a fresh kernel);
- open figures and matplotlib's ``rcParams``; pandas' options;
- the warning filters, and which warnings were already shown (a warning "shown once"
  shows again in the next notebook);
- ``os.environ``, ``sys.path`` and the working directory (each notebook gets its own empty
  folder).

Imported modules stay imported (that is the saving). A notebook that fails, or a kernel
that died, is not reused: the runner starts a new kernel for the next notebook.

After the reset, what is still alive (the imported modules and their state, several hundred
thousand objects once the analysis stack is imported) is moved out of the garbage
collector's sight (``gc.freeze``): without that, every full collection (two in each reset,
IPython's and this module's, and those Python starts by itself while a report computes)
walked all of it again, about 0.17 CPU-seconds each on the session-7 machine. A frozen
object is still freed when its last reference goes; only a reference cycle that becomes
garbage after it was frozen is never collected (module state is rarely dropped).
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
from typing import Any

_baseline: dict | None = None


def reset(work_dir: str) -> None:
    """Bring this kernel back to the state it had before its first notebook.

    The first call records that state (after importing matplotlib and pandas and
    selecting the inline backend, as every report does first); later calls restore it.
    Then the working directory becomes ``work_dir``.
    """
    global _baseline
    from IPython import get_ipython

    shell = get_ipython()
    if _baseline is None:
        import matplotlib
        import matplotlib.pyplot  # noqa: F401
        import pandas  # noqa: F401

        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
        # rcParams as a dict of Any to mypy: its stubs type the keys as a Literal of every
        # rc name, and inferring this comprehension over them took mypy half a second
        params: dict[Any, Any] = matplotlib.rcParams
        rc = {key: value for key, value in params.items() if key != "backend"}
        _baseline = {
            "filters": list(warnings.filters),
            "environ": dict(os.environ),
            "path": list(sys.path),
            "rc": rc,
        }
    else:
        import matplotlib
        import matplotlib.pyplot as plt
        import pandas as pd

        plt.close("all")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matplotlib.rcParams.update(_baseline["rc"])
            pd.reset_option("all")
        warnings.resetwarnings()  # also forgets which warnings were already shown
        warnings.filters[:] = _baseline["filters"]  # type: ignore[index]  # typeshed: a Sequence; it is a list
        getattr(warnings, "onceregistry", {}).clear()
        os.environ.clear()
        os.environ.update(_baseline["environ"])
        sys.path[:] = _baseline["path"]
    if shell is not None:  # the namespace, In/Out, and cells numbered from 1 again
        shell.reset(new_session=True)
    gc.collect()
    gc.freeze()
    os.chdir(work_dir)
