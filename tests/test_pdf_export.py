"""`anxiety-outcomes report --pdf`: the command line handed to Chromium and its failures.

The real browser runs in `make test-browser` (tests/browser/check_reports.py prints the
demo reports to PDF); here a stand-in executable records its arguments.
"""

from __future__ import annotations

import stat

import pytest

from analysis.reports import CHROMIUM_PDF_ARGS, export_pdf


def _fake_chromium(tmp_path, body: str):
    script = tmp_path / "fake-chromium"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_export_pdf_prints_each_page_next_to_it(tmp_path):
    log = tmp_path / "args.txt"
    chromium = _fake_chromium(
        tmp_path,
        f'echo "$@" >> {log}\n'
        'for a in "$@"; do case "$a" in --print-to-pdf=*) printf "%%PDF-1.4" > "${a#*=}";; '
        "esac; done\n",
    )
    pages = []
    for name in ("01_a.html", "02_b.html"):
        (tmp_path / name).write_text("<html><title>x</title></html>")
        pages.append(tmp_path / name)
    written = export_pdf(pages, chromium=str(chromium))
    assert [p.name for p in written] == ["01_a.pdf", "02_b.pdf"]
    assert all(p.read_bytes().startswith(b"%PDF") for p in written)
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    for flag in CHROMIUM_PDF_ARGS:
        assert flag in calls[0].split()
    assert calls[0].split()[-1] == pages[0].resolve().as_uri()


def test_export_pdf_reports_a_failing_browser(tmp_path):
    chromium = _fake_chromium(tmp_path, 'echo "cannot open display" >&2\nexit 3\n')
    (tmp_path / "01_a.html").write_text("<html></html>")
    with pytest.raises(RuntimeError, match=r"01_a.html to PDF \(exit 3\): cannot open display"):
        export_pdf([tmp_path / "01_a.html"], chromium=str(chromium))


def test_export_pdf_without_chromium_says_how_to_install(tmp_path):
    (tmp_path / "01_a.html").write_text("<html></html>")
    with pytest.raises(FileNotFoundError, match="apt-get install chromium"):
        export_pdf([tmp_path / "01_a.html"], chromium=str(tmp_path / "no-such-browser"))


def test_pdfs_of_a_report_folder_are_owned_by_its_manifest(tmp_path):
    # the next run replaces or removes what it owns; an unowned PDF would block or linger
    import json

    chromium = _fake_chromium(
        tmp_path,
        'for a in "$@"; do case "$a" in --print-to-pdf=*) printf "%%PDF-1.4" > "${a#*=}";; '
        "esac; done\n",
    )
    out = tmp_path / "reports"
    (out / "sites" / "s1").mkdir(parents=True)
    files = ["01_a.html", "manifest.json", "sites/s1/01_a.html"]
    manifest = {"package": "anxiety-outcomes", "files": files, "reports": []}
    (out / "manifest.json").write_text(json.dumps(manifest))
    for name in ("01_a.html", "sites/s1/01_a.html"):
        (out / name).write_text("<html></html>")
    elsewhere = tmp_path / "loose.html"
    elsewhere.write_text("<html></html>")
    export_pdf([out / "01_a.html", out / "sites/s1/01_a.html", elsewhere], chromium=str(chromium))
    listed = json.loads((out / "manifest.json").read_text())["files"]
    assert listed == sorted([*files, "01_a.pdf", "sites/s1/01_a.pdf"])
    assert (tmp_path / "loose.pdf").is_file() and not (tmp_path / "manifest.json").exists()
