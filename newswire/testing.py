"""The test kit: run a consumer over articles with no broker, and see what it did.

    from newswire.testing import run_consumer

    def test_flags_long_reads():
        result = run_consumer(LongReads(), [short_article, long_article])
        assert [e.value.title for e in result.emitted] == [long_article.title]
        assert result.dead_letters == []

The consumer runs in the real :class:`~newswire.runner.Runner` — the same
decoding, batching, retries, DLQ policy and metrics as in production — over
:class:`MemoryBroker`, an in-memory stand-in for the Kafka clients.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from newswire.consumer import Consumer, model_for
from newswire.dlq import DeadLetter
from newswire.errors import SerdeError
from newswire.runner import Runner
from newswire.serde import Serde, schema_for, serde_for
from newswire.settings import Settings
from newswire.topics import DLQ

__all__ = ["Emitted", "MemoryBroker", "TestRun", "run_consumer"]


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp: int


class _Done:
    """A completed send, shaped like kafka-python's FutureRecordMetadata."""

    exception: BaseException | None = None

    def failed(self) -> bool:
        return False

    def add_callback(self, fn: Any, *args: Any) -> _Done:
        fn(*args, None)
        return self

    def add_errback(self, fn: Any, *args: Any) -> _Done:
        return self


class MemoryBroker:
    """Topics as in-memory lists; implements :class:`newswire.kafka.Clients`."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.topics: dict[str, list[list[_Record]]] = {}
        self.committed: dict[str, dict[TopicPartition, int]] = {}
        self._round_robin = itertools.count()

    def append(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> _Record:
        """Write one record and return it."""
        log = self.topics.setdefault(topic, [[] for _ in range(self.partitions)])
        if partition is None:
            partition = (hash(key) if key else next(self._round_robin)) % self.partitions
        record = _Record(
            topic,
            partition,
            len(log[partition]),
            key,
            value,
            list(headers or ()),
            int(time.time() * 1000),
        )
        log[partition].append(record)
        return record

    def records(self, topic: str) -> list[_Record]:
        """Every record of *topic*, partition by partition."""
        return [r for part in self.topics.get(topic, []) for r in part]

    # -- newswire.kafka.Clients ----------------------------------------------------------

    def consumer(self, group: str, role: str) -> _MemoryConsumer:
        """A consumer of this broker in *group*."""
        return _MemoryConsumer(self, group)

    def producer(self, role: str) -> _MemoryProducer:
        """A producer into this broker."""
        return _MemoryProducer(self)


class _MemoryProducer:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Any = None,
    ) -> _Done:
        self.broker.append(topic, value, key=key, partition=partition, headers=headers)
        return _Done()

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.broker.partitions))

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class _MemoryConsumer:
    def __init__(self, broker: MemoryBroker, group: str) -> None:
        self.broker = broker
        self.committed = broker.committed.setdefault(group, {})
        self.positions: dict[TopicPartition, int] = {}
        self.topics: list[str] = []

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.topics = list(topics)
        for topic in topics:
            self.broker.topics.setdefault(topic, [[] for _ in range(self.broker.partitions)])
            for p in range(self.broker.partitions):
                tp = TopicPartition(topic, p)
                self.positions[tp] = self.committed.get(tp, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        budget = max_records or 500
        batch: dict[TopicPartition, list[_Record]] = {}
        for tp, position in sorted(self.positions.items()):
            log = self.broker.topics[tp.topic][tp.partition]
            taken = log[position : position + budget]
            if taken:
                batch[tp] = taken
                self.positions[tp] = position + len(taken)
                budget -= len(taken)
            if budget <= 0:
                break
        return batch

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, meta in offsets.items():
            self.committed[tp] = meta.offset

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.broker.topics[tp.topic][tp.partition])

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.highwater(tp) for tp in partitions}

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def close(self, autocommit: bool = False) -> None:
        pass


@dataclass(frozen=True)
class Emitted:
    """A record the consumer sent on, decoded (``value`` is a model when the schema is known)."""

    topic: str
    key: bytes | None
    value: Any
    headers: list[tuple[str, bytes]]


@dataclass
class TestRun:
    """What a consumer did in :func:`run_consumer`."""

    __test__ = False  # not a pytest test class

    emitted: list[Emitted] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample from the run's metrics registry."""
        return self.registry.get_sample_value(name, labels)

    def to(self, topic: str) -> list[Any]:
        """The values emitted to *topic*."""
        return [e.value for e in self.emitted if e.topic == topic]


def run_consumer(
    consumer: Consumer,
    inputs: Iterable[BaseModel | bytes],
    *,
    topic: str | None = None,
    settings: Settings | None = None,
    batch_size: int = 500,
    serde: Serde | None = None,
) -> TestRun:
    """Run *consumer* over *inputs* (models, encoded with their Avro schema, or raw bytes).

    Inputs go to *topic* (default: the consumer's first topic). Retries back
    off for 1 ms instead of the configured time. Values use *serde* (default:
    the wire format of *settings*).
    """
    settings = settings.model_copy(deep=True) if settings else Settings()
    settings.runner.retry_backoff_ms = 1
    settings.runner.retry_backoff_max_ms = 1
    settings.kafka.max_poll_records = batch_size
    serde = serde or serde_for(settings)
    broker = MemoryBroker()
    source = topic or consumer.topics[0]
    for item in inputs:
        if isinstance(item, bytes):
            broker.append(source, item)
            continue
        schema = schema_for(item)
        if schema is None:
            raise TypeError(f"cannot encode {type(item).__name__}; pass bytes")
        key = getattr(item, "id", None)
        broker.append(
            source,
            serde.encode(schema, item.model_dump(), topic=source),
            key=key.encode() if key else None,
        )
    registry = CollectorRegistry()
    Runner(consumer, settings, registry=registry, serde=serde, clients=broker).run(until_idle=True)

    result = TestRun(registry=registry, committed=dict(broker.committed.get(consumer.group, {})))
    for name, log in broker.topics.items():
        if name == source:
            continue
        for record in (r for part in log for r in part):
            if name == DLQ:
                result.dead_letters.append(
                    DeadLetter.from_record(record.key, record.value, record.headers)
                )
                continue
            try:
                schema_name, data = serde.decode(record.value)
                value: Any = model_for(schema_name).model_validate(data)
            except (SerdeError, KeyError, ValueError):
                value = record.value
            result.emitted.append(Emitted(name, record.key, value, record.headers))
    return result
