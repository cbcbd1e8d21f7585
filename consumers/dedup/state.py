"""Dedup state: the remembered articles, the keys that lead to them, and who claimed them.

One **entry** per judged record that must be remembered: the article's id, the
article it was kept as (itself, or the original it duplicates), the verdict,
the *claimant* — the source record (topic/partition/offset, as a 64-bit hash)
that made the entry — its event time, its exact content hash and, for kept
articles long enough to compare, its MinHash sketch (:mod:`.sketch`). Entries
of stored versions (kept articles and their updates) also keep what the next
version is judged against: the version fingerprint (title, excerpt and body)
and the ingest time (published time, then ingest time, decide which is newer).

Entries are found through **keys**, each held by exactly one entry (the first
to claim it): the URL key (the article id), the content key (hash of the
normalised text) and the LSH band keys of the sketch. A key is claimed with an
insert that fails if the key is taken, so when two dedup instances judge two
copies of one story at the same moment, exactly one claim wins and the other
instance judges again, against the winner.

An **update** (a newer version under a known URL) *takes over* the URL key
from the version before it (a compare-and-set on the key's holder), so the URL
always leads to the newest version. The earlier version keeps its content and
band keys: copies of it are still found. A version that gives up its URL key
is given a *claim key* (a hash of its claimant) instead, so that it still finds
itself when its record is delivered again.

A record delivered again after a crash finds the entry it claimed itself and
gets the same verdict back — never "duplicate of itself" (DESIGN §4).

State is bounded: past ``max_entries`` entries, or when an entry's event time
falls more than ``window_s`` behind the newest event time remembered, the
oldest entries (in arrival order) are evicted with their keys.

Backends: :class:`SqliteSeenIndex` (default; one file, processes on one host
serialise through its write lock) and
:class:`~consumers.dedup.postgres.PostgresSeenIndex` (shared by the instances
of a consumer group on several hosts).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xxhash

from consumers.dedup.sketch import BANDS as BANDS_PER_SKETCH
from consumers.dedup.sketch import FORMAT, band_keys, band_keys_many
from newswire.errors import ConfigError

__all__ = [
    "KEPT",
    "REASONS",
    "UPDATE",
    "Entry",
    "SeenIndex",
    "SqliteSeenIndex",
    "band_keys_of",
    "claim_key",
    "claimant_of",
    "content_key",
    "entries_keys",
    "id_number",
    "sketch_keys",
    "url_key",
]

log = logging.getLogger(__name__)

#: Entry.reason codes: 0 kept, 4 an update of a kept article (also stored), else why the
#: claimant was a duplicate (the sighting's reason).
KEPT = 0
REASONS = ("", "url", "content", "near", "update")
UPDATE = REASONS.index("update")
#: Stored versions: the entries an arriving version under the same URL is judged against.
STORED = (KEPT, UPDATE)
#: Added to the stored reason code of an entry that holds its claim key.
CLAIM_FLAG = 16

_TAG_BITS = 4
_TAG_URL, _TAG_CONTENT, _TAG_BAND, _TAG_CLAIM = 0, 1, 2, 15


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def id_number(article_id: str) -> int:
    """An article id (16 hex digits) as a signed 64-bit integer; other ids are hashed."""
    if len(article_id) == 16:
        try:
            return _signed(int(article_id, 16))
        except ValueError:
            pass
    return _signed(xxhash.xxh3_64_intdigest(article_id.encode("utf-8")))


def id_text(number: int) -> str:
    """The 16-hex-digit id of :func:`id_number`."""
    return f"{_unsigned(number):016x}"


def claimant_of(topic: str, partition: int, offset: int) -> int:
    """The claimant of a source record, as a signed 64-bit hash of topic/partition/offset."""
    return _signed(xxhash.xxh3_64_intdigest(f"{topic}/{partition}/{offset}".encode()))


def _tagged(value: int, tag: int) -> int:
    return _signed(((_unsigned(value) >> _TAG_BITS) << _TAG_BITS) | tag)


def url_key(article: int) -> int:
    """The key of an article's URL identity."""
    return _tagged(article, _TAG_URL)


def content_key(content: int) -> int:
    """The key of an exact normalised text."""
    return _tagged(content, _TAG_CONTENT)


def claim_key(claimant: int) -> int:
    """The key a stored version holds when it has given up its URL key to a newer one."""
    return _tagged(claimant, _TAG_CLAIM)


def sketch_keys(sketch: bytes) -> list[int]:
    """The band keys of a stored sketch."""
    return band_keys_of(band_keys(sketch))


def band_keys_of(values: Sequence[int]) -> list[int]:
    """The keys of LSH band values, band by band."""
    return [(v << _TAG_BITS) | (_TAG_BAND + i) for i, v in enumerate(values)]


@dataclass(slots=True)
class Entry:
    """A remembered record (``seq`` is 0 until it is stored)."""

    article: int
    kept: int
    claimant: int
    reason: int
    similarity: float
    event_time: int
    content: int | None = None
    sketch: bytes | None = None
    kept_text: str | None = None  # the kept id, when it is not 16 hex digits
    #: Hash of the numbers in the title (None: no number there), for the title-number guard.
    numbers: int | None = None
    #: Stored versions only: fingerprint of title, excerpt and body, and ingest time (ms).
    version: int | None = None
    ingested: int | None = None
    #: Whether this entry holds its claim key (:func:`claim_key`).
    claim: bool = False
    seq: int = 0
    #: The keys this entry is to claim (set by the judge; not stored as such).
    keys: list[int] = field(default_factory=list)
    #: (key, seq, claim key) of keys to take over from the stored entry *seq* holding them,
    #: which is given its claim key instead (set by the judge).
    takeover: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def kept_id(self) -> str:
        """The id of the article this entry's record was kept as."""
        return self.kept_text if self.kept_text is not None else id_text(self.kept)


def entries_keys(entries: Sequence[Entry]) -> list[list[int]]:
    """Every key each of *entries* may hold (the band keys of all computed at once)."""
    sketched = [e.sketch for e in entries if e.sketch is not None]
    bands = iter(band_keys_many(sketched))
    out = []
    for entry in entries:
        keys = [url_key(entry.article)]
        if entry.content is not None:
            keys.append(content_key(entry.content))
        if entry.sketch is not None:
            keys.extend(band_keys_of(next(bands)))
        if entry.claim:
            keys.append(claim_key(entry.claimant))
        out.append(keys)
    return out


class SeenIndex(Protocol):
    """Remembered entries and their keys, private to one dedup process or shared by a group.

    A batch is judged between :meth:`begin` and :meth:`commit`: look keys up,
    insert the new entries, evict beyond the bounds, commit. :meth:`insert`
    returns the keys it could not claim or take over; if one of them was free
    at :meth:`lookup` time, or is one to take over (its holder changed), another
    instance got there first, and the judge rolls back and judges the batch again.
    """

    #: Entries evicted since the index was opened.
    evicted: int

    def begin(self) -> None:
        """Start judging a batch."""
        ...

    def lookup(self, keys: Collection[int]) -> dict[int, Entry]:
        """The entries holding those of *keys* that are held."""
        ...

    def insert(self, entries: Sequence[Entry]) -> set[int]:
        """Store *entries*, claim their ``keys`` and take over their ``takeover`` keys
        (each only from the entry named); return the keys already held by others."""
        ...

    def rollback(self) -> None:
        """Forget everything since :meth:`begin`."""
        ...

    def commit(self) -> None:
        """Evict beyond the bounds and make the batch durable."""
        ...

    def __len__(self) -> int:
        """Entries remembered."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


# -- the key filter --------------------------------------------------------------------------------

_FILTER_BITS_PER_KEY = 10
_FILTER_HASHES = 3  # false positives ≈ 1.7 % at 10 bits per key
_FILTER_MIX = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64
)


class KeyFilter:
    """A Bloom filter over held keys: most keys a batch looks up are held by nobody (every
    new article's), and most of the state's cost is in finding that out in the B-tree.

    Never a false "free": every key that may be held was added. Keys of evicted entries
    stay in it (only a false "maybe", then asked of the database) until :meth:`stale`
    says the filter has seen twice the keys it was sized for, and it is rebuilt.
    """

    def __init__(self, capacity: int) -> None:
        bits = 1 << max(16, int(capacity * _FILTER_BITS_PER_KEY - 1).bit_length())
        self._shift = np.uint64(64 - (bits.bit_length() - 1))
        self._words = np.zeros(bits // 64, dtype=np.uint64)
        self.capacity = capacity
        self.added = 0

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (keys.view(np.uint64)[None, :] * _FILTER_MIX[:, None]) >> self._shift

    def add(self, keys: np.ndarray) -> None:
        """Add int64 *keys*."""
        if not len(keys):
            return
        slots = self._slots(keys).ravel()
        np.bitwise_or.at(
            self._words, slots >> np.uint64(6), np.uint64(1) << (slots & np.uint64(63))
        )
        self.added += len(keys)

    def maybe(self, keys: np.ndarray) -> np.ndarray:
        """For each of int64 *keys*: False if it is surely not held."""
        slots = self._slots(keys)
        bits = (self._words[slots >> np.uint64(6)] >> (slots & np.uint64(63))) & np.uint64(1)
        return np.asarray(bits.all(axis=0))

    @property
    def stale(self) -> bool:
        """Whether evicted entries' keys have made it too full to be of use."""
        return self.added > 2 * self.capacity


def _keys_of_rows(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    """Every key the entries of *rows* (article, content, sketch, reason, claimant) may hold,
    claim keys of every stored version included (a superset is all a filter needs)."""
    if not rows:
        return np.zeros(0, dtype=np.int64)
    articles = np.array([r[0] for r in rows], dtype=np.int64).view(np.uint64)
    contents = np.array([r[1] for r in rows if r[1] is not None], dtype=np.int64).view(np.uint64)
    sketches = [bytes(r[2]) for r in rows if r[2] is not None]
    claimants = np.array(
        [r[4] for r in rows if (int(r[3]) & ~CLAIM_FLAG) in STORED or int(r[3]) & CLAIM_FLAG],
        dtype=np.int64,
    ).view(np.uint64)
    low = ~np.uint64((1 << _TAG_BITS) - 1)
    parts = [
        (articles & low) | np.uint64(_TAG_URL),
        (contents & low) | np.uint64(_TAG_CONTENT),
        (claimants & low) | np.uint64(_TAG_CLAIM),
    ]
    if sketches:
        values = np.array(band_keys_many(sketches), dtype=np.uint64)
        tags = np.arange(values.shape[1], dtype=np.uint64) + np.uint64(_TAG_BAND)
        parts.append(((values << np.uint64(_TAG_BITS)) | tags[None, :]).ravel())
    return np.concatenate(parts).view(np.int64)


def _entry_keys_array(entries: Sequence[Entry]) -> np.ndarray:
    """The keys of new entries for the filter (claimed, taken over and claim keys)."""
    keys: list[int] = []
    for e in entries:
        keys.extend(e.keys)
        keys.extend(grant for _, _, grant in e.takeover)
        if e.reason in STORED:
            keys.append(claim_key(e.claimant))
    return np.array(keys, dtype=np.int64)


# -- SQLite ------------------------------------------------------------------------------------

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS dedup_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_entries (
    seq INTEGER PRIMARY KEY,
    article INTEGER NOT NULL,
    kept INTEGER NOT NULL,
    claimant INTEGER NOT NULL,
    reason INTEGER NOT NULL,
    similarity REAL,
    event_time INTEGER NOT NULL,
    content INTEGER,
    sketch BLOB,
    kept_text TEXT,
    numbers INTEGER,
    version INTEGER,
    ingested INTEGER
);
CREATE TABLE IF NOT EXISTS dedup_keys (key INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
"""
ENTRY_COLUMNS = (
    "article, kept, claimant, reason, similarity, event_time, content, sketch, kept_text, "
    "numbers, version, ingested, seq"
)
#: Columns added since the first release of this table (added to an older state on open).
ADDED_COLUMNS = ("version", "ingested")
JOINED_ENTRY_COLUMNS = ", ".join(f"e.{c.strip()}" for c in ENTRY_COLUMNS.split(","))
_EVICT_CHUNK = 2000
_CACHE_BYTES_PER_ENTRY = 200


def entry_from_row(row: Sequence[Any]) -> Entry:
    """An :class:`Entry` from a row of ENTRY_COLUMNS (either backend)."""
    (
        article,
        kept,
        claimant,
        reason,
        similarity,
        event_time,
        content,
        sketch,
        kept_text,
        numbers,
        version,
        ingested,
        seq,
    ) = row
    code = int(reason)
    return Entry(
        article=int(article),
        # 0: the entry's own article (stored as 0, which SQLite writes in no bytes at all).
        kept=int(kept) or int(article),
        claimant=int(claimant),
        reason=code & ~CLAIM_FLAG,
        similarity=1.0 if similarity is None else round(float(similarity), 4),
        event_time=int(event_time),
        content=None if content is None else int(content),
        sketch=None if sketch is None else bytes(sketch),
        kept_text=None if kept_text is None else str(kept_text),
        numbers=None if numbers is None else int(numbers),
        version=None if version is None else int(version),
        ingested=None if ingested is None else int(ingested),
        claim=bool(code & CLAIM_FLAG),
        seq=int(seq),
    )


def stored_reason(entry: Entry) -> int:
    """The reason column of *entry*: its code, with the claim-key flag."""
    return entry.reason | (CLAIM_FLAG if entry.claim else 0)


def eviction_victims(rows: Sequence[Sequence[Any]], excess: int, cutoff: int | None) -> list[Entry]:
    """The oldest entries of *rows* (in seq order) to evict: *excess* of them for the
    count bound, then those whose event time is before *cutoff* (the window)."""
    victims: list[Entry] = []
    for row in rows:
        entry = entry_from_row(row)
        if len(victims) < excess or (cutoff is not None and entry.event_time < cutoff):
            victims.append(entry)
        else:
            break
    return victims


def victim_keys(victims: Sequence[Entry]) -> list[tuple[int, int]]:
    """(key, seq) of every key the *victims* hold."""
    return [
        (key, e.seq) for e, keys in zip(victims, entries_keys(victims), strict=True) for key in keys
    ]


def entry_row(entry: Entry) -> tuple[object, ...]:
    """The values of ENTRY_COLUMNS for *entry* (either backend)."""
    return (
        entry.article,
        entry.kept,
        entry.claimant,
        stored_reason(entry),
        entry.similarity if entry.reason == REASONS.index("near") else None,
        entry.event_time,
        entry.content,
        entry.sketch,
        entry.kept_text,
        entry.numbers,
        entry.version,
        entry.ingested,
        entry.seq,
    )


class SqliteSeenIndex:
    """A SeenIndex in one SQLite file (WAL).

    A batch runs in one ``BEGIN IMMEDIATE`` transaction: processes sharing the
    file on one host take turns, so lookup and claim are atomic. Sharing across
    hosts needs the PostgreSQL backend.
    """

    def __init__(
        self, path: str | Path, *, max_entries: int = 1_000_000, window_s: int = 0
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self.window_s = window_s
        self.evicted = 0
        self._db = sqlite3.connect(
            self.path, isolation_level=None, timeout=60, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # The key B-tree is written and read at random places: with fewer of its pages
        # cached than it has, each batch reads and writes pages from the file, and the cost
        # per article grows with the state. ~200 B per remembered article holds the keys
        # (≈ 140 B) and the entries' hot ends (newest and oldest); 64 MiB at least.
        cache_kib = max(65_536, max_entries * _CACHE_BYTES_PER_ENTRY // 1024)
        self._db.execute(f"PRAGMA cache_size=-{cache_kib}")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._migrate()
            self._size = int(self._db.execute("SELECT count(*) FROM dedup_entries").fetchone()[0])
            self._watermark = int(self._meta("watermark") or 0)
            self._build_filter()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._db.close()
            raise
        self._next_seq = 0

    def _migrate(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if "seen" in tables:
            # The first format (one row per exact key) cannot be converted: no sketches.
            log.warning("%s: dropping the dedup state of the first format (exact keys)", self.path)
            self._db.execute("DROP TABLE seen")
        for statement in _SQLITE_DDL.strip().split(";\n"):
            self._db.execute(statement)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(dedup_entries)")}
        for column in ADDED_COLUMNS:
            if column not in columns:
                self._db.execute(f"ALTER TABLE dedup_entries ADD COLUMN {column} INTEGER")
        stored = self._meta("format")
        if stored is None:
            self._db.execute("INSERT INTO dedup_meta VALUES ('format', ?)", (FORMAT,))
        elif stored != FORMAT:
            raise ConfigError(
                f"{self.path}: dedup state has sketch format {stored!r}, this newswire writes "
                f"{FORMAT!r}; point NEWSWIRE_DEDUP__STATE_URL at a new file",
                url=str(self.path),
            )

    def _meta(self, name: str) -> Any:
        row = self._db.execute("SELECT value FROM dedup_meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    _FILTER_COLUMNS = "article, content, sketch, reason, claimant, seq"

    def _build_filter(self) -> None:
        """The key filter of every entry in the file (at open, and when it has gone stale)."""
        self._filter = KeyFilter(max(self.max_entries, self._size) * (3 + BANDS_PER_SKETCH))
        self._seen_seq = 0
        self._refresh_filter()

    def _refresh_filter(self) -> None:
        """Add the keys of entries other processes sharing the file stored since we looked.

        Runs under the write lock, so entries appear in seq order and none is missed.
        """
        while True:
            rows = self._db.execute(
                f"SELECT {self._FILTER_COLUMNS} FROM dedup_entries WHERE seq > ? "
                "ORDER BY seq LIMIT 50000",
                (self._seen_seq,),
            ).fetchall()
            if not rows:
                return
            self._filter.add(_keys_of_rows(rows))
            self._seen_seq = int(rows[-1][-1])

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        row = self._db.execute("SELECT max(seq) FROM dedup_entries").fetchone()
        self._next_seq = int(row[0] or 0) + 1
        if self._filter.stale:
            self._build_filter()
        elif self._next_seq - 1 > self._seen_seq:
            self._refresh_filter()
        self._pending_size = self._size
        self._pending_watermark = self._watermark

    def lookup(self, keys: Collection[int]) -> dict[int, Entry]:
        found: dict[int, Entry] = {}
        if not keys:
            return found
        candidates = np.fromiter(keys, dtype=np.int64, count=len(keys))
        unique = candidates[self._filter.maybe(candidates)].tolist()
        by_seq: dict[int, Entry] = {}
        for lo in range(0, len(unique), 500):
            chunk = unique[lo : lo + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT k.key, {JOINED_ENTRY_COLUMNS} FROM dedup_keys k "
                f"JOIN dedup_entries e ON e.seq = k.seq WHERE k.key IN ({marks})",
                chunk,
            ).fetchall()
            for row in rows:
                seq = int(row[-1])
                entry = by_seq.get(seq)
                if entry is None:
                    entry = by_seq[seq] = entry_from_row(row[1:])
                found[int(row[0])] = entry
        return found

    def insert(self, entries: Sequence[Entry]) -> set[int]:
        rows = []
        claims: list[tuple[int, int]] = []
        takeovers: list[tuple[int, int, int, int]] = []
        for entry in entries:
            entry.seq = self._next_seq
            self._next_seq += 1
            row = entry_row(entry)
            if entry.kept == entry.article:
                row = (row[0], 0, *row[2:])  # see entry_from_row: 8 bytes less per article
            rows.append(row)
            claims.extend((key, entry.seq) for key in entry.keys)
            takeovers.extend((entry.seq, key, old, grant) for key, old, grant in entry.takeover)
            self._pending_watermark = max(self._pending_watermark, entry.event_time)
        self._db.executemany(
            f"INSERT INTO dedup_entries ({ENTRY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._filter.add(_entry_keys_array(entries))
        self._pending_size += len(rows)
        lost: set[int] = set()
        for seq, key, old, grant in takeovers:
            # Under BEGIN IMMEDIATE nobody else writes: this fails only on a judge bug.
            cursor = self._db.execute(
                "UPDATE dedup_keys SET seq = ? WHERE key = ? AND seq = ?", (seq, key, old)
            )
            if cursor.rowcount != 1:
                lost.add(key)
                continue
            self._db.execute("INSERT OR IGNORE INTO dedup_keys VALUES (?, ?)", (grant, old))
            self._db.execute(
                f"UPDATE dedup_entries SET reason = reason | {CLAIM_FLAG} WHERE seq = ?", (old,)
            )
        cursor = self._db.executemany(
            "INSERT OR IGNORE INTO dedup_keys (key, seq) VALUES (?, ?)", claims
        )
        if cursor.rowcount == len(claims):
            return lost
        # A lost key was held before (a judge bug or a 60-bit collision); name them so that
        # the judge can tell.
        mine = dict(claims)
        held = self.lookup(list(mine))
        return lost | {key for key, entry in held.items() if entry.seq != mine[key]}

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def commit(self) -> None:
        evicted = self._evict()
        if self._pending_watermark != self._watermark:
            self._db.execute(
                "INSERT OR REPLACE INTO dedup_meta VALUES ('watermark', ?)",
                (self._pending_watermark,),
            )
        self._db.execute("COMMIT")
        self._size = self._pending_size
        self._watermark = self._pending_watermark
        self.evicted += evicted
        # Our own entries are in the filter already; nobody else wrote in between.
        self._seen_seq = max(self._seen_seq, self._next_seq - 1)

    def _evict(self) -> int:
        """Delete the oldest entries beyond the bounds, with the keys they hold."""
        cutoff = self._pending_watermark - self.window_s if self.window_s else None
        evicted = 0
        while True:
            excess = self._pending_size - self.max_entries
            if excess <= 0 and cutoff is None:
                break
            rows = self._db.execute(
                f"SELECT {ENTRY_COLUMNS} FROM dedup_entries ORDER BY seq LIMIT ?",
                (max(excess, 0) if cutoff is None else _EVICT_CHUNK,),
            ).fetchall()
            victims = eviction_victims(rows, excess, cutoff)
            if not victims:
                break
            self._db.executemany(
                "DELETE FROM dedup_keys WHERE key = ? AND seq = ?",
                victim_keys(victims),
            )
            self._db.execute("DELETE FROM dedup_entries WHERE seq <= ?", (victims[-1].seq,))
            self._pending_size -= len(victims)
            evicted += len(victims)
            if len(victims) < len(rows):
                break
        return evicted

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.close()
