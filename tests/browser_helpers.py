"""JupyterLab in a subprocess and Debian's Chromium under Playwright, for tests/test_browser.py.

Everything here starts its own processes and stops exactly those (by pid): the JupyterLab server
(its kernels are shut down through the server's REST API first) and the browser Playwright launched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
START_LAB = Path(__file__).resolve().parents[1] / "jupyter" / "start-lab"
# Without the networking flags Chromium keeps dialling out, and this closed network refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect (e.g. to /login) surfaces as an HTTPError
        return None


# Loopback only: never via an HTTP proxy, and never silently following a redirect.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def jupyter(*args: str, timeout: float = 60) -> str:
    """Run ``jupyter ARGS`` from this interpreter's environment; stdout and stderr together, colours removed."""
    res = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    return _strip_ansi(res.stdout + res.stderr)


def widget_manager_problem() -> str | None:
    """None if JupyterLab has the ipywidgets manager extension enabled, else a sentence naming the fix."""
    listing = jupyter("labextension", "list")
    for line in listing.splitlines():
        if WIDGET_MANAGER in line:
            if "enabled" in line and "OK" in line and "disabled" not in line:
                return None
            return (f"JupyterLab lists {WIDGET_MANAGER} but not as 'enabled OK' ({line.strip()}); "
                    f"reinstall it with `pip install --force-reinstall jupyterlab_widgets` in {sys.prefix}.")
    return (f"JupyterLab has no {WIDGET_MANAGER} extension, so widgets show as 'Loading widget...'; "
            f"install it with `pip install jupyterlab_widgets` in {sys.prefix} (requirements.txt pins it).")


def chromium_problem() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing; install Debian's Chromium with `apt-get install chromium` (.ci/run does)."
    return None


class JupyterLab:
    """``jupyter lab`` on 127.0.0.1, a random free port and a random token, its state kept in ``state_dir``."""

    def __init__(self, root_dir: Path, state_dir: Path, log_path: Path, env: dict[str, str] | None = None,
                 server_config: Path | None = None) -> None:
        self.root_dir = root_dir
        self.server_config = server_config
        self.state_dir = state_dir
        self.log_path = log_path
        self.extra_env = env or {}
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, token: bool = True) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}" + (f"{sep}token={self.token}" if token else "")

    # --- lifecycle ----------------------------------------------------------------------
    def _write_settings(self) -> Path:
        """User settings for a non-saving JupyterLab: no autosave (the repo's notebooks stay output-free)."""
        settings = self.state_dir / "lab-settings"
        # The news pop-up is switched off by the overrides.json the course ships (see _install_course_settings).
        files = {
            "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
            # xterm.js draws on a canvas; screen-reader mode also keeps the rows as text a test can read.
            "@jupyterlab/terminal-extension/plugin.jupyterlab-settings": {"screenReaderMode": True},
        }
        for rel, value in files.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        return settings

    @staticmethod
    def _install_course_settings() -> None:
        """What `make lab-setup` installs and `make lab` relies on: the course's JupyterLab overrides (no news
        pop-up) in this environment's app settings, so a test needs no earlier `make` step."""
        src = START_LAB.parent / "overrides.json"
        dest = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
        if not dest.exists() or dest.read_bytes() != src.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)

    def start(self, timeout: float = 60.0) -> None:
        self._install_course_settings()
        env = dict(os.environ)
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(self._write_settings()),
            JUPYTERLAB_WORKSPACES_DIR=str(self.state_dir / "workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.state_dir / "runtime"),
            PYTHONUNBUFFERED="1",
        )
        if self.server_config is not None:
            # A config dir of its own holding this file, the way binder/postBuild installs it on Binder.
            config_dir = self.state_dir / "config"
            config_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.server_config, config_dir / "jupyter_server_config.py")
            env["JUPYTER_CONFIG_DIR"] = str(config_dir)
        env.update(self.extra_env)
        # Exactly the way `make lab` starts it (jupyter/start-lab: rooted at the repository, terminals with
        # the course's Python, --allow-root as root), plus what a test needs: its own port and token.
        env.update(VENV=sys.prefix, LAB_IP="127.0.0.1", LAB_PORT=str(self.port))
        cmd = [
            str(START_LAB),
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # Opening a notebook makes a checkpoint: keep those out of the repository too.
            f"--FileCheckpoints.root_dir={self.state_dir / 'checkpoints'}",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=self.root_dir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited with code {self.proc.returncode} while starting:\n"
                                     f"{self.log_tail()}")
            try:
                self.api("GET", "api/status", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        raise AssertionError(f"JupyterLab did not answer on {self.base} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, method: str, path: str, timeout: float = 10, headers: dict[str, str] | None = None,
            auth: str | None = "header") -> tuple[int, bytes, dict[str, str]]:
        """One request to the server; (status, body, headers); urllib's HTTPError for >= 300.

        auth: "header" sends the token as ``Authorization: token ...``, "query" as ``?token=...``
        (leaving the Authorization header to the caller), None sends no token at all.
        """
        hdrs = dict(headers or {})
        if auth == "header":
            hdrs["Authorization"] = f"token {self.token}"
        req = urllib.request.Request(self.url(path, token=auth == "query"), method=method, headers=hdrs,
                                     data=b"" if method == "POST" else None)
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers.items())

    def api_json(self, method: str, path: str, **kwargs):
        body = self.api(method, path, **kwargs)[1]
        return json.loads(body) if body else None

    def descendants(self) -> list[int]:
        """Pids of every live process below the server (its kernels), from /proc."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
        found, todo = [], [self.proc.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def stop(self) -> list[int]:
        """Shut the kernels down via the REST API, then the server; return pids that had to be killed."""
        if self.proc is None:
            return []
        killed: list[int] = []
        kernel_pids = self.descendants()
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                for session in self.api_json("GET", "api/sessions") or []:
                    with contextlib.suppress(Exception):
                        self.api("DELETE", f"api/sessions/{session['id']}")
            with contextlib.suppress(Exception):
                for kernel in self.api_json("GET", "api/kernels") or []:
                    with contextlib.suppress(Exception):
                        self.api("DELETE", f"api/kernels/{kernel['id']}", timeout=20)
            with contextlib.suppress(Exception):
                self.api("POST", "api/shutdown")
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                killed.append(self.proc.pid)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        for pid in kernel_pids:  # only the processes this server started
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if self._log:
            self._log.close()
        return killed


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def launch_chromium(playwright, user_data_dir: Path):
    """A persistent headless context of Debian's Chromium (Playwright's own browser download does not work here)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
