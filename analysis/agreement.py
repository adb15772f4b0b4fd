"""Reliability and agreement: Cronbach's alpha, Cohen's kappa, GAD-7 vs HAM-A agreement.

``cronbach_alpha`` measures the internal consistency of the items of one scale (used by
the Jacobson-Truax reliable change of the HAM-A); ``cohen_kappa`` the chance-corrected
agreement of two classifications of the same patients; ``instrument_agreement`` applies
it to the GAD-7 and HAM-A classifications (responder or not, ...) at one visit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.inter_rater import cohens_kappa

from analysis._utils import check_alpha, check_choice, check_columns, renamed_arguments

__all__ = [
    "CronbachAlpha",
    "InstrumentAgreement",
    "Kappa",
    "cohen_kappa",
    "cronbach_alpha",
    "instrument_agreement",
]


class _AlphaTuple(NamedTuple):
    alpha: float
    ci_low: float
    ci_high: float


class CronbachAlpha(_AlphaTuple):
    """``(alpha, ci_low, ci_high)``, with ``n``, ``n_dropped`` and ``n_items`` attributes.

    Unpacks as a 3-tuple; ``n`` is the number of complete rows used, ``n_dropped`` the
    number of rows left out because an item was missing, ``n_items`` the number of items,
    ``note`` why alpha is NaN (None when it is computed).
    """

    n: int
    n_dropped: int
    n_items: int
    note: str | None

    def __new__(
        cls,
        alpha: float,
        ci_low: float,
        ci_high: float,
        *,
        n: int,
        n_dropped: int,
        n_items: int,
        note: str | None = None,
    ) -> CronbachAlpha:
        self = super().__new__(cls, alpha, ci_low, ci_high)
        self.n, self.n_dropped, self.n_items, self.note = n, n_dropped, n_items, note
        return self


@renamed_arguments(alpha=("ci", lambda a: round(1 - a, 12) if isinstance(a, int | float) else a))
def cronbach_alpha(
    items: pd.DataFrame | np.ndarray | Sequence[Sequence[float]], *, ci: float = 0.95
) -> CronbachAlpha:
    """Cronbach's alpha of a set of items with Feldt's confidence interval.

    Parameters
    ----------
    items : DataFrame or 2-D array_like
        One row per respondent, one column per item (at least two items). Rows with any
        missing item are left out (listwise deletion); their number is reported in
        ``n_dropped``.
    ci : float
        Confidence level of the interval (0.95 gives 95%), as in
        :func:`analysis.effect_size`. ``alpha=`` (the error rate, ``1 - ci``) is
        deprecated: a function whose result is called alpha takes no argument of that name.

    Returns
    -------
    CronbachAlpha
        ``(alpha, ci_low, ci_high)``; attributes ``n`` (complete rows used),
        ``n_dropped``, ``n_items`` and ``note``. When the total score does not vary
        (every item constant, e.g. all respondents at the floor, or items that cancel),
        alpha is 0/0: the three numbers are NaN and ``note`` says why; otherwise ``note``
        is None. Constant items among varying ones are allowed (they add no variance).

    Notes
    -----
    With k items, item variances s_i^2 and total-score variance s_T^2 (both with n - 1)::

        alpha = k / (k - 1) * (1 - sum(s_i^2) / s_T^2)

    Feldt's interval treats ``(1 - alpha_pop) / (1 - alpha)`` as F-distributed with
    ``n - 1`` and ``(n - 1)(k - 1)`` degrees of freedom::

        ci_low  = 1 - (1 - alpha) * F(1 - a/2; n - 1, (n - 1)(k - 1))
        ci_high = 1 - (1 - alpha) * F(a/2;     n - 1, (n - 1)(k - 1))

    the same interval as pingouin's ``cronbach_alpha`` with listwise deletion.

    References
    ----------
    Cronbach LJ (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika 16:297-334.
    Feldt LS (1965). The approximate sampling distribution of Kuder-Richardson
    reliability coefficient twenty. Psychometrika 30:357-370.
    Feldt LS, Woodruff DJ, Salih FA (1987). Statistical inference for coefficient alpha.
    Appl Psychol Meas 11:93-103.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.agreement import cronbach_alpha
    >>> survey = pd.DataFrame({"q1": [1, 2, 2, 3, 2, 2, 3, 3, 2, 3],
    ...                        "q2": [1, 1, 1, 2, 3, 3, 2, 3, 3, 3],
    ...                        "q3": [1, 1, 2, 1, 2, 3, 3, 3, 2, 3]})
    >>> a, low, high = cronbach_alpha(survey)
    >>> print(f"{a:.4f} [{low:.3f}, {high:.3f}]")
    0.7734 [0.336, 0.939]
    """
    if isinstance(ci, bool) or not isinstance(ci, int | float) or not 0 < ci < 1:
        raise ValueError(
            "`ci` must be a confidence level strictly between 0 and 1 (0.95 gives 95% "
            f"intervals), but {ci!r} was passed."
        )
    level = round(1.0 - float(ci), 12)  # the error rate; 1 - 0.95 is 0.05 exactly
    if isinstance(items, pd.DataFrame):
        x = items.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        x = np.asarray(items, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(
            "`items` must be a table with one row per respondent and at least two item "
            f"columns, but an array of shape {x.shape} was passed."
        )
    complete = ~np.isnan(x).any(axis=1)
    x = x[complete]
    n, k = x.shape
    if n < 2:
        raise ValueError(
            f"Cronbach's alpha needs at least two respondents with every item answered, but "
            f"{n} remain after dropping {int((~complete).sum())} incomplete row(s)."
        )
    total_var = x.sum(axis=1).var(ddof=1)
    note = None
    if total_var == 0:
        a = low = high = math.nan
        constant = int((x.var(axis=0, ddof=1) == 0).sum())
        note = (
            f"alpha undefined: the total score is the same for all {n} respondents "
            f"({constant} of {k} items constant), so alpha is 0/0"
        )
    else:
        a = k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / total_var)
        df1, df2 = n - 1, (n - 1) * (k - 1)
        low = 1 - (1 - a) * stats.f.ppf(1 - level / 2, df1, df2)
        high = 1 - (1 - a) * stats.f.ppf(level / 2, df1, df2)
    return CronbachAlpha(
        float(a),
        float(low),
        float(high),
        n=int(n),
        n_dropped=int((~complete).sum()),
        n_items=int(k),
        note=note,
    )


class Kappa(float):
    """Cohen's kappa with its large-sample interval: a float (the kappa) with attributes.

    Compares, formats and computes as the kappa itself (``cohen_kappa(a, b) > 0.6``), and
    carries the interval and counts as read-only attributes.

    Attributes
    ----------
    kappa : float
        The (weighted) kappa, ``float(self)``.
    se : float
        Large-sample standard error (Fleiss, Cohen and Everitt 1969), used for the
        interval.
    ci_low, ci_high : float
        Wald interval ``kappa -/+ z se``.
    p_value : float
        Two-sided test of kappa = 0 with the standard error under the null hypothesis.
    n : int
        Pairs used (both ratings present).
    weights : str or None
        None, "linear" or "quadratic".
    categories : tuple
        The ordered categories of the contingency table.
    note : str or None
        Why the kappa is NaN (None when it is computed).
    """

    __slots__ = ("_fields",)
    _names = ("se", "ci_low", "ci_high", "p_value", "n", "weights", "categories", "note")

    def __new__(
        cls,
        kappa: float,
        se: float,
        ci_low: float,
        ci_high: float,
        p_value: float,
        n: int,
        weights: str | None,
        categories: tuple,
        note: str | None = None,
    ) -> Kappa:
        self = super().__new__(cls, kappa)
        values = (se, ci_low, ci_high, p_value, n, weights, categories, note)
        object.__setattr__(self, "_fields", dict(zip(cls._names, values, strict=True)))
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "kappa":
            return float(self)
        try:
            return object.__getattribute__(self, "_fields")[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Kappa is read-only")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"Kappa(kappa={float(self)!r}, {fields})"


def _categories(a: pd.Series, b: pd.Series, categories: Sequence | None) -> list:
    if categories is not None:
        cats = list(categories)
    elif isinstance(a.dtype, pd.CategoricalDtype):
        cats = list(a.cat.categories)
    else:
        cats = sorted(set(a.tolist()) | set(b.tolist()))
    unknown = (set(a.tolist()) | set(b.tolist())) - set(cats)
    if unknown:
        raise ValueError(
            f"{len(unknown)} rating value(s) are not among `categories` {cats}; pass every "
            "category, in order, in `categories`."
        )
    return cats


def cohen_kappa(
    a: Sequence | pd.Series | np.ndarray,
    b: Sequence | pd.Series | np.ndarray,
    weights: str | None = None,
    *,
    categories: Sequence | None = None,
    alpha: float = 0.05,
) -> Kappa:
    """Cohen's kappa (unweighted, linear or quadratic weights) of two ratings.

    Parameters
    ----------
    a, b : array_like
        Two classifications of the same units, of equal length. Pairs where either is
        missing are left out.
    weights : {None, "linear", "quadratic"}
        None: unweighted kappa. "linear" (Cicchetti-Allison) and "quadratic"
        (Fleiss-Cohen) agreement weights ``1 - |i - j| / (c - 1)`` and
        ``1 - (i - j)^2 / (c - 1)^2`` for ordered categories i, j of c.
    categories : sequence, optional
        The categories in order. Default: the categories of ``a`` when it is a pandas
        Categorical, else the sorted union of the values. Pass it for ordinal labels
        ("minimal", "mild", ...) and to keep categories nobody used (they change the
        weights).
    alpha : float
        Two-sided error rate of the interval.

    Returns
    -------
    Kappa
        The kappa as a float, with read-only attributes ``kappa, se, ci_low, ci_high,
        p_value, n, weights, categories, note``. When both raters used one and the same
        category for every unit, chance agreement is 1 and kappa is 0/0: kappa and its
        interval are NaN and ``note`` says so (R ``psych::cohen.kappa`` and
        ``irr::kappa2`` give NaN too); otherwise ``note`` is None. Report the observed
        agreement (100%) instead.

    Notes
    -----
    With p_o the (weighted) observed agreement and p_e the (weighted) agreement expected
    from the marginals, ``kappa = (p_o - p_e) / (1 - p_e)``. Standard errors are the
    large-sample ones of Fleiss, Cohen and Everitt (1969), computed by
    :func:`statsmodels.stats.inter_rater.cohens_kappa`; they match SAS PROC FREQ
    (AGREE option).

    References
    ----------
    Cohen J (1960). A coefficient of agreement for nominal scales. Educ Psychol Meas
    20:37-46.
    Cohen J (1968). Weighted kappa. Psychol Bull 70:213-220.
    Fleiss JL, Cohen J, Everitt BS (1969). Large sample standard errors of kappa and
    weighted kappa. Psychol Bull 72:323-327.

    Examples
    --------
    >>> from analysis.agreement import cohen_kappa
    >>> a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    >>> b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    >>> k = cohen_kappa(a, b)
    >>> print(f"kappa {k.kappa:.2f}, n {k.n}")
    kappa 0.40, n 50
    """
    check_choice("weights", weights, [None, "linear", "quadratic"])
    level = check_alpha(alpha)
    a, b = pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)
    if len(a) != len(b):
        raise ValueError(
            f"`a` and `b` must rate the same units, but they have {len(a)} and {len(b)} values."
        )
    both = a.notna() & b.notna()
    a, b = a[both], b[both]
    if len(a) == 0:
        raise ValueError("No unit has both ratings; kappa needs at least one complete pair.")
    cats = _categories(a, b, categories)
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)))
    np.add.at(table, (a.map(index).to_numpy(int), b.map(index).to_numpy(int)), 1)
    p_e_unweighted = (table.sum(axis=1) @ table.sum(axis=0)) / table.sum() ** 2
    if len(cats) < 2 or np.isclose(p_e_unweighted, 1.0):
        nan = math.nan
        note = (
            f"kappa undefined: both ratings put all {len(a)} units in one and the same "
            "category, so chance agreement is 1 and kappa is 0/0 (observed agreement 100%)"
        )
        return Kappa(nan, nan, nan, nan, nan, int(len(a)), weights, tuple(cats), note)
    with np.errstate(all="ignore"):
        res = cohens_kappa(table, wt=weights)
    z = float(stats.norm.ppf(1 - level / 2))
    kappa, se = float(res.kappa), float(res.std_kappa)
    se0 = float(res.std_kappa0)
    p_value = float(2 * stats.norm.sf(abs(kappa / se0))) if se0 > 0 else math.nan
    return Kappa(
        kappa, se, kappa - z * se, kappa + z * se, p_value, int(len(a)), weights, tuple(cats)
    )


@dataclass(frozen=True)
class InstrumentAgreement:
    """Agreement of two instruments' classifications of the same patients at one visit.

    Attributes
    ----------
    kappa : Kappa
        Cohen's kappa of the two classifications.
    table : DataFrame
        2 x 2 counts: rows the first instrument's classification (False, True), columns
        the second's.
    n : int
        Patients with the outcome defined on both instruments at the visit.
    observed_agreement : float
        Share of those patients classified alike.
    outcome, visit : str
        What was compared.
    instruments : tuple of str
        The two instruments, rows first.
    """

    kappa: Kappa
    table: pd.DataFrame
    n: int
    observed_agreement: float
    outcome: str
    visit: str
    instruments: tuple[str, str]


def instrument_agreement(
    endpoints: pd.DataFrame,
    outcome: str = "response",
    visit: str = "week4",
    instruments: tuple[str, str] = ("GAD7", "HAMA"),
    *,
    alpha: float = 0.05,
) -> InstrumentAgreement:
    """Agreement of the GAD-7 and HAM-A classifications (responder or not, ...) at a visit.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows of both instruments (``derive_endpoints`` for each, concatenated),
        with ``patient_id``, ``instrument``, ``visit`` and ``outcome``.
    outcome : str
        Boolean outcome compared (``"response"``, ``"remission"``, ...).
    visit : str
        The visit (``"week4"`` by default).
    instruments : tuple of two str
        The instruments compared; the first gives the rows of ``table``.
    alpha : float
        Two-sided error rate of the kappa interval.

    Returns
    -------
    InstrumentAgreement
        ``kappa`` (unweighted Cohen's kappa, see :func:`cohen_kappa`), the 2 x 2
        ``table``, ``n`` and ``observed_agreement``. Only patients with the outcome
        defined (not NA) on both instruments at the visit count; with none, ``n`` is 0
        and the kappa fields are NaN.

    Notes
    -----
    Kappa corrects the observed agreement for the agreement expected by chance from the
    two response rates; with rates far from 50% a high observed agreement can go with a
    modest kappa (Feinstein and Cicchetti 1990), so both are reported.

    References
    ----------
    Cohen J (1960). Educ Psychol Meas 20:37-46.
    Feinstein AR, Cicchetti DV (1990). High agreement but low kappa: I. The problems of
    two paradoxes. J Clin Epidemiol 43:543-549.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.agreement import instrument_agreement
    >>> gad = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    >>> ham = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    >>> ids = [f"p{i}" for i in range(50)]
    >>> ep = pd.concat([
    ...     pd.DataFrame({"patient_id": ids, "instrument": "GAD7", "visit": "week4",
    ...                   "response": gad}),
    ...     pd.DataFrame({"patient_id": ids, "instrument": "HAMA", "visit": "week4",
    ...                   "response": ham})])
    >>> res = instrument_agreement(ep)
    >>> res.table
    HAMA   False  True
    GAD7
    False     15    10
    True       5    20
    >>> print(f"kappa {res.kappa.kappa:.2f}, agreement {res.observed_agreement:.2f}")
    kappa 0.40, agreement 0.70
    """
    if len(instruments) != 2 or instruments[0] == instruments[1]:
        raise ValueError(
            f"`instruments` must name two different instruments, such as ('GAD7', 'HAMA'), "
            f"but {instruments!r} was passed."
        )
    check_columns(endpoints, ["patient_id", "instrument", "visit", outcome], "endpoints")
    available = sorted(endpoints["instrument"].dropna().unique().tolist())
    for inst in instruments:
        check_choice("instruments", inst, available)
    check_choice("visit", visit, endpoints["visit"].dropna().unique().tolist())
    rows = endpoints[
        (endpoints["visit"] == visit) & endpoints["instrument"].isin(list(instruments))
    ]
    duplicated = rows.duplicated(["patient_id", "instrument"])
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} patient(s) have more than one row for an instrument at "
            f"visit {visit!r}; pass endpoint rows with one row per patient x instrument x "
            "visit (the output of derive_endpoints)."
        )
    wide = rows.pivot(index="patient_id", columns="instrument", values=outcome)
    wide = wide.reindex(columns=list(instruments)).dropna()
    first, second = (wide[i].astype(bool) for i in instruments)
    table = pd.crosstab(first, second).reindex(
        index=[False, True], columns=[False, True], fill_value=0
    )
    table.index.name, table.columns.name = instruments
    n = len(wide)
    if n:
        kappa = cohen_kappa(first, second, categories=[False, True], alpha=alpha)
    else:  # nobody has both classifications: report NaN rather than fail a batch run
        kappa = Kappa(
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            0,
            None,
            (False, True),
            "kappa undefined: no patient has the outcome defined on both instruments",
        )
    agreement = float(np.trace(table.to_numpy()) / n) if n else math.nan
    return InstrumentAgreement(
        kappa, table, n, agreement, outcome, visit, (instruments[0], instruments[1])
    )
