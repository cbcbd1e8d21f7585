"""Dedup against the real broker (Tansu), each stage its own process.

Near-duplicates end to end, a group of two dedup processes sharing their state
in PostgreSQL, SIGKILL mid-stream, restarts and the state's bound.

Where a copy and its original sit on different partitions, which of the two
is judged first (and kept) is up to the consumer's fetch order; the assertions
are therefore about clusters: every story stored exactly once, every copy
reported once, as a duplicate of the story's stored article.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import signal
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.dedup.fingerprint import tokens
from consumers.dedup.sketch import band_keys, sketch_many
from consumers.dedup.state import claimant_of
from newswire.broker import EmbeddedBroker
from newswire.model import Article
from newswire.pipeline import Pipeline, StageProcess
from newswire.publisher import Publisher
from newswire.serde import SingleObjectSerde
from newswire.settings import Settings
from newswire.source import Document
from newswire.topics import DUPLICATES, ENRICHED, RAW, UNIQUE, ensure_topics
from tests.conftest import ARTICLES
from tests.helpers import (
    ListSource,
    assigned_partitions,
    read_topic,
    records_in,
    seed_fields,
    wait_for,
    wait_for_split,
)

pytestmark = pytest.mark.integration

VOCABULARY = tokens(" ".join(p.read_text() for p in sorted(ARTICLES.glob("00[1-6]_*.txt"))))
BASE = seed_fields(ARTICLES / "006_us-secret-service-laptop-stolen.txt")
T0 = dt.datetime(2017, 3, 1, 8, tzinfo=dt.UTC)


# -- documents -------------------------------------------------------------------------------------


def story(n: int, words: int = 120) -> dict[str, Any]:
    """A distinct article: its own URL, a text of random words (no two alike)."""
    rng = random.Random(n)
    body = ". ".join(
        " ".join(rng.choice(VOCABULARY) for _ in range(12)).capitalize() for _ in range(words // 12)
    )
    return {
        **BASE,
        "title": f"Story {n}: {' '.join(rng.choice(VOCABULARY) for _ in range(6))}",
        "excerpt": "",
        "body": body + ".",
        "originalUrl": f"https://www.news.example.com/world/story-{n}",
        "webUrl": f"https://www.news.example.com/world/story-{n}",
        "publishedDateTime": T0 + dt.timedelta(minutes=n),
        "related": [],
    }


def syndicated(fields: dict[str, Any], outlet: str = "wire.partner.example") -> dict[str, Any]:
    """A wire copy on another outlet: dateline, credit line, re-cased title, last sentence cut."""
    body = fields["body"].rsplit(". ", 1)[0] + "."
    url = f"https://{outlet}/news/{article_id(fields)}"
    return {
        **fields,
        "title": fields["title"].upper(),
        "body": f"WASHINGTON (Reuters) - {body}\n\nReporting by Jane Doe; Editing by Tom Roe",
        "originalUrl": url,
        "webUrl": url,
        "provider": {"name": "Partner", "domain": outlet},
        "publishedDateTime": fields["publishedDateTime"] + dt.timedelta(hours=2),
    }


def url_variant(fields: dict[str, Any]) -> dict[str, Any]:
    url = fields["originalUrl"].replace("https://www.", "http://") + "/?utm_source=feed#top"
    return {**fields, "originalUrl": url, "webUrl": url}


def earnings(company: str, shr: int) -> dict[str, Any]:
    url = f"https://wire.example.com/earnings/{company.lower().replace(' ', '-')}"
    return {
        **BASE,
        "title": f"{company} 1ST QTR NET",
        "excerpt": "",
        "body": f"NEW YORK, March 3 - Shr {shr} cts vs 1.19 dlrs Net 1.2 mln vs 3.4 mln "
        f"Revs 45.6 mln vs 40.1 mln Reuter",
        "originalUrl": url,
        "webUrl": url,
        "related": [],
    }


def follow_up(fields: dict[str, Any], n: int) -> dict[str, Any]:
    """A later story on the same event: new text, a third of the original kept as background."""
    new = story(10_000 + n)
    sentences = fields["body"].split(". ")
    background = ". ".join(sentences[: len(sentences) // 3])
    url = fields["originalUrl"] + "-latest"
    return {
        **new,
        "title": "Latest: " + fields["title"],
        "body": f"{new['body']} {background}.",
        "originalUrl": url,
        "webUrl": url,
        "publishedDateTime": fields["publishedDateTime"] + dt.timedelta(days=1),
    }


def documents(items: list[dict[str, Any]]) -> list[Document]:
    return [Document(f"test-{i}", fields) for i, fields in enumerate(items)]


def article_id(fields: dict[str, Any]) -> str:
    return Article.model_validate(fields).id


# -- running ---------------------------------------------------------------------------------


def publish(settings: Settings, items: list[dict[str, Any]]) -> int:
    publisher = Publisher(settings)
    try:
        summary = publisher.publish([ListSource(documents(items))])
    finally:
        publisher.close()
    assert summary.sent == len(items)
    return int(summary.sent)


def make_settings(broker: EmbeddedBroker, workdir: Path, partitions: int) -> Settings:
    """The conftest settings, with *partitions* per topic."""
    s = Settings()
    s.kafka.bootstrap = broker.bootstrap
    s.kafka.partitions = partitions
    s.kafka.session_timeout_ms = 2000
    s.kafka.heartbeat_interval_ms = 500
    s.store.url = f"sqlite:///{workdir / 'store.db'}"
    s.dedup.state_url = f"sqlite:///{workdir / 'dedup.sqlite'}"
    s.metrics.port = 0
    s.metrics.runtime_dir = workdir / "runtime"
    s.producer.rejects_path = workdir / "rejects.jsonl"
    s.runner.retry_backoff_ms = 20
    workdir.mkdir(parents=True, exist_ok=True)
    ensure_topics(s.kafka)
    return s


def rows(settings: Settings, sql: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(settings.store.url.removeprefix("sqlite:///"))
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # the store has not created its tables yet
    finally:
        db.close()


def count(settings: Settings, table: str) -> int:
    found = rows(settings, f"SELECT count(*) AS n FROM {table}")
    return int(found[0]["n"]) if found else 0


def clusters(settings: Settings) -> set[frozenset[str]]:
    """The stored result: each stored article with the URLs of its reported duplicates."""
    groups: dict[str, set[str]] = defaultdict(set)
    for row in rows(settings, "SELECT id, url FROM articles"):
        groups[row["id"]].add(row["url"])
    for row in rows(settings, "SELECT url, duplicate_of FROM duplicates"):
        assert row["duplicate_of"] in groups, f"{row['url']} is a duplicate of nothing stored"
        groups[row["duplicate_of"]].add(row["url"])
    return {frozenset(g) for g in groups.values()}


def metric(pipeline: Pipeline, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(
        value
        for samples in pipeline.metrics().values()
        for (sample, sample_labels), value in samples.items()
        if sample == name and wanted <= set(sample_labels)
    )


@pytest.fixture
def pipelines() -> Iterator[list[Pipeline]]:
    """Pipelines started by a test, stopped (processes by PID, then the broker) at its end."""
    started: list[Pipeline] = []
    yield started
    for pipeline in started:
        pipeline.stop()


def candidates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether dedup's LSH makes *a* and *b* near-duplicate candidates: a band in common.

    LSH's recall is below 1: of the syndicated copies made here (word 5-shingle Jaccard
    0.825 with their originals) about 1 in 250 shares no band with its original, so no
    dedup finds it, killed or not (stories 1032, 1120 and 1168 of :func:`dataset`).
    """
    sa, sb = sketch_many([tokens(a["body"]), tokens(b["body"])])
    assert sa is not None and sb is not None
    return bool(set(band_keys(sa.data)) & set(band_keys(sb.data)))


def dataset(stories: int) -> tuple[list[dict[str, Any]], set[frozenset[str]]]:
    """Stories with syndicated copies (every 2nd) and URL variants (every 3rd), two earnings
    briefs and a follow-up; and the clusters a correct dedup stores them as (a copy that
    is no candidate of its original, see :func:`candidates`, is a story of its own)."""
    items: list[dict[str, Any]] = []
    expected: list[set[str]] = []
    for n in range(stories):
        original = story(n)
        group = [original]
        if n % 2 == 0:
            group.append(syndicated(original))
        if n % 3 == 0:
            group.append(url_variant(original))
        items.extend(group)
        cluster = {g["originalUrl"] for g in group}
        if n % 2 == 0 and not candidates(original, group[1]):
            cluster.remove(group[1]["originalUrl"])
            expected.append({group[1]["originalUrl"]})
        expected.append(cluster)
    extra = [
        earnings("ACME CORP", 34),
        earnings("NORTHERN INDUSTRIES INC", 35),
        follow_up(items[0], 0),
    ]
    items.extend(extra)
    expected.extend({e["originalUrl"]} for e in extra)
    return items, {frozenset(g) for g in expected}


# -- tests -----------------------------------------------------------------------------------


def test_a_syndicated_copy_is_a_near_sighting_and_hard_negatives_are_kept(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    pipeline = Pipeline(settings, tmp_path / "work")
    pipelines.append(pipeline)
    pipeline.start()
    original = story(1)
    briefs = [earnings("ACME CORP", 34), earnings("NORTHERN INDUSTRIES INC", 35)]
    first = [original, *briefs]
    publish(settings, first)
    read_topic(settings, UNIQUE, expect=len(first))  # the originals are judged first
    later = [syndicated(original), follow_up(original, 1)]
    publish(settings, later)
    pipeline.wait_until_idle(len(first) + len(later), timeout_s=90)

    (sighting,) = rows(settings, "SELECT * FROM duplicates")
    assert sighting["reason"] == "near"
    assert sighting["duplicate_of"] == article_id(original)
    assert sighting["url"] == later[0]["originalUrl"]
    assert 0.7 <= sighting["similarity"] < 1.0
    stored = {r["url"] for r in rows(settings, "SELECT url FROM articles")}
    assert stored == {d["originalUrl"] for d in [*first, later[1]]}


@pytest.mark.postgres
def test_two_dedup_processes_sharing_postgres_store_what_one_stores(
    tansu_binary: str, tmp_path: Path, postgres_url: str, pipelines: list[Pipeline]
) -> None:
    items, expected = dataset(60)
    results = {}
    for instances in (1, 2):
        workdir = tmp_path / f"dedup-x{instances}"
        workdir.mkdir()
        broker = EmbeddedBroker(log_path=workdir / "broker.log").start()
        pipeline = Pipeline(
            make_settings(broker, workdir, partitions=6),
            workdir / "work",
            stages={"dedup": instances, "enrich": 1, "store": 1},
            broker=broker,  # stopped with the pipeline
        )
        pipelines.append(pipeline)
        if instances == 2:
            pipeline.settings.dedup.state_url = postgres_url
        pipeline.start()
        dedups = [p for p in pipeline.processes if p.name == "dedup"]
        assert len(dedups) == instances
        # Produced before both have joined, the first member would judge everything.
        wait_for_split(dedups, partitions=6)
        publish(pipeline.settings, items)
        pipeline.wait_until_idle(len(items), timeout_s=120)
        # Every member judged records: the group shared the six partitions.
        assert all(records_in(pipeline, p) > 0 for p in dedups), [
            assigned_partitions(p.log_path) for p in dedups
        ]
        results[instances] = clusters(pipeline.settings)
        pipeline.stop()
    assert results[1] == expected
    assert results[2] == expected


#: Stories of the mid-stream kill test: 2,203 records, 3 copies LSH does not find (600
#: passed before those were accounted for; 3,000 passes too, in about twice the time).
KILL_STORIES = 1200


def _kill(stage: StageProcess) -> None:
    os.kill(stage.process.pid, signal.SIGKILL)
    stage.process.wait(10)


def test_sigkill_of_dedup_mid_stream_loses_no_article_and_stores_no_duplicate(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    settings.kafka.max_poll_records = 50  # many commits: the kill lands between two of them
    items, expected = dataset(KILL_STORIES)
    pipeline = Pipeline(settings, tmp_path / "work")
    pipelines.append(pipeline)
    pipeline.start()
    publish(settings, items)
    raw = read_topic(settings, RAW, expect=len(items))
    positions = {claimant_of(RAW, r.partition, r.offset): (r.partition, r.offset) for r in raw}
    state = Path(settings.dedup.state_url.removeprefix("sqlite:///"))
    # Killed mid-stream with judged records uncommitted: waited for on the state and the
    # group's offsets (not on time), and confirmed once the stage is dead.
    assert _kill_in_window(settings, pipeline, state, positions), (
        "no kill landed with judged records uncommitted: nothing proved"
    )
    # Drained: each stage's group has committed the end of every topic it reads (what a
    # redelivery emits again included), so nothing stored can change after the checks.
    for group, topics in (
        ("newswire.dedup", (RAW,)),
        ("newswire.enrich", (UNIQUE,)),
        ("newswire.store", (ENRICHED, DUPLICATES)),
    ):
        ends = {topic: topic_ends(settings, topic) for topic in topics}
        wait_for(
            lambda: all(committed(settings, group, t) == ends[t] for t in topics),  # noqa: B023
            timeout=120,
            what=f"{group} to commit the ends of {', '.join(topics)}",
        )
    copies = len(items) - len(expected)
    assert count(settings, "articles") == len(expected)
    assert count(settings, "duplicates") == copies
    assert clusters(settings) == expected


def committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The offsets *group* has committed on *topic*, by partition."""
    from newswire.kafka import open_clients

    admin = open_clients(settings.kafka).admin()
    try:
        return _committed(admin, group, topic)
    finally:
        admin.close()


def topic_ends(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset of each non-empty partition of *topic* (read until quiet)."""
    ends: dict[int, int] = {}
    for record in read_topic(settings, topic, expect=10**9, timeout=3):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


def test_the_state_survives_a_restart(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    pipeline = Pipeline(settings, tmp_path / "work", stages={"dedup": 1})
    pipelines.append(pipeline)
    pipeline.start()
    originals = [story(n) for n in range(3)]
    publish(settings, originals)
    read_topic(settings, UNIQUE, expect=3)
    (dedup,) = pipeline.processes
    dedup.stop()  # SIGTERM: finish, commit, leave
    pipeline.processes.remove(dedup)
    pipeline.processes.append(pipeline.spawn("dedup"))
    publish(settings, [syndicated(originals[0]), url_variant(originals[1])])

    serde = SingleObjectSerde()
    sightings = [serde.decode(r.value)[1] for r in read_topic(settings, DUPLICATES, expect=2)]
    assert {(s["reason"], s["duplicate_of"]) for s in sightings} == {
        ("near", article_id(originals[0])),
        ("url", article_id(originals[1])),
    }
    assert len(read_topic(settings, UNIQUE, expect=4, timeout=3)) == 3


def test_the_oldest_articles_are_forgotten_at_the_bound(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    settings.dedup.max_entries = 4
    pipeline = Pipeline(settings, tmp_path / "work", stages={"dedup": 1})
    pipelines.append(pipeline)
    pipeline.start()
    originals = [story(n) for n in range(6)]
    # "Oldest" is in the order judged: the first two are judged before the other four.
    publish(settings, originals[:2])
    read_topic(settings, UNIQUE, expect=2)
    publish(settings, originals[2:])
    read_topic(settings, UNIQUE, expect=6)
    wait_for(
        lambda: metric(pipeline, "newswire_dedup_evictions_total") == 2,
        timeout=30,
        what="2 evictions",
    )
    assert metric(pipeline, "newswire_dedup_state_entries") == 4
    # The two oldest are forgotten (a copy passes as new), the newest are still remembered.
    publish(settings, [syndicated(originals[0]), syndicated(originals[5])])
    serde = SingleObjectSerde()
    (sighting,) = [serde.decode(r.value)[1] for r in read_topic(settings, DUPLICATES, expect=1)]
    assert sighting["duplicate_of"] == article_id(originals[5])
    unique = [serde.decode(r.value)[1] for r in read_topic(settings, UNIQUE, expect=7)]
    assert syndicated(originals[0])["originalUrl"] in {u["original_url"] for u in unique}


# -- updates and keys ----------------------------------------------------------------------------


def revision(fields: dict[str, Any], n: int) -> dict[str, Any]:
    """Version *n* (n ≥ 2) of a story: a month later per version, title and a sentence changed."""
    return {
        **fields,
        "title": f"{fields['title']} (revision {n})",
        "body": f"{fields['body']} Updated {n} times since first published.",
        "publishedDateTime": fields["publishedDateTime"] + dt.timedelta(days=30 * (n - 1)),
    }


def decoded(records: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    serde = SingleObjectSerde()
    return [(r, serde.decode(r.value)[1]) for r in records]


def test_a_newer_version_goes_on_as_an_update_an_older_one_is_a_sighting(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    pipeline = Pipeline(settings, tmp_path / "work", stages={"dedup": 1})
    pipelines.append(pipeline)
    pipeline.start()
    first = story(1)
    second = revision(first, 2)  # issue 11: same originalUrl, a month later, title and body
    publish(settings, [first])
    read_topic(settings, UNIQUE, expect=1)
    publish(settings, [second])
    unique = decoded(read_topic(settings, UNIQUE, expect=2))
    assert [u["title"] for _, u in unique] == [first["title"], second["title"]]
    assert {r.key for r, _ in unique} == {article_id(first).encode()}
    assert len({r.partition for r, _ in unique}) == 1  # every version on one partition
    (update,) = [s for _, s in decoded(read_topic(settings, DUPLICATES, expect=1))]
    assert (update["reason"], update["duplicate_of"]) == ("update", article_id(first))
    # An identical re-send and the older version: sightings only.
    publish(settings, [second, first])
    sightings = [s for _, s in decoded(read_topic(settings, DUPLICATES, expect=3))]
    assert [(s["reason"], s["title"]) for s in sightings[1:]] == [
        ("url", second["title"]),
        ("url", first["title"]),
    ]
    assert len(read_topic(settings, UNIQUE, expect=3, timeout=3)) == 2


def _committed(admin: Any, group: str, topic: str) -> dict[int, int]:
    return {tp.partition: offset for tp, offset in admin.committed(group, [topic]).items()}


def _claimants(state: Path) -> list[int]:
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
        try:
            return [r[0] for r in db.execute("SELECT claimant FROM dedup_entries")]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return []  # not created yet


def _ahead(
    claimants: list[int], positions: dict[int, tuple[int, int]], committed: dict[int, int]
) -> list[int]:
    """The claimants of records judged (in the state) whose offsets are not committed."""
    return [
        c
        for c in claimants
        if c in positions and positions[c][1] >= committed.get(positions[c][0], 0)
    ]


def _kill_in_window(
    settings: Settings,
    pipeline: Pipeline,
    state: Path,
    positions: dict[int, tuple[int, int]],
    kills: int = 3,
) -> int:
    """SIGKILL the dedup stage, up to *kills* times, each time when its state holds verdicts
    of records whose offsets are not committed yet (stored, and then emitted or not: the
    window DESIGN §4 is about), restarting it after each; how many kills landed there.

    The stage is frozen (SIGSTOP) at random moments, for a few ms each — less than a
    session timeout — until the state and the group's settled committed offsets show that
    window; once it is dead the window is confirmed (or not) from the final offsets. A
    further kill waits for the successor to make progress (a verdict or a commit), and is
    not tried once the group has committed everything. *positions* maps the claimant of
    each record on articles.raw to its (partition, offset).
    """
    from newswire.kafka import open_clients

    admin = open_clients(settings.kafka).admin()
    rng = random.Random(7)
    ends: dict[int, int] = {}
    for partition, offset in positions.values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)

    def settled() -> tuple[dict[int, int], ...]:
        # A commit sent just before the stop (or the kill) still lands: two reads agree
        # once it has.
        first = _committed(admin, "newswire.dedup", RAW)
        return (first,) if first == _committed(admin, "newswire.dedup", RAW) else ()

    def kill_once(stage: StageProcess) -> bool:
        for _attempt in range(200):
            os.kill(stage.process.pid, signal.SIGSTOP)
            try:
                time.sleep(0.05)
                committed = wait_for(settled, timeout=10, what="settled offsets")[0]
                if _ahead(_claimants(state), positions, committed):
                    _kill(stage)  # SIGKILL works on a stopped process
                    break
                if committed == ends:
                    break  # finished: nothing left to catch
            finally:
                if stage.process.poll() is None:
                    os.kill(stage.process.pid, signal.SIGCONT)
            time.sleep(rng.uniform(0.0, 0.03))
        if stage.process.poll() is None:
            _kill(stage)  # not caught: a plain kill still restarts it
        # Dead now: the group's offsets are final until the successor commits.
        final = wait_for(settled, timeout=10, what="the killed member's final offsets")[0]
        return bool(_ahead(_claimants(state), positions, final))

    def progressed(judged: int, final: tuple[dict[int, int], ...]) -> bool:
        # The successor judged a record its predecessor had not, or committed.
        return len(_claimants(state)) > judged or settled() not in ((), final)

    confirmed = 0
    try:
        for n in range(kills):
            if n:
                judged, final = len(_claimants(state)), settled()
                if final and final[0] == ends:
                    break  # everything committed: no window left
                wait_for(
                    functools.partial(progressed, judged, final),
                    timeout=60,
                    what="the restarted dedup to make progress",
                )
            dedup = next(p for p in pipeline.processes if p.name == "dedup")
            confirmed += kill_once(dedup)
            pipeline.processes.remove(dedup)
            pipeline.processes.append(pipeline.spawn("dedup"))
    finally:
        admin.close()
    return confirmed


def test_sigkill_of_dedup_amid_updates_gives_every_version_its_verdict(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    settings.kafka.max_poll_records = 40
    stories = 300
    items: list[dict[str, Any]] = []
    for n in range(stories):
        first = story(n)
        # Three versions, then a re-send of the newest and the first again (older), both
        # under a URL variant (the same canonical URL), to tell their sightings apart.
        versions = [first, revision(first, 2), revision(first, 3)]
        items.extend([*versions, url_variant(versions[-1]), url_variant(first)])
    pipeline = Pipeline(settings, tmp_path / "work", stages={"dedup": 1})
    pipelines.append(pipeline)
    pipeline.start()
    publish(settings, items)
    positions = {
        claimant_of(RAW, r.partition, r.offset): (r.partition, r.offset)
        for r in read_topic(settings, RAW, expect=len(items))
    }
    state = Path(settings.dedup.state_url.removeprefix("sqlite:///"))
    # Three kills; each is confirmed in the window (judged records uncommitted) or not
    # once the stage is dead, and at least one must be: then records were judged twice.
    assert _kill_in_window(settings, pipeline, state, positions), (
        "no kill landed with judged records uncommitted: nothing redelivered"
    )
    versions_of = {
        v["title"] for n in range(stories) for v in (story(n), revision(story(n), 2))
    } | {revision(story(n), 3)["title"] for n in range(stories)}

    def everything(topic: str) -> list[tuple[Any, dict[str, Any]]]:
        # With what the redeliveries emitted again: read until quiet.
        return decoded(read_topic(settings, topic, expect=len(items), timeout=2))

    wait_for(
        lambda: {u["title"] for _, u in everything(UNIQUE)} >= versions_of,
        timeout=120,
        what="every version on articles.unique",
    )
    wait_for(
        lambda: len({(s["title"], s["url"]) for _, s in everything(DUPLICATES)}) >= 4 * stories,
        timeout=60,
        what="every sighting",
    )
    unique, sightings = everything(UNIQUE), everything(DUPLICATES)
    # A redelivered update taken for a duplicate of itself fails the checks below (verified
    # by breaking the claimant check, which this test then catches).
    assert {u["title"] for _, u in unique} == versions_of
    reasons: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, s in sightings:
        reasons[s["title"], s["url"]].add(s["reason"])
    for n in range(stories):
        v1, v2, v3 = story(n), revision(story(n), 2), revision(story(n), 3)
        # Never "a duplicate of itself": a redelivered first copy is kept again, a
        # redelivered update is an update again.
        assert (v1["title"], v1["originalUrl"]) not in reasons
        assert reasons[v2["title"], v2["originalUrl"]] == {"update"}
        assert reasons[v3["title"], v3["originalUrl"]] == {"update"}
        assert reasons[v3["title"], url_variant(v3)["originalUrl"]] == {"url"}
        assert reasons[v1["title"], url_variant(v1)["originalUrl"]] == {"url"}


def test_a_record_keyed_by_something_else_is_re_keyed_by_its_article_id(
    settings: Settings, tmp_path: Path, pipelines: list[Pipeline]
) -> None:
    from newswire.kafka import open_clients
    from newswire.serde import ARTICLE

    pipeline = Pipeline(settings, tmp_path / "work", stages={"dedup": 1})
    pipelines.append(pipeline)
    pipeline.start()
    stories = [story(n) for n in range(6)]
    serde = SingleObjectSerde()
    producer = open_clients(settings.kafka).producer("wrong-keys")
    try:
        for n, fields in enumerate(stories):
            value = serde.encode(ARTICLE, Article.model_validate(fields).model_dump())
            # A producer of someone else's: keyed by a sequence number, or not at all.
            producer.produce(RAW, value, key=None if n == 0 else f"seq-{n}".encode())
        assert not producer.flush()
    finally:
        producer.close()
    unique = decoded(read_topic(settings, UNIQUE, expect=len(stories)))
    assert len(unique) == len(stories)
    assert {r.key for r, _ in unique} == {article_id(f).encode() for f in stories}
    raw = read_topic(settings, RAW, expect=2 * len(stories))
    rekeyed = [r for r in raw if r.key in {article_id(f).encode() for f in stories}]
    assert len(rekeyed) == len(stories)
    for record in rekeyed:
        assert dict(record.headers)["newswire.rekeyed_from"].startswith(b"articles.raw/")
    # Each is on its article's partition: where the newswire producer sends its copies,
    # which dedup then judges against it (the same instance, the same state).
    publish(settings, [url_variant(f) for f in stories])
    sightings = [s for _, s in decoded(read_topic(settings, DUPLICATES, expect=len(stories)))]
    assert {(s["reason"], s["duplicate_of"]) for s in sightings} == {
        ("url", article_id(f)) for f in stories
    }
    partitions = {
        s["duplicate_of"]: s["source_partition"] for s in sightings
    }  # where the copies landed
    assert {u["id"]: r.partition for r, u in unique} == partitions
    assert metric(pipeline, "newswire_dedup_rekeyed_total") == len(stories)
