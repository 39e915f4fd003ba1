"""Ports of a private node: pick free ones on loopback, and probe whether a port is this node's AMQP.

(Whether any port answers at all: ``broker.address.port_open``.)
"""

from __future__ import annotations

import time

from ...errors import BrokerUnavailable

AMQP_PORT, MGMT_PORT, DIST_PORT = 5673, 15673, 25673  # first candidates; upward from there


PORT_TRIES = 200


LOOPBACK = "127.0.0.1"


def amqp_answers(port: int, nodename: str, timeout: float = 1.0, expect: str | None = None) -> bool:
    """True if ``port`` speaks AMQP 0-9-1 *and* is the node ``nodename`` (not a stranger on the port).

    ``expect``: the text the server properties must contain (default: the node's own id); a
    cluster member reports the cluster's name instead, which is the same on every member."""
    import socket

    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            data = b""
            while len(data) < 7 or len(data) < 8 + int.from_bytes(data[3:7], "big"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    # Frame type 1 (method) carrying connection.start (class 10, method 10);
    # server properties include cluster_name, which defaults to "<node id>@<host>".
    if len(data) < 11 or data[0] != 1 or data[7:11] != b"\x00\x0a\x00\x0a":
        return False
    return (expect or nodename.split("@")[0] + "@").encode() in data


def port_free(port: int) -> bool:
    """True if nothing listens on port (on loopback or a wildcard address)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR ignores TIME_WAIT leftovers (the broker sets it too) but
        # still fails on a listening socket, ours or anybody else's.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def pick_ports(exclude: tuple[int, ...] | list[int] = (),
               start: tuple[int, int, int] = (AMQP_PORT, MGMT_PORT, DIST_PORT)) -> tuple[int, int, int]:
    """Free AMQP, management and distribution ports, searched upward from ``start``, none of them in
    ``exclude`` (another cluster member's)."""
    chosen: list[int] = []
    for first in start:
        for port in range(first, first + PORT_TRIES):
            if port not in chosen and port not in exclude and port_free(port):
                chosen.append(port)
                break
        else:
            raise BrokerUnavailable(
                f"No free port in {first}-{first + PORT_TRIES - 1}; stop whatever uses them and start again."
            )
    return chosen[0], chosen[1], chosen[2]


def wait_ports_free(ports: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if all(port_free(p) for p in ports):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)

