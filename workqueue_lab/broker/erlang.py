"""Erlang programs the lab runs inside a RabbitMQ node with ``rabbitmqctl eval``, and the runner.

``in_node`` keeps one ``rabbitmqctl eval`` going for the length of a ``with`` block (one CLI start,
~0.5-1.5 s, instead of one per call).  The programs: a node setting that puts itself back
(``short_ack_timeout``), a queue watch that samples ready/unacked counts, and app-env get/set.
Every function takes the ``ctl`` to run (a control's ``ctl``), so it works on any node the lab controls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterator

from ..errors import LabError

log = logging.getLogger(__name__)

Ctl = Callable[..., subprocess.CompletedProcess]
Program = Callable[[str, str], str]  # (started_flag, stop_flag) -> code for `rabbitmqctl eval`


def erl_binary(text: str) -> str:
    """A UTF-8 Erlang binary literal for ``text``."""
    return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"/utf8>>'


def check_key(key: str) -> None:
    """Only a plain setting name reaches an eval: nothing else can be smuggled into the program."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise LabError(f"{key!r} is not a RabbitMQ setting name; use one like 'consumer_timeout'.")


def get_app_env(ctl: Ctl, key: str) -> int | None:
    """The ``rabbit`` application env KEY as an integer, or None if unset or not an integer."""
    check_key(key)
    res = ctl("eval", f"application:get_env(rabbit, {key}).")
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()
        raise LabError(f"Could not read {key} from the RabbitMQ node ({detail}); check that the node runs.")
    m = re.fullmatch(r"\{ok,\s*(-?\d+)\}", res.stdout.strip())
    return int(m.group(1)) if m else None


def set_app_env(ctl: Ctl, key: str, value: int) -> None:
    """Set ``rabbit`` application env KEY to an integer at runtime (e.g. consumer_timeout in ms)."""
    check_key(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"set_app_env({key!r}, {value!r}) needs an integer value, e.g. 3000.")
    res = ctl("eval", f"application:set_env(rabbit, {key}, {value}).")
    if res.returncode != 0 or res.stdout.strip() != "ok":
        detail = (res.stderr or res.stdout).strip()
        raise LabError(f"Could not set {key} on the RabbitMQ node ({detail}); check that the node runs.")


def node_pid(ctl: Ctl) -> int | None:
    """The OS pid of the node's Erlang VM, as the node itself reports it."""
    res = ctl("eval", "os:getpid().")
    text = res.stdout.strip().strip('"')
    return int(text) if res.returncode == 0 and text.isdigit() else None


def ack_timeout_program(ms: int, tick_ms: int) -> Program:
    """Set consumer_timeout and channel_tick_interval until the stop flag appears, then put back what is ours."""
    return settings_program({"consumer_timeout": ms, "channel_tick_interval": tick_ms})


def settings_program(values: dict[str, int]) -> Program:
    """Set ``rabbit`` app env keys to integers until the stop flag appears (or two minutes pass), then put back
    the old value of each key that still holds ours: a value someone changed meanwhile stays theirs."""
    for key in values:
        check_key(key)
    keys = "[" + ", ".join(values) + "]"
    ours = "[" + ", ".join(f"{{ok, {int(v)}}}" for v in values.values()) + "]"
    sets = "".join(f"application:set_env(rabbit, {k}, {int(v)}), " for k, v in values.items())

    def program(started_flag: str, stop_flag: str) -> str:
        return (
            f"Keys = {keys}, "
            "Old = [application:get_env(rabbit, K) || K <- Keys], "
            f"{sets}"
            f'file:write_file("{started_flag}", io_lib:format("~p", [Old])), '
            f'Wait = fun W(0) -> ok; W(N) -> case filelib:is_regular("{stop_flag}") of '
            "true -> ok; false -> timer:sleep(50), W(N - 1) end end, Wait(2400), "
            f"Ours = {ours}, "
            "lists:foreach(fun({K, Mine, Before}) -> case application:get_env(rabbit, K) of "
            "Mine -> case Before of {ok, V} -> application:set_env(rabbit, K, V); "
            "undefined -> application:unset_env(rabbit, K) end; _ -> ok end end, lists:zip3(Keys, Ours, Old)), "
            'io:format("restored ~p~n", [Old]).'
        )

    return program


def queue_watch_program(vhost: str, queue: str, every: float) -> Program:
    """Print "<wall ms> <ready> <unacked>" for one queue every ``every`` s until the stop flag appears."""

    def program(started_flag: str, stop_flag: str) -> str:
        return (
            f'Q = rabbit_misc:r({erl_binary(vhost)}, queue, {erl_binary(queue)}), '
            'Sample = fun() -> case rabbit_amqqueue:lookup(Q) of '
            '{ok, Q1} -> [{_, R}, {_, U}] = rabbit_amqqueue:info(Q1, [messages_ready, messages_unacknowledged]), '
            'io:format("~b ~b ~b~n", [erlang:system_time(millisecond), R, U]); _ -> ok end end, '
            f'Loop = fun L(0) -> ok; L(N) -> Sample(), case filelib:is_regular("{stop_flag}") of '
            f'true -> ok; false -> timer:sleep({max(10, int(every * 1000))}), L(N - 1) end end, '
            f'file:write_file("{started_flag}", <<"started">>), Loop({int(120 / every)}).'
        )

    return program


@contextlib.contextmanager
def in_node(ctl: Ctl, program: Program, what: str, start_timeout: float = 30,
            scratch: tuple[str, str] | None = None) -> Iterator[tuple[bool, list[str]]]:
    """Run an Erlang program inside the node for the length of the block.

    ``program(started_flag, stop_flag)`` returns the code for ``rabbitmqctl eval``: it
    writes ``started_flag`` once it is under way and ends when ``stop_flag`` exists (and
    by itself after a while, should this process die).  Yields (started, output lines); the
    lines are filled in when the block ends.  ``scratch`` is (directory here, the same directory
    as the node sees it): they differ for a node in a chroot (``Control.scratch``).
    """
    import tempfile
    import threading
    import time

    here, there = scratch or (tempfile.gettempdir(), tempfile.gettempdir())
    name = f"workqueue-lab-{os.getpid()}-{time.time_ns()}"
    started_flag, stop_flag = os.path.join(here, name + ".started"), os.path.join(here, name + ".stop")
    code = program(os.path.join(there, name + ".started"), os.path.join(there, name + ".stop"))
    output: list[str] = []

    def run() -> None:
        try:
            proc = ctl("eval", code, timeout=180)
        except LabError as exc:  # the CLI did not finish: the caller sees started=False or no lines
            log.debug("in-node %s: %s", what, exc)
            return
        if proc.returncode == 0:
            output.extend(proc.stdout.splitlines())
        else:
            log.debug("in-node %s exited %s: %s", what, proc.returncode, (proc.stderr or proc.stdout).strip())

    thread = threading.Thread(target=run, name=f"workqueue-lab {what}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not os.path.exists(started_flag) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield os.path.exists(started_flag), output
    finally:
        with open(stop_flag, "w"):
            pass
        thread.join(30)
        for flag in (started_flag, stop_flag):
            with contextlib.suppress(OSError):
                os.remove(flag)
