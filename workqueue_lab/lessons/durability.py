"""Plumbing for notebook 04 (durability): a broker the lab may restart, a restart in the background,
the names of the notebook's queues, and the small tables and charts it shows.

The pika calls the lesson is about (queue_declare, basic_publish, confirm_delivery) stay in the
notebook; this module only does what a learner should not have to write.

``restartable_broker`` and ``restart`` are the one place that decides which broker this notebook restarts:
only the lab's own private node (``PrivateControl``).  ``broker.control.can("restart")`` is not enough on
its own: as root, the system's RabbitMQ answers to rabbitmqctl too, but other programs use it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import versions
from ..broker import registry
from ..errors import LabError
from ..record import events as ev
from .notes import not_checked  # noqa: F401 -- notebook 04 calls durability.not_checked(...)

if TYPE_CHECKING:
    from ..broker.handle import Broker
    from ..views.tables import Table

logger = logging.getLogger(__name__)

__all__ = [
    "Outage", "QUEUES", "RATE_QUEUE", "CONFIRM_QUEUE", "REFUSED_QUEUE", "not_checked",
    "restartable_broker", "restart", "restart_when", "transient_queues_permitted",
    "outage", "shade_outage", "survival_table", "plot_rates",
]

# The queues the notebook declares (base names; the learner's prefix is added).  Registered so that
# reset() deletes them.  Each combination: (durable queue?, persistent messages?, queue type).
QUEUES: dict[str, tuple[bool, bool, str]] = {
    "durable_persistent": (True, True, "classic"),
    "durable_transient": (True, False, "classic"),
    "nondurable_persistent": (False, True, "classic"),
    "nondurable_transient": (False, False, "classic"),
    "quorum_persistent": (True, True, "quorum"),
    "quorum_transient": (True, False, "quorum"),
}
RATE_QUEUE = "publish_rate"
CONFIRM_QUEUE = "confirmed_tasks"
REFUSED_QUEUE = "quorum_nondurable"  # part 5 tries to declare it; RabbitMQ refuses, but should one accept it...
registry.register([*QUEUES, RATE_QUEUE, CONFIRM_QUEUE, REFUSED_QUEUE])




# --- a broker the lab may restart -------------------------------------------------------------

def restartable_broker(broker: Broker | None = None) -> Broker | None:
    """A broker the lab may restart: ``broker`` (default: the learner's) if it is the lab's private node,
    else the private node, started or reused, said in one sentence.  Where none can be had, one
    ``NOT CHECKED`` line and None.

    Only the lab's own node qualifies: the system's RabbitMQ may answer to rabbitmqctl (as root), but
    other programs and people use it, so the lab never restarts it.
    """
    from ..broker import node as private_node
    from ..broker.discovery import find_broker, private_broker

    broker = broker or find_broker()
    if labs_own(broker):
        return broker
    where = f"RabbitMQ at {broker.masked_url} ({broker.kind})"
    if why := private_node.available():
        not_checked(f"{where} is not the lab's to restart, and no private node can be started here ({why}); "
                    "run this notebook on Binder or install rabbitmq-server.")
        return None
    was_running = private_node.running() is not None
    try:
        info = private_node.start()
    except LabError as exc:
        not_checked(f"{where} is not the lab's to restart and the private node did not start: {exc}")
        return None
    node_broker = private_broker(info)
    print(f"{where} is shared, so the lab never restarts it; the restarts in this notebook happen on the lab's "
          f"private node at {node_broker.masked_url} ({'already running' if was_running else 'started now'}).")
    return node_broker


def transient_queues_permitted(broker: Broker) -> bool:
    """Whether this node lets a client declare a non-durable queue that is not exclusive.

    RabbitMQ calls that the deprecated feature ``transient_nonexcl_queues``: permitted by default up to 4.2
    (a node's configuration may deny it), denied by default from 4.3.  The node says which applies; a node
    that cannot say (3.x has no such switch, or the lab cannot ask it) is judged by the version table.
    """
    if broker.control.can("ctl"):
        answer = broker.control.ctl("eval", "rabbit_deprecated_features:is_permitted(transient_nonexcl_queues).")
        if answer.returncode == 0 and answer.stdout.strip() in ("true", "false"):
            return answer.stdout.strip() == "true"
    return not versions.applies("transient_nonexcl_queues_refused", broker.version)


def restart(broker: Broker, kill: bool = False) -> float:
    """Restart ``broker`` (one ``restartable_broker`` returned); returns how long it took in seconds.

    ``kill=True`` ends the node with SIGKILL first, as a crash would: no clean shutdown that finishes its
    writes or closes its connections.  Then it starts again on the same ports and data.
    """
    if not labs_own(broker):
        raise LabError(f"The lab does not restart the {broker.kind} broker at {broker.masked_url}; "
                       "use the broker durability.restartable_broker() returns.")
    started = time.monotonic()
    if kill:
        broker.control.kill()  # SIGKILL by PID
    broker.restart()  # broker.control.restart(): (stop and) start the node, same ports, same data
    return time.monotonic() - started


def data_dir(broker: Broker) -> Path | None:
    """Where the lab's private node keeps its messages (None for a broker that is not the lab's node)."""
    return getattr(getattr(broker.control, "node", None), "base", None)


def sync_seconds(directory: Path, rounds: int = 21) -> float:
    """The median time the file system under ``directory`` takes to make a small write durable (``os.fsync``):
    what a confirm for a persistent message waits for, once per message when the publisher waits for each."""
    import os
    import statistics
    import tempfile

    fd, path = tempfile.mkstemp(dir=directory, prefix=".sync-probe-")
    try:
        times = []
        for _ in range(rounds):
            os.write(fd, b"x" * 512)
            began = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - began)
        return statistics.median(times)
    finally:
        os.close(fd)
        os.unlink(path)


def labs_own(broker: Broker) -> bool:
    """The lab's own private node, which nothing but the lab uses, and which it may therefore restart."""
    # the lab may kill it only if it started it (a private node or its container), and nobody else uses those
    return broker.control.can("kill") and broker.control.can("restart")


@dataclass
class Outage:
    """When a background restart began and ended (time.monotonic() seconds), and what went wrong, if anything."""

    began: float | None = None
    ended: float | None = None
    error: BaseException | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float | None:
        return None if self.began is None or self.ended is None else self.ended - self.began


@contextlib.contextmanager
def restart_when(broker: Broker, condition: Callable[[], bool], timeout: float = 60.0,
                 kill: bool = False) -> Iterator[Outage]:
    """Restart ``broker`` in a background thread as soon as ``condition()`` is true, while the block runs
    (``kill=True``: SIGKILL it first, a crash rather than a clean stop).

    The thread talks to no broker connection (it only stops and starts the node's processes), so the
    block's own pika connection stays in its thread.  Leaving the block waits for the restart to end;
    a restart that failed raises there.  If the condition never came true within ``timeout`` s, the
    broker is not restarted and ``Outage.began`` stays None.
    """
    outage = Outage()
    cancelled = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if cancelled.is_set() or time.monotonic() > deadline:
                return
            time.sleep(0.002)
        outage.began = time.monotonic()
        try:
            restart(broker, kill=kill)
        except BaseException as exc:  # handed to the main thread when the block ends
            outage.error = exc
        outage.ended = time.monotonic()

    thread = threading.Thread(target=run, name="workqueue-lab restart", daemon=True)
    thread.start()
    try:
        yield outage
    finally:
        cancelled.set()
        thread.join(180)
    if outage.error is not None:
        raise outage.error


# --- reading what happened ------------------------------------------------------------------------

def outage(events: Sequence[ev.Event]) -> tuple[float, float] | None:
    """(first RECONNECT, first RESTART after it): from the moment a worker lost the broker to the moment
    the first one consumed again, in the run's clock.  None if no worker lost the broker."""
    lost = next((e.t for e in events if e.kind == ev.RECONNECT), None)
    if lost is None:
        return None
    back = next((e.t for e in events if e.kind == ev.RESTART and e.t > lost), None)
    return lost, (back if back is not None else max(e.t for e in events))


def shade_outage(fig, events: Sequence[ev.Event], label: str = "no worker connected"):
    """Shade the outage (see ``outage``: from the first lost connection to the first worker consuming again,
    which is not the whole restart) on a timeline figure (``plot_timeline``'s); returns the figure."""
    gap = outage(events)
    if gap is None:
        return fig
    publishes = [e.t for e in events if e.kind == ev.PUBLISH]
    origin = min(publishes) if publishes else min(e.t for e in events)  # the timeline's x = 0
    ax = fig.axes[0]
    start, end = gap[0] - origin, gap[1] - origin
    ax.axvspan(start, end, color="#d9d9d9", alpha=0.6, zorder=0.5, linewidth=0)
    ax.text((start + end) / 2, 0.02, f"{label}\n{end - start:.1f} s", transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=9, color="#555555")
    return fig


def survival_table(before: Mapping[str, int | str | None], after: Mapping[str, int | str | None],
                   queues: Mapping[str, tuple[bool, bool, str]] = QUEUES) -> Table:
    """One row per queue: how it was declared, messages before and after the restart, and what survived.

    A count is an int, None for "the queue is gone", or a string saying why it could not be declared.
    """
    from ..views.tables import Table

    def shown(count):
        return "queue gone" if count is None else count

    rows = []
    for name, (durable, persistent, kind) in queues.items():
        b, a = before.get(name), after.get(name)
        if isinstance(b, str):
            verdict = "cannot be declared"
        elif isinstance(a, int) and isinstance(b, int) and a == b:
            verdict = "all"
        elif isinstance(a, int) and a > 0:
            verdict = f"{a} of {b}"
        else:
            verdict = "nothing"
        rows.append({"queue": f"{kind}, {'durable' if durable else 'non-durable'}",
                     "messages": "persistent" if persistent else "transient",
                     "before": b if isinstance(b, str) else shown(b), "after restart": shown(a),
                     "survived": verdict})
    return Table(rows, caption="What one broker restart kept")


def plot_rates(rates: Mapping[str, float], title: str | None = None):
    """A bar per way of publishing (messages per second), the number on each bar; returns the Figure."""
    from ..views.figure import new_figure, tidy_axes

    fig = new_figure(8.4, 3.2)
    ax = fig.add_subplot()
    labels = list(rates)
    values = [rates[k] for k in labels]
    colours = ["#9ecae1" if "confirm" not in k else ("#4c78a8" if "each" in k else "#2ca02c") for k in labels]
    bars = ax.barh(range(len(labels)), values, color=colours)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.0f}/s", (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=9)
    ax.set_xlim(0, max(values, default=1) * 1.2)
    ax.set_xlabel("messages published per second (higher is faster)")
    tidy_axes(ax, grid="x")
    if title:
        ax.set_title(title, loc="left", fontsize=11)
    return fig
