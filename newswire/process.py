"""Process-wide tuning of a stage process (``newswire consume``).

CPython's cyclic garbage collector runs a generation-0 pass every 700 net
container allocations and, every so often, walks every tracked object. A
stage allocates a few dicts and lists per record (the decoded record, pydantic
models) that reference counting frees on its own, and it keeps a large heap of
long-lived objects from its setup (modules, schemas, models, caches): the
collector's passes over that heap are pure overhead. :func:`tune_gc` moves
everything allocated so far into the permanent generation (``gc.freeze()``:
never scanned again) and raises the generation-0 threshold, so collections
are rarer and each one sees only young objects. Cyclic garbage is still
collected, just in bigger, less frequent passes.
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "tune_gc"]

#: Net container allocations between generation-0 collections (CPython's default: 700).
GEN0_THRESHOLD = 50_000


def tune_gc(gen0_threshold: int = GEN0_THRESHOLD) -> None:
    """Freeze what exists now and collect young objects less often (call after setup)."""
    gc.collect()  # what is garbage now should not be frozen
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
