"""What every command shares, run for real: exit statuses, JSON that parses, piped tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from newswire.dlq import dlq_headers
from newswire.settings import Settings
from newswire.topics import DLQ, RAW, ensure_topics
from tests.helpers import producer_for

NEWSWIRE = [sys.executable, "-m", "newswire"]
ROOT = Path(__file__).resolve().parents[2]
LONG_MESSAGE = "the enrich stage could not parse this record: " + "x" * 150


def newswire(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    # stdout is a pipe here, as in `newswire … | jq`; no COLUMNS: rich must not guess 80.
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [*NEWSWIRE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**environ, **(env or {})},
    )


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    both = newswire("run", "--follow", "http://example.com/f.rss", "--until-idle", cwd=tmp_path)
    assert both.returncode == 2, both.stderr
    assert "--follow never goes idle" in " ".join(both.stderr.replace("│", " ").split())
    nothing = newswire("produce", "--bootstrap", "127.0.0.1:1", cwd=tmp_path)
    assert nothing.returncode == 2, nothing.stderr
    assert "give PATHS to produce" in " ".join(nothing.stderr.replace("│", " ").split())
    unknown = newswire("dlq", "list", "--no-such-option", cwd=tmp_path)
    assert unknown.returncode == 2


def test_make_run_on_the_samples_succeeds_and_says_why_two_were_rejected(tmp_path: Path) -> None:
    # `-o install -o …installed`: the venv is there; make must not reinstall it here.
    result = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "-o",
            "install",
            "-o",
            ".venv/.installed",
            "run",
            f"RUN_DIR={tmp_path}",
            f"NW={sys.executable} -m newswire",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "COLUMNS": "200",
            "NEWSWIRE_PRODUCER__REJECTS_PATH": str(tmp_path / "rejects.jsonl"),
        },
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = " ".join(result.stdout.split())
    assert "exit status 1: 2 document(s) rejected (see above)" in text, result.stdout
    assert "make run: ok (exit status 1 is expected: samples/bad_*.txt are malformed" in text
    assert (tmp_path / "newswire.db").exists()


def _dead_letters(settings: Settings, n: int) -> None:
    ensure_topics(settings.kafka)
    producer = producer_for(settings)
    for i in range(n):
        headers = dlq_headers(
            stage="enrich",
            error=ValueError(LONG_MESSAGE),
            topic=RAW,
            partition=0,
            offset=100 + i,
            attempts=3,
            first_failure=time.time(),
        )
        producer.produce(DLQ, f"value {i}".encode(), key=f"k{i}".encode(), headers=headers)
    assert producer.flush(30) == []
    producer.close()


def test_dlq_list_json_is_one_document_and_jsonl_one_object_a_line(
    settings: Settings, tmp_path: Path
) -> None:
    _dead_letters(settings, 3)
    bootstrap = ("--bootstrap", settings.kafka.bootstrap)

    as_json = newswire("dlq", "list", *bootstrap, "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    letters = json.loads(as_json.stdout)  # one document: "Extra data" before the fix
    assert [x["source_offset"] for x in sorted(letters, key=lambda x: x["source_offset"])] == [
        100,
        101,
        102,
    ]
    assert set(letters[0]) == {
        "dlq_partition",
        "dlq_offset",
        "stage",
        "error_class",
        "error_message",
        "source_topic",
        "source_partition",
        "source_offset",
        "attempts",
        "first_failure",
        "bytes",
    }
    assert letters[0]["error_message"] == LONG_MESSAGE  # never cut to the terminal's width

    as_jsonl = newswire("dlq", "list", *bootstrap, "--jsonl", cwd=tmp_path)
    assert as_jsonl.returncode == 0, as_jsonl.stderr
    lines = [json.loads(line) for line in as_jsonl.stdout.splitlines()]
    assert lines == letters

    both = newswire("dlq", "list", *bootstrap, "--json", "--jsonl", cwd=tmp_path)
    assert both.returncode == 2

    # Piped, the table is not squeezed to 80 columns: one line a letter, nothing cut.
    table = newswire("dlq", "list", *bootstrap, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "ValueError" in line]
    assert len(rows) == 3, table.stdout
    assert all(LONG_MESSAGE[:80] in row and f"{RAW}/0/10" in row for row in rows), table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) > 80


def test_status_json_is_one_document(tmp_path: Path) -> None:
    empty = newswire(
        "status",
        "--json",
        "--interval",
        "0.1",
        cwd=tmp_path,
        env={"NEWSWIRE_METRICS__RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == []


def test_run_at_debug_logs_one_line_a_batch_shows_drain_progress_and_keeps_the_console_clean(
    tmp_path: Path,
) -> None:
    from tests.conftest import ARTICLES

    work = tmp_path / "work"
    result = newswire(
        "run",
        str(ARTICLES),
        "--store",
        f"sqlite:///{tmp_path / 's.db'}",
        "--until-idle",
        "--workdir",
        str(work),
        cwd=tmp_path,
        env={"NEWSWIRE_LOG_LEVEL": "DEBUG"},
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # the fixtures' two malformed documents
    # While the stages drain, `run` says how far they are (first line at once, not a tty).
    (first, *_) = [line for line in result.stderr.splitlines() if line.startswith("draining:")]
    progress = re.match(
        r"draining: (\d+) sent; dedup \d+ in, lag \d+; enrich \d+ in, lag \d+; "
        r"store \d+ in, lag \d+; ended: ",
        first,
    )
    assert progress, first
    sent = int(progress.group(1))
    assert f"sent to articles.raw {sent} " in " ".join(result.stdout.replace("│", " ").split())
    # The console holds newswire's own lines only: no Kafka client's records.
    loggers = set(re.findall(r"^\S+ \S+ (?:DEBUG|INFO|WARNING|ERROR) (\S+):", result.stderr, re.M))
    assert loggers and all(name.split(".")[0] == "newswire" for name in loggers), loggers
    # Each stage's log: one DEBUG line a batch, with counts, sizes, times and partitions.
    for stage in ("dedup", "enrich", "store"):
        text = (work / f"{stage}.log").read_text()
        batches = re.findall(
            rf"DEBUG newswire.runner: {stage}: batch records=(\d+) decoded=\d+ bytes=\d+ "
            r"decode=[\d.]+ms handle=[\d.]+ms produce=[\d.]+ms commit=[\d.]+ms partitions=\S+",
            text,
        )
        assert batches, text[-2000:]
        if stage == "dedup":  # every record sent, in batches
            assert sum(map(int, batches)) == sent
        # Never an article's text.
        assert "facial recognition" not in text.lower()
