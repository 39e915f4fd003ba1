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


# --- tiers: `make check` runs the fast one -----------------------------------------------------------------
# A test is in the full tier (marker "full") when it uses something that boots, builds or drives a program of
# its own: one of these fixtures, or one of these helpers called in its body.  Derived at collection, so a new
# test lands in the right tier without anyone remembering a marker.
FULL_FIXTURES = {"node", "booted", "node_home", "private", "cluster", "kernel", "lab_server", "browser", "site",
                 "served", "binder_lock", "docker_configured_node", "learner"}
FULL_HELPERS = {"private_broker", "compose_node", "new_home", "Cluster", "BinderUser", "wheelhouse", "node_homes",
                "execute", "start_private_node", "private_node", "_make_lab"}


def _uses_full(item) -> str:
    fixtures = FULL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if fixtures:
        return f"fixture {sorted(fixtures)[0]}"
    code = getattr(getattr(item, "function", None), "__code__", None)
    names, texts = set(), []
    for c in [code, *(code.co_consts if code is not None else ())]:  # nested functions too
        if hasattr(c, "co_names"):
            names |= set(c.co_names)
            texts += [k for k in c.co_consts if isinstance(k, str)]  # code it hands a subprocess
    names |= {h for h in FULL_HELPERS for text in texts if f"{h}(" in text or f"{h}." in text}
    helpers = FULL_HELPERS & names
    if helpers:
        return f"calls {sorted(helpers)[0]}"
    if item.get_closest_marker("slow") or item.get_closest_marker("browser"):
        return "marked slow/browser"
    return ""


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.fspath.ext == ".py" and _uses_full(item):
            item.add_marker(pytest.mark.full)


def pytest_runtest_setup(item):
    """``@pytest.mark.needs_root("why")``: skipped with the reason for a plain user's `make test`; in CI
    (WORKQUEUE_LAB_CI, set by .ci/run, which runs as root) a missing root fails instead of skipping."""
    marker = item.get_closest_marker("needs_root")
    if marker is not None and os.geteuid() != 0:
        why = marker.args[0] if marker.args else "this test needs root"
        if os.environ.get("WORKQUEUE_LAB_CI"):
            pytest.fail(f"{why}; CI must run as root", pytrace=False)
        pytest.skip(f"{why} (CI runs as root and runs it)")
