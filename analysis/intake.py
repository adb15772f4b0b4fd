"""Intake: from a clinic's wide sheet, REDCap export or FHIR resources to a cohort.

Clinics keep GAD-7 and HAM-A data in one of three shapes: a spreadsheet with one row per
visit, a REDCap project (a raw CSV export plus its data dictionary) or an EHR that speaks
FHIR R4 (``QuestionnaireResponse`` resources). One function per source turns it into a
:class:`~analysis.schema.Cohort` that :func:`~analysis.schema.validate` and
:func:`~analysis.schema.load_cohort` accept:

* :func:`from_wide` (a DataFrame, or a CSV/Parquet/Excel file);
* :func:`from_redcap` (records CSV + data dictionary CSV);
* :func:`from_fhir` (a Bundle, a resource, or a folder of ``.json``/``.ndjson`` files).

A small YAML or JSON *mapping* (:func:`read_mapping`) names where things are: the patient
identifier, the ketamine session dates, the item columns of each scale, totals, route,
site, dates. :func:`write_import` writes the folder with its ``import_log.json``; the CLI
is ``anxiety-outcomes import {wide,redcap,fhir} SOURCE --map MAP --key KEYFILE --out DIR``.

De-identification happens here, once, before anything is written:

* **dates -> study days**: day 0 is each patient's first ketamine session (the dates the
  mapping's ``sessions.date`` names; in FHIR, ketamine ``MedicationAdministration``
  resources). Every other date becomes the number of days since that day. A patient
  without a session date has no day 0: their rows are left out and counted.
* **identifiers -> keyed pseudonyms**: HMAC-SHA-256 of the identifier with a secret key
  kept at the site (:func:`load_key`; a key file is created, readable by its owner only,
  when absent). The same key gives the same codes on every re-import; without the key a
  code cannot be traced back or recomputed. Sites and raters get codes the same way.
* **everything else is dropped**: every source column (or FHIR element) the mapping does
  not use, names, contact details, free text included, and is listed *by name* in the
  log. Ages are computed at day 0 (from a birth date when the mapping names one) and ages
  over 89 become 90.
* the result passes the schema and the de-identification guard
  (:mod:`analysis.deid`) before it is returned; the source is only read.

Messages and the log never hold a value from the source: they name columns, checks and
counts. Rows left out (no date, no day 0, a study day outside the schema's range, a
day-0 assessment timed after the first dose, incomplete FHIR dates or statuses other than
completed) are counted by reason in the log; nothing is dropped silently.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.deid import is_identifier_column
from analysis.instruments import INSTRUMENTS, get_instrument
from analysis.readers import FileProblem, _delimiter, normalise_name
from analysis.schema import (
    FILE_FORMATS,
    TABLES,
    Cohort,
    DataValidationError,
    read_schema,
    validate,
    write_cohort,
)

__all__ = [
    "GAD7_LOINC",
    "IMPORT_LOG",
    "LOINC_ANSWER_SCORES",
    "ImportedCohort",
    "ImportMapping",
    "IntakeError",
    "MappingError",
    "default_key_path",
    "from_fhir",
    "from_redcap",
    "from_wide",
    "import_source",
    "load_key",
    "pseudonym",
    "read_mapping",
    "write_import",
]

#: Name of the log written next to the tables.
IMPORT_LOG = "import_log.json"
SOURCE_KINDS = ("wide", "redcap", "fhir")

#: GAD-7 in LOINC: panel 69737-5, items 1-7 and the total score (LOINC panel 69737-5
#: and the PHQ-SADS panel 69729-2 that contains it, loinc.org).
GAD7_LOINC = {
    "panel": "69737-5",
    "items": ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
    "total": "70274-6",
}
#: The GAD-7 answer list in LOINC: Not at all, Several days, More than half the days,
#: Nearly every day, scored 0-3.
LOINC_ANSWER_SCORES = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
_ORDINAL_EXTENSIONS = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
)

_KEY_BYTES = 32
_KEY_ENV = "ANXIETY_OUTCOMES_KEY_FILE"
_CODE_HEX = 20  # 80 bits: a collision among 10^6 patients has probability < 10^-12
_CODE_PREFIX = {"patient": "P", "site": "S", "rater": "R"}
_STUDY_DAYS = (-90, 1095)  # the schema's range for assessments.study_day
_TOP_AGE = 90
_NOT_A_SCORE = object()  # an answer that is not a whole number

# --------------------------------------------------------------------------- errors


class MappingError(ValueError):
    """The mapping is malformed or does not fit the source; lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"The mapping has {len(self.problems)} problem(s):\n{lines}\n"
            "The mapping format is described in the docstring of analysis.intake.read_mapping "
            "and in README.md, 'From your system to a cohort folder'."
        )


class IntakeError(DataValidationError):
    """The source cannot be imported as mapped; nothing was written.

    A :class:`~analysis.schema.DataValidationError` whose ``.failures`` rows have
    ``table`` ``source`` (or a cohort table), the source column, the check, and the row
    count in ``value``; never a value from the source.
    """

    title = "Import failed"
    hints = {
        **DataValidationError.hints,
        "date_format": (
            "write dates as YYYY-MM-DD, or give the mapping's `date_format` "
            "(e.g. '%d/%m/%Y'); the import never guesses day-month order"
        ),
        "not_a_score": "item answers and totals must be whole numbers (or LOINC answer codes)",
        "several_ticked": "tick at most one option of this checkbox, or map it with `choice:`",
        "conflicting_values": (
            "give each patient one value of this patient-level column (it differs between "
            "the patient's rows)"
        ),
        "not_numeric": "covariates must be numbers or yes/no; map coded text with `values:`",
        "duplicate_code": "two identifiers gave the same code: use a new key file",
    }


def _failure(table: str, column: str, check: str, rows=None) -> list[dict]:
    """Failure rows: one per 0-based source row position (``rows``), or one for the column."""
    positions = [pd.NA] if rows is None else [int(r) for r in rows]
    return [
        {"table": table, "row": r, "column": column, "check": check, "value": ""} for r in positions
    ]


def _raise_failures(failures: list[dict]) -> None:
    if failures:
        frame = pd.DataFrame(failures, columns=["table", "row", "column", "check", "value"])
        frame = frame.drop_duplicates()
        raise IntakeError(
            frame.astype(
                {
                    "table": "string",
                    "row": "Int64",
                    "column": "string",
                    "check": "string",
                    "value": "string",
                }
            )
        )


# --------------------------------------------------------------------------- the key


def default_key_path() -> Path:
    """Where the site's key file is kept when none is named.

    ``$ANXIETY_OUTCOMES_KEY_FILE`` if set, else ``anxiety-outcomes/pseudonym.key`` in the
    user's configuration folder (``$XDG_CONFIG_HOME`` or ``~/.config``).
    """
    if os.environ.get(_KEY_ENV):
        return Path(os.environ[_KEY_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "anxiety-outcomes" / "pseudonym.key"


def load_key(path=None, *, create: bool = True) -> bytes:
    """Read the site's pseudonymisation key, creating the key file when it is absent.

    Parameters
    ----------
    path : str or Path, optional
        The key file (default :func:`default_key_path`).
    create : bool
        Create a new random key (32 bytes from :mod:`secrets`, written as 64 hex digits)
        when the file does not exist. The file is created readable and writable by its
        owner only (mode 0600) and never overwritten.

    Returns
    -------
    bytes
        The key.

    Raises
    ------
    FileNotFoundError
        The file is absent and ``create`` is False.
    ValueError
        The file holds fewer than 32 bytes of key.

    Notes
    -----
    Keep the key file at the site, out of the cohort folder and out of version control:
    whoever holds it can recompute a patient's code from their record number. A new key
    gives every patient a new code. A key file readable by other users raises a warning.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     key = load_key(Path(folder) / "site.key")
    ...     same = load_key(Path(folder) / "site.key")
    ...     mode = (Path(folder) / "site.key").stat().st_mode & 0o777
    >>> len(key), key == same, oct(mode)
    (32, True, '0o600')
    """
    path = Path(path) if path is not None else default_key_path()
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"No key file at {path}.")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_bytes(_KEY_BYTES).hex() + "\n")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"The key file {path} can be read by other users; restrict it with `chmod 600 {path}`.",
            UserWarning,
            stacklevel=2,
        )
    raw = path.read_bytes()
    text = raw.decode("ascii", errors="ignore").strip()
    key = bytes.fromhex(text) if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text) else raw
    if len(key) < _KEY_BYTES:
        raise ValueError(
            f"The key file {path} holds {len(key)} bytes; a key needs at least {_KEY_BYTES}. "
            "Delete it to have a new one created (every code changes), or restore the "
            "site's key file."
        )
    return key


def _key_bytes(key) -> bytes:
    if isinstance(key, bytes | bytearray):
        if len(key) < _KEY_BYTES:
            raise ValueError(f"A key needs at least {_KEY_BYTES} bytes; {len(key)} were passed.")
        return bytes(key)
    return load_key(key)


def _key_id(key: bytes) -> str:
    """A short public fingerprint of the key, to tell which key made a folder."""
    return hashlib.sha256(b"anxiety-outcomes key id\x00" + key).hexdigest()[:12]


def _identifier_text(value) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value).strip()


def pseudonym(identifier, key: bytes, kind: str = "patient") -> str:
    """The keyed pseudonym of one identifier: HMAC-SHA-256, shortened to 80 bits.

    Parameters
    ----------
    identifier : str or int
        The source identifier (surrounding spaces are ignored; ``12.0`` reads as ``12``).
    key : bytes
        The site's key (:func:`load_key`).
    kind : {"patient", "site", "rater"}
        What is coded; each kind has its own prefix (``P``, ``S``, ``R``) and its own
        codes, so a rater and a patient with the same number get unrelated codes.

    Returns
    -------
    str
        Patients: the prefix and 20 hexadecimal digits. Sites and raters: the prefix and
        24 decimal digits in four groups (``S123456-789012-345678-901234``), the form
        the schema's site and rater code pattern allows. Each matches its column's pattern.

    Examples
    --------
    >>> key = bytes(range(32))
    >>> code = pseudonym("MRN-001234", key)
    >>> code == pseudonym(" MRN-001234 ", key), len(code), code[0]
    (True, 21, 'P')
    >>> code == pseudonym("MRN-001234", bytes(range(1, 33)))
    False
    """
    prefix = _CODE_PREFIX[kind]
    message = f"{kind}\x1f{_identifier_text(identifier)}".encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()[:_CODE_HEX]
    if kind == "patient":
        return prefix + digest
    # site and rater codes follow the schema's code pattern for them: letters, then up to
    # four groups of at most six digits (24 decimal digits of the digest, about 80 bits)
    digits = f"{int(digest, 16) % 10**24:024d}"
    return prefix + "-".join(digits[k : k + 6] for k in range(0, 24, 6))


# --------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class FieldSpec:
    """Where one output column comes from: a source column or a fixed value."""

    column: str | None = None
    value: object = None
    values: Mapping | None = None
    choice: str | None = None


@dataclass(frozen=True)
class Block:
    """A table made of dated source rows: sessions, one instrument, adverse events."""

    date: str | None = None
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    form: str | None = None
    items: tuple[str | None, ...] = ()
    total: str | None = None
    recode: Mapping | None = None
    medication: tuple[str, ...] = ("ketamine",)
    routes: Mapping | None = None


@dataclass(frozen=True)
class ImportMapping:
    """A parsed mapping (see :func:`read_mapping`)."""

    source: str | None = None
    patient: str | None = None
    site: FieldSpec | None = None
    birth_date: str | None = None
    date_format: str | None = None
    patients: Mapping[str, FieldSpec] = field(default_factory=dict)
    covariates: Mapping[str, FieldSpec] = field(default_factory=dict)
    sessions: Block | None = None
    instruments: Mapping[str, Block] = field(default_factory=dict)
    adverse_events: Block | None = None


@functools.cache
def _schema_fields(table: str) -> dict[str, dict]:
    return {f["name"]: f for f in read_schema(table)["fields"]}


_PATIENT_KEYS = set(_schema_fields("patients")) - {"patient_id", "site_id"}
_SESSION_KEYS = set(_schema_fields("sessions")) - {"patient_id", "session_number", "study_day"}
_AE_KEYS = set(_schema_fields("adverse_events")) - {"patient_id", "study_day"}
_INSTRUMENT_FIELDS = {"administration", "rater_id"}


def _field_spec(spec, where: str, problems: list[str]) -> FieldSpec | None:
    if isinstance(spec, str):
        return FieldSpec(column=spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"column", "field", "value", "values", "choice"}
        if unknown:
            problems.append(f"`{where}` has unknown key(s) {sorted(unknown)}")
        column = spec.get("column", spec.get("field"))
        if (column is None) == ("value" not in spec):
            problems.append(f"`{where}` needs either `column` or `value`")
            return None
        values = spec.get("values")
        if values is not None and not isinstance(values, Mapping):
            problems.append(f"`{where}.values` must map source codes to output codes")
            values = None
        values = {str(k).strip(): v for k, v in values.items()} if values else None
        choice = spec.get("choice")
        return FieldSpec(
            column=None if column is None else str(column),
            value=spec.get("value"),
            values=values,
            choice=None if choice is None else str(choice),
        )
    problems.append(f"`{where}` must be a column name or {{column: ..., values: ...}}")
    return None


def _block(spec, where: str, allowed: set[str], problems: list[str], instrument=None) -> Block:
    if not isinstance(spec, Mapping):
        problems.append(f"`{where}` must be a mapping of keys to column names")
        return Block()
    common = {"date", "instrument", "form"}
    extra = {"items", "total", "recode"} if instrument else {"medication", "routes"}
    unknown = set(spec) - common - extra - allowed
    if unknown:
        problems.append(
            f"`{where}` has unknown key(s) {sorted(unknown)}; allowed: "
            f"{sorted(common | extra | allowed)}"
        )
    fields = {}
    for name in sorted(allowed & set(spec)):
        parsed = _field_spec(spec[name], f"{where}.{name}", problems)
        if parsed is not None:
            fields[name] = parsed
    items: tuple = ()
    if instrument is not None and spec.get("items") is not None:
        raw = spec["items"]
        n = instrument.n_items
        if isinstance(raw, Mapping):
            by_number = {}
            for k, v in raw.items():
                number = int(str(k).removeprefix("item_"))
                if not 1 <= number <= n:
                    problems.append(
                        f"`{where}.items` names item {number}; {instrument.name} has {n}"
                    )
                by_number[number] = str(v)
            items = tuple(by_number.get(k) for k in range(1, n + 1))
        elif isinstance(raw, list | tuple) and len(raw) == n:
            items = tuple(None if v is None else str(v) for v in raw)
        else:
            problems.append(f"`{where}.items` must list the {n} item columns of {instrument.name}")
    recode = spec.get("recode")
    if recode is not None and not isinstance(recode, Mapping):
        problems.append(f"`{where}.recode` must map source codes to item scores")
        recode = None
    medication = spec.get("medication", ["ketamine"])
    medication = (medication,) if isinstance(medication, str) else tuple(map(str, medication))
    routes = spec.get("routes")
    return Block(
        date=None if spec.get("date") is None else str(spec["date"]),
        fields=fields,
        form=spec.get("instrument", spec.get("form")),
        items=items,
        total=None if spec.get("total") is None else str(spec["total"]),
        recode={str(k).strip(): int(v) for k, v in recode.items()} if recode else None,
        medication=medication,
        routes={str(k).strip().lower(): v for k, v in routes.items()} if routes else None,
    )


#: Other names accepted for top-level keys (the schema's column names).
_ALIASES = {"patient_id": "patient", "site_id": "site"}
_TOP_KEYS = {
    "source",
    "patient",
    "site",
    "birth_date",
    "date_format",
    "patients",
    "covariates",
    "sessions",
    "instruments",
    "adverse_events",
}


def read_mapping(mapping) -> ImportMapping:
    """Read and check a mapping (a YAML/JSON file, a dict, or an :class:`ImportMapping`).

    Parameters
    ----------
    mapping : str, Path, dict or ImportMapping
        A ``.yaml``/``.yml``/``.json`` file or its content as a dict.

    Returns
    -------
    ImportMapping

    Raises
    ------
    MappingError
        Listing every problem (unknown keys, a key the schema does not have, ...).

    Notes
    -----
    Keys (all optional except where said; source names are column names for a wide
    sheet, field names for REDCap):

    ``source``
        ``wide``, ``redcap`` or ``fhir``; checked against the function called.
    ``patient``
        The column holding the patient identifier (REDCap: default the record id field,
        the first field of the data dictionary). It becomes a keyed pseudonym.
    ``site``
        A column whose values (e.g. clinic names, a REDCap data access group) become
        keyed site codes, or ``{value: ...}`` for one site (coded the same way).
    ``birth_date``
        A date column; the age at day 0 is computed from it (then it is dropped).
    ``date_format``
        A :func:`~datetime.datetime.strptime` format for dates that are not ISO
        ``YYYY-MM-DD`` (dates are never guessed).
    ``patients``
        Columns of the patients table (``route``, ``age``, ``sex``, ...) -> source.
    ``covariates``
        Extra patient-level columns to keep (numbers or yes/no only).
    ``sessions``
        The session log: ``date`` (required: the first session is day 0) and columns of
        the sessions table (``route``, ``dose_mg``, ``phase``, ...). FHIR: ``medication``
        (text matched in the medication's name or code, default ``ketamine``) and
        ``routes`` (route text or code -> route).
    ``instruments``
        ``GAD7`` and/or ``HAMA``: ``date``, ``items`` (a list of the 7 or 14 item
        columns, or ``{1: col, ...}``), ``total``, ``administration``, ``rater_id``,
        ``recode`` (source code -> item score) and, for REDCap, ``instrument`` (the
        form name). FHIR: GAD-7 items and total are found by LOINC code (linkId); HAM-A
        ``items`` and ``total`` are linkIds.
    ``adverse_events``
        ``date``, ``term``, ``severity``, ``serious``, ``related``.

    ``patient_id`` and ``site_id`` are accepted for ``patient`` and ``site``, and scale
    names are read without regard to case or hyphens (``GAD-7``, ``ham-a``).

    A source is a column name or ``{column: name, values: {code: output}}`` (REDCap:
    coded answers are first turned into their labels through the data dictionary;
    ``values`` may name codes or labels), or ``{value: constant}``. For a REDCap checkbox,
    ``choice: code`` reads one box as yes/no.

    Examples
    --------
    >>> m = read_mapping({"patient": "mrn", "patients": {"route": {"value": "iv"}},
    ...                   "sessions": {"date": "session_date"},
    ...                   "instruments": {"GAD7": {"date": "visit_date",
    ...                                            "items": [f"g{k}" for k in range(1, 8)]}}})
    >>> m.patient, m.sessions.date, m.instruments["GAD7"].items[0]
    ('mrn', 'session_date', 'g1')
    >>> read_mapping({"patients": {"name": "full_name"}})
    Traceback (most recent call last):
    ...
    analysis.intake.MappingError: The mapping has 1 problem(s):
      - `patients` has unknown key(s) ['name']; ...
    """
    if isinstance(mapping, ImportMapping):
        return mapping
    if isinstance(mapping, str | os.PathLike):
        path = Path(mapping)
        if not path.is_file():
            raise FileNotFoundError(f"Mapping file {path} not found.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            mapping = json.loads(text)
        else:
            import yaml

            mapping = yaml.safe_load(text)
    if not isinstance(mapping, Mapping):
        raise MappingError(["the mapping must be a dictionary (YAML mapping or JSON object)"])
    problems: list[str] = []
    for alias, name in _ALIASES.items():
        if alias in mapping:
            if name in mapping:
                problems.append(f"give `{name}` or `{alias}`, not both")
            mapping = {(name if k == alias else k): v for k, v in mapping.items()}
    unknown = set(mapping) - _TOP_KEYS
    if unknown:
        problems.append(f"unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    source = mapping.get("source")
    if source is not None and source not in SOURCE_KINDS:
        problems.append(f"`source` must be one of {list(SOURCE_KINDS)}")
    patients_spec = mapping.get("patients") or {}
    patients = {}
    if not isinstance(patients_spec, Mapping):
        problems.append("`patients` must map patients columns to source columns")
    else:
        bad = set(patients_spec) - _PATIENT_KEYS
        if bad:
            problems.append(
                f"`patients` has unknown key(s) {sorted(bad)}; allowed: {sorted(_PATIENT_KEYS)}"
            )
        for name in sorted(_PATIENT_KEYS & set(patients_spec)):
            parsed = _field_spec(patients_spec[name], f"patients.{name}", problems)
            if parsed is not None:
                patients[name] = parsed
    covariates = {}
    schema_names = set(_schema_fields("patients"))
    for name, spec in (mapping.get("covariates") or {}).items():
        if name in schema_names or not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            problems.append(
                f"covariate `{name}` must be a new lower-case name (letters, digits, '_')"
            )
            continue
        if is_identifier_column(name):
            problems.append(f"covariate `{name}` has a name that announces an identifier")
            continue
        parsed = _field_spec(spec, f"covariates.{name}", problems)
        if parsed is not None:
            covariates[str(name)] = parsed
    sessions = None
    if mapping.get("sessions") is not None:
        sessions = _block(mapping["sessions"], "sessions", _SESSION_KEYS, problems)
    instruments = {}
    for name, spec in (mapping.get("instruments") or {}).items():
        name = re.sub(r"[^A-Z0-9]", "", str(name).upper())  # GAD-7, gad7 -> GAD7; HAM-A -> HAMA
        if name not in INSTRUMENTS:
            problems.append(f"instrument `{name}` is not one of {sorted(INSTRUMENTS)}")
            continue
        instruments[name] = _block(
            spec or {}, f"instruments.{name}", _INSTRUMENT_FIELDS, problems, get_instrument(name)
        )
    adverse_events = None
    if mapping.get("adverse_events") is not None:
        adverse_events = _block(mapping["adverse_events"], "adverse_events", _AE_KEYS, problems)
    site = None
    if mapping.get("site") is not None:
        site = _field_spec(mapping["site"], "site", problems)
    if problems:
        raise MappingError(problems)
    return ImportMapping(
        source=source,
        patient=None if mapping.get("patient") is None else str(mapping["patient"]),
        site=site,
        birth_date=mapping.get("birth_date"),
        date_format=mapping.get("date_format"),
        patients=patients,
        covariates=covariates,
        sessions=sessions,
        instruments=instruments,
        adverse_events=adverse_events,
    )


# --------------------------------------------------------------------------- the result


@dataclass
class ImportedCohort(Cohort):
    """A :class:`~analysis.schema.Cohort` with the log of the import that made it.

    ``import_log`` holds only counts and column names (see :func:`write_import`).
    """

    import_log: dict = field(default_factory=dict)


@dataclass
class _Extract:
    """What a source adapter read, before study days and pseudonyms.

    Each frame has ``_pid`` (the source identifier, text) and, for the dated tables,
    ``_date`` (a ``datetime64`` day, NaT when missing or unparsable).
    """

    kind: str
    rows_in: dict
    patients: pd.DataFrame
    sessions: pd.DataFrame
    assessments: pd.DataFrame
    adverse_events: pd.DataFrame
    columns_used: set = field(default_factory=set)
    columns_dropped: list = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)


# --------------------------------------------------------------------------- shared steps

_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T].*)?$")


def _parse_dates(values: pd.Series, fmt: str | None) -> tuple[pd.Series, np.ndarray]:
    """Days (``datetime64[ns]``) and a mask of non-empty cells that are not dates."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.normalize(), np.zeros(len(values), dtype=bool)
    present = values.notna() & (values.astype(str).str.strip() != "")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    is_date = values.map(lambda v: isinstance(v, date)).to_numpy(dtype=bool)
    if is_date.any():
        out[is_date] = pd.to_datetime(values[is_date].map(lambda v: v.isoformat()[:10]))
    text = values[present.to_numpy() & ~is_date].astype(str).str.strip()
    if len(text):
        if fmt is None:
            iso = text.str.extract(_ISO_DATE, expand=False)
            parsed = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")
        else:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce").dt.normalize()
        out[text.index] = parsed
    bad = (present & out.isna()).to_numpy(dtype=bool)
    return out, bad


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


def _parse_times(values: pd.Series) -> pd.Series:
    """The moment of each cell that holds a time of day (ISO text or datetimes), else NaT.

    Used only to tell whether a day-0 assessment came after the first dose; times are
    compared as written (FHIR times, which carry an offset, in UTC).
    """
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        timed = values.notna() & (values != values.dt.normalize())
        out[timed] = values[timed]
        return out
    for index, value in values.items():
        if isinstance(value, str) and _ISO_TIME.match(value.strip()):
            moment = pd.to_datetime(value.strip(), errors="coerce", utc=True)
            out[index] = pd.NaT if pd.isna(moment) else moment.tz_localize(None)  # type: ignore[call-overload]  # pandas-stubs: a Hashable label
    return out


def _clean(value):
    """A cell as a plain Python value: missing -> None, integral floats -> int, text stripped."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _cleaned(values: pd.Series) -> pd.Series:
    """:func:`_clean` on every cell, kept as objects (``Series.map`` would turn None into NaN)."""
    return pd.Series([_clean(v) for v in values], index=values.index, dtype=object)


@functools.cache
def _enum_lookup(table: str) -> dict[str, dict[str, str]]:
    out = {}
    for name, spec in _schema_fields(table).items():
        enum = spec.get("constraints", {}).get("enum")
        if enum:
            out[name] = {str(v).lower(): v for v in enum}
    return out


_ROUTE_WORDS = (
    ("intravenous", "iv"),
    ("intramuscular", "im"),
    ("intranasal", "intranasal"),
    ("nasal", "intranasal"),
    ("sublingual", "sublingual"),
    ("buccal", "sublingual"),
    ("oral", "oral"),
    ("mouth", "oral"),
)


def _term_code(value):
    """An adverse-event term as the schema writes it: ``Elevated blood pressure`` ->
    ``elevated_blood_pressure``."""
    value = _clean(value)
    if value is None:
        return None
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_") or None


def _normalise_codes(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Case-insensitive match of coded columns to the schema's codes (``IV`` -> ``iv``)."""
    if table == "adverse_events" and "term" in frame.columns:
        frame["term"] = pd.Series([_term_code(v) for v in frame["term"]], index=frame.index)
    for column, codes in _enum_lookup(table).items():
        if column in frame.columns:

            def code(v, codes=codes, column=column):
                if v is None or (not isinstance(v, str) and pd.isna(v)):
                    return None
                text = str(v).strip()
                found = codes.get(text.lower())
                if found is None and column == "route":
                    found = _route_from_text(text)
                return found if found is not None else text

            frame[column] = frame[column].map(code).astype(object)
    return frame


def _route_from_text(text: str) -> str | None:
    """A route code from a route's text or display (``IV``, ``Intravenous route``, ...)."""
    lowered = text.strip().lower()
    if lowered in _enum_lookup("patients")["route"]:
        return lowered
    for word, route in _ROUTE_WORDS:
        if word in lowered:
            return route
    return None


def _first_per_patient(
    frame: pd.DataFrame, columns: list[str], failures: list, where
) -> pd.DataFrame:
    """One row per ``_pid``: the first non-missing value of each column (conflicts fail)."""
    out = pd.DataFrame({"_pid": pd.unique(frame["_pid"])})
    for column in columns:
        present = frame[["_pid", column]].dropna()
        n_values = present.drop_duplicates().groupby("_pid").size()
        conflicting = n_values.index[n_values > 1]
        if len(conflicting) and column not in ("age", "_birth"):
            rows = present.index[present["_pid"].isin(conflicting)]
            failures.extend(_failure("source", where(column), "conflicting_values", rows))
        first = present.groupby("_pid", sort=False)[column].first()
        out[column] = out["_pid"].map(first).astype(object)
    return out


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


# --------------------------------------------------------------------------- tabular sources


class _Sheet:
    """Rows of a wide sheet or a REDCap export; reads values through the mapping."""

    def __init__(
        self,
        frame: pd.DataFrame,
        kind: str,
        dictionary: pd.DataFrame | None = None,
        name: str = "source",
    ):
        self.name = name
        self.frame = frame.reset_index(drop=True)
        self.kind = kind
        self.used: set[str] = set()
        self.failures: list[dict] = []
        self.problems: list[str] = []
        self.dictionary = dictionary
        self.meta = {} if dictionary is None else {r.field_name: r for r in dictionary.itertuples()}
        self.choices = {
            name: _parse_choices(r.select_choices_or_calculations)
            for name, r in self.meta.items()
            if r.field_type in ("radio", "dropdown", "checkbox")
        }

    # -- columns

    def has(self, column: str) -> bool:
        return column in self.frame.columns or bool(self.checkbox_columns(column))

    def checkbox_columns(self, name: str) -> dict[str, str]:
        """``{code: export column}`` of a REDCap checkbox field."""
        if name not in self.choices or self.meta[name].field_type != "checkbox":
            return {}
        out = {}
        for code in self.choices[name]:
            column = f"{name}___{_checkbox_suffix(code)}"
            if column in self.frame.columns:
                out[code] = column
        return out

    def require(self, column: str | None, where: str, *, value_use: bool = True) -> bool:
        if column is None:
            return False
        if not self.has(column):
            self.problems.append(f"`{where}` names `{column}`, which is not in the source")
            return False
        meta = self.meta.get(column)
        if value_use and meta is not None:
            if str(getattr(meta, "identifier", "")).strip().lower() == "y":
                self.problems.append(
                    f"`{where}` maps `{column}`, flagged as an identifier in the data dictionary"
                )
                return False
            if meta.field_type == "notes":
                self.problems.append(f"`{where}` maps `{column}`, a free-text (notes) field")
                return False
        if value_use and is_identifier_column(column):
            self.problems.append(
                f"`{where}` maps `{column}`, whose name announces an identifier (a name, "
                "contact detail, date, record number or free text); such a column may only be "
                "the patient, a date, the birth date, the site or a rater, which are coded"
            )
            return False
        return True

    def raw(self, column: str) -> pd.Series:
        self.used.add(column)
        return self.frame[column]

    # -- values

    def values(
        self, spec: FieldSpec | None, where: str, *, scores: bool = False, coded: bool = False
    ) -> pd.Series:
        """The cells of one output column (object dtype, None for missing).

        ``coded``: the values will be replaced by keyed pseudonyms (site, rater), so a
        column flagged as an identifier may be read.
        """
        out = self._values(spec, where, scores, coded)
        absent = self.form_absent(spec.column if spec is not None else None)
        if absent is not None:
            out[absent] = None
        return out

    def form_absent(self, column: str | None) -> np.ndarray | None:
        """REDCap: rows where the field's form is not part of the row (``<form>_complete`` empty).

        REDCap writes every column on every row; a checkbox reads 0 and a calculated field
        may be filled on rows of events that do not hold the form at all.
        """
        meta = self.meta.get(column) if column is not None else None
        complete = None if meta is None else f"{meta.form_name}_complete"
        if complete is None or complete not in self.frame.columns:
            return None
        return _cleaned(self.frame[complete]).isna().to_numpy()

    def _values(self, spec: FieldSpec | None, where: str, scores: bool, coded: bool) -> pd.Series:
        n = len(self.frame)
        if spec is None:
            return pd.Series([None] * n, dtype=object)
        if spec.column is None:
            return pd.Series([spec.value] * n, dtype=object)
        if not self.require(spec.column, where, value_use=not coded):
            return pd.Series([None] * n, dtype=object)
        boxes = self.checkbox_columns(spec.column)
        if boxes:
            return self._checkbox(spec, boxes, where)
        raw = _cleaned(self.raw(spec.column))
        meta = self.meta.get(spec.column)
        if meta is not None and not scores:
            labels = self.choices.get(spec.column)
            if meta.field_type == "yesno":
                labels = {"1": "yes", "0": "no"}
            elif meta.field_type == "truefalse":
                labels = {"1": "true", "0": "false"}
            if labels:
                mapped = spec.values or {}

                def decode(v, labels=labels, mapped=mapped):
                    if v is None:
                        return None
                    code = str(v)
                    if code in mapped:
                        return mapped[code]
                    label = labels.get(code, code)
                    return mapped.get(label, label)

                return pd.Series([decode(v) for v in raw], index=raw.index, dtype=object)
        if spec.values:
            values = spec.values
            mapped = [None if v is None else values.get(str(v), v) for v in raw]
            return pd.Series(mapped, index=raw.index, dtype=object)
        return raw.astype(object)

    def _checkbox(self, spec: FieldSpec, boxes: dict[str, str], where: str) -> pd.Series:
        labels = self.choices[spec.column]  # type: ignore[index]  # a checkbox field names its column
        if spec.choice is not None:
            code = spec.choice
            if code not in boxes:
                code = next((c for c, label in labels.items() if label == spec.choice), code)
            if code not in boxes:
                self.problems.append(f"`{where}.choice` is not an option of `{spec.column}`")
                return pd.Series([None] * len(self.frame), dtype=object)
            box = _cleaned(self.raw(boxes[code]))
            yes_no = box.astype(str).eq("1").map({True: "yes", False: "no"}).astype(object)
            return yes_no.where(box.notna(), None)  # type: ignore[call-overload]  # pandas-stubs: where() takes no None
        ticked = pd.DataFrame(
            {code: _cleaned(self.raw(col)).astype(str).eq("1") for code, col in boxes.items()}
        )
        if (ticked.sum(axis=1) > 1).any():
            rows = np.flatnonzero((ticked.sum(axis=1) > 1).to_numpy())
            self.failures.extend(_failure(self.name, spec.column, "several_ticked", rows))  # type: ignore[arg-type]  # a checkbox field names its column
        mapped = spec.values or {}

        def first(row):
            for code, on in row.items():
                if on:
                    return mapped.get(code, mapped.get(labels[code], labels[code]))
            return None

        return ticked.apply(first, axis=1).astype(object)

    def dates(self, column: str | None, where: str, fmt: str | None) -> pd.Series:
        n = len(self.frame)
        if not self.require(column, where, value_use=False):
            return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
        parsed, bad = _parse_dates(self.raw(column), fmt)  # type: ignore[arg-type]  # require() passed: a column
        if bad.any():
            self.failures.extend(_failure(self.name, column, "date_format", np.flatnonzero(bad)))  # type: ignore[arg-type]  # require() passed: a column
        return parsed

    def rows_of(self, block: Block, columns: Sequence[str | None]) -> np.ndarray:
        """Rows holding this block: its REDCap form (if any) and at least one value (a
        ``None`` column, a field given as a constant, holds none)."""
        mask = np.zeros(len(self.frame), dtype=bool)
        for column in columns:
            if column is None or not self.has(column):
                continue
            boxes = self.checkbox_columns(column)
            cells = [self.frame[c] for c in boxes.values()] if boxes else [self.frame[column]]
            for cell in cells:
                text = _cleaned(cell)
                on = text.notna() if not boxes else text.astype(str).eq("1")
                mask |= on.to_numpy(dtype=bool)
        if self.kind == "redcap" and block.form and "redcap_repeat_instrument" in self.frame:
            repeat = _cleaned(self.frame["redcap_repeat_instrument"])
            mask &= (repeat.isna() | (repeat == block.form)).to_numpy(dtype=bool)
        return mask


def _parse_choices(text) -> dict[str, str]:
    """REDCap choices ``"1, iv | 2, im"`` -> ``{"1": "iv", "2": "im"}``."""
    out: dict[str, str] = {}
    if not isinstance(text, str):
        return out
    for part in text.split("|"):
        code, _, label = part.partition(",")
        if code.strip():
            out[code.strip()] = label.strip()
    return out


def _checkbox_suffix(code: str) -> str:
    """REDCap names checkbox columns ``field___code``, the code lower-cased, '-' -> '_'."""
    return re.sub(r"[^a-z0-9_]", "_", code.lower())


def _tabular_extract(sheet: _Sheet, mapping: ImportMapping, kind: str, sessions_sheet=None):
    """Sessions, assessments, adverse events and patients from rows of a sheet."""
    fmt = mapping.date_format
    if mapping.patient is None:
        raise MappingError(["`patient` (the column holding the patient identifier) is required"])
    if mapping.sessions is None or mapping.sessions.date is None:
        raise MappingError(
            ["`sessions.date` is required: day 0 is each patient's first ketamine session"]
        )
    patient, session_date = mapping.patient, mapping.sessions.date  # both checked above
    sheets = [sheet] if sessions_sheet is None else [sheet, sessions_sheet]
    for s in sheets:
        s.require(patient, "patient", value_use=False)
    if sheet.problems or (sessions_sheet is not None and sessions_sheet.problems):
        raise MappingError(sheet.problems + (sessions_sheet.problems if sessions_sheet else []))

    def pids(s: _Sheet) -> pd.Series:
        raw = _cleaned(s.raw(patient))
        ids = [None if v is None else _identifier_text(v) for v in raw]
        return pd.Series(ids, index=raw.index, dtype=object)

    # sessions
    s = sessions_sheet or sheet
    block = mapping.sessions
    rows = s.rows_of(block, [session_date])
    frame = pd.DataFrame({"_pid": pids(s), "_date": s.dates(session_date, "sessions.date", fmt)})
    if s.has(session_date):
        frame["_time"] = _parse_times(s.raw(session_date))
    for name, spec in block.fields.items():
        frame[name] = s.values(spec, f"sessions.{name}")
    sessions = frame[rows & frame["_pid"].notna().to_numpy()].copy()

    # assessments
    parts = []
    for name, ib in mapping.instruments.items():
        instrument = get_instrument(name)
        where = f"instruments.{name}"
        if not ib.items and ib.total is None:
            sheet.problems.append(f"`{where}` needs `items` and/or `total`")
            continue
        if ib.date is None:
            sheet.problems.append(f"`{where}.date` is required")
            continue
        columns = [c for c in ib.items if c is not None] + [c for c in [ib.total] if c]
        for c in columns:
            sheet.require(c, where)
        if kind == "redcap":
            _check_form(sheet, ib, columns, where)
        rows = sheet.rows_of(ib, columns)
        part = pd.DataFrame(
            {"_pid": pids(sheet), "_date": sheet.dates(ib.date, f"{where}.date", fmt)}
        )
        if sheet.has(ib.date):
            part["_time"] = _parse_times(sheet.raw(ib.date))
        part["instrument"] = name
        for k, column in enumerate(ib.items, start=1):
            spec = None if column is None else FieldSpec(column=column)
            part[f"item_{k}"] = _scores(sheet, spec, f"{where}.items", ib.recode)
        part["total"] = _scores(
            sheet, None if ib.total is None else FieldSpec(ib.total), where, None
        )
        for k in range(len(ib.items) + 1, instrument.n_items + 1):
            part[f"item_{k}"] = None
        for field_name, spec in ib.fields.items():
            coded = field_name == "rater_id"
            part[field_name] = sheet.values(spec, f"{where}.{field_name}", coded=coded)
        parts.append(part[rows & part["_pid"].notna().to_numpy()])
    assessments = pd.concat(parts, ignore_index=True) if parts else _empty(["_pid", "_date"])

    # adverse events
    adverse_events = _empty(["_pid", "_date"])
    ae = mapping.adverse_events
    if ae is not None:
        term = ae.fields.get("term")
        boxes = sheet.checkbox_columns(term.column) if term and term.column else {}
        frame = pd.DataFrame(
            {"_pid": pids(sheet), "_date": sheet.dates(ae.date, "adverse_events.date", fmt)}
        )
        for name, spec in ae.fields.items():
            if name != "term" or not boxes:
                frame[name] = sheet.values(spec, f"adverse_events.{name}")
        if boxes:  # one adverse event per ticked box
            labels = sheet.choices[term.column]  # type: ignore[union-attr, index]  # boxes: term.column is set
            mapped = term.values or {}  # type: ignore[union-attr]  # boxes: term is set
            pieces = []
            for code, column in boxes.items():
                on = _cleaned(sheet.raw(column)).astype(str).eq("1").to_numpy()
                piece = frame[on & frame["_pid"].notna().to_numpy()].copy()
                piece["term"] = mapped.get(code, mapped.get(labels[code], labels[code]))
                pieces.append(piece)
            adverse_events = pd.concat(pieces, ignore_index=True) if pieces else adverse_events
        else:
            cols = [spec.column for spec in ae.fields.values() if spec.column]
            rows = sheet.rows_of(ae, cols if term is None else [term.column])
            adverse_events = frame[rows & frame["_pid"].notna().to_numpy()].copy()
        if kind == "redcap":
            _check_form(
                sheet, ae, [s.column for s in ae.fields.values() if s.column], "adverse_events"
            )

    # patients
    frame = pd.DataFrame({"_pid": pids(sheet)})
    for name, spec in mapping.patients.items():
        frame[name] = sheet.values(spec, f"patients.{name}")
    for name, spec in mapping.covariates.items():
        frame[name] = sheet.values(spec, f"covariates.{name}")
    if mapping.site is not None:
        frame["_site"] = sheet.values(mapping.site, "site", coded=True)
    if mapping.birth_date is not None:
        frame["_birth"] = sheet.dates(mapping.birth_date, "birth_date", fmt)
    frame = frame[frame["_pid"].notna().to_numpy()]
    columns = [c for c in frame.columns if c != "_pid"]
    source_column = {n: s.column for n, s in {**mapping.patients, **mapping.covariates}.items()}
    source_column |= {"_site": mapping.site.column if mapping.site else None}
    source_column |= {"_birth": mapping.birth_date}
    patients = _first_per_patient(
        frame.astype(object).where(frame.notna(), None),  # type: ignore[call-overload]  # pandas-stubs: where() takes no None
        columns,
        sheet.failures,
        lambda c: source_column.get(c) or c,
    )
    problems = sheet.problems + (sessions_sheet.problems if sessions_sheet else [])
    if problems:
        raise MappingError(problems)
    used = set(sheet.used) | (sessions_sheet.used if sessions_sheet else set())
    dropped = [c for c in sheet.frame.columns if c not in used]
    if sessions_sheet is not None:
        dropped += [f"sessions:{c}" for c in sessions_sheet.frame.columns if c not in used]
    rows_in = {"source_rows": len(sheet.frame)}
    if sessions_sheet is not None:
        rows_in["session_log_rows"] = len(sessions_sheet.frame)
    return _Extract(
        kind=kind,
        rows_in=rows_in,
        patients=patients,
        sessions=sessions,
        assessments=assessments,
        adverse_events=adverse_events,
        columns_used=used,
        columns_dropped=dropped,
        failures=sheet.failures + (sessions_sheet.failures if sessions_sheet else []),
    )


def _check_form(sheet: _Sheet, block: Block, columns: list[str], where: str) -> None:
    """REDCap: the block's fields must belong to the form the mapping names."""
    if not block.form:
        return
    forms = {r.form_name for r in sheet.meta.values()}
    if block.form not in forms:
        sheet.problems.append(f"`{where}.instrument` `{block.form}` is not a form of the project")
        return
    for column in columns:
        meta = sheet.meta.get(column)
        if meta is not None and meta.form_name != block.form:
            sheet.problems.append(
                f"`{where}`: field `{column}` is on form `{meta.form_name}`, not `{block.form}`"
            )


def _scores(sheet: _Sheet, spec: FieldSpec | None, where: str, recode) -> pd.Series:
    """Item answers or totals as whole numbers (``recode`` first); failures counted."""
    values = sheet.values(spec, where, scores=True)
    if spec is None:
        return values

    def score(v):
        if v is None:
            return None
        if recode is not None and str(v) in recode:
            return recode[str(v)]
        if isinstance(v, int | np.integer):
            return int(v)
        text = str(v).strip()
        if re.fullmatch(r"[+-]?\d+(?:\.0*)?", text):
            return int(float(text))
        return _NOT_A_SCORE

    out = [score(v) for v in values]
    bad = np.array([v is _NOT_A_SCORE for v in out], dtype=bool)
    if bad.any():
        sheet.failures.extend(_failure(sheet.name, spec.column, "not_a_score", np.flatnonzero(bad)))  # type: ignore[arg-type]  # a score field names its column
    return pd.Series([None if b else v for v, b in zip(out, bad, strict=True)], dtype=object)


def _read_table_file(path: Path, columns: Iterable[str] = ()) -> pd.DataFrame:
    """A sheet file as text: workbooks with python-calamine (a dependency of the core;
    pandas' default reader, openpyxl, is not), a CSV with the delimiter (comma,
    semicolon, tab or ``|``) whose header names the most of ``columns``."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"):
        return pd.read_excel(path, dtype=object, engine="calamine")
    sep = "\t" if suffix in (".tsv", ".tab") else _csv_delimiter(path, columns)
    return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, encoding="utf-8-sig")


def _csv_delimiter(path: Path, columns: Iterable[str]) -> str:
    """The delimiter :func:`analysis.readers` finds for a cohort table, on the header line
    of a sheet: the one whose split names the most of ``columns`` (the comma when none)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
        header = next((line for line in file if line.strip()), "")
    try:
        delimiter, _ = _delimiter(header, path.name, {normalise_name(c) for c in columns})
    except FileProblem:  # no column named: the comma, and the mapping names what is missing
        return ","
    return delimiter


def from_wide(frame, mapping, *, key=None, sessions=None) -> ImportedCohort:
    """Import a wide sheet: one row per visit, item columns per scale, a date per row.

    Parameters
    ----------
    frame : DataFrame, str or Path
        The sheet (a DataFrame, or a ``.csv``/``.tsv``/``.parquet``/``.xlsx``/``.xls``/
        ``.ods`` file, read as text; a CSV may be separated by commas, semicolons, tabs or
        ``|``: the delimiter whose header names the mapped patient column is taken). A row
        may hold an assessment (any item or total filled), a ketamine session (its session
        date filled), both, or an adverse event.
    mapping : str, Path, dict or ImportMapping
        See :func:`read_mapping`. ``patient`` and ``sessions.date`` are required.
    key : bytes, str or Path, optional
        The site's key or key file (default :func:`default_key_path`; created if absent).
    sessions : DataFrame, str or Path, optional
        A separate session log (one row per ketamine session) in which ``patient`` and the
        ``sessions`` columns are found; by default they are read from ``frame``.

    Returns
    -------
    ImportedCohort
        Validated tables (as :func:`~analysis.schema.load_cohort` returns them) and the
        ``import_log``.

    Raises
    ------
    MappingError
        The mapping names columns the sheet does not have, or is malformed.
    IntakeError
        Values that cannot be read (dates not in the expected format, non-numeric item
        answers, patient-level values that differ between a patient's rows), with counts.
    DataValidationError
        The result breaks a rule of the data model (e.g. an item out of range).

    Examples
    --------
    >>> sheet = pd.DataFrame({
    ...     "mrn": ["A-17", "A-17", "A-17"], "name": ["Ann Example"] * 3,
    ...     "visit": ["2024-03-01", "2024-03-04", "2024-03-11"],
    ...     "ketamine": ["", "2024-03-04", "2024-03-11"],
    ...     **{f"g{k}": [2, 1, 0] for k in range(1, 8)}})
    >>> mapping = {"patient": "mrn", "patients": {"route": {"value": "iv"}},
    ...            "sessions": {"date": "ketamine"},
    ...            "instruments": {"GAD7": {"date": "visit",
    ...                                     "items": [f"g{k}" for k in range(1, 8)]}}}
    >>> cohort = from_wide(sheet, mapping, key=bytes(range(32)))
    >>> cohort.assessments[["instrument", "study_day", "item_1", "item_7"]]
      instrument  study_day  item_1  item_7
    0       GAD7         -3       2       2
    1       GAD7          0       1       1
    2       GAD7          7       0       0
    >>> cohort.sessions[["session_number", "study_day", "route"]]
       session_number  study_day route
    0               1          0    iv
    1               2          7    iv
    >>> cohort.import_log["columns_dropped"]
    ['name']
    """
    mapping = read_mapping(mapping)
    _check_kind(mapping, "wide")
    key = _key_bytes(key)
    named = [c for c in (mapping.patient, mapping.sessions and mapping.sessions.date) if c]
    if isinstance(frame, str | os.PathLike):
        frame = _read_table_file(Path(frame), named)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"`frame` must be a pandas DataFrame or a file, not {type(frame).__name__}."
        )
    log_sheet = None
    if sessions is not None:
        if isinstance(sessions, str | os.PathLike):
            sessions = _read_table_file(Path(sessions), named)
        log_sheet = _Sheet(sessions, "wide", name="session_log")
    extract = _tabular_extract(_Sheet(frame, "wide"), mapping, "wide", log_sheet)
    return _finish(extract, mapping, key)


# --------------------------------------------------------------------------- REDCap

_DICTIONARY_HEADERS = {
    "variable / field name": "field_name",
    "form name": "form_name",
    "field type": "field_type",
    "choices, calculations, or slider labels": "select_choices_or_calculations",
    "text validation type or show slider number": "text_validation_type_or_show_slider_number",
    "identifier?": "identifier",
}
_REDCAP_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


def _read_dictionary(source) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        dictionary = source.astype(str).copy()
    else:
        dictionary = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    dictionary.columns = [
        _DICTIONARY_HEADERS.get(str(c).strip().lower(), str(c).strip().lower())
        for c in dictionary.columns
    ]
    needed = {"field_name", "form_name", "field_type"}
    if not needed <= set(dictionary.columns):
        raise MappingError(
            [
                "the data dictionary needs the columns 'Variable / Field Name', 'Form Name' "
                "and 'Field Type' (REDCap's data dictionary CSV, or field_name, form_name, "
                "field_type from the API)"
            ]
        )
    for column in ("select_choices_or_calculations", "identifier"):
        if column not in dictionary.columns:
            dictionary[column] = ""
    dictionary["field_type"] = dictionary["field_type"].str.strip().str.lower()
    return dictionary


def from_redcap(records_csv, data_dictionary_csv, mapping, *, key=None) -> ImportedCohort:
    """Import a REDCap project from its raw (coded) records export and data dictionary.

    Parameters
    ----------
    records_csv : str, Path or DataFrame
        The "CSV / Microsoft Excel (raw data)" export: one row per record and event
        (``redcap_event_name``), plus one row per instance of a repeating instrument
        (``redcap_repeat_instrument``, ``redcap_repeat_instance``). Read as text.
    data_dictionary_csv : str, Path or DataFrame
        The project's data dictionary (CSV download, or the API's metadata export).
    mapping : str, Path, dict or ImportMapping
        See :func:`read_mapping`. Field names are REDCap variable names; ``instrument``
        in a block names its REDCap form, and its fields must belong to that form.
        ``patient`` defaults to the record id field (the dictionary's first field).
    key : bytes, str or Path, optional
        The site's key or key file (default :func:`default_key_path`).

    Returns
    -------
    ImportedCohort

    Notes
    -----
    Radio, dropdown, yes/no and true/false answers are turned into their labels through
    the data dictionary (``"1, iv | 2, im"``) and then through the mapping's ``values``
    (which may name codes or labels); coded values that match a schema code regardless of
    case are accepted (``IV`` -> ``iv``). Item answers and totals keep their raw codes
    (the scores; ``recode`` changes them). A checkbox (exported as ``field___code``
    columns of 0/1) gives the label of the ticked box, yes/no for one box (``choice:``),
    or, as an adverse-event ``term``, one adverse event per ticked box. Fields the
    dictionary flags as identifiers, and notes (free-text) fields, may not be mapped as
    values; survey timestamps, ``*_complete`` status fields, the data access group and
    every other unused column are dropped and listed.

    Examples
    --------
    >>> dictionary = pd.DataFrame({
    ...     "Variable / Field Name": ["record_id", "route", "session_date", "gad_date",
    ...                               *[f"gad7_{k}" for k in range(1, 8)]],
    ...     "Form Name": ["intake", "intake", "session", *["gad7"] * 8],
    ...     "Field Type": ["text", "radio", "text", "text", *["radio"] * 7],
    ...     "Choices, Calculations, OR Slider Labels": ["", "1, IV | 2, IM", "", "",
    ...         *["0, Not at all | 1, Several days | 2, More than half | 3, Nearly every day"] * 7]})
    >>> records = pd.DataFrame({
    ...     "record_id": ["101", "101", "101"],
    ...     "redcap_event_name": ["baseline_arm_1", "baseline_arm_1", "week_1_arm_1"],
    ...     "redcap_repeat_instrument": ["", "session", ""],
    ...     "redcap_repeat_instance": ["", "1", ""],
    ...     "route": ["2", "", ""], "session_date": ["", "2024-05-06", ""],
    ...     "gad_date": ["2024-05-06", "", "2024-05-13"],
    ...     **{f"gad7_{k}": ["3", "", "1"] for k in range(1, 8)}})
    >>> mapping = {"patients": {"route": "route"},
    ...            "sessions": {"instrument": "session", "date": "session_date"},
    ...            "instruments": {"GAD7": {"instrument": "gad7", "date": "gad_date",
    ...                            "items": [f"gad7_{k}" for k in range(1, 8)]}}}
    >>> cohort = from_redcap(records, dictionary, mapping, key=bytes(range(32)))
    >>> cohort.patients["route"].tolist()
    ['im']
    >>> cohort.assessments[["study_day", "item_1", "item_7"]]
       study_day  item_1  item_7
    0          0       3       3
    1          7       1       1
    """
    mapping = read_mapping(mapping)
    _check_kind(mapping, "redcap")
    key = _key_bytes(key)
    dictionary = _read_dictionary(data_dictionary_csv)
    if isinstance(records_csv, pd.DataFrame):
        records = records_csv.astype(object)
    else:
        records = pd.read_csv(records_csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if mapping.patient is None:
        mapping = replace(mapping, patient=str(dictionary["field_name"].iloc[0]))
    sheet = _Sheet(records, "redcap", dictionary)
    for column in _REDCAP_COLUMNS:  # structure, not data: not listed as dropped
        if column in records.columns:
            sheet.used.add(column)
    extract = _tabular_extract(sheet, mapping, "redcap")
    extract.rows_in = {"records_rows": len(records)}
    return _finish(extract, mapping, key)


def _check_kind(mapping: ImportMapping, kind: str) -> None:
    if mapping.source is not None and mapping.source != kind:
        raise MappingError(
            [f"the mapping is for a `{mapping.source}` source, but a `{kind}` import was asked"]
        )


# --------------------------------------------------------------------------- FHIR


def _fhir_resources(source) -> list[tuple[Mapping, str | None]]:
    """Resources from a Bundle, a resource, a list, a file (.json/.ndjson) or a folder,
    each with its ``fullUrl`` in the Bundle (None outside one)."""
    if isinstance(source, Mapping):
        documents = [source]
    elif isinstance(source, list | tuple):
        documents = list(source)
    else:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".json", ".ndjson"))
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"FHIR source {path} not found (a .json file or a folder).")
        documents = []
        for file in files:
            text = file.read_text(encoding="utf-8-sig")
            if file.suffix.lower() == ".ndjson":
                documents += [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                documents.append(json.loads(text))
    resources = []

    def walk(doc, full_url=None):
        if not isinstance(doc, Mapping):
            return
        if doc.get("resourceType") == "Bundle":
            for entry in doc.get("entry") or []:
                if isinstance(entry, Mapping) and "resource" in entry:
                    walk(entry["resource"], entry.get("fullUrl"))
            return
        resources.append((doc, full_url))

    for doc in documents:
        walk(doc)
    return resources


def _reference_key(reference, urls: dict) -> str | None:
    """A stable identity for a Patient reference: ``Patient/<id>`` where possible."""
    if isinstance(reference, Mapping):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        return None
    reference = reference.strip()
    if reference in urls:
        return urls[reference]
    reference = reference.split("/_history/")[0]
    match = re.search(r"(?:^|/)(Patient/[A-Za-z0-9\-.]{1,64})$", reference)
    return match.group(1) if match else reference


def _fhir_date(value) -> tuple[pd.Timestamp | None, str | None]:
    """The local calendar day of a FHIR date/dateTime, or a reason it has none."""
    if not isinstance(value, str) or not value.strip():
        return None, "no_date"
    match = re.match(r"^(\d{4}-\d{2}-\d{2})", value.strip())
    if not match:
        return None, "date_incomplete"
    day = pd.to_datetime(match.group(1), format="%Y-%m-%d", errors="coerce")
    return (None, "date_incomplete") if pd.isna(day) else (day, None)


def _answers(items, out: dict) -> None:
    """``{linkId: first answer}`` of a QuestionnaireResponse, nested items included."""
    for item in items or []:
        if not isinstance(item, Mapping):
            continue
        link = item.get("linkId")
        answers = item.get("answer") or []
        if link is not None and answers:
            out.setdefault(str(link), answers[0])
        _answers(item.get("item"), out)
        for answer in answers:
            if isinstance(answer, Mapping):
                _answers(answer.get("item"), out)


def _link_key(link: str) -> str:
    """``/69737-5/69725-0`` (LHC-Forms) and ``69725-0`` both read as ``69725-0``."""
    return link.strip().rstrip("/").rsplit("/", 1)[-1]


def _answer_score(answer: Mapping, recode) -> object:
    """The score of one answer; ``_NOT_A_SCORE`` when it holds something that is not a score."""
    for name in ("valueInteger", "valueDecimal"):
        if name in answer:
            value = answer[name]
            return int(value) if float(value).is_integer() else _NOT_A_SCORE
    if "valueQuantity" in answer:
        value = (answer["valueQuantity"] or {}).get("value")
        return int(value) if value is not None and float(value).is_integer() else _NOT_A_SCORE
    if "valueCoding" in answer:
        coding = answer["valueCoding"] or {}
        code = str(coding.get("code", "")).strip()
        if recode is not None and code in recode:
            return recode[code]
        for extension in coding.get("extension", []) + answer.get("extension", []):
            if extension.get("url") in _ORDINAL_EXTENSIONS:
                value = extension.get("valueDecimal", extension.get("valueInteger"))
                if value is not None and float(value).is_integer():
                    return int(value)
        if code in LOINC_ANSWER_SCORES:
            return LOINC_ANSWER_SCORES[code]
        return int(code) if re.fullmatch(r"\d+", code) else _NOT_A_SCORE
    if "valueString" in answer:
        text = str(answer["valueString"]).strip()
        if recode is not None and text in recode:
            return recode[text]
        return int(text) if re.fullmatch(r"\d+", text) else _NOT_A_SCORE
    return _NOT_A_SCORE


_USED_ELEMENTS = {
    "QuestionnaireResponse": {"resourceType", "id", "status", "subject", "authored", "item"},
    "MedicationAdministration": {
        "resourceType",
        "id",
        "status",
        "subject",
        "effectiveDateTime",
        "effectivePeriod",
        "medicationCodeableConcept",
        "medicationReference",
        "dosage",
    },
    "Patient": {"resourceType", "id", "gender", "birthDate"},
    "Medication": {"resourceType", "id", "code"},
}


def _medication_text(resource: Mapping, medications: dict) -> list[str]:
    concept = resource.get("medicationCodeableConcept")
    if concept is None:
        ref = (resource.get("medicationReference") or {}).get("reference")
        concept = medications.get(ref, {}).get("code") if ref else None
    concept = concept or {}
    words = [concept.get("text", "")]
    for coding in concept.get("coding") or []:
        words += [coding.get("display", ""), coding.get("code", "")]
    return [str(w).lower() for w in words if w]


def from_fhir(bundle_or_folder, mapping=None, *, key=None) -> ImportedCohort:
    """Import FHIR R4 resources: GAD-7 and HAM-A ``QuestionnaireResponse``s and sessions.

    Parameters
    ----------
    bundle_or_folder : str, Path, dict or list
        A Bundle (or single resource) as a dict or a ``.json`` file, an ``.ndjson`` bulk
        export file, or a folder of such files (searched recursively).
    mapping : str, Path, dict or ImportMapping, optional
        See :func:`read_mapping`. ``instruments.HAMA.items`` (14 linkIds) and ``total``
        name the HAM-A; GAD-7 is built in. ``patients`` and ``site`` take fixed values
        (``{value: ...}``); ``sessions.medication`` and ``sessions.routes`` tune how
        sessions are found.
    key : bytes, str or Path, optional
        The site's key or key file (default :func:`default_key_path`).

    Returns
    -------
    ImportedCohort

    Notes
    -----
    - **Sessions and day 0**: ``MedicationAdministration`` resources whose medication's
      text, display or code contains ``sessions.medication`` (default ``ketamine``, which
      also matches esketamine), status ``completed`` or ``in-progress``; the day is
      ``effectiveDateTime`` (or ``effectivePeriod.start``), the route is read from
      ``dosage.route`` (text, display or code; ``sessions.routes`` maps site codes), the
      dose from ``dosage.dose`` in mg or mg/kg.
    - **Scales**: ``QuestionnaireResponse`` with status ``completed`` or ``amended``.
      GAD-7 answers are found by the LOINC codes of its items (linkId ``69725-0``,
      ``/69725-0`` or ``/69737-5/69725-0``; :data:`GAD7_LOINC`) and the total by
      ``70274-6``; a mapping may give other linkIds. An answer is an integer or decimal,
      a LOINC answer code (:data:`LOINC_ANSWER_SCORES`), a coding with an
      ``ordinalValue``/``itemWeight`` extension or a numeric code.
    - **Dates**: ``authored`` (and session dates) are read as the calendar day written in
      the resource (its own time zone), not converted to UTC.
    - **Patients**: the ``subject`` reference (``Patient/<id>``; ``urn:uuid`` references
      are resolved through the Bundle's ``fullUrl``) is pseudonymized. ``Patient``
      resources give ``sex`` (``gender``) and the age at day 0 (``birthDate``); every
      other element (names, identifiers, telecom, address, ...) is dropped and listed.

    Examples
    --------
    >>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
    ...     {"resource": {"resourceType": "MedicationAdministration", "status": "completed",
    ...      "subject": {"reference": "Patient/pat-9"}, "effectiveDateTime": "2024-06-03T09:00:00Z",
    ...      "medicationCodeableConcept": {"text": "Ketamine 50 mg/mL"},
    ...      "dosage": {"route": {"text": "Intravenous"}, "dose": {"value": 35, "unit": "mg"}}}},
    ...     {"resource": {"resourceType": "QuestionnaireResponse", "status": "completed",
    ...      "subject": {"reference": "Patient/pat-9"}, "authored": "2024-06-17T10:00:00+02:00",
    ...      "item": [{"linkId": code, "answer": [{"valueCoding": {"code": "LA6569-3"}}]}
    ...               for code in GAD7_LOINC["items"]]}}]}
    >>> cohort = from_fhir(bundle, key=bytes(range(32)))
    >>> cohort.assessments[["instrument", "study_day", "item_1", "total"]]
      instrument  study_day  item_1  total
    0       GAD7         14       1   <NA>
    >>> cohort.sessions[["study_day", "route", "dose_mg"]]
       study_day route  dose_mg
    0          0    iv     35.0
    """
    mapping = read_mapping(mapping if mapping is not None else {})
    _check_kind(mapping, "fhir")
    fixed = {f"patients.{n}": s for n, s in mapping.patients.items()}
    fixed |= {"site": mapping.site} if mapping.site is not None else {}
    columns = [where for where, spec in fixed.items() if spec.column is not None]
    if columns:
        raise MappingError(
            [f"`{w}`: a FHIR import takes a fixed value ({{value: ...}})" for w in columns]
        )
    key = _key_bytes(key)
    reader = _FhirReader(_fhir_resources(bundle_or_folder))
    sessions = reader.sessions(mapping.sessions or Block())
    assessments = reader.assessments(mapping)
    patients = reader.patients(pd.concat([sessions["_pid"], assessments["_pid"]]))
    for name, spec in mapping.patients.items():
        patients[name] = spec.value  # type: ignore[call-overload]  # pandas-stubs: a constant of any type
    if mapping.site is not None:
        patients["_site"] = mapping.site.value  # type: ignore[call-overload]  # pandas-stubs: a constant of any type
    extract = _Extract(
        kind="fhir",
        rows_in={f"{k} resources": v for k, v in sorted(reader.rows_in.items())},
        patients=patients,
        sessions=sessions,
        assessments=assessments,
        adverse_events=_empty(["_pid", "_date"]),
        columns_used=set(),
        columns_dropped=sorted(reader.dropped),
        left_out=reader.left_out,
        failures=reader.failures,
    )
    return _finish(extract, mapping, key)


class _FhirReader:
    """Rows of the cohort's tables from FHIR resources; counts what it leaves out."""

    def __init__(self, pairs: list) -> None:
        self.pairs = pairs
        self.urls = {}  # Bundle fullUrl -> Patient/<id>
        self.medications = {}  # reference -> Medication resource
        for resource, full_url in pairs:
            kind = resource.get("resourceType")
            if kind == "Patient" and full_url and resource.get("id"):
                self.urls[full_url] = f"Patient/{resource['id']}"
            if kind == "Medication":
                for ref in (full_url, f"Medication/{resource.get('id')}"):
                    if ref:
                        self.medications[ref] = resource
        self.rows_in = Counter(str(r.get("resourceType")) for r, _ in pairs)
        self.left_out: Counter = Counter()
        self.failures: list[dict] = []
        self.dropped: set[str] = set()
        for resource, _ in pairs:
            kind = resource.get("resourceType")
            if kind not in _USED_ELEMENTS:
                self.left_out[f"{kind}: resource type not used"] += 1

    def of_type(self, kind: str):
        """``(position, resource)`` of one resource type; unused elements are noted."""
        for position, (resource, _) in enumerate(self.pairs):
            if resource.get("resourceType") == kind:
                kept = _USED_ELEMENTS[kind]
                self.dropped.update(f"{kind}.{e}" for e in resource if e not in kept)
                yield position, resource

    def sessions(self, block: Block) -> pd.DataFrame:
        wanted = [m.lower() for m in block.medication]
        fallback = block.fields["route"].value if "route" in block.fields else None
        rows = []
        for _, resource in self.of_type("MedicationAdministration"):
            text = _medication_text(resource, self.medications)
            if not any(w in t for w in wanted for t in text):
                self.left_out["MedicationAdministration: not a ketamine session"] += 1
                continue
            if resource.get("status") not in ("completed", "in-progress"):
                self.left_out["sessions: status not completed"] += 1
                continue
            pid = _reference_key(resource.get("subject"), self.urls)
            period = resource.get("effectivePeriod") or {}
            when = resource.get("effectiveDateTime") or period.get("start")
            day, reason = _fhir_date(when)
            if pid is None or day is None:
                self.left_out[f"sessions: {reason or 'no_subject'}"] += 1
                continue
            dosage = resource.get("dosage") or {}
            row = {"_pid": pid, "_date": day, "_time": _parse_times(pd.Series([when])).iloc[0]}
            row["route"] = _fhir_route(dosage.get("route") or {}, block.routes or {}) or fallback
            dose = dosage.get("dose") or {}
            unit = str(dose.get("unit") or dose.get("code") or "").strip().lower()
            if dose.get("value") is not None and unit in ("mg", "milligram", "milligrams"):
                row["dose_mg"] = float(dose["value"])
            elif dose.get("value") is not None and unit in ("mg/kg", "mg/kg{body weight}"):
                row["dose_mg_per_kg"] = float(dose["value"])
            rows.append(row)
        columns = ["_pid", "_date", "_time", "route", "dose_mg", "dose_mg_per_kg"]
        return pd.DataFrame(rows, columns=columns)

    def assessments(self, mapping: ImportMapping) -> pd.DataFrame:
        specs: dict[str, tuple[Any, Any, Any, Any]]  # items, total, recode, fields
        specs = {"GAD7": (GAD7_LOINC["items"], GAD7_LOINC["total"], None, {})}
        for name, ib in mapping.instruments.items():
            items = ib.items or (GAD7_LOINC["items"] if name == "GAD7" else ())
            total = ib.total or (GAD7_LOINC["total"] if name == "GAD7" else None)
            if not items and total is None:
                raise MappingError([f"`instruments.{name}` needs `items` (linkIds) and/or `total`"])
            specs[name] = (items, total, ib.recode, ib.fields)
        used = {_link_key(c) for items, total, *_ in specs.values() for c in [*items, total] if c}
        rows = []
        for position, resource in self.of_type("QuestionnaireResponse"):
            answers: dict = {}
            _answers(resource.get("item"), answers)
            by_key = {_link_key(link): answer for link, answer in answers.items()}
            self.dropped.update(f"QuestionnaireResponse.item[{k}]" for k in by_key if k not in used)
            found = [name for name, (items, total, *_) in specs.items()
                     if any(_link_key(c) in by_key for c in [*items, total] if c)]  # fmt: skip
            if not found:
                self.left_out["QuestionnaireResponse: not GAD-7 or HAM-A"] += 1
                continue
            if resource.get("status") not in ("completed", "amended"):
                self.left_out[f"assessments: status {resource.get('status')}"] += len(found)
                continue
            pid = _reference_key(resource.get("subject"), self.urls)
            day, reason = _fhir_date(resource.get("authored"))
            if pid is None or day is None:
                self.left_out[f"assessments: {reason or 'no_subject'}"] += len(found)
                continue
            for name in found:
                items, total, recode, fields = specs[name]
                row = {"_pid": pid, "_date": day, "instrument": name, "_position": position}
                row["_time"] = _parse_times(pd.Series([resource.get("authored")])).iloc[0]
                for k, link in enumerate(items, start=1):
                    answer = by_key.get(_link_key(link)) if link else None
                    row[f"item_{k}"] = None if answer is None else _answer_score(answer, recode)
                answer = by_key.get(_link_key(total)) if total else None
                row["total"] = None if answer is None else _answer_score(answer, None)
                rows.append(row | {f: spec.value for f, spec in fields.items()})
        if not rows:
            return _empty(["_pid", "_date", "instrument"])
        frame = pd.DataFrame(rows, dtype=object)
        for column in [c for c in frame.columns if c.startswith("item_") or c == "total"]:
            bad = frame[column].map(lambda v: v is _NOT_A_SCORE).to_numpy(dtype=bool)
            if bad.any():
                where = f"QuestionnaireResponse.{column}"
                self.failures.extend(
                    _failure("fhir", where, "not_a_score", frame.loc[bad, "_position"])
                )
            frame[column] = frame[column].where(~bad, None).astype(object)  # type: ignore[call-overload]  # pandas-stubs: where() takes no None
        return frame

    def patients(self, pids: pd.Series) -> pd.DataFrame:
        """One row per subject of a session or assessment; sex and birth day from Patient."""
        known = {}
        for _, resource in self.of_type("Patient"):
            birth = resource.get("birthDate")
            day = _fhir_date(birth)[0] if isinstance(birth, str) and len(birth) >= 10 else None
            known[f"Patient/{resource.get('id')}"] = {"sex": resource.get("gender"), "_birth": day}
        frame = pd.DataFrame({"_pid": pd.unique(pids.dropna())})
        for column in ("sex", "_birth"):
            frame[column] = [known.get(p, {}).get(column) for p in frame["_pid"]]
        return frame


def _fhir_route(concept: Mapping, routes: Mapping) -> str | None:
    """A route code from ``dosage.route``: the mapping's ``routes``, then its text."""
    candidates = [concept.get("text")] + [
        c.get(k) for c in concept.get("coding") or [] for k in ("code", "display")
    ]
    for candidate in [str(c) for c in candidates if c]:
        route = routes.get(candidate.strip().lower()) or _route_from_text(candidate)
        if route:
            return route
    return None


# --------------------------------------------------------------------------- finishing


def _age_at(birth: pd.Series, day0: pd.Series) -> pd.Series:
    """Whole years between two days (the birthday counts on the day itself)."""
    out: list[int | None] = []
    for b, d in zip(birth, day0, strict=True):
        if b is None or d is None or pd.isna(b) or pd.isna(d):
            out.append(None)
            continue
        years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
        out.append(int(years))
    return pd.Series(out, index=birth.index, dtype=object)


def _dated(frame: pd.DataFrame, day0: pd.Series, table: str, left_out: Counter) -> pd.DataFrame:
    """Rows with a date and a day 0, ``study_day`` added; the others counted by reason."""
    if not len(frame):
        return frame.assign(study_day=pd.Series([], dtype=object))
    no_date = frame["_date"].isna().to_numpy()
    start = frame["_pid"].map(day0)
    no_day0 = ~no_date & start.isna().to_numpy()
    if no_date.any():
        left_out[f"{table}: no date"] += int(no_date.sum())
    if no_day0.any():
        left_out[f"{table}: patient has no ketamine session date (no day 0)"] += int(no_day0.sum())
    keep = ~no_date & ~no_day0
    frame = frame[keep].copy()
    frame["study_day"] = (frame["_date"] - start[keep]).dt.days.astype(int)
    if table == "assessments":
        low, high = _STUDY_DAYS
        outside = ((frame["study_day"] < low) | (frame["study_day"] > high)).to_numpy()
        if outside.any():
            left_out[f"assessments: study day outside {low}..{high}"] += int(outside.sum())
            frame = frame[~outside]
    return frame


def _before_first_dose(assessments: pd.DataFrame, sessions: pd.DataFrame, left_out) -> pd.DataFrame:
    """Day-0 assessments timed after the first dose are left out (day 0 is pre-dose).

    Only when both times of day are known; a date alone is taken as before dosing.
    """
    if not len(assessments) or "_time" not in assessments or "_time" not in sessions:
        return assessments
    first = sessions[sessions["study_day"] == 0].groupby("_pid")["_time"].min()
    dose_time = pd.to_datetime(assessments["_pid"].map(first))
    when = pd.to_datetime(assessments["_time"])
    after = ((assessments["study_day"] == 0) & (when > dose_time)).to_numpy(dtype=bool)
    if after.any():
        left_out["assessments: on day 0 after the first dose"] += int(after.sum())
    return assessments[~after]


def _finish(extract: _Extract, mapping: ImportMapping, key: bytes) -> ImportedCohort:
    """Study days, ages, pseudonyms, schema codes; validate; the log."""
    _raise_failures(extract.failures)
    left_out = extract.left_out
    for name in ("sessions", "assessments", "adverse_events"):
        frame = getattr(extract, name)
        frame["_date"] = (
            pd.to_datetime(frame["_date"]) if len(frame) else pd.Series([], dtype="datetime64[ns]")
        )
    sessions = extract.sessions
    day0 = sessions.dropna(subset=["_date"]).groupby("_pid")["_date"].min()

    sessions = _dated(sessions, day0, "sessions", left_out)
    assessments = _dated(extract.assessments, day0, "assessments", left_out)
    assessments = _before_first_dose(assessments, sessions, left_out)
    adverse_events = _dated(extract.adverse_events, day0, "adverse_events", left_out)

    patients = extract.patients
    only_in_log = pd.Index(pd.unique(extract.sessions["_pid"].dropna())).difference(
        pd.Index(patients["_pid"])
    )
    if len(only_in_log):
        patients = pd.concat([patients, pd.DataFrame({"_pid": only_in_log})], ignore_index=True)
    no_day0 = ~patients["_pid"].isin(day0.index)
    if no_day0.any():
        left_out["patients: no ketamine session date (no day 0)"] += int(no_day0.sum())
    patients = patients[~no_day0.to_numpy()].copy()
    if "_birth" in patients:
        computed = _age_at(patients["_birth"], patients["_pid"].map(day0))
        if "age" in patients:
            computed = computed.where(computed.notna(), patients["age"])
        patients["age"] = computed
    if "age" in patients:
        age = pd.to_numeric(_cleaned(patients["age"]), errors="coerce")
        over = (age > _TOP_AGE - 1).to_numpy(dtype=bool)
        extract.notes["ages over 89 recorded as 90"] += int(over.sum())
        patients["age"] = _cleaned(patients["age"])
        patients.loc[over, "age"] = _TOP_AGE

    # session numbers in date order, then patients' route from their first session
    sessions = sessions.sort_values(["_pid", "study_day"], kind="stable")
    sessions["session_number"] = sessions.groupby("_pid").cumcount() + 1
    first_route = sessions[sessions["session_number"] == 1].set_index("_pid").get("route")
    if first_route is not None:
        if "route" not in patients:
            patients["route"] = None
        missing = patients["route"].isna()
        patients.loc[missing, "route"] = patients.loc[missing, "_pid"].map(first_route)
    if "route" in patients and len(sessions):
        patient_route = patients.set_index("_pid")["route"]
        if "route" not in sessions:
            sessions["route"] = None
        missing = sessions["route"].isna()
        sessions.loc[missing, "route"] = sessions.loc[missing, "_pid"].map(patient_route)

    # pseudonyms
    codes = {pid: pseudonym(pid, key) for pid in pd.unique(patients["_pid"])}
    if len(set(codes.values())) < len(codes):
        _raise_failures(_failure("patients", "patient_id", "duplicate_code"))
    for frame in (patients, sessions, assessments, adverse_events):
        if len(frame):
            frame.insert(0, "patient_id", frame["_pid"].map(codes))
        else:
            frame["patient_id"] = pd.Series([], dtype=object)
    if "_site" in patients:
        patients.insert(1, "site_id", patients["_site"].map(lambda v: _site_code(v, key)))
    if "rater_id" in assessments:
        assessments["rater_id"] = assessments["rater_id"].map(
            lambda v: None if _clean(v) is None else pseudonym(v, key, "rater")
        )

    tables = {
        "patients": patients,
        "assessments": assessments,
        "sessions": sessions,
        "adverse_events": adverse_events,
    }
    out = {}
    for name, frame in tables.items():
        if not len(frame) and name not in ("patients", "assessments"):
            continue  # an optional table without rows is absent
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
        frame = _normalise_codes(frame.reset_index(drop=True), name)
        schema_order = [c for c in _schema_fields(name) if c in frame.columns]
        extras = [c for c in frame.columns if c not in schema_order]
        out[name] = pd.DataFrame({c: _cleaned(frame[c]) for c in schema_order + extras})

    failures = []
    for name, spec in mapping.covariates.items():
        if name in out["patients"]:
            values = out["patients"][name].map(_covariate)
            bad = values.map(lambda v: isinstance(v, str))
            if bad.any():
                rows = np.flatnonzero(bad.to_numpy(dtype=bool))
                failures.extend(_failure("patients", spec.column or name, "not_numeric", rows))
            out["patients"][name] = values.where(~bad, None)  # type: ignore[call-overload]  # pandas-stubs: where() takes no None
    _raise_failures(failures)

    # Every key of every table comes from a patient with a day 0, so foreign keys hold by
    # construction; each table is validated once, and all failures are raised together.
    from analysis.deid import DeidentificationError

    typed, problems, identifiers = {}, [], False
    for name, frame in out.items():
        try:
            typed[name] = validate(frame, name)
        except DataValidationError as error:
            problems.append(error.failures)
            identifiers |= isinstance(error, DeidentificationError)
    if problems:
        failures = pd.concat(problems, ignore_index=True)
        # A text cell of the source may hold anything (a name typed into the sex column):
        # only numbers and the codes this import made are shown.
        shown = failures["column"].isin(["patient_id", "site_id", "rater_id", "instrument"])
        shown |= failures["value"].fillna("").str.fullmatch(r"-?\d+(?:\.\d+)?")
        failures["value"] = failures["value"].where(shown, "")
        raise (DeidentificationError if identifiers else DataValidationError)(failures)
    for name in TABLES:  # absent optional tables: empty, with the schema's columns and types
        if name not in typed:
            typed[name] = validate(_empty(_schema_fields(name)), name)

    import analysis

    log = {
        "log": "anxiety-outcomes import",
        "package_version": analysis.__version__,
        "source_kind": extract.kind,
        "rows_in": dict(extract.rows_in),
        "rows_out": {name: int(len(typed[name])) for name in TABLES},
        "rows_left_out": dict(sorted(left_out.items())),
        "columns_used": sorted(extract.columns_used),
        "columns_dropped": list(extract.columns_dropped),
        "changes": {k: v for k, v in sorted(extract.notes.items()) if v},
        "de_identification": {
            "study_day_0": "each patient's first ketamine session",
            "pseudonyms": "HMAC-SHA-256 with the site's key, 80 bits, prefix P/S/R",
            "key_id": _key_id(key),
            "ages": "over 89 recorded as 90",
        },
    }
    collected = ("patients", "assessments", "sessions")
    collected += ("adverse_events",) if mapping.adverse_events is not None else ()
    return ImportedCohort(**typed, collected=collected, import_log=log)


def _site_code(value, key: bytes):
    value = _clean(value)
    return None if value is None else pseudonym(value, key, "site")


def _covariate(value):
    value = _clean(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true"):
        return 1
    if text in ("no", "false"):
        return 0
    try:
        number = float(text)
    except ValueError:
        return text  # marks a failure
    return int(number) if number.is_integer() else number


# --------------------------------------------------------------------------- writing


def write_import(cohort: ImportedCohort, path, *, force: bool = False, format: str = "csv") -> Path:
    """Write an imported cohort and its ``import_log.json`` to a folder.

    Parameters
    ----------
    cohort : ImportedCohort
        The result of :func:`from_wide`, :func:`from_redcap` or :func:`from_fhir`.
    path : str or Path
        The cohort folder (created if needed).
    force : bool
        Replace a cohort already in the folder (its table files and log). Without it, a
        folder holding a cohort (a table file or an import log) is refused.
    format : {"csv", "parquet"}
        File format of the tables.

    Returns
    -------
    Path
        The folder; :func:`~analysis.schema.load_cohort` reads it.

    Notes
    -----
    The sessions table is always written (day 0 comes from it); the adverse-events table
    only when the mapping has an ``adverse_events`` block (otherwise it was not collected,
    which is not the same as none occurring). ``import_log.json`` holds the source kind, row counts in and out per table, rows left
    out by reason, the columns used and dropped (names only), what was changed (ages
    top-coded) and a short fingerprint of the key (not the key): no value from the data.

    Examples
    --------
    >>> import tempfile
    >>> from analysis.schema import load_cohort
    >>> sheet = pd.DataFrame({"id": ["7"], "day": ["2024-01-02"], "total": [12]})
    >>> mapping = {"patient": "id", "patients": {"route": {"value": "oral"}},
    ...            "sessions": {"date": "day"},
    ...            "instruments": {"GAD7": {"date": "day", "total": "total"}}}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = write_import(from_wide(sheet, mapping, key=bytes(32)), folder)
    ...     print(sorted(p.name for p in out.iterdir()))
    ...     print(len(load_cohort(out).assessments))
    ['assessments.csv', 'import_log.json', 'patients.csv', 'sessions.csv']
    1
    """
    if format not in FILE_FORMATS:
        raise ValueError(
            f"The value for `format` must be one of {list(FILE_FORMATS)}, but {format!r} was passed."
        )
    if not isinstance(cohort, Cohort):
        raise TypeError(f"`cohort` must be a Cohort, not {type(cohort).__name__}.")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder.")
    existing = [
        p.name
        for p in (folder.iterdir() if folder.is_dir() else [])
        if p.name == IMPORT_LOG or (p.stem in TABLES and p.suffix.lstrip(".") in FILE_FORMATS)
    ]
    if existing and not force:
        raise FileExistsError(
            f"{folder} already holds a cohort ({', '.join(sorted(existing))}); choose a new "
            "folder, or pass force=True (CLI: --force) to replace it."
        )
    from analysis.deid import check_deidentified

    check_deidentified(cohort)
    write_cohort(cohort, folder, format=format)
    log = getattr(cohort, "import_log", {}) or {}
    (folder / IMPORT_LOG).write_text(
        json.dumps(log, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    return folder


def import_source(
    kind: str,
    source,
    mapping,
    out,
    *,
    key=None,
    dictionary=None,
    sessions=None,
    force: bool = False,
    format: str = "csv",
) -> ImportedCohort:
    """Import a source and write the cohort folder: what ``anxiety-outcomes import`` does.

    Parameters
    ----------
    kind : {"wide", "redcap", "fhir"}
        The kind of source.
    source : str or Path
        The wide sheet file, the REDCap records CSV, or the FHIR file or folder.
    mapping : str, Path or dict
        The mapping (:func:`read_mapping`).
    out : str or Path
        The cohort folder to write (:func:`write_import`).
    key : str, Path or bytes, optional
        The site's key file (created if absent; default :func:`default_key_path`). It may
        not lie inside ``out``.
    dictionary : str or Path, optional
        The REDCap data dictionary (required for ``redcap``).
    sessions : str or Path, optional
        A separate session log for a wide sheet.
    force, format
        As :func:`write_import`.

    Returns
    -------
    ImportedCohort
        What was written.

    Raises
    ------
    ValueError
        A usage problem: an unknown kind, a missing dictionary, the key file inside the
        output folder (:class:`MappingError` for the mapping).
    FileExistsError
        ``out`` already holds a cohort and ``force`` is False (checked before reading).
    """
    if kind not in SOURCE_KINDS:
        raise ValueError(
            f"The value for `kind` must be one of {list(SOURCE_KINDS)}, but {kind!r} was passed."
        )
    out = Path(out)
    if isinstance(key, str | os.PathLike):
        key_path = Path(key).resolve()
        if key_path.is_relative_to(out.resolve()):
            raise ValueError(
                "The key file may not be inside the output folder: the key must stay at the "
                "site and never travel with the cohort. Keep it elsewhere."
            )
    if not force and out.is_dir():
        existing = [p.name for p in out.iterdir() if p.name == IMPORT_LOG or p.stem in TABLES]
        if existing:
            raise FileExistsError(
                f"{out} already holds a cohort ({', '.join(sorted(existing))}); choose a new "
                "folder, or pass force=True (CLI: --force) to replace it."
            )
    if kind == "wide":
        cohort = from_wide(source, mapping, key=key, sessions=sessions)
    elif kind == "redcap":
        if dictionary is None:
            raise ValueError(
                "A REDCap import needs the project's data dictionary (CLI: --dictionary FILE)."
            )
        cohort = from_redcap(source, dictionary, mapping, key=key)
    else:
        cohort = from_fhir(source, mapping, key=key)
    write_import(cohort, out, force=force, format=format)
    return cohort
