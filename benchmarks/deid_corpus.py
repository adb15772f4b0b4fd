"""Score the de-identification guard on its corpus: false negatives and false positives.

    python benchmarks/deid_corpus.py            # counts, exit 1 unless both are 0
    python benchmarks/deid_corpus.py --list     # also list the misclassified cases

The corpus (``tests/data/deid_corpus.csv``, columns ``kind, text, expected``) holds
column names and cell values that are direct identifiers under HIPAA Safe Harbor
(45 CFR 164.514(b)(2)): names, record numbers, ZIP codes, phone numbers, dates and
month-level dates, street addresses, ages over 89, e-mail, URLs, IP addresses, headers
that are themselves identifiers; and look-alike ordinary values that must pass:
pseudonymous codes, rater codes shaped like dates, blood pressures, dose ranges,
version numbers, score ranges, clinical terms. A column name is scored with
:func:`analysis.deid.is_identifier_column`; a value is put in a free-text column of a
patients table and scored with :func:`analysis.deid.scan_identifiers`. The test suite
(``tests/test_deid_corpus.py``) asserts the same counts are 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from analysis.deid import is_identifier_column, scan_identifiers

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "deid_corpus.csv"


def load_corpus(path: Path = CORPUS) -> pd.DataFrame:
    """The corpus as read (every cell a string)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def flagged(kind: str, text: str) -> bool:
    """Whether the guard refuses a column name or a value in a free-text column."""
    if kind == "column_name":
        return is_identifier_column(text)
    frame = pd.DataFrame({"patient_id": ["P000001"], "extra_text": [text]})
    summary = scan_identifiers({"patients": frame})
    return bool(summary.loc[summary["column"] == "extra_text", "n_flagged"].sum() > 0)


def score(corpus: pd.DataFrame) -> pd.DataFrame:
    """The corpus with ``flagged`` and ``outcome`` (tp, tn, false_negative, false_positive)."""
    out = corpus.copy()
    out["flagged"] = [flagged(k, t) for k, t in zip(out["kind"], out["text"], strict=True)]
    identifier = out["expected"] == "identifier"
    out["outcome"] = "tn"
    out.loc[identifier & out["flagged"], "outcome"] = "tp"
    out.loc[identifier & ~out["flagged"], "outcome"] = "false_negative"
    out.loc[~identifier & out["flagged"], "outcome"] = "false_positive"
    return out


def main(argv: list[str]) -> int:
    scored = score(load_corpus())
    counts = scored.groupby(["kind", "expected"]).size()
    print(f"corpus: {CORPUS.name}")
    for (kind, expected), n in counts.items():
        print(f"  {kind:<12} {expected:<11} {n:>4} cases")
    fn = int((scored["outcome"] == "false_negative").sum())
    fp = int((scored["outcome"] == "false_positive").sum())
    print(f"false negatives: {fn}")
    print(f"false positives: {fp}")
    if "--list" in argv:
        wrong = scored[scored["outcome"].isin(["false_negative", "false_positive"])]
        for row in wrong.itertuples(index=False):
            print(f"  {row.outcome:<15} {row.kind:<12} {row.text!r}")
    return 0 if fn == fp == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
