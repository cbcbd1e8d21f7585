"""The article model (DESIGN §1): parsing the seed, dates, validation, extras, ``secured``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pydantic
import pytest
import yaml

from newswire.model import Article, EnrichedArticle, Image, Provider, Related, Sighting, to_utc
from newswire.source import Document
from newswire.urls import article_id, canonical_url
from producers.documents import DocumentSource, parse_document
from tests.unit.support import SEED, article, fields

UTC = dt.UTC
MINIMAL = {"title": "A title", "originalUrl": "https://www.example.com/news/a"}


def seed_secret() -> str:
    return yaml.safe_load(SEED.read_text(encoding="utf-8").split("---")[1])["secured"]


def error_locs(exc: pydantic.ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def test_the_seed_parses_through_document_source_into_an_article() -> None:
    (item,) = list(DocumentSource([SEED]))
    assert isinstance(item, Document)
    model = Article.model_validate(item.fields)
    assert model.title == (
        "Minneapolis becomes latest city to ban use of facial recognition technology"
    )
    assert model.published_at == dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)
    assert model.published_at.tzinfo is not None
    assert model.published_at.utcoffset() == dt.timedelta(0)
    assert model.quality == 37
    assert model.heat == -1
    assert model.published is False
    assert model.topics == ["Computer Vision", "AI"]
    assert model.provider == Provider(name="Security", domain="securityinfowatch.com")
    assert model.body == ""
    assert model.extras == {}


def test_identity_is_derived_from_the_original_url() -> None:
    model = article()
    assert model.canonical_url == canonical_url(model.original_url)
    assert model.id == article_id(model.canonical_url)
    assert model.original_url.startswith("https://www.securityinfowatch.com/")  # as received
    assert not model.canonical_url.startswith("https://www.")


def test_nested_images_are_parsed() -> None:
    (image,) = article().images
    assert isinstance(image, Image)
    assert image.url.startswith("https://img.securityinfowatch.com/")
    assert (image.width, image.height, image.is_cached) == (1200, 800, True)


def test_nested_related_are_parsed_with_their_camel_case_aliases() -> None:
    first, second = article().related
    assert isinstance(first, Related)
    assert first.published_at == dt.datetime(2021, 2, 18, 22, 58, tzinfo=UTC)
    assert first.web_url.startswith("https://www.natlawreview.com/article/privacy-tip-272")
    assert first.amp_web_url == first.web_url + "?amp"
    assert first.cdn_amp_web_url is not None
    assert first.cdn_amp_web_url.startswith("https://www-natlawreview-com.cdn.ampproject.org/c/s/")
    assert first.provider == Provider(name="The National Law Review", domain="natlawreview.com")
    assert first.quality == 54
    assert [(i.width, i.height, i.is_cached) for i in first.images] == [(1426, 808, True)]
    assert second.amp_web_url is None
    assert second.cdn_amp_web_url is None
    assert second.images == []
    assert second.provider is not None
    assert second.provider.domain == "nasdaq.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-02-18T21:45:00Z", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        ("2021-02-18T21:45:00+00:00", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        ("2021-02-18T23:45:00+02:00", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        ("2021-02-18T16:45:00-05:00", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        ("2021-02-18T21:45:00", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        ("2021-02-18", dt.datetime(2021, 2, 18, tzinfo=UTC)),
        (dt.date(2021, 2, 18), dt.datetime(2021, 2, 18, tzinfo=UTC)),
        (dt.datetime(2021, 2, 18, 21, 45), dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        (
            dt.datetime(2021, 2, 18, 23, 45, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC),
        ),
    ],
    ids=[
        "iso_z",
        "iso_utc_offset",
        "iso_plus_2",
        "iso_minus_5",
        "iso_naive",
        "date_string",
        "date",
        "naive_datetime",
        "aware_datetime",
    ],
)
def test_published_date_time_forms_become_aware_utc(value: Any, expected: dt.datetime) -> None:
    model = Article.model_validate({**MINIMAL, "publishedDateTime": value})
    assert model.published_at == expected
    assert model.published_at is not None
    assert model.published_at.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("2021-02-18 21:45:00", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),  # naive
        ("2021-02-18T23:45:00+02:00", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),
        ("2021-02-18", dt.datetime(2021, 2, 18, tzinfo=UTC)),  # YAML date
        ("'2021-02-18T21:45:00Z'", dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)),  # string
    ],
)
def test_published_date_time_as_yaml_scalars(scalar: str, expected: dt.datetime) -> None:
    text = (
        f"---\ntitle: T\noriginalUrl: https://e.com/a\npublishedDateTime: {scalar}\n---\n"
    ).encode()
    document = parse_document("doc", text, max_bytes=10_000)
    assert isinstance(document, Document)
    model = Article.model_validate(document.fields)
    assert model.published_at == expected
    assert model.published_at is not None
    assert model.published_at.tzinfo is not None


def test_published_date_time_may_be_absent() -> None:
    assert Article.model_validate(MINIMAL).published_at is None


@pytest.mark.parametrize("value", ["yesterday", "2021-13-45", "18/02/2021", "Z", True])
def test_an_invalid_date_is_a_validation_error_naming_the_field(value: Any) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Article.model_validate({**MINIMAL, "publishedDateTime": value})
    assert error_locs(caught.value) == ["publishedDateTime"]


def test_to_utc_rejects_unknown_types() -> None:
    with pytest.raises(ValueError, match="not a date-time"):
        to_utc(["2021"])
    assert to_utc(None) is None
    assert to_utc("") is None


@pytest.mark.parametrize("title", ["", "   ", "\n\t"])
def test_an_empty_or_blank_title_is_rejected(title: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Article.model_validate({**MINIMAL, "title": title})
    assert error_locs(caught.value) == ["title"]


def test_a_missing_title_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Article.model_validate({"originalUrl": MINIMAL["originalUrl"]})
    assert error_locs(caught.value) == ["title"]


def test_title_whitespace_is_stripped() -> None:
    assert Article.model_validate({**MINIMAL, "title": "  Spaced  "}).title == "Spaced"


@pytest.mark.parametrize(("value", "text"), [(2024, "2024"), (3.5, "3.5")])
def test_a_numeric_title_is_accepted_as_text(value: Any, text: str) -> None:
    model = Article.model_validate({**MINIMAL, "title": value})
    assert model.title == text
    assert isinstance(model.title, str)


def test_a_numeric_yaml_title_is_accepted_as_text() -> None:
    text = b"---\ntitle: 1984\noriginalUrl: https://e.com/a\n---\n"
    document = parse_document("doc", text, max_bytes=10_000)
    assert isinstance(document, Document)
    assert Article.model_validate(document.fields).title == "1984"


@pytest.mark.parametrize(
    "url", ["/news/story.html", "news/story.html", "ftp://e.com/x", "javascript:void(0)", ""]
)
def test_a_non_absolute_original_url_is_rejected(url: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Article.model_validate({**MINIMAL, "originalUrl": url})
    assert error_locs(caught.value) == ["originalUrl"]


def test_a_relative_web_url_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Article.model_validate({**MINIMAL, "webUrl": "/relative"})
    assert error_locs(caught.value) == ["webUrl"]


def test_web_url_defaults_to_original_url() -> None:
    model = Article.model_validate(MINIMAL)
    assert model.web_url == MINIMAL["originalUrl"]
    other = Article.model_validate({**MINIMAL, "webUrl": "https://aggregator.example/a"})
    assert other.web_url == "https://aggregator.example/a"
    assert other.original_url == MINIMAL["originalUrl"]


def test_snake_case_names_are_accepted_too() -> None:
    model = Article.model_validate(
        {"title": "T", "original_url": "https://e.com/a", "published_at": "2021-02-18"}
    )
    assert model.original_url == "https://e.com/a"
    assert model.published_at == dt.datetime(2021, 2, 18, tzinfo=UTC)
    assert model.extras == {}


def test_unknown_extra_fields_are_kept_json_encoded() -> None:
    nested = {"a": [1, 2], "b": None}
    when = dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)
    model = Article.model_validate(
        {**MINIMAL, "author": "Jane Doe", "wordCountHint": 42, "meta": nested, "seenAt": when}
    )
    assert set(model.extras) == {"author", "wordCountHint", "meta", "seenAt"}
    assert json.loads(model.extras["author"]) == "Jane Doe"
    assert json.loads(model.extras["wordCountHint"]) == 42
    assert json.loads(model.extras["meta"]) == nested
    assert "2021-02-18" in json.loads(model.extras["seenAt"])
    assert all(isinstance(v, str) for v in model.extras.values())


def test_extras_survive_a_dump_and_revalidation() -> None:
    model = Article.model_validate({**MINIMAL, "author": "Jane"})
    again = Article.model_validate(model.model_dump())
    assert again.extras == model.extras
    assert again == model


def test_secured_never_appears_in_repr_or_str() -> None:
    secret = seed_secret()
    model = article()
    assert secret not in repr(model)
    assert secret not in str(model)
    assert secret[:16] not in repr(model)
    assert secret not in f"{model!r} {model}"
    assert secret not in repr(model.secured)


def test_secured_is_carried_untouched_by_model_dump() -> None:
    secret = seed_secret()
    model = article()
    assert model.model_dump()["secured"] == secret
    assert json.loads(model.model_dump_json())["secured"] == secret
    assert Article.model_validate(model.model_dump()).model_dump()["secured"] == secret


def test_secured_may_be_absent() -> None:
    assert Article.model_validate(MINIMAL).model_dump()["secured"] is None


def test_topics_accept_a_single_string_and_null() -> None:
    assert Article.model_validate({**MINIMAL, "topics": "World"}).topics == ["World"]
    assert Article.model_validate({**MINIMAL, "topics": None}).topics == []


def test_null_body_and_excerpt_become_empty() -> None:
    model = Article.model_validate({**MINIMAL, "body": None, "excerpt": None})
    assert (model.body, model.excerpt) == ("", "")


def test_corpus_bodies_are_kept() -> None:
    path = next(SEED.parent.glob("006_us-secret-service-laptop-stolen.txt"))
    model = article(path)
    assert model.body.startswith("A US Secret Service laptop")
    assert model.body == fields(path)["body"]


def test_enriched_article_keeps_the_article_fields() -> None:
    record = {**article().model_dump(), "word_count": 12, "language": "en"}
    enriched = EnrichedArticle.model_validate(record)
    assert enriched.id == article().id
    assert (enriched.word_count, enriched.language) == (12, "en")
    assert enriched.extras == {}


def test_sighting_times_are_utc() -> None:
    sighting = Sighting(
        id="a",
        url="https://e.com/a",
        canonical_url="https://e.com/a",
        duplicate_of="b",
        reason="url",
        seen_at="2021-02-18T23:45:00+02:00",
    )
    assert sighting.seen_at == dt.datetime(2021, 2, 18, 21, 45, tzinfo=UTC)


def test_an_input_field_named_like_an_enriched_field_is_kept_in_extras() -> None:
    # `language` is an EnrichedArticle field, not an Article one: it must not vanish.
    article = Article.model_validate(
        {
            "title": "t",
            "originalUrl": "https://example.com/a",
            "language": "de",
            "word_count": 12,
        }
    )
    assert article.extras == {"language": '"de"', "word_count": "12"}
    enriched = EnrichedArticle.model_validate(
        {"title": "t", "originalUrl": "https://example.com/a", "language": "de"}
    )
    assert enriched.language == "de"
    assert "language" not in enriched.extras


def test_one_map_names_the_schema_of_each_model() -> None:
    from newswire import serde
    from newswire.model import model_for, schema_of

    for model, name in (
        (Article, serde.ARTICLE),
        (EnrichedArticle, serde.ENRICHED_ARTICLE),
        (Sighting, serde.SIGHTING),
    ):
        assert schema_of(model) == name
        assert model_for(name) is model
