"""When a run is over, and what it lost: read from the run's log and, where the log cannot say, the broker."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from .. import settings
from ..record import events as ev
from ..record.state import FINAL, PENDING

if TYPE_CHECKING:
    from ..broker.handle import Broker
    from ..record.state import RunState
    from .topology import Topology

logger = logging.getLogger(__name__)


class Run(Protocol):
    """What of a run (``engine.run.Run``) its ending is read from."""

    state: RunState
    log: ev.EventLog
    workers: Sequence
    broker: Broker
    queue: str
    topology: Topology
    _task_ids: Mapping


def quiet_period() -> float:
    """Seconds without an event after which a run with nothing running and nothing ready is over."""
    return max(0.5, 2 * settings.time_scale())


def finished(run: Run) -> bool:
    """Every task settled, every worker dead, or quiet with nothing running and nothing ready."""
    state = run.state.feed(run.log)
    if state.settled(len(run._task_ids)):
        # a rejected task may be on its way through a retry queue (its RETRY_WAIT still ms behind)
        return not (state.counts().get("dropped") and in_retry_queues(run.broker, run.topology))
    if all(w.dead for w in run.workers):
        return True
    # Quiet for a while: nothing running, nothing ready -> whatever is missing will not come.
    if not state.seen or time.monotonic() - run.log.t0 - state.last_t < quiet_period():
        return False
    if state.open_attempts:  # a crash or reconnect closes attempts too
        return False
    try:
        with run.broker.channel() as ch:
            if ch.queue_declare(queue=run.queue, passive=True).method.message_count:
                return False
    except Exception as exc:  # cannot look: keep waiting (the timeout still ends it)
        logger.debug("could not read %s's message count: %s", run.queue, exc)
        return False
    return not in_retry_queues(run.broker, run.topology)  # a message waiting out its TTL is still coming back


def in_retry_queues(broker: Broker, topology: Topology) -> bool:
    """True while a rejected message waits in the topology's retry queue: its task is not dropped but
    coming back (the tap's RETRY_WAIT event may still be a few ms behind the rejection)."""
    retry = [topology.name(q.name) for q in topology.queues if q.role == "retry"]
    if not retry:
        return False
    try:
        with broker.channel() as ch:
            return any(ch.queue_declare(queue=q, passive=True).method.message_count for q in retry)
    except Exception as exc:  # cannot tell now: the next check asks again
        logger.debug("retry queue check failed: %s", exc)
        return True


def record_lost(run: Run) -> None:
    """After the workers stopped: record LOST for each task not done or dropped that is in no queue.

    Only when the queue is empty and nobody else consumes from it can the lab tell: otherwise
    the missing tasks may still be waiting (or be another program's), and nothing is recorded.
    """
    states = run.state.feed(run.log).states
    missing = [t for t in sorted(set(run._task_ids.values())) if states.get(t, PENDING) not in FINAL]
    if not missing:
        return
    try:
        with run.broker.channel() as ch:
            ok = ch.queue_declare(queue=run.queue, passive=True).method
    except Exception as exc:  # the broker is gone or the queue deleted: the lab cannot tell
        logger.debug("not recording lost tasks: %s", exc)
        return
    if ok.message_count or ok.consumer_count or in_retry_queues(run.broker, run.topology):
        return
    for task in missing:
        run.log.record(ev.LOST, None, task, detail="published, never completed, in no queue")
