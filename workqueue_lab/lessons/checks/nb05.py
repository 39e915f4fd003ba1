"""Self-checks for notebook 05, when tasks fail: retry a failing task a few times (waiting longer each
time), then park it, and never ack away a task whose copy the broker did not confirm."""

from __future__ import annotations

from ...record import events as ev
from ...record.stories import TaskStory, task_stories
from .base import Check, events_of, not_a_run, verdict

__all__ = ["check_retry_then_park", "check_backoff", "waits_of"]


def check_retry_then_park(result: object, max_retries: int = 3) -> Check:
    """The task that always fails gets ``max_retries`` retries (1 + max_retries attempts), then waits in
    the parking lot (or a dead-letter queue); a task that fails once is retried and done; nothing failed
    is acked away.  ``result`` is what ``run_until`` (or ``lab.run``) returned, or its events."""
    name = f"Retry a failing task {max_retries} times, then park it"
    events = events_of(result)
    if events is None:
        return not_a_run(name, result, "complete my_callback, run it with failures.run_until(...) and pass "
                                       "its result.")
    stories = task_stories(events)
    expected = (f"the always-failing task: {max_retries + 1} attempts (the first + {max_retries} retries), "
                "then parked; every other task done; no failed task acked away")
    got = "; ".join(_tell(s) for s in stories.values()) or "no tasks published"
    return verdict(name, expected, got, _hint(stories, max_retries))


def _tell(s: TaskStory) -> str:
    return f"task {s.task}: {s.attempts} attempt(s), {s.failures} failed, {s.ended or 'no end'}"


def _hint(stories: dict[int, TaskStory], max_retries: int) -> str:
    if not stories:
        return "Nothing was published: pass tasks=exercise_tasks."
    failing = [s for s in stories.values() if s.failures]
    if not failing:
        return "No task failed: keep workers=[flaky], whose lab.work() raises on tasks 1 and 2."
    lost = [s.task for s in failing if s.acked_failures]
    if lost:
        return (f"Lost: you acked a task that failed (task {lost[0]}) without sending a copy anywhere, so RabbitMQ "
                "forgot it and nobody will ever retry it. In the except-branch, publish a copy to the retry queue "
                "(or the parking lot) first, then ack the original.")
    looping = [s for s in failing if s.attempts > max_retries + 1 or s.requeued]
    if looping:
        s = looping[0]
        how = ("basic_nack(requeue=True) puts it straight back, and nothing counts the attempts"
               if s.requeued else f"nothing stops it after {max_retries} retries")
        return (f"You requeue forever: task {s.task} reached a callback {s.attempts} times ({how}; the run was "
                f"stopped). Count the retries in x-retry-count and park the task once it reaches {max_retries}.")
    unended = [s for s in failing if not s.ended]
    if unended:
        s = unended[0]
        return (f"Task {s.task} failed {s.failures} time(s) and has no end: it was neither retried to success nor "
                "parked. Publish a copy to the retry queue while retries remain, to the parking lot after that.")
    early = [s for s in failing if s.ended in ("parked", "dead-lettered") and s.attempts < max_retries + 1]
    if early:
        s = early[0]
        if s.attempts == 1:
            return (f"You parked on the first failure: task {s.task} never got a retry. Retry while x-retry-count "
                    f"is below {max_retries}, park only after that.")
        return (f"Task {s.task} was parked after {s.attempts} attempts: {max_retries} retries means "
                f"{max_retries + 1} attempts (the first one, then {max_retries} retries). Park when x-retry-count "
                f"has reached {max_retries} (>= {max_retries}), not before.")
    not_done = [s.task for s in stories.values() if s.ended not in ("done", "parked", "dead-lettered")]
    if not_done:
        return f"Tasks {not_done} were not done: a task that fails once must be retried and then acked."
    parked_ok = [s for s in failing if s.ended in ("parked", "dead-lettered")]
    if not parked_ok:
        return (f"No task reached the parking lot: the task that always fails should be parked after "
                f"{max_retries} retries.")
    return ""


def waits_of(events: list[ev.Event], task: int) -> list[str]:
    """The wait queues a task's copies arrived in, in order, without the learner's prefix ("tasks_wait_2")."""
    out = []
    for e in events:
        if e.kind == ev.RETRY_WAIT and e.task == task:
            into = ev.detail_fields(e.detail).get("into", "")
            out.append(next((w for w in (f"tasks_wait_{n}" for n in BACKOFF) if into.endswith(w)), into))
    return out


BACKOFF = (1, 2, 4)  # the retries wait in tasks_wait_1, _2 and _4 (failures.BACKOFF_WAITS)


def check_backoff(result: object) -> Check:
    """The exercise: retries wait 1, 2, then 4 times the base delay, each in its own queue; after 3 retries the
    task is parked; copies are published with ``mandatory=True`` on a confirming channel (``confirms=True``), and a
    failed task is acked only once its copy is safe."""
    name = "Back off: wait 1, 2, 4 x the delay between retries, then park; confirmed copies"
    events = events_of(result)
    if events is None:
        return not_a_run(name, result, "complete my_callback, run it with failures.run_until(..., confirms=True) "
                                       "and pass its result.")
    stories = task_stories(events)
    failing = [s for s in stories.values() if s.failures]
    expected = ("the always-failing task waits in tasks_wait_1, tasks_wait_2, tasks_wait_4, then is parked; the "
                "task that fails once waits in tasks_wait_1 and is done; copies mandatory, on a confirming channel")
    got = "; ".join(f"{_tell(s)}, waited in {waits_of(events, s.task) or 'nothing'}" for s in stories.values())
    hint = _hint(stories, len(BACKOFF)) or _backoff_hint(events, failing)
    return verdict(name, expected, got or "no tasks published", hint)


def _backoff_hint(events: list[ev.Event], failing: list[TaskStory]) -> str:
    for s in failing:
        waits = waits_of(events, s.task)
        wanted = [f"tasks_wait_{n}" for n in BACKOFF][:len(waits)]
        if waits != wanted:
            same = len(set(waits)) == 1 and len(waits) > 1
            why = ("every retry waited in the same queue, so the delay never grew" if same
                   else "the waits should grow: the first retry in tasks_wait_1, then tasks_wait_2, then tasks_wait_4")
            return (f"Task {s.task} waited in {waits}: {why}. Pick the routing key from x-retry-count: "
                    "wait_1 for the first retry, wait_2 for the second, wait_4 for the third.")
    ready = [e for e in events if e.kind == ev.READY]
    if not ready or not all(ev.detail_fields(e.detail).get("confirms") == "on" for e in ready):
        return ("The workers' channels were not in confirm mode, so basic_publish returned before the broker had the "
                "copy, and the ack after it could lose the task: run with failures.run_until(..., confirms=True).")
    copies = [e for e in events if e.kind == ev.RETRY]
    if any("mandatory=on" not in e.detail for e in copies):
        return ("A copy was published without mandatory=True: a copy no queue takes is then confirmed and dropped, "
                "and the original acked away. Publish every copy with mandatory=True.")
    return ""
