"""The timeline of a run: who did which task when, what failed, and what reached the other queues.

Every function reads only the event log (``workqueue_lab.record.events``); nothing here
imports pika or talks to a broker, so the same pictures draw a real run and a
model's prediction.  Figures come from ``views.figure`` (how they show up in a notebook is
explained there).

Marks on the timeline (the legend lists only those present)
-----------------------------------------------------------
* bar: one attempt, coloured by task (same task, same colour on every worker; no two tasks of a run
  share a colour: up to 8 tasks from Tableau 10, more from evenly spaced hues)
* hatched bar: a redelivered attempt (the label reads ``↻ 3``); past 300 of them, a dark top
  strip instead, because hatching is slow
* faint bar with a dashed edge: still open at the end of the log (never acked)
* orange ``↩``: nack/reject with requeue; orange ``x``: nack/reject, dropped (or dead-lettered, when its
  task turns up in a dead-letter, retry or parking lane); ``v``: the connection was lost mid-task
* red ``✕``: the worker crashed; purple diamond: the broker closed the channel
* squares on the bottom "dead letters" lane: messages that reached a dead-letter queue
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..record import events as ev
from .figure import CRASH, INK, NACK, TIMEOUT, WIDTH_IN, new_figure, palette, tidy_axes

__all__ = ["plot_timeline", "compare"]

XLABEL = "seconds since the first publish"
DEAD_LETTER_LANE = "dead letters"
# Queues other than the work queue, one lane each when a run's taps recorded arrivals there:
# (event kind, lane label, legend label, marker, gid).  A retry wait is drawn as a bar up to the
# task's next delivery, so attempt -> delay -> retry -> parking lot reads left to right.
ARRIVAL_LANES = (
    (ev.RETRY_WAIT, "retry wait", "waiting to retry", "s", "retry-wait"),
    (ev.DEAD_LETTER, DEAD_LETTER_LANE, "dead-lettered", "s", "dead-letter"),
    (ev.PARKED, "parking lot", "parked", "P", "parked"),
)

_MOMENT_COLORS = (CRASH, TIMEOUT, INK)

_LANE_IN = 0.42  # figure height per lane, inches
_DENSE = 2000  # above this many bars: no bar outlines (they would turn everything grey, and cost time)
_MIN_BAR = 0.006  # the shortest bar drawn, as a share of the time axis: wide enough to sit under a mark
_HATCH_MAX = 300  # above this many redelivered bars: a dark strip instead of hatching (hatching is slow)


def _task_count(evs: Sequence[ev.Event]) -> int:
    """The highest task number in the log: how many colours its tasks need."""
    return max((e.task for e in evs if e.task is not None), default=0)


def _arrival_lanes(evs: Sequence[ev.Event]) -> list[tuple[str, str, str, str, str]]:
    """The ARRIVAL_LANES that have at least one event in ``evs``, in their fixed order."""
    kinds = {e.kind for e in evs if e.kind in ev.ARRIVALS}
    return [lane for lane in ARRIVAL_LANES if lane[0] in kinds]


def _style_axes(ax) -> None:
    tidy_axes(ax, grid="x")
    ax.spines["left"].set_visible(False)  # the lanes' labels are enough
    ax.tick_params(axis="y", length=0)


def _status(evs: Sequence[ev.Event], atts: Sequence[ev.Attempt], t0: float) -> str:
    """'all done after 3.4 s' when every published task was acked, else how many are not."""
    settled = [a for a in atts if a.outcome in ev.SETTLED and a.end is not None]
    if not settled:
        return ""
    span = max(a.end for a in settled) - t0
    pending = set(ev.published(evs)) - {a.task for a in settled}
    if pending:
        return f"{len(pending)} not done, last ack after {span:.1f} s"
    return f"all done after {span:.1f} s"


def _draw_timeline(ax, events, title: str | None, max_label_tasks: int, label_axis: bool = True,
                   own_figure: bool = False, key: str | None = None,
                   lane_labels: Mapping[int, str] | None = None, moments: Mapping[str, float] | None = None) -> float:
    """Draw one run into ``ax``; return the span of the x axis (seconds).

    ``lane_labels``: worker -> the label of its lane (default "worker N"); ``moments``: label -> a time in
    the log's clock (``Event.t``), each drawn as a labelled vertical line (e.g. when a node was killed).

    ``title=None`` makes one up ("4 tasks on 2 workers · all done after 3.4 s");
    with ``key`` it reads "<key> · all done after 3.4 s".
    """
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    evs = list(events)
    atts = ev.attempts(evs)
    workers = ev.worker_ids(evs)
    arrivals = _arrival_lanes(evs)
    t0 = ev.origin(evs)
    t_end = max([e.t for e in evs] + list((moments or {}).values()), default=t0)
    span = max(t_end - t0, 1e-3)

    if title is None:
        status = _status(evs, atts, t0)
        if key is not None:
            head = str(key)
        else:
            tasks = len(set(ev.published(evs))) or len({a.task for a in atts if a.task is not None})
            head = f"{tasks} task{'s' * (tasks != 1)} on {len(workers)} worker{'s' * (len(workers) != 1)}"
        title = f"{head}  ·  {status}" if status else head

    lanes = {w: i for i, w in enumerate(workers)}
    names = lane_labels or {}
    labels = [names.get(w, f"worker {w}") for w in workers] + [lane[1] for lane in arrivals]
    n_lanes = max(len(labels), 1)

    _style_axes(ax)
    for i in range(0, n_lanes, 2):  # faint bands make lanes easy to follow across the page
        ax.axhspan(i - 0.5, i + 0.5, color="#f5f6f8", zorder=0, linewidth=0)
    if arrivals:
        ax.axhline(len(workers) - 0.5, color="#bbbbbb", linewidth=0.8, zorder=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(n_lanes - 0.5, -0.5)  # worker 1 at the top
    ax.set_xlim(-0.01 * span, span * 1.02)
    if label_axis:
        ax.set_xlabel(XLABEL)
    if title:
        ax.set_title(title, loc="left", fontsize=11, color=INK)
    if not evs:
        ax.text(0.5, 0.5, "no events yet", transform=ax.transAxes, ha="center", va="center", color="#888888")
        return span

    handles: list = []
    n = len(atts)
    dense = n > _DENSE
    if n:
        pal, unknown = palette(_task_count(evs))
        table = np.array([(a.start, t_end if a.end is None else a.end, lanes[a.worker],
                           0 if a.task is None else a.task, a.redelivered, a.end is None) for a in atts],
                         dtype=float)
        start = table[:, 0] - t0
        end = np.maximum(table[:, 1] - t0, start + span * _MIN_BAR)  # a zero-length attempt stays visible
        y = table[:, 2]
        task = table[:, 3].astype(np.int64)
        redelivered = table[:, 4].astype(bool)
        is_open = table[:, 5].astype(bool)

        face = pal[(task - 1) % len(pal)]
        face[task == 0] = unknown
        edge = face.copy()
        edge[:, :3] *= 0.55  # a darker shade of the bar's own colour
        verts = _rects(start, end, y, 0.36)
        # Hatching costs ~1 ms a bar in Agg; past _HATCH_MAX redelivered bars get a dark top strip instead.
        hatch = redelivered.sum() <= _HATCH_MAX
        for red in (False, True):
            for opn in (False, True):
                sel = (redelivered == red) & (is_open == opn)
                if not sel.any():
                    continue
                fc = face[sel].copy()
                if opn:
                    fc[:, 3] = 0.35
                coll = PolyCollection(
                    verts[sel], closed=True, facecolors=fc, edgecolors=edge[sel],
                    linewidths=0 if dense and not opn else (1.1 if opn else 0.7),
                    linestyles="--" if opn else "-", zorder=2,
                )
                coll.set_gid("attempts-open" if opn else ("attempts-redelivered" if red else "attempts"))
                if red and hatch:
                    coll.set_hatch("////")
                    if hasattr(coll, "set_hatchcolor"):  # matplotlib >= 3.10
                        coll.set_hatchcolor((1, 1, 1, 0.9))
                        coll.set_hatch_linewidth(1.3)
                ax.add_collection(coll, autolim=False)
        if redelivered.any() and hatch:
            handles.append(Patch(facecolor="#bbbbbb", edgecolor="#777777", hatch="////", label="redelivered"))
        elif redelivered.any():
            strip = _rects(start[redelivered], end[redelivered], y[redelivered] - 0.28, 0.08)
            coll = PolyCollection(strip, closed=True, facecolors=INK, linewidths=0, zorder=3)
            coll.set_gid("redelivered-strip")
            ax.add_collection(coll, autolim=False)
            handles.append(Patch(facecolor="#bbbbbb", edgecolor=INK, linewidth=2.5,
                                 label="redelivered (dark top)"))
        if is_open.any():
            handles.append(Patch(facecolor=(0.6, 0.6, 0.6, 0.35), edgecolor="#666666", linestyle="--",
                                 label="still open (no ack yet)"))

    def marks(x, yv, gid, label, **style):
        if len(x) == 0:
            return
        if len(x) > 200:  # crowded: smaller marks, no outline
            style = {**style, "markersize": style["markersize"] * 0.6}
        elif style.get("markeredgecolor") != "white":  # a white outline underneath keeps it readable
            ax.add_line(Line2D(x, yv, linestyle="none", zorder=5, marker=style["marker"],
                               markersize=style["markersize"], color="white", markeredgecolor="white",
                               markeredgewidth=style.get("markeredgewidth", 1) + 2.4))
        ax.add_line(Line2D(x, yv, linestyle="none", zorder=6, gid=gid, **style))
        handles.append(Line2D([], [], linestyle="none", label=label, **style))

    last_arrival: dict[int, float] = {}  # task -> when it last turned up in a dead-letter, retry or parking queue
    for e in evs:
        if e.kind in ev.ARRIVALS and e.task is not None:
            last_arrival[e.task] = max(e.t, last_arrival.get(e.task, e.t))

    def caught(a) -> bool:  # the refused message turned up in one of those queues afterwards
        return last_arrival.get(a.task, -1.0) >= a.end - 1e-3

    def at_end(kinds, requeue, where=lambda a: True):
        # at the bar's drawn end: a task that failed at once still has a sliver of bar under its mark
        pts = {(max(a.end, a.start + span * _MIN_BAR) - t0, lanes[a.worker]) for a in atts
               if a.outcome in kinds and a.end is not None and bool(a.requeue) == requeue and where(a)}
        return [p[0] for p in pts], [p[1] for p in pts]

    x, yv = at_end((ev.NACK, ev.REJECT), True)
    marks(x, yv, "nack-requeue", "nack/reject → requeued", marker="$↩$", markersize=11,
          color=NACK, markeredgewidth=0.3)
    x, yv = at_end((ev.NACK, ev.REJECT), False, caught)
    marks(x, yv, "nack-caught", "nack/reject → dead-lettered (see its lane)", marker="x", markersize=8,
          markeredgewidth=2.2, color=NACK)
    x, yv = at_end((ev.NACK, ev.REJECT), False, lambda a: not caught(a))
    marks(x, yv, "nack-drop", "nack/reject → dropped", marker="x", markersize=8,
          markeredgewidth=2.2, color=NACK)
    x, yv = at_end((ev.RECONNECT,), False)  # cut off mid-task: not done, back in the queue
    marks(x, yv, "connection-lost", "connection lost → back to the queue", marker="v", markersize=9,
          color=TIMEOUT, markeredgecolor="white", markeredgewidth=0.8)
    for kind, gid, label, style in (
        (ev.CRASH, "crash", "worker crashed", dict(marker="X", markersize=11, color=CRASH,
                                                    markeredgecolor="white", markeredgewidth=0.8)),
        (ev.TIMEOUT, "timeout", "channel closed (timeout)", dict(marker="D", markersize=7, color=TIMEOUT,
                                                                 markeredgecolor="white",
                                                                 markeredgewidth=0.8)),
    ):
        pts = [(e.t - t0, lanes[e.worker]) for e in evs if e.kind == kind and e.worker in lanes]
        marks([p[0] for p in pts], [p[1] for p in pts], gid, label, **style)

    for i, (label, t) in enumerate((moments or {}).items()):  # a dashed line each, named in the legend
        color = _MOMENT_COLORS[i % len(_MOMENT_COLORS)]
        ax.axvline(t - t0, color=color, linestyle="--", linewidth=1.3, zorder=3, gid="moment")
        handles.append(Line2D([], [], color=color, linestyle="--", linewidth=1.3, label=label))

    for i, (kind, _, legend, marker, gid) in enumerate(arrivals):
        _draw_arrivals(ax, evs, kind, len(workers) + i, t0, t_end, legend, marker, gid, max_label_tasks, handles,
                       _inches_per_second(ax, span, own_figure, True))

    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  fontsize=9, handlelength=1.6, borderaxespad=0)
    if n and n <= max_label_tasks:
        # Label only bars wide enough to hold their text (text is slow, and clutters when bars are thin).
        in_per_s = _inches_per_second(ax, span, own_figure, bool(handles))
        for i, a in enumerate(atts):
            text = "?" if a.task is None else str(a.task)
            if a.redelivered:
                text = "↻ " + text
            if (end[i] - start[i]) * in_per_s >= len(text) * 9 * 0.6 / 72 + 0.08:
                ax.text((start[i] + end[i]) / 2, y[i], text, ha="center", va="center",
                        fontsize=9, color=INK, zorder=4, clip_on=True)
    return span


def _inches_per_second(ax, span: float, own_figure: bool, legend: bool) -> float:
    """How wide one second of the time axis is drawn, in inches.  The axes' final width is known only after
    layout, so it is estimated from the figure (a legend beside the plot takes about two inches)."""
    fig_w = ax.figure.get_figwidth()
    axes_w_in = fig_w - 1.1 - (2.0 if legend else 0.0) if own_figure else ax.get_position().width * fig_w
    return max(axes_w_in, 1.0) / (span * 1.03)


def _draw_arrivals(ax, evs, kind, y_lane, t0, t_end, legend, marker, gid, max_label_tasks, handles,
                   in_per_s: float = 0.0) -> None:
    """One mark per message that reached this lane's queue; a retry wait also gets a bar until its redelivery.
    Task numbers label the marks that have room for them: a label closer than ~0.2 in to the last one is left out."""
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D

    here = [e for e in evs if e.kind == kind]
    x = np.array([e.t - t0 for e in here])
    pal, unknown = palette(_task_count(evs))
    colors = np.array([unknown if e.task is None else pal[(e.task - 1) % len(pal)] for e in here])
    colors[:, :3] *= 0.85
    if kind == ev.RETRY_WAIT:
        ends = np.array(_next_deliveries(evs, here), dtype=float)
        ends = np.where(np.isnan(ends), t_end, ends) - t0
        faded = colors.copy()
        faded[:, 3] = 0.35
        rows = _stack(x, np.maximum(ends, x))  # overlapping waits side by side, not one hidden behind another
        n_rows = max(rows, default=0) + 1
        half = 0.22 if n_rows == 1 else 0.36 / n_rows
        ys = y_lane - 0.36 + half * (2 * np.array(rows, dtype=float) + 1) if n_rows > 1 else np.full(len(x), y_lane)
        coll = PolyCollection(_rects(x, np.maximum(ends, x), ys, half * 0.9 if n_rows > 1 else half), closed=True,
                              facecolors=faded, edgecolors=colors, linewidths=0.7, linestyles=":", zorder=2)
        coll.set_gid("retry-wait-bars")
        ax.add_collection(coll, autolim=False)
    ax.scatter(x, np.full(len(x), y_lane), marker=marker, s=60, c=colors, edgecolors=INK,
               linewidths=0.8, zorder=5, gid=gid)
    handles.append(Line2D([], [], linestyle="none", marker=marker, markersize=7, color="#bbbbbb",
                          markeredgecolor=INK, label=legend))
    if len(here) <= max_label_tasks:
        last = None
        for e, xi in sorted(zip(here, x, strict=True), key=lambda pair: pair[1]):
            if e.task is not None and (last is None or (xi - last) * in_per_s >= 0.04 + 0.07 * len(str(e.task))):
                ax.annotate(str(e.task), (xi, y_lane), xytext=(0, 8), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8, color=INK)
                last = xi


def _stack(starts, ends) -> list[int]:
    """A row for each interval, the lowest one free at its start (first fit): rows of overlapping intervals differ."""
    row_ends: list[float] = []
    rows = [0] * len(starts)
    for i in sorted(range(len(starts)), key=lambda k: starts[k]):
        row = next((r for r, end in enumerate(row_ends) if end <= starts[i]), len(row_ends))
        if row == len(row_ends):
            row_ends.append(ends[i])
        else:
            row_ends[row] = ends[i]
        rows[i] = row
    return rows


def _next_deliveries(evs: Sequence[ev.Event], arrivals: Sequence[ev.Event]) -> list[float]:
    """For each arrival in the retry queue: when its task was next delivered to a worker (nan: not yet)."""
    import bisect

    delivered: dict[int | None, list[float]] = {}
    for e in evs:
        if e.kind == ev.DELIVER:
            delivered.setdefault(e.task, []).append(e.t)
    for times in delivered.values():
        times.sort()
    out = []
    for a in arrivals:
        times = delivered.get(a.task, [])
        i = bisect.bisect_left(times, a.t)
        out.append(times[i] if i < len(times) else float("nan"))
    return out


def _rects(x0, x1, y, half_height):
    """(n, 4, 2) vertices of n axis-aligned rectangles, built in numpy (no per-bar Python)."""
    import numpy as np

    verts = np.empty((len(x0), 4, 2))
    verts[:, 0, 0] = verts[:, 1, 0] = x0
    verts[:, 2, 0] = verts[:, 3, 0] = x1
    verts[:, 0, 1] = verts[:, 3, 1] = y + half_height
    verts[:, 1, 1] = verts[:, 2, 1] = y - half_height
    return verts


def _height(n_lanes: int) -> float:
    return min(max(1.3 + _LANE_IN * n_lanes, 2.2), 9.0)


def plot_timeline(events: Iterable[ev.Event], ax=None, title: str | None = None, max_label_tasks: int = 40,
                  lane_labels: Mapping[int, str] | None = None, moments: Mapping[str, float] | None = None):
    """One lane per worker, one bar per attempt at a task; returns the Figure.

    ``events`` is an EventLog or any list of events.  Pass ``ax`` to draw into an
    existing matplotlib Axes (its figure is returned); ``title=""`` for none.
    ``lane_labels`` renames lanes (worker -> label, e.g. ``{1: "worker 1 @ c1"}``); ``moments`` marks
    times of the log's clock with a labelled vertical line (``{"c2 killed": t}``).
    """
    evs = list(events)
    own = ax is None
    if own:
        n_lanes = len(ev.worker_ids(evs)) + len(_arrival_lanes(evs))
        fig = new_figure(WIDTH_IN, _height(n_lanes))
        ax = fig.add_subplot()
    _draw_timeline(ax, evs, title, max_label_tasks, own_figure=own, lane_labels=lane_labels, moments=moments)
    return ax.figure


def compare(runs: dict[str, Iterable[ev.Event]], max_label_tasks: int = 40, title: str | None = None):
    """Several timelines stacked on one shared x axis, each titled by its key; returns the Figure.

    ``compare({"prefetch 0": run0.events, "prefetch 1": run1.events})``
    """
    if not runs:
        raise ValueError("compare() needs at least one run, e.g. compare({'prefetch 1': events})")
    data = {key: list(events) for key, events in runs.items()}
    lanes = [max(len(ev.worker_ids(e)) + len(_arrival_lanes(e)), 1) for e in data.values()]
    height = min(sum(0.75 + _LANE_IN * n for n in lanes) + 0.6, 14.0)
    fig = new_figure(WIDTH_IN, height)
    axes = fig.subplots(len(data), 1, sharex=True, squeeze=False,
                        height_ratios=[n + 1.2 for n in lanes])[:, 0]
    spans = []
    for i, (ax, (key, evs)) in enumerate(zip(axes, data.items(), strict=True)):
        spans.append(_draw_timeline(ax, evs, None, max_label_tasks, label_axis=i == len(data) - 1,
                                    own_figure=True, key=key))
        if i < len(data) - 1:
            ax.tick_params(axis="x", labelbottom=False)
    longest = max(spans)
    axes[0].set_xlim(-0.01 * longest, longest * 1.02)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=12, color=INK)
    return fig


