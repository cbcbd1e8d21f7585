"""The dedup state's in-memory key map (consumers/dedup/keytable.py), against a dict model."""

from __future__ import annotations

import numpy as np

from consumers.dedup import keytable
from consumers.dedup.keytable import KeyTable, normalised


def _model_get(model: dict[int, int], keys: np.ndarray, floor: int) -> list[int]:
    return [s if (s := model.get(int(k), 0)) >= floor else 0 for k in keys]


def test_a_key_is_held_by_its_highest_seq_claim_and_freed_below_the_floor(monkeypatch) -> None:
    # Small levels so that a few thousand claims go through every kind of merge.
    monkeypatch.setattr(keytable, "_FIRST_LEVEL", 64)
    rng = np.random.default_rng(7)
    table = KeyTable()
    model: dict[int, int] = {}
    universe = rng.integers(-(2**63), 2**63 - 1, size=3000, dtype=np.int64)
    seq = 0
    for step in range(300):
        count = int(rng.integers(1, 40))
        keys = rng.choice(universe, size=count)
        seqs = np.arange(seq + 1, seq + 1 + count, dtype=np.int64)
        seq += count
        if step % 7 == 0:
            seqs = seqs[::-1].copy()  # claims within a call in any order: the highest wins
        table.claim(keys, seqs)
        for k, s in zip(keys.tolist(), seqs.tolist(), strict=True):
            model[k] = max(model.get(k, 0), s)
        if step % 5 == 0:
            table.floor = max(table.floor, seq - int(rng.integers(100, 2000)))
        probe = np.concatenate([rng.choice(universe, size=200), keys])
        assert table.get(probe).tolist() == _model_get(model, probe, table.floor)
    assert len(table._levels) > 2  # the test went through more than one merge level
    # Evicted claims are dropped as levels merge: fewer are stored than were ever made.
    assert len(table) < seq


def test_loaded_claims_give_each_key_its_highest_seq_and_free_the_evicted() -> None:
    table = KeyTable()
    table.floor = 3
    keys = np.array([5, -9, 5, 7, 2**62, -9], dtype=np.int64)
    seqs = np.array([4, 1, 9, 2, 3, 6], dtype=np.int64)
    table.load(keys, seqs)
    probe = np.array([5, -9, 7, 2**62, 11], dtype=np.int64)
    assert table.get(probe).tolist() == [9, 6, 0, 3, 0]
    keys, seqs = table.held()  # 7 (seq 2) was evicted; 5 and -9 held once each
    assert (keys.tolist(), seqs.tolist()) == ([-9, 5, 2**62], [6, 9, 3])
    table.claim(np.array([7, 5], dtype=np.int64), np.array([10, 8], dtype=np.int64))
    assert table.get(probe).tolist() == [9, 6, 10, 3, 0]


def test_normalised_sorts_and_keeps_one_claim_per_key() -> None:
    keys, seqs = normalised(np.array([3, 1, 3, 2], dtype=np.int64), np.array([1, 5, 7, 2]))
    assert keys.tolist() == [1, 2, 3]
    assert seqs.tolist() == [5, 2, 7]
