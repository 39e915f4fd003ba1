"""The package's layering (docs: ../shared/design.md), read from the source: every import counts, function-level
and TYPE_CHECKING ones too, so a lower layer cannot quietly reach up."""

from __future__ import annotations

from pathlib import Path

from helpers import import_graph

PACKAGE = Path(__file__).resolve().parents[1] / "workqueue_lab"

GRAPH = {m.removeprefix("workqueue_lab."): {d.removeprefix("workqueue_lab.") for d in deps}
         for m, deps in import_graph(PACKAGE).items()}


def _in(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def test_the_graph_is_real():
    assert "record.events" in GRAPH["views.timeline"] and "broker.control" in GRAPH["broker.handle"]


def test_no_import_cycle_anywhere():
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(GRAPH.get(module, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_events_import_nothing_of_the_lab_and_the_record_layer_stays_below_the_engine():
    assert GRAPH["record.events"] == set()
    for module, deps in GRAPH.items():
        if _in(module, "record"):
            # the model reads a Scenario (plain data) and nothing else of the engine
            assert {d for d in deps if not _in(d, "record")} <= {"engine.scenario"}, (module, deps)


def test_views_only_draw_what_the_record_holds():
    """views/ draws: it reads the record and other views, and never starts, asks or controls anything."""
    assert any(_in(m, "views") for m in GRAPH)
    for module, deps in GRAPH.items():
        if _in(module, "views"):
            assert all(_in(d, "record", "views") for d in deps), (module, deps)
    assert GRAPH["views.figure"] == set()  # colours and the figure class: nothing of the lab


def test_experiments_sit_on_top_and_nothing_below_them_imports_them():
    """Widgets and sweeps start runs and draw them: a layer above the engine, the lessons and the views."""
    assert any(_in(m, "experiments") for m in GRAPH)
    for module, deps in GRAPH.items():
        if not _in(module, "experiments"):
            assert not any(_in(d, "experiments") for d in deps), (module, deps)


def test_a_check_is_a_verdict_on_facts_and_runs_nothing():
    """lessons/checks judge events and trials handed to them; what runs the learner's code lives beside the
    lesson's trial (lessons.trials, lessons.full_queue), above the checks."""
    for module, deps in GRAPH.items():
        if _in(module, "lessons.checks"):
            assert all(_in(d, "lessons.checks", "record", "engine.scenario") for d in deps), (module, deps)


def test_the_broker_layer_knows_nothing_of_runs_views_or_lessons():
    for module, deps in GRAPH.items():
        if _in(module, "broker"):
            assert not any(_in(d, "engine", "record", "views", "lessons") for d in deps), (module, deps)


def test_the_engine_does_not_reach_into_the_lessons():
    for module, deps in GRAPH.items():
        if _in(module, "engine"):
            assert not any(_in(d, "lessons") for d in deps), (module, deps)


def test_every_import_of_a_lab_name_resolves():
    """Function-level imports run only when their branch runs: check each one names something that exists."""
    import ast
    import importlib

    missing = []
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = ".".join(parts[:-1] if parts[-1] == "__init__" else parts[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = base + ("." + node.module if node.module else "")
            module = importlib.import_module(target)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{target}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {target}.{alias.name}")
    assert missing == []


def test_no_test_module_imports_another():
    """Shared fixtures live in conftest.py, shared helpers in modules not named test_*: a test module imported by
    another would run its tests twice and couple two files nobody reads together."""
    import ast

    tests = Path(__file__).resolve().parent
    offenders = []
    for path in tests.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert offenders == []
