"""The article data model (DESIGN §1) as pydantic models.

Field names are snake_case and equal to the Avro field names, so a decoded
Avro record validates straight into a model; the seed document's camelCase
names (``publishedDateTime``, ``originalUrl``…) are accepted as aliases.

Unknown extra fields in an input document are kept, JSON-encoded, in
``extras`` (and counted by the producer), so nothing the publisher sent is lost.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Annotated, Any

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from newswire.errors import ValidationError as DocumentError
from newswire.urls import article_id, canonical_url, is_absolute_http_url

__all__ = [
    "SCHEMA_NAMES",
    "Article",
    "EnrichedArticle",
    "Image",
    "Provider",
    "Related",
    "Sighting",
    "model_for",
    "schema_of",
    "to_utc",
]

_UTC = dt.UTC
#: Avro ``int`` bounds: the schema's integer fields (scores, image sizes) are 32-bit.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]


def to_utc(value: Any) -> dt.datetime | None:
    """Parse a YAML timestamp, date, ISO-8601 string or epoch into an aware UTC datetime.

    A naive datetime is taken to be UTC. Raises ``ValueError`` for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"not a date-time: {value!r}")
        try:
            return dt.datetime.fromtimestamp(value, tz=_UTC)
        except (OverflowError, OSError, ValueError):
            # Python says "timestamp out of range for platform time_t" or "year … is
            # out of range"; either way the number is no date an article can have.
            raise ValueError(f"epoch seconds {value!r} out of range (years 1-9999)") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            # fromisoformat's own words say what is wrong ("day is out of range for month").
            raise ValueError(f"not an ISO-8601 date-time: {text[:60]!r} ({exc})") from None
        return to_utc(parsed)
    raise ValueError(f"not a date-time: {type(value).__name__}")


def _extra_json(key: Any, value: Any) -> str:
    """*value* of the unknown field *key* as JSON text (dates as ISO-8601)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, RecursionError) as exc:
        # orjson refuses nesting deeper than 254 levels (and circular references).
        raise DocumentError(
            f"cannot keep this unknown field as JSON: {exc}", field=str(key), kind="nesting"
        ) from exc


class _Model(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        extra="ignore",
        str_strip_whitespace=True,
        frozen=False,
    )


def _http_url(value: str, field: str) -> str:
    if not is_absolute_http_url(value):
        raise ValueError(f"{field} must be an absolute http(s) URL, got {value[:200]!r}")
    return value.strip()


class Provider(_Model):
    """The publisher of an article."""

    name: str = ""
    domain: str = ""


class Image(_Model):
    """An image of an article."""

    url: str
    width: _Int32 | None = None
    height: _Int32 | None = None
    is_cached: bool = Field(False, validation_alias=AliasChoices("is_cached", "isCached"))


class Related(_Model):
    """A related article as listed by the aggregator."""

    title: str = ""
    excerpt: str = ""
    published_at: dt.datetime | None = Field(
        None, validation_alias=AliasChoices("published_at", "publishedDateTime")
    )
    web_url: str | None = Field(None, validation_alias=AliasChoices("web_url", "webUrl"))
    amp_web_url: str | None = Field(None, validation_alias=AliasChoices("amp_web_url", "ampWebUrl"))
    cdn_amp_web_url: str | None = Field(
        None, validation_alias=AliasChoices("cdn_amp_web_url", "cdnAmpWebUrl")
    )
    type: str = "article"
    provider: Provider | None = None
    quality: _Int32 = -1
    images: list[Image] = Field(default_factory=list)

    @field_validator("published_at", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> dt.datetime | None:
        return to_utc(value)


class Article(_Model):
    """A news article: the seed document's fields plus its identity.

    ``id`` and ``canonical_url`` are derived from ``original_url`` when absent.
    """

    id: str = ""
    canonical_url: str = ""
    category: str = "news"
    type: str = "article"
    title: str = Field(min_length=1)
    excerpt: str = ""
    published_at: dt.datetime | None = Field(
        None, validation_alias=AliasChoices("published_at", "publishedDateTime")
    )
    original_url: str = Field(validation_alias=AliasChoices("original_url", "originalUrl"))
    web_url: str = Field("", validation_alias=AliasChoices("web_url", "webUrl"))
    quality: _Int32 = -1
    heat: _Int32 = -1
    published: bool = True
    provider: Provider = Field(default_factory=Provider)
    topics: list[str] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    related: list[Related] = Field(default_factory=list)
    # Opaque: carried through untouched, never shown in repr or logs.
    secured: SecretStr | None = None
    body: str = ""
    extras: dict[str, str] = Field(default_factory=dict)
    ingested_at: dt.datetime | None = None
    source: str = ""

    @model_validator(mode="before")
    @classmethod
    def _collect_extras(cls, data: Any) -> Any:
        """Keep fields the model does not know, JSON-encoded, in ``extras``."""
        if not isinstance(data, dict):
            return data
        known = _input_names(cls)
        unknown = [k for k in data if k not in known]
        if not unknown:
            return data
        given = data.get("extras")
        if given is not None and not isinstance(given, dict):
            return data  # not a mapping: validation says so, naming "extras"
        data = dict(data)
        extras = dict(given or {})
        for key in unknown:
            extras[str(key)] = _extra_json(key, data.pop(key))
        data["extras"] = extras
        return data

    @field_validator("published_at", "ingested_at", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> dt.datetime | None:
        return to_utc(value)

    @field_validator("title", mode="before")
    @classmethod
    def _title_text(cls, value: Any) -> Any:
        # YAML turns a title like `2024` or `yes` into a number or a bool.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("original_url")
    @classmethod
    def _original_url(cls, value: str) -> str:
        return _http_url(value, "originalUrl")

    @field_validator("web_url")
    @classmethod
    def _web_url(cls, value: str, info: ValidationInfo) -> str:
        if not value or value == info.data.get("original_url"):
            return value  # empty (defaults to originalUrl) or originalUrl, checked already
        return _http_url(value, "webUrl")

    @field_validator("topics", mode="before")
    @classmethod
    def _topics(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            # YAML reads `topics: [2024, news]` as a number and a string; anything
            # else that is not a string (a list, a mapping) is left to be rejected.
            return [str(t) if isinstance(t, int | float) else t for t in value]
        return value

    @field_validator("body", "excerpt", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _identity(self) -> Article:
        if not self.web_url:
            self.web_url = self.original_url
        if not self.canonical_url:
            # original_url passed its field validator: an absolute http(s) URL.
            self.canonical_url = canonical_url(self.original_url, checked=True)
        if not self.id:
            self.id = article_id(self.canonical_url)
        return self

    @field_serializer("secured", when_used="always")
    def _dump_secured(self, value: SecretStr | None) -> str | None:
        # Serialisation is how the value travels on (Avro, the store); repr hides it.
        return value.get_secret_value() if value is not None else None


class EnrichedArticle(Article):
    """An article with what the ``enrich`` stage derived from it."""

    word_count: int = 0
    reading_time_s: int = 0
    language: str = ""
    language_score: float = 0.0
    registered_domain: str = ""
    enriched_at: dt.datetime | None = None

    @field_validator("enriched_at", mode="before")
    @classmethod
    def _enriched_utc(cls, value: Any) -> dt.datetime | None:
        return to_utc(value)


class Sighting(_Model):
    """A duplicate seen by ``dedup``: which record it was and which article it repeats."""

    id: str
    url: str
    canonical_url: str
    duplicate_of: str
    reason: str
    similarity: float = 1.0
    title: str = ""
    provider_domain: str = ""
    seen_at: dt.datetime | None = None
    source_topic: str = ""
    source_partition: int = -1
    source_offset: int = -1

    @field_validator("seen_at", mode="before")
    @classmethod
    def _seen_utc(cls, value: Any) -> dt.datetime | None:
        return to_utc(value)


@functools.cache
def _input_names(model: type[BaseModel]) -> frozenset[str]:
    """The field names and aliases of *model* itself (an Article's own, not an enriched one's)."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
    return frozenset(names)


#: The Avro record name of each model (the one map; the serde resolves schemas by these names).
SCHEMA_NAMES: dict[type[BaseModel], str] = {
    Article: "newswire.Article",
    EnrichedArticle: "newswire.EnrichedArticle",
    Sighting: "newswire.Sighting",
}
_MODELS = {name: model for model, name in SCHEMA_NAMES.items()}


def model_for(schema: str) -> type[BaseModel]:
    """The pydantic model of an Avro record name."""
    try:
        return _MODELS[schema]
    except KeyError:
        raise KeyError(f"no model for schema {schema!r}") from None


def schema_of(model: type[BaseModel]) -> str | None:
    """The Avro record name of a model class (or of its nearest registered base), else None."""
    for cls in model.__mro__:
        if cls in SCHEMA_NAMES:
            return SCHEMA_NAMES[cls]
    return None
