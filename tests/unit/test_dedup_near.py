"""Near-duplicate detection without a broker: syndicated copies, hard negatives, sketches."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.dedup import DedupConsumer
from consumers.dedup.consumer import Verdict
from consumers.dedup.fingerprint import normalize_text, tokens
from consumers.dedup.sketch import SKETCH_BYTES, estimate, sketch_many
from newswire.consumer import Event
from newswire.serde import ARTICLE
from newswire.topics import RAW
from tests.unit.support import ARTICLES, open_dedup, record

LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
DUTCH = ARTICLES / "005_polls-open-in-key-dutch-vote-with-all-eyes-on-far-right.txt"


@pytest.fixture
def dedup(tmp_path: Path) -> Iterator[DedupConsumer]:
    consumer = open_consumer(tmp_path)
    yield consumer
    consumer.close()


def open_consumer(tmp_path: Path, **dedup_settings: Any) -> DedupConsumer:
    return open_dedup(f"sqlite:///{tmp_path / 'dedup.sqlite'}", **dedup_settings)


_offsets: dict[int, int] = {}


def event(rec: dict[str, Any], *, partition: int = 0, offset: int | None = None) -> Event:
    if offset is None:
        offset = _offsets[partition] = _offsets.get(partition, 0) + 1
    return Event(RAW, partition, offset, rec["id"].encode(), b"raw", ARTICLE, rec)


def judge(consumer: DedupConsumer, *records: dict[str, Any]) -> list[Verdict]:
    return consumer.judge_batch([event(r, partition=i % 3) for i, r in enumerate(records)])


def syndicated(rec: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A wire copy on another outlet: dateline, credit line, curly quotes, upper-case title."""
    body = rec["body"].replace('"', "\u201c").replace("'", "\u2019")
    return record(
        LAPTOP,
        **{
            "originalUrl": "https://news.partner.example/wire/secret-service-laptop",
            "title": rec["title"].upper(),
            "body": f"WASHINGTON (Reuters) - {body}\n\nReporting by Jane Doe; Editing by Tom Roe",
            "provider": {"name": "Partner", "domain": "partner.example"},
            **overrides,
        },
    )


def without_last_sentence(text: str) -> str:
    return text.rstrip().rsplit(". ", 1)[0] + "."


# -- near duplicates ---------------------------------------------------------------------------


def test_a_syndicated_copy_is_a_near_duplicate_with_its_similarity(dedup: DedupConsumer) -> None:
    original = record(LAPTOP)
    copy = syndicated(original, body=without_last_sentence(syndicated(original)["body"]))
    kept, sighting = judge(dedup, original, copy)
    assert kept == Verdict(original["id"])
    assert sighting.reason == "near"
    assert sighting.kept_id == original["id"]
    assert 0.7 <= sighting.similarity < 1.0


def test_copies_of_a_copy_point_at_the_kept_article(dedup: DedupConsumer) -> None:
    original = record(LAPTOP)
    first = syndicated(original)
    second = record(
        LAPTOP,
        originalUrl="https://third.example/story/1",
        body=first["body"] + " This article originally appeared on Partner.",
    )
    verdicts = judge(dedup, original, first, second)
    assert [v.reason for v in verdicts] == ["", "near", "near"]
    assert {v.kept_id for v in verdicts} == {original["id"]}


def test_a_follow_up_story_on_the_same_event_is_kept(dedup: DedupConsumer) -> None:
    original = record(DUTCH)
    sentences = original["body"].split(". ")
    background = ". ".join(sentences[len(sentences) // 3 : len(sentences) // 3 + 3])
    follow_up = record(
        DUTCH,
        originalUrl="https://www.rte.ie/news/world/2017/0316/dutch-election-results",
        title="Dutch PM Rutte claims victory as far right falls short",
        body=(
            "Prime Minister Mark Rutte's party won the most seats in the Dutch parliamentary "
            "election, official results showed on Thursday, a day after a record turnout of 81 "
            "percent. Geert Wilders, whose anti-Islam Freedom Party came second with 20 seats, "
            "said he would remain a force in parliament and offered to join a coalition, an "
            "offer Rutte rejected. European leaders welcomed the outcome as a sign that the "
            "populist wave had been checked before elections in France and Germany. "
            f"{background}. Coalition talks are expected to take weeks, analysts said, with at "
            "least four parties needed for a majority in the 150-seat lower house."
        ),
    )
    assert [v.duplicate for v in judge(dedup, original, follow_up)] == [False, False]


def earnings(company: str, shr: str, net: str, revs: str) -> dict[str, Any]:
    body = (
        f"NEW YORK, March 3 - Shr {shr} cts vs 1.19 dlrs Net {net} mln vs 3.4 mln "
        f"Revs {revs} mln vs 40.1 mln Avg shrs 12.1 mln vs 11.9 mln Reuter"
    )
    return record(
        LAPTOP,
        originalUrl=f"https://wire.example.com/earnings/{company.lower().replace(' ', '-')}",
        title=f"{company} 1ST QTR NET",
        excerpt="",
        body=body,
    )


def test_two_short_earnings_briefs_are_kept(dedup: DedupConsumer) -> None:
    a = earnings("ACME CORP", "34", "1.2", "45.6")
    b = earnings("NORTHERN INDUSTRIES INC", "35", "1.3", "45.9")
    assert len(tokens(a["body"])) < dedup.near_min_words
    assert [v.duplicate for v in judge(dedup, a, b)] == [False, False]


def test_short_texts_are_equal_only_with_the_same_title(dedup: DedupConsumer) -> None:
    # A site's boilerplate as the whole text of two different episodes (real corpus case).
    boilerplate = "Updated every Friday. Copyright 2015 RollingStory Inc. " * 3
    a = record(
        LAPTOP,
        originalUrl="https://h.example/tribe-x-73",
        title="TRIBE X - Ep.73",
        body=boilerplate,
    )
    b = record(
        LAPTOP,
        originalUrl="https://h.example/tribe-x-74",
        title="TRIBE X - Ep.74",
        body=boilerplate,
    )
    again = record(
        LAPTOP,
        originalUrl="https://mirror.example/tribe-x-73",
        title="Tribe X - EP.73",
        body=boilerplate,
    )
    verdicts = judge(dedup, a, b, again)
    assert [v.reason for v in verdicts] == ["", "", "content"]
    assert verdicts[2].kept_id == a["id"]


def test_the_same_long_text_under_another_title_is_a_content_duplicate(
    dedup: DedupConsumer,
) -> None:
    original = record(LAPTOP)
    retitled = record(LAPTOP, originalUrl="https://x.example/1", title="Laptop stolen from car")
    assert judge(dedup, original, retitled)[1] == Verdict(original["id"], "content")


def test_near_detection_can_be_switched_off(tmp_path: Path) -> None:
    consumer = open_consumer(tmp_path, near=False)
    try:
        original = record(LAPTOP)
        assert not judge(consumer, original, syndicated(original))[1].duplicate
    finally:
        consumer.close()


def test_a_redelivered_near_duplicate_keeps_its_verdict_and_similarity(tmp_path: Path) -> None:
    original = record(LAPTOP)
    batch = [
        event(original, partition=0, offset=1),
        event(syndicated(original), partition=4, offset=9),
    ]
    consumer = open_consumer(tmp_path)
    first = consumer.judge_batch(batch)
    consumer.close()
    consumer = open_consumer(tmp_path)  # a crash and a restart: the same records again
    try:
        assert consumer.judge_batch(batch) == first
        assert consumer.judge_batch(batch[::-1]) == first[::-1]  # one by one, any order
        assert first[1].reason == "near"
    finally:
        consumer.close()


def test_candidate_checks_are_counted(dedup: DedupConsumer) -> None:
    original = record(LAPTOP)
    dedup.handle_batch([event(original), event(syndicated(original), partition=1)])
    registry = dedup.context.registry
    labels = {"consumer": "dedup", "topic": RAW}
    value = registry.get_sample_value
    assert value("newswire_dedup_candidate_checks_total", {**labels, "outcome": "duplicate"}) == 1
    assert value("newswire_dedup_duplicates_total", {**labels, "reason": "near"}) == 1


# -- sketches ------------------------------------------------------------------------------------


def random_text(rng: random.Random, words: int) -> str:
    vocabulary = tokens(record(LAPTOP)["body"] + " " + record(DUTCH)["body"])
    return " ".join(rng.choice(vocabulary) for _ in range(words))


def exact_jaccard(a: str, b: str) -> float:
    def shingles(text: str) -> set[tuple[str, ...]]:
        w = tokens(text)
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def test_the_estimate_follows_the_exact_jaccard_similarity() -> None:
    rng = random.Random(7)
    errors = []
    for _ in range(60):
        text = random_text(rng, 300)
        words = text.split()
        cut = rng.randint(0, 200)
        edited = " ".join(["LONDON", "Reuters", *words[: len(words) - cut]])
        a, b = sketch_many([tokens(text), tokens(edited)])
        assert a is not None and b is not None
        errors.append(estimate(a.data, b.data) - exact_jaccard(text, edited))
    mean = sum(errors) / len(errors)
    spread = (sum(e * e for e in errors) / len(errors)) ** 0.5
    assert abs(mean) < 0.02
    assert spread < 0.06


def test_sketches_are_compact_deterministic_and_batch_independent() -> None:
    rng = random.Random(3)
    texts = [tokens(random_text(rng, n)) for n in (5, 80, 300)]
    alone = [sketch_many([t])[0] for t in texts]
    together = sketch_many(texts)
    assert alone == together
    assert all(s is not None and len(s.data) == SKETCH_BYTES for s in together)
    assert sketch_many([["too", "few", "words"]]) == [None]


def test_normalisation_makes_quotes_case_and_dashes_irrelevant() -> None:
    assert normalize_text("\u201cIt\u2019s  DONE\u201d \u2014 he said") == normalize_text(
        '"it\'s done" - He said'
    )


def test_alike_texts_under_titles_with_other_numbers_are_kept(dedup: DedupConsumer) -> None:
    # The title-number guard: series items (quarters, matchdays, episodes) share their text.
    text = record(LAPTOP)["body"]
    a = record(LAPTOP, originalUrl="https://s.example/5", title="Story number 5", body=text)
    b = record(LAPTOP, originalUrl="https://s.example/6", title="Story number 6", body=text + "!")
    c = record(
        LAPTOP, originalUrl="https://s.example/5b", title="STORY NUMBER 5", body=f"{text} More."
    )
    assert [v.reason for v in judge(dedup, a, b, c)] == ["", "", "near"]
