"""A thin proxy around a pika channel that records what the learner's callback does.

The callback gets this object as ``ch``; every attribute not defined here is the
real channel's, so ``ch.basic_ack(delivery_tag=method.delivery_tag)`` is plain pika.
"""

from __future__ import annotations

from collections.abc import Callable

from ..record import events as ev


class InstrumentedChannel:
    """Records ack / nack / reject / publish, then forwards the call to pika."""

    def __init__(self, channel, log: ev.EventLog, worker: int, task_of_tag: Callable[[int], int | None],
                 task_of_message: Callable[[object, bytes], int | None]) -> None:
        self._channel = channel
        self._log = log
        self._worker = worker
        self._task_of_tag = task_of_tag
        self._task_of_message = task_of_message

    def __getattr__(self, name: str):
        return getattr(self._channel, name)

    def __repr__(self) -> str:
        return f"<instrumented {self._channel!r}>"

    def _record(self, kind: str, tag: int, multiple: bool = False, requeue: bool | None = None) -> None:
        self._log.record(kind, self._worker, self._task_of_tag(tag), tag=tag, requeue=requeue,
                         detail="multiple" if multiple else "")

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self._channel.basic_ack(delivery_tag=delivery_tag, multiple=multiple)
        # = self._record(ev.ACK, delivery_tag, multiple), inlined and via note(): this runs once per message
        self._log.note(ev.ACK, self._worker, self._task_of_tag(delivery_tag), delivery_tag, False, None,
                       "multiple" if multiple else "")

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True) -> None:
        self._channel.basic_nack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue)
        self._record(ev.NACK, delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._channel.basic_reject(delivery_tag=delivery_tag, requeue=requeue)
        self._record(ev.REJECT, delivery_tag, requeue=requeue)

    def basic_publish(self, exchange: str, routing_key: str, body, properties=None, mandatory: bool = False):
        result = self._channel.basic_publish(exchange=exchange, routing_key=routing_key, body=body,
                                             properties=properties, mandatory=mandatory)
        raw = body.encode() if isinstance(body, str) else body
        self._log.record(ev.RETRY, self._worker, self._task_of_message(properties, raw),
                         detail=f"{exchange or '(default)'} -> {routing_key}")
        return result
