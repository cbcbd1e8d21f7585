"""Article stores — the stable import path; the implementations live in :mod:`newswire.stores`.

``open_store(url)`` opens SQLite (``sqlite:///PATH``) or PostgreSQL
(``postgresql://…``). Writes are idempotent upserts keyed by article id, one
transaction per batch, so a replayed topic never duplicates a row. When the
same article (same canonical URL, so same id) arrives again with other
content, the version with the newer ``published_at`` wins, then the newer
``ingested_at``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from newswire.stores import (
    SCHEMA_VERSION,
    ArticleFilter,
    SqliteStore,
    Store,
    open_store,
    redact_url,
    sqlite_path,
)

if TYPE_CHECKING:
    from newswire.stores.postgres import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "ArticleFilter",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "open_store",
    "redact_url",
    "sqlite_path",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from newswire.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
