"""Publishing tasks, like the lesson's new_task.py, with the event log watching."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..record import events as ev

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
            message_id = f"{id_prefix}-{task_id}" if id_prefix else str(task_id)
            props = pika.BasicProperties(delivery_mode=mode, message_id=message_id)
            if log is not None:  # before the call: a fast worker may get it before the confirm
                log.note(ev.PUBLISH, None, task_id, detail=_label(body))
            channel.basic_publish(exchange=exchange, routing_key=queue, body=body, properties=props)
            ids.append(task_id)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return ids


def _label(body: str | bytes) -> str:
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError:
            return repr(body[:40])
    return body if len(body) <= 40 else body[:37] + "..."
