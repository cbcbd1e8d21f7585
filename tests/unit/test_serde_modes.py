"""The Serde protocol, in both wire formats: round trips, projected decode, extend, selection."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from consumers.enrich import Enricher
from newswire import Consumer, Event
from newswire.errors import ConfigError, SerdeError
from newswire.model import EnrichedArticle, Sighting
from newswire.serde import (
    ARTICLE,
    ENRICHED_ARTICLE,
    MODES,
    SIGHTING,
    SchemaStore,
    Serde,
    SingleObjectSerde,
    project,
    serde_for,
)
from newswire.serde.registry import RegistrySerde
from newswire.settings import SerdeSettings, Settings
from newswire.testing import run_consumer
from tests.unit.support import ARTICLES, article, record

RAW, ENRICHED = "articles.raw", "articles.enriched"
FEW = ("id", "canonical_url", "title", "body")


def registry_serde(store: SchemaStore | None = None) -> RegistrySerde:
    return RegistrySerde(store, url=f"mock://{uuid.uuid4().hex}")


@pytest.fixture(params=["single-object", "registry"])
def serde(request: pytest.FixtureRequest) -> Serde:
    if request.param == "registry":
        return registry_serde()
    return SingleObjectSerde()


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher()


def store_of(
    tmp_path: Path, *schemas: dict[str, Any], history: dict[str, Any] | None = None
) -> SchemaStore:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for schema in schemas:
        (tmp_path / f"{schema['name'].lower()}.avsc").write_text(json.dumps(schema))
    if history is not None:
        old = tmp_path / "history" / history["name"].lower()
        old.mkdir(parents=True)
        (old / "v1.avsc").write_text(json.dumps(history))
    return SchemaStore.from_dir(tmp_path)


def test_both_modes_follow_the_protocol(serde: Serde) -> None:
    assert isinstance(serde, Serde)
    assert serde.mode in MODES


def test_every_fixture_round_trips(serde: Serde) -> None:
    for path in sorted(p for p in ARTICLES.glob("*.txt") if not p.name.startswith("bad_")):
        original = article(path).model_dump()
        name, decoded = serde.decode(serde.encode(ARTICLE, original, topic=RAW))
        assert name == ARTICLE
        assert decoded == original, path.name


def test_a_model_encodes_like_its_dump(serde: Serde) -> None:
    model = article()
    assert serde.encode(ARTICLE, model, topic=RAW) == serde.encode(
        ARTICLE, model.model_dump(), topic=RAW
    )


def test_schema_of_reads_the_header(serde: Serde) -> None:
    sighting = Sighting(
        id="a",
        url="https://x.example/a",
        canonical_url="https://x.example/a",
        duplicate_of="b",
        reason="url",
    )
    data = serde.encode(SIGHTING, sighting, topic="articles.duplicates")
    assert serde.schema_of(data) == SIGHTING
    assert serde.schema_of(serde.encode(ARTICLE, record(), topic=RAW)) == ARTICLE


def test_the_encoder_of_a_schema_is_picklable_and_encodes_the_same_bytes(serde: Serde) -> None:
    write = serde.encoder(ARTICLE, topic=RAW)
    copy = pickle.loads(pickle.dumps(write))
    assert copy(record()) == write(record()) == serde.encode(ARTICLE, record(), topic=RAW)


# -- projected decode -----------------------------------------------------------------------------


def test_a_projected_decode_returns_only_the_fields_asked_for(serde: Serde) -> None:
    full = record()
    data = serde.encode(ARTICLE, full, topic=RAW)
    name, few = serde.decode(data, FEW)
    assert name == ARTICLE
    assert few == {f: full[f] for f in FEW}


@pytest.mark.parametrize(
    "fields",
    [("id", "related"), ("images",), ("related", "ingested_at"), ("provider", "related")],
    ids=["related", "images", "related_time", "provider_related"],
)
def test_a_projection_defines_a_named_type_whose_field_it_leaves_out(
    serde: Serde, fields: tuple[str, ...]
) -> None:
    # related[].provider is a newswire.Provider, defined in the (dropped) provider field.
    full = record()
    full["related"] = [
        {
            "title": "t",
            "excerpt": "",
            "published_at": None,
            "web_url": "https://r.example/1",
            "amp_web_url": None,
            "cdn_amp_web_url": None,
            "type": "article",
            "provider": {"name": "R", "domain": "r.example"},
            "quality": 3,
            "images": [
                {"url": "https://r.example/i.jpg", "width": 1, "height": 2, "is_cached": True}
            ],
        }
    ]
    _, few = serde.decode(serde.encode(ARTICLE, full, topic=RAW), frozenset(fields))
    assert few == {f: full[f] for f in fields}


def test_a_projection_is_built_once_per_writer_and_fields(serde: Serde) -> None:
    data = serde.encode(ARTICLE, record(), topic=RAW)
    assert isinstance(serde, SingleObjectSerde | RegistrySerde)
    serde.decode(data, FEW)
    writer = serde._writer(data)
    reader = writer.projections[FEW]
    serde.decode(data, FEW)
    assert writer.projections[FEW] is reader
    assert list(writer.projections) == [FEW]


def test_a_projection_leaves_out_a_field_the_record_type_lacks(serde: Serde) -> None:
    data = serde.encode(ARTICLE, record(), topic=RAW)
    assert serde.decode(data, ("id", "word_count")) == (ARTICLE, {"id": record()["id"]})


def test_a_truncated_datum_is_a_serde_error_in_a_projected_decode_too(serde: Serde) -> None:
    data = serde.encode(ARTICLE, record(), topic=RAW)
    with pytest.raises(SerdeError, match="corrupt"):
        serde.decode(data[:-5], FEW)


WIDGET_V1 = {
    "type": "record",
    "name": "Widget",
    "namespace": "test",
    "fields": [{"name": "id", "type": "string"}, {"name": "size", "type": "int"}],
}
WIDGET_V2 = {
    **WIDGET_V1,
    "fields": [*WIDGET_V1["fields"], {"name": "colour", "type": "string", "default": "blue"}],
}


def test_a_projected_decode_of_an_old_writer_gets_the_new_fields_defaults(tmp_path: Path) -> None:
    old = SingleObjectSerde(store_of(tmp_path / "old", WIDGET_V1))
    new = SingleObjectSerde(store_of(tmp_path / "new", WIDGET_V2, history=WIDGET_V1))
    data = old.encode("test.Widget", {"id": "w", "size": 2})
    assert new.decode(data, ("id", "colour")) == ("test.Widget", {"id": "w", "colour": "blue"})


def test_project_keeps_schema_order_and_defaults() -> None:
    parsed = SchemaStore.from_dir().current[ARTICLE].parsed
    projection = project(parsed, frozenset({"title", "id", "category"}))
    assert [f["name"] for f in projection["fields"]] == ["id", "category", "title"]
    assert projection["fields"][1]["default"] == "news"


# -- extend ---------------------------------------------------------------------------------------


def test_extend_gives_the_bytes_of_a_full_encode(serde: Serde, enricher: Enricher) -> None:
    full = record()
    data = serde.encode(ARTICLE, full, topic=RAW)
    enriched = enricher.enrich(full)
    tail = {k: v for k, v in enriched.items() if k not in full}
    extended = serde.extend(data, ENRICHED_ARTICLE, tail, topic=ENRICHED)
    assert extended == serde.encode(ENRICHED_ARTICLE, enriched, topic=ENRICHED)
    name, decoded = serde.decode(extended)
    assert name == ENRICHED_ARTICLE
    # language_score is an Avro float (32 bits): equal up to that precision.
    assert decoded["language_score"] == pytest.approx(enriched["language_score"], rel=1e-6)
    assert decoded == {**enriched, "language_score": decoded["language_score"]}
    assert (
        EnrichedArticle.model_validate(serde.decode(extended)[1]).word_count
        == enriched["word_count"]
    )


def test_extend_accepts_the_whole_enriched_record(serde: Serde, enricher: Enricher) -> None:
    full = record()
    enriched = enricher.enrich(full)
    data = serde.encode(ARTICLE, full, topic=RAW)
    assert serde.extend(data, ENRICHED_ARTICLE, enriched, topic=ENRICHED) == serde.encode(
        ENRICHED_ARTICLE, enriched, topic=ENRICHED
    )


def test_extend_with_a_wrongly_typed_new_field_is_a_serde_error(serde: Serde) -> None:
    data = serde.encode(ARTICLE, record(), topic=RAW)
    with pytest.raises(SerdeError, match=r"cannot encode newswire\.EnrichedArticle"):
        serde.extend(data, ENRICHED_ARTICLE, {"word_count": "many"}, topic=ENRICHED)


SHAPE = {
    "type": "record",
    "name": "Shape",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "size",
            "type": {"type": "record", "name": "Size", "fields": [{"name": "w", "type": "int"}]},
        },
    ],
}


def test_extend_appends_a_field_whose_type_the_prefix_defines(tmp_path: Path) -> None:
    more = {
        "type": "record",
        "name": "BigShape",
        "namespace": "test",
        "fields": [*SHAPE["fields"], {"name": "min_size", "type": "test.Size"}],
    }
    serde = SingleObjectSerde(store_of(tmp_path, SHAPE, more))
    data = serde.encode("test.Shape", {"id": "s", "size": {"w": 4}})
    out = serde.extend(data, "test.BigShape", {"min_size": {"w": 1}})
    whole = {"id": "s", "size": {"w": 4}, "min_size": {"w": 1}}
    assert out == serde.encode("test.BigShape", whole)
    assert out[2:10] == serde.store.current["test.BigShape"].fingerprint
    assert serde._extensions[(serde._writer(data), "test.BigShape", "")].tail is not None


def test_extend_re_encodes_when_the_new_schema_does_not_start_with_the_old(
    tmp_path: Path,
) -> None:
    reordered = {
        "type": "record",
        "name": "Gadget",
        "namespace": "test",
        "fields": [
            {"name": "size", "type": "int"},
            {"name": "id", "type": "string"},
            {"name": "colour", "type": "string"},
        ],
    }
    serde = SingleObjectSerde(store_of(tmp_path, WIDGET_V1, reordered))
    data = serde.encode("test.Widget", {"id": "w", "size": 2})
    out = serde.extend(data, "test.Gadget", {"colour": "red"})
    assert out == serde.encode("test.Gadget", {"id": "w", "size": 2, "colour": "red"})
    assert serde._extensions[(serde._writer(data), "test.Gadget", "")].tail is None


# -- choosing the mode ---------------------------------------------------------------------------


def test_the_default_mode_is_single_object() -> None:
    assert isinstance(serde_for(Settings()), SingleObjectSerde)


def test_the_registry_mode_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_SERDE__MODE", "registry")
    monkeypatch.setenv("NEWSWIRE_SERDE__REGISTRY_URL", "mock://from-env")
    monkeypatch.setenv("NEWSWIRE_SERDE__REGISTRY_AUTH", "alice:s3cret")
    settings = Settings()
    assert settings.serde.registry_auth == SecretStr("alice:s3cret")
    assert "s3cret" not in repr(settings)
    serde = serde_for(settings)
    assert isinstance(serde, RegistrySerde)
    data = serde.encode(ARTICLE, record(), topic=RAW)
    assert data[0] == 0


def test_an_unknown_mode_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no serde mode 'avro-json'.*registry, single-object"):
        serde_for(SerdeSettings(mode="avro-json"))


def test_the_registry_mode_without_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NEWSWIRE_SERDE__REGISTRY_URL"):
        serde_for(SerdeSettings(mode="registry"))


def test_registry_auth_must_be_user_colon_password() -> None:
    settings = SerdeSettings(
        mode="registry", registry_url="http://127.0.0.1:1", registry_auth=SecretStr("nocolon")
    )
    with pytest.raises(ConfigError, match="user:password"):
        serde_for(settings)


# -- the runtime's projected decode ---------------------------------------------------------


class TitleLengths(Consumer):
    """Reads two fields only, and forwards the bytes it was given."""

    name = "title-lengths"
    topics = (RAW,)
    fields = ("id", "title")
    seen: ClassVar[list[dict[str, Any]]] = []

    def handle_event(self, event: Event) -> None:
        self.seen.append(event.record)
        self.emit("articles.out", event.value, key=event.key)


@pytest.mark.parametrize("mode", ["single-object", "registry"])
def test_a_consumer_declaring_fields_gets_only_those_and_latency_still_counts(mode: str) -> None:
    TitleLengths.seen.clear()
    serde = SingleObjectSerde() if mode == "single-object" else registry_serde()
    now = dt.datetime.now(dt.UTC)
    items = [
        article(title=f"Story {i}", originalUrl=f"https://x.example/{i}", ingested_at=now)
        for i in range(3)
    ]
    result = run_consumer(TitleLengths(), items, serde=serde)
    assert [set(r) for r in TitleLengths.seen] == [{"id", "title", "ingested_at"}] * 3
    assert [r["title"] for r in TitleLengths.seen] == ["Story 0", "Story 1", "Story 2"]
    assert [e.value.title for e in result.emitted] == ["Story 0", "Story 1", "Story 2"]
    observed = result.metric(
        "newswire_consumer_end_to_end_seconds_count", consumer="title-lengths", topic=RAW
    )
    assert observed == 3


def test_the_serde_section_reaches_child_processes() -> None:
    settings = Settings()
    settings.serde.mode = "registry"
    settings.serde.registry_url = "http://registry.example:8081"
    settings.serde.registry_auth = SecretStr("ops:pw")
    env = settings.environment()
    assert env["NEWSWIRE_SERDE__MODE"] == "registry"
    assert env["NEWSWIRE_SERDE__REGISTRY_URL"] == "http://registry.example:8081"
    assert env["NEWSWIRE_SERDE__REGISTRY_AUTH"] == "ops:pw"
