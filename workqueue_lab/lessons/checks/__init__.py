"""Self-checks for the notebooks' exercises: one ``Check`` type, one module per notebook.

    from workqueue_lab.lessons.checks import nb01
    check = nb01.check_round_robin(result, workers=3)
    check            # shows ✓ or ✗, what was expected, what happened and why
    assert check     # truthy exactly when passed

Each check is a pure function of what a run recorded (``record.events``); the few that must
run the learner's code first (notebook 03's) do so through ``lessons.trials``.
"""

from .base import FAIL, PASS, Check, verdict

__all__ = ["Check", "verdict", "PASS", "FAIL"]
