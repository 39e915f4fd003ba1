"""Worker processes on a real broker: one event log, the SIGTERM/SIGKILL contract, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

import workqueue_lab as lab
from workqueue_lab.engine.run import Run
from workqueue_lab.engine.scenario import Scenario, WorkerSpec, numbered_tasks
from workqueue_lab.errors import LabError
from workqueue_lab.record import events as ev

CALLBACK = "workqueue_lab.lessons.callbacks:lesson_callback"


def _run(tasks: tuple[str, ...], workers: int = 2, prefetch: int = 1) -> Run:
    scenario = Scenario(tasks=tasks, workers=tuple(WorkerSpec() for _ in range(workers)), prefetch=prefetch,
                        timeout=60)
    return Run(CALLBACK, scenario, processes=True)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return not os.path.exists(f"/proc/{pid}")
    return False


def _not_running(pid: int) -> bool:
    """Gone, or a zombie (exited; only its orphaned exit status waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _assert_nothing_left(pids: list[int]) -> None:
    assert pids and all(isinstance(p, int) for p in pids)
    assert [p for p in pids if not _gone(p)] == []
    assert lab.live_threads() == 0  # the reader threads are joined too


def _running(r: Run, worker: int, timeout: float = 20.0) -> int:
    """Wait until ``worker`` is inside a task (delivered, not acked yet) and return the task."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        open_ = [a for a in ev.attempts(r.log.events) if a.worker == worker and a.outcome == "open"]
        if open_:
            return open_[-1].task
        time.sleep(0.01)
    raise AssertionError(f"worker {worker} never started a task")


def _acks(events: list[ev.Event]) -> Counter:
    return Counter(e.task for e in events if e.kind == ev.ACK)


def test_two_processes_record_into_one_log(clean):
    with _run(numbered_tasks([2] * 6)) as r:
        pids = [w.pid for w in r.workers]
        assert len(set(pids)) == 2 and os.getpid() not in pids  # two real processes, not this one
        r.publish()
        result = r.wait(progress=False)
    _assert_nothing_left(pids)
    assert _acks(result.events) == {task: 1 for task in range(1, 7)}
    by_worker = result.tasks_by_worker()
    assert sorted(t for tasks in by_worker.values() for t in tasks) == [1, 2, 3, 4, 5, 6]
    first = {e.worker: e.task for e in reversed(result.events) if e.kind == ev.DELIVER}
    assert first == {1: 1, 2: 2}  # released in order, so the round-robin starts as with threads
    for worker in (1, 2):
        kinds = [e.kind for e in result.events if e.worker == worker]
        assert kinds[0] == ev.READY and kinds.count(ev.DELIVER) == len(by_worker[worker]) and kinds[-1] == ev.STOP
        assert "exit 0" in [e for e in result.events if e.worker == worker][-1].detail
        assert "[x] Received 'Task" in result.outputs[worker]  # its prints, captured, not in a cell
    assert [w.returncode for w in r.workers] == [0, 0]
    assert not result.lost and not result.duplicates
    assert result.timeline() is not None


def test_sigterm_finishes_the_current_task_then_exits_0(clean):
    with _run(numbered_tasks([10] * 6)) as r:
        pids = [w.pid for w in r.workers]
        r.publish()
        task = _running(r, 1)
        signalled_at = time.monotonic() - r.log.t0
        r.signal(1, signal.SIGTERM)
        result = r.wait(progress=False)
    _assert_nothing_left(pids)
    mine = [e for e in result.events if e.worker == 1]
    acked_by_1 = [e.task for e in mine if e.kind == ev.ACK]
    assert task in acked_by_1 and acked_by_1[-1] == task  # finished and acked by the worker that had it
    assert not [e for e in mine if e.kind == ev.DELIVER and e.t > signalled_at]  # no new task afterwards
    assert r.workers[0].returncode == 0
    stop = mine[-1]
    assert stop.kind == ev.STOP and "SIGTERM" in stop.detail and "exit 0" in stop.detail
    assert not [e for e in result.events if e.kind == ev.CRASH]
    assert _acks(result.events) == {t: 1 for t in range(1, 7)}  # nothing lost, nothing twice
    assert not result.lost and not result.redelivered


def test_sigkill_mid_task_is_a_crash_and_the_task_is_redelivered(clean):
    with _run(numbered_tasks([10] * 4)) as r:
        pids = [w.pid for w in r.workers]
        r.publish()
        task = _running(r, 1)
        r.kill(1)
        result = r.wait(progress=False)
    _assert_nothing_left(pids)
    assert r.workers[0].returncode == -signal.SIGKILL
    crash = [e for e in result.events if e.kind == ev.CRASH]
    assert len(crash) == 1 and crash[0].worker == 1 and crash[0].task == task and "SIGKILL" in crash[0].detail
    assert [a.outcome for a in result.attempts() if a.worker == 1 and a.task == task] == [ev.CRASH]
    again = [e for e in result.events if e.kind == ev.DELIVER and e.task == task and e.worker == 2]
    assert again and again[0].redelivered and task in result.redelivered
    assert [e.worker for e in result.events if e.kind == ev.ACK and e.task == task] == [2]
    assert result.completed == {1, 2, 3, 4} and not result.lost


def test_stop_all_ends_a_run_still_going(clean):
    r = lab.start(CALLBACK, workers=2, processes=True)
    pids = [w.pid for w in r.workers]
    r.publish(numbered_tasks([10] * 8))
    _running(r, 1)
    assert lab.stop_all() == 1
    _assert_nothing_left(pids)
    assert {e.worker for e in r.log.events if e.kind == ev.STOP and "exit 0" in e.detail} == {1, 2}


def test_stop_escalates_to_sigkill_after_the_timeout(clean):
    r = _run(numbered_tasks([200] * 2)).start()  # 10 s of work each at the tests' time scale
    pids = [w.pid for w in r.workers]
    r.publish()
    _running(r, 1)
    _running(r, 2)
    began = time.monotonic()
    r.stop(timeout=0.5)
    assert time.monotonic() - began < 5
    _assert_nothing_left(pids)
    assert [w.returncode for w in r.workers] == [-signal.SIGKILL, -signal.SIGKILL]
    crashes = [e for e in r.log.events if e.kind == ev.CRASH]
    assert {e.worker for e in crashes} == {1, 2} and all("SIGTERM" in e.detail and "SIGKILL" in e.detail
                                                         for e in crashes)


def test_a_callback_a_process_cannot_import_is_one_sentence():
    with pytest.raises(LabError, match="put it in a .py file"):
        Run(lambda ch, method, properties, body: None, Scenario(), broker=object(), processes=True)
    with pytest.raises(LabError, match="Cannot import the callback"):
        Run("workqueue_lab.lessons.callbacks:no_such_callback", Scenario(), broker=object(), processes=True)
    with pytest.raises(LabError, match="not a worker process"):
        Run(CALLBACK, Scenario(), broker=object()).signal(1)


def test_workers_leave_when_the_notebook_process_dies(clean):
    kernel = textwrap.dedent(f"""
        import time, workqueue_lab as lab
        from workqueue_lab.engine.scenario import numbered_tasks
        r = lab.start({CALLBACK!r}, workers=2, processes=True)
        r.publish(numbered_tasks([200] * 4))
        while sum(e.kind == "deliver" for e in r.log.events) < 2:
            time.sleep(0.01)
        print(*(w.pid for w in r.workers), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", kernel], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and not any(_not_running(p) for p in pids)
        proc.kill()  # as a kernel dies: no atexit, no stop()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not all(_not_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in pids if not _not_running(p)] == []
        assert time.monotonic() < deadline - 5  # within a few watch periods, not at the end of a 10 s task
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def test_a_process_that_cannot_connect_is_one_sentence_and_leaves_nothing(clean, monkeypatch):
    from workqueue_lab.engine import processes

    real = processes.process_config
    monkeypatch.setattr(processes, "process_config",  # the run's queue is declared; the workers' URL is wrong
                        lambda urls, *args: real(["amqp://guest:guest@127.0.0.1:1/%2F"], *args))
    r = _run(numbered_tasks([1] * 2))
    with pytest.raises(LabError, match=r"^Worker 1 could not start consuming .*cannot connect to RabbitMQ"):
        r.start()
    _assert_nothing_left([w.pid for w in r.workers])
    assert r.workers[0].returncode == 2 and not [e for e in r.log.events if e.kind == ev.CRASH]


def test_the_same_module_function_path_runs_in_threads_without_processes(clean):
    result = lab.run(CALLBACK, tasks=numbered_tasks([1, 1]), workers=1, progress=False)
    assert result.tasks_by_worker() == {1: [1, 2]} and "[x] Received" in result.outputs[1]
