"""``python -m workqueue_lab.broker.node {start,stop,status,url,restart}``: the private node from a shell."""

from __future__ import annotations

import time

from ...errors import LabError
from .files import DEFAULT_MEMORY_MB, boot_log
from .lifecycle import pid, restart, running, start, stop

_DOC_FIRST_LINE = "A private, non-root RabbitMQ node for Binder, laptops and destructive tests."


def main(argv: list[str] | None = None) -> int:
    """``python -m workqueue_lab.broker.node {start,stop,status,url,restart}``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m workqueue_lab.broker.node", description=_DOC_FIRST_LINE)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start the node, or reuse it")
    p_start.add_argument("--background", action="store_true", help="launch and return at once")
    p_start.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="memory watermark, MiB")
    p_start.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the node")
    sub.add_parser("stop", help="stop the node")
    sub.add_parser("status", help="show the node (exit 1 if not running)")
    sub.add_parser("url", help="print the AMQP URL of the running node (exit 1 if none)")
    p_restart = sub.add_parser("restart", help="stop and start again, same ports and data")
    p_restart.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the node")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "start":
            if args.background:
                already = running()
                info = already or start(wait=0, memory_mb=args.memory_mb)
                verb = "is running" if already else "is booting"
                log = boot_log(info.base)
                print(f"Private RabbitMQ node {info.nodename} {verb} at {info.url} (log {log})")
            else:
                t0 = time.monotonic()
                info = start(wait=args.wait, memory_mb=args.memory_mb)
                print(f"Private RabbitMQ node {info.nodename} ready at {info.url} "
                      f"(management {info.mgmt_url}) in {time.monotonic() - t0:.1f} s")
        elif args.cmd == "stop":
            print("stopped" if stop() else "no private node was running")
        elif args.cmd == "restart":
            info = restart(wait=args.wait)
            print(f"Private RabbitMQ node {info.nodename} restarted at {info.url}")
        elif args.cmd == "url":
            info = running()
            if info is None:
                print("no private node is running", file=sys.stderr)
                return 1
            print(info.url)
        elif args.cmd == "status":
            info = running()
            if info is None:
                print("no private node is running")
                return 1
            print(f"node:       {info.nodename}\npid:        {pid()}\namqp:       {info.url}\n"
                  f"management: {info.mgmt_url}\nbase:       {info.base}")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
