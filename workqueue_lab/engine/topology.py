"""Declared topology: which queues, exchanges and bindings an experiment uses, as one immutable value.

A ``Topology`` is plain data.  Runs declare it (``declare(channel)``), the taps watch its dead-letter,
retry and parking queues, views read which queue has which role, and every Topology registers its
names so ``Broker.reset()`` deletes exactly those (with the learner's prefix) and nothing hard-coded.

Names in a spec are *base* names, without the learner's prefix; ``name()`` adds it.  Routing keys are
prefixed as well (a non-empty key is a queue name in every topology of the course), so the default
exchange's "routing key = queue name" rule holds under any prefix.

The course's topologies are at the end of this module, beside the type, because the engine's default
run needs the lesson's queue and the engine must not import ``lessons``; importing this module (every
run does) therefore registers all of them, so a reset in a fresh kernel still finds them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .. import settings
from ..broker import registry
from ..errors import LabError

QUEUE_KINDS = ("classic", "quorum")
ROLES = ("work", "dead_letter", "retry", "parking")
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")


@dataclass(frozen=True)
class QueueSpec:
    """One queue: its kind, durability and the arguments RabbitMQ knows, typed; ``role`` says what it is for."""

    name: str
    role: str = "work"
    kind: str = "classic"
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    dead_letter_exchange: str | None = None  # base name; "" is the default exchange
    dead_letter_routing_key: str | None = None  # base name (a queue's, for the default exchange)
    message_ttl: int | None = None  # milliseconds, as the broker holds it
    delivery_limit: int | None = None  # quorum queues only
    extra: Mapping[str, object] = field(default_factory=dict)  # any other x-argument, passed as is

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise LabError(f"Queue name {self.name!r} must be 1..200 characters.")
        if self.kind not in QUEUE_KINDS:
            raise LabError(f"Queue '{self.name}' has kind={self.kind!r}; use 'classic' or 'quorum'.")
        if self.role not in ROLES:
            raise LabError(f"Queue '{self.name}' has role={self.role!r}; use one of: {', '.join(ROLES)}.")
        if self.kind == "quorum" and (not self.durable or self.exclusive or self.auto_delete):
            raise LabError(f"Quorum queue '{self.name}' must be durable, not exclusive and not auto-delete "
                           "(RabbitMQ refuses otherwise); set durable=True or use kind='classic'.")
        if self.delivery_limit is not None and self.kind != "quorum":
            raise LabError(f"Queue '{self.name}' sets delivery_limit, which only quorum queues honour; "
                           "use kind='quorum' or drop delivery_limit.")
        for what, value in (("message_ttl", self.message_ttl), ("delivery_limit", self.delivery_limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise LabError(f"Queue '{self.name}' has {what}={value!r}; use a whole number >= 0.")
        object.__setattr__(self, "extra", dict(self.extra))

    def arguments(self) -> dict[str, object]:
        """The x-arguments the broker gets, built from the typed fields (then ``extra``).

        A classic queue gets no x-queue-type: the lesson declares ``task_queue`` with no
        arguments at all, and a declaration must match it to be accepted.
        """
        args: dict[str, object] = {}
        if self.kind == "quorum":
            args["x-queue-type"] = "quorum"
        if self.dead_letter_exchange is not None:
            args["x-dead-letter-exchange"] = settings.name(self.dead_letter_exchange)
        if self.dead_letter_routing_key is not None:
            args["x-dead-letter-routing-key"] = settings.name(self.dead_letter_routing_key)
        if self.message_ttl is not None:
            args["x-message-ttl"] = self.message_ttl
        if self.delivery_limit is not None:
            args["x-delivery-limit"] = self.delivery_limit
        args.update(self.extra)
        return args


@dataclass(frozen=True)
class ExchangeSpec:
    """One exchange the topology declares."""

    name: str
    type: str = "direct"
    durable: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise LabError("An exchange needs a name; the default exchange '' is always there, do not declare it.")
        if self.type not in EXCHANGE_TYPES:
            raise LabError(f"Exchange '{self.name}' has type={self.type!r}; use one of: {', '.join(EXCHANGE_TYPES)}.")


@dataclass(frozen=True)
class Binding:
    """Messages published to ``exchange`` with ``routing_key`` go to ``queue`` (base names)."""

    exchange: str
    queue: str
    routing_key: str = ""


@dataclass(frozen=True)
class Tap:
    """Where a copy of what reaches a non-work queue can be caught: the exchange and key that feed it."""

    role: str
    queue: str  # prefixed name of the queue it watches
    exchange: str  # prefixed
    routing_key: str  # prefixed


@dataclass(frozen=True)
class Topology:
    """Queues, exchanges and bindings of one experiment; registers its names for ``reset()`` when built."""

    queues: tuple[QueueSpec, ...]
    exchanges: tuple[ExchangeSpec, ...] = ()
    bindings: tuple[Binding, ...] = ()

    def __post_init__(self) -> None:
        for attr in ("queues", "exchanges", "bindings"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        queue_names = [q.name for q in self.queues]
        exchange_names = {x.name for x in self.exchanges}
        if len(set(queue_names)) != len(queue_names):
            raise LabError(f"A topology declares a queue twice ({', '.join(queue_names)}); give each its own name.")
        if not any(q.role == "work" for q in self.queues):
            raise LabError("A topology needs one queue with role='work' for the workers to consume from.")
        for b in self.bindings:
            if b.exchange not in exchange_names or b.queue not in queue_names:
                raise LabError(f"Binding {b.exchange!r} -> {b.queue!r} names an exchange or queue this topology "
                               "does not declare; add it to exchanges/queues.")
        for q in self.queues:
            if q.dead_letter_exchange and q.dead_letter_exchange not in exchange_names:
                raise LabError(f"Queue '{q.name}' dead-letters to exchange '{q.dead_letter_exchange}', which this "
                               f"topology does not declare; add ExchangeSpec('{q.dead_letter_exchange}').")
        registry.register(queue_names, sorted(exchange_names))

    # --- names and lookups -------------------------------------------------------------
    @staticmethod
    def name(base: str) -> str:
        """A base name inside the learner's namespace (the prefix of the moment)."""
        return settings.name(base)

    def names(self) -> list[tuple[str, str]]:
        """("queue" | "exchange", prefixed name) of everything ``declare()`` declares."""
        return ([("exchange", settings.name(x.name)) for x in self.exchanges]
                + [("queue", settings.name(q.name)) for q in self.queues])

    @property
    def work_queue(self) -> QueueSpec:
        """The queue the workers consume from (the first with role 'work')."""
        return next(q for q in self.queues if q.role == "work")

    def queue(self, base: str) -> QueueSpec:
        for q in self.queues:
            if q.name == base:
                return q
        raise LabError(f"This topology has no queue '{base}'; it has: {', '.join(q.name for q in self.queues)}.")

    def queue_with_role(self, role: str) -> QueueSpec | None:
        """The first queue with this role ('work', 'dead_letter', 'retry', 'parking'), or None."""
        return next((q for q in self.queues if q.role == role), None)

    def roles(self) -> dict[str, str]:
        """Prefixed queue name -> role (what views use to name a queue's lane)."""
        return {settings.name(q.name): q.role for q in self.queues}

    def arguments(self) -> dict[str, dict[str, object]]:
        """Prefixed queue name -> the x-arguments it is declared with."""
        return {settings.name(q.name): q.arguments() for q in self.queues}

    def taps(self) -> list[Tap]:
        """For each binding into a dead-letter, retry or parking queue: where to tap a copy of its messages."""
        roles = {q.name: q.role for q in self.queues}
        return [Tap(roles[b.queue], settings.name(b.queue), settings.name(b.exchange), settings.name(b.routing_key))
                for b in self.bindings if roles[b.queue] != "work"]

    # --- on the broker ----------------------------------------------------------------
    def declare(self, channel) -> dict[str, int]:
        """Declare exchanges, queues, then bindings on a pika channel; returns prefixed queue -> messages.

        A queue or exchange that already exists with other settings (406 PRECONDITION_FAILED)
        becomes a one-sentence LabError that names it and the fix.
        """
        counts: dict[str, int] = {}
        for x in self.exchanges:
            name = settings.name(x.name)
            with _refused("Exchange", name):
                channel.exchange_declare(exchange=name, exchange_type=x.type, durable=x.durable)
        for q in self.queues:
            name = settings.name(q.name)
            with _refused("Queue", name):
                ok = channel.queue_declare(queue=name, durable=q.durable, exclusive=q.exclusive,
                                           auto_delete=q.auto_delete, arguments=q.arguments() or None)
            counts[name] = ok.method.message_count
        for b in self.bindings:
            channel.queue_bind(queue=settings.name(b.queue), exchange=settings.name(b.exchange),
                               routing_key=settings.name(b.routing_key))
        return counts


@contextlib.contextmanager
def _refused(what: str, name: str) -> Iterator[None]:
    """Turn the broker's refusal of one declaration into one sentence naming it and the fix."""
    import pika.exceptions as pe

    try:
        yield
    except pe.ChannelClosedByBroker as exc:
        if exc.reply_code == 406:
            raise LabError(f"{what} '{name}' already exists with other settings ({exc.reply_text}); "
                           f"delete it with lab.reset() or use another {what.lower()} name.") from None
        raise LabError(f"RabbitMQ refused to declare {what.lower()} '{name}': {exc.reply_text}.") from None


def single_queue(name: str, durable: bool = True, arguments: Mapping[str, object] | None = None) -> Topology:
    """One work queue on the default exchange (what a Scenario's queue/durable/queue_arguments describe)."""
    return Topology((QueueSpec(name, durable=durable, extra=dict(arguments or {})),))


# --- the course's topologies -------------------------------------------------------------
# The lesson's queue: the one place its name lives.  Declared exactly as the lesson's worker.py
# and new_task.py declare it (durable, no arguments), so those programs and the lab share it.
TASK_QUEUE = "task_queue"
LESSON = single_queue(TASK_QUEUE)

# The part-2 topologies use their own names: the lesson's programs keep declaring task_queue with
# no arguments, and a queue's arguments cannot change once it exists.
DEAD_LETTER = Topology(
    queues=(QueueSpec("dl_tasks", dead_letter_exchange="dl_exchange", dead_letter_routing_key="dl_dead"),
            QueueSpec("dl_dead", role="dead_letter")),
    exchanges=(ExchangeSpec("dl_exchange"),),
    bindings=(Binding("dl_exchange", "dl_dead", "dl_dead"),),
)


# task_worker.py's own queues (the lesson's production worker as a program): failures are nacked
# without requeue into task_queue_dead through the default exchange.  task_worker.py declares them
# itself with plain pika; tests/test_task_worker.py checks the two declarations agree.
TASK_WORKER = Topology(
    queues=(QueueSpec("task_queue_jobs", dead_letter_exchange="", dead_letter_routing_key="task_queue_dead"),
            QueueSpec("task_queue_dead", role="dead_letter")),
)


def delayed_retry(ttl_ms: int = 5000, stem: str = "retry") -> Topology:
    """A work queue whose rejected messages wait ``ttl_ms`` in a retry queue, then come back to it.

    work --reject--> <stem>_exchange --> <stem>_wait (x-message-ttl) --expire--> default exchange --> work.
    Unlike the lesson's snippet (which declares ``dlx`` but routes to an undeclared ``retry_exchange``),
    everything routed to is declared and bound.
    """
    work, wait, exchange = f"{stem}_tasks", f"{stem}_wait", f"{stem}_exchange"
    return Topology(
        queues=(QueueSpec(work, dead_letter_exchange=exchange, dead_letter_routing_key=wait),
                QueueSpec(wait, role="retry", message_ttl=ttl_ms, dead_letter_exchange="",
                          dead_letter_routing_key=work)),
        exchanges=(ExchangeSpec(exchange),),
        bindings=(Binding(exchange, wait, wait),),
    )


DELAYED_RETRY = delayed_retry()

# A parking lot: the callback publishes a message it gives up on to parking_exchange (key
# "parking_lot"); it waits there for a person, never redelivered to a worker.
PARKING_LOT = Topology(
    queues=(QueueSpec("parking_tasks"), QueueSpec("parking_lot", role="parking")),
    exchanges=(ExchangeSpec("parking_exchange"),),
    bindings=(Binding("parking_exchange", "parking_lot", "parking_lot"),),
)
PARKING_EXCHANGE, PARKING_KEY = "parking_exchange", "parking_lot"

# A quorum work queue: after 3 deliveries a message is dead-lettered instead of redelivered
# (to quorum_dead, so it is not dropped).
QUORUM = Topology(
    queues=(QueueSpec("quorum_tasks", kind="quorum", delivery_limit=3, dead_letter_exchange="quorum_exchange",
                      dead_letter_routing_key="quorum_dead"),
            QueueSpec("quorum_dead", role="dead_letter")),
    exchanges=(ExchangeSpec("quorum_exchange"),),
    bindings=(Binding("quorum_exchange", "quorum_dead", "quorum_dead"),),
)
