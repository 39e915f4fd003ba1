"""Small helpers shared by the tests (no test module imports another)."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

# The system broker's management API as the classroom tests administer it (guest, loopback only).
ADMIN = "http://guest:guest@127.0.0.1:15672"

def wait_until(predicate, timeout: float = 5.0, interval: float = 0.1):
    """Poll until predicate() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def lab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("workqueue-lab")]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> lab modules it imports anywhere in its text (function-level and TYPE_CHECKING ones too)."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rpartition(".")[0]
                target = (base + ("." + node.module if node.module else "")) if node.level else (node.module or "")
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    graph[name] |= {full} if full in modules else ({target} if target in modules else set())
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
    return graph
