"""The ``enrich`` consumer: word count, reading time, language, registered domain.

Language identification uses py3langid, whose model ships inside the package
(nothing is downloaded); the registered domain comes from tldextract's bundled
Public Suffix List snapshot (no network fetch).
"""

from __future__ import annotations

import datetime as dt
import math
from functools import cached_property
from typing import Any

import numpy as np
import tldextract
from py3langid import langid

from newswire import Consumer, Event
from newswire.serde import ENRICHED_ARTICLE
from newswire.topics import ENRICHED, UNIQUE

__all__ = ["EnrichConsumer", "Enricher"]

WORDS_PER_MINUTE = 230
# Enough text for a confident guess; longer costs time and rarely changes the answer.
_LANGUAGE_SAMPLE_CHARS = 600


class Enricher:
    """Derives the enrichment fields of one article record."""

    @cached_property
    def _languages(self) -> langid.LanguageIdentifier:
        identifier = langid.LanguageIdentifier.from_modelpath(
            langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True
        )
        # The model ships float16 weights; numpy has no fast float16 matmul, and the
        # scores are float32 anyway: same results, half the scoring time (+28 MB).
        identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
        return identifier

    @cached_property
    def _domains(self) -> tldextract.TLDExtract:
        return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def warm_up(self) -> None:
        """Load the language model and the suffix list now, not in the first batch."""
        self.language("warm up")
        self.registered_domain("https://www.example.co.uk/")

    def language(self, text: str) -> tuple[str, float]:
        """ISO 639-1 code and probability; ``("", 0.0)`` for text with no letters."""
        sample = text[:_LANGUAGE_SAMPLE_CHARS]
        if not any(c.isalpha() for c in sample):
            return "", 0.0
        code, score = self._languages.classify(sample)
        return str(code), float(score)

    def registered_domain(self, url: str) -> str:
        """``bbc.co.uk`` for ``https://news.bbc.co.uk/…``."""
        return str(self._domains(url).top_domain_under_public_suffix)

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with ``word_count``, ``reading_time_s``, ``language``… added."""
        body = record.get("body") or ""
        words = len(body.split())
        text = " ".join(filter(None, (record.get("title"), record.get("excerpt"), body)))
        language, score = self.language(text)
        return {
            **record,
            "word_count": words,
            "reading_time_s": math.ceil(words * 60 / WORDS_PER_MINUTE),
            "language": language,
            "language_score": score,
            "registered_domain": self.registered_domain(record["canonical_url"]),
            "enriched_at": dt.datetime.now(dt.UTC),
        }


class EnrichConsumer(Consumer):
    """Reads unique articles, writes enriched articles (same key, same partition)."""

    name = "enrich"
    topics = (UNIQUE,)

    def setup(self) -> None:
        self.enricher = Enricher()
        self.enricher.warm_up()

    def handle_event(self, event: Event) -> None:
        enriched = self.enricher.enrich(event.record)
        # The input's datum with the enrichment fields appended (no full re-encode).
        value = self.context.serde.extend(event.value, ENRICHED_ARTICLE, enriched, topic=ENRICHED)
        self.emit(ENRICHED, value, key=event.key, partition=event.partition)
