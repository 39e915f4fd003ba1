"""The `workqueue-lab` command: broker status|start|stop|reset, node start|stop|status|url|restart|kill,
cluster status|stop, new-task, worker, classroom create|status|delete.

Errors a user can fix print one line and exit with status 1; no stack traces.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .engine.topology import TASK_QUEUE
from .errors import LabError
from .settings import RABBITMQ_SERIES


def _broker_status(args: argparse.Namespace) -> int:
    import pika.exceptions

    from .broker.discovery import find_broker

    b = find_broker(args.force)
    print(f"RabbitMQ {b.version} ({b.kind}) at {b.masked_url}")
    print(f"management UI: {b.mgmt_ui_link() or 'not available'}")
    queue = _queue(args.queue)
    try:
        stats = b.queue_stats(queue)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise LabError(f"RabbitMQ refused to show queue {queue!r} ({exc.reply_text}); "
                           "check this user's permissions.") from None
        print(f"queue {queue}: not declared yet (a worker or `workqueue-lab new-task` declares it)")
        return 0
    print(f"queue {stats.name}: ready={stats.ready} unacked={stats.unacked} consumers={stats.consumers}")
    return 0


def _broker_start(args: argparse.Namespace) -> int:
    from .broker.discovery import find_broker

    b = find_broker(args.force)
    print(f"RabbitMQ {b.version} ({b.kind}) ready at {b.masked_url}")
    return 0


def _broker_stop(args: argparse.Namespace) -> int:
    from .broker import node as private_node

    if private_node.stop():
        print("Stopped the lab's private RabbitMQ node.")
    else:
        print("No private node of the lab was running; other brokers are left alone.")
    return 0


def _broker_reset(args: argparse.Namespace) -> int:
    # this module imports engine.topology, which registers the course's topologies: reset finds them
    from .broker.discovery import find_broker

    deleted = find_broker(args.force).reset()
    print("Deleted: " + (", ".join(deleted) if deleted else "nothing (no lab queues or exchanges found)"))
    return 0


def _node_start(args: argparse.Namespace) -> int:
    import time

    from .broker import node as private_node

    if args.background:
        already = private_node.running()
        info = already or private_node.start(wait=0, memory_mb=args.memory_mb)
        verb = "is running" if already else "is booting"
        print(f"Private RabbitMQ node {info.nodename} {verb} at {info.url} (log {private_node.boot_log(info.base)})")
        return 0
    t0 = time.monotonic()
    info = private_node.start(wait=args.wait, memory_mb=args.memory_mb)
    print(f"Private RabbitMQ node {info.nodename} ready at {info.url} "
          f"(management {info.mgmt_url}) in {time.monotonic() - t0:.1f} s")
    return 0


def _node_stop(args: argparse.Namespace) -> int:
    from .broker import node as private_node

    print("stopped" if private_node.stop() else "no private node was running")
    return 0


def _node_restart(args: argparse.Namespace) -> int:
    from .broker import node as private_node

    info = private_node.restart(wait=args.wait)
    print(f"Private RabbitMQ node {info.nodename} restarted at {info.url}")
    return 0


def _node_kill(args: argparse.Namespace) -> int:
    from .broker import node as private_node

    beam = private_node.pid()
    if not private_node.kill():
        print("no private node is running", file=sys.stderr)
        return 1
    print(f"killed the private node's Erlang VM (pid {beam}) with SIGKILL; `workqueue-lab node restart` brings it back")
    return 0


def _node_url(args: argparse.Namespace) -> int:
    from .broker import node as private_node

    info = private_node.running()
    if info is None:
        print("no private node is running", file=sys.stderr)
        return 1
    print(info.url)
    return 0


def _node_status(args: argparse.Namespace) -> int:
    from .broker import node as private_node

    info = private_node.running()
    if info is None:
        print("no private node is running")
        return 1
    from .broker.address import mask

    # masked as everywhere a person reads a URL; `workqueue-lab node url` prints it whole, for programs
    print(f"node:       {info.nodename}\npid:        {private_node.pid()}\namqp:       {mask(info.url)}\n"
          f"management: {info.mgmt_url}\nbase:       {info.base}\nrabbitmq:   {_release(info.series)}")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    from .broker.cluster import Cluster

    cluster = Cluster.existing(series=args.rabbitmq)
    if cluster is None:
        print("no cluster was started here")
        return 1
    up = {m.name for m in cluster.running()}
    for m in cluster.nodes:
        print(f"{m.name}  amqp 127.0.0.1:{m.amqp_port}  " + (f"running (pid {m.pid})" if m.name in up else "stopped"))
    print(f"base: {cluster.base}")
    return 0 if up else 1


def _cluster_stop(args: argparse.Namespace) -> int:
    from .broker.cluster import Cluster

    cluster = Cluster.existing(series=args.rabbitmq)
    running = [m for m in cluster.nodes if m.pids] if cluster is not None else []
    if not running:
        print("no cluster node was running")
        return 0
    cluster.stop()  # SIGTERM to each member's VM by PID, then whatever is left of its processes
    print(f"stopped {len(running)} cluster node(s)")
    return 0


def _release(series: str) -> str:
    """The RabbitMQ a node runs, in words: the installed one, or a built release and what its build took."""
    if series == "system":
        return "the installed rabbitmq-server"
    from .broker.node import chroot

    meta = chroot.built(series) or {}
    return (f"{meta.get('version', series)} from {chroot.release(series).debian}'s packages, in the chroot "
            f"{chroot.root_of(series)} (built in {meta.get('seconds', '?')} s, {meta.get('mb', '?')} MB)")


def _queue(name: str) -> str:
    from . import settings
    return settings.name(name)


def _new_task(args: argparse.Namespace) -> int:
    from .broker.discovery import find_broker
    from .engine.producer import publish

    broker = find_broker()
    queue = _queue(args.queue)
    with broker.channel() as ch:
        ch.queue_declare(queue=queue, durable=True)
    message = " ".join(args.message) or "Hello World!"
    publish(broker, queue, [message], persistent=not args.transient)
    print(f" [x] Sent {message!r}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    """The lesson's worker loop on one connection in this process's main thread."""
    from .broker.discovery import find_broker
    from .engine.scenario import check_prefetch
    from .lessons.callbacks import lesson_callback

    prefetch = check_prefetch(args.prefetch)
    conn = find_broker().connect()
    channel = conn.channel()
    queue = _queue(args.queue)
    channel.queue_declare(queue=queue, durable=True)
    channel.basic_qos(prefetch_count=prefetch)
    channel.basic_consume(queue=queue, on_message_callback=_flushing(lesson_callback))
    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        print(" [*] Stopping; unacknowledged tasks go back to the queue.")
    finally:
        if conn.is_open:
            conn.close()
    return 0


def _flushing(callback):
    def wrapped(ch, method, properties, body):
        callback(ch, method, properties, body)
        sys.stdout.flush()

    return wrapped


def _classroom_create(args: argparse.Namespace) -> int:
    from . import classroom

    sheet, people = classroom.create(args.admin_url, args.learners, args.prefix, args.out, args.amqp_port)
    span = people[0].name + (f" .. {people[-1].name}" if len(people) > 1 else "")
    print(f"Created {len(people)} learners on {_masked(args.admin_url)}: a vhost and a user each ({span}), "
          "permissions on their own vhost only.")
    print(f"Credentials sheet (mode 600): {sheet}; what was made: {classroom.state_path(sheet)}")
    return 0


def _classroom_status(args: argparse.Namespace) -> int:
    from . import classroom

    rows = classroom.status(args.admin_url, _sheet(args))
    print(f"{'learner':<16}{'connected':<11}{'connections':>12}{'published':>11}  queues (messages published)")
    for r in rows:
        queues = ", ".join(f"{q}={n}" for q, n in sorted(r.queues.items())) or "-"
        print(f"{r.name:<16}{'yes' if r.connected else 'not yet':<11}{r.connections:>12}{r.published:>11}  {queues}")
    print("connected: an open connection in the learner's vhost now, or any message published there (RabbitMQ "
          "keeps no login history); counts are the management API's message_stats, refreshed every 5 s.")
    return 0


def _classroom_delete(args: argparse.Namespace) -> int:
    from . import classroom

    sheet = _sheet(args)
    gone = classroom.delete(args.admin_url, sheet)
    print("Deleted: " + (", ".join(gone) or "nothing"))
    print(f"Removed {sheet} and {classroom.state_path(sheet)}.")
    return 0


def _sheet(args: argparse.Namespace):
    from . import classroom

    return args.out or classroom.default_sheet(args.prefix)


def _masked(url: str) -> str:
    from .broker.address import mask

    return mask(url)


def _prefetch(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; use e.g. 1") from None


def build_parser() -> argparse.ArgumentParser:
    from .broker.node import DEFAULT_MEMORY_MB

    p = argparse.ArgumentParser(prog="workqueue-lab", description="RabbitMQ Work Queues lab")
    sub = p.add_subparsers(dest="command", required=True)

    broker = sub.add_parser("broker", help="find, start, stop or clean the course's RabbitMQ")
    bsub = broker.add_subparsers(dest="action", required=True)
    for name, func, help_ in (("status", _broker_status, "where the broker is and the task queue's counts"),
                              ("start", _broker_start, "find a broker or start a private node"),
                              ("stop", _broker_stop, "stop the lab's private node (only that)"),
                              ("reset", _broker_reset, "delete the lab's own queues and exchanges")):
        sp = bsub.add_parser(name, help=help_)
        sp.add_argument("--force", choices=("url", "local", "docker", "private"), default=None,
                        help="use only this way of finding a broker")
        sp.add_argument("--queue", default=TASK_QUEUE)
        sp.set_defaults(func=func)

    node = sub.add_parser("node", help="the lab's private, non-root RabbitMQ node (Binder, laptops, tests)")
    nsub = node.add_subparsers(dest="action", required=True)
    ns = nsub.add_parser("start", help="start the node, or reuse it")
    ns.add_argument("--background", action="store_true", help="launch and return at once")
    ns.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="memory watermark, MiB")
    ns.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the node")
    ns.set_defaults(func=_node_start)
    nsub.add_parser("stop", help="stop the node").set_defaults(func=_node_stop)
    nsub.add_parser("status", help="show the node (exit 1 if not running)").set_defaults(func=_node_status)
    nsub.add_parser("url", help="print the AMQP URL of the running node (exit 1 if none)").set_defaults(func=_node_url)
    nsub.add_parser("kill", help="SIGKILL the node's VM (a crash; restart revives it)").set_defaults(func=_node_kill)
    nr = nsub.add_parser("restart", help="stop and start again, same ports and data")
    nr.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the node")
    nr.set_defaults(func=_node_restart)
    for sp in nsub.choices.values():
        sp.add_argument("--rabbitmq", choices=RABBITMQ_SERIES, default=None,
                        help="which RabbitMQ: the installed one (system, the default) or 4.0, built once into a "
                             "chroot from Debian 13's packages (root only); same as WORKQUEUE_LAB_RABBITMQ")

    cluster = sub.add_parser("cluster", help="the lab's private cluster (notebook 08): status or stop")
    csub = cluster.add_subparsers(dest="action", required=True)
    csub.add_parser("status", help="each node, running or not (exit 1 if none runs)").set_defaults(func=_cluster_status)
    csub.add_parser("stop", help="stop every node of the cluster, by PID").set_defaults(func=_cluster_stop)
    for sp in csub.choices.values():
        sp.add_argument("--rabbitmq", choices=RABBITMQ_SERIES, default=None,
                        help="the cluster of the installed RabbitMQ (system) or of 4.0; same as WORKQUEUE_LAB_RABBITMQ")

    nt = sub.add_parser("new-task", help="send one task (each '.' is a second of work)")
    nt.add_argument("message", nargs="*")
    nt.add_argument("--queue", default=TASK_QUEUE)
    nt.add_argument("--transient", action="store_true", help="do not persist the message to disk")
    nt.set_defaults(func=_new_task)

    wk = sub.add_parser("worker", help="consume tasks like the lesson's worker (Ctrl-C stops)")
    wk.add_argument("--queue", default=TASK_QUEUE)
    wk.add_argument("--prefetch", type=_prefetch, default=1)
    wk.set_defaults(func=_worker)

    _add_classroom(sub)
    return p


def _add_classroom(sub) -> None:
    from pathlib import Path

    cr = sub.add_parser("classroom", help="a class on one broker: a vhost and a user per learner")
    csub = cr.add_subparsers(dest="action", required=True)
    for name, func, help_ in (("create", _classroom_create, "create the learners and write the credentials sheet"),
                              ("status", _classroom_status, "per learner: connected? tasks published?"),
                              ("delete", _classroom_delete, "delete exactly what create made")):
        sp = csub.add_parser(name, help=help_)
        sp.add_argument("--admin-url", required=True, help="management API with an administrator's "
                        "credentials, e.g. http://admin:pass@host:15672 (never printed)")
        sp.add_argument("--prefix", default="class1", help="names: PREFIX-01, PREFIX-02, ... (default class1)")
        sp.add_argument("--out", type=Path, default=None,
                        help="the credentials sheet (default PREFIX-credentials.txt); its state file sits next to it")
        if name == "create":
            sp.add_argument("--learners", type=int, required=True, help="how many learners")
            sp.add_argument("--amqp-port", type=int, default=5672, help="AMQP port in the learners' URLs")
        sp.set_defaults(func=func)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rabbitmq", None):
        import os

        from .settings import ENV_RABBITMQ

        os.environ[ENV_RABBITMQ] = args.rabbitmq  # every node function reads it, as it reads WORKQUEUE_LAB_HOME
    try:
        return args.func(args)
    except LabError as exc:
        print(f"workqueue-lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
