"""Article stores: SQLite (embedded default) and PostgreSQL, one logical schema.

``open_store(url)`` picks the backend from the URL: ``sqlite:///PATH``
(``sqlite:////abs/path`` for an absolute path) or ``postgresql://…``
(also ``postgres://``, ``postgresql+psycopg://``). See :mod:`newswire.stores.base`
for the tables, which version of an article wins, and the error contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from newswire.errors import ConfigError
from newswire.stores.base import (
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    TABLES,
    ArticleFilter,
    Store,
    redact_url,
)
from newswire.stores.sqlite import SqliteStore, sqlite_path

if TYPE_CHECKING:
    from newswire.settings import StoreSettings
    from newswire.stores.postgres import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "SUMMARY_COLUMNS",
    "TABLES",
    "ArticleFilter",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "open_store",
    "redact_url",
    "sqlite_path",
]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def open_store(
    url: str,
    *,
    settings: StoreSettings | None = None,
    create: bool = True,
    connect: bool = True,
) -> Store:
    """Open the store named by *url*.

    *settings* tunes the backend (timeouts, SQLite's ``synchronous``). With
    ``create=False`` a SQLite file that does not exist is an error rather than
    a new empty store (for readers such as the CLI). With ``connect=False``
    nothing is touched until first use (so an unreachable database is not an
    error yet). Raises :class:`~newswire.errors.ConfigError` for an unsupported URL.
    """
    from newswire.settings import StoreSettings

    s = settings or StoreSettings(url=url)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return SqliteStore(
            sqlite_path(url),
            synchronous=s.sqlite_synchronous,
            busy_timeout_s=s.sqlite_busy_timeout_s,
            create=create,
            connect=connect,
        )
    if scheme in _POSTGRES_SCHEMES:
        from newswire.stores.postgres import PostgresStore

        return PostgresStore(
            url,
            connect_timeout_s=s.connect_timeout_s,
            statement_timeout_ms=s.statement_timeout_ms,
            application_name=s.application_name,
            connect=connect,
        )
    raise ConfigError(
        f"unsupported store URL {redact_url(url)!r} (use sqlite:///PATH or postgresql://…)",
        url=redact_url(url),
    )


def __getattr__(name: str) -> Any:
    # PostgresStore imports psycopg: only when asked for.
    if name == "PostgresStore":
        from newswire.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
