"""Predict a run's events from its Scenario, without a broker.

A small discrete-event model of how RabbitMQ dispatches one queue to several
consumers: messages go round-robin to consumers that have prefetch credit
left (prefetch 0 = unlimited credit); each worker works through what it was
given in order and acks when done, which frees one credit.  Faults are not
modelled.  The same views draw its events, so a notebook can put the
prediction next to the measurement.  Imports no pika and no broker.
"""

from __future__ import annotations

import heapq
from collections import deque

from ..engine.scenario import Scenario, dots
from . import events as ev


def predict(scenario: Scenario, seconds_per_dot: float = 1.0) -> list[ev.Event]:
    """The events an ideal broker and ideal workers would produce for ``scenario``."""
    n = len(scenario.workers)
    credit_of = [scenario.prefetch if w.prefetch is None else w.prefetch for w in scenario.workers]
    unacked = [0] * n
    buffers: list[deque[int]] = [deque() for _ in range(n)]
    busy_until = [0.0] * n
    durations = [dots(body) * seconds_per_dot for body in scenario.tasks]
    queue = deque(range(1, len(scenario.tasks) + 1))
    out = [ev.Event(0.0, ev.PUBLISH, None, t) for t in queue]
    next_consumer = 0
    clock: list[tuple[float, int, int, int]] = []  # (finish time, worker index, task, tag)
    tags = [0] * n

    def has_credit(i: int) -> bool:
        return credit_of[i] == 0 or unacked[i] < credit_of[i]

    def dispatch() -> None:
        nonlocal next_consumer
        while queue and any(has_credit(i) for i in range(n)):
            for step in range(n):
                i = (next_consumer + step) % n
                if has_credit(i):
                    buffers[i].append(queue.popleft())
                    unacked[i] += 1
                    next_consumer = (i + 1) % n
                    break

    def start_next(i: int, now: float) -> None:
        if buffers[i] and busy_until[i] <= now:
            task = buffers[i].popleft()
            tags[i] += 1
            out.append(ev.Event(now, ev.DELIVER, i + 1, task, tags[i]))
            busy_until[i] = now + durations[task - 1] / scenario.workers[i].speed
            heapq.heappush(clock, (busy_until[i], i, task, tags[i]))

    dispatch()
    for i in range(n):
        start_next(i, 0.0)
    while clock:
        now, i, task, tag = heapq.heappop(clock)
        out.append(ev.Event(now, ev.ACK, i + 1, task, tag))
        unacked[i] -= 1
        dispatch()
        for j in range(n):
            start_next(j, now)
    return out
