"""The progress bar of ``newswire produce`` (issue 12 item 9): totals when they are cheap
(files, lines, feed entries, bytes), a rate and an ETA instead of ``7031/?``."""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from newswire.cli.produce import (
    _CountColumn,
    _EtaColumn,
    _RateColumn,
    build_sources,
    progress_totals,
)
from newswire.settings import Settings
from newswire.source import Document, Reject
from producers.documents import DocumentSource
from producers.feeds import FeedSource
from producers.jsonl import JsonLinesSource
from tests.conftest import ARTICLES, FIXTURES

LINE = b'{"title": "x", "originalUrl": "https://e.com/x"}\n'


def test_json_lines_count_the_lines_the_parts_will_read(tmp_path: Path) -> None:
    data = LINE * 5 + b"\n   \n" + b"{broken\n" + LINE.rstrip(b"\n")  # blank lines are not read
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    source = JsonLinesSource([path], chunk_bytes=1024)
    read = [i for part in source.split() for i in part if isinstance(i, Document | Reject)]
    assert source.count() == len(read) == 7
    assert source.size() == len(data)


def test_json_lines_from_stdin_or_gzip_are_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(LINE * 3))
    assert JsonLinesSource([path]).count() is None
    assert JsonLinesSource([path]).size() == path.stat().st_size
    assert JsonLinesSource(["-"]).count() is None
    assert JsonLinesSource(["-"]).size() is None


def test_documents_count_files_and_feeds_count_entries(tmp_path: Path) -> None:
    documents = DocumentSource([ARTICLES])
    assert documents.count() == len(documents.files())
    assert documents.size() == sum(p.stat().st_size for p in documents.files())
    feeds = FeedSource(
        [FIXTURES / "feeds" / "rss-parser2_heise.atom", FIXTURES / "feeds" / "rss091.xml"]
    )
    entries = [i for i in feeds if isinstance(i, Document | Reject)]
    assert feeds.count() == len(entries) == 17
    assert FeedSource(["https://example.com/feed"]).count() is None


def test_the_total_is_known_only_when_every_source_can_count(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(ARTICLES, inbox / "docs")
    (inbox / "lines.jsonl").write_bytes(LINE * 4)
    shutil.copy(FIXTURES / "feeds" / "rss091.xml", inbox / "wire.rss")
    sources = build_sources([str(inbox)], Settings())
    total, what = progress_totals(sources)
    files = len(list(ARTICLES.glob("*.txt")))
    assert total == files + 4 + 2
    size = sum(p.stat().st_size for p in inbox.rglob("*") if p.is_file())
    assert what == f"producing {size / 1000:,.1f} KB"
    with_stdin = build_sources([str(inbox), "-"], Settings())
    assert progress_totals(with_stdin) == (None, "producing")


def render(progress: Progress) -> str:
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, width=200, color_system=None).print(
        progress.make_tasks_table(progress.tasks)
    )
    return buffer.getvalue()


def test_the_bar_shows_done_of_total_a_rate_and_an_eta() -> None:
    clock = [0.0]
    columns = (_CountColumn(), _RateColumn(), _EtaColumn())
    progress = Progress(*columns, get_time=lambda: clock[0], disable=True)
    known = progress.add_task("known", total=20_000)
    unknown = progress.add_task("unknown", total=None)
    for _ in range(10):  # 700 items every 0.1 s: 7,000/s
        clock[0] += 0.1
        progress.advance(known, 700)
        progress.advance(unknown, 700)
    text = render(progress)
    first, second = text.splitlines()[:2]
    assert "7,000/20,000" in first and "7,000/s" in first
    assert "eta 0:00:02" in first  # 13,000 left at 7,000/s: 1.9 s, rounded up
    assert "7,000 read" in second and "7,000/s" in second
    assert "eta" not in second and "/?" not in text
