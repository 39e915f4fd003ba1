"""Self-check for notebook 00, start here: the versions the course needs, and a masked password."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from .base import Check, verdict

__all__ = ["environment"]

NEEDED = {"python": (3, 10), "pika": (1, 3), "rabbitmq": (3, 8)}


def _version(text: object) -> tuple[int, ...]:
    return tuple(int(p) for p in str(text or "").split(".")[:3] if p.isdigit())


def environment(facts: Mapping[str, object]) -> Check:
    """Python, pika and RabbitMQ new enough, a broker that answers, and its password masked when shown.

    ``facts`` has python, pika, rabbitmq (None when the broker did not answer; broker_error says why),
    url, masked_url and mgmt_link, as ``lessons.trials.environment_facts`` gathers them.
    """
    expected = {what: ".".join(map(str, v)) + "+" for what, v in NEEDED.items()} | {"password": "masked"}
    got = {what: facts.get(what) for what in NEEDED}
    url, shown = str(facts.get("url", "")), str(facts.get("masked_url", ""))
    password = urlsplit(url).password
    masked = password is None or (urlsplit(shown).password == "***" and f":{password}@" not in shown)
    got["password"] = "masked" if masked else "shown"
    link = facts.get("mgmt_link")
    got["management UI"] = link or "not enabled (the course does not need it)"
    problems = []
    if facts.get("rabbitmq") is None:
        problems.append(f"RabbitMQ does not answer at {shown}: {facts.get('broker_error') or 'no reply'}; "
                        "start it and run lab.connect() again.")
    for what, needed in NEEDED.items():
        if facts.get(what) is not None and _version(facts[what]) < needed:
            problems.append(f"{what} {facts[what]} is too old: the course needs {expected[what]}.")
    if not masked:
        problems.append("The password shows in the masked URL: report this as a bug of workqueue_lab.")
    return verdict("Your environment", expected, got, "\n".join(problems))
