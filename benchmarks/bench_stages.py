#!/usr/bin/env python3
"""Throughput of each consumer stage against a raw kafka-python consumer (DESIGN §7).

For each stage (dedup, enrich, store) this

1. starts a fresh embedded Tansu broker (unless ``--bootstrap``), creates the
   topics (6 partitions) and pre-produces N seed-shaped articles (~2.9 KB Avro:
   the seed document of tests/fixtures with title, URLs and excerpt varied
   deterministically) to the stage's input topic: ``articles.raw`` (every 10th
   a URL variant of an earlier article, so dedup has duplicates to find) for
   dedup, ``articles.unique`` for enrich, ``articles.enriched`` for store;
2. measures the *baseline*: a raw kafka-python ``KafkaConsumer`` built by
   ``newswire.kafka.make_consumer`` (same config: raw bytes, no auto commit) in a
   fresh group that polls the same input and only decodes each value with
   ``SingleObjectSerde.decode``;
3. measures the stage: ``newswire.runner.Runner`` with the stage's consumer, in
   this process and thread, until ``newswire_consumer_records_in_total``
   reaches N.

Both are timed from the first record consumed (the group join and the first
fetch are excluded) to the last record decoded (baseline) or the last commit
(stage). The ratio stage/baseline is the number to watch (target >= 0.5); each
stage is measured ``--repeat`` times (a fresh broker each) and the median
ratio is reported, with the range, and the same ratio in CPU time per record
(steadier when other work shares the machine).

Then (``--state-sizes``, '' to skip) it times dedup's ``handle_batch`` per
article without Kafka, its default SQLite state first filled by the consumer
itself with 10k, 100k and 1M distinct articles (a size whose pre-fill would
not fit the 75 s budget is skipped), and (``--profile STAGE``) runs one stage
again under cProfile, from the first record to the last commit, main thread
only (kafka-python's sender thread is not in it).

    .venv/bin/python benchmarks/bench_stages.py [--articles 5000] [--stages dedup,enrich,store]
        [--repeat 3] [--bootstrap HOST:PORT] [--json] [--state-sizes 10000,100000,1000000]
        [--profile STAGE [--profile-limit 30]]

With ``--bootstrap`` the broker is not started: each measurement uses fresh
consumer groups whose offsets start at the current end of the input topic, but
the records are produced to the pipeline's real topic names (``articles.*``) —
use a scratch broker.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import importlib
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import kafka
import yaml
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from procstat import cpu_of  # noqa: E402  (benchmarks/ is on sys.path)
from stagerun import counter_sums, run_until  # noqa: E402

from newswire import Consumer, Context, Event  # noqa: E402
from newswire.broker import EmbeddedBroker  # noqa: E402
from newswire.kafka import TopicPartition, open_clients  # noqa: E402
from newswire.model import Article  # noqa: E402
from newswire.runner import Runner  # noqa: E402
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, SingleObjectSerde  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.topics import ENRICHED, RAW, UNIQUE, ensure_topics  # noqa: E402

SEED = REPO / "tests" / "fixtures" / "articles" / "000_e6160929f81e6bcd.txt"
PARTITIONS = 6
TARGET_RATIO = 0.5
STAGE_TIMEOUT_S = 120.0

# stage -> (its consumer class, "module:Class", and its input topic). Imported when used, so
# that a stage whose code is broken is reported as such and the others are still measured.
STAGES: dict[str, tuple[str, str]] = {
    "dedup": ("consumers.dedup:DedupConsumer", RAW),
    "enrich": ("consumers.enrich:EnrichConsumer", UNIQUE),
    "store": ("consumers.store:StoreConsumer", ENRICHED),
}


def consumer_class(stage: str) -> type[Consumer]:
    """The consumer class of *stage*."""
    module, name = STAGES[stage][0].split(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, Consumer)
    return cls


log = logging.getLogger("bench")


# -- data ------------------------------------------------------------------------------------


def load_seed() -> dict[str, Any]:
    """The seed article's front-matter fields (and its empty body)."""
    text = SEED.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    fields = yaml.load(front, Loader=loader)
    fields["body"] = body.strip("\n")
    return fields


# URL variants that canonicalise to the original (DESIGN §2): dedup's "url" duplicates.
_VARIANTS: tuple[Callable[[str], str], ...] = (
    lambda u: u + "?utm_source=newsletter&utm_medium=email&utm_campaign=bench",
    lambda u: u + "/#comments",
    lambda u: u.replace("https://www.", "http://"),
    lambda u: u + "?amp",
    lambda u: u + "?fbclid=IwAR0bench",
)


def article_fields(seed: dict[str, Any], i: int) -> dict[str, Any]:
    """The seed's fields with title, URLs and excerpt varied deterministically by *i*."""
    rng = random.Random(i)
    words = seed["excerpt"].split()
    rng.shuffle(words)
    title_words = seed["title"].split()
    rng.shuffle(title_words)
    fields = dict(seed)
    fields["title"] = f"{' '.join(title_words)} #{i}"
    fields["excerpt"] = " ".join(words)
    url = re.sub(
        r"/news/(\d+)/([^/]+)$",
        lambda m: f"/news/{int(m.group(1)) + i}/{m.group(2)}-{i}",
        seed["originalUrl"],
    )
    fields["originalUrl"] = fields["webUrl"] = url
    fields["publishedDateTime"] = seed["publishedDateTime"] + dt.timedelta(seconds=i)
    return fields


@dataclass
class Dataset:
    """The pre-encoded inputs: (key, value) per topic, and what dedup should find."""

    raw: list[tuple[bytes, bytes]]
    unique: list[tuple[bytes, bytes]]
    enriched: list[tuple[bytes, bytes]]
    duplicates: int
    avro_bytes: float
    enriched_avro_bytes: float
    build_s: float

    def for_topic(self, topic: str) -> list[tuple[bytes, bytes]]:
        """The records to produce to *topic*."""
        return {RAW: self.raw, UNIQUE: self.unique, ENRICHED: self.enriched}[topic]


def build_dataset(
    n: int, serde: SingleObjectSerde, stages: list[str], dup_every: int = 10
) -> Dataset:
    """N articles; for articles.raw every *dup_every*-th is a URL variant of an earlier one."""
    started = time.perf_counter()
    seed = load_seed()
    now = dt.datetime.now(dt.UTC)

    def record_of(fields: dict[str, Any]) -> dict[str, Any]:
        article = Article.model_validate(fields)
        record = article.model_dump()
        record["ingested_at"] = now
        record["source"] = "bench"
        return record

    records = [record_of(article_fields(seed, i)) for i in range(n)]
    unique = [(r["id"].encode(), serde.encode(ARTICLE, r)) for r in records]

    raw: list[tuple[bytes, bytes]] = []
    duplicates = 0
    if "dedup" in stages:
        for i in range(n):
            if i % dup_every == dup_every - 1:
                original = i - 1 - (i // dup_every) % (dup_every - 1)
                fields = article_fields(seed, original)
                variant = _VARIANTS[(i // dup_every) % len(_VARIANTS)](fields["originalUrl"])
                fields["originalUrl"] = fields["webUrl"] = variant
                record = record_of(fields)
                if record["id"] != records[original]["id"]:
                    raise SystemExit(
                        f"URL variant {variant} does not canonicalise to the "
                        f"original; fix the bench's _VARIANTS"
                    )
                raw.append((record["id"].encode(), serde.encode(ARTICLE, record)))
                duplicates += 1
            else:
                raw.append(unique[i])

    enriched: list[tuple[bytes, bytes]] = []
    if "store" in stages:
        from consumers.enrich import Enricher

        enricher = Enricher()
        enriched = [
            (r["id"].encode(), serde.encode(ENRICHED_ARTICLE, enricher.enrich(r))) for r in records
        ]
    return Dataset(
        raw=raw,
        unique=unique,
        enriched=enriched,
        duplicates=duplicates,
        avro_bytes=sum(len(v) for _, v in unique) / max(1, n),
        enriched_avro_bytes=sum(len(v) for _, v in enriched) / max(1, len(enriched)),
        build_s=time.perf_counter() - started,
    )


# -- broker, settings, inputs ----------------------------------------------------------------


def make_settings(bootstrap: str, workdir: Path) -> Settings:
    """Settings of DESIGN §6 for the embedded mode, with stores in *workdir*."""
    s = Settings()
    s.kafka.bootstrap = bootstrap
    s.kafka.partitions = PARTITIONS
    s.kafka.session_timeout_ms = 2000
    s.kafka.heartbeat_interval_ms = 500
    s.store.url = f"sqlite:///{workdir / 'store.db'}"
    s.dedup.state_url = f"sqlite:///{workdir / 'dedup.sqlite'}"
    s.metrics.enabled = False
    s.producer.rejects_path = workdir / "rejects.jsonl"
    return s


@contextlib.contextmanager
def broker_for(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, int | None]]:
    """(bootstrap, broker pid or None): a fresh embedded broker, or the one given."""
    if args.bootstrap:
        yield args.bootstrap, None
        return
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    try:
        broker.start()
        assert broker.process is not None
        yield broker.bootstrap, broker.process.pid
    finally:
        broker.stop()  # by PID: SIGTERM, then SIGKILL


def produce(s: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    """Send *records* keyed (murmur2 partitioning, like the publisher); return seconds."""
    started = time.perf_counter()
    producer = open_clients(s.kafka, s.producer).producer("bench-load")
    try:
        for k, v in records:
            producer.produce(topic, v, key=k)
        failed = producer.flush()
        if failed:
            raise SystemExit(
                f"pre-producing {topic}: {len(failed)} records failed: {failed[0].error}"
            )
    finally:
        producer.close(timeout_s=10)
    return time.perf_counter() - started


def end_offsets(s: Settings, topic: str) -> dict[TopicPartition, int]:
    """The true end of each partition of *topic* (reads past Tansu's short ListOffsets)."""
    probe = open_clients(s.kafka).consumer(None, "bench-probe")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(probe.partitions_for(topic))]
        probe.assign(tps)
        # Read to the end: Tansu's ListOffsets can stop short of it (DESIGN §6).
        while probe.poll(1.0, 100_000):
            pass
        return {tp: probe.position(tp) or 0 for tp in tps}
    finally:
        probe.close()


def start_group_at(s: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit *offsets* for a fresh *group*, so that it starts there."""
    if not any(offsets.values()):
        return  # empty topic: auto_offset_reset=earliest starts at 0 anyway
    c = open_clients(s.kafka).consumer(group, "bench-seek")
    try:
        c.commit(offsets)
    finally:
        c.close()


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    """One timed run."""

    name: str
    records: int
    seconds: float
    cpu_s: float = 0.0
    broker_cpu_s: float = 0.0
    main_cpu_s: float = 0.0
    out: dict[str, float] = field(default_factory=dict)
    complete: bool = True

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds else 0.0


def run_baseline(s: Settings, topic: str, n: int, group: str, broker_pid: int | None) -> Result:
    """A raw consumer (the runner's client and config) that only decodes, until it has seen *n*."""
    serde = SingleObjectSerde()
    decode = serde.decode
    consumer = open_clients(s.kafka).consumer(group, "bench-baseline")
    consumer.subscribe([topic], on_assign=lambda _: None, on_revoke=lambda _: None)
    seen = 0
    t0: float | None = None
    cpu0 = bcpu0 = main0 = 0.0
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    try:
        while seen < n and time.monotonic() < deadline:
            polled = consumer.poll(s.runner.poll_timeout_ms / 1000, s.kafka.max_poll_records)
            if not polled:
                continue
            if t0 is None:
                t0, cpu0, bcpu0 = time.perf_counter(), time.process_time(), cpu_of(broker_pid)
                main0 = time.thread_time()
            for records in polled.values():
                for record in records:
                    decode(record.value)
                seen += sum(1 for _ in records)
        t1, cpu1, bcpu1 = time.perf_counter(), time.process_time(), cpu_of(broker_pid)
        main1 = time.thread_time()
    finally:
        consumer.close()
    return Result(
        "baseline",
        seen,
        t1 - (t0 or t1),
        cpu1 - cpu0,
        bcpu1 - bcpu0,
        main1 - main0,
        complete=seen >= n,
    )


def run_stage(
    cls: type[Consumer],
    topic: str,
    s: Settings,
    n: int,
    broker_pid: int | None,
    profile: cProfile.Profile | None = None,
) -> Result:
    """Run a Runner of *cls* in this thread until it has committed *n* records of *topic*."""
    consumer = cls()
    registry = CollectorRegistry()
    runner = Runner(consumer, s, registry=registry)
    labels = {"consumer": consumer.name, "topic": topic}
    w = run_until(
        runner, registry, labels, n, STAGE_TIMEOUT_S, broker_pid=broker_pid, profile=profile
    )
    out = counter_sums(
        registry,
        (
            "newswire_consumer_records_out_total",
            "newswire_consumer_dlq_total",
            "newswire_dedup_duplicates_total",
            "newswire_store_rows_written_total",
        ),
    )
    return Result(
        consumer.name,
        w.records,
        w.seconds,
        w.cpu_s,
        w.broker_cpu_s,
        w.main_cpu_s,
        out,
        complete=w.complete,
    )


@dataclass
class StageReport:
    """A stage and the baseline measured on the same input in the same run."""

    stage: str
    topic: str
    produce_s: float
    baseline: Result
    result: Result
    runs: list[StageReport] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Stage throughput / baseline throughput."""
        return self.result.rate / self.baseline.rate if self.baseline.rate else 0.0

    @property
    def cpu_ratio(self) -> float:
        """Baseline CPU per record / stage CPU per record (this process; less sensitive than
        the wall-clock ratio to other load on the machine)."""
        res, base = self.result, self.baseline
        if not (res.cpu_s and base.records and res.records):
            return 0.0
        return (base.cpu_s / base.records) / (res.cpu_s / res.records)

    @property
    def cpu_us(self) -> float:
        """The stage's CPU µs per record (this process, all threads)."""
        return self.result.cpu_s / self.result.records * 1e6 if self.result.records else 0.0

    @property
    def baseline_cpu_us(self) -> float:
        """The baseline's CPU µs per record."""
        base = self.baseline
        return base.cpu_s / base.records * 1e6 if base.records else 0.0

    @property
    def cpu_times(self) -> float:
        """Stage CPU per record / baseline CPU per record (issue 10: "x decode-only")."""
        return self.cpu_us / self.baseline_cpu_us if self.baseline_cpu_us else 0.0

    @property
    def ratios(self) -> list[float]:
        """The ratio of every repetition (this report's own when not repeated)."""
        return [r.ratio for r in self.runs] or [self.ratio]


def median_run(runs: list[StageReport]) -> StageReport:
    """The repetition with the median ratio, carrying all of them."""
    chosen = sorted(runs, key=lambda r: r.ratio)[(len(runs) - 1) // 2]
    return StageReport(
        chosen.stage,
        chosen.topic,
        chosen.produce_s,
        chosen.baseline,
        chosen.result,
        runs=list(runs),
    )


def measure(
    stage: str, args: argparse.Namespace, data: Dataset, profile: cProfile.Profile | None = None
) -> StageReport:
    """One stage on a fresh broker (or fresh groups on --bootstrap): input, baseline, stage."""
    _, topic = STAGES[stage]
    records = data.for_topic(topic)
    with tempfile.TemporaryDirectory(prefix=f"bench-{stage}-") as tmp:
        workdir = Path(tmp)
        with broker_for(args, workdir) as (bootstrap, pid):
            s = make_settings(bootstrap, workdir)
            ensure_topics(s.kafka)
            start = end_offsets(s, topic) if args.bootstrap else {}
            produce_s = produce(s, topic, records)
            base_group = f"bench.baseline.{uuid.uuid4().hex[:8]}"
            start_group_at(s, base_group, start)
            baseline = run_baseline(s, topic, len(records), base_group, pid)
            cls = consumer_class(stage)
            if args.bootstrap:  # an existing broker: a fresh group, starting at the new input
                name = f"{cls.name}-bench-{uuid.uuid4().hex[:8]}"
                cls = type(cls.__name__, (cls,), {"name": name})
                start_group_at(s, cls().group, start)
            result = run_stage(cls, topic, s, len(records), pid, profile=profile)
    return StageReport(stage, topic, produce_s, baseline, result)


# -- dedup state size ------------------------------------------------------------------------


def _prefill_events(template: dict[str, Any], start: int, count: int) -> list[Event]:
    """*count* distinct synthetic articles (ids, URLs and texts of their own) to remember."""
    words = f"{template['title']} {template['excerpt']}".split()
    events = []
    for i in range(start, start + count):
        rng = random.Random(i)
        rng.shuffle(words)
        url = f"https://prefill-{i % 997}.example.com/news/{i}/story"
        record = dict(template)
        record.update(
            id=f"{(i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF:016x}",
            canonical_url=url,
            original_url=url,
            web_url=url,
            title=f"{i} " + " ".join(words[:12]),
            excerpt=" ".join(words[12:]),
        )
        events.append(
            Event(
                topic="bench.prefill",
                partition=i % PARTITIONS,
                offset=i,
                key=None,
                value=b"",
                schema=ARTICLE,
                record=record,
            )
        )
    return events


def dedup_state_cost(
    data: Dataset, sizes: list[int], events_n: int, budget_s: float = 75.0
) -> list[dict[str, Any]]:
    """Per-article cost of DedupConsumer.handle_batch (no Kafka; emit is a no-op) with its
    default (SQLite) state first filled with *sizes* articles, judged by the consumer itself."""
    serde = SingleObjectSerde()
    events = []
    for offset, (key, value) in enumerate(data.raw[:events_n]):
        schema, record = serde.decode(value)
        events.append(
            Event(
                topic=RAW,
                partition=offset % PARTITIONS,
                offset=offset,
                key=key,
                value=value,
                schema=schema,
                record=record,
            )
        )
    template = events[0].record
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    fill_rate = 0.0  # articles/s of the pre-fill, once known
    for size in sorted(sizes):
        left = budget_s - (time.monotonic() - started)
        if fill_rate and size / fill_rate > left:
            results.append(
                {
                    "prefilled": size,
                    "skipped": f"pre-fill would take ~{size / fill_rate:.0f}s, "
                    f"{left:.0f}s of the budget left",
                }
            )
            continue
        with tempfile.TemporaryDirectory(prefix="bench-dedup-state-") as tmp:
            s = Settings()
            s.dedup.state_url = f"sqlite:///{Path(tmp) / 'dedup.sqlite'}"
            registry = CollectorRegistry()
            consumer = consumer_class("dedup")()
            consumer.bind(
                Context(settings=s, registry=registry, emit=lambda *a, **k: None, log=log)
            )
            consumer.setup()
            try:
                t_fill = time.perf_counter()
                for lo in range(0, size, 1000):
                    consumer.handle_batch(_prefill_events(template, lo, min(1000, size - lo)))
                    elapsed_fill = time.perf_counter() - t_fill
                    if lo == 9000 or size <= 10_000:
                        fill_rate = (lo + 1000) / elapsed_fill
                    if time.monotonic() - started > budget_s:
                        raise TimeoutError(f"pre-fill reached {lo + 1000} of {size} articles")
                fill_s = time.perf_counter() - t_fill
                entries = registry.get_sample_value(
                    "newswire_dedup_state_entries", {"consumer": consumer.name, "topic": RAW}
                )
                t0 = time.perf_counter()
                for lo in range(0, len(events), 1000):
                    consumer.handle_batch(events[lo : lo + 1000])
                elapsed = time.perf_counter() - t0
            except TimeoutError as exc:
                results.append({"prefilled": size, "skipped": f"time budget: {exc}"})
                continue
            finally:
                consumer.close()
        results.append(
            {
                "prefilled": size,
                "state_entries": entries,
                "events": len(events),
                "us_per_article": elapsed / len(events) * 1e6,
                "articles_per_s": len(events) / elapsed,
                "fill_s": fill_s,
            }
        )
    return results


# -- output ----------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions and the fast-path extensions that matter for throughput."""
    try:
        import crc32c  # noqa: F401

        has_crc32c = True
    except ImportError:
        has_crc32c = False
    import fastavro

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kafka_python": kafka.__version__,
        "fastavro": fastavro.__version__,
        "crc32c_importable": has_crc32c,
        "cpus": os.cpu_count(),
    }


def print_table(
    env: dict[str, Any],
    data: Dataset,
    args: argparse.Namespace,
    reports: list[StageReport],
    state: list[dict[str, Any]],
) -> None:
    print(
        f"Python {env['python']} ({env['implementation']}), kafka-python {env['kafka_python']}, "
        f"fastavro {env['fastavro']}, crc32c importable: {env['crc32c_importable']}, "
        f"{env['cpus']} CPUs"
    )
    broker = args.bootstrap or "embedded Tansu (fresh per stage)"
    enriched = f" (enriched {data.enriched_avro_bytes:.0f} B)" if data.enriched else ""
    print(
        f"{args.articles} articles, {data.avro_bytes:.0f} B Avro each{enriched}, "
        f"{data.duplicates} URL-variant duplicates on {RAW}; broker: {broker}; "
        f"inputs built in {data.build_s:.1f}s"
    )
    print()
    head = (
        f"{'stage':<8} {'input':<18} {'records':>7} {'seconds':>8} {'rec/s':>8} "
        f"{'base rec/s':>10} {'ratio':>6} {'range':>9} {'cpu-ratio':>9}  {'main%':>5} {'thr%':>4} "
        f"{'brk%':>4}  "
        "verdict"
    )
    print(head)
    print("-" * len(head))
    for r in reports:
        res, base = r.result, r.baseline
        verdict = "ok" if r.ratio >= TARGET_RATIO else f"BELOW {TARGET_RATIO}"
        if any(not (x.result.complete and x.baseline.complete) for x in r.runs or [r]):
            verdict = "INCOMPLETE (timeout)"
        spread = f"{min(r.ratios):.2f}-{max(r.ratios):.2f}" if len(r.ratios) > 1 else ""
        main, other, brk = (
            100 * x / res.seconds if res.seconds else 0.0
            for x in (res.main_cpu_s, res.cpu_s - res.main_cpu_s, res.broker_cpu_s)
        )
        print(
            f"{r.stage:<8} {r.topic:<18} {res.records:>7} {res.seconds:>8.3f} "
            f"{res.rate:>8.0f} {base.rate:>10.0f} {r.ratio:>6.2f} {spread:>9} {r.cpu_ratio:>9.2f}  "
            f"{main:>5.0f} {other:>4.0f} {brk:>4.0f}  {verdict}"
        )
    print(
        f"ratio: stage rec/s / baseline rec/s, both timed from the first record consumed "
        f"(median of {len(reports[0].ratios) if reports else 0}; target >= {TARGET_RATIO}); "
        "cpu-ratio: the same with this process's CPU per record;\n"
        "main%/thr%/brk%: CPU of the runner's thread / kafka-python's other threads / the "
        "broker, in % of the stage's wall time"
    )
    print()
    for r in reports:
        base = r.baseline
        cpu = 100 * base.cpu_s / base.seconds if base.seconds else 0
        main = 100 * base.main_cpu_s / base.seconds if base.seconds else 0
        outs = ", ".join(f"{k}={v:.0f}" for k, v in sorted(r.result.out.items()))
        print(
            f"  {r.stage}: baseline {base.records} in {base.seconds:.3f}s "
            f"(cpu {cpu:.0f}%, main thread {main:.0f}%); "
            f"pre-produce {r.produce_s:.2f}s; {outs}"
        )
        print(
            f"  {r.stage}: CPU per record {r.cpu_us:.1f} µs vs the baseline's "
            f"{r.baseline_cpu_us:.1f} µs: {r.cpu_times:.2f}x (runs: "
            + ", ".join(f"{x.cpu_times:.2f}x" for x in r.runs or [r])
            + ")"
        )
    if state:
        print()
        print("dedup handle_batch per article without Kafka, state pre-filled by the consumer:")
        for row in state:
            if "skipped" in row:
                print(f"  {row['prefilled']:>9} articles: skipped ({row['skipped']})")
            elif "error" in row:
                print(f"  {row['prefilled']:>9} articles: ERROR {row['error']}")
            else:
                print(
                    f"  {row['prefilled']:>9} articles ({row['state_entries']:.0f} entries): "
                    f"{row['us_per_article']:7.1f} µs/article ({row['articles_per_s']:.0f}/s; "
                    f"pre-fill {row['fill_s']:.1f}s)"
                )


def print_profile(profile: cProfile.Profile, stage: str, limit: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    print(f"\ncProfile of {stage} (main thread, first record → last commit), by tottime:")
    stats.sort_stats("tottime").print_stats(limit)
    print(out.getvalue())
    out.seek(0)
    out.truncate()
    print(f"cProfile of {stage}, by cumulative time:")
    stats.sort_stats("cumulative").print_stats(limit)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000, help="records per stage")
    parser.add_argument("--bootstrap", help="use this broker (host:port) instead of Tansu")
    parser.add_argument(
        "--stages", default="dedup,enrich,store", help="comma-separated: dedup, enrich, store"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--state-sizes",
        default="10000,100000,1000000",
        help="dedup state pre-fill sizes for the no-Kafka cost ('' skips)",
    )
    parser.add_argument(
        "--profile",
        metavar="STAGE",
        help="also run STAGE under cProfile and print the top functions",
    )
    parser.add_argument("--profile-limit", type=int, default=30)
    parser.add_argument(
        "--tune-gc",
        action="store_true",
        help="tune the GC as `newswire consume` does (newswire.process.tune_gc), once the "
        "records are built: for the baseline and the stages alike",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements per stage (fresh broker each); the median ratio is reported",
    )
    args = parser.parse_args(argv)

    stages = [x.strip() for x in args.stages.split(",") if x.strip()]
    unknown = [x for x in stages + ([args.profile] if args.profile else []) if x not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {sorted(STAGES)}")
    sizes = [int(x) for x in args.state_sizes.split(",") if x.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    env = environment()
    serde = SingleObjectSerde()
    need = stages + ([args.profile] if args.profile else [])
    if sizes:
        need.append("dedup")
    data = build_dataset(args.articles, serde, need)
    if args.tune_gc:
        from newswire.process import tune_gc

        tune_gc()
    reports: list[StageReport] = []
    errors: dict[str, str] = {}
    for stage in stages:
        try:
            reports.append(
                median_run([measure(stage, args, data) for _ in range(max(1, args.repeat))])
            )
        except Exception as exc:  # a broken stage must not hide the others' numbers
            log.exception("stage %s failed", stage)
            errors[stage] = f"{type(exc).__name__}: {exc}"
    state: list[dict[str, Any]] = []
    if sizes:
        try:
            state = dedup_state_cost(data, sizes, min(args.articles, 5000))
        except Exception as exc:
            log.exception("dedup state cost failed")
            state = [{"prefilled": sizes[0], "error": f"{type(exc).__name__}: {exc}"}]
    profile_report = None
    profile = cProfile.Profile() if args.profile else None
    if args.profile and profile is not None:
        profile_report = measure(args.profile, args, data, profile=profile)

    if args.json:
        doc = {
            "environment": env,
            "articles": args.articles,
            "avro_bytes": data.avro_bytes,
            "enriched_avro_bytes": data.enriched_avro_bytes,
            "duplicates": data.duplicates,
            "target_ratio": TARGET_RATIO,
            "stages": [
                {
                    "stage": r.stage,
                    "topic": r.topic,
                    "records": r.result.records,
                    "seconds": r.result.seconds,
                    "records_per_s": r.result.rate,
                    "cpu_s": r.result.cpu_s,
                    "main_thread_cpu_s": r.result.main_cpu_s,
                    "cpu_ratio": r.cpu_ratio,
                    "cpu_us_per_record": r.cpu_us,
                    "baseline_cpu_us_per_record": r.baseline_cpu_us,
                    "cpu_times_baseline": r.cpu_times,
                    "broker_cpu_s": r.result.broker_cpu_s,
                    "complete": r.result.complete,
                    "out": r.result.out,
                    "baseline": {**asdict(r.baseline), "records_per_s": r.baseline.rate},
                    "ratio": r.ratio,
                    "ratios": r.ratios,
                    "meets_target": r.ratio >= TARGET_RATIO,
                }
                for r in reports
            ],
            "dedup_state": state,
            "errors": errors,
        }
        if profile_report is not None:
            doc["profiled"] = {
                "stage": profile_report.stage,
                "records_per_s": profile_report.result.rate,
            }
        print(json.dumps(doc, indent=2))
    else:
        print_table(env, data, args, reports, state)
        for stage, error in errors.items():
            print(f"{stage}: ERROR {error}")
        if profile is not None and profile_report is not None:
            print(
                f"\n(profiled run of {profile_report.stage}: "
                f"{profile_report.result.rate:.0f} rec/s under cProfile)"
            )
            print_profile(profile, profile_report.stage, args.profile_limit)
    incomplete = [
        r.stage
        for report in reports
        for r in report.runs or [report]
        if not (r.result.complete and r.baseline.complete)
    ]
    return 1 if incomplete or errors else 0


if __name__ == "__main__":
    sys.exit(main())
