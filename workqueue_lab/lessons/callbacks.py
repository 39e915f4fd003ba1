"""Ready-made callbacks for the common cases, written as a learner would write them:
plain pika calls on ``ch``, with ``work()`` standing in for ``time.sleep(dots)``."""

from __future__ import annotations

import json

from ..engine.workers import work


def lesson_callback(ch, method, properties, body):
    """The lesson's worker: print, work one second per dot, print, acknowledge."""
    message = body.decode()
    print(f" [x] Received {message!r}")
    work(message)
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)


def auto_ack_callback(ch, method, properties, body):
    """For ``ack='auto'`` runs: the broker forgot the message on delivery, so never ack."""
    message = body.decode()
    print(f" [x] Received {message!r}")
    work(message)
    print(" [x] Done")


def forgetful_callback(ch, method, properties, body):
    """The classic bug: the work is done, the ack is forgotten."""
    message = body.decode()
    work(message)
    print(f" [x] Done with {message!r} (but no ack!)")


def requeue_on_error(ch, method, properties, body):
    """Acknowledge after success; on an exception, nack with requeue for another try."""
    try:
        work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)
    except Exception as exc:
        print(f" [!] {exc}; requeueing")
        ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)


def reject_on_error(ch, method, properties, body):
    """Acknowledge after success; on an exception, nack without requeue (dead-letter it)."""
    try:
        work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)
    except Exception as exc:
        print(f" [!] {exc}; rejecting")
        ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)


class TaskWorker:
    """A production-style worker: poison messages are dead-lettered, not retried forever.

    Use ``TaskWorker().callback`` with ``lab.run``; a body that is not UTF-8 or
    not JSON can never succeed, so it is rejected without requeue at once.
    """

    def process_task(self, task: dict) -> None:
        """Do one task; override in a subclass.  Here: one second of work per dot in 'work'."""
        work(seconds=float(str(task.get("work", "")).count(".")))

    def callback(self, ch, method, properties, body):
        try:
            task = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            print(f" [!] poison message ({type(exc).__name__}); dead-lettering it")
            ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)
            return
        try:
            self.process_task(task)
        except Exception as exc:
            print(f" [!] task failed: {exc}; dead-lettering it")
            ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)
            return
        ch.basic_ack(delivery_tag=method.delivery_tag)
        print(f" [x] Done {task!r}")
