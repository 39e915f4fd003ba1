"""Binder, as Binder runs it, without Docker.

1. repo2docker's own view of the repository (``jupyter-repo2docker --no-build``, which needs no Docker
   engine): the Python buildpack, driven by binder/ (runtime.txt, apt.txt, requirements.txt,
   postBuild, start).
2. A Binder session replayed on this machine the way repo2docker's Dockerfile does it, as a non-root
   user with no sudo (``wqbinder`` when the test runs as root, else yourself), HOME = the repository copy
   (repo2docker's REPO_DIR is HOME): a fresh virtual environment from ``binder/requirements.txt``
   (``pip install --no-cache-dir -r binder/requirements.txt``, the exact command), ``./binder/postBuild``,
   then ``./binder/start jupyter nbconvert --execute`` on notebook 01 against the private RabbitMQ node
   that start launches; then ``./binder/start jupyter lab`` and the node's management API through
   jupyter-server-proxy; then the node is stopped and nothing of the user's is left running.

pip installs offline from a wheelhouse that root downloads once for these exact requirements (kept in
``WORKQUEUE_LAB_WHEELHOUSE``, default /var/tmp/workqueue-lab-wheelhouse, and reused while the
requirement files are unchanged); the user's pip still resolves binder/requirements.txt by itself.
Logs, timings and the executed notebook go to artifacts/binder/.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
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


# --------------------------------------------------------------------------- 1. repo2docker's view


def test_repo2docker_builds_from_the_binder_folder(tmp_path):
    """repo2docker picks the Python buildpack and takes everything from binder/, in Binder's order."""
    wheels = wheelhouse("repo2docker", [REPO2DOCKER])
    venv = tmp_path / "r2d"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "--no-index", "--find-links",
          str(wheels), REPO2DOCKER], log=ARTIFACTS / "repo2docker-install.log", timeout=180)
    # The Dockerfile it would build (no Docker engine is needed to write it).
    res = subprocess.run([str(venv / "bin" / "jupyter-repo2docker"), "--no-build", "--no-run", "--user-id", "1000",
                          "--user-name", "jovyan", str(REPO)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    dockerfile = res.stdout
    (ARTIFACTS / "repo2docker.Dockerfile").write_text(dockerfile)
    # The buildpack it picked and what that buildpack takes from the repository.
    probe = (
        "import json, sys\n"
        "from repo2docker.app import Repo2Docker\n"
        "r2d = Repo2Docker()\n"
        "for cls in r2d.buildpacks:\n"
        "    bp = cls(r2d.base_image)\n"
        "    if bp.detect():\n"
        "        break\n"
        "print(json.dumps({'buildpack': cls.__name__, 'python': bp.python_version, 'binder_dir': bp.binder_dir,\n"
        "    'apt': [s for _, s in bp.get_preassemble_scripts()], 'assemble': bp.get_assemble_scripts(),\n"
        "    'post_build': bp.get_post_build_scripts(), 'start': bp.get_start_script()}))\n"
    )
    res = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    (ARTIFACTS / "repo2docker-buildpack.json").write_text(json.dumps(seen, indent=2) + "\n")

    assert seen["buildpack"] == "PythonBuildPack", seen
    assert seen["binder_dir"] == "binder", seen
    assert seen["python"] == "3.11", f"binder/runtime.txt should give Python 3.11: {seen}"
    assert any("apt-get install" in s and "rabbitmq-server" in s for s in seen["apt"]), seen["apt"]
    assert seen["assemble"] == [
        ["${NB_USER}", '${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"']], seen
    assert seen["post_build"] == ["binder/postBuild"], seen
    assert seen["start"] == "${REPO_DIR}/binder/start", seen

    # Order and user, as the Dockerfile runs them: requirements, then postBuild, both as the notebook user.
    install = dockerfile.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    post_build = dockerfile.index("RUN ./binder/postBuild")
    assert dockerfile.rindex("USER ${NB_USER}", 0, install) > dockerfile.rindex("USER root", 0, install)
    assert install < post_build
    assert dockerfile.rindex("USER ${NB_USER}", 0, post_build) > dockerfile.rindex("USER root", 0, post_build)
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
    assert "ARG REPO_DIR=${HOME}" in dockerfile  # the repository is the user's HOME


# --------------------------------------------------------------------------- 2. a Binder session, replayed


@pytest.fixture
def binder_lock():
    """One replayed session at a time on this machine (one user, one node name): a second run waits."""
    import fcntl

    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    with open(WHEELHOUSE / ".session.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.mark.slow
def test_binder_session_as_non_root_user(binder_lock):
    timings = Timings()
    user = BinderUser()
    user.kill_all()  # whatever an aborted earlier run left (a live run would hold the lock)
    python = _python_for_venv()
    with timings.phase("wheelhouse"):
        wheels = wheelhouse("binder", ["-r", "binder/requirements.txt", "setuptools>=64"], python)

    work = Path(tempfile.mkdtemp(prefix="wqbinder-", dir="/tmp"))  # not pytest's 0700 tmp: the user must reach it
    os.chmod(work, 0o755)
    home, venv = work / "home", work / "srv" / "venv"  # repo2docker: REPO_DIR == HOME; env under /srv
    env = {
        "HOME": str(home), "USER": user.name, "LOGNAME": user.name, "SHELL": "/bin/bash",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        # like repo2docker's ENV PATH: the environment's bin first
        "PATH": f"{venv}/bin:{home}/.local/bin:/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "WORKQUEUE_LAB_TIME_SCALE": os.environ.get("WORKQUEUE_LAB_TIME_SCALE", "0.05"),
        # offline, from the wheelhouse only; no machine-wide pip.conf
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
    }
    as_user = dict(env=env, cwd=home, **user.kwargs())
    node_state = home / ".cache" / "workqueue-lab" / "node" / "state.json"
    jupyter_proc = None
    try:
        _copy_checkout(home)
        venv.parent.mkdir()
        for d in (home, venv.parent):
            subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(d)], check=True)
        assert (home / NOTEBOOK).exists(), f"{NOTEBOOK} is missing"

        with timings.phase("venv"):
            _run([python, "-m", "venv", str(venv)], log=ARTIFACTS / "venv.log", timeout=120, **as_user)
        with timings.phase("pip install -r binder/requirements.txt"):
            # repo2docker: ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"
            _run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "-r", "binder/requirements.txt"],
                 log=ARTIFACTS / "pip-install.log", timeout=600, **as_user)
        with timings.phase("postBuild"):
            _run(["./binder/postBuild"], log=ARTIFACTS / "postBuild.log", timeout=300, **as_user)
        installed = venv / "etc" / "jupyter" / "jupyter_server_config.py"
        assert installed.read_text() == (REPO / "binder" / "jupyter_server_config.py").read_text()

        # The session: start launches the node in the background and execs the command at once.
        out_dir = work / "executed"
        out_dir.mkdir()
        os.chown(out_dir, user.uid, user.gid)
        with timings.phase(f"start + nbconvert {Path(NOTEBOOK).name}"):
            _run(["./binder/start", "jupyter", "nbconvert", "--to", "notebook", "--execute", NOTEBOOK,
                  "--output-dir", str(out_dir), "--ExecutePreprocessor.timeout=300"],
                 log=ARTIFACTS / "nbconvert.log", timeout=420, **as_user)
        executed = out_dir / Path(NOTEBOOK).name
        shutil.copyfile(executed, ARTIFACTS / executed.name)
        nb = json.loads(executed.read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        tagged = [c for c in nb["cells"] if "raises-exception" in c.get("metadata", {}).get("tags", [])]
        assert len(errors) <= len(tagged), f"errors in {executed.name}: {[e.get('ename') for e in errors]}"
        waited = WAITING in json.dumps(nb)
        timings["saw 'Waiting for the lab's private RabbitMQ node'"] = waited

        # The notebook really used the private node that start launched (and not the system broker).
        state = json.loads(node_state.read_text())
        assert state["user"] == user.name, state
        mgmt = int(state["mgmt_port"])
        status = _run([str(venv / "bin" / "python"), "-m", "workqueue_lab", "node", "status"],
                      log=ARTIFACTS / "node-status.log", timeout=60, **as_user)
        assert status.returncode == 0
        created = 0
        deadline = time.monotonic() + 15  # statistics are collected every 5 s
        while time.monotonic() < deadline:
            overview = json.loads(_get(f"http://127.0.0.1:{mgmt}/api/overview", _guest())[1])
            created = (overview.get("churn_rates") or {}).get("connection_created", 0)
            if created:
                break
            time.sleep(1)
        assert created > 0, f"no client ever connected to the private node: {overview.get('churn_rates')}"

        # JupyterLab as Binder starts it (through start), and the node's management API through the proxy.
        with timings.phase("start + jupyter lab + proxy"):
            port, token = _free_port(), secrets.token_hex(16)
            log = open(ARTIFACTS / "jupyterlab.log", "w")  # noqa: SIM115 -- closed below
            jupyter_proc = subprocess.Popen(
                ["./binder/start", "jupyter", "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                 "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
                 "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **as_user)
            url = f"http://127.0.0.1:{port}/proxy/{mgmt}/api/overview?token={token}"
            answer, deadline = None, time.monotonic() + 60
            while answer is None and time.monotonic() < deadline and jupyter_proc.poll() is None:
                try:
                    answer = _get(url, _guest())
                except (OSError, urllib.error.URLError) as exc:
                    if isinstance(exc, urllib.error.HTTPError) and exc.code != 404:
                        raise AssertionError(f"{url} answered {exc.code}; see {ARTIFACTS / 'jupyterlab.log'}") from None
                    time.sleep(0.3)
            assert answer is not None, f"no answer from {url}:\n{_tail(ARTIFACTS / 'jupyterlab.log')}"
            code, body, headers = answer
            assert code == 200 and json.loads(body)["node"] == state["nodename"], body[:300]
            assert "no-store" in headers.get("Cache-Control", ""), headers  # binder/jupyter_server_config.py
            with contextlib.suppress(Exception):
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/shutdown", method="POST", data=b"",
                                             headers={"Authorization": f"token {token}"})
                _OPENER.open(req, timeout=10).close()
            try:
                jupyter_proc.wait(timeout=20)
            finally:
                log.close()
    finally:
        if jupyter_proc is not None and jupyter_proc.poll() is None:
            jupyter_proc.kill()
            jupyter_proc.wait(timeout=10)
        with timings.phase("stop node"):
            if venv.exists():
                _run([str(venv / "bin" / "python"), "-m", "workqueue_lab", "node", "stop"],
                     log=ARTIFACTS / "node-stop.log", timeout=90, check=False, **as_user)
        start_log = home / ".cache" / "workqueue-lab" / "binder-start.log"
        if start_log.exists():
            shutil.copyfile(start_log, ARTIFACTS / "binder-start.log")
        shutil.rmtree(ARTIFACTS / "node-log", ignore_errors=True)
        if node_state.with_name("log").is_dir():
            shutil.copytree(node_state.with_name("log"), ARTIFACTS / "node-log")
        left = user.kill_all()
        shutil.rmtree(work, ignore_errors=True)
    # epmd, if the node had to start one itself, outlives the node by design; anything else is a leak.
    leaks = [p for p in left if not p.endswith(" epmd")]
    assert not leaks, f"processes of {user.name} were still running after the node stopped: {leaks}"
    print(json.dumps(timings, indent=2))
