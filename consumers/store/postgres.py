"""PostgreSQL, the production store (psycopg 3): COPY into temp tables, one upsert per table.

Times are ``timestamptz``, JSON columns ``jsonb``, booleans ``boolean``. Each
batch is one transaction: the articles are COPYed into a session-local temp
table, then ``INSERT … SELECT … ON CONFLICT (id) DO UPDATE … WHERE newer
RETURNING id`` writes them and says which ids won; those ids' related, topics
and images rows are replaced (deleted if the row was updated, then COPYed).
Sightings go the same way through their own temp table. Full-text search is a
GIN index on a ``tsvector`` expression (``simple`` configuration: no stemming,
no stop words, as SQLite's ``unicode61``; title weighs more than excerpt,
excerpt more than body).

Errors are sorted by SQLSTATE: a value the database refuses (classes 21, 22,
23, 54, or psycopg's own refusal of e.g. a NUL character) is the record's
fault (:class:`StoreError`, not retriable); a deadlock or serialization
failure is transient (:class:`StoreError`, retriable); anything else — the
connection lost, the server shutting down or starting up, out of
connections, a timeout — is an outage (:class:`UnavailableError`), after
which the next call reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

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
    related_out,
    related_rows,
    revision_rows,
    revisions_out,
    search_terms,
    sightings_out,
    topic_rows,
)
from newswire.database import DatabaseURL, connect_error, is_fatal, parse_database_url
from newswire.errors import ConfigError, StoreError, UnavailableError
from newswire.store import Store

__all__ = ["MIGRATIONS", "PostgresSettings", "PostgresStore"]

log = logging.getLogger(__name__)

# What full-text search matches: title (weight A), excerpt (B), body (D). The body is cut
# at 200k characters: a tsvector holds at most 1 MB. Queries repeat this expression
# verbatim, so that they use the index built on it.
_SEARCH = (
    "setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(excerpt, '')), 'B') || "
    "setweight(to_tsvector('simple'::regconfig, left(coalesce(body, ''), 200000)), 'D')"
)

_V1 = [
    """CREATE TABLE IF NOT EXISTS articles (
        id text PRIMARY KEY,
        url text NOT NULL,
        canonical_url text NOT NULL,
        web_url text,
        title text NOT NULL,
        excerpt text,
        body text,
        category text,
        type text,
        published_at timestamptz,
        provider_name text,
        provider_domain text,
        registered_domain text,
        topics jsonb NOT NULL DEFAULT '[]',
        images jsonb NOT NULL DEFAULT '[]',
        quality integer,
        heat integer,
        published boolean,
        language text,
        language_score double precision,
        word_count integer,
        reading_time_s integer,
        secured text,
        extras jsonb NOT NULL DEFAULT '{}',
        source text,
        ingested_at timestamptz,
        enriched_at timestamptz,
        stored_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS articles_published_at ON articles (published_at)",
    "CREATE INDEX IF NOT EXISTS articles_provider ON articles (provider_domain)",
    """CREATE TABLE IF NOT EXISTS duplicates (
        url text NOT NULL,
        duplicate_of text NOT NULL,
        reason text NOT NULL CHECK (reason IN ('url', 'content', 'near')),
        similarity double precision NOT NULL,
        id text,
        canonical_url text,
        title text,
        provider_domain text,
        seen_at timestamptz,
        PRIMARY KEY (url, duplicate_of)
    )""",
    "CREATE INDEX IF NOT EXISTS duplicates_of ON duplicates (duplicate_of)",
    """CREATE TABLE IF NOT EXISTS related (
        article_id text NOT NULL,
        url text NOT NULL,
        title text,
        PRIMARY KEY (article_id, url)
    )""",
]

_V2 = [
    """CREATE TABLE topics (
        article_id text NOT NULL,
        topic text NOT NULL,
        PRIMARY KEY (article_id, topic)
    )""",
    "CREATE INDEX topics_topic ON topics (lower(topic))",
    """CREATE TABLE images (
        article_id text NOT NULL,
        position integer NOT NULL,
        url text NOT NULL,
        width integer,
        height integer,
        is_cached boolean NOT NULL DEFAULT false,
        PRIMARY KEY (article_id, position)
    )""",
    "CREATE INDEX articles_language ON articles (language)",
    "CREATE INDEX duplicates_id ON duplicates (id)",
    # An expression index, not a stored tsvector column: half the cost per insert.
    f"CREATE INDEX articles_search ON articles USING gin (({_SEARCH}))",
    # Articles stored by version 1.
    """INSERT INTO topics (article_id, topic)
        SELECT DISTINCT ON (a.id, lower(trim(t.topic))) a.id, trim(t.topic)
        FROM articles a, jsonb_array_elements_text(a.topics) AS t(topic)
        WHERE trim(t.topic) <> ''
        ON CONFLICT DO NOTHING""",
    """INSERT INTO images (article_id, position, url, width, height, is_cached)
        SELECT a.id, i.n - 1, i.image->>'url', (i.image->>'width')::integer,
               (i.image->>'height')::integer, coalesce((i.image->>'is_cached')::boolean, false)
        FROM articles a, jsonb_array_elements(a.images) WITH ORDINALITY AS i(image, n)
        WHERE i.image->>'url' IS NOT NULL
        ON CONFLICT DO NOTHING""",
]

_V3 = [
    # Revisions: the versions of articles that have had more than one.
    "ALTER TABLE articles ADD COLUMN revisions integer NOT NULL DEFAULT 1",
    "ALTER TABLE articles ADD COLUMN updated_at timestamptz",
    """CREATE TABLE revisions (
        article_id text NOT NULL,
        version text NOT NULL,
        published_at timestamptz,
        ingested_at timestamptz,
        title text NOT NULL,
        excerpt_hash text NOT NULL,
        body_hash text NOT NULL,
        word_count integer,
        stored_at timestamptz NOT NULL,
        PRIMARY KEY (article_id, version)
    )""",
    # Every sighting: keyed by the record dedup saw; rows of version 2 have no source
    # position (-1) and stay one per url and kept article. A new reason: update.
    "ALTER TABLE duplicates ADD COLUMN source_topic text NOT NULL DEFAULT ''",
    "ALTER TABLE duplicates ADD COLUMN source_partition integer NOT NULL DEFAULT -1",
    "ALTER TABLE duplicates ADD COLUMN source_offset bigint NOT NULL DEFAULT -1",
    "ALTER TABLE duplicates DROP CONSTRAINT duplicates_pkey",
    "ALTER TABLE duplicates ADD PRIMARY KEY "
    "(url, duplicate_of, source_topic, source_partition, source_offset)",
    "ALTER TABLE duplicates DROP CONSTRAINT duplicates_reason_check",
    "ALTER TABLE duplicates ADD CONSTRAINT duplicates_reason_check "
    "CHECK (reason IN ('url', 'content', 'near', 'update'))",
    # Related articles: every field the event carries.
    "ALTER TABLE related ADD COLUMN excerpt text",
    "ALTER TABLE related ADD COLUMN published_at timestamptz",
    "ALTER TABLE related ADD COLUMN web_url text",
    "ALTER TABLE related ADD COLUMN amp_web_url text",
    "ALTER TABLE related ADD COLUMN cdn_amp_web_url text",
    "ALTER TABLE related ADD COLUMN type text",
    "ALTER TABLE related ADD COLUMN provider_name text",
    "ALTER TABLE related ADD COLUMN provider_domain text",
    "ALTER TABLE related ADD COLUMN quality integer",
    "ALTER TABLE related ADD COLUMN images jsonb NOT NULL DEFAULT '[]'",
]

#: Statements that take the schema from version N-1 to N.
MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3}

# Temp tables live in the session's pg_temp schema, searched first: names must not shadow ours.
_TEMP_TABLES = [
    "CREATE TEMP TABLE IF NOT EXISTS newswire_articles_in "
    "(LIKE articles INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS newswire_duplicates_in "
    "(LIKE duplicates INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
]
_COLS = ", ".join(ARTICLE_COLUMNS)
_NEWER = (
    "(COALESCE(EXCLUDED.published_at, '-infinity'), COALESCE(EXCLUDED.ingested_at, '-infinity'))"
    " >= (COALESCE(a.published_at, '-infinity'), COALESCE(a.ingested_at, '-infinity'))"
)
_CONTENT = [c for c in ARTICLE_COLUMNS if c not in ("id", "stored_at")]
# A replay (the very same version again) changes nothing, not even stored_at.
_CHANGED = (
    f"({', '.join(f'a.{c}' for c in _CONTENT)}) IS DISTINCT FROM "
    f"({', '.join(f'EXCLUDED.{c}' for c in _CONTENT)})"
)
_UPSERT_ARTICLES = (
    f"INSERT INTO articles AS a ({_COLS}) SELECT {_COLS} FROM newswire_articles_in "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ARTICLE_COLUMNS if c != "id")
    # xmax = 0: the row was inserted, so it has no older child rows to replace.
    + f" WHERE {_NEWER} AND {_CHANGED} RETURNING a.id, (a.xmax = 0) AS inserted"
)
_DCOLS = ", ".join(DUPLICATE_COLUMNS)
# What is COPYed where, in which column order.
_COPIED: dict[str, tuple[str, ...]] = {
    "newswire_articles_in": ARTICLE_COLUMNS,
    "newswire_duplicates_in": DUPLICATE_COLUMNS,
    "related": RELATED_COLUMNS,
    "topics": ("article_id", "topic"),
    "images": ("article_id", "position", "url", "width", "height", "is_cached"),
}
_CHILDREN: dict[str, Callable[[Mapping[str, Any]], Sequence[tuple[Any, ...]]]] = {
    "related": partial(related_rows, json_as_text=False),
    "topics": topic_rows,
    "images": image_rows,
}


# A sighting seen again (a replay: the same source record) is the same row.
_UPSERT_DUPLICATES = (
    f"INSERT INTO duplicates ({_DCOLS}) SELECT {_DCOLS} FROM newswire_duplicates_in "
    f"ON CONFLICT ({', '.join(DUPLICATE_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in DUPLICATE_COLUMNS if c not in DUPLICATE_KEY)
)
_SUMMARY = ", ".join(f"a.{c}" for c in SUMMARY_COLUMNS)
# What the query API shows of an article: the record's columns and the store's own.
_ARTICLE = ", ".join((*ARTICLE_COLUMNS, "revisions", "updated_at"))
_STORED_VERSION = (
    "SELECT id, published_at, ingested_at, title, excerpt, body, word_count, stored_at "
    "FROM articles WHERE id = ANY(%s)"
)
_INSERT_REVISION = (
    f"INSERT INTO revisions ({', '.join(REVISION_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(REVISION_COLUMNS))}) ON CONFLICT DO NOTHING"
)

# SQLSTATE classes: the value is refused (the record's fault) / worth another try.
_REFUSED_CLASSES = ("21", "22", "23", "54")
_TRANSIENT_STATES = ("40001", "40P01", "55P03")
_DEFAULTS = {
    # libpq's TCP keepalives and user timeout: a silently dead server is noticed in ~30 s.
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


def _column_types(conn: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> list[str]:
    """The types of *columns* of *table* (as found on the search path), for binary COPY."""
    found = dict(
        conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        ).fetchall()
    )
    return [found[c] for c in columns]


class PostgresSettings(BaseModel):
    """The ``postgresql`` store: ``NEWSWIRE_POSTGRESQL__<FIELD>``."""

    connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout.")
    statement_timeout_ms: int = Field(
        120_000, ge=0, description="statement_timeout of the store's session (0: none)."
    )
    application_name: str = Field("newswire", description="application_name of the session.")


class PostgresStore(Store):
    """PostgreSQL (``postgresql://user:password@host:port/db?options=…``), writer and reader.

    The connection is opened on first use (or by :meth:`connect`) and opened
    again after an outage; each (re)connection checks the schema version.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        statement_timeout_ms: int = 120_000,
        application_name: str = "newswire",
        connect: bool = True,
    ) -> None:
        parsed = parse_database_url(url, what="store")
        self.url = parsed.redacted
        dsn = parsed.conninfo
        try:
            params: dict[str, Any] = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"{self.url}: not a PostgreSQL URL: {exc}", url=self.url) from exc
        for key, value in _DEFAULTS.items():
            params.setdefault(key, value)
        params.setdefault("connect_timeout", str(max(2, round(connect_timeout_s))))
        params.setdefault("application_name", application_name)
        self._params = params
        self.statement_timeout_ms = statement_timeout_ms
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._types: dict[str, list[str]] = {}  # of the COPY targets, for binary COPY
        if connect:
            self.connect()

    settings_model = PostgresSettings

    @classmethod
    def open_writer(
        cls, url: DatabaseURL, settings: PostgresSettings | None, *, connect: bool = True
    ) -> PostgresStore:
        """A store on *url*; connects (and creates or migrates the schema) unless told not to."""
        s = settings or PostgresSettings()
        return cls(
            url.url,
            connect_timeout_s=s.connect_timeout_s,
            statement_timeout_ms=s.statement_timeout_ms,
            application_name=s.application_name,
            connect=connect,
        )

    @classmethod
    def open_reader(cls, url: DatabaseURL, settings: PostgresSettings | None) -> PostgresStore:
        """A store on *url*, connected."""
        return cls.open_writer(url, settings)

    # -- connection and schema ---------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            self._connection()

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._reset()
        try:
            conn = psycopg.connect(**self._params, autocommit=True)
        except psycopg.Error as exc:
            # No such database, authentication failed…: fatal; unreachable: an outage.
            raise connect_error(exc, "store", self.url) from exc
        try:
            conn.execute(f"SET statement_timeout = {int(self.statement_timeout_ms)}")
            self._migrate(conn)
            for statement in _TEMP_TABLES:
                conn.execute(statement)
            self._types = {
                table: _column_types(conn, table, columns) for table, columns in _COPIED.items()
            }
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error) and is_fatal(exc):
                # e.g. permission denied for schema: no retry will change it.
                raise connect_error(exc, "store", self.url) from exc
            if isinstance(exc, psycopg.Error):
                raise self._error(exc, "opening the store", reset=False) from exc
            raise
        self._conn = conn
        return conn

    def _migrate(self, conn: psycopg.Connection[Any], target: int = SCHEMA_VERSION) -> None:
        """Create the schema or bring it up to *target*, in one transaction.

        A transaction-scoped advisory lock per schema makes concurrent
        start-ups (several store processes) wait for each other.
        """
        if self._version(conn) == target:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.newswire'))")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            version = self._version(conn)
            if version > target:
                raise StoreError(
                    f"{self.url}: schema version {version} is newer than this newswire "
                    f"({target}); upgrade newswire",
                    version=version,
                )
            for step in range(version + 1, target + 1):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            if version < target:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (target,))
            if version:
                log.info("%s: schema migrated from version %d to %d", self.url, version, target)

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(found[0] or 0) if found else 0

    def schema_version(self) -> int:
        with self._lock:
            return self._version(self._connection())

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _error(
        self, exc: BaseException, doing: str, *, reset: bool = True
    ) -> StoreError | UnavailableError:
        what = f"{self.url}: {doing}: {type(exc).__name__}: {exc}".rstrip()
        state = getattr(exc, "sqlstate", None) or ""
        if isinstance(exc, psycopg.DataError | psycopg.IntegrityError) or (
            state[:2] in _REFUSED_CLASSES
        ):
            return StoreError(what, retriable=False, url=self.url, sqlstate=state)
        if not isinstance(exc, psycopg.Error):  # a value psycopg cannot send (encoding, range)
            return StoreError(what, retriable=False, url=self.url)
        if state in _TRANSIENT_STATES:
            return StoreError(what, retriable=True, url=self.url, sqlstate=state)
        if reset:
            self._reset()  # reconnect (and check the schema) on the next call
        return UnavailableError(what, url=self.url, sqlstate=state)

    # -- writes ------------------------------------------------------------------------------

    def write(
        self, articles: Iterable[Mapping[str, Any]], sightings: Iterable[Mapping[str, Any]]
    ) -> tuple[int, int]:
        batch = Batch.of(articles, sightings)
        with self._lock:
            try:
                conn = self._connection()
            except StoreError as exc:
                # Not this batch's fault (e.g. the schema is newer): wait, don't dead-letter.
                raise UnavailableError(str(exc), url=self.url) from exc
            try:
                with conn.transaction():
                    self._write_batch(conn, batch)
            except (psycopg.Error, ValueError, TypeError, OverflowError) as exc:
                raise self._error(exc, f"writing {batch.describe()}") from exc
        return batch.article_records, batch.sighting_records

    def _write_batch(self, conn: psycopg.Connection[Any], batch: Batch) -> None:
        with conn.cursor() as cur:
            if batch.records:
                # What is stored now of these ids, for their revisions (new ids: no rows).
                cur.execute(_STORED_VERSION, ([r["id"] for r in batch.records],))
                stored = {row[0]: StoredVersion(*row[1:]) for row in cur.fetchall()}
                rows = [article_row(r, batch.stored_at, json_as_text=False) for r in batch.records]
                self._copy(cur, "newswire_articles_in", rows)
                cur.execute(_UPSERT_ARTICLES)
                written = cur.fetchall()
                won = {article_id for article_id, _ in written}
                if won:
                    # The winners' child rows replace those of the version they replaced;
                    # the article row stays locked until commit, so no writer interleaves.
                    updated = [article_id for article_id, inserted in written if not inserted]
                    if updated:
                        for table in ("related", "topics", "images"):
                            cur.execute(
                                f"DELETE FROM {table} WHERE article_id = ANY(%s)", (updated,)
                            )
                    winners = [r for r in batch.records if r["id"] in won]
                    for table, rows_of in _CHILDREN.items():
                        self._copy(cur, table, [row for r in winners for row in rows_of(r)])
                plan = revision_rows(batch, stored, batch.stored_at)
                if plan.rows:
                    cur.executemany(_INSERT_REVISION, plan.rows)
                    cur.execute(
                        "UPDATE articles a SET revisions = r.n FROM (SELECT article_id, "
                        "count(*) AS n FROM revisions WHERE article_id = ANY(%s) "
                        "GROUP BY article_id) r WHERE a.id = r.article_id",
                        (plan.recount,),
                    )
                    if plan.updated:
                        cur.execute(
                            "UPDATE articles SET updated_at = %s WHERE id = ANY(%s)",
                            (batch.stored_at, plan.updated),
                        )
            if batch.duplicates:
                self._copy(cur, "newswire_duplicates_in", batch.duplicates)
                cur.execute(_UPSERT_DUPLICATES)

    def _copy(self, cur: psycopg.Cursor[Any], table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Binary COPY of *rows* (in ``_COPIED[table]`` column order) into *table*."""
        if not rows:
            return
        columns = ", ".join(_COPIED[table])
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(self._types[table])
            for row in rows:
                copy.write_row(row)

    # -- reads -------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only query (``%s`` placeholders), rows as dicts (for the CLI and tests)."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(sql, params)
                    return list(cur.fetchall())
            except psycopg.Error as exc:
                raise self._error(exc, "querying") from exc

    def count(self, table: str) -> int:
        check_table(table)
        return int(self.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])

    def duplicates_by_reason(self) -> dict[str, int]:
        rows = self.query(
            "SELECT reason, count(*) AS n FROM duplicates GROUP BY reason ORDER BY reason"
        )
        return {r["reason"]: int(r["n"]) for r in rows}

    def list_articles(self, where: ArticleFilter) -> list[dict[str, Any]]:
        sql = [f"SELECT {_SUMMARY} FROM articles a WHERE TRUE"]
        params: list[Any] = []
        if where.since is not None:
            sql.append("AND a.published_at >= %s")
            params.append(where.since)
        if where.provider:
            sql.append(
                "AND (lower(a.provider_domain) = lower(%s) OR lower(a.provider_name) = lower(%s)"
                " OR lower(a.registered_domain) = lower(%s))"
            )
            params += [where.provider] * 3
        if where.topic:
            sql.append(
                "AND EXISTS (SELECT 1 FROM topics t WHERE t.article_id = a.id"
                " AND lower(t.topic) = lower(%s))"
            )
            params.append(where.topic.strip())
        if where.language:
            sql.append("AND lower(a.language) = lower(%s)")
            params.append(where.language)
        sql.append("ORDER BY a.published_at DESC NULLS LAST, a.id LIMIT %s")
        params.append(where.limit)
        return [article_out(r) for r in self.query(" ".join(sql), params)]

    def get_article(self, article_id: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT {_ARTICLE} FROM articles WHERE id = %s", (article_id,))
        if not rows:
            return None
        article = article_out(rows[0])
        related = ", ".join(c for c in RELATED_COLUMNS if c != "article_id")
        article["related"] = [
            related_out(r)
            for r in self.query(
                f"SELECT {related} FROM related WHERE article_id = %s ORDER BY url", (article_id,)
            )
        ]
        article["duplicates"] = [
            dump_out("duplicates", r)
            for r in self.query(
                f"SELECT {_DCOLS} FROM duplicates WHERE duplicate_of = %s "
                "ORDER BY seen_at NULLS FIRST, url, source_topic, source_partition, "
                "source_offset",
                (article_id,),
            )
        ]
        article["sightings"] = sightings_out(article["duplicates"])
        article["history"] = revisions_out(
            self.query(
                f"SELECT {', '.join(REVISION_COLUMNS)} FROM revisions WHERE article_id = %s",
                (article_id,),
            ),
            article,
        )
        return article

    def find_duplicate(self, duplicate_id: str) -> dict[str, Any] | None:
        rows = self.query(
            f"SELECT {_DCOLS} FROM duplicates WHERE id = %s ORDER BY seen_at DESC NULLS LAST "
            "LIMIT 1",
            (duplicate_id,),
        )
        return dump_out("duplicates", rows[0]) if rows else None

    def search(self, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
        if not any(op != "not" for op, _ in search_terms(text)):
            return []
        rows = self.query(
            f"SELECT {_SUMMARY} FROM articles a, websearch_to_tsquery('simple', %s) q "
            f"WHERE ({_SEARCH}) @@ q "
            f"ORDER BY ts_rank({_SEARCH}, q) DESC, a.published_at DESC NULLS LAST, a.id "
            "LIMIT %s",
            (text, limit),
        )
        return [article_out(r) for r in rows]

    def dump(self, table: str) -> list[dict[str, Any]]:
        check_table(table)
        columns = _ARTICLE if table == "articles" else "*"
        rows = self.query(f"SELECT {columns} FROM {table} ORDER BY {DUMP_ORDER[table]}")
        return [dump_out(table, r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._reset()
