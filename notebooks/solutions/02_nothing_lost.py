# Solution to the exercise of 02_acknowledgements.ipynb: survive the crash.
# Run from the notebook with `%run -i solutions/02_nothing_lost.py` (it uses the notebook's names).
import workqueue_lab as lab
from workqueue_lab.lessons.checks import nb02

# The fix: manual acknowledgement.  The callback acks only after lab.work() has finished, so the
# messages worker 1 holds when it dies are unacked, and RabbitMQ requeues them for worker 2.
result = lab.run(callback, tasks=six_tasks, workers=[crashing, lab.WorkerSpec()],  # noqa: F821
                 prefetch=0, ack="manual")

print(result.tasks_by_worker())
check = nb02.check_nothing_lost(result)
print(check)
assert check, check
