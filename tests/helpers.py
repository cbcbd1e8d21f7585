"""Helpers for tests against the real broker: bounded waits, topic reads, article generation."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaConsumer

from newswire.kafka import client_config
from newswire.model import Article
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
    consumer = KafkaConsumer(
        **client_config(settings.kafka, "test-reader"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        partitions = wait_for(
            lambda: consumer.partitions_for_topic(topic), timeout=10, what=f"metadata of {topic}"
        )
        from kafka import TopicPartition

        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


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
