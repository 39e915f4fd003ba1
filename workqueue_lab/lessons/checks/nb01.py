"""Self-checks for notebook 01, the work-queue pattern: round robin vs first free, and two terminals.

Two dispatch rules give the same split on the lesson's four tasks but not in general:

* prefetch 0 (no limit): RabbitMQ deals the messages out in strict turns, whatever they cost
  (``round_robin``);
* prefetch 1: a worker holds one unacknowledged message, so the next task goes to the first
  worker that is free (``first_free``, computed from the tasks' lengths).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ...engine.scenario import numbered_tasks
from ...record import events as ev
from . import evidence
from .base import Check, events_of, not_a_run, verdict
from .prediction import Locked, lock

__all__ = ["THIRD_WORKER_TASKS", "round_robin", "first_free", "lengths_sent", "check_round_robin", "lock_prediction",
           "check_third_worker", "tasks_in_output", "check_two_terminals"]

# Exercise 1: six tasks on three workers at prefetch 1.  Lengths chosen so that no two workers are
# ever free at the same moment (no tie for the broker to break) and so that "the first worker that
# is free" and "the next in turn" give different splits.
THIRD_WORKER_TASKS = numbered_tasks([5, 1, 2, 3, 3, 3])


def round_robin(tasks: int, workers: int) -> dict[int, list[int]]:
    """Strict turn-taking: worker w gets tasks w, w + workers, w + 2*workers, ..."""
    return {w: list(range(w, tasks + 1, workers)) for w in range(1, workers + 1)}


def first_free(lengths: Sequence[int], workers: int) -> dict[int, list[int]] | None:
    """Prefetch 1 on equally fast workers: each task goes to the worker that is free first.

    ``lengths`` are the tasks' seconds of work, in publish order.  The first ``workers`` tasks go out
    one per worker, in the order the workers registered.  None when two workers become free at the
    same moment while tasks still wait: then the broker's choice is a race, not a rule.
    """
    free_at = {w: 0.0 for w in range(1, workers + 1)}
    split: dict[int, list[int]] = {w: [] for w in free_at}
    for task, length in enumerate(lengths, start=1):
        soonest = min(free_at.values())
        ready = [w for w, t in free_at.items() if t == soonest]
        if len(ready) > 1 and soonest > 0:
            return None
        worker = ready[0]
        split[worker].append(task)
        free_at[worker] = soonest + length
    return {w: tasks for w, tasks in split.items() if tasks}


def lengths_sent(events: Sequence[ev.Event]) -> list[int]:
    """Seconds of work of each published task (its dots), in publish order."""
    return [e.detail.count(".") for e in events if e.kind == ev.PUBLISH and e.task is not None]


def check_round_robin(result: object, workers: int = 3,
                      predicted: Mapping[int, Sequence[int]] | None = None) -> Check:
    """Every task done exactly once, dealt out in strict turns between ``workers`` workers.

    Strict turns is what prefetch 0 gives.  At prefetch 1 a run passes only when the first free
    worker happened to be the next in turn; when it was not, the hint says which rule applied.
    ``predicted`` (``{worker: [tasks]}``) is checked against the run as well.
    """
    name = f"Round robin on {workers} workers"
    events = events_of(result)
    if events is None:
        return not_a_run(name, result, f"run lab.run(callback, ..., workers={workers}) and pass its result.")
    published = ev.published(events)
    got = ev.tasks_by_worker(events)
    guess = evidence.normalise(predicted)
    turns = round_robin(len(published), workers)
    expected = guess if guess else turns
    hint = _dispatch_hint(events, workers, published, got, guess)
    if not hint and got != turns:
        task, said, did = evidence.first_difference(turns, got)
        hint = (f"Task {task} went to worker {did}, not worker {said} as strict turns would give. "
                + _why_this_worker(events, task, said) + _rule_of(events))
    return verdict(name, expected, got, hint)


def lock_prediction(prediction: object) -> Locked:
    """Exercise 1's prediction, locked before the run: ``{worker: [tasks]}`` as written now."""
    return lock(prediction)


def check_third_worker(result: object, predicted: Locked | None = None) -> Check:
    """Exercise 1: THIRD_WORKER_TASKS on three workers at prefetch 1, with a prediction locked first.

    ``predicted`` is what ``lock_prediction`` returned, in the cell before the run.  Expected is what
    the first-free rule gives for the tasks that were actually sent; the hint names what differs (no
    prediction, one locked after the run, other tasks, worker count, prefetch, missing acks) or, for a
    wrong prediction, the first task that went elsewhere and why.
    """
    name = "A third worker: who does which task at prefetch 1"
    expected = first_free(lengths_of(THIRD_WORKER_TASKS), 3)
    if not isinstance(predicted, Locked) or predicted.empty:
        said = "no prediction" if predicted is None or getattr(predicted, "empty", False) else repr(predicted)
        return verdict(name, expected="your prediction, locked before the run", got=said,
                       hint="Write your prediction first: my_prediction = {1: [...], 2: [...], 3: [...]}, and "
                            "lock it with locked = nb01.lock_prediction(my_prediction); then run lab.run(...) and "
                            "this check with predicted=locked.")
    guess = evidence.normalise(predicted.values[0])
    events = events_of(result)
    if events is None:
        return not_a_run(name, result, "run lab.run(callback, tasks=nb01.THIRD_WORKER_TASKS, workers=3, "
                                       "prefetch=1) and pass its result.")
    if not predicted.before(getattr(result, "t0", None)):
        return verdict(name, expected="a prediction locked before the run", got="locked after the run started",
                       hint="You locked the prediction after the run had started, when its answer could already "
                            "be seen. Lock it (nb01.lock_prediction), then run lab.run(...) again and check.")
    got = ev.tasks_by_worker(events)
    sent = lengths_sent(events)
    if sent != lengths_of(THIRD_WORKER_TASKS):
        return verdict(name, expected, got, f"The run sent tasks of {sent} seconds; the exercise sends "
                       f"{lengths_of(THIRD_WORKER_TASKS)}: pass tasks=nb01.THIRD_WORKER_TASKS to lab.run.")
    prefetch = evidence.prefetch_of(events)
    if prefetch != 1:
        return verdict(name, expected, got, f"The workers ran with prefetch={prefetch}; the exercise is about "
                       "the lesson's prefetch=1: pass prefetch=1 to lab.run.")
    hint = _dispatch_hint(events, 3, ev.published(events), got, None)
    if not hint and guess != got:
        hint = _wrong_prediction(events, guess, got)
    if not hint and got != expected:
        task, said, did = evidence.first_difference(expected, got)
        hint = (f"Task {task} went to worker {did}, not worker {said} as 'first free' gives. "
                + _why_this_worker(events, task, said) + " Was the machine very busy? Run it again.")
    return verdict(name, guess if guess else expected, got, hint)


def lengths_of(tasks: Sequence[str]) -> list[int]:
    return [t.count(".") for t in tasks]


def _wrong_prediction(events: list[ev.Event], guess: dict[int, list[int]], got: dict[int, list[int]]) -> str:
    if guess == {}:
        return "Write your prediction as a dict of worker -> tasks, e.g. {1: [1, 4], 2: [2, 5], 3: [3, 6]}."
    if guess == evidence.delivered_split(events) and guess != got:
        return ("Your prediction counts deliveries (attempts); tasks_by_worker() counts completed tasks, "
                "and a delivery that was nacked or crashed is done again by some worker.")
    task, said, did = evidence.first_difference(guess, got)
    text = f"You predicted task {task} for worker {said}; worker {did} did it. " + _why_this_worker(events, task, said)
    published = ev.published(events)
    if guess == round_robin(len(published), len(evidence.workers_in(events))):
        text += (" Your prediction is strict turn-taking, which is what prefetch=0 does; at prefetch=1 "
                 "the next task goes to the first worker that is free.")
    return text


def _rule_of(events: list[ev.Event]) -> str:
    prefetch = evidence.prefetch_of(events)
    if prefetch == 1:
        return (" At prefetch=1 the next task goes to the first worker that is free, which is strict turns "
                "only when tasks take equal time; prefetch=0 deals the messages out in turns.")
    return ""


def _dispatch_hint(events: list[ev.Event], workers: int, published: list[int],
                   got: dict[int, list[int]], guess: dict[int, list[int]] | None) -> str:
    """What went wrong with the run itself (workers, tasks, acks) or with the prediction; "" if nothing."""
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
    if guess is not None and guess != got:
        return _wrong_prediction(events, guess, got)
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
