"""The Docker way in, as far as it can be tested here: the compose file's RabbitMQ config, loaded by a real node.

There is no Docker engine on this machine (README's test table says so).  What docker-compose.yml gives the
broker is two files: ``docker/rabbitmq/rabbitmq.conf`` mounted as a conf.d file and
``docker/rabbitmq/advanced.config``.  A private node of this test's own (its own WORKQUEUE_LAB_HOME, built
from ``workqueue_lab.broker.node``) boots with exactly those two files, and the settings it reports are
asserted: the user ``lab`` instead of ``guest``, the 1 s channel tick, the 512 MiB memory watermark.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pika
import pika.exceptions
import pytest
import yaml

from workqueue_lab import settings
from workqueue_lab.broker import node as private_node
from workqueue_lab.broker.node import files as node_files

REPO = Path(__file__).resolve().parents[1]
CONF, ADVANCED = REPO / "docker" / "rabbitmq" / "rabbitmq.conf", REPO / "docker" / "rabbitmq" / "advanced.config"


def test_compose_mounts_these_two_files():
    """The files tested below are the ones docker-compose.yml gives the broker, where it gives them."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    volumes = compose["services"]["rabbitmq"]["volumes"]
    assert "./docker/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-workqueue-lab.conf:ro" in volumes
    assert "./docker/rabbitmq/advanced.config:/etc/rabbitmq/advanced.config:ro" in volumes


@pytest.fixture
def docker_configured_node(monkeypatch):
    home = Path(tempfile.mkdtemp(prefix="wqlab-docker-conf-", dir="/tmp"))
    home.chmod(0o755)  # under root the node runs as 'wqlab', which must reach it
    monkeypatch.setenv(settings.ENV_HOME, str(home))
    conf_d = home / "node" / "conf.d"
    conf_d.mkdir(parents=True)
    shutil.copy(CONF, conf_d / "20-workqueue-lab.conf")  # read after the node's own rabbitmq.conf
    (conf_d / "20-workqueue-lab.conf").chmod(0o644)
    monkeypatch.setattr(node_files, "ADVANCED_CONFIG", ADVANCED.read_text())  # what the node writes as advanced.config
    pid = None
    try:
        info = private_node.start(wait=120)
        pid = private_node.pid()
        assert (info.base / "advanced.config").read_text() == ADVANCED.read_text()
        yield info
    finally:
        try:
            private_node.stop()
        finally:
            if pid is not None and Path(f"/proc/{pid}").exists():  # stop failed: end it by its pid
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(home, ignore_errors=True)


def _eval(expr: str) -> str:
    res = private_node.ctl("eval", expr)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_a_node_with_the_compose_files_reports_their_settings(docker_configured_node):
    info = docker_configured_node
    assert _eval("application:get_env(rabbit, channel_tick_interval).") == "{ok,1000}"
    assert _eval("application:get_env(rabbit, vm_memory_high_watermark).") == '{ok,{absolute,"512MiB"}}'
    assert _eval("vm_memory_monitor:get_memory_limit().") == str(512 * 2**20)  # and the node applies it
    assert _eval("application:get_env(rabbit, default_user).") == '{ok,<<"lab">>}'
    users = private_node.ctl("list_users", "--formatter", "json")
    assert users.returncode == 0, users.stderr
    assert '"user":"lab"' in users.stdout.replace(" ", "") and '"guest"' not in users.stdout, users.stdout
    # the URL the compose file gives the lab works; guest does not exist on this broker
    lab_url = f"amqp://lab:lab@127.0.0.1:{info.amqp_port}/%2F"
    conn = pika.BlockingConnection(pika.URLParameters(lab_url))
    try:
        ok = conn.channel().queue_declare("", exclusive=True).method  # full rights on "/"
        assert ok.queue
    finally:
        conn.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(info.url))
