"""workqueue_lab: run the RabbitMQ Work Queues lesson against a real broker, and see it.

    import workqueue_lab as lab
    broker = lab.connect()                      # find or start RabbitMQ
    result = lab.run(callback, workers=2)       # your plain-pika callback, in 2 threads
    result.timeline()

Heavy modules (pika, matplotlib, ipywidgets) load on first use, so importing is fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# The 25 names a notebook needs (the rest is one import away, e.g. ``from workqueue_lab.engine.run import Run``).
_NAMES_BY_MODULE = {
    "broker.address": ("mask",),
    "engine.run": ("run", "start", "stop_all", "live_threads"),
    "engine.scenario": ("WorkerSpec", "fault", "LESSON_TASKS", "POISON", "numbered_tasks", "json_tasks"),
    "engine.workers": ("work", "TaskFailed"),
    "lessons.callbacks": ("lesson_callback", "TaskWorker"),
    "record.events": ("attempts",),
    "record.state": ("task_states",),
    "record.model": ("predict",),
    "views.timeline": ("plot_timeline", "compare"),
    "views.charts": ("plot_distribution", "plot_queue_depth"),
    "errors": ("LabError",),
}
_EXPORTS = {name: module for module, names in _NAMES_BY_MODULE.items() for name in names}

__all__ = [*_EXPORTS, "connect", "reset"]


# Submodules a notebook uses as attributes (lab.settings.name(...)) without importing them first.
_SUBMODULES = {"settings": "settings", "versions": "versions", "events": "record.events", "topology": "engine.topology"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workqueue_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """What Tab completion offers on ``lab.``: the names a notebook needs, loaded or not yet."""
    loaded = {n for n in globals() if not n.startswith("_")} - {"annotations", "importlib"}
    return sorted(loaded | {*__all__, *_SUBMODULES})


def connect(force: str | None = None):
    """Find or start a broker (see ``workqueue_lab.broker``) and return its handle."""
    from .broker.discovery import find_broker

    return find_broker(force)


def reset() -> list[str]:
    """Stop running experiments and delete the lab's own queues and exchanges; returns their names."""
    from .broker.discovery import find_broker
    from .engine.run import stop_all  # imports engine.topology: the course's topologies are registered

    stop_all()
    return find_broker().reset()
