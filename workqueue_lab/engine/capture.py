"""Keep worker threads' prints out of notebook cells.

ipykernel 7 sends output from a background thread to whichever cell ran last,
so the lab routes writes from its worker threads into per-worker buffers and
lets the main thread show them.  Other threads write through untouched.
"""

from __future__ import annotations

import sys
import threading
from collections import deque


class WorkerOutput:
    """The lines one worker printed, newest last (bounded)."""

    def __init__(self, max_lines: int = 10_000) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            text = self._partial + text
            *complete, self._partial = text.split("\n")
            self.lines.extend(complete)

    def text(self) -> str:
        with self._lock:
            return "\n".join([*self.lines, self._partial] if self._partial else self.lines)


class _Router:
    """Stands in for sys.stdout / sys.stderr; routes writes by thread."""

    def __init__(self, original) -> None:
        self._original = original

    def write(self, text: str) -> int:
        target = _targets.get(threading.get_ident())
        if target is None:
            return self._original.write(text)
        target.write(text)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in _targets:
            self._original.flush()

    def __getattr__(self, name: str):
        return getattr(self._original, name)


_targets: dict[int, WorkerOutput] = {}
_lock = threading.Lock()


def install() -> None:
    """Route lab threads' stdout/stderr (idempotent; other output is untouched)."""
    with _lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)


def register(output: WorkerOutput) -> None:
    """Send the calling thread's prints to ``output`` from now on."""
    install()
    _targets[threading.get_ident()] = output


def unregister() -> None:
    _targets.pop(threading.get_ident(), None)
