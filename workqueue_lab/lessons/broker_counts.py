"""What a queue holds, as the broker reports it: the counts the notebooks' claims are checked against, asked
so that a count is what the broker really holds (live), not a statistic waiting for its next refresh."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..broker.handle import Broker

logger = logging.getLogger(__name__)


def seconds_until_ready(broker: Broker, queue: str, within: float, count: int = 1) -> float | None:
    """Seconds until ``queue`` holds ``count`` ready messages (polled over one AMQP connection), or None."""
    started = time.monotonic()
    conn = broker.connect()
    try:
        ch = conn.channel()
        while time.monotonic() - started < within:
            if ch.queue_declare(queue=queue, passive=True).method.message_count >= count:
                return time.monotonic() - started
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return None


# --- queue counts as the broker reports them ----------------------------------------------------


def queue_counts(broker: Broker, queue: str, wait_for: tuple[int, int] | None = None,
                 within: float = 8.0) -> tuple[int, int | None]:
    """The queue's (ready, unacked) as RabbitMQ reports them (``broker.queue_stats``, live counts).

    With ``wait_for``, keep asking until the broker reports exactly that or ``within`` seconds have
    passed, then return what it last said: a publish on another connection, or a connection that is
    closing, takes a moment to reach the queue.  A broker that reports no unacked count (a URL without
    the management API) is waited on for the ready count alone: waiting for a number it never gives
    would only cost ``within`` seconds of silence.
    """
    deadline = time.monotonic() + within
    while True:
        stats = broker.queue_stats(queue)
        counts = (stats.ready, stats.unacked)
        if wait_for is None or time.monotonic() > deadline or _matches(counts, tuple(wait_for)):
            return counts
        time.sleep(0.2)


def _matches(counts: tuple[int, int | None], wanted: tuple[int, int]) -> bool:
    return counts == wanted or (counts[1] is None and counts[0] == wanted[0])


def reports_unacked(broker: Broker) -> bool:
    """Whether this broker tells the lab a queue's unacked count: rabbitmqctl inside a node it controls, or
    a management API this user may read (a class's learner has neither: their claims are NOT CHECKED)."""
    return broker.control.can("stats") or isinstance(broker.management_api("overview"), dict)


@dataclass(frozen=True)
class Sampling:
    """How ``run.watch_queue()`` gets its counts from a broker: in words, how often, and how long a state
    must last to be sure to show in the samples."""

    text: str
    every: float
    lasting: float


def sampling(broker: Broker) -> Sampling:
    """What a notebook may claim about ``run.watch_queue()`` on this broker (it mirrors how the run samples)."""
    if broker.control.can("stats"):  # what run.watch_queue() asks too: it samples inside the node
        return Sampling("ten times a second, from inside the RabbitMQ node (live counts)", 0.1, 1.0)
    if broker.mgmt_url:
        return Sampling("every half second, from the management API (the queue's own counts, asked at each "
                        "sample)", 0.5, 1.5)
    return Sampling("every half second, with a passive queue declare (ready only: this broker reports no "
                    "unacked count)", 0.5, 1.0)

def ready_now(broker: Broker, queue: str) -> int:
    """Messages ready in ``queue`` right now, as RabbitMQ answers a passive declare (live, no tool to start)."""
    with broker.channel() as ch:
        return ch.queue_declare(queue=queue, passive=True).method.message_count


def consumer_prefetch(broker: Broker, queue: str) -> list[int] | None:
    """The prefetch count RabbitMQ holds for each consumer of ``queue`` (sorted), or None if it cannot tell.

    Asks rabbitmqctl (a node the lab controls) or else the management API: what the broker applies, not
    what the lab's workers say they asked for.
    """
    import urllib.parse

    from ..errors import LabError

    proc = None
    if broker.control.can("ctl"):
        try:
            proc = broker.control.ctl("list_consumers", "-q", "--no-table-headers", "queue_name", "prefetch_count")
        except LabError as exc:  # the CLI failed: ask the management API instead
            logger.debug("list_consumers: %s", exc)
    if proc is not None and proc.returncode == 0:
        counts = [int(f[1]) for f in (line.split() for line in proc.stdout.splitlines())
                  if len(f) == 2 and f[0] == queue and f[1].isdigit()]
        return sorted(counts)
    # The management API lists consumers from its statistics database, which the broker refreshes every 5 s:
    # wait until it lists as many as the queue has now (AMQP's consumer count is live), for up to 12 s.
    quote = functools.partial(urllib.parse.quote, safe="")
    with broker.channel() as ch:
        consumers = ch.queue_declare(queue=queue, passive=True).method.consumer_count
    deadline = time.monotonic() + 12.0
    while True:
        data = broker.management_api(f"queues/{quote(broker.vhost)}/{quote(queue)}")
        if not isinstance(data, dict) or "consumer_details" not in data:
            return None
        details = data["consumer_details"]
        if len(details) == consumers or time.monotonic() > deadline:
            return sorted(int(c.get("prefetch_count", 0)) for c in details)
        time.sleep(0.25)
