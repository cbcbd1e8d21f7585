"""``newswire schemas register`` and ``schemas check --registry`` (against an HTTP registry)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from newswire.cli.app import app
from newswire.cli.common import EXIT_FAILED
from tests.unit.registry_http import Registry, serving

cli = CliRunner()


@pytest.fixture
def registry() -> Iterator[Registry]:
    with serving() as server:
        yield server


def subjects(registry: Registry, prefix: str) -> list[tuple[str, str]]:
    """(subject, record name) of each request whose path starts with *prefix*."""
    found = []
    for _method, path, _auth, body in registry.requests:
        if path.startswith(prefix):
            name = path[len(prefix) :].split("/")[0]
            found.append((name, json.loads(body["schema"])["name"]))
    return found


def test_register_puts_each_schema_under_the_subjects_of_its_topics(registry: Registry) -> None:
    result = cli.invoke(app, ["schemas", "register", "--registry", registry.url])
    assert result.exit_code == 0, result.output
    assert subjects(registry, "/subjects/") == [
        ("articles.raw-value", "newswire.Article"),
        ("articles.unique-value", "newswire.Article"),
        ("articles.duplicates-value", "newswire.Sighting"),
        ("articles.enriched-value", "newswire.EnrichedArticle"),
    ]
    assert "77" in result.output  # the id the registry gave


def test_register_takes_topics_and_credentials_from_options_and_env(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.user_info = "ops:pw"
    monkeypatch.setenv("NEWSWIRE_SERDE__REGISTRY_URL", registry.url)
    monkeypatch.setenv("NEWSWIRE_SERDE__REGISTRY_AUTH", "ops:pw")
    result = cli.invoke(app, ["schemas", "register", "--topic", "news.scored=newswire.Article"])
    assert result.exit_code == 0, result.output
    assert subjects(registry, "/subjects/") == [("news.scored-value", "newswire.Article")]


def test_register_without_a_registry_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEWSWIRE_SERDE__REGISTRY_URL", raising=False)
    result = cli.invoke(app, ["schemas", "register"])
    assert result.exit_code == EXIT_FAILED
    assert "--registry" in result.output


def test_a_refused_registration_fails_naming_the_subject(registry: Registry) -> None:
    registry.register_status = 409
    result = cli.invoke(app, ["schemas", "register", "--registry", registry.url])
    assert result.exit_code == EXIT_FAILED
    assert "articles.raw-value" in result.output and "incompatible" in result.output


@pytest.mark.parametrize(
    ("answer", "status", "says"),
    [(True, 0, "compatible"), (False, EXIT_FAILED, "incompatible"), (None, 0, "new subject")],
)
def test_check_with_a_registry_asks_its_compatibility_endpoint(
    registry: Registry, answer: bool | None, status: int, says: str
) -> None:
    registry.compatible = answer
    result = cli.invoke(app, ["schemas", "check", "--registry", registry.url])
    assert result.exit_code == status, result.output
    assert says in result.output
    assert len(subjects(registry, "/compatibility/subjects/")) == 4


def test_check_without_a_registry_asks_nobody(registry: Registry) -> None:
    result = cli.invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert registry.requests == []


def test_a_malformed_topic_option_is_refused(registry: Registry) -> None:
    result = cli.invoke(app, ["schemas", "register", "--registry", registry.url, "--topic", "x"])
    assert result.exit_code == EXIT_FAILED
    assert "TOPIC=RECORD" in result.output
