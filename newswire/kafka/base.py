"""The Kafka-client contract of the runtime: what newswire needs of a consumer, a
producer and an admin client, and nothing more.

The runner, the publisher, the DLQ tools, topic admin, status and the test kit
use only these protocols; one adapter module per client library implements
them (:mod:`newswire.kafka.kafka_python`, :mod:`newswire.kafka.confluent`), and
:class:`newswire.testing.MemoryBroker` is the in-memory one. No client
library's types cross this boundary: records, partitions and errors are
newswire's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "AdminClient",
    "Clients",
    "ConsumerClient",
    "Delivery",
    "Headers",
    "ProducerClient",
    "Rebalance",
    "Record",
    "TopicPartition",
]

#: Record headers as Kafka carries them: (key, value) pairs, keys may repeat.
Headers = Sequence[tuple[str, bytes]]

#: Called with the partitions assigned to / revoked from this member.
Rebalance = Callable[[list["TopicPartition"]], None]


class TopicPartition(NamedTuple):
    """One partition of a topic."""

    topic: str
    partition: int


class Record(NamedTuple):
    """One consumed record: the value is raw bytes (decoding is the runner's job, so a bad
    record reaches the error policy instead of breaking ``poll``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    #: Milliseconds since the epoch (create or log-append time, as the topic says).
    timestamp: int


class Delivery(Protocol):
    """The outcome of one produced record, known once the producer has been flushed."""

    @property
    def error(self) -> BaseException | None:
        """Why the record was not acknowledged (refused, or still unacknowledged at the
        flush deadline); ``None`` once it was."""
        ...

    @property
    def context(self) -> Any:
        """What the caller passed to :meth:`ProducerClient.produce` as ``context``."""
        ...

    def acknowledged(self) -> bool:
        """The broker acknowledged the record (acks=all)."""
        ...


@runtime_checkable
class ProducerClient(Protocol):
    """An idempotent, ``acks=all`` producer whose partitioner is the Java client's
    (murmur2 of the key), so a key lands on the same partition whatever the client."""

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        context: Any = None,
    ) -> Delivery:
        """Queue one record. Raises :class:`~newswire.kafka.errors.RecordTooLargeError` when
        the record can never be sent, :class:`~newswire.errors.BrokerError` when the
        client is broken; a refusal by the broker shows in the :class:`Delivery`."""
        ...

    def flush(self, timeout_s: float | None = None) -> list[Delivery]:
        """Wait until every queued record is acknowledged or failed (at most *timeout_s*,
        default: the producer's flush timeout) and return the records that failed since
        the previous flush — those still unacknowledged at the deadline included. This is
        the one acknowledgement check of newswire."""
        ...

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of *topic* (empty when it does not exist)."""
        ...

    def close(self, timeout_s: float = 10.0) -> list[Delivery]:
        """Flush (at most *timeout_s*) and release the client; returns the failures."""
        ...


@runtime_checkable
class ConsumerClient(Protocol):
    """A consumer that reads raw bytes and never commits by itself."""

    def subscribe(
        self, topics: Sequence[str], *, on_assign: Rebalance, on_revoke: Rebalance
    ) -> None:
        """Join the group on *topics*. The callbacks run inside :meth:`poll`: ``on_revoke``
        before partitions go (commit there), ``on_assign`` after new ones arrive."""
        ...

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read *partitions* from their beginning without a group (nothing is committed)."""
        ...

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of *topic* (empty when it does not exist)."""
        ...

    def poll(self, timeout_s: float, max_records: int) -> Mapping[TopicPartition, Sequence[Record]]:
        """Up to *max_records* records, grouped by partition, each list in offset order."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offsets to read, synchronously. Raises
        :class:`~newswire.kafka.errors.CommitFailedError` when the group rebalanced."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read *tp* from *offset* at the next poll."""
        ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now."""
        ...

    def position(self, tp: TopicPartition) -> int | None:
        """The offset of the next record :meth:`poll` returns for *tp* (``None``: unknown)."""
        ...

    def high_watermark(self, tp: TopicPartition) -> int | None:
        """The partition's high watermark as of the last fetch (``None`` before one).

        From fetch responses, not ListOffsets: right on Apache Kafka and on Tansu,
        whose ListOffsets is short for batched producers (DESIGN §6)."""
        ...

    def rebalancing(self) -> bool:
        """A join of the group is in flight for this member."""
        ...

    def group_rejoins(self) -> int:
        """How often this member found its group wedged (a join that can never complete:
        Tansu 0.6, DESIGN §6) and completed it by rejoining; 0 on a sound broker."""
        ...

    def close(self, *, leave: bool = True) -> None:
        """Close; with *leave*, leave the group (its partitions move at once), without,
        let the session time out (static members, or a pending join: see
        :mod:`newswire.runner`)."""
        ...


@runtime_checkable
class AdminClient(Protocol):
    """Topic and group administration."""

    def list_topics(self) -> set[str]:
        """The names of the topics."""
        ...

    def create_topics(self, names: Sequence[str], partitions: int, replication: int) -> list[str]:
        """Create those of *names* that do not exist; return the names created."""
        ...

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of *topic* (empty when it does not exist)."""
        ...

    def committed(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """The committed offsets of *group* on *topics* (partitions without one omitted)."""
        ...

    def close(self) -> None:
        """Release the client."""
        ...


class Clients(Protocol):
    """Makes the clients of one process; one implementation per client library
    (registered in :mod:`newswire.kafka`), plus the test kit's in-memory one."""

    def consumer(self, group: str | None, role: str) -> ConsumerClient:
        """A consumer in *group* (``None``: no group, :meth:`ConsumerClient.assign` only)."""
        ...

    def producer(self, role: str, *, output: bool = False) -> ProducerClient:
        """A producer; *output*: the stages' output producer (which may use another client)."""
        ...

    def admin(self) -> AdminClient:
        """An admin client."""
        ...
