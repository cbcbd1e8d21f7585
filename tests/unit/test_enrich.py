"""The enrich stage's derivations: words, reading time, language, registered domain."""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from pathlib import Path

import pytest

from consumers.enrich import (
    CJK_CHARS_PER_MINUTE,
    WORDS_PER_MINUTE,
    Enricher,
    count_words,
)
from newswire.model import EnrichedArticle
from tests.unit.support import ARTICLES, SEED, fields, record

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "newspaper4k"
# The gold language of each page (tests/fixtures/newspaper4k/README.md).
GOLD = {
    "arabic_article": "ar",
    "bengali_article": "bn",
    "burmese_article": "my",
    "chinese_article": "zh",
    "chinese_article_001": "zh",
    "cnn_summary": "en",
    "hindi_article": "hi",
    "japanese_article": "ja",
    "japanese_article2": "ja",
    "korean_article": "ko",
    "latvian_article": "lv",
    "nepali_article": "ne",
    "spanish_article": "es",
    "thai_article": "th",
    "yna_co_kr": "en",
}

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


# -- languages and scripts: the newspaper4k pages -------------------------------------------


def page(name: str) -> str:
    return (PAGES / f"{name}.txt").read_text(encoding="utf-8")


def test_every_page_fixture_has_a_gold_language() -> None:
    assert sorted(p.stem for p in PAGES.glob("*.txt")) == sorted(GOLD)


@pytest.mark.parametrize(("name", "gold"), sorted(GOLD.items()))
def test_each_page_is_in_its_gold_language(enricher: Enricher, name: str, gold: str) -> None:
    code, score = enricher.language(page(name))
    assert code == gold
    assert 0.5 < score <= 1.0


@pytest.mark.parametrize(("name", "gold"), sorted(GOLD.items()))
def test_each_120_character_window_of_a_page_is_in_its_language(
    enricher: Enricher, name: str, gold: str
) -> None:
    text = " ".join(page(name).split())
    windows = [text[i : i + 120] for i in range(0, len(text) - 120, 120)]
    assert windows
    assert [enricher.language(w)[0] for w in windows] == [gold] * len(windows)


def _is_cjk(char: str) -> bool:
    # An oracle apart from the enricher's block ranges: the characters' Unicode names.
    name = unicodedata.name(char, "")
    return char.isalnum() and name.startswith(("CJK ", "HIRAGANA ", "KATAKANA "))


def _expected(text: str) -> tuple[int, int]:
    """(Han/kana characters, whitespace words once they are taken out) of *text*."""
    cjk = sum(1 for c in text if _is_cjk(c))
    rest = "".join(
        " " if _is_cjk(c) or unicodedata.name(c, "").startswith("CJK ") else c for c in text
    )
    return cjk, sum(1 for w in rest.split() if any(c.isalnum() for c in w))


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("japanese_article", "ja"),
        ("japanese_article2", "ja"),
        ("chinese_article", "zh"),
        ("chinese_article_001", "zh"),
    ],
)
def test_han_and_kana_count_one_word_a_character(
    enricher: Enricher, name: str, language: str
) -> None:
    body = page(name)
    out = enricher.enrich(with_body(body, title="", excerpt=""))
    cjk, other = _expected(body)
    assert out["language"] == language
    assert out["word_count"] == cjk + other
    # The figures: 201 characters were 2 words, 725 were 15.
    assert out["word_count"] > 0.7 * len(body) > 10 * len(body.split())
    rate = CJK_CHARS_PER_MINUTE[language]
    assert out["reading_time_s"] == math.ceil(other * 60 / WORDS_PER_MINUTE + cjk * 60 / rate)


def test_japanese_reads_faster_than_chinese_per_character(enricher: Enricher) -> None:
    # IReST: Japanese 357, Chinese 255 characters a minute.
    text = "中国国家主席" * 100
    assert enricher.words(text, "ja").reading_time_s("ja") == math.ceil(600 * 60 / 357)
    assert enricher.words(text, "zh").reading_time_s("zh") == math.ceil(600 * 60 / 255)


def test_latin_words_inside_japanese_text_are_words(enricher: Enricher) -> None:
    text = "ナイジェリア北東部ボルノ\uff08Borno\uff09州で 16日夜、AFP に明らかにした。"
    words = enricher.words(text, "ja")
    cjk, other = _expected(text)
    assert (words.cjk, words.words) == (cjk, other)
    assert other == 3  # Borno, 16, AFP


def test_thai_is_segmented_into_words(enricher: Enricher) -> None:
    # "ผลการตรวจ" is ผล (result) + การ (nominaliser) + ตรวจ (examine): three words.
    assert enricher.words("ผลการตรวจ DNA", "th").count == 4
    body = page("thai_article")
    out = enricher.enrich(with_body(body, title="", excerpt=""))
    assert out["language"] == "th"
    spaced = len(body.split())
    # Thai writes spaces between phrases, not words: 73 phrases, several words each.
    assert 3 * spaced < out["word_count"] < len(body) / 2
    assert out["reading_time_s"] == math.ceil(out["word_count"] * 60 / WORDS_PER_MINUTE)


def test_thai_segments_cover_the_text(enricher: Enricher) -> None:
    body = page("thai_article")
    run = max(body.split(), key=len)
    assert "".join(enricher._thai(run)) == run


@pytest.mark.parametrize(
    "name",
    ["korean_article", "arabic_article", "spanish_article", "hindi_article", "latvian_article"],
)
def test_languages_written_with_spaces_count_whitespace_words(
    enricher: Enricher, name: str
) -> None:
    body = page(name)
    assert enricher.enrich(with_body(body, title="", excerpt=""))["word_count"] == len(body.split())


def test_count_words_by_whitespace_only() -> None:
    assert count_words("一二三 four", by_script=False).count == 2
    assert count_words("一二三 four").count == 4
    assert count_words("、 — 。 word").count == 1  # punctuation alone is not a word


@pytest.mark.parametrize(
    "junk",
    [
        "\x00",
        "\x07",
        "\x1b",
        "\x7f",
        "\x85",
        "\x93\x94",
        "\ufdd0",
        "\ufffe",
        "\U0010ffff",
        "\ud800",
    ],
)
def test_control_characters_and_noncharacters_do_not_break_language_id(
    enricher: Enricher, junk: str
) -> None:
    # CLD2 raises "invalid UTF-8" on these (mojibake carries C1 controls).
    assert enricher.language(f"{junk}{GERMAN}{junk}")[0] == "de"


def test_the_chinese_page_with_c1_mojibake_is_chinese(enricher: Enricher) -> None:
    body = page("chinese_article")
    assert "\x93" in body[:200]
    assert enricher.enrich(with_body(body, title="", excerpt=""))["language"] == "zh"


def test_the_language_comes_from_title_excerpt_and_the_body_start(enricher: Enricher) -> None:
    out = enricher.enrich(
        with_body("x " * 5000 + page("spanish_article"), title=GERMAN, excerpt="")
    )
    assert out["language"] == "de"


def test_the_registered_domain_is_the_same_from_the_host_cache(enricher: Enricher) -> None:
    urls = [
        "https://news.bbc.co.uk/a",
        "https://news.bbc.co.uk/b?x=1",
        "https://news.bbc.co.uk:8443/c",
        "https://user@news.bbc.co.uk/d",
        "https://news.bbc.co.uk#frag",
    ]
    assert [enricher.registered_domain(u) for u in urls] == ["bbc.co.uk"] * len(urls)
    assert enricher.registered_domain("https://www.example.co.jp") == "example.co.jp"


# -- the stage: projected decode in, the input's datum extended out --------------------------


def test_the_enrich_stage_keeps_every_field_and_adds_the_enrichment() -> None:
    from consumers.enrich import EnrichConsumer
    from newswire.model import Article
    from newswire.testing import run_consumer
    from newswire.topics import ENRICHED
    from tests.unit.support import article

    inputs = [
        article(SEED),
        article(LAPTOP),
        Article.model_validate(
            {
                **fields(SEED),
                "originalUrl": "https://www.asahi.com/articles/x.html",
                "title": "米朝首脳会談",
                "excerpt": "",
                "body": page("japanese_article"),
            }
        ),
    ]
    result = run_consumer(EnrichConsumer(), inputs, batch_size=2)
    assert result.dead_letters == []
    out = result.to(ENRICHED)
    assert [o.id for o in out] == [a.id for a in inputs]
    for given, got in zip(inputs, out, strict=True):
        assert isinstance(got, EnrichedArticle)
        assert got.model_dump(include=set(Article.model_fields)) == given.model_dump()
    assert [o.language for o in out] == ["en", "en", "ja"]
    assert out[1].word_count == len(inputs[1].body.split())
    assert out[2].word_count > 150  # counted by character, not 2 "words"
    assert out[2].registered_domain == "asahi.com"


def test_a_record_the_stage_cannot_enrich_is_dead_lettered_alone() -> None:
    from consumers.enrich import EnrichConsumer
    from newswire.testing import run_consumer
    from newswire.topics import ENRICHED
    from tests.unit.support import article

    class Failing(EnrichConsumer):
        name = "enrich-failing"

        def setup(self) -> None:
            super().setup()
            real = self.enricher.enrichment

            def enrichment(record: dict[str, object]) -> dict[str, object]:
                if record["title"] == "boom":
                    raise ValueError("cannot enrich this one")
                return real(record)

            self.enricher.enrichment = enrichment  # type: ignore[method-assign]

    inputs = [
        article(SEED),
        article(SEED, title="boom", originalUrl="https://e.com/b"),
        article(LAPTOP),
    ]
    result = run_consumer(Failing(), inputs, batch_size=3)
    assert [o.id for o in result.to(ENRICHED)] == [inputs[0].id, inputs[2].id]  # no copies
    assert len(result.dead_letters) == 1
    assert "cannot enrich this one" in result.dead_letters[0].error_message
