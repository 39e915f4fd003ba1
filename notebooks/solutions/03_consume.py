# Solution to exercise 1 of notebook 03: fair dispatch is one call, made before consuming.
from workqueue_lab.lessons import trials


def consume(channel, queue, on_message):
    channel.basic_qos(prefetch_count=1)  # at most one unacknowledged message per worker
    channel.basic_consume(queue=queue, on_message_callback=on_message)


check = trials.check_consume(consume)
print(check)
assert check, check
