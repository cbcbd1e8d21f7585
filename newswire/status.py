"""What ``newswire status`` and ``newswire top`` show: per consumer group, live numbers.

Every ``newswire consume`` process (and every producer that serves ``/metrics``:
``newswire run``, ``newswire produce --follow``) announces itself — pid, role,
name, group, cluster (bootstrap) and ``/metrics`` URL — in a small JSON file in
the runtime directory and removes it on exit (a killed process's file is pruned
by the next reader). Status reads those files, scrapes each consumer's
``/metrics`` twice and derives rates per cluster and group: two pipelines on two
brokers are two clusters, even when their groups share a name. Lag is the
processes' own ``newswire_consumer_lag`` (high watermark of their last fetch
minus position), which is right on Apache Kafka and on Tansu. Each partition's
lag counts once per group: a member drops a partition's series when it loses it,
and should two members still report one (scraped mid-rebalance, or an older
version), the most recently started member's figure is taken — the one that
took the partition over.

:func:`file_sd` turns the announcements into Prometheus ``file_sd_configs``
targets, so a local Prometheus can scrape a local run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from newswire.settings import MetricsSettings

__all__ = [
    "Announced",
    "GroupStatus",
    "announce",
    "discover",
    "file_sd",
    "normalize_bootstrap",
    "on_cluster",
    "runtime_dir",
    "snapshot",
]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def runtime_dir(settings: MetricsSettings) -> Path:
    """The directory of announcements."""
    return settings.runtime_dir or Path(tempfile.gettempdir()) / f"newswire-{os.getuid()}"


CONSUMER = "consumer"
PRODUCER = "producer"


@dataclass(frozen=True)
class Announced:
    """One running newswire process that serves ``/metrics``.

    ``consumer`` is the consumer's name (``dedup``) or, for ``role="producer"``,
    the producer's; ``group`` is empty for a producer.
    """

    pid: int
    consumer: str
    group: str
    metrics_url: str
    bootstrap: str
    started: float
    role: str = CONSUMER  # files written before roles existed are consumers

    @property
    def cluster(self) -> str:
        """The bootstrap, normalised: the same cluster however its addresses were listed."""
        return normalize_bootstrap(self.bootstrap)


def normalize_bootstrap(bootstrap: str) -> str:
    """``"B:9092, a:9092"`` → ``"a:9092,b:9092"``: sorted, lower-case, no blanks."""
    return ",".join(sorted({a.strip().lower() for a in bootstrap.split(",") if a.strip()}))


def on_cluster(process: Announced, bootstrap: str | None) -> bool:
    """Whether *process* talks to the cluster *bootstrap* names (any shared address).

    ``None`` or ``""`` matches every process.
    """
    if not bootstrap:
        return True
    wanted = set(normalize_bootstrap(bootstrap).split(","))
    return bool(wanted & set(process.cluster.split(",")))


def announce(
    settings: MetricsSettings,
    *,
    consumer: str,
    group: str,
    port: int,
    bootstrap: str,
    role: str = CONSUMER,
) -> Path:
    """Write this process's announcement; it is removed at exit."""
    directory = runtime_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    me = Announced(
        os.getpid(),
        consumer,
        group,
        f"http://{host}:{port}/metrics",
        bootstrap,
        time.time(),
        role,
    )
    path = directory / f"{me.pid}.json"
    path.write_text(json.dumps(asdict(me)))
    atexit.register(lambda: path.unlink(missing_ok=True))
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discover(settings: MetricsSettings) -> list[Announced]:
    """The announced processes that are still alive (stale files are removed)."""
    found = []
    directory = runtime_dir(settings)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            me = Announced(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(me.pid):
            found.append(me)
        else:
            path.unlink(missing_ok=True)
    return found


def file_sd(processes: Iterable[Announced]) -> list[dict[str, object]]:
    """Prometheus ``file_sd_configs`` target groups, one per process.

    ``job`` is the stage (``dedup``, ``store``, ``producer``: what the shipped
    rules and the dashboard group by, as in docker-compose); ``cluster`` is the
    bootstrap. The target labels avoid ``consumer``/``producer``/``topic``: the
    series carry those themselves, and a clash would rename them ``exported_*``.
    """
    groups: list[dict[str, object]] = []
    for p in processes:
        url = urllib.parse.urlsplit(p.metrics_url)
        labels = {"job": p.consumer, "role": p.role, "cluster": p.cluster}
        if p.group:
            labels["group"] = p.group
        if url.path and url.path != "/metrics":
            labels["__metrics_path__"] = url.path
        groups.append({"targets": [url.netloc], "labels": labels})
    return groups


def scrape(url: str, timeout: float = 2.0) -> Samples:
    """One process's samples: ``{(name, sorted labels): value}``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called *name* whose labels include *labels*."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@dataclass
class GroupStatus:
    """One consumer group on one cluster, summed over its live members."""

    consumer: str
    group: str
    cluster: str
    members: int
    in_per_s: float
    out_per_s: float
    records_in: float
    lag: float
    dlq: float
    unavailable: bool


def snapshot(processes: Iterable[Announced], interval_s: float = 1.0) -> list[GroupStatus]:
    """Scrape every consumer twice, *interval_s* apart, and summarise per cluster and group.

    Producers among *processes* are left out (they belong to no group).
    """
    processes = [p for p in processes if p.role == CONSUMER]
    before = {p.pid: _try_scrape(p.metrics_url) for p in processes}
    start = time.monotonic()
    time.sleep(interval_s)
    after = {p.pid: _try_scrape(p.metrics_url) for p in processes}
    elapsed = max(time.monotonic() - start, 1e-6)
    groups: dict[tuple[str, str], GroupStatus] = {}
    #: Per group, each partition's lag: (started, pid, lag) of the member reporting it.
    lags: dict[tuple[str, str], dict[tuple[str, str], tuple[float, int, float]]] = {}
    for p in processes:
        first, last = before[p.pid], after[p.pid]
        status = groups.setdefault(
            (p.cluster, p.group),
            GroupStatus(p.consumer, p.group, p.cluster, 0, 0.0, 0.0, 0.0, 0.0, 0.0, False),
        )
        status.members += 1
        if last is None:
            continue
        records_in = total(last, "newswire_consumer_records_in_total")
        out = total(last, "newswire_consumer_records_out_total")
        if first is not None:
            status.in_per_s += (
                records_in - total(first, "newswire_consumer_records_in_total")
            ) / elapsed
            status.out_per_s += (
                out - total(first, "newswire_consumer_records_out_total")
            ) / elapsed
        status.records_in += records_in
        partitions = lags.setdefault((p.cluster, p.group), {})
        for (name, labels), value in last.items():
            if name != "newswire_consumer_lag":
                continue
            label = dict(labels)
            key = (label.get("topic", ""), label.get("partition", ""))
            mine = (p.started, p.pid, value)
            if key not in partitions or mine > partitions[key]:
                partitions[key] = mine
        status.dlq += total(last, "newswire_consumer_dlq_total")
        status.unavailable |= total(last, "newswire_consumer_unavailable") > 0
    for key, partitions in lags.items():
        groups[key].lag = sum(lag for _, _, lag in partitions.values())
    return sorted(groups.values(), key=lambda g: (g.cluster, g.group))


def _try_scrape(url: str) -> Samples | None:
    with contextlib.suppress(OSError, ValueError):
        return scrape(url)
    return None
