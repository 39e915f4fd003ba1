"""Every worked solution is run by a notebook, folded, in a namespace of its own.

CI runs the notebooks (nbval), so a solution that some notebook's cell runs is run in CI; one that no
notebook runs would rot unseen.  A solution cell reads ``solution_<name> = run_solution("NN_<name>.py",
globals())``: the file runs in a *copy* of the notebook's names and its output is kept, so Run All shows
nothing of the answer (``solution_<name>.show()`` does, on demand) and never rebinds a learner's name.
The cell carries JupyterLab's ``jupyter.source_hidden`` metadata, so it shows as a folded bar.  (Not
``outputs_hidden``: JupyterLab unfolds outputs when it runs a cell and drops the key on save.)
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from workqueue_lab.lessons.solutions import run_solution

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
SOLUTION_CELL = re.compile(r'^solution_(\w+) = run_solution\("(\d\d)_(\w+)\.py", globals\(\)\)', re.MULTILINE)


def _solution_cells() -> list[tuple[str, nbformat.NotebookNode, re.Match]]:
    found = []
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and ("solutions/" in cell.source or "run_solution(" in cell.source):
                found.append((path.name, cell, SOLUTION_CELL.search(cell.source)))
    return found


def test_every_solution_file_is_run_by_some_notebook_and_named_after_it():
    cells = _solution_cells()
    odd = [f"{name} {cell.get('id')}" for name, cell, match in cells
           if match is None or match.group(1) != match.group(3) or not name.startswith(match.group(2))]
    assert not odd, f"solution cells not of the form solution_<name> = run_solution('NN_<name>.py', globals()): {odd}"
    run = {f"{m.group(2)}_{m.group(3)}.py" for _, _, m in cells}
    solutions = {p.name for p in (NOTEBOOKS_DIR / "solutions").glob("*.py")}
    assert solutions, "no solution files found"
    assert solutions == run, f"solutions no notebook runs (so CI never does): {sorted(solutions - run)}"


def test_solution_cells_are_folded():
    unfolded = [f"{name} cell {cell.get('id')}" for name, cell, _ in _solution_cells()
                if cell.metadata.get("jupyter", {}).get("source_hidden") is not True]
    assert not unfolded, f"solution cells not folded (jupyter.source_hidden): {unfolded}"


def test_a_solution_keeps_its_output_and_its_names_to_itself(tmp_path, monkeypatch, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "99_demo.py").write_text(
        "my_result = 'the answer'\ncheck = helper(2)\nprint('the solution printed this')\n")
    monkeypatch.chdir(tmp_path)
    learner = {"my_result": None, "check": "the learner's check", "helper": lambda n: n * 21}
    solution = run_solution("99_demo.py", learner)
    assert learner == {"my_result": None, "check": "the learner's check", "helper": learner["helper"]}
    assert (solution.my_result, solution.check) == ("the answer", 42)
    assert capsys.readouterr().out == ""  # nothing shown under the exercise on Run All
    solution.show()
    assert capsys.readouterr().out == "the solution printed this\n"


def test_a_failing_solution_shows_what_it_printed_and_raises(tmp_path, monkeypatch, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "99_broken.py").write_text("print('before the failure')\nassert False, 'broken'\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="broken"):
        run_solution("99_broken.py", {})
    assert "before the failure" in capsys.readouterr().out


def test_a_real_solution_leaves_the_learners_names_as_they_were(clean):
    """Notebook 01's solution runs lab.run and rebinds my_prediction, my_result and check in its own copy."""
    import workqueue_lab as lab

    learner = {"callback": lab.lesson_callback, "my_prediction": {1: [1, 2, 3]}, "my_result": None,
               "check": "mine", "locked": "mine"}
    solution = run_solution("01_three_workers.py", dict(learner, __name__="__main__"))
    assert solution.check, solution.check
    assert {k: learner[k] for k in ("my_prediction", "my_result", "check", "locked")} == {
        "my_prediction": {1: [1, 2, 3]}, "my_result": None, "check": "mine", "locked": "mine"}


def test_solutions_that_write_a_file_write_their_own():
    for name in ("06_graceful_stop.py", "07_import_csv.py"):
        text = (NOTEBOOKS_DIR / "solutions" / name).read_text(encoding="utf-8")
        assert not re.search(r"\b(MY_STOP|TASK_FILE)\.write_text", text), f"{name} overwrites the learner's file"


def test_the_instructors_guide_lists_every_solution():
    """docs/instructors.md's table of exercise answers names each solution file (a new exercise needs a row)."""
    guide = (NOTEBOOKS_DIR.parent / "docs" / "instructors.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\| `(\d\d_\w+\.py)` \|", guide))
    on_disk = {p.name for p in (NOTEBOOKS_DIR / "solutions").glob("*.py")}
    assert listed == on_disk
