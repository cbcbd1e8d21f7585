"""Helpers shared by the unit tests: fixture documents as fields, articles and records."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from consumers.dedup import DedupConsumer
from consumers.enrich import Enricher
from newswire.consumer import Context
from newswire.model import Article
from newswire.settings import Settings
from newswire.source import Document
from producers.documents import parse_document
from tests.conftest import ARTICLES, SEED

__all__ = ["ARTICLES", "SEED", "article", "fields", "record", "variant_files"]


def fields(path: Path) -> dict[str, Any]:
    """The parsed front matter (+ body) of a fixture document; fails the test if it is rejected."""
    parsed = parse_document(str(path), path.read_bytes(), max_bytes=10**7)
    assert isinstance(parsed, Document), f"{path.name} was rejected: {parsed}"
    return parsed.fields


def article(path: Path = SEED, **overrides: Any) -> Article:
    """A fixture document validated into an Article, with seed-named *overrides* applied."""
    return Article.model_validate({**fields(path), **overrides})


def record(path: Path = SEED, **overrides: Any) -> dict[str, Any]:
    """``article(...).model_dump()``: the record shape consumers see."""
    return article(path, **overrides).model_dump()


def variant_files() -> list[tuple[Path, Path]]:
    """Every ``*_variant_*.txt`` fixture paired with its original document."""
    pairs = []
    for variant in sorted(ARTICLES.glob("*_variant_*.txt")):
        original = ARTICLES / (variant.name.split("_variant_")[0] + ".txt")
        pairs.append((variant, original))
    return pairs


def enriched(enricher: Enricher, path: Path = SEED, **overrides: Any) -> dict[str, Any]:
    """The enriched record of a fixture document, with a fixed ingest time."""
    rec = enricher.enrich(record(path, **overrides))
    rec["ingested_at"] = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    rec["source"] = path.name
    return rec


def open_dedup(state_url: str, **dedup: Any) -> DedupConsumer:
    """A set-up dedup consumer on *state_url* that emits nothing (no broker)."""
    settings = Settings()
    settings.dedup.state_url = state_url
    for name, value in dedup.items():
        setattr(settings.dedup, name, value)
    consumer = DedupConsumer()
    consumer.bind(
        Context(
            settings=settings,
            registry=CollectorRegistry(),
            emit=lambda *a, **k: None,
            log=logging.getLogger("test"),
        )
    )
    consumer.setup()
    return consumer
