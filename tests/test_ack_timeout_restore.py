"""``broker.short_ack_timeout`` (notebook 02's demo) shortens node-wide settings and puts them back.

On the session's private node (the setting is node-wide: never on the shared broker from a test): inside
the block ``consumer_timeout`` and ``channel_tick_interval`` are the short values; after it they are what
they were.  The demo itself runs in the block: a worker with a ``hang`` fault holds its task past the
timeout, RabbitMQ closes its channel and the task is delivered again.
"""

from __future__ import annotations

from private_broker import private_broker

import workqueue_lab as lab

KEYS = ("consumer_timeout", "channel_tick_interval")


def test_short_ack_timeout_is_put_back_and_the_hang_fault_trips_it(request, monkeypatch):
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.05")
    with private_broker(request.config) as node:
        control = node.control
        assert control.can("settings"), control.why_not("settings")
        before = {k: control.get_setting(k) for k in KEYS}
        assert before != {"consumer_timeout": 500, "channel_tick_interval": 100}, before
        # a hang of 1.2 real seconds, well past the 500 ms timeout checked every 100 ms
        stuck = lab.WorkerSpec(faults=(lab.fault("hang", tasks=1, times=1, seconds=1.2 / 0.05),), restart=True)
        node.reset()
        with node.short_ack_timeout(ms=500, tick_ms=100) as how:
            assert how == "node"
            during = {k: control.get_setting(k) for k in KEYS}
            result = lab.run(lab.lesson_callback, tasks=["Task 1"], workers=[stuck], prefetch=1, broker=node,
                             progress=False, timeout=30)
        after = {k: control.get_setting(k) for k in KEYS}
        node.reset()
    assert during == {"consumer_timeout": 500, "channel_tick_interval": 100}  # the read works: not None == None
    assert after == before
    # the hang fault held task 1 past the timeout: the broker closed the channel and delivered it again
    assert any("PRECONDITION_FAILED" in e.detail for e in result.events), result.events
    assert 1 in result.redelivered and result.completed == {1} and result.lost == []
