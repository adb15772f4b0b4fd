"""Suite-wide settings: headless plotting, property-test profiles, reports rendered once.

Hypothesis profiles (``HYPOTHESIS_PROFILE``):

- ``full`` (``make test``, CI): every property test draws its own count of examples
  (hypothesis' 100, or the ``max_examples`` its ``@settings`` gives), the same examples
  every run under CI (``CI`` set), so a red build can be reproduced;
- ``fast`` (``make test-fast``): at most ``FAST_EXAMPLES`` per property test, including
  those whose ``@settings`` ask for more: a quick check while working.

No profile has a wall-clock deadline: the machine is shared.

Rendering the report notebooks (a kernel per notebook) is the slowest thing the suite
does, so every test that needs rendered reports shares the session fixture
:func:`rendered_reports`, which renders them once per run, also under pytest-xdist.

After each test file the objects still alive are frozen out of the garbage collector's
sight (:func:`pytest_runtest_teardown`): see there for why.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import pickle
import sys
from pathlib import Path

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

matplotlib.use("Agg")

# jsonschema (imported with nbformat by the report tests and papermill) imports the optional
# `rfc3987_syntax` for its "iri" format checker, which builds its lark grammars at import:
# 1.3 CPU-seconds in every pytest process. No schema the suite validates uses that format
# (nbformat validates notebooks without format checks; the data schemas are checked by
# analysis._checks), so the suite's processes skip the import: jsonschema then simply has
# no "iri" checker. Subprocesses (the wheel and import probes, notebook kernels) are untouched.
sys.modules.setdefault("rfc3987_syntax", None)

#: Whether the report stack (papermill) is installed: without it no report test runs.
_REPORT_STACK = importlib.util.find_spec("papermill") is not None

FAST_EXAMPLES = 10

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("full", derandomize=bool(os.environ.get("CI")), **_COMMON)
settings.register_profile("fast", max_examples=FAST_EXAMPLES, **_COMMON)
# The former names: "default" (local) and "ci" (derandomized) both draw the full count.
settings.register_profile("default", **_COMMON)
settings.register_profile("ci", derandomize=True, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "full")
settings.load_profile(PROFILE)


def _cap_examples(item: pytest.Item, cap: int) -> None:
    """Lower a property test's own ``@settings(max_examples=...)`` to ``cap``.

    A profile only sets what a test leaves unset; hypothesis keeps a test's settings on
    the wrapped function, so the fast profile replaces them there.
    """
    test = getattr(item, "obj", None)
    own = getattr(test, "_hypothesis_internal_use_settings", None)
    if own is not None and own.max_examples > cap:
        test._hypothesis_internal_use_settings = settings(own, max_examples=cap)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PROFILE == "fast":
        for item in items:
            _cap_examples(item, FAST_EXAMPLES)
    _schedule(items)


def _schedule(items: list[pytest.Item]) -> None:
    """Order and group the tests so that two pytest-xdist workers stay busy to the end.

    - Files holding a ``slow`` test (the notebook renders, the wheel build) run first, each
      file whole (its module fixtures are set up once): long tests started last would leave
      one worker running them alone while the other has finished.
    - The tests of the rendered reports share one ``xdist_group`` (``make test`` runs with
      ``--dist loadgroup``): one worker renders them and runs them all, instead of the other
      worker waiting on the render's lock. So do the tests that read the engine
      validations of ``tests/test_engine_validation.py`` (``engine_results``, a module
      cache): on two workers each validation would run twice.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order kept
    for item in items:
        for shared in _SHARED_RUNS.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(shared))
        _group_node_id(item)


#: Fixtures whose one run (or cache of runs) several tests read: their tests share an
#: ``xdist_group`` named after the fixture.
_SHARED_RUNS = frozenset({"rendered_reports", "engine_results"})


def _group_node_id(item: pytest.Item) -> None:
    """Give a grouped test the node id ``<id>@<group>`` that ``--dist loadgroup`` reads.

    pytest-xdist's worker appends the group to ``item._nodeid``, which pytest 9.2 no
    longer reads (the id became the structured ``item._id``; pytest-xdist issue #1386):
    the groups were silently ignored and the tests of one render ran on both workers.
    Here the structured id gets the suffix (a no-op on pytest versions without ``_id``,
    where pytest-xdist's own suffix works).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER") or not item.config.getvalue("loadgroup"):
        return
    groups = sorted(
        {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
    )
    node_id = getattr(item, "_id", None)
    if not groups or node_id is None or "@" in str(node_id).rpartition("]")[2]:
        return
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{node_id}@{'_'.join(groups)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After the last test of a file (its fixtures torn down): collect, then freeze.

    A pytest process holds millions of long-lived objects (pandas, Polars, DuckDB,
    matplotlib, hypothesis and the tests' session caches), and CPython's full collections,
    which start by themselves as objects outlive the younger generations, walk all of them:
    measured with ``gc.callbacks`` on 2026-12-02, 84 s of a ``make test`` run's 501
    CPU-seconds went to about 165 full collections in the two workers. ``gc.freeze()``
    moves what is alive into a generation the collector never walks, so later collections
    only look at what was made since (13 s in all; the run took 408 CPU-seconds and 215 s
    instead of 501 and 260 s; another pair of runs alike). A frozen object is still
    freed when its last reference goes; only a reference cycle that becomes garbage after
    it was frozen stays (the ``gc.collect()`` first frees the file's own garbage; the
    workers' peak memory was 0.71-0.72 GB, 0.71-0.74 GB without). The report kernels do
    the same after each reset (``analysis/_kernel.py``).
    """
    result = yield
    if nextitem is None or nextitem.path != item.path:
        gc.collect()
        gc.freeze()
    return result


@pytest.fixture(scope="session", autouse=True)
def _report_kernels():
    """One set of report kernels for the whole run (per pytest-xdist worker).

    ``run_reports`` reuses its kernels from notebook to notebook (each notebook starts
    from a reset kernel: ``analysis._kernel``); here the many runs of the suite (about 30
    awkward cohorts, stand-in batches and property examples) also share them, instead of
    starting and importing the analysis stack in new kernels for every run. A failing
    notebook still gets its kernel replaced, so failures stay isolated.
    """
    if not _REPORT_STACK:
        yield
        return
    from analysis.reports import reusing_kernels

    with reusing_kernels():
        yield


@pytest.fixture(scope="session")
def rendered_reports(tmp_path_factory):
    """Every report notebook rendered once for the run: ``(out_dir, manifest)``.

    The demo cohort at 60 synthetic patients, the reports' other defaults (min_cell 11).
    Under pytest-xdist the workers share one folder: the first to need it renders under a
    file lock, the others wait for it and read its ``manifest.json``. Tests read the
    folder; none may write into it. The manifest is the object ``run_reports`` returned
    (pickled for the other workers), so tests can compare it with ``manifest.json``.
    """
    from analysis.reports import run_reports

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") and fcntl is not None:
        root = root.parent  # the run's folder, above each worker's own
    out = root / "rendered_reports"
    returned = root / "rendered_reports.pickle"  # what run_reports returned, not the JSON
    with _exclusive(root / "rendered_reports.lock"):
        if not returned.is_file():
            manifest = run_reports(None, out, n_patients=60, progress=False)
            returned.write_bytes(pickle.dumps(manifest))
    return out, pickle.loads(returned.read_bytes())


@contextlib.contextmanager
def _exclusive(path: Path):
    """Hold an exclusive lock on ``path`` across processes (POSIX; a no-op elsewhere)."""
    if fcntl is None:  # no shared folder then: each worker renders its own copy
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for every `spark` test (`make test-spark`, no xdist)."""
    from pyspark.sql import SparkSession

    from analysis._engine_validation import SPARK_SETTINGS

    session = (
        SparkSession.builder.master("local[1]")
        .appName("anxiety-outcomes-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # the settings of the library's own session (no call-site recording: seven JVM
        # round trips fewer per column function)
        .config(map=SPARK_SETTINGS)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def counted_validations(monkeypatch):
    """Every validation in this process, counted (``_validate_tables`` is what every check
    goes through): a list that grows by one per validation."""
    import analysis.schema as schema

    calls: list[int] = []
    real = schema._validate_tables

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(schema, "_validate_tables", counted)
    return calls
