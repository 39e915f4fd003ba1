"""Which RabbitMQ a private node or cluster runs, and how to run its programs.

Two kinds, chosen by ``settings.rabbitmq_series()`` (``WORKQUEUE_LAB_RABBITMQ``):
- ``system``: the rabbitmq-server the OS package installed (Debian 12: 3.10), run directly;
- ``4.0``: a release the lab built into a chroot (``chroot``), run with ``chroot ROOT`` as root.  Paths a
  node is given (its base dir, config, logs) are the paths seen from inside; ``host`` maps them back.

Everything else about a node (ports, files, users, lifecycle) is the same for both.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ... import settings
from ...errors import LabError
from . import chroot

CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def server_script() -> Path | None:
    """The installed, real ``rabbitmq-server`` script (not Debian's root-only wrapper), or None."""
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


@dataclass(frozen=True)
class Install:
    """One RabbitMQ: its series, the root its programs live under, and its server script seen from there."""

    series: str
    root: Path
    script: Path

    @property
    def chrooted(self) -> bool:
        return self.root != Path("/")

    def inside(self, host: Path) -> str:
        """The path a process of this install sees for the host path ``host``."""
        if not self.chrooted:
            return str(host)
        try:
            return "/" + str(Path(host).resolve().relative_to(self.root.resolve()))
        except ValueError:
            raise LabError(f"{host} is outside RabbitMQ {self.series}'s chroot {self.root}; "
                           "its nodes keep their files inside it.") from None

    def host(self, inner: Path | str) -> Path:
        """The host path of ``inner``, a path seen from inside this install."""
        return self.root / str(inner).lstrip("/") if self.chrooted else Path(inner)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this install (prefixed with ``chroot ROOT`` for a chroot)."""
        if not self.chrooted:
            return argv
        return [shutil.which("chroot") or "/usr/sbin/chroot", str(self.root), *argv]

    def ctl_command(self, *args: str) -> list[str]:
        return self.command([str(self.script.parent / "rabbitmqctl"), *args])

    def env(self) -> dict[str, str]:
        """What a node's environment needs on top of its own settings: a chroot's epmd port and PATH."""
        if not self.chrooted:
            return {}
        return {"ERL_EPMD_PORT": str(chroot.epmd_port(self.root)), "PATH": CHROOT_PATH}

    def prepare(self) -> None:
        """Before a node of this install boots: the chroot's /proc and epmd port."""
        if self.chrooted:
            chroot.prepare(self.root)

    def scratch(self, base: Path) -> tuple[str, str]:
        """A directory the lab and a program inside a node of ``base`` share: (here, as the node sees it).

        The system's /tmp for the installed RabbitMQ (a node that dropped root can write there); ``base``/tmp for
        a chroot, whose nodes see a /tmp of their own."""
        if not self.chrooted:
            import tempfile

            return tempfile.gettempdir(), tempfile.gettempdir()
        tmp = base / "tmp"
        tmp.mkdir(exist_ok=True)
        return str(tmp), self.inside(tmp)

    def release(self) -> None:
        """After a node of this install stopped: undo the chroot's mount and end its epmd if no node is left."""
        if self.chrooted:
            chroot.release_if_idle(self.root)


def system(script: Path) -> Install:
    return Install("system", Path("/"), script)


def installed() -> Install:
    """The system's RabbitMQ (its script where the OS package put it; Debian's path if none is installed)."""
    return system(server_script() or DEBIAN_SCRIPT)


def for_series(series: str | None = None, build: bool = False) -> Install | None:
    """The install for ``series`` (default: ``settings.rabbitmq_series()``); None if it is not there.

    ``build=True`` builds a chroot release that is not built yet (or raises LabError saying why it cannot).
    """
    series = series or settings.rabbitmq_series()
    if series == "system":
        script = server_script()
        return system(script) if script is not None else None
    if chroot.built(series) is None:
        if not build:
            return None
        chroot.build(series)
    return Install(series, chroot.root_of(series), chroot.SCRIPT)


def available(series: str | None = None) -> str:
    """"" if a node of ``series`` can be started here (built, or buildable), else one sentence why not."""
    series = series or settings.rabbitmq_series()
    if for_series(series) is not None:
        return ""
    if series == "system":
        return (f"RabbitMQ is not installed; install it (e.g. `apt-get install rabbitmq-server`) or point "
                f"{settings.ENV_URL} at a broker you have.")
    return chroot.why_cannot_build(series)


def install_of(series: str) -> Install:
    """The install of a node that runs (or ran) ``series``: it was built or found when that node started."""
    found = for_series(series)
    if found is None:
        raise LabError(f"RabbitMQ {series} is not available here any more; start the node again.")
    return found
