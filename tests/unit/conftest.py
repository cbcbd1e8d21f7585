"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.enrich import Enricher
from consumers.store.sqlite import SqliteStore


@pytest.fixture(scope="session")
def enricher() -> Enricher:
    """One enricher (its language model loads once)."""
    return Enricher()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A fresh SQLite store in the test's directory."""
    s = SqliteStore(tmp_path / "store.db")
    yield s
    s.close()
