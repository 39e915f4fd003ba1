"""A thin proxy around a pika channel that records what the learner's callback does.

The callback gets this object as ``ch``; every attribute not defined here is the
real channel's, so ``ch.basic_ack(delivery_tag=method.delivery_tag)`` is plain pika.
"""

from __future__ import annotations

from collections.abc import Callable

from ..record import events as ev


class InstrumentedChannel:
    """Records ack / nack / reject / publish, then forwards the call to pika."""

    def __init__(self, channel, log: ev.EventLog, worker: int, task_of_tag: Callable[[int], int | None]) -> None:
        self._channel = channel
        self._log = log
        self._worker = worker
        self._task_of_tag = task_of_tag
        self._current: tuple[int | None, str | None, bytes | None] = (None, None, None)

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

    def handling(self, task: int | None, properties, body: bytes) -> None:
        """The worker says which message the callback is about to handle (so a republished copy is known)."""
        self._current = (task, getattr(properties, "message_id", None), body)

    def basic_publish(self, exchange: str, routing_key: str, body, properties=None, mandatory: bool = False):
        """Forward; a copy of the message being handled is a RETRY of its task, anything else a PUBLISH.

        A copy is the same message_id, or the same body (retry code often builds new properties and
        drops the message_id).  Another message (a follow-up task, say) is recorded as a PUBLISH by this
        worker with no task, so it shows in the event table without counting as one of the run's tasks.
        """
        result = self._channel.basic_publish(exchange=exchange, routing_key=routing_key, body=body,
                                             properties=properties, mandatory=mandatory)
        raw = body.encode() if isinstance(body, str) else body
        task, message_id, handled = self._current
        mid = getattr(properties, "message_id", None)
        into = f"{exchange or '(default)'} -> {routing_key}" + (" mandatory=on" if mandatory else "")
        if (mid is not None and mid == message_id) or raw == handled:
            self._log.record(ev.RETRY, self._worker, task, detail=into)
        else:
            self._log.record(ev.PUBLISH, self._worker, None, detail=f"{into} (not the message being handled)")
        return result
