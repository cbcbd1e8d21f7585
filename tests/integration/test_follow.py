"""``--follow`` against a real local HTTP server and the real broker: conditional GETs,
only new entries, state across restarts, per-feed backoff on 500s, timeouts, 404s and
non-feeds without stopping the other feeds, and the CLI until SIGTERM."""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from newswire.publisher import Publisher
from newswire.serde import SingleObjectSerde
from newswire.settings import Settings
from newswire.source import RejectsFile
from newswire.topics import RAW
from producers.follow import FeedFollower
from tests.conftest import FIXTURES
from tests.helpers import read_topic, wait_for

pytestmark = pytest.mark.integration

FEEDS = FIXTURES / "feeds"
HEISE = (FEEDS / "rss-parser2_heise.atom").read_bytes()  # 15 entries
REDDIT = (FEEDS / "rss-parser2_reddit.rss").read_bytes()  # 25 entries


def with_new_entries(feed: bytes, count: int) -> bytes:
    """*feed* (Atom) with *count* new entries in front: new ids and links."""
    first = re.search(rb"<entry>.*?</entry>", feed, re.S)
    assert first is not None
    new = b"".join(
        first.group(0)
        .replace(b"http://heise.de/-3088438", b"http://heise.de/-900000%d" % i)
        .replace(b"WildFly-10-frei-3088438", b"WildFly-10-frei-900000%d" % i)
        for i in range(count)
    )
    return feed[: first.start()] + new + feed[first.start() :]


def new_items(feed: bytes, count: int) -> bytes:
    """*feed* (reddit RSS) with its first *count* items given new guids and links."""
    items = list(re.finditer(rb"<item>.*?</item>", feed, re.S))[:count]
    out = feed
    for i, item in enumerate(items):
        renamed = re.sub(rb"/comments/\w+/", b"/comments/new%d/" % i, item.group(0))
        out = out.replace(item.group(0), renamed)
    return out


# -- a real HTTP server ----------------------------------------------------------------------


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    etag: bool = True
    last_modified: str | None = None
    delay_s: float = 0.0
    content_type: str = "application/xml"


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    status: int


class FeedServer:
    """http.server on 127.0.0.1 in a thread, serving *routes*, recording requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def hits(self, path: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(handler.path, Route(status=404))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        status = route.status
        tag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"' if route.etag else None
        if route.delay_s:
            self.closing.wait(route.delay_s)  # bounded, and cut short when the test ends
        if status == 200 and (
            (tag and headers.get("if-none-match") == tag)
            or (route.last_modified and headers.get("if-modified-since") == route.last_modified)
        ):
            status = 304
        with self.lock:
            self.requests.append(Seen(handler.path, headers, status))
        try:
            handler.send_response(status)
            if status == 200:
                handler.send_header("Content-Type", route.content_type)
                handler.send_header("Content-Length", str(len(route.body)))
                if tag:
                    handler.send_header("ETag", tag)
                if route.last_modified:
                    handler.send_header("Last-Modified", route.last_modified)
                handler.end_headers()
                handler.wfile.write(route.body)
            else:
                handler.send_header("Content-Length", "0")
                handler.end_headers()
        except OSError:
            pass  # the client gave up (a timeout test)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    running = FeedServer()
    running.thread.start()
    try:
        yield running
    finally:
        running.closing.set()
        running.httpd.shutdown()
        running.httpd.server_close()
        running.thread.join(5)


# -- following in the background ---------------------------------------------------------------


class Following:
    """A Publisher publishing a FeedFollower in a thread, as `produce --follow` does."""

    def __init__(self, settings: Settings, follower: FeedFollower) -> None:
        self.follower = follower
        self.publisher = Publisher(settings)
        self.rejects = RejectsFile(settings.producer.rejects_path)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.publisher.publish([self.follower], rejects=self.rejects)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def sent(self) -> int:
        labels = {"producer": "producer", "topic": RAW}
        value = self.publisher.registry.get_sample_value(
            "newswire_producer_records_out_total", labels
        )
        return int(value or 0)

    def metric(self, name: str, **labels: str) -> float:
        return self.publisher.registry.get_sample_value(name, labels) or 0.0

    def stop(self) -> None:
        self.follower.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the follower did not stop"
        self.publisher.close()
        self.rejects.close()
        if self.error is not None:
            raise self.error


def follower(urls: list[str], state: Path, **options: Any) -> FeedFollower:
    options.setdefault("every_s", 0.2)
    options.setdefault("timeout_s", 2.0)
    return FeedFollower(urls, state_path=state, **options)


def settle(server: FeedServer, path: str, polls: int) -> None:
    """Wait until *path* has been polled *polls* more times."""
    start = len(server.hits(path))
    wait_for(lambda: len(server.hits(path)) >= start + polls, timeout=20, what=f"{polls} polls")


# -- tests ---------------------------------------------------------------------------------------


def test_conditional_gets_and_only_new_entries(
    settings: Settings, server: FeedServer, tmp_path: Path
) -> None:
    server.routes["/heise"] = Route(HEISE)
    run = Following(settings, follower([server.url("/heise")], tmp_path / "state.sqlite"))
    try:
        wait_for(lambda: run.sent() == 15, timeout=30, what="the first 15 entries")
        settle(server, "/heise", 3)
        first, *later = server.hits("/heise")
        assert first.status == 200 and "if-none-match" not in first.headers
        assert later and all(r.status == 304 for r in later)
        assert all(r.headers["if-none-match"].startswith('"') for r in later)
        assert all(r.headers["user-agent"].startswith("newswire") for r in later)

        server.routes["/heise"] = Route(with_new_entries(HEISE, 2))  # new ETag too
        wait_for(lambda: run.sent() == 17, timeout=30, what="the 2 new entries")
        settle(server, "/heise", 3)
        assert run.sent() == 17  # nothing emitted twice
    finally:
        run.stop()
    records = read_topic(settings, RAW, expect=17)
    assert len({r.key for r in records}) == 17
    polls = run.metric(
        "newswire_producer_feed_polls_total",
        producer="producer",
        topic=RAW,
        feed=server.url("/heise"),
        result="not_modified",
    )
    assert polls >= 4


def test_state_survives_a_restart_with_last_modified(
    settings: Settings, server: FeedServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    stamp = formatdate(time.time() - 3600, usegmt=True)
    server.routes["/reddit"] = Route(REDDIT, etag=False, last_modified=stamp)
    first = Following(settings, follower([server.url("/reddit")], state))
    try:
        wait_for(lambda: first.sent() == 25, timeout=30, what="25 entries")
    finally:
        first.stop()

    again = Following(settings, follower([server.url("/reddit")], state))
    try:
        settle(server, "/reddit", 2)
        restarted = server.hits("/reddit")[-2]
        assert restarted.headers["if-modified-since"] == stamp  # from the state file
        assert restarted.status == 304
        assert again.sent() == 0

        # The feed changes: three of its items are new.
        newer = formatdate(time.time(), usegmt=True)
        server.routes["/reddit"] = Route(new_items(REDDIT, 3), etag=False, last_modified=newer)
        wait_for(lambda: again.sent() >= 3, timeout=30, what="the new entries")
        settle(server, "/reddit", 2)
        assert again.sent() == 3
    finally:
        again.stop()
    assert len(read_topic(settings, RAW, expect=28)) == 28


def test_failing_feeds_back_off_and_never_stop_the_others(
    settings: Settings, server: FeedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="producers.follow")
    server.routes["/good"] = Route(HEISE)
    server.routes["/broken"] = Route(status=500)
    server.routes["/slow"] = Route(REDDIT, delay_s=5.0)
    server.routes["/html"] = Route(b"<html><body>Sign in</body></html>", content_type="text/html")
    urls = [server.url(p) for p in ("/good", "/broken", "/slow", "/html", "/gone")]
    run = Following(
        settings,
        follower(urls, tmp_path / "state.sqlite", every_s=0.1, timeout_s=0.5, backoff_max_s=0.8),
    )
    try:
        wait_for(lambda: run.sent() == 15, timeout=30, what="the good feed's entries")
        started = time.monotonic()
        before = len(server.hits("/broken"))
        settle(server, "/good", 10)  # the good feed goes on being polled
        elapsed = time.monotonic() - started
        retries = len(server.hits("/broken")) - before
        # Without backoff /broken would be asked as often as /good (10 times or more);
        # with it (0.2s, 0.4s, 0.8s, 0.8s…) a handful of times.
        assert retries <= 2 + elapsed / 0.8, (retries, elapsed)

        messages = "\n".join(r.getMessage() for r in caplog.records)
        assert f"feed {server.url('/broken')} failed: HTTP 500 Internal Server Error" in messages
        assert f"feed {server.url('/slow')} failed: timed out after 0.5s" in messages
        assert f"feed {server.url('/html')} failed: not an RSS/Atom feed" in messages
        assert f"feed {server.url('/gone')} failed: HTTP 404" in messages
        assert "next try in" in messages
        labels = {"producer": "producer", "topic": RAW, "feed": server.url("/broken")}
        assert run.metric("newswire_producer_feed_errors_total", error="http_500", **labels) >= 2
        assert run.metric("newswire_producer_feed_consecutive_failures", **labels) >= 2

        server.routes["/broken"] = Route(REDDIT)  # it recovers
        wait_for(lambda: run.sent() == 40, timeout=30, what="the recovered feed's entries")
        assert run.metric("newswire_producer_feed_consecutive_failures", **labels) == 0
    finally:
        run.stop()
    titles = {
        SingleObjectSerde().decode(r.value)[1]["title"]
        for r in read_topic(settings, RAW, expect=40)
    }
    assert len(titles) == 40


def test_relative_links_are_resolved_against_the_feed_address(
    settings: Settings, server: FeedServer, tmp_path: Path
) -> None:
    server.routes["/blog/index.atom"] = Route(
        (FEEDS / "feedparser1_intertwingly.atom").read_bytes()
    )
    run = Following(
        settings, follower([server.url("/blog/index.atom")], tmp_path / "s.sqlite", max_polls=1)
    )
    wait_for(lambda: not run.thread.is_alive(), timeout=30, what="one poll")
    run.stop()
    assert run.publisher.summary.sent == 20
    records = read_topic(settings, RAW, expect=20)
    urls = {SingleObjectSerde().decode(r.value)[1]["original_url"] for r in records}
    assert server.url("/blog/2012/07/16/Inhibiting-Suspend") in urls


def test_produce_follow_keeps_a_feed_flowing_until_sigterm(
    settings: Settings, server: FeedServer, tmp_path: Path
) -> None:
    server.routes["/heise"] = Route(HEISE)
    command = [
        sys.executable,
        "-m",
        "newswire",
        "produce",
        "--follow",
        server.url("/heise"),
        "--every",
        "300ms",
        "--state",
        str(tmp_path / "feeds.sqlite"),
        "--bootstrap",
        settings.kafka.bootstrap,
        "--metrics-port",
        "0",
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert len(read_topic(settings, RAW, expect=15, timeout=60)) == 15
        server.routes["/heise"] = Route(with_new_entries(HEISE, 1))
        assert len(read_topic(settings, RAW, expect=16, timeout=30)) == 16
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-3000:]
    assert "16 sent, 0 rejected" in stdout
    assert (tmp_path / "feeds.sqlite").exists()
