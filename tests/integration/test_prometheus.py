"""The shipped dashboard and rules against a real Prometheus scraping a real run.

``newswire run`` follows a feed served on localhost (which grows on every poll)
and a feed that fails, while this test dead-letters a record and holds the
store's database locked for a few seconds. A real Prometheus (Debian's package)
finds the run's processes through the file ``newswire status --targets`` writes
and evaluates the shipped rules. Then, through its HTTP API, every query of
every dashboard panel must return data, every variable must have values, and
every recording rule must evaluate to data: a panel whose metric does not exist
fails. Run it alone with ``.venv/bin/python -m pytest tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from newswire.settings import MetricsSettings
from newswire.status import PRODUCER, Announced, discover, scrape, total
from newswire.topics import RAW
from tests.conftest import ARTICLES
from tests.helpers import wait_for
from tests.prometheus import (
    PROMETHEUS_DIR,
    Prometheus,
    dashboard,
    panel_queries,
    recording_rules,
    substitute,
    variables,
)

pytestmark = pytest.mark.integration

_VOCABULARY = (
    "harbour council budget vote river bridge storm school election court museum rail "
    "strike festival market energy price hospital report police football climate farm "
    "library tunnel airport minister union factory wildfire drought orchestra mayor"
)
WORDS = _VOCABULARY.split()


def rss(first: int, last: int) -> bytes:
    """An RSS 2.0 feed of items *first*..*last* (newest first), each its own story."""
    items = []
    for i in range(last, first - 1, -1):
        words = random.Random(i).sample(WORDS, 12)
        when = email.utils.formatdate(1_780_000_000 + i * 60, usegmt=True)
        items.append(
            f"<item><title>Story {i}: {' '.join(words[:5])}</title>"
            f"<link>https://local.example/news/story-{i}</link>"
            f"<guid>https://local.example/news/story-{i}</guid>"
            f"<description>{' '.join(words)} number {i}.</description>"
            f"<pubDate>{when}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Local news</title><link>https://local.example/</link>"
        "<description>test feed</description>" + "".join(items) + "</channel></rss>"
    ).encode()


class FeedServer:
    """``/news`` gains two stories on every poll; ``/broken`` always answers 500."""

    def __init__(self) -> None:
        self.polls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/news":
                    server.polls += 1
                    body = rss(max(0, 2 * server.polls - 20), 2 * server.polls + 2)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(500, "broken on purpose")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


def newswire(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newswire", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )


def dead_letter_one(bootstrap: str) -> None:
    """Bytes no serde can read, on articles.raw: dedup sends them to the DLQ."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(RAW, b"not an avro record", key=b"garbage").get(timeout=30)
    finally:
        producer.close()


def lock_store(path: Path, store: Announced) -> None:
    """Hold the store's SQLite file locked until the store stage has retried a batch
    (it waits the lock out as an outage), and a little longer."""
    wait_for(path.exists, timeout=60, what=f"the store {path}")
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        wait_for(
            lambda: total(scrape(store.metrics_url), "newswire_consumer_retries_total") > 0,
            timeout=60,
            what="the store stage retrying a batch while its database is locked",
        )
        time.sleep(2)
        db.execute("COMMIT")
    finally:
        db.close()


def test_every_panel_query_and_recording_rule_has_data_from_a_real_run(
    tmp_path: Path, feeds: FeedServer
) -> None:
    runtime = tmp_path / "runtime"
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    store = tmp_path / "store.db"
    env = {
        **os.environ,
        "NEWSWIRE_METRICS__RUNTIME_DIR": str(runtime),
        # A held lock is an outage after 0.2 s rather than 30 s.
        "NEWSWIRE_SQLITE__BUSY_TIMEOUT_S": "0.2",
    }
    # The scrape job of the shipped deploy/prometheus/local.yml (README: "a local run"),
    # reading the targets file of this test, re-read every second.
    (scrape,) = yaml.safe_load((PROMETHEUS_DIR / "local.yml").read_text())["scrape_configs"]
    (file_sd,) = scrape["file_sd_configs"]
    assert file_sd["files"] == ["targets.json"]
    file_sd.update(files=[str(targets)], refresh_interval="1s")
    out_path = tmp_path / "run.out"
    with (
        Prometheus(tmp_path / "prometheus", [scrape]) as prometheus,
        out_path.open("w") as out,
    ):
        run = subprocess.Popen(
            [
                *(sys.executable, "-m", "newswire", "run", str(ARTICLES)),
                *("--follow", feeds.url("/news"), "--follow", feeds.url("/broken")),
                *("--every", "1s", "--state", str(tmp_path / "feeds.sqlite")),
                *("--store", f"sqlite:///{store}", "--workdir", str(tmp_path / "work")),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        try:
            settings = MetricsSettings(runtime_dir=runtime)
            announced: list[Announced] = wait_for(
                lambda: (found := discover(settings)) and len(found) == 4 and found,
                timeout=90,
                what="the producer and three stages announcing their /metrics",
            )
            # `run` prints each process's /metrics URL, the producer's too.
            printed = wait_for(
                lambda: (
                    all(p.metrics_url in out_path.read_text() for p in announced)
                    and out_path.read_text()
                ),
                timeout=30,
                what="the printed /metrics URLs",
            )
            (producer,) = [p for p in announced if p.role == PRODUCER]
            assert re.search(rf"producer\s+{re.escape(producer.metrics_url)}", printed)

            newswire("status", "--targets", str(targets), env=env)
            wait_for(
                lambda: (
                    sorted(
                        t["labels"]["job"]
                        for t in prometheus.api("targets")["activeTargets"]
                        if t["health"] == "up"
                    )
                    == ["dedup", "enrich", "producer", "store"]
                ),
                timeout=30,
                what="Prometheus scraping the four processes",
            )
            start = time.time() - 1
            dead_letter_one(producer.bootstrap)
            (store_stage,) = [p for p in announced if p.consumer == "store"]
            lock_store(store, store_stage)

            board = dashboard()
            queries = {
                f"panel {title!r} query {ref}: {expr}": substitute(expr)
                for title, ref, expr in panel_queries(board)
            }
            queries.update(
                {f"recording rule {r['record']}": r["record"] for r in recording_rules()}
            )
            pending = dict(queries)

            def all_have_data() -> bool:
                for what, expr in list(pending.items()):
                    if prometheus.has_data(expr, start, time.time()):
                        del pending[what]
                return not pending

            try:
                wait_for(all_have_data, timeout=90, every=2, what="data for every query")
            except AssertionError:
                raise AssertionError(
                    "no data from Prometheus for:\n  " + "\n  ".join(pending)
                ) from None

            # Every variable of the dashboard has values to choose from.
            for name, var in variables(board).items():
                if var["type"] != "query":
                    continue
                metric, label = re.fullmatch(
                    r"label_values\((.*),\s*(\w+)\)", var["definition"]
                ).groups()
                values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
                assert values, f"variable {name}: no values for {var['definition']}"

            # Every rule evaluates without error; the failing feed's alert is on its way.
            rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
            assert len(rules) == len(recording_rules()) + sum(
                1 for r in rules if r["type"] == "alerting"
            )
            broken = [r for r in rules if r["health"] != "ok"]
            assert not broken, broken
            # The failing feed is retried with backoff (1 s, 2 s, 4 s, ...): its third
            # failure in a row, and so the pending alert, may come after the queries above.
            wait_for(
                lambda: any(
                    a["labels"]["alertname"] == "NewswireFeedFailing"
                    and a["labels"]["feed"] == feeds.url("/broken")
                    and a["state"] in ("pending", "firing")
                    for a in prometheus.api("alerts")["alerts"]
                ),
                timeout=60,
                every=1,
                what="the NewswireFeedFailing alert for the broken feed",
            )
        finally:
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait(10)
