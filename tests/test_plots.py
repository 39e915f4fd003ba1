"""The plots show what the notebooks' text says (issue 16, item 6), on hand-made events: no broker.

Each test saves its figure to artifacts/plots/<name>.png (git-ignored) for a person to look at, and
asserts the property on the figure object itself.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from workqueue_lab.experiments import sweep
from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event
from workqueue_lab.views import charts, figure, timeline

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "plots"


def save(fig, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(ARTIFACTS / f"{name}.png", dpi=100)


def E(t, kind, worker=None, task=None, tag=None, **kw):
    return Event(t, kind, worker, task, tag, **kw)


def one_after_another(n_tasks: int, workers: int = 2) -> list[Event]:
    """``n_tasks`` one-second tasks taken in turn by ``workers`` workers."""
    out = [E(0.0, ev.PUBLISH, task=i) for i in range(1, n_tasks + 1)]
    for task in range(1, n_tasks + 1):
        w = (task - 1) % workers + 1
        start = 0.01 + (task - 1) // workers
        out += [E(start, ev.DELIVER, w, task, task), E(start + 0.98, ev.ACK, w, task, task)]
    return sorted(out, key=lambda e: e.t)


# notebook 01: four tasks, two workers, prefetch 1 -> (ready, unacked) goes (0,0) (2,2) (1,2) (0,2) (0,1) (0,0)
DEPTH = [(0.0, 0, 0), (0.1, 2, 2), (1.2, 1, 2), (2.2, 0, 2), (3.2, 0, 1), (4.2, 0, 0)]


def test_queue_depth_draws_ready_and_unacked_where_equal_counts_stay_visible():
    fig = charts.plot_queue_depth(DEPTH, title="task_queue while four tasks are worked on")
    save(fig, "queue-depth")
    top, bottom = fig.axes
    (ready,) = [ln for ln in top.get_lines() if ln.get_gid() == "queue-ready"]
    (unacked,) = [ln for ln in bottom.get_lines() if ln.get_gid() == "queue-unacked"]
    assert list(ready.get_ydata()) == [0, 2, 1, 0, 0, 0] and list(unacked.get_ydata()) == [0, 2, 2, 2, 1, 0]
    assert ready.get_drawstyle() == unacked.get_drawstyle() == "steps-post"
    assert top.get_shared_x_axes().joined(top, bottom)  # one time axis for both
    assert top.get_ylabel() == "ready" and bottom.get_ylabel() == "unacked"


def test_queue_depth_in_one_given_axes_lifts_ready_off_an_equal_unacked():
    fig = charts.plot_queue_depth([(0.0, 0, 0)])  # any figure, for its canvas
    fig.clear()
    ax = fig.add_subplot()
    charts.plot_queue_depth(DEPTH, ax=ax)
    save(fig, "queue-depth-one-axes")
    ready, unacked = (next(ln for ln in ax.get_lines() if ln.get_gid() == gid)
                      for gid in ("queue-ready", "queue-unacked"))
    assert ready.get_ydata()[1] > unacked.get_ydata()[1]  # both are 2 messages, yet two lines


def legend_inside(fig, ax) -> None:
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    figure = fig.bbox
    assert figure.x0 <= box.x0 and box.x1 <= figure.x1 and figure.y0 <= box.y0 and box.y1 <= figure.y1, box
    axes = ax.get_window_extent()
    assert axes.x0 <= (box.x0 + box.x1) / 2 <= axes.x1  # under the bars, not off to one side


def test_tasks_per_worker_counts_tasks_done_and_keeps_its_legend_on_the_figure():
    fig = charts.plot_distribution(one_after_another(4))
    save(fig, "tasks-per-worker")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "tasks done"
    legend_inside(fig, ax)


def test_tasks_per_worker_with_failed_deliveries_says_it_counts_deliveries():
    events = one_after_another(4) + [E(4.5, ev.DELIVER, 1, 5, 9), E(4.9, ev.CRASH, 1),
                                     E(5.0, ev.DELIVER, 2, 5, 10, redelivered=True), E(5.5, ev.ACK, 2, 5, 10),
                                     E(0.0, ev.PUBLISH, task=5)]
    fig = charts.plot_distribution(sorted(events, key=lambda e: e.t))
    save(fig, "tasks-per-worker-failed")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "deliveries (done or failed)"
    assert "lost in a crash / timeout" in [t.get_text() for t in ax.get_legend().get_texts()]
    legend_inside(fig, ax)


def bar_colours(fig) -> dict[int, tuple]:
    """Task -> the face colour of its bar(s) on the timeline (each task once here)."""
    (ax,) = fig.axes
    (bars,) = [c for c in ax.collections if c.get_gid() == "attempts"]
    labels = [int(t.get_text()) for t in ax.texts]  # bar labels, in attempt order
    return {task: tuple(np.round(c, 4)) for task, c in zip(labels, bars.get_facecolors(), strict=True)}


def test_twelve_tasks_get_twelve_colours():
    fig = timeline.plot_timeline(one_after_another(12), title="12 tasks: no colour twice")
    save(fig, "timeline-12-tasks")
    colours = bar_colours(fig)
    assert sorted(colours) == list(range(1, 13))
    assert len(set(colours.values())) == 12
    closest = min(np.abs(np.subtract(a, b)).max() for a, b in itertools.combinations(colours.values(), 2))
    assert closest > 0.04, closest  # not merely unequal: told apart by eye (4% of a channel at least)


def test_forty_tasks_get_forty_colours_and_eight_keep_the_old_palette():
    pal, _ = figure.palette(40)
    assert len({tuple(np.round(c, 4)) for c in pal}) == 40
    assert figure.task_color(9, 12) != figure.task_color(1, 12)
    assert figure.task_color(1, 8) == figure.task_color(1)  # runs of up to 8 tasks look as before


def label_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_makespan_and_throughput_labels_use_one_format_each():
    makespan = sweep.Sweep("makespan", "work seconds",
                           points=[sweep.Point(p, v, {1: 4, 2: 4}, v) for p, v in ((1, 7.01), (2, 7.0), (4, 9.5),
                                                                                  (0, 12.25))])
    fast = sweep.Sweep("throughput", "messages/s",
                       points=[sweep.Point(p, v, {1: 300, 2: 300}, 1.0) for p, v in ((1, 950.4), (10, 4200.0),
                                                                                    (0, 6100.7))])
    fig = sweep.plot_sweeps(fast, makespan)
    save(fig, "sweeps")
    throughput_ax, makespan_ax = fig.axes
    assert label_texts(makespan_ax) == ["7.01", "7.00", "9.50", "12.25"]
    assert all(re.fullmatch(r"\d+\.\d\d", t) for t in label_texts(makespan_ax))
    assert label_texts(throughput_ax) == ["950", "4,200", "6,101"]


def test_queue_depth_without_unacked_counts_says_so_instead_of_failing():
    """A broker that reports no unacked count (a class's URL broker without rabbitmqctl) gives None there."""
    from workqueue_lab.views.charts import plot_queue_depth

    fig = plot_queue_depth([(0.0, 1, None), (0.5, 2, None), (1.0, 0, None)])
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert any("does not report" in t for t in texts), texts
    assert fig.axes[0].get_ylim()[1] > 2  # the ready counts still set the scale


def test_the_scaling_plot_is_a_lab_figure_with_a_panel_per_kind_and_an_ideal_line():
    from workqueue_lab.lessons import scaling

    result = scaling.Sweep(workers=(1, 2, 4), task_seconds=0.1)
    for kind in (scaling.SLEEP, scaling.CPU):
        for mode in ("threads", "processes"):
            for n in result.workers:
                result.rates[(kind, mode, n)] = 10.0 * (n if kind == scaling.SLEEP or mode == "processes" else 1)
    fig = scaling.plot(result, cores=2)
    assert type(fig).__name__ == "LabFigure" and fig._repr_png_().startswith(b"\x89PNG")  # no pyplot figure
    assert [ax.get_title() for ax in fig.axes] == ["sleep-bound tasks", "cpu-bound tasks"]
    ideal = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("ideal")]
    assert list(ideal[0].get_ydata()) == [10.0, 20.0, 40.0]
