"""A prediction locked before the experiment it predicts: what the learner wrote, and when.

A prediction is only worth something if it was made before the answer could be seen.  An exercise
locks it in a cell of its own (``lock``), before the cell that runs the experiment; the check then
judges the locked values, and refuses ones locked after the experiment started.
"""

from __future__ import annotations

import copy
import html
import time
from dataclasses import dataclass

__all__ = ["Locked", "lock"]


@dataclass(frozen=True)
class Locked:
    """The values a learner predicted (a deep copy, so editing the originals later changes nothing) and the
    moment (``time.monotonic()``) they were locked; ``empty`` when nothing was predicted."""

    values: tuple
    at: float

    @property
    def empty(self) -> bool:
        return all(v is None for v in self.values)

    def before(self, t: float | None) -> bool:
        """Locked before monotonic time ``t`` (when unknown, assume so)."""
        return t is None or self.at < t

    def __str__(self) -> str:
        if self.empty:
            return ("No prediction locked: the check will have nothing to judge. Write your prediction in the "
                    "exercise cell, run it, then run this cell again, before the experiment.")
        shown = ", ".join(repr(v) for v in self.values)
        return f"🔒 Prediction locked: {shown}. Changing it from now on changes nothing: the check reads this."

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#555" if not self.empty else "#b3261e"
        return f"<div style='border-left:4px solid {colour};padding:0.3em 0.8em'>{html.escape(str(self))}</div>"


def lock(*values: object) -> Locked:
    """Freeze ``values`` as they are now (a deep copy) with the current monotonic time."""
    return Locked(tuple(copy.deepcopy(v) for v in values), time.monotonic())
