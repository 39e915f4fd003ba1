"""An interactive panel for prefetch experiments: move sliders, press Run, see what RabbitMQ did.

    from workqueue_lab import panel as lab_panel
    panel = lab_panel.Panel()
    panel                       # shows the controls; "Run" runs a real experiment
    result = panel.run()        # the same from code (returns the RunResult)

Controls: prefetch (0-300; 0 = unlimited), number of workers (1-6) with one speed
slider each, the task mix and count, and failures injected into worker 1.  A run
uses the lab's own orchestration (``workqueue_lab.engine.run.Run``: declare, start
every consumer, publish, wait, stop) on the kernel's main thread -- ipykernel calls
a Button's ``on_click`` handlers on the main thread -- and ``Run.wait`` updates the
panel's progress bar from that same thread while the workers run.  Widget updates go out
to the browser at once, even while the handler is still busy.

Only this module imports ipywidgets; ``import workqueue_lab`` does not load it.
"""

from __future__ import annotations

import html
import io
import time
from typing import TYPE_CHECKING

import ipywidgets as W

from ..engine.scenario import POISON, Scenario, WorkerSpec, fault, numbered_tasks
from ..engine.topology import TASK_QUEUE
from ..record import events as ev
from ..record.state import RunState

if TYPE_CHECKING:
    from ..broker.handle import Broker
    from ..engine.result import RunResult

__all__ = ["Panel", "panel_callback", "MIXES", "FAILURES", "tasks_for"]

MAX_PREFETCH = 300  # RabbitMQ's guidance for throughput goes up to 100-300
MAX_WORKERS = 6
MAX_TASKS = 40
STALE_OPACITY = 0.4  # the last run's timeline and table while the next run goes

# Task mixes: seconds of work (dots) for task i of n.
MIXES = {
    "equal": "every task takes 1 s",
    "mixed": "1, 2, 3, 4 s, repeating (like the lesson's tasks)",
    "one long": "task 1 takes 8 s, the others 1 s",
    "every 4th long": "tasks 1, 5, 9, ... take 4 s, the others 1 s",
}

# What each failure toggle does to worker 1 (poison adds a message instead).
FAILURES = {
    "crash": "worker 1 dies in the middle of its first task (no ack: the task is redelivered) and is restarted",
    "exception": "worker 1's first two tasks raise; the callback nacks them with requeue=True",
    "hang": "worker 1's first task takes 10 s",
    "slow": "every task on worker 1 takes 3 times longer",
    "poison": "one extra message that is not UTF-8; the callback rejects it (requeue=False)",
}


def tasks_for(mix: str, count: int) -> tuple[str, ...]:
    """The task bodies for a mix, e.g. ``tasks_for("mixed", 4)`` -> Task 1. .. Task 4...."""
    if mix == "equal":
        seconds = [1] * count
    elif mix == "mixed":
        seconds = [i % 4 + 1 for i in range(count)]
    elif mix == "one long":
        seconds = [8] + [1] * (count - 1)
    elif mix == "every 4th long":
        seconds = [4 if i % 4 == 0 else 1 for i in range(count)]
    else:
        from ..errors import LabError

        raise LabError(f"Unknown task mix {mix!r}; use one of: {', '.join(MIXES)}.")
    return numbered_tasks(seconds[:count])


def panel_callback(ch, method, properties, body):
    """The panel's worker: the lesson's callback, plus the two error branches the toggles need."""
    from ..engine.workers import TaskFailed, work

    try:
        message = body.decode()
    except UnicodeDecodeError:  # a poison message can never succeed: drop it
        ch.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
        return
    try:
        work(message)
    except TaskFailed:  # a temporary failure: give it back for another try
        ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
        return
    ch.basic_ack(delivery_tag=method.delivery_tag)


class RunButton:
    """A panel's Run button: run what the controls say, and show any error in the status line (a button has
    nowhere else to report).  Panels that use it have ``run()``, ``status`` and ``last_error``."""

    def _on_click(self, _button) -> None:
        try:
            self.run()
        except Exception as exc:  # shown in the panel: a button has nowhere else to report
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#b00'>{html.escape(self.last_error)}</span>"


class Panel(RunButton):
    """The widgets, the Scenario they describe, and the last run's result."""

    def __init__(self, broker: Broker | None = None, queue: str = TASK_QUEUE, timeout: float = 120.0) -> None:
        self.broker = broker
        self.queue = queue
        self.timeout = timeout
        self.last_result: RunResult | None = None
        self.last_error: str | None = None
        style = {"description_width": "7em"}
        wide = W.Layout(width="24em")

        self.prefetch = W.IntSlider(value=1, min=0, max=MAX_PREFETCH, description="prefetch",
                                    continuous_update=False, style=style, layout=wide,
                                    tooltip="basic_qos(prefetch_count=...); 0 means unlimited")
        self.prefetch.add_class("wql-prefetch")
        self.workers = W.IntSlider(value=2, min=1, max=MAX_WORKERS, description="workers",
                                   continuous_update=False, style=style, layout=wide)
        self.workers.add_class("wql-workers")
        self.speeds: list[W.FloatSlider] = []
        self.speed_box = W.VBox()
        self.speed_box.add_class("wql-speeds")
        self.mix = W.Dropdown(options=[(f"{name}: {text}", name) for name, text in MIXES.items()],
                              value="equal", description="task mix", style=style, layout=W.Layout(width="30em"))
        self.mix.add_class("wql-mix")
        self.count = W.IntSlider(value=8, min=1, max=MAX_TASKS, description="tasks", continuous_update=False,
                                 style=style, layout=wide)
        self.count.add_class("wql-count")
        self.failures = {name: W.ToggleButton(value=False, description=name, tooltip=text,
                                              layout=W.Layout(width="7.5em"))
                         for name, text in FAILURES.items()}
        for name, button in self.failures.items():
            button.add_class(f"wql-fault-{name}")
            button.observe(lambda change, b=button: _style_toggle(b), names="value")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="run these settings against RabbitMQ")
        self.run_button.add_class("wql-run")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="14em"))
        self.progress.add_class("wql-progress")
        self.status = W.HTML(value="<i>Set the controls and press Run.</i>")
        self.status.add_class("wql-status")
        self.timeline = W.Image(format="png", layout=W.Layout(max_width="100%", display="none"))
        self.timeline.add_class("wql-timeline")
        self.table = W.HTML()
        self.table.add_class("wql-table")
        self._png, self._table_html = b"", ""  # the last run's pictures, undimmed

        self._rebuild_speeds()
        self.workers.observe(lambda change: self._rebuild_speeds(), names="value")
        self.run_button.on_click(self._on_click)

        fault_row = W.HBox([W.Label("failures on worker 1:"), *self.failures.values()])
        self.widget = W.VBox([
            W.HBox([W.VBox([self.prefetch, self.workers, self.count, self.mix]), self.speed_box]),
            fault_row,
            W.HBox([self.run_button, self.progress, self.status]),
            self.timeline,
            self.table,
        ])
        self.widget.add_class("wql-panel")

    # --- what the controls describe ------------------------------------------------------
    def _rebuild_speeds(self) -> None:
        """One speed slider per worker; sliders of workers that stay keep their values."""
        old = [s.value for s in self.speeds]
        self.speeds = []
        for i in range(self.workers.value):
            slider = W.FloatSlider(value=old[i] if i < len(old) else 1.0, min=0.1, max=4.0, step=0.05,
                                   description=f"speed {i + 1}", continuous_update=False,
                                   readout_format=".2f", style={"description_width": "6em"},
                                   tooltip="1.0 = one second per dot; 0.25 = four times slower")
            slider.add_class("wql-speed")
            self.speeds.append(slider)
        self.speed_box.children = tuple(self.speeds)

    def scenario(self) -> Scenario:
        """The Scenario the controls describe right now."""
        on = {name for name, button in self.failures.items() if button.value}
        faults = []
        if "crash" in on:
            faults.append(fault("crash", times=1))
        if "exception" in on:
            faults.append(fault("exception", times=2))
        if "hang" in on:
            faults.append(fault("hang", times=1, seconds=10.0))
        if "slow" in on:
            faults.append(fault("slow", factor=3.0))
        specs = [WorkerSpec(speed=s.value) for s in self.speeds]
        specs[0] = WorkerSpec(speed=self.speeds[0].value, faults=tuple(faults), restart="crash" in on)
        tasks = tasks_for(self.mix.value, self.count.value)
        if "poison" in on:
            tasks = (tasks[0], POISON["non-utf8"], *tasks[1:])
        return Scenario(tasks=tasks, workers=tuple(specs), prefetch=self.prefetch.value, queue=self.queue,
                        timeout=self.timeout).validate()

    # --- running ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run the current scenario against RabbitMQ (what the Run button does); returns the result."""
        from ..broker.discovery import find_broker
        from ..engine.run import Run

        scenario = self.scenario()
        broker = self.broker or find_broker()
        self.last_error = None
        self.run_button.disabled = True
        try:
            run = Run(panel_callback, scenario, broker)
            run.declare()
            broker.purge(run.queue)  # a message left from an earlier run would skew this one
            run.start()  # stops any run still going first
            run.publish()
            result = run.wait(progress=_PanelProgress(self, len(scenario.tasks)))
            broker.purge(run.queue)
            self.last_result = result
            self._show(result)
        finally:
            self.run_button.disabled = False
        return result

    def _dim(self) -> None:
        """While a run goes, the last timeline and table stay where they are, faded: the page does not jump."""
        if self.timeline.value:
            self.timeline.value = _faded_png(self._png)
        if self.table.value:
            self.table.value = f'<div style="opacity:{STALE_OPACITY}">{self._table_html}</div>'

    def _show(self, result: RunResult) -> None:
        from ..views.tables import summary_table
        from ..views.timeline import plot_timeline

        events = result.events
        self.progress.value = len(result.completed)
        self.progress.bar_style = "success" if not result.lost and not result.timed_out else "warning"
        self.status.value = html.escape(_headline(result))
        fig = plot_timeline(events, title=f"prefetch={result.scenario.prefetch}  ·  {_default_title(events)}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        self._png = buf.getvalue()
        self.timeline.value = self._png
        self.timeline.layout.display = ""
        self._table_html = summary_table(events)._repr_html_()
        self.table.value = self._table_html

    # --- showing the panel --------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class _PanelProgress:
    """What ``Run.wait`` drives while the panel's run goes: the progress bar and the status line."""

    min_interval = 0.1  # seconds between redraws: each one is a message to the browser

    def __init__(self, panel: Panel, total: int) -> None:
        self.panel, self.total = panel, total
        self.began = time.monotonic()
        self._last_draw = float("-inf")
        panel._dim()  # first: the old pictures fade before anything of the new run shows
        panel.progress.max = total
        panel.progress.value = 0
        panel.progress.bar_style = "info"

    def update(self, state: RunState, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        counts = state.counts()
        settled = counts["done"] + counts["dropped"]
        self.panel.progress.value = settled
        self.panel.status.value = html.escape(_progress_text(state, settled, self.total, now - self.began))

    def close(self, state: RunState, note: str = "") -> None:
        self.update(state, force=True)  # the result's own line replaces it when the run ends normally


def _progress_text(state: RunState, settled: int, total: int, elapsed: float) -> str:
    who = ", ".join(f"w{w}: {n}" for w, n in sorted(state.done_by_worker.items()) if n)
    return f"{settled}/{total} settled" + (f" ({who})" if who else "") + f" · {elapsed:.1f} s"


def _style_toggle(button: W.ToggleButton) -> None:
    """An active failure toggle is red with a warning icon; an inactive one is plain."""
    button.button_style = "danger" if button.value else ""
    button.icon = "exclamation-triangle" if button.value else ""


def _faded_png(png: bytes) -> bytes:
    """``png`` blended toward white (the last run's timeline while the next one runs)."""
    from PIL import Image  # matplotlib's own dependency

    with Image.open(io.BytesIO(png)) as img:
        rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, "white")
    buf = io.BytesIO()
    Image.blend(white, rgba, STALE_OPACITY).save(buf, format="png")
    return buf.getvalue()


def _headline(result: RunResult) -> str:
    # every worker of the scenario, a crashed one with 0 tasks included, so the line matches the controls
    per_worker = {w: 0 for w in range(1, len(result.scenario.workers) + 1)}
    per_worker.update({w: len(t) for w, t in result.tasks_by_worker().items()})
    parts = [f"makespan {result.makespan():.2f} s",
             "tasks per worker " + ", ".join(f"w{w}: {n}" for w, n in sorted(per_worker.items()))]
    for w in sorted({e.worker for e in result.of_kind(ev.CRASH)}):
        crashes = sum(1 for e in result.of_kind(ev.CRASH) if e.worker == w)
        restarts = sum(1 for e in result.of_kind(ev.RESTART) if e.worker == w)
        parts.append(f"w{w} crashed {crashes}×" + (f", restarted {restarts}×" if restarts else ", not restarted"))
    if result.redelivered:
        parts.append(f"{len(result.redelivered)} redelivered")
    dropped = sum(1 for e in result.of_kind(ev.NACK, ev.REJECT) if e.requeue is False)
    if dropped:
        parts.append(f"{dropped} rejected (dropped)")
    if result.lost:
        parts.append(f"{len(result.lost)} lost")
    if result.timed_out:
        parts.append("timed out")
    return " · ".join(parts)


def _default_title(events) -> str:
    tasks = len(ev.published(events))
    workers = len({e.worker for e in events if e.worker is not None})
    return f"{tasks} tasks on {workers} worker{'s' * (workers != 1)}"
