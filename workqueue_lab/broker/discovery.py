"""Where RabbitMQ is: the search order, and the Broker (with its control) each path makes.

Search order (``find_broker``):
1. an explicit URL in ``WORKQUEUE_LAB_URL``;
2. a broker already answering on 127.0.0.1:5672;
3. a Docker engine: RabbitMQ via testcontainers, image ``settings.RABBITMQ_IMAGE`` (the kernel that starts
   it leaves its address in the lab's home, so this user's terminal programs join it while it lives);
4. ``rabbitmq-server`` installed but not running: a private, non-root node (``WORKQUEUE_LAB_RABBITMQ=4.0``:
   RabbitMQ 4.0 from a chroot the lab builds, as root);
5. otherwise one message listing the ways to get a broker.

``WORKQUEUE_LAB_BROKER=url|local|docker|private`` forces one path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.parse
from pathlib import Path

from .. import settings
from ..errors import BrokerUnavailable, LabError
from . import node as private_node
from .address import host_port, is_loopback, mask, port_open
from .connection import HOW_TO_GET_A_BROKER
from .control import DockerControl, LocalControl, PrivateControl, UrlControl
from .handle import Broker

log = logging.getLogger(__name__)

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
    return port_open(*host_port(broker.url))


def _locate(force: str | None) -> Broker:
    url = os.environ.get(settings.ENV_URL)
    if force == "url" or (force is None and url):
        if not url:
            raise LabError(f"{settings.ENV_BROKER}=url but {settings.ENV_URL} is empty; set it to an amqp:// URL.")
        return _from_url(url)
    if force in (None, "local") and port_open("127.0.0.1", 5672):
        return local_broker()
    if force == "local":
        raise BrokerUnavailable(f"No RabbitMQ answers on 127.0.0.1:5672; {HOW_TO_GET_A_BROKER}.")
    if force in (None, "docker") and (shared := docker_broker_of_this_user()) is not None:
        return shared  # a terminal's worker.py finds the container a notebook's kernel started
    if force in (None, "docker") and _docker_answers():
        return _from_testcontainers()
    if force == "docker":
        raise BrokerUnavailable("No Docker engine answers; start Docker, or unset WORKQUEUE_LAB_BROKER.")
    why_not = private_node.available()
    if not why_not:
        if private_node.running() is None:  # booting (Binder) or not started: say why we wait
            print("Waiting for the lab's private RabbitMQ node to start (about 5-10 s)...", flush=True)
        return private_broker(private_node.start())
    if settings.rabbitmq_series() != "system":  # the release asked for cannot be had here: say why
        raise BrokerUnavailable(why_not)
    raise BrokerUnavailable(f"No RabbitMQ found: nothing on 127.0.0.1:5672, no Docker engine, no rabbitmq-server "
                            f"installed; {HOW_TO_GET_A_BROKER}.")


def local_broker() -> Broker:
    """The system's RabbitMQ on 127.0.0.1:5672 (guest over loopback), with its management API if it answers."""
    mgmt = "http://guest:guest@127.0.0.1:15672" if port_open("127.0.0.1", 15672) else None
    return Broker(settings.LOCAL_URL, LocalControl(settings.LOCAL_URL), mgmt)


def private_broker(node: private_node.NodeInfo, mgmt: bool = True) -> Broker:
    """The lab's private node as a Broker (``mgmt=False``: counts come from rabbitmqctl, never the API)."""
    mgmt_url = node.mgmt_url.replace("http://", "http://guest:guest@") if mgmt else None
    return Broker(node.url, PrivateControl(node.url, node), mgmt_url)


def _from_url(url: str) -> Broker:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise LabError(f"{settings.ENV_URL}={mask(url)!r} is not an amqp:// URL; "
                       "use e.g. amqp://guest:guest@localhost:5672/%2F.")
    mgmt = os.environ.get(settings.ENV_MGMT_URL)
    if not mgmt and parts.hostname and port_open(parts.hostname, 15672, timeout=0.3):
        mgmt = f"http://{parts.username or 'guest'}:{parts.password or 'guest'}@{parts.hostname}:15672"
    return Broker(url, UrlControl(url), mgmt)


def _docker_answers() -> bool:
    if not (shutil.which("docker") or os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST")):
        return False
    try:
        import docker  # installed with testcontainers

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception as exc:  # no engine, no permission, an old API: the search goes on without Docker
        log.debug("no Docker engine: %s", exc)
        return False


def _from_testcontainers() -> Broker:
    from testcontainers.community.rabbitmq import RabbitMqContainer

    container = RabbitMqContainer(settings.RABBITMQ_IMAGE).with_exposed_ports(5672, 15672)
    if is_loopback(container.get_docker_client().host()):
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
    mgmt = f"http://guest:guest@{host}:{mport}"
    _write_docker_state(url, mgmt)
    return Broker(url, DockerControl(url, container), mgmt)


def docker_state_file() -> Path:
    """Where a kernel that started a RabbitMQ container leaves its address for this user's other programs."""
    return settings.home() / "docker-broker.json"


def _write_docker_state(url: str, mgmt: str) -> None:
    path = docker_state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # the URL holds a password: this user's eyes only
    path.write_text(json.dumps({"url": url, "mgmt_url": mgmt, "pid": os.getpid()}))


def docker_broker_of_this_user() -> Broker | None:
    """The container a kernel of this user started (testcontainers), while that kernel lives and the broker
    answers: ``python worker.py`` in a terminal then joins the notebook's broker instead of starting its own."""
    try:
        state = json.loads(docker_state_file().read_text())
        url, mgmt, pid = state["url"], state.get("mgmt_url"), int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (_alive(pid) and port_open(*host_port(url))):
        return None  # that kernel is gone, and testcontainers removed its container with it
    return Broker(url, UrlControl(url), mgmt)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's: not ours to trust, but not gone either
        return True
    return True
