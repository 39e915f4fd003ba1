#!/usr/bin/env python
"""Send one task to the work queue, like the lesson's new_task.py.

    python new_task.py "Task 1."      # each dot is one second of work
    python new_task.py --json "Task 7..."   # {"id": 7, "task": "Task 7..."} for task_worker.py

Plain pika; the only lab call finds the broker the course uses (a local
RabbitMQ, a private node on Binder, or WORKQUEUE_LAB_URL) and the learner's
queue prefix, so this program and the notebooks share the same queue.
With --json the task goes to task_worker.py's own queue (see its docstring);
its id is the first number in the text, or --id.
"""

import json
import re
import sys

import pika
from pika.exceptions import ChannelClosedByBroker

from workqueue_lab import connect, settings
from workqueue_lab.errors import queue_refused


def json_task(words: list[str]) -> tuple[str, str]:
    """(--json args) -> (queue declared like task_worker.py's, JSON body)."""
    task_id = None
    if len(words) >= 2 and words[0] == "--id":
        task_id, words = int(words[1]), words[2:]
    text = " ".join(words) or "Task 1."
    if task_id is None:
        number = re.search(r"\d+", text)
        task_id = int(number.group()) if number else 1
    return text, json.dumps({"id": task_id, "task": text})


def main() -> None:
    url = connect().url
    queue = settings.name("task_queue")
    args = sys.argv[1:]

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    if args[:1] == ["--json"]:
        from task_worker import declare_queues  # the one place that queue's arguments are written

        queue = declare_queues(channel)
        _, message = json_task(args[1:])
    else:
        try:
            channel.queue_declare(queue=queue, durable=True)  # same declaration as the worker's
        except ChannelClosedByBroker as refused:  # e.g. task_queue already exists as a quorum queue
            connection.close()
            sys.exit(queue_refused(queue, refused))  # prints the sentence, exit status 1
        message = " ".join(args) or "Hello World!"

    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=message,
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
    print(f" [x] Sent {message!r}")
    connection.close()


if __name__ == "__main__":
    main()
