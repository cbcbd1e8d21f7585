"""SIGKILL and committed offsets on the real broker (Tansu), each member its own process.

A member killed with SIGKILL commits nothing more: its successor must start every
partition exactly at the committed offset — not at the dead member's fetch
position, not past it (the claim under test: a restarted librdkafka member on Tansu
skipped records past the committed offset).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from newswire.kafka import open_clients
from newswire.settings import Settings
from newswire.topics import ensure_topics
from tests.helpers import producer_for, wait_for

pytestmark = pytest.mark.integration

TOPIC = "kill.offsets"
GROUP = "kill-offsets"
PER_PARTITION = 200

#: A group member. ``commit N``: read past offset N on every partition, commit N on each,
#: say so, and read on without committing (until killed). ``first``: print the first offset
#: given on each partition, and leave.
MEMBER = """
import json, sys
from newswire.kafka import TopicPartition, open_clients
from newswire.settings import Settings

mode, at, partitions, group, topic = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
consumer = open_clients(Settings().kafka).consumer(group, "member")
consumer.subscribe([topic], on_assign=lambda _: None, on_revoke=lambda _: None)
first, last = {}, {}
while True:
    for tp, records in consumer.poll(0.2, 50).items():
        first.setdefault(tp.partition, records[0].offset)
        last[tp.partition] = records[-1].offset
    if len(first) < partitions:
        continue
    if mode == "first":
        print(json.dumps(first), flush=True)
        consumer.close()
        break
    if mode == "commit" and all(o > at for o in last.values()):
        consumer.commit({TopicPartition(topic, p): at for p in first})
        print("committed", json.dumps(last), flush=True)
        mode = "read on"
"""


def _member(settings: Settings, mode: str, at: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.environment()}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                MEMBER,
                mode,
                str(at),
                str(settings.kafka.partitions),
                GROUP,
                TOPIC,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("at", [37, 150])
def test_after_a_sigkill_the_next_member_starts_at_the_committed_offset(
    settings: Settings, tmp_path: Path, at: int
) -> None:
    partitions = settings.kafka.partitions
    ensure_topics(settings.kafka, (TOPIC,))
    producer = producer_for(settings)
    for p in range(partitions):
        for n in range(PER_PARTITION):
            producer.produce(TOPIC, f"{p}-{n}".encode(), key=None, partition=p)
    assert producer.close() == []

    killed_log = tmp_path / "killed.log"
    killed = _member(settings, "commit", at, killed_log)
    try:
        line = wait_for(
            lambda: next((ln for ln in _lines(killed_log) if ln.startswith("committed")), ""),
            timeout=60,
            what="the first member's commit",
        )
        fetched = {int(p): o for p, o in json.loads(line.split(" ", 1)[1]).items()}
        # It had read past the committed offset everywhere: its position is not what counts.
        assert all(o > at for o in fetched.values())
        admin = open_clients(settings.kafka).admin()
        try:
            committed = {tp.partition: o for tp, o in admin.committed(GROUP, [TOPIC]).items()}
        finally:
            admin.close()
        assert committed == dict.fromkeys(range(partitions), at)
    finally:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)

    next_log = tmp_path / "next.log"
    successor = _member(settings, "first", 0, next_log)
    try:
        assert successor.wait(60) == 0, next_log.read_text()
    finally:
        if successor.poll() is None:
            successor.kill()
            successor.wait(10)
    first = {int(p): o for p, o in json.loads(_lines(next_log)[-1]).items()}
    assert first == dict.fromkeys(range(partitions), at)
