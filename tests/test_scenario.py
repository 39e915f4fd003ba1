"""Argument checks: every bad value gives one sentence that names the fix."""

import pytest

from workqueue_lab import LabError
from workqueue_lab.broker import handle as broker
from workqueue_lab.broker.control import PrivateControl
from workqueue_lab.engine import scenario
from workqueue_lab.engine.scenario import Fault, FaultState, Scenario, WorkerSpec, check_prefetch, fault


@pytest.mark.parametrize("value, words", [(-1, "negative"), (1.5, "whole number"), ("1", "whole number"),
                                          (True, "whole number"), (70000, "65535")])
def test_bad_prefetch_names_the_fix(value, words):
    with pytest.raises(LabError, match=words) as info:
        check_prefetch(value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("workers", [0, -2, [], "two", [object()]])
def test_bad_worker_counts(workers):
    with pytest.raises(LabError, match="(?i)worker"):
        scenario.make_workers(workers)


def test_unknown_fault_and_bad_speed():
    with pytest.raises(LabError, match="Unknown failure mode 'explode'"):
        Fault("explode")
    with pytest.raises(LabError, match="speed"):
        WorkerSpec(speed=0)
    with pytest.raises(LabError, match="ack="):
        Scenario(ack="sometimes").validate()


def test_fault_state_is_seeded_and_counts_times():
    state = FaultState([fault("crash", probability=0.5, seed=7)], worker_id=1)
    first = [bool(state.triggered(i)) for i in range(50)]
    again = FaultState([fault("crash", probability=0.5, seed=7)], worker_id=1)
    assert first == [bool(again.triggered(i)) for i in range(50)]
    assert 10 < sum(first) < 40
    once = FaultState([fault("crash", tasks=2)], worker_id=1)
    assert [bool(once.triggered(t)) for t in (1, 2, 2)] == [False, True, False]


def test_mask_hides_the_password():
    assert broker.mask("amqp://bob:s3cret@host:5672/%2F") == "amqp://bob:***@host:5672/%2F"
    assert "s3cret" not in broker.mask("amqps://bob:s3cret@host/vh")


def test_numbered_tasks_match_the_lesson():
    assert scenario.numbered_tasks([1, 2, 3, 4]) == scenario.LESSON_TASKS


def test_management_link_goes_through_the_proxy_on_binder(monkeypatch):
    url = "amqp://guest:guest@127.0.0.1:5673/%2F"
    b = broker.Broker(url, PrivateControl(url), "http://guest:guest@127.0.0.1:15673")
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert b.mgmt_ui_link() == "http://127.0.0.1:15673/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada-x1/")
    assert b.mgmt_ui_link() == "/user/ada-x1/proxy/15673/"
