"""The prefetch panel: controls -> Scenario -> a real run, clicked programmatically."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pika
import pika.exceptions
import pytest
import traitlets
from helpers import lab_threads
from PIL import Image

import workqueue_lab as lab
from workqueue_lab.engine.result import RunResult
from workqueue_lab.experiments import panel as lab_panel
from workqueue_lab.record import events as ev


def test_importing_the_lab_does_not_load_ipywidgets():
    code = "import sys, workqueue_lab; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_controls_have_stable_names_and_css_classes():
    panel = lab_panel.Panel()
    assert panel.run_button.description == "Run"
    assert "wql-run" in panel.run_button._dom_classes
    assert "wql-prefetch" in panel.prefetch._dom_classes
    assert "wql-timeline" in panel.timeline._dom_classes
    assert panel.prefetch.description == "prefetch"
    assert [b.description for b in panel.failures.values()] == ["crash", "exception", "hang", "slow", "poison"]
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert panel.widget._dom_classes == ("wql-panel",)


def test_sliders_cannot_hold_invalid_values():
    panel = lab_panel.Panel()
    for slider, low, high in ((panel.prefetch, 0, 300), (panel.workers, 1, 6), (panel.count, 1, 40)):
        slider.value = high + 100
        assert slider.value == high
        slider.value = low - 100
        assert slider.value == low
    panel.speeds[0].value = -5
    assert panel.speeds[0].value == pytest.approx(0.1)
    with pytest.raises(traitlets.TraitError):  # a Dropdown accepts only its options
        panel.mix.value = "random"
    sc = panel.scenario()  # whatever was tried, the controls still describe a valid Scenario: the clamped values
    assert (sc.prefetch, len(sc.workers), len(sc.tasks)) == (0, 1, 1)
    assert [w.speed for w in sc.workers] == [pytest.approx(0.1)]


def test_speed_sliders_follow_the_worker_count_and_keep_their_values():
    panel = lab_panel.Panel()
    panel.speeds[0].value = 0.5
    panel.workers.value = 4
    assert [s.description for s in panel.speeds] == ["speed 1", "speed 2", "speed 3", "speed 4"]
    assert list(panel.speed_box.children) == panel.speeds
    panel.workers.value = 1
    assert [s.value for s in panel.speeds] == [0.5]


def test_scenario_describes_the_controls():
    panel = lab_panel.Panel()
    panel.workers.value = 3
    panel.speeds[2].value = 2.0
    panel.prefetch.value = 7
    panel.mix.value = "mixed"
    panel.count.value = 6
    panel.failures["slow"].value = True
    panel.failures["poison"].value = True
    sc = panel.scenario()
    assert sc.prefetch == 7
    assert [w.speed for w in sc.workers] == [1.0, 1.0, 2.0]
    assert [f.kind for f in sc.workers[0].faults] == ["slow"] and sc.workers[1].faults == ()
    assert sc.tasks[0] == "Task 1." and sc.tasks[1] == lab.POISON["non-utf8"]
    assert sc.tasks[2:] == ("Task 2..", "Task 3...", "Task 4....", "Task 5.", "Task 6..")
    assert lab_panel.tasks_for("one long", 3) == ("Task 1........", "Task 2.", "Task 3.")


def test_run_button_runs_what_the_controls_say(clean, monkeypatch):
    monkeypatch.setenv("WORKQUEUE_LAB_TIME_SCALE", "0.2")  # tasks long enough for the sampler to see the queue
    panel = lab_panel.Panel(clean)
    panel.workers.value = 3
    panel.prefetch.value = 4
    panel.count.value = 15
    with QueueSampler(clean, lab.settings.name("task_queue")) as samples:
        panel.run_button.click()
    result = panel.last_result
    assert panel.last_error is None
    ready = result.of_kind(ev.READY)
    assert sorted(e.worker for e in ready) == [1, 2, 3]
    # what the broker did with prefetch=4: with 3 consumers it held back exactly 15 - 3 * 4 = 3 messages
    # (no limit would hand out all 15 at once; prefetch=1 would hold back 12)
    busy = [ready for consumers, ready in samples if consumers == 3]
    assert busy and max(busy) == 3, samples
    assert sorted(result.completed) == list(range(1, 16))
    assert panel.progress.value == 15 and panel.progress.bar_style == "success"
    assert bytes(panel.timeline.value).startswith(b"\x89PNG")
    assert "makespan" in panel.status.value and "<table" in panel.table.value
    assert not panel.run_button.disabled
    assert lab.live_threads() == 0


class QueueSampler:
    """(consumers, ready) of a queue as the broker reports them, polled on its own connection while a block runs."""

    def __init__(self, broker, queue: str) -> None:
        self.broker, self.queue = broker, queue
        self.samples: list[tuple[int, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="test-sampler", daemon=True)

    def _poll(self) -> None:
        conn = self.broker.connect()
        try:
            ch = conn.channel()
            while not self.done.is_set():
                try:
                    ok = ch.queue_declare(queue=self.queue, passive=True).method
                    self.samples.append((ok.consumer_count, ok.message_count))
                except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                    ch = conn.channel()
                self.done.wait(0.01)
        finally:
            conn.close()

    def __enter__(self) -> list[tuple[int, int]]:
        self.thread.start()
        return self.samples

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_prefetch_one_keeps_the_long_task_from_blocking_others(clean, fast):
    panel = lab_panel.Panel(clean)
    panel.mix.value = "one long"
    panel.count.value = 9
    panel.workers.value = 3
    for prefetch, expected in ((1, [1]), (0, [1, 4, 7])):
        panel.prefetch.value = prefetch
        panel.run_button.click()
        assert panel.last_result.tasks_by_worker()[1] == expected, prefetch


def test_reclicking_leaves_no_threads_behind(clean, fast):
    panel = lab_panel.Panel(clean)
    panel.count.value = 4
    before = threading.active_count()
    panel.run_button.click()
    first = panel.last_result
    panel.run_button.click()
    assert panel.last_result is not first
    assert lab.live_threads() == 0 and lab_threads() == []
    assert threading.active_count() <= before


@pytest.mark.parametrize("failure, check", [
    ("crash", lambda r: r.count(ev.CRASH) == 1 and r.count(ev.RESTART) == 1 and r.redelivered),
    ("exception", lambda r: [e.requeue for e in r.of_kind(ev.NACK)] == [True, True]),
    ("poison", lambda r: [(e.task, e.requeue) for e in r.of_kind(ev.REJECT)] == [(2, False)]),
    ("slow", lambda r: len(r.tasks_by_worker()[1]) < len(r.tasks_by_worker()[2])),
])
def test_failure_toggles_reach_worker_1(clean, fast, failure, check):
    panel = lab_panel.Panel(clean)
    panel.failures[failure].value = True
    panel.count.value = 6
    panel.run_button.click()
    result = panel.last_result
    assert panel.last_error is None
    assert check(result), result.events
    assert not result.lost and not result.timed_out
    expected = 7 if failure == "poison" else 6
    assert len(result.published) == expected
    assert "w1: " in panel.status.value and "w2: " in panel.status.value  # every worker, even one with 0 tasks
    if failure == "crash":
        assert "w1 crashed 1×, restarted 1×" in panel.status.value, panel.status.value


def test_a_broken_broker_is_one_line_in_the_panel(fast):
    class NoBroker:
        def channel(self):
            raise lab.LabError("RabbitMQ is not reachable at amqp://nowhere; start it first.")

    panel = lab_panel.Panel(NoBroker())
    panel.run_button.click()
    assert panel.last_error == "LabError: RabbitMQ is not reachable at amqp://nowhere; start it first."
    assert "not reachable" in panel.status.value and "\n" not in panel.status.value
    assert panel.last_result is None and not panel.run_button.disabled
    with pytest.raises(lab.LabError):
        panel.run()


ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "plots"


def test_an_active_failure_toggle_looks_active():
    panel = lab_panel.Panel()
    crash, slow = panel.failures["crash"], panel.failures["slow"]
    crash.value = True
    assert (crash.button_style, crash.icon) == ("danger", "exclamation-triangle")
    assert (slow.button_style, slow.icon) == ("", "")  # an inactive one stays plain
    crash.value = False
    assert (crash.button_style, crash.icon) == ("", "")


def test_the_status_line_keeps_a_crashed_worker_and_says_it_restarted():
    panel = lab_panel.Panel()
    panel.failures["crash"].value = True
    scenario = panel.scenario()
    E = ev.Event
    events = [E(0.0, ev.PUBLISH, task=1), E(0.0, ev.PUBLISH, task=2), E(0.0, ev.READY, 1), E(0.0, ev.READY, 2),
              E(0.1, ev.DELIVER, 1, 1, 1), E(0.1, ev.DELIVER, 2, 2, 1), E(0.5, ev.CRASH, 1),
              E(0.6, ev.RESTART, 1), E(1.1, ev.ACK, 2, 2, 1), E(1.1, ev.DELIVER, 2, 1, 2, redelivered=True),
              E(2.1, ev.ACK, 2, 1, 2)]
    line = lab_panel._headline(RunResult(events, scenario))
    assert "tasks per worker w1: 0, w2: 2" in line and "w1 crashed 1×, restarted 1×" in line, line
    assert "is restarted" in panel.failures["crash"].tooltip  # what the toggle promised, the line confirms


def test_a_rerun_keeps_the_last_timeline_and_table_in_place_dimmed(clean, fast):
    panel = lab_panel.Panel(clean)
    panel.count.value = 6
    panel.run_button.click()
    first_png, first_table = bytes(panel.timeline.value), panel.table.value
    seen = []  # what the page showed at each progress step of the second run

    def look(change):
        seen.append((panel.timeline.layout.display, bytes(panel.timeline.value), panel.table.value))

    panel.progress.observe(look, names="value")
    panel.run_button.click()
    assert panel.last_error is None and seen
    for display, png, table in seen:
        assert display != "none" and png.startswith(b"\x89PNG") and png != first_png
        assert table == f'<div style="opacity:{lab_panel.STALE_OPACITY}">{first_table}</div>'
    dimmed = seen[0][1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "panel-timeline-during-a-run.png").write_bytes(dimmed)
    with Image.open(io.BytesIO(first_png)) as old, Image.open(io.BytesIO(dimmed)) as faded:
        assert faded.size == old.size  # same place, same size: the page does not jump
        assert np.asarray(faded.convert("L")).min() > np.asarray(old.convert("L")).min() + 60  # ink faded
    assert bytes(panel.timeline.value) != dimmed and "opacity" not in panel.table.value  # the new run, sharp
