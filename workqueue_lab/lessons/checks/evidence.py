"""Pure readings of an event log that several checks use to name the cause of a mistake.

Each function answers one question a hint needs ("was auto-ack on?", "which acks named a
delivery the worker did not hold?") from the events alone, so a hint is never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from ...record import events as ev

# After these a worker's channel is gone: its delivery tags start again at 1 on the next one.
_CHANNEL_ENDS = (ev.CRASH, ev.TIMEOUT, ev.RECONNECT, ev.RESTART, ev.READY)


def workers_in(events: Sequence[ev.Event]) -> list[int]:
    """The workers a run started (those that registered a consumer; else any that recorded something)."""
    ready = {e.worker for e in events if e.kind == ev.READY and e.worker is not None}
    return sorted(ready or {e.worker for e in events if e.worker is not None})


def prefetch_of(events: Sequence[ev.Event]) -> int | None:
    """The prefetch count the workers passed to basic_qos (their READY events say it), if one."""
    values = {ev.detail_fields(e.detail).get("prefetch", "") for e in events if e.kind == ev.READY}
    if len(values) == 1 and (value := values.pop()).isdigit():
        return int(value)
    return None


def auto_acked(events: Sequence[ev.Event]) -> bool:
    """True when tasks finished with no acknowledgement at all: the consumer ran with auto_ack=True."""
    return any(e.kind == ev.DONE for e in events) and not any(e.kind == ev.ACK for e in events)


def never_acked(events: Sequence[ev.Event]) -> list[int]:
    """Tasks whose last delivery never got an ack, nack or reject (left unacked when the run ended)."""
    return sorted({a.task for a in ev.attempts(events) if a.outcome == "open" and a.task is not None})


def dropped(events: Sequence[ev.Event]) -> list[int]:
    """Tasks rejected or nacked with requeue=False that no dead-letter queue caught: RabbitMQ discarded them."""
    refused = {e.task for e in events if e.kind in (ev.NACK, ev.REJECT) and e.requeue is False}
    caught = {e.task for e in events if e.kind == ev.DEAD_LETTER}
    done = set(ev.completed(events))
    return sorted(t for t in refused - caught - done if t is not None)


def stray_acks(events: Sequence[ev.Event]) -> list[ev.Event]:
    """Acks naming a delivery tag the worker did not hold at that moment (already acked, or never delivered)."""
    held: dict[int, set[int | None]] = defaultdict(set)
    strays = []
    for e in events:
        if e.worker is None:
            continue
        if e.kind in _CHANNEL_ENDS:
            held[e.worker].clear()
        elif e.kind == ev.DELIVER:
            held[e.worker].add(e.tag)
        elif e.kind in (ev.ACK, ev.NACK, ev.REJECT, ev.DONE):
            if e.detail == "multiple":
                covered = {t for t in held[e.worker] if (t or 0) <= (e.tag or 0)}
            else:
                covered = {e.tag} & held[e.worker]
            if not covered and e.kind == ev.ACK:
                strays.append(e)
            held[e.worker] -= covered
    return strays


def acked_before_crash(events: Sequence[ev.Event]) -> list[int]:
    """Tasks a worker acknowledged and then crashed on: the ack came before the work was finished."""
    acked: dict[int, set[int | None]] = defaultdict(set)  # per worker, since its last delivery
    early = set()
    for e in events:
        if e.worker is None:
            continue
        if e.kind == ev.DELIVER:
            acked[e.worker].discard(e.task)
        elif e.kind == ev.ACK:
            acked[e.worker].add(e.task)
        elif e.kind == ev.CRASH and e.task in acked[e.worker]:
            early.add(e.task)
    return sorted(t for t in early if t is not None)


def unknown_tag_closures(events: Sequence[ev.Event]) -> list[ev.Event]:
    """Channel closures in which the broker said an ack named an unknown delivery tag."""
    return [e for e in events if "unknown delivery tag" in e.detail.lower()]


def delivered_split(events: Sequence[ev.Event]) -> dict[int, list[int]]:
    """Which tasks each worker *received* (every delivery, done or not): what counting attempts gives."""
    split: dict[int, list[int]] = defaultdict(list)
    for a in ev.attempts(events):
        if a.task is not None:
            split[a.worker].append(a.task)
    return {w: sorted(t) for w, t in sorted(split.items())}


def first_delivery(events: Sequence[ev.Event], task: int) -> ev.Event | None:
    return next((e for e in events if e.kind == ev.DELIVER and e.task == task), None)


def held_at(events: Sequence[ev.Event], worker: int, t: float) -> list[int]:
    """Tasks ``worker`` had received and not yet settled at time ``t``."""
    return sorted(a.task for a in ev.attempts(events)
                  if a.worker == worker and a.task is not None and a.start < t
                  and (a.end is None or a.end > t))


def normalise(prediction: object) -> dict[int, list[int]] | None:
    """A learner's ``{worker: [tasks]}`` as sorted int lists; None if not given, {} if not readable."""
    if prediction is None:
        return None
    try:
        return {int(w): sorted(int(t) for t in tasks) for w, tasks in dict(prediction).items() if tasks}
    except (TypeError, ValueError):
        return {}


def first_difference(predicted: Mapping[int, Sequence[int]], got: Mapping[int, Sequence[int]]
                     ) -> tuple[int, int | None, int | None] | None:
    """The lowest task whose worker differs: (task, predicted worker, actual worker); None if they agree."""
    said = {t: w for w, tasks in predicted.items() for t in tasks}
    did = {t: w for w, tasks in got.items() for t in tasks}
    for task in sorted(said.keys() | did.keys()):
        if said.get(task) != did.get(task):
            return task, said.get(task), did.get(task)
    return None


def sorted_split(split: Mapping[int, Sequence[int]]) -> dict[int, list[int]]:
    return {w: sorted(t) for w, t in sorted(split.items()) if t}
