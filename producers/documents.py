"""Seed-format documents: YAML front matter between ``---`` lines, then a Markdown body.

The front matter is parsed by libyaml (PyYAML's C parser, ``CSafeLoader``).
PyYAML then builds a node graph and runs a pure-Python constructor over it,
which costs more than the C parse itself; :func:`load_front_matter` instead
builds the mappings, lists and scalars that articles are made of straight from
libyaml's events, resolving plain scalars with SafeLoader's own resolvers and
constructors. Anything unusual (anchors and aliases, explicit tags, merge keys,
collections as keys, several documents) is parsed again the PyYAML way, so the
result and the errors are the same; it is about twice as fast as
``yaml.load(text, Loader=CSafeLoader)``.

One bad document never takes others with it: whatever the parse raises
becomes a :class:`~newswire.source.Reject` naming the file. A plain scalar that
looks like a timestamp but is no date (``2021-02-30T10:00:00Z``) stays a string,
so validation rejects it naming the field. Aliases are bounded: a front matter
whose aliases would expand it past :data:`MAX_ALIAS_NODES` nodes (an "alias
bomb": 300 bytes can expand to gigabytes) or that refers to itself is rejected
before anything is built.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from newswire.settings import ProducerSettings
from newswire.source import Document, Reject, Source, file_sizes, read_file_limited, walk

__all__ = [
    "MAX_ALIAS_NODES",
    "DocumentSource",
    "FrontMatterError",
    "load_front_matter",
    "parse_document",
]

#: How many nodes aliases may add to a front matter when expanded (a real article
#: reuses an anchor a few times at most).
MAX_ALIAS_NODES = 10_000

log = logging.getLogger(__name__)

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser when present
_DEFAULT_SUFFIXES = (".txt", ".md", ".markdown")
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"


class _FastLoader(_LOADER):
    """libyaml's parser with the resolver hooks it calls per node made cheap.

    Safe to shortcut: SafeLoader has no path resolvers, and a quoted scalar is
    always a string. Plain scalars go through the same implicit resolvers.
    """

    _implicit = _LOADER.yaml_implicit_resolvers

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                for tag, regexp in self._implicit.get(value[:1], ()):
                    if regexp.match(value):
                        return str(tag)
            return _STR
        return _SEQ if kind is SequenceNode else _MAP


class _Unusual(Exception):
    """A node the fast constructor leaves to PyYAML's SafeConstructor."""


class FrontMatterError(ValueError):
    """Front matter that parses but must not be built (an alias bomb, a self-reference)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _timestamp(loader: Any, node: ScalarNode) -> Any:
    """SafeConstructor's timestamp, or the text itself when it is no date (``2021-02-30``).

    PyYAML raises a bare ``ValueError`` there; as a string the value reaches
    validation, which names the field and says why it is not a date.
    """
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return str(node.value)


_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


# The plain scalars of articles, constructed without construct_object's bookkeeping
# (the same SafeConstructor functions, called directly).
_SCALARS: dict[str, Any] = {
    tag: yaml.constructor.SafeConstructor.yaml_constructors[tag]
    for tag in (
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    )
}
_SCALARS["tag:yaml.org,2002:timestamp"] = _timestamp


def _check_aliases(root: Node) -> None:
    """Raise :class:`FrontMatterError` if aliases expand *root* past the bound or loop.

    Counts the nodes of the tree as it would be built (a node reached through
    *k* aliases counts *k* times), memoised per node, so the check is linear in
    the node graph however large the expansion.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    distinct = 0

    def size(node: Node) -> int:
        nonlocal distinct
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in on_path:
            raise FrontMatterError("front matter refers to itself (a recursive alias)", "yaml")
        distinct += 1
        total = 1
        if isinstance(node, SequenceNode | MappingNode):
            on_path.add(key)
            children = (
                node.value
                if isinstance(node, SequenceNode)
                else [n for pair in node.value for n in pair]
            )
            for child in children:
                total += size(child)
                if total > distinct + MAX_ALIAS_NODES:
                    break
            on_path.discard(key)
        sizes[key] = total
        return total

    expanded = size(root)
    if expanded > distinct + MAX_ALIAS_NODES:
        raise FrontMatterError(
            f"aliases expand the front matter past {distinct + MAX_ALIAS_NODES:,} nodes "
            f"(it has {distinct:,}; at most {MAX_ALIAS_NODES:,} may come from aliases)",
            "too_large",
        )


def _construct(loader: Any, node: Node, memo: dict[int, Any], busy: set[int]) -> Any:
    cls = node.__class__
    if cls is ScalarNode:
        tag = node.tag
        if tag == _STR:
            return node.value
        scalar = _SCALARS.get(tag)
        return scalar(loader, node) if scalar is not None else loader.construct_object(node)
    key = id(node)
    if key in memo:  # an alias: the same object, as PyYAML does
        return memo[key]
    if key in busy:  # a recursive structure
        raise _Unusual
    busy.add(key)
    result: Any
    if cls is MappingNode and node.tag == _MAP:
        result = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is ScalarNode and key_node.tag == _STR:
                name = key_node.value
            elif key_node.tag == _MERGE:
                raise _Unusual
            else:
                name = _construct(loader, key_node, memo, busy)
            try:
                result[name] = _construct(loader, value_node, memo, busy)
            except TypeError:  # unhashable key: let PyYAML say so
                raise _Unusual from None
    elif cls is SequenceNode and node.tag == _SEQ:
        result = [_construct(loader, item, memo, busy) for item in node.value]
    else:
        raise _Unusual
    busy.discard(key)
    memo[key] = result
    return result


_NO_KEY: Any = object()


def _from_events(loader: Any) -> Any:
    """Build the document straight from libyaml's events, with no node graph.

    Handles what articles are made of: mappings, sequences and untagged scalars
    (plain ones resolved as SafeLoader does). Anchors, aliases, explicit tags,
    merge keys, collections as keys and multi-document streams raise
    :class:`_Unusual`: the caller starts again on the node path.
    """
    get = loader.get_event
    implicit_resolvers = _FastLoader._implicit
    get()  # StreamStart
    if get().__class__ is StreamEndEvent:
        return None
    stack: list[list[Any]] = []  # [container, pending key] being filled
    root: Any = None
    while True:
        event = get()
        cls = event.__class__
        if cls is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise _Unusual
            item = event.value
            if event.implicit[0]:  # plain: resolve like SafeLoader
                for tag, regexp in implicit_resolvers.get(item[:1], ()):
                    if regexp.match(item):
                        scalar = _SCALARS.get(tag)
                        if scalar is None:  # a merge key, a value key…
                            raise _Unusual
                        item = scalar(loader, ScalarNode(tag, item))
                        break
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise _Unusual
            stack.append([{} if cls is MappingStartEvent else [], _NO_KEY])
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            item = stack.pop()[0]
        elif cls is DocumentEndEvent:
            break
        else:  # an alias
            raise _Unusual
        if not stack:
            root = item
            continue
        top = stack[-1]
        container = top[0]
        if container.__class__ is list:
            container.append(item)
        elif top[1] is _NO_KEY:
            if item.__class__ is dict or item.__class__ is list:
                raise _Unusual
            top[1] = item
        else:
            container[top[1]] = item
            top[1] = _NO_KEY
    if get().__class__ is not StreamEndEvent:  # more than one document: PyYAML says so
        raise _Unusual
    return root


def load_front_matter(text: str) -> Any:
    """Parse YAML *text* like ``yaml.load(text, Loader=CSafeLoader)``, faster.

    Raises ``yaml.YAMLError`` (with its ``problem_mark``) for invalid YAML and
    :class:`FrontMatterError` for aliases that expand too far or refer to themselves.
    """
    loader = _FastLoader(text)
    try:
        return _from_events(loader)
    except _Unusual:
        pass
    finally:
        loader.dispose()
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        try:
            return _construct(loader, node, {}, set())
        except _Unusual:
            return loader.construct_document(node)
    finally:
        loader.dispose()


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
        fields = load_front_matter("".join(lines[1:end]))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return Reject(origin, "", f"invalid YAML front matter{where}: {problem}", kind="yaml")
    except FrontMatterError as exc:
        return Reject(origin, "", str(exc), kind=exc.kind)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these bare (a value it cannot build).
        return Reject(
            origin, "", f"invalid YAML front matter: {type(exc).__name__}: {exc}", kind="yaml"
        )
    if not isinstance(fields, dict):
        return Reject(
            origin, "", f"front matter is a {type(fields).__name__}, not a mapping", kind="format"
        )
    body = "".join(lines[end + 1 :]).strip("\r\n")
    if "body" not in fields:
        fields["body"] = body
    return Document(origin, fields)


class DocumentSource(Source):
    """Seed-format files, given as files or directories (searched recursively).

    :meth:`split` cuts the file list into parts of ``chunk_files`` files that
    worker processes read and parse.
    """

    name = "documents"
    suffixes: tuple[str, ...] = _DEFAULT_SUFFIXES

    def __init__(
        self,
        paths: Iterable[Path | str],
        *,
        max_bytes: int = 5 * 1024 * 1024,
        suffixes: tuple[str, ...] = _DEFAULT_SUFFIXES,
        chunk_files: int = 128,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.max_bytes = max_bytes
        self.suffixes = suffixes
        self.chunk_files = max(1, chunk_files)
        self._files: list[Path] | None = None

    @classmethod
    def from_paths(cls, paths: Sequence[str], settings: ProducerSettings) -> DocumentSource:
        return cls(
            [Path(p) for p in paths],
            max_bytes=settings.max_document_bytes,
            chunk_files=settings.chunk_files,
        )

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.lstrip(b"\xef\xbb\xbf").startswith(b"---")

    def files(self) -> list[Path]:
        """Every file to read, in a stable order: explicit files, then directories' contents."""
        if self._files is None:
            found: list[Path] = []
            for path in self.paths:
                if path.is_dir():
                    found.extend(sorted(walk(path, self.suffixes)))
                else:
                    found.append(path)
            self._files = found
        return self._files

    def count(self) -> int | None:
        return len(self.files())  # one item per file

    def size(self) -> int | None:
        return file_sizes(self.files())

    def __iter__(self) -> Iterator[Document | Reject]:
        for path in self.files():
            yield self.read(path)

    def split(self) -> Iterator[DocumentSource]:
        files = self.files()
        for start in range(0, len(files), self.chunk_files):
            part = DocumentSource([], max_bytes=self.max_bytes, suffixes=self.suffixes)
            part._files = files[start : start + self.chunk_files]
            yield part

    def read(self, path: Path) -> Document | Reject:
        """Read and parse one file."""
        origin = str(path)
        data = read_file_limited(path, origin, self.max_bytes)
        if isinstance(data, Reject):
            return data
        try:
            return parse_document(origin, data, max_bytes=self.max_bytes)
        except Exception as exc:  # a parser bug must cost this file only, not its part
            log.exception("%s: unexpected error while parsing", origin)
            return Reject(origin, "", f"cannot parse: {type(exc).__name__}: {exc}", kind="error")
