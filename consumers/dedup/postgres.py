"""The dedup state in PostgreSQL: shared by every instance of a dedup consumer group.

Same model as :class:`~consumers.dedup.state.SqliteSeenIndex` (entries, and
keys each held by one entry), in three tables: ``newswire_dedup_entries``,
``newswire_dedup_keys`` (``key`` is the primary key) and
``newswire_dedup_meta``.

Why claims are atomic: a batch's keys are inserted with ``INSERT … ON CONFLICT
(key) DO NOTHING RETURNING key``, in ascending key order. If another instance
inserted one of them and has not committed yet, PostgreSQL makes this insert
wait for its commit and then skips the row; a key that was free at lookup but
comes back unclaimed means the batch lost a race, and the judge rolls back and
judges again against the winner's committed entry. Ascending order on every
instance means two inserters never wait on each other in a cycle.

Eviction runs after the batch's commit, in its own short transaction, by one
instance at a time (``pg_try_advisory_xact_lock``); the entry count and the
newest event time are kept in ``newswire_dedup_meta``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import psycopg

from consumers.dedup.sketch import FORMAT
from consumers.dedup.state import (
    ADDED_COLUMNS,
    CLAIM_FLAG,
    ENTRY_COLUMNS,
    JOINED_ENTRY_COLUMNS,
    Entry,
    entry_from_row,
    entry_row,
    eviction_victims,
    victim_keys,
)
from newswire.database import connect_error, redact_url
from newswire.errors import ConfigError, UnavailableError

__all__ = ["PostgresSeenIndex"]

log = logging.getLogger(__name__)

_EVICT_CHUNK = 5000
_LOCK_ID = 0x6E77_6464  # "nwdd": the advisory lock of the evicting instance
# Advisory locks are database-wide: the lock is keyed by the schema too, so dedup groups in
# two schemas of one database never make each other wait or skip eviction.
_LOCK_KEY = "(%s, hashtext(current_schema()))"


def lock_schema(conn: psycopg.Connection[Any], *, wait: bool = True) -> bool:
    """Take this schema's dedup lock for the current transaction; False if *wait* is off
    and another instance holds it."""
    if wait:
        conn.execute(f"SELECT pg_advisory_xact_lock{_LOCK_KEY}", (_LOCK_ID,))
        return True
    row = conn.execute(f"SELECT pg_try_advisory_xact_lock{_LOCK_KEY}", (_LOCK_ID,)).fetchone()
    return bool(row and row[0])


_DDL = """
CREATE TABLE IF NOT EXISTS newswire_dedup_meta (name text PRIMARY KEY, value bigint NOT NULL,
    text_value text);
CREATE SEQUENCE IF NOT EXISTS newswire_dedup_seq;
CREATE TABLE IF NOT EXISTS newswire_dedup_entries (
    seq bigint PRIMARY KEY,
    article bigint NOT NULL,
    kept bigint NOT NULL,
    claimant bigint NOT NULL,
    reason smallint NOT NULL,
    similarity real,
    event_time bigint NOT NULL,
    content bigint,
    sketch bytea,
    kept_text text,
    numbers integer,
    version bigint,
    ingested bigint
);
CREATE TABLE IF NOT EXISTS newswire_dedup_keys (key bigint PRIMARY KEY, seq bigint NOT NULL);
"""


class PostgresSeenIndex:
    """A SeenIndex in PostgreSQL, shared by the instances of a consumer group."""

    def __init__(self, url: str, *, max_entries: int = 1_000_000, window_s: int = 0) -> None:
        self.url = url
        self.max_entries = max_entries
        self.window_s = window_s
        self.evicted = 0
        self._size = 0
        self._conn: psycopg.Connection[Any] | None = None
        with self._connect() as conn, conn.transaction():
            lock_schema(conn)
            for statement in _DDL.strip().split(";\n"):
                conn.execute(statement)
            for column in ADDED_COLUMNS:
                conn.execute(
                    f"ALTER TABLE newswire_dedup_entries ADD COLUMN IF NOT EXISTS {column} bigint"
                )
            conn.execute(
                "INSERT INTO newswire_dedup_meta VALUES ('format', 0, %s), ('entries', 0, NULL),"
                " ('watermark', 0, NULL) ON CONFLICT (name) DO NOTHING",
                (FORMAT,),
            )
            stored = conn.execute(
                "SELECT text_value FROM newswire_dedup_meta WHERE name = 'format'"
            ).fetchone()
            if stored is None or stored[0] != FORMAT:
                raise ConfigError(
                    f"{redact_url(url)}: dedup state has sketch format {stored and stored[0]!r}, "
                    f"this newswire writes {FORMAT!r}; use another database or schema",
                    url=redact_url(url),
                )
            self._read_size(conn)

    # -- connection --------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                # No such database, authentication failed…: fatal; unreachable: an outage.
                raise connect_error(exc, "dedup state", self.url) from exc
        return self._conn

    def _read_size(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(
            "SELECT value FROM newswire_dedup_meta WHERE name = 'entries'"
        ).fetchone()
        self._size = int(row[0]) if row else 0

    def _failed(self, exc: psycopg.Error) -> UnavailableError:
        """A database error as the retriable error the runtime waits out."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
        return UnavailableError(
            f"dedup state {redact_url(self.url)}: {type(exc).__name__}: {exc}",
            url=redact_url(self.url),
        )

    # -- the batch ---------------------------------------------------------------------------

    def begin(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN")
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        self._inserted = 0
        self._newest = 0

    def lookup(self, keys: Collection[int]) -> dict[int, Entry]:
        assert self._conn is not None
        try:
            rows = self._conn.execute(
                f"SELECT k.key, {JOINED_ENTRY_COLUMNS} FROM newswire_dedup_keys k "
                "JOIN newswire_dedup_entries e ON e.seq = k.seq WHERE k.key = ANY(%s)",
                (list(set(keys)),),
            ).fetchall()
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        found: dict[int, Entry] = {}
        by_seq: dict[int, Entry] = {}
        for row in rows:
            entry = by_seq.get(row[-1])
            if entry is None:
                entry = by_seq[row[-1]] = entry_from_row(row[1:])
            found[row[0]] = entry
        return found

    def insert(self, entries: Sequence[Entry]) -> set[int]:
        if not entries:
            return set()
        assert self._conn is not None
        conn = self._conn
        try:
            seqs = [
                r[0]
                for r in conn.execute(
                    "SELECT nextval('newswire_dedup_seq') FROM generate_series(1, %s)",
                    (len(entries),),
                ).fetchall()
            ]
            claims: dict[int, int] = {}
            takeovers: list[tuple[int, int, int, int]] = []
            for entry, seq in zip(entries, seqs, strict=True):
                entry.seq = seq
                for key in entry.keys:
                    claims.setdefault(key, seq)
                takeovers.extend((key, old, seq, grant) for key, old, grant in entry.takeover)
                self._newest = max(self._newest, entry.event_time)
            with conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO newswire_dedup_entries ({ENTRY_COLUMNS}) "
                    f"VALUES ({', '.join(['%s'] * len(ENTRY_COLUMNS.split(',')))})",
                    [entry_row(e) for e in entries],
                )
            lost: set[int] = set()
            for key, old, seq, grant in sorted(takeovers):
                # Compare-and-set: if another instance moved the key since our lookup, this
                # waits for its commit and then matches no row (READ COMMITTED re-checks).
                taken = conn.execute(
                    "UPDATE newswire_dedup_keys SET seq = %s WHERE key = %s AND seq = %s",
                    (seq, key, old),
                )
                if taken.rowcount != 1:
                    lost.add(key)
                    continue
                conn.execute(
                    "INSERT INTO newswire_dedup_keys VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (grant, old),
                )
                conn.execute(
                    "UPDATE newswire_dedup_entries SET reason = reason | %s WHERE seq = %s",
                    (CLAIM_FLAG, old),
                )
            ordered = sorted(claims)
            won = conn.execute(
                "INSERT INTO newswire_dedup_keys (key, seq) "
                "SELECT k, s FROM unnest(%s::bigint[], %s::bigint[]) AS t(k, s) ORDER BY k "
                "ON CONFLICT (key) DO NOTHING RETURNING key",
                (ordered, [claims[k] for k in ordered]),
            ).fetchall()
            self._inserted = len(entries)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        return lost | (set(claims) - {r[0] for r in won})

    def rollback(self) -> None:
        if self._conn is None or self._conn.closed:
            return
        try:
            self._conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            log.warning("dedup state %s: rollback failed: %s", redact_url(self.url), exc)
            self._failed(exc)

    def commit(self) -> None:
        assert self._conn is not None
        conn = self._conn
        try:
            if self._inserted:
                row = conn.execute(
                    "UPDATE newswire_dedup_meta SET value = value + %s WHERE name = 'entries' "
                    "RETURNING value",
                    (self._inserted,),
                ).fetchone()
                conn.execute(
                    "UPDATE newswire_dedup_meta SET value = greatest(value, %s) "
                    "WHERE name = 'watermark'",
                    (self._newest,),
                )
                self._size = int(row[0]) if row else self._size
            conn.execute("COMMIT")
            self.evicted += self._evict(conn)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def _evict(self, conn: psycopg.Connection[Any]) -> int:
        """Evict beyond the bounds, if no other instance is doing it right now."""
        over = self._size > self.max_entries
        if not over and not self.window_s:
            return 0
        evicted = 0
        with conn.transaction():
            if not lock_schema(conn, wait=False):
                return 0
            size, newest = (
                r[0]
                for r in conn.execute(
                    "SELECT value FROM newswire_dedup_meta WHERE name IN ('entries', 'watermark') "
                    "ORDER BY name"
                ).fetchall()
            )
            cutoff = newest - self.window_s if self.window_s else None
            while True:
                excess = size - self.max_entries
                if excess <= 0 and cutoff is None:
                    break
                limit = min(max(excess, 0), _EVICT_CHUNK) if cutoff is None else _EVICT_CHUNK
                rows = conn.execute(
                    f"SELECT {ENTRY_COLUMNS} FROM newswire_dedup_entries ORDER BY seq LIMIT %s",
                    (limit,),
                ).fetchall()
                victims = eviction_victims(rows, excess, cutoff)
                if not victims:
                    break
                keys = victim_keys(victims)
                conn.execute(
                    "DELETE FROM newswire_dedup_keys k USING unnest(%s::bigint[], %s::bigint[]) "
                    "AS t(key, seq) WHERE k.key = t.key AND k.seq = t.seq",
                    ([k for k, _ in keys], [s for _, s in keys]),
                )
                conn.execute(
                    "DELETE FROM newswire_dedup_entries WHERE seq = ANY(%s)",
                    ([e.seq for e in victims],),
                )
                size -= len(victims)
                evicted += len(victims)
                if len(victims) < len(rows) or len(rows) < limit:
                    break
            if evicted:
                row = conn.execute(
                    "UPDATE newswire_dedup_meta SET value = value - %s WHERE name = 'entries' "
                    "RETURNING value",
                    (evicted,),
                ).fetchone()
                self._size = int(row[0]) if row else self._size
        return evicted

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
