#!/usr/bin/env python3
"""newswire's stages beside the same jobs built with Quix Streams, on the same bytes (issue 10).

One embedded Tansu broker is started (and stopped) by this script. Its input
topics (6 partitions, ``retention.ms`` declared: Quix Streams' stateful
operators read it from the input topic's config and raise ``KeyError:
'retention.ms'`` without it) get N newswire-encoded articles each (Avro single
object, ~2.9 KB; seed-shaped as in ``bench_stages``):

- ``articles.raw``: every 5th article a URL variant of an earlier one (20 %
  duplicates, found by key: the key is the hash of the canonical URL);
- ``articles.unique``: N distinct articles;
- ``articles.enriched``: the same, enriched by newswire's ``Enricher``.

Every job then runs **as its own process** (this script with ``--child JOB``),
so its CPU is measured alone: user+system time of that process, all threads
(``time.process_time()``), from its consumer's ``subscribe`` (set-up such as
loading a language model is not in it; the group join and every fetch are)
to its N-th record processed and committed (newswire: the runner's commit of
that batch; Quix: the end of the final checkpoint — producer flushed, state
and offsets committed). Wall rate is N over the time from the first record
handed out to the same end (the group join's wait is not in it). Both are
printed as ratios to a decode-only kafka-python consumer (newswire's
kafka-python adapter, ``SingleObjectSerde.decode`` on each value) on the job's
input topic, measured in the same run; the one on
``articles.raw`` is measured first and last and the mean is used (the machine
is shared: compare ratios of one run, never figures of two).

Jobs (``--jobs``, comma-separated; default all):

====================  ==================================================================
``poll``              kafka-python poll only (no decode)
``poll-confluent``,   the same two with newswire's confluent-kafka consumer adapter
``decode-confluent``  (``NEWSWIRE_KAFKA__CLIENT=confluent``), for reference
``decode``            the baseline, on articles.raw (``decode-unique``/``-enriched``: on
                      those topics; run automatically for the jobs that read them)
``quix-bytes``        Quix Streams exact dedup by key (RocksDB state), bytes pass-through
``quix-dedup``        Quix Streams exact dedup by key, Avro decode + re-encode (fastavro)
``quix-enrich``       Quix Streams: decode, newswire's ``Enricher`` (the same enrichment
                      code), full Avro encode
``quix-store``        Quix Streams: decode, a ``BatchingSink`` writing with newswire's
                      SQLite store (the same SQL) at each checkpoint
``dedup-exact``       newswire dedup, near-duplicates off
``dedup-near``        newswire dedup, near-duplicates on
``enrich``            newswire enrich
``store-sqlite``      newswire store into SQLite
``store-postgres``    newswire store into PostgreSQL (``--postgres``; a fresh schema,
                      dropped afterwards; skipped with a note if unreachable)
====================  ==================================================================

The Quix jobs use the same enrichment and store code as newswire's stages, so
the difference is the runtime's (polling, decoding, state, producing,
committing). Quix runs with its defaults (changelog topics on, 5 s commit
interval, ``at-least-once``) plus the embedded mode's group timeouts.

Needs quixstreams (the ``bench`` extra; ``make bench-peers`` installs it in its
own venv, ``.venv-bench``). Not part of ``make bench``.

    .venv-bench/bin/python benchmarks/bench_peers.py [--articles 20000] [--jobs …]
        [--postgres URL] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

from bench_stages import (  # noqa: E402
    PARTITIONS,
    build_dataset,
    consumer_class,
    make_settings,
    produce,
)

from newswire.broker import EmbeddedBroker  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.topics import ALL_TOPICS, ENRICHED, RAW, UNIQUE, ensure_topics  # noqa: E402

log = logging.getLogger("bench_peers")

CHILD_TIMEOUT_S = 600.0
RETENTION_MS = str(7 * 24 * 3600 * 1000)
DEFAULT_POSTGRES = os.environ.get(
    "NEWSWIRE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Job:
    """One measured job: its input topic and what it is."""

    name: str
    topic: str
    label: str


JOBS: dict[str, Job] = {
    j.name: j
    for j in (
        Job("poll", RAW, "kafka-python poll only"),
        Job("decode", RAW, "kafka-python decode-only (baseline)"),
        Job("poll-confluent", RAW, "confluent-kafka poll only"),
        Job("decode-confluent", RAW, "confluent-kafka decode-only"),
        Job("quix-bytes", RAW, "Quix Streams exact dedup, bytes pass-through"),
        Job("quix-dedup", RAW, "Quix Streams exact dedup, Avro decode + re-encode"),
        Job("dedup-exact", RAW, "newswire dedup, near-duplicates off"),
        Job("dedup-near", RAW, "newswire dedup, near-duplicates on"),
        Job("decode-unique", UNIQUE, "kafka-python decode-only on articles.unique"),
        Job("quix-enrich", UNIQUE, "Quix Streams enrich (newswire's Enricher)"),
        Job("enrich", UNIQUE, "newswire enrich"),
        Job("decode-enriched", ENRICHED, "kafka-python decode-only on articles.enriched"),
        Job("quix-store", ENRICHED, "Quix Streams SQLite sink (newswire's store)"),
        Job("store-sqlite", ENRICHED, "newswire store into SQLite"),
        Job("store-postgres", ENRICHED, "newswire store into PostgreSQL"),
    )
}
BASELINE_OF = {RAW: "decode", UNIQUE: "decode-unique", ENRICHED: "decode-enriched"}
#: The Quix Streams job doing each newswire stage's work (issue 10: every stage below it).
COUNTERPART = {
    "dedup-exact": "quix-dedup",
    "dedup-near": "quix-dedup",
    "enrich": "quix-enrich",
    "store-sqlite": "quix-store",
    "store-postgres": "quix-store",
}
# Jobs that read a topic run before the jobs that write to it (dedup writes articles.unique,
# enrich articles.enriched), so that every job reads only the N pre-produced records.
ORDER = (ENRICHED, UNIQUE, RAW)


# -- the child: one job in its own process ---------------------------------------------------


def child_settings(args: argparse.Namespace, workdir: Path) -> Settings:
    s = make_settings(args.bootstrap, workdir)
    if args.store_url:
        s.section("store").url = args.store_url
    return s


def baseline_settings(job: str, args: argparse.Namespace, workdir: Path) -> Settings:
    """The baselines' client is named, not the default: kafka-python unless the job says
    confluent (newswire's consumer settings otherwise: raw bytes, no auto commit)."""
    s = child_settings(args, workdir)
    s.kafka.client = "confluent" if job.endswith("-confluent") else "kafka-python"
    return s


def _mark_subscribe(consumer: Any, marks: dict[str, float]) -> Any:
    """*consumer* with its ``subscribe`` noting the process's CPU time: the CPU window of every
    job starts there, so the fetches done before the first record is handed out count too."""
    subscribe = consumer.subscribe

    def marked(*a: Any, **kw: Any) -> Any:
        marks.setdefault("cpu0", time.process_time())
        return subscribe(*a, **kw)

    consumer.subscribe = marked
    return consumer


class _MarkedClients:
    """The runner's clients, with the consumer's ``subscribe`` marked."""

    def __init__(self, clients: Any, marks: dict[str, float]) -> None:
        self._clients = clients
        self._marks = marks

    def consumer(self, group: str | None, role: str) -> Any:
        return _mark_subscribe(self._clients.consumer(group, role), self._marks)

    def producer(self, role: str, *, output: bool = False) -> Any:
        return self._clients.producer(role, output=output)

    def admin(self) -> Any:
        return self._clients.admin()


def run_newswire(job: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A newswire stage (``Runner`` in this process) in a fresh group, until N committed."""
    from prometheus_client import CollectorRegistry
    from stagerun import counter_sums, run_until

    from newswire.runner import Runner

    stage = {"dedup-exact": "dedup", "dedup-near": "dedup", "enrich": "enrich"}.get(job, "store")
    s = child_settings(args, workdir)
    s.section("dedup").near = job != "dedup-exact"
    cls = consumer_class(stage)
    # A fresh group per job (several jobs read the same topic); the name stays, so the
    # consumer finds its settings section (make_settings: state and store in the job's dir).
    group = f"newswire.bench.{job}.{uuid.uuid4().hex[:6]}"
    consumer = type(cls.__name__, (cls,), {"group": property(lambda _self: group)})()
    name = consumer.name
    registry = CollectorRegistry()
    # As `newswire consume` runs a stage (the GC tuned after setup), unless --no-tune-gc.
    runner = Runner(consumer, s, registry=registry, tune_gc=not args.no_tune_gc)
    marks: dict[str, float] = {}
    runner.clients = _MarkedClients(runner.clients, marks)
    labels = {"consumer": name, "topic": JOBS[job].topic}
    w = run_until(runner, registry, labels, args.articles, CHILD_TIMEOUT_S, marks=marks)
    out = counter_sums(
        registry,
        (
            "newswire_consumer_records_out_total",
            "newswire_consumer_dlq_total",
            "newswire_store_rows_written_total",
        ),
    )
    return {
        "records": w.records,
        "seconds": w.seconds,
        "cpu_s": w.cpu_s,
        "complete": w.complete,
        "out": out,
    }


def run_kafka_python(job: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A consumer of newswire's client adapter that polls and decodes each value (the
    baseline: what any stage must do) or only polls, until it has seen N records."""
    from newswire.kafka import open_clients
    from newswire.serde import SingleObjectSerde

    s = baseline_settings(job, args, workdir)
    decode = None if job.startswith("poll") else SingleObjectSerde().decode
    marks: dict[str, float] = {}
    group = f"bench.{job}.{uuid.uuid4().hex[:8]}"
    consumer = _mark_subscribe(open_clients(s.kafka).consumer(group, f"bench-{job}"), marks)
    consumer.subscribe([JOBS[job].topic], on_assign=lambda _: None, on_revoke=lambda _: None)
    seen = 0
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while seen < args.articles and time.monotonic() < deadline:
            polled = consumer.poll(s.runner.poll_timeout_ms / 1000, s.kafka.max_poll_records)
            if polled:
                marks.setdefault("t0", time.perf_counter())
            for records in polled.values():
                if decode is not None:
                    for record in records:
                        decode(record.value)
                seen += len(records)
        t1, cpu1 = time.perf_counter(), time.process_time()
    finally:
        consumer.close()
    return {
        "records": seen,
        "seconds": t1 - marks.get("t0", t1),
        "cpu_s": cpu1 - marks.get("cpu0", cpu1),
        "complete": seen >= args.articles,
    }


class _SingleObjectAvro:
    """What a Quix Streams user writes for newswire's wire format: fastavro, schemaless, with
    the single-object header (``C3 01`` + fingerprint) checked and written by hand."""

    def __init__(self, reader: str, writer: str) -> None:
        from newswire.serde import SchemaStore

        store = SchemaStore.from_dir()
        self.reader = store.current[reader]
        self.writer = store.current[writer]
        self.header = b"\xc3\x01" + self.writer.fingerprint

    def decode(self, value: bytes) -> dict[str, Any]:
        import io

        import fastavro

        if value[:2] != b"\xc3\x01" or value[2:10] != self.reader.fingerprint:
            raise ValueError(f"not a {self.reader.name} single-object record")
        record = fastavro.schemaless_reader(io.BytesIO(value[10:]), self.reader.parsed, None)
        assert isinstance(record, dict)
        return record

    def encode(self, record: dict[str, Any]) -> bytes:
        import io

        import fastavro

        out = io.BytesIO()
        out.write(self.header)
        fastavro.schemaless_writer(out, self.writer.parsed, record)
        return out.getvalue()


def run_quix(job: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A Quix Streams ``Application`` doing *job* until N input records are processed."""
    from quixstreams import Application
    from quixstreams.sinks import BatchingSink, SinkBatch

    from newswire.serde import ARTICLE, ENRICHED_ARTICLE

    n = args.articles
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"bench-{job}-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=str(workdir / "quix-state"),
        loglevel="WARNING",
        # The embedded mode's group timeouts (DESIGN §6): joins in ~1 s on Tansu.
        consumer_extra_config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 500},
    )
    topic_config = app._topic_manager.topic_config(  # the input topics exist: no creation
        num_partitions=PARTITIONS, extra_config={"retention.ms": RETENTION_MS}
    )
    source = app.topic(
        JOBS[job].topic,
        key_deserializer="bytes",
        value_deserializer="bytes",
        config=topic_config,
    )
    marks: dict[str, float] = {}
    seen = 0

    def count(_value: Any) -> None:
        nonlocal seen
        if seen == 0:
            marks["t0"] = time.perf_counter()
        seen += 1
        if seen == n:
            marks["done"] = 1
            app.stop()

    sdf = app.dataframe(source)
    sdf = sdf.update(count)
    if job == "quix-bytes":

        def first_sighting(_value: bytes, state: Any) -> bool:  # state is per message key
            if state.get("seen"):
                return False
            state.set("seen", True)
            return True

        sdf = sdf.filter(first_sighting, stateful=True)
        sdf.to_topic(app.topic(f"bench.{job}.out", value_serializer="bytes"))
    elif job == "quix-dedup":
        avro = _SingleObjectAvro(ARTICLE, ARTICLE)

        def first_record(record: dict[str, Any], state: Any) -> bool:
            if state.get("seen"):
                return False
            state.set("seen", True)
            return True

        sdf = sdf.apply(avro.decode).filter(first_record, stateful=True).apply(avro.encode)
        sdf.to_topic(app.topic(f"bench.{job}.out", value_serializer="bytes"))
    elif job == "quix-enrich":
        from consumers.enrich import Enricher

        avro = _SingleObjectAvro(ARTICLE, ENRICHED_ARTICLE)
        enricher = Enricher()
        enricher.warm_up()
        sdf = sdf.apply(avro.decode).apply(enricher.enrich).apply(avro.encode)
        sdf.to_topic(app.topic(f"bench.{job}.out", value_serializer="bytes"))
    elif job == "quix-store":
        from newswire.store import open_writer

        avro = _SingleObjectAvro(ENRICHED_ARTICLE, ENRICHED_ARTICLE)
        store_url = f"sqlite:///{workdir / 'quix-store.db'}"

        class SqliteSink(BatchingSink):
            """Each checkpoint's batch (per partition) in one transaction, newswire's SQL."""

            def setup(self) -> None:
                self.store = open_writer(store_url)

            rows = 0

            def write(self, batch: SinkBatch) -> None:
                SqliteSink.rows += self.store.write([item.value for item in batch], [])[0]

        sink = SqliteSink()
        sdf.apply(avro.decode).sink(sink)
    else:
        raise SystemExit(f"unknown Quix job {job!r}")

    _mark_subscribe(app._consumer, marks)
    context = app._processing_context
    commit = context.commit_checkpoint

    def timed_commit(*a: Any, **kw: Any) -> Any:
        result = commit(*a, **kw)
        if "done" in marks and "t1" not in marks:
            marks.update(t1=time.perf_counter(), cpu1=time.process_time())
        return result

    context.commit_checkpoint = timed_commit
    stopper = _watchdog(app.stop)
    try:
        app.run()
    finally:
        stopper.cancel()
    if "t1" not in marks:
        marks.update(t1=time.perf_counter(), cpu1=time.process_time())
    out = {"rows_written": float(SqliteSink.rows)} if job == "quix-store" else {}
    return {
        "out": out,
        "records": seen,
        "seconds": marks["t1"] - marks.get("t0", marks["t1"]),
        "cpu_s": marks["cpu1"] - marks.get("cpu0", marks["cpu1"]),
        "complete": seen >= n,
    }


def _watchdog(stop: Any) -> Any:
    import threading

    timer = threading.Timer(CHILD_TIMEOUT_S, stop)
    timer.daemon = True
    timer.start()
    return timer


def child_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workdir = Path(args.workdir)
    job = args.child
    if job.startswith("quix-"):
        result = run_quix(job, args, workdir)
    elif job.startswith(("poll", "decode")):
        result = run_kafka_python(job, args, workdir)
    else:
        result = run_newswire(job, args, workdir)
    Path(args.result).write_text(json.dumps(result))
    return 0


# -- the parent: broker, inputs, one child per job, the table --------------------------------


def create_input_topics(s: Settings) -> None:
    """Every pipeline topic, the inputs with ``retention.ms`` declared (for Quix Streams)."""
    # kafka-python's admin directly: newswire's AdminClient protocol creates topics without
    # configs, and Quix Streams needs retention.ms on its inputs.
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=[s.kafka.bootstrap], client_id="bench-admin")
    try:
        admin.create_topics(
            [
                NewTopic(t, PARTITIONS, 1, topic_configs={"retention.ms": RETENTION_MS})
                for t in (RAW, UNIQUE, ENRICHED)
            ]
        )
    finally:
        admin.close()
    ensure_topics(s.kafka, ALL_TOPICS)


def run_child(job: str, args: argparse.Namespace, bootstrap: str, workdir: Path) -> dict[str, Any]:
    """Run *job* in a child process; its result, or an error entry."""
    jobdir = Path(tempfile.mkdtemp(prefix=f"{job}-", dir=workdir))
    result_file = jobdir / "result.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        job,
        "--bootstrap",
        bootstrap,
        "--articles",
        str(args.articles),
        "--workdir",
        str(jobdir),
        "--result",
        str(result_file),
    ]
    if job == "store-postgres":
        cmd += ["--store-url", args.pg_url]
    if args.no_tune_gc:
        cmd.append("--no-tune-gc")
    log_path = jobdir / "child.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            process.wait(CHILD_TIMEOUT_S + 60)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
    if process.returncode != 0 or not result_file.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-8:])
        return {"error": f"exit status {process.returncode}: {tail}"}
    data: dict[str, Any] = json.loads(result_file.read_text())
    return data


@contextlib.contextmanager
def postgres_url(args: argparse.Namespace) -> Any:
    """A fresh schema on --postgres for store-postgres, or None (with the reason)."""
    if not args.postgres:
        yield None, "no --postgres"
        return
    try:
        import psycopg

        with psycopg.connect(args.postgres, connect_timeout=3):
            pass
    except Exception as exc:
        yield None, f"PostgreSQL unreachable: {exc}"
        return
    from bench_store import postgres_schema

    with postgres_schema(args.postgres) as url:
        yield url, ""


def per_record(r: dict[str, Any]) -> tuple[float, float]:
    """(CPU µs per record, records per second)."""
    n = r.get("records") or 0
    if not n or not r.get("seconds"):
        return 0.0, 0.0
    return r["cpu_s"] / n * 1e6, n / r["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000, help="records per input topic")
    parser.add_argument("--jobs", default=",".join(JOBS), help="comma-separated, see above")
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help="PostgreSQL URL for store-postgres ('' skips it)",
    )
    parser.add_argument(
        "--no-tune-gc",
        action="store_true",
        help="newswire jobs: leave the GC as it is (`newswire consume` tunes it after setup)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    # The child's arguments (one job in its own process).
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        parser.error(f"unknown job(s) {unknown}; choose from {sorted(JOBS)}")
    if any(j.startswith("quix-") for j in jobs):
        import importlib.util

        if importlib.util.find_spec("quixstreams") is None:
            parser.error("the Quix Streams jobs need quixstreams: `make bench-peers` installs it")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Each measured topic gets its decode-only baseline, run before its jobs.
    topics = {JOBS[j].topic for j in jobs}
    plan: list[str] = []
    for topic in ORDER:
        if topic in topics:
            plan.append(BASELINE_OF[topic])
            plan += [j for j in jobs if JOBS[j].topic == topic and j != BASELINE_OF[topic]]
    if RAW in topics:
        plan.append("decode")  # again at the end: the machine's drift during the run

    from newswire.serde import SingleObjectSerde

    stages = ["dedup"] if RAW in topics else []
    if ENRICHED in topics:
        stages.append("store")
    started = time.perf_counter()
    data = build_dataset(args.articles, SingleObjectSerde(), stages, dup_every=5)
    results: list[tuple[str, dict[str, Any]]] = []
    notes: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        postgres_url(args) as (pg_url, pg_note),
    ):
        args.pg_url = pg_url
        workdir = Path(tmp)
        broker = EmbeddedBroker(log_path=workdir / "broker.log")
        try:
            broker.start()
            s = make_settings(broker.bootstrap, workdir)
            create_input_topics(s)
            for topic in ORDER:
                if topic in topics:
                    produce(s, topic, data.for_topic(topic))
            for job in plan:
                if job == "store-postgres" and pg_url is None:
                    notes.append(f"store-postgres skipped: {pg_note}")
                    continue
                print(f"  running {job} ...", file=sys.stderr, flush=True)
                results.append((job, run_child(job, args, broker.bootstrap, workdir)))
        finally:
            broker.stop()
    elapsed = time.perf_counter() - started

    base: dict[str, tuple[float, float]] = {}
    for topic, name in BASELINE_OF.items():
        runs = [per_record(r) for j, r in results if j == name and "error" not in r]
        runs = [x for x in runs if x[0]]
        if runs:
            base[topic] = (
                sum(x[0] for x in runs) / len(runs),
                sum(x[1] for x in runs) / len(runs),
            )
    peer_cpu = {
        j: per_record(r)[0] for j, r in results if j.startswith("quix-") and "error" not in r
    }
    rows = []
    decode_seen = 0
    for job, r in results:
        if job == "decode":
            decode_seen += 1
        label = JOBS[job].label + (
            " (again, at the end)" if job == "decode" and decode_seen > 1 else ""
        )
        cpu, rate = per_record(r)
        b_cpu, b_rate = base.get(JOBS[job].topic, (0.0, 0.0))
        rows.append(
            {
                "job": job,
                "label": label,
                "topic": JOBS[job].topic,
                "records": r.get("records", 0),
                "cpu_us_per_record": cpu,
                "records_per_s": rate,
                "cpu_ratio": cpu / b_cpu if b_cpu else None,
                "wall_ratio": b_rate / rate if rate and b_rate else None,
                "quix_cpu_ratio": (
                    cpu / peer_cpu[COUNTERPART[job]]
                    if peer_cpu.get(COUNTERPART.get(job, ""))
                    else None
                ),
                "complete": r.get("complete", False),
                "error": r.get("error"),
                "out": r.get("out", {}),
            }
        )
    env = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}",
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "environment": env,
                    "articles": args.articles,
                    "avro_bytes": data.avro_bytes,
                    "enriched_avro_bytes": data.enriched_avro_bytes,
                    "duplicates": data.duplicates,
                    "jobs": rows,
                    "notes": notes,
                    "seconds": elapsed,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{env['date']}; {env['machine']}; Python {env['python']}; "
            f"load average {env['load_avg'][0]:.1f}"
        )
        print(
            f"{args.articles} records per topic, {data.avro_bytes:.0f} B Avro "
            f"(enriched {data.enriched_avro_bytes:.0f} B), {data.duplicates} URL-variant "
            f"duplicates on {RAW}; one embedded Tansu broker; {elapsed:.0f}s in all"
        )
        print()
        print(
            "| job | input | CPU µs/rec | x decode-only CPU | x Quix CPU | rec/s "
            "| x decode-only time |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for row in rows:
            if row["error"]:
                print(f"| {row['label']} | {row['topic']} | ERROR | | | | |")
                continue
            flag = "" if row["complete"] else " (INCOMPLETE)"
            cr = f"{row['cpu_ratio']:.2f}" if row["cpu_ratio"] else "-"
            qr = f"{row['quix_cpu_ratio']:.2f}" if row["quix_cpu_ratio"] else "-"
            wr = f"{row['wall_ratio']:.2f}" if row["wall_ratio"] else "-"
            print(
                f"| {row['label']}{flag} | {row['topic']} | {row['cpu_us_per_record']:.0f} | "
                f"{cr} | {qr} | {row['records_per_s']:,.0f} | {wr} |"
            )
        print()
        print(
            "CPU: user+sys of the job's own process (all threads) per record, from its "
            "subscribe to the N-th record committed; rec/s: from the first record handed out; "
            "x decode-only: against the kafka-python decode-only consumer "
            "on the same topic in this run (articles.raw: mean of the first and last run); "
            "x Quix: against the Quix Streams job doing the same stage's work "
            f"({', '.join(f'{k}: {v}' for k, v in COUNTERPART.items())}); "
            "time ratio = baseline rate / job rate (higher is slower)."
        )
        for row in rows:
            if row["out"]:
                outs = ", ".join(f"{k}={v:,.0f}" for k, v in sorted(row["out"].items()))
                print(f"{row['job']}: {outs}")
        for note in notes:
            print(f"note: {note}")
        for row in rows:
            if row["error"]:
                print(f"{row['job']}: ERROR {row['error']}")
    bad = [r for r in rows if r["error"] or not r["complete"]]
    return 1 if bad else 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
