"""The enrich stage's derivations: words, reading time, language, registered domain."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from consumers.enrich import WORDS_PER_MINUTE, Enricher
from newswire.model import EnrichedArticle
from tests.unit.support import ARTICLES, SEED, fields, record

LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
GERMAN = (
    "Die Bundesregierung hat am Mittwoch beschlossen, die Steuern für kleine und mittlere "
    "Unternehmen deutlich zu senken. Nach Angaben des Finanzministeriums sollen dadurch "
    "im kommenden Jahr mehr als zwei Milliarden Euro bei den Betrieben bleiben."
)


def with_body(body: str, **changes: object) -> dict[str, object]:
    return {**record(SEED), "body": body, **changes}


@pytest.mark.parametrize(
    ("words", "seconds"),
    [(0, 0), (1, 1), (229, 60), (230, 60), (231, 61), (460, 120), (461, 121), (1000, 261)],
)
def test_word_count_and_reading_time(enricher: Enricher, words: int, seconds: int) -> None:
    out = enricher.enrich(with_body(" ".join(["word"] * words)))
    assert out["word_count"] == words
    assert out["reading_time_s"] == seconds
    assert out["reading_time_s"] == math.ceil(words * 60 / WORDS_PER_MINUTE)


def test_words_are_split_on_any_whitespace(enricher: Enricher) -> None:
    out = enricher.enrich(with_body("  one\ttwo\n\nthree   four\r\nfive  "))
    assert out["word_count"] == 5


def test_the_corpus_fixture_body_is_counted(enricher: Enricher) -> None:
    body = fields(LAPTOP)["body"]
    out = enricher.enrich(record(LAPTOP))
    assert out["word_count"] == len(body.split())
    assert out["word_count"] > 100
    assert out["reading_time_s"] == math.ceil(out["word_count"] * 60 / 230)


def test_an_english_fixture_is_english(enricher: Enricher) -> None:
    out = enricher.enrich(record(LAPTOP))
    assert out["language"] == "en"
    assert 0.5 < out["language_score"] <= 1.0


def test_the_seed_without_body_is_english_from_title_and_excerpt(enricher: Enricher) -> None:
    out = enricher.enrich(record(SEED))
    assert out["word_count"] == 0
    assert out["language"] == "en"


def test_a_german_paragraph_is_german(enricher: Enricher) -> None:
    out = enricher.enrich(
        with_body(GERMAN, title="Steuern für Unternehmen sinken", excerpt="Die Regierung handelt.")
    )
    assert out["language"] == "de"
    assert enricher.language(GERMAN)[0] == "de"


@pytest.mark.parametrize("text", ["", "   ", "1234 5678 90", "!!! --- ??? ...", "2021-02-18 12:00"])
def test_text_without_letters_has_no_language(enricher: Enricher, text: str) -> None:
    assert enricher.language(text) == ("", 0.0)


def test_a_record_without_any_letters_gets_an_empty_language(enricher: Enricher) -> None:
    out = enricher.enrich(with_body("12 34 56", title="2024", excerpt="--"))
    assert out["language"] == ""
    assert out["language_score"] == 0.0


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://news.bbc.co.uk/x", "bbc.co.uk"),
        ("https://bbc.co.uk/news/x", "bbc.co.uk"),
        ("https://www.theguardian.com/world/x", "theguardian.com"),
        ("https://a.b.example.co.jp/x", "example.co.jp"),
        ("https://abcnews.go.com/International/story?id=1", "go.com"),
    ],
)
def test_registered_domain_from_the_offline_public_suffix_list(
    enricher: Enricher, url: str, domain: str
) -> None:
    assert enricher.registered_domain(url) == domain


def test_the_registered_domain_comes_from_the_canonical_url(enricher: Enricher) -> None:
    out = enricher.enrich(record(ARTICLES / "006_us-secret-service-laptop-stolen_variant_amp.txt"))
    assert out["registered_domain"] == "bbc.co.uk"  # not ampproject.org


def test_enrich_keeps_every_input_field_and_validates(enricher: Enricher) -> None:
    rec = record(SEED)
    before = dt.datetime.now(dt.UTC)
    out = enricher.enrich(rec)
    assert {k: out[k] for k in rec} == rec
    assert before <= out["enriched_at"] <= dt.datetime.now(dt.UTC)
    model = EnrichedArticle.model_validate(out)
    assert model.id == rec["id"]
    assert model.registered_domain == "securityinfowatch.com"


def test_enrich_does_not_mutate_its_input(enricher: Enricher) -> None:
    rec = record(SEED)
    snapshot = dict(rec)
    enricher.enrich(rec)
    assert rec == snapshot
    assert "word_count" not in rec


def test_language_and_domain_work_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*_: object, **__: object) -> None:
        raise AssertionError("enrich tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = Enricher()  # loads the model and the suffix list now, with the network blocked
    assert fresh.registered_domain("https://news.bbc.co.uk/x") == "bbc.co.uk"
    assert fresh.language(GERMAN)[0] == "de"
