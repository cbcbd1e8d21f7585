"""The pipeline in registry mode stores the same rows as in single-object mode (real broker).

confluent-kafka's ``mock://`` registry lives in its client object, so the
stages run in this process, sharing one serde (as separate processes they
would share an ``http://`` registry through the very same client code).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry

from consumers.dedup import DedupConsumer
from consumers.enrich import EnrichConsumer
from consumers.store import StoreConsumer
from newswire.broker import EmbeddedBroker
from newswire.publisher import Publisher
from newswire.runner import Runner
from newswire.serde import Serde, SingleObjectSerde
from newswire.serde.registry import RegistrySerde
from newswire.settings import Settings
from newswire.topics import DUPLICATES, ENRICHED, RAW, ensure_topics
from producers.documents import DocumentSource
from tests.conftest import ARTICLES
from tests.helpers import read_topic, wait_for

pytestmark = pytest.mark.integration

#: Set when the row is written: differs between any two runs.
_WHEN = {"ingested_at", "enriched_at", "stored_at", "seen_at"}


def table(path: Path, name: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        found = [dict(r) for r in db.execute(f"SELECT * FROM {name}")]
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        db.close()
    return sorted(
        ({k: v for k, v in r.items() if k not in _WHEN} for r in found), key=lambda r: repr(r)
    )


def run_pipeline(settings: Settings, serde: Serde, work: Path) -> dict[str, list[dict[str, Any]]]:
    """Publish the fixture articles, run dedup, enrich and store in threads until stored."""
    work.mkdir()
    settings = settings.model_copy(deep=True)
    settings.store.url = f"sqlite:///{work / 'store.db'}"
    settings.dedup.state_url = f"sqlite:///{work / 'dedup.sqlite'}"
    publisher = Publisher(settings, serde=serde, workers=1)
    try:
        summary = publisher.publish([DocumentSource([ARTICLES])])
    finally:
        publisher.close()
    assert summary.sent > 10

    runners = [
        Runner(stage(), settings, serde=serde, registry=CollectorRegistry())
        for stage in (DedupConsumer, EnrichConsumer, StoreConsumer)
    ]
    errors: list[BaseException] = []

    def run(runner: Runner) -> None:
        try:
            runner.run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    store = work / "store.db"
    try:
        variants = len(list(ARTICLES.glob("*_variant_*.txt")))
        wait_for(
            lambda: (
                errors
                or (
                    len(table(store, "articles")) + len(table(store, "duplicates")) == summary.sent
                    and len(table(store, "duplicates")) == variants
                )
            ),
            timeout=90,
            what="every article or sighting stored",
        )
    finally:
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    return {name: table(store, name) for name in ("articles", "duplicates", "related")}


def test_registry_mode_stores_the_same_rows_as_single_object_mode(
    settings: Settings, tmp_path: Path
) -> None:
    single = run_pipeline(settings, SingleObjectSerde(), tmp_path / "single")

    # A second, fresh broker: the same topics, only registry-framed values on them.
    with EmbeddedBroker(log_path=tmp_path / "broker2.log") as broker:
        other = settings.model_copy(deep=True)
        other.kafka.bootstrap = broker.bootstrap
        ensure_topics(other.kafka)
        serde = RegistrySerde(url=f"mock://{uuid.uuid4().hex}")
        registry = run_pipeline(other, serde, tmp_path / "registry")

        # What is on the topics is the Confluent wire format, readable by its deserializer.
        deserialize = AvroDeserializer(serde.client)
        for topic in (RAW, ENRICHED, DUPLICATES):
            (record, *_) = read_topic(other, topic, expect=1)
            assert record.value[0] == 0, topic
            decoded = deserialize(record.value, SerializationContext(topic, MessageField.VALUE))
            assert decoded == serde.decode(record.value)[1]
        subjects = set(serde.client.get_subjects())
        assert {f"{RAW}-value", f"{ENRICHED}-value", f"{DUPLICATES}-value"} <= subjects

    assert single["articles"], "nothing stored"
    assert single == registry
