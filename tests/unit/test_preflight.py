"""Store and dedup state checked before anything starts; fatal vs outage (real databases)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from consumers.dedup import DedupConsumer
from consumers.store import StoreConsumer
from consumers.store.postgres import PostgresStore
from newswire import Consumer, EnrichedArticle
from newswire.database import is_fatal
from newswire.errors import ConfigError, UnavailableError
from newswire.settings import Settings
from newswire.testing import run_consumer
from tests.conftest import POSTGRES_URL
from tests.unit.support import SEED, enriched

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server(path: str = "/test", user: str = "postgres") -> str:
    parts = urlsplit(POSTGRES_URL)
    return f"postgresql://{user}:s3cret@{parts.hostname}:{parts.port or 5432}{path}"


@pytest.fixture
def doomed_database() -> Iterator[str]:
    """A database that exists now; the test may drop it."""
    name = f"newswire_doomed_{_free_port()}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield _server(f"/{name}")
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _settings(**sections: dict[str, str]) -> Settings:
    settings = Settings()
    for name, values in sections.items():
        for field, value in values.items():
            setattr(settings.section(name), field, value)
    return settings


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (_server("/newswire_no_such_db"), 'database "newswire_no_such_db" does not exist'),
        (_server(user="newswire_no_such_role"), 'role "newswire_no_such_role" does not exist'),
    ],
)
def test_a_database_that_can_never_work_is_fatal_for_store_and_state(url: str, says: str) -> None:
    for consumer, section, field in (
        (StoreConsumer, "store", "url"),
        (DedupConsumer, "dedup", "state_url"),
    ):
        with pytest.raises(ConfigError, match=says) as caught:
            consumer.check(_settings(**{section: {field: url}}))
        assert "s3cret" not in str(caught.value)


def test_an_unreachable_database_is_an_outage_not_fatal() -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{_free_port()}/test"
    with pytest.raises(UnavailableError, match="is unavailable") as caught:
        StoreConsumer.check(_settings(store={"url": url}))
    assert "s3cret" not in str(caught.value)
    with pytest.raises(UnavailableError, match="is unavailable"):
        DedupConsumer.check(_settings(dedup={"state_url": url}))


def test_a_sqlite_path_that_cannot_be_a_database_is_fatal(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    url = f"sqlite:///{tmp_path / 'a-directory.db'}"
    with pytest.raises(ConfigError, match="unable to open database file"):
        StoreConsumer.check(_settings(store={"url": url}))
    with pytest.raises(ConfigError, match="unable to open database file"):
        DedupConsumer.check(_settings(dedup={"state_url": url}))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):  # a parent that is a file: NotADirectoryError
        StoreConsumer.check(_settings(store={"url": f"sqlite:///{tmp_path / 'file' / 'x.db'}"}))


def test_a_good_store_and_state_pass_the_check(tmp_path: Path, postgres_url: str) -> None:
    StoreConsumer.check(_settings(store={"url": postgres_url}))
    DedupConsumer.check(_settings(dedup={"state_url": f"sqlite:///{tmp_path / 's.sqlite'}"}))


def test_a_database_dropped_while_running_stops_the_stage_and_dead_letters_nothing(
    doomed_database: str, enricher: object
) -> None:
    store = PostgresStore(doomed_database, connect=False)
    record = enriched(enricher, SEED)  # type: ignore[arg-type]
    assert store.write([record], []) == (1, 0)
    store.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {urlsplit(doomed_database).path.lstrip('/')} WITH (FORCE)")
    with pytest.raises(ConfigError, match="does not exist"):
        store.write([record], [])  # reconnecting finds no database: not an outage


class _Misconfigured(Consumer):
    name = "misconfigured"
    topics = ("articles.enriched",)

    def handle(self, article: object) -> None:
        raise ConfigError("store x: authentication failed for user 'u'")


def test_the_runtime_stops_on_a_config_error_instead_of_dead_lettering() -> None:
    article = EnrichedArticle.model_validate({"title": "t", "originalUrl": "https://e.com/a"})
    with pytest.raises(ConfigError, match="authentication failed"):
        run_consumer(_Misconfigured(), [article, article])


@pytest.mark.parametrize(
    ("message", "fatal"),
    [
        ('FATAL:  database "x" does not exist', True),
        ('FATAL:  password authentication failed for user "u"', True),
        ("FATAL:  permission denied for database news", True),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1"', True),
        ("Connection refused\n\tIs the server running on that host", False),
        ("FATAL:  the database system is starting up", False),
        ("FATAL:  the database system is shutting down", False),
        ("FATAL:  sorry, too many clients already", False),
        ("timeout expired", False),
    ],
)
def test_what_is_fatal_and_what_is_an_outage(message: str, fatal: bool) -> None:
    assert is_fatal(psycopg.OperationalError(message)) is fatal


class _LateDependency(Consumer):
    """Its database is unreachable for the first two set-ups."""

    name = "late"
    topics = ("articles.enriched",)

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.seen: list[str] = []

    def setup(self) -> None:
        self.attempts += 1
        if self.attempts < 3:
            raise UnavailableError("db.example is unavailable: connection refused")

    def handle(self, article: object) -> None:
        self.seen.append(article.id)  # type: ignore[attr-defined]


def test_an_outage_at_set_up_is_waited_out_not_a_crash() -> None:
    article = EnrichedArticle.model_validate({"title": "t", "originalUrl": "https://e.com/a"})
    consumer = _LateDependency()
    result = run_consumer(consumer, [article])
    assert consumer.attempts == 3
    assert consumer.seen == [article.id]
    assert result.dead_letters == []
