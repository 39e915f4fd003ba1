"""Notebook 04 (durability): its self-check and the plumbing its cells lean on.

The full-queue check is a pure function of a ``FullQueueTrial`` (what the learner's ``send`` did), so the
right answer and each typical mistake are judged on hand-made trials without a broker; then the trial
itself runs on the real broker.  ``restartable_broker`` is shown to hand out the lab's private node and
never the shared broker.
"""

from __future__ import annotations

import pika
import pytest
from private_broker import private_broker

from workqueue_lab.broker.control import DockerControl, LocalControl, UrlControl
from workqueue_lab.broker.handle import Broker
from workqueue_lab.errors import LabError
from workqueue_lab.lessons import durability, full_queue
from workqueue_lab.lessons.checks import nb04
from workqueue_lab.record.events import Event


def test_restart_refuses_any_broker_but_the_labs_private_node():
    url = "amqp://guest:guest@127.0.0.1:5672/%2F"
    for control in (LocalControl(url), UrlControl(url), DockerControl(url)):  # constructing one probes nothing
        with pytest.raises(LabError, match=f"does not restart the {control.kind} broker"):
            durability.restart(Broker(url, control))


def test_restartable_broker_keeps_a_private_node_and_replaces_the_shared_broker_by_one(clean, request, capsys):
    assert clean.kind != "private", "this test expects the shared broker the tests run against"
    with private_broker(request.config) as node:
        assert durability.restartable_broker(node) is node
        replaced = durability.restartable_broker(clean)
    said = capsys.readouterr().out
    assert replaced is not None and replaced.kind == "private" and replaced.url == node.url != clean.url
    assert "is shared, so the lab never restarts it" in said and "(already running)" in said
    assert "NOT CHECKED" not in said


def _event(t: float, kind: str, worker: int | None = None, task: int | None = None) -> Event:
    return Event(t, kind, worker, task)


def test_outage_runs_from_the_first_lost_connection_to_the_first_worker_back():
    events = [_event(0.0, "publish", task=1), _event(0.1, "deliver", 1, 1), _event(0.5, "reconnect", 1),
              _event(0.6, "reconnect", 2), _event(3.0, "reconnect", 1), _event(9.5, "restart", 2),
              _event(9.7, "restart", 1)]
    assert durability.outage(events) == (0.5, 9.5)
    assert durability.outage(events[:2]) is None


def test_survival_table_says_what_each_queue_kept():
    before = {"durable_persistent": 5, "durable_transient": 5, "nondurable_persistent": 5,
              "nondurable_transient": "refused: (541, 'transient_nonexcl_queues')", "quorum_persistent": 5,
              "quorum_transient": 5}
    after = {"durable_persistent": 5, "durable_transient": 0, "nondurable_persistent": None,
             "nondurable_transient": None, "quorum_persistent": 5, "quorum_transient": 3}
    table = durability.survival_table(before, after)
    assert table.column("survived") == ["all", "nothing", "nothing", "cannot be declared", "all", "3 of 5"]
    assert table.column("after restart")[2] == "queue gone"
    assert table.column("queue")[4] == "quorum, durable" and table.column("messages")[1] == "transient"


def test_restart_when_waits_for_its_condition_and_hands_a_failed_restart_to_the_caller():
    url = "amqp://guest:guest@127.0.0.1:5672/%2F"
    shared = Broker(url, UrlControl(url))  # restart() refuses it before touching it
    with durability.restart_when(shared, lambda: False, timeout=0.2) as outage:
        pass
    assert outage.began is None and outage.seconds is None  # the condition never came true: no restart
    with pytest.raises(LabError, match="does not restart the url broker"), \
            durability.restart_when(shared, lambda: True) as outage:
        pass
    assert outage.began is not None and outage.ended >= outage.began


def test_the_outage_is_shaded_on_the_timeline_from_the_first_publish_on():
    from workqueue_lab.views.timeline import plot_timeline

    events = [_event(1.0, "publish", task=1), _event(1.1, "ready", 1), _event(1.2, "deliver", 1, 1),
              _event(1.5, "reconnect", 1), _event(7.5, "restart", 1), _event(7.6, "deliver", 1, 1),
              _event(7.9, "ack", 1, 1)]
    events[-2].redelivered = True
    fig = durability.shade_outage(plot_timeline(events), events)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts if "connected" in t.get_text()] == ["no worker connected\n6.0 s"]
    spans = [p for p in ax.patches if p.get_facecolor()[:3] == pytest.approx((0xd9 / 255,) * 3)]
    assert len(spans) == 1 and spans[0].get_x() == pytest.approx(0.5)  # 1.5 s, counted from the publish at 1.0


def test_plot_rates_draws_one_labelled_bar_per_way():
    fig = durability.plot_rates({"transient": 9000.0, "persistent + confirm each": 1500.0})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["transient", "persistent + confirm each"]
    assert [t.get_text() for t in ax.texts] == ["9,000/s", "1,500/s"]


# --- the exercise: a publisher that hears "no" (a full reject-publish queue) --------------------------------

TASKS = [f"Task {i}." for i in range(1, 9)]


def full(**changes):
    from workqueue_lab.lessons.full_queue import FullQueueTrial

    fields = dict(tasks=list(TASKS), received=list(TASKS), transient=0, refusals=6,
                  calls=["confirm_delivery"] + ["basic_publish"] * 14)
    return FullQueueTrial(**(fields | changes))


def test_the_full_queue_check_passes_every_task_once_persistent_and_confirmed():
    check = nb04.full_queue(full())
    assert check, check


def test_the_full_queue_check_names_each_mistake():
    silent = nb04.full_queue(full(received=TASKS[:2], refusals=0, calls=["basic_publish"] * 8))
    assert not silent and "without confirm_delivery()" in silent.hint and "NackError" in silent.hint
    stops = nb04.full_queue(full(received=TASKS[:2], refusals=1, error="NackError: 0 message(s) NACKed"))
    assert not stops and "stopped at the first refusal" in stops.hint and "publish the same task again" in stops.hint
    swallowed = nb04.full_queue(full(received=TASKS[:2]))
    assert not swallowed and "never published again" in swallowed.hint
    twice = nb04.full_queue(full(received=TASKS + ["Task 3."]))
    assert not twice and "arrived twice" in twice.hint
    transient = nb04.full_queue(full(transient=8))
    assert not transient and "DeliveryMode.Persistent" in transient.hint


def test_check_full_queue_on_the_broker_passes_the_solution_and_names_the_stubs_mistake(clean):
    import time

    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

    def stub(channel, queue, tasks):
        for task in tasks:
            channel.basic_publish(exchange="", routing_key=queue, body=task, properties=persistent)

    def solution(channel, queue, tasks):
        channel.confirm_delivery()
        for task in tasks:
            while True:
                try:
                    channel.basic_publish(exchange="", routing_key=queue, body=task, properties=persistent)
                    break
                except pika.exceptions.NackError:
                    time.sleep(0.05)

    lost = full_queue.check_full_queue(stub, broker=clean)
    assert not lost and "vanished" in lost.hint  # the real broker refused silently: reject-publish, no confirms
    right = full_queue.check_full_queue(solution, broker=clean)
    assert right, right
    assert "0 refusal(s)" not in right.got  # the queue really was full at times
