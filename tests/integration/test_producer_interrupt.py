"""An interrupt (SIGTERM/Ctrl-C raising KeyboardInterrupt) while librdkafka serves delivery
reports must not turn a written record into a misreported failure."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from types import FrameType

import pytest

from newswire.broker import EmbeddedBroker
from newswire.kafka.confluent import _Delivery
from newswire.settings import Settings
from newswire.topics import RAW
from tests.helpers import producer_for, read_topic

pytestmark = pytest.mark.integration


def _interrupt_in_a_delivery_report(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C, but only when it lands while a delivery report is served (as when the test
    reads a record and signals the producer just as the broker acknowledges it)."""
    if frame is not None and frame.f_code is _Delivery.__call__.__code__:
        raise KeyboardInterrupt


@pytest.mark.parametrize("kafka_client", ["confluent"], indirect=True)
def test_a_delivery_report_lost_to_an_interrupt_is_unconfirmed_not_timed_out(
    settings: Settings, broker: EmbeddedBroker
) -> None:
    # librdkafka calls each record's delivery report from flush(), in this thread. A
    # signal whose Python handler raises, arriving as a report is served, raises inside the
    # report callback, before its first line: the report is consumed but never recorded.
    # The broker is paused so that the signal surely comes before the acknowledgement.
    producer = producer_for(settings)
    assert not producer.flush()  # connected, metadata known
    assert broker.process is not None
    broker.process.send_signal(signal.SIGSTOP)
    delivery = producer.produce(RAW, b"written", context="entry 16")

    flushed = threading.Event()

    def interrupt_until_flushed() -> None:
        resume_at = time.monotonic() + 0.5
        while not flushed.wait(0.001):
            _thread.interrupt_main(signal.SIGINT)
            if time.monotonic() > resume_at:
                broker.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]

    thread = threading.Thread(target=interrupt_until_flushed)
    previous = signal.signal(signal.SIGINT, _interrupt_in_a_delivery_report)
    thread.start()
    try:
        # confluent-kafka 2.16 raises the interrupt, or SystemError (NULL, no exception).
        with pytest.raises((KeyboardInterrupt, SystemError)):
            producer.flush(timeout_s=30)
    finally:
        flushed.set()
        thread.join()
        signal.signal(signal.SIGINT, previous)
        broker.process.send_signal(signal.SIGCONT)
    assert [r.value for r in read_topic(settings, RAW, expect=1)] == [b"written"]
    failed = producer.close(timeout_s=5)
    assert [d.context for d in failed] == ["entry 16"]
    assert delivery is failed[0] and not delivery.acknowledged()
    message = str(delivery.error)
    # Not "not acknowledged within the flush timeout (30s)": no timeout passed, and the
    # record may well have been written (here it was).
    assert "timeout" not in message, message
    assert "unconfirmed" in message, message
