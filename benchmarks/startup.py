"""Start-up: ``import workqueue_lab`` in a fresh interpreter, and the private broker node's boot and reuse.

    .venv/bin/python benchmarks/startup.py                  # both parts
    .venv/bin/python benchmarks/startup.py --skip-node      # only the import

Import: ``python -c "import workqueue_lab"`` in a new process, timed inside it with perf_counter
around the import (median of ``--repeat`` processes); also lists which heavy modules that import
pulled in -- pika, matplotlib and ipywidgets must not be (they load on first use).  Target <= 0.3 s.

Private node: ``workqueue_lab.broker.node`` with a temporary ``WORKQUEUE_LAB_HOME``, every step in
its own fresh process (like a new kernel), timed inside that process:
  cold start  -- start() on an empty home: pick ports, write config, boot RabbitMQ, wait until ready;
  reuse       -- start() from another process while it runs (a second kernel finds it);
  stop        -- stop();
  warm start  -- start() again on the same home (the node's data already exists);
and a final stop.  The temporary home is removed afterwards.  Needs ``rabbitmq-server`` installed;
as root the node runs as the unprivileged ``wqlab`` user.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORT_TARGET = 0.3
HEAVY = ("pika", "matplotlib", "ipywidgets", "numpy", "IPython", "testcontainers", "docker", "requests")
MUST_NOT = ("pika", "matplotlib", "ipywidgets")

IMPORT_CODE = """
import json, sys, time
before = set(sys.modules)
t = time.perf_counter()
import workqueue_lab
dt = time.perf_counter() - t
new = set(sys.modules) - before
print(json.dumps({"seconds": dt, "modules": len(new),
                  "heavy": sorted(m for m in HEAVY if m in sys.modules),
                  "lab_modules": sorted(m for m in new if m.startswith("workqueue_lab"))}))
""".replace("HEAVY", repr(HEAVY))

# What a notebook's first lab call costs on top (informational, no target).
FIRST_USE_CODE = """
import json, sys, time
t = time.perf_counter()
import workqueue_lab as lab
lab.run
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))

NODE_CODE = """
import json, sys, time
from workqueue_lab.broker import node as private_node
step = sys.argv[1]
t = time.perf_counter()
if step == "stop":
    result = private_node.stop()
else:
    info = private_node.start()
    result = {"url": info.url.replace("guest:guest@", ""), "nodename": info.nodename}
print(json.dumps({"seconds": time.perf_counter() - t, "result": result}))
"""


def child(code: str, *args: str, env: dict | None = None, timeout: float = 180) -> tuple[dict | None, float, str]:
    """Run ``code`` in a fresh interpreter; (its JSON answer or None, wall seconds, error text)."""
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t, f"no answer within {timeout:.0f} s"
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return None, wall, lines[-1] if lines else f"exit code {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall, ""


def bench_import(repeat: int) -> tuple[list[tuple[str, str]], bool, str]:
    bare = [child("print('{}')")[1] for _ in range(3)]
    runs = []
    for _ in range(repeat):
        answer, wall, err = child(IMPORT_CODE)
        if answer is None:
            raise SystemExit(f"import workqueue_lab failed: {err}")
        runs.append((answer, wall))
    secs = statistics.median(a["seconds"] for a, _ in runs)
    walls = statistics.median(w for _, w in runs)
    heavy = runs[0][0]["heavy"]
    bad = [m for m in heavy if m in MUST_NOT]
    rows = [
        ("import workqueue_lab (in process, median)", f"{secs:.3f} s"),
        ("  fastest / slowest", f"{min(a['seconds'] for a, _ in runs):.3f} / "
                                f"{max(a['seconds'] for a, _ in runs):.3f} s"),
        ("  whole process (python -c, median)", f"{walls:.3f} s (bare interpreter {statistics.median(bare):.3f} s)"),
        ("  modules the import added", str(runs[0][0]["modules"])),
        ("  lab modules loaded", ", ".join(runs[0][0]["lab_modules"])),
        ("  heavy modules loaded", ", ".join(heavy) or "none"),
    ]
    first = [child(FIRST_USE_CODE)[0] for _ in range(3)]
    if all(first):
        rows.append(("import + first use (lab.run), median",
                     f"{statistics.median(f['seconds'] for f in first):.3f} s, loads "
                     f"{', '.join(first[0]['heavy']) or 'nothing heavy'} (informational)"))
    ok = secs <= IMPORT_TARGET and not bad
    text = f"import {secs:.3f} s (target <= {IMPORT_TARGET} s), heavy modules: {', '.join(heavy) or 'none'}"
    return rows, ok, text


def bench_node() -> tuple[list[tuple[str, str]], bool, str]:
    sys.path.insert(0, str(ROOT))
    from workqueue_lab.broker import node as private_node

    if private_node.server_script() is None:
        return [("private node", "skipped: rabbitmq-server is not installed")], True, "node skipped (not installed)"
    home = Path(tempfile.mkdtemp(prefix="wqlab-bench-home-", dir="/tmp"))
    home.chmod(0o755)  # as root, the node's own user must reach it
    env = dict(os.environ, WORKQUEUE_LAB_HOME=str(home))
    env.pop("WORKQUEUE_LAB_URL", None)
    rows: list[tuple[str, str]] = [("WORKQUEUE_LAB_HOME", str(home))]
    times: dict[str, float] = {}
    error = ""
    try:
        for label, step in (("cold start", "start"), ("reuse (another process)", "start"), ("stop", "stop"),
                            ("warm start (data kept)", "start"), ("reuse (another process) ", "start")):
            answer, wall, err = child(NODE_CODE, step, env=env)
            if answer is None:
                error = f"{label}: {err}"
                rows.append((label, f"FAILED: {err}"))
                log = home / "node" / "log" / "server-stdout.log"  # the home is removed below: show its tail now
                if log.exists():
                    tail = log.read_text(errors="replace").strip().splitlines()[-12:]
                    rows += [("  boot log", line) for line in tail]
                break
            times[label.strip()] = answer["seconds"]
            extra = f" -> {answer['result']['url']}" if isinstance(answer["result"], dict) else ""
            rows.append((label.strip(), f"{answer['seconds']:.2f} s (process {wall:.2f} s){extra}"))
    finally:
        answer, wall, err = child(NODE_CODE, "stop", env=env, timeout=90)
        rows.append(("final stop", f"{answer['seconds']:.2f} s" if answer else f"FAILED: {err}"))
        shutil.rmtree(home, ignore_errors=True)
    if error:
        return rows, False, f"private node FAILED ({error})"
    text = (f"node cold {times['cold start']:.1f} s, warm {times['warm start (data kept)']:.1f} s, "
            f"reuse {times['reuse (another process)']:.2f} s, stop {times['stop']:.1f} s")
    return rows, True, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=7, help="fresh interpreters for the import (default 7)")
    p.add_argument("--skip-node", action="store_true", help="only time the import")
    args = p.parse_args(argv)
    print(f"# {sys.executable} (Python {sys.version.split()[0]})", flush=True)

    rows, ok_import, text_import = bench_import(args.repeat)
    ok_node, text_node = True, ""
    if not args.skip_node:
        node_rows, ok_node, text_node = bench_node()
        rows += [("", ""), *node_rows]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    verdict = "PASS" if ok_import and ok_node else "MISS"
    parts = [text_import] + ([text_node] if text_node else [])
    print(f"SUMMARY startup: {verdict} " + "; ".join(parts))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
