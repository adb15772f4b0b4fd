"""The output columns of the safety tables, and their "not collected" note.

:mod:`analysis.safety` makes the tables and :mod:`analysis.plots` draws them; both read
the column lists here, so neither imports the other (the safety module's old figure
names forward to :mod:`analysis.plots` with a deprecation warning).
"""

from __future__ import annotations

#: What a report says for a table the data did not supply (an absent optional file).
NOT_COLLECTED = "not collected in this data set"

#: Columns of :func:`analysis.safety.adverse_event_table` after the ``by`` columns.
_AE_COLUMNS = ["term", "n", "patients", "percent", "ci_low", "ci_high", "events", "suppressed"]
#: Columns of :func:`analysis.safety.blood_pressure_table` after ``by``.
_BP_COLUMNS = [
    "measure",
    "n_patients",
    "n_sessions",
    "pre_mean",
    "peak_mean",
    "change_mean",
    "change_sd",
    "change_ci_low",
    "change_ci_high",
    "peak_criterion",
    "n_peak_over",
    "pct_peak_over",
    "rise_criterion",
    "n_rise_over",
    "pct_rise_over",
    "suppressed",
]
#: Columns of :func:`analysis.safety.dissociation_table` after ``by``.
_CADSS_COLUMNS = [
    "n_patients",
    "n_sessions",
    "mean",
    "sd",
    "median",
    "q1",
    "q3",
    "criterion",
    "n_over",
    "pct_over",
    "suppressed",
]
#: Columns of :func:`analysis.safety.dose_summary` after ``by``.
_DOSE_COLUMNS = [
    "n_patients",
    "sessions",
    "sessions_per_patient_mean",
    "sessions_per_patient_sd",
    "sessions_per_patient_median",
    "sessions_per_patient_q1",
    "sessions_per_patient_q3",
    "pct_sessions_completed",
    "induction_n",
    "induction_completed",
    "pct_induction_completed",
    "maintenance_patients",
    "pct_maintenance",
    "dose_mg_median",
    "dose_mg_q1",
    "dose_mg_q3",
    "dose_mg_per_kg_median",
    "dose_mg_per_kg_q1",
    "dose_mg_per_kg_q3",
    "suppressed",
]
