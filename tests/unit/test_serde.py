"""Avro single-object encoding (DESIGN §4): round trips, header, fingerprints, errors, evolution."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from newswire.errors import SerdeError, UnknownSchemaError
from newswire.model import Article, EnrichedArticle, Sighting
from newswire.serde import (
    ARTICLE,
    ENRICHED_ARTICLE,
    SIGHTING,
    Schema,
    SchemaStore,
    SingleObjectSerde,
    schemas_dir,
)
from tests.unit.support import ARTICLES, article

# -- an independent CRC-64-AVRO, straight from the Avro specification ------------------------

_EMPTY = 0xC15D213AA4D7A795


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def spec_header(canonical: str) -> bytes:
    """C3 01 + the fingerprint as 8 little-endian bytes (spec: single-object encoding)."""
    return b"\xc3\x01" + crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serde() -> SingleObjectSerde:
    return SingleObjectSerde()


WIDGET_V1 = {
    "type": "record",
    "name": "Widget",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "size", "type": "int"},
    ],
}
WIDGET_V2 = {
    **WIDGET_V1,
    "fields": [
        *WIDGET_V1["fields"],
        {"name": "colour", "type": "string", "default": "blue"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}


def write_schema(path: Path, schema: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


# -- the CRC itself --------------------------------------------------------------------------


def test_independent_crc_matches_the_spec_test_vector_for_int() -> None:
    # Avro spec: fingerprint of "int" is 0x7275d51a3f395c8f, i.e. bytes 8f5c393f1ad57572 LE.
    assert crc64_avro(b'"int"') == 0x7275D51A3F395C8F
    assert crc64_avro(b'"int"').to_bytes(8, "little").hex() == "8f5c393f1ad57572"


def test_fastavro_canonical_form_of_int_has_the_spec_fingerprint() -> None:
    canonical = to_parsing_canonical_form(parse_schema("int"))
    assert canonical == '"int"'
    assert spec_header(canonical)[2:].hex() == "8f5c393f1ad57572"


def test_schema_load_fingerprint_is_little_endian_crc64_of_the_canonical_form(
    tmp_path: Path,
) -> None:
    schema = Schema.load(write_schema(tmp_path / "widget.avsc", WIDGET_V1), current=True)
    assert schema.name == "test.Widget"
    assert schema.canonical == to_parsing_canonical_form(parse_schema(WIDGET_V1))
    assert schema.fingerprint == crc64_avro(schema.canonical.encode()).to_bytes(8, "little")
    assert len(schema.fingerprint) == 8


def test_a_record_without_namespace_loads(tmp_path: Path) -> None:
    plain = {"type": "record", "name": "Plain", "fields": [{"name": "a", "type": "int"}]}
    assert Schema.load(write_schema(tmp_path / "plain.avsc", plain), current=True).name == "Plain"


def test_a_record_with_a_dotted_name_loads(tmp_path: Path) -> None:
    dotted = {"type": "record", "name": "test.Dotted", "fields": [{"name": "a", "type": "int"}]}
    schema = Schema.load(write_schema(tmp_path / "dotted.avsc", dotted), current=True)
    assert schema.name == "test.Dotted"


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"type": "nonesuch"}',
        '{"type": "record", "namespace": "t", "fields": []}',
        '{"type": "record", "name": "X", "namespace": "t",'
        ' "fields": [{"name": "a", "type": "int", "default": "x"}]}',
    ],
    ids=["not_json", "unknown_type", "no_name", "bad_default"],
)
def test_an_unparseable_schema_file_is_a_serde_error_naming_the_file(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "broken.avsc"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SerdeError, match=r"broken\.avsc"):
        Schema.load(path, current=True)


def test_an_empty_schema_dir_is_a_serde_error(tmp_path: Path) -> None:
    with pytest.raises(SerdeError, match="no schemas"):
        SchemaStore.from_dir(tmp_path)


# -- the shipped schemas -------------------------------------------------------------------------


def test_the_shipped_schemas_are_all_loaded() -> None:
    store = SchemaStore.from_dir()
    assert {ARTICLE, ENRICHED_ARTICLE, SIGHTING} <= set(store.current)
    assert (schemas_dir() / "article.avsc").is_file()


def test_header_is_magic_plus_the_current_article_schema_fingerprint(
    serde: SingleObjectSerde,
) -> None:
    data = serde.encode(ARTICLE, article().model_dump())
    assert data[:2] == b"\xc3\x01"
    current = serde.store.current[ARTICLE]
    assert data[2:10] == current.fingerprint
    # …and that fingerprint is the spec's, computed independently from the .avsc file.
    raw = json.loads((schemas_dir() / "article.avsc").read_text(encoding="utf-8"))
    assert data[:10] == spec_header(to_parsing_canonical_form(parse_schema(raw)))


def test_the_seed_round_trips_to_an_equal_model(serde: SingleObjectSerde) -> None:
    original = article()
    name, decoded = serde.decode(serde.encode(ARTICLE, original.model_dump()))
    assert name == ARTICLE
    assert Article.model_validate(decoded) == original
    assert decoded["published_at"] == dt.datetime(2021, 2, 18, 21, 45, tzinfo=dt.UTC)
    assert decoded["secured"] == original.model_dump()["secured"]
    assert decoded["related"][0]["cdn_amp_web_url"] == original.related[0].cdn_amp_web_url


@pytest.mark.parametrize(
    "path", sorted(p for p in ARTICLES.glob("*.txt") if not p.name.startswith("bad_"))
)
def test_every_fixture_round_trips(serde: SingleObjectSerde, path: Path) -> None:
    original = article(path)
    _, decoded = serde.decode(serde.encode(ARTICLE, original.model_dump()))
    assert Article.model_validate(decoded) == original


def test_extras_and_ingest_time_round_trip(serde: SingleObjectSerde) -> None:
    original = article(author="Jane Doe")
    record = {**original.model_dump(), "ingested_at": dt.datetime.now(dt.UTC), "source": "f.txt"}
    _, decoded = serde.decode(serde.encode(ARTICLE, record))
    assert decoded["extras"] == {"author": '"Jane Doe"'}
    assert decoded["source"] == "f.txt"
    assert abs(decoded["ingested_at"] - record["ingested_at"]) < dt.timedelta(milliseconds=1)


def test_enriched_article_and_sighting_round_trip(serde: SingleObjectSerde) -> None:
    enriched = EnrichedArticle.model_validate(
        {**article().model_dump(), "word_count": 3, "language": "en", "language_score": 0.5}
    )
    name, decoded = serde.decode(serde.encode(ENRICHED_ARTICLE, enriched.model_dump()))
    assert name == ENRICHED_ARTICLE
    assert EnrichedArticle.model_validate(decoded) == enriched

    sighting = Sighting(
        id="a" * 16,
        url="https://e.com/a?utm_source=x",
        canonical_url="https://e.com/a",
        duplicate_of="b" * 16,
        reason="url",
        seen_at=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    name, decoded = serde.decode(serde.encode(SIGHTING, sighting.model_dump()))
    assert name == SIGHTING
    assert Sighting.model_validate(decoded) == sighting


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\xc3", b"\xc3\x01", b"\xc3\x01\x00\x01", b"\x00\x00\x00\x00\x01abc"],
    ids=["empty", "text", "half_magic", "magic_only", "short_fingerprint", "confluent_framing"],
)
def test_bytes_that_are_not_single_object_encoded_are_a_serde_error(
    serde: SingleObjectSerde, data: bytes
) -> None:
    with pytest.raises(SerdeError, match="not Avro single-object encoded") as caught:
        serde.decode(data)
    assert not isinstance(caught.value, UnknownSchemaError)
    assert f"{len(data)} bytes" in str(caught.value)


def test_an_unknown_fingerprint_is_an_unknown_schema_error_naming_it(
    serde: SingleObjectSerde,
) -> None:
    data = serde.encode(ARTICLE, article().model_dump())
    forged = b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + data[10:]
    with pytest.raises(UnknownSchemaError, match="0123456789abcdef") as caught:
        serde.decode(forged)
    assert caught.value.fingerprint == "0123456789abcdef"
    assert isinstance(caught.value, SerdeError)


@pytest.mark.parametrize("cut", [1, 5, 100, 1000])
def test_a_truncated_datum_is_a_serde_error(serde: SingleObjectSerde, cut: int) -> None:
    data = serde.encode(ARTICLE, article().model_dump())
    with pytest.raises(SerdeError, match=r"corrupt newswire\.Article datum") as caught:
        serde.decode(data[:-cut])
    assert not isinstance(caught.value, UnknownSchemaError)
    assert caught.value.schema == ARTICLE


def test_a_header_without_datum_is_a_serde_error(serde: SingleObjectSerde) -> None:
    data = serde.encode(ARTICLE, article().model_dump())
    with pytest.raises(SerdeError, match="corrupt"):
        serde.decode(data[:10])


def test_trailing_bytes_are_a_serde_error(serde: SingleObjectSerde) -> None:
    data = serde.encode(ARTICLE, article().model_dump())
    with pytest.raises(SerdeError, match="trailing bytes"):
        serde.decode(data + b"\x00\x00")


def test_garbage_after_a_valid_header_is_a_serde_error(serde: SingleObjectSerde) -> None:
    header = serde.encode(ARTICLE, article().model_dump())[:10]
    with pytest.raises(SerdeError):
        serde.decode(header + b"\xff" * 64)


def test_encoding_with_an_unknown_schema_name_is_an_unknown_schema_error(
    serde: SingleObjectSerde,
) -> None:
    with pytest.raises(UnknownSchemaError, match=r"newswire\.Nope"):
        serde.encode("newswire.Nope", {})


def test_encoding_a_record_missing_a_required_field_is_a_serde_error(
    serde: SingleObjectSerde,
) -> None:
    record = article().model_dump()
    del record["title"]
    with pytest.raises(SerdeError, match=r"cannot encode newswire\.Article"):
        serde.encode(ARTICLE, record)


def test_encoding_a_wrongly_typed_field_is_a_serde_error(serde: SingleObjectSerde) -> None:
    record = {**article().model_dump(), "quality": "high"}
    with pytest.raises(SerdeError):
        serde.encode(ARTICLE, record)


# -- schema evolution ------------------------------------------------------------------------------


@pytest.fixture
def evolved(tmp_path: Path) -> tuple[SingleObjectSerde, SingleObjectSerde]:
    """(a writer that only knows v1, a reader whose current schema is v2 with v1 in history)."""
    old_dir = tmp_path / "old"
    write_schema(old_dir / "widget.avsc", WIDGET_V1)
    new_dir = tmp_path / "new"
    write_schema(new_dir / "widget.avsc", WIDGET_V2)
    write_schema(new_dir / "history" / "widget" / "v1.avsc", WIDGET_V1)
    return SingleObjectSerde(SchemaStore.from_dir(old_dir)), SingleObjectSerde(
        SchemaStore.from_dir(new_dir)
    )


def test_an_old_event_is_resolved_to_the_current_schema_with_defaults(
    evolved: tuple[SingleObjectSerde, SingleObjectSerde],
) -> None:
    old, new = evolved
    data = old.encode("test.Widget", {"id": "w1", "size": 3})
    assert data[2:10] == old.store.current["test.Widget"].fingerprint
    assert data[2:10] != new.store.current["test.Widget"].fingerprint
    name, record = new.decode(data)
    assert name == "test.Widget"
    assert record == {"id": "w1", "size": 3, "colour": "blue", "tags": []}


def test_history_versions_are_known_but_not_current(
    evolved: tuple[SingleObjectSerde, SingleObjectSerde],
) -> None:
    old, new = evolved
    v1 = old.store.current["test.Widget"].fingerprint
    assert new.store.by_fingerprint[v1].current is False
    assert new.store.current["test.Widget"].fingerprint != v1
    assert len(list(new.store)) == 2


def test_new_events_use_the_current_schema(
    evolved: tuple[SingleObjectSerde, SingleObjectSerde],
) -> None:
    _, new = evolved
    data = new.encode("test.Widget", {"id": "w2", "size": 1, "colour": "red", "tags": ["a"]})
    assert new.decode(data) == (
        "test.Widget",
        {"id": "w2", "size": 1, "colour": "red", "tags": ["a"]},
    )


def test_an_event_from_a_newer_writer_is_unknown_to_an_old_reader(
    evolved: tuple[SingleObjectSerde, SingleObjectSerde],
) -> None:
    old, new = evolved
    data = new.encode("test.Widget", {"id": "w3", "size": 2})
    with pytest.raises(UnknownSchemaError):
        old.decode(data)
