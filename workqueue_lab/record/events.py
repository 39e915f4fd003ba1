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
PARKED = "parked"  # the message arrived in a parking-lot queue (waits for a person)
RETRY_WAIT = "retry_wait"  # the message arrived in a retry queue (waits out its TTL, then comes back)
RESTART = "restart"  # a crashed worker came back with a new connection
RECONNECT = "reconnect"  # a worker lost the broker and is reconnecting
STOP = "stop"  # a worker stopped cleanly
LOST = "lost"  # computed at the end: published, never completed, not in a queue

KINDS = (
    PUBLISH, READY, DELIVER, ACK, NACK, REJECT, DONE, ERROR, CRASH, TIMEOUT,
    RETRY, DEAD_LETTER, PARKED, RETRY_WAIT, RESTART, RECONNECT, STOP, LOST,
)
# A message arrived in a queue that is not the work queue (recorded by the run's taps; worker None).
# Their detail reads "reason=rejected queue=<source> count=1 retries=2 into=<queue>": see detail_fields().
ARRIVALS = (DEAD_LETTER, PARKED, RETRY_WAIT)
# Events that end one attempt at a task (one bar on the timeline).
ATTEMPT_ENDS = (ACK, NACK, REJECT, DONE, CRASH, TIMEOUT)
# Outcomes after which a task needs nothing more from the lab.
SETTLED = (ACK, DONE)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs 3x, and record() runs once or twice per message
class Event:
    """One thing that happened, with a monotonic timestamp relative to the log start (treat as read-only)."""

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
        self._events: list[Event] = []  # note() puts plain tuples here; reading turns them into Events
        self._built = 0  # _events[:_built] are all Events
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0  # threads inside wait_for_change(); record() only notifies when there are some

    def record(self, kind: str, worker: int | None = None, task: int | None = None, tag: int | None = None,
               redelivered: bool = False, requeue: bool | None = None, detail: str = "") -> Event:
        """Append an event stamped now; safe from any thread (called once or twice per message: keep it lean)."""
        event = Event(time.monotonic() - self.t0, kind, worker, task, tag, redelivered, requeue, detail)
        self._append(event)
        return event

    def note(self, kind: str, worker: int | None = None, task: int | None = None, tag: int | None = None,
             redelivered: bool = False, requeue: bool | None = None, detail: str = "") -> None:
        """record() for the per-message hot path (a worker's deliver and ack, a publish): the same event,
        stamped now, but kept as a plain tuple until the log is read, so the worker does not pay for
        building the Event object (reading builds it, once)."""
        self._append((time.monotonic() - self.t0, kind, worker, task, tag, redelivered, requeue, detail))

    def _append(self, item: Event | tuple) -> None:
        events = self._events
        if len(events) < self.max_events:
            events.append(item)  # atomic: no lock on this hot path (a race overshoots the bound by a few)
        else:
            with self._lock:
                self.dropped += 1
        if self._waiting:
            with self._lock:
                self._changed.notify_all()

    def extend(self, events: Iterable[Event]) -> None:
        """Append ready-made events (used by the model and by tests)."""
        with self._lock:
            self._events.extend(events)
            self._changed.notify_all()

    def wait_for_change(self, timeout: float) -> None:
        """Block until another event is recorded or ``timeout`` seconds pass."""
        with self._lock:
            self._waiting += 1
            try:
                self._changed.wait(timeout)
            finally:
                self._waiting -= 1

    @property
    def events(self) -> list[Event]:
        """A snapshot copy; later events do not change it."""
        return self.since(0)

    def since(self, start: int) -> list[Event]:
        """The events from index ``start`` on (a copy): what a reader that has seen ``start`` events has not."""
        with self._lock:
            events = self._events
            n = len(events)
            for i in range(self._built, n):  # what note() stored since the last read
                e = events[i]
                if type(e) is tuple:
                    events[i] = Event(*e)
            self._built = n
            return events[start:n]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)


# --- pure functions over a list of events (views and checks use these) ---


def detail_fields(detail: str) -> dict[str, str]:
    """The key=value words of an event's detail, e.g. {"reason": "rejected", "queue": "tasks", "count": "1"}."""
    return dict(word.split("=", 1) for word in detail.split() if "=" in word)


class Pairing:
    """Pairs each DELIVER with the event that ended it, per worker and delivery tag, one event at a time.

    The one place the lab pairs deliveries with outcomes: ``attempts()`` and ``state.RunState``
    both build on it.  A CRASH, TIMEOUT or RECONNECT ends every attempt still open on that worker
    (the broker takes back everything unacknowledged on the closed channel); a TIMEOUT on a tag
    whose ACK came after the broker had closed the channel undoes that ACK.  Subclasses hear of
    each ending through ``closed`` and ``unacked``.
    """

    def __init__(self) -> None:
        self.open: dict[tuple[int, int | None], Event] = {}  # (worker, tag) -> its DELIVER
        self._acked: dict[tuple[int, int | None], Event] = {}  # (worker, tag) -> DELIVER of its last ACK

    def add(self, e: Event) -> None:
        """Take one more event (in log order)."""
        worker = e.worker
        if worker is None:
            return
        kind = e.kind
        if kind == DELIVER:
            self.open[(worker, e.tag)] = e
        elif kind in ATTEMPT_ENDS or kind == RECONNECT:
            self._end(e, worker, kind)

    def _end(self, e: Event, worker: int, kind: str) -> None:
        open_ = self.open
        if kind in (CRASH, TIMEOUT, RECONNECT):  # the channel is gone: the broker takes its deliveries back
            key = (worker, e.tag)
            if kind == TIMEOUT and key in self._acked and key not in open_:
                self.unacked(self._acked.pop(key), e)  # the ack came after the broker had closed the channel
            keys = [k for k in open_ if k[0] == worker]
        elif e.detail == "multiple":  # basic_ack(multiple=True) and friends: every tag up to this one
            tag = e.tag or 0
            keys = [k for k in open_ if k[0] == worker and (k[1] or 0) <= tag]
        else:
            key = (worker, e.tag)
            start = open_.pop(key, None)
            if start is not None:
                if kind == ACK:
                    self._acked[key] = start
                self.closed(start, e)
            return
        for key in keys:
            start = open_.pop(key)
            if kind == ACK:
                self._acked[key] = start
            self.closed(start, e)

    def closed(self, start: Event, end: Event) -> None:
        """The attempt that began with ``start`` ended with ``end``."""

    def unacked(self, start: Event, timeout: Event) -> None:
        """The ACK that closed ``start``'s attempt came too late: ``timeout`` is its real outcome."""


class _AttemptList(Pairing):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[Attempt] = []
        self._index: dict[int, int] = {}  # id(start DELIVER) -> its ACKed attempt in out

    def closed(self, start: Event, end: Event) -> None:
        if end.kind == ACK:
            self._index[id(start)] = len(self.out)
        self.out.append(Attempt(start.worker, start.task, start.t, end.t, end.kind, start.redelivered, end.requeue))

    def unacked(self, start: Event, timeout: Event) -> None:
        i = self._index.pop(id(start))
        a = self.out[i]
        self.out[i] = Attempt(a.worker, a.task, a.start, timeout.t, TIMEOUT, a.redelivered)


def attempts(events: Iterable[Event]) -> list[Attempt]:
    """Every attempt in ``events`` (still-open ones with outcome "open"), by start time."""
    pairing = _AttemptList()
    for e in events:
        pairing.add(e)
    out = pairing.out
    for start in pairing.open.values():
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


def origin(events: Iterable[Event]) -> float:
    """The time pictures count from: the first publish, else the first event (0.0 for none)."""
    events = list(events)
    publish = [e.t for e in events if e.kind == PUBLISH]
    return min(publish) if publish else min((e.t for e in events), default=0.0)


def worker_ids(events: Iterable[Event]) -> list[int]:
    """The workers that took part, in order (arrivals at a dead-letter, retry or parking queue are no worker's)."""
    return sorted({e.worker for e in events if e.worker is not None and e.kind not in ARRIVALS})


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
