"""One exception type for everything a learner can fix, shown as one sentence."""

from __future__ import annotations


class LabError(Exception):
    """A problem the learner can fix; the message names the fix.

    In Jupyter, IPython calls ``_render_traceback_`` instead of printing the
    stack, so the learner sees one line, not a wall of frames.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mLabError\x1b[0m: {self}"]


class BrokerUnavailable(LabError):
    """No RabbitMQ could be reached or started."""
