"""Where each member of a private cluster lives: name, ports, files, environment; and the cluster's state file."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from ..node.files import NodeInfo, config_text, pid_file, prepare_files, read_state
from ..node.ports import pick_ports, port_free
from ..node.procs import node_pids
from ..node.users import Target

# Clusters search their ports from here, away from the single nodes' 5673/15673/25673 upward,
# so a cluster booting beside single nodes (tests, other kernels) rarely races one for a port.
PORTS_FROM = (5680, 15680, 25680)


@dataclass
class Member:
    """One node of the cluster: where it listens and keeps its files (index is 0-based)."""

    index: int
    info: NodeInfo

    @property
    def name(self) -> str:
        """The Erlang node name, e.g. ``wqlab-c1-3f2a9b@localhost``."""
        return self.info.nodename

    @property
    def amqp_port(self) -> int:
        return self.info.amqp_port

    @property
    def url(self) -> str:
        return self.info.url

    @property
    def base(self) -> Path:
        return self.info.base

    @property
    def pid(self) -> int | None:
        """OS pid of this node's Erlang VM (beam.smp) if it is alive, else None."""
        try:
            value = int(pid_file(self.base).read_text().strip())
            os.kill(value, 0)
        except (OSError, ValueError):
            return None
        return value

    @property
    def pids(self) -> list[int]:
        """OS pids of this member's live processes: its launch group (the server script while it boots) and
        its Erlang VM."""
        return node_pids(self.base, (read_state(self.base) or {}).get("pgid"))

    def __repr__(self) -> str:
        return f"Member({self.index}: {self.name} amqp={self.amqp_port} pid={self.pid})"


def tag(base: Path) -> str:
    """A short hash of the cluster's base dir: epmd knows nodes by name only, so two clusters must differ."""
    return hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:6]


def cluster_name(base: Path) -> str:
    return f"wqlab-cluster-{tag(base)}"


def member_target(t: Target, base: Path) -> Target:
    return t.at(base)


def state_path(base: Path) -> Path:
    return base / "cluster.json"


def read_cluster_state(base: Path) -> dict | None:
    try:
        return json.loads(state_path(base).read_text())
    except (OSError, ValueError):
        return None


def write_cluster_state(base: Path, state: dict) -> None:
    path = state_path(base)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def plan(base: Path, n: int, saved: dict | None, series: str = "system") -> list[Member]:
    """Names and ports for n members: the saved ones where still free (a node keeps its name across boots)."""
    suffix = tag(base)
    members: list[Member] = []
    taken: list[int] = []
    old = {m["name"]: m for m in (saved or {}).get("members", [])}
    for i in range(n):
        name = f"wqlab-c{i + 1}-{suffix}@localhost"
        prev = old.get(name)
        ports = tuple(int(prev[k]) for k in ("amqp_port", "mgmt_port", "dist_port")) if prev else ()
        if not ports or any(p in taken for p in ports):
            ports = pick_ports(exclude=taken, start=PORTS_FROM)
        taken.extend(ports)
        members.append(Member(i, NodeInfo(name, ports[0], ports[1], ports[2], base / f"c{i + 1}", series)))
    return members


def repick_if_taken(member: Member, others: list[Member]) -> None:
    """A stopped member whose saved ports somebody else took since gets new ones (its name stays)."""
    info = member.info
    if all(port_free(p) for p in (info.amqp_port, info.mgmt_port, info.dist_port)):
        return
    taken = [p for m in others if m is not member for p in (m.amqp_port, m.info.mgmt_port, m.info.dist_port)]
    info.amqp_port, info.mgmt_port, info.dist_port = pick_ports(exclude=taken, start=PORTS_FROM)


def state_of(members: list[Member], t: Target, memory_mb: int, management: bool, script: Path) -> dict:
    return {
        "n": len(members),
        "user": t.user,
        "memory_mb": memory_mb,
        "management": management,
        "script": str(script),
        "rabbitmq": t.install.series,
        "members": [
            {"name": m.name, "amqp_port": m.amqp_port, "mgmt_port": m.info.mgmt_port, "dist_port": m.info.dist_port}
            for m in members
        ],
    }


def member_config(member: Member, members: list[Member], memory_mb: int, management: bool) -> str:
    """The single node's config plus RabbitMQ's own classic peer discovery: every member lists all of them.

    Peer discovery runs only on a blank node (first boot); a node with data rejoins its cluster by itself.
    RabbitMQ >= 3.8.18 takes a cluster-wide lock around it, so members booting in parallel form one cluster.
    """
    lines = [config_text(member.info, memory_mb, management=management)]
    lines.append("cluster_formation.peer_discovery_backend = classic_config\n")
    lines.extend(f"cluster_formation.classic_config.nodes.{m.index + 1} = {m.name}\n" for m in members)
    # Every member reports this name to AMQP clients: the probe that tells "our node" from a stranger.
    lines.append(f"cluster_name = {cluster_name(member.base.parent)}\n")
    return "".join(lines)


def prepare_member(member: Member, members: list[Member], t: Target, memory_mb: int, management: bool) -> None:
    """The member's files: the single node's ones, the cluster's config, and the cluster's one Erlang cookie."""
    mt = member_target(t, member.base)
    cookie = member.base / ".erlang.cookie"
    shared = shared_cookie(member.base.parent)
    member.base.mkdir(parents=True, exist_ok=True)
    if t.drop:
        os.chown(member.base, t.uid, t.gid)
    if not cookie.exists() or cookie.read_text() != shared:
        cookie.unlink(missing_ok=True)  # it is read-only (0400), also for its owner
        cookie.write_text(shared)
        os.chmod(cookie, 0o400)
    prepare_files(member.info, mt, memory_mb)  # keeps the cookie, chowns it
    conf = member.base / "rabbitmq.conf"
    conf.write_text(member_config(member, members, memory_mb, management))
    (member.base / "enabled_plugins").write_text("[rabbitmq_management].\n" if management else "[].\n")
    if t.drop:
        for path in (conf, member.base / "enabled_plugins"):
            os.chown(path, t.uid, t.gid)


def shared_cookie(base: Path) -> str:
    """The cluster's Erlang cookie, made once and kept in the cluster's base dir (readable by its owner only)."""
    path = base / ".erlang.cookie"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
    return path.read_text()
