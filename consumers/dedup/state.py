"""Dedup state: which keys have been seen, which article they lead to, and who claimed them.

Each remembered key (``u:<article id>`` for the URL, ``c:<fingerprint>`` for the
content) records the *claimant*: the source record (topic/partition/offset)
that first saw it. A record delivered again after a crash finds its own claim
and is judged as before — never as a duplicate of itself (DESIGN §4).

State is bounded: beyond ``max_entries`` keys the oldest are evicted first.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Claim", "SeenIndex", "SqliteSeenIndex"]


@dataclass(frozen=True)
class Claim:
    """What a key leads to."""

    kept_id: str
    claimant: str
    reason: str  # "" when the claimant was kept; else why the claimant was a duplicate


class SeenIndex(Protocol):
    """Remembered keys, shared by the members of one dedup group or private to one."""

    def lookup(self, keys: list[str]) -> dict[str, Claim]:
        """The claims of those *keys* that are remembered."""
        ...

    def claim(self, keys: list[str], claim: Claim) -> None:
        """Remember *keys* as leading to *claim* (keys already claimed keep their claim)."""
        ...

    def commit(self) -> None:
        """Make the claims since the last commit durable, and evict beyond the bound."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None:
        """Release the database."""
        ...


class SqliteSeenIndex:
    """A SeenIndex in one SQLite file (WAL): for a single dedup process."""

    def __init__(self, path: str | Path, *, max_entries: int = 1_000_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self.evicted = 0
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen ("
            " key TEXT PRIMARY KEY, kept_id TEXT NOT NULL, claimant TEXT NOT NULL,"
            " reason TEXT NOT NULL, seen_at REAL NOT NULL)"
        )
        self._size = int(self._db.execute("SELECT count(*) FROM seen").fetchone()[0])
        self._db.execute("BEGIN")

    def lookup(self, keys: list[str]) -> dict[str, Claim]:
        found = {}
        for key in keys:
            row = self._db.execute(
                "SELECT kept_id, claimant, reason FROM seen WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                found[key] = Claim(*row)
        return found

    def claim(self, keys: list[str], claim: Claim) -> None:
        now = time.time()
        cursor = self._db.executemany(
            "INSERT OR IGNORE INTO seen (key, kept_id, claimant, reason, seen_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(k, claim.kept_id, claim.claimant, claim.reason, now) for k in keys],
        )
        self._size += max(0, cursor.rowcount)

    def commit(self) -> None:
        if self._size > self.max_entries:
            # rowid grows with insertion: the smallest rowids are the oldest keys.
            excess = self._size - self.max_entries
            cursor = self._db.execute(
                "DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen ORDER BY rowid LIMIT ?)",
                (excess,),
            )
            self._size -= cursor.rowcount
            self.evicted += cursor.rowcount
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._db.close()
