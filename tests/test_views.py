"""Unit tests of the views (timeline, tables, progress) on plain, hand-made events: no broker."""

import ast
import io
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event
from workqueue_lab.views import charts, progress, tables, timeline

ROOT = Path(__file__).resolve().parents[1]
VIEWS = ("timeline", "charts", "figure", "tables", "progress")


def E(t, kind, worker=None, task=None, tag=None, **kw):
    return Event(t, kind, worker, task, tag, **kw)


def crash_and_redelivery():
    """4 tasks, 2 workers; worker 2 crashes on task 2, which worker 1 then gets redelivered."""
    events = [E(0.0, ev.READY, 1), E(0.01, ev.READY, 2)]
    events += [E(0.1 + i * 0.002, ev.PUBLISH, task=i) for i in (1, 2, 3, 4)]
    events += [
        E(0.12, ev.DELIVER, 1, 1, 1), E(0.12, ev.DELIVER, 2, 2, 1),
        E(0.90, ev.CRASH, 2), E(1.12, ev.ACK, 1, 1, 1),
        E(1.13, ev.DELIVER, 1, 2, 2, redelivered=True), E(1.50, ev.RESTART, 2),
        E(1.52, ev.DELIVER, 2, 3, 1), E(2.13, ev.ACK, 1, 2, 2),
        E(2.14, ev.DELIVER, 1, 4, 3), E(3.14, ev.ACK, 1, 4, 3), E(3.52, ev.ACK, 2, 3, 1),
    ]
    return events


def nacks_and_dead_letters():
    return [
        *[E(0, ev.PUBLISH, task=i) for i in (1, 2, 3)],
        E(0.1, ev.DELIVER, 1, 1, 1), E(0.5, ev.NACK, 1, 1, 1, requeue=True),
        E(0.6, ev.DELIVER, 1, 1, 2, redelivered=True), E(1.0, ev.ACK, 1, 1, 2),
        E(0.1, ev.DELIVER, 2, 2, 1), E(0.4, ev.REJECT, 2, 2, 1, requeue=False),
        E(0.45, ev.DEAD_LETTER, task=2),
        E(0.5, ev.DELIVER, 2, 3, 2),  # never acked: open until the end of the log
        E(1.5, ev.STOP, 1),
    ]


def synthetic(n_tasks, workers=8, seed=1):
    """n_tasks tasks shared by ``workers`` workers, each done once (one attempt per task)."""
    rnd = random.Random(seed)
    out = [E(0.0, ev.PUBLISH, task=i) for i in range(1, n_tasks + 1)]
    clock = {w: 0.01 for w in range(1, workers + 1)}
    for task in range(1, n_tasks + 1):
        w = min(clock, key=clock.get)
        start, end = clock[w], clock[w] + rnd.uniform(0.5, 1.5)
        out += [E(start, ev.DELIVER, w, task, task), E(end, ev.ACK, w, task, task)]
        clock[w] = end + 0.01
    out.sort(key=lambda e: e.t)
    return out


def bars(ax):
    """(collection gid, number of bars) for the attempt bars drawn in ``ax``."""
    return {c.get_gid(): len(c.get_paths()) for c in ax.collections
            if (c.get_gid() or "").startswith("attempts")}


def marks(ax):
    return {line.get_gid(): len(line.get_xdata()) for line in ax.lines if line.get_gid()}


def legend_labels(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


# --- what the timeline relies on from events.attempts ------------------------------------------

def test_attempts_give_one_bar_per_delivery_with_its_outcome():
    atts = ev.attempts(crash_and_redelivery())
    assert [(a.worker, a.task, a.outcome, a.redelivered) for a in atts] == [
        (1, 1, ev.ACK, False), (2, 2, ev.CRASH, False), (1, 2, ev.ACK, True),
        (2, 3, ev.ACK, False), (1, 4, ev.ACK, False),
    ]
    crash = atts[1]
    assert (crash.start, crash.end) == (0.12, 0.90)


def test_attempts_keep_requeue_and_leave_unacked_deliveries_open():
    atts = {(a.worker, a.task, a.outcome): a for a in ev.attempts(nacks_and_dead_letters())}
    assert atts[(1, 1, ev.NACK)].requeue is True
    assert atts[(2, 2, ev.REJECT)].requeue is False
    opened = atts[(2, 3, "open")]
    assert opened.end is None and opened.duration == 0.0


def test_attempts_with_prefetch_2_crash_ends_both_open_deliveries():
    events = [E(0, ev.DELIVER, 1, 1, 1), E(0, ev.DELIVER, 1, 2, 2), E(1, ev.CRASH, 1)]
    assert sorted((a.task, a.outcome, a.end) for a in ev.attempts(events)) == [
        (1, ev.CRASH, 1), (2, ev.CRASH, 1)]


# --- timeline ----------------------------------------------------------------------------------

def test_timeline_has_one_lane_per_worker_and_one_bar_per_attempt():
    from matplotlib.figure import Figure

    fig = timeline.plot_timeline(crash_and_redelivery())
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker 1", "worker 2"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # inverted: worker 1 at the top
    assert bars(ax) == {"attempts": 4, "attempts-redelivered": 1}
    assert ax.get_xlabel() == "seconds since the first publish"
    assert ax.get_title(loc="left") == "4 tasks on 2 workers  ·  all done after 3.4 s"


def test_timeline_lane_labels_and_moments():
    fig = timeline.plot_timeline(crash_and_redelivery(), lane_labels={2: "worker 2 @ c2 → c3"},
                                 moments={"c2 killed": 0.9})
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker 1", "worker 2 @ c2 → c3"]
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "moment"]
    assert line.get_xdata()[0] == pytest.approx(0.9 - 0.102)  # in seconds since the first publish
    assert "c2 killed" in legend_labels(ax)


def test_timeline_x_axis_starts_at_the_first_publish():
    fig = timeline.plot_timeline(crash_and_redelivery())
    (ax,) = fig.axes
    coll = next(c for c in ax.collections if c.get_gid() == "attempts")
    first_bar_left = min(p.vertices[:, 0].min() for p in coll.get_paths())
    assert first_bar_left == pytest.approx(0.12 - 0.102)  # first DELIVER - first PUBLISH


def test_timeline_marks_crash_and_labels_only_marks_present():
    (ax,) = timeline.plot_timeline(crash_and_redelivery()).axes
    assert marks(ax) == {"crash": 1}
    assert legend_labels(ax) == ["redelivered", "worker crashed"]
    texts = {t.get_text() for t in ax.texts}
    assert {"1", "↻ 2", "3", "4"} <= texts


def test_timeline_marks_nacks_dead_letters_and_open_attempts():
    (ax,) = timeline.plot_timeline(nacks_and_dead_letters()).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker 1", "worker 2", "dead letters"]
    assert marks(ax) == {"nack-requeue": 1, "nack-caught": 1}  # task 2 was dead-lettered, not dropped
    assert bars(ax) == {"attempts": 2, "attempts-redelivered": 1, "attempts-open": 1}
    assert [c.get_gid() for c in ax.collections if c.get_gid() == "dead-letter"] == ["dead-letter"]
    assert legend_labels(ax) == ["redelivered", "still open (no ack yet)", "nack/reject → requeued",
                                 "nack/reject → dead-lettered (see its lane)", "dead-lettered"]
    assert "not done" in ax.get_title(loc="left")


def test_timeline_calls_a_reject_dropped_only_when_no_queue_caught_it_and_marks_it_on_its_own_bar():
    dropped = [e for e in nacks_and_dead_letters() if e.kind != ev.DEAD_LETTER]
    dropped.append(E(0.40001, ev.DELIVER, 2, 4, 3))  # task 4 fails at once, right after task 2's bar
    dropped.append(E(0.40002, ev.REJECT, 2, 4, 3, requeue=False))
    (ax,) = timeline.plot_timeline(dropped).axes
    assert marks(ax) == {"nack-requeue": 1, "nack-drop": 2}
    line = next(li for li in ax.lines if li.get_gid() == "nack-drop")
    xs = sorted(line.get_xdata())
    assert xs[1] - xs[0] > 0.005  # task 4's mark sits on a sliver of its own bar, not on task 2's end


def test_timeline_without_failures_has_no_marks_and_no_legend():
    (ax,) = timeline.plot_timeline(synthetic(10, workers=3)).axes
    assert marks(ax) == {} and ax.get_legend() is None


def test_timeline_of_nothing_still_draws():
    fig = timeline.plot_timeline([])
    assert fig.axes[0].texts[0].get_text() == "no events yet"
    fig.savefig(io.BytesIO(), format="png")


def test_timeline_into_a_given_axes_returns_its_figure():
    fig = timeline.plot_timeline([])
    ax = fig.axes[0]
    assert timeline.plot_timeline(crash_and_redelivery(), ax=ax, title="") is fig


def test_figure_shows_itself_once_as_png_without_pyplot():
    fig = timeline.plot_timeline(crash_and_redelivery())
    assert type(fig).__name__ == "LabFigure" and fig._repr_png_().startswith(b"\x89PNG")
    assert fig._repr_html_() is None  # so JupyterLab shows the PNG, once
    from workqueue_lab.views.figure import LabFigure  # what every picture of the lab is

    assert isinstance(fig, LabFigure)


def test_compare_stacks_runs_on_a_shared_x_axis():
    fig = timeline.compare({"prefetch 0": synthetic(6, 2), "prefetch 1": crash_and_redelivery()})
    top, bottom = fig.axes[:2]
    assert top.get_title(loc="left").startswith("prefetch 0")
    assert bottom.get_title(loc="left").startswith("prefetch 1")
    assert top.get_shared_x_axes().joined(top, bottom)
    assert bottom.get_xlabel() and not top.get_xlabel()
    with pytest.raises(ValueError):
        timeline.compare({})


def test_distribution_and_queue_depth_draw():
    fig = charts.plot_distribution(crash_and_redelivery())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["worker 1", "worker 2"]
    assert [p.get_height() for p in ax.patches[:2]] == [3, 1]  # completed per worker
    fig = charts.plot_queue_depth([(0.0, 4, 0), (0.5, 2, 2), (1.0, 0, 1), (1.5, 0, 0)])
    assert [line.get_label() for ax in fig.axes for line in ax.lines] == ["ready (waiting)",
                                                                          "unacked (delivered, no ack yet)"]
    for fig, says in ((charts.plot_distribution([]), "no workers yet"),
                      (charts.plot_queue_depth([]), "no samples yet")):
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.texts] == [says] and not ax.patches and not ax.lines
        fig.savefig(io.BytesIO(), format="png")


def test_10k_attempts_draw_as_one_collection_not_10k_artists():
    """Why the timeline scales: the bars are one collection, whatever the count.  The wall-clock targets
    (10k <= 1 s, 100k <= 5 s) are measured by benchmarks/plot_scaling.py, not judged on a shared machine."""
    fig = timeline.plot_timeline(synthetic(10_000))
    (ax,) = fig.axes
    assert bars(ax) == {"attempts": 10_000}
    assert len(ax.collections) + len(ax.patches) + len(ax.lines) < 20
    assert fig._repr_png_().startswith(b"\x89PNG")


@pytest.mark.slow
def test_100k_attempts_draw_as_one_collection():
    fig = timeline.plot_timeline(synthetic(100_000))
    (ax,) = fig.axes
    assert bars(ax) == {"attempts": 100_000}
    assert fig._repr_png_().startswith(b"\x89PNG")


# --- tables ------------------------------------------------------------------------------------

def test_summary_table_has_a_row_per_worker_and_totals():
    table = tables.summary_table(crash_and_redelivery())
    workers, total = table.rows[:-1], table.rows[-1]
    assert [r["worker"] for r in workers] == [1, 2]
    assert total["worker"] == "total"
    assert (total["done"], total["attempts"], total["redelivered"], total["crashes"]) == (4, 5, 1, 1)
    assert total["busy_s"] == pytest.approx(sum(r["busy_s"] for r in workers))
    assert table.caption == "makespan 3.42 s · 4 published · 4 completed · 0 lost"
    text = str(table)
    assert text.splitlines()[1].split()[:3] == ["worker", "done", "attempts"]
    assert "total" in text.splitlines()[-1]


def test_table_html_has_a_header_row_and_right_aligned_numbers():
    html = tables.summary_table(crash_and_redelivery())._repr_html_()
    assert "<thead><tr>" in html and "<th" in html and ">busy s</th>" in html
    assert '<td style="text-align:right;padding:.2em .6em">3.00</td>' in html
    assert "<caption" in html
    escaped = tables.Table([{"detail": "<b>"}])._repr_html_()
    assert "&lt;b&gt;" in escaped and "<b>" not in escaped


def test_event_table_shows_the_latest_events_readably():
    table = tables.event_table(nacks_and_dead_letters(), last=7)  # oldest first, by time
    assert [r["kind"] for r in table.rows] == [ev.REJECT, ev.DEAD_LETTER, ev.NACK, ev.DELIVER, ev.DELIVER,
                                               ev.ACK, ev.STOP]
    assert table.caption == "last 7 of 12 events"
    text = str(table)
    assert "0.400" in text and "requeue=False" in text
    assert tables.event_table([]).rows == []


# --- progress ----------------------------------------------------------------------------------

def test_progress_without_a_kernel_prints_nothing_to_stdout(capsys):
    assert not progress.in_jupyter()
    p = progress.Progress(40, "prefetch 1")
    for done in range(41):
        p.update(done, {"redelivered": 1, "crashed": 0})
    p.close()
    p.close()  # twice is harmless
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") <= 1 and "40/40 tasks done · 1 redelivered" in err


def test_progress_in_jupyter_updates_one_display_at_most_10_times_a_second(monkeypatch):
    import IPython.display

    class Handle:
        def __init__(self):
            self.shown = []

        def update(self, obj):
            self.shown.append(obj)

    handle = Handle()
    shown = []
    monkeypatch.setattr(progress, "in_jupyter", lambda: True)
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, display_id=False: shown.append(obj) or handle)
    p = progress.Progress(40, "run")
    start = time.monotonic()
    for done in range(1000):
        p.update(done % 41)
    elapsed = time.monotonic() - start
    p.close("finished")
    assert len(shown) == 1
    assert len(handle.shown) <= 2 + 10 * elapsed
    assert "tasks done" in shown[0]._repr_html_() and handle.shown[-1].text == "finished"


def test_watch_counts_settled_tasks_until_finished(capsys):
    log = ev.EventLog()

    def worker():
        for task in (1, 2, 3):
            log.record(ev.DELIVER, 1, task, tag=task, redelivered=task == 2)
            time.sleep(0.02)
            log.record(ev.ACK, 1, task, tag=task)

    thread = threading.Thread(target=worker)
    thread.start()
    progress.watch(log, 3, lambda: log.count(ev.ACK) == 3, timeout=5, label="demo")
    thread.join()
    out, err = capsys.readouterr()
    assert out == "" and "demo: 3/3 tasks done · 1 redelivered" in err


def test_watch_times_out_and_lets_keyboard_interrupt_through(capsys):
    log = ev.EventLog()
    start = time.monotonic()
    progress.watch(log, 2, lambda: False, timeout=0.3)
    assert 0.25 < time.monotonic() - start < 10  # returns at the timeout, not never (margin for a loaded machine)
    assert "timed out after 0.3 s" in capsys.readouterr().err

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        progress.watch(log, 2, interrupted, timeout=5)
    assert "interrupted" in capsys.readouterr().err


def test_run_progress_follows_a_log():
    log = ev.EventLog()
    log.extend(crash_and_redelivery())
    stream = io.StringIO()
    display = progress.RunProgress(4)
    display.progress._stream = stream
    display.update(log, force=True)
    display.close(log)
    assert stream.getvalue().startswith("4/4 tasks done · 1 redelivered · 1 crashed")


# --- boundaries ----------------------------------------------------------------------------------

def test_views_do_not_import_pika():
    code = ("import sys\nimport workqueue_lab.views.timeline, workqueue_lab.views.tables, "
            "workqueue_lab.views.progress, workqueue_lab.views.charts, workqueue_lab.views.figure\n"
            "print('pika' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", "importing a view module imported pika"


@pytest.mark.parametrize("name", VIEWS)
def test_views_import_only_events_from_the_lab_and_nothing_heavy_at_import(name):
    tree = ast.parse((ROOT / "workqueue_lab" / "views" / f"{name}.py").read_text())
    for node in tree.body:  # module level only: matplotlib and IPython load inside functions
        if isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # the record (the events and the state derived from them), the figure and its colours, and
                # the timeline's lane names (charts label their time axis as the timeline does)
                assert (node.module == "record" and [a.name for a in node.names] == ["events"]
                        or node.module in ("record.state", "figure", "timeline")), (name, node.module)
            else:
                assert node.module.split(".")[0] in sys.stdlib_module_names | {"__future__"}


def test_a_task_cut_off_by_a_lost_connection_is_marked_not_drawn_as_done():
    events = [E(0, ev.PUBLISH, task=1), E(0.1, ev.DELIVER, 1, 1, 1), E(0.5, ev.RECONNECT, 1, detail="StreamLostError"),
              E(1.5, ev.RESTART, 1), E(1.6, ev.DELIVER, 1, 1, 1, redelivered=True), E(2.0, ev.ACK, 1, 1, 1)]
    (ax,) = timeline.plot_timeline(events).axes
    assert marks(ax) == {"connection-lost": 1}
    assert "connection lost → back to the queue" in legend_labels(ax)


def test_arrival_labels_that_would_overlap_are_left_out():
    events = [E(0, ev.PUBLISH, task=i) for i in range(1, 7)]
    events += [E(0.1, ev.DELIVER, 1, 1, 1), E(10.0, ev.ACK, 1, 1, 1)]
    events += [E(5.0 + 0.001 * i, ev.DEAD_LETTER, task=i) for i in range(2, 7)]  # five arrivals within 5 ms
    (ax,) = timeline.plot_timeline(events).axes
    labels = [t.get_text() for t in ax.texts if t.get_text() in {"2", "3", "4", "5", "6"}]
    assert labels == ["2"]  # one label where five would be drawn over each other


def test_overlapping_retry_waits_are_drawn_side_by_side():
    from workqueue_lab.views.timeline import _stack

    assert _stack([0.0, 1.0, 0.5, 3.0], [2.0, 1.5, 4.0, 3.5]) == [0, 2, 1, 0]
    events = [E(0, ev.PUBLISH, task=1), E(0, ev.PUBLISH, task=2),
              E(0.1, ev.RETRY_WAIT, task=1), E(0.2, ev.RETRY_WAIT, task=2),  # both wait at once
              E(3.0, ev.DELIVER, 1, 2, 1), E(3.1, ev.ACK, 1, 2, 1),
              E(6.0, ev.DELIVER, 1, 1, 2), E(6.1, ev.ACK, 1, 1, 2)]
    (ax,) = timeline.plot_timeline(events).axes
    bars = next(c for c in ax.collections if c.get_gid() == "retry-wait-bars")
    centres = sorted(round(p.vertices[:, 1].mean(), 3) for p in bars.get_paths())
    assert centres[0] != centres[1]  # one above the other, both visible
