"""The ``Source`` contract: where input documents come from.

A source yields :class:`Document` (a raw field mapping with the seed document's
field names, not yet validated) or :class:`Reject` (something it could not even
parse). The publisher validates documents into :class:`~newswire.model.Article`
and reports rejects; a source never raises for one bad input and never stops
the others.

Three optional parts of the contract make a source fast or long-running:

- :meth:`Source.split` cuts a finite source into independent, picklable parts
  (chunks of files, byte ranges of a JSON-lines file). The publisher parses,
  validates and encodes the parts in worker processes (``--workers``); order
  across parts is not kept, and need not be: every article is keyed by its id.
- A source that runs for ever (a feed follower) yields a :class:`Checkpoint`
  whenever what it yielded so far should be made durable. The publisher then
  flushes the producer and calls :meth:`Source.commit` with the checkpoint's
  token and whether every record was acknowledged, like Kafka Connect's
  ``SourceTask.commit()``: the source remembers what is safely sent only then
  (at-least-once).
- ``suffixes`` / ``schemes`` / ``stdin`` / :meth:`Source.sniff` let
  ``--format auto`` pick the source for a path (:func:`detect_file`, and
  :func:`scan` inside directories, which also says what it skipped and why),
  and :meth:`Source.from_paths` builds one from command-line paths and the
  producer settings. A ``.gz`` file is recognised by the name without ``.gz``
  or by its decompressed first bytes; :func:`read_file_limited` decompresses it.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from newswire.settings import ProducerSettings

__all__ = [
    "Checkpoint",
    "Document",
    "Reject",
    "RejectsFile",
    "Scan",
    "Source",
    "detect_file",
    "file_sizes",
    "gunzip_limited",
    "read_file_limited",
    "scan",
    "walk",
]

#: Names a directory walk never yields (project files, not articles).
SKIP_NAMES = frozenset({"readme.md", "readme.txt", "license.txt", "license.md", "changelog.md"})
GZIP_MAGIC = b"\x1f\x8b"
#: How much of a file of unknown type is read to recognise it.
SNIFF_BYTES = 512

#: Why :func:`scan` skipped a file (the keys of :attr:`Scan.skipped`).
SKIP_HIDDEN = "hidden"
SKIP_PROJECT_FILE = "project file (README, LICENSE…)"
SKIP_EMPTY = "empty, no suffix to go by"
SKIP_UNRECOGNISED = "not recognised by any source"
SKIP_UNREADABLE = "unreadable"


def _where(origin: str, line: int | None, entry: int | None) -> str:
    where = origin
    if line is not None:
        where += f":{line}"
    if entry is not None:
        where += f" entry {entry}"
    return where


@dataclass(frozen=True)
class Document:
    """One input document: its fields (seed names) and where it came from.

    ``origin`` is the file path or feed URL (it becomes the record's ``source``);
    ``line`` (1-based, line-oriented inputs) or ``entry`` (1-based, feeds) say
    where in it.
    """

    origin: str
    fields: dict[str, Any]
    line: int | None = None
    entry: int | None = None

    @property
    def where(self) -> str:
        """``path``, ``path:12`` or ``url entry 3``: for reports."""
        return _where(self.origin, self.line, self.entry)


@dataclass(frozen=True)
class Reject:
    """An input that cannot become an article: where, which field, why.

    ``kind`` is the machine-readable reason (the ``reason`` label of
    ``newswire_producer_rejected_total``); ``reason`` is the sentence for people.
    """

    origin: str
    field: str
    reason: str
    kind: str = "invalid"
    line: int | None = None
    entry: int | None = None

    @property
    def where(self) -> str:
        """``path``, ``path:12`` or ``url entry 3``."""
        return _where(self.origin, self.line, self.entry)

    def __str__(self) -> str:
        what = f" field {self.field!r}:" if self.field else ""
        return f"{self.where}:{what} {self.reason}"


@dataclass(frozen=True)
class Checkpoint:
    """Yielded by a long-running source: make everything yielded so far durable.

    The publisher flushes, then calls ``source.commit(token, ok)``.
    """

    token: Any = None


class Source:
    """Base of every source; ``name`` is its ``--format``.

    Subclasses implement ``__iter__``; the rest has working defaults.
    """

    name: str = ""
    #: File name endings this source reads, for ``--format auto`` (lower case).
    suffixes: tuple[str, ...] = ()
    #: URL schemes this source reads (``http``…), for ``--format auto``.
    schemes: tuple[str, ...] = ()
    #: Whether ``-`` (standard input) is a path this source reads.
    stdin: bool = False
    #: This source's own settings, loaded from ``NEWSWIRE_<NAME>__<FIELD>`` (None: none).
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: The loaded ``settings_model`` (set by the runtime after :meth:`from_paths`).
    config: Any = None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """Whether the first bytes of a file of unknown type look like this format."""
        return False

    @classmethod
    def from_paths(cls, paths: Sequence[str], settings: ProducerSettings) -> Source:
        """Build the source for command-line *paths* (files, directories, URLs, ``-``)."""
        return cls(paths)  # type: ignore[call-arg]

    def count(self) -> int | None:
        """How many items (documents, lines, entries) will be read, when that is cheap
        to know up front; None otherwise. For the progress bar's total and ETA."""
        return None

    def size(self) -> int | None:
        """How many bytes the inputs hold (file sizes), when known; for the progress bar."""
        return None

    def __iter__(self) -> Iterator[Document | Reject | Checkpoint]:
        raise NotImplementedError

    def split(self) -> Iterable[Source] | None:
        """Independent picklable parts to read in worker processes, or None: read me here.

        Every item of the source must come out of exactly one part.
        """
        return None

    def bind_metrics(self, registry: CollectorRegistry, *, producer: str, topic: str) -> None:
        """Called by the publisher before reading: register the source's own series."""

    def commit(self, token: Any, ok: bool) -> None:
        """Called after a :class:`Checkpoint`: everything before it was flushed.

        *ok* is False when some record since the previous checkpoint was not
        acknowledged by the broker (it will be reported; do not remember it).
        """


def walk(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under *root* ending in one of *suffixes* (lower case), recursively.

    A ``.gz`` ending is ignored (``a.jsonl.gz`` is a JSON-lines file). Hidden
    files and directories and project files (README, LICENSE…) are skipped. The
    order is the file system's: sort the result for a stable one.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            lowered = name.lower()
            if name.startswith(".") or lowered in SKIP_NAMES:
                continue
            if lowered.removesuffix(".gz").endswith(suffixes):
                yield Path(dirpath, name)


def file_sizes(paths: Iterable[str | Path]) -> int | None:
    """The total size of *paths*, or None if one is not a readable local file."""
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except (OSError, ValueError):
            return None
    return total


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """Decompress gzip *data*; ``ValueError`` if it would exceed *max_bytes*, ``zlib.error``
    if it is corrupt. Stops at *max_bytes* + 1, so a gzip bomb costs nothing."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, max_bytes + 1)
    if len(out) > max_bytes:
        raise ValueError(f"uncompressed, it is over the limit of {max_bytes} bytes")
    return out


def _heads(path: Path) -> list[bytes]:
    """The first bytes of *path*: decompressed first when it is gzip, then as they are
    (``OSError`` if unreadable)."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if head[:2] != GZIP_MAGIC:
        return [head]
    try:
        # A prefix of the stream: decompress what there is, never more than needed.
        plain = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(head, SNIFF_BYTES)
    except zlib.error:
        plain = b""
    # The gzip bytes too, for a source that reads gzip itself to claim a corrupt
    # stream (and then report what is wrong with it).
    return [plain, head] if plain else [head]


def _plain_name(path: Path) -> str:
    """The lower-case file name without a ``.gz`` ending (``heise.xml.gz`` → ``heise.xml``)."""
    return path.name.lower().removesuffix(".gz")


def detect_file(path: Path, classes: Mapping[str, type[Source]]) -> tuple[str | None, str]:
    """``(source name, "")`` for a file, by suffix, else by its first bytes; or
    ``(None, why)`` when no source in *classes* recognises it."""
    name = _plain_name(path)
    found = next((n for n, c in classes.items() if c.suffixes and name.endswith(c.suffixes)), None)
    if found is not None:
        return found, ""
    try:
        heads = _heads(path)
    except OSError as exc:
        why = SKIP_UNREADABLE if exc.strerror is None else f"{SKIP_UNREADABLE}: {exc.strerror}"
        return None, why
    if not heads[0].strip():
        return None, SKIP_EMPTY
    for head in heads:
        found = next((n for n, c in classes.items() if c.sniff(head)), None)
        if found is not None:
            return found, ""
    return None, SKIP_UNRECOGNISED


@dataclass
class Scan:
    """What :func:`scan` found under some directories: files by source name, and what it
    skipped — a count per reason and ``(path, reason)`` of each."""

    files: dict[str, list[str]]
    skipped: Counter[str]
    skipped_paths: list[tuple[str, str]]


def scan(roots: Iterable[Path], classes: Mapping[str, type[Source]]) -> Scan:
    """Every file under *roots* (recursively, sorted) assigned to the source that reads it.

    A file is matched by suffix (``.gz`` ignored), else sniffed by every source in
    *classes* (gzip decompressed first). Hidden files and directories (one count
    each: their contents are not walked) and project files are skipped, and so is
    what no source recognises; :class:`Scan` says which and why.
    """
    result = Scan({}, Counter(), [])

    def skip(path: str, why: str) -> None:
        result.skipped[why] += 1
        result.skipped_paths.append((path, why))

    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for hidden in [d for d in dirnames if d.startswith(".")]:
                skip(os.path.join(dirpath, hidden), SKIP_HIDDEN)
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if name.startswith("."):
                    skip(path, SKIP_HIDDEN)
                    continue
                if name.lower() in SKIP_NAMES:
                    skip(path, SKIP_PROJECT_FILE)
                    continue
                found, why = detect_file(Path(path), classes)
                if found is None:
                    skip(path, why)
                else:
                    result.files.setdefault(found, []).append(path)
    return result


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

    def flush(self) -> None:
        """Make what was written visible to readers (a long-running producer)."""
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        """Flush and close."""
        if self._out is not None:
            self._out.close()
            self._out = None


def read_file_limited(
    path: Path, origin: str, max_bytes: int, what: str = "document"
) -> bytes | Reject:
    """The bytes of *path* (decompressed when it is gzip), or a :class:`Reject` naming
    *origin* when it is larger than *max_bytes* (checked before reading, and again
    after decompressing), corrupt gzip, or cannot be read."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Reject(
                origin,
                "",
                f"{what} is {size} bytes, over the limit of {max_bytes} bytes",
                kind="too_large",
            )
        data = path.read_bytes()
    except OSError as exc:
        return Reject(origin, "", f"cannot read: {exc.strerror or exc}", kind="io")
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gunzip_limited(data, max_bytes)
    except zlib.error as exc:
        return Reject(origin, "", f"corrupt gzip data: {exc}", kind="format")
    except ValueError as exc:
        return Reject(origin, "", f"{what} {exc}", kind="too_large")
