"""Self-check for notebook 04, durability: a publisher whose tasks survive a restart, and who knows it.

``publisher`` is the check, a pure function of what the learner's ``send(channel, queue, tasks)`` did
(a ``PublishTrial``).  ``check_publisher`` is what the notebook calls: it runs ``send`` on a fresh
queue first (``lessons.durability.try_publish``), then hands the facts to ``publisher``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .base import Check, verdict

if TYPE_CHECKING:
    from ...broker.handle import Broker
    from ..durability import PublishTrial
    from ..full_queue import FullQueueTrial

__all__ = ["publisher", "check_publisher", "full_queue", "check_full_queue"]

NAME = "A publisher whose tasks survive a restart, and who knows it"


def publisher(trial: PublishTrial) -> Check:
    """Every task in a durable queue, as a message that survives a restart, each confirmed by the broker.

    A quorum queue passes with transient messages too: it writes every message to disk.
    """
    expected = (f"{trial.tasks} tasks in a durable queue, every one persistent (delivery_mode=2), "
                "confirm_delivery() before the first publish")
    got = _describe(trial)
    return verdict(NAME, expected, got, "\n".join(_problems(trial)))


def _describe(trial: PublishTrial) -> str:
    if trial.in_queue is None:
        stored = "no queue on the broker"
    else:
        queue = f"{'durable' if trial.durable else 'non-durable'} {trial.kind} queue"
        stored = f"{trial.in_queue} messages in a {queue}, {trial.transient} of them transient"
    confirms = "confirms on" if trial.confirmed else ("confirms too late" if "confirm_delivery" in trial.calls
                                                       else "no confirms")
    error = f"; send() raised {trial.error}" if trial.error else ""
    return f"{trial.published} published; {stored}; {confirms}{error}"


def _problems(trial: PublishTrial) -> list[str]:
    """One sentence per mistake, most basic first, each saying why and what to change."""
    if trial.error:
        if "transient_nonexcl_queues" in trial.error:
            return [f"send() raised {trial.error}: this RabbitMQ refuses a non-durable queue that is not exclusive "
                    "(4.3 or later does by default, an older one if configured so). Declare it with "
                    "channel.queue_declare(queue=queue, durable=True)."]
        return [f"send() raised {trial.error}; fix that first (run send on a channel yourself to see the "
                "whole error)."]
    if not trial.declared or trial.in_queue is None:
        return ["send() did not declare the queue it was given, so the broker had nowhere to keep the tasks "
                "(the default exchange drops a message for a queue that does not exist). Start with "
                "channel.queue_declare(queue=queue, durable=True)."]
    problems = []
    if trial.in_queue != trial.tasks:
        problems.append(f"The queue holds {trial.in_queue} messages for {trial.tasks} tasks: publish each task "
                        "once, with exchange='' and routing_key=queue.")
    if not trial.durable:
        problems.append("The queue is not durable: a restart deletes it, with every message in it, persistent "
                        "or not (part 1's table). Declare it with durable=True.")
    if trial.transient and trial.kind == "classic":
        problems.append(f"{trial.transient} of the messages are transient: a durable classic queue comes back "
                        "after a restart without them. Publish with properties=pika.BasicProperties("
                        "delivery_mode=pika.DeliveryMode.Persistent).")
    if "confirm_delivery" not in trial.calls:
        problems.append("No publisher confirms: basic_publish returned as soon as the bytes were in the socket, "
                        "so send() cannot know the broker has a task (part 4). Call channel.confirm_delivery() "
                        "before the loop; then each basic_publish returns only once the broker has confirmed it "
                        "(for a persistent message in a durable queue: written to disk), and raises otherwise.")
    elif not trial.confirmed:
        problems.append("confirm_delivery() came after the first basic_publish: the tasks published before it "
                        "were never confirmed. Call it once, before the loop.")
    return problems


def check_publisher(send: Callable, broker: Broker | None = None) -> Check:
    """Run the learner's ``send(channel, queue, tasks)`` on a fresh queue of ``broker``, then judge it."""
    from ...broker.discovery import find_broker
    from ..durability import try_publish

    if not callable(send):
        return verdict(NAME, got=type(send).__name__, hint="Pass your function: check_publisher(send).")
    return publisher(try_publish(send, broker or find_broker()))


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


def check_full_queue(send: Callable, broker: Broker | None = None) -> Check:
    """Run the learner's ``send(channel, queue, tasks)`` against a small queue that refuses when full, then judge."""
    from ...broker.discovery import find_broker
    from ..full_queue import try_full_queue

    if not callable(send):
        return verdict(FULL, got=type(send).__name__, hint="Pass your function: check_full_queue(send).")
    return full_queue(try_full_queue(send, broker or find_broker()))
