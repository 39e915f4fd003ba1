"""Self-checks for notebook 06, the production worker: a shutdown that finishes the current task."""

from __future__ import annotations

from ...record import events as ev
from .base import Check, verdict

__all__ = ["check_graceful_stop"]


def check_graceful_stop(events: list[ev.Event], worker: int, task: int | None, exit_code: int | None) -> Check:
    """Worker ``worker`` got SIGTERM while busy with ``task``: it must finish and ack that task itself,
    take no new task, and exit 0.

    ``events``: the worker's parsed output (``Programs.events()``); ``exit_code``: what the process
    returned (None if it had to be killed because it never stopped).
    """
    name = "SIGTERM mid-task: finish it, ack it, take nothing new, cancel, exit 0"
    mine = [e for e in events if e.worker == worker]
    acked = [i for i, e in enumerate(mine) if e.kind == ev.ACK and e.task == task]
    handed_back = {e.task for e in mine if e.kind == ev.REJECT and e.requeue}  # given back untouched: not taken
    later = [e.task for e in mine[acked[0] + 1:] if e.kind == ev.DELIVER and e.task not in handed_back] if acked else []
    expected = f"task {task} acked by worker {worker}, no task taken after it, exit code 0"
    got = (f"task {task} {'acked' if acked else 'not acked'} by worker {worker}; tasks taken after it: "
           f"{later or 'none'}; exit code {exit_code if exit_code is not None else 'none (it never stopped)'}")
    uncancelled = any(e.kind == ev.STOP and e.detail == "consumer not cancelled" for e in mine)
    stopped_idle = task is None and any(e.kind == ev.STOP for e in mine) and not any(e.kind == ev.DELIVER for e in mine)
    return verdict(name, expected, got, _hint(task, acked, later, exit_code, uncancelled, stopped_idle))


def _hint(task: int | None, acked: list, later: list, exit_code: int | None, uncancelled: bool = False,
          stopped_idle: bool = False) -> str:
    if stopped_idle:
        return ("The worker stopped before its first task arrived: consume() returned at once. It must run pika's "
                "I/O loop (connection.process_data_events(time_limit=...)) again and again until on_signal has "
                "asked it to stop.")
    if task is None:
        return "The worker was not busy when the signal came: send it a task of a few seconds first."
    if exit_code is None or exit_code < 0:
        return ("The worker never stopped, so it had to be killed: consume() must leave its loop once on_signal "
                "has set stop_requested (check the flag after every process_data_events(time_limit=...)).")
    if not acked and exit_code == 0:
        return (f"Task {task} was cut off and went back to the queue: sys.exit() (or raising) inside the signal "
                "handler ends the process in the middle of the task. Only set a flag in on_signal and let "
                "consume() stop between two tasks.")
    if not acked:
        return (f"Task {task} was never acked and the worker exited with code {exit_code}: closing the connection "
                "inside the signal handler (the lesson's stop()) breaks pika in the middle of the task, because "
                "pika is not re-entrant. Only set a flag in on_signal.")
    if later:
        return (f"The worker took tasks {later} after the signal: once the flag is set, call "
                "channel.basic_cancel(consumer_tag) so the broker sends nothing more.")
    if exit_code != 0:
        return f"The task was acked but the worker exited with code {exit_code}: return normally from consume()."
    if uncancelled:
        return ("consume() returned with the consumer still registered: until the connection closed, the broker "
                "could send it more tasks. Call channel.basic_cancel(consumer_tag) once the flag is set, before "
                "returning (pika hands back whatever arrived meanwhile).")
    return ""
