"""RSS 0.9x/1.0/2.0 and Atom feeds (feedparser): each entry becomes a seed-format document.

Mapping (seed field ← feed):

- ``originalUrl`` ← the entry's link (relative links are resolved against the
  feed's address when it was fetched over HTTP; in a file they stay relative
  and the entry is rejected)
- ``title`` ← the entry's title, as text
- ``excerpt`` ← its summary / description, HTML turned into text
- ``body`` ← its full content (``content:encoded``, Atom ``content``) as text
- ``publishedDateTime`` ← published, else updated (UTC); a date feedparser
  cannot read rejects the entry
- ``provider`` ← ``{name: feed title, domain: the feed link's host}`` (without
  ``www.``; the entry link's host when the feed has no absolute link)
- ``topics`` ← categories / tags
- ``images`` ← ``media:content`` and ``media:thumbnail`` images, image enclosures

A file that is not a feed at all (not XML, no RSS/Atom elements) is one reject.
Gzip-compressed files (``heise.xml.gz``, or any name) and responses are read as
well; the limit applies to the decompressed size.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import io
import logging
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx
import xxhash

from newswire.settings import ProducerSettings
from newswire.source import (
    GZIP_MAGIC,
    Document,
    Reject,
    Source,
    file_sizes,
    gunzip_limited,
    read_file_limited,
    walk,
)

__all__ = [
    "FeedSource",
    "ParsedFeed",
    "entry_key",
    "feed_documents",
    "html_to_text",
    "parse_feed",
]

_BOM = b"\xef\xbb\xbf"
log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
#: Opening tags of RSS items and Atom entries (``<item rdf:about=…>`` too), counted
#: for the progress bar. An approximation: a tag inside CDATA counts too.
_ENTRY_TAGS = (b"<item>", b"<item ", b"<entry>", b"<entry ")
COUNT_MAX_BYTES = 64 * 1024 * 1024
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg", ".bmp")


# -- text ----------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "template", "noscript"})
    _BLOCK = frozenset(
        {"p", "br", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(value: str | None) -> str:
    """Visible text of an HTML fragment, whitespace collapsed (plain text passes through)."""
    if not value:
        return ""
    if "<" not in value and "&" not in value:
        return _SPACES.sub(" ", value).strip()
    extractor = _TextExtractor()
    extractor.feed(value)
    extractor.close()
    return _SPACES.sub(" ", "".join(extractor.parts)).strip()


# -- parsing -------------------------------------------------------------------------------------


@dataclass
class ParsedFeed:
    """A feed feedparser could read: its title, link and entries."""

    origin: str
    title: str
    link: str
    entries: list[Any]
    version: str


def parse_feed(
    origin: str,
    data: bytes,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> ParsedFeed | Reject:
    """Parse feed bytes; a reject says why they are not a feed.

    *headers* are the HTTP response headers when fetched (content type for
    the encoding, ``content-location`` to resolve relative links).
    """
    if len(data) > max_bytes:
        return Reject(
            origin,
            "",
            f"feed is {len(data)} bytes, over the limit of {max_bytes} bytes",
            kind="too_large",
        )
    if data[:2] == GZIP_MAGIC:
        try:
            data = gunzip_limited(data, max_bytes)
        except zlib.error as exc:
            return Reject(origin, "", f"corrupt gzip data: {exc}", kind="format")
        except ValueError as exc:
            return Reject(origin, "", f"feed {exc}", kind="too_large")
    if not data.strip():
        return Reject(origin, "", "empty file: no feed", kind="empty")
    parsed = feedparser.parse(io.BytesIO(data), response_headers=dict(headers or {}))
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        why = f"{type(problem).__name__}: {problem}" if problem else "no RSS or Atom elements"
        return Reject(origin, "", f"not an RSS/Atom feed ({why})", kind="not_a_feed")
    feed = parsed.feed
    return ParsedFeed(
        origin=origin,
        title=html_to_text(feed.get("title")),
        link=feed.get("link") or "",
        entries=list(parsed.entries),
        version=parsed.get("version") or "unknown",
    )


def entry_key(entry: Any) -> str:
    """A stable identity of an entry within its feed: guid/id, else link, else a hash."""
    for name in ("id", "link"):
        value = entry.get(name)
        if value:
            return str(value).strip()
    text = f"{entry.get('title', '')}\x00{entry.get('published', entry.get('updated', ''))}"
    return "sha:" + xxhash.xxh3_64_hexdigest(text.encode("utf-8", "replace"))


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https"):
        return ""
    host = (parts.hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def _when(entry: Any) -> tuple[dt.datetime | None, str]:
    """(parsed UTC datetime, raw text) of published, else updated."""
    # dict.get: FeedParserDict.get maps published_parsed to updated_parsed with a
    # DeprecationWarning; the fallback is done here, explicitly.
    for name in ("published", "updated", "created"):
        parsed = dict.get(entry, f"{name}_parsed")
        if parsed:
            return dt.datetime.fromtimestamp(calendar.timegm(parsed), tz=dt.UTC), ""
    for name in ("published", "updated", "created"):
        raw = dict.get(entry, name)
        if raw:
            return None, str(raw)
    return None, ""


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 2**31 else None


def _is_image(item: Mapping[str, Any], url: str) -> bool:
    medium, kind = item.get("medium") or "", item.get("type") or ""
    if medium or kind:
        return medium == "image" or kind.startswith("image/")
    return urlsplit(url).path.lower().endswith(_IMAGE_SUFFIXES)


def _images(entry: Any) -> list[dict[str, Any]]:
    images: dict[str, dict[str, Any]] = {}

    def add(url: Any, width: Any = None, height: Any = None) -> None:
        url = str(url or "").strip()
        if not url or not _host(url):
            return
        image = images.setdefault(url, {"url": url, "width": None, "height": None})
        # The same image often comes as content, thumbnail and enclosure: keep the sizes.
        image["width"] = image["width"] or _int(width)
        image["height"] = image["height"] or _int(height)

    for item in entry.get("media_content") or ():
        url = item.get("url")
        if url and _is_image(item, url):
            add(url, item.get("width"), item.get("height"))
    for item in entry.get("media_thumbnail") or ():
        add(item.get("url"), item.get("width"), item.get("height"))
    for item in entry.get("enclosures") or ():
        url = item.get("href") or item.get("url")
        if url and _is_image(item, url):
            add(url)
    return list(images.values())


def _topics(entry: Any) -> list[str]:
    topics: list[str] = []
    for tag in entry.get("tags") or ():
        term = html.unescape(str(tag.get("term") or tag.get("label") or "")).strip()
        if term and term not in topics:
            topics.append(term)
    return topics


def entry_fields(entry: Any, feed: ParsedFeed) -> dict[str, Any] | tuple[str, str, str]:
    """The seed-format fields of *entry*, or ``(field, reason, kind)`` when it cannot be one."""
    fields: dict[str, Any] = {"category": "news", "type": "article"}
    title = html_to_text(entry.get("title"))
    if title:
        fields["title"] = title
    link = (entry.get("link") or "").strip()
    if link:
        fields["originalUrl"] = link
    summary = entry.get("summary") or ""
    fields["excerpt"] = html_to_text(summary)
    contents = entry.get("content") or ()
    body = html_to_text(contents[0].get("value")) if contents else ""
    if body and body != fields["excerpt"]:
        fields["body"] = body
    published, raw = _when(entry)
    if published is not None:
        fields["publishedDateTime"] = published
    elif raw:
        return "publishedDateTime", f"unparseable date {raw[:80]!r}", "date"
    fields["provider"] = {"name": feed.title, "domain": _host(feed.link) or _host(link)}
    fields["topics"] = _topics(entry)
    fields["images"] = _images(entry)
    return fields


def feed_documents(
    feed: ParsedFeed, *, keys: bool = False
) -> Iterator[tuple[str, Document | Reject]]:
    """``(entry key, document or reject)`` for every entry of *feed*, numbered from 1."""
    for number, entry in enumerate(feed.entries, start=1):
        try:
            key = entry_key(entry) if keys else ""
            fields = entry_fields(entry, feed)
        except Exception as exc:  # a mapping bug must cost this entry only, not the feed
            log.exception("%s entry %d: unexpected error while reading", feed.origin, number)
            reason = f"cannot read the entry: {type(exc).__name__}: {exc}"
            yield "", Reject(feed.origin, "", reason, kind="error", entry=number)
            continue
        if isinstance(fields, tuple):
            name, reason, kind = fields
            yield key, Reject(feed.origin, name, reason, kind=kind, entry=number)
        else:
            yield key, Document(feed.origin, fields, entry=number)


# -- the source ----------------------------------------------------------------------------------


def fetch_once(
    url: str, *, max_bytes: int, timeout_s: float, user_agent: str
) -> ParsedFeed | Reject:
    """GET a feed once (no state: ``--follow`` is for polling)."""
    try:
        with (
            httpx.Client(
                timeout=timeout_s, follow_redirects=True, headers={"User-Agent": user_agent}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                return Reject(
                    url, "", f"HTTP {response.status_code} {response.reason_phrase}", kind="http"
                )
            data = read_limited(response, max_bytes)
            headers = {k.lower(): v for k, v in response.headers.items()}
            headers["content-location"] = str(response.url)
    except TooLargeError as exc:
        return Reject(url, "", str(exc), kind="too_large")
    except httpx.HTTPError as exc:
        return Reject(url, "", f"cannot fetch: {type(exc).__name__}: {exc}", kind="http")
    return parse_feed(url, data, max_bytes=max_bytes, headers=headers)


class TooLargeError(Exception):
    """A response body over the limit."""


def read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """The (decoded) body of a streamed response, refusing more than *max_bytes*."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(f"response is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class FeedSource(Source):
    """RSS/Atom feed files (``.rss``, ``.atom``, ``.xml``, ``.rdf``), directories of them,
    or ``http(s)://`` URLs fetched once."""

    name = "feed"
    suffixes = (".rss", ".atom", ".xml", ".rdf")
    schemes = ("http", "https")

    def __init__(
        self,
        paths: Iterable[Path | str],
        *,
        max_bytes: int = 32 * 1024 * 1024,
        timeout_s: float = 20.0,
        user_agent: str = "newswire",
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.user_agent = user_agent

    @classmethod
    def from_paths(cls, paths: Sequence[str], settings: ProducerSettings) -> FeedSource:
        return cls(
            paths,
            max_bytes=settings.max_feed_bytes,
            timeout_s=settings.feed_timeout_s,
            user_agent=settings.user_agent,
        )

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:2] == GZIP_MAGIC or head.lstrip(_BOM).lstrip().startswith(b"<")

    def inputs(self) -> list[str]:
        """Every feed: URLs and files as given, directories' feed files."""
        found: list[str] = []
        for path in self.paths:
            if _is_url(path) or not Path(path).is_dir():
                found.append(path)
            else:
                found.extend(str(p) for p in sorted(walk(Path(path), self.suffixes)))
        return found

    def size(self) -> int | None:
        inputs = self.inputs()
        return None if any(_is_url(p) for p in inputs) else file_sizes(inputs)

    def count(self) -> int | None:
        """Entries in the feed files, by counting their ``<item>``/``<entry>`` tags (plain
        files up to :data:`COUNT_MAX_BYTES` in all); None with a URL or gzip."""
        inputs = self.inputs()
        size = self.size()
        if size is None or size > COUNT_MAX_BYTES:
            return None
        total = 0
        for path in inputs:
            data = Path(path).read_bytes()
            if data[:2] == GZIP_MAGIC:
                return None
            total += sum(data.count(tag) for tag in _ENTRY_TAGS)
        return total

    def split(self) -> Iterator[FeedSource]:
        for path in self.inputs():
            yield FeedSource(
                [path],
                max_bytes=self.max_bytes,
                timeout_s=self.timeout_s,
                user_agent=self.user_agent,
            )

    def __iter__(self) -> Iterator[Document | Reject]:
        for path in self.inputs():
            feed = self.load(path)
            if isinstance(feed, Reject):
                yield feed
                continue
            for _key, item in feed_documents(feed):
                yield item

    def load(self, path: str) -> ParsedFeed | Reject:
        """Read (or fetch) and parse one feed."""
        if _is_url(path):
            return fetch_once(
                path,
                max_bytes=self.max_bytes,
                timeout_s=self.timeout_s,
                user_agent=self.user_agent,
            )
        data = read_file_limited(Path(path), path, self.max_bytes, what="feed")
        if isinstance(data, Reject):
            return data
        try:
            return parse_feed(path, data, max_bytes=self.max_bytes)
        except Exception as exc:  # feedparser gives up on some input: this file only
            log.exception("%s: unexpected error while parsing the feed", path)
            return Reject(path, "", f"cannot parse: {type(exc).__name__}: {exc}", kind="error")


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))
