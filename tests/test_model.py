"""The model predicts what the broker does; the real broker is the judge."""

import pytest

import workqueue_lab as lab
from workqueue_lab.engine.scenario import Scenario, make_workers
from workqueue_lab.record import events as ev
from workqueue_lab.record.model import predict

SLOW = 1 / 2.75


def test_model_reproduces_the_lessons_pictures():
    tasks = lab.numbered_tasks([1] * 8)
    unfair = predict(Scenario(tasks=tasks, workers=make_workers([SLOW, 1.0]), prefetch=0))
    fair = predict(Scenario(tasks=tasks, workers=make_workers([SLOW, 1.0]), prefetch=1))
    assert ev.tasks_by_worker(unfair) == {1: [1, 3, 5, 7], 2: [2, 4, 6, 8]}
    assert ev.tasks_by_worker(fair) == {1: [1, 5], 2: [2, 3, 4, 6, 7, 8]}
    assert ev.makespan(fair) == pytest.approx(6.0) and ev.makespan(unfair) == pytest.approx(4 * 2.75)


def test_model_respects_per_worker_prefetch_and_accounts_for_every_task():
    scenario = Scenario(tasks=lab.numbered_tasks([1] * 10), workers=make_workers(3), prefetch=2)
    events = predict(scenario)
    assert sorted(t for ts in ev.tasks_by_worker(events).values() for t in ts) == list(range(1, 11))
    assert all(a.outcome == "ack" for a in ev.attempts(events))


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_model_agrees_with_the_real_broker(clean, monkeypatch, prefetch):
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.2")
    scenario = Scenario(tasks=lab.numbered_tasks([1, 3, 1, 1, 2, 1]), workers=make_workers([1.0, 0.45]),
                        prefetch=prefetch)
    real = lab.run(lab.lesson_callback, scenario=scenario, progress=False)
    assert real.tasks_by_worker() == ev.tasks_by_worker(predict(scenario))
