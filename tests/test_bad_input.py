"""Bad input gives one sentence that names the fix, loses no message, and leaves the kernel usable.

Every case below is something a learner can get wrong.  A LabError case must raise exactly one
single-line sentence (no traceback text, no password), and a normal run right afterwards must
succeed.  Poison messages are not errors of the lab: they show what the lesson's callback and a
production-style callback do with them, and that no message disappears.

``docs/errors.md`` lists the messages these cases really produce: each case asserts that its message is
the one documented, and ``test_docs_errors_md_is_current`` that the file is exactly what the generator
writes.  Regenerate it with ``python tests/errors_doc.py`` (it runs this file in record mode).
"""

from __future__ import annotations

import json
import os
import re
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import lab_threads, wait_until
from private_broker import ensure_running, private_broker

import workqueue_lab as lab
import workqueue_lab.broker.discovery as broker_mod
from workqueue_lab import settings
from workqueue_lab.broker import node as private_node
from workqueue_lab.record import events as ev

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "errors.md"
NORMAL_TASKS = lab.LESSON_TASKS


class Ctx:
    """What a case may touch: pytest's monkeypatch, the system broker, the private node (lazily)."""

    def __init__(self, monkeypatch, broker, config) -> None:
        self.monkeypatch = monkeypatch
        self.broker = broker
        self.config = config
        self.private_port: int | None = None

    def use_url(self, url: str) -> None:
        """As a learner would: WORKQUEUE_LAB_URL, then lab.connect() / lab.run() find it."""
        self.monkeypatch.setenv(settings.ENV_URL, url)
        self.monkeypatch.setattr(broker_mod, "_current", None)


def lab_error(action: Callable[[], object]) -> str:
    """Run action; it must raise a LabError whose text is one clean sentence.  Returns the text."""
    with pytest.raises(lab.LabError) as info:
        action()
    return one_sentence(info.value)


def one_sentence(exc: lab.LabError) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and "File \"" not in text, text
    assert text.endswith("."), text
    assert re.search(r"\b(use|check|pass|set|start|delete|create|free)\b", text), f"no fix named: {text}"
    assert exc._render_traceback_() == [f"\x1b[31mLabError\x1b[0m: {text}"]  # what Jupyter shows
    shown = traceback.format_exception_only(type(exc), exc)  # what a plain Python prompt shows
    assert len(shown) == 1 and shown[0].endswith(f"{type(exc).__name__}: {text}\n"), shown
    return text


def normal_run(broker=None) -> None:
    result = lab.run(lab.lesson_callback, tasks=NORMAL_TASKS, workers=2, broker=broker, progress=False)
    assert result.completed == {1, 2, 3, 4} and result.lost == [] and not result.timed_out
    assert lab_threads() == []


# --- the cases (each returns what the learner sees) -------------------------------------------------


def wrong_host(ctx: Ctx) -> str:
    ctx.use_url("amqp://learner:secret@no-such-host.invalid:5672/%2F")  # guest works on localhost only
    return lab_error(lambda: lab.run(lab.lesson_callback, progress=False))


def wrong_port(ctx: Ctx) -> str:
    ctx.use_url("amqp://guest:guest@127.0.0.1:1/%2F")
    return lab_error(lambda: lab.run(lab.lesson_callback, progress=False))


def not_an_amqp_port(ctx: Ctx) -> str:
    ctx.use_url("amqp://guest:guest@127.0.0.1:15672/%2F")  # the management UI's HTTP port
    return lab_error(lambda: lab.run(lab.lesson_callback, progress=False))


def wrong_password(ctx: Ctx) -> str:
    ctx.use_url("amqp://guest:N0tThePassword@127.0.0.1:5672/%2F")
    text = lab_error(lambda: lab.run(lab.lesson_callback, progress=False))
    assert "N0tThePassword" not in text
    return text


def missing_vhost(ctx: Ctx) -> str:
    ctx.use_url("amqp://guest:guest@127.0.0.1:5672/no-such-vhost")
    return lab_error(lambda: lab.run(lab.lesson_callback, progress=False))


def not_an_amqp_url(ctx: Ctx) -> str:
    ctx.use_url("http://guest:guest@127.0.0.1:15672/")
    return lab_error(lab.connect)


def unknown_broker_path(ctx: Ctx) -> str:
    ctx.monkeypatch.setenv(settings.ENV_BROKER, "kubernetes")
    return lab_error(lab.connect)


def unknown_rabbitmq_series(ctx: Ctx) -> str:
    ctx.monkeypatch.setenv(settings.ENV_BROKER, "private")
    ctx.monkeypatch.setenv(settings.ENV_RABBITMQ, "5.0")
    ctx.monkeypatch.setattr(broker_mod, "_current", None)
    return lab_error(lab.connect)


def rabbitmq_40_not_root(ctx: Ctx) -> str:
    """RabbitMQ 4.0 runs as root in a chroot: a plain user asking for it is told so (here: root, seen as uid 1000)."""
    ctx.monkeypatch.setenv(settings.ENV_BROKER, "private")
    ctx.monkeypatch.setenv(settings.ENV_RABBITMQ, "4.0")
    ctx.monkeypatch.setenv(settings.ENV_HOME, "/tmp/wqlab-never-used")  # never the learner's node
    ctx.monkeypatch.setattr(broker_mod, "_current", None)
    ctx.monkeypatch.setattr(os, "geteuid", lambda: 1000)
    text = lab_error(lab.connect)
    assert not Path("/tmp/wqlab-never-used").exists()  # refused before anything was made
    return text


def restart_a_shared_broker(ctx: Ctx) -> str:
    ctx.use_url("amqp://guest:guest@127.0.0.1:5672/%2F")  # the system broker, given as a URL: not the lab's
    return lab_error(lambda: lab.connect().restart())


def prefetch_negative(ctx: Ctx) -> str:
    return lab_error(lambda: lab.run(lab.lesson_callback, prefetch=-1, progress=False))


def prefetch_huge(ctx: Ctx) -> str:
    return lab_error(lambda: lab.run(lab.lesson_callback, prefetch=70_000, progress=False))


def prefetch_not_an_integer(ctx: Ctx) -> str:
    lab_error(lambda: lab.start(lab.lesson_callback, prefetch="1"))
    lab_error(lambda: lab.run(lab.lesson_callback, prefetch=True, progress=False))
    return lab_error(lambda: lab.run(lab.lesson_callback, prefetch=1.5, progress=False))


def zero_workers(ctx: Ctx) -> str:
    lab_error(lambda: lab.run(lab.lesson_callback, workers=[], progress=False))
    return lab_error(lambda: lab.run(lab.lesson_callback, workers=0, progress=False))


def negative_workers(ctx: Ctx) -> str:
    return lab_error(lambda: lab.start(lab.lesson_callback, workers=-2))


def zero_speed(ctx: Ctx) -> str:
    return lab_error(lambda: lab.run(lab.lesson_callback, workers=[1.0, 0], progress=False))


def unknown_failure_mode(ctx: Ctx) -> str:
    return lab_error(lambda: lab.WorkerSpec(faults=(lab.fault("explode"),)))


def probability_out_of_range(ctx: Ctx) -> str:
    return lab_error(lambda: lab.fault("crash", probability=5))


def unknown_ack_mode(ctx: Ctx) -> str:
    return lab_error(lambda: lab.run(lab.lesson_callback, ack="none", progress=False))


def callback_not_callable(ctx: Ctx) -> str:
    return lab_error(lambda: lab.run("lesson_callback", progress=False))


def bad_time_scale(ctx: Ctx) -> str:
    ctx.monkeypatch.setenv(settings.ENV_TIME_SCALE, "fast")
    return lab_error(lambda: lab.run(lab.lesson_callback, progress=False))


def bad_prefix(ctx: Ctx) -> str:
    ctx.monkeypatch.setenv(settings.ENV_PREFIX, "my queue!")
    return lab_error(lambda: lab.run(lab.lesson_callback, progress=False))


def queue_exists_with_other_settings(ctx: Ctx) -> str:
    """A non-durable lab_queue already holds two messages; the lesson declares it durable."""
    queue = settings.name("lab_queue")
    with ctx.broker.channel() as ch:
        ch.queue_declare(queue=queue, durable=False)
        for body in (b"Task A.", b"Task B."):
            ch.basic_publish("", queue, body)
    text = lab_error(lambda: lab.run(lab.lesson_callback, queue="lab_queue", progress=False))
    assert "PRECONDITION_FAILED" in text and "lab.reset()" in text
    assert _ready(ctx.broker, queue) == 2  # the messages already there are untouched
    return text


def broker_stopped_mid_run(ctx: Ctx) -> str:
    """Stop the private node while both workers hold a task; the run must end with one sentence."""
    with private_broker(ctx.config) as node_broker:
        ctx.private_port = node_broker.control.node.amqp_port
        queue = settings.name("lab_queue")
        stopped, cancel = threading.Event(), threading.Event()

        def stop_when_busy() -> None:
            def busy():
                if cancel.is_set():
                    return True
                try:
                    with node_broker.channel() as ch:
                        ok = ch.queue_declare(queue=queue, passive=True).method
                    return ok.consumer_count == 2 and ok.message_count == 2
                except Exception:
                    return False

            # stops the node only while the run is on: never later, after the test has moved on
            if wait_until(busy, timeout=20, interval=0.05) and not cancel.is_set():
                private_node.stop()
                stopped.set()

        stopper = threading.Thread(target=stop_when_busy, name="test-stopper", daemon=True)
        stopper.start()
        try:
            with pytest.raises(lab.LabError) as info:
                # 4 tasks of 10 s each: when the broker goes, both workers are mid-task, nothing is done yet
                # (10 s: time for the stopper to see it on a loaded machine); a worker notices when its task
                # ends and then reconnects until the timeout
                lab.run(lab.lesson_callback, tasks=lab.numbered_tasks([200] * 4), workers=2, queue="lab_queue",
                        broker=node_broker, timeout=20, progress=False)
        finally:
            cancel.set()
            stopper.join(30)
        assert not stopper.is_alive()
        assert stopped.is_set(), "the node was never seen with both workers busy, so it was not stopped"
        text = one_sentence(info.value)
        assert "4 of 4 tasks are not done" in text and "start RabbitMQ again" in text
        result = info.value.result
        # nothing done, nothing lost: all four wait in the durable queue (checked on the broker below)
        assert result.timed_out and result.lost == [] and result.completed == set()
        for w in (1, 2):  # each worker noticed and kept trying, with backoff, until the run ended
            assert len([e for e in result.of_kind(ev.RECONNECT) if e.worker == w]) >= 2, result.events
        assert lab_threads() == []

        again = ensure_running()  # start it again: the durable queue kept all four persistent tasks
        assert _ready(again, queue) == 4 - len(result.lost) == 4
        again.reset()
        normal_run(again)
        return text


CASES: dict[str, tuple[str, Callable[[Ctx], str]]] = {
    "wrong-host": ("Wrong host name in the URL", wrong_host),
    "wrong-port": ("Nothing listens on the port", wrong_port),
    "not-amqp-port": ("The port is not AMQP (e.g. the management UI's 15672)", not_an_amqp_port),
    "wrong-password": ("Wrong user name or password", wrong_password),
    "missing-vhost": ("The virtual host does not exist", missing_vhost),
    "not-amqp-url": ("`WORKQUEUE_LAB_URL` is not an amqp:// URL", not_an_amqp_url),
    "unknown-broker-path": ("`WORKQUEUE_LAB_BROKER` is not url/local/docker/private", unknown_broker_path),
    "rabbitmq-series": ("`WORKQUEUE_LAB_RABBITMQ=5.0` (the lab runs system or 4.0)", unknown_rabbitmq_series),
    "rabbitmq-40-not-root": ("`WORKQUEUE_LAB_RABBITMQ=4.0` as a user that is not root", rabbitmq_40_not_root),
    "restart-shared": ("`broker.restart()` on a broker given by URL (the lab may not restart it)",
                       restart_a_shared_broker),
    "broker-stopped": ("The broker stops during a run (and stays down past the timeout)", broker_stopped_mid_run),
    "prefetch-negative": ("`prefetch=-1`", prefetch_negative),
    "prefetch-huge": ("`prefetch=70000` (AMQP allows 0..65535)", prefetch_huge),
    "prefetch-not-int": ("`prefetch=1.5` (also `\"1\"`, `True`)", prefetch_not_an_integer),
    "zero-workers": ("`workers=0` (also `workers=[]`)", zero_workers),
    "negative-workers": ("`workers=-2`", negative_workers),
    "zero-speed": ("A worker speed of 0", zero_speed),
    "unknown-fault": ("Unknown failure mode, `lab.fault(\"explode\")`", unknown_failure_mode),
    "probability": ("Fault probability outside 0..1", probability_out_of_range),
    "ack-mode": ("`ack=\"none\"`", unknown_ack_mode),
    "callback": ("The callback is not a function", callback_not_callable),
    "time-scale": ("`WORKQUEUE_LAB_TIME_SCALE=fast`", bad_time_scale),
    "prefix": ("`WORKQUEUE_LAB_PREFIX=\"my queue!\"`", bad_prefix),
    "queue-precondition": ("The queue exists with other settings (PRECONDITION_FAILED)",
                           queue_exists_with_other_settings),
}
RECORD_DIR = "WORKQUEUE_LAB_ERRORS_DOC_OUT"  # set by tests/errors_doc.py: record messages instead of comparing


def _ready(broker, queue: str) -> int:
    with broker.channel() as ch:
        return ch.queue_declare(queue=queue, passive=True).method.message_count


@pytest.fixture
def ctx(clean, monkeypatch, request):
    return Ctx(monkeypatch, clean, request.config)


def _run_case(key: str, ctx: Ctx) -> str:
    text = CASES[key][1](ctx)
    assert lab_threads() == []
    ctx.monkeypatch.undo()  # back to the real broker and settings, then prove the process is still fine
    lab.reset()
    normal_run()
    check_documented(key, _normalize(text, ctx))
    return text


def _case(key: str):
    """A case that boots a private node of its own is in the full tier (conftest.py), like any test that does."""
    uses = CASES[key][1].__code__.co_names
    return pytest.param(key, marks=[pytest.mark.full] if "private_broker" in uses else [])


@pytest.mark.parametrize("key", [_case(key) for key in CASES])
def test_bad_input_gives_one_sentence_and_the_next_run_works(key, ctx):
    _run_case(key, ctx)


# --- poison messages ------------------------------------------------------------------------------------


def test_poison_messages_are_dead_lettered_once_by_the_task_worker(clean):
    queue, dlq = settings.name("lab_queue"), settings.name("lab_dlq")
    with clean.channel() as ch:
        ch.queue_declare(queue=dlq, durable=True)
    clean.remember("queue", dlq)  # declared here, not by a lab topology: reset() deletes it only if told
    tasks = (*lab.json_tasks(3), lab.POISON["non-utf8"], lab.POISON["bad-json"])
    result = lab.run(lab.TaskWorker().callback, tasks=tasks, workers=2, queue="lab_queue", progress=False,
                     timeout=30, queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    assert not result.timed_out
    assert result.completed == {1, 2, 3}
    rejected = [(e.task, e.requeue) for e in result.of_kind(ev.NACK, ev.REJECT)]
    assert sorted(rejected) == [(4, False), (5, False)]  # counted, not requeued
    deliveries = [e.task for e in result.of_kind(ev.DELIVER)]
    assert deliveries.count(4) == 1 and deliveries.count(5) == 1  # tried once, not forever
    assert result.lost == [] and result.count(ev.CRASH) == 0
    assert lab.task_states(result.events) == {1: "done", 2: "done", 3: "done", 4: "dropped", 5: "dropped"}
    assert _ready(clean, dlq) == 2 and _ready(clean, queue) == 0  # nothing lost: both wait in the DLQ
    printed = "\n".join(result.outputs.values())
    assert "poison message (UnicodeDecodeError)" in printed and "poison message (JSONDecodeError)" in printed
    check_documented("poison-taskworker", "[!] poison message (UnicodeDecodeError); dead-lettering it")


def test_poison_message_crashes_the_lessons_callback_but_is_not_lost(clean):
    tasks = ("Task 1.", lab.POISON["non-utf8"], "Task 3.", "Task 4.")
    result = lab.run(lab.lesson_callback, tasks=tasks, workers=2, queue="lab_queue", progress=False, timeout=30)
    crashes = result.of_kind(ev.CRASH)
    assert crashes and all(e.task == 2 for e in crashes)
    assert all("UnicodeDecodeError" in e.detail for e in crashes), [e.detail for e in crashes]
    assert 2 not in result.completed
    # the poison pill goes back to the queue each time: the next worker gets it again, flagged redelivered
    poison_deliveries = [e for e in result.of_kind(ev.DELIVER) if e.task == 2]
    assert len(poison_deliveries) == len(crashes) == 2 and poison_deliveries[1].redelivered
    assert result.lost == []
    assert _ready(clean, result.queue) == 4 - len(result.completed)  # poison + unfinished: all still there
    assert "UnicodeDecodeError" in "\n".join(result.outputs.values())  # the traceback, in the worker's output
    check_documented("poison-lesson", f"crash event: {crashes[0].detail}")


# --- docs/errors.md -------------------------------------------------------------------------------------------

POISON_ROWS = {
    "poison-lesson": "A message that is not UTF-8, with the lesson's callback (`body.decode()` raises)",
    "poison-taskworker": "A message that is not UTF-8 or not JSON, with `lab.TaskWorker().callback`",
}


def _normalize(text: str, ctx: Ctx | None = None) -> str:
    """Make a message independent of this machine: the learner's prefix and the private node's port."""
    prefix = settings.prefix()
    if prefix:
        text = text.replace(prefix, "")
    if ctx is not None and ctx.private_port:
        text = text.replace(f":{ctx.private_port}", ":5673")
    return text


def render_doc(messages: dict[str, str]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        "# Errors and what to do about them",
        "",
        "Every mistake below gives one sentence that names the fix (a `LabError`; Jupyter shows it as one",
        "red line, without a traceback).  No message is lost by any of them, and the next cell runs normally.",
        "Passwords never appear: URLs are shown as `amqp://user:***@host`.",
        "",
        "This file is generated from the real messages by `python tests/errors_doc.py`; `tests/test_bad_input.py`",
        "fails when a message no longer matches its row here.",
        "",
        "| Case | What you see |",
        "| --- | --- |",
    ]
    for key, (label, _) in CASES.items():
        lines.append(f"| {cell(label)} | {cell(messages[key])} |")
    lines += [
        "",
        "## Poison messages",
        "",
        "A message that can never be processed is not an error of the lab; what happens depends on the callback.",
        "",
        "| Case | What you see |",
        "| --- | --- |",
    ]
    for key, label in POISON_ROWS.items():
        lines.append(f"| {cell(label)} | {cell(messages[key])} |")
    lines += [
        "",
        "With the lesson's callback the worker dies and the message goes back to the queue, flagged",
        "`redelivered`: the next worker takes it and dies too (a *poison pill*); nothing is lost, and",
        "`lab.TaskWorker().callback` shows the fix: `basic_nack(requeue=False)` sends it to a dead-letter",
        "queue after one try.",
        "",
    ]
    return "\n".join(lines)


def documented() -> dict[str, str]:
    """docs/errors.md's rows as case key -> message (labels mapped back to keys)."""
    keys = {label: key for key, (label, _) in CASES.items()} | {label: key for key, label in POISON_ROWS.items()}
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 2 and cells[0] in keys:
            rows[keys[cells[0]]] = cells[1]
    return rows


def check_documented(key: str, message: str) -> None:
    """The message a case produced is the one docs/errors.md shows (or, in record mode, write it down)."""
    out = os.environ.get(RECORD_DIR)
    if out:
        Path(out, f"{key}.json").write_text(json.dumps(message))
        return
    assert re.search(r"[:;.]", message), message
    assert documented().get(key) == message, (
        f"docs/errors.md is out of date for {key!r}; regenerate it with `python tests/errors_doc.py`")


def test_docs_errors_md_is_current():
    """Every case has its row, and the file is exactly what the generator writes (read only, never written)."""
    rows = documented()
    assert set(rows) == set(CASES) | set(POISON_ROWS), set(CASES) ^ set(rows)
    assert DOC.read_text() == render_doc(rows), "regenerate docs/errors.md with `python tests/errors_doc.py`"
