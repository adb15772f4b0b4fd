"""The ``anxiety-outcomes`` command: render the reports, validate a data folder, write demo data.

Exit codes (the same for every command):

- 0 success;
- 1 invalid data (the failure summary goes to stderr), or a report that failed to run
  (the previous reports are left untouched; the failed run is kept in ``<out>.failed``);
- 2 usage errors: an unknown option or report, an argument out of range (``--min-cell 0``),
  a missing data folder, an output folder that is refused (a file, inside the package, a
  folder holding a cohort);
- 3 environment: the disk is full, a folder is not writable or readable, a dependency is
  missing.

Every error is one line on stderr (the invalid-data summary lists its checks) with no
traceback; ``--debug`` shows the traceback. Arguments are checked before anything runs.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis._utils import missing_extra
from analysis._version import __version__
from analysis.reports import REPORT_PARAMETERS

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3


class UsageError(ValueError):
    """An argument value that cannot be used (exit code 2)."""


def _integer(low: int):
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts (pass as ``parents=[...]`` to a new subcommand)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anxiety-outcomes",
        description="GAD-7 and HAM-A outcome reports for ketamine treatment programs.",
        epilog="Exit codes: 0 success, 1 invalid data or a failed report, 2 usage error, "
        "3 environment (disk full, permission, missing dependency).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common_options()]

    report = commands.add_parser(
        "report",
        parents=common,
        help="render every report (HTML, executed notebooks, tables, manifest)",
        description="Execute the report notebooks on a cohort folder (default: the "
        "synthetic demo cohort) and write index.html, one HTML per report, the executed "
        "notebooks, the tables as CSV and manifest.json to --out. The run renders into a "
        "fresh folder beside --out and moves into place only when every report succeeded; "
        "a failed run leaves --out untouched and is kept in <out>.failed. Files in --out "
        "that no earlier run wrote are never deleted or overwritten.",
    )
    report.add_argument(
        "data_dir", nargs="?", metavar="DATA_DIR", help="cohort folder (default: synthetic demo)"
    )
    report.add_argument("--out", default="reports", metavar="DIR", help="output folder")
    report.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="reports to run, by name (data_quality) or file stem (01_data_quality); the "
        "other reports already in --out stay in its index",
    )
    report.add_argument(
        "--patients",
        type=_integer(1),
        default=REPORT_PARAMETERS["n_patients"],
        metavar="N",
        help="synthetic cohort size (default %(default)s)",
    )
    report.add_argument(
        "--seed", type=_integer(0), default=REPORT_PARAMETERS["seed"], help="synthetic cohort seed"
    )
    report.add_argument(
        "--min-cell",
        type=_integer(1),
        default=REPORT_PARAMETERS["min_cell"],
        metavar="K",
        help="smallest count shown besides 0, at least 1 (default %(default)s: no cell of 1-10)",
    )
    report.add_argument(
        "--jobs",
        type=_integer(1),
        default=None,
        metavar="N",
        help="notebooks rendered at once, each in its own process (default min(2, CPUs)); "
        "the reports are the same whatever N",
    )
    report.add_argument(
        "--by-site",
        action="store_true",
        help="also render one set of reports per site (patients.site_id) under sites/<site>/; "
        "a site of fewer than --min-cell patients is not reported separately",
    )
    report.add_argument("--quiet", action="store_true", help="no progress lines")
    report.add_argument(
        "--pdf",
        action="store_true",
        help="also print each report to PDF with headless Chromium (needs `chromium`)",
    )

    validate = commands.add_parser(
        "validate",
        parents=common,
        help="check a cohort folder against the schema and the de-identification guard",
    )
    validate.add_argument("data_dir", metavar="DATA_DIR")
    validate.add_argument(
        "--strict", action="store_true", help="count findings as errors (exit 1 on any)"
    )
    validate.add_argument(
        "--failures",
        metavar="FILE.csv",
        help="write every error and finding (one row per cell, row or column) to FILE.csv",
    )

    synth = commands.add_parser(
        "synth",
        parents=common,
        help="write a synthetic cohort folder",
        description="Write a synthetic (invented) cohort. A folder that already holds a "
        "cohort is refused unless --force.",
    )
    synth.add_argument("--patients", type=_integer(1), default=500, metavar="N")
    synth.add_argument("--seed", type=_integer(0), default=0, metavar="S")
    synth.add_argument("--out", required=True, metavar="DIR")
    synth.add_argument("--format", choices=["csv", "parquet"], default="csv")
    synth.add_argument(
        "--force", action="store_true", help="replace the cohort tables of a folder holding one"
    )
    _add_audit_parser(commands, common)
    _add_import_parser(commands, common)
    return parser


def _add_audit_parser(commands, common) -> None:
    audit = commands.add_parser(
        "audit",
        parents=common,
        help="check a report folder for small counts, recoverable cells and identifiers",
        description="Audit a folder of rendered reports (HTML, CSV, executed notebooks, "
        "manifest.json) against the disclosure policy: no count of 1 to K-1, no hidden "
        "cell recoverable from a shown total, no identifier. Exit 1 when it fails.",
    )
    audit.add_argument("report_dir", metavar="REPORT_DIR")
    audit.add_argument(
        "--min-cell",
        type=_integer(1),
        default=None,
        metavar="K",
        help="smallest count allowed besides 0 (default: the manifest's, else 11)",
    )


def _audit(args) -> int:
    from analysis.disclosure import audit_report_dir

    if not Path(args.report_dir).is_dir():
        print(f"anxiety-outcomes audit: no folder {args.report_dir}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = audit_report_dir(args.report_dir, args.min_cell)
    except ValueError as error:  # a bad --min-cell
        print(f"anxiety-outcomes audit: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(result.message(), file=sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_INVALID


def _add_import_parser(commands, common) -> None:
    """``import {wide,redcap,fhir} SOURCE --map MAP --key KEYFILE --out COHORT_DIR``."""
    parser = commands.add_parser(
        "import",
        parents=common,
        help="turn a wide sheet, REDCap export or FHIR resources into a de-identified cohort",
        description="Read a clinic's data through a mapping (YAML/JSON), turn dates into "
        "study days (day 0: first ketamine session) and identifiers into keyed pseudonyms, "
        "drop every unmapped column, and write a cohort folder with import_log.json. The "
        "source is only read. Exit codes: 0 written, 1 invalid data, 2 usage (mapping, "
        "existing cohort, missing file), 3 environment (unreadable key, missing reader).",
    )
    parser.add_argument("kind", choices=["wide", "redcap", "fhir"], help="kind of source")
    parser.add_argument(
        "source", metavar="SOURCE", help="sheet (.csv/.parquet/.xlsx), REDCap CSV, FHIR file/folder"
    )
    parser.add_argument("--map", required=True, metavar="MAP", help="mapping file (.yaml/.json)")
    parser.add_argument(
        "--key", required=True, metavar="KEYFILE", help="site key file (created if absent)"
    )
    parser.add_argument("--out", required=True, metavar="COHORT_DIR", help="folder to write")
    parser.add_argument("--dictionary", metavar="FILE", help="REDCap data dictionary (redcap)")
    parser.add_argument("--sessions", metavar="FILE", help="separate session log (wide)")
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--force", action="store_true", help="replace a cohort in COHORT_DIR")


def _summary(cohort) -> str:
    return (
        f"{len(cohort.patients)} patients, {len(cohort.assessments)} assessments, "
        f"{len(cohort.sessions)} sessions, {len(cohort.adverse_events)} adverse events"
    )


def _data_folder(data_dir: str) -> Path:
    path = Path(data_dir)
    if not path.exists():
        raise UsageError(f"no folder {data_dir}")
    if not path.is_dir():
        raise UsageError(f"{data_dir} is a file; DATA_DIR is the folder holding the tables")
    return path


def _validate(args) -> int:
    """Errors and findings per check: count, first spreadsheet lines, safe values, fix."""
    from analysis.schema import TABLES, validate_cohort

    folder = _data_folder(args.data_dir)
    try:
        report = validate_cohort(folder)
    except FileNotFoundError as error:  # a required table file is missing
        if error.filename is not None:  # the OS could not read something: environment
            raise
        raise _InvalidData(str(error)) from error
    if args.strict:
        report = report.strict()
    if args.failures:  # errors with their values as in `.failures`, findings as listed
        import pandas as pd

        listing = pd.concat([report.errors, report.findings], ignore_index=True)
        listing = listing.drop(columns="value").join(
            pd.concat([report.failures["value"], report.findings["value"]], ignore_index=True)
        )
        listing.to_csv(args.failures, index=False)
    if not report.ok:
        print(report.describe(), file=sys.stderr)
        print(
            "Invalid: nothing was loaded. Lines are those a spreadsheet shows (header = "
            "line 1); data_schema/README.md describes every column.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    cohort = report.tables
    counts = {t: len(cohort[t]) if t in cohort else "no" for t in TABLES}
    not_collected = [t for t in TABLES if t not in report.collected]
    line = (
        f"valid: {counts['patients']} patients, {counts['assessments']} assessments, "
        f"{counts['sessions']} sessions, {counts['adverse_events']} adverse events"
    )
    if not_collected:
        line += f" ({', '.join(not_collected)} not collected in this data set)"
    if len(report.findings):
        line += f"; {len(report.findings)} finding(s) (loaded, accounted):"
    print(line)
    if len(report.findings):
        print(report.describe())
    return EXIT_OK


class _InvalidData(Exception):
    """Data that cannot be read as a cohort (exit code 1)."""


def _report(args) -> int:
    from analysis.reports import (
        OutputFolderError,
        check_output_folder,
        check_report_names,
        run_reports,
    )
    from analysis.schema import DataValidationError

    # Every argument is checked before anything runs (usage errors, exit code 2).
    if args.data_dir is not None:
        _data_folder(args.data_dir)
    try:
        check_report_names(args.only)
        check_output_folder(args.out, args.data_dir)
    except ValueError as error:
        raise UsageError(str(error)) from error
    try:
        manifest = run_reports(
            args.data_dir,
            args.out,
            args.only,
            progress=not args.quiet,
            jobs=args.jobs,
            by_site=args.by_site,
            n_patients=args.patients,
            seed=args.seed,
            min_cell=args.min_cell,
        )
    except OutputFolderError as error:  # files in --out no earlier run wrote
        raise UsageError(str(error)) from error
    except FileNotFoundError as error:
        if error.filename is None:  # load_cohort: a required table file is missing
            raise _InvalidData(str(error)) from error
        raise
    except (DataValidationError, OSError):
        raise
    except ValueError as error:  # a table file missing or unreadable as a cohort
        raise _InvalidData(str(error)) from error
    if args.pdf:
        from analysis.reports import export_pdf

        try:
            export_pdf(Path(args.out) / r["html"] for r in manifest["reports"])
        except (FileNotFoundError, RuntimeError) as error:  # no chromium, or it failed
            raise UsageError(f"--pdf: {error}") from error
    print(Path(args.out) / "index.html")
    return EXIT_OK


def _synth(args) -> int:
    from analysis.reports import package_folder_of
    from analysis.schema import write_cohort
    from analysis.synthetic import synthetic_cohort

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder")
    inside = package_folder_of(out)
    if inside is not None:
        raise UsageError(
            f"--out {args.out} is inside the package folder {inside}/; choose another folder"
        )
    tables = ("patients", "assessments", "sessions", "adverse_events")
    held = sorted(p.name for p in out.glob("*.*") if p.stem in tables) if out.is_dir() else []
    if held and not args.force:
        raise UsageError(
            f"--out {args.out} already holds a cohort ({', '.join(held)}); synthetic data "
            "would replace it. Choose an empty folder, or pass --force to replace it."
        )
    cohort = synthetic_cohort(n_patients=args.patients, seed=args.seed)
    write_cohort(cohort, out, format=args.format)
    print(f"wrote {_summary(cohort)} to {args.out}")
    return EXIT_OK


def _environment_message(error: OSError) -> str:
    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error)
    hint = {
        errno.ENOSPC: "free some disk space and run again",
        errno.EACCES: "choose a folder you can write to (or read, for the data)",
        errno.EPERM: "choose a folder you can write to (or read, for the data)",
        errno.EROFS: "choose a folder on a writable file system",
        errno.EDQUOT: "free some space within your quota and run again",
    }.get(error.errno or 0, "check the folder and run again")
    notes = " ".join(getattr(error, "__notes__", []))
    return f"cannot use{where}: {reason}; {hint}.{' ' + notes if notes else ''}"


def _import(args) -> int:
    from analysis.intake import MappingError, import_source
    from analysis.schema import DataValidationError

    name = "anxiety-outcomes import"
    for label, path in (("source", args.source), ("mapping", args.map)):
        if not Path(path).exists():
            print(f"{name}: no {label} {path}", file=sys.stderr)
            return EXIT_USAGE
    try:
        cohort = import_source(
            args.kind,
            args.source,
            args.map,
            args.out,
            key=args.key,
            dictionary=args.dictionary,
            sessions=args.sessions,
            force=args.force,
            format=args.format,
        )
    except DataValidationError as error:
        print(str(error), file=sys.stderr)
        return EXIT_INVALID
    except (MappingError, FileExistsError, FileNotFoundError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ImportError, PermissionError, OSError) as error:  # a reader missing, key unreadable
        print(f"{name}: {error}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except ValueError as error:  # a usage problem (key inside --out, no dictionary, ...)
        print(f"{name}: {error}", file=sys.stderr)
        return EXIT_USAGE
    log = cohort.import_log
    left_out = sum(log["rows_left_out"].values())
    print(
        f"wrote {_summary(cohort)} to {args.out}; {len(log['columns_dropped'])} source "
        f"column(s) dropped, {left_out} row(s) left out (see {args.out}/import_log.json)"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 success, 1 invalid data or a failed report, 2 usage error, 3 environment (disk
        full, permission, missing dependency). Errors are one line on stderr; ``--debug``
        (before or after the command) re-raises them with the traceback.

    Examples
    --------
    >>> main(["--version"])
    anxiety-outcomes ...
    0
    >>> main(["report", "--min-cell", "0"])
    2
    """
    from analysis.disclosure import DisclosureAuditError
    from analysis.reports import ReportsFailedError
    from analysis.schema import DataValidationError

    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 0 after --help/--version, 2 on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    prefix = f"anxiety-outcomes {args.command}:"
    try:
        handlers = {
            "report": _report,
            "validate": _validate,
            "synth": _synth,
            "audit": _audit,
            "import": _import,
        }
        return handlers[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix} interrupted", file=sys.stderr)
        return 130
    except DataValidationError as error:
        if debug:
            raise
        print(str(error), file=sys.stderr)
        return EXIT_INVALID
    except _InvalidData as error:
        if debug:
            raise
        print(f"{prefix} {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_INVALID
    except (ReportsFailedError, DisclosureAuditError) as error:
        if debug:
            raise
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as error:
        if debug:
            raise
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        if debug:
            raise
        print(f"{prefix} {_environment_message(error)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except ImportError as error:
        if debug:
            raise
        name = getattr(error, "name", None) or str(error)
        hint = missing_extra(name) or (
            f"{name}; reinstall anxiety-outcomes with its dependencies "
            '(pip install --force-reinstall "anxiety-outcomes[reports]"; in a clone: make install)'
        )
        print(f"{prefix} missing dependency {hint}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as error:
        if debug:
            raise
        print(
            f"{prefix} unexpected error {type(error).__name__}: {' '.join(str(error).split())} "
            "(a bug: rerun with --debug and report the traceback)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    finally:
        sys.stdout.flush()
