"""Notebook 05's failure panel: controls -> a real run, clicked programmatically; the figure and table it shows."""

from __future__ import annotations

import os

from helpers import lab_threads

from workqueue_lab.experiments.failure_panel import LOOP_LIMIT, TASKS, FailurePanel
from workqueue_lab.lessons import failures

PREFIX = os.environ["WORKQUEUE_LAB_PREFIX"]


def _lanes(panel: FailurePanel) -> list[str]:
    (ax,) = panel.last_figure.axes
    return [t.get_text() for t in ax.get_yticklabels()]


def test_the_controls_and_their_classes():
    panel = FailurePanel()
    assert list(panel.handling.options) == list(failures.HANDLINGS) and panel.handling.value == "delayed retry"
    assert [b.description for b in panel.faulty] == ["worker 1 fails every task", "worker 2 fails every task"]
    assert "wql-run" in panel.run_button._dom_classes and panel.widget._dom_classes == ("wql-failure-panel",)
    panel.handling.value = "requeue"
    assert panel.retries.disabled  # retries only mean something for the delayed retry
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


def test_delayed_retry_walks_the_poison_task_to_the_parking_lot(clean):
    panel = FailurePanel(broker=clean)
    panel.retries.value = 2
    panel.run_button.click()
    assert panel.last_error is None, panel.last_error
    rows = {r["task"]: r for r in panel.last_table.rows}
    assert (rows[1]["attempts"], rows[1]["failed"], rows[1]["end"]) == (3, 3, "parked")  # the first try + 2 retries
    assert [rows[t]["end"] for t in range(2, TASKS + 1)] == ["done"] * (TASKS - 1)
    assert _lanes(panel) == ["worker 1", "worker 2", "retry wait", "parking lot"]
    assert panel.timeline.value[:4] == b"\x89PNG" and "parked" in panel.table.value
    assert clean.queue_stats(PREFIX + "parking_lot").ready == 0  # emptied after the run: the next one starts clean
    assert lab_threads() == []


def test_requeue_loops_on_a_poison_task(clean):
    panel = FailurePanel(broker=clean)
    panel.handling.value = "requeue"
    panel.run_button.click()
    assert panel.last_error is None, panel.last_error
    rows = {r["task"]: r for r in panel.last_table.rows}
    assert rows[1]["attempts"] >= LOOP_LIMIT and rows[1]["requeued"] >= LOOP_LIMIT - 1 \
        and rows[1]["end"] == "still looping when stopped"
    assert "a task looped" in panel.status.value and "retry wait" not in _lanes(panel)
    assert lab_threads() == []


def test_dead_letter_sends_what_a_broken_worker_gets_to_the_dlq(clean):
    panel = FailurePanel(broker=clean)
    panel.handling.value = "dead-letter"
    panel.poison.value = False
    panel.faulty[1].value = True  # worker 2 fails every task it gets
    panel.run_button.click()
    assert panel.last_error is None, panel.last_error
    rows = panel.last_table.rows
    failed = [r for r in rows if r["failed"]]
    assert failed and all((r["attempts"], r["end"]) == (1, "dead-lettered") for r in failed)
    assert all(r["end"] == "done" for r in rows if not r["failed"])
    assert "dead letters" in _lanes(panel)
    assert lab_threads() == []
