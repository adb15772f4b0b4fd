"""De-identification guard: refuse direct identifiers before any analysis sees the data.

The guard implements the parts of HIPAA Safe Harbor (45 CFR 164.514(b)(2)) that can be
recognised mechanically in a table:

* **column names** that announce a direct identifier: names and initials, contact
  details (e-mail, phone, fax), geography below state (address, street, city, county,
  ZIP/postcode), dates (date, dob, birth date, timestamp), record, account, insurance,
  licence and serial numbers (mrn, ssn, ...), URLs, IP and MAC addresses, user names,
  biometrics and photos, and free-text columns (notes, comments), which the data model
  does not accept;
* **values**, in every text column including the extra ones, shaped like an e-mail
  address, a phone number, a US social security number, a calendar date, a URL or an IP
  address;
* **ages over 90** in any column named ``age`` (ages over 89 are recorded as 90).

Design contract: the guard reports *where* (table, column, row position) and *what kind*
of identifier it found, never the value itself. :class:`DeidentificationError` messages,
``str``/``repr`` and ``.failures`` never contain an offending value (``value`` is blank),
and :func:`analysis.schema.collect_failures` blanks the value of every other failure in a
column the guard flagged.

Column names are split into lower-case tokens (``PatientName`` -> ``patient``, ``name``;
``e-mail`` -> ``e``, ``mail``) and matched token by token, so that ``study_day``,
``primary_diagnosis``, ``rater_id`` or ``site_id`` are not mistaken for identifiers, while
``patient_name``, ``first_name``, ``zipcode`` or ``date_of_birth`` are. ``name`` after a
qualifier that names a thing rather than a person (``drug_name``, ``scale_name``) is
accepted; ``site_name`` is not (a site's real name reveals geography: use ``site_id``).

Value shapes are deliberately specific so that pseudonymous codes (``P000123``,
``SITE-04``), numbers and years pass: a phone number needs a leading ``+`` or separated
digit groups (``+1 555 010 0199``, ``(555) 010-0199``, ``555.010.0199``); a run of digits
without separators is not taken for a phone number, an SSN or a date. Dates are
``2024-03-05``, ``2024/3/5``, ``03/05/2024``, ``5.3.2024``, ``05-03-24``, ``5 March 2024``,
``March 5, 2024``, ``05-Mar-2024`` and ``March 2024`` (any month-level date element).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.schema import FAILURE_COLUMNS, TABLES, Cohort, DataValidationError

__all__ = [
    "AGE_TOP_CODE",
    "IDENTIFIER_CHECKS",
    "DeidentificationError",
    "check_deidentified",
    "is_identifier_column",
    "scan_identifiers",
]

#: Highest age that may be recorded: ages over 89 are recorded as 90 ("90 or older").
AGE_TOP_CODE = 90

_NAME_CHECK = "identifier_name"
_AGE_CHECK = f"age_over_{AGE_TOP_CODE}"

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"

# check name -> (cheap pre-filter a value must contain, regular expression searched for)
_VALUE_PATTERNS: dict[str, tuple[str, re.Pattern]] = {
    "email_value": (
        "@",
        re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    ),
    "phone_value": (
        r"\d",
        re.compile(
            # international: a leading + then at least 8 digits, maybe grouped
            r"(?<![\w+])\+(?=(?:[\s().-]?\d){8})\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?!\w)"
            # national: (area) or area-separator, then two separated groups
            r"|(?<![\w.+-])(?:\(\d{2,5}\)\s?|\d{2,5}[\s.-])\d{3,4}[\s.-]\d{3,4}(?![\w-]|\.\d)"
        ),
    ),
    "ssn_value": (r"\d", re.compile(r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])")),
    "date_value": (
        r"\d",
        re.compile(
            rf"(?<![\d.])(?:19|20)\d{{2}}([-/.]){_MONTH}\1{_DAY}(?!\d)"
            rf"|(?<![\d.]){_DAY}([-/]){_DAY}\2(?:\d{{4}}|\d{{2}})(?![\d.])"
            rf"|(?<![\d.]){_DAY}\.{_DAY}\.(?:19|20)\d{{2}}(?![\d.])"
            rf"|\b{_DAY}(?:st|nd|rd|th)?(?:\s+of)?[\s-]+{_MONTHS}\.?,?[\s-]+(?:\d{{4}}|\d{{2}})\b"
            rf"|\b{_MONTHS}\.?[\s-]+{_DAY}(?:st|nd|rd|th)?,?[\s-]+\d{{4}}\b"
            rf"|\b{_MONTHS}\.?,?[\s-]+(?:19|20)\d{{2}}\b",
            re.IGNORECASE,
        ),
    ),
    "url_value": (
        r"(?i)://|www\.",
        re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.[A-Za-z0-9-]+\.\S+", re.IGNORECASE),
    ),
    "ip_address_value": (
        r"\d",
        re.compile(
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
        ),
    ),
}

#: Every check name the guard can report (``check`` column of ``.failures``).
IDENTIFIER_CHECKS = frozenset({_NAME_CHECK, _AGE_CHECK, *_VALUE_PATTERNS})

# A column is refused when one of its tokens is in this set ...
_IDENTIFIER_TOKENS = frozenset(
    {
        # names
        "name", "names", "firstname", "lastname", "surname", "forename", "fullname",
        "givenname", "familyname", "middlename", "maidenname", "nickname", "patientname",
        "initials",
        # contact details
        "email", "emails", "emailaddress", "phone", "phones", "telephone", "phonenumber",
        "tel", "mobile", "cellphone", "fax", "contact", "pager",
        # geography below state
        "address", "addr", "street", "streetaddress", "city", "town", "county", "zip",
        "zipcode", "zip3", "zip5", "postcode", "postal", "postalcode", "latitude",
        "longitude", "geolocation", "gps",
        # dates (all date elements except the year)
        "date", "dates", "datetime", "timestamp", "dob", "birthdate", "birthday",
        "dateofbirth",
        # record, account, plan, licence, device numbers
        "mrn", "ssn", "socialsecurity", "nhs", "medicare", "medicaid", "insurance",
        "account", "acct", "licence", "license", "passport", "serial", "vin", "beneficiary",
        "subscriber",
        # online identifiers and biometrics
        "url", "urls", "website", "webpage", "homepage", "ipaddress", "username", "login",
        "photo", "photograph", "fingerprint", "biometric", "biometrics", "voiceprint",
        # free text
        "note", "notes", "comment", "comments", "freetext", "narrative", "remark",
        "remarks", "memo",
    }
)  # fmt: skip

# ... or when it contains one of these runs of consecutive tokens.
_IDENTIFIER_PHRASES = (
    ("e", "mail"),
    ("ip", "addr"),
    ("mac", "address"),
    ("birth", "day"),
    ("birth", "date"),
    ("medical", "record"),
    ("record", "number"),
    ("chart", "number"),
    ("social", "security"),
    ("health", "plan"),
    ("policy", "number"),
    ("policy", "id"),
    ("member", "id"),
    ("member", "number"),
    ("device", "id"),
    ("device", "serial"),
    ("free", "text"),
)

# `name` preceded by one of these names a thing, not a person (drug_name, scale_name).
_THING_QUALIFIERS = frozenset(
    {
        "drug", "medication", "medicine", "product", "brand", "instrument", "scale",
        "study", "trial", "protocol", "arm", "test", "item", "event", "term", "variable",
        "column", "field", "file",
    }
)  # fmt: skip

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class DeidentificationError(DataValidationError):
    """Direct identifiers were found; nothing was loaded.

    A :class:`~analysis.schema.DataValidationError` whose ``.failures`` rows for the
    guard's checks (:data:`IDENTIFIER_CHECKS`) have a blank ``value``; the message names
    tables, columns, checks and counts, never a value.

    Examples
    --------
    >>> tables = {"patients": pd.DataFrame({"patient_id": ["P1"], "email": ["x"]})}
    >>> try:
    ...     check_deidentified(tables)
    ... except DeidentificationError as exc:
    ...     print(exc.failures[["table", "column", "check", "value"]].to_string(index=False))
       table column           check value
    patients  email identifier_name
    """

    title = "Direct identifiers found"

    hints = {
        **DataValidationError.hints,
        _NAME_CHECK: (
            "remove columns that hold names, contact details, addresses, dates, record or "
            "account numbers, or free text; replace a needed one by a pseudonymous code "
            "under a neutral name (e.g. `site_id` instead of a site name)"
        ),
        "email_value": "remove e-mail addresses from the data",
        "phone_value": "remove phone and fax numbers from the data",
        "ssn_value": "remove social security and similar numbers; use pseudonymous codes",
        "date_value": (
            "replace calendar dates by study days (days since the first ketamine session) "
            "or by the year alone"
        ),
        "url_value": "remove URLs from the data",
        "ip_address_value": "remove IP addresses from the data",
        _AGE_CHECK: f"record ages over {AGE_TOP_CODE - 1} as {AGE_TOP_CODE} ('90 or older')",
    }


def _name_tokens(column: object) -> list[str]:
    """Lower-case tokens of a column name (camelCase and punctuation split)."""
    spaced = _CAMEL.sub("_", str(column))
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def is_identifier_column(column: object) -> bool:
    """Whether a column name announces a direct identifier.

    Examples
    --------
    >>> [is_identifier_column(c) for c in ["patient_name", "DOB", "zipCode", "e-mail"]]
    [True, True, True, True]
    >>> [is_identifier_column(c) for c in ["patient_id", "study_day", "drug_name", "site_id"]]
    [False, False, False, False]
    """
    tokens = _name_tokens(column)
    for k, token in enumerate(tokens):
        if token in _IDENTIFIER_TOKENS:
            if token == "name" and k > 0 and tokens[k - 1] in _THING_QUALIFIERS:
                continue
            return True
    return any(
        tuple(tokens[k : k + len(phrase)]) == phrase
        for phrase in _IDENTIFIER_PHRASES
        for k in range(len(tokens) - len(phrase) + 1)
    )


def _is_text(series: pd.Series) -> bool:
    return (
        pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def _value_masks(series: pd.Series) -> dict[str, np.ndarray]:
    """Rows of a text column whose value has each identifier shape (vectorised on uniques)."""
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype(str)
    masks = {}
    for check, (prefilter, pattern) in _VALUE_PATTERNS.items():
        candidate = text.str.contains(prefilter, regex=True)
        hit = np.zeros(len(text) + 1, dtype=bool)  # last slot: missing values (code -1)
        if candidate.any():
            hit[: len(text)][candidate.to_numpy()] = [
                pattern.search(value) is not None for value in text[candidate]
            ]
        masks[check] = hit[codes]
    return masks


def _tables_dict(tables) -> dict[str, pd.DataFrame]:
    if isinstance(tables, Cohort):
        return {name: getattr(tables, name) for name in TABLES}
    if not isinstance(tables, Mapping):
        raise TypeError(
            "`tables` must be a Cohort or a mapping of table name to DataFrame, "
            f"but a {type(tables).__name__} was passed."
        )
    return dict(tables)


def _scan(tables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary (one row per check performed) and failures (value blank) of the guard."""
    summary: list[tuple[str, str, str, int]] = []
    failures: list[pd.DataFrame] = []

    def flag(table: str, column: str, check: str, rows: np.ndarray) -> None:
        failures.append(
            pd.DataFrame(
                {
                    "table": table,
                    "row": pd.array(rows, dtype="Int64"),
                    "column": str(column),
                    "check": check,
                    "value": "",
                }
            )
        )

    for table, df in _tables_dict(tables).items():
        for column in df.columns:
            name_flagged = is_identifier_column(column)
            summary.append((table, str(column), _NAME_CHECK, int(name_flagged)))
            if name_flagged:
                flag(table, column, _NAME_CHECK, np.array([pd.NA], dtype=object))
            series = df[column]
            if _is_text(series):
                for check, mask in _value_masks(series).items():
                    summary.append((table, str(column), check, int(mask.sum())))
                    if mask.any():
                        flag(table, column, check, np.flatnonzero(mask))
            if "age" in _name_tokens(column):
                age = pd.to_numeric(series.astype(object), errors="coerce")
                mask = (age > AGE_TOP_CODE).to_numpy(dtype=bool, na_value=False)
                summary.append((table, str(column), _AGE_CHECK, int(mask.sum())))
                if mask.any():
                    flag(table, column, _AGE_CHECK, np.flatnonzero(mask))
    summary_df = pd.DataFrame(summary, columns=["table", "column", "check", "n_flagged"])
    summary_df = summary_df.astype(
        {"table": "string", "column": "string", "check": "string", "n_flagged": "int64"}
    )
    if failures:
        failures_df = pd.concat(failures, ignore_index=True)
    else:
        failures_df = pd.DataFrame({c: [] for c in FAILURE_COLUMNS})
    failures_df = failures_df.astype(
        {
            "table": "string",
            "row": "Int64",
            "column": "string",
            "check": "string",
            "value": "string",
        }
    )
    return summary_df, failures_df


def scan_identifiers(tables) -> pd.DataFrame:
    """Count, per table, column and check, the direct identifiers the guard finds.

    Parameters
    ----------
    tables : Cohort or mapping of str to DataFrame
        Tables as read (any columns, any dtypes).

    Returns
    -------
    DataFrame
        Columns ``table, column, check, n_flagged``: one row per check performed, also
        when nothing was flagged, so that a report can show what was checked. Every column
        gets ``identifier_name`` (``n_flagged`` 1 when its name is refused, else 0); text
        columns get one row per value shape (``email_value``, ``phone_value``,
        ``ssn_value``, ``date_value``, ``url_value``, ``ip_address_value``; ``n_flagged``
        counts rows); columns named ``age`` get ``age_over_90`` (rows with an age over 90).
        Values are never returned.

    Examples
    --------
    >>> patients = pd.DataFrame({"patient_id": ["P000123", "P000124"], "age": [34, 95]})
    >>> scan_identifiers({"patients": patients}).query("n_flagged > 0")
           table column       check  n_flagged
    8   patients    age  age_over_90          1
    """
    return _scan(tables)[0]


def check_deidentified(tables) -> pd.DataFrame:
    """Raise :class:`DeidentificationError` when any direct identifier is found.

    Parameters
    ----------
    tables : Cohort or mapping of str to DataFrame
        Tables as read (any columns, any dtypes).

    Returns
    -------
    DataFrame
        The :func:`scan_identifiers` summary (every count 0) when the tables pass.

    Raises
    ------
    DeidentificationError
        With one ``.failures`` row per refused column (``row`` empty) and per flagged cell
        (``row`` its 0-based position); ``value`` is always blank.

    Examples
    --------
    >>> ok = pd.DataFrame({"patient_id": ["P000123"], "site_id": ["SITE-04"], "age": [90]})
    >>> int(check_deidentified({"patients": ok})["n_flagged"].sum())
    0
    """
    summary, failures = _scan(tables)
    if len(failures):
        raise DeidentificationError(failures)
    return summary
