"""Seed-format documents: YAML front matter between ``---`` lines, then a Markdown body."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from newswire.source import Document, Reject, Source

__all__ = ["DocumentSource", "parse_document"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C loader when present
_DEFAULT_SUFFIXES = (".txt", ".md", ".markdown")
_SKIP_NAMES = frozenset({"readme.md", "readme.txt", "license.txt", "changelog.md"})


def parse_document(origin: str, data: bytes, *, max_bytes: int) -> Document | Reject:
    """Parse one seed-format document's bytes."""
    if len(data) > max_bytes:
        return Reject(
            origin,
            "",
            f"document is {len(data)} bytes, over the limit of {max_bytes} bytes",
            kind="too_large",
        )
    if not data.strip():
        return Reject(origin, "", "empty document", kind="empty")
    if b"\x00" in data:
        return Reject(origin, "", "binary data (NUL bytes), not a text document", kind="binary")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Reject(
            origin, "", f"not UTF-8 text: invalid byte at offset {exc.start}", kind="encoding"
        )
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return Reject(
            origin, "", "no YAML front matter (the first line must be '---')", kind="format"
        )
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        return Reject(origin, "", "front matter is not closed by a '---' line", kind="format")
    try:
        fields = yaml.load("".join(lines[1:end]), Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return Reject(origin, "", f"invalid YAML front matter{where}: {problem}", kind="yaml")
    if not isinstance(fields, dict):
        return Reject(
            origin, "", f"front matter is a {type(fields).__name__}, not a mapping", kind="format"
        )
    body = "".join(lines[end + 1 :]).strip("\r\n")
    if "body" not in fields:
        fields["body"] = body
    return Document(origin, fields)


class DocumentSource(Source):
    """Seed-format files, given as files or directories (searched recursively)."""

    name = "documents"

    def __init__(
        self,
        paths: Iterable[Path],
        *,
        max_bytes: int = 5 * 1024 * 1024,
        suffixes: tuple[str, ...] = _DEFAULT_SUFFIXES,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.max_bytes = max_bytes
        self.suffixes = suffixes
        self._files: list[Path] | None = None

    def files(self) -> list[Path]:
        """Every file to read, in a stable order: explicit files, then directories' contents."""
        if self._files is None:
            found: list[Path] = []
            for path in self.paths:
                if path.is_dir():
                    found.extend(sorted(self._walk(path)))
                else:
                    found.append(path)
            self._files = found
        return self._files

    def _walk(self, root: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or name.lower() in _SKIP_NAMES:
                    continue
                if name.lower().endswith(self.suffixes):
                    yield Path(dirpath, name)

    def count(self) -> int | None:
        return len(self.files())

    def __iter__(self) -> Iterator[Document | Reject]:
        for path in self.files():
            yield self.read(path)

    def read(self, path: Path) -> Document | Reject:
        """Read and parse one file."""
        origin = str(path)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                return Reject(
                    origin,
                    "",
                    f"document is {size} bytes, over the limit of {self.max_bytes} bytes",
                    kind="too_large",
                )
            data = path.read_bytes()
        except OSError as exc:
            return Reject(origin, "", f"cannot read: {exc.strerror or exc}", kind="io")
        return parse_document(origin, data, max_bytes=self.max_bytes)
