"""The ``Source`` contract: where input documents come from.

A source yields :class:`Document` (a raw field mapping, not yet validated) or
:class:`Reject` (something it could not even parse). The producer validates
documents into :class:`~newswire.model.Article` and reports rejects; a source
never raises for one bad input and never stops the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["Document", "Reject", "RejectsFile", "Source"]


@dataclass(frozen=True)
class Document:
    """One input document: its fields (seed names) and where it came from."""

    origin: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Reject:
    """An input that cannot become an article: where, which field, why."""

    origin: str
    field: str
    reason: str
    kind: str = "invalid"

    def __str__(self) -> str:
        where = f" field {self.field!r}:" if self.field else ""
        return f"{self.origin}:{where} {self.reason}"


class Source:
    """Base of every source; ``name`` is its ``--format``."""

    name: str = ""

    def count(self) -> int | None:
        """How many items will be read, if known up front (for the progress bar)."""
        return None

    def __iter__(self) -> Iterator[Document | Reject]:
        raise NotImplementedError


class RejectsFile:
    """Appends one JSON line per reject; the file is only created when needed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._out: IO[str] | None = None
        self.count = 0

    def write(self, reject: Reject) -> None:
        """Record *reject*."""
        self.count += 1
        if self.path is None:
            return
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("a", encoding="utf-8")
        line = {**asdict(reject), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Flush and close."""
        if self._out is not None:
            self._out.close()
            self._out = None
