"""Notebook 06's self-check and the parser of task_worker.py's output, on hand-made data (no broker)."""

from __future__ import annotations

from workqueue_lab.lessons.checks import nb06
from workqueue_lab.lessons.programs import Ended, clock_seconds, parse_output
from workqueue_lab.record import events as ev

GRACEFUL = """\
10:00:00.000  [*] Waiting for tasks on 'task_queue_jobs' (pid 1, prefetch 1, heartbeat 60 s, not threaded).
10:00:00.100  [>] Task 1 received (redelivered=False)
10:00:01.600  [x] Task 1 done, acked
10:00:01.601  [*] SIGTERM (at 10:00:00.500): not taking new tasks; 0 to finish
10:00:01.602  [*] Stopped cleanly; exit 0
"""


def _events(text: str, ended: Ended | None = None) -> list[ev.Event]:
    return parse_output(text, 1, clock_seconds("10:00:00.000"), ended)


def test_the_right_shutdown_passes():
    check = nb06.check_graceful_stop(_events(GRACEFUL), worker=1, task=1, exit_code=0)
    assert check and check.hint == ""


def test_sys_exit_in_the_handler_cuts_the_task_off():
    text = GRACEFUL.split("10:00:01.600")[0]
    check = nb06.check_graceful_stop(_events(text), worker=1, task=1, exit_code=0)
    assert not check and "sys.exit()" in check.hint and "flag" in check.hint


def test_closing_the_connection_in_the_handler_is_named():
    text = GRACEFUL.split("10:00:01.600")[0] + "Traceback (most recent call last):\n"
    check = nb06.check_graceful_stop(_events(text), worker=1, task=1, exit_code=1)
    assert not check and "not re-entrant" in check.hint


def test_a_worker_that_never_stops_and_one_that_keeps_taking_tasks():
    text = GRACEFUL.replace("10:00:01.601  [*] SIGTERM", "10:00:01.600  [>] Task 2 received (redelivered=False)\n"
                            "10:00:01.650  [x] Task 2 done, acked\n10:00:01.601  [*] SIGTERM")
    never = nb06.check_graceful_stop(_events(text), worker=1, task=1, exit_code=None)
    assert not never and "never stopped" in never.hint
    greedy = nb06.check_graceful_stop(_events(text), worker=1, task=1, exit_code=0)
    assert not greedy and "basic_cancel" in greedy.hint and "[2]" in greedy.hint


def test_not_busy_when_signalled():
    check = nb06.check_graceful_stop([], worker=1, task=None, exit_code=0)
    assert not check and "not busy" in check.hint


def test_parse_output_failures_dead_letter_kills_and_heartbeats():
    text = ("10:00:00.000  [>] Task 7 received (redelivered=True)\n"
            "10:00:00.500  [!] Task 7 failed: RuntimeError: broken input; nack requeue=False -> p.task_queue_dead\n"
            "10:00:01.000  [>] Task 8 received (redelivered=False)\n")
    events = _events(text, Ended(code=-9, killed_at=clock_seconds("10:00:02.000")))
    kinds = [(e.kind, e.task) for e in events]
    assert kinds == [(ev.DELIVER, 7), (ev.NACK, 7), (ev.DEAD_LETTER, 7), (ev.DELIVER, 8), (ev.CRASH, 8)]
    assert events[0].redelivered and events[1].requeue is False and events[2].worker is None
    assert "into=p.task_queue_dead" in events[2].detail and "broken input" in events[2].detail
    assert [(a.task, a.outcome, a.end) for a in ev.attempts(events)] == [(7, ev.NACK, 0.5), (8, ev.CRASH, 2.0)]

    lost = _events("10:00:00.000  [>] Task 1 received (redelivered=False)\n"
                   "10:00:04.000  [!] Task 1 done but not acked: the connection is gone, the broker requeues it\n"
                   "10:00:04.000  [!] Connection lost: StreamLostError(...); unacked tasks go back; exit 1\n")
    assert [(e.kind, e.task) for e in lost] == [(ev.DELIVER, 1), (ev.TIMEOUT, 1), (ev.STOP, None)]


def test_clock_passing_midnight():
    events = parse_output("00:00:01.000  [>] Task 1 received (redelivered=False)\n", 1, clock_seconds("23:59:59.000"))
    assert events[0].t == 2.0


def test_a_task_handed_back_after_the_signal_is_a_delivery_and_a_requeue():
    text = GRACEFUL.replace("10:00:01.602  [*] Stopped", "10:00:01.601  [<] Task 2 arrived after SIGTERM: handed back "
                            "(basic_reject requeue=True)\n10:00:01.602  [*] Stopped")
    handed = [(e.kind, e.task, e.requeue) for e in _events(text) if e.task == 2]
    assert handed == [(ev.DELIVER, 2, None), (ev.REJECT, 2, True)]
    assert nb06.check_graceful_stop(_events(text), worker=1, task=1, exit_code=0)  # handing back is right


def test_the_untouched_stub_and_a_shutdown_without_basic_cancel_get_their_own_hints():
    stub = "10:00:00.000  [*] Waiting for tasks on 'task_queue_jobs' (pid 1, your shutdown)\n" \
           "10:00:00.001  [*] Stopped cleanly; exit 0\n"
    idle = nb06.check_graceful_stop(_events(stub), worker=1, task=None, exit_code=0)
    assert not idle and "consume() returned at once" in idle.hint and "process_data_events" in idle.hint
    uncancelled = GRACEFUL.replace("10:00:01.602  [*] Stopped", "10:00:01.601  [!] consume() returned with the "
                                   "consumer still registered (no basic_cancel)\n10:00:01.602  [*] Stopped")
    check = nb06.check_graceful_stop(_events(uncancelled), worker=1, task=1, exit_code=0)
    assert not check and "channel.basic_cancel(consumer_tag)" in check.hint


def test_the_memory_watermark_is_read_back_as_rabbitmqctl_arguments():
    from workqueue_lab.lessons.alarms import _as_cli_args

    assert _as_cli_args("0.4") == ("0.4",)
    assert _as_cli_args('{absolute,"256MiB"}') == ("absolute", "256MiB")
    assert _as_cli_args("{absolute,268435456}") == ("absolute", "268435456")
