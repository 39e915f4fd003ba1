"""Helpers of the Binder replay shared by test_binder.py and test_front_door.py: the wheelhouse pip installs
from offline, the non-root Binder user, and copying a checkout (no test module imports another)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "binder"
BINDER_USER = "wqbinder"
NOTEBOOK = "notebooks/01_work_queue_pattern.ipynb"
REPO2DOCKER = "jupyter-repo2docker==2026.4.0"
WAITING = "Waiting for the lab's private RabbitMQ node"
WHEELHOUSE = Path(os.environ.get("WORKQUEUE_LAB_WHEELHOUSE", "/var/tmp/workqueue-lab-wheelhouse"))
# What repo2docker's image has and a fresh clone has: no virtualenvs, caches or run output.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "artifacts", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "*.egg-info", ".ipynb_checkpoints", "build", "dist", "*.stamp")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


# --------------------------------------------------------------------------- helpers


class Timings(dict):
    """Phase -> seconds, written to artifacts/binder/timings.json as it goes."""

    def phase(self, name: str):
        timings = self

        class _Phase:
            def __enter__(self):
                self.t0 = time.monotonic()

            def __exit__(self, *exc):
                timings[name] = round(time.monotonic() - self.t0, 1)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")

        return _Phase()


def _run(cmd, *, log: Path, timeout: float, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run cmd with stdout+stderr to log; on failure, raise with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n")
        out.flush()
        try:
            res = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 timeout=timeout, **kwargs)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`{' '.join(map(str, cmd))}` took longer than {timeout:.0f} s; "
                                 f"see {log}:\n{_tail(log)}") from None
    if check and res.returncode != 0:
        raise AssertionError(f"`{' '.join(map(str, cmd))}` exited {res.returncode}; see {log}:\n{_tail(log)}")
    return res


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def wheelhouse(name: str, args: list[str], python: str | None = None) -> Path:
    """A world-readable directory of wheels for `pip download ARGS`, downloaded once (by root) and reused.

    python: the interpreter that will install them (default: this one); its exact version decides
    Requires-Python (Debian's 3.11.2 cannot take every newest wheel that 3.11.7 can).  Keyed by that
    version, the arguments and the contents of every requirement file they name, so an edited pin
    downloads again.  Written to a temporary directory first: concurrent runs never see half a wheelhouse.
    """
    version = subprocess.run([python or sys.executable, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    files = [REPO / a for a in args if a.endswith(".txt")]
    files += [REPO / "requirements.txt"] if REPO / "binder" / "requirements.txt" in files else []
    key = _sha(" ".join(args).encode(), *(f.read_bytes() for f in files), version.encode())
    target = WHEELHOUSE / f"{name}-{key}"
    if (target / ".complete").exists():
        return target
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    os.chmod(WHEELHOUSE, 0o755)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=WHEELHOUSE))
    _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
          "--only-binary=:all:", "--python-version", version, "-d", str(tmp), *args],
         log=ARTIFACTS / f"wheelhouse-{name}.log", timeout=600, cwd=REPO)
    for p in [tmp, *tmp.iterdir()]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    (tmp / ".complete").write_text("")
    try:
        os.rename(tmp, target)
    except OSError:  # another run finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    for old in WHEELHOUSE.glob(f"{name}-*"):  # earlier pins of the same wheelhouse
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


class BinderUser:
    """The account the session runs as: ``wqbinder`` (created if missing) under root, else the current user."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            pw = pwd.getpwuid(os.geteuid())
            self.name, self.uid, self.gid, self.dedicated = pw.pw_name, pw.pw_uid, pw.pw_gid, False
            return
        try:
            pw = pwd.getpwnam(BINDER_USER)
        except KeyError:
            cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                   "--shell", "/bin/bash", BINDER_USER]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode not in (0, 9):  # 9: created meanwhile
                pytest.fail(f"Could not create the user {BINDER_USER} ({res.stderr.strip()}): `{' '.join(cmd)}`",
                            pytrace=False)
            pw = pwd.getpwnam(BINDER_USER)
        self.name, self.uid, self.gid, self.dedicated = pw.pw_name, pw.pw_uid, pw.pw_gid, True

    def kwargs(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def pids(self) -> list[int]:
        """This dedicated user's live processes (none are expected between tests)."""
        if not self.dedicated:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
            state = re.search(r"^State:\s+(\S)", status, re.M)
            if uid and int(uid.group(1)) == self.uid and not (state and state.group(1) == "Z"):
                found.append(int(entry))
        return found

    def kill_all(self) -> list[str]:
        """Kill (by pid) whatever the dedicated user still runs; return 'pid comm' of each.

        epmd is the exception while other nodes are registered with it: a private node starts one when
        none runs, and it serves every Erlang node on the machine, not just ours."""
        killed = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                comm = _comm(pid)
                if comm == "epmd" and _epmd_serves_others():
                    continue
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
                    if sig == signal.SIGTERM:
                        killed.append(f"{pid} {comm}")
            deadline = time.monotonic() + 5
            while any(_comm(p) not in ("epmd", "") for p in self.pids()) and time.monotonic() < deadline:
                time.sleep(0.1)
        return killed


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _epmd_serves_others() -> bool:
    res = subprocess.run(["epmd", "-names"], capture_output=True, text=True, timeout=10)
    return any(line.startswith("name ") for line in res.stdout.splitlines())


def _python_for_venv() -> str:
    """Debian's python3 (what a user can execute; root's pyenv is not readable by others), >= 3.11."""
    candidates = ["/usr/bin/python3", shutil.which("python3.11") or "", shutil.which("python3") or ""]
    if os.geteuid() != 0:
        candidates.append(sys.executable)
    for python in filter(None, candidates):
        res = subprocess.run([python, "-c", "import sys, venv, ensurepip; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip() == "True":
            return python
    pytest.fail("No Python >= 3.11 with venv and ensurepip for the Binder user (binder/runtime.txt says 3.11); "
                "on Debian: `apt-get install python3-venv` (.ci/run does).", pytrace=False)


def _copy_checkout(dest: Path) -> None:
    """The working tree without what a fresh clone lacks; files that vanish meanwhile (others at work) are skipped."""
    try:
        shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    except shutil.Error as exc:
        real = [e for e in exc.args[0] if os.path.lexists(e[0])]
        if real:
            raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, headers=headers or {})
    with _OPENER.open(req, timeout=timeout) as resp:
        return resp.status, resp.read(), dict(resp.headers.items())


def _guest() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
