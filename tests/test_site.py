"""The course as a website: `book/build_site.py` (what `make site` runs) executes every notebook against the real
broker and renders them with Jupyter Book; headless Chromium then opens every page.

Set WORKQUEUE_LAB_SITE=<dir> to check a site `make site` already built instead of building one here.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, chromium_problem

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import build_site  # noqa: E402  (book/, next to tests/: the site's builder and its widget freezer)
import frozen_widgets  # noqa: E402

COURSE = build_site.course()
PAGES = ["index.html"] + [f"notebooks/{e['stem']}.html" for e in COURSE]
SHOTS = ROOT / "artifacts" / "site"  # a screenshot of every page, for a person to look at
BINDER = "https://mybinder.org/v2/gh/workqueue-lab/workqueue-lab/"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]


def test_course_map_names_every_notebook_and_a_key_plot_that_exists():
    """Pure check of book/course.json against notebooks/: a new notebook must get a row and a key plot."""
    on_disk = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [e["stem"] for e in COURSE] == on_disk
    for e in COURSE:
        if e["key_plot"] is None:  # only a notebook that draws nothing, and the map says why
            assert e.get("no_plot_because"), f"{e['stem']}: no key_plot and no reason"
            continue
        ids = [c.get("id") for c in json.loads((ROOT / "notebooks" / f"{e['stem']}.ipynb").read_text())["cells"]]
        assert e["key_plot"] in ids, f"{e['stem']}: key_plot {e['key_plot']!r} is not a cell id of the notebook"
    assert sum(e["key_plot"] is None for e in COURSE) <= 1


def test_a_widget_panel_becomes_its_settings_readings_and_picture():
    """Plain data: the panel's state as nbclient stores it, frozen for a page without a kernel."""
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_ab", "IPY_MODEL_cd", "IPY_MODEL_ef"],
                                                     "layout": "IPY_MODEL_99"}},
        "ab": {"model_name": "IntSliderModel", "state": {"description": "prefetch", "value": 1}},
        "cd": {"model_name": "HTMLModel", "state": {"value": "makespan 0.40 s"}},
        "ef": {"model_name": "ImageModel", "state": {"format": "png"},
               "buffers": [{"path": ["value"], "encoding": "base64", "data": "iVBORw0KGgo="}]},
        "99": {"model_name": "LayoutModel", "state": {}},
    }
    nb = nbformat.v4.new_notebook(metadata={"widgets": {frozen_widgets.WIDGET_STATE: {"state": state}}})
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    nb.cells.append(nbformat.v4.new_code_cell("panel", outputs=[
        nbformat.v4.new_output("execute_result", {frozen_widgets.WIDGET_VIEW: view, "text/plain": "VBox()"})]))
    assert frozen_widgets.freeze(nb) == 1
    outputs = nb.cells[0].outputs
    assert "prefetch = 1" in outputs[0].data["text/html"] and "makespan 0.40 s" in outputs[0].data["text/html"]
    assert outputs[1].data["image/png"] == "iVBORw0KGgo="
    assert "widgets" not in nb.metadata
    nbformat.validate(nb)


def _committed_notebooks() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site's html/ directory: built here (timed) unless WORKQUEUE_LAB_SITE names one."""
    if os.environ.get("WORKQUEUE_LAB_SITE"):
        return Path(os.environ["WORKQUEUE_LAB_SITE"]) / "html"
    out = tmp_path_factory.mktemp("site")
    before = _committed_notebooks()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "book" / "build_site.py"), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "build.log").write_text(done.stdout + done.stderr, encoding="utf-8")  # its SUMMARY line: the timings
    assert done.returncode == 0, f"book/build_site.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    with open(SHOTS / "build.log", "a", encoding="utf-8") as log:
        log.write(f"site built in {time.perf_counter() - started:.0f} s (book/build_site.py, whole command)\n")
    # Outputs stay out of the committed notebooks: the build executed copies.
    assert _committed_notebooks() == before
    return out / "html"


@pytest.fixture(scope="module")
def served(site):
    """The site on 127.0.0.1 over HTTP, as a reader's browser would get it."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # a thread must not print into the test's output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    problem = chromium_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
    return page, failed


@pytest.mark.parametrize("path", PAGES)
def test_page_has_no_missing_image_and_no_error_output(browser, served, path):
    page, failed = _open(browser, served + path)
    try:
        local = [u for u in failed if u.split(" ")[-1].startswith(served)]
        assert local == [], f"{path}: requests that failed: {local}"
        broken = page.evaluate(
            "() => [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)")
        assert broken == [], f"{path}: images that did not load: {broken}"
        errors = page.locator(".cell_output .traceback, .cell_output .output.error, .cell_output .stderr")
        assert errors.count() == 0, f"{path}: error output on the page: {errors.first.inner_text()[:500]}"
        # The lesson's diagrams (```mermaid in the notebooks) are drawn by the page's own copy of mermaid.
        page.wait_for_function("() => [...document.querySelectorAll('pre.mermaid')].every(p => p.querySelector('svg'))",
                               timeout=20_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / (path.replace("/", "_") + ".png")), full_page=True)
        # What the run printed (the prose may well mention NOT CHECKED; an output saying it is a claim not shown).
        printed = "\n".join(page.locator(".cell_output").all_inner_texts())
        assert path == "index.html" or printed.strip(), f"{path}: no cell output found (did the theme rename it?)"
        for bad in ("Traceback (most recent call last)", "NOT CHECKED:", "AssertionError"):
            assert bad not in printed, f"{path}: an output shows {bad!r}"
    finally:
        page.close()


@pytest.mark.parametrize("entry", COURSE, ids=[e["stem"] for e in COURSE])
def test_notebook_page_shows_its_key_plot_and_a_binder_link(browser, served, entry):
    page, _ = _open(browser, served + f"notebooks/{entry['stem']}.html")
    try:
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        binder = [h for h in hrefs if h.startswith(BINDER)]
        assert binder, f"{entry['stem']}: no launch-on-Binder link among {len(hrefs)} links"
        assert unquote(binder[0]).endswith(f"lab/tree/notebooks/{entry['stem']}.ipynb"), binder[0]
        if entry["key_plot"] is None:
            return
        plot = page.locator(".tag_key-plot .cell_output img")
        assert plot.count() >= 1, f"{entry['stem']}: the key plot (cell {entry['key_plot']}) has no image"
        size = plot.first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert min(size) >= 100, f"{entry['stem']}: the key plot is {size} px"
    finally:
        page.close()


def test_front_page_maps_every_notebook_to_its_page(browser, served):
    page, _ = _open(browser, served + "index.html")
    try:
        rows = page.locator("main table tbody tr")
        assert rows.count() == len(COURSE)
        for i, entry in enumerate(COURSE):
            cells = rows.nth(i).locator("td")
            assert cells.nth(1).inner_text().strip() == entry["title"]
            href = cells.nth(1).locator("a").get_attribute("href")
            assert urlparse(href).path.endswith(f"notebooks/{entry['stem']}.html"), href
            target = browser.new_page()
            try:
                assert target.goto(served + href).status == 200
                assert entry["title"].split("·")[1].strip()[:12] in target.locator("h1").first.inner_text()
            finally:
                target.close()
    finally:
        page.close()


def test_markdown_for_the_site_draws_mermaid_and_sends_repo_links_to_github():
    """Plain data: a notebook's link to ../README.md would be a dead link on the site; mermaid needs its tag."""
    text = 'See [the README](../README.md#troubleshooting).\n\n```mermaid\nflowchart LR\n  P["a<br/>b"] --> Q\n```\n'
    out = build_site.site_markdown(text)
    assert "(https://github.com/workqueue-lab/workqueue-lab/blob/main/README.md#troubleshooting)" in out
    assert '<pre class="mermaid">\nflowchart LR\n  P[&quot;a&lt;br/&gt;b&quot;] --&gt; Q\n</pre>' in out
    assert build_site.site_markdown("[API](API.md) and [a site](https://example.org/../x)") == \
        "[API](API.md) and [a site](https://example.org/../x)"


def test_a_notebook_that_fails_stops_the_build_with_one_sentence(tmp_path, capsys):
    """A real kernel runs a notebook whose claim is false: the build names the notebook, the cell and the fix."""
    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("assert x == 2")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.cells[1].id = "claim"
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "site" / "99_broken.ipynb"
    with pytest.raises(SystemExit) as stop:
        build_site.execute(path, out, None, 60, tmp_path / "kernels.log")
    assert str(stop.value) == (f"99_broken.ipynb failed in cell claim (AssertionError); run it in JupyterLab to see "
                               f"why (its executed copy, with the error, is {out}).")
    assert nbformat.read(out, as_version=4).cells[1].outputs[0].ename == "AssertionError"


def test_a_nonsense_time_scale_is_refused_in_one_line():
    done = subprocess.run([sys.executable, str(ROOT / "book" / "build_site.py"), "--time-scale", "abc"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        "'abc' is not a time scale; give real seconds per dot, e.g. 0.05 (fast, as in CI) or 1 (what a learner waits)")
