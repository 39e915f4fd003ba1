"""Workers as real OS processes, started from the notebook, recording into the run's one event log.

Each ``WorkerProcess`` is ``python -m workqueue_lab.engine.processes``: its own interpreter, its own
``BlockingConnection``, the learner's callback imported from a ``"module:function"`` path and given
the same ``InstrumentedChannel``; ``work()`` and injected faults behave as in a thread.  Its events
go through a pipe (see ``record.sinks``) to one reader thread in the notebook's process, which
appends them to the run's ``EventLog`` and puts whatever the process prints (stdout and stderr) into
the worker's output; nothing is printed into a cell.

The contract a worker process keeps:

* **SIGTERM** (or SIGINT): it stops taking deliveries (the consumer is cancelled; a delivery already
  on its way is nacked back to the queue), finishes the task it is running, acks it, closes its
  connection and exits 0.  The signal handler only sets a flag (pika is not re-entrant); the consume
  loop, ``process_data_events(time_limit=0.05)``, checks it.  The lab records STOP with the exit code.
* **SIGKILL**: nothing runs in the process; the reader sees EOF and exit -9 and records a CRASH for
  the worker with the task it was running, and the broker redelivers that unacked task to another
  consumer (``redelivered=True``).
* **The notebook's process dies** (kernel killed or restarted): the child watches its parent pid
  (``os.getppid()`` changes when the parent dies; a broken event pipe says the same) and stops as a
  thread does: a task in ``work()`` is abandoned unacked and the broker requeues it.  Not
  ``prctl(PR_SET_PDEATHSIG)``: Linux ties that to the *thread* that forked, so a run started from a
  short-lived thread (a widget's) would lose its workers when that thread ends.
* Processes run in a session of their own, so a kernel interrupt (SIGINT to the kernel's process
  group) does not reach them; ``Run.stop()`` and ``stop_all()`` end them by PID (SIGTERM, then SIGKILL
  after the timeout) and join their reader threads.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import settings
from ..errors import LabError
from ..record import events as ev
from ..record.sinks import EventReceiver, PipeSink
from . import capture
from .scenario import Fault, WorkerSpec
from .workers import Worker, WorkerContext

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # seconds for a process to start Python, import, connect and consume (2 busy cores)


def callback_path(callback: Callable | str) -> str:
    """The ``"module:function"`` a worker process imports for ``callback`` (checked here, in one sentence)."""
    if isinstance(callback, str):
        resolve_callback(callback)
        return callback
    module, qualname = getattr(callback, "__module__", None), getattr(callback, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or "." in qualname:
        raise LabError(f"A worker process cannot import {getattr(callback, '__name__', callback)!r} (defined in a "
                       "notebook or nested); put it in a .py file and pass 'my_module:callback'.")
    return f"{module}:{qualname}"


def resolve_callback(path: str) -> Callable:
    """Import ``"module:function"``; a LabError naming the fix if it is not there."""
    module, _, name = path.partition(":")
    try:
        target = getattr(importlib.import_module(module), name) if module and name else None
    except Exception as exc:  # ImportError, AttributeError, or the module itself failed: one sentence
        raise LabError(f"Cannot import the callback {path!r} ({type(exc).__name__}: {exc}); pass "
                       "'module:function' for a function defined at the top of an importable .py file.") from None
    if not callable(target):
        raise LabError(f"{path!r} is not a 'module:function' path to a function; use e.g. "
                       "'workqueue_lab.lessons.callbacks:lesson_callback'.")
    return target


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold an interrupt (SIGINT: Ctrl-C, the notebook's Stop button) until the block has ended, then raise it.

    Raised inside ``subprocess.Popen`` after the fork, a KeyboardInterrupt loses the child's handle (Popen
    never returns), so the run's stop() cannot end a process that goes on starting: CI's interrupt test
    found one left behind.  Only the main thread receives Python's signal handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        if callable(previous):
            previous(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt here
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


class WorkerProcess:
    """One worker as an OS process: ``start()``, ``release()`` (begin consuming), ``signal()``, ``stop()``, ``join()``.

    Shares the attributes ``Run`` reads of a ``WorkerThread``: ``worker_id``, ``ready``, ``dead``,
    ``error``, ``output``.
    """

    def __init__(self, worker_id: int, config: dict, log: ev.EventLog) -> None:
        self.worker_id = worker_id
        self.log = log
        self.output = capture.WorkerOutput()
        self.ready = threading.Event()
        self.dead = False  # the process has exited
        self.error: str | None = None
        self.pid: int | None = None
        self.returncode: int | None = None
        self._config = {**config, "worker": worker_id}
        self._sent: list[str] = []  # signals the lab sent, for the STOP/CRASH detail
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._consuming = False

    def start(self) -> WorkerProcess:
        """Start the process; it connects and then waits for ``release()`` before consuming."""
        read_fd, write_fd = os.pipe()
        try:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p)}
            with _interrupt_after():  # Stop pressed inside Popen would leave a child nobody holds the PID of
                self._proc = subprocess.Popen(
                    [sys.executable, "-u", "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True, env=env)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the child holds the only write end: EOF here means it is gone
        self.pid = self._proc.pid
        self._reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True,
                                        name=f"workqueue-lab worker {self.worker_id} (process {self.pid} reader)")
        self._reader.start()
        self._tell({**self._config, "fd": write_fd})
        return self

    def release(self) -> None:
        """Let the process register its consumer (the run releases them in order: round-robin stays predictable)."""
        self._tell("go")
        with contextlib.suppress(OSError):
            self._proc.stdin.close()

    def _tell(self, item: object) -> None:
        try:
            self._proc.stdin.write(json.dumps(item).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:  # it died already: the reader records how
            logger.debug("worker process %s is not listening", self.pid, exc_info=True)

    # --- from the lab ----------------------------------------------------------------
    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this process (by PID, if it still runs); the events say what followed."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._sent.append(f"{signal.Signals(sig).name} at t={time.monotonic() - self.log.t0:.2f}s")
        self._proc.send_signal(sig)  # Popen checks it has not reaped the PID: never a stranger's process

    def stop(self) -> None:
        """Ask it to leave: SIGTERM (it finishes its current task and exits 0); not yet released: EOF on stdin."""
        self.signal(signal.SIGTERM)
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the process to exit (SIGKILL once ``timeout`` has passed), then for its reader."""
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self._proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)

    # --- the reader thread --------------------------------------------------------------
    def _read(self, fd: int) -> None:
        receiver = EventReceiver(self.log)
        try:
            self._pump(fd, receiver)
        except Exception:  # should not happen; the exit is still recorded below
            logger.debug("reading worker process %s failed", self.pid, exc_info=True)
        finally:
            os.close(fd)
            self._proc.stdout.close()
            self._finish(self._proc.wait(), receiver)

    def _pump(self, fd: int, receiver: EventReceiver) -> None:
        """Until both pipes reach EOF (the process is gone): events into the log, prints into the output."""
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            sel.register(out, selectors.EVENT_READ)
            open_fds = 2
            while open_fds:
                for key, _ in sel.select():
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        open_fds -= 1
                    elif key.fd == fd:
                        if any(e.kind in (ev.READY, ev.RESTART) for e in receiver.feed(data)):
                            self._consuming = True
                            self.ready.set()
                    else:
                        self.output.write(text.decode(data))

    def _finish(self, code: int, receiver: EventReceiver) -> None:
        """The process is gone: record how, with its exit code."""
        self.returncode = code
        sent = f"{', '.join(self._sent)} from the lab; " if self._sent else ""
        if receiver.said_goodbye:
            if receiver.goodbye is not None:
                self.log.record(ev.STOP, self.worker_id, detail=f"{sent}{receiver.goodbye}; exit {code}")
        else:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            if self._consuming:
                self.log.record(ev.CRASH, self.worker_id, self._running_task(),
                                detail=f"{sent}{how} (process {self.pid}), no goodbye: its unacked tasks go back")
            else:  # it never had a task: an end, not a crash to draw
                self.log.record(ev.STOP, self.worker_id, detail=f"{sent}{how} before it consumed")
        if not self._consuming:
            lines = self.output.text().strip().splitlines()
            self.error = lines[-1] if lines else f"the process exited with code {code} before consuming"
        self.dead = True
        self.ready.set()

    def _running_task(self) -> int | None:
        mine = [a for a in ev.attempts(self.log.events) if a.worker == self.worker_id and a.outcome == "open"]
        return mine[-1].task if mine else None


def process_config(urls: list[str], queue: str, prefetch: int, auto_ack: bool, run_id: str,
                   bodies: dict[bytes, int], callback: str, spec: WorkerSpec, t0: float) -> dict:
    """What a worker process needs to know, as JSON (written to its stdin, never on its command line)."""
    return {"urls": urls, "queue": queue, "prefetch": prefetch, "auto_ack": auto_ack, "run_id": run_id,
            "bodies": [[base64.b64encode(b).decode(), i] for b, i in bodies.items()], "callback": callback,
            "spec": {"speed": spec.speed, "restart": spec.restart,
                     "faults": [{**dataclasses.asdict(f), "tasks": None if f.tasks is None else sorted(f.tasks)}
                                for f in spec.faults]},
            "t0": t0, "time_scale": settings.time_scale(), "parent": os.getpid()}


# --- inside the worker process ------------------------------------------------------------


class ProcessWorker(Worker):
    """A ``Worker`` that keeps the SIGTERM contract: stop taking deliveries, finish the current task, leave.

    The consumer is cancelled at the first safe point after the signal: at the end of the task's
    ``work()`` (inside the callback, before its ack frees a prefetch slot the broker would fill), or
    in the consume loop when idle.  Never from the signal handler: pika is not re-entrant.
    """

    draining = False
    drained_by = "SIGTERM"
    stop_detail: str | None = None
    _consumer: tuple[object, str] | None = None  # (channel, consumer tag) of the current consumer
    _cancelled_on: object = None  # the channel whose consumer was cancelled

    def drain(self, signum: int, frame) -> None:  # a signal handler: set a flag, nothing else
        self.draining = True
        self.drained_by = signal.Signals(signum).name

    def do_work(self, seconds: float, scale: float) -> None:
        super().do_work(seconds, scale)
        if self.draining:
            self._cancel()

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        if self.draining and not self.auto_ack:  # already leaving: give it back for another consumer
            channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
            return
        self._consumer = (channel, method.consumer_tag)
        super()._on_message(channel, method, properties, body)

    def _consume(self, conn, cancelled: threading.Event) -> None:
        while not self.stop_event.is_set() and not cancelled.is_set() and not self.draining:
            conn.process_data_events(time_limit=0.05)

    def _cancel(self) -> list:
        """Cancel the consumer once per channel; returns what an auto-ack consumer still got (already ours)."""
        if self._consumer is None or self._cancelled_on is self._consumer[0]:
            return []
        channel, tag = self._consumer
        self._cancelled_on = channel
        return list(channel.basic_cancel(tag))  # manual ack: pika nacks undispatched deliveries back

    def _leave(self, channel, consumer_tag: str) -> str:
        if not self.draining:
            return "stopped"
        if self._consumer is None or self._consumer[0] is not channel:
            self._consumer = (channel, consumer_tag)
        for method, properties, body in self._cancel():  # auto-ack: the broker has forgotten them, so do them
            self._on_message(channel, method, properties, body)
        return f"on {self.drained_by}: cancelled its consumer, finished the task in hand, closed its connection"

    def _record_stop(self, detail: str) -> None:
        self.stop_detail = detail  # the lab records STOP with the exit code once the process is gone


def _context_from(config: dict, sink: PipeSink, wait_for_go: Callable[[], None]) -> WorkerContext:
    import pika
    import pika.exceptions

    def connect() -> pika.BlockingConnection:
        params = []
        for url in config["urls"]:
            p = pika.URLParameters(url)
            p.connection_attempts, p.socket_timeout, p.blocked_connection_timeout = 1, 5, 60
            p.heartbeat = 30
            params.append(p)
        try:
            conn = pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError as exc:  # pika's own text is often empty: say what failed
            raise pika.exceptions.AMQPConnectionError(
                f"cannot connect to RabbitMQ ({type(exc).__name__}{f': {exc}' if str(exc) else ''})") from None
        wait_for_go()
        return conn

    from .producer import TaskIds

    bodies = {base64.b64decode(b): i for b, i in config["bodies"]}
    return WorkerContext(connect=connect, queue=config["queue"], prefetch=config["prefetch"],
                         auto_ack=config["auto_ack"], task_of_message=TaskIds(config["run_id"], bodies=bodies),
                         sink=sink)


def _spec_from(raw: dict) -> WorkerSpec:
    faults = tuple(Fault(**{**f, "tasks": None if f["tasks"] is None else frozenset(f["tasks"])})
                   for f in raw["faults"])
    return WorkerSpec(speed=raw["speed"], faults=faults, restart=raw["restart"])


def main() -> int:
    """The worker process: read the config from stdin, serve, say goodbye; the exit code says how it went."""
    early: list[int] = []  # a SIGTERM before the worker exists still means "leave", not "die"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signum))
    config = json.loads(sys.stdin.readline())
    parent = config["parent"]
    os.environ[settings.ENV_TIME_SCALE] = repr(config["time_scale"])
    released = threading.Event()
    holder: list[ProcessWorker] = []

    def wait_for_go() -> None:
        if not released.is_set():
            released.set()
            if sys.stdin.readline().strip() != '"go"':  # EOF: the notebook's process went away first
                holder[0].stop()

    sink = PipeSink(config["fd"], config["t0"], on_broken=lambda: holder and holder[0].stop())
    worker = ProcessWorker(_context_from(config, sink, wait_for_go), config["worker"],
                           resolve_callback(config["callback"]), _spec_from(config["spec"]), sys.stderr)
    holder.append(worker)
    signal.signal(signal.SIGTERM, worker.drain)
    signal.signal(signal.SIGINT, worker.drain)
    if early:
        worker.drain(early[0], None)

    def watch_parent() -> None:
        while not worker.stop_event.wait(0.2):
            if os.getppid() != parent:
                worker.stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    worker.serve()
    if worker.error is not None:
        print(worker.error, file=sys.stderr)  # its last line: the reason Run.start gives
        sink.goodbye(None)
        return 2
    sink.goodbye(None if worker.dead else worker.stop_detail)
    return 1 if worker.dead else 0


if __name__ == "__main__":
    sys.exit(main())
