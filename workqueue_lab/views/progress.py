"""A live progress line for a running experiment, updated from the main thread only.

In Jupyter it is one small HTML bar that updates in place
("12/40 tasks done · 1 redelivered · 3.2 s"); in a terminal a single ``\\r`` line
on stderr; when stderr is not a terminal (CI logs, pytest) only the final line.
Worker threads never print: they record events, and ``RunProgress`` (what
``Run.wait`` uses) or ``watch`` turns the event log into progress on the main
thread.  Reads only the event log and ``record.state``.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Mapping

from ..record import events as ev
from ..record.state import RunState

__all__ = ["Progress", "RunProgress", "watch", "in_jupyter"]


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (not a plain IPython terminal, not a script)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class _View:
    """What the display handle shows: HTML in JupyterLab, plain text anywhere else."""

    def __init__(self, text: str, fraction: float, state: str) -> None:
        self.text, self.fraction, self.state = text, fraction, state

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        color = {"running": "#4c78a8", "done": "#59a14f", "stopped": "#f28e2b"}[self.state]
        pct = round(100 * min(max(self.fraction, 0.0), 1.0), 1)
        return (
            '<div style="display:flex;align-items:center;gap:.7em;font-size:90%">'
            '<div style="width:14em;height:.75em;background:#e3e6ea;border-radius:.4em;overflow:hidden">'
            f'<div style="width:{pct}%;height:100%;background:{color}"></div></div>'
            f"<span>{html.escape(self.text)}</span></div>"
        )


class Progress:
    """A progress display for ``total`` tasks, e.g. ``Progress(40, "prefetch 1")``.

    Call ``update(done, {"redelivered": 1})`` as often as you like (it redraws at
    most 10 times a second) and ``close()`` once.  Not thread-safe: the main
    thread owns it.  Also a context manager that closes on exit.
    """

    min_interval = 0.1  # seconds between redraws

    def __init__(self, total: int, label: str = "", stream=None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.extra: dict = {}
        self.closed = False
        self._start = time.monotonic()
        self._last_draw = float("-inf")
        self._stream = sys.stderr if stream is None else stream
        self._handle = None
        self._tty = False
        if in_jupyter():
            from IPython.display import display

            self._handle = display(self._view("running"), display_id=True)
            self._last_draw = time.monotonic()
        else:
            isatty = getattr(self._stream, "isatty", None)
            self._tty = bool(isatty and isatty())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def text(self, note: str = "") -> str:
        """The progress line, e.g. ``'prefetch 1: 12/40 tasks done · 1 redelivered · 3.2 s'``.

        ``note`` goes first, e.g. ``'timed out after 10 s'``.
        """
        parts = [note] if note else []
        parts.append(f"{self.done}/{self.total} tasks done")
        parts += [f"{value} {name}" for name, value in self.extra.items() if value]
        parts.append(f"{self.elapsed:.1f} s")
        line = " · ".join(parts)
        return f"{self.label}: {line}" if self.label else line

    def _view(self, state: str, text: str | None = None) -> _View:
        fraction = self.done / self.total if self.total else 1.0
        return _View(self.text() if text is None else text, fraction, state)

    def update(self, done: int, extra: Mapping[str, int] | None = None, force: bool = False) -> None:
        """Record progress; redraw unless the last redraw was under ``min_interval`` ago."""
        if self.closed:
            return
        self.done = done
        if extra is not None:
            self.extra = dict(extra)
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        if self._handle is not None:
            self._handle.update(self._view("running"))
        elif self._tty:
            self._stream.write("\r" + self.text() + "\x1b[K")
            self._stream.flush()

    def close(self, final_text: str | None = None) -> None:
        """Show the final state once (``final_text`` replaces the usual line); later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        text = self.text() if final_text is None else final_text
        state = "done" if self.total and self.done >= self.total else "stopped"
        if self._handle is not None:
            self._handle.update(self._view(state, text))
        else:
            self._stream.write(("\r" if self._tty else "") + text + ("\x1b[K" if self._tty else "") + "\n")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RunProgress:
    """A ``Progress`` that shows a ``RunState``: ``update(...)`` as often as you like, ``close(...)`` once.

    Pass an ``EventLog`` (its new events are read into the state first) or the ``RunState`` a run
    already keeps up to date (what ``Run.wait`` does).  ``watch`` is the same for code that has only a log.
    """

    def __init__(self, total: int, label: str = "", state: RunState | None = None) -> None:
        self.progress = Progress(total, label)
        self.state = RunState() if state is None else state

    def _read(self, source: ev.EventLog | RunState | None) -> RunState:
        if isinstance(source, ev.EventLog):
            self.state.feed(source)
        return self.state

    def update(self, source: ev.EventLog | RunState, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.progress._last_draw < self.progress.min_interval:
            return  # skip even reading the log: nothing would be drawn
        state = self._read(source)
        self.progress.update(state.completed, state.extra(), force=force)

    def close(self, source: ev.EventLog | RunState | None = None, note: str = "") -> None:
        """Read the last events and show the final line; ``note`` goes first ("timed out after 10 s")."""
        state = self._read(source)
        self.progress.done = state.completed
        self.progress.extra = state.extra()
        self.progress.close(self.progress.text(note))


def watch(log: ev.EventLog, total: int, is_finished: Callable[[], bool], timeout: float,
          label: str = "") -> None:
    """Show progress of a run on the main thread until ``is_finished()`` or ``timeout`` seconds.

    Counts settled tasks (acked or auto-acked), redeliveries and crashes from the
    event log as they arrive.  The display is always closed; KeyboardInterrupt
    (the notebook's stop button) propagates after the display says so.
    """
    display = RunProgress(total, label)
    deadline = time.monotonic() + timeout
    note = ""
    try:
        while True:
            display.update(log)
            if is_finished():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                note = f"timed out after {timeout:g} s"
                break
            loop_start = time.monotonic()
            log.wait_for_change(min(0.1, remaining))
            # A busy log wakes us on every event; look at most ~20 times a second.
            pause = 0.05 - (time.monotonic() - loop_start)
            if pause > 0:
                time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
    except KeyboardInterrupt:
        note = "interrupted"
        raise
    except BaseException:
        note = "stopped by an error"
        raise
    finally:
        display.close(log, note)
