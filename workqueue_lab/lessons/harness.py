"""Runs a learner's piece of code against the broker so that a check can judge what it did.

This is plumbing, not judgement: it gathers facts (how many messages the broker pushed,
which channel calls were made, which versions run) and the pure checks in ``lessons.checks``
decide whether they are right and why not.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import settings, versions
from ..errors import LabError

if TYPE_CHECKING:
    from ..broker.handle import Broker

logger = logging.getLogger(__name__)

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




# --- notebook 02: the acknowledgement timeout, on whatever broker is at hand ---------------------


@dataclass
class AckTimeoutDemo:
    """How this broker can show a consumer (ack) timeout in a few seconds, or why it cannot.

    ``how`` is "node" (the lab shortened consumer_timeout and the channel tick on a node it controls),
    "queue-argument" (RabbitMQ 3.11.15 to 4.2: the demo's queue carries ``x-consumer-timeout``) or ""
    (``why_not`` says why not).  ``queue`` holds the extra ``lab.start`` arguments for the demo's queue.
    """

    how: str = ""
    why_not: str = ""
    timeout_ms: int = 0
    hang_s: float = 0.0  # how long (real seconds) the stuck worker hangs: well past timeout + tick
    queue: dict = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.why_not

    def why_unchecked(self, back_after: float | None) -> str:
        """Why the demo's claims could not be checked here ("" when they can be asserted)."""
        if self.why_not:
            return self.why_not
        if back_after is None and self.how == "queue-argument":
            return (f"the broker did not take the message back within {self.hang_s:g} s although the queue has "
                    f"x-consumer-timeout = {self.timeout_ms} ms: its channel tick (channel_tick_interval) is "
                    "probably the default 60 s; the course's Docker broker sets 1 s for this demo.")
        return ""


@contextlib.contextmanager
def ack_timeout_demo(broker: Broker) -> Iterator[AckTimeoutDemo]:
    """Shorten the ack timeout for the block as far as this broker allows, and say how (or why not)."""
    if not versions.applies("classic_consumer_timeout", broker.version):
        yield AckTimeoutDemo(why_not=f"RabbitMQ {broker.version}: from 4.3 classic queues such as task_queue have "
                                     "no acknowledgement timeout at all (4.3.0 release notes); the live demo needs "
                                     "RabbitMQ 3.8.15 to 4.2.")
        return
    with contextlib.ExitStack() as stack:
        try:
            how = stack.enter_context(broker.short_ack_timeout(ms=500, tick_ms=100))
        except LabError as err:
            yield AckTimeoutDemo(why_not=f"the live demo needs a node the lab controls, or RabbitMQ 3.11.15+ for a "
                                         f"per-queue timeout ({err})")
            return
        if how == "node":
            yield AckTimeoutDemo("node", timeout_ms=500, hang_s=1.2)
        else:  # 3.11.15 .. 4.2 without control of the node: a per-queue timeout, checked once per channel tick
            yield AckTimeoutDemo("queue-argument", timeout_ms=1000, hang_s=3.5,
                                 queue={"queue": "lab_queue", "queue_arguments": {"x-consumer-timeout": 1000}})


def seconds_until_ready(broker: Broker, queue: str, within: float, count: int = 1) -> float | None:
    """Seconds until ``queue`` holds ``count`` ready messages (polled over one AMQP connection), or None."""
    started = time.monotonic()
    conn = broker.connect()
    try:
        ch = conn.channel()
        while time.monotonic() - started < within:
            if ch.queue_declare(queue=queue, passive=True).method.message_count >= count:
                return time.monotonic() - started
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return None


# --- queue counts as the broker reports them ----------------------------------------------------


def queue_counts(broker: Broker, queue: str, wait_for: tuple[int, int] | None = None,
                 within: float = 8.0) -> tuple[int, int | None]:
    """The queue's (ready, unacked) as RabbitMQ reports them (``broker.queue_stats``, live counts).

    With ``wait_for``, keep asking until the broker reports exactly that or ``within`` seconds have
    passed, then return what it last said: a publish on another connection, or a connection that is
    closing, takes a moment to reach the queue.  A broker that reports no unacked count (a URL without
    the management API) is waited on for the ready count alone: waiting for a number it never gives
    would only cost ``within`` seconds of silence.
    """
    deadline = time.monotonic() + within
    while True:
        stats = broker.queue_stats(queue)
        counts = (stats.ready, stats.unacked)
        if wait_for is None or time.monotonic() > deadline or _matches(counts, tuple(wait_for)):
            return counts
        time.sleep(0.2)


def _matches(counts: tuple[int, int | None], wanted: tuple[int, int]) -> bool:
    return counts == wanted or (counts[1] is None and counts[0] == wanted[0])


def reports_unacked(broker: Broker) -> bool:
    """Whether this broker tells the lab a queue's unacked count: rabbitmqctl inside a node it controls, or
    a management API this user may read (a class's learner has neither: their claims are NOT CHECKED)."""
    return broker.control.can("stats") or isinstance(broker.management_api("overview"), dict)


@dataclass(frozen=True)
class Sampling:
    """How ``run.watch_queue()`` gets its counts from a broker: in words, how often, and how long a state
    must last to be sure to show in the samples."""

    text: str
    every: float
    lasting: float


def sampling(broker: Broker) -> Sampling:
    """What a notebook may claim about ``run.watch_queue()`` on this broker (it mirrors how the run samples)."""
    if broker.control.can("stats"):  # what run.watch_queue() asks too: it samples inside the node
        return Sampling("ten times a second, from inside the RabbitMQ node (live counts)", 0.1, 1.0)
    if broker.mgmt_url:
        return Sampling("every half second, from the management API (the queue's own counts, asked at each "
                        "sample)", 0.5, 1.5)
    return Sampling("every half second, with a passive queue declare (ready only: this broker reports no "
                    "unacked count)", 0.5, 1.0)


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
    deadline = time.monotonic() + run.scenario.timeout
    try:
        published = run.publish(tasks)
        while ack == "manual" and time.monotonic() < deadline:
            time.sleep(0.1)
            events = run.log.events
            if set(ev.completed(events)) >= set(published) or not any(w.is_alive() for w in run.workers):
                break
            settled = sum(e.kind in (ev.ACK, ev.NACK, ev.REJECT) for e in events)
            last = max(returned[-1] if returned else 0.0, run.log.t0 + events[-1].t if events else 0.0)
            quiet = time.monotonic() - last
            if returned and len(returned) > settled and quiet > stall:
                print(f"Stopped the run: your callback returned {len(returned)} time(s) but acknowledged "
                      f"{settled} message(s), and nothing happened for {stall:g} s. RabbitMQ counts an "
                      "unacknowledged message as not done, so this run could only wait for its timeout.")
            elif returned and quiet > stall + longest:
                print(f"Stopped the run: nothing happened for {quiet:.0f} s although "
                      f"{len(set(published) - set(ev.completed(events)))} task(s) are not done; the check "
                      "below says why.")
            else:
                continue
            run.stop()
            return run.result()
        return run.wait(progress=False)
    except BaseException:
        run.stop()
        raise


def ready_now(broker: Broker, queue: str) -> int:
    """Messages ready in ``queue`` right now, as RabbitMQ answers a passive declare (live, no tool to start)."""
    with broker.channel() as ch:
        return ch.queue_declare(queue=queue, passive=True).method.message_count


def consumer_prefetch(broker: Broker, queue: str) -> list[int] | None:
    """The prefetch count RabbitMQ holds for each consumer of ``queue`` (sorted), or None if it cannot tell.

    Asks rabbitmqctl (a node the lab controls) or else the management API: what the broker applies, not
    what the lab's workers say they asked for.
    """
    import urllib.parse

    from ..errors import LabError

    proc = None
    if broker.control.can("ctl"):
        try:
            proc = broker.control.ctl("list_consumers", "-q", "--no-table-headers", "queue_name", "prefetch_count")
        except LabError as exc:  # the CLI failed: ask the management API instead
            logger.debug("list_consumers: %s", exc)
    if proc is not None and proc.returncode == 0:
        counts = [int(f[1]) for f in (line.split() for line in proc.stdout.splitlines())
                  if len(f) == 2 and f[0] == queue and f[1].isdigit()]
        return sorted(counts)
    # The management API lists consumers from its statistics database, which the broker refreshes every 5 s:
    # wait until it lists as many as the queue has now (AMQP's consumer count is live), for up to 12 s.
    quote = functools.partial(urllib.parse.quote, safe="")
    with broker.channel() as ch:
        consumers = ch.queue_declare(queue=queue, passive=True).method.consumer_count
    deadline = time.monotonic() + 12.0
    while True:
        data = broker.management_api(f"queues/{quote(broker.vhost)}/{quote(queue)}")
        if not isinstance(data, dict) or "consumer_details" not in data:
            return None
        details = data["consumer_details"]
        if len(details) == consumers or time.monotonic() > deadline:
            return sorted(int(c.get("prefetch_count", 0)) for c in details)
        time.sleep(0.25)


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
