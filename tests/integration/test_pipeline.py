"""The pipeline end to end against the real broker (Tansu), each stage its own process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from newswire.dlq import DeadLetter
from newswire.model import Article
from newswire.pipeline import Pipeline, StageProcess
from newswire.publisher import Publisher
from newswire.serde import SingleObjectSerde
from newswire.settings import Settings
from newswire.source import RejectsFile
from newswire.topics import DLQ, RAW, UNIQUE
from producers.documents import DocumentSource
from tests.conftest import ARTICLES, SEED
from tests.helpers import ListSource, generated_articles, producer_for, read_topic, wait_for

pytestmark = pytest.mark.integration


def publish(settings: Settings, source, rejects: RejectsFile | None = None):  # type: ignore[no-untyped-def]
    publisher = Publisher(settings)
    try:
        return publisher.publish([source], rejects=rejects)
    finally:
        publisher.close()


def rows(settings: Settings, sql: str, params: tuple = ()) -> list[sqlite3.Row]:  # type: ignore[type-arg]
    db = sqlite3.connect(settings.store.url.removeprefix("sqlite:///"))
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def count(settings: Settings, table: str) -> int:
    try:
        return int(rows(settings, f"SELECT count(*) FROM {table}")[0][0])
    except sqlite3.OperationalError:
        return 0  # the store has not created its tables yet


@pytest.fixture
def pipeline(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    running = Pipeline(settings, tmp_path / "work")
    yield running
    running.stop()


def test_seed_document_end_to_end_into_sqlite(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.start()
    summary = publish(settings, DocumentSource([SEED]))
    assert (summary.sent, summary.rejected) == (1, 0)
    pipeline.wait_until_idle(summary.sent, timeout_s=60)

    expected = Article.model_validate(
        __import__("tests.helpers", fromlist=["seed_fields"]).seed_fields(SEED)
    )
    (row,) = rows(settings, "SELECT * FROM articles")
    assert row["id"] == expected.id
    assert row["url"] == expected.original_url
    assert row["canonical_url"].startswith("https://securityinfowatch.com/access-identity/")
    assert row["title"] == expected.title
    assert row["published_at"] == "2021-02-18T21:45:00+00:00"
    assert (row["provider_name"], row["provider_domain"]) == ("Security", "securityinfowatch.com")
    assert json.loads(row["topics"]) == ["Computer Vision", "AI"]
    assert row["language"] == "en"
    assert row["registered_domain"] == "securityinfowatch.com"
    assert row["word_count"] == 0  # the seed's body is empty
    assert row["secured"] == expected.secured.get_secret_value()  # type: ignore[union-attr]
    assert row["ingested_at"] is not None
    related = rows(settings, "SELECT url, title FROM related WHERE article_id = ?", (row["id"],))
    assert {r["url"] for r in related} == {
        "https://www.natlawreview.com/article/privacy-tip-272-to-get-to-speed-facial-recognition-technology-read",
        "https://www.nasdaq.com/articles/french-watchdog-warns-sports-club-about-unlawful-use-of-facial-recognition-technology-2021",
    }


def test_url_variants_collapse_and_malformed_documents_are_reported(
    settings: Settings, pipeline: Pipeline
) -> None:
    pipeline.start()
    rejects = RejectsFile(settings.producer.rejects_path)
    summary = publish(settings, DocumentSource([ARTICLES]), rejects)
    rejects.close()
    assert summary.rejected == 2
    assert summary.sent == summary.read - 2
    pipeline.wait_until_idle(summary.sent, timeout_s=60)

    originals = sorted(p for p in ARTICLES.glob("0*.txt") if "_variant_" not in p.name)
    variants = sorted(ARTICLES.glob("*_variant_*.txt"))
    assert count(settings, "articles") == len(originals)
    duplicates = rows(settings, "SELECT url, duplicate_of, reason FROM duplicates")
    assert len(duplicates) == len(variants)
    kept = rows(settings, "SELECT id FROM articles WHERE url LIKE '%world-us-canada-39310793'")
    assert {d["duplicate_of"] for d in duplicates} == {kept[0]["id"]}
    assert {d["reason"] for d in duplicates} == {"url"}

    reported = [
        json.loads(line) for line in settings.producer.rejects_path.read_text().splitlines()
    ]
    by_file = {Path(r["origin"]).name: r for r in reported}
    assert by_file["bad_missing_title.txt"]["field"] == "title"
    assert by_file["bad_relative_url.txt"]["field"] == "originalUrl"
    assert "absolute http(s) URL" in by_file["bad_relative_url.txt"]["reason"]


def test_undecodable_record_goes_to_dlq_and_the_stage_keeps_going(
    settings: Settings, tmp_path: Path
) -> None:
    garbage = b"\x00\x01 definitely not avro"
    producer = producer_for(settings)
    producer.produce(RAW, garbage, key=b"bad")
    assert producer.close() == []
    summary = publish(settings, DocumentSource([SEED]))

    dedup_only = Pipeline(settings, tmp_path / "work", stages={"dedup": 1})
    with dedup_only:
        (unique,) = read_topic(settings, UNIQUE, expect=1)
        (dead,) = read_topic(settings, DLQ, expect=1)
        dedup_only.check_alive()  # the bad record did not stop the stage
    assert summary.sent == 1
    assert SingleObjectSerde().decode(unique.value)[1]["title"].startswith("Minneapolis")
    letter = DeadLetter.from_record(dead.key, dead.value, dead.headers)
    assert letter.value == garbage  # the original bytes, untouched
    assert letter.key == b"bad"
    assert (letter.stage, letter.error_class, letter.source_topic) == ("dedup", "SerdeError", RAW)
    assert letter.source_offset >= 0
    assert "not Avro single-object encoded" in letter.error_message


def _kill(stage: StageProcess) -> None:
    os.kill(stage.process.pid, signal.SIGKILL)
    stage.process.wait(10)


@pytest.mark.parametrize("victim", ["dedup", "store"])
def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(
    settings: Settings, pipeline: Pipeline, victim: str
) -> None:
    # Small polls: many commits, so the kill lands between two of them.
    settings.kafka.max_poll_records = 50
    documents, ids, variants = generated_articles(SEED, 1500, variants_every=5)
    pipeline.start()
    summary = publish(settings, ListSource(documents))
    assert summary.sent == len(documents)

    stage = next(p for p in pipeline.processes if p.name == victim)
    progress = "articles" if victim == "store" else "duplicates"
    wait_for(lambda: count(settings, progress) > 20, timeout=60, what="progress")
    _kill(stage)
    assert count(settings, "articles") < len(ids), "killed too late to prove anything"
    pipeline.processes.remove(stage)
    pipeline.processes.append(pipeline.spawn(victim))

    wait_for(
        lambda: (
            count(settings, "articles") >= len(ids) and count(settings, "duplicates") >= variants
        ),
        timeout=120,
        what="drain",
    )
    stored = {r["id"] for r in rows(settings, "SELECT id FROM articles")}
    assert stored == ids
    assert count(settings, "duplicates") == variants
    # No original was taken for a duplicate of itself after the crash.
    originals = {r["url"] for r in rows(settings, "SELECT url FROM articles")}
    assert not originals & {r["url"] for r in rows(settings, "SELECT url FROM duplicates")}
