"""PostgresStore without a server: URLs, connection defaults, and how errors are sorted."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg

from consumers.store.postgres import PostgresStore
from newswire.errors import ConfigError, StoreError, UnavailableError
from newswire.settings import Settings
from newswire.store import open_writer


def lazy(url: str = "postgresql://u:s3cret@db.example:5433/news", **kw: object) -> PostgresStore:
    return PostgresStore(url, connect=False, **kw)  # type: ignore[arg-type]


def test_the_url_is_redacted_and_libpq_gets_safe_defaults() -> None:
    store = lazy()
    assert store.url == "postgresql://u:***@db.example:5433/news"
    params = store._params
    assert (params["host"], params["port"], params["dbname"]) == ("db.example", "5433", "news")
    assert params["password"] == "s3cret"
    assert params["connect_timeout"] == "5"
    assert params["application_name"] == "newswire"
    assert params["keepalives"] == "1"
    assert params["tcp_user_timeout"] == "30000"


def test_what_the_url_says_wins_over_the_defaults() -> None:
    store = lazy(
        "postgresql://u@h/db?connect_timeout=9&application_name=mine&keepalives_idle=60",
        connect_timeout_s=1,
    )
    assert store._params["connect_timeout"] == "9"
    assert store._params["application_name"] == "mine"
    assert store._params["keepalives_idle"] == "60"
    assert lazy("postgresql://u@h/db", connect_timeout_s=0.5)._params["connect_timeout"] == "2"


def test_open_store_picks_postgres_for_its_schemes() -> None:
    settings = Settings()
    settings.postgresql.connect_timeout_s = 7
    settings.postgresql.statement_timeout_ms = 1000
    settings.postgresql.application_name = "x"
    for url in ("postgresql://h/db", "postgres://h/db", "postgresql+psycopg://h/db"):
        store = open_writer(url, settings, connect=False)
        assert isinstance(store, PostgresStore)
        assert store._params["connect_timeout"] == "7"
        assert store._params["application_name"] == "x"
        assert store.statement_timeout_ms == 1000
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        PostgresStore("postgresql://h/db?nonsense_option=1", connect=False)


@pytest.mark.parametrize(
    ("error", "kind", "retriable"),
    [
        # The value is refused: the record's fault.
        (
            psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
            StoreError,
            False,
        ),
        (pg.CharacterNotInRepertoire("invalid byte sequence"), StoreError, False),
        (pg.CheckViolation("violates check constraint"), StoreError, False),
        (pg.ProgramLimitExceeded("string is too long for tsvector"), StoreError, False),
        (pg.NumericValueOutOfRange("integer out of range"), StoreError, False),
        (pg.CardinalityViolation("cannot affect row a second time"), StoreError, False),
        (UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"), StoreError, False),
        # Contention: worth a few more tries.
        (pg.DeadlockDetected("deadlock detected"), StoreError, True),
        (pg.SerializationFailure("could not serialize"), StoreError, True),
        # The database is away or unusable: an outage.
        (
            psycopg.OperationalError("server closed the connection unexpectedly"),
            UnavailableError,
            True,
        ),
        (
            pg.AdminShutdown("terminating connection due to administrator command"),
            UnavailableError,
            True,
        ),
        (pg.CannotConnectNow("the database system is starting up"), UnavailableError, True),
        (pg.TooManyConnections("too many clients already"), UnavailableError, True),
        (pg.QueryCanceled("canceling statement due to statement timeout"), UnavailableError, True),
        (pg.DiskFull("could not extend file"), UnavailableError, True),
        (pg.UndefinedTable('relation "articles" does not exist'), UnavailableError, True),
        (psycopg.InterfaceError("the connection is closed"), UnavailableError, True),
    ],
)
def test_errors_are_sorted_by_whose_fault_they_are(
    error: BaseException, kind: type[Exception], retriable: bool
) -> None:
    found = lazy()._error(error, "writing article id=abc")
    assert type(found) is kind
    assert found.retriable is retriable
    assert "writing article id=abc" in str(found)
    assert "s3cret" not in str(found)


def test_an_unreachable_server_is_an_outage() -> None:
    import socket

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = lazy(f"postgresql://postgres@127.0.0.1:{port}/test")
    with pytest.raises(UnavailableError, match="is unavailable"):
        store.connect()
    with pytest.raises(UnavailableError):
        store.write([], [{"url": "u", "duplicate_of": "d", "reason": "url"}])
    store.close()
