"""The RabbitMQ nodes a test run starts, each in a home of its own: started, stopped by PID, and proof that
nothing is left running or mounted afterwards (make test runs it; a learner's own node is never touched).

    python tests/node_homes.py home                 # print a new home (under /tmp, mode 0755)
    python tests/node_homes.py start HOME           # RabbitMQ 4.0 (built if need be), denying what 4.3 denies
    python tests/node_homes.py clean HOME [SERIES]  # stop the node and cluster of HOME (by PID), delete it
    python tests/node_homes.py check [HOME ...]     # exit 1 if a node of those homes still runs, or a build's
                                                    # /proc mount or epmd outlived its last node

SERIES is ``4.0`` (the default) or ``system``.  Also imported by tests: ``compose_node`` boots a node with
docker-compose.yml's own RabbitMQ files.
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
from workqueue_lab.broker.node import chroot, procs, users  # noqa: E402
from workqueue_lab.broker.node import files as node_files  # noqa: E402
from workqueue_lab.broker.node.files import read_state  # noqa: E402
from workqueue_lab.broker.node.procs import kill_leftovers  # noqa: E402

SERIES = "4.0"
COMPOSE_CONF = REPO / "docker" / "rabbitmq" / "rabbitmq.conf"
COMPOSE_ADVANCED = REPO / "docker" / "rabbitmq" / "advanced.config"


def new_home(prefix: str = "wqlab-run-") -> Path:
    """A fresh WORKQUEUE_LAB_HOME under /tmp (0755: a node that drops root must reach it)."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@contextlib.contextmanager
def env(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block."""
    def put(settings: dict[str, str | None]) -> None:
        for k, v in settings.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    before = {k: os.environ.get(k) for k in values}
    try:
        put(values)
        yield
    finally:
        put(before)


def clean(home: Path, series: str = SERIES) -> None:
    """Stop the node and the cluster a run left under ``home`` (each by PID), undo a chroot's mount and epmd
    once none of its nodes is left, and delete the home (inside the chroot and outside)."""
    with env(WORKQUEUE_LAB_HOME=str(home), WORKQUEUE_LAB_RABBITMQ=series):
        t = users.target()
        if t is None:  # never built, or its user never made: nothing can have run
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
    """What a run left behind: a process of a node kept in ``homes`` (the installed RabbitMQ's or a build's), or a
    RabbitMQ build whose /proc mount or epmd outlived its last node.  A node of someone else's home (a learner's
    own 4.0 node) is none of this run's business, and the mount it needs is no leak."""
    places = {str(h.resolve()) for h in homes}
    roots = [chroot.root_of(s) for s in chroot.RELEASES if chroot.built(s) is not None]
    places |= {str(root) + p for root in roots for p in list(places)}
    found = []
    for pid, comm, _ in procs.processes_under("cwd", sorted(places)) if places else ():
        with contextlib.suppress(OSError):  # it may end meanwhile
            found.append(f"pid {pid} ({comm}) runs in {os.readlink(f'/proc/{pid}/cwd')}")
    for root in roots:
        running = chroot.processes(root)
        if any(comm != "epmd" for _, comm in running):
            continue  # a node runs there (ours is listed above): its mount and epmd are in use
        found += [f"pid {pid} ({comm}) outlived the nodes of {root}" for pid, comm in running]
        found += [f"{point} is still mounted with no node running" for point in chroot.mounts_under(root)]
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
AS_IN_4_3 = ("# Written by tests/node_homes.py: what RabbitMQ 4.3 denies by default, denied here already, so that a\n"
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
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "home" and not args:
        print(new_home())
        return 0
    if command == "start" and len(args) == 1:
        start(Path(args[0]))
        meta = chroot.built(SERIES) or {}
        print(f"== RabbitMQ {meta.get('version')}: built in {meta.get('seconds')} s, {meta.get('mb')} MB "
              f"({chroot.root_of(SERIES)}, {meta.get('built_at')})")
        return 0
    if command == "clean" and len(args) in (1, 2):
        clean(Path(args[0]), *args[1:])
        return 0
    if command == "check":
        left = leftovers(*map(Path, args))
        for line in left:
            print(f"LEFT BEHIND: {line}", file=sys.stderr)
        what = f"the nodes of {', '.join(args)} and the RabbitMQ builds" if args else "the RabbitMQ builds"
        print(f"== {what}: nothing left running or mounted" if not left
              else f"== {what}: something was left behind (see above)")
        return 1 if left else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
