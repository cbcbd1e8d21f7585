"""The ``dedup`` consumer: keeps the first copy of each article, reports the others."""

from consumers.dedup.consumer import DedupConsumer

__all__ = ["DedupConsumer"]
