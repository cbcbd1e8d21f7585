"""The stores against the real databases: SQLite and the PostgreSQL on 127.0.0.1:5432.

Every PostgreSQL test works in its own schema (``postgres_url``). Outages are
made by routing the store through a :class:`~tests.helpers.TcpProxy` and cutting it.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from consumers.enrich import Enricher
from consumers.store import StoreConsumer
from consumers.store.base import SCHEMA_VERSION
from consumers.store.postgres import MIGRATIONS, PostgresStore
from newswire.cli.app import app
from newswire.dlq import DeadLetter
from newswire.model import Article, Sighting
from newswire.runner import Runner
from newswire.serde import ENRICHED_ARTICLE, SIGHTING, SingleObjectSerde
from newswire.settings import Settings
from newswire.store import open_writer
from newswire.topics import DLQ, DUPLICATES, ENRICHED
from tests.conftest import ARTICLES, SEED
from tests.helpers import (
    TcpProxy,
    generated_articles,
    producer_for,
    read_topic,
    seed_fields,
    wait_for,
)

pytestmark = pytest.mark.integration

LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
TIMES = ("ingested_at", "enriched_at", "stored_at", "seen_at")


# -- records and Kafka -----------------------------------------------------------------------


_enricher = Enricher()


def enriched(fields: dict[str, Any], *, ingested: dt.datetime | None = None) -> dict[str, Any]:
    """The enriched record of a document's fields, as the enrich stage emits it."""
    record = _enricher.enrich(Article.model_validate(fields).model_dump())
    record["ingested_at"] = ingested or dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    record["source"] = "test"
    return record


def fixture_records() -> list[dict[str, Any]]:
    """Every valid fixture document (URL variants included), enriched."""
    from tests.unit.support import fields

    return [
        enriched(fields(p)) for p in sorted(ARTICLES.glob("0*.txt")) if "_variant_" not in p.name
    ]


def generated_records(n: int) -> list[dict[str, Any]]:
    """*n* distinct seed-shaped enriched records."""
    documents, ids, _ = generated_articles(SEED, n)
    records = [enriched(d.fields) for d in documents]
    assert {r["id"] for r in records} == ids
    return records


def sighting(i: int, duplicate_of: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": f"{i:016x}",
        "url": f"https://www.example-news.com/copy/{i}?utm_source=x",
        "canonical_url": f"https://example-news.com/copy/{i}",
        "duplicate_of": duplicate_of,
        "reason": "url",
        "seen_at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
    }
    return Sighting(**{**fields, **changes}).model_dump()


def produce(
    settings: Settings,
    articles: list[dict[str, Any]],
    sightings: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    partition: int | None = None,
) -> None:
    """Send enriched articles and sightings, keyed by article id (or all to *partition*)."""
    serde = SingleObjectSerde()
    producer = producer_for(settings)
    try:
        for r in articles:
            producer.produce(
                ENRICHED,
                serde.encode(ENRICHED_ARTICLE, r),
                key=r["id"].encode(),
                partition=partition,
            )
        for s in sightings:
            producer.produce(
                DUPLICATES,
                serde.encode(SIGHTING, s),
                key=s["duplicate_of"].encode(),
                partition=partition,
            )
        assert producer.flush() == []
    finally:
        producer.close()


class StoreRun:
    """A store :class:`Runner` in a thread, with its metrics registry."""

    def __init__(self, settings: Settings, consumer: StoreConsumer | None = None) -> None:
        self.consumer = consumer or StoreConsumer()
        self.registry = CollectorRegistry()
        self.runner = Runner(self.consumer, settings, registry=self.registry)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="store-runner", daemon=True)

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:
            self.error = exc

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples *name* whose labels include *labels* (0 if none)."""
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def consumed(self, topic: str = ENRICHED) -> float:
        return self.metric(
            "newswire_consumer_records_in_total", consumer=self.consumer.name, topic=topic
        )

    def alive(self) -> bool:
        if self.error is not None:
            raise AssertionError(f"the store runner died: {self.error!r}") from self.error
        return self.thread.is_alive()


@contextmanager
def store_running(settings: Settings, consumer: StoreConsumer | None = None) -> Iterator[StoreRun]:
    run = StoreRun(settings, consumer)
    run.thread.start()
    try:
        yield run
    finally:
        run.runner.stop()
        run.thread.join(30)
        assert not run.thread.is_alive(), "the store runner did not stop"


class ReplayStore(StoreConsumer):
    """The store consumer in a second group: reads both topics again from offset 0."""

    name = "store-replay"


def snapshot(store: Any) -> dict[str, list[dict[str, Any]]]:
    """Every table, without the columns that say *when* (they differ between runs)."""
    return {
        table: [{k: v for k, v in row.items() if k not in TIMES} for row in store.dump(table)]
        for table in ("articles", "duplicates", "related", "topics", "images", "revisions")
    }


# -- backends --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'articles.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _via(proxy: TcpProxy, url: str) -> str:
    """*url* with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", 5432)) as running:
        yield running


# -- idempotence -----------------------------------------------------------------------------


def test_replaying_the_topics_from_offset_zero_changes_no_rows(
    settings: Settings, store_url: str
) -> None:
    settings.store.url = store_url
    settings.kafka.max_poll_records = 100
    records = generated_records(300)
    # Newer versions of some articles, later on the same partitions.
    newer = [
        {
            **r,
            "title": f"Updated: {r['title']}",
            "published_at": r["published_at"] + dt.timedelta(hours=1),
        }
        for r in records[:20]
    ]
    sightings = [sighting(i, records[i]["id"]) for i in range(0, 300, 10)]
    produce(settings, records + newer, sightings)
    total = len(records) + len(newer)

    with store_running(settings) as first:
        wait_for(
            lambda: (
                first.alive() and first.consumed() >= total and first.consumed(DUPLICATES) >= 30
            ),
            timeout=90,
            what="the store group to drain both topics",
        )
    store = open_writer(store_url)
    try:
        before = snapshot(store)
        assert len(before["articles"]) == 300
        assert len(before["duplicates"]) == 30
        titles = {r["id"]: r["title"] for r in before["articles"]}
        assert all(titles[r["id"]].startswith("Updated: ") for r in records[:20])
        # Each updated article has two revisions; the others none (one version).
        assert len(before["revisions"]) == 40
        revised = {r["id"]: r["revisions"] for r in before["articles"] if r["revisions"] > 1}
        assert revised == {r["id"]: 2 for r in records[:20]}

        with store_running(settings, ReplayStore()) as replay:
            wait_for(
                lambda: (
                    replay.alive()
                    and replay.consumed() >= total
                    and replay.consumed(DUPLICATES) >= 30
                ),
                timeout=90,
                what="the replay group to read both topics from offset 0",
            )
        assert snapshot(store) == before
        tables = ("articles", "duplicates", "related", "topics", "revisions")
        assert {t: store.count(t) for t in tables} == {
            "articles": 300,
            "duplicates": 30,
            "related": 600,
            "topics": 600,
            "revisions": 40,
        }
    finally:
        store.close()


def test_a_replayed_version_is_not_rewritten_but_another_with_the_same_times_is(
    store_url: str,
) -> None:
    record = generated_records(1)[0]
    with open_writer(store_url) as store:
        store.write([record], [])
        (first,) = store.dump("articles")
        store.write([record], [])
        assert store.dump("articles") == [first]  # stored_at too: nothing was written
        edited = {**record, "title": "Corrected headline", "topics": ["Corrections"]}
        store.write([edited], [])  # same published_at and ingested_at: the later write wins
        (second,) = store.dump("articles")
        assert second["title"] == "Corrected headline"
        assert second["stored_at"] >= first["stored_at"]
        assert store.dump("topics") == [{"article_id": record["id"], "topic": "Corrections"}]
        assert [r["id"] for r in store.search("corrected")] == [record["id"]]
        assert store.search("number") == []  # the old title ("Story number 0: …") is gone


# -- outages ---------------------------------------------------------------------------------


def _rows(postgres_url: str) -> int:
    """Articles in the test's schema, read directly (not through the proxy)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('articles') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = conn.execute("SELECT count(*), count(DISTINCT id) FROM articles").fetchone()
        assert row is not None and row[0] == row[1]
        return int(row[0])


@pytest.mark.postgres
def test_an_outage_mid_run_loses_nothing_duplicates_nothing_and_shows_in_the_metrics(
    settings: Settings, postgres_url: str, proxy: TcpProxy
) -> None:
    settings.store.url = _via(proxy, postgres_url)
    settings.kafka.max_poll_records = 50  # many batches: the cut lands between two commits
    settings.runner.retry_backoff_max_ms = 500
    records = generated_records(1500)
    ids = {r["id"] for r in records}
    produce(settings, records)

    with store_running(settings) as run:
        wait_for(lambda: run.alive() and _rows(postgres_url) >= 100, timeout=60, what="progress")
        proxy.cut()
        wait_for(
            lambda: (
                run.metric("newswire_consumer_unavailable") == 1
                and run.metric("newswire_consumer_retries_total", error="UnavailableError") >= 3
            ),
            timeout=30,
            what="the store to notice the outage and retry",
        )
        committed, stored = run.consumed(), _rows(postgres_url)
        assert stored < len(records), "the outage came too late to prove anything"
        wait_for(
            lambda: run.metric("newswire_consumer_retries_total", error="UnavailableError") >= 5,
            timeout=30,
            what="more retries",
        )
        # Nothing is committed, and nothing dead-lettered, while the database is away.
        assert run.consumed() == committed
        assert _rows(postgres_url) == stored
        assert run.metric("newswire_consumer_dlq_total") == 0
        assert run.alive()

        proxy.restore()
        wait_for(lambda: run.consumed() >= len(records), timeout=60, what="the store to resume")
        assert run.metric("newswire_consumer_unavailable") == 0
        assert run.metric("newswire_store_outages_total") == 1
        assert run.metric("newswire_store_outage_seconds_total") > 0.1

    assert run.metric("newswire_consumer_dlq_total") == 0
    store = open_writer(postgres_url)
    try:
        assert {r["id"] for r in store.dump("articles")} == ids
        assert store.count("articles") == len(records)
        assert store.count("related") == 2 * len(records)
    finally:
        store.close()


@pytest.mark.postgres
def test_a_database_down_at_start_up_is_waited_for(
    settings: Settings, postgres_url: str, proxy: TcpProxy
) -> None:
    settings.store.url = _via(proxy, postgres_url)
    settings.runner.retry_backoff_max_ms = 500
    records = generated_records(50)
    produce(settings, records)
    proxy.cut()
    with store_running(settings) as run:
        wait_for(
            lambda: run.alive() and run.metric("newswire_consumer_unavailable") == 1,
            timeout=30,
            what="the store to wait for the database",
        )
        assert run.consumed() == 0
        proxy.restore()
        wait_for(lambda: run.consumed() >= len(records), timeout=60, what="the store to resume")
    assert _rows(postgres_url) == len(records)
    assert run.metric("newswire_consumer_dlq_total") == 0


@pytest.mark.postgres
def test_a_terminated_session_like_a_server_restart_is_reconnected(
    settings: Settings, postgres_url: str
) -> None:
    settings.store.url = postgres_url
    settings.postgresql.application_name = f"newswire-test-{uuid.uuid4().hex[:8]}"
    settings.runner.retry_backoff_max_ms = 500
    first, second = generated_records(200)[:100], generated_records(200)[100:]
    produce(settings, first)
    with store_running(settings) as run:
        wait_for(lambda: run.consumed() >= 100, timeout=60, what="the first records")

        def terminate() -> int:
            # What a restart does to every session: 57P01 admin_shutdown.
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (settings.postgresql.application_name,),
                ).fetchone()
                return int(row[0]) if row else 0

        assert terminate() == 1
        produce(settings, second)
        wait_for(lambda: run.consumed() >= 200, timeout=60, what="the store to reconnect")
        assert run.alive()
    assert _rows(postgres_url) == 200
    assert run.metric("newswire_consumer_dlq_total") == 0
    assert run.metric("newswire_consumer_retries_total", error="UnavailableError") >= 1


# -- refused records -------------------------------------------------------------------------


def _refused(backend: str, records: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(articles, sightings) with one record the database refuses."""
    if backend == "postgresql":
        bad = dict(records[4])
        bad["body"] = "a NUL \x00 in the body"  # PostgreSQL text cannot hold NUL
        return [*records[:4], bad, *records[5:]], []
    # SQLite stores NULs; its CHECK on the reason refuses an unknown one.
    return records, [sighting(1, records[0]["id"]), sighting(2, records[1]["id"], reason="bogus")]


def test_a_refused_record_goes_to_the_dlq_and_its_batch_mates_are_stored(
    settings: Settings, store_url: str
) -> None:
    backend = urlsplit(store_url).scheme
    settings.store.url = store_url
    records = generated_records(10)
    articles, sightings = _refused(backend, records)
    refused = articles[4] if backend == "postgresql" else sightings[1]
    produce(settings, articles, sightings, partition=0)  # one partition: one batch

    with store_running(settings) as run:
        wait_for(
            lambda: (
                run.alive()
                and run.consumed() >= len(articles)
                and run.consumed(DUPLICATES) >= len(sightings)
            ),
            timeout=60,
            what="the batch to be handled",
        )
    (dead,) = read_topic(settings, DLQ, expect=1, timeout=10)
    letter = DeadLetter.from_record(dead.key, dead.value, dead.headers)
    assert (letter.stage, letter.error_class) == ("store", "StoreError")
    assert SingleObjectSerde().decode(letter.value)[1]["id"] == refused["id"]
    if backend == "postgresql":
        assert "0x00" in letter.error_message  # the NUL character
        assert f"article id={refused['id']}" in letter.error_message
    else:
        assert "CHECK constraint" in letter.error_message
    assert run.metric("newswire_consumer_dlq_total", error="StoreError") == 1

    store = open_writer(store_url)
    try:
        stored = {r["id"] for r in store.dump("articles")}
        expected = (
            {r["id"] for r in articles} - {refused["id"]}
            if backend == "postgresql"
            else {r["id"] for r in articles}
        )
        assert stored == expected
        assert store.count("duplicates") == len(sightings) - (backend != "postgresql")
    finally:
        store.close()


# -- the query CLI ---------------------------------------------------------------------------


cli = CliRunner()


def articles_cli(*args: str) -> Any:
    result = cli.invoke(app, ["articles", *args])
    return result


@pytest.fixture
def filled(store_url: str) -> Iterator[str]:
    """The fixture articles, one sighting of the laptop story and an older version of the seed."""
    store = open_writer(store_url)
    records = fixture_records()
    laptop = next(r for r in records if r["original_url"].endswith("39310793"))
    store.write(records, [sighting(7, laptop["id"]), sighting(8, laptop["id"], reason="near")])
    yield store_url
    store.close()


def test_search_finds_an_article_by_a_word_of_its_body(filled: str) -> None:
    body = LAPTOP.read_text()
    assert "surveillance" in body.split("---")[-1]
    assert "surveillance" not in body.split("---")[1]  # not in the title or excerpt
    result = articles_cli("search", "surveillance", "--store", filled, "--json")
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.output)
    assert found["title"] == "US Secret Service laptop stolen"
    assert "secured" not in found

    for query, expect in [
        ("SURVEILLANCE footage", 1),  # case-insensitive, every word
        ('"surveillance footage"', 1),  # a phrase
        ('"footage surveillance"', 0),
        ("surveillance -laptop", 0),  # excluded
        ("surveillance or nonexistentword", 1),
        ("nonexistentword", 0),
        ("-laptop", 0),  # nothing to look for
        ("!!", 0),
    ]:
        result = articles_cli("search", "--store", filled, "--json", "--", query)
        assert result.exit_code == 0, (query, result.output)
        assert len(json.loads(result.output)) == expect, query

    table = articles_cli("search", "surveillance", "--store", filled)
    assert table.exit_code == 0
    assert found["id"] in table.output
    assert "1 match(es)" in table.output


def test_list_filters_and_limits(filled: str) -> None:
    def ids(*args: str) -> list[str]:
        result = articles_cli("list", "--store", filled, "--json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.output)]

    everything = articles_cli("list", "--store", filled, "--json")
    rows = json.loads(everything.output)
    assert len(rows) == 7
    published = [r["published_at"] for r in rows]
    assert published == sorted(published, reverse=True)  # newest first
    assert set(rows[0]) >= {"id", "title", "url", "provider_domain", "language", "topics"}

    assert len(ids("--limit", "2")) == 2
    assert ids("--provider", "BBC.co.uk") == ids("--provider", "bbc")  # domain or name
    assert len(ids("--provider", "bbc.co.uk")) == 1
    seed = Article.model_validate(seed_fields(SEED)).id
    assert ids("--topic", "computer vision") == [seed]
    assert ids("--topic", "AI") == [seed]
    assert len(ids("--language", "EN")) == 7
    assert ids("--language", "fr") == []
    assert ids("--since", "2021-01-01") == [seed]
    assert ids("--since", "2021-02-18T21:45:00Z") == [seed]
    assert ids("--since", "2021-02-18T21:45:01Z") == []

    table = articles_cli("list", "--store", filled, "--limit", "3")
    assert table.exit_code == 0
    assert "3 article(s)" in table.output

    bad = articles_cli("list", "--store", filled, "--since", "last tuesday")
    assert bad.exit_code == 2


def test_show_gives_the_article_with_its_duplicates_and_related_links(filled: str) -> None:
    seed = Article.model_validate(seed_fields(SEED)).id
    result = articles_cli("show", seed, "--store", filled, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["id"] == seed
    assert shown["topics"] == ["Computer Vision", "AI"]
    assert shown["published"] is False
    assert shown["published_at"] == "2021-02-18T21:45:00+00:00"
    assert {r["url"] for r in shown["related"]} == {
        r["webUrl"] for r in seed_fields(SEED)["related"]
    }
    assert shown["duplicates"] == []
    assert "secured" not in shown

    laptop = articles_cli(
        "show",
        "http://www.bbc.co.uk/news/world-us-canada-39310793/?utm_source=t",
        "--store",
        filled,
        "--json",
    )
    assert laptop.exit_code == 0, laptop.output
    duplicates = json.loads(laptop.output)["duplicates"]
    assert [(d["id"], d["reason"]) for d in duplicates] == [
        (f"{7:016x}", "url"),
        (f"{8:016x}", "near"),
    ]
    via = articles_cli("show", f"{8:016x}", "--store", filled, "--json")
    assert via.exit_code == 0
    assert json.loads(via.output)["via_duplicate"]["reason"] == "near"
    assert json.loads(via.output)["title"] == "US Secret Service laptop stolen"

    table = articles_cli("show", seed, "--store", filled)
    assert table.exit_code == 0
    assert "Minneapolis" in table.output
    assert "natlawreview.com" in table.output

    missing = articles_cli("show", "0000000000000000", "--store", filled)
    assert missing.exit_code == 1
    assert "no article 0000000000000000" in missing.output


def test_the_store_url_comes_from_the_environment(filled: str) -> None:
    result = cli.invoke(app, ["articles", "list", "--json"], env={"NEWSWIRE_STORE__URL": filled})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 7


def test_a_missing_sqlite_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = articles_cli("list", "--store", f"sqlite:///{path}")
    assert result.exit_code == 3
    assert "no such store" in result.output
    assert not path.exists()
    unsupported = articles_cli("list", "--store", "mysql://u:secret@h/db")
    assert unsupported.exit_code == 3
    assert "secret" not in unsupported.output


# -- schema versions -------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_migrates_an_older_schema_and_refuses_a_newer_one(postgres_url: str) -> None:
    from newswire.errors import StoreError

    # A version-1 schema (the walking skeleton's tables) holding one article.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for statement in MIGRATIONS[1]:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO articles (id, url, canonical_url, title, body, topics, images, stored_at)"
            " VALUES ('a1', 'https://e.com/1', 'https://e.com/1', 'Old', 'an ancient word',"
            ' \'["Old Topic"]\', \'[{"url": "https://e.com/i.jpg", "width": 5}]\', now())'
        )
    store = PostgresStore(postgres_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert [r["id"] for r in store.search("ancient")] == ["a1"]
        assert store.dump("topics") == [{"article_id": "a1", "topic": "Old Topic"}]
        assert store.dump("images")[0]["width"] == 5
    finally:
        store.close()

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer") as caught:
        PostgresStore(postgres_url)
    assert caught.value.retriable is False


@pytest.mark.postgres
def test_concurrent_start_ups_create_the_schema_once(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(postgres_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


# -- the whole pipeline into either backend --------------------------------------------------


@pytest.mark.postgres
def test_newswire_run_gives_the_same_rows_in_postgresql_and_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'run.db'}"
    for url, work in ((postgres_url, "work-pg"), (sqlite_url, "work-sqlite")):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "newswire",
                "run",
                str(ARTICLES),
                "--store",
                url,
                "--until-idle",
                "--workdir",
                str(tmp_path / work),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        # The fixtures hold two bad documents on purpose: exit status 1, "some rejected".
        assert result.returncode == 1, result.stderr[-3000:]
        assert "store: stored (new or updated)" in result.stdout

    with open_writer(postgres_url) as pg, open_writer(sqlite_url) as lite:
        in_pg, in_sqlite = snapshot(pg), snapshot(lite)
    assert in_pg == in_sqlite
    originals = [p for p in ARTICLES.glob("0*.txt") if "_variant_" not in p.name]
    assert len(in_pg["articles"]) == len(originals)
    assert len(in_pg["duplicates"]) == 4
    assert len(in_pg["related"]) == 2
