"""Self-check for notebook 04's exercise: a publisher that hears a full queue say no and publishes again.

``full_queue`` is the check, a pure function of what the learner's ``send(channel, queue, tasks)`` did (a
``FullQueueTrial``).  The notebook calls ``lessons.full_queue.check_full_queue``, which runs ``send`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Check, verdict

__all__ = ["FullQueueTrial", "full_queue"]


@dataclass
class FullQueueTrial:
    """What happened when the learner's ``send`` met a queue that was often full."""

    tasks: list[str]
    received: list[str] = field(default_factory=list)  # bodies the consumer got, in order
    transient: int = 0  # of those, how many were not persistent
    refusals: int = 0  # NackError raised by basic_publish inside send
    calls: list[str] = field(default_factory=list)  # confirm_delivery / basic_publish / queue_declare, in order
    error: str | None = None  # what send() raised, in one line

    @property
    def confirmed(self) -> bool:
        """confirm_delivery() before the first basic_publish."""
        calls = self.calls
        return "confirm_delivery" in calls and (
            "basic_publish" not in calls or calls.index("confirm_delivery") < calls.index("basic_publish"))


FULL = "A publisher that hears 'no' and publishes again: every task arrives once, persistent"


def full_queue(trial: FullQueueTrial) -> Check:
    """Every task reached the consumer exactly once, persistent, from a publisher in confirm mode."""
    expected = f"all {len(trial.tasks)} tasks received once each, persistent; confirms on; refusals published again"
    missing = [t for t in trial.tasks if t not in trial.received]
    twice = sorted({t for t in trial.received if trial.received.count(t) > 1})
    got = (f"{len(trial.received)} received for {len(trial.tasks)} tasks; missing: {missing or 'none'}; twice: "
           f"{twice or 'none'}; {trial.refusals} refusal(s) heard; "
           f"{'confirms on' if trial.confirmed else 'no confirms'}" + (f"; send() raised {trial.error}" if trial.error
                                                                        else ""))
    return verdict(FULL, expected, got, _full_queue_problem(trial, missing, twice))


def _full_queue_problem(trial: FullQueueTrial, missing: list[str], twice: list[str]) -> str:
    if trial.error and "NackError" in trial.error:
        return ("send() stopped at the first refusal: the queue was full (x-overflow: reject-publish) and the broker "
                "said no with a basic.nack, which pika raises as NackError. Catch pika.exceptions.NackError, wait a "
                "moment (time.sleep(0.05): the consumer needs time to make room) and publish the same task again.")
    if trial.error:
        return f"send() raised {trial.error}; fix that first. (The queue exists already: do not declare it again.)"
    if missing and not trial.confirmed:
        return (f"Tasks {missing} vanished: without confirm_delivery() the full queue's refusals never reach send(), "
                "so it cannot publish them again. Call channel.confirm_delivery() before the first publish; then "
                "basic_publish raises NackError when the queue refuses a message.")
    if missing:
        return (f"Tasks {missing} were refused and never published again: after a NackError, publish the same task "
                "again (after a short wait) until basic_publish returns.")
    if twice:
        return (f"Tasks {twice} arrived twice: publish again only what was refused (NackError); a basic_publish that "
                "returned means the broker has the message.")
    if trial.transient:
        return (f"{trial.transient} message(s) arrived transient: publish with properties=pika.BasicProperties("
                "delivery_mode=pika.DeliveryMode.Persistent), so the queue keeps them across a restart.")
    if not trial.refusals:
        return ("The queue never refused a task, so the check saw no 'no' to handle: publish all tasks in one go, "
                "without waiting between them.")
    return ""
