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

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from binder_helpers import (  # the Binder replay's helpers, shared with test_front_door.py
    _OPENER,
    ARTIFACTS,
    NOTEBOOK,
    REPO,
    REPO2DOCKER,
    WAITING,
    WHEELHOUSE,
    BinderUser,
    Timings,
    _copy_checkout,
    _free_port,
    _get,
    _guest,
    _python_for_venv,
    _run,
    _tail,
    wheelhouse,
)

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
