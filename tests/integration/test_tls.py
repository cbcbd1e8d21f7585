"""TLS for real: both Kafka clients produce and consume through a TLS-terminating proxy in
front of Tansu (which speaks no TLS, DESIGN §6), with a client certificate whose key is
encrypted; a CA that did not sign the broker's certificate is one clear error, in bounded
time; the key password never shows in logs, reprs or errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from newswire.broker import EmbeddedBroker, free_port
from newswire.kafka import BrokerUnreachableError, TopicPartition, open_clients
from newswire.settings import Settings
from newswire.topics import RAW, ensure_topics
from tests.tls_proxy import Pki, TlsProxy, make_pki

pytestmark = pytest.mark.integration

KEY_PASSWORD = "k3y-pa55-Zq81"  # a value that appears nowhere else


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", client_key_password=KEY_PASSWORD)


@pytest.fixture
def tls_broker(tansu_binary: str, tmp_path: Path, pki: Pki) -> Iterator[TlsProxy]:
    """Tansu behind a TLS proxy that requires a client certificate; Tansu advertises the
    proxy's address, so that the clients' reconnections go through TLS as well."""
    proxy_port = free_port()
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log", advertised_port=proxy_port)
    broker.start()
    proxy = TlsProxy(pki, (broker.host, broker.port), proxy_port, require_client_cert=True)
    try:
        with proxy:
            yield proxy
    finally:
        broker.stop(timeout_s=1.0)


def _settings(kafka_client: str, proxy: TlsProxy, pki: Pki, ca: Path) -> Settings:
    s = Settings()
    s.kafka.client = kafka_client
    s.kafka.output_client = kafka_client
    s.kafka.bootstrap = proxy.bootstrap
    s.kafka.partitions = 1
    s.kafka.timeout_s = 3.0
    s.kafka.security_protocol = "SSL"
    s.kafka.ssl_cafile = ca
    s.kafka.ssl_certfile = pki.client_cert
    s.kafka.ssl_keyfile = pki.client_key
    s.kafka.ssl_key_password = SecretStr(KEY_PASSWORD)
    return s


def test_produce_and_consume_through_tls(
    kafka_client: str,
    tls_broker: TlsProxy,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(kafka_client, tls_broker, pki, pki.ca)
    ensure_topics(settings.kafka, (RAW,))
    clients = open_clients(settings.kafka, settings.producer)
    producer = clients.producer("test", output=True)
    for i in range(5):
        producer.produce(RAW, b"tls-%d" % i, key=b"key-%d" % i)
    assert not producer.flush(30)
    producer.close()
    consumer = clients.consumer(None, "test")
    consumer.assign([TopicPartition(RAW, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < 5 and time.monotonic() < deadline:
            polled = consumer.poll(1.0, 100)
            values += [r.value for records in polled.values() for r in records if r.value]
    finally:
        consumer.close()
    assert sorted(values) == [b"tls-%d" % i for i in range(5)]
    assert tls_broker.handshakes >= 2  # every connection went through the TLS proxy
    # The key password is in no log record, no output and no repr of the settings.
    out, err = capsys.readouterr()
    assert KEY_PASSWORD not in out + err + caplog.text
    assert KEY_PASSWORD not in repr(settings) + str(settings.kafka)
    assert KEY_PASSWORD not in settings.model_dump_json()


def test_a_wrong_ca_is_one_clear_error(
    kafka_client: str,
    tls_broker: TlsProxy,
    pki: Pki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = make_pki(tmp_path / "other", "other-ca")
    settings = _settings(kafka_client, tls_broker, pki, other.ca)
    started = time.monotonic()
    with pytest.raises(BrokerUnreachableError) as caught:
        open_clients(settings.kafka, settings.producer)
    assert time.monotonic() - started < settings.kafka.timeout_s + 2  # no hang
    message = str(caught.value)
    assert f"TLS verification of the Kafka broker at {tls_broker.bootstrap} failed" in message
    assert "certificate" in message.split("failed: ", 1)[1]  # OpenSSL's reason
    assert str(other.ca) in message
    assert "\n" not in message
    assert not caught.value.retriable
    assert KEY_PASSWORD not in message + caplog.text


def test_a_wrong_key_password_names_the_key_not_the_password(
    kafka_client: str, tls_broker: TlsProxy, pki: Pki
) -> None:
    settings = _settings(kafka_client, tls_broker, pki, pki.ca)
    settings.kafka.ssl_key_password = SecretStr("not-the-Password-71")
    with pytest.raises(Exception) as caught:
        open_clients(settings.kafka, settings.producer)
    message = str(caught.value)
    assert f"NEWSWIRE_KAFKA__SSL_KEYFILE={pki.client_key}" in message
    assert "not-the-Password-71" not in message


def _cli_env(kafka_client: str, proxy: TlsProxy, pki: Pki, ca: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(_settings(kafka_client, proxy, pki, ca).kafka.environment())
    env["NEWSWIRE_METRICS__ENABLED"] = "false"
    return env


def test_the_cli_works_through_tls_and_never_prints_the_key_password(
    kafka_client: str, tls_broker: TlsProxy, pki: Pki
) -> None:
    newswire = str(Path(sys.executable).with_name("newswire"))
    done = subprocess.run(
        [newswire, "--debug", "topics", "create"],
        env=_cli_env(kafka_client, tls_broker, pki, pki.ca),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert KEY_PASSWORD not in done.stdout + done.stderr
    assert tls_broker.handshakes >= 1


def test_the_cli_reports_a_wrong_ca_in_one_line(
    kafka_client: str, tls_broker: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other", "other-ca")
    newswire = str(Path(sys.executable).with_name("newswire"))
    done = subprocess.run(
        [newswire, "topics", "create"],
        env=_cli_env(kafka_client, tls_broker, pki, other.ca),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"TLS verification of the Kafka broker at {tls_broker.bootstrap} failed" in lines[0]
    assert KEY_PASSWORD not in done.stdout + done.stderr
