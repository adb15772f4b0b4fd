"""Report figures (seaborn); every function returns a matplotlib ``Figure``.

Each figure draws a table made by :mod:`analysis.tables` as it is, so the figure shows
the same (suppressed) numbers as the table next to it: a blanked cell is drawn as a grey
"X" with a "suppressed (small cell)" legend entry (:func:`mark_suppressed`), never as a
gap that reads as zero, and a panel left empty by suppression says so (:func:`say_empty`).

Figures are made with ``matplotlib.figure.Figure``, not ``pyplot``: nothing is registered
in pyplot's global state, so a notebook shows a returned figure once (as the cell's
value) and a batch job does not accumulate open figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis._utils import check_columns, to_float_array
from analysis.endpoints import make_schedule

__all__ = [
    "plot_change_trajectory",
    "plot_completeness",
    "plot_cumulative_incidence",
    "plot_effect_sizes",
    "plot_item_missingness",
    "plot_rates",
    "mark_suppressed",
    "say_empty",
]

#: Label drawn where a table cell was blanked by small-cell suppression (no bar).
_SUPPRESSED = "suppressed"

#: Legend entry of the marker drawn where a cell is suppressed (never a gap that reads
#: as zero).
SUPPRESSED_LABEL = "suppressed (small cell)"

#: Text of a panel with nothing left to draw after suppression.
EMPTY_PANEL_TEXT = "Nothing to show: every cell is suppressed\n(fewer than min_cell patients)"


def mark_suppressed(ax, x, y) -> None:
    """Draw a grey "X" at each (x, y) with one "suppressed (small cell)" legend entry.

    Every figure calls this where a table cell was blanked by disclosure control
    (:mod:`analysis.disclosure`), so a hidden cell is visible as hidden, not as a
    missing bar or point that reads as zero.
    """
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    if not len(x):
        return
    labels = ax.get_legend_handles_labels()[1]
    label = "_nolegend_" if SUPPRESSED_LABEL in labels else SUPPRESSED_LABEL
    ax.scatter(x, y, marker="X", s=70, color="0.3", zorder=6, label=label, clip_on=False)


def say_empty(ax, text: str = EMPTY_PANEL_TEXT) -> None:
    """Write in the middle of a panel that suppression left it empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.3")


def plot_completeness(table: pd.DataFrame) -> Figure:
    """Bar chart of the percent of expected patients assessed at each visit.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.completeness_table` (``instrument, visit,
        percent``); visits are drawn in the table's order.

    Returns
    -------
    Figure
        One axes: visits on x, percent on y (0-100), one bar colour per instrument; a
        suppressed cell is labelled "suppressed" instead of a bar.
    """
    check_columns(table, ["instrument", "visit", "percent"], "completeness")
    data = table.assign(percent=pd.to_numeric(table["percent"], errors="coerce").astype(float))
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    sns.barplot(
        data=data,
        x="visit",
        y="percent",
        hue="instrument",
        order=list(dict.fromkeys(data["visit"])),
        hue_order=list(dict.fromkeys(data["instrument"])),
        errorbar=None,
        ax=ax,
    )
    visits = list(dict.fromkeys(data["visit"]))
    instruments = list(dict.fromkeys(data["instrument"]))
    if not instruments:  # a table without rows (header-only data): empty axes, a note
        ax.text(0.5, 50, "no assessments", ha="center", va="center", color="0.4")
        ax.set(xlabel="Visit", ylabel="Patients assessed (% of expected)", ylim=(0, 100))
        return fig
    width = 0.8 / len(instruments)
    hidden_x = []
    for row in data.loc[data["percent"].isna()].itertuples(index=False):
        x = visits.index(row.visit) - 0.4 + width * (instruments.index(row.instrument) + 0.5)
        ax.text(x, 4, _SUPPRESSED, rotation=90, ha="center", va="bottom", fontsize=8, color="0.4")
        hidden_x.append(x)
    mark_suppressed(ax, hidden_x, np.zeros(len(hidden_x)))
    if data["percent"].notna().sum() == 0:
        say_empty(ax)
    ax.set(xlabel="Visit", ylabel="Patients assessed (% of expected)", ylim=(0, 100))
    ax.legend(title="Instrument", loc="upper right")
    return fig


def plot_item_missingness(table: pd.DataFrame) -> Figure:
    """Horizontal bars of the percent of assessments missing each item, one panel per scale.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.item_missingness` (``instrument, item, label,
        percent``).

    Returns
    -------
    Figure
        One axes per instrument in the table, one bar per item (item 1 at the top); a
        suppressed cell is labelled "suppressed" instead of a bar.
    """
    check_columns(table, ["instrument", "item", "label", "percent"], "item_missingness")
    instruments = list(dict.fromkeys(table["instrument"]))
    heights = [max(2.0, 0.3 * (table["instrument"] == i).sum()) for i in instruments]
    fig = Figure(figsize=(8, sum(heights) + 1), layout="constrained")
    axes = fig.subplots(len(instruments), 1, height_ratios=heights, squeeze=False)
    top = max(5.0, float(pd.to_numeric(table["percent"], errors="coerce").max() or 0) * 1.1)
    for ax, instrument in zip(axes[:, 0], instruments, strict=True):
        rows = table.loc[table["instrument"] == instrument]
        labels = [
            f"{item}. {label}" for item, label in zip(rows["item"], rows["label"], strict=True)
        ]
        sns.barplot(
            x=pd.to_numeric(rows["percent"], errors="coerce").astype(float).to_numpy(),
            y=labels,
            orient="h",
            color="C0",
            errorbar=None,
            ax=ax,
        )
        hidden_y = []
        for y, value in enumerate(pd.to_numeric(rows["percent"], errors="coerce")):
            if pd.isna(value):
                ax.text(top / 40, y, _SUPPRESSED, va="center", fontsize=8, color="0.4")
                hidden_y.append(y)
        mark_suppressed(ax, np.zeros(len(hidden_y)), hidden_y)
        if hidden_y:
            ax.legend(loc="lower right", fontsize="small")
        if len(hidden_y) == len(rows):
            say_empty(ax)
        ax.set(title=instrument, xlabel="Missing (% of assessments with items)", xlim=(0, top))
    return fig


def _visit_order(values: pd.Series) -> list:
    """Visits in schedule order (default schedule), unknown names after, in table order."""
    schedule = [v.name for v in make_schedule(None)]
    seen = list(dict.fromkeys(values.dropna().astype(str)))
    return [v for v in schedule if v in seen] + [v for v in seen if v not in schedule]


def _levels(table: pd.DataFrame, column: str | None) -> list:
    return [None] if column is None else list(dict.fromkeys(table[column].astype(str)))


def _panels(n: int, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * n + 1, height), layout="constrained")
    return fig, fig.subplots(1, n, squeeze=False, sharey=True)[0]


def _dodged_lines(ax, rows, hue, lines, x, order, value="estimate", scale=1.0) -> None:
    """One line with its interval per level of ``hue``, dodged sideways so none overlap.

    ``x`` is the column placed by its position in ``order``; the interval is
    ``ci_low``..``ci_high``; values are multiplied by ``scale`` (100 for percentages).
    """
    width = 0.3 / max(1, len(lines))
    for k, line in enumerate(lines):
        sub = rows if line is None else rows[rows[hue].astype(str) == line]
        sub = sub.assign(_x=sub[x].astype(str).map(order.index)).sort_values("_x")
        y = scale * to_float_array(sub[value])
        ax.errorbar(
            sub["_x"].to_numpy(dtype=float) + (k - (len(lines) - 1) / 2) * width,
            y,
            yerr=[
                y - scale * to_float_array(sub["ci_low"]),
                scale * to_float_array(sub["ci_high"]) - y,
            ],
            fmt="o-",
            capsize=3,
            color=f"C{k % 10}",
            label=line,
        )
        hidden = np.isnan(y) & sub["_x"].notna().to_numpy()
        mark_suppressed(ax, sub["_x"].to_numpy(dtype=float)[hidden], np.zeros(hidden.sum()))


def plot_rates(
    table: pd.DataFrame,
    *,
    hue: str | None = None,
    col: str | None = "instrument",
    value: str = "rate",
    ylabel: str = "Patients meeting the outcome (%)",
) -> Figure:
    """Rates (with their intervals) over the visits, one line per ``hue`` level.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.rates.rate_table` with ``visit`` among its ``by``
        columns (``rate, ci_low, ci_high`` on the 0-1 scale; drawn as percentages).
        Suppressed cells (NaN) are drawn as a grey "X" at 0 with a legend entry.
    hue : str, optional
        Column with one line per level (e.g. ``"route"`` or ``"outcome"``).
    col : str or None
        Column with one panel per level (default ``"instrument"``).
    value : str
        The rate column (``"rate"``).
    ylabel : str
        Label of the y axis.

    Returns
    -------
    Figure
        Visits on x in schedule order, percent (0-100) on y.
    """
    check_columns(table, ["visit", value, "ci_low", "ci_high"], "rate_table")
    visits = _visit_order(table["visit"])
    panels = _levels(table, col)
    lines = _levels(table, hue)
    fig, axes = _panels(len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        rows = table if panel is None else table[table[col].astype(str) == panel]
        _dodged_lines(ax, rows, hue, lines, "visit", visits, value=value, scale=100)
        if pd.to_numeric(rows[value], errors="coerce").notna().sum() == 0:
            say_empty(ax)
        ax.set_xticks(range(len(visits)), visits)
        ax.set(title=panel or "", xlabel="Visit", ylim=(0, 100))
    axes[0].set_ylabel(ylabel)
    if hue is not None or SUPPRESSED_LABEL in axes[-1].get_legend_handles_labels()[1]:
        axes[-1].legend(title=hue, fontsize="small")
    return fig


def plot_change_trajectory(
    table: pd.DataFrame,
    *,
    group: str | None = "route",
    visit: str = "visit",
    col: str | None = None,
    ylabel: str = "Change from baseline (points)",
) -> Figure:
    """Mean change from baseline over the visits with intervals, one line per group.

    Parameters
    ----------
    table : DataFrame
        Output of :meth:`analysis.mmrm.MMRMResult.lsmeans` (``estimate, ci_low,
        ci_high``) or any table with those columns and a visit column.
    group : str or None
        Column with one line per level (default ``"route"``).
    visit : str
        The visit column (drawn in schedule order).
    col : str, optional
        Column with one panel per level (e.g. ``"instrument"``).
    ylabel : str
        Label of the y axis.

    Returns
    -------
    Figure
        Visits on x, the estimate on y with a horizontal line at 0.
    """
    check_columns(table, [visit, "estimate", "ci_low", "ci_high"], "lsmeans")
    visits = _visit_order(table[visit])
    panels = _levels(table, col)
    lines = _levels(table, group)
    fig, axes = _panels(len(panels), width=6.0)
    for ax, panel in zip(axes, panels, strict=True):
        rows = table if panel is None else table[table[col].astype(str) == panel]
        _dodged_lines(ax, rows, group, lines, visit, visits)
        if pd.to_numeric(rows["estimate"], errors="coerce").notna().sum() == 0:
            say_empty(ax)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(visits)), visits)
        ax.set(title=panel or "", xlabel="Visit")
    axes[0].set_ylabel(ylabel)
    if group is not None or SUPPRESSED_LABEL in axes[-1].get_legend_handles_labels()[1]:
        axes[-1].legend(title=group, fontsize="small")
    return fig


def plot_cumulative_incidence(
    km: pd.DataFrame,
    *,
    group: str | None = "group",
    cumulative: bool = True,
    xlabel: str = "Study day",
    ylabel: str = "Cumulative proportion with the event (%)",
    max_time: float | None = None,
    min_cell: int | None = None,
) -> Figure:
    """Kaplan-Meier curves as steps, as 1 - S(t) (cumulative incidence) by default.

    Parameters
    ----------
    km : DataFrame
        Output of :func:`analysis.survival.kaplan_meier` (``[group,] time, survival,
        ci_low, ci_high``).
    group : str or None
        The column holding the curve's level (``"group"``, the name ``kaplan_meier``
        gives it); ``None`` for a single curve.
    cumulative : bool
        Draw ``1 - survival`` (time to response: the share who responded by day t);
        ``False`` draws the survival curve itself (time to relapse: still responding).
    xlabel, ylabel : str
        Axis labels.
    max_time : float, optional
        Right end of the x axis (default the last event time).
    min_cell : int, optional
        Disclosure control (:mod:`analysis.disclosure`): no curve for a level of fewer
        than ``min_cell`` patients (its steps of 1/n would give its event counts; the
        legend says so), and each curve stops before the first time with fewer than
        ``min_cell`` patients at risk. A figure left without any curve says so.

    Returns
    -------
    Figure
        One axes, a step curve with a shaded pointwise interval per level, starting at
        time 0 (0% or 100%).
    """
    check_columns(km, ["time", "survival", "ci_low", "ci_high"], "kaplan_meier")
    group = group if group is not None and group in km.columns else None
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    from analysis.disclosure import check_min_cell, suppress_survival_curve

    min_cell = check_min_cell(min_cell)
    drawn = 0
    for k, level in enumerate(_levels(km, group)):
        sub = km if level is None else km[km[group].astype(str) == level]
        sub = sub.sort_values("time")
        if min_cell is not None and "n_at_risk" in sub:
            sub = suppress_survival_curve(sub, min_cell)  # the one small-group rule
            if sub.empty:
                ax.plot([], [], color="none", label=f"{level}: fewer than {min_cell}, not shown")
                continue
        drawn += 1
        time = np.concatenate([[0.0], to_float_array(sub["time"])])
        surv = np.concatenate([[1.0], to_float_array(sub["survival"])])
        low = np.concatenate([[1.0], to_float_array(sub["ci_low"])])
        high = np.concatenate([[1.0], to_float_array(sub["ci_high"])])
        if cumulative:
            surv, low, high = 1 - surv, 1 - high, 1 - low
        color = f"C{k % 10}"
        ax.step(time, 100 * surv, where="post", color=color, label=level)
        ax.fill_between(time, 100 * low, 100 * high, step="post", color=color, alpha=0.15)
    if not drawn:
        say_empty(ax, "No curve shown: every group is smaller than min_cell")
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, 100))
    if max_time is not None:
        ax.set_xlim(0, max_time)
    if group is not None:
        ax.legend(fontsize="small")
    return fig


def plot_effect_sizes(
    table: pd.DataFrame,
    *,
    hue: str | None = "instrument",
    x: str = "visit",
    reference_lines: Sequence[float] = (0.2, 0.5, 0.8),
) -> Figure:
    """Effect sizes with their intervals over the visits (or another ``x``).

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.effect_sizes.effect_size_table` (``estimate, ci_low,
        ci_high`` and the ``x`` and ``hue`` columns).
    hue : str or None
        Column with one line per level (default ``"instrument"``).
    x : str
        Column on the x axis (default ``"visit"``, drawn in schedule order).
    reference_lines : sequence of float
        Dotted lines at these values and their negatives (Cohen's 0.2 small, 0.5
        medium, 0.8 large).

    Returns
    -------
    Figure
        One axes: estimates with error bars.
    """
    check_columns(table, [x, "estimate", "ci_low", "ci_high"], "effect_size_table")
    order = _visit_order(table[x]) if x == "visit" else _levels(table, x)
    lines = _levels(table, hue)
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    _dodged_lines(ax, table, hue, lines, x, order)
    for value in reference_lines:
        for sign in (1, -1):
            ax.axhline(sign * value, color="grey", linewidth=0.6, linestyle=":")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(order)), order)
    ax.set(xlabel=x.replace("_", " ").capitalize(), ylabel="Effect size (95% CI)")
    if hue is not None:
        ax.legend(title=hue, fontsize="small")
    return fig
