"""Orchestration only: declare, start workers, wait until every consumer is registered,
publish, wait for completion or timeout, stop cleanly.

The module keeps a registry of live runs: starting a run stops the previous
ones (so re-running a cell leaves no threads or connections behind), and an
interrupt or the kernel's exit stops them too.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .. import settings
from ..broker.handle import Broker, QueueStats, find_broker, in_node
from ..errors import BrokerUnavailable, LabError
from ..record import events as ev
from ..record.state import FINAL, PENDING, RunState
from .producer import publish
from .scenario import Scenario, WorkerSpec, check_prefetch, make_workers
from .workers import Callback, WorkerThread

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_live: weakref.WeakSet[Run] = weakref.WeakSet()
_live_lock = threading.Lock()


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

    def __init__(self, callback: Callback, scenario: Scenario, broker: Broker | None = None,
                 consumer_arguments: dict | None = None) -> None:
        if not callable(callback):
            raise LabError(f"callback={callback!r} is not a function; pass your def callback(ch, method, "
                           "properties, body).")
        self.scenario = scenario.validate()
        settings.time_scale()  # a bad WORKQUEUE_LAB_TIME_SCALE: one sentence now, not a crash in every worker
        self.callback = callback
        self.broker = broker or find_broker()
        self.queue = settings.name(scenario.queue)
        self.consumer_arguments = consumer_arguments
        self.log = ev.EventLog()
        self.state = RunState()  # what the log says so far; wait() feeds it
        self.run_id = uuid.uuid4().hex[:8]  # in every message_id: a leftover from another run is not ours
        self.waiting_before = 0
        self.workers: list[WorkerThread] = []
        self.samples: list[tuple[float, int, int | None]] = []  # (t, ready, unacked)
        self._task_ids: dict[str, int] = {}
        self._body_ids: dict[bytes, int] = {}
        self._next_id = 1
        self._stopped = False
        self._lost_checked = False
        self.timed_out = False

    # --- the task ids the lab follows -------------------------------------------------
    def task_of_message(self, properties, body: bytes) -> int | None:
        mid = getattr(properties, "message_id", None)
        if mid is not None:  # ours, or a leftover of another run (None: not this run's task)
            return self._task_ids.get(mid)
        return self._body_ids.get(body)  # republished without properties (a retry): known by its body

    # --- life cycle -----------------------------------------------------------------
    def start(self) -> Run:
        """Declare the queue and start the workers one by one, each registered before the next."""
        stop_all()
        self.declare()
        with _live_lock:
            _live.add(self)
        try:
            for i, spec in enumerate(self.scenario.workers, start=1):
                prefetch = self.scenario.prefetch if spec.prefetch is None else spec.prefetch
                w = WorkerThread(self, i, self.callback, spec, prefetch, self.scenario.ack == "auto")
                self.workers.append(w)
                w.start()
                if not w.ready.wait(15) or w.error:
                    raise LabError(f"Worker {i} could not start consuming from '{self.queue}': "
                                   f"{w.error or 'no answer within 15 s'}; check the broker and the queue.")
        except BaseException:
            self.stop()
            raise
        return self

    def declare(self) -> None:
        """Declare the run's queue as the scenario says (the lesson's: durable, no arguments)."""
        import pika.exceptions as pe

        try:
            with self.broker.channel() as ch:
                ok = ch.queue_declare(queue=self.queue, durable=self.scenario.durable,
                                      arguments=self.scenario.queue_arguments)
        except pe.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:
                raise LabError(f"Queue '{self.queue}' already exists with other settings ({exc.reply_text}); "
                               "delete it with lab.reset() or use another queue name.") from None
            raise LabError(f"RabbitMQ refused to declare '{self.queue}': {exc.reply_text}.") from None
        self.broker.remember("queue", self.queue)
        self.waiting_before = ok.method.message_count
        if self.waiting_before and self._next_id == 1:  # not ours: say what the workers will also take
            print(f"Note: {self.waiting_before} message(s) were already waiting in '{self.queue}' (an earlier "
                  "run or another program); this run's workers take them too. lab.reset() empties the queue.")

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
        """Stop every worker, close its connection (unacked messages go back to the queue), join."""
        for w in self.workers:
            w.stop_event.set()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        self._stopped = True
        with _live_lock:
            _live.discard(self)

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- waiting ----------------------------------------------------------------------
    poll_interval = 0.02  # seconds between looks at the log while waiting

    def wait(self, timeout: float | None = None, progress: bool | RunDisplay = True) -> RunResult:
        """Wait until every task is finished (or nothing more can happen), then stop.

        ``progress``: show a progress line (True), nothing (False), or drive your own display
        (an object with ``update(state)`` and ``close(state, note)``, as the panel does).
        An interrupt (Stop button, Ctrl-C) stops the workers before it propagates.
        """
        timeout = self.scenario.timeout if timeout is None else timeout
        display = _progress(len(self._task_ids), progress, self.state)
        deadline = time.monotonic() + timeout
        note = ""
        try:
            # Poll, not wake per event: waking on every event would compete with the workers for the GIL.
            # Each look reads only the events recorded since the last one (RunState), so it is cheap.
            while not self._finished():
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

    @contextlib.contextmanager
    def watch_queue(self, every: float = 0.1) -> Iterator[list]:
        """Sample the queue's (ready, unacked) every ``every`` seconds into ``self.samples``.

        Live counts, without one ``rabbitmqctl`` start per sample: on a node the lab
        controls, one eval samples inside the broker until the block ends (its samples
        are added then); elsewhere ``sample()`` polls from a background thread.
        """
        import urllib.parse

        path = urllib.parse.urlsplit(self.broker.url).path
        vhost = urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"

        def erl_binary(text: str) -> str:
            return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"/utf8>>'

        def program(started_flag: str, stop_flag: str) -> str:
            return (
                f'Q = rabbit_misc:r({erl_binary(vhost)}, queue, {erl_binary(self.queue)}), '
                'Sample = fun() -> case rabbit_amqqueue:lookup(Q) of '
                '{ok, Q1} -> [{_, R}, {_, U}] = rabbit_amqqueue:info(Q1, [messages_ready, messages_unacknowledged]), '
                'io:format("~b ~b ~b~n", [erlang:system_time(millisecond), R, U]); _ -> ok end end, '
                f'Loop = fun L(0) -> ok; L(N) -> Sample(), case filelib:is_regular("{stop_flag}") of '
                f'true -> ok; false -> timer:sleep({max(10, int(every * 1000))}), L(N - 1) end end, '
                f'file:write_file("{started_flag}", <<"started">>), Loop({int(120 / every)}).'
            )

        offset = time.monotonic() - time.time() - self.log.t0  # the broker's wall clock -> the run's clock
        stopping = threading.Event()

        def poll() -> None:
            while not stopping.is_set():
                self.sample()
                stopping.wait(max(every, 0.5))

        with contextlib.ExitStack() as stack:
            started, lines = False, []
            if self.broker.kind in ("local", "private"):
                started, lines = stack.enter_context(in_node(self.broker, program, "queue watch", 20))
            poller = None
            if not started:  # no control over the node, or the CLI failed: poll from here
                poller = threading.Thread(target=poll, name="workqueue-lab queue watch", daemon=True)
                poller.start()
            try:
                yield self.samples
            finally:
                stopping.set()
                if poller is not None:
                    poller.join(10)
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                self.samples.append((int(parts[0]) / 1000 + offset, int(parts[1]), int(parts[2])))
        self.samples.sort()

    def sample(self) -> QueueStats:
        """Record the queue's ready/unacked counts now (for plots of the queue over time)."""
        stats = self.broker.queue_stats(self.queue)
        self.samples.append((time.monotonic() - self.log.t0, stats.ready, stats.unacked))
        return stats

    def _finished(self) -> bool:
        """Every task settled, every worker dead, or quiet with nothing running and nothing ready."""
        state = self.state.feed(self.log)
        if state.settled(len(self._task_ids)):
            return True
        if all(w.dead for w in self.workers):
            return True
        # Quiet for a while: nothing running, nothing ready -> whatever is missing will not come.
        if not state.seen or time.monotonic() - self.log.t0 - state.last_t < self._quiet_period():
            return False
        if state.open_attempts:  # a crash or reconnect closes attempts too
            return False
        try:
            with self.broker.channel() as ch:
                return not ch.queue_declare(queue=self.queue, passive=True).method.message_count
        except Exception as exc:  # cannot look: keep waiting (the timeout still ends it)
            logger.debug("could not read %s's message count: %s", self.queue, exc)
            return False

    def _quiet_period(self) -> float:
        return max(0.5, 2 * settings.time_scale())

    def _record_lost(self) -> None:
        """After the workers stopped: record LOST for each task not done or dropped that is in no queue.

        Only when the queue is empty and nobody else consumes from it can the lab tell: otherwise
        the missing tasks may still be waiting (or be another program's), and nothing is recorded.
        """
        if self._lost_checked:
            return
        self._lost_checked = True
        states = self.state.feed(self.log).states
        missing = [t for t in sorted(set(self._task_ids.values())) if states.get(t, PENDING) not in FINAL]
        if not missing:
            return
        try:
            with self.broker.channel() as ch:
                ok = ch.queue_declare(queue=self.queue, passive=True).method
        except Exception as exc:  # the broker is gone or the queue deleted: the lab cannot tell
            logger.debug("not recording lost tasks: %s", exc)
            return
        if ok.message_count or ok.consumer_count:
            return
        for task in missing:
            self.log.record(ev.LOST, None, task, detail="published, never completed, in no queue")

    def result(self) -> RunResult:
        return RunResult(self.log.events, self.scenario, {w.worker_id: w.output.text() for w in self.workers},
                         list(self.samples), self.timed_out, self.queue)

    # --- inspection ---------------------------------------------------------------------
    def thread_count(self) -> int:
        return sum(w.is_alive() for w in self.workers)


@dataclass
class RunResult:
    """What a run recorded: every check and view reads ``events``."""

    events: list[ev.Event]
    scenario: Scenario
    outputs: dict[int, str] = field(default_factory=dict)
    samples: list[tuple[float, int, int | None]] = field(default_factory=list)
    timed_out: bool = False
    queue: str = ""

    def tasks_by_worker(self) -> dict[int, list[int]]:
        """Which tasks each worker completed, e.g. {1: [1, 3], 2: [2, 4]}."""
        return ev.tasks_by_worker(self.events)

    def attempts(self) -> list[ev.Attempt]:
        return ev.attempts(self.events)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)

    def of_kind(self, *kinds: str) -> list[ev.Event]:
        return [e for e in self.events if e.kind in kinds]

    @property
    def published(self) -> list[int]:
        return ev.published(self.events)

    @property
    def completed(self) -> set[int]:
        return set(ev.completed(self.events))

    @property
    def lost(self) -> list[int]:
        return [e.task for e in self.events if e.kind == ev.LOST]

    @property
    def duplicates(self) -> int:
        """Completions beyond the first per task (a crash after work, before the ack)."""
        return sum(n - 1 for n in ev.completed(self.events).values())

    @property
    def redelivered(self) -> list[int]:
        return [e.task for e in self.events if e.kind == ev.DELIVER and e.redelivered]

    def makespan(self) -> float:
        return ev.makespan(self.events)

    def timeline(self, title: str | None = None) -> Figure:
        from ..views.timeline import plot_timeline

        return plot_timeline(self.events, title=title)

    def table(self):
        from ..views.tables import summary_table

        return summary_table(self.events)

    def show_output(self) -> None:
        """Print what each worker printed, from the main thread, worker by worker."""
        for worker, text in sorted(self.outputs.items()):
            print(f"--- worker {worker} ---")
            print(text or "(nothing printed)")


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


def run(callback: Callback, tasks: Sequence[str | bytes] | None = None,
        workers: int | Sequence[WorkerSpec | float] = 2, prefetch: int = 1, ack: str = "manual",
        queue: str = "task_queue", timeout: float = 120.0, progress: bool = True,
        scenario: Scenario | None = None, broker: Broker | None = None,
        consumer_arguments: dict | None = None, **scenario_fields) -> RunResult:
    """Run ``callback`` in worker threads on the tasks and return what was recorded.

    Every consumer is registered before the first task is published, so
    round-robin outcomes are deterministic.
    """
    if scenario is None:
        check_prefetch(prefetch)
        scenario = Scenario(tasks=tuple(tasks) if tasks is not None else Scenario().tasks,
                            workers=make_workers(workers), prefetch=prefetch, ack=ack, queue=queue,
                            timeout=timeout, **scenario_fields)
    with Run(callback, scenario, broker, consumer_arguments) as r:
        r.publish()
        return r.wait(progress=progress)


def start(callback: Callback, workers: int | Sequence[WorkerSpec | float] = 2, prefetch: int = 1,
          ack: str = "manual", queue: str = "task_queue", broker: Broker | None = None,
          **scenario_fields) -> Run:
    """Start workers and return the live Run (publish, sample and stop it yourself)."""
    check_prefetch(prefetch)
    scenario = Scenario(workers=make_workers(workers), prefetch=prefetch, ack=ack, queue=queue,
                        **scenario_fields)
    return Run(callback, scenario, broker).start()


def live_threads() -> int:
    """Worker threads of the lab still alive in this process."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("workqueue-lab worker"))
