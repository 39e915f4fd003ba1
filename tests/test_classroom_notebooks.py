"""Every notebook, unchanged, run by a class's learner: `WORKQUEUE_LAB_URL` is their line of the sheet.

The learner's user may use their own vhost only: no rabbitmqctl, no management API, no node to
restart. Each notebook must run top to bottom without an error, and say NOT CHECKED exactly where a claim
needs what the learner lacks (and nowhere else: every other assert ran and passed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from helpers import ADMIN

from workqueue_lab import classroom, versions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import build_site  # noqa: E402  (book/build_site.py runs the notebooks as `make site` does)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# The claims a learner's account cannot show, by cell: live unacked counts and consumer details need
# rabbitmqctl or the management API.
NEEDS_STATS = {"nb01-23", "nb02-15", "nb02-15b", "nb03-15"}
# Shortening the ack timeout needs a node the lab controls, or RabbitMQ 3.11.15+ (a per-queue timeout).
NEEDS_ACK_TIMEOUT_CONTROL = {"nb02-26"}
# At-least-once dead-lettering retries a refused hop every 180 s unless the node is told otherwise.
NEEDS_DEAD_LETTER_RETRY_CONTROL = {"nb05-30c"}


@pytest.fixture
def learner(tmp_path, monkeypatch):
    """One learner made by `classroom create`, their line in the kernels' environment; deleted afterwards."""
    sheet, (person,) = classroom.create(ADMIN, 1, f"nb{tmp_path.name[-6:].replace('_', '')}", tmp_path / "class.txt")
    monkeypatch.setenv("WORKQUEUE_LAB_URL", person.url)
    monkeypatch.delenv("WORKQUEUE_LAB_BROKER", raising=False)
    try:
        yield person
    finally:
        classroom.delete(ADMIN, sheet)


def test_every_notebook_runs_for_a_learner_and_marks_only_what_needs_control(learner, broker, tmp_path):
    expected = set(NEEDS_STATS) | NEEDS_DEAD_LETTER_RETRY_CONTROL
    if not versions.applies("per_queue_consumer_timeout", broker.version):
        expected |= NEEDS_ACK_TIMEOUT_CONTROL
    not_checked: dict[str, str] = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        out = tmp_path / "run" / path.name
        build_site.execute(path, out, None, 900, tmp_path / "kernels.log")  # an error stops it, in one sentence
        for cell in nbformat.read(out, as_version=4).cells:
            for output in cell.get("outputs", []):
                text = output.get("text", "") if output.get("output_type") == "stream" else ""
                text += str(output.get("data", {}).get("text/plain", ""))
                for line in text.splitlines():
                    if "NOT CHECKED" in line:
                        not_checked[cell.id] = line
    assert set(not_checked) == expected, not_checked
    for cell_id in NEEDS_STATS:
        assert "no rabbitmqctl, no management API" in not_checked[cell_id]
