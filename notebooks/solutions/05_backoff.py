# Solution to the exercise of 05_when_tasks_fail.ipynb: back off (1, 2, 4 x the delay), then park; confirmed copies.
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's names): the
# learner's own names stay as they were.
import pika

import workqueue_lab as lab
from workqueue_lab.lessons import failures
from workqueue_lab.lessons.checks import nb05

N = lab.settings.name
T = lab.topology
WAIT_KEYS = [N("wait_1"), N("wait_2"), N("wait_4")]  # the n-th retry waits in tasks_wait_1, _2, _4: twice as long


def my_callback(ch, method, properties, body):
    retries = (properties.headers or {}).get("x-retry-count", 0)
    try:
        lab.work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)
    except lab.TaskFailed:
        if retries < len(WAIT_KEYS):  # retries left: wait longer than last time, then come back to tasks
            exchange, key = N(failures.BACKOFF_EXCHANGE), WAIT_KEYS[retries]
        else:  # the first attempt and 3 retries failed: a person has to look at it
            exchange, key = N(T.PARKING_EXCHANGE), N(T.PARKING_KEY)
        try:  # the channel confirms (confirms=True): this returns once a queue has the copy
            ch.basic_publish(exchange=exchange, routing_key=key, body=body, mandatory=True,
                             properties=pika.BasicProperties(headers={"x-retry-count": retries + 1}, delivery_mode=2))
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)  # no copy anywhere: keep the original
            return
        ch.basic_ack(delivery_tag=method.delivery_tag)  # the copy is safe: let the original go


lab.reset()
result = failures.run_until(my_callback, exercise_tasks, topology=backoff, workers=[flaky],  # noqa: F821
                            confirms=True)
print({task: (story.attempts, story.ended) for task, story in nb05.task_stories(result.events).items()})
check = nb05.check_backoff(result)
print(check)
assert check, check
