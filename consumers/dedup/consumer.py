"""The ``dedup`` consumer: exact duplicates by canonical URL and by content fingerprint.

Reads ``articles.raw``; the first record of an article goes on to
``articles.unique`` unchanged (same bytes, key and partition); every later copy
becomes a :class:`~newswire.model.Sighting` on ``articles.duplicates`` naming
the kept article and the reason (``url`` or ``content``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from consumers.dedup.fingerprint import content_fingerprint
from consumers.dedup.state import Claim, SeenIndex, SqliteSeenIndex
from newswire import Consumer, Event
from newswire.errors import ConfigError
from newswire.serde import SIGHTING
from newswire.store import sqlite_path
from newswire.topics import DUPLICATES, RAW, UNIQUE

__all__ = ["DedupConsumer", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """The judgement on one record: kept, or a duplicate of ``kept_id`` for ``reason``."""

    kept_id: str
    reason: str = ""
    similarity: float = 1.0

    @property
    def duplicate(self) -> bool:
        """True for a duplicate."""
        return bool(self.reason)


def open_index(url: str, max_entries: int) -> SeenIndex:
    """The dedup state named by *url* (``sqlite:///PATH``)."""
    if url.startswith("sqlite:"):
        return SqliteSeenIndex(sqlite_path(url), max_entries=max_entries)
    raise ConfigError(f"unsupported dedup state URL {url!r} (use sqlite:///PATH)", url=url)


class DedupConsumer(Consumer):
    """Keeps the first copy of each article; reports the others as sightings."""

    name = "dedup"
    topics = (RAW,)

    def setup(self) -> None:
        settings = self.context.settings.dedup
        self.min_chars = settings.min_content_chars
        self.index = open_index(settings.state_url, settings.max_entries)
        registry = self.context.registry
        self._duplicates = Counter(
            "newswire_dedup_duplicates_total",
            "Duplicates found, by reason.",
            ("consumer", "topic", "reason"),
            registry=registry,
        )
        self._remembered = Gauge(
            "newswire_dedup_state_entries",
            "Keys remembered by the dedup state.",
            ("consumer", "topic"),
            registry=registry,
        )
        self._evictions = Counter(
            "newswire_dedup_evictions_total",
            "Keys evicted from the dedup state at its bound.",
            ("consumer", "topic"),
            registry=registry,
        )
        self._remembered.labels(self.name, RAW).set(len(self.index))

    def close(self) -> None:
        self.index.close()

    def judge(self, event: Event) -> Verdict:
        """Decide whether *event* is the first copy of its article; remember its keys."""
        record = event.record
        own_id = record["id"]
        keys = [("url", f"u:{own_id}")]
        fingerprint = content_fingerprint(record, self.min_chars)
        if fingerprint:
            keys.append(("content", f"c:{fingerprint}"))
        me = f"{event.topic}/{event.partition}/{event.offset}"
        claims = self.index.lookup([k for _, k in keys])
        verdict = Verdict(own_id)
        for reason, key in keys:
            claim = claims.get(key)
            if claim is None:
                continue
            if claim.claimant != me:
                verdict = Verdict(claim.kept_id, reason)
                break
            if claim.reason:  # our own earlier judgement, delivered again
                verdict = Verdict(claim.kept_id, claim.reason)
                break
        unclaimed = [k for _, k in keys if k not in claims]
        if unclaimed:
            self.index.claim(unclaimed, Claim(verdict.kept_id, me, verdict.reason))
        return verdict

    def handle_batch(self, events: list[Event]) -> None:
        verdicts = [self.judge(event) for event in events]
        evicted_before = getattr(self.index, "evicted", 0)
        # The state is durable before anything is emitted; a crash after this
        # point re-judges the same records to the same verdicts.
        self.index.commit()
        now = dt.datetime.now(dt.UTC)
        for event, verdict in zip(events, verdicts, strict=True):
            if verdict.duplicate:
                self._duplicates.labels(self.name, event.topic, verdict.reason).inc()
                self.emit(
                    DUPLICATES,
                    self._sighting(event, verdict, now),
                    schema=SIGHTING,
                    key=verdict.kept_id,
                )
            else:
                self.emit(UNIQUE, event.value, key=event.key, partition=event.partition)
        self._remembered.labels(self.name, RAW).set(len(self.index))
        evicted = getattr(self.index, "evicted", 0) - evicted_before
        if evicted:
            self._evictions.labels(self.name, RAW).inc(evicted)

    @staticmethod
    def _sighting(event: Event, verdict: Verdict, now: dt.datetime) -> dict[str, object]:
        record = event.record
        return {
            "id": record["id"],
            "url": record["original_url"],
            "canonical_url": record["canonical_url"],
            "duplicate_of": verdict.kept_id,
            "reason": verdict.reason,
            "similarity": verdict.similarity,
            "title": record["title"],
            "provider_domain": (record.get("provider") or {}).get("domain", ""),
            "seen_at": now,
            "source_topic": event.topic,
            "source_partition": event.partition,
            "source_offset": event.offset,
        }
