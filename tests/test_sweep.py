"""Prefetch sweeps against the real broker return sane numbers (small, so quick)."""

from __future__ import annotations

import math

import pytest

import workqueue_lab as lab
from workqueue_lab.experiments import sweep


def test_throughput_measures_every_value_and_every_message(clean, fast):
    n = 200
    result = sweep.throughput(clean, prefetch_values=[1, 20, 0], n=n, workers=2)
    assert [p.prefetch for p in result.points] == [1, 20, 0]
    for p in result.points:
        assert math.isfinite(p.value) and 100 < p.value < 1_000_000, p
        assert sum(p.per_worker.values()) == n, p
        assert 0 < p.seconds < 60  # finished, with room for a loaded machine (speed: benchmarks/overhead.py)
    assert result.quantity == "throughput" and result.best() in (1, 20, 0)
    assert result[20] == result.values[20]
    # the robust signature of prefetch 1: after every ack the worker waits a round trip for the next message
    assert result.wait_ms(1) > 3 * result.wait_ms(20)
    assert lab.live_threads() == 0


def test_throughput_with_a_limit_spreads_the_backlog_over_both_workers(clean, fast):
    result = sweep.throughput(clean, prefetch_values=[1], n=100, workers=2)
    assert set(result.points[0].per_worker) == {1, 2}


def test_makespan_favours_prefetch_1_for_mixed_tasks(clean, monkeypatch):
    # a larger time scale than the other tests: a dot is 200 ms, so round trips and a loaded machine's stalls
    # are small next to the work seconds measured
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.2")
    result = sweep.makespan_by_prefetch(clean, prefetch_values=[1, 0])
    # every fourth task is long: unlimited prefetch hands both long ones to worker 1 (4+1+4+1 = 10 s);
    # prefetch 1 gives each task to the first free worker (about 7 s).  Load only ever adds time, so the
    # bounds below 10 are firm and the ones above are loose; which worker got which task is asserted
    # exactly in test_mixed_tasks_dispatch_as_the_makespans_say.
    assert 10 <= result[0] < 14
    assert 7 <= result[1] < result[0]
    assert all(sum(p.per_worker.values()) == 8 for p in result.points)
    assert result.best() == 1
    assert lab.live_threads() == 0


def test_mixed_tasks_dispatch_as_the_makespans_say(clean, monkeypatch):
    """The dispatch behind the makespans: RabbitMQ makes it deterministic, so assert who got what."""
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.2")  # 1 work second between decisions = 200 ms
    unlimited = lab.run(lab.lesson_callback, tasks=sweep.VARIABLE_TASKS, workers=2, prefetch=0, progress=False)
    assert unlimited.tasks_by_worker() == {1: [1, 3, 5, 7], 2: [2, 4, 6, 8]}  # both 4-dot tasks to worker 1
    fair = lab.run(lab.lesson_callback, tasks=sweep.VARIABLE_TASKS, workers=2, prefetch=1, progress=False)
    # worker 2 does 2, 3, 4 (t=3) and takes 5 while worker 1 is still on 1; worker 1 then does 6, 7, 8
    assert fair.tasks_by_worker() == {1: [1, 6, 7, 8], 2: [2, 3, 4, 5]}


def test_typical_rate_ignores_a_stall_and_median_wait_pairs_ack_with_next_delivery():
    from workqueue_lab.record.events import Event

    times = [0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.5]  # one 491 ms stall
    assert sweep.typical_rate(times) == pytest.approx(1000)
    assert sweep.typical_rate([1.0]) == 0.0
    events = [Event(0.0, "deliver", 1, 1, 1), Event(0.010, "ack", 1, 1, 1), Event(0.012, "deliver", 1, 2, 2),
              Event(0.011, "ack", 2, 3, 1), Event(0.020, "deliver", 2, 4, 2), Event(0.021, "ack", 1, 2, 2)]
    assert sweep.median_wait(events) == pytest.approx((0.002 + 0.009) / 2)


@pytest.mark.parametrize("values", [[], [-1], [1.5], [70000]])
def test_bad_prefetch_values_are_one_line_errors(values):
    with pytest.raises(lab.LabError):
        sweep.throughput(None, prefetch_values=values)
    with pytest.raises(lab.LabError):
        sweep.makespan_by_prefetch(None, prefetch_values=values)


def test_sweeps_show_as_tables_and_plots_without_a_broker():
    tp = sweep.Sweep("throughput", "messages/s",
                     [sweep.Point(1, 2000.0, {1: 50, 2: 50}, 0.05), sweep.Point(0, 9000.0, {1: 100}, 0.01)])
    ms = sweep.Sweep("makespan", "work seconds", [sweep.Point(1, 7.2, {1: 4, 2: 4}, 0.36)])
    assert tp.best() == 0 and ms.best() == 1
    html = tp._repr_html_()
    assert "0 (unlimited)" in html and "worker 2: 50" in html
    assert "0 (unlimited): 9,000" in repr(tp)
    with pytest.raises(KeyError):
        ms[50]
    fig = sweep.plot_sweeps(tp, ms, title="t")
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "0 (unlimited)"]
    assert fig._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(lab.LabError):
        sweep.plot_sweeps()
