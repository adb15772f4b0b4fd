"""Small argument checks shared by every public function.

One helper per kind of check, so that every enum-like argument fails with the same
sentence ("The value for `x` must be one of [...], but 'y' was passed.") and every
missing column names the table and the columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
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


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise unless it lies strictly between 0 and 1."""
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(
            f"`alpha` must be a number strictly between 0 and 1 (0.05 gives 95% intervals), "
            f"but {alpha!r} was passed."
        )
    return float(alpha)


def to_pandas(frame: object, name: str = "data") -> pd.DataFrame:
    """A pandas frame from a pandas, Polars, DuckDB or Spark frame (collects lazy ones).

    For the small, aggregated or patient-level tables that statistics need; the large
    derivations stay in their engine (see :mod:`analysis.endpoints`).
    """
    if isinstance(frame, pd.DataFrame):
        return frame
    import narwhals as nw

    try:
        nw_frame = nw.from_native(frame)  # type: ignore[call-overload]  # any frame type
    except TypeError:
        raise TypeError(
            f"`{name}` must be a data frame (pandas, Polars, DuckDB, Spark), but a "
            f"{type(frame).__name__} was passed; build a DataFrame from it first."
        ) from None
    if isinstance(nw_frame, nw.LazyFrame):
        nw_frame = nw_frame.collect()
    return nw_frame.to_pandas()


def sort_cells(out: pd.DataFrame, df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Order rows by ``by``, visits in schedule order (by ``target_day``) when known."""
    if not by:
        return out.reset_index(drop=True)
    rank = None
    if "visit" in by and "target_day" in df.columns:
        if not isinstance(df["visit"].dtype, pd.CategoricalDtype):
            days = pd.to_numeric(df["target_day"], errors="coerce")
            rank = days.groupby(df["visit"].to_numpy()).min()

    def key(col: pd.Series) -> pd.Series:
        return col.map(rank) if rank is not None and col.name == "visit" else col

    return out.sort_values(by, key=key, kind="stable", na_position="last").reset_index(drop=True)


def check_min_cell(min_cell: int | None, *, optional: bool = True) -> int | None:
    """Validate ``min_cell`` (see :func:`analysis.disclosure.check_min_cell`, the policy)."""
    from analysis.disclosure import check_min_cell as _check

    return _check(min_cell, optional=optional)


def to_float_array(values: pd.Series) -> np.ndarray:
    """``values`` as a float array, NaN for missing or non-numeric entries (``pd.NA`` too)."""
    return pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
