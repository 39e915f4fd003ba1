"""The event log: the single record of what happened in a lab run.

Every view (timeline, summary, progress) and every check a notebook makes
reads only this module's data.  It imports nothing else of the lab.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Event kinds.  Strings, so a table of events reads well without a lookup.
PUBLISH = "publish"  # producer published a task
READY = "ready"  # a worker's consumer is registered with the broker
DELIVER = "deliver"  # the learner's callback started on a message
ACK = "ack"  # basic_ack
NACK = "nack"  # basic_nack (requeue in .requeue)
REJECT = "reject"  # basic_reject (requeue in .requeue)
DONE = "done"  # callback returned normally on an auto-ack channel
ERROR = "error"  # an exception was raised inside the task (fault or poison)
CRASH = "crash"  # the worker died mid-task: connection dropped, no ack
TIMEOUT = "timeout"  # the broker closed the channel (e.g. ack timeout)
RETRY = "retry"  # the callback republished the message (e.g. to a retry queue)
DEAD_LETTER = "dead_letter"  # the message arrived in a dead-letter queue
RESTART = "restart"  # a crashed worker came back with a new connection
RECONNECT = "reconnect"  # a worker lost the broker and is reconnecting
STOP = "stop"  # a worker stopped cleanly
LOST = "lost"  # computed at the end: published, never completed, not in a queue

KINDS = (
    PUBLISH, READY, DELIVER, ACK, NACK, REJECT, DONE, ERROR, CRASH, TIMEOUT,
    RETRY, DEAD_LETTER, RESTART, RECONNECT, STOP, LOST,
)
# Events that end one attempt at a task (one bar on the timeline).
ATTEMPT_ENDS = (ACK, NACK, REJECT, DONE, CRASH, TIMEOUT)
# Outcomes after which a task needs nothing more from the lab.
SETTLED = (ACK, DONE)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, with a monotonic timestamp relative to the log start."""

    t: float
    kind: str
    worker: int | None = None  # 1-based worker id; None for the producer
    task: int | None = None  # 1-based task id (publish order); None if unknown
    tag: int | None = None  # delivery tag on the worker's current channel
    redelivered: bool = False
    requeue: bool | None = None  # for nack / reject
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One worker's attempt at one task: from callback start to its outcome."""

    worker: int
    task: int | None
    start: float
    end: float | None  # None while still running
    outcome: str  # an ATTEMPT_ENDS kind, or "open"
    redelivered: bool
    requeue: bool | None = None

    @property
    def duration(self) -> float:
        return 0.0 if self.end is None else self.end - self.start


class EventLog:
    """Thread-safe, append-only list of events with a memory bound.

    Past ``max_events`` further events are counted in ``dropped`` but not
    kept, so a runaway experiment cannot exhaust the kernel's memory.
    """

    def __init__(self, max_events: int = 1_000_000, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.max_events = max_events
        self.dropped = 0
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def record(self, kind: str, worker: int | None = None, task: int | None = None, **fields) -> Event:
        """Append an event stamped now; safe from any thread."""
        event = Event(time.monotonic() - self.t0, kind, worker, task, **fields)
        with self._lock:
            if len(self._events) < self.max_events:
                self._events.append(event)
            else:
                self.dropped += 1
            self._changed.notify_all()
        return event

    def extend(self, events: Iterable[Event]) -> None:
        """Append ready-made events (used by the model and by tests)."""
        with self._lock:
            self._events.extend(events)
            self._changed.notify_all()

    def wait_for_change(self, timeout: float) -> None:
        """Block until another event is recorded or ``timeout`` seconds pass."""
        with self._lock:
            self._changed.wait(timeout)

    @property
    def events(self) -> list[Event]:
        """A snapshot copy; later events do not change it."""
        with self._lock:
            return list(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)


# --- pure functions over a list of events (views and checks use these) ---


def attempts(events: Iterable[Event]) -> list[Attempt]:
    """Pair each DELIVER with the event that ended it, per worker and delivery tag.

    A CRASH or TIMEOUT ends every attempt still open on that worker, because
    the broker takes back everything unacknowledged on the closed channel.
    """
    open_: dict[tuple[int, int | None], Event] = {}
    out: list[Attempt] = []
    acked_at: dict[tuple[int, int | None], int] = {}  # index in out of the last ACK per (worker, tag)

    def close(start: Event, end: Event) -> None:
        if end.kind == ACK:
            acked_at[(start.worker, start.tag)] = len(out)
        out.append(Attempt(start.worker, start.task, start.t, end.t, end.kind,
                           start.redelivered, end.requeue))

    for e in events:
        if e.worker is None:
            continue
        if e.kind == DELIVER:
            open_[(e.worker, e.tag)] = e
        elif e.kind in (CRASH, TIMEOUT):
            if e.kind == TIMEOUT and (e.worker, e.tag) in acked_at and (e.worker, e.tag) not in open_:
                # the ack came after the broker had closed the channel: it did not count
                i = acked_at.pop((e.worker, e.tag))
                a = out[i]
                out[i] = Attempt(a.worker, a.task, a.start, e.t, TIMEOUT, a.redelivered)
            for key in [k for k in open_ if k[0] == e.worker]:
                close(open_.pop(key), e)
        elif e.kind in ATTEMPT_ENDS:
            if e.detail == "multiple":  # basic_ack(multiple=True): all tags up to this one
                keys = [k for k in open_ if k[0] == e.worker and (k[1] or 0) <= (e.tag or 0)]
            else:
                keys = [(e.worker, e.tag)] if (e.worker, e.tag) in open_ else []
            for key in keys:
                close(open_.pop(key), e)
    for start in open_.values():
        out.append(Attempt(start.worker, start.task, start.t, None, "open", start.redelivered))
    out.sort(key=lambda a: (a.start, a.worker))
    return out


def tasks_by_worker(events: Iterable[Event], outcome: tuple[str, ...] = SETTLED) -> dict[int, list[int]]:
    """Which tasks each worker completed, in the order it completed them."""
    result: dict[int, list[int]] = defaultdict(list)
    for a in attempts(events):
        if a.outcome in outcome and a.task is not None:
            result[a.worker].append(a.task)
    return dict(sorted(result.items()))


def published(events: Iterable[Event]) -> list[int]:
    return [e.task for e in events if e.kind == PUBLISH and e.task is not None]


def completed(events: Iterable[Event]) -> Counter:
    """How many times each task was completed (more than once means a duplicate)."""
    return Counter(a.task for a in attempts(events) if a.outcome in SETTLED and a.task is not None)


def summary(events: Iterable[Event]) -> dict[int, dict[str, float]]:
    """Per worker: tasks done, attempts, busy and idle seconds, redeliveries, failures."""
    events = list(events)
    atts = attempts(events)
    end = max((e.t for e in events), default=0.0)
    start = min((e.t for e in events if e.kind == PUBLISH), default=0.0)
    rows: dict[int, dict[str, float]] = {}
    workers = sorted({e.worker for e in events if e.worker is not None})
    for w in workers:
        mine = [a for a in atts if a.worker == w]
        busy = sum((a.end if a.end is not None else end) - a.start for a in mine)
        rows[w] = {
            "done": sum(a.outcome in SETTLED for a in mine),
            "attempts": len(mine),
            "busy_s": round(busy, 3),
            "idle_s": round(max(0.0, end - start - busy), 3),
            "redelivered": sum(a.redelivered for a in mine),
            "nacked": sum(a.outcome in (NACK, REJECT) for a in mine),
            "crashes": sum(1 for e in events if e.worker == w and e.kind == CRASH),
        }
    return rows


def makespan(events: Iterable[Event]) -> float:
    """Seconds from the first publish to the last completed task."""
    events = list(events)
    first = min((e.t for e in events if e.kind == PUBLISH), default=None)
    last = max((a.end for a in attempts(events) if a.outcome in SETTLED and a.end is not None),
               default=None)
    if first is None or last is None:
        return 0.0
    return last - first
