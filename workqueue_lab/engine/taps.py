"""Taps: record what reaches a dead-letter, retry or parking queue without taking it from that queue.

For every binding that feeds such a queue, the observer declares an exclusive, auto-delete queue bound
to the same exchange with the same routing key.  Dead-lettering and publishing route a message to every
queue whose binding matches, so the broker hands the tap a copy and the real queue keeps its message
(a learner's DLQ count is unchanged).  One thread with its own connection consumes every tap and records
one event per arrival, with the ``x-death`` and ``x-retry-count`` headers the message carried.  Stopping
closes the connection, and the broker deletes the exclusive taps with it: nothing is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..record import events as ev
from .topology import Tap

if TYPE_CHECKING:
    import pika

logger = logging.getLogger(__name__)

KIND_OF_ROLE = {"dead_letter": ev.DEAD_LETTER, "parking": ev.PARKED, "retry": ev.RETRY_WAIT}


def arrival_detail(headers: dict | None, into: str) -> str:
    """"reason=rejected queue=<source> count=1 retries=2 into=<queue>" from a message's headers.

    ``x-death`` lists the most recent dead-lettering first (one entry per queue and reason,
    its count incremented each time); ``x-retry-count`` is what a retrying callback sets.
    """
    headers = headers or {}
    words = []
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        last = deaths[0]
        for key in ("reason", "queue", "count"):
            value = last.get(key)
            if isinstance(value, bytes):
                value = value.decode(errors="replace")
            if value is not None:
                words.append(f"{key}={value}")
    if "x-retry-count" in headers:
        words.append(f"retries={headers['x-retry-count']}")
    words.append(f"into={into}")
    return " ".join(words)


class TapObserver(threading.Thread):
    """One thread, one connection: a tap per fed binding, one event per message that arrives."""

    def __init__(self, connect: Callable[[], pika.BlockingConnection], log: ev.EventLog,
                 task_of_message: Callable[[object, bytes], int | None], taps: Sequence[Tap]) -> None:
        super().__init__(name="workqueue-lab taps", daemon=True)
        self._connect = connect
        self._log = log
        self._task_of_message = task_of_message
        self.taps = tuple(taps)
        self.ready = threading.Event()
        self.error: str | None = None
        self.queues: list[str] = []  # the taps' server-named queues (exclusive: gone with the connection)
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = None
        try:
            conn = self._connect()
            channel = conn.channel()
            for tap in self.taps:
                name = channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
                self.queues.append(name)
                channel.queue_bind(queue=name, exchange=tap.exchange, routing_key=tap.routing_key)
                channel.basic_consume(queue=name, auto_ack=True, on_message_callback=self._recorder(tap))
            self.ready.set()
            while not self._stop_event.is_set():
                conn.process_data_events(time_limit=0.05)
        except Exception as exc:  # reported to the run through .error; the run goes on without taps
            logger.debug("tap observer stopped: %s", exc, exc_info=True)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _recorder(self, tap: Tap):
        kind = KIND_OF_ROLE[tap.role]

        def on_message(channel, method, properties, body: bytes) -> None:
            self._log.record(kind, None, self._task_of_message(properties, body),
                             detail=arrival_detail(getattr(properties, "headers", None), tap.queue))
        return on_message

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
