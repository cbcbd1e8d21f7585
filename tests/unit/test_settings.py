"""Settings: the kernel's sections and the plug-ins' own (NEWSWIRE_<NAME>__<FIELD>)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from consumers.dedup.settings import DedupSettings
from consumers.store import StoreSettings
from consumers.store.sqlite import SqliteSettings
from newswire.errors import ConfigError
from newswire.settings import Settings, load_section, unknown_variables


@contextlib.contextmanager
def caplog_at_warning() -> Iterator[list[logging.LogRecord]]:
    """The records logged under newswire.settings meanwhile."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("newswire.settings")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


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


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    environ = {
        "NEWSWIRE_KAFKA__BOOTSRAP": "x",  # a typo in a kernel field
        "NEWSWIRE_STOER__URL": "x",  # a typo in a plug-in's section
        "NEWSWIRE_KEYWORDS__WORD": "x",  # a typo in a third-party plug-in's field
        "NEWSWIRE_STORE__SQLITE_SYNCHRONOUS": "x",  # an old name
        "NEWSWIRE_QQQQ": "x",  # nothing like any setting
        "NEWSWIRE_KAFKA__BOOTSTRAP": "ok",
        "NEWSWIRE_DEDUP__NEAR": "ok",
        "NEWSWIRE_KEYWORDS__WORDS": "ok",
        "NEWSWIRE_LOG_LEVEL": "ok",
        "NEWSWIRE_BENCH_POSTGRES": "ok",  # read by the benchmarks, not a setting
        "PATH": "ok",
    }
    assert dict(unknown_variables(environ)) == {
        "NEWSWIRE_KAFKA__BOOTSRAP": "NEWSWIRE_KAFKA__BOOTSTRAP",
        "NEWSWIRE_STOER__URL": "NEWSWIRE_STORE__URL",
        "NEWSWIRE_KEYWORDS__WORD": "NEWSWIRE_KEYWORDS__WORDS",
        "NEWSWIRE_STORE__SQLITE_SYNCHRONOUS": "NEWSWIRE_SQLITE__SYNCHRONOUS",
        "NEWSWIRE_QQQQ": None,
    }


def test_the_cli_warns_once_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from newswire.cli import common
    from newswire.cli.app import app

    monkeypatch.setattr(common, "_warned", False)
    monkeypatch.setenv("NEWSWIRE_STOER__URL", "sqlite:///x.db")
    store = f"sqlite:///{tmp_path / 'absent.db'}"
    with caplog_at_warning() as records:
        CliRunner().invoke(app, ["articles", "list", "--store", store])
        CliRunner().invoke(app, ["articles", "list", "--store", store])
    warnings = [r.getMessage() for r in records if "NEWSWIRE_STOER__URL" in r.getMessage()]
    assert warnings == [
        "NEWSWIRE_STOER__URL is not a newswire setting and is ignored; "
        "did you mean NEWSWIRE_STORE__URL?"
    ]


def test_a_source_gets_its_own_settings_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newswire.cli.produce import build_sources
    from producers.jsonl import JsonLinesSource

    monkeypatch.setattr(JsonLinesSource, "settings_model", ExampleSettings)
    monkeypatch.setenv("NEWSWIRE_JSONL__LIMIT", "5")
    path = tmp_path / "in.jsonl"
    path.write_text("{}\n")
    (source,) = build_sources([str(path)], Settings(), fmt="jsonl")
    assert isinstance(source.config, ExampleSettings)
    assert source.config.limit == 5


def test_every_variable_the_shipped_files_set_is_a_setting() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    text = "".join((root / name).read_text() for name in ("docker-compose.yml", "Dockerfile"))
    names = set(re.findall(r"NEWSWIRE_[A-Z0-9_]+", text))
    assert names, "the compose file sets newswire's settings"
    assert unknown_variables(dict.fromkeys(names, "x")) == []
