"""Runs for notebook 05 (when tasks fail): stop when every task has an end, or when a loop is plain.

``lab.run`` waits until every task is acknowledged; a task a callback gives up on (republished to a
parking lot, then acked) or that the broker dead-letters has an end too, and a task requeued forever
never has one.  ``run_until`` starts the workers, publishes, and stops as soon as ``until(events)``
holds (by default: every task acked for good, parked or dead-lettered), or when one task has been
delivered ``max_deliveries`` times (a loop), or after ``timeout`` seconds.

``retry_topology`` is the lesson's delayed-retry topology with what it lacks added (the exchange its
work queue names, declared and bound to the retry queue), plus a parking lot for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..broker import registry
from ..engine import topology as T
from ..record import events as ev
from ..record.stories import settled  # the one reading of "every task has an end", offered to notebook 05

if TYPE_CHECKING:
    from ..engine.result import RunResult

__all__ = ["run_until", "settled", "deliveries", "retry_topology", "backoff_topology", "handling_callback",
           "topology_for", "HANDLINGS", "WORK", "RETRY", "RETRY_EXCHANGE", "BACKOFF_EXCHANGE"]

# The lesson's names (base names: the learner's prefix is added when declared).
WORK, RETRY, RETRY_EXCHANGE = "tasks", "tasks_retry", "retry_exchange"
# Everything notebook 05 declares, known to reset() from the moment the notebook imports this module, so the
# first lab.reset() of a fresh kernel also removes what an earlier kernel left (the lesson's unused ``dlx``
# exchange, the per-message TTL queues of part 6).
registry.register([WORK, RETRY, "ttl_tasks", "ttl_wait", "ttl_wait_long", "ttl_wait_short"],
                  [RETRY_EXCHANGE, "dlx", "ttl_exchange"])
# The back-off exercise: one wait queue per delay, fed through one exchange by routing key.
BACKOFF_EXCHANGE = "backoff_exchange"
BACKOFF_WAITS = (1, 2, 4)  # the retries wait 1, 2 and 4 times the base delay
registry.register([f"tasks_wait_{n}" for n in BACKOFF_WAITS], [BACKOFF_EXCHANGE])


def retry_topology(ttl_ms: int, parking: bool = True) -> T.Topology:
    """tasks --reject--> retry_exchange --(key tasks)--> tasks_retry (TTL) --expire--> tasks; parking lot beside.

    The queues are declared exactly as the lesson declares them; what the lesson lacks is the exchange
    its work queue dead-letters to (``retry_exchange``) and the binding from it to ``tasks_retry``.
    """
    queues = [T.QueueSpec(WORK, dead_letter_exchange=RETRY_EXCHANGE, dead_letter_routing_key=WORK),
              T.QueueSpec(RETRY, role="retry", message_ttl=ttl_ms, dead_letter_exchange="",
                          dead_letter_routing_key=WORK)]
    exchanges = [T.ExchangeSpec(RETRY_EXCHANGE)]
    bindings = [T.Binding(RETRY_EXCHANGE, RETRY, WORK)]
    if parking:
        queues.append(T.QueueSpec(T.PARKING_KEY, role="parking"))
        exchanges.append(T.ExchangeSpec(T.PARKING_EXCHANGE))
        bindings.append(T.Binding(T.PARKING_EXCHANGE, T.PARKING_KEY, T.PARKING_KEY))
    return T.Topology(tuple(queues), tuple(exchanges), tuple(bindings))


def backoff_topology(base_ms: int) -> T.Topology:
    """tasks; tasks_wait_1, _2, _4 (TTL 1, 2, 4 x ``base_ms``, each expiring back into tasks), fed by
    ``backoff_exchange`` with routing keys wait_1, wait_2, wait_4; and the parking lot.

    ``tasks`` is declared as in ``retry_topology`` (a queue's arguments cannot change once it exists)."""
    queues = [T.QueueSpec(WORK, dead_letter_exchange=RETRY_EXCHANGE, dead_letter_routing_key=WORK)]
    queues += [T.QueueSpec(f"tasks_wait_{n}", role="retry", message_ttl=base_ms * n, dead_letter_exchange="",
                           dead_letter_routing_key=WORK) for n in BACKOFF_WAITS]
    bindings = [T.Binding(BACKOFF_EXCHANGE, f"tasks_wait_{n}", f"wait_{n}") for n in BACKOFF_WAITS]
    queues.append(T.QueueSpec(T.PARKING_KEY, role="parking"))
    bindings.append(T.Binding(T.PARKING_EXCHANGE, T.PARKING_KEY, T.PARKING_KEY))
    exchanges = (T.ExchangeSpec(BACKOFF_EXCHANGE), T.ExchangeSpec(T.PARKING_EXCHANGE),
                 T.ExchangeSpec(RETRY_EXCHANGE))  # what tasks' arguments name, though no copy goes that way here
    return T.Topology(tuple(queues), exchanges, tuple(bindings))


def deliveries(events: Sequence[ev.Event], task: int | None = None) -> int:
    """How many times a task (any task: None) reached a worker's callback."""
    return sum(1 for e in events if e.kind == ev.DELIVER and (task is None or e.task == task))


def run_until(callback, tasks: Sequence[str | bytes], topology: T.Topology | None = None, workers=1,
              until: Callable[[list[ev.Event]], bool] | None = None, max_deliveries: int = 10,
              timeout: float = 30.0, **start) -> RunResult:
    """Start ``workers`` on ``topology``, publish ``tasks``, stop when ``until(events)`` holds (default:
    every task settled, see ``settled``), when a task reached a callback ``max_deliveries`` times, or after
    ``timeout`` seconds (``result.timed_out``).  Returns the run's result; nothing is left running."""
    from ..engine.run import start as start_run

    run = start_run(callback, workers=workers, topology=topology, **start)
    try:
        ids = run.publish(tasks)
    except BaseException:
        run.stop()
        raise
    done = until or (lambda events: settled(events, ids))
    return run.wait(timeout, progress=False, until=lambda events: done(events) or _looping(events, max_deliveries))


def _looping(events: Sequence[ev.Event], limit: int) -> bool:
    counts: dict[int | None, int] = {}
    for e in events:
        if e.kind == ev.DELIVER:
            counts[e.task] = counts.get(e.task, 0) + 1
            if counts[e.task] >= limit:
                return True
    return False


# --- callbacks for the failure panel (experiments.failure_panel): one per way of handling a failure ----------
HANDLINGS = ("requeue", "dead-letter", "delayed retry")


def handling_callback(handling: str, max_retries: int = 3):
    """A callback that does the task and handles ``lab.TaskFailed`` the way ``handling`` says:
    requeue (``basic_nack(requeue=True)``), dead-letter (``requeue=False`` into the DLQ), or delayed retry
    (``requeue=False`` into the retry queue while the broker's x-death count is below ``max_retries``,
    then a copy to the parking lot and an ack)."""
    from ..engine.workers import TaskFailed, work

    if handling not in HANDLINGS:
        from ..errors import LabError

        raise LabError(f"Unknown failure handling {handling!r}; use one of: {', '.join(HANDLINGS)}.")

    def callback(ch, method, properties, body):
        try:
            work(body.decode())
        except TaskFailed:
            if handling == "requeue":
                ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
            elif handling == "dead-letter" or _rejections(properties) < max_retries:
                ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)
            else:
                _park(ch, method, properties, body)
            return
        ch.basic_ack(delivery_tag=method.delivery_tag)

    return callback


def topology_for(handling: str, ttl_ms: int) -> T.Topology:
    """The queues each handling needs: a DLQ beside the work queue, or the retry queue and the parking lot."""
    return retry_topology(ttl_ms) if handling == "delayed retry" else T.DEAD_LETTER


def _rejections(properties) -> int:
    """How often the broker dead-lettered this message out of the work queue (its x-death record)."""
    deaths = (getattr(properties, "headers", None) or {}).get("x-death") or []
    return sum(int(d.get("count", 0)) for d in deaths if d.get("reason") == "rejected")


def _park(ch, method, properties, body) -> None:
    import pika

    from .. import settings

    headers = dict(getattr(properties, "headers", None) or {})
    ch.basic_publish(settings.name(T.PARKING_EXCHANGE), settings.name(T.PARKING_KEY), body,
                     pika.BasicProperties(headers=headers, delivery_mode=2, message_id=properties.message_id))
    ch.basic_ack(delivery_tag=method.delivery_tag)
