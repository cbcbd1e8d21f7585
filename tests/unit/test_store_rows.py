"""What both stores share: which record of a batch wins, the rows it becomes, query helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from consumers.store.base import (
    ARTICLE_COLUMNS,
    RELATED_COLUMNS,
    Batch,
    article_out,
    article_row,
    image_rows,
    iso,
    related_rows,
    search_terms,
    topic_rows,
    version_key,
)
from consumers.store.sqlite import fts_query
from newswire.cli.articles import parse_since
from newswire.database import redact_url

UTC = dt.UTC
T0 = dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)


def rec(article_id: str = "a" * 16, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": article_id,
        "original_url": "https://www.e.com/x?utm_source=t",
        "canonical_url": "https://e.com/x",
        "title": "Title",
        "published_at": T0,
        "ingested_at": T0,
        "topics": ["AI", "Computer Vision"],
        "images": [{"url": "https://e.com/i.jpg", "width": 10, "height": 5, "is_cached": True}],
        "related": [{"title": "R", "web_url": "https://r.com/1"}],
    }
    return {**base, **changes}


def title_of(batch: Batch) -> list[str]:
    return [r["title"] for r in batch.records]


def test_iso_is_utc_text_that_sorts_like_time() -> None:
    whole = T0
    later = T0 + dt.timedelta(microseconds=500_000)
    assert iso(whole) == "2021-02-18T21:45:00+00:00"
    assert iso(later) == "2021-02-18T21:45:00.500000+00:00"
    assert iso(whole) < iso(later)  # type: ignore[operator]
    assert iso(dt.datetime(2021, 2, 18, 23, 45, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2021-02-18T21:45:00+00:00"
    )
    assert iso(dt.datetime(2021, 2, 18, 21, 45)) == "2021-02-18T21:45:00+00:00"  # naive: UTC
    assert iso(None) is None


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(999, 5, 5, 1, 2, 3, 4, tzinfo=UTC),
        dt.datetime(2021, 2, 18, 21, 45, 0, 1, tzinfo=UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_iso_of_utc_is_isoformat(value: dt.datetime) -> None:
    # Stored text must not change with the fast path: replays compare it with the stored row.
    assert iso(value) == value.isoformat()


def test_a_missing_time_is_the_oldest_version() -> None:
    assert version_key(None, None) < version_key(T0, None) < version_key(T0, T0)
    assert version_key(T0, T0 + dt.timedelta(seconds=1)) > version_key(T0, T0)


def test_one_record_per_id_wins_in_a_batch_newest_then_later_ingest_then_later_in_batch() -> None:
    newer = rec(title="newer", published_at=T0 + dt.timedelta(hours=1))
    older = rec(title="older")
    assert title_of(Batch.of([newer, older], [])) == ["newer"]
    assert title_of(Batch.of([older, newer], [])) == ["newer"]
    re_ingested = rec(title="re-ingested", ingested_at=T0 + dt.timedelta(minutes=1))
    assert title_of(Batch.of([re_ingested, older], [])) == ["re-ingested"]
    twin = rec(title="twin")
    assert title_of(Batch.of([older, twin], [])) == ["twin"]  # a tie: the later one
    batch = Batch.of([older, twin, rec("b" * 16)], [])
    assert (batch.article_records, len(batch.records)) == (3, 2)


def test_times_compare_whatever_their_offset_and_naive_means_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert version_key(T0.astimezone(plus_two), None) == version_key(T0, None)
    assert version_key(T0.replace(tzinfo=None), None) == version_key(T0, None)
    assert version_key("2021-02-18T21:45:00Z", None) == version_key(T0, None)


def test_article_row_columns() -> None:
    row = article_row(rec(extras={"author": '"Jane"'}, published=False), "stored")
    assert len(row) == len(ARTICLE_COLUMNS)
    values = dict(zip(ARTICLE_COLUMNS, row, strict=True))
    assert values["url"] == "https://www.e.com/x?utm_source=t"
    assert values["topics"] == '["AI","Computer Vision"]'
    assert values["extras"] == '{"author":"\\"Jane\\""}'
    assert values["published"] is False
    assert values["published_at"] == T0  # each backend converts times itself
    assert values["stored_at"] == "stored"
    assert article_row({**rec(), "topics": [], "images": None}, "s")[13:15] == ("[]", "[]")


def test_related_rows_fall_back_to_amp_urls_and_skip_links_without_one() -> None:
    record = rec(
        related=[
            {"title": "amp", "amp_web_url": "https://r.com/amp"},
            {"title": "cdn", "cdn_amp_web_url": "https://cdn.r.com/c"},
            {"title": "none"},
            {"title": "again", "web_url": "https://r.com/amp"},  # same URL: the last title
        ]
    )
    assert [row[:3] for row in related_rows(record)] == [
        ("a" * 16, "https://r.com/amp", "again"),
        ("a" * 16, "https://cdn.r.com/c", "cdn"),
    ]


def test_related_rows_keep_every_field_of_the_event() -> None:
    published = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    record = rec(
        related=[
            {
                "title": "Rel",
                "excerpt": "What the related story says.",
                "published_at": published,
                "web_url": "https://r.com/a",
                "amp_web_url": "https://r.com/a?amp",
                "cdn_amp_web_url": "https://r-com.cdn.ampproject.org/c/s/r.com/a",
                "type": "video",
                "provider": {"name": "R News", "domain": "r.com"},
                "quality": 7,
                "images": [{"url": "https://r.com/a.jpg", "width": 640, "height": None}],
            }
        ]
    )
    (row,) = related_rows(record)
    assert dict(zip(RELATED_COLUMNS, row, strict=True)) == {
        "article_id": "a" * 16,
        "url": "https://r.com/a",
        "title": "Rel",
        "excerpt": "What the related story says.",
        "published_at": published,
        "web_url": "https://r.com/a",
        "amp_web_url": "https://r.com/a?amp",
        "cdn_amp_web_url": "https://r-com.cdn.ampproject.org/c/s/r.com/a",
        "type": "video",
        "provider_name": "R News",
        "provider_domain": "r.com",
        "quality": 7,
        "images": '[{"url":"https://r.com/a.jpg","width":640,"height":null}]',
    }


def test_topic_rows_are_trimmed_and_unique_ignoring_case() -> None:
    record = rec(topics=["AI", " ai ", "", "Computer Vision", "AI"])
    assert topic_rows(record) == [("a" * 16, "AI"), ("a" * 16, "Computer Vision")]


def test_image_rows_keep_their_position() -> None:
    record = rec(
        images=[{"url": "https://e.com/1.jpg"}, {"url": "https://e.com/2.jpg", "width": 3}]
    )
    assert image_rows(record) == [
        ("a" * 16, 0, "https://e.com/1.jpg", None, None, False),
        ("a" * 16, 1, "https://e.com/2.jpg", 3, None, False),
    ]


def test_sightings_without_a_source_are_deduplicated_by_url_and_kept_article() -> None:
    s1 = {"url": "https://e.com/d", "duplicate_of": "k", "reason": "url", "similarity": 1.0}
    s2 = {**s1, "reason": "content", "similarity": 0.9}
    s3 = {**s1, "duplicate_of": "other"}
    batch = Batch.of([], [s1, s2, s3])
    assert [(d[1], d[2]) for d in batch.duplicates] == [("k", "content"), ("other", "url")]
    assert batch.sighting_records == 3


def test_each_source_record_is_its_own_sighting_and_a_replay_is_the_same() -> None:
    s1 = {
        "url": "https://e.com/d",
        "duplicate_of": "k",
        "reason": "url",
        "source_topic": "articles.raw",
        "source_partition": 2,
        "source_offset": 10,
    }
    s2 = {**s1, "source_offset": 11}
    batch = Batch.of([], [s1, s2, dict(s1)])
    assert [d[-1] for d in batch.duplicates] == [10, 11]
    assert batch.sighting_records == 3


def test_describe_names_the_record_of_a_one_record_batch() -> None:
    assert Batch.of([rec()], []).describe() == f"article id={'a' * 16}"
    sighting = {"url": "https://e.com/d", "duplicate_of": "k", "reason": "url"}
    assert Batch.of([], [sighting]).describe() == "sighting url='https://e.com/d' duplicate_of=k"
    assert Batch.of([rec(), rec("b" * 16)], []).describe() == "2 article(s), 0 sighting(s)"


def test_article_out_is_the_same_shape_from_both_backends() -> None:
    from_sqlite = {
        "id": "x",
        "published": 0,
        "topics": '["AI"]',
        "images": "[]",
        "extras": '{"a": "1"}',
        "published_at": "2021-02-18T21:45:00+00:00",
        "secured": "opaque",
    }
    from_postgres = {
        "id": "x",
        "published": False,
        "topics": ["AI"],
        "images": [],
        "extras": {"a": "1"},
        "published_at": T0.astimezone(dt.timezone(dt.timedelta(hours=1))),
        "secured": "opaque",
        "search": "'ai':1",
    }
    assert article_out(from_sqlite) == article_out(from_postgres)
    assert "secured" not in article_out(from_sqlite)
    assert article_out(from_postgres, hide=False)["secured"] == "opaque"


@pytest.mark.parametrize(
    ("text", "terms", "fts"),
    [
        ("laptop", [("", "laptop")], '"laptop"'),
        ("secret  service", [("", "secret"), ("", "service")], '"secret" AND "service"'),
        ('"floor plans" trump', [("", "floor plans"), ("", "trump")], '"floor plans" AND "trump"'),
        ("laptop -stolen", [("", "laptop"), ("not", "stolen")], '"laptop" NOT "stolen"'),
        ("-stolen laptop", [("not", "stolen"), ("", "laptop")], '"laptop" NOT "stolen"'),
        ("laptop or tablet", [("", "laptop"), ("or", "tablet")], '"laptop" OR "tablet"'),
        ("or laptop", [("", "laptop")], '"laptop"'),
        ('say "hi"" there', [("", "say"), ("", "hi"), ("", "there")], '"say" AND "hi" AND "there"'),
        ("-stolen", [("not", "stolen")], None),
        ("!! ...", [], None),
        ("", [], None),
    ],
)
def test_search_terms_and_their_fts5_query(
    text: str, terms: list[tuple[str, str]], fts: str | None
) -> None:
    assert search_terms(text) == terms
    assert fts_query(text) == fts


def test_fts_query_quotes_what_fts5_would_parse() -> None:
    assert fts_query('AND "NEAR(a b)" col:x') == '"AND" AND "NEAR(a b)" AND "col:x"'
    assert fts_query('he said "it\'s"') == '"he" AND "said" AND "it\'s"'


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://u:s3cret@db:5432/news") == "postgresql://u:***@db:5432/news"
    assert redact_url("postgresql://u@db/news") == "postgresql://u@db/news"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_parse_since() -> None:
    now = dt.datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - dt.timedelta(days=7)
    assert parse_since("12h", now) == now - dt.timedelta(hours=12)
    assert parse_since("30m", now) == now - dt.timedelta(minutes=30)
    assert parse_since("2w", now) == now - dt.timedelta(weeks=2)
    assert parse_since("2024-05-01") == dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since("2024-05-01T12:00Z") == dt.datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_since("2024-05-01T14:00+02:00") == dt.datetime(2024, 5, 1, 12, tzinfo=UTC)
    import typer

    with pytest.raises(typer.BadParameter):
        parse_since("yesterday")
