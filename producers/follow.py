"""``--follow``: poll RSS/Atom feeds over HTTP(S) and emit each new entry once.

:class:`FeedFollower` is a source that never ends (until stopped). Each feed is
polled every ``every_s`` seconds with a conditional GET (``If-None-Match`` /
``If-Modified-Since`` from the last 200's ``ETag`` / ``Last-Modified``); a 304
costs nothing. Entries are told apart by guid/id, else link (see
:func:`~producers.feeds.entry_key`); only entries not emitted before are
emitted. After each poll the follower yields a
:class:`~newswire.source.Checkpoint`: the publisher flushes, and only when
every record was acknowledged does :meth:`FeedFollower.commit` remember the
entries and the validators, in a SQLite file, so a restart neither loses nor
repeats entries (at-least-once: a crash between send and commit sends them
again, and dedup downstream drops the copies).

Feeds are fetched by a small thread pool, each on its own schedule: a feed that
fails (HTTP error, timeout, not a feed, too large) is reported — which feed,
why, when it is tried again — and retried after ``every_s · 2ⁿ`` (n failures
in a row, at most ``backoff_max_s``, at least the server's ``Retry-After``);
the other feeds go on unaffected.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from newswire.settings import ProducerSettings
from newswire.source import Checkpoint, Document, Reject, Source
from producers.feeds import ParsedFeed, TooLargeError, feed_documents, parse_feed, read_limited

__all__ = ["FeedFollower", "FeedState"]

log = logging.getLogger(__name__)


# -- state on disk -------------------------------------------------------------------------------


class FeedState:
    """Per feed: the HTTP validators and the keys of the entries already emitted (SQLite)."""

    def __init__(self, path: Path, *, seen_max: int = 20_000) -> None:
        self.path = path
        self.seen_max = seen_max
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS feeds (
                url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, updated_at REAL
            );
            CREATE TABLE IF NOT EXISTS seen (
                url TEXT NOT NULL, key TEXT NOT NULL, first_seen REAL NOT NULL,
                PRIMARY KEY (url, key)
            );
            """
        )

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """``(etag, last_modified)`` of the last complete 200 of *url*."""
        row = self.db.execute(
            "SELECT etag, last_modified FROM feeds WHERE url = ?", (url,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def seen(self, url: str) -> set[str]:
        """Keys of the entries of *url* emitted before."""
        return {r[0] for r in self.db.execute("SELECT key FROM seen WHERE url = ?", (url,))}

    def commit(
        self, url: str, keys: Sequence[str], etag: str | None, last_modified: str | None
    ) -> None:
        """Remember *keys* as emitted and the validators, in one transaction."""
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO seen (url, key, first_seen) VALUES (?, ?, ?)",
                [(url, key, now) for key in keys],
            )
            self.db.execute(
                "INSERT INTO feeds (url, etag, last_modified, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, "
                "last_modified = excluded.last_modified, updated_at = excluded.updated_at",
                (url, etag, last_modified, now),
            )
            if keys:
                # Bounded: forget the oldest keys of a feed beyond seen_max. A feed
                # lists its latest entries, so the oldest have long left it.
                self.db.execute(
                    "DELETE FROM seen WHERE url = ? AND key NOT IN "
                    "(SELECT key FROM seen WHERE url = ? ORDER BY first_seen DESC LIMIT ?)",
                    (url, url, self.seen_max),
                )

    def close(self) -> None:
        """Close the database."""
        self.db.close()


# -- polling -------------------------------------------------------------------------------------


@dataclass
class _Feed:
    url: str
    etag: str | None = None
    last_modified: str | None = None
    seen: set[str] = field(default_factory=set)
    failures: int = 0
    polls: int = 0
    due: float = 0.0
    busy: bool = False


@dataclass
class _Outcome:
    result: str  # ok, not_modified, error
    feed: ParsedFeed | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str = ""
    kind: str = ""
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class _Token:
    feed: _Feed
    keys: tuple[str, ...]
    etag: str | None
    last_modified: str | None


@dataclass
class _Metrics:
    polls: Counter
    errors: Counter
    entries: Counter
    failures: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> _Metrics:
        labels = ("producer", "topic", "feed")
        return cls(
            polls=Counter(
                "newswire_producer_feed_polls_total",
                "Feed polls by result (ok, not_modified, error).",
                (*labels, "result"),
                registry=registry,
            ),
            errors=Counter(
                "newswire_producer_feed_errors_total",
                "Failed feed polls by error.",
                (*labels, "error"),
                registry=registry,
            ),
            entries=Counter(
                "newswire_producer_feed_entries_total",
                "New feed entries emitted (documents and rejects).",
                labels,
                registry=registry,
            ),
            failures=Gauge(
                "newswire_producer_feed_consecutive_failures",
                "Failed polls in a row of a feed (0: healthy).",
                labels,
                registry=registry,
            ),
        )


def _retry_after(value: str | None) -> float:
    """Seconds of a ``Retry-After`` header (delta-seconds or an HTTP date), 0 if absent."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return 0.0


class FeedFollower(Source):
    """Polls feeds for ever (until :meth:`stop`, Ctrl-C, or ``max_polls`` each)."""

    name = "follow"

    def __init__(
        self,
        urls: Sequence[str],
        *,
        every_s: float = 300.0,
        state_path: Path = Path("newswire-feeds.sqlite"),
        timeout_s: float = 20.0,
        backoff_max_s: float = 3600.0,
        max_bytes: int = 32 * 1024 * 1024,
        user_agent: str = "newswire",
        seen_max: int = 20_000,
        concurrency: int = 8,
        max_polls: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls = list(dict.fromkeys(urls))
        self.every_s = every_s
        self.state_path = state_path
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self.seen_max = seen_max
        self.concurrency = concurrency
        self.max_polls = max_polls
        self.transport = transport
        self._stop = threading.Event()
        self._state: FeedState | None = None
        self._metrics: _Metrics | None = None
        self._labels: tuple[str, str] = ("producer", "articles.raw")

    @classmethod
    def from_paths(cls, paths: Sequence[str], settings: ProducerSettings) -> FeedFollower:
        return cls(
            paths,
            every_s=settings.feed_every_s,
            state_path=settings.feed_state_path,
            timeout_s=settings.feed_timeout_s,
            backoff_max_s=settings.feed_backoff_max_s,
            max_bytes=settings.max_feed_bytes,
            user_agent=settings.user_agent,
            seen_max=settings.feed_seen_max,
            concurrency=settings.feed_concurrency,
        )

    def bind_metrics(self, registry: CollectorRegistry, *, producer: str, topic: str) -> None:
        self._metrics = _Metrics.create(registry)
        self._labels = (producer, topic)

    def stop(self) -> None:
        """Finish the polls in flight and end the iteration (from any thread)."""
        self._stop.set()

    # -- the loop ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Document | Reject | Checkpoint]:
        if self._metrics is None:
            self._metrics = _Metrics.create(CollectorRegistry())
        state = self._state = FeedState(self.state_path, seen_max=self.seen_max)
        feeds = []
        for url in self.urls:
            etag, last_modified = state.validators(url)
            feeds.append(_Feed(url, etag, last_modified, state.seen(url)))
        log.info(
            "following %d feed(s) every %.0fs (state %s)", len(feeds), self.every_s, self.state_path
        )
        client = httpx.Client(
            timeout=self.timeout_s,
            follow_redirects=True,
            headers={"User-Agent": self.user_agent},
            transport=self.transport,
        )
        pool = cf.ThreadPoolExecutor(
            max_workers=max(1, min(self.concurrency, len(feeds))), thread_name_prefix="feed"
        )
        in_flight: dict[cf.Future[_Outcome], _Feed] = {}
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for feed in feeds:
                    if not feed.busy and feed.due <= now and not self._done(feed):
                        feed.busy = True
                        in_flight[pool.submit(self._fetch, client, feed)] = feed
                if not in_flight and all(self._done(f) for f in feeds):
                    return
                next_due = min(
                    (f.due for f in feeds if not f.busy and not self._done(f)), default=now + 1.0
                )
                # Wake at least every second, so that stop() is seen promptly.
                timeout = max(0.01, min(next_due - now, 1.0))
                done: set[cf.Future[_Outcome]] = set()
                if in_flight:
                    done, _ = cf.wait(list(in_flight), timeout, cf.FIRST_COMPLETED)
                else:
                    self._stop.wait(timeout)
                for future in done:
                    feed = in_flight.pop(future)
                    feed.busy = False
                    feed.polls += 1
                    yield from self._handle(feed, future.result())
        finally:
            for future in in_flight:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            client.close()
            state.close()
            self._state = None

    def _done(self, feed: _Feed) -> bool:
        return self.max_polls is not None and feed.polls >= self.max_polls

    def _fetch(self, client: httpx.Client, feed: _Feed) -> _Outcome:
        """One conditional GET and parse (in a pool thread); never raises."""
        headers = {}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        try:
            with client.stream("GET", feed.url, headers=headers) as response:
                if response.status_code == 304:
                    return _Outcome("not_modified")
                if response.status_code != 200:
                    return _Outcome(
                        "error",
                        error=f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                        kind=f"http_{response.status_code}",
                        retry_after_s=_retry_after(response.headers.get("retry-after")),
                    )
                data = read_limited(response, self.max_bytes)
                meta = {k.lower(): v for k, v in response.headers.items()}
                meta["content-location"] = str(response.url)
        except httpx.TimeoutException as exc:
            return _Outcome(
                "error", error=f"timed out after {self.timeout_s:g}s ({exc})", kind="timeout"
            )
        except httpx.HTTPError as exc:
            return _Outcome("error", error=f"{type(exc).__name__}: {exc}", kind="connection")
        except TooLargeError as exc:
            return _Outcome("error", error=str(exc), kind="too_large")
        except Exception as exc:  # a pool thread must not die silently
            return _Outcome("error", error=f"{type(exc).__name__}: {exc}", kind="error")
        try:
            parsed = parse_feed(feed.url, data, max_bytes=self.max_bytes, headers=meta)
        except Exception as exc:  # feedparser is lenient, but never trust a parser
            return _Outcome("error", error=f"{type(exc).__name__}: {exc}", kind="parse")
        if isinstance(parsed, Reject):
            return _Outcome("error", error=parsed.reason, kind=parsed.kind)
        return _Outcome(
            "ok", feed=parsed, etag=meta.get("etag"), last_modified=meta.get("last-modified")
        )

    def _handle(self, feed: _Feed, outcome: _Outcome) -> Iterator[Document | Reject | Checkpoint]:
        metrics, labels = self._metrics, (*self._labels, feed.url)
        assert metrics is not None
        metrics.polls.labels(*labels, outcome.result).inc()
        if outcome.result == "error":
            feed.failures += 1
            delay = min(self.every_s * 2**feed.failures, self.backoff_max_s)
            delay = max(delay, outcome.retry_after_s)
            feed.due = time.monotonic() + delay
            metrics.errors.labels(*labels, outcome.kind).inc()
            metrics.failures.labels(*labels).set(feed.failures)
            log.warning(
                "feed %s failed: %s (%d in a row); next try in %.1fs",
                feed.url,
                outcome.error,
                feed.failures,
                delay,
            )
            return
        if feed.failures:
            log.info("feed %s recovered after %d failed poll(s)", feed.url, feed.failures)
        feed.failures = 0
        metrics.failures.labels(*labels).set(0)
        feed.due = time.monotonic() + self.every_s
        if outcome.result == "not_modified" or outcome.feed is None:
            log.debug("feed %s: not modified", feed.url)
            return
        keys: list[str] = []
        fresh = set()
        rejected = 0
        for key, item in feed_documents(outcome.feed, keys=True):
            if key in feed.seen or key in fresh:
                continue
            fresh.add(key)
            keys.append(key)
            rejected += isinstance(item, Reject)
            yield item
        metrics.entries.labels(*labels).inc(len(keys))
        if keys:
            log.info(
                "feed %s: %d new entries (%d rejected) of %d",
                feed.url,
                len(keys),
                rejected,
                len(outcome.feed.entries),
            )
        yield Checkpoint(_Token(feed, tuple(keys), outcome.etag, outcome.last_modified))

    def commit(self, token: Any, ok: bool) -> None:
        if not isinstance(token, _Token):
            return
        feed = token.feed
        if not ok:
            # Keep the old validators too: a 304 next time would hide the lost entries.
            log.warning(
                "feed %s: some entries were not acknowledged by the broker; "
                "they are sent again on the next poll",
                feed.url,
            )
            return
        feed.seen.update(token.keys)
        feed.etag, feed.last_modified = token.etag, token.last_modified
        if self._state is not None:
            self._state.commit(feed.url, token.keys, token.etag, token.last_modified)
            if len(feed.seen) > self.seen_max * 1.25:  # the database forgot the oldest
                feed.seen = self._state.seen(feed.url)
