"""A notebook cell that prints ``NOT CHECKED: …`` fails the nbval run (notebooks/conftest.py).

The proof runs pytest --nbval-lax on a throw-away notebook with the course's own conftest, in a
subprocess, once with a cell that prints the line (the run must fail and name it) and once without
(the same run passes, so the failure comes from the line and not from the set-up).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from workqueue_lab.lessons import notes

ROOT = Path(__file__).resolve().parent.parent


def _run_notebook(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "tiny.ipynb"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_cell_that_prints_not_checked_fails_the_notebook_run(tmp_path):
    failing = _run_notebook(tmp_path, "from workqueue_lab.lessons.notes import not_checked\n"
                                      "not_checked('the demo needs a node the lab controls')")
    assert failing.returncode != 0, failing.stdout
    assert "NOT CHECKED: the demo needs a node the lab controls" in failing.stdout
    assert "1 failed" in failing.stdout

    passing = _run_notebook(tmp_path, "print('checked: 1 == 1')\nassert 1 == 1")
    assert passing.returncode == 0, passing.stdout + passing.stderr


def test_not_checked_lines_finds_the_line_in_streams_and_results_only_at_a_line_start():
    outputs = [{"output_type": "stream", "name": "stdout", "text": "a\nNOT CHECKED: no node\n"},
               {"output_type": "execute_result", "data": {"text/plain": ["'NOT CHECKED: x'"]}},
               {"output_type": "stream", "name": "stdout", "text": "this is NOT CHECKED: mid-line"}]
    assert notes.not_checked_lines(outputs) == ["NOT CHECKED: no node"]
    assert notes.not_checked_lines([]) == []


def test_not_checked_prints_one_line(capsys):
    notes.not_checked("RabbitMQ 4.3 classic queues have no ack timeout")
    assert capsys.readouterr().out == "NOT CHECKED: RabbitMQ 4.3 classic queues have no ack timeout\n"
