"""Sinks: where a worker's events go.

A worker records through a *sink*: anything with ``record()`` and ``note()`` as ``EventLog`` has.

* **Threads** record straight into the run's in-memory ``EventLog`` (it is a sink): nothing to
  copy, and the per-message ``note()`` stays the cheapest path.
* **Worker processes** record into a ``PipeSink``: one JSON line per event, written to a pipe whose
  write end the child inherits (``subprocess.Popen(pass_fds=...)``).  In the notebook's process one
  reader thread per child feeds the lines to an ``EventReceiver``, which appends them to the run's
  ``EventLog``, so one log and one timeline hold threads and processes alike.

Why a pipe, rather than a JSON-lines file or a lab events queue on the broker: it needs no broker
(an events queue would share the broker the experiment is stressing, and be lost when a lesson
restarts or kills it) and no polling of a file; the reader sees EOF the moment a process dies,
however it died (SIGKILL included), which is exactly when the lab must record a crash; and the
kernel cleans it up with the processes.  Only the process's worker thread writes, one ``os.write`` per
line, so lines never interleave; ``detail`` is bounded so a line stays small.  Timestamps:
``CLOCK_MONOTONIC`` is system-wide on Linux, so a child stamps ``time.monotonic() - t0`` with the
parent log's ``t0`` and both clocks agree.

This module imports nothing of the lab outside ``record/`` and no pika.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from .events import Event, EventLog

logger = logging.getLogger(__name__)

MAX_DETAIL = 1000  # characters: a runaway detail must not flood the pipe


class Sink(Protocol):
    """Where a worker records (``EventLog`` is one)."""

    def record(self, kind: str, worker: int | None = None, task: int | None = None, tag: int | None = None,
               redelivered: bool = False, requeue: bool | None = None, detail: str = "") -> object: ...

    def note(self, kind: str, worker: int | None = None, task: int | None = None, tag: int | None = None,
             redelivered: bool = False, requeue: bool | None = None, detail: str = "") -> None: ...


class PipeSink:
    """The write end, in a worker process: each event is one JSON line on the pipe ``fd``.

    ``on_broken`` is called once if the reader is gone (the notebook's process died).
    """

    def __init__(self, fd: int, t0: float, on_broken: Callable[[], None] | None = None) -> None:
        self.fd = fd
        self.t0 = t0
        self.broken = False
        self._on_broken = on_broken

    def record(self, kind: str, worker: int | None = None, task: int | None = None, tag: int | None = None,
               redelivered: bool = False, requeue: bool | None = None, detail: str = "") -> None:
        self._send([time.monotonic() - self.t0, kind, worker, task, tag, redelivered, requeue,
                    detail[:MAX_DETAIL]])

    note = record  # no cheaper path here: the line is written either way

    def goodbye(self, detail: str | None) -> None:
        """The last line: the process is leaving on purpose (``detail`` for its STOP event; None: no STOP)."""
        self._send({"bye": None if detail is None else detail[:MAX_DETAIL]})

    def _send(self, item: object) -> None:
        if self.broken:
            return
        line = json.dumps(item, separators=(",", ":")).encode() + b"\n"
        try:
            os.write(self.fd, line)
        except OSError:  # EPIPE: nobody reads any more (the notebook's process is gone)
            logger.debug("event pipe closed; the reader is gone", exc_info=True)
            self.broken = True
            if self._on_broken is not None:
                self._on_broken()


class EventReceiver:
    """The read end, in the notebook's process: turns the bytes of one pipe into events of ``log``.

    ``feed()`` takes whatever ``os.read`` returned and appends every complete event line; it returns
    the events it appended.  A goodbye line sets ``said_goodbye`` and ``goodbye``.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.said_goodbye = False
        self.goodbye: str | None = None
        self._partial = b""

    def feed(self, chunk: bytes) -> list[Event]:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events = []
        for line in lines:
            item = self._decode(line)
            if isinstance(item, dict):
                self.said_goodbye, self.goodbye = True, item.get("bye")
            elif item is not None:
                events.append(item)
        if events:
            self.log.extend(events)
        return events

    @staticmethod
    def _decode(line: bytes) -> Event | dict | None:
        try:
            item = json.loads(line)
            return item if isinstance(item, dict) else Event(*item)
        except (ValueError, TypeError):  # not ours (a stray write on the fd): keep reading
            logger.debug("ignored a malformed event line %r", line[:200], exc_info=True)
            return None
