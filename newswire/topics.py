"""Topic names (DESIGN §2) and their creation."""

from __future__ import annotations

import logging

from newswire.kafka import open_clients
from newswire.settings import KafkaSettings

__all__ = [
    "ALL_TOPICS",
    "DLQ",
    "DLQ_REPLAYED",
    "DUPLICATES",
    "ENRICHED",
    "RAW",
    "UNIQUE",
    "ensure_topics",
]

RAW = "articles.raw"
UNIQUE = "articles.unique"
DUPLICATES = "articles.duplicates"
ENRICHED = "articles.enriched"
DLQ = "articles.dlq"
#: One record per replayed dead letter (its DLQ partition and offset): replays are once-only.
DLQ_REPLAYED = "articles.dlq.replayed"
ALL_TOPICS = (RAW, UNIQUE, DUPLICATES, ENRICHED, DLQ)

log = logging.getLogger(__name__)


def ensure_topics(settings: KafkaSettings, topics: tuple[str, ...] = ALL_TOPICS) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Every topic gets the same partition count, so that a stage can forward a
    record to the partition it came from and keep the key → partition mapping.
    Raises :class:`~newswire.errors.BrokerError` (naming the address) when the
    broker cannot be reached or refuses.
    """
    admin = open_clients(settings).admin()
    try:
        created = admin.create_topics(topics, settings.partitions, settings.replication_factor)
    finally:
        admin.close()
    if created:
        log.info("created topics %s with %d partitions", created, settings.partitions)
    return created
