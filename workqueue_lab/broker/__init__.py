"""Where RabbitMQ is and what the lab may do with it.

``handle`` (the Broker a notebook holds), ``discovery`` (find_broker and its search order),
``control`` (what the lab may do, one object per kind), ``management`` (the HTTP API client),
``erlang`` (programs run inside a node), ``connection`` (why a connection failed), ``address``
(URLs and ports), ``node/`` (the private non-root node).
"""

from .address import mask
from .discovery import find_broker
from .handle import Broker, QueueStats

__all__ = ["Broker", "QueueStats", "find_broker", "mask"]
