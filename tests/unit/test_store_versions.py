"""Both stores, real databases: revisions (updates), every sighting, related fields, migration.

Issue 11 items 1, 2 and 5, the store side: an update is an ordinary article
record with a known id; the newest version wins, revisions are counted and
listed; every sighting is its own row and a replayed one (at-least-once) is
the same row; related articles keep every field. Each runs on SQLite and on the
PostgreSQL on 127.0.0.1:5432 (its own schema).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from consumers.enrich import Enricher
from consumers.store.base import SCHEMA_VERSION
from consumers.store.postgres import MIGRATIONS as PG_MIGRATIONS
from consumers.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from newswire.cli.app import app
from newswire.store import open_writer
from tests.unit.support import SEED, enriched

UTC = dt.UTC
JAN, FEB, MAR = (dt.datetime(2024, m, 1, 9, 0, tzinfo=UTC) for m in (1, 2, 3))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    s = open_writer(store_url)
    yield s
    s.close()


def version(
    enricher: Enricher, published: dt.datetime, title: str, body: str, **changes: Any
) -> dict[str, Any]:
    """The seed article as of *published* with *title* and *body*."""
    rec = enriched(enricher, SEED, title=title, body=body, publishedDateTime=published)
    rec.update(changes)
    return rec


def sighting(offset: int, duplicate_of: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": "e" * 16,
        "url": "https://www.example.com/story?utm_source=feed",
        "canonical_url": "https://example.com/story",
        "duplicate_of": duplicate_of,
        "reason": "url",
        "similarity": 1.0,
        "title": "A story",
        "provider_domain": "example.com",
        "seen_at": dt.datetime(2024, 5, 1, 12, offset % 60, tzinfo=UTC),
        "source_topic": "articles.raw",
        "source_partition": 3,
        "source_offset": offset,
        **changes,
    }


def rows(store: Any) -> dict[str, list[dict[str, Any]]]:
    return {t: store.dump(t) for t in ("articles", "revisions", "duplicates", "related")}


# -- revisions -------------------------------------------------------------------------------


def test_an_update_wins_is_counted_and_listed_with_what_changed(
    store: Any, enricher: Enricher
) -> None:
    first = version(enricher, JAN, "Storm nears the coast", "The storm is coming.")
    second = version(enricher, FEB, "Storm hits the coast", "The storm came ashore.")
    store.write([first], [])
    before = store.get_article(first["id"])
    assert (before["revisions"], before["updated_at"]) == (1, None)
    assert [r["title"] for r in before["history"]] == ["Storm nears the coast"]
    store.write([second], [])
    shown = store.get_article(first["id"])
    assert shown["title"] == "Storm hits the coast"
    assert shown["revisions"] == 2
    assert shown["updated_at"] is not None
    assert shown["updated_at"] >= before["stored_at"]
    revisions = shown["history"]
    assert [(r["published_at"], r["title"], r["changed"], r["current"]) for r in revisions] == [
        ("2024-01-01T09:00:00+00:00", "Storm nears the coast", [], False),
        ("2024-02-01T09:00:00+00:00", "Storm hits the coast", ["title", "body"], True),
    ]


def test_replays_of_every_version_add_no_row_and_no_revision(
    store: Any, enricher: Enricher
) -> None:
    first = version(enricher, JAN, "Old title", "Old body.")
    second = version(enricher, FEB, "New title", "New body.")
    store.write([first], [])
    store.write([second], [])
    once = rows(store)
    assert len(once["revisions"]) == 2
    # At-least-once: the same records again, alone, together, in any order.
    store.write([first], [])
    store.write([second], [])
    store.write([second, first], [])
    store.write([first, second, first], [])
    assert rows(store) == once
    assert store.get_article(first["id"])["revisions"] == 2


def test_an_older_version_arriving_late_is_a_revision_but_does_not_win(
    store: Any, enricher: Enricher
) -> None:
    newer = version(enricher, FEB, "New title", "New body.")
    older = version(enricher, JAN, "Old title", "New body.")
    store.write([newer], [])
    store.write([older], [])
    shown = store.get_article(newer["id"])
    assert shown["title"] == "New title"
    assert (shown["revisions"], shown["updated_at"]) == (2, None)  # never replaced
    assert [(r["title"], r["changed"]) for r in shown["history"]] == [
        ("Old title", []),
        ("New title", ["title"]),
    ]


def test_versions_in_one_batch_are_all_revisions(store: Any, enricher: Enricher) -> None:
    a = version(enricher, JAN, "T", "Body one.")
    b = version(enricher, FEB, "T", "Body one.", excerpt="A new excerpt.")
    c = version(enricher, MAR, "T", "Body two.", excerpt="A new excerpt.")
    store.write([c, a, b], [])
    shown = store.get_article(a["id"])
    assert shown["revisions"] == 3
    assert shown["body"] == "Body two."
    assert [r["changed"] for r in shown["history"]] == [[], ["excerpt"], ["body"]]
    assert shown["updated_at"] is not None


def test_only_the_publication_time_moved(store: Any, enricher: Enricher) -> None:
    store.write([version(enricher, JAN, "T", "B.")], [])
    store.write([version(enricher, FEB, "T", "B.")], [])
    shown = store.get_article(version(enricher, JAN, "T", "B.")["id"])
    assert [r["changed"] for r in shown["history"]] == [[], ["published_at"]]


def test_a_new_ingest_of_the_same_version_is_not_a_revision(store: Any, enricher: Enricher) -> None:
    rec = version(enricher, JAN, "T", "B.")
    store.write([rec], [])
    store.write([{**rec, "ingested_at": rec["ingested_at"] + dt.timedelta(hours=1)}], [])
    shown = store.get_article(rec["id"])
    assert (shown["revisions"], store.count("revisions")) == (1, 0)
    assert shown["ingested_at"] == "2024-05-01T13:00:00+00:00"  # the newer ingest wins


# -- sightings -------------------------------------------------------------------------------


def test_every_sighting_is_kept_and_a_replay_does_not_inflate_the_count(
    store: Any, enricher: Enricher
) -> None:
    kept = enriched(enricher)
    store.write([kept], [sighting(i, kept["id"]) for i in range(123)])
    assert store.count("duplicates") == 123
    # Redelivered after a crash (at-least-once): the same source records.
    store.write([], [sighting(i, kept["id"]) for i in range(0, 123, 2)])
    store.write([], [sighting(5, kept["id"]), sighting(5, kept["id"])])
    assert store.count("duplicates") == 123
    assert store.duplicates_by_reason() == {"url": 123}
    (summary,) = store.get_article(kept["id"])["sightings"]
    assert summary["url"] == "https://www.example.com/story?utm_source=feed"
    assert summary["count"] == 123
    assert summary["first_seen"] == "2024-05-01T12:00:00+00:00"
    assert summary["last_seen"] == "2024-05-01T12:59:00+00:00"


def test_sightings_differ_by_source_record_url_and_reason(store: Any, enricher: Enricher) -> None:
    kept = enriched(enricher)
    store.write(
        [kept],
        [
            sighting(1, kept["id"]),
            sighting(1, kept["id"], source_topic="other.raw"),
            sighting(1, kept["id"], source_partition=4),
            sighting(
                2, kept["id"], url="https://amp.example.com/story", reason="near", similarity=0.91
            ),
            sighting(3, kept["id"], reason="update"),
        ],
    )
    assert store.count("duplicates") == 5
    assert store.duplicates_by_reason() == {"near": 1, "update": 1, "url": 3}
    summary = {
        (s["url"], s["reason"]): s["count"] for s in store.get_article(kept["id"])["sightings"]
    }
    assert summary == {
        ("https://www.example.com/story?utm_source=feed", "url"): 3,
        ("https://amp.example.com/story", "near"): 1,
        ("https://www.example.com/story?utm_source=feed", "update"): 1,
    }


def test_sightings_without_a_source_position_collapse_per_url_and_original(
    store: Any, enricher: Enricher
) -> None:
    kept = enriched(enricher)
    old = {"source_topic": "", "source_partition": -1, "source_offset": -1}
    store.write([kept], [sighting(1, kept["id"], **old), sighting(2, kept["id"], **old)])
    assert store.count("duplicates") == 1


# -- related ---------------------------------------------------------------------------------


def test_related_articles_keep_every_field_and_show_them(
    store: Any, store_url: str, enricher: Enricher
) -> None:
    rec = enriched(enricher)
    assert rec["related"], "the seed has related articles"
    store.write([rec], [])
    shown = {r["url"]: r for r in store.get_article(rec["id"])["related"]}
    for rel in rec["related"]:
        got = shown[rel["web_url"] or rel["amp_web_url"] or rel["cdn_amp_web_url"]]
        assert got["title"] == rel["title"]
        assert got["excerpt"] == rel["excerpt"]
        assert got["published_at"] == (rel["published_at"] and rel["published_at"].isoformat())
        assert (got["web_url"], got["amp_web_url"], got["cdn_amp_web_url"]) == (
            rel["web_url"],
            rel["amp_web_url"],
            rel["cdn_amp_web_url"],
        )
        assert (got["provider_name"], got["provider_domain"]) == (
            (rel["provider"] or {}).get("name", ""),
            (rel["provider"] or {}).get("domain", ""),
        )
        assert got["type"] == rel["type"]
        assert got["quality"] == rel["quality"]
        assert [i["url"] for i in got["images"]] == [i["url"] for i in rel["images"]]
    table = CliRunner().invoke(app, ["articles", "show", rec["id"], "--store", store_url])
    assert table.exit_code == 0, table.output
    first = rec["related"][0]
    # Rich wraps cells across lines: look for words, the time and the provider.
    words = set(table.output.split())
    assert max(first["excerpt"].split(), key=len) in words
    assert first["published_at"].strftime("%Y-%m-%d") in words
    assert (first["provider"] or {})["domain"] in table.output


# -- articles show ---------------------------------------------------------------------------


def test_articles_show_lists_revisions_and_sightings(
    store: Any, store_url: str, enricher: Enricher
) -> None:
    first = version(enricher, JAN, "Storm nears the coast", "The storm is coming.")
    second = version(enricher, FEB, "Storm hits the coast", "The storm came ashore.")
    store.write([first], [sighting(i, first["id"]) for i in range(3)])
    store.write([second], [])
    runner = CliRunner()
    shown = runner.invoke(app, ["articles", "show", first["id"], "--store", store_url, "--json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert [r["title"] for r in doc["history"]] == [
        "Storm nears the coast",
        "Storm hits the coast",
    ]
    assert doc["sightings"][0]["count"] == 3
    assert len(doc["duplicates"]) == 3
    table = runner.invoke(app, ["articles", "show", first["id"], "--store", store_url])
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert "revisions (2;" in text
    assert "Storm nears the coast" in text
    assert "title, body" in text
    assert "2024-02-01 09:00" in text
    assert "sightings (3)" in text


# -- migration -------------------------------------------------------------------------------


def test_a_version_2_sqlite_store_is_migrated_with_its_rows(
    tmp_path: Path, enricher: Enricher
) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for step in (1, 2):
            for statement in SQLITE_MIGRATIONS[step]:
                db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (2)")
        db.execute(
            "INSERT INTO articles (id, url, canonical_url, title, excerpt, body, published_at,"
            " stored_at) VALUES ('a1', 'https://e.com/1', 'https://e.com/1', 'Old', '', 'Body',"
            " '2024-01-01T09:00:00+00:00', '2024-01-01T10:00:00+00:00')"
        )
        db.execute(
            "INSERT INTO duplicates (url, duplicate_of, reason, similarity, seen_at) VALUES"
            " ('https://e.com/1?utm_source=x', 'a1', 'url', 1.0, '2024-01-02T00:00:00+00:00')"
        )
        db.execute("INSERT INTO related (article_id, url, title) VALUES ('a1', 'https://r', 'R')")
        # Text written by hand: the search index is rebuilt (sqlite.py's note).
        db.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")
    db.close()
    _check_migrated(f"sqlite:///{path}")


@pytest.mark.postgres
def test_a_version_2_postgres_store_is_migrated_with_its_rows(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for step in (1, 2):
            for statement in PG_MIGRATIONS[step]:
                conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("INSERT INTO schema_version VALUES (2)")
        conn.execute(
            "INSERT INTO articles (id, url, canonical_url, title, excerpt, body, published_at,"
            " stored_at) VALUES ('a1', 'https://e.com/1', 'https://e.com/1', 'Old', '', 'Body',"
            " '2024-01-01T09:00:00+00:00', '2024-01-01T10:00:00+00:00')"
        )
        conn.execute(
            "INSERT INTO duplicates (url, duplicate_of, reason, similarity, seen_at) VALUES"
            " ('https://e.com/1?utm_source=x', 'a1', 'url', 1.0, '2024-01-02T00:00:00+00:00')"
        )
        conn.execute("INSERT INTO related (article_id, url, title) VALUES ('a1', 'https://r', 'R')")
    _check_migrated(postgres_url)


def _check_migrated(url: str) -> None:
    store: Any = open_writer(url)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 3
        shown = store.get_article("a1")
        assert (shown["title"], shown["revisions"], shown["updated_at"]) == ("Old", 1, None)
        (dup,) = shown["duplicates"]
        assert (dup["reason"], dup["source_offset"]) == ("url", -1)
        assert shown["sightings"][0]["count"] == 1
        (rel,) = shown["related"]
        assert (rel["url"], rel["title"], rel["images"]) == ("https://r", "R", [])
        # The migrated store takes an update and every new sighting.
        store.write(
            [
                {
                    "id": "a1",
                    "original_url": "https://e.com/1",
                    "canonical_url": "https://e.com/1",
                    "title": "New",
                    "body": "Body",
                    "published_at": dt.datetime(2024, 2, 1, tzinfo=UTC),
                }
            ],
            [sighting(7, "a1", reason="update"), sighting(8, "a1")],
        )
        shown = store.get_article("a1")
        assert (shown["title"], shown["revisions"]) == ("New", 2)
        assert [r["changed"] for r in shown["history"]] == [[], ["title"]]
        assert store.count("duplicates") == 3
    finally:
        store.close()
