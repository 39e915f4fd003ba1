#!/usr/bin/env python
"""The lesson's production worker as a program: JSON tasks, acks, a dead-letter queue, a clean stop.

    python task_worker.py                        # Ctrl-C (SIGINT) or SIGTERM: finish the task, exit 0
    python task_worker.py --threaded             # long tasks: work in a thread, heartbeats keep flowing
    python task_worker.py --task mymod:handle    # your function(task: dict) does the work
    python new_task.py --json "Task 7..."        # sends {"id": 7, "task": "Task 7..."}

A task is JSON: {"id": 7, "task": "Task 7..."}; each dot is one second of work (WORKQUEUE_LAB_TIME_SCALE
shortens the second), and {"fail": "why"} in a task makes the default work raise.  One line per
finished task, with its id and a wall-clock time, so several workers' output can be merged.

Where failed tasks go: a queue of its own.  The worker consumes ``task_queue_jobs``, declared with
x-dead-letter-exchange "" and x-dead-letter-routing-key ``task_queue_dead``, so nack(requeue=False)
moves a task there (with an x-death header saying why: reason "rejected").  Not ``task_queue``: the
lesson's worker.py declares that one durable with no arguments, and RabbitMQ refuses (406
PRECONDITION_FAILED) a second declaration whose arguments differ.  A policy would leave task_queue
as it is, and RabbitMQ recommends policies for dead-lettering, but setting one needs rabbitmqctl or
the management API with the right permissions, which a learner's broker may not give; and a
policy is not visible in the program.  The queue's own arguments work on every broker and say in
the code where failures go.

Stopping: SIGINT/SIGTERM only set a flag.  The lesson's ``stop()`` closes the connection inside the
signal handler, i.e. possibly in the middle of ``process_data_events`` or of ``basic_ack``: pika is
not re-entrant, so that can corrupt its state or raise mid-frame.  Here the main loop sees the flag
between two turns of the I/O loop, cancels the consumer (basic_cancel: no new tasks), lets the
current task finish and be acked, closes the connection and exits 0.

Heartbeats: a BlockingConnection only answers heartbeats while ``process_data_events`` runs.  Work
done inside the callback blocks it; a task longer than about two heartbeat intervals makes the
broker close the connection and requeue the task (redelivered=True to the next worker), and this
worker exits 1.  ``--threaded`` does the work in a thread and sends the ack back to the connection's
thread with ``connection.add_callback_threadsafe`` (pika's recommended way), so the I/O loop keeps
running and the heartbeats keep flowing.

A lost connection (the node went away, a missed heartbeat): the worker exits 1 and leaves the
reconnect to whatever started it (systemd's ``Restart=on-failure``, a container's restart policy),
which starts a fresh process with a fresh connection.  Its unacked tasks are already back in the
queue.  Reconnecting inside the process is the other way: a loop around connect-and-consume with a
back-off (notebook 08 runs one in eighteen lines of plain pika).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import pika
import pika.exceptions

from workqueue_lab import connect, settings

JOBS_QUEUE = "task_queue_jobs"
DEAD_QUEUE = "task_queue_dead"


def stamp(t: float | None = None) -> str:
    """Wall-clock time to the millisecond: lines of several workers merge into one timeline."""
    t = time.time() if t is None else t
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def say(text: str, t: float | None = None) -> None:
    print(f"{stamp(t)}  {text}", flush=True)


def declare_queues(channel) -> str:
    """Declare the jobs queue and its dead-letter queue (new_task.py --json uses this too)."""
    jobs, dead = settings.name(JOBS_QUEUE), settings.name(DEAD_QUEUE)
    channel.queue_declare(queue=dead, durable=True)
    channel.queue_declare(queue=jobs, durable=True,
                          arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    return jobs


def sleep_work(task: dict) -> None:
    """The lesson's work: one (scaled) second per dot; a "fail" field makes it raise."""
    if not isinstance(task, dict) or not isinstance(task.get("task"), str):
        raise ValueError('a task is {"id": 7, "task": "Task 7..."}')
    time.sleep(task["task"].count(".") * settings.time_scale())
    if task.get("fail"):
        raise RuntimeError(str(task["fail"]))


def load_function(spec: str) -> Callable[[dict], object]:
    """'module:function' or 'path/to/file.py:function' -> the function."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"--task {spec!r}: write it as module:function, e.g. capstone_task:import_csv")
    if module_name.endswith(".py"):
        spec_ = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    return getattr(module, attr)


class TaskWorker:
    """Consume JSON tasks; ack what worked, dead-letter what failed, stop only between tasks."""

    def __init__(self, work: Callable[[dict], object] = sleep_work, prefetch: int = 1,
                 heartbeat: int = 60, threaded: bool = False):
        self.work, self.prefetch, self.heartbeat, self.threaded = work, prefetch, heartbeat, threaded
        self.connection = None
        self.channel = None
        self.consumer_tag = None
        self.stop_signal: tuple[str, float] | None = None  # set by the signal handler, nothing else
        self.in_flight = 0
        self.threads: list[threading.Thread] = []

    def request_stop(self, signum, frame) -> None:
        # Only a flag: the handler may run inside pika (process_data_events, basic_ack), and pika is
        # not re-entrant, so closing the connection here (the lesson's stop()) is not safe.
        if self.stop_signal is None:
            self.stop_signal = (signal.Signals(signum).name, time.time())

    def connect(self) -> None:
        params = pika.URLParameters(connect().url)
        params.heartbeat = self.heartbeat  # pika: the client's value wins the negotiation
        params.blocked_connection_timeout = 300  # give up if the broker blocks publishers this long
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        queue = declare_queues(self.channel)
        self.channel.basic_qos(prefetch_count=self.prefetch)
        self.consumer_tag = self.channel.basic_consume(queue=queue, on_message_callback=self.callback)
        say(f"[*] Waiting for tasks on {queue!r} (pid {os.getpid()}, prefetch {self.prefetch}, "
            f"heartbeat {self.heartbeat} s, {'threaded' if self.threaded else 'not threaded'}). "
            "To exit press CTRL+C")

    def callback(self, ch, method, properties, body) -> None:
        try:
            task = json.loads(body)
        except ValueError:
            task = None
        task_id = task.get("id", "?") if isinstance(task, dict) else "?"
        if self.stop_signal is not None:  # arrived after we decided to stop: give it back untouched
            ch.basic_reject(delivery_tag=method.delivery_tag, requeue=True)
            say(f"[<] Task {task_id} arrived after {self.stop_signal[0]}: handed back (basic_reject requeue=True)")
            return
        say(f"[>] Task {task_id} received (redelivered={method.redelivered})")
        self.in_flight += 1
        if not self.threaded:
            self.finish(ch, method.delivery_tag, task_id, *self.attempt(task, body))
            return
        thread = threading.Thread(target=self.work_in_thread, args=(ch, method.delivery_tag, task_id, task, body),
                                  name=f"task-{task_id}")
        self.threads.append(thread)
        thread.start()

    def attempt(self, task, body: bytes) -> tuple[object, BaseException | None]:
        if task is None:
            return None, ValueError(f"not JSON: {body[:40]!r}")
        try:
            return self.work(task), None
        except Exception as error:  # any failure of the task is the task's, not the worker's
            return None, error

    def work_in_thread(self, ch, tag: int, task_id, task, body: bytes) -> None:
        outcome = self.attempt(task, body)
        try:  # the channel belongs to the connection's thread: hand the ack over to it
            self.connection.add_callback_threadsafe(functools.partial(self.finish, ch, tag, task_id, *outcome))
        except Exception as error:  # connection already gone: the broker requeues the task itself
            print(f"{stamp()}  [!] Task {task_id} finished but cannot be acked: {error!r}", file=sys.stderr)

    def finish(self, ch, tag: int, task_id, result, error: BaseException | None) -> None:
        self.in_flight -= 1
        if error is None:
            try:
                ch.basic_ack(delivery_tag=tag)
            except pika.exceptions.AMQPConnectionError:
                say(f"[!] Task {task_id} done but not acked: the connection is gone, the broker requeues it")
                raise
            shown = "" if result is None else f" -> {str(result)[:60]}"
            say(f"[x] Task {task_id} done, acked{shown}")
        else:
            ch.basic_nack(delivery_tag=tag, requeue=False)
            say(f"[!] Task {task_id} failed: {type(error).__name__}: {error}; "
                f"nack requeue=False -> {settings.name(DEAD_QUEUE)}")

    def run(self) -> int:
        """Consume until a signal asks to stop; returns the exit code (0 clean, 1 connection lost)."""
        try:
            self.connect()
            cancelled = False
            while not (cancelled and self.in_flight == 0):
                self.connection.process_data_events(time_limit=0.2)
                if self.stop_signal is not None and not cancelled:
                    name, at = self.stop_signal
                    # basic_cancel: the broker sends no more; pika nacks (requeues) any not yet handed to us
                    self.channel.basic_cancel(self.consumer_tag)
                    cancelled = True
                    say(f"[*] {name} (at {stamp(at)}): not taking new tasks; {self.in_flight} to finish")
            self.connection.close()
        except pika.exceptions.AMQPConnectionError as error:
            say(f"[!] Connection lost: {error!r}; unacked tasks go back to the queue; exit 1 (a supervisor restarts)")
            return 1
        finally:
            for thread in self.threads:
                thread.join()
        say("[*] Stopped cleanly; exit 0")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefetch", type=int, default=1, help="unacked tasks the broker may hand us (default 1)")
    parser.add_argument("--heartbeat", type=int, default=60, help="heartbeat timeout in seconds (default 60)")
    parser.add_argument("--threaded", action="store_true", help="work in a thread; ack via add_callback_threadsafe")
    parser.add_argument("--task", help="module:function doing the work; it takes the task dict, returns or raises")
    args = parser.parse_args(argv)
    worker = TaskWorker(load_function(args.task) if args.task else sleep_work, prefetch=args.prefetch,
                        heartbeat=args.heartbeat, threaded=args.threaded)
    signal.signal(signal.SIGINT, worker.request_stop)
    signal.signal(signal.SIGTERM, worker.request_stop)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
