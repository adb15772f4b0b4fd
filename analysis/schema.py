"""Data model: the `Cohort` container, table validation and loading.

The table definitions live once, as Frictionless Table Schema files in ``data_schema/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Cohort:
    """The four tables of a de-identified cohort (pandas DataFrames).

    ``sessions`` and ``adverse_events`` are empty frames when the data has none.
    """

    patients: pd.DataFrame
    assessments: pd.DataFrame
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    adverse_events: pd.DataFrame = field(default_factory=pd.DataFrame)
