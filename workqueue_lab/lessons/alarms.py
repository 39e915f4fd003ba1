"""A memory alarm on the lab's own node, for as long as a ``with`` block runs (notebook 06).

RabbitMQ blocks every connection that publishes while a resource alarm is in effect (consumers go on).
``memory_alarm`` lowers the node's memory high watermark below what the node already uses, waits until
the alarm is raised, and puts the old watermark back when the block ends, however it ends.  Only on the
lab's own node: an alarm on a broker that others use would stop their publishers too.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import LabError
from .durability import labs_own

if TYPE_CHECKING:
    from ..broker.handle import Broker

__all__ = ["memory_alarm", "memory_alarm_on"]

_ALARM = "rabbit_alarm:get_alarms()."


def memory_alarm_on(broker: Broker) -> bool:
    """Whether the node reports a memory alarm now."""
    answer = broker.control.ctl("eval", _ALARM)
    return answer.returncode == 0 and "memory" in answer.stdout


@contextlib.contextmanager
def memory_alarm(broker: Broker, timeout: float = 30.0) -> Iterator[bool]:
    """Raise a memory alarm on ``broker`` for the block; yields False (and does nothing) where the lab may not."""
    if not labs_own(broker) or not broker.control.can("ctl"):
        yield False
        return
    old = broker.control.ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").stdout.strip()
    restore = _as_cli_args(old)
    try:
        _set(broker, "absolute", "1048576")  # 1 MiB: every node uses more than that
        deadline = time.monotonic() + timeout
        while not memory_alarm_on(broker):
            if time.monotonic() > deadline:
                raise LabError("The node did not raise its memory alarm; check it with `rabbitmqctl status`.")
            time.sleep(0.1)
        yield True
    finally:
        _set(broker, *restore)
        deadline = time.monotonic() + timeout
        while memory_alarm_on(broker) and time.monotonic() < deadline:
            time.sleep(0.1)


def _set(broker: Broker, *args: str) -> None:
    answer = broker.control.ctl("set_vm_memory_high_watermark", *args)
    if answer.returncode != 0:
        raise LabError(f"rabbitmqctl set_vm_memory_high_watermark {' '.join(args)} failed: "
                       f"{(answer.stderr or answer.stdout).strip()}")


def _as_cli_args(erlang_value: str) -> tuple[str, ...]:
    """``0.4`` -> ("0.4",); ``{absolute,268435456}`` or ``{absolute,"256MiB"}`` -> ("absolute", the value)."""
    absolute = re.fullmatch(r'\{absolute,\s*"?(\d+[A-Za-z]*)"?\}', erlang_value)
    if absolute:
        return "absolute", absolute.group(1)
    if re.fullmatch(r"\d+(\.\d+)?", erlang_value):
        return (erlang_value,)
    raise LabError(f"Could not read the node's memory high watermark ({erlang_value!r}); is the node running?")
