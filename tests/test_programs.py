"""The lesson's two programs and the `workqueue-lab` command, run as a learner runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _py(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, **kw)


@pytest.fixture
def spawn():
    """Popen for the test; whatever still runs at the end (a failed assert included) gets Ctrl-C, then SIGKILL
    by its pid: no worker is left consuming from the broker."""
    procs: list[subprocess.Popen] = []

    def start(args: list[str], **kw) -> subprocess.Popen:
        procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL,
                                      **kw))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
    assert all(p.poll() is not None for p in procs)


def test_two_terminal_workers_split_the_lessons_tasks(clean, tmp_path, spawn):
    logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
    procs = []
    for log in logs:
        with log.open("w") as out:
            procs.append(spawn(["worker.py"], stdout=out, stderr=subprocess.STDOUT))
        assert wait_until(lambda log=log: "Waiting for messages" in log.read_text(), timeout=15)
    for task in ("Task 1.", "Task 2..", "Task 3...", "Task 4...."):
        sent = _py("new_task.py", task)
        assert sent.returncode == 0 and f"Sent '{task}'" in sent.stdout
    assert wait_until(lambda: sum(log.read_text().count("Done") for log in logs) == 4, timeout=20)
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(10)
    got = [[t for t in ("Task 1.'", "Task 2..'", "Task 3...'", "Task 4....'") if t in log.read_text()]
           for log in logs]
    assert got == [["Task 1.'", "Task 3...'"], ["Task 2..'", "Task 4....'"]]
    assert all("Stopping" in log.read_text() for log in logs)
    assert all(p.returncode == 0 for p in procs)


def test_cli_new_task_and_status(clean):
    sent = _py("-m", "workqueue_lab", "new-task", "Task", "9.")
    assert sent.returncode == 0, sent.stderr
    status = _py("-m", "workqueue_lab", "broker", "status")
    assert status.returncode == 0
    assert "ready=1" in status.stdout and ":***@" in status.stdout
    assert "guest:guest" not in status.stdout


@pytest.mark.parametrize("args, env, words", [
    (["worker", "--prefetch", "-3"], {}, "negative"),
    # WORKQUEUE_LAB_BROKER="": the URL decides, even where the run forces another way (the 4.0 run: private)
    (["broker", "status"], {"WORKQUEUE_LAB_URL": "amqp://guest:hunter2@127.0.0.1:1/%2F", "WORKQUEUE_LAB_BROKER": ""},
     "No RabbitMQ answers"),
    (["broker", "status"], {"WORKQUEUE_LAB_URL": "amqp://eve:hunter2@127.0.0.1:5672/%2F", "WORKQUEUE_LAB_BROKER": ""},
     "refused user 'eve'"),
    (["broker", "status", "--force", "url"], {"WORKQUEUE_LAB_URL": ""}, "is empty"),
])
def test_cli_errors_are_one_line_without_secrets(args, env, words):
    proc = subprocess.run([sys.executable, "-m", "workqueue_lab", *args], cwd=ROOT,
                          env={**_env(), **env}, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_cli_worker_consumes_until_interrupted(clean, spawn):
    assert _py("-m", "workqueue_lab", "new-task", "Task 1.").returncode == 0
    proc = spawn(["-m", "workqueue_lab", "worker"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    assert wait_until(lambda: clean.queue_stats(os.environ["WORKQUEUE_LAB_PREFIX"] + "task_queue").ready == 0,
                      timeout=15)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert "Received 'Task 1.'" in out and "Done" in out and proc.returncode == 0


def test_programs_explain_a_quorum_task_queue_in_one_line(clean):
    """The official tutorial's new_task.py now declares task_queue as a quorum queue; a learner who ran it
    first gets one sentence from worker.py and new_task.py (cause and fix), not pika's traceback, and the
    quorum queue and its message stay as they were."""
    import pika

    queue = os.environ["WORKQUEUE_LAB_PREFIX"] + "task_queue"
    quorum = {"x-queue-type": "quorum"}

    def still_quorum_with_messages() -> int:
        with clean.channel() as ch:  # the same arguments again: accepted only if it is still a quorum queue
            return ch.queue_declare(queue=queue, durable=True, arguments=quorum).method.message_count

    try:
        with clean.channel() as ch:  # what the official tutorial's new_task.py does
            ch.queue_declare(queue=queue, durable=True, arguments=quorum)
            ch.confirm_delivery()
            ch.basic_publish("", queue, b"Hello World!", pika.BasicProperties(delivery_mode=2))
        assert still_quorum_with_messages() == 1
        for program in (["worker.py"], ["new_task.py", "Task 1."]):
            started = time.monotonic()
            proc = _py(*program)  # worker.py would otherwise wait for messages forever; _py times out at 60 s
            assert time.monotonic() - started < 30, program
            assert proc.returncode == 1, (program, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stdout + proc.stderr
            assert proc.stdout == ""  # no "Waiting for messages", no "Sent"
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1, proc.stderr
            assert f"Queue '{queue}' already exists" in lines[0] and "quorum queue" in lines[0]
            assert "official RabbitMQ tutorial" in lines[0]
            assert "workqueue-lab broker reset" in lines[0] and f"rabbitmqctl delete_queue {queue}" in lines[0]
            assert "WORKQUEUE_LAB_PREFIX" in lines[0]
            assert still_quorum_with_messages() == 1
        # the fix the sentence names works: reset deletes the quorum queue, then the lesson's programs run
        reset = _py("-m", "workqueue_lab", "broker", "reset")
        assert reset.returncode == 0 and queue in reset.stdout, reset.stdout + reset.stderr
        sent = _py("new_task.py", "Task 1.")
        assert sent.returncode == 0 and "Sent 'Task 1.'" in sent.stdout, sent.stderr
    finally:
        with clean.channel() as ch:
            ch.queue_delete(queue=queue)
