"""The ``anxiety-outcomes`` command: render the reports, validate a data folder, write demo data.

Exit codes: 0 success; 1 invalid data (the failure summary goes to stderr) or a report
that failed to run; 2 usage errors (unknown option or report, missing data folder).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import analysis
from analysis.reports import REPORT_PARAMETERS

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anxiety-outcomes",
        description="GAD-7 and HAM-A outcome reports for ketamine treatment programs.",
        epilog="Exit codes: 0 success, 1 invalid data or failed report, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {analysis.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = commands.add_parser(
        "report",
        help="render every report (HTML, executed notebooks, tables, manifest)",
        description="Execute the report notebooks on a cohort folder (default: the "
        "synthetic demo cohort) and write index.html, one HTML per report, the executed "
        "notebooks, the tables as CSV and manifest.json to --out.",
    )
    report.add_argument(
        "data_dir", nargs="?", metavar="DATA_DIR", help="cohort folder (default: synthetic demo)"
    )
    report.add_argument("--out", default="reports", metavar="DIR", help="output folder")
    report.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="reports to run, by name (data_quality) or file stem (01_data_quality)",
    )
    report.add_argument(
        "--patients",
        type=int,
        default=REPORT_PARAMETERS["n_patients"],
        metavar="N",
        help="synthetic cohort size (default %(default)s)",
    )
    report.add_argument(
        "--seed", type=int, default=REPORT_PARAMETERS["seed"], help="synthetic cohort seed"
    )
    report.add_argument(
        "--min-cell",
        type=int,
        default=REPORT_PARAMETERS["min_cell"],
        metavar="K",
        help="smallest count shown besides 0 (default %(default)s: no cell of 1-10)",
    )
    report.add_argument("--quiet", action="store_true", help="no progress lines")
    report.add_argument(
        "--pdf",
        action="store_true",
        help="also print each report to PDF with headless Chromium (needs `chromium`)",
    )

    validate = commands.add_parser(
        "validate",
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

    synth = commands.add_parser("synth", help="write a synthetic cohort folder")
    synth.add_argument("--patients", type=int, default=500, metavar="N")
    synth.add_argument("--seed", type=int, default=0, metavar="S")
    synth.add_argument("--out", required=True, metavar="DIR")
    synth.add_argument("--format", choices=["csv", "parquet"], default="csv")
    return parser


def _summary(cohort) -> str:
    return (
        f"{len(cohort.patients)} patients, {len(cohort.assessments)} assessments, "
        f"{len(cohort.sessions)} sessions, {len(cohort.adverse_events)} adverse events"
    )


def _validate(args) -> int:
    """Errors and findings per check: count, first spreadsheet lines, safe values, fix."""
    from analysis.schema import TABLES, validate_cohort

    if not Path(args.data_dir).is_dir():
        print(f"anxiety-outcomes validate: no folder {args.data_dir}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = validate_cohort(args.data_dir)
    except FileNotFoundError as error:  # a required table file is missing
        print(f"anxiety-outcomes validate: {error}", file=sys.stderr)
        return EXIT_INVALID
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


def _report(args) -> int:
    from analysis.reports import run_reports
    from analysis.schema import DataValidationError

    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        print(f"anxiety-outcomes report: no folder {args.data_dir}", file=sys.stderr)
        return EXIT_USAGE
    try:
        manifest = run_reports(
            args.data_dir,
            args.out,
            args.only,
            progress=not args.quiet,
            n_patients=args.patients,
            seed=args.seed,
            min_cell=args.min_cell,
        )
    except DataValidationError as error:
        print(str(error), file=sys.stderr)
        return EXIT_INVALID
    except FileNotFoundError as error:  # a required table file is missing
        print(f"anxiety-outcomes report: {error}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as error:  # unknown report or bad parameter
        print(f"anxiety-outcomes report: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as error:  # a notebook failed
        print(f"anxiety-outcomes report: {error}", file=sys.stderr)
        return EXIT_INVALID
    if args.pdf:
        from analysis.reports import export_pdf

        try:
            export_pdf(Path(args.out) / r["html"] for r in manifest["reports"])
        except (FileNotFoundError, RuntimeError) as error:
            print(f"anxiety-outcomes report --pdf: {error}", file=sys.stderr)
            return EXIT_USAGE
    print(Path(args.out) / "index.html")
    return EXIT_OK


def _synth(args) -> int:
    from analysis.schema import write_cohort
    from analysis.synthetic import synthetic_cohort

    try:
        cohort = synthetic_cohort(n_patients=args.patients, seed=args.seed)
    except ValueError as error:
        print(f"anxiety-outcomes synth: {error}", file=sys.stderr)
        return EXIT_USAGE
    write_cohort(cohort, args.out, format=args.format)
    print(f"wrote {_summary(cohort)} to {args.out}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it).

    Examples
    --------
    >>> main(["--version"])
    anxiety-outcomes 0.1.0
    0
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 0 after --help/--version, 2 on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return {"report": _report, "validate": _validate, "synth": _synth}[args.command](args)
