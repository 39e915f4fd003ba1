"""Event-log memory: bytes per event (tracemalloc) and what the lab's bound ``EventLog.max_events`` means.

    .venv/bin/python benchmarks/memory.py              # 100k events
    .venv/bin/python benchmarks/memory.py -n 300000

Records events through ``EventLog.record`` exactly as a run does and counts, with tracemalloc, every
byte allocated while recording and still alive afterwards: the Event objects, their float timestamps,
their delivery-tag ints (pika makes a new int per delivery), PUBLISH labels (a new string per task),
and the log's list.  Task ids are made beforehand: they live in the Run's own tables anyway.
Two mixes: a lesson-like run (per task: PUBLISH with its label, DELIVER, ACK) and a consumer-only
one (DELIVER, ACK).  Then ``max_events`` (default 1,000,000) times the bytes per event, and the
snapshot copies a finished run adds (``log.events`` and ``RunResult.events``: a list each, 8 bytes an event).
Needs no broker.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc

from workqueue_lab.record import events as ev


def measure(n: int, mix: str) -> tuple[float, float, int]:
    """(bytes per event as recorded, bytes per event once read, events recorded) for n events of a mix.

    The worker and the producer record through ``EventLog.note`` where it exists (a plain tuple, made
    into an Event when the log is first read); older engines only have ``record``."""
    tasks = list(range(1, n + 1))  # the Run's task ids: not the log's memory
    log = ev.EventLog(max_events=n + 10)
    hot = getattr(log, "note", log.record)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    count = 0
    tag = 0
    i = 0
    while count < n:
        task = tasks[i]
        i += 1
        if mix == "lesson":
            label = f"Task {task}."  # producer._label(body): a new string per publish
            hot(ev.PUBLISH, None, task, detail=label)
            count += 1
        tag += 1
        delivery_tag = int(str(tag))  # a fresh int object, as pika decodes one per delivery
        hot(ev.DELIVER, 1 + task % 2, task, delivery_tag, False)
        hot(ev.ACK, 1 + task % 2, task, delivery_tag, False, None, "")
        count += 2
    gc.collect()
    recorded_bytes = tracemalloc.get_traced_memory()[0] - before
    snapshot = log.events  # the first read builds the Events
    del snapshot
    gc.collect()
    read_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    recorded = len(log)
    del log
    return recorded_bytes / recorded, read_bytes / recorded, recorded


def measure_deliveries(n: int) -> float:
    """Bytes per delivery of a worker's delivery table (WorkerThread._deliveries: tag -> (task, t)),
    which lives next to the log for as long as the worker's channel does and has no bound of its own."""
    import time

    tasks = list(range(1, n + 1))
    table: dict[int, tuple[int | None, float]] = {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        table[int(str(i + 1))] = (tasks[i], time.monotonic())
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=100_000, help="events to record per mix (default 100000)")
    args = p.parse_args(argv)
    bound = ev.EventLog().max_events
    sample = ev.Event(1.0, ev.ACK, 1, 1, 1)
    print(f"# Python {sys.version.split()[0]}; sys.getsizeof(Event) = {sys.getsizeof(sample)} B "
          f"(+ 24 B float t, + 8 B list slot); EventLog().max_events = {bound:,}", flush=True)

    rows = []
    for mix, text in (("lesson", "PUBLISH+DELIVER+ACK per task"), ("consume", "DELIVER+ACK per message")):
        as_recorded, once_read, recorded = measure(args.n, mix)
        rows.append((mix, text, recorded, max(as_recorded, once_read), as_recorded, once_read))
    print(f"{'mix':<9} {'events':>8} {'B/event as recorded':>19} {'B/event once read':>17} "
          f"{'MB at max_events':>16}  what")
    for mix, text, recorded, worst_mix, as_recorded, once_read in rows:
        print(f"{mix:<9} {recorded:>8} {as_recorded:>19.0f} {once_read:>17.0f} "
              f"{worst_mix * bound / 1e6:>16.0f}  {text}")
    print("('as recorded': the hot path keeps an 8-tuple per event; 'once read': log.events has made them Events; "
          "MB at max_events uses the larger)")
    per_delivery = measure_deliveries(args.n // 2)
    print(f"Not in the log: each worker's delivery table takes {per_delivery:.0f} bytes per delivery "
          f"(the tag int included, which the log's events share) until its channel closes; it has no bound.")
    worst = max(r[3] for r in rows)
    snapshots = 2 * 8 * bound / 1e6
    print(f"A finished run at the bound also holds two snapshot lists (log.events, RunResult.events): "
          f"+{snapshots:.0f} MB; past the bound events are only counted (EventLog.dropped).")
    print(f"SUMMARY memory: {worst:.0f} bytes/event (worst mix, {args.n} events); max_events={bound:,} -> "
          f"about {worst * bound / 1e6:.0f} MB per run's log (+{snapshots:.0f} MB for snapshots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
