"""DLQ records, retriability, metric conventions (DESIGN §5), the runner without a broker."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import fields as dataclass_fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from consumers.dedup import DedupConsumer
from consumers.store import StoreConsumer
from newswire.consumer import Consumer, Context, Event, Skip
from newswire.dlq import DeadLetter, dlq_headers
from newswire.errors import (
    BrokerError,
    ConfigError,
    HandlerError,
    InvalidURLError,
    RetriableError,
    SerdeError,
    StoreError,
    UnknownSchemaError,
    ValidationError,
)
from newswire.kafka import BrokerUnreachableError, CommitFailedError, RecordTooLargeError
from newswire.metrics import ConsumerMetrics, ProducerMetrics
from newswire.model import Article
from newswire.runner import Runner, is_retriable
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, SingleObjectSerde
from newswire.settings import Settings
from newswire.topics import DLQ, ENRICHED, RAW, UNIQUE
from tests.unit.support import ARTICLES, record

LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
LAPTOP_UTM = ARTICLES / "006_us-secret-service-laptop-stolen_variant_utm.txt"

# -- the DLQ record format ------------------------------------------------------------------------


def headers_for(error: BaseException, **changes: Any) -> list[tuple[str, bytes]]:
    args: dict[str, Any] = {
        "stage": "dedup",
        "error": error,
        "topic": RAW,
        "partition": 2,
        "offset": 1187,
        "attempts": 3,
        "first_failure": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC).timestamp(),
    }
    return dlq_headers(**{**args, **changes})


def test_dlq_headers_round_trip_through_dead_letter() -> None:
    error = SerdeError("not Avro single-object encoded (starts with b'garb', 7 bytes)")
    headers = headers_for(error)
    letter = DeadLetter.from_record(b"key-1", b"garbage", headers)
    assert letter.stage == "dedup"
    assert letter.error_class == "SerdeError"
    assert letter.error_message == str(error)
    assert letter.source_topic == RAW
    assert (letter.source_partition, letter.source_offset) == (2, 1187)
    assert letter.attempts == 3
    assert dt.datetime.fromisoformat(letter.first_failure) == dt.datetime(
        2024, 5, 1, 12, 30, tzinfo=dt.UTC
    )
    assert (letter.key, letter.value) == (b"key-1", b"garbage")


def test_dlq_headers_are_namespaced_utf8_bytes() -> None:
    headers = headers_for(ValueError("x"))
    assert all(name.startswith("newswire.") for name, _ in headers)
    assert all(isinstance(value, bytes) for _, value in headers)
    names = {name for name, _ in headers}
    assert {
        "newswire.stage",
        "newswire.error.class",
        "newswire.error.message",
        "newswire.source.topic",
        "newswire.source.partition",
        "newswire.source.offset",
    } <= names


def test_a_long_error_message_is_truncated() -> None:
    letter = DeadLetter.from_record(None, b"", headers_for(ValueError("x" * 10_000)))
    assert 0 < len(letter.error_message) <= 2000
    assert letter.key is None


def test_a_non_ascii_error_message_survives() -> None:
    message = "titre invalide : « Café » — 東京"
    letter = DeadLetter.from_record(None, b"", headers_for(ValueError(message)))
    assert letter.error_message == message
    assert letter.error_class == "ValueError"


def test_a_truncated_multibyte_message_still_decodes() -> None:
    letter = DeadLetter.from_record(None, b"", headers_for(ValueError("é" * 5000)))
    assert set(letter.error_message) <= {"é", "\ufffd"}


def test_foreign_headers_are_ignored_and_missing_ones_defaulted() -> None:
    headers = [("traceparent", b"00-abc"), ("newswire.stage", b"store")]
    letter = DeadLetter.from_record(b"k", b"v", headers)
    assert letter.stage == "store"
    assert (letter.source_partition, letter.source_offset, letter.attempts) == (-1, -1, 0)
    assert letter.error_class == ""


# -- retriability ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (BrokerError("broker down"), True),
        (RetriableError("try again"), True),
        (StoreError("locked", retriable=True), True),
        (StoreError("constraint failed"), False),
        (HandlerError("bad record"), False),
        (SerdeError("garbage"), False),
        (UnknownSchemaError("who wrote this"), False),
        (ValidationError("bad field"), False),
        (InvalidURLError("relative"), False),
        (ConfigError("bad setting"), False),
        (ValueError("plain"), False),
        (KeyError("plain"), False),
        (BrokerUnreachableError("nobody at 127.0.0.1:1"), True),
        (CommitFailedError("the group rebalanced"), False),
        (RecordTooLargeError("12 MB"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_retriable(error: BaseException, retriable: bool) -> None:
    assert is_retriable(error) is retriable


def test_errors_carry_their_context() -> None:
    error = StoreError("refused", retriable=False, table="articles")
    assert error.table == "articles"
    assert error.context == {"table": "articles"}
    assert InvalidURLError("bad", url="/x").url == "/x"


# -- metric conventions ---------------------------------------------------------------------------


def labelled(metric: MetricWrapperBase) -> tuple[str, ...]:
    return tuple(metric._labelnames)


def touch(metric: MetricWrapperBase) -> None:
    """Create one child so the metric has samples."""
    child = metric.labels(**{name: "x" for name in labelled(metric)})
    if isinstance(metric, Counter):
        child.inc()
    elif isinstance(metric, Gauge):
        child.set(1)
    elif isinstance(metric, Histogram):
        child.observe(0.01)


def check_conventions(registry: CollectorRegistry, role: str) -> list[str]:
    families = list(registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("newswire_"), family.name
        assert family.samples, family.name
        for sample in family.samples:
            assert sample.name.startswith("newswire_")
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
            assert role in sample.labels, sample
            assert "topic" in sample.labels, sample
            assert not {"id", "article_id", "key", "url"} & set(sample.labels)
    return [f.name for f in families]


def test_consumer_metrics_follow_the_conventions() -> None:
    registry = CollectorRegistry()
    bundle = ConsumerMetrics.create(registry)
    metrics = [getattr(bundle, f.name) for f in dataclass_fields(bundle)]
    for metric in metrics:
        assert labelled(metric)[:2] == ("consumer", "topic")
        touch(metric)
    names = check_conventions(registry, "consumer")
    assert len(names) == len(metrics)
    counters = [m for m in metrics if isinstance(m, Counter)]
    assert len(counters) >= 4
    assert {"error"} <= set(labelled(bundle.dlq))
    assert "partition" in labelled(bundle.lag)
    assert isinstance(bundle.processing_seconds, Histogram)
    assert isinstance(bundle.end_to_end_seconds, Histogram)


def test_consumer_counters_are_exposed_with_a_total_suffix() -> None:
    registry = CollectorRegistry()
    bundle = ConsumerMetrics.create(registry)
    bundle.records_in.labels("enrich", "articles.unique").inc(3)
    assert (
        registry.get_sample_value(
            "newswire_consumer_records_in_total",
            {"consumer": "enrich", "topic": "articles.unique"},
        )
        == 3
    )


def test_producer_metrics_follow_the_conventions() -> None:
    registry = CollectorRegistry()
    bundle = ProducerMetrics.create(registry)
    for f in dataclass_fields(bundle):
        metric = getattr(bundle, f.name)
        assert labelled(metric)[:2] == ("producer", "topic")
        touch(metric)
    check_conventions(registry, "producer")


def test_each_fresh_registry_gets_its_own_bundle() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    a = ConsumerMetrics.create(first)
    ConsumerMetrics.create(second)
    a.commits.labels("c", "t").inc()
    assert first.get_sample_value(
        "newswire_consumer_commits_total", {"consumer": "c", "topic": "t"}
    )
    assert (
        second.get_sample_value("newswire_consumer_commits_total", {"consumer": "c", "topic": "t"})
        is None
    )
    with pytest.raises(ValueError, match="Duplicated"):
        ConsumerMetrics.create(first)


def built_in(consumer: Consumer, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    consumer.bind(
        Context(
            settings=settings,
            registry=registry,
            emit=lambda *a, **k: None,
            log=logging.getLogger("t"),
        )
    )
    consumer.setup()
    return registry


def test_built_in_consumer_metrics_follow_the_conventions(tmp_path: Path) -> None:
    settings = Settings()
    settings.dedup.state_url = f"sqlite:///{tmp_path / 'dedup.sqlite'}"
    settings.dedup.max_entries = 1
    settings.store.url = f"sqlite:///{tmp_path / 'store.db'}"

    dedup = DedupConsumer()
    registry = built_in(dedup, settings)
    kept, copy = record(LAPTOP), record(LAPTOP_UTM)
    dedup.handle_batch(
        [Event(RAW, 0, i, r["id"].encode(), b"v", ARTICLE, r) for i, r in enumerate([kept, copy])]
    )
    dedup.close()
    names = check_conventions(registry, "consumer")
    assert {"newswire_dedup_duplicates", "newswire_dedup_evictions"} <= set(names)

    store = StoreConsumer()
    registry = built_in(store, settings)
    enriched = {**record(LAPTOP), "word_count": 1, "language": "en"}
    store.handle_batch([Event(ENRICHED, 0, 0, None, b"v", ENRICHED_ARTICLE, enriched)])
    store.close()
    assert "newswire_store_rows_written" in check_conventions(registry, "consumer")


# -- the runner's error policy, with an in-memory producer ----------------------------------------


class FakeProducer:
    """Just enough of KafkaProducer for the runner's output path."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, value: bytes | None, **kwargs: Any) -> Any:
        self.sent.append({"topic": topic, "value": value, **kwargs})
        return SimpleNamespace(acknowledged=lambda: True, error=None, context=None)

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def flush(self, timeout_s: float | None = None) -> list[Any]:
        return []

    def to(self, topic: str) -> list[dict[str, Any]]:
        return [s for s in self.sent if s["topic"] == topic]


class Forwarder(Consumer):
    """Forwards each article's id; fails on titles it is told to."""

    name = "forwarder"
    topics = (RAW,)

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        super().__init__()
        self.fail = fail or {}
        self.calls = 0

    def handle(self, article: Article) -> None:
        self.calls += 1
        error = self.fail.get(article.title)
        if error is not None:
            raise error
        self.emit(UNIQUE, article.id.encode(), key=article.id)


class BatchForwarder(Forwarder):
    name = "batch-forwarder"

    def handle_batch(self, events: list[Event]) -> None:
        for event in events:  # all-or-nothing: validate first, then emit
            error = self.fail.get(event.article.title)
            if error is not None:
                raise error
        for event in events:
            self.emit(UNIQUE, event.article.id.encode(), key=event.article.id)


@pytest.fixture(scope="module")
def serde() -> SingleObjectSerde:
    return SingleObjectSerde()


def make_runner(consumer: Consumer, serde: SingleObjectSerde) -> tuple[Runner, FakeProducer]:
    settings = Settings()
    settings.runner.max_retries = 2
    settings.runner.retry_backoff_ms = 1
    settings.runner.retry_backoff_max_ms = 2
    runner = Runner(consumer, settings, registry=CollectorRegistry(), serde=serde)
    producer = FakeProducer()
    runner._producer = producer  # type: ignore[assignment]
    consumer.bind(
        Context(
            settings=settings, registry=runner.registry, emit=runner._emit, log=logging.getLogger()
        )
    )
    consumer.setup()
    return runner, producer


def kafka_record(value: bytes | None, offset: int, *, key: bytes | None = b"k") -> Any:
    return SimpleNamespace(
        topic=RAW,
        partition=1,
        offset=offset,
        key=key,
        value=value,
        headers=[],
        timestamp=int(time.time() * 1000),
    )


def events_for(runner: Runner, serde: SingleObjectSerde, titles: list[str]) -> list[Event]:
    events = []
    for offset, title in enumerate(titles):
        value = serde.encode(ARTICLE, record(title=title))
        event = runner._decode(kafka_record(value, offset))
        assert event is not None
        events.append(event)
    return events


def dlq_count(runner: Runner, error: str) -> float | None:
    return runner.registry.get_sample_value(
        "newswire_consumer_dlq_total",
        {"consumer": runner.consumer.name, "topic": RAW, "error": error},
    )


@pytest.mark.parametrize("value", [b"garbage", b"", None], ids=["garbage", "empty", "tombstone"])
def test_an_undecodable_record_goes_to_the_dlq_with_its_bytes(
    serde: SingleObjectSerde, value: bytes | None
) -> None:
    runner, producer = make_runner(Forwarder(), serde)
    assert runner._decode(kafka_record(value, 41, key=b"the-key")) is None
    (sent,) = producer.to(DLQ)
    assert sent["value"] == (value or b"")
    assert sent["key"] == b"the-key"
    letter = DeadLetter.from_record(sent["key"], sent["value"], sent["headers"])
    assert letter.stage == "forwarder"
    assert letter.error_class == "SerdeError"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (RAW, 1, 41)
    assert letter.attempts == 1
    assert dlq_count(runner, "SerdeError") == 1


def test_a_decodable_record_becomes_an_event(serde: SingleObjectSerde) -> None:
    runner, producer = make_runner(Forwarder(), serde)
    (event,) = events_for(runner, serde, ["Fine"])
    assert event.schema == ARTICLE
    assert event.article.title == "Fine"
    assert (event.topic, event.partition, event.offset) == (RAW, 1, 0)
    assert producer.sent == []


def test_a_permanent_failure_dead_letters_only_the_failing_record(
    serde: SingleObjectSerde,
) -> None:
    consumer = BatchForwarder(fail={"Bad": ValueError("cannot handle this one")})
    runner, producer = make_runner(consumer, serde)
    events = events_for(runner, serde, ["Good 1", "Bad", "Good 2"])
    runner._handle(events)
    (dead,) = producer.to(DLQ)
    assert dead["value"] == events[1].value
    letter = DeadLetter.from_record(dead["key"], dead["value"], dead["headers"])
    assert (letter.error_class, letter.source_offset, letter.attempts) == ("ValueError", 1, 1)
    assert "cannot handle this one" in letter.error_message
    assert len(producer.to(UNIQUE)) == 2
    assert dlq_count(runner, "ValueError") == 1


def test_a_retriable_failure_is_retried_then_dead_lettered(serde: SingleObjectSerde) -> None:
    consumer = Forwarder(fail={"Flaky": RetriableError("downstream busy")})
    runner, producer = make_runner(consumer, serde)
    (event,) = events_for(runner, serde, ["Flaky"])
    runner._handle([event])
    assert consumer.calls == 3  # max_retries=2: three attempts in all
    (dead,) = producer.to(DLQ)
    letter = DeadLetter.from_record(dead["key"], dead["value"], dead["headers"])
    assert letter.attempts == 3
    assert letter.error_class == "RetriableError"
    retries = runner.registry.get_sample_value(
        "newswire_consumer_retries_total",
        {"consumer": "forwarder", "topic": RAW, "error": "RetriableError"},
    )
    assert retries == 2


def test_a_transient_failure_that_clears_is_not_dead_lettered(serde: SingleObjectSerde) -> None:
    class Transient(Forwarder):
        def handle(self, article: Article) -> None:
            self.calls += 1
            if self.calls < 3:
                raise RetriableError("not yet")
            self.emit(UNIQUE, article.id.encode(), key=article.id)

    consumer = Transient()
    runner, producer = make_runner(consumer, serde)
    (event,) = events_for(runner, serde, ["Eventually"])
    runner._handle([event])
    assert producer.to(DLQ) == []
    assert len(producer.to(UNIQUE)) == 1


def test_a_skipped_event_is_neither_emitted_nor_dead_lettered_but_counted(
    serde: SingleObjectSerde,
) -> None:
    consumer = Forwarder(fail={"Skip me": Skip()})
    runner, producer = make_runner(consumer, serde)
    events = events_for(runner, serde, ["Skip me", "Keep me"])
    for event in events:
        runner._handle([event])
    assert producer.to(DLQ) == []
    assert len(producer.to(UNIQUE)) == 1
    # consumer.py: Skip drops an event on purpose "(counted, not dead-lettered)".
    skipped = [
        sample
        for family in runner.registry.collect()
        for sample in family.samples
        if "skip" in sample.name and sample.name.endswith("_total")
    ]
    assert [s.value for s in skipped] == [1.0], "a skipped event must be counted"
    assert skipped[0].labels.get("consumer") == "forwarder"
    assert skipped[0].labels.get("topic") == RAW
