"""Unit tests of the event log's pure functions, on plain data."""

import threading

from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event


def E(t, kind, worker=None, task=None, tag=None, **kw):
    return Event(t, kind, worker, task, tag, **kw)


def test_attempts_pair_delivery_with_its_ack_per_worker_and_tag():
    events = [
        E(0, ev.PUBLISH, task=1), E(0, ev.PUBLISH, task=2),
        E(0.1, ev.DELIVER, 1, 1, 1), E(0.1, ev.DELIVER, 2, 2, 1),
        E(1.1, ev.ACK, 1, 1, 1), E(2.1, ev.ACK, 2, 2, 1),
    ]
    atts = ev.attempts(events)
    assert [(a.worker, a.task, a.outcome) for a in atts] == [(1, 1, "ack"), (2, 2, "ack")]
    assert atts[1].duration == 2.0
    assert ev.tasks_by_worker(events) == {1: [1], 2: [2]}


def test_crash_ends_every_open_attempt_of_that_worker_only():
    events = [E(0, ev.DELIVER, 1, 1, 1), E(0, ev.DELIVER, 2, 2, 1), E(0.5, ev.CRASH, 1, 1)]
    atts = {a.worker: a for a in ev.attempts(events)}
    assert atts[1].outcome == "crash"
    assert atts[2].outcome == "open" and atts[2].end is None


def test_multiple_ack_closes_all_tags_up_to_it():
    events = [E(0, ev.DELIVER, 1, 1, 1), E(0, ev.DELIVER, 1, 2, 2), E(0, ev.DELIVER, 1, 3, 3),
              E(1, ev.ACK, 1, 2, 2, detail="multiple")]
    outcomes = sorted((a.task, a.outcome) for a in ev.attempts(events))
    assert outcomes == [(1, "ack"), (2, "ack"), (3, "open")]


def test_timeout_after_a_late_ack_overrides_it():
    events = [E(0, ev.DELIVER, 1, 1, 1), E(5, ev.ACK, 1, 1, 1), E(5.1, ev.TIMEOUT, 1, 1, 1)]
    (a,) = ev.attempts(events)
    assert a.outcome == "timeout"
    assert ev.tasks_by_worker(events) == {}


def test_completed_counts_duplicates_and_makespan():
    events = [E(0, ev.PUBLISH, task=1), E(0.2, ev.DELIVER, 1, 1, 1), E(1, ev.ACK, 1, 1, 1),
              E(1.2, ev.DELIVER, 2, 1, 1, redelivered=True), E(2, ev.ACK, 2, 1, 1)]
    assert ev.completed(events) == {1: 2}
    assert ev.makespan(events) == 2
    rows = ev.summary(events)
    assert rows[2]["redelivered"] == 1 and rows[1]["done"] == 1


def test_log_is_thread_safe_and_bounded():
    log = ev.EventLog(max_events=5000)

    def writer():
        for _ in range(1000):
            log.record(ev.DELIVER, 1, 1)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 5000 <= len(log) <= 5008 and len(log) + log.dropped == 8000  # a race may overshoot by a few


def test_reconnect_ends_the_interrupted_attempt_before_tags_restart():
    events = [E(0, ev.DELIVER, 1, 1, 1), E(1, ev.RECONNECT, 1), E(2, ev.DELIVER, 1, 1, 1, redelivered=True),
              E(3, ev.ACK, 1, 1, 1)]
    assert [(a.task, a.outcome) for a in ev.attempts(events)] == [(1, "reconnect"), (1, "ack")]
