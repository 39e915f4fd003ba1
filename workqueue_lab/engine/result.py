"""What a run recorded, and the questions a notebook asks of it (every answer comes from ``events``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..record import events as ev
from .scenario import Scenario

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class RunResult:
    """What a run recorded: every check and view reads ``events``."""

    events: list[ev.Event]
    scenario: Scenario
    outputs: dict[int, str] = field(default_factory=dict)
    samples: list[tuple[float, int, int | None]] = field(default_factory=list)
    timed_out: bool = False
    queue: str = ""
    t0: float | None = None  # time.monotonic() at the log's start: event times are relative to it

    def tasks_by_worker(self) -> dict[int, list[int]]:
        """Which tasks each worker completed, e.g. {1: [1, 3], 2: [2, 4]}."""
        return ev.tasks_by_worker(self.events)

    def attempts(self) -> list[ev.Attempt]:
        return ev.attempts(self.events)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)

    def of_kind(self, *kinds: str) -> list[ev.Event]:
        return [e for e in self.events if e.kind in kinds]

    @property
    def published(self) -> list[int]:
        return ev.published(self.events)

    @property
    def completed(self) -> set[int]:
        return set(ev.completed(self.events))

    @property
    def lost(self) -> list[int]:
        return [e.task for e in self.events if e.kind == ev.LOST]

    @property
    def duplicates(self) -> int:
        """Completions beyond the first per task (a crash after work, before the ack)."""
        return sum(n - 1 for n in ev.completed(self.events).values())

    @property
    def redelivered(self) -> list[int]:
        return [e.task for e in self.events if e.kind == ev.DELIVER and e.redelivered]

    def makespan(self) -> float:
        return ev.makespan(self.events)

    def timeline(self, title: str | None = None) -> Figure:
        from ..views.timeline import plot_timeline

        return plot_timeline(self.events, title=title)

    def table(self):
        from ..views.tables import summary_table

        return summary_table(self.events)

    def show_output(self) -> None:
        """Print what each worker printed, from the main thread, worker by worker."""
        for worker, text in sorted(self.outputs.items()):
            print(f"--- worker {worker} ---")
            print(text or "(nothing printed)")
