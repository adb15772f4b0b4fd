"""Publication formatting of the report tables: labels, estimate text and great_tables.

Design contract:

- The library's functions (:mod:`analysis.tables`, :mod:`analysis.rates`, ...) return
  tidy DataFrames with machine names (``partial_response``, ``iv``, ``week4``); other
  analyses consume those unchanged. This module is a separate *display* layer on top: it
  never computes a statistic, it only turns the tidy tables into text and
  :class:`great_tables.GT` objects for the reports.
- One label registry, :data:`LABELS`, holds the human label of every value a report
  shows (outcomes, routes, diagnoses, visits, instruments, imputation methods,
  accounting reasons, sexes, severity bands, Table 1 variables) and of the tidy tables'
  column names. :func:`label` looks a value up.
- An estimate reads "239/407 (58.7%) [53.9-63.4]": events of n, the percentage and its
  95% interval in percent, one decimal (:func:`format_estimate`); a difference or mean
  reads "-4.3 [-5.1 to -3.5]" with real minus signs (:func:`format_interval`); p-values
  "<0.001" or three decimals (:func:`format_p`).
- A cell blanked by small-cell suppression carries :data:`SUPPRESSED_MARK`, explained in a
  footnote of the table (:func:`suppression_note`); missing values show as an en dash.
- The ``gt_*`` functions return a ``GT`` with no index column (the stub holds the row
  labels), visits as columns where readers compare over time, and footnotes (source
  notes) carrying the definitions of what the table shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis._unavailable import NotAvailable
from analysis._utils import as_by, check_columns


def _passes_unavailable(build):
    """A table builder that returns a :class:`~analysis.report_sections.NotAvailable`
    section unchanged (a report section these data cannot support says why, and a
    publication table of it is that sentence)."""
    import functools

    @functools.wraps(build)
    def wrapper(table, *args, **kwargs):
        if isinstance(table, NotAvailable):
            return table
        return build(table, *args, **kwargs)

    return wrapper


__all__ = [
    "DEFINITIONS",
    "LABELS",
    "MISSING",
    "Provenance",
    "SUPPRESSED_MARK",
    "format_estimate",
    "format_interval",
    "format_p",
    "gt_comparison",
    "gt_contrasts",
    "gt_lsmeans",
    "gt_rates",
    "gt_table",
    "gt_table_one",
    "label",
    "provenance",
    "rates_wide",
    "suppression_note",
]

#: Mark of a cell blanked by small-cell suppression; every table that has one says why.
SUPPRESSED_MARK = "\u2020"  # dagger

#: Text of a missing value (an en dash).
MISSING = "\u2013"

_MINUS = "\u2212"

#: Human labels by kind. ``label(value, kind)`` looks a value up here.
LABELS: Mapping[str, Mapping[str, str]] = {
    "outcome": {
        "response": "Response",
        "partial_response": "Partial response",
        "remission": "Remission",
        "reliable_improvement": "Reliable improvement",
        "reliable_deterioration": "Reliable deterioration",
        "recovery": "Recovery",
        "reliable_recovery": "Reliable recovery",
        "anxiety_worsening": "Anxiety worsening",
    },
    "route": {
        "iv": "IV ketamine",
        "im": "IM ketamine",
        "intranasal": "Intranasal esketamine",
        "oral": "Oral ketamine",
        "sublingual": "Sublingual ketamine",
    },
    "primary_diagnosis": {
        "GAD": "Generalized anxiety disorder",
        "SAD": "Social anxiety disorder",
        "PD": "Panic disorder",
        "PTSD": "Post-traumatic stress disorder",
        "MIXED": "Mixed anxiety disorders",
        "OTHER": "Other",
    },
    "visit": {
        "baseline": "Baseline",
        "day1": "Day 1",
        "week1": "Week 1",
        "week2": "Week 2",
        "week4": "Week 4",
        "week8": "Week 8",
        "week12": "Week 12",
    },
    "instrument": {"GAD7": "GAD-7", "HAMA": "HAM-A"},
    "impute": {
        "observed": "Observed cases",
        "locf": "Last observation carried forward",
        "bocf": "Baseline observation carried forward",
    },
    "reason": {
        "visit": "Used as a visit value",
        "baseline": "Used as the baseline",
        "superseded_in_window": "Superseded (another closer to the target day)",
        "no_baseline": "Patient without a baseline",
        "outside_schedule": "Outside every visit window",
        "unscorable": "Unscorable (too many items missing)",
    },
    "sex": {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"},
    "severity": {
        "minimal": "Minimal",
        "mild": "Mild",
        "moderate": "Moderate",
        "severe": "Severe",
    },
    "phase": {"induction": "Induction", "maintenance": "Maintenance"},
    "strategy": {
        "mar": "Missing at random (MAR)",
        "j2r": "Jump to reference (J2R)",
        "cr": "Copy reference (CR)",
        "cir": "Copy increments in reference (CIR)",
    },
    "phase_group": {
        "induction_only": "Induction only",
        "maintenance": "Induction and maintenance",
    },
    "variable": {
        "n": "Patients, n",
        "age": "Age, years",
        "sex": "Sex",
        "primary_diagnosis": "Primary diagnosis",
        "route": "Route",
        "arm": "Arm",
        "comorbid_depression": "Comorbid depression",
        "treatment_resistant": "Treatment resistant",
        "prior_treatment_count": "Prior treatments, n",
        "substance_use_history": "Substance use history",
        "concurrent_psychotherapy": "Concurrent psychotherapy",
        "site_id": "Site",
        "enrollment_year": "Year of enrolment",
    },
    "column": {
        "n": "N",
        "n_patients": "Patients",
        "events": "Events",
        "rate": "Rate",
        "percent": "%",
        "ci_low": "95% CI low",
        "ci_high": "95% CI high",
        "estimate": "Estimate",
        "se": "SE",
        "df": "df",
        "p_value": "p",
        "p_adjusted": "Adjusted p",
        "instrument": "Instrument",
        "visit": "Visit",
        "outcome": "Outcome",
        "route": "Route",
        "primary_diagnosis": "Primary diagnosis",
        "impute": "Missing visits",
        "reason": "Use of the assessment",
        "assessments": "Assessments",
        "patients": "Patients",
        "expected": "Expected",
        "observed": "Observed",
        "target_day": "Target day",
        "window_low": "Window from day",
        "window_high": "Window to day",
        "table": "Table",
        "rows": "Rows",
        "column": "Column",
        "check": "Check",
        "failures": "Failures",
        "columns_checked": "Columns checked",
        "n_flagged": "Values flagged",
        "item": "Item",
        "label": "Wording",
        "missing": "Missing",
        "total_only": "Total only",
        "observed_agreement": "Observed agreement",
        "kappa": "Cohen's kappa",
        "contrast": "Contrast",
        "term": "Adverse event",
        "sessions": "Sessions",
        "session_number": "Session",
        "median": "Median",
        "mean": "Mean",
        "sd": "SD",
        "group": "Group",
        "reference": "Reference",
        "subgroup": "Subgroup",
        "level": "Level",
        "variable": "Characteristic",
        "dose_band": "Dose (median per session)",
        "sessions_band": "Sessions received by week 4",
        "phase_group": "Phase",
        "baseline_severity": "Severity at baseline",
        "severity": "Severity",
        "n_ref": "N (reference)",
        "rate_ref": "Rate (reference)",
        "risk_difference": "Risk difference",
        "strategy": "Missing visits assumed",
        "fmi": "FMI",
        "n_imputations": "Imputations",
        "shifted": "Route made worse",
        "delta": "Points worse",
        "significant": "Significant",
        "significant_at_zero": "Significant under MAR",
        "tipping_point": "Tipping point (points)",
        "note": "Note",
    },
}

#: One-line definitions of the outcomes, used in table footnotes.
DEFINITIONS: Mapping[str, str] = {
    "response": "Response: score 50% or more below baseline.",
    "partial_response": "Partial response: score 25% to under 50% below baseline.",
    "remission": (
        "Remission: GAD-7 4 or less, HAM-A 7 or less; not defined for patients already "
        "there at baseline."
    ),
    "reliable_improvement": (
        "Reliable improvement: GAD-7 a fall of 4 points or more; HAM-A a fall beyond the "
        "Jacobson-Truax reliable change index."
    ),
    "reliable_deterioration": (
        "Reliable deterioration: a rise of the same size as reliable improvement."
    ),
    "recovery": "Recovery (GAD-7 only): baseline 8 or more and a score under 8.",
    "reliable_recovery": "Reliable recovery: recovery and reliable improvement.",
}

_VISIT = re.compile(r"^(day|week|month)(\d+)$")

#: Abbreviations kept or spelled out when a column name is turned into a label.
_COLUMN_WORDS = {
    "pct": "%",
    "sd": "SD",
    "q1": "Q1",
    "q3": "Q3",
    "ci": "CI",
    "sbp": "SBP",
    "dbp": "DBP",
    "cadss": "CADSS",
    "iqr": "IQR",
}


def label(value: object, kind: str | None = None) -> str:
    """The human label of a value (an outcome, route, visit, column name, ...).

    Parameters
    ----------
    value : object
        The machine value, e.g. ``"partial_response"`` or ``"iv"``.
    kind : str, optional
        Which registry of :data:`LABELS` to look in (``"outcome"``, ``"route"``,
        ``"visit"``, ``"column"``, ...). ``None`` looks in every one, in order.

    Returns
    -------
    str
        The registered label; else a visit-like name spelled out ("week16" ->
        "Week 16"), booleans as "Yes"/"No", and any other text with underscores as
        spaces and a capital first letter. Missing values give :data:`MISSING`.

    Examples
    --------
    >>> label("partial_response"), label("iv", "route"), label("week12")
    ('Partial response', 'IV ketamine', 'Week 12')
    >>> label("week16"), label("elevated_blood_pressure"), label(True)
    ('Week 16', 'Elevated blood pressure', 'Yes')
    >>> label("pct_sessions_completed", "column"), label("dose_mg_per_kg_q1", "column")
    ('% sessions completed', 'Dose mg/kg Q1')
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[call-overload]  # pandas-stubs: isna() of an object
        return MISSING
    if isinstance(value, bool):
        return "Yes" if value else "No"
    text = str(value)
    kinds = [kind] if kind is not None else list(LABELS)
    for name in kinds:
        if text in LABELS.get(name, {}):
            return LABELS[name][text]
    match = _VISIT.match(text)
    if match:
        return f"{match[1].capitalize()} {match[2]}"
    if kind == "column" and "_" in text:
        words = " ".join(_COLUMN_WORDS.get(w, w) for w in text.split("_"))
        words = words.replace("mg per kg", "mg/kg")
        return words[:1].upper() + words[1:]
    if kind is None or text.islower() or "_" in text:
        text = text.replace("_", " ")
        return text[:1].upper() + text[1:]
    return text


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _num(value, digits: int) -> str:
    text = f"{float(value):.{digits}f}"
    if text.startswith("-") and float(text) == 0:  # no "-0.0" for a small negative
        text = text[1:]
    return text.replace("-", _MINUS)


def format_estimate(events, n, rate=None, ci_low=None, ci_high=None, *, digits: int = 1) -> str:
    """ "events/n (percent%) [low-high]" for a rate, or its suppression mark.

    Parameters
    ----------
    events, n : int or NA
        Patients with the outcome and patients with it defined.
    rate, ci_low, ci_high : float, optional
        The proportion and its interval on the 0-1 scale; default ``events / n`` and no
        interval.
    digits : int
        Decimals of the percentages.

    Returns
    -------
    str
        ``"239/407 (58.7%) [53.9-63.4]"``; when ``events`` was blanked by small-cell
        suppression, ``"n=407, suppressed†"`` (or ``"suppressed†"`` when ``n`` was
        blanked too); an empty cell (n = 0) is :data:`MISSING`.

    Examples
    --------
    >>> format_estimate(239, 407, 239 / 407, 0.539, 0.634)
    '239/407 (58.7%) [53.9-63.4]'
    >>> format_estimate(None, 407), format_estimate(None, None), format_estimate(0, 0)
    ('n=407, suppressed†', 'suppressed†', '–')
    """
    if _missing(events):
        return (
            f"suppressed{SUPPRESSED_MARK}"
            if _missing(n)
            else f"n={int(n)}, suppressed{SUPPRESSED_MARK}"
        )
    if _missing(n) or int(n) == 0:
        return MISSING
    rate = int(events) / int(n) if _missing(rate) else float(rate)
    text = f"{int(events)}/{int(n)} ({100 * rate:.{digits}f}%)"
    if not _missing(ci_low) and not _missing(ci_high):
        text += f" [{100 * float(ci_low):.{digits}f}-{100 * float(ci_high):.{digits}f}]"
    return text


def format_interval(estimate, ci_low, ci_high, *, digits: int = 1, scale: float = 1.0) -> str:
    """ "estimate [low to high]" with real minus signs, or :data:`MISSING`.

    Parameters
    ----------
    estimate, ci_low, ci_high : float or NA
    digits : int
        Decimals.
    scale : float
        Multiplier (100 shows a risk difference in percentage points).

    Examples
    --------
    >>> format_interval(-4.31, -5.12, -3.5)
    '−4.3 [−5.1 to −3.5]'
    >>> format_interval(0.081, -0.02, 0.18, scale=100), format_interval(None, 1, 2)
    ('8.1 [−2.0 to 18.0]', '–')
    >>> format_interval(1.5, -0.04, 3.0)
    '1.5 [0.0 to 3.0]'
    """
    if _missing(estimate):
        return MISSING
    text = _num(scale * float(estimate), digits)
    if not _missing(ci_low) and not _missing(ci_high):
        low, high = _num(scale * float(ci_low), digits), _num(scale * float(ci_high), digits)
        text += f" [{low} to {high}]"
    return text


def format_p(p) -> str:
    """A p-value as journals print it: "<0.001", else three decimals.

    Examples
    --------
    >>> format_p(0.0002), format_p(0.04567), format_p(None)
    ('<0.001', '0.046', '–')
    """
    if _missing(p):
        return MISSING
    return "<0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def suppression_note(min_cell: int | None) -> str:
    """The footnote that explains :data:`SUPPRESSED_MARK`.

    Examples
    --------
    >>> suppression_note(11)
    '† Suppressed: a count of 1 to 10 patients, or a number from which one could be worked out, is not shown (min_cell = 11; CMS cell-size rule).'
    """
    limit = "a small count" if min_cell is None else f"a count of 1 to {int(min_cell) - 1} patients"
    rule = "" if min_cell is None else f" (min_cell = {int(min_cell)}; CMS cell-size rule)"
    return (
        f"{SUPPRESSED_MARK} Suppressed: {limit}, or a number from which one could be worked "
        f"out, is not shown{rule}."
    )


def _visit_order(values) -> list[str]:
    """Visit labels in schedule order (:func:`analysis.endpoints.visit_order`)."""
    from analysis.endpoints import visit_order

    return [str(v) for v in visit_order([str(v) for v in values if not _missing(v)])]


def rates_wide(
    table: pd.DataFrame,
    rows: str | Sequence[str] = ("outcome", "instrument"),
    *,
    columns: str = "visit",
    digits: int = 1,
) -> pd.DataFrame:
    """A rate table as text, one row per ``rows`` cell and one column per visit.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.rate_table` or :func:`analysis.tables.outcome_rates`
        (``n, events, rate, ci_low, ci_high`` and the ``rows`` and ``columns`` columns).
    rows : str or sequence of str
        Columns whose labelled values make the rows, in table order.
    columns : str
        Column whose values become the columns (visits in schedule order).
    digits : int
        Decimals of the percentages.

    Returns
    -------
    DataFrame
        The ``rows`` columns holding labels (:func:`label`), then one text column per
        level of ``columns`` (labelled), each cell :func:`format_estimate`; a cell absent
        from the table is :data:`MISSING`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"outcome": "response", "instrument": "GAD7",
    ...                   "visit": ["week4", "week1"], "n": [407, 400],
    ...                   "events": [239, None], "rate": [239 / 407, None],
    ...                   "ci_low": [0.539, None], "ci_high": [0.634, None]})
    >>> rates_wide(t).iloc[0].tolist()
    ['Response', 'GAD-7', 'n=400, suppressed†', '239/407 (58.7%) [53.9-63.4]']
    """
    keys = as_by(rows)
    check_columns(table, [*keys, columns, "n", "events"], "rate_table")
    text = table.assign(
        _cell=[
            format_estimate(
                r.events,
                r.n,
                getattr(r, "rate", None),
                getattr(r, "ci_low", None),
                getattr(r, "ci_high", None),
                digits=digits,
            )
            for r in table.itertuples(index=False)
        ],
        _col=table[columns].astype(str),
    )
    order = (
        _visit_order(table[columns]) if columns == "visit" else list(dict.fromkeys(text["_col"]))
    )
    row_keys = list(dict.fromkeys(text[keys].astype(object).itertuples(index=False, name=None)))
    cells = {
        (tuple(k), c): v
        for *k, c, v in text[[*keys, "_col", "_cell"]].itertuples(index=False, name=None)
    }
    out = pd.DataFrame(
        [[label(v, k) for v, k in zip(key, keys, strict=True)] for key in row_keys], columns=keys
    )
    for col in order:
        out[label(col, columns)] = [cells.get((tuple(key), col), MISSING) for key in row_keys]
    return out


_BRACKETS = re.compile(r"\[[^\]]*\]")


def _keep_together(text: str) -> str:
    """No line break inside "n/N (p%)" nor inside "[low-high]": only before the "["."""
    text = text.replace(" (", "\u00a0(")
    return _BRACKETS.sub(lambda m: m[0].replace(" ", "\u00a0").replace("-", "\u2011"), text)


def _gt(df: pd.DataFrame, *, stub: str | None, group: str | None, title: str | None, subtitle):
    from great_tables import GT

    df = df.copy()
    for c in df.columns:
        if c not in (stub, group) and df[c].dtype == object:
            df[c] = [_keep_together(v) if isinstance(v, str) else v for v in df[c]]
    gt = GT(df, rowname_col=stub, groupname_col=group)
    if title:
        gt = gt.tab_header(title=title, subtitle=subtitle)
    return gt


def _notes(gt, notes: Sequence[str]):
    for note in notes:
        if note:
            gt = gt.tab_source_note(note)
    return gt


def _style(gt):
    return gt.tab_options(
        table_font_size="14px",
        table_width="auto",
        column_labels_font_weight="bold",
        row_group_font_weight="bold",
        source_notes_font_size="12px",
        data_row_padding="4px",
        table_margin_left="0px",
    ).opt_align_table_header(align="left")


def _has_suppressed(df: pd.DataFrame) -> bool:
    return bool(
        df.astype(str).apply(lambda c: c.str.contains(SUPPRESSED_MARK, regex=False)).any().any()
    )


@_passes_unavailable
def gt_rates(
    table: pd.DataFrame,
    rows: str | Sequence[str] = ("outcome", "instrument"),
    *,
    columns: str = "visit",
    title: str | None = None,
    subtitle: str | None = None,
    min_cell: int | None = None,
    interval: str = "Wilson score",
):
    """A rate table as a publication table: visits as columns, "n/N (%) [95% CI]" cells.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.rate_table` or :func:`analysis.tables.outcome_rates`.
    rows : str or sequence of str
        The row keys; with two or more, the first labels row groups and the others the
        rows.
    columns : str
        Column spread across (default ``"visit"``).
    title, subtitle : str, optional
        Table heading.
    min_cell : int, optional
        The small-cell threshold the table was made with (for the footnote).
    interval : str
        Name of the interval method, for the footnote.

    Returns
    -------
    great_tables.GT
        Cells as :func:`format_estimate`; in every ``gt_*`` table a cell may wrap only
        before its interval (no-break spaces and hyphens elsewhere). Footnotes: the cell format,
        the definitions of the outcomes shown and, when a cell is suppressed,
        :func:`suppression_note`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"outcome": "response", "instrument": "GAD7", "visit": "week4",
    ...                   "n": [407], "events": [239], "rate": [239 / 407],
    ...                   "ci_low": [0.539], "ci_high": [0.634]})
    >>> html = gt_rates(t, min_cell=11).as_raw_html()
    >>> "239/407\u00a0(58.7%) [53.9\u201163.4]" in html and "Week 4" in html
    True
    """
    keys = as_by(rows)
    wide = rates_wide(table, keys, columns=columns)
    group = keys[0] if len(keys) > 1 else None
    stub = keys[-1]
    if len(keys) > 2:
        wide[stub] = wide[keys[1:]].agg(", ".join, axis=1)
        wide = wide.drop(columns=keys[1:-1])
    gt = _gt(wide, stub=stub, group=group, title=title, subtitle=subtitle)
    gt = gt.tab_stubhead(label=label(stub, "column"))
    notes = [f"Patients with the outcome / patients with it defined (%) [95% {interval} interval]."]
    if "outcome" in table.columns:
        notes += [DEFINITIONS[o] for o in dict.fromkeys(table["outcome"]) if o in DEFINITIONS]
    if _has_suppressed(wide):
        notes.append(suppression_note(min_cell))
    return _style(_notes(gt, notes))


@_passes_unavailable
def gt_table_one(
    table: pd.DataFrame,
    *,
    by: str | None = "route",
    title: str | None = None,
    min_cell: int | None = None,
):
    """Table 1 as a publication table: one column per group and an Overall column.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.table_one` (``variable, level``, group columns,
        ``Overall``).
    by : str, optional
        What the group columns are (``"route"``), for their labels.
    title : str, optional
        Table heading (default "Table 1. Characteristics of the treated patients").
    min_cell : int, optional
        The small-cell threshold of the table (for the footnote).

    Returns
    -------
    great_tables.GT
        Characteristics as row groups, their levels as rows; the ``n`` row's counts go
        into the column labels ("IV ketamine (N = 120)").

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.tables import table_one
    >>> patients = pd.DataFrame({"patient_id": list("abcd"), "age": [30, 40, 50, 60],
    ...                          "route": ["iv", "iv", "im", "im"]})
    >>> html = gt_table_one(table_one(patients, by="route")).as_raw_html()
    >>> "IV ketamine (N = 2)" in html and "Overall (N = 4)" in html
    True
    """
    check_columns(table, ["variable", "level"], "table_one")
    groups = [c for c in table.columns if c not in ("variable", "level")]
    n_row = table[table["variable"] == "n"]
    body = table[table["variable"] != "n"].copy()
    kind = {"sex": "sex", "primary_diagnosis": "primary_diagnosis", "route": "route"}
    levels = [
        "Yes" if lvl == "yes" else label(lvl, kind.get(var, "severity")) if lvl else ""
        for var, lvl in zip(body["variable"], body["level"], strict=True)
    ]
    body["level"] = [text[:1].upper() + text[1:] for text in levels]
    body["variable"] = [label(v, "variable") for v in body["variable"]]
    for c in groups:
        body[c] = body[c].astype(str).str.replace("suppressed", f"suppressed{SUPPRESSED_MARK}")
        body[c] = body[c].str.replace(r"^<(\d+)$", rf"<\1{SUPPRESSED_MARK}", regex=True)
    header = {}
    for c in groups:
        n = n_row[c].iloc[0] if len(n_row) else ""
        name = "Overall" if c == "Overall" else label(c, by or "route")
        header[c] = f"{name} (N = {n})" if n != "" else name
    gt = _gt(
        body,
        stub="level",
        group="variable",
        title=title or "Table 1. Characteristics of the treated patients",
        subtitle=None,
    )
    gt = gt.cols_label(**header)
    notes = [
        "Age: mean (SD) and median [IQR]; prior treatments: median [IQR]; other rows: "
        "patients (% of the column's patients). Missing: characteristic not recorded."
    ]
    if _has_suppressed(body):
        notes.append(suppression_note(min_cell))
    return _style(_notes(gt, notes))


@_passes_unavailable
def gt_comparison(
    table: pd.DataFrame,
    *,
    group: str = "route",
    title: str | None = None,
    min_cell: int | None = None,
):
    """Comparisons of rates against a reference (output of :func:`analysis.compare_rates`).

    Parameters
    ----------
    table : DataFrame
        ``compare_rates`` output (``group, reference, n, events, n_ref, events_ref``, the
        risk difference, ratio and odds ratio with intervals, ``nnt_note``, ``p_value``
        and optionally ``p_adjusted`` and ``suppressed``).
    group : str
        What the groups are (``"route"``), for their labels.
    title : str, optional
        Table heading.
    min_cell : int, optional
        For the suppression footnote.

    Returns
    -------
    great_tables.GT
        One row per comparison: the group's and the reference's rates ("n/N (%)"), the
        risk difference in percentage points, RR, OR (each with its 95% CI), the NNT in
        words and the (adjusted) p-value.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.rates import compare_rates
    >>> ep = pd.DataFrame({"route": ["iv"] * 40 + ["im"] * 40,
    ...                    "response": [True] * 24 + [False] * 16 + [True] * 16 + [False] * 24})
    >>> html = gt_comparison(compare_rates(ep, "response", "route", reference="iv", by=())).as_raw_html()
    >>> "IM ketamine vs IV ketamine" in html and "−20.0 [−" in html
    True
    """
    check_columns(
        table, ["group", "reference", "n", "events", "n_ref", "events_ref"], "compare_rates"
    )
    by = [c for c in ("instrument", "visit", "subgroup") if c in table.columns]
    suppressed = (
        table["suppressed"].fillna(False).astype(bool)
        if "suppressed" in table
        else pd.Series(False, index=table.index)
    )
    rows = []
    for (_, r), blank in zip(table.iterrows(), suppressed, strict=True):
        mark = f"suppressed{SUPPRESSED_MARK}"
        rows.append(
            {
                **{c: label(r[c], c) for c in by},
                "comparison": f"{label(r['group'], group)} vs {label(r['reference'], group)}",
                "rate": mark if blank else format_estimate(r["events"], r["n"]),
                "rate_ref": mark if blank else format_estimate(r["events_ref"], r["n_ref"]),
                "rd": mark
                if blank
                else format_interval(
                    r["risk_difference"], r["rd_ci_low"], r["rd_ci_high"], scale=100
                ),
                "rr": mark
                if blank
                else format_interval(r["risk_ratio"], r["rr_ci_low"], r["rr_ci_high"], digits=2),
                "or": mark
                if blank
                else format_interval(r["odds_ratio"], r["or_ci_low"], r["or_ci_high"], digits=2),
                "nnt": mark
                if blank
                else (r.get("nnt_note") if isinstance(r.get("nnt_note"), str) else MISSING),
                "p": mark if blank else format_p(r.get("p_adjusted", r.get("p_value"))),
            }
        )
    df = pd.DataFrame(rows)
    group_col = by[0] if by else None
    gt = _gt(df, stub="comparison", group=group_col, title=title, subtitle=None)
    if len(by) > 1:
        gt = gt.cols_label(**{c: label(c, "column") for c in by[1:]})
    adjusted = "p_adjusted" in table.columns
    gt = gt.cols_label(
        rate="Group",
        rate_ref="Reference",
        rd="Risk difference, % points [95% CI]",
        rr="Risk ratio [95% CI]",
        nnt="Number needed to treat [95% CI]",
        p="Adjusted p" if adjusted else "p",
        **{"or": "Odds ratio [95% CI]"},
    ).tab_stubhead(label="Comparison")
    notes = [
        "Group and reference: patients with the outcome / patients with it defined (%). "
        "Risk difference: Newcombe hybrid score interval; risk ratio: log (Katz) interval; "
        "odds ratio: logit (Woolf) interval; NNTB/NNTH: number needed to treat for one more "
        "patient to benefit / be harmed.",
        "p: chi-square test, or Fisher's exact test when an expected count is under 5"
        + (
            "; adjusted for multiple comparisons (Holm)."
            if adjusted
            else "; not adjusted for multiple comparisons."
        ),
    ]
    if bool(suppressed.any()):
        notes.append(suppression_note(min_cell))
    return _style(_notes(gt, notes))


@_passes_unavailable
def gt_lsmeans(
    table: pd.DataFrame,
    *,
    factor: str = "route",
    visit: str = "visit",
    title: str | None = None,
    digits: int = 1,
):
    """MMRM least-squares means as a table: one row per ``factor`` level, visits as columns.

    Parameters
    ----------
    table : DataFrame
        Output of :meth:`analysis.mmrm.MMRMResult.lsmeans` (``factor, visit, estimate,
        ci_low, ci_high``).
    factor, visit : str
        The row factor and the visit column (schedule order).
    title : str, optional
        Heading.
    digits : int
        Decimals.

    Returns
    -------
    great_tables.GT
        Cells "LS mean [95% CI]".

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"route": ["iv", "iv"], "visit": ["week12", "week2"],
    ...                   "estimate": [-6.0, -4.31], "ci_low": [-7.0, -5.12],
    ...                   "ci_high": [-5.0, -3.5]})
    >>> html = gt_lsmeans(t).as_raw_html()
    >>> html.index("Week 2") < html.index("Week 12") and "−4.3 [−5.1\u00a0to\u00a0−3.5]" in html
    True
    """
    check_columns(table, [factor, visit, "estimate", "ci_low", "ci_high"], "lsmeans")
    order = _visit_order(table[visit].astype(str))
    levels = list(dict.fromkeys(table[factor].astype(str)))
    cells = {
        (str(r[factor]), str(r[visit])): format_interval(
            r["estimate"], r["ci_low"], r["ci_high"], digits=digits
        )
        for _, r in table.iterrows()
    }
    df = pd.DataFrame({factor: [label(v, factor) for v in levels]})
    for v in order:
        df[label(v, "visit")] = [cells.get((lvl, v), MISSING) for lvl in levels]
    gt = _gt(df, stub=factor, group=None, title=title, subtitle=None).tab_stubhead(
        label=label(factor, "column")
    )
    notes = [
        "Least-squares mean change from baseline [95% CI] from the mixed model for repeated "
        "measures (unstructured covariance, REML, Satterthwaite df), at the mean baseline "
        "score. Negative values are improvement."
    ]
    return _style(_notes(gt, notes))


@_passes_unavailable
def gt_contrasts(
    table: pd.DataFrame,
    *,
    factor: str = "route",
    title: str | None = None,
    digits: int = 1,
):
    """MMRM contrasts against the reference level, with intervals and (adjusted) p-values.

    Parameters
    ----------
    table : DataFrame
        Output of :meth:`analysis.mmrm.MMRMResult.pairwise` or of
        :func:`analysis.tables.mmrm_contrasts` (``[visit,] contrast, estimate, ci_low,
        ci_high, p`` and optionally ``p_adjusted``).
    factor : str
        What the contrasted levels are (``"route"``), for their labels.
    title : str, optional
        Heading.
    digits : int
        Decimals.

    Returns
    -------
    great_tables.GT
        One row per contrast ("IM ketamine − IV ketamine"), grouped by visit in schedule
        order when the table has one.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"visit": ["week4"], "contrast": ["im - iv"], "estimate": [1.2],
    ...                   "ci_low": [-0.4], "ci_high": [2.8], "p": [0.14],
    ...                   "p_adjusted": [0.28]})
    >>> html = gt_contrasts(t).as_raw_html()
    >>> "IM ketamine − IV ketamine" in html and "0.280" in html
    True
    """
    check_columns(table, ["contrast", "estimate", "ci_low", "ci_high", "p"], "pairwise")
    has_visit = "visit" in table.columns
    rows = table
    if has_visit:
        order = _visit_order(table["visit"].astype(str))
        rows = table.assign(_o=table["visit"].astype(str).map(order.index)).sort_values(
            "_o", kind="stable"
        )
    adjusted = "p_adjusted" in table.columns
    df = pd.DataFrame(
        {
            **(
                {"visit": [label(v, "visit") for v in rows["visit"].astype(str)]}
                if has_visit
                else {}
            ),
            "contrast": [
                f" {_MINUS} ".join(label(part.strip(), factor) for part in str(c).split(" - ", 1))
                for c in rows["contrast"]
            ],
            "difference": [
                format_interval(e, lo, hi, digits=digits)
                for e, lo, hi in zip(rows["estimate"], rows["ci_low"], rows["ci_high"], strict=True)
            ],
            "p": [format_p(p) for p in rows["p"]],
        }
    )
    if adjusted:
        df["p_adjusted"] = [format_p(p) for p in rows["p_adjusted"]]
    gt = _gt(df, stub="contrast", group="visit" if has_visit else None, title=title, subtitle=None)
    gt = gt.cols_label(
        difference="Difference in change [95% CI]",
        p="p",
        **({"p_adjusted": "Adjusted p (Holm)"} if adjusted else {}),
    )
    gt = gt.tab_stubhead(label="Contrast")
    notes = [
        "Difference in least-squares mean change from baseline between the two levels; "
        "negative favours the first. p: t test with Satterthwaite df"
        + ("; adjusted p: Holm over all contrasts of the table." if adjusted else ".")
    ]
    return _style(_notes(gt, notes))


#: Columns whose values are labelled by :func:`gt_table` (kind of each).
_VALUE_KINDS = {
    "instrument": "instrument",
    "visit": "visit",
    "outcome": "outcome",
    "route": "route",
    "primary_diagnosis": "primary_diagnosis",
    "impute": "impute",
    "reason": "reason",
    "sex": "sex",
    "severity": "severity",
    "baseline_severity": "severity",
    "phase": "phase",
    "strategy": "strategy",
    "term": None,
    "table": None,
    "check": None,
    "measure": None,
    "criterion": None,
}


@_passes_unavailable
def gt_table(
    table: pd.DataFrame,
    *,
    title: str | None = None,
    subtitle: str | None = None,
    group: str | None = None,
    stub: str | None = None,
    digits: int | Mapping[str, int] = 1,
    notes: Sequence[str] = (),
    min_cell: int | None = None,
    drop: Sequence[str] = (),
    columns: str | None = None,
    kinds: Mapping[str, str] | None = None,
):
    """Any tidy report table as a publication table.

    The ``suppressed`` column is dropped and the blanked cells of its rows carry
    :data:`SUPPRESSED_MARK`; column names and the values of known columns (instrument,
    visit, outcome, route, ...) are labelled; numbers get ``digits`` decimals (integers
    none, p-values :func:`format_p`); missing values are :data:`MISSING`.

    Parameters
    ----------
    table : DataFrame
        A tidy table of :mod:`analysis.tables`, :mod:`analysis.safety`, ...
    title, subtitle : str, optional
        Heading.
    group : str, optional
        Column whose values become row groups (e.g. ``"instrument"``); none when the
        table lacks it (a section run on too little data may hold only its note).
    stub : str, optional
        Column holding the row labels (default, and when the table lacks it, the first
        remaining column).
    digits : int or mapping of str to int
        Decimals of non-integer numbers; a mapping gives them per column (the others 1),
        e.g. ``{"rate": 3, "tipping_point": 0}``.
    notes : sequence of str
        Footnotes (definitions).
    min_cell : int, optional
        For the suppression footnote.
    drop : sequence of str
        Columns not shown.
    columns : str, optional
        Transpose: one column per row of the table, headed by its (labelled) value of
        ``columns`` (e.g. ``"route"``), and one row per other column. For wide tables
        of few groups (exposure, blood pressure by route).
    kinds : mapping of str to str, optional
        What the values of other columns are, for their labels: ``{"group": "route"}``
        labels the ``group`` column of :func:`analysis.survival.median_time_to_event`
        as routes ("IV ketamine", not ``iv``). Known columns (``route``, ``visit``, ...)
        need no entry.

    Returns
    -------
    great_tables.GT
        ``ci_low`` and ``ci_high`` are shown as one "95% CI" column ("14.7 to 33.3"), and
        so are ``rd_ci_low`` and ``rd_ci_high`` (the risk difference's).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"instrument": ["GAD7", "GAD7"], "visit": ["week1", "week2"],
    ...                   "observed": [140, None], "percent": [70.04, None],
    ...                   "suppressed": [False, True]})
    >>> html = gt_table(t, group="instrument", min_cell=11).as_raw_html()
    >>> "Week 1" in html and "70.0" in html and "†" in html and "suppressed" not in html.split("<tbody")[0]
    True
    """
    df = table.drop(columns=[c for c in drop if c in table.columns])
    flags = (
        df["suppressed"].fillna(False).astype(bool).to_numpy()
        if "suppressed" in df.columns
        else np.zeros(len(df), dtype=bool)
    )
    df = df.drop(columns=["suppressed"], errors="ignore").reset_index(drop=True)
    numeric = {c for c in df.columns if pd.api.types.is_numeric_dtype(df[c].dtype)}
    value_kinds = {**_VALUE_KINDS, **(kinds or {})}
    out = pd.DataFrame(index=range(len(df)))
    for c in df.columns:
        values = df[c].tolist()
        if c in value_kinds:
            out[c] = [label(v, value_kinds[c]) for v in values]
        elif c.startswith("p_") or c in ("p", "p_value"):
            out[c] = [format_p(v) for v in values]
        else:
            places = digits.get(c, 1) if isinstance(digits, Mapping) else digits
            out[c] = [_cell(v, places) for v in values]
    for i, blank in enumerate(flags):
        if blank:
            for c in out.columns:
                if out.at[i, c] == MISSING:
                    out.at[i, c] = f"{MISSING}{SUPPRESSED_MARK}"
    # One "95% CI" column instead of two bound columns.
    for low, high, name in (
        ("ci_low", "ci_high", "ci"),
        ("change_ci_low", "change_ci_high", "change_ci"),
        ("rd_ci_low", "rd_ci_high", "rd_ci"),
    ):
        if low in out.columns and high in out.columns:
            position = list(out.columns).index(low)
            joined = [
                lo if lo == hi and lo.startswith(MISSING) else f"{lo} to {hi}"
                for lo, hi in zip(out[low], out[high], strict=True)
            ]
            out = out.drop(columns=[low, high])
            out.insert(position, name, joined)
            numeric.add(name)
    if columns is not None:
        return _transposed(out, columns, numeric, title, subtitle, notes, flags, min_cell)
    group = group if group in out.columns else None
    if stub not in out.columns:
        stub = next((c for c in out.columns if c != group), None)
    gt = _gt(out, stub=stub, group=group, title=title, subtitle=subtitle)
    gt = gt.cols_label(**{c: _column_label(c) for c in out.columns if c not in (group, stub)})
    if stub is not None:
        gt = gt.tab_stubhead(label=_column_label(stub))
    right = [c for c in out.columns if c in numeric and c not in (group, stub)]
    if right:
        gt = gt.cols_align(align="right", columns=right)
    all_notes = list(notes)
    if any(flags):
        all_notes.append(suppression_note(min_cell))
    return _style(_notes(gt, all_notes))


def _column_label(name: str) -> str:
    joined = {"ci": "95% CI", "change_ci": "Change, 95% CI", "rd_ci": "Risk difference, 95% CI"}
    if name in joined:
        return joined[name]
    return label(name, "column")


def _transposed(out, columns, numeric, title, subtitle, notes, flags, min_cell):
    """``gt_table`` with the levels of ``columns`` as columns and the measures as rows."""
    levels = list(out[columns])
    keys = [c for c in out.columns if c != columns]
    rows = pd.DataFrame({"measure": [_column_label(c) for c in keys]})
    for k in range(len(levels)):
        rows[f"c{k}"] = [out[c].iloc[k] for c in keys]
    gt = _gt(rows, stub="measure", group=None, title=title, subtitle=subtitle)
    gt = gt.cols_label(**{f"c{k}": level for k, level in enumerate(levels)})
    gt = gt.cols_align(align="right", columns=[f"c{k}" for k in range(len(levels))])
    gt = gt.tab_stubhead(label="")
    all_notes = list(notes)
    if any(flags):
        all_notes.append(suppression_note(min_cell))
    return _style(_notes(gt, all_notes))


def _cell(value, digits: int) -> str:
    """Text of one cell of :func:`gt_table`."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "Yes" if value else "No"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _num(float(value), digits)
    return str(value)


class Provenance:
    """The provenance header of a report page (what data, which version, which rules).

    Displayed as HTML in a notebook (``_repr_html_``) and as text elsewhere. Build it with
    :func:`provenance`.
    """

    def __init__(self, fields: Mapping[str, str], *, title: str, synthetic: bool, href: str):
        self.fields = dict(fields)
        self.title = title
        self.synthetic = synthetic
        self.href = href

    def __repr__(self) -> str:
        lines = [self.title] + [f"{k}: {v}" for k, v in self.fields.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        source = escape(self.fields["Data"])
        badge = (
            '<span style="background:#b03a2e;color:#fff;padding:2px 8px;border-radius:3px;'
            'font-weight:bold;margin-right:8px">SYNTHETIC DATA</span>'
            if self.synthetic
            else ""
        )
        parts = []
        for key, value in self.fields.items():
            if key == "Data":
                continue
            text = escape(value)
            if key == "Data fingerprint":
                text = f'<code style="word-break:break-all">{text}</code>'
            parts.append(f"<b>{escape(key)}</b> {text}")
        rest = " &middot; ".join(parts)
        return (
            '<div class="provenance" style="border:1px solid #34495e;border-left:6px solid '
            "#34495e;background:#f4f6f8;padding:8px 12px;margin:4px 0 12px 0;"
            'font-family:sans-serif;font-size:13px;line-height:1.6;max-width:100%">'
            f'<div style="font-size:15px">{badge}<b>Data:</b> {source}</div>'
            f"<div>{rest} &middot; "
            f'<a href="{escape(self.href)}">Definitions</a></div></div>'
        )


def provenance(
    cohort,
    *,
    title: str,
    data_dir=None,
    n_patients: int | None = None,
    seed: int | None = None,
    min_cell: int | None = None,
    impute: str = "observed",
    definitions_href: str = "index.html#definitions",
    run_date=None,
) -> Provenance:
    """The header every report page starts with: data source, fingerprint, version, rules.

    Parameters
    ----------
    cohort : Cohort
        The data the report shows (its fingerprint is computed here).
    title : str
        The report's title.
    data_dir : str or Path, optional
        The cohort folder; ``None`` means the synthetic demo cohort of ``n_patients``
        patients and ``seed``.
    n_patients, seed : int, optional
        The synthetic cohort's size and seed.
    min_cell : int, optional
        Smallest count shown.
    impute : str
        How missed visits are handled in the report's main analyses.
    definitions_href : str
        Link to the definitions (the index page of the report folder).
    run_date : datetime, optional
        Default now (UTC).

    Returns
    -------
    Provenance
        Fields ``Data`` ("synthetic demo cohort, 500 patients, seed 0" or the folder's
        name), ``Data fingerprint`` (SHA-256, :func:`analysis.reports.data_fingerprint`),
        ``Package`` (anxiety-outcomes version), ``Run`` (UTC date and time),
        ``min_cell`` and ``Missing visits``.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from analysis.synthetic import synthetic_cohort
    >>> p = provenance(synthetic_cohort(20, seed=1), title="Outcomes", n_patients=20, seed=1,
    ...                min_cell=11, run_date=datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc))
    >>> p.fields["Data"], p.fields["Run"], p.fields["min_cell"]
    ('synthetic demo cohort, 20 patients, seed 1', '2026-01-02 03:04 UTC', '11')
    >>> "SYNTHETIC DATA" in p._repr_html_()
    True
    """
    from datetime import UTC, datetime
    from pathlib import Path

    import analysis
    from analysis.cohort import data_fingerprint

    synthetic = data_dir is None
    if synthetic:
        n = len(cohort.patients) if n_patients is None else int(n_patients)
        source = f"synthetic demo cohort, {n} patients, seed {seed if seed is not None else 0}"
    else:
        source = f"folder {Path(data_dir).name} ({len(cohort.patients)} patients)"
    if getattr(cohort, "source", ""):  # a batch's snapshot says what it holds (e.g. a site)
        source = cohort.source
    when = run_date if run_date is not None else datetime.now(UTC)
    fields = {
        "Data": source,
        "Data fingerprint": getattr(cohort, "fingerprint", "") or data_fingerprint(cohort),
        "Package": f"anxiety-outcomes {analysis.__version__}",
        "Run": when.strftime("%Y-%m-%d %H:%M UTC"),
        "min_cell": "none" if min_cell is None else str(int(min_cell)),
        "Missing visits": label(impute, "impute"),
    }
    return Provenance(fields, title=title, synthetic=synthetic, href=definitions_href)
