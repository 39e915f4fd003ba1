#!/usr/bin/env python
"""Take tasks from the work queue one at a time, like the lesson's worker.py.

    python worker.py                  # Ctrl-C to stop

Each dot in a message is one second of work (WORKQUEUE_LAB_TIME_SCALE
shortens the second).  The ack comes only after the work is done, and
prefetch_count=1 means a busy worker is not handed another task.
"""

import sys
import time

import pika
from pika.exceptions import ChannelClosedByBroker

from workqueue_lab import connect, settings
from workqueue_lab.errors import queue_refused

SECONDS_PER_DOT = settings.time_scale()


def callback(ch, method, properties, body):
    message = body.decode()
    print(f" [x] Received {message!r}", flush=True)
    time.sleep(message.count(".") * SECONDS_PER_DOT)
    print(" [x] Done", flush=True)
    ch.basic_ack(delivery_tag=method.delivery_tag)


def main() -> None:
    url = connect().url
    queue = settings.name("task_queue")

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    try:
        channel.queue_declare(queue=queue, durable=True)
    except ChannelClosedByBroker as refused:  # e.g. task_queue already exists as a quorum queue
        connection.close()
        sys.exit(queue_refused(queue, refused))  # prints the sentence, exit status 1
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=False)

    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        print(" [*] Stopping; unacknowledged tasks go back to the queue.", flush=True)
    finally:
        if connection.is_open:
            connection.close()  # closing returns any unacked message to the queue
    sys.exit(0)


if __name__ == "__main__":
    main()
