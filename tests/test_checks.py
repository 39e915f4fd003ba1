"""The notebooks' self-checks: one Check type, and each check judged on hand-made event logs.

Every check is a pure function of what a run recorded, so these tests need no broker: they build
the event log of the right answer and of each typical mistake, and assert that the right answer
passes and that each mistake fails with a hint naming its cause.  The last tests run notebook 03's
consume trial on the real broker, because its hint relies on how RabbitMQ applies basic_qos.
"""

from __future__ import annotations

import types

from workqueue_lab.lessons import trials
from workqueue_lab.lessons.checks import FAIL, PASS, Check, nb00, nb01, nb02, nb03, verdict
from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event


class Log:
    """A tiny builder for event logs: each call appends one event at time ``t`` (default: just after the last)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, kind: str, worker: int | None = None, task: int | None = None, tag: int | None = None,
            t: float | None = None, **kw) -> Log:
        t = (self.events[-1].t + 0.001 if self.events else 0.0) if t is None else t
        self.events.append(Event(t, kind, worker, task, tag, **kw))
        return self

    def publish(self, *tasks: int) -> Log:
        for task in tasks:
            self.add(ev.PUBLISH, task=task)
        return self

    def ready(self, *workers: int, prefetch: int = 1) -> Log:
        for w in workers:
            self.add(ev.READY, w, detail=f"prefetch={prefetch}")
        return self

    def deliver(self, worker: int, task: int, tag: int, t: float | None = None, redelivered: bool = False) -> Log:
        return self.add(ev.DELIVER, worker, task, tag, t=t, redelivered=redelivered)

    def ack(self, worker: int, task: int | None, tag: int, t: float | None = None) -> Log:
        return self.add(ev.ACK, worker, task, tag, t=t)


# --- the Check type -------------------------------------------------------------------------------


def test_a_check_is_truthy_exactly_when_it_passed_and_a_hint_means_it_failed():
    good = verdict("Round robin", expected={1: [1]}, got={1: [1]})
    bad = verdict("Round robin", expected={1: [1]}, got={1: [2]}, hint="task 1 went to worker 2")
    assert good and good.passed and not good.hint
    assert not bad and not bad.passed
    assert isinstance(bad, Check) and bad.expected == {1: [1]} and bad.got == {1: [2]}


def test_a_check_shows_as_one_block_with_its_mark_and_hint():
    bad = verdict("Nothing lost", expected="none lost", got="lost: [1, 3]", hint="auto_ack=True <lost> them")
    text, page = str(bad), bad._repr_html_()
    assert text.startswith(f"{FAIL} Nothing lost") and "auto_ack=True <lost> them" in text
    assert "expected:" in text and "lost: [1, 3]" in text and repr(bad) == text
    assert FAIL in page and "auto_ack=True &lt;lost&gt; them" in page and "<lost>" not in page
    good = verdict("Nothing lost", expected="none lost", got="none lost")
    assert str(good).startswith(f"{PASS} Nothing lost") and "why" not in str(good)
    assert PASS in good._repr_html_() and FAIL not in good._repr_html_()


# --- notebook 00 --------------------------------------------------------------------------------


FACTS = {"python": "3.12.1", "pika": "1.3.2", "rabbitmq": "3.10.7", "broker_error": "",
         "url": "amqp://guest:guest@127.0.0.1:5672/%2F", "masked_url": "amqp://guest:***@127.0.0.1:5672/%2F",
         "mgmt_link": None}


def test_environment_passes_on_what_the_course_needs():
    assert nb00.environment(FACTS)


def test_environment_names_what_is_too_old_and_a_silent_broker():
    old = nb00.environment(FACTS | {"pika": "1.2.0"})
    assert not old and "pika 1.2.0 is too old" in old.hint
    gone = nb00.environment(FACTS | {"rabbitmq": None, "broker_error": "connection refused"})
    assert not gone and "does not answer" in gone.hint and "connection refused" in gone.hint
    shown = nb00.environment(FACTS | {"masked_url": FACTS["url"]})
    assert not shown and "password" in shown.hint


# --- notebook 01 --------------------------------------------------------------------------------


def three_workers(prefetch: int = 1) -> Log:
    """The exercise's right answer: six tasks of 1, 2, 3, 3, 3, 3 s on three workers at prefetch 1."""
    log = Log().publish(1, 2, 3, 4, 5, 6).ready(1, 2, 3, prefetch=prefetch)
    log.deliver(1, 1, 1, t=0.1).deliver(2, 2, 1, t=0.1).deliver(3, 3, 1, t=0.1)
    log.ack(1, 1, 1, t=1.1).deliver(1, 4, 2, t=1.1)
    log.ack(2, 2, 1, t=2.1).deliver(2, 5, 2, t=2.1)
    log.ack(3, 3, 1, t=3.1).deliver(3, 6, 2, t=3.1)
    return log.ack(1, 4, 2, t=4.1).ack(2, 5, 2, t=5.1).ack(3, 6, 2, t=6.1)


def test_round_robin_passes_on_turn_taking_and_on_a_right_prediction():
    events = three_workers().events
    check = nb01.check_round_robin(events, workers=3)
    assert check and check.got == {1: [1, 4], 2: [2, 5], 3: [3, 6]} == check.expected
    assert nb01.check_round_robin(events, workers=3, predicted={1: [4, 1], 2: [2, 5], 3: [3, 6]})


def test_round_robin_says_nothing_to_check_before_a_run():
    check = nb01.check_round_robin(None, workers=3)
    assert not check and "Nothing to check yet" in check.hint and "workers=3" in check.hint
    wrong = nb01.check_round_robin("my result", workers=3)
    assert not wrong and "lab.run" in wrong.hint


def test_round_robin_names_a_wrong_worker_count():
    log = Log().publish(1, 2, 3, 4, 5, 6).ready(1, 2)
    for i, task in enumerate(range(1, 7)):
        worker, tag = 1 + i % 2, 1 + i // 2
        log.deliver(worker, task, tag).ack(worker, task, tag)
    check = nb01.check_round_robin(log.events, workers=3)
    assert not check and "used 2 worker(s)" in check.hint and "workers=3" in check.hint


def test_round_robin_names_a_wrong_prediction_and_why_the_task_went_elsewhere():
    check = nb01.check_round_robin(three_workers().events, workers=3,
                                   predicted={1: [1, 4], 2: [2, 6], 3: [3, 5]})
    assert not check
    assert "You predicted task 5 for worker 3; worker 2 did it" in check.hint
    assert "When task 5 went out, worker 3 was still busy with task(s) [3]" in check.hint


def test_round_robin_names_a_prediction_that_counted_deliveries_not_completions():
    log = Log().publish(1, 2, 3, 4, 5, 6).ready(1, 2, 3)
    log.deliver(1, 1, 1, t=0.1).deliver(2, 2, 1, t=0.1).deliver(3, 3, 1, t=0.1)
    log.ack(1, 1, 1, t=1.1).deliver(1, 4, 2, t=1.1).ack(2, 2, 1, t=2.1).deliver(2, 5, 2, t=2.1)
    log.add(ev.NACK, 3, 3, 1, t=3.1, requeue=True).deliver(1, 3, 3, t=4.1, redelivered=True)
    log.ack(1, 4, 2, t=4.1).ack(1, 3, 3, t=5).ack(2, 5, 2, t=5.1).deliver(3, 6, 2, t=5.2).ack(3, 6, 2, t=6)
    check = nb01.check_round_robin(log.events, workers=3, predicted={1: [1, 3, 4], 2: [2, 5], 3: [3, 6]})
    assert not check and "counts deliveries (attempts)" in check.hint and "completed tasks" in check.hint


def test_round_robin_names_a_missing_ack():
    log = Log().publish(1, 2, 3).ready(1, 2, 3)
    for w in (1, 2, 3):
        log.deliver(w, w, 1)
    check = nb01.check_round_robin(log.events, workers=3)
    assert not check and "never acknowledged" in check.hint and "basic_ack" in check.hint


def test_round_robin_names_tasks_stuck_behind_an_earlier_runs_message():
    log = Log().publish(1, 2, 3).ready(1, 2, 3)
    log.deliver(1, None, 1).deliver(2, 1, 1).ack(2, 1, 1).deliver(2, 2, 2).ack(2, 2, 2)  # worker 1 holds a leftover
    log.deliver(3, None, 1)
    check = nb01.check_round_robin(log.events, workers=3)
    assert not check and "Tasks [3] never reached a worker" in check.hint and "lab.reset()" in check.hint


def test_first_free_and_round_robin_differ_when_task_lengths_do():
    assert nb01.first_free([1, 2, 3, 4], 2) == {1: [1, 3], 2: [2, 4]} == nb01.round_robin(4, 2)
    assert nb01.first_free([4, 1, 1, 1], 2) == {1: [1], 2: [2, 3, 4]} != nb01.round_robin(4, 2)
    assert nb01.first_free([5, 1, 2, 3, 3, 3], 3) == {1: [1], 2: [2, 4, 6], 3: [3, 5]}
    assert nb01.first_free([2, 1, 1, 1], 2) is None  # both free at 2 s with task 4 waiting: a race


def third_worker_run(prefetch: int = 1, lengths=(5, 1, 2, 3, 3, 3)) -> Log:
    """The exercise's run: six tasks of 5, 1, 2, 3, 3, 3 s on three workers at prefetch 1 (first free)."""
    log = Log()
    for task, length in enumerate(lengths, start=1):
        log.add(ev.PUBLISH, task=task, detail=f"Task {task}" + "." * length)
    log.ready(1, 2, 3, prefetch=prefetch)
    log.deliver(1, 1, 1, t=0.1).deliver(2, 2, 1, t=0.1).deliver(3, 3, 1, t=0.1)
    log.ack(2, 2, 1, t=1.1).deliver(2, 4, 2, t=1.1)
    log.ack(3, 3, 1, t=2.1).deliver(3, 5, 2, t=2.1)
    log.ack(2, 4, 2, t=4.1).deliver(2, 6, 3, t=4.1)
    return log.ack(1, 1, 1, t=5.1).ack(3, 5, 2, t=5.1).ack(2, 6, 3, t=7.1)


def test_third_worker_passes_on_a_right_prediction_and_wants_one_first():
    events = third_worker_run().events
    right = {1: [1], 2: [2, 4, 6], 3: [3, 5]}
    assert nb01.check_third_worker(events, predicted=nb01.lock_prediction(right))
    for unlocked in (None, nb01.lock_prediction(None), right):  # nothing, an empty lock, a dict never locked
        unpredicted = nb01.check_third_worker(events, predicted=unlocked)
        assert not unpredicted and "Write your prediction first" in unpredicted.hint


def test_third_worker_refuses_a_prediction_locked_after_the_run_and_one_edited_after_locking():
    right = {1: [1], 2: [2, 4, 6], 3: [3, 5]}
    locked = nb01.lock_prediction(right)
    run = types.SimpleNamespace(events=third_worker_run().events, t0=locked.at - 1.0)  # the run began first
    late = nb01.check_third_worker(run, predicted=locked)
    assert not late and "after the run had started" in late.hint
    wrong = {1: [1, 4], 2: [2, 5], 3: [3, 6]}
    locked = nb01.lock_prediction(wrong)
    wrong[1], wrong[2], wrong[3] = [1], [2, 4, 6], [3, 5]  # edited to the answer after locking: no effect
    assert not nb01.check_third_worker(third_worker_run().events, predicted=locked)


def test_third_worker_names_strict_turns_as_the_prefetch_0_rule():
    turns = nb01.lock_prediction({1: [1, 4], 2: [2, 5], 3: [3, 6]})
    check = nb01.check_third_worker(third_worker_run().events, predicted=turns)
    assert not check and "You predicted task 4 for worker 1; worker 2 did it" in check.hint
    assert "worker 1 was still busy with task(s) [1]" in check.hint
    assert "strict turn-taking, which is what prefetch=0 does" in check.hint
    assert "first worker that is free" in check.hint


def test_third_worker_looks_at_the_tasks_sent_and_the_prefetch():
    lesson = third_worker_run(lengths=(1, 2, 3, 4, 1, 1)).events
    other = nb01.check_third_worker(lesson, predicted=nb01.lock_prediction({1: [1], 2: [2, 4, 6], 3: [3, 5]}))
    assert not other and "[1, 2, 3, 4, 1, 1]" in other.hint and "THIRD_WORKER_TASKS" in other.hint
    unlimited = nb01.check_third_worker(third_worker_run(prefetch=0).events,
                                        predicted=nb01.lock_prediction({1: [1]}))
    assert not unlimited and "prefetch=0" in unlimited.hint and "prefetch=1" in unlimited.hint


def test_round_robin_fails_a_first_free_split_and_names_the_rule():
    check = nb01.check_round_robin(third_worker_run().events, workers=3)
    assert not check and "not worker 1 as strict turns would give" in check.hint
    assert "the next task goes to the first worker that is free" in check.hint


TERMINAL_1 = " [*] Waiting\n [x] Received 'Task 1.'\n [x] Done\n [x] Received 'Task 3...'\n [x] Done\n"
TERMINAL_2 = " [*] Waiting\n [x] Received 'Task 2..'\n [x] Done\n [x] Received 'Task 4....'\n [x] Done\n"


def test_two_terminals_pass_on_the_lesson_split():
    assert nb01.tasks_in_output(TERMINAL_1) == [1, 3]
    check = nb01.check_two_terminals([TERMINAL_2, TERMINAL_1])
    assert check and check.got == [[2, 4], [1, 3]]


def test_two_terminals_name_one_worker_only_and_a_late_start():
    one = nb01.check_two_terminals([TERMINAL_1 + TERMINAL_2])
    assert not one and "start exactly two workers" in one.hint
    late = TERMINAL_1.replace("'Task 3...'", "'Task 2..'") + " [x] Received 'Task 3...'\n [x] Done\n"
    check = nb01.check_two_terminals([late, " [x] Received 'Task 4....'\n [x] Done\n"])
    assert not check and "start both workers before sending the first task" in check.hint
    stopped = nb01.check_two_terminals([TERMINAL_1, TERMINAL_2.rsplit(" [x] Done", 1)[0]])
    assert not stopped and "wait until both workers finish" in stopped.hint


# --- notebook 02 --------------------------------------------------------------------------------


def crash_start(prefetch: int = 0) -> Log:
    """Worker 1 gets tasks 1, 3, 5 and dies on task 1; worker 2 gets 2, 4, 6."""
    log = Log().publish(1, 2, 3, 4, 5, 6).ready(1, 2, prefetch=prefetch)
    log.deliver(1, 1, 1, t=0.1).deliver(2, 2, 1, t=0.1)
    return log.add(ev.CRASH, 1, 1, t=0.3, detail="injected crash on task 1")


def test_nothing_lost_passes_with_manual_acks():
    log = crash_start()
    log.ack(2, 2, 1, t=1.1)
    for tag, task in enumerate((4, 6, 1, 3, 5), start=2):
        log.deliver(2, task, tag, redelivered=task in (1, 3, 5)).ack(2, task, tag)
    check = nb02.check_nothing_lost(log.events)
    assert check, check
    assert "redelivered: [1, 3, 5]" in check.got


def test_nothing_lost_names_auto_ack():
    log = crash_start()
    log.add(ev.DONE, 2, 2, 1, t=1.1)
    for tag, task in ((2, 4), (3, 6)):
        log.deliver(2, task, tag).add(ev.DONE, 2, task, tag)
    for task in (1, 3, 5):
        log.add(ev.LOST, None, task, detail="published, never completed, in no queue")
    check = nb02.check_nothing_lost(log.events)
    assert not check and "auto_ack=True" in check.hint and "[1, 3, 5]" in check.hint and "ack='manual'" in check.hint


def test_nothing_lost_names_an_ack_never_sent():
    log = crash_start()
    for tag, task in enumerate((4, 6, 1, 3, 5), start=2):
        log.deliver(2, task, tag, redelivered=task in (1, 3, 5))
    check = nb02.check_nothing_lost(log.events)
    assert not check and "never acknowledged" in check.hint and "redelivered" in check.hint
    assert "basic_ack(delivery_tag=method.delivery_tag)" in check.hint


def test_nothing_lost_names_an_ack_with_the_wrong_delivery_tag():
    log = crash_start()
    log.ack(2, 2, 1, t=1.1).deliver(2, 4, 2).ack(2, 2, 1)  # acks tag 1 again instead of tag 2
    log.add(ev.TIMEOUT, 2, 4, detail="(406, 'PRECONDITION_FAILED - unknown delivery tag 1')")
    log.add(ev.RESTART, 2, detail="prefetch=0").deliver(2, 4, 1, redelivered=True).ack(2, 2, 1)
    check = nb02.check_nothing_lost(log.events)
    assert not check and "did not hold (tag 1 on worker 2" in check.hint
    assert "unknown delivery tag" in check.hint and "method.delivery_tag" in check.hint


def test_nothing_lost_refuses_an_ack_sent_before_the_work():
    log = Log().publish(1, 2, 3, 4, 5, 6).ready(1, 2, prefetch=0)
    log.deliver(1, 1, 1, t=0.1).ack(1, 1, 1).deliver(2, 2, 1, t=0.1).ack(2, 2, 1)
    log.add(ev.CRASH, 1, 1, t=0.3, detail="injected crash on task 1")
    for tag, task in enumerate((4, 6, 3, 5), start=2):
        log.deliver(2, task, tag, redelivered=task in (3, 5)).ack(2, task, tag)
    check = nb02.check_nothing_lost(log.events)
    assert not check and "acknowledged task 1 before doing it" in check.hint
    assert "after lab.work" in check.hint and "lost: none" in check.got


def test_nothing_lost_refuses_a_fixed_delivery_tag_even_when_every_task_ends_acked():
    log = crash_start()
    log.ack(2, 2, 1, t=1.1).deliver(2, 4, 2).ack(2, 4, 1)  # tag 1 again, for task 4: unknown by now
    log.add(ev.TIMEOUT, 2, 4, detail="(406, 'PRECONDITION_FAILED - unknown delivery tag 1')")
    log.add(ev.RESTART, 2, detail="prefetch=0")
    for task in (6, 1, 3, 5):
        log.add(ev.RESTART, 2, detail="prefetch=0").deliver(2, task, 1, redelivered=True).ack(2, task, 1)
    check = nb02.check_nothing_lost(log.events)
    assert not check and "never a fixed number" in check.hint and "closed the channel 1 time(s)" in check.hint


def test_nothing_lost_names_a_nack_without_requeue_and_no_dead_letter_queue():
    log = crash_start()
    log.ack(2, 2, 1, t=1.1)
    for tag, task in enumerate((4, 6, 1, 3, 5), start=2):
        log.deliver(2, task, tag, redelivered=task in (1, 3, 5))
        if task == 1:
            log.add(ev.NACK, 2, task, tag, requeue=False)
        else:
            log.ack(2, task, tag)
    check = nb02.check_nothing_lost(log.events)
    assert not check and "requeue=False dropped tasks [1]" in check.hint and "dead-letter" in check.hint


def test_nothing_lost_names_a_run_without_the_crash():
    log = Log().publish(1, 2).ready(1, 2).deliver(1, 1, 1).deliver(2, 2, 1).ack(1, 1, 1).ack(2, 2, 1)
    check = nb02.check_nothing_lost(log.events)
    assert not check and "No worker crashed" in check.hint and "crashing" in check.hint


# --- notebook 03 --------------------------------------------------------------------------------


def test_fair_dispatch_passes_with_qos_before_consume():
    assert nb03.fair_dispatch(received=1, waiting=4, calls=["basic_qos", "basic_consume"], prefetch_count=1)


def test_fair_dispatch_names_each_typical_mistake():
    none = nb03.fair_dispatch(received=5, waiting=0, calls=["basic_consume"])
    assert not none and "pushed all 5" in none.hint and "without basic_qos" in none.hint
    late = nb03.fair_dispatch(received=5, waiting=0, calls=["basic_consume", "basic_qos"], prefetch_count=1)
    assert not late and "came after basic_consume" in late.hint
    two = nb03.fair_dispatch(received=2, waiting=3, calls=["basic_qos", "basic_consume"], prefetch_count=2)
    assert not two and "prefetch_count=2 lets it hold that many" in two.hint
    auto = nb03.fair_dispatch(received=5, waiting=0, calls=["basic_qos", "basic_consume"], prefetch_count=1,
                              auto_ack=True)
    assert not auto and "auto_ack=True" in auto.hint
    idle = nb03.fair_dispatch(received=0, waiting=5, calls=["basic_qos"], prefetch_count=1)
    assert not idle and "must call channel.basic_consume" in idle.hint
    broken = nb03.fair_dispatch(received=0, waiting=5, calls=[], error="NameError: name 'chanel' is not defined")
    assert not broken and "NameError" in broken.hint


def prefetch_0() -> list[Event]:
    """Seven tasks (8 s, then six of 1 s) dealt out in turn to two workers at once."""
    log = Log().publish(*range(1, 8)).ready(1, 2, prefetch=0)
    clock = {1: 0.0, 2: 0.0}
    for i, task in enumerate(range(1, 8)):
        worker, tag = 1 + i % 2, 1 + i // 2
        log.deliver(worker, task, tag, t=clock[worker])
        clock[worker] += 8 if task == 1 else 1
        log.ack(worker, task, tag, t=clock[worker])
    return sorted(log.events, key=lambda e: e.t)


def prefetch_1() -> list[Event]:
    """The same at prefetch 1: worker 1 holds task 1 for 8 s, worker 2 does the rest one by one."""
    log = Log().publish(*range(1, 8)).ready(1, 2, prefetch=1).deliver(1, 1, 1, t=0.01)
    for tag, task in enumerate(range(2, 8), start=1):
        log.deliver(2, task, tag, t=tag - 0.99).ack(2, task, tag, t=tag + 0.01)
    return log.ack(1, 1, 1, t=8.01).events


RIGHT = {0: {1: [1, 3, 5, 7], 2: [2, 4, 6]}, 1: {1: [1], 2: [2, 3, 4, 5, 6, 7]}}


def test_prediction_passes_when_it_matches_both_runs():
    check = nb03.prediction(RIGHT, {0: prefetch_0(), 1: prefetch_1()})
    assert check, check
    assert check.got == {"prefetch=0": RIGHT[0], "prefetch=1": RIGHT[1]}


def test_prediction_names_the_first_task_that_went_elsewhere_and_what_prefetch_allowed():
    turns = nb03.prediction({0: None, 1: RIGHT[0]}, {1: prefetch_1()})
    assert not turns
    assert "you predicted task 3 for worker 1, RabbitMQ gave it to worker 2" in turns.hint
    assert "prefetch=1 a worker holds at most 1 unacked message(s)" in turns.hint
    assert "worker 1 still held task(s) [1]" in turns.hint
    fair = nb03.prediction({0: RIGHT[1], 1: None}, {0: prefetch_0()})
    assert not fair and "task 3 for worker 2, RabbitMQ gave it to worker 1" in fair.hint
    assert "prefetch=0 there is no limit" in fair.hint and "in turn" in fair.hint


def test_prediction_names_a_forgotten_task_and_an_empty_answer():
    short = nb03.prediction({1: {1: [1], 2: [2, 3, 4, 5, 6]}}, {1: prefetch_1()})
    assert not short and "gives task 7 to no worker" in short.hint
    empty = nb03.prediction({0: None, 1: None}, {})
    assert not empty and "Fill in prefetch_0" in empty.hint


# --- notebook 03 on the broker: the consume trial the hints rely on ---------------------------


def test_check_consume_on_the_broker_tells_qos_first_from_qos_too_late(clean):
    def fair(channel, queue, on_message):
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(queue=queue, on_message_callback=on_message)

    def too_late(channel, queue, on_message):
        channel.basic_consume(queue=queue, on_message_callback=on_message)
        channel.basic_qos(prefetch_count=1)

    good = trials.check_consume(fair, clean)
    assert good, good
    late = trials.check_consume(too_late, clean)
    assert not late and "pushed all 5" in late.hint and "came after basic_consume" in late.hint


def test_ack_exercise_stops_a_callback_that_never_acks_within_seconds_and_the_check_names_it(clean, capsys):
    import time

    import workqueue_lab as lab

    def forgets(ch, method, properties, body):
        lab.work(body.decode())

    crashing = lab.WorkerSpec(faults=(lab.fault("crash", tasks=1),))
    started = time.monotonic()
    result = trials.run_ack_exercise(forgets, tasks=lab.numbered_tasks([4, 1, 1, 1, 1, 1]),
                                      workers=[crashing, lab.WorkerSpec()], prefetch=0, ack="manual")
    assert time.monotonic() - started < trials.STALL_SECONDS + 15      # not the run's 120 s timeout
    assert "acknowledged 0 message(s)" in capsys.readouterr().out
    check = nb02.check_nothing_lost(result)
    assert not check and "never acknowledged" in check.hint and "basic_ack" in check.hint
    assert lab.live_threads() == 0


def test_terminal_exercise_names_the_learners_own_worker_still_consuming(clean):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pytest

    import workqueue_lab as lab
    from workqueue_lab.lessons import trials

    root = Path(__file__).resolve().parent.parent
    queue = lab.settings.name("task_queue")
    own = subprocess.Popen([sys.executable, str(root / "worker.py")], stdout=subprocess.DEVNULL,
                           env=dict(os.environ, WORKQUEUE_LAB_URL=clean.url), stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not trials._consumers(clean, queue) and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(lab.LabError, match="your own `python worker.py`.*Ctrl-C"):
            trials.run_terminal_exercise(clean, lab.LESSON_TASKS)
    finally:
        own.terminate()
        own.wait(10)
    run = trials.run_terminal_exercise(clean, lab.LESSON_TASKS)
    assert nb01.check_two_terminals(run.outputs), run.outputs
