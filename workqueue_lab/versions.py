"""What changes for this course from one RabbitMQ version to the next, and a way to ask it.

Pure data and pure functions: nothing here talks to a broker.  ``docs/versions.md`` is the same list as a
table, each row with its source.  A notebook asks ``applies("quorum_default_delivery_limit", broker.version)``
instead of writing ``version >= (4, 0)`` itself, so that each version boundary lives in one place.

A key may have several rows when a behaviour came, went and came back (``x_death_counts_client_republish``);
``applies`` is true when any of its rows holds.  ``since == FLOOR`` means "already so in the oldest series the
table covers" (it may be older still).  Only facts confirmed in release notes, the docs, the source or a
maintainer's statement are here; the rest is listed as unconfirmed in ``docs/versions.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Version = tuple[int, int, int]

TESTED: tuple[str, ...] = ("3.10", "4.0")  # release series CI runs the course on
TESTED_RELEASES: tuple[str, ...] = ("3.10.8", "4.0.5")  # the releases it runs: Debian 12's and Debian 13's
KNOWN_UP_TO: tuple[int, int] = (4, 3)  # newest series the table covers
OLDEST: tuple[int, int] = (3, 10)  # oldest series the table covers
FLOOR: Version = (*OLDEST, 0)

_RN = "https://github.com/rabbitmq/rabbitmq-server/blob/main/release-notes/"
_GH = "https://github.com/rabbitmq/rabbitmq-server/"


@dataclass(frozen=True)
class Change:
    """One version-dependent behaviour: it holds for ``since <= version < until``."""

    key: str
    since: Version
    until: Version | None  # first version where it no longer holds, if ever
    text: str  # what it means for the course, one sentence
    source: str  # URL

    def holds(self, version: Version) -> bool:
        return self.since <= version and (self.until is None or version < self.until)


CHANGES: tuple[Change, ...] = (
    Change("nack_requeue_counts_delivery", (3, 8, 0), (4, 3, 0),
           "On a quorum queue every return (basic.nack or basic.reject with requeue, a closed channel) adds one "
           "to the delivery count that x-delivery-limit is checked against.",
           "https://www.rabbitmq.com/docs/4.3/nack"),
    Change("classic_consumer_timeout", (3, 8, 15), (4, 3, 0),
           "A delivery unacked for longer than consumer_timeout closes the consumer's channel with "
           "PRECONDITION_FAILED, whatever the queue type; the channel checks about once a minute.",
           _RN + "3.8.15.md"),
    Change("quorum_refuses_global_qos", FLOOR, (4, 3, 0),
           "Consuming from a quorum queue on a channel with global QoS (basic_qos(global_qos=True)) is a "
           "channel error.",
           "https://www.rabbitmq.com/docs/quorum-queues#global-qos"),
    Change("x_death_counts_client_republish", FLOOR, (3, 13, 0),
           "The broker interprets an x-death header a client republishes, so its count keeps rising.",
           _GH + "pull/11339"),
    Change("at_least_once_dead_lettering", (3, 10, 0), None,
           "Quorum queues can dead-letter at-least-once (x-dead-letter-strategy=at-least-once, which needs "
           "x-overflow=reject-publish).",
           _RN + "3.10.0.md"),
    Change("quorum_requeue_to_back", (3, 10, 0), (4, 0, 0),
           "A quorum queue without a delivery limit puts a requeued message at the back of the queue (with a "
           "limit, near the head).",
           _RN + "3.10.0.md"),
    Change("per_queue_consumer_timeout", (3, 11, 15), None,
           "The timeout can be set per queue: x-consumer-timeout queue argument or consumer-timeout policy "
           "(from 4.3 only quorum queues honour it).",
           _GH + "issues/8221"),
    Change("x_delivery_count_omitted_on_first_delivery", (3, 12, 0), None,
           "Quorum queues no longer add x-delivery-count: 0 to a first delivery; the header appears on "
           "redeliveries only.",
           _RN + "3.12.0.md"),
    Change("x_death_counts_client_republish", (3, 13, 3), (4, 0, 0),
           "3.13.3 restores the 3.12 behaviour for 3.13 only: a republished x-death is interpreted again.",
           _GH + "issues/10709"),
    Change("classic_mirroring_removed", (4, 0, 0), None,
           "Classic queue mirroring is gone (ha-* policies do nothing): only quorum queues and streams are "
           "replicated.",
           _RN + "4.0.1.md"),
    Change("classic_down_publish_nacked", (4, 0, 0), None,
           "A message published with confirms and mandatory=True to a classic queue whose node is down is nacked "
           "(NackError); 3.10 returned it as unroutable. Observed by this course's CI on 3.10.8 and 4.0.5 "
           "(notebook 08); no release note names the version in between that changed it.",
           "https://github.com/rabbitmq/rabbitmq-server/pull/1893"),
    Change("quorum_default_delivery_limit", (4, 0, 0), None,
           "Quorum queues have a delivery limit of 20 unless told otherwise; past it a message is dead-lettered, "
           "or dropped without a dead-letter exchange.",
           _RN + "4.0.1.md"),
    Change("khepri_default", (4, 2, 0), None,
           "New deployments store metadata in Khepri (Raft): queue declarations and other metadata changes need "
           "a majority of the cluster's nodes.",
           "https://www.rabbitmq.com/docs/metadata-store/how-to-enable-khepri"),
    Change("khepri_only", (4, 3, 0), None,
           "Mnesia is removed: Khepri is the only metadata store and a cluster needs a majority of its nodes "
           "online.",
           _GH + "releases/tag/v4.3.0"),
    Change("quorum_consumer_timeout_cancels", (4, 3, 0), None,
           "Quorum queues enforce the ack timeout themselves and send basic.cancel to a consumer whose client "
           "supports consumer_cancel_notify (pika does); the channel stays open.",
           _GH + "blob/main/consumer_timeouts.md"),
    Change("quorum_per_consumer_timeout", (4, 3, 0), None,
           "A quorum queue consumer can set its own timeout with an x-consumer-timeout argument on basic.consume.",
           _GH + "blob/main/consumer_timeouts.md"),
    Change("x_acquired_count", (4, 3, 0), None,
           "Quorum queue redeliveries carry x-acquired-count (every return) beside x-delivery-count (failures "
           "only: basic.reject, not basic.nack).",
           "https://github.com/rabbitmq/rabbitmq-website/pull/2508"),
    Change("quorum_delayed_retry", (4, 3, 0), None,
           "Quorum queues can delay redeliveries themselves (x-delayed-retry-type, -min, -max queue arguments).",
           "https://github.com/rabbitmq/rabbitmq-amqp-go-client/pull/105"),
    Change("transient_nonexcl_queues_refused", (4, 3, 0), None,
           "Declaring a non-durable, non-exclusive queue is refused by default: the broker closes the connection "
           "(541 INTERNAL_ERROR).",
           _GH + "pull/15459"),
    Change("global_qos_ignored", (4, 3, 0), None,
           "basic_qos(global_qos=True) is answered but applied per consumer, as if global_qos were False "
           "(deprecated feature global_qos, denied by default).",
           _GH + "pull/15460"),
    Change("classic_x_consumer_timeout_rejected", (4, 3, 2), None,
           "Declaring a classic queue with x-consumer-timeout fails (4.3.0 and 4.3.1 accepted it and ignored it).",
           _GH + "issues/17144"),
    Change("consumer_timeout_response", (4, 3, 7), None,
           "rabbitmq.conf consumer_timeout_response chooses notify_consumer (default: basic.cancel) or "
           "close_channel (the pre-4.3 behaviour).",
           _GH + "releases/tag/v4.3.7"),
)

KEYS: tuple[str, ...] = tuple(sorted({change.key for change in CHANGES}))

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?![\d.])")


def parse(version: str | Sequence[int]) -> Version:
    """``"4.0.5"`` -> ``(4, 0, 5)``; also ``"3.13"``, ``"v4.1.0"``, ``"4.1.0-rc.1"``, ``"4.0.0+2"`` or a tuple."""
    if isinstance(version, str):
        match = _VERSION.match(version.strip())
        if not match:
            raise ValueError(f"not a RabbitMQ version: {version!r} (expected something like '4.0.5')")
        return int(match[1]), int(match[2]), int(match[3] or 0)
    parts = tuple(version)
    if not 2 <= len(parts) <= 3 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                                               for p in parts):
        raise ValueError(f"not a RabbitMQ version: {version!r} (expected (major, minor[, patch]))")
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else 0)


def changes(key: str) -> tuple[Change, ...]:
    """The rows of one key; ``ValueError`` naming the known keys if there is none."""
    rows = tuple(change for change in CHANGES if change.key == key)
    if not rows:
        raise ValueError(f"unknown version key {key!r}; known keys: {', '.join(KEYS)}")
    return rows


def applies(key: str, version: str | Sequence[int]) -> bool:
    """Whether the behaviour ``key`` holds on RabbitMQ ``version``."""
    rows = changes(key)
    at = parse(version)
    return any(change.holds(at) for change in rows)


def status(version: str | Sequence[int]) -> str:
    """"tested" (a series CI runs), "predicted" (covered by the table, not run), or "unknown"."""
    series = parse(version)[:2]
    if f"{series[0]}.{series[1]}" in TESTED:
        return "tested"
    if OLDEST <= series <= KNOWN_UP_TO:
        return "predicted"
    return "unknown"


def tested_on(version: str | Sequence[int]) -> str:
    """One line for the top of a notebook: the releases CI runs it on, the learner's, and what that means."""
    ci = " and ".join(TESTED_RELEASES)
    at = ".".join(str(p) for p in parse(version))
    kind = status(version)
    if kind == "tested":
        same = at in TESTED_RELEASES
        return (f"Tested on RabbitMQ {ci} (CI runs this notebook on both). You are on {at}: "
                + ("tested." if same else f"the {at.rsplit('.', 1)[0]} series, which CI tests."))
    if kind == "predicted":
        return (f"Tested on RabbitMQ {ci} (CI runs this notebook on both). You are on {at}: not run by CI; what "
                "this notebook expects of it is predicted from the release notes (docs/versions.md).")
    newest = f"{KNOWN_UP_TO[0]}.{KNOWN_UP_TO[1]}"
    if parse(version)[:2] > KNOWN_UP_TO:
        return (f"Tested on RabbitMQ {ci} (CI runs this notebook on both). You are on {at}, newer than the "
                f"course's version table (up to {newest}): unknown. If an assert fails, RabbitMQ may have changed "
                "the behaviour it checks; docs/versions.md lists what changed up to " + newest + ".")
    return (f"Tested on RabbitMQ {ci} (CI runs this notebook on both). You are on {at}, older than the course "
            f"covers ({OLDEST[0]}.{OLDEST[1]} and newer): unknown; upgrade RabbitMQ if an assert fails.")
