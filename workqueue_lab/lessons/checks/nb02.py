"""Self-checks for notebook 02, acknowledgements: a worker crashes, and nothing is lost."""

from __future__ import annotations

from ...record import events as ev
from . import evidence
from .base import Check, events_of, not_a_run, verdict

__all__ = ["check_nothing_lost"]


def check_nothing_lost(result: object) -> Check:
    """A worker crashed, yet every published task was completed and none was lost.

    ``result`` is what ``lab.run`` returned (or its events).  The hint names the cause when a task
    is missing: auto-ack, an ack never sent, an ack for the wrong delivery tag, or a nack/reject
    with requeue=False on a queue that has no dead-letter queue.  It also refuses a run where nothing
    was lost by luck: an ack sent before the work (the crash then ends a task already acknowledged),
    or an ack naming a fixed delivery tag (the broker closes the channel and everything is done again).
    """
    name = "Nothing lost when a worker crashes"
    events = events_of(result)
    if events is None:
        return not_a_run(name, result, "run the crashing scenario with your fix and pass its result.")
    published = ev.published(events)
    done = ev.completed(events)
    lost = [t for t in published if t not in done]
    crashes = sum(e.kind == ev.CRASH for e in events)
    redelivered = sorted({e.task for e in events if e.kind == ev.DELIVER and e.redelivered and e.task is not None})
    expected = "a crash, then every task completed (the crashed worker's ones redelivered), none lost"
    got = (f"{crashes} crash(es); {len(published) - len(lost)} of {len(published)} tasks completed; "
           f"lost: {lost or 'none'}; redelivered: {redelivered or 'none'}")
    return verdict(name, expected, got, _hint(events, published, lost, crashes, redelivered))


def _hint(events: list[ev.Event], published: list[int], lost: list[int], crashes: int,
          redelivered: list[int]) -> str:
    if not crashes:
        return ("No worker crashed: keep workers=[crashing, lab.WorkerSpec()] as in part 1 — "
                "the point is to survive the crash, not to avoid it.")
    if not published:
        return "Nothing was published: pass tasks=six_tasks to lab.run."
    if lost:
        return _why_lost(events, lost)
    if early := evidence.acked_before_crash(events):
        return (f"Your callback acknowledged task {early[0]} before doing it: the worker crashed during the work, "
                "after RabbitMQ had already forgotten the message, so the task counts as done but was never "
                "finished. Call "
                "ch.basic_ack(delivery_tag=method.delivery_tag) as the callback's last line, after lab.work(...).")
    if strays := evidence.stray_acks(events):
        return _wrong_tag(events, strays)
    if not redelivered:
        return ("Nothing was redelivered, so the crash cost nothing to begin with: keep prefetch=0, so the "
                "crashing worker holds several tasks when it dies.")
    return ""


def _why_lost(events: list[ev.Event], lost: list[int]) -> str:
    if evidence.auto_acked(events):
        return (f"auto_ack=True (ack='auto'): RabbitMQ forgot each message the moment it sent it, so the "
                f"tasks the crashed worker held ({lost}) were lost with it. Run with ack='manual' and "
                "call ch.basic_ack(delivery_tag=method.delivery_tag) after lab.work(...).")
    dropped = [t for t in evidence.dropped(events) if t in lost]
    if dropped:
        return (f"basic_nack/basic_reject with requeue=False dropped tasks {dropped}: this queue has no "
                "dead-letter queue, so RabbitMQ discarded them. Use requeue=True to give a task back, "
                "or declare a dead-letter exchange to keep it.")
    strays = evidence.stray_acks(events)
    if strays or evidence.unknown_tag_closures(events):
        return _wrong_tag(events, strays)
    stuck = [t for t in evidence.never_acked(events) if t in lost]
    if stuck or not any(e.kind == ev.ACK for e in events):
        shown = stuck or lost
        return (f"Tasks {shown} were delivered but never acknowledged: they stay unacked until the worker's "
                "channel closes (when it quits, or when the broker's consumer timeout, 30 minutes by default, "
                "closes it) and are then redelivered, but they never count as done. End the callback with "
                "ch.basic_ack(delivery_tag=method.delivery_tag).")
    return (f"Tasks {lost} were never completed: look at result.show_output() and result.timeline() "
            "for what happened to them.")


def _wrong_tag(events: list[ev.Event], strays: list[ev.Event]) -> str:
    named = dict.fromkeys(f"tag {e.tag} on worker {e.worker}" for e in strays)  # each once, in order
    shown = ", ".join(list(named)[:3]) or "an unknown tag"
    closed = len(evidence.unknown_tag_closures(events))
    return (f"An ack named a delivery the worker did not hold ({shown}): RabbitMQ closed the channel "
            f"{closed or 'at least once'} time(s) for an unknown delivery tag (PRECONDITION_FAILED), and every "
            "message on it went back to the queue to be done again. Ack the message you are handling: "
            "ch.basic_ack(delivery_tag=method.delivery_tag), never a fixed number.")
