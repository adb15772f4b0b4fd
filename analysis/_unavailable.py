"""The value of a report section that the data cannot support: :class:`NotAvailable`.

A small module of its own because the table builders (:mod:`analysis.tables`,
:mod:`analysis.formatting`) pass it on and :mod:`analysis.report_sections` makes it:
both import it from here, so neither imports the other. Its documented home,
``analysis.report_sections.NotAvailable``, is the same class.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NotAvailable"]


@dataclass(frozen=True)
class NotAvailable:
    """A report section that these data cannot support, and why (one sentence).

    Shown in a notebook as a short italic note; :func:`analysis.reports.save_table` does
    not write it, and :func:`analysis.report_sections.section` passes it on, so a section
    fed by an unavailable one is unavailable for the same reason.

    Examples
    --------
    >>> NotAvailable("Comparison of routes", "only one route (iv) in these data")
    NotAvailable: Comparison of routes: not available; only one route (iv) in these data.
    """

    title: str
    reason: str

    def __str__(self) -> str:
        return f"{self.title}: not available; {self.reason}."

    def __repr__(self) -> str:
        return f"NotAvailable: {self}"

    def _repr_markdown_(self) -> str:
        return f"*{self}*"

    def query(self, *args, **kwargs) -> NotAvailable:
        """Rows of an unavailable table are unavailable too (``table.query(...)`` chains)."""
        return self
