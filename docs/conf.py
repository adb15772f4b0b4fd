"""Sphinx configuration of the anxiety-outcomes documentation (``make docs``).

Pages generated at build time from the code, so they cannot drift from it (written to
``docs/generated/``, which git ignores):

- ``generated/definitions.md``: the definitions ``analysis.reports.definitions()`` returns,
  the same call that writes them into every report's ``manifest.json``;
- ``generated/data_schema.md``: one table per Table Schema file of ``data_schema/``, plus
  the data managers' guide ``data_schema/README.md``;
- ``generated/api_*.rst``: the API reference lists, from ``analysis.__all__`` and the
  ``__all__`` of ``analysis.tables``, ``analysis.plots`` and ``analysis.reports``.

The rendered demo reports (``make docs`` renders them into ``_build/demo-reports`` first)
are copied into the site as ``demo-reports/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import analysis
from analysis.reports import definitions
from analysis.schema import TABLES, read_schema

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "generated"
DEMO_REPORTS = DOCS / "_build" / "demo-reports"

project = "anxiety-outcomes"
author = "anxiety-outcomes contributors"
copyright = "the anxiety-outcomes contributors, Apache-2.0"
release = analysis.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters section is the signature's prose
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Offline builds: no inventories are fetched; references to pandas etc. stay plain text.
intersphinx_mapping: dict = {}

html_theme = "pydata_sphinx_theme"
html_title = f"anxiety-outcomes {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_static_path: list[str] = []


# ------------------------------------------------------------------------ generated pages


def _table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def definitions_page() -> str:
    """The definitions of manifest.json as tables, and as the JSON itself."""
    defs = definitions()
    out = [
        "# Definitions used by the reports\n",
        "Generated from `analysis.reports.definitions()`, the call that writes the "
        "`definitions` entry of every report's `manifest.json`: what is shown here is what "
        "the reports use. Every threshold is a field of `Criteria` and can be overridden "
        "(`derive_endpoints(..., criteria={...})`); the visit schedule through `schedule=`.\n",
    ]
    for name, spec in defs.get("instruments", {}).items():
        out.append(f"## {name}: {spec.get('title', '')}\n")
        out.append(f"Source: {spec.get('source', '')}\n")
        facts = [[k, spec[k]] for k in ("n_items", "item_max", "total_max", "max_missing_items")]
        facts += [[f"subscale {k}", ", ".join(map(str, v))] for k, v in spec["subscales"].items()]
        out.append(_table(["property", "value"], facts))
        out.append("Criteria (defaults):\n")
        out.append(_table(["criterion", "value"], list(spec.get("criteria", {}).items())))
        out.append("Severity bands (lower bound of each band):\n")
        bands = [
            [
                band["name"],
                ", ".join(
                    f"{low} {lab}" for low, lab in zip(band["lower"], band["labels"], strict=True)
                ),
                band.get("source", ""),
            ]
            for band in spec.get("severity_bands", {}).values()
        ]
        out.append(_table(["bands", "lower bound and label", "source"], bands))
    if "schedule" in defs:
        out.append("## Visit schedule\n")
        out.append("Windows are inclusive study days; day 0 is the first ketamine session.\n")
        rows = [
            [
                v["name"],
                v["target_day"],
                f"{v['window_low']}..{v['window_high']}",
                ", ".join(v["instruments"]),
            ]
            for v in defs["schedule"]
        ]
        out.append(_table(["visit", "target day", "window", "instruments"], rows))
    out.append("## As written to manifest.json\n")
    out.append("```json\n" + json.dumps(defs, indent=2, default=str) + "\n```\n")
    return "\n".join(out)


def data_schema_page() -> str:
    """One table per Table Schema file, then the data managers' README."""
    out = [
        "# Data schema\n",
        "Generated from the Frictionless Table Schema files of `data_schema/`, the files "
        "the package builds its validators from (shipped inside the package as "
        "`analysis/data_schema/`). The guide for data managers follows the field tables.\n",
    ]
    for table in TABLES:
        schema = read_schema(table)
        out.append(f"## `{table}`\n")
        out.append(schema.get("description", "") + "\n")
        keys = schema.get("primaryKey")
        if keys:
            out.append(f"Primary key: `{', '.join([keys] if isinstance(keys, str) else keys)}`.\n")
        rows = []
        for f in schema["fields"]:
            c = dict(f.get("constraints", {}))
            required = "yes" if c.pop("required", False) else "no"
            rules = "; ".join(f"{k} {json.dumps(v)}" for k, v in c.items())
            rows.append(
                [f"`{f['name']}`", f.get("type", "any"), required, rules, f.get("description", "")]
            )
        out.append(_table(["column", "type", "required", "constraints", "description"], rows))
    readme = (ROOT / "data_schema" / "README.md").read_text(encoding="utf-8")
    # The README's own title becomes a section of this page.
    out.append("#" + readme)
    return "\n".join(out)


def api_pages() -> dict[str, str]:
    import analysis.plots
    import analysis.reports
    import analysis.tables

    def listing(title: str, module: str, names: list[str], intro: str) -> str:
        lines = [title, "=" * len(title), "", intro, "", f".. currentmodule:: {module}", ""]
        lines += [".. autosummary::", "   :toctree: api", ""]
        lines += [f"   {name}" for name in names]
        return "\n".join(lines) + "\n"

    public = set(analysis.__all__)
    pages = {
        "api_analysis.rst": listing(
            "The analysis namespace",
            "analysis",
            sorted(analysis.__all__, key=str.lower),
            "Everything another analysis needs: ``from analysis import rate_table``. "
            "The statistics need only the core dependencies; figures and report "
            "rendering need the ``plots`` and ``reports`` extras.",
        )
    }
    for module in (analysis.tables, analysis.plots, analysis.reports):
        short = module.__name__.split(".")[-1]
        names = [n for n in module.__all__ if n not in public]
        pages[f"api_{short}.rst"] = listing(
            f"analysis.{short}",
            module.__name__,
            names,
            (module.__doc__ or "").strip().splitlines()[0]
            + " Names also in the ``analysis`` namespace are documented there.",
        )
    return pages


def write_generated() -> None:
    GENERATED.mkdir(exist_ok=True)
    pages = {"definitions.md": definitions_page(), "data_schema.md": data_schema_page()}
    pages.update(api_pages())
    for name, text in pages.items():
        path = GENERATED / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def copy_demo_reports(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not (DEMO_REPORTS / "index.html").is_file():
        raise FileNotFoundError(
            f"No rendered demo reports in {DEMO_REPORTS}: run `make docs` (it renders them "
            "first) or `anxiety-outcomes report --out docs/_build/demo-reports`."
        )
    shutil.copytree(DEMO_REPORTS, Path(app.outdir) / "demo-reports", dirs_exist_ok=True)


# Written when the configuration is read: Sphinx lists the source files before any event
# an extension could use, and autosummary stubs only the pages it finds then.
write_generated()


def setup(app):
    app.connect("build-finished", copy_demo_reports)
