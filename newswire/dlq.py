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

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from newswire.errors import BrokerError
from newswire.kafka import Clients, ConsumerClient, Delivery, TopicPartition, open_clients
from newswire.settings import KafkaSettings, ProducerSettings
from newswire.topics import DLQ

__all__ = [
    "REPLAYED_HEADER",
    "DeadLetter",
    "ReplayResult",
    "dlq_headers",
    "read_dead_letters",
    "replay",
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


def read_dead_letters(
    kafka: KafkaSettings, *, timeout_s: float = 10.0, clients: Clients | None = None
) -> list[tuple[int, int, DeadLetter]]:
    """Every record on the DLQ as ``(partition, offset, letter)``, read from the beginning.

    Reads without a consumer group (nothing is committed): listing has no side effect.
    """
    consumer = (clients or open_clients(kafka)).consumer(None, "dlq-reader")
    try:
        assigned = [TopicPartition(DLQ, p) for p in sorted(consumer.partitions_for(DLQ))]
        if not assigned:
            return []
        consumer.assign(assigned)
        letters: list[tuple[int, int, DeadLetter]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(0.2, 10_000).values():
                letters.extend(
                    (
                        r.partition,
                        r.offset,
                        DeadLetter.from_record(r.key, r.value or b"", r.headers),
                    )
                    for r in records
                )
            if all(_at_end(consumer, tp) for tp in assigned):
                break
        return sorted(letters, key=lambda item: (item[0], item[1]))
    finally:
        consumer.close()


def _at_end(consumer: ConsumerClient, tp: TopicPartition) -> bool:
    # The end is the high watermark of a fetch, not ListOffsets: Tansu's is short for
    # batched producers (DESIGN §6).
    high = consumer.high_watermark(tp)
    position = consumer.position(tp)
    return high is not None and position is not None and position >= high


@dataclass
class ReplayResult:
    """What a replay did, letter by letter."""

    acknowledged: list[DeadLetter] = field(default_factory=list)
    #: Letters the broker did not acknowledge, with the reason.
    failed: list[tuple[DeadLetter, BaseException]] = field(default_factory=list)
    #: Letters without a source topic (not written by newswire): left on the DLQ.
    skipped: list[DeadLetter] = field(default_factory=list)


def replay(
    kafka: KafkaSettings,
    producer_settings: ProducerSettings,
    letters: Iterable[DeadLetter],
    *,
    clients: Clients | None = None,
) -> ReplayResult:
    """Send *letters* back to their source topics, original key and bytes.

    Each replayed record carries ``newswire.replayed`` (the stage and attempts it
    failed with). The result says exactly which letters the broker acknowledged.
    """
    producer = (clients or open_clients(kafka, producer_settings)).producer("dlq-replay")
    result = ReplayResult()
    sent: list[tuple[DeadLetter, Delivery]] = []
    try:
        for letter in letters:
            if not letter.source_topic:
                result.skipped.append(letter)
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
                result.failed.append((letter, exc))
                continue
            sent.append((letter, delivery))
        producer.flush()  # every delivery is now acknowledged, refused or timed out
    finally:
        producer.close(timeout_s=10)
    for letter, delivery in sent:
        if delivery.acknowledged():
            result.acknowledged.append(letter)
        else:
            result.failed.append((letter, delivery.error or BrokerError("not acknowledged")))
    return result
