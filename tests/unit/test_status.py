"""`newswire status` logic: clusters kept apart, the --bootstrap filter, file_sd targets.

The processes' /metrics are real prometheus-client HTTP servers on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from newswire.metrics import ConsumerMetrics
from newswire.settings import MetricsSettings
from newswire.status import (
    PRODUCER,
    Announced,
    announce,
    discover,
    file_sd,
    normalize_bootstrap,
    on_cluster,
    snapshot,
)


@pytest.fixture
def serve() -> Iterator[object]:
    servers = []

    def start(records_in: int, lag: int = 0, partitions: dict[int, int] | None = None) -> str:
        registry = CollectorRegistry()
        metrics = ConsumerMetrics.create(registry)
        metrics.records_in.labels("enrich", "articles.unique").inc(records_in)
        for partition, value in (partitions or {0: lag}).items():
            metrics.lag.labels("enrich", "articles.unique", str(partition)).set(value)
        server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/metrics"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def member(
    pid: int, url: str, bootstrap: str, role: str = "consumer", started: float = 0.0
) -> Announced:
    return Announced(pid, "enrich", "newswire.enrich", url, bootstrap, started, role)


def test_two_clusters_with_the_same_group_are_two_rows(serve) -> None:
    processes = [
        member(101, serve(10, lag=3), "127.0.0.1:9092"),
        # the same cluster, its address written another way: one group, two members
        member(102, serve(20, partitions={1: 4}), " 127.0.0.1:9092 "),
        member(201, serve(5), "127.0.0.1:9192"),
    ]
    groups = snapshot(processes, interval_s=0.05)
    rows = {(g.cluster, g.group): (g.members, g.records_in, g.lag) for g in groups}
    assert rows == {
        ("127.0.0.1:9092", "newswire.enrich"): (2, 30.0, 7.0),
        ("127.0.0.1:9192", "newswire.enrich"): (1, 5.0, 0.0),
    }


def test_a_partition_reported_by_two_members_counts_once_from_its_newest_owner(serve) -> None:
    # The old owner still exports partition 5 (scraped mid-rebalance, or a version that
    # kept series of revoked partitions: issue 12 item 6); the member that joined later
    # took it over and reports its own, current figure.
    old = member(101, serve(10, partitions={4: 2, 5: 1164}), "b:9092", started=100.0)
    new = member(102, serve(20, partitions={5: 0, 6: 3}), "b:9092", started=200.0)
    for processes in ([old, new], [new, old]):  # whatever the scrape order
        (group,) = snapshot(processes, interval_s=0.01)
        assert (group.members, group.lag) == (2, 2.0 + 0.0 + 3.0)


def test_producers_are_not_consumer_group_members(serve) -> None:
    processes = [
        member(101, serve(10), "b:9092"),
        Announced(102, "producer", "", serve(0), "b:9092", 0.0, PRODUCER),
    ]
    (group,) = snapshot(processes, interval_s=0.05)
    assert group.members == 1


def test_cluster_filter_matches_any_shared_address() -> None:
    one = member(1, "http://127.0.0.1:1/metrics", "k1:9092,K2:9092")
    assert one.cluster == "k1:9092,k2:9092"
    assert on_cluster(one, "k2:9092")
    assert on_cluster(one, "k2:9092,k3:9092")
    assert not on_cluster(one, "k3:9092")
    assert on_cluster(one, None) and on_cluster(one, "")
    assert normalize_bootstrap("b:1, a:1 ,a:1") == "a:1,b:1"


def test_file_sd_targets_name_job_role_and_cluster() -> None:
    processes = [
        member(1, "http://127.0.0.1:4001/metrics", "k:9092"),
        Announced(2, "producer", "", "http://127.0.0.1:4002/metrics", "k:9092", 0.0, PRODUCER),
    ]
    assert file_sd(processes) == [
        {
            "targets": ["127.0.0.1:4001"],
            "labels": {
                "job": "enrich",
                "role": "consumer",
                "cluster": "k:9092",
                "group": "newswire.enrich",
            },
        },
        {
            "targets": ["127.0.0.1:4002"],
            "labels": {"job": "producer", "role": "producer", "cluster": "k:9092"},
        },
    ]
    # No label a series carries itself (it would be renamed exported_*).
    for group in file_sd(processes):
        assert not {"consumer", "producer", "topic", "partition"} & set(group["labels"])


def test_announcements_round_trip_and_old_files_are_consumers(tmp_path: Path) -> None:
    settings = MetricsSettings(runtime_dir=tmp_path, host="0.0.0.0")
    path = announce(
        settings, consumer="producer", group="", port=4242, bootstrap="k:1", role=PRODUCER
    )
    (found,) = discover(settings)
    assert (found.role, found.metrics_url) == (PRODUCER, "http://127.0.0.1:4242/metrics")
    # An announcement written before roles existed still reads, as a consumer.
    old = json.loads(path.read_text())
    del old["role"]
    path.write_text(json.dumps(old))
    (found,) = discover(settings)
    assert found.role == "consumer"
    path.unlink()
