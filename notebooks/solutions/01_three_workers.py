# Solution to exercise 1 of 01_work_queue_pattern.ipynb: a third worker.
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's `callback`): the
# learner's own names stay as they were.
import workqueue_lab as lab
from workqueue_lab.lessons.checks import nb01

# Prediction, made before the run.  Tasks 1, 2 and 3 (5, 1 and 2 s) go out at once, one per worker.
# Worker 2 is free first (after 1 s) and takes task 4 (3 s, until 4 s); worker 3 is free next (after 2 s)
# and takes task 5 (until 5 s); worker 2 is free again at 4 s, before worker 1 (5 s), and takes task 6.
my_prediction = {1: [1], 2: [2, 4, 6], 3: [3, 5]}
locked = nb01.lock_prediction(my_prediction)
my_result = lab.run(callback, tasks=nb01.THIRD_WORKER_TASKS, workers=3, prefetch=1)  # noqa: F821 (the notebook's)

print(my_result.tasks_by_worker())
check = nb01.check_third_worker(my_result, predicted=locked)
print(check)
assert check, check
