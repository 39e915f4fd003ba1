"""The queue and exchange names the lab's topologies declare, so ``Broker.reset()`` deletes those and
nothing hard-coded.

Plain data in the broker layer (it imports nothing): every ``engine.topology.Topology`` registers its
names here when it is built, and the broker, which must not import the engine, reads them back.
Names are kept without the learner's prefix; reset adds the prefix of the moment.
"""

from __future__ import annotations

import threading

_queues: set[str] = set()
_exchanges: set[str] = set()
_lock = threading.Lock()


def register(queues: tuple[str, ...] | list[str], exchanges: tuple[str, ...] | list[str] = ()) -> None:
    """Remember base names (without prefix) a topology declares."""
    with _lock:
        _queues.update(q for q in queues if q)
        _exchanges.update(x for x in exchanges if x)  # "" is the default exchange: never ours to delete


def registered() -> tuple[frozenset[str], frozenset[str]]:
    """(queue base names, exchange base names) registered so far."""
    with _lock:
        return frozenset(_queues), frozenset(_exchanges)
