"""What `analysis._kernel.reset` leaves for the garbage collector (in a process of its own:
it freezes the collector's objects, changes the working folder and the warning filters)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc, sys, weakref
import analysis._kernel as kernel
import matplotlib.pyplot, pandas  # the stack a report imports stays imported

kernel.reset(sys.argv[1])  # the first notebook's reset records the baseline

class Node:
    pass

notebook = Node(); notebook.me = notebook  # a reference cycle a notebook leaves behind
gone = weakref.ref(notebook)
del notebook
kernel.reset(sys.argv[1])  # the next notebook's reset
assert gone() is None, "a cycle the last notebook left is collected, not frozen"
frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())
assert frozen > 10 * tracked, (frozen, tracked)
print(frozen, tracked)
"""


def test_a_reset_collects_the_last_notebook_and_freezes_what_stays(tmp_path):
    """After a reset a full collection walks only what the next notebook makes: what
    stayed alive (the imported modules) is frozen, and the cycles the last notebook left
    were collected first."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
