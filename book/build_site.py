"""Build the course as a static website: every notebook executed against RabbitMQ, then Jupyter Book.

    .venv/bin/python book/build_site.py                      # what `make site` runs: build/site/html
    .venv/bin/python book/build_site.py --time-scale 1 --out /tmp/real   # the same at real time (timings)
    .venv/bin/python book/build_site.py --only 01 03         # some notebooks, for a quick look

Each notebook is executed from ``notebooks/`` (so ``solutions/`` and the lesson's programs resolve as
they do in JupyterLab) into a copy under ``<out>/src``; the committed notebooks are only read.  Then
Jupyter Book renders ``<out>/src`` into ``<out>/html`` with execution off.  The front page is written
from ``book/course.json``.  Prints a table of per-notebook timings and the build's total time.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import frozen_widgets  # book/frozen_widgets.py, next to this script

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
COURSE = BOOK / "course.json"
KEY_PLOT_TAG = "key-plot"
REPO = "https://github.com/workqueue-lab/workqueue-lab"
# JupyterLab draws ```mermaid blocks itself; the site gets the same library, from npm, pinned.
MERMAID = "11.17.2"
MERMAID_FENCE = re.compile(r"^```mermaid\n(.*?)^```$", re.M | re.S)
REPO_LINK = re.compile(r"\]\(\.\./([^)#\s]+)(#[^)\s]*)?\)")


@dataclass
class Timing:
    """How long one notebook took: whole execution, the sum of its cells, and its slowest cell."""

    notebook: str
    wall: float
    in_cells: float
    slowest_cell: str
    slowest: float


def course() -> list[dict]:
    """The course map: one entry per notebook (stem, lesson section, what you will see, key plot cell id)."""
    return json.loads(COURSE.read_text(encoding="utf-8"))["notebooks"]


def _seconds(cell: dict) -> float:
    ex = cell.get("metadata", {}).get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def site_markdown(text: str) -> str:
    """A markdown cell as the site needs it: mermaid as a block the page script draws, repo links to GitHub."""
    text = MERMAID_FENCE.sub(lambda m: f'<pre class="mermaid">\n{html.escape(m.group(1))}</pre>\n', text)
    return REPO_LINK.sub(lambda m: f"]({REPO}/blob/main/{m.group(1)}{m.group(2) or ''})", text)


def _prepare_for_site(nb, key_plot: str | None) -> None:
    """Tag cells for the site: the key plot (checked by the browser test) and the folded solutions."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = site_markdown(cell.source)
        tags = cell.metadata.setdefault("tags", [])
        if cell.get("id") == key_plot and KEY_PLOT_TAG not in tags:
            tags.append(KEY_PLOT_TAG)
        if cell.cell_type == "code" and "= run_solution(" in cell.source:
            tags.append("hide-input")  # the site folds it, as JupyterLab does


def execute(path: Path, out: Path, key_plot: str | None, timeout: int, kernel_log: Path) -> Timing:
    """Run one notebook top to bottom from notebooks/ and write the executed copy to ``out``.

    The kernel's own stderr (ipykernel's start-up warnings) is appended to ``kernel_log``, not to our output.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(kernel_log, "a", encoding="utf-8") as log:
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute(stderr=log)
        except CellExecutionError as exc:
            nbformat.write(nb, out)  # the copy, as far as it got, for a look at the error
            cell = next((c.get("id", "?") for c in nb.cells if any(
                o.get("output_type") == "error" for o in c.get("outputs", []))), "?")
            sys.stderr.write(re.sub(r"\x1b\[[0-9;]*m", "", f"{exc.ename}: {exc.evalue}") + "\n")  # no traceback wall
            raise SystemExit(f"{path.name} failed in cell {cell} ({exc.ename}); run it in JupyterLab to see why "
                             f"(its executed copy, with the error, is {out}).") from None
    wall = time.perf_counter() - started
    _prepare_for_site(nb, key_plot)
    frozen_widgets.freeze(nb)
    nbformat.write(nb, out)
    cells = [(c.get("id", "?"), _seconds(c)) for c in nb.cells if c.cell_type == "code"]
    slowest = max(cells, key=lambda c: c[1], default=("-", 0.0))
    return Timing(path.stem, wall, sum(s for _, s in cells), slowest[0], slowest[1])


def front_page(entries: list[dict]) -> str:
    """index.md: the course map, lesson section -> notebook -> what you will see."""
    intro = (BOOK / "intro.md").read_text(encoding="utf-8").rstrip()
    rows = ["| lesson section | notebook | what you will see |", "|---|---|---|"]
    for e in entries:
        rows.append(f"| {e['lesson']} | [{e['title']}](notebooks/{e['stem']}.ipynb) | {e['see']} |")
    return intro + "\n\n" + "\n".join(rows) + "\n"


def toc(entries: list[dict]) -> str:
    lines = ["format: jb-book", "root: index", "chapters:"]
    lines += [f"- file: notebooks/{e['stem']}" for e in entries]
    return "\n".join(lines) + "\n"


def mermaid_js(cache: Path) -> Path:
    """mermaid.min.js of the pinned version, fetched once with `npm pack` (the npm registry) and kept."""
    js = cache / f"mermaid-{MERMAID}.min.js"
    if js.exists():
        return js
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is missing, and the site needs it once to fetch mermaid (the lesson's diagrams); "
                         "install it with `apt-get install npm` (.ci/run does).")
    work = cache / "npm"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    done = subprocess.run([npm, "pack", f"mermaid@{MERMAID}", "--silent"], cwd=work, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"`npm pack mermaid@{MERMAID}` failed ({done.stderr.strip()[-300:]}); check that the npm "
                         "registry is reachable.")
    import tarfile

    with tarfile.open(work / done.stdout.strip().splitlines()[-1]) as tar:
        member = tar.extractfile("package/dist/mermaid.min.js")
        assert member is not None
        js.write_bytes(member.read())
    shutil.rmtree(work)
    return js


def static_files(src: Path) -> None:
    """_static/: mermaid and the line that starts it (the site's _config.yml loads both)."""
    static = src / "_static"
    static.mkdir(exist_ok=True)
    shutil.copy(mermaid_js(ROOT / "build" / "cache"), static / "mermaid.min.js")
    shutil.copy(BOOK / "mermaid-init.js", static / "mermaid-init.js")


def jupyter_book(src: Path, out: Path) -> None:
    """Render the executed notebooks; a Sphinx warning (a broken reference, a bad image) fails the build."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(src), "--path-output", str(out), "--warningiserror", "--keep-going", "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"jupyter-book build failed (exit {done.returncode}); its output is above.")


def _time_scale(text: str) -> float:
    """argparse type: real seconds per dot, a positive number."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time scale; give real seconds per dot, e.g. 0.05 "
                                         "(fast, as in CI) or 1 (what a learner waits)")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="default: build/site")
    p.add_argument("--time-scale", type=_time_scale, default=os.environ.get("WORKQUEUE_LAB_TIME_SCALE", "0.05"),
                   help="real seconds per dot (default 0.05, as in CI; 1 = what a learner waits)")
    p.add_argument("--only", nargs="*", default=None, help="notebook numbers, e.g. 01 03")
    p.add_argument("--timeout", type=int, default=900, help="per cell, seconds")
    args = p.parse_args(argv)

    os.environ["WORKQUEUE_LAB_TIME_SCALE"] = str(args.time_scale)  # the kernels inherit it
    os.environ.setdefault("WORKQUEUE_LAB_PREFIX", "site.")  # never a learner's own task_queue
    # Pictures inline, whatever the caller's MPLBACKEND (Agg, as benchmarks set it, would leave pages without plots).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    entries = [e for e in course() if args.only is None or e["stem"][:2] in args.only]
    out = args.out.resolve()
    src = out / "src"
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir(parents=True)
    started = time.perf_counter()

    timings = []
    for e in entries:
        print(f"== executing {e['stem']} (time scale {args.time_scale})", flush=True)
        timings.append(execute(NOTEBOOKS / f"{e['stem']}.ipynb", src / "notebooks" / f"{e['stem']}.ipynb",
                               e.get("key_plot"), args.timeout, out / "kernels.log"))
        # after each notebook, so a run that stops halfway still leaves what it measured
        (out / "timings.json").write_text(json.dumps([t.__dict__ for t in timings], indent=1), encoding="utf-8")
    shutil.copy(BOOK / "_config.yml", src / "_config.yml")
    static_files(src)
    (src / "_toc.yml").write_text(toc(entries), encoding="utf-8")
    (src / "index.md").write_text(front_page(entries), encoding="utf-8")
    executed = time.perf_counter() - started
    print("== jupyter-book build", flush=True)
    jupyter_book(src, out)
    shutil.move(out / "_build" / "html", out / "html")
    total = time.perf_counter() - started

    print(f"\n{'notebook':<24} {'run all':>8} {'in cells':>9}  slowest cell")
    for t in timings:
        print(f"{t.notebook:<24} {t.wall:>7.1f}s {t.in_cells:>8.1f}s  {t.slowest_cell} {t.slowest:.1f} s")
    print(f"SUMMARY site: {len(timings)} notebooks executed in {executed:.0f} s at time scale "
          f"{args.time_scale}, rendered in {total - executed:.0f} s; total {total:.0f} s -> {out / 'html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
