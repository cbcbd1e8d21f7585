#!/usr/bin/env python3
"""Throughput of the store stage into SQLite and PostgreSQL vs a raw kafka-python consumer.

1. builds N seed-shaped enriched articles (~2.6 KB Avro each) from
   ``tests/fixtures/articles/000_e6160929f81e6bcd.txt`` (titles, URLs, excerpts
   and publication times varied per article, so every one is a distinct row);
2. starts an embedded Tansu broker (unless ``--bootstrap``), creates the topics
   (6 partitions) and pre-produces the records to ``articles.enriched``;
3. measures the *baseline*: a raw ``KafkaConsumer`` built by
   ``newswire.kafka.make_consumer`` in a fresh group that polls the topic and
   only decodes each value with ``SingleObjectSerde.decode``;
4. for each backend, into a fresh store (a temp SQLite file; a fresh schema in
   the PostgreSQL database, dropped afterwards), runs the store stage — a
   ``newswire.runner.Runner`` with ``StoreConsumer`` in this process — first
   over new articles (inserts), then again in a second group over the same
   topic (a replay: every row is upserted again).

Times run from the first record consumed (group join and first fetch excluded)
to the last record decoded (baseline) or the last offset commit (store).
Printed: records/s, the ratio to the baseline, the share of the time spent in
the database transaction, and this process's CPU use. Target: >= 5,000
articles/s per backend. The GC is tuned as ``newswire consume`` tunes it
(``newswire.process.tune_gc``) unless ``--no-tune-gc``. With ``--repeat N``
the baseline and the store runs are measured N times, interleaved, and the
best of each is summarised (on a shared machine the best round is the one
least disturbed).

    .venv/bin/python benchmarks/bench_store.py [--articles 20000] [--backends sqlite,postgresql]
        [--repeat 2] [--postgres URL] [--bootstrap HOST:PORT] [--json] [--profile BACKEND]
        [--no-tune-gc]

``--postgres`` defaults to ``$NEWSWIRE_BENCH_POSTGRES`` or
``postgresql://postgres@127.0.0.1:5432/test``. An unreachable PostgreSQL is
reported and skipped (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import logging
import os
import platform
import pstats
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from stagerun import run_until  # noqa: E402  (benchmarks/ is on sys.path)

from consumers.enrich import Enricher  # noqa: E402
from consumers.store import StoreConsumer, StoreSettings  # noqa: E402
from newswire.broker import EmbeddedBroker  # noqa: E402
from newswire.kafka import open_clients  # noqa: E402
from newswire.model import EnrichedArticle  # noqa: E402
from newswire.process import tune_gc  # noqa: E402
from newswire.runner import Runner  # noqa: E402
from newswire.serde import ENRICHED_ARTICLE, SingleObjectSerde  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.topics import ENRICHED, ensure_topics  # noqa: E402

SEED = REPO / "tests" / "fixtures" / "articles" / "000_e6160929f81e6bcd.txt"
PARTITIONS = 6
TARGET_RATE = 5000.0
TIMEOUT_S = 300.0
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

log = logging.getLogger("bench_store")


# -- data ------------------------------------------------------------------------------------


def load_seed() -> dict[str, Any]:
    """The seed article's front-matter fields and its (empty) body."""
    _, front, body = SEED.read_text(encoding="utf-8").split("---\n", 2)
    fields = yaml.load(front, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    fields["body"] = body.strip("\n")
    return dict(fields)


def build_records(n: int) -> tuple[list[tuple[bytes, bytes]], float, float]:
    """N enriched seed-shaped records, Avro-encoded: ((key, value) list, mean bytes, build s)."""
    started = time.perf_counter()
    seed = load_seed()
    serde = SingleObjectSerde()
    enricher = Enricher()
    now = dt.datetime.now(dt.UTC)
    out: list[tuple[bytes, bytes]] = []
    for i in range(n):
        rng = random.Random(i)
        fields = dict(seed)
        title, excerpt = seed["title"].split(), seed["excerpt"].split()
        rng.shuffle(title)
        rng.shuffle(excerpt)
        fields["title"] = f"{' '.join(title)} #{i}"
        fields["excerpt"] = " ".join(excerpt)
        url = re.sub(r"/news/(\d+)/([^/]+)$", rf"/news/\1/\2-{i}", seed["originalUrl"])
        fields["originalUrl"] = fields["webUrl"] = url
        fields["publishedDateTime"] = seed["publishedDateTime"] + dt.timedelta(seconds=i)
        record = EnrichedArticle.model_validate(fields).model_dump()
        record["ingested_at"] = now
        record["source"] = "bench"
        record = enricher.enrich(record)
        out.append((record["id"].encode(), serde.encode(ENRICHED_ARTICLE, record)))
    if len({k for k, _ in out}) != n:
        raise SystemExit("bench records do not have distinct ids; fix build_records")
    mean = sum(len(v) for _, v in out) / max(1, n)
    return out, mean, time.perf_counter() - started


# -- broker and stores -----------------------------------------------------------------------


@contextlib.contextmanager
def broker_for(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    """A fresh embedded broker (stopped by PID afterwards), or the one given."""
    if bootstrap:
        yield bootstrap
        return
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    try:
        broker.start()
        yield broker.bootstrap
    finally:
        broker.stop()


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """*url* with a fresh schema as its search_path; the schema is dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]


def make_settings(bootstrap: str, store_url: str) -> Settings:
    s = Settings()
    s.kafka.bootstrap = bootstrap
    s.kafka.partitions = PARTITIONS
    s.kafka.session_timeout_ms = 2000
    s.kafka.heartbeat_interval_ms = 500
    s.store.url = store_url
    s.metrics.enabled = False
    return s


def produce(s: Settings, records: list[tuple[bytes, bytes]]) -> float:
    started = time.perf_counter()
    producer = open_clients(s.kafka, s.producer).producer("bench-load")
    try:
        for k, v in records:
            producer.produce(ENRICHED, v, key=k)
        failed = producer.flush()
        if failed:
            raise SystemExit(f"pre-producing: {len(failed)} records failed: {failed[0].error}")
    finally:
        producer.close(timeout_s=10)
    return time.perf_counter() - started


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    """One timed run."""

    name: str
    records: int
    seconds: float
    cpu_s: float = 0.0
    write_s: float = 0.0
    rows: int = 0
    complete: bool = True
    error: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def run_baseline(s: Settings, n: int) -> Result:
    """A raw consumer (the runner's client, fresh group) that only decodes, until *n*."""
    decode = SingleObjectSerde().decode
    consumer = open_clients(s.kafka).consumer(f"bench.baseline.{uuid.uuid4().hex[:8]}", "bench")
    consumer.subscribe([ENRICHED], on_assign=lambda _: None, on_revoke=lambda _: None)
    seen, t0, cpu0 = 0, None, 0.0
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while seen < n and time.monotonic() < deadline:
            polled = consumer.poll(s.runner.poll_timeout_ms / 1000, s.kafka.max_poll_records)
            if polled and t0 is None:
                t0, cpu0 = time.perf_counter(), time.process_time()
            for records in polled.values():
                for record in records:
                    decode(record.value)
                seen += len(records)
        t1, cpu1 = time.perf_counter(), time.process_time()
    finally:
        consumer.close()
    return Result("baseline (decode only)", seen, t1 - (t0 or t1), cpu1 - cpu0, complete=seen >= n)


def run_store(
    name: str, s: Settings, n: int, group: str, profile: cProfile.Profile | None = None
) -> Result:
    """The store stage (Runner + StoreConsumer, group newswire.<group>) until *n* committed."""
    consumer_class = type("BenchStore", (StoreConsumer,), {"name": group})
    # A plug-in's settings section is named after it: this one's is the store's.
    s.section(group, StoreSettings).url = s.store.url
    consumer = consumer_class()
    registry = CollectorRegistry()
    runner = Runner(consumer, s, registry=registry)
    labels = {"consumer": group, "topic": ENRICHED}
    w = run_until(runner, registry, labels, n, TIMEOUT_S, profile=profile)
    write_s = registry.get_sample_value("newswire_store_write_seconds_sum", labels) or 0.0
    rows = registry.get_sample_value(
        "newswire_store_rows_written_total", {**labels, "table": "articles"}
    )
    return Result(
        name,
        w.records,
        w.seconds,
        w.cpu_s,
        write_s=write_s,
        rows=int(rows or 0),
        complete=w.complete,
    )


def count_rows(url: str) -> int:
    from newswire.store import open_reader

    with open_reader(url) as store:
        return store.count("articles")


@contextlib.contextmanager
def store_url_for(backend: str, args: argparse.Namespace, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    else:
        with postgres_schema(args.postgres) as url:
            yield url


def measure_backend(
    backend: str,
    args: argparse.Namespace,
    bootstrap: str,
    workdir: Path,
    n: int,
    profile: cProfile.Profile | None = None,
) -> list[Result]:
    """Inserts, then a replay, into a fresh store of *backend*."""
    try:
        with store_url_for(backend, args, workdir) as url:
            s = make_settings(bootstrap, url)
            tag = uuid.uuid4().hex[:6]
            first = run_store(f"{backend}", s, n, f"store-bench-{tag}", profile)
            replay = None
            if not args.no_replay and profile is None:
                replay = run_store(f"{backend} (replay)", s, n, f"store-bench-replay-{tag}")
            stored = count_rows(url)
    except Exception as exc:  # an unreachable database: report it, go on with the others
        log.error("%s: %s: %s", backend, type(exc).__name__, exc)
        return [Result(backend, 0, 0.0, complete=False, error=f"{type(exc).__name__}: {exc}")]
    for result in (first, replay):
        if result is not None and stored != n:
            result.complete = False
            result.error = f"{stored} rows in the store, expected {n}"
    return [r for r in (first, replay) if r is not None]


# -- output ----------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    import fastavro
    import kafka
    import psycopg

    server = ""
    with (
        contextlib.suppress(Exception),
        psycopg.connect(DEFAULT_POSTGRES, connect_timeout=3) as conn,
    ):
        server = str(conn.info.server_version)
    import sqlite3

    return {
        "python": platform.python_version(),
        "kafka_python": kafka.__version__,
        "fastavro": fastavro.__version__,
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
        "postgres_server": server,
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }


@dataclass
class Round:
    """One round: the baseline and the store runs measured right after it."""

    baseline: Result
    runs: list[Result]

    def ratio(self, run: Result) -> float:
        return run.rate / self.baseline.rate if self.baseline.rate else 0.0

    def cpu_times(self, run: Result) -> float:
        """CPU per record of *run* / the baseline's (issue 10's target: SQLite <= 2.5,
        PostgreSQL <= 3)."""
        base = _cpu_us(self.baseline)
        return _cpu_us(run) / base if base else 0.0


def _cpu_us(r: Result) -> float:
    """CPU µs per record (this process, all threads)."""
    return r.cpu_s / r.records * 1e6 if r.records else 0.0


def _cpu(r: Result) -> str:
    return f"{r.cpu_s / r.seconds:.0%}" if r.seconds else "-"


def print_table(env: dict[str, Any], n: int, avro: float, rounds: list[Round]) -> None:
    print(
        f"Python {env['python']}, kafka-python {env['kafka_python']}, fastavro {env['fastavro']}, "
        f"psycopg {env['psycopg']} (libpq {env['libpq']}), PostgreSQL {env['postgres_server']}, "
        f"SQLite {env['sqlite']}, {env['cpus']} CPUs, load average {env['load']}"
    )
    print(f"{n} enriched articles, {avro:.0f} B Avro each, {PARTITIONS} partitions, embedded Tansu")
    head = (
        f"{'run':<24} {'records':>8} {'seconds':>8} {'rec/s':>8} {'vs base':>7} "
        f"{'db share':>8} {'cpu':>5} {'cpu us/rec':>10} {'x base':>6}  verdict"
    )
    for number, rnd in enumerate(rounds, 1):
        print()
        print(f"round {number}" if len(rounds) > 1 else "")
        print(head)
        print("-" * len(head))
        b = rnd.baseline
        print(
            f"{b.name:<24} {b.records:>8} {b.seconds:>8.3f} {b.rate:>8.0f} {1:>7.2f} "
            f"{'':>8} {_cpu(b):>5} {_cpu_us(b):>10.1f} {1:>6.2f}"
        )
        for r in rnd.runs:
            if r.error and not r.records:
                print(f"{r.name:<24} SKIPPED: {r.error}")
                continue
            share = r.write_s / r.seconds if r.seconds else 0.0
            verdict = "ok" if r.rate >= TARGET_RATE else f"BELOW {TARGET_RATE:.0f}/s"
            if not r.complete:
                verdict = f"INCOMPLETE {r.error}"
            print(
                f"{r.name:<24} {r.records:>8} {r.seconds:>8.3f} {r.rate:>8.0f} "
                f"{rnd.ratio(r):>7.2f} {share:>8.0%} {_cpu(r):>5} {_cpu_us(r):>10.1f} "
                f"{rnd.cpu_times(r):>6.2f}  {verdict}"
            )
    if len(rounds) > 1:
        print()
        print(f"best of {len(rounds)} rounds (ratio against the same round's baseline):")
        names = [r.name for r in rounds[0].runs if r.records]
        best_base = max(rnd.baseline.rate for rnd in rounds)
        print(f"  {'baseline (decode only)':<24} {best_base:>8.0f} rec/s")
        for name in names:
            pairs = [
                (r.rate, rnd.ratio(r), rnd.cpu_times(r))
                for rnd in rounds
                for r in rnd.runs
                if r.name == name
            ]
            rate = max(p[0] for p in pairs)
            ratio = max(p[1] for p in pairs)
            cpu = min(p[2] for p in pairs)
            verdict = "ok" if rate >= TARGET_RATE else f"BELOW {TARGET_RATE:.0f}/s"
            print(
                f"  {name:<24} {rate:>8.0f} rec/s   ratio {ratio:.2f}   "
                f"CPU/record {cpu:.2f}x the baseline's   {verdict}"
            )
    print()
    print("db share: time in the store's write transactions / stage time (first record → last")
    print("commit); the rest is polling, decoding, offsets and metrics (the runner). cpu: this")
    print("process's CPU time / wall time (well below 100%: waiting for the database, or a busy")
    print("machine). cpu us/rec: this process's CPU per record; x base: that / the baseline's.")


def print_profile(profile: cProfile.Profile, backend: str, limit: int) -> None:
    buffer = io.StringIO()
    stats = pstats.Stats(profile, stream=buffer)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    print(f"\ncProfile of the store stage into {backend}, by cumulative time:")
    print(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres", default=os.environ.get("NEWSWIRE_BENCH_POSTGRES", DEFAULT_POSTGRES)
    )
    parser.add_argument("--bootstrap", help="use this broker instead of an embedded Tansu")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay runs")
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds (baseline + stores); best is summarised"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", metavar="BACKEND", help="also profile one backend's run")
    parser.add_argument("--profile-limit", type=int, default=35)
    parser.add_argument(
        "--no-tune-gc",
        action="store_true",
        help="leave the GC as it is (`newswire consume` tunes it once a stage is set up)",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in [*backends, *([args.profile] if args.profile else [])]:
        if b not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {b!r}: sqlite or postgresql")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    env = environment()
    records, avro, build_s = build_records(args.articles)
    if not args.no_tune_gc:
        # As `newswire consume` runs a stage (and bench_peers its jobs); once, before any
        # measurement, so that every round's baseline and stores run the same GC.
        tune_gc()
    rounds: list[Round] = []
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        workdir = Path(tmp)
        with broker_for(args.bootstrap, workdir) as bootstrap:
            s = make_settings(bootstrap, "sqlite:///unused.db")
            ensure_topics(s.kafka)
            produce_s = produce(s, records)
            n = len(records)
            if args.bootstrap:  # an existing topic may hold more: fresh groups read it all
                log.warning("--bootstrap: the topic must hold exactly these records")
            for _ in range(args.repeat):
                rnd = Round(run_baseline(s, n), [])
                for backend in backends:
                    rnd.runs += measure_backend(backend, args, bootstrap, workdir, n)
                rounds.append(rnd)
            if args.profile and profile is not None:
                profiled = measure_backend(args.profile, args, bootstrap, workdir, n, profile)
                profiled[0].name += " (profiled)"
    env["load"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.json:
        doc = {
            "environment": env,
            "articles": args.articles,
            "avro_bytes": avro,
            "build_s": build_s,
            "produce_s": produce_s,
            "target_records_per_s": TARGET_RATE,
            "rounds": [
                {
                    "baseline": {**asdict(rnd.baseline), "records_per_s": rnd.baseline.rate},
                    "runs": [
                        {
                            **asdict(r),
                            "records_per_s": r.rate,
                            "ratio": rnd.ratio(r),
                            "meets_target": r.rate >= TARGET_RATE,
                        }
                        for r in rnd.runs
                    ],
                }
                for rnd in rounds
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        print_table(env, args.articles, avro, rounds)
        if profile is not None:
            print_profile(profile, str(args.profile), args.profile_limit)
    results = [r for rnd in rounds for r in rnd.runs]
    base_ok = all(rnd.baseline.complete for rnd in rounds)
    return 0 if base_ok and all(r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
