"""The Avro contracts in ``schemas/``: parsed schemas, their fingerprints, their versions.

Every schema in ``schemas/`` — the current ones and their earlier versions
under ``schemas/history/`` — is known by its CRC-64-AVRO fingerprint, so a
reader resolves any writer version to the current reader schema and old
events stay readable after a schema evolves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from newswire.errors import SerdeError, UnknownSchemaError
from newswire.model import SCHEMA_NAMES, Article, EnrichedArticle, Sighting

__all__ = ["ARTICLE", "ENRICHED_ARTICLE", "SIGHTING", "Schema", "SchemaStore", "schemas_dir"]

# The record names come from the one model → schema map (newswire.model.SCHEMA_NAMES).
ARTICLE = SCHEMA_NAMES[Article]
ENRICHED_ARTICLE = SCHEMA_NAMES[EnrichedArticle]
SIGHTING = SCHEMA_NAMES[Sighting]


def schemas_dir() -> Path:
    """The directory of ``.avsc`` files: package data when installed, ``schemas/`` in a checkout."""
    packaged = resources.files("newswire").joinpath("schemas")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas"


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
        except (OSError, ValueError) as exc:
            raise SerdeError(f"cannot load schema {path}: {exc}", path=str(path)) from exc
        return cls.from_json(raw, path=path, current=current)

    @classmethod
    def from_json(cls, raw: Any, *, path: Path, current: bool) -> Schema:
        """Parse a schema given as JSON data (a file's content, or a registry's answer)."""
        try:
            parsed = parse_schema(raw)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
            raise SerdeError(f"cannot parse schema {path}: {exc}", path=str(path)) from exc
        canonical = to_parsing_canonical_form(parsed)
        # fastavro gives the CRC-64-AVRO fingerprint as hex of its little-endian bytes.
        digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        # fastavro's parsed record carries the full name (namespace or dotted name resolved).
        name = parsed["name"] if isinstance(parsed, dict) else str(parsed)
        return cls(name, parsed, canonical, digest, path, current)

    @property
    def text(self) -> str:
        """The schema as JSON text with docs and defaults (what a registry is given)."""
        return json.dumps(_plain(self.parsed), separators=(",", ":"))


def _plain(value: Any) -> Any:
    """*value* without fastavro's private ``__…`` keys."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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

    def get(self, name: str) -> Schema:
        """The current schema named *name*."""
        schema = self.current.get(name)
        if schema is None:
            known = ", ".join(sorted(self.current))
            raise UnknownSchemaError(
                f"no current schema named {name!r} (known: {known})", schema=name
            )
        return schema

    def __iter__(self) -> Iterator[Schema]:
        return iter(self.by_fingerprint.values())
