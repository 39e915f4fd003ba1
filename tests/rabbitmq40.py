"""RabbitMQ 4.0 for the tests and `make test`: nodes in a home of their own, stopped by PID, and proof that
nothing is left running or mounted afterwards.

    python tests/rabbitmq40.py home            # print a new home for a 4.0 run (under /tmp, mode 0755)
    python tests/rabbitmq40.py start HOME      # build 4.0 if need be; boot the node of HOME denying what 4.3 denies
    python tests/rabbitmq40.py clean HOME      # stop every node and cluster of that home (by PID), delete it
    python tests/rabbitmq40.py check           # exit 1 if a process runs in, or anything is mounted under, a chroot

Also imported by tests: ``compose_node`` boots a node with docker-compose.yml's own RabbitMQ files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workqueue_lab.broker import node as private_node  # noqa: E402
from workqueue_lab.broker.cluster import layout  # noqa: E402
from workqueue_lab.broker.node import chroot, users  # noqa: E402
from workqueue_lab.broker.node import files as node_files  # noqa: E402
from workqueue_lab.broker.node.files import read_state  # noqa: E402
from workqueue_lab.broker.node.procs import kill_leftovers  # noqa: E402

SERIES = "4.0"
COMPOSE_CONF = REPO / "docker" / "rabbitmq" / "rabbitmq.conf"
COMPOSE_ADVANCED = REPO / "docker" / "rabbitmq" / "advanced.config"


def new_home(prefix: str = "wqlab-40-") -> Path:
    """A fresh WORKQUEUE_LAB_HOME under /tmp (0755: a node that drops root must reach it)."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@contextlib.contextmanager
def env(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block."""
    before = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def clean(home: Path, series: str = SERIES) -> None:
    """Stop the node and the cluster a run left under ``home`` (each by PID), undo the chroot's mount and epmd
    once none of its nodes is left, and delete the home, inside the chroot and outside."""
    with env(WORKQUEUE_LAB_HOME=str(home), WORKQUEUE_LAB_RABBITMQ=series):
        t = users.target()
        if t is None:  # never built: nothing can have run
            shutil.rmtree(home, ignore_errors=True)
            return
        private_node.stop()
        cluster = t.base.parent / "cluster"
        for i in range(int((layout.read_cluster_state(cluster) or {}).get("n", 0))):
            member = cluster / f"c{i + 1}"
            kill_leftovers(member, (read_state(member) or {}).get("pgid"))
        t.install.release()
        shutil.rmtree(t.base.parent, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


def leftovers(*homes: Path) -> list[str]:
    """What still runs in, or is mounted under, any RabbitMQ release the lab built; with ``homes``, only the
    processes of nodes in those homes (another run's or a learner's node is none of this run's business)."""
    found = []
    for series in chroot.RELEASES:
        if chroot.built(series) is None:
            continue
        root = chroot.root_of(series)
        inside = [str(root) + str(h.resolve()) for h in homes]
        for pid, comm in chroot.processes(root):
            with contextlib.suppress(OSError):
                cwd = os.readlink(f"/proc/{pid}/cwd")
                if not homes or any(cwd == d or cwd.startswith(d + "/") for d in inside):
                    found.append(f"pid {pid} ({comm}) runs in {cwd}")
        if not homes:
            found += [f"{point} is mounted" for point in chroot.mounts_under(root)]
    return found


@contextlib.contextmanager
def compose_node(series: str = SERIES) -> Iterator[private_node.NodeInfo]:
    """A private node of its own home, booted with the two files docker-compose.yml gives its broker:
    ``docker/rabbitmq/rabbitmq.conf`` as a conf.d file, ``docker/rabbitmq/advanced.config``.  While the block
    runs, WORKQUEUE_LAB_HOME and WORKQUEUE_LAB_RABBITMQ point at it; afterwards it is stopped (by PID) and
    deleted, and the environment is as before."""
    home = new_home("wqlab-compose-")
    try:
        with env(WORKQUEUE_LAB_HOME=str(home), WORKQUEUE_LAB_RABBITMQ=series):
            t = users.target(create_missing=True) if series == "system" else _built_target(series)
            conf_d = t.base / "conf.d"
            conf_d.mkdir(parents=True, exist_ok=True)
            shutil.copy(COMPOSE_CONF, conf_d / "20-workqueue-lab.conf")  # read after the node's own rabbitmq.conf
            (conf_d / "20-workqueue-lab.conf").chmod(0o644)
            if t.drop:  # under root the system's node runs as 'wqlab', which must own its files
                for d in (t.base, conf_d):
                    os.chown(d, t.uid, t.gid)
            advanced = node_files.ADVANCED_CONFIG
            node_files.ADVANCED_CONFIG = COMPOSE_ADVANCED.read_text()  # what the node writes as advanced.config
            try:
                info = private_node.start(wait=120)
            finally:
                node_files.ADVANCED_CONFIG = advanced
            yield info  # inside: private_node.ctl() and friends act on this node
    finally:
        clean(home, series)


# RabbitMQ 4.3 denies these deprecated features by default (docs/versions.md); 4.0 permits them unless told.
AS_IN_4_3 = ("# Written by tests/rabbitmq40.py: what RabbitMQ 4.3 denies by default, denied here already, so that a\n"
             "# run of the course on this node shows it needs neither.\n"
             "deprecated_features.permit.transient_nonexcl_queues = false\n"
             "deprecated_features.permit.global_qos = false\n")


def start(home: Path, series: str = SERIES) -> private_node.NodeInfo:
    """Boot the node of ``home`` (building the release first if need be), denying what 4.3 denies."""
    with env(WORKQUEUE_LAB_HOME=str(home), WORKQUEUE_LAB_RABBITMQ=series):
        t = _built_target(series)
        conf_d = t.base / "conf.d"
        conf_d.mkdir(parents=True, exist_ok=True)
        (conf_d / "30-as-in-4.3.conf").write_text(AS_IN_4_3)
        info = private_node.start(wait=120)
        print(f"== RabbitMQ {series} node {info.nodename} at {info.url} (home {home}; "
              f"{', '.join(line.split(' =')[0] for line in AS_IN_4_3.splitlines() if ' = ' in line)} = false)")
        return info


def _built_target(series: str) -> users.Target:
    from workqueue_lab.broker.node import install

    install.for_series(series, build=True)
    t = users.target(series=series)
    assert t is not None
    return t


def main(argv: list[str]) -> int:
    if argv[:1] == ["home"]:
        print(new_home())
        return 0
    if argv[:1] == ["start"] and len(argv) == 2:
        start(Path(argv[1]))
        meta = chroot.built(SERIES) or {}
        print(f"== RabbitMQ {meta.get('version')}: built in {meta.get('seconds')} s, {meta.get('mb')} MB "
              f"({chroot.root_of(SERIES)}, {meta.get('built_at')})")
        return 0
    if argv[:1] == ["clean"] and len(argv) == 2:
        clean(Path(argv[1]))
        return 0
    if argv[:1] == ["check"]:
        left = leftovers()
        for line in left:
            print(f"LEFT BEHIND: {line}", file=sys.stderr)
        print(f"== RabbitMQ builds: nothing left running or mounted ({', '.join(chroot.RELEASES)})" if not left
              else "== RabbitMQ builds: something was left behind (see above)")
        return 1 if left else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
