# Solution to exercise 1 of 01_work_queue_pattern.ipynb: a third worker.
# Run from the notebook with `%run -i solutions/01_three_workers.py` (it uses the notebook's `callback`).
import workqueue_lab as lab
from workqueue_lab.lessons.checks import nb01

six_tasks = lab.numbered_tasks([1, 2, 3, 3, 3, 3])
result = lab.run(callback, tasks=six_tasks, workers=3, prefetch=1)  # noqa: F821 (callback: the notebook's)

# Prediction: tasks 1, 2, 3 go out at once, one per worker.  Worker 1 is free first (after 1 s) and takes
# task 4, worker 2 next (after 2 s) takes task 5, worker 3 (after 3 s) takes task 6.
print(result.tasks_by_worker())
check = nb01.check_round_robin(result, workers=3)
print(check)
assert check, check
