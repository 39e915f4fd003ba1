"""Shared fixtures: every integration test talks to a real RabbitMQ.

The broker is found the way the course finds it (an already running one
first).  Tests run with a short time scale and their own queue prefix, so they
never touch a learner's queues.
"""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("WORKQUEUE_LAB_TIME_SCALE", "0.05")
# Unique per run: two runs on one broker (two checkouts, CI beside a session) never reset each other.
os.environ.setdefault("WORKQUEUE_LAB_PREFIX", f"pytest-{uuid.uuid4().hex[:6]}.")


@pytest.fixture(scope="session")
def broker():
    import workqueue_lab as lab

    b = lab.connect()
    b.reset()
    yield b
    lab.stop_all()
    b.reset()


@pytest.fixture
def clean(broker):
    """A clean slate before and after: no lab queues, no worker threads."""
    import workqueue_lab as lab

    lab.reset()
    yield broker
    lab.reset()
    assert lab.live_threads() == 0


@pytest.fixture
def fast(monkeypatch):
    """The tests' time scale (0.05), even where the caller's environment chose another."""
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.05")
