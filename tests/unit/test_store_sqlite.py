"""SqliteStore beyond the skeleton's tests: migration, search index, queries, outages."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consumers.enrich import Enricher
from consumers.store.base import SCHEMA_VERSION
from consumers.store.sqlite import MIGRATIONS, SqliteStore
from newswire.errors import ConfigError, UnavailableError
from newswire.settings import Settings
from newswire.store import ArticleFilter, open_reader, open_writer
from tests.unit.support import ARTICLES, SEED, enriched

UTC = dt.UTC
LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def test_a_version_1_store_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[1]:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute(
            "INSERT INTO articles (id, url, canonical_url, title, excerpt, body, topics, images,"
            " stored_at) VALUES ('a1', 'https://e.com/1', 'https://e.com/1', 'Old', '',"
            " 'an ancient word', '[\"Old Topic\", \"old topic\"]',"
            ' \'[{"url": "https://e.com/i.jpg", "width": 5, "is_cached": true}]\', \'now\')'
        )
    db.close()
    store = SqliteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert [r["version"] for r in store.query("SELECT version FROM schema_version")] == [
            SCHEMA_VERSION
        ]
        assert ids(store.search("ancient")) == ["a1"]
        assert store.dump("topics") == [{"article_id": "a1", "topic": "Old Topic"}]
        assert store.dump("images") == [
            {
                "article_id": "a1",
                "position": 0,
                "url": "https://e.com/i.jpg",
                "width": 5,
                "height": None,
                "is_cached": True,
            }
        ]
        assert ids(store.list_articles(ArticleFilter(topic="old topic"))) == ["a1"]
    finally:
        store.close()
    # Opening again migrates nothing and keeps the rows.
    with SqliteStore(path) as again:
        assert again.count("articles") == 1
        assert again.count("topics") == 1


def test_the_search_index_follows_updates_and_replays(
    store: SqliteStore, enricher: Enricher
) -> None:
    old = enriched(enricher, LAPTOP, publishedDateTime="2017-03-17T00:00:00Z")
    store.write([old], [])
    assert ids(store.search("surveillance")) == [old["id"]]
    store.write([old], [])  # a replay: identical text
    assert ids(store.search("surveillance")) == [old["id"]]
    assert store.query("SELECT count(*) FROM articles_fts")[0][0] == 1
    new = enriched(
        enricher, LAPTOP, publishedDateTime="2017-03-18T00:00:00Z", body="Found again, unharmed."
    )
    store.write([new], [])
    assert store.search("surveillance") == []
    assert ids(store.search("unharmed")) == [old["id"]]
    store.write([old], [])  # the older version loses: the index keeps the newer text
    assert ids(store.search("unharmed")) == [old["id"]]
    store.query("INSERT INTO articles_fts (articles_fts) VALUES ('integrity-check')")


def test_search_ranks_title_hits_first_and_ignores_accents_and_case(
    store: SqliteStore, enricher: Enricher
) -> None:
    in_body = enriched(enricher, SEED, body="Something about the Café laptop. " * 3)
    in_title = enriched(enricher, LAPTOP)
    store.write([in_body, in_title], [])
    assert ids(store.search("LAPTOP")) == [in_title["id"], in_body["id"]]
    assert ids(store.search("cafe")) == [in_body["id"]]
    assert ids(store.search("laptop", limit=1)) == [in_title["id"]]


def test_list_articles_filters_combine(store: SqliteStore, enricher: Enricher) -> None:
    seed, laptop = enriched(enricher, SEED), enriched(enricher, LAPTOP)
    store.write([seed, laptop], [])
    since = dt.datetime(2021, 1, 1, tzinfo=UTC)
    assert ids(store.list_articles(ArticleFilter())) == [seed["id"], laptop["id"]]
    assert ids(store.list_articles(ArticleFilter(topic="ai", language="en"))) == [seed["id"]]
    assert ids(store.list_articles(ArticleFilter(since=since, provider="bbc"))) == []
    assert ids(store.list_articles(ArticleFilter(provider="SECURITY"))) == [seed["id"]]
    assert ids(store.list_articles(ArticleFilter(limit=1))) == [seed["id"]]
    summary = store.list_articles(ArticleFilter(limit=1))[0]
    assert summary["topics"] == ["Computer Vision", "AI"]
    assert "body" not in summary and "secured" not in summary


def test_get_article_and_find_duplicate(store: SqliteStore, enricher: Enricher) -> None:
    laptop = enriched(enricher, LAPTOP)
    sighting = {
        "id": "d" * 16,
        "url": "https://www.bbc.co.uk/news/world-us-canada-39310793?utm_source=x",
        "canonical_url": "https://bbc.co.uk/news/world-us-canada-39310793",
        "duplicate_of": laptop["id"],
        "reason": "url",
        "similarity": 1.0,
        "seen_at": dt.datetime(2024, 5, 2, tzinfo=UTC),
    }
    store.write([laptop], [sighting])
    shown = store.get_article(laptop["id"])
    assert shown is not None
    assert shown["published"] is True
    assert [d["id"] for d in shown["duplicates"]] == ["d" * 16]
    assert shown["duplicates"][0]["seen_at"] == "2024-05-02T00:00:00+00:00"
    assert shown["related"] == []
    assert store.get_article("nope") is None
    found = store.find_duplicate("d" * 16)
    assert found is not None and found["duplicate_of"] == laptop["id"]
    assert store.find_duplicate("nope") is None


def test_a_locked_database_is_an_outage_not_a_refused_record(
    tmp_path: Path, enricher: Enricher
) -> None:
    path = tmp_path / "locked.db"
    store = SqliteStore(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(UnavailableError, match="locked") as caught:
            store.write([enriched(enricher)], [])
        assert caught.value.retriable is True
        other.execute("ROLLBACK")
        assert store.write([enriched(enricher)], []) == (1, 0)
    finally:
        other.close()
        store.close()


def test_synchronous_and_other_settings_reach_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = Settings()
    settings.sqlite.synchronous = "NORMAL"
    settings.sqlite.busy_timeout_s = 1.5
    with open_writer(url, settings) as opened:
        assert isinstance(opened, SqliteStore)
        assert opened.query("PRAGMA synchronous")[0][0] == 1  # NORMAL
        assert opened.busy_timeout_s == 1.5
        assert opened.query("PRAGMA journal_mode")[0][0] == "wal"
    with open_writer(url) as default:
        assert default.query("PRAGMA synchronous")[0][0] == 2  # FULL
    with pytest.raises(ConfigError):
        SqliteStore(tmp_path / "x.db", synchronous="SOMETIMES")


def test_open_store_without_create_or_connect(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(ConfigError, match="no such store"):
        open_reader(f"sqlite:///{path}")
    assert not path.exists()
    lazy = open_writer(f"sqlite:///{path}", connect=False)
    assert not path.exists()
    assert lazy.count("articles") == 0  # connects on first use
    lazy.close()
    assert path.exists()


def test_count_and_dump_refuse_unknown_tables(store: SqliteStore) -> None:
    for method in (store.count, store.dump):
        with pytest.raises(ValueError, match="unknown table"):
            method("schema_version")
