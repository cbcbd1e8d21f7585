"""The ``dedup`` consumer: exact duplicates (URL, content) and near-duplicates (syndicated copies).

Reads ``articles.raw``; the first record of an article goes on to
``articles.unique`` unchanged (same bytes, key and partition); every later copy
becomes a :class:`~newswire.model.Sighting` on ``articles.duplicates`` naming
the kept article, the reason and the similarity:

``url``
    the same canonical URL (tracking parameters, AMP, scheme… do not matter);
``content``
    the same text, word for word after normalisation, under another URL;
``near``
    a syndicated copy: a dateline added, a credit line appended, quotes
    restyled, the last sentence cut… Found with MinHash LSH (:mod:`.sketch`)
    and confirmed by the estimated Jaccard similarity of the word 5-shingles
    (``similarity``), at least ``near_threshold``. Texts shorter than
    ``near_min_words`` words (earnings briefs, scores, tables) are compared
    exactly only.

The judgement of a batch and the state it leaves are one transaction of the
state (:mod:`.state`), committed before anything is emitted.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xxhash
from prometheus_client import Counter, Gauge

from consumers.dedup.fingerprint import content_hash, tokens
from consumers.dedup.index import open_index
from consumers.dedup.settings import DedupSettings
from consumers.dedup.sketch import Sketch, estimate, sketch_many
from consumers.dedup.state import (
    KEPT,
    REASONS,
    Entry,
    SeenIndex,
    band_keys_of,
    claimant_of,
    content_key,
    id_number,
    id_text,
    url_key,
)
from newswire import Consumer, Event
from newswire.errors import RetriableError
from newswire.serde import SIGHTING
from newswire.settings import Settings
from newswire.topics import DUPLICATES, RAW, UNIQUE

__all__ = ["DedupConsumer", "Verdict"]

_URL, _CONTENT, _NEAR = (REASONS.index(r) for r in ("url", "content", "near"))
_MAX_ATTEMPTS = 20  # claims lost to another instance before the batch is retried from scratch
_FUTURE_S = 86_400  # event times further ahead than this are taken as now + this


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


@dataclass(slots=True)
class _Record:
    """What the judge needs of one event, computed once per batch."""

    article_id: str
    article: int
    claimant: int
    event_time: int
    content: int | None
    words: list[str]
    numbers: int | None = None
    sketch: Sketch | None = None
    #: URL key, content key (if any text), band keys (if sketched), in that order.
    keys: list[int] = field(default_factory=list)


def _event_time(event: Event, now: float) -> int:
    record = event.record
    for name in ("published_at", "ingested_at"):
        value = record.get(name)
        if isinstance(value, dt.datetime):
            seconds = value.timestamp()
            break
    else:
        seconds = event.timestamp_ms / 1000 if event.timestamp_ms > 0 else now
    return int(min(seconds, now + _FUTURE_S))


def _text_words(record: Mapping[str, Any], min_chars: int) -> list[str]:
    """The words of the text an article is compared by (see ``content_text``)."""
    body = tokens(record.get("body") or "")
    if sum(map(len, body)) + len(body) - 1 >= min_chars:
        return body
    head = tokens(f"{record.get('title') or ''} {record.get('excerpt') or ''}")
    return head if sum(map(len, head)) + len(head) - 1 >= min_chars else []


class DedupConsumer(Consumer):
    """Keeps the first copy of each article; reports the others as sightings."""

    name = "dedup"
    topics = (RAW,)
    settings_model = DedupSettings

    @classmethod
    def state_url(cls, settings: Settings) -> str:
        """Where the state is: ``state_url``, or the runtime's state dir when it sets one.

        State records Kafka offsets, so with a memory-only broker (``newswire
        run``, which sets ``NEWSWIRE_RUNNER__STATE_DIR``) it lives with the run.
        """
        state_dir = settings.runner.state_dir
        if state_dir is not None:
            return f"sqlite:///{state_dir / 'dedup-state.sqlite'}"
        return settings.section(cls.name, DedupSettings).state_url

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Open the state once: a bad URL, a missing database, refused credentials fail here."""
        section = settings.section(cls.name, DedupSettings)
        url = cls.state_url(settings)
        open_index(url, max_entries=section.max_entries, window_s=section.window_s).close()

    def setup(self) -> None:
        settings = self.context.settings.section(self.name, DedupSettings)
        self.min_chars = settings.min_content_chars
        self.near = settings.near
        self.near_threshold = settings.near_threshold
        self.near_min_words = settings.near_min_words
        self.index: SeenIndex = open_index(
            self.state_url(self.context.settings),
            max_entries=settings.max_entries,
            window_s=settings.window_s,
        )
        registry = self.context.registry
        labels = ("consumer", "topic")
        self._duplicates = Counter(
            "newswire_dedup_duplicates_total",
            "Duplicates found, by reason.",
            (*labels, "reason"),
            registry=registry,
        )
        self._remembered = Gauge(
            "newswire_dedup_state_entries",
            "Articles remembered by the dedup state (kept ones and the duplicates' own URLs).",
            labels,
            registry=registry,
        )
        self._evictions = Counter(
            "newswire_dedup_evictions_total",
            "Remembered articles evicted at the state's bound (count or event-time window).",
            labels,
            registry=registry,
        )
        self._checks = Counter(
            "newswire_dedup_candidate_checks_total",
            "Near-duplicate candidates (shared LSH band) compared, by outcome.",
            (*labels, "outcome"),
            registry=registry,
        )
        self._conflicts = Counter(
            "newswire_dedup_claim_conflicts_total",
            "Batches judged again because another instance claimed a key first.",
            labels,
            registry=registry,
        )
        for reason in REASONS[1:]:
            self._duplicates.labels(self.name, RAW, reason)
        for outcome in ("duplicate", "distinct"):
            self._checks.labels(self.name, RAW, outcome)
        # Exported from the start (at 0), not from the first eviction or conflict on.
        self._evictions.labels(self.name, RAW)
        self._conflicts.labels(self.name, RAW)
        self._remembered.labels(self.name, RAW).set(len(self.index))

    def close(self) -> None:
        self.index.close()

    # -- judging -------------------------------------------------------------------------------

    def judge(self, event: Event) -> Verdict:
        """Judge one record (and remember it); see :meth:`judge_batch`."""
        return self.judge_batch([event])[0]

    def judge_batch(self, events: Sequence[Event]) -> list[Verdict]:
        """Judge *events* in order, each against the state and the events before it.

        The state is updated and committed before this returns. Judging the same
        events again (a redelivery) gives the same verdicts.
        """
        now = time.time()
        records = self._prepare(events, now)
        evicted_before = self.index.evicted
        for _attempt in range(_MAX_ATTEMPTS):
            self.index.begin()
            try:
                verdicts, entries, known = self._judge(records)
                lost = self.index.insert(entries)
                if lost - known:
                    # Another instance claimed a key that was free when we looked: judge
                    # the batch again, now against its claim.
                    self.index.rollback()
                    self._conflicts.labels(self.name, RAW).inc()
                    continue
                self.index.commit()
            except BaseException:
                self.index.rollback()
                raise
            break
        else:
            raise RetriableError(
                f"dedup: lost {_MAX_ATTEMPTS} claim races in a row; retrying the batch",
            )
        self._remembered.labels(self.name, RAW).set(len(self.index))
        evicted = self.index.evicted - evicted_before
        if evicted:
            self._evictions.labels(self.name, RAW).inc(evicted)
        return verdicts

    def _prepare(self, events: Sequence[Event], now: float) -> list[_Record]:
        records = []
        for event in events:
            record = event.record
            article_id = record["id"]
            words = _text_words(record, self.min_chars)
            records.append(
                _Record(
                    article_id=article_id,
                    article=id_number(article_id),
                    claimant=claimant_of(event.topic, event.partition, event.offset),
                    event_time=_event_time(event, now),
                    content=self._content(record, words),
                    words=words,
                    numbers=_title_numbers(record),
                )
            )
        if self.near:
            long_enough = [r for r in records if len(r.words) >= self.near_min_words]
            for r, sketch in zip(
                long_enough, sketch_many([r.words for r in long_enough]), strict=True
            ):
                r.sketch = sketch
        for r in records:
            r.keys = [url_key(r.article)]
            if r.content is not None:
                r.keys.append(content_key(r.content))
            if r.sketch is not None:
                r.keys.extend(band_keys_of(r.sketch.bands))
        return records

    def _content(self, record: Mapping[str, Any], words: list[str]) -> int | None:
        """The exact-content key: of the text, and of the title too for short texts.

        Short texts are formulaic (briefs, scores, a site's boilerplate): the
        same few words under two different titles are two articles.
        """
        if not words:
            return None
        text = " ".join(words)
        if len(words) < self.near_min_words:
            text = f"{' '.join(tokens(record.get('title') or ''))}\n{text}"
        return content_hash(text)

    def _judge(self, records: list[_Record]) -> tuple[list[Verdict], list[Entry], set[int]]:
        """Verdicts and new entries for *records*, and the keys known to be held by others."""
        held = self.index.lookup({key for r in records for key in r.keys})
        known = set(held)
        verdicts: list[Verdict] = []
        entries: list[Entry] = []
        for r in records:
            verdict, entry = self._decide(r, held)
            verdicts.append(verdict)
            if entry is not None:
                entry.keys = [k for k in entry.keys if k not in held]
                for key in entry.keys:
                    held[key] = entry
                entries.append(entry)
        return verdicts, entries, known

    def _decide(self, r: _Record, held: dict[int, Entry]) -> tuple[Verdict, Entry | None]:
        keys = r.keys
        holders = [held[k] for k in keys if k in held]
        # Our own earlier judgement, delivered again (after a crash, or a batch re-run).
        for holder in holders:
            if holder.claimant == r.claimant:
                return _verdict_of(holder), None

        def entry(reason: int, kept: Entry | None, similarity: float = 1.0) -> Entry:
            return Entry(
                article=r.article,
                kept=r.article if kept is None else kept.kept,
                kept_text=_kept_text(r, kept),
                claimant=r.claimant,
                reason=reason,
                similarity=similarity,
                event_time=r.event_time,
                content=r.content,
                numbers=r.numbers,
                sketch=r.sketch.data if (r.sketch is not None and reason in (KEPT, _URL)) else None,
            )

        url_holder = held.get(url_key(r.article))
        if url_holder is not None and url_holder.article == r.article:
            verdict = Verdict(url_holder.kept_id, "url")
            if r.content is None or r.content == url_holder.content:
                return verdict, None
            # The same URL with another text: remember the text too (as the kept article's),
            # so that copies of this version are found.
            new = entry(_URL, url_holder)
            new.keys = keys[1:]
            return verdict, new

        if r.content is not None:
            content_holder = held.get(content_key(r.content))
            if (
                content_holder is not None
                and content_holder.content == r.content
                and not _other_numbers(content_holder, r)
            ):
                new = entry(_CONTENT, content_holder)
                new.keys = keys[:1]
                return Verdict(content_holder.kept_id, "content"), new

        if r.sketch is not None:
            best, best_similarity = None, 0.0
            seen: set[int] = set()
            for holder in holders:
                if holder.sketch is None or id(holder) in seen:
                    continue
                seen.add(id(holder))
                similarity = estimate(holder.sketch, r.sketch.data)
                duplicate = similarity >= self.near_threshold and not _other_numbers(holder, r)
                self._checks.labels(self.name, RAW, "duplicate" if duplicate else "distinct").inc()
                if duplicate and similarity > best_similarity:
                    best, best_similarity = holder, similarity
            if best is not None:
                similarity = round(best_similarity, 4)
                new = entry(_NEAR, best, similarity)
                new.keys = keys[:2] if r.content is not None else keys[:1]
                return Verdict(best.kept_id, "near", similarity), new

        new = entry(KEPT, None)
        new.keys = keys
        return Verdict(r.article_id), new

    # -- emitting ------------------------------------------------------------------------------

    def handle_batch(self, events: list[Event]) -> None:
        # The state is durable before anything is emitted; a crash after this
        # point re-judges the same records to the same verdicts.
        verdicts = self.judge_batch(events)
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


_HAS_DIGIT = re.compile(r"\d").search


def _title_numbers(record: Mapping[str, Any]) -> int | None:
    """A hash of the set of numbers in the title, or None when it has none."""
    numbers = sorted({w for w in tokens(record.get("title") or "") if _HAS_DIGIT(w)})
    if not numbers:
        return None
    return xxhash.xxh32_intdigest(" ".join(numbers).encode()) - (1 << 31)


def _other_numbers(holder: Entry, r: _Record) -> bool:
    """Title-number guard: both titles carry numbers, and not the same ones.

    "ACME 1ST QTR NET" and "ACME 2ND QTR NET", "matchday 5" and "matchday 6", "3 dead"
    and "death toll rises to 12" are different articles however alike their texts.
    """
    return holder.numbers is not None and r.numbers is not None and holder.numbers != r.numbers


def _verdict_of(entry: Entry) -> Verdict:
    if entry.reason == KEPT:
        return Verdict(entry.kept_id)
    return Verdict(entry.kept_id, REASONS[entry.reason], entry.similarity)


def _kept_text(r: _Record, kept: Entry | None) -> str | None:
    """The kept id as text, when it cannot be rebuilt from its number (not 16 hex digits)."""
    if kept is not None:
        return kept.kept_text
    return None if id_text(r.article) == r.article_id else r.article_id
