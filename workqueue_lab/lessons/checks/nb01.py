"""Self-checks for notebook 01, the work-queue pattern: round robin, and two terminals."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ...record import events as ev
from . import evidence
from .base import Check, events_of, not_a_run, verdict

__all__ = ["round_robin", "check_round_robin", "tasks_in_output", "check_two_terminals"]


def round_robin(tasks: int, workers: int) -> dict[int, list[int]]:
    """Strict turn-taking: worker w gets tasks w, w + workers, w + 2*workers, ..."""
    return {w: list(range(w, tasks + 1, workers)) for w in range(1, workers + 1)}


def check_round_robin(result: object, workers: int = 3,
                      predicted: Mapping[int, Sequence[int]] | None = None) -> Check:
    """Every task done exactly once, shared in turns between ``workers`` workers.

    ``result`` is what ``lab.run`` returned (or its events).  Pass ``predicted`` (``{worker: [tasks]}``)
    to have the learner's own prediction checked against the run as well.
    """
    name = f"Round robin on {workers} workers"
    events = events_of(result)
    if events is None:
        return not_a_run(name, result, f"run lab.run(callback, ..., workers={workers}) and pass its result.")
    published = ev.published(events)
    got = ev.tasks_by_worker(events)
    guess = evidence.normalise(predicted)
    expected = guess if guess else round_robin(len(published), workers)
    return verdict(name, expected, got, _round_robin_hint(events, workers, published, got, guess))


def _round_robin_hint(events: list[ev.Event], workers: int, published: list[int],
                      got: dict[int, list[int]], guess: dict[int, list[int]] | None) -> str:
    used = evidence.workers_in(events)
    if len(used) != workers:
        return (f"The run used {len(used)} worker(s); the exercise asks for {workers}: "
                f"pass workers={workers} to lab.run.")
    if not published:
        return "Nothing was published: pass the six tasks as tasks=... to lab.run."
    done = ev.completed(events)
    missing = [t for t in published if t not in done]
    if missing:
        delivered = {e.task for e in events if e.kind == ev.DELIVER}
        if delivered and not any(e.kind in (ev.ACK, ev.DONE) for e in events):
            return (f"Tasks {missing} were never acknowledged (no ack at all in this run), so none counts as done: "
                    "end the callback with ch.basic_ack(delivery_tag=method.delivery_tag).")
        undelivered = [t for t in missing if t not in delivered]
        if undelivered:
            return (f"Tasks {undelivered} never reached a worker: each worker still held an unacknowledged "
                    "message (perhaps one an earlier run left in the queue; lab.reset() empties it).")
        return f"Tasks {missing} were never completed: look at result.show_output() for what went wrong."
    twice = sorted(t for t, n in done.items() if n > 1)
    if twice:
        return (f"Tasks {twice} were done more than once: a worker did the work but its ack did not "
                "count (acked late, or after a crash); ack each message once, after its work.")
    if guess == {}:
        return "Write your prediction as a dict of worker -> tasks, e.g. {1: [1, 4], 2: [2, 5], 3: [3, 6]}."
    if guess is not None and guess != got:
        if guess == evidence.delivered_split(events):
            return ("Your prediction counts deliveries (attempts); tasks_by_worker() counts completed tasks, "
                    "and a delivery that was nacked or crashed is done again by some worker.")
        task, said, did = evidence.first_difference(guess, got)
        return (f"You predicted task {task} for worker {said}; worker {did} did it. "
                + _why_this_worker(events, task, said))
    expected = round_robin(len(published), workers)
    if got != expected:
        task, said, did = evidence.first_difference(expected, got)
        return (f"Task {task} went to worker {did}, not worker {said} as turn-taking would give. "
                + _why_this_worker(events, task, said)
                + " Use the exercise's six tasks on equally fast workers, so no two become free together.")
    return ""


def _why_this_worker(events: list[ev.Event], task: int, other: int | None) -> str:
    """Why ``task`` did not go to worker ``other``: what that worker still held when the task went out."""
    first = evidence.first_delivery(events, task)
    if first is None or other is None:
        return "A task goes to the next worker with room for it."
    held = evidence.held_at(events, other, first.t)
    if held:
        return (f"When task {task} went out, worker {other} was still busy with task(s) {held}, "
                f"and a task goes to the next worker with room for it.")
    return f"When task {task} went out, worker {other} was free too: the broker gave it to the next in turn."


_RECEIVED = re.compile(r"Received\s+'?\"?Task (\d+)")


def tasks_in_output(text: str) -> list[int]:
    """Task numbers a worker printed as received, in order (" [x] Received 'Task 3...'" -> 3)."""
    return [int(n) for n in _RECEIVED.findall(text or "")]


def check_two_terminals(outputs: Iterable[str] | None) -> Check:
    """Two worker programs' printed output: one received tasks 1 and 3, the other 2 and 4."""
    name = "Two terminals share the lesson's four tasks"
    outputs = list(outputs or ())
    got = [tasks_in_output(text) for text in outputs]
    expected = "[1, 3] and [2, 4], one list per terminal"
    done = sum(len(re.findall(r"\[x\] Done", text or "")) for text in outputs)
    if not outputs:
        hint = "Nothing to check yet: pass the text each worker printed, e.g. [text1, text2]."
    elif len(outputs) != 2:
        hint = (f"{len(outputs)} worker output(s): start exactly two workers (python worker.py in two "
                "terminals) before sending the tasks, and pass both outputs.")
    elif not any(got):
        hint = ("No ' [x] Received' line in either output: pass what worker.py printed, "
                "not what new_task.py printed.")
    elif sorted(got) != [[1, 3], [2, 4]]:
        hint = ("The tasks were not shared in turns: start both workers before sending the first task "
                "(a worker started late misses the tasks already handed out), and send the four tasks in order.")
    elif done != 4:
        hint = (f"'Done' was printed {done} time(s), not 4: wait until both workers finish "
                "before stopping them.")
    else:
        hint = ""
    return verdict(name, expected, got, hint)
