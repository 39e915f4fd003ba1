"""task_worker.py run as a learner runs it: real OS processes on a real broker, stopped by PID.

Every task is counted from what the workers printed and what the broker holds afterwards.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pika
import pytest
from helpers import wait_until

from workqueue_lab import settings
from workqueue_lab.engine.topology import TASK_WORKER

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\S+\s+\[(?P<mark>.)\] Task (?P<id>\S+) (?P<what>received|done|failed)"
                  r"(?: \(redelivered=(?P<redelivered>True|False)\))?")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Workers:
    """task_worker.py processes, each with its own log file; whatever is still alive is killed by PID."""

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.procs, self.logs = tmp_path, [], []

    def start(self, *args: str) -> int:
        i = len(self.procs)
        log = self.tmp_path / f"worker{i}.log"
        self.logs.append(log)
        self.procs.append(subprocess.Popen([sys.executable, "task_worker.py", *args], cwd=ROOT, env=_env(),
                                           stdout=log.open("w"), stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL))
        assert wait_until(lambda: "Waiting for tasks" in log.read_text(), timeout=20), log.read_text()
        return i

    def text(self, i: int) -> str:
        return self.logs[i].read_text()

    def lines(self, i: int) -> list[dict]:
        return [m.groupdict() for m in map(LINE.match, self.text(i).splitlines()) if m]

    def open_task(self, i: int) -> str | None:
        """The task worker i received and has not finished (None if idle)."""
        state: dict[str, str] = {}
        for line in self.lines(i):
            state[line["id"]] = line["what"]
        open_ = [task for task, what in state.items() if what == "received"]
        return open_[-1] if open_ else None

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(10)


@pytest.fixture
def workers(clean, tmp_path):
    w = Workers(tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


def _publish(broker, tasks: list[dict | bytes]) -> None:
    connection = broker.connect()
    try:
        channel = connection.channel()
        TASK_WORKER.declare(channel)  # the lab's declaration of task_worker.py's queues (406 if they differ)
        for task in tasks:
            body = task if isinstance(task, bytes) else json.dumps(task)
            channel.basic_publish("", settings.name("task_queue_jobs"), body,
                                  pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
    finally:
        connection.close()


def _dots(seconds: float) -> str:
    return "." * math.ceil(seconds / settings.time_scale())


def test_sigterm_finishes_sigkill_redelivers_failures_dead_letter_and_every_task_counts(workers, clean):
    jobs, dead = settings.name("task_queue_jobs"), settings.name("task_queue_dead")
    survivor = workers.start()
    gentle = workers.start()
    killed = workers.start()
    tasks = [{"id": i, "task": f"Task {i}{_dots(0.6)}"} for i in range(1, 10)]
    _publish(clean, [*tasks, {"id": 10, "task": "Task 10.", "fail": "broken input"}])

    assert wait_until(lambda: workers.open_task(gentle), timeout=15)
    finishing = workers.open_task(gentle)
    workers.procs[gentle].send_signal(signal.SIGTERM)
    assert workers.procs[gentle].wait(15) == 0

    assert wait_until(lambda: workers.open_task(killed), timeout=15)
    workers.procs[killed].kill()
    assert workers.procs[killed].wait(10) == -signal.SIGKILL
    lost_with_it = workers.open_task(killed)  # read after death: the task it really had open

    assert wait_until(lambda: clean.queue_stats(jobs).ready == 0 and clean.queue_stats(jobs).unacked == 0
                      and clean.queue_stats(dead).ready == 1, timeout=30)
    workers.procs[survivor].send_signal(signal.SIGTERM)
    assert workers.procs[survivor].wait(15) == 0

    # SIGTERM: the task it had was finished and acked by it; nothing received after the signal; exit 0.
    gentle_text = workers.text(gentle)
    after_signal = gentle_text.split("SIGTERM", 1)[1]
    assert f"[x] Task {finishing} done, acked" in gentle_text
    assert "received" not in after_signal and "Stopped cleanly; exit 0" in after_signal
    # SIGKILL: its open task was redelivered to the survivor, flagged redelivered, and acked there.
    assert lost_with_it is not None
    survivor_lines = workers.lines(survivor)
    assert {"mark": ">", "id": lost_with_it, "what": "received", "redelivered": "True"} in survivor_lines
    assert f"[x] Task {lost_with_it} done, acked" in workers.text(survivor)
    # Every good task acked exactly once across the three logs; the failing one only on the DLQ.
    acked = [line["id"] for i in range(3) for line in workers.lines(i) if line["what"] == "done"]
    assert sorted(acked, key=int) == [str(i) for i in range(1, 10)]
    assert [line["id"] for i in range(3) for line in workers.lines(i) if line["what"] == "failed"] == ["10"]
    connection = clean.connect()
    try:
        method, properties, body = connection.channel().basic_get(dead, auto_ack=True)
    finally:
        connection.close()
    assert json.loads(body)["id"] == 10
    death = properties.headers["x-death"][0]
    assert death["reason"] == "rejected" and death["queue"] == jobs
    # The lesson's worker.py still declares task_queue as the lesson does (no 406).
    log = workers.tmp_path / "lesson_worker.log"
    proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=_env(), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    workers.procs.append(proc)  # killed by PID at the end if still alive
    assert wait_until(lambda: "Waiting for messages" in log.read_text(), timeout=20), log.read_text()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0 and "PRECONDITION" not in log.read_text()


def test_long_task_blocks_heartbeats_unless_threaded(workers, clean):
    jobs = settings.name("task_queue_jobs")
    _publish(clean, [{"id": 1, "task": f"Task 1{_dots(4.0)}"}])  # 4 s of work against a 1 s heartbeat

    blocked = workers.start("--heartbeat", "1")
    assert workers.procs[blocked].wait(20) == 1  # the broker dropped it; it says so and exits 1
    text = workers.text(blocked)
    assert "Connection lost" in text and "done, acked" not in text
    assert wait_until(lambda: clean.queue_stats(jobs).ready == 1, timeout=10)  # requeued, not lost

    threaded = workers.start("--heartbeat", "1", "--threaded")
    assert wait_until(lambda: "done, acked" in workers.text(threaded), timeout=20), workers.text(threaded)
    assert {"mark": ">", "id": "1", "what": "received", "redelivered": "True"} in workers.lines(threaded)
    workers.procs[threaded].send_signal(signal.SIGTERM)
    assert workers.procs[threaded].wait(15) == 0
    assert wait_until(lambda: (clean.queue_stats(jobs).ready, clean.queue_stats(jobs).unacked) == (0, 0), timeout=10)


def test_sigterm_while_threaded_task_runs_waits_for_its_ack(workers, clean):
    _publish(clean, [{"id": 1, "task": f"Task 1{_dots(1.0)}"}, {"id": 2, "task": "Task 2."}])
    w = workers.start("--threaded")
    assert wait_until(lambda: workers.open_task(w) == "1", timeout=15)
    workers.procs[w].send_signal(signal.SIGTERM)
    assert workers.procs[w].wait(15) == 0
    text = workers.text(w)
    assert "[x] Task 1 done, acked" in text and "Task 2" not in text
    # task 2 waits for the next worker
    assert wait_until(lambda: clean.queue_stats(settings.name("task_queue_jobs")).ready == 1, timeout=10)


def test_new_task_json_and_the_labs_topology_agree(clean):
    sent = subprocess.run([sys.executable, "new_task.py", "--json", "Task", "7..."], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout.split("Sent ", 1)[1].strip().strip("'")) == {"id": 7, "task": "Task 7..."}
    connection = clean.connect()
    try:  # task_worker.py declared the queues; the lab's own declaration must match (else 406)
        TASK_WORKER.declare(connection.channel())
    finally:
        connection.close()
    assert wait_until(lambda: clean.queue_stats(settings.name("task_queue_jobs")).ready == 1, timeout=10)
    assert {q.name for q in TASK_WORKER.queues} == {"task_queue_jobs", "task_queue_dead"}


def test_task_hook_runs_the_learners_function(workers, clean, tmp_path):
    (tmp_path / "my_task.py").write_text(
        "def handle(task):\n"
        "    if task['id'] == 2:\n"
        "        raise ValueError('row 3: not a number')\n"
        "    return f\"imported {task['task']}\"\n")
    _publish(clean, [{"id": 1, "task": "a.csv"}, {"id": 2, "task": "b.csv"}])
    w = workers.start("--task", f"{tmp_path / 'my_task.py'}:handle")
    assert wait_until(lambda: "Task 2 failed" in workers.text(w), timeout=15)
    workers.procs[w].send_signal(signal.SIGTERM)
    assert workers.procs[w].wait(15) == 0
    text = workers.text(w)
    assert "[x] Task 1 done, acked -> imported a.csv" in text
    assert "ValueError: row 3: not a number" in text
    assert wait_until(lambda: clean.queue_stats(settings.name("task_queue_dead")).ready == 1, timeout=10)
