"""kafka-python adapters: the one place that knows client configuration."""

from __future__ import annotations

from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer

from newswire.settings import KafkaSettings, ProducerSettings

__all__ = ["Clients", "KafkaClients", "client_config", "make_consumer", "make_producer"]


def client_config(settings: KafkaSettings, role: str) -> dict[str, Any]:
    """Connection options shared by producers, consumers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap.split(","),
        "client_id": f"{settings.client_id}-{role}",
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return config


def make_producer(
    kafka: KafkaSettings, producer: ProducerSettings, role: str = "producer"
) -> KafkaProducer:
    """An idempotent, acks=all, compressed and batching producer."""
    compression = None if producer.compression == "none" else producer.compression
    return KafkaProducer(
        **client_config(kafka, role),
        acks="all",
        enable_idempotence=True,
        compression_type=compression,
        linger_ms=producer.linger_ms,
        batch_size=producer.batch_size,
        max_request_size=producer.max_request_size,
        retries=2**31 - 1,
    )


def make_consumer(kafka: KafkaSettings, group: str, role: str = "consumer") -> KafkaConsumer:
    """A consumer that reads raw bytes (decoding happens in the runner) and never auto-commits."""
    return KafkaConsumer(
        **client_config(kafka, role),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        max_poll_records=kafka.max_poll_records,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        isolation_level="read_committed",
    )


class Clients(Protocol):
    """Makes the consumer and producer a :class:`~newswire.runner.Runner` uses.

    :class:`KafkaClients` talks to the broker; ``newswire.testing`` ships an
    in-memory implementation so plug-in authors can test without one.
    """

    def consumer(self, group: str, role: str) -> Any:
        """A consumer with (the runner's subset of) kafka-python's ``KafkaConsumer`` interface."""
        ...

    def producer(self, role: str) -> Any:
        """A producer with (the runner's subset of) kafka-python's ``KafkaProducer`` interface."""
        ...


class KafkaClients:
    """Real kafka-python clients configured from settings."""

    def __init__(self, kafka: KafkaSettings, producer: ProducerSettings) -> None:
        self.kafka = kafka
        self.producer_settings = producer

    def consumer(self, group: str, role: str) -> KafkaConsumer:
        """See :func:`make_consumer`."""
        return make_consumer(self.kafka, group, role=role)

    def producer(self, role: str) -> Any:
        """The stage's output producer: librdkafka unless ``NEWSWIRE_KAFKA__OUTPUT_CLIENT``
        says ``kafka-python`` (see :mod:`newswire.rdkafka`)."""
        if self.kafka.output_client == "confluent":
            from newswire.rdkafka import RdKafkaProducer

            return RdKafkaProducer(self.kafka, self.producer_settings, role)
        return make_producer(self.kafka, self.producer_settings, role=role)
