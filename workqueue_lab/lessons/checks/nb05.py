"""Self-checks for notebook 05, when tasks fail: retry a failing task a few times, then park it."""

from __future__ import annotations

from dataclasses import dataclass

from ...record import events as ev
from .base import Check, events_of, not_a_run, verdict

__all__ = ["check_retry_then_park", "task_stories", "TaskStory"]


@dataclass(frozen=True)
class TaskStory:
    """What happened to one task: how often it reached a callback, failed, was retried and how it ended."""

    task: int
    attempts: int
    failures: int
    requeued: int  # nacks/rejects with requeue=True: back at once, with nothing counting
    retried: int  # copies sent away (a republish, or a reject the broker routed to a retry queue)
    ended: str  # "parked", "dead-lettered", "done" (last attempt acked and succeeded), or "" (no end)
    acked_failures: int  # attempts that failed and were acked with no copy sent anywhere: lost


def task_stories(events: list[ev.Event]) -> dict[int, TaskStory]:
    """One ``TaskStory`` per published task, read from the events."""
    stories = {}
    for task in ev.published(events):
        mine = [e for e in events if e.task == task]
        attempts = failures = requeued = retried = acked_failures = 0
        failed = copied = False  # within the current attempt
        last_ok = False
        for e in mine:
            if e.kind == ev.DELIVER:
                attempts += 1
                failed = copied = False
            elif e.kind == ev.ERROR:
                failures += 1
                failed = True
            elif e.kind == ev.RETRY:
                copied = True
                retried += 1
            elif e.kind == ev.RETRY_WAIT and not copied:  # a reject the broker dead-lettered to a retry queue
                retried += 1
            elif e.kind in (ev.NACK, ev.REJECT) and e.worker is not None:
                requeued += bool(e.requeue)
                last_ok = False
            elif e.kind == ev.ACK and e.worker is not None:
                if failed and not copied:
                    acked_failures += 1
                last_ok = not failed and not copied
        kinds = {e.kind for e in mine}
        ended = ("parked" if ev.PARKED in kinds else "dead-lettered" if ev.DEAD_LETTER in kinds
                 else "done" if last_ok else "")
        stories[task] = TaskStory(task, attempts, failures, requeued, retried, ended, acked_failures)
    return stories


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
