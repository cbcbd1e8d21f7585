"""Schema evolution rules (DESIGN §4): only compatible changes.

A new version of a schema must be *fully* compatible with the previous one:

- backward: the new schema reads data the old one wrote (a new field needs a default);
- forward: the old schema reads data the new one writes (a removed field needed a default).

Both directions are checked the way a reader meets them in production: records
generated from the writer schema (fastavro) are encoded with it and resolved
with the reader schema.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable
from dataclasses import dataclass

import fastavro
from fastavro.utils import generate_many

from newswire.serde import Schema, SchemaStore

__all__ = ["Incompatibility", "check_pair", "check_store"]

_SAMPLES = 20


@dataclass(frozen=True)
class Incompatibility:
    """One way a schema version breaks another."""

    schema: str
    old: str
    new: str
    direction: str
    reason: str

    def __str__(self) -> str:
        return f"{self.schema}: {self.new} vs {self.old} ({self.direction}): {self.reason}"


def _resolves(writer: Schema, reader: Schema) -> str | None:
    """None if every sample written with *writer* reads with *reader*, else why not."""
    random.seed(0)  # generate_many draws from `random`: reproducible samples
    for record in generate_many(writer.parsed, _SAMPLES):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer.parsed, record)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises SchemaResolutionError and friends
            return f"{type(exc).__name__}: {exc}"
    return None


def check_pair(old: Schema, new: Schema) -> list[Incompatibility]:
    """Whether *new* may follow *old*: both directions."""
    found = []
    for direction, writer, reader in (("backward", old, new), ("forward", new, old)):
        reason = _resolves(writer, reader)
        if reason:
            found.append(Incompatibility(new.name, old.path.name, new.path.name, direction, reason))
    return found


def check_store(store: SchemaStore) -> tuple[list[tuple[Schema, Schema]], list[Incompatibility]]:
    """Check every current schema against each earlier version of the same record."""
    pairs = [
        (old, store.current[old.name])
        for old in store
        if not old.current and old.name in store.current
    ]
    problems = [p for old, new in pairs for p in check_pair(old, new)]
    return pairs, problems


def describe(schemas: Iterable[Schema]) -> list[tuple[str, str, str, str]]:
    """(name, version file, fingerprint, current?) rows for listing."""
    return [
        (s.name, str(s.path.name), s.fingerprint.hex(), "current" if s.current else "earlier")
        for s in sorted(schemas, key=lambda s: (s.name, not s.current, str(s.path)))
    ]
