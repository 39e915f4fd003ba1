"""Publishing tasks, like the lesson's new_task.py, with the event log watching."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING

from ..record import events as ev

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..broker.handle import Broker


def publish(broker: Broker, queue: str, bodies: Iterable[str | bytes], log: ev.EventLog | None = None,
            first_id: int = 1, persistent: bool = True, confirm: bool = True,
            exchange: str = "", id_prefix: str = "") -> list[int]:
    """Publish each body to ``queue`` (default exchange) and return the task ids given.

    Each message carries its task id (after ``id_prefix``, the run's id) as ``message_id`` so the lab
    can follow it.
    ``persistent`` writes it to disk (delivery mode 2), as the lesson's producer does;
    ``confirm`` waits for the broker's publisher confirm, so nothing is lost silently.
    """
    import pika

    conn = broker.connect()
    ids: list[int] = []
    try:
        channel = conn.channel()
        if confirm:
            channel.confirm_delivery()
        mode = pika.DeliveryMode.Persistent if persistent else pika.DeliveryMode.Transient
        for task_id, body in enumerate(bodies, start=first_id):
            message_id = f"{id_prefix}-{task_id}" if id_prefix else str(task_id)  # TaskIds reads it back
            props = pika.BasicProperties(delivery_mode=mode, message_id=message_id)
            if log is not None:  # before the call: a fast worker may get it before the confirm
                log.note(ev.PUBLISH, None, task_id, detail=_label(body))
            channel.basic_publish(exchange=exchange, routing_key=queue, body=body, properties=props)
            ids.append(task_id)
    finally:
        try:
            conn.close()
        except Exception:  # already closed (the broker went away): the confirms above said what got through
            logger.debug("closing the producer's connection failed", exc_info=True)
    return ids


def _label(body: str | bytes) -> str:
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError:
            return repr(body[:40])
    return body if len(body) <= 40 else body[:37] + "..."


class TaskIds:
    """A message's task id, read back from the ``message_id`` the producer set (``<run_id>-<task>``).

    Any worker (a thread, or a process with no memory shared with the run) resolves it from the run id
    alone. ``known`` (message_id -> task, the run's own table when the worker is a thread) is tried first
    because a dict lookup is the cheapest thing on the per-message path; parsing is the fallback.
    A copy republished without properties (a retry) is known by its body, from ``bodies``.
    A message of another run (or of no run) gets None.
    """

    def __init__(self, run_id: str, known: Mapping[str, int] | None = None,
                 bodies: MutableMapping[bytes, int] | None = None) -> None:
        self.run_id = run_id
        self.known: Mapping[str, int] = {} if known is None else known
        self.bodies: MutableMapping[bytes, int] = {} if bodies is None else bodies
        self._prefix = f"{run_id}-"
        self._cut = len(self._prefix)

    def __call__(self, properties, body: bytes) -> int | None:
        mid = getattr(properties, "message_id", None)
        if mid is None:
            return self.bodies.get(body)
        task = self.known.get(mid)
        if task is None and mid.startswith(self._prefix):
            tail = mid[self._cut:]
            if tail.isdigit():
                task = int(tail)
        return task
