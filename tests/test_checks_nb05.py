"""Notebook 05's self-check, judged on hand-made event logs: the right answer and each typical mistake.

The logs are built as a run of the exercise records them: task 1 fails on every attempt, task 2 fails
once, task 3 works.  A retry is a copy republished (RETRY by the worker, RETRY_WAIT when it reaches the
retry queue), a park a copy sent to the parking lot (RETRY, then PARKED).
"""

from __future__ import annotations

from workqueue_lab.lessons.checks import nb05
from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event
from workqueue_lab.record.stories import task_stories


class Log:
    """Appends events 1 ms apart on one worker; each helper is one attempt at a task."""

    def __init__(self, tasks=(1, 2, 3)) -> None:
        self.events: list[Event] = []
        self.tag = 0
        for task in tasks:
            self.add(ev.PUBLISH, None, task)

    def add(self, kind: str, worker: int | None, task: int | None, **kw) -> None:
        t = self.events[-1].t + 0.001 if self.events else 0.0
        self.events.append(Event(t, kind, worker, task, **kw))

    def _deliver(self, task: int) -> int:
        self.tag += 1
        self.add(ev.DELIVER, 1, task, tag=self.tag, redelivered=False)
        return self.tag

    def ok(self, task: int) -> Log:
        tag = self._deliver(task)
        self.add(ev.ACK, 1, task, tag=tag)
        return self

    def fail_then(self, task: int, then: str) -> Log:
        """One failed attempt, handled by ``then``: retry | park | ack | requeue | reject_to_retry."""
        tag = self._deliver(task)
        self.add(ev.ERROR, 1, task, detail="injected TaskFailed")
        if then in ("retry", "park"):
            self.add(ev.RETRY, 1, task, detail="p.retry_exchange -> p.tasks")
            self.add(ev.ACK, 1, task, tag=tag)
            kind = ev.RETRY_WAIT if then == "retry" else ev.PARKED
            self.add(kind, None, task, detail="retries=1 into=p.queue")
        elif then == "ack":
            self.add(ev.ACK, 1, task, tag=tag)
        elif then == "requeue":
            self.add(ev.NACK, 1, task, tag=tag, requeue=True)
        elif then == "reject_to_retry":
            self.add(ev.NACK, 1, task, tag=tag, requeue=False)
            self.add(ev.RETRY_WAIT, None, task, detail="reason=rejected queue=p.tasks count=1 into=p.tasks_retry")
        return self


def exercise(task1_attempts: int = 4, task1_end: str = "park", task2_failure: str = "retry") -> Log:
    """Task 1 fails ``task1_attempts`` times (retried between, ``task1_end`` after the last)."""
    log = Log()
    for _ in range(task1_attempts - 1):
        log.fail_then(1, "retry")
    log.fail_then(1, task1_end)
    log.fail_then(2, task2_failure)
    if task2_failure != "ack":
        log.ok(2)
    return log.ok(3)


def test_retrying_three_times_then_parking_passes():
    check = nb05.check_retry_then_park(exercise().events)
    assert check, check
    assert "task 1: 4 attempt(s), 4 failed, parked" in check.got and "task 2: 2 attempt(s), 1 failed, done" in check.got
    stories = task_stories(exercise().events)
    assert (stories[1].attempts, stories[1].retried, stories[1].ended) == (4, 4, "parked")  # 3 retries + the park


def test_the_brokers_retry_route_and_a_dead_letter_queue_pass_too():
    log = Log()
    for _ in range(3):
        log.fail_then(1, "reject_to_retry")
    log.fail_then(1, "ack")
    log.events.pop()  # replace the ack: the last failure is dead-lettered by the broker instead
    log.add(ev.NACK, 1, 1, tag=log.tag, requeue=False)
    log.add(ev.DEAD_LETTER, None, 1, detail="reason=rejected queue=p.tasks count=1 into=p.dlq")
    log.fail_then(2, "reject_to_retry").ok(2).ok(3)
    check = nb05.check_retry_then_park(log.events)
    assert check, check


def test_acking_a_failed_task_is_lost():
    check = nb05.check_retry_then_park(exercise(task1_attempts=1, task1_end="ack", task2_failure="ack").events)
    assert not check
    assert check.hint.startswith("Lost: you acked a task that failed (task 1)")


def test_requeue_true_is_requeue_forever():
    log = Log()
    for _ in range(10):
        log.fail_then(1, "requeue")
    check = nb05.check_retry_then_park(log.ok(2).ok(3).events)
    assert not check
    assert check.hint.startswith("You requeue forever: task 1 reached a callback 10 times")
    assert "basic_nack(requeue=True) puts it straight back" in check.hint


def test_retrying_past_the_limit_is_requeue_forever():
    check = nb05.check_retry_then_park(exercise(task1_attempts=7).events)
    assert not check
    assert "You requeue forever" in check.hint and "nothing stops it after 3 retries" in check.hint


def test_parking_on_the_first_failure():
    check = nb05.check_retry_then_park(exercise(task1_attempts=1).events)
    assert not check
    assert check.hint.startswith("You parked on the first failure: task 1 never got a retry")


def test_parking_one_attempt_early_names_the_off_by_one():
    check = nb05.check_retry_then_park(exercise(task1_attempts=3).events)
    assert not check
    assert "parked after 3 attempts: 3 retries means 4 attempts" in check.hint


def test_a_task_that_failed_and_went_nowhere_has_no_end():
    log = Log()
    for _ in range(3):
        log.fail_then(1, "retry")
    log._deliver(1)  # the fourth attempt fails and the callback does nothing at all
    log.add(ev.ERROR, 1, 1)
    check = nb05.check_retry_then_park(log.fail_then(2, "retry").ok(2).ok(3).events)
    assert not check
    assert check.hint.startswith("Task 1 failed 4 time(s) and has no end")


def test_no_failure_and_no_result_say_what_to_do():
    no_faults = Log().ok(1).ok(2).ok(3)
    assert "keep workers=[flaky]" in nb05.check_retry_then_park(no_faults.events).hint
    nothing = nb05.check_retry_then_park(None)
    assert not nothing and nothing.hint.startswith("Nothing to check yet")


# --- the back-off exercise: one wait queue per delay, confirmed copies -------------------------------------


def backoff(waits=("tasks_wait_1", "tasks_wait_2", "tasks_wait_4"), confirms=True, mandatory=True) -> Log:
    """Task 1 fails every time (a copy into each wait of ``waits``, then parked), task 2 once, task 3 works."""
    log = Log()
    log.add(ev.READY, 1, None, detail="prefetch=1 via=127.0.0.1:5672" + (" confirms=on" if confirms else ""))
    flag = " mandatory=on" if mandatory else ""

    def failed_then(task: int, into: str, kind: str) -> None:
        tag = log._deliver(task)
        log.add(ev.ERROR, 1, task, detail="injected TaskFailed")
        log.add(ev.RETRY, 1, task, detail=f"p.backoff_exchange -> wait_x{flag}")
        log.add(ev.ACK, 1, task, tag=tag)
        log.add(kind, None, task, detail=f"retries=1 into=p.{into}")

    for into in waits:
        failed_then(1, into, ev.RETRY_WAIT)
    failed_then(1, "parking_lot", ev.PARKED)
    failed_then(2, "tasks_wait_1", ev.RETRY_WAIT)
    return log.ok(2).ok(3)


def test_backoff_passes_with_growing_waits_confirms_and_mandatory():
    check = nb05.check_backoff(backoff().events)
    assert check, check
    assert "waited in ['tasks_wait_1', 'tasks_wait_2', 'tasks_wait_4']" in check.got


def test_backoff_names_a_constant_delay_and_a_shrinking_one():
    same = nb05.check_backoff(backoff(waits=("tasks_wait_1",) * 3).events)
    assert not same and "every retry waited in the same queue" in same.hint and "wait_2" in same.hint
    shrinking = nb05.check_backoff(backoff(waits=("tasks_wait_4", "tasks_wait_2", "tasks_wait_1")).events)
    assert not shrinking and "the waits should grow" in shrinking.hint


def test_backoff_wants_confirms_and_mandatory_copies():
    unconfirmed = nb05.check_backoff(backoff(confirms=False).events)
    assert not unconfirmed and "confirms=True" in unconfirmed.hint
    optional = nb05.check_backoff(backoff(mandatory=False).events)
    assert not optional and "mandatory=True" in optional.hint


def test_backoff_still_names_the_retry_mistakes():
    early = nb05.check_backoff(backoff(waits=("tasks_wait_1",)).events)
    assert not early and "parked after 2 attempts" in early.hint
