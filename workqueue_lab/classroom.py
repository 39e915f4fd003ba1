"""A class on one RabbitMQ: per learner a virtual host and a user fenced into it (``workqueue-lab classroom``).

``create`` makes, through the management HTTP API, one vhost and one user per learner (no user tags, so
no management UI or API; configure/write/read ``.*`` on their own vhost and nothing elsewhere), with a
password from ``secrets``.  It writes the credentials sheet (one ``WORKQUEUE_LAB_URL=...`` line per
learner) and, next to it, a state file listing exactly what it made; both are created with mode 0600 and
never overwrite a file.  ``status`` reads the state file and asks the API per learner; ``delete`` removes
the users and vhosts the state file lists (nothing else), then the sheet and the state file.

The admin URL's password travels only in the Authorization header (``broker.management``); everything
shown is masked, and nothing is written but the learners' own credentials.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import urllib.error
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from .broker import management
from .broker.address import mask
from .errors import LabError

log = logging.getLogger(__name__)

PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}
STATE_SUFFIX = ".state.json"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


class NotFound(LabError):
    """The management API answered 404: no such vhost or user."""


@dataclass(frozen=True)
class Learner:
    """One learner's user and vhost (same name) and the URL they set as WORKQUEUE_LAB_URL."""

    name: str
    password: str = field(repr=False)  # a repr shows up in logs and notebooks: keep the secret out of it
    url: str = field(repr=False)


@dataclass(frozen=True)
class LearnerStatus:
    """What the management API says about one learner's vhost right now."""

    name: str
    connections: int  # open AMQP connections in the vhost now
    published: int  # messages published in the vhost (its message_stats.publish; 0 before any)
    queues: dict[str, int]  # per queue: messages published into it (message_stats.publish)

    @property
    def connected(self) -> bool:
        """Connected now, or once: a publish can only come from a connection to the vhost."""
        return self.connections > 0 or self.published > 0


def default_sheet(prefix: str) -> Path:
    return Path(f"{prefix}-credentials.txt")


def state_path(sheet: Path) -> Path:
    """The state file that records what ``create`` made, next to the sheet."""
    return sheet.with_name(sheet.name + STATE_SUFFIX)


def names(prefix: str, learners: int) -> list[str]:
    """The user and vhost names for a class: ``class1-01``, ``class1-02``, ..."""
    if not _PREFIX.fullmatch(prefix):
        raise LabError(f"--prefix {prefix!r} must start with a letter and use only letters, digits, '_' and '-' "
                       "(at most 32); pick e.g. class1.")
    if not 1 <= learners <= 999:
        raise LabError(f"--learners {learners} is out of range; give a number from 1 to 999.")
    width = max(2, len(str(learners)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, learners + 1)]


def learner_url(admin_url: str, name: str, password: str, amqp_port: int = 5672) -> str:
    host = urllib.parse.urlsplit(admin_url).hostname or "localhost"
    return f"amqp://{name}:{password}@{host}:{amqp_port}/{management.quote(name)}"


# --- the three commands ---------------------------------------------------------------------------
def create(admin_url: str, learners: int, prefix: str = "class1", sheet: Path | None = None,
           amqp_port: int = 5672) -> tuple[Path, list[Learner]]:
    """Create the class; return the sheet's path and the learners.  Nothing existing is touched or adopted:
    a vhost or user of the same name, or an existing sheet, stops it before anything is made."""
    wanted = names(prefix, learners)
    sheet = Path(sheet) if sheet else default_sheet(prefix)
    state = state_path(sheet)
    if not sheet.parent.is_dir():
        raise LabError(f"{sheet.parent} is not a directory; create it first or choose another --out.")
    for path in (sheet, state):
        if path.exists():
            raise LabError(f"{path} already exists; delete that class first or choose another --out.")
    for name in wanted:
        for kind in ("vhosts", "users"):
            if _exists(admin_url, f"{kind}/{management.quote(name)}"):
                raise LabError(f"The broker already has a {kind[:-1]} named {name!r}; choose another --prefix.")
    made: dict = {"management": mask(admin_url), "prefix": prefix, "vhosts": [], "users": []}
    _write_private(state, _state_text(made))
    try:
        people = [_create_one(admin_url, name, amqp_port, made, state) for name in wanted]
    except BaseException:
        _remove(admin_url, made)  # what was made so far, and only that
        state.unlink(missing_ok=True)
        raise
    _write_private(sheet, sheet_text(admin_url, people))
    return sheet, people


def _create_one(admin_url: str, name: str, amqp_port: int, made: dict, state: Path) -> Learner:
    vh = management.quote(name)
    _call(admin_url, f"vhosts/{vh}", "PUT", {})
    made["vhosts"].append(name)
    _rewrite(state, made)
    password = secrets.token_urlsafe(18)  # URL-safe letters: the password goes into an amqp:// URL as is
    _call(admin_url, f"users/{management.quote(name)}", "PUT", {"password": password, "tags": ""})
    made["users"].append(name)
    _rewrite(state, made)
    _call(admin_url, f"permissions/{vh}/{management.quote(name)}", "PUT", PERMISSIONS)
    return Learner(name, password, learner_url(admin_url, name, password, amqp_port))


def status(admin_url: str, sheet: Path) -> list[LearnerStatus]:
    """Per learner: open connections in their vhost and the messages published there (management API)."""
    made = read_state(sheet)
    return [_status_one(admin_url, name) for name in made["vhosts"]]


def _status_one(admin_url: str, name: str) -> LearnerStatus:
    vh = management.quote(name)
    connections = _call(admin_url, f"vhosts/{vh}/connections") or []
    info = _call(admin_url, f"vhosts/{vh}") or {}
    queues = _call(admin_url, f"queues/{vh}") or []
    published = (info.get("message_stats") or {}).get("publish", 0)
    per_queue = {q["name"]: (q.get("message_stats") or {}).get("publish", 0) for q in queues}
    return LearnerStatus(name, len(connections), published, per_queue)


def delete(admin_url: str, sheet: Path) -> list[str]:
    """Delete the users and vhosts ``create`` recorded (their queues go with the vhost), then the sheet and
    the state file; returns what was deleted."""
    made = read_state(sheet)
    gone = _remove(admin_url, made)
    state_path(sheet).unlink()
    sheet.unlink(missing_ok=True)
    return gone


def read_state(sheet: Path) -> dict:
    state = state_path(Path(sheet))
    try:
        made = json.loads(state.read_text())
    except FileNotFoundError:
        raise LabError(f"No class recorded at {state}; give the --out you gave to `classroom create`.") from None
    except ValueError:
        raise LabError(f"{state} is not a classroom state file; give the --out you gave to `classroom create`.") \
            from None
    if not isinstance(made, dict) or not {"vhosts", "users"} <= set(made):
        raise LabError(f"{state} is not a classroom state file; give the --out you gave to `classroom create`.")
    return made


def _remove(admin_url: str, made: dict) -> list[str]:
    gone = []
    for kind in ("users", "vhosts"):
        for name in made[kind]:
            try:
                _call(admin_url, f"{kind}/{management.quote(name)}", "DELETE")
            except NotFound:
                log.debug("%s %s was already gone", kind, name)
            gone.append(f"{kind[:-1]} {name}")
    return gone


# --- the sheet and the files -------------------------------------------------------------------------
def sheet_text(admin_url: str, people: list[Learner]) -> str:
    parts = urllib.parse.urlsplit(admin_url)
    mgmt = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    lines = [f"# workqueue-lab class: {len(people)} learners.  Management API (instructor only): {mgmt}",
             "# Give each learner one line; they run it in a terminal (export ...) or put it in the kernel's",
             "# environment before starting JupyterLab.  Learners' users cannot use the management UI."]
    lines += [f"WORKQUEUE_LAB_URL={p.url}" for p in people]
    return "\n".join(lines) + "\n"


def _state_text(made: dict) -> str:
    return json.dumps(made, indent=1) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600 from the start, never an existing file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask said
        f.write(text)


def _rewrite(path: Path, made: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    _write_private(tmp, _state_text(made))
    os.replace(tmp, path)


# --- the API ----------------------------------------------------------------------------------------
def _exists(admin_url: str, path: str) -> bool:
    try:
        _call(admin_url, path)
    except NotFound:
        return False
    return True


def _call(admin_url: str, path: str, method: str = "GET", body: object = None) -> object | None:
    """One management API request; a LabError naming the fix when it fails (the password never shows)."""
    where = mask(admin_url)
    try:
        return management.call(admin_url, path, method, body, timeout=10.0)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotFound(f"{method} /api/{path} found nothing at {where}.") from None
        if exc.code in (401, 403):
            raise LabError(f"The management API at {where} refused the admin user ({exc.code}); give an "
                           "--admin-url whose user has the administrator tag.") from None
        raise LabError(f"The management API at {where} answered {exc.code} to {method} /api/{path}; "
                       "check the broker's log.") from None
    except (OSError, ValueError) as exc:
        log.debug("management API %s: %s", where, exc)
        raise LabError(f"No management API answers at {where}; enable it with "
                       "`rabbitmq-plugins enable rabbitmq_management` or fix --admin-url.") from None
