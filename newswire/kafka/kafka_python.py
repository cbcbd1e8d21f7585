"""The kafka-python adapter: :mod:`newswire.kafka.base`'s protocols on ``kafka-python``.

Pure Python: easy to debug, and no native library. Its fetch costs ~9 µs a
record against librdkafka's ~1.4 µs (DESIGN §7), so it is not the default.

On Tansu a fetch stalls for ``fetch_max_wait_ms`` unless it is short
(``KafkaSettings.fetch_max_wait_ms``, 10 ms by default, 1.47x the throughput).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kafka.errors as kerrors
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewTopic
from kafka.protocol.consumer import LeaveGroupRequest
from kafka.structs import OffsetAndMetadata

from newswire.errors import BrokerError
from newswire.kafka.base import Headers, Rebalance, Record, TopicPartition
from newswire.kafka.errors import CommitFailedError, RecordTooLargeError
from newswire.settings import KafkaSettings, ProducerSettings

__all__ = ["KafkaPythonClients", "complete_wedged_join", "connection_config"]

log = logging.getLogger(__name__)

# What a commit raises when the group moved on: the new owner reads those records again.
_REBALANCED = (
    kerrors.CommitFailedError,
    kerrors.RebalanceInProgressError,
    kerrors.IllegalGenerationError,
    kerrors.UnknownMemberIdError,
)


class _RedactPasswords(logging.Filter):
    """Masks the passwords in a configuration dict logged as an argument:
    ``KafkaAdminClient`` logs its whole configuration at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        # logging unpacks a lone dict argument into record.args itself.
        if isinstance(record.args, dict):
            record.args = (_masked(record.args),)
        elif isinstance(record.args, tuple):
            record.args = tuple(_masked(a) if isinstance(a, dict) else a for a in record.args)
        return True


def _masked(config: dict[Any, Any]) -> dict[Any, Any]:
    return {k: "**********" if "password" in str(k) else v for k, v in config.items()}


logging.getLogger("kafka.admin.client").addFilter(_RedactPasswords())


def connection_config(kafka: KafkaSettings, role: str) -> dict[str, Any]:
    """Connection options shared by producers, consumers and admin clients (TLS and SASL
    included; :meth:`KafkaSettings.check_security` first)."""
    kafka.check_security()
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap.split(","),
        "client_id": f"{kafka.client_id}-{role}",
        "security_protocol": kafka.security_protocol.upper(),
    }
    if kafka.tls:
        config["ssl_check_hostname"] = kafka.ssl_check_hostname
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(kafka, name)
            if path is not None:
                config[name] = str(path)
        if kafka.ssl_key_password is not None:
            config["ssl_password"] = kafka.ssl_key_password.get_secret_value()
    if kafka.sasl_mechanism:
        # kafka-python takes the sasl_plain_* credentials for SCRAM too.
        config["sasl_mechanism"] = kafka.sasl_mechanism.upper()
        config["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            config["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return config


def _broker_error(exc: Exception, what: str) -> BrokerError:
    error = BrokerError(f"{what}: {exc}")
    error.retriable = bool(getattr(exc, "retriable", True))
    return error


def _tp(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


# -- producer ------------------------------------------------------------------------------------


class _Delivery:
    """One record's outcome, set by kafka-python's future callbacks (I/O thread)."""

    __slots__ = ("_acked", "context", "error")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.error: BaseException | None = None
        self._acked = False

    def acknowledged(self) -> bool:
        return self._acked


class KafkaPythonProducer:
    """:class:`~newswire.kafka.base.ProducerClient` on ``KafkaProducer``."""

    def __init__(
        self, kafka: KafkaSettings, producer: ProducerSettings, role: str, *, flush_timeout_s: float
    ) -> None:
        compression = None if producer.compression == "none" else producer.compression
        try:
            self._producer = KafkaProducer(
                **connection_config(kafka, role),
                acks="all",
                enable_idempotence=True,
                compression_type=compression,
                linger_ms=producer.linger_ms,
                batch_size=producer.batch_size,
                max_request_size=producer.max_request_size,
                retries=2**31 - 1,
                # send() blocks this long at most for metadata or buffer space.
                max_block_ms=int(kafka.timeout_s * 1000),
            )
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"cannot connect a producer to {kafka.bootstrap}") from exc
        self._flush_timeout_s = flush_timeout_s
        self._lock = threading.Lock()
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
        delivery = _Delivery(context)
        try:
            future = self._producer.send(
                topic,
                value=value,
                key=key,
                partition=partition,
                headers=list(headers) if headers else None,
            )
        except kerrors.MessageSizeTooLargeError as exc:
            raise RecordTooLargeError(f"topic={topic!r}: {exc}", topic=topic) from exc
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"cannot send to topic={topic!r}") from exc
        with self._lock:
            self._pending.add(delivery)
        future.add_callback(self._acked, delivery)
        future.add_errback(self._refused, delivery)
        return delivery

    def _acked(self, delivery: _Delivery, _metadata: Any) -> None:
        delivery._acked = True
        with self._lock:
            self._pending.discard(delivery)

    def _refused(self, delivery: _Delivery, exc: BaseException) -> None:
        delivery.error = exc
        with self._lock:
            self._pending.discard(delivery)
            self._failed.append(delivery)

    def flush(self, timeout_s: float | None = None) -> list[_Delivery]:
        timeout = self._flush_timeout_s if timeout_s is None else timeout_s
        with contextlib.suppress(kerrors.KafkaTimeoutError):  # the pending are reported below
            self._producer.flush(timeout=timeout)
        with self._lock:
            failed, self._failed = self._failed, []
            late, self._pending = list(self._pending), set()
        for delivery in late:
            delivery.error = BrokerError(f"not acknowledged within the flush timeout ({timeout}s)")
        return failed + late

    def partitions_for(self, topic: str) -> set[int]:
        try:
            return set(self._producer.partitions_for(topic) or ())
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"no metadata for topic={topic!r}") from exc

    def close(self, timeout_s: float = 10.0) -> list[_Delivery]:
        failed = self.flush(timeout_s)
        # The flush waited already: what is still queued is reported failed and dropped,
        # rather than sent later behind the caller's back. kafka-python's close() flushes
        # once more and raises if anything is left, so the leftovers are aborted first.
        accumulator = getattr(self._producer, "_accumulator", None)
        if accumulator is not None and accumulator.has_incomplete:
            accumulator.abort_batches(kerrors.KafkaTimeoutError("abandoned at close"))
        with contextlib.suppress(kerrors.KafkaError):
            self._producer.close(timeout=0)
        return failed


# -- consumer ------------------------------------------------------------------------------------


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign: Rebalance, on_revoke: Rebalance) -> None:
        self.on_assign = on_assign
        self.on_revoke = on_revoke

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.on_revoke([_tp(tp) for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.on_assign([_tp(tp) for tp in assigned])


class _WedgeGuard:
    """Detects a group wedged by Tansu 0.6 (DESIGN §6); completes its join if *adopt*.

    Tansu keeps a leader that left (LeaveGroup) while the group was forming as
    the leader of that join: every JoinGroup response names it, the SyncGroup of
    each follower fails with REBALANCE_IN_PROGRESS at the same generation, and
    nothing clears it — a timed-out leader is dropped only while it is still a
    member, and a fresh member id changes nothing. The only way out is a
    JoinGroup *with the departed leader's member id*: the broker then takes it
    as a new member that is the leader, returns the member list, and the
    SyncGroup with its assignment forms the group.

    A wedge is *tries* SyncGroup refusals at one generation by one leader (not
    this member), over at least *patience_s* (a live leader syncs within its
    own join). Hooked into kafka-python's join loop (the coordinator's response
    handlers). A member that *adopts* then leaves under its own id and rejoins
    as the departed leader: only :func:`complete_wedged_join`'s throwaway
    member does, so that two members that see the wedge at once never share a
    member id (and partitions) for longer than that member lives; the others
    set :attr:`wedged`. On Apache Kafka a follower's SyncGroup is not refused at
    an unchanged generation, so this never fires there.
    """

    def __init__(
        self, consumer: KafkaConsumer, patience_s: float, *, tries: int, adopt: bool
    ) -> None:
        self._coordinator = consumer._coordinator
        self._tries = tries
        self._patience_s = patience_s
        self._adopt = adopt
        self._leader = ""
        self._stuck: tuple[int, str] | None = None  # (generation, leader) refused at
        self._refusals = 0
        self._since = 0.0
        #: A wedge was seen since the owner last cleared this (not adopting).
        self.wedged = False
        #: Joins completed by rejoining as the departed leader (adopting).
        self.adopted = 0
        coordinator = self._coordinator
        join, sync = (
            coordinator._process_join_group_response,
            coordinator._process_sync_group_response,
        )

        def on_join(response: Any, send_time: float) -> Any:
            result = join(response, send_time)
            self._leader = response.leader
            return result

        def on_sync(response: Any, send_time: float) -> Any:
            try:
                result = sync(response, send_time)
            except kerrors.RebalanceInProgressError:
                self._refused()
                raise
            self._stuck, self._refusals = None, 0
            return result

        coordinator._process_join_group_response = on_join
        coordinator._process_sync_group_response = on_sync

    def _refused(self) -> None:
        coordinator = self._coordinator
        generation = coordinator._generation
        me, leader = generation.member_id, self._leader
        if not leader or leader == me:
            return
        key = (generation.generation_id, leader)
        if key != self._stuck:
            self._stuck, self._refusals, self._since = key, 0, time.monotonic()
        self._refusals += 1
        if self._refusals < self._tries or time.monotonic() - self._since < self._patience_s:
            return
        self._stuck, self._refusals = None, 0
        log.warning(
            "consumer group %s is wedged at generation %d: its leader %s left during the "
            "join and the broker still waits for it (Tansu); %s",
            coordinator.group_id,
            generation.generation_id,
            leader,
            "rejoining as that member to complete the join"
            if self._adopt
            else "a throwaway member completes the join",
        )
        if not self._adopt:
            self.wedged = True
            return
        self.adopted += 1
        # Leave under the own id first (not awaited: the JoinGroup below follows it on
        # the coordinator's connection), or the new assignment would give partitions
        # to it that nobody reads until its session times out.
        coordinator._manager.send(
            LeaveGroupRequest(
                group_id=coordinator.group_id,
                member_id=me,
                members=[LeaveGroupRequest.MemberIdentity(member_id=me, group_instance_id=None)],
            ),
            node_id=coordinator.coordinator_id,
        )
        # kafka-python's join loop retries at once, with this member id.
        coordinator.reset_generation(member_id=leader)


class KafkaPythonConsumer:
    """:class:`~newswire.kafka.base.ConsumerClient` on ``KafkaConsumer``."""

    def __init__(self, kafka: KafkaSettings, group: str | None, role: str) -> None:
        options: dict[str, Any] = {
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": kafka.max_poll_records,
            "max_partition_fetch_bytes": 16 * 1024 * 1024,
            "fetch_max_bytes": 64 * 1024 * 1024,
            "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
            "isolation_level": "read_committed",
        }
        if group is not None:
            options.update(
                group_id=group,
                session_timeout_ms=kafka.session_timeout_ms,
                heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            )
        try:
            self._consumer = KafkaConsumer(**connection_config(kafka, role), **options)
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"cannot connect a consumer to {kafka.bootstrap}") from exc
        self._kafka = kafka
        self._group = group
        self._topics: list[str] = []
        self._rejoins = 0
        self._guard = (
            _WedgeGuard(self._consumer, kafka.session_timeout_ms / 1000, tries=3, adopt=False)
            if group is not None
            else None
        )

    def subscribe(
        self, topics: Sequence[str], *, on_assign: Rebalance, on_revoke: Rebalance
    ) -> None:
        self._topics = list(topics)
        self._consumer.subscribe(self._topics, listener=_Listener(on_assign, on_revoke))

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        native = [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]
        self._consumer.assign(native)
        if native:
            self._consumer.seek_to_beginning(*native)

    def partitions_for(self, topic: str) -> set[int]:
        try:
            return set(self._consumer.partitions_for_topic(topic) or ())
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"no metadata for topic={topic!r}") from exc

    def poll(self, timeout_s: float, max_records: int) -> Mapping[TopicPartition, Sequence[Record]]:
        if self._guard is not None and self._guard.wedged:
            self._guard.wedged = False
            assert self._group is not None
            if complete_wedged_join(self._kafka, self._group, self._topics, timeout_s=30.0):
                self._rejoins += 1
        try:
            polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, "poll failed") from exc
        new = tuple.__new__  # skips NamedTuple's Python-level __new__: ~0.3 µs a record
        return {
            TopicPartition(tp.topic, tp.partition): [
                new(
                    Record, (r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp)
                )
                for r in records
            ]
            for tp, records in polled.items()
        }

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        native = {
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
            for tp, offset in offsets.items()
        }
        try:
            self._consumer.commit(native)
        except _REBALANCED as exc:
            raise CommitFailedError(f"commit refused: {exc}") from exc
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, "commit failed") from exc

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(KafkaTopicPartition(tp.topic, tp.partition), offset)

    def assignment(self) -> set[TopicPartition]:
        return {_tp(tp) for tp in self._consumer.assignment()}

    def position(self, tp: TopicPartition) -> int | None:
        try:
            position = self._consumer.position(
                KafkaTopicPartition(tp.topic, tp.partition), timeout_ms=1000
            )
        except kerrors.KafkaError:
            return None  # not assigned any more, or the coordinator is away
        return None if position is None else int(position)

    def high_watermark(self, tp: TopicPartition) -> int | None:
        high = self._consumer.highwater(KafkaTopicPartition(tp.topic, tp.partition))
        return None if high is None else int(high)

    def rebalancing(self) -> bool:
        # A JoinGroup in flight, or one about to be sent (a heartbeat saw the rebalance).
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or not self._consumer.subscription():
            return False
        return bool(coordinator.rebalance_in_progress() or coordinator.need_rejoin())

    def group_rejoins(self) -> int:
        return self._rejoins

    def close(self, *, leave: bool = True) -> None:
        if not leave:
            coordinator = getattr(self._consumer, "_coordinator", None)
            if coordinator is not None:
                # Forget the member id: kafka-python then sends no LeaveGroup and the
                # broker drops the member when its session times out.
                coordinator.reset_generation()
        self._consumer.close(autocommit=False)


def complete_wedged_join(
    kafka: KafkaSettings, group: str, topics: Sequence[str], timeout_s: float
) -> bool:
    """Join *group* with a throwaway member that completes a wedged join, then leave.

    Called by a member that found its group wedged, or suspects it (librdkafka,
    which shows no SyncGroup errors): this member joins, and if its SyncGroup is
    refused at one generation by a leader that never syncs (:class:`_WedgeGuard`),
    it rejoins as that leader, assigns the partitions to the members there are
    and leaves at once — as the leader of a formed group, which lets the broker
    pick a live leader for the next join. It commits nothing, and the records it
    may fetch meanwhile are dropped. True if it found the group wedged.
    """
    consumer = KafkaConsumer(
        **connection_config(kafka, "group-rescue"),
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        max_poll_records=1,
    )
    coordinator = consumer._coordinator
    guard = _WedgeGuard(consumer, 0.0, tries=2, adopt=True)
    try:
        consumer.subscribe(list(topics))
        deadline = time.monotonic() + timeout_s
        # Until its join completed (with or without partitions: there may be more
        # members than partitions).
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
            if coordinator.stable() and not coordinator.need_rejoin():
                break
    except kerrors.KafkaError as exc:
        log.warning("consumer group %s: the throwaway member failed: %s", group, exc)
    finally:
        if not coordinator.stable():
            # Its own join did not complete: leaving now could wedge the group again
            # (it may be that join's leader). Let its session time out instead.
            coordinator.reset_generation()
        consumer.close(autocommit=False)
    return guard.adopted > 0


# -- admin ---------------------------------------------------------------------------------------


class KafkaPythonAdmin:
    """:class:`~newswire.kafka.base.AdminClient` on ``KafkaAdminClient``."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._bootstrap = kafka.bootstrap
        try:
            self._admin = KafkaAdminClient(
                **connection_config(kafka, "admin"), request_timeout_ms=int(kafka.timeout_s * 1000)
            )
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"cannot reach the broker at {kafka.bootstrap}") from exc

    def list_topics(self) -> set[str]:
        try:
            return set(self._admin.list_topics())
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, "cannot list topics") from exc

    def create_topics(self, names: Sequence[str], partitions: int, replication: int) -> list[str]:
        missing = [name for name in names if name not in self.list_topics()]
        created = []
        for name in missing:
            try:
                self._admin.create_topics([NewTopic(name, partitions, replication)])
                created.append(name)
            except kerrors.TopicAlreadyExistsError:
                pass  # a concurrent process was first: fine
            except kerrors.KafkaError as exc:
                raise _broker_error(exc, f"cannot create topic {name!r}") from exc
        return created

    def partitions_for(self, topic: str) -> set[int]:
        try:
            described = self._admin.describe_topics([topic])
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"no metadata for topic={topic!r}") from exc
        return {
            p["partition_index"]
            for t in described
            if t.get("name") == topic and not t.get("error_code")
            for p in t.get("partitions", ())
        }

    def committed(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        try:
            found = self._admin.list_group_offsets({group: None}).get(group, {})
        except kerrors.KafkaError as exc:
            raise _broker_error(exc, f"cannot read the offsets of group {group!r}") from exc
        wanted = set(topics)
        return {
            _tp(tp): int(meta.offset)
            for tp, meta in found.items()
            if tp.topic in wanted and meta.offset >= 0
        }

    def close(self) -> None:
        self._admin.close()


class KafkaPythonClients:
    """:class:`~newswire.kafka.base.Clients` on kafka-python."""

    name = "kafka-python"

    def __init__(self, kafka: KafkaSettings, producer: ProducerSettings) -> None:
        self.kafka = kafka
        self.producer_settings = producer

    def consumer(self, group: str | None, role: str) -> KafkaPythonConsumer:
        return KafkaPythonConsumer(self.kafka, group, role)

    def producer(self, role: str, *, output: bool = False) -> KafkaPythonProducer:
        return KafkaPythonProducer(
            self.kafka, self.producer_settings, role, flush_timeout_s=self.kafka.flush_timeout_s
        )

    def admin(self) -> KafkaPythonAdmin:
        return KafkaPythonAdmin(self.kafka)
