"""Declared topologies: arguments from typed specs, what the broker holds, dead letters, delayed retry, reset."""

from __future__ import annotations

import os
import urllib.parse
import uuid

import pika
import pika.exceptions
import pytest
from helpers import lab_threads, wait_until

import workqueue_lab as lab
from workqueue_lab import settings
from workqueue_lab.broker import registry
from workqueue_lab.engine import topology as T
from workqueue_lab.engine.scenario import Scenario
from workqueue_lab.engine.taps import arrival_detail
from workqueue_lab.record import events as ev

PREFIX = os.environ["WORKQUEUE_LAB_PREFIX"]


# --- pure: specs, names, registry -----------------------------------------------------------


def test_arguments_are_built_from_the_typed_fields():
    spec = T.QueueSpec("q", kind="quorum", dead_letter_exchange="dlx", dead_letter_routing_key="dlq",
                       message_ttl=1500, delivery_limit=3, extra={"x-max-length": 10})
    assert spec.arguments() == {"x-queue-type": "quorum", "x-dead-letter-exchange": PREFIX + "dlx",
                                "x-dead-letter-routing-key": PREFIX + "dlq", "x-message-ttl": 1500,
                                "x-delivery-limit": 3, "x-max-length": 10}
    # back to the default exchange: "" stays "", the key is the (prefixed) work queue
    wait = T.delayed_retry(200, stem="unit").queue("unit_wait")
    assert wait.arguments() == {"x-message-ttl": 200, "x-dead-letter-exchange": "",
                                "x-dead-letter-routing-key": PREFIX + "unit_tasks"}


def test_the_lessons_queue_is_declared_as_the_lesson_does():
    work = T.LESSON.work_queue
    assert (work.name, work.durable, work.kind, work.arguments()) == ("task_queue", True, "classic", {})
    assert T.LESSON.names() == [("queue", PREFIX + "task_queue")]
    assert Scenario().queue == T.TASK_QUEUE


@pytest.mark.parametrize("bad", [dict(durable=False), dict(exclusive=True), dict(auto_delete=True)])
def test_a_quorum_queue_that_is_not_durable_is_one_sentence(bad):
    with pytest.raises(lab.LabError) as err:
        T.QueueSpec("qq", kind="quorum", **bad)
    text = str(err.value)
    assert "Quorum queue 'qq' must be durable" in text and "durable=True" in text
    assert text.count(". ") == 0 and text.endswith(".")


def test_other_mistakes_are_one_sentence_each():
    cases = {
        "only quorum queues honour": lambda: T.QueueSpec("c", delivery_limit=3),
        "use 'classic' or 'quorum'": lambda: T.QueueSpec("c", kind="stream"),
        "does not declare; add ExchangeSpec('nowhere')": lambda: T.Topology(
            (T.QueueSpec("w", dead_letter_exchange="nowhere"),)),
        "names an exchange or queue this topology does not declare": lambda: T.Topology(
            (T.QueueSpec("w"),), bindings=(T.Binding("x", "w", "w"),)),
        "needs one queue with role='work'": lambda: T.Topology((T.QueueSpec("d", role="dead_letter"),)),
    }
    for expected, make in cases.items():
        with pytest.raises(lab.LabError) as err:
            make()
        assert expected in str(err.value), str(err.value)


def test_names_roles_and_taps_carry_the_learners_prefix(monkeypatch):
    monkeypatch.setenv(settings.ENV_PREFIX, "alice.")
    topo = T.DEAD_LETTER
    assert topo.names() == [("exchange", "alice.dl_exchange"), ("queue", "alice.dl_tasks"),
                            ("queue", "alice.dl_dead")]
    assert topo.roles() == {"alice.dl_tasks": "work", "alice.dl_dead": "dead_letter"}
    assert topo.queue_with_role("dead_letter").name == "dl_dead"
    assert topo.queue_with_role("parking") is None
    assert topo.taps() == [T.Tap("dead_letter", "alice.dl_dead", "alice.dl_exchange", "alice.dl_dead")]


def test_every_topology_built_registers_its_names():
    queues, exchanges = registry.registered()
    # the course's, registered by importing the module that defines them
    assert {"task_queue", "dl_tasks", "dl_dead", "retry_tasks", "retry_wait", "parking_lot",
            "quorum_tasks", "quorum_dead"} <= queues
    assert {"dl_exchange", "retry_exchange", "parking_exchange", "quorum_exchange"} <= exchanges
    assert "" not in exchanges  # the default exchange is never ours to delete
    stem = f"reg{uuid.uuid4().hex[:6]}"
    T.delayed_retry(100, stem=stem)
    queues, exchanges = registry.registered()
    assert {f"{stem}_tasks", f"{stem}_wait"} <= queues and f"{stem}_exchange" in exchanges


def test_an_arrivals_detail_reads_back_as_fields():
    headers = {"x-death": [{"reason": "expired", "queue": "p.wait", "count": 2},
                           {"reason": "rejected", "queue": "p.tasks", "count": 2}],
               "x-retry-count": 3}
    detail = arrival_detail(headers, "p.dlq")
    assert ev.detail_fields(detail) == {"reason": "expired", "queue": "p.wait", "count": "2", "retries": "3",
                                        "into": "p.dlq"}
    assert ev.detail_fields(arrival_detail(None, "p.parking")) == {"into": "p.parking"}


def _attempt_delay_retry_parked() -> list[ev.Event]:
    """Hand-made: task 1 fails, waits 0.2 s in the retry queue, fails again and is parked; task 2 dead-letters."""
    E = ev.Event
    return [E(0.0, ev.PUBLISH, task=1), E(0.0, ev.PUBLISH, task=2),
            E(0.01, ev.DELIVER, 1, 1, tag=1), E(0.05, ev.NACK, 1, 1, tag=1, requeue=False),
            E(0.051, ev.RETRY_WAIT, None, 1, detail="reason=rejected queue=p.tasks count=1 into=p.wait"),
            E(0.06, ev.DELIVER, 1, 2, tag=2), E(0.07, ev.REJECT, 1, 2, tag=2, requeue=False),
            E(0.071, ev.DEAD_LETTER, None, 2, detail="reason=rejected queue=p.tasks count=1 into=p.dlq"),
            E(0.25, ev.DELIVER, 1, 1, tag=3), E(0.3, ev.RETRY, 1, 1, detail="p.parking -> p.parking_lot"),
            E(0.301, ev.PARKED, None, 1, detail="retries=1 into=p.parking_lot"), E(0.31, ev.ACK, 1, 1, tag=3)]


def test_views_draw_and_count_the_retry_dead_letter_and_parking_lanes():
    from workqueue_lab.views import tables, timeline

    events = _attempt_delay_retry_parked()
    (ax,) = timeline.plot_timeline(events).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker 1", "retry wait", "dead letters", "parking lot"]
    gids = [c.get_gid() for c in ax.collections]
    assert {"retry-wait-bars", "retry-wait", "dead-letter", "parked"} <= set(gids)
    (bar,) = [c for c in ax.collections if c.get_gid() == "retry-wait-bars"]
    (verts,) = bar.get_paths()
    xs = sorted({round(x, 3) for x, _ in verts.vertices})
    assert xs == [0.051, 0.25]  # from the arrival in the retry queue to the redelivery
    caption = tables.summary_table(events).caption
    assert "1 sent to the retry queue" in caption and "1 dead-lettered" in caption and "1 parked" in caption


# --- on the real broker ----------------------------------------------------------------------


def _held(broker, name: str) -> dict:
    """What the broker holds for a queue: its type, durability and arguments (management API).

    RabbitMQ 4.0 records the type it chose among the arguments of a queue declared without one
    (``x-queue-type: classic``); 3.10 records nothing.  That entry is checked here and left out of
    ``arguments``, so the comparisons below are the same on both.
    """
    info = broker.management_api(f"queues/%2F/{urllib.parse.quote(name, safe='')}")
    assert isinstance(info, dict), f"management API has no queue {name}"
    if info["type"] == "classic":
        recorded = info["arguments"].pop("x-queue-type", None)
        assert recorded == ("classic" if broker.version_tuple >= (4, 0) else None), (broker.version, recorded)
    return info


def _ready(broker, queue: str) -> int:
    with broker.channel() as ch:
        return ch.queue_declare(queue=queue, passive=True).method.message_count


def _exists(broker, queue: str) -> bool:
    try:
        _ready(broker, queue)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code in (404, 405)  # 405: exclusive to another connection, so it exists
        return exc.reply_code == 405


def test_a_dlx_and_ttl_retry_topology_and_a_quorum_queue_are_what_the_broker_holds(clean):
    retry = T.delayed_retry(200, stem="held")
    with clean.channel() as ch:
        retry.declare(ch)
        T.QUORUM.declare(ch)
    work, wait = _held(clean, PREFIX + "held_tasks"), _held(clean, PREFIX + "held_wait")
    assert work["durable"] and work["type"] == "classic"
    assert work["arguments"] == {"x-dead-letter-exchange": PREFIX + "held_exchange",
                                 "x-dead-letter-routing-key": PREFIX + "held_wait"}
    assert wait["arguments"] == {"x-message-ttl": 200, "x-dead-letter-exchange": "",
                                 "x-dead-letter-routing-key": PREFIX + "held_tasks"}
    bindings = clean.management_api(f"exchanges/%2F/{urllib.parse.quote(PREFIX + 'held_exchange')}/bindings/source")
    assert [(b["destination"], b["routing_key"]) for b in bindings] == [(PREFIX + "held_wait", PREFIX + "held_wait")]
    quorum = _held(clean, PREFIX + "quorum_tasks")
    assert quorum["type"] == "quorum" and quorum["durable"]
    assert quorum["arguments"]["x-delivery-limit"] == 3 and quorum["arguments"]["x-queue-type"] == "quorum"
    # declaring it again with other settings: one sentence that names the queue and the fix
    other = T.Topology((T.QueueSpec("held_tasks"),))
    with pytest.raises(lab.LabError) as err, clean.channel() as ch:
        other.declare(ch)
    text = str(err.value)
    assert f"Queue '{PREFIX}held_tasks' already exists with other settings" in text and "lab.reset()" in text


def _reject_poison(ch, method, properties, body):
    if body == b"poison":
        ch.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
    else:
        ch.basic_ack(delivery_tag=method.delivery_tag)


def test_a_rejected_message_lands_on_the_dead_letter_queue_with_x_death(clean):
    result = lab.run(_reject_poison, tasks=["Task 1.", "poison", "Task 3."], workers=1, topology=T.DEAD_LETTER,
                     progress=False, timeout=30)
    work, dlq = PREFIX + "dl_tasks", PREFIX + "dl_dead"
    assert result.queue == work and result.completed == {1, 3}
    assert _ready(clean, dlq) == 1 and _ready(clean, work) == 0  # the tap took a copy, not the message
    with clean.channel() as ch:
        method, properties, body = ch.basic_get(dlq, auto_ack=False)
        ch.basic_nack(method.delivery_tag, requeue=True)
    death = properties.headers["x-death"][0]
    assert (body, death["reason"], death["queue"], death["count"]) == (b"poison", "rejected", work, 1)
    assert properties.message_id.endswith("-2")
    (dead,) = result.of_kind(ev.DEAD_LETTER)
    assert dead.task == 2 and dead.worker is None
    assert ev.detail_fields(dead.detail) == {"reason": "rejected", "queue": work, "count": "1", "into": dlq}
    assert "1 dead-lettered" in result.table().caption
    assert lab_threads() == []


def _fail_once(ch, method, properties, body):
    if (properties.headers or {}).get("x-death"):
        ch.basic_ack(delivery_tag=method.delivery_tag)  # back from the retry queue: it works now
    else:
        ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)


def test_delayed_retry_waits_the_ttl_then_comes_back_and_is_acked(clean):
    ttl_ms = round(4000 * settings.time_scale())  # 4 lesson seconds: 200 ms at the test time scale
    topo = T.delayed_retry(ttl_ms, stem="t_retry")
    result = lab.run(_fail_once, tasks=["Task 1.", "Task 2."], workers=1, topology=topo, progress=False,
                     timeout=30)
    assert not result.timed_out and result.completed == {1, 2} and result.lost == []
    assert lab.task_states(result.events) == {1: "done", 2: "done"}
    for task in (1, 2):
        mine = [e for e in result.events if e.task == task]
        nack = next(e for e in mine if e.kind == ev.NACK)
        wait = next(e for e in mine if e.kind == ev.RETRY_WAIT)
        again = [e for e in mine if e.kind == ev.DELIVER][1]
        assert ev.detail_fields(wait.detail) == {"reason": "rejected", "queue": PREFIX + "t_retry_tasks",
                                                 "count": "1", "into": PREFIX + "t_retry_wait"}
        delay = again.t - nack.t
        print(f"\ntask {task}: nack -> redelivery {delay * 1000:.0f} ms (TTL {ttl_ms} ms)")
        assert ttl_ms / 1000 <= delay < ttl_ms / 1000 + 2.0
        assert [e.kind for e in mine if e.kind in (ev.NACK, ev.ACK)] == [ev.NACK, ev.ACK]
    assert _ready(clean, PREFIX + "t_retry_wait") == 0 and _ready(clean, PREFIX + "t_retry_tasks") == 0
    assert "2 sent to the retry queue" in result.table().caption


def _park(ch, method, properties, body):
    ch.basic_publish(settings.name(T.PARKING_EXCHANGE), settings.name(T.PARKING_KEY), body,
                     pika.BasicProperties(headers={"x-retry-count": 3}, delivery_mode=2))
    ch.basic_ack(delivery_tag=method.delivery_tag)


def test_a_parked_copy_is_one_retry_and_one_parked_event(clean):
    result = lab.run(_park, tasks=["Task 1."], workers=1, topology=T.PARKING_LOT, progress=False, timeout=30)
    assert _ready(clean, PREFIX + "parking_lot") == 1
    (retry,) = result.of_kind(ev.RETRY)  # a copy of the message it handled (same body): a retry of task 1
    assert (retry.task, retry.detail) == (1, f"{PREFIX}parking_exchange -> {PREFIX}parking_lot")
    (parked,) = result.of_kind(ev.PARKED)
    assert parked.task == 1 and ev.detail_fields(parked.detail) == {"retries": "3", "into": PREFIX + "parking_lot"}


def _spawn_follow_up(ch, method, properties, body):
    if not body.startswith(b"follow-up"):
        ch.basic_publish("", method.routing_key, b"follow-up of " + body)
    ch.basic_ack(delivery_tag=method.delivery_tag)


def test_publishing_another_message_is_a_publish_not_a_retry(clean):
    result = lab.run(_spawn_follow_up, tasks=["Task 1."], workers=1, progress=False, timeout=30)
    assert result.count(ev.RETRY) == 0
    follow = [e for e in result.of_kind(ev.PUBLISH) if e.worker is not None]
    assert [(e.worker, e.task) for e in follow] == [(1, None)]
    assert "(not the message being handled)" in follow[0].detail
    assert result.published == [1] and result.completed == {1}


def _always_requeue(ch, method, properties, body):
    ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)


def test_a_quorum_queue_dead_letters_past_its_delivery_limit(clean):
    run = lab.start(_always_requeue, workers=1, topology=T.QUORUM)
    try:
        run.publish(["Task 1."])
        assert wait_until(lambda: run.log.count(ev.DEAD_LETTER) == 1, timeout=20)
    finally:
        run.stop()
    deliveries = [e for e in run.log.events if e.kind == ev.DELIVER]
    (dead,) = run.log.of_kind(ev.DEAD_LETTER)
    fields = ev.detail_fields(dead.detail)
    assert (dead.task, fields["reason"], fields["queue"]) == (1, "delivery_limit", PREFIX + "quorum_tasks")
    assert len(deliveries) == 4  # the first delivery and 3 redeliveries, then the limit
    assert _ready(clean, PREFIX + "quorum_dead") == 1


def test_the_taps_leave_nothing_behind(clean):
    run = lab.start(lab.lesson_callback, workers=1, topology=T.DEAD_LETTER)
    taps = run._taps
    tap_queue = taps.queues[0]
    assert _exists(clean, tap_queue)
    run.stop()
    assert not taps.is_alive() and not _exists(clean, tap_queue)
    assert lab_threads() == []


def test_reset_deletes_what_was_declared_and_nothing_of_another_prefix(clean):
    other = f"pytest-other-{uuid.uuid4().hex[:6]}."
    foreign = [other + "task_queue", other + "dl_dead"]
    try:
        with clean.channel() as ch:
            for name in foreign:
                ch.queue_declare(queue=name, durable=True)
            ch.basic_publish("", foreign[0], b"Task of another learner.")
        lab.run(_reject_poison, tasks=["poison"], workers=1, topology=T.DEAD_LETTER, progress=False, timeout=30)
        lab.run(lab.lesson_callback, tasks=["Task 1."], workers=1, progress=False, timeout=30)
        deleted = lab.reset()
        declared = {name for _, name in (*T.DEAD_LETTER.names(), *T.LESSON.names())}
        assert set(deleted) == declared and len(deleted) == len(declared)
        assert all(name.startswith(PREFIX) for name in deleted)
        assert not any(_exists(clean, name) for kind, name in T.DEAD_LETTER.names() if kind == "queue")
        assert _ready(clean, foreign[0]) == 1 and _exists(clean, foreign[1])  # another prefix: untouched
        assert lab.reset() == []  # nothing of ours is left
    finally:
        with clean.channel() as ch:
            for name in foreign:
                ch.queue_delete(queue=name)
