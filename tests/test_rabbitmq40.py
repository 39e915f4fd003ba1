"""RabbitMQ 4.0 as a node the lab runs and controls: built once from Debian 13's packages into a chroot, booted as
root on its own loopback ports, with the same control as the private 3.10 node, and ended by PID.

The pure parts (which mirror apt names, why a build is refused) run anywhere; the node needs root (CI is root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pika
import pytest
from helpers import wait_until
from node_homes import clean, env, leftovers, new_home

from workqueue_lab import settings
from workqueue_lab.broker import node as private_node
from workqueue_lab.broker.discovery import private_broker
from workqueue_lab.broker.node import chroot, install
from workqueue_lab.errors import LabError

ROOT = Path(__file__).resolve().parents[1]
needs_root = pytest.mark.needs_root("RabbitMQ 4.0 runs as root in a chroot")


# --- which mirror, and when the lab refuses -----------------------------------------------------------------


def test_the_mirror_is_the_first_debian_archive_apt_names_in_either_format():
    one_line = ("# deb http://old.example/debian buster main\n"
                "deb [signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian/ bookworm main contrib\n")
    deb822 = ("Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
              "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\nComponents: main\n")
    assert chroot.apt_mirror([one_line]) == "http://mirror.example/debian"
    assert chroot.apt_mirror([deb822]) == "http://deb.example/debian"
    security_only = "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
    disabled = "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: trixie\n"
    ubuntu = "deb http://ubuntu-mirror.example/ubuntu jammy main\n"
    sources_only = "deb-src http://src.example/debian bookworm main\n"
    assert chroot.apt_mirror([security_only, disabled, ubuntu, sources_only]) is None
    assert chroot.apt_mirror([ubuntu, deb822]) == "http://deb.example/debian"


@pytest.mark.parametrize("case, words", [
    ("not root", "runs as root in a chroot the lab builds from Debian 13's packages; run the lab as root"),
    ("no debootstrap", "debootstrap is not installed; `apt-get install debootstrap`"),
    ("no mirror", "names no Debian mirror"),
])
def test_a_build_that_cannot_happen_is_refused_in_one_sentence(case, words, monkeypatch):
    if case == "not root":
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
    elif case == "no debootstrap":
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        monkeypatch.setattr(chroot, "_debootstrap", lambda: None)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        monkeypatch.setattr(chroot, "_debootstrap", lambda: "/usr/sbin/debootstrap")
        monkeypatch.setattr(chroot, "_apt_texts", lambda: ["deb http://ubuntu-mirror.example/ubuntu jammy main\n"])
    why = chroot.why_cannot_build("4.0")
    assert words in why and why.count(". ") == 0 and why.endswith(".") and "\n" not in why, why
    assert "WORKQUEUE_LAB_URL" in why or "unset WORKQUEUE_LAB_RABBITMQ" in why  # and what to do instead


def test_paths_inside_a_chroot_map_to_the_host_and_back():
    inst = install.Install("4.0", Path("/cache/rabbitmq-4.0/root"), chroot.SCRIPT)
    assert inst.inside(Path("/cache/rabbitmq-4.0/root/tmp/home/node")) == "/tmp/home/node"
    assert inst.host("/tmp/home/node") == Path("/cache/rabbitmq-4.0/root/tmp/home/node")
    assert inst.ctl_command("-n", "x@localhost", "status")[1:] == [
        "/cache/rabbitmq-4.0/root", "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "x@localhost", "status"]
    with pytest.raises(LabError, match="outside RabbitMQ 4.0's chroot"):
        inst.inside(Path("/elsewhere"))
    system = install.system(Path("/usr/lib/rabbitmq/bin/rabbitmq-server"))
    assert system.inside(Path("/x/y")) == "/x/y" and system.command(["a"]) == ["a"] and system.env() == {}


@needs_root
def test_a_mirror_that_does_not_answer_fails_the_build_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.ENV_BUILDS, str(tmp_path))  # never the real build
    monkeypatch.setattr(chroot, "apt_mirror", lambda texts: "http://127.0.0.1:9/debian")  # nothing listens there
    with pytest.raises(LabError) as err:
        chroot.build("4.0", say=lambda line: None)
    text = str(err.value)
    assert text.startswith("debootstrap could not build RabbitMQ 4.0 from http://127.0.0.1:9/debian"), text
    assert "\n" not in text and text.endswith(".")
    assert chroot.built("4.0") is None and not (tmp_path / "rabbitmq-4.0" / "root").exists()


@needs_root
def test_a_plain_user_asking_for_40_gets_one_line_and_nothing_is_made():
    # Debian's own python3: the venv's interpreter lives under /root, which a plain user cannot enter; starting
    # a node needs nothing but the standard library, so the lab's code imports without the venv's packages.
    # The code is copied where that user may read it: a clone (CI's, pytest's tmp_path) may sit in a 0700 folder.
    shared = Path(tempfile.mkdtemp(prefix="wqlab-40-plain-"))
    try:
        shared.chmod(0o755)
        shutil.copytree(ROOT / "workqueue_lab", shared / "workqueue_lab",
                        ignore=shutil.ignore_patterns("__pycache__"))
        home = shared / "home"
        done = subprocess.run(["/usr/bin/python3", "-m", "workqueue_lab", "node", "start", "--rabbitmq", "4.0"],
                              capture_output=True, text=True, timeout=60, user=65534, group=65534, cwd="/",
                              env={"PATH": os.environ["PATH"], "HOME": "/tmp", "PYTHONPATH": str(shared),
                                   "PYTHONDONTWRITEBYTECODE": "1", "WORKQUEUE_LAB_HOME": str(home)})
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("workqueue-lab: RabbitMQ 4.0 runs ") and "root" in done.stderr, done.stderr
        assert not home.exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# --- the node -----------------------------------------------------------------------------------------------


@needs_root
def test_the_40_node_boots_is_controlled_like_the_private_node_and_leaves_nothing(tmp_path):
    home = new_home("wqlab-40-test-")
    try:
        with env(WORKQUEUE_LAB_HOME=str(home), WORKQUEUE_LAB_RABBITMQ="4.0"):
            t0 = time.monotonic()
            info = private_node.start(wait=120)
            boot = time.monotonic() - t0
            broker = private_broker(info)
            meta = chroot.built("4.0")
            root = chroot.root_of("4.0")
            assert broker.version == meta["version"] and broker.version.startswith("4.0."), (broker.version, meta)
            assert info.series == "4.0" and info.base.is_relative_to(root)
            assert broker.control.abilities() == {"stats", "restart", "stop", "kill", "settings", "ctl"}
            beam = private_node.pid()
            assert (beam, "beam.smp") in chroot.processes(root)  # it runs inside the chroot, found by PID
            assert str((root / "proc").resolve()) in chroot.mounts_under(root)

            queue = settings.name("r40_durable")
            with broker.channel() as ch:  # a durable queue with a persistent message, for the restart below
                ch.queue_declare(queue=queue, durable=True)
                ch.confirm_delivery()
                ch.basic_publish("", queue, b"Task 1.", pika.BasicProperties(delivery_mode=2))
            assert wait_until(lambda: broker.queue_stats(queue).ready == 1, timeout=10)  # rabbitmqctl, live
            before = broker.control.get_setting("consumer_timeout")
            broker.control.set_setting("consumer_timeout", 4321)
            assert broker.control.get_setting("consumer_timeout") == 4321
            broker.control.set_setting("consumer_timeout", before)

            broker.restart()  # stop and start, same ports and data
            assert broker.queue_stats(queue).ready == 1 and private_node.pid() != beam
            beam = private_node.pid()
            broker.control.kill()  # SIGKILL by PID: a crash
            assert wait_until(lambda: not Path(f"/proc/{beam}").exists(), timeout=10)
            private_node.restart()
            assert broker.queue_stats(queue).ready == 1  # persistent and confirmed: it survived the crash
            assert private_node.stop()
            assert leftovers(home) == []  # no process of this home's node is left
        print(f"4.0 node boot: {boot:.1f} s")
    finally:
        clean(home)
    assert leftovers(home) == []


@needs_root
def test_kill_and_stop_end_only_the_nodes_of_their_own_home():
    """Two 4.0 nodes share the chroot (and its /proc mount and epmd): stopping one leaves the other running."""
    homes = [new_home("wqlab-40-a-"), new_home("wqlab-40-b-")]
    try:
        infos = []
        for home in homes:
            with env(WORKQUEUE_LAB_HOME=str(home), WORKQUEUE_LAB_RABBITMQ="4.0"):
                infos.append(private_node.start(wait=120))
        with env(WORKQUEUE_LAB_HOME=str(homes[0]), WORKQUEUE_LAB_RABBITMQ="4.0"):
            assert private_node.stop()
        root = chroot.root_of("4.0")
        assert leftovers(homes[0]) == [] and leftovers(homes[1]) != []
        assert str((root / "proc").resolve()) in chroot.mounts_under(root)  # the other node still needs it
        with env(WORKQUEUE_LAB_HOME=str(homes[1]), WORKQUEUE_LAB_RABBITMQ="4.0"):
            beam = private_node.pid()
            os.kill(beam, signal.SIGKILL)  # as the OOM killer would: stop() finds nothing to stop gracefully
            assert wait_until(lambda: not Path(f"/proc/{beam}").exists(), timeout=10)
            private_node.stop()
        assert leftovers(*homes) == []
    finally:
        for home in homes:
            clean(home)
