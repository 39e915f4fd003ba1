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

_EXPORTS = {
    # broker
    "find_broker": "broker", "Broker": "broker", "QueueStats": "broker", "mask": "broker",
    # experiments
    "run": "experiment", "start": "experiment", "Run": "experiment", "RunResult": "experiment",
    "stop_all": "experiment",
    "live_threads": "experiment", "task_states": "experiment",
    "Scenario": "scenario", "WorkerSpec": "scenario", "Fault": "scenario", "fault": "scenario",
    "LESSON_TASKS": "scenario", "POISON": "scenario", "numbered_tasks": "scenario", "json_tasks": "scenario",
    "work": "workers", "TaskFailed": "workers",
    "lesson_callback": "callbacks", "auto_ack_callback": "callbacks", "forgetful_callback": "callbacks",
    "requeue_on_error": "callbacks", "reject_on_error": "callbacks", "TaskWorker": "callbacks",
    # data and views
    "EventLog": "events", "Event": "events", "attempts": "events", "tasks_by_worker": "events",
    "plot_timeline": "timeline", "compare": "timeline", "plot_distribution": "timeline",
    "plot_queue_depth": "timeline", "summary_table": "tables", "event_table": "tables",
    "LabError": "errors", "predict": "model",
}

__all__ = [*_EXPORTS, "connect", "reset"]


# Submodules a notebook may use as attributes (lab.settings.name(...)) without importing them first.
_SUBMODULES = {"settings", "events", "broker", "scenario", "timeline", "tables", "model", "private_node"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workqueue_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def connect(force: str | None = None):
    """Find or start a broker (see ``workqueue_lab.broker``) and return its handle."""
    from .broker import find_broker

    return find_broker(force)


def reset() -> list[str]:
    """Stop running experiments and delete the lab's own queues and exchanges."""
    from .broker import find_broker
    from .experiment import stop_all

    stop_all()
    return find_broker().reset()
