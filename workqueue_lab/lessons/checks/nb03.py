"""Self-checks for notebook 03, fair dispatch: write the basic_qos line, and predict a dispatch.

``fair_dispatch`` and ``prediction`` are the checks, pure functions of what happened.
``check_consume`` and ``check_prediction`` are what the notebook calls: they make the real
experiment first (``lessons.trials``, ``engine.run``), then hand its facts to the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ...engine.scenario import numbered_tasks
from ...record import events as ev
from . import evidence
from .base import Check, verdict

if TYPE_CHECKING:
    pass

__all__ = ["PREDICT_TASKS", "PREDICT_SPEEDS", "fair_dispatch", "prediction"]

# Exercise 2: one long task (8 s) then six short ones (1 s), two equally fast workers.
PREDICT_TASKS = numbered_tasks([8, 1, 1, 1, 1, 1, 1])
PREDICT_SPEEDS = [1.0, 1.0]


def fair_dispatch(received: int, waiting: int, calls: Sequence[str], prefetch_count: int | None = None,
                  auto_ack: bool = False, error: str | None = None, messages: int = 5) -> Check:
    """Exercise 1: with ``basic_qos(prefetch_count=1)`` before ``basic_consume``, a worker busy with its
    first message gets 1 of ``messages`` and the broker keeps the rest in the queue."""
    name = "Fair dispatch: basic_qos(prefetch_count=1), then basic_consume"
    expected = f"1 message delivered, {messages - 1} kept in the queue"
    got = f"{received} delivered, {waiting} kept in the queue; calls: {', '.join(calls) or 'none'}"
    qos_at = calls.index("basic_qos") if "basic_qos" in calls else None
    consume_at = calls.index("basic_consume") if "basic_consume" in calls else None
    if error:
        hint = f"consume() raised {error}."
    elif auto_ack:
        hint = ("auto_ack=True: the broker forgets each message as it sends it, so it ignores "
                "prefetch_count and pushes everything. Use manual acks (auto_ack=False).")
    elif consume_at is None or received == 0:
        hint = ("No message reached on_message: consume() must call "
                "channel.basic_consume(queue=queue, on_message_callback=on_message).")
    elif qos_at is None:
        hint = (f"The broker pushed all {received} messages at once: without basic_qos a consumer has no "
                "prefetch limit. Call channel.basic_qos(prefetch_count=1) before channel.basic_consume(...).")
    elif qos_at > consume_at and received > 1:
        hint = (f"The broker pushed all {received} messages at once: basic_qos came after basic_consume, "
                "and a limit set after a consumer started does not apply to it. Call "
                "channel.basic_qos(prefetch_count=1) first.")
    elif prefetch_count != 1 and received != 1:
        limit = "means no limit" if prefetch_count == 0 else "lets it hold that many"
        hint = (f"The worker got {received} messages before acking any: prefetch_count={prefetch_count} "
                f"{limit}. Fair dispatch means prefetch_count=1.")
    elif received != 1 or waiting != messages - 1:
        hint = f"Expected 1 delivered and {messages - 1} waiting; is something else consuming the queue?"
    else:
        hint = ""
    return verdict(name, expected, got, hint)


def prediction(predicted: Mapping[int, object], runs: Mapping[int, object],
               shown: Mapping[str, object] | None = None) -> Check:
    """Exercise 2: each prediction (prefetch -> ``{worker: [tasks]}``, None for not given) against what
    the run at that prefetch did (prefetch -> result or events)."""
    name = "Your dispatch prediction"
    guesses = {p: evidence.normalise(g) for p, g in predicted.items()}
    given = {p: g for p, g in guesses.items() if g is not None}
    if not given:
        return verdict(name, hint="Fill in prefetch_0 and/or prefetch_1 with your prediction, "
                                  "e.g. {1: [1, 2], 2: [3, 4]}, then run the cell again.")
    expected, got, hints = {}, {}, []
    for p, guess in sorted(given.items()):
        events = list(getattr(runs[p], "events", runs[p]))
        actual = evidence.sorted_split(ev.tasks_by_worker(events))
        expected[f"prefetch={p}"], got[f"prefetch={p}"] = guess, actual
        if guess == {}:
            hints.append(f"prefetch={p}: write the prediction as a dict of worker -> tasks, e.g. {{1: [1, 2]}}.")
        elif guess != actual:
            hints.append(f"prefetch={p}: " + _first_miss(events, p, guess, actual))
    return verdict(name, expected, got, "\n".join(hints), shown)


def _first_miss(events: list[ev.Event], prefetch: int, guess: dict[int, list[int]],
                actual: dict[int, list[int]]) -> str:
    task, said, did = evidence.first_difference(guess, actual)
    total = len(ev.published(events))
    if did is None:
        return f"you predicted task {task} for worker {said}, but there is no task {task} (tasks 1 to {total})."
    if said is None:
        return f"your prediction gives task {task} to no worker; each of the {total} tasks goes to one worker."
    told = f"you predicted task {task} for worker {said}, RabbitMQ gave it to worker {did}: "
    if prefetch == 0:
        return told + (f"with prefetch=0 there is no limit, so the broker dealt all {total} messages out in turn "
                       "the moment they were published, whatever each task costs.")
    first = evidence.first_delivery(events, task)
    held = evidence.held_at(events, said, first.t) if first is not None else []
    if len(held) >= prefetch:
        return told + (f"with prefetch={prefetch} a worker holds at most {prefetch} unacked message(s), and "
                       f"when task {task} went out worker {said} still held task(s) {held}, so it went to "
                       f"worker {did}, which had room.")
    return told + (f"with prefetch={prefetch} a task goes to a worker with room for it; when task {task} went "
                   f"out both had room, and the broker picked worker {did}.")
