"""Notebooks are stored clean: valid, without outputs, runnable solutions, and tidy endings.

Outputs and execution counts stay out of the repository so that diffs show only what a
person changed (nbval re-runs every notebook in CI anyway).  These checks need no broker
and no kernel: they read the .ipynb files only.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
RUN_SOLUTION = re.compile(r"^\s*%run\s+(?:-\w+\s+)*(\S+\.py)\b", re.MULTILINE)
LAST_CELL_CHECK = re.compile(r"assert\s+lab\.live_threads\(\)\s*==\s*0")


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _read(path: Path) -> nbformat.NotebookNode:
    with path.open(encoding="utf-8") as f:
        return nbformat.read(f, as_version=nbformat.NO_CONVERT)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_valid_nbformat(path: Path) -> None:
    nb = _read(path)
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)  # raises ValidationError with the offending field


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_stored_without_outputs(path: Path) -> None:
    cells = _read(path).cells
    dirty = [
        f"cell {i} ({'outputs' if cell.get('outputs') else 'execution_count'})"
        for i, cell in enumerate(cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert cells, f"{path.name} has no cells"
    assert not dirty, (f"{path.name} was saved with outputs in {', '.join(dirty)}; clear them "
                       "(Edit > Clear Outputs of All Cells, or `jupyter nbconvert --clear-output --inplace`)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_kernel_is_python3(path: Path) -> None:
    kernelspec = _read(path).metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", (
        f"{path.name}: kernelspec name is {kernelspec.get('name')!r}; use the 'python3' kernel")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_run_targets_exist(path: Path) -> None:
    missing = []
    for cell in _code_cells(_read(path)):
        for target in RUN_SOLUTION.findall(cell.source):
            if not (path.parent / target).is_file():
                missing.append(target)
    assert not missing, f"{path.name} runs files that do not exist: {', '.join(missing)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_ends_by_checking_no_threads_left(path: Path) -> None:
    cells = _code_cells(_read(path))
    assert cells, f"{path.name} has no code cells"
    last = cells[-1].source
    assert LAST_CELL_CHECK.search(last), (
        f"{path.name}: the last code cell should stop everything and check it, e.g.\n"
        "    lab.reset()\n    assert lab.live_threads() == 0\n"
        f"but it is:\n{last}")


def test_run_pattern_matches_solution_cells() -> None:
    """The regex the checks above rely on recognises the notebooks' solution cells."""
    assert RUN_SOLUTION.findall("%run -i solutions/01_three_workers.py") == ["solutions/01_three_workers.py"]
    assert RUN_SOLUTION.findall("x = 1\n%run solutions/a.py\n") == ["solutions/a.py"]
    assert not RUN_SOLUTION.findall("# %run is explained below")
