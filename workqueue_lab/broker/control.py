"""What the lab may do with a broker, one object per way it was found.

``broker.control`` answers ``can(action)`` for the actions below and says in one sentence
(``why_not``) what it cannot do and what to do instead; calling an action it cannot do raises
``CannotControl`` with that sentence.  The only place that tells the kinds apart, with
``discovery`` (which makes them).

==========  =====================================================================================
action      meaning
==========  =====================================================================================
stats       live queue counts read inside the node (rabbitmqctl; no 5 s statistics lag)
restart     stop and start RabbitMQ (durable queues and persistent messages survive)
stop        stop the broker for good (only one the lab started)
kill        SIGKILL the node's VM by PID, no goodbye (only one the lab started)
settings    read or set a node setting at runtime, such as consumer_timeout
ctl         run rabbitmqctl against the node
==========  =====================================================================================
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time

from ..errors import BrokerUnavailable, LabError
from . import erlang
from . import node as private_node
from .address import host_port, mask, port_open

log = logging.getLogger(__name__)

ACTIONS = ("stats", "restart", "stop", "kill", "settings", "ctl")

# "the lab cannot <phrase>": what each action would do to the broker
_PHRASES = {
    "stats": "read live queue counts inside it",
    "restart": "restart it",
    "stop": "stop it",
    "kill": "kill it",
    "settings": "change its settings (such as consumer_timeout)",
    "ctl": "run rabbitmqctl against it",
}
USE_PRIVATE = "use a private node (WORKQUEUE_LAB_BROKER=private) for this experiment"


class CannotControl(LabError):
    """An action this broker's control cannot do; the message says what to do instead."""


class Control:
    """What the lab may do with one broker; subclasses say which actions they can do and how."""

    kind = "?"

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask(self.url)})"

    # --- what it can do --------------------------------------------------------------
    def abilities(self) -> frozenset[str]:
        """The actions this control can do now."""
        return frozenset()

    def can(self, action: str) -> bool:
        """True if ``action`` (one of ``ACTIONS``) is possible on this broker."""
        _check(action)
        return action in self.abilities()

    def why_not(self, action: str) -> str:
        """One sentence: what this control cannot do and what to do instead ("" when it can)."""
        return "" if self.can(action) else self._refusal(action)

    def _refusal(self, action: str) -> str:
        return f"This {self.kind} broker does not let the lab {_PHRASES[action]}; {USE_PRIVATE}."

    def require(self, action: str) -> None:
        """Raise ``CannotControl`` (its message is ``why_not``) unless ``action`` is possible."""
        if not self.can(action):
            raise CannotControl(self.why_not(action))

    # --- the actions ---------------------------------------------------------------------
    def restart(self, wait: float = 90.0) -> None:
        """Stop and start RabbitMQ again, then wait up to ``wait`` s until it answers."""
        self.require("restart")

    def stop(self) -> None:
        """Stop the broker (one the lab started)."""
        self.require("stop")

    def kill(self) -> None:
        """SIGKILL the broker's VM: no clean shutdown, as a power cut or the OOM killer would."""
        self.require("kill")

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``rabbitmqctl ARGS`` against the node (text output captured)."""
        self.require("ctl")
        raise NotImplementedError  # every control that can("ctl") overrides this

    def get_setting(self, key: str) -> int | None:
        """A ``rabbit`` application setting as an integer (None if unset), e.g. consumer_timeout."""
        self.require("settings")
        return erlang.get_app_env(self.ctl, key)

    def set_setting(self, key: str, value: int) -> None:
        """Set a ``rabbit`` application setting at runtime (node-wide, until the node restarts)."""
        self.require("settings")
        erlang.set_app_env(self.ctl, key, value)

    def node_pid(self) -> int | None:
        """OS pid of the node's Erlang VM, or None if this control cannot tell."""
        return None

    def scratch(self) -> tuple[str, str]:
        """A directory for files the lab and a program inside the node share: (here, as the node sees it)."""
        import tempfile

        return tempfile.gettempdir(), tempfile.gettempdir()


def _check(action: str) -> None:
    if action not in ACTIONS:
        raise LabError(f"{action!r} is not a broker action; use one of {', '.join(ACTIONS)}.")


def wait_for_port(url: str, timeout: float) -> None:
    """Wait until the broker's AMQP port accepts connections again (after a restart)."""
    host, port = host_port(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise BrokerUnavailable(f"RabbitMQ at {mask(url)} did not come back within {timeout:.0f} s; "
                            "check its log and start it again.")


class UrlControl(Control):
    """A broker given by URL: shared, somebody else's; the lab only connects to it."""

    kind = "url"

    def _refusal(self, action: str) -> str:
        return f"This broker is a shared URL, so the lab cannot {_PHRASES[action]}; {USE_PRIVATE}."


class LocalControl(Control):
    """The system's RabbitMQ on 127.0.0.1:5672, which the lab did not start.

    rabbitmqctl reaches it only with the node's Erlang cookie (as root, or as the ``rabbitmq``
    user): then the lab can read live counts, change settings and restart it (stop_app/start_app),
    but never stops or kills it.
    """

    kind = "local"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._ctl_state: str | None = None  # None: not probed yet; "" works; else why not

    def _probe(self) -> str:
        """"" if rabbitmqctl reaches the node, else the reason (probed once: a CLI start costs ~0.5 s)."""
        if self._ctl_state is None:
            if not shutil.which("rabbitmqctl"):
                self._ctl_state = "rabbitmqctl is not installed here"
            else:
                try:
                    proc = self._run(("eval", "ok."), timeout=20)
                    self._ctl_state = "" if proc.returncode == 0 else "rabbitmqctl cannot reach it as this user"
                except LabError as exc:
                    log.debug("local rabbitmqctl probe: %s", exc)
                    self._ctl_state = "rabbitmqctl does not answer"
        return self._ctl_state

    def abilities(self) -> frozenset[str]:
        return frozenset() if self._probe() else frozenset({"stats", "restart", "settings", "ctl"})

    def _refusal(self, action: str) -> str:
        if action in ("stop", "kill"):
            return (f"This is the system's RabbitMQ on 127.0.0.1:5672, which the lab did not start, so the lab "
                    f"does not {action} it; {USE_PRIVATE}.")
        return (f"This is the system's RabbitMQ on 127.0.0.1:5672 and {self._probe()}, so the lab cannot "
                f"{_PHRASES[action]}; run the lab as root (or the rabbitmq user), or {USE_PRIVATE}.")

    def _run(self, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LabError(f"`rabbitmqctl {args[0]}` did not finish ({type(exc).__name__}); "
                           "check the system's RabbitMQ with `sudo rabbitmqctl status`.") from None

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        self.require("ctl")
        return self._run(args, timeout)

    def restart(self, wait: float = 90.0) -> None:
        self.require("restart")
        for step in ("stop_app", "start_app"):
            proc = self._run((step,), timeout=wait)
            if proc.returncode != 0:
                raise LabError(f"`rabbitmqctl {step}` failed; restart RabbitMQ by hand "
                               "(`sudo rabbitmqctl stop_app && sudo rabbitmqctl start_app`).")
        wait_for_port(self.url, wait)

    def node_pid(self) -> int | None:
        return erlang.node_pid(self.ctl) if self.can("ctl") else None


class DockerControl(Control):
    """RabbitMQ in a container the lab started with testcontainers: restart, stop or kill the container."""

    kind = "docker"

    def __init__(self, url: str, container: object = None) -> None:
        super().__init__(url)
        self.container = container  # testcontainers' RabbitMqContainer; None: no container (yet)

    def abilities(self) -> frozenset[str]:
        return frozenset({"restart", "stop", "kill"}) if self.container is not None else frozenset()

    def _refusal(self, action: str) -> str:
        if self.container is None:
            return (f"No container of the lab backs this Docker broker, so the lab cannot {_PHRASES[action]}; "
                    f"let the lab start one (WORKQUEUE_LAB_BROKER=docker) or {USE_PRIVATE}.")
        return (f"This broker runs in a Docker container and the lab does not run rabbitmqctl inside it, so it "
                f"cannot {_PHRASES[action]}; use `docker exec <container> rabbitmqctl ...` or {USE_PRIVATE}.")

    def _wrapped(self):
        return self.container.get_wrapped_container()  # docker-py's Container

    def restart(self, wait: float = 90.0) -> None:
        self.require("restart")
        self._wrapped().restart()
        wait_for_port(self.url, wait)

    def stop(self) -> None:
        self.require("stop")
        self.container.stop()

    def kill(self) -> None:
        self.require("kill")
        self._wrapped().kill()  # docker kill: SIGKILL to the container's main process

    def node_pid(self) -> int | None:
        if self.container is None:
            return None
        c = self._wrapped()
        c.reload()
        return c.attrs.get("State", {}).get("Pid") or None  # a host pid, seen from the engine's machine


class PrivateControl(Control):
    """The lab's own non-root node (``broker.node``): everything, including SIGKILL by PID."""

    kind = "private"

    def __init__(self, url: str, node: private_node.NodeInfo | None = None) -> None:
        super().__init__(url)
        self.node = node  # ports and base dir of the node, as the lab started it

    def abilities(self) -> frozenset[str]:
        return frozenset(ACTIONS)

    def restart(self, wait: float = 90.0) -> None:
        self.node = private_node.restart(wait=wait)

    def stop(self) -> None:
        private_node.stop()

    def kill(self) -> None:
        if not private_node.kill():
            raise LabError("The private node is not running, so there is nothing to kill; "
                           "start it with `workqueue-lab node start`.")

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return private_node.ctl(*args, timeout=timeout)

    def node_pid(self) -> int | None:
        return private_node.pid()

    def scratch(self) -> tuple[str, str]:
        if self.node is None:
            return super().scratch()
        return private_node.install_of(self.node.series).scratch(self.node.base)

