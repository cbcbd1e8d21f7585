"""The ``enrich`` consumer: word count, reading time, language, registered domain.

Language identification uses py3langid, whose model ships inside the package
(nothing is downloaded); the registered domain comes from tldextract's bundled
Public Suffix List snapshot (no network fetch).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from functools import cached_property
from typing import Any

import fastavro
import numpy as np
import tldextract
from fastavro.schema import parse_schema
from py3langid import langid

from newswire import Consumer, Event
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, SchemaStore
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


class _AppendEncoder:
    """Encodes an enriched article as its input's Article datum plus the new fields.

    Avro's binary encoding is the fields in schema order, and EnrichedArticle is
    Article's fields followed by the enrichment fields: so the output is the input's
    bytes with the tail appended, instead of a re-encode of the whole record
    (~10 us instead of ~50 us). Used only while the two current schemas keep that
    layout and the input was written by the current Article schema.
    """

    def __init__(self) -> None:
        store = SchemaStore.from_dir()
        article, enriched = store.current[ARTICLE], store.current[ENRICHED_ARTICLE]
        prefix = json.loads(article.canonical)["fields"]
        fields = json.loads(enriched.canonical)["fields"]
        self.article_fingerprint = article.fingerprint
        self.header = b"\xc3\x01" + enriched.fingerprint
        self.tail: Any = None
        if fields[: len(prefix)] == prefix:
            raw = json.loads(enriched.path.read_text(encoding="utf-8"))
            names = {f["name"] for f in prefix}
            try:
                self.tail = parse_schema(
                    {
                        "type": "record",
                        "name": "EnrichmentTail",
                        "namespace": "newswire.internal",
                        "fields": [f for f in raw["fields"] if f["name"] not in names],
                    }
                )
            except Exception:  # the tail refers to a type defined in the prefix: no fast path
                self.tail = None

    def encode(self, value: bytes, enriched: dict[str, Any]) -> bytes | None:
        """The enriched record's single-object encoding, or None to encode it in full."""
        if self.tail is None or value[2:10] != self.article_fingerprint:
            return None
        out = io.BytesIO()
        out.write(self.header)
        out.write(memoryview(value)[10:])
        fastavro.schemaless_writer(out, self.tail, enriched)
        return out.getvalue()


class EnrichConsumer(Consumer):
    """Reads unique articles, writes enriched articles (same key, same partition)."""

    name = "enrich"
    topics = (UNIQUE,)

    def setup(self) -> None:
        self.enricher = Enricher()
        self.enricher.warm_up()
        self._append = _AppendEncoder()

    def handle_event(self, event: Event) -> None:
        enriched = self.enricher.enrich(event.record)
        value = self._append.encode(event.value, enriched)
        self.emit(
            ENRICHED,
            enriched if value is None else value,
            schema=ENRICHED_ARTICLE,
            key=event.key,
            partition=event.partition,
        )
