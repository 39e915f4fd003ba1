# Solution to the exercise of 05_when_tasks_fail.ipynb: retry three times, then park.
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's names): the
# learner's own names stay as they were.
import pika

import workqueue_lab as lab
from workqueue_lab.lessons import failures
from workqueue_lab.lessons.checks import nb05

N = lab.settings.name
T = lab.topology


def my_callback(ch, method, properties, body):
    headers = properties.headers or {}
    retries = headers.get("x-retry-count", 0)
    try:
        lab.work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)
    except lab.TaskFailed:
        if retries < 3:  # retries left: wait TTL_MS in tasks_retry, then come back to tasks
            exchange, key = N("retry_exchange"), N("tasks")
        else:  # the first attempt and 3 retries failed: a person has to look at it
            exchange, key = N(T.PARKING_EXCHANGE), N(T.PARKING_KEY)
        # the copy first, then the ack: a crash in between duplicates the task, it never loses it
        ch.basic_publish(exchange=exchange, routing_key=key, body=body,
                         properties=pika.BasicProperties(headers={"x-retry-count": retries + 1}, delivery_mode=2))
        ch.basic_ack(delivery_tag=method.delivery_tag)


lab.reset()
result = failures.run_until(my_callback, exercise_tasks, topology=retry_and_park, workers=[flaky])  # noqa: F821
print({task: (story.attempts, story.ended) for task, story in nb05.task_stories(result.events).items()})
check = nb05.check_retry_then_park(result)
print(check)
assert check, check
