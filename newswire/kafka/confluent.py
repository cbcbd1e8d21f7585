"""The confluent-kafka adapter: :mod:`newswire.kafka.base`'s protocols on librdkafka.

librdkafka fetches and decompresses in its own threads: a consumed record costs
~1.4 µs of this process's CPU against kafka-python's ~9 µs, and ``produce()``
~5 µs against ``send()``'s 25-65 µs (DESIGN §7). The producer is idempotent
with ``acks=all`` and the Java client's murmur2 partitioner, so a key lands on
the partition kafka-python (and every Java client) would choose.

On Tansu (DESIGN §6): consumer groups work with the classic protocol (range,
cooperative-sticky, static membership; offsets interoperable with
kafka-python); ``group.protocol=consumer`` gets no assignment, so it is never
set. An ``AdminClient`` is kept referenced until its futures resolve.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as RdTopicPartition
from confluent_kafka.admin import AdminClient as RdAdminClient
from confluent_kafka.admin import NewTopic

from newswire.errors import BrokerError
from newswire.kafka.base import Headers, Rebalance, Record, TopicPartition
from newswire.kafka.errors import CommitFailedError, RecordTooLargeError
from newswire.kafka.kafka_python import complete_wedged_join
from newswire.settings import KafkaSettings, ProducerSettings

__all__ = ["ConfluentClients", "connection_config"]

log = logging.getLogger(__name__)

# Commit refusals that mean "the group moved on": the new owner reads the records again.
_REBALANCED = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
    KafkaError._STATE,
}
_EXISTS = KafkaError.TOPIC_ALREADY_EXISTS
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE}
# KafkaSettings' TLS files → librdkafka's options.
_SSL_FILES = {
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
}


def connection_config(kafka: KafkaSettings, role: str) -> dict[str, Any]:
    """librdkafka's connection options, equivalent to the kafka-python adapter's (TLS and
    SASL included; :meth:`KafkaSettings.check_security` first)."""
    kafka.check_security()
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": f"{kafka.client_id}-{role}",
        "security.protocol": kafka.security_protocol.lower(),
    }
    if kafka.tls:
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if kafka.ssl_check_hostname else "none"
        )
        for name, option in _SSL_FILES.items():
            path = getattr(kafka, name)
            if path is not None:
                config[option] = str(path)
        if kafka.ssl_key_password is not None:
            config["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
    if kafka.sasl_mechanism:
        config["sasl.mechanisms"] = kafka.sasl_mechanism.upper()
        config["sasl.username"] = kafka.sasl_username or ""
        if kafka.sasl_password is not None:
            config["sasl.password"] = kafka.sasl_password.get_secret_value()
    return config


def _broker_error(exc: BaseException, what: str) -> BrokerError:
    error = BrokerError(f"{what}: {exc}")
    kafka_error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    error.retriable = bool(
        kafka_error is None or kafka_error.retriable() or not kafka_error.fatal()
    )
    return error


def _rd(tp: TopicPartition, offset: int | None = None) -> RdTopicPartition:
    if offset is None:
        return RdTopicPartition(tp.topic, tp.partition)
    return RdTopicPartition(tp.topic, tp.partition, offset)


def _tp(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _code(error: BaseException | None) -> int | None:
    """The librdkafka error code of a :class:`KafkaException` (None for anything else)."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return int(error.args[0].code())
    return None


# -- producer ------------------------------------------------------------------------------------


class _Delivery:
    """One record's outcome, set by librdkafka's delivery report (in flush/poll)."""

    __slots__ = ("_acked", "_owner", "context", "error")

    def __init__(self, owner: ConfluentProducer, context: Any) -> None:
        self._owner = owner
        self.context = context
        self.error: BaseException | None = None
        self._acked = False

    def acknowledged(self) -> bool:
        return self._acked

    def __call__(self, error: KafkaError | None, _message: Any) -> None:
        owner = self._owner
        owner._pending.discard(self)
        if error is None:
            self._acked = True
        else:
            self.error = KafkaException(error)
            owner._failed.append(self)


class ConfluentProducer:
    """:class:`~newswire.kafka.base.ProducerClient` on librdkafka's ``Producer``."""

    def __init__(
        self, kafka: KafkaSettings, producer: ProducerSettings, role: str, *, flush_timeout_s: float
    ) -> None:
        config = {
            **connection_config(kafka, role),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": producer.compression,
            "linger.ms": producer.linger_ms,
            "batch.size": min(producer.batch_size, 2_147_483_647),
            "message.max.bytes": producer.max_request_size,
            # The Java client's partitioner: the same key → the same partition as kafka-python.
            "partitioner": "murmur2_random",
        }
        try:
            self._producer = Producer(config, logger=log)
        except KafkaException as exc:
            raise _broker_error(exc, "cannot configure a producer") from exc
        self._flush_timeout_s = flush_timeout_s
        self._timeout_s = kafka.timeout_s
        # Delivery reports run in this thread (inside produce/flush): no lock needed.
        self._pending: set[_Delivery] = set()
        self._failed: list[_Delivery] = []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        context: Any = None,
    ) -> _Delivery:
        delivery = _Delivery(self, context)
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers:
            extra["headers"] = list(headers)
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivery, **extra)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.code() in _TOO_LARGE:
                    raise RecordTooLargeError(f"topic={topic!r}: {exc}", topic=topic) from exc
                raise _broker_error(exc, f"cannot send to topic={topic!r}") from exc
        self._pending.add(delivery)
        self._producer.poll(0)  # serve delivery reports
        return delivery

    def flush(self, timeout_s: float | None = None) -> list[_Delivery]:
        timeout = self._flush_timeout_s if timeout_s is None else timeout_s
        timed_out = self._producer.flush(timeout) > 0
        if timed_out:
            # Not acknowledged in time: drop them from librdkafka's queues, so that what
            # is reported as failed is not delivered later behind the caller's back (an
            # in-flight request may still land: at-least-once).
            self._producer.purge()
            self._producer.flush(1.0)  # serves the purged records' delivery reports
        failed, self._failed = self._failed, []
        for delivery in failed:
            if _code(delivery.error) == KafkaError._PURGE_INFLIGHT:
                delivery.error = BrokerError(
                    f"unconfirmed: not acknowledged within the flush timeout ({timeout}s), "
                    "dropped while in flight (the broker may have written it)"
                )
        late, self._pending = list(self._pending), set()
        for delivery in late:
            # With librdkafka's queues empty, a record still pending here had its delivery
            # report consumed by a callback that an interrupt (a signal handler raising
            # KeyboardInterrupt) cut short before its first line: its outcome is unknown.
            delivery.error = BrokerError(
                f"not acknowledged within the flush timeout ({timeout}s)"
                if timed_out
                else "unconfirmed: its delivery report was lost to an interrupt "
                "(the broker may have written it)"
            )
        return failed + late

    def partitions_for(self, topic: str) -> set[int]:
        try:
            metadata = self._producer.list_topics(topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise _broker_error(exc, f"no metadata for topic={topic!r}") from exc
        found = metadata.topics.get(topic)
        return set(found.partitions) if found is not None and found.error is None else set()

    def close(self, timeout_s: float = 10.0) -> list[_Delivery]:
        return self.flush(timeout_s)  # librdkafka frees the handle with the object


# -- consumer ------------------------------------------------------------------------------------


class ConfluentConsumer:
    """:class:`~newswire.kafka.base.ConsumerClient` on librdkafka's ``Consumer``."""

    def __init__(self, kafka: KafkaSettings, group: str | None, role: str) -> None:
        config: dict[str, Any] = {
            **connection_config(kafka, role),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": kafka.fetch_max_wait_ms,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "fetch.max.bytes": 64 * 1024 * 1024,
            # End-of-partition events give the high watermark of partitions that have
            # nothing to fetch (the cached watermark only moves with fetched messages).
            "enable.partition.eof": True,
            # A group-less reader still needs a group.id in librdkafka; it never joins it.
            "group.id": group if group is not None else f"{kafka.client_id}-{role}-reader",
        }
        if group is not None:
            config.update(
                {
                    "session.timeout.ms": kafka.session_timeout_ms,
                    "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
                }
            )
        try:
            self._consumer = Consumer(config, logger=log)
        except KafkaException as exc:
            raise _broker_error(exc, "cannot configure a consumer") from exc
        self._kafka = kafka
        self._group = group
        self._topics: list[str] = []
        self._joining = False
        self._joining_since = 0.0
        self._rejoins = 0
        # A join still pending after this long is taken for a wedged group (DESIGN §6).
        # Joins on Tansu take about half a session timeout.
        self._wedged_after_s = max(10.0, 2 * kafka.session_timeout_ms / 1000)
        self._timeout_s = kafka.timeout_s
        #: The end offset of each partition at its last end-of-partition event.
        self._ends: dict[tuple[str, int], int] = {}

    def subscribe(
        self, topics: Sequence[str], *, on_assign: Rebalance, on_revoke: Rebalance
    ) -> None:
        def assigned(_consumer: Any, partitions: list[Any]) -> None:
            self._joining = False
            on_assign([_tp(tp) for tp in partitions])

        def revoked(_consumer: Any, partitions: list[Any]) -> None:
            self._start_join()
            on_revoke([_tp(tp) for tp in partitions])

        self._topics = list(topics)
        self._start_join()
        self._consumer.subscribe(
            list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked
        )

    def _start_join(self) -> None:
        if not self._joining:
            self._joining, self._joining_since = True, time.monotonic()

    def _unwedge(self) -> None:
        """librdkafka cannot rejoin under the departed leader's id, which is what
        completes a wedged join (DESIGN §6): a throwaway kafka-python member does it."""
        assert self._group is not None
        log.warning(
            "consumer group %s: no assignment after %.0fs of rebalancing; checking whether "
            "the group is wedged",
            self._group,
            time.monotonic() - self._joining_since,
        )
        if complete_wedged_join(self._kafka, self._group, self._topics, timeout_s=30.0):
            self._rejoins += 1
        self._joining_since = time.monotonic()  # one attempt per bound

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._consumer.assign([_rd(tp, OFFSET_BEGINNING) for tp in partitions])

    def partitions_for(self, topic: str) -> set[int]:
        try:
            metadata = self._consumer.list_topics(topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise _broker_error(exc, f"no metadata for topic={topic!r}") from exc
        found = metadata.topics.get(topic)
        return set(found.partitions) if found is not None and found.error is None else set()

    def poll(self, timeout_s: float, max_records: int) -> Mapping[TopicPartition, Sequence[Record]]:
        if self._joining and time.monotonic() - self._joining_since > self._wedged_after_s:
            self._unwedge()
        try:
            # consume(n, timeout) waits until it has n messages or the timeout is over: at a
            # low rate every batch would wait the whole timeout (at 1,000 articles/s, +0.4 s
            # per stage: benchmarks/bench_e2e.py). Take what is fetched already; wait, up to
            # the timeout, only for the first record when there is none.
            messages = self._consumer.consume(max_records, 0)
            if not messages:
                first = self._consumer.poll(timeout_s)
                if first is None:
                    return {}
                messages = [first]
                if max_records > 1:
                    messages += self._consumer.consume(max_records - 1, 0)
        except KafkaException as exc:
            raise _broker_error(exc, "poll failed") from exc
        # Per message only C calls and one tuple: this loop is most of the adapter's cost
        # (~1 µs a record, as much as librdkafka's own fetch).
        by_partition: dict[tuple[str, int], list[Record]] = {}
        last: tuple[str, int] | None = None
        records: list[Record] = []
        new = tuple.__new__
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._ends[(cast(str, m.topic()), cast(int, m.partition()))] = cast(
                        int, m.offset()
                    )
                else:
                    self._on_error(error)
                continue
            topic, partition = m.topic(), m.partition()
            if last is None or last[0] != topic or last[1] != partition:
                last = (cast(str, topic), cast(int, partition))
                records = by_partition.setdefault(last, [])
            records.append(
                new(
                    Record,
                    (
                        topic,
                        partition,
                        m.offset(),
                        m.key(),
                        m.value(),
                        m.headers() or (),
                        m.timestamp()[1],
                    ),
                )
            )
        return {TopicPartition(*tp): found for tp, found in by_partition.items()}

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise BrokerError(f"the consumer failed: {error.str()}", retriable=False)
        log.warning("consumer: %s", error.str())

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            results = self._consumer.commit(
                offsets=[_rd(tp, offset) for tp, offset in offsets.items()], asynchronous=False
            )
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in _REBALANCED:
                raise CommitFailedError(f"commit refused: {error.str()}") from exc
            raise _broker_error(exc, "commit failed") from exc
        for result in results or ():
            if result.error is not None:
                if result.error.code() in _REBALANCED:
                    raise CommitFailedError(f"commit refused: {result.error.str()}")
                raise BrokerError(
                    f"commit of topic={result.topic!r} partition={result.partition} failed: "
                    f"{result.error.str()}"
                )

    def seek(self, tp: TopicPartition, offset: int) -> None:
        try:
            self._consumer.seek(_rd(tp, offset))
        except KafkaException as exc:
            raise _broker_error(exc, f"cannot seek {tp.topic}[{tp.partition}] to {offset}") from exc

    def assignment(self) -> set[TopicPartition]:
        return {_tp(tp) for tp in self._consumer.assignment()}

    def position(self, tp: TopicPartition) -> int | None:
        try:
            (found,) = self._consumer.position([_rd(tp)])
        except KafkaException:
            return None
        if found.offset >= 0:
            return int(found.offset)
        # Nothing consumed from it yet: at its end if an end-of-partition event said so.
        return self._ends.get((tp.topic, tp.partition))

    def high_watermark(self, tp: TopicPartition) -> int | None:
        try:
            found = self._consumer.get_watermark_offsets(_rd(tp), cached=True)
        except KafkaException:
            found = None
        high = int(found[1]) if found and found[1] >= 0 else -1
        end = self._ends.get((tp.topic, tp.partition), -1)
        best = max(high, end)
        return best if best >= 0 else None

    def rebalancing(self) -> bool:
        return self._joining

    def group_rejoins(self) -> int:
        return self._rejoins

    def close(self, *, leave: bool = True) -> None:
        if leave:
            self._consumer.close()
            return
        # close() always leaves a dynamic group. Dropping the handle unclosed does not:
        # confluent-kafka destroys it without the consumer close (no LeaveGroup, measured
        # on Tansu 0.6: the group rebalances after the session timeout instead).
        del self._consumer


# -- admin ---------------------------------------------------------------------------------------


class ConfluentAdmin:
    """:class:`~newswire.kafka.base.AdminClient` on librdkafka's ``AdminClient``."""

    def __init__(self, kafka: KafkaSettings, *, timeout_s: float = 10.0) -> None:
        self._bootstrap = kafka.bootstrap
        self._timeout_s = timeout_s
        self._connection = connection_config(kafka, "admin")
        self._admin = RdAdminClient(dict(self._connection), logger=log)

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self._admin.list_topics(topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise _broker_error(exc, f"cannot reach the broker at {self._bootstrap}") from exc

    def list_topics(self) -> set[str]:
        return {name for name in self._metadata().topics if not name.startswith("__")}

    def create_topics(self, names: Sequence[str], partitions: int, replication: int) -> list[str]:
        missing = [name for name in names if name not in self.list_topics()]
        if not missing:
            return []
        futures = self._admin.create_topics(
            [NewTopic(name, partitions, replication) for name in missing],
            operation_timeout=self._timeout_s,
            request_timeout=self._timeout_s,
        )
        created = []
        for name, future in futures.items():
            try:
                future.result(self._timeout_s)
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    continue  # a concurrent process was first: fine
                raise _broker_error(exc, f"cannot create topic {name!r}") from exc
        return created

    def partitions_for(self, topic: str) -> set[int]:
        found = self._metadata(topic).topics.get(topic)
        return set(found.partitions) if found is not None and found.error is None else set()

    def committed(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        partitions = [
            RdTopicPartition(topic, p)
            for topic in topics
            for p in sorted(self.partitions_for(topic))
        ]
        if not partitions:
            return {}
        # A consumer handle in the group (never subscribed: it does not join) reads them.
        reader = Consumer(
            {
                **self._connection,
                "group.id": group,
                "enable.auto.commit": False,
            },
            logger=log,
        )
        try:
            found = reader.committed(partitions, timeout=self._timeout_s)
        except KafkaException as exc:
            raise _broker_error(exc, f"cannot read the offsets of group {group!r}") from exc
        finally:
            reader.close()
        return {_tp(tp): int(tp.offset) for tp in found if tp.error is None and tp.offset >= 0}

    def close(self) -> None:
        pass  # librdkafka frees the handle with the object (its futures are resolved)


class ConfluentClients:
    """:class:`~newswire.kafka.base.Clients` on confluent-kafka (librdkafka)."""

    name = "confluent"

    def __init__(self, kafka: KafkaSettings, producer: ProducerSettings) -> None:
        self.kafka = kafka
        self.producer_settings = producer

    def consumer(self, group: str | None, role: str) -> ConfluentConsumer:
        return ConfluentConsumer(self.kafka, group, role)

    def producer(self, role: str, *, output: bool = False) -> ConfluentProducer:
        return ConfluentProducer(
            self.kafka, self.producer_settings, role, flush_timeout_s=self.kafka.flush_timeout_s
        )

    def admin(self) -> ConfluentAdmin:
        return ConfluentAdmin(self.kafka, timeout_s=self.kafka.timeout_s)
