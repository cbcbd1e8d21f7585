"""The wire-format contract (:class:`Serde`) and the Avro machinery both built-in formats share.

A wire format only decides the *header* in front of the Avro binary datum —
which bytes name the writer schema, and how a reader finds that schema from
them. Everything else (encoding, decoding with schema resolution, projected
decoding, appending fields to a datum) is :class:`AvroSerde`'s, so a new
format is one subclass with two methods: ``_header`` and ``_writer``.
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import fastavro
from fastavro.schema import parse_schema
from pydantic import BaseModel

from newswire.errors import SerdeError
from newswire.serde._schemas import Schema, SchemaStore

if TYPE_CHECKING:
    from typing import Self

    from newswire.settings import SerdeSettings

__all__ = ["AvroSerde", "Fields", "RecordEncoder", "Serde"]

#: The fields of a projected decode: a tuple or frozenset (hashable: it keys a cache).
Fields = tuple[str, ...] | frozenset[str]


@runtime_checkable
class Serde(Protocol):
    """A wire format: Avro records to Kafka values and back.

    Get the configured one with :func:`newswire.serde.serde_for` (settings
    ``NEWSWIRE_SERDE__MODE``, ``…__REGISTRY_URL``, ``…__REGISTRY_AUTH``); the
    runner, the publisher and the test kit already hold one, and no stage
    writes a wire header itself.

    **Encode** needs the topic, because the registry mode names its subject
    after it (``<topic>-value``): ``serde.encode(ENRICHED_ARTICLE, record,
    topic="articles.enriched")``. For many records of one kind, take
    ``write = serde.encoder(schema, topic=...)`` once and call ``write(record)``
    (no lookups per record; picklable, so worker processes can use it).

    **Decode** returns ``(record name, record)``, the record resolved to the
    current schema of that name (older writers get the new fields' defaults).
    Unreadable bytes raise :class:`~newswire.errors.SerdeError` (an unknown
    writer schema: :class:`~newswire.errors.UnknownSchemaError`); the runtime
    sends such a record to the DLQ.

    **Projected decode**, for stages that read a few fields: ``serde.decode(
    data, fields=FIELDS)`` with a module-level tuple ``FIELDS = ("id",
    "canonical_url", "title", "body")`` returns a dict of only those fields,
    2.5-3x cheaper than a full decode of an article (fastavro skips the
    rest; the reader schema is built once per writer and *fields*). A consumer
    gets it from the runtime by declaring ``fields = FIELDS`` on its class:
    ``event.record`` then holds only those fields (``event.value`` is still
    the whole record's bytes, to forward or :meth:`extend`; the runtime adds
    ``ingested_at`` for its latency metric). A field the writer's record type
    does not have is left out, so one tuple serves a consumer of several types.

    **Extend**, for stages that add fields to what they read:
    ``serde.extend(event.value, ENRICHED_ARTICLE, {"word_count": 120, …},
    topic="articles.enriched")`` is the input's datum with the new fields
    appended, under the header of the new schema — valid while the new schema
    is the input's fields followed by the new ones (as EnrichedArticle is
    Article's); otherwise it decodes, merges and re-encodes. *data* must be a
    value this serde decodes (the runtime already decoded ``event.value``).
    """

    #: The mode's name in ``NEWSWIRE_SERDE__MODE``.
    mode: ClassVar[str]
    store: SchemaStore

    @classmethod
    def from_settings(cls, settings: SerdeSettings, store: SchemaStore | None = None) -> Self:
        """The serde configured by *settings* (schemas from *store*, default ``schemas/``)."""
        ...

    def encode(self, schema: str, record: Mapping[str, Any] | BaseModel, *, topic: str) -> bytes:
        """*record* encoded with the current schema named *schema*, for *topic*."""
        ...

    def encoder(self, schema: str, *, topic: str) -> RecordEncoder:
        """A picklable ``record -> bytes`` for many records of *schema* on *topic*."""
        ...

    def decode(self, data: bytes, fields: Fields | None = None) -> tuple[str, dict[str, Any]]:
        """``(record name, record)``; only *fields* when given (a projected decode)."""
        ...

    def extend(self, data: bytes, schema: str, extra: Mapping[str, Any], *, topic: str) -> bytes:
        """*data*'s record with *extra*'s fields added, encoded as *schema* for *topic*."""
        ...

    def schema_of(self, data: bytes) -> str:
        """The record name of the schema that wrote *data* (reads only the header)."""
        ...

    def close(self) -> None:
        """Release connections (a registry client); the serde is not used afterwards."""
        ...


@dataclass(frozen=True)
class RecordEncoder:
    """Encodes records of one schema for one topic: a fixed header + the Avro datum.

    Picklable, so the publisher's worker processes encode without a registry
    connection of their own.
    """

    schema: str
    header: bytes
    parsed: Any = field(repr=False)

    def __call__(self, record: Mapping[str, Any] | BaseModel) -> bytes:
        # type() first: isinstance() through pydantic's metaclass costs ~0.24 µs, this 0.03.
        if type(record) is not dict and isinstance(record, BaseModel):
            record = record.model_dump()
        out = io.BytesIO()
        out.write(self.header)
        try:
            fastavro.schemaless_writer(out, self.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError(f"cannot encode {self.schema}: {exc}", schema=self.schema) from exc
        return out.getvalue()


@dataclass(eq=False)
class Writer:
    """A writer schema as a format found it from a header, with what decoding needs."""

    schema: Schema
    #: The parsed current schema of the same name to resolve to, or None when the
    #: writer is that schema (no resolution: the fast path) or has no current version.
    reader: Any
    #: The parsed schemas to read with when a projection is asked for, by fields.
    projections: dict[Fields, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The record's full name."""
        return self.schema.name


@dataclass(frozen=True)
class _Extension:
    header: bytes
    tail: Any  # the appended fields as a parsed record schema; None: re-encode in full


class AvroSerde(ABC):
    """Avro encoding and decoding behind a format-specific header.

    Subclasses set :attr:`mode` and :attr:`header_len` and implement
    :meth:`_header` (the header naming a schema on a topic) and :meth:`_writer`
    (the writer schema named by a value's header); both should cache, since
    they run once per record.
    """

    mode: ClassVar[str]
    #: Bytes in front of the datum.
    header_len: ClassVar[int]

    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store or SchemaStore.from_dir()
        self._encoders: dict[tuple[str, str], RecordEncoder] = {}
        self._extensions: dict[tuple[Writer, str, str], _Extension] = {}

    # -- what a format defines ---------------------------------------------------------------

    @abstractmethod
    def _header(self, schema: Schema, topic: str) -> bytes:
        """The header that names *schema* for values on *topic*."""

    @abstractmethod
    def _writer(self, data: bytes) -> Writer:
        """The writer schema named by *data*'s header; SerdeError if there is none."""

    def close(self) -> None:  # noqa: B027 - optional hook: most formats hold nothing
        """Nothing to release by default."""

    # -- the Serde protocol ------------------------------------------------------------------

    def encoder(self, schema: str, *, topic: str) -> RecordEncoder:
        """A picklable ``record -> bytes`` for many records of *schema* on *topic*."""
        encoder = self._encoders.get((schema, topic))
        if encoder is None:
            current = self.store.get(schema)
            encoder = RecordEncoder(schema, self._header(current, topic), current.parsed)
            self._encoders[(schema, topic)] = encoder
        return encoder

    def encode(self, schema: str, record: Mapping[str, Any] | BaseModel, *, topic: str) -> bytes:
        """*record* encoded with the current schema named *schema*, for *topic*."""
        encoder = self._encoders.get((schema, topic)) or self.encoder(schema, topic=topic)
        return encoder(record)

    def schema_of(self, data: bytes) -> str:
        """The record name of the schema that wrote *data* (reads only the header)."""
        return self._writer(data).name

    def decode(self, data: bytes, fields: Fields | None = None) -> tuple[str, dict[str, Any]]:
        """``(record name, record)`` resolved to the current schema; only *fields* if given."""
        writer = self._writer(data)
        if fields is None:
            reader = writer.reader
        else:
            reader = writer.projections.get(fields)
            if reader is None:
                reader = self._projection(writer, fields)
        buf = io.BytesIO(data)
        buf.seek(self.header_len)
        try:
            record = fastavro.schemaless_reader(buf, writer.schema.parsed, reader)
        except Exception as exc:  # fastavro raises many kinds on corrupt data
            raise SerdeError(
                f"corrupt {writer.name} datum: {type(exc).__name__}: {exc}", schema=writer.name
            ) from exc
        if buf.tell() != len(data):
            raise SerdeError(
                f"corrupt {writer.name} datum: {len(data) - buf.tell()} trailing bytes",
                schema=writer.name,
            )
        if not isinstance(record, dict):
            raise SerdeError(f"{writer.name} datum is not a record", schema=writer.name)
        return writer.name, record

    def extend(self, data: bytes, schema: str, extra: Mapping[str, Any], *, topic: str) -> bytes:
        """*data*'s record with *extra*'s fields added, encoded as *schema* for *topic*.

        Appends *extra* to the datum when *schema*'s fields are the writer's
        followed by new ones (Avro binary is the fields in order): ~5x cheaper
        than re-encoding an article. Otherwise decodes, merges, re-encodes.
        """
        writer = self._writer(data)
        extension = self._extensions.get((writer, schema, topic))
        if extension is None:
            extension = self._extension(writer, schema, topic)
        if extension.tail is None:
            _, record = self.decode(data)
            record.update(extra)
            return self.encode(schema, record, topic=topic)
        out = io.BytesIO()
        out.write(extension.header)
        out.write(memoryview(data)[self.header_len :])
        try:
            fastavro.schemaless_writer(out, extension.tail, extra)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError(f"cannot encode {schema}: {exc}", schema=schema) from exc
        return out.getvalue()

    # -- cached schema work ------------------------------------------------------------------

    def _projection(self, writer: Writer, fields: Fields) -> Any:
        base = self.store.current.get(writer.name) or writer.schema
        reader = parse_schema(project(base.parsed, fields))
        writer.projections[fields] = reader
        return reader

    def _extension(self, writer: Writer, schema: str, topic: str) -> _Extension:
        target = self.store.get(schema)
        header = self._header(target, topic)
        prefix = json.loads(writer.schema.canonical)["fields"]
        full = json.loads(target.canonical)["fields"]
        tail = None
        if len(full) > len(prefix) and full[: len(prefix)] == prefix:
            names = [f["name"] for f in target.parsed["fields"][len(prefix) :]]
            tail = parse_schema(
                project(target.parsed, tuple(names), name="newswire.internal.Extension")
            )
        extension = _Extension(header, tail)
        self._extensions[(writer, schema, topic)] = extension
        return extension


# -- projections -------------------------------------------------------------------------------

_NAMED = ("record", "error", "enum", "fixed")


def project(parsed: Any, fields: Collection[str], *, name: str | None = None) -> dict[str, Any]:
    """A record schema of *parsed*'s *fields* only (in schema order), self-contained.

    Fields the schema does not have are ignored. A named type defined in a
    field left out is defined again at its first use among the kept fields, so
    the projection parses on its own.
    """
    # A field the schema lacks is left out: a consumer reading several record types
    # names the fields it wants of each.
    wanted = set(fields)
    definitions: dict[str, Any] = {}
    _collect(parsed, definitions)
    defined: set[str] = {parsed["name"]}

    def inline(schema: Any) -> Any:
        if isinstance(schema, str):
            if schema in definitions and schema not in defined:
                return inline(definitions[schema])
            return schema
        if isinstance(schema, list):
            return [inline(s) for s in schema]
        if not isinstance(schema, dict):
            return schema
        kind = schema.get("type")
        if kind in _NAMED:
            if schema["name"] in defined:
                return schema["name"]
            defined.add(schema["name"])
            copy = _public(schema)
            if "fields" in copy:
                copy["fields"] = [
                    {**_public(f), "type": inline(f["type"])} for f in schema["fields"]
                ]
            return copy
        if kind == "array":
            return {**_public(schema), "items": inline(schema["items"])}
        if kind == "map":
            return {**_public(schema), "values": inline(schema["values"])}
        return _public(schema)

    kept = [
        {**_public(f), "type": inline(f["type"])} for f in parsed["fields"] if f["name"] in wanted
    ]
    return {"type": "record", "name": name or parsed["name"], "fields": kept}


def _public(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if not k.startswith("__")}


def _collect(schema: Any, into: dict[str, Any]) -> None:
    """Every named type defined in *schema*, by full name."""
    if isinstance(schema, list):
        for s in schema:
            _collect(s, into)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED:
            into.setdefault(schema["name"], schema)
            for f in schema.get("fields", ()):
                _collect(f["type"], into)
        elif kind == "array":
            _collect(schema["items"], into)
        elif kind == "map":
            _collect(schema["values"], into)
