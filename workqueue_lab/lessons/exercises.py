"""Self-checks for the exercises in notebooks 00-02.

Every ``check_*`` function prints one friendly line per finding (✔ or ✘) and
returns True only when everything it looks at is right, so a notebook can say
``assert check_round_robin(result, workers=3)``.  They never raise on a
half-finished attempt (``None``, a wrong type): they print what is missing.

The checks read only what a run recorded (``RunResult.events`` and friends),
never the learner's code, so any correct solution passes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..broker.handle import Broker
    from ..engine.run import RunResult

OK, NO = "✔", "✘"


def _say(ok: bool, text: str) -> bool:
    print(f"{OK if ok else NO} {text}")
    return ok


def _nothing_yet(result, what: str) -> bool:
    """True (and a hint printed) when there is no run result to check yet."""
    if result is None:
        print(f"{NO} Nothing to check yet: {what}")
        return True
    if not hasattr(result, "tasks_by_worker"):
        print(f"{NO} Expected the result of lab.run(...), got {type(result).__name__}: {what}")
        return True
    return False


# --- 00: the environment ----------------------------------------------------------------


def check_environment(broker: Broker) -> bool:
    """Python, pika and RabbitMQ versions the course is tested with, and a broker that answers."""
    import urllib.parse

    import pika

    from ..broker.address import mask

    ok = _say(sys.version_info >= (3, 10), f"Python {sys.version.split()[0]} (3.10 or newer needed)")
    pika_version = tuple(int(p) for p in pika.__version__.split(".")[:2] if p.isdigit())
    ok &= _say(pika_version >= (1, 3), f"pika {pika.__version__} (1.3 or newer needed)")
    try:
        version = broker.version
    except Exception as exc:  # the broker went away since lab.connect()
        return _say(False, f"RabbitMQ does not answer at {mask(broker.url)}: {exc}")
    ok &= _say(broker.version_tuple >= (3, 8), f"RabbitMQ {version} (3.8 or newer needed)")
    password = urllib.parse.urlsplit(broker.url).password
    shown = broker.masked_url
    hidden = password is None or (urllib.parse.urlsplit(shown).password == "***" and f":{password}@" not in shown)
    ok &= _say(hidden, f"the password is masked when the URL is shown: {shown}")
    link = broker.mgmt_ui_link()
    print(f"  (management UI: {link})" if link else "  (no management UI; the course does not need it)")
    return ok


# --- 01: the work-queue pattern ------------------------------------------------------------


def round_robin(tasks: int, workers: int) -> dict[int, list[int]]:
    """Strict turn-taking: worker w gets tasks w, w + workers, w + 2*workers, ..."""
    return {w: list(range(w, tasks + 1, workers)) for w in range(1, workers + 1)}


def check_round_robin(result: RunResult | None, workers: int = 3) -> bool:
    """Every task done exactly once, shared in turns between ``workers`` workers."""
    if _nothing_yet(result, f"run lab.run(callback, ..., workers={workers}) and pass its result."):
        return False
    used = len(result.scenario.workers)
    if not _say(used == workers, f"the run used {used} worker(s); the exercise asks for {workers}"):
        return False
    published = result.published
    done = result.completed
    ok = _say(bool(published) and done == set(published),
              f"{len(done)} of {len(published)} tasks were completed")
    ok &= _say(result.duplicates == 0, f"{result.duplicates} task(s) were done twice")
    expected = round_robin(len(published), workers)
    got = result.tasks_by_worker()
    ok &= _say(got == expected, f"tasks by worker: {got}" + ("" if got == expected else f", expected {expected}"))
    return ok


_RECEIVED = re.compile(r"Received\s+'?\"?Task (\d+)")


def tasks_in_output(text: str) -> list[int]:
    """Task numbers a worker printed as received, in order (" [x] Received 'Task 3...'" -> 3)."""
    return [int(n) for n in _RECEIVED.findall(text or "")]


def check_two_terminals(outputs: Iterable[str]) -> bool:
    """Two worker programs' printed output: one received tasks 1 and 3, the other 2 and 4."""
    outputs = list(outputs or ())
    if not outputs:
        print(f"{NO} Nothing to check yet: pass the text each worker printed, e.g. [text1, text2].")
        return False
    got = [tasks_in_output(text) for text in outputs]
    ok = _say(len(got) == 2, f"{len(got)} worker output(s) (two terminals expected)")
    ok &= _say(sorted(got) == [[1, 3], [2, 4]], f"tasks received per worker: {got} (expected [1, 3] and [2, 4])")
    done = [len(re.findall(r"\[x\] Done", text or "")) for text in outputs]
    ok &= _say(sum(done) == 4, f"'Done' printed {sum(done)} time(s) in all (4 expected)")
    return ok


# --- 02: acknowledgements ------------------------------------------------------------------


def check_nothing_lost(result: RunResult | None) -> bool:
    """A worker crashed, yet every task was completed and none was lost."""
    if _nothing_yet(result, "run the crashing scenario with your fix and pass its result."):
        return False
    ok = _say(result.count("crash") >= 1, f"{result.count('crash')} worker crash(es) happened "
              "(keep the crashing worker: the point is to survive it)")
    ok &= _say(not result.lost, f"tasks lost: {result.lost or 'none'}")
    published = result.published
    ok &= _say(bool(published) and result.completed == set(published),
               f"{len(result.completed)} of {len(published)} tasks were completed")
    ok &= _say(bool(result.redelivered), f"tasks redelivered after the crash: {result.redelivered or 'none'}")
    return ok
