"""``run.watch_queue`` on a broker the lab cannot run programs in: the polling fallback, for real.

The system broker given by URL (``Broker(url)``, a ``UrlControl``) has no ``stats`` ability, so no
in-node sampler can start: a background thread polls the queue instead.  Its samples must follow the
queue as the broker reports it, and the thread must be gone when the block ends.
"""

from __future__ import annotations

import threading

from helpers import lab_threads, wait_until

import workqueue_lab as lab
from workqueue_lab.broker.handle import Broker


def test_watch_queue_polls_when_the_node_cannot_run_the_sampler(clean):
    url_broker = Broker(clean.url)  # the same RabbitMQ, as a learner's shared URL: no rabbitmqctl
    assert url_broker.kind == "url" and not url_broker.control.can("stats")
    run = lab.start(lab.lesson_callback, workers=1, prefetch=1, broker=url_broker)
    try:
        threads = threading.active_count()
        with run.watch_queue(every=0.1) as samples:
            assert any(t.name == "workqueue-lab queue watch" for t in threading.enumerate())  # the poller
            run.publish(lab.numbered_tasks([6] * 4))  # 4 tasks of 0.3 s: about 1.2 s to watch
            result = run.wait(timeout=60)
            seen = len(samples)
            assert wait_until(lambda: len(samples) > seen, timeout=10)  # one more poll, after the last ack
        assert threading.active_count() <= threads
    finally:
        run.stop()
    assert sorted(result.completed) == [1, 2, 3, 4]
    assert len(samples) >= 3, samples
    times = [t for t, _, _ in samples]
    assert times == sorted(times)
    ready = [r for _, r, _ in samples]
    # the backlog as the broker reported it: at most 3 waiting (one in the worker's hands), then none
    assert 1 <= max(ready) <= 3 and ready[-1] == 0 and min(ready) >= 0, samples
    assert lab_threads() == []


def test_queue_counts_on_a_broker_without_unacked_counts_answers_at_once(clean):
    import time

    from workqueue_lab.lessons import broker_counts

    url_broker = Broker(clean.url)  # no management URL, no rabbitmqctl: no unacked count to wait for
    queue = lab.settings.name("counts_demo")
    url_broker.remember("queue", queue)
    with url_broker.channel() as channel:
        channel.queue_delete(queue=queue)  # a fresh count, whatever an interrupted run left
        channel.queue_declare(queue=queue, durable=True)  # RabbitMQ 4.x may refuse a transient one
        channel.basic_publish(exchange="", routing_key=queue, body=b"Task 1.")
    assert url_broker.queue_stats(queue).unacked is None
    started = time.monotonic()
    try:
        counts = broker_counts.queue_counts(url_broker, queue, wait_for=(1, 0), within=8.0)
    finally:
        url_broker.reset()
    assert counts == (1, None)
    assert time.monotonic() - started < 4.0  # not the 8 s a wait for the missing count would take
