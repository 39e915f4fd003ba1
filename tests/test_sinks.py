"""Sinks: a worker process's events cross a pipe and land, whole and in order, in the run's EventLog."""

from __future__ import annotations

import os
import time

from workqueue_lab.record import events as ev
from workqueue_lab.record.sinks import EventReceiver, PipeSink


def test_events_cross_a_pipe_into_the_log_with_the_parents_clock():
    log = ev.EventLog()
    read_fd, write_fd = os.pipe()
    try:
        sink = PipeSink(write_fd, log.t0)
        before = time.monotonic() - log.t0
        sink.note(ev.DELIVER, 1, 3, 7, True)
        sink.record(ev.NACK, 1, 3, tag=7, requeue=False, detail="x" * 5000)
        sink.goodbye("on SIGTERM: left")
        data = os.read(read_fd, 65536)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    receiver = EventReceiver(log)
    cut = data.index(b"\n") // 2  # a read may end mid-line: nothing is appended until the line is whole
    assert receiver.feed(data[:cut]) == [] and len(log) == 0
    receiver.feed(data[cut:])
    deliver, nack = log.events
    assert (deliver.kind, deliver.worker, deliver.task, deliver.tag, deliver.redelivered) == (ev.DELIVER, 1, 3, 7, True)
    assert before <= deliver.t <= nack.t <= time.monotonic() - log.t0
    assert (nack.kind, nack.requeue, len(nack.detail)) == (ev.NACK, False, 1000)  # bounded: one atomic write
    assert receiver.said_goodbye and receiver.goodbye == "on SIGTERM: left"
    assert [a.outcome for a in ev.attempts(log.events)] == [ev.NACK]


def test_a_stray_line_is_skipped_and_a_dead_reader_stops_the_writer():
    log = ev.EventLog()
    receiver = EventReceiver(log)
    receiver.feed(b"not json\n[0.5,\"ack\",2,1,1,false,null,\"\"]\n")
    assert [(e.kind, e.worker) for e in log.events] == [(ev.ACK, 2)] and not receiver.said_goodbye
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    gone = []
    sink = PipeSink(write_fd, log.t0, on_broken=lambda: gone.append(True))
    try:
        sink.record(ev.ACK, 1, 1)
        sink.record(ev.ACK, 1, 2)
    finally:
        os.close(write_fd)
    assert sink.broken and gone == [True]
