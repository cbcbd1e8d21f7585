"""The CLI's shared conventions that need no broker: --help states the exit statuses, the
run's exit status, the console width when piped, the one JSON shape of a dead letter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from newswire.cli.app import app
from newswire.cli.common import EXIT_STATUS_HELP, LIBRARY_LOG, PIPED_WIDTH
from newswire.cli.dlq import letter_record
from newswire.cli.run import _exit_status
from newswire.dlq import DeadLetter


def _commands(typer_app: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [(*prefix, c.name or c.callback.__name__) for c in typer_app.registered_commands]
    for group in typer_app.registered_groups:
        assert group.name and group.typer_instance
        found += _commands(group.typer_instance, (*prefix, group.name))
    return found


def test_every_command_states_the_exit_statuses_in_its_help() -> None:
    commands = _commands(app)
    assert len(commands) >= 15
    assert ("dlq", "dlq_list") in commands or ("dlq", "list") in commands
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
        assert result.exit_code == 0, (command, result.output)
        assert EXIT_STATUS_HELP in " ".join(result.output.split()), command


@pytest.mark.parametrize(
    ("rejected", "failed", "dead", "status"),
    [(0, 0, 0, 0), (2, 0, 0, 1), (0, 0, 1, 1), (2, 0, 1, 1), (0, 1, 0, 3), (2, 1, 1, 3)],
)
def test_the_run_exit_status(rejected: int, failed: int, dead: int, status: int) -> None:
    assert _exit_status(rejected, failed, dead) == status


def _width(env: dict[str, str]) -> int:
    code = "from newswire.cli.common import out; print(out.width)"
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**environ, **env},
    )
    return int(result.stdout)


def test_piped_stdout_is_not_squeezed_to_80_columns() -> None:
    assert _width({}) == PIPED_WIDTH  # stdout is a pipe here
    assert _width({"COLUMNS": "123"}) == 123  # an explicit width still wins


def test_a_dead_letter_has_one_json_shape() -> None:
    letter = DeadLetter(
        stage="store",
        error_class="DataError",
        error_message="NUL (0x00) in text",
        source_topic="articles.enriched",
        source_partition=1,
        source_offset=7,
        attempts=1,
        first_failure="2026-12-01T10:00:00+00:00",
        key=b"k",
        value=b"\x00\x01",
    )
    listed = letter_record(0, 3, letter)
    saved = letter_record(0, 3, letter, payload=True)
    assert {k: v for k, v in saved.items() if k not in ("key", "value")} == listed
    assert (saved["key"], saved["value"]) == ("aw==", "AAE=")
    assert listed["dlq_offset"] == 3 and listed["bytes"] == 2
    json.dumps(saved)


_LOG_SCRIPT = """
import logging, sys
from newswire.cli.common import load_settings
load_settings(stage=sys.argv[1] == "stage")
logging.getLogger("newswire.runner").warning("own line")
try:
    None.recv(4096)
except AttributeError:
    logging.getLogger("kafka.net.transport").exception("Error receiving network data")
logging.getLogger("kafka.net.selector").warning("Task <x> ran for 0.301s (>0.250s threshold)")
logging.getLogger("newswire.runner").debug("debug line")
"""


def _logged(tmp_path: Path, mode: str, level: str = "INFO") -> tuple[str, str]:
    runtime = tmp_path / mode
    result = subprocess.run(
        [sys.executable, "-c", _LOG_SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "NEWSWIRE_METRICS__RUNTIME_DIR": str(runtime),
            "NEWSWIRE_LOG_LEVEL": level,
        },
    )
    library = runtime / LIBRARY_LOG
    return result.stderr, library.read_text() if library.exists() else ""


def test_library_chatter_goes_to_a_log_file_not_the_console(tmp_path: Path) -> None:
    console, library = _logged(tmp_path, "command")
    assert "own line" in console
    assert "recv" not in console and "ran for" not in console and "Traceback" not in console
    assert "AttributeError: 'NoneType' object has no attribute 'recv'" in library
    assert "ran for 0.301s" in library
    assert "own line" not in library
    assert "debug line" not in console  # INFO


def test_a_stage_logs_everything_to_stderr_its_log(tmp_path: Path) -> None:
    console, library = _logged(tmp_path, "stage", level="DEBUG")
    assert "own line" in console and "debug line" in console
    assert "'NoneType' object has no attribute 'recv'" in console and "ran for" in console
    assert library == ""
