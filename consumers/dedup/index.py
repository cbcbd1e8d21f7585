"""Opens the dedup state a URL names: ``sqlite:///PATH`` or ``postgresql://…``.

Apart from :mod:`.state` and :mod:`.postgres` so that neither imports the
other's module at import time (the PostgreSQL backend builds on the shared
entry model in :mod:`.state`). URLs are parsed (and passwords redacted) by the
kernel's one database-URL parser, the same the stores use.
"""

from __future__ import annotations

import sqlite3

from consumers.dedup.state import SeenIndex, SqliteSeenIndex
from newswire.database import POSTGRESQL, SQLITE, connect_error, parse_database_url
from newswire.errors import ConfigError

__all__ = ["open_index"]


def open_index(url: str, *, max_entries: int, window_s: int = 0) -> SeenIndex:
    """The dedup state named by *url*: ``sqlite:///PATH`` or ``postgresql://…``.

    Raises :class:`~newswire.errors.ConfigError` for a URL of another kind and for
    a database that can never work as configured (does not exist, authentication
    failed, permission denied), :class:`~newswire.errors.UnavailableError` when
    it cannot be reached now.
    """
    parsed = parse_database_url(url, what="dedup state")
    if parsed.scheme == SQLITE:
        try:
            return SqliteSeenIndex(parsed.path, max_entries=max_entries, window_s=window_s)
        except (OSError, sqlite3.Error) as exc:
            # A path that cannot hold a database is fatal; a lock held too long an outage.
            raise connect_error(exc, "dedup state", url) from exc
    if parsed.scheme == POSTGRESQL:
        import psycopg  # only when needed

        from consumers.dedup.postgres import PostgresSeenIndex

        try:
            return PostgresSeenIndex(parsed.conninfo, max_entries=max_entries, window_s=window_s)
        except psycopg.Error as exc:
            # Setting up refused (permission denied for schema…): fatal; else an outage.
            raise connect_error(exc, "dedup state", url) from exc
    raise ConfigError(
        f"unsupported dedup state URL {parsed.redacted!r} (use sqlite:///PATH or "
        "postgresql://user@host/db)",
        url=parsed.redacted,
    )
