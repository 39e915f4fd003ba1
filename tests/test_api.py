"""The names `import workqueue_lab as lab` offers: few, all loadable, offered to Tab completion, and enough for
every notebook and solution (a name a notebook uses but the package dropped would fail only when its cell runs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import workqueue_lab as lab

ROOT = Path(__file__).resolve().parents[1]


def _notebook_code() -> str:
    code = [path.read_text() for path in (ROOT / "notebooks" / "solutions").glob("*.py")]
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        code += ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return "\n".join(code)


def test_at_most_25_names_and_each_one_loads():
    assert len(lab.__all__) <= 25
    for name in lab.__all__:
        assert getattr(lab, name) is not None, name


def test_tab_completion_offers_the_names_before_they_are_loaded():
    offered = dir(lab)
    assert set(lab.__all__) <= set(offered) and {"settings", "versions", "events", "topology"} <= set(offered)
    assert "annotations" not in offered and "importlib" not in offered


def test_every_name_a_notebook_uses_is_offered():
    used = set(re.findall(r"\blab\.([A-Za-z_]\w*)", _notebook_code()))
    assert used, "no lab.<name> found: the scan itself is broken"
    assert {name for name in used if not name.startswith("__")} - set(dir(lab)) == set()
