"""An unreachable broker: every command says so in one line, names the address and the
cause, exits 3, within the configured time, and shows no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newswire.broker import free_port
from tests.conftest import KAFKA_CLIENTS

COMMANDS = {
    "dlq list": ["dlq", "list"],
    "dlq replay": ["dlq", "replay"],
    "consume": ["consume", "enrich"],
    "produce": ["produce", "{docs}", "--no-progress"],
    "topics create": ["topics", "create"],
    "run": ["run", "{docs}", "--store", "sqlite:///{tmp}/store.db"],
}


def newswire(
    args: list[str], tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "newswire", *args],
        cwd=tmp_path,
        env={**os.environ, "NEWSWIRE_METRICS__PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_reports_an_unreachable_broker_in_one_line_and_exits_3(
    command: str, tmp_path: Path
) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"title": "t", "originalUrl": "https://example.org/a"}\n')
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    args = [a.format(docs=docs, tmp=tmp_path) for a in COMMANDS[command]]
    result, elapsed = newswire(
        [*args, "--bootstrap", address], tmp_path, NEWSWIRE_KAFKA__TIMEOUT_S="2"
    )
    assert result.returncode == 3, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot reach the Kafka broker at {address}: connection refused "
        "(for 2s; NEWSWIRE_KAFKA__TIMEOUT_S)"
    ], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # Bounded by the setting (plus interpreter start-up), not by a client's own retries.
    assert elapsed < 2 + 30, elapsed


# One client: the bound is check_reachable's (a TCP connect loop run before either client
# is built), and each command on each client is checked against it above.
@pytest.mark.parametrize("kafka_client", KAFKA_CLIENTS[:1], indirect=True)
def test_the_default_bound_is_ten_seconds_and_debug_adds_no_traceback(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    result, elapsed = newswire(["--debug", "dlq", "list", "--bootstrap", address], tmp_path)
    assert result.returncode == 3
    assert (
        f"error: cannot reach the Kafka broker at {address}: connection refused (for 10s;"
        in result.stderr
    )
    assert "Traceback" not in result.stderr  # a handled error: no traceback, even at DEBUG
    assert elapsed < 10 + 30, elapsed
