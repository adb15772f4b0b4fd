"""Report figures (seaborn/matplotlib); every function returns a matplotlib ``Figure``.

Design contract:

- A cell blanked by disclosure control is drawn as a grey "X" with a "suppressed (small
  cell)" legend entry (:func:`mark_suppressed`), never as a gap that reads as zero, and a
  panel left empty by suppression says so (:func:`say_empty`).

- Each figure draws a table made by :mod:`analysis.tables`, :mod:`analysis.rates` or
  :mod:`analysis.safety` as it is, so the figure shows the same (suppressed) numbers as
  the table next to it. A cell blanked by small-cell suppression is never drawn as a
  value: it is labelled "suppressed" where its mark would be (:func:`_mark_suppressed`,
  the one place that does it).
- Figures are :class:`ReportFigure` objects made without ``pyplot``: nothing is
  registered in pyplot's global state (a batch job does not accumulate open figures)
  and the figure displays itself in Jupyter through ``_repr_png_``, so a returned figure
  shows as an image in a fresh notebook without ``%matplotlib inline``. Its PNG is drawn
  once (:func:`_tight_png`), also under ``%matplotlib inline`` (a printer of its own).
- Every legend stands to the right of its plotting area, never inside it, and the
  figure is widened by the legend so the plotting area keeps its width (:func:`_legend`,
  the one place a legend is made: a legend inside the axes, wherever it went, covered
  some cohort's data).
- All the package's figures live here (the safety figures included; their old names in
  :mod:`analysis.safety` still work, with a ``DeprecationWarning``).
"""

from __future__ import annotations

import base64
import functools
import io
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis._safety_columns import _AE_COLUMNS, _BP_COLUMNS, _CADSS_COLUMNS, NOT_COLLECTED
from analysis._utils import check_columns, needs_extra, renamed_arguments, to_float_array
from analysis.endpoints import visit_order

with needs_extra("analysis.plots"):  # the `plots` extra: its absence named with the command
    import seaborn as sns
    from matplotlib.figure import Figure

__all__ = [
    "ReportFigure",
    "plot_adverse_events",
    "plot_blood_pressure",
    "plot_change_trajectory",
    "plot_completeness",
    "plot_cumulative_incidence",
    "plot_dissociation",
    "plot_effect_sizes",
    "plot_exposure_response",
    "plot_forest",
    "plot_item_missingness",
    "plot_mean_trajectories",
    "plot_patient_flow",
    "plot_rates",
    "mark_suppressed",
    "say_empty",
    "plot_severity_transitions",
    "plot_waterfall",
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


def _legend(ax, *args, **kwargs):
    """The legend of ``ax``, to the right of its plotting area and top-aligned.

    Every legend of the package is placed here (as ggplot2 places them), never inside
    the axes: wherever a legend stood inside ("best" or a fixed corner), some data put a
    point, a bar or an error bar under it (report 03's LS means hid a route's week-12
    estimate). The figure is widened by the legend (:func:`_fit_legends`), so the plotting
    area keeps the width the figure was made with. Arguments as ``Axes.legend``.
    """
    legend = ax.legend(*args, loc="upper left", bbox_to_anchor=(1.01, 1), **kwargs)
    _fit_legends(ax.figure)
    return legend


#: Inches between a plotting area and its legend, and after the legend (the anchor's
#: offset, the legend's border pad and the layout's margin).
_LEGEND_GAP = 0.25


def _fit_legends(fig: Figure) -> None:
    """Make ``fig`` as wide as it was made plus its widest legend (and a gap).

    Called whenever a legend is placed or its texts change (:func:`_relabel`); the width
    the figure was made with is kept on it, so calling again does not add up.
    """
    from matplotlib.backends.backend_agg import RendererAgg

    legends = [legend for ax in fig.axes if (legend := ax.get_legend()) is not None]
    if not legends:
        return
    renderer = RendererAgg(1, 1, fig.dpi)  # text metrics only; the figure is not drawn
    widest = max(legend.get_window_extent(renderer).width for legend in legends) / fig.dpi
    made = fig.__dict__.setdefault("_width_without_legends", fig.get_figwidth())
    fig.set_figwidth(made + widest + _LEGEND_GAP)


def _linked(table):
    """The table with the populations hidden that the tables of this report set hide.

    In a ``--by-site`` run the tables hide, in addition, what the linked decision
    (:func:`analysis.disclosure.apply_linked_suppression`) says; a figure drawn from a
    table that did not go through :func:`analysis.reports.save_table` follows it too,
    drawing a hidden population's cell as the suppressed mark. Anything else as is.
    """
    from analysis.disclosure import apply_linked_suppression

    return apply_linked_suppression(table) if isinstance(table, pd.DataFrame) else table


def say_empty(ax, text: str = EMPTY_PANEL_TEXT) -> None:
    """Write in the middle of a panel that suppression left it empty.

    The text lies above everything else of the panel (the suppressed marks of
    :func:`mark_suppressed` included) on a white box, so that marks drawn in the middle
    of the panel do not hide it.
    """
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.3",
        zorder=10,
        bbox={"facecolor": "white", "edgecolor": "0.8", "boxstyle": "round,pad=0.4"},
    )


class ReportFigure(Figure):
    """A matplotlib Figure that Jupyter displays as a PNG image.

    IPython shows an object through its ``_repr_png_`` method when no display formatter
    is registered for it, which is the case for a Figure made without ``pyplot`` in a
    kernel where ``%matplotlib inline`` was never run. Under ``%matplotlib inline`` the
    first report figure registers a PNG printer for the class (:func:`_ipython_png`),
    which IPython prefers to the inline backend's printer for every ``Figure``. Either
    way the PNG is :func:`_tight_png`'s: the tight box of one draw.

    Examples
    --------
    >>> fig = ReportFigure(figsize=(2, 1))
    >>> _ = fig.subplots()
    >>> fig._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """

    def __init__(self, *args, **kwargs):
        """The arguments of :class:`matplotlib.figure.Figure` (``figsize``, ``layout``, ...)."""
        super().__init__(*args, **kwargs)
        _show_drawn_once()

    def _repr_png_(self) -> bytes:
        return _tight_png(self, dpi=100)


def _show_drawn_once() -> None:
    """In an IPython kernel, show report figures through :func:`_tight_png`.

    ``%matplotlib inline`` registers its own PNG printer for every matplotlib ``Figure``
    (``savefig`` with a tight box: two draws), which IPython prefers to ``_repr_png_``.
    A printer registered for :class:`ReportFigure` comes first for report figures.
    Nothing is imported: outside IPython this does nothing.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    png = formatters.get("image/png") if isinstance(formatters, dict) else None
    if png is not None and ReportFigure not in png.type_printers:
        png.for_type(ReportFigure, _ipython_png)


def _ipython_png(fig: ReportFigure):
    """IPython's image/png of a report figure: the inline backend's image, drawn once.

    With the inline backend's default PNG printer (``png`` format, tight box, no other
    arguments) the same image from :func:`_tight_png`, base64-encoded as that printer
    returns it; with any other inline configuration that printer's output (a
    ``retina`` or ``svg`` choice, other ``print_figure_kwargs``); with no inline backend
    ``_repr_png_``, as IPython would call it.
    """
    from IPython import get_ipython
    from IPython.core import pylabtools

    formatters = get_ipython().display_formatter.formatters
    printer = formatters["image/png"].type_printers.get(Figure)
    if printer is None:
        if any(Figure in formatter.type_printers for formatter in formatters.values()):
            return None  # the inline backend shows figures in another format only
        return fig._repr_png_()
    plain = {"fmt": "png", "base64": True, "bbox_inches": "tight"}
    if not (
        isinstance(printer, functools.partial)
        and printer.func is pylabtools.print_figure
        and not printer.args
        and printer.keywords == plain
    ):
        return printer(fig)
    if not fig.axes and not fig.lines:  # as the inline printer: nothing for an empty figure
        return None
    # with its description, which the report pages give the image as its alt text
    return base64.b64encode(_tight_png(fig, dpi=fig.dpi)).decode("ascii"), {"alt": _alt_text(fig)}


def _alt_text(fig: Figure) -> str:
    """A short description of a figure, for readers who cannot see it (an image's alt).

    Each panel that shows data: its title, what it plots (the y label by the x label) and
    the series its legend names; with the figure's own title first (a figure of text
    boxes only, the patient flow, gives its words). The report pages
    give each figure's image this text (``alt``), instead of nbconvert's "No description
    has been provided for this image".

    Examples
    --------
    >>> fig = ReportFigure(figsize=(3, 2))
    >>> ax = fig.subplots()
    >>> _ = ax.plot([0, 1], [30, 60], label="IV ketamine")
    >>> _ = ax.set(xlabel="Visit", ylabel="Response (%)", title="GAD-7")
    >>> _ = ax.legend()
    >>> _alt_text(fig)
    'Figure. GAD-7: Response (%) by Visit (IV ketamine).'
    """
    panels = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.has_data():
            continue
        title = ax.get_title() or ax.get_title(loc="left")
        y, x = ax.get_ylabel().strip(), ax.get_xlabel().strip()
        plotted = f"{y} by {x}" if y and x else (y or x)
        text = ": ".join(t for t in (title.strip(), plotted) if t)
        legend = ax.get_legend()
        names = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        if names:
            text = f"{text} ({', '.join(names)})" if text else ", ".join(names)
        if text:
            panels.append(" ".join(text.split()))
    if not panels:  # a diagram of labelled boxes (the patient flow): its words
        words = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text().strip()]
        panels = [" ".join("; ".join(words).split())] if words else []
    heading = fig.get_suptitle().strip()
    return ". ".join(["Figure", *([heading] if heading else []), *panels]) + "."


def _savefig_png(fig: Figure, dpi: float) -> bytes:
    """``savefig(format="png", bbox_inches="tight")``: the plain form of :func:`_tight_png`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _savefig_laid_out(fig: Figure, dpi: float, box) -> bytes:
    """``savefig`` of ``box`` (inches) of a figure already laid out by a draw.

    The layout engine is off meanwhile: savefig would lay the figure out again, and a
    constrained layout run twice can move the axes (a label past the figure's edge makes
    the second run shrink them further), so the image would not be the one that
    ``bbox_inches="tight"`` makes from a figure not yet drawn.
    """
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches=box)
    finally:
        fig.set_layout_engine(engine)
    return buffer.getvalue()


def _tight_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as a PNG cropped to its tight bounding box, drawn once.

    What ``fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")`` writes (the
    image a notebook shows), with one draw instead of two: ``savefig`` draws the figure
    once without rendering to lay it out and measure its tight box and once more to render
    that box (the first is the cheap one: about 12 % of the figures' time is saved). Here
    the figure is drawn (laid out and rendered) once on its own canvas, the tight box is
    measured on that drawing, padded by ``savefig.pad_inches`` and cut out of the pixels;
    where the padding reaches past the figure's edge it is the figure's background
    colour, as ``savefig`` draws it. The pixels are the same as
    ``savefig``'s up to the sub-pixel position of the box (the crop starts on a whole
    pixel, ``savefig`` draws shifted by the fraction), and the size is the same.

    A figure that does not fit that way is saved with ``savefig`` itself: drawn outside
    its own edge (its tight box, before padding, leaves the canvas), without axes, with a
    transparent background, or with ``savefig.pad_inches`` set to ``"layout"``.

    Parameters
    ----------
    fig : Figure
        Any matplotlib figure; its canvas is left as it was.
    dpi : float, optional
        Dots per inch (default the figure's own).

    Examples
    --------
    >>> fig = ReportFigure(figsize=(2, 1), layout="constrained")
    >>> _ = fig.subplots().plot([0, 1], [0, 1])
    >>> png = _tight_png(fig)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from matplotlib import rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from matplotlib.image import imsave

    dpi = fig.dpi if dpi is None else float(dpi)
    pad = rcParams["savefig.pad_inches"]
    background = to_rgba(fig.get_facecolor())
    if not fig.axes or isinstance(pad, str) or background[3] < 1:
        return _savefig_png(fig, dpi)
    canvas, figure_dpi = fig.canvas, fig.dpi
    try:
        if dpi != figure_dpi:
            fig.dpi = dpi
        agg = FigureCanvasAgg(fig)
        agg.draw()  # runs the layout engine, as savefig's first draw does
        renderer = agg.get_renderer()
        tight = fig.get_tightbbox(renderer)
        pixels = np.asarray(agg.buffer_rgba())
    finally:
        fig.set_canvas(canvas)
        if fig.dpi != figure_dpi:
            fig.dpi = figure_dpi
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = (np.asarray(tight.extents) * dpi).tolist()
    box = tight.padded(pad)
    if x0 < -0.5 or y0 < -0.5 or x1 > width + 0.5 or y1 > height + 0.5:
        return _savefig_laid_out(fig, dpi, box)  # drawn past the edge: only savefig shows it
    out_w, out_h = int(box.width * dpi), int(box.height * dpi)
    # Column c of the image is column c + left of the canvas; row r (from the top) is row
    # r + top (the canvas counts rows from its top edge, matplotlib's y from the bottom).
    left = round(box.x0 * dpi)
    top = round(height - box.y0 * dpi - out_h)
    image = np.empty((out_h, out_w, 4), dtype=np.uint8)
    image[...] = np.round(np.asarray(background) * 255).astype(np.uint8)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + out_w, width), min(top + out_h, height)
    image[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = pixels[
        src_y0:src_y1, src_x0:src_x1
    ]
    buffer = io.BytesIO()
    imsave(buffer, image, format="png", origin="upper", dpi=dpi)
    return buffer.getvalue()


def _mark_suppressed(
    ax, x: float, y: float, *, horizontal: bool = False, centered: bool = False
) -> None:
    """Write "suppressed" at a blanked cell's place (the one rule of every figure).

    Vertical above ``(x, y)`` by default (a missing bar); ``horizontal`` starts at ``x``
    (a missing horizontal bar); ``centered`` sits on ``(x, y)`` over what is behind it
    (a missing point of a forest plot).
    """
    ax.text(
        x,
        y,
        _SUPPRESSED,
        rotation=0 if horizontal or centered else 90,
        ha="center" if centered or not horizontal else "left",
        va="center" if horizontal or centered else "bottom",
        fontsize=8,
        color="0.4",
        backgroundcolor="white" if centered else "none",
    )


def plot_completeness(table: pd.DataFrame, *, human_labels: bool = False) -> Figure:
    """Bar chart of the percent of expected patients assessed at each visit.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.completeness_table` (``instrument, visit,
        percent``); visits are drawn in the table's order.
    human_labels : bool
        Label visits and instruments as :func:`analysis.formatting.label` does.

    Returns
    -------
    Figure
        One axes: visits on x, percent on y (0-100), one bar colour per instrument; a
        suppressed cell is labelled "suppressed" instead of a bar.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["instrument", "visit", "percent"], "completeness")
    data = table.assign(percent=pd.to_numeric(table["percent"], errors="coerce").astype(float))
    fig = ReportFigure(figsize=(8, 4), layout="constrained")
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
        _mark_suppressed(ax, x, 1)
        hidden_x.append(x)
    mark_suppressed(ax, hidden_x, np.zeros(len(hidden_x)))
    if data["percent"].notna().sum() == 0:
        say_empty(ax)
    ax.set(xlabel="Visit", ylabel="Patients assessed (% of expected)", ylim=(0, 100))
    _legend(ax, title="Instrument")
    if human_labels:
        _relabel(fig, {"visit": "visit", "legend": "instrument"})
    return fig


def plot_item_missingness(table: pd.DataFrame, *, human_labels: bool = True) -> Figure:
    """Horizontal bars of the percent of assessments missing each item, one panel per scale.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.item_missingness` (``instrument, item, label,
        percent``).
    human_labels : bool
        Panel titles from the label registry (:func:`analysis.formatting.label`: "GAD-7",
        "HAM-A"; default) or the raw codes (``GAD7``).

    Returns
    -------
    Figure
        One axes per instrument in the table, one bar per item (item 1 at the top); a
        suppressed cell is labelled "suppressed" instead of a bar.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["instrument", "item", "label", "percent"], "item_missingness")
    instruments = list(dict.fromkeys(table["instrument"]))
    heights = [max(2.0, 0.3 * (table["instrument"] == i).sum()) for i in instruments]
    fig = ReportFigure(figsize=(8, sum(heights) + 1), layout="constrained")
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
                _mark_suppressed(ax, top / 100, y, horizontal=True)
                hidden_y.append(y)
        mark_suppressed(ax, np.zeros(len(hidden_y)), hidden_y)
        if hidden_y:
            _legend(ax, fontsize="small")
        if len(hidden_y) == len(rows):
            say_empty(ax)
        title = _label(instrument, "instrument") if human_labels else instrument
        ax.set(title=title, xlabel="Missing (% of assessments with items)", xlim=(0, top))
    return fig


def _visit_order(values: pd.Series) -> list:
    """Visit labels in schedule order (:func:`analysis.endpoints.visit_order`)."""
    present = set(values.dropna().astype(str))
    return [str(v) for v in visit_order(values) if str(v) in present]


def _levels(table: pd.DataFrame, column: str | None) -> list:
    return [None] if column is None else list(dict.fromkeys(table[column].astype(str)))


def _panels(n: int, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    fig = ReportFigure(figsize=(width * n + 1, height), layout="constrained")
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


@renamed_arguments(hue="group")
def plot_rates(
    table: pd.DataFrame,
    *,
    group: str | None = None,
    col: str | None = "instrument",
    value: str = "rate",
    ylabel: str = "Patients meeting the outcome (%)",
    human_labels: bool = False,
) -> Figure:
    """Rates (with their intervals) over the visits, one line per ``group`` level.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.rates.rate_table` with ``visit`` among its ``by``
        columns (``rate, ci_low, ci_high`` on the 0-1 scale; drawn as percentages).
        Suppressed cells (NaN) are drawn as a grey "X" at 0 with a legend entry.
    group : str, optional
        Column with one line per level (e.g. ``"route"`` or ``"outcome"``).
    col : str or None
        Column with one panel per level (default ``"instrument"``).
    value : str
        The rate column (``"rate"``).
    ylabel : str
        Label of the y axis.
    human_labels : bool
        Label visits, panels and lines with :func:`analysis.formatting.label`
        ("Week 4", "GAD-7", "IV ketamine") instead of the table's values.

    Returns
    -------
    Figure
        Visits on x in schedule order, percent (0-100) on y.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["visit", value, "ci_low", "ci_high"], "rate_table")
    visits = _visit_order(table["visit"])
    panels = _levels(table, col)
    lines = _levels(table, group)
    fig, axes = _panels(len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        rows = table if panel is None else table[table[col].astype(str) == panel]
        _dodged_lines(ax, rows, group, lines, "visit", visits, value=value, scale=100)
        if pd.to_numeric(rows[value], errors="coerce").notna().sum() == 0:
            say_empty(ax)
        ticks = [_label(v, "visit") for v in visits] if human_labels else visits
        ax.set_xticks(range(len(visits)), ticks)
        title = _label(panel, col) if human_labels and panel else panel or ""
        ax.set(title=title, xlabel="Visit", ylim=(0, 100))
    axes[0].set_ylabel(ylabel)
    if group is not None and human_labels:
        handles, names = axes[-1].get_legend_handles_labels()
        _legend(
            axes[-1],
            handles,
            [n if n == SUPPRESSED_LABEL else _label(n, group) for n in names],
            title=_label(group, "column"),
            fontsize="small",
        )
    elif group is not None or SUPPRESSED_LABEL in axes[-1].get_legend_handles_labels()[1]:
        _legend(axes[-1], title=group, fontsize="small")
    return fig


def plot_change_trajectory(
    table: pd.DataFrame,
    *,
    group: str | None = "route",
    visit: str = "visit",
    col: str | None = None,
    ylabel: str = "Change from baseline (points)",
    human_labels: bool = False,
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
    human_labels : bool
        Label visits, panels and lines as :func:`analysis.formatting.label` does.

    Returns
    -------
    Figure
        Visits on x, the estimate on y with a horizontal line at 0.
    """
    table = _linked(table)  # a --by-site run's linked decision
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
        _legend(axes[-1], title=group, fontsize="small")
    if human_labels:
        _relabel(fig, {"visit": "visit", "title": col, "legend": group})
    return fig


def _relabel(fig: Figure, kinds: dict) -> None:
    """Replace the machine names on a figure's ticks, titles and legend by their labels."""
    for ax in fig.axes:
        ticks = ax.get_xticks()
        ax.set_xticks(ticks, [_label(t.get_text(), kinds["visit"]) for t in ax.get_xticklabels()])
        if ax.get_title():
            ax.set_title(_label(ax.get_title(), kinds.get("title")))
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_text(_label(text.get_text(), kinds.get("legend")))
            legend.set_title(_label(legend.get_title().get_text(), "column"))
    _fit_legends(fig)  # the labels are longer than the names


def plot_cumulative_incidence(
    km: pd.DataFrame,
    *,
    group: str | None = "group",
    cumulative: bool = True,
    xlabel: str = "Study day",
    ylabel: str = "Cumulative proportion with the event (%)",
    max_time: float | None = None,
    min_cell: int | None = None,
    at_risk: pd.DataFrame | None = None,
) -> Figure:
    """Kaplan-Meier curves as steps, as 1 - S(t) (cumulative incidence) by default.

    Parameters
    ----------
    km : DataFrame
        Output of :func:`analysis.survival.kaplan_meier` (``[group,] time, survival,
        ci_low, ci_high``).
    group : str or None
        The column holding the curve's level (``"group"``, the name ``kaplan_meier``
        gives it); ``None`` for a single curve. Levels are shown by their human labels
        (:func:`analysis.formatting.label`: ``iv`` reads "IV ketamine").
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
        ``min_cell`` patients at risk. A figure left without any curve says so. In a
        ``--by-site`` run, a level whose patients the report set's tables hide (the
        linked decision, :func:`analysis.disclosure.linked_hidden_levels`; ``km`` from
        :func:`analysis.survival.kaplan_meier` records its grouping column) is not
        drawn either: its legend entry is the grey ``X`` of a suppressed cell.
    at_risk : DataFrame, optional
        A number-at-risk table to print under the plot, from
        :func:`analysis.disclosure.number_at_risk` (``[group,] time, n_at_risk,
        suppressed``); give it the same ``min_cell``. A hidden number is printed as a
        grey ``X`` (the figures' suppression mark; "X: suppressed (small cell)" under the
        table), never as a blank that reads as zero, and not as ``<min_cell`` since a
        number hidden by complementary suppression may be large.

    Returns
    -------
    Figure
        One axes, a step curve with a shaded pointwise interval per level, starting at
        time 0 (0% or 100%); with ``at_risk`` a second, flat axes below holds the
        number-at-risk table, one row per level, aligned with the x axis (columns
        beyond the plotted days are left out).

    Examples
    --------
    >>> from analysis.disclosure import number_at_risk
    >>> from analysis.survival import kaplan_meier
    >>> tte = pd.DataFrame({"route": ["iv"] * 30 + ["im"] * 20,
    ...                     "time": list(range(1, 31)) + list(range(2, 42, 2)),
    ...                     "event": 1})
    >>> km = kaplan_meier(tte, group="route", min_cell=11)
    >>> risk = number_at_risk(tte, [0, 14, 28], group="route", min_cell=11)
    >>> fig = plot_cumulative_incidence(km, min_cell=11, max_time=42, at_risk=risk)
    >>> [t.get_text() for t in fig.axes[1].texts][:3]
    ['20', '14', 'X']
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['IM ketamine', 'IV ketamine']
    """
    check_columns(km, ["time", "survival", "ci_low", "ci_high"], "kaplan_meier")
    group = group if group is not None and group in km.columns else None
    from analysis.disclosure import check_min_cell, suppress_survival_curve

    min_cell = check_min_cell(min_cell)
    fig = ReportFigure(figsize=(8, 4.5), layout="constrained")
    if at_risk is None:
        ax = fig.subplots()
    else:
        rows = at_risk["group"].nunique() if "group" in at_risk else 1
        fig.set_size_inches(8, 4.5 + 0.25 * rows + 0.5)
        ax, ax_risk = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [4.5, 0.25 * rows + 0.5]}
        )
    drawn = 0
    from analysis.disclosure import linked_hidden_levels, linked_level

    # a --by-site run: the groups the tables of this report set hide are not drawn either
    linked = linked_hidden_levels(km.attrs.get("group_column")) if group is not None else set()
    for k, level in enumerate(_levels(km, group)):
        sub = km if level is None else km[km[group].astype(str) == level]
        sub = sub.sort_values("time")
        name = None if level is None else _label(level)
        if level is not None and linked_level(level) in linked:
            ax.plot([], [], marker="X", linestyle="none", markersize=8, color="0.3",
                    label=f"{name}: {SUPPRESSED_LABEL}, not shown")  # fmt: skip
            continue
        if min_cell is not None and "n_at_risk" in sub:
            sub = suppress_survival_curve(sub, min_cell)  # the one small-group rule
            if sub.empty:
                ax.plot([], [], color="none", label=f"{name}: fewer than {min_cell}, not shown")
                continue
        drawn += 1
        time = np.concatenate([[0.0], to_float_array(sub["time"])])
        surv = np.concatenate([[1.0], to_float_array(sub["survival"])])
        low = np.concatenate([[1.0], to_float_array(sub["ci_low"])])
        high = np.concatenate([[1.0], to_float_array(sub["ci_high"])])
        if cumulative:
            surv, low, high = 1 - surv, 1 - high, 1 - low
        color = f"C{k % 10}"
        ax.step(time, 100 * surv, where="post", color=color, label=name)
        ax.fill_between(time, 100 * low, 100 * high, step="post", color=color, alpha=0.15)
    if not drawn:
        say_empty(ax, "No curve shown: every group is smaller than min_cell")
    ax.set(xlabel=xlabel if at_risk is None else "", ylabel=ylabel, ylim=(0, 100))
    if max_time is not None:
        ax.set_xlim(0, max_time)
    if group is not None:
        _legend(ax, fontsize="small")
    if at_risk is not None:
        _at_risk_table(ax_risk, at_risk, xlabel, ax.get_xlim())
    return fig


def _at_risk_table(ax, at_risk: pd.DataFrame, xlabel: str, xlim: tuple[float, float]) -> None:
    """The number-at-risk rows under a Kaplan-Meier plot (a hidden number is a grey X)."""
    check_columns(at_risk, ["time", "n_at_risk"], "number_at_risk")
    levels = _levels(at_risk, "group" if "group" in at_risk else None)
    hidden_any = False
    mark = "X"  # as the grey X of mark_suppressed: hidden, whether small or complementary
    for row, level in enumerate(levels):
        sub = at_risk if level is None else at_risk[at_risk["group"].astype(str) == level]
        hidden = (
            sub["suppressed"].fillna(False).astype(bool).to_numpy()
            if "suppressed" in sub
            else np.zeros(len(sub), dtype=bool)
        ) | sub["n_at_risk"].isna().to_numpy()
        low, high = xlim
        for t, n, h in zip(to_float_array(sub["time"]), sub["n_at_risk"], hidden, strict=True):
            if not low - 1e-9 <= t <= high + 1e-9:  # a column beyond the plotted days
                continue
            ax.text(t, row, mark if h else str(int(n)), ha="center", va="center", fontsize=8,
                    color="0.4" if h else "black", clip_on=False)  # fmt: skip
        hidden_any |= bool(hidden.any())
    ax.set_ylim(len(levels) - 0.5, -0.5)
    ax.set_yticks(
        range(len(levels)), ["All" if lv is None else _label(lv) for lv in levels], fontsize=8
    )
    ax.tick_params(axis="y", length=0, pad=16)  # clear of the numbers at day 0
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title("Number at risk", fontsize=9, loc="left")
    note = f"   ({mark}: {SUPPRESSED_LABEL})" if hidden_any else ""
    ax.set_xlabel(xlabel + note)


@renamed_arguments(hue="group")
def plot_effect_sizes(
    table: pd.DataFrame,
    *,
    group: str | None = "instrument",
    x: str = "visit",
    reference_lines: Sequence[float] = (0.2, 0.5, 0.8),
    human_labels: bool = True,
) -> Figure:
    """Effect sizes with their intervals over the visits (or another ``x``).

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.effect_sizes.effect_size_table` (``estimate, ci_low,
        ci_high`` and the ``x`` and ``group`` columns).
    group : str or None
        Column with one line per level (default ``"instrument"``).
    x : str
        Column on the x axis (default ``"visit"``, drawn in schedule order).
    reference_lines : sequence of float
        Dotted lines at these values and their negatives (Cohen's 0.2 small, 0.5
        medium, 0.8 large).
    human_labels : bool
        Visits, lines and axis titles from the label registry
        (:func:`analysis.formatting.label`: "Week 4", "GAD-7", "Instrument"; default) or
        the raw codes.

    Returns
    -------
    Figure
        One axes: estimates with error bars.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, [x, "estimate", "ci_low", "ci_high"], "effect_size_table")
    order = _visit_order(table[x]) if x == "visit" else _levels(table, x)
    lines = _levels(table, group)
    fig = ReportFigure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    _dodged_lines(ax, table, group, lines, x, order)
    for value in reference_lines:
        for sign in (1, -1):
            ax.axhline(sign * value, color="grey", linewidth=0.6, linestyle=":")
    ax.axhline(0, color="grey", linewidth=0.8)
    if human_labels:
        ax.set_xticks(range(len(order)), [_label(v, x) for v in order])
        ax.set(xlabel=_label(x, "column"), ylabel="Effect size (95% CI)")
    else:
        ax.set_xticks(range(len(order)), order)
        ax.set(xlabel=x.replace("_", " ").capitalize(), ylabel="Effect size (95% CI)")
    if group is not None:
        handles, names = ax.get_legend_handles_labels()
        if human_labels:
            names = [n if n == SUPPRESSED_LABEL else _label(n, group) for n in names]
        title = _label(group, "column") if human_labels else group
        _legend(ax, handles, names, title=title, fontsize="small")
    return fig


# --------------------------------------------------------------------------------------
# safety figures (tables of analysis.safety)


def _message_figure(table: pd.DataFrame) -> Figure:
    """A figure that says why there is nothing to draw (a table not collected, or empty)."""
    fig = ReportFigure(figsize=(8, 1.5), layout="constrained")
    ax = fig.subplots()
    missing = table.attrs.get("not_collected")
    text = f"{missing.replace('_', ' ')}: {NOT_COLLECTED}" if missing else "no data to show"
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    return fig


def _hue(table: pd.DataFrame, known: Sequence[str]) -> str | None:
    """The grouping column of a safety table: its first column not produced by us."""
    extra = [c for c in table.columns if c not in known]
    return extra[0] if extra else None


def plot_adverse_events(
    table: pd.DataFrame, *, terms: Sequence[str] | None = None, human_labels: bool = True
) -> Figure:
    """Horizontal bars of the percent of patients with each adverse event, by group.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.safety.adverse_event_table` (its first ``by`` column colours the bars);
        suppressed cells have no bar.
    terms : sequence of str, optional
        Terms to draw, in this order; default every term of the table.
    human_labels : bool
        Terms, groups and the legend title by their labels
        (:func:`analysis.formatting.label`: "Elevated blood pressure", "IV ketamine",
        "Route"); ``False`` draws the codes of the table.

    Returns
    -------
    Figure
        One axes: terms on y, percent of treated patients on x, from 0 (to 100 when no
        bar is longer than 0). A panel whose every cell is suppressed says so over its
        marks.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["term", "percent"], "adverse_event_table")
    if table.empty:
        return _message_figure(table)
    hue = _hue(table, _AE_COLUMNS)
    order = list(dict.fromkeys(table["term"])) if terms is None else list(terms)
    data = table[table["term"].isin(order)].assign(
        percent=pd.to_numeric(table["percent"], errors="coerce").astype(float)
    )
    if human_labels:
        data["term"] = [_label(t) for t in data["term"]]
        order = [_label(t) for t in order]
        if hue:
            data[hue] = [_label(v, hue) for v in data[hue]]
    bars = len(order) * (data[hue].nunique() if hue else 1)
    fig = ReportFigure(figsize=(8, min(12.0, max(3.0, 1.0 + 0.12 * bars))), layout="constrained")
    ax = fig.subplots()
    sns.barplot(data=data, y="term", x="percent", hue=hue, order=order, errorbar=None, ax=ax)
    # A suppressed cell is drawn as a marker with a legend entry, never as an empty bar
    # that reads as zero.
    levels: list[str | None] = list(dict.fromkeys(data[hue].astype(str))) if hue else [None]
    width = 0.8 / len(levels)
    hidden = data[data["percent"].isna()]
    ys = [
        order.index(t) - 0.4 + width * ((levels.index(str(h)) if hue else 0) + 0.5)
        for t, h in zip(hidden["term"], hidden[hue] if hue else hidden["term"], strict=True)
    ]
    mark_suppressed(ax, np.zeros(len(ys)), ys)
    if not (data["percent"] > 0).any():  # no bar: a percent axis, not one around 0
        ax.set_xlim(0, 100)
    else:
        ax.set_xlim(left=0)
    if len(data) and data["percent"].notna().sum() == 0:
        say_empty(ax)
    ax.set(xlabel="Patients with the event (% of treated)", ylabel="")
    if hue or len(ys):
        title = _label(hue, "column") if hue and human_labels else hue
        _legend(ax, title=title)
    return fig


def plot_blood_pressure(table: pd.DataFrame, *, human_labels: bool = True) -> Figure:
    """Mean rise in SBP and DBP (peak - pre) with its interval, by group.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.safety.blood_pressure_table` (its first ``by`` column is the x axis).
    human_labels : bool
        Groups and the axis title by their labels ("IV ketamine", "Route"); ``False``
        draws the codes of the table.

    Returns
    -------
    Figure
        One axes: groups on x, mean change (mmHg) with error bars, one colour per
        pressure.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["measure", "change_mean", "change_ci_low", "change_ci_high"], "bp")
    if table.empty:
        return _message_figure(table)
    x = _hue(table, _BP_COLUMNS)
    data = table[table["measure"].isin(["sbp", "dbp"])].reset_index(drop=True)
    labels = data[x].astype(str).to_numpy() if x else np.full(len(data), "all")
    levels = list(dict.fromkeys(labels))
    fig = ReportFigure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    for k, (measure, label) in enumerate((("sbp", "Systolic"), ("dbp", "Diastolic"))):
        rows = data["measure"].eq(measure).to_numpy()
        pos = np.array([levels.index(v) for v in labels[rows]]) + (k - 0.5) * 0.25
        mean = pd.to_numeric(data.loc[rows, "change_mean"]).astype(float).to_numpy()
        low = pd.to_numeric(data.loc[rows, "change_ci_low"]).astype(float).to_numpy()
        high = pd.to_numeric(data.loc[rows, "change_ci_high"]).astype(float).to_numpy()
        ax.errorbar(
            pos,
            mean,
            yerr=[mean - low, high - mean],
            fmt="o",
            capsize=4,
            label=label,
            color=f"C{k}",
        )
        mark_suppressed(ax, pos[np.isnan(mean)], np.zeros(int(np.isnan(mean).sum())))
    ax.axhline(0, color="grey", linewidth=0.8)
    ticks = [_label(v, x) if x and human_labels else str(v) for v in levels]
    ax.set_xticks(range(len(levels)), ticks)
    xlabel = (_label(x, "column") if human_labels else x) if x else ""
    ax.set(xlabel=xlabel, ylabel="Peak - pre-dose (mmHg), mean and 95% CI")
    _legend(ax)
    return fig


def plot_dissociation(
    table: pd.DataFrame, *, x: str | None = None, human_labels: bool = True
) -> Figure:
    """Median CADSS total with its interquartile range, by group (and over ``x``).

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.safety.dissociation_table`.
    x : str, optional
        A ``by`` column for the x axis (e.g. ``"session_number"``); the other ``by``
        column colours the lines. Default: the first ``by`` column on x.
    human_labels : bool
        Groups and axis and legend titles by their labels ("IV ketamine", "Session
        number"); ``False`` draws the codes of the table.

    Returns
    -------
    Figure
        One axes: median (points) and IQR (bars) of the CADSS total per session.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["median", "q1", "q3"], "dissociation_table")
    if table.empty:
        return _message_figure(table)
    groups = [c for c in table.columns if c not in _CADSS_COLUMNS]
    x = x if x is not None else (groups[0] if groups else None)
    hue = next((c for c in groups if c != x), None)
    fig = ReportFigure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    parts = table.groupby(hue, sort=False, dropna=False) if hue else [(None, table)]
    for k, (level, rows) in enumerate(parts):
        if x is None:
            xs = np.array(["all"])
        elif pd.api.types.is_numeric_dtype(rows[x].dtype):
            xs = pd.to_numeric(rows[x]).astype(float).to_numpy()
        else:
            codes = rows[x].astype(str)
            xs = np.array([_label(v, x) for v in codes] if human_labels else codes.to_numpy())
        med = pd.to_numeric(rows["median"]).astype(float).to_numpy()
        q1 = pd.to_numeric(rows["q1"]).astype(float).to_numpy()
        q3 = pd.to_numeric(rows["q3"]).astype(float).to_numpy()
        ax.errorbar(
            xs,
            med,
            yerr=[med - q1, q3 - med],
            fmt="o-" if hue else "o",
            capsize=3,
            color=f"C{k % 10}",
            label=None if level is None else _label(level, hue) if human_labels else str(level),
        )
        if pd.api.types.is_numeric_dtype(np.asarray(xs).dtype):
            mark_suppressed(ax, xs[np.isnan(med)], np.zeros(int(np.isnan(med).sum())))
    xlabel = (_label(x, "column") if human_labels else x) if x else ""
    ax.set(xlabel=xlabel, ylabel="CADSS total, median and IQR")
    if hue:
        _legend(ax, title=_label(hue, "column") if human_labels else hue)
    return fig


# --------------------------------------------------------------------------------------
# outcome figures of the publication reports


def _label(value, kind: str | None = None) -> str:
    from analysis.formatting import label

    return label(value, kind)


def plot_patient_flow(table: pd.DataFrame, *, instrument: str = "GAD7") -> Figure:
    """CONSORT-style flow of patients, one box per stage, arrows between them.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.patient_flow` (``stage, visit, patients,
        percent``).
    instrument : str
        The scale the flow follows (for the box texts).

    Returns
    -------
    Figure
        Boxes top to bottom: treated, with a baseline, with a post-baseline visit, then
        one row of boxes "observed at <visit>" (n and % of treated); a suppressed count
        reads "suppressed".
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["stage", "visit", "patients", "percent"], "patient_flow")
    name = _label(instrument, "instrument")
    texts = {
        "treated": "Treated with ketamine",
        "baseline": f"With a {name} baseline",
        "post_baseline": f"With a post-baseline {name}",
    }

    def count(row) -> str:
        if pd.isna(row.patients):
            return _SUPPRESSED
        return f"n = {int(row.patients)} ({float(row.percent):.1f}%)"

    main = table[table["stage"] != "visit"]
    visits = table[table["stage"] == "visit"]
    fig = ReportFigure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    ax.set(xlim=(0, 10), ylim=(0, 10))
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.5", "facecolor": "#eef3f8", "edgecolor": "#34495e"}
    ys = [9.0, 7.2, 5.4][: len(main)]
    for y, row in zip(ys, main.itertuples(index=False), strict=True):
        ax.text(
            5,
            y,
            f"{texts.get(str(row.stage), row.stage)}\n{count(row)}",
            ha="center",
            va="center",
            fontsize=10,
            bbox=box,
        )
    for upper, lower in zip(ys[:-1], ys[1:], strict=True):
        ax.annotate(
            "",
            xy=(5, lower + 0.65),
            xytext=(5, upper - 0.65),
            arrowprops={"arrowstyle": "->", "color": "#34495e"},
        )
    if len(visits):
        xs = np.linspace(0.9, 9.1, len(visits))
        for x, row in zip(xs, visits.itertuples(index=False), strict=True):
            ax.text(
                x,
                2.2,
                f"{_label(row.visit, 'visit')}\n{count(row).replace(' (', chr(10) + '(')}",
                ha="center",
                va="center",
                fontsize=9,
                bbox=box,
            )
            ax.annotate(
                "",
                xy=(x, 3.1),
                xytext=(5, ys[-1] - 0.65),
                arrowprops={"arrowstyle": "->", "color": "0.6"},
            )
        ax.text(
            5, 0.6, "Observed at each visit (% of treated)", ha="center", fontsize=9, color="0.3"
        )
    return fig


#: A waterfall draws one bar per patient only when every group it draws holds at least
#: this many times ``min_cell`` patients (55 with the default 11); a smaller group's
#: single bars could be told apart by people who know the patients (the one who got much
#: worse), so the figure then draws bands (see :func:`plot_waterfall`). A convention of
#: this package, not a published rule.
WATERFALL_BARS_FACTOR = 5


def _waterfall_bands(values: np.ndarray, size: int) -> list[np.ndarray]:
    """Sorted values (largest first) cut into consecutive bands of at least ``size``."""
    ordered = np.sort(values)[::-1]
    n_bands = max(1, len(ordered) // size)
    return [band for band in np.array_split(ordered, n_bands) if len(band)]


def plot_waterfall(
    endpoints: pd.DataFrame,
    *,
    instrument: str = "GAD7",
    visit: str = "week4",
    group: str | None = "route",
    min_cell: int | None = None,
    binned: bool | None = None,
) -> Figure:
    """Waterfall of each patient's percent change from baseline at one visit.

    Parameters
    ----------
    endpoints : DataFrame
        Endpoint rows (``instrument, visit, pct_change``, and ``group``).
    instrument, visit : str
        The scale and the visit (default GAD-7 at week 4, the primary visit).
    group : str or None
        Colour of the bars (default ``"route"``).
    min_cell : int, optional
        A group of fewer than ``min_cell`` patients is not drawn (its bars would show
        single patients), nor, as in Table 1, the next-smallest groups with it until the
        patients left out number at least ``min_cell`` (the groups add up to the patients
        drawn, a count the tables show: :func:`analysis.disclosure.hidden_levels`); the
        legend says "suppressed". So is, in a ``--by-site`` run, a group the report set's
        tables hide (:func:`analysis.disclosure.linked_hidden_levels`).
    binned : bool, optional
        ``False``: one bar per patient. ``True``: *bands*: each group's patients sorted
        by change and cut into consecutive bands of at least ``min_cell`` patients (11
        without ``min_cell``), each drawn as one bar as wide as its patients at the
        band's mean change, so no bar is a single patient. ``None`` (default): bands when
        ``min_cell`` is given and a group drawn (the whole cohort without ``group``) has
        fewer than ``WATERFALL_BARS_FACTOR * min_cell`` patients (55 by default), else
        one bar per patient.

    Returns
    -------
    Figure
        One bar per patient (or band) with an observed value, sorted from the largest
        worsening (left) to the largest improvement (right); dashed lines at -25%
        (partial response) and -50% (response).

    Examples
    --------
    >>> import pandas as pd
    >>> ep = pd.DataFrame({"instrument": "GAD7", "visit": "week4", "route": "iv",
    ...                    "pct_change": [-10.0 * k for k in range(30)]})
    >>> ax = plot_waterfall(ep, min_cell=11).axes[0]  # 30 < 55 patients: bands
    >>> [round(bar.get_width()) for bar in ax.patches]  # two bands of 15 patients
    [15, 15]
    >>> len(plot_waterfall(ep, min_cell=11, binned=False).axes[0].patches)
    30
    """
    check_columns(endpoints, ["instrument", "visit", "pct_change"], "endpoints")
    rows = endpoints[
        (endpoints["instrument"] == instrument).fillna(False).to_numpy(dtype=bool)
        & (endpoints["visit"].astype(str) == visit).to_numpy(dtype=bool)
    ]
    if "imputed" in rows.columns:
        rows = rows[~rows["imputed"].fillna(False).astype(bool).to_numpy()]
    rows = rows.assign(_y=to_float_array(rows["pct_change"]))
    rows = rows[np.isfinite(rows["_y"].to_numpy())]
    hidden: list[str] = []
    if group is not None and min_cell is not None:
        # The groups Table 1's rule hides: those under min_cell and, as the groups add up to
        # the patients drawn (a count the tables show), the next-smallest ones with them, so
        # that the patients left out are 0 or at least min_cell (disclosure.hidden_levels).
        # Patients without a group are not drawn; the rule counts them as a group too.
        from analysis.disclosure import hidden_levels

        hidden = sorted(hidden_levels(rows[group], min_cell))
        text = rows[group].astype("string")
        rows = rows[(text.notna() & ~text.isin(hidden)).to_numpy(dtype=bool)]
    if group is not None:  # a --by-site run: the groups its tables hide (linked decision)
        from analysis.disclosure import linked_hidden_levels, linked_level

        linked = linked_hidden_levels(group, instrument=instrument, visit=visit)
        drop = rows[group].map(linked_level).isin(linked).to_numpy(dtype=bool)
        hidden = sorted(set(hidden) | set(rows.loc[drop, group].astype(str).unique()))
        rows = rows[~drop]
    too_few = group is None and min_cell is not None and 0 < len(rows) < min_cell
    if too_few:  # one band of fewer than min_cell patients would show a small group
        rows = rows.iloc[:0]
    levels = _levels(rows, group) if len(rows) else []
    members = {
        level: rows["_y"].to_numpy()
        if level is None
        else rows.loc[rows[group].astype(str) == level, "_y"].to_numpy()
        for level in levels
    }
    if binned is None:
        smallest = min((len(v) for v in members.values()), default=0)
        binned = min_cell is not None and smallest < WATERFALL_BARS_FACTOR * min_cell
    band = int(min_cell) if min_cell else 11
    # (height, width, level) of every bar, sorted from the largest worsening
    bars = []
    for level, values in members.items():
        if binned:
            bars += [(float(b.mean()), len(b), level) for b in _waterfall_bands(values, band)]
        else:
            bars += [(float(v), 1, level) for v in values]
    bars.sort(key=lambda bar: -bar[0])
    fig = ReportFigure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    widths = np.array([b[1] for b in bars], dtype=float)
    lefts = np.concatenate([[0.0], np.cumsum(widths)[:-1]]) if len(bars) else np.array([])
    for k, level in enumerate(levels):
        mine = [j for j, b in enumerate(bars) if b[2] == level]
        ax.bar(
            lefts[mine] + widths[mine] / 2,
            [bars[j][0] for j in mine],
            width=widths[mine],
            color=f"C{k % 10}",
            edgecolor="white" if binned else "none",
            linewidth=0.8 if binned else 0,
            label=None if level is None else _label(level, group),
        )
    for level in hidden:
        ax.plot([], [], marker="X", linestyle="none", markersize=8, color="0.3",
                label=f"{_label(level, group)}: {_SUPPRESSED}")  # fmt: skip
    for y, text in ((-50, "response"), (-25, "partial response")):
        ax.axhline(y, color="0.3", linestyle="--", linewidth=0.8)
        ax.text(0, y - 1.5, f" {text}", va="top", fontsize=8, color="0.3")
    ax.axhline(0, color="0.3", linewidth=0.8)
    top = max((b[0] for b in bars), default=0.0)
    xlabel = f"Patients ({len(rows)}), sorted by change"
    if binned:
        xlabel = (
            f"Patients ({len(rows)}) in bands of at least {band}, sorted by change; "
            "each bar is a band's mean"
        )
    ax.set(
        xlabel=xlabel,
        ylabel="Change from baseline (%)",
        title=f"{_label(instrument, 'instrument')} at {_label(visit, 'visit')}",
        xticks=[],
        xlim=(0, max(1.0, float(widths.sum()))),
        ylim=(-105, max(105.0, top + 5)),
    )
    if group is not None and (levels or hidden):
        handles, names = ax.get_legend_handles_labels()  # the routes drawn, then those hidden
        order = sorted(range(len(names)), key=lambda j: names[j].endswith(f": {_SUPPRESSED}"))
        _legend(
            ax,
            [handles[j] for j in order],
            [names[j] for j in order],
            title=_label(group, "column"),
            fontsize="small",
        )
    if too_few:
        say_empty(ax)
    return fig


def plot_severity_transitions(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Stacked bars: severity band at the visit, for each severity band at baseline.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.severity_transitions` (``baseline_severity,
        severity, patients, percent``).
    title : str, optional
        Axes title.

    Returns
    -------
    Figure
        One bar per baseline band (100% = its patients seen at the visit), stacked by
        the band at the visit, mildest at the bottom; a suppressed segment is left out
        and the bar says "suppressed".
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(
        table, ["baseline_severity", "severity", "patients", "percent"], "severity_transitions"
    )
    bands = list(dict.fromkeys(table["severity"].astype(str)))
    baselines = list(dict.fromkeys(table["baseline_severity"].astype(str)))
    colours = sns.color_palette("RdYlGn_r", len(bands))
    fig = ReportFigure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(len(baselines))
    percent = table.assign(_p=to_float_array(table["percent"]))
    for colour, band in zip(colours, bands, strict=True):
        rows = percent[percent["severity"].astype(str) == band].set_index("baseline_severity")
        values = rows["_p"].reindex(baselines).to_numpy(dtype=float)
        heights = np.nan_to_num(values)
        ax.bar(
            range(len(baselines)),
            heights,
            bottom=bottom,
            color=colour,
            label=_label(band, "severity"),
            edgecolor="white",
        )
        for x, (h, b) in enumerate(zip(heights, bottom, strict=True)):
            if h >= 6:
                ax.text(x, b + h / 2, f"{h:.0f}%", ha="center", va="center", fontsize=8)
        bottom += heights
    suppressed = percent.groupby("baseline_severity", sort=False)["_p"].apply(
        lambda p: p.isna().any()
    )
    for x, base in enumerate(baselines):
        if suppressed.get(base, False):
            _mark_suppressed(ax, x, min(bottom[x], 100) + 1)
    labels = [_label(b, "severity") for b in baselines]
    ax.set_xticks(range(len(baselines)), labels)
    ax.set(xlabel="Severity at baseline", ylabel="Patients (% of the baseline band)", ylim=(0, 118))
    if title:
        ax.set_title(title)
    _legend(ax, title="Severity at the visit", fontsize="small")
    return fig


#: Characters in a forest plot's row label beyond which it takes two lines.
_FOREST_LABEL_WIDTH = 40


def plot_forest(
    table: pd.DataFrame, *, outcome: str = "response", title: str | None = None
) -> Figure:
    """Forest plot of risk differences (percentage points) with 95% CIs and adjusted p.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.subgroup_comparisons` (``subgroup, group,
        reference, risk_difference, rd_ci_low, rd_ci_high`` and ``p_adjusted`` or
        ``p_value``), or of :func:`analysis.compare_rates` (no ``subgroup``).
    outcome : str
        The outcome compared (axis label).
    title : str, optional
        Axes title.

    Returns
    -------
    Figure
        One row per comparison ("Primary diagnosis: PTSD vs GAD"; a label over 40
        characters on two lines, the second starting at "vs"), the difference as a
        square with its interval, a line at 0, and the (adjusted) p-value in a column
        right of the plot; a suppressed comparison reads "suppressed".
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(
        table, ["group", "reference", "risk_difference", "rd_ci_low", "rd_ci_high"], "compare_rates"
    )
    from analysis.formatting import format_p

    p_column = "p_adjusted" if "p_adjusted" in table.columns else "p_value"
    n = len(table)
    fig = ReportFigure(figsize=(9, 1.2 + 0.38 * max(n, 1)), layout="constrained")
    ax = fig.subplots()
    est = 100 * to_float_array(table["risk_difference"])
    low = 100 * to_float_array(table["rd_ci_low"])
    high = 100 * to_float_array(table["rd_ci_high"])
    ys = np.arange(n)[::-1]
    labels = []
    for row in table.itertuples(index=False):
        kind = getattr(row, "subgroup", None)
        text = f"{_label(row.group, kind)} vs {_label(row.reference, kind)}"
        label = f"{_label(kind, 'variable')}: {text}" if kind else text
        # a long label takes two lines, the comparison's reference on the second: on one
        # line the longest took most of the figure's width from the intervals
        if len(label) > _FOREST_LABEL_WIDTH:
            label = label.replace(" vs ", "\nvs ", 1)
        labels.append(label)
    shown = np.isfinite(est)
    ax.errorbar(
        est[shown],
        ys[shown],
        xerr=[est[shown] - low[shown], high[shown] - est[shown]],
        fmt="s",
        color="#34495e",
        capsize=3,
    )
    right = np.nanmax(np.abs(np.concatenate([low, high, [10.0]])))
    right = float(np.ceil(right / 10) * 10)
    # The p-values in a column right of the plotting area (x in axes units, y in rows), so
    # neither an interval nor the frame runs through them; the layout makes room for them.
    beside = ax.get_yaxis_transform()
    for y, ok, p in zip(ys, shown, table.get(p_column, pd.Series([np.nan] * n)), strict=True):
        if not ok:
            _mark_suppressed(ax, 0, y, centered=True)
        else:
            ax.text(1.03, y, format_p(p), va="center", fontsize=8, transform=beside)
    ax.text(
        1.03,
        1.0,
        "adj. p" if p_column == "p_adjusted" else "p",
        va="bottom",
        fontsize=8,
        fontweight="bold",
        transform=ax.transAxes,
    )
    ax.axvline(0, color="0.4", linewidth=0.8)
    ax.set_yticks(ys, labels)
    ax.set(
        xlim=(-right, right),
        ylim=(-0.7, n - 0.1),
        xlabel=f"{_label(outcome, 'outcome')}: risk difference, % points (95% CI)",
    )
    if title:
        ax.set_title(title)
    return fig


def plot_mean_trajectories(
    table: pd.DataFrame,
    *,
    group: str | None = "route",
    col: str | None = "instrument",
    ylabel: str = "Mean score (95% CI)",
) -> Figure:
    """Mean score over the visits with a shaded 95% CI band, one line per group.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.mean_scores` (``visit, mean, ci_low, ci_high``
        and the ``group``/``col`` columns).
    group : str or None
        One line per level (default ``"route"``).
    col : str or None
        One panel per level (default ``"instrument"``), each with its own y axis.
    ylabel : str
        Label of the y axis.

    Returns
    -------
    Figure
        Visits on x in schedule order; a suppressed cell breaks its line and is marked.
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, ["visit", "mean", "ci_low", "ci_high"], "mean_scores")
    visits = _visit_order(table["visit"])
    panels = _levels(table, col)
    lines = _levels(table, group)
    fig = ReportFigure(figsize=(6.0 * len(panels) + 1, 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        rows = table if panel is None else table[table[col].astype(str) == panel]
        for k, line in enumerate(lines):
            sub = rows if line is None else rows[rows[group].astype(str) == line]
            x = sub["visit"].astype(str).map(visits.index).to_numpy(dtype=float)
            order = np.argsort(x)
            x, sub = x[order], sub.iloc[order]
            mean = to_float_array(sub["mean"])
            colour = f"C{k % 10}"
            ax.plot(
                x, mean, "o-", color=colour, label=None if line is None else _label(line, group)
            )
            ax.fill_between(
                x,
                to_float_array(sub["ci_low"]),
                to_float_array(sub["ci_high"]),
                color=colour,
                alpha=0.15,
            )
            for xi in x[~np.isfinite(mean)]:
                _mark_suppressed(ax, xi, np.nanmin(to_float_array(rows["ci_low"])))
        ax.set_xticks(range(len(visits)), [_label(v, "visit") for v in visits])
        ax.set(title=_label(panel, "instrument") if panel else "", xlabel="Visit")
        ax.set_ylabel(ylabel)
    if group is not None:
        _legend(axes[-1], title=_label(group, "column"), fontsize="small")
    return fig


@renamed_arguments(hue="group")
def plot_exposure_response(
    table: pd.DataFrame,
    x: str,
    *,
    group: str | None = "outcome",
    xlabel: str | None = None,
    ylabel: str = "Patients (%) with 95% CI",
    title: str | None = None,
) -> Figure:
    """Rates (with intervals) across ordered exposure groups: dose, sessions, phase.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`analysis.tables.outcome_rates` or :func:`analysis.rate_table`
        with ``x`` among its ``by`` columns (rates on the 0-1 scale).
    x : str
        The exposure column (e.g. ``"dose_band"``, ``"sessions_band"``,
        ``"maintenance"``), drawn in table order.
    group : str or None
        One line per level (default ``"outcome"``: response and anxiety worsening).
    xlabel, ylabel, title : str, optional
        Labels.

    Returns
    -------
    Figure
        Percent (0-100) on y; a suppressed cell is a grey "X" at 0 labelled
        "suppressed".
    """
    table = _linked(table)  # a --by-site run's linked decision
    check_columns(table, [x, "rate", "ci_low", "ci_high"], "rate_table")
    table = table[table[x].notna().to_numpy()]
    if isinstance(table[x].dtype, pd.CategoricalDtype):
        present = set(table[x].astype(str))
        order = [str(c) for c in table[x].cat.categories if str(c) in present]
    else:
        order = list(dict.fromkeys(table[x].astype(str)))
    lines = _levels(table, group)
    fig = ReportFigure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    _dodged_lines(ax, table, group, lines, x, order, value="rate", scale=100)
    width = 0.3 / max(1, len(lines))
    for k, line in enumerate(lines):
        sub = table if line is None else table[table[group].astype(str) == line]
        for value, rate in zip(sub[x].astype(str), to_float_array(sub["rate"]), strict=True):
            if not np.isfinite(rate):
                _mark_suppressed(ax, order.index(value) + (k - (len(lines) - 1) / 2) * width, 4)
    handles, labels = ax.get_legend_handles_labels()
    ax.set_xticks(
        range(len(order)),
        [
            _label(v) if v not in ("True", "False") else ("Yes" if v == "True" else "No")
            for v in order
        ],
    )
    # a category's width on each side, as a categorical axis has: the "suppressed" labels
    # of the first and last categories stay inside the frame
    ax.set(
        xlabel=xlabel or _label(x, "column"),
        ylabel=ylabel,
        xlim=(-0.5, len(order) - 0.5),
        ylim=(0, 100),
    )
    if title:
        ax.set_title(title)
    if group is not None:
        _legend(ax, handles, [_label(v, group) for v in labels], fontsize="small")
    return fig
