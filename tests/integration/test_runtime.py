"""The consumer runtime against the real broker: plug-ins, scale-out, failover,
graceful stop, retries, the DLQ and its replay, status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry

from newswire import Article, Consumer, EnrichedArticle, RetriableError
from newswire.dlq import read_dead_letters
from newswire.kafka import open_clients
from newswire.pipeline import Pipeline
from newswire.runner import Runner
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, SingleObjectSerde
from newswire.settings import Settings
from newswire.status import discover, snapshot
from newswire.topics import ENRICHED, UNIQUE
from tests.conftest import SEED
from tests.helpers import (
    assigned_partitions,
    producer_for,
    read_topic,
    records_in,
    seed_fields,
    wait_for,
    wait_for_split,
)

pytestmark = pytest.mark.integration

SERDE = SingleObjectSerde()


def article(n: int, title: str | None = None, excerpt: str | None = None) -> Article:
    fields = {
        **seed_fields(SEED),
        "title": title or f"Story {n}",
        "originalUrl": f"https://news.example.org/stories/{n}",
    }
    if excerpt is not None:
        fields["excerpt"] = excerpt
    return Article.model_validate(fields)


def send(settings: Settings, topic: str, items: list[Article]) -> None:
    producer = producer_for(settings)
    schema = ENRICHED_ARTICLE if topic == ENRICHED else ARTICLE
    for item in items:
        producer.produce(topic, SERDE.encode(schema, item.model_dump()), key=item.id.encode())
    assert producer.close() == []


@pytest.fixture
def pipeline(settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(settings, tmp_path / "work", stages={})
    yield running
    running.stop()


def test_plugin_from_the_example_package_runs_via_newswire_consume(
    settings: Settings, pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    # The plug-in's own settings section, NEWSWIRE_KEYWORDS__*, reaches its process.
    monkeypatch.setenv("NEWSWIRE_KEYWORDS__WORDS", '["facial recognition"]')
    monkeypatch.setenv("NEWSWIRE_KEYWORDS__OUT", str(alerts))
    pipeline.start()
    pipeline.processes.append(pipeline.spawn("keywords"))
    items = [article(1), article(2, "Markets close higher", excerpt="Stocks rose on Friday.")]
    send(settings, ENRICHED, [EnrichedArticle.model_validate(a.model_dump()) for a in items])

    wait_for(lambda: alerts.exists() and alerts.read_text(), timeout=60, what="an alert")
    pipeline.check_alive()
    (alert,) = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert alert["id"] == items[0].id
    assert alert["keywords"] == ["facial recognition"]


def _two_enrich_instances(pipeline: Pipeline, settings: Settings) -> list:  # type: ignore[type-arg]
    pipeline.start()
    pipeline.processes.extend([pipeline.spawn("enrich", 1), pipeline.spawn("enrich", 2)])
    wait_for_split(pipeline.processes, settings.kafka.partitions)
    return pipeline.processes


def test_two_instances_split_the_partitions_and_process_each_record_once(
    settings: Settings, pipeline: Pipeline
) -> None:
    first, second = _two_enrich_instances(pipeline, settings)
    items = [article(n) for n in range(300)]
    send(settings, UNIQUE, items)

    out = read_topic(settings, ENRICHED, expect=len(items), timeout=60)
    keys = [r.key for r in out]
    assert sorted(keys) == sorted(a.id.encode() for a in items)  # each exactly once
    # A record is counted once its offset is committed, after its output is flushed: the
    # output can be read before the counters move.
    wait_for(
        lambda: records_in(pipeline, first) + records_in(pipeline, second) >= len(items),
        timeout=30,
        what="both members' commits",
    )
    for stage in (first, second):
        assert records_in(pipeline, stage) > 0, (
            f"{stage.label} processed nothing; assignments: "
            f"{[assigned_partitions(p.log_path) for p in (first, second)]}"
        )


def test_sigkill_of_one_instance_the_other_takes_over_nothing_lost(
    settings: Settings, pipeline: Pipeline
) -> None:
    settings.kafka.max_poll_records = 20
    first, _second = _two_enrich_instances(pipeline, settings)
    items = [article(n) for n in range(600)]
    send(settings, UNIQUE, items)
    wait_for(
        lambda: first.port and pipeline.metrics().get(first.label, {}), timeout=30, what="metrics"
    )
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    pipeline.processes.remove(first)

    out = read_topic(settings, ENRICHED, expect=len(items), timeout=90)
    deadline_keys = {r.key for r in out}
    if len(deadline_keys) < len(items):  # redeliveries can fill the topic before the last keys
        out = read_topic(settings, ENRICHED, expect=len(out) + len(items), timeout=30)
    assert {r.key for r in out} == {a.id.encode() for a in items}


def test_sigterm_finishes_commits_and_leaves(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.start()
    stage = pipeline.spawn("enrich")
    items = [article(n) for n in range(200)]
    send(settings, UNIQUE, items)
    read_topic(settings, ENRICHED, expect=len(items), timeout=60)

    stage.process.send_signal(signal.SIGTERM)
    assert stage.process.wait(15) == 0
    assert "enrich: stopped" in stage.log_path.read_text()
    admin = open_clients(settings.kafka).admin()
    try:
        committed = admin.committed("newswire.enrich", [UNIQUE])
    finally:
        admin.close()
    assert sum(committed.values()) == len(items)


class Picky(Consumer):
    """A test consumer: flaky titles fail twice (retriable), poison ones until fixed."""

    name = "picky"
    topics = (UNIQUE,)
    fixed = False
    flaky_failures_left = 2
    seen: ClassVar[list[str]] = []

    def handle(self, article: Article) -> None:
        if article.title.startswith("flaky") and Picky.flaky_failures_left:
            Picky.flaky_failures_left -= 1
            raise RetriableError("the downstream service blinked")
        if article.title.startswith("poison") and not Picky.fixed:
            raise ValueError(f"cannot handle {article.title!r}")
        Picky.seen.append(article.title)


def test_retries_dead_letters_and_replay(settings: Settings) -> None:
    # Class state: reset, since the test runs once per Kafka client in one process.
    Picky.fixed, Picky.flaky_failures_left, Picky.seen = False, 2, []
    registry = CollectorRegistry()
    runner = Runner(Picky(), settings, registry=registry)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        send(
            settings,
            UNIQUE,
            [
                article(1, "ok one"),
                article(2, "flaky two"),
                article(3, "poison three"),
                article(4, "ok four"),
            ],
        )
        wait_for(
            lambda: {"ok one", "flaky two", "ok four"} <= set(Picky.seen),
            timeout=60,
            what="the good and the flaky records",
        )
        retries = registry.get_sample_value(
            "newswire_consumer_retries_total",
            {"consumer": "picky", "topic": UNIQUE, "error": "RetriableError"},
        )
        assert retries == 2
        assert "poison three" not in Picky.seen

        (letter,) = [letter for _, _, letter in read_dead_letters(settings.kafka)]
        assert (letter.stage, letter.error_class, letter.source_topic) == (
            "picky",
            "ValueError",
            UNIQUE,
        )
        assert "cannot handle 'poison three'" in letter.error_message
        assert letter.attempts == 1 and letter.first_failure

        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "newswire",
                "dlq",
                "list",
                "--bootstrap",
                settings.kafka.bootstrap,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert '"error_class": "ValueError"' in listed.stdout

        Picky.fixed = True  # the cause is fixed: replay
        replayed = subprocess.run(
            [
                sys.executable,
                "-m",
                "newswire",
                "dlq",
                "replay",
                "--bootstrap",
                settings.kafka.bootstrap,
                "--stage",
                "picky",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "replayed 1 record" in replayed.stdout
        wait_for(lambda: "poison three" in Picky.seen, timeout=60, what="the replayed record")
    finally:
        runner.stop()
        thread.join(20)
    assert not thread.is_alive()


def test_status_shows_groups_members_rates_and_lag(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.start()
    pipeline.processes.extend([pipeline.spawn("enrich", 1), pipeline.spawn("enrich", 2)])
    send(settings, UNIQUE, [article(n) for n in range(100)])
    read_topic(settings, ENRICHED, expect=100, timeout=60)
    # The output is flushed before the input is committed and counted; lag is set at most
    # once a second: wait for both before the snapshot.
    wait_for(
        lambda: sum(records_in(pipeline, stage) for stage in pipeline.processes) >= 100,
        timeout=30,
        what="the commits",
    )

    announced = wait_for(
        lambda: len(discover(settings.metrics)) == 2 and discover(settings.metrics),
        timeout=30,
        what="announcements",
    )
    (group,) = wait_for(
        lambda: [g for g in snapshot(announced, interval_s=0.5) if g.lag == 0],
        timeout=30,
        what="the group's lag to reach 0",
    )
    assert (group.group, group.members) == ("newswire.enrich", 2)
    assert group.records_in == 100
    result = subprocess.run(
        [sys.executable, "-m", "newswire", "status", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "NEWSWIRE_METRICS__RUNTIME_DIR": str(settings.metrics.runtime_dir)},
    )
    assert "newswire.enrich" in result.stdout
