"""Where RabbitMQ is and how to control it.  Nothing else knows how a broker was found.

Search order (``find_broker``):
1. an explicit URL in ``WORKQUEUE_LAB_URL``;
2. a broker already answering on 127.0.0.1:5672;
3. a Docker engine: RabbitMQ via testcontainers, image ``settings.RABBITMQ_IMAGE``;
4. ``rabbitmq-server`` installed but not running: a private, non-root node;
5. otherwise one message listing the ways to get a broker.

``WORKQUEUE_LAB_BROKER=url|local|docker|private`` forces one path.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import settings
from ..errors import BrokerUnavailable, LabError
from . import registry

if TYPE_CHECKING:  # pika is imported lazily: `import workqueue_lab` stays fast
    import pika

HOW_TO_GET_A_BROKER = (
    "start one with `sudo rabbitmq-server -detached` (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`), "
    "or run `docker compose up rabbitmq`, or set WORKQUEUE_LAB_URL=amqp://user:pass@host:5672/%2F"
)

@dataclass(frozen=True)
class QueueStats:
    """Counts the broker reports for one queue (unacked is None if it cannot tell)."""

    name: str
    ready: int
    unacked: int | None
    consumers: int


def mask(url: str) -> str:
    """The URL with its password replaced by ***, for everything shown to a person."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


class Broker:
    """A handle on one RabbitMQ: URL, management URL, version, stats, restart, reset."""

    def __init__(self, url: str, kind: str, mgmt_url: str | None = None, handle: object = None) -> None:
        self.url = url
        self.kind = kind  # url | local | docker | private
        self.mgmt_url = mgmt_url
        self._handle = handle  # the testcontainers container or the private node's NodeInfo
        self._version: str | None = None
        self.declared: set[tuple[str, str]] = set()  # ("queue"|"exchange", name) declared here

    # --- what it is -----------------------------------------------------------
    @property
    def masked_url(self) -> str:
        return mask(self.url)

    @property
    def masked_mgmt_url(self) -> str | None:
        return mask(self.mgmt_url) if self.mgmt_url else None

    def __repr__(self) -> str:
        return f"Broker({self.kind}: {self.masked_url}, RabbitMQ {self._version_for_display()})"

    def _repr_html_(self) -> str:
        mgmt = self.mgmt_ui_link()
        link = f' · management UI: <a href="{mgmt}" target="_blank">{mgmt}</a>' if mgmt else ""
        return (f"<b>RabbitMQ {self._version_for_display()}</b> ({self.kind}) at <code>{self.masked_url}</code>"
                f"{link}")

    def _version_for_display(self) -> str:
        """The version, or why it is unknown: showing a broker must never raise (a repr runs everywhere)."""
        try:
            return self.version
        except LabError:
            return "? (not reachable)"

    def mgmt_ui_link(self) -> str | None:
        """Management UI address without credentials (a browser asks for them).

        On JupyterHub/Binder the learner's browser cannot reach the pod's loopback,
        so the link goes through jupyter-server-proxy's ``<prefix>proxy/<port>/`` route.
        """
        if not self.mgmt_url:
            return None
        parts = urllib.parse.urlsplit(self.mgmt_url)
        hub_prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if hub_prefix and _is_loopback(parts.hostname) and parts.port:
            return f"{hub_prefix.rstrip('/')}/proxy/{parts.port}/"
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc)) + "/"

    @property
    def version(self) -> str:
        if self._version is None:
            conn = self.connect()
            try:
                # pika internal on purpose: BlockingConnection has no public server_properties (only the
                # *_supported capability flags), and the management API's version needs the plugin
                raw = conn._impl.server_properties.get("version", b"?")
                self._version = raw.decode() if isinstance(raw, bytes) else str(raw)
            finally:
                conn.close()
        return self._version

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split(".")[:3] if p.isdigit())

    # --- connections ------------------------------------------------------------
    def parameters(self, **overrides) -> pika.URLParameters:
        import pika

        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = 60
        for key, value in overrides.items():
            setattr(params, key, value)
        return params

    def connect(self, **overrides) -> pika.BlockingConnection:
        """A new BlockingConnection, or a LabError naming the fix."""
        import pika

        try:
            return pika.BlockingConnection(self.parameters(**overrides))
        except Exception as exc:  # translate pika's many failure types into one sentence
            raise explain_connection_error(exc, self.url) from None

    @contextlib.contextmanager
    def channel(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        """A short-lived channel on its own connection, closed afterwards."""
        conn = self.connect()
        try:
            yield conn.channel()
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    # --- statistics ---------------------------------------------------------------
    def queue_stats(self, queue: str) -> QueueStats:
        """Ready, unacked and consumer counts: rabbitmqctl (live), else the management API (refreshed
        every 5 s), else AMQP (no unacked count)."""
        stats = self._stats_from_ctl(queue) or self._stats_from_management(queue)
        if stats:
            return stats
        with self.channel() as ch:
            ok = ch.queue_declare(queue=queue, passive=True).method
        return QueueStats(queue, ok.message_count, None, ok.consumer_count)

    def _stats_from_management(self, queue: str) -> QueueStats | None:
        data = self.management_api(f"queues/%2F/{urllib.parse.quote(queue, safe='')}")
        if not isinstance(data, dict) or "messages_ready" not in data:
            return None
        return QueueStats(queue, data.get("messages_ready", 0), data.get("messages_unacknowledged", 0),
                          data.get("consumers", 0))

    def _stats_from_ctl(self, queue: str) -> QueueStats | None:
        proc = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready",
                        "messages_unacknowledged", "consumers")
        if proc is None or proc.returncode != 0:
            return None
        for line in proc.stdout.splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[0] == queue:
                return QueueStats(queue, int(fields[1]), int(fields[2]), int(fields[3]))
        return None

    def management_api(self, path: str) -> object | None:
        """GET /api/<path> as JSON, or None when there is no management API (never raises)."""
        if not self.mgmt_url:
            return None
        parts = urllib.parse.urlsplit(self.mgmt_url)
        user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/api/" + path
        request = urllib.request.Request(url)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def connection_count(self) -> int | None:
        """Open client connections as the broker counts them (None if it cannot tell)."""
        data = self.management_api("connections")
        if isinstance(data, list):
            return len(data)
        proc = self.ctl("list_connections", "-q", "--no-table-headers", "pid")
        if proc is not None and proc.returncode == 0:
            return len([line for line in proc.stdout.splitlines() if line.strip()])
        return None

    # --- control --------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess | None:
        """Run rabbitmqctl against this broker's node, or None if this broker cannot be controlled."""
        if self.kind == "private":
            from . import node as private_node
            return private_node.ctl(*args, timeout=timeout)
        if self.kind == "local" and shutil.which("rabbitmqctl"):
            try:
                return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True,
                                      timeout=timeout, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired):
                return None
        return None

    def can_control(self) -> bool:
        proc = self.ctl("status", "-q", timeout=20) if self.kind in ("local", "private") else None
        return self.kind == "docker" or (proc is not None and proc.returncode == 0)

    def restart(self, wait: float = 90.0) -> None:
        """Restart RabbitMQ (durable queues and persistent messages survive)."""
        if self.kind == "private":
            from . import node as private_node
            private_node.restart(wait=wait)
        elif self.kind == "docker":
            self._handle.get_wrapped_container().restart()
            _wait_for_port(self.url, wait)
        elif self.kind == "local" and self.can_control():
            for step in ("stop_app", "start_app"):
                proc = self.ctl(step, timeout=wait)
                if proc is None or proc.returncode != 0:
                    raise LabError(f"`rabbitmqctl {step}` failed; restart RabbitMQ by hand "
                                   "(`sudo rabbitmqctl stop_app && sudo rabbitmqctl start_app`).")
            _wait_for_port(self.url, wait)
        else:
            raise LabError(f"The lab cannot restart the {self.kind} broker at {self.masked_url}; restart it "
                           "yourself, or use a private node (WORKQUEUE_LAB_BROKER=private).")
        self._version = None

    def get_app_env(self, key: str) -> int | None:
        proc = self.ctl("eval", f"application:get_env(rabbit, {key}).")
        if proc is None or proc.returncode != 0:
            return None
        text = proc.stdout.strip()
        if text.startswith("{ok,"):
            with contextlib.suppress(ValueError):
                return int(text[4:].rstrip("}").strip())
        return None

    def set_app_env(self, key: str, value: int) -> bool:
        proc = self.ctl("eval", f"application:set_env(rabbit, {key}, {int(value)}).")
        return proc is not None and proc.returncode == 0

    @contextlib.contextmanager
    def short_ack_timeout(self, ms: int = 3000, tick_ms: int = 500) -> Iterator[str]:
        """Shorten the consumer (ack) timeout for channels opened inside the block.

        RabbitMQ checks the timeout only on the channel tick (``channel_tick_interval``,
        60 s by default), so both are shortened.  On a node the lab controls, one
        ``rabbitmqctl eval`` sets both, waits inside the broker until the block ends and
        puts back the old values that are still its own -- by itself after two minutes
        should this Python process die.  The setting is node-wide on RabbitMQ 3.10/3.11:
        other consumers on the same node see it while the block runs.
        Yields "node", or "queue-argument" (RabbitMQ 3.12+: use ``x-consumer-timeout``)
        for brokers the lab cannot control.
        """
        if self.kind in ("local", "private"):
            with _node_setting(self, ms, tick_ms) as done:
                if done:
                    yield "node"
                    return
        if self.version_tuple >= (3, 12):
            yield "queue-argument"
            return
        raise LabError(f"RabbitMQ {self.version} at {self.masked_url} cannot shorten the ack timeout from "
                       "here; use a local or private node (WORKQUEUE_LAB_BROKER=private).")

    # --- cleaning up ----------------------------------------------------------------------
    def remember(self, kind: str, name: str) -> None:
        self.declared.add((kind, name))

    def purge(self, queue: str) -> int:
        """Empty one queue (if it exists); returns how many ready messages were removed."""
        try:
            with self.channel() as ch:
                return ch.queue_purge(queue=queue).method.message_count
        except Exception:  # absent or unreachable: there is nothing to purge
            return 0

    def reset(self) -> list[str]:
        """Delete the lab's own queues and exchanges, and nothing else: the names the lab's topologies
        registered (``registry``, with the learner's prefix) and what this handle declared."""
        queue_bases, exchange_bases = registry.registered()
        queues = {settings.name(n) for n in queue_bases} | {n for k, n in self.declared if k == "queue"}
        exchanges = {settings.name(n) for n in exchange_bases} | {n for k, n in self.declared if k == "exchange"}
        deleted = []
        conn = self.connect()
        try:
            for kind, names in (("queue", sorted(queues)), ("exchange", sorted(exchanges))):
                for name in names:
                    ch = conn.channel()
                    try:
                        if kind == "queue":
                            ch.queue_declare(queue=name, passive=True)
                            ch.queue_delete(queue=name)
                        else:
                            ch.exchange_declare(exchange=name, passive=True)
                            ch.exchange_delete(exchange=name)
                        deleted.append(name)
                    except Exception:  # absent: nothing to delete (the passive declare closed the channel)
                        continue
                    with contextlib.suppress(Exception):
                        ch.close()
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        self.declared.clear()
        return deleted

    def stop(self) -> None:
        """Stop what the lab started (a container or a private node); leave others alone."""
        if self.kind == "docker":
            self._handle.stop()
        elif self.kind == "private":
            from . import node as private_node
            private_node.stop()


@contextlib.contextmanager
def _node_setting(broker: Broker, ms: int, tick_ms: int) -> Iterator[bool]:
    """Set consumer_timeout and channel_tick_interval in one eval that restores them; yields success."""

    def program(started_flag: str, stop_flag: str) -> str:
        return (
            "Keys = [consumer_timeout, channel_tick_interval], "
            "Old = [application:get_env(rabbit, K) || K <- Keys], "
            f"application:set_env(rabbit, consumer_timeout, {int(ms)}), "
            f"application:set_env(rabbit, channel_tick_interval, {int(tick_ms)}), "
            f'file:write_file("{started_flag}", io_lib:format("~p", [Old])), '
            f'Wait = fun W(0) -> ok; W(N) -> case filelib:is_regular("{stop_flag}") of '
            "true -> ok; false -> timer:sleep(50), W(N - 1) end end, Wait(2400), "
            f"Ours = [{{ok, {int(ms)}}}, {{ok, {int(tick_ms)}}}], "
            # put back only what is still ours: if someone changed a value meanwhile, theirs stays
            "lists:foreach(fun({K, Mine, Before}) -> case application:get_env(rabbit, K) of "
            "Mine -> case Before of {ok, V} -> application:set_env(rabbit, K, V); "
            "undefined -> application:unset_env(rabbit, K) end; _ -> ok end end, lists:zip3(Keys, Ours, Old)), "
            'io:format("restored ~p~n", [Old]).'
        )

    with in_node(broker, program, "ack timeout") as (started, _output):
        yield started


@contextlib.contextmanager
def in_node(broker: Broker, program: Callable[[str, str], str], what: str,
            start_timeout: float = 30) -> Iterator[tuple[bool, list[str]]]:
    """Run an Erlang program inside the broker's node for the length of the block.

    ``program(started_flag, stop_flag)`` returns the code for ``rabbitmqctl eval``: it
    writes ``started_flag`` once it is under way and ends when ``stop_flag`` exists (and
    by itself after a while, should this process die).  One CLI start for the whole block
    instead of one per call.  Yields (started, output lines); the lines are filled in
    when the block ends.
    """
    import tempfile
    import threading
    import time

    base = os.path.join(tempfile.gettempdir(), f"workqueue-lab-{os.getpid()}-{time.time_ns()}")
    started_flag, stop_flag = base + ".started", base + ".stop"
    code = program(started_flag, stop_flag)
    output: list[str] = []

    def run() -> None:
        proc = broker.ctl("eval", code, timeout=180)
        if proc is not None and proc.returncode == 0:
            output.extend(proc.stdout.splitlines())

    thread = threading.Thread(target=run, name=f"workqueue-lab {what}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not os.path.exists(started_flag) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield os.path.exists(started_flag), output
    finally:
        with open(stop_flag, "w"):
            pass
        thread.join(30)
        for flag in (started_flag, stop_flag):
            with contextlib.suppress(OSError):
                os.remove(flag)


def explain_connection_error(exc: BaseException, url: str) -> LabError:
    """One sentence that names the fix for a failed connection attempt."""
    import pika.exceptions as pe

    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 5672
    vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    where = mask(url)
    inner = exc
    if isinstance(exc, pe.AMQPConnectionError) and exc.args and isinstance(exc.args[0], BaseException):
        inner = exc.args[0]
    text = str(inner)
    if isinstance(inner, socket.gaierror) or "gaierror" in text or "Name or service not known" in text:
        return BrokerUnavailable(f"Cannot resolve host '{host}' in {where}; check the host name.")
    if isinstance(inner, pe.ProbableAuthenticationError) or "ACCESS_REFUSED" in text or "403" in text:
        hint = "" if _is_loopback(host) else " (the guest user only works from localhost)"
        return LabError(f"RabbitMQ at {host}:{port} refused user '{parts.username}'{hint}; "
                        "check the user name and password in the URL.")
    if "NOT_ALLOWED" in text or "vhost" in text or "530" in text:
        return LabError(f"Virtual host '{vhost}' does not exist on {host}:{port}; use %2F for the default "
                        f"vhost or create it with `rabbitmqctl add_vhost {vhost}`.")
    if isinstance(inner, pe.IncompatibleProtocolError) or "IncompatibleProtocol" in repr(inner):
        return BrokerUnavailable(f"Something at {host}:{port} is not RabbitMQ's AMQP port; check the port (5672).")
    # refused, timed out, reset: nothing usable listens there
    return BrokerUnavailable(f"No RabbitMQ answers at {host}:{port} ({where}); {HOW_TO_GET_A_BROKER}.")


def _wait_for_port(url: str, timeout: float) -> None:
    import time

    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(parts.hostname or "localhost", parts.port or 5672):
            return
        time.sleep(0.2)
    raise BrokerUnavailable(f"RabbitMQ at {mask(url)} did not come back within {timeout:.0f} s; "
                            "check its log and start it again.")


# --- finding a broker ----------------------------------------------------------------------
_current: Broker | None = None


def find_broker(force: str | None = None) -> Broker:
    """Find or start a broker, in the documented order; reuse it within this process."""
    global _current
    force = force or os.environ.get(settings.ENV_BROKER) or None
    if force and force not in settings.BROKER_PATHS:
        raise LabError(f"{settings.ENV_BROKER}={force!r} is not one of {', '.join(settings.BROKER_PATHS)}; "
                       "set one of those, or unset it to let the lab search.")
    if _current is not None and (force is None or _current.kind == force) and _still_there(_current):
        return _current
    _current = _locate(force)
    return _current


def _still_there(broker: Broker) -> bool:
    parts = urllib.parse.urlsplit(broker.url)
    return port_open(parts.hostname or "localhost", parts.port or 5672)


def _locate(force: str | None) -> Broker:
    url = os.environ.get(settings.ENV_URL)
    if force == "url" or (force is None and url):
        if not url:
            raise LabError(f"{settings.ENV_BROKER}=url but {settings.ENV_URL} is empty; set it to an amqp:// URL.")
        return _from_url(url)
    if force in (None, "local") and port_open("127.0.0.1", 5672):
        mgmt = "http://guest:guest@127.0.0.1:15672" if port_open("127.0.0.1", 15672) else None
        return Broker(settings.LOCAL_URL, "local", mgmt)
    if force == "local":
        raise BrokerUnavailable(f"No RabbitMQ answers on 127.0.0.1:5672; {HOW_TO_GET_A_BROKER}.")
    if force in (None, "docker") and _docker_answers():
        return _from_testcontainers()
    if force == "docker":
        raise BrokerUnavailable("No Docker engine answers; start Docker, or unset WORKQUEUE_LAB_BROKER.")
    from . import node as private_node
    if private_node.server_script() is not None:
        if private_node.running() is None:  # booting (Binder) or not started: say why we wait
            print("Waiting for the lab's private RabbitMQ node to start (about 5-10 s)...", flush=True)
        node = private_node.start()
        return Broker(node.url, "private", node.mgmt_url.replace("http://", "http://guest:guest@"), node)
    raise BrokerUnavailable(f"No RabbitMQ found: nothing on 127.0.0.1:5672, no Docker engine, no rabbitmq-server "
                            f"installed; {HOW_TO_GET_A_BROKER}.")


def _from_url(url: str) -> Broker:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise LabError(f"{settings.ENV_URL}={mask(url)!r} is not an amqp:// URL; "
                       "use e.g. amqp://guest:guest@localhost:5672/%2F.")
    mgmt = os.environ.get(settings.ENV_MGMT_URL)
    if not mgmt and parts.hostname and port_open(parts.hostname, 15672, timeout=0.3):
        mgmt = f"http://{parts.username or 'guest'}:{parts.password or 'guest'}@{parts.hostname}:15672"
    return Broker(url, "url", mgmt)


def _docker_answers() -> bool:
    if not (shutil.which("docker") or os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST")):
        return False
    try:
        import docker  # installed with testcontainers

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


def _from_testcontainers() -> Broker:
    from testcontainers.community.rabbitmq import RabbitMqContainer

    container = RabbitMqContainer(settings.RABBITMQ_IMAGE).with_exposed_ports(5672, 15672)
    if container.get_docker_client().host() in ("localhost", "127.0.0.1", "::1"):
        # We reach the engine's ports on localhost, but it would publish them on every interface,
        # and the image lets guest/guest in from anywhere: publish on loopback only (a random port
        # each, as before; docker-py's (ip,) form).  A remote or in-container engine keeps the default.
        for port in ("5672", "15672"):
            container.ports[port] = ("127.0.0.1",)
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(5672))
    mport = int(container.get_exposed_port(15672))
    url = f"amqp://guest:guest@{host}:{port}/%2F"
    return Broker(url, "docker", f"http://guest:guest@{host}:{mport}", container)
