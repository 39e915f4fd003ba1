"""Prove that `make test` never touches a learner's own queues.

    python tests/foreign_queue.py plant   # before the tests: a durable `task_queue` with 3 persistent messages
    python tests/foreign_queue.py check   # after them: it must still hold exactly what it held

Runs without any prefix, on the broker the course finds, like a learner's own `worker.py`/`new_task.py`.
A `task_queue` that already exists (a learner's) is not changed: its count is noted and compared.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

QUEUE = "task_queue"  # the lesson's queue, unprefixed: what a learner's own programs use
STATE = Path(os.environ.get("TMPDIR", "/tmp")) / f"workqueue-lab-foreign-queue-{os.getuid()}.json"
PLANTED = 3


def _channel():
    import pika

    os.environ.pop("WORKQUEUE_LAB_PREFIX", None)
    from workqueue_lab import connect

    conn = pika.BlockingConnection(pika.URLParameters(connect().url))
    return conn, conn.channel()


def _count(ch) -> int | None:
    import pika.exceptions as pe

    try:
        return ch.queue_declare(queue=QUEUE, passive=True).method.message_count
    except pe.ChannelClosedByBroker:
        return None


def plant() -> int:
    import pika

    conn, ch = _channel()
    try:
        before = _count(ch)
        if before is None:
            ch = conn.channel()
            ch.queue_declare(queue=QUEUE, durable=True)  # exactly as the lesson declares it
            ch.confirm_delivery()
            for n in range(1, PLANTED + 1):
                ch.basic_publish("", QUEUE, f"learner's own task {n}.".encode(),
                                 pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
            state = {"planted": True, "count": PLANTED}
        else:
            state = {"planted": False, "count": before}
    finally:
        conn.close()
    STATE.write_text(json.dumps(state))
    print(f"== foreign queue: '{QUEUE}' holds {state['count']} message(s) before the tests"
          f"{' (planted)' if state['planted'] else ' (a learner’s, left as it is)'}")
    return 0


def check() -> int:
    state = json.loads(STATE.read_text())
    conn, ch = _channel()
    try:
        after = _count(ch)
        if state["planted"] and after is not None:
            ch.queue_delete(queue=QUEUE)
    finally:
        conn.close()
        STATE.unlink(missing_ok=True)
    print(f"== foreign queue: '{QUEUE}' holds {after} message(s) after the tests (before: {state['count']})")
    if after != state["count"]:
        print(f"FAILED: the tests changed a learner's '{QUEUE}' ({state['count']} -> {after}); every test run must "
              "use its own WORKQUEUE_LAB_PREFIX.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit({"plant": plant, "check": check}[sys.argv[1]]())
