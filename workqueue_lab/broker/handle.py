"""The handle a notebook holds on one RabbitMQ: URL, version, connections, queue counts, clean-up.

How the broker was found is ``discovery``'s business; what the lab may do with it (restart, kill,
settings, rabbitmqctl) is ``broker.control``'s (see ``control``).  Management API: ``management``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import settings, versions
from ..errors import LabError
from . import erlang, management, registry
from .address import is_loopback, mask, vhost
from .connection import explain_connection_error
from .control import Control, UrlControl

if TYPE_CHECKING:  # pika is imported lazily: `import workqueue_lab` stays fast
    import pika

log = logging.getLogger(__name__)

__all__ = ["Broker", "QueueStats", "mask"]


@dataclass(frozen=True)
class QueueStats:
    """Counts the broker reports for one queue (unacked is None if it cannot tell)."""

    name: str
    ready: int
    unacked: int | None
    consumers: int


class Deleted(list):
    """The names ``reset()`` deleted: a list, shown in a notebook as one line instead of a bare list."""

    def __repr__(self) -> str:
        return f"reset: deleted {', '.join(self)}" if self else "reset: nothing of the lab's to delete"


def connection_name() -> str:
    """The ``connection_name`` client property of every connection this process opens through a Broker."""
    return f"workqueue-lab {os.getpid()}"


class Broker:
    """A handle on one RabbitMQ: URL, management URL, version, connections, stats, reset.

    ``control`` says what the lab may do with it (``broker.control.can("restart")``) and does it.
    """

    def __init__(self, url: str, control: Control | None = None, mgmt_url: str | None = None) -> None:
        self.url = url
        self.control = control if control is not None else UrlControl(url)
        self.mgmt_url = mgmt_url
        self._version: str | None = None
        self.declared: set[tuple[str, str]] = set()  # ("queue"|"exchange", name) declared here

    # --- what it is -----------------------------------------------------------
    @property
    def kind(self) -> str:
        """How the broker was found: url | local | docker | private."""
        return self.control.kind

    @property
    def masked_url(self) -> str:
        return mask(self.url)

    @property
    def masked_mgmt_url(self) -> str | None:
        return mask(self.mgmt_url) if self.mgmt_url else None

    @property
    def vhost(self) -> str:
        return vhost(self.url)

    def __repr__(self) -> str:
        return f"Broker({self.kind}: {self.masked_url}, RabbitMQ {self._version_for_display()})"

    def _repr_html_(self) -> str:
        mgmt = self.mgmt_ui_link()
        link = f' · management UI: <a href="{mgmt}" target="_blank">{mgmt}</a>' if mgmt else ""
        return (f"<b>RabbitMQ {self._version_for_display()}</b> ({self.kind}) at <code>{self.masked_url}</code>"
                f"{link}")

    def _version_for_display(self) -> str:
        """The version, or why it is unknown: showing a broker must never raise (a repr runs everywhere)."""
        try:
            return self.version
        except LabError:
            return "? (not reachable)"

    def mgmt_ui_link(self) -> str | None:
        """Management UI address without credentials (a browser asks for them).

        On JupyterHub/Binder the learner's browser cannot reach the pod's loopback,
        so the link goes through jupyter-server-proxy's ``<prefix>proxy/<port>/`` route.
        """
        if not self.mgmt_url:
            return None
        parts = urllib.parse.urlsplit(self.mgmt_url)
        hub_prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if hub_prefix and is_loopback(parts.hostname) and parts.port:
            return f"{hub_prefix.rstrip('/')}/proxy/{parts.port}/"
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc)) + "/"

    @property
    def version(self) -> str:
        if self._version is None:
            conn = self.connect()
            try:
                # pika internal on purpose: BlockingConnection has no public server_properties (only the
                # *_supported capability flags), and the management API's version needs the plugin
                raw = conn._impl.server_properties.get("version", b"?")
                self._version = raw.decode() if isinstance(raw, bytes) else str(raw)
            finally:
                conn.close()
        return self._version

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split(".")[:3] if p.isdigit())

    # --- connections ------------------------------------------------------------
    def parameters(self, **overrides) -> pika.URLParameters:
        import pika

        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = 60
        # named per process: `rabbitmqctl list_connections client_properties` tells the lab's own apart
        params.client_properties = {"connection_name": connection_name()}
        for key, value in overrides.items():
            setattr(params, key, value)
        return params

    def connect(self, **overrides) -> pika.BlockingConnection:
        """A new BlockingConnection, or a LabError naming the fix."""
        import pika

        try:
            return pika.BlockingConnection(self.parameters(**overrides))
        except Exception as exc:  # translate pika's many failure types into one sentence
            raise explain_connection_error(exc, self.url) from None

    @contextlib.contextmanager
    def channel(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        """A short-lived channel on its own connection, closed afterwards."""
        conn = self.connect()
        try:
            yield conn.channel()
        finally:
            try:
                conn.close()
            except Exception as exc:  # already closed by the broker (a channel error): nothing to close
                log.debug("closing %s: %s", self.masked_url, exc)

    # --- statistics ---------------------------------------------------------------
    def queue_stats(self, queue: str) -> QueueStats:
        """Ready, unacked and consumer counts, as the queue holds them now: rabbitmqctl, else the management
        API's queue totals, else AMQP alone (no unacked count)."""
        stats = self._stats_from_ctl(queue)
        if stats:
            return stats
        counts = self._counts_from_management(queue)
        with self.channel() as ch:
            ok = ch.queue_declare(queue=queue, passive=True).method  # live; raises 404 for a missing queue
        if counts is None:
            return QueueStats(queue, ok.message_count, None, ok.consumer_count)
        return QueueStats(queue, counts[0], counts[1], ok.consumer_count)

    def _counts_from_management(self, queue: str) -> tuple[int, int] | None:
        """(ready, unacked) from the management API, read from the queue itself, or None.

        Not ``/api/queues/<vhost>/<name>``: that serves the statistics database, which the broker refreshes
        every 5 s (collect_statistics_interval), and on RabbitMQ 4.0 not at all while a queue is idle (a
        message published 6 s earlier still read 0 there).  The queue list with ``enable_queue_totals``
        and ``disable_stats`` asks each queue for its counts at the moment of the request (3.10 and 4.0 alike).
        """
        query = urllib.parse.urlencode({"disable_stats": "true", "enable_queue_totals": "true", "page": 1,
                                        "page_size": 100, "name": f"^{re.escape(queue)}$", "use_regex": "true"})
        data = self.management_api(f"queues/{management.quote(self.vhost)}?{query}")
        items = data.get("items") if isinstance(data, dict) else None
        for item in items or []:
            if item.get("name") == queue and "messages_ready" in item:
                return int(item["messages_ready"]), int(item.get("messages_unacknowledged") or 0)
        return None

    def _stats_from_ctl(self, queue: str) -> QueueStats | None:
        proc = self._ctl_if_can("list_queues", "-q", "-p", self.vhost, "--no-table-headers", "name",
                                "messages_ready", "messages_unacknowledged", "consumers")
        if proc is None:
            return None
        for line in proc.stdout.splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[0] == queue:
                return QueueStats(queue, int(fields[1]), int(fields[2]), int(fields[3]))
        return None

    def _ctl_if_can(self, *args: str):
        """rabbitmqctl's answer for live stats, or None when the control cannot or the CLI failed."""
        if not self.control.can("stats"):
            return None
        try:
            proc = self.control.ctl(*args)
        except LabError as exc:
            log.debug("rabbitmqctl %s: %s", args[0], exc)
            return None
        return proc if proc.returncode == 0 else None

    def management_api(self, path: str) -> object | None:
        """GET /api/<path> as JSON, or None when there is no management API (never raises)."""
        return management.get(self.mgmt_url, path)

    def connection_count(self) -> int | None:
        """Open client connections as the broker counts them (None if it cannot tell)."""
        data = self.management_api("connections")
        if isinstance(data, list):
            return len(data)
        proc = self._ctl_if_can("list_connections", "-q", "--no-table-headers", "pid")
        if proc is not None:
            return len([line for line in proc.stdout.splitlines() if line.strip()])
        return None

    # --- control --------------------------------------------------------------------
    def restart(self, wait: float = 90.0) -> None:
        """Restart RabbitMQ (durable queues and persistent messages survive); ``CannotControl`` if the lab
        may not (``broker.control.why_not("restart")`` says why)."""
        self.control.restart(wait)
        self._version = None

    @contextlib.contextmanager
    def short_ack_timeout(self, ms: int = 3000, tick_ms: int = 500) -> Iterator[str]:
        """Shorten the consumer (ack) timeout for channels opened inside the block.

        RabbitMQ checks the timeout only on the channel tick (``channel_tick_interval``,
        60 s by default), so both are shortened.  On a node the lab controls, one
        ``rabbitmqctl eval`` sets both, waits inside the broker until the block ends and
        puts back the old values that are still its own -- by itself after two minutes
        should this Python process die.  The setting is node-wide on RabbitMQ 3.10/3.11:
        other consumers on the same node see it while the block runs.
        Yields "node", or "queue-argument" (RabbitMQ 3.11.15+: use ``x-consumer-timeout``)
        for brokers the lab cannot control.
        """
        if self.control.can("settings"):
            program = erlang.ack_timeout_program(ms, tick_ms)
            with erlang.in_node(self.control.ctl, program, "ack timeout",
                                scratch=self.control.scratch()) as (started, _output):
                if started:
                    yield "node"
                    return
        if versions.applies("per_queue_consumer_timeout", self.version):
            yield "queue-argument"
            return
        why = self.control.why_not("settings") or "the node did not take the setting."
        raise LabError(f"RabbitMQ {self.version} at {self.masked_url} cannot shorten the ack timeout from "
                       f"here: {why[0].lower()}{why[1:]}")

    @contextlib.contextmanager
    def short_dead_letter_retry(self, ms: int = 500) -> Iterator[bool]:
        """Make at-least-once dead-lettering retry a refused hop every ``ms`` instead of every 180 s, for quorum
        queues declared inside the block (each queue's dead-letter worker reads the interval when it starts).

        Yields True on a node the lab controls (the old value is put back when the block ends, as
        ``short_ack_timeout`` does), False elsewhere: the broker's own 180 s then apply.
        """
        if self.control.can("settings"):
            # the key's name in 3.10-4.2; newer releases read it with an _ms suffix: set both
            program = erlang.settings_program({"dead_letter_worker_publisher_confirm_timeout": ms,
                                               "dead_letter_worker_publisher_confirm_timeout_ms": ms})
            with erlang.in_node(self.control.ctl, program, "dead-letter retry",
                                scratch=self.control.scratch()) as (started, _output):
                yield started
                return
        yield False

    # --- cleaning up ----------------------------------------------------------------------
    def remember(self, kind: str, name: str) -> None:
        self.declared.add((kind, name))

    def purge(self, queue: str) -> int:
        """Empty one queue (if it exists); returns how many ready messages were removed."""
        import pika.exceptions

        try:
            with self.channel() as ch:
                return ch.queue_purge(queue=queue).method.message_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:  # NOT_FOUND: no such queue, so nothing to purge; anything else is news
                raise
            return 0

    def reset(self) -> Deleted:
        """Delete the lab's own queues and exchanges, and nothing else: the names the lab's topologies
        registered (``registry``, with the learner's prefix) and what this handle declared."""
        queue_bases, exchange_bases = registry.registered()
        queues = {settings.name(n) for n in queue_bases} | {n for k, n in self.declared if k == "queue"}
        exchanges = {settings.name(n) for n in exchange_bases} | {n for k, n in self.declared if k == "exchange"}
        deleted = Deleted()
        conn = self.connect()
        try:
            for kind, names in (("queue", sorted(queues)), ("exchange", sorted(exchanges))):
                for name in names:
                    ch = conn.channel()
                    try:
                        if kind == "queue":
                            ch.queue_declare(queue=name, passive=True)
                            ch.queue_delete(queue=name)
                        else:
                            ch.exchange_declare(exchange=name, passive=True)
                            ch.exchange_delete(exchange=name)
                        deleted.append(name)
                    except Exception as exc:  # absent: nothing to delete (the passive declare closed the channel)
                        log.debug("reset: %s %s not deleted: %s", kind, name, exc)
                        continue
                    with contextlib.suppress(Exception):
                        ch.close()
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        self.declared.clear()
        return deleted
