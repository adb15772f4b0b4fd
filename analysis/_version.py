"""The package version, read once from the installed distribution's metadata.

``pyproject.toml`` is the only place the version is written; :mod:`analysis`,
:mod:`analysis.cli` and :mod:`analysis.reports` (the ``package_version`` of
``manifest.json``) all take it from here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: Name of the distribution on PyPI (the import name is ``analysis``).
DISTRIBUTION = "anxiety-outcomes"

try:
    __version__: str = version(DISTRIBUTION)
except PackageNotFoundError:  # a bare source tree on sys.path, never pip-installed
    __version__ = "0+unknown"
