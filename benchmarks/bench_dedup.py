#!/usr/bin/env python3
"""Dedup benchmarks: stage throughput, cost per article against the state's size, memory.

Needs nothing outside the repository: articles are generated from the texts of
``tests/fixtures/articles`` (distinct stories of 150-450 words, each a new mix
of their sentences with words substituted), with 10 % URL variants and 10 %
syndicated copies (dateline, credit line, last sentence cut) mixed in.

1. **Throughput** (embedded Tansu, 6 partitions, pre-produced input): the
   dedup stage (``Runner`` + ``DedupConsumer``, near-duplicates on, SQLite
   state) against a raw consumer (the runner's client) that only decodes, both
   timed from the first record consumed to the last commit (stage) or last
   decode (baseline), in the same run (``bench_stages.run_stage``/``run_baseline``).
   CPU µs per record (user+sys of this process, all threads) and wall rate, each
   as a ratio to the baseline. Target: CPU ≤ 1.5 times the baseline's. Also run with
   near-duplicates off, for the cost of them.
2. **Cost per article against the state's size** (no Kafka): the state is
   filled directly with N synthetic remembered articles (random ids, contents
   and sketches, through the index's own ``insert``), bound = N so that every
   batch also evicts; then ``handle_batch`` judges the generated articles in
   batches of 1,000. Target: 1M / 10k ≤ 1.5.
   Also the startup time: a new process opening the filled state and deriving
   its keys (SQLite: the in-memory key table) from the file.
3. **Memory per remembered article**: the SQLite state's size (page_count *
   page_size after a WAL checkpoint, per table from ``dbstat``) divided by the
   entries, and the process's RSS growth while filling (the keys in memory, the
   page cache of 32 MiB, and memory the allocator keeps after the fill's merges),
   with the key table's own arrays. With ``--postgres URL`` also
   ``pg_total_relation_size`` of the three tables per entry. Target ≤ 300 B.

    .venv/bin/python benchmarks/bench_dedup.py [--articles 5000] [--state-sizes 10000,1000000]
        [--postgres postgresql://…] [--postgres-size 100000] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import re
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

from bench_stages import make_settings, produce, run_baseline, run_stage  # noqa: E402

from consumers.dedup import DedupConsumer  # noqa: E402
from consumers.dedup.fingerprint import tokens  # noqa: E402
from consumers.dedup.settings import DedupSettings  # noqa: E402
from consumers.dedup.sketch import SKETCH_BYTES  # noqa: E402
from consumers.dedup.state import Entry, content_key, sketch_keys, url_key  # noqa: E402
from newswire.broker import EmbeddedBroker  # noqa: E402
from newswire.consumer import Context, Event  # noqa: E402
from newswire.model import Article  # noqa: E402
from newswire.serde import ARTICLE, SingleObjectSerde  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.topics import RAW, ensure_topics  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "articles"
TARGET_CPU_RATIO = 1.5  # CPU per record, near-duplicates on, against the decode-only consumer
TARGET_GROWTH = 1.5
TARGET_BYTES = 300
SEED = 1187
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")

log = logging.getLogger("bench-dedup")


# -- data -----------------------------------------------------------------------------------------


def fixture_texts() -> tuple[dict[str, Any], list[str], list[str]]:
    """The fixture documents' front matter (of one), sentences and vocabulary."""
    from producers.documents import parse_document

    sentences: list[str] = []
    base: dict[str, Any] = {}
    for path in sorted(FIXTURES.glob("00[1-6]_*.txt")):
        parsed = parse_document(str(path), path.read_bytes(), max_bytes=10**7)
        fields = getattr(parsed, "fields", None)
        if fields is None:
            continue
        base = base or fields
        sentences.extend(s for s in _SENTENCE.split(fields["body"]) if len(s.split()) > 4)
    vocabulary = sorted(set(tokens(" ".join(sentences))))
    return base, sentences, vocabulary


def generate(n: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """*n* article records: distinct stories, 10 % URL variants, 10 % syndicated copies."""
    base, sentences, vocabulary = fixture_texts()
    rng = random.Random(SEED)
    now = dt.datetime.now(dt.UTC)
    stories: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    kinds = {"story": 0, "url variant": 0, "syndicated": 0}
    for i in range(n):
        roll = rng.random()
        if stories and roll < 0.1:
            original = rng.choice(stories[-500:])
            url = original["originalUrl"].replace("https://www.", "http://") + "?utm_source=rss"
            fields, kind = {**original, "originalUrl": url, "webUrl": url}, "url variant"
        elif stories and roll < 0.2:
            original = rng.choice(stories[-500:])
            body = original["body"].rsplit(". ", 1)[0]
            url = f"https://partner{i % 7}.example.com/wire/{i}"
            fields = {
                **original,
                "title": original["title"].upper(),
                "body": f"LONDON (Reuters) - {body}.\n\nReporting by Jane Doe",
                "originalUrl": url,
                "webUrl": url,
            }
            kind = "syndicated"
        else:
            picked = rng.sample(sentences, rng.randint(8, 18))
            words = " ".join(picked).split()
            for _ in range(len(words) // 4):  # a new story, not a copy of a fixture
                words[rng.randrange(len(words))] = rng.choice(vocabulary)
            url = f"https://www.news{i % 13}.example.com/world/{i}/story"
            fields = {
                **base,
                "title": " ".join(rng.sample(vocabulary, 8)).capitalize(),
                "body": " ".join(words),
                "originalUrl": url,
                "webUrl": url,
                "publishedDateTime": dt.datetime(2017, 3, 1, tzinfo=dt.UTC)
                + dt.timedelta(minutes=i),
                "related": [],
            }
            stories.append(fields)
            kind = "story"
        kinds[kind] += 1
        record = Article.model_validate(fields).model_dump()
        record["ingested_at"] = now
        record["source"] = "bench"
        records.append(record)
    return records, kinds


# -- 1. throughput --------------------------------------------------------------------------------


def throughput(records: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    serde = SingleObjectSerde()
    encoded = [(r["id"].encode(), serde.encode(ARTICLE, r)) for r in records]
    n = len(encoded)
    out: dict[str, Any] = {"records": n, "avro_bytes": sum(len(v) for _, v in encoded) / n}
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        pid = broker.process.pid if broker.process is not None else None
        s = make_settings(broker.bootstrap, workdir)
        ensure_topics(s.kafka)
        out["produce_s"] = produce(s, RAW, encoded)
        base = run_baseline(s, RAW, n, f"bench-baseline-{uuid.uuid4().hex[:8]}", pid)
        base_cpu_us = base.cpu_s / max(1, base.records) * 1e6
        out["baseline"] = {
            "seconds": base.seconds,
            "records_per_s": base.rate,
            "cpu_us_per_record": base_cpu_us,
        }
        for near in (True, False):
            name = f"dedup-bench-{'near' if near else 'exact'}"
            cls = type("BenchDedup", (DedupConsumer,), {"name": name})
            # Settings are per consumer name: this subclass's section, not ``dedup``'s.
            section = s.section(name, DedupSettings)
            section.near = near
            section.state_url = f"sqlite:///{workdir / f'dedup-near-{near}.sqlite'}"
            result = run_stage(cls, RAW, s, n, pid)
            cpu_us = result.cpu_s / max(1, result.records) * 1e6
            out["near" if near else "exact"] = {
                "seconds": result.seconds,
                "records_per_s": result.rate,
                "ratio": result.rate / base.rate if base.rate else 0.0,
                "cpu_us_per_record": cpu_us,
                "cpu_ratio": cpu_us / base_cpu_us if base_cpu_us else 0.0,
                "complete": result.complete,
                "out": result.out,
            }
    return out


# -- 2. and 3. state size -------------------------------------------------------------------------


def _rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fill(consumer: DedupConsumer, size: int, chunk: int = 20_000) -> float:
    """Remember *size* synthetic kept articles (random ids, contents, sketches) directly."""
    rng = np.random.default_rng(size)
    started = time.perf_counter()
    index = consumer.index
    for lo in range(0, size, chunk):
        count = min(chunk, size - lo)
        ids = rng.integers(-(2**63), 2**63 - 1, size=count, dtype=np.int64).tolist()
        contents = rng.integers(-(2**63), 2**63 - 1, size=count, dtype=np.int64).tolist()
        versions = rng.integers(-(2**63), 2**63 - 1, size=count, dtype=np.int64).tolist()
        sketches = rng.integers(0, 256, size=(count, SKETCH_BYTES), dtype=np.uint8)
        entries = []
        for i in range(count):
            data = sketches[i].tobytes()
            entry = Entry(
                article=ids[i],
                kept=ids[i],
                claimant=ids[i] ^ 0x5BD1E995,
                reason=0,
                similarity=1.0,
                event_time=1_488_326_400 + lo + i,
                content=contents[i],
                sketch=data,
                version=versions[i],
                ingested=(1_488_326_400 + lo + i) * 1000,
            )
            entry.keys = [url_key(ids[i]), content_key(contents[i]), *sketch_keys(data)]
            entries.append(entry)
        index.begin()
        index.insert(entries)
        index.commit()
    return time.perf_counter() - started


def sqlite_bytes(path: Path) -> tuple[int, dict[str, int]]:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        total = (
            db.execute("PRAGMA page_count").fetchone()[0]
            * db.execute("PRAGMA page_size").fetchone()[0]
        )
        try:
            tables = {
                name: int(size)
                for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
            }
        except sqlite3.OperationalError:
            tables = {}  # SQLite built without dbstat
        return int(total), tables
    finally:
        db.close()


def open_consumer(settings: Settings) -> DedupConsumer:
    consumer = DedupConsumer()
    consumer.bind(
        Context(settings=settings, registry=CollectorRegistry(), emit=lambda *a, **k: None, log=log)
    )
    consumer.setup()
    return consumer


def state_cost(records: list[dict[str, Any]], size: int, state_url: str) -> dict[str, Any]:
    """µs per article of handle_batch with *size* articles remembered (and the bound at size)."""
    events = [
        Event(RAW, i % 6, i, r["id"].encode(), b"", ARTICLE, r) for i, r in enumerate(records)
    ]
    settings = Settings()
    settings.dedup.state_url = state_url
    settings.dedup.max_entries = size
    rss0 = _rss_bytes()
    consumer = open_consumer(settings)
    try:
        fill_s = fill(consumer, size)
        rss_filled = _rss_bytes()
        # Startup: a new process opens the state and (SQLite) derives its keys from the file
        # at the first batch.
        consumer.close()
        started, cpu0 = time.perf_counter(), time.process_time()
        consumer = open_consumer(settings)
        consumer.index.begin()
        consumer.index.rollback()
        startup_s, startup_cpu_s = time.perf_counter() - started, time.process_time() - cpu0
        table = getattr(consumer.index, "_table", None)
        started, cpu0 = time.perf_counter(), time.process_time()
        for lo in range(0, len(events), 1000):
            consumer.handle_batch(events[lo : lo + 1000])
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        entries = len(consumer.index)
        evicted = consumer.index.evicted
    finally:
        consumer.close()
    return {
        "remembered": entries,
        "evicted_while_judging": evicted,
        "fill_s": fill_s,
        # CPU time (steadier than wall time on a shared machine), and the wall rate.
        "us_per_article": cpu / len(events) * 1e6,
        "articles_per_s": len(events) / elapsed,
        "rss_growth_bytes_per_article": (rss_filled - rss0) / max(1, size),
        "startup_s": startup_s,
        "startup_cpu_s": startup_cpu_s,
        "key_table_bytes_per_article": table.nbytes / max(1, size) if table is not None else None,
    }


def postgres_bytes(url: str, size: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The same fill in a scratch schema of *url*; pg_total_relation_size per entry."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in url else "?"
        scoped = f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
        result = state_cost(records, size, scoped)
        with psycopg.connect(scoped, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            total = sum(
                int(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0])  # type: ignore[index]
                for t in ("newswire_dedup_entries", "newswire_dedup_keys", "newswire_dedup_meta")
            )
        result["bytes_per_article"] = total / max(1, result["remembered"])
        return result
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--state-sizes", default="10000,1000000")
    parser.add_argument("--postgres", help="also measure the PostgreSQL state (scratch schema)")
    parser.add_argument("--postgres-size", type=int, default=100_000)
    parser.add_argument("--no-kafka", action="store_true", help="skip the throughput run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    records, kinds = generate(args.articles)
    report: dict[str, Any] = {"articles": len(records), "kinds": kinds}
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        workdir = Path(tmp)
        if not args.no_kafka:
            report["throughput"] = throughput(records, workdir)
        report["state"] = []
        for size in (int(x) for x in args.state_sizes.split(",") if x.strip()):
            path = workdir / f"state-{size}.sqlite"
            row = state_cost(records, size, f"sqlite:///{path}")
            total, tables = sqlite_bytes(path)
            row["bytes_per_article"] = total / max(1, row["remembered"])
            row["tables_bytes_per_article"] = {
                k: v / max(1, row["remembered"]) for k, v in tables.items()
            }
            report["state"].append(row)
            path.unlink()
        if args.postgres:
            report["postgres"] = postgres_bytes(args.postgres, args.postgres_size, records)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    kinds = ", ".join(f"{v} {k}" for k, v in report["kinds"].items())
    print(f"{report['articles']} generated articles ({kinds})")
    t = report.get("throughput")
    if t:
        base = t["baseline"]["records_per_s"]
        print(
            f"\nthroughput, embedded Tansu, 6 partitions, {t['avro_bytes']:.0f} B Avro each "
            f"(pre-produce {t['produce_s']:.1f}s):"
        )
        base_cpu = t["baseline"]["cpu_us_per_record"]
        print(f"  decode-only consumer        {base:8.0f} rec/s  {base_cpu:6.1f} CPU µs/rec")
        for mode in ("near", "exact"):
            r = t[mode]
            verdict = "ok" if r["cpu_ratio"] <= TARGET_CPU_RATIO else f"ABOVE {TARGET_CPU_RATIO}"
            label = "dedup, near-dups on " if mode == "near" else "dedup, exact only   "
            print(
                f"  {label}        {r['records_per_s']:8.0f} rec/s  "
                f"{r['cpu_us_per_record']:6.1f} CPU µs/rec  "
                f"CPU {r['cpu_ratio']:.2f}x, wall rate {r['ratio']:.2f}x of the baseline"
                f"{'  ' + verdict if mode == 'near' else ''}"
            )
    rows = report["state"]
    if rows:
        print(
            "\nDedupConsumer.handle_batch per article, no Kafka, SQLite state filled to its bound:"
        )
        for row in rows:
            tables = ", ".join(
                f"{k.removeprefix('dedup_')} {v:.0f}"
                for k, v in row["tables_bytes_per_article"].items()
                if v >= 1
            )
            print(
                f"  {row['remembered']:>9} remembered: "
                f"{row['us_per_article']:7.1f} CPU µs/article, "
                f"{row['bytes_per_article']:.0f} B/article on disk ({tables}); "
                f"RSS +{row['rss_growth_bytes_per_article']:.0f} B/article"
                + (
                    f" (keys in memory {row['key_table_bytes_per_article']:.0f})"
                    if row.get("key_table_bytes_per_article") is not None
                    else ""
                )
                + f"; fill {row['fill_s']:.0f}s, startup {row['startup_s']:.1f}s"
            )
        if len(rows) >= 2:
            growth = rows[-1]["us_per_article"] / rows[0]["us_per_article"]
            verdict = "ok" if growth <= TARGET_GROWTH else f"ABOVE {TARGET_GROWTH}"
            print(
                f"  cost {rows[-1]['remembered']} / {rows[0]['remembered']}: {growth:.2f}x "
                f"({verdict}); bytes/article target {TARGET_BYTES}: "
                f"{'ok' if rows[-1]['bytes_per_article'] <= TARGET_BYTES else 'ABOVE'}"
            )
    pg = report.get("postgres")
    if pg:
        print(
            f"\nPostgreSQL state, {pg['remembered']} remembered: {pg['us_per_article']:.1f} "
            f"µs/article, {pg['bytes_per_article']:.0f} B/article (pg_total_relation_size)"
        )


if __name__ == "__main__":
    sys.exit(main())
