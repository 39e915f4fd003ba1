"""A private RabbitMQ cluster on loopback: N non-root nodes joined by RabbitMQ's own clustering.

Each member is a private node (see ``broker.node``) with its own name (``wqlab-c<i>-<hash>@localhost``),
ports and base dir under ``cluster/c<i>``; all share one Erlang cookie and list each other for RabbitMQ's
classic-config peer discovery, so they boot in parallel and form one cluster.  Nothing is home-made:
quorum queues replicate, and clients fail over by trying a list of node addresses (pika does that).

    with Cluster.start(3) as cluster:
        conn = pika.BlockingConnection(cluster.connection_parameters(prefer=1))
        cluster.kill_node(0); cluster.start_node(0)

The management plugin is off unless ``Cluster.start(management=True)``: on 2 shared cores it made a
whole-cluster restart ~18-21 s instead of ~12-15 s and a stop ~6 s instead of ~1.3 s (fresh boots were
within noise, ~17-20 s either way), and the lab reads queue figures with rabbitmqctl anyway.

Modules: ``layout`` (names, ports, files of each member), ``control`` (Cluster), ``handle`` (ClusterBroker).
Clusters started in a process are stopped when it exits (atexit: ``control.stop_all``).
"""

from __future__ import annotations

from .control import Cluster, stop_all
from .layout import Member

__all__ = ["Cluster", "Member", "stop_all"]
