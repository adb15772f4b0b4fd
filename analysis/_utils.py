"""Small argument checks shared by every public function.

One helper per kind of check, so that every enum-like argument fails with the same
sentence ("The value for `x` must be one of [...], but 'y' was passed.") and every
missing column names the table and the columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"The value for `{name}` must be one of {choices}, but {value!r} was passed."
        )


def as_by(by: str | Sequence[str] | None) -> list[str]:
    """Normalise a ``by`` argument: a column name, a sequence of names, or () / None."""
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def check_columns(df: pd.DataFrame, required: Iterable[str], table: str) -> None:
    """Raise ``ValueError`` naming ``table`` when ``df`` lacks any of ``required``."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"Table `{table}` is missing the column(s) {missing}; it has {list(df.columns)}. "
            "Pass the output of the function that makes this table, or rename the columns."
        )
