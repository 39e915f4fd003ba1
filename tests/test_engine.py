"""The lab engine against the real broker: the outcomes the lesson promises."""

from __future__ import annotations

import json
import os
import threading

from helpers import lab_threads, wait_until

import workqueue_lab as lab
from workqueue_lab.broker.handle import connection_name
from workqueue_lab.lessons import callbacks
from workqueue_lab.record import events as ev

SLOW = 1 / 2.75  # a slow worker takes 2.75 s per one-dot task: no ties with the fast one


def test_lesson_tasks_go_round_robin_over_two_workers(clean):
    for prefetch in (1, 0):
        result = lab.run(lab.lesson_callback, tasks=lab.LESSON_TASKS, workers=2, prefetch=prefetch,
                         progress=False)
        assert result.tasks_by_worker() == {1: [1, 3], 2: [2, 4]}, prefetch
        assert result.lost == [] and result.duplicates == 0


def test_ready_says_which_broker_address_each_worker_reached(clean, broker):
    import pika

    result = lab.run(lab.lesson_callback, workers=2, progress=False)
    params = pika.URLParameters(broker.url)
    ready = [ev.detail_fields(e.detail) for e in result.of_kind(ev.READY)]
    assert ready == [{"prefetch": "1", "via": f"{params.host}:{params.port}"}] * 2


def test_worker_output_is_kept_per_worker_not_printed(clean, capfd):
    result = lab.run(lab.lesson_callback, workers=2, progress=False)
    out, err = capfd.readouterr()
    assert "Received" not in out + err
    assert result.outputs[1].splitlines() == [" [x] Received 'Task 1.'", " [x] Done",
                                              " [x] Received 'Task 3...'", " [x] Done"]
    assert "Task 2.." in result.outputs[2]


def test_crash_mid_task_is_redelivered_and_done_by_the_other_worker(clean):
    crashy = lab.WorkerSpec(faults=(lab.fault("crash", tasks=1),))
    result = lab.run(lab.lesson_callback, workers=[crashy, lab.WorkerSpec()], progress=False)
    crash = result.of_kind(ev.CRASH)
    assert [(e.worker, e.task) for e in crash] == [(1, 1)]
    again = [e for e in result.of_kind(ev.DELIVER) if e.task == 1 and e.redelivered]
    assert [e.worker for e in again] == [2]
    assert sorted(result.tasks_by_worker()[2]) == [1, 2, 3, 4]
    assert result.lost == []


def test_prefetch_0_vs_1_reproduces_the_lessons_pictures(clean, monkeypatch):
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.2")  # enough margin for exact lists
    tasks = lab.numbered_tasks([1] * 8)
    unfair = lab.run(lab.lesson_callback, tasks=tasks, workers=[SLOW, 1.0], prefetch=0, progress=False)
    assert unfair.tasks_by_worker() == {1: [1, 3, 5, 7], 2: [2, 4, 6, 8]}
    fair = lab.run(lab.lesson_callback, tasks=tasks, workers=[SLOW, 1.0], prefetch=1, progress=False)
    assert fair.tasks_by_worker() == {1: [1, 5], 2: [2, 3, 4, 6, 7, 8]}
    assert fair.makespan() < unfair.makespan()


def test_nack_with_requeue_retries_and_reject_drops(clean):
    flaky = lab.WorkerSpec(faults=(lab.fault("exception", tasks=2, times=1),))
    result = lab.run(callbacks.requeue_on_error, workers=[flaky], progress=False)
    nacks = result.of_kind(ev.NACK)
    assert [(e.task, e.requeue) for e in nacks] == [(2, True)]
    assert sorted(result.completed) == [1, 2, 3, 4]

    result = lab.run(callbacks.reject_on_error, workers=[flaky], progress=False)
    assert [(e.task, e.requeue) for e in result.of_kind(ev.NACK)] == [(2, False)]
    assert sorted(result.completed) == [1, 3, 4]
    assert result.lost == []  # rejected on purpose is not lost


def test_auto_ack_crash_loses_the_buffered_messages(clean):
    crashy = lab.WorkerSpec(faults=(lab.fault("crash", tasks=1),))
    tasks = lab.numbered_tasks([2] * 6)
    result = lab.run(callbacks.auto_ack_callback, tasks=tasks, workers=[crashy, lab.WorkerSpec()], prefetch=0,
                     ack="auto", progress=False)
    # worker 1 held 1, 3, 5 when it died; auto-ack already removed them from the queue
    assert result.lost == [1, 3, 5]
    assert sorted(result.completed) == [2, 4, 6]
    # the broker agrees: it holds none of them (a manual-ack crash would leave them ready for redelivery)
    stats = clean.queue_stats(result.queue)
    assert (stats.ready, stats.unacked, stats.consumers) == (0, 0, 0)
    assert len(result.published) == 6 and not result.redelivered


def test_lost_is_recorded_when_every_worker_died(clean):
    # the only worker dies (no restart) holding every task on an auto-ack channel: all gone, all lost
    crashy = lab.WorkerSpec(faults=(lab.fault("crash", tasks=1),), restart=False)
    result = lab.run(callbacks.auto_ack_callback, tasks=lab.numbered_tasks([2] * 3), workers=[crashy], prefetch=0,
                     ack="auto", progress=False)
    assert result.lost == [1, 2, 3] and result.completed == set()
    stats = clean.queue_stats(result.queue)
    assert (stats.ready, stats.unacked) == (0, 0)  # the broker holds none: really gone, not waiting


def test_timeout_records_lost_but_not_what_waits_in_the_queue(clean):
    # auto-ack: worker 1 dies with task 1, worker 2 is still on task 2 at the timeout; both are gone from the queue
    crashy = lab.WorkerSpec(faults=(lab.fault("crash", tasks=1),), restart=False)
    slow = lab.WorkerSpec(speed=0.01)  # one task takes far longer than the timeout
    result = lab.run(callbacks.auto_ack_callback, tasks=lab.numbered_tasks([2, 2]), workers=[crashy, slow],
                     ack="auto", progress=False, timeout=1.5)
    assert result.timed_out and result.lost == [1, 2]
    # manual acks: at the timeout the unacked task goes back to the queue, next to the one still waiting
    result = lab.run(lab.lesson_callback, tasks=lab.numbered_tasks([1, 1]), workers=[slow], progress=False,
                     timeout=1.0)
    assert result.timed_out and result.lost == []  # both are back in the queue, not lost
    assert clean.queue_stats(result.queue).ready == 2


def _our_connections(broker) -> int:
    """Open connections this test process made, as rabbitmqctl sees them now (no management-API lag)."""
    proc = broker.control.ctl("list_connections", "client_properties", "--formatter", "json")
    assert proc.returncode == 0, proc.stderr
    ours = connection_name()
    return sum(1 for c in json.loads(proc.stdout)
               if ["connection_name", "longstr", ours] in c["client_properties"])


def test_three_runs_leave_no_threads_and_no_connections(clean):
    assert clean.control.can("ctl"), clean.control.why_not("ctl")
    threads_before = threading.active_count()
    conns_before = _our_connections(clean)
    run = lab.start(lab.lesson_callback, workers=3)
    # the count sees the lab's own connections: one per worker at least, while it runs
    assert wait_until(lambda: _our_connections(clean) >= conns_before + 3), _our_connections(clean)
    run.stop()
    for _ in range(3):
        lab.run(lab.lesson_callback, workers=3, progress=False)
    assert lab_threads() == []
    assert threading.active_count() == threads_before
    assert wait_until(lambda: _our_connections(clean) == conns_before), _our_connections(clean)


def test_starting_a_run_stops_the_previous_one(clean):
    first = lab.start(lab.lesson_callback, workers=2)
    assert len(lab_threads()) == 2
    second = lab.start(lab.lesson_callback, workers=1)
    assert all(not w.is_alive() for w in first.workers)
    assert len(lab_threads()) == 1
    second.stop()
    assert lab_threads() == []


def test_stop_returns_unacked_messages_to_the_queue(clean):
    r = lab.start(callbacks.forgetful_callback, workers=1, prefetch=0)
    r.publish()
    assert wait_until(lambda: r.log.count(ev.DELIVER) == 4)
    r.stop()
    stats = clean.queue_stats(r.queue)
    assert (stats.ready, stats.consumers) == (4, 0)


def test_queue_names_carry_the_learners_prefix(clean):
    result = lab.run(lab.lesson_callback, workers=1, progress=False)
    assert result.queue == os.environ["WORKQUEUE_LAB_PREFIX"] + "task_queue"


def test_queue_with_other_arguments_gives_one_sentence(clean):
    with clean.channel() as ch:
        ch.queue_declare(queue=lab.settings.name("lab_queue"), durable=True,
                         arguments={"x-max-length": 5})
    try:
        lab.run(lab.lesson_callback, queue="lab_queue", progress=False)
    except lab.LabError as exc:
        assert "already exists with other settings" in str(exc) and "lab.reset()" in str(exc)
    else:
        raise AssertionError("expected a LabError")
    assert lab_threads() == []
