"""Notebook 03 in a real browser: JupyterLab + Debian's Chromium under Playwright.

What a learner does: open ``notebooks/03_fair_dispatch.ipynb``, Run > Run All Cells, see the interactive
panel (prefetch slider, Run button), press Run, see a new timeline.  Also: the RabbitMQ management UI
reached through jupyter-server-proxy's ``/proxy/<port>/`` route, as on Binder.

Screenshots go to ``artifacts/browser/`` (git-ignored).  JupyterLab runs with autosave off, so the
repository's notebook keeps no outputs; the test checks that too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
from pathlib import Path

import pytest
from browser_helpers import JupyterLab, basic_auth, chromium_problem, launch_chromium, widget_manager_problem

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/03_fair_dispatch.ipynb"
SERVER_CONFIG = REPO / "binder" / "jupyter_server_config.py"  # what binder/postBuild installs on Binder
ARTIFACTS = REPO / "artifacts" / "browser"
WIDGET_FIX = "install the widget extension with `pip install jupyterlab_widgets` (requirements.txt pins it)"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lab_server():
    for problem in (chromium_problem(), widget_manager_problem()):
        if problem:
            pytest.fail(problem, pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="wql-browser-"))
    server = JupyterLab(REPO, state, ARTIFACTS / "jupyterlab.log", server_config=SERVER_CONFIG)
    try:
        server.start()
        yield server
    finally:
        killed = server.stop()
        shutil.rmtree(state, ignore_errors=True)
        assert server.proc is None or server.proc.poll() is not None, "JupyterLab is still running"
        assert not killed, f"JupyterLab left processes that had to be killed: {killed}\n{server.log_tail()}"


@pytest.fixture(scope="module")
def browser(lab_server):
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="wql-chromium-"))
    try:
        with sync_playwright() as p:
            context = launch_chromium(p, profile)
            context.set_default_timeout(20_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _prompts(page) -> list[str]:
    """Execution prompts of every code cell, e.g. ['[1]:', '[*]:', '[ ]:']."""
    return page.eval_on_selector_all(
        ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")


def _wait_for_kernel(page, lab: JupyterLab, path: str, timeout: float = 30.0) -> None:
    """Until the notebook's kernel has started, the page is connected to it and it is idle.
    (The toolbar says "idle" even before a session exists, so ask the server.)"""
    deadline = time.monotonic() + timeout
    sessions: list = []
    while time.monotonic() < deadline:
        sessions = [s for s in lab.api_json("GET", "api/sessions") or [] if s.get("path") == path]
        kernel = (sessions[0].get("kernel") or {}) if sessions else {}
        if kernel.get("execution_state") == "idle" and kernel.get("connections", 0) > 0:
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=10_000)
            return
        time.sleep(0.25)
    raise AssertionError(f"The kernel for {path} did not start within {timeout:.0f} s (sessions: {sessions}):\n"
                         f"{lab.log_tail()}")


def _wait_for_run_all(page, lab: JupyterLab, timeout: float = 45.0, settle: float = 2.0) -> list[str]:
    """Until no cell is queued or running and the kernel has stayed idle for ``settle`` seconds
    (cells may be sent one after another); returns the final prompts."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    prompts: list[str] = []
    while time.monotonic() < deadline:
        prompts = _prompts(page)
        started = any(any(c.isdigit() or c == "*" for c in p) for p in prompts)
        idle = started and not any("*" in p for p in prompts) and all(
            k.get("execution_state") == "idle" for k in lab.api_json("GET", "api/kernels") or [])
        if not idle:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return prompts
        time.sleep(0.2)
    raise AssertionError(f"Run All Cells did not finish within {timeout:.0f} s; prompts: {prompts}")


def _widget_trouble(page) -> str | None:
    """A sentence naming the fix if the page shows that widgets cannot render."""
    outputs = page.eval_on_selector_all(".jp-Notebook .jp-OutputArea-output", "els => els.map(e => e.textContent)")
    text = "\n".join(outputs)
    for sign in ("Error displaying widget", "model not found", "Loading widget..."):
        if sign in text:
            return f"The notebook shows '{sign}' instead of the panel: {WIDGET_FIX}."
    if "VBox(children=" in text:
        return f"The panel was shown as plain text, so JupyterLab cannot render widgets: {WIDGET_FIX}."
    return None


def test_notebook_03_panel_runs_in_the_browser(lab_server, browser):
    notebook = REPO / NOTEBOOK
    assert notebook.exists(), f"{NOTEBOOK} is missing"
    before = _digest(notebook)
    checkpoint = notebook.parent / ".ipynb_checkpoints" / f"{notebook.stem}-checkpoint.ipynb"
    had_checkpoint = checkpoint.exists()
    page = browser.new_page()
    page.goto(lab_server.url("lab/tree/" + urllib.parse.quote(NOTEBOOK) + "?reset"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=30_000)
    _wait_for_kernel(page, lab_server, NOTEBOOK)

    # Run > Run All Cells, through the menu bar as a learner would.
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    prompts = _wait_for_run_all(page, lab_server)
    not_run = [i for i, p in enumerate(prompts) if not any(c.isdigit() for c in p)]
    run_all_problem = ""
    if not_run:  # reported at the end: the panel (earlier in the notebook) is still checked
        last = page.locator(".jp-Notebook .jp-CodeCell").nth(max(not_run[0] - 1, 0))
        last.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "03_run_all_failed.png"))
        output = last.locator(".jp-OutputArea").inner_text()[-1500:]
        run_all_problem = (f"Run All Cells stopped after code cell {not_run[0] - 1} (prompts {prompts}); "
                           f"its output:\n{output}\nsee {ARTIFACTS / '03_run_all_failed.png'}")

    panel = page.locator(".wql-panel").first
    try:
        panel.wait_for(state="visible", timeout=15_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "03_no_panel.png"), full_page=True)
        problem = _widget_trouble(page) or f"No .wql-panel rendered in {NOTEBOOK}; see {ARTIFACTS / '03_no_panel.png'}"
        raise AssertionError("\n\n".join(filter(None, [problem, run_all_problem]))) from None
    panel.scroll_into_view_if_needed()  # off-screen cells are not laid out (content-visibility)
    prefetch = panel.locator(".wql-prefetch")
    run = panel.locator("button.wql-run")
    assert prefetch.is_visible(), "the prefetch slider (.wql-prefetch) is not visible"
    assert run.is_visible(), "the Run button (.wql-run) is not visible"
    assert (run.text_content() or "").strip() == "Run"

    # The slider answers the keyboard like any slider: one step right, and the readout follows.
    readout = prefetch.locator(".widget-readout")
    start_value = int(readout.text_content() or readout.inner_text())
    prefetch.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, v]) => el.textContent.trim() === String(v)",
                           arg=[readout.element_handle(), start_value + 1], timeout=5_000)

    timeline = panel.locator("img.wql-timeline, .wql-timeline img").first
    src_before = timeline.get_attribute("src") or ""
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(ARTIFACTS / "03_panel.png"))

    run.click()
    try:
        # During the run the last picture and table stay, faded (the picture with a new src already).  The
        # run has been shown when the table is no longer faded (the panel sets it last) and the picture is new.
        page.wait_for_function(
            "([panel, el, old]) => !panel.querySelector(\"div[style*='opacity']\")"
            " && panel.querySelector('.wql-status').innerText.includes('makespan')"
            " && el.src && el.src !== old && el.complete && el.naturalWidth > 0"
            " && getComputedStyle(el).display !== 'none'",
            arg=[panel.element_handle(), timeline.element_handle(), src_before], timeout=30_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "03_after_run_failed.png"), full_page=True)
        status = panel.locator(".wql-status").inner_text() if panel.locator(".wql-status").count() else "?"
        raise AssertionError(f"No new timeline image after pressing Run (panel status: {status!r}); "
                             f"see {ARTIFACTS / '03_after_run_failed.png'}") from None
    status = panel.locator(".wql-status").inner_text()
    assert "makespan" in status, f"unexpected panel status after Run: {status!r}"
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(ARTIFACTS / "03_after_run.png"))
    page.screenshot(path=str(ARTIFACTS / "03_page_after_run.png"), full_page=False)

    # File > Save Notebook, as a learner does: the course notebooks are saved without outputs
    # (jupyter/start-lab's pre-save hook), so the file stays as committed and git sees no change.
    modified = lab_server.api_json("GET", "api/contents/" + urllib.parse.quote(NOTEBOOK) + "?content=0")
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    page.locator(".lm-Menu-item[data-command='docmanager:save']").first.click()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = lab_server.api_json("GET", "api/contents/" + urllib.parse.quote(NOTEBOOK) + "?content=0")
        if now["last_modified"] != modified["last_modified"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("File > Save Notebook did not save the notebook within 20 s")
    page.close()
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", NOTEBOOK], capture_output=True,
                            text=True).stdout
    assert status == "", f"after Run All and Save, git sees {NOTEBOOK} as changed: {status}"
    assert _digest(notebook) == before, f"{NOTEBOOK} on disk differs from the committed one after Save"
    assert had_checkpoint or not checkpoint.exists(), f"JupyterLab wrote {checkpoint} into the repository"
    assert not run_all_problem, run_all_problem


def _mgmt() -> tuple[int, str, str]:
    """Port, user and password of the test broker's management API, which must listen on loopback."""
    import workqueue_lab as lab

    broker = lab.connect()
    if not broker.mgmt_url:
        pytest.fail(f"The broker at {broker.masked_url} has no management API; enable it with "
                    "`rabbitmq-plugins enable rabbitmq_management` (.ci/run does).", pytrace=False)
    parts = urllib.parse.urlsplit(broker.mgmt_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.fail(f"The management API at {parts.hostname} is not on this machine; jupyter-server-proxy only "
                    "proxies to localhost.  Run the tests against a local broker.", pytrace=False)
    return parts.port or 15672, parts.username or "guest", parts.password or "guest"


def test_management_ui_through_jupyter_server_proxy(lab_server, browser):
    """jupyter-server-proxy's /proxy/<port>/ reaches the broker's management API and UI (guest over loopback).

    The URL pattern for notebooks: <Jupyter base URL>proxy/<management port>/ -- /proxy/15672/ here,
    /user/<name>/proxy/<port>/ on Binder.
    """
    port, user, password = _mgmt()
    guest = {"Authorization": basic_auth(user, password)}
    api = f"proxy/{port}/api/overview"
    # The API: the Jupyter token in the query, RabbitMQ's basic auth in the header.
    try:
        status, body, headers = lab_server.api("GET", api, headers=guest, auth="query")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"/{api} answered {exc.code}: {exc.read()[:300]!r}\n{lab_server.log_tail()}") from None
    overview = json.loads(body)
    assert status == 200 and overview.get("rabbitmq_version"), overview
    # Tornado gives the proxied response an ETag; a browser would poll with If-None-Match, which RabbitMQ
    # answers with 412 (the UI then breaks).  binder/jupyter_server_config.py marks these responses no-store.
    assert "no-store" in headers.get("Cache-Control", ""), (
        f"/{api} may be cached by the browser (headers {headers}); is {SERVER_CONFIG} loaded?")
    # Without the Jupyter token the proxy sends you to Jupyter's login page: it is no open door to the broker.
    with pytest.raises(urllib.error.HTTPError) as refused:
        lab_server.api("GET", api, headers=guest, auth=None)
    where = refused.value.headers.get("Location", "")
    assert refused.value.code == 302 and where.startswith("/login"), (refused.value.code, where)

    # The UI in the browser: Jupyter's login cookie first, then RabbitMQ's own login form.
    page = browser.new_page()
    page.goto(lab_server.url("api/status"))
    page.goto(f"{lab_server.base}/proxy/{port}/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.locator("input[type=submit], button[type=submit]").first.click()
    try:
        page.wait_for_selector("#main h1", timeout=15_000)
        page.wait_for_function("() => /Totals|Nodes/.test(document.querySelector('#main').innerText)",
                               timeout=15_000)
        time.sleep(6)  # one refresh (every 5 s): the UI's own conditional polling must keep working
        text = page.inner_text("body")
        assert "status code" not in text, text[-300:]
    finally:
        page.screenshot(path=str(ARTIFACTS / "rabbitmq_ui_via_proxy.png"))
    assert overview["rabbitmq_version"] in text
    page.close()


def _open_terminal(page, lab: JupyterLab) -> str:
    """A new JupyterLab terminal opened from the File menu, as a learner does; returns its name."""
    before = {t["name"] for t in lab.api_json("GET", "api/terminals") or []}
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="New").first.hover()
    page.locator(".lm-Menu-item[data-command='terminal:create-new']").first.click()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = {t["name"] for t in lab.api_json("GET", "api/terminals") or []} - before
        if new:
            page.wait_for_selector(".jp-Terminal:visible .xterm-accessibility-tree", timeout=20_000)
            return new.pop()
        time.sleep(0.2)
    raise AssertionError(f"File > New > Terminal opened no terminal:\n{lab.log_tail()}")


def _screen(page) -> str:
    """The text on the visible terminal's screen (screen-reader mode keeps its rows as text)."""
    return page.locator(".jp-Terminal:visible .xterm-accessibility-tree").inner_text()


def _type(page, line: str) -> None:
    # Keys typed before the terminal's websocket is up are dropped (a run once got "thon worker.py"):
    # wait until the shell's prompt has reached the screen, then type.
    _wait_screen(page, lambda t: t.rstrip().endswith(("$", "#")), "the shell's prompt")
    page.locator(".jp-Terminal:visible .xterm-helper-textarea").focus()
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def _wait_screen(page, predicate, what: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _screen(page)
        if predicate(text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"Waited {timeout:.0f} s for {what}; the terminal shows:\n{text[-1200:]}")


def test_terminal_exercise_in_real_jupyterlab_terminals(lab_server, browser):
    """Notebook 01's terminal exercise as a learner does it: two terminals run `python worker.py`, a third
    sends four tasks with `python new_task.py`; the split is read off the terminal screens."""
    import workqueue_lab as lab
    from workqueue_lab import settings

    broker = lab.connect()
    queue = settings.name("task_queue")  # this run's prefix reaches the terminals through the server's env
    broker.purge(queue)
    page = browser.new_page()
    page.goto(lab_server.url("lab"))
    page.wait_for_selector(".jp-LabShell", timeout=30_000)
    terminals = []
    try:
        for _ in range(2):
            terminals.append(_open_terminal(page, lab_server))
            _type(page, "python worker.py")
            _wait_screen(page, lambda t: "Waiting for messages" in t or "Error" in t, "the worker to start")
            text = _screen(page)
            assert "Waiting for messages" in text, f"`python worker.py` failed in a JupyterLab terminal:\n{text}"
        terminals.append(_open_terminal(page, lab_server))
        # Sent one at a time, each after both workers are consuming: round-robin gives 1,3 and 2,4.
        for n in range(1, 5):
            _type(page, f"python new_task.py 'Task {n}.'")
            _wait_screen(page, lambda t, n=n: f"Sent 'Task {n}.'" in t, f"task {n} to be sent")
        page.screenshot(path=str(ARTIFACTS / "terminal_producer.png"))
        split = {}
        for i, name in enumerate(terminals[:2], start=1):
            page.locator(".lm-TabBar-tabLabel", has_text=f"Terminal {name}").first.click()
            text = _wait_screen(page, lambda t: t.count("[x] Done") >= 2, f"worker {i} to finish two tasks")
            page.screenshot(path=str(ARTIFACTS / f"terminal_worker{i}.png"))
            split[i] = [int(n) for n in re.findall(r"Received 'Task (\d)\.'", text)]
        assert split == {1: [1, 3], 2: [2, 4]}, f"the terminals show the split {split}"
    finally:
        for name in terminals:  # ends the shells and the workers in them (their connections close)
            with contextlib.suppress(Exception):
                lab_server.api("DELETE", f"api/terminals/{name}")
        page.close()
        with contextlib.suppress(Exception):
            broker.purge(queue)


def test_no_news_pop_up(lab_server, browser):
    """The course ships JupyterLab settings (jupyter/overrides.json) that switch off the news pop-up."""
    page = browser.new_page()
    page.goto(lab_server.url("lab"))
    page.wait_for_selector(".jp-LabShell", timeout=30_000)
    time.sleep(3)  # the question appears a moment after start-up when it is not switched off
    page.screenshot(path=str(ARTIFACTS / "lab_start.png"))
    text = page.inner_text("body")
    page.close()
    assert "get notified about official Jupyter news" not in text, "JupyterLab still asks about news"
