"""rabbitmqctl against the private node, as its user with its environment; runtime settings (app env).

The app-env programs themselves live in ``broker.erlang`` (one copy for every node the lab controls).
"""

from __future__ import annotations

import subprocess

from ...errors import LabError
from .. import erlang
from .files import NO_NODE, current, node_env, script_or_fail
from .users import drop_kwargs, target_from_state


def ctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``rabbitmqctl -n NODE ARGS`` as the node's user with its environment (text output captured)."""

    cur = current()
    if cur is None:
        raise LabError(NO_NODE)
    info, state = cur
    t = target_from_state(state, info.base)
    if not t.install.chrooted:
        script_or_fail()  # one sentence if RabbitMQ was uninstalled under the node
    cmd = t.install.ctl_command("-n", info.nodename, *args)
    try:
        return subprocess.run(
            cmd,
            env=node_env(info, t),
            cwd=info.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **drop_kwargs(t),
        )
    except subprocess.TimeoutExpired:
        raise LabError(
            f"`rabbitmqctl {' '.join(args)}` did not finish within {timeout:.0f} s; "
            "check the node with `workqueue-lab node status`."
        ) from None


def set_app_env(key: str, value: int) -> None:
    """Set ``rabbit`` application env KEY to an integer at runtime (e.g. consumer_timeout in ms)."""
    erlang.set_app_env(ctl, key, value)


def get_app_env(key: str) -> int | None:
    """The ``rabbit`` application env KEY as an integer, or None if unset or not an integer."""
    return erlang.get_app_env(ctl, key)
