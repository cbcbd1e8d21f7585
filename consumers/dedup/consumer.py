"""The ``dedup`` consumer: exact duplicates (URL, content) and near-duplicates (syndicated copies).

Reads ``articles.raw``; the first record of an article goes on to
``articles.unique`` unchanged (same bytes, key and partition); every later copy
becomes a :class:`~newswire.model.Sighting` on ``articles.duplicates`` naming
the kept article, the reason and the similarity:

``url``
    the same canonical URL (tracking parameters, AMP, scheme… do not matter)
    with the same title, excerpt and body as the newest version remembered (a
    re-send), or an older version (by published time, then ingest time) than
    the newest one: a sighting only;
``update``
    the same canonical URL with another title, excerpt or body, not older than
    the newest version remembered: a new version of a kept article. It goes on
    to ``articles.unique`` like a first copy — an ordinary Article event with
    the same article id (the contract with the store, which keeps the newest
    version and counts revisions) — *and* is reported as a sighting;
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

Keys: every copy and version of an article must be on one partition of
``articles.raw`` (its Kafka key is the article id), so that one instance sees
them in order. A record whose key is not its article id is not judged where it
landed: it is sent to ``articles.raw`` again, keyed by its id (so on the
article's partition), with the header ``newswire.rekeyed_from`` naming where it
was; it is judged when it comes back, as the record it was (its claimant is the
original position, so re-keying twice after a crash still gives one verdict).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import xxhash
from prometheus_client import Counter, Gauge

from consumers.dedup.fingerprint import content_hash, tokens
from consumers.dedup.index import open_index
from consumers.dedup.settings import DedupSettings
from consumers.dedup.sketch import Sketch, estimate, sketch_many
from consumers.dedup.state import (
    KEPT,
    REASONS,
    STORED,
    UPDATE,
    Entry,
    SeenIndex,
    band_keys_of,
    claim_key,
    claimant_of,
    content_key,
    id_number,
    id_text,
    url_key,
)
from newswire import Consumer, Event, Outcome
from newswire.errors import RetriableError
from newswire.serde import SIGHTING
from newswire.settings import Settings
from newswire.topics import DUPLICATES, RAW, UNIQUE

__all__ = ["REKEYED_FROM_HEADER", "DedupConsumer", "Verdict"]

#: Header of a record dedup re-sent keyed by its article id: ``topic/partition/offset`` it had.
REKEYED_FROM_HEADER = "newswire.rekeyed_from"
#: Header with the Kafka key the re-keyed record had (absent when it had none).
ORIGINAL_KEY_HEADER = "newswire.original_key"

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
        """True for a sighting only (not sent on to articles.unique)."""
        return bool(self.reason) and self.reason != "update"

    @property
    def update(self) -> bool:
        """True for a new version of a kept article: sent on *and* reported as a sighting."""
        return self.reason == "update"


@dataclass(slots=True)
class _Record:
    """What the judge needs of one event, computed once per batch."""

    article_id: str
    article: int
    claimant: int
    event_time: int
    #: Ingest time in ms (the tie-break between two versions of one published time).
    ingested: int
    content: int | None
    #: Fingerprint of title, excerpt and body: two versions differ when it differs.
    version: int
    words: list[str]
    numbers: int | None = None
    sketch: Sketch | None = None
    #: URL key, content key (if any text), band keys (if sketched), in that order.
    keys: list[int] = field(default_factory=list)


def _times(event: Event, now: float) -> tuple[int, int]:
    """(event time in s: published, else ingested, else the record's timestamp; ingest time in
    ms: ingested, else the record's timestamp), neither further ahead than a day from now."""
    record = event.record
    fallback = event.timestamp_ms / 1000 if event.timestamp_ms > 0 else now
    ingested = record.get("ingested_at")
    ingested_s = ingested.timestamp() if isinstance(ingested, dt.datetime) else fallback
    published = record.get("published_at")
    event_s = published.timestamp() if isinstance(published, dt.datetime) else ingested_s
    limit = now + _FUTURE_S
    return int(min(event_s, limit)), int(min(ingested_s, limit) * 1000)


class DedupConsumer(Consumer):
    """Keeps the first copy of each article; reports the others as sightings."""

    name = "dedup"
    topics = (RAW,)
    settings_model = DedupSettings
    #: A projected decode: what judging and the sighting read (the bytes go on unchanged).
    fields = (
        "id",
        "original_url",
        "canonical_url",
        "title",
        "excerpt",
        "body",
        "published_at",
        "ingested_at",
        "provider",
    )
    # A sighting ends a document's journey; an update goes on to the store as an article.
    outcomes = (
        Outcome(
            "duplicate sightings",
            "newswire_dedup_duplicates_total",
            split="reason",
            exclude=("update",),
        ),
        Outcome(
            "updates (counted in stored)",
            "newswire_dedup_duplicates_total",
            labels=(("reason", "update"),),
            terminal=False,
        ),
    )

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
            "Sightings reported on articles.duplicates, by reason (update: also sent on).",
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
        self._rekeyed = Counter(
            "newswire_dedup_rekeyed_total",
            "Records whose Kafka key was not their article id, sent to articles.raw again "
            "keyed by the id.",
            labels,
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
        # The children counted per candidate, looked up once (labels() costs more than inc()).
        self._checked_duplicate = self._checks.labels(self.name, RAW, "duplicate")
        self._checked_distinct = self._checks.labels(self.name, RAW, "distinct")
        # Exported from the start (at 0), not from the first eviction or conflict on.
        self._evictions.labels(self.name, RAW)
        self._conflicts.labels(self.name, RAW)
        self._rekeyed.labels(self.name, RAW)
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
                moved = {key for e in entries for key, _, _ in e.takeover}
                if (lost - known) | (lost & moved):
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
        min_chars = self.min_chars
        min_words = self.near_min_words
        for event in events:
            record = event.record
            article_id = record["id"]
            raw_title = record.get("title") or ""
            title = tokens(raw_title)
            title_text = " ".join(title)
            excerpt = record.get("excerpt")
            excerpt_words = tokens(excerpt) if excerpt else []
            excerpt_text = " ".join(excerpt_words)
            body = record.get("body")
            words = tokens(body) if body else []
            text = " ".join(words)
            # The text an article is compared by (see ``content_text``): the body, else
            # title and excerpt, else nothing (too short to tell articles apart).
            body_text = text
            if len(text) < min_chars:
                text = f"{title_text} {excerpt_text}".strip()
                words = title + excerpt_words if len(text) >= min_chars else []
                if not words:
                    text = ""
            if not words:
                content = None
            elif len(words) < min_words:
                # Short texts are formulaic (briefs, scores, a site's boilerplate): the same
                # few words under two different titles are two articles.
                content = content_hash(f"{title_text}\n{text}")
            else:
                content = content_hash(text)
            event_time, ingested = _times(event, now)
            records.append(
                _Record(
                    article_id,
                    id_number(article_id),
                    _claimant(event),
                    event_time,
                    ingested,
                    content,
                    content_hash(f"{title_text}\n{excerpt_text}\n{body_text}"),
                    words,
                    _title_numbers(title) if _HAS_DIGIT(raw_title) else None,
                )
            )
        if self.near:
            long_enough = [r for r in records if len(r.words) >= min_words]
            for r, sketch in zip(
                long_enough, sketch_many([r.words for r in long_enough]), strict=True
            ):
                r.sketch = sketch
        for r in records:
            keys = r.keys = [url_key(r.article)]
            if r.content is not None:
                keys.append(content_key(r.content))
            if r.sketch is not None:
                keys.extend(band_keys_of(r.sketch.bands))
        return records

    def _judge(self, records: list[_Record]) -> tuple[list[Verdict], list[Entry], set[int]]:
        """Verdicts and new entries for *records*, and the keys known to be held by others."""
        held = self.index.lookup({key for r in records for key in r.keys})
        # A record whose URL leads to a stored version made by another record may be a version
        # that has given up its URL key to a newer one since: look for its claim key too.
        claims = {
            claim_key(r.claimant)
            for r in records
            if (h := held.get(r.keys[0])) is not None
            and h.reason in STORED
            and h.claimant != r.claimant
        }
        if claims:
            held.update(self.index.lookup(claims))
        known = set(held)
        verdicts: list[Verdict] = []
        entries: list[Entry] = []
        for r in records:
            verdict, entry = self._decide(r, held)
            verdicts.append(verdict)
            if entry is not None:
                url = entry.keys[0] if entry.reason == UPDATE else None
                entry.keys = [k for k in entry.keys if k not in held or k == url]
                if url is not None:
                    previous = held[url]
                    self._take_over(url, previous, entry)
                    if previous.claim:
                        held[claim_key(previous.claimant)] = previous
                    held[url] = entry
                for key in entry.keys:
                    held[key] = entry
                entries.append(entry)
        return verdicts, entries, known

    @staticmethod
    def _take_over(url: int, previous: Entry, entry: Entry) -> None:
        """Make the update *entry* the holder of the URL key *url*, held by *previous*."""
        if previous.seq:
            # Stored in an earlier batch: a compare-and-set on the key's holder, which is given
            # its claim key (its record may be delivered again: the runtime re-runs a failed
            # batch one record at a time, each judged and stored, before committing offsets).
            entry.keys.remove(url)
            entry.takeover.append((url, previous.seq, claim_key(previous.claimant)))
            previous.claim = True
            return
        # Judged in this batch: hand the key (or the take-over of it) on before anything is
        # stored; the earlier version claims its claim key to find itself by on redelivery.
        if url in previous.keys:
            previous.keys.remove(url)
        else:
            moved = [t for t in previous.takeover if t[0] == url]
            previous.takeover = [t for t in previous.takeover if t[0] != url]
            entry.keys.remove(url)
            entry.takeover.extend(moved)
        previous.claim = True
        previous.keys.append(claim_key(previous.claimant))

    def _decide(self, r: _Record, held: dict[int, Entry]) -> tuple[Verdict, Entry | None]:
        keys = r.keys
        holders = [held[k] for k in keys if k in held]
        # Our own earlier judgement, delivered again (after a crash, or a batch re-run).
        own = held.get(claim_key(r.claimant))
        if own is not None and own.claimant == r.claimant:
            return _verdict_of(own), None
        for holder in holders:
            if holder.claimant == r.claimant:
                return _verdict_of(holder), None

        url_holder = held.get(url_key(r.article))
        if url_holder is not None and url_holder.article == r.article:
            verdict = Verdict(url_holder.kept_id, "url")
            changed = (
                r.version != url_holder.version
                if url_holder.version is not None
                # Remembered before versions were: the text is all there is to compare.
                else r.content is not None and r.content != url_holder.content
            )
            if (
                url_holder.reason in STORED
                and changed
                and (r.event_time, r.ingested) >= (url_holder.event_time, url_holder.ingested or 0)
            ):
                # A new version of a kept article: it takes over the URL key, and claims
                # the keys of its text (its copies elsewhere are copies of the article).
                new = _entry(r, UPDATE, url_holder)
                new.keys = list(keys)
                return Verdict(url_holder.kept_id, "update"), new
            if r.content is None or r.content == url_holder.content:
                return verdict, None
            # The same URL with another text: remember the text too (as the kept article's),
            # so that copies of this version are found.
            new = _entry(r, _URL, url_holder)
            new.keys = keys[1:]
            return verdict, new

        if r.content is not None:
            content_holder = held.get(content_key(r.content))
            if (
                content_holder is not None
                and content_holder.content == r.content
                and not _other_numbers(content_holder, r)
            ):
                new = _entry(r, _CONTENT, content_holder)
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
                (self._checked_duplicate if duplicate else self._checked_distinct).inc()
                if duplicate and similarity > best_similarity:
                    best, best_similarity = holder, similarity
            if best is not None:
                similarity = round(best_similarity, 4)
                new = _entry(r, _NEAR, best, similarity)
                new.keys = keys[:2] if r.content is not None else keys[:1]
                return Verdict(best.kept_id, "near", similarity), new

        new = _entry(r, KEPT, None)
        new.keys = keys
        return Verdict(r.article_id), new

    # -- emitting ------------------------------------------------------------------------------

    def handle_batch(self, events: list[Event]) -> None:
        judged = []
        for event in events:
            if event.key is not None and event.key == event.record["id"].encode():
                judged.append(event)
            else:
                self._rekey(event)
        # The state is durable before anything is emitted; a crash after this
        # point re-judges the same records to the same verdicts.
        verdicts = self.judge_batch(judged)
        now = dt.datetime.now(dt.UTC)
        for event, verdict in zip(judged, verdicts, strict=True):
            if verdict.reason:
                self._duplicates.labels(self.name, event.topic, verdict.reason).inc()
                self.emit(
                    DUPLICATES,
                    self._sighting(event, verdict, now),
                    schema=SIGHTING,
                    key=verdict.kept_id,
                )
            if not verdict.duplicate:
                self.emit(UNIQUE, event.value, key=event.key, partition=event.partition)

    def _rekey(self, event: Event) -> None:
        """Send a record keyed by something else than its article id back, keyed by the id.

        Judging it where it landed would break "every copy of an article on one
        partition": a version of the article on its own partition could be judged
        at the same time, in another order, by another instance.
        """
        article_id = event.record["id"]
        if not any(name == REKEYED_FROM_HEADER for name, _ in event.headers):
            # Re-keyed once already, it keeps the position it was first seen at.
            headers = [
                *event.headers,
                (REKEYED_FROM_HEADER, f"{event.topic}/{event.partition}/{event.offset}".encode()),
            ]
            if event.key is not None:
                headers.append((ORIGINAL_KEY_HEADER, event.key))
        else:
            headers = list(event.headers)
        self._rekeyed.labels(self.name, event.topic).inc()
        self.context.log.warning(
            "%s: Kafka key %r is not the article id %r; sent to %s again, keyed by the id",
            event.where,
            event.key,
            article_id,
            RAW,
        )
        self.emit(RAW, event.value, key=article_id, headers=headers)

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


def _claimant(event: Event) -> int:
    """The claimant of an event: its position, or the position it had before dedup re-keyed it."""
    for name, value in event.headers:
        if name == REKEYED_FROM_HEADER:
            try:
                topic, partition, offset = bytes(value).decode("utf-8", "replace").rsplit("/", 2)
                return claimant_of(topic, int(partition), int(offset))
            except ValueError:
                break  # not ours: judged as the record it is
    return claimant_of(event.topic, event.partition, event.offset)


def _title_numbers(title: list[str]) -> int | None:
    """A hash of the set of numbers in the title (its tokens), or None when it has none."""
    # isalpha() first: most words have no digit, and it is cheaper than the regex.
    numbers = sorted({w for w in title if not w.isalpha() and _HAS_DIGIT(w)})
    if not numbers:
        return None
    return xxhash.xxh32_intdigest(" ".join(numbers).encode()) - (1 << 31)


def _other_numbers(holder: Entry, r: _Record) -> bool:
    """Title-number guard: both titles carry numbers, and not the same ones.

    "ACME 1ST QTR NET" and "ACME 2ND QTR NET", "matchday 5" and "matchday 6", "3 dead"
    and "death toll rises to 12" are different articles however alike their texts.
    """
    return holder.numbers is not None and r.numbers is not None and holder.numbers != r.numbers


def _entry(r: _Record, reason: int, kept: Entry | None, similarity: float = 1.0) -> Entry:
    """The entry that remembers *r*'s verdict (*reason*, a duplicate of *kept* unless None)."""
    stored = reason in STORED
    return Entry(
        article=r.article,
        kept=r.article if kept is None else kept.kept,
        claimant=r.claimant,
        reason=reason,
        similarity=similarity,
        event_time=r.event_time,
        content=r.content,
        # Kept for the entries that copies are compared with: versions, and other texts.
        sketch=r.sketch.data if r.sketch is not None and (stored or reason == _URL) else None,
        kept_text=_kept_text(r, kept),
        numbers=r.numbers,
        version=r.version if stored else None,
        ingested=r.ingested if stored else None,
    )


def _verdict_of(entry: Entry) -> Verdict:
    if entry.reason == KEPT:
        return Verdict(entry.kept_id)
    return Verdict(entry.kept_id, REASONS[entry.reason], entry.similarity)


def _kept_text(r: _Record, kept: Entry | None) -> str | None:
    """The kept id as text, when it cannot be rebuilt from its number (not 16 hex digits)."""
    if kept is not None:
        return kept.kept_text
    return None if id_text(r.article) == r.article_id else r.article_id
