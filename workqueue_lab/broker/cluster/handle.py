"""The lab's ``Broker`` handle on a private cluster: connections fail over across the members."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

from ..handle import Broker

if TYPE_CHECKING:
    import subprocess

    from .control import Cluster


class ClusterBroker(Broker):
    """A ``Broker`` on a cluster: ``parameters()`` is the list of every member, so ``connect()`` (pika's
    ``BlockingConnection`` takes a list) tries them in order; each call starts at the next member, so the
    workers of a run spread over the nodes and move to a survivor when theirs dies."""

    def __init__(self, cluster: Cluster) -> None:
        first = cluster.nodes[0]
        mgmt = (first.info.mgmt_url.replace("http://", "http://guest:guest@")
                if cluster._state.get("management") else None)
        super().__init__(first.url, "cluster", mgmt, cluster)
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
