"""JSON lines: one article per line, a JSON object with the seed document's field names.

``-`` reads standard input; gzip-compressed files are decompressed as they are
read (the line limit applies to the decompressed lines). Blank lines are
skipped; every other line that cannot become a document (invalid JSON, not an
object, not UTF-8, NUL bytes, longer than ``max_document_bytes``) is rejected
with its line number.

For speed the file is cut into parts of about ``chunk_bytes`` at line
boundaries (:meth:`JsonLinesSource.split`); worker processes parse them. A line
too long to keep is skipped while cutting, without holding it in memory.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import select
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, cast

import orjson

from newswire.settings import ProducerSettings
from newswire.source import GZIP_MAGIC, Checkpoint, Document, Reject, Source, file_sizes, walk

__all__ = ["JsonLinesSource"]

STDIN = "-"
_STDIN_ORIGIN = "<stdin>"
_BOM = b"\xef\xbb\xbf"
#: Inputs up to this size get their lines counted up front, for the progress bar
#: (about 0.1 s: the files are then in the page cache for the real read).
COUNT_MAX_BYTES = 256 * 1024 * 1024

log = logging.getLogger(__name__)


class JsonLinesPart(Source):
    """A run of whole lines of one JSON-lines input, starting at line ``first_line``."""

    name = "jsonl"

    def __init__(self, origin: str, first_line: int, data: bytes, max_bytes: int) -> None:
        self.origin = origin
        self.first_line = first_line
        self.data = data
        self.max_bytes = max_bytes

    def size(self) -> int:
        """The part's bytes (a small part is encoded without a worker process)."""
        return len(self.data)

    def __iter__(self) -> Iterator[Document | Reject]:
        origin = self.origin
        for number, raw in enumerate(self.data.split(b"\n"), start=self.first_line):
            try:
                item = self.line(number, raw)
            except Exception as exc:  # a parser bug must cost this line only, not the part
                log.exception("%s:%d: unexpected error while parsing", origin, number)
                reason = f"cannot parse: {type(exc).__name__}: {exc}"
                item = Reject(origin, "", reason, kind="error", line=number)
            if item is not None:
                yield item

    def line(self, number: int, raw: bytes) -> Document | Reject | None:
        """The document on line *number* (its bytes *raw*), a reject, or None for a blank line."""
        origin, limit = self.origin, self.max_bytes
        if len(raw) > limit:
            return Reject(
                origin,
                "",
                f"line is {len(raw)} bytes, over the limit of {limit} bytes",
                kind="too_large",
                line=number,
            )
        if not raw.strip():
            return None
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if b"\x00" in raw:
            return Reject(origin, "", "binary data (NUL bytes)", kind="binary", line=number)
        try:
            # orjson checks UTF-8 itself; it refuses nesting deeper than 1024 levels
            # (the stdlib parser dies of RecursionError instead) and NaN/Infinity.
            fields = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return Reject(
                    origin,
                    "",
                    f"not UTF-8 text: invalid byte at column {bad.start + 1}",
                    kind="encoding",
                    line=number,
                )
            return Reject(
                origin,
                "",
                f"invalid JSON at column {exc.colno}: {exc.msg}",
                kind="json",
                line=number,
            )
        if not isinstance(fields, dict):
            kind = _json_type(fields)
            return Reject(origin, "", f"a JSON {kind}, not an object", kind="format", line=number)
        return Document(origin, fields, line=number)


class _Rejects(Source):
    """Rejects found while cutting an input into parts."""

    name = "jsonl"

    def __init__(self, rejects: list[Reject]) -> None:
        self.rejects = rejects

    def __iter__(self) -> Iterator[Reject]:
        return iter(self.rejects)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


class JsonLinesSource(Source):
    """JSON-lines files (``.jsonl``, ``.ndjson``), directories of them, or ``-`` for stdin."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson", ".jsonlines")
    stdin = True

    def __init__(
        self,
        paths: Iterable[Path | str],
        *,
        max_bytes: int = 5 * 1024 * 1024,
        chunk_bytes: int = 1024 * 1024,
        stdin: BinaryIO | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self._stdin = stdin

    @classmethod
    def from_paths(cls, paths: Sequence[str], settings: ProducerSettings) -> JsonLinesSource:
        return cls(paths, max_bytes=settings.max_document_bytes, chunk_bytes=settings.chunk_bytes)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.lstrip(_BOM).lstrip().startswith(b"{")

    def inputs(self) -> list[str]:
        """Every input: files as given, directories' JSON-lines files, ``-``."""
        found: list[str] = []
        for path in self.paths:
            if path != STDIN and Path(path).is_dir():
                found.extend(str(p) for p in sorted(walk(Path(path), self.suffixes)))
            else:
                found.append(path)
        return found

    def count(self) -> int | None:
        """The non-blank lines of the files (each is one document or one reject), when
        they hold at most :data:`COUNT_MAX_BYTES` uncompressed; None for stdin."""
        inputs = self.inputs()
        if STDIN in inputs:
            return None
        size = file_sizes(inputs)
        if size is None or size > COUNT_MAX_BYTES:
            return None
        total = 0
        for path in inputs:
            with open(path, "rb") as f:
                if f.read(2) == GZIP_MAGIC:
                    return None  # counting would mean decompressing it all twice
                f.seek(0)
                total += _count_lines(f)
        return total

    def size(self) -> int | None:
        inputs = self.inputs()
        return None if STDIN in inputs else file_sizes(inputs)

    def __iter__(self) -> Iterator[Document | Reject | Checkpoint]:
        for part in self.split():
            yield from part

    def split(self) -> Iterator[Source]:
        for path in self.inputs():
            if path == STDIN:
                yield from self._cut(_STDIN_ORIGIN, self._stdin or sys.stdin.buffer)
                continue
            try:
                with open(path, "rb") as probe:
                    compressed = probe.read(2) == GZIP_MAGIC
                # Closed below; parts are cut lazily as the file is read.
                stream = cast(
                    IO[bytes],
                    gzip.open(path, "rb") if compressed else open(path, "rb"),  # noqa: SIM115
                )
            except OSError as exc:
                reason = f"cannot read: {exc.strerror or exc}"
                yield _Rejects([Reject(path, "", reason, kind="io")])
                continue
            with stream:
                yield from self._cut(path, stream)

    def _cut(self, origin: str, stream: IO[bytes]) -> Iterator[Source]:
        """Parts of whole lines; a line longer than the limit is skipped, not kept."""
        limit, size = self.max_bytes, self.chunk_bytes
        read = _trickle_reader(stream) or stream.read
        line = 1
        pending = b""
        skipping: tuple[int, int] | None = None  # (line, bytes so far) of an oversized line
        seen_text = False
        first = True
        while True:
            try:
                block = read(size)
            except (OSError, EOFError, zlib.error) as exc:  # gzip: corrupt or cut short
                reason = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
                yield _Rejects([Reject(origin, "", reason, kind="io", line=line)])
                return
            if not block:
                break
            if first:
                first = False
                # Binary garbage is one reject for the file, not one per "line";
                # a JSON-lines file with a NUL inside a line only loses that line.
                head = block[:8192]
                if b"\x00" in head and not head.lstrip(_BOM).lstrip().startswith(b"{"):
                    yield _Rejects(
                        [
                            Reject(
                                origin,
                                "",
                                "binary data (NUL bytes), not UTF-8 JSON lines",
                                kind="binary",
                            )
                        ]
                    )
                    return
            if not seen_text and not block.isspace():
                seen_text = True
            if skipping is not None:
                newline = block.find(b"\n")
                if newline < 0:
                    skipping = (skipping[0], skipping[1] + len(block))
                    continue
                yield _Rejects([_too_long(origin, skipping[0], skipping[1] + newline, limit)])
                line = skipping[0] + 1
                skipping = None
                block = block[newline + 1 :]
            data = pending + block if pending else block
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
            else:
                yield JsonLinesPart(origin, line, data[: cut + 1], limit)
                line += data.count(b"\n", 0, cut + 1)
                pending = data[cut + 1 :]
            if len(pending) > limit:
                skipping, pending = (line, len(pending)), b""
        if skipping is not None:
            yield _Rejects([_too_long(origin, skipping[0], skipping[1], limit)])
        elif pending:
            yield JsonLinesPart(origin, line, pending, limit)
        if not seen_text:
            yield _Rejects([Reject(origin, "", "empty file: no JSON lines", kind="empty")])


def _trickle_reader(stream: IO[bytes]) -> Callable[[int], bytes] | None:
    """For a pipe or a terminal: a read that returns what has arrived, not a full part.

    ``read(n)`` on a pipe waits for *n* bytes: a producer fed at 1,000 lines/s
    would hold each line until a 1 MiB part is full (about a second). This read
    takes what is there, and whatever more is already waiting up to *n* (so parts
    stay large when the input streams fast). None for regular files and streams
    without a file descriptor: a full read is right there.
    """
    try:
        fd = stream.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    read1 = getattr(stream, "read1", None)
    if read1 is None:
        return None

    def read(size: int) -> bytes:
        block: bytes = read1(size)
        while block and len(block) < size and select.select([fd], [], [], 0)[0]:
            more: bytes = read1(size - len(block))
            if not more:  # end of input
                break
            block += more
        return block

    return read


def _count_lines(stream: IO[bytes]) -> int:
    """Lines that are not blank (as the parts count them), reading 1 MiB at a time."""
    count = 0
    pending = b""
    while block := stream.read(1024 * 1024):
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        count += sum(1 for line in lines if line and not line.isspace())
    return count + (1 if pending and not pending.isspace() else 0)


def _too_long(origin: str, line: int, length: int, limit: int) -> Reject:
    return Reject(
        origin,
        "",
        f"line is {length} bytes, over the limit of {limit} bytes",
        kind="too_large",
        line=line,
    )
