"""The Docker way in, as far as it can be tested here: the compose file's RabbitMQ config, loaded by a real node.

There is no Docker engine on this machine (README's test table says so).  What docker-compose.yml gives the
broker is two files: ``docker/rabbitmq/rabbitmq.conf`` mounted as a conf.d file and
``docker/rabbitmq/advanced.config``.  A private node of this test's own (its own WORKQUEUE_LAB_HOME, built
from ``workqueue_lab.broker.node``) boots with exactly those two files, and the settings it reports are
asserted: the user ``lab`` instead of ``guest``, the 1 s channel tick, the 512 MiB memory watermark.  Twice: on
the installed RabbitMQ and on 4.0 (``rabbitmq:4.0.5-management`` is what compose runs; the lab's 4.0 is the
same release from Debian 13's packages).
"""

from __future__ import annotations

import os
from pathlib import Path

import pika
import pika.exceptions
import pytest
import yaml
from node_homes import compose_node

from workqueue_lab.broker import node as private_node

REPO = Path(__file__).resolve().parents[1]
CONF, ADVANCED = REPO / "docker" / "rabbitmq" / "rabbitmq.conf", REPO / "docker" / "rabbitmq" / "advanced.config"


def test_compose_mounts_these_two_files():
    """The files tested below are the ones docker-compose.yml gives the broker, where it gives them."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    volumes = compose["services"]["rabbitmq"]["volumes"]
    assert "./docker/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-workqueue-lab.conf:ro" in volumes
    assert "./docker/rabbitmq/advanced.config:/etc/rabbitmq/advanced.config:ro" in volumes


@pytest.fixture(params=["system", "4.0"])
def docker_configured_node(request):
    """The compose broker's two files on the installed RabbitMQ (3.10) and on 4.0, the release compose pins."""
    if request.param != "system" and os.geteuid() != 0:
        pytest.skip("RabbitMQ 4.0 runs as root in a chroot the lab builds (CI runs as root)")
    with compose_node(request.param) as info:
        assert (info.base / "advanced.config").read_text() == ADVANCED.read_text()
        yield info


def _eval(expr: str) -> str:
    res = private_node.ctl("eval", expr)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_a_node_with_the_compose_files_reports_their_settings(docker_configured_node):
    info = docker_configured_node
    assert _eval("application:get_env(rabbit, channel_tick_interval).") == "{ok,1000}"
    assert _eval("application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout).") == "{ok,1000}"
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
