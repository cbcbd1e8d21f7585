"""Article stores: the tables users query (``articles``, ``duplicates``, ``related``).

Writes are idempotent upserts keyed by article id, one transaction per batch,
so a replayed topic never duplicates a row. When the same article (same
canonical URL, so same id) arrives again with other content, the version with
the newer ``published_at`` wins, then the newer ``ingested_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newswire.errors import ConfigError, StoreError

__all__ = ["SCHEMA_VERSION", "SqliteStore", "Store", "open_store"]

SCHEMA_VERSION = 1

_ARTICLE_COLUMNS = (
    "id",
    "url",
    "canonical_url",
    "web_url",
    "title",
    "excerpt",
    "body",
    "category",
    "type",
    "published_at",
    "provider_name",
    "provider_domain",
    "registered_domain",
    "topics",
    "images",
    "quality",
    "heat",
    "published",
    "language",
    "language_score",
    "word_count",
    "reading_time_s",
    "secured",
    "extras",
    "source",
    "ingested_at",
    "enriched_at",
    "stored_at",
)
_DUPLICATE_COLUMNS = (
    "url",
    "duplicate_of",
    "reason",
    "similarity",
    "id",
    "canonical_url",
    "title",
    "provider_domain",
    "seen_at",
)

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    canonical_url TEXT NOT NULL,
    web_url TEXT,
    title TEXT NOT NULL,
    excerpt TEXT,
    body TEXT,
    category TEXT,
    type TEXT,
    published_at TEXT,
    provider_name TEXT,
    provider_domain TEXT,
    registered_domain TEXT,
    topics TEXT NOT NULL DEFAULT '[]',
    images TEXT NOT NULL DEFAULT '[]',
    quality INTEGER,
    heat INTEGER,
    published INTEGER,
    language TEXT,
    language_score REAL,
    word_count INTEGER,
    reading_time_s INTEGER,
    secured TEXT,
    extras TEXT NOT NULL DEFAULT '{}',
    source TEXT,
    ingested_at TEXT,
    enriched_at TEXT,
    stored_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_published_at ON articles (published_at);
CREATE INDEX IF NOT EXISTS articles_provider ON articles (provider_domain);
CREATE TABLE IF NOT EXISTS duplicates (
    url TEXT NOT NULL,
    duplicate_of TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('url', 'content', 'near')),
    similarity REAL NOT NULL,
    id TEXT,
    canonical_url TEXT,
    title TEXT,
    provider_domain TEXT,
    seen_at TEXT,
    PRIMARY KEY (url, duplicate_of)
);
CREATE INDEX IF NOT EXISTS duplicates_of ON duplicates (duplicate_of);
CREATE TABLE IF NOT EXISTS related (
    article_id TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT,
    PRIMARY KEY (article_id, url)
);
"""

# The newer version of an article wins; a replay of the same version rewrites identical values.
_NEWER = (
    "(COALESCE(excluded.published_at, ''), COALESCE(excluded.ingested_at, '')) >= "
    "(COALESCE(articles.published_at, ''), COALESCE(articles.ingested_at, ''))"
)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def article_row(record: Mapping[str, Any], stored_at: str) -> tuple[Any, ...]:
    """The ``articles`` row of an (enriched) article record, in ``_ARTICLE_COLUMNS`` order."""
    provider = record.get("provider") or {}
    return (
        record["id"],
        record["original_url"],
        record["canonical_url"],
        record.get("web_url"),
        record["title"],
        record.get("excerpt", ""),
        record.get("body", ""),
        record.get("category"),
        record.get("type"),
        _iso(record.get("published_at")),
        provider.get("name", ""),
        provider.get("domain", ""),
        record.get("registered_domain", ""),
        json.dumps(record.get("topics") or [], ensure_ascii=False),
        json.dumps(record.get("images") or [], ensure_ascii=False),
        record.get("quality", -1),
        record.get("heat", -1),
        int(bool(record.get("published"))),
        record.get("language", ""),
        record.get("language_score", 0.0),
        record.get("word_count", 0),
        record.get("reading_time_s", 0),
        record.get("secured"),
        json.dumps(record.get("extras") or {}, ensure_ascii=False),
        record.get("source", ""),
        _iso(record.get("ingested_at")),
        _iso(record.get("enriched_at")),
        stored_at,
    )


def duplicate_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The ``duplicates`` row of a sighting record."""
    return (
        record["url"],
        record["duplicate_of"],
        record["reason"],
        record.get("similarity", 1.0),
        record.get("id"),
        record.get("canonical_url"),
        record.get("title", ""),
        record.get("provider_domain", ""),
        _iso(record.get("seen_at")),
    )


def related_rows(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The ``related`` rows of an article record (one per related URL)."""
    rows = []
    for rel in record.get("related") or ():
        url = rel.get("web_url") or rel.get("amp_web_url") or rel.get("cdn_amp_web_url")
        if url:
            rows.append((record["id"], url, rel.get("title", "")))
    return rows


class Store:
    """A database holding articles, duplicates and related links."""

    url: str

    def write(
        self, articles: Iterable[Mapping[str, Any]], sightings: Iterable[Mapping[str, Any]]
    ) -> tuple[int, int]:
        """Upsert a batch in one transaction; return (article rows, duplicate rows) written."""
        raise NotImplementedError

    def count(self, table: str) -> int:
        """Rows in *table*."""
        raise NotImplementedError

    def duplicates_by_reason(self) -> dict[str, int]:
        """How many duplicate rows per reason."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""


class SqliteStore(Store):
    """SQLite in WAL mode: the embedded default."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            # Every statement is IF NOT EXISTS: safe to run by several processes at once.
            self._db.executescript(_SQLITE_DDL)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0]
                if version is None:
                    self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                elif version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.url}: schema version {version} is newer than this newswire "
                        f"({SCHEMA_VERSION}); upgrade newswire",
                        version=version,
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def write(
        self, articles: Iterable[Mapping[str, Any]], sightings: Iterable[Mapping[str, Any]]
    ) -> tuple[int, int]:
        stored_at = dt.datetime.now(dt.UTC).isoformat()
        articles = list(articles)
        article_rows = [article_row(a, stored_at) for a in articles]
        related = [r for a in articles for r in related_rows(a)]
        duplicate_rows = [duplicate_row(s) for s in sightings]
        cols = ", ".join(_ARTICLE_COLUMNS)
        marks = ", ".join("?" * len(_ARTICLE_COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ARTICLE_COLUMNS if c != "id")
        dcols = ", ".join(_DUPLICATE_COLUMNS)
        dmarks = ", ".join("?" * len(_DUPLICATE_COLUMNS))
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if article_rows:
                    self._db.executemany(
                        f"INSERT INTO articles ({cols}) VALUES ({marks}) "
                        f"ON CONFLICT (id) DO UPDATE SET {updates} WHERE {_NEWER}",
                        article_rows,
                    )
                if related:
                    self._db.executemany(
                        "INSERT INTO related (article_id, url, title) VALUES (?, ?, ?) "
                        "ON CONFLICT (article_id, url) DO UPDATE SET title = excluded.title",
                        related,
                    )
                if duplicate_rows:
                    self._db.executemany(
                        f"INSERT INTO duplicates ({dcols}) VALUES ({dmarks}) "
                        "ON CONFLICT (url, duplicate_of) DO UPDATE SET reason = excluded.reason, "
                        "similarity = excluded.similarity, seen_at = excluded.seen_at",
                        duplicate_rows,
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                retriable = isinstance(exc, sqlite3.OperationalError)  # locked, disk I/O
                raise StoreError(f"{self.url}: {exc}", retriable=retriable) from exc
        return len(article_rows), len(duplicate_rows)

    def count(self, table: str) -> int:
        if table not in ("articles", "duplicates", "related"):
            raise ValueError(f"unknown table {table!r}")
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def duplicates_by_reason(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT reason, count(*) FROM duplicates GROUP BY reason ORDER BY reason"
            ).fetchall()
        return {reason: int(n) for reason, n in rows}

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run a read-only query (for the CLI and tests)."""
        with self._lock:
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return list(cursor.fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (``sqlite:////abs`` for an absolute path)."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"not a sqlite:/// URL: {url!r}", url=url)
    return url[len("sqlite:///") :]


def open_store(url: str) -> Store:
    """Open the store named by *url*: ``sqlite:///PATH`` (``postgresql://`` comes with psycopg)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SqliteStore(sqlite_path(url))
    raise ConfigError(f"unsupported store URL {url!r} (use sqlite:///PATH)", url=url)
