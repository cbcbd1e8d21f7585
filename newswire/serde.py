"""Avro serialisation of events (DESIGN §4).

Default wire format, no server needed: Avro *single-object encoding*
(``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint +
the binary datum). Every schema in ``schemas/`` — the current ones and their
earlier versions under ``schemas/history/`` — is known by fingerprint, so a
reader resolves any writer version to the current reader schema and old events
stay readable after a schema evolves.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from newswire.errors import SerdeError, UnknownSchemaError

__all__ = [
    "ARTICLE",
    "ENRICHED_ARTICLE",
    "SIGHTING",
    "Schema",
    "SchemaStore",
    "SingleObjectSerde",
    "schemas_dir",
]

ARTICLE = "newswire.Article"
ENRICHED_ARTICLE = "newswire.EnrichedArticle"
SIGHTING = "newswire.Sighting"

_MAGIC = b"\xc3\x01"
_HEADER_LEN = 10


def schemas_dir() -> Path:
    """The directory of ``.avsc`` files: package data when installed, ``schemas/`` in a checkout."""
    packaged = resources.files("newswire").joinpath("schemas")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class Schema:
    """One parsed Avro schema and its identity."""

    name: str
    parsed: Any
    canonical: str
    fingerprint: bytes
    path: Path
    current: bool

    @classmethod
    def load(cls, path: Path, *, current: bool) -> Schema:
        """Parse an ``.avsc`` file."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            parsed = parse_schema(raw)
        except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
            raise SerdeError(f"cannot load schema {path}: {exc}", path=str(path)) from exc
        canonical = to_parsing_canonical_form(parsed)
        # fastavro gives the CRC-64-AVRO fingerprint as hex of its little-endian bytes.
        digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        # fastavro's parsed record carries the full name (namespace or dotted name resolved).
        name = parsed["name"] if isinstance(parsed, dict) else str(parsed)
        return cls(name, parsed, canonical, digest, path, current)


@dataclass
class SchemaStore:
    """All known schemas: the current one per record name, every version by fingerprint."""

    current: dict[str, Schema] = field(default_factory=dict)
    by_fingerprint: dict[bytes, Schema] = field(default_factory=dict)

    @classmethod
    def from_dir(cls, directory: Path | None = None) -> SchemaStore:
        """Load ``*.avsc`` (current) and ``history/**/*.avsc`` (earlier versions)."""
        root = directory or schemas_dir()
        store = cls()
        for path in sorted(root.glob("*.avsc")):
            store.add(Schema.load(path, current=True))
        for path in sorted(root.glob("history/**/*.avsc")):
            store.add(Schema.load(path, current=False))
        if not store.current:
            raise SerdeError(f"no schemas found in {root}", path=str(root))
        return store

    def add(self, schema: Schema) -> None:
        """Register a schema version."""
        if schema.current:
            self.current[schema.name] = schema
        self.by_fingerprint.setdefault(schema.fingerprint, schema)

    def __iter__(self) -> Iterator[Schema]:
        return iter(self.by_fingerprint.values())


class SingleObjectSerde:
    """Avro single-object encoding with writer-schema lookup by fingerprint."""

    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store or SchemaStore.from_dir()
        self._headers = {
            name: _MAGIC + schema.fingerprint for name, schema in self.store.current.items()
        }

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode *record* with the current schema named *name*."""
        schema = self.store.current.get(name)
        if schema is None:
            raise UnknownSchemaError(f"no current schema named {name!r}", schema=name)
        out = io.BytesIO()
        out.write(self._headers[name])
        try:
            fastavro.schemaless_writer(out, schema.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerdeError(f"cannot encode {name}: {exc}", schema=name) from exc
        return out.getvalue()

    def writer_schema(self, data: bytes) -> Schema:
        """The schema that wrote *data*, from its single-object header."""
        if len(data) < _HEADER_LEN or data[:2] != _MAGIC:
            raise SerdeError(
                f"not Avro single-object encoded (starts with {bytes(data[:4])!r}, "
                f"{len(data)} bytes)"
            )
        schema = self.store.by_fingerprint.get(bytes(data[2:_HEADER_LEN]))
        if schema is None:
            raise UnknownSchemaError(
                f"unknown writer schema fingerprint {bytes(data[2:_HEADER_LEN]).hex()}",
                fingerprint=bytes(data[2:_HEADER_LEN]).hex(),
            )
        return schema

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Decode *data* into ``(record name, record)`` resolved to the current schema."""
        writer = self.writer_schema(data)
        reader = None if writer.current else self.store.current.get(writer.name)
        buf = io.BytesIO(data)
        buf.seek(_HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(
                buf, writer.parsed, reader.parsed if reader else None
            )
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
