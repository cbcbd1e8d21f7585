"""SqliteStore: rows users query, idempotent upserts, newest version wins, schema versions."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consumers.enrich import Enricher
from consumers.store.base import SCHEMA_VERSION
from consumers.store.sqlite import SqliteStore, sqlite_path
from newswire.errors import ConfigError, StoreError
from newswire.store import open_writer
from tests.unit.support import ARTICLES, SEED, enriched, fields

UTC = dt.UTC
LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
UTM = ARTICLES / "006_us-secret-service-laptop-stolen_variant_utm.txt"


def row(store: SqliteStore, article_id: str) -> dict[str, Any]:
    (found,) = store.query("SELECT * FROM articles WHERE id = ?", (article_id,))
    return dict(found)


def related_of(store: SqliteStore, article_id: str) -> dict[str, str]:
    rows = store.query("SELECT url, title FROM related WHERE article_id = ?", (article_id,))
    return {r["url"]: r["title"] for r in rows}


def sighting(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "1111111111111111",
        "url": "https://www.bbc.co.uk/news/x?utm_source=t",
        "canonical_url": "https://bbc.co.uk/news/x",
        "duplicate_of": "2222222222222222",
        "reason": "url",
        "similarity": 1.0,
        "title": "Title",
        "provider_domain": "bbc.co.uk",
        "seen_at": dt.datetime(2024, 5, 1, tzinfo=UTC),
    }
    return {**base, **changes}


def test_an_enriched_seed_becomes_one_row_with_the_expected_columns(
    store: SqliteStore, enricher: Enricher
) -> None:
    rec = enriched(enricher)
    secret = fields(SEED)["secured"]
    assert store.write([rec], []) == (1, 0)
    got = row(store, rec["id"])
    assert got["id"] == rec["id"]
    assert got["url"] == fields(SEED)["originalUrl"]  # as received, www. and all
    assert got["canonical_url"] == rec["canonical_url"]
    assert got["canonical_url"] != got["url"]
    assert got["title"] == fields(SEED)["title"]
    assert got["published_at"] == "2021-02-18T21:45:00+00:00"
    assert dt.datetime.fromisoformat(got["published_at"]) == dt.datetime(
        2021, 2, 18, 21, 45, tzinfo=UTC
    )
    assert got["provider_name"] == "Security"
    assert got["provider_domain"] == "securityinfowatch.com"
    assert got["registered_domain"] == "securityinfowatch.com"
    assert json.loads(got["topics"]) == ["Computer Vision", "AI"]
    assert json.loads(got["images"])[0]["width"] == 1200
    assert got["language"] == "en"
    assert got["word_count"] == rec["word_count"] == 0
    assert got["quality"] == 37
    assert got["published"] == 0
    assert got["secured"] == secret  # untouched
    assert dt.datetime.fromisoformat(got["ingested_at"]) == rec["ingested_at"]
    assert got["source"] == SEED.name
    assert dt.datetime.fromisoformat(got["stored_at"]).tzinfo is not None
    assert json.loads(got["extras"]) == {}


def test_a_body_with_words_is_counted_in_the_row(store: SqliteStore, enricher: Enricher) -> None:
    rec = enriched(enricher, LAPTOP)
    store.write([rec], [])
    got = row(store, rec["id"])
    assert got["word_count"] == len(fields(LAPTOP)["body"].split())
    assert got["word_count"] > 100
    assert got["reading_time_s"] > 0
    assert got["registered_domain"] == "bbc.co.uk"
    assert got["body"] == fields(LAPTOP)["body"]


def test_url_is_the_original_url_as_received(store: SqliteStore, enricher: Enricher) -> None:
    rec = enriched(enricher, UTM)
    store.write([rec], [])
    got = row(store, rec["id"])
    assert "utm_source=twitter" in got["url"]
    assert got["canonical_url"] == "https://bbc.co.uk/news/world-us-canada-39310793"


def test_published_at_with_an_offset_is_stored_as_utc(
    store: SqliteStore, enricher: Enricher
) -> None:
    rec = enriched(enricher, publishedDateTime="2021-02-18T23:45:00+02:00")
    store.write([rec], [])
    assert row(store, rec["id"])["published_at"] == "2021-02-18T21:45:00+00:00"


def test_extras_are_stored_as_json(store: SqliteStore, enricher: Enricher) -> None:
    rec = enriched(enricher, author="Jane Doe")
    store.write([rec], [])
    assert json.loads(row(store, rec["id"])["extras"]) == {"author": '"Jane Doe"'}


def test_related_rows_link_the_article_to_each_related_url(
    store: SqliteStore, enricher: Enricher
) -> None:
    rec = enriched(enricher)
    store.write([rec], [])
    related = related_of(store, rec["id"])
    seed_related = fields(SEED)["related"]
    assert related == {r["webUrl"]: r["title"] for r in seed_related}
    assert store.count("related") == 2


def test_writing_the_same_batch_twice_changes_no_counts(
    store: SqliteStore, enricher: Enricher
) -> None:
    batch = [enriched(enricher, p) for p in (SEED, LAPTOP)]
    sightings = [sighting(), sighting(url="https://bbc.co.uk/news/x#c", reason="url")]
    store.write(batch, sightings)
    counts = {t: store.count(t) for t in ("articles", "related", "duplicates")}
    first = {r["id"]: dict(r) for r in store.query("SELECT * FROM articles")}
    store.write(batch, sightings)
    assert {t: store.count(t) for t in ("articles", "related", "duplicates")} == counts
    assert counts == {"articles": 2, "related": 2, "duplicates": 2}
    again = {r["id"]: dict(r) for r in store.query("SELECT * FROM articles")}
    for key, old in first.items():
        assert {k: v for k, v in again[key].items() if k != "stored_at"} == {
            k: v for k, v in old.items() if k != "stored_at"
        }


def test_a_url_variant_of_a_stored_article_upserts_the_same_row(
    store: SqliteStore, enricher: Enricher
) -> None:
    store.write([enriched(enricher, LAPTOP)], [])
    store.write([enriched(enricher, UTM)], [])
    assert store.count("articles") == 1


def test_a_newer_version_replaces_the_older(store: SqliteStore, enricher: Enricher) -> None:
    old = enriched(enricher, title="Old headline", publishedDateTime="2021-02-18T21:45:00Z")
    new = enriched(enricher, title="New headline", publishedDateTime="2021-02-19T08:00:00Z")
    assert old["id"] == new["id"]
    store.write([old], [])
    store.write([new], [])
    got = row(store, new["id"])
    assert got["title"] == "New headline"
    assert got["published_at"] == "2021-02-19T08:00:00+00:00"
    assert store.count("articles") == 1


def test_an_older_version_does_not_replace_the_newer(
    store: SqliteStore, enricher: Enricher
) -> None:
    old = enriched(enricher, title="Old headline", publishedDateTime="2021-02-18T21:45:00Z")
    new = enriched(enricher, title="New headline", publishedDateTime="2021-02-19T08:00:00Z")
    store.write([new], [])
    store.write([old], [])
    got = row(store, new["id"])
    assert got["title"] == "New headline"
    assert got["published_at"] == "2021-02-19T08:00:00+00:00"


def test_sub_second_publication_times_order_correctly(
    store: SqliteStore, enricher: Enricher
) -> None:
    whole = enriched(enricher, title="Whole second", publishedDateTime="2021-02-18T21:45:00Z")
    later = enriched(
        enricher, title="Half a second later", publishedDateTime="2021-02-18T21:45:00.5Z"
    )
    store.write([later], [])
    store.write([whole], [])
    assert row(store, later["id"])["title"] == "Half a second later"


def test_with_equal_publication_times_the_later_ingest_wins(
    store: SqliteStore, enricher: Enricher
) -> None:
    first = enriched(enricher, title="First ingest")
    second = {**enriched(enricher, title="Second ingest")}
    second["ingested_at"] = first["ingested_at"] + dt.timedelta(minutes=5)
    store.write([second], [])
    store.write([first], [])
    assert row(store, first["id"])["title"] == "Second ingest"


def test_the_newest_version_in_one_batch_wins(store: SqliteStore, enricher: Enricher) -> None:
    new = enriched(enricher, title="New", publishedDateTime="2021-02-19T08:00:00Z")
    old = enriched(enricher, title="Old", publishedDateTime="2021-02-18T08:00:00Z")
    assert store.write([new, old], []) == (2, 0)
    assert row(store, new["id"])["title"] == "New"
    assert store.count("articles") == 1


def test_related_rows_of_an_older_version_do_not_replace_the_newer(
    store: SqliteStore, enricher: Enricher
) -> None:
    seed_related = fields(SEED)["related"]
    new = enriched(enricher, publishedDateTime="2021-02-19T08:00:00Z", related=seed_related[:1])
    old = enriched(enricher, publishedDateTime="2021-02-18T08:00:00Z", related=seed_related[1:])
    store.write([new], [])
    store.write([old], [])
    assert set(related_of(store, new["id"])) == {seed_related[0]["webUrl"]}


def test_related_rows_follow_the_version_that_replaced_the_row(
    store: SqliteStore, enricher: Enricher
) -> None:
    seed_related = fields(SEED)["related"]
    old = enriched(enricher, publishedDateTime="2021-02-18T08:00:00Z", related=seed_related[1:])
    new = enriched(enricher, publishedDateTime="2021-02-19T08:00:00Z", related=seed_related[:1])
    store.write([old], [])
    store.write([new], [])
    assert set(related_of(store, new["id"])) == {seed_related[0]["webUrl"]}


def test_related_falls_back_to_amp_urls_when_there_is_no_web_url(
    store: SqliteStore, enricher: Enricher
) -> None:
    rel = {"title": "Only AMP", "ampWebUrl": "https://e.com/r?amp"}
    rec = enriched(enricher, related=[rel, {"title": "No URL at all"}])
    store.write([rec], [])
    assert related_of(store, rec["id"]) == {"https://e.com/r?amp": "Only AMP"}


def test_duplicates_upsert_by_url_and_duplicate_of(store: SqliteStore) -> None:
    store.write([], [sighting()])
    store.write([], [sighting(reason="content", similarity=0.97)])
    assert store.count("duplicates") == 1
    (got,) = store.query("SELECT * FROM duplicates")
    assert (got["reason"], got["similarity"]) == ("content", 0.97)
    # Same URL, another kept article: a second row.
    store.write([], [sighting(duplicate_of="3333333333333333")])
    assert store.count("duplicates") == 2


def test_duplicate_row_columns(store: SqliteStore) -> None:
    store.write([], [sighting()])
    (got,) = store.query("SELECT * FROM duplicates")
    assert got["url"] == sighting()["url"]
    assert got["duplicate_of"] == "2222222222222222"
    assert got["id"] == "1111111111111111"
    assert got["canonical_url"] == "https://bbc.co.uk/news/x"
    assert got["provider_domain"] == "bbc.co.uk"
    assert dt.datetime.fromisoformat(got["seen_at"]) == dt.datetime(2024, 5, 1, tzinfo=UTC)


def test_duplicates_by_reason(store: SqliteStore) -> None:
    assert store.duplicates_by_reason() == {}
    store.write(
        [],
        [
            sighting(url="https://e.com/1"),
            sighting(url="https://e.com/2"),
            sighting(url="https://e.com/3", reason="content"),
            sighting(url="https://e.com/4", reason="near", similarity=0.91),
        ],
    )
    assert store.duplicates_by_reason() == {"content": 1, "near": 1, "url": 2}


def test_a_refused_batch_is_rolled_back_whole_and_not_retriable(
    store: SqliteStore, enricher: Enricher
) -> None:
    with pytest.raises(StoreError) as caught:
        store.write([enriched(enricher)], [sighting(reason="bogus")])
    assert caught.value.retriable is False
    assert store.url in str(caught.value)
    assert store.count("articles") == 0
    assert store.count("related") == 0
    assert store.count("duplicates") == 0
    # …and the store still works afterwards.
    assert store.write([enriched(enricher)], []) == (1, 0)


def test_count_refuses_unknown_tables(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        store.count("sqlite_master")


def test_data_survives_reopening(tmp_path: Path, enricher: Enricher) -> None:
    path = tmp_path / "store.db"
    first = SqliteStore(path)
    first.write([enriched(enricher)], [sighting()])
    first.close()
    second = SqliteStore(path)
    try:
        assert (second.count("articles"), second.count("duplicates")) == (1, 1)
        versions = second.query("SELECT version FROM schema_version")
        assert [r["version"] for r in versions] == [SCHEMA_VERSION]
    finally:
        second.close()


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(StoreError, match="newer") as caught:
        SqliteStore(path)
    assert caught.value.version == SCHEMA_VERSION + 1
    assert caught.value.retriable is False


def test_open_store_and_sqlite_urls(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.db"
    assert sqlite_path(f"sqlite:///{path}") == str(path)
    opened = open_writer(f"sqlite:///{path}")
    try:
        assert isinstance(opened, SqliteStore)
        assert path.exists()
    finally:
        opened.close()
    with pytest.raises(ConfigError):
        open_writer("mysql://localhost/db")
    with pytest.raises(ConfigError):
        sqlite_path("postgresql://localhost/db")
