"""Topic names (DESIGN §2) and their creation."""

from __future__ import annotations

import contextlib
import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from newswire.errors import BrokerError
from newswire.settings import KafkaSettings

__all__ = ["ALL_TOPICS", "DLQ", "DUPLICATES", "ENRICHED", "RAW", "UNIQUE", "ensure_topics"]

RAW = "articles.raw"
UNIQUE = "articles.unique"
DUPLICATES = "articles.duplicates"
ENRICHED = "articles.enriched"
DLQ = "articles.dlq"
ALL_TOPICS = (RAW, UNIQUE, DUPLICATES, ENRICHED, DLQ)

log = logging.getLogger(__name__)


def ensure_topics(settings: KafkaSettings, topics: tuple[str, ...] = ALL_TOPICS) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Every topic gets the same partition count, so that a stage can forward a
    record to the partition it came from and keep the key → partition mapping.
    """
    from newswire.kafka import client_config

    try:
        admin = KafkaAdminClient(**client_config(settings, "admin"))
    except KafkaError as exc:
        raise BrokerError(
            f"cannot reach the broker at {settings.bootstrap}: {exc}", bootstrap=settings.bootstrap
        ) from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            # A concurrent process may create them first: fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
                )
            log.info("created topics %s with %d partitions", missing, settings.partitions)
        return missing
    except KafkaError as exc:
        raise BrokerError(f"cannot create topics {topics}: {exc}", topics=topics) from exc
    finally:
        admin.close()
