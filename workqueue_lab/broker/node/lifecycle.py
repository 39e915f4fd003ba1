"""Start, find, wait for, stop and restart the learner's private node (one per user, reused across kernels)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ... import settings
from ...errors import BrokerUnavailable, LabError
from ..address import port_open
from . import install as installs
from . import users
from .ctl import ctl
from .files import (
    DEFAULT_MEMORY_MB,
    NO_NODE,
    NodeInfo,
    NodeLock,
    boot_log,
    check_reachable,
    current,
    info_from_state,
    node_env,
    pid_file,
    prepare_files,
    read_state,
    script_or_fail,
    write_state,
)
from .ports import LOOPBACK, amqp_answers, pick_ports, wait_ports_free
from .procs import alive, kill_leftovers, node_pids
from .users import Target, default_nodename, drop_kwargs, target, target_from_state

log = logging.getLogger(__name__)

BOOT_MARK = "====="  # starts the boot log's part for one launch

def pid() -> int | None:
    """OS pid of the running node's Erlang VM (beam.smp), or None."""
    cur = current()
    if cur is None:
        return None
    try:
        value = int(pid_file(cur[0].base).read_text().strip())
        os.kill(value, 0)
    except (OSError, ValueError):
        return None
    return value


def running() -> NodeInfo | None:
    """The private node from the state file, if its AMQP port answers as that node."""
    cur = current()
    if cur is None:
        return None
    info, _ = cur
    return info if amqp_answers(info.amqp_port, info.nodename) else None


def wait_until_ready(timeout: float = 90.0, info: NodeInfo | None = None) -> NodeInfo:
    """Poll until the node answers on AMQP and management; raise LabError with the log path if not."""
    cur = current()
    if cur is None:
        raise LabError(NO_NODE)
    state = cur[1]
    info = info or cur[0]
    deadline = time.monotonic() + timeout
    amqp = False
    while True:
        amqp = amqp or amqp_answers(info.amqp_port, info.nodename, timeout=0.5)
        if amqp and port_open(LOOPBACK, info.mgmt_port):
            return info
        if not amqp and not alive(info.base, state.get("pgid")):
            # Check once more: the VM may have answered between the two probes.
            if not amqp_answers(info.amqp_port, info.nodename, timeout=0.5):
                raise BrokerUnavailable(
                    f"The private RabbitMQ node {info.nodename} exited while booting; "
                    f"read {boot_log(info.base)} and {info.base / 'log'} for the reason."
                )
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(
                f"The private RabbitMQ node {info.nodename} did not answer on {LOOPBACK}:{info.amqp_port} "
                f"within {timeout:.0f} s; read {boot_log(info.base)} for the reason, or wait longer."
            )
        time.sleep(0.2)


def start(wait: float = 90.0, memory_mb: int = DEFAULT_MEMORY_MB, run_as: str | None = None,
          series: str | None = None) -> NodeInfo:
    """Start the private node, or reuse it if it already runs; wait=0 returns right after launching.

    memory_mb (the absolute memory high watermark) applies when the node boots, not to a reused one.
    run_as only matters when called as root: the user the node runs as (default ``wqlab``).
    series: which RabbitMQ (default ``settings.rabbitmq_series()``); a release the lab builds ("4.0") is
    built first if needed, or refused in one sentence where it cannot be.
    """
    if memory_mb < 64:
        raise LabError(f"memory_mb={memory_mb} is too small for RabbitMQ; use at least 64 (default 256).")
    series = series or settings.rabbitmq_series()
    if series != "system":
        installs.for_series(series, build=True)
    t = target(run_as, create_missing=True, series=series)
    assert t is not None
    if run_as:
        users.remember_run_as(run_as)
    return start_as(t, wait, memory_mb, keep_ports=False)


def start_as(t: Target, wait: float, memory_mb: int, keep_ports: bool, retry: bool = True) -> NodeInfo:
    """Boot (or reuse) the node of ``t``.  A first boot whose ports were taken between picking and binding
    (another node started at the same moment) picks new ports once and boots again."""
    script = t.install.script if t.install.chrooted else script_or_fail()
    with NodeLock(t):
        state = read_state(t.base) or {}
        if state:
            info = info_from_state(state, t.base)
            if amqp_answers(info.amqp_port, info.nodename):
                return info
            if alive(t.base, state.get("pgid")):
                # Launched by another kernel and still booting: just wait for it.
                if wait <= 0:
                    return info
                return wait_until_ready(wait, info)
        if t.drop:
            os.chown(t.base, t.uid, t.gid)
            check_reachable(t)
        nodename = state.get("nodename") or default_nodename(t)
        saved = [int(state.get(k) or 0) for k in ("amqp_port", "mgmt_port", "dist_port")]
        if all(saved) and wait_ports_free(saved, 10.0 if keep_ports else 0.0):
            ports = (saved[0], saved[1], saved[2])  # the same node keeps its ports across boots
        elif all(saved) and keep_ports:
            raise BrokerUnavailable(
                f"Ports {saved} of the private node are still taken; free them and call restart() again."
            )
        else:
            ports = pick_ports()
        info = NodeInfo(nodename, *ports, t.base, t.install.series)
        prepare_files(info, t, memory_mb)
        pgid = launch(script, info, t)
        state = {
            "nodename": info.nodename,
            "amqp_port": info.amqp_port,
            "mgmt_port": info.mgmt_port,
            "dist_port": info.dist_port,
            "user": t.user,
            "pgid": pgid,
            "memory_mb": memory_mb,
            "script": str(script),
            "rabbitmq": t.install.series,
            "started_at": time.time(),
        }
        write_state(t.base, state, t)
    if wait <= 0:
        return info
    try:
        return wait_until_ready(wait, info)
    except BrokerUnavailable:
        if not port_taken_at_boot(info.base) or (not keep_ports and not retry):
            raise
        if not keep_ports:
            return start_as(t, wait, memory_mb, keep_ports=False, retry=False)
        # a restart keeps its ports (clients hold its URL), and another node took one while this one was down
        raise BrokerUnavailable(
            f"Another program took a port of the private node ({info.amqp_port}, {info.mgmt_port} or "
            f"{info.dist_port}) while it was down; stop that program, or run `workqueue-lab node stop` and "
            "`workqueue-lab node start` to boot on new ports."
        ) from None


def port_taken_at_boot(base: Path) -> bool:
    """Did the last boot stop because a port was taken?  (Its part of the boot log says eaddrinuse.)"""
    try:
        text = boot_log(base).read_text(errors="replace")
    except OSError:
        return False
    return "eaddrinuse" in text.rpartition(BOOT_MARK)[2]


def launch(script: Path, info: NodeInfo, t: Target) -> int:
    """Boot the server detached from the kernel; return its process group id."""
    import subprocess

    log_path = boot_log(info.base)
    with open(log_path, "ab") as log:
        if t.drop:
            os.chown(log_path, t.uid, t.gid)
        log.write(f"\n{BOOT_MARK} {time.strftime('%Y-%m-%d %H:%M:%S')} starting {info.nodename} =====\n".encode())
        log.flush()
        # `sh -c '... "$0" &'` forks the server and exits at once, so the server is
        # nobody's zombie-to-be and no Popen object lingers in the kernel; it
        # stays in the new session's process group (pgid == sh's pid).  The `cd` is
        # for a chroot, which starts in its own "/": the node's processes are found by
        # their working directory (procs.node_pids).  It runs before the fork: in
        # `cd "$1" && "$0" &` the `&` backgrounds the whole list, and for the moment
        # between that fork and its `cd` the only process of a booting node sat in "/",
        # where wait_until_ready could not see it and reported a node "exited while booting".
        t.install.prepare()
        proc = subprocess.Popen(
            t.install.command(["/bin/sh", "-c", 'cd "$1" || exit 1; "$0" &', str(script),
                               t.install.inside(info.base)]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=info.base,
            env=node_env(info, t),
            start_new_session=True,
            close_fds=True,
            **drop_kwargs(t),
        )
        proc.wait()
    return proc.pid


def stop(wait: float = 30.0) -> bool:
    """Stop the private node; True if one was running."""
    cur = current()
    if cur is None:
        return False
    info, state = cur
    pgid = state.get("pgid")
    running_now = alive(info.base, pgid) or amqp_answers(info.amqp_port, info.nodename)
    if not running_now:  # it died without us (the OOM killer, a kill by hand): undo what its boot set up
        target_from_state(state, info.base).install.release()
        return False
    deadline = time.monotonic() + wait
    beam = pid()
    if beam is not None and (beam in node_pids(info.base, pgid) or not os.path.isdir("/proc/self")):
        # SIGTERM makes RabbitMQ (>= 3.8) stop gracefully, exactly like `rabbitmqctl shutdown`,
        # without paying ~1.5 s to boot the CLI's own Erlang VM.
        import signal

        os.kill(beam, signal.SIGTERM)
    else:
        try:
            ctl("shutdown", timeout=max(wait, 5.0))
        except LabError as exc:  # the wait below and kill_leftovers end it anyway
            log.debug("rabbitmqctl shutdown: %s", exc)
    while time.monotonic() < deadline and alive(info.base, pgid):
        time.sleep(0.2)
    kill_leftovers(info.base, pgid)
    target_from_state(state, info.base).install.release()
    return True


def kill(wait: float = 10.0) -> bool:
    """SIGKILL the node's Erlang VM by PID (no clean shutdown, like a power cut); True if one was running.

    Its helper processes (erl_child_setup, inet_gethost) go too, so ``restart()`` finds the ports free.
    """
    import signal

    cur = current()
    beam = pid()
    if cur is None or beam is None:
        return False
    info, state = cur
    os.kill(beam, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and beam in node_pids(info.base, state.get("pgid")):
        time.sleep(0.05)
    kill_leftovers(info.base, state.get("pgid"))
    target_from_state(state, info.base).install.release()
    return True


def restart(wait: float = 90.0) -> NodeInfo:
    """Stop and start the node again: same ports, same data (durable queues survive)."""
    cur = current()
    if cur is None:
        return start(wait)
    info, state = cur
    stop()
    t = target_from_state(state, info.base)
    return start_as(t, wait, int(state.get("memory_mb", DEFAULT_MEMORY_MB)), keep_ports=True)

