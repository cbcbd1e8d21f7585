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
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from newswire.kafka import client_config, make_producer
from newswire.settings import KafkaSettings, ProducerSettings
from newswire.topics import DLQ

__all__ = ["DeadLetter", "dlq_headers", "read_dead_letters", "replay"]

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
    kafka: KafkaSettings, *, timeout_s: float = 10.0
) -> list[tuple[int, int, DeadLetter]]:
    """Every record on the DLQ as ``(partition, offset, letter)``, read from the beginning.

    Reads without a consumer group (nothing is committed): listing has no side effect.
    """
    consumer = KafkaConsumer(
        **client_config(kafka, "dlq-reader"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = consumer.partitions_for_topic(DLQ) or set()
        assigned = [TopicPartition(DLQ, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning()
        letters: list[tuple[int, int, DeadLetter]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                letters.extend(
                    (r.partition, r.offset, DeadLetter.from_record(r.key, r.value, r.headers or ()))
                    for r in records
                )
            # The end is the high watermark of a fetch, not end_offsets(): Tansu's
            # ListOffsets is short for batched producers (DESIGN §6).
            highs = [(tp, consumer.highwater(tp)) for tp in assigned]
            if all(h is not None and consumer.position(tp) >= h for tp, h in highs):
                break
        return sorted(letters, key=lambda item: (item[0], item[1]))
    finally:
        consumer.close()


def replay(
    kafka: KafkaSettings, producer_settings: ProducerSettings, letters: Iterable[DeadLetter]
) -> int:
    """Send *letters* back to their source topics, original key and bytes; returns how many.

    Each replayed record carries ``newswire.replayed`` (the stage and attempts it
    failed with). Replaying twice is harmless: dedup and the store are idempotent.
    """
    producer = make_producer(kafka, producer_settings, role="dlq-replay")
    sent = 0
    try:
        for letter in letters:
            if not letter.source_topic:
                continue
            note = f"{letter.stage}:{letter.error_class}:{letter.attempts}".encode()
            producer.send(
                letter.source_topic,
                key=letter.key,
                value=letter.value,
                headers=[("newswire.replayed", note)],
            )
            sent += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    return sent
