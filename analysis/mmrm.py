"""Mixed model for repeated measures (MMRM) with a structured residual covariance.

The model for subject ``i`` observed at the visits ``S_i`` is

    y_i ~ N(X_i beta, Sigma[S_i, S_i]),

one visit x visit covariance ``Sigma`` shared by all subjects, of which every subject
contributes the rows and columns of the visits it was observed at (valid when the missing
visits are missing at random). This is SAS PROC MIXED with a ``REPEATED`` statement and R's
``mmrm`` package; statsmodels' ``MixedLM`` cannot fit it because it fixes the residual
covariance to ``sigma^2 I``.

Design, in the order the fit runs:

- ``_Data``: model columns, categorical coding, rows with missing values counted and
  dropped, checks that name the problem and the fix.
- ``_Problem``: subjects grouped by missingness pattern, so that the criterion and its
  analytic gradient are a few matrix products per pattern, never a Python loop over
  subjects. A large pattern is reduced once to its cross-products, after which an
  evaluation costs the same whatever the number of subjects.
- ``_Structure``: ``Sigma(theta)`` and ``dSigma/dtheta`` for each covariance structure,
  on an unconstrained scale (log-Cholesky for ``us``, as in R mmrm).
- ``_optimize``: BFGS on the REML (or ML) criterion with ``beta`` profiled out by
  generalized least squares, then Newton steps on a finite-difference Hessian of the
  analytic gradient; that Hessian is also the observed information used for the
  Satterthwaite degrees of freedom.
- ``MMRMResult``: estimates, LS means, contrasts and effect sizes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from scipy import linalg, optimize, stats
from threadpoolctl import threadpool_limits

from analysis._frames import to_pandas
from analysis._utils import as_by, check_choice
from analysis.endpoints import visit_order

__all__ = ["COVARIANCE_STRUCTURES", "MMRMFitError", "MMRMResult", "fit_mmrm"]

#: Residual covariance structures, named as in SAS PROC MIXED and R mmrm.
COVARIANCE_STRUCTURES = ("us", "cs", "csh", "ar1", "ar1h")

#: Methods for standard errors and degrees of freedom (``ddf``).
DDF_METHODS = ("satterthwaite", "kr")
_DDF_ALIASES = {"kenward-roger": "kr", "kenwardroger": "kr", "satterth": "satterthwaite"}


class MMRMFitError(ValueError):
    """The model cannot be fitted to these data; the message says why and what to change."""


# ---------------------------------------------------------------------------------------
# Covariance structures
# ---------------------------------------------------------------------------------------


class _Structure:
    """A visit x visit covariance ``Sigma(theta)`` with unconstrained parameters ``theta``.

    ``us``: ``Sigma = L L'`` with ``L`` lower triangular; ``theta`` holds the logs of the
    diagonal of ``L`` then its strictly lower elements row by row (R mmrm's log-Cholesky).
    ``cs``/``csh``: ``Sigma_ab = s_a s_b (1 if a == b else rho)`` with
    ``rho = lo + (1 - lo) expit(t)``, ``lo = -1 / (m - 1)`` (the positive-definite range).
    ``ar1``/``ar1h``: ``Sigma_ab = s_a s_b rho^|a - b|`` with ``rho = tanh(t)`` and the lag
    counted in visit levels. The ``h`` variants have one ``s`` per visit (``theta`` holds
    ``log s``), the others a single one.
    """

    def __init__(self, name: str, n_visits: int):
        self.name = name
        self.m = n_visits
        self.heterogeneous = name in ("csh", "ar1h")
        if name == "us":
            self.n_theta = n_visits * (n_visits + 1) // 2
        else:
            self.n_theta = (n_visits if self.heterogeneous else 1) + 1
        self._lag = np.abs(np.subtract.outer(np.arange(n_visits), np.arange(n_visits)))
        self._lower = -1.0 / (n_visits - 1) if n_visits > 1 else 0.0

    def initial(self, variances: np.ndarray) -> np.ndarray:
        """Start at a diagonal ``Sigma`` with the given per-visit variances."""
        log_sd = 0.5 * np.log(variances)
        if self.name == "us":
            return np.concatenate([log_sd, np.zeros(self.n_theta - self.m)])
        sd_part = log_sd if self.heterogeneous else [np.mean(log_sd)]
        # rho = 0: expit(t) = -lo / (1 - lo) = 1 / m for cs, tanh(t) = 0 for ar1.
        t0 = -np.log(self.m - 1.0) if self.name in ("cs", "csh") else 0.0
        return np.append(sd_part, t0)

    def matrix(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Sigma`` (m x m) and its derivatives ``dSigma/dtheta_j`` (q x m x m)."""
        m = self.m
        if self.name == "us":
            rows, cols = np.tril_indices(m, -1)
            chol = np.zeros((m, m))
            chol[np.diag_indices(m)] = np.exp(theta[:m])
            chol[rows, cols] = theta[m:]
            d_chol = np.zeros((self.n_theta, m, m))
            d_chol[np.arange(m), np.arange(m), np.arange(m)] = np.exp(theta[:m])
            d_chol[np.arange(m, self.n_theta), rows, cols] = 1.0
            half = d_chol @ chol.T
            return chol @ chol.T, half + half.transpose(0, 2, 1)
        sd = np.exp(theta[:-1]) * np.ones(m)
        t = theta[-1]
        if self.name in ("cs", "csh"):
            e = 1.0 / (1.0 + np.exp(-t))
            rho = self._lower + (1.0 - self._lower) * e
            corr = np.where(self._lag == 0, 1.0, rho)
            d_corr = np.where(self._lag == 0, 0.0, (1.0 - self._lower) * e * (1.0 - e))
        else:
            rho = np.tanh(t)
            corr = rho**self._lag
            d_corr = np.where(
                self._lag > 0, self._lag * rho ** np.maximum(self._lag - 1, 0), 0.0
            ) * (1.0 - rho**2)
        scale = np.outer(sd, sd)
        sigma = scale * corr
        d_sigma = np.empty((self.n_theta, m, m))
        if self.heterogeneous:
            eye = np.eye(m)
            d_sigma[:m] = sigma * (eye[:, :, None] + eye[:, None, :])
        else:
            d_sigma[0] = 2.0 * sigma
        d_sigma[-1] = scale * d_corr
        return sigma, d_sigma


# ---------------------------------------------------------------------------------------
# Data preparation
# ---------------------------------------------------------------------------------------


def _sorted_levels(values: pd.Series) -> list:
    uniques = pd.unique(values.dropna())
    try:
        return sorted(uniques)
    except TypeError:  # mixed types: sort by their text
        return sorted(uniques, key=str)


def _as_categorical(values: pd.Series) -> pd.Series:
    """Categorical with the first sorted level first; an ordered Categorical keeps its order."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered:
        levels = list(values.dtype.categories)
    else:
        levels = _sorted_levels(values)
    return pd.Series(pd.Categorical(values, categories=levels), index=values.index)


def _visit_levels(frame: pd.DataFrame, visit: str) -> list:
    """The visit levels in time order (:func:`analysis.endpoints.visit_order`).

    An ordered Categorical keeps its order. Otherwise, when the data carry a
    ``target_day`` column with one target day per visit (the output of
    :func:`analysis.derive_endpoints`), the visits are ordered by it; else the visits of
    the default schedule (:data:`analysis.endpoints.DEFAULT_SCHEDULE`) keep its order;
    else labels sort with their numbers as numbers ('week2' before 'week12').
    """
    days = frame["target_day"] if "target_day" in frame.columns and visit != "target_day" else None
    return visit_order(frame[visit], days, unknown="natural")


def _is_factor(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(
        values.dtype
    )


class _Data:
    """The analysis rows, sorted by subject and visit, with their design."""

    def __init__(self, data: pd.DataFrame, formula: str, subject: str, visit: str):
        data = to_pandas(data)
        parsed = Formula(formula)
        if not hasattr(parsed, "lhs") or not parsed.lhs.required_variables:
            raise ValueError(
                f"The formula {formula!r} has no response; write it as 'response ~ terms', "
                "e.g. 'change ~ baseline + arm * visit'."
            )
        missing = [c for c in (subject, visit) if c not in data.columns]
        if missing:
            raise ValueError(
                f"The column(s) {missing} given as `subject`/`visit` are not in `data`; "
                f"it has {list(data.columns)}."
            )
        used = [c for c in data.columns if c in parsed.required_variables]
        frame = data[list(dict.fromkeys([*used, subject, visit]))].copy()
        factor_columns = [c for c in used if c != visit and _is_factor(frame[c])]
        for column in factor_columns:
            frame[column] = _as_categorical(frame[column])
        visit_levels = _visit_levels(data, visit)
        frame[visit] = pd.Series(
            pd.Categorical(frame[visit], categories=visit_levels), index=frame.index
        )

        incomplete = frame.isna()
        self.n_dropped = int(incomplete.any(axis=1).sum())
        self.missing_by_column = {c: int(n) for c, n in incomplete.sum().items() if n > 0}
        frame = frame[~incomplete.any(axis=1)]
        if frame.empty:
            raise MMRMFitError(
                f"No row of `data` has every model column ({list(frame.columns)}) observed; "
                "check the column names and the missing values."
            )
        empty = [lvl for lvl, n in frame[visit].value_counts(sort=False).items() if n == 0]
        if empty:
            raise MMRMFitError(
                f"`visit` level(s) {[str(v) for v in empty]} have no observations with every "
                "model column present; remove those visits from the data (or the unused "
                "categories of the visit column) before fitting."
            )
        for column in factor_columns:
            frame[column] = frame[column].cat.remove_unused_categories()

        if frame.duplicated([subject, visit]).any():
            n_dup = int(frame.duplicated([subject, visit]).sum())
            raise MMRMFitError(
                f"{n_dup} row(s) repeat a (`{subject}`, `{visit}`) pair; an MMRM needs at most "
                "one response per subject and visit. Aggregate or window the visits first "
                "(e.g. `derive_endpoints`)."
            )
        try:
            subject_codes = pd.factorize(frame[subject], sort=True)[0]
        except TypeError:  # mixed types: sort by their text
            subject_codes = pd.factorize(frame[subject].astype(str), sort=True)[0]
        visit_codes = frame[visit].cat.codes.to_numpy()
        order = np.lexsort((visit_codes, subject_codes))
        frame = frame.iloc[order]

        matrices = model_matrix(parsed, frame, na_action="ignore")
        if matrices.lhs.shape[1] != 1:
            raise ValueError(
                f"The response of {formula!r} must be one column, but it makes "
                f"{matrices.lhs.shape[1]}; use a single numeric response."
            )
        self.y = np.asarray(matrices.lhs, dtype=float)[:, 0]
        self.X = np.asarray(matrices.rhs, dtype=float)
        if not (np.isfinite(self.y).all() and np.isfinite(self.X).all()):
            raise MMRMFitError(
                "The formula produced missing or infinite values (e.g. log of a value <= 0); "
                "transform the columns before fitting or drop those rows."
            )
        self.columns = list(matrices.rhs.columns)
        self.spec = matrices.rhs.model_spec
        self.subject_codes = subject_codes[order]
        self.visit_codes = visit_codes[order]
        self.visits = list(frame[visit].cat.categories)
        self.factors: dict[str, pd.CategoricalDtype] = {
            c: cast(pd.CategoricalDtype, frame[c].dtype)  # the factors are categorical here
            for c in [*factor_columns, visit]
            if c in parsed.rhs.required_variables
        }
        self.numeric_means = {
            c: float(frame[c].mean())
            for c in used
            if c in parsed.rhs.required_variables and c not in self.factors and c != visit
        }
        self.n_obs = len(frame)
        self.n_subjects = int(self.subject_codes.max()) + 1
        self._check_rank()

    def _check_rank(self) -> None:
        """Drop the aliased columns, as SAS PROC MIXED does.

        A column that is a linear combination of the columns before it (in formula
        order, SAS's sweep order) is not estimable: it is dropped from the fit, its
        estimate reported as NaN, and every linear combination that depends on it (an LS
        mean, a contrast) is flagged instead of computed. ``null_space`` spans the
        combinations of all columns that the data cannot see: ``l' beta`` is estimable
        exactly when ``l`` is orthogonal to it.
        """
        n, p = self.X.shape
        scale = np.linalg.norm(self.X, axis=0)
        r = linalg.qr(self.X / np.where(scale > 0, scale, 1.0), mode="r")[0]
        diag = np.abs(np.diag(r))
        keep = diag > 1e-9 * max(1.0, float(diag.max(initial=0.0)))
        self.all_columns = list(self.columns)
        self.keep = np.flatnonzero(keep)
        self.aliased = [self.columns[j] for j in np.flatnonzero(~keep)]
        # Each aliased column is X_keep b: e_j - b (in the kept positions) is in the null
        # space, and these vectors span it (orthonormalised for a scale-free test).
        null = np.zeros((p, len(self.aliased)))
        if self.aliased:
            dropped = np.flatnonzero(~keep)
            b = linalg.lstsq(self.X[:, keep], self.X[:, dropped])[0]
            null[self.keep] = -b
            null[dropped, np.arange(len(dropped))] = 1.0
            null = linalg.qr(null, mode="economic")[0]
        self.null_space = null
        self.X = self.X[:, self.keep]
        self.columns = [self.columns[j] for j in self.keep]
        if n <= len(self.keep):
            raise MMRMFitError(
                f"The model has {len(self.keep)} estimable fixed effects but only {n} "
                "observations; use a smaller formula."
            )


# ---------------------------------------------------------------------------------------
# The criterion
# ---------------------------------------------------------------------------------------


class _Rows:
    """Subjects of the small missingness patterns, one slice each.

    ``X`` (n x m x p) and ``y`` (n x m) span all ``m`` visits, with zeros at the visits a
    subject missed; as the rows and columns of those visits in the subject's ``W`` are
    zero too, every sum below is one batched product or one matrix product over subjects.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, pattern: np.ndarray, n_patterns: int):
        self.X, self.y, self.pattern = X, y, pattern
        self.counts = np.bincount(pattern, minlength=n_patterns).astype(float)

    def gls_terms(self, W):
        """``sum X_i' W_i X_i``, ``sum X_i' W_i y_i``, ``sum y_i' W_i y_i`` and the state
        (``W``, each subject's ``W_i`` and ``Z_i = W_i X_i``) reused by the other terms."""
        Wi = W[self.pattern]
        Z = Wi @ self.X
        return (
            np.tensordot(self.X, Z, axes=([0, 1], [0, 1])),
            np.tensordot(Z, self.y, axes=([0, 1], [0, 1])),
            float(np.sum(self.y * (Wi @ self.y[..., None])[..., 0])),
            (W, Wi, Z),
        )

    def residual_terms(self, state, beta, a_inv, reml):
        """``sum r_i' W_i r_i`` and ``sum W_i - W_i r_i r_i' W_i [- Z_i A^-1 Z_i']``
        (the first sum as the pattern counts times the patterns' ``W``)."""
        W, Wi, Z = state
        r = self.y - self.X @ beta
        Wr = (Wi @ r[..., None])[..., 0]
        inner = Wr.T @ Wr
        if reml:
            inner += np.tensordot(Z @ a_inv, Z, axes=([0, 2], [0, 2]))
        return float(np.sum(Wr * r)), np.tensordot(self.counts, W, axes=1) - inner

    def sandwich(self, state, d_sigma):
        """``sum_i Z_i' dSigma_j Z_i`` for every ``j`` (q x p x p)."""
        Z = state[2]
        return np.einsum("jab,apbq->jpq", d_sigma, np.tensordot(Z, Z, axes=([0], [0])))


class _Stats:
    """The large missingness patterns, each reduced to its cross-products over all
    ``m`` visits (``C[a, b] = sum_i X_i[a]' X_i[b]``, ``Sxy``, ``Syy``), so the work per
    evaluation does not grow with their number of subjects."""

    def __init__(self, X: np.ndarray, y: np.ndarray, pattern: np.ndarray, index: np.ndarray):
        self.index = index
        self.counts = np.bincount(pattern)[index].astype(float)
        groups = [np.flatnonzero(pattern == k) for k in index]
        self.C = np.stack(
            [np.tensordot(X[g], X[g], axes=([0], [0])).transpose(0, 2, 1, 3) for g in groups]
        )
        self.Sxy = np.stack([np.tensordot(X[g], y[g], axes=([0], [0])) for g in groups])
        self.Syy = np.stack([y[g].T @ y[g] for g in groups])

    def gls_terms(self, W):
        Ws = W[self.index]
        return (
            np.einsum("sab,sabpq->pq", Ws, self.C),
            np.einsum("sab,sapb->p", Ws, self.Sxy),
            float(np.sum(Ws * self.Syy)),
            Ws,
        )

    def residual_terms(self, Ws, beta, a_inv, reml):
        fitted_y = np.einsum("sapb,p->sab", self.Sxy, beta)
        Cb = np.einsum("sabpq,q->sabp", self.C, beta)
        R = self.Syy - fitted_y - fitted_y.transpose(0, 2, 1) + np.einsum("sabp,p->sab", Cb, beta)
        inner = R + np.einsum("sabpq,pq->sab", self.C, a_inv) if reml else R
        M = self.counts[:, None, None] * Ws - Ws @ inner @ Ws
        return float(np.sum(Ws * R)), M.sum(axis=0)

    def sandwich(self, Ws, d_sigma):
        D = Ws[None] @ d_sigma[:, None] @ Ws[None]
        return np.einsum("jsab,sabpq->jpq", D, self.C)


class _Problem:
    """The REML (or ML) criterion, with subjects grouped by the visits they were seen at.

    Each pattern (set of observed visits) needs one inverse ``W`` of ``Sigma[S, S]``,
    computed for all patterns at once as the inverse of ``Sigma`` with the unobserved rows
    and columns replaced by those of the identity (then zeroed). A pattern with at least
    ``k p`` subjects (``k`` visits) enters through its cross-products (``_Stats``), the
    others through their rows (``_Rows``).
    """

    def __init__(self, data: _Data, structure: _Structure, reml: bool):
        self.structure = structure
        self.reml = reml
        self.n, self.p = data.X.shape
        m = len(data.visits)
        observed = np.zeros((data.n_subjects, m), dtype=bool)
        observed[data.subject_codes, data.visit_codes] = True
        patterns, pattern = np.unique(observed, axis=0, return_inverse=True)
        pattern = pattern.ravel()
        self.counts = np.bincount(pattern).astype(float)
        self.masks = patterns[:, :, None] & patterns[:, None, :]
        self.pair_counts = observed.T.astype(float) @ observed.astype(float)
        self.constant = (self.n - (self.p if reml else 0)) * np.log(2 * np.pi)

        X = np.zeros((data.n_subjects, m, self.p))
        y = np.zeros((data.n_subjects, m))
        X[data.subject_codes, data.visit_codes] = data.X
        y[data.subject_codes, data.visit_codes] = data.y
        large = self.counts >= patterns.sum(axis=1) * self.p
        by_rows = ~large[pattern]
        self.blocks: list[_Rows | _Stats] = []
        if by_rows.any():
            self.blocks.append(_Rows(X[by_rows], y[by_rows], pattern[by_rows], len(patterns)))
        if large.any():
            self.blocks.append(_Stats(X, y, pattern, np.flatnonzero(large)))

    def _inverses(self, sigma):
        """``W`` (patterns x m x m, zero outside the observed visits) and
        ``log|Sigma[S, S]|`` per pattern."""
        padded = np.where(self.masks, sigma, np.eye(len(sigma)))
        chol = np.linalg.cholesky(padded)
        chol_inv = np.linalg.inv(chol)
        W = (chol_inv.transpose(0, 2, 1) @ chol_inv) * self.masks
        return W, 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)

    def fixed_effects(self, theta):
        """GLS ``beta``, the Cholesky factor of ``A = X' V^-1 X``, ``Sigma``, its
        derivatives, ``log|Sigma[S, S]|`` per pattern and each block's state."""
        sigma, d_sigma = self.structure.matrix(theta)
        W, logdet = self._inverses(sigma)
        A = np.zeros((self.p, self.p))
        b = np.zeros(self.p)
        yWy = 0.0
        states = []
        for block in self.blocks:
            A_k, b_k, yWy_k, state = block.gls_terms(W)
            A += A_k
            b += b_k
            yWy += yWy_k
            states.append(state)
        chol_a = linalg.cho_factor(A, lower=True)
        return linalg.cho_solve(chol_a, b), chol_a, sigma, d_sigma, logdet, states

    def criterion(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """-2 x the REML (or ML) log-likelihood and its gradient in ``theta``.

        With ``W = Sigma_S^-1`` per subject, ``r`` the GLS residuals and
        ``G_i = X_i A^-1 X_i'``, ``d(-2l)/dtheta_j = tr(dSigma_j M)`` where ``M`` sums
        ``W - W (r_i r_i' + G_i) W`` over subjects (``G_i`` only for REML).
        """
        try:
            beta, chol_a, sigma, d_sigma, logdet, states = self.fixed_effects(theta)
        except (np.linalg.LinAlgError, linalg.LinAlgError, ValueError):
            return np.inf, np.zeros_like(theta)
        a_inv = linalg.cho_solve(chol_a, np.eye(self.p))
        value = self.constant + self.counts @ logdet
        if self.reml:
            value += 2.0 * np.sum(np.log(np.diag(chol_a[0])))
        M = np.zeros_like(sigma)
        for block, state in zip(self.blocks, states, strict=True):
            quadratic, M_k = block.residual_terms(state, beta, a_inv, self.reml)
            value += quadratic
            M += M_k
        return float(value), np.einsum("jab,ab->j", d_sigma, M)

    def d_cov_beta(self, theta: np.ndarray) -> np.ndarray:
        """``dPhi/dtheta_j`` (q x p x p) for ``Phi = A^-1``: ``Phi P_j Phi`` with
        ``P_j = sum_i X_i' W_i dSigma_j W_i X_i``."""
        _, chol_a, _, d_sigma, _, states = self.fixed_effects(theta)
        phi = linalg.cho_solve(chol_a, np.eye(self.p))
        P = sum(
            block.sandwich(state, d_sigma) for block, state in zip(self.blocks, states, strict=True)
        )
        return phi @ P @ phi


def _hessian(problem: _Problem, theta: np.ndarray) -> np.ndarray:
    """Central differences of the analytic gradient (symmetrised)."""
    q = len(theta)
    H = np.empty((q, q))
    for j in range(q):
        h = 1e-4 * max(1.0, abs(theta[j]))
        step = np.zeros(q)
        step[j] = h
        H[:, j] = (problem.criterion(theta + step)[1] - problem.criterion(theta - step)[1]) / (
            2 * h
        )
    return (H + H.T) / 2


def _optimize(problem: _Problem, theta0: np.ndarray, max_iter: int):
    """BFGS, then Newton steps to polish; returns ``theta``, ``H``, iterations used."""
    fit = optimize.minimize(
        problem.criterion,
        theta0,
        jac=True,
        method="BFGS",
        options={"maxiter": max_iter, "gtol": 1e-6},
    )
    theta = fit.x
    iterations = int(fit.nit)
    advice = (
        "Try a covariance structure with fewer parameters (e.g. 'ar1h', 'csh' or 'cs'), "
        "check for visits with very few observations, or rescale the response."
    )
    if fit.status == 1 or not np.isfinite(fit.fun):  # budget exhausted or diverged
        raise MMRMFitError(
            f"The {problem.structure.name!r} covariance did not converge: "
            f"scipy.optimize.minimize(method='BFGS') stopped after {iterations} iterations "
            f"(max_iter={max_iter}) with the message {fit.message!r}. {advice}"
        )
    value, grad = problem.criterion(theta)
    for _ in range(10):
        H = _hessian(problem, theta)
        try:
            step = linalg.solve(H, grad, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            raise MMRMFitError(
                f"The {problem.structure.name!r} covariance is not identified by these data: "
                "the Hessian of the likelihood is not positive definite at the optimum found "
                f"by BFGS after {iterations} iterations. {advice}"
            ) from None
        decrement = float(grad @ step)
        if decrement < 1e-10:
            return theta, H, iterations
        for shrink in 0.5 ** np.arange(10):
            new_value, new_grad = problem.criterion(theta - shrink * step)
            if new_value <= value:
                theta, value, grad = theta - shrink * step, new_value, new_grad
                break
        else:
            if decrement < 1e-6:  # no decrease left within rounding error: converged
                return theta, H, iterations
            break
        iterations += 1
    raise MMRMFitError(
        f"The {problem.structure.name!r} covariance did not converge: BFGS and Newton steps "
        f"({iterations} iterations) left a predicted improvement of {decrement:.2g} in the "
        f"-2 log-likelihood. {advice}"
    )


# ---------------------------------------------------------------------------------------
# Kenward-Roger
# ---------------------------------------------------------------------------------------


def _natural(name: str, sigma: np.ndarray) -> np.ndarray:
    """The covariance parameters on SAS PROC MIXED's scale, read off ``Sigma``.

    ``us``: the elements ``sigma_ab``, ``a >= b``; ``cs``: the common covariance and the
    residual variance (``Sigma = resid I + cov J``); ``csh``, ``ar1h``: the variances,
    then the correlation; ``ar1``: the variance, then the correlation.
    """
    m = len(sigma)
    if name == "us":
        return sigma[np.tril_indices(m)]
    if name == "cs":
        cov = sigma[1, 0] if m > 1 else 0.0
        return np.array([cov, sigma[0, 0] - cov])
    sd = np.sqrt(np.diag(sigma))
    rho = sigma[1, 0] / (sd[1] * sd[0])
    variances = np.diag(sigma) if name in ("csh", "ar1h") else sigma[:1, 0]
    return np.append(variances, rho)


def _sigma_natural(name: str, phi: np.ndarray, m: int) -> np.ndarray:
    """``Sigma`` from the parameters of :func:`_natural`."""
    if name == "us":
        sigma = np.zeros((m, m))
        sigma[np.tril_indices(m)] = phi
        return sigma + np.tril(sigma, -1).T
    if name == "cs":
        return phi[1] * np.eye(m) + phi[0]
    lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    sd = np.sqrt(phi[:-1]) * np.ones(m)
    rho = phi[-1]
    corr = np.where(lag == 0, 1.0, rho) if name == "csh" else rho**lag
    return np.outer(sd, sd) * corr


def _kenward_roger(
    data: _Data,
    problem: _Problem,
    theta: np.ndarray,
    h_inv: np.ndarray,
    information: str = "observed",
):
    """The Kenward-Roger (1997) adjusted covariance of the fixed effects.

    ``Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j - R_ij / 4)] Phi`` with, summed
    over subjects, ``P_i = X' V^-1 dV_i V^-1 X``, ``Q_ij = X' V^-1 dV_i V^-1 dV_j V^-1 X``,
    ``R_ij = X' V^-1 d2V_ij V^-1 X`` and ``W`` the asymptotic covariance of the
    covariance parameters (the inverse observed REML information). The parameters are
    SAS's (:func:`_natural`); ``R`` vanishes for ``us`` and ``cs``, which are linear in
    them, as in SAS, where KR and its linear variant coincide for these structures.

    ``information="observed"`` (the default, which reproduces SAS) takes ``W`` from the
    Hessian of the REML criterion; ``"expected"`` from the expected information
    ``I_ij = tr(Pi dV_i Pi dV_j) / 2``, ``Pi = V^-1 - V^-1 X Phi X' V^-1``, as R pbkrtest
    does (used by the tests to check the other terms against pbkrtest).
    """
    name, m = problem.structure.name, len(data.visits)
    sigma = problem.structure.matrix(theta)[0]
    phi = _natural(name, sigma)
    q = len(phi)

    def natural_of(t):
        return _natural(name, problem.structure.matrix(t)[0])

    # W on SAS's scale: J Cov(theta) J' with J = dphi/dtheta (exact at the optimum).
    J = np.empty((q, len(theta)))
    for j in range(len(theta)):
        h = 1e-6 * max(1.0, abs(theta[j]))
        step = np.zeros(len(theta))
        step[j] = h
        J[:, j] = (natural_of(theta + step) - natural_of(theta - step)) / (2 * h)
    if information == "observed":
        W = J @ (2.0 * h_inv) @ J.T

    # dSigma/dphi and d2Sigma/dphi2 by central differences of a polynomial-like map.
    steps = 1e-4 * np.maximum(1.0, np.abs(phi))
    D = np.empty((q, m, m))
    D2 = np.zeros((q, q, m, m))
    for i in range(q):
        e = np.zeros(q)
        e[i] = steps[i]
        D[i] = (_sigma_natural(name, phi + e, m) - _sigma_natural(name, phi - e, m)) / (
            2 * steps[i]
        )
    if name not in ("us", "cs"):
        for i in range(q):
            for j in range(q):
                ei, ej = np.zeros(q), np.zeros(q)
                ei[i], ej[j] = steps[i], steps[j]
                D2[i, j] = (
                    _sigma_natural(name, phi + ei + ej, m)
                    - _sigma_natural(name, phi + ei - ej, m)
                    - _sigma_natural(name, phi - ei + ej, m)
                    + _sigma_natural(name, phi - ei - ej, m)
                ) / (4 * steps[i] * steps[j])

    # Cross-products of the design per missingness pattern: C_k[a, b] = sum X_a' X_b.
    observed = np.zeros((data.n_subjects, m), dtype=bool)
    observed[data.subject_codes, data.visit_codes] = True
    patterns, pattern = np.unique(observed, axis=0, return_inverse=True)
    pattern = pattern.ravel()
    p = data.X.shape[1]
    X = np.zeros((data.n_subjects, m, p))
    X[data.subject_codes, data.visit_codes] = data.X
    C = np.stack(
        [
            np.tensordot(X[g], X[g], axes=([0], [0]))
            for g in np.split(
                np.argsort(pattern, kind="stable"), np.cumsum(np.bincount(pattern))[:-1]
            )
        ]
    )  # (k, m, p, m, p)
    masks = patterns[:, :, None] & patterns[:, None, :]
    padded = np.where(masks, sigma, np.eye(m))
    Wk = np.linalg.inv(padded) * masks  # (k, m, m)

    WD = Wk[:, None] @ D[None]  # (k, q, m, m): W_k dSigma_i
    P = np.einsum("kiab,kbc,kapcq->ipq", WD, Wk, C)
    phi_beta = linalg.inv(np.einsum("kab,kapbq->pq", Wk, C))
    if information == "expected":
        counts = np.bincount(pattern).astype(float)
        trace = np.einsum("k,kiab,kjba->ij", counts, WD, WD)
        Q = np.einsum("kiab,kjbc,kcd,kapdq->ijpq", WD, WD, Wk, C)
        fisher = 0.5 * (
            trace
            - 2 * np.einsum("pq,ijqp->ij", phi_beta, Q)
            + np.einsum("pq,iqr,rs,jsp->ij", phi_beta, P, phi_beta, P)
        )
        W = linalg.inv(fisher)
    T = np.einsum("ij,kiab,kjbc->kac", W, WD, WD) @ Wk  # sum_ij W_ij W dS_i W dS_j W
    if name not in ("us", "cs"):
        T = T - 0.25 * Wk @ np.einsum("ij,ijab->ab", W, D2)[None] @ Wk
    Q_minus_R = np.einsum("kab,kapbq->pq", T, C)
    middle = Q_minus_R - np.einsum("ij,iab,bc,jcd->ad", W, P, phi_beta, P)
    return phi_beta + 2.0 * phi_beta @ middle @ phi_beta, (phi_beta, P, W)


def _kr_ddf(L: np.ndarray, phi: np.ndarray, P: np.ndarray, W: np.ndarray) -> float:
    """Kenward-Roger denominator df ``m`` of the F test of ``L beta = 0`` (``L``: q x p).

    Kenward & Roger (1997), section 4: with ``Theta = L' (L Phi L')^-1 L``,
    ``A1 = sum_ij W_ij tr(Theta Phi P_i Phi) tr(Theta Phi P_j Phi)``,
    ``A2 = sum_ij W_ij tr(Theta Phi P_i Phi Theta Phi P_j Phi)`` and the moment matching
    of their eq. (13)-(16). For one row it reduces to ``2 / A1``, Satterthwaite's df.
    """
    q = L.shape[0]
    theta = L.T @ linalg.solve(L @ phi @ L.T, L)
    M = np.einsum("ab,bc,icd,de->iae", theta, phi, P, phi)  # Theta Phi P_i Phi
    traces = np.einsum("iaa->i", M)
    a1 = traces @ W @ traces
    a2 = np.einsum("ij,iab,jba->", W, M, M)
    b = (a1 + 6 * a2) / (2 * q)
    g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
    denom = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    e_star = 1 / (1 - a2 / q)
    v_star = (2 / q) * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
    rho = v_star / (2 * e_star**2)
    return float(4 + (q + 2) / (q * rho - 1))


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


class MMRMSummary(str):
    """The text of :meth:`MMRMResult.summary`; shows as plain text in a notebook."""

    def __repr__(self) -> str:
        return str(self)


class MMRMResult:
    """A fitted MMRM (made by :func:`fit_mmrm`).

    Attributes
    ----------
    params, bse, df, tvalues, pvalues : pandas.Series
        Fixed-effect estimates, model-based standard errors, Satterthwaite degrees of
        freedom, t statistics and two-sided p values, indexed by the design column names
        (formulaic's, e.g. ``'ARMCD[T.TRT]:AVISIT[T.VIS2]'``).
    cov_params : pandas.DataFrame
        ``(X' V^-1 X)^-1``, the covariance of ``params`` (Kenward-Roger's adjusted one when
        ``ddf='kr'``).
    covariance : pandas.DataFrame
        The estimated residual covariance, visit x visit.
    loglike, aic, bic : float
        The REML (or ML) log-likelihood and the information criteria of SAS PROC MIXED
        and R mmrm: ``-2 loglike + 2 d`` and ``-2 loglike + d log(n_subjects)``, ``d`` the
        number of covariance parameters (plus the fixed effects under ML).
    n_obs, n_subjects, n_dropped : int
        Rows used, subjects, and rows left out for missing values in a model column
        (``missing_by_column`` counts those per column).
    covariance_structure, reml, formula, subject, visit, n_iter, ddf
        How the model was fitted (``ddf``: 'satterthwaite' or 'kr', the standard errors
        and df of the results).
    covariance_fallback : str or None
        When ``fit_mmrm`` was given a fallback order of structures and the first could
        not be fitted: which structure was used and why the earlier ones failed.
    not_estimable : list of str
        Design columns that are linear combinations of earlier ones (aliased), dropped
        from the fit as SAS does; NaN in ``params``, ``bse``, ``df``, ``cov_params``.
    theta : numpy.ndarray
        The covariance parameters on the optimizer's unconstrained scale (log-Cholesky
        for ``us``).
    """

    def __init__(self, data: _Data, problem: _Problem, theta, hessian, n_iter, formula, names, ddf):
        beta, chol_a, sigma, *_ = problem.fixed_effects(theta)
        self.formula = formula
        self.subject, self.visit = names
        self.covariance_structure = problem.structure.name
        self.reml = problem.reml
        self.ddf = ddf
        self.n_iter = n_iter
        self.n_obs, self.n_subjects = data.n_obs, data.n_subjects
        self.n_dropped, self.missing_by_column = data.n_dropped, data.missing_by_column
        self.not_estimable = list(data.aliased)
        self.covariance_fallback: str | None = None
        self.theta = theta
        self._data = data
        self._problem = problem
        self._beta = beta
        self._phi = linalg.cho_solve(chol_a, np.eye(len(beta)))
        self._d_phi = problem.d_cov_beta(theta)
        self._h_inv = np.linalg.inv(hessian)
        self._phi_kr = None
        if ddf == "kr":
            self._phi_kr = self._cov("kr")
        columns, keep = data.all_columns, data.keep
        phi = self._cov(ddf)
        full_beta = np.full(len(columns), np.nan)
        full_beta[keep] = beta
        full_cov = np.full((len(columns), len(columns)), np.nan)
        full_cov[np.ix_(keep, keep)] = phi
        full_df = np.full(len(columns), np.nan)
        full_df[keep] = self._satterthwaite(np.eye(len(beta)))
        self.params = pd.Series(full_beta, index=columns, name="estimate")
        self.cov_params = pd.DataFrame(full_cov, index=columns, columns=columns)
        self.bse = pd.Series(np.sqrt(np.diag(full_cov)), index=columns, name="se")
        self.df = pd.Series(full_df, index=columns, name="df")
        self.tvalues = (self.params / self.bse).rename("t")
        self.pvalues = pd.Series(
            2 * stats.t.sf(np.abs(self.tvalues), self.df), index=columns, name="p"
        )
        self.covariance = pd.DataFrame(sigma, index=data.visits, columns=data.visits)
        self.loglike = -0.5 * problem.criterion(theta)[0]
        n_par = len(theta) + (0 if self.reml else len(beta))
        self.aic = -2 * self.loglike + 2 * n_par
        self.bic = -2 * self.loglike + n_par * np.log(self.n_subjects)

    def __repr__(self) -> str:
        method = "REML" if self.reml else "ML"
        return (
            f"<MMRMResult {self.formula!r}, {self.covariance_structure} covariance, {method}, "
            f"{self.n_subjects} subjects, {self.n_obs} observations>"
        )

    # -- inference for linear combinations L beta ------------------------------------

    def _ddf(self, ddf: str | None) -> str:
        if ddf is None:
            return self.ddf
        ddf = _DDF_ALIASES.get(str(ddf).lower(), ddf)
        check_choice("ddf", ddf, list(DDF_METHODS))
        if ddf == "kr" and not self.reml:
            raise ValueError(
                "Kenward-Roger standard errors and df are defined for REML fits only; refit "
                "with reml=True or use ddf='satterthwaite'."
            )
        return ddf

    def _cov(self, ddf: str) -> np.ndarray:
        """Covariance of the estimable fixed effects: model-based, or Kenward-Roger's."""
        if ddf != "kr":
            return self._phi
        if self._phi_kr is None:
            with threadpool_limits(limits=1, user_api="blas"):
                self._phi_kr = _kenward_roger(self._data, self._problem, self.theta, self._h_inv)[0]
        return self._phi_kr

    def _satterthwaite(self, L: np.ndarray) -> np.ndarray:
        """Satterthwaite df of each row ``l`` of ``L``: ``2 v^2 / (g' Cov(theta) g)`` with
        ``v = l' Phi l``, ``g = dv/dtheta`` and ``Cov(theta) = 2 H^-1``. For a single
        contrast this is also the Kenward-Roger df (their ``m`` reduces to it when the
        contrast has one row; ``Phi`` is the unadjusted covariance in both)."""
        v = np.einsum("rp,pq,rq->r", L, self._phi, L)
        g = np.einsum("rp,jpq,rq->rj", L, self._d_phi, L)
        return v**2 / np.einsum("rj,jk,rk->r", g, self._h_inv, g)

    def _estimable(self, L: np.ndarray) -> np.ndarray:
        """Rows ``l`` (over all design columns) with ``l' beta`` estimable."""
        null = self._data.null_space
        if null.shape[1] == 0:
            return np.ones(len(L), dtype=bool)
        scale = np.maximum(np.abs(L).max(axis=1), 1.0)
        return np.abs(L @ null).max(axis=1) <= 1e-8 * scale

    def _infer(self, L: np.ndarray, alpha: float, ddf: str | None = None) -> pd.DataFrame:
        """Inference for each row of ``L`` (over all design columns); rows that are not
        estimable get NaN."""
        phi = self._cov(self._ddf(ddf))
        ok = self._estimable(L)
        L = L[:, self._data.keep]
        estimate = np.where(ok, L @ self._beta, np.nan)
        se = np.where(ok, np.sqrt(np.abs(np.einsum("rp,pq,rq->r", L, phi, L))), np.nan)
        df = np.full(len(L), np.nan)
        if ok.any():
            df[ok] = self._satterthwaite(L[ok])
        half = stats.t.ppf(1 - alpha / 2, df) * se
        t = estimate / se
        out = pd.DataFrame(
            {
                "estimate": estimate,
                "se": se,
                "df": df,
                "t": t,
                "p": 2 * stats.t.sf(np.abs(t), df),
                "ci_low": estimate - half,
                "ci_high": estimate + half,
            }
        )
        if not ok.all():
            out["note"] = pd.array(  # type: ignore[call-overload]  # pandas-stubs/numpy: object where() to a string array
                np.where(  # type: ignore[call-overload]  # pandas-stubs/numpy: object where() to a string array
                    ok,
                    None,
                    "not estimable: depends on the aliased effect(s) "
                    + ", ".join(self.not_estimable),
                ),
                dtype="string",
            )
        return out

    def conf_int(self, alpha: float = 0.05, ddf: str | None = None) -> pd.DataFrame:
        """Confidence intervals for ``params`` (columns ``ci_low``, ``ci_high``), with the
        standard errors of ``ddf`` (default the fit's) and Satterthwaite df; NaN for the
        effects that are not estimable."""
        ddf = self._ddf(ddf)
        bse = self.bse
        if ddf != self.ddf:
            full = np.full(len(self.params), np.nan)
            full[self._data.keep] = np.sqrt(np.diag(self._cov(ddf)))
            bse = pd.Series(full, index=self.params.index)
        half = stats.t.ppf(1 - alpha / 2, self.df) * bse
        return pd.DataFrame({"ci_low": self.params - half, "ci_high": self.params + half})

    def _check_factors(self, argument: str, names: list[str]) -> None:
        for name in names:
            check_choice(argument, name, list(self._data.factors))

    def _grid(self, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The reference grid: one row per combination of the levels of ``names`` and the
        matching rows of ``L``, averaging equally over the other factors' levels with the
        numeric covariates at their mean."""
        factors = self._data.factors
        levels = [list(dtype.categories) for dtype in factors.values()]
        full = pd.DataFrame(list(itertools.product(*levels)), columns=list(factors))
        for column, dtype in factors.items():
            full[column] = pd.Categorical(full[column], dtype=dtype)
        for column, mean in self._data.numeric_means.items():
            full[column] = mean
        X = np.asarray(self._data.spec.get_model_matrix(full), dtype=float)
        if not names:
            return pd.DataFrame(index=[0]), X.mean(axis=0, keepdims=True)
        groups = full.groupby(names, observed=True, sort=True).indices
        keys = list(groups)
        cells = pd.DataFrame(
            [key if isinstance(key, tuple) else (key,) for key in keys], columns=names
        )
        for column in names:
            cells[column] = pd.Categorical(cells[column], dtype=factors[column])
        L = np.vstack([X[groups[key]].mean(axis=0) for key in keys])
        return cells, L

    def lsmeans(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        alpha=0.05,
        ddf: str | None = None,
    ) -> pd.DataFrame:
        """Least-squares (estimated marginal) means.

        Parameters
        ----------
        specs : str or sequence of str
            The factor(s) whose level combinations get a mean.
        by : str, sequence of str or None
            Further factors to compute the means within (e.g. the visit).
        alpha : float
            1 - confidence level.
        ddf : {None, 'satterthwaite', 'kr'}
            Standard errors and df: ``None`` takes the fit's ``ddf``; ``'kr'``
            Kenward-Roger (REML fits only).

        Returns
        -------
        pandas.DataFrame
            One column per factor in ``specs`` and ``by``, then ``estimate, se, df,
            ci_low, ci_high``; rows ordered by ``by`` then ``specs`` levels. When a mean
            is not estimable (it depends on an aliased fixed effect, e.g. a treatment
            with no patient at some visit), its numbers are NaN and a ``note`` column
            (added only then) says why.

        Notes
        -----
        As SAS LSMEANS and R emmeans: the levels of factors not named are weighted equally
        and numeric covariates are held at their mean over the analysis rows; df are
        Satterthwaite (equal to Kenward-Roger's for a single contrast).
        """
        specs, by = as_by(specs), as_by(by)
        self._check_factors("specs", specs)
        self._check_factors("by", by)
        cells, L = self._grid([*by, *specs])
        out = pd.concat([cells, self._infer(L, alpha, ddf)], axis=1)
        note = ["note"] if "note" in out.columns else []
        return out[[*specs, *by, "estimate", "se", "df", "ci_low", "ci_high", *note]]

    def _contrast_rows(self, factor, by, reference):
        self._check_factors("factor", [factor])
        self._check_factors("by", by)
        if factor in by:
            raise ValueError(f"`factor` {factor!r} cannot also be in `by` ({by}).")
        levels = list(self._data.factors[factor].categories)
        reference = levels[0] if reference is None else reference
        check_choice("reference", reference, levels)
        cells, L = self._grid([*by, factor])
        is_ref = (cells[factor] == reference).to_numpy()
        keys = cells[by].astype(object).apply(tuple, axis=1) if by else pd.Series(0, cells.index)
        rows: list[int] = []
        labels, L_rows = [], []
        for i in np.flatnonzero(~is_ref):
            ref = np.flatnonzero(is_ref & (keys == keys.iloc[i]).to_numpy())[0]
            rows.append(int(i))
            labels.append(f"{cells[factor].iloc[i]} - {reference}")
            L_rows.append(L[i] - L[ref])
        out = cells.iloc[rows][by].reset_index(drop=True)
        out["contrast"] = labels
        return out, np.vstack(L_rows)

    def pairwise(
        self,
        factor: str,
        by: str | Sequence[str] | None = None,
        reference=None,
        alpha: float = 0.05,
        ddf: str | None = None,
    ) -> pd.DataFrame:
        """Each level of ``factor`` minus the ``reference`` level, within ``by``.

        Parameters
        ----------
        factor : str
            The factor compared (e.g. the treatment arm).
        by : str, sequence of str or None
            Factors to compare within (e.g. the visit).
        reference : optional
            The level subtracted; default the first level.
        alpha : float
            1 - confidence level.
        ddf : {None, 'satterthwaite', 'kr'}
            As :meth:`lsmeans`.

        Returns
        -------
        pandas.DataFrame
            ``by..., contrast, estimate, se, df, t, p, ci_low, ci_high``; ``contrast`` reads
            ``'level - reference'``. Differences of LS means, so other factors are
            weighted equally; Satterthwaite df. A difference that is not estimable has
            NaN numbers and a ``note`` (column added only then).
        """
        by = as_by(by)
        cells, L = self._contrast_rows(factor, by, reference)
        return pd.concat([cells, self._infer(L, alpha, ddf)], axis=1)

    def effect_size(
        self,
        factor: str,
        by: str | Sequence[str] | None = None,
        reference=None,
        alpha: float = 0.05,
    ) -> pd.DataFrame:
        """Standardized differences: each :meth:`pairwise` contrast over the residual SD.

        Parameters
        ----------
        factor, by, reference, alpha
            As :meth:`pairwise`; ``by`` must include the visit, whose model-estimated
            residual SD standardizes the difference.

        Returns
        -------
        pandas.DataFrame
            ``by..., contrast, difference, sd, estimate, ci_low, ci_high`` with ``estimate =
            difference / sd`` and the CI the contrast's CI over the same ``sd``.

        Notes
        -----
        ``sd = sqrt(Sigma[v, v])``, the estimated residual SD at visit ``v``. The CI treats
        ``sd`` as fixed (the common practice for model-based standardized differences), so
        it is somewhat narrow when the number of subjects is small.
        """
        by = as_by(by)
        if self.visit not in by:
            raise ValueError(
                f"A standardized difference divides by the residual SD at one visit; pass a "
                f"`by` that includes the visit column {self.visit!r} (e.g. by={self.visit!r}), "
                "with the visit in the model formula."
            )
        contrasts = self.pairwise(factor, by=by, reference=reference, alpha=alpha)
        variances = pd.Series(np.diag(self.covariance), index=self.covariance.index)
        sd = variances.loc[contrasts[self.visit].astype(object)].to_numpy() ** 0.5
        out = contrasts[[*by, "contrast"]].copy()
        out["difference"] = contrasts["estimate"]
        out["sd"] = sd
        out["estimate"] = contrasts["estimate"] / sd
        out["ci_low"] = contrasts["ci_low"] / sd
        out["ci_high"] = contrasts["ci_high"] / sd
        return out

    def summary(self) -> MMRMSummary:
        """A text report: the fit, the fixed effects with Satterthwaite df and 95% CIs,
        the residual covariance, and the rows left out."""
        method = "REML" if self.reml else "ML"
        label = "-2 restricted log-likelihood" if self.reml else "-2 log-likelihood"
        table = pd.concat(
            [self.params, self.bse, self.df, self.tvalues, self.pvalues, self.conf_int()],
            axis=1,
        ).astype(object)
        for name in self.not_estimable:
            table.loc[name] = ["not estimable"] + [""] * (table.shape[1] - 1)
        ddf_label = "SE and df: Kenward-Roger" if self.ddf == "kr" else "df: Satterthwaite"
        lines = [
            "Mixed model for repeated measures",
            f"Formula: {self.formula}",
            f"Subject: {self.subject}   Visit: {self.visit}   "
            f"Covariance: {self.covariance_structure}   Method: {method}",
            f"Subjects: {self.n_subjects}   Observations: {self.n_obs}   "
            f"Rows left out (missing values): {self.n_dropped}",
            f"{label}: {-2 * self.loglike:.4f}   AIC: {self.aic:.4f}   BIC: {self.bic:.4f}",
            "",
            f"Fixed effects ({ddf_label}; 95% CI):",
            table.to_string(
                formatters={
                    c: (lambda x: x if isinstance(x, str) else f"{x:.4f}") for c in table.columns
                }
            ),
            "",
            "Residual covariance (visit x visit):",
            self.covariance.to_string(float_format=lambda x: f"{x:.4f}"),
        ]
        if self.covariance_fallback:
            lines += ["", f"Note: {self.covariance_fallback}"]
        if self.not_estimable:
            lines += [
                "",
                f"Note: {len(self.not_estimable)} fixed effect(s) are not estimable: linear "
                "combinations of the columns before them (e.g. a group with no observation "
                "at some visit). As SAS PROC MIXED does, they were dropped from the fit; LS "
                "means and contrasts that depend on them are NaN with a note.",
            ]
        if self.n_dropped:
            counts = ", ".join(f"{c}: {n}" for c, n in self.missing_by_column.items())
            lines += [
                "",
                f"Note: {self.n_dropped} row(s) had a missing value in a model column and "
                f"were left out (missing per column: {counts}); each subject's observed "
                "visits are used, which is valid when the missing values are missing at "
                "random.",
            ]
        return MMRMSummary("\n".join(lines))


# ---------------------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------------------


def fit_mmrm(
    data: pd.DataFrame,
    formula: str,
    *,
    subject: str,
    visit: str,
    covariance: str | Sequence[str] = "us",
    reml: bool = True,
    max_iter: int = 1000,
    ddf: str = "satterthwaite",
) -> MMRMResult:
    """Fit a mixed model for repeated measures by REML (or ML).

    Generalized least squares with a residual covariance shared by all subjects over the
    visits; a subject with missing visits contributes its observed visits only, which is
    valid when the missing values are missing at random (MAR).

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per subject x visit. Polars, DuckDB and Spark frames are
        collected to pandas first (the model needs the patient-level rows).
    formula : str
        A formulaic (Wilkinson) formula, e.g. ``'change ~ baseline + arm * visit'``.
        String, boolean and unordered categorical columns are factors whose first sorted
        level is the reference; an ordered pandas Categorical keeps its order. Numeric
        columns are covariates.
    subject : str
        The column identifying the subject.
    visit : str
        The column identifying the visit. It is a factor everywhere (also in the formula),
        its level order is the visit order used by ``ar1``/``ar1h`` (use an ordered
        Categorical when sorting the labels does not give the time order, e.g. 'week12'
        sorts before 'week2').
    covariance : {'us', 'cs', 'csh', 'ar1', 'ar1h'} or sequence of them
        Residual covariance: unstructured; compound symmetry (one variance, one
        correlation); heterogeneous compound symmetry (a variance per visit, one
        correlation); first-order autoregressive in the visit order (one variance,
        correlation ``rho^lag``); heterogeneous AR(1) (a variance per visit). A sequence
        is a pre-specified fallback order, as statistical analysis plans write it (e.g.
        ``("us", "csh", "cs")``): the first structure that can be fitted is used, the
        result's ``covariance_structure`` names it and ``covariance_fallback`` says why
        the ones before it could not be (None when the first was used). Problems of the
        data itself (a visit without observations, repeated rows) raise at once.
    reml : bool
        REML (default, as SAS PROC MIXED and R mmrm) or maximum likelihood.
    max_iter : int
        Iteration budget of the BFGS optimizer.
    ddf : {'satterthwaite', 'kr'}
        Standard errors and degrees of freedom of the results: ``'satterthwaite'``
        (default; model-based SEs, Satterthwaite df) or ``'kr'`` (``'kenward-roger'``):
        Kenward-Roger adjusted SEs with their df, as SAS ``DDFM=KR`` (REML only).
        :meth:`MMRMResult.lsmeans` and :meth:`MMRMResult.pairwise` can also switch per
        call with their own ``ddf``.

    Returns
    -------
    MMRMResult

    Raises
    ------
    MMRMFitError
        When the model cannot be fitted, with the cause in the message: a visit without
        observations, fewer subjects than covariance parameters, two visits never
        observed in the same subject (``us``), repeated subject x visit rows, more fixed
        effects than observations, or no convergence within the budget.

    Notes
    -----
    For subject ``i`` observed at visits ``S_i``: ``y_i ~ N(X_i beta, Sigma[S_i, S_i])``.
    ``beta`` is profiled out by GLS, ``beta(theta) = (X' V^-1 X)^-1 X' V^-1 y``, and the
    covariance parameters ``theta`` minimize

        -2 l_R = (n - p) log 2 pi + sum_i log|Sigma_i| + log|X' V^-1 X| + r' V^-1 r

    (ML: ``n log 2 pi`` and no ``log|X' V^-1 X|``), on the SAS scale (the SAS listing's
    -2 restricted log-likelihood). Standard errors are model-based,
    ``Cov(beta) = (X' V^-1 X)^-1``. The df of a contrast ``l' beta`` are Satterthwaite's,
    ``2 v^2 / (g' Cov(theta) g)`` with ``v = l' Cov(beta) l``, ``g = dv/dtheta`` and
    ``Cov(theta)`` twice the inverse Hessian of ``-2 l`` (observed information), as in
    SAS (``DDFM=SATTERTHWAITE``) and R mmrm; the Hessian is a central difference of the
    analytic gradient. Rows with a missing value in any model column (or the subject or
    visit) are left out and counted (``n_dropped``, and a note in ``summary()``).

    Agreement: on mmrm's ``fev_data`` the estimates, SEs, LS means and differences agree
    with SAS PROC MIXED to 1e-3 relative, -2 REML log-likelihood to 0.01 and the
    Satterthwaite df to within 1; ``cs``, ``csh``, ``ar1``, ``ar1h`` agree with R
    ``nlme::gls`` (``tests/test_mmrm.py``).

    Where this differs from SAS PROC MIXED or R mmrm:

    - factor coding: the reference is the first sorted level (SAS takes the last), R's
      default; LS means and contrasts do not depend on it;
    - non-estimable (aliased) fixed effects: as in SAS, a design column that is a linear
      combination of the columns before it (formula order) is dropped from the fit and
      reported as not estimable (NaN in ``params``, ``bse``, ``df``; listed in
      ``not_estimable`` and in ``summary()``, where SAS prints 0 with a missing SE); an LS
      mean or contrast ``l' beta`` is computed when ``l`` is estimable (orthogonal to the
      null space of the design) and is NaN with a ``note`` otherwise, as SAS's
      "Non-est"; unused levels of factors other than the visit are dropped, as R's model
      frame does;
    - ``cs`` keeps the correlation in ``(-1/(m - 1), 1)`` for ``m`` visits (positive
      definite for every subject), where SAS parameterises ``TYPE=CS`` by a covariance
      that may be negative without that bound;
    - df methods: Satterthwaite and Kenward-Roger (no between-within or containment).

    Kenward-Roger (``ddf='kr'``): the covariance of the fixed effects is inflated for the
    uncertainty of the estimated covariance parameters (Kenward & Roger 1997),
    ``Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j - R_ij / 4)] Phi``, with the
    derivatives taken in SAS's covariance parameters (the elements of ``Sigma`` for
    ``us``; the common covariance and residual variance for ``cs``; variances and the
    correlation for ``csh``, ``ar1``, ``ar1h``), so the SEs are those of SAS ``DDFM=KR``
    (for ``us`` and ``cs``, which are linear in those parameters, ``R = 0`` and SAS's
    ``KR`` and ``KR(LINEAR)`` coincide). For a single contrast the Kenward-Roger df equal
    the Satterthwaite df computed from the unadjusted covariance (Kenward & Roger's
    ``m`` reduces to ``2 v^2 / (g' W g)`` when ``L`` has one row), which is what SAS
    prints. ``W`` is the inverse observed REML information, as in SAS; R pbkrtest uses
    the expected information, which moves the SEs by under 1e-4 relative and the df by
    about 1% on fev_data. Checked against the SAS ``DDFM=KR`` listings for fev_data kept
    by the R mmrm package (us, cs, csh, ar1) and, term by term, against R pbkrtest on the
    full unbalanced fev_data model (``tests/test_mmrm.py``).

    Visit order: an ordered Categorical keeps its order; otherwise the output of
    :func:`analysis.derive_endpoints` is ordered by its ``target_day`` column, the default
    schedule's visit names by the schedule, and other labels with their numbers compared
    as numbers ('week2' before 'week12'). The first visit is the reference level.

    The fit limits BLAS to one thread (``threadpoolctl``): its matrices are small, and a
    multi-threaded BLAS only adds synchronisation (5-8x slower on a 2-core machine).

    References
    ----------
    Mallinckrodt CH, Lane PW, Schnell D, Peng Y, Mancuso JP (2008). Recommendations for
    the primary analysis of continuous endpoints in longitudinal clinical trials. Drug
    Inf J 42:303-319.
    Satterthwaite FE (1946). An approximate distribution of estimates of variance
    components. Biometrics Bulletin 2:110-114.
    Kenward MG, Roger JH (1997). Small sample inference for fixed effects from restricted
    maximum likelihood. Biometrics 53:983-997.
    Sabanes Bove D et al. (2024). mmrm: Mixed Models for Repeated Measures, R package.
    SAS Institute. SAS/STAT User's Guide, The MIXED Procedure.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(7)
    >>> n = 60
    >>> data = pd.DataFrame({
    ...     "patient": np.repeat(np.arange(n), 3),
    ...     "visit": np.tile(["week1", "week2", "week4"], n),
    ...     "arm": np.repeat(np.where(np.arange(n) % 2 == 0, "ketamine", "control"), 3),
    ... })
    >>> effect = np.where(data["arm"] == "ketamine", -3.0, 0.0)
    >>> patient_level = np.repeat(rng.normal(0, 3, n), 3)
    >>> data["change"] = -2.0 + effect + patient_level + rng.normal(0, 2, 3 * n)
    >>> fit = fit_mmrm(data, "change ~ arm * visit", subject="patient", visit="visit")
    >>> fit.pairwise("arm", by="visit").round(3)[["visit", "contrast", "estimate", "se", "df"]]
       visit            contrast  estimate     se    df
    0  week1  ketamine - control    -3.033  0.913  58.0
    1  week2  ketamine - control    -3.446  0.859  58.0
    2  week4  ketamine - control    -3.491  0.778  58.0

    With complete, balanced data the Satterthwaite df of a between-subject contrast are
    exactly n - 2, as in SAS. Standardized by the residual SD at each visit:

    >>> fit.effect_size("arm", by="visit").round(2)[["visit", "estimate", "ci_low", "ci_high"]]
       visit  estimate  ci_low  ci_high
    0  week1     -0.86   -1.37    -0.34
    1  week2     -1.04   -1.55    -0.52
    2  week4     -1.16   -1.67    -0.64
    """
    structures = [covariance] if isinstance(covariance, str) else list(covariance)
    if not structures:
        raise ValueError("`covariance` must name at least one structure, e.g. 'us'.")
    for name in structures:
        check_choice("covariance", name, COVARIANCE_STRUCTURES)
    ddf = _DDF_ALIASES.get(str(ddf).lower(), ddf)
    check_choice("ddf", ddf, list(DDF_METHODS))
    if ddf == "kr" and not reml:
        raise ValueError(
            "Kenward-Roger standard errors and df are defined for REML fits only; use "
            "reml=True or ddf='satterthwaite'."
        )
    # Small matrices: a multi-threaded BLAS only adds contention (5-8x slower on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(data, formula, subject, visit, structures, reml, max_iter, ddf)


def _fit(data, formula, subject, visit, structures, reml, max_iter, ddf) -> MMRMResult:
    """The first structure of ``structures`` that can be fitted; data errors raise at once."""
    prepared = _Data(data, formula, subject, visit)
    failures = []
    for covariance in structures:
        try:
            fit = _fit_structure(prepared, formula, subject, visit, covariance, reml, max_iter, ddf)
        except MMRMFitError as error:
            failures.append(f"{covariance!r}: {error}")
            continue
        if failures:
            fit.covariance_fallback = (
                f"The {fit.covariance_structure!r} covariance was used because "
                + "; ".join(f"{f}" for f in failures)
            )
        return fit
    if len(failures) == 1:
        raise MMRMFitError(failures[0].split(": ", 1)[1])
    raise MMRMFitError(
        f"None of the covariance structures {list(structures)} could be fitted: "
        + "; ".join(failures)
    )


def _fit_structure(prepared, formula, subject, visit, covariance, reml, max_iter, ddf):
    m = len(prepared.visits)
    if covariance != "us" and m < 2:
        raise MMRMFitError(
            f"The {covariance!r} covariance has a correlation parameter, which needs at "
            f"least two visits, but `visit` has one level; use covariance='us'."
        )
    structure = _Structure(covariance, m)
    if prepared.n_subjects < structure.n_theta:
        raise MMRMFitError(
            f"The {covariance!r} covariance over {m} visits has {structure.n_theta} "
            f"parameters but there are only {prepared.n_subjects} subjects; use a structure "
            "with fewer parameters ('cs' has 2) or more subjects."
        )
    problem = _Problem(prepared, structure, reml)
    if covariance == "us":
        never = np.argwhere(np.triu(problem.pair_counts == 0, 1))
        if len(never):
            a, b = never[0]
            raise MMRMFitError(
                f"Visits {prepared.visits[a]!r} and {prepared.visits[b]!r} are never observed "
                f"in the same subject ({len(never)} such pair(s)), so their covariance has no "
                "data under 'us'; use a structured covariance ('ar1h', 'csh')."
            )
    ols = linalg.solve(prepared.X.T @ prepared.X, prepared.X.T @ prepared.y, assume_a="pos")
    residual = prepared.y - prepared.X @ ols
    variances = np.bincount(prepared.visit_codes, residual**2, minlength=m) / np.bincount(
        prepared.visit_codes, minlength=m
    )
    variances = np.maximum(variances, 1e-8 * max(1.0, float(np.var(prepared.y))))
    theta, hessian, n_iter = _optimize(problem, structure.initial(variances), max_iter)
    return MMRMResult(prepared, problem, theta, hessian, n_iter, formula, (subject, visit), ddf)
