"""A worker program whose shutdown is the learner's: ``python -m workqueue_lab.lessons.stop_trial my_stop.py``.

Notebook 06's exercise.  The learner's module defines ``on_signal(signum, frame)`` (installed for
SIGINT and SIGTERM) and ``consume(connection, channel, consumer_tag)`` (runs the I/O loop until a
signal asks to stop, then stops consuming and returns).  The trial's callback has no stop logic of
its own: a task that reaches it is done, so whether the worker takes new tasks after the signal is
decided by the learner's code alone.  Everything else is task_worker.py's:
the same queue, the same JSON tasks and the same printed lines, so the notebook parses them alike.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time

import pika

from .. import connect, settings
from ..engine.topology import TASK_WORKER


def _say(text: str) -> None:
    t = time.time()
    print(time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}  {text}", flush=True)


def _load(path: str):
    spec = importlib.util.spec_from_file_location("learner_stop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    learner = _load(argv[0])
    params = pika.URLParameters(connect().url)
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    TASK_WORKER.declare(channel)  # task_worker.py's queues, as the lab knows them (test_task_worker: the same)
    jobs = TASK_WORKER.name(TASK_WORKER.work_queue.name)
    channel.basic_qos(prefetch_count=1)

    def callback(ch, method, properties, body):  # no stop logic here: whether a task is taken is the learner's call
        task = json.loads(body)
        _say(f"[>] Task {task['id']} received (redelivered={method.redelivered})")
        time.sleep(task["task"].count(".") * settings.time_scale())
        ch.basic_ack(delivery_tag=method.delivery_tag)
        _say(f"[x] Task {task['id']} done, acked")

    tag = channel.basic_consume(queue=jobs, on_message_callback=callback)
    signal.signal(signal.SIGINT, learner.on_signal)
    signal.signal(signal.SIGTERM, learner.on_signal)
    _say(f"[*] Waiting for tasks on {jobs!r} (pid {os.getpid()}, your shutdown)")
    learner.consume(connection, channel, tag)
    if connection.is_open and tag in channel.consumer_tags:  # the broker may still send: nothing cancelled it
        _say("[!] consume() returned with the consumer still registered (no basic_cancel)")
    if connection.is_open:
        connection.close()
    _say("[*] Stopped cleanly; exit 0")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
