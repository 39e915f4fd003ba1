"""Every notebook the way docker-compose.yml's `lab` container runs it, minus the container.

No container engine runs here.  What the container gives the lab is (1) its environment, read from the
compose file's `lab` service: ``WORKQUEUE_LAB_BROKER=url``, an AMQP URL and a management URL for the user
``lab``; (2) the compose broker, ``rabbitmq:4.0.5-management`` with ``docker/rabbitmq/``'s two files, here
the lab's RabbitMQ 4.0 (the same release, from Debian 13's packages) booted with exactly those files; and
(3) the lab image's own rabbitmq-server (Debian 13's, also 4.0.5) for the private node and cluster of
notebooks 04 and 08, here ``WORKQUEUE_LAB_RABBITMQ=4.0``.  Only the host names differ: the URLs point at
this node's loopback ports instead of the service name ``rabbitmq``.

Every notebook must run top to bottom without an error, and say NOT CHECKED exactly where a claim needs
control of the compose broker itself (``NEEDS_CONTROL``; today: nowhere, since the management API gives
live counts and RabbitMQ 4.0 takes a per-queue ack timeout).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nbformat
import pytest
import yaml
from node_homes import clean, compose_node, env, leftovers, new_home

from workqueue_lab.lessons.notes import not_checked_lines

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import build_site  # noqa: E402  (book/build_site.py runs the notebooks as `make site` does)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Cells whose claims need control of the compose broker (a restart, a node setting): none.  The restarts
# (04) and the cluster (08) happen on the lab container's own RabbitMQ, as everywhere else.
NEEDS_CONTROL: set[str] = set()


def compose_lab_environment(amqp_port: int, mgmt_port: int) -> dict[str, str]:
    """The `lab` service's environment from docker-compose.yml, its broker host names mapped to this node."""
    lab = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["lab"]
    found = {k: str(v) for k, v in lab["environment"].items() if k.startswith("WORKQUEUE_LAB_")}
    ports = {5672: amqp_port, 15672: mgmt_port}
    for key in ("WORKQUEUE_LAB_URL", "WORKQUEUE_LAB_MGMT_URL"):
        parts = urlsplit(found[key])
        assert parts.hostname == "rabbitmq", found[key]  # the compose service's name
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{ports[parts.port]}"
        found[key] = urlunsplit(parts._replace(netloc=netloc))
    return found


def test_the_compose_environment_is_what_the_lab_container_gets():
    found = compose_lab_environment(5999, 15999)
    assert found == {"WORKQUEUE_LAB_BROKER": "url", "WORKQUEUE_LAB_URL": "amqp://lab:lab@127.0.0.1:5999/%2F",
                     "WORKQUEUE_LAB_MGMT_URL": "http://lab:lab@127.0.0.1:15999"}


@pytest.mark.needs_root("RabbitMQ 4.0 runs as root in a chroot the lab builds")
def test_every_notebook_runs_the_compose_way(tmp_path):
    home = new_home("wqlab-compose-lab-")  # the lab container's own nodes (04's private node, 08's cluster)
    failed: dict[str, str] = {}
    not_checked: dict[str, list[str]] = {}
    try:
        with compose_node("4.0") as broker_node:
            homes = (home, Path(os.environ["WORKQUEUE_LAB_HOME"]))
            lab_env = compose_lab_environment(broker_node.amqp_port, broker_node.mgmt_port)
            with env(**lab_env, WORKQUEUE_LAB_RABBITMQ="4.0", WORKQUEUE_LAB_HOME=str(home)):
                for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
                    out = tmp_path / "run" / path.name
                    try:
                        build_site.execute(path, out, None, 900, tmp_path / "kernels.log")
                    except SystemExit as stop:  # one sentence: which cell failed, and where its copy is
                        failed[path.name] = str(stop)
                        continue
                    for cell in nbformat.read(out, as_version=4).cells:
                        if lines := not_checked_lines(cell.get("outputs", [])):
                            not_checked[cell.id] = lines
    finally:
        clean(home)
    assert failed == {}, failed
    assert set(not_checked) == NEEDS_CONTROL, not_checked
    assert leftovers(*homes) == []  # the compose node, 04's node and 08's cluster: all ended, by PID
