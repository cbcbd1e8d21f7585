"""SQLite, the embedded default store: WAL mode, one write transaction per batch, FTS5 search.

Times are ISO-8601 UTC text (they sort like time), JSON columns are text,
booleans are 0/1. Full-text search is an FTS5 index over ``articles``' title,
excerpt and body (external content, kept in step by triggers), tokenised by
``unicode61`` without stemming — the same words PostgreSQL's ``simple``
configuration finds.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, field_validator

from consumers.store.base import (
    ARTICLE_COLUMNS,
    DUMP_ORDER,
    DUPLICATE_COLUMNS,
    DUPLICATE_KEY,
    RELATED_COLUMNS,
    REVISION_COLUMNS,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    ArticleFilter,
    Batch,
    StoredVersion,
    article_out,
    article_row,
    check_table,
    dump_out,
    image_rows,
    iso,
    related_out,
    related_rows,
    revision_rows,
    revisions_out,
    search_terms,
    sightings_out,
    topic_rows,
)
from newswire.database import DatabaseURL, connect_error, parse_database_url
from newswire.errors import ConfigError, StoreError, UnavailableError
from newswire.store import Store

__all__ = ["MIGRATIONS", "SqliteSettings", "SqliteStore", "sqlite_path"]

log = logging.getLogger(__name__)

_V1 = [
    """CREATE TABLE IF NOT EXISTS articles (
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
    )""",
    "CREATE INDEX IF NOT EXISTS articles_published_at ON articles (published_at)",
    "CREATE INDEX IF NOT EXISTS articles_provider ON articles (provider_domain)",
    """CREATE TABLE IF NOT EXISTS duplicates (
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
    )""",
    "CREATE INDEX IF NOT EXISTS duplicates_of ON duplicates (duplicate_of)",
    """CREATE TABLE IF NOT EXISTS related (
        article_id TEXT NOT NULL,
        url TEXT NOT NULL,
        title TEXT,
        PRIMARY KEY (article_id, url)
    )""",
]

_V2 = [
    """CREATE TABLE topics (
        article_id TEXT NOT NULL,
        topic TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (article_id, topic)
    ) WITHOUT ROWID""",
    "CREATE INDEX topics_topic ON topics (topic)",
    # Rows appended in rowid order, a narrow unique index for lookups: a batch of
    # random article ids then dirties far fewer pages than a table keyed by them.
    """CREATE TABLE images (
        article_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        url TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        is_cached INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE UNIQUE INDEX images_article ON images (article_id, position)",
    "CREATE INDEX articles_language ON articles (language)",
    "CREATE INDEX duplicates_id ON duplicates (id)",
    # External content: the text lives once, in articles; the index follows its rowid.
    # Writes keep it in step themselves (much faster than per-row triggers); a trigger
    # covers rows deleted by hand. After editing text by hand, rebuild it:
    #   INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')
    """CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, excerpt, body,
        content='articles', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, excerpt, body)
        VALUES ('delete', old.rowid, old.title, old.excerpt, old.body);
    END""",
    # Articles stored by version 1.
    "INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')",
    """INSERT OR IGNORE INTO topics (article_id, topic)
        SELECT a.id, trim(j.value) FROM articles a, json_each(a.topics) j
        WHERE trim(j.value) <> ''""",
    """INSERT OR IGNORE INTO images (article_id, position, url, width, height, is_cached)
        SELECT a.id, j.key, json_extract(j.value, '$.url'), json_extract(j.value, '$.width'),
               json_extract(j.value, '$.height'),
               coalesce(json_extract(j.value, '$.is_cached'), 0)
        FROM articles a, json_each(a.images) j
        WHERE json_extract(j.value, '$.url') IS NOT NULL""",
]

_V3 = [
    # Revisions: the versions of articles that have had more than one.
    "ALTER TABLE articles ADD COLUMN revisions INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE articles ADD COLUMN updated_at TEXT",
    """CREATE TABLE revisions (
        article_id TEXT NOT NULL,
        version TEXT NOT NULL,
        published_at TEXT,
        ingested_at TEXT,
        title TEXT NOT NULL,
        excerpt_hash TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        word_count INTEGER,
        stored_at TEXT NOT NULL,
        PRIMARY KEY (article_id, version)
    ) WITHOUT ROWID""",
    # Every sighting: keyed by the record dedup saw. SQLite cannot change a primary key
    # or drop a CHECK in place: a new table, the old rows copied (they have no source
    # position: -1, one per url and kept article as before). A new reason: ``update``.
    """CREATE TABLE duplicates_v3 (
        url TEXT NOT NULL,
        duplicate_of TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('url', 'content', 'near', 'update')),
        similarity REAL NOT NULL,
        id TEXT,
        canonical_url TEXT,
        title TEXT,
        provider_domain TEXT,
        seen_at TEXT,
        source_topic TEXT NOT NULL DEFAULT '',
        source_partition INTEGER NOT NULL DEFAULT -1,
        source_offset INTEGER NOT NULL DEFAULT -1,
        PRIMARY KEY (url, duplicate_of, source_topic, source_partition, source_offset)
    )""",
    """INSERT INTO duplicates_v3
        (url, duplicate_of, reason, similarity, id, canonical_url, title, provider_domain,
         seen_at)
        SELECT url, duplicate_of, reason, similarity, id, canonical_url, title,
               provider_domain, seen_at
        FROM duplicates""",
    "DROP TABLE duplicates",
    "ALTER TABLE duplicates_v3 RENAME TO duplicates",
    "CREATE INDEX duplicates_of ON duplicates (duplicate_of)",
    "CREATE INDEX duplicates_id ON duplicates (id)",
    # Related articles: every field the event carries. Rows in rowid (arrival) order and
    # a narrow index by article: a batch dirties far fewer pages than a table keyed by
    # (article, url); one row per URL is the writer's (it replaces an article's rows whole).
    """CREATE TABLE related_v3 (
        article_id TEXT NOT NULL,
        url TEXT NOT NULL,
        title TEXT,
        excerpt TEXT,
        published_at TEXT,
        web_url TEXT,
        amp_web_url TEXT,
        cdn_amp_web_url TEXT,
        type TEXT,
        provider_name TEXT,
        provider_domain TEXT,
        quality INTEGER,
        images TEXT NOT NULL DEFAULT '[]'
    )""",
    """INSERT INTO related_v3 (article_id, url, title)
        SELECT article_id, url, title FROM related ORDER BY article_id, url""",
    "DROP TABLE related",
    "ALTER TABLE related_v3 RENAME TO related",
    "CREATE INDEX related_article ON related (article_id)",
]

#: Statements that take the schema from version N-1 to N.
MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3}

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_PUB, _ING = ARTICLE_COLUMNS.index("published_at"), ARTICLE_COLUMNS.index("ingested_at")
_TEXT = tuple(ARTICLE_COLUMNS.index(c) for c in ("title", "excerpt", "body"))
_NEWER = (
    "(COALESCE(excluded.published_at, ''), COALESCE(excluded.ingested_at, '')) >= "
    "(COALESCE(articles.published_at, ''), COALESCE(articles.ingested_at, ''))"
)
_UPSERT_ARTICLE = (
    f"INSERT INTO articles ({', '.join(ARTICLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ARTICLE_COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ARTICLE_COLUMNS if c != "id")
    + f" WHERE {_NEWER}"
)
# A sighting seen again (a replay: the same source record) is the same row.
_UPSERT_DUPLICATE = (
    f"INSERT INTO duplicates ({', '.join(DUPLICATE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(DUPLICATE_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(DUPLICATE_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in DUPLICATE_COLUMNS if c not in DUPLICATE_KEY)
)
_INSERT_RELATED = (
    f"INSERT INTO related ({', '.join(RELATED_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RELATED_COLUMNS))})"
)
_SEEN = DUPLICATE_COLUMNS.index("seen_at")
_INSERT_REVISION = (
    f"INSERT OR IGNORE INTO revisions ({', '.join(REVISION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(REVISION_COLUMNS))})"
)
_REVISION_TIMES = tuple(REVISION_COLUMNS.index(c) for c in ("published_at", "ingested_at"))
_STORED_VERSION = tuple(
    ARTICLE_COLUMNS.index(c)
    for c in ("published_at", "ingested_at", "title", "excerpt", "body", "word_count", "stored_at")
)
_SUMMARY = ", ".join(f"a.{c}" for c in SUMMARY_COLUMNS)
# The writer checkpoints itself only past ~64 MiB of WAL (the background checkpointer's bound).
_PAGE_SIZE = 16384
_WAL_BOUND_PAGES = 64 * 1024 * 1024 // _PAGE_SIZE
_SELECT_STORED = (
    f"SELECT {', '.join(ARTICLE_COLUMNS)}, rowid FROM articles "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_SELECT_ROWIDS = "SELECT id, rowid FROM articles WHERE id IN (SELECT value FROM json_each(?))"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (``sqlite:////abs`` for an absolute path)."""
    return parse_database_url(url, what="SQLite").path


class SqliteSettings(BaseModel):
    """The ``sqlite`` store: ``NEWSWIRE_SQLITE__<FIELD>``."""

    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        "FULL",
        description="PRAGMA synchronous: FULL keeps committed batches across a power cut "
        "(one fsync per batch); NORMAL only across a crash of the process.",
    )
    busy_timeout_s: float = Field(
        30.0, ge=0, description="Wait this long for another writer's lock, then retry."
    )

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def _sqlite_row(record: Mapping[str, Any], stored_at: str) -> tuple[Any, ...]:
    # Times as ISO-8601 UTC text; ``published`` stays a bool (SQLite stores it as 0/1 and
    # True == 1, so a replayed row still compares equal to the stored one).
    return article_row(record, stored_at, time=iso)


def fts_query(text: str) -> str | None:
    """An FTS5 query for a web-search-like *text* (see ``search_terms``); None matches nothing."""
    terms = search_terms(text)
    positives = [t for t in terms if t[0] != "not"]
    if not positives:
        return None
    # FTS5's NOT is binary: start with a term that is not excluded.
    first = terms.index(positives[0])
    ordered = [("", positives[0][1])] + [t for i, t in enumerate(terms) if i != first]
    parts: list[str] = []
    for i, (op, term) in enumerate(ordered):
        quoted = '"' + term.replace('"', '""') + '"'
        if i:
            parts.append({"": "AND", "or": "OR", "not": "NOT"}[op])
        parts.append(quoted)
    return " ".join(parts)


class _Checkpointer:
    """Copies the WAL into the database file in the background, on its own connection.

    Left to the writer, a checkpoint runs inside the commit that crosses
    ``wal_autocheckpoint`` — with batches of 1000 articles, nearly every commit —
    and writes every page a second time while the batch waits. PASSIVE
    checkpoints here never block the writer; the writer keeps a high
    ``wal_autocheckpoint`` as a bound on the WAL should this thread fall behind.
    """

    def __init__(self, path: Path, synchronous: str, interval_s: float = 0.5) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqlite-checkpoint {path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # busy or I/O: the next round (or the writer) retries
                log.debug("background checkpoint failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._db.close()


class SqliteStore(Store):
    """SQLite in WAL mode: the embedded default (both writer and reader).

    *synchronous* is SQLite's ``PRAGMA synchronous``: ``FULL`` makes each
    committed batch survive a power cut (one fsync of the WAL per batch);
    ``NORMAL`` survives a crash of the process but not of the machine. A write
    waits up to *busy_timeout_s* for another writer, then fails as an outage.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 30.0,
        create: bool = True,
        connect: bool = True,
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigError(
                f"{self.url}: synchronous={synchronous!r} (one of {', '.join(_SYNCHRONOUS)})",
                synchronous=synchronous,
            )
        self.synchronous = synchronous.upper()
        self.busy_timeout_s = busy_timeout_s
        self.create = create
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        if connect:
            self.connect()

    settings_model = SqliteSettings

    @classmethod
    def open_writer(
        cls, url: DatabaseURL, settings: SqliteSettings | None, *, connect: bool = True
    ) -> SqliteStore:
        """A store that creates the file (and its directory) if there is none."""
        s = settings or SqliteSettings()
        return cls(
            url.path, synchronous=s.synchronous, busy_timeout_s=s.busy_timeout_s, connect=connect
        )

    @classmethod
    def open_reader(cls, url: DatabaseURL, settings: SqliteSettings | None) -> SqliteStore:
        """The store in an existing file (a missing file is a ConfigError, not a new store)."""
        s = settings or SqliteSettings()
        return cls(
            url.path, synchronous=s.synchronous, busy_timeout_s=s.busy_timeout_s, create=False
        )

    # -- connection and schema ---------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if not self.create and not self.path.exists():
            raise ConfigError(f"{self.url}: no such store (file {self.path} does not exist)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout_s,
            )
        except (OSError, sqlite3.Error) as exc:
            # A path that cannot be a database (permission, a directory…) is fatal.
            raise connect_error(exc, "store", self.url) from exc
        try:
            # An article row is ~3 KB: 4 KiB pages hold one each and spill; 16 KiB pages
            # write ~15% less per batch (bench_store). Takes effect on a new file only.
            db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA temp_store=MEMORY")
            db.execute("PRAGMA cache_size=-32768")  # 32 MiB
            db.execute(f"PRAGMA wal_autocheckpoint={_WAL_BOUND_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={_WAL_BOUND_PAGES * _PAGE_SIZE}")
            self._migrate(db)
        except sqlite3.Error as exc:
            db.close()
            raise connect_error(exc, "store", self.url) from exc
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _start_checkpointer(self) -> None:
        if self._checkpointer is None:
            try:
                self._checkpointer = _Checkpointer(self.path, self.synchronous)
            except sqlite3.Error as exc:  # then the writer checkpoints at its (high) bound
                log.warning("%s: no background checkpoints: %s", self.url, exc)

    def _migrate(self, db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
        """Create the schema or bring it up to *target*, in one transaction (safe to race)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if version > target:
                raise StoreError(
                    f"{self.url}: schema version {version} is newer than this newswire "
                    f"({target}); upgrade newswire",
                    version=version,
                )
            for step in range(version + 1, target + 1):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            if version < target:
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        rows = self.query("SELECT max(version) AS version FROM schema_version")
        return int(rows[0]["version"])

    # -- writes ------------------------------------------------------------------------------

    def write(
        self, articles: Iterable[Mapping[str, Any]], sightings: Iterable[Mapping[str, Any]]
    ) -> tuple[int, int]:
        batch = Batch.of(articles, sightings)
        stored_at = iso(batch.stored_at) or ""
        with self._lock:
            try:
                db = self._connection()
            except StoreError as exc:
                # Not this batch's fault (e.g. someone upgraded the schema): wait, don't DLQ.
                raise UnavailableError(str(exc), url=self.url) from exc
            self._start_checkpointer()
            try:
                db.execute("BEGIN IMMEDIATE")
                self._write_batch(db, batch, stored_at)
                db.execute("COMMIT")
            except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        self._reset()
                raise self._error(exc, batch) from exc
        return batch.article_records, batch.sighting_records

    def _write_batch(self, db: sqlite3.Connection, batch: Batch, stored_at: str) -> None:
        if batch.records:
            rows = [_sqlite_row(r, stored_at) for r in batch.records]
            stored = self._stored(db, [row[0] for row in rows])
            winners: list[tuple[Mapping[str, Any], tuple[Any, ...]]] = []
            fts_delete: list[tuple[Any, ...]] = []
            for record, row in zip(batch.records, rows, strict=True):
                old = stored.get(row[0])
                if old is None:
                    winners.append((record, row))
                elif (row[_PUB] or "", row[_ING] or "") >= (old[_PUB] or "", old[_ING] or ""):
                    if tuple(row[:-1]) == old[:-2]:  # all but stored_at (and rowid)
                        continue  # a replay of this very version: nothing to write
                    winners.append((record, row))
                    if any(old[i] != row[i] for i in _TEXT):
                        fts_delete.append(("delete", old[-1], *(old[i] for i in _TEXT)))
            if fts_delete:
                db.executemany(
                    "INSERT INTO articles_fts (articles_fts, rowid, title, excerpt, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    fts_delete,
                )
            db.executemany(_UPSERT_ARTICLE, [row for _, row in winners])
            changed = {d[1] for d in fts_delete}
            fresh = self._rowids(db, [row[0] for _, row in winners if row[0] not in stored])
            fts_insert = [
                (fresh[row[0]] if row[0] in fresh else stored[row[0]][-1], *(row[i] for i in _TEXT))
                for _, row in winners
                if row[0] in fresh or stored[row[0]][-1] in changed
            ]
            db.executemany(
                "INSERT INTO articles_fts (rowid, title, excerpt, body) VALUES (?, ?, ?, ?)",
                fts_insert,
            )
            # The winners' child rows replace the ones of the version they replaced.
            replaced = [(row[0],) for _, row in winners if row[0] in stored]
            if replaced:
                for table in ("related", "topics", "images"):
                    db.executemany(f"DELETE FROM {table} WHERE article_id = ?", replaced)
            db.executemany(
                _INSERT_RELATED,
                [r for record, _ in winners for r in related_rows(record, time=iso)],
            )
            db.executemany(
                "INSERT OR IGNORE INTO topics (article_id, topic) VALUES (?, ?)",
                [r for record, _ in winners for r in topic_rows(record)],
            )
            db.executemany(
                "INSERT OR REPLACE INTO images "
                "(article_id, position, url, width, height, is_cached) VALUES (?, ?, ?, ?, ?, ?)",
                [r for record, _ in winners for r in image_rows(record)],
            )
            self._write_revisions(db, batch, stored, stored_at)
        if batch.duplicates:
            db.executemany(
                _UPSERT_DUPLICATE,
                [(*row[:_SEEN], iso(row[_SEEN]), *row[_SEEN + 1 :]) for row in batch.duplicates],
            )

    @staticmethod
    def _write_revisions(
        db: sqlite3.Connection, batch: Batch, stored: dict[str, tuple[Any, ...]], stored_at: str
    ) -> None:
        versions = {
            article_id: StoredVersion(*(row[i] for i in _STORED_VERSION))
            for article_id, row in stored.items()
        }
        plan = revision_rows(batch, versions, stored_at)
        if not plan.rows:
            return
        rows = []
        for row in plan.rows:
            values = list(row)
            for i in _REVISION_TIMES:
                values[i] = iso(values[i])
            rows.append(values)
        db.executemany(_INSERT_REVISION, rows)
        db.executemany(
            "UPDATE articles SET revisions = "
            "(SELECT count(*) FROM revisions r WHERE r.article_id = articles.id) WHERE id = ?",
            [(article_id,) for article_id in plan.recount],
        )
        db.executemany(
            "UPDATE articles SET updated_at = ? WHERE id = ?",
            [(stored_at, article_id) for article_id in plan.updated],
        )

    @staticmethod
    def _stored(db: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """id → the stored row, its columns in ``ARTICLE_COLUMNS`` order then its rowid."""
        # The ids as one JSON parameter: one statement text whatever the batch size, so
        # SQLite prepares it once (an IN list of N marks is parsed again for every N).
        rows = db.execute(_SELECT_STORED, (orjson.dumps(ids).decode(),))
        return {row[0]: row for row in rows}

    @staticmethod
    def _rowids(db: sqlite3.Connection, ids: list[str]) -> dict[str, int]:
        return dict(db.execute(_SELECT_ROWIDS, (orjson.dumps(ids).decode(),)))

    def _error(self, exc: Exception, batch: Batch) -> Exception:
        what = f"{self.url}: writing {batch.describe()}: {type(exc).__name__}: {exc}"
        refused = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError)
        if isinstance(exc, refused) or not isinstance(exc, sqlite3.Error):
            # A constraint, a value too big, a value of a type SQLite cannot store.
            return StoreError(what, retriable=False, url=self.url)
        # Locked, disk full, I/O error, file gone or corrupt: not the record's fault.
        return UnavailableError(what, url=self.url)

    def _reset(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    # -- reads -------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only query (for the CLI and tests)."""
        with self._lock:
            db = self._connection()
            try:
                cursor = db.execute(sql, params)
                cursor.row_factory = sqlite3.Row
                return list(cursor.fetchall())
            except sqlite3.OperationalError as exc:
                raise UnavailableError(f"{self.url}: {exc}", url=self.url) from exc

    def count(self, table: str) -> int:
        check_table(table)
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])

    def duplicates_by_reason(self) -> dict[str, int]:
        rows = self.query("SELECT reason, count(*) FROM duplicates GROUP BY reason ORDER BY reason")
        return {reason: int(n) for reason, n in rows}

    def list_articles(self, where: ArticleFilter) -> list[dict[str, Any]]:
        sql = [f"SELECT {_SUMMARY} FROM articles a WHERE 1 = 1"]
        params: list[Any] = []
        if where.since is not None:
            sql.append("AND a.published_at >= ?")
            params.append(iso(where.since))
        if where.provider:
            sql.append(
                "AND (a.provider_domain = ? COLLATE NOCASE OR a.provider_name = ? COLLATE NOCASE"
                " OR a.registered_domain = ? COLLATE NOCASE)"
            )
            params += [where.provider] * 3
        if where.topic:
            sql.append(
                "AND EXISTS (SELECT 1 FROM topics t WHERE t.article_id = a.id AND t.topic = ?)"
            )
            params.append(where.topic.strip())
        if where.language:
            sql.append("AND a.language = ? COLLATE NOCASE")
            params.append(where.language)
        sql.append("ORDER BY a.published_at DESC NULLS LAST, a.id LIMIT ?")
        params.append(where.limit)
        return [article_out(dict(r)) for r in self.query(" ".join(sql), params)]

    def get_article(self, article_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM articles WHERE id = ?", (article_id,))
        if not rows:
            return None
        article = article_out(dict(rows[0]))
        related = ", ".join(c for c in RELATED_COLUMNS if c != "article_id")
        article["related"] = [
            related_out(dict(r))
            for r in self.query(
                f"SELECT {related} FROM related WHERE article_id = ? ORDER BY url", (article_id,)
            )
        ]
        article["duplicates"] = [
            dump_out("duplicates", dict(r))
            for r in self.query(
                "SELECT * FROM duplicates WHERE duplicate_of = ? "
                "ORDER BY seen_at, url, source_topic, source_partition, source_offset",
                (article_id,),
            )
        ]
        article["sightings"] = sightings_out(article["duplicates"])
        article["history"] = revisions_out(
            [
                dict(r)
                for r in self.query("SELECT * FROM revisions WHERE article_id = ?", (article_id,))
            ],
            article,
        )
        return article

    def find_duplicate(self, duplicate_id: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT * FROM duplicates WHERE id = ? ORDER BY seen_at DESC LIMIT 1", (duplicate_id,)
        )
        return dump_out("duplicates", dict(rows[0])) if rows else None

    def search(self, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
        match = fts_query(text)
        if match is None:
            return []
        rows = self.query(
            f"SELECT {_SUMMARY} FROM articles_fts f JOIN articles a ON a.rowid = f.rowid "
            "WHERE articles_fts MATCH ? "
            # Title hits weigh most, then the excerpt, then the body.
            "ORDER BY bm25(articles_fts, 10.0, 4.0, 1.0), a.published_at DESC NULLS LAST "
            "LIMIT ?",
            (match, limit),
        )
        return [article_out(dict(r)) for r in rows]

    def dump(self, table: str) -> list[dict[str, Any]]:
        check_table(table)
        rows = self.query(f"SELECT * FROM {table} ORDER BY {DUMP_ORDER[table]}")
        return [dump_out(table, dict(r)) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            if self._db is not None:
                self._db.close()
                self._db = None
