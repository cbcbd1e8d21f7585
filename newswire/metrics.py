"""Prometheus metrics (DESIGN §5).

Every series starts with ``newswire_``, counters end in ``_total``, and every
series is labelled by ``consumer`` (or ``producer``) and ``topic`` — never by
article id. All series of a component live in one bundle built by
``create(registry, …)``, so tests use a fresh ``CollectorRegistry`` each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["ConsumerMetrics", "ProducerMetrics", "serve_metrics"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000)


@dataclass(frozen=True)
class ConsumerMetrics:
    """Series every consumer process has, whatever the consumer does."""

    records_in: Counter
    records_out: Counter
    dlq: Counter
    retries: Counter
    processing_seconds: Histogram
    batch_size: Histogram
    end_to_end_seconds: Histogram
    lag: Gauge
    skipped: Counter
    commits: Counter
    unavailable: Gauge
    group_rejoins: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        """Register the bundle in *registry*."""
        ct = ("consumer", "topic")
        return cls(
            records_in=Counter(
                "newswire_consumer_records_in_total",
                "Records consumed from a topic, counted once their offsets are committed.",
                ct,
                registry=registry,
            ),
            records_out=Counter(
                "newswire_consumer_records_out_total",
                "Records produced to a topic (flushed before the input is committed).",
                ct,
                registry=registry,
            ),
            dlq=Counter(
                "newswire_consumer_dlq_total",
                "Records sent to the dead-letter topic, by error class.",
                (*ct, "error"),
                registry=registry,
            ),
            retries=Counter(
                "newswire_consumer_retries_total",
                "Retries of a failing batch or record after a retriable error.",
                (*ct, "error"),
                registry=registry,
            ),
            processing_seconds=Histogram(
                "newswire_consumer_processing_seconds",
                "Time to process one batch: decode, handle, produce, flush and commit.",
                ct,
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "newswire_consumer_batch_size",
                "Records per polled batch.",
                ct,
                buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
            end_to_end_seconds=Histogram(
                "newswire_consumer_end_to_end_seconds",
                "Event time (ingest by the producer) to done in this stage.",
                ct,
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            lag=Gauge(
                "newswire_consumer_lag",
                "Records behind the partition's high watermark, from the consumer's own fetch.",
                (*ct, "partition"),
                registry=registry,
            ),
            skipped=Counter(
                "newswire_consumer_skipped_total",
                "Events a handler dropped on purpose by raising Skip.",
                ct,
                registry=registry,
            ),
            unavailable=Gauge(
                "newswire_consumer_unavailable",
                "1 while a dependency (e.g. the database) is down and the batch is being retried.",
                ct,
                registry=registry,
            ),
            commits=Counter(
                "newswire_consumer_commits_total",
                "Offset commits.",
                ct,
                registry=registry,
            ),
            group_rejoins=Counter(
                "newswire_consumer_group_rejoins_total",
                "Joins this member completed after finding its group wedged (a join that "
                "cannot complete on its own: Tansu 0.6, a leader that left mid-join).",
                ct,
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class ProducerMetrics:
    """Series of a producer process."""

    read: Counter
    sent: Counter
    rejected: Counter
    extra_fields: Counter
    send_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ProducerMetrics:
        """Register the bundle in *registry*."""
        pt = ("producer", "topic")
        return cls(
            read=Counter(
                "newswire_producer_documents_read_total",
                "Documents read from a source.",
                pt,
                registry=registry,
            ),
            sent=Counter(
                "newswire_producer_records_out_total",
                "Records acknowledged by the broker.",
                pt,
                registry=registry,
            ),
            rejected=Counter(
                "newswire_producer_rejected_total",
                "Documents rejected by validation, by reason.",
                (*pt, "reason"),
                registry=registry,
            ),
            extra_fields=Counter(
                "newswire_producer_extra_fields_total",
                "Unknown input fields kept in the record's extras map.",
                pt,
                registry=registry,
            ),
            send_errors=Counter(
                "newswire_producer_send_errors_total",
                "Records the broker did not acknowledge.",
                (*pt, "error"),
                registry=registry,
            ),
        )


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[Any, int]:
    """Serve ``/metrics`` on *port*, or on a free port (logged) if it is taken.

    Returns the server and the port it bound.
    """
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        server, _thread = start_http_server(0, addr=host, registry=registry)
        log.warning(
            "metrics port %d is taken (%s); serving on %d instead", port, exc, server.server_port
        )
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return server, bound
