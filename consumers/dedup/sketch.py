"""MinHash sketches of articles for near-duplicate detection (rensa R-MinHash + LSH bands).

An article's text (:func:`~consumers.dedup.fingerprint.tokens`) becomes the set
of its word 5-shingles; `rensa <https://pypi.org/project/rensa/>`_ computes a
128-slot R-MinHash signature of that set, so that two signatures agree in a
slot with probability equal to the Jaccard similarity of the two sets.

What is remembered of a signature, and why (``docs``: README, "Dedup"):

* **LSH bands** — 6 bands of 2 slots. Slots are kept at 16 bits, so a band
  key is 32 bits. Two articles become *candidates* when they agree on any whole
  band: probability ``1 - (1 - J^2)^6`` — 0.93 at J = 0.6, 0.98 at 0.7, 0.998 at
  0.8 — while unrelated articles (J ≈ 0) never meet except by a 2^-32 accident.
* **b-bit confirmation sketch** — all 128 slots at 4 bits (64 bytes). A
  candidate is confirmed by estimating J from the share of equal nibbles,
  corrected for the 1/16 chance that two different slots agree anyway
  (Li & König, b-bit minwise hashing). Standard error ≈ 0.04 around the
  threshold: 64 bytes instead of the signature's 512, at nearly its precision.

Together that is 88 bytes per article (:data:`SKETCH_BYTES`). Band keys are
derived from the stored bytes, so evicting an article can delete exactly its
band keys.

The shingle hashes are built with numpy from rensa's token hashes, for a whole
batch in one pass; the parameters are part of the state's format
(:data:`FORMAT`): a state written with other parameters is refused, never
silently compared.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import rensa

__all__ = [
    "BANDS",
    "FORMAT",
    "NUM_PERM",
    "ROWS",
    "SHINGLE",
    "SKETCH_BYTES",
    "Sketch",
    "band_keys",
    "band_keys_many",
    "estimate",
    "sketch_many",
]

NUM_PERM = 128
SHINGLE = 5
BANDS = 6
ROWS = 2
SEED = 0x6E657773  # "news"
_BAND_SLOTS = BANDS * ROWS
_BITS = 4
_CHANCE = 1.0 / (1 << _BITS)  # two different slot values agree in their low 4 bits
SKETCH_BYTES = _BAND_SLOTS * 2 + NUM_PERM * _BITS // 8

#: Everything that makes two sketches comparable; stored in the state.
FORMAT = (
    f"rmh{rensa.RMinHash.ALGORITHM_VERSION}-p{NUM_PERM}-w{SHINGLE}-b{BANDS}x{ROWS}"
    f"-k{_BITS}-s{SEED:x}"
)

_U64 = np.uint64
_MIX = tuple(
    _U64(m)
    for m in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
    )
)
_FINAL = (_U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB))


class Sketch(NamedTuple):
    """What is remembered of one article's MinHash signature (:data:`SKETCH_BYTES` bytes).

    A named tuple rather than a frozen dataclass: one is made per article, and a
    tuple is built at a fraction of the cost.
    """

    data: bytes
    shingles: int
    #: The LSH band values (32-bit), band by band (derived from ``data``).
    bands: list[int] = []


def band_keys(data: bytes) -> list[int]:
    """The band values stored in a sketch's first ``2 * BANDS * ROWS`` bytes."""
    return band_keys_many([data])[0]


def band_keys_many(sketches: Sequence[bytes]) -> list[list[int]]:
    """:func:`band_keys` of many sketches at once."""
    if not sketches:
        return []
    head = b"".join(d[: _BAND_SLOTS * 2] for d in sketches)
    slots = np.frombuffer(head, dtype="<u2").astype(np.uint32).reshape(len(sketches), BANDS, ROWS)
    values = (slots[:, :, 0] << np.uint32(16)) | slots[:, :, 1]
    return values.tolist()


def _shingle_hashes(
    token_hashes: np.ndarray, starts: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word *SHINGLE*-gram inside each document of a flat token array.

    Returns the flat shingle hashes and the row offsets of each document in it.
    """
    n = len(token_hashes)
    width = SHINGLE
    if n < width:
        return np.zeros(0, dtype=_U64), np.zeros(len(counts) + 1, dtype=_U64)
    span = n - width + 1
    with np.errstate(over="ignore"):
        h = token_hashes[:span] * _MIX[0]
        for j in range(1, width):
            h = (h ^ (h >> _U64(29))) * _MIX[j] + token_hashes[j : j + span]
        h ^= h >> _U64(31)
        h *= _FINAL[0]
        h ^= h >> _U64(27)
        h *= _FINAL[1]
        h ^= h >> _U64(31)
    # A shingle starting at position p is valid if it ends inside its own document.
    per_doc = np.maximum(counts - width + 1, 0)
    keep = np.zeros(span, dtype=bool)
    positions = np.repeat(starts, per_doc) + (
        np.arange(per_doc.sum()) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    )
    keep[positions] = True
    offsets = np.zeros(len(counts) + 1, dtype=_U64)
    offsets[1:] = np.cumsum(per_doc)
    return h[keep], offsets


def sketch_many(documents: Sequence[Sequence[str]]) -> list[Sketch | None]:
    """The sketches of token lists (one call per batch); None for those under SHINGLE words."""
    if not documents:
        return []
    hashed = rensa.RMinHash.hash_token_sets(documents)
    counts = np.fromiter(map(len, hashed), dtype=np.int64, count=len(hashed))
    flat = np.fromiter(itertools.chain.from_iterable(hashed), dtype=_U64, count=int(counts.sum()))
    shingles, offsets = _shingle_hashes(flat, np.cumsum(counts) - counts, counts)
    sizes = np.diff(offsets.astype(np.int64))
    wanted = np.flatnonzero(sizes > 0)
    out: list[Sketch | None] = [None] * len(documents)
    if not len(wanted):
        return out
    # Only documents with shingles go to rensa (an empty set has no signature); the shingles
    # of the others are no slice of the flat array, so it goes as it is, with their rows
    # left out of the offsets.
    keep_offsets = np.concatenate(([0], offsets[wanted + 1])).astype(_U64)
    rows = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        shingles, keep_offsets, NUM_PERM, SEED
    ).to_rows()
    digests = np.array(rows, dtype=np.uint32)
    del rows
    low = digests[:, :_BAND_SLOTS] & np.uint32(0xFFFF)
    values = ((low[:, 0::ROWS] << np.uint32(16)) | low[:, 1::ROWS]).tolist()
    nibbles = (digests & np.uint32(0xF)).astype(np.uint8)
    # One bytes object for the batch, sliced per article (fewer small numpy → bytes calls).
    blob = np.concatenate(
        [low.astype("<u2").view(np.uint8), (nibbles[:, 0::2] << np.uint8(4)) | nibbles[:, 1::2]],
        axis=1,
    ).tobytes()
    counts_of = sizes.tolist()
    for row, index in enumerate(wanted.tolist()):
        out[index] = Sketch(
            blob[row * SKETCH_BYTES : (row + 1) * SKETCH_BYTES], counts_of[index], values[row]
        )
    return out


def estimate(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two sketches (0..1)."""
    x = np.frombuffer(a, dtype=np.uint8, offset=_BAND_SLOTS * 2) ^ np.frombuffer(
        b, dtype=np.uint8, offset=_BAND_SLOTS * 2
    )
    equal = int(np.count_nonzero((x & 0x0F) == 0) + np.count_nonzero((x >> 4) == 0))
    share = equal / NUM_PERM
    return max(0.0, min(1.0, (share - _CHANCE) / (1.0 - _CHANCE)))
