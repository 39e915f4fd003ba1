# Solution to exercise 2 of notebook 03: who does which task?
#
# prefetch=0: the broker deals all seven messages out at once, in turn:
#   worker 1 gets 1, 3, 5, 7 and worker 2 gets 2, 4, 6 -- whatever they cost.
#   Worker 1 works 8 + 1 + 1 + 1 = 11 s while worker 2 is idle after 3 s.
# prefetch=1: worker 1 holds task 1 (8 s); meanwhile worker 2 acks a 1-second task
#   every second and so takes tasks 2..7, the last one at 5 s, before worker 1 is free.
from workqueue_lab.lessons import trials

check = trials.check_prediction(prefetch_0={1: [1, 3, 5, 7], 2: [2, 4, 6]},
                              prefetch_1={1: [1], 2: [2, 3, 4, 5, 6, 7]})
print(check)
assert check, check
