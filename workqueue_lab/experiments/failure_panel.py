"""A panel for notebook 05: choose how a failing task is handled, break workers, press Run, see the walk.

    from workqueue_lab.experiments.failure_panel import FailurePanel
    panel = FailurePanel()
    panel                       # the controls; "Run" runs a real experiment
    result = panel.run()        # the same from code

Controls: the failure handling (requeue / dead-letter / delayed retry), the retries before the parking
lot (delayed retry), a poison task that fails on every worker, and a fault toggle per worker (its
``lab.work`` raises on every task).  A run declares the handling's topology, empties its queues, runs the
callback of ``lessons.failures.handling_callback`` in worker threads until every task has an end (acked,
dead-lettered or parked) or a task loops, and draws the timeline and a per-task table.

Only this module (and ``experiments.panel``) imports ipywidgets; ``import workqueue_lab`` does not load it.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING

import ipywidgets as W

from ..engine.scenario import WorkerSpec, fault, numbered_tasks
from ..lessons import failures
from .panel import RunButton

if TYPE_CHECKING:
    from ..broker.handle import Broker
    from ..engine.result import RunResult
    from ..views.tables import Table

__all__ = ["FailurePanel", "story_table"]

TASKS = 4
WORKERS = 2
LOOP_LIMIT = 12  # deliveries of one task before a run is stopped as a loop
LOOPING = "still looping when stopped"  # the end of a task the run stopped in a loop


class FailurePanel(RunButton):
    """The widgets, the run they describe, and the last run's result and per-task table."""

    def __init__(self, broker: Broker | None = None, ttl_seconds: float = 2.0, timeout: float = 60.0) -> None:
        self.broker = broker
        self.ttl_seconds = ttl_seconds  # lesson seconds; scaled by WORKQUEUE_LAB_TIME_SCALE at run time
        self.timeout = timeout
        self.last_result: RunResult | None = None
        self.last_table: Table | None = None
        self.last_error: str | None = None
        self.last_figure = None  # the last timeline (a matplotlib Figure), for a notebook or a test to read
        style = {"description_width": "8em"}

        self.handling = W.ToggleButtons(options=list(failures.HANDLINGS), value="delayed retry",
                                        description="on failure", style=style)
        self.handling.add_class("wql-handling")
        self.retries = W.IntSlider(value=3, min=0, max=5, description="max retries", continuous_update=False,
                                   style=style, tooltip="delayed retry: retries before the parking lot")
        self.retries.add_class("wql-retries")
        wide = {"style": {"description_width": "initial"}, "layout": W.Layout(width="auto")}  # whole labels
        self.poison = W.Checkbox(value=True, description="task 1 fails on every worker (poison)", **wide)
        self.poison.add_class("wql-poison")
        self.faulty = [W.Checkbox(value=False, description=f"worker {i} fails every task", **wide)
                       for i in range(1, WORKERS + 1)]
        for box in self.faulty:
            box.add_class("wql-faulty")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.run_button.add_class("wql-run")
        self.status = W.HTML(value="<i>Choose, then press Run.</i>")
        self.timeline = W.Image(format="png", layout=W.Layout(max_width="100%", display="none"))
        self.timeline.add_class("wql-timeline")
        self.table = W.HTML()
        self.table.add_class("wql-table")
        self.handling.observe(lambda change: self._retries_shown(), names="value")
        self.run_button.on_click(self._on_click)
        self.widget = W.VBox([self.handling, self.retries, self.poison, W.HBox(self.faulty),
                              W.HBox([self.run_button, self.status]), self.timeline, self.table])
        self.widget.add_class("wql-failure-panel")

    def _retries_shown(self) -> None:
        self.retries.disabled = self.handling.value != "delayed retry"

    # --- what the controls describe ------------------------------------------------------
    def workers(self) -> list[WorkerSpec]:
        """One WorkerSpec per worker: the poison task fails on all of them, a faulty one fails every task."""
        specs = []
        for box in self.faulty:
            faults = [fault("exception")] if box.value else []
            if self.poison.value and not box.value:
                faults.append(fault("exception", tasks=1))
            specs.append(WorkerSpec(faults=tuple(faults)))
        return specs

    # --- running ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run what the controls describe against RabbitMQ (what Run does); returns the result."""
        from .. import settings
        from ..broker.discovery import find_broker

        broker = self.broker or find_broker()
        handling = self.handling.value
        ttl_ms = max(1, round(self.ttl_seconds * 1000 * settings.time_scale()))
        topology = failures.topology_for(handling, ttl_ms)
        with broker.channel() as ch:
            topology.declare(ch)
        for _, name in (n for n in topology.names() if n[0] == "queue"):
            broker.purge(name)  # a message left from an earlier run (a loop) would walk into this one
        self.last_error = None
        self.run_button.disabled = True
        self.status.value = f"<i>running: {html.escape(handling)}...</i>"
        try:
            result = failures.run_until(failures.handling_callback(handling, self.retries.value),
                                        numbered_tasks([1] * TASKS), topology=topology, workers=self.workers(),
                                        max_deliveries=LOOP_LIMIT, timeout=self.timeout)
        finally:
            self.run_button.disabled = False
        for _, name in (n for n in topology.names() if n[0] == "queue"):
            broker.purge(name)  # a looping task stays in the queue when the run stops: not for the next run
        self.last_result = result
        self._show(result, handling)
        return result

    def _show(self, result: RunResult, handling: str) -> None:
        from ..views.timeline import plot_timeline

        self.last_table = story_table(result.events)
        ends = self.last_table.column("end")
        self.status.value = html.escape(
            f"{handling}: " + ", ".join(f"{ends.count(e)} {e}" for e in dict.fromkeys(ends))
            + (f" · stopped: a task looped ({LOOP_LIMIT} deliveries; one more may have arrived meanwhile)"
               if LOOPING in ends else ""))
        detail = f", max retries {self.retries.value}" if handling == "delayed retry" else ""
        fig = plot_timeline(result.events, title=f"on failure: {handling}{detail}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        self.last_figure = fig
        self.timeline.value = buf.getvalue()
        self.timeline.layout.display = ""
        self.table.value = self.last_table._repr_html_()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def story_table(events) -> Table:
    """One row per task: attempts, failures, copies sent to wait or park, and how it ended."""
    from ..record.stories import task_stories
    from ..views.tables import Table

    rows = [{"task": s.task, "attempts": s.attempts, "failed": s.failures, "requeued": s.requeued,
             "end": s.ended or LOOPING} for s in task_stories(list(events)).values()]
    return Table(rows, caption="per task: how it ended (parked: waits in the parking lot for a person)")
