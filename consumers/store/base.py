"""What the SQLite and PostgreSQL stores share: tables, columns, rows, versions, query results.

A store holds the tables users query:

``articles``    one row per article id (the hash of the canonical URL)
``duplicates``  one row per sighting (duplicate URL → kept article id)
``related``     the related links of each article
``topics``      one row per (article, topic), for ``--topic``
``images``      one row per (article, position)

plus ``schema_version`` and a full-text index over title, excerpt and body.

Which version of an article wins
--------------------------------
All copies of an article (every URL that canonicalises to the same URL) share
its id. When a record arrives for an id already stored, it replaces the row
only if its ``(published_at, ingested_at)`` is at least the stored one's (a
missing time counts as the oldest): the newest publication wins, then the
newest ingest; on a tie the later write wins. The very same version again (a
replayed record) changes nothing, not even ``stored_at``. Within one batch the
same rule picks one record per id. The article's ``related``, ``topics`` and
``images`` rows always follow the version in ``articles``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from newswire.store import ArticleFilter

__all__ = [
    "ARTICLE_COLUMNS",
    "DUPLICATE_COLUMNS",
    "SCHEMA_VERSION",
    "SUMMARY_COLUMNS",
    "TABLES",
    "ArticleFilter",
    "Batch",
    "article_row",
    "duplicate_row",
    "image_rows",
    "related_rows",
    "topic_rows",
]

#: 1: the walking skeleton (articles, duplicates, related).
#: 2: topics and images tables, full-text search, an index on language.
SCHEMA_VERSION = 2

TABLES = ("articles", "duplicates", "related", "topics", "images")

ARTICLE_COLUMNS = (
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
DUPLICATE_COLUMNS = (
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
#: What ``articles list`` and ``articles search`` show of each article.
SUMMARY_COLUMNS = (
    "id",
    "published_at",
    "provider_name",
    "provider_domain",
    "language",
    "title",
    "url",
    "topics",
    "word_count",
)
#: Never shown by the query API: ``secured`` is opaque and must not end up in logs.
_HIDDEN = frozenset({"secured", "search"})


# -- rows --------------------------------------------------------------------------------------


def iso(value: Any) -> str | None:
    """An aware datetime as ISO-8601 UTC text (``2021-02-18T21:45:00+00:00``), else ``str``.

    Fixed-offset UTC text sorts like time: a whole second (``…:00+00:00``) sorts
    before any fraction of it (``…:00.5…``) because ``+`` < ``.``.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is dt.UTC:  # what Avro decoding gives: no conversion needed
            return value.isoformat()
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _json_text(value: Any, empty: str) -> str:
    """*value* as compact JSON text (*empty* for an empty or missing value)."""
    return _to_json(value) if value else empty


def _as_is(value: Any, empty: str) -> Any:
    return value if value is not None else json.loads(empty)


def article_row(
    record: Mapping[str, Any], stored_at: Any, *, json_as_text: bool = True
) -> tuple[Any, ...]:
    """The ``articles`` row of an enriched article record, in ``ARTICLE_COLUMNS`` order.

    Times stay datetimes (SQLite turns them into text); JSON columns are JSON
    text, or the lists and dicts themselves with ``json_as_text=False``.
    """
    json_text = _json_text if json_as_text else _as_is
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
        record.get("published_at"),
        provider.get("name", ""),
        provider.get("domain", ""),
        record.get("registered_domain", ""),
        json_text(record.get("topics"), "[]"),
        json_text(record.get("images"), "[]"),
        record.get("quality", -1),
        record.get("heat", -1),
        bool(record.get("published")),
        record.get("language", ""),
        record.get("language_score", 0.0),
        record.get("word_count", 0),
        record.get("reading_time_s", 0),
        record.get("secured"),
        json_text(record.get("extras"), "{}"),
        record.get("source", ""),
        record.get("ingested_at"),
        record.get("enriched_at"),
        stored_at,
    )


def duplicate_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The ``duplicates`` row of a sighting record, in ``DUPLICATE_COLUMNS`` order."""
    return (
        record["url"],
        record["duplicate_of"],
        record["reason"],
        record.get("similarity", 1.0),
        record.get("id"),
        record.get("canonical_url"),
        record.get("title", ""),
        record.get("provider_domain", ""),
        record.get("seen_at"),
    )


def related_rows(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The ``related`` rows of an article record: (article_id, url, title), one per URL."""
    rows: dict[str, tuple[str, str, str]] = {}
    for rel in record.get("related") or ():
        url = rel.get("web_url") or rel.get("amp_web_url") or rel.get("cdn_amp_web_url")
        if url:
            rows[url] = (record["id"], url, rel.get("title", ""))
    return list(rows.values())


def topic_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``topics`` rows of an article record: (article_id, topic), first spelling kept."""
    seen: dict[str, tuple[str, str]] = {}
    for topic in record.get("topics") or ():
        text = str(topic).strip()
        if text and text.casefold() not in seen:
            seen[text.casefold()] = (record["id"], text)
    return list(seen.values())


def image_rows(record: Mapping[str, Any]) -> list[tuple[str, int, str, Any, Any, bool]]:
    """The ``images`` rows: (article_id, position, url, width, height, is_cached)."""
    return [
        (
            record["id"],
            position,
            image["url"],
            image.get("width"),
            image.get("height"),
            bool(image.get("is_cached")),
        )
        for position, image in enumerate(record.get("images") or ())
    ]


_OLDEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def _instant(value: Any) -> dt.datetime:
    if value is None:
        return _OLDEST
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    from newswire.model import to_utc

    return to_utc(value) or _OLDEST


def version_key(published_at: Any, ingested_at: Any) -> tuple[dt.datetime, dt.datetime]:
    """What decides which version of an article wins (compare with ``>=``; None is oldest)."""
    return (_instant(published_at), _instant(ingested_at))


@dataclass
class Batch:
    """One batch: the winning record per article id, and the sightings deduplicated."""

    records: list[Mapping[str, Any]]
    duplicates: list[tuple[Any, ...]]
    article_records: int
    sighting_records: int
    stored_at: dt.datetime

    @classmethod
    def of(
        cls,
        articles: Iterable[Mapping[str, Any]],
        sightings: Iterable[Mapping[str, Any]],
        stored_at: dt.datetime | None = None,
    ) -> Batch:
        """Pick the newest record per id (on a tie the later one); dedupe sightings by key."""
        newest: dict[str, Mapping[str, Any]] = {}
        keys: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        n_articles = 0
        for record in articles:
            n_articles += 1
            key = version_key(record.get("published_at"), record.get("ingested_at"))
            article_id = record["id"]
            if article_id not in keys or key >= keys[article_id]:
                newest[article_id] = record
                keys[article_id] = key
        dups: dict[tuple[str, str], tuple[Any, ...]] = {}
        n_sightings = 0
        for sighting in sightings:
            n_sightings += 1
            row = duplicate_row(sighting)
            dups[(row[0], row[1])] = row
        return cls(
            records=list(newest.values()),
            duplicates=list(dups.values()),
            article_records=n_articles,
            sighting_records=n_sightings,
            stored_at=stored_at or dt.datetime.now(dt.UTC),
        )

    def describe(self) -> str:
        """``article id=…`` when the batch holds one record (the runner's one-by-one retry)."""
        if self.article_records + self.sighting_records != 1:
            return f"{self.article_records} article(s), {self.sighting_records} sighting(s)"
        if self.records:
            return f"article id={self.records[0]['id']}"
        return f"sighting url={self.duplicates[0][0]!r} duplicate_of={self.duplicates[0][1]}"


# -- queries -----------------------------------------------------------------------------------


_TERM = re.compile(r'(-?)"([^"]*)"|(\S+)')


def search_terms(text: str) -> list[tuple[str, str]]:
    """A web-search-like query as (operator, term) pairs: op is ``""``, ``"or"`` or ``"not"``.

    ``"a phrase"`` is one term, ``-word`` excludes, ``or`` between terms
    alternates; the rest must all match (the syntax of PostgreSQL's
    ``websearch_to_tsquery``, which the SQLite backend translates to FTS5).
    """
    terms: list[tuple[str, str]] = []
    pending_or = False
    for match in _TERM.finditer(text):
        negated, phrase, word = match.groups()
        if word is not None and word.lower() == "or":
            pending_or = bool(terms)
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = "-", word[1:]
        term = phrase if phrase is not None else word
        if not term or not re.search(r"\w", term):
            continue
        op = "not" if negated else ("or" if pending_or else "")
        terms.append((op, term))
        pending_or = False
    return terms


def out_value(value: Any) -> Any:
    """A value as the query API returns it: datetimes as ISO-8601 UTC text."""
    if isinstance(value, dt.datetime):
        return iso(value)
    return value


def article_out(row: Mapping[str, Any], *, hide: bool = True) -> dict[str, Any]:
    """An ``articles`` row as the query API returns it (same shape from both backends).

    ``secured`` is left out unless *hide* is false (``dump``, for checks).
    """
    result: dict[str, Any] = {}
    for key, value in row.items():
        if key == "search" or (hide and key in _HIDDEN):
            continue
        if key in ("topics", "images", "extras") and isinstance(value, str):
            value = json.loads(value)
        elif key == "published" and value is not None:
            value = bool(value)
        result[key] = out_value(value)
    return result


def check_table(table: str) -> str:
    """*table* if it is one of :data:`TABLES`, else ``ValueError``."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r} (one of {', '.join(TABLES)})")
    return table


#: Primary-key order of each table for ``dump``.
DUMP_ORDER = {
    "articles": "id",
    "duplicates": "url, duplicate_of",
    "related": "article_id, url",
    "topics": "article_id, topic",
    "images": "article_id, position",
}


def dump_out(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of *table* in the shape ``dump`` returns."""
    if table == "articles":
        return article_out(row, hide=False)
    result = {k: out_value(v) for k, v in row.items()}
    if table == "images" and result.get("is_cached") is not None:
        result["is_cached"] = bool(result["is_cached"])
    return result
