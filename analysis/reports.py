"""Batch rendering of the report notebooks.

Design contract:

- A report is a notebook ``notebooks/NN_name.ipynb`` of the source tree (found next to
  the package, ``Path(analysis.__file__).parent.parent / "notebooks"``, so the package
  is used installed in editable mode from the repository, as ``make report`` does). Its
  *name* is the file stem without the number prefix (``data_quality``); the stem
  (``01_data_quality``) is accepted wherever a name is.
- Every report notebook has a cell tagged ``parameters`` with ``data_dir=None``,
  ``n_patients=500``, ``seed=0``, ``min_cell=11`` and ``tables_dir=None``; it loads its
  data with :func:`load_report_cohort` and writes each table it shows with
  :func:`save_table`.
- :func:`run_reports` executes the notebooks with papermill on the current interpreter,
  renders them to HTML without code cells (page title: the report's heading), and
  writes ``index.html`` (the reports with one-line summaries, the provenance and the
  definitions) and ``manifest.json``. Only the manifest's ``created`` timestamp and
  the report pages' provenance headers depend on the date.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import analysis
from analysis.schema import TABLES

__all__ = [
    "NOTEBOOKS_DIR",
    "REPORT_PARAMETERS",
    "Report",
    "configure_display",
    "data_fingerprint",
    "definitions",
    "discover_reports",
    "export_pdf",
    "load_report_cohort",
    "run_reports",
    "save_table",
]

#: Where the report notebooks live: the ``notebooks/`` folder of the source tree.
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"

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
            f"No notebooks folder at {folder}. The reports run from a source checkout: "
            "install the package with `pip install -e .` from the repository."
        )
    found = []
    for path in folder.glob("*.ipynb"):
        match = _NOTEBOOK_NAME.match(path.name)
        if match:
            found.append((int(match[1]), Report(match[2], path.stem, path)))
    return [report for _, report in sorted(found, key=lambda item: (item[0], item[1].name))]


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


def load_report_cohort(data_dir: str | Path | None = None, n_patients: int = 500, seed: int = 0):
    """The cohort a report works on: a data folder, or the synthetic demo cohort.

    Parameters
    ----------
    data_dir : str or Path, optional
        Folder read with :func:`analysis.schema.load_cohort` (validated and checked for
        identifiers). ``None`` means ``synthetic_cohort(n_patients, seed)``.
    n_patients, seed : int
        Size and seed of the synthetic cohort (ignored when ``data_dir`` is given).

    Returns
    -------
    Cohort
    """
    if data_dir is None:
        from analysis.synthetic import synthetic_cohort

        return synthetic_cohort(n_patients=n_patients, seed=seed)
    from analysis.schema import load_cohort

    return load_cohort(data_dir)


def _canonical_column(values: pd.Series) -> pd.Series:
    """Text of each value that does not depend on the dtype the file format produced."""
    missing = values.isna()
    if pd.api.types.is_bool_dtype(values.dtype):
        text = values.map({True: "true", False: "false"}, na_action="ignore")
    elif pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype(float)
        integral = np.isfinite(numbers) & (numbers == np.round(numbers))
        text = numbers.map(lambda x: format(x, ".12g"), na_action="ignore")
        text[integral] = numbers[integral].map(lambda x: str(int(x)))
    else:
        text = values.map(
            lambda v: (
                {True: "true", False: "false"}.get(v, str(v)) if isinstance(v, bool) else str(v)
            ),
            na_action="ignore",
        )
    return text.astype(object).where(~missing, "")


def data_fingerprint(cohort) -> str:
    """SHA-256 of the canonical content of a cohort's tables.

    Canonical content: for each table in the order patients, assessments, sessions,
    adverse_events, its non-empty columns sorted by name and its rows as text sorted, with
    numbers written without their storage type (``12`` whether read as integer or
    float) and missing values empty. So the fingerprint is the same for the same data
    read from CSV or Parquet, in any row or column order, and changes when any value does.

    Parameters
    ----------
    cohort : Cohort

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> p = pd.DataFrame({"patient_id": ["a", "b"], "age": [30, 41]})
    >>> a = pd.DataFrame({"patient_id": ["a"], "instrument": ["GAD7"], "study_day": [0]})
    >>> fp = data_fingerprint(Cohort(p, a))
    >>> fp == data_fingerprint(Cohort(p.iloc[::-1].astype({"age": float}), a))
    True
    >>> fp == data_fingerprint(Cohort(p.assign(age=[30, 42]), a))
    False
    """
    digest = hashlib.sha256()
    for name in TABLES:
        table = getattr(cohort, name, None)
        if table is None:
            table = pd.DataFrame()
        table = table.dropna(axis=1, how="all")
        columns = sorted(map(str, table.columns))
        table = table.set_axis([str(c) for c in table.columns], axis=1)
        text = pd.DataFrame({c: _canonical_column(table[c]) for c in columns}, index=table.index)
        rows = sorted("\x1f".join(row) for row in text.itertuples(index=False, name=None))
        digest.update(f"\x1e{name}\x1d{chr(0x1F).join(columns)}\x1d{len(rows)}\n".encode())
        for row in rows:
            digest.update(row.encode() + b"\n")
    return digest.hexdigest()


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
    (interactive use) nothing is written.

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
        ``df`` itself.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> t = save_table(pd.DataFrame({"n": [12]}), "counts", folder)
    >>> (pathlib.Path(folder) / "counts.csv").read_text()
    'n\\n12\\n'
    """
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise ValueError(
            f"A table name must be lower-case letters, digits and underscores "
            f"(e.g. 'completeness'), but {name!r} was passed."
        )
    if tables_dir is not None:
        folder = Path(tables_dir)
        folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    return df


def _kernel_manager_class():
    """A kernel manager that runs ipykernel on this interpreter, whatever kernelspecs exist.

    The ``python3`` kernelspec found first on the Jupyter path may belong to another
    interpreter (a user-wide install); the reports must run on the one that has this
    package, so the spec is ipykernel's own, built for ``sys.executable``. The kernel
    talks over local IPC sockets rather than TCP.
    """
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class CurrentPythonKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            # Local sockets: cohort data never travels over (unencrypted) TCP.
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

        @property
        def kernel_spec(self):
            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

    return CurrentPythonKernelManager


def _render_html(notebook_path: Path) -> str:
    """HTML of an executed notebook without code cells or prompts."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    notebook = nbformat.read(notebook_path, as_version=4)
    # The page <title>: the report's heading (nbconvert would write "Notebook").
    notebook.metadata["title"] = f"{_title(notebook_path, notebook_path.stem)} | anxiety-outcomes"
    body, _ = exporter.from_notebook_node(notebook)
    # No third-party scripts (require.js, MathJax from a CDN): the pages need none, work
    # offline, and a report on patients' data does not call out to other servers.
    body = re.sub(r'<script src="https?://[^"]*">\s*</script>\s*', "", body)
    return body.replace("</head>", f"{_PAGE_STYLE}</head>", 1)


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
    for key, value in merged.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
            raise ValueError(f"`{key}` must be a non-negative integer, but {value!r} was passed.")
    return {k: int(v) for k, v in merged.items()}


def _index_html(manifest: dict) -> str:
    esc = html.escape
    rows = "\n".join(
        f'<li><a href="{esc(r["html"])}">{esc(r["title"])}</a>: {esc(r.get("summary", ""))} '
        f'(<a href="{esc(r["notebook"])}">notebook</a>'
        + "".join(f', <a href="{esc(t)}">{esc(Path(t).stem)}.csv</a>' for t in r["tables"])
        + ")</li>"
        for r in manifest["reports"]
    )
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
<ul>
{rows}
</ul>
<h2>Provenance</h2>
<table>
<tr><th>package version</th><td>{esc(manifest["package_version"])}</td></tr>
<tr><th>data</th><td>{esc(manifest["data"]["source"])}</td></tr>
<tr><th>data fingerprint (SHA-256)</th><td><code>{esc(manifest["data_fingerprint"])}</code></td></tr>
{params}
</table>
<p>Definitions, parameters and every file: <a href="manifest.json">manifest.json</a>.</p>
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
    """Installed versions of the package's direct dependencies (for ``manifest.json``)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    out = {"python": sys.version.split()[0]}
    for requirement in requires("anxiety-outcomes") or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
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


def run_reports(
    data_dir: str | Path | None = None,
    out_dir: str | Path = "reports",
    reports: Sequence[str] | None = None,
    *,
    progress: bool = True,
    **params,
) -> dict:
    """Execute the report notebooks and write HTML, tables, ``index.html`` and a manifest.

    Parameters
    ----------
    data_dir : str or Path, optional
        Cohort folder (see :func:`analysis.schema.load_cohort`). ``None`` runs the reports
        on the synthetic demo cohort (``n_patients=500, seed=0`` unless overridden).
    out_dir : str or Path
        Output folder (created when missing; files of the same name are replaced).
    reports : sequence of str, optional
        Reports to run, by name (``"data_quality"``) or file stem (``"01_data_quality"``);
        default all.
    progress : bool
        Print one line per report to stderr (``[1/1] data_quality: executing ... done in
        4.2 s``).
    **params
        Notebook parameters: ``n_patients``, ``seed`` (synthetic cohort), ``min_cell``
        (small-cell suppression, default 11).

    Returns
    -------
    dict
        The manifest, also written to ``out_dir/manifest.json``: ``package``,
        ``package_version``, ``created`` (UTC timestamp of the run), ``dependencies``
        (installed versions of Python and of every dependency), ``data`` (source and
        rows per table), ``data_fingerprint``
        (:func:`data_fingerprint`), ``parameters``, ``definitions`` (:func:`definitions`),
        ``reports`` (per report its name, title, one-line summary and files) and ``files`` (every file
        written, relative to ``out_dir``).

    Raises
    ------
    DataValidationError
        When ``data_dir`` holds invalid or identifying data (before any notebook runs).
    RuntimeError
        When a notebook fails; the executed notebook with the error is kept in
        ``out_dir``.

    Notes
    -----
    Output files per report ``NN_name``: ``NN_name.html`` (no code cells),
    ``NN_name.ipynb`` (executed) and ``tables/name/*.csv``.
    """
    import papermill

    chosen = _select(discover_reports(), reports)
    values = _check_params(params)
    cohort = load_report_cohort(data_dir, values["n_patients"], values["seed"])
    if data_dir is None:
        parameters = {"data_dir": None, **values}
        source = f"synthetic_cohort(n_patients={values['n_patients']}, seed={values['seed']})"
    else:
        parameters = {"data_dir": str(data_dir), "min_cell": values["min_cell"]}
        source = str(data_dir)
    # Absolute: papermill runs the kernel (and resolves paths) in ``cwd``.
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, report in enumerate(chosen, 1):
        executed = out / f"{report.stem}.ipynb"
        tables_dir = out / "tables" / report.name
        for old in tables_dir.glob("*.csv"):
            old.unlink()
        started = time.perf_counter()
        if progress:
            print(
                f"[{k}/{len(chosen)}] {report.name}: executing ...",
                end="",
                file=sys.stderr,
                flush=True,
            )
        try:
            papermill.execute_notebook(
                str(report.path),
                str(executed),
                parameters={
                    **values,
                    "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                    "tables_dir": str(tables_dir),
                },
                kernel_name="python3",
                kernel_manager_class=_kernel_manager_class(),
                progress_bar=False,  # one line per report instead (see `progress`)
                cwd=str(out),
            )
        except papermill.PapermillExecutionError as error:
            if progress:
                print(" failed", file=sys.stderr)
            raise RuntimeError(
                f"Report {report.name!r} failed in cell {error.exec_count}: {error.ename}: "
                f"{error.evalue}. The executed notebook is {executed}."
            ) from error
        html_path = out / f"{report.stem}.html"
        html_path.write_text(_render_html(executed), encoding="utf-8")
        if progress:
            print(f" done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        entries.append(
            {
                "name": report.name,
                "title": _title(report.path, report.name),
                "summary": _summary(report.path),
                "notebook": executed.name,
                "html": html_path.name,
                "tables": sorted(p.relative_to(out).as_posix() for p in tables_dir.glob("*.csv")),
            }
        )
    manifest = {
        "package": "anxiety-outcomes",
        "package_version": analysis.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dependencies": _dependencies(),
        "data": {
            "source": source,
            "rows": {name: len(getattr(cohort, name)) for name in TABLES},
        },
        "data_fingerprint": data_fingerprint(cohort),
        "parameters": parameters,
        "definitions": definitions(),
        "reports": entries,
        "files": [],
    }
    files = ["index.html", "manifest.json"]
    for entry in entries:
        files += [entry["html"], entry["notebook"], *entry["tables"]]
    manifest["files"] = sorted(files)
    (out / "index.html").write_text(_index_html(manifest), encoding="utf-8")
    (out / "manifest.json").write_text(
        json.dumps(_jsonable(manifest), indent=2) + "\n", encoding="utf-8"
    )
    return manifest


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
        The PDF files written.

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
    return written
