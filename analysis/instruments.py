"""The two anxiety scales: items, ranges, severity bands, outcome criteria, item scoring.

Every clinical constant of the package lives here, once, with its source. Other modules
read them from an :class:`Instrument` (``GAD7``, ``HAMA``) or its :class:`Criteria`; none
hard-codes a scale range, a cut-off or a response threshold.

Conventions that the literature does not settle (how many missing items may be prorated,
partial response) are marked **convention** and are overridable through
:class:`Criteria` or :func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from analysis._utils import check_choice

__all__ = [
    "GAD7",
    "HAMA",
    "INSTRUMENTS",
    "MAX_ITEMS",
    "Criteria",
    "Instrument",
    "SeverityBands",
    "get_instrument",
]

#: Number of ``item_<k>`` columns in the assessments table (the HAM-A has the most items).
MAX_ITEMS = 14


@dataclass(frozen=True)
class SeverityBands:
    """Named severity bands: band ``k`` covers ``lower[k] <= score < lower[k + 1]``.

    Parameters
    ----------
    name : str
        Short name used to select the scheme (``Criteria.severity_bands``).
    labels : tuple of str
        Band labels, mildest first.
    lower : tuple of int
        Inclusive lower bound of each band; the first is 0.
    source : str
        Where the bands come from.

    Examples
    --------
    >>> GAD7.bands["spitzer2006"].classify([0, 4, 5, 10, 15, 21])
    ['minimal', 'minimal', 'mild', 'moderate', 'severe', 'severe']
    """

    name: str
    labels: tuple[str, ...]
    lower: tuple[int, ...]
    source: str

    def classify(self, scores) -> list:
        """Band label of each score (``None`` for a missing score)."""
        values = pd.to_numeric(pd.Series(scores, dtype="object"), errors="coerce").to_numpy(
            dtype=float
        )
        index = np.searchsorted(np.asarray(self.lower, dtype=float), values, side="right") - 1
        labels = np.asarray(self.labels, dtype=object)
        out = labels[np.clip(index, 0, len(labels) - 1)]
        out[np.isnan(values)] = None
        return out.tolist()


@dataclass(frozen=True)
class Criteria:
    """Outcome definitions applied by :func:`analysis.derive_endpoints`.

    Parameters
    ----------
    response_reduction : float
        Response is a reduction from baseline of at least this many percent
        (``pct_change <= -response_reduction``). Default 50, the usual definition for
        both scales (HAM-A: GAD trials, e.g. Khan et al. 2016; GAD-7: Hull et al. 2022).
    partial_response_reduction : float
        Partial response is ``-response_reduction < pct_change <= -partial_response_reduction``.
        Default 25 (**convention**).
    remission_cutoff : int
        Remission is ``score <= remission_cutoff``; undefined (NA) for a patient whose
        baseline is already at or under it. GAD-7 4 (score < 5, the "minimal" band,
        Spitzer 2006; Hull et al. 2022); HAM-A 7 (GAD trials, e.g. Khan et al. 2016).
    reliable_change : float or None
        Fixed reliable-change threshold in points (GAD-7: 4, NHS Talking Therapies).
        ``None`` means the Jacobson-Truax (1991) threshold computed from the data:
        ``rci_z * SD_baseline * sqrt(2 * (1 - reliability))``.
    reliability : float or None
        Reliability used by the Jacobson-Truax threshold; ``None`` means Cronbach's alpha of
        the complete baseline assessments in the data passed in.
    rci_z : float
        Critical value of the reliable change index (1.96, Jacobson & Truax 1991).
    caseness_cutoff : int or None
        A score of at least this is a "case" (GAD-7 8, NHS Talking Therapies). Recovery is
        a baseline case that is no longer a case; ``None`` leaves recovery undefined.
    severity_bands : str
        Name of the severity scheme in ``Instrument.bands``.

    Examples
    --------
    >>> from dataclasses import replace
    >>> replace(GAD7.criteria, response_reduction=40).response_reduction
    40
    """

    response_reduction: float = 50.0
    partial_response_reduction: float = 25.0
    remission_cutoff: int = 4
    reliable_change: float | None = None
    reliability: float | None = None
    rci_z: float = 1.96
    caseness_cutoff: int | None = None
    severity_bands: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.partial_response_reduction <= self.response_reduction <= 100:
            raise ValueError(
                "Criteria need 0 < partial_response_reduction <= response_reduction <= 100, "
                f"but got {self.partial_response_reduction} and {self.response_reduction}."
            )
        if self.reliability is not None and not 0 <= self.reliability < 1:
            raise ValueError(
                f"`reliability` must lie in [0, 1), but {self.reliability!r} was passed."
            )
        if self.reliable_change is not None and self.reliable_change <= 0:
            raise ValueError(
                f"`reliable_change` must be a positive number of points or None, "
                f"but {self.reliable_change!r} was passed."
            )


@dataclass(frozen=True)
class Instrument:
    """A rating scale: its items, ranges, bands, subscales and default outcome criteria.

    Attributes
    ----------
    name : str
        Code used in the ``instrument`` column (``"GAD7"``, ``"HAMA"``).
    title : str
        Full name.
    items : tuple of str
        Item wording or label, in order (item 1 first).
    item_max : int
        Highest score of one item (items start at 0).
    max_missing_items : int
        How many missing items may be prorated (**convention**).
    bands : mapping of str to SeverityBands
        Available severity schemes; ``criteria.severity_bands`` names the default.
    subscales : mapping of str to tuple of int
        Subscale name to 1-based item numbers.
    criteria : Criteria
        Default outcome definitions.
    source : str
        Reference for the scale.
    """

    name: str
    title: str
    items: tuple[str, ...]
    item_max: int
    max_missing_items: int
    bands: Mapping[str, SeverityBands]
    criteria: Criteria
    subscales: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    source: str = ""

    @property
    def n_items(self) -> int:
        """Number of items."""
        return len(self.items)

    @property
    def item_min(self) -> int:
        """Lowest score of one item."""
        return 0

    @property
    def total_max(self) -> int:
        """Highest total score (``n_items * item_max``)."""
        return self.n_items * self.item_max

    @property
    def item_columns(self) -> list[str]:
        """Names of the item columns used by this scale (``item_1`` ...)."""
        return [f"item_{k}" for k in range(1, self.n_items + 1)]

    @property
    def unused_item_columns(self) -> list[str]:
        """Item columns of the assessments table that must stay empty for this scale."""
        return [f"item_{k}" for k in range(self.n_items + 1, MAX_ITEMS + 1)]

    @property
    def severity_bands(self) -> SeverityBands:
        """The default severity scheme (named by ``criteria.severity_bands``)."""
        return self.bands[self.criteria.severity_bands]

    def band(self, name: str) -> SeverityBands:
        """A severity scheme by name, with a clear error for an unknown name."""
        check_choice("severity_bands", name, list(self.bands))
        return self.bands[name]

    def __repr__(self) -> str:
        return (
            f"Instrument({self.name}: {self.n_items} items 0-{self.item_max}, "
            f"total 0-{self.total_max})"
        )


_SPITZER_2006 = "Spitzer, Kroenke, Williams, Loewe 2006, Arch Intern Med 166:1092-1097"
_HAMILTON_1959 = "Hamilton 1959, Br J Med Psychol 32:50-55"

GAD7 = Instrument(
    name="GAD7",
    title="Generalized Anxiety Disorder 7-item scale",
    items=(
        "Feeling nervous, anxious, or on edge",
        "Not being able to stop or control worrying",
        "Worrying too much about different things",
        "Trouble relaxing",
        "Being so restless that it is hard to sit still",
        "Becoming easily annoyed or irritable",
        "Feeling afraid, as if something awful might happen",
    ),
    # 0 not at all, 1 several days, 2 more than half the days, 3 nearly every day.
    item_max=3,
    # No published rule for missing GAD-7 items: **convention** prorate at most one.
    max_missing_items=1,
    bands=MappingProxyType(
        {
            "spitzer2006": SeverityBands(
                "spitzer2006",
                ("minimal", "mild", "moderate", "severe"),
                (0, 5, 10, 15),
                _SPITZER_2006,
            ),
        }
    ),
    criteria=Criteria(
        remission_cutoff=4,  # score < 5 (Spitzer 2006 minimal band; Hull et al. 2022)
        reliable_change=4.0,  # NHS Talking Therapies reliable improvement: a drop of 4+
        caseness_cutoff=8,  # NHS Talking Therapies caseness: GAD-7 >= 8
        severity_bands="spitzer2006",
    ),
    source=_SPITZER_2006,
)

HAMA = Instrument(
    name="HAMA",
    title="Hamilton Anxiety Rating Scale",
    items=(
        "Anxious mood",
        "Tension",
        "Fears",
        "Insomnia",
        "Intellectual (cognitive)",
        "Depressed mood",
        "Somatic (muscular)",
        "Somatic (sensory)",
        "Cardiovascular symptoms",
        "Respiratory symptoms",
        "Gastrointestinal symptoms",
        "Genitourinary symptoms",
        "Autonomic symptoms",
        "Behaviour at interview",
    ),
    # 0 not present, 1 mild, 2 moderate, 3 severe, 4 very severe (Hamilton 1959).
    item_max=4,
    # No published rule for missing HAM-A items: **convention** prorate at most two.
    max_missing_items=2,
    bands=MappingProxyType(
        {
            "matza2010": SeverityBands(
                "matza2010",
                ("minimal", "mild", "moderate", "severe"),
                (0, 8, 15, 24),
                "Matza et al. 2010, Int J Methods Psychiatr Res 19:223-232, doi:10.1002/mpr.323",
            ),
            "score_sheet": SeverityBands(
                "score_sheet",
                ("mild", "mild_to_moderate", "moderate_to_severe", "severe"),
                (0, 18, 25, 31),
                "HAM-A score-sheet convention: <=17 mild, 18-24 mild to moderate, "
                "25-30 moderate to severe, >30 severe",
            ),
        }
    ),
    criteria=Criteria(
        remission_cutoff=7,  # HAM-A <= 7 (GAD trials, e.g. pooled vilazodone, Khan 2016)
        reliable_change=None,  # Jacobson-Truax from the data (no fixed HAM-A threshold)
        caseness_cutoff=None,  # recovery is defined for the GAD-7 only
        severity_bands="matza2010",
    ),
    # Psychic items 1-6 and 14, somatic items 7-13 (as reported in GAD trials; Maier 1988).
    subscales=MappingProxyType(
        {"psychic": (1, 2, 3, 4, 5, 6, 14), "somatic": (7, 8, 9, 10, 11, 12, 13)}
    ),
    source=_HAMILTON_1959,
)

#: The instruments by code, as they appear in the ``instrument`` column.
INSTRUMENTS: Mapping[str, Instrument] = MappingProxyType({"GAD7": GAD7, "HAMA": HAMA})


def get_instrument(instrument: str | Instrument) -> Instrument:
    """Return the :class:`Instrument` for a code (``"GAD7"``, ``"HAMA"``) or pass one through.

    Examples
    --------
    >>> get_instrument("HAMA").total_max
    56
    """
    if isinstance(instrument, Instrument):
        return instrument
    check_choice("instrument", instrument, list(INSTRUMENTS))
    return INSTRUMENTS[instrument]
