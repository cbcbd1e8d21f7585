#!/usr/bin/env python3
"""Producer throughput: seed documents and JSON lines vs sending pre-encoded bytes (DESIGN §7).

The input is generated in a temporary directory from the good fixtures in
``tests/fixtures/articles`` (nothing from ``../shared``): N seed-format
documents (each fixture's front matter with a distinct URL and title, written
back with PyYAML) and the same N articles as one JSON-lines file.

For every measurement a fresh embedded Tansu broker is started (unless
``--bootstrap``) and the topics are created (6 partitions), then

- ``baseline``: the publisher's producer (``kafka.client``, its configuration) sends the
  same articles already validated and Avro-encoded — the same keys, values and
  ``newswire.ingested_at`` header — and flushes: the ceiling for any producer
  in this process;
- ``documents wN``: :class:`~newswire.publisher.Publisher` with N worker
  processes over the directory (read, parse YAML, validate, encode, send,
  flush);
- ``jsonl wN``: the same over the JSON-lines file.

Each is timed from the call to the flush. The worker processes are started
before (``Publisher.start_workers``, reported as ``pool start``: a fork
server importing the kernel and the sources, once per process), as a
long-running producer has them.

Two figures per run, each also as a ratio to the baseline of the same run (the
machine is shared and noisy; CPU time is steadier than wall time):

- the wall rate (records/s) and ``rate x`` = rate / baseline rate;
- CPU µs per record: user+system time of the producing process plus its worker
  processes (read from /proc, so pickling and hand-over count too), and
  ``cpu x`` = that / the baseline's CPU µs per record (sending only).

Targets (issue 10): seed documents ≥ 4,000 docs/s with 2 workers; JSON lines
≥ 20,000 lines/s (the best worker count).

    .venv/bin/python benchmarks/bench_producer.py [--articles 20000] [--workers 1,2]
        [--repeat 3] [--json] [--profile documents|jsonl] [--bootstrap HOST:PORT]
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
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from procstat import cpu_of  # noqa: E402  (benchmarks/ is on sys.path)

from newswire.broker import EmbeddedBroker  # noqa: E402
from newswire.kafka import ProducerClient, open_clients  # noqa: E402
from newswire.publisher import INGESTED_AT_HEADER, Encoder, Publisher  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.source import Document  # noqa: E402
from newswire.topics import RAW, ensure_topics  # noqa: E402
from producers.documents import DocumentSource, parse_document  # noqa: E402
from producers.jsonl import JsonLinesSource  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "articles"
PARTITIONS = 6
#: --client: the Kafka client the publisher and the baseline send with (default: the
#: settings' ``kafka.client``).
CLIENT = ""
TARGET_DOCS_2 = 4000.0
TARGET_JSONL = 20000.0

log = logging.getLogger("bench")


# -- data ------------------------------------------------------------------------------------


def fixture_articles() -> list[tuple[dict[str, Any], str]]:
    """(front matter, body) of every good fixture (not bad_*, not URL variants)."""
    found = []
    for path in sorted(FIXTURES.glob("0*.txt")):
        if "_variant_" in path.name:
            continue
        doc = parse_document(str(path), path.read_bytes(), max_bytes=10**7)
        assert isinstance(doc, Document), doc
        fields = dict(doc.fields)
        body = fields.pop("body", "")
        found.append((fields, body))
    return found


def varied(fields: dict[str, Any], i: int) -> dict[str, Any]:
    """The fixture's fields with a distinct URL, title and date."""
    out = dict(fields)
    url = str(fields["originalUrl"]).split("?")[0].rstrip("/")
    out["originalUrl"] = out["webUrl"] = f"{url}-{i}"
    out["title"] = f"{fields['title']} ({i})"
    published = fields.get("publishedDateTime")
    if isinstance(published, str):
        published = dt.datetime.fromisoformat(published.replace("Z", "+00:00"))
    if isinstance(published, dt.datetime):
        out["publishedDateTime"] = published + dt.timedelta(seconds=i)
    return out


@dataclass
class Inputs:
    """The generated inputs and the same articles pre-encoded."""

    directory: Path
    jsonl: Path
    encoded: list[tuple[bytes, bytes, bytes]]
    avro_bytes: float
    document_bytes: float
    build_s: float


def build_inputs(n: int, workdir: Path) -> Inputs:
    """N seed documents in a directory tree, the same as JSON lines, and their encoded bytes."""
    started = time.perf_counter()
    templates = fixture_articles()
    directory = workdir / "documents"
    jsonl = workdir / "articles.jsonl"
    encoder = Encoder()
    encoded: list[tuple[bytes, bytes, bytes]] = []
    doc_bytes = 0
    with jsonl.open("w", encoding="utf-8") as lines:
        for i in range(n):
            fields, body = templates[i % len(templates)]
            front = varied(fields, i)
            sub = directory / f"{i // 1000:03d}"
            if i % 1000 == 0:
                sub.mkdir(parents=True, exist_ok=True)
            text = (
                "---\n"
                + yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10**6)
                + "---\n\n"
                + body
                + "\n"
            )
            data = text.encode("utf-8")
            doc_bytes += len(data)
            (sub / f"{i:06d}.txt").write_bytes(data)
            record = dict(front, body=body)
            if isinstance(record.get("publishedDateTime"), dt.datetime):
                record["publishedDateTime"] = record["publishedDateTime"].isoformat()
            for related in record.get("related") or ():
                if isinstance(related.get("publishedDateTime"), dt.datetime):
                    related["publishedDateTime"] = related["publishedDateTime"].isoformat()
            lines.write(json.dumps(record, ensure_ascii=False) + "\n")
            result = encoder.document(Document("bench", dict(front, body=body)))
            assert not isinstance(result, Exception) and isinstance(result, tuple), result
            (key, value, ingested_at, _where), _extras = result
            encoded.append((key, value, ingested_at))
    return Inputs(
        directory,
        jsonl,
        encoded,
        avro_bytes=sum(len(v) for _, v, _ in encoded) / max(1, n),
        document_bytes=doc_bytes / max(1, n),
        build_s=time.perf_counter() - started,
    )


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    """One timed run."""

    name: str
    records: int
    seconds: float
    cpu_s: float
    broker_cpu_s: float
    rejected: int = 0
    pool_start_s: float = 0.0
    worker_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU µs per record: the producing process and its workers."""
        return (self.cpu_s + self.worker_cpu_s) / self.records * 1e6 if self.records else 0.0


def make_settings(bootstrap: str, workdir: Path) -> Settings:
    """Producer settings as the CLI has them, pointed at the bench broker."""
    s = Settings()
    s.kafka.bootstrap = bootstrap
    s.kafka.partitions = PARTITIONS
    s.metrics.enabled = False
    s.producer.rejects_path = workdir / "rejects.jsonl"
    if CLIENT:
        s.kafka.client = CLIENT
    return s


@contextlib.contextmanager
def broker_for(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[Settings, int | None]]:
    """Settings for a fresh embedded broker (or the one given) and its pid."""
    if args.bootstrap:
        s = make_settings(args.bootstrap, workdir)
        ensure_topics(s.kafka)
        yield s, None
        return
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    try:
        broker.start()
        assert broker.process is not None
        s = make_settings(broker.bootstrap, workdir)
        ensure_topics(s.kafka)
        yield s, broker.process.pid
    finally:
        broker.stop()


def warm_up(producer: ProducerClient) -> None:
    """One acknowledged record: connections and metadata are ready before the clock starts."""
    producer.produce(RAW, b"x", key=b"warm-up")
    failed = producer.flush(30)
    if failed:
        raise SystemExit(f"warm-up record not acknowledged: {failed[0].error}")


def run_baseline(s: Settings, inputs: Inputs, broker_pid: int | None) -> Result:
    """Send the pre-encoded records with the publisher's producer configuration."""
    producer = open_clients(s.kafka, s.producer).producer("bench-baseline")
    try:
        warm_up(producer)
        cpu0, bcpu0, t0 = time.process_time(), cpu_of(broker_pid), time.perf_counter()
        for k, v, h in inputs.encoded:
            producer.produce(RAW, v, key=k, headers=[(INGESTED_AT_HEADER, h)])
        failed = len(producer.flush())
        t1, cpu1, bcpu1 = time.perf_counter(), time.process_time(), cpu_of(broker_pid)
        if failed:
            raise SystemExit(f"baseline: {failed} records not acknowledged")
    finally:
        producer.close(timeout_s=10)
    return Result("baseline", len(inputs.encoded), t1 - t0, cpu1 - cpu0, bcpu1 - bcpu0)


def run_publisher(
    name: str,
    source: Any,
    s: Settings,
    workers: int,
    broker_pid: int | None,
    profile: cProfile.Profile | None = None,
) -> Result:
    """Publisher.publish over *source* with *workers* processes, to the flush."""
    publisher = Publisher(s, workers=workers)
    try:
        pool_start_s = publisher.start_workers()
        warm_up(publisher.producer)
        pool = publisher._pool  # the benchmark reads the workers' CPU from /proc
        worker_pids = list(pool._processes) if pool is not None else []
        wcpu0 = sum(cpu_of(pid) for pid in worker_pids)
        cpu0, bcpu0, t0 = time.process_time(), cpu_of(broker_pid), time.perf_counter()
        if profile is not None:
            profile.enable()
        summary = publisher.publish([source])
        if profile is not None:
            profile.disable()
        t1, cpu1, bcpu1 = time.perf_counter(), time.process_time(), cpu_of(broker_pid)
        worker_cpu_s = sum(cpu_of(pid) for pid in worker_pids) - wcpu0
    finally:
        publisher.close()
    if summary.failed:
        raise SystemExit(f"{name}: {summary.failed} records not acknowledged")
    return Result(
        name,
        summary.sent,
        t1 - t0,
        cpu1 - cpu0,
        bcpu1 - bcpu0,
        rejected=summary.rejected,
        pool_start_s=pool_start_s,
        worker_cpu_s=worker_cpu_s,
    )


def measure(
    kind: str, workers: int, args: argparse.Namespace, inputs: Inputs, workdir: Path
) -> tuple[Result, Result]:
    """(baseline, publisher) on one fresh broker."""
    with broker_for(args, workdir) as (s, pid):
        baseline = run_baseline(s, inputs, pid)
    with broker_for(args, workdir) as (s, pid):
        if kind == "documents":
            source: Any = DocumentSource.from_paths([str(inputs.directory)], s.producer)
        else:
            source = JsonLinesSource.from_paths([str(inputs.jsonl)], s.producer)
        result = run_publisher(f"{kind} w{workers}", source, s, workers, pid)
    if result.records != len(inputs.encoded) or result.rejected:
        raise SystemExit(
            f"{result.name}: sent {result.records} of {len(inputs.encoded)}, "
            f"{result.rejected} rejected"
        )
    return baseline, result


def environment() -> dict[str, Any]:
    """Where the numbers come from."""
    import fastavro
    import kafka

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "kafka_python": kafka.__version__,
        "fastavro": fastavro.__version__,
        "pyyaml": yaml.__version__,
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--kinds", default="documents,jsonl")
    parser.add_argument("--repeat", type=int, default=3, help="runs each; the median is kept")
    parser.add_argument("--bootstrap", help="use this broker (host:port) instead of Tansu")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--client", default="", help="Kafka client: kafka-python or confluent")
    parser.add_argument("--profile", choices=("documents", "jsonl"))
    parser.add_argument("--profile-limit", type=int, default=30)
    args = parser.parse_args(argv)
    global CLIENT
    CLIENT = args.client
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]

    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as tmp:
        workdir = Path(tmp)
        inputs = build_inputs(args.articles, workdir)
        rows = []
        for kind in kinds:
            for workers in worker_counts:
                runs = [
                    measure(kind, workers, args, inputs, workdir)
                    for _ in range(max(1, args.repeat))
                ]
                ratios = [r.rate / b.rate for b, r in runs]
                baseline, result = runs[ratios.index(statistics.median_low(ratios))]
                rows.append(
                    {
                        "kind": kind,
                        "workers": workers,
                        "baseline": baseline,
                        "result": result,
                        "ratio": result.rate / baseline.rate,
                    }
                )
        profile_text = ""
        if args.profile:
            profile = cProfile.Profile()
            with broker_for(args, workdir) as (s, pid):
                source: Any = (
                    DocumentSource.from_paths([str(inputs.directory)], s.producer)
                    if args.profile == "documents"
                    else JsonLinesSource.from_paths([str(inputs.jsonl)], s.producer)
                )
                run_publisher(args.profile, source, s, 1, pid, profile=profile)
            buffer = io.StringIO()
            pstats.Stats(profile, stream=buffer).sort_stats("cumulative").print_stats(
                args.profile_limit
            )
            profile_text = buffer.getvalue()

    def rate_of(kind: str, workers: int) -> float:
        return next(
            (r["result"].rate for r in rows if r["kind"] == kind and r["workers"] == workers), 0.0
        )

    docs1, docs2, jsonl_best = (
        rate_of("documents", 1),
        rate_of("documents", 2),
        max((r["result"].rate for r in rows if r["kind"] == "jsonl"), default=0.0),
    )
    checks = {
        "documents_2_workers_ge_4000": docs2 >= TARGET_DOCS_2 if docs2 else None,
        "jsonl_ge_20000": jsonl_best >= TARGET_JSONL if jsonl_best else None,
    }
    if args.json:
        doc = {
            "environment": environment(),
            "articles": args.articles,
            "avro_bytes": inputs.avro_bytes,
            "document_bytes": inputs.document_bytes,
            "runs": [
                {
                    "kind": r["kind"],
                    "workers": r["workers"],
                    "ratio": r["ratio"],
                    "rate": r["result"].rate,
                    "baseline_rate": r["baseline"].rate,
                    "cpu_us_per_record": r["result"].cpu_us,
                    "baseline_cpu_us_per_record": r["baseline"].cpu_us,
                    "cpu_ratio": r["result"].cpu_us / r["baseline"].cpu_us
                    if r["baseline"].cpu_us
                    else None,
                    "result": asdict(r["result"]),
                    "baseline": asdict(r["baseline"]),
                }
                for r in rows
            ],
            "scaling_2_vs_1": docs2 / docs1 if docs1 else None,
            "targets": checks,
        }
        print(json.dumps(doc, indent=2))
    else:
        env = environment()
        print(
            f"newswire producer benchmark: {args.articles} articles "
            f"({inputs.document_bytes:,.0f} B documents, {inputs.avro_bytes:,.0f} B Avro), "
            f"{env['cores']} cores, python {env['python']}, libyaml {env['libyaml']}; "
            f"median of {args.repeat}"
        )
        print(
            f"{'run':<14} {'rate/s':>9} {'baseline/s':>11} {'rate x':>6} {'cpu µs':>7} "
            f"{'base µs':>7} {'cpu x':>6} {'secs':>6} {'broker cpu':>10} {'pool start':>10}"
        )
        for r in rows:
            res, base = r["result"], r["baseline"]
            cpu_ratio = res.cpu_us / base.cpu_us if base.cpu_us else float("nan")
            print(
                f"{res.name:<14} {res.rate:>9,.0f} {base.rate:>11,.0f} {r['ratio']:>6.2f} "
                f"{res.cpu_us:>7.1f} {base.cpu_us:>7.1f} {cpu_ratio:>6.2f} "
                f"{res.seconds:>6.2f} {res.broker_cpu_s:>10.2f} {res.pool_start_s:>10.2f}"
            )
        if docs1 and docs2:
            print(f"documents scaling 2 workers / 1 worker: {docs2 / docs1:.2f}x")
        for name, ok in checks.items():
            if ok is not None:
                print(f"target {name}: {'met' if ok else 'NOT met'}")
        if profile_text:
            print(profile_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
