"""newswire: a streaming ingestion pipeline for news articles on Kafka.

Plug-in authors import from here only::

    from newswire import Article, Consumer

    class Sentiment(Consumer):
        name = "sentiment"
        topics = ("articles.enriched",)

        def handle(self, article: Article) -> None:
            ...
"""

from newswire.consumer import Consumer, Context, Event, Outcome, Skip
from newswire.errors import (
    ConfigError,
    HandlerError,
    NewswireError,
    RetriableError,
    SerdeError,
    StoreError,
    ValidationError,
)
from newswire.model import Article, EnrichedArticle, Image, Provider, Related, Sighting
from newswire.settings import Settings
from newswire.source import Document, Reject, Source

__version__ = "0.1.0"

__all__ = [
    "Article",
    "ConfigError",
    "Consumer",
    "Context",
    "Document",
    "EnrichedArticle",
    "Event",
    "HandlerError",
    "Image",
    "NewswireError",
    "Outcome",
    "Provider",
    "Reject",
    "Related",
    "RetriableError",
    "SerdeError",
    "Settings",
    "Sighting",
    "Skip",
    "Source",
    "StoreError",
    "ValidationError",
    "__version__",
]
