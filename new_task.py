#!/usr/bin/env python
"""Send one task to the work queue, like the lesson's new_task.py.

    python new_task.py "Task 1."      # each dot is one second of work

Plain pika; the only lab call finds the broker the course uses (a local
RabbitMQ, a private node on Binder, or WORKQUEUE_LAB_URL) and the learner's
queue prefix, so this program and the notebooks share the same queue.
"""

import sys

import pika

from workqueue_lab import connect, settings


def main() -> None:
    url = connect().url
    queue = settings.name("task_queue")

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True)  # same declaration as the worker's

    message = " ".join(sys.argv[1:]) or "Hello World!"
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
