"""Turns any :class:`~newswire.source.Source` into Avro events on ``articles.raw``.

Each document is validated into an :class:`~newswire.model.Article` (its id is
the hash of its canonical URL, the Kafka key, so every copy of an article lands
on one partition), stamped with its ingest time, encoded and sent. A document
that fails is reported — origin, field, reason — on the log, in the rejects
file and in ``newswire_producer_rejected_total``; it never stops the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from newswire.errors import NewswireError
from newswire.kafka import make_producer
from newswire.metrics import ProducerMetrics
from newswire.model import Article
from newswire.serde import ARTICLE, SingleObjectSerde
from newswire.settings import Settings
from newswire.source import Document, Reject, RejectsFile, Source
from newswire.topics import RAW

__all__ = ["PublishSummary", "Publisher", "validate"]

log = logging.getLogger(__name__)

# Seed names for the model's fields, so that reports speak the input's language.
_SEED_NAMES = {
    "original_url": "originalUrl",
    "web_url": "webUrl",
    "published_at": "publishedDateTime",
    "is_cached": "isCached",
    "amp_web_url": "ampWebUrl",
    "cdn_amp_web_url": "cdnAmpWebUrl",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(_SEED_NAMES.get(str(p), str(p)) for p in loc)


def validate(document: Document) -> Article | Reject:
    """Validate *document* into an article, or say which field is wrong and why."""
    try:
        return Article.model_validate(document.fields)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field_name = _field_path(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "required field is missing"
        return Reject(document.origin, field_name, message, kind=first["type"])
    except NewswireError as exc:
        return Reject(document.origin, getattr(exc, "field", "") or "originalUrl", exc.message)


@dataclass
class PublishSummary:
    """What one publish run did."""

    read: int = 0
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    rejects_by_kind: Tally[str] = field(default_factory=Tally)

    @property
    def rate(self) -> float:
        """Documents read per second."""
        return self.read / self.elapsed_s if self.elapsed_s else 0.0


class Publisher:
    """Validates, encodes and sends documents to ``articles.raw`` (acks=all, idempotent)."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        name: str = "producer",
        topic: str = RAW,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.topic = topic
        self.serde = SingleObjectSerde()
        self.metrics = ProducerMetrics.create(registry or CollectorRegistry())
        self._producer = producer
        self._sent = 0
        self._failed = 0

    @property
    def producer(self) -> KafkaProducer:
        """The Kafka producer, created on first use."""
        if self._producer is None:
            self._producer = make_producer(
                self.settings.kafka, self.settings.producer, role=self.name
            )
        return self._producer

    def publish(
        self,
        sources: Iterable[Source],
        *,
        rejects: RejectsFile | None = None,
        on_item: Callable[[Document | Reject], None] | None = None,
    ) -> PublishSummary:
        """Send every valid document of *sources*; report the others. Flushes before returning."""
        summary = PublishSummary()
        started = time.perf_counter()
        rejects = rejects or RejectsFile(None)
        read = self.metrics.read.labels(self.name, self.topic)
        for source in sources:
            for item in source:
                summary.read += 1
                read.inc()
                if isinstance(item, Document):
                    article = validate(item)
                    if isinstance(article, Article):
                        self.send(article, origin=item.origin)
                    else:
                        item = article
                if isinstance(item, Reject):
                    self._reject(item, summary, rejects)
                if on_item is not None:
                    on_item(item)
        self.flush()
        summary.sent, summary.failed = self._sent, self._failed
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def send(self, article: Article, *, origin: str = "") -> None:
        """Encode and send one article, keyed by its id."""
        record = article.model_dump()
        record["ingested_at"] = dt.datetime.now(dt.UTC)
        record["source"] = origin or article.source
        if article.extras:
            self.metrics.extra_fields.labels(self.name, self.topic).inc(len(article.extras))
        value = self.serde.encode(ARTICLE, record)
        future = self.producer.send(self.topic, key=article.id.encode(), value=value)
        future.add_callback(self._acked)
        future.add_errback(self._not_acked, origin)

    def flush(self) -> None:
        """Wait until every sent record is acknowledged or failed."""
        if self._producer is not None:
            self._producer.flush()

    def close(self) -> None:
        """Flush and close the Kafka producer."""
        if self._producer is not None:
            self._producer.close(timeout=30)
            self._producer = None

    def _acked(self, _metadata: Any) -> None:
        self._sent += 1
        self.metrics.sent.labels(self.name, self.topic).inc()

    def _not_acked(self, exc: BaseException, origin: str) -> None:
        self._failed += 1
        self.metrics.send_errors.labels(self.name, self.topic, type(exc).__name__).inc()
        log.error("%s: not acknowledged by the broker: %s", origin, exc)

    def _reject(self, reject: Reject, summary: PublishSummary, rejects: RejectsFile) -> None:
        summary.rejected += 1
        summary.rejects_by_kind[reject.kind] += 1
        self.metrics.rejected.labels(self.name, self.topic, reject.kind).inc()
        rejects.write(reject)
        log.warning("rejected %s", reject)
