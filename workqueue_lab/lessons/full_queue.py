"""Notebook 04's exercise: a publisher that hears the broker say no, and publishes again.

``try_full_queue`` declares a durable queue that holds at most ``CAPACITY`` messages and refuses more
(``x-overflow: reject-publish``), drains it from a consumer thread of its own (one message every
``DRAIN_S`` seconds, on its own connection), and calls the learner's ``send(channel, queue, tasks)``.
A publisher in confirm mode hears each refusal as a ``NackError``; one that is not never hears it, and the
refused tasks are gone.  What the consumer received, and how, is the ``FullQueueTrial`` the check judges.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import settings
from .checks.base import Check, verdict
from .checks.nb04 import FULL, FullQueueTrial
from .checks.nb04 import full_queue as judge

if TYPE_CHECKING:
    from ..broker.handle import Broker

__all__ = ["CAPACITY", "DRAIN_S", "FullQueueTrial", "try_full_queue", "check_full_queue", "QUEUE"]

QUEUE = "full_queue_check"
CAPACITY = 2  # messages the queue holds before it refuses more
DRAIN_S = 0.05  # the consumer takes one message this often


class _Recording:
    """The learner's channel: real pika, with confirm_delivery / basic_publish / queue_declare noted."""

    def __init__(self, channel, trial: FullQueueTrial) -> None:
        self._channel, self._trial = channel, trial

    def confirm_delivery(self):
        self._trial.calls.append("confirm_delivery")
        return self._channel.confirm_delivery()

    def queue_declare(self, *args, **kwargs):
        self._trial.calls.append("queue_declare")
        return self._channel.queue_declare(*args, **kwargs)

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        import pika

        self._trial.calls.append("basic_publish")
        try:
            return self._channel.basic_publish(exchange, routing_key, body, properties, mandatory)
        except pika.exceptions.NackError:
            self._trial.refusals += 1
            raise

    def __getattr__(self, name: str):
        return getattr(self._channel, name)


def try_full_queue(send: Callable, broker: Broker,
                   tasks: Sequence[str] = tuple(f"Task {i}." for i in range(1, 9))) -> FullQueueTrial:
    """Run ``send(channel, queue, tasks)`` against the small, draining queue; return what the consumer got."""
    queue = settings.name(QUEUE)
    broker.remember("queue", queue)
    trial = FullQueueTrial(list(tasks))
    with broker.channel() as ch:
        ch.queue_delete(queue=queue)
        ch.queue_declare(queue=queue, durable=True,
                         arguments={"x-max-length": CAPACITY, "x-overflow": "reject-publish"})
    stop = threading.Event()
    drain = threading.Thread(target=_drain, args=(broker, queue, trial, stop),
                             name="workqueue-lab full-queue drain")
    drain.start()
    conn = broker.connect()
    try:
        send(_Recording(conn.channel(), trial), queue, list(tasks))
    except Exception as exc:  # the learner's code: the check reports it in one line
        trial.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            conn.close()
        with broker.channel() as ch:  # what is still in the queue drains meanwhile
            deadline = time.monotonic() + 5 + CAPACITY * DRAIN_S
            while (ch.queue_declare(queue=queue, passive=True).method.message_count
                   and time.monotonic() < deadline):
                time.sleep(DRAIN_S)
            stop.set()
            drain.join(10)
            ch.queue_delete(queue=queue)
    return trial


def _drain(broker: Broker, queue: str, trial: FullQueueTrial, stop: threading.Event) -> None:
    """The slow consumer: its own connection (pika is not thread-safe), one message per DRAIN_S."""
    import pika

    with broker.channel() as ch:
        while not stop.is_set():
            method, properties, body = ch.basic_get(queue=queue, auto_ack=False)
            if method is not None:
                trial.received.append(body.decode())
                trial.transient += properties.delivery_mode != pika.DeliveryMode.Persistent.value
                ch.basic_ack(delivery_tag=method.delivery_tag)  # noted: now it may go
            stop.wait(DRAIN_S)


def check_full_queue(send: Callable, broker: Broker | None = None) -> Check:
    """Run the learner's ``send(channel, queue, tasks)`` against a small queue that refuses when full, then judge
    it (``lessons.checks.nb04.full_queue``)."""
    from ..broker.discovery import find_broker

    if not callable(send):
        return verdict(FULL, got=type(send).__name__, hint="Pass your function: check_full_queue(send).")
    return judge(try_full_queue(send, broker or find_broker()))
