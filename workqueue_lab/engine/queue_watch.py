"""The queue's ready and unacked counts over a run, for the plots of a queue filling and draining.

Live counts, without one ``rabbitmqctl`` start per sample: on a node the lab controls, one program
samples inside the broker until the block ends (its samples are added then); elsewhere a background
thread asks ``broker.queue_stats`` (the management API's queue totals, or a passive declare).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..broker import erlang

if TYPE_CHECKING:
    from ..broker.handle import Broker, QueueStats

Sample = tuple[float, int, "int | None"]  # (t on the run's clock, ready, unacked)


def sample(broker: Broker, queue: str, t0: float, samples: list) -> QueueStats:
    """Append the queue's counts now to ``samples`` (time on the clock that started at ``t0``)."""
    stats = broker.queue_stats(queue)
    samples.append((time.monotonic() - t0, stats.ready, stats.unacked))
    return stats


@contextlib.contextmanager
def watch(broker: Broker, queue: str, t0: float, samples: list, every: float = 0.1) -> Iterator[list]:
    """Sample ``queue`` every ``every`` seconds into ``samples`` while the block runs; yields ``samples``."""
    program = erlang.queue_watch_program(broker.vhost, queue, every)
    offset = time.monotonic() - time.time() - t0  # the broker's wall clock -> the run's clock
    stopping = threading.Event()

    def poll() -> None:
        while not stopping.is_set():
            sample(broker, queue, t0, samples)
            stopping.wait(max(every, 0.5))

    with contextlib.ExitStack() as stack:
        started, lines = False, []
        control = broker.control
        if control.can("stats"):
            started, lines = stack.enter_context(erlang.in_node(control.ctl, program, "queue watch", 20,
                                                                scratch=control.scratch()))
        poller = None
        if not started:  # no control over the node, or the CLI failed: poll from here
            poller = threading.Thread(target=poll, name="workqueue-lab queue watch", daemon=True)
            poller.start()
        try:
            yield samples
        finally:
            stopping.set()
            if poller is not None:
                poller.join(10)
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            samples.append((int(parts[0]) / 1000 + offset, int(parts[1]), int(parts[2])))
    samples.sort()
