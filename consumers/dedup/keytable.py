"""Which remembered entry holds each key: an in-memory map from 64-bit key to entry seq.

The SQLite state keeps only the entries, appended in seq order; the keys that
lead to them are derived from the entries and held here, so that a batch
writes its entries at the end of one B-tree instead of ~8 keys per article at
random places of another (whose cost grew with the state).

The map is a small log-structured merge of sorted numpy arrays (16 bytes per
key, no per-key Python objects): claims go into the newest level, which is
merged into the next when it outgrows it, so a key is copied a few times over
its life, never searched for in a Python structure.

Two rules make removal unnecessary:

- a key's holder is the claim with the **highest seq** (an update taking a URL
  over is a newer entry; a key is otherwise claimed only while free);
- entries are evicted oldest first, so a holder below :attr:`KeyTable.floor`
  (the oldest seq remembered) is gone and its key is free. Such claims are
  dropped when their level is next merged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KeyTable", "normalised"]

_EMPTY = np.zeros(0, dtype=np.int64)
#: Claims gathered before they are merged into the next level (a few batches' worth).
_FIRST_LEVEL = 1 << 16
#: Each level holds up to this many times the keys of the level before it.
_GROWTH = 4


def normalised(keys: np.ndarray, seqs: np.ndarray, floor: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """*keys* sorted, each once with its highest seq, without claims below *floor*."""
    if floor:
        live = seqs >= floor
        if not live.all():
            keys, seqs = keys[live], seqs[live]
    order = np.argsort(keys)  # any order among equal keys: the highest seq is kept
    keys, seqs = keys[order], seqs[order]
    if len(keys) > 1:
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        if len(starts) < len(keys):
            seqs = np.maximum.reduceat(seqs, starts)
            keys = keys[starts]
    return keys, seqs


def _merged(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], floor: int
) -> tuple[np.ndarray, np.ndarray]:
    """The union of two normalised levels, normalised (O(len(a) + len(b)), no sort of a)."""
    keys_a, seqs_a = a
    keys_b, seqs_b = b
    if not len(keys_b):
        return a
    if not len(keys_a):
        return b
    positions = np.searchsorted(keys_a, keys_b)
    keys = np.insert(keys_a, positions, keys_b)
    seqs = np.insert(seqs_a, positions, seqs_b)
    same = keys[1:] == keys[:-1]
    if same.any():
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        seqs = np.maximum.reduceat(seqs, starts)
        keys = keys[starts]
    if floor:
        live = seqs >= floor
        if not live.all():
            keys, seqs = keys[live], seqs[live]
    return keys, seqs


class KeyTable:
    """A map from int64 key to the seq (≥ 1) of the entry holding it; 0 means free."""

    def __init__(self) -> None:
        #: Levels, newest (smallest) first; each sorted by key, one seq per key.
        self._levels: list[tuple[np.ndarray, np.ndarray]] = [(_EMPTY, _EMPTY)]
        #: Claims below this seq are of evicted entries: their keys are free.
        self.floor = 0

    def load(self, keys: np.ndarray, seqs: np.ndarray) -> None:
        """Replace the contents with the claims (*keys*, *seqs*), in any order.

        The arrays become the table's and are sorted in place: loading millions of keys
        holds little more than them (an order and one array's copy at a time).
        """
        order = np.argsort(keys)
        np.take(keys, order, out=keys)
        np.take(seqs, order, out=seqs)
        del order
        # A key claimed twice (few: 60-bit collisions) stays twice, the last of its run
        # given the highest seq, which is the one :meth:`get` reads (no copy of the arrays).
        for i in np.flatnonzero(keys[1:] == keys[:-1]).tolist():
            seqs[i + 1] = max(seqs[i], seqs[i + 1])
        self._levels = [(_EMPTY, _EMPTY), (keys, seqs)]

    def claim(self, keys: np.ndarray, seqs: np.ndarray) -> None:
        """Record claims: each of *keys* is now held by the matching seq, unless a higher
        seq holds it."""
        if not len(keys):
            return
        levels = self._levels
        levels[0] = _merged(levels[0], normalised(keys, seqs), self.floor)
        # A level past its capacity goes into the next one if that one is at most _GROWTH
        # times its size (so a merge copies no more than that per key moved), else it
        # becomes a level of its own: each key is copied about once per level.
        level, capacity = 0, _FIRST_LEVEL
        while level < len(levels) and len(levels[level][0]) > capacity:
            size = len(levels[level][0])
            if level + 1 < len(levels) and len(levels[level + 1][0]) <= _GROWTH * size:
                levels[level + 1] = _merged(levels[level + 1], levels[level], self.floor)
            else:
                levels.insert(level + 1, levels[level])
            levels[level] = (_EMPTY, _EMPTY)
            level, capacity = level + 1, capacity * _GROWTH

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The seq holding each of int64 *keys* (0: free)."""
        # Searched in key order: consecutive searches walk nearby parts of a level (3x
        # faster than random order on a level of millions).
        order = np.argsort(keys)
        asked = keys[order]
        found = np.zeros(len(keys), dtype=np.int64)
        for level_keys, level_seqs in self._levels:
            if not len(level_keys):
                continue
            # The last of equal keys (see load): the position right of them, less one.
            positions = np.searchsorted(level_keys, asked, side="right") - 1
            np.maximum(positions, 0, out=positions)
            hit = level_keys[positions] == asked
            np.maximum(found, np.where(hit, level_seqs[positions], 0), out=found)
        found[found < self.floor] = 0
        out = np.empty_like(found)
        out[order] = found
        return out

    def held(self) -> tuple[np.ndarray, np.ndarray]:
        """Every held key (sorted) and the seq holding it."""
        levels = [level for level in self._levels if len(level[0])]
        if not levels:
            return _EMPTY, _EMPTY
        return normalised(
            np.concatenate([k for k, _ in levels]),
            np.concatenate([s for _, s in levels]),
            self.floor,
        )

    def __len__(self) -> int:
        """Claims stored (evicted ones included until their level is merged)."""
        return sum(len(k) for k, _ in self._levels)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(k.nbytes + s.nbytes for k, s in self._levels)
