"""Worked solutions, run in a namespace of their own: a solution never rebinds a learner's names.

A notebook's folded solution cell reads
``solution_three_workers = run_solution("01_three_workers.py", globals())``.  The file runs with a
*copy* of the notebook's names (so it can use the notebook's ``callback`` or ``broker``), and what it
binds stays in that copy: after *Run All*, ``my_result``, ``check`` or ``MY_STOP`` are still the
learner's.  What the solution printed and drew is kept, not shown (``.show()`` replays it), and the
names it set are attributes of the returned ``Solution`` (``solution_three_workers.check``).  A
solution that writes a file writes its own, never the learner's.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path

from IPython.utils.capture import capture_output

from ..errors import LabError

__all__ = ["Solution", "run_solution", "solutions_dir"]


class Solution(types.SimpleNamespace):
    """The names a solution bound, as attributes, and what it printed (``show()``)."""

    def show(self) -> None:
        """Show what the solution printed and displayed when it ran."""
        self.__dict__["_output"].show()

    def __repr__(self) -> str:
        names = ", ".join(sorted(k for k in self.__dict__ if not k.startswith("_")))
        return f"<solution {self.__dict__['_name']}: .show() replays its output; its names: {names}>"


def solutions_dir() -> Path:
    """``solutions/`` beside the running notebook, else the repository's ``notebooks/solutions``."""
    here = Path.cwd() / "solutions"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "notebooks" / "solutions"


def run_solution(name: str, namespace: Mapping[str, object]) -> Solution:
    """Run solution file ``name`` with a copy of ``namespace`` (pass ``globals()``), output kept for later.

    Returns a ``Solution``: every name the file bound or rebound, as an attribute, and ``show()``.
    The notebook's own names are left as they were.  A solution that fails raises, after showing
    what it printed.
    """
    path = solutions_dir() / name
    if not path.is_file():
        raise LabError(f"No solution file {path}: run the notebook from the repository's notebooks/ folder.")
    scope = dict(namespace)
    before = dict(scope)
    scope["__file__"] = str(path)
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    failed: BaseException | None = None
    with capture_output() as output:
        try:
            exec(code, scope)  # the course's own file, in a scope of its own
        except BaseException as exc:  # shown below with what it printed, then raised as it was
            failed = exc
    if failed is not None:
        output.show()  # in the failing cell: what the solution printed before it failed
        raise failed
    bound = {k: v for k, v in scope.items()
             if not k.startswith("__") and (k not in before or before[k] is not v)}
    return Solution(_name=name, _output=output, **bound)
