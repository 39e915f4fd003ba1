"""A private 3-node RabbitMQ cluster: it boots, replicates a quorum queue, survives the leader's node being
killed mid-run with nothing lost, takes the node back, and leaves no process behind.

Real nodes, booted once for the module in a temporary home (never a learner's cluster).  Under root they run
as the unprivileged ``wqlab`` user.  The figures (boot, failover, rejoin) go to artifacts/cluster.json.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika
import pika.exceptions as pe
import pytest

from workqueue_lab import settings
from workqueue_lab.broker.address import port_open
from workqueue_lab.broker.cluster import Cluster

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TASKS = 200
FIGURES: dict[str, float | int] = {}


def _figure(name: str, value: float | int) -> None:
    FIGURES[name] = round(value, 2) if isinstance(value, float) else value
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cluster.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


@pytest.fixture(scope="module")
def cluster():
    home = Path(tempfile.mkdtemp(prefix="wqlab-cluster-", dir="/tmp"))
    home.chmod(0o755)  # the wqlab user (under root) must reach it
    t0 = time.monotonic()
    c = Cluster.start(3, base=home / "cluster", wait=240)
    _figure("boot_s", time.monotonic() - t0)
    pids = {pid for m in c.nodes for pid in m.pids}
    try:
        yield c
    finally:
        pids |= {pid for m in c.nodes for pid in m.pids}  # a member restarted by a test has new ones
        c.stop()
        left = [p for p in pids if _state(p) not in ("gone", "Z")]
        running = [m.name for m in c.nodes if m.pids] + [m.name for m in c.running()]
        shutil.rmtree(home, ignore_errors=True)
        assert left == [], f"cluster processes still running after stop(): {left}"
        assert running == [], f"cluster nodes still running after stop(): {running}"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def test_three_nodes_boot_as_one_cluster(cluster):
    names = [m.name for m in cluster.nodes]
    assert len(set(names)) == 3
    assert cluster.members() == sorted(names)
    ports = [p for m in cluster.nodes for p in (m.amqp_port, m.info.mgmt_port, m.info.dist_port)]
    assert len(set(ports)) == 9, ports
    uid = pwd.getpwnam("wqlab").pw_uid if os.geteuid() == 0 else os.geteuid()
    for m in cluster.nodes:
        assert m.pid is not None
        assert os.stat(f"/proc/{m.pid}").st_uid == uid  # root drops to wqlab, a user runs it as themself
    cookies = {(m.base / ".erlang.cookie").read_text() for m in cluster.nodes}
    assert len(cookies) == 1
    assert FIGURES["boot_s"] < 180


def test_connection_parameters_prefer_each_node_in_turn(cluster):
    for i in range(3):
        params = cluster.connection_parameters(prefer=i)
        assert [p.port for p in params] == [cluster.nodes[(i + k) % 3].amqp_port for k in range(3)]
    broker = cluster.broker()
    seen = []
    for _ in range(3):
        conn = broker.connect()
        seen.append(conn._impl.params.port)  # which member pika chose: not on the public API
        conn.close()
    assert sorted(seen) == sorted(m.amqp_port for m in cluster.nodes)
    assert cluster.can("kill_node") and not cluster.can("set_setting")
    assert "each member" in cluster.why_not("set_setting")


def _declare(cluster, queue):
    conn = pika.BlockingConnection(cluster.connection_parameters())
    try:
        conn.channel().queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        conn.close()


def test_quorum_queue_is_replicated_on_three_nodes(cluster):
    queue = settings.name("cluster_replicated")
    _declare(cluster, queue)
    names = sorted(m.name for m in cluster.nodes)
    assert cluster.replicas(queue) == names
    assert cluster.replicas(queue, online=True) == names
    assert cluster.quorum_leader(queue) in names
    stats = cluster.broker().queue_stats(queue)  # the lab's handle asks a member with rabbitmqctl
    assert (stats.ready, stats.unacked, stats.consumers) == (0, 0, 0)


class Worker(threading.Thread):
    """A plain pika worker: its own connection from the cluster's list (preferring node i), prefetch 10,
    ack after the work; on a lost connection it connects again (pika moves on to a member that answers)."""

    def __init__(self, i, cluster, queue, acks, stop):
        super().__init__(name=f"cluster-worker-{i}", daemon=True)
        self.i, self.cluster, self.queue, self.acks, self.stop = i, cluster, queue, acks, stop
        self.reconnects = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                try:
                    self.consume()
                except (pe.AMQPConnectionError, pe.AMQPChannelError, pe.ConnectionWrongStateError,
                        pe.ChannelWrongStateError, pe.StreamLostError, ConnectionError):
                    self.reconnects += 1
                    time.sleep(0.2)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def consume(self):
        conn = pika.BlockingConnection(self.cluster.connection_parameters(prefer=self.i, heartbeat=5))
        port = conn._impl.params.port  # the member pika connected to
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=10)

            def on_message(ch, method, props, body):
                time.sleep(0.05)  # the work
                ch.basic_ack(method.delivery_tag)
                self.acks.append((time.monotonic(), int(body), port, self.i))

            ch.basic_consume(self.queue, on_message)
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.1)
        finally:
            if conn.is_open:
                try:
                    conn.close()
                except pe.AMQPError:
                    pass


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def test_leader_killed_midrun_nothing_lost_and_node_rejoins(cluster):
    queue = settings.name("cluster_tasks")
    _declare(cluster, queue)
    names = sorted(m.name for m in cluster.nodes)
    leader = cluster.quorum_leader(queue)
    victim = next(m for m in cluster.nodes if m.name == leader)

    conn = pika.BlockingConnection(cluster.connection_parameters())
    ch = conn.channel()
    ch.confirm_delivery()  # basic_publish raises unless the queue's majority has the message
    for n in range(TASKS):
        ch.basic_publish("", queue, str(n).encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()

    acks: list[tuple[float, int, int, int]] = []
    stop = threading.Event()
    workers = [Worker(i, cluster, queue, acks, stop) for i in range(3)]
    for w in workers:
        w.start()
    try:
        _wait(lambda: len(acks) >= 40, 60, "the first 40 acks")
        killed_at = time.monotonic()
        assert cluster.kill_node(victim)
        assert victim.pid is None and victim.pids == []
        _wait(lambda: len({task for _, task, _, _ in acks}) >= TASKS, 180, f"all {TASKS} tasks acked")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert [w.error for w in workers] == [None, None, None]
    assert not any(w.is_alive() for w in workers)

    done = [task for _, task, _, _ in acks]
    assert set(done) == set(range(TASKS))  # none lost
    duplicates = len(done) - TASKS
    after = [t for t, _, port, _ in acks if t > killed_at and port != victim.amqp_port]
    assert after, "no survivor served an ack after the kill"
    _figure("tasks_acked", len(set(done)))
    _figure("duplicates", duplicates)
    _figure("kill_to_first_survivor_ack_s", min(after) - killed_at)
    # The worker that was on the killed node: when it acked again, from a survivor.
    moved = {i for t, _, port, i in acks if t <= killed_at and port == victim.amqp_port}
    assert moved, "no worker was on the killed node"
    back = [t for t, _, port, i in acks if i in moved and t > killed_at and port != victim.amqp_port]
    assert back, "the killed node's worker never acked again from a survivor"
    _figure("kill_to_moved_worker_ack_s", min(back) - killed_at)
    _figure("worker_reconnects", sum(w.reconnects for w in workers))

    _wait(lambda: cluster.quorum_leader(queue) not in ("", leader), 60, "a new leader")
    _figure("kill_to_new_leader_seen_s", time.monotonic() - killed_at)
    new_leader = cluster.quorum_leader(queue)
    assert new_leader in names and new_leader != leader
    assert cluster.members() == sorted(n for n in names if n != leader)
    assert cluster.replicas(queue, online=True) == sorted(n for n in names if n != leader)

    t0 = time.monotonic()
    cluster.start_node(victim, wait=180)
    _wait(lambda: cluster.members() == names, 60, "the node to rejoin")
    _figure("rejoin_s", time.monotonic() - t0)
    assert cluster.replicas(queue) == names
    _wait(lambda: cluster.replicas(queue, online=True) == names, 60, "its replica back online")

    conn = pika.BlockingConnection(cluster.connection_parameters())
    try:
        left = conn.channel().queue_declare(queue=queue, passive=True).method.message_count
    finally:
        conn.close()
    assert left == 0


def test_the_labs_run_works_through_the_cluster_handle(cluster):
    import workqueue_lab as lab
    from workqueue_lab.lessons.callbacks import lesson_callback

    broker = cluster.broker()
    result = lab.run(lesson_callback, ["a.", "b..", "c."], workers=3, broker=broker, progress=False, timeout=60)
    try:
        assert not result.timed_out
        assert sorted(e.task for e in result.of_kind("ack")) == sorted(result.published) == [1, 2, 3]
        assert len({e.worker for e in result.of_kind("ack")}) == 3  # one task each: round-robin
    finally:
        broker.reset()
    assert lab.live_threads() == 0


def test_stop_one_node_gracefully_then_restart_the_cluster_keeps_messages(cluster):
    queue = settings.name("cluster_durable")
    _declare(cluster, queue)
    names = sorted(m.name for m in cluster.nodes)
    conn = pika.BlockingConnection(cluster.connection_parameters())
    ch = conn.channel()
    ch.confirm_delivery()
    for n in range(5):
        ch.basic_publish("", queue, str(n).encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()

    assert cluster.stop_node(2)
    assert cluster.nodes[2].pids == [] and cluster.members() == names[:2]
    t0 = time.monotonic()
    cluster.restart()  # every member down, then all booted in parallel: they wait for each other
    _figure("restart_s", time.monotonic() - t0)
    assert cluster.members() == names
    _wait(lambda: cluster.replicas(queue, online=True) == names, 60, "every replica online")
    conn = pika.BlockingConnection(cluster.connection_parameters())
    try:
        assert conn.channel().queue_declare(queue=queue, passive=True).method.message_count == 5
    finally:
        conn.close()


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_another_process_reuses_the_cluster_and_leaves_it_running(cluster):
    before = [m.pid for m in cluster.nodes]
    out = _python("from workqueue_lab.broker.cluster import Cluster\n"
                  f"c = Cluster.start(3, base={str(cluster.base)!r}, wait=30)\n"
                  "print([m.pid for m in c.nodes])")
    assert out.strip() == str(before)  # nothing booted: the running members were found
    assert [m.pid for m in cluster.nodes] == before  # and its exit stopped nothing: not its cluster
    assert len(cluster.members()) == 3


def test_a_cluster_started_by_a_process_is_stopped_when_it_exits():
    home = Path(tempfile.mkdtemp(prefix="wqlab-cluster-exit-", dir="/tmp"))
    home.chmod(0o755)
    try:
        out = _python("from workqueue_lab.broker.cluster import Cluster\n"
                      f"c = Cluster.start(1, base={str(home / 'cluster')!r}, wait=180)\n"
                      "print(c.nodes[0].pids)")  # and exit without stop(): atexit stops it
        pids = json.loads(out)
        assert pids
        assert [p for p in pids if _state(p) not in ("gone", "Z")] == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_stop_leaves_no_process_and_no_listener(cluster):
    pids = {pid for m in cluster.nodes for pid in m.pids}
    assert len(pids) >= 3
    cluster.stop()
    assert [p for p in pids if _state(p) not in ("gone", "Z")] == []
    assert all(m.pids == [] for m in cluster.nodes)
    assert not any(port_open("127.0.0.1", m.amqp_port) for m in cluster.nodes)
    assert cluster.running() == []


def test_the_cli_shows_and_stops_the_labs_cluster_by_pid(monkeypatch):
    """`workqueue-lab cluster status|stop`, as `node status|stop`: it finds the cluster the lab last started
    beside the private node (here a fresh home's), starts nothing, and stops every member by PID."""
    home = Path(tempfile.mkdtemp(prefix="wqlab-cluster-cli-", dir="/tmp"))
    home.chmod(0o755)
    monkeypatch.setenv("WORKQUEUE_LAB_HOME", str(home))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "workqueue_lab", "cluster", *args], capture_output=True,
                              text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])

    try:
        assert cli("status").returncode == 1 and "no cluster" in cli("status").stdout
        c = Cluster.start(1, wait=180)
        pids = list(c.nodes[0].pids)
        shown = cli("status")
        assert shown.returncode == 0 and f"running (pid {c.nodes[0].pid})" in shown.stdout, shown
        stopped = cli("stop")
        assert stopped.returncode == 0 and "stopped 1 cluster node(s)" in stopped.stdout, stopped
        assert [p for p in pids if _state(p) not in ("gone", "Z")] == []
        after = cli("status")
        assert after.returncode == 1 and "stopped" in after.stdout and "running" not in after.stdout
    finally:
        c = Cluster.existing()
        if c is not None:
            c.stop()
        shutil.rmtree(home, ignore_errors=True)
