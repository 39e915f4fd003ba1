"""Credentials stay secret, listeners stay on loopback, guest stays local, auto-ack stays in its lesson.

* a real user with a random password runs a real experiment (including a forced reconnect during
  which the password is wrong): the password never appears in a repr, an HTML view, an event, a
  worker's output, a LabError, a log record, a traceback or the CLI's output;
* every listener of the private node (found by its pid with ``ss -ltnp``) binds loopback; the
  Docker paths (docker-compose.yml, testcontainers) publish on 127.0.0.1; ``make lab`` serves on
  127.0.0.1;
* every guest URL in the repository points at 127.0.0.1/localhost, and guest cannot log in from a
  non-loopback address of this machine;
* no code calls ``auto_ack=True`` / ``ack="auto"`` except the lesson that demonstrates the loss.
"""

from __future__ import annotations

import ast
import base64
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pika
import pytest
import yaml
from helpers import wait_until
from private_broker import private_broker

import workqueue_lab as lab
import workqueue_lab.broker.discovery as broker_mod
from workqueue_lab import settings
from workqueue_lab.broker import node as private_node
from workqueue_lab.broker.address import port_open
from workqueue_lab.record import events as ev

REPO = Path(__file__).resolve().parents[1]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


# --- a real user with a secret password on the test broker ---------------------------------------------


def _mgmt(broker, method: str, path: str, body: dict | None = None, user: str = "guest",
          password: str = "guest") -> object:
    parts = urllib.parse.urlsplit(broker.mgmt_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    request = urllib.request.Request(base + "/api/" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@pytest.fixture
def secret_user(clean):
    """A user with a random password and full rights on /, deleted afterwards (closing its connections)."""
    assert clean.mgmt_url, "the test broker needs its management API (see .ci/run)"
    name = f"wqlab-sec-{secrets.token_hex(3)}"
    password = "S3cr3t-" + secrets.token_hex(8)
    _mgmt(clean, "PUT", f"users/{name}", {"password": password, "tags": ""})
    try:
        _mgmt(clean, "PUT", f"permissions/%2F/{urllib.parse.quote(name)}",
              {"configure": ".*", "write": ".*", "read": ".*"})
        yield name, password
    finally:
        _mgmt(clean, "DELETE", f"users/{name}")


def _all_text(exc: BaseException) -> str:
    """An exception as every tool would show it: str, repr, the full chained traceback, the Jupyter line."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for inner in (exc.__cause__, exc.__context__):
        if inner is not None:
            parts += [str(inner), repr(inner)]
    render = getattr(exc, "_render_traceback_", None)
    if render:
        parts += render()
    return "\n".join(parts)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records():
    """Every log record, pika's DEBUG chatter included (without relying on pytest's logging plugin)."""
    handler, root = _Records(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_password_never_appears_anywhere(secret_user, clean, monkeypatch, capfd, log_records):
    name, password = secret_user
    new_password = "N3w-" + secrets.token_hex(8)
    url = f"amqp://{name}:{password}@127.0.0.1:5672/%2F"
    monkeypatch.setenv(settings.ENV_URL, url)
    monkeypatch.setenv(settings.ENV_BROKER, "url")
    monkeypatch.setattr(broker_mod, "_current", None)
    shown: list[str] = []

    broker = lab.connect()
    assert broker.url == url and broker.version  # really logged in with the secret
    shown += [repr(broker), broker._repr_html_(), broker.masked_url, str(broker.masked_mgmt_url),
              str(broker.mgmt_ui_link())]
    assert f"{name}:***@" in repr(broker) and f"{name}:***@" in broker._repr_html_()

    # a run whose workers lose their connections while the password is wrong, then recover
    run = lab.start(lab.lesson_callback, workers=2)
    run.publish(lab.numbered_tasks([6] * 16))  # 0.3 s each: ~2.4 s per worker
    assert wait_until(lambda: run.log.count(ev.ACK) >= 2, timeout=15)
    _mgmt(clean, "PUT", f"users/{name}", {"password": new_password, "tags": ""})
    # rabbitmqctl, not the management API: its connection list lags by up to 5 s
    closed = clean.control.ctl("close_all_user_connections", name, "security test")
    assert closed.returncode == 0, closed.stderr
    assert wait_until(lambda: any("refused" in e.detail for e in run.log.of_kind(ev.RECONNECT)), timeout=15)
    _mgmt(clean, "PUT", f"users/{name}", {"password": password, "tags": ""})
    result = run.wait(timeout=60, progress=False)
    assert result.completed == set(range(1, 17)) and result.lost == []
    refused = [e.detail for e in result.of_kind(ev.RECONNECT) if "refused" in e.detail]
    assert refused and all(f"refused user '{name}'" in d for d in refused), refused
    shown += [e.detail for e in result.events] + [repr(result.events), repr(result), *result.outputs.values()]
    shown += [str(result.table()), getattr(result.table(), "_repr_html_", lambda: "")()]

    # LabErrors that carry the URL, with the secret in it
    for bad in (f"amqp://{name}:{password}@127.0.0.1:1/%2F",
                f"amqp://{name}:{password}@127.0.0.1:5672/no-such-vhost",
                f"amqp://{name}:{password}@no-such-host.invalid:5672/%2F",
                f"amqp://{name}:{password}x@127.0.0.1:5672/%2F",
                f"http://{name}:{password}@127.0.0.1:5672/"):
        if bad.startswith("amqp"):
            unreachable = broker_mod._from_url(bad)
            shown += [repr(unreachable), unreachable._repr_html_()]  # a repr never raises, never shows it
        with pytest.raises(lab.LabError) as info:
            broker_mod._from_url(bad).connect()
        shown.append(_all_text(info.value))
    monkeypatch.setenv(settings.ENV_URL, f"amqp://{name}:{password}@127.0.0.1:1/%2F")
    monkeypatch.setattr(broker_mod, "_current", None)
    with pytest.raises(lab.LabError) as info:
        lab.run(lab.lesson_callback, progress=False)
    shown.append(_all_text(info.value))

    out, err = capfd.readouterr()
    assert log_records  # pika did log (at DEBUG): the check below is not vacuous
    shown += [out, err] + [r.getMessage() for r in log_records] + [repr(r.args) for r in log_records]
    text = "\n".join(shown)
    assert "***" in text
    for secret in (password, new_password):
        assert secret not in text
        assert urllib.parse.quote(secret) not in text


def test_the_cli_never_prints_a_password(secret_user):
    name, password = secret_user
    env = {**os.environ, "PYTHONPATH": str(REPO), settings.ENV_BROKER: "url",
           settings.ENV_URL: f"amqp://{name}:{password}@127.0.0.1:5672/%2F"}

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "workqueue_lab", *args], cwd=REPO, env={**env, **extra},
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    runs = [cli("new-task", "Task", "1."), cli("broker", "status"), cli("broker", "start"),
            cli("broker", "status", **{settings.ENV_URL: f"amqp://{name}:{password}-wrong@127.0.0.1:5672/%2F"}),
            cli("broker", "status", **{settings.ENV_URL: f"amqp://{name}:{password}@127.0.0.1:1/%2F"})]
    assert [p.returncode for p in runs] == [0, 0, 0, 1, 1], [p.stderr for p in runs]
    assert f"{name}:***@127.0.0.1:5672" in runs[1].stdout
    for p in runs:
        assert password not in p.stdout + p.stderr and "Traceback" not in p.stderr
    assert "refused user" in runs[3].stderr and "No RabbitMQ answers" in runs[4].stderr


# --- listeners --------------------------------------------------------------------------------------------


def _listeners() -> list[tuple[str, int, str]]:
    """(address, port, process info) for every listening TCP socket, as `ss -ltnp` reports them."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        addr, _, port = fields[3].rpartition(":")
        found.append((addr.strip("[]"), int(port), " ".join(fields[5:])))
    return found


def test_every_listener_of_the_private_node_is_on_loopback(request):
    with private_broker(request.config) as broker:
        node = broker.control.node
        pid = private_node.pid()
        assert pid is not None
        listening = _listeners()
        mine = [(a, p) for a, p, proc in listening if f"pid={pid}," in proc]
        ports = {p for _, p in mine}
        assert {node.amqp_port, node.mgmt_port, node.dist_port} <= ports, (mine, node)
        assert all(a == "127.0.0.1" for a, _ in mine), mine
        # the Erlang port mapper the node may have started: loopback as well
        epmd = [(a, p) for a, p, proc in listening if '"epmd"' in proc]
        assert epmd and {p for _, p in epmd} == {4369}, f"no epmd listener found to check: {listening}"
        assert all(a in ("127.0.0.1", "::1") for a, _ in epmd), epmd
        names = subprocess.run(["epmd", "-names"], capture_output=True, text=True, timeout=10).stdout
        assert f"at port {node.dist_port}" in names, names  # the epmd checked above is the one this node uses
        print(f"\nprivate node pid {pid} listens on: {sorted(mine)}; epmd on {sorted(epmd)}")


def test_docker_compose_and_make_lab_publish_on_loopback_only():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    published = [(name, p) for name, service in compose["services"].items() for p in service.get("ports", [])]
    assert published, "docker-compose.yml publishes no port at all?"
    for name, port in published:
        text = port if isinstance(port, str) else port.get("host_ip", "")
        assert str(text).startswith("127.0.0.1"), f"service {name} publishes {port!r} beyond loopback"
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^LAB_IP \?= 127\.0\.0\.1$", make, re.M)
    lab_recipe = re.search(r"^lab:.*?(?=^\S)", make, re.M | re.S).group(0)
    assert "LAB_IP=$(LAB_IP)" in lab_recipe and "0.0.0.0" not in lab_recipe
    start_lab = (REPO / "jupyter" / "start-lab").read_text()
    assert '--ip="${LAB_IP:-127.0.0.1}"' in start_lab, "jupyter/start-lab must default to loopback"


def test_a_docker_broker_is_published_on_loopback(monkeypatch):
    """No Docker engine here: a stand-in container records what the lab asks testcontainers for."""
    import testcontainers.community.rabbitmq as tc

    class Client:
        def host(self):
            return "localhost"

    class FakeContainer:
        def __init__(self, image):
            self.image, self.ports = image, {"5672": None}

        def with_exposed_ports(self, *ports):
            self.ports.update({str(p): None for p in ports})
            return self

        def get_docker_client(self):
            return Client()

        def start(self):
            self.started_with = dict(self.ports)

        def get_container_host_ip(self):
            return "localhost"

        def get_exposed_port(self, port):
            return 40000 + int(port) % 1000

    made = []
    monkeypatch.setattr(tc, "RabbitMqContainer", lambda image: made.append(FakeContainer(image)) or made[-1])
    broker = broker_mod._from_testcontainers()
    assert made[0].image == settings.RABBITMQ_IMAGE
    assert made[0].started_with == {"5672": ("127.0.0.1",), "15672": ("127.0.0.1",)}
    assert urllib.parse.urlsplit(broker.url).hostname == "localhost"


# --- guest stays on loopback -------------------------------------------------------------------------------

URL_RE = re.compile(r"""\b(amqps?|https?)://guest(?::[^@\s'"]*)?@(\[[^\]]+\]|[^:/\s'"`]+)""")
# Hosts in f-strings that are loopback by construction.
TEMPLATE_HOSTS = {
    "{LOOPBACK}": "private_node.LOOPBACK is 127.0.0.1",
    "{host}": "testcontainers' host for a local engine is localhost, and the ports are published on 127.0.0.1",
    "…": "an elided example in prose (`amqp://guest:***@…`), no host at all",
}


def _repo_files():
    skip = {".git", ".venv", "node_modules", ".ruff_cache", ".pytest_cache", "__pycache__", "artifacts"}
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if any(part in skip or part.endswith(".egg-info") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix in (".png", ".jpg", ".gif", ".ico", ".whl", ".gz", ".zip", ".pyc"):
            continue
        yield rel, path


def test_every_guest_url_in_the_repository_points_at_loopback():
    found = []
    for rel, path in _repo_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for m in URL_RE.finditer(text):
            found.append((str(rel), m.group(0), m.group(2)))
    assert found, "no guest URL found at all: the pattern is broken"
    bad = [(f, u) for f, u, host in found if host not in LOOPBACK_HOSTS and host not in TEMPLATE_HOSTS]
    assert bad == [], bad


def _non_loopback_addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if ":" not in a and not a.startswith("127.")]


def test_guest_cannot_log_in_from_a_non_loopback_address(clean):
    """Whatever this machine's broker exposes beyond loopback must refuse guest (RabbitMQ's loopback_users)."""
    checked = []
    addresses = _non_loopback_addresses()
    assert addresses, "this machine has no non-loopback IPv4 address: nothing to check guest from"
    listening = _listeners()
    for addr in addresses:
        if port_open(addr, 5672):
            guest = pika.PlainCredentials("guest", "guest")
            with pytest.raises(pika.exceptions.AMQPError) as info:
                pika.BlockingConnection(pika.ConnectionParameters(addr, 5672, "/", guest))
            assert isinstance(info.value, pika.exceptions.ProbableAuthenticationError) or \
                "ACCESS_REFUSED" in repr(info.value), repr(info.value)
            checked.append(f"{addr}:5672 refused guest")
        else:  # closed because nothing listens there (not a filtered or slow port)
            assert not _listens_on(listening, addr, 5672), (addr, listening)
            checked.append(f"{addr}:5672 closed")
        if port_open(addr, 15672):
            with pytest.raises(urllib.error.HTTPError) as info:
                request = urllib.request.Request(f"http://{addr}:15672/api/overview")
                request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                opener.open(request, timeout=5)
            assert info.value.code == 401
            checked.append(f"{addr}:15672 refused guest")
        else:
            assert not _listens_on(listening, addr, 15672), (addr, listening)
            checked.append(f"{addr}:15672 closed")
    assert len(checked) == 2 * len(addresses), checked
    print(f"\nguest from outside loopback: {checked}")


def _listens_on(listening: list[tuple[str, int, str]], addr: str, port: int) -> bool:
    """Whether some socket listens on addr:port, directly or on a wildcard address."""
    return any(p == port and a in (addr, "0.0.0.0", "*", "::") for a, p, _ in listening)


# --- auto-ack only where the lesson shows the loss ---------------------------------------------------------

DEMO = "notebooks/02_acknowledgements.ipynb"


def _auto_ack_calls(source: str) -> list[str]:
    """Calls with auto_ack=True or ack="auto" (keywords with constant values), as 'line: code'."""
    tree = ast.parse(source)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            value = kw.value.value if isinstance(kw.value, ast.Constant) else None
            if (kw.arg == "auto_ack" and value is True) or (kw.arg == "ack" and value == "auto"):
                hits.append(f"{node.lineno}: {ast.unparse(node)[:100]}")
    return hits


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics and shell escapes are not Python
    return "\n".join("\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                               for line in cell.splitlines()) for cell in code)


def test_no_auto_ack_outside_the_lesson_that_demonstrates_the_loss():
    sources = {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "workqueue_lab").rglob("*.py")}
    sources.update({name: (REPO / name).read_text() for name in ("new_task.py", "worker.py")})
    sources.update({str(p.relative_to(REPO)): p.read_text() for p in (REPO / "notebooks").rglob("*.py")})
    notebooks = sorted((REPO / "notebooks").rglob("*.ipynb"))
    assert any(str(p.relative_to(REPO)) == DEMO for p in notebooks), f"{DEMO} is missing"
    sources.update({str(p.relative_to(REPO)): _notebook_code(p) for p in notebooks
                    if str(p.relative_to(REPO)) != DEMO and ".ipynb_checkpoints" not in p.parts})
    offenders = {name: hits for name, src in sources.items() if (hits := _auto_ack_calls(src))}
    # The taps consume their own exclusive copies of dead-lettered messages (the real queue keeps its
    # message): losing a copy loses nothing, and an ack per copy would only slow the observer.
    offenders.pop("workqueue_lab/engine/taps.py", None)
    assert offenders == {}, offenders
    # the detector works: the demonstration notebook does use it
    assert _auto_ack_calls(_notebook_code(REPO / DEMO))
