"""Orchestration only: declare, start workers, wait until every consumer is registered,
publish, wait for completion or timeout, stop cleanly.

Workers are threads of this process (``WorkerThread``) or, with ``processes=True``, OS processes
(``engine.processes``); either way they know the run only through a ``WorkerContext`` and record
into the run's one ``EventLog``.

The module keeps a registry of live runs: starting a run stops the previous
ones (so re-running a cell leaves no threads, processes or connections behind), and an
interrupt or the kernel's exit stops them too.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import signal as signals
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .. import settings
from ..broker.discovery import find_broker
from ..broker.handle import Broker, QueueStats
from ..errors import BrokerUnavailable, LabError
from ..record import events as ev
from ..record.state import RunState
from . import ending, queue_watch
from .producer import TaskIds, publish
from .result import RunResult
from .scenario import Scenario, WorkerSpec, check_prefetch, make_workers
from .taps import TapObserver
from .topology import TASK_QUEUE, Topology, single_queue
from .workers import Callback, WorkerContext, WorkerThread

if TYPE_CHECKING:

    from .processes import WorkerProcess

logger = logging.getLogger(__name__)
# Strong references: a started run stays stoppable until it is stopped, even if the cell dropped it
# (its workers no longer hold the Run, so a weak set would forget runs whose workers still consume).
_live: set[Run] = set()
_live_lock = threading.Lock()
NOTE_WIDTH = 80  # columns of a printed note: fits a JupyterLab output area beside the file browser


def stop_all() -> int:
    """Stop every run still going in this process; returns how many there were."""
    with _live_lock:
        runs = list(_live)
    for r in runs:
        r.stop()
    return len(runs)


atexit.register(stop_all)


class Run:
    """One experiment against a real broker; use ``with`` or call ``stop()``."""

    def __init__(self, callback: Callback | str, scenario: Scenario, broker: Broker | None = None,
                 processes: bool = False, topology: Topology | None = None) -> None:
        """``processes=True``: each worker is an OS process running ``callback``, a ``"module:function"``
        path or a function defined in an importable module (see ``engine.processes``)."""
        if processes:
            from .processes import callback_path

            callback = callback_path(callback)
        elif isinstance(callback, str) and ":" in callback:  # "module:function", run in threads
            from .processes import resolve_callback

            callback = resolve_callback(callback)
        if not callable(callback) and not processes:
            raise LabError(f"callback={callback!r} is not a function; pass your def callback(ch, method, "
                           "properties, body).")
        self.scenario = scenario.validate()
        settings.time_scale()  # a bad WORKQUEUE_LAB_TIME_SCALE: one sentence now, not a crash in every worker
        self.callback = callback
        self.processes = processes
        self.broker = broker or find_broker()
        # the scenario's queue/durable/queue_arguments describe the default: one work queue
        self.topology = topology or single_queue(scenario.queue, scenario.durable, scenario.queue_arguments)
        self.queue = self.topology.name(self.topology.work_queue.name)
        self._taps: TapObserver | None = None
        self.log = ev.EventLog()
        self.state = RunState()  # what the log says so far; wait() feeds it
        self.run_id = uuid.uuid4().hex[:8]  # in every message_id: a leftover from another run is not ours
        self.waiting_before = 0
        self.workers: list[WorkerThread | WorkerProcess] = []
        self.samples: list[tuple[float, int, int | None]] = []  # (t, ready, unacked)
        self._task_ids: dict[str, int] = {}
        self._body_ids: dict[bytes, int] = {}
        self._next_id = 1
        self._stopped = False
        self._lost_checked = False
        self.timed_out = False
        self.task_of_message = TaskIds(self.run_id, self._task_ids, self._body_ids)  # (properties, body) -> id

    # --- life cycle -----------------------------------------------------------------
    def start(self) -> Run:
        """Declare the queue and start the workers one by one, each registered before the next."""
        stop_all()
        self.declare()
        with _live_lock:
            _live.add(self)
        try:
            if self.processes:
                self._start_processes()
            else:
                self._start_threads()
        except BaseException:
            self.stop()
            raise
        return self

    def _context(self, spec: WorkerSpec) -> WorkerContext:
        return WorkerContext(connect=functools.partial(self.broker.connect, heartbeat=30), queue=self.queue,
                             prefetch=self.scenario.prefetch if spec.prefetch is None else spec.prefetch,
                             auto_ack=self.scenario.ack == "auto", task_of_message=self.task_of_message,
                             sink=self.log, confirms=self.scenario.confirms)

    def _start_threads(self) -> None:
        for i, spec in enumerate(self.scenario.workers, start=1):
            w = WorkerThread(self._context(spec), i, self.callback, spec)
            self.workers.append(w)
            w.start()
            self._check_started(w, 15)

    def _start_processes(self) -> None:
        """Start every process at once (interpreters start in parallel), then let them consume in order."""
        from .processes import START_TIMEOUT, WorkerProcess, process_config

        bodies = dict(self._body_ids)  # for copies republished without a message_id; a snapshot: no shared memory
        for i, b in enumerate(self.scenario.tasks, start=self._next_id):  # the ids publish() will give them
            bodies.setdefault(b.encode() if isinstance(b, str) else b, i)
        for i, spec in enumerate(self.scenario.workers, start=1):
            ctx = self._context(spec)
            config = process_config([self.broker.url], self.queue, ctx.prefetch, ctx.auto_ack, self.run_id,
                                    bodies, self.callback, spec, self.log.t0)
            self.workers.append(WorkerProcess(i, config, self.log))
            self.workers[-1].start()
        for w in self.workers:
            w.release()
            self._check_started(w, START_TIMEOUT)

    def _check_started(self, w: WorkerThread | WorkerProcess, timeout: float) -> None:
        if not w.ready.wait(timeout) or w.error:
            raise LabError(f"Worker {w.worker_id} could not start consuming from '{self.queue}': "
                           f"{w.error or f'no answer within {timeout:g} s'}; check the broker and the queue.")

    def signal(self, worker_id: int, sig: int = signals.SIGTERM) -> None:
        """Send ``sig`` to worker process ``worker_id`` (1-based): SIGTERM lets it finish its task and leave,
        SIGKILL kills it mid-task (the broker redelivers the task).  The events show what followed."""
        from .processes import WorkerProcess

        w = self.workers[worker_id - 1] if 0 < worker_id <= len(self.workers) else None
        if not isinstance(w, WorkerProcess):
            raise LabError(f"Worker {worker_id} is not a worker process of this run; start the run with "
                           "processes=True and pass a worker id from 1 to the number of workers.")
        w.signal(sig)

    def kill(self, worker_id: int) -> None:
        """SIGKILL worker process ``worker_id``: it dies mid-task, as a process does on a power cut."""
        self.signal(worker_id, signals.SIGKILL)

    # Messages the caller put in the queue for this run before starting it (the throughput sweep fills the
    # queue first, so its workers start on a backlog): declare() notes only messages beyond these.
    expect_waiting = 0

    def declare(self) -> None:
        """Declare the run's topology (by default the lesson's queue: durable, no arguments), then tap its
        dead-letter, retry and parking queues so what reaches them is recorded."""
        with self.broker.channel() as ch:
            counts = self.topology.declare(ch)
        for kind, name in self.topology.names():
            self.broker.remember(kind, name)
        self.waiting_before = counts[self.queue]
        strangers = self.waiting_before - self.expect_waiting
        if strangers > 0 and self._next_id == 1:  # not ours: say what the workers will also take
            besides = f", besides the {self.expect_waiting} this run put there" if self.expect_waiting else ""
            # Wrapped at words here: JupyterLab breaks a long output line anywhere, even mid-word.
            print(textwrap.fill(
                f"Note: {strangers} message(s) were already waiting in '{self.queue}' (an earlier run or another "
                f"program){besides}; this run's workers take them too. lab.reset() empties the queue.",
                width=NOTE_WIDTH, break_long_words=False, break_on_hyphens=False))
        self._start_taps()

    def _start_taps(self) -> None:
        taps = self.topology.taps()
        if not taps or self._taps is not None:
            return
        self._taps = TapObserver(lambda: self.broker.connect(heartbeat=30), self.log, self.task_of_message, taps)
        self._taps.start()
        if not self._taps.ready.wait(15) or self._taps.error:
            error = self._taps.error or "no answer within 15 s"
            self._taps.stop()
            raise LabError(f"Could not watch the dead-letter/retry/parking queues of '{self.queue}': {error}; "
                           "check the broker.")

    def publish(self, bodies: Sequence[str | bytes] | None = None, persistent: bool | None = None) -> list[int]:
        """Publish tasks (default: the scenario's); returns their task ids."""
        bodies = self.scenario.tasks if bodies is None else tuple(bodies)
        for offset, body in enumerate(bodies):
            task_id = self._next_id + offset
            self._task_ids[f"{self.run_id}-{task_id}"] = task_id
            self._body_ids.setdefault(body.encode() if isinstance(body, str) else body, task_id)
        ids = publish(self.broker, self.queue, bodies, self.log, first_id=self._next_id, id_prefix=self.run_id,
                      persistent=self.scenario.persistent if persistent is None else persistent)
        self._next_id += len(ids)
        return ids

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every worker, close its connection (unacked messages go back to the queue), join.

        A worker process gets SIGTERM, and SIGKILL if it is still there after ``timeout``."""
        for w in self.workers:
            w.stop()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        if self._taps is not None:  # after the workers: their last rejections still reach the taps
            self._taps.stop(max(0.5, deadline - time.monotonic()))
        self._stopped = True
        with _live_lock:
            _live.discard(self)

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- waiting ----------------------------------------------------------------------
    poll_interval = 0.02  # seconds between looks at the log while waiting

    def wait(self, timeout: float | None = None, progress: bool | RunDisplay = True,
             until: Callable[[list[ev.Event]], bool] | None = None) -> RunResult:
        """Wait until every task is finished (or nothing more can happen), then stop.

        ``progress``: show a progress line (True), nothing (False), or drive your own display
        (an object with ``update(state)`` and ``close(state, note)``, as the panel does).
        ``until(events)``: stop as soon as it is true of the log, even if tasks are still open (a task
        that loops, a learner's callback that stalls).
        An interrupt (Stop button, Ctrl-C) stops the workers before it propagates.
        """
        timeout = self.scenario.timeout if timeout is None else timeout
        display = _progress(len(self._task_ids), progress, self.state)
        deadline = time.monotonic() + timeout
        note = ""
        try:
            # Poll, not wake per event: waking on every event would compete with the workers for the GIL.
            # Each look reads only the events recorded since the last one (RunState), so it is cheap.
            while not self._finished() and not (until is not None and until(self.log.events)):
                if time.monotonic() > deadline:
                    self.timed_out = True
                    note = f"timed out after {timeout:g} s"
                    self._raise_if_broker_gone(timeout)
                    break
                time.sleep(self.poll_interval)
                if display:
                    display.update(self.state)
        except KeyboardInterrupt:
            note = "interrupted"
            self.stop()
            raise
        except BaseException:
            note = note or "stopped by an error"
            self.stop()
            raise
        finally:
            if display:
                display.close(self.state.feed(self.log), note)
        self.stop()
        self._record_lost()
        return self.result()

    def _raise_if_broker_gone(self, timeout: float) -> None:
        """At the timeout: if RabbitMQ is unreachable, stop and say so in one sentence (the result rides along)."""
        try:
            self.broker.connect().close()
            return
        except Exception as exc:  # unreachable (a LabError) or closed while we looked: either way it is gone
            logger.debug("broker unreachable at the timeout: %s", exc)
        self.stop()
        result = self.result()
        missing = len(set(self._task_ids.values()) - result.completed)
        error = BrokerUnavailable(
            f"RabbitMQ at {self.broker.masked_url} stopped answering and was still unreachable when the run "
            f"timed out after {timeout:g} s; {missing} of {len(self._task_ids)} tasks are not done (a durable "
            "queue keeps its persistent messages), so start RabbitMQ again and re-run.")
        error.result = result
        raise error

    def watch_queue(self, every: float = 0.1) -> contextlib.AbstractContextManager[list]:
        """With-block: sample the queue's (ready, unacked) every ``every`` seconds into ``self.samples``
        (live counts; see ``engine.queue_watch``)."""
        return queue_watch.watch(self.broker, self.queue, self.log.t0, self.samples, every)

    def sample(self) -> QueueStats:
        """Record the queue's ready/unacked counts now (for plots of the queue over time)."""
        return queue_watch.sample(self.broker, self.queue, self.log.t0, self.samples)

    def _finished(self) -> bool:
        return ending.finished(self)

    def _record_lost(self) -> None:
        if not self._lost_checked:
            self._lost_checked = True
            ending.record_lost(self)

    def result(self) -> RunResult:
        return RunResult(self.log.events, self.scenario, {w.worker_id: w.output.text() for w in self.workers},
                         list(self.samples), self.timed_out, self.queue, self.log.t0)


class RunDisplay(Protocol):
    """What ``Run.wait`` drives while it waits: the progress line, or the panel's bar."""

    def update(self, state: RunState) -> None: ...

    def close(self, state: RunState, note: str = "") -> None: ...


def _progress(total: int, progress: bool | RunDisplay, state: RunState) -> RunDisplay | None:
    if progress is False or progress is None or total == 0:
        return None
    if progress is not True:
        return progress
    try:
        from ..views.progress import RunProgress

        return RunProgress(total, state=state)
    except Exception as exc:  # progress is a nicety; never let it break a run
        logger.debug("no progress display: %s", exc)
        return None


def run(callback: Callback | str, tasks: Sequence[str | bytes] | None = None,
        workers: int | Sequence[WorkerSpec | float] = 2, prefetch: int = 1, ack: str = "manual",
        queue: str = TASK_QUEUE, timeout: float = 120.0, progress: bool = True,
        scenario: Scenario | None = None, broker: Broker | None = None,
        topology: Topology | None = None, processes: bool = False, **scenario_fields) -> RunResult:
    """Run ``callback`` in worker threads (or, ``processes=True``, worker processes) on the tasks and
    return what was recorded.

    Every consumer is registered before the first task is published, so
    round-robin outcomes are deterministic.  ``topology``: the queues to declare and consume
    from (default: the lesson's ``task_queue``); the run waits while its retry queues hold messages.
    """
    if scenario is None:
        check_prefetch(prefetch)
        scenario = Scenario(tasks=tuple(tasks) if tasks is not None else Scenario().tasks,
                            workers=make_workers(workers), prefetch=prefetch, ack=ack, queue=queue,
                            timeout=timeout, **scenario_fields)
    with Run(callback, scenario, broker, processes, topology) as r:
        r.publish()
        return r.wait(progress=progress)


def start(callback: Callback | str, workers: int | Sequence[WorkerSpec | float] = 2, prefetch: int = 1,
          ack: str = "manual", queue: str = TASK_QUEUE, broker: Broker | None = None,
          topology: Topology | None = None, processes: bool = False, **scenario_fields) -> Run:
    """Start workers (threads, or processes) and return the live Run (publish, sample and stop it yourself)."""
    check_prefetch(prefetch)
    scenario = Scenario(workers=make_workers(workers), prefetch=prefetch, ack=ack, queue=queue,
                        **scenario_fields)
    return Run(callback, scenario, broker, processes, topology).start()


def live_threads() -> int:
    """Worker threads of the lab still alive in this process."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("workqueue-lab worker"))
