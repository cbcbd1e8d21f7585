"""The plug-in API: subclass :class:`Consumer`, write the business logic, let the runtime own Kafka.

A consumer declares a ``name`` (its group is ``newswire.<name>``) and the
``topics`` it reads, and implements ``handle(article)`` — or ``handle_batch``
when it gains from seeing a whole batch (one database transaction, say). It
sends records on with :meth:`Consumer.emit`. Raising :class:`Skip` drops an
event on purpose; raising :class:`~newswire.errors.RetriableError` asks for a
retry with backoff; any other exception sends the record to the DLQ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from newswire.model import Article, model_for
from newswire.serde import Serde, SingleObjectSerde
from newswire.settings import Settings

__all__ = ["Consumer", "Context", "Emit", "Event", "Outcome", "Skip", "model_for"]


@dataclass(frozen=True)
class Outcome:
    """What became of a stage's records, as `newswire run` reports it: one of its counters.

    The counter ``metric`` is summed over the samples whose labels include
    ``labels``; with ``split``, one line per value of that label (e.g. one per
    ``reason``), leaving out the values in ``exclude``. A ``terminal`` outcome
    is where a document's journey ends (stored, seen as a duplicate): the run
    summary checks that documents read = rejected + failed to send + every
    terminal outcome + dead-lettered. A non-terminal one is shown for
    information (e.g. "of which updates").
    """

    title: str
    metric: str
    labels: tuple[tuple[str, str], ...] = ()
    split: str | None = None
    exclude: tuple[str, ...] = ()
    terminal: bool = True


class Skip(Exception):
    """Raise from a handler to drop an event on purpose (counted, not dead-lettered)."""


@dataclass(slots=True)
class Event:
    """One decoded Kafka record as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    schema: str
    record: dict[str, Any]
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp_ms: int = -1
    _model: BaseModel | None = field(default=None, repr=False)

    @property
    def model(self) -> BaseModel:
        """The record as its pydantic model (validated once, then cached)."""
        if self._model is None:
            self._model = model_for(self.schema).model_validate(self.record)
        return self._model

    @property
    def article(self) -> Article:
        """The record as an :class:`Article` (an :class:`EnrichedArticle` on articles.enriched)."""
        model = self.model
        if not isinstance(model, Article):
            raise TypeError(f"{self.where} carries a {self.schema}, not an article")
        return model

    @property
    def where(self) -> str:
        """``topic=… partition=… offset=…`` for messages."""
        return f"topic={self.topic!r} partition={self.partition} offset={self.offset}"


Emit = Callable[..., None]


@dataclass
class Context:
    """What the runtime gives a consumer in :meth:`Consumer.setup`."""

    settings: Settings
    registry: CollectorRegistry
    emit: Emit
    log: logging.Logger
    #: The wire format the runtime decodes with: for :meth:`~newswire.serde.Serde.extend`
    #: and for encoding outside :meth:`Consumer.emit`.
    serde: Serde = field(default_factory=SingleObjectSerde)


class Consumer:
    """Base class of every consumer, built-in or plug-in."""

    #: Unique name; the consumer group is ``newswire.<name>``.
    name: ClassVar[str] = ""
    #: Topics to read (``newswire run`` builds its topology from them).
    topics: ClassVar[tuple[str, ...]] = ()
    #: The record fields the consumer reads, if only a few: the runtime then decodes
    #: just those (a projected decode, 2.5-3x cheaper for an article) and ``event.record``
    #: holds only them (``event.model`` needs them all). None: the whole record.
    fields: ClassVar[tuple[str, ...] | None] = None
    #: This consumer's own settings, loaded from ``NEWSWIRE_<NAME>__<FIELD>`` (None: none).
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: What ``newswire run`` reports of this stage (its counters; see :class:`Outcome`).
    outcomes: ClassVar[tuple[Outcome, ...]] = ()

    def __init__(self) -> None:
        self._context: Context | None = None

    @property
    def group(self) -> str:
        """The Kafka consumer group."""
        return f"newswire.{self.name}"

    @property
    def context(self) -> Context:
        """The runtime context (available from :meth:`setup` on)."""
        if self._context is None:
            raise RuntimeError(f"consumer {self.name!r} is not set up")
        return self._context

    @property
    def config(self) -> Any:
        """This consumer's :attr:`settings_model`, loaded from ``NEWSWIRE_<NAME>__<FIELD>``.

        ``None`` when it declares none. For a typed value in a subclass use
        ``self.context.settings.section(self.name, MySettings)``.
        """
        if self.settings_model is None:
            return None
        return self.context.settings.section(self.name, self.settings_model)

    @classmethod
    def where(cls, settings: Settings) -> str | None:
        """Where this stage's output lives, for the ``run`` summary (e.g. a redacted URL)."""
        return None

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Check what this consumer needs (databases, files) before anything starts.

        ``newswire run`` calls it for every stage before it starts the broker.
        Raise :class:`~newswire.errors.ConfigError` for what can never work as
        configured (a bad URL, no such database, authentication failed,
        permission denied): the run stops at once with that message. Raise
        :class:`~newswire.errors.UnavailableError` for an outage (unreachable,
        restarting): the run warns and the stage waits it out. The default
        checks nothing.
        """

    def bind(self, context: Context) -> None:
        """Called by the runtime before :meth:`setup`."""
        self._context = context

    def setup(self) -> None:
        """Open resources (databases, clients). Called once before the first batch."""

    def close(self) -> None:
        """Release resources. Called once on shutdown."""

    def handle(self, article: Article) -> None:
        """Process one article. Override this, or :meth:`handle_event` / :meth:`handle_batch`."""
        raise NotImplementedError(f"consumer {self.name!r} implements no handler")

    def handle_event(self, event: Event) -> None:
        """Process one event; the default validates it into its model and calls :meth:`handle`."""
        self.handle(event.article)

    def handle_batch(self, events: list[Event]) -> None:
        """Process a batch; the default calls :meth:`handle_event` for each.

        If this raises, the runtime retries (retriable errors) and then
        re-runs the events one by one to send only the failing ones to the DLQ,
        so an implementation must be safe to call again on the same events.
        """
        for event in events:
            self.handle_event(event)

    def emit(
        self,
        topic: str,
        value: BaseModel | dict[str, Any] | bytes,
        *,
        key: bytes | str | None = None,
        schema: str | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Send a record on; it is flushed before the input batch is committed.

        *value* is a model (encoded with its Avro schema), a dict (with
        *schema*), or bytes already encoded.
        """
        self.context.emit(
            topic, value, key=key, schema=schema, partition=partition, headers=headers
        )
