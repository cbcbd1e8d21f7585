"""The dead-letter topic's record format.

A DLQ record keeps the failing record's original key and bytes; its headers say
where it came from and why it failed (all values UTF-8 text)::

    newswire.stage           the consumer that gave up            dedup
    newswire.error.class     the exception's class                SerdeError
    newswire.error.message   the exception's message (truncated)  not Avro single-object encoded …
    newswire.source.topic    where the record was read            articles.raw
    newswire.source.partition
    newswire.source.offset
    newswire.attempts        how many times it was tried          1
    newswire.first_failure   ISO-8601 UTC time of the first failure
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from newswire.errors import BrokerError
from newswire.kafka import Clients, ConsumerClient, Delivery, Record, TopicPartition, open_clients
from newswire.settings import KafkaSettings, ProducerSettings
from newswire.topics import DLQ, DLQ_REPLAYED

__all__ = [
    "REPLAYED_HEADER",
    "DeadLetter",
    "Positioned",
    "ReplayResult",
    "dlq_headers",
    "read_dead_letters",
    "replay",
    "replayed_letters",
]

#: Header of a replayed record: ``stage:error class:attempts`` of the letter.
REPLAYED_HEADER = "newswire.replayed"

_MAX_MESSAGE = 2000
_PREFIX = "newswire."


def dlq_headers(
    *,
    stage: str,
    error: BaseException,
    topic: str,
    partition: int,
    offset: int,
    attempts: int,
    first_failure: float,
) -> list[tuple[str, bytes]]:
    """The headers of a DLQ record."""
    fields = {
        "stage": stage,
        "error.class": type(error).__name__,
        "error.message": str(error)[:_MAX_MESSAGE],
        "source.topic": topic,
        "source.partition": str(partition),
        "source.offset": str(offset),
        "attempts": str(attempts),
        "first_failure": dt.datetime.fromtimestamp(first_failure, dt.UTC).isoformat(),
    }
    return [(_PREFIX + k, v.encode("utf-8")) for k, v in fields.items()]


@dataclass(frozen=True)
class DeadLetter:
    """A DLQ record read back: its headers parsed."""

    stage: str
    error_class: str
    error_message: str
    source_topic: str
    source_partition: int
    source_offset: int
    attempts: int
    first_failure: str
    key: bytes | None
    value: bytes

    @classmethod
    def from_record(
        cls, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> DeadLetter:
        """Parse a DLQ record's headers."""
        h = {k.removeprefix(_PREFIX): v.decode("utf-8", "replace") for k, v in headers}
        return cls(
            stage=h.get("stage", ""),
            error_class=h.get("error.class", ""),
            error_message=h.get("error.message", ""),
            source_topic=h.get("source.topic", ""),
            source_partition=int(h.get("source.partition", "-1")),
            source_offset=int(h.get("source.offset", "-1")),
            attempts=int(h.get("attempts", "0")),
            first_failure=h.get("first_failure", ""),
            key=key,
            value=value,
        )


#: A letter with its place on the DLQ: ``(partition, offset, letter)``.
Positioned = tuple[int, int, DeadLetter]


def _read_topic(
    topic: str, clients: Clients, role: str, timeout_s: float
) -> list[tuple[int, int, Record]]:
    """Every record of *topic* as ``(partition, offset, record)``, from the beginning, read
    without a consumer group (nothing is committed)."""
    consumer = clients.consumer(None, role)
    try:
        assigned = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for(topic))]
        if not assigned:
            return []
        consumer.assign(assigned)
        found: list[tuple[int, int, Record]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(0.2, 10_000).values():
                found.extend((r.partition, r.offset, r) for r in records)
            if all(_at_end(consumer, tp) for tp in assigned):
                break
        else:
            raise BrokerError(
                f"could not read topic={topic!r} to its end within {timeout_s}s", topic=topic
            )
        return sorted(found, key=lambda item: (item[0], item[1]))
    finally:
        consumer.close()


def read_dead_letters(
    kafka: KafkaSettings, *, timeout_s: float = 10.0, clients: Clients | None = None
) -> list[tuple[int, int, DeadLetter]]:
    """Every record on the DLQ as ``(partition, offset, letter)``, read from the beginning.

    Reads without a consumer group (nothing is committed): listing has no side effect.
    """
    records = _read_topic(DLQ, clients or open_clients(kafka), "dlq-reader", timeout_s)
    return [(p, o, DeadLetter.from_record(r.key, r.value or b"", r.headers)) for p, o, r in records]


def replayed_letters(
    kafka: KafkaSettings, *, timeout_s: float = 10.0, clients: Clients | None = None
) -> set[tuple[int, int]]:
    """The DLQ positions ``(partition, offset)`` already replayed (read from
    :data:`~newswire.topics.DLQ_REPLAYED`)."""
    records = _read_topic(
        DLQ_REPLAYED, clients or open_clients(kafka), "dlq-replayed-reader", timeout_s
    )
    done = set()
    for _, _, record in records:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            mark = json.loads(record.value or b"")
            done.add((int(mark["partition"]), int(mark["offset"])))
    return done


def _at_end(consumer: ConsumerClient, tp: TopicPartition) -> bool:
    # The end is the high watermark of a fetch, not ListOffsets: Tansu's is short for
    # batched producers (DESIGN §6).
    high = consumer.high_watermark(tp)
    position = consumer.position(tp)
    return high is not None and position is not None and position >= high


@dataclass
class ReplayResult:
    """What a replay did, letter by letter (each ``(dlq partition, dlq offset, letter)``)."""

    acknowledged: list[Positioned] = field(default_factory=list)
    #: Letters the broker did not acknowledge, with the reason (not marked: a later
    #: replay sends them).
    failed: list[tuple[Positioned, BaseException]] = field(default_factory=list)
    #: Letters replayed by an earlier replay (not sent again unless ``again``).
    already: list[Positioned] = field(default_factory=list)
    #: Letters without a source topic (not written by newswire): left on the DLQ.
    skipped: list[Positioned] = field(default_factory=list)
    #: Acknowledged letters whose replayed-mark was not acknowledged (a later replay
    #: would send them again: harmless, dedup and the store are idempotent).
    unmarked: list[Positioned] = field(default_factory=list)


def replay(
    kafka: KafkaSettings,
    producer_settings: ProducerSettings,
    letters: Iterable[Positioned],
    *,
    again: bool = False,
    clients: Clients | None = None,
) -> ReplayResult:
    """Send *letters* back to their source topics (original key and bytes), once.

    Each replayed record carries ``newswire.replayed`` (the stage, error class and
    attempts it failed with). A letter the broker acknowledged is then marked on
    ``articles.dlq.replayed`` (its DLQ partition and offset), and later replays skip
    it unless *again*. The result says exactly which letters were acknowledged.
    """
    clients = clients or open_clients(kafka, producer_settings)
    admin = clients.admin()
    try:
        admin.create_topics([DLQ_REPLAYED], kafka.partitions, kafka.replication_factor)
    finally:
        admin.close()
    done = set() if again else replayed_letters(kafka, clients=clients)
    producer = clients.producer("dlq-replay")
    result = ReplayResult()
    sent: list[tuple[Positioned, Delivery]] = []
    marks: list[tuple[Positioned, Delivery]] = []
    try:
        for item in letters:
            partition, offset, letter = item
            if not letter.source_topic:
                result.skipped.append(item)
                continue
            if (partition, offset) in done:
                result.already.append(item)
                continue
            note = f"{letter.stage}:{letter.error_class}:{letter.attempts}".encode()
            try:
                delivery = producer.produce(
                    letter.source_topic,
                    letter.value,
                    key=letter.key,
                    headers=[(REPLAYED_HEADER, note)],
                )
            except BrokerError as exc:
                result.failed.append((item, exc))
                continue
            sent.append((item, delivery))
        producer.flush()  # every delivery is now acknowledged, refused or timed out
        for item, delivery in sent:
            if delivery.acknowledged():
                result.acknowledged.append(item)
                mark = {
                    "partition": item[0],
                    "offset": item[1],
                    "topic": item[2].source_topic,
                    "replayed_at": dt.datetime.now(dt.UTC).isoformat(),
                }
                key = f"{item[0]}:{item[1]}".encode()
                marks.append(
                    (item, producer.produce(DLQ_REPLAYED, json.dumps(mark).encode(), key=key))
                )
            else:
                result.failed.append((item, delivery.error or BrokerError("not acknowledged")))
        producer.flush()
        result.unmarked = [item for item, delivery in marks if not delivery.acknowledged()]
    finally:
        producer.close(timeout_s=10)
    return result
