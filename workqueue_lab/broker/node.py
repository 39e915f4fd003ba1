"""A private, non-root RabbitMQ node for Binder, laptops and destructive tests.

The node uses the RabbitMQ that the OS package installed (it needs no daemon,
no root and no Docker) and keeps everything it owns under
``settings.home() / "node"``: data, logs, config, the Erlang cookie and a
state file with its ports.  Every listener (AMQP, management, Erlang
distribution) binds 127.0.0.1 only, so the ``guest`` user stays loopback-only.

One node per user: the first ``start()`` picks free ports and records them;
later kernels find the node through the state file and reuse it.

When the caller is root (CI), the node runs as an unprivileged user
(``wqlab`` by default, created on first use), and so does every CLI call.

    python -m workqueue_lab.private_node start [--background] [--memory-mb N] [--wait S]
    python -m workqueue_lab.private_node stop | status | url | restart
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import BrokerUnavailable, LabError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: keep this module cheap to import
if TYPE_CHECKING:
    import subprocess

__all__ = [
    "NodeInfo",
    "ctl",
    "get_app_env",
    "pid",
    "restart",
    "running",
    "server_script",
    "set_app_env",
    "start",
    "stop",
    "wait_until_ready",
]

DEFAULT_USER = "wqlab"  # the unprivileged account the node runs as when we are root
DEFAULT_MEMORY_MB = 256
AMQP_PORT, MGMT_PORT, DIST_PORT = 5673, 15673, 25673  # first candidates; upward from there
PORT_TRIES = 200
LOOPBACK = "127.0.0.1"
DEBIAN_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"
_NO_NODE = "No private RabbitMQ node has been started; run `python -m workqueue_lab.private_node start`."
_DOC_FIRST_LINE = "A private, non-root RabbitMQ node for Binder, laptops and destructive tests."

# Set by start(run_as=...) so that, in the same process, stop()/ctl() find the
# node of that user without being told again (only matters for root without
# WORKQUEUE_LAB_HOME, where the base dir lives in the run_as user's home).
_last_run_as: str | None = None


@dataclass
class NodeInfo:
    """Where a private node listens and keeps its files."""

    nodename: str
    amqp_port: int
    mgmt_port: int
    dist_port: int
    base: Path

    @property
    def url(self) -> str:
        """AMQP URL for the default vhost, as ``guest`` over loopback."""
        return f"amqp://guest:guest@{LOOPBACK}:{self.amqp_port}/%2F"

    @property
    def mgmt_url(self) -> str:
        """Base URL of the management UI and HTTP API."""
        return f"http://{LOOPBACK}:{self.mgmt_port}"


# ---------------------------------------------------------------- paths & users


class _Target:
    """Who runs the node (user, uid, gid), where its files live, and whether we must drop root for it."""

    __slots__ = ("user", "uid", "gid", "base", "drop")

    def __init__(self, user: str, uid: int, gid: int, base: Path, drop: bool) -> None:
        self.user, self.uid, self.gid, self.base, self.drop = user, uid, gid, base, drop


def _state_path(base: Path) -> Path:
    return base / "state.json"


def _boot_log(base: Path) -> Path:
    return base / "log" / "server-stdout.log"


def _pid_file(base: Path) -> Path:
    return base / "node.pid"


def _target(run_as: str | None = None, create_user: bool = False) -> _Target | None:
    """Who runs the node and where its files live; None if that user does not exist."""
    import pwd

    euid = os.geteuid()
    if euid != 0:
        me = pwd.getpwuid(euid)
        if run_as not in (None, me.pw_name):
            raise LabError(
                f"run_as={run_as!r} needs root; call start() without run_as to run the node as {me.pw_name}."
            )
        return _Target(me.pw_name, euid, me.pw_gid, settings.home() / "node", False)
    user = run_as or _last_run_as or DEFAULT_USER
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        if not create_user:
            return None
        if user != DEFAULT_USER:
            raise LabError(
                f"User {user!r} does not exist; create it (useradd --create-home {user}) or omit run_as."
            ) from None
        _create_user(user)
        pw = pwd.getpwnam(user)
    if os.environ.get(settings.ENV_HOME):
        base = settings.home() / "node"
    else:  # the run_as user's own settings.home() equivalent
        base = Path(pw.pw_dir) / ".cache" / "workqueue-lab" / "node"
    return _Target(user, pw.pw_uid, pw.pw_gid, base, pw.pw_uid != 0)


def _create_user(user: str) -> None:
    import subprocess

    cmd = ["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", user]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 and res.returncode != 9:  # 9: already exists (race)
        raise LabError(
            f"Could not create user {user!r} ({res.stderr.strip()}); create it with `{' '.join(cmd)}`."
        )


def _drop_kwargs(t: _Target) -> dict:
    """Popen keyword arguments that run a child as the node's user."""
    if not t.drop:
        return {}
    return {"user": t.uid, "group": t.gid, "extra_groups": os.getgrouplist(t.user, t.gid)}


def _target_from_state(state: dict, base: Path) -> _Target:
    import pwd

    user = state["user"]
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise LabError(f"The private node's user {user!r} no longer exists; delete {base} and start again.") from None
    return _Target(user, pw.pw_uid, pw.pw_gid, base, os.geteuid() == 0 and pw.pw_uid != 0)


def _default_nodename(t: _Target) -> str:
    import re

    name = "wqlab-" + re.sub(r"[^A-Za-z0-9_-]", "_", t.user)
    if os.environ.get(settings.ENV_HOME):
        # A non-default home (tests, second checkout) must not collide with the
        # learner's own node in epmd, which knows nodes by name only.
        import hashlib

        name += "-" + hashlib.sha1(str(t.base.resolve()).encode()).hexdigest()[:6]
    return f"{name}@localhost"


def server_script() -> Path | None:
    """The real ``rabbitmq-server`` script (not Debian's root-only wrapper), or None."""
    import shutil

    if DEBIAN_SCRIPT.exists():
        return DEBIAN_SCRIPT
    found = shutil.which("rabbitmq-server")
    if not found:
        return None
    real = Path(found).resolve()
    if (real.parent / "rabbitmq-env").exists():  # generic-unix tarball, Homebrew
        return real
    lib = real.parent.parent / "lib" / "rabbitmq" / "bin" / "rabbitmq-server"
    return lib if lib.exists() else None


def _script_or_fail() -> Path:
    script = server_script()
    if script is None:
        raise BrokerUnavailable(
            "RabbitMQ is not installed; install it (e.g. `apt-get install rabbitmq-server`) "
            f"or point {settings.ENV_URL} at a broker you have."
        )
    return script


# ---------------------------------------------------------------- state


def _read_state(base: Path) -> dict | None:
    import json

    try:
        return json.loads(_state_path(base).read_text())
    except (OSError, ValueError):
        return None


def _write_state(base: Path, state: dict, t: _Target) -> None:
    import json

    path = _state_path(base)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    if t.drop:
        os.chown(tmp, t.uid, t.gid)
    os.replace(tmp, path)


def _info(state: dict, base: Path) -> NodeInfo:
    ports = (int(state["amqp_port"]), int(state["mgmt_port"]), int(state["dist_port"]))
    return NodeInfo(state["nodename"], *ports, base)


def _current() -> tuple[NodeInfo, dict] | None:
    t = _target()
    if t is None:
        return None
    state = _read_state(t.base)
    if not state:
        return None
    return _info(state, t.base), state


# ---------------------------------------------------------------- probes


def _amqp_answers(info: NodeInfo, timeout: float = 1.0) -> bool:
    """True if info.amqp_port speaks AMQP 0-9-1 *and* is this node (not a stranger on the port)."""
    import socket

    try:
        with socket.create_connection((LOOPBACK, info.amqp_port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            data = b""
            while len(data) < 7 or len(data) < 8 + int.from_bytes(data[3:7], "big"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    # Frame type 1 (method) carrying connection.start (class 10, method 10);
    # server properties include cluster_name, which defaults to "<node id>@<host>".
    if len(data) < 11 or data[0] != 1 or data[7:11] != b"\x00\x0a\x00\x0a":
        return False
    return (info.nodename.split("@")[0] + "@").encode() in data


def _port_open(port: int, timeout: float = 0.5) -> bool:
    import socket

    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_free(port: int) -> bool:
    """True if nothing listens on port (on loopback or a wildcard address)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR ignores TIME_WAIT leftovers (the broker sets it too) but
        # still fails on a listening socket, ours or anybody else's.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _pick_ports() -> tuple[int, int, int]:
    chosen: list[int] = []
    for first in (AMQP_PORT, MGMT_PORT, DIST_PORT):
        for port in range(first, first + PORT_TRIES):
            if port not in chosen and _port_free(port):
                chosen.append(port)
                break
        else:
            raise BrokerUnavailable(
                f"No free port in {first}-{first + PORT_TRIES - 1}; stop whatever uses them and start again."
            )
    return chosen[0], chosen[1], chosen[2]


def _group_alive(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but is somebody else's
        return True
    return True


_NODE_COMMS = ("beam.smp", "erl_child_setup", "inet_gethost")


def _node_pids(base: Path, pgid: int | None = None) -> list[int]:
    """OS pids of this node's live processes (Linux /proc): working directory is its base dir, and
    either in the process group it was launched in or an Erlang VM process.  A learner's shell
    that merely `cd`-ed into the base dir is neither, so it is never waited for or killed."""
    target = str(base.resolve())
    me = os.getpid()
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != target:
                continue
            with open(f"/proc/{entry}/stat") as f:
                comm, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        fields = rest.split()  # state, ppid, pgrp, ...
        if fields[0] == "Z":
            continue
        if (pgid and int(fields[2]) == pgid) or comm.partition("(")[2] in _NODE_COMMS:
            pids.append(int(entry))
    return pids


def _alive(base: Path, pgid: int | None) -> bool:
    """Is any process of the node left?  Via /proc if there is one (zombies don't count), else its group."""
    if os.path.isdir("/proc/self"):
        return bool(_node_pids(base, pgid))
    return _group_alive(pgid)


def pid() -> int | None:
    """OS pid of the running node's Erlang VM (beam.smp), or None."""
    cur = _current()
    if cur is None:
        return None
    try:
        value = int(_pid_file(cur[0].base).read_text().strip())
        os.kill(value, 0)
    except (OSError, ValueError):
        return None
    return value


def running() -> NodeInfo | None:
    """The private node from the state file, if its AMQP port answers as that node."""
    cur = _current()
    if cur is None:
        return None
    info, _ = cur
    return info if _amqp_answers(info) else None


def wait_until_ready(timeout: float = 90.0, info: NodeInfo | None = None) -> NodeInfo:
    """Poll until the node answers on AMQP and management; raise LabError with the log path if not."""
    cur = _current()
    if cur is None:
        raise LabError(_NO_NODE)
    state = cur[1]
    info = info or cur[0]
    deadline = time.monotonic() + timeout
    amqp = False
    while True:
        amqp = amqp or _amqp_answers(info, timeout=0.5)
        if amqp and _port_open(info.mgmt_port):
            return info
        if not amqp and not _alive(info.base, state.get("pgid")):
            # Check once more: the VM may have answered between the two probes.
            if not _amqp_answers(info, timeout=0.5):
                raise BrokerUnavailable(
                    f"The private RabbitMQ node {info.nodename} exited while booting; "
                    f"read {_boot_log(info.base)} and {info.base / 'log'} for the reason."
                )
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(
                f"The private RabbitMQ node {info.nodename} did not answer on {LOOPBACK}:{info.amqp_port} "
                f"within {timeout:.0f} s; read {_boot_log(info.base)} for the reason, or wait longer."
            )
        time.sleep(0.2)


# ---------------------------------------------------------------- files & env


def _config(info: NodeInfo, memory_mb: int) -> str:
    return (
        "# Written by workqueue_lab.private_node at every start; edits are overwritten.\n"
        f"listeners.tcp.1 = {LOOPBACK}:{info.amqp_port}\n"
        f"management.tcp.ip = {LOOPBACK}\n"
        f"management.tcp.port = {info.mgmt_port}\n"
        "# Absolute, because a container (Binder) sees the whole host's RAM.\n"
        f"vm_memory_high_watermark.absolute = {memory_mb}MiB\n"
        "disk_free_limit.absolute = 50MB\n"
        "# loopback_users is left at its default: guest may log in over loopback only.\n"
    )


ADVANCED_CONFIG = (
    "%% Written by workqueue_lab.private_node.  Erlang terms, e.g.\n"
    "%% [{rabbit, [{channel_tick_interval, 1000}]}].\n"
    "%% Runtime changes: workqueue_lab.private_node.set_app_env(key, value).\n"
    "[].\n"
)


def _env(info: NodeInfo, t: _Target) -> dict[str, str]:
    """A small, explicit environment for the server and the CLI (nothing from a system rabbitmq-env.conf)."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env.setdefault("LANG", "C.UTF-8")
    base = info.base
    env.update(
        HOME=str(base),  # the Erlang cookie lives here; server and CLI must agree
        USER=t.user,
        LOGNAME=t.user,
        RABBITMQ_NODENAME=info.nodename,
        RABBITMQ_DIST_PORT=str(info.dist_port),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_CONFIG_FILES=str(base / "conf.d"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
        RABBITMQ_PID_FILE=str(_pid_file(base)),
        # Erlang distribution on loopback only: epmd (if this node starts it)
        # and the node's own dist listener, and the CLI's.
        ERL_EPMD_ADDRESS=LOOPBACK,
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=_LOOPBACK_DIST,
        RABBITMQ_CTL_ERL_ARGS=_LOOPBACK_DIST,
    )
    return env


def _prepare_files(info: NodeInfo, t: _Target, memory_mb: int) -> None:
    import secrets
    import string

    base = info.base
    for d in (base, base / "mnesia", base / "log", base / "conf.d"):
        d.mkdir(parents=True, exist_ok=True)
        if t.drop:
            os.chown(d, t.uid, t.gid)
    files = {
        base / "rabbitmq.conf": _config(info, memory_mb),
        base / "advanced.config": ADVANCED_CONFIG,
        base / "enabled_plugins": "[rabbitmq_management].\n",
        # Ours, so that a system /etc/rabbitmq/rabbitmq-env.conf (NODENAME=...) never applies.
        base / "rabbitmq-env.conf": "# Empty: private_node.py sets everything in the environment.\n",
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


def _check_reachable(t: _Target) -> None:
    """As root: make sure the node's user can write its base dir (every parent must be searchable)."""
    import subprocess

    res = subprocess.run(
        ["/bin/sh", "-c", 'test -w "$0" && test -x "$0"', str(t.base)], capture_output=True, **_drop_kwargs(t)
    )
    if res.returncode != 0:
        raise LabError(
            f"User {t.user} cannot reach {t.base}; set {settings.ENV_HOME} to a directory whose parents "
            "are world-searchable (e.g. under /tmp), or `chmod o+x` its parents."
        )


def _makedirs(path: Path, t: _Target) -> None:
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


class _Lock:
    """An exclusive flock on the base dir, so two kernels never boot two nodes."""

    def __init__(self, t: _Target) -> None:
        _makedirs(t.base, t)
        self.path = t.base / ".lock"
        self.t = t

    def __enter__(self) -> _Lock:
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


# ---------------------------------------------------------------- start / stop


def start(wait: float = 90.0, memory_mb: int = DEFAULT_MEMORY_MB, run_as: str | None = None) -> NodeInfo:
    """Start the private node, or reuse it if it already runs; wait=0 returns right after launching.

    memory_mb (the absolute memory high watermark) applies when the node boots, not to a reused one.
    run_as only matters when called as root: the user the node runs as (default ``wqlab``).
    """
    global _last_run_as
    if memory_mb < 64:
        raise LabError(f"memory_mb={memory_mb} is too small for RabbitMQ; use at least 64 (default 256).")
    t = _target(run_as, create_user=True)
    assert t is not None
    if run_as:
        _last_run_as = run_as
    return _start(t, wait, memory_mb, keep_ports=False)


def _start(t: _Target, wait: float, memory_mb: int, keep_ports: bool) -> NodeInfo:
    script = _script_or_fail()
    with _Lock(t):
        state = _read_state(t.base) or {}
        if state:
            info = _info(state, t.base)
            if _amqp_answers(info):
                return info
            if _alive(t.base, state.get("pgid")):
                # Launched by another kernel and still booting: just wait for it.
                if wait <= 0:
                    return info
                return wait_until_ready(wait, info)
        if t.drop:
            os.chown(t.base, t.uid, t.gid)
            _check_reachable(t)
        nodename = state.get("nodename") or _default_nodename(t)
        saved = [int(state.get(k) or 0) for k in ("amqp_port", "mgmt_port", "dist_port")]
        if all(saved) and _wait_ports_free(saved, 10.0 if keep_ports else 0.0):
            ports = (saved[0], saved[1], saved[2])  # the same node keeps its ports across boots
        elif all(saved) and keep_ports:
            raise BrokerUnavailable(
                f"Ports {saved} of the private node are still taken; free them and call restart() again."
            )
        else:
            ports = _pick_ports()
        info = NodeInfo(nodename, *ports, t.base)
        _prepare_files(info, t, memory_mb)
        pgid = _launch(script, info, t)
        state = {
            "nodename": info.nodename,
            "amqp_port": info.amqp_port,
            "mgmt_port": info.mgmt_port,
            "dist_port": info.dist_port,
            "user": t.user,
            "pgid": pgid,
            "memory_mb": memory_mb,
            "script": str(script),
            "started_at": time.time(),
        }
        _write_state(t.base, state, t)
    if wait <= 0:
        return info
    return wait_until_ready(wait, info)


def _wait_ports_free(ports: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if all(_port_free(p) for p in ports):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _launch(script: Path, info: NodeInfo, t: _Target) -> int:
    """Boot the server detached from the kernel; return its process group id."""
    import subprocess

    log_path = _boot_log(info.base)
    with open(log_path, "ab") as log:
        if t.drop:
            os.chown(log_path, t.uid, t.gid)
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {info.nodename} =====\n".encode())
        log.flush()
        # `sh -c '"$0" &'` forks the server and exits at once, so the server is
        # nobody's zombie-to-be and no Popen object lingers in the kernel; it
        # stays in the new session's process group (pgid == sh's pid).
        proc = subprocess.Popen(
            ["/bin/sh", "-c", '"$0" &', str(script)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=info.base,
            env=_env(info, t),
            start_new_session=True,
            close_fds=True,
            **_drop_kwargs(t),
        )
        proc.wait()
    return proc.pid


def stop(wait: float = 30.0) -> bool:
    """Stop the private node; True if one was running."""
    cur = _current()
    if cur is None:
        return False
    info, state = cur
    pgid = state.get("pgid")
    alive = _alive(info.base, pgid) or _amqp_answers(info)
    if not alive:
        return False
    deadline = time.monotonic() + wait
    beam = pid()
    if beam is not None and (beam in _node_pids(info.base, pgid) or not os.path.isdir("/proc/self")):
        # SIGTERM makes RabbitMQ (>= 3.8) stop gracefully, exactly like `rabbitmqctl shutdown`,
        # without paying ~1.5 s to boot the CLI's own Erlang VM.
        import signal

        os.kill(beam, signal.SIGTERM)
    else:
        try:
            ctl("shutdown", timeout=max(wait, 5.0))
        except LabError:
            pass
    while time.monotonic() < deadline and _alive(info.base, pgid):
        time.sleep(0.2)
    _kill_leftovers(info.base, pgid)
    return True


def _kill_leftovers(base: Path, pgid: int | None) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _node_pids(base, pgid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        for _ in range(25):
            if not _node_pids(base, pgid):
                return
            time.sleep(0.2)


def restart(wait: float = 90.0) -> NodeInfo:
    """Stop and start the node again: same ports, same data (durable queues survive)."""
    cur = _current()
    if cur is None:
        return start(wait)
    info, state = cur
    stop()
    t = _target_from_state(state, info.base)
    return _start(t, wait, int(state.get("memory_mb", DEFAULT_MEMORY_MB)), keep_ports=True)


# ---------------------------------------------------------------- CLI & app env


def ctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``rabbitmqctl -n NODE ARGS`` as the node's user with its environment (text output captured)."""
    import subprocess

    cur = _current()
    if cur is None:
        raise LabError(_NO_NODE)
    info, state = cur
    t = _target_from_state(state, info.base)
    script = Path(state.get("script") or _script_or_fail())
    cmd = [str(script.parent / "rabbitmqctl"), "-n", info.nodename, *args]
    try:
        return subprocess.run(
            cmd,
            env=_env(info, t),
            cwd=info.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **_drop_kwargs(t),
        )
    except subprocess.TimeoutExpired:
        raise LabError(
            f"`rabbitmqctl {' '.join(args)}` did not finish within {timeout:.0f} s; "
            "check the node with `python -m workqueue_lab.private_node status`."
        ) from None


def _check_key(key: str) -> None:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise LabError(f"{key!r} is not a RabbitMQ setting name; use one like 'consumer_timeout'.")


def set_app_env(key: str, value: int) -> None:
    """Set ``rabbit`` application env KEY to an integer at runtime (e.g. consumer_timeout in ms)."""
    _check_key(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"set_app_env({key!r}, {value!r}) needs an integer value, e.g. 3000.")
    res = ctl("eval", f"application:set_env(rabbit, {key}, {value}).")
    if res.returncode != 0 or res.stdout.strip() != "ok":
        detail = (res.stderr or res.stdout).strip()
        raise LabError(f"Could not set {key} on the private node ({detail}); start it with start().")


def get_app_env(key: str) -> int | None:
    """The ``rabbit`` application env KEY as an integer, or None if unset or not an integer."""
    import re

    _check_key(key)
    res = ctl("eval", f"application:get_env(rabbit, {key}).")
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()
        raise LabError(f"Could not read {key} from the private node ({detail}); start it with start().")
    m = re.fullmatch(r"\{ok,\s*(-?\d+)\}", res.stdout.strip())
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m workqueue_lab.private_node {start,stop,status,url,restart}``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m workqueue_lab.private_node", description=_DOC_FIRST_LINE)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start the node, or reuse it")
    p_start.add_argument("--background", action="store_true", help="launch and return at once")
    p_start.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="memory watermark, MiB")
    p_start.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the node")
    sub.add_parser("stop", help="stop the node")
    sub.add_parser("status", help="show the node (exit 1 if not running)")
    sub.add_parser("url", help="print the AMQP URL of the running node (exit 1 if none)")
    p_restart = sub.add_parser("restart", help="stop and start again, same ports and data")
    p_restart.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the node")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "start":
            if args.background:
                already = running()
                info = already or start(wait=0, memory_mb=args.memory_mb)
                verb = "is running" if already else "is booting"
                log = _boot_log(info.base)
                print(f"Private RabbitMQ node {info.nodename} {verb} at {info.url} (log {log})")
            else:
                t0 = time.monotonic()
                info = start(wait=args.wait, memory_mb=args.memory_mb)
                print(f"Private RabbitMQ node {info.nodename} ready at {info.url} "
                      f"(management {info.mgmt_url}) in {time.monotonic() - t0:.1f} s")
        elif args.cmd == "stop":
            print("stopped" if stop() else "no private node was running")
        elif args.cmd == "restart":
            info = restart(wait=args.wait)
            print(f"Private RabbitMQ node {info.nodename} restarted at {info.url}")
        elif args.cmd == "url":
            info = running()
            if info is None:
                print("no private node is running", file=sys.stderr)
                return 1
            print(info.url)
        elif args.cmd == "status":
            info = running()
            if info is None:
                print("no private node is running")
                return 1
            print(f"node:       {info.nodename}\npid:        {pid()}\namqp:       {info.url}\n"
                  f"management: {info.mgmt_url}\nbase:       {info.base}")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
