"""A real Jupyter kernel: the Stop button (interrupt) and kernel shutdown leave nothing behind.

The kernel is this environment's ``python3`` ipykernel, started with jupyter_client; it inherits
WORKQUEUE_LAB_PREFIX / WORKQUEUE_LAB_TIME_SCALE and talks to the session's private node, so the
broker's connection count belongs to these tests alone.  Connections are counted with
``rabbitmqctl`` (the management API's list lags by up to 5 s).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import wait_until
from private_broker import private_broker

from workqueue_lab import settings
from workqueue_lab.broker.discovery import private_broker as private_broker_of
from workqueue_lab.broker.handle import Broker

REPO = Path(__file__).resolve().parents[1]
QUEUE = "lab_queue"


@pytest.fixture(scope="module")
def node(request):
    with private_broker(request.config) as broker:
        # no management URL: connection_count() asks rabbitmqctl, which is exact and immediate
        yield private_broker_of(broker.control.node, mgmt=False)


@pytest.fixture
def kernel(node):
    """A fresh kernel per test: the shutdown test ends its kernel, and no test may depend on another's."""
    _delete_queue(node)  # what an earlier test left in it (its unacked tasks go back there by design)
    from jupyter_client.manager import KernelManager

    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
           settings.ENV_URL: node.url, settings.ENV_BROKER: "url",
           settings.ENV_MGMT_URL: node.control.node.mgmt_url}
    assert env[settings.ENV_PREFIX] and env[settings.ENV_TIME_SCALE]  # set by conftest, inherited
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(REPO))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
        _delete_queue(node)


def _delete_queue(node: Broker) -> None:
    with node.channel() as ch:
        ch.queue_delete(settings.name(QUEUE))


def _execute(kc, code: str, timeout: float = 60) -> tuple[dict, str]:
    """Run a cell; return its execute_reply content and everything it printed."""
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


def _reply_to(kc, msg_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]


def _children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sorted(int(c) for t in tasks for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split())
    except OSError:
        return []


def _queue(node: Broker) -> tuple[int, int]:
    """(ready, consumers) of the kernel's queue, exactly (AMQP passive declare)."""
    try:
        with node.channel() as ch:
            ok = ch.queue_declare(queue=settings.name(QUEUE), passive=True).method
        return ok.message_count, ok.consumer_count
    except Exception:
        return -1, -1


SETUP = """
import threading, workqueue_lab as lab
lab.reset()
done = []
def callback(ch, method, properties, body):
    lab.lesson_callback(ch, method, properties, body)
    done.append(body)
# 4 quick tasks, then 6 that take 30 s each (at the tests' time scale): far longer than any wait below
TASKS = lab.numbered_tasks([2] * 4 + [600] * 6)
threads_before = threading.active_count()
print(lab.connect().kind, lab.live_threads())
"""


def test_interrupt_stops_the_workers_and_returns_unacked_messages(kernel, node, record_property):
    km, kc = kernel
    content, out = _execute(kc, SETUP)
    assert content["status"] == "ok", out
    assert out.split() == ["url", "0"]

    msg_id = kc.execute(f'result = lab.run(callback, tasks=TASKS, workers=2, queue="{QUEUE}", timeout=300)')
    # both workers hold a long task once the four quick ones are done: 4 of the 6 long ones wait
    assert wait_until(lambda: _queue(node) == (4, 2), timeout=30, interval=0.05), _queue(node)
    t0 = time.monotonic()
    km.interrupt_kernel()
    reply = _reply_to(kc, msg_id, timeout=20)
    stopped_in = time.monotonic() - t0
    print(f"\ninterrupt -> cell reply in {stopped_in:.2f} s")
    record_property("interrupt_reply_s", round(stopped_in, 2))
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    assert stopped_in < 10  # well before the 30 s tasks end: the interrupt, not the work, ended the cell

    content, out = _execute(kc, "print(lab.live_threads(), len(done), threading.active_count() - threads_before)")
    assert content["status"] == "ok", out
    threads, completed, extra_threads = map(int, out.split())
    assert (threads, completed, extra_threads) == (0, 4, 0)
    # the two unacked long tasks went back: ready == total - completed, nobody consuming
    stats = node.queue_stats(settings.name(QUEUE))  # rabbitmqctl here: exact, no statistics lag
    assert (stats.ready, stats.unacked, stats.consumers) == (10 - completed, 0, 0)

    content, out = _execute(kc, "r = lab.run(lab.lesson_callback, workers=2)\n"
                                "print(sorted(r.completed), r.lost, lab.live_threads())")
    assert content["status"] == "ok", out
    assert out.strip().splitlines()[-1] == "[1, 2, 3, 4] [] 0"


def test_kernel_shutdown_closes_every_connection(kernel, node, record_property):
    km, kc = kernel
    baseline = node.connection_count()
    assert baseline is not None
    content, out = _execute(kc, "import workqueue_lab as lab\nlab.reset()\n"
                                f'run = lab.start(lab.lesson_callback, workers=3, queue="{QUEUE}")\n'
                                "run.publish(lab.numbered_tasks([600] * 6))\n"
                                "print(lab.live_threads())")
    assert content["status"] == "ok" and out.strip() == "3", out
    assert wait_until(lambda: node.connection_count() == baseline + 3, timeout=15, interval=0.2)

    t0 = time.monotonic()
    km.shutdown_kernel(now=False)  # what JupyterLab's "Shut Down Kernel" does
    assert wait_until(lambda: node.connection_count() == baseline, timeout=25, interval=0.2)
    closed_in = time.monotonic() - t0
    print(f"\nkernel shutdown -> connections back to {baseline} in {closed_in:.1f} s")
    record_property("shutdown_connections_closed_s", round(closed_in, 1))
    assert not km.is_alive()
    assert closed_in < 25  # before the 30 s tasks end: shutdown closed them, the work did not finish first
    ready, consumers = _queue(node)
    assert (ready, consumers) == (6, 0)  # the three in the workers' hands went back to the queue


@pytest.mark.parametrize("blocking", ["wait", "watch_queue"])
def test_interrupt_during_wait_or_watch_queue_leaves_nothing_behind(kernel, node, blocking):
    """The Stop button while the cell blocks in ``run.wait()`` or inside ``with run.watch_queue():``."""
    km, kc = kernel
    content, out = _execute(kc, SETUP)
    assert content["status"] == "ok", out
    baseline = node.connection_count()
    assert baseline is not None
    body = {"wait": "run.wait(timeout=300)",
            "watch_queue": "with run.watch_queue(every=0.1):\n    run.wait(timeout=300)"}[blocking]
    msg_id = kc.execute(f'run = lab.start(callback, workers=2, queue="{QUEUE}")\n'
                        "run.publish(TASKS)\n" + body)
    assert wait_until(lambda: _queue(node) == (4, 2), timeout=30, interval=0.05), _queue(node)
    km.interrupt_kernel()
    reply = _reply_to(kc, msg_id, timeout=20)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    content, out = _execute(kc, "run.stop()\n"
                                "print(lab.live_threads(), len(done), threading.active_count() - threads_before)")
    assert content["status"] == "ok", out
    assert tuple(map(int, out.split())) == (0, 4, 0)  # no worker, no watcher thread left in the kernel
    assert wait_until(lambda: node.connection_count() == baseline, timeout=15, interval=0.2), node.connection_count()
    def counts() -> tuple:
        stats = node.queue_stats(settings.name(QUEUE))
        return stats.ready, stats.unacked, stats.consumers

    # the two long tasks in hand went back (the queue takes them back a moment after the channels close)
    assert wait_until(lambda: counts() == (6, 0, 0), timeout=10, interval=0.2), counts()


def test_interrupt_during_start_leaves_no_worker_behind(kernel, node):
    """The Stop button while ``lab.start()`` is still starting its workers (processes: each takes a Python
    start-up, so there is time to press it after the first one consumes and before the last one does)."""
    km, kc = kernel
    content, out = _execute(kc, SETUP + "import os\n"
                            "def children():\n"
                            "    me = f'/proc/{os.getpid()}/task'\n"
                            "    return sorted(int(p) for t in os.listdir(me)\n"
                            "                  for p in open(f'{me}/{t}/children').read().split())\n"
                            "print(children())")
    assert content["status"] == "ok", out
    assert out.split()[-1] == "[]", out
    baseline = node.connection_count()
    assert baseline is not None
    msg_id = kc.execute('run = lab.start("workqueue_lab.lessons.callbacks:lesson_callback", workers=6, '
                        f'queue="{QUEUE}", processes=True)')
    # Press Stop once the worker processes exist, while their interpreters still start (all six at once, on
    # this machine's cores): waiting for the first consumer instead lost the race on a quick machine, where
    # the other five registered in the milliseconds a look at the queue and the interrupt take.
    kernel_pid = km.provisioner.pid
    assert wait_until(lambda: len(_children_of(kernel_pid)) >= 6, timeout=60, interval=0.01), _children_of(kernel_pid)
    km.interrupt_kernel()
    reply = _reply_to(kc, msg_id, timeout=30)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply  # still starting: not 6 yet
    content, out = _execute(kc, "print(lab.live_threads(), threading.active_count() - threads_before, "
                                "'run' in globals(), children())")
    assert content["status"] == "ok", out
    assert out.strip() == "0 0 False []", out  # no worker thread, process or half-made Run left in the kernel
    assert wait_until(lambda: node.connection_count() == baseline, timeout=15, interval=0.2), node.connection_count()
    assert _queue(node)[1] == 0  # nobody consumes any more
