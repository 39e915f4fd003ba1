"""Overhead of the lab on the path notebooks use: ``lab.run(...)`` against plain pika doing the same.

    .venv/bin/python benchmarks/overhead.py               # 5000 tasks, 8 paired rounds per setting
    .venv/bin/python benchmarks/overhead.py --quick       # 2000 tasks, 3 rounds (a smoke test)
    .venv/bin/python benchmarks/overhead.py --components  # also the informational component rows below

Judged: the lab.run path.  Each setting (what the notebooks run: 2 workers at prefetch 1 with persistent
messages; one worker at prefetch 10 and 50 with transient ones) runs

* lab -- ``lab.run(callback, tasks=..., workers=..., prefetch=..., persistent=...)`` with its progress line
  on: declare, start the workers (each registered before the first publish), publish every task with
  publisher confirms, wait in ``Run.wait()`` until every task is settled, stop, build the RunResult;
* raw -- plain pika doing the same: as many consumer threads (one BlockingConnection each, basic_qos,
  basic_consume, registered one by one), the same messages and properties published with confirms, a
  callback that acks, a main thread told at once (a threading.Event) when the last ack is sent, stop, close.

Both run the same callback (decode the body, ack).  Timed: the whole call, wall and process CPU time
(every thread of the process).  Each round runs raw and lab back to back, alternating which goes first, so
drift on the shared broker hits both.  Reported: best-of-rounds ratio (lab best / raw best: interference
only slows a run), the median of the per-round ratios, and CPU µs per message for both.  Targets: both
ratios >= 0.9 and the lab's CPU per message within 10 % of raw's.  A benchmark reports; it exits 0.

Informational (``--components``): the earlier component rows -- consuming a pre-filled queue (first
delivery to last ack, the consuming thread's CPU), the same with the main thread in ``Run.wait()``, and the
producer against a raw publish loop -- plus the lab's own per-message cost measured on a stub channel.
Uses its own queue (``bench.q``), deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import pika

from workqueue_lab import settings
from workqueue_lab.broker.discovery import find_broker
from workqueue_lab.engine.producer import publish
from workqueue_lab.engine.run import Run
from workqueue_lab.engine.scenario import Scenario, WorkerSpec
from workqueue_lab.record import events as ev

TARGET = 0.9
CPU_MARGIN = 0.10  # lab's CPU per message at most 10 % above raw's
NOISE_SPREAD = 1.25  # raw's own best/worst round above this: the machine is too busy to resolve 10 %
PREFETCHES = (1, 10, 50, 0)
BODY_BYTES = 64
RAW_RUN_ID = "0123abcd"  # raw's messages carry message_ids as long as a lab run's ("<run id>-<task id>")


@dataclass
class Side:
    rates: list[float] = field(default_factory=list)  # msg/s per round
    cpu_us: list[float] = field(default_factory=list)  # consuming/publishing thread's CPU µs per message


@dataclass
class Row:
    label: str
    raw: Side = field(default_factory=Side)
    lab: Side = field(default_factory=Side)

    def add(self, side: str, n: int, wall_s: float, cpu_s: float) -> None:
        s = self.raw if side == "raw" else self.lab
        s.rates.append(n / wall_s)
        s.cpu_us.append(cpu_s / n * 1e6)

    @property
    def best_ratio(self) -> float:
        return max(self.lab.rates) / max(self.raw.rates)

    @property
    def cpu_ratio(self) -> float:
        """Median of the per-round lab/raw CPU per message (paired, like median_ratio: drift hits both)."""
        return statistics.median(b / a for a, b in zip(self.raw.cpu_us, self.lab.cpu_us, strict=True))

    @property
    def median_ratio(self) -> float:
        return statistics.median(b / a for a, b in zip(self.raw.rates, self.lab.rates, strict=True))


def bodies(n: int) -> list[bytes]:
    """n distinct 64-byte bodies without dots (so lab.work() would be a no-op)."""
    return [f"task {i:08d} ".encode().ljust(BODY_BYTES, b"x") for i in range(1, n + 1)]


def message_count(ch, queue: str) -> int:
    return ch.queue_declare(queue=queue, passive=True, durable=True).method.message_count


def fill(broker, admin, queue: str, payload: list[bytes], persistent: bool, id_prefix: str = RAW_RUN_ID) -> None:
    """Empty the queue, publish ``payload`` as the lab's producer would (no confirms), wait until all are in."""
    admin.queue_purge(queue)
    publish(broker, queue, payload, None, persistent=persistent, confirm=False, id_prefix=id_prefix)
    deadline = time.monotonic() + 60
    while message_count(admin, queue) < len(payload):
        if time.monotonic() > deadline:
            raise RuntimeError(f"queue {queue} did not fill up to {len(payload)} messages")
        time.sleep(0.02)


# --- consume -------------------------------------------------------------------------------


class Counter:
    """What both callbacks do besides acking: count, and stamp the first and the last message."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first_wall = self.last_wall = self.first_cpu = self.last_cpu = 0.0
        self.done = threading.Event()

    def tick(self) -> None:
        self.count += 1
        if self.count == 1:
            self.first_cpu = time.thread_time()
        elif self.count == self.n:
            self.last_cpu = time.thread_time()
            self.done.set()


def consume_raw(broker, queue: str, n: int, prefetch: int) -> tuple[float, float]:
    """(wall, cpu) seconds from the first delivery to the last ack with a plain pika consumer."""
    conn = pika.BlockingConnection(broker.parameters(heartbeat=30))
    c = Counter(n)

    def callback(ch, method, properties, body):
        if c.count == 0:
            c.first_wall = time.monotonic()
        ch.basic_ack(delivery_tag=method.delivery_tag)
        c.tick()
        if c.count == n:
            c.last_wall = time.monotonic()

    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=prefetch)
        ch.basic_consume(queue=queue, on_message_callback=callback)
        deadline = time.monotonic() + 300
        while c.count < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
    finally:
        conn.close()
    if c.count < n:
        raise RuntimeError(f"raw consumer got {c.count} of {n} messages")
    return c.last_wall - c.first_wall, c.last_cpu - c.first_cpu


def consume_lab(broker, queue_base: str, payload: list[bytes], prefetch: int, admin,
                persistent: bool, use_wait: bool = False) -> tuple[float, float]:
    """(wall, cpu) seconds from the first DELIVER to the last ACK event of a one-worker lab run.

    ``use_wait``: the main thread sits in ``Run.wait()`` (as ``lab.run`` does) instead of on an Event."""
    n = len(payload)
    c = Counter(n)

    def callback(ch, method, properties, body):
        ch.basic_ack(delivery_tag=method.delivery_tag)
        c.tick()

    scenario = Scenario(tasks=(), workers=(WorkerSpec(),), prefetch=prefetch, ack="manual", queue=queue_base)
    run = Run(callback, scenario, broker)
    with contextlib.redirect_stdout(io.StringIO()):  # its "messages already waiting" note: we filled on purpose
        run.declare()
    run_id = getattr(run, "run_id", "")
    fill(broker, admin, run.queue, payload, persistent, run_id)
    # What Run.publish() registers, without its per-message publisher confirms (they would make
    # every fill take seconds; confirms are measured in the publish part instead).
    for task_id, body in enumerate(payload, start=1):
        run._task_ids[f"{run_id}-{task_id}" if run_id else str(task_id)] = task_id
        run._body_ids.setdefault(body, task_id)
    run._next_id = n + 1
    with contextlib.redirect_stdout(io.StringIO()):
        run.start()
    try:
        if use_wait:
            run.wait(timeout=300, progress=False)
        if not c.done.wait(0 if use_wait else 300):
            raise RuntimeError(f"lab worker got {c.count} of {n} messages")
    finally:
        run.stop()
    events = run.log.events
    first = min(e.t for e in events if e.kind == ev.DELIVER)
    last = max(e.t for e in events if e.kind == ev.ACK)
    acks = sum(1 for e in events if e.kind == ev.ACK)
    tasks = sum(1 for e in events if e.kind == ev.DELIVER and e.task is not None)
    if acks != n or tasks != n:
        raise RuntimeError(f"lab log has {acks} ACK and {tasks} DELIVER-with-task events, expected {n}")
    return last - first, c.last_cpu - c.first_cpu


class _StubChannel:
    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        pass


def instrumentation_cost(n: int = 5_000, rounds: int = 25) -> float | None:
    """The lab's own CPU cost per consumed message, measured without a broker (so without its noise):
    ``WorkerThread._on_message`` with a stub channel minus the bare callback, best of ``rounds``.
    None if the engine's internals have moved."""
    try:
        from types import SimpleNamespace

        from workqueue_lab.broker.handle import Broker
        from workqueue_lab.engine.workers import WorkerThread

        def callback(ch, method, properties, body):
            ch.basic_ack(delivery_tag=method.delivery_tag)

        scenario = Scenario(tasks=(), workers=(WorkerSpec(),), queue="bench.q")
        run = Run(callback, scenario, Broker(settings.LOCAL_URL))
        msgs = []
        for task_id, body in enumerate(bodies(n), start=1):
            run._task_ids[str(task_id)] = task_id
            msgs.append((SimpleNamespace(delivery_tag=task_id, redelivered=False),
                         pika.BasicProperties(delivery_mode=1, message_id=str(task_id)), body))
        stub = _StubChannel()
        lab_best = raw_best = float("inf")
        for _ in range(rounds):
            run.log = ev.EventLog()
            worker = WorkerThread(run._context(WorkerSpec()), 1, callback, WorkerSpec())
            t = time.perf_counter()
            for method, props, body in msgs:
                worker._on_message(stub, method, props, body)
            lab_best = min(lab_best, time.perf_counter() - t)
            t = time.perf_counter()
            for method, props, body in msgs:
                callback(stub, method, props, body)
            raw_best = min(raw_best, time.perf_counter() - t)
            if len(run.log) != 2 * n:
                return None
        return (lab_best - raw_best) / n * 1e6
    except Exception as exc:  # a benchmark, not a test: say so and go on
        print(f"  instrumentation cost: not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def projected(cost_us: float | None, raw_rate: float) -> str:
    """lab/raw if the lab only adds its own per-message cost to raw's time per message."""
    return "-" if cost_us is None else f"{1 / (1 + cost_us * 1e-6 * raw_rate):.2f}"


# --- publish -------------------------------------------------------------------------------


class _StubConnection:
    def channel(self):
        return self

    def confirm_delivery(self) -> None:
        pass

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False) -> None:
        pass

    def close(self) -> None:
        pass


class _StubBroker:
    def connect(self, **overrides):
        return _StubConnection()


def publish_cost(n: int = 5_000, rounds: int = 25) -> float | None:
    """The lab producer's own CPU cost per message without a broker: ``producer.publish`` into an EventLog
    on a stub channel minus the same loop ``publish_raw`` runs (properties built per message), best of rounds."""
    try:
        payload = bodies(n)
        stub = _StubBroker()
        mode = pika.DeliveryMode.Persistent
        lab_best = raw_best = float("inf")
        for _ in range(rounds):
            log = ev.EventLog()
            t = time.perf_counter()
            publish(stub, "bench.q", payload, log, persistent=True, confirm=True)
            lab_best = min(lab_best, time.perf_counter() - t)
            t = time.perf_counter()
            ch = stub.connect().channel()
            ch.confirm_delivery()
            for task_id, body in enumerate(payload, start=1):
                props = pika.BasicProperties(delivery_mode=mode, message_id=str(task_id))
                ch.basic_publish(exchange="", routing_key="bench.q", body=body, properties=props)
            raw_best = min(raw_best, time.perf_counter() - t)
            if len(log) != n:
                return None
        return (lab_best - raw_best) / n * 1e6
    except Exception as exc:  # a benchmark, not a test: say so and go on
        print(f"  publish cost: not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None



def publish_raw(broker, queue: str, payload: list[bytes], persistent: bool, confirm: bool) -> tuple[float, float]:
    mode = pika.DeliveryMode.Persistent if persistent else pika.DeliveryMode.Transient
    t, cpu = time.perf_counter(), time.thread_time()
    conn = broker.connect()
    try:
        ch = conn.channel()
        if confirm:
            ch.confirm_delivery()
        for task_id, body in enumerate(payload, start=1):
            props = pika.BasicProperties(delivery_mode=mode, message_id=str(task_id))
            ch.basic_publish(exchange="", routing_key=queue, body=body, properties=props)
    finally:
        conn.close()
    return time.perf_counter() - t, time.thread_time() - cpu


def publish_lab(broker, queue: str, payload: list[bytes], persistent: bool, confirm: bool) -> tuple[float, float]:
    log = ev.EventLog()
    t, cpu = time.perf_counter(), time.thread_time()
    publish(broker, queue, payload, log, persistent=persistent, confirm=confirm)
    wall, cpu = time.perf_counter() - t, time.thread_time() - cpu
    if len(log) != len(payload):
        raise RuntimeError("lab producer did not record one PUBLISH per message")
    return wall, cpu


# --- the lab.run path (judged) ---------------------------------------------------------------

# (label, workers, prefetch, persistent): what the notebooks run (2 workers, prefetch 1, the lesson's
# persistent messages), and one fast consumer at prefetch 10 and 50 (transient: the client's own cost
# per message is then the largest share).
RUN_SETTINGS = (("notebooks: 2 workers, prefetch=1", 2, 1, True),
                ("1 worker, prefetch=10", 1, 10, False),
                ("1 worker, prefetch=50", 1, 50, False))


def lesson_callback(ch, method, properties, body):
    """The lesson's worker callback without its prints and sleep: decode the task, ack it."""
    body.decode()
    ch.basic_ack(delivery_tag=method.delivery_tag)


def path_raw(broker, queue: str, payload: list[bytes], workers: int, prefetch: int,
             persistent: bool) -> tuple[float, float]:
    """(wall, process CPU) seconds of plain pika doing what ``lab.run`` does: ``workers`` consumer threads
    (one BlockingConnection each, qos, consume, registered before the first publish), publish every task
    with the lab's properties and publisher confirms, wait until the last ack, stop, close."""
    n = len(payload)
    acked = itertools.count(1)
    done, stop = threading.Event(), threading.Event()
    ready = [threading.Event() for _ in range(workers)]

    def callback(ch, method, properties, body):
        lesson_callback(ch, method, properties, body)
        if next(acked) == n:  # raw's stand-in for lab.run's waiting: told at once, no polling
            done.set()

    def consumer(i: int) -> None:
        conn = pika.BlockingConnection(broker.parameters(heartbeat=30))
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=prefetch)
            ch.basic_consume(queue=queue, on_message_callback=callback)
            ready[i].set()
            while not stop.is_set():
                conn.process_data_events(time_limit=0.05)
        finally:
            conn.close()

    t, cpu = time.perf_counter(), time.process_time()
    with pika.BlockingConnection(broker.parameters()) as conn:
        conn.channel().queue_declare(queue=queue, durable=True)
    threads = [threading.Thread(target=consumer, args=(i,)) for i in range(workers)]
    for th, registered in zip(threads, ready, strict=True):  # one by one, as Run.start does
        th.start()
        registered.wait(15)
    mode = pika.DeliveryMode.Persistent if persistent else pika.DeliveryMode.Transient
    conn = pika.BlockingConnection(broker.parameters())
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for task_id, body in enumerate(payload, start=1):
            props = pika.BasicProperties(delivery_mode=mode, message_id=f"{RAW_RUN_ID}-{task_id}")
            ch.basic_publish(exchange="", routing_key=queue, body=body, properties=props)
    finally:
        conn.close()
    finished = done.wait(300)
    stop.set()
    for th in threads:
        th.join()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    if not finished:
        raise RuntimeError("raw consumers did not ack every message")
    return wall, cpu


def path_lab(queue_base: str, payload: list[bytes], workers: int, prefetch: int,
             persistent: bool) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``lab.run(callback, tasks=..., workers=..., prefetch=...)``, its
    progress line on (as in a notebook; here it only writes its final line, to a buffer)."""
    import workqueue_lab as lab

    t, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        result = lab.run(lesson_callback, tasks=payload, workers=workers, prefetch=prefetch, queue=queue_base,
                         persistent=persistent, timeout=300)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    if len(result.completed) != len(payload) or result.timed_out:
        raise RuntimeError(f"lab.run completed {len(result.completed)} of {len(payload)} tasks")
    return wall, cpu


def judge(row: Row) -> list[str]:
    """What misses a target: best and median ratio >= 0.9, lab CPU per message within 10 % of raw."""
    misses = []
    if row.best_ratio < TARGET:
        misses.append(f"best {row.best_ratio:.2f}")
    if row.median_ratio < TARGET:
        misses.append(f"median {row.median_ratio:.2f}")
    cpu = row.cpu_ratio
    if cpu > 1 + CPU_MARGIN:
        misses.append(f"CPU {cpu:.2f}x")
    return misses


def bench_run_path(broker, admin, queue_base: str, n: int, rounds: int) -> list[Row]:
    queue = settings.name(queue_base)
    payload = bodies(n)
    rows = {s: Row(f"lab.run, {s[0]}") for s in RUN_SETTINGS}
    for r in range(rounds):
        for setting in RUN_SETTINGS:
            _, workers, prefetch, persistent = setting
            for side in (("raw", "lab") if r % 2 == 0 else ("lab", "raw")):
                admin.queue_purge(queue)
                if side == "raw":
                    wall, cpu = path_raw(broker, queue, payload, workers, prefetch, persistent)
                else:
                    wall, cpu = path_lab(queue_base, payload, workers, prefetch, persistent)
                rows[setting].add(side, n, wall, cpu)
            row = rows[setting]
            print(f"  round {r + 1} {row.label}: raw {row.raw.rates[-1]:7.0f}  lab {row.lab.rates[-1]:7.0f} msg/s"
                  f"  CPU µs/msg raw {row.raw.cpu_us[-1]:5.1f} lab {row.lab.cpu_us[-1]:5.1f}",
                  file=sys.stderr, flush=True)
    return list(rows.values())


def print_run_path(rows: list[Row]) -> list[str]:
    """The judged table; returns the misses."""
    print(f"{'the lab.run path (judged)':<44} {'raw best':>8} {'lab best':>8} {'ratio':>6} | {'raw med':>7} "
          f"{'lab med':>7} {'med ratio':>9} | {'CPU µs/msg raw':>14} {'lab':>6} {'lab/raw':>7} | verdict")
    misses = []
    for row in rows:
        raw_cpu, lab_cpu = statistics.median(row.raw.cpu_us), statistics.median(row.lab.cpu_us)
        miss = judge(row)
        misses += [f"{row.label}: {m}" for m in miss]
        print(f"{row.label:<44} {max(row.raw.rates):>8.0f} {max(row.lab.rates):>8.0f} {row.best_ratio:>6.2f} | "
              f"{statistics.median(row.raw.rates):>7.0f} {statistics.median(row.lab.rates):>7.0f} "
              f"{row.median_ratio:>9.2f} | {raw_cpu:>14.1f} {lab_cpu:>6.1f} {row.cpu_ratio:>7.2f} | "
              f"{'met' if not miss else 'MISSED: ' + ', '.join(miss)}")
    print(f"msg/s = tasks / wall time of the whole call (connect, declare, publish with confirms, consume, wait, "
          f"stop); CPU µs/msg = the process's CPU time / tasks (all threads), medians; lab/raw = the median of "
          f"the per-round CPU ratios. Targets: best and median ratio "
          f">= {TARGET}, lab CPU within {CPU_MARGIN:.0%} of raw.")
    return misses


# --- the benchmark -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=5_000, help="messages per consume run (default 5000)")
    p.add_argument("--publish-n", type=int, default=2_000, help="messages per publish run (default 2000)")
    p.add_argument("--rounds", type=int, default=8, help="raw/lab pairs per setting (default 8)")
    p.add_argument("--queue", default="bench.q", help="queue to use and delete (default bench.q)")
    p.add_argument("--run-n", type=int, default=5_000, help="tasks per lab.run path run (default 5000)")
    p.add_argument("--quick", action="store_true", help="2000 tasks, 3 rounds")
    p.add_argument("--components", action="store_true",
                   help="also the informational component rows: consume a pre-filled queue, publish")
    p.add_argument("--persistent", action="store_true", help="consume persistent messages (default transient)")
    p.add_argument("--skip-publish", action="store_true")
    p.add_argument("--skip-wait", action="store_true", help="skip the informational Run.wait() row")
    p.add_argument("--skip-consume", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.run_n, args.publish_n, args.rounds = 2_000, 2_000, 1_000, 3
    if not args.components:
        args.skip_consume = args.skip_publish = args.skip_wait = True

    broker = find_broker()
    queue = settings.name(args.queue)
    admin_conn = broker.connect()
    admin = admin_conn.channel()
    admin.queue_declare(queue=queue, durable=True)
    print(f"# RabbitMQ {broker.version} at {broker.masked_url}; queue {queue}; pika {pika.__version__}; "
          f"Python {sys.version.split()[0]}; {args.rounds} rounds; {args.n} consumed, "
          f"{args.publish_n} published per run", flush=True)
    rows: list[Row] = []
    informational: list[Row] = []  # shown, not judged
    t_start = time.monotonic()
    # The broker-free costs are measured at three moments (start, middle, end) and the lowest kept:
    # a busy machine inflates them, and it is rarely busy at all three.
    costs: list[float] = []
    pcosts: list[float] = []

    def measure_own_costs() -> None:
        if not args.skip_consume and (c := instrumentation_cost()) is not None:
            costs.append(c)
        if not args.skip_publish and (c := publish_cost()) is not None:
            pcosts.append(c)

    measure_own_costs()
    run_rows: list[Row] = []
    try:
        run_rows = bench_run_path(broker, admin, args.queue, args.run_n, args.rounds)
        if not args.skip_consume:
            payload = bodies(args.n)
            mode = "persistent" if args.persistent else "transient"
            consume_rows = {pf: Row(f"consume {mode} prefetch={pf}") for pf in PREFETCHES}
            waited = Row("  same, prefetch=50, in Run.wait() *")
            for r in range(args.rounds):
                for pf in PREFETCHES:
                    for side in (("raw", "lab") if r % 2 == 0 else ("lab", "raw")):
                        if side == "raw":
                            fill(broker, admin, queue, payload, args.persistent)
                            wall, cpu = consume_raw(broker, queue, args.n, pf)
                        else:
                            wall, cpu = consume_lab(broker, args.queue, payload, pf, admin, args.persistent)
                        consume_rows[pf].add(side, args.n, wall, cpu)
                    row = consume_rows[pf]
                    if pf == 50 and not args.skip_wait:  # informational: lab.run()'s main thread polling the log
                        wall, cpu = consume_lab(broker, args.queue, payload, pf, admin, args.persistent, True)
                        waited.raw.rates.append(row.raw.rates[-1])
                        waited.raw.cpu_us.append(row.raw.cpu_us[-1])
                        waited.add("lab", args.n, wall, cpu)
                    print(f"  round {r + 1} prefetch {pf:>2}: raw {row.raw.rates[-1]:7.0f}  "
                          f"lab {row.lab.rates[-1]:7.0f} msg/s", file=sys.stderr, flush=True)
            rows += consume_rows.values()
            measure_own_costs()
            informational = [waited] if waited.lab.rates else []
        if not args.skip_publish:
            payload = bodies(args.publish_n)
            combos = [(pers, conf) for pers in (False, True) for conf in (False, True)]
            publish_rows = {c: Row(f"publish {'persistent' if c[0] else 'transient'}{' +confirms' if c[1] else ''}")
                            for c in combos}
            for r in range(args.rounds):
                for pers, conf in combos:
                    for side in (("raw", "lab") if r % 2 == 0 else ("lab", "raw")):
                        admin.queue_purge(queue)
                        fn = publish_raw if side == "raw" else publish_lab
                        wall, cpu = fn(broker, queue, payload, pers, conf)
                        publish_rows[(pers, conf)].add(side, args.publish_n, wall, cpu)
                print(f"  round {r + 1} publish done", file=sys.stderr, flush=True)
            rows += publish_rows.values()
    finally:
        try:
            admin.queue_delete(queue=queue)
        finally:
            admin_conn.close()

    misses = print_run_path(run_rows)
    if not rows:
        print(f"SUMMARY overhead: {'PASS' if not misses else 'MISS'} lab.run path vs raw pika"
              f"{': ' + '; '.join(misses) if misses else ', every target met'}; {time.monotonic() - t_start:.0f} s")
        return 0
    print()
    measure_own_costs()
    cost = min(costs, default=None)
    pcost = min(pcosts, default=None)
    print("Components (informational, not judged):")
    print(f"{'setting':<36} {'raw best':>8} {'lab best':>8} {'ratio':>6} | {'raw med':>7} {'lab med':>7} "
          f"{'med ratio':>9} {'raw spread':>10} | {'CPU µs/msg':>10} {'':>5} | {'projected':>9}")
    print(f"{'':<36} {'msg/s':>8} {'msg/s':>8} {'':>6} | {'msg/s':>7} {'msg/s':>7} {'':>9} {'max/min':>10} | "
          f"{'raw':>10} {'lab':>5} | {'ratio':>9}")
    for row in rows + informational:
        own = cost if row.label.startswith("consume") else pcost if row.label.startswith("publish") else None
        proj = projected(own, max(row.raw.rates))
        spread = max(row.raw.rates) / min(row.raw.rates)
        flag = "  noisy" if spread > NOISE_SPREAD else ""
        print(f"{row.label:<36} {max(row.raw.rates):>8.0f} {max(row.lab.rates):>8.0f} {row.best_ratio:>6.2f} | "
              f"{statistics.median(row.raw.rates):>7.0f} {statistics.median(row.lab.rates):>7.0f} "
              f"{row.median_ratio:>9.2f} {spread:>10.2f} | {statistics.median(row.raw.cpu_us):>10.1f} "
              f"{statistics.median(row.lab.cpu_us):>5.1f} | {proj:>9}{flag}")
    if informational:
        print("* informational, not judged: the same lab run, but the main thread waits in Run.wait() (as lab.run "
              "does), reading the log as it waits; raw is that round's prefetch=50 raw run.")
    own_text = []
    if cost is not None:
        own_text.append(f"consume {cost:.1f} µs/msg -> {projected(cost, 27_000)} at 27k msg/s")
    if pcost is not None:
        own_text.append(f"publish {pcost:.1f} µs/msg -> {projected(pcost, 20_000)} at 20k msg/s")
    if own_text:
        print("The lab's own cost, measured without a broker (stub channel, best of 25 x 3): " + "; ".join(own_text)
              + ". 'projected' = 1 / (1 + that cost x raw best msg/s): the ratio if the lab only adds its own "
              "cost to raw's time per message.")
    print(f"'noisy': the raw runs alone differ by more than {NOISE_SPREAD:.2f}x from round to round (a busy shared "
          "broker/CPU): rerun on a quiet machine.")
    own = f"; lab's own cost: {'; '.join(own_text)}" if own_text else ""
    print(f"SUMMARY overhead: {'PASS' if not misses else 'MISS'} lab.run path vs raw pika"
          f"{': ' + '; '.join(misses) if misses else ', every target met'}{own}; {time.monotonic() - t_start:.0f} s")
    return 0  # a benchmark reports; it does not fail a build


if __name__ == "__main__":
    sys.exit(main())
