"""The "already waiting" note: silent when the waiting messages are the run's own (the throughput sweep
fills the queue itself), said once, wrapped at words, when a stranger's messages are in the queue."""

from __future__ import annotations

import pika

import workqueue_lab as lab
from workqueue_lab import settings
from workqueue_lab.engine.run import NOTE_WIDTH
from workqueue_lab.engine.topology import TASK_QUEUE
from workqueue_lab.experiments import sweep


def ack(ch, method, properties, body):
    ch.basic_ack(delivery_tag=method.delivery_tag)


def test_a_sweep_that_fills_the_queue_itself_says_nothing_about_waiting_messages(clean, fast, capsys):
    result = sweep.throughput(clean, prefetch_values=[1, 0], n=60, workers=2, repeats=2)
    out = capsys.readouterr().out
    assert "already waiting" not in out, out
    assert all(sum(p.per_worker.values()) == 60 for p in result.points)


def test_a_strangers_messages_are_noted_once_and_wrapped_at_words(clean, fast, capsys):
    queue = settings.name(TASK_QUEUE)
    conn = clean.connect()
    try:
        ch = conn.channel()
        ch.queue_declare(queue=queue, durable=True)
        for i in range(3):
            ch.basic_publish(exchange="", routing_key=queue, body=f"stranger {i}",
                             properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Transient))
    finally:
        conn.close()
    result = lab.run(ack, tasks=["Task 1.", "Task 2."], workers=2, progress=False, broker=clean)
    out = capsys.readouterr().out
    assert out.count("Note:") == 1, out
    note = out[out.index("Note:"):].split("\n\n")[0].rstrip("\n")
    lines = note.split("\n")
    assert len(lines) > 1 and all(len(line) <= NOTE_WIDTH for line in lines), lines
    assert " ".join(lines) == (f"Note: 3 message(s) were already waiting in '{queue}' (an earlier run or another "
                               "program); this run's workers take them too. lab.reset() empties the queue.")
    assert len(result.completed) == 2
