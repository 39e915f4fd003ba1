# Solution to the exercise of 04_durability.ipynb: a publisher whose tasks survive a restart, and who knows it.
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's work_broker): the
# learner's own names stay as they were.
import pika

from workqueue_lab.lessons.checks import nb04


def send(channel, queue, tasks):
    channel.queue_declare(queue=queue, durable=True)  # the queue itself survives a restart
    channel.confirm_delivery()  # from here on, basic_publish returns only once the broker confirmed
    for task in tasks:
        channel.basic_publish(exchange="", routing_key=queue, body=task,
                              properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                              mandatory=True)  # a message no queue takes raises instead of vanishing


check = nb04.check_publisher(send, broker=work_broker)  # noqa: F821
print(check)
assert check, check
