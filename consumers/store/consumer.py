"""The ``store`` consumer: enriched articles and duplicate sightings into the database.

One transaction per batch; the runtime commits offsets only after it, and
upserts by article id make a replay harmless.

Failures, and what the runtime does with them:

- the database is unreachable, restarting or otherwise unusable
  (:class:`~newswire.errors.UnavailableError`): the runtime retries the batch
  with capped exponential backoff until it succeeds, commits nothing meanwhile
  and dead-letters nothing; this consumer counts the time spent in the outage;
- the database refuses a value (:class:`~newswire.errors.StoreError`, not
  retriable): the runtime re-runs the batch one record at a time, so only the
  refused record goes to ``articles.dlq`` and its batch-mates are stored.

A database that cannot be reached at start-up is not an error: the first
batch waits for it like any other outage. One that can never work as
configured — no such database, authentication failed, permission denied —
is (:class:`~newswire.errors.ConfigError`): at start-up (``newswire run``
checks it before it starts anything, see :meth:`StoreConsumer.check`) and
when reconnecting later, the stage stops with that message instead of
waiting forever or dead-lettering the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, Field

from newswire import Consumer, Event, Outcome
from newswire.database import redact_url
from newswire.errors import UnavailableError
from newswire.serde import ENRICHED_ARTICLE, SIGHTING
from newswire.settings import Settings
from newswire.store import StoreWriter, open_writer
from newswire.topics import DUPLICATES, ENRICHED

__all__ = ["StoreConsumer", "StoreMetrics", "StoreSettings"]

_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class StoreMetrics:
    """The store consumer's own series (the runtime's ``newswire_consumer_*`` come on top)."""

    rows: Counter
    write_seconds: Histogram
    outage_seconds: Counter
    outages: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StoreMetrics:
        """Register the bundle in *registry*."""
        ct = ("consumer", "topic")
        return cls(
            rows=Counter(
                "newswire_store_rows_written_total",
                "Records upserted into the store, by table.",
                (*ct, "table"),
                registry=registry,
            ),
            write_seconds=Histogram(
                "newswire_store_write_seconds",
                "Time of one batch's database transaction.",
                ct,
                buckets=_WRITE_BUCKETS,
                registry=registry,
            ),
            outage_seconds=Counter(
                "newswire_store_outage_seconds_total",
                "Time spent with the database unavailable (batch retried, nothing committed).",
                ct,
                registry=registry,
            ),
            outages=Counter(
                "newswire_store_outages_total",
                "Times the database became unavailable.",
                ct,
                registry=registry,
            ),
        )


class StoreSettings(BaseModel):
    """Where the ``store`` consumer writes and ``newswire articles`` reads (NEWSWIRE_STORE__*)."""

    url: str = Field(
        "sqlite:///newswire.db",
        description="sqlite:///PATH (sqlite:////abs/path), postgresql://user:pw@host:port/db, "
        "or the URL of any store registered in newswire.stores",
    )


class StoreConsumer(Consumer):
    """Writes ``articles.enriched`` and ``articles.duplicates`` to the store."""

    name = "store"
    topics = (ENRICHED, DUPLICATES)
    settings_model = StoreSettings
    outcomes = (
        Outcome(
            "stored (new or updated)",
            "newswire_store_rows_written_total",
            labels=(("table", "articles"),),
        ),
    )

    @classmethod
    def where(cls, settings: Settings) -> str | None:
        """The store's URL, password redacted."""
        return redact_url(settings.section(cls.name, StoreSettings).url)

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Open the store once: a bad URL, a missing database, refused credentials fail here."""
        url = settings.section(cls.name, StoreSettings).url
        writer = open_writer(url, settings, connect=False)
        try:
            writer.connect()
        finally:
            writer.close()

    def setup(self) -> None:
        settings: StoreSettings = self.context.settings.section(self.name, StoreSettings)
        # A bad URL or a schema newer than this newswire fails here, at start-up.
        self.store: StoreWriter = open_writer(settings.url, self.context.settings, connect=False)
        self.metrics = StoreMetrics.create(self.context.registry)
        # Every series exists from the start, at 0: rate() and alerts need no special case.
        self.metrics.rows.labels(self.name, ENRICHED, "articles")
        self.metrics.rows.labels(self.name, DUPLICATES, "duplicates")
        self.metrics.write_seconds.labels(self.name, self.topics[0])
        self.metrics.outage_seconds.labels(self.name, self.topics[0])
        self.metrics.outages.labels(self.name, self.topics[0])
        self._outage_since: float | None = None
        self._outage_mark = 0.0
        try:
            self.store.connect()
        except UnavailableError as exc:
            self.context.log.warning("%s; the first batch will wait for it", exc)

    def close(self) -> None:
        self.store.close()

    def handle_batch(self, events: list[Event]) -> None:
        articles = [e.record for e in events if e.schema == ENRICHED_ARTICLE]
        sightings = [e.record for e in events if e.schema == SIGHTING]
        unexpected = [e for e in events if e.schema not in (ENRICHED_ARTICLE, SIGHTING)]
        if unexpected:
            raise TypeError(
                f"{unexpected[0].where}: store takes EnrichedArticle or Sighting, "
                f"not {unexpected[0].schema}"
            )
        started = time.perf_counter()
        try:
            n_articles, n_duplicates = self.store.write(articles, sightings)
        except UnavailableError as exc:
            self._unavailable(exc)
            raise
        self._available()
        self.metrics.write_seconds.labels(self.name, self.topics[0]).observe(
            time.perf_counter() - started
        )
        if n_articles:
            self.metrics.rows.labels(self.name, ENRICHED, "articles").inc(n_articles)
        if n_duplicates:
            self.metrics.rows.labels(self.name, DUPLICATES, "duplicates").inc(n_duplicates)

    # -- outage accounting -------------------------------------------------------------------

    def _unavailable(self, exc: UnavailableError) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = self._outage_mark = now
            self.metrics.outages.labels(self.name, self.topics[0]).inc()
            self.context.log.warning("store unavailable, retrying until it is back: %s", exc)
            return
        # Counted as it goes, so a long outage shows while it lasts.
        self.metrics.outage_seconds.labels(self.name, self.topics[0]).inc(now - self._outage_mark)
        self._outage_mark = now

    def _available(self) -> None:
        if self._outage_since is None:
            return
        now = time.monotonic()
        self.metrics.outage_seconds.labels(self.name, self.topics[0]).inc(now - self._outage_mark)
        self.context.log.info(
            "store available again after %.1fs of outage", now - self._outage_since
        )
        self._outage_since = None
