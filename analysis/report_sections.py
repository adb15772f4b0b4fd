"""Report sections that degrade gracefully: a section that cannot run says why.

Every cohort that validates gets every report. Real programs are often small or
one-sided: one route only, no IV patient (the reports' reference route), HAM-A recorded as
totals without items, fifteen patients, nobody responding or nobody losing the response,
tables with a header and no rows. The functions here wrap the report's calls so that such
data give a one-sentence :class:`NotAvailable` in place of the table or figure (shown in
the report, never saved as a table) instead of stopping the notebook:

- :func:`section` runs one table or figure; it returns :class:`NotAvailable` when an
  input is empty or :class:`NotAvailable`, or when the statistics refuse these data
  (a ``ValueError`` such as :class:`~analysis.mmrm.MMRMFitError`, or an arithmetic error).
- :func:`compare_section` is :func:`section` for a comparison between groups: it first
  checks that the grouping column has two levels and holds the reference, and, for a
  time-to-event table, that there is at least one event.
- :func:`report_endpoints` derives the endpoints; when an instrument's Jacobson-Truax
  reliable change cannot be computed (HAM-A recorded as totals only: no item-based
  reliability), its reliable change is left undefined (NA) and a note says so.
- :func:`fit_report_mmrm` fits the MMRM with the unstructured covariance and, when that
  cannot be fitted (too few patients for its parameters, visits never observed together),
  the next simpler structure that fits, then a simpler formula; the fit says which one
  was used and why, or that no MMRM could be fitted.

- :func:`validation_section` is the schema-check table of report 01: from the batch's one
  validation when the cohort is its snapshot, else :func:`analysis.tables.validation_summary`.

Notebooks hold the calls only (``tests/test_notebooks.py``); the decisions live here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis._unavailable import NotAvailable

if TYPE_CHECKING:
    from analysis.mmrm import MMRMResult

__all__ = [
    "MMRM_COVARIANCE_FALLBACK",
    "NotAvailable",
    "ReportMMRM",
    "SectionNotes",
    "compare_section",
    "fit_report_mmrm",
    "report_endpoints",
    "section",
    "validation_section",
]

#: Errors that mean "these data do not support this analysis" (not a bug): the package's
#: own checks raise ValueError (MMRMFitError, DataValidationError and numpy's LinAlgError
#: are ValueErrors too); a statistic on no rows can raise an ArithmeticError.
DATA_ERRORS = (ValueError, ArithmeticError)

#: Covariance structures tried in order by :func:`fit_report_mmrm`: unstructured, then
#: heterogeneous compound symmetry (a variance per visit, one correlation), compound
#: symmetry (2 parameters) and AR(1) (2 parameters).
MMRM_COVARIANCE_FALLBACK = ("us", "csh", "cs", "ar1")

_COVARIANCE_NAMES = {
    "us": "unstructured",
    "csh": "heterogeneous compound symmetry",
    "cs": "compound symmetry",
    "ar1": "first-order autoregressive",
    "ar1h": "heterogeneous first-order autoregressive",
}


def _first_sentence(text: str, limit: int = 240) -> str:
    """The first sentence of an error message, on one line, without a trailing period."""
    text = " ".join(str(text).split())
    match = re.search(r"(?<=[a-z0-9)\]'`])\.\s+(?=[A-Z])", text)
    sentence = text[: match.start()] if match else text
    sentence = sentence.rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."


class SectionNotes(list):
    """Notes (sentences) about what a report could not compute; shown as a list.

    ``criteria`` holds the per-instrument criteria :func:`report_endpoints` used, to be
    passed on to other endpoint-deriving calls (e.g. ``imputation_sensitivity``).

    Examples
    --------
    >>> notes = SectionNotes(["HAM-A reliable change is not defined."])
    >>> print(notes._repr_markdown_())
    - HAM-A reliable change is not defined.
    """

    def __init__(self, notes=(), criteria=None):
        super().__init__(notes)
        self.criteria = criteria

    def _repr_markdown_(self) -> str:
        if not self:
            return (
                "*Every outcome definition applies to these data; a section below that "
                "these data cannot support says why.*"
            )
        return "\n".join(f"- {note}" for note in self)


def _empty(value) -> bool:
    return isinstance(value, pd.DataFrame | pd.Series) and len(value) == 0


def section(title: str, func: Callable, /, *args, **kwargs):
    """``func(*args, **kwargs)``, or :class:`NotAvailable` saying why it cannot be computed.

    Parameters
    ----------
    title : str
        What the section shows ("Week-4 response by route"), for the note.
    func : callable
        The table or figure function.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    object or NotAvailable
        ``func``'s result. :class:`NotAvailable` when an argument is itself
        :class:`NotAvailable` (same reason), when the first argument is an empty table
        ("no data"), or when ``func`` raises a ``ValueError`` (the package's refusals,
        e.g. :class:`~analysis.mmrm.MMRMFitError`) or an arithmetic error: the reason is the
        first sentence of the error message. Other errors (bugs) propagate.

    Examples
    --------
    >>> import pandas as pd
    >>> section("Mean age", lambda df: float(df["age"].mean()), pd.DataFrame({"age": [30, 40]}))
    35.0
    >>> section("Mean age", lambda df: df["age"].mean(), pd.DataFrame({"age": []}))
    NotAvailable: Mean age: not available; there are no data for it in this cohort.
    >>> section("Log", lambda x: math.log(x), -1)
    NotAvailable: Log: not available; math domain error.
    """
    for value in (*args, *kwargs.values()):
        if isinstance(value, NotAvailable):
            return NotAvailable(title, value.reason)
    if args and _empty(args[0]):
        return NotAvailable(title, "there are no data for it in this cohort")
    try:
        return func(*args, **kwargs)
    except DATA_ERRORS as error:
        return NotAvailable(title, _first_sentence(str(error)) or type(error).__name__)


def _levels(data: pd.DataFrame, column: str) -> list:
    if column not in data.columns:
        return []
    return sorted(pd.Series(data[column]).dropna().astype(str).unique().tolist())


def compare_section(
    title: str, func: Callable, data, /, *args, groups: str, reference=None, **kwargs
):
    """:func:`section` for a comparison between the levels of ``group``.

    Before calling ``func(data, *args, reference=reference, **kwargs)`` (``reference``
    only when given), checks that ``data[groups]`` holds at least two levels, that it holds
    ``reference``, and, for time-to-event data (an ``event`` column), that at least one
    event occurred; each failing check is one sentence in :class:`NotAvailable`.

    Examples
    --------
    >>> import pandas as pd
    >>> data = pd.DataFrame({"route": ["iv", "iv"], "x": [1, 2]})
    >>> compare_section("Routes", lambda d, reference: 0, data, groups="route", reference="iv")
    NotAvailable: Routes: not available; only one route (iv) in these data, so there is no between-route comparison.
    >>> data = pd.DataFrame({"route": ["iv", "im"], "time": [7, 14], "event": [0, 0]})
    >>> compare_section("Log-rank test", lambda d: 0, data, groups="route")
    NotAvailable: Log-rank test: not available; no patient had the event in these data, so the log-rank test is not defined.
    """
    for value in (data, *args, *kwargs.values()):
        if isinstance(value, NotAvailable):
            return NotAvailable(title, value.reason)
    if isinstance(data, pd.DataFrame) and len(data):
        levels = _levels(data, groups)
        if len(levels) == 1:
            return NotAvailable(
                title,
                f"only one {groups} ({levels[0]}) in these data, so there is no "
                f"between-{groups} comparison",
            )
        if reference is not None and levels and str(reference) not in levels:
            return NotAvailable(
                title,
                f"no patient in these data has the reference {groups} ({reference}), so "
                f"there is no comparison with it",
            )
        if "event" in data.columns and "time" in data.columns:
            events = pd.to_numeric(data["event"], errors="coerce").fillna(0)
            if not (events > 0).any():
                return NotAvailable(
                    title,
                    "no patient had the event in these data, so the log-rank test is not defined",
                )
    if reference is not None:
        kwargs["reference"] = reference
    return section(title, func, data, *args, **kwargs)


def report_endpoints(
    cohort,
    instruments: Sequence[str] = ("GAD7", "HAMA"),
    *,
    patient_columns: Sequence[str] = ("route", "primary_diagnosis"),
    impute: str = "observed",
) -> tuple[pd.DataFrame, SectionNotes]:
    """The endpoints of a report, and notes on the outcomes these data leave undefined.

    :func:`analysis.tables.cohort_endpoints`, except that an instrument whose
    Jacobson-Truax reliable change cannot be computed from these data (HAM-A recorded as
    totals only, so no item-based reliability; fewer than two baselines) is derived with
    its reliable change left undefined: ``reliable_improvement``,
    ``reliable_deterioration`` and ``reliable_recovery`` are NA for it, and a note says
    why. Every other outcome is unaffected.

    Parameters
    ----------
    cohort : Cohort
    instruments : sequence of str
        Instruments to derive.
    patient_columns : sequence of str
        Patient characteristics merged in (see ``cohort_endpoints``).
    impute : {"observed", "locf", "bocf"}

    Returns
    -------
    endpoints : DataFrame
    notes : SectionNotes
        One sentence per undefined outcome; ``notes.criteria`` is the per-instrument
        criteria used (pass it on to ``imputation_sensitivity`` and the like).

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.schema import Cohort
    >>> patients = pd.DataFrame({"patient_id": ["a", "b"], "route": ["iv", "oral"]})
    >>> assessments = pd.DataFrame({
    ...     "patient_id": ["a", "a", "b", "b"], "instrument": ["HAMA"] * 4,
    ...     "study_day": [0, 28, -2, 30], "total": [24, 10, 18, 14]})
    >>> endpoints, notes = report_endpoints(Cohort(patients, assessments), ["HAMA"])
    >>> bool(endpoints["reliable_improvement"].isna().all()), endpoints["response"].tolist()
    (True, [True, False])
    >>> print(notes[0])  # doctest: +ELLIPSIS
    HAM-A reliable change is not defined for these data (no item-based reliability: ...
    """
    from analysis.tables import cohort_endpoints

    frames, notes, criteria = [], [], {}
    for name in instruments:
        try:
            frames.append(
                cohort_endpoints(cohort, [name], impute=impute, patient_columns=patient_columns)
            )
        except ValueError as error:
            undefined = {"reliable_change": math.inf}
            try:
                frame = cohort_endpoints(
                    cohort,
                    [name],
                    impute=impute,
                    patient_columns=patient_columns,
                    criteria={name: undefined},
                )
            except ValueError:
                raise error from None
            for column in ("reliable_improvement", "reliable_deterioration", "reliable_recovery"):
                frame[column] = pd.Series(pd.NA, index=frame.index, dtype="boolean")
            frames.append(frame)
            criteria[name] = undefined
            label = {"HAMA": "HAM-A", "GAD7": "GAD-7"}.get(str(name), str(name))
            notes.append(
                f"{label} reliable change is not defined for these data (no item-based "
                f"reliability: {_first_sentence(str(error))}); reliable improvement, "
                "deterioration and recovery are left blank."
            )
    nonempty = [f for f in frames if len(f)] or frames[:1]
    endpoints = pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame()
    return endpoints, SectionNotes(notes, criteria or None)


@dataclass(frozen=True)
class ReportMMRM:
    """The MMRM a report could fit, and which fallback was needed.

    ``result`` is the :class:`~analysis.mmrm.MMRMResult` (None when no model could be
    fitted), ``formula`` and ``covariance`` the ones used, ``notes`` one sentence per
    fallback taken. :meth:`lsmeans`, :meth:`pairwise` and :meth:`summary` call the
    result's methods, or return :class:`NotAvailable` with the reason. With ``min_cell``
    they are disclosure-controlled: LS means and contrasts of groups of fewer than
    ``min_cell`` patients are blanked (:func:`analysis.disclosure.suppress_group_statistics`
    on ``data``) and the summary's subject count follows
    :func:`analysis.disclosure.model_summary` (``n_patients`` the population size).
    """

    title: str
    result: MMRMResult | None
    formula: str | None
    covariance: str | None
    notes: list[str] = field(default_factory=list)
    data: pd.DataFrame | None = field(default=None, repr=False)
    min_cell: int | None = None
    n_patients: int | None = None

    def __repr__(self) -> str:
        # the note only: the fit's own repr counts its subjects (a count of people)
        return f"{self.title}: {self._note()}"

    def _controlled(self, table):
        from analysis.disclosure import suppress_group_statistics

        if self.min_cell is None or not isinstance(table, pd.DataFrame) or self.data is None:
            return table
        return suppress_group_statistics(table, self.data, self.min_cell)

    def _note(self) -> str:
        if self.result is None:
            return " ".join(self.notes)
        used = (
            f"Fitted with the {_COVARIANCE_NAMES.get(str(self.covariance), self.covariance)} "
            f"({self.covariance}) covariance: `{self.formula}`."
        )
        return " ".join([*self.notes, used])

    def _repr_markdown_(self) -> str:
        return f"*{self.title}: {self._note()}*"

    def _unavailable(self) -> NotAvailable:
        return NotAvailable(
            self.title, "no MMRM could be fitted to these data (see the note above)"
        )

    def summary(self):
        """The fit's summary (a note first when a fallback was used), or NotAvailable."""
        if self.result is None:
            return self._unavailable()
        if self.min_cell is not None and self.n_patients is not None:
            from analysis.disclosure import model_summary

            text = model_summary(self.result, self.n_patients, self.min_cell)
        else:
            text = str(self.result.summary())
        return f"{self._note()}\n\n{text}"

    def lsmeans(self, specs, by=None):
        """``result.lsmeans(specs, by)``, or NotAvailable."""
        if self.result is None:
            return self._unavailable()
        return self._controlled(
            section(f"{self.title} LS means", self.result.lsmeans, specs, by=by)
        )

    def pairwise(self, factor, by=None, reference=None, alpha=0.05):
        """``result.pairwise(factor, by, reference)``, or NotAvailable (e.g. one route)."""
        if self.result is None:
            return self._unavailable()
        levels = self.result.lsmeans(factor)[factor].astype(str).tolist() if factor else []
        if len(levels) < 2:
            return NotAvailable(
                f"{self.title} contrasts",
                f"only one {factor} in these data, so there is no between-{factor} comparison",
            )
        if reference is not None and str(reference) not in levels:
            return NotAvailable(
                f"{self.title} contrasts",
                f"no patient in these data has the reference {factor} ({reference})",
            )
        return self._controlled(
            section(
                f"{self.title} contrasts",
                self.result.pairwise,
                factor,
                by=by,
                reference=reference,
                alpha=alpha,
            )
        )


def fit_report_mmrm(
    data: pd.DataFrame,
    formula: str,
    *,
    subject: str,
    visit: str,
    simpler: Sequence[str] = (),
    covariances: Sequence[str] = MMRM_COVARIANCE_FALLBACK,
    title: str = "MMRM",
    min_cell: int | None = None,
    n_patients: int | None = None,
) -> ReportMMRM:
    """Fit the report's MMRM, falling back to simpler covariances and formulas.

    Tries ``formula`` with each structure of ``covariances`` in order (default
    unstructured, then ``csh``, ``cs``, ``ar1``), then each formula of ``simpler`` the same
    way, and keeps the first fit that succeeds. An unstructured covariance over ``m``
    visits has ``m (m + 1) / 2`` parameters (21 for six visits) and needs that many
    patients and every pair of visits observed together; when the route x visit
    interaction cannot be estimated, a simpler formula without it assumes a constant route
    difference. Only :class:`~analysis.mmrm.MMRMFitError`
    (the data cannot support the model) moves on to the next candidate.

    Parameters
    ----------
    data : DataFrame
        Long endpoint rows (one per subject x visit).
    formula : str
        The preferred model.
    subject, visit : str
        Columns, as in :func:`analysis.mmrm.fit_mmrm`.
    simpler : sequence of str
        Fallback formulas, simplest last.
    covariances : sequence of str
        Structures to try for each formula.
    title : str
        Name of the model in notes ("GAD-7 MMRM").
    min_cell, n_patients : int, optional
        Disclosure control of the outputs (see :class:`ReportMMRM`): the small-cell
        threshold and the number of patients in the population the model comes from.

    Returns
    -------
    ReportMMRM
        The fit with the formula and covariance used and a note for each fallback; with
        ``result=None`` and the reason when nothing could be fitted (no rows, one visit
        and one patient, ...).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> n, visits = 8, ["week1", "week2", "week4", "week8"]
    >>> data = pd.DataFrame({"patient": np.repeat(np.arange(n), 4),
    ...                      "visit": np.tile(visits, n)})
    >>> data["change"] = -2.0 + np.repeat(rng.normal(0, 2, n), 4) + rng.normal(0, 1, 4 * n)
    >>> fit = fit_report_mmrm(data, "change ~ visit", subject="patient", visit="visit")
    >>> fit.covariance  # 'us' over 4 visits has 10 parameters, more than 8 patients
    'csh'
    >>> fit.notes  # doctest: +ELLIPSIS
    ["The unstructured (us) covariance could not be fitted: The 'us' covariance over 4 visits has 10 parameters but there are only 8 subjects; ..."]
    """
    from analysis.mmrm import MMRMFitError, fit_mmrm

    notes: list[str] = []
    if isinstance(data, NotAvailable):
        return ReportMMRM(title, None, None, None, [f"No MMRM: {data.reason}."])
    if not isinstance(data, pd.DataFrame) or len(data) == 0:
        return ReportMMRM(title, None, None, None, ["No MMRM: there are no post-baseline visits."])
    n_subjects = data[subject].nunique() if subject in data.columns else 0
    if n_subjects < 2:
        return ReportMMRM(
            title,
            None,
            None,
            None,
            [
                "No MMRM: a model of change needs at least two patients with a post-baseline "
                f"visit, and these data have {n_subjects}."
            ],
        )
    failures = []
    for k, candidate in enumerate([formula, *simpler]):
        for covariance in covariances:
            try:
                result = fit_mmrm(
                    data, candidate, subject=subject, visit=visit, covariance=covariance
                )
            except (MMRMFitError, np.linalg.LinAlgError) as error:
                failures.append((candidate, covariance, _first_sentence(str(error))))
                continue
            first = failures[0] if failures else None
            if first is not None:
                if candidate == formula:
                    notes.append(
                        f"The {_COVARIANCE_NAMES[first[1]]} ({first[1]}) covariance could "
                        f"not be fitted: {first[2]}."
                    )
                else:
                    notes.append(
                        f"The model `{formula}` could not be fitted with any covariance "
                        f"({', '.join(covariances)}): {first[2]}; the simpler model below "
                        "is used."
                    )
            return ReportMMRM(
                title, result, candidate, covariance, notes, data, min_cell, n_patients
            )
        if k == 0 and not simpler:
            break
    reason = failures[0][2] if failures else "no model to fit"
    last = failures[-1] if failures else None
    if last is not None and last[2] != reason:
        reason += f"; the simplest model tried (`{last[0]}`, {last[1]}) failed too: {last[2]}"
    return ReportMMRM(
        title,
        None,
        None,
        None,
        [f"No MMRM could be fitted to these data with any covariance structure: {reason}."],
    )


def validation_section(cohort) -> pd.DataFrame:
    """The schema checks per table, without validating a batch's cohort a second time.

    A cohort loaded from a batch's snapshot (:class:`analysis.reports.SnapshotCohort`) was
    validated once by :func:`analysis.reports.run_reports`, and only data without any
    error load, so each of its tables is "all checks passed" with its row count (the
    optional tables when the data supplied them). Any other cohort (a notebook run by hand)
    is checked now by :func:`analysis.tables.validation_summary`. Both give the same
    table for the same valid data.

    Parameters
    ----------
    cohort : Cohort

    Returns
    -------
    DataFrame
        ``table, rows, column, check, failures`` (see
        :func:`analysis.tables.validation_summary`).

    Examples
    --------
    >>> import tempfile
    >>> from analysis.reports import load_snapshot, write_snapshot
    >>> from analysis.synthetic import synthetic_cohort
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_snapshot(synthetic_cohort(20, seed=1), folder)
    >>> validation_section(load_snapshot(folder))[["table", "check", "failures"]]
                table              check  failures
    0        patients  all checks passed         0
    1     assessments  all checks passed         0
    2        sessions  all checks passed         0
    3  adverse_events  all checks passed         0
    """
    from analysis.cohort import SnapshotCohort, cohort_tables
    from analysis.tables import validation_summary

    if not isinstance(cohort, SnapshotCohort):
        return validation_summary(cohort)
    rows = [
        (name, len(df), "", "all checks passed", 0)
        for name, df in cohort_tables(cohort, collected_only=True).items()
    ]
    return pd.DataFrame(rows, columns=["table", "rows", "column", "check", "failures"])
