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
DROPPED = "dropped"  # nacked/rejected with requeue=False (discarded or dead-lettered), or parked
LOST = "lost"  # recorded at the end of a run: published, never completed, in no queue
STATES = (PENDING, RUNNING, DONE, RETRYING, DROPPED, LOST)
# States after which a task needs nothing more from the run.
FINAL = (DONE, DROPPED, LOST)
_FINAL = frozenset(FINAL)


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
        self.completions: dict[int | None, int] = {}  # settled attempts per task (None: task unknown)
        self.done_by_worker: dict[int, int] = {}  # settled attempts per worker
        self.redelivered = 0
        self.crashes = 0
        self.nacked = 0  # attempts that ended in a nack or reject
        self._final = 0  # tasks in a FINAL state
        self._completed = 0  # see ``completed``
        self._running_on: dict[int, int] = {}  # task -> worker whose callback last started it
        self._retrying: set[int] = set()

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
        """Take one more event.  Runs once per event while a run waits: the common kinds come first, inlined."""
        kind = e.kind
        task = e.task
        if kind == ev.DELIVER:
            self.open[(e.worker, e.tag)] = e
            if task is not None:
                if self.states.get(task) in _FINAL:  # a task already done comes again (e.g. after a late ack)
                    self._final -= 1
                self.states[task] = RUNNING
                self._running_on[task] = e.worker
                if self._retrying:
                    self._retrying.discard(task)
            if e.redelivered:
                self.redelivered += 1
        elif (kind == ev.ACK or kind == ev.DONE) and e.detail != "multiple" and e.worker is not None:
            key = (e.worker, e.tag)
            start = self.open.pop(key, None)
            if start is not None:
                if kind == ev.ACK:
                    self._acked[key] = start
                self._settle(start)
        elif kind == ev.PUBLISH:
            if task is not None and task not in self.states:
                self.states[task] = PENDING
        elif kind == ev.RETRY or kind == ev.RETRY_WAIT:  # republished, or waiting out a retry queue's TTL
            if task is not None:
                self._retrying.add(task)
                self._set(task, RETRYING)
        elif kind == ev.PARKED:  # in the parking lot for a human: this run is done with it
            if task is not None:
                self._retrying.discard(task)
                self._set(task, DROPPED)
        elif kind == ev.LOST:
            if task is not None:
                self._set(task, LOST)
        elif e.worker is not None and (kind in ev.ATTEMPT_ENDS or kind == ev.RECONNECT):
            if kind == ev.CRASH:
                self.crashes += 1
            self._end(e, e.worker, kind)

    def closed(self, start: ev.Event, end: ev.Event) -> None:
        task, kind = start.task, end.kind
        if kind in ev.SETTLED:
            self._settle(start)
        elif kind in (ev.NACK, ev.REJECT):
            self.nacked += 1
            if task is not None:
                self._set(task, PENDING if end.requeue else RETRYING if task in self._retrying else DROPPED)
        elif task is not None and self.states.get(task) == RUNNING and self._running_on.get(task) == start.worker:
            self._set(task, PENDING)  # crash, timeout, reconnect: the broker gives it to a worker again

    def _settle(self, start: ev.Event) -> None:
        task, worker = start.task, start.worker
        n = self.completions.get(task, 0)
        self.completions[task] = n + 1
        if n == 0 or task is None:
            self._completed += 1
        self.done_by_worker[worker] = self.done_by_worker.get(worker, 0) + 1
        if task is not None:
            self._set(task, RETRYING if task in self._retrying else DONE)

    def unacked(self, start: ev.Event, timeout: ev.Event) -> None:
        task = start.task
        self.completions[task] -= 1
        if task is None or not self.completions[task]:
            self._completed -= 1
        self.done_by_worker[start.worker] -= 1
        if task is not None and self.states.get(task) == DONE and not self.completions[task]:
            self._set(task, PENDING)  # the broker ignored the late ack and requeued the message

    def _set(self, task: int, state: str) -> None:
        old = self.states.get(task)
        self.states[task] = state
        self._final += (state in _FINAL) - (old in _FINAL)

    # --- answers ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, e.g. {"pending": 4, "running": 1, "done": 3, ...}."""
        counts = dict.fromkeys(STATES, 0)
        for state in self.states.values():
            counts[state] += 1
        return counts

    @property
    def completed(self) -> int:
        """Distinct tasks completed at least once (completions of messages the run does not know count one each)."""
        return self._completed

    @property
    def open_attempts(self) -> int:
        """Deliveries whose callback has not acked, nacked or rejected them yet, on a channel still open."""
        return len(self.open)

    def settled(self, total: int) -> bool:
        """True once at least ``total`` tasks are known and every one is done, dropped or lost."""
        return self._final >= total and self._final == len(self.states) and self._final > 0

    def extra(self) -> dict[str, int]:
        """The counts the progress line shows next to "tasks done"."""
        return {"redelivered": self.redelivered, "nacked": self.nacked, "crashed": self.crashes}


def task_states(events: Iterable[ev.Event]) -> dict[int, str]:
    """Per task: pending | running | done | retrying | dropped (rejected without requeue) | lost."""
    state = RunState()
    for e in events:
        state.add(e)
    return state.states
