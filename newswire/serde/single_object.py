"""``single-object``: Avro single-object encoding, no server (the default wire format).

A value is ``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO
fingerprint + the binary datum (Avro specification, "Single-object
encoding"). Every schema in ``schemas/`` and ``schemas/history/`` is known by
its fingerprint, so a reader resolves any writer version to the current
schema and old events stay readable after a schema evolves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from newswire.errors import SerdeError, UnknownSchemaError
from newswire.serde._base import AvroSerde, RecordEncoder, Writer
from newswire.serde._schemas import Schema, SchemaStore

if TYPE_CHECKING:
    from typing import Self

    from newswire.settings import SerdeSettings

__all__ = ["MAGIC", "SingleObjectSerde"]

#: The two marker bytes of the single-object encoding.
MAGIC = b"\xc3\x01"


class SingleObjectSerde(AvroSerde):
    """Avro single-object encoding with writer-schema lookup by fingerprint."""

    mode: ClassVar[str] = "single-object"
    header_len: ClassVar[int] = 10

    def __init__(self, store: SchemaStore | None = None) -> None:
        super().__init__(store)
        # Built once: a decode is one slice and one dict lookup before fastavro.
        self._by_fingerprint = {
            schema.fingerprint: Writer(schema, self._reader_for(schema)) for schema in self.store
        }

    @classmethod
    def from_settings(cls, settings: SerdeSettings, store: SchemaStore | None = None) -> Self:
        """Single-object encoding needs no settings."""
        return cls(store)

    def _reader_for(self, writer: Schema) -> object:
        if writer.current:
            return None
        current = self.store.current.get(writer.name)
        return current.parsed if current is not None else None

    # The header does not depend on the topic: it is optional here (handy in tests),
    # and one encoder serves every topic.
    def encode(
        self, schema: str, record: Mapping[str, Any] | BaseModel, *, topic: str = ""
    ) -> bytes:
        """*record* encoded with the current schema named *schema* (*topic* is not used)."""
        return super().encode(schema, record, topic="")

    def encoder(self, schema: str, *, topic: str = "") -> RecordEncoder:
        """A picklable ``record -> bytes`` for *schema* (*topic* is not used)."""
        return super().encoder(schema, topic="")

    def extend(
        self, data: bytes, schema: str, extra: Mapping[str, Any], *, topic: str = ""
    ) -> bytes:
        """*data*'s record with *extra* added, encoded as *schema* (*topic* is not used)."""
        return super().extend(data, schema, extra, topic="")

    def _header(self, schema: Schema, topic: str) -> bytes:
        return MAGIC + schema.fingerprint

    def _writer(self, data: bytes) -> Writer:
        if len(data) < self.header_len or not data.startswith(MAGIC):
            raise SerdeError(
                f"not Avro single-object encoded (starts with {bytes(data[:4])!r}, "
                f"{len(data)} bytes)"
            )
        writer = self._by_fingerprint.get(data[2:10])
        if writer is None:
            raise UnknownSchemaError(
                f"unknown writer schema fingerprint {bytes(data[2:10]).hex()}",
                fingerprint=bytes(data[2:10]).hex(),
            )
        return writer
