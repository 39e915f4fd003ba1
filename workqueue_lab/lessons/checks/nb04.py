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

__all__ = ["publisher", "check_publisher"]

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
