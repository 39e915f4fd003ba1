"""The lab's ``Broker`` handle on a private cluster: connections fail over across the members."""

from __future__ import annotations

import itertools
import subprocess
import threading
from typing import Protocol

from ..handle import Broker


class Members(Protocol):
    """What the handle needs of a ``Cluster`` (a narrow interface: the cluster imports this module, not back)."""

    nodes: list
    mgmt_url: str | None

    def connection_parameters(self, prefer: int = 0, **overrides) -> list: ...

    def ctl(self, node: object, *args: str, timeout: float = 30) -> subprocess.CompletedProcess: ...

    def running(self) -> list: ...

    def restart(self, wait: float = 180.0) -> object: ...

    def stop(self) -> None: ...


class ClusterBroker(Broker):
    """A ``Broker`` on a cluster: ``parameters()`` is the list of every member, so ``connect()`` (pika's
    ``BlockingConnection`` takes a list) tries them in order; each call starts at the next member, so the
    workers of a run spread over the nodes and move to a survivor when theirs dies."""

    def __init__(self, cluster: Members) -> None:
        super().__init__(cluster.nodes[0].url, "cluster", cluster.mgmt_url, cluster)
        self.cluster = cluster
        self._next = itertools.count()
        self._lock = threading.Lock()

    def parameters(self, **overrides):  # a list, where the single-node Broker returns one
        with self._lock:
            prefer = next(self._next)
        return self.cluster.connection_parameters(prefer, **overrides)

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess | None:
        return self.cluster.ctl(None, *args, timeout=timeout)

    def can_control(self) -> bool:
        return bool(self.cluster.running())

    def restart(self, wait: float = 180.0) -> None:
        self.cluster.restart(wait)
        self._version = None

    def stop(self) -> None:
        self.cluster.stop()
