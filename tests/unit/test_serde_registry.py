"""The registry wire format: Confluent interop both ways, caching, and the registry's errors.

Interop is proven against confluent-kafka's own AvroSerializer/AvroDeserializer
on its in-process ``mock://`` registry (no registry server installs here).
What the mock cannot do (refuse a schema, ask for credentials, answer the
compatibility endpoint) is checked over real HTTP against a small stand-in
that speaks the registry's REST protocol to the same confluent-kafka client
newswire uses for an ``http://`` URL.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from newswire import Consumer, Event
from newswire.errors import RegistryError, SerdeError, UnavailableError, UnknownSchemaError
from newswire.runner import Runner
from newswire.serde import ARTICLE, SchemaStore, SingleObjectSerde
from newswire.serde.registry import RegistrySerde, redact, subject
from newswire.settings import Settings
from newswire.testing import MemoryBroker, run_consumer
from newswire.topics import DLQ
from tests.unit.registry_http import Registry, serving
from tests.unit.support import record

RAW = "articles.raw"


def mock_client() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})


def value_of(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


# -- interop with confluent-kafka's own serializers -----------------------------------------------


def test_confluents_deserializer_reads_what_newswire_writes() -> None:
    client = mock_client()
    serde = RegistrySerde(client=client)
    original = record()
    data = serde.encode(ARTICLE, original, topic=RAW)
    registered = client.get_latest_version(subject(RAW))
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert AvroDeserializer(client)(data, value_of(RAW)) == original


def test_newswire_reads_what_confluents_serializer_writes() -> None:
    client = mock_client()
    serde = RegistrySerde(client=client)
    original = record()
    data = AvroSerializer(client, serde.store.get(ARTICLE).text)(original, value_of(RAW))
    assert serde.decode(data) == (ARTICLE, original)
    # The same schema under the same subject: the same id, so the very same bytes.
    assert serde.encode(ARTICLE, original, topic=RAW) == data


WIDGET_V1 = {
    "type": "record",
    "name": "Widget",
    "namespace": "test",
    "fields": [{"name": "id", "type": "string"}, {"name": "size", "type": "int"}],
}
WIDGET_V2 = {
    **WIDGET_V1,
    "fields": [*WIDGET_V1["fields"], {"name": "colour", "type": "string", "default": "blue"}],
}


def test_an_older_writer_from_the_registry_is_resolved_to_the_current_schema(
    tmp_path: Path,
) -> None:
    (tmp_path / "widget.avsc").write_text(json.dumps(WIDGET_V2))
    client = mock_client()
    serde = RegistrySerde(SchemaStore.from_dir(tmp_path), client=client)
    data = AvroSerializer(client, json.dumps(WIDGET_V1))({"id": "w", "size": 2}, value_of("w"))
    assert serde.decode(data) == ("test.Widget", {"id": "w", "size": 2, "colour": "blue"})
    assert serde.decode(data, ("colour",)) == ("test.Widget", {"colour": "blue"})


def test_a_schema_newswire_does_not_know_still_decodes_as_written() -> None:
    client = mock_client()
    serde = RegistrySerde(client=client)
    data = AvroSerializer(client, json.dumps(WIDGET_V1))({"id": "w", "size": 2}, value_of("w"))
    assert serde.decode(data) == ("test.Widget", {"id": "w", "size": 2})


def test_each_topic_gets_its_subject() -> None:
    client = mock_client()
    serde = RegistrySerde(client=client)
    serde.encode(ARTICLE, record(), topic=RAW)
    serde.encode(ARTICLE, record(), topic="articles.unique")
    assert sorted(client.get_subjects()) == ["articles.raw-value", "articles.unique-value"]


# -- the hot path ----------------------------------------------------------------------------------


class CountingClient(MockSchemaRegistryClient):
    """confluent-kafka's in-process registry, counting the calls newswire makes."""

    def __init__(self) -> None:
        super().__init__({"url": f"mock://{uuid.uuid4().hex}"})
        self.calls: list[str] = []

    def register_schema(self, *args: Any, **kwargs: Any) -> int:
        self.calls.append("register")
        return super().register_schema(*args, **kwargs)

    def get_schema(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("get_schema")
        return super().get_schema(*args, **kwargs)


def test_the_registry_is_asked_once_per_schema_not_per_record() -> None:
    client = CountingClient()
    writer, reader = RegistrySerde(client=client), RegistrySerde(client=client)
    values = [writer.encode(ARTICLE, record(title=f"T {i}"), topic=RAW) for i in range(50)]
    decoded = [reader.decode(v) for v in values] + [reader.decode(v, ("title",)) for v in values]
    assert [r["title"] for _, r in decoded[:3]] == ["T 0", "T 1", "T 2"]
    assert client.calls == ["register", "get_schema"]


# -- bad values ------------------------------------------------------------------------------------


def test_an_id_the_registry_does_not_know_is_an_unknown_schema_error() -> None:
    serde = RegistrySerde(client=mock_client())
    data = serde.encode(ARTICLE, record(), topic=RAW)
    forged = b"\x00" + (4242).to_bytes(4, "big") + data[5:]
    with pytest.raises(UnknownSchemaError, match="schema id 4242 is unknown") as caught:
        serde.decode(forged)
    assert isinstance(caught.value, SerdeError)  # so the runtime dead-letters the record


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\xc3\x01" + b"\x00" * 20, b"garbage!"])
def test_bytes_not_in_the_confluent_format_are_a_serde_error(data: bytes) -> None:
    serde = RegistrySerde(client=mock_client())
    with pytest.raises(SerdeError, match="not in the Confluent wire format"):
        serde.decode(data)


def test_single_object_bytes_are_refused_and_the_other_way_round() -> None:
    registry, single = RegistrySerde(client=mock_client()), SingleObjectSerde()
    with pytest.raises(SerdeError):
        registry.decode(single.encode(ARTICLE, record()))
    with pytest.raises(SerdeError, match="not Avro single-object"):
        single.decode(registry.encode(ARTICLE, record(), topic=RAW))


def test_encoding_without_a_topic_is_a_serde_error() -> None:
    serde = RegistrySerde(client=mock_client())
    with pytest.raises(SerdeError, match="needs the topic"):
        serde.encode(ARTICLE, record(), topic="")


def test_the_password_of_a_url_is_redacted() -> None:
    assert redact("http://bob:pw@reg.example:8081/x") == "http://bob:***@reg.example:8081/x"
    assert redact("http://reg.example:8081") == "http://reg.example:8081"


# -- a registry over HTTP --------------------------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[Registry]:
    with serving() as server:
        yield server


def http_serde(registry: Registry, **kwargs: Any) -> RegistrySerde:
    return RegistrySerde(url=registry.url, retries=0, **kwargs)


def test_over_http_the_id_the_registry_gives_is_the_header(registry: Registry) -> None:
    data = http_serde(registry).encode(ARTICLE, record(), topic=RAW)
    assert data[:5] == b"\x00" + (77).to_bytes(4, "big")
    ((method, path, _auth, body),) = registry.requests
    assert (method, path.split("?")[0]) == ("POST", "/subjects/articles.raw-value/versions")
    assert json.loads(body["schema"])["name"] == ARTICLE


def test_basic_auth_is_sent(registry: Registry) -> None:
    registry.user_info = "alice:s3cret"
    http_serde(registry, auth="alice:s3cret").encode(ARTICLE, record(), topic=RAW)
    assert registry.requests[-1][2] == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_wrong_credentials_are_a_registry_error(registry: Registry) -> None:
    registry.user_info = "alice:s3cret"
    with pytest.raises(RegistryError, match="not authorised") as caught:
        http_serde(registry, auth="alice:wrong").encode(ARTICLE, record(), topic=RAW)
    assert caught.value.retriable is False
    assert "wrong" not in str(caught.value)


def test_an_incompatible_schema_is_a_registry_error_naming_schema_and_subject(
    registry: Registry,
) -> None:
    registry.register_status = 409
    with pytest.raises(RegistryError, match=r"newswire\.Article.*'articles\.raw-value'.*incompat"):
        http_serde(registry).encode(ARTICLE, record(), topic=RAW)


def test_a_failing_registry_is_unavailable(registry: Registry) -> None:
    registry.register_status = 503
    with pytest.raises(UnavailableError, match="HTTP 503"):
        http_serde(registry).encode(ARTICLE, record(), topic=RAW)


def test_an_unreachable_registry_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serde = RegistrySerde(url=f"http://127.0.0.1:{port}", retries=0, timeout_s=2)
    with pytest.raises(UnavailableError, match=f"127.0.0.1:{port}") as caught:
        serde.decode(b"\x00\x00\x00\x00\x09" + b"\x00" * 10)
    assert caught.value.retriable is True


@pytest.mark.parametrize("answer", [True, False, None])
def test_check_asks_the_compatibility_endpoint(registry: Registry, answer: bool | None) -> None:
    registry.compatible = answer
    assert http_serde(registry).check(ARTICLE, topic=RAW) is answer
    ((_, path, _, body),) = registry.requests
    assert path.startswith("/compatibility/subjects/articles.raw-value/versions/latest")
    assert json.loads(body["schema"])["name"] == ARTICLE


def test_lookup_only_mode_does_not_register() -> None:
    client = mock_client()
    serde = RegistrySerde(client=client, auto_register=False)
    with pytest.raises(RegistryError, match="cannot register"):
        serde.encode(ARTICLE, record(), topic=RAW)
    client.register_schema(subject(RAW), RegistrySchema(serde.store.get(ARTICLE).text, "AVRO"))
    assert serde.decode(serde.encode(ARTICLE, record(), topic=RAW))[0] == ARTICLE


# -- in the runtime ---------------------------------------------------------------------------


class Forward(Consumer):
    name = "forward"
    topics = (RAW,)

    def handle_event(self, event: Event) -> None:
        self.emit("articles.out", event.value, key=event.key)


def test_the_runtime_dead_letters_a_record_of_an_unknown_schema_id() -> None:
    serde = RegistrySerde(client=mock_client())
    good = serde.encode(ARTICLE, record(), topic=RAW)
    forged = b"\x00" + (999).to_bytes(4, "big") + good[5:]
    result = run_consumer(Forward(), [forged, good], serde=serde)
    (letter,) = result.dead_letters
    assert letter.error_class == "UnknownSchemaError"
    assert "schema id 999" in letter.error_message
    assert [e.value.id for e in result.emitted] == [record()["id"]]


def test_the_runtime_retries_a_batch_while_the_registry_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serde = RegistrySerde(url=f"http://127.0.0.1:{port}", retries=0, timeout_s=1)
    broker = MemoryBroker()
    broker.append(RAW, b"\x00\x00\x00\x00\x07" + b"\x00" * 16)
    settings = Settings()
    settings.runner.retry_backoff_ms = 10
    runner = Runner(Forward(), settings, clients=broker, serde=serde)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        retried = runner.registry.get_sample_value(
            "newswire_consumer_records_in_total", {"consumer": "forward", "topic": RAW}
        )
    finally:
        runner.stop()
        thread.join(10)
    assert DLQ not in broker.topics or not any(broker.topics[DLQ])  # not the record's fault
    assert broker.committed.get("newswire.forward", {}) == {}  # nothing committed meanwhile
    assert retried is None  # never counted as processed
