"""record.stories.settled: when every task of a failure run has an end (pure: events made by hand)."""

from __future__ import annotations

from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event as E
from workqueue_lab.record.stories import settled


def test_acked_tasks_are_settled_and_an_open_delivery_is_not():
    events = [E(0, ev.PUBLISH, task=1), E(0.1, ev.DELIVER, 1, 1, tag=1), E(0.2, ev.ACK, 1, 1, tag=1)]
    assert settled(events, [1])
    assert not settled(events + [E(0.3, ev.PUBLISH, task=2), E(0.4, ev.DELIVER, 1, 2, tag=2)], [1, 2])


def test_a_copy_on_its_way_back_is_not_an_end_until_it_is_done_again():
    first = [E(0, ev.PUBLISH, task=1), E(0.1, ev.DELIVER, 1, 1, tag=1), E(0.2, ev.RETRY, 1, 1),
             E(0.2, ev.ACK, 1, 1, tag=1)]
    assert not settled(first, [1])  # acked, but its copy waits in the retry queue
    again = first + [E(0.3, ev.RETRY_WAIT, None, 1), E(1.3, ev.DELIVER, 2, 1, tag=1), E(1.4, ev.ACK, 2, 1, tag=1)]
    assert settled(again, [1])


def test_parked_and_dead_lettered_tasks_have_an_end_a_requeued_one_has_not():
    parked = [E(0, ev.DELIVER, 1, 1, tag=1), E(0.1, ev.REJECT, 1, 1, tag=1, requeue=False), E(0.2, ev.PARKED, None, 1)]
    assert settled(parked, [1])
    dead = [E(0, ev.DELIVER, 1, 1, tag=1), E(0.1, ev.NACK, 1, 1, tag=1, requeue=False), E(0.2, ev.DEAD_LETTER, None, 1)]
    assert settled(dead, [1])
    assert not settled([E(0, ev.DELIVER, 1, 1, tag=1), E(0.1, ev.NACK, 1, 1, tag=1, requeue=True)], [1])


def test_a_lost_connection_ends_every_open_attempt_of_that_worker():
    # a RECONNECT carries no tag: the broker took both deliveries back; they count as ended, not open
    events = [E(0, ev.DELIVER, 1, 1, tag=1), E(0, ev.DELIVER, 1, 2, tag=2), E(0.5, ev.RECONNECT, 1),
              E(1.0, ev.DELIVER, 1, 1, tag=1, redelivered=True), E(1.1, ev.ACK, 1, 1, tag=1),
              E(1.2, ev.DELIVER, 1, 2, tag=2, redelivered=True), E(1.3, ev.ACK, 1, 2, tag=2)]
    assert settled(events, [1, 2])
    assert not settled(events[:3], [1, 2])  # taken back, not yet done
