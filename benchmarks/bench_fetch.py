#!/usr/bin/env python3
"""Consumer fetch cost of each Kafka client adapter (newswire.kafka), as ratios.

Starts an embedded Tansu broker, pre-produces N seed-shaped articles (~2.9 KB
Avro, lz4, 6 partitions, keyed like the publisher) to one topic, then reads all
of them, in a fresh consumer group each, with:

- ``kafka-python (raw)``: kafka-python's own ``KafkaConsumer.poll`` — the
  baseline of every ratio (DESIGN §7's decode-free fetch);
- ``kafka-python``: newswire's kafka-python adapter (``ConsumerClient.poll``);
- ``confluent (raw)``: confluent-kafka's own ``Consumer.consume``;
- ``confluent``: newswire's confluent adapter.

Each is timed from its first record to its N-th (the join is excluded). CPU
is the whole process's user+system time (librdkafka and kafka-python fetch in
their own threads), per record; the table gives µs per record, records/s and
both as ratios against the baseline of the same round (the machine is shared:
the median of ``--repeat`` rounds is reported, CPU being the steadier number).
Nothing is decoded: this is the client's cost, not the runner's.

    .venv/bin/python benchmarks/bench_fetch.py [--records 20000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from bench_stages import build_dataset, make_settings, produce  # noqa: E402

from newswire.broker import EmbeddedBroker  # noqa: E402
from newswire.kafka import open_clients  # noqa: E402
from newswire.serde import SingleObjectSerde  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.topics import UNIQUE, ensure_topics  # noqa: E402

TIMEOUT_S = 120.0


@dataclass
class Result:
    """One timed read of the topic."""

    name: str
    records: int
    seconds: float
    cpu_s: float

    @property
    def cpu_us(self) -> float:
        """CPU µs per record."""
        return self.cpu_s / self.records * 1e6 if self.records else 0.0

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds else 0.0


def _timed(name: str, n: int, poll: Callable[[], int], close: Callable[[], None]) -> Result:
    seen = 0
    t0 = cpu0 = 0.0
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while seen < n and time.monotonic() < deadline:
            got = poll()
            if got and not seen:
                t0, cpu0 = time.perf_counter(), time.process_time()
            seen += got
        t1, cpu1 = time.perf_counter(), time.process_time()
    finally:
        close()
    if seen < n:
        raise SystemExit(f"{name}: read {seen} of {n} records in {TIMEOUT_S}s")
    return Result(name, seen, t1 - t0, cpu1 - cpu0)


def raw_kafka_python(s: Settings, n: int) -> Result:
    """kafka-python's KafkaConsumer with the adapter's options."""
    from kafka import KafkaConsumer

    from newswire.kafka.kafka_python import connection_config

    consumer = KafkaConsumer(
        UNIQUE,
        **connection_config(s.kafka, "bench-raw"),
        group_id=f"bench.{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=s.kafka.fetch_max_wait_ms,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        session_timeout_ms=s.kafka.session_timeout_ms,
        heartbeat_interval_ms=s.kafka.heartbeat_interval_ms,
    )

    def poll() -> int:
        polled = consumer.poll(timeout_ms=500, max_records=s.kafka.max_poll_records)
        return sum(len(records) for records in polled.values())

    return _timed("kafka-python (raw)", n, poll, lambda: consumer.close(autocommit=False))


def raw_confluent(s: Settings, n: int) -> Result:
    """confluent-kafka's Consumer with the adapter's options."""
    from confluent_kafka import Consumer

    from newswire.kafka.confluent import connection_config

    consumer = Consumer(
        {
            **connection_config(s.kafka, "bench-raw"),
            "group.id": f"bench.{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": s.kafka.fetch_max_wait_ms,
            "session.timeout.ms": s.kafka.session_timeout_ms,
            "heartbeat.interval.ms": s.kafka.heartbeat_interval_ms,
        }
    )
    consumer.subscribe([UNIQUE])

    def poll() -> int:
        return sum(1 for m in consumer.consume(s.kafka.max_poll_records, 0.5) if m.error() is None)

    return _timed("confluent (raw)", n, poll, consumer.close)


def adapter(client: str, s: Settings, n: int) -> Result:
    """newswire's adapter for *client*, as the runner uses it."""
    s = s.model_copy(deep=True)
    s.kafka.client = client
    consumer = open_clients(s.kafka).consumer(f"bench.{uuid.uuid4().hex[:8]}", "bench")
    consumer.subscribe([UNIQUE], on_assign=lambda _: None, on_revoke=lambda _: None)

    def poll() -> int:
        polled = consumer.poll(0.5, s.kafka.max_poll_records)
        return sum(len(records) for records in polled.values())

    return _timed(client, n, poll, consumer.close)


def main() -> None:
    """Measure and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    data = build_dataset(args.records, SingleObjectSerde(), ["enrich"])
    runs: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        broker = EmbeddedBroker(log_path=Path(tmp) / "broker.log").start()
        try:
            s = make_settings(broker.bootstrap, Path(tmp))
            ensure_topics(s.kafka, (UNIQUE,))
            produce(s, UNIQUE, data.unique)
            for _ in range(args.repeat):
                for result in (
                    raw_kafka_python(s, args.records),
                    adapter("kafka-python", s, args.records),
                    raw_confluent(s, args.records),
                    adapter("confluent", s, args.records),
                ):
                    runs.setdefault(result.name, []).append(result)
        finally:
            broker.stop()

    baseline = runs["kafka-python (raw)"]
    rows = []
    for name, results in runs.items():
        pairs = list(zip(results, baseline, strict=True))
        cpu_ratio = statistics.median(r.cpu_us / b.cpu_us for r, b in pairs)
        rate_ratio = statistics.median(r.rate / b.rate for r, b in pairs)
        rows.append(
            {
                "name": name,
                "cpu_us_per_record": statistics.median(r.cpu_us for r in results),
                "records_per_s": statistics.median(r.rate for r in results),
                "cpu_ratio": cpu_ratio,
                "rate_ratio": rate_ratio,
                "runs": [asdict(r) for r in results],
            }
        )
    if args.json:
        print(json.dumps({"records": args.records, "avro_bytes": data.avro_bytes, "rows": rows}))
        return
    print(
        f"{args.records} records of {data.avro_bytes:.0f} B Avro (lz4, 6 partitions, Tansu); "
        f"median of {args.repeat}; ratios against kafka-python (raw) of the same round"
    )
    print(f"{'client':22} {'cpu µs/rec':>10} {'cpu ratio':>10} {'rec/s':>10} {'rate ratio':>10}")
    for row in rows:
        print(
            f"{row['name']:22} {row['cpu_us_per_record']:10.2f} {row['cpu_ratio']:10.2f} "
            f"{row['records_per_s']:10.0f} {row['rate_ratio']:10.2f}"
        )


if __name__ == "__main__":
    main()
