# Solution to the exercise of 08_cluster.ipynb: what does a classic queue give back when its node dies?
# The notebook runs it with run_solution(...), in a copy of its names (it uses the notebook's `outage`): the
# learner's own names stay as they were.
#
# While c1 is down: nothing. A classic queue lives on one node, the one whose connection declared it; the
# other nodes know it exists but hold none of its messages, so they answer 404 NOT_FOUND ("home node is down").
# After c1 is back: the persistent tasks 1, 3 and 5. RabbitMQ confirmed them once they were on c1's disk, so
# c1 reads them back when it starts; the transient tasks 2, 4 and 6 were in its memory only.
from workqueue_lab.lessons.checks import nb08

# The answer, judged against what the broker did (nb08.prediction: the check without the lock, since this runs
# after the kill).
check = nb08.prediction(set(), {1, 3, 5}, outage)  # noqa: F821
print(check)
assert check, check
