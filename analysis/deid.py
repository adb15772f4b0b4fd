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

import datetime
import functools
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.cohort import (
    FAILURE_COLUMNS,
    Cohort,
    DataValidationError,
    cohort_tables,
    read_schema,
)

__all__ = [
    "AGE_TOP_CODE",
    "IDENTIFIER_CHECKS",
    "DeidentificationError",
    "check_deidentified",
    "is_identifier_column",
    "redact_failures",
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

# Common given names (US Social Security top names, unambiguous ones only: no name that
# is also an ordinary word such as "may", "grace", "mark" or "will").
_GIVEN_NAMES = frozenset(
    """
    aaron abigail adam adrian aiden alan albert alexander alexis alice alicia allison amanda
    amber amy andrea andrew angela anna anthony antonio ashley austin barbara benjamin
    betty beverly brandon brenda brian brittany bruce bryan carl carlos carol caroline
    catherine charles cheryl christian christina christine christopher cynthia daniel
    danielle david deborah debra denise dennis diana diane donald donna doris dorothy
    douglas dylan edward elizabeth emily emma eric ethan eugene evelyn frances gabriel
    gary george gerald gloria gregory hannah harold heather helen henry isabella jacob
    jacqueline james janet janice jason jeffrey jennifer jeremy jerry jesse jessica joan
    john johnny jonathan jose joseph joshua joyce juan judith judy julia julie justin
    karen katherine kathleen kathryn kayla keith kelly kenneth kevin kimberly kyle larry
    laura lauren lawrence linda lisa logan louis madison margaret maria marie marilyn
    martha mary matthew megan melissa michael michelle nancy natalie nathan nicholas
    nicole noah olivia pamela patricia patrick paul peter philip rachel ralph randy
    raymond rebecca richard robert roger ronald russell ruth ryan samantha samuel sandra
    sara sarah scott sean sharon shirley sophia stephanie stephen steven susan teresa
    terry theresa thomas timothy tyler victoria vincent virginia walter wayne william
    zachary jane jon jim bob tom liz kate beth meg ann anne sue joe mike dave steve
    """.split()
)

_STREET = (
    r"(?:street|avenue|road|boulevard|lane|drive|court|terrace|highway|parkway|ave|blvd"
    r"|rd|st\.|dr\.|ln\.)"
)

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
            # national: (area) or area-separator, then two groups joined by - or .
            r"|(?<![\w.+-])(?:\(\d{2,5}\)\s?|\d{2,5}[\s.-])\d{3,4}[.-]\d{3,4}(?![\w-]|\.\d)"
            # (area) number with spaces only: (555) 010 0199
            r"|(?<![\w.+-])\(\d{2,5}\)\s?\d{3,4}\s\d{3,4}(?![\w-]|\.\d)"
            # local seven-digit number: 010-0199
            r"|(?<![\w.+/-])\d{3}-\d{4}(?![\w-]|\.\d)"
        ),
    ),
    "ssn_value": (r"\d", re.compile(r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])")),
    "date_value": (
        r"\d",
        re.compile(
            # 2024-03-05, 2024/3/5, 2024.03.05 and month-level 2024-03, 2024/3
            rf"(?<![\w.-])(?:19|20)\d{{2}}([-/.]){_MONTH}(?:\1{_DAY})?(?!(?!T)[\w-]|\.\d)"
            # 03/05/2024, 5/3/24, 3/5 (slashes: a date in any order)
            rf"|(?<![\w./-]){_DAY}/{_DAY}(?:/(?:\d{{4}}|\d{{2}}))?(?![\w/-]|\.\d)"
            # 11/2023 (month and year)
            r"|(?<![\w./-])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\w/-])"
            # 05-03-2024 (four-digit year; 05-03-24 is left to codes such as R-05-03-24)
            rf"|(?<![\w.-]){_DAY}-{_DAY}-(?:19|20)\d{{2}}(?![\w-])"
            # 5.3.2024 and 05.03.24
            rf"|(?<![\w.-]){_DAY}\.{_DAY}\.(?:19|20)\d{{2}}(?![\w.]|-)"
            r"|(?<![\w.-])\d{2}\.\d{2}\.\d{2}(?![\w.]|-)"
            # 5 March 2024, 5th of March, 5-Mar-24, 5 March
            rf"|\b{_DAY}(?:st|nd|rd|th)?(?:\s+of)?[\s-]+{_MONTHS}\b\.?(?:,?[\s-]+\d{{2,4}}\b)?"
            # March 5, 2024; Mar 5
            rf"|\b{_MONTHS}\.?[\s-]+{_DAY}(?:st|nd|rd|th)?\b(?:,?[\s-]+\d{{4}}\b)?"
            # March 2024
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
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
        ),
    ),
    "record_number_value": (
        r"\d",
        re.compile(
            r"\b(?:mrn|mr\s?#|med(?:ical)?\s*rec(?:ord)?(?:\s*(?:no|num|number|#))?"
            r"|chart(?:\s*(?:no|num|number|#))?|acct|account|policy|member\s*id|nhs|hosp(?:ital)?"
            r"(?:\s*(?:no|num|number|#)))\s*[:#.-]?\s*\d{3,}",
            re.IGNORECASE,
        ),
    ),
    "zip_code_value": (
        r"\d",
        re.compile(
            r"(?<![\w.-])\d{5}-\d{4}(?![\w-])|\bzip(?:\s*code)?\s*[:#]?\s*\d{3,5}\b"
            r"|^\s*\d{5}\s*$",
            re.IGNORECASE,
        ),
    ),
    "street_address_value": (
        r"\d",
        re.compile(rf"\b\d{{1,5}}\s+(?:[A-Za-z]+\s+){{1,3}}{_STREET}(?!\w)", re.IGNORECASE),
    ),
    "age_over_90_value": (
        r"\d",
        re.compile(
            r"\b(?:9[1-9]|1[0-4]\d)\s*(?:-\s*)?(?:years?|yrs?|y/?o)\b(?:\s*old)?"
            r"|\bage[d:]?\s*(?:9[1-9]|1[0-4]\d)\b",
            re.IGNORECASE,
        ),
    ),
}

_NAME_VALUE_CHECK = "person_name_value"
_TEMPORAL_CHECK = "temporal_dtype"

#: Every check name the guard can report (``check`` column of ``.failures``).
IDENTIFIER_CHECKS = frozenset(
    {_NAME_CHECK, _AGE_CHECK, _NAME_VALUE_CHECK, _TEMPORAL_CHECK, *_VALUE_PATTERNS}
)

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
        # abbreviations and variants that announce the same (d_o_b, birth_dt, yob, medRecNo,
        # chart_no, hosp_no, SSN4, addr1, mail, cell, ip, lat/lon, pt_nm, admission_dt)
        "birth", "yob", "dt", "dts", "admission", "admit", "admitted", "discharge",
        "discharged", "encounter", "mail", "ip", "lat", "lon", "lng", "nm", "fname",
        "lname", "chart", "mrno", "medrecno", "hospno",
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
    ("d", "o", "b"),
    ("post", "code"),
    ("med", "rec"),
    ("hosp", "no"),
    ("hosp", "num"),
    ("hospital", "no"),
    ("hospital", "num"),
    ("hospital", "number"),
    ("case", "number"),
    ("case", "no"),
    ("cell", "phone"),
    ("cell", "no"),
    ("cell", "number"),
    ("cell", "num"),
)

# Refused only as the whole name (``cell``; ``cell_count`` is not a phone).
_WHOLE_NAME_TOKENS = frozenset({"cell", "cells", "cellular"})

# A token that is a family name plus digits (ssn4, addr1, zip5, phone2) is that family.
_TRAILING_DIGITS = re.compile(r"\d+$")

# `age` with a unit other than years is not an age in years (age_months = 240 is 20 y).
_NOT_YEARS = frozenset(
    {"month", "months", "mo", "mos", "week", "weeks", "wk", "wks", "day", "days", "group",
     "groups", "band", "bands", "category", "cat", "class", "onset"}
)  # fmt: skip

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

    A :class:`~analysis.cohort.DataValidationError` whose ``.failures`` rows for the
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
        _TEMPORAL_CHECK: (
            "a date/time column (datetime, date, timestamp or period type) is refused "
            "whatever its name: replace it by study days (days since the first ketamine "
            "session) or by the year alone"
        ),
        "record_number_value": "remove medical record, chart, account and similar numbers",
        "zip_code_value": "remove ZIP/postal codes (geography below state)",
        "street_address_value": "remove street addresses",
        "age_over_90_value": f"record ages over {AGE_TOP_CODE - 1} as {AGE_TOP_CODE} ('90 or older')",
        _NAME_VALUE_CHECK: (
            "remove personal names (patients, relatives, clinicians); use pseudonymous codes"
        ),
    }


def _name_tokens(column: object) -> list[str]:
    """Lower-case tokens of a column name (camelCase and punctuation split)."""
    spaced = _CAMEL.sub("_", str(column))
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def is_identifier_column(column: object) -> bool:
    """Whether a column name announces a direct identifier, or is one itself.

    Examples
    --------
    >>> [is_identifier_column(c) for c in ["patient_name", "DOB", "zipCode", "e-mail"]]
    [True, True, True, True]
    >>> [is_identifier_column(c) for c in ["d_o_b", "medRecNo", "SSN4", "post_code"]]
    [True, True, True, True]
    >>> [is_identifier_column(c) for c in ["patient_id", "study_day", "drug_name", "site_id"]]
    [False, False, False, False]
    """
    return _identifier_name(str(column))


@functools.lru_cache(maxsize=4096)
def _identifier_name(text: str) -> bool:
    """:func:`is_identifier_column` of a column name's text (the same names recur in
    every table checked, so the answers are kept)."""
    return _name_announces(text) or _header_is_identifier(text)


def _name_announces(column: object) -> bool:
    tokens = _name_tokens(column)
    if len(tokens) == 1 and _TRAILING_DIGITS.sub("", tokens[0]) in _WHOLE_NAME_TOKENS:
        return True
    for k, token in enumerate(tokens):
        base = _TRAILING_DIGITS.sub("", token)
        if token in _IDENTIFIER_TOKENS or (base and base in _IDENTIFIER_TOKENS):
            if base == "name" and k > 0 and tokens[k - 1] in _THING_QUALIFIERS:
                continue
            after = tokens[k + 1 : k + 3]
            if base == "name" and len(after) == 2 and after[0] == "of":
                if after[1] in _THING_QUALIFIERS:
                    continue  # name_of_scale
            return True
    return any(
        tuple(tokens[k : k + len(phrase)]) == phrase
        for phrase in _IDENTIFIER_PHRASES
        for k in range(len(tokens) - len(phrase) + 1)
    )


def _header_is_identifier(column: object) -> bool:
    """A header that is itself an e-mail, phone number, date, name, ... (a pasted value)."""
    return _header_text_is_identifier(str(column))


@functools.lru_cache(maxsize=4096)
def _header_text_is_identifier(text: str) -> bool:
    if any(pattern.search(text) for _, pattern in _VALUE_PATTERNS.values()):
        return True
    return _has_given_name(text)


def _has_given_name(text: str) -> bool:
    words = re.findall(r"[A-Za-z]+", _CAMEL.sub(" ", text))
    return any(w.lower() in _GIVEN_NAMES for w in words)


def _column_label(column: object, position: int) -> str:
    """The column name as it may be shown: a header that is an identifier is replaced."""
    if _header_is_identifier(column):
        return f"<column {position + 1}>"
    return str(column)


def _is_temporal(series: pd.Series) -> bool:
    """Dates, datetimes (naive or tz-aware), timestamps, periods, times, whatever the name."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return True
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        t = dtype.pyarrow_dtype
        return bool(pa.types.is_temporal(t) and not pa.types.is_duration(t))
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        if isinstance(dtype, pd.CategoricalDtype):
            values = np.asarray(dtype.categories, dtype=object)
        else:
            values = series.to_numpy(dtype=object)
        sample = values[pd.notna(values)][:1000]  # the first 1000 values present
        kinds = (datetime.date, datetime.time, pd.Timestamp, pd.Period, np.datetime64)
        return any(isinstance(v, kinds) for v in sample)
    return False


def _is_age_in_years(column: object) -> bool:
    tokens = _name_tokens(column)
    return "age" in tokens and not (set(tokens) & _NOT_YEARS)


def _is_text(series: pd.Series) -> bool:
    return (
        pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


# In a code column (``*_id``) five digits are a code, not a ZIP code.
_ZIP_IN_CODES = re.compile(
    r"(?<![\w.-])\d{5}-\d{4}(?![\w-])|\bzip(?:\s*code)?\s*[:#]?\s*\d{3,5}\b", re.IGNORECASE
)


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _value_masks(series: pd.Series, column: object = "") -> dict[str, np.ndarray]:
    """Rows of a text column whose value has each identifier shape (vectorised on uniques)."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
    # Plain Python over the distinct values: pandas' string methods loop in Python too,
    # and their overhead per call dominated the guard on small tables.
    text = [str(value) for value in np.asarray(uniques, dtype=object)]
    is_code = _name_tokens(column)[-1:] == ["id"]
    masks = {}
    checks = [
        (check, prefilter, _ZIP_IN_CODES if (check == "zip_code_value" and is_code) else pattern)
        for check, (prefilter, pattern) in _VALUE_PATTERNS.items()
    ]
    for check, prefilter, pattern in checks:
        candidate = _compiled(prefilter).search
        hit = np.zeros(len(text) + 1, dtype=bool)  # last slot: missing values (code -1)
        hit[: len(text)] = [
            candidate(value) is not None and pattern.search(value) is not None for value in text
        ]
        masks[check] = hit[codes]
    hit = np.zeros(len(text) + 1, dtype=bool)
    hit[: len(text)] = [_has_given_name(value) for value in text]
    masks[_NAME_VALUE_CHECK] = hit[codes]
    return masks


def _scan(tables: Cohort | Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
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

    for table, df in cohort_tables(tables, check=False).items():
        for position, (column, series) in enumerate(df.items()):
            label = _column_label(column, position)
            name_flagged = is_identifier_column(column)
            summary.append((table, label, _NAME_CHECK, int(name_flagged)))
            if name_flagged:
                flag(table, label, _NAME_CHECK, np.array([pd.NA], dtype=object))
            temporal = _is_temporal(series)
            summary.append((table, label, _TEMPORAL_CHECK, int(temporal)))
            if temporal:
                flag(table, label, _TEMPORAL_CHECK, np.array([pd.NA], dtype=object))
            elif _is_text(series):
                for check, mask in _value_masks(series, column).items():
                    summary.append((table, label, check, int(mask.sum())))
                    if mask.any():
                        flag(table, label, check, np.flatnonzero(mask))
            if _is_age_in_years(column) and not temporal:
                age = pd.to_numeric(series.astype(object), errors="coerce")
                mask = (age > AGE_TOP_CODE).to_numpy(dtype=bool, na_value=False)
                summary.append((table, label, _AGE_CHECK, int(mask.sum())))
                if mask.any():
                    flag(table, label, _AGE_CHECK, np.flatnonzero(mask))
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


def scan_identifiers(tables: Cohort | Mapping[str, pd.DataFrame]) -> pd.DataFrame:
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
    15  patients    age  age_over_90          1
    """
    return _scan(tables)[0]


def check_deidentified(tables: Cohort | Mapping[str, pd.DataFrame]) -> pd.DataFrame:
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


# A value of a constrained (numeric, boolean, coded) column may be shown in `.failures`
# when it is a short single token without an identifier shape, e.g. "thirty" or "IV".
_SHOWABLE = re.compile(r"^[\w.+-]{1,16}$")


def _free_text_capable(table: str, columns: str) -> bool:
    """Whether a column (or any of a comma-separated key) could hold free text.

    Text columns without a code list (``patient_id``, ``site_id``, ``rater_id``, ``arm``)
    and columns outside the schema can; numeric, boolean and coded columns cannot.
    """
    try:
        fields = {f["name"]: f for f in read_schema(table)["fields"]}
    except (ValueError, KeyError, FileNotFoundError):
        return True
    for column in str(columns).split(","):
        f = fields.get(column.strip())
        if f is None:
            return True
        if f.get("type", "string") == "string" and "enum" not in f.get("constraints", {}):
            return True
    return False


def _showable(value: object) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return True
    text = str(value).strip()  # surrounding spaces (a renamed header "Age ") are harmless
    if not _SHOWABLE.match(text) or _has_given_name(text):
        return False
    return not any(pattern.search(text) for _, pattern in _VALUE_PATTERNS.values())


def redact_failures(failures: pd.DataFrame) -> pd.DataFrame:
    """Blank every ``value`` of ``.failures`` that could identify someone.

    ``value`` is blanked (1) in every column the guard flagged (a row of a check of
    :data:`IDENTIFIER_CHECKS`), (2) in every column that could hold free text (text
    columns without a code list, columns outside the schema, keys made of them), and
    (3) elsewhere unless it is a short single token without an identifier shape.

    Parameters
    ----------
    failures : DataFrame
        ``table, row, column, check, value`` (as collected by validation).

    Returns
    -------
    DataFrame
        A copy with the values blanked (``""``).

    Examples
    --------
    >>> f = pd.DataFrame({"table": ["patients", "patients", "assessments"],
    ...                   "row": [0, 1, 2], "column": ["age", "sex", "rater_id"],
    ...                   "check": ["type integer", "one_of", "pattern"],
    ...                   "value": ["thirty", "Jane Doe", "RATER ZQX"]})
    >>> redact_failures(f)["value"].tolist()
    ['thirty', '', '']
    """
    out = failures.copy()
    if out.empty:
        return out
    deid = out["check"].isin(list(IDENTIFIER_CHECKS))
    flagged = set(zip(out.loc[deid, "table"], out.loc[deid, "column"], strict=True))
    free = {
        key: _free_text_capable(*key) for key in set(zip(out["table"], out["column"], strict=True))
    }
    blank = [
        any((t, c.strip()) in flagged for c in str(cols).split(","))
        or free[(t, cols)]
        or not _showable(v)
        for t, cols, v in zip(out["table"], out["column"], out["value"], strict=True)
    ]
    out.loc[np.asarray(blank, dtype=bool), "value"] = ""
    return out
