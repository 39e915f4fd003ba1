"""Self-checks for notebook 03 (fair dispatch with prefetch).

Each check runs something real against the broker and returns a ``Check``: it
prints as one line of feedback, is truthy when the answer is right, and never
raises for a wrong or unfinished answer -- so a learner's cell runs harmlessly
as shipped, while a solution can ``assert`` it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import settings
from ..engine.scenario import numbered_tasks

if TYPE_CHECKING:
    from ..broker.handle import Broker

__all__ = ["Check", "check_consume", "check_prediction", "PREDICT_TASKS", "PREDICT_SPEEDS"]

CHECK_QUEUE = "prefetch_check"
CHECK_MESSAGES = 5

# Exercise 2: one long task (8 s) then six short ones (1 s), two equally fast workers.
PREDICT_TASKS = numbered_tasks([8, 1, 1, 1, 1, 1, 1])
PREDICT_SPEEDS = [1.0, 1.0]


@dataclass
class Check:
    """The outcome of a self-check: truthy when passed; shows as its message."""

    passed: bool
    message: str
    runs: dict = field(default_factory=dict)  # label -> RunResult, for pictures

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        import html

        color = "#2e7d32" if self.passed else "#b26a00"
        lines = "<br>".join(html.escape(line) for line in self.message.splitlines())
        return f"<div style='color:{color}'>{lines}</div>"


class _ChannelForTheCheck:
    """The learner's ``consume`` gets a real pika channel; only start_consuming is a no-op,
    because the check drives the connection itself (it must not block forever)."""

    def __init__(self, channel) -> None:
        self._channel = channel
        self.auto_ack = False
        self.consuming = False

    def start_consuming(self) -> None:
        pass

    def basic_consume(self, queue, on_message_callback, auto_ack=False, *args, **kwargs):
        self.auto_ack = bool(auto_ack)
        self.consuming = True
        return self._channel.basic_consume(queue, on_message_callback, auto_ack, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._channel, name)


def check_consume(consume: Callable, broker: Broker | None = None) -> Check:
    """Exercise 1: ``consume(channel, queue, on_message)`` must turn on fair dispatch, then consume.

    The check puts 5 messages in a queue, calls ``consume`` on a fresh channel with
    an ``on_message`` that never acks (a worker busy with its first task), and
    asks the broker how many messages it still holds back: with
    ``basic_qos(prefetch_count=1)`` set *before* ``basic_consume``, 4 stay in the
    queue; without it (or set too late) the broker pushes out all 5.
    """
    from ..broker.discovery import find_broker

    broker = broker or find_broker()
    queue = settings.name(CHECK_QUEUE)
    received: list[bytes] = []

    def on_message(ch, method, properties, body):  # busy with the task: no ack yet
        received.append(body)

    admin = broker.connect()
    worker = None
    try:
        ach = admin.channel()
        ach.queue_declare(queue=queue, durable=False)
        broker.remember("queue", queue)
        ach.queue_purge(queue=queue)
        for i in range(1, CHECK_MESSAGES + 1):
            ach.basic_publish(exchange="", routing_key=queue, body=f"Task {i}.")
        worker = broker.connect()
        channel = _ChannelForTheCheck(worker.channel())
        try:
            consume(channel, queue, on_message)
        except Exception as exc:  # the learner's code: report it in one line
            return Check(False, f"✗ consume() raised {type(exc).__name__}: {exc}")
        # Let the deliveries arrive: all of them, or a little longer once the first is in.
        deadline = time.monotonic() + (2.0 if channel.consuming else 0.0)
        while time.monotonic() < deadline and len(received) < CHECK_MESSAGES:
            worker.process_data_events(time_limit=0.02)
            if received:
                deadline = min(deadline, time.monotonic() + 0.1)
        waiting = ach.queue_declare(queue=queue, passive=True).method.message_count
    finally:
        for conn in (worker, admin):
            with contextlib.suppress(Exception):
                conn.close()
        with contextlib.suppress(Exception), broker.channel() as ch:
            ch.queue_delete(queue=queue)

    got = len(received)
    if channel.auto_ack:
        return Check(False, "✗ auto_ack=True: the broker forgets each message as it sends it, so it ignores "
                            "prefetch_count and pushes everything. Use manual acks (auto_ack=False).")
    if got == 0:
        return Check(False, "✗ No message reached on_message: consume() must call "
                            "channel.basic_consume(queue=queue, on_message_callback=on_message).")
    if got == 1 and waiting == CHECK_MESSAGES - 1:
        return Check(True, f"✓ Fair dispatch: the worker got 1 message and the broker kept the other "
                           f"{waiting} in the queue until it acks.")
    if waiting == 0:
        return Check(False, f"✗ The broker pushed all {got} messages at once (prefetch unlimited). Call "
                            "channel.basic_qos(prefetch_count=1) before channel.basic_consume(...): a limit "
                            "set after a consumer started does not apply to it.")
    return Check(False, f"✗ The worker got {got} messages before acking any (prefetch_count={got}?); "
                        "fair dispatch means prefetch_count=1.")


def _normalise(prediction) -> dict[int, list[int]] | None:
    if prediction is None:
        return None
    try:
        return {int(w): sorted(int(t) for t in tasks) for w, tasks in dict(prediction).items() if tasks}
    except (TypeError, ValueError):
        return {}


def check_prediction(prefetch_0=None, prefetch_1=None, broker: Broker | None = None) -> Check:
    """Exercise 2: predict ``tasks_by_worker()`` for PREDICT_TASKS on two equal workers.

    Pass a dict such as ``{1: [1, 2], 2: [3]}`` for one or both prefetch values;
    the check runs the real experiment for each prediction given and compares.
    """
    from ..engine.run import run as lab_run
    from .callbacks import lesson_callback

    predictions = {0: _normalise(prefetch_0), 1: _normalise(prefetch_1)}
    if all(p is None for p in predictions.values()):
        return Check(False, "Fill in prefetch_0 and/or prefetch_1 with your prediction, "
                            "e.g. {1: [1, 2], 2: [3, 4]}, then run the cell again.")
    lines, passed, runs = [], True, {}
    for prefetch, predicted in predictions.items():
        if predicted is None:
            continue
        result = lab_run(lesson_callback, tasks=PREDICT_TASKS, workers=PREDICT_SPEEDS, prefetch=prefetch,
                         progress=False, broker=broker)
        runs[f"prefetch={prefetch}"] = result
        actual = {w: sorted(t) for w, t in result.tasks_by_worker().items()}
        if predicted == actual:
            lines.append(f"✓ prefetch={prefetch}: {actual}")
        else:
            passed = False
            lines.append(f"✗ prefetch={prefetch}: you predicted {predicted}, RabbitMQ did {actual}")
    return Check(passed, "\n".join(lines), runs)
