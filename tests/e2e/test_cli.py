"""The CLI as a user runs it: `newswire run`, `newswire produce`, `newswire --help`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from newswire.broker import EmbeddedBroker
from tests.conftest import ARTICLES

NEWSWIRE = [sys.executable, "-m", "newswire"]


def newswire(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NEWSWIRE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = newswire("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("broker", "produce", "consume", "run", "topics", "consumers"):
        assert command in result.stdout


def test_run_until_idle_stores_each_article_once_and_cleans_up(tmp_path: Path) -> None:
    store = tmp_path / "out.db"
    work = tmp_path / "work"
    result = newswire(
        "run",
        str(ARTICLES),
        "--store",
        f"sqlite:///{store}",
        "--until-idle",
        "--workdir",
        str(work),
        cwd=tmp_path,
    )
    # The fixtures hold two malformed documents: exit status 1, and the summary says why.
    assert result.returncode == 1, result.stderr[-3000:]
    assert "exit status 1: 2 document(s) rejected (see above)" in result.stdout
    assert "store: stored (new or updated)" in result.stdout
    assert "adds up" in " ".join(result.stdout.split())
    db = sqlite3.connect(store)
    originals = [p for p in ARTICLES.glob("0*.txt") if "_variant_" not in p.name]
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == len(originals)
    assert db.execute("SELECT count(*) FROM duplicates WHERE reason = 'url'").fetchone()[0] == 4
    db.close()
    # Every process it started is gone: the broker and the three stages.
    pids = [int(p) for p in re.findall(r"pid=(\d+)", result.stderr)]
    assert len(pids) == 4, result.stderr
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_produce_reports_rejects_and_exits_1(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("000_e6160929f81e6bcd.txt", "bad_missing_title.txt", "bad_relative_url.txt"):
        shutil.copy(ARTICLES / name, docs / name)
    (docs / "binary.txt").write_bytes(b"\x00\xff\xfe garbage")
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        result = newswire(
            "produce",
            str(docs),
            "--bootstrap",
            broker.bootstrap,
            "--rejects",
            str(tmp_path / "rejects.jsonl"),
            "--no-progress",
            cwd=tmp_path,
        )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 sent, 3 rejected" in result.stdout
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    reasons = {Path(r["origin"]).name: (r["field"], r["reason"]) for r in rejects}
    assert reasons["bad_missing_title.txt"] == ("title", "required field is missing")
    assert reasons["bad_relative_url.txt"][0] == "originalUrl"
    assert "binary" in reasons["binary.txt"][1]
    # Each reject is on stderr too, naming file, field and reason.
    assert "bad_missing_title.txt: field 'title': required field is missing" in result.stderr


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: it runs nothing and holds no port.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" in status.read_text()


def test_sigkill_of_run_takes_the_broker_and_the_stages_down(tmp_path: Path) -> None:
    from tests.helpers import wait_for

    log = tmp_path / "run.log"
    with log.open("w") as err:
        run = subprocess.Popen(
            [
                *NEWSWIRE,
                "run",
                str(ARTICLES),
                "--store",
                f"sqlite:///{tmp_path / 'out.db'}",
                "--workdir",
                str(tmp_path / "work"),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        pids = wait_for(
            lambda: (
                (found := [int(p) for p in re.findall(r"pid=(\d+)", log.read_text())])
                and len(found) == 4
                and found
            ),
            timeout=60,
            what="the broker and three stages",
        )
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        wait_for(
            lambda: all(_gone(pid) for pid in pids),
            timeout=20,
            what="the children to die with their parent",
        )
    finally:
        if run.poll() is None:
            run.kill()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ("--store", "foo.db"),
            "store URL 'foo.db' has no scheme: for a SQLite file write sqlite:///foo.db",
        ),
        (
            ("--store", "postgresql://postgres:s3cret@127.0.0.1:5432/newswire_no_such_db"),
            'database "newswire_no_such_db" does not exist',
        ),
    ],
)
def test_run_checks_the_store_before_it_starts_anything(
    tmp_path: Path, option: tuple[str, str], message: str
) -> None:
    work = tmp_path / "work"
    result = newswire(
        "run", str(ARTICLES), *option, "--until-idle", "--workdir", str(work), cwd=tmp_path
    )
    assert result.returncode == 3
    error = " ".join(result.stderr.split())  # rich wraps long lines
    assert message in error
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    # Nothing was started: no broker, no stage, nothing produced.
    assert not (work / "broker.log").exists()
    assert not list(work.glob("*.log"))
    assert "pipeline up" not in result.stdout


@pytest.mark.postgres
def test_the_run_summary_adds_up_and_keeps_the_dead_letters(
    tmp_path: Path, postgres_url: str
) -> None:
    # PostgreSQL refuses a NUL in text: that article is dead-lettered by the store stage.
    lines = [
        {"title": "bad \u0000 nul", "originalUrl": "https://example.com/nul", "body": "x"},
        {"title": "fine", "originalUrl": "https://example.com/fine", "body": "y"},
        {"title": "fine", "originalUrl": "https://example.com/fine?utm_source=x", "body": "y"},
        {"originalUrl": "https://example.com/no-title"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = subprocess.run(
        [*NEWSWIRE, "run", str(source), "--store", postgres_url, "--until-idle"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "400"},  # one table row a line
    )
    assert result.returncode == 1, result.stderr[-3000:]  # rejected and dead-lettered
    text = " ".join(result.stdout.split())
    assert "exit status 1: 1 document(s) rejected and 1 record(s) dead-lettered" in text
    assert (
        "4 read = 1 rejected + 1 duplicate sightings + 1 stored (new or updated) + "
        "1 dead-lettered: adds up"
    ) in text, result.stdout
    assert "dead-lettered │ 1 (store 1)" in text
    assert "1 appended to newswire-dlq.jsonl (the embedded broker is memory-only)" in text
    (letter,) = [json.loads(x) for x in (tmp_path / "newswire-dlq.jsonl").read_text().splitlines()]
    assert letter["stage"] == "store"
    assert letter["source_topic"] == "articles.enriched"
    assert "0x00" in letter["error_message"]


def test_the_run_summary_adds_up_with_an_update_and_a_resend(tmp_path: Path) -> None:
    # v2 is a newer version of v1 (an update: stored), its copy a url duplicate (a sighting).
    url = "https://example.com/story"
    lines = [
        {
            "title": "v1",
            "originalUrl": url,
            "publishedDateTime": "2024-01-01T00:00:00Z",
            "body": "the first text",
        },
        {
            "title": "v2",
            "originalUrl": url,
            "publishedDateTime": "2024-02-01T00:00:00Z",
            "body": "the corrected text",
        },
        {
            "title": "v2",
            "originalUrl": url + "?utm_source=x",
            "publishedDateTime": "2024-02-01T00:00:00Z",
            "body": "the corrected text",
        },
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = subprocess.run(
        [
            *NEWSWIRE,
            "run",
            str(source),
            "--store",
            f"sqlite:///{tmp_path / 's.db'}",
            "--until-idle",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = " ".join(result.stdout.split())
    assert "dedup: updates (counted in stored) │ 1" in text, result.stdout
    assert (
        "3 read = 0 rejected + 1 duplicate sightings + 2 stored (new or updated) + "
        "0 dead-lettered: adds up"
    ) in text, result.stdout
