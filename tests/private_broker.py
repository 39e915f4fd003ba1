"""One private RabbitMQ node for the destructive tests (restart, stop), shared by the whole session.

Booting a node takes ~7 s, so the reliability, bad-input and kernel tests share one: it lives
in its own temporary WORKQUEUE_LAB_HOME (never a learner's node, never the system node on
5672) and is stopped when the pytest session ends.  Under root it runs as the unprivileged
user ``wqlab``, so the home sits directly under /tmp with mode 0755.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from workqueue_lab import settings
from workqueue_lab.broker import node as private_node
from workqueue_lab.broker.discovery import private_broker as broker_of
from workqueue_lab.broker.handle import Broker
from workqueue_lab.errors import BrokerUnavailable

_home: Path | None = None


@contextlib.contextmanager
def _env_home(home: Path) -> Iterator[None]:
    before = os.environ.get(settings.ENV_HOME)
    os.environ[settings.ENV_HOME] = str(home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(settings.ENV_HOME, None)
        else:
            os.environ[settings.ENV_HOME] = before


def _cleanup() -> None:
    global _home
    if _home is None:
        return
    with _env_home(_home):
        private_node.stop()
    shutil.rmtree(_home, ignore_errors=True)
    _home = None


@contextlib.contextmanager
def private_broker(config) -> Iterator[Broker]:
    """The session's private node as a Broker handle (booted on first use, reused after).

    ``config`` is pytest's config (``request.config``): the node is stopped at the session's end.
    While the block runs, WORKQUEUE_LAB_HOME points at the node's home, so
    ``private_node.restart()``/``stop()``/``start()`` act on this node and no other.
    """
    global _home
    if _home is None:
        _home = Path(tempfile.mkdtemp(prefix="wqlab-pytest-", dir="/tmp"))
        _home.chmod(0o755)
        config.add_cleanup(_cleanup)
    with _env_home(_home):
        yield ensure_running()


def broker_for(node: private_node.NodeInfo) -> Broker:
    return broker_of(node)


def ensure_running(wait: float = 90.0) -> Broker:
    """The node, started again if a test stopped it (call inside ``private_broker``)."""
    try:
        return broker_for(private_node.start(wait=wait))
    except BrokerUnavailable as exc:  # show why in the test report: the home is deleted at the end
        logs = sorted((settings.home() / "node" / "log").glob("*.log"))
        tails = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
                          for p in logs)
        raise AssertionError(f"{exc}\n{tails}") from None
