# Solution to the exercise of 04_durability.ipynb: a publisher that hears the broker say no, and publishes again.
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's work_broker): the
# learner's own names stay as they were.
import time

import pika

from workqueue_lab.lessons.full_queue import check_full_queue


def send(channel, queue, tasks):
    channel.confirm_delivery()  # from here on a refusal is a NackError, a return means the broker has it
    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    for task in tasks:
        while True:
            try:
                channel.basic_publish(exchange="", routing_key=queue, body=task, properties=persistent,
                                      mandatory=True)
                break  # confirmed: on to the next task
            except pika.exceptions.NackError:  # the queue is full (reject-publish): give it time, try again
                time.sleep(0.05)


check = check_full_queue(send, broker=work_broker)  # noqa: F821
print(check)
assert check, check
