"""``registry``: the Confluent Schema Registry wire format, for Kafka Connect, ksqlDB, Flink.

A value is magic byte ``0`` + the writer schema's 4-byte big-endian registry
id + the Avro binary datum. Schemas are registered under the subject
``<topic>-value`` (TopicNameStrategy, the Confluent default) on first use —
or ahead of time by ``newswire schemas register`` — through confluent-kafka's
schema-registry client, which also serves ``mock://<name>`` URLs in process
(one registry per client object: share the serde, or its client, in tests).

Ids are cached both ways (schema and topic → id for encoding, id → parsed
writer for decoding), so the registry is asked once per schema, never per
record. A writer schema whose record name has a current version in
``schemas/`` is resolved to it, as in single-object mode.

Errors: an id the registry does not know is an
:class:`~newswire.errors.UnknownSchemaError` (the record goes to the DLQ); a
registry that refuses (incompatible schema, bad credentials) a
:class:`~newswire.errors.RegistryError`; one that cannot be reached an
:class:`~newswire.errors.UnavailableError` (retried by the runtime).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from newswire.errors import (
    ConfigError,
    RegistryError,
    SerdeError,
    UnavailableError,
    UnknownSchemaError,
)
from newswire.serde._base import AvroSerde, Writer
from newswire.serde._schemas import Schema, SchemaStore

if TYPE_CHECKING:
    from typing import Self

    from newswire.settings import SerdeSettings

__all__ = ["MAGIC", "RegistrySerde", "redact", "subject"]

#: The first byte of the Confluent wire format.
MAGIC = b"\x00"


def subject(topic: str) -> str:
    """The subject of *topic*'s values (TopicNameStrategy)."""
    return f"{topic}-value"


class RegistrySerde(AvroSerde):
    """Confluent wire format through a schema registry (confluent-kafka's client)."""

    mode: ClassVar[str] = "registry"
    header_len: ClassVar[int] = 5

    def __init__(
        self,
        store: SchemaStore | None = None,
        *,
        url: str | None = None,
        auth: str | None = None,
        client: SchemaRegistryClient | None = None,
        auto_register: bool = True,
        timeout_s: float = 10.0,
        retries: int = 3,
    ) -> None:
        super().__init__(store)
        if client is None:
            if not url:
                raise ConfigError(
                    "serde mode 'registry' needs a registry URL (NEWSWIRE_SERDE__REGISTRY_URL)"
                )
            client = _client(url, auth, timeout_s, retries)
        self.client = client
        self.url = redact(url or ",".join(getattr(client, "base_urls", ())) or "?")
        self.auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}
        self._by_id: dict[bytes, Writer] = {}
        self._lock = threading.Lock()  # emit() may run on several threads

    @classmethod
    def from_settings(cls, settings: SerdeSettings, store: SchemaStore | None = None) -> Self:
        """A client for ``registry_url``, with ``registry_auth`` (``user:password``) if set."""
        auth = settings.registry_auth.get_secret_value() if settings.registry_auth else None
        return cls(
            store,
            url=settings.registry_url,
            auth=auth,
            auto_register=settings.registry_auto_register,
            timeout_s=settings.registry_timeout_s,
            retries=settings.registry_retries,
        )

    def close(self) -> None:
        """Close the client's HTTP connections."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    # -- registry calls (once per schema) ----------------------------------------------------

    def register(self, schema: str, *, topic: str) -> int:
        """Register the current *schema* under ``<topic>-value`` (or look it up); its id."""
        key = (schema, topic)
        schema_id = self._ids.get(key)
        if schema_id is not None:
            return schema_id
        current = self.store.get(schema)
        candidate = RegistrySchema(current.text, "AVRO")
        name = subject(topic)
        with self._call(f"register {schema} under subject {name!r}", schema=schema, subject=name):
            if self.auto_register:
                schema_id = int(self.client.register_schema(name, candidate))
            else:
                schema_id = int(self.client.lookup_schema(name, candidate).schema_id or 0)
        self._ids[key] = schema_id
        return schema_id

    def check(self, schema: str, *, topic: str) -> bool | None:
        """Whether *schema* may be registered under ``<topic>-value`` (the registry's
        compatibility endpoint, against the latest version); None if the subject is new."""
        name = subject(topic)
        candidate = RegistrySchema(self.store.get(schema).text, "AVRO")
        with self._call(f"check {schema} against subject {name!r}", schema=schema, subject=name):
            try:
                return bool(self.client.test_compatibility(name, candidate))
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    return None  # no version yet: anything may be registered
                raise

    def _call(self, what: str, **context: Any) -> _RegistryCall:
        return _RegistryCall(self.url, what, context)

    # -- the wire format ---------------------------------------------------------------------

    def _header(self, schema: Schema, topic: str) -> bytes:
        if not topic:
            raise SerdeError(
                f"cannot encode {schema.name}: the registry mode needs the topic "
                f"(its subject is <topic>-value)",
                schema=schema.name,
            )
        with self._lock:
            schema_id = self.register(schema.name, topic=topic)
        return MAGIC + schema_id.to_bytes(4, "big")

    def _writer(self, data: bytes) -> Writer:
        writer = self._by_id.get(data[1:5])
        if writer is not None and data[0] == 0:  # found: so at least 5 bytes long
            return writer
        if len(data) < self.header_len or data[:1] != MAGIC:
            raise SerdeError(
                f"not in the Confluent wire format (starts with {bytes(data[:4])!r}, "
                f"{len(data)} bytes)"
            )
        with self._lock:
            return self._fetch(bytes(data[1:5]))

    def _fetch(self, key: bytes) -> Writer:
        writer = self._by_id.get(key)
        if writer is not None:
            return writer
        schema_id = int.from_bytes(key, "big")
        with self._call(f"fetch schema id {schema_id}", schema_id=schema_id):
            try:
                found = self.client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    raise UnknownSchemaError(
                        f"schema id {schema_id} is unknown to the registry at {self.url}",
                        schema_id=schema_id,
                    ) from exc
                raise
        if (found.schema_type or "AVRO") != "AVRO":
            raise UnknownSchemaError(
                f"schema id {schema_id} is a {found.schema_type} schema, not Avro",
                schema_id=schema_id,
            )
        if found.references:
            raise UnknownSchemaError(
                f"schema id {schema_id} uses schema references, which newswire does not resolve",
                schema_id=schema_id,
            )
        try:
            raw = json.loads(found.schema_str or "")
        except (TypeError, ValueError) as exc:
            raise UnknownSchemaError(
                f"schema id {schema_id}: not JSON: {exc}", schema_id=schema_id
            ) from exc
        schema = Schema.from_json(raw, path=Path(f"registry-id-{schema_id}"), current=False)
        current = self.store.current.get(schema.name)
        # The writer is the current schema (the common case): no resolution per record.
        same = current is not None and current.canonical == schema.canonical
        reader = None if same or current is None else current.parsed
        writer = Writer(current if same and current is not None else schema, reader)
        self._by_id[key] = writer
        return writer


def redact(url: str) -> str:
    """*url* without the password of its userinfo, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _RegistryCall:
    """Turns a failed registry call into RegistryError (refused) or UnavailableError (down)."""

    def __init__(self, url: str, what: str, context: dict[str, Any]) -> None:
        self.url, self.what, self.context = url, what, context

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, SerdeError | RegistryError | UnavailableError):
            return
        if not isinstance(exc, Exception):
            return
        where = f"schema registry {self.url}: cannot {self.what}"
        if isinstance(exc, SchemaRegistryError):
            status = exc.http_status_code
            reason = f"HTTP {status}, error {exc.error_code}: {exc.error_message}"
            if status == 409:
                reason = f"incompatible with the subject's versions ({reason})"
            elif status in (401, 403):
                reason = f"not authorised; check NEWSWIRE_SERDE__REGISTRY_AUTH ({reason})"
            if status >= 500 or status == -1:
                raise UnavailableError(f"{where}: {reason}", url=self.url, **self.context) from exc
            raise RegistryError(
                f"{where}: {reason}", url=self.url, status=status, **self.context
            ) from exc
        raise UnavailableError(
            f"{where}: {type(exc).__name__}: {exc}", url=self.url, **self.context
        ) from exc


def _client(url: str, auth: str | None, timeout_s: float, retries: int) -> SchemaRegistryClient:
    conf: dict[str, Any] = {"url": url}
    if not url.startswith("mock://"):
        conf["timeout"] = timeout_s
        conf["max.retries"] = retries
    if auth:
        if ":" not in auth:
            raise ConfigError("NEWSWIRE_SERDE__REGISTRY_AUTH must be user:password (no ':' found)")
        conf["basic.auth.user.info"] = auth
    try:
        return SchemaRegistryClient.new_client(conf)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"schema registry {url!r}: {exc}", url=url) from exc
