"""The stages' output producer on librdkafka (confluent-kafka).

kafka-python's ``send()`` costs 25-65 µs a record in pure Python (record
accumulator, varints, futures): for a stage that forwards every record it is
the largest cost after decoding. librdkafka's ``produce()`` costs ~5 µs. This
adapter offers the subset of ``KafkaProducer`` the runner uses — ``send`` (a
delivery handle with ``failed()``/``exception``), ``flush``, ``partitions_for``,
``close`` — with the same guarantees: idempotent, ``acks=all``, and the Java
client's murmur2 partitioner, so a key lands on the partition kafka-python (and
every Java client) would choose.

Consumers stay on kafka-python (DESIGN §6 was measured with it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from newswire.errors import BrokerError
from newswire.settings import KafkaSettings, ProducerSettings

__all__ = ["Delivery", "RdKafkaProducer"]

log = logging.getLogger(__name__)


class Delivery:
    """The outcome of one ``send``: set by librdkafka's delivery report."""

    __slots__ = ("delivered", "exception")

    def __init__(self) -> None:
        self.delivered = False
        self.exception: BaseException | None = None

    def failed(self) -> bool:
        """Not acknowledged: refused by the broker, or not delivered by the last flush."""
        return not self.delivered

    def __call__(self, error: KafkaError | None, _message: Any) -> None:
        if error is None:
            self.delivered = True
        else:
            self.exception = KafkaException(error)


def rdkafka_config(kafka: KafkaSettings, producer: ProducerSettings, role: str) -> dict[str, Any]:
    """librdkafka configuration equivalent to :func:`newswire.kafka.make_producer`'s."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": f"{kafka.client_id}-{role}",
        "security.protocol": kafka.security_protocol.lower(),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": producer.compression,
        "linger.ms": producer.linger_ms,
        "batch.size": min(producer.batch_size, 2_147_483_647),
        "message.max.bytes": producer.max_request_size,
        # The Java client's partitioner: the same key → the same partition as kafka-python.
        "partitioner": "murmur2_random",
    }
    if kafka.sasl_mechanism:
        config["sasl.mechanisms"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_username or ""
        if kafka.sasl_password is not None:
            config["sasl.password"] = kafka.sasl_password.get_secret_value()
    return config


class RdKafkaProducer:
    """``KafkaProducer``'s send/flush/partitions_for/close on librdkafka."""

    def __init__(
        self,
        kafka: KafkaSettings,
        producer: ProducerSettings,
        role: str,
        *,
        flush_timeout_s: float = 60.0,
    ) -> None:
        self._producer = Producer(rdkafka_config(kafka, producer, role), logger=log)
        self._flush_timeout_s = flush_timeout_s

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Delivery:
        """Queue one record; its :class:`Delivery` says whether it was acknowledged."""
        delivery = Delivery()
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
                raise BrokerError(f"cannot send to topic={topic!r}: {exc}", topic=topic) from exc
        self._producer.poll(0)  # serve delivery reports
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued record's delivery report (or the timeout: then they count
        as not acknowledged and the runner redoes the batch)."""
        remaining = self._producer.flush(self._flush_timeout_s if timeout is None else timeout)
        if remaining:
            log.warning("%d records not acknowledged within the flush timeout", remaining)

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of *topic*."""
        try:
            metadata = self._producer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise BrokerError(f"no metadata for topic={topic!r}: {exc}", topic=topic) from exc
        found = metadata.topics.get(topic)
        return set(found.partitions) if found is not None and found.error is None else set()

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (up to *timeout* seconds)."""
        self._producer.flush(10 if timeout is None else timeout)
