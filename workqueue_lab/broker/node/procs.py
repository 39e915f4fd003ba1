"""A node's OS processes, found through /proc (by working directory and process group), and ended by PID."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path


def group_alive(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but is somebody else's
        return True
    return True


log = logging.getLogger(__name__)

NODE_COMMS = ("beam.smp", "erl_child_setup", "inet_gethost")


def processes(link: str, target: str) -> Iterator[tuple[int, str, int]]:
    """(pid, command name, process group) of every live process (zombies left out, this one too) whose
    ``/proc/<pid>/<link>`` (``cwd`` or ``root``) is ``target``."""
    return _scan(link, lambda path: path == target)


def processes_under(link: str, places: list[str]) -> Iterator[tuple[int, str, int]]:
    """The same for every process whose ``/proc/<pid>/<link>`` is one of ``places`` or below one."""
    return _scan(link, lambda path: any(path == p or path.startswith(p + "/") for p in places))


def _scan(link: str, wanted) -> Iterator[tuple[int, str, int]]:
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if not wanted(os.readlink(f"/proc/{entry}/{link}")):
                continue
            with open(f"/proc/{entry}/stat") as f:
                comm, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        fields = rest.split()  # state, ppid, pgrp, ...
        if fields[0] != "Z":
            yield int(entry), comm.partition("(")[2], int(fields[2])


def node_pids(base: Path, pgid: int | None = None) -> list[int]:
    """OS pids of this node's live processes (Linux /proc): working directory is its base dir, and
    either in the process group it was launched in or an Erlang VM process.  A learner's shell
    that merely `cd`-ed into the base dir is neither, so it is never waited for or killed."""
    return [pid for pid, comm, group in processes("cwd", str(base.resolve()))
            if (pgid and group == pgid) or comm in NODE_COMMS]


def alive(base: Path, pgid: int | None) -> bool:
    """Is any process of the node left?  Via /proc if there is one (zombies don't count), else its group."""
    if os.path.isdir("/proc/self"):
        return bool(node_pids(base, pgid))
    return group_alive(pgid)


def kill_leftovers(base: Path, pgid: int | None) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = node_pids(base, pgid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, sig)
            except OSError as exc:  # gone meanwhile, or not ours to signal
                log.debug("kill %s %s: %s", p, sig, exc)
        for _ in range(25):
            if not node_pids(base, pgid):
                return
            time.sleep(0.2)

