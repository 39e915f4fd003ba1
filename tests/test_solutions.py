"""Every worked solution is run by a notebook, folded so that Run All does not show the answer.

CI runs the notebooks (nbval), so a solution that some notebook's cell runs with ``%run`` is run in CI;
one that no notebook runs would rot unseen.  A solution cell starts with
``%%capture solution``, so Run All shows nothing of the answer (``solution.show()`` does, on demand), and
carries JupyterLab's ``jupyter.source_hidden`` metadata, so it shows as a folded bar.  (Not
``outputs_hidden``: JupyterLab unfolds outputs when it runs a cell and drops the key on save.)
Reads the files only: no kernel, no broker.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
RUN_SOLUTION = re.compile(r"^\s*%run\s+(?:-\w+\s+)*solutions/(\S+\.py)\b", re.MULTILINE)


def _solution_cells() -> list[tuple[str, nbformat.NotebookNode, list[str]]]:
    found = []
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and (files := RUN_SOLUTION.findall(cell.source)):
                found.append((path.name, cell, files))
    return found


def test_every_solution_file_is_run_by_some_notebook():
    run = {name for _, _, files in _solution_cells() for name in files}
    solutions = {p.name for p in (NOTEBOOKS_DIR / "solutions").glob("*.py")}
    assert solutions, "no solution files found"
    assert solutions <= run, f"solutions no notebook runs (so CI never does): {sorted(solutions - run)}"


def test_solution_cells_are_folded_and_keep_their_answer_until_asked():
    cells = _solution_cells()
    assert cells
    shown = [f"{name} cell {cell.get('id')}" for name, cell, _ in cells
             if not cell.source.startswith("%%capture solution\n")]
    assert not shown, f"solution cells that print their answer under the exercise on Run All: {shown}"
    unfolded = [f"{name} cell {cell.get('id')}" for name, cell, _ in cells
                if cell.metadata.get("jupyter", {}).get("source_hidden") is not True]
    assert not unfolded, f"solution cells not folded (jupyter.source_hidden): {unfolded}"



def test_the_instructors_guide_lists_every_solution():
    """docs/instructors.md's table of exercise answers names each solution file (a new exercise needs a row)."""
    guide = (NOTEBOOKS_DIR.parent / "docs" / "instructors.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\| `(\d\d_\w+\.py)` \|", guide))
    on_disk = {p.name for p in (NOTEBOOKS_DIR / "solutions").glob("*.py")}
    assert listed == on_disk
