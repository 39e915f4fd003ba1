"""The way in, as a new user meets it: `make lab`'s JupyterLab for root and for a plain user, and
notebooks that stay clean in git after they are run (the nbstripout filter `make lab`/`make test` set up)."""

from __future__ import annotations

import contextlib
import json
import os
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


def _get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=3) as resp:
        return json.loads(resp.read())


def _make_lab(repo: Path, env: dict[str, str], log: Path, **kwargs) -> subprocess.Popen:
    """`make lab`, exactly as the README says, in its own session (stopped by its process group)."""
    with open(log, "w") as out:
        return subprocess.Popen(["make", "lab", f"LAB_PORT={env['LAB_PORT']}"], env=env, cwd=repo, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # make, the server and its terminals: by the group's pid
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _check_lab(proc: subprocess.Popen, port: int, token: str, log: Path, who: str, timeout: float) -> str:
    """Wait for the server `make lab` started; assert it serves the repository root; return make's output."""
    deadline, listing = time.monotonic() + timeout, None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            listing = _get(f"http://127.0.0.1:{port}/api/contents/", token)
            break
        except OSError:
            time.sleep(0.5)
    text = log.read_text(errors="replace")
    assert listing is not None, f"`make lab` did not bring JupyterLab up for {who}:\n{text[-3000:]}"
    names = {item["name"] for item in listing["content"]}
    assert {"worker.py", "new_task.py", "README.md", "notebooks"} <= names, names
    notes = _get(f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification", token)
    # jupyter/overrides.json replaces the schema's default ("none": ask with a pop-up) with "false"
    assert notes["schema"]["properties"]["fetchNews"]["default"] == "false", notes["schema"]["properties"]
    return text


@pytest.mark.needs_root("`make lab` as root needs root")
def test_make_lab_as_root():
    """`make lab` as root (containers, cloud VMs) allows root, says so once, and roots JupyterLab at the repo."""
    port, token = free_port(), "t" + os.urandom(8).hex()
    state = Path(tempfile.mkdtemp(prefix="wql-frontdoor-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(LAB_PORT=str(port), JUPYTER_TOKEN=token, JUPYTER_RUNTIME_DIR=str(state / "rt"),
               JUPYTERLAB_WORKSPACES_DIR=str(state / "ws"))
    proc = _make_lab(REPO, env, state / "make-lab.log")
    try:
        text = _check_lab(proc, port, token, state / "make-lab.log", "root", 120)
        assert text.count("--allow-root") == 1, text[-2000:]
    finally:
        _stop(proc)
        shutil.rmtree(state, ignore_errors=True)


def test_make_lab_as_a_plain_user_from_a_fresh_copy():
    """A plain user runs `make lab` in a fresh copy: it builds .venv (offline, from a wheelhouse) and starts."""
    from binder_helpers import BinderUser, _copy_checkout, _python_for_venv, wheelhouse

    user = BinderUser()
    python = _python_for_venv()
    wheels = wheelhouse("dev", ["-r", "requirements-dev.txt", "setuptools>=64", "wheel"], python)
    work = Path(tempfile.mkdtemp(prefix="wql-frontdoor-", dir="/tmp"))
    os.chmod(work, 0o755)
    repo = work / "workqueue-lab"
    port, token = free_port(), "t" + os.urandom(8).hex()
    env = {
        "HOME": str(work), "USER": user.name, "LOGNAME": user.name, "LANG": "C.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": python, "LAB_PORT": str(port), "JUPYTER_TOKEN": token,
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
        "WORKQUEUE_LAB_PREFIX": os.environ.get("WORKQUEUE_LAB_PREFIX", "frontdoor."),
    }
    proc = None
    try:
        _copy_checkout(repo)
        subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(work)], check=True)
        proc = _make_lab(repo, env, work / "make-lab.log", **user.kwargs())
        text = _check_lab(proc, port, token, work / "make-lab.log", f"user {user.name}", 600)
        assert "--allow-root" not in text, text[-2000:]
    finally:
        if proc is not None:
            _stop(proc)
        left = user.kill_all()
        shutil.rmtree(work, ignore_errors=True)
    leaks = [p for p in left if not p.endswith(" epmd")]
    assert not leaks, f"processes of {user.name} outlived `make lab`: {leaks}"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def lab_server():
    """JupyterLab as `make lab` starts it (jupyter/start-lab), with its own port, token and state."""
    from browser_helpers import JupyterLab

    if _git("rev-parse", "--is-inside-work-tree").returncode:
        pytest.fail("not a git checkout; run the tests from a clone", pytrace=False)
    state = Path(tempfile.mkdtemp(prefix="wql-frontdoor-"))
    server = JupyterLab(REPO, state, state / "jupyterlab.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def _save_and_check(lab_server, rel: str, content: dict, original: bytes) -> None:
    """Save ``content`` as JupyterLab does (a PUT of the notebook); the file must stay as committed and git
    must see no change.  The committed bytes are put back whatever happens."""
    path = REPO / rel
    try:
        body = json.dumps({"type": "notebook", "format": "json", "content": content}).encode()
        req = urllib.request.Request(lab_server.url(f"api/contents/{rel}", token=False), data=body, method="PUT",
                                     headers={"Authorization": f"token {lab_server.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=30) as resp:
            assert resp.status == 200
        assert _git("status", "--porcelain", rel).stdout == "", "git sees the saved run as a change"
        assert path.read_bytes() == original, "the saved notebook differs from the committed one"
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("notebook", ["00_start_here.ipynb", "01_work_queue_pattern.ipynb"])
def test_a_run_saved_from_jupyterlab_leaves_git_status_clean(lab_server, notebook, tmp_path):
    """Run a course notebook and save it the way JupyterLab does (autosave, Ctrl+S: a PUT of the notebook
    with its outputs): the file on disk stays as committed, so `git status` shows nothing."""
    rel = f"notebooks/{notebook}"
    path = REPO / rel
    if _git("status", "--porcelain", rel).stdout:
        pytest.fail(f"{rel} already has uncommitted changes; commit them before this test", pytrace=False)
    original = path.read_bytes()
    executed = tmp_path / notebook
    res = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                          "--output", str(executed), str(path)], capture_output=True, text=True, timeout=300,
                         cwd=path.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    content = json.loads(executed.read_text())
    assert any(c.get("outputs") for c in content["cells"]), "the run made no outputs: this test would prove nothing"
    _save_and_check(lab_server, rel, content, original)


COURSE = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", COURSE)
def test_every_course_notebook_saved_with_outputs_stays_as_committed(lab_server, notebook):
    """Run All then Save, for every notebook: what JupyterLab sends on Save carries outputs, execution counts,
    timings and the kernel's language_info (made here as a run makes them: executing all nine would take
    minutes; the two tests above do execute 00 and 01); the file must stay as committed."""
    rel = f"notebooks/{notebook}"
    path = REPO / rel
    if _git("status", "--porcelain", rel).stdout:
        pytest.fail(f"{rel} already has uncommitted changes; commit them before this test", pytrace=False)
    original = path.read_bytes()
    content = json.loads(original)
    content["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                            "file_extension": ".py", "pygments_lexer": "ipython3",
                                            "codemirror_mode": {"name": "ipython", "version": 3},
                                            "nbconvert_exporter": "python"}
    code = [c for c in content["cells"] if c["cell_type"] == "code"]
    for n, cell in enumerate(code, start=1):
        cell["execution_count"] = n
        cell["metadata"]["execution"] = {"iopub.status.busy": "2026-11-29T00:00:00Z"}
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"output of cell {n}\n"},
                           {"output_type": "execute_result", "execution_count": n, "metadata": {},
                            "data": {"text/plain": f"{n}"}}]
    _save_and_check(lab_server, rel, content, original)


def test_the_git_filter_keeps_outputs_out_of_commits(tmp_path):
    """Saved some other way (nbconvert --inplace), outputs still never reach a commit: the clean filter
    `make lab`/`make test` configure strips them, so `git diff` (what `git add` would stage) is empty."""
    rel = "notebooks/00_start_here.ipynb"
    path = REPO / rel
    clean = _git("config", "filter.nbstripout.clean").stdout
    assert "workqueue_lab.notebook_files" in clean, "the git filter is not set up; run `make lab-setup`"
    if _git("status", "--porcelain", rel).stdout:
        pytest.fail(f"{rel} already has uncommitted changes; commit them before this test", pytrace=False)
    original = path.read_bytes()
    try:
        res = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                              "--inplace", str(path)], capture_output=True, text=True, timeout=300, cwd=path.parent)
        assert res.returncode == 0, res.stderr[-2000:]
        assert b'"output_type"' in path.read_bytes(), "the run wrote no outputs: this test would prove nothing"
        diff = _git("diff", "--exit-code", "--", rel)
        assert diff.returncode == 0, f"outputs would be committed:\n{diff.stdout[:2000]}"
    finally:
        path.write_bytes(original)
