"""Small argument checks shared by every public function.

One helper per kind of check, so that every enum-like argument fails with the same
sentence ("The value for `x` must be one of [...], but 'y' was passed.") and every
missing column names the table and the columns.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

# The engine layer owns frame conversion; the old home of ``to_pandas`` keeps the name.
from analysis._frames import to_pandas as to_pandas

#: The extra (``pip install "anxiety-outcomes[EXTRA]"``) that installs each optional module.
EXTRAS = {
    **dict.fromkeys(["matplotlib", "seaborn"], "plots"),
    **dict.fromkeys(
        ["papermill", "nbconvert", "nbformat", "nbclient", "jupyter_client", "ipykernel"]
        + ["IPython", "great_tables", "jupyterlab"],
        "reports",
    ),
    **dict.fromkeys(["polars", "duckdb"], "engines"),
    "pyspark": "spark",
}


def missing_extra(module: str | None) -> str | None:
    """How to install a missing optional module (None for a module no extra installs).

    Examples
    --------
    >>> missing_extra("seaborn.axisgrid")
    'seaborn, which the `plots` extra installs: pip install "anxiety-outcomes[plots]" (...)'
    >>> missing_extra("numpy") is None
    True
    """
    root = (module or "").split(".")[0]
    extra = EXTRAS.get(root)
    if extra is None:
        return None
    return (
        f'{root}, which the `{extra}` extra installs: pip install "anxiety-outcomes[{extra}]" '
        "(in a clone of the repository: make install)"
    )


@contextlib.contextmanager
def needs_extra(what: str) -> Iterator[None]:
    """Imports for ``what`` whose missing module is named with the extra that installs it.

    A ``ModuleNotFoundError`` of an optional module (:data:`EXTRAS`) is raised again with
    the ``pip install`` command in its message (and the same ``name``); any other error
    passes unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as error:
        hint = missing_extra(error.name)
        if hint is None:
            raise
        raise ModuleNotFoundError(f"{what} needs {hint}.", name=error.name) from error


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


def check_min_cell(min_cell: int | None, *, optional: bool = True) -> int | None:
    """Validate ``min_cell`` (see :func:`analysis.disclosure.check_min_cell`, the policy)."""
    from analysis.disclosure import check_min_cell as _check

    return _check(min_cell, optional=optional)


def to_float_array(values: pd.Series) -> np.ndarray:
    """``values`` as a float array, NaN for missing or non-numeric entries (``pd.NA`` too)."""
    return pd.to_numeric(values, errors="coerce").astype(float).to_numpy()


# --------------------------------------------------------------------------- deprecations
#
# Arguments are renamed or made keyword-only with one release of grace: the old spelling
# keeps working and warns (DeprecationWarning, naming the new spelling). CHANGELOG.md
# lists each one under "Deprecated"; remove the shim in the release after.


def _warn_deprecated(message: str) -> None:
    """Warn at the caller's line, past every frame of this module (stacked shims)."""
    frame, level = inspect.currentframe(), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def renamed_arguments(**renames: str | tuple[str, Callable]) -> Callable:
    """Accept the old keyword ``old`` of a function as ``new``, with a DeprecationWarning.

    ``renames`` maps an old name to the new name, or to ``(new, convert)`` when the
    meaning changed too (``convert(old_value)`` gives the new value).

    Examples
    --------
    >>> @renamed_arguments(hue="group")
    ... def plot(table, *, group=None):
    ...     return group
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     plot(None, hue="route"), str(caught[0].message)
    ('route', '`hue` of plot() is deprecated: pass `group=` instead (`hue` will be removed in the next release).')
    """

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, target in renames.items():
                if old not in kwargs:
                    continue
                new, convert = target if isinstance(target, tuple) else (target, None)
                if new in kwargs:
                    raise TypeError(
                        f"{func.__name__}() got both `{old}` (deprecated) and `{new}`; "
                        f"pass `{new}` only."
                    )
                _warn_deprecated(
                    f"`{old}` of {func.__name__}() is deprecated: pass `{new}=` instead "
                    f"(`{old}` will be removed in the next release)."
                )
                value = kwargs.pop(old)
                kwargs[new] = convert(value) if convert is not None else value
            return func(*args, **kwargs)

        wrapper._renamed_arguments = dict(renames)  # type: ignore[attr-defined]  # for tests
        return wrapper

    return decorate


def positional_deprecated(*names: str) -> Callable:
    """Accept ``names`` (now keyword-only) by position, in that order, with a warning.

    For a function whose options became keyword-only: the positional arguments beyond
    its positional parameters are taken, in order, as ``names``.

    Examples
    --------
    >>> @positional_deprecated("min_cell")
    ... def summary(table, *, min_cell=None):
    ...     return min_cell
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     summary(None, 11), caught[0].category.__name__
    (11, 'DeprecationWarning')
    """

    def decorate(func: Callable) -> Callable:
        parameters = inspect.signature(func).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        n_positional = sum(p.kind in kinds for p in parameters)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            extra = args[n_positional:]
            if extra:
                if len(extra) > len(names):
                    raise TypeError(
                        f"{func.__name__}() takes {n_positional} positional argument(s) "
                        f"but {len(args)} were given."
                    )
                given = names[: len(extra)]
                twice = [n for n in given if n in kwargs]
                if twice:
                    raise TypeError(f"{func.__name__}() got multiple values for {twice}.")
                spelled = ", ".join(f"{n}=..." for n in given)
                _warn_deprecated(
                    f"Passing {', '.join(f'`{n}`' for n in given)} of {func.__name__}() by "
                    f"position is deprecated: pass {spelled} (by position it will be an "
                    "error in the next release)."
                )
                kwargs.update(zip(given, extra, strict=True))
                args = args[:n_positional]
            return func(*args, **kwargs)

        wrapper._positional_deprecated = names  # type: ignore[attr-defined]  # for tests
        return wrapper

    return decorate
