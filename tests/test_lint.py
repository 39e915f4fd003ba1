"""The code base stays ruff-clean (part of the test command, so CI enforces it)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    proc = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_module_of_the_lab_is_over_400_lines():
    """A module a newcomer can read in one sitting; past 400 lines it is two things with one name."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "workqueue_lab").rglob("*.py")}
    assert sizes and {path: n for path, n in sizes.items() if n > 400} == {}
