"""The one answer every self-check gives: a ``Check``.

A check is a pure function of what a run recorded (its events, the tasks it published, who did
what); it returns a ``Check`` that says what was expected, what happened and, when the two
differ, *why* and what to change.  A ``Check`` is truthy exactly when it passed, so a notebook's
self-check cell can ``assert check`` (or ``assert check.passed``), and it shows itself as one
block: ``print(check)`` in plain Python, a coloured box in a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...record import events as ev

PASS, FAIL = "✓", "✗"
_COLOURS = {True: "#2e7d32", False: "#b3261e"}


@dataclass(frozen=True, repr=False)
class Check:
    """The outcome of one self-check.

    ``name`` says what was checked, ``expected`` and ``got`` what should have happened and what
    did, ``hint`` why they differ and what to change (empty when passed).  ``runs`` keeps the
    runs a check made itself (label -> result), so a notebook can draw them.
    """

    name: str
    passed: bool
    expected: object = None
    got: object = None
    hint: str = ""
    runs: Mapping[str, object] = field(default_factory=dict, compare=False)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def mark(self) -> str:
        return PASS if self.passed else FAIL

    def _rows(self) -> list[tuple[str, str]]:
        rows = []
        if self.expected is not None:
            rows.append(("expected", _show(self.expected)))
        if self.got is not None:
            rows.append(("got", _show(self.got)))
        if self.hint:
            rows.append(("why", self.hint))
        return rows

    def __str__(self) -> str:
        lines = [f"{self.mark} {self.name}"]
        for label, text in self._rows():
            first, *rest = text.splitlines() or [""]
            lines.append(f"  {label + ':':<9} {first}")
            lines.extend(f"  {'':<9} {line}" for line in rest)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.passed]
        rows = "".join(
            f"<tr><th style='text-align:left;vertical-align:top;padding-right:1em'>{label}</th>"
            f"<td style='text-align:left;white-space:pre-wrap'>{html.escape(text)}</td></tr>"
            for label, text in self._rows()
        )
        return (f"<div style='border-left:4px solid {colour};padding:0.3em 0.8em;margin:0.3em 0'>"
                f"<div style='color:{colour};font-weight:bold'>{self.mark} {html.escape(self.name)}</div>"
                f"<table style='margin:0'>{rows}</table></div>")


def verdict(name: str, expected: object = None, got: object = None, hint: str = "",
            runs: Mapping[str, object] | None = None) -> Check:
    """Build a Check: it passes exactly when there is no hint, i.e. when nothing went wrong to explain."""
    return Check(name, not hint, expected, got, hint, dict(runs or {}))


def _show(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def events_of(result: object) -> list[ev.Event] | None:
    """The events of a run result, an event log or a list of events; None for anything else."""
    if result is None:
        return None
    events = getattr(result, "events", result)
    if isinstance(events, (list, tuple)) and all(isinstance(e, ev.Event) for e in events):
        return list(events)
    return None


def not_a_run(name: str, result: object, what: str) -> Check:
    """The Check for a self-check cell run before the learner has a result (or with the wrong thing)."""
    if result is None:
        return verdict(name, got="nothing yet", hint=f"Nothing to check yet: {what}")
    return verdict(name, got=type(result).__name__,
                   hint=f"Expected the result of lab.run(...), got a {type(result).__name__}: {what}")
