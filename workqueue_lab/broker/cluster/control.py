"""Start, watch, stop and kill the members of a private cluster, and ask it (rabbitmqctl) who runs and who leads."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ... import settings
from ...errors import BrokerUnavailable, LabError
from ..node import install as installs
from ..node import users
from ..node.files import DEFAULT_MEMORY_MB, NodeLock, boot_log, check_reachable, node_env, script_or_fail
from ..node.files import read_state as read_node_state
from ..node.files import write_state as write_node_state
from ..node.lifecycle import launch
from ..node.ports import amqp_answers, wait_ports_free
from ..node.procs import kill_leftovers
from ..node.users import Target
from . import layout
from .handle import ClusterBroker
from .layout import Member

if TYPE_CHECKING:  # pika is imported when parameters are made: importing the lab stays light
    import pika

log = logging.getLogger(__name__)

ACTIONS = {
    "stats": None,
    "restart": None,
    "stop": None,
    "kill": None,
    "stop_node": None,
    "kill_node": None,
    "start_node": None,
    "set_setting": "A setting is per node in a cluster; set it on each member with cluster.ctl(i, 'eval', ...).",
}

_live: dict[Path, Cluster] = {}  # clusters this process started: stopped at exit


class Cluster:
    """N private RabbitMQ nodes on loopback, clustered by RabbitMQ itself (classic peer discovery).

    Members are numbered from 0 in this API (``nodes[0]`` is ``wqlab-c1-…``).  Under root they run
    as the unprivileged ``wqlab`` user, like the single private node.
    """

    kind = "cluster"

    def __init__(self, base: Path, members: list[Member], t: Target, state: dict) -> None:
        self.base, self.nodes, self._t, self._state = base, members, t, state
        self._script = Path(state["script"])

    # --- starting ---------------------------------------------------------------------------
    @classmethod
    def start(cls, n: int = 3, wait: float = 180.0, base: Path | str | None = None,
              memory_mb: int = DEFAULT_MEMORY_MB, management: bool = False, run_as: str | None = None,
              series: str | None = None) -> Cluster:
        """Start an n-node cluster (or reuse the one running at ``base``); wait=0 returns right after launching.

        ``base`` defaults to ``cluster/`` beside the single private node's directory.  A cluster of another
        size at the same base is stopped and its data deleted first: the cluster is the lab's scratch space.
        ``memory_mb`` (per node) and ``management`` (the plugin, off: it slows restarts) apply when a member
        boots, not to one already running.  ``series``: which RabbitMQ (default ``settings.rabbitmq_series()``).
        """
        if n < 1:
            raise LabError(f"n={n} nodes cannot form a cluster; use n=3 (the default) or more.")
        series = series or settings.rabbitmq_series()
        if series != "system":
            installs.for_series(series, build=True)  # built once, or refused in one sentence
        t = users.target(run_as, create_missing=True, series=series)
        assert t is not None
        script = t.install.script if t.install.chrooted else script_or_fail()
        root = Path(base) if base is not None else t.base.parent / "cluster"
        ct = layout.member_target(t, root)
        with NodeLock(ct):
            if t.drop:
                check_reachable(ct)
            saved = layout.read_cluster_state(root)
            if saved and int(saved.get("n", 0)) != n:
                cls._discard(root, saved)
                saved = None
            members = layout.plan(root, n, saved, t.install.series)
            cluster = cls(root, members, t, layout.state_of(members, t, memory_mb, management, script))
            down = [m for m in members if not cluster._up(m) and not m.pids]
            for m in down:
                layout.repick_if_taken(m, members)
            cluster._save()
            for m in down:  # all at once: peer discovery lets blank members boot in parallel
                cluster._launch(m)
        if down:  # this process booted it: stop it at exit (a cluster merely reused is its starter's)
            _live[root] = cluster
        if wait > 0:
            cluster.wait_until_ready(wait)
        return cluster

    @classmethod
    def existing(cls, base: Path | str | None = None, series: str | None = None) -> Cluster | None:
        """The cluster last started at ``base`` (default: beside the private node), running or not, without
        starting anything; None if none was ever started there."""
        t = users.target(series=series or settings.rabbitmq_series())
        if t is None:  # the node's user or build does not exist: no cluster can have run
            return None
        root = Path(base) if base is not None else t.base.parent / "cluster"
        saved = layout.read_cluster_state(root)
        if not saved or not saved.get("members"):
            return None
        return cls(root, layout.plan(root, int(saved["n"]), saved, t.install.series), t, saved)

    @staticmethod
    def _discard(root: Path, saved: dict) -> None:
        """Another size was asked for: end the old members and delete their data."""
        for i in range(int(saved.get("n", 0))):
            base = root / f"c{i + 1}"
            kill_leftovers(base, (read_node_state(base) or {}).get("pgid"))
            shutil.rmtree(base, ignore_errors=True)

    def _save(self) -> None:
        st = self._state
        self._state = layout.state_of(self.nodes, self._t, st["memory_mb"], st["management"], self._script)
        layout.write_cluster_state(self.base, self._state)

    def _launch(self, m: Member) -> None:
        mt = layout.member_target(self._t, m.base)
        layout.prepare_member(m, self.nodes, self._t, self._state["memory_mb"], self._state["management"])
        pgid = launch(self._script, m.info, mt)
        write_node_state(m.base, {"nodename": m.name, "amqp_port": m.amqp_port, "mgmt_port": m.info.mgmt_port,
                                  "dist_port": m.info.dist_port, "user": self._t.user, "pgid": pgid,
                                  "rabbitmq": mt.install.series, "started_at": time.time()}, mt)

    def _up(self, m: Member, timeout: float = 0.5) -> bool:
        return amqp_answers(m.info.amqp_port, m.info.nodename, timeout=timeout, expect=layout.cluster_name(self.base))

    def wait_until_ready(self, timeout: float = 180.0, members: list[Member] | None = None) -> Cluster:
        """Wait until every member (or those given) answers AMQP and is a running member of the cluster."""
        deadline = time.monotonic() + timeout
        pending = list(members if members is not None else self.nodes)
        while pending:
            for m in list(pending):
                if self._up(m):
                    pending.remove(m)
                elif not m.pids and not self._up(m):
                    raise BrokerUnavailable(f"Cluster node {m.name} exited while booting; read {boot_log(m.base)} "
                                            f"and {m.base / 'log'} for the reason.")
            if pending and time.monotonic() >= deadline:
                raise BrokerUnavailable(f"Cluster node {pending[0].name} did not answer within {timeout:.0f} s; "
                                        f"read {boot_log(pending[0].base)} for the reason, or wait longer.")
            if pending:
                time.sleep(0.2)
        wanted = {m.name for m in (members if members is not None else self.nodes)}
        while not wanted <= set(self.members()):
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(f"Nodes {sorted(wanted - set(self.members()))} run but did not join the "
                                        f"cluster; read {self.base}/c*/log for the reason.")
            time.sleep(0.5)
        return self

    # --- one member -----------------------------------------------------------------------------
    def _member(self, node: int | str | Member) -> Member:
        if isinstance(node, Member):
            return node
        for m in self.nodes:
            if node in (m.index, m.name):
                return m
        raise LabError(f"No node {node!r} in this cluster; use an index 0..{len(self.nodes) - 1} or a node name.")

    def stop_node(self, node: int | str | Member, wait: float = 60.0) -> bool:
        """Stop one member gracefully (SIGTERM to its Erlang VM, as `rabbitmqctl shutdown` does); True if it ran."""
        m = self._member(node)
        return self._end([m], signal.SIGTERM, wait) > 0

    def kill_node(self, node: int | str | Member, wait: float = 30.0) -> bool:
        """Kill one member outright (SIGKILL to its Erlang VM: a crash, no goodbye to its peers)."""
        m = self._member(node)
        return self._end([m], signal.SIGKILL, wait) > 0

    def start_node(self, node: int | str | Member, wait: float = 120.0) -> Member:
        """Boot a stopped member again: same name and data, so it rejoins the cluster by itself."""
        m = self._member(node)
        if not self._up(m) and not m.pids:
            with NodeLock(layout.member_target(self._t, self.base)):
                if not wait_ports_free([m.amqp_port, m.info.mgmt_port, m.info.dist_port], 10.0):
                    layout.repick_if_taken(m, self.nodes)
                    self._save()
                self._launch(m)
        if wait > 0:
            self.wait_until_ready(wait, [m])
        return m

    def _end(self, members: list[Member], sig: int, wait: float) -> int:
        """Signal each member's VM by PID, wait until none of its processes is left; how many were running."""
        ended = 0
        for m in members:
            pids = m.pids
            vm = m.pid
            # The VM if it wrote its pid file; else it is still booting: every process of its group.
            for pid in [vm] if vm in pids else pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            ended += bool(pids)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(m.pids for m in members):
            time.sleep(0.2)
        for m in members:
            kill_leftovers(m.base, (read_node_state(m.base) or {}).get("pgid"))
        self._t.install.release()  # a chroot's /proc mount and epmd, once none of its nodes is left
        return ended

    # --- the whole cluster ------------------------------------------------------------------------
    def stop(self, wait: float = 60.0) -> None:
        """Stop every member (SIGTERM by PID) and wait until no process of any member is left."""
        self._end(self.nodes, signal.SIGTERM, wait)
        _live.pop(self.base, None)

    def kill(self) -> None:
        """Kill every member (SIGKILL by PID)."""
        self._end(self.nodes, signal.SIGKILL, 30.0)
        _live.pop(self.base, None)

    def restart(self, wait: float = 180.0) -> Cluster:
        """Stop every member and boot them all again in parallel: same names, ports and data."""
        self._end(self.nodes, signal.SIGTERM, 60.0)
        for m in self.nodes:
            self.start_node(m, wait=0)
        _live[self.base] = self
        return self.wait_until_ready(wait) if wait > 0 else self

    def running(self) -> list[Member]:
        """The members whose AMQP port answers as this cluster."""
        return [m for m in self.nodes if self._up(m)]

    def can(self, action: str) -> bool:
        """Whether the lab can do ``action`` (stats, restart, stop, kill, stop_node, kill_node, start_node)."""
        return action in ACTIONS and ACTIONS[action] is None

    def why_not(self, action: str) -> str | None:
        """None if ``can(action)``, else one sentence saying why not and what to do instead."""
        if self.can(action):
            return None
        return ACTIONS.get(action) or f"A private cluster knows no action {action!r}; use one of {sorted(ACTIONS)}."

    # --- asking RabbitMQ ----------------------------------------------------------------------------
    def ctl(self, node: int | str | Member | None, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """``rabbitmqctl -n NODE ARGS`` as the members' user; node None means any member that answers."""
        m = self._member(node) if node is not None else self._any_running()
        mt = layout.member_target(self._t, m.base)
        cmd = mt.install.ctl_command("-n", m.name, *args)
        try:
            return subprocess.run(cmd, env=node_env(m.info, mt), cwd=m.base, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, **users.drop_kwargs(mt))
        except subprocess.TimeoutExpired:
            raise LabError(f"`rabbitmqctl {' '.join(args)}` on {m.name} did not finish within {timeout:.0f} s; "
                           "check that the node runs (cluster.running()).") from None

    def scratch(self) -> tuple[str, str]:
        """A directory the lab and programs inside the members share: (here, as the members see it)."""
        return self._t.install.scratch(self.base)

    def _any_running(self) -> Member:
        for m in self.nodes:
            if self._up(m):
                return m
        raise BrokerUnavailable(f"No node of the cluster at {self.base} answers; start it with Cluster.start().")

    def _json(self, node: int | str | Member | None, *args: str) -> object:
        res = self.ctl(node, *args, "--formatter", "json")
        if res.returncode != 0:
            raise LabError(f"`rabbitmqctl {' '.join(args)}` failed ({(res.stderr or res.stdout).strip()[:200]}); "
                           "check that the cluster runs (cluster.running()).")
        return json.loads(res.stdout)

    def members(self) -> list[str]:
        """Names of the running members, as RabbitMQ's ``cluster_status`` reports them."""
        data = self._json(None, "cluster_status")
        return sorted(data.get("running_nodes", [])) if isinstance(data, dict) else []

    def _queue(self, queue: str) -> dict:
        rows = self._json(None, "list_queues", "name", "type", "leader", "members", "online")
        for row in rows if isinstance(rows, list) else []:
            if row.get("name") == queue:
                return row
        raise LabError(f"No queue {queue!r} on the cluster; declare it first (a quorum queue: "
                       "arguments={'x-queue-type': 'quorum'}).")

    def quorum_leader(self, queue: str) -> str:
        """The node that leads the quorum queue's Raft group."""
        return self._queue(queue).get("leader", "")

    def replicas(self, queue: str, online: bool = False) -> list[str]:
        """The nodes holding a replica of the quorum queue (online=True: only those running now)."""
        return sorted(self._queue(queue).get("online" if online else "members") or [])

    # --- connecting ----------------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        """AMQP URLs of the members, in order."""
        return [m.url for m in self.nodes]

    @property
    def mgmt_url(self) -> str | None:
        """The first member's management URL (with guest credentials), or None when the plugin is off."""
        if not self._state.get("management"):
            return None
        return self.nodes[0].info.mgmt_url.replace("http://", "http://guest:guest@")

    def connection_parameters(self, prefer: int = 0, **overrides) -> list[pika.URLParameters]:
        """One ``pika.URLParameters`` per member, starting at member ``prefer`` (mod n): pika tries them in order.

        ``pika.BlockingConnection(cluster.connection_parameters(i))`` connects worker i to node i and
        fails over to the next member when that one is down.
        """
        import pika

        k = prefer % len(self.nodes)
        params = []
        for m in self.nodes[k:] + self.nodes[:k]:
            p = pika.URLParameters(m.url)
            p.connection_attempts = 1
            p.retry_delay = 0.5
            p.socket_timeout = 5
            p.blocked_connection_timeout = 60
            for key, value in overrides.items():
                setattr(p, key, value)
            params.append(p)
        return params

    def broker(self) -> ClusterBroker:
        """A ``Broker`` handle whose ``connect()`` uses every member, each new connection preferring the next one."""
        return ClusterBroker(self)

    # --- context manager --------------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Cluster({len(self.nodes)} nodes at {self.base}: {', '.join(m.name for m in self.nodes)})"


def stop_all() -> int:
    """Stop every cluster this process started; how many there were (registered with atexit)."""
    clusters = list(_live.values())
    for c in clusters:
        try:
            c.stop()
        except Exception:  # at exit: stop the others anyway
            log.debug("could not stop %r", c, exc_info=True)
    return len(clusters)


atexit.register(stop_all)
