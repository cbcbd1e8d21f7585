"""Stores as plug-ins: the contract a store implements and how one is found by URL scheme.

A store is a class derived from :class:`Store`, registered in the entry-point
group ``newswire.stores`` under the (canonical) scheme of its URLs::

    [project.entry-points."newswire.stores"]
    duckdb = "newswire_duckdb:DuckStore"

The built-ins register ``sqlite`` and ``postgresql`` the same way (the
``postgres://`` and ``postgresql+psycopg://`` spellings map to
``postgresql``, see :mod:`newswire.database`). The ``store`` consumer asks
:func:`open_writer` for a :class:`StoreWriter`; ``newswire articles`` asks
:func:`open_reader` for a :class:`StoreReader`. A store may declare a pydantic
``settings_model``; its settings come from ``NEWSWIRE_<SCHEME>__<FIELD>``
(e.g. ``NEWSWIRE_SQLITE__SYNCHRONOUS``).

Errors a store raises (the runtime acts on them, see the ``store`` consumer):
:class:`~newswire.errors.ConfigError` for a URL or database that can never
work as configured (no such database, authentication failed, permission
denied) — fatal, reported at start-up; :class:`~newswire.errors.UnavailableError`
while the database cannot be reached or is restarting — waited out;
:class:`~newswire.errors.StoreError` when the database refuses a batch
(``retriable`` says whether to try the same batch again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

from pydantic import BaseModel

from newswire import registry
from newswire.database import DatabaseURL, parse_database_url
from newswire.errors import ConfigError

if TYPE_CHECKING:
    from newswire.settings import Settings

__all__ = [
    "STORES",
    "ArticleFilter",
    "Store",
    "StoreReader",
    "StoreWriter",
    "open_reader",
    "open_writer",
    "store_class",
]

STORES = registry.STORES


@dataclass(frozen=True)
class ArticleFilter:
    """What ``articles list`` selects; every field narrows the result.

    ``provider`` matches the provider's domain or name or the registered domain
    (case-insensitive); ``topic`` one of the article's topics (case-insensitive);
    ``since`` a lower bound on ``published_at``.
    """

    since: dt.datetime | None = None
    provider: str | None = None
    topic: str | None = None
    language: str | None = None
    limit: int = 20


@runtime_checkable
class StoreWriter(Protocol):
    """What the ``store`` stage needs: idempotent batched upserts.

    ``write`` upserts one batch in one transaction (articles by id, newest
    version wins; sightings) and returns (article records, sighting records).
    """

    #: The store's URL, password redacted.
    url: str

    def connect(self) -> None:
        """Connect and create or migrate the schema (idempotent); raise to fail early."""
        ...

    def write(
        self, articles: Iterable[Mapping[str, Any]], sightings: Iterable[Mapping[str, Any]]
    ) -> tuple[int, int]:
        """Upsert a batch in one transaction; return (article records, sighting records)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@runtime_checkable
class StoreReader(Protocol):
    """What ``newswire articles`` needs: counts and queries (same result shapes everywhere).

    Times are ISO-8601 UTC text; ``secured`` is never returned.
    """

    #: The store's URL, password redacted.
    url: str

    def count(self, table: str) -> int:
        """Rows in *table* (``articles``, ``duplicates``, …)."""
        ...

    def duplicates_by_reason(self) -> dict[str, int]:
        """How many duplicate sightings per reason."""
        ...

    def list_articles(self, where: ArticleFilter) -> list[dict[str, Any]]:
        """Article summaries, newest publication first."""
        ...

    def get_article(self, article_id: str) -> dict[str, Any] | None:
        """One article with its ``topics``, ``images``, ``related`` and ``duplicates``."""
        ...

    def find_duplicate(self, duplicate_id: str) -> dict[str, Any] | None:
        """The sighting whose own article id is *duplicate_id*, if any."""
        ...

    def search(self, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Summaries of the articles whose title, excerpt or body match *text*, best first."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class Store:
    """Base class of a store plug-in: opens writers and readers for URLs of its scheme.

    The built-ins are one class each that is both writer and reader; a store
    may as well return separate objects, or only write.
    """

    #: Settings of this store, loaded from ``NEWSWIRE_<SCHEME>__<FIELD>`` (None: none).
    settings_model: ClassVar[type[BaseModel] | None] = None

    @classmethod
    def open_writer(cls, url: DatabaseURL, settings: Any, *, connect: bool = True) -> StoreWriter:
        """A writer for *url*; with ``connect=False`` nothing is touched until first use."""
        raise NotImplementedError(f"store {cls.__name__} cannot write")

    @classmethod
    def open_reader(cls, url: DatabaseURL, settings: Any) -> StoreReader:
        """A reader for *url*, which must exist (a reader never creates a store)."""
        raise ConfigError(f"store {url.scheme}:// cannot be queried", url=url.redacted)

    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store_class(url: DatabaseURL) -> type[Store]:
    """The store registered for *url*'s scheme."""
    known = [found.name for found in registry.available(STORES)]
    if url.scheme not in known:
        raise ConfigError(
            f"no store for {url.redacted!r}: scheme {url.scheme}:// is not registered "
            f"(known: {', '.join(f'{k}://' for k in known) or 'none'})",
            url=url.redacted,
        )
    found: type[Store] = registry.load(STORES, url.scheme)
    return found


def _opened(url: str, settings: Settings | None) -> tuple[type[Store], DatabaseURL, Any]:
    parsed = parse_database_url(url, what="store")
    cls = store_class(parsed)
    options = None
    if cls.settings_model is not None:
        if settings is None:
            from newswire.settings import Settings

            settings = Settings()
        options = settings.section(parsed.scheme, cls.settings_model)
    return cls, parsed, options


def open_writer(url: str, settings: Settings | None = None, *, connect: bool = True) -> StoreWriter:
    """The writer of the store named by *url* (its settings from *settings* or the environment).

    Raises :class:`~newswire.errors.ConfigError` for a URL no store takes.
    """
    cls, parsed, options = _opened(url, settings)
    return cls.open_writer(parsed, options, connect=connect)


def open_reader(url: str, settings: Settings | None = None) -> StoreReader:
    """The reader of the existing store named by *url*."""
    cls, parsed, options = _opened(url, settings)
    return cls.open_reader(parsed, options)
