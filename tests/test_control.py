"""What the lab may do with each kind of broker (``broker.control``), asked of real brokers.

* url (an explicit URL to the system node), local (the system node on 5672), private (the session's
  private node), docker (no engine here: a DockerControl without a container): ``can()`` answers as
  documented, and every refused action raises ``CannotControl`` whose message is one sentence that
  names an alternative;
* the private node restarts with its durable queue and confirmed persistent message intact, and
  ``kill()`` SIGKILLs its VM by PID (restarted afterwards for the later tests);
* the system node's state is never changed: only refusals, reads and rabbitmqctl's read-only calls;
* no broker-kind switch outside control.py/discovery.py; ``import workqueue_lab`` loads no pika;
  the management API is reached without the environment's proxy; one vhost parser.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pika
import pytest
from helpers import wait_until
from private_broker import private_broker

from workqueue_lab import settings
from workqueue_lab.broker import address, discovery, management
from workqueue_lab.broker.control import ACTIONS, CannotControl, DockerControl, UrlControl
from workqueue_lab.broker.handle import Broker
from workqueue_lab.errors import LabError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workqueue_lab"
BROKER_KINDS = {"url", "local", "docker", "private", "cluster"}


def _refused(control, action: str) -> str:
    """Call ``action`` on ``control`` and return the CannotControl message it must raise."""
    calls = {
        "stats": lambda: control.require("stats"),
        "restart": lambda: control.restart(wait=1),
        "stop": control.stop,
        "kill": control.kill,
        "settings": lambda: control.set_setting("consumer_timeout", 1_800_000),
        "ctl": lambda: control.ctl("status"),
    }
    with pytest.raises(CannotControl) as info:
        calls[action]()
    if action == "settings":
        with pytest.raises(CannotControl):
            control.get_setting("consumer_timeout")
    return str(info.value)


def _assert_one_sentence(message: str) -> None:
    assert message.endswith("."), message
    assert "\n" not in message, message
    assert ". " not in message, f"more than one sentence: {message}"
    assert "use " in message or "run " in message, f"no alternative named: {message}"


def _ctl_reaches_system_node() -> bool:
    """Independently of the lab: can rabbitmqctl reach the node on 5672 as this user?"""
    if not shutil.which("rabbitmqctl"):
        return False
    proc = subprocess.run(["rabbitmqctl", "-q", "eval", "ok."], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    return proc.returncode == 0


# --- url --------------------------------------------------------------------------------------------------


def test_a_url_broker_can_do_nothing_but_connect(clean):
    broker = discovery._from_url(settings.LOCAL_URL)  # the system node, as a shared URL
    control = broker.control
    assert isinstance(control, UrlControl) and broker.kind == "url"
    assert [control.can(a) for a in ACTIONS] == [False] * len(ACTIONS)
    for action in ACTIONS:
        message = _refused(control, action)
        assert message == control.why_not(action)
        _assert_one_sentence(message)
        assert "shared URL" in message and "WORKQUEUE_LAB_BROKER=private" in message
    assert control.node_pid() is None
    # and it still works as a broker: counts come from the management API or AMQP
    queue = settings.name("task_queue")
    with broker.channel() as ch:
        ch.queue_declare(queue=queue, durable=True)
        ch.basic_publish("", queue, b"one.")
    assert wait_until(lambda: broker.queue_stats(queue).ready == 1, timeout=10)
    with pytest.raises(LabError, match="not a broker action"):
        control.can("reboot")


# --- local ------------------------------------------------------------------------------------------------


def test_the_system_node_is_never_stopped_or_killed_by_the_lab(clean):
    broker = discovery.local_broker()
    control = broker.control
    assert broker.kind == "local"
    reaches = _ctl_reaches_system_node()
    documented = {"stats": reaches, "restart": reaches, "stop": False, "kill": False, "settings": reaches,
                  "ctl": reaches}
    assert {a: control.can(a) for a in ACTIONS} == documented
    for action in [a for a, ok in documented.items() if not ok]:
        message = _refused(control, action)
        _assert_one_sentence(message)
        assert "127.0.0.1:5672" in message and "WORKQUEUE_LAB_BROKER=private" in message
    if reaches:  # read-only calls: the shared node's state stays as it is
        assert control.why_not("ctl") == ""
        ours = subprocess.run(["rabbitmqctl", "-q", "eval", "application:get_env(rabbit, consumer_timeout)."],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        setting = control.get_setting("consumer_timeout")
        assert ours == ("undefined" if setting is None else f"{{ok,{setting}}}")
        pid = control.node_pid()
        assert pid is not None and Path(f"/proc/{pid}/comm").read_text().startswith("beam")
        queue = settings.name("task_queue")
        with broker.channel() as ch:
            ch.queue_declare(queue=queue, durable=True)
            ch.basic_publish("", queue, b"one.")
        stats = broker._stats_from_ctl(queue)  # live, from rabbitmqctl: no statistics lag
        assert stats is not None and (stats.ready, stats.unacked) == (1, 0)


# --- docker -----------------------------------------------------------------------------------------------


def test_docker_without_a_container_says_what_to_do():
    control = DockerControl("amqp://guest:guest@localhost:45672/%2F")
    assert control.kind == "docker"
    assert [control.can(a) for a in ACTIONS] == [False] * len(ACTIONS)
    for action in ACTIONS:
        message = _refused(control, action)
        _assert_one_sentence(message)
        assert "WORKQUEUE_LAB_BROKER=docker" in message
    assert control.node_pid() is None


def test_docker_with_a_container_restarts_stops_and_kills_but_runs_no_rabbitmqctl():
    control = DockerControl("amqp://guest:guest@localhost:45672/%2F", container=object())  # never called
    assert {a for a in ACTIONS if control.can(a)} == {"restart", "stop", "kill"}
    for action in ("stats", "settings", "ctl"):
        message = _refused(control, action)
        _assert_one_sentence(message)
        assert "docker exec" in message


# --- private ----------------------------------------------------------------------------------------------


def _declare_with_one_message(broker: Broker, queue: str, body: bytes) -> None:
    with broker.channel() as ch:
        ch.confirm_delivery()  # confirmed = on disk: it must survive a SIGKILL too
        ch.queue_declare(queue=queue, durable=True)
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))


def _ready(broker: Broker, queue: str) -> int:
    with broker.channel() as ch:
        return ch.queue_declare(queue=queue, passive=True).method.message_count


def test_the_private_node_can_do_everything(request):
    with private_broker(request.config) as broker:
        control = broker.control
        assert broker.kind == "private"
        assert all(control.can(a) for a in ACTIONS)
        assert [control.why_not(a) for a in ACTIONS] == [""] * len(ACTIONS)
        before = control.get_setting("channel_tick_interval")
        control.set_setting("channel_tick_interval", 45_000)
        try:
            assert control.get_setting("channel_tick_interval") == 45_000
        finally:
            control.set_setting("channel_tick_interval", before or 60_000)
        assert control.ctl("eval", "1 + 1.").stdout.strip() == "2"


def test_the_private_node_restarts_and_its_durable_queue_survives(request):
    queue = settings.name(f"control-restart-{uuid.uuid4().hex[:6]}")
    with private_broker(request.config) as broker:
        _declare_with_one_message(broker, queue, b"kept.")
        pid = broker.control.node_pid()
        broker.restart(wait=90)
        assert broker.control.node_pid() not in (None, pid)
        assert _ready(broker, queue) == 1
        with broker.channel() as ch:
            ch.queue_delete(queue=queue)


def test_kill_sigkills_the_private_node_by_pid_and_restart_brings_it_back(request):
    queue = settings.name(f"control-kill-{uuid.uuid4().hex[:6]}")
    with private_broker(request.config) as broker:
        control = broker.control
        _declare_with_one_message(broker, queue, b"survives a crash.")
        pid = control.node_pid()
        assert pid is not None and Path(f"/proc/{pid}/comm").read_text().startswith("beam")
        control.kill()
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        assert control.node_pid() is None
        assert not address.port_open(*address.host_port(broker.url))
        with pytest.raises(LabError, match="nothing to kill"):
            control.kill()
        control.restart(wait=90)
        assert _ready(broker, queue) == 1  # durable queue, confirmed persistent message: both back
        with broker.channel() as ch:
            ch.queue_delete(queue=queue)


# --- the seams ----------------------------------------------------------------------------------------------


def _kind_switches(path: Path) -> list[str]:
    """Comparisons of something named ``kind`` (or ``force``) with a broker kind's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        names = {s.attr if isinstance(s, ast.Attribute) else getattr(s, "id", None) for s in sides}
        constants = set()
        for s in sides:
            items = s.elts if isinstance(s, (ast.Tuple, ast.List, ast.Set)) else [s]
            constants |= {i.value for i in items if isinstance(i, ast.Constant)}
        if names & {"kind", "force"} and constants & BROKER_KINDS:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_broker_kind_switch_outside_control_and_discovery():
    allowed = {PACKAGE / "broker" / "control.py", PACKAGE / "broker" / "discovery.py"}
    files = [p for p in [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").glob("*.py")] if p not in allowed]
    assert len(files) > 30
    assert [s for p in files for s in _kind_switches(p)] == []
    assert _kind_switches(PACKAGE / "broker" / "discovery.py"), "the check finds nothing at all: it is broken"


def test_importing_the_lab_and_its_broker_layer_loads_no_pika():
    code = ("import sys, workqueue_lab, workqueue_lab.broker, workqueue_lab.broker.control, "
            "workqueue_lab.broker.discovery; print(sorted(m for m in ('pika', 'matplotlib', 'ipywidgets') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_management_api_is_reached_without_the_environments_proxy(clean, monkeypatch):
    assert clean.mgmt_url, "the test broker needs its management API"
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: a proxied request would fail
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    overview = clean.management_api("overview")
    assert isinstance(overview, dict) and overview.get("rabbitmq_version")
    request = management.build_request("http://bob:s3cret@127.0.0.1:15672", "queues/%2F/q")
    assert request.full_url == "http://127.0.0.1:15672/api/queues/%2F/q"  # credentials only in the header
    assert management.get("http://guest:guest@127.0.0.1:9", "overview") is None  # never raises


def test_one_vhost_parser():
    assert address.vhost("amqp://guest:guest@127.0.0.1:5672/%2F") == "/"
    assert address.vhost("amqp://guest:guest@127.0.0.1:5672") == "/"
    assert address.vhost("amqp://h/lab") == "lab"
    assert address.vhost("amqp://h/a%2Fb") == "a/b"
    assert Broker("amqp://h:1/lab").vhost == "lab"


def test_a_first_boot_whose_port_was_taken_meanwhile_picks_new_ports(monkeypatch):
    """The race seen when two nodes start at once: ports picked free, taken before the node binds them."""
    import socket
    import tempfile

    from workqueue_lab.broker.node import lifecycle, ports

    home = Path(tempfile.mkdtemp(prefix="wqlab-race-", dir="/tmp"))
    home.chmod(0o755)  # under root the node's user must reach it
    monkeypatch.setenv(settings.ENV_HOME, str(home))
    picks = []

    def pick_a_taken_port_first():
        picks.append(ports.pick_ports())
        return (taken, *picks[-1][1:]) if len(picks) == 1 else picks[-1]

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        monkeypatch.setattr(lifecycle, "pick_ports", pick_a_taken_port_first)
        try:
            info = lifecycle.start(wait=90)
            assert len(picks) == 2 and info.amqp_port != taken
            assert lifecycle.port_taken_at_boot(info.base) is False  # the second boot's part of the log
            assert "eaddrinuse" in lifecycle.boot_log(info.base).read_text()  # the first one's
            assert discovery.private_broker(info).version
        finally:
            lifecycle.stop()
            shutil.rmtree(home, ignore_errors=True)


def test_the_one_cli_kills_and_restarts_the_private_node(request):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "workqueue_lab", "node", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})

    with private_broker(request.config) as broker:
        pid = broker.control.node_pid()
        killed = cli("kill")
        assert killed.returncode == 0 and f"pid {pid}" in killed.stdout, killed.stderr
        assert cli("url").returncode == 1 and cli("kill").returncode == 1
        restarted = cli("restart")
        log = settings.home() / "node" / "log" / "server-stdout.log"
        assert restarted.returncode == 0, restarted.stderr + log.read_text(errors="replace")[-3000:]
        url = cli("url")
        assert url.returncode == 0 and url.stdout.strip() == broker.url
        assert broker.control.node_pid() not in (None, pid)
    assert not (REPO / "workqueue_lab" / "broker" / "node" / "__main__.py").exists()  # one CLI
