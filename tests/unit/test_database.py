"""One database-URL parser and redactor for stores and dedup state."""

from __future__ import annotations

import pytest

from consumers.dedup.index import open_index
from newswire.database import parse_database_url, redact_url
from newswire.errors import ConfigError
from newswire.store import open_writer


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@h:5432/db", "postgres://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"]
)
def test_every_spelling_of_postgresql_is_one_scheme_and_libpq_gets_postgresql(url: str) -> None:
    parsed = parse_database_url(url)
    assert parsed.scheme == "postgresql"
    assert parsed.conninfo.startswith("postgresql://u:pw@h")
    assert "pw" not in parsed.redacted
    assert "pw" not in str(parsed)


def test_sqlite_urls_give_their_path() -> None:
    assert parse_database_url("sqlite:///rel/x.db").path == "rel/x.db"
    assert parse_database_url("sqlite:////abs/x.db").path == "/abs/x.db"
    with pytest.raises(ConfigError, match="sqlite:///relative/path"):
        parse_database_url("sqlite://x.db")


def test_a_path_without_a_scheme_says_what_to_write() -> None:
    with pytest.raises(
        ConfigError, match=r"has no scheme: for a SQLite file write sqlite:///foo\.db"
    ):
        parse_database_url("foo.db", what="store")


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://u:s3cret@db:5432/news", "postgresql://u:***@db:5432/news"),
        ("postgresql://u@db/news", "postgresql://u@db/news"),
        ("postgresql://db/news?user=u&password=s3cret", "postgresql://db/news?user=u&password=***"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("host=db user=u password=s3cret dbname=news", "host=db user=u password=*** dbname=news"),
    ],
)
def test_redact_hides_every_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_stores_and_dedup_state_refuse_a_bad_url_with_the_password_redacted() -> None:
    with pytest.raises(ConfigError) as store_error:
        open_writer("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(store_error.value)
    assert "no store for" in str(store_error.value)
    with pytest.raises(ConfigError) as state_error:
        open_index("mysql://u:s3cret@h/db", max_entries=10)
    assert "s3cret" not in str(state_error.value)


@pytest.mark.postgres
def test_dedup_state_takes_the_sqlalchemy_spelling_of_postgresql(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    index = open_index(url, max_entries=10)
    try:
        assert len(index) == 0
    finally:
        index.close()
