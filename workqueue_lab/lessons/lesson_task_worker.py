"""The lesson's ``TaskWorker``, as the lesson writes it, so notebook 06 can run it and check its claims.

Run as ``python -m workqueue_lab.lessons.lesson_task_worker``.  Four things differ from the lesson, each
marked ``# lab:``: the broker's address (the course's, not always localhost), the queue's name (with the
learner's prefix), the log (a clock to the millisecond, as ``task_worker.py`` prints, and without pika's own
chatter), and the work itself, which the lesson leaves empty: a (scaled) second per dot, and a ``"fail"``
field raises.
Everything else, the signal handler and ``stop()`` included, is the lesson's.
"""

import json
import logging
import signal
import sys
import time

import pika

from workqueue_lab import connect, settings  # lab: the course's broker, prefix and time scale

logging.basicConfig(level=logging.INFO, format="%(asctime)s.%(msecs)03d  %(message)s",  # lab: a clock
                    datefmt="%H:%M:%S", stream=sys.stdout)
logger = logging.getLogger(__name__)
logging.getLogger("pika").setLevel(logging.WARNING)  # lab: pika's own INFO lines would drown the lesson's


class TaskWorker:
    """Worker that processes tasks from a queue."""

    def __init__(self, queue_name: str, prefetch: int = 1):
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.connection = None
        self.channel = None
        self._should_stop = False

    def connect(self):
        """Establish connection to RabbitMQ."""
        params = pika.URLParameters(connect().url)  # lab: the course's broker (the lesson: host='localhost')
        params.heartbeat = 600
        params.blocked_connection_timeout = 300
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        self.channel.queue_declare(queue=self.queue_name, durable=True)
        self.channel.basic_qos(prefetch_count=self.prefetch)

    def process_task(self, body: bytes) -> None:
        """Process a single task. Override in subclass."""
        data = json.loads(body)
        logger.info(f"Processing: {data}")
        # Actual processing here

    def callback(self, ch, method, properties, body):
        """Handle incoming messages."""
        try:
            self.process_task(body)
            ch.basic_ack(delivery_tag=method.delivery_tag)
            logger.info("Task completed")
        except Exception as e:
            logger.error(f"Task failed: {e}")
            ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)

    def start(self):
        """Start consuming messages."""
        self.connect()
        self.channel.basic_consume(
            queue=self.queue_name,
            on_message_callback=self.callback,
            auto_ack=False
        )

        logger.info(f"Worker started, consuming from '{self.queue_name}'")

        while not self._should_stop:
            self.connection.process_data_events(time_limit=1)

    def stop(self):
        """Stop the worker gracefully."""
        self._should_stop = True
        if self.connection:
            self.connection.close()


class SleepingTaskWorker(TaskWorker):  # lab: the work the lesson leaves to a subclass
    def process_task(self, body: bytes) -> None:
        data = json.loads(body)
        logger.info(f"Processing: {data}")
        time.sleep(data["task"].count(".") * settings.time_scale())
        if data.get("fail"):
            raise RuntimeError(data["fail"])


def main():
    worker = SleepingTaskWorker(settings.name('task_queue'))  # lab: the subclass; the learner's prefix

    def signal_handler(sig, frame):
        logger.info("Shutting down...")
        worker.stop()
        sys.exit(0)

    signal.signal(signal.SIGINT, signal_handler)
    signal.signal(signal.SIGTERM, signal_handler)

    worker.start()


if __name__ == '__main__':
    main()
