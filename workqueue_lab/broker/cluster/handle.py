"""The lab's ``Broker`` handle on a private cluster: connections fail over across the members."""

from __future__ import annotations

import itertools
import subprocess
import threading
from typing import Protocol

from ..control import Control
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

    def kill(self) -> None: ...

    def scratch(self) -> tuple[str, str]: ...


class ClusterControl(Control):
    """What the lab may do with its private cluster: all of it but node settings, which are per node."""

    kind = "cluster"

    def __init__(self, cluster: Members) -> None:
        super().__init__(cluster.nodes[0].url)
        self.cluster = cluster

    def abilities(self) -> frozenset[str]:
        return frozenset({"stats", "restart", "stop", "kill", "ctl"}) if self.cluster.running() else frozenset()

    def _refusal(self, action: str) -> str:
        if action == "settings":
            return ("A node setting is per node on a cluster; run it on each member with "
                    "cluster.ctl(node, 'eval', ...) instead.")
        return "The lab's private cluster is not running; start it again with Cluster.start()."

    def restart(self, wait: float = 180.0) -> None:
        self.require("restart")
        self.cluster.restart(wait)

    def stop(self) -> None:
        self.require("stop")
        self.cluster.stop()

    def kill(self) -> None:
        self.require("kill")
        self.cluster.kill()

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        self.require("ctl")
        return self.cluster.ctl(None, *args, timeout=timeout)

    def scratch(self) -> tuple[str, str]:
        return self.cluster.scratch()


class ClusterBroker(Broker):
    """A ``Broker`` on a cluster: ``parameters()`` is the list of every member, so ``connect()`` (pika's
    ``BlockingConnection`` takes a list) tries them in order; each call starts at the next member, so the
    workers of a run spread over the nodes and move to a survivor when theirs dies."""

    def __init__(self, cluster: Members) -> None:
        super().__init__(cluster.nodes[0].url, ClusterControl(cluster), cluster.mgmt_url)
        self.cluster = cluster
        self._next = itertools.count()
        self._lock = threading.Lock()

    def parameters(self, **overrides):  # a list, where the single-node Broker returns one
        with self._lock:
            prefer = next(self._next)
        return self.cluster.connection_parameters(prefer, **overrides)
