"""Charts of a run beside its timeline: how the work was shared, and how the queue filled up and drained.

Like the timeline they read only the event log (and queue samples), never a broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..record import events as ev
from .figure import CRASH, INK, NACK, WIDTH_IN, new_figure, tidy_axes
from .timeline import XLABEL

__all__ = ["plot_distribution", "plot_queue_depth"]


def plot_distribution(events: Iterable[ev.Event], ax=None, title: str | None = "Tasks per worker"):
    """Tasks completed per worker, failed and still-open attempts stacked on top; returns the Figure.

    A dashed line marks an even share of the completed tasks, so uneven dispatch shows at a glance.
    """
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    evs = list(events)
    atts = ev.attempts(evs)
    workers = ev.worker_ids(evs)
    if ax is None:
        fig = new_figure(min(3.2 + 0.85 * max(len(workers), 2), WIDTH_IN + 1), 3.8)
        ax = fig.add_subplot()
    tidy_axes(ax, grid="y")
    if title:
        ax.set_title(title, loc="left", fontsize=11, color=INK)
    if not workers:
        ax.text(0.5, 0.5, "no workers yet", transform=ax.transAxes, ha="center", va="center", color="#888888")
        return ax.figure

    def count(w, kinds):
        return sum(1 for a in atts if a.worker == w and a.outcome in kinds)

    x = np.arange(len(workers))
    segments = [  # (counts, label, style)
        ([count(w, ev.SETTLED) for w in workers], "completed", dict(facecolor="#4c78a8")),
        ([count(w, (ev.NACK, ev.REJECT)) for w in workers], "nacked / rejected", dict(facecolor=NACK)),
        ([count(w, (ev.CRASH, ev.TIMEOUT)) for w in workers], "lost in a crash / timeout",
         dict(facecolor=CRASH, hatch="//", edgecolor="white", linewidth=0)),
        ([count(w, ("open",)) for w in workers], "still open (no ack yet)",
         dict(facecolor="#d9d9d9", edgecolor="#888888", linestyle="--", linewidth=1)),
    ]
    bottom = np.zeros(len(workers))
    handles = []
    for counts, label, style in segments:
        counts = np.array(counts)
        if counts.any() or label == "completed":
            ax.bar(x, counts, bottom=bottom, width=0.62, **style)
            handles.append(Patch(label=label, **style))
            bottom = bottom + counts
    done = np.array(segments[0][0])
    redelivered = [sum(1 for a in atts if a.worker == w and a.redelivered) for w in workers]
    if done.sum():
        share = done.sum() / len(workers)
        ax.axhline(share, color="#777777", linestyle="--", linewidth=1, zorder=3)
        handles.append(Line2D([], [], color="#777777", linestyle="--", linewidth=1,
                              label=f"even share ({share:.3g})"))
    if len(workers) <= 16:
        for xi, d, top, r in zip(x, done, bottom, redelivered, strict=True):
            text = f"{d} done" + (f"\n↻ {r} redelivered" if r else "")
            ax.annotate(text, (xi, top), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8, color=INK)
    ax.set_xticks(x, [f"worker {w}" for w in workers])
    # What the bars count: tasks done, and when some deliveries failed, those too (one per delivery).
    ax.set_ylabel("tasks done" if bottom.sum() == done.sum() else "deliveries (done or failed)")
    ax.set_ylim(0, max(bottom.max(), 1) * 1.25)
    ax.yaxis.get_major_locator().set_params(integer=True)
    # Under the plot, centred on it: beside it, the legend pushed the bars into the left half of the figure.
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12),
              ncols=min(len(handles), 2), borderaxespad=0, columnspacing=1.2)
    return ax.figure


def plot_queue_depth(samples: Sequence[tuple[float, int, int]], ax=None,
                     events: Iterable[ev.Event] | None = None, title: str | None = "Messages in the queue"):
    """Ready and unacknowledged message counts over time; returns the Figure.

    ``samples`` is a list of ``(t, ready, unacked)``.  Times are shown from the
    first sample, or from the first publish when the run's ``events`` are given
    (the samples must then use the event log's clock), so the picture lines up
    with the timeline.  On its own figure the two counts get a panel each, one above
    the other on a shared time axis, so equal counts (2 ready, 2 unacked) stay two
    visible lines; drawn into a given ``ax`` they share it, ready drawn a little above.
    """
    import numpy as np

    if ax is None:
        fig = new_figure(WIDTH_IN, 3.6)
        axes = list(fig.subplots(2, 1, sharex=True))
    else:
        axes = [ax]
    for a in axes:
        tidy_axes(a)
    if title:
        axes[0].set_title(title, loc="left", fontsize=11, color=INK)
    if not samples:
        axes[0].set_ylabel("messages")
        axes[0].text(0.5, 0.5, "no samples yet", transform=axes[0].transAxes, ha="center", va="center",
                     color="#888888")
        return axes[0].figure
    data = np.array(sorted(samples), dtype=float)
    t0 = ev.origin(list(events)) if events is not None else data[0, 0]
    axes[-1].set_xlabel(XLABEL if events is not None else "seconds since the first sample")
    t = data[:, 0] - t0
    known = data[:, 1:][~np.isnan(data[:, 1:])]  # unacked is None (NaN) where the broker does not report it
    top = max(known.max() if known.size else 0, 1) * 1.15
    lines = (("ready (waiting)", data[:, 1], "#4c78a8", "queue-ready"),
             ("unacked (delivered, no ack yet)", data[:, 2], NACK, "queue-unacked"))
    for i, (label, y, color, gid) in enumerate(lines):
        a = axes[i] if len(axes) == 2 else axes[0]
        if len(axes) == 1 and i == 0:
            y = y + top * 0.015  # one axes: lift ready a hair so it cannot hide under an equal unacked
        if np.isnan(y).all():
            a.text(0.5, 0.5, f"{label.split(' (')[0]}: this broker does not report it", transform=a.transAxes,
                   ha="center", va="center", color="#888888")
        a.plot(t, y, drawstyle="steps-post", color=color, linewidth=2, label=label, gid=gid)
        a.fill_between(t, y, step="post", color=color, alpha=0.15, linewidth=0)
        a.set_ylim(0, top)
        a.yaxis.get_major_locator().set_params(integer=True)
        if len(axes) == 2:
            a.set_ylabel(label.split(" (")[0], color=color, fontweight="bold")
            a.text(1.0, 1.0, label, transform=a.transAxes, ha="right", va="bottom", fontsize=9, color=color)
    if len(axes) == 1:
        axes[0].set_ylabel("messages")
        axes[0].legend(frameon=False, fontsize=9, loc="upper right")
    return axes[0].figure
