"""One exception type for everything a learner can fix, shown as one sentence."""

from __future__ import annotations


class LabError(Exception):
    """A problem the learner can fix; the message names the fix.

    In Jupyter, IPython calls ``_render_traceback_`` instead of printing the
    stack, so the learner sees one line, not a wall of frames.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mLabError\x1b[0m: {self}"]


class BrokerUnavailable(LabError):
    """No RabbitMQ could be reached or started."""


def queue_refused(queue: str, exc: Exception) -> str:
    """The one sentence worker.py and new_task.py print when RabbitMQ refuses their ``queue_declare``.

    ``exc`` is pika's ``ChannelClosedByBroker``.  A 406 means the queue already exists with other
    settings, most often as the quorum queue the official tutorial's new_task.py now declares; the
    broker's reply_text says which argument differs and its value there.
    """
    import re

    code, text = getattr(exc, "reply_code", None), getattr(exc, "reply_text", str(exc))
    if code != 406:
        return f"RabbitMQ refused to declare queue '{queue}': {text}."
    found = re.search(r"inequivalent arg '([^']+)'.*current is (?:the value )?'([^']*)'", text)
    if found and found[1] == "x-queue-type":
        tutorial = ", as the official RabbitMQ tutorial's new_task.py declares it," if found[2] == "quorum" else ""
        how = f"it is a {found[2]} queue{tutorial} while this lesson's is a classic queue"
    elif found:
        how = f"its {found[1]} is '{found[2]}' on the broker, not what this program declares"
    else:
        how = text
    vhost = re.search(r"in vhost '([^']*)'", text)
    where = f" -p {vhost[1]}" if vhost and vhost[1] != "/" else ""
    return (f"Queue '{queue}' already exists with other settings: {how}; delete it with "
            f"`workqueue-lab broker reset` (which deletes all the lab's queues) or "
            f"`rabbitmqctl delete_queue{where} {queue}`, or use other queue names with "
            f"`export WORKQUEUE_LAB_PREFIX=me.`")
