"""Notebook 05's runs on the real broker: a requeue loop is stopped, a retry waits the TTL, a task is parked."""

from __future__ import annotations

import os

import pika
from helpers import lab_threads

import workqueue_lab as lab
from workqueue_lab import settings
from workqueue_lab.engine import topology as T
from workqueue_lab.lessons import failures
from workqueue_lab.lessons.checks import nb05
from workqueue_lab.record import events as ev

PREFIX = os.environ["WORKQUEUE_LAB_PREFIX"]
ALWAYS_FAILS = lab.WorkerSpec(faults=(lab.fault("exception", tasks=1),))


def _requeue(ch, method, properties, body):
    try:
        lab.work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)
    except lab.TaskFailed:
        ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)


def test_a_requeue_loop_is_stopped_after_max_deliveries_and_the_broker_keeps_the_message(clean):
    result = failures.run_until(_requeue, ["Task 1."], workers=[ALWAYS_FAILS], max_deliveries=8, timeout=20)
    assert not result.timed_out
    assert 8 <= failures.deliveries(result.events) <= 9 and result.count(ev.ACK) == 0
    assert len(result.redelivered) == failures.deliveries(result.events) - 1
    assert clean.queue_stats(PREFIX + "task_queue").ready == 1
    assert lab_threads() == []


def _retry_then_park(ch, method, properties, body):
    retries = (properties.headers or {}).get("x-retry-count", 0)
    try:
        lab.work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)
    except lab.TaskFailed:
        if retries < 3:
            exchange, key = settings.name(failures.RETRY_EXCHANGE), settings.name(failures.WORK)
        else:
            exchange, key = settings.name(T.PARKING_EXCHANGE), settings.name(T.PARKING_KEY)
        ch.basic_publish(exchange, key, body, pika.BasicProperties(headers={"x-retry-count": retries + 1},
                                                                   delivery_mode=2))
        ch.basic_ack(delivery_tag=method.delivery_tag)


def test_a_task_retried_three_times_after_the_ttl_then_parked_ends_the_run(clean):
    ttl_ms = round(2000 * settings.time_scale())
    flaky = lab.WorkerSpec(faults=(lab.fault("exception", tasks=1), lab.fault("exception", tasks=2, times=1)))
    result = failures.run_until(_retry_then_park, ["Task 1.", "Task 2.", "Task 3."],
                                topology=failures.retry_topology(ttl_ms), workers=[flaky], timeout=30)
    assert not result.timed_out
    assert [failures.deliveries(result.events, t) for t in (1, 2, 3)] == [4, 2, 1]
    (parked,) = result.of_kind(ev.PARKED)
    assert parked.task == 1 and ev.detail_fields(parked.detail) == {"retries": "4", "into": PREFIX + "parking_lot"}
    assert clean.queue_stats(PREFIX + "parking_lot").ready == 1
    assert clean.queue_stats(PREFIX + "tasks").ready == 0 and clean.queue_stats(PREFIX + "tasks_retry").ready == 0
    for task in (1, 2):  # every copy waited the TTL in tasks_retry before it came back
        mine = [e for e in result.events if e.task == task]
        sent = [e.t for e in mine if e.kind == ev.RETRY]
        delivered = [e.t for e in mine if e.kind == ev.DELIVER]
        for s, back in zip(sent, delivered[1:], strict=False):  # the last copy of task 1 went to the parking lot
            assert ttl_ms / 1000 <= back - s < ttl_ms / 1000 + 1.0
    assert nb05.check_retry_then_park(result)
    assert lab_threads() == []


def _fail_first_time(ch, method, properties, body):
    if (properties.headers or {}).get("x-death"):
        ch.basic_ack(delivery_tag=method.delivery_tag)
    else:
        ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)


def test_the_lessons_snippet_drops_a_rejected_task_and_the_fixed_topology_brings_it_back(clean):
    ttl_ms = round(2000 * settings.time_scale())
    name = settings.name
    lesson_args = {"x-dead-letter-exchange": name("retry_exchange"), "x-dead-letter-routing-key": name("tasks")}
    with clean.channel() as ch:  # the lesson's snippet, as written
        ch.exchange_declare(exchange=name("dlx"), exchange_type="direct")
        ch.queue_declare(queue=name("tasks"), durable=True, arguments=lesson_args)
        ch.queue_declare(queue=name("tasks_retry"), durable=True, arguments={
            "x-message-ttl": ttl_ms, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": name("tasks")})
    clean.remember("exchange", name("dlx"))
    dropped = lab.run(_fail_first_time, tasks=["Task 1."], workers=1, queue="tasks", queue_arguments=lesson_args,
                      progress=False, timeout=20)
    assert lab.task_states(dropped.events) == {1: "dropped"}
    assert clean.queue_stats(name("tasks_retry")).ready == 0 and clean.queue_stats(name("tasks")).ready == 0
    # the same queues, plus the exchange they name and the binding: the task comes back and is acked
    fixed = lab.run(_fail_first_time, tasks=["Task 1."], workers=1, topology=failures.retry_topology(ttl_ms),
                    progress=False, timeout=20)
    assert fixed.completed == {1} and failures.deliveries(fixed.events) == 2 and fixed.count(ev.RETRY_WAIT) == 1
