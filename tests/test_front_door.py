"""The way in, as a new user meets it: `make lab`'s JupyterLab for root and for a plain user, and
notebooks that stay clean in git after they are run (the nbstripout filter `make lab`/`make test` set up)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from browser_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
START_LAB = REPO / "jupyter" / "start-lab"
PLAIN_USER = "wqfrontdoor"


def _get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=3) as resp:
        return json.loads(resp.read())


def _start_lab(home: Path, user: str | None) -> tuple[subprocess.Popen, int, str, Path]:
    port, token = free_port(), "t" + os.urandom(8).hex()
    log = home / "lab.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(home), VENV=sys.prefix, LAB_PORT=str(port), JUPYTER_RUNTIME_DIR=str(home / "rt"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "ws"))
    cmd = [str(START_LAB), f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
           "--ServerApp.port_retries=0", f"--FileCheckpoints.root_dir={home / 'cp'}"]
    kwargs = {}
    if user is not None:
        pw = pwd.getpwnam(user)
        kwargs = {"user": pw.pw_uid, "group": pw.pw_gid}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=home, start_new_session=True, **kwargs)
    return proc, port, token, log


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its terminals, by its pid
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", name], check=True)


@pytest.mark.parametrize("who", ["root", "plain user"])
def test_start_lab_serves_the_repository_root(who):
    """`make lab` (jupyter/start-lab) starts for root and for a plain user, rooted at the repository."""
    if who == "root" and os.geteuid() != 0:
        pytest.fail("this case needs root; CI runs as root", pytrace=False)
    user = None
    home = Path(tempfile.mkdtemp(prefix="wql-frontdoor-"))
    if who == "plain user":
        if os.geteuid() == 0:
            _ensure_user(PLAIN_USER)
            user = PLAIN_USER
            shutil.chown(home, PLAIN_USER, PLAIN_USER)
            os.chmod(home, 0o755)
    proc, port, token, log = _start_lab(home, user)
    try:
        deadline, listing = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                listing = _get(f"http://127.0.0.1:{port}/api/contents/", token)
                break
            except OSError:
                time.sleep(0.3)
        text = log.read_text(errors="replace")
        assert listing is not None, f"JupyterLab did not start for {who}:\n{text[-2000:]}"
        names = {item["name"] for item in listing["content"]}
        assert {"worker.py", "new_task.py", "README.md", "notebooks"} <= names, names
        assert ("--allow-root" in text) == (who == "root"), text[:500]
        default = _get(f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification",
                       token)
        assert default["settings"]["fetchNews"] == "false", default["settings"]
    finally:
        _stop(proc)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("notebook", ["00_start_here.ipynb", "01_work_queue_pattern.ipynb"])
def test_running_a_notebook_leaves_git_status_clean(notebook):
    """A learner's run writes outputs into the tracked notebook; git must not see a change."""
    path = REPO / "notebooks" / notebook
    git = ["git", "-C", str(REPO)]
    if subprocess.run([*git, "rev-parse", "--is-inside-work-tree"], capture_output=True).returncode:
        pytest.fail("not a git checkout; run the tests from a clone", pytrace=False)
    clean = subprocess.run([*git, "config", "filter.nbstripout.clean"], capture_output=True, text=True).stdout
    assert "nbstripout" in clean, "the nbstripout git filter is not set up; run `make lab-setup` (make test does)"
    if subprocess.run([*git, "status", "--porcelain", str(path)], capture_output=True, text=True).stdout:
        pytest.fail(f"{notebook} already has uncommitted changes; commit them before this test", pytrace=False)
    original = path.read_bytes()
    try:
        res = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                              "--inplace", str(path)], capture_output=True, text=True, timeout=300, cwd=path.parent)
        assert res.returncode == 0, res.stderr[-2000:]
        assert b'"output_type"' in path.read_bytes(), "the run wrote no outputs; this test would prove nothing"
        status = subprocess.run([*git, "status", "--porcelain", str(path)], capture_output=True, text=True).stdout
        assert status == "", f"git sees the run as a change: {status}"
    finally:
        path.write_bytes(original)
