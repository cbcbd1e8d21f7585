"""TLS/SASL settings: checked together, mapped into both clients' options, never leaked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from newswire.errors import ConfigError
from newswire.kafka import confluent, kafka_python
from newswire.settings import KafkaSettings


def test_a_missing_ca_file_names_the_setting_and_path(tmp_path: Path) -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"NEWSWIRE_KAFKA__SSL_CAFILE=.*nope\.pem: no such file"):
        kafka_python.connection_config(kafka, "test")
    with pytest.raises(ConfigError, match="SSL_CAFILE"):
        confluent.connection_config(kafka, "test")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"security_protocol": "TLS"}, "SECURITY_PROTOCOL='TLS' is not one of"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "SASL_MECHANISM='GSSAPI'"),
        ({"sasl_mechanism": "PLAIN"}, "uses no SASL"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "SASL_USERNAME"),
        ({"ssl_key_password": SecretStr("secret-9")}, "SSL_KEY_PASSWORD is set"),
    ],
)
def test_inconsistent_settings_are_config_errors(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        KafkaSettings(**fields).check_security()  # type: ignore[arg-type]
    assert "secret-9" not in str(caught.value)


def test_a_ca_file_with_plaintext_is_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match="uses no TLS"):
        KafkaSettings(ssl_cafile=ca).check_security()


def _full(tmp_path: Path, **extra: object) -> KafkaSettings:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("x")
    return KafkaSettings(
        security_protocol="sasl_ssl",
        ssl_cafile=tmp_path / "ca.pem",
        ssl_certfile=tmp_path / "client.pem",
        ssl_keyfile=tmp_path / "client.key",
        ssl_key_password=SecretStr("key-secret-1"),
        sasl_mechanism="scram-sha-512",
        sasl_username="alice",
        sasl_password=SecretStr("sasl-secret-2"),
        **extra,  # type: ignore[arg-type]
    )


def test_both_clients_get_the_tls_and_sasl_options(tmp_path: Path) -> None:
    kafka = _full(tmp_path)
    kp = kafka_python.connection_config(kafka, "test")
    assert kp["security_protocol"] == "SASL_SSL"
    assert kp["ssl_cafile"] == str(tmp_path / "ca.pem")
    assert kp["ssl_certfile"] == str(tmp_path / "client.pem")
    assert kp["ssl_keyfile"] == str(tmp_path / "client.key")
    assert kp["ssl_password"] == "key-secret-1"
    assert kp["ssl_check_hostname"] is True
    assert kp["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kp["sasl_plain_username"], kp["sasl_plain_password"]) == ("alice", "sasl-secret-2")
    rd = confluent.connection_config(kafka, "test")
    assert rd["security.protocol"] == "sasl_ssl"
    assert rd["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert rd["ssl.certificate.location"] == str(tmp_path / "client.pem")
    assert rd["ssl.key.location"] == str(tmp_path / "client.key")
    assert rd["ssl.key.password"] == "key-secret-1"
    assert rd["ssl.endpoint.identification.algorithm"] == "https"
    assert rd["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert (rd["sasl.username"], rd["sasl.password"]) == ("alice", "sasl-secret-2")
    # The secrets show in no repr of the settings.
    assert "secret" not in repr(kafka) + str(kafka)


def test_hostname_checking_can_be_turned_off(tmp_path: Path) -> None:
    kafka = _full(tmp_path, ssl_check_hostname=False)
    assert kafka_python.connection_config(kafka, "t")["ssl_check_hostname"] is False
    assert confluent.connection_config(kafka, "t")["ssl.endpoint.identification.algorithm"] == (
        "none"
    )


def test_kafka_python_admin_config_log_masks_passwords(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="kafka.admin.client")
    logging.getLogger("kafka.admin.client").debug(
        "Starting KafkaAdminClient with configuration: %s",
        kafka_python.connection_config(_full(tmp_path), "admin"),
    )
    assert "alice" in caplog.text
    assert "key-secret-1" not in caplog.text and "sasl-secret-2" not in caplog.text
