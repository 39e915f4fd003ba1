"""Who runs the private node: the caller, or (as root) an unprivileged user, and where its files live."""

from __future__ import annotations

import os
from pathlib import Path

from ... import settings
from ...errors import LabError
from . import chroot
from . import install as installs
from .install import Install

DEFAULT_USER = "wqlab"  # the unprivileged account the node runs as when we are root


_last_run_as: str | None = None


class Target:
    """Who runs the node (user, uid, gid), where its files live (host path), whether we must drop root for it,
    and which RabbitMQ it runs (``install``)."""

    __slots__ = ("user", "uid", "gid", "base", "drop", "install")

    def __init__(self, user: str, uid: int, gid: int, base: Path, drop: bool, install: Install | None = None) -> None:
        self.user, self.uid, self.gid, self.base, self.drop = user, uid, gid, base, drop
        self.install = install or installs.installed()

    def at(self, base: Path) -> Target:
        """The same user and RabbitMQ, with files at ``base`` (a cluster member's)."""
        return Target(self.user, self.uid, self.gid, base, self.drop, self.install)


def remember_run_as(user: str) -> None:
    """Let later calls in this process (stop, ctl) find the node of ``user`` without being told again."""
    global _last_run_as
    _last_run_as = user


def target(run_as: str | None = None, create_missing: bool = False, series: str | None = None) -> Target | None:
    """Who runs the node and where its files live; None if that user does not exist (and is not created), or
    the RabbitMQ ``series`` (default: ``settings.rabbitmq_series()``) is not built."""
    import pwd

    series = series or settings.rabbitmq_series()
    if series != "system":
        return _chroot_target(series, run_as)
    euid = os.geteuid()
    if euid != 0:
        me = pwd.getpwuid(euid)
        if run_as not in (None, me.pw_name):
            raise LabError(
                f"run_as={run_as!r} needs root; call start() without run_as to run the node as {me.pw_name}."
            )
        return Target(me.pw_name, euid, me.pw_gid, settings.home() / "node", False)
    user = run_as or _last_run_as or DEFAULT_USER
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        if not create_missing:
            return None
        if user != DEFAULT_USER:
            raise LabError(
                f"User {user!r} does not exist; create it (useradd --create-home {user}) or omit run_as."
            ) from None
        create_user(user)
        pw = pwd.getpwnam(user)
    if os.environ.get(settings.ENV_HOME):
        base = settings.home() / "node"
    else:  # the run_as user's own settings.home() equivalent
        base = Path(pw.pw_dir) / ".cache" / "workqueue-lab" / "node"
    return Target(user, pw.pw_uid, pw.pw_gid, base, pw.pw_uid != 0)


def _chroot_target(series: str, run_as: str | None) -> Target | None:
    """A release built into a chroot runs as root inside it, its files under settings.home() as seen from there."""
    if os.geteuid() != 0 or run_as not in (None, "root"):
        raise LabError(chroot.needs_root(series))
    found = installs.for_series(series)
    if found is None:
        return None
    return Target("root", 0, 0, found.host(settings.home().resolve() / "node"), False, found)


def create_user(user: str) -> None:
    import subprocess

    cmd = ["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", user]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 and res.returncode != 9:  # 9: already exists (race)
        raise LabError(
            f"Could not create user {user!r} ({res.stderr.strip()}); create it with `{' '.join(cmd)}`."
        )


def drop_kwargs(t: Target) -> dict:
    """Popen keyword arguments that run a child as the node's user."""
    if not t.drop:
        return {}
    return {"user": t.uid, "group": t.gid, "extra_groups": os.getgrouplist(t.user, t.gid)}


def target_from_state(state: dict, base: Path) -> Target:
    import pwd

    series = state.get("rabbitmq", "system")
    if series != "system":
        found = installs.for_series(series)
        if found is None:
            raise LabError(f"RabbitMQ {series}, which the node at {base} runs, is no longer built; delete {base} "
                           "and start again.")
        return Target("root", 0, 0, base, False, found)
    user = state["user"]
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise LabError(f"The private node's user {user!r} no longer exists; delete {base} and start again.") from None
    script = state.get("script")
    found = installs.system(Path(script)) if script else installs.installed()
    return Target(user, pw.pw_uid, pw.pw_gid, base, os.geteuid() == 0 and pw.pw_uid != 0, found)


def default_nodename(t: Target) -> str:
    import re

    series = "" if t.install.series == "system" else "rmq" + t.install.series.replace(".", "") + "-"
    name = "wqlab-" + series + re.sub(r"[^A-Za-z0-9_-]", "_", t.user)
    if os.environ.get(settings.ENV_HOME):
        # A non-default home (tests, second checkout) must not collide with the
        # learner's own node in epmd, which knows nodes by name only.
        import hashlib

        name += "-" + hashlib.sha1(str(t.base.resolve()).encode()).hexdigest()[:6]
    return f"{name}@localhost"

