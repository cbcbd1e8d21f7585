"""What the SQLite and PostgreSQL stores share: tables, columns, rows, versions, query results.

A store holds the tables users query:

``articles``    one row per article id (the hash of the canonical URL): its newest version
``revisions``   one row per distinct version of an article that has had more than one
``duplicates``  one row per sighting: each duplicate record dedup reported
``related``     the related articles of each article, every field the event carries
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

Revisions
---------
A version is an article's (published time, title, excerpt, body). An article
whose id arrives with a second distinct version (an update dedup forwarded, or
an older version arriving late) gets a ``revisions`` row for each version it has
had, keyed by (article id, a hash of the version): a replayed version adds
nothing. ``articles.revisions`` counts them (1 for an article with one version);
``articles.updated_at`` is when the store last replaced the article's content
with a newer version (null while it never has). Which fields changed between
revisions is worked out when they are read (:func:`revisions_out`).

Sightings
---------
Every sighting is kept: a row per duplicate record dedup reported, keyed by the
record it saw (``source_topic``, ``source_partition``, ``source_offset``) and
the URL and kept article, so a sighting delivered again (at-least-once) is the
same row, never a second one. Sightings without a source position (written by
an older dedup, ``source_offset`` -1) collapse per (url, kept article), as
before. "How often, where, when" is a ``GROUP BY`` (:func:`sightings_out`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from newswire.store import ArticleFilter

__all__ = [
    "ARTICLE_COLUMNS",
    "DUPLICATE_COLUMNS",
    "RELATED_COLUMNS",
    "REVISION_COLUMNS",
    "SCHEMA_VERSION",
    "SUMMARY_COLUMNS",
    "TABLES",
    "ArticleFilter",
    "Batch",
    "article_row",
    "duplicate_row",
    "image_rows",
    "related_rows",
    "revision_rows",
    "revisions_out",
    "sightings_out",
    "topic_rows",
]

#: 1: the walking skeleton (articles, duplicates, related).
#: 2: topics and images tables, full-text search, an index on language.
#: 3: revisions (table, ``articles.revisions``, ``articles.updated_at``); every sighting
#:    (``duplicates`` keyed by the sighting's source record, any reason); related articles
#:    with every field of the event.
SCHEMA_VERSION = 3

TABLES = ("articles", "duplicates", "related", "topics", "images", "revisions")

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
    "source_topic",
    "source_partition",
    "source_offset",
)
#: The key of a sighting: the record dedup saw, and what it said it duplicates.
DUPLICATE_KEY = ("url", "duplicate_of", "source_topic", "source_partition", "source_offset")
RELATED_COLUMNS = (
    "article_id",
    "url",
    "title",
    "excerpt",
    "published_at",
    "web_url",
    "amp_web_url",
    "cdn_amp_web_url",
    "type",
    "provider_name",
    "provider_domain",
    "quality",
    "images",
)
REVISION_COLUMNS = (
    "article_id",
    "version",
    "published_at",
    "ingested_at",
    "title",
    "excerpt_hash",
    "body_hash",
    "word_count",
    "stored_at",
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
            # orjson writes the same text as isoformat() in a third of the time (no
            # utcoffset() call); five times per article, it shows in the store's profile.
            return orjson.dumps(value)[1:-1].decode()
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def _to_json(value: Any) -> str:
    # orjson: 3.9 times the stdlib's speed on these columns; compact, UTF-8 as is.
    return orjson.dumps(value, default=str).decode()


def _json_text(value: Any, empty: str) -> str:
    """*value* as compact JSON text (*empty* for an empty or missing value)."""
    return _to_json(value) if value else empty


def _as_is(value: Any, empty: str) -> Any:
    return value if value is not None else json.loads(empty)


def _same(value: Any) -> Any:
    return value


def article_row(
    record: Mapping[str, Any],
    stored_at: Any,
    *,
    json_as_text: bool = True,
    time: Callable[[Any], Any] = _same,
) -> tuple[Any, ...]:
    """The ``articles`` row of an enriched article record, in ``ARTICLE_COLUMNS`` order.

    Times are ``time(datetime)`` (SQLite passes :func:`iso`); JSON columns are
    JSON text, or the lists and dicts themselves with ``json_as_text=False``.
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
        time(record.get("published_at")),
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
        time(record.get("ingested_at")),
        time(record.get("enriched_at")),
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
        record.get("source_topic") or "",
        _int(record.get("source_partition"), -1),
        _int(record.get("source_offset"), -1),
    )


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def related_rows(
    record: Mapping[str, Any], *, json_as_text: bool = True, time: Callable[[Any], Any] = _same
) -> list[tuple[Any, ...]]:
    """The ``related`` rows of an article record (``RELATED_COLUMNS``), one per URL.

    ``url`` is the related article's web URL, else its AMP URL, else its AMP-cache
    URL; the three are kept as well. ``images`` is JSON text (or the list itself
    with ``json_as_text=False``).
    """
    rows: dict[str, tuple[Any, ...]] = {}
    for rel in record.get("related") or ():
        url = rel.get("web_url") or rel.get("amp_web_url") or rel.get("cdn_amp_web_url")
        if url:
            provider = rel.get("provider") or {}
            images = rel.get("images") or []
            rows[url] = (
                record["id"],
                url,
                rel.get("title", ""),
                rel.get("excerpt", ""),
                time(rel.get("published_at")),
                rel.get("web_url"),
                rel.get("amp_web_url"),
                rel.get("cdn_amp_web_url"),
                rel.get("type"),
                provider.get("name", ""),
                provider.get("domain", ""),
                rel.get("quality", -1),
                _json_text(images, "[]") if json_as_text else images,
            )
    return list(rows.values())


# -- revisions ---------------------------------------------------------------------------------


def _digest(text: str | None) -> str:
    return xxhash.xxh3_64_hexdigest((text or "").encode("utf-8", "surrogatepass"))


def version_of(published_at: Any, title: Any, excerpt: Any, body: Any) -> str:
    """The identity of a version of an article: a hash of its publication time and text."""
    parts = (iso(published_at) or "", title or "", excerpt or "", body or "")
    return xxhash.xxh3_128_hexdigest("\x1f".join(parts).encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class StoredVersion:
    """What a revision needs of an article row already in the store."""

    published_at: Any
    ingested_at: Any
    title: str
    excerpt: str
    body: str
    word_count: int
    stored_at: Any

    @property
    def version(self) -> str:
        """Its :func:`version_of`."""
        return version_of(self.published_at, self.title, self.excerpt, self.body)

    def row(self, article_id: str) -> tuple[Any, ...]:
        """Its ``revisions`` row (``REVISION_COLUMNS``)."""
        return (
            article_id,
            self.version,
            self.published_at,
            self.ingested_at,
            self.title,
            _digest(self.excerpt),
            _digest(self.body),
            self.word_count,
            self.stored_at,
        )


def _record_version(record: Mapping[str, Any], stored_at: Any) -> StoredVersion:
    return StoredVersion(
        record.get("published_at"),
        record.get("ingested_at"),
        record.get("title") or "",
        record.get("excerpt") or "",
        record.get("body") or "",
        record.get("word_count") or 0,
        stored_at,
    )


@dataclass
class RevisionPlan:
    """What one batch changes in ``revisions``: rows to add, ids to recount, ids updated."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    #: Ids whose ``articles.revisions`` to recount.
    recount: list[str] = field(default_factory=list)
    #: Ids whose content this batch replaced with a newer version (``updated_at``).
    updated: list[str] = field(default_factory=list)


def revision_rows(
    batch: Batch, stored: Mapping[str, StoredVersion], stored_at: Any
) -> RevisionPlan:
    """The revisions of *batch* given the *stored* version of its ids already in the store.

    An id gets rows only once it has two distinct versions (stored or in the
    batch); every version gets its row, so a replayed one is a conflict to
    ignore, never a new revision.
    """
    plan = RevisionPlan()
    # Only an id already stored or arriving more than once can have a second version.
    winners = {r["id"]: r for r in batch.records if r["id"] in stored or r["id"] in batch.many}
    for article_id, winner in winners.items():
        records = batch.many.get(article_id) or [winner]
        old = stored.get(article_id)
        versions: dict[str, tuple[Any, ...]] = {}
        if old is not None:
            versions[old.version] = old.row(article_id)
        for record in records:
            new = _record_version(record, stored_at)
            versions.setdefault(new.version, new.row(article_id))
        if len(versions) < 2:
            continue  # one version (a first arrival or a replay): nothing to count
        plan.rows.extend(versions.values())
        plan.recount.append(article_id)
        if old is None or (
            _record_version(winner, stored_at).version != old.version
            and version_key(winner.get("published_at"), winner.get("ingested_at"))
            >= version_key(old.published_at, old.ingested_at)
        ):
            plan.updated.append(article_id)
    return plan


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
    #: Every record of each id that came more than once in the batch (for revisions).
    many: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)

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
        many: dict[str, list[Mapping[str, Any]]] = {}
        n_articles = 0
        for record in articles:
            n_articles += 1
            key = version_key(record.get("published_at"), record.get("ingested_at"))
            article_id = record["id"]
            if article_id in keys:
                many.setdefault(article_id, [newest[article_id]]).append(record)
            if article_id not in keys or key >= keys[article_id]:
                newest[article_id] = record
                keys[article_id] = key
        dups: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        n_sightings = 0
        for sighting in sightings:
            n_sightings += 1
            row = duplicate_row(sighting)
            dups[(row[0], row[1], *row[-3:])] = row
        return cls(
            records=list(newest.values()),
            duplicates=list(dups.values()),
            article_records=n_articles,
            sighting_records=n_sightings,
            stored_at=stored_at or dt.datetime.now(dt.UTC),
            many=many,
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
    "duplicates": ", ".join(DUPLICATE_KEY),
    "related": "article_id, url",
    "topics": "article_id, topic",
    "images": "article_id, position",
    "revisions": "article_id, version",
}


def dump_out(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of *table* in the shape ``dump`` returns."""
    if table == "articles":
        return article_out(row, hide=False)
    if table == "related":
        return related_out(row)
    result = {k: out_value(v) for k, v in row.items()}
    if table == "images" and result.get("is_cached") is not None:
        result["is_cached"] = bool(result["is_cached"])
    return result


def related_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``related`` row as the query API returns it (``images`` as a list)."""
    result = {k: out_value(v) for k, v in row.items()}
    if isinstance(result.get("images"), str):
        result["images"] = json.loads(result["images"])
    elif result.get("images") is None:
        result["images"] = []
    return result


_TEXT_FIELDS = (("title", "title"), ("excerpt_hash", "excerpt"), ("body_hash", "body"))


def revisions_out(
    rows: Sequence[Mapping[str, Any]], article: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The revisions of *article*, oldest first, each with what changed since the one before.

    *rows* are its ``revisions`` rows; an article that never had a second
    version has none, and gets its one version from *article*. ``changed`` lists
    ``title``, ``excerpt``, ``body`` (or ``published_at`` when only the time
    moved); the first revision's is empty. ``current`` marks the stored version.
    """
    if not rows:
        return [
            {
                "published_at": out_value(article.get("published_at")),
                "ingested_at": out_value(article.get("ingested_at")),
                "stored_at": out_value(article.get("stored_at")),
                "title": article.get("title"),
                "word_count": article.get("word_count"),
                "changed": [],
                "current": True,
            }
        ]
    current = version_of(
        article.get("published_at"),
        article.get("title"),
        article.get("excerpt"),
        article.get("body"),
    )
    ordered = sorted(rows, key=lambda r: version_key(r.get("published_at"), r.get("ingested_at")))
    out: list[dict[str, Any]] = []
    previous: Mapping[str, Any] | None = None
    for row in ordered:
        changed: list[str] = []
        if previous is not None:
            changed = [name for col, name in _TEXT_FIELDS if row[col] != previous[col]]
            if not changed:
                changed = ["published_at"]
        out.append(
            {
                "published_at": out_value(row.get("published_at")),
                "ingested_at": out_value(row.get("ingested_at")),
                "stored_at": out_value(row.get("stored_at")),
                "title": row.get("title"),
                "word_count": row.get("word_count"),
                "changed": changed,
                "current": row.get("version") == current,
            }
        )
        previous = row
    return out


def sightings_out(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every sighting (``duplicates`` rows of one article) summarised per URL and reason.

    Each: ``url``, ``reason``, ``count``, ``first_seen``, ``last_seen``, the
    highest ``similarity`` and the duplicate's ``provider_domain``; in the order
    first seen.
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        seen = out_value(row.get("seen_at"))
        key = (row["url"], row["reason"])
        group = groups.get(key)
        if group is None:
            groups[key] = {
                "url": row["url"],
                "reason": row["reason"],
                "count": 1,
                "first_seen": seen,
                "last_seen": seen,
                "similarity": row.get("similarity"),
                "provider_domain": row.get("provider_domain"),
            }
            continue
        group["count"] += 1
        if seen is not None:
            if group["first_seen"] is None or seen < group["first_seen"]:
                group["first_seen"] = seen
            if group["last_seen"] is None or seen > group["last_seen"]:
                group["last_seen"] = seen
        if (row.get("similarity") or 0) > (group["similarity"] or 0):
            group["similarity"] = row.get("similarity")
    return sorted(groups.values(), key=lambda g: (g["first_seen"] or "", g["url"]))
