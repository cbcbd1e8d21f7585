"""`newswire status` against real processes on two real brokers (issue 12 item 7): the
same consumer group on two clusters is two rows, each with its cluster, and
``--bootstrap`` keeps one; ``--targets`` writes both as Prometheus file_sd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from newswire.broker import EmbeddedBroker
from newswire.pipeline import Pipeline
from newswire.settings import Settings
from newswire.status import discover
from newswire.topics import ensure_topics
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def two_pipelines(settings: Settings, tmp_path: Path) -> Iterator[tuple[Pipeline, Pipeline]]:
    with EmbeddedBroker(log_path=tmp_path / "broker2.log") as other:
        second = settings.model_copy(deep=True)
        second.kafka.bootstrap = other.bootstrap
        ensure_topics(second.kafka)
        pipelines = (
            Pipeline(settings, tmp_path / "one", stages={"enrich": 1}),
            Pipeline(second, tmp_path / "two", stages={"enrich": 1}),
        )
        try:
            for p in pipelines:
                p.start()
            yield pipelines
        finally:
            for p in pipelines:
                p.stop()


def status(settings: Settings, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "newswire", "status", "--interval", "0.2", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "NEWSWIRE_METRICS__RUNTIME_DIR": str(settings.metrics.runtime_dir)},
    )
    return result.stdout


def test_status_keeps_clusters_apart_and_filters_by_bootstrap(
    settings: Settings, two_pipelines: tuple[Pipeline, Pipeline], tmp_path: Path
) -> None:
    one, two = (p.settings.kafka.bootstrap for p in two_pipelines)
    wait_for(lambda: len(discover(settings.metrics)) == 2, timeout=30, what="announcements")

    groups = json.loads(status(settings, "--json"))
    assert sorted((g["cluster"], g["group"], g["members"]) for g in groups) == sorted(
        [(one, "newswire.enrich", 1), (two, "newswire.enrich", 1)]
    )

    (only,) = json.loads(status(settings, "--json", "--bootstrap", two))
    assert (only["cluster"], only["members"]) == (two, 1)

    table = status(settings, "--bootstrap", one)
    assert one in table and two not in table

    targets = tmp_path / "targets.json"
    status(settings, "--targets", str(targets))
    found = json.loads(targets.read_text())
    assert sorted(t["labels"]["cluster"] for t in found) == sorted([one, two])
    assert {t["labels"]["job"] for t in found} == {"enrich"}
