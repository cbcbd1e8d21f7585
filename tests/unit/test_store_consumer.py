"""StoreConsumer without a broker: rows, metrics, and outage accounting."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumers.enrich import Enricher
from consumers.store import StoreConsumer
from newswire import Context, Event
from newswire.errors import StoreError, UnavailableError
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, SIGHTING
from newswire.settings import Settings
from newswire.topics import DUPLICATES, ENRICHED
from tests.unit.support import SEED, record


def make_consumer(tmp_path: Path, **sqlite: Any) -> tuple[StoreConsumer, CollectorRegistry]:
    settings = Settings()
    settings.store.url = f"sqlite:///{tmp_path / 'store.db'}"
    for key, value in sqlite.items():
        setattr(settings.sqlite, key, value)
    registry = CollectorRegistry()
    consumer = StoreConsumer()
    consumer.bind(
        Context(
            settings=settings,
            registry=registry,
            emit=lambda *a, **k: None,
            log=logging.getLogger("test.store"),
        )
    )
    consumer.setup()
    return consumer, registry


def event(schema: str, data: dict[str, Any], offset: int = 0) -> Event:
    topic = DUPLICATES if schema == SIGHTING else ENRICHED
    return Event(
        topic=topic, partition=0, offset=offset, key=None, value=b"", schema=schema, record=data
    )


_enricher = Enricher()


def article_event() -> Event:
    data = _enricher.enrich(record(SEED))
    data["ingested_at"] = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    return event(ENRICHED_ARTICLE, data)


def sighting_event(reason: str = "url") -> Event:
    return event(
        SIGHTING,
        {
            "id": "1" * 16,
            "url": "https://e.com/x?utm_source=a",
            "canonical_url": "https://e.com/x",
            "duplicate_of": "2" * 16,
            "reason": reason,
            "similarity": 1.0,
        },
        offset=1,
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"consumer": "store", **labels}) or 0.0


def test_a_batch_is_written_and_counted(tmp_path: Path) -> None:
    consumer, registry = make_consumer(tmp_path)
    try:
        consumer.handle_batch([article_event(), sighting_event()])
        consumer.handle_batch([article_event()])  # a replay
        assert consumer.store.count("articles") == 1
        assert consumer.store.count("duplicates") == 1
        assert (
            sample(registry, "newswire_store_rows_written_total", topic=ENRICHED, table="articles")
            == 2
        )
        assert (
            sample(
                registry, "newswire_store_rows_written_total", topic=DUPLICATES, table="duplicates"
            )
            == 1
        )
        assert sample(registry, "newswire_store_write_seconds_count", topic=ENRICHED) == 2
        assert sample(registry, "newswire_store_outages_total", topic=ENRICHED) == 0
    finally:
        consumer.close()


def test_a_refused_record_raises_a_permanent_store_error(tmp_path: Path) -> None:
    consumer, _ = make_consumer(tmp_path)
    try:
        with pytest.raises(StoreError) as caught:
            consumer.handle_batch([sighting_event(reason="bogus")])
        assert caught.value.retriable is False
        assert "sighting url='https://e.com/x?utm_source=a'" in str(caught.value)
    finally:
        consumer.close()


def test_an_event_of_another_schema_is_refused(tmp_path: Path) -> None:
    consumer, _ = make_consumer(tmp_path)
    try:
        with pytest.raises(TypeError, match="store takes EnrichedArticle or Sighting"):
            consumer.handle_batch([event(ARTICLE, record(SEED))])
    finally:
        consumer.close()


def test_time_in_an_outage_is_counted_until_the_store_is_back(tmp_path: Path) -> None:
    consumer, registry = make_consumer(tmp_path, busy_timeout_s=0.05)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        for _ in range(3):
            with pytest.raises(UnavailableError):
                consumer.handle_batch([article_event()])
        assert sample(registry, "newswire_store_outages_total", topic=ENRICHED) == 1
        during = sample(registry, "newswire_store_outage_seconds_total", topic=ENRICHED)
        assert during > 0
        other.execute("ROLLBACK")
        consumer.handle_batch([article_event()])
        after = sample(registry, "newswire_store_outage_seconds_total", topic=ENRICHED)
        assert after > during
        assert consumer.store.count("articles") == 1
        # Back to normal: a later failure is a new outage.
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(UnavailableError):
            consumer.handle_batch([article_event()])
        assert sample(registry, "newswire_store_outages_total", topic=ENRICHED) == 2
        other.execute("ROLLBACK")
    finally:
        other.close()
        consumer.close()


def test_an_unreachable_database_at_setup_is_not_an_error(tmp_path: Path) -> None:
    # PostgreSQL on a port where nothing listens: setup logs and the first batch waits.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings()
    settings.store.url = f"postgresql://postgres@127.0.0.1:{port}/test"
    registry = CollectorRegistry()
    consumer = StoreConsumer()
    consumer.bind(
        Context(settings, registry, lambda *a, **k: None, logging.getLogger("test.store"))
    )
    consumer.setup()
    try:
        with pytest.raises(UnavailableError, match="is unavailable"):
            consumer.handle_batch([article_event()])
        assert sample(registry, "newswire_store_outages_total", topic=ENRICHED) == 1
    finally:
        consumer.close()
