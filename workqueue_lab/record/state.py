"""A run's state, computed from its event log once: per-task states, progress counts, completion.

``RunState`` reads a log incrementally (it remembers how far it has read, so each update
costs O(new events)); ``Run.wait``, the progress line and the panel all ask it.
``task_states(events)`` is the same answer for a finished list of events.
Pairs deliveries with outcomes through ``events.Pairing``; imports nothing else of the lab.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import events as ev

# Per-task states.
PENDING = "pending"  # published (or given back to the queue), not being worked on
RUNNING = "running"  # a worker's callback has it and has not acked, nacked or rejected it yet
DONE = "done"  # acked (or returned on an auto-ack channel)
RETRYING = "retrying"  # the callback republished it (e.g. to a retry queue) and settled the original
DROPPED = "dropped"  # nacked or rejected with requeue=False: the broker discarded (or dead-lettered) it
LOST = "lost"  # recorded at the end of a run: published, never completed, in no queue
STATES = (PENDING, RUNNING, DONE, RETRYING, DROPPED, LOST)
# States after which a task needs nothing more from the run.
FINAL = (DONE, DROPPED, LOST)


class RunState(ev.Pairing):
    """Everything the lab derives from a run's events while it runs, updated with ``feed``.

        state = RunState()
        state.feed(log)             # an EventLog (reads only what is new) or a list of events
        state.counts()              # {"done": 3, "running": 1, "pending": 4, ...}
        state.settled(total=8)      # every task done, dropped or lost?
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0  # events read so far
        self.last_t = 0.0  # time of the latest event read
        self.states: dict[int, str] = {}
        self._count = dict.fromkeys(STATES, 0)
        self._running_on: dict[int, int] = {}  # task -> worker whose callback last started it
        self._retrying: set[int] = set()
        self.completions: dict[int | None, int] = {}  # settled attempts per task (None: task unknown)
        self.done_by_worker: dict[int, int] = {}  # settled attempts per worker
        self.redelivered = 0
        self.crashes = 0
        self.nacked = 0  # attempts that ended in a nack or reject

    # --- reading ---------------------------------------------------------------------------
    def feed(self, events: ev.EventLog | Sequence[ev.Event]) -> RunState:
        """Read the events after the ones already read (``events`` grows; it is never a different run's)."""
        new = events.since(self.seen) if isinstance(events, ev.EventLog) else events[self.seen:]
        add = self.add
        for e in new:
            add(e)
        self.seen += len(new)
        if new:
            self.last_t = new[-1].t
        return self

    def add(self, e: ev.Event) -> None:
        kind = e.kind
        task = e.task
        if kind == ev.DELIVER:
            self.open[(e.worker, e.tag)] = e
            if task is not None:
                self._set(task, RUNNING)
                self._running_on[task] = e.worker
                self._retrying.discard(task)
            if e.redelivered:
                self.redelivered += 1
            return
        if kind == ev.PUBLISH:
            if task is not None and task not in self.states:
                self._set(task, PENDING)
            return
        if kind == ev.RETRY:
            if task is not None:
                self._retrying.add(task)
                self._set(task, RETRYING)
            return
        if kind == ev.LOST:
            if task is not None:
                self._set(task, LOST)
            return
        if kind == ev.CRASH:
            self.crashes += 1
        if e.worker is not None and (kind in ev.ATTEMPT_ENDS or kind == ev.RECONNECT):
            self._end(e, e.worker, kind)

    def closed(self, start: ev.Event, end: ev.Event) -> None:
        task, kind = start.task, end.kind
        if kind in ev.SETTLED:
            self.completions[task] = self.completions.get(task, 0) + 1
            self.done_by_worker[start.worker] = self.done_by_worker.get(start.worker, 0) + 1
            if task is not None:
                self._set(task, RETRYING if task in self._retrying else DONE)
        elif kind in (ev.NACK, ev.REJECT):
            self.nacked += 1
            if task is not None:
                self._set(task, PENDING if end.requeue else RETRYING if task in self._retrying else DROPPED)
        elif task is not None and self.states.get(task) == RUNNING and self._running_on.get(task) == start.worker:
            self._set(task, PENDING)  # crash, timeout, reconnect: the broker gives it to a worker again

    def unacked(self, start: ev.Event, timeout: ev.Event) -> None:
        task = start.task
        self.completions[task] -= 1
        self.done_by_worker[start.worker] -= 1
        if task is not None and self.states.get(task) == DONE and not self.completions[task]:
            self._set(task, PENDING)  # the broker ignored the late ack and requeued the message

    def _set(self, task: int, state: str) -> None:
        old = self.states.get(task)
        if old is not None:
            self._count[old] -= 1
        self.states[task] = state
        self._count[state] += 1

    # --- answers ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, e.g. {"done": 3, "running": 1, "pending": 4, ...}."""
        return dict(self._count)

    @property
    def completed(self) -> int:
        """Distinct tasks completed at least once (completions of messages the run does not know count one each)."""
        known = sum(1 for task, n in self.completions.items() if task is not None and n > 0)
        return known + self.completions.get(None, 0)

    @property
    def open_attempts(self) -> int:
        """Deliveries whose callback has not acked, nacked or rejected them yet, on a channel still open."""
        return len(self.open)

    def settled(self, total: int) -> bool:
        """True once at least ``total`` tasks are known and every one is done, dropped or lost."""
        c = self._count
        final = c[DONE] + c[DROPPED] + c[LOST]
        return final >= total and final == len(self.states) and final > 0

    def extra(self) -> dict[str, int]:
        """The counts the progress line shows next to "tasks done"."""
        return {"redelivered": self.redelivered, "nacked": self.nacked, "crashed": self.crashes}


def task_states(events: Iterable[ev.Event]) -> dict[int, str]:
    """Per task: pending | running | done | retrying | dropped (rejected without requeue) | lost."""
    state = RunState()
    for e in events:
        state.add(e)
    return state.states
