"""The dedup consumer without a broker: verdicts, sightings, redelivery after a crash, bounds."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumers.dedup import DedupConsumer
from consumers.dedup.fingerprint import content_fingerprint, normalize_text
from newswire.consumer import Context, Event
from newswire.model import Sighting
from newswire.serde import ARTICLE, SIGHTING, SingleObjectSerde
from newswire.settings import Settings
from newswire.topics import DUPLICATES, RAW, UNIQUE
from tests.unit.support import ARTICLES, record, variant_files

LAPTOP = ARTICLES / "006_us-secret-service-laptop-stolen.txt"
CORPUS = sorted(
    p
    for p in ARTICLES.glob("00[1-5]_*.txt")  # distinct articles with long bodies
)


@dataclass
class Emitted:
    topic: str
    value: Any
    key: bytes | str | None
    schema: str | None
    partition: int | None


@dataclass
class Harness:
    """Opens DedupConsumers on one state file, as the runtime would, and records what they emit."""

    settings: Settings
    emitted: list[Emitted] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    consumer: DedupConsumer | None = None

    def emit(
        self,
        topic: str,
        value: Any,
        *,
        key: Any = None,
        schema: Any = None,
        partition: Any = None,
        headers: Any = (),
    ) -> None:
        self.emitted.append(Emitted(topic, value, key, schema, partition))

    def open(self) -> DedupConsumer:
        self.registry = CollectorRegistry()
        consumer = DedupConsumer()
        consumer.bind(
            Context(
                settings=self.settings,
                registry=self.registry,
                emit=self.emit,
                log=logging.getLogger("t"),
            )
        )
        consumer.setup()
        self.consumer = consumer
        return consumer

    def crash_and_restart(self) -> DedupConsumer:
        assert self.consumer is not None
        self.consumer.close()
        return self.open()

    def handle(self, *events: Event) -> list[Emitted]:
        assert self.consumer is not None
        start = len(self.emitted)
        self.consumer.handle_batch(list(events))
        return self.emitted[start:]

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"consumer": "dedup", "topic": RAW, **labels})


@pytest.fixture
def dedup_settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.dedup.state_url = f"sqlite:///{tmp_path / 'dedup.sqlite'}"
    return s


@pytest.fixture
def harness(dedup_settings: Settings) -> Iterator[Harness]:
    h = Harness(dedup_settings)
    h.open()
    yield h
    if h.consumer is not None:
        h.consumer.close()


def event(rec: dict[str, Any], offset: int, *, partition: int = 0) -> Event:
    return Event(
        topic=RAW,
        partition=partition,
        offset=offset,
        key=rec["id"].encode(),
        value=f"raw-bytes-{partition}-{offset}".encode(),
        schema=ARTICLE,
        record=rec,
    )


def verdict(out: list[Emitted]) -> tuple[str, str, str]:
    """(topic, reason, duplicate_of) of a single emitted record; reason '' when unique."""
    (only,) = out
    if only.topic == UNIQUE:
        return UNIQUE, "", ""
    return only.topic, only.value["reason"], only.value["duplicate_of"]


# -- verdicts --------------------------------------------------------------------------------------


def test_the_first_copy_goes_to_unique_with_its_original_bytes_key_and_partition(
    harness: Harness,
) -> None:
    ev = event(record(LAPTOP), 7, partition=2)
    (out,) = harness.handle(ev)
    assert out.topic == UNIQUE
    assert out.value == ev.value  # the same bytes, not re-encoded
    assert out.key == ev.key
    assert out.partition == 2
    assert out.schema is None


@pytest.mark.parametrize(
    ("variant", "original"), variant_files(), ids=[v.name for v, _ in variant_files()]
)
def test_a_url_variant_is_a_url_sighting_of_the_original(
    harness: Harness, variant: Path, original: Path
) -> None:
    first, copy = record(original), record(variant)
    harness.handle(event(first, 0, partition=1))
    (out,) = harness.handle(event(copy, 1, partition=1))
    assert out.topic == DUPLICATES
    assert out.schema == SIGHTING
    sighting = out.value
    assert sighting["reason"] == "url"
    assert sighting["duplicate_of"] == first["id"]
    assert sighting["url"] == copy["original_url"]  # the URL as this copy gave it
    assert sighting["source_topic"] == RAW
    assert (sighting["source_partition"], sighting["source_offset"]) == (1, 1)
    assert out.key in (first["id"], first["id"].encode())  # keyed by the kept article
    assert harness.metric("newswire_dedup_duplicates_total", reason="url") == 1


def test_a_sighting_is_a_valid_sighting_record(harness: Harness) -> None:
    harness.handle(event(record(LAPTOP), 0))
    (out,) = harness.handle(event(record(variant_files()[0][0]), 1))
    model = Sighting.model_validate(out.value)
    assert model.seen_at is not None
    serde = SingleObjectSerde()
    name, decoded = serde.decode(serde.encode(SIGHTING, out.value))
    assert name == SIGHTING
    assert Sighting.model_validate(decoded) == model


def test_all_variants_in_one_batch_keep_exactly_one(harness: Harness) -> None:
    records = [record(LAPTOP)] + [record(v) for v, _ in variant_files()]
    out = harness.handle(*(event(r, i) for i, r in enumerate(records)))
    assert [o.topic for o in out] == [UNIQUE] + [DUPLICATES] * (len(records) - 1)
    assert {o.value["duplicate_of"] for o in out[1:]} == {records[0]["id"]}


def test_the_same_content_under_an_unrelated_url_is_a_content_duplicate(
    harness: Harness,
) -> None:
    first = record(LAPTOP)
    syndicated = record(LAPTOP, originalUrl="https://syndication.example.net/wire/98765")
    assert syndicated["id"] != first["id"]
    harness.handle(event(first, 0))
    assert verdict(harness.handle(event(syndicated, 1))) == (DUPLICATES, "content", first["id"])
    assert harness.metric("newswire_dedup_duplicates_total", reason="content") == 1


def test_content_matching_ignores_case_punctuation_and_whitespace(harness: Harness) -> None:
    first = record(LAPTOP)
    body = first["body"]
    messy = body.upper().replace(" ", "  \n").replace(".", " !")
    assert normalize_text(messy) == normalize_text(body)
    copy = record(LAPTOP, originalUrl="https://mirror.example.org/a", body=messy)
    harness.handle(event(first, 0))
    assert verdict(harness.handle(event(copy, 1)))[1] == "content"


def test_different_articles_are_all_unique(harness: Harness) -> None:
    records = [record(p) for p in CORPUS]
    out = harness.handle(*(event(r, i) for i, r in enumerate(records)))
    assert [o.topic for o in out] == [UNIQUE] * len(records)


def test_a_short_text_under_another_url_is_not_a_content_duplicate(
    harness: Harness, dedup_settings: Settings
) -> None:
    short = {"title": "Markets close higher", "excerpt": "", "body": ""}
    a = record(LAPTOP, originalUrl="https://a.example.com/brief/1", **short)
    b = record(LAPTOP, originalUrl="https://b.example.com/brief/2", **short)
    assert content_fingerprint(a, dedup_settings.dedup.min_content_chars) is None
    out = harness.handle(event(a, 0), event(b, 1))
    assert [o.topic for o in out] == [UNIQUE, UNIQUE]


def test_a_long_title_and_excerpt_without_body_are_compared(harness: Harness) -> None:
    text = {"body": "", "excerpt": "An excerpt long enough to identify the story. " * 3}
    a = record(LAPTOP, originalUrl="https://a.example.com/x", **text)
    b = record(LAPTOP, originalUrl="https://b.example.com/y", **text)
    harness.handle(event(a, 0))
    assert verdict(harness.handle(event(b, 1))) == (DUPLICATES, "content", a["id"])


def test_a_republished_identical_record_at_a_new_offset_is_a_duplicate(harness: Harness) -> None:
    rec = record(LAPTOP)
    harness.handle(event(rec, 0))
    assert verdict(harness.handle(event(rec, 5))) == (DUPLICATES, "url", rec["id"])


def test_duplicates_of_duplicates_point_at_the_kept_article(harness: Harness) -> None:
    kept = record(LAPTOP)
    # Same URL (a variant), an older version with another body: a URL duplicate that
    # brings new content…
    edited_body = kept["body"] + " Update: the laptop has been recovered, police said."
    edited = record(
        ARTICLES / "006_us-secret-service-laptop-stolen_variant_utm.txt",
        body=edited_body,
        publishedDateTime="2017-03-16T00:00:00Z",
    )
    # …then that edited content syndicated elsewhere.
    syndicated = record(LAPTOP, originalUrl="https://wire.example.com/1", body=edited_body)
    harness.handle(event(kept, 0))
    assert verdict(harness.handle(event(edited, 1))) == (DUPLICATES, "url", kept["id"])
    assert verdict(harness.handle(event(syndicated, 2))) == (DUPLICATES, "content", kept["id"])
    # …and a URL variant of the syndicated copy.
    again = record(LAPTOP, originalUrl="http://www.wire.example.com/1/?utm_source=x")
    assert verdict(harness.handle(event(again, 3))) == (DUPLICATES, "url", kept["id"])


# -- redelivery and restarts -----------------------------------------------------------------


def test_a_redelivered_first_copy_is_unique_again_after_a_crash(harness: Harness) -> None:
    rec = record(LAPTOP)
    ev = event(rec, 42, partition=1)
    assert verdict(harness.handle(ev))[0] == UNIQUE
    harness.crash_and_restart()
    (out,) = harness.handle(ev)
    assert out.topic == UNIQUE
    assert (out.value, out.key, out.partition) == (ev.value, ev.key, 1)


def test_a_redelivered_duplicate_is_still_the_same_duplicate(harness: Harness) -> None:
    kept = record(LAPTOP)
    variant = record(variant_files()[0][0])
    syndicated = record(LAPTOP, originalUrl="https://syndication.example.net/wire/1")
    batch = [event(kept, 0), event(variant, 1), event(syndicated, 2)]
    first = [verdict([o]) for o in harness.handle(*batch)]
    assert first == [
        (UNIQUE, "", ""),
        (DUPLICATES, "url", kept["id"]),
        (DUPLICATES, "content", kept["id"]),
    ]
    harness.crash_and_restart()
    assert [verdict([o]) for o in harness.handle(*batch)] == first


def test_redelivered_records_one_by_one_keep_their_verdicts(harness: Harness) -> None:
    # The runtime re-runs a failed batch event by event: same events, same verdicts.
    kept = record(LAPTOP)
    syndicated = record(LAPTOP, originalUrl="https://syndication.example.net/wire/2")
    batch = [event(kept, 10), event(syndicated, 11)]
    harness.handle(*batch)
    assert verdict(harness.handle(batch[1])) == (DUPLICATES, "content", kept["id"])
    assert verdict(harness.handle(batch[0])) == (UNIQUE, "", "")


def test_the_same_offset_on_another_partition_is_another_record(harness: Harness) -> None:
    rec = record(LAPTOP)
    harness.handle(event(rec, 3, partition=0))
    assert verdict(harness.handle(event(rec, 3, partition=1)))[1] == "url"


def test_state_survives_close_and_reopen(harness: Harness) -> None:
    kept = record(LAPTOP)
    harness.handle(event(kept, 0))
    harness.crash_and_restart()
    harness.crash_and_restart()
    for offset, (variant, _) in enumerate(variant_files(), start=1):
        assert verdict(harness.handle(event(record(variant), offset))) == (
            DUPLICATES,
            "url",
            kept["id"],
        )


def test_state_size_gauge_counts_remembered_articles(harness: Harness) -> None:
    records = [record(p) for p in CORPUS]
    harness.handle(*(event(r, i) for i, r in enumerate(records)))
    # One entry per remembered article (its URL, content and sketch keys point at it).
    assert harness.metric("newswire_dedup_state_entries") == len(records)
    harness.crash_and_restart()
    assert harness.metric("newswire_dedup_state_entries") == len(records)


# -- bounded state ----------------------------------------------------------------------------


def test_the_oldest_keys_are_evicted_at_the_bound_and_counted(
    dedup_settings: Settings,
) -> None:
    dedup_settings.dedup.max_entries = 2
    h = Harness(dedup_settings)
    h.open()
    try:
        records = [record(p) for p in CORPUS[:3]]
        for offset, rec in enumerate(records):
            h.handle(event(rec, offset))
        # 3 articles, bound 2: the oldest article (with all its keys) is gone.
        assert h.metric("newswire_dedup_evictions_total") == 1
        assert h.metric("newswire_dedup_state_entries") == 2
        # The newest article is still remembered…
        assert verdict(h.handle(event(records[2], 10)))[1] == "url"
        # …the oldest was forgotten, so a copy of it passes as new.
        assert verdict(h.handle(event(records[0], 11)))[0] == UNIQUE
    finally:
        assert h.consumer is not None
        h.consumer.close()


def test_no_evictions_below_the_bound(harness: Harness) -> None:
    harness.handle(*(event(record(p), i) for i, p in enumerate(CORPUS)))
    assert not harness.metric("newswire_dedup_evictions_total")


# -- updates: a newer version under a known URL ---------------------------------------------------

JAN = "2024-01-01T00:00:00Z"
FEB = "2024-02-01T00:00:00Z"


def version(published: str = JAN, **overrides: Any) -> dict[str, Any]:
    """The laptop story as published at *published*, with *overrides* (title, body…)."""
    return record(LAPTOP, publishedDateTime=published, **overrides)


def corrected(published: str = FEB) -> dict[str, Any]:
    base = record(LAPTOP)
    return version(
        published,
        title="Laptop with Trump Tower plans recovered",
        body=base["body"] + " The laptop was recovered on Friday, police said.",
    )


def sent(out: list[Emitted]) -> list[tuple[str, str]]:
    """(topic, reason) of everything emitted, reason '' on articles.unique."""
    return [(o.topic, "" if o.topic == UNIQUE else o.value["reason"]) for o in out]


def test_a_newer_version_goes_on_as_an_update_and_is_reported(harness: Harness) -> None:
    first, second = version(JAN), corrected(FEB)
    assert first["id"] == second["id"]
    harness.handle(event(first, 0))
    ev = event(second, 1)
    out = harness.handle(ev)
    assert sorted(sent(out)) == [(DUPLICATES, "update"), (UNIQUE, "")]
    unique = next(o for o in out if o.topic == UNIQUE)
    # An ordinary Article event with the same id: the same bytes, key and partition.
    assert (unique.value, unique.key, unique.partition) == (ev.value, ev.key, 0)
    sighting = next(o for o in out if o.topic == DUPLICATES).value
    assert sighting["duplicate_of"] == first["id"] == sighting["id"]
    assert Sighting.model_validate(sighting).reason == "update"
    assert harness.metric("newswire_dedup_duplicates_total", reason="update") == 1
    assert harness.metric("newswire_dedup_duplicates_total", reason="url") == 0


def test_an_identical_resend_stays_a_url_duplicate(harness: Harness) -> None:
    harness.handle(event(version(JAN), 0))
    assert verdict(harness.handle(event(version(FEB), 1))) == (
        DUPLICATES,
        "url",
        version()["id"],
    )


def test_an_older_version_is_a_sighting_only(harness: Harness) -> None:
    harness.handle(event(corrected(FEB), 0))
    assert verdict(harness.handle(event(version(JAN), 1))) == (DUPLICATES, "url", version()["id"])


def test_a_title_only_correction_is_an_update(harness: Harness) -> None:
    harness.handle(event(version(JAN), 0))
    out = harness.handle(event(version(JAN, title="Laptop stolen: Secret Service"), 1))
    assert sorted(sent(out)) == [(DUPLICATES, "update"), (UNIQUE, "")]


def test_the_same_published_time_is_decided_by_the_ingest_time(harness: Harness) -> None:
    early = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)
    a = {**version(JAN), "ingested_at": early}
    b = {**corrected(JAN), "ingested_at": early + dt.timedelta(seconds=30)}
    harness.handle(event(b, 0))
    # a was ingested before b: an older version, a sighting only.
    assert verdict(harness.handle(event(a, 1)))[1] == "url"
    # A third version ingested later, of the same published time: an update.
    c = {**version(JAN, title="Third version"), "ingested_at": early + dt.timedelta(minutes=1)}
    assert sorted(sent(harness.handle(event(c, 2)))) == [(DUPLICATES, "update"), (UNIQUE, "")]


def test_versions_are_judged_against_the_newest_one(harness: Harness) -> None:
    v1, v2 = version(JAN), corrected(FEB)
    v3 = version("2024-03-01T00:00:00Z", title="Third version")
    harness.handle(event(v1, 0))
    harness.handle(event(v2, 1))
    # A re-send of v2 is a duplicate now; v1 again is older than v2: a sighting.
    assert verdict(harness.handle(event(v2, 2)))[1] == "url"
    assert verdict(harness.handle(event(v1, 3)))[1] == "url"
    harness.crash_and_restart()  # the newest version is remembered across restarts
    assert verdict(harness.handle(event(v2, 4)))[1] == "url"
    assert sorted(sent(harness.handle(event(v3, 5)))) == [(DUPLICATES, "update"), (UNIQUE, "")]


def test_copies_of_an_update_elsewhere_are_copies_of_the_article(harness: Harness) -> None:
    v1, v2 = version(JAN), corrected(FEB)
    harness.handle(event(v1, 0), event(v2, 1))
    copy = {**v2, **record(LAPTOP, originalUrl="https://mirror.example.org/x", body=v2["body"])}
    assert verdict(harness.handle(event(copy, 2))) == (DUPLICATES, "content", v1["id"])
    # …and copies of the first version still are, too.
    old = record(LAPTOP, originalUrl="https://mirror.example.org/y", body=v1["body"])
    assert verdict(harness.handle(event(old, 3))) == (DUPLICATES, "content", v1["id"])


def test_a_redelivered_update_gets_its_own_verdict_back(harness: Harness) -> None:
    v1, v2 = version(JAN), corrected(FEB)
    harness.handle(event(v1, 0))
    update = event(v2, 1)
    assert sorted(sent(harness.handle(update))) == [(DUPLICATES, "update"), (UNIQUE, "")]
    harness.crash_and_restart()  # crashed before the offset commit: delivered again
    assert sorted(sent(harness.handle(update))) == [(DUPLICATES, "update"), (UNIQUE, "")]


SHORT = {"body": "", "excerpt": "Laptop stolen"}  # no text to compare: the URL key only


@pytest.mark.parametrize("short", [False, True], ids=["long", "url-key-only"])
@pytest.mark.parametrize("one_by_one", [False, True], ids=["batch", "one-by-one"])
def test_a_redelivered_batch_of_versions_keeps_every_verdict(
    harness: Harness, one_by_one: bool, short: bool
) -> None:
    extra = SHORT if short else {}
    v1 = version(JAN, **extra)
    v2 = version(FEB, **{**extra, "title": "Laptop with Trump Tower plans recovered"})
    v3 = version("2024-03-01T00:00:00Z", **{**extra, "title": "Third version"})
    batch = [event(v1, 0), event(v2, 1), event(v3, 2), event(v1, 3)]
    first = [sent(harness.handle(e)) for e in batch] if one_by_one else None
    if first is None:
        harness.handle(*batch)
    harness.crash_and_restart()
    again = [sorted(sent(harness.handle(e))) for e in batch]
    expected = [
        [(UNIQUE, "")],
        [(DUPLICATES, "update"), (UNIQUE, "")],
        [(DUPLICATES, "update"), (UNIQUE, "")],
        [(DUPLICATES, "url")],
    ]
    assert again == expected
    if first is not None:
        assert [sorted(f) for f in first] == expected


def test_a_batch_of_versions_judged_at_once_gives_each_its_verdict(harness: Harness) -> None:
    v1, v2 = version(JAN), corrected(FEB)
    v3 = version("2024-03-01T00:00:00Z", title="Third version")
    out = harness.handle(event(v1, 0), event(v2, 1), event(v3, 2), event(v2, 3))
    assert sent(out) == [
        (UNIQUE, ""),
        (DUPLICATES, "update"),
        (UNIQUE, ""),
        (DUPLICATES, "update"),
        (UNIQUE, ""),
        (DUPLICATES, "url"),
    ]
    # Re-run (the runtime retries a failed batch): the same again.
    assert sent(harness.handle(event(v1, 0), event(v2, 1), event(v3, 2), event(v2, 3))) == sent(out)


# -- keys: a record keyed by something else than its article id -----------------------------------


def test_a_wrongly_keyed_record_is_sent_back_keyed_by_its_id_not_judged(harness: Harness) -> None:
    rec = record(LAPTOP)
    wrong = event(rec, 9, partition=2)
    wrong.key = b"not-the-id"
    (out,) = harness.handle(wrong)
    assert out.topic == RAW
    assert (out.value, out.key, out.partition) == (wrong.value, rec["id"], None)
    assert out.schema is None
    assert harness.metric("newswire_dedup_rekeyed_total") == 1
    assert harness.metric("newswire_dedup_state_entries") == 0  # not judged here


def test_a_record_without_key_is_sent_back_keyed_by_its_id(harness: Harness) -> None:
    rec = record(LAPTOP)
    keyless = event(rec, 3)
    keyless.key = None
    (out,) = harness.handle(keyless)
    assert (out.topic, out.key) == (RAW, rec["id"])


def test_a_re_keyed_record_is_judged_as_the_record_it_was(dedup_settings: Settings) -> None:
    headers: list[Any] = []

    class Recording(Harness):
        def emit(self, topic: str, value: Any, **kw: Any) -> None:
            headers.append(kw.get("headers"))
            super().emit(topic, value, **kw)

    h = Recording(dedup_settings)
    h.open()
    try:
        rec = record(LAPTOP)
        wrong = event(rec, 9, partition=2)
        wrong.key = b"not-the-id"
        h.handle(wrong)
        sent_headers = dict(headers[-1])
        assert sent_headers["newswire.rekeyed_from"] == f"{RAW}/2/9".encode()
        assert sent_headers["newswire.original_key"] == b"not-the-id"
        # Back on the article's partition with the right key: judged, kept.
        back = event(rec, 40, partition=0)
        back.headers = list(headers[-1])
        assert verdict(h.handle(back))[0] == UNIQUE
        # Re-keyed twice (a crash before the first re-key was committed): the second
        # copy is the same record, so it gets the same verdict — not "duplicate of itself".
        h.handle(wrong)
        twice = event(rec, 41, partition=0)
        twice.headers = list(headers[-1])
        assert dict(twice.headers)["newswire.rekeyed_from"] == f"{RAW}/2/9".encode()
        assert verdict(h.handle(twice))[0] == UNIQUE
        # Any other copy is still a duplicate.
        assert verdict(h.handle(event(rec, 42)))[1] == "url"
    finally:
        assert h.consumer is not None
        h.consumer.close()
