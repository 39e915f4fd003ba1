"""Small polling helpers shared by the tests."""

from __future__ import annotations

import threading
import time


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.1):
    """Poll until predicate() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def lab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("workqueue-lab")]
