"""Missing data beyond LOCF and BOCF: multiple and reference-based imputation, tipping point.

Every method here starts from the same imputation model, an MMRM (:func:`analysis.fit_mmrm`)
of the change from baseline on the visit, fully crossed with the baseline score, the
comparison group and any further patient-level covariates::

    change ~ visit * (baseline + group + covariates...)

with an unstructured residual covariance. Because every covariate has a visit-specific
coefficient, the model is a multivariate normal regression of the post-baseline changes,
and a patient's missing visits have a closed-form distribution given the observed ones
(the conditional multivariate normal). From there:

- :func:`multiple_imputation` draws the model's parameters, then the missing changes given
  the observed ones, ``n_imputations`` times, under missing at random (``strategy="mar"``)
  or a reference-based assumption (``"j2r"``, ``"cr"``, ``"cir"``; Carpenter, Roger and
  Kenward 2013); it returns the imputed endpoint sets with every outcome flag derived by
  the package's own rules (:mod:`analysis.endpoints`, :class:`analysis.Criteria`).
- :func:`rubin_rules`, :func:`pool_rates`, :func:`pool_rate_differences` and
  :func:`pool_change_differences` analyse each set and combine the results with Rubin's
  rules and the Barnard-Rubin degrees of freedom.
- :func:`conditional_mean_analysis` imputes each missing change by its conditional mean
  (and each missing outcome flag by its conditional probability) under the same
  assumptions, with jackknife standard errors (Wolbers et al. 2022).
- :func:`tipping_point` shifts the imputed scores of the missing patients by ``delta``
  points until the week-4 response difference between groups is no longer significant.
- :func:`missing_data_sensitivity` sets the rate difference under MAR and each
  reference-based assumption side by side (one table for a report).

``derive_endpoints(impute=...)`` keeps its single imputations (``observed``, ``locf``,
``bocf``); multiple imputation is not one of them because it needs a model (hence a
group and covariates) and returns ``M`` data sets, each analysed and then pooled.

Design choices a reviewer should know:

- The input is the output of :func:`analysis.derive_endpoints` with ``impute="bocf"``
  (every scheduled visit of every patient with a baseline, ``imputed=True`` where the
  visit was missed), with the group and covariate columns merged in
  (:func:`analysis.tables.cohort_endpoints` does both). Rows with ``imputed=True`` are
  treated as missing; observed rows are never changed. With ``impute="observed"`` input,
  patients with no post-baseline visit are absent and cannot be imputed.
- Imputed scores are drawn on the continuous scale, then rounded to the nearest integer
  and kept in the scale's range before the outcome rules are applied, so that an imputed
  visit is a visit the scale could have produced and every rule (response ``<= -50%``,
  remission ``<= 4``/``<= 7``, ...) is applied exactly as to observed visits (rounding is
  the continuity correction of a normal model of an integer score). The unrounded draw is
  kept (``score_continuous``) and the analyses of change use it.
- The intercurrent event of a reference-based assumption is the patient's last observed
  visit (the discontinuation): visits after it follow the assumption; earlier missed
  (intermittent) visits are imputed under MAR, except under copy reference, which by
  definition replaces the whole mean profile (as R ``rbmi`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import narwhals as nw
import numpy as np
import pandas as pd
from scipy import linalg, stats

from analysis._frames import to_pandas
from analysis._utils import as_by, check_alpha, check_choice, check_min_cell
from analysis.disclosure import partition_margins, suppress_cells
from analysis.endpoints import ENDPOINT_COLUMNS, _outcomes, _resolve_criteria
from analysis.instruments import get_instrument
from analysis.mmrm import MMRMFitError, _Structure, fit_mmrm

__all__ = [
    "STRATEGIES",
    "Pooled",
    "TippingPointResult",
    "conditional_mean_analysis",
    "missing_data_sensitivity",
    "multiple_imputation",
    "pool_change_differences",
    "pool_rate_differences",
    "pool_rates",
    "rubin_rules",
    "tipping_point",
]

#: Imputation assumptions: missing at random, jump to reference, copy reference, copy
#: increments in reference (Carpenter, Roger and Kenward 2013).
STRATEGIES = ("mar", "j2r", "cr", "cir")

#: Outcome flags whose event is a good outcome (a tipping point makes them worse).
_BENEFICIAL = (
    "response",
    "partial_response",
    "remission",
    "reliable_improvement",
    "recovery",
    "reliable_recovery",
)
_RELIABLE = ("reliable_improvement", "reliable_deterioration", "reliable_recovery")
_REQUIRED = ("patient_id", "instrument", "visit", "target_day", "baseline", "score", "imputed")


# ---------------------------------------------------------------------------------------
# Rubin's rules
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pooled:
    """One estimate combined over imputations by Rubin's rules (:func:`rubin_rules`).

    Attributes
    ----------
    estimate : float
        Mean of the per-imputation estimates, ``Q_bar``.
    se : float
        ``sqrt(T)``, the square root of the total variance.
    df : float
        Degrees of freedom of the t reference distribution (Barnard-Rubin when the
        complete-data df are finite, Rubin's large-sample df otherwise).
    ci_low, ci_high : float
        ``Q_bar -/+ t(1 - alpha/2, df) * se``.
    p_value : float
        Two-sided p for ``estimate = 0``.
    within, between, total : float
        ``U_bar``, ``B``, ``T = U_bar + (1 + 1/M) B``.
    riv, lambda_, fmi : float
        Relative increase in variance ``(1 + 1/M) B / U_bar``, the proportion of the
        variance due to missingness ``(1 + 1/M) B / T`` and the fraction of missing
        information ``(riv + 2 / (df + 3)) / (1 + riv)`` (as R ``mice::pool``).
    n_imputations : int
        ``M``.
    """

    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float
    within: float
    between: float
    total: float
    riv: float
    lambda_: float
    fmi: float
    n_imputations: int


def rubin_rules(estimates, variances, *, df_complete: float | None = None, alpha=0.05) -> Pooled:
    """Combine per-imputation estimates and variances by Rubin's rules.

    Parameters
    ----------
    estimates : array-like
        The estimate ``Q_m`` from each of the ``M >= 2`` imputed data sets.
    variances : array-like
        Its complete-data variance ``U_m`` (squared standard error) in each set.
    df_complete : float, optional
        Degrees of freedom of the complete-data analysis (``n - 1`` for a proportion,
        ``n - p`` for a regression coefficient). ``None`` (or infinity) uses Rubin's
        (1987) large-sample df.
    alpha : float
        1 - confidence level.

    Returns
    -------
    Pooled

    Notes
    -----
    ``Q_bar = mean(Q_m)``, ``U_bar = mean(U_m)``, ``B = var(Q_m)`` (divisor ``M - 1``),
    ``T = U_bar + (1 + 1/M) B`` (Rubin 1987, sec. 3.1). With ``lambda = (1 + 1/M) B / T``
    the large-sample df are ``nu_old = (M - 1) / lambda^2``; with complete-data df
    ``nu_com`` Barnard and Rubin (1999) use ``nu = nu_old nu_obs / (nu_old + nu_obs)``,
    ``nu_obs = (nu_com + 1) / (nu_com + 3) nu_com (1 - lambda)``. The fraction of missing
    information is ``(r + 2 / (nu + 3)) / (1 + r)`` with ``r = (1 + 1/M) B / U_bar``,
    the definition of R ``mice::pool``. When every imputation gives the same estimate
    (``B = 0``) the df are ``nu_com`` (infinite when not given).

    References
    ----------
    Rubin DB (1987). Multiple Imputation for Nonresponse in Surveys. Wiley, New York.
    Barnard J, Rubin DB (1999). Small-sample degrees of freedom with multiple imputation.
    Biometrika 86:948-955.
    van Buuren S, Groothuis-Oudshoorn K (2011). mice: Multivariate imputation by chained
    equations in R. J Stat Softw 45(3):1-67.

    Examples
    --------
    >>> pooled = rubin_rules([1.0, 1.2, 0.9, 1.1, 1.3], [0.04, 0.05, 0.04, 0.05, 0.045],
    ...                      df_complete=50)
    >>> round(pooled.estimate, 4), round(pooled.total, 5), round(pooled.df, 2)
    (1.1, 0.075, 13.4)

    (R ``mice::pool.scalar(q, u, n = 51, k = 1)`` gives df 13.3975.)
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    check_alpha(alpha)
    if q.ndim != 1 or q.shape != u.shape or len(q) < 2:
        raise ValueError(
            "`estimates` and `variances` must be two 1-d sequences of the same length, one "
            f"value per imputed data set and at least 2, but have shapes {q.shape} and "
            f"{u.shape}; use n_imputations >= 2."
        )
    if not (np.isfinite(q).all() and np.isfinite(u).all() and (u >= 0).all()):
        raise ValueError(
            "`estimates` must be finite and `variances` finite and >= 0; an imputed data set "
            "gave a missing or infinite value (e.g. a rate of 0 or 1 on the logit scale)."
        )
    m = len(q)
    q_bar, u_bar, b = float(q.mean()), float(u.mean()), float(q.var(ddof=1))
    if b <= (64 * np.finfo(float).eps * np.abs(q).max()) ** 2 or b <= 1e-12 * u_bar:
        b = 0.0  # equal estimates up to rounding error, or negligible beside U_bar
    t = u_bar + (1 + 1 / m) * b
    nu_com = np.inf if df_complete is None else float(df_complete)
    if nu_com <= 0:
        raise ValueError(f"`df_complete` must be positive, but {df_complete!r} was passed.")
    lam = (1 + 1 / m) * b / t if t > 0 else 0.0
    riv = (1 + 1 / m) * b / u_bar if u_bar > 0 else (np.inf if b > 0 else 0.0)
    nu_old = (m - 1) / lam**2 if lam**2 > 0 else np.inf
    if np.isinf(nu_com):
        df = nu_old
    else:
        nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
        df = nu_obs if np.isinf(nu_old) else nu_old * nu_obs / (nu_old + nu_obs)
    fmi = (riv + 2 / (df + 3)) / (1 + riv) if np.isfinite(riv) else 1.0
    se = t**0.5
    half = stats.t.ppf(1 - alpha / 2, df) * se
    p = 2 * stats.t.sf(abs(q_bar) / se, df) if se > 0 else (0.0 if q_bar != 0 else 1.0)
    return Pooled(
        estimate=q_bar,
        se=se,
        df=float(df),
        ci_low=q_bar - half,
        ci_high=q_bar + half,
        p_value=float(p),
        within=u_bar,
        between=b,
        total=t,
        riv=float(riv),
        lambda_=float(lam),
        fmi=float(fmi),
        n_imputations=m,
    )


# ---------------------------------------------------------------------------------------
# The data: one wide matrix of changes, patients x visits
# ---------------------------------------------------------------------------------------


class _Pattern:
    """Patients sharing one pattern of missed visits, and the index grids of their cells
    and of the covariance blocks (missed x missed, missed x observed, observed x observed)."""

    def __init__(self, rows: np.ndarray, miss: np.ndarray, observed: np.ndarray):
        self.rows, self.miss, self.any_observed = rows, miss, bool(observed.any())
        self.missed = np.ix_(miss, miss)
        self.rows_missed = np.ix_(rows, miss)
        if self.any_observed:
            self.cross = np.ix_(miss, observed)
            self.seen = np.ix_(observed, observed)
            self.rows_seen = np.ix_(rows, observed)


class _Wide:
    """The endpoint rows of one instrument as patients x visits arrays.

    ``change`` (n x m) holds the observed changes and NaN where a visit was missed
    (``imputed`` true or no row); ``rows`` the input rows of every patient and visit
    (the grid), ``patients`` one row per patient with the baseline, group and covariates.
    """

    def __init__(self, endpoints, group, covariates, reference, need_group):
        frame = to_pandas(endpoints, "endpoints")
        covariates = as_by(covariates)
        failures = []
        needed = [*_REQUIRED, *([group] if group else []), *covariates]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(
                f"Table `endpoints` is missing the column(s) {missing}; it has "
                f"{list(frame.columns)}. Pass `derive_endpoints(..., impute='bocf')` with the "
                "group and covariate columns merged in (e.g. `tables.cohort_endpoints(cohort, "
                "'GAD7', impute='bocf', patient_columns=('route',))`)."
            )
        instruments = pd.unique(frame["instrument"].dropna())
        if len(instruments) != 1:
            raise ValueError(
                f"Table `endpoints` holds {len(instruments)} instruments "
                f"({[str(i) for i in instruments]}); impute one scale at a time: filter the "
                "rows first, e.g. endpoints.query(\"instrument == 'GAD7'\")."
            )
        self.instrument = get_instrument(str(instruments[0]))
        if frame.empty:
            raise ValueError("Table `endpoints` has no rows; there is nothing to impute.")
        keys = ["patient_id", "visit"]
        duplicated = int(frame.duplicated(keys).sum())
        if duplicated:
            failures.append(
                f"{duplicated} row(s) repeat a (patient_id, visit) pair (check: one row per "
                "patient and visit; pass the output of derive_endpoints unchanged)"
            )
        if frame["baseline"].isna().any():
            failures.append(
                f"column `baseline`: {int(frame['baseline'].isna().sum())} row(s) missing "
                "(check: every endpoint row has a baseline)"
            )
        observed = ~frame["imputed"].fillna(True).astype(bool)
        bad_score = int((observed & frame["score"].isna()).sum())
        if bad_score:
            failures.append(
                f"column `score`: {bad_score} observed row(s) (imputed=False) without a score "
                "(check: an observed visit has a score)"
            )
        per_patient = [c for c in ["baseline", *([group] if group else []), *covariates]]
        for column in per_patient:
            if column != "baseline" and frame[column].isna().any():
                failures.append(
                    f"column `{column}`: {int(frame[column].isna().sum())} row(s) missing "
                    "(check: the group and covariates are known for every patient; drop or "
                    "fill those patients first)"
                )
            varying = int((frame.groupby("patient_id")[column].nunique(dropna=False) > 1).sum())
            if varying:
                failures.append(
                    f"column `{column}`: {varying} patient(s) with more than one value "
                    "(check: a patient-level column is constant within a patient)"
                )
        if failures:
            raise ValueError(
                f"Table `endpoints` ({len(frame)} rows) cannot be imputed: "
                + "; ".join(failures)
                + "."
            )
        visit_days = frame.groupby("visit", sort=False)["target_day"].agg(["min", "max"])
        if (visit_days["min"] != visit_days["max"]).any():
            raise ValueError(
                "Table `endpoints`: a visit has more than one `target_day` (check: one "
                "schedule); pass the output of derive_endpoints unchanged."
            )
        order = visit_days["min"].astype(float).sort_values(kind="stable")
        self.visits = [str(v) for v in order.index]
        self.target_days = order.to_numpy()
        self.m = len(self.visits)

        patients = frame.drop_duplicates("patient_id")[["patient_id", *per_patient]]
        patients = patients.reset_index(drop=True)
        self.patients = patients
        self.n = len(patients)
        code = pd.Index(patients["patient_id"])
        i = code.get_indexer(frame["patient_id"])
        j = pd.Index(self.visits).get_indexer(pd.Index(frame["visit"].astype(str)))
        self.observed = np.zeros((self.n, self.m), dtype=bool)
        self.observed[i[observed.to_numpy()], j[observed.to_numpy()]] = True
        never = [
            v
            for v, seen in zip(self.visits, np.asarray(self.observed.any(axis=0)), strict=True)
            if not seen
        ]
        if never:
            raise ValueError(
                f"Table `endpoints`: the visit(s) {never} have no observed value, so the "
                "imputation model has nothing to learn them from; derive the endpoints with a "
                "schedule without them (derive_endpoints(..., schedule=...)) or drop their rows."
            )
        self.baseline = patients["baseline"].astype(float).to_numpy()
        score = np.full((self.n, self.m), np.nan)
        score[i, j] = pd.to_numeric(frame["score"], errors="coerce").astype(float).to_numpy()
        score[~self.observed] = np.nan
        self.score = score
        self.change = score - self.baseline[:, None]
        self.rows = frame
        self.row_index = (i, j)
        self.group = group
        self.covariates = covariates

        self.levels: list = []  # the group's levels (none without a group)
        self.reference = None
        if group is not None:
            self.levels = sorted(pd.unique(patients[group]).tolist(), key=str)
            if reference is None:
                reference = self.levels[0]
            check_choice("reference", reference, self.levels)
            self.reference = reference
            if need_group and len(self.levels) < 2:
                raise ValueError(
                    f"The column `{group}` has one level ({self.levels[0]!r}) in these "
                    "endpoints, so a comparison between groups is not defined; compare "
                    "only cohorts with at least two groups, or use group=None for one rate."
                )
        elif need_group:
            raise ValueError("A comparison needs `group`, the column of the groups compared.")
        self.group_values = None if group is None else patients[group].to_numpy()
        # a group of one level adds nothing to the model (its column is still carried)
        self.modelled_group = group is not None and len(self.levels) > 1
        self.last_observed = np.where(
            self.observed.any(axis=1), self.m - 1 - np.argmax(self.observed[:, ::-1], axis=1), -1
        )

    @cached_property
    def missing_patterns(self) -> list[_Pattern]:
        """The patterns of missed visits (in :func:`numpy.unique`'s order), with their
        patients and index grids: the same for every imputed set, so built once."""
        patterns, which = np.unique(self.observed, axis=0, return_inverse=True)
        out = []
        for k, pattern in enumerate(patterns):
            miss = ~pattern
            if miss.any():
                out.append(_Pattern(np.flatnonzero(which.ravel() == k), miss, pattern))
        return out

    # -- the model ---------------------------------------------------------------------

    def design_frame(self, group_value=None) -> pd.DataFrame:
        """Every patient x visit with the model's columns (the group replaced if given)."""
        out = pd.DataFrame(
            {
                "subject": np.repeat(np.arange(self.n), self.m),
                "visit": pd.Categorical(
                    np.tile(self.visits, self.n), categories=self.visits, ordered=True
                ),
                "baseline": np.repeat(self.baseline, self.m),
            }
        )
        if self.modelled_group:
            values = self.group_values if group_value is None else [group_value] * self.n
            out["group"] = np.repeat(np.asarray(values, dtype=object).astype(str), self.m)
        for k, column in enumerate(self.covariates):
            values = self.patients[column].to_numpy()
            if pd.api.types.is_numeric_dtype(self.patients[column].dtype) and not (
                pd.api.types.is_bool_dtype(self.patients[column].dtype)
            ):
                out[f"covariate_{k}"] = np.repeat(values.astype(float), self.m)
            else:
                out[f"covariate_{k}"] = np.repeat(values.astype(str), self.m)
        return out

    def formula(self) -> str:
        terms = ["baseline"]
        if self.modelled_group:
            terms.append("group")
        terms += [f"covariate_{k}" for k in range(len(self.covariates))]
        return f"change ~ visit * ({' + '.join(terms)})"


class _Model:
    """The fitted imputation model: the MMRM, each patient's mean profile under its own
    group and under the reference group, and the parameters' sampling distribution."""

    def __init__(self, wide: _Wide, rows: np.ndarray | None = None):
        self.wide = wide
        frame = wide.design_frame()
        frame["change"] = wide.change.ravel()
        keep = wide.observed.ravel()
        if rows is not None:
            keep = keep & np.repeat(rows, wide.m)
        self.fit = fit_mmrm(
            frame[keep], wide.formula(), subject="subject", visit="visit", covariance="us"
        )
        names = self.fit.params.index
        spec = self.fit._data.spec
        columns = spec.get_model_matrix(frame.iloc[:1]).columns
        aliased = [c for c in columns if c not in names or not np.isfinite(self.fit.params[c])]
        if aliased:
            # Imputing from a model with non-estimable effects would silently borrow
            # another cell's mean (e.g. a group never seen at a visit).
            raise MMRMFitError(
                f"The imputation model's effects {aliased} are not estimable from these data "
                "(e.g. a group with no observed value at some visit); impute a subset where "
                "every group is observed at every visit, or leave out that visit."
            )
        self.X_own = self._design(spec, frame, names)
        self.X_ref = None
        if wide.modelled_group:
            self.X_ref = self._design(spec, wide.design_frame(wide.reference), names)
        beta = self.fit.params.to_numpy(dtype=float)
        self.estimable = np.isfinite(beta)
        self.beta = np.where(self.estimable, beta, 0.0)
        self.sigma = self.fit.covariance.to_numpy(dtype=float)
        self.structure = _Structure(self.fit.covariance_structure, wide.m)
        self._chol_beta: np.ndarray | None = None
        self._chol_theta: np.ndarray | None = None

    @staticmethod
    def _design(spec, frame, names) -> np.ndarray:
        matrix = spec.get_model_matrix(frame)
        return np.asarray(matrix.reindex(columns=names, fill_value=0.0), dtype=float)

    def means(self, beta: np.ndarray, strategy: str) -> np.ndarray:
        """Each patient's mean change profile (n x m) under ``strategy``."""
        wide = self.wide
        own = (self.X_own @ beta).reshape(wide.n, wide.m)
        if strategy == "mar" or self.X_ref is None:
            return own
        ref = (self.X_ref @ beta).reshape(wide.n, wide.m)
        after = np.arange(wide.m)[None, :] > wide.last_observed[:, None]
        if strategy == "cr":
            mean = ref
        elif strategy == "j2r":
            mean = np.where(after, ref, own)
        else:  # cir: the reference's increments from the own-group mean at the last visit
            k = np.maximum(wide.last_observed, 0)
            rows = np.arange(wide.n)
            offset = np.where(wide.last_observed >= 0, own[rows, k] - ref[rows, k], 0.0)
            mean = np.where(after, ref + offset[:, None], own)
        in_reference = np.asarray(wide.group_values == wide.reference)
        return np.where(in_reference[:, None], own, mean)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``beta`` and ``Sigma`` from the large-sample posterior of the parameters."""
        if self._chol_beta is None or self._chol_theta is None:
            cov = self.fit.cov_params.to_numpy(dtype=float)[np.ix_(self.estimable, self.estimable)]
            self._chol_beta = _root(cov)
            self._chol_theta = _root(2.0 * self.fit._h_inv)
        beta = self.beta.copy()
        beta[self.estimable] += self._chol_beta @ rng.standard_normal(self._chol_beta.shape[1])
        theta = self.fit.theta + self._chol_theta @ rng.standard_normal(len(self.fit.theta))
        return beta, self.structure.matrix(theta)[0]


def _root(cov: np.ndarray) -> np.ndarray:
    """A square root ``R`` of a covariance matrix (``R R' = cov``), tolerating rank loss,
    and the same on every machine.

    The lower Cholesky factor when ``cov`` is positive definite: it is unique, so a seed
    gives the same draws whatever LAPACK kernel the machine's numpy uses. On rank loss,
    the eigen root, each eigenvector signed so that its largest entry is positive: LAPACK
    builds return either sign (an eigen root alone made the imputations of one seed differ
    between an Intel and an AMD machine). Only a rank-deficient ``cov`` with repeated
    eigenvalues can still give machine-dependent draws.
    """
    sym = (cov + cov.T) / 2
    try:
        return linalg.cholesky(sym, lower=True, check_finite=False)
    except linalg.LinAlgError:
        pass
    values, vectors = linalg.eigh(sym)
    lead = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])]
    signs = np.where(lead < 0, -1.0, 1.0)
    return vectors * signs * np.sqrt(np.clip(values, 0.0, None))


def _conditional(wide: _Wide, mean: np.ndarray, sigma: np.ndarray, change: np.ndarray):
    """Conditional mean (n x m, the observed values kept) and, per missing cell, the
    conditional variance, with the square roots of each pattern's conditional covariance."""
    cmean = np.where(wide.observed, change, mean)
    cvar = np.zeros_like(mean)
    roots = []
    for pattern in wide.missing_patterns:
        s_mm = sigma[pattern.missed]
        if pattern.any_observed:
            s_mo = sigma[pattern.cross]
            gain = linalg.solve(sigma[pattern.seen], s_mo.T, assume_a="pos").T
            resid = change[pattern.rows_seen] - mean[pattern.rows_seen]
            cmean[pattern.rows_missed] = mean[pattern.rows_missed] + resid @ gain.T
            s_mm = s_mm - gain @ s_mo.T
        cvar[pattern.rows_missed] = np.diag(s_mm)
        roots.append((pattern, _root(s_mm)))
    return cmean, cvar, roots


# ---------------------------------------------------------------------------------------
# Outcome flags by the package's rules
# ---------------------------------------------------------------------------------------


class _Rules:
    """The outcome flags of every (baseline, score) pair of the scale, by
    :func:`analysis.endpoints.derive_endpoints`' own rules (``_outcomes``)."""

    def __init__(self, instrument, criteria):
        criteria = _resolve_criteria(instrument, criteria)
        self.top = instrument.total_max
        self.fixed_threshold = criteria.reliable_change is not None
        values = np.arange(self.top + 1)
        grid = pd.DataFrame(
            {
                "baseline": np.repeat(values, len(values)),
                "score": np.tile(values, len(values)),
            }
        )
        grid["change"] = grid["score"] - grid["baseline"]
        grid = grid.astype("Int64")
        # fixed_threshold is "reliable_change is not None"
        threshold = np.inf if criteria.reliable_change is None else criteria.reliable_change
        bands = instrument.band(criteria.severity_bands)
        flags = nw.from_native(grid).with_columns(**_outcomes(criteria, threshold, bands))
        table = flags.to_native()
        if not self.fixed_threshold:
            for column in _RELIABLE:
                table[column] = pd.NA
        self.table = table

    def lookup(self, baseline: np.ndarray, score: np.ndarray) -> pd.DataFrame:
        """The flag columns for integer baselines and scores (arrays of equal length)."""
        index = baseline.astype(int) * (self.top + 1) + score.astype(int)
        return self.table.iloc[index].reset_index(drop=True)

    def flag(self, outcome: str, baseline: np.ndarray, score: np.ndarray) -> np.ndarray:
        """``outcome`` as float 1/0 with NaN where undefined (fast path for pooling)."""
        values = self.table[outcome].to_numpy(dtype=float, na_value=np.nan)
        index = baseline.astype(int) * (self.top + 1) + score.astype(int)
        return values[index]

    def round(self, score: np.ndarray) -> np.ndarray:
        """Nearest integer score in the scale's range (halves up)."""
        return np.clip(np.floor(score + 0.5), 0, self.top)

    def probability(self, outcome, baseline, mean, sd) -> np.ndarray:
        """``P(outcome)`` for a normal score ``N(mean, sd^2)`` rounded as :meth:`round`."""
        edges = np.arange(self.top + 2) - 0.5
        edges[0], edges[-1] = -np.inf, np.inf
        z = (edges[None, :] - mean[:, None]) / np.where(sd > 0, sd, 1.0)[:, None]
        mass = np.diff(stats.norm.cdf(z), axis=1)
        point = np.zeros_like(mass)
        point[np.arange(len(mean)), self.round(mean).astype(int)] = 1.0
        mass = np.where((sd > 0)[:, None], mass, point)
        values = (
            self.table[outcome]
            .to_numpy(dtype=float, na_value=np.nan)
            .reshape(self.top + 1, self.top + 1)[baseline.astype(int)]
        )
        return np.sum(mass * np.nan_to_num(values), axis=1) + np.where(
            np.isnan(values).all(axis=1), np.nan, 0.0
        )


# ---------------------------------------------------------------------------------------
# Multiple imputation
# ---------------------------------------------------------------------------------------


def _draw_changes(model: _Model, strategy: str, n_imputations: int, rng) -> list[np.ndarray]:
    wide = model.wide
    draws = []
    for _ in range(n_imputations):
        beta, sigma = model.draw(rng)
        cmean, _, roots = _conditional(wide, model.means(beta, strategy), sigma, wide.change)
        change = cmean.copy()
        for pattern, root in roots:
            noise = rng.standard_normal((len(pattern.rows), root.shape[1])) @ root.T
            change[pattern.rows_missed] += noise
        draws.append(change)
    return draws


def _check_imputations(n_imputations) -> None:
    if not isinstance(n_imputations, int | np.integer) or n_imputations < 2:
        raise ValueError(
            f"`n_imputations` must be an integer >= 2 (Rubin's rules need a between-imputation "
            f"variance; 20 or more is usual), but {n_imputations!r} was passed."
        )


def multiple_imputation(
    endpoints,
    *,
    group: str | None = None,
    reference=None,
    strategy: str = "mar",
    covariates: str | Sequence[str] = (),
    n_imputations: int = 20,
    seed: int | None = None,
    criteria=None,
) -> pd.DataFrame:
    """Multiply impute the missed visits from an MMRM, under MAR or a reference-based rule.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows of one instrument from :func:`analysis.derive_endpoints` with
        ``impute="bocf"`` (every scheduled visit of every patient with a baseline), plus
        the ``group`` and ``covariates`` columns. Rows with ``imputed=True`` (and visits
        without a row) are missing; observed rows are kept as they are.
    group : str, optional
        Patient-level column of the groups (route, arm); ``None`` for one group.
    reference : optional
        The reference level of ``group`` for the reference-based strategies; default the
        first sorted level.
    strategy : {"mar", "j2r", "cr", "cir"}
        Missing at random; jump to reference; copy reference; copy increments in
        reference (Carpenter, Roger and Kenward 2013). Patients of the reference group
        are always imputed under MAR.
    covariates : str or sequence of str
        Further patient-level columns of the imputation model (each crossed with the
        visit), e.g. the primary diagnosis.
    n_imputations : int
        Number of imputed data sets ``M`` (20 or more is usual).
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`: the same seed gives the same sets.
    criteria : Criteria or mapping, optional
        Outcome definitions, as in :func:`analysis.derive_endpoints` (default the
        instrument's). Use the criteria the endpoints were derived with.

    Returns
    -------
    DataFrame
        ``imputation`` (1..M), then the columns of :func:`analysis.derive_endpoints`, the
        ``group`` and ``covariates`` columns and ``score_continuous``: ``M`` copies of
        every patient x visit. Observed rows are unchanged (``imputed=False``); imputed
        rows have ``imputed=True``, ``study_day`` NA, the drawn score rounded to an
        integer in the scale's range, and every outcome flag derived from it by the
        package's rules. ``score_continuous`` is the unrounded draw (the observed score
        on observed rows). When the criteria use a Jacobson-Truax reliable change
        (HAM-A default), its three flags are NA on imputed rows: pass a fixed threshold
        (``criteria={"reliable_change": ...}``) to impute them.

    Notes
    -----
    Imputation model: the MMRM ``change ~ visit * (baseline + group + covariates)`` with an
    unstructured covariance ``Sigma`` (REML, :func:`analysis.fit_mmrm`), fitted to the
    observed visits. For each imputation, the parameters are drawn from their large-sample
    (normal) posterior: ``beta* ~ N(beta_hat, Cov(beta_hat))`` and, independently (the
    information matrix is block diagonal), the covariance parameters on the fit's
    unconstrained log-Cholesky scale ``theta* ~ N(theta_hat, 2 H^-1)`` with ``H`` the
    Hessian of -2 log-likelihood, giving ``Sigma* = Sigma(theta*)`` (positive definite by
    construction). This approximates the Bayesian draw of Carpenter et al. (2013) and R
    ``rbmi``'s ``method_bayes``; with the sample sizes of clinic cohorts the posterior is
    close to normal. Each patient's missing changes are then drawn from
    ``N(mu_M + Sigma_MO Sigma_OO^-1 (y_O - mu_O), Sigma_MM - Sigma_MO Sigma_OO^-1 Sigma_OM)``
    where ``mu`` is the patient's mean profile under the strategy. With ``k`` the last
    observed visit, ``own`` and ``ref`` the patient's means with its own group and with
    the reference group (same covariates): MAR ``mu = own``; J2R ``mu_t = ref_t`` for
    ``t > k``; CR ``mu = ref`` at every visit; CIR ``mu_t = ref_t + own_k - ref_k`` for
    ``t > k`` (``ref_t`` when nothing was observed). One covariance is shared by the
    groups, as in ``rbmi``'s default.

    Rubin's variance is valid under MAR. Under the reference-based strategies it is
    larger than the repeated-sampling variance (it is "information anchored", Cro et al.
    2019); :func:`conditional_mean_analysis` gives the frequentist (jackknife) one.

    References
    ----------
    Rubin DB (1987). Multiple Imputation for Nonresponse in Surveys. Wiley.
    Carpenter JR, Roger JH, Kenward MG (2013). Analysis of longitudinal trials with
    protocol deviation: a framework for relevant, accessible assumptions, and inference
    via multiple imputation. J Biopharm Stat 23:1352-1371.
    Cro S, Carpenter JR, Kenward MG (2019). Information-anchored sensitivity analysis:
    theory and application. J R Stat Soc A 182:623-645.
    Gower-Page C, Noci A, Wolbers M (2022). rbmi: A R package for standard and
    reference-based multiple imputation methods. J Open Source Softw 7(74):4251.

    Examples
    --------
    >>> from analysis import synthetic_cohort
    >>> from analysis.tables import cohort_endpoints
    >>> ep = cohort_endpoints(synthetic_cohort(120, seed=1), "GAD7", impute="bocf",
    ...                       patient_columns=("route",))
    >>> sets = multiple_imputation(ep, n_imputations=5, seed=3)
    >>> sets.groupby("imputation").size().unique().tolist() == [len(ep)]
    True
    >>> int(sets["imputed"].sum()) == 5 * int(ep["imputed"].sum())
    True
    >>> pool_rates(sets, by="visit").query("visit == 'week4'")[["visit", "n", "rate"]].round(3)
       visit    n   rate
    3  week4  117  0.609
    """
    check_choice("strategy", strategy, list(STRATEGIES))
    _check_imputations(n_imputations)
    wide = _Wide(endpoints, group, covariates, reference, need_group=strategy != "mar")
    rules = _Rules(wide.instrument, criteria)
    model = _Model(wide)
    rng = np.random.default_rng(seed)
    draws = _draw_changes(model, strategy, n_imputations, rng)
    return _assemble(wide, rules, draws)


def _assemble(
    wide: _Wide, rules: _Rules, draws: list[np.ndarray], *, fast: bool = True
) -> pd.DataFrame:
    """The imputed endpoint sets, one block of ``n x m`` rows per imputation.

    ``fast`` (default) builds the ``M`` blocks at once: the grid repeated ``M`` times, the
    imputed scores and their outcome flags as arrays (one lookup for every imputed cell of
    every set). ``fast=False`` builds and concatenates one block per imputation, the plain
    form ``tests/test_missing_data.py`` holds it equal to (frame for frame, dtypes
    included). On the 120-patient synthetic cohort (20 sets, four strategies) the blocks
    took half of :func:`missing_data_sensitivity`'s time.
    """
    i, j = wide.row_index
    template = pd.DataFrame({"_i": np.repeat(np.arange(wide.n), wide.m)})
    template["_j"] = np.tile(np.arange(wide.m), wide.n)
    rows = wide.rows.assign(_i=i, _j=j)
    extra = [c for c in [wide.group, *wide.covariates] if c is not None]
    keep = [*ENDPOINT_COLUMNS, *[c for c in extra if c not in ENDPOINT_COLUMNS]]
    base = template.merge(rows, on=["_i", "_j"], how="left")
    patient = wide.patients.set_index(np.arange(wide.n))
    base["patient_id"] = patient["patient_id"].to_numpy()[base["_i"]]
    for column in ["baseline", *extra]:
        base[column] = patient[column].to_numpy()[base["_i"]]
    base["visit"] = np.asarray(wide.visits, dtype=object)[base["_j"]]
    base["target_day"] = pd.array(wide.target_days[base["_j"]].astype(int), dtype="Int64")
    base["instrument"] = wide.instrument.name
    flag_columns = [c for c in rules.table.columns if c not in ("baseline", "score", "change")]
    if fast:
        result = _assembled_at_once(wide, rules, draws, base, flag_columns, keep)
    else:
        result = _assembled_by_block(wide, rules, draws, base, flag_columns, keep)
    for column in ("baseline", "study_day"):
        result[column] = result[column].astype("Int64")
    for column in keep:  # the dtypes of derive_endpoints' output
        try:
            result[column] = result[column].astype(wide.rows[column].dtype)
        except (TypeError, ValueError):
            continue
    return result


def _assembled_by_block(wide, rules, draws, base, flag_columns, keep) -> pd.DataFrame:
    """One block per imputation, concatenated (the plain form of :func:`_assemble`)."""
    observed = wide.observed.ravel()
    missing = ~observed
    out = []
    for m, change in enumerate(draws, start=1):
        block = base.copy()
        continuous = (wide.baseline[:, None] + change).ravel()
        score = rules.round(continuous)
        looked = rules.lookup(np.repeat(wide.baseline, wide.m)[missing], score[missing])
        block["score"] = block["score"].astype("Int64")
        block.loc[missing, "score"] = score[missing].astype(int)
        block["change"] = (block["score"] - block["baseline"].astype("Int64")).astype("Int64")
        for column in flag_columns:
            values = block[column].astype(looked[column].dtype)
            values[missing] = looked[column].to_numpy()
            block[column] = values
        block.loc[missing, "study_day"] = pd.NA
        block["imputed"] = pd.array(missing, dtype="boolean")
        block["score_continuous"] = np.where(observed, wide.score.ravel(), continuous)
        block.insert(0, "imputation", m)
        out.append(block[["imputation", *keep, "score_continuous"]])
    return pd.concat(out, ignore_index=True)


def _assembled_at_once(wide, rules, draws, base, flag_columns, keep) -> pd.DataFrame:
    """The ``M`` blocks of :func:`_assembled_by_block` built as one frame."""
    observed = wide.observed.ravel()
    missing = ~observed
    n_sets, cells = len(draws), wide.n * wide.m
    continuous = (wide.baseline[:, None] + np.stack(draws)).reshape(n_sets, cells)
    score = rules.round(continuous)
    every_missing = np.tile(missing, n_sets)
    baselines = np.tile(np.repeat(wide.baseline, wide.m)[missing], n_sets)
    looked = rules.lookup(baselines, score[:, missing].ravel())
    block = base.iloc[np.tile(np.arange(len(base)), n_sets)].reset_index(drop=True)
    scores = block["score"].astype("Int64")
    scores[every_missing] = score[:, missing].ravel().astype(int)
    block["score"] = scores
    block["change"] = (block["score"] - block["baseline"].astype("Int64")).astype("Int64")
    for column in flag_columns:
        values = block[column].astype(looked[column].dtype)
        values[every_missing] = looked[column].to_numpy()
        block[column] = values
    block.loc[every_missing, "study_day"] = pd.NA
    block["imputed"] = pd.array(every_missing, dtype="boolean")
    block["score_continuous"] = np.where(
        np.tile(observed, n_sets), np.tile(wide.score.ravel(), n_sets), continuous.ravel()
    )
    block.insert(0, "imputation", np.repeat(np.arange(1, n_sets + 1), cells))
    return block[["imputation", *keep, "score_continuous"]]


# ---------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------


def _imputed_frame(imputed, outcome=None, columns=()) -> pd.DataFrame:
    frame = to_pandas(imputed, "imputed")
    needed = ["imputation", *([outcome] if outcome else []), *columns]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"Table `imputed` is missing the column(s) {missing}; it has {list(frame.columns)}. "
            "Pass the output of multiple_imputation (with the group column merged in)."
        )
    if frame["imputation"].nunique() < 2:
        raise ValueError(
            "Table `imputed` holds fewer than 2 imputed data sets; Rubin's rules need "
            "n_imputations >= 2."
        )
    return frame


def _proportion_terms(events, n, scale):
    p = events / n
    if scale == "raw":
        return p, p * (1 - p) / n
    # The logit of a rate of 0 or 1 is infinite: add a half to both counts (Haldane).
    edge = (events == 0) | (events == n)
    e = np.where(edge, events + 0.5, events)
    nn = np.where(edge, n + 1.0, n)
    q = e / nn
    return np.log(q / (1 - q)), 1 / (nn * q * (1 - q))


def pool_rates(
    imputed: pd.DataFrame,
    outcome: str = "response",
    by: str | Sequence[str] | None = ("instrument", "visit"),
    *,
    scale: str = "logit",
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """The rate of ``outcome`` per cell, combined over imputed data sets by Rubin's rules.

    Parameters
    ----------
    imputed : DataFrame
        Output of :func:`multiple_imputation` (with the ``by`` columns).
    outcome : str
        A boolean outcome column (``response``, ``remission``, ...).
    by : str, sequence of str or ()
        Cells, as in :func:`analysis.rate_table`.
    scale : {"logit", "raw"}
        Scale on which the rates are pooled. ``"logit"`` (default) pools
        ``log(p / (1 - p))`` with variance ``1 / (n p (1 - p))`` and transforms back,
        keeping the interval inside (0, 1); ``"raw"`` pools ``p`` with the Wald variance.
    alpha : float
        1 - confidence level.
    min_cell : int, optional
        Small-group rule: a cell of fewer than ``min_cell`` patients shows no statistics
        (:func:`analysis.disclosure.suppress_cells` on ``n``); the cells of a column that
        splits patients (route, site, ...) add up to all patients, so when one is hidden
        the next smallest is too (complementary suppression).

    Returns
    -------
    DataFrame
        ``by..., n, rate, se, df, ci_low, ci_high, fmi, n_imputations`` (and
        ``suppressed`` with ``min_cell``). ``n`` is the mean number of patients with the
        outcome defined per set; ``se`` is on the pooling scale.

    Notes
    -----
    Each set's rate is an estimate with complete-data df ``n - 1``; the sets are
    combined by :func:`rubin_rules` with the Barnard-Rubin df. On the logit scale a rate
    of 0 or 1 in a set takes half an event more and less (``(events + 0.5) / (n + 1)``).
    Pooling on a scale where the estimate is closer to normal is recommended for
    proportions (Marshall et al. 2009).

    References
    ----------
    Rubin DB (1987). Multiple Imputation for Nonresponse in Surveys. Wiley.
    Barnard J, Rubin DB (1999). Biometrika 86:948-955.
    Marshall A, Altman DG, Holder RL, Royston P (2009). Combining estimates of interest
    in prognostic modelling studies after multiple imputation: current practice and
    guidelines. BMC Med Res Methodol 9:57.

    Examples
    --------
    >>> import pandas as pd
    >>> sets = pd.DataFrame({"imputation": [1] * 4 + [2] * 4,
    ...                      "response": [True, True, False, False, True, False, False, False]})
    >>> pool_rates(sets, by=(), scale="raw")[["n", "rate", "se", "df"]].round(4)
       n   rate      se     df
    0  4  0.375  0.3187  0.876

    By hand: rates 0.5 and 0.25 with variances ``p (1 - p) / 4`` = 0.0625 and 0.046875,
    ``B`` = 0.03125, ``T = 0.0546875 + 1.5 x 0.03125 = 0.1015625``, ``se = 0.3187``.
    """
    check_choice("scale", scale, ["logit", "raw"])
    check_alpha(alpha)
    check_min_cell(min_cell)
    by = as_by(by)
    frame = _imputed_frame(imputed, outcome, by)
    y = pd.to_numeric(frame[outcome].astype("Float64"), errors="coerce")
    frame = frame.assign(_y=y).dropna(subset=["_y"])
    counts = frame.groupby([*by, "imputation"], sort=False, observed=True)["_y"].agg(
        ["sum", "count"]
    )
    rows = []
    for key, cell in counts.groupby(level=_level(by), sort=False) if by else [((), counts)]:
        events, n = cell["sum"].to_numpy(float), cell["count"].to_numpy(float)
        q, u = _proportion_terms(events, n, scale)
        pooled = rubin_rules(q, u, df_complete=max(n.mean() - 1, 1.0), alpha=alpha)
        back = (lambda v: 1 / (1 + np.exp(-v))) if scale == "logit" else (lambda v: v)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": int(round(n.mean())),
                "rate": float(back(pooled.estimate)),
                "se": pooled.se,
                "df": pooled.df,
                "ci_low": float(np.clip(back(pooled.ci_low), 0, 1)),
                "ci_high": float(np.clip(back(pooled.ci_high), 0, 1)),
                "fmi": pooled.fmi,
                "n_imputations": pooled.n_imputations,
            }
        )
    out = _sorted(pd.DataFrame(rows), frame, by)
    if min_cell is not None:
        # the cells of a group column add up to all patients: complementary suppression
        out = suppress_cells(
            out, min_cell, ("n",), total=None, derived=_STATS_COLUMNS, margins=partition_margins(by)
        )
    return out


def _level(by: list[str]):
    """A groupby level argument whose keys are scalars for one column, tuples for more."""
    return by[0] if len(by) == 1 else by


_STATS_COLUMNS = ("rate", "se", "df", "ci_low", "ci_high", "fmi")


def _sorted(out: pd.DataFrame, frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    if "visit" in by and "target_day" in frame.columns and not out.empty:
        rank = frame.groupby("visit")["target_day"].min()
        return out.sort_values(
            by, key=lambda c: c.map(rank) if c.name == "visit" else c, kind="stable"
        ).reset_index(drop=True)
    return out.reset_index(drop=True)


def _group_levels(frame, group, reference):
    levels = sorted(pd.unique(frame[group].dropna()).tolist(), key=str)
    if len(levels) < 2:
        raise ValueError(
            f"The column `{group}` has {len(levels)} level(s), so a comparison between "
            "groups is not defined; compare only data with at least two groups."
        )
    reference = levels[0] if reference is None else reference
    check_choice("reference", reference, levels)
    return [lvl for lvl in levels if lvl != reference], reference


def pool_rate_differences(
    imputed: pd.DataFrame,
    outcome: str,
    group: str,
    *,
    reference=None,
    by: str | Sequence[str] | None = ("instrument", "visit"),
    alpha: float = 0.05,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """Each group's rate minus the reference group's, pooled over imputed sets.

    Parameters
    ----------
    imputed : DataFrame
        Output of :func:`multiple_imputation` with the ``group`` and ``by`` columns.
    outcome : str
        A boolean outcome column.
    group : str
        The column of the groups compared.
    reference : optional
        The level subtracted; default the first sorted level.
    by : str, sequence of str or ()
        Cells compared within.
    alpha : float
        1 - confidence level.
    min_cell : int, optional
        A comparison where either group has fewer than ``min_cell`` patients shows no
        statistics; since the groups and the reference add up to the patients of the
        analysis, one more comparison (the next smallest group) is hidden with it
        (complementary suppression, :mod:`analysis.disclosure`).

    Returns
    -------
    DataFrame
        ``by..., group, reference, n, n_ref, rate, rate_ref, risk_difference, se, df,
        rd_ci_low, rd_ci_high, p_value, fmi, n_imputations`` (and ``suppressed``).

    Notes
    -----
    In each set, ``RD = p - p_ref`` with the Wald variance ``p (1 - p) / n + p_ref (1 -
    p_ref) / n_ref`` and complete-data df ``n + n_ref - 2``; the sets are combined by
    :func:`rubin_rules`. The difference is pooled on its own scale (it is close to normal
    unless a rate is near 0 or 1).

    Examples
    --------
    >>> import pandas as pd
    >>> sets = pd.DataFrame({
    ...     "imputation": [1] * 6 + [2] * 6,
    ...     "arm": ["a", "a", "a", "b", "b", "b"] * 2,
    ...     "response": [True, True, False, True, False, False,
    ...                  True, False, False, False, False, False]})
    >>> pool_rate_differences(sets, "response", "arm", by=())[
    ...     ["group", "reference", "risk_difference", "se"]].round(4)
      group reference  risk_difference      se
    0     b         a          -0.3333  0.3333

    Set 1: ``1/3 - 2/3`` with variance ``2 (2/9) / 3``; set 2: ``0 - 1/3`` with variance
    ``(2/9) / 3``; equal differences, so ``B = 0`` and ``se = sqrt(mean(U)) = 1/3``.
    """
    check_alpha(alpha)
    check_min_cell(min_cell)
    by = as_by(by)
    frame = _imputed_frame(imputed, outcome, [group, *by])
    others, reference = _group_levels(frame, group, reference)
    y = pd.to_numeric(frame[outcome].astype("Float64"), errors="coerce")
    frame = frame.assign(_y=y).dropna(subset=["_y"])
    counts = frame.groupby([*by, group, "imputation"], sort=False, observed=True)["_y"].agg(
        ["sum", "count"]
    )
    cells = counts.groupby(level=_level(by), sort=False) if by else [((), counts)]
    rows = []
    for key, cell in cells:
        key = key if isinstance(key, tuple) else (key,)
        cell = cell.droplevel(by) if by else cell  # type: ignore[arg-type]  # pandas-stubs: list[str] is no list[Hashable]
        levels = cell.index.get_level_values(group)
        if reference not in set(levels):
            continue
        ref = cell.xs(reference, level=group)
        for level in others:
            if level not in set(levels):
                continue
            this = cell.xs(level, level=group).reindex(ref.index)
            n1, e1 = this["count"].to_numpy(float), this["sum"].to_numpy(float)
            n0, e0 = ref["count"].to_numpy(float), ref["sum"].to_numpy(float)
            p1, p0 = e1 / n1, e0 / n0
            u = p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0
            pooled = rubin_rules(
                p1 - p0, u, df_complete=max(n1.mean() + n0.mean() - 2, 1.0), alpha=alpha
            )
            rows.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "group": level,
                    "reference": reference,
                    "n": int(round(n1.mean())),
                    "n_ref": int(round(n0.mean())),
                    "rate": float(p1.mean()),
                    "rate_ref": float(p0.mean()),
                    "risk_difference": pooled.estimate,
                    "se": pooled.se,
                    "df": pooled.df,
                    "rd_ci_low": pooled.ci_low,
                    "rd_ci_high": pooled.ci_high,
                    "p_value": pooled.p_value,
                    "fmi": pooled.fmi,
                    "n_imputations": pooled.n_imputations,
                }
            )
    out = _sorted(pd.DataFrame(rows), frame, by)
    if min_cell is not None and not out.empty:
        stats_columns = ["rate", "rate_ref", "risk_difference", "se", "df"]
        stats_columns += ["rd_ci_low", "rd_ci_high", "p_value", "fmi"]
        out = _suppress_comparisons(out, min_cell, stats_columns, by)
    return out


def _suppress_comparisons(
    out: pd.DataFrame, min_cell: int, stats: Sequence[str], by: Sequence[str] = ()
) -> pd.DataFrame:
    """The disclosure rules of :mod:`analysis.disclosure` for rows ``group`` vs ``reference``.

    A row whose group (``n``) or reference (``n_ref``) has 1 to ``min_cell - 1`` patients
    shows no statistic (the small-group rule). The groups of the rows sharing ``by``
    (and ``delta``/``strategy`` where present) add up, with the reference, to the
    patients of the analysis, a total shown elsewhere, so one hidden group would be that
    total minus the others: complementary suppression hides the next smallest group.
    """
    labels = [c for c in (*by, "strategy", "delta") if c in out.columns]
    return suppress_cells(
        out, min_cell, ("n", "n_ref"), total=None, derived=list(stats), margins=[labels]
    )


def _ancova_design(frame: pd.DataFrame, group, levels, covariates) -> np.ndarray:
    columns = [np.ones(len(frame))]
    columns += [(frame[group] == level).to_numpy(float) for level in levels]
    columns.append(pd.to_numeric(frame["baseline"]).to_numpy(float))
    for column in covariates:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            columns.append(values.to_numpy(float))
        else:
            for level in sorted(pd.unique(values).tolist(), key=str)[1:]:
                columns.append((values == level).to_numpy(float))
    return np.column_stack(columns)


def _ols(X: np.ndarray, y: np.ndarray, rows: Sequence[int]):
    """OLS coefficients ``rows`` and their classical variances (statsmodels)."""
    import statsmodels.api as sm

    fit = sm.OLS(y, X).fit()
    return fit.params[list(rows)], np.diag(fit.cov_params())[list(rows)], fit.df_resid


def pool_change_differences(
    imputed: pd.DataFrame,
    group: str,
    *,
    reference=None,
    by: str | Sequence[str] | None = "visit",
    covariates: str | Sequence[str] = (),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Adjusted differences in mean change from baseline (ANCOVA), pooled over imputed sets.

    Parameters
    ----------
    imputed : DataFrame
        Output of :func:`multiple_imputation` (``score_continuous``, ``baseline``, the
        ``group``, ``by`` and ``covariates`` columns).
    group : str
        The column of the groups compared.
    reference : optional
        The level subtracted; default the first sorted level.
    by : str, sequence of str or ()
        Cells analysed separately (default each visit).
    covariates : str or sequence of str
        Further covariates of the ANCOVA besides the baseline (use those of the
        imputation model).
    alpha : float
        1 - confidence level.

    Returns
    -------
    DataFrame
        ``by..., group, reference, contrast, estimate, se, df, ci_low, ci_high, p_value,
        fmi, n_imputations``; ``contrast`` reads ``'level - reference'``.

    Notes
    -----
    In each set, the unrounded change ``score_continuous - baseline`` is regressed on the
    group, the baseline and the covariates by OLS (statsmodels); each group's coefficient
    and its variance, with complete-data df ``n - p``, are combined by :func:`rubin_rules`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> sets = pd.DataFrame({"imputation": np.repeat([1, 2], 40),
    ...                      "arm": np.tile(np.repeat(["a", "b"], 20), 2),
    ...                      "baseline": np.tile(rng.integers(10, 20, 40), 2)})
    >>> sets["score_continuous"] = sets["baseline"] - 5 - 2 * (sets["arm"] == "b") + rng.normal(
    ...     0, 1, 80)
    >>> pool_change_differences(sets, "arm", by=())[["contrast", "estimate"]].round(1)
       contrast  estimate
    0     b - a      -2.0
    """
    check_alpha(alpha)
    by, covariates = as_by(by), as_by(covariates)
    frame = _imputed_frame(imputed, None, [group, "baseline", "score_continuous", *by, *covariates])
    others, reference = _group_levels(frame, group, reference)
    frame = frame.assign(
        _change=frame["score_continuous"].astype(float) - frame["baseline"].astype(float)
    )
    rows = []
    cells = frame.groupby(by, sort=False, observed=True) if by else [((), frame)]
    for key, cell in cells:
        key = key if isinstance(key, tuple) else (key,)
        levels = [lvl for lvl in others if (cell[group] == lvl).any()]
        estimates, variances, dfs = [], [], []
        for _, one in cell.groupby("imputation", sort=True):
            X = _ancova_design(one, group, levels, covariates)
            b, v, df = _ols(X, one["_change"].to_numpy(float), range(1, 1 + len(levels)))
            estimates.append(b)
            variances.append(v)
            dfs.append(df)
        estimates, variances = np.array(estimates), np.array(variances)
        for k, level in enumerate(levels):
            pooled = rubin_rules(
                estimates[:, k], variances[:, k], df_complete=float(np.mean(dfs)), alpha=alpha
            )
            rows.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "group": level,
                    "reference": reference,
                    "contrast": f"{level} - {reference}",
                    "estimate": pooled.estimate,
                    "se": pooled.se,
                    "df": pooled.df,
                    "ci_low": pooled.ci_low,
                    "ci_high": pooled.ci_high,
                    "p_value": pooled.p_value,
                    "fmi": pooled.fmi,
                    "n_imputations": pooled.n_imputations,
                }
            )
    return _sorted(pd.DataFrame(rows), frame, by)


# ---------------------------------------------------------------------------------------
# Conditional mean imputation with jackknife standard errors
# ---------------------------------------------------------------------------------------


def _cm_statistics(wide: _Wide, rules: _Rules, strategy, outcome, keep: np.ndarray):
    """Every statistic of :func:`conditional_mean_analysis` from the patients ``keep``."""
    model = _Model(wide, rows=keep)
    mean = model.means(model.beta, strategy)
    cmean, cvar, _ = _conditional(wide, mean, model.sigma, wide.change)
    base = wide.baseline[keep]
    values = []
    others = [] if wide.group is None else [lv for lv in wide.levels if lv != wide.reference]
    groups = None if wide.group_values is None else wide.group_values[keep]  # None: no group
    X = None
    if wide.group is not None:
        frame = wide.patients[keep].rename(columns={wide.group: "_group"})
        X = _ancova_design(frame, "_group", others, wide.covariates)
    for v in range(wide.m):
        y = cmean[keep, v]
        observed = wide.observed[keep, v]
        prob = rules.probability(
            outcome, base, base + y, np.sqrt(np.where(observed, 0.0, cvar[keep, v]))
        )
        if X is not None:
            coef = np.linalg.lstsq(X, y, rcond=None)[0]
            values += list(coef[1 : 1 + len(others)])
            rate = {lv: np.nanmean(prob[groups == lv]) for lv in wide.levels}
            values += [rate[lv] for lv in wide.levels]
            values += [rate[lv] - rate[wide.reference] for lv in others]
        else:
            values.append(np.nanmean(prob))
    return np.array(values, dtype=float)


def _cm_labels(wide: _Wide):
    labels: list[tuple[object, ...]] = []
    others = [] if wide.group is None else [lv for lv in wide.levels if lv != wide.reference]
    for visit in wide.visits:
        if wide.group is None:
            labels.append((visit, "rate", pd.NA, pd.NA))
            continue
        labels += [(visit, "change_difference", lv, wide.reference) for lv in others]
        labels += [(visit, "rate", lv, pd.NA) for lv in wide.levels]
        labels += [(visit, "rate_difference", lv, wide.reference) for lv in others]
    return labels


def conditional_mean_analysis(
    endpoints,
    *,
    group: str | None = None,
    reference=None,
    strategy: str = "mar",
    outcome: str = "response",
    covariates: str | Sequence[str] = (),
    jackknife_groups: int | None = None,
    seed: int | None = None,
    alpha: float = 0.05,
    criteria=None,
) -> pd.DataFrame:
    """Conditional mean imputation (MAR or reference-based) with jackknife standard errors.

    Parameters
    ----------
    endpoints : DataFrame
        As :func:`multiple_imputation` (``derive_endpoints(..., impute="bocf")`` with the
        ``group`` and ``covariates`` columns).
    group : str, optional
        Column of the groups compared; ``None`` gives the rate of ``outcome`` only.
    reference : optional
        Reference level of ``group`` (default the first sorted level).
    strategy : {"mar", "j2r", "cr", "cir"}
        As :func:`multiple_imputation`.
    outcome : str
        The outcome flag whose rate is estimated (``response``, ``remission``, ...).
    covariates : str or sequence of str
        Further patient-level covariates of the imputation model and of the ANCOVA.
    jackknife_groups : int, optional
        ``None`` (default): the leave-one-patient-out jackknife (one refit per patient).
        An integer ``G``: the delete-a-group jackknife with the patients split at random
        (``seed``) into ``G`` groups, ``G`` refits (quicker for large cohorts).
    seed : int, optional
        Seed of the split into jackknife groups.
    alpha : float
        1 - confidence level.
    criteria : Criteria or mapping, optional
        Outcome definitions, as in :func:`analysis.derive_endpoints`.

    Returns
    -------
    DataFrame
        ``visit, statistic, group, reference, estimate, se, ci_low, ci_high, p_value``
        with ``statistic`` one of ``change_difference`` (ANCOVA difference in mean change,
        group minus reference), ``rate`` (the rate of ``outcome`` in ``group``, or overall
        without a group) and ``rate_difference`` (group minus reference). Visits in
        schedule order.

    Notes
    -----
    Each missing change is replaced by its conditional mean given the patient's observed
    changes, ``mu_M + Sigma_MO Sigma_OO^-1 (y_O - mu_O)``, with the point estimates of
    the imputation model of :func:`multiple_imputation` and ``mu`` the strategy's mean
    profile; the change at each visit is then analysed by ANCOVA on the group, the baseline
    and the covariates. Under MAR this reproduces the MMRM's treatment difference exactly
    (Wolbers et al. 2022, sec. 3.2): every covariate of the model has visit-specific
    coefficients, so the MMRM is a multivariate regression and conditional mean imputation
    returns its fitted effect. For a binary outcome the missing flag is replaced by its
    conditional probability under the same normal model, ``P(outcome | y_O)``, the score
    rounded and bounded as in :func:`multiple_imputation`; the rate is the mean over
    patients of the observed flags and these probabilities.

    Standard errors are from the jackknife, refitting the imputation model without each
    patient (or group of patients): ``var = (G - 1) / G sum (t_g - t_bar)^2``. This is the
    repeated-sampling variance, also under the reference-based strategies (where Rubin's
    variance is larger). Intervals and p values use the normal distribution.

    References
    ----------
    Wolbers M, Noci A, Delmar P, Gower-Page C, Yiu S, Bartlett JW (2022). Standard and
    reference-based conditional mean imputation. Pharm Stat 21:1246-1257.
    Carpenter JR, Roger JH, Kenward MG (2013). J Biopharm Stat 23:1352-1371.
    Kott PS (2001). The delete-a-group jackknife. J Off Stat 17:521-526.

    Examples
    --------
    >>> from analysis import synthetic_cohort
    >>> from analysis.tables import cohort_endpoints
    >>> ep = cohort_endpoints(synthetic_cohort(120, seed=1), "GAD7", impute="bocf",
    ...                       patient_columns=("route",))
    >>> cm = conditional_mean_analysis(ep, jackknife_groups=10, seed=0)
    >>> cm.query("visit == 'week4'")[["visit", "statistic", "estimate", "se"]].round(3)
       visit statistic  estimate     se
    3  week4      rate     0.613  0.043
    """
    check_choice("strategy", strategy, list(STRATEGIES))
    check_alpha(alpha)
    wide = _Wide(endpoints, group, covariates, reference, need_group=group is not None)
    rules = _Rules(wide.instrument, criteria)
    check_choice(
        "outcome",
        outcome,
        [c for c in rules.table.columns if c in _BENEFICIAL + ("reliable_deterioration",)],
    )
    everyone = np.ones(wide.n, dtype=bool)
    estimate = _cm_statistics(wide, rules, strategy, outcome, everyone)
    if jackknife_groups is None:
        labels = np.arange(wide.n)
    else:
        if not isinstance(jackknife_groups, int | np.integer) or not (
            2 <= jackknife_groups <= wide.n
        ):
            raise ValueError(
                f"`jackknife_groups` must be None or an integer from 2 to the number of "
                f"patients ({wide.n}), but {jackknife_groups!r} was passed."
            )
        labels = np.random.default_rng(seed).permutation(wide.n) % jackknife_groups
    n_groups = int(labels.max()) + 1
    replicates = np.array(
        [_cm_statistics(wide, rules, strategy, outcome, labels != g) for g in range(n_groups)]
    )
    se = np.sqrt((n_groups - 1) / n_groups * ((replicates - replicates.mean(0)) ** 2).sum(0))
    z = stats.norm.ppf(1 - alpha / 2)
    out = pd.DataFrame(_cm_labels(wide), columns=["visit", "statistic", "group", "reference"])
    out["estimate"] = estimate
    out["se"] = se
    out["ci_low"] = estimate - z * se
    out["ci_high"] = estimate + z * se
    with np.errstate(divide="ignore", invalid="ignore"):
        out["p_value"] = np.where(
            out["statistic"] == "rate", np.nan, 2 * stats.norm.sf(np.abs(estimate / se))
        )
    return out


# ---------------------------------------------------------------------------------------
# Tipping point
# ---------------------------------------------------------------------------------------


def _one_level(wide: _Wide) -> str:
    return (
        f"The comparison between groups is not defined: `{wide.group}` has one level "
        f"({wide.levels[0]!r}) in these data."
    )


def _no_model(error: Exception) -> str:
    return f"No imputation: the imputation model cannot be fitted to these data. {error}"


def _note_row(wide: _Wide, note: str) -> pd.DataFrame:
    """One row saying why a comparison has no result (counts and statistics NA)."""
    return pd.DataFrame(
        [
            {
                "group": wide.levels[0] if len(wide.levels) == 1 else pd.NA,
                "reference": wide.reference,
                "n": pd.NA,
                "n_ref": pd.NA,
                "note": note,
            }
        ]
    )


@dataclass(frozen=True)
class TippingPointResult:
    """The result of :func:`tipping_point`.

    Attributes
    ----------
    grid : DataFrame
        One row per comparison and ``delta``: ``group, reference, shifted, delta, n, n_ref,
        rate, rate_ref, risk_difference, se, df, ci_low, ci_high, p_value, significant``.
    tipping_points : DataFrame
        One row per comparison: ``group, reference, shifted, n, n_ref, risk_difference, ci_low,
        ci_high, significant_at_zero, tipping_point, note`` (the difference and interval
        under MAR, ``delta = 0``).
    note : str
        Why there is no comparison (empty when there is one).
    """

    grid: pd.DataFrame
    tipping_points: pd.DataFrame
    note: str = ""


def tipping_point(
    endpoints,
    group: str,
    *,
    reference=None,
    visit: str = "week4",
    outcome: str = "response",
    deltas: Sequence[float] | None = None,
    covariates: str | Sequence[str] = (),
    n_imputations: int = 20,
    seed: int | None = None,
    alpha: float = 0.05,
    criteria=None,
    min_cell: int | None = None,
) -> TippingPointResult:
    """Delta-adjusted MI: how much worse must the missing patients be to change the conclusion?

    Parameters
    ----------
    endpoints : DataFrame
        As :func:`multiple_imputation`, with the ``group`` column.
    group : str
        Column of the groups compared (each level against ``reference``).
    reference : optional
        Reference level (default the first sorted level).
    visit : str
        The visit compared (default ``"week4"``).
    outcome : str
        A beneficial outcome flag (``response``, ``remission``, ...).
    deltas : sequence of float, optional
        Shifts in score points, worse (higher) for positive values; default ``0, 1, ...,
        total_max // 2`` (GAD-7 0-10, HAM-A 0-28). ``0`` (MAR) is always included.
    covariates : str or sequence of str
        Further covariates of the imputation model.
    n_imputations : int
        Imputed sets ``M``; the same sets serve every ``delta``.
    seed : int, optional
        Seed of the imputations.
    alpha : float
        Significance level of the conclusion (two-sided).
    criteria : Criteria or mapping, optional
        Outcome definitions, as in :func:`analysis.derive_endpoints`.
    min_cell : int, optional
        Small-group rule: a comparison where either group has fewer than ``min_cell``
        patients shows no statistics, and the next smallest group is hidden with it
        (complementary suppression; :mod:`analysis.disclosure`).

    Returns
    -------
    TippingPointResult
        With one group level only, or when the imputation model cannot be fitted, one
        row in ``grid`` and in ``tipping_points`` and a ``note``, each saying why.

    Notes
    -----
    The missed visits are imputed under MAR (:func:`multiple_imputation`). For each
    comparison, the group that looks better under MAR (the one with the higher rate) is
    the one whose missing patients are made worse: ``delta`` points are added to their
    imputed score at ``visit`` before it is rounded and the outcome derived (a
    pattern-mixture model with a delta adjustment; Ratitch et al. 2013). The risk
    difference is pooled by :func:`pool_rate_differences`. The tipping point is the
    smallest ``delta`` of the grid at which the difference is no longer significant at
    ``alpha`` (its interval includes 0); it is NaN when the difference is not significant
    under MAR (there is no conclusion to overturn) or when no ``delta`` of the grid
    overturns it. A tipping point that is implausibly large for the scale (e.g. beyond
    the minimal clinically important difference, about 4 GAD-7 points) means the
    conclusion is robust to departures from MAR. The same imputations are used for every
    ``delta``, so the curve is smooth in ``delta``.

    References
    ----------
    Ratitch B, O'Kelly M, Tosiello R (2013). Missing data in clinical trials: from clinical
    assumptions to statistical analysis using pattern mixture models. Pharm Stat
    12:337-347.
    Cro S, Morris TP, Kenward MG, Carpenter JR (2020). Sensitivity analysis for clinical
    trials with missing continuous outcome data using controlled multiple imputation: a
    practical guide. Stat Med 39:2815-2842.
    National Research Council (2010). The Prevention and Treatment of Missing Data in
    Clinical Trials. National Academies Press.

    Examples
    --------
    >>> from analysis import synthetic_cohort
    >>> from analysis.tables import cohort_endpoints
    >>> ep = cohort_endpoints(synthetic_cohort(200, seed=2), "GAD7", impute="bocf",
    ...                       patient_columns=("route",))
    >>> ep = ep[ep["route"].isin(["iv", "oral"])]
    >>> tp = tipping_point(ep, "route", reference="iv", deltas=[0, 2, 4], n_imputations=5,
    ...                    seed=1)
    >>> tp.grid[["group", "shifted", "delta", "risk_difference", "significant"]].round(3)
      group shifted  delta  risk_difference  significant
    0  oral      iv    0.0           -0.105        False
    1  oral      iv    2.0           -0.068        False
    2  oral      iv    4.0           -0.032        False
    >>> tp.tipping_points["note"].iloc[0]
    'not significant under MAR: no conclusion to overturn'
    """
    check_alpha(alpha)
    _check_imputations(n_imputations)
    wide = _Wide(endpoints, group, covariates, reference, need_group=False)
    check_min_cell(min_cell)
    if len(wide.levels) < 2:
        note = _one_level(wide)
        return TippingPointResult(_note_row(wide, note), _note_row(wide, note), note)
    check_choice("visit", visit, wide.visits)
    rules = _Rules(wide.instrument, criteria)
    check_choice("outcome", outcome, [c for c in _BENEFICIAL if c in rules.table.columns])
    if deltas is None:
        deltas = np.arange(rules.top // 2 + 1, dtype=float)
    deltas = np.asarray(deltas, dtype=float)
    if deltas.ndim != 1 or not np.isfinite(deltas).all() or (deltas < 0).any():
        raise ValueError(
            "`deltas` must be a sequence of finite, non-negative score shifts (points "
            f"worse), but {deltas!r} was passed."
        )
    deltas = np.unique(np.append(deltas, 0.0))
    try:
        model = _Model(wide)
    except MMRMFitError as error:
        note = _no_model(error)
        return TippingPointResult(_note_row(wide, note), _note_row(wide, note), note)
    draws = _draw_changes(model, "mar", n_imputations, np.random.default_rng(seed))
    v = wide.visits.index(visit)
    missing = ~wide.observed[:, v]
    base = wide.baseline

    def compare(level, shifted_mask, delta):
        in_group = wide.group_values == level
        in_ref = wide.group_values == wide.reference
        q, u, n1s, n0s, p1s, p0s = [], [], [], [], [], []
        for change in draws:
            score = base + change[:, v] + delta * (missing & shifted_mask)
            score = np.where(missing, rules.round(score), wide.score[:, v])
            flag = rules.flag(outcome, base, score)
            y1, y0 = flag[in_group], flag[in_ref]
            y1, y0 = y1[~np.isnan(y1)], y0[~np.isnan(y0)]
            p1, p0 = y1.mean(), y0.mean()
            q.append(p1 - p0)
            u.append(p1 * (1 - p1) / len(y1) + p0 * (1 - p0) / len(y0))
            n1s.append(len(y1))
            n0s.append(len(y0))
            p1s.append(p1)
            p0s.append(p0)
        dfc = max(float(np.mean(n1s) + np.mean(n0s) - 2), 1.0)
        pooled = rubin_rules(q, u, df_complete=dfc, alpha=alpha)
        return pooled, np.mean(p1s), np.mean(p0s), round(np.mean(n1s)), round(np.mean(n0s))

    grid, summary = [], []
    for level in [lv for lv in wide.levels if lv != wide.reference]:
        at_zero, _, _, n1, n0 = compare(level, np.zeros(wide.n, dtype=bool), 0.0)
        shifted = level if at_zero.estimate >= 0 else wide.reference
        mask = wide.group_values == shifted
        significant_at_zero = not (at_zero.ci_low <= 0 <= at_zero.ci_high)
        tip = np.nan
        for delta in deltas:
            pooled, p1, p0, n1, n0 = compare(level, mask, delta)
            significant = not (pooled.ci_low <= 0 <= pooled.ci_high)
            grid.append(
                {
                    "group": level,
                    "reference": wide.reference,
                    "shifted": shifted,
                    "delta": float(delta),
                    "n": n1,
                    "n_ref": n0,
                    "rate": float(p1),
                    "rate_ref": float(p0),
                    "risk_difference": pooled.estimate,
                    "se": pooled.se,
                    "df": pooled.df,
                    "ci_low": pooled.ci_low,
                    "ci_high": pooled.ci_high,
                    "p_value": pooled.p_value,
                    "significant": significant,
                }
            )
            if significant_at_zero and np.isnan(tip) and not significant:
                tip = float(delta)
        if not significant_at_zero:
            note = "not significant under MAR: no conclusion to overturn"
        elif np.isnan(tip):
            note = f"still significant at the largest delta ({deltas[-1]:g} points)"
        else:
            note = (
                f"missing patients of {shifted!r} {tip:g} points worse than under MAR "
                "make the difference non-significant"
            )
        summary.append(
            {
                "group": level,
                "reference": wide.reference,
                "shifted": shifted,
                "n": n1,
                "n_ref": n0,
                "risk_difference": at_zero.estimate,
                "ci_low": at_zero.ci_low,
                "ci_high": at_zero.ci_high,
                "significant_at_zero": significant_at_zero,
                "tipping_point": tip,
                "note": note,
            }
        )
    grid, summary = pd.DataFrame(grid), pd.DataFrame(summary)
    if min_cell is not None:
        grid = _suppress_comparisons(grid, min_cell, _GRID_STATS)
        summary = _suppress_comparisons(summary, min_cell, _SUMMARY_STATS)
    return TippingPointResult(grid, summary)


_GRID_STATS = (
    *("shifted", "rate", "rate_ref", "risk_difference", "se", "df"),
    *("ci_low", "ci_high", "p_value", "significant"),
)
_SUMMARY_STATS = (
    *("shifted", "risk_difference", "ci_low", "ci_high"),
    *("significant_at_zero", "tipping_point", "note"),
)


# ---------------------------------------------------------------------------------------
# One table for a report
# ---------------------------------------------------------------------------------------


def missing_data_sensitivity(
    endpoints,
    group: str,
    *,
    reference=None,
    visit: str = "week4",
    outcome: str = "response",
    strategies: Sequence[str] = STRATEGIES,
    covariates: str | Sequence[str] = (),
    n_imputations: int = 20,
    seed: int | None = None,
    alpha: float = 0.05,
    criteria=None,
    min_cell: int | None = None,
) -> pd.DataFrame:
    """The rate difference at one visit under MAR and each reference-based strategy.

    One imputation model (:func:`multiple_imputation`'s MMRM) serves every strategy, and
    each strategy's ``n_imputations`` sets are pooled by :func:`pool_rate_differences`.

    Parameters
    ----------
    endpoints : DataFrame
        As :func:`multiple_imputation`, with the ``group`` column.
    group : str
        Column of the groups compared (each level against ``reference``).
    reference : optional
        Reference level (default the first sorted level); also the reference of the
        reference-based strategies.
    visit : str
        The visit compared.
    outcome : str
        A boolean outcome flag.
    strategies : sequence of {"mar", "j2r", "cr", "cir"}
        Strategies, in output order.
    covariates, n_imputations, seed, alpha, criteria
        As :func:`multiple_imputation` and :func:`pool_rate_differences`.
    min_cell : int, optional
        Small-group rule of :func:`pool_rate_differences`.

    Returns
    -------
    DataFrame
        ``strategy``, then the columns of :func:`pool_rate_differences` without ``by``,
        and ``note``. With one group level, or when the imputation model cannot be
        fitted (:class:`analysis.MMRMFitError`, e.g. a group never seen at a visit), one
        row whose ``note`` says why there is no comparison.

    Examples
    --------
    >>> from analysis import synthetic_cohort
    >>> from analysis.tables import cohort_endpoints
    >>> ep = cohort_endpoints(synthetic_cohort(200, seed=2), "GAD7", impute="bocf",
    ...                       patient_columns=("route",))
    >>> ep = ep[ep["route"].isin(["iv", "oral"])]
    >>> out = missing_data_sensitivity(ep, "route", reference="iv", n_imputations=5, seed=1)
    >>> out[["strategy", "group", "reference", "risk_difference"]].round(3)
      strategy group reference  risk_difference
    0      mar  oral        iv           -0.105
    1      j2r  oral        iv           -0.094
    2       cr  oral        iv           -0.105
    3      cir  oral        iv           -0.115
    >>> missing_data_sensitivity(ep[ep["route"] == "iv"], "route", n_imputations=2)["note"][0]
    "The comparison between groups is not defined: `route` has one level ('iv') in these data."
    """
    strategies = list(strategies)
    for strategy in strategies:
        check_choice("strategies", strategy, list(STRATEGIES))
    _check_imputations(n_imputations)
    wide = _Wide(endpoints, group, covariates, reference, need_group=False)
    if len(wide.levels) < 2:
        return _note_row(wide, _one_level(wide))
    check_choice("visit", visit, wide.visits)
    rules = _Rules(wide.instrument, criteria)
    try:
        model = _Model(wide)
    except MMRMFitError as error:
        return _note_row(wide, _no_model(error))
    out = []
    for strategy in strategies:
        draws = _draw_changes(model, strategy, n_imputations, np.random.default_rng(seed))
        sets = _assemble(wide, rules, draws)
        sets = sets[sets["visit"] == visit]
        table = pool_rate_differences(
            sets, outcome, group, reference=wide.reference, by=(), alpha=alpha, min_cell=min_cell
        )
        table.insert(0, "strategy", strategy)
        out.append(table)
    result = pd.concat(out, ignore_index=True)
    result["note"] = ""
    return result
