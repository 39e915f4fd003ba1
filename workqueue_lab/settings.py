"""Settings read from the environment, in one place.

Every knob a learner, an instructor or CI can turn is an environment
variable named here, so the README's table and the code cannot drift apart.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# The one RabbitMQ image the project uses: testcontainers, docker-compose.yml
# and the tests that check the compose file all read it from here.
RABBITMQ_IMAGE = "rabbitmq:4.0.5-management"  # the 4.x release CI runs the course on

ENV_URL = "WORKQUEUE_LAB_URL"  # explicit amqp:// URL; wins over everything
ENV_MGMT_URL = "WORKQUEUE_LAB_MGMT_URL"  # management UI/API base URL for ENV_URL
ENV_BROKER = "WORKQUEUE_LAB_BROKER"  # force a path: url | local | docker | private
ENV_TIME_SCALE = "WORKQUEUE_LAB_TIME_SCALE"  # seconds per "second" of work (dot)
ENV_PREFIX = "WORKQUEUE_LAB_PREFIX"  # per-learner prefix for queues/exchanges
ENV_HOME = "WORKQUEUE_LAB_HOME"  # where the private node keeps its data
ENV_RABBITMQ = "WORKQUEUE_LAB_RABBITMQ"  # which RabbitMQ the lab's own nodes run: system | 4.0
ENV_BUILDS = "WORKQUEUE_LAB_BUILDS"  # where the lab keeps the RabbitMQ releases it builds (4.0)

LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
BROKER_PATHS = ("url", "local", "docker", "private")
# The RabbitMQ a private node or cluster may run: the one the OS package installed ("system"), or a release
# series the lab builds once into a chroot from Debian's own packages (needs root and debootstrap).
RABBITMQ_SERIES = ("system", "4.0")


def time_scale() -> float:
    """Seconds of real time for one second of simulated work (1.0 for learners)."""
    raw = os.environ.get(ENV_TIME_SCALE, "1")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        from .errors import LabError

        raise LabError(f"{ENV_TIME_SCALE}={raw!r} is not a positive number; set it to e.g. 1 or 0.05.")
    return value


def prefix() -> str:
    """The learner's namespace prefix for every queue and exchange the lab creates."""
    value = os.environ.get(ENV_PREFIX, "")
    if value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        from .errors import LabError

        raise LabError(f"{ENV_PREFIX}={value!r} may only use letters, digits, '_', '.', '-'; pick e.g. 'alice.'.")
    return value


def name(base: str) -> str:
    """A queue or exchange name inside the learner's namespace."""
    return f"{prefix()}{base}" if base else base


def home() -> Path:
    """Per-user cache dir for the private broker node (never shared between users)."""
    raw = os.environ.get(ENV_HOME)
    if raw:
        return Path(raw).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "workqueue-lab"


def rabbitmq_series() -> str:
    """Which RabbitMQ the lab's own nodes run: "system" (the installed package, the default) or "4.0"."""
    value = os.environ.get(ENV_RABBITMQ) or "system"
    if value not in RABBITMQ_SERIES:
        from .errors import LabError

        raise LabError(f"{ENV_RABBITMQ}={value!r} is not one of {', '.join(RABBITMQ_SERIES)}; "
                       "unset it to use the installed rabbitmq-server.")
    return value


def builds() -> Path:
    """Where built RabbitMQ releases live: one per machine user, whatever WORKQUEUE_LAB_HOME says, since a
    build takes a minute and 370 MB and every node home (a test's, a second checkout's) can share it."""
    raw = os.environ.get(ENV_BUILDS)
    if raw:
        return Path(raw).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "workqueue-lab" / "rabbitmq"
