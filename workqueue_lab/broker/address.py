"""What a broker URL says (host, port, vhost, credentials masked) and whether a TCP port answers."""

from __future__ import annotations

import logging
import socket
import urllib.parse

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def mask(url: str) -> str:
    """The URL with its password replaced by ***, for everything shown to a person."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def host_port(url: str, default_port: int = 5672) -> tuple[str, int]:
    """(host, port) of an amqp:// or http:// URL (localhost and ``default_port`` when absent)."""
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "localhost", parts.port or default_port


def vhost(url: str) -> str:
    """The virtual host an amqp:// URL names ("/" when the path is empty, as pika reads it)."""
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def is_loopback(host: str | None) -> bool:
    return host in LOOPBACK_HOSTS


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts a TCP connection on host:port within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError as exc:  # refused, unreachable, timed out: nothing answers there
        log.debug("port %s:%s closed: %s", host, port, exc)
        return False
