"""Batch rendering of the report notebooks.

Design contract:

- A report is a notebook ``NN_name.ipynb`` shipped inside the package
  (``analysis/notebooks``, read through :mod:`importlib.resources`; in the repository it
  is a link to the top-level ``notebooks/`` folder, the one copy that is edited). Its
  *name* is the file stem without the number prefix (``data_quality``); the stem
  (``01_data_quality``) is accepted wherever a name is.
- Every report notebook has a cell tagged ``parameters`` with ``data_dir=None``,
  ``n_patients=500``, ``seed=0``, ``min_cell=11``, ``tables_dir=None``,
  ``snapshot=None`` and ``fingerprint=None``; it loads its data with
  :func:`load_report_cohort` and writes each table it shows with :func:`save_table`.
- :func:`run_reports` reads and validates the cohort once, hands it to the notebooks as
  a snapshot (:func:`write_snapshot`; each notebook checks its fingerprint), executes
  them with papermill on the current interpreter (``jobs`` at a time, each in its own
  kernel; per site too with ``by_site``), renders them to HTML without code cells (page
  title: the report's heading), and
  writes ``index.html`` (the reports with one-line summaries, the provenance and the
  definitions) and ``manifest.json``. Only the manifest's ``created`` timestamp and
  the report pages' provenance headers depend on the date.
- A run never harms the output folder (see "Output folder safety" below): it renders
  into a staging folder beside it and installs only a run where every report succeeded;
  it replaces or deletes only files an earlier run's manifest lists; a failed run is
  kept as ``<out>.failed`` with the reasons. A report that fails does not stop the
  others; a section a cohort cannot support says why (:mod:`analysis.report_sections`).
"""

from __future__ import annotations

import contextlib
import html
import importlib.resources
import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis._utils import needs_extra
from analysis._version import DISTRIBUTION, __version__
from analysis.cohort import SnapshotCohort, data_fingerprint  # homes: the data model
from analysis.disclosure import check_min_cell, shown_count
from analysis.schema import TABLES

__all__ = [
    "FAILED_MARKER",
    "FRESH_KERNELS",
    "KERNEL_THREAD_VARIABLES",
    "NOTEBOOKS_DIR",
    "REPORT_PARAMETERS",
    "SNAPSHOT_FILE",
    "SNAPSHOT_PARAMETERS",
    "OutputFolderError",
    "Report",
    "ReportsFailedError",
    "SitePlan",
    "SnapshotCohort",
    "SnapshotError",
    "check_output_folder",
    "check_report_names",
    "configure_display",
    "data_fingerprint",
    "default_jobs",
    "definitions",
    "discover_reports",
    "export_pdf",
    "load_report_cohort",
    "load_snapshot",
    "package_folder_of",
    "plan_sites",
    "reusing_kernels",
    "run_reports",
    "save_table",
    "site_cohort",
    "write_snapshot",
]

#: Where the report notebooks live: package data ``analysis/notebooks`` (in the repository a
#: link to the top-level ``notebooks/`` folder), so a wheel install finds them too.
NOTEBOOKS_DIR = Path(str(importlib.resources.files("analysis") / "notebooks")).resolve()

#: Parameters every report notebook accepts, besides ``data_dir`` and ``tables_dir``,
#: with their defaults (500 synthetic patients, seed 0; CMS small-cell rule).
REPORT_PARAMETERS: Mapping[str, int] = {"n_patients": 500, "seed": 0, "min_cell": 11}

_NOTEBOOK_NAME = re.compile(r"^(\d+)_([a-z0-9_]+)\.ipynb$")
_TABLE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class Report:
    """A report notebook: ``name`` (``data_quality``), ``stem`` (``01_data_quality``), path."""

    name: str
    stem: str
    path: Path


def discover_reports(notebooks_dir: str | Path | None = None) -> list[Report]:
    """The report notebooks ``NN_name.ipynb`` of a folder, in number order.

    Parameters
    ----------
    notebooks_dir : str or Path, optional
        Folder to search; default :data:`NOTEBOOKS_DIR`.

    Returns
    -------
    list of Report

    Examples
    --------
    >>> [r.name for r in discover_reports()][:1]
    ['data_quality']
    """
    folder = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No notebooks folder at {folder}. The package ships its report notebooks as "
            "package data: reinstall it (`pip install anxiety-outcomes[reports]`, or "
            "`pip install -e .` from the repository)."
        )
    found = []
    for path in folder.glob("*.ipynb"):
        match = _NOTEBOOK_NAME.match(path.name)
        if match:
            found.append((int(match[1]), Report(match[2], path.stem, path)))
    return [report for _, report in sorted(found, key=lambda item: (item[0], item[1].name))]


def check_report_names(names: Iterable[str] | None) -> list[Report]:
    """The reports ``names`` select (all when None); ValueError naming the unknown ones.

    Examples
    --------
    >>> [r.stem for r in check_report_names(["data_quality"])]
    ['01_data_quality']
    """
    return _select(discover_reports(), names)


def _select(available: list[Report], names: Iterable[str] | None) -> list[Report]:
    if names is None:
        return available
    if isinstance(names, str):
        names = [names]
    by_key = {key: r for r in available for key in (r.name, r.stem)}
    unknown = [n for n in names if n not in by_key]
    if unknown:
        raise ValueError(
            f"Unknown report(s) {unknown}; the reports are {[r.name for r in available]} "
            f"(files {[r.stem for r in available]})."
        )
    wanted = {by_key[n].stem for n in names}
    return [r for r in available if r.stem in wanted]


#: pandas display options of the reports: whole tables (a report must not hide rows
#: behind "..."), three significant decimals.
REPORT_DISPLAY: Mapping[str, int] = {
    "display.max_rows": 1000,
    "display.max_columns": 100,
    "display.width": 250,
    "display.precision": 3,
}


def configure_display() -> None:
    """Show report tables whole: no rows or columns elided, three decimals.

    Called once at the top of every report notebook; the options are in
    :data:`REPORT_DISPLAY`.

    Examples
    --------
    >>> import pandas as pd
    >>> before = {option: pd.get_option(option) for option in REPORT_DISPLAY}
    >>> configure_display()
    >>> pd.get_option("display.max_rows"), pd.get_option("display.precision")
    (1000, 3)
    >>> for option, value in before.items():  # leave the session as it was
    ...     pd.set_option(option, value)
    """
    for option, value in REPORT_DISPLAY.items():
        pd.set_option(option, value)


def load_report_cohort(
    data_dir: str | Path | None = None,
    n_patients: int = 500,
    seed: int = 0,
    *,
    snapshot: str | Path | None = None,
    fingerprint: str | None = None,
):
    """The cohort a report works on: the batch's snapshot, a data folder, or the demo cohort.

    Parameters
    ----------
    data_dir : str or Path, optional
        Folder read with :func:`analysis.schema.load_cohort` (validated and checked for
        identifiers). ``None`` means ``synthetic_cohort(n_patients, seed)``.
    n_patients, seed : int
        Size and seed of the synthetic cohort (ignored when ``data_dir`` is given).
    snapshot : str or Path, optional
        A cohort snapshot written by :func:`write_snapshot` (:func:`run_reports` passes
        one to every notebook of a batch, so that the cohort is read and validated once
        per run). When given, ``data_dir``, ``n_patients`` and ``seed`` are not read: the
        snapshot is loaded with :func:`load_snapshot`, without validating it again.
    fingerprint : str, optional
        The :func:`data_fingerprint` the data must have; a cohort whose fingerprint
        differs is refused (:class:`SnapshotError`). A notebook run by hand can set it to
        check that it sees the data of an earlier batch (the fingerprint in its
        ``manifest.json``).

    Returns
    -------
    Cohort
        A :class:`SnapshotCohort` when loaded from a snapshot.

    Raises
    ------
    SnapshotError
        The snapshot is missing or unreadable, or the data do not have ``fingerprint``.

    Examples
    --------
    >>> cohort = load_report_cohort(n_patients=30, seed=2)
    >>> len(cohort.patients)
    30
    >>> load_report_cohort(n_patients=30, seed=2, fingerprint="0" * 64)
    Traceback (most recent call last):
    ...
    analysis.reports.SnapshotError: The data do not have the expected fingerprint...
    """
    if snapshot is not None:
        return load_snapshot(snapshot, fingerprint)
    if data_dir is None:
        from analysis.synthetic import synthetic_cohort

        cohort = synthetic_cohort(n_patients=n_patients, seed=seed)
    else:
        from analysis.schema import load_cohort

        cohort = load_cohort(data_dir)
    if fingerprint is not None:
        found = data_fingerprint(cohort)
        if found != fingerprint:
            raise SnapshotError(
                f"The data do not have the expected fingerprint: expected "
                f"{str(fingerprint)[:16]}..., these data have {found[:16]}... The data changed "
                "since the fingerprint was taken (or another folder, size or seed was given); "
                "set `fingerprint = None` to report on these data as they are."
            )
    return cohort


# ---------------------------------------------------------------------------------------
# Cohort snapshots: one validation per batch
#
# run_reports reads and validates the cohort once, writes it as Parquet files with its
# fingerprint into a private folder (never the output folder: it holds patient-level
# rows), and passes the folder and the fingerprint to every notebook as the parameters
# ``snapshot`` and ``fingerprint``. A notebook loads the snapshot without validating it
# again and refuses it when its content does not have the fingerprint.
# ---------------------------------------------------------------------------------------

#: Parameters :func:`run_reports` sets in every notebook besides :data:`REPORT_PARAMETERS`,
#: ``data_dir`` and ``tables_dir``: the batch's cohort snapshot and its data fingerprint.
#: ``None`` (a notebook run by hand) means: load ``data_dir`` or the demo cohort.
SNAPSHOT_PARAMETERS: Mapping[str, None] = {"snapshot": None, "fingerprint": None}

#: The file describing a snapshot folder (format, fingerprint, tables, source).
SNAPSHOT_FILE = "snapshot.json"
_SNAPSHOT_FORMAT = "anxiety-outcomes cohort snapshot"


class SnapshotError(ValueError):
    """A cohort snapshot is missing or unreadable, or its data do not have its fingerprint."""


def write_snapshot(cohort, folder: str | Path, *, source: str = "", site: str | None = None) -> str:
    """Write a cohort as a snapshot folder (Parquet tables and ``snapshot.json``).

    Parameters
    ----------
    cohort : Cohort
        A validated cohort (its ``findings`` and ``collected`` are kept).
    folder : str or Path
        Created when missing; should be private (the tables are patient-level rows).
    source : str
        What the data are, in words (shown in each report's header).
    site : str, optional
        The site the cohort is restricted to.

    Returns
    -------
    str
        The cohort's :func:`data_fingerprint` (recorded in ``snapshot.json``).

    Examples
    --------
    >>> import tempfile
    >>> from analysis.synthetic import synthetic_cohort
    >>> cohort = synthetic_cohort(20, seed=1)
    >>> folder = tempfile.mkdtemp()
    >>> fingerprint = write_snapshot(cohort, folder, source="demo")
    >>> fingerprint == data_fingerprint(load_snapshot(folder, fingerprint))
    True
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint = data_fingerprint(cohort)
    for name in TABLES:
        table = getattr(cohort, name, None)
        table = pd.DataFrame() if table is None else table
        table.to_parquet(folder / f"{name}.parquet", index=False)
    cohort.findings.to_parquet(folder / "findings.parquet", index=False)
    meta = {
        "format": _SNAPSHOT_FORMAT,
        "version": 1,
        "data_fingerprint": fingerprint,
        "tables": list(TABLES),
        "collected": None if cohort.collected is None else list(cohort.collected),
        "source": source,
        "site": site,
    }
    _write_text(folder / SNAPSHOT_FILE, json.dumps(meta, indent=2) + "\n")
    return fingerprint


def load_snapshot(folder: str | Path, fingerprint: str | None = None) -> SnapshotCohort:
    """Load a snapshot written by :func:`write_snapshot`, checking its fingerprint.

    The tables are not validated again (the batch validated them once); instead their
    :func:`data_fingerprint` is computed and must equal ``fingerprint`` (the one the batch
    passed to the notebook) and the one recorded in ``snapshot.json``: a snapshot changed
    after the batch wrote it is refused.

    Parameters
    ----------
    folder : str or Path
        The snapshot folder.
    fingerprint : str, optional
        The fingerprint the data must have (default: the one recorded in the folder).

    Returns
    -------
    SnapshotCohort

    Raises
    ------
    SnapshotError
        No snapshot there, an unreadable one, or data whose fingerprint differs.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / SNAPSHOT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SnapshotError(
            f"No readable cohort snapshot in {folder} ({SNAPSHOT_FILE}: {error}). run_reports "
            "writes one for its notebooks and removes it after the run; to run a report by "
            "hand, leave `snapshot = None` (the notebook then loads data_dir or the demo "
            "cohort)."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != _SNAPSHOT_FORMAT:
        raise SnapshotError(f"{folder / SNAPSHOT_FILE} is not an anxiety-outcomes cohort snapshot.")
    recorded = meta.get("data_fingerprint")
    expected = fingerprint if fingerprint is not None else recorded
    try:
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
        findings = pd.read_parquet(folder / "findings.parquet")
    except (OSError, ValueError) as error:  # pyarrow's errors are ValueErrors or OSErrors
        raise SnapshotError(f"The cohort snapshot in {folder} cannot be read: {error}") from None
    collected = meta.get("collected")
    cohort = SnapshotCohort(
        patients=tables["patients"],
        assessments=tables["assessments"],
        sessions=tables["sessions"],
        adverse_events=tables["adverse_events"],
        findings=findings,
        collected=None if collected is None else tuple(collected),
        source=str(meta.get("source") or ""),
        site=meta.get("site"),
    )
    found = data_fingerprint(cohort)
    if found != expected or recorded != expected:
        raise SnapshotError(
            f"The cohort snapshot in {folder} does not match the data fingerprint the batch "
            f"validated: expected {str(expected)[:16]}..., the snapshot holds "
            f"{found[:16]}... (recorded {str(recorded)[:16]}...). It was changed after "
            "validation, so no report is computed from it; run the batch again "
            "(`anxiety-outcomes report`)."
        )
    cohort.fingerprint = found
    from analysis.disclosure import set_linked_suppression

    linked = folder / LINKED_SUPPRESSION_FILE
    decision = json.loads(linked.read_text(encoding="utf-8")) if linked.is_file() else []
    if isinstance(decision, dict):  # {"min_cell": ..., "populations": [...]}
        set_linked_suppression(decision.get("populations", []), min_cell=decision.get("min_cell"))
    else:  # a bare list of populations (written before the threshold was recorded)
        set_linked_suppression(decision)
    return cohort


def _jsonable(value):
    """Plain JSON types for dataclasses, mappings, tuples and numpy scalars."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def definitions() -> dict:
    """The clinical definitions the reports use, as plain data (for ``manifest.json``).

    Returns
    -------
    dict
        ``instruments``: per instrument its items count, item range, proration rule,
        severity bands (labels, lower bounds, source) and default outcome criteria;
        ``schedule``: the default visit schedule (name, target day, inclusive window,
        instruments scheduled).

    Examples
    --------
    >>> definitions()["instruments"]["GAD7"]["criteria"]["remission_cutoff"]
    4
    """
    from analysis.instruments import INSTRUMENTS

    instruments = {
        name: {
            "title": inst.title,
            "n_items": inst.n_items,
            "item_max": inst.item_max,
            "total_max": inst.total_max,
            "max_missing_items": inst.max_missing_items,
            "subscales": _jsonable(inst.subscales),
            "severity_bands": {k: _jsonable(v) for k, v in inst.bands.items()},
            "criteria": _jsonable(inst.criteria),
            "source": inst.source,
        }
        for name, inst in INSTRUMENTS.items()
    }
    from analysis.endpoints import make_schedule

    return {"instruments": instruments, "schedule": _jsonable(list(make_schedule(None)))}


def save_table(df: pd.DataFrame, name: str, tables_dir: str | Path | None = None) -> pd.DataFrame:
    """Write a report table as ``<tables_dir>/<name>.csv`` and return it unchanged.

    A notebook ends a table cell with ``save_table(table, "name", tables_dir)``: the
    table is displayed and, in a batch run, also saved. With ``tables_dir=None``
    (interactive use) nothing is written. A text cell starting with ``=``, ``+``, ``-``
    or ``@`` is written with a leading ``'`` so that a spreadsheet shows it instead of
    running it as a formula (numbers such as ``-3`` are unchanged).

    Parameters
    ----------
    df : DataFrame
        The table as shown (after small-cell suppression).
    name : str
        File name without extension: lower-case letters, digits and underscores.
    tables_dir : str or Path, optional
        Folder to write to (created when missing).

    Returns
    -------
    DataFrame
        ``df`` itself; in a ``--by-site`` run whose report sets must hide cells in
        addition (:func:`analysis.disclosure.linked_suppression`, set from the snapshot
        by :func:`load_snapshot`), ``df`` with those cells hidden, as saved.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> t = save_table(pd.DataFrame({"n": [12]}), "counts", folder)
    >>> (pathlib.Path(folder) / "counts.csv").read_text()
    'n\\n12\\n'
    """
    from analysis.report_sections import NotAvailable

    if isinstance(df, NotAvailable):  # a section these data cannot support: nothing to save
        return df
    from analysis.disclosure import apply_linked_suppression

    df = apply_linked_suppression(df, name)  # a --by-site run's cells hidden across sets
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise ValueError(
            f"A table name must be lower-case letters, digits and underscores "
            f"(e.g. 'completeness'), but {name!r} was passed."
        )
    if tables_dir is not None:
        folder = Path(tables_dir)
        folder.mkdir(parents=True, exist_ok=True)
        _neutralise_formulas(df).to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    return df


_FORMULA_START = re.compile(r"^[=+\-@\t\r]")
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells starting with ``= + - @`` (or tab/CR) get a leading ``'``.

    A spreadsheet runs such a cell as a formula (``=HYPERLINK(...)``: CSV injection,
    OWASP); numbers such as ``-3`` are left alone. Column names are treated the same.
    """
    out = df.copy()

    def fix(value):
        if isinstance(value, str) and _FORMULA_START.match(value):
            if not _NUMBER_TEXT.match(value.strip()):
                return "'" + value
        return value

    for c in out.columns:
        dtype = out[c].dtype
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            out[c] = out[c].map(fix, na_action="ignore")
        elif isinstance(dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object).map(fix, na_action="ignore")
    out.columns = [fix(str(c)) if isinstance(c, str) else c for c in out.columns]
    return out


# ---------------------------------------------------------------------------------------
# Output folder safety
#
# A run never writes into ``out_dir`` while it works. It renders everything into a fresh
# staging folder beside ``out_dir`` (same file system, so moving is a rename) and
# *installs* it only when every report succeeded:
#
# 1. checks (before anything runs): ``check_output_folder`` refuses a file, the package's
#    own folders, a cohort folder; the previous manifest says which files a run owns;
# 2. render into ``.<name>.partial-XXXX`` beside ``out_dir``;
# 3. success: every new file is renamed into ``out_dir`` (after checking that none would
#    replace a file an earlier run did not write, and that no folder on the way is a
#    symbolic link), then the files the previous run owned and this one no longer writes
#    are removed (regular files only, never through a link);
# 4. failure (a report failed, the disk is full, Ctrl-C): ``out_dir`` is not touched; the
#    staging folder becomes ``<name>.failed`` with a ``FAILED.txt`` saying why, and its
#    index marks each failed report with the reason.
#
# A check of the finished run (e.g. a disclosure audit of the tables) belongs in
# ``_run_into``, on the staging folder, before ``_install``: a run it rejects is then kept
# as failed and never replaces the previous reports.
# ---------------------------------------------------------------------------------------

#: Marker file of a failed run's folder (``<out>.failed/FAILED.txt``).
FAILED_MARKER = "FAILED.txt"

#: Files or folders whose presence marks a cohort folder (which a report must not overwrite).
_COHORT_FILES = tuple(f"{table}.{ext}" for table in TABLES for ext in ("csv", "parquet"))


class OutputFolderError(ValueError):
    """``out_dir`` cannot receive the reports; the message says why and what to choose."""


class ReportsFailedError(RuntimeError):
    """One or more reports failed; the previous report folder was left untouched.

    Attributes
    ----------
    failures : dict
        Report name -> one-sentence reason.
    failed_dir : Path or None
        The folder holding the failed run (its ``index.html`` marks what failed); None
        when it could not be kept.
    manifest : dict
        The failed run's manifest.
    """

    def __init__(self, message: str, failures: dict, failed_dir: Path | None, manifest: dict):
        super().__init__(message)
        self.failures = failures
        self.failed_dir = failed_dir
        self.manifest = manifest


def _package_folders() -> list[Path]:
    """Folders of the package a report must never be written into."""
    root = Path(__file__).resolve().parent
    return [root, NOTEBOOKS_DIR.resolve(), root.parent / "data_schema"]


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def package_folder_of(path: str | Path) -> str | None:
    """The package folder (``analysis``, ``notebooks``, ``data_schema``) ``path`` is in, or None.

    Examples
    --------
    >>> package_folder_of(NOTEBOOKS_DIR / "executed")
    'notebooks'
    >>> package_folder_of("/tmp/reports") is None
    True
    """
    resolved = Path(path).expanduser().resolve()
    for folder in _package_folders():
        if _is_within(resolved, folder.resolve()):
            return folder.name
    return None


def check_output_folder(out_dir: str | Path, data_dir: str | Path | None = None) -> Path:
    """Check that ``out_dir`` may receive the reports; return it as an absolute path.

    Refused (:class:`OutputFolderError`): a path that is an existing file; a folder inside
    the package (its code, ``notebooks/`` or ``data_schema/``), where executed notebooks
    would replace the sources; the data folder itself or a folder inside it, or any folder
    holding a cohort table (``patients.csv``, ``assessments.parquet``, ...).

    Parameters
    ----------
    out_dir : str or Path
        The output folder (need not exist).
    data_dir : str or Path, optional
        The cohort folder of the run.

    Returns
    -------
    Path
        ``out_dir`` made absolute with symbolic links resolved.

    Raises
    ------
    OutputFolderError

    Examples
    --------
    >>> check_output_folder(NOTEBOOKS_DIR / "out")
    Traceback (most recent call last):
    ...
    analysis.reports.OutputFolderError: --out ... is inside the package folder ...
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputFolderError(
            f"--out {out_dir} is a file, not a folder; choose a folder for the reports."
        )
    inside = package_folder_of(out)
    if inside is not None:
        raise OutputFolderError(
            f"--out {out_dir} is inside the package folder {inside}/; the reports "
            "would replace its files. Choose a folder outside the package."
        )
    if data_dir is not None and _is_within(out, Path(data_dir).expanduser().resolve()):
        raise OutputFolderError(
            f"--out {out_dir} is inside the data folder {data_dir}; choose a folder outside "
            "the cohort's data."
        )
    if out.is_dir():
        cohort_files = [name for name in _COHORT_FILES if (out / name).exists()]
        if cohort_files:
            raise OutputFolderError(
                f"--out {out_dir} holds a cohort ({', '.join(cohort_files)}); choose another "
                "folder for the reports."
            )
    return out


def _safe_relative(name: object) -> str | None:
    """A manifest path that stays inside the output folder, else None."""
    if not isinstance(name, str) or not name or "\\" in name:
        return None
    parts = Path(name).parts
    if Path(name).is_absolute() or any(part in ("", ".", "..") for part in parts):
        return None
    return Path(*parts).as_posix()


def _previous_manifest(out: Path) -> dict | None:
    """The manifest of an earlier run in ``out`` (None when there is none or it is unreadable)."""
    path = out / "manifest.json"
    if not path.is_file() or path.is_symlink():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("package") != "anxiety-outcomes":
        return None
    files = manifest.get("files")
    manifest["files"] = sorted(
        {f for f in map(_safe_relative, files if isinstance(files, list) else []) if f}
    )
    reports = manifest.get("reports")
    manifest["reports"] = (
        [r for r in reports if isinstance(r, dict)] if isinstance(reports, list) else []
    )
    return manifest


def _no_link_on_the_way(out: Path, relative: str) -> bool:
    """True when no existing component of ``out/relative`` below ``out`` is a symbolic link."""
    path = out
    for part in Path(relative).parts:
        path = path / part
        if path.is_symlink():
            return False
        if not path.exists():
            return True
    return True


def _check_fixed_names(out: Path, previous: dict | None, chosen: list[Report]) -> None:
    """Refuse, before anything runs, a run whose fixed file names an earlier run did not write."""
    owned = set(previous["files"]) if previous else set()
    names = ["index.html", "manifest.json"]
    for report in chosen:
        names += [f"{report.stem}.html", f"{report.stem}.ipynb"]
    foreign = [
        name
        for name in names
        if ((out / name).exists() or (out / name).is_symlink())
        and (name not in owned or (out / name).is_symlink())
    ]
    if foreign:
        raise OutputFolderError(
            f"--out {out} already holds {', '.join(foreign)}, which no earlier report run "
            "wrote (no manifest.json lists them); move them away or choose another folder."
        )


def _make_staging(out: Path) -> Path:
    """A fresh, empty folder beside ``out`` (same file system) to render into."""
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))


def _write_text(path: Path, text: str) -> None:
    """Write one text file of a run (all of ``run_reports``' own writes go through here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _files_under(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


def _install(staging: Path, out: Path, previous: dict | None, owned_after: set[str]) -> None:
    """Move a successful run from ``staging`` into ``out``; see the section comment above.

    Raises :class:`OutputFolderError` before changing anything when a new file would
    replace a file that no earlier run wrote, or a folder on the way is a symbolic link.
    """
    owned_before = set(previous["files"]) if previous else set()
    new_files = _files_under(staging)
    conflicts = [
        name
        for name in new_files
        if not _no_link_on_the_way(out, name)
        or ((out / name).exists() or (out / name).is_symlink())
        and (name not in owned_before or (out / name).is_symlink() or (out / name).is_dir())
    ]
    if conflicts:
        shown = ", ".join(conflicts[:3]) + (" ..." if len(conflicts) > 3 else "")
        raise OutputFolderError(
            f"--out {out} holds {len(conflicts)} file(s) or link(s) the reports would replace "
            f"that no earlier run wrote ({shown}); move them away or choose another folder."
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in new_files:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).replace(out / name)
    for name in sorted(owned_before - owned_after):
        path = out / name
        if _no_link_on_the_way(out, name) and path.is_file() and not path.is_symlink():
            path.unlink()
            _remove_empty_parents(path.parent, out)
    _remove_tree(staging)


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and _is_within(folder, stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _remove_tree(folder: Path) -> None:
    """Remove a folder this run created (``shutil.rmtree`` never follows links)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _failed_folder(out: Path) -> Path:
    """``<out>.failed`` (replacing an earlier failed run's), else the next free name."""
    for k in range(1, 100):
        candidate = out.parent / (f"{out.name}.failed" + (f"-{k}" if k > 1 else ""))
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
        if candidate.is_dir() and not candidate.is_symlink():
            if (candidate / FAILED_MARKER).is_file():
                _remove_tree(candidate)
                return candidate
    raise OutputFolderError(f"Too many failed-run folders beside {out}; remove some.")


def _keep_failed(staging: Path, out: Path, reason: str) -> Path | None:
    """Rename the staging folder to ``<out>.failed`` with a FAILED.txt; best effort."""
    try:
        if not any(staging.iterdir()):
            _remove_tree(staging)
            return None
        target = _failed_folder(out)
        staging.replace(target)
    except OSError:
        return staging if staging.exists() else None
    try:
        _write_text(
            target / FAILED_MARKER,
            f"This report run FAILED and was not installed into {out}.\n{reason}\n"
            "The previous reports in that folder (if any) were left as they were.\n",
        )
    except OSError:
        pass
    return target


# ---------------------------------------------------------------------------------------
# Notebook execution
# ---------------------------------------------------------------------------------------


def _kernel_manager_class(log_path: Path | None = None, work_dir: Path | None = None):
    """A kernel manager that runs ipykernel on this interpreter, whatever kernelspecs exist.

    The ``python3`` kernelspec found first on the Jupyter path may belong to another
    interpreter (a user-wide install); the reports must run on the one that has this
    package, so the spec is ipykernel's own, built for ``sys.executable``. The kernel
    talks over local IPC sockets rather than TCP, runs with ``PYTHONSAFEPATH=1`` (its
    working directory is never put on ``sys.path``), and its own log (stderr, e.g.
    "KeyboardInterrupt caught in kernel" at shutdown) goes to ``log_path``, not the
    terminal. With ``work_dir`` the kernel starts there and its sockets live there (the
    process's own working directory is never changed, so several kernels can be driven
    at once from threads). Each kernel gets one BLAS/OpenMP thread
    (:data:`KERNEL_THREAD_VARIABLES`) unless the environment says otherwise.
    """
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class CurrentPythonKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            # Local sockets: cohort data never travels over (unencrypted) TCP.
            kwargs.setdefault("transport", "ipc")
            if work_dir is not None:
                kwargs.setdefault("ip", str(Path(work_dir) / "kernel-ipc"))
            super().__init__(**kwargs)
            self.client_factory = _prompt_client_class()

        @property
        def kernel_spec(self):
            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            import os

            env = {**(kw.get("env") or os.environ), "PYTHONSAFEPATH": "1"}
            for variable in KERNEL_THREAD_VARIABLES:
                env.setdefault(variable, "1")
            kw["env"] = env
            if work_dir is not None:
                kw["cwd"] = str(work_dir)
            if log_path is not None:
                with open(log_path, "ab") as log:
                    kw["stderr"] = log
                    return await super()._async_launch_kernel(kernel_cmd, **kw)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return CurrentPythonKernelManager


#: How long a new kernel client waits for one more IOPub message before it takes the
#: channel as drained (jupyter_client waits 0.2 s; see :func:`_prompt_client_class`).
IOPUB_SETTLE_SECONDS = 0.01


def _prompt_client_class():
    """jupyter_client's asynchronous kernel client, ready 0.2 s sooner per notebook.

    Each notebook is run by a new kernel client (nbclient makes one per notebook, also for
    a kept kernel). Its ``wait_for_ready`` asks for ``kernel_info`` until the reply and an
    IOPub message arrive (a new subscription can miss the first messages), then reads
    IOPub until no message came for 0.2 s: on a kept kernel that wait was most of a
    small notebook's time (0.2 s of 0.29 s, measured in session 19). Here both IOPub reads
    wait :data:`IOPUB_SETTLE_SECONDS` (a missed message is asked for again at once); the
    messages left unread are those of the ``kernel_info`` requests, which nbclient does
    not take for a cell's (it reads only the replies to its own requests). A
    jupyter_client without the two helpers it calls gets its own client back.
    """
    import time
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    if not all(
        hasattr(AsyncKernelClient, name)
        for name in ("_async_is_alive", "_handle_kernel_info_reply")
    ):
        return AsyncKernelClient

    class PromptClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    msg = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    msg = None
                if msg is not None and msg["msg_type"] == "kernel_info_reply":
                    try:
                        await self.iopub_channel.get_msg(timeout=IOPUB_SETTLE_SECONDS)
                    except Empty:
                        pass  # IOPub not connected yet: ask again
                    else:
                        self._handle_kernel_info_reply(msg)
                        break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:  # what else the kernel_info requests published
                try:
                    await self.iopub_channel.get_msg(timeout=IOPUB_SETTLE_SECONDS)
                except Empty:
                    break

    return PromptClient


#: Idle nbconvert exporters, kept for the next page of this run or of a later one in this
#: process: building one compiles its Jinja templates, about 60 ms of CPU, more than half
#: the cost of a page. An exporter is not shared between threads: each page takes one
#: (:func:`_html_exporter`) and gives it back when done.
_idle_exporters: list[Any] = []
_exporters_lock = threading.Lock()


@contextlib.contextmanager
def _html_exporter() -> Iterator[Any]:
    """An nbconvert HTML exporter (code cells and prompts excluded) for one page."""
    with _exporters_lock:
        exporter = _idle_exporters.pop() if _idle_exporters else None
    if exporter is None:
        from nbconvert import HTMLExporter

        exporter = HTMLExporter(
            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
        )
    try:
        yield exporter
    finally:
        with _exporters_lock:
            _idle_exporters.append(exporter)


def _render_html(notebook_path: Path, title: str | None = None) -> str:
    """HTML of an executed notebook without code cells or prompts (page title ``title``)."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    # The page <title>: the report's heading (nbconvert would write "Notebook").
    for cell in notebook.cells:  # papermill gives its cell a random id: the page would vary
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"
    heading = title if title is not None else _title(notebook_path, notebook_path.stem)
    notebook.metadata["title"] = f"{heading} | anxiety-outcomes"
    with _html_exporter() as exporter:
        body, _ = exporter.from_notebook_node(notebook)
    body = _image_descriptions(body, notebook)
    # No third-party scripts (require.js, MathJax from a CDN): the pages need none, work
    # offline, and a report on patients' data does not call out to other servers.
    body = re.sub(r'<script src="https?://[^"]*">\s*</script>\s*', "", body)
    # great_tables names each table with a random id (its CSS is scoped by it): number
    # them instead, so that the same data give the same page.
    for k, found in enumerate(dict.fromkeys(_GT_ID.findall(body)), 1):
        body = body.replace(found, f"gt-table-{k}")
    return body.replace("</head>", f"{_PAGE_STYLE}</head>", 1)


_GT_ID = re.compile(r'(?<=<div id=")[a-z]{10}(?=" style="padding-left:0px)')

#: The alt text nbconvert gives an image that has none.
_NO_ALT = 'alt="No description has been provided for this image"'
_PNG_IMG = re.compile(r'<img\b[^>]*src="data:image/png;base64,([^"]+)"[^>]*>')


def _image_descriptions(body: str, notebook) -> str:
    """The page with each figure's description as its image's alt text.

    A report figure's output carries its description (``metadata["image/png"]["alt"]``,
    see :func:`analysis.plots._alt_text`); nbconvert's template has no place for it and
    writes "No description has been provided for this image". Images are matched to
    outputs by their data, so the order of the page does not matter.
    """
    alts = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            alt = output.get("metadata", {}).get("image/png", {}).get("alt")
            if isinstance(data, str) and isinstance(alt, str) and alt.strip():
                alts["".join(data.split())] = alt
    if not alts:
        return body

    def described(match: re.Match) -> str:
        tag = match.group(0)
        alt = alts.get("".join(match.group(1).split()))
        if alt is None or _NO_ALT not in tag:
            return tag
        return tag.replace(_NO_ALT, f'alt="{html.escape(alt, quote=True)}"', 1)

    return _PNG_IMG.sub(described, body)


#: Page style added to every report: wide tables scroll inside the page, not past it.
_PAGE_STYLE = (
    "<style>.jp-OutputArea-output{overflow-x:auto;max-width:100%}"
    ".jp-RenderedImage img{max-width:100%;height:auto}</style>\n"
)


def _check_params(params: Mapping[str, object]) -> dict:
    unknown = sorted(set(params) - set(REPORT_PARAMETERS))
    if unknown:
        raise ValueError(
            f"Unknown report parameter(s) {unknown}; the parameters are "
            f"{sorted(REPORT_PARAMETERS)} (data_dir and tables_dir are set by run_reports)."
        )
    merged = {**REPORT_PARAMETERS, **params}
    lowest = {"n_patients": 1, "min_cell": 1, "seed": 0}
    for key, value in merged.items():
        low = lowest.get(key, 0)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(
                f"`{key}` must be an integer of at least {low}, but {value!r} was passed."
            )
    return {k: int(v) for k, v in merged.items()}  # type: ignore[call-overload]  # checked above


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _failure_reason(error: BaseException) -> str:
    """One sentence for a failed notebook (the error's first line, no traceback)."""
    import papermill

    if isinstance(error, papermill.PapermillExecutionError):
        return _one_line(f"cell {error.exec_count} raised {error.ename}: {error.evalue}")
    return _one_line(f"{type(error).__name__}: {error}")


def _failed_page(title: str, reason: str, notebook: str) -> str:
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{esc(title)}: FAILED</title></head>
<body style="font-family:sans-serif;max-width:50em;margin:2em auto">
<h1>{esc(title)}</h1>
<p><strong>This report failed and shows no results.</strong> {esc(reason)}.</p>
<p>The executed notebook <a href="{esc(notebook)}">{esc(notebook)}</a> shows the cell that
failed. The other reports of the run are not affected.</p>
</body>
</html>
"""


def _expected_fingerprint(manifest: dict, site) -> str | None:
    """The fingerprint of this run's data for a report of ``site`` (None: the pooled data)."""
    if site is None:
        return manifest["data_fingerprint"]
    shown = (manifest.get("sites") or {}).get("shown") or {}
    return (shown.get(site) or {}).get("data_fingerprint")


def _report_item(r: dict, manifest: dict, folder: str = "") -> str:
    """One report's line of an index; links relative to ``folder`` (where the index is)."""
    esc = html.escape

    def href(path: str) -> str:
        return esc(Path(path).relative_to(folder).as_posix() if folder else path)

    links = f'<a href="{href(r["html"])}">{esc(r["title"])}</a>'
    if r.get("summary"):
        links += f": {esc(r['summary'])}"
    extra = "".join(
        f', <a href="{href(t)}">{esc(Path(t).stem)}.csv</a>' for t in r.get("tables", [])
    )
    notebook = (
        f'<a href="{href(r["notebook"])}">notebook</a>' if r.get("notebook") else "no notebook"
    )
    line = f"<li>{links} ({notebook}{extra})"
    expected = _expected_fingerprint(manifest, r.get("site"))
    if r.get("status") == "failed":
        line += f" <strong>FAILED</strong>: {esc(r.get('reason', ''))}"
    elif r.get("data_fingerprint", expected) != expected:
        line += " <em>(from an earlier run on other data or parameters; see manifest.json)</em>"
    return line + "</li>"


def _sites_html(manifest: dict) -> str:
    """The "By site" section of ``index.html``: each site's reports, the sites withheld."""
    esc = html.escape
    by_site: dict[str, list[dict]] = {}
    for r in manifest["reports"]:
        if r.get("site") is not None:
            by_site.setdefault(str(r["site"]), []).append(r)
    plan = manifest.get("sites")
    if not by_site and not plan:
        return ""
    items = []
    for site, entries in sorted(by_site.items()):
        folder = Path(entries[0]["html"]).parent.as_posix()
        reports = ", ".join(
            f'<a href="{esc(r["html"])}">{esc(r["title"].rsplit(": site ", 1)[0])}</a>'
            + (" <strong>FAILED</strong>" if r.get("status") == "failed" else "")
            for r in entries
        )
        items.append(f'<li><a href="{esc(folder)}/index.html">Site {esc(site)}</a>: {reports}</li>')
    notes = []
    if plan and plan.get("withheld"):
        notes.append(
            f"<p>Not reported separately: site(s) {esc(', '.join(plan['withheld']))}. A "
            f"site is reported on its own only when it has at least min_cell "
            f"({esc(str(manifest['parameters'].get('min_cell')))}) patients, and only when "
            "the sites not shown could not be worked out by subtracting the shown sites from "
            "the pooled reports; their patients are in the pooled reports.</p>"
        )
    if plan and plan.get("patients_without_site"):
        notes.append("<p>Patients without a site_id are in the pooled reports only.</p>")
    if plan is None and by_site:
        notes.append(
            "<p>These site reports come from an earlier --by-site run (see manifest.json).</p>"
        )
    listing = f"<ul>\n{chr(10).join(items)}\n</ul>" if items else ""
    return f"<h2>By site</h2>\n{listing}\n{''.join(notes)}\n"


def _index_html(manifest: dict) -> str:
    esc = html.escape
    fingerprint = manifest["data_fingerprint"]
    pooled = [r for r in manifest["reports"] if r.get("site") is None]
    rows = "\n".join(_report_item(r, manifest) for r in pooled)
    sites = _sites_html(manifest)
    failed = [
        (f"site {r['site']} / " if r.get("site") else "") + r["name"]
        for r in manifest["reports"]
        if r.get("status") == "failed"
    ]
    banner = (
        f"<p><strong>This run FAILED</strong> ({len(failed)} report(s): "
        f"{esc(', '.join(failed))}); it was not installed.</p>"
        if failed
        else ""
    )
    heading = "<h2>All patients (pooled)</h2>\n" if sites else ""
    params = "\n".join(
        f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>"
        for k, v in manifest["parameters"].items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>anxiety-outcomes reports</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}
th{{text-align:left;padding-right:1em}} code{{word-break:break-all}}</style></head>
<body>
<h1>anxiety-outcomes reports</h1>
{banner}
{heading}<ul>
{rows}
</ul>
{sites}<h2>Provenance</h2>
<table>
<tr><th>package version</th><td>{esc(manifest["package_version"])}</td></tr>
<tr><th>data</th><td>{esc(manifest["data"]["source"])}</td></tr>
<tr><th>data fingerprint (SHA-256)</th><td><code>{esc(fingerprint)}</code></td></tr>
{params}
</table>
<p>Definitions, parameters and every file: <a href="manifest.json">manifest.json</a>.</p>
{_definitions_html(manifest)}
</body>
</html>
"""


def _site_index_html(manifest: dict, site: str, folder: str) -> str:
    """``sites/<site>/index.html``: the site's reports, its provenance and the definitions."""
    esc = html.escape
    entries = [r for r in manifest["reports"] if r.get("site") == site]
    rows = "\n".join(_report_item(r, manifest, folder) for r in entries)
    up = "/".join([".."] * len(Path(folder).parts))
    fingerprint = _expected_fingerprint(manifest, site) or (
        entries[0].get("data_fingerprint") if entries else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>anxiety-outcomes reports: site {esc(site)}</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}
th{{text-align:left;padding-right:1em}} code{{word-break:break-all}}</style></head>
<body>
<h1>anxiety-outcomes reports: site {esc(site)}</h1>
<p>The reports of the patients of site {esc(site)}. The reports of all patients, and the
other sites: <a href="{esc(up)}/index.html">all reports</a>.</p>
<ul>
{rows}
</ul>
<h2>Provenance</h2>
<table>
<tr><th>package version</th><td>{esc(manifest["package_version"])}</td></tr>
<tr><th>data</th><td>{esc(manifest["data"]["source"])}, site {esc(site)}</td></tr>
<tr><th>data fingerprint (SHA-256)</th><td><code>{esc(str(fingerprint))}</code></td></tr>
</table>
<p>Definitions, parameters and every file: <a href="{esc(up)}/manifest.json">manifest.json</a>.</p>
{_definitions_html(manifest)}
</body>
</html>
"""


def _summary(notebook_path: Path) -> str:
    """The first sentence of a notebook's first markdown paragraph after its heading."""
    import nbformat

    for cell in nbformat.read(notebook_path, as_version=4).cells:
        if cell.cell_type == "markdown":
            text = " ".join(
                line.strip() for line in cell.source.splitlines() if not line.startswith("#")
            ).strip()
            if text:
                end = re.search(r"[.:](\s|$)", text)
                return text[: end.start() + 1] if end else text
    return ""


def _dependencies() -> dict[str, str]:
    """Installed versions of the package's direct dependencies (for ``manifest.json``):
    the core and the ``plots``, ``reports`` and ``engines`` extras the reports run on."""
    from importlib.metadata import PackageNotFoundError, requires, version

    out = {"python": sys.version.split()[0]}
    for requirement in requires(DISTRIBUTION) or []:
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        if extra and extra[1] not in ("plots", "reports", "engines"):
            continue  # the test, docs, browser and spark tools do not make the numbers
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        if name == DISTRIBUTION:
            continue
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _definitions_html(manifest: dict) -> str:
    """The definitions section of ``index.html`` (outcomes, visit windows, small cells)."""
    from analysis.formatting import DEFINITIONS, label

    esc = html.escape
    outcomes = "\n".join(f"<li>{esc(text)}</li>" for text in DEFINITIONS.values())
    visits = "\n".join(
        f"<tr><td>{esc(label(v['name'], 'visit'))}</td><td>{v['target_day']}</td>"
        f"<td>{v['window_low']} to {v['window_high']}</td>"
        f"<td>{esc(', '.join(label(i, 'instrument') for i in v['instruments']))}</td></tr>"
        for v in manifest["definitions"]["schedule"]
    )
    min_cell = manifest["parameters"].get("min_cell")
    return f"""<h2 id="definitions">Definitions</h2>
<p>Percent change is from the baseline: the latest scorable assessment from day -14 to day 0
(day 0 is the first ketamine session). A visit's value is the assessment closest to its
target day inside its window.</p>
<ul>
{outcomes}
</ul>
<table>
<tr><th>Visit</th><th>Target day</th><th>Window (days)</th><th>Scales</th></tr>
{visits}
</table>
<p>Small cells: a count of 1 to {esc(str((min_cell or 1) - 1))} patients, and any number it
could be worked out from, is not shown (min_cell = {esc(str(min_cell))}; CMS cell-size
rule); such cells carry the mark &dagger;.</p>"""


def _title(notebook_path: Path, default: str) -> str:
    """The first markdown heading of a notebook, else ``default``."""
    import nbformat

    for cell in nbformat.read(notebook_path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


#: Environment of every report kernel: one BLAS/OpenMP thread each (the models are small;
#: parallel jobs would otherwise compete for the cores, and the numbers do not depend on
#: how many kernels run at once). A value the user set in the environment is kept.
KERNEL_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_jobs() -> int:
    """Notebooks rendered at once by default: ``min(2, CPUs)`` (each runs its own kernel).

    Examples
    --------
    >>> 1 <= default_jobs() <= 2
    True
    """
    import os

    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class _Job:
    """One notebook to render: a report of one scope (the pooled cohort or a site)."""

    report: Report
    staging: Path  # the run's staging folder
    folder: str  # where the scope's files go, relative to staging ("" or "sites/S01")
    parameters: dict
    label: str  # "outcomes" or "site S01 / outcomes"
    site: str | None = None


def _execute(job: _Job, kernels: _KernelPool) -> dict:
    """Run one notebook; return its manifest entry, its page and the seconds it took.

    Runs in a worker thread when jobs run in parallel (each drives its own kernel
    process): it writes only what papermill and the kernel write (the executed notebook
    and the tables); the page is returned as text and written by the caller through
    ``_write_text``. The notebook runs in a kernel of ``kernels`` (reused from an earlier
    notebook when one is idle, reset first: see :mod:`analysis._kernel`) with a private
    empty working folder (removed afterwards), so nothing in the output folder can be
    imported or read by accident. A notebook that fails takes its kernel with it: the next
    notebook gets a new one. An ``OSError`` (disk full, permission) is not a report
    failure: it propagates and stops the run.
    """
    import papermill

    report = job.report
    scope = job.staging / job.folder if job.folder else job.staging
    executed = scope / f"{report.stem}.ipynb"
    tables_dir = scope / "tables" / report.name
    title = _title(report.path, report.name)
    if job.site is not None:
        title = f"{title}: site {job.site}"

    def relative(path: Path) -> str:
        return path.relative_to(job.staging).as_posix()

    entry = {
        "name": report.name,
        "title": title,
        "summary": _summary(report.path),
        "notebook": relative(executed),
        "html": relative(scope / f"{report.stem}.html"),
        "tables": [],
        "status": "ok",
    }
    if job.site is not None:
        entry["site"] = job.site
    started = time.perf_counter()
    page = None
    scope.mkdir(parents=True, exist_ok=True)
    kernel = kernels.acquire()
    healthy = False
    try:
        with kernel.notebook_folder() as work_dir:
            papermill.execute_notebook(
                str(report.path),
                str(executed),
                parameters={**job.parameters, "tables_dir": str(tables_dir)},
                kernel_name="python3",
                engine_name=_engine_name(),
                km=kernel.km,
                reset_code=_reset_code(work_dir),
                progress_bar=False,  # one line per report instead (run_reports' progress)
            )
        healthy = True
        page = _render_html(executed, title)
    except OSError:
        raise
    except Exception as error:  # a failing notebook must not stop the others
        entry["status"] = "failed"
        entry["reason"] = _failure_reason(error)
    finally:
        kernels.release(kernel, healthy)
    entry["tables"] = sorted(relative(p) for p in tables_dir.glob("*.csv") if p.is_file())
    if not executed.is_file():
        entry["notebook"] = ""
    return {"entry": entry, "page": page, "seconds": time.perf_counter() - started}


def _reset_code(work_dir: Path) -> str:
    """The code run (silently) in a kernel before each notebook: see :mod:`analysis._kernel`."""
    return (
        f"import os\nos.chdir({str(work_dir)!r})\n"
        f"import analysis._kernel\nanalysis._kernel.reset({str(work_dir)!r})"
    )


class _Kernel:
    """One report kernel, kept for the notebooks run one after the other in it.

    Its folder (private, removed on :meth:`close`) holds the kernel's sockets and log and
    one empty working folder per notebook. The kernel process starts with the first
    notebook (nbclient starts it; it does not stop it, as it did not create the manager).
    """

    def __init__(self) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="anxiety-outcomes-kernel-"))
        self.km = _kernel_manager_class(self.folder / "kernel.log", self.folder)()
        self.notebooks = 0

    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        return not self.km.has_kernel or bool(run_sync(self.km.is_alive)())

    @contextlib.contextmanager
    def notebook_folder(self):
        """A new empty working folder for the next notebook (kept until :meth:`close`:
        the kernel stays in it until the next notebook's reset)."""
        self.notebooks += 1
        folder = self.folder / f"notebook-{self.notebooks}"
        folder.mkdir()
        yield folder

    def close(self) -> None:
        from jupyter_core.utils import run_sync

        try:
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class _KernelPool:
    """Idle report kernels, handed to one notebook at a time (thread-safe).

    A run of :func:`run_reports` makes its own pool and closes it at the end, so at most
    ``jobs`` kernels start per run however many notebooks (and sites) it renders;
    :func:`reusing_kernels` keeps one pool across runs.
    """

    def __init__(self) -> None:
        self._idle: list[_Kernel] = []
        self._all: list[_Kernel] = []
        self._lock = threading.Lock()

    def acquire(self) -> _Kernel:
        """An idle kernel, or a new one; always a new one under :data:`FRESH_KERNELS`
        (the idle kernels stay idle for later runs)."""
        with self._lock:
            while self._idle and FRESH_KERNELS is False:
                kernel = self._idle.pop()
                if kernel.alive():
                    return kernel
                self._all.remove(kernel)
                kernel.close()
            kernel = _Kernel()
            self._all.append(kernel)
            return kernel

    def release(self, kernel: _Kernel, healthy: bool) -> None:
        with self._lock:
            if healthy and FRESH_KERNELS is False:
                self._idle.append(kernel)
                return
            self._all.remove(kernel)
        kernel.close()

    def close(self) -> None:
        with self._lock:
            kernels, self._all, self._idle = self._all, [], []
        for kernel in kernels:
            kernel.close()


#: ``True`` runs every notebook in a kernel of its own (the behaviour before kernels were
#: reused; slower by about 3 CPU-seconds a notebook). For a suspected leak of state
#: between reports: the pages must be the same either way.
FRESH_KERNELS = False

_shared_pool: _KernelPool | None = None


@contextlib.contextmanager
def reusing_kernels():
    """Keep the report kernels between calls of :func:`run_reports` in this block.

    Each run reuses its kernels from notebook to notebook anyway; inside this block the
    runs also share them, so a script (or a test suite) that renders many cohorts starts
    ``jobs`` kernels in all instead of per run. The kernels stop when the block ends.

    Notes
    -----
    Before each notebook a kept kernel is reset to the state of a fresh one (see
    ``analysis/_kernel.py``: namespace and cell numbers, figures, matplotlib and pandas
    settings, warning filters, environment, ``sys.path``, a new empty working folder);
    imported modules stay imported, which is the saving (about 3 CPU-seconds a notebook).
    A notebook that fails, or kills its kernel, gets the kernel replaced. Blocks nest (the
    outer one owns the kernels). Set :data:`FRESH_KERNELS` to run every notebook in a new
    kernel instead.

    Examples
    --------
    >>> from analysis.reports import reusing_kernels
    >>> with reusing_kernels():  # doctest: +SKIP
    ...     for folder in ["site_a", "site_b"]:
    ...         run_reports(folder, f"reports/{folder}")
    """
    global _shared_pool
    if _shared_pool is not None:  # nested: the outer block owns the pool
        yield
        return
    _shared_pool = _KernelPool()
    try:
        yield
    finally:
        pool, _shared_pool = _shared_pool, None
        pool.close()


def _engine_name() -> str:
    """Register (once) and name the papermill engine that runs a notebook in a kept kernel.

    It is papermill's own nbclient engine, with three differences: before the first cell it
    runs ``reset_code`` silently (no output, no execution count) and fails if that fails;
    afterwards it closes its client's channels (nbclient leaves them open when it did not
    create the kernel manager); and it writes the executed notebook at its start and end
    (and every 30 s of a long cell), not after every cell.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    name = "anxiety-outcomes-kept-kernel"
    if name in papermill_engines._engines:
        return name

    class ResetClient(PapermillNotebookClient):
        reset_code = ""

        def papermill_execute_cells(self):
            reply = self.wait_for_reply(
                self.kc.execute(self.reset_code, silent=True, store_history=False)
            )
            if reply is None or reply["content"].get("status") != "ok":
                content = reply["content"] if reply is not None else {}
                raise RuntimeError(
                    "The report kernel could not be reset before the notebook: "
                    f"{content.get('ename', 'no reply')}: {content.get('evalue', '')}"
                )
            super().papermill_execute_cells()

    class FewSaves(NotebookExecutionManager):
        """Writes the executed notebook when it starts, when it ends and every 30 s of a
        long cell, not after every cell as papermill does (a few seconds a batch)."""

        _quiet = False

        def save(self, **kwargs):
            if not self._quiet:
                super().save(**kwargs)

        @contextlib.contextmanager
        def _unsaved(self):
            self._quiet = True
            try:
                yield
            finally:
                self._quiet = False

        def cell_start(self, cell, cell_index=None, **kwargs):
            with self._unsaved():
                super().cell_start(cell, cell_index, **kwargs)

        def cell_complete(self, cell, cell_index=None, **kwargs):
            with self._unsaved():
                super().cell_complete(cell, cell_index, **kwargs)

    class KeptKernelEngine(NBClientEngine):
        @classmethod
        def execute_notebook(
            cls,
            nb,
            kernel_name,
            output_path=None,
            progress_bar=True,
            log_output=False,
            autosave_cell_every=30,
            **kwargs,
        ):
            nb_man = FewSaves(
                nb,
                output_path=output_path,
                progress_bar=progress_bar,
                log_output=log_output,
                autosave_cell_every=autosave_cell_every,
            )
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man,
            kernel_name,
            log_output=False,
            stdout_file=None,
            stderr_file=None,
            start_timeout=60,
            execution_timeout=None,
            reset_code="",
            **kwargs,
        ):
            kwargs.pop("input_path", None)
            kwargs.pop("startup_timeout", None)
            timeout = execution_timeout or kwargs.pop("timeout", None)
            client = ResetClient(
                nb_man,
                timeout=timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                **kwargs,
            )
            client.reset_code = reset_code
            try:
                return client.execute()
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(name, KeptKernelEngine)
    return name


def _render_all(jobs: list[_Job], n_jobs: int, progress: bool) -> list[dict]:
    """Render every job, ``n_jobs`` at a time; write each page; entries in job order.

    With ``n_jobs > 1``, ``n_jobs`` threads each drive one kernel at a time: the
    notebooks compute in their kernels (separate processes), so they run in parallel,
    while this process only relays messages and renders the pages. No worker process is
    spawned (a script calling :func:`run_reports` needs no ``if __name__ == "__main__"``
    guard, and the working directory is never changed).
    One progress line per finished report goes to stderr (stdout stays for the result).
    """
    started = time.perf_counter()
    entries: list[dict | None] = [None] * len(jobs)
    done = 0

    def finish(k: int, result: dict) -> None:
        nonlocal done
        done += 1
        entry = result["entry"]
        html_path = jobs[k].staging / entry["html"]
        if entry["status"] == "ok":
            _write_text(html_path, result["page"])
        else:
            notebook = Path(entry["notebook"]).name if entry["notebook"] else ""
            _write_text(html_path, _failed_page(entry["title"], entry["reason"], notebook))
        entries[k] = entry
        if progress:
            state = "done" if entry["status"] == "ok" else f"FAILED ({entry['reason']})"
            print(
                f"[{done}/{len(jobs)}] {jobs[k].label}: {state} in {result['seconds']:.1f} s "
                f"(elapsed {time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    if progress:
        print(
            f"rendering {len(jobs)} report(s), {min(n_jobs, len(jobs))} at a time",
            file=sys.stderr,
            flush=True,
        )
    kernels = _shared_pool if _shared_pool is not None else _KernelPool()
    try:
        if n_jobs <= 1 or len(jobs) <= 1:
            for k, job in enumerate(jobs):
                finish(k, _execute(job, kernels))
            return entries  # type: ignore[return-value]  # finish() filled every slot
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        pool = ThreadPoolExecutor(max_workers=min(n_jobs, len(jobs)), thread_name_prefix="report")
        try:
            pending = {pool.submit(_execute, job, kernels): k for k, job in enumerate(jobs)}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    finish(pending.pop(future), future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return entries  # type: ignore[return-value]  # finish() filled every slot
    finally:
        if kernels is not _shared_pool:
            kernels.close()


def _check_jobs(jobs) -> int:
    if jobs is None:
        return default_jobs()
    if not isinstance(jobs, int | np.integer) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer of at least 1, but {jobs!r} was passed.")
    return int(jobs)


def _validated_cohort(data_dir, values: dict):
    """The run's cohort, validated once: a folder through ``load_cohort``, the demo cohort
    through ``validate_cohort`` (its findings and collected tables kept for report 01)."""
    if data_dir is not None:
        return load_report_cohort(data_dir)
    import dataclasses

    from analysis.schema import validate_cohort

    cohort = load_report_cohort(None, values["n_patients"], values["seed"])
    report = validate_cohort({name: getattr(cohort, name) for name in TABLES})
    report.raise_for_errors()
    return dataclasses.replace(cohort, findings=report.findings, collected=report.collected)


# ---------------------------------------------------------------------------------------
# Reports per site (--by-site)
# ---------------------------------------------------------------------------------------

_SITE_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SitePlan:
    """Which sites get their own reports in a ``--by-site`` run.

    ``shown``: site codes rendered separately, in sorted order; ``withheld``: sites that
    are not (fewer than ``min_cell`` patients, or held back so that such a site cannot be
    worked out by subtraction); ``unassigned``: whether some patients have no site.
    """

    shown: tuple[str, ...]
    withheld: tuple[str, ...]
    unassigned: bool


def plan_sites(patients: pd.DataFrame, *, min_cell: int) -> SitePlan:
    """The sites of a ``--by-site`` run that are reported separately.

    A site of fewer than ``min_cell`` patients is not reported on its own (its counts
    would all be small cells). Since the pooled reports hold every patient, the sites not
    shown (with the patients without a site) form a remainder that anyone could compute
    by subtracting the shown sites from the pooled reports; when that remainder holds
    1 to ``min_cell - 1`` patients, the smallest shown sites are held back too until it
    holds at least ``min_cell`` (or no site is shown). Site sizes are never reported.

    Parameters
    ----------
    patients : DataFrame
        The patients table, with ``site_id``.
    min_cell : int
        The small-cell threshold.

    Returns
    -------
    SitePlan

    Raises
    ------
    ValueError
        No ``site_id`` column, or no patient with a site.

    Examples
    --------
    >>> import pandas as pd
    >>> patients = pd.DataFrame({"patient_id": range(50),
    ...                          "site_id": ["S01"] * 30 + ["S02"] * 15 + ["S03"] * 5})
    >>> plan_sites(patients, min_cell=11)  # S03 alone could be subtracted: S02 is held back too
    SitePlan(shown=('S01',), withheld=('S02', 'S03'), unassigned=False)
    >>> plan_sites(patients, min_cell=5).shown
    ('S01', 'S02', 'S03')
    """
    if "site_id" not in patients.columns or not patients["site_id"].notna().any():
        raise ValueError(
            "--by-site needs the patients' site: the patients table has no site_id values. "
            "Add the pseudonymous site code (site_id) or run without --by-site."
        )
    site = patients["site_id"].astype("string")
    # site -> patients, as plain str and int (pandas-stubs types value_counts' labels as
    # Hashable, and mypy took 7 s to resolve the overloads of indexing it in a generator)
    sizes: dict[str, int] = {str(s): int(n) for s, n in site.value_counts(dropna=True).items()}
    unassigned = int(site.isna().sum())
    withheld = {s for s, n in sizes.items() if n < min_cell}
    shown = sorted((s for s in sizes if s not in withheld), key=lambda s: (sizes[s], s))
    remainder = unassigned + sum(sizes[s] for s in withheld)
    while shown and 0 < remainder < min_cell:
        smallest = shown.pop(0)
        withheld.add(smallest)
        remainder += sizes[smallest]
    return SitePlan(tuple(sorted(shown)), tuple(sorted(withheld)), unassigned > 0)


def _site_folders(sites: Sequence[str]) -> dict[str, str]:
    """Folder of each site's reports: ``sites/<code>`` (a numbered name for odd codes)."""
    folders, used = {}, set()
    for k, site in enumerate(sites, 1):
        name = site if _SITE_FOLDER.match(site) and site.lower() not in used else f"site-{k}"
        used.add(name.lower())
        folders[site] = f"sites/{name}"
    return folders


def site_cohort(cohort, site: str):
    """The part of a validated cohort that belongs to one site (no new validation).

    Patients of ``site`` and their assessments, sessions and adverse events. The
    batch's findings are kept for the rows of these patients; a finding about a whole
    column (no row) is kept with the site's row count.

    Examples
    --------
    >>> from analysis.synthetic import synthetic_cohort
    >>> cohort = synthetic_cohort(60, seed=0)
    >>> part = site_cohort(cohort, "S01")
    >>> set(part.patients["site_id"]) == {"S01"}
    True
    >>> set(part.assessments["patient_id"]) <= set(part.patients["patient_id"])
    True
    """
    import dataclasses

    patients = cohort.patients
    keep = (patients["site_id"].astype("string") == site).fillna(False).to_numpy(dtype=bool)
    ids = set(patients.loc[keep, "patient_id"].astype(str))
    tables = {"patients": patients[keep].reset_index(drop=True)}
    for name in TABLES[1:]:
        table = getattr(cohort, name, None)
        if table is None or "patient_id" not in table.columns:
            tables[name] = table
            continue
        mask = table["patient_id"].astype(str).isin(ids).to_numpy(dtype=bool)
        tables[name] = table[mask].reset_index(drop=True)
    findings = cohort.findings
    if findings is not None and len(findings):
        kept = np.ones(len(findings), dtype=bool)
        count = findings["count"].copy() if "count" in findings.columns else None
        for name in TABLES:
            table = getattr(cohort, name, None)
            rows = (findings["table"] == name).fillna(False).to_numpy(dtype=bool)
            if table is None or not rows.any():
                continue
            positions = findings.loc[rows, "row"]
            at_row = positions.notna().to_numpy(dtype=bool)
            if "patient_id" in table.columns:
                where = positions[at_row].astype(int).to_numpy()
                inside = where < len(table)
                owner = np.full(len(where), "", dtype=object)
                owner[inside] = table["patient_id"].astype(str).to_numpy()[where[inside]]
                mine = np.isin(owner, list(ids)) | ~inside
                index = np.flatnonzero(rows)[at_row]
                kept[index] = mine
            if count is not None:
                whole = np.flatnonzero(rows)[~at_row]
                count.iloc[whole] = len(tables[name]) if tables.get(name) is not None else 0
        findings = findings.assign(count=count) if count is not None else findings
        findings = findings[kept].reset_index(drop=True)
    return dataclasses.replace(cohort, **tables, findings=findings)


def run_reports(
    data_dir: str | Path | None = None,
    out_dir: str | Path = "reports",
    reports: Sequence[str] | None = None,
    *,
    progress: bool = True,
    jobs: int | None = None,
    by_site: bool = False,
    **params,
) -> dict:
    """Execute the report notebooks and write HTML, tables, ``index.html`` and a manifest.

    Parameters
    ----------
    data_dir : str or Path, optional
        Cohort folder (see :func:`analysis.schema.load_cohort`). ``None`` runs the reports
        on the synthetic demo cohort (``n_patients=500, seed=0`` unless overridden).
    out_dir : str or Path
        Output folder (created when missing). Checked first by
        :func:`check_output_folder`. Files an earlier run wrote (listed in its
        ``manifest.json``) are replaced; any other file is never deleted or overwritten.
    reports : sequence of str, optional
        Reports to run, by name (``"data_quality"``) or file stem (``"01_data_quality"``);
        default all. The other reports already in ``out_dir`` stay and stay in the index
        (marked when they were made from other data or parameters).
    progress : bool
        Print one line per finished report to stderr (``[2/5] outcomes: done in 21.4 s
        (elapsed 30 s)``); stdout is left alone.
    jobs : int, optional
        Notebooks rendered at once, each in its own process and kernel (default
        :func:`default_jobs`, ``min(2, CPUs)``). The reports are the same whatever the
        number.
    by_site : bool
        Also render the reports of each site (``patients.site_id``) into
        ``sites/<site>/``, with an index per site; the top ``index.html`` links the pooled
        reports and every site's. A site is reported separately only when
        :func:`plan_sites` allows it (at least ``min_cell`` patients, and no small
        remainder computable by subtraction); the index lists the others without their
        size.
    **params
        Notebook parameters: ``n_patients`` (at least 1), ``seed`` (synthetic cohort),
        ``min_cell`` (small-cell suppression, at least 1, default 11).

    Returns
    -------
    dict
        The manifest, also written to ``out_dir/manifest.json``: ``package``,
        ``package_version``, ``created`` (UTC timestamp of the run), ``dependencies``
        (installed versions of Python and of every dependency), ``data`` (source and
        rows per table), ``data_fingerprint``
        (:func:`data_fingerprint`), ``parameters``, ``definitions`` (:func:`definitions`),
        ``reports`` (per report its name, title, one-line summary, files, ``status`` and
        the ``data_fingerprint`` and ``parameters`` it was made with; a site's reports
        also their ``site``) and ``files`` (every file the run owns, relative to
        ``out_dir``). A ``--by-site`` run adds ``sites``: per site reported separately its
        folder and data fingerprint, and the sites withheld.

    Raises
    ------
    ValueError
        An unknown report or parameter, a parameter out of range (before anything runs);
        ``by_site`` on data without ``site_id``.
    OutputFolderError
        ``out_dir`` is refused (a file, inside the package, a cohort folder) or would
        replace files no earlier run wrote.
    DataValidationError
        When ``data_dir`` holds invalid or identifying data (before any notebook runs;
        nothing is written).
    ReportsFailedError
        When one or more notebooks failed. Every other report still ran; ``out_dir`` is
        untouched and the run is kept in ``<out_dir>.failed`` (its index marks what
        failed and why, the failed report's page says it failed).
    OSError
        The disk is full or a folder is not writable. ``out_dir`` is untouched; what was
        written is kept in ``<out_dir>.failed``.
    DisclosureAuditError
        (:class:`analysis.disclosure.DisclosureAuditError`, a ``RuntimeError``) when the
        audit of everything the run wrote (:func:`analysis.disclosure.audit_report_dir`)
        finds a count of 1 to ``min_cell - 1``, a hidden cell recoverable from a shown
        total or a patient id; the message names the files and tables. The run is kept
        in ``<out_dir>.failed`` and ``out_dir`` is untouched.

    Notes
    -----
    Tables of one run that count the same patients are linked: when one shows a count
    another hides (their complementary suppression chose apart), the run hides it in
    every table (:func:`analysis.disclosure.linked_suppression`, read from the set's
    snapshot by :func:`save_table` and the figures) and renders the reports again
    before the audit; a ``--by-site`` run links its report sets the same way.

    Output files per report ``NN_name``: ``NN_name.html`` (no code cells),
    ``NN_name.ipynb`` (executed) and ``tables/name/*.csv``; a site's under
    ``sites/<site>/``.

    The cohort is read and validated once per run (:func:`analysis.schema.load_cohort`,
    or :func:`analysis.schema.validate_cohort` for the demo cohort) and handed to every
    notebook as a snapshot (:func:`write_snapshot`: Parquet files in a private temporary
    folder, removed after the run, never in ``out_dir``) with its fingerprint; each
    notebook loads it with :func:`load_report_cohort` and refuses it if its fingerprint
    differs.

    The run renders into a fresh folder ``.<out>.partial-*`` beside ``out_dir`` and moves
    the files into place only when every report succeeded: a failed or interrupted run
    never leaves a mix of old and new reports. The notebook kernel runs in a private
    empty working directory with ``PYTHONSAFEPATH=1``, so a file in ``out_dir`` (say a
    ``seaborn.py``) is never imported.
    """
    with needs_extra("run_reports"):  # a missing dependency fails here, before anything runs
        import nbconvert  # noqa: F401
        import papermill  # noqa: F401

    chosen = _select(discover_reports(), reports)
    values = _check_params(params)
    n_jobs = _check_jobs(jobs)
    check_min_cell(values["min_cell"], optional=False)
    out = check_output_folder(out_dir, data_dir)
    previous = _previous_manifest(out)
    _check_fixed_names(out, previous, chosen)
    staging = _make_staging(out)
    try:
        cohort = _validated_cohort(data_dir, values)
        plan = plan_sites(cohort.patients, min_cell=values["min_cell"]) if by_site else None
    except BaseException:
        _remove_tree(staging)
        raise
    import tempfile

    private = Path(tempfile.mkdtemp(prefix="anxiety-outcomes-snapshot-"))
    try:
        return _run_into(
            staging,
            out,
            previous,
            cohort,
            chosen,
            data_dir,
            values,
            progress,
            n_jobs,
            plan,
            private,
        )
    except ReportsFailedError:
        raise
    except BaseException as error:
        kept = _keep_failed(staging, out, f"The run stopped: {_failure_reason(error)}.")
        if isinstance(error, OSError) and kept is not None:
            error.add_note(f"Nothing in {out} was changed; the partial run is in {kept}.")
        raise
    finally:
        _remove_tree(private)


def _run_into(
    staging, out, previous, cohort, chosen, data_dir, values, progress, n_jobs, plan, private
) -> dict:
    """Render ``chosen`` into ``staging``, write index and manifest, install or keep failed."""
    if data_dir is None:
        parameters = {"data_dir": None, **values}
        source = f"synthetic_cohort(n_patients={values['n_patients']}, seed={values['seed']})"
        notebook_data_dir = None
        described = f"synthetic demo cohort, {values['n_patients']} patients, seed {values['seed']}"
    else:
        parameters = {"data_dir": str(data_dir), "min_cell": values["min_cell"]}
        source = str(data_dir)
        notebook_data_dir = str(Path(data_dir).expanduser().resolve())
        described = f"folder {Path(notebook_data_dir).name} ({len(cohort.patients)} patients)"
    notebook_parameters = {**values, "data_dir": notebook_data_dir}
    # The one validated cohort, handed to every notebook as a snapshot with its fingerprint.
    fingerprint = write_snapshot(cohort, private / "pooled", source=described)
    jobs = [
        _Job(
            report,
            staging,
            "",
            {
                **notebook_parameters,
                "snapshot": str(private / "pooled"),
                "fingerprint": fingerprint,
            },
            report.name,
        )
        for report in chosen
    ]
    sites: dict = {}
    if plan is not None:
        folders = _site_folders(plan.shown)
        for site in plan.shown:
            part = site_cohort(cohort, site)
            where = private / folders[site]
            site_fingerprint = write_snapshot(
                part,
                where,
                source=f"{described}: site {site} ({len(part.patients)} patients)",
                site=site,
            )
            sites[site] = {"folder": folders[site], "data_fingerprint": site_fingerprint}
            jobs += [
                _Job(
                    report,
                    staging,
                    folders[site],
                    {
                        **notebook_parameters,
                        "snapshot": str(where),
                        "fingerprint": site_fingerprint,
                    },
                    f"site {site} / {report.name}",
                    site,
                )
                for report in chosen
            ]
    entries = _render_all(jobs, n_jobs, progress)
    linked: dict = {}
    if all(e["status"] == "ok" for e in entries):
        # Secondary suppression across linked tables (disclosure.py decides): across the
        # report sets of a --by-site run, or across the tables of one set whose separate
        # complementary choices let one show what another hides. The sets with cells to
        # hide in addition are rendered again with them hidden.
        if plan is not None and sites:
            linked = _linked_site_suppression(staging, plan, folders, values["min_cell"])
        else:
            linked = _linked_table_suppression(staging, values["min_cell"])
        if linked:
            snapshots = {
                "": private / "pooled",
                **{folders[s]: private / folders[s] for s in sites},
            }
            for folder, populations in linked.items():
                decision = {"min_cell": values["min_cell"], "populations": populations}
                _write_text(snapshots[folder] / LINKED_SUPPRESSION_FILE, json.dumps(decision))
            again = [k for k, job in enumerate(jobs) if job.folder in linked]
            for k in again:
                scope = staging / jobs[k].folder if jobs[k].folder else staging
                _remove_tree(scope / "tables" / jobs[k].report.name)
            for k, entry in zip(
                again, _render_all([jobs[k] for k in again], n_jobs, progress), strict=True
            ):
                entries[k] = entry
    for entry in entries:
        site = entry.get("site")
        entry["data_fingerprint"] = fingerprint if site is None else sites[site]["data_fingerprint"]
        entry["parameters"] = parameters
    # Reports of an earlier run that this one did not re-run (`--only`) stay, with their
    # files; those of the re-run reports are replaced. A --by-site run decides the sites:
    # an earlier site's reports stay only when the site is still reported separately.
    rerun = {(e.get("site"), e["name"]) for e in entries}
    carried = []
    if previous is not None:
        owned = set(previous["files"])
        for old in previous["reports"]:
            name = old.get("name")
            site = old.get("site")
            if (site, name) in rerun or not isinstance(name, str):
                continue
            if plan is not None and site is not None and site not in sites:
                continue
            files = [old.get("html"), old.get("notebook"), *old.get("tables", [])]
            if all(isinstance(f, str) and f in owned for f in files if f):
                # Entries of manifests written before entries carried their own provenance.
                old.setdefault("status", "ok")
                old.setdefault("data_fingerprint", previous.get("data_fingerprint"))
                old.setdefault("parameters", previous.get("parameters"))
                carried.append(old)
    order = {r.name: k for k, r in enumerate(discover_reports())}
    all_entries = sorted(
        carried + entries,
        key=lambda e: (
            e.get("site") is not None,
            str(e.get("site") or ""),
            order.get(e["name"], len(order)),
        ),
    )
    files = {"index.html", "manifest.json"}
    for entry in all_entries:
        files.update(f for f in (entry["html"], entry["notebook"], *entry["tables"]) if f)
    site_folders = {
        e["site"]: Path(e["html"]).parent.as_posix() for e in all_entries if e.get("site")
    }
    files.update(f"{folder}/index.html" for folder in site_folders.values())
    manifest = {
        "package": DISTRIBUTION,
        "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dependencies": _dependencies(),
        "data": {
            "source": source,
            "rows": {
                name: shown_count(len(getattr(cohort, name)), values["min_cell"]) for name in TABLES
            },
        },
        "data_fingerprint": fingerprint,
        "parameters": parameters,
        "definitions": definitions(),
        "reports": all_entries,
        "files": sorted(files),
    }
    if plan is not None:
        manifest["sites"] = {
            "shown": sites,
            "withheld": list(plan.withheld),
            "patients_without_site": plan.unassigned,
            # populations hidden in addition per report set (a number, never a count)
            "linked_suppression": {folder or ".": len(p) for folder, p in linked.items()},
        }
    manifest = _jsonable(manifest)
    _write_text(staging / "index.html", _index_html(manifest))
    for site, folder in site_folders.items():
        _write_text(staging / folder / "index.html", _site_index_html(manifest, site, folder))
    _write_text(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    failures = {
        (f"site {e['site']} / " if e.get("site") else "") + e["name"]: e["reason"]
        for e in entries
        if e["status"] == "failed"
    }
    if failures:
        listed = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        kept = _keep_failed(staging, out, f"Failed reports: {listed}.")
        where = (
            f"the failed run is in {kept} (its index.html marks what failed)"
            if kept is not None
            else "the failed run could not be kept (no file was written, or it could not be moved)"
        )
        raise ReportsFailedError(
            f"{len(failures)} of {len(entries)} report(s) failed ({listed}). Nothing in {out} "
            f"was changed; {where}.",
            failures,
            kept,
            manifest,
        )
    # the audit reads the staging folder: a run it rejects never replaces the previous one
    _audit_written_reports(staging, values["min_cell"], cohort)
    _install(staging, out, previous, files)
    failed_before = out.parent / f"{out.name}.failed"
    if (failed_before / FAILED_MARKER).is_file() and not failed_before.is_symlink():
        _remove_tree(failed_before)  # the last run succeeded: no stale failure marker
    return manifest


#: File of a snapshot folder listing the populations its reports hide in addition.
LINKED_SUPPRESSION_FILE = "linked_suppression.json"


def _saved_tables(staging: Path) -> list[tuple[str, str, pd.DataFrame]]:
    """Every CSV table the run saved, as the audit reads it: ``(file, name, table)``."""
    from analysis.disclosure import _typed

    tables = []
    for path in sorted(staging.rglob("*.csv")):
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        tables.append((path.relative_to(staging).as_posix(), path.stem, _typed(df)))
    return tables


def _linked_site_suppression(staging: Path, plan: SitePlan, folders: dict, min_cell: int) -> dict:
    """The populations each report set of a ``--by-site`` run must hide in addition.

    Reads the tables the run saved (CSV files) and asks
    :func:`analysis.disclosure.linked_suppression`; empty when no site's hidden cell
    follows from the pooled reports and the other sites'.
    """
    from analysis.disclosure import linked_suppression

    return linked_suppression(
        _saved_tables(staging),
        {folders[site]: site for site in plan.shown},
        all_sites_reported=not plan.withheld and not plan.unassigned,
        min_cell=min_cell,
    )


def _linked_table_suppression(staging: Path, min_cell: int) -> dict:
    """The populations the reports of one set must hide in addition (``{"": [...]}``).

    Each table chooses its complementary suppression within its own margins, so two
    tables that count the same population (the patients of a route at a visit, in the
    rate table and in the mean-score table) can choose differently: one hides a cell that
    the other shows. When the saved tables (CSV files) show a hidden count elsewhere
    (``shown_elsewhere`` of :func:`analysis.disclosure.cross_table_findings`, a pass of
    a fraction of a second), :func:`analysis.disclosure.linked_suppression` decides
    which populations every table hides, with complementary suppression within each
    table, until nothing follows; empty otherwise. What this does not settle (a cell
    that several tables' margins determine together) the audit still refuses.
    """
    from analysis.disclosure import cross_table_findings, linked_suppression

    tables = _saved_tables(staging)
    if not (cross_table_findings(tables)["check"] == "shown_elsewhere").any():
        return {}
    return linked_suppression(tables, {}, all_sites_reported=True, min_cell=min_cell)


def _audit_written_reports(out: Path, min_cell: int, cohort) -> None:
    """The disclosure audit of everything written; raises naming the failing tables."""
    from analysis.disclosure import audit_report_dir

    audit_report_dir(
        out, min_cell, identifiers=cohort.patients["patient_id"].astype(str), raise_on_failure=True
    )


#: Chromium's flags for printing a report page: headless, no sandbox (containers), no
#: traffic of its own, no header or footer with the file path and date.
CHROMIUM_PDF_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-pdf-header-footer",
)


def export_pdf(
    pages: Iterable[str | Path], *, chromium: str | None = None, timeout: float = 180
) -> list[Path]:
    """Print report pages to PDF with headless Chromium (``anxiety-outcomes report --pdf``).

    Parameters
    ----------
    pages : iterable of str or Path
        HTML files (e.g. ``out_dir/02_outcomes.html``); each gets a PDF of the same name
        next to it.
    chromium : str, optional
        The browser executable; default the first of ``chromium``, ``chromium-browser``,
        ``google-chrome`` on the PATH (Debian: ``apt-get install chromium``).
    timeout : float
        Seconds allowed per page.

    Returns
    -------
    list of Path
        The PDF files written. A page of a report folder (one with the ``manifest.json``
        of :func:`run_reports` that lists the page) gets its PDF added to the manifest's
        ``files``, so the next run of that folder owns it: replaces it, or removes it when
        that run prints no PDF, and never takes it for a file of the user's.

    Raises
    ------
    FileNotFoundError
        No Chromium found, or a page does not exist.
    RuntimeError
        Chromium failed or wrote no PDF (its message is included).
    """
    import shutil
    import subprocess

    browser = chromium or next(
        (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    if browser is None or shutil.which(browser) is None:
        raise FileNotFoundError(
            "PDF export needs Chromium: install it (Debian/Ubuntu: `apt-get install "
            "chromium`) or pass its path."
        )
    written = []
    for page in map(Path, pages):
        if not page.is_file():
            raise FileNotFoundError(f"No report page at {page}.")
        pdf = page.with_suffix(".pdf")
        pdf.unlink(missing_ok=True)
        done = subprocess.run(
            [
                browser,
                *CHROMIUM_PDF_ARGS,
                f"--print-to-pdf={pdf.resolve()}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
            raise RuntimeError(
                f"Chromium could not print {page.name} to PDF (exit {done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )
        written.append(pdf)
    _record_in_manifests(written)
    return written


def _record_in_manifests(files: Iterable[Path]) -> None:
    """Add written files to the ``files`` of the report folder's ``manifest.json``.

    A later run then owns them like the pages they were printed from: it replaces them,
    or removes them when it does not write them again, and never mistakes them for
    the user's files. A page outside a report folder (no manifest of this package that
    lists the page) is left alone.
    """
    by_folder: dict[Path, list[str]] = {}
    for file in files:
        for folder in file.resolve().parents:
            manifest = _previous_manifest(folder)
            if manifest is None:
                continue
            rel = file.resolve().relative_to(folder).as_posix()
            if rel.removesuffix(".pdf") + ".html" in manifest["files"]:
                by_folder.setdefault(folder, []).append(rel)
            break
    for folder, rels in by_folder.items():
        path = folder / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["files"] = sorted(set(manifest.get("files", [])) | set(rels))
        _write_text(path, json.dumps(manifest, indent=2) + "\n")
