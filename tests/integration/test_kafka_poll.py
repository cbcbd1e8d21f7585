"""A consumer's poll hands out what has arrived; it does not wait for a full batch."""

from __future__ import annotations

import time

import pytest

from newswire.kafka import open_clients
from newswire.settings import Settings
from newswire.topics import RAW
from tests.helpers import producer_for

pytestmark = pytest.mark.integration


def test_poll_returns_the_records_there_are_before_its_timeout(settings: Settings) -> None:
    # A stage polls for up to max_poll_records (1000) with a timeout: with fewer records
    # waiting, the poll must hand them out at once, not wait out the timeout for more
    # (librdkafka's consume(n, timeout) does: a latency of the timeout per stage).
    producer = producer_for(settings)
    for i in range(3):
        producer.produce(RAW, b"value-%d" % i, key=b"key-%d" % i)
    assert not producer.flush()
    producer.close()
    consumer = open_clients(settings.kafka).consumer("test.poll", "test")
    consumer.subscribe([RAW], on_assign=lambda _: None, on_revoke=lambda _: None)
    timeout_s = 60.0
    values: list[bytes] = []
    started = time.monotonic()
    try:
        while len(values) < 3 and time.monotonic() - started < 2 * timeout_s:
            polled = consumer.poll(timeout_s, 1000)
            values += [r.value for records in polled.values() for r in records]
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
    assert sorted(values) == [b"value-0", b"value-1", b"value-2"]
    # The group join and the fetches take a few seconds on Tansu; one poll waiting for a
    # full batch would take the whole timeout.
    assert elapsed < timeout_s / 2, f"3 records took {elapsed:.1f}s with a {timeout_s}s poll"
