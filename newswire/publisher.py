"""Turns any :class:`~newswire.source.Source` into Avro events on ``articles.raw``.

Each document is validated into an :class:`~newswire.model.Article` (its id is
the hash of its canonical URL, the Kafka key, so every copy of an article lands
on one partition), stamped with its ingest time (the Avro ``ingested_at`` field
and the ``newswire.ingested_at`` record header), encoded and sent. A document
that fails is reported — origin, line or entry, field, reason — on the log, in
the rejects file and in ``newswire_producer_rejected_total{reason}``; it never
stops the run.

Speed: a source that can :meth:`~newswire.source.Source.split` itself is read,
validated and Avro-encoded by worker processes (a ``ProcessPoolExecutor``,
``workers`` of them), a part at a time; they hand back the encoded ``(key,
value)`` bytes and the rejects, and this process only sends. Parts finish in
any order, which changes nothing downstream: records are keyed by article id.
With one worker, or a single part, everything happens in this process.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import pydantic
from prometheus_client import CollectorRegistry

from newswire.errors import NewswireError, SerdeError
from newswire.kafka import BrokerError, Clients, Delivery, ProducerClient, open_clients
from newswire.metrics import ProducerMetrics
from newswire.model import Article
from newswire.serde import ARTICLE, RecordEncoder, Serde, SingleObjectSerde, serde_for
from newswire.settings import Settings
from newswire.source import Checkpoint, Document, Reject, RejectsFile, Source
from newswire.topics import RAW

__all__ = [
    "INGESTED_AT_HEADER",
    "Batch",
    "Encoder",
    "PublishSummary",
    "Publisher",
    "avro_record",
    "validate",
]

log = logging.getLogger(__name__)

#: Encoded records larger than this are rejected (the default of max_document_bytes).
DEFAULT_MAX_RECORD_BYTES = 5 * 1024 * 1024

#: A part of a split source at most this large (``Source.size()``) is encoded in the
#: publisher's own process: handing a few lines to a worker (pickled there and back, two
#: process wake-ups) costs more than encoding them. A pipe fed at 1,000 lines/s is read in
#: parts of a few lines (benchmarks/bench_e2e.py's paced run).
INLINE_PART_BYTES = 64 * 1024

#: Record header with the ingest time (ISO-8601, UTC), for consumers that do not decode.
INGESTED_AT_HEADER = "newswire.ingested_at"

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
        return Reject(
            document.origin,
            field_name,
            message,
            kind=first["type"],
            line=document.line,
            entry=document.entry,
        )
    except NewswireError as exc:
        return Reject(
            document.origin,
            getattr(exc, "field", "") or "originalUrl",
            exc.message,
            kind=getattr(exc, "kind", "invalid"),
            line=document.line,
            entry=document.entry,
        )


def avro_record(article: Article) -> dict[str, Any]:
    """``article.model_dump()``, three times faster: the fields' own values, nested models
    as their dicts, ``secured`` revealed (the model's serializer does the same).

    The model's field names are the Avro names; a unit test holds the two equal.
    """
    record = article.__dict__.copy()
    record["provider"] = article.provider.__dict__
    if article.images:
        record["images"] = [image.__dict__ for image in article.images]
    if article.related:
        record["related"] = [
            {
                **related.__dict__,
                "provider": related.provider.__dict__ if related.provider is not None else None,
                "images": [image.__dict__ for image in related.images],
            }
            for related in article.related
        ]
    secured = article.secured
    record["secured"] = secured.get_secret_value() if secured is not None else None
    return record


#: One encoded record: key, value, ingested_at header value, where it came from.
Record = tuple[bytes, bytes, bytes, str]


@dataclass
class Batch:
    """What one part of a source became: encoded records and rejects."""

    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    read: int = 0
    extra_fields: int = 0
    cpu_s: float = 0.0  # CPU time the part took where it was encoded


class Encoder:
    """Validates documents and encodes them; runs in worker processes or in the publisher."""

    def __init__(
        self,
        serde: Serde | None = None,
        *,
        topic: str = RAW,
        write: RecordEncoder | None = None,
        max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        # Worker processes get only *write* (picklable, header resolved by the parent):
        # they never talk to a schema registry themselves.
        self.serde = serde
        if write is None:
            self.serde = serde or SingleObjectSerde()
            write = self.serde.encoder(ARTICLE, topic=topic)
        self.write = write
        #: The largest encoded value sent; a larger one is rejected, naming its document.
        self.max_bytes = max_bytes

    def document(self, document: Document) -> tuple[Record, int] | Reject:
        """The encoded record of *document* and its count of extra fields, or a reject."""
        try:
            article = validate(document)
            if isinstance(article, Reject):
                return article
            record = avro_record(article)
            now = dt.datetime.now(dt.UTC)
            record["ingested_at"] = now
            record["source"] = document.origin or article.source
            value = self.write(record)
            if len(value) > self.max_bytes:
                # The input was within the limit but grew (unknown fields kept as JSON):
                # refused here rather than by the broker, which would fail the batch.
                return Reject(
                    document.origin,
                    "",
                    f"encoded record is {len(value)} bytes, over the limit of "
                    f"{self.max_bytes} bytes",
                    kind="too_large",
                    line=document.line,
                    entry=document.entry,
                )
        except SerdeError as exc:  # e.g. a number too large for an Avro int
            return Reject(
                document.origin,
                "",
                f"cannot encode: {exc.message}",
                kind="encode",
                line=document.line,
                entry=document.entry,
            )
        except Exception as exc:  # a bug must not stop the run nor lose the report
            log.exception("%s: unexpected error while validating", document.where)
            return Reject(
                document.origin,
                "",
                f"unexpected {type(exc).__name__}: {exc}",
                kind="error",
                line=document.line,
                entry=document.entry,
            )
        where = document.where
        return (article.id.encode(), value, now.isoformat().encode(), where), len(article.extras)

    def part(self, source: Source) -> Batch:
        """Read, validate and encode every item of *source* (one part of a bigger one)."""
        batch = Batch()
        started = time.process_time()
        try:
            for item in source:
                if isinstance(item, Checkpoint):
                    continue  # parts are finite; checkpoints only mean something inline
                batch.read += 1
                if isinstance(item, Document):
                    result = self.document(item)
                    if isinstance(result, Reject):
                        batch.rejects.append(result)
                    else:
                        batch.records.append(result[0])
                        batch.extra_fields += result[1]
                else:
                    batch.rejects.append(item)
        except Exception as exc:  # a source broke its contract (never raise): report it
            log.exception("source %s failed", source.name)
            batch.read += 1
            batch.rejects.append(_source_failed(source, exc))
        batch.cpu_s = time.process_time() - started
        return batch


def _small(part: Source) -> bool:
    """Whether *part* is cheaper to encode here than in a worker (see INLINE_PART_BYTES)."""
    size = part.size()
    return size is not None and size <= INLINE_PART_BYTES


def _source_failed(source: Source, exc: Exception) -> Reject:
    return Reject(
        f"<{source.name or type(source).__name__} source>",
        "",
        f"the source failed and stopped early: {type(exc).__name__}: {exc}",
        kind="source_error",
    )


# -- worker processes --------------------------------------------------------------------------

_WORKER_ENCODER: Encoder | None = None


def _init_worker(write: RecordEncoder, max_bytes: int) -> None:  # pragma: no cover - workers
    global _WORKER_ENCODER
    # Ctrl-C goes to the whole process group: the parent decides, workers just finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_ENCODER = Encoder(write=write, max_bytes=max_bytes)


def _encode_part(part: Source) -> Batch:  # pragma: no cover - runs in the worker processes
    assert _WORKER_ENCODER is not None
    return _WORKER_ENCODER.part(part)


def _ping(n: int) -> int:  # pragma: no cover - runs in the worker processes
    time.sleep(0.01)  # long enough that every worker gets one
    return n


def max_record_bytes(settings: Settings) -> int:
    """The size limit of an encoded record: the document limit, and what the broker takes.

    ``max_request_size`` bounds a whole produce request; 64 KiB of it are left for
    the key, the headers and the batch framing.
    """
    producer = settings.producer
    return min(producer.max_document_bytes, producer.max_request_size - 64 * 1024)


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# -- the publisher -----------------------------------------------------------------------------


@dataclass
class PublishSummary:
    """What one publish run did."""

    read: int = 0
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    worker_cpu_s: float = 0.0
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
        producer: ProducerClient | None = None,
        clients: Clients | None = None,
        workers: int | None = None,
        serde: Serde | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.topic = topic
        self.registry = registry or CollectorRegistry()
        self.metrics = ProducerMetrics.create(self.registry)
        self.workers = workers or settings.producer.workers or default_workers()
        self.serde = serde or serde_for(settings)
        self.encoder = Encoder(self.serde, topic=topic, max_bytes=max_record_bytes(settings))
        self._producer = producer
        self._clients = clients
        self._pool: cf.ProcessPoolExecutor | None = None
        # Acknowledgements are counted at each flush, which returns the records that
        # failed (every other queued record was acknowledged): sent = queued - failed.
        self._queued = 0
        self._sent = 0
        self._failed = 0
        #: The current (or last) run's summary; complete once publish() returns.
        self.summary = PublishSummary()
        self._base = (0, 0)
        self._headers = settings.producer.ingested_at_header
        self._read = self.metrics.read.labels(name, topic)
        self._acked_total = self.metrics.sent.labels(name, topic)
        self._extras = self.metrics.extra_fields.labels(name, topic)

    @property
    def producer(self) -> ProducerClient:
        """The Kafka producer (``NEWSWIRE_KAFKA__CLIENT``'s), created on first use."""
        if self._producer is None:
            clients = self._clients or open_clients(self.settings.kafka, self.settings.producer)
            self._producer = clients.producer(self.name)
        return self._producer

    def publish(
        self,
        sources: Iterable[Source],
        *,
        rejects: RejectsFile | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> PublishSummary:
        """Send every valid document of *sources*; report the others. Flushes before returning.

        Sources that split are read by the worker processes first, then the
        others (a feed follower, which may never end) in this process.
        """
        summary = self.summary = PublishSummary()
        started = time.perf_counter()
        self._base = (self._sent, self._failed)
        rejects = rejects or RejectsFile(None)
        progress = on_progress or (lambda _n: None)
        sources = list(sources)
        for source in sources:
            source.bind_metrics(self.registry, producer=self.name, topic=self.topic)
        inline: list[Source] = []
        parts: list[Iterable[Source]] = []
        for source in sources:
            split = source.split()
            if split is None:
                inline.append(source)
            else:
                parts.append(split)
        try:
            self._publish_parts(itertools.chain.from_iterable(parts), summary, rejects, progress)
            for source in inline:
                self._publish_inline(source, summary, rejects, progress)
            self.flush()
        finally:
            self._count_acks()
            summary.elapsed_s = time.perf_counter() - started
        return summary

    def _count_acks(self) -> None:
        self.summary.sent = self._sent - self._base[0]
        self.summary.failed = self._failed - self._base[1]

    def _publish_parts(
        self,
        parts: Iterator[Source],
        summary: PublishSummary,
        rejects: RejectsFile,
        progress: Callable[[int], None],
    ) -> None:
        head = list(itertools.islice(parts, 2))
        if self.workers <= 1 or len(head) < 2:  # not worth a process pool
            for part in itertools.chain(head, parts):
                self._send_batch(self.encoder.part(part), summary, rejects, progress)
            return
        pool = self._worker_pool()
        pending: set[cf.Future[Batch]] = set()
        # Two parts per worker in flight: workers never wait for this process, and
        # memory stays bounded however large the input.
        in_flight = 2 * self.workers

        def send_done(block: bool) -> None:
            nonlocal pending
            done, pending = cf.wait(
                pending, timeout=None if block else 0, return_when=cf.FIRST_COMPLETED
            )
            for future in done:
                self._send_batch(future.result(), summary, rejects, progress)

        try:
            for part in itertools.chain(head, parts):
                if _small(part):
                    self._send_batch(self.encoder.part(part), summary, rejects, progress)
                else:
                    pending.add(pool.submit(_encode_part, part))
                while len(pending) >= in_flight:
                    send_done(block=True)
                # Send what is done before reading on: the next read may wait (a pipe).
                send_done(block=False)
            while pending:
                send_done(block=True)
        except BrokenProcessPool as exc:
            self._shutdown_pool()
            raise NewswireError(f"a producer worker process died: {exc}") from exc
        except BaseException:
            for future in pending:
                future.cancel()
            self._shutdown_pool()
            raise

    def start_workers(self) -> float:
        """Start the worker processes now rather than on the first large input.

        Returns the seconds it took (interpreter start and imports, once).
        """
        started = time.perf_counter()
        if self.workers > 1:
            pool = self._worker_pool()
            list(pool.map(_ping, range(self.workers)))
        return time.perf_counter() - started

    def _worker_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            # forkserver, not fork: this process has threads (the Kafka client's, the
            # progress bar's). The server imports the kernel and every registered
            # source module once; each worker is a cheap fork of it.
            from newswire import registry

            sources = {r.target.partition(":")[0] for r in registry.available(registry.SOURCES)}
            modules = ["newswire.publisher", *sorted(sources)]
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(modules)
            self._pool = cf.ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.encoder.write, self.encoder.max_bytes),
            )
        return self._pool

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _publish_inline(
        self,
        source: Source,
        summary: PublishSummary,
        rejects: RejectsFile,
        progress: Callable[[int], None],
    ) -> None:
        failed_at_checkpoint = self._failed
        try:
            for item in source:
                if isinstance(item, Checkpoint):
                    self.flush()
                    rejects.flush()
                    source.commit(item.token, self._failed == failed_at_checkpoint)
                    failed_at_checkpoint = self._failed
                    continue
                batch = Batch(read=1)
                if isinstance(item, Document):
                    result = self.encoder.document(item)
                    if isinstance(result, Reject):
                        batch.rejects.append(result)
                    else:
                        batch.records.append(result[0])
                        batch.extra_fields = result[1]
                else:
                    batch.rejects.append(item)
                self._send_batch(batch, summary, rejects, progress)
        except Exception as exc:  # a source broke its contract: report, go on with the others
            log.exception("source %s failed", source.name)
            self._send_batch(
                Batch([], [_source_failed(source, exc)], 1), summary, rejects, progress
            )

    def _send_batch(
        self,
        batch: Batch,
        summary: PublishSummary,
        rejects: RejectsFile,
        progress: Callable[[int], None],
    ) -> None:
        summary.read += batch.read
        summary.worker_cpu_s += batch.cpu_s
        self._read.inc(batch.read)
        if batch.extra_fields:
            self._extras.inc(batch.extra_fields)
        for key, value, ingested_at, where in batch.records:
            self._produce(key, value, ingested_at, where)
        for reject in batch.rejects:
            self._reject(reject, summary, rejects)
        progress(batch.read)

    def send(self, article: Article, *, origin: str = "") -> None:
        """Encode and send one article, keyed by its id."""
        result = self.encoder.document(Document(origin, article.model_dump(by_alias=False)))
        if isinstance(result, Reject):
            raise NewswireError(f"cannot send {origin or article.id}: {result}")
        (key, value, ingested_at, where), extras = result
        if extras:
            self._extras.inc(extras)
        self._produce(key, value, ingested_at, where)

    def _produce(self, key: bytes, value: bytes, ingested_at: bytes, where: str) -> None:
        """The one produce path: queue the record; its outcome is counted at the flush."""
        headers = [(INGESTED_AT_HEADER, ingested_at)] if self._headers else None
        self._queued += 1
        try:
            self.producer.produce(self.topic, value, key=key, headers=headers, context=where)
        except BrokerError as exc:  # refused before sending (too large…): this record only
            self._not_acked(exc, where)

    def flush(self) -> None:
        """Wait until every sent record is acknowledged or failed; count and report both."""
        if self._producer is not None:
            self._settle(self._producer.flush())

    def close(self) -> None:
        """Flush and close the Kafka producer; stop the worker processes."""
        self._shutdown_pool()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self._settle(producer.close(timeout_s=30))
            self._count_acks()  # an interrupted run: what the close flushed counts too

    def _settle(self, failed: list[Delivery]) -> None:
        """After a flush: the *failed* ones are reported, every other queued record was
        acknowledged."""
        for delivery in failed:
            self._not_acked(delivery.error or RuntimeError("not acknowledged"), delivery.context)
        acked = self._queued - self._failed - self._sent
        if acked > 0:
            self._sent += acked
            self._acked_total.inc(acked)

    def _not_acked(self, exc: BaseException, where: str) -> None:
        self._failed += 1
        self.metrics.send_errors.labels(self.name, self.topic, type(exc).__name__).inc()
        log.error("%s: not acknowledged by the broker: %s", where, exc)

    def _reject(self, reject: Reject, summary: PublishSummary, rejects: RejectsFile) -> None:
        summary.rejected += 1
        summary.rejects_by_kind[reject.kind] += 1
        self.metrics.rejected.labels(self.name, self.topic, reject.kind).inc()
        rejects.write(reject)
        log.warning("rejected %s", reject)
