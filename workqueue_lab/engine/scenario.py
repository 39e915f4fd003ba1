"""Plain data describing one experiment: tasks, workers, prefetch, faults, ack mode, queue.

Widgets build one, notebooks build one, the model reads one.  Validation lives
here so every entry point gives the same one-sentence errors.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import LabError
from .topology import TASK_QUEUE

FAULT_KINDS = ("crash", "exception", "hang", "slow")
ACK_MODES = ("manual", "auto")
MAX_PREFETCH = 65535  # AMQP's prefetch-count is a 16-bit field

# The lesson's four tasks: each dot is one second of work.
LESSON_TASKS = ("Task 1.", "Task 2..", "Task 3...", "Task 4....")


@dataclass(frozen=True)
class Fault:
    """A failure injected into a worker's ``work()`` call.

    kind: "crash" (the worker dies mid-task, no ack), "exception" (the task raises
    ``TaskFailed``, so the callback's except-branch runs), "hang" (the task takes
    ``seconds`` of work, e.g. past the ack timeout), "slow" (work takes ``factor`` times longer).
    tasks: task ids it applies to (None: any).  probability: chance per delivery.
    times: at most this many triggers (None: unlimited).  seed: for reproducible chance.
    """

    kind: str
    tasks: frozenset[int] | None = None
    probability: float = 1.0
    times: int | None = None
    factor: float = 3.0
    seconds: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise LabError(f"Unknown failure mode {self.kind!r}; use one of: {', '.join(FAULT_KINDS)}.")
        if not 0.0 <= self.probability <= 1.0:
            raise LabError(f"Fault probability {self.probability} is outside 0..1; use e.g. 0.05.")
        if self.tasks is not None and not isinstance(self.tasks, frozenset):
            object.__setattr__(self, "tasks", frozenset(self.tasks))


def fault(kind: str, tasks: Iterable[int] | int | None = None, **kw) -> Fault:
    """Shorthand: ``fault("crash", tasks=2)`` crashes the worker on task 2, once."""
    if isinstance(tasks, int):
        tasks = {tasks}
    if kind == "crash" and "times" not in kw and "probability" not in kw:
        kw["times"] = 1
    return Fault(kind, None if tasks is None else frozenset(tasks), **kw)


class FaultState:
    """Per-worker bookkeeping of which faults fired (one per worker thread; not shared)."""

    def __init__(self, faults: Sequence[Fault], worker_id: int) -> None:
        self.faults = list(faults)
        self.fired = [0] * len(self.faults)
        self.rngs = [random.Random(None if f.seed is None else f.seed * 1000 + worker_id) for f in self.faults]

    def triggered(self, task: int | None) -> list[Fault]:
        hits = []
        for i, f in enumerate(self.faults):
            if f.tasks is not None and task not in f.tasks:
                continue
            if f.times is not None and self.fired[i] >= f.times:
                continue
            if f.probability < 1.0 and self.rngs[i].random() >= f.probability:
                continue
            self.fired[i] += 1
            hits.append(f)
        return hits


@dataclass(frozen=True)
class WorkerSpec:
    """One worker: its speed (2.0 = twice as fast), its faults, whether it restarts after a crash."""

    speed: float = 1.0
    faults: tuple[Fault, ...] = ()
    restart: bool = False
    prefetch: int | None = None  # None: the scenario's prefetch

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise LabError(f"Worker speed {self.speed!r} must be a positive number; use e.g. 1.0 or 0.5.")
        object.__setattr__(self, "faults", tuple(self.faults))


@dataclass(frozen=True)
class Scenario:
    """Everything that defines a run; ``validate()`` turns bad values into one-sentence errors."""

    tasks: tuple[str | bytes, ...] = LESSON_TASKS
    workers: tuple[WorkerSpec, ...] = (WorkerSpec(), WorkerSpec())
    prefetch: int = 1
    ack: str = "manual"
    queue: str = TASK_QUEUE
    durable: bool = True
    persistent: bool = True
    queue_arguments: dict | None = None
    timeout: float = 120.0  # seconds of real time before wait() gives up
    confirms: bool = False  # the workers' channels in confirm mode: a callback's basic_publish waits for the broker

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "workers", tuple(self.workers))

    def validate(self) -> Scenario:
        check_prefetch(self.prefetch)
        for w in self.workers:
            if w.prefetch is not None:
                check_prefetch(w.prefetch)
        if not self.workers:
            raise LabError("A run needs at least one worker; pass workers=1 or more.")
        if self.ack not in ACK_MODES:
            raise LabError(f"ack={self.ack!r} is not a mode; use 'manual' (the lesson's) or 'auto'.")
        if not self.queue or len(self.queue) > 200:
            raise LabError(f"Queue name {self.queue!r} must be 1..200 characters.")
        return self


def check_prefetch(value: object) -> int:
    """A prefetch count RabbitMQ accepts: an int 0..65535 (0 means unlimited)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"prefetch={value!r} is not a whole number; use an int such as 1 (0 means unlimited).")
    if value < 0:
        raise LabError(f"prefetch={value} is negative; use 0 (unlimited) or a positive count such as 1.")
    if value > MAX_PREFETCH:
        raise LabError(f"prefetch={value} exceeds AMQP's limit of {MAX_PREFETCH}; use 0 for unlimited.")
    return value


def make_workers(workers: int | Sequence[WorkerSpec | float], **common) -> tuple[WorkerSpec, ...]:
    """Accept 2, [1.0, 0.25] (speeds) or [WorkerSpec(...), ...]."""
    if isinstance(workers, bool) or (isinstance(workers, int) and workers < 1):
        raise LabError(f"workers={workers!r}: a run needs at least one worker; pass workers=1 or more.")
    if isinstance(workers, int):
        return tuple(WorkerSpec(**common) for _ in range(workers))
    if not isinstance(workers, (list, tuple)) or not workers:
        raise LabError(f"workers={workers!r}: pass a count (2), speeds ([1.0, 0.5]) or WorkerSpec objects.")
    specs = []
    for w in workers:
        if isinstance(w, WorkerSpec):
            specs.append(w)
        elif isinstance(w, (int, float)) and not isinstance(w, bool):
            specs.append(WorkerSpec(speed=float(w), **common))
        else:
            raise LabError(f"Worker {w!r} is neither a speed nor a WorkerSpec; use e.g. WorkerSpec(speed=0.5).")
    return tuple(specs)


def dots(body: str | bytes) -> int:
    """Seconds of work a task asks for: its number of dots (as in the lesson)."""
    if isinstance(body, bytes):
        return body.count(b".")
    return body.count(".")


def numbered_tasks(durations: Iterable[int]) -> tuple[str, ...]:
    """["Task 1.", "Task 2..", ...] for the given seconds of work per task."""
    return tuple(f"Task {i}" + "." * d for i, d in enumerate(durations, start=1))


def json_tasks(n: int, seconds: int = 1) -> tuple[str, ...]:
    """Tasks as JSON documents (for the production worker, which parses JSON)."""
    return tuple(json.dumps({"task": i, "work": "." * seconds}) for i in range(1, n + 1))


POISON = {
    "non-utf8": b"\xff\xfe not UTF-8 \xff",
    "bad-json": "{'task': 1, not json",
}
