"""A private, non-root RabbitMQ node for Binder, laptops and destructive tests.

The node uses the RabbitMQ that the OS package installed (it needs no daemon,
no root and no Docker) and keeps everything it owns under
``settings.home() / "node"``: data, logs, config, the Erlang cookie and a
state file with its ports.  Every listener (AMQP, management, Erlang
distribution) binds 127.0.0.1 only, so the ``guest`` user stays loopback-only.

One node per user: the first ``start()`` picks free ports and records them;
later kernels find the node through the state file and reuse it.

Modules: ``users`` (who runs it), ``ports``, ``procs`` (its OS processes), ``files`` (state, config,
environment, lock), ``lifecycle`` (start/stop/restart/kill), ``ctl`` (rabbitmqctl, runtime settings),
``install`` (which RabbitMQ it runs), ``chroot`` (RabbitMQ 4.0, built from Debian 13's packages).

Which RabbitMQ: the installed package by default; ``WORKQUEUE_LAB_RABBITMQ=4.0`` (or ``--rabbitmq 4.0``)
runs RabbitMQ 4.0 from a chroot the lab builds once with debootstrap, as root, on its own loopback ports
and its own epmd: the same node, with the same control (stats, restart, stop, kill, settings).

When the caller is root (CI), the node runs as an unprivileged user
(``wqlab`` by default, created on first use), and so does every CLI call.

    workqueue-lab node start [--background] [--memory-mb N] [--wait S] [--rabbitmq system|4.0]
    workqueue-lab node stop | status | url | restart | kill   [--rabbitmq system|4.0]
"""

from __future__ import annotations

from .ctl import ctl, get_app_env, set_app_env
from .files import DEFAULT_MEMORY_MB, NodeInfo, boot_log
from .install import available, install_of, server_script
from .lifecycle import kill, pid, restart, running, start, stop, wait_until_ready
from .ports import LOOPBACK
from .users import DEFAULT_USER

__all__ = [
    "DEFAULT_MEMORY_MB",
    "available",
    "install_of",
    "NodeInfo",
    "boot_log",
    "DEFAULT_USER",
    "LOOPBACK",
    "ctl",
    "get_app_env",
    "kill",
    "pid",
    "restart",
    "running",
    "server_script",
    "set_app_env",
    "start",
    "stop",
    "wait_until_ready",
]
