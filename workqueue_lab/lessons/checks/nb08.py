"""Self-check for notebook 08, the cluster: predict what a classic queue gives back when its node dies.

The notebook puts a classic queue on the node that leads the quorum ``task_queue``, publishes six
tasks to it with publisher confirms (odd ones persistent, even ones transient), kills that node, tries
to read the queue from a survivor, then starts the node again and reads what came back.  ``Outage``
is what it observed; ``prediction`` compares the learner's guess with it (a pure function).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .base import Check, verdict
from .prediction import Locked, lock

__all__ = ["CLASSIC_TASKS", "Outage", "lock_prediction", "prediction", "check_prediction"]

# Task n is persistent (delivery_mode=2) when n is odd, transient (delivery_mode=1) when even.
CLASSIC_TASKS = {n: n % 2 == 1 for n in range(1, 7)}

NAME = "Which classic-queue tasks can a worker get while the node is down, and after it is back?"


@dataclass(frozen=True)
class Outage:
    """What the classic queue held and gave back: task -> persistent, then the tasks a survivor could read
    while the queue's node was down, and the tasks in the queue after the node came back."""

    published: Mapping[int, bool]
    while_down: frozenset[int]
    after_return: frozenset[int]
    killed_at: float | None = None  # time.monotonic() of the kill: a prediction must be locked before it

    @property
    def persistent(self) -> frozenset[int]:
        return frozenset(t for t, p in self.published.items() if p)

    @property
    def transient(self) -> frozenset[int]:
        return frozenset(t for t, p in self.published.items() if not p)


def _as_tasks(value: object) -> frozenset[int] | None:
    """A set of task numbers from a set, list or tuple of ints; None if it is something else."""
    if isinstance(value, (set, frozenset, list, tuple)) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in value):
        return frozenset(value)
    return None


def _show(tasks: Iterable[int]) -> str:
    return "{" + ", ".join(str(t) for t in sorted(tasks)) + "}" if tasks else "set()"


def prediction(while_down: object, after_return: object, outage: Outage) -> Check:
    """The learner's two sets against what the broker did; the hint names the idea a wrong set misses."""
    expected = f"while down: {_show(outage.while_down)}, after return: {_show(outage.after_return)}"
    down, back = _as_tasks(while_down), _as_tasks(after_return)
    if while_down is None and after_return is None:
        return verdict(NAME, expected, "nothing yet",
                       "Nothing to check yet: replace None with two sets of task numbers, e.g. {1, 2}.")
    if down is None or back is None:
        return verdict(NAME, expected, f"while_down={while_down!r}, after_return={after_return!r}",
                       "Write each prediction as a set of task numbers from 1 to 6, e.g. {1, 3} (set() for none).")
    got = f"while down: {_show(down)}, after return: {_show(back)}"
    hints = []
    if down - outage.while_down:
        hints.append("A classic queue lives on one node, the one whose connection declared it: while that node "
                     "is down no other node can serve it (queue_declare and basic_consume answer 404 NOT_FOUND, "
                     "'home node ... is down'). Only a quorum queue has replicas on the other nodes.")
    elif outage.while_down - down:
        hints.append(f"A survivor did serve {_show(outage.while_down - down)} while the node was down.")
    gone_transient = back & (outage.transient - outage.after_return)
    kept_persistent = (outage.persistent & outage.after_return) - back
    if gone_transient:
        hints.append(f"Tasks {_show(gone_transient)} were transient (delivery_mode=1): a durable queue keeps "
                     "them in memory only, so they died with the node. Persistent messages survive a restart.")
    if kept_persistent:
        hints.append(f"Tasks {_show(kept_persistent)} were persistent "
                     "(delivery_mode=2) in a durable queue, and RabbitMQ confirmed them only once they were on "
                     "disk: a killed node reads them back when it starts again.")
    if not hints and back != outage.after_return:
        hints.append(f"After the node came back the queue held {_show(outage.after_return)}.")
    return verdict(NAME, expected, got, " ".join(hints))


def lock_prediction(while_down: object, after_return: object) -> Locked:
    """The two sets as the learner wrote them, locked now, before the kill."""
    return lock(while_down, after_return)


def check_prediction(locked: Locked | None = None, outage: Outage | None = None) -> Check:
    """What the notebook calls once the outage was observed (``outage``), on the prediction locked before the
    kill (``lock_prediction``); before that, or for a prediction locked too late, says what is missing."""
    if outage is None:
        return verdict(NAME, got="no outage observed yet",
                       hint="Run the cells that kill the node and start it again first, then check again.")
    if not isinstance(locked, Locked) or locked.empty:
        return verdict(NAME, got="no prediction locked before the kill",
                       hint="Write your two sets in the exercise cell and run it before part 3's kill: it locks them. "
                            "Predicting now, with the answer printed above, would prove nothing; run part 3 and 4 "
                            "again after locking.")
    if not locked.before(outage.killed_at):
        return verdict(NAME, got="prediction locked after the kill",
                       hint="You locked your prediction after the node was killed, when the answer could already "
                            "be seen. Lock it first, then run part 3 and part 4 again.")
    return prediction(*locked.values, outage)
