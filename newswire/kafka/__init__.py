"""newswire's Kafka layer: the protocols the runtime uses, and one adapter per client.

    from newswire.kafka import open_clients

    clients = open_clients(settings.kafka, settings.producer)
    producer = clients.producer("replay")
    delivery = producer.produce("articles.raw", value, key=key)
    failed = producer.flush()        # the one acknowledgement check

``NEWSWIRE_KAFKA__CLIENT`` picks the client of consumers, producers and admin
(``confluent`` | ``kafka-python``); ``NEWSWIRE_KAFKA__OUTPUT_CLIENT`` the
stages' output producer. Adapters are looked up by name: the built-ins in
:data:`ADAPTERS` (``"module:Class"``, imported on first use), others through
the entry-point group ``newswire.kafka_clients``. An adapter is a class taking
``(KafkaSettings, ProducerSettings)`` that implements :class:`Clients`.
"""

from __future__ import annotations

import importlib
import socket
import ssl
import time
from importlib.metadata import entry_points
from typing import Any

from newswire.errors import ConfigError
from newswire.kafka.base import (
    AdminClient,
    Clients,
    ConsumerClient,
    Delivery,
    Headers,
    ProducerClient,
    Rebalance,
    Record,
    TopicPartition,
)
from newswire.kafka.errors import (
    BrokerError,
    BrokerUnreachableError,
    CommitFailedError,
    RecordTooLargeError,
)
from newswire.settings import KafkaSettings, ProducerSettings

__all__ = [
    "ADAPTERS",
    "ENTRY_POINTS",
    "AdminClient",
    "BrokerError",
    "BrokerUnreachableError",
    "Clients",
    "CommitFailedError",
    "ConsumerClient",
    "Delivery",
    "Headers",
    "KafkaClients",
    "ProducerClient",
    "Rebalance",
    "Record",
    "RecordTooLargeError",
    "TopicPartition",
    "adapter",
    "check_reachable",
    "known_clients",
    "open_clients",
]

#: The built-in adapters: client name → ``"module:Class"``.
ADAPTERS: dict[str, str] = {
    "kafka-python": "newswire.kafka.kafka_python:KafkaPythonClients",
    "confluent": "newswire.kafka.confluent:ConfluentClients",
}

#: Entry-point group of third-party adapters.
ENTRY_POINTS = "newswire.kafka_clients"


def _registered() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS)}
    return {**found, **ADAPTERS}


def known_clients() -> list[str]:
    """The names ``NEWSWIRE_KAFKA__CLIENT`` accepts."""
    return sorted(_registered())


def adapter(name: str) -> Any:
    """The adapter class registered as *name* (a :class:`Clients` factory)."""
    registered = _registered()
    target = registered.get(name)
    if target is None:
        raise ConfigError(
            f"unknown Kafka client {name!r} (known: {', '.join(sorted(registered))})", name=name
        )
    module, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load Kafka client {name!r} from {target}: {exc}") from exc


def _address(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    try:
        return host.strip("[]") or "localhost", int(port)
    except ValueError as exc:
        raise ConfigError(
            f"bootstrap server {server!r} is not HOST:PORT (NEWSWIRE_KAFKA__BOOTSTRAP)",
            bootstrap=server,
        ) from exc


def _cause(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return exc.strerror or type(exc).__name__


def _tls_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context the settings describe (as both clients build theirs)."""
    context = ssl.create_default_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile is not None else None
    )
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile is not None:
        password = kafka.ssl_key_password
        try:
            context.load_cert_chain(
                str(kafka.ssl_certfile),
                str(kafka.ssl_keyfile) if kafka.ssl_keyfile is not None else None,
                password.get_secret_value() if password is not None else None,
            )
        except ssl.SSLError as exc:
            raise ConfigError(
                f"cannot load the client certificate NEWSWIRE_KAFKA__SSL_CERTFILE="
                f"{kafka.ssl_certfile} with NEWSWIRE_KAFKA__SSL_KEYFILE={kafka.ssl_keyfile}: "
                f"{exc.reason or exc} (a wrong NEWSWIRE_KAFKA__SSL_KEY_PASSWORD?)",
                setting="ssl_keyfile",
            ) from None  # the OpenSSL error stack says nothing more, and never the password
    return context


def _check_tls(kafka: KafkaSettings, sock: socket.socket, host: str, port: int) -> None:
    """A TLS handshake with the broker, so that a certificate the settings do not trust is
    one clear line, not a client retrying its handshake for ever."""
    try:
        with _tls_context(kafka).wrap_socket(sock, server_hostname=host):
            return
    except ssl.SSLCertVerificationError as exc:
        cafile = kafka.ssl_cafile if kafka.ssl_cafile is not None else "the system's CAs"
        raise BrokerUnreachableError(
            f"TLS verification of the Kafka broker at {host}:{port} failed: "
            f"{exc.verify_message} (CA: {cafile}; NEWSWIRE_KAFKA__SSL_CAFILE, "
            "NEWSWIRE_KAFKA__SSL_CHECK_HOSTNAME)",
            bootstrap=kafka.bootstrap,
            retriable=False,
        ) from exc
    except (ssl.SSLError, OSError) as exc:
        raise BrokerUnreachableError(
            f"TLS handshake with the Kafka broker at {host}:{port} failed: "
            f"{getattr(exc, 'reason', None) or exc} "
            f"(NEWSWIRE_KAFKA__SECURITY_PROTOCOL={kafka.security_protocol})",
            bootstrap=kafka.bootstrap,
            retriable=False,
        ) from exc


def check_reachable(kafka: KafkaSettings) -> None:
    """Wait until one bootstrap server accepts a TCP connection, at most ``kafka.timeout_s``.

    Raises :class:`BrokerUnreachableError` naming the address and the cause: a client
    library would retry (and log) for much longer before saying the same less clearly.
    With TLS (``SSL``/``SASL_SSL``) it also shakes hands: a broker certificate the CA
    file does not vouch for is that error too (not retriable).
    """
    kafka.check_security()
    servers = [s for s in kafka.bootstrap.split(",") if s.strip()]
    if not servers:
        raise ConfigError("no bootstrap server (NEWSWIRE_KAFKA__BOOTSTRAP is empty)")
    addresses = [_address(s) for s in servers]
    deadline = time.monotonic() + kafka.timeout_s
    while True:
        causes = []
        for host, port in addresses:
            remaining = max(0.05, deadline - time.monotonic())
            try:
                with socket.create_connection((host, port), timeout=min(remaining, 2.0)) as sock:
                    if kafka.tls:
                        _check_tls(kafka, sock, host, port)
                    return
            except OSError as exc:
                causes.append(_cause(exc))
        if time.monotonic() >= deadline:
            why = ", ".join(sorted(set(causes)))
            raise BrokerUnreachableError(
                f"cannot reach the Kafka broker at {kafka.bootstrap}: {why} "
                f"(for {kafka.timeout_s:g}s; NEWSWIRE_KAFKA__TIMEOUT_S)",
                bootstrap=kafka.bootstrap,
            )
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


class KafkaClients:
    """The process's :class:`Clients`: ``kafka.client`` for everything, except the stages'
    output producer, which is ``kafka.output_client``'s."""

    def __init__(self, kafka: KafkaSettings, producer: ProducerSettings) -> None:
        self.kafka = kafka
        self.main: Clients = adapter(kafka.client)(kafka, producer)
        output = kafka.output_client or kafka.client
        self.output: Clients = (
            self.main if output == kafka.client else adapter(output)(kafka, producer)
        )

    def consumer(self, group: str | None, role: str) -> ConsumerClient:
        """A consumer of ``kafka.client``."""
        return self.main.consumer(group, role)

    def producer(self, role: str, *, output: bool = False) -> ProducerClient:
        """A producer of ``kafka.client`` (of ``kafka.output_client`` for *output*)."""
        return (self.output if output else self.main).producer(role, output=output)

    def admin(self) -> AdminClient:
        """An admin client of ``kafka.client``."""
        return self.main.admin()


def open_clients(
    kafka: KafkaSettings, producer: ProducerSettings | None = None, *, check: bool = True
) -> KafkaClients:
    """The clients the settings ask for; with *check*, once the broker answers
    (:func:`check_reachable`)."""
    if check:
        check_reachable(kafka)
    return KafkaClients(kafka, producer or ProducerSettings())
