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
:func:`rendered_reports`; under pytest-xdist those tests are sent to one worker so the
reports are rendered once per run, not once per worker.
"""

from __future__ import annotations

import os

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

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


def pytest_configure(config: pytest.Config) -> None:
    # xdist's default "load" distribution would render the reports on every worker;
    # "loadgroup" is "load" plus: tests of one xdist_group run on the same worker.
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "rendered_reports" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("rendered_reports"))
        if PROFILE == "fast":
            _cap_examples(item, FAST_EXAMPLES)


@pytest.fixture(scope="session")
def rendered_reports(tmp_path_factory):
    """Every report notebook rendered once for the run: ``(out_dir, manifest)``.

    The demo cohort at 60 synthetic patients, the reports' other defaults (min_cell 11).
    Tests read the output folder; none may write into it.
    """
    from analysis.reports import run_reports

    out = tmp_path_factory.mktemp("rendered_reports")
    manifest = run_reports(None, out, n_patients=60, progress=False)
    return out, manifest
