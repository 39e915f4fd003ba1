"""Runs a learner's piece of code against the broker so that a check can judge what it did.

This is plumbing, not judgement: it gathers facts (how many messages the broker pushed,
which channel calls were made, which versions run, what the lesson's programs printed) and the
pure checks in ``lessons.checks`` decide whether they are right and why not.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import settings
from ..errors import LabError
from .checks.base import Check
from .checks.nb00 import environment
from .checks.nb03 import PREDICT_SPEEDS, PREDICT_TASKS, fair_dispatch, prediction

if TYPE_CHECKING:
    from ..broker.handle import Broker

logger = logging.getLogger(__name__)

# --- notebook 03's exercise: what the learner's consume() asked of the broker ------------------------

CONSUME_QUEUE = "prefetch_check"
CONSUME_MESSAGES = 5


@dataclass
class ConsumeTrial:
    """What a learner's ``consume(channel, queue, on_message)`` did on a queue of ``messages`` messages."""

    messages: int = CONSUME_MESSAGES
    received: int = 0  # deliveries that reached on_message (which never acks)
    waiting: int = 0  # messages the broker still held in the queue afterwards
    calls: list[str] = field(default_factory=list)  # channel methods called, in order
    prefetch_count: int | None = None  # the last value passed to basic_qos
    auto_ack: bool = False
    error: str | None = None  # what consume() raised, if it raised


class _RecordingChannel:
    """A real pika channel whose basic_qos/basic_consume calls are noted; start_consuming is a no-op,
    because the trial drives the connection itself (it must not block forever)."""

    def __init__(self, channel, trial: ConsumeTrial) -> None:
        self._channel = channel
        self._trial = trial

    def start_consuming(self) -> None:
        self._trial.calls.append("start_consuming")

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False):
        self._trial.calls.append("basic_qos")
        self._trial.prefetch_count = prefetch_count
        return self._channel.basic_qos(prefetch_size=prefetch_size, prefetch_count=prefetch_count,
                                       global_qos=global_qos)

    def basic_consume(self, queue, on_message_callback, auto_ack=False, *args, **kwargs):
        self._trial.calls.append("basic_consume")
        self._trial.auto_ack = bool(auto_ack)
        return self._channel.basic_consume(queue, on_message_callback, auto_ack, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._channel, name)


def try_consume(consume: Callable, broker: Broker | None = None, messages: int = CONSUME_MESSAGES) -> ConsumeTrial:
    """Put ``messages`` messages in a fresh queue, call ``consume`` on a new channel with an ``on_message``
    that never acks (a worker busy with its first task), and count what the broker pushed and kept."""
    from ..broker.discovery import find_broker

    broker = broker or find_broker()
    queue = settings.name(CONSUME_QUEUE)
    trial = ConsumeTrial(messages=messages)

    def on_message(ch, method, properties, body):  # busy with the task: no ack yet
        trial.received += 1

    admin = broker.connect()
    worker = None
    try:
        ach = admin.channel()
        # durable: RabbitMQ 4.3 refuses transient non-exclusive classic queues by default, and the queue
        # cannot be exclusive because the learner's worker consumes it on a connection of its own.
        ach.queue_declare(queue=queue, durable=True)
        broker.remember("queue", queue)
        ach.queue_purge(queue=queue)
        for i in range(1, messages + 1):
            ach.basic_publish(exchange="", routing_key=queue, body=f"Task {i}.")
        worker = broker.connect()
        try:
            consume(_RecordingChannel(worker.channel(), trial), queue, on_message)
        except Exception as exc:  # the learner's code: the check reports it in one line
            trial.error = f"{type(exc).__name__}: {exc}"
            return trial
        # Let the deliveries arrive: all of them, or a little longer once the first is in.
        deadline = time.monotonic() + (2.0 if "basic_consume" in trial.calls else 0.0)
        while time.monotonic() < deadline and trial.received < messages:
            worker.process_data_events(time_limit=0.02)
            if trial.received:
                deadline = min(deadline, time.monotonic() + 0.1)
        trial.waiting = ach.queue_declare(queue=queue, passive=True).method.message_count
    finally:
        for conn in (worker, admin):
            if conn is not None:
                try:
                    conn.close()
                except Exception as exc:  # already closed by the broker (e.g. the learner's bad call)
                    logger.debug("closing a trial connection: %s", exc)
        try:
            with broker.channel() as ch:
                ch.queue_delete(queue=queue)
        except Exception as exc:
            logger.debug("deleting %s after the trial: %s", queue, exc)
    return trial


# --- notebook 00: the environment check, and the facts it judges ----------------------------------------------


def environment_facts(broker: Broker) -> dict[str, object]:
    """The versions and URLs the environment check judges: python, pika, rabbitmq (None if the broker
    does not answer, then ``broker_error`` says why), url, masked_url, mgmt_link."""
    import pika

    facts: dict[str, object] = {
        "python": sys.version.split()[0], "pika": pika.__version__, "rabbitmq": None, "broker_error": "",
        "url": broker.url, "masked_url": broker.masked_url, "mgmt_link": None,
    }
    try:
        facts["rabbitmq"] = broker.version
        facts["mgmt_link"] = broker.mgmt_ui_link()
    except Exception as exc:  # the broker went away since lab.connect(): the check says so
        facts["broker_error"] = str(exc)
    return facts


def check_environment(broker: Broker) -> Check:
    """Gather the facts from ``broker`` and this Python, then judge them (``lessons.checks.nb00.environment``)."""
    return environment(environment_facts(broker))





# --- notebook 02's exercise: the learner's ack callback, with a run that never waits silently ----------


STALL_SECONDS = 3.0  # real seconds: a callback returned, nothing was acknowledged, nothing else happened


def run_ack_exercise(callback: Callable, tasks, workers, prefetch: int = 0, ack: str = "manual",
                     broker: Broker | None = None, stall: float = STALL_SECONDS):
    """``lab.run`` for an exercise on acknowledgements, that does not wait out its timeout in silence.

    When the learner's callback has returned for messages it never acknowledged (nor nacked nor
    rejected) and nothing else happened for ``stall`` seconds, the run can only wait for its timeout:
    it stops at once and says so in one line.  Returns the run's result either way, for the check.
    """
    from ..engine.run import start
    from ..record import events as ev

    returned: list[float] = []  # one entry per callback that returned (list.append is thread-safe)

    def watched(ch, method, properties, body):
        callback(ch, method, properties, body)
        returned.append(time.monotonic())

    from ..broker.discovery import find_broker

    broker = broker or find_broker()
    broker.purge(settings.name("task_queue"))  # what a stopped attempt left behind is not this attempt's
    run = start(watched, workers=workers, prefetch=prefetch, ack=ack, broker=broker,
                timeout=30 + 60 * settings.time_scale())
    longest = max((str(t).count(".") for t in tasks), default=0) * settings.time_scale()
    try:
        published = run.publish(tasks)
    except BaseException:
        run.stop()
        raise
    why_stopped: list[str] = []

    def stalled(events: list) -> bool:
        settled = sum(e.kind in (ev.ACK, ev.NACK, ev.REJECT) for e in events)
        last = max(returned[-1] if returned else 0.0, run.log.t0 + events[-1].t if events else 0.0)
        quiet = time.monotonic() - last
        if returned and len(returned) > settled and quiet > stall:
            why_stopped.append(f"Stopped the run: your callback returned {len(returned)} time(s) but acknowledged "
                               f"{settled} message(s), and nothing happened for {stall:g} s. RabbitMQ counts an "
                               "unacknowledged message as not done, so this run could only wait for its timeout.")
        elif returned and quiet > stall + longest and (open_ := set(published) - set(ev.completed(events))):
            why_stopped.append(f"Stopped the run: nothing happened for {quiet:.0f} s although {len(open_)} task(s) "
                               "are not done; the check below says why.")
        return bool(why_stopped)

    result = run.wait(progress=False, until=stalled if ack == "manual" else None)
    if why_stopped:  # printed here, on the main thread, once the run has stopped
        print(why_stopped[0])
    return result



# --- notebook 01's terminal exercise, done for the learner with real processes ---------------------------


@dataclass
class TerminalRun:
    """What the lesson's programs printed: ``sent`` (each new_task.py), ``outputs`` (each worker.py)."""

    sent: list[str]
    outputs: list[str]


def _consumers(broker: Broker, queue: str) -> int:
    import pika.exceptions as pe

    try:
        with broker.channel() as ch:
            return ch.queue_declare(queue=queue, passive=True).method.consumer_count
    except pe.ChannelClosedByBroker:
        return 0  # the queue does not exist yet: nobody consumes it


def _own_worker_error(count: int, queue: str) -> LabError:
    return LabError(f"{count} other consumer(s) already read '{queue}', most likely your own `python worker.py` "
                    "from exercise 2 still running in a terminal: stop it with Ctrl-C, then run this cell again.")


def run_terminal_exercise(broker: Broker, tasks, workers: int = 2, root: Path | None = None) -> TerminalRun:
    """Start ``worker.py`` ``workers`` times as processes, send each task with ``new_task.py``, wait for the
    Done lines, stop the workers and return what each program printed (the lesson's terminals, automated)."""
    import os
    import shutil
    import subprocess
    import tempfile

    root = root or Path(__file__).resolve().parents[2]
    queue = settings.name("task_queue")
    if already := _consumers(broker, queue):
        raise _own_worker_error(already, queue)
    broker.purge(queue)  # messages an earlier experiment left would go to the workers first
    env = dict(os.environ, WORKQUEUE_LAB_URL=broker.url, PYTHONUNBUFFERED="1")
    log_dir = Path(tempfile.mkdtemp(prefix="workqueue-lab-"))
    logs = [log_dir / f"terminal-{i}.txt" for i in range(1, workers + 1)]
    procs = [subprocess.Popen([sys.executable, str(root / "worker.py")], env=env, stdout=log.open("w"),
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) for log in logs]

    def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise LabError("A worker.py exited early; it printed:\n" + "\n".join(log.read_text() for log in logs))
            time.sleep(0.1)
        return condition()

    sent = []
    try:
        if not wait_for(lambda: _consumers(broker, queue) >= workers, 30):
            raise LabError(f"The {workers} worker.py processes did not start consuming '{queue}' within 30 s; "
                           "is RabbitMQ answering?")
        if (count := _consumers(broker, queue)) > workers:
            raise _own_worker_error(count - workers, queue)
        for task in tasks:
            done = subprocess.run([sys.executable, str(root / "new_task.py"), task], env=env, capture_output=True,
                                  text=True, timeout=60, check=True, stdin=subprocess.DEVNULL)
            sent.append(done.stdout.strip())
        wait_for(lambda: sum(log.read_text().count("Done") for log in logs) >= len(sent),
                 30 + 10 * settings.time_scale())
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        outputs = [log.read_text() for log in logs]
        shutil.rmtree(log_dir, ignore_errors=True)
    return TerminalRun(sent, outputs)


# --- the exercises' checks that run something first: the run here, the verdict in lessons.checks ------------


def check_consume(consume: Callable, broker: Broker | None = None) -> Check:
    """Exercise 1: try the learner's ``consume(channel, queue, on_message)`` on a real queue, then judge it."""
    trial = try_consume(consume, broker)
    return fair_dispatch(trial.received, trial.waiting, trial.calls, trial.prefetch_count, trial.auto_ack,
                         trial.error, trial.messages)


def check_prediction(prefetch_0=None, prefetch_1=None, broker: Broker | None = None) -> Check:
    """Exercise 2: run PREDICT_TASKS on two equal workers at each prefetch predicted, then judge the predictions.

    Pass a dict such as ``{1: [1, 2], 2: [3]}`` for one or both prefetch values.
    """
    from ..engine.run import run as lab_run
    from .callbacks import lesson_callback

    predicted = {0: prefetch_0, 1: prefetch_1}
    runs = {p: lab_run(lesson_callback, tasks=PREDICT_TASKS, workers=PREDICT_SPEEDS, prefetch=p,
                       progress=False, broker=broker)
            for p, guess in predicted.items() if guess is not None}
    return prediction(predicted, runs, {f"prefetch={p}": r for p, r in runs.items()})
