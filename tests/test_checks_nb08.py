"""Notebook 08's self-check on hand-made outcomes: the right prediction, and the typical mistakes with their hints."""

from __future__ import annotations

from workqueue_lab.lessons.checks import nb08

# What RabbitMQ does (the notebook asserts it on the cluster): nothing while the node is down,
# the persistent (odd) tasks once it is back.
OUTAGE = nb08.Outage(nb08.CLASSIC_TASKS, frozenset(), frozenset({1, 3, 5}))


def test_the_right_prediction_passes():
    check = nb08.prediction(set(), {1, 3, 5}, OUTAGE)
    assert check and check.hint == ""
    assert check.got == "while down: set(), after return: {1, 3, 5}" == check.expected


def test_a_list_is_as_good_as_a_set():
    assert nb08.prediction([], [5, 3, 1], OUTAGE)


def test_thinking_a_survivor_serves_the_classic_queue_is_explained():
    check = nb08.prediction({1, 2, 3, 4, 5, 6}, {1, 3, 5}, OUTAGE)
    assert not check
    assert "lives on one node" in check.hint and "quorum queue" in check.hint
    assert "transient" not in check.hint


def test_expecting_transient_tasks_back_is_explained():
    check = nb08.prediction(set(), {1, 2, 3, 4, 5, 6}, OUTAGE)
    assert not check
    assert check.hint.startswith("Tasks {2, 4, 6} were transient (delivery_mode=1)")


def test_expecting_everything_lost_is_explained():
    check = nb08.prediction(set(), set(), OUTAGE)
    assert not check
    assert check.hint.startswith("Tasks {1, 3, 5} were persistent (delivery_mode=2)")
    assert "on disk" in check.hint


def test_two_mistakes_get_both_hints():
    check = nb08.prediction({2}, {2, 4}, OUTAGE)
    assert "lives on one node" in check.hint
    assert "Tasks {2, 4} were transient" in check.hint and "Tasks {1, 3, 5} were persistent" in check.hint


def test_the_stub_and_bad_input_say_what_to_write():
    assert nb08.prediction(None, None, OUTAGE).hint.startswith("Nothing to check yet")
    assert not nb08.prediction("1, 3, 5", set(), OUTAGE)
    assert "set of task numbers" in nb08.prediction({1.0}, set(), OUTAGE).hint
    assert "set of task numbers" in nb08.prediction({True}, set(), OUTAGE).hint
    locked = nb08.lock_prediction(set(), {1, 3, 5})
    early = nb08.check_prediction(locked)
    assert not early and "kill the node" in early.hint
    assert nb08.check_prediction(locked, outage=OUTAGE)


def test_the_check_judges_the_prediction_locked_before_the_kill_only():
    import dataclasses

    mine = {2}
    locked = nb08.lock_prediction(set(), mine)
    mine |= {1, 3, 5}  # edited after locking: the check reads the locked copy
    assert not nb08.check_prediction(locked, OUTAGE)
    right = nb08.lock_prediction(set(), {1, 3, 5})
    killed_before = dataclasses.replace(OUTAGE, killed_at=right.at - 1.0)
    late = nb08.check_prediction(right, killed_before)
    assert not late and "after the node was killed" in late.hint
    assert nb08.check_prediction(right, dataclasses.replace(OUTAGE, killed_at=right.at + 1.0))
    for nothing in (None, nb08.lock_prediction(None, None)):
        unlocked = nb08.check_prediction(nothing, OUTAGE)
        assert not unlocked and "before part 3's kill" in unlocked.hint


def test_the_outage_knows_which_tasks_were_persistent():
    assert OUTAGE.persistent == {1, 3, 5} and OUTAGE.transient == {2, 4, 6}


def test_prefetch_is_read_from_ready_events_that_also_say_where_the_worker_connected():
    from workqueue_lab.lessons.checks import evidence
    from workqueue_lab.record import events as ev

    ready = [ev.Event(0.0, ev.READY, w, detail=f"prefetch=0 via=127.0.0.1:568{w}") for w in (1, 2)]
    assert evidence.prefetch_of(ready) == 0
    assert evidence.prefetch_of([ev.Event(0.0, ev.READY, 1, detail="prefetch=1")]) == 1  # older logs
