"""A class on one broker (`workqueue-lab classroom`), against the real RabbitMQ and its management API.

Every test makes its learners under a unique prefix and deletes them in a fixture's ``finally``: by
``classroom delete`` when the state file is there, and by name (only the names that prefix gives) in any
case, so a failing test leaves no vhost or user behind on the shared broker.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import textwrap
import urllib.error
import uuid
from pathlib import Path

import pika
import pytest
from helpers import ADMIN, wait_until

from workqueue_lab import classroom
from workqueue_lab.broker import management
from workqueue_lab.errors import LabError

REPO = Path(__file__).resolve().parents[1]
LEARNERS = 2


def _forget(prefix: str, learners: int) -> None:
    """Delete the users and vhosts this prefix names, whatever state a failed test left (404s are fine)."""
    for name in classroom.names(prefix, learners):
        for kind in ("users", "vhosts"):
            try:
                management.call(ADMIN, f"{kind}/{management.quote(name)}", "DELETE")
            except urllib.error.HTTPError as exc:
                assert exc.code == 404, (kind, name, exc.code)


@pytest.fixture
def prefix():
    value = f"t{uuid.uuid4().hex[:8]}"
    try:
        yield value
    finally:
        _forget(value, 9)


@pytest.fixture
def klass(tmp_path, prefix):
    """Two learners made by ``classroom.create``; deleted afterwards by ``classroom.delete`` (and by name)."""
    sheet = tmp_path / "class.txt"
    try:
        sheet, people = classroom.create(ADMIN, LEARNERS, prefix, sheet)
        yield sheet, people
    finally:
        if classroom.state_path(sheet).exists():
            classroom.delete(ADMIN, sheet)


@pytest.fixture
def secret_admin(prefix):
    """An administrator with a random password (guest's password is also its name, so it cannot be looked
    for in output); it has no permissions on any vhost, only the tag that lets it manage the broker."""
    name, password = f"{prefix}-admin", secrets.token_urlsafe(16)
    management.call(ADMIN, f"users/{name}", "PUT", {"password": password, "tags": "administrator"})
    try:
        yield f"http://{name}:{password}@127.0.0.1:15672", password
    finally:
        management.call(ADMIN, f"users/{name}", "DELETE")


def _http_code(url: str, path: str, method: str = "GET", body: object = None) -> int:
    try:
        management.call(url, path, method, body)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def _learner_mgmt(person: classroom.Learner) -> str:
    return f"http://{person.name}:{person.password}@127.0.0.1:15672"


# --- what create makes, and what delete removes --------------------------------------------------------


def test_create_makes_one_fenced_vhost_and_user_per_learner(klass):
    sheet, people = klass
    assert [p.name for p in people] == classroom.names(people[0].name.rsplit("-", 1)[0], LEARNERS)
    for p in people:
        vh = management.quote(p.name)
        assert management.call(ADMIN, f"users/{p.name}")["tags"] in ("", [])
        perms = management.call(ADMIN, f"users/{p.name}/permissions")
        assert [(x["vhost"], x["configure"], x["write"], x["read"]) for x in perms] == [(p.name, ".*", ".*", ".*")]
        assert management.call(ADMIN, f"vhosts/{vh}")["name"] == p.name
        assert p.url == f"amqp://{p.name}:{p.password}@127.0.0.1:5672/{p.name}"
    lines = [ln for ln in sheet.read_text().splitlines() if not ln.startswith("#")]
    assert lines == [f"WORKQUEUE_LAB_URL={p.url}" for p in people]
    assert "http://127.0.0.1:15672" in sheet.read_text()
    assert len({p.password for p in people}) == LEARNERS and all(len(p.password) >= 24 for p in people)


def test_the_sheet_and_the_state_file_are_readable_by_their_owner_only(klass):
    sheet, _ = klass
    for path in (sheet, classroom.state_path(sheet)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_delete_removes_exactly_what_create_made(tmp_path, prefix):
    bystander = f"{prefix}-09"  # same prefix, not made by create: it must survive
    management.call(ADMIN, f"vhosts/{bystander}", "PUT", {})
    sheet, people = classroom.create(ADMIN, LEARNERS, prefix, tmp_path / "c.txt")
    gone = classroom.delete(ADMIN, sheet)
    assert sorted(gone) == sorted([f"user {p.name}" for p in people] + [f"vhost {p.name}" for p in people])
    for p in people:
        assert _http_code(ADMIN, f"users/{p.name}") == 404
        assert _http_code(ADMIN, f"vhosts/{p.name}") == 404
    assert management.call(ADMIN, f"vhosts/{bystander}")["name"] == bystander
    assert not sheet.exists() and not classroom.state_path(sheet).exists()


def test_create_refuses_a_name_that_exists_and_makes_nothing(tmp_path, prefix):
    management.call(ADMIN, f"users/{prefix}-02", "PUT", {"password": secrets.token_urlsafe(8), "tags": ""})
    with pytest.raises(LabError, match=rf"already has a user named '{prefix}-02'; choose another --prefix"):
        classroom.create(ADMIN, LEARNERS, prefix, tmp_path / "c.txt")
    assert _http_code(ADMIN, f"vhosts/{prefix}-01") == 404
    assert not (tmp_path / "c.txt").exists() and not classroom.state_path(tmp_path / "c.txt").exists()



def test_a_create_that_fails_halfway_deletes_what_it_had_made(tmp_path, prefix, monkeypatch):
    real, calls = classroom._create_one, []

    def second_one_fails(*args):
        calls.append(args[1])
        if len(calls) == 2:
            real(*args)  # the vhost and user are made, then the failure comes
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(classroom, "_create_one", second_one_fails)
    with pytest.raises(KeyboardInterrupt):
        classroom.create(ADMIN, 3, prefix, tmp_path / "c.txt")
    assert calls == [f"{prefix}-01", f"{prefix}-02"]
    for name in calls:
        assert _http_code(ADMIN, f"users/{name}") == 404 and _http_code(ADMIN, f"vhosts/{name}") == 404
    assert list(tmp_path.iterdir()) == []

# --- the fence -----------------------------------------------------------------------------------------


def test_a_learner_cannot_open_another_learners_vhost_or_the_default_one(klass):
    _, (a, b) = klass
    for vhost in (b.name, "%2F"):
        url = f"amqp://{a.name}:{a.password}@127.0.0.1:5672/{vhost}"
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError, match="NOT_ALLOWED - access to vhost"):
            pika.BlockingConnection(pika.URLParameters(url))
    conn = pika.BlockingConnection(pika.URLParameters(a.url))  # their own works
    assert conn.is_open
    conn.close()


def test_a_learner_cannot_use_the_management_api(klass):
    """RabbitMQ 3.10 answers 401 "Not management user" to a user without tags, for every endpoint."""
    _, (a, b) = klass
    mine = _learner_mgmt(a)
    for path in ("vhosts", "queues", f"queues/{b.name}", f"vhosts/{b.name}", "users", "overview", "whoami"):
        assert _http_code(mine, path) == 401, path
    widen = {"configure": ".*", "write": ".*", "read": ".*"}
    assert _http_code(mine, f"permissions/{b.name}/{a.name}", "PUT", widen) == 401
    assert _http_code(mine, f"permissions/%2F/{a.name}", "PUT", widen) == 401
    assert _http_code(mine, f"users/{a.name}", "PUT", {"password": "x", "tags": "administrator"}) == 401
    # and nothing changed
    perms = management.call(ADMIN, f"users/{a.name}/permissions")
    assert [x["vhost"] for x in perms] == [a.name]
    assert management.call(ADMIN, f"users/{a.name}")["tags"] in ("", [])


def test_the_cli_never_shows_the_admin_password(tmp_path, prefix, secret_admin):
    admin_url, password = secret_admin
    sheet = tmp_path / "cli.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    outputs = []
    try:
        for args in (["create", "--learners", "2", "--prefix", prefix, "--out", str(sheet)],
                     ["status", "--prefix", prefix, "--out", str(sheet)],
                     ["create", "--learners", "1", "--prefix", prefix, "--out", str(sheet)],  # refused: exists
                     ["delete", "--prefix", prefix, "--out", str(sheet)],
                     ["status", "--out", str(sheet)]):  # refused: nothing recorded
            proc = subprocess.run([sys.executable, "-m", "workqueue_lab", "classroom", *args, "--admin-url",
                                   admin_url], capture_output=True, text=True, env=env, timeout=60)
            outputs.append((args[0], proc.returncode, proc.stdout + proc.stderr))
            if args[0] == "create" and proc.returncode == 0:
                files = sheet.read_text() + classroom.state_path(sheet).read_text()
                assert password not in files
    finally:
        _forget(prefix, 2)
    assert [(a, rc) for a, rc, _ in outputs] == [("create", 0), ("status", 0), ("create", 1), ("delete", 0),
                                               ("status", 1)]
    for _, _, text in outputs:
        assert password not in text
        assert "Traceback" not in text
    assert f"http://{prefix}-admin:***@127.0.0.1:15672" in outputs[0][2]
    assert "cli.txt already exists" in outputs[2][2]


# --- two learners run notebook 01 at the same time -------------------------------------------------------

LEARNER_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import pika
    import workqueue_lab as lab

    go = Path(sys.argv[1])
    broker = lab.connect()   # notebook 01, unchanged: WORKQUEUE_LAB_URL is the learner's sheet line
    lab.reset()
    QUEUE = lab.settings.name("task_queue")
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.basic_publish(exchange="", routing_key=QUEUE, body=os.environ["WHO"].encode())
    connection.close()
    Path(str(go) + "." + os.environ["WHO"]).touch()
    while not go.exists():  # both learners have sent their message to their task_queue
        time.sleep(0.02)
    ready = broker.queue_stats(QUEUE).ready   # the queue in this learner's vhost holds only their message
    lab.reset()
    received = []

    def callback(ch, method, properties, body):
        received.append(body.decode())
        lab.work(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)

    started = time.time()
    result = lab.run(callback, tasks=lab.LESSON_TASKS, workers=2, prefetch=1)
    ended = time.time()
    print(json.dumps({"kind": broker.kind, "vhost": broker.vhost, "ready": ready, "queue": QUEUE,
                      "by_worker": result.tasks_by_worker(), "bodies": sorted(received),
                      "tasks": sorted(lab.LESSON_TASKS), "started": started, "ended": ended,
                      "restart": broker.control.why_not("restart")}))
    lab.reset()
""")


def test_two_learners_run_notebook_01_at_once_each_in_their_own_vhost(klass, tmp_path):
    _, people = klass
    go = tmp_path / "go"
    procs = []
    for p in people:
        env = {**os.environ, "PYTHONPATH": str(REPO), "WORKQUEUE_LAB_URL": p.url, "WHO": p.name,
               "WORKQUEUE_LAB_TIME_SCALE": "0.2", "WORKQUEUE_LAB_PREFIX": ""}  # both use plain task_queue
        env.pop("WORKQUEUE_LAB_BROKER", None)
        env.pop("WORKQUEUE_LAB_MGMT_URL", None)
        procs.append(subprocess.Popen([sys.executable, "-c", LEARNER_SCRIPT, str(go)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        assert wait_until(lambda: all(Path(f"{go}.{p.name}").exists() for p in people), timeout=60)
        go.touch()
        outs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for p, proc, (out, err) in zip(people, procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert p.password not in out + err
        results.append(json.loads(out.splitlines()[-1]))
    for p, r in zip(people, results, strict=True):
        assert (r["kind"], r["vhost"], r["queue"], r["ready"]) == ("url", p.name, "task_queue", 1)
        assert r["by_worker"] == {"1": [1, 3], "2": [2, 4]}
        assert r["bodies"] == r["tasks"]  # its own four tasks, each delivered once: none of the other learner's
        assert r["restart"].startswith("This broker is a shared URL, so the lab cannot restart it;")
    (a, b) = results
    assert a["started"] < b["ended"] and b["started"] < a["ended"], "the two runs did not overlap"
    # what the instructor sees: each vhost counts only its own publishes (the probe and the 4 tasks: 5), never
    # the other learner's (10).  The management API's statistics arrive every 5 s and can trail a busy node.
    seen: list = []

    def counted():
        seen[:] = classroom.status(ADMIN, klass[0])
        return [r for r in seen if 1 <= r.published <= 5]

    rows = wait_until(counted, timeout=60, interval=1.0)
    assert [r.name for r in rows] == [p.name for p in people], f"status after 60 s: {seen}"
    assert all(r.connected for r in rows)


# --- pure parts --------------------------------------------------------------------------------------------


def test_names_and_what_a_bad_prefix_or_count_says():
    assert classroom.names("class1", 3) == ["class1-01", "class1-02", "class1-03"]
    assert classroom.names("c", 120)[-1] == "c-120"
    with pytest.raises(LabError, match=r"--prefix 'my class' must start with a letter"):
        classroom.names("my class", 2)
    with pytest.raises(LabError, match=r"--learners 0 is out of range"):
        classroom.names("class1", 0)


def test_a_learner_shows_without_their_password():
    person = classroom.Learner("class1-01", "s3cret-pw", "amqp://class1-01:s3cret-pw@h:5672/class1-01")
    assert "s3cret-pw" not in repr(person) and "class1-01" in repr(person)


def test_someone_elses_vhost_is_explained_as_refused_not_missing():
    import pika.exceptions as pe

    from workqueue_lab.broker.connection import explain_connection_error

    exc = pe.ProbableAccessDeniedError(530, "NOT_ALLOWED - access to vhost 'class-02' refused for user 'class-01'")
    message = str(explain_connection_error(exc, "amqp://class-01:secret@127.0.0.1:5672/class-02"))
    assert "may not use virtual host 'class-02'" in message and "secret" not in message, message
