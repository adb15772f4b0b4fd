"""A small, valid, de-identified cohort for the schema and de-identification tests.

Built from the instrument constants (never hard-coded scale sizes): four patients, GAD-7
and HAM-A assessments (complete, one item missing, total only), sessions and adverse
events. ``valid_tables()`` returns the tables as text, as a CSV file is read.
``write_ods`` writes frames as an OpenDocument spreadsheet (no writer of it is installed).
"""

from __future__ import annotations

import functools
import zipfile
from xml.sax.saxutils import escape, quoteattr

import pandas as pd

from analysis.instruments import GAD7, HAMA, MAX_ITEMS
from analysis.schema import Cohort

PATIENT_IDS = ["P000123", "P000124", "P000125", "SITE-04_P7"]


def _items(instrument, scores):
    """item_1..item_MAX_ITEMS for one row: ``scores`` cycled over the scale's items."""
    values = [scores[k % len(scores)] for k in range(instrument.n_items)]
    row = {f"item_{k + 1}": v for k, v in enumerate(values)}
    row.update({c: None for c in instrument.unused_item_columns})
    return row, sum(values)


def _assessment(patient_id, instrument, day, scores, *, drop_items=0, total=True, rater=None):
    row, item_sum = _items(instrument, scores)
    for column in instrument.item_columns[:drop_items]:
        row[column] = None
    return {
        "patient_id": patient_id,
        "instrument": instrument.name,
        "study_day": day,
        **row,
        "total": item_sum if total else None,
        "administration": "self_report" if instrument is GAD7 else "clinician",
        "rater_id": rater,
    }


def valid_frames() -> dict[str, pd.DataFrame]:
    """The cohort with Python values (ints, bools, None), one frame per table."""
    return {name: df.copy() for name, df in _valid_frames().items()}


@functools.cache
def _valid_frames() -> dict[str, pd.DataFrame]:
    """Built once per process: the tests change their copies (``valid_frames()``)."""
    patients = pd.DataFrame(
        {
            "patient_id": PATIENT_IDS,
            "site_id": ["SITE-04", "SITE-04", "S2", "S2"],
            "age": [34, 90, 18, None],
            "sex": ["female", "male", "other", None],
            "primary_diagnosis": ["GAD", "PTSD", "MIXED", None],
            "comorbid_depression": [True, False, True, None],
            "treatment_resistant": [True, True, False, None],
            "prior_treatment_count": [2, 5, 0, None],
            "substance_use_history": [False, False, True, None],
            "route": ["iv", "im", "intranasal", "oral"],
            "concurrent_psychotherapy": [True, False, False, None],
            "arm": ["ketamine", "ketamine", "midazolam", None],
            "enrollment_year": [2021, 2022, 2023, None],
            "baseline_phq9": [14, 9, 21, None],
        }
    )
    rows = []
    for k, pid in enumerate(PATIENT_IDS):
        rows.append(_assessment(pid, GAD7, -3 + k, [GAD7.item_max, 2], rater=None))
        rows.append(_assessment(pid, GAD7, 7, [1, 2], drop_items=GAD7.max_missing_items))
        rows.append(_assessment(pid, GAD7, 14, [0, 1], total=True))
        rows.append(_assessment(pid, HAMA, 0, [HAMA.item_max, 2, 1], rater="R01"))
        rows.append(_assessment(pid, HAMA, 28, [1], drop_items=HAMA.max_missing_items))
    # a row scored from its total only
    total_only = _assessment(PATIENT_IDS[0], GAD7, 28, [1], total=True)
    for column in GAD7.item_columns:
        total_only[column] = None
    total_only["total"] = 6
    rows.append(total_only)
    assessments = pd.DataFrame(rows)
    assert len(assessments.filter(like="item_").columns) == MAX_ITEMS
    sessions = pd.DataFrame(
        {
            "patient_id": [PATIENT_IDS[0]] * 3 + [PATIENT_IDS[1]] * 2,
            "session_number": [1, 2, 3, 1, 2],
            "study_day": [0, 3, 7, 0, 4],
            "route": ["iv", "iv", "iv", "im", "im"],
            "dose_mg": [35.0, 35.0, 42.5, 50.0, None],
            "dose_mg_per_kg": [0.5, 0.5, 0.6, 0.7, None],
            "phase": ["induction", "induction", "maintenance", "induction", None],
            "sbp_pre": [120, 118, 125, 130, None],
            "dbp_pre": [80, 76, 82, 85, None],
            "sbp_peak": [145, 140, 150, 160, None],
            "dbp_peak": [90, 88, 92, 95, None],
            "cadss_total": [12, 8, 0, 92, None],
            "completed": [True, True, False, True, None],
        }
    )
    adverse_events = pd.DataFrame(
        {
            "patient_id": [PATIENT_IDS[0], PATIENT_IDS[0], PATIENT_IDS[1]],
            "study_day": [0, 3, 0],
            "term": ["nausea", "dissociation", "elevated_blood_pressure"],
            "severity": ["mild", "moderate", None],
            "serious": [False, False, None],
            "related": [True, True, None],
        }
    )
    return {
        "patients": patients,
        "assessments": assessments,
        "sessions": sessions,
        "adverse_events": adverse_events,
    }


def as_text(df: pd.DataFrame) -> pd.DataFrame:
    """A frame as a CSV file is read by ``load_cohort``: every cell text, missing as None."""
    out = {}
    for column in df.columns:
        values = df[column].astype(object)
        out[column] = [
            None
            if pd.isna(v)
            else str(int(v))
            if isinstance(v, float) and v.is_integer()
            else str(v)
            for v in values
        ]
    return pd.DataFrame(out, dtype=object)


def valid_tables() -> dict[str, pd.DataFrame]:
    """The cohort as text tables (the shape of freshly read CSV files), a fresh copy.

    Built once per process (``as_text`` cell by cell costs about 12 ms, paid by every
    example of the property tests that start from it); each call copies the frames, so
    a test changes only its own tables.
    """
    return {name: df.copy() for name, df in _valid_tables().items()}


@functools.cache
def _valid_tables() -> dict[str, pd.DataFrame]:
    return {name: as_text(df) for name, df in _valid_frames().items()}


def valid_cohort() -> Cohort:
    """The cohort as a :class:`Cohort` of the Python-valued frames."""
    return Cohort(**valid_frames())


def write_ods(path, sheets: dict[str, pd.DataFrame]) -> None:
    """A minimal OpenDocument spreadsheet (what LibreOffice saves, without styles): text
    cells as strings, numbers as floats, empty cells empty. No writer of it is installed."""

    def cell(value) -> str:
        if value is None or value == "" or (isinstance(value, float) and value != value):
            return "<table:table-cell/>"
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (
                f'<table:table-cell office:value-type="float" office:value="{value}">'
                f"<text:p>{value}</text:p></table:table-cell>"
            )
        return (
            '<table:table-cell office:value-type="string">'
            f"<text:p>{escape(str(value))}</text:p></table:table-cell>"
        )

    tables = []
    for name, frame in sheets.items():
        rows = [list(frame.columns), *frame.itertuples(index=False)]
        body = "".join(f"<table:table-row>{''.join(map(cell, r))}</table:table-row>" for r in rows)
        tables.append(f"<table:table table:name={quoteattr(name)}>{body}</table:table>")
    ns = "urn:oasis:names:tc:opendocument:xmlns"
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<office:document-content xmlns:office="{ns}:office:1.0" '
        f'xmlns:table="{ns}:table:1.0" xmlns:text="{ns}:text:1.0" office:version="1.2">'
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet>"
        "</office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<manifest:manifest xmlns:manifest="{ns}:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as ods:
        ods.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        ods.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        ods.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
