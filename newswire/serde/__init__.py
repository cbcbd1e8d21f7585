"""Wire formats of events (DESIGN §4): the :class:`Serde` protocol and its modes.

- ``single-object`` (default, no server): Avro single-object encoding, ``C3 01``
  + the writer schema's 8-byte CRC-64-AVRO fingerprint + the datum; see
  :mod:`newswire.serde.single_object`.
- ``registry``: the Confluent Schema Registry wire format, magic byte 0 + the
  4-byte schema id + the datum, subjects ``<topic>-value``; see
  :mod:`newswire.serde.registry`.

:func:`serde_for` builds the one ``NEWSWIRE_SERDE__MODE`` names. A new wire
format is one module with an :class:`AvroSerde` subclass (or any class that
follows :class:`Serde`), registered in :data:`MODES` — or, from another
package, under the entry-point group ``newswire.serdes``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from newswire.errors import ConfigError
from newswire.serde._base import AvroSerde, Fields, RecordEncoder, Serde, Writer, project
from newswire.serde._schemas import (
    ARTICLE,
    ENRICHED_ARTICLE,
    SIGHTING,
    Schema,
    SchemaStore,
    schemas_dir,
)
from newswire.serde.single_object import SingleObjectSerde

if TYPE_CHECKING:
    from newswire.settings import SerdeSettings, Settings

__all__ = [
    "ARTICLE",
    "ENRICHED_ARTICLE",
    "MODES",
    "SIGHTING",
    "AvroSerde",
    "Fields",
    "RecordEncoder",
    "Schema",
    "SchemaStore",
    "Serde",
    "SingleObjectSerde",
    "Writer",
    "modes",
    "project",
    "schemas_dir",
    "serde_for",
]

#: The built-in wire formats: mode name -> "module:Class" (imported on use).
MODES: dict[str, str] = {
    "single-object": "newswire.serde.single_object:SingleObjectSerde",
    "registry": "newswire.serde.registry:RegistrySerde",
}

#: Entry-point group where other packages register wire formats.
SERDES = "newswire.serdes"


def modes() -> dict[str, str]:
    """Every wire format: the built-ins and those other packages register."""
    found = {ep.name: ep.value for ep in entry_points(group=SERDES)}
    return {**found, **MODES}


def serde_class(mode: str) -> type[Serde]:
    """The class of wire format *mode*."""
    known = modes()
    target = known.get(mode)
    if target is None:
        raise ConfigError(
            f"no serde mode {mode!r} (NEWSWIRE_SERDE__MODE; known: {', '.join(sorted(known))})",
            mode=mode,
        )
    module, _, attr = target.partition(":")
    try:
        cls: type[Serde] = getattr(import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load serde mode {mode!r} from {target}: {exc}") from exc
    return cls


def serde_for(settings: Settings | SerdeSettings, store: SchemaStore | None = None) -> Serde:
    """The serde ``NEWSWIRE_SERDE__MODE`` selects (default ``single-object``)."""
    from newswire.settings import Settings

    section = settings.serde if isinstance(settings, Settings) else settings
    return serde_class(section.mode).from_settings(section, store)
