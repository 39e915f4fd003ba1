"""Where RabbitMQ is and what the lab may do with it (see ``handle``)."""

from .handle import Broker, QueueStats, find_broker, mask

__all__ = ["Broker", "QueueStats", "find_broker", "mask"]
