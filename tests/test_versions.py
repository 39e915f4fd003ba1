"""versions: the table of version-dependent behaviour, read by parse/applies/status (no broker needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workqueue_lab import versions as v

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# The versions the table is checked on: CI's two, each series boundary the course cares about, and beyond.
VERSIONS = ("3.9.29", "3.10.8", "3.11.14", "3.11.15", "3.12.0", "3.13.0", "3.13.2", "3.13.3", "4.0.0", "4.0.5",
            "4.1.0", "4.2.0", "4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0")

# key -> the versions above on which it holds (everything else: it does not).
EXPECTED = {
    "nack_requeue_counts_delivery": {"3.9.29", "3.10.8", "3.11.14", "3.11.15", "3.12.0", "3.13.0", "3.13.2",
                                     "3.13.3", "4.0.0", "4.0.5", "4.1.0", "4.2.0"},
    "classic_consumer_timeout": {"3.9.29", "3.10.8", "3.11.14", "3.11.15", "3.12.0", "3.13.0", "3.13.2", "3.13.3",
                                 "4.0.0", "4.0.5", "4.1.0", "4.2.0"},
    "quorum_refuses_global_qos": {"3.10.8", "3.11.14", "3.11.15", "3.12.0", "3.13.0", "3.13.2", "3.13.3", "4.0.0",
                                  "4.0.5", "4.1.0", "4.2.0"},
    "x_death_counts_client_republish": {"3.10.8", "3.11.14", "3.11.15", "3.12.0", "3.13.3"},
    "at_least_once_dead_lettering": set(VERSIONS) - {"3.9.29"},
    "quorum_requeue_to_back": {"3.10.8", "3.11.14", "3.11.15", "3.12.0", "3.13.0", "3.13.2", "3.13.3"},
    "per_queue_consumer_timeout": set(VERSIONS) - {"3.9.29", "3.10.8", "3.11.14"},
    "x_delivery_count_omitted_on_first_delivery": set(VERSIONS) - {"3.9.29", "3.10.8", "3.11.14", "3.11.15"},
    "classic_mirroring_removed": {"4.0.0", "4.0.5", "4.1.0", "4.2.0", "4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7",
                                  "4.4.0"},
    "quorum_default_delivery_limit": {"4.0.0", "4.0.5", "4.1.0", "4.2.0", "4.3.0", "4.3.1", "4.3.2", "4.3.6",
                                      "4.3.7", "4.4.0"},
    "khepri_default": {"4.2.0", "4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "khepri_only": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "quorum_consumer_timeout_cancels": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "quorum_per_consumer_timeout": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "x_acquired_count": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "quorum_delayed_retry": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "transient_nonexcl_queues_refused": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "global_qos_ignored": {"4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "classic_down_publish_nacked": {"4.0.0", "4.0.5", "4.1.0", "4.2.0", "4.3.0", "4.3.1", "4.3.2", "4.3.6", "4.3.7",
                                    "4.4.0"},
    "classic_x_consumer_timeout_rejected": {"4.3.2", "4.3.6", "4.3.7", "4.4.0"},
    "consumer_timeout_response": {"4.3.7", "4.4.0"},
}


def test_every_key_is_checked_and_no_other():
    assert set(EXPECTED) == set(v.KEYS)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_key_holds_exactly_on_its_versions(key):
    holds = {version for version in VERSIONS if v.applies(key, version)}
    assert holds == EXPECTED[key]


@pytest.mark.parametrize(("text", "expected"), [
    ("4.0.5", (4, 0, 5)),
    ("3.10.8", (3, 10, 8)),
    ("3.13", (3, 13, 0)),
    ("4.1.0-rc.1", (4, 1, 0)),
    ("4.0.0+2", (4, 0, 0)),          # what 4.0.1's generic binary build reports
    ("v4.3.2", (4, 3, 2)),
    (" 4.2.0 ", (4, 2, 0)),
    ("4.4.0-alpha.3", (4, 4, 0)),
])
def test_parse_reads_release_strings(text, expected):
    assert v.parse(text) == expected


def test_parse_takes_tuples_like_broker_version_tuple():
    assert v.parse((4, 0, 5)) == (4, 0, 5)
    assert v.parse((3, 13)) == (3, 13, 0)
    assert v.parse([4, 3, 7]) == (4, 3, 7)


@pytest.mark.parametrize("bad", ["", "4", "four.zero", "4.x.1", "4.0.5.1", "3.13.x"])
def test_parse_refuses_what_is_not_a_version(bad):
    with pytest.raises(ValueError, match="not a RabbitMQ version"):
        v.parse(bad)


@pytest.mark.parametrize("bad", [(4,), (4, 0, 5, 1), (4, -1, 0), (4, "0", 5), (True, 0, 0)])
def test_parse_refuses_bad_tuples(bad):
    with pytest.raises(ValueError, match="not a RabbitMQ version"):
        v.parse(bad)


def test_applies_takes_a_tuple_as_well_as_a_string():
    assert v.applies("quorum_default_delivery_limit", (4, 0, 5)) is True
    assert v.applies("quorum_default_delivery_limit", (3, 13)) is False
    assert v.applies("x_death_counts_client_republish", "3.13") is False       # 3.13 alone means 3.13.0


def test_an_unknown_key_names_the_known_ones():
    with pytest.raises(ValueError) as raised:
        v.applies("global_qos_refused", "4.3.0")
    message = str(raised.value)
    assert "global_qos_refused" in message and "global_qos_ignored" in message
    assert "quorum_default_delivery_limit" in message


@pytest.mark.parametrize(("version", "expected"), [
    ("3.10.8", "tested"), ("3.10.0", "tested"), ("4.0.5", "tested"), ("4.0.0", "tested"),
    ("3.11.28", "predicted"), ("3.12.0", "predicted"), ("3.13.2", "predicted"), ("3.13.3", "predicted"),
    ("4.1.0", "predicted"), ("4.2.0", "predicted"), ("4.3.0", "predicted"), ("4.3.2", "predicted"),
    ("4.3.7", "predicted"),
    ("4.4.0", "unknown"), ("5.0.0", "unknown"), ("3.9.29", "unknown"), ("3.8.17", "unknown"),
])
def test_status(version, expected):
    assert v.status(version) == expected


def test_status_takes_a_tuple():
    assert v.status((4, 0, 5)) == "tested"
    assert v.status((4, 4)) == "unknown"


def test_the_rows_are_ordered_by_version_and_well_formed():
    sinces = [change.since for change in v.CHANGES]
    assert sinces == sorted(sinces)
    for change in v.CHANGES:
        assert change.until is None or change.since < change.until, change
        assert change.source.startswith("https://"), change
        assert change.text.endswith("."), change
    assert v.KNOWN_UP_TO == (4, 3) and v.TESTED == ("3.10", "4.0")


def test_the_two_x_death_ranges_do_not_overlap():
    first, second = v.changes("x_death_counts_client_republish")
    assert first.until is not None and first.until < second.since


def test_the_ci_versions_see_opposite_sides_of_the_4_0_changes():
    """CI's 3.10.8 and 4.0.5 disagree on every 4.0 change, which is why both run."""
    for key in ("quorum_default_delivery_limit", "classic_mirroring_removed", "quorum_requeue_to_back",
                "x_death_counts_client_republish", "classic_down_publish_nacked"):
        assert v.applies(key, "3.10.8") != v.applies(key, "4.0.5"), key


# --- what a notebook says about the learner's version ------------------------------------------------------


@pytest.mark.parametrize(("version", "says"), [
    ("4.0.5", "You are on 4.0.5: tested."),
    ("3.10.8", "You are on 3.10.8: tested."),
    ("3.10.7", "You are on 3.10.7: the 3.10 series, which CI tests."),
    ("3.13.7", "You are on 3.13.7: not run by CI; what this notebook expects of it is predicted from the release "
               "notes (docs/versions.md)."),
    ("4.3.2", "You are on 4.3.2: not run by CI; what this notebook expects of it is predicted"),
    ("4.4.0", "You are on 4.4.0, newer than the course's version table (up to 4.3): unknown."),
    ("3.9.13", "You are on 3.9.13, older than the course covers (3.10 and newer): unknown"),
])
def test_tested_on_names_the_ci_releases_and_what_the_learners_one_is(version, says):
    line = v.tested_on(version)
    assert line.startswith("Tested on RabbitMQ 3.10.8 and 4.0.5 (CI runs this notebook on both).")
    assert says in line and "\n" not in line


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_says_at_the_top_which_versions_it_is_tested_on(path):
    cells = _code_cells(path)
    first = next(c for c in cells if "lab.connect()" in "".join(c["source"]))
    assert cells.index(first) <= 1, "the connecting cell is the first or second code cell"
    assert "print(lab.versions.tested_on(broker.version))" in "".join(first["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_compares_version_numbers_itself(path):
    """Every version-dependent assert asks the table (lab.versions.applies), so each boundary lives in one place."""
    for cell in _code_cells(path):
        source = "".join(cell["source"])
        assert not re.search(r"version_tuple|version\s*[<>]=?\s*\(", source), (path.name, cell["id"])


def test_nothing_in_the_course_asks_for_global_qos():
    """RabbitMQ 4.3 ignores global QoS (applies it per consumer) and earlier quorum queues refuse it: the course
    never asks for it.  (Non-durable non-exclusive queues, which 4.3 refuses, are shown on purpose in notebook 04
    only; make test's 4.0 run denies them as 4.3 does, so any other use fails there.)"""
    repo = Path(__file__).resolve().parents[1]
    texts = [*repo.glob("workqueue_lab/**/*.py"), *repo.glob("notebooks/**/*.py"), *repo.glob("*.py"), *NOTEBOOKS]
    texts = [p for p in texts if p.name != "versions.py"]  # the table describes it; nothing there calls it
    used = [p.name for p in texts if re.search(r"global_qos\s*=\s*True|global_qos=1\b", p.read_text())]
    assert used == []


# --- what the lab decides on versions CI cannot run (a Broker whose version is known: no connection made) ----


def _url_broker(version: str):
    from workqueue_lab.broker.handle import Broker

    broker = Broker("amqp://guest:guest@127.0.0.1:1/%2F")  # a shared URL: the lab controls nothing of it
    broker._version = version  # what the broker would report; nothing below connects
    return broker


@pytest.mark.parametrize(("version", "how", "why"), [
    ("3.10.8", "", "3.11.15+ for a per-queue timeout"),
    ("3.11.14", "", "3.11.15+ for a per-queue timeout"),
    ("3.11.15", "queue-argument", ""),
    ("3.13.7", "queue-argument", ""),
    ("4.2.0", "queue-argument", ""),
    ("4.3.0", "", "from 4.3 classic queues such as task_queue have no acknowledgement timeout"),
    ("4.4.1", "", "from 4.3 classic queues"),
])
def test_notebook_02s_ack_timeout_demo_follows_the_table(version, how, why):
    from workqueue_lab.lessons.ack_timeout import ack_timeout_demo

    with ack_timeout_demo(_url_broker(version)) as demo:
        assert demo.how == how and why in demo.why_not, (demo.how, demo.why_not)
        assert demo.ready == (how != "")
