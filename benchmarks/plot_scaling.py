"""Timeline scaling: seconds to draw and to save ``workqueue_lab.views.timeline.plot_timeline`` (Agg).

    .venv/bin/python benchmarks/plot_scaling.py                 # 1k, 10k, 100k attempts
    .venv/bin/python benchmarks/plot_scaling.py --sizes 1000 5000

Synthetic event logs, built before the clock starts: 4 workers, each attempt a DELIVER and an ACK
(one in 50 nacked with requeue and redelivered later, one crash per 10k attempts, whose open
attempts the broker redelivers), every task PUBLISHed first -- the mix a real run records.
"draw" is ``plot_timeline(events)`` (pairing events into attempts and building the artists);
"savefig" is ``fig.savefig(BytesIO, format="png", dpi=100)`` (what a notebook shows).  Best of
``--repeat`` runs (interference only ever adds time).  Targets: 10k <= 1 s, 100k <= 5 s (draw + savefig).
Needs no broker.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

from workqueue_lab.record import events as ev  # noqa: E402
from workqueue_lab.views.timeline import plot_timeline  # noqa: E402

TARGETS = {10_000: 1.0, 100_000: 5.0}
WORKERS = 4


def synthetic_events(n_attempts: int, seed: int = 0) -> list[ev.Event]:
    """A plausible log with ``n_attempts`` attempts on WORKERS workers."""
    rng = random.Random(seed)
    out: list[ev.Event] = []
    n_tasks = max(1, int(n_attempts / 1.02))
    for task in range(1, n_tasks + 1):
        out.append(ev.Event(task * 1e-5, ev.PUBLISH, None, task, detail=f"Task {task}."))
    t = n_tasks * 1e-5
    clock = [t] * (WORKERS + 1)
    tags = [0] * (WORKERS + 1)
    retry: list[int] = []
    task = 0
    crash_every = 10_000
    for i in range(n_attempts):
        w = i % WORKERS + 1
        if retry and rng.random() < 0.5:
            current, redelivered = retry.pop(), True
        elif task < n_tasks:
            task += 1
            current, redelivered = task, False
        elif retry:
            current, redelivered = retry.pop(), True
        else:
            break
        tags[w] += 1
        start = clock[w] + rng.uniform(0.0, 0.002)
        end = start + rng.uniform(0.01, 0.05)
        clock[w] = end
        out.append(ev.Event(start, ev.DELIVER, w, current, tags[w], redelivered))
        if i and i % crash_every == 0:
            out.append(ev.Event(end, ev.CRASH, w, current, detail="injected crash"))
            out.append(ev.Event(end + 0.01, ev.RESTART, w))
            tags[w] = 0
            retry.append(current)
        elif rng.random() < 0.02:
            out.append(ev.Event(end, ev.NACK, w, current, tags[w], requeue=True))
            retry.append(current)
        else:
            out.append(ev.Event(end, ev.ACK, w, current, tags[w]))
    out.sort(key=lambda e: e.t)
    return out


def measure(events: list[ev.Event], repeat: int) -> tuple[float, float, int]:
    best_draw = best_save = float("inf")
    size = 0
    for _ in range(repeat):
        t = time.perf_counter()
        fig = plot_timeline(events)
        t_draw = time.perf_counter() - t
        buf = io.BytesIO()
        t = time.perf_counter()
        fig.savefig(buf, format="png", dpi=100)
        t_save = time.perf_counter() - t
        size = len(buf.getvalue())
        best_draw, best_save = min(best_draw, t_draw), min(best_save, t_save)
    return best_draw, best_save, size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    import matplotlib

    # Warm-up: the first figure pays for font loading and imports; a notebook pays that once.
    t = time.perf_counter()
    measure(synthetic_events(10), 1)
    warm = time.perf_counter() - t
    print(f"# matplotlib {matplotlib.__version__} ({matplotlib.get_backend()}); first tiny figure "
          f"{warm:.2f} s (imports, fonts; not counted); best of {args.repeat}", flush=True)
    rows = []
    for n in args.sizes:
        events = synthetic_events(n)
        n_att = len(ev.attempts(events))
        draw, save, size = measure(events, args.repeat)
        rows.append((n, n_att, len(events), draw, save, size))
        print(f"  {n}: draw {draw:.2f} s savefig {save:.2f} s", file=sys.stderr, flush=True)

    print(f"{'attempts':>9} {'events':>8} {'draw s':>7} {'savefig s':>9} {'total s':>8} {'PNG KB':>7}  target")
    misses = []
    for n, n_att, n_ev, draw, save, size in rows:
        total = draw + save
        target = TARGETS.get(n)
        verdict = "" if target is None else (f"<= {target:.0f} s ok" if total <= target else f"> {target:.0f} s MISS")
        if target is not None and total > target:
            misses.append(f"{n} attempts {total:.2f} s > {target:.0f} s")
        print(f"{n_att:>9} {n_ev:>8} {draw:>7.2f} {save:>9.2f} {total:>8.2f} {size / 1024:>7.0f}  {verdict}")
    summary = "; ".join(f"{n // 1000}k {d + s:.2f} s" for n, _, _, d, s, _ in rows)
    verdict = "PASS" if not misses else "MISS (" + "; ".join(misses) + ")"
    print(f"SUMMARY plot_scaling: {verdict} draw+savefig {summary} (targets 10k <= 1 s, 100k <= 5 s)")
    return 0 if not misses else 1


if __name__ == "__main__":
    sys.exit(main())
