"""The private node's user: as root, a missing default user is created (the first run on a fresh machine)."""

from __future__ import annotations

import pwd
import secrets
import subprocess

import pytest

from workqueue_lab.broker.node import users

pytestmark = pytest.mark.needs_root("creating a system user needs root")


@pytest.fixture
def missing_user(monkeypatch):
    """A default user name that does not exist yet; removed again (with its home) afterwards."""
    name = f"wqt{secrets.token_hex(3)}"
    monkeypatch.setattr(users, "DEFAULT_USER", name)
    monkeypatch.setattr(users, "_last_run_as", None)
    yield name
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def test_missing_default_user_is_reported_as_none_unless_asked_to_create(missing_user):
    assert users.target() is None


def test_missing_default_user_is_created_on_first_start(missing_user):
    # A fresh machine has no 'wqlab' yet: notebook 04's first restart must create it, not crash.
    t = users.target(create_missing=True)
    assert t is not None and t.user == missing_user
    assert pwd.getpwnam(missing_user).pw_uid == t.uid and t.drop
