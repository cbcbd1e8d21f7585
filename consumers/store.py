"""The ``store`` consumer: enriched articles and duplicate sightings into the database.

One transaction per batch; the runtime commits offsets only after it. Upserts
by article id make a replay harmless.
"""

from __future__ import annotations

from prometheus_client import Counter

from newswire import Consumer, Event
from newswire.serde import ENRICHED_ARTICLE, SIGHTING
from newswire.store import Store, open_store
from newswire.topics import DUPLICATES, ENRICHED

__all__ = ["StoreConsumer"]


class StoreConsumer(Consumer):
    """Writes ``articles.enriched`` and ``articles.duplicates`` to the store."""

    name = "store"
    topics = (ENRICHED, DUPLICATES)

    def setup(self) -> None:
        self.store: Store = open_store(self.context.settings.store.url)
        self._rows = Counter(
            "newswire_store_rows_written_total",
            "Rows upserted into the store, by table.",
            ("consumer", "topic", "table"),
            registry=self.context.registry,
        )

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
        n_articles, n_duplicates = self.store.write(articles, sightings)
        if n_articles:
            self._rows.labels(self.name, ENRICHED, "articles").inc(n_articles)
        if n_duplicates:
            self._rows.labels(self.name, DUPLICATES, "duplicates").inc(n_duplicates)
