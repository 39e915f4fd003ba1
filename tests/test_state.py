"""Unit tests of record/state.py on hand-made event lists: per-task states, counts, completion."""

import random

from workqueue_lab.record import events as ev
from workqueue_lab.record.events import Event
from workqueue_lab.record.state import RunState, task_states


def E(t, kind, worker=None, task=None, tag=None, **kw):
    return Event(t, kind, worker, task, tag, **kw)


def published(*tasks):
    return [E(0, ev.PUBLISH, task=t) for t in tasks]


def test_delivered_then_acked_is_done_and_the_run_is_settled():
    events = [*published(1, 2), E(0.1, ev.DELIVER, 1, 1, 1), E(0.2, ev.ACK, 1, 1, 1)]
    state = RunState().feed(events)
    assert state.states == {1: "done", 2: "pending"}
    assert not state.settled(2)
    state.feed(events + [E(0.3, ev.DELIVER, 2, 2, 1)])
    assert state.counts()["running"] == 1 and state.open_attempts == 1 and not state.settled(2)
    state.feed(events + [E(0.3, ev.DELIVER, 2, 2, 1), E(0.4, ev.ACK, 2, 2, 1)])
    assert state.settled(2) and state.completed == 2 and state.done_by_worker == {1: 1, 2: 1}
    assert not state.settled(3)  # a task the log has not seen yet is not settled


def test_crash_puts_every_task_open_on_that_worker_back_to_pending():
    events = [*published(1, 2, 3), E(0.1, ev.DELIVER, 1, 1, 1), E(0.1, ev.DELIVER, 1, 2, 2),
              E(0.1, ev.DELIVER, 2, 3, 1), E(0.5, ev.CRASH, 1, 2)]
    state = RunState().feed(events)
    assert state.states == {1: "pending", 2: "pending", 3: "running"}
    assert state.crashes == 1 and state.open_attempts == 1
    state.feed(events + [E(0.6, ev.DELIVER, 2, 1, 2, redelivered=True), E(0.7, ev.ACK, 2, 1, 2)])
    assert state.states[1] == "done" and state.redelivered == 1


def test_nack_without_requeue_drops_and_with_requeue_gives_back():
    events = [*published(1, 2), E(0.1, ev.DELIVER, 1, 1, 1), E(0.1, ev.DELIVER, 1, 2, 2),
              E(0.2, ev.NACK, 1, 1, 1, requeue=False), E(0.2, ev.REJECT, 1, 2, 2, requeue=True)]
    state = RunState().feed(events)
    assert state.states == {1: "dropped", 2: "pending"} and state.nacked == 2
    assert state.counts() == {"pending": 1, "running": 0, "done": 0, "retrying": 0, "dropped": 1, "lost": 0}


def test_reconnect_puts_the_running_tasks_of_that_worker_back_to_pending():
    events = [*published(1, 2), E(0.1, ev.DELIVER, 1, 1, 1), E(0.1, ev.DELIVER, 2, 2, 1),
              E(0.5, ev.RECONNECT, 1, detail="StreamLostError")]
    state = RunState().feed(events)
    assert state.states == {1: "pending", 2: "running"} and state.open_attempts == 1


def test_ack_multiple_settles_every_tag_up_to_it():
    events = [*published(1, 2, 3), E(0.1, ev.DELIVER, 1, 1, 1), E(0.1, ev.DELIVER, 1, 2, 2),
              E(0.1, ev.DELIVER, 1, 3, 3), E(0.2, ev.ACK, 1, 2, 2, detail="multiple")]
    state = RunState().feed(events)
    assert state.states == {1: "done", 2: "done", 3: "running"}
    assert task_states(events) == state.states


def test_a_late_ack_undone_by_the_timeout_is_pending_again():
    events = [*published(1), E(0, ev.DELIVER, 1, 1, 1), E(5, ev.ACK, 1, 1, 1), E(5.1, ev.TIMEOUT, 1, 1, 1)]
    state = RunState().feed(events)
    assert state.states == {1: "pending"} and state.completed == 0 and not state.settled(1)


def test_retry_then_ack_is_retrying_and_lost_is_final():
    events = [*published(1, 2), E(0.1, ev.DELIVER, 1, 1, 1), E(0.2, ev.RETRY, 1, 1), E(0.3, ev.ACK, 1, 1, 1),
              E(9, ev.LOST, None, 2)]
    state = RunState().feed(events)
    assert state.states == {1: "retrying", 2: "lost"} and not state.settled(2)
    assert task_states(events + [E(9.1, ev.DELIVER, 2, 1, 1), E(9.2, ev.ACK, 2, 1, 1)]) == {1: "done", 2: "lost"}


def test_auto_ack_done_and_unknown_tasks_count_as_completions():
    events = [*published(1), E(0.1, ev.DELIVER, 1, 1, 1), E(0.2, ev.DONE, 1, 1, 1),
              E(0.3, ev.DELIVER, 1, None, 2), E(0.4, ev.DONE, 1, None, 2)]
    state = RunState().feed(events)
    assert state.states == {1: "done"} and state.completed == 2 and state.settled(1)


def test_reads_an_event_log_incrementally():
    log = ev.EventLog()
    state = RunState()
    log.note(ev.PUBLISH, None, 1)
    log.note(ev.DELIVER, 1, 1, 1, False)
    assert state.feed(log).states == {1: "running"} and state.seen == 2
    log.note(ev.ACK, 1, 1, 1, False, None, "")
    assert state.feed(log).states == {1: "done"} and state.seen == 3
    assert state.feed(log).seen == 3  # nothing new: nothing read twice
    assert state.last_t == log.events[-1].t


def _random_run(seed: int, tasks: int = 40, workers: int = 3) -> list[Event]:
    """A plausible log: deliveries, acks (some multiple), nacks, rejects, crashes, reconnects, retries."""
    rng = random.Random(seed)
    events = published(*range(1, tasks + 1))
    queue = list(range(1, tasks + 1))
    tags = dict.fromkeys(range(1, workers + 1), 0)
    held: dict[int, list[tuple[int, int]]] = {w: [] for w in tags}
    t = 0.0
    for _ in range(400):
        t += 0.01
        w = rng.randint(1, workers)
        roll = rng.random()
        if queue and roll < 0.45:
            task = queue.pop(0)
            tags[w] += 1
            held[w].append((tags[w], task))
            events.append(E(t, ev.DELIVER, w, task, tags[w], redelivered=rng.random() < 0.2))
        elif held[w] and roll < 0.75:
            tag, task = held[w].pop(0)
            events.append(E(t, ev.ACK, w, task, tag))
        elif len(held[w]) > 1 and roll < 0.8:
            tag, task = held[w][-1]
            held[w] = []
            events.append(E(t, ev.ACK, w, task, tag, detail="multiple"))
        elif held[w] and roll < 0.88:
            tag, task = held[w].pop(0)
            requeue = rng.random() < 0.5
            events.append(E(t, rng.choice((ev.NACK, ev.REJECT)), w, task, tag, requeue=requeue))
            if requeue:
                queue.append(task)
        elif held[w] and roll < 0.9:
            events.append(E(t, ev.RETRY, w, held[w][0][1]))
        elif held[w] and roll < 0.95:
            queue += [task for _, task in held[w]]
            events.append(E(t, rng.choice((ev.CRASH, ev.RECONNECT)), w, held[w][0][1]))
            held[w], tags[w] = [], 0
    return events


def test_incremental_updates_give_the_same_answer_as_a_full_recompute():
    for seed in range(20):
        events = _random_run(seed)
        incremental = RunState()
        rng = random.Random(seed)
        cut = 0
        while cut < len(events):
            cut = min(len(events), cut + rng.randint(0, 25))
            incremental.feed(events[:cut])
        full = RunState().feed(events)
        assert incremental.states == full.states == task_states(events)
        assert incremental.counts() == full.counts()
        assert (incremental.completed, incremental.open_attempts, incremental.extra()) == \
               (full.completed, full.open_attempts, full.extra())
        # the pairing is the one attempts() uses: the same open attempts and completions
        atts = ev.attempts(events)
        assert full.open_attempts == sum(a.outcome == "open" for a in atts)
        assert sum(full.completions.values()) == sum(a.outcome in ev.SETTLED for a in atts)


def test_a_parked_task_is_final_and_a_retry_wait_is_retrying():
    """Republished to the parking lot and acked: once the tap sees it parked, the run is done with it
    (it must not wait for it or call it lost); a task waiting out a retry queue's TTL is still coming."""
    events = [*published(1, 2), E(0.1, ev.DELIVER, 1, 1, 1), E(0.2, ev.RETRY, 1, 1), E(0.3, ev.ACK, 1, 1, 1),
              E(0.4, ev.DELIVER, 2, 2, 1), E(0.5, ev.REJECT, 2, 2, 1, requeue=False)]
    assert RunState().feed(events).states == {1: "retrying", 2: "dropped"}
    events += [E(0.6, ev.PARKED, None, 1), E(0.7, ev.RETRY_WAIT, None, 2)]
    state = RunState().feed(events)
    assert state.states == {1: "dropped", 2: "retrying"} and not state.settled(2)
    state.feed(events + [E(0.9, ev.DELIVER, 1, 2, 2), E(1.0, ev.ACK, 1, 2, 2)])
    assert state.states == {1: "dropped", 2: "done"} and state.settled(2)
