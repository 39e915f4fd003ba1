"""Why a connection failed, in one sentence that names the fix."""

from __future__ import annotations

import socket

from ..errors import BrokerUnavailable, LabError
from .address import host_port, is_loopback, mask, vhost

HOW_TO_GET_A_BROKER = (
    "start one with `sudo rabbitmq-server -detached` (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`), "
    "or run `docker compose up rabbitmq` and set WORKQUEUE_LAB_URL=amqp://lab:lab@127.0.0.1:5672/%2F (its user is "
    "lab), or set WORKQUEUE_LAB_URL=amqp://user:pass@host:5672/%2F"
)
COMPOSE_USER = (" (if this is the compose file's broker, its user is 'lab', not 'guest': set "
                "WORKQUEUE_LAB_URL=amqp://lab:lab@127.0.0.1:5672/%2F)")


def explain_connection_error(exc: BaseException, url: str) -> LabError:
    """One sentence that names the fix for a failed connection attempt (the password never shows)."""
    import urllib.parse

    import pika.exceptions as pe

    host, port = host_port(url)
    user = urllib.parse.urlsplit(url).username
    where = mask(url)
    inner = exc
    if isinstance(exc, pe.AMQPConnectionError) and exc.args and isinstance(exc.args[0], BaseException):
        inner = exc.args[0]
    text = str(inner)
    if isinstance(inner, socket.gaierror) or "gaierror" in text or "Name or service not known" in text:
        return BrokerUnavailable(f"Cannot resolve host '{host}' in {where}; check the host name.")
    if isinstance(inner, pe.ProbableAuthenticationError) or "ACCESS_REFUSED" in text or "403" in text:
        if not is_loopback(host):
            hint = " (the guest user only works from localhost)" if user == "guest" else ""
        else:
            hint = COMPOSE_USER if user == "guest" else ""
        return LabError(f"RabbitMQ at {host}:{port} refused user '{user}'{hint}; "
                        "check the user name and password in the URL.")
    if "NOT_ALLOWED" in text and "refused" in text:  # the vhost exists, but this user has no permission on it
        name = vhost(url)
        return LabError(f"User '{user}' may not use virtual host '{name}' on {host}:{port}; check that the URL "
                        "is your own line of the class sheet, or ask for permissions on that vhost.")
    if "NOT_ALLOWED" in text or "vhost" in text or "530" in text:
        name = vhost(url)
        return LabError(f"Virtual host '{name}' does not exist on {host}:{port}; use %2F for the default "
                        f"vhost or create it with `rabbitmqctl add_vhost {name}`.")
    if isinstance(inner, pe.IncompatibleProtocolError) or "IncompatibleProtocol" in repr(inner):
        return BrokerUnavailable(f"Something at {host}:{port} is not RabbitMQ's AMQP port; check the port (5672).")
    # refused, timed out, reset: nothing usable listens there
    return BrokerUnavailable(f"No RabbitMQ answers at {host}:{port} ({where}); {HOW_TO_GET_A_BROKER}.")
