"""Runs a learner's piece of code against the broker so that a check can judge what it did.

This is plumbing, not judgement: it gathers facts (how many messages the broker pushed,
which channel calls were made, which versions run) and the pure checks in ``lessons.checks``
decide whether they are right and why not.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import settings

if TYPE_CHECKING:
    from ..broker.handle import Broker

logger = logging.getLogger(__name__)

CONSUME_QUEUE = "prefetch_check"
CONSUME_MESSAGES = 5


@dataclass
class ConsumeTrial:
    """What a learner's ``consume(channel, queue, on_message)`` did on a queue of ``messages`` messages."""

    messages: int = CONSUME_MESSAGES
    received: int = 0  # deliveries that reached on_message (which never acks)
    waiting: int = 0  # messages the broker still held in the queue afterwards
    calls: list[str] = field(default_factory=list)  # channel methods called, in order
    prefetch_count: int | None = None  # the last value passed to basic_qos
    auto_ack: bool = False
    error: str | None = None  # what consume() raised, if it raised


class _RecordingChannel:
    """A real pika channel whose basic_qos/basic_consume calls are noted; start_consuming is a no-op,
    because the trial drives the connection itself (it must not block forever)."""

    def __init__(self, channel, trial: ConsumeTrial) -> None:
        self._channel = channel
        self._trial = trial

    def start_consuming(self) -> None:
        self._trial.calls.append("start_consuming")

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False):
        self._trial.calls.append("basic_qos")
        self._trial.prefetch_count = prefetch_count
        return self._channel.basic_qos(prefetch_size=prefetch_size, prefetch_count=prefetch_count,
                                       global_qos=global_qos)

    def basic_consume(self, queue, on_message_callback, auto_ack=False, *args, **kwargs):
        self._trial.calls.append("basic_consume")
        self._trial.auto_ack = bool(auto_ack)
        return self._channel.basic_consume(queue, on_message_callback, auto_ack, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._channel, name)


def try_consume(consume: Callable, broker: Broker | None = None, messages: int = CONSUME_MESSAGES) -> ConsumeTrial:
    """Put ``messages`` messages in a fresh queue, call ``consume`` on a new channel with an ``on_message``
    that never acks (a worker busy with its first task), and count what the broker pushed and kept."""
    from ..broker.discovery import find_broker

    broker = broker or find_broker()
    queue = settings.name(CONSUME_QUEUE)
    trial = ConsumeTrial(messages=messages)

    def on_message(ch, method, properties, body):  # busy with the task: no ack yet
        trial.received += 1

    admin = broker.connect()
    worker = None
    try:
        ach = admin.channel()
        ach.queue_declare(queue=queue, durable=False)
        broker.remember("queue", queue)
        ach.queue_purge(queue=queue)
        for i in range(1, messages + 1):
            ach.basic_publish(exchange="", routing_key=queue, body=f"Task {i}.")
        worker = broker.connect()
        try:
            consume(_RecordingChannel(worker.channel(), trial), queue, on_message)
        except Exception as exc:  # the learner's code: the check reports it in one line
            trial.error = f"{type(exc).__name__}: {exc}"
            return trial
        # Let the deliveries arrive: all of them, or a little longer once the first is in.
        deadline = time.monotonic() + (2.0 if "basic_consume" in trial.calls else 0.0)
        while time.monotonic() < deadline and trial.received < messages:
            worker.process_data_events(time_limit=0.02)
            if trial.received:
                deadline = min(deadline, time.monotonic() + 0.1)
        trial.waiting = ach.queue_declare(queue=queue, passive=True).method.message_count
    finally:
        for conn in (worker, admin):
            if conn is not None:
                try:
                    conn.close()
                except Exception as exc:  # already closed by the broker (e.g. the learner's bad call)
                    logger.debug("closing a trial connection: %s", exc)
        try:
            with broker.channel() as ch:
                ch.queue_delete(queue=queue)
        except Exception as exc:
            logger.debug("deleting %s after the trial: %s", queue, exc)
    return trial


def environment_facts(broker: Broker) -> dict[str, object]:
    """The versions and URLs the environment check judges: python, pika, rabbitmq (None if the broker
    does not answer, then ``broker_error`` says why), url, masked_url, mgmt_link."""
    import pika

    facts: dict[str, object] = {
        "python": sys.version.split()[0], "pika": pika.__version__, "rabbitmq": None, "broker_error": "",
        "url": broker.url, "masked_url": broker.masked_url, "mgmt_link": None,
    }
    try:
        facts["rabbitmq"] = broker.version
        facts["mgmt_link"] = broker.mgmt_ui_link()
    except Exception as exc:  # the broker went away since lab.connect(): the check says so
        facts["broker_error"] = str(exc)
    return facts


