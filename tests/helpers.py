"""Helpers for tests against the real broker: bounded waits, topic reads, article generation."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from newswire.kafka import ProducerClient, TopicPartition, open_clients
from newswire.model import Article
from newswire.pipeline import Pipeline, StageProcess
from newswire.settings import Settings
from newswire.source import Document, Source

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float = 60.0,
    every: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll *condition* until it is truthy; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def read_topic(settings: Settings, topic: str, *, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read *topic* from the beginning (no group) until *expect* records or the timeout."""
    consumer = open_clients(settings.kafka).consumer(None, "test-reader")
    try:
        partitions = wait_for(
            lambda: consumer.partitions_for(topic), timeout=10, what=f"metadata of {topic}"
        )
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(0.2, 10_000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def assigned_partitions(log: Path) -> set[int]:
    """The partitions of the last assignment a stage process logged (its runner logs each)."""
    lines = [ln for ln in log.read_text().splitlines() if "partitions assigned" in ln]
    if not lines:
        return set()
    found = re.search(r"\[([\d,]*)\]", lines[-1].rsplit("assigned:", 1)[1])
    return {int(p) for p in found.group(1).split(",") if p} if found else set()


def wait_for_split(stages: list[StageProcess], partitions: int, *, timeout: float = 60.0) -> None:
    """Wait until the group of *stages* has settled with every member owning partitions:
    disjoint, non-empty, covering all *partitions*. A test that produces before this point
    lets the first member to join take all the work (Tansu completes a join as soon as
    the members it knows have joined)."""

    def split() -> bool:
        owned = [assigned_partitions(stage.log_path) for stage in stages]
        everything: set[int] = set().union(*owned)
        return (
            all(owned)
            and sum(map(len, owned)) == len(everything)
            and everything == set(range(partitions))
        )

    wait_for(split, timeout=timeout, what=f"{len(stages)} members sharing the partitions")


def records_in(pipeline: Pipeline, stage: StageProcess) -> float:
    """What one stage process has consumed: its ``records_in`` counter, which counts a
    record once its offset is committed — after its output is flushed, so a test that has
    read the output must still wait for this."""
    return sum(
        value
        for (name, _), value in pipeline.metrics().get(stage.label, {}).items()
        if name == "newswire_consumer_records_in_total"
    )


def producer_for(settings: Settings) -> ProducerClient:
    """A producer of the settings' Kafka client (flush it: it returns the failures)."""
    return open_clients(settings.kafka, settings.producer).producer("test")


class ListSource(Source):
    """A source over documents made in the test."""

    name = "list"

    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents

    def count(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)


def seed_fields(seed: Path) -> dict[str, Any]:
    """The seed document's fields."""
    from producers.documents import parse_document

    parsed = parse_document(str(seed), seed.read_bytes(), max_bytes=10**7)
    assert isinstance(parsed, Document)
    return parsed.fields


def generated_articles(
    seed: Path, n: int, *, variants_every: int = 0
) -> tuple[list[Document], set[str], int]:
    """*n* distinct articles shaped like the seed, plus a URL variant of every
    *variants_every*-th one. Returns (documents, distinct article ids, variants)."""
    base = seed_fields(seed)
    documents, ids, variants = [], set(), 0
    for i in range(n):
        fields = dict(base)
        url = f"https://www.example-news.com/world/2021/story-{i:05d}"
        fields["originalUrl"] = fields["webUrl"] = url
        fields["title"] = f"Story number {i}: {base['title']}"
        fields["excerpt"] = f"Item {i}. {base['excerpt']}"
        documents.append(Document(f"gen-{i}", fields))
        ids.add(Article.model_validate(fields).id)
        if variants_every and i % variants_every == 0:
            variant = dict(fields)
            variant["originalUrl"] = variant["webUrl"] = (
                f"http://WWW.Example-News.com/world/2021/story-{i:05d}/?utm_source=newsletter#top"
            )
            documents.append(Document(f"gen-{i}-variant", variant))
            variants += 1
    return documents, ids, variants


class TcpProxy:
    """A TCP proxy on 127.0.0.1 (a free port) to *target*, which a test can cut and restore.

    ``cut()`` drops every open connection and makes new ones fail (accepted,
    then reset at once) — what clients see when a database restarts or the
    network fails; ``restore()`` forwards again. ``close()`` stops it.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # the accept loop checks for close() this often
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0  # upstream connections made so far
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Drop every connection; refuse new ones until :meth:`restore`."""
        self._cut.set()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _drop(sock)

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut.clear()

    def close(self) -> None:
        """Stop accepting, drop everything, join the threads."""
        self._closed.set()
        self.cut()
        self._acceptor.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                _drop(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _drop(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._cut.is_set():
                    _drop(client)
                    _drop(upstream)
                    continue
                self._open |= {client, upstream}
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {src, dst}
            _drop(src)
            _drop(dst)


def _drop(sock: socket.socket) -> None:
    """Reset and close *sock* (SO_LINGER 0: the peer sees the connection reset, not a clean end)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
