# Solution to the exercise of 02_acknowledgements.ipynb: survive the crash.
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's names): the
# learner's own names stay as they were.
import workqueue_lab as lab
from workqueue_lab.lessons import trials
from workqueue_lab.lessons.checks import nb02


def my_callback(ch, method, properties, body):
    message = body.decode()
    print(f" [x] Received {message!r}")
    lab.work(message)
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)  # after the work, for this very delivery


# The fix is both halves: manual acknowledgement (ack="manual") and the basic_ack above, sent only after
# lab.work() has finished.  The messages worker 1 holds when it dies are then unacked, and RabbitMQ
# requeues them for worker 2.
result = trials.run_ack_exercise(my_callback, tasks=six_tasks, workers=[crashing, lab.WorkerSpec()],  # noqa: F821
                                  prefetch=0, ack="manual")

print(result.tasks_by_worker())
check = nb02.check_nothing_lost(result)
print(check)
assert check, check
