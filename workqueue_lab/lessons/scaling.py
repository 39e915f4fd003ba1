"""Scaling by adding workers: throughput of sleep-bound and CPU-bound tasks, threads against processes.

The two callbacks are plain pika callbacks a worker process can import by name
(``workqueue_lab.lessons.scaling:cpu_callback``).  A task's body says what to do:
``"Task 3 sleep 0.1"`` waits 0.1 s (like a network call or disk I/O: the GIL is released) and
``"Task 3 cpu 200000"`` runs a pure-Python loop that many times (holds the GIL all along).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..record import events as ev

CPU = "cpu"
SLEEP = "sleep"


def spin(iterations: int) -> int:
    """Pure-Python arithmetic: one core busy, the GIL held the whole time."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def sleep_callback(ch, method, properties, body):
    time.sleep(float(body.split()[-1]))
    ch.basic_ack(delivery_tag=method.delivery_tag)


def cpu_callback(ch, method, properties, body):
    spin(int(body.split()[-1]))
    ch.basic_ack(delivery_tag=method.delivery_tag)


CALLBACKS = {SLEEP: "workqueue_lab.lessons.scaling:sleep_callback", CPU: "workqueue_lab.lessons.scaling:cpu_callback"}


def iterations_for(seconds: float, tries: int = 3) -> int:
    """How many spin() iterations take ``seconds`` on one core of this machine (best of ``tries``)."""
    n = 200_000
    best = min(_timed(n) for _ in range(tries))
    return max(1000, int(n * seconds / best))


def _timed(n: int) -> float:
    start = time.perf_counter()
    spin(n)
    return time.perf_counter() - start


def free_cores(seconds: float = 0.25) -> float:
    """How many cores this machine gives us right now: the speed-up of one busy process per core, run
    together, over one alone (about ``cpu_count`` on a quiet machine, near 1 when other programs hold
    the cores).  Measured now, unlike the load average, which trails the last minute."""
    import os
    import subprocess
    import sys

    n = iterations_for(seconds)
    code = f"from workqueue_lab.lessons.scaling import spin; spin({n})"
    cores = os.cpu_count() or 1

    def together(k: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(k)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    def measure() -> float:
        one = min(together(1) for _ in range(3))  # best of three: a passing spike elsewhere does not count
        return cores * one / min(together(cores) for _ in range(3))

    free = measure()
    for _ in range(3):  # looks busy: a spike lasting the whole measurement (a VM's neighbour), or real work
        if free >= cores - 0.5:
            break
        time.sleep(1.5)
        free = max(free, measure())  # busy four times over some seconds: the cores really are taken
    return round(free, 2)


def tasks(kind: str, count: int, seconds: float, iterations: int) -> list[str]:
    amount = f"{seconds:g}" if kind == SLEEP else str(iterations)
    return [f"Task {i} {kind} {amount}" for i in range(1, count + 1)]


def throughput(events: list[ev.Event]) -> float:
    """Tasks acked per second, from the first delivery to the last ack (start-up left out)."""
    starts = [e.t for e in events if e.kind == ev.DELIVER]
    acks = [e.t for e in events if e.kind == ev.ACK]
    if not acks:
        return 0.0
    return len(acks) / max(max(acks) - min(starts), 1e-9)


@dataclass
class Sweep:
    """Throughput (tasks/s) per (kind, mode, workers); mode is 'threads' or 'processes'."""

    workers: tuple[int, ...]
    task_seconds: float
    rates: dict[tuple[str, str, int], float] = field(default_factory=dict)
    seconds: float = 0.0  # how long the whole sweep took

    def single(self, kind: str) -> float:
        """One worker's throughput: the better of its thread and process runs (noise only slows a run down)."""
        return max(rate for (k, _, n), rate in self.rates.items() if k == kind and n == 1)

    def speedup(self, kind: str, mode: str, n: int) -> float:
        return self.rates[(kind, mode, n)] / self.single(kind)

    def rows(self) -> list[tuple[str, str, list[float]]]:
        kinds_modes = sorted({(k, m) for k, m, _ in self.rates}, key=lambda km: (km[0] != SLEEP, km[1]))
        return [(k, m, [self.rates[(k, m, n)] for n in self.workers]) for k, m in kinds_modes]

    def _repr_markdown_(self) -> str:
        head = "| task | workers as | " + " | ".join(f"{n} worker{'s' * (n > 1)}" for n in self.workers) + " |"
        lines = [head, "|:--|:--|" + "--:|" * len(self.workers)]
        for kind, mode, rates in self.rows():
            cells = " | ".join(f"{r:.1f}/s (×{r / self.single(kind):.1f})" for r in rates)
            lines.append(f"| {kind}-bound | {mode} | {cells} |")
        lines.append(f"\nOne task: about {self.task_seconds:g} s of work; ×: against one worker (the better of its "
                     f"two runs); the sweep took {self.seconds:.0f} s.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._repr_markdown_()


def sweep(workers: tuple[int, ...] = (1, 2, 4, 8), task_seconds: float = 0.1, per_worker: int = 4,
          kinds: tuple[str, ...] = (SLEEP, CPU), modes: tuple[str, ...] = ("threads", "processes")) -> Sweep:
    """Run lab.run once per (kind, mode, number of workers) with ``per_worker`` tasks each."""
    from ..engine.run import run

    began = time.monotonic()
    iterations = iterations_for(task_seconds)
    result = Sweep(tuple(workers), task_seconds)
    for kind in kinds:
        for mode in modes:
            for n in workers:
                rates = []
                for _ in range(2 if n == 1 else 1):  # one worker is the yardstick: measure it twice, keep the best
                    r = run(CALLBACKS[kind], tasks=tasks(kind, max(per_worker * n, 8), task_seconds, iterations),
                            workers=n, prefetch=1, processes=mode == "processes", progress=False, timeout=120)
                    rates.append(throughput(r.events))
                result.rates[(kind, mode, n)] = max(rates)
    result.seconds = time.monotonic() - began
    return result


def plot(result: Sweep, cores: int | None = None):
    """Two panels (sleep-bound, CPU-bound): tasks per second against workers, threads and processes."""
    from ..views.figure import new_figure, tidy_axes

    kinds = [k for k in (SLEEP, CPU) if any(key[0] == k for key in result.rates)]
    fig = new_figure(10, 3.6)
    axes = fig.subplots(1, len(kinds), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        tidy_axes(ax)
        for k, mode, rates in result.rows():
            if k == kind:
                ax.plot(result.workers, rates, marker="o", label=mode)
        ideal = [result.single(kind) * n for n in result.workers]
        ax.plot(result.workers, ideal, ls=":", color="grey", label="ideal (×workers)")
        if cores:
            ax.axvline(cores, color="#b3261e", lw=0.8, ls="--", label=f"{cores} cores")
        ax.set_xscale("log", base=2)
        ax.set_xticks(result.workers, [str(n) for n in result.workers])
        ax.set_xlabel("workers")
        ax.set_ylabel("tasks per second")
        ax.set_title(f"{kind}-bound tasks")
        ax.legend(fontsize=8)
    return fig
