"""rabbitmqctl against the private node, as its user with its environment; runtime settings (app env)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ...errors import LabError
from .files import node_env, script_or_fail
from .lifecycle import NO_NODE, current
from .users import drop_kwargs, target_from_state


def ctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``rabbitmqctl -n NODE ARGS`` as the node's user with its environment (text output captured)."""

    cur = current()
    if cur is None:
        raise LabError(NO_NODE)
    info, state = cur
    t = target_from_state(state, info.base)
    script = Path(state.get("script") or script_or_fail())
    cmd = [str(script.parent / "rabbitmqctl"), "-n", info.nodename, *args]
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
            "check the node with `python -m workqueue_lab.broker.node status`."
        ) from None


def check_key(key: str) -> None:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise LabError(f"{key!r} is not a RabbitMQ setting name; use one like 'consumer_timeout'.")


def set_app_env(key: str, value: int) -> None:
    """Set ``rabbit`` application env KEY to an integer at runtime (e.g. consumer_timeout in ms)."""
    check_key(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"set_app_env({key!r}, {value!r}) needs an integer value, e.g. 3000.")
    res = ctl("eval", f"application:set_env(rabbit, {key}, {value}).")
    if res.returncode != 0 or res.stdout.strip() != "ok":
        detail = (res.stderr or res.stdout).strip()
        raise LabError(f"Could not set {key} on the private node ({detail}); start it with start().")


def get_app_env(key: str) -> int | None:
    """The ``rabbit`` application env KEY as an integer, or None if unset or not an integer."""
    import re

    check_key(key)
    res = ctl("eval", f"application:get_env(rabbit, {key}).")
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()
        raise LabError(f"Could not read {key} from the private node ({detail}); start it with start().")
    m = re.fullmatch(r"\{ok,\s*(-?\d+)\}", res.stdout.strip())
    return int(m.group(1)) if m else None

