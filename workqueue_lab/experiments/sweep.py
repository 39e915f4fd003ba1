"""Measure what a prefetch value does on this machine, against the real broker.

Two measurements, each a short series of real runs (one per prefetch value):

* ``throughput`` -- fast tasks (the callback acks at once): messages per second
  the workers get through a backlog.  Each round trip deliver -> ack -> next
  deliver costs time; a larger prefetch lets the broker keep the next messages
  already on their way, so the workers rarely wait for the network.
* ``makespan_by_prefetch`` -- tasks of different lengths: seconds from the first
  publish to the last ack.  A large prefetch hands out work before anyone knows
  who will be free, so long tasks can pile up behind one worker.

Both return a ``Sweep`` (numbers per prefetch value; shows as a table in Jupyter)
and ``plot_sweeps`` draws them side by side.  Nothing here is imported by
``import workqueue_lab``; pika and matplotlib load on first use.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import settings
from ..engine.scenario import Scenario, check_prefetch, make_workers, numbered_tasks
from ..engine.topology import TASK_QUEUE
from ..errors import LabError
from ..record import events as ev

if TYPE_CHECKING:
    from ..broker.handle import Broker

__all__ = ["Point", "Sweep", "throughput", "makespan_by_prefetch", "plot_sweeps", "VARIABLE_TASKS",
           "label", "typical_rate", "median_wait"]

# Every fourth task is long: with two workers and unlimited prefetch, round-robin
# sends all of the long ones to the same worker (a producer emitting a big job
# every N messages does exactly this).
VARIABLE_TASKS = numbered_tasks([4, 1, 1, 1] * 2)
SWEEP_QUEUE = TASK_QUEUE


def label(prefetch: int) -> str:
    """How a prefetch value reads on an axis: 0 is 'unlimited'."""
    return "0 (unlimited)" if prefetch == 0 else str(prefetch)


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the prefetch used, the measured value, and who did the work."""

    prefetch: int
    value: float
    per_worker: dict[int, int]
    seconds: float  # wall time the measured part took
    mean: float | None = None  # for throughput: n / seconds (value is the typical pace)
    wait_ms: float | None = None  # for throughput: median ms a worker waited from its ack to its next message


@dataclass
class Sweep:
    """Measurements for several prefetch values: ``sweep[prefetch]`` is the value."""

    quantity: str  # "throughput" or "makespan"
    unit: str
    points: list[Point] = field(default_factory=list)
    detail: str = ""

    def __getitem__(self, prefetch: int) -> float:
        for p in self.points:
            if p.prefetch == prefetch:
                return p.value
        raise KeyError(f"prefetch={prefetch} was not measured; measured: {[p.prefetch for p in self.points]}")

    def wait_ms(self, prefetch: int) -> float:
        """Throughput sweeps: median milliseconds a worker waited from its ack to its next message."""
        for p in self.points:
            if p.prefetch == prefetch and p.wait_ms is not None:
                return p.wait_ms
        raise KeyError(f"no wait time measured for prefetch={prefetch}")

    @property
    def values(self) -> dict[int, float]:
        return {p.prefetch: p.value for p in self.points}

    def best(self) -> int:
        """The prefetch value with the best measurement (highest throughput, lowest makespan)."""
        pick = max if self.quantity == "throughput" else min
        return pick(self.points, key=lambda p: p.value).prefetch

    def rows(self) -> list[dict]:
        rows = []
        for p in self.points:
            row = {"prefetch": label(p.prefetch), self.quantity: round(p.value, 2) if p.value < 100 else round(p.value)}
            if p.wait_ms is not None:
                row["wait_ms"] = round(p.wait_ms, 3)
            row["tasks per worker"] = ", ".join(f"worker {w}: {n}" for w, n in sorted(p.per_worker.items()))
            rows.append(row)
        return rows

    def table(self):
        """The measurements as a ``workqueue_lab.tables.Table`` (HTML in a notebook, text elsewhere)."""
        from ..views.tables import Table

        headers = {self.quantity: f"{self.quantity} ({self.unit})",
                   "wait_ms": "median wait for the next message (ms)"}
        return Table(self.rows(), caption=self.detail, headers=headers,
                     formats={self.quantity: "{:.2f}" if self.quantity == "makespan" else "{:,}"})

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def __repr__(self) -> str:
        vals = ", ".join(f"{label(p.prefetch)}: {p.value:,.0f}" if p.value >= 100 else
                         f"{label(p.prefetch)}: {p.value:.3g}" for p in self.points)
        return f"Sweep({self.quantity} in {self.unit}: {vals})"


def _check_values(prefetch_values: Iterable[int]) -> list[int]:
    values = [check_prefetch(p) for p in prefetch_values]
    if not values:
        raise LabError("prefetch_values is empty; pass e.g. [1, 10, 50, 0].")
    return values


def throughput(broker: Broker | None = None, prefetch_values: Sequence[int] = (1, 5, 10, 50, 0),
               n: int = 1000, workers: int = 2, repeats: int = 1, timeout: float = 60.0) -> Sweep:
    """Messages per second that ``workers`` lab workers get through a backlog of ``n`` no-op tasks.

    For each prefetch value: fill the queue with ``n`` messages first (so the
    producer's speed is not what is measured), start the workers with
    ``basic_qos(prefetch_count=prefetch)``, let them go together once all are
    registered, and record every ack.  The value is the typical pace
    (``typical_rate``): the mean time between consecutive acks without the
    slowest tenth of those gaps.  Other work on a busy machine stalls a few acks
    for milliseconds, which drags the plain average (``n`` over the total time,
    kept as ``Point.mean``) all over the place.  ``repeats`` > 1 measures every
    value again, interleaved, and keeps the best.
    Messages are transient: this measures dispatch, not the disk.
    """
    from ..broker.discovery import find_broker

    values = _check_values(prefetch_values)
    if n < 1:
        raise LabError(f"n={n} tasks cannot be measured; use e.g. n=300.")
    broker = broker or find_broker()
    sweep = Sweep("throughput", "messages/s",
                  detail=f"{n} no-op tasks, {workers} workers, queue filled before the workers start")
    best: dict[int, Point] = {}
    for _ in range(repeats):  # interleaved, so a burst of load elsewhere hits every value alike
        for prefetch in values:
            point = _throughput_once(broker, prefetch, n, workers, timeout)
            if prefetch not in best or point.value > best[prefetch].value:
                best[prefetch] = point
    sweep.points.extend(best[p] for p in values)
    broker.purge(settings.name(SWEEP_QUEUE))
    return sweep


def _throughput_once(broker: Broker, prefetch: int, n: int, workers: int, timeout: float) -> Point:
    """Fill the queue, start the workers, let them go together, record the acks."""
    import threading

    from ..engine.run import Run

    gate = threading.Event()

    def callback(ch, method, properties, body):  # a no-op task: acknowledge at once
        gate.wait(timeout)  # (only the first message of each worker waits: until every worker is ready)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    scenario = Scenario(tasks=(), workers=make_workers(workers), prefetch=prefetch, queue=SWEEP_QUEUE,
                        persistent=False)
    run = Run(callback, scenario, broker)
    run.expect_waiting = n  # the backlog below is the run's own: no "already waiting" note about it
    _fill(broker, run.queue, n, durable=scenario.durable)
    try:
        run.start()  # returns once every worker's consumer is registered
        opened = time.monotonic()
        gate.set()
        while run.log.count(ev.ACK) < n:
            if time.monotonic() - opened > timeout:
                raise LabError(f"Only {run.log.count(ev.ACK)} of {n} tasks were acked within {timeout} s "
                               f"at prefetch={prefetch}; is the broker overloaded?")
            time.sleep(0.005)
    finally:
        gate.set()
        run.stop()
    events = run.log.events
    acks = sorted(e.t + run.log.t0 for e in events if e.kind == ev.ACK)
    per_worker: dict[int, int] = {}
    for e in events:
        if e.kind == ev.ACK:
            per_worker[e.worker] = per_worker.get(e.worker, 0) + 1
    return Point(prefetch, typical_rate(acks), dict(sorted(per_worker.items())), acks[-1] - opened,
                 mean=n / max(acks[-1] - opened, 1e-6), wait_ms=1000 * median_wait(events))


def median_wait(events: Sequence[ev.Event]) -> float:
    """Median seconds between a worker's ack and the start of its next message (all workers pooled).

    With prefetch 1 the next message only leaves the broker after the ack got
    there, so this is a network round trip; with a larger limit the next message
    is usually already waiting in the worker's buffer.
    """
    import statistics

    last_ack: dict[int, float] = {}
    waits = []
    for e in events:
        if e.kind == ev.ACK:
            last_ack[e.worker] = e.t
        elif e.kind == ev.DELIVER and e.worker in last_ack:
            waits.append(e.t - last_ack.pop(e.worker))
    return statistics.median(waits) if waits else 0.0


def typical_rate(times: Sequence[float], trim: float = 0.1) -> float:
    """Events per second at the typical pace: the mean gap between consecutive events,
    leaving out the slowest ``trim`` fraction of the gaps.

    Another program on the machine can stall a few events for milliseconds; those
    stalls would dominate a plain average (count over total time) of a short run.
    """
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    keep = max(1, int(len(gaps) * (1 - trim))) if gaps else 0
    if not keep:
        return 0.0
    return keep / max(sum(gaps[:keep]), 1e-9)


def makespan_by_prefetch(broker: Broker | None = None, prefetch_values: Sequence[int] = (1, 2, 4, 0),
                         tasks: Sequence[str | bytes] = VARIABLE_TASKS,
                         workers: int | Sequence[float] = 2, callback=None) -> Sweep:
    """Seconds from the first publish to the last ack, per prefetch value, for tasks of mixed lengths.

    Each value is one ``lab.run`` of ``tasks`` (one second of work per dot,
    scaled by WORKQUEUE_LAB_TIME_SCALE) with the lesson's callback.  The values
    are reported in *work seconds* (real seconds divided by the time scale), so
    the numbers read the same at any time scale.
    """
    from ..broker.discovery import find_broker
    from ..engine.run import run as lab_run
    from ..lessons.callbacks import lesson_callback

    values = _check_values(prefetch_values)
    broker = broker or find_broker()
    scale = settings.time_scale()
    total = sum(t.count(b"." if isinstance(t, bytes) else ".") for t in tasks)
    sweep = Sweep("makespan", "work seconds",
                  detail=f"{len(tasks)} tasks, {total} work seconds in all, workers={workers!r}")
    for prefetch in values:
        broker.purge(settings.name(SWEEP_QUEUE))
        result = lab_run(callback or lesson_callback, tasks=tasks, workers=workers, prefetch=prefetch,
                         queue=SWEEP_QUEUE, progress=False, broker=broker,
                         timeout=max(30.0, 10 * total * scale))
        if result.timed_out or len(result.completed) < len(tasks):
            raise LabError(f"The run at prefetch={prefetch} did not finish ({len(result.completed)} of "
                           f"{len(tasks)} tasks acked); check the broker.")
        per_worker = {w: len(t) for w, t in result.tasks_by_worker().items()}
        span = result.makespan()
        sweep.points.append(Point(prefetch, span / scale, per_worker, span))
    return sweep


def plot_sweeps(*sweeps: Sweep, title: str | None = None):
    """One panel per sweep, prefetch on the x axis (0 = unlimited, drawn last); returns the Figure."""
    from ..views.figure import new_figure, tidy_axes  # a pyplot-free Figure that shows itself once in a notebook

    if not sweeps:
        raise LabError("plot_sweeps() needs at least one Sweep, e.g. plot_sweeps(throughput(...)).")
    fig = new_figure(4.6 * len(sweeps), 3.3)
    axes = fig.subplots(1, len(sweeps), squeeze=False)[0]
    for ax, sweep in zip(axes, sweeps, strict=True):
        points = sorted(sweep.points, key=lambda p: (p.prefetch == 0, p.prefetch))
        x = range(len(points))
        y = [p.value for p in points]
        best = sweep.best()
        ax.plot(x, y, marker="o", color="#4c78a8", linewidth=2)
        # one format per panel ("7.00" beside "7.01", not "7"): whole numbers once the values are large
        fmt = "{:,.0f}" if min(y) >= 100 else "{:.2f}"
        for xi, p in zip(x, points, strict=True):
            text = fmt.format(p.value)
            ax.annotate(text, (xi, p.value), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=8, fontweight="bold" if p.prefetch == best else "normal")
        ax.set_xticks(list(x), [label(p.prefetch) for p in points])
        ax.set_xlabel("prefetch_count")
        ax.set_ylabel(f"{sweep.quantity} ({sweep.unit})")
        ax.set_ylim(0, max(y) * 1.2)
        better = "higher is better" if sweep.quantity == "throughput" else "lower is better"
        ax.set_title(f"{sweep.quantity.capitalize()} ({better})", loc="left", fontsize=11)
        tidy_axes(ax, grid="y")
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    return fig


# --- plumbing -----------------------------------------------------------------------------

def _fill(broker: Broker, queue: str, n: int, durable: bool = True) -> None:
    """Empty ``queue``, put ``n`` small transient messages in it, and wait until the broker has them all."""
    import pika

    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.queue_declare(queue=queue, durable=durable)
        broker.remember("queue", queue)
        ch.queue_purge(queue=queue)
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Transient)
        # BlockingChannel.basic_publish flushes the socket after every message; its
        # underlying channel only queues the frame, so the batch goes out in one flush.
        # A pika internal on purpose: pika 1.x has no public batched publish on a BlockingChannel.
        publish = getattr(ch, "_impl", ch).basic_publish
        for i in range(1, n + 1):
            publish(exchange="", routing_key=queue, body=f"Task {i}", properties=props)
        deadline = time.monotonic() + 30
        while ch.queue_declare(queue=queue, passive=True).method.message_count < n:
            if time.monotonic() > deadline:
                raise LabError(f"The broker did not take {n} messages into '{queue}' within 30 s.")
            time.sleep(0.005)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
