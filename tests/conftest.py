"""Shared fixtures: every integration test talks to a real RabbitMQ.

The broker is found the way the course finds it (an already running one
first).  Tests run with a short time scale and their own queue prefix, so they
never touch a learner's queues.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("WORKQUEUE_LAB_TIME_SCALE", "0.05")
os.environ.setdefault("WORKQUEUE_LAB_PREFIX", "pytest.")


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
