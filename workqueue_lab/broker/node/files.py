"""A node's files: state, config, environment, cookie, and the lock that keeps two kernels from booting two nodes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ... import settings
from ...errors import BrokerUnavailable, LabError
from .install import server_script
from .ports import LOOPBACK
from .users import Target, drop_kwargs, target

DEFAULT_MEMORY_MB = 256


LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"


@dataclass
class NodeInfo:
    """Where a private node listens and keeps its files."""

    nodename: str
    amqp_port: int
    mgmt_port: int
    dist_port: int
    base: Path  # on the host (inside the chroot's directory for a release the lab built)
    series: str = "system"  # which RabbitMQ it runs (settings.RABBITMQ_SERIES)

    @property
    def url(self) -> str:
        """AMQP URL for the default vhost, as ``guest`` over loopback."""
        return f"amqp://guest:guest@{LOOPBACK}:{self.amqp_port}/%2F"

    @property
    def mgmt_url(self) -> str:
        """Base URL of the management UI and HTTP API."""
        return f"http://{LOOPBACK}:{self.mgmt_port}"


NO_NODE = "No private RabbitMQ node has been started; run `workqueue-lab node start`."


def state_path(base: Path) -> Path:
    return base / "state.json"


def boot_log(base: Path) -> Path:
    return base / "log" / "server-stdout.log"


def pid_file(base: Path) -> Path:
    return base / "node.pid"


def script_or_fail() -> Path:
    script = server_script()
    if script is None:
        raise BrokerUnavailable(
            "RabbitMQ is not installed; install it (e.g. `apt-get install rabbitmq-server`) "
            f"or point {settings.ENV_URL} at a broker you have."
        )
    return script


def read_state(base: Path) -> dict | None:
    import json

    try:
        return json.loads(state_path(base).read_text())
    except (OSError, ValueError):
        return None


def write_state(base: Path, state: dict, t: Target) -> None:
    import json

    path = state_path(base)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    if t.drop:
        os.chown(tmp, t.uid, t.gid)
    os.replace(tmp, path)


def info_from_state(state: dict, base: Path) -> NodeInfo:
    ports = (int(state["amqp_port"]), int(state["mgmt_port"]), int(state["dist_port"]))
    return NodeInfo(state["nodename"], *ports, base, state.get("rabbitmq", "system"))


def config_text(info: NodeInfo, memory_mb: int, management: bool = True) -> str:
    # Without the management plugin its keys are unknown to the config schema: the node refuses to boot.
    mgmt = f"management.tcp.ip = {LOOPBACK}\nmanagement.tcp.port = {info.mgmt_port}\n" if management else ""
    return (
        "# Written by workqueue_lab.broker.node at every start; edits are overwritten.\n"
        f"listeners.tcp.1 = {LOOPBACK}:{info.amqp_port}\n"
        f"{mgmt}"
        "# Absolute, because a container (Binder) sees the whole host's RAM.\n"
        f"vm_memory_high_watermark.absolute = {memory_mb}MiB\n"
        "disk_free_limit.absolute = 50MB\n"
        "# loopback_users is left at its default: guest may log in over loopback only.\n"
    )


ADVANCED_CONFIG = (
    "%% Written by workqueue_lab.broker.node.  Erlang terms, e.g.\n"
    "%% [{rabbit, [{channel_tick_interval, 1000}]}].\n"
    "%% Runtime changes: workqueue_lab.broker.node.set_app_env(key, value).\n"
    "[].\n"
)


def node_env(info: NodeInfo, t: Target) -> dict[str, str]:
    """A small, explicit environment for the server and the CLI (nothing from a system rabbitmq-env.conf)."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env.setdefault("LANG", "C.UTF-8")
    base = info.base
    path = t.install.inside  # the node sees its files from inside its install (a chroot's own root)
    env.update(
        HOME=path(base),  # the Erlang cookie lives here; server and CLI must agree
        USER=t.user,
        LOGNAME=t.user,
        RABBITMQ_NODENAME=info.nodename,
        RABBITMQ_DIST_PORT=str(info.dist_port),
        RABBITMQ_MNESIA_BASE=path(base / "mnesia"),
        RABBITMQ_LOG_BASE=path(base / "log"),
        RABBITMQ_CONFIG_FILE=path(base / "rabbitmq.conf"),
        RABBITMQ_CONFIG_FILES=path(base / "conf.d"),
        RABBITMQ_ADVANCED_CONFIG_FILE=path(base / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=path(base / "enabled_plugins"),
        RABBITMQ_CONF_ENV_FILE=path(base / "rabbitmq-env.conf"),
        RABBITMQ_PID_FILE=path(pid_file(base)),
        # Erlang distribution on loopback only: epmd (if this node starts it)
        # and the node's own dist listener, and the CLI's.
        ERL_EPMD_ADDRESS=LOOPBACK,
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=LOOPBACK_DIST,
        RABBITMQ_CTL_ERL_ARGS=LOOPBACK_DIST,
    )
    env.update(t.install.env())  # a chroot's own epmd port and PATH
    return env


def prepare_files(info: NodeInfo, t: Target, memory_mb: int) -> None:
    import secrets
    import string

    base = info.base
    for d in (base, base / "mnesia", base / "log", base / "conf.d"):
        d.mkdir(parents=True, exist_ok=True)
        if t.drop:
            os.chown(d, t.uid, t.gid)
    files = {
        base / "rabbitmq.conf": config_text(info, memory_mb),
        base / "advanced.config": ADVANCED_CONFIG,
        base / "enabled_plugins": "[rabbitmq_management].\n",
        # Ours, so that a system /etc/rabbitmq/rabbitmq-env.conf (NODENAME=...) never applies.
        base / "rabbitmq-env.conf": "# Empty: workqueue_lab.broker.node sets everything in the environment.\n",
    }
    for path, text in files.items():
        path.write_text(text)
        if t.drop:
            os.chown(path, t.uid, t.gid)
    cookie = base / ".erlang.cookie"
    if not cookie.exists():  # create it ourselves so the CLI never races the server for it
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        os.chmod(cookie, 0o400)
    if t.drop:
        os.chown(cookie, t.uid, t.gid)


def check_reachable(t: Target) -> None:
    """As root: make sure the node's user can write its base dir (every parent must be searchable)."""
    import subprocess

    res = subprocess.run(
        ["/bin/sh", "-c", 'test -w "$0" && test -x "$0"', str(t.base)], capture_output=True, **drop_kwargs(t)
    )
    if res.returncode != 0:
        raise LabError(
            f"User {t.user} cannot reach {t.base}; set {settings.ENV_HOME} to a directory whose parents "
            "are world-searchable (e.g. under /tmp), or `chmod o+x` its parents."
        )


def makedirs(path: Path, t: Target) -> None:
    """mkdir -p; as root, hand every directory it creates to the node's user."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    if t.drop:
        for d in missing:
            os.chown(d, t.uid, t.gid)


class NodeLock:
    """An exclusive flock on the base dir, so two kernels never boot two nodes."""

    def __init__(self, t: Target) -> None:
        makedirs(t.base, t)
        self.path = t.base / ".lock"
        self.t = t

    def __enter__(self) -> NodeLock:
        import fcntl

        created = not self.path.exists()
        # Read-only is enough for flock, and works whoever created the file.
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        if created and self.t.drop:
            os.chown(self.path, self.t.uid, self.t.gid)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


def current() -> tuple[NodeInfo, dict] | None:
    """The node this user (or, as root, the node's user) has a state file for, and that state."""
    t = target()
    if t is None:
        return None
    state = read_state(t.base)
    if not state:
        return None
    return info_from_state(state, t.base), state
