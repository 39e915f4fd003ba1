"""What happened to each task of a run that met failures, read from its event log: its story (attempts, failures,
retries, how it ended) and whether every task has an end.  The one reading of a failure run: the notebook 05
checks, the failure panel and ``failures.run_until`` all ask here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import events as ev

__all__ = ["TaskStory", "task_stories", "settled"]


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


def settled(events: Sequence[ev.Event], tasks: Sequence[int]) -> bool:
    """Every task has an end: its last attempt was acked and nothing of it waits to come back, or it was
    parked or dead-lettered.  (A retried task is acked too, but a RETRY / RETRY_WAIT after its last
    delivery says a copy is on its way back.)  An attempt still open anywhere means not yet."""
    atts = ev.attempts(events)
    if any(a.outcome == "open" for a in atts):
        return False
    ended = {e.task for e in events if e.kind in (ev.PARKED, ev.DEAD_LETTER)}
    back = {e.task: e.t for e in events if e.kind in (ev.RETRY, ev.RETRY_WAIT) and e.task is not None}
    last: dict[int, ev.Attempt] = {}
    for a in atts:  # by start time: the last one wins
        if a.task is not None:
            last[a.task] = a
    for task in tasks:
        if task in ended:
            continue
        a = last.get(task)
        if a is None or a.outcome not in ev.SETTLED or back.get(task, -1.0) >= a.start:
            return False
    return True
