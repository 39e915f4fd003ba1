"""Notebook 02's acknowledgement timeout, shown in a few seconds on whatever broker is at hand (or why not)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import versions
from ..errors import LabError

if TYPE_CHECKING:
    from ..broker.handle import Broker



@dataclass
class AckTimeoutDemo:
    """How this broker can show a consumer (ack) timeout in a few seconds, or why it cannot.

    ``how`` is "node" (the lab shortened consumer_timeout and the channel tick on a node it controls),
    "queue-argument" (RabbitMQ 3.11.15 to 4.2: the demo's queue carries ``x-consumer-timeout``) or ""
    (``why_not`` says why not).  ``queue`` holds the extra ``lab.start`` arguments for the demo's queue.
    """

    how: str = ""
    why_not: str = ""
    timeout_ms: int = 0
    hang_s: float = 0.0  # how long (real seconds) the stuck worker hangs: well past timeout + tick
    queue: dict = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.why_not

    def why_unchecked(self, back_after: float | None) -> str:
        """Why the demo's claims could not be checked here ("" when they can be asserted)."""
        if self.why_not:
            return self.why_not
        if back_after is None and self.how == "queue-argument":
            return (f"the broker did not take the message back within {self.hang_s:g} s although the queue has "
                    f"x-consumer-timeout = {self.timeout_ms} ms: its channel tick (channel_tick_interval) is "
                    "probably the default 60 s; the course's Docker broker sets 1 s for this demo.")
        return ""


@contextlib.contextmanager
def ack_timeout_demo(broker: Broker) -> Iterator[AckTimeoutDemo]:
    """Shorten the ack timeout for the block as far as this broker allows, and say how (or why not)."""
    if not versions.applies("classic_consumer_timeout", broker.version):
        yield AckTimeoutDemo(why_not=f"RabbitMQ {broker.version}: from 4.3 classic queues such as task_queue have "
                                     "no acknowledgement timeout at all (4.3.0 release notes); the live demo needs "
                                     "RabbitMQ 3.8.15 to 4.2.")
        return
    with contextlib.ExitStack() as stack:
        try:
            how = stack.enter_context(broker.short_ack_timeout(ms=500, tick_ms=100))
        except LabError as err:
            yield AckTimeoutDemo(why_not=f"the live demo needs a node the lab controls, or RabbitMQ 3.11.15+ for a "
                                         f"per-queue timeout ({err})")
            return
        if how == "node":
            yield AckTimeoutDemo("node", timeout_ms=500, hang_s=1.2)
        else:  # 3.11.15 .. 4.2 without control of the node: a per-queue timeout, checked once per channel tick
            yield AckTimeoutDemo("queue-argument", timeout_ms=1000, hang_s=3.5,
                                 queue={"queue": "lab_queue", "queue_arguments": {"x-consumer-timeout": 1000}})
