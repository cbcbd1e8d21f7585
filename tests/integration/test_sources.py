"""Every source against the real broker: seed documents, JSON lines and RSS/Atom files in
one run, bad input of every kind reported (file, line or entry, field, reason) while every
good document is sent, the same result with one worker or several, and the CLI."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from newswire import publisher as publisher_module
from newswire.cli.produce import build_sources
from newswire.publisher import INGESTED_AT_HEADER, Publisher
from newswire.serde import SingleObjectSerde
from newswire.settings import Settings
from newswire.source import RejectsFile
from newswire.topics import RAW, ensure_topics
from tests.conftest import ARTICLES, FIXTURES
from tests.helpers import read_topic

pytestmark = pytest.mark.integration

FEEDS = FIXTURES / "feeds"
LIMIT = 20_000  # max_document_bytes in these tests

BAD_DOCUMENTS: dict[str, tuple[bytes, str, str, str]] = {
    # file: (content, kind, field, words of the reason)
    "bad_yaml.txt": (
        b"---\ntitle: [unclosed\noriginalUrl: https://e.com/y\n---\n",
        "yaml",
        "",
        "invalid YAML front matter at line",
    ),
    "not_a_mapping.txt": (b"---\n- a\n- b\n---\n", "format", "", "not a mapping"),
    "no_url.txt": (b"---\ntitle: No URL here\n---\nbody\n", "missing", "originalUrl", "missing"),
    "javascript_url.txt": (
        b'---\ntitle: Click me\noriginalUrl: "javascript:alert(1)"\n---\n',
        "value_error",
        "originalUrl",
        "absolute http(s) URL",
    ),
    "bad_date.txt": (
        b"---\ntitle: When\noriginalUrl: https://e.com/when\n"
        b"publishedDateTime: next tuesday\n---\n",
        "value_error",
        "publishedDateTime",
        "not an ISO-8601 date-time",
    ),
    "empty.txt": (b"", "empty", "", "empty document"),
    "garbage.txt": (bytes(range(256)) * 4, "binary", "", "binary data"),
    "latin1.txt": (
        "---\ntitle: Café\noriginalUrl: https://e.com/cafe\n---\n".encode("latin-1"),
        "encoding",
        "",
        "not UTF-8",
    ),
    "huge.txt": (
        b"---\ntitle: Long\noriginalUrl: https://e.com/long\n---\n" + b"word " * 6000,
        "too_large",
        "",
        f"over the limit of {LIMIT} bytes",
    ),
}

JSON_LINES: list[tuple[bytes, str | None, str]] = [
    # (line, reject kind or None, field)
    (b'{"title": "JSON one", "originalUrl": "https://e.com/j1"}', None, ""),
    (b'{"title": "JSON two", "originalUrl": "https://e.com/j2", "topics": ["a"]}', None, ""),
    (b'{"title": "broken", ', "json", ""),
    (b'{"originalUrl": "https://e.com/j4"}', "missing", "title"),
    (b'{"title": "JSON three", "originalUrl": "https://e.com/j5"}', None, ""),
    (b'{"title": "js", "originalUrl": "javascript:void(0)"}', "value_error", "originalUrl"),
    (
        b'{"title": "d", "originalUrl": "https://e.com/j7", "publishedDateTime": "yesterday-ish"}',
        "value_error",
        "publishedDateTime",
    ),
    (b'{"title": "caf\xe9", "originalUrl": "https://e.com/j8"}', "encoding", ""),
    (b'{"title": "JSON four", "originalUrl": "https://e.com/j9", "mystery": 1}', None, ""),
    (
        b'{"title": "big", "originalUrl": "https://e.com/j10", "excerpt": "' + b"x" * LIMIT + b'"}',
        "too_large",
        "",
    ),
    (
        b'{"title": "JSON five", "originalUrl": "https://e.com/j11", '
        b'"publishedDateTime": "2021-02-18T21:45:00Z"}',
        None,
        "",
    ),
]

ENTRIES_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Test Wire</title><link>https://testwire.example/</link>
<item><title>Fine entry</title><link>https://testwire.example/fine</link>
  <pubDate>Mon, 06 Sep 2021 16:45:00 GMT</pubDate></item>
<item><title>Undated</title><link>https://testwire.example/undated</link>
  <pubDate>sometime soon</pubDate></item>
<item><title>Scripted</title><link>javascript:alert(1)</link></item>
</channel></rss>
"""


def make_inbox(root: Path) -> dict[str, Any]:
    """Documents, JSON lines and feeds with bad input of every kind; what to expect."""
    docs = root / "docs"
    shutil.copytree(ARTICLES, docs)
    for name, (content, *_rest) in BAD_DOCUMENTS.items():
        (docs / name).write_bytes(content)
    (root / "articles.jsonl").write_bytes(b"\n".join(line for line, _k, _f in JSON_LINES) + b"\n")
    feeds = root / "feeds"
    feeds.mkdir()
    shutil.copy(FEEDS / "rss-parser2_heise.atom", feeds)
    shutil.copy(FEEDS / "rss091.xml", feeds)
    (feeds / "entries.rss").write_text(ENTRIES_FEED, encoding="utf-8")
    (feeds / "not_xml.rss").write_text("<html><body>Moved</body></html>", encoding="utf-8")
    (feeds / "empty.xml").write_bytes(b"")
    good_docs = len(list(ARTICLES.glob("0*.txt")))
    good_lines = sum(1 for _line, kind, _f in JSON_LINES if kind is None)
    return {
        "paths": [str(docs), str(root / "articles.jsonl"), str(feeds)],
        "good": good_docs + good_lines + 15 + 2 + 1,
        "rejected": 2 + len(BAD_DOCUMENTS) + (len(JSON_LINES) - good_lines) + 2 + 2,
    }


def publish_all(settings: Settings, paths: list[str], *, workers: int, topic: str = RAW) -> Any:
    rejects = RejectsFile(settings.producer.rejects_path)
    publisher = Publisher(settings, workers=workers, topic=topic)
    try:
        summary = publisher.publish(build_sources(paths, settings), rejects=rejects)
    finally:
        publisher.close()
        rejects.close()
    return publisher, summary


def reported(settings: Settings) -> list[dict[str, Any]]:
    path = settings.producer.rejects_path
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_run_sends_every_good_document_and_reports_every_bad_input(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.producer.max_document_bytes = LIMIT
    settings.producer.chunk_files = 4  # several parts: the worker processes do the work
    monkeypatch.setattr(publisher_module, "INLINE_PART_BYTES", 0)  # even the small ones
    inbox = make_inbox(tmp_path / "inbox")
    publisher, summary = publish_all(settings, inbox["paths"], workers=2)

    assert (summary.sent, summary.rejected, summary.failed) == (
        inbox["good"],
        inbox["rejected"],
        0,
    )
    assert summary.read == inbox["good"] + inbox["rejected"]

    rejects = reported(settings)
    assert len(rejects) == inbox["rejected"]
    by_file = {Path(r["origin"]).name: r for r in rejects if r["line"] is None}
    for name, (_content, kind, field, words) in BAD_DOCUMENTS.items():
        assert (by_file[name]["kind"], by_file[name]["field"]) == (kind, field), name
        assert words in by_file[name]["reason"], by_file[name]
    assert by_file["bad_missing_title.txt"]["field"] == "title"
    assert by_file["bad_relative_url.txt"]["field"] == "originalUrl"
    assert by_file["not_xml.rss"]["kind"] == "not_a_feed"
    assert by_file["empty.xml"]["kind"] == "empty"

    by_line = {r["line"]: r for r in rejects if r["origin"].endswith("articles.jsonl")}
    expected_lines = {
        n: (kind, field)
        for n, (_line, kind, field) in enumerate(JSON_LINES, start=1)
        if kind is not None
    }
    assert {n: (r["kind"], r["field"]) for n, r in by_line.items()} == expected_lines

    by_entry = {r["entry"]: r for r in rejects if r["origin"].endswith("entries.rss")}
    assert by_entry[2]["field"] == "publishedDateTime"
    assert "unparseable date 'sometime soon'" in by_entry[2]["reason"]
    assert by_entry[3]["field"] == "originalUrl"

    counts = Counter(r["kind"] for r in rejects)
    for kind, n in counts.items():
        labels = {"producer": "producer", "topic": RAW, "reason": kind}
        assert publisher.registry.get_sample_value("newswire_producer_rejected_total", labels) == n

    records = read_topic(settings, RAW, expect=inbox["good"])
    assert len(records) == inbox["good"]
    serde = SingleObjectSerde()
    sources = Counter()
    for record in records:
        _name, article = serde.decode(record.value)
        assert record.key == article["id"].encode()
        headers = dict(record.headers)
        assert article["ingested_at"].isoformat().encode() == headers[INGESTED_AT_HEADER]
        sources[Path(article["source"]).suffix] += 1
    assert sources == {".txt": 11, ".jsonl": 5, ".atom": 15, ".xml": 2, ".rss": 1}


def test_one_worker_or_two_send_the_same_records_and_rejects(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.producer.max_document_bytes = LIMIT
    settings.producer.chunk_files = 3
    settings.producer.chunk_bytes = 1024  # the JSON-lines file in several parts too
    inbox = make_inbox(tmp_path / "inbox")
    # One worker; two with every part in a worker; two with the small parts (here: every
    # JSON-lines part, 1 KiB) encoded in the publisher's process and the others in workers.
    runs = {1: (1, 0), 2: (2, 0), 3: (2, 4096)}
    ensure_topics(settings.kafka, [f"test.w{run}" for run in runs])
    seen: dict[int, tuple[Counter[tuple[bytes, str]], Counter[tuple[str, Any, Any, str]]]] = {}
    for run, (workers, inline_bytes) in runs.items():
        monkeypatch.setattr(publisher_module, "INLINE_PART_BYTES", inline_bytes)
        settings.producer.rejects_path = tmp_path / f"rejects-{run}.jsonl"
        _publisher, summary = publish_all(
            settings, inbox["paths"], workers=workers, topic=f"test.w{run}"
        )
        assert summary.sent == inbox["good"]
        records = read_topic(settings, f"test.w{run}", expect=inbox["good"])
        titles = Counter((r.key, SingleObjectSerde().decode(r.value)[1]["title"]) for r in records)
        rejects = Counter(
            (Path(r["origin"]).name, r["line"], r["entry"], r["kind"]) for r in reported(settings)
        )
        seen[run] = (titles, rejects)
    assert seen[1] == seen[2] == seen[3]
    assert sum(seen[1][0].values()) == inbox["good"]
    assert sum(seen[1][1].values()) == inbox["rejected"]


def newswire(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newswire", *args],
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_run_takes_documents_json_lines_and_feeds_in_one_call(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path / "inbox")
    store = tmp_path / "out.db"
    result = newswire(
        "run",
        *inbox["paths"],
        "--store",
        f"sqlite:///{store}",
        "--until-idle",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    # The inbox holds bad input on purpose: 1 is the exit status of "some input rejected".
    assert result.returncode == 1, result.stderr[-3000:]
    assert "exit status 1:" in result.stdout
    # NEWSWIRE_PRODUCER__MAX_DOCUMENT_BYTES is the default (5 MiB) here: huge.txt and the
    # long JSON line are fine, so two more articles than with LIMIT.
    sent = inbox["good"] + 2
    assert f"{sent} sent, {inbox['rejected'] - 2} rejected" in result.stdout
    db = sqlite3.connect(store)
    try:
        variants = len(list(ARTICLES.glob("*_variant_*.txt")))
        stored = db.execute("SELECT count(*) FROM articles").fetchone()[0]
        assert stored + db.execute("SELECT count(*) FROM duplicates").fetchone()[0] == sent
        assert stored <= sent - variants
        feeds = db.execute("SELECT count(*) FROM articles WHERE source LIKE '%.atom'").fetchone()
        assert feeds[0] == 15
    finally:
        db.close()
    rejects = (tmp_path / "newswire-rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rejects) == inbox["rejected"] - 2
    assert "articles.jsonl:3: invalid JSON" in result.stderr


def test_produce_reads_json_lines_from_stdin(settings: Settings, tmp_path: Path) -> None:
    lines = b'{"title": "Piped", "originalUrl": "https://e.com/p"}\n{"title": 1}\n'
    result = newswire(
        "produce",
        "-",
        "--bootstrap",
        settings.kafka.bootstrap,
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
        "--no-progress",
        cwd=tmp_path,
        stdin=lines,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # one line rejected
    assert "1 sent, 1 rejected" in result.stdout
    assert "<stdin>:2: field 'originalUrl': required field is missing" in result.stderr
    (record,) = read_topic(settings, RAW, expect=1)
    assert SingleObjectSerde().decode(record.value)[1]["source"] == "<stdin>"


def test_one_bad_document_never_takes_others_with_it(settings: Settings, tmp_path: Path) -> None:
    """Issue 11 item 3: each of these used to stop its part (128 files, 1 MiB of lines),
    name no file, or kill the run; now each is one reject and every good input is sent."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(20):
        (docs / f"good-{n:02d}.txt").write_text(
            f"---\ntitle: Good {n}\noriginalUrl: https://e.com/good-{n}\n---\nBody {n}.\n"
        )
    bomb = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 8)]
    bad = {
        "bad-date.txt": ("publishedDateTime: 2021-02-30T10:00:00Z", "publishedDateTime"),
        "bad-bomb.txt": ("\n".join(bomb), ""),
        "bad-epoch.txt": ("publishedDateTime: 1.0e+20", "publishedDateTime"),
        "bad-int.txt": ("quality: 99999999999999999999999", "quality"),
    }
    for name, (extra, _field) in bad.items():
        (docs / name).write_text(
            f"---\ntitle: Bad\noriginalUrl: https://e.com/{name}\n{extra}\n---\n"
        )
    deep = b'{"title": "Deep", "originalUrl": "https://e.com/deep", "x": '
    deep += b"[" * 100_000 + b"]" * 100_000 + b"}"
    lines = [
        b'{"title": "Line %d", "originalUrl": "https://e.com/line-%d"}' % (n, n) for n in range(10)
    ]
    lines[4:4] = [
        deep,
        b'{"title": "Epoch", "originalUrl": "https://e.com/e", "publishedDateTime": 1e20}',
    ]
    (tmp_path / "lines.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    result = newswire(
        "produce",
        str(docs),
        str(tmp_path / "lines.jsonl"),
        "--bootstrap",
        settings.kafka.bootstrap,
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
        "--workers",
        "2",
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # some rejected, none failed
    assert "30 sent, 6 rejected, 0 failed" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
    rejects = {
        (Path(r["origin"]).name, r["line"]): r
        for r in map(json.loads, (tmp_path / "rejects.jsonl").read_text().splitlines())
    }
    for name, (_extra, field) in bad.items():
        assert rejects[name, None]["field"] == field, rejects[name, None]
    assert rejects["bad-bomb.txt", None]["kind"] == "too_large"
    assert rejects["lines.jsonl", 5]["kind"] == "json"
    assert rejects["lines.jsonl", 6]["field"] == "publishedDateTime"
    titles = {
        SingleObjectSerde().decode(r.value)[1]["title"]
        for r in read_topic(settings, RAW, expect=30)
    }
    assert titles == {f"Good {n}" for n in range(20)} | {f"Line {n}" for n in range(10)}


def test_a_directory_of_odd_names_is_sniffed_and_skips_are_reported(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 12 item 5: seed.dat, feed.dat and heise.xml.gz in a directory were 0 documents
    (exit 0); named one by one they were sniffed and sent. Now the directory is the same."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(ARTICLES / "000_e6160929f81e6bcd.txt", inbox / "seed.dat")
    shutil.copy(FEEDS / "rss091.xml", inbox / "feed.dat")
    (inbox / "heise.xml.gz").write_bytes(
        gzip.compress((FEEDS / "rss-parser2_heise.atom").read_bytes())
    )
    (inbox / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    (inbox / ".hidden.txt").write_text("---\ntitle: hidden\n---\n")
    common = ["--bootstrap", settings.kafka.bootstrap, "--no-progress"]
    by_dir = newswire("produce", str(inbox), *common, cwd=tmp_path)
    assert by_dir.returncode == 0, by_dir.stderr[-3000:]
    assert "18 sent, 0 rejected" in by_dir.stdout, by_dir.stdout
    assert "skipped 2 files in directories: 1 hidden, 1 not recognised by any source" in (
        by_dir.stderr
    )
    named = [str(inbox / n) for n in ("seed.dat", "feed.dat", "heise.xml.gz")]
    one_by_one = newswire("produce", *named, *common, cwd=tmp_path)
    assert "18 sent, 0 rejected" in one_by_one.stdout, one_by_one.stdout
    records = read_topic(settings, RAW, expect=36)
    assert Counter(r.key for r in records) == Counter({r.key: 2 for r in records})
