"""``newswire dlq replay`` against the real broker: once only, acknowledged counts, broker
errors noticed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from newswire import Article
from newswire.broker import EmbeddedBroker
from newswire.dlq import dlq_headers, read_dead_letters, replay
from newswire.kafka import Clients, ProducerClient, open_clients
from newswire.serde import ARTICLE, SingleObjectSerde
from newswire.settings import Settings
from newswire.topics import DLQ, UNIQUE
from tests.conftest import SEED
from tests.helpers import producer_for, read_topic, seed_fields

pytestmark = pytest.mark.integration


def dead_letter(settings: Settings, numbers: range) -> None:
    """Put letters on the DLQ as the enrich stage would: article bytes + error headers."""
    serde = SingleObjectSerde()
    producer = producer_for(settings)
    for n in numbers:
        article = Article.model_validate(
            {**seed_fields(SEED), "title": f"Letter {n}", "originalUrl": f"https://dlq.test/{n}"}
        )
        headers = dlq_headers(
            stage="enrich",
            error=ValueError(f"cannot enrich {n}"),
            topic=UNIQUE,
            partition=0,
            offset=n,
            attempts=1,
            first_failure=time.time(),
        )
        producer.produce(
            DLQ,
            serde.encode(ARTICLE, article.model_dump()),
            key=article.id.encode(),
            headers=headers,
        )
    assert producer.close() == []


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newswire", "dlq", *args, "--bootstrap", settings.kafka.bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_replay_sends_each_letter_once_and_says_how_many_were_acknowledged(
    settings: Settings,
) -> None:
    dead_letter(settings, range(5))
    first = cli(settings, "replay")
    assert first.returncode == 0, first.stderr
    assert "replayed 5 record(s) to their source topics (acknowledged)" in first.stdout

    again = cli(settings, "replay")
    assert again.returncode == 0, again.stderr
    assert "replayed 0 record(s)" in again.stdout
    assert "5 record(s) already replayed before" in again.stdout
    assert (
        "would replay 0 record(s); 5 already replayed"
        in cli(settings, "replay", "--dry-run").stdout
    )

    dead_letter(settings, range(5, 7))  # two new letters: only they go
    third = cli(settings, "replay")
    assert "replayed 2 record(s)" in third.stdout, third.stdout
    replayed = read_topic(settings, UNIQUE, expect=8, timeout=5)
    assert len(replayed) == 7  # 5 + 2, none twice
    assert all(dict(r.headers)["newswire.replayed"] == b"enrich:ValueError:1" for r in replayed)

    forced = cli(settings, "replay", "--again")
    assert "replayed 7 record(s)" in forced.stdout


class _FreezingClients:
    """Real clients; the replay producer's broker is frozen (SIGSTOP) once it has
    metadata, so the records it sends are never acknowledged."""

    def __init__(self, settings: Settings, broker: EmbeddedBroker) -> None:
        self.real = open_clients(settings.kafka, settings.producer)
        self.broker = broker

    def consumer(self, group: str | None, role: str) -> object:
        return self.real.consumer(group, role)

    def admin(self) -> object:
        return self.real.admin()

    def producer(self, role: str, *, output: bool = False) -> ProducerClient:
        producer = self.real.producer(role, output=output)
        producer.produce(UNIQUE, b"warm-up", key=b"warm-up")  # metadata of the source topic
        assert producer.flush() == []
        assert self.broker.process is not None
        os.kill(self.broker.process.pid, signal.SIGSTOP)
        return producer


@pytest.fixture
def thawed(broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    yield broker
    if broker.process is not None:
        os.kill(broker.process.pid, signal.SIGCONT)


def test_a_replay_the_broker_does_not_acknowledge_is_reported_and_not_marked(
    settings: Settings, thawed: EmbeddedBroker
) -> None:
    dead_letter(settings, range(3))
    letters = read_dead_letters(settings.kafka)
    settings.kafka.flush_timeout_s = 2.0
    settings.kafka.timeout_s = 2.0
    clients: Clients = _FreezingClients(settings, thawed)  # type: ignore[assignment]

    frozen = replay(settings.kafka, settings.producer, letters, clients=clients)
    assert thawed.process is not None
    os.kill(thawed.process.pid, signal.SIGCONT)
    assert frozen.acknowledged == []
    assert sorted(letter.source_offset for (_, _, letter), _ in frozen.failed) == [0, 1, 2]
    assert all(str(why) for _, why in frozen.failed)  # each with the client's reason

    # Nothing was marked: the next replay sends all three, and the one after none.
    settings.kafka.flush_timeout_s = 30.0
    settings.kafka.timeout_s = 10.0
    retried = replay(settings.kafka, settings.producer, letters)
    assert sorted(letter.source_offset for _, _, letter in retried.acknowledged) == [0, 1, 2]
    assert retried.failed == []
    done = replay(settings.kafka, settings.producer, letters)
    assert done.acknowledged == [] and len(done.already) == 3
