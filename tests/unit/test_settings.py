"""Settings: the kernel's sections and the plug-ins' own (NEWSWIRE_<NAME>__<FIELD>)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from consumers.dedup.settings import DedupSettings
from consumers.store import StoreSettings
from consumers.store.sqlite import SqliteSettings
from newswire.errors import ConfigError
from newswire.settings import Settings, load_section


class ExampleSettings(BaseModel):
    words: list[str] = Field(default_factory=lambda: ["a"])
    limit: int = 3
    nested: dict[str, int] = Field(default_factory=dict)


def test_a_plug_in_section_loads_from_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_MY_PLUGIN__LIMIT", "7")
    monkeypatch.setenv("NEWSWIRE_MY_PLUGIN__WORDS", '["x", "y"]')
    loaded = load_section("my-plugin", ExampleSettings)
    assert loaded.limit == 7
    assert loaded.words == ["x", "y"]


def test_an_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_EXAMPLE__LIMIT", "many")
    with pytest.raises(ConfigError, match="NEWSWIRE_EXAMPLE__LIMIT"):
        load_section("example", ExampleSettings)


def test_built_in_sections_come_from_the_registered_plug_ins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSWIRE_STORE__URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("NEWSWIRE_DEDUP__MAX_ENTRIES", "12")
    monkeypatch.setenv("NEWSWIRE_SQLITE__SYNCHRONOUS", "normal")
    settings = Settings()
    assert isinstance(settings.store, StoreSettings)
    assert settings.store.url == "sqlite:///elsewhere.db"
    assert isinstance(settings.dedup, DedupSettings)
    assert settings.dedup.max_entries == 12
    assert isinstance(settings.sqlite, SqliteSettings)
    assert settings.sqlite.synchronous == "NORMAL"
    assert not hasattr(Settings(), "nonesuch")


def test_a_changed_section_stays_and_reaches_child_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEWSWIRE_STORE__URL", raising=False)
    settings = Settings()
    settings.store.url = "sqlite:///changed.db"  # what --store does
    assert settings.section("store").url == "sqlite:///changed.db"
    env = settings.environment()
    assert env["NEWSWIRE_STORE__URL"] == "sqlite:///changed.db"
    assert env["NEWSWIRE_KAFKA__BOOTSTRAP"] == settings.kafka.bootstrap
    monkeypatch.setattr("os.environ", {**env})
    assert Settings().store.url == "sqlite:///changed.db"


def test_a_section_is_one_model() -> None:
    settings = Settings()
    settings.section("example", ExampleSettings)
    with pytest.raises(ConfigError, match="not a StoreSettings"):
        settings.section("example", StoreSettings)
