"""The dedup state on both backends: bounds, persistence, formats, and racing claims."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from consumers.dedup import DedupConsumer
from consumers.dedup.consumer import Verdict
from consumers.dedup.fingerprint import tokens
from consumers.dedup.index import open_index
from consumers.dedup.postgres import PostgresSeenIndex, lock_schema
from consumers.dedup.state import Entry, SeenIndex, SqliteSeenIndex
from newswire.consumer import Event
from newswire.errors import ConfigError
from newswire.serde import ARTICLE
from newswire.topics import RAW
from tests.conftest import POSTGRES_URL
from tests.unit.support import ARTICLES, open_dedup, record

LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
T0 = dt.datetime(2017, 3, 1, 12, tzinfo=dt.UTC)
VOCABULARY = tokens(" ".join(p.read_text() for p in sorted(ARTICLES.glob("00[1-6]_*.txt"))))


def story(n: int, *, published: dt.datetime = T0, words: int = 120) -> dict[str, Any]:
    """A distinct article: its own URL and a text of random words (no two alike)."""
    rng = random.Random(n)
    return record(
        LAPTOP,
        originalUrl=f"https://news.example.com/story/{n}",
        title=f"Story {n}",
        body=" ".join(rng.choice(VOCABULARY) for _ in range(words)),
        publishedDateTime=published,
    )


def copy_of(rec: dict[str, Any], outlet: str) -> dict[str, Any]:
    """A syndicated copy: another outlet, a dateline and a credit line."""
    return {
        **rec,
        **record(
            LAPTOP,
            originalUrl=f"https://{outlet}/wire/{rec['id']}",
            title=rec["title"].upper(),
            body=f"LONDON (Reuters) - {rec['body']} Reporting by Jane Doe",
            publishedDateTime=rec["published_at"],
        ),
    }


def event(rec: dict[str, Any], partition: int, offset: int) -> Event:
    return Event(RAW, partition, offset, rec["id"].encode(), b"raw", ARTICLE, rec)


def metric(consumer: DedupConsumer, name: str, **labels: str) -> float | None:
    return consumer.context.registry.get_sample_value(
        name, {"consumer": "dedup", "topic": RAW, **labels}
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dedup.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


# -- bounds ----------------------------------------------------------------------------------------


def test_the_oldest_articles_are_evicted_at_the_bound_with_their_keys(state_url: str) -> None:
    consumer = open_dedup(state_url, max_entries=3)
    try:
        stories = [story(n) for n in range(5)]
        for offset, rec in enumerate(stories):
            consumer.judge_batch([event(rec, 0, offset)])
        assert len(consumer.index) == 3
        assert metric(consumer, "newswire_dedup_state_entries") == 3
        assert metric(consumer, "newswire_dedup_evictions_total") == 2
        # The two oldest are forgotten, URL and content and sketch: a copy of one is new…
        assert not consumer.judge_batch([event(copy_of(stories[0], "a.example"), 1, 0)])[
            0
        ].duplicate
        # …while the newest are remembered.
        verdict = consumer.judge_batch([event(copy_of(stories[4], "b.example"), 1, 1)])[0]
        assert (verdict.reason, verdict.kept_id) == ("near", stories[4]["id"])
    finally:
        consumer.close()


def held_keys(index: SeenIndex) -> dict[int, int]:
    """Every key the SQLite *index* holds, and the seq of its holder."""
    assert isinstance(index, SqliteSeenIndex) and index._table is not None
    keys, seqs = index._table.held()
    return dict(zip(keys.tolist(), seqs.tolist(), strict=True))


def reopened_keys(url: str) -> dict[int, int]:
    """The keys of the state at *url* as a new process derives them from the file."""
    index = open_index(url, max_entries=1_000_000)
    try:
        index.begin()
        index.rollback()
        return held_keys(index)
    finally:
        index.close()


def remembered_seqs(path: Path) -> set[int]:
    db = sqlite3.connect(path)
    try:
        return {int(r[0]) for r in db.execute("SELECT seq FROM dedup_entries")}
    finally:
        db.close()


def test_evicting_frees_exactly_the_keys_of_the_evicted(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite"
    url = f"sqlite:///{path}"
    consumer = open_dedup(url, max_entries=10)
    try:
        for offset in range(40):
            consumer.judge_batch([event(story(offset), 0, offset)])
        held = held_keys(consumer.index)
    finally:
        consumer.close()
    assert len(remembered_seqs(path)) == 10
    assert set(held.values()) == remembered_seqs(path)  # no key leads to an evicted entry
    assert len(held) == 10 * 8  # URL, content and 6 band keys each
    assert reopened_keys(url) == held  # and a restart derives the same from the file


def test_articles_older_than_the_window_are_evicted(state_url: str) -> None:
    consumer = open_dedup(state_url, window_s=3600)
    try:
        early = [story(1, published=T0), story(2, published=T0 + dt.timedelta(minutes=10))]
        late = story(3, published=T0 + dt.timedelta(hours=2))
        consumer.judge_batch([event(r, 0, i) for i, r in enumerate(early)])
        assert len(consumer.index) == 2
        consumer.judge_batch([event(late, 0, 2)])
        assert len(consumer.index) == 1
        assert metric(consumer, "newswire_dedup_evictions_total") == 2
        assert not consumer.judge_batch([event(copy_of(early[0], "c.example"), 1, 0)])[0].duplicate
    finally:
        consumer.close()


@pytest.mark.postgres
def test_an_instance_evicting_in_another_schema_does_not_stop_this_one(postgres_url: str) -> None:
    # Two dedup groups in two schemas of one database: the one holding its eviction lock
    # (mid-way through a long eviction) must not make the other skip its own.
    import psycopg

    consumer = open_dedup(postgres_url, max_entries=2)
    other = psycopg.connect(POSTGRES_URL)  # one transaction, rolled back: leaves nothing
    try:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        other.execute(f"CREATE SCHEMA {schema}")
        other.execute(f"SET LOCAL search_path = {schema}")
        assert lock_schema(other, wait=False)  # the other group's instance is evicting
        for offset, rec in enumerate(story(n) for n in range(4)):
            consumer.judge_batch([event(rec, 0, offset)])
        assert len(consumer.index) == 2
        assert metric(consumer, "newswire_dedup_evictions_total") == 2
    finally:
        other.rollback()
        other.close()
        consumer.close()


# -- persistence and formats ----------------------------------------------------------------------


def test_the_state_survives_a_restart(state_url: str) -> None:
    original = story(1)
    consumer = open_dedup(state_url)
    consumer.judge_batch([event(original, 0, 0)])
    consumer.close()
    consumer = open_dedup(state_url)
    try:
        assert len(consumer.index) == 1
        verdict = consumer.judge_batch([event(copy_of(original, "d.example"), 3, 7)])[0]
        assert (verdict.reason, verdict.kept_id) == ("near", original["id"])
        assert consumer.judge_batch([event(original, 0, 0)]) == [Verdict(original["id"])]
    finally:
        consumer.close()


def test_a_state_of_another_sketch_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite"
    SqliteSeenIndex(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE dedup_meta SET value = 'rmh1-other' WHERE name = 'format'")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="sketch format"):
        SqliteSeenIndex(path)


def test_a_state_of_the_first_exact_only_format_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, kept_id TEXT, claimant TEXT)")
    db.commit()
    db.close()
    index = SqliteSeenIndex(path)
    index.close()
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert "seen" not in tables


def test_an_unknown_state_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported dedup state URL"):
        open_index("redis://127.0.0.1:6379/0", max_entries=10)


# -- two instances, one story, the same moment ----------------------------------------------------


class _PausingPostgresIndex(PostgresSeenIndex):
    """The real PostgreSQL index, made to wait after its first lookup until both racers looked."""

    def __init__(self, url: str, barrier: threading.Barrier) -> None:
        super().__init__(url)
        self.barrier = barrier
        self.lookups = 0

    def lookup(self, keys: Collection[int]) -> dict[int, Entry]:
        found = super().lookup(keys)
        self.lookups += 1
        if self.lookups == 1:
            self.barrier.wait(timeout=30)
        return found


def _race(consumers: list[DedupConsumer], batches: list[list[Event]]) -> list[Verdict]:
    verdicts: list[Verdict | None] = [None, None]
    errors: list[BaseException] = []

    def judge(i: int) -> None:
        try:
            (verdicts[i],) = consumers[i].judge_batch(batches[i])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=judge, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(v is not None for v in verdicts)
    return [v for v in verdicts if v is not None]


@pytest.mark.postgres
def test_two_instances_judging_two_copies_at_once_keep_exactly_one(postgres_url: str) -> None:
    original = story(1)
    copies = [[event(original, 1, 0)], [event(copy_of(original, "e.example"), 4, 0)]]
    for _round in range(3):  # a fresh race each time (new offsets, new story)
        barrier = threading.Barrier(2)
        consumers = [open_dedup(postgres_url) for _ in (0, 1)]
        try:
            for consumer in consumers:
                consumer.index.close()
                consumer.index = _PausingPostgresIndex(postgres_url, barrier)
            a, b = _race(consumers, copies)
            assert sorted([a.duplicate, b.duplicate]) == [False, True]
            kept, dup = (a, b) if b.duplicate else (b, a)
            assert dup.reason == "near"
            assert dup.kept_id == kept.kept_id
            assert sum(metric(c, "newswire_dedup_claim_conflicts_total") or 0 for c in consumers)
        finally:
            for consumer in consumers:
                consumer.close()
        original = story(_round + 10)
        copies = [
            [event(original, 1, _round + 1)],
            [event(copy_of(original, "e.example"), 4, _round + 1)],
        ]


def test_two_processes_sharing_one_sqlite_file_keep_exactly_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dedup.sqlite'}"
    original = story(1)
    consumers = [open_dedup(url) for _ in (0, 1)]
    try:
        a, b = _race(
            consumers,
            [[event(original, 1, 0)], [event(copy_of(original, "f.example"), 4, 0)]],
        )
    finally:
        for consumer in consumers:
            consumer.close()
    assert sorted([a.duplicate, b.duplicate]) == [False, True]


# -- updates ---------------------------------------------------------------------------------------


def revised(rec: dict[str, Any], n: int) -> dict[str, Any]:
    """Version *n* of *rec*: a day later per version, another title."""
    return {
        **rec,
        "title": f"{rec['title']} (version {n})",
        "published_at": rec["published_at"] + dt.timedelta(days=n),
    }


def test_updates_take_over_the_url_on_both_backends(state_url: str) -> None:
    v1 = story(1)
    v2, v3 = revised(v1, 2), revised(v1, 3)
    consumer = open_dedup(state_url)
    try:
        assert consumer.judge_batch([event(v1, 0, 0)]) == [Verdict(v1["id"])]
        assert consumer.judge_batch([event(v2, 0, 1)]) == [Verdict(v1["id"], "update")]
    finally:
        consumer.close()
    consumer = open_dedup(state_url)
    try:
        # Delivered again after a restart: its own verdict, not a duplicate of itself.
        assert consumer.judge_batch([event(v1, 0, 0)]) == [Verdict(v1["id"])]
        assert consumer.judge_batch([event(v2, 0, 1)]) == [Verdict(v1["id"], "update")]
        assert consumer.judge_batch([event(v2, 0, 2)]) == [Verdict(v1["id"], "url")]
        assert consumer.judge_batch([event(v1, 0, 3)]) == [Verdict(v1["id"], "url")]
        assert consumer.judge_batch([event(v3, 0, 4)]) == [Verdict(v1["id"], "update")]
        assert len(consumer.index) == 3  # one entry per stored version
    finally:
        consumer.close()


def test_evicting_versions_frees_exactly_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite"
    url = f"sqlite:///{path}"
    consumer = open_dedup(url, max_entries=10)
    try:
        offset = 0
        for n in range(12):
            rec = story(n)
            # Each story in three versions, some judged in one batch, some one by one.
            versions = [rec, revised(rec, 1), revised(rec, 2)]
            if n % 2:
                consumer.judge_batch([event(v, 0, offset + i) for i, v in enumerate(versions)])
            else:
                for i, v in enumerate(versions):
                    consumer.judge_batch([event(v, 0, offset + i)])
            offset += 3
        held = held_keys(consumer.index)
    finally:
        consumer.close()
    assert len(remembered_seqs(path)) == 10
    assert set(held.values()) <= remembered_seqs(path)
    # Versions that gave up their URL key hold a claim key (taken over in one batch and
    # from an earlier one), and a restart derives the same holders from the file.
    assert sum(1 for key in held if key & 15 == 15) > 0
    assert reopened_keys(url) == held


# -- the SQLite state's keys in memory --------------------------------------------------------


def test_a_process_sharing_the_file_sees_what_the_other_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dedup.sqlite'}"
    first, second = open_dedup(url), open_dedup(url)  # both opened while it was empty
    try:
        originals = [story(n) for n in range(3)]
        first.judge_batch([event(r, 0, i) for i, r in enumerate(originals)])
        # second never stored these: it reads them from the file, under the lock.
        verdicts = second.judge_batch(
            [event(copy_of(r, "g.example"), 1, i) for i, r in enumerate(originals)]
        )
        assert [(v.reason, v.kept_id) for v in verdicts] == [("near", r["id"]) for r in originals]
        # …before judging: not by losing a claim to it and judging again.
        assert metric(second, "newswire_dedup_claim_conflicts_total") == 0
        assert second.judge_batch([event(originals[0], 2, 0)]) == [
            Verdict(originals[0]["id"], "url")
        ]
    finally:
        first.close()
        second.close()


def test_evicted_keys_are_free_and_the_remembered_found(tmp_path: Path) -> None:
    consumer = open_dedup(f"sqlite:///{tmp_path / 'dedup.sqlite'}", max_entries=5)
    try:
        stories = [story(n) for n in range(40)]
        for offset, rec in enumerate(stories):
            consumer.judge_batch([event(rec, 0, offset)])
        # The five remembered are still found, the evicted ones are not.
        assert consumer.judge_batch([event(stories[-1], 3, 0)])[0].reason == "url"
        assert not consumer.judge_batch([event(stories[0], 3, 1)])[0].duplicate
    finally:
        consumer.close()


def test_a_state_of_the_keys_table_layout_is_migrated(tmp_path: Path) -> None:
    """A state written with every key in a ``dedup_keys`` table (before the keys were
    kept in memory) is converted at open: the same keys lead to the same entries."""
    path = tmp_path / "dedup.sqlite"
    url = f"sqlite:///{path}"
    consumer = open_dedup(url, max_entries=20)
    try:
        stories = [story(n) for n in range(12)]
        consumer.judge_batch([event(r, 0, i) for i, r in enumerate(stories)])
        # Copies (kept as duplicates), versions (a URL taken over, claim keys), evictions.
        consumer.judge_batch([event(copy_of(r, "e.example"), 1, i) for i, r in enumerate(stories)])
        consumer.judge_batch([event(revised(stories[-1], 1), 2, 0)])
        consumer.judge_batch([event(revised(stories[-1], 2), 2, 1), event(story(99), 2, 2)])
        held = held_keys(consumer.index)
    finally:
        consumer.close()
    assert any(key & 15 == 15 for key in held)  # the scenario has claim keys
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE dedup_keys (key INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
        db.executemany("INSERT INTO dedup_keys VALUES (?, ?)", held.items())
        db.execute("ALTER TABLE dedup_entries DROP COLUMN unheld")
        db.execute("ALTER TABLE dedup_entries DROP COLUMN replaces")
        db.commit()
    finally:
        db.close()
    assert reopened_keys(url) == held
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert "dedup_keys" not in tables
    consumer = open_dedup(url, max_entries=20)
    try:
        # The records that made entries get their own verdicts back; copies are still found.
        assert consumer.judge_batch([event(revised(stories[-1], 1), 2, 0)]) == [
            Verdict(stories[-1]["id"], "update")
        ]
        verdict = consumer.judge_batch([event(copy_of(stories[5], "f.example"), 3, 0)])[0]
        # (the same text as the e.example copy remembered: found by its content key)
        assert (verdict.reason, verdict.kept_id) == ("content", stories[5]["id"])
    finally:
        consumer.close()


_JUDGE_UNTIL_KILLED = """
import sys
from tests.conftest import POSTGRES_URL
from tests.unit.support import open_dedup
from tests.unit.test_dedup_state import event, story

consumer = open_dedup(sys.argv[1])
for batch in range(200):
    consumer.judge_batch([event(story(batch * 20 + i), 0, batch * 20 + i) for i in range(20)])
    print(batch, flush=True)  # judge_batch returns once the batch is committed
"""


def test_a_restart_after_kill_9_derives_every_committed_key_from_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dedup.sqlite"
    url = f"sqlite:///{path}"
    child = subprocess.Popen(
        [sys.executable, "-c", _JUDGE_UNTIL_KILLED, url],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        committed = [int(child.stdout.readline()) for _ in range(5)]
        os.kill(child.pid, signal.SIGKILL)  # while it judges the next batches
        child.wait(timeout=30)
        committed.extend(int(line) for line in child.stdout.read().split())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert committed == list(range(len(committed)))
    stored = remembered_seqs(path)
    assert len(stored) >= 20 * len(committed)  # a batch after the last printed one may be in
    held = reopened_keys(url)
    assert set(held.values()) == stored
    assert len(held) == 8 * len(stored)  # distinct stories: URL, content and 6 bands each
    consumer = open_dedup(url)
    try:
        # Every committed story is known: redelivered, its record gets its own verdict back;
        # another record of it is a duplicate.
        for batch in committed:
            offsets = range(batch * 20, batch * 20 + 20)
            verdicts = consumer.judge_batch([event(story(o), 0, o) for o in offsets])
            assert verdicts == [Verdict(story(o)["id"]) for o in offsets]
        last = committed[-1] * 20 + 19
        assert consumer.judge_batch([event(story(last), 4, 0)])[0].reason == "url"
    finally:
        consumer.close()
