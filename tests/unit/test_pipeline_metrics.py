"""Pipeline.metrics/drained against a real prometheus-client /metrics server (no broker)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from newswire.pipeline import Pipeline, StageProcess
from newswire.settings import Settings
from newswire.topics import RAW, UNIQUE


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[tuple[StageProcess, Counter, Counter]]:
    """A "dedup" stage whose /metrics is served by prometheus-client on a free port."""
    registry = CollectorRegistry()
    records_in = Counter(
        "newswire_consumer_records_in_total", "in", ("consumer", "topic"), registry=registry
    )
    records_out = Counter(
        "newswire_consumer_records_out_total", "out", ("consumer", "topic"), registry=registry
    )
    latency = Histogram(
        "newswire_consumer_processing_seconds", "t", ("consumer", "topic"), registry=registry
    )
    latency.labels("dedup", RAW).observe(0.01)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port_file = tmp_path / "dedup.port"
    port_file.write_text(str(server.server_port))
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    try:
        yield (
            StageProcess("dedup", 1, process, port_file, tmp_path / "dedup.log"),
            records_in,
            records_out,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_metrics_asks_only_for_the_named_samples(
    stage: tuple[StageProcess, Counter, Counter], tmp_path: Path
) -> None:
    process, records_in, _ = stage
    records_in.labels("dedup", RAW).inc(7)
    pipeline = Pipeline(Settings(), tmp_path, stages={"dedup": 1}, processes=[process])

    everything = pipeline.metrics()["dedup"]
    only = pipeline.metrics(["newswire_consumer_records_in_total"])["dedup"]

    assert any(name == "newswire_consumer_processing_seconds_count" for name, _ in everything)
    assert {name for name, _ in only} == {"newswire_consumer_records_in_total"}
    assert only[("newswire_consumer_records_in_total", (("consumer", "dedup"), ("topic", RAW)))]
    assert only[
        ("newswire_consumer_records_in_total", (("consumer", "dedup"), ("topic", RAW)))
    ] == pytest.approx(7.0)


def test_drained_reads_the_counters_it_filters_for(
    stage: tuple[StageProcess, Counter, Counter], tmp_path: Path
) -> None:
    process, records_in, records_out = stage
    pipeline = Pipeline(
        Settings(),
        tmp_path,
        stages={"dedup": 1},
        processes=[process],
        topology={"dedup": (RAW,)},  # what start() finds in the registry
    )
    records_in.labels("dedup", RAW).inc(4)

    assert not pipeline.drained(produced=5)  # one record of articles.raw not consumed yet
    records_in.labels("dedup", RAW).inc(1)
    records_out.labels("dedup", UNIQUE).inc(5)  # nobody in this pipeline reads UNIQUE
    assert pipeline.drained(produced=5)
