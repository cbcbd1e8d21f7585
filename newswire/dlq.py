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
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DeadLetter", "dlq_headers"]

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
