"""The private RabbitMQ node, for real: boot, reuse, loopback only, management, restart, app env, stop.

One node for the whole module (booting takes ~5 s), in a temporary WORKQUEUE_LAB_HOME so a
learner's own node is never touched.  Under root (CI) the node runs as the unprivileged user
``wqlab``, so the temporary home must be reachable by that user.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pika
import pytest

from workqueue_lab import settings
from workqueue_lab.broker import node as private_node
from workqueue_lab.errors import LabError

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workqueue_lab", "node", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def _beams_in(base: Path) -> list[int]:
    """Live beam.smp processes whose working directory is the node's base dir."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if comm.startswith("beam") and cwd == str(base.resolve()):
            found.append(int(entry))
    return found


def _listen_addresses(port: int) -> list[str]:
    """Local addresses of every TCP socket listening on port (ss -ltn, as a person would check)."""
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        local = line.split()[3]  # State Recv-Q Send-Q Local:Port Peer:Port
        addr, _, p = local.rpartition(":")
        if p == str(port):
            addrs.append(addr)
    return addrs


def _channel(url: str):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    return conn, conn.channel()


@pytest.fixture(scope="module")
def node_home():
    # mkdtemp directly under /tmp (not pytest's 0700 tmp tree): 'wqlab' must be able to reach it.
    home = Path(tempfile.mkdtemp(prefix="wqlab-node-test-", dir="/tmp"))
    home.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(settings.ENV_HOME, str(home))
        yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def booted(node_home):
    assert private_node.server_script() is not None, "rabbitmq-server is not installed (see .ci/run)"
    t0 = time.monotonic()
    # What Binder's start script does: launch in the background and return at once...
    res = _cli("start", "--background")
    launch = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert "booting" in res.stdout and "amqp://guest:guest@127.0.0.1:" in res.stdout
    # "at once": it returned before the node answers (a boot takes seconds), whatever the machine's load
    port = int(res.stdout.split("amqp://guest:guest@127.0.0.1:")[1].split("/")[0])
    assert not _port_answers(port), f"start --background waited for the boot ({launch:.1f} s)"
    # ... and what the first notebook cell then does: wait for it.
    info = private_node.wait_until_ready(90)
    assert info.amqp_port == port
    print(f"\nprivate node cold start: launch {launch:.2f} s, ready after {time.monotonic() - t0:.1f} s")
    try:
        yield info
    finally:
        private_node.stop()
        for p in _beams_in(info.base):  # belt and braces: CI must be left clean
            os.kill(p, 9)


@pytest.fixture
def node(booted):
    """The module's node, running (started again if a test before this one stopped it: any order works)."""
    info = private_node.start(wait=90)
    assert info == booted
    return info


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_node_runs_unprivileged_and_carries_a_message(node):
    pid = private_node.pid()
    assert pid is not None and pid in _beams_in(node.base)
    uid = _uid_of(pid)
    assert uid != 0, "the node must not run as root"
    if os.geteuid() == 0:
        assert uid == pwd.getpwnam(private_node.DEFAULT_USER).pw_uid
    else:
        assert uid == os.geteuid()
    assert node.nodename.startswith("wqlab-") and node.nodename.endswith("@localhost")
    assert node.base == Path(os.environ[settings.ENV_HOME]) / "node"

    queue = f"pn-test-{uuid.uuid4().hex[:8]}"
    conn, ch = _channel(node.url)
    try:
        ch.queue_declare(queue, auto_delete=True)
        ch.basic_publish("", queue, b"hello private node")
        for _ in range(50):
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method:
                break
            time.sleep(0.05)
        assert body == b"hello private node"
    finally:
        conn.close()


def test_second_start_reuses_the_node(node):
    pid = private_node.pid()
    t0 = time.monotonic()
    again = private_node.start()
    warm = time.monotonic() - t0
    print(f"\nwarm reuse: {warm * 1000:.0f} ms")
    assert again == node  # same nodename, same three ports, same base
    assert private_node.pid() == pid  # the same OS process, not a second node
    assert warm < 2
    assert private_node.running() == node
    # Another process (a second kernel) finds it through the state file.
    res = _cli("url")
    assert res.returncode == 0 and res.stdout.strip() == node.url
    res = _cli("start", "--background")
    assert res.returncode == 0 and "is running" in res.stdout
    assert private_node.pid() == pid
    res = _cli("status")  # for a person: the password masked, as everywhere (`node url` is for programs)
    assert res.returncode == 0 and f"guest:***@127.0.0.1:{node.amqp_port}" in res.stdout
    assert "guest:guest@" not in res.stdout


def test_listeners_are_on_loopback_only(node):
    state = json.loads((node.base / "state.json").read_text())
    assert (state["amqp_port"], state["mgmt_port"], state["dist_port"]) == (
        node.amqp_port, node.mgmt_port, node.dist_port)
    for name, port in (("amqp", node.amqp_port), ("management", node.mgmt_port), ("dist", node.dist_port)):
        addrs = _listen_addresses(port)
        assert addrs, f"nothing listens on the {name} port {port}"
        assert set(addrs) == {"127.0.0.1"}, f"{name} port {port} is bound on {addrs}"
    conf = (node.base / "rabbitmq.conf").read_text()
    assert f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}" in conf
    assert "management.tcp.ip = 127.0.0.1" in conf
    assert "loopback_users" not in conf.replace("# loopback_users is left at its default", "")
    assert (node.base / "enabled_plugins").read_text().strip() == "[rabbitmq_management]."


def test_management_api_answers_for_guest(node):
    req = urllib.request.Request(f"{node.mgmt_url}/api/overview")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        overview = json.loads(resp.read())
    assert overview["node"] == node.nodename
    assert overview["rabbitmq_version"]


def test_memory_is_capped_absolutely(node):
    res = private_node.ctl("eval", "vm_memory_monitor:get_memory_limit().")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.strip()) == private_node.DEFAULT_MEMORY_MB * 1024 * 1024


def test_app_env_round_trips(node):
    before = private_node.get_app_env("consumer_timeout")
    try:
        private_node.set_app_env("consumer_timeout", 3000)
        assert private_node.get_app_env("consumer_timeout") == 3000
    finally:
        private_node.set_app_env("consumer_timeout", before if before is not None else 1_800_000)
    with pytest.raises(LabError):
        private_node.set_app_env("consumer_timeout); halt(", 1)


def test_restart_keeps_durable_queue_and_persistent_message(node):
    queue = f"pn-durable-{uuid.uuid4().hex[:8]}"
    conn, ch = _channel(node.url)
    try:
        ch.confirm_delivery()
        ch.queue_declare(queue, durable=True)
        ch.basic_publish("", queue, b"survives", pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()
    old_pid = private_node.pid()

    t0 = time.monotonic()
    info = private_node.restart()
    print(f"\nrestart: {time.monotonic() - t0:.1f} s")
    assert info == node  # same ports, same name, same data dir
    assert private_node.pid() not in (None, old_pid)

    conn, ch = _channel(info.url)
    try:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        assert method is not None and body == b"survives"
        ch.queue_delete(queue)
    finally:
        conn.close()


def test_unreachable_home_is_a_lab_error(node, monkeypatch):
    if os.geteuid() == 0:
        # 'wqlab' cannot enter a root-only directory: refuse before launching anything.
        closed = Path(tempfile.mkdtemp(prefix="wqlab-closed-", dir="/tmp"))  # mode 0700
        try:
            monkeypatch.setenv(settings.ENV_HOME, str(closed))
            with pytest.raises(LabError, match="cannot reach"):
                private_node.start(wait=0)
            assert not (closed / "node" / "state.json").exists()
        finally:
            shutil.rmtree(closed, ignore_errors=True)
    else:
        with pytest.raises(LabError, match="needs root"):
            private_node.start(wait=0, run_as="nobody")


def test_stop_leaves_no_beam_process(node):
    pid = private_node.pid()
    assert pid is not None
    t0 = time.monotonic()
    assert private_node.stop() is True
    print(f"\nstop: {time.monotonic() - t0:.1f} s")
    assert _beams_in(node.base) == []
    assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    assert private_node.running() is None
    assert private_node.stop() is False
    assert _cli("url").returncode == 1


def _ready_or_none(url: str, queue: str) -> int | None:
    conn, ch = _channel(url)
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if conn.is_open:
            conn.close()


def _workqueue_lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workqueue_lab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_cli_broker_reset_deletes_the_lab_queue_and_spares_a_foreign_one(node):
    """`workqueue-lab broker reset` on this test's node: the learner's task_queue (with the run's prefix) goes,
    a task_queue of another program (no prefix) keeps its messages."""
    mine, foreign = settings.name("task_queue"), "task_queue"
    assert mine != foreign  # the run's prefix (conftest) tells them apart
    conn, ch = _channel(node.url)
    try:
        for queue, n in ((mine, 1), (foreign, 2)):
            ch.queue_declare(queue, durable=True)
            for i in range(n):
                ch.basic_publish("", queue, f"Task {i}.".encode(), pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()
    try:
        res = _workqueue_lab("broker", "reset", "--force", "private")
        assert res.returncode == 0, res.stderr
        deleted = res.stdout.strip().removeprefix("Deleted: ").split(", ")
        assert mine in deleted and foreign not in deleted, res.stdout
        assert _ready_or_none(node.url, mine) is None
        assert _ready_or_none(node.url, foreign) == 2
    finally:
        conn, ch = _channel(node.url)
        ch.queue_delete(foreign)
        conn.close()


@pytest.mark.parametrize("command, said, again", [
    (("broker", "stop"), "Stopped the lab's private RabbitMQ node.", "No private node of the lab was running"),
    (("node", "stop"), "stopped", "no private node was running"),
])
def test_cli_stop_stops_this_node_and_only_it(node, command, said, again):
    pid = private_node.pid()
    assert pid is not None
    res = _workqueue_lab(*command)
    assert res.returncode == 0 and res.stdout.strip() == said, (res.stdout, res.stderr)
    assert _beams_in(node.base) == [] and private_node.running() is None
    assert not _port_answers(node.amqp_port)
    res = _workqueue_lab(*command)
    assert res.returncode == 0 and again in res.stdout, res.stdout
    # the system's RabbitMQ (which the lab did not start) still answers
    conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
    assert conn.is_open
    conn.close()
