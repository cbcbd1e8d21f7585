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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from newswire.consumer import Consumer
from newswire.dlq import DeadLetter
from newswire.errors import SerdeError
from newswire.kafka import Headers, Rebalance, Record, TopicPartition
from newswire.model import model_for, schema_of
from newswire.runner import Runner
from newswire.serde import Serde, serde_for
from newswire.settings import Settings
from newswire.topics import DLQ

__all__ = ["Emitted", "MemoryBroker", "TestRun", "run_consumer"]


class _Delivered:
    """A completed produce: the in-memory broker acknowledges at once."""

    __slots__ = ("context",)
    error = None

    def __init__(self, context: Any) -> None:
        self.context = context

    def acknowledged(self) -> bool:
        return True


class MemoryBroker:
    """Topics as in-memory lists; implements :class:`newswire.kafka.Clients`.

    One member per group: a consumer is assigned every partition of its topics.
    """

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.topics: dict[str, list[list[Record]]] = {}
        self.committed: dict[str, dict[TopicPartition, int]] = {}
        self._round_robin = itertools.count()

    def append(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> Record:
        """Write one record and return it."""
        log = self._log(topic)
        if partition is None:
            partition = (hash(key) if key else next(self._round_robin)) % self.partitions
        record = Record(
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

    def records(self, topic: str) -> list[Record]:
        """Every record of *topic*, partition by partition."""
        return [r for part in self.topics.get(topic, []) for r in part]

    def _log(self, topic: str) -> list[list[Record]]:
        return self.topics.setdefault(topic, [[] for _ in range(self.partitions)])

    # -- newswire.kafka.Clients ----------------------------------------------------------

    def consumer(self, group: str | None, role: str) -> _MemoryConsumer:
        """A consumer of this broker in *group* (``None``: assign only)."""
        return _MemoryConsumer(self, group)

    def producer(self, role: str, *, output: bool = False) -> _MemoryProducer:
        """A producer into this broker."""
        return _MemoryProducer(self)

    def admin(self) -> _MemoryAdmin:
        """Topic and group administration of this broker."""
        return _MemoryAdmin(self)


class _MemoryProducer:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        context: Any = None,
    ) -> _Delivered:
        self.broker.append(topic, value, key=key, partition=partition, headers=headers)
        return _Delivered(context)

    def flush(self, timeout_s: float | None = None) -> list[Any]:
        return []

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.broker.partitions))

    def close(self, timeout_s: float = 10.0) -> list[Any]:
        return []


class _MemoryConsumer:
    def __init__(self, broker: MemoryBroker, group: str | None) -> None:
        self.broker = broker
        self.committed = broker.committed.setdefault(group, {}) if group is not None else {}
        self.positions: dict[TopicPartition, int] = {}

    def subscribe(
        self, topics: Sequence[str], *, on_assign: Rebalance, on_revoke: Rebalance
    ) -> None:
        for topic in topics:
            self.broker._log(topic)
            for p in range(self.broker.partitions):
                tp = TopicPartition(topic, p)
                self.positions[tp] = self.committed.get(tp, 0)
        on_assign(sorted(self.positions))

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.positions = {tp: 0 for tp in partitions}

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(len(self.broker.topics[topic]))) if topic in self.broker.topics else set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def poll(self, timeout_s: float, max_records: int) -> dict[TopicPartition, list[Record]]:
        budget = max_records
        batch: dict[TopicPartition, list[Record]] = {}
        for tp, position in sorted(self.positions.items()):
            log = self.broker._log(tp.topic)[tp.partition]
            taken = log[position : position + budget]
            if taken:
                batch[tp] = taken
                self.positions[tp] = position + len(taken)
                budget -= len(taken)
            if budget <= 0:
                break
        return batch

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def high_watermark(self, tp: TopicPartition) -> int | None:
        return len(self.broker._log(tp.topic)[tp.partition])

    def position(self, tp: TopicPartition) -> int | None:
        return self.positions.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def rebalancing(self) -> bool:
        return False

    def group_rejoins(self) -> int:
        return 0

    def close(self, *, leave: bool = True) -> None:
        pass


class _MemoryAdmin:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def list_topics(self) -> set[str]:
        return set(self.broker.topics)

    def create_topics(self, names: Sequence[str], partitions: int, replication: int) -> list[str]:
        created = [name for name in names if name not in self.broker.topics]
        for name in created:
            self.broker.topics[name] = [[] for _ in range(partitions)]
        return created

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(len(self.broker.topics.get(topic, ()))))

    def committed(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        offsets = self.broker.committed.get(group, {})
        return {tp: offset for tp, offset in offsets.items() if tp.topic in topics}

    def close(self) -> None:
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
        schema = schema_of(type(item))
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
                    DeadLetter.from_record(record.key, record.value or b"", record.headers)
                )
                continue
            try:
                schema_name, data = serde.decode(record.value or b"")
                value: Any = model_for(schema_name).model_validate(data)
            except (SerdeError, KeyError, ValueError):
                value = record.value
            result.emitted.append(Emitted(name, record.key, value, list(record.headers)))
    return result
