"""Check rendered report folders in a real browser: headless Chromium via Playwright.

Run by ``make test-browser``. For every page of each folder (``index.html`` and each
report) it checks that every link resolves (files and ``#fragments``), every image loads,
the console shows no error, no element reaches past a 1280 px wide viewport, and it saves
a full-page screenshot under ``reports/screenshots/<folder>/`` for a human to look at;
then it prints the demo reports to PDF (``anxiety-outcomes report --pdf``) and checks
the files.
Without ``--skip-render`` it first renders the two folders it checks: the demo (500
synthetic patients) and a 40-patient cohort read from a data folder.

The browser is the system Chromium (Debian's ``chromium`` package); Playwright drives it
(``executable_path``), so no browser is downloaded. Every problem is collected and
listed before the script exits with status 1.

Usage::

    python tests/browser/check_reports.py [--out reports/browser] [--skip-render]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from analysis.reports import CHROMIUM_PDF_ARGS

#: The viewport every page must fit (no horizontal overflow).
VIEWPORT = {"width": 1280, "height": 900}

#: Chromium flags: headless, no sandbox (containers), and no traffic of its own: those of
#: the package's PDF export, without the print-only one.
CHROMIUM_ARGS = [arg for arg in CHROMIUM_PDF_ARGS if arg != "--no-pdf-header-footer"]

CHROMIUM = "/usr/bin/chromium"

_WIDE_ELEMENTS = """
(limit) => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > limit + 1 || r.width > limit + 1)) {
      out.push(`${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string'
        ? '.' + el.className.trim().split(/\\s+/).join('.') : ''} (right ${Math.round(r.right)} px)`);
    }
  }
  return out;
}
"""

_BROKEN_IMAGES = """
() => Array.from(document.images)
  .filter(img => !(img.complete && img.naturalWidth > 0))
  .map(img => (img.getAttribute('src') || '').slice(0, 60))
"""


def render(out: Path) -> list[Path]:
    """Render the demo reports and those of a 40-patient cohort folder under ``out``."""
    from analysis.reports import run_reports
    from analysis.schema import write_cohort
    from analysis.synthetic import synthetic_cohort

    demo, small = out / "demo", out / "cohort40"
    run_reports(None, demo)
    data = out / "cohort40-data"
    write_cohort(synthetic_cohort(n_patients=40, seed=7), data)
    run_reports(data, small)
    return [demo, small]


def _link_problems(page_path: Path, hrefs: list[str]) -> list[str]:
    problems = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.scheme in ("http", "https", "mailto"):
            problems.append(f"external link {href!r} (reports must work offline)")
            continue
        if parts.scheme not in ("", "file"):
            continue
        target = page_path if not parts.path else (page_path.parent / unquote(parts.path))
        if parts.scheme == "file":
            target = Path(unquote(parts.path))
        if not target.exists():
            problems.append(f"broken link {href!r}")
            continue
        if parts.fragment and target.suffix == ".html":
            text = target.read_text(encoding="utf-8")
            if f'id="{parts.fragment}"' not in text:
                problems.append(f"link {href!r}: no element with id {parts.fragment!r}")
    return problems


def check_folder(browser, folder: Path, shots: Path) -> list[str]:
    """Check every HTML page of one report folder; returns the problems found."""
    problems = []
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(folder.glob("*.html"))
    if not (folder / "index.html").exists():
        problems.append(f"{folder}: no index.html")
    for page_path in pages:
        name = f"{folder.name}/{page_path.name}"
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
        page.on("requestfailed", lambda r, e=errors: e.append(f"request failed: {r.url[:80]}"))
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(300)
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.getAttribute('href'))")
        problems += [f"{name}: {p}" for p in _link_problems(page_path, hrefs)]
        problems += [f"{name}: image not loaded {s!r}" for s in page.evaluate(_BROKEN_IMAGES)]
        problems += [f"{name}: console error {e}" for e in errors]
        wide = page.evaluate(_WIDE_ELEMENTS, VIEWPORT["width"])
        if wide:
            problems.append(f"{name}: {len(wide)} element(s) wider than the viewport: {wide[:5]}")
        if not page.title() or page.title() == "Notebook":
            problems.append(f"{name}: page has no title")
        page.screenshot(path=str(shots / f"{page_path.stem}.png"), full_page=True)
        page.close()
    return problems


def check_pdf(folder: Path, chromium: str) -> list[str]:
    """Print the folder's reports to PDF (``report --pdf``) and check each file is a PDF."""
    from analysis.reports import export_pdf

    pages = sorted(p for p in folder.glob("[0-9]*.html"))
    try:
        written = export_pdf(pages, chromium=chromium)
    except (FileNotFoundError, RuntimeError) as error:
        return [f"{folder.name}: PDF export failed: {error}"]
    return [
        f"{folder.name}/{pdf.name}: not a PDF of a report"
        for pdf in written
        if not pdf.read_bytes().startswith(b"%PDF") or pdf.stat().st_size < 20_000
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/browser", type=Path)
    parser.add_argument("--screenshots", default="reports/screenshots", type=Path)
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    folders = [args.out / "demo", args.out / "cohort40"] if args.skip_render else render(args.out)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            for folder in folders:
                problems += check_folder(browser, folder, args.screenshots / folder.name)
        finally:
            browser.close()
    problems += check_pdf(folders[0], args.chromium)
    for problem in problems:
        print(problem, file=sys.stderr)
    count = sum(1 for f in folders for _ in f.glob("*.html"))
    print(f"{count} pages checked, {len(problems)} problem(s); screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
