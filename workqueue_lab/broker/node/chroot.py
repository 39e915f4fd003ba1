"""A RabbitMQ release the OS does not ship, built once into a chroot from Debian's own packages.

RabbitMQ 4.0 needs Erlang 26 or 27, which will not run on Debian 12; Debian 13 ships both.  So the lab
runs ``debootstrap --variant=minbase --include=rabbitmq-server trixie`` into a cache directory
(``settings.builds()``, about 40 s and 370 MB, once per machine user) and boots nodes inside it with
``chroot``, as root, on their own loopback ports, exactly like the private node (``lifecycle``).

What a running chroot needs, and what ``release`` undoes when its last node is gone:
- ``/proc`` mounted inside it (RabbitMQ reads its own memory use there; it will not boot without);
  ``/dev`` needs no mount: debootstrap creates the device nodes a node uses;
- an epmd of its own on a port of its own (``ERL_EPMD_PORT``), so ending it never touches the nodes
  of the host's epmd.  Both are found by PID: every process whose root directory is the chroot.

The Debian mirror is the one apt on this machine is configured with (``apt_mirror``): no registry host
is written in the project.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ... import settings
from ...errors import LabError
from . import procs
from .ports import LOOPBACK, port_free

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """A RabbitMQ release series the lab can build: from which Debian release's packages."""

    series: str
    suite: str  # Debian's codename for the release that ships it
    debian: str  # in words, for messages


RELEASES = {"4.0": Release("4.0", "trixie", "Debian 13")}
SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # as seen from inside the chroot
DEBIAN_SUITES = {"bullseye", "bookworm", "trixie", "forky", "sid", "oldstable", "stable", "testing", "unstable"}
EPMD_PORTS = range(4370, 4470)  # the host's epmd keeps 4369
SOURCES = Path("/etc/apt/sources.list")
SOURCES_D = Path("/etc/apt/sources.list.d")


def release(series: str) -> Release:
    try:
        return RELEASES[series]
    except KeyError:
        raise LabError(f"The lab cannot build RabbitMQ {series!r}; it builds {', '.join(RELEASES)}.") from None


def build_dir(series: str) -> Path:
    return settings.builds() / f"rabbitmq-{series}"


def root_of(series: str) -> Path:
    """The chroot's directory (it exists once the build finished)."""
    return build_dir(series) / "root"


def built(series: str) -> dict | None:
    """What the build recorded (version, seconds, MB, mirror), or None if the release is not built."""
    root = root_of(series)
    try:
        meta = json.loads((build_dir(series) / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if (root / SCRIPT.relative_to("/")).exists() else None


# --- building -------------------------------------------------------------------------------------------


def apt_mirror(texts: Iterable[str]) -> str | None:
    """The first Debian archive apt is configured with (one-line ``deb`` or deb822 ``.sources`` texts)."""
    for text in texts:
        for uri, suites in _deb_entries(text):
            if any(s in DEBIAN_SUITES for s in suites) and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    return None


def _deb_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every binary-package entry, in either of apt's two formats."""
    if re.search(r"^\s*URIs:", text, re.M | re.I):  # deb822: blank-line separated stanzas
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.strip().startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split()
        return
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # drop [options] and comments
        if len(line) >= 3 and line[0] == "deb":
            yield line[1], [line[2]]


def _apt_texts() -> list[str]:
    paths = [SOURCES, *sorted(SOURCES_D.glob("*.list")), *sorted(SOURCES_D.glob("*.sources"))]
    texts = []
    for path in paths:
        with contextlib.suppress(OSError):
            texts.append(path.read_text(errors="replace"))
    return texts


def needs_root(series: str) -> str:
    """The one sentence for a plain user who asks for a release the lab builds (built already or not)."""
    return (f"RabbitMQ {series} runs as root in a chroot the lab builds from {release(series).debian}'s packages; "
            f"run the lab as root, or unset {settings.ENV_RABBITMQ} to use the installed rabbitmq-server.")


def why_cannot_build(series: str) -> str:
    """"" if this machine can build ``series`` now, else one sentence saying why and what to do instead."""
    rel = release(series)
    what = f"RabbitMQ {series} runs from a chroot of {rel.debian}'s packages that the lab builds with debootstrap"
    instead = f"or set {settings.ENV_URL} to a RabbitMQ {series} you have"
    if os.geteuid() != 0:
        return needs_root(series)
    if not _debootstrap():
        return f"{what}, and debootstrap is not installed; `apt-get install debootstrap`, {instead}."
    if not shutil.which("chroot") and not Path("/usr/sbin/chroot").exists():
        return f"{what}, and the chroot command is missing; install coreutils, {instead}."
    if apt_mirror(_apt_texts()) is None:
        return (f"{what}, and apt on this machine names no Debian mirror (/etc/apt/sources.list or "
                f"sources.list.d) to fetch them from; add one, {instead}.")
    return ""


def _debootstrap() -> str | None:
    return shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)


def build(series: str, say: Callable[[str], None] = print) -> dict:
    """Build ``series`` into its chroot unless it is built already; returns what ``built`` returns."""
    if (meta := built(series)) is not None:
        return meta
    if why := why_cannot_build(series):
        raise LabError(why)
    rel, where = release(series), build_dir(series)
    where.mkdir(parents=True, exist_ok=True)
    with _locked(where / ".lock"):
        if (meta := built(series)) is not None:  # another process built it while we waited
            return meta
        mirror = apt_mirror(_apt_texts())
        partial, log_path = where / "root.partial", where / "debootstrap.log"
        shutil.rmtree(partial, ignore_errors=True)
        say(f"Building RabbitMQ {series} from {rel.debian}'s packages into {where} (once; about a minute)...")
        started = time.monotonic()
        cmd = [_debootstrap(), "--variant=minbase", "--include=rabbitmq-server", rel.suite, str(partial), mirror]
        with open(log_path, "wb") as out:
            try:
                done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      timeout=1200)
            except subprocess.TimeoutExpired:
                done = None
        if done is None or done.returncode != 0:
            last = _last_line(log_path)
            raise LabError(f"debootstrap could not build RabbitMQ {series} from {mirror} ({last}); check that "
                           f"this machine reaches that mirror, then start again (log: {log_path}).")
        version = installed_version(partial)
        if not version.startswith(series + "."):
            raise LabError(f"{rel.debian}'s packages gave RabbitMQ {version}, not {series}; the lab's build recipe "
                           f"needs updating (log: {log_path}).")
        shutil.rmtree(root_of(series), ignore_errors=True)
        os.rename(partial, root_of(series))
        meta = {"series": series, "version": version, "suite": rel.suite, "mirror": mirror,
                "seconds": round(time.monotonic() - started, 1), "mb": round(_disk_bytes(root_of(series)) / 2**20),
                "built_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        (where / "build.json").write_text(json.dumps(meta, indent=2) + "\n")
        say(f"Built RabbitMQ {version} in {meta['seconds']:.0f} s ({meta['mb']} MB).")
        return meta


def installed_version(root: Path) -> str:
    """The RabbitMQ version a root holds, from its ``rabbitmq_server-X.Y.Z`` directory."""
    found = sorted(p.name.split("-", 1)[1] for p in (root / "usr/lib/rabbitmq/lib").glob("rabbitmq_server-*"))
    return found[-1] if found else "?"


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:160] if lines else "no output"


def _disk_bytes(root: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- running: /proc, epmd, and undoing both ----------------------------------------------------------------


def processes(root: Path) -> list[tuple[int, str]]:
    """(pid, command name) of every live process whose root directory is ``root``."""
    return [(pid, comm) for pid, comm, _ in procs.processes("root", str(root.resolve()))]


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (from /proc/mounts)."""
    prefix = str(root.resolve())
    points = []
    with open("/proc/mounts") as f:
        for line in f:
            point = line.split()[1].encode().decode("unicode_escape")  # /proc/mounts writes a space as \040
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def prepare(root: Path) -> int:
    """Make the chroot ready for a node: /proc mounted, its epmd listening; returns epmd's port.

    The lab starts epmd itself, before any node: nodes booting in parallel (a cluster) would each try to
    start one, and a node that loses that race may exit while booting.
    """
    with _locked(root.parent / ".lock"):
        proc = root / "proc"
        if str(proc.resolve()) not in mounts_under(root):
            done = subprocess.run(["mount", "-t", "proc", "proc", str(proc)], capture_output=True, text=True)
            if done.returncode != 0:
                raise LabError(f"Could not mount /proc in {root} ({done.stderr.strip()}); the node needs it. "
                               "Run as root outside a container that forbids mounts.")
        port = _epmd_port(root)
        if not any(comm == "epmd" for _, comm in processes(root)):
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ERL_EPMD_PORT": str(port), "ERL_EPMD_ADDRESS": LOOPBACK}
            subprocess.run([shutil.which("chroot") or "/usr/sbin/chroot", str(root), "/usr/bin/epmd", "-daemon"],
                           env=env, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while port_free(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if port_free(port):
            raise LabError(f"The epmd of {root} did not start on port {port}; free that port, or stop the process "
                           "that holds it, and start the node again.")
        return port


def epmd_port(root: Path) -> int:
    """The port of this chroot's epmd (chosen by ``prepare``)."""
    try:
        return int(json.loads((root.parent / "epmd.json").read_text())["port"])
    except (OSError, ValueError, KeyError):
        return _epmd_port(root)


def _epmd_port(root: Path) -> int:
    path = root.parent / "epmd.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        port = int(json.loads(path.read_text())["port"])
        if any(comm == "epmd" for _, comm in processes(root)) or port_free(port):
            return port  # its own epmd listens there, or nobody does yet
    for port in EPMD_PORTS:
        if port_free(port):
            path.write_text(json.dumps({"port": port}) + "\n")
            return port
    raise LabError(f"No free port in {EPMD_PORTS.start}-{EPMD_PORTS.stop - 1} for the chroot's epmd; free one.")


def release_if_idle(root: Path, wait: float = 10.0) -> bool:
    """Once no node runs in the chroot: end its epmd (by PID) and unmount /proc.  True if nothing is left."""
    with _locked(root.parent / ".lock"):
        if any(comm != "epmd" for _, comm in processes(root)):
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid, _ in processes(root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait / 2
            while processes(root) and time.monotonic() < deadline:
                time.sleep(0.05)
        for point in sorted(mounts_under(root), reverse=True):
            for _ in range(25):
                if subprocess.run(["umount", point], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                log.warning("could not unmount %s", point)
        return not processes(root) and not mounts_under(root)
