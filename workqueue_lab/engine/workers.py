"""Workers that run the learner's own pika callback.

Each worker has its own ``BlockingConnection`` and channel (pika connections are not
thread-safe).  The callback receives an ``InstrumentedChannel``; ``work()`` stands in for
``time.sleep(dots)`` and is where faults are injected.  A worker knows its run only through a
``WorkerContext`` (how to connect, what to consume, how to name tasks, where to record), so the
same ``Worker`` runs in a thread of the notebook (``WorkerThread``) or in a process of its own
(``engine.processes``).  Threads never print: their output is captured.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import settings
from ..record import events as ev
from . import capture
from .channel import InstrumentedChannel
from .scenario import FaultState, WorkerSpec, dots

if TYPE_CHECKING:
    import pika

    from ..record.sinks import Sink

Callback = Callable[[object, object, object, bytes], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    """All a worker needs from its run, and nothing more.

    connect: returns a new BlockingConnection (one per worker, per reconnect).
    task_of_message: ``(properties, body) -> task id | None`` (see ``producer.TaskIds``).
    sink: where events go (the run's ``EventLog`` for a thread, a pipe for a process).
    arguments: consumer arguments for ``basic_consume`` (e.g. ``x-priority``), None for none.
    confirms: put the worker's channel in confirm mode (``channel.confirm_delivery()``) before consuming, as a
    worker that republishes should: its ``basic_publish`` then returns once the broker has the copy, and raises
    (``UnroutableError`` with ``mandatory=True``, ``NackError``) when the broker could not take it.
    """

    connect: Callable[[], pika.BlockingConnection]
    queue: str
    prefetch: int
    auto_ack: bool
    task_of_message: Callable[[object, bytes], int | None]
    sink: Sink
    arguments: dict | None = None
    confirms: bool = False


class WorkerCrashed(BaseException):
    """The simulated process died mid-task.  A BaseException, so ``except Exception`` in
    the learner's callback does not catch it, exactly as a real crash cannot be caught."""


class WorkerStopped(BaseException):
    """The run is stopping: abandon the task without acking (the broker requeues it)."""


class TaskFailed(Exception):
    """An injected failure inside the task: the callback's except-branch handles it."""


_context = threading.local()


def current_worker() -> Worker | None:
    return getattr(_context, "worker", None)


def work(message: str | bytes | None = None, seconds: float | None = None) -> None:
    """Do the task: one (scaled) second of work per '.' in ``message``.

    This replaces the lesson's ``time.sleep(message.count('.'))``: inside a lab
    worker it honours the worker's speed and injected faults, and returns early
    (without acking) when the run stops.  Outside the lab it simply sleeps.
    """
    if seconds is None:
        seconds = float(dots(message or ""))
    worker = current_worker()
    scale = settings.time_scale()
    if worker is None:
        time.sleep(seconds * scale)
        return
    worker.do_work(seconds, scale)


class Worker:
    """One consumer: connect, qos, consume, run the callback; restart after a crash if asked.

    ``serve()`` runs it in the calling thread until ``stop_event`` is set or it dies.
    """

    def __init__(self, context: WorkerContext, worker_id: int, callback: Callback, spec: WorkerSpec,
                 output) -> None:
        self.context = context
        self.worker_id = worker_id
        self.callback = callback
        self.spec = spec
        self.auto_ack = context.auto_ack  # read once per message: one attribute, not two
        self.output = output  # where a traceback of the callback goes (has .write)
        self.ready = threading.Event()
        self.stop_event = threading.Event()
        self.dead = False  # crashed and not restarting
        self.error: str | None = None
        self.faults = FaultState(spec.faults, worker_id)
        self._task_now: int | None = None
        self._deliveries: dict[int, tuple[int | None, float]] = {}  # tag -> (task, t) on this channel
        self._log = context.sink
        self._task_of_message = context.task_of_message
        self._instrumented: InstrumentedChannel | None = None  # one proxy per pika channel, not per message

    def stop(self) -> None:
        """Ask the worker to stop: a task in ``work()`` is abandoned unacked (the broker requeues it)."""
        self.stop_event.set()

    # --- inside the callback ----------------------------------------------------
    def do_work(self, seconds: float, scale: float) -> None:
        duration = seconds / self.spec.speed
        for f in self.faults.triggered(self._task_now):
            if f.kind == "slow":
                duration *= f.factor
            elif f.kind == "hang":
                duration = max(duration, f.seconds)
            elif f.kind == "crash":
                self._sleep(duration * scale / 2)
                raise WorkerCrashed(f"injected crash on task {self._task_now}")
            elif f.kind == "exception":
                self._sleep(duration * scale / 2)
                self._log.record(ev.ERROR, self.worker_id, self._task_now, detail="injected TaskFailed")
                raise TaskFailed(f"injected failure on task {self._task_now}")
        self._sleep(duration * scale)

    def _sleep(self, seconds: float) -> None:
        if self.stop_event.wait(seconds):
            raise WorkerStopped()

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        task = self._task_of_message(properties, body)
        self._task_now = task
        self._deliveries[method.delivery_tag] = (task, time.monotonic())
        self._log.note(ev.DELIVER, self.worker_id, task, method.delivery_tag, bool(method.redelivered))
        ch = self._instrumented
        if ch is None or ch._channel is not channel:
            ch = self._instrumented = InstrumentedChannel(channel, self._log, self.worker_id, self._task_of_tag)
        ch.handling(task, properties, body)
        try:
            self.callback(ch, method, properties, body)
        except (WorkerCrashed, WorkerStopped):
            raise
        except Exception as exc:  # the learner's callback raised: a real worker process would die here
            if _connection_gone(exc):  # e.g. basic_ack after the broker went away: reconnect, not a crash
                raise
            self.output.write(traceback.format_exc())
            raise _CallbackError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._task_now = None
        if self.auto_ack:
            self._log.record(ev.DONE, self.worker_id, task, tag=method.delivery_tag)

    def _task_of_tag(self, tag: int) -> int | None:
        entry = self._deliveries.get(tag)
        return None if entry is None else entry[0]

    # --- the worker's life ----------------------------------------------------------
    def serve(self) -> None:
        """Consume until stopped (or dead); reconnects after a lost connection, restarts if the spec says so."""
        _context.worker = self
        backoff = 0.2
        first = True
        ctx = self.context
        try:
            while not self.stop_event.is_set():
                conn = None
                try:
                    conn = ctx.connect()
                    channel = conn.channel()
                    channel.basic_qos(prefetch_count=ctx.prefetch)
                    if ctx.confirms:
                        channel.confirm_delivery()
                    self._deliveries.clear()
                    cancelled = threading.Event()  # RabbitMQ 4.3+ cancels a timed-out consumer (quorum queues)
                    channel.add_on_cancel_callback(lambda frame, flag=cancelled: flag.set())
                    tag = channel.basic_consume(queue=ctx.queue, on_message_callback=self._on_message,
                                                auto_ack=ctx.auto_ack, arguments=ctx.arguments)
                    self._log.record(ev.READY if first else ev.RESTART, self.worker_id,
                                     detail=f"prefetch={ctx.prefetch} via={_address(conn)}"
                                            + (" confirms=on" if ctx.confirms else ""))
                    first, backoff = False, 0.2
                    self.ready.set()
                    self._consume(conn, cancelled)
                    if cancelled.is_set():  # the broker cancelled us; consume again on a fresh connection
                        self._log.record(ev.TIMEOUT, self.worker_id, self._last_task(),
                                         detail="basic.cancel from the broker (consumer timeout or queue deleted)")
                        continue
                    self._record_stop(self._leave(channel, tag))
                    return
                except WorkerStopped:
                    self._record_stop("stopped mid-task; not acked")
                    return
                except WorkerCrashed as exc:
                    self._log.record(ev.CRASH, self.worker_id, self._last_task(), detail=str(exc))
                except _CallbackError as exc:
                    self._log.record(ev.CRASH, self.worker_id, self._last_task(),
                                     detail=f"callback raised {exc}")
                except Exception as exc:
                    if not self._on_connection_trouble(exc, first):
                        return
                    self.stop_event.wait(backoff)  # a stop during the backoff ends it at once
                    backoff = min(backoff * 2, 2.0)
                    continue
                finally:
                    _close_quietly(conn)
                # crashed: come back only if this worker restarts (like a supervisor would)
                if not self.spec.restart:
                    self.dead = True
                    self.ready.set()
                    return
                self.stop_event.wait(0.05)
            # stopped between connections (after a crash, before its restart; or while reconnecting)
            self._record_stop("stopped while not connected")
        finally:
            _context.worker = None

    def _consume(self, conn, cancelled: threading.Event) -> None:
        while not self.stop_event.is_set() and not cancelled.is_set():
            conn.process_data_events(time_limit=0.05)

    def _leave(self, channel, consumer_tag: str) -> str:
        """Called when the consume loop ended on a stop; returns the STOP event's detail."""
        return ""

    def _record_stop(self, detail: str) -> None:
        self._log.record(ev.STOP, self.worker_id, detail=detail)

    def _last_task(self) -> int | None:
        if self._task_now is not None:
            return self._task_now
        return max(self._deliveries.items(), default=(0, (None, 0)))[1][0]

    def _on_connection_trouble(self, exc: Exception, first: bool) -> bool:
        """Record a broker-side closure or a lost connection; return whether to go on."""
        import pika.exceptions as pe

        if isinstance(exc, pe.ChannelClosedByBroker):
            self._record_timeout(exc)
            return True
        if first and not self.ready.is_set() and not isinstance(exc, (pe.StreamLostError,
                                                                       pe.ConnectionClosedByBroker)):
            # could not even start: report it to the main thread instead of retrying forever
            self.error = str(exc)
            self.dead = True
            self.ready.set()
            return False
        self._log.record(ev.RECONNECT, self.worker_id, detail=f"{type(exc).__name__}: {exc}")
        return not self.stop_event.is_set()

    def _record_timeout(self, exc) -> None:
        """The broker closed the channel; when it was the ack timeout, say which deliveries it hit.

        An ack sent after the broker closed the channel is ignored by the broker, so
        every delivery older than the timeout counts as timed out, acked or not.
        """
        text = getattr(exc, "reply_text", str(exc))
        timeout_s = _timeout_from_reply(text)
        now = time.monotonic()
        victims = [(tag, task) for tag, (task, t) in self._deliveries.items()
                   if timeout_s is not None and now - t >= timeout_s]
        if not victims:
            self._log.record(ev.TIMEOUT, self.worker_id, self._last_task(), detail=text)
        for tag, task in victims:
            self._log.record(ev.TIMEOUT, self.worker_id, task, tag=tag, detail=text)


def _connection_gone(exc: Exception) -> bool:
    """True if pika raised because the connection or channel is no longer usable (broker gone)."""
    import pika.exceptions as pe

    # AMQPChannelError covers ChannelClosedByBroker: a late ack after the ack timeout is a timeout, not a crash
    return isinstance(exc, (pe.AMQPConnectionError, pe.AMQPChannelError))


class _CallbackError(Exception):
    """The learner's callback raised; the worker dies as a real process would."""


def _timeout_from_reply(text: str) -> float | None:
    if "timed out" not in text:
        return None
    import re

    m = re.search(r"Timeout value used:\s*(\d+)", text)
    return int(m.group(1)) / 1000.0 if m else 0.0


def _address(conn) -> str:
    """host:port of the broker node a connection reached (a cluster's list: the member pika chose)."""
    params = getattr(getattr(conn, "_impl", None), "params", None)  # pika keeps the parameters it used there
    return f"{params.host}:{params.port}" if params is not None else "?"


def _close_quietly(conn) -> None:
    if conn is None:
        return
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # already closing or gone: the broker requeues its unacked messages either way
        logger.debug("closing a worker connection failed", exc_info=True)


class WorkerThread(Worker, threading.Thread):
    """A ``Worker`` in a daemon thread of the notebook's process; its prints go to ``self.output``."""

    def __init__(self, context: WorkerContext, worker_id: int, callback: Callback, spec: WorkerSpec) -> None:
        threading.Thread.__init__(self, name=f"workqueue-lab worker {worker_id}", daemon=True)
        Worker.__init__(self, context, worker_id, callback, spec, capture.WorkerOutput())

    def run(self) -> None:
        capture.register(self.output)
        try:
            self.serve()
        finally:
            capture.unregister()
