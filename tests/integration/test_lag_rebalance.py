"""Lag after a rebalance (issue 12 item 6): a member exports ``newswire_consumer_lag`` only
for the partitions it owns now, on both Kafka clients; ``status`` sums the owners' lag."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from newswire import Article, Consumer
from newswire.runner import Runner
from newswire.settings import Settings
from newswire.topics import UNIQUE
from tests.helpers import wait_for
from tests.integration.test_runtime import article, send

pytestmark = pytest.mark.integration


class Slow(Consumer):
    """Handles slowly, so a backlog (and lag) stays while the group rebalances."""

    name = "slowlag"
    topics = (UNIQUE,)

    def handle_batch(self, articles: list[Article]) -> None:
        time.sleep(0.05)


def lagged(registry: CollectorRegistry, partitions: int) -> dict[int, float]:
    """The partitions *registry* has a lag series for, with their values."""
    found = {}
    for p in range(partitions):
        value = registry.get_sample_value(
            "newswire_consumer_lag", {"consumer": Slow.name, "topic": UNIQUE, "partition": str(p)}
        )
        if value is not None:
            found[p] = value
    return found


def test_a_member_drops_the_lag_series_of_partitions_it_lost(settings: Settings) -> None:
    settings.kafka.max_poll_records = 5
    n = settings.kafka.partitions
    send(settings, UNIQUE, [article(i) for i in range(600)])
    a_registry, b_registry = CollectorRegistry(), CollectorRegistry()
    a = Runner(Slow(), settings, registry=a_registry)
    b = Runner(Slow(), settings, registry=b_registry)
    a_thread = threading.Thread(target=a.run, daemon=True)
    b_thread = threading.Thread(target=b.run, daemon=True)
    a_thread.start()
    try:
        wait_for(lambda: set(lagged(a_registry, n)) == set(range(n)), timeout=60, what="A's lag")
        assert sum(lagged(a_registry, n).values()) > 0  # a backlog, not just zeros
        b_thread.start()

        def split() -> bool:
            mine, theirs = set(lagged(a_registry, n)), set(lagged(b_registry, n))
            return bool(mine) and bool(theirs) and not mine & theirs

        wait_for(split, timeout=60, what="A and B sharing the partitions' lag series")
        # Stable: A's later lag updates do not bring back a series for B's partitions.
        time.sleep(1.5)
        mine, theirs = set(lagged(a_registry, n)), set(lagged(b_registry, n))
        assert mine and theirs and not mine & theirs, (mine, theirs)
        assert mine | theirs == set(range(n))
        a.stop()
        a_thread.join(30)
        assert not a_thread.is_alive()
        # Closed, A exports no lag at all; B takes A's partitions over.
        assert lagged(a_registry, n) == {}
        wait_for(
            lambda: set(lagged(b_registry, n)) == set(range(n)), timeout=60, what="B owning all"
        )
    finally:
        a.stop()
        b.stop()
        a_thread.join(30)
        b_thread.join(30)
    assert not b_thread.is_alive()
