"""The lesson's programs (task_worker.py, worker.py) run by a notebook as real OS processes.

A notebook starts them with ``Programs``, signals or kills them by PID, and reads back what each
printed.  ``parse_output`` turns task_worker.py's lines into the lab's events, so the runs of
several processes draw as one timeline with ``lab.plot_timeline`` and feed the self-checks.
Nothing here prints or talks to a broker; every process is stopped by PID in ``stop_all``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from ..record import events as ev

ROOT = Path(__file__).resolve().parents[2]  # the checkout: task_worker.py and worker.py live here

_LINE = re.compile(r"^(?P<clock>\d\d:\d\d:\d\d\.\d{3})\s+\[(?P<mark>.)\] (?P<text>.*)$")
_TASK = re.compile(r"^Task (?P<id>\S+) (?P<what>received|done, acked|failed|done but not acked|arrived after \w+)"
                   r"(?: \(redelivered=(?P<redelivered>True|False)\))?(?P<rest>.*)$")
_DEAD = re.compile(r"nack requeue=False -> (?P<into>\S+)$")


def clock_seconds(clock: str) -> float:
    """'22:13:27.123' -> seconds since midnight."""
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass
class Ended:
    """How a process ended, as the notebook saw it: exit code and, if it was killed, when."""

    code: int | None = None
    killed_at: float | None = None  # seconds since midnight (the clock of the printed lines)


@dataclass
class _Parse:
    worker: int
    origin: float
    out: list = field(default_factory=list)
    open_: dict = field(default_factory=dict)  # task id -> tag
    tags: int = 0

    def t(self, seconds: float) -> float:
        delta = seconds - self.origin
        return delta + 86400 if delta < -43200 else delta  # the clock passed midnight

    def add(self, t: float, kind: str, task=None, **kw) -> None:
        tag = self.open_.get(task) if kind != ev.DELIVER else None
        self.out.append(ev.Event(self.t(t), kind, self.worker, task, tag, **kw))

    def end_open(self, t: float, kind: str, detail: str) -> None:
        for task, tag in list(self.open_.items()):
            self.out.append(ev.Event(self.t(t), kind, self.worker, task, tag, detail=detail))
        self.open_.clear()


def _task_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else None


def parse_output(text: str, worker: int, origin: float, ended: Ended | None = None) -> list[ev.Event]:
    """task_worker.py's printed lines -> events of one worker (times in seconds after ``origin``,
    seconds since midnight).  A failed task also yields its DEAD_LETTER arrival (worker None)."""
    p = _Parse(worker, origin)
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t, body = clock_seconds(m["clock"]), m["text"]
        task = _TASK.match(body)
        if task:
            _task_line(p, t, task)
        elif body.startswith("Waiting for tasks"):
            p.add(t, ev.READY, detail=body.split("(", 1)[-1].split(")", 1)[0])
        elif body.startswith("Connection lost"):
            p.end_open(t, ev.TIMEOUT, "the broker closed the connection (missed heartbeats)")
            p.add(t, ev.STOP, detail="connection lost, exit 1")
        elif body.startswith("consume() returned with the consumer still registered"):
            p.add(t, ev.STOP, detail="consumer not cancelled")
        elif body.startswith("Stopped cleanly"):
            p.add(t, ev.STOP, detail="finished its task, exit 0")
    if ended is not None and ended.killed_at is not None:
        p.end_open(ended.killed_at, ev.CRASH, "SIGKILL")
    return p.out


def _task_line(p: _Parse, t: float, m: re.Match) -> None:
    task, what = _task_id(m["id"]), m["what"]
    if what == "received":
        p.tags += 1
        p.open_[task] = p.tags
        p.out.append(ev.Event(p.t(t), ev.DELIVER, p.worker, task, p.tags, redelivered=m["redelivered"] == "True"))
    elif what.startswith("arrived after"):  # handed back untouched once the worker decided to stop
        p.tags += 1
        p.out.append(ev.Event(p.t(t), ev.DELIVER, p.worker, task, p.tags))
        p.out.append(ev.Event(p.t(t), ev.REJECT, p.worker, task, p.tags, requeue=True, detail=what))
    elif what == "done, acked":
        p.add(t, ev.ACK, task)
        p.open_.pop(task, None)
    elif what == "failed":
        reason = m["rest"].lstrip(": ").split("; nack", 1)[0]
        p.add(t, ev.NACK, task, requeue=False, detail=reason)
        p.open_.pop(task, None)
        dead = _DEAD.search(m["rest"])
        if dead:
            p.out.append(ev.Event(p.t(t), ev.DEAD_LETTER, None, task,
                                  detail=f"reason=rejected count=1 into={dead['into']} why={reason}"))


class Programs:
    """Programs of the lesson run as OS processes; worker numbers start at 1, in start order.

    ``with Programs() as progs: progs.start(); progs.signal(1, signal.SIGTERM); ...`` -- leaving the
    block (or ``stop_all()``) kills by PID whatever is still running.
    """

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="workqueue-lab-programs-"))
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
            "PYTHONPATH")])), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.ended: list[Ended] = []
        self.origin = clock_seconds(_clock())

    def start(self, *args: str, program: str = "task_worker.py", ready: str = "Waiting for",
              timeout: float = 30.0) -> int:
        """Start ``python <program> <args>`` in the checkout; wait until it prints ``ready``; its number."""
        return self.start_many(1, *args, program=program, ready=ready, timeout=timeout)[0]

    def start_many(self, count: int, *args: str, program: str = "task_worker.py", ready: str = "Waiting for",
                   timeout: float = 30.0) -> list[int]:
        """Start ``count`` copies at once (interpreters start in parallel); wait until each is ready."""
        numbers = [self._launch(program, args) for _ in range(count)]
        deadline = time.monotonic() + timeout
        for number in numbers:
            while ready not in self.text(number):
                if self.procs[number - 1].poll() is not None or time.monotonic() > deadline:
                    tail = self.text(number).strip().splitlines()[-1:] or ["(nothing)"]
                    self.stop_all()
                    raise LabError(f"{program} did not start (it printed {tail[0]!r}); run it in a terminal "
                                   "to see why.")
                time.sleep(0.05)
        return numbers

    def _launch(self, program: str, args: tuple[str, ...]) -> int:
        log = self.dir / f"worker{len(self.procs) + 1}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, program, *args], cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        self.logs.append(log)
        self.ended.append(Ended())
        return len(self.procs)

    def pid(self, number: int) -> int:
        return self.procs[number - 1].pid

    def text(self, number: int) -> str:
        return self.logs[number - 1].read_text()

    def open_task(self, number: int) -> int | None:
        """The task this worker has received and not finished, judging by what it printed."""
        open_ = [e.task for e in ev.attempts(parse_output(self.text(number), number, self.origin))
                 if e.outcome == "open"]
        return open_[-1] if open_ else None

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "the workers") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise LabError(f"Waited {timeout:.0f} s for {what}; look at progs.text(n) to see what they printed.")
            time.sleep(0.05)

    def wait_busy(self, number: int, timeout: float = 30.0) -> int:
        """Wait until worker ``number`` is in the middle of a task; return that task's id."""
        proc = self.procs[number - 1]
        self.wait_for(lambda: self.open_task(number) is not None or proc.poll() is not None, timeout,
                      f"worker {number} to take a task")
        task = self.open_task(number)
        if task is None:
            raise LabError(f"Worker {number} exited (code {proc.returncode}) before it took a task; "
                           f"progs.text({number}) shows what it printed.")
        return task

    def signal(self, number: int, sig: int = signal.SIGTERM) -> None:
        self.procs[number - 1].send_signal(sig)

    def kill(self, number: int) -> None:
        """SIGKILL: the process dies at once, mid-task, without a word."""
        self.ended[number - 1].killed_at = clock_seconds(_clock())
        self.procs[number - 1].kill()
        self.procs[number - 1].wait(10)

    def wait(self, number: int, timeout: float = 30.0) -> int:
        """Wait for the process to exit; its exit code (negative: killed by that signal)."""
        code = self.procs[number - 1].wait(timeout)
        self.ended[number - 1].code = code
        return code

    def alive(self) -> list[int]:
        """PIDs still running (empty after stop_all)."""
        return [p.pid for p in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        """Kill by PID every process still running, and reap them all."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for i, p in enumerate(self.procs):
            self.ended[i].code = p.wait(10)

    def events(self) -> list[ev.Event]:
        """Every worker's parsed output on one clock, in time order."""
        out = [e for i in range(1, len(self.procs) + 1)
               for e in parse_output(self.text(i), i, self.origin, self.ended[i - 1])]
        return sorted(out, key=lambda e: e.t)

    def __enter__(self) -> Programs:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def _clock() -> str:
    t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"
