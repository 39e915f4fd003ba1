"""Course runtime: every notebook under nbval, one at a time, as the test command runs them.

    .venv/bin/python benchmarks/course_runtime.py                 # every notebooks/*.ipynb
    .venv/bin/python benchmarks/course_runtime.py notebooks/01_*.ipynb   # some of them

Each notebook runs as ``python -m pytest --nbval-lax --current-env notebooks/X.ipynb`` (pytest's
cache off) with ``WORKQUEUE_LAB_TIME_SCALE=0.05`` (what ``make test`` uses) and, unless already set,
``WORKQUEUE_LAB_PREFIX=bench.`` so its queues never collide with a learner's or a parallel test run's.
The time is the wall clock of that whole command: interpreter and pytest start-up, kernel start,
every cell.  ``make test`` runs all notebooks in one pytest process, so it saves the start-up
(about a second per notebook) that this per-notebook figure includes.
Targets: total <= 60 s, no notebook over 15 s.  Works with whatever notebooks exist.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTAL_TARGET = 60.0
EACH_TARGET = 15.0
TIME_SCALE = "0.05"


def run_notebook(path: Path, timeout: float) -> tuple[float, str, str, float | None, str]:
    """(wall seconds, outcome, pytest's last line, pytest's own session seconds, slowest cell) for one notebook."""
    env = dict(os.environ)
    env["WORKQUEUE_LAB_TIME_SCALE"] = TIME_SCALE
    env.setdefault("WORKQUEUE_LAB_PREFIX", "bench.")
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--current-env", "-p", "no:cacheprovider", "-q",
           "--durations=1", "--durations-min=0", str(path.relative_to(ROOT))]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t, "TIMEOUT", f"killed after {timeout:.0f} s", None, ""
    dt = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    last = lines[-1].strip("= ") if lines else " ".join(proc.stderr.strip().splitlines()[-1:])
    outcome = {0: "passed", 5: "no cells"}.get(proc.returncode, f"FAILED (rc {proc.returncode})")
    m = re.search(r" in ([0-9.]+)s", last)
    session = float(m.group(1)) if m else None
    slow = re.search(r"^([0-9.]+)s (call|setup|teardown)\s+\S+::(.+)$", proc.stdout, re.M)
    slowest = f"{slow.group(3)} {float(slow.group(1)):.1f} s" if slow else ""
    return dt, outcome, last, session, slowest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    p.add_argument("--timeout", type=float, default=300.0, help="per notebook, seconds (default 300)")
    args = p.parse_args(argv)
    paths = [q.resolve() for q in args.notebooks] or sorted((ROOT / "notebooks").rglob("*.ipynb"))
    paths = [q for q in paths if ".ipynb_checkpoints" not in q.parts]
    print(f"# {len(paths)} notebook(s); WORKQUEUE_LAB_TIME_SCALE={TIME_SCALE}; {sys.executable}", flush=True)
    if not paths:
        print("SUMMARY course_runtime: no notebooks under notebooks/ yet; nothing to time")
        return 0

    rows = []
    for path in paths:
        dt, outcome, last, session, slowest = run_notebook(path, args.timeout)
        rows.append((str(path.relative_to(ROOT / "notebooks")), dt, outcome, session, slowest))
        print(f"  {path.name}: {dt:.1f} s {outcome} -- {last}", file=sys.stderr, flush=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'notebook':<{width}} {'seconds':>8} {'in pytest':>9}  {'slowest cell':<18} outcome")
    for name, dt, outcome, session, slowest in rows:
        flag = "  > 15 s" if dt > EACH_TARGET else ""
        inner = f"{session:>9.1f}" if session is not None else f"{'?':>9}"
        print(f"{name:<{width}} {dt:>8.1f} {inner}  {slowest:<18} {outcome}{flag}")
    total = sum(r[1] for r in rows)
    inner_total = sum(r[3] or 0.0 for r in rows)
    print(f"{'total':<{width}} {total:>8.1f} {inner_total:>9.1f}")
    print("('seconds': the whole command; 'in pytest': pytest's own session time, i.e. without interpreter "
          "and plugin start-up)")
    slowest = max(rows, key=lambda r: r[1])
    failed = [r[0] for r in rows if r[2] not in ("passed", "no cells")]
    ok = total <= TOTAL_TARGET and slowest[1] <= EACH_TARGET
    verdict = "PASS" if ok else "MISS"
    note = f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""
    print(f"SUMMARY course_runtime: {verdict} total {total:.1f} s over {len(rows)} notebooks (target <= "
          f"{TOTAL_TARGET:.0f} s), slowest {slowest[0]} {slowest[1]:.1f} s (target <= {EACH_TARGET:.0f} s){note}")
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
