"""Rolling restarts: members added and removed (SIGTERM and SIGKILL) while a run goes on.

On Tansu 0.6 a group wedges when its leader sends LeaveGroup while another
member's JoinGroup is pending: the broker keeps the departed member as the leader
of that join, so every follower's SyncGroup fails at the same generation, for
good (DESIGN §6; ../shared/repro/tansu_leave_during_join.py). The runner never
leaves mid-join (it finishes the join, commits, then leaves) and closes without
LeaveGroup when a join outlasts its stop budget; a leader that leaves just as a
join starts cannot know, so members also detect the wedge and complete the join
(newswire_consumer_group_rejoins_total). Apache Kafka does not wedge.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from newswire import Article, Consumer
from newswire.kafka import open_clients
from newswire.pipeline import Pipeline, StageProcess
from newswire.runner import Runner
from newswire.serde import ARTICLE, SingleObjectSerde
from newswire.settings import Settings
from newswire.topics import UNIQUE
from tests.conftest import SEED
from tests.helpers import producer_for, seed_fields, wait_for

pytestmark = pytest.mark.integration

ARTICLES = 3000
CHANGES = 20


def stored_ids(settings: Settings) -> list[str]:
    db = sqlite3.connect(settings.store.url.removeprefix("sqlite:///"), timeout=30)
    try:
        return [row[0] for row in db.execute("SELECT id FROM articles")]
    except sqlite3.OperationalError:  # the store has not created its tables yet
        return []
    finally:
        db.close()


def running(stage: StageProcess) -> bool:
    """The stage's runner has started (it logs its group before the first poll)."""
    return stage.log_path.exists() and "as group newswire." in stage.log_path.read_text()


def produce_slowly(settings: Settings, items: list[Article], over_s: float) -> None:
    """Send *items* to articles.unique in slices spread over *over_s* seconds."""
    serde = SingleObjectSerde()
    producer = producer_for(settings)
    slices = 30
    step = len(items) // slices + 1
    for start in range(0, len(items), step):
        for item in items[start : start + step]:
            producer.produce(UNIQUE, serde.encode(ARTICLE, item.model_dump()), key=item.id.encode())
        assert producer.flush() == []
        time.sleep(over_s / slices)
    producer.close()


def test_members_come_and_go_during_a_run_nothing_lost_nothing_extra_no_stall(
    settings: Settings, tmp_path: Path
) -> None:
    settings.kafka.partitions = 6
    settings.kafka.max_poll_records = 50  # many batches: every change lands mid-stream
    base = seed_fields(SEED)
    items = [
        Article.model_validate(
            {**base, "title": f"Rolling {n}", "originalUrl": f"https://rolling.example/{n}"}
        )
        for n in range(ARTICLES)
    ]
    # enrich's group changes; one store member (stable) upserts what enrich sends on, so
    # a redelivered record is not an extra row.
    pipeline = Pipeline(settings, tmp_path / "work", stages={"enrich": 2, "store": 1})
    rng = random.Random(11)
    members: dict[str, list[StageProcess]] = {"enrich": [], "store": []}
    instances = {"enrich": 2, "store": 1}
    changes: list[str] = []
    producer = threading.Thread(
        target=produce_slowly, args=(settings, items, 20.0), name="producer", daemon=True
    )
    try:
        pipeline.start()
        for stage in pipeline.processes:
            members[stage.name].append(stage)
            wait_for(lambda s=stage: running(s), timeout=30, what=f"{stage.label} running")
        producer.start()
        for n in range(CHANGES):
            stage = "enrich"
            group = members[stage]
            # A rolling restart: a new member joins, and while that join is in flight
            # an old one is stopped (SIGTERM) or killed (every third change).
            instances[stage] += 1
            group.append(pipeline.spawn(stage, instances[stage]))
            pipeline.processes.append(group[-1])
            changes.append(f"+{stage}")
            # The new member subscribes; its join is in flight for about a second (Tansu
            # holds a follower's JoinGroup): the old one goes at a random point of it.
            new = group[-1]
            wait_for(lambda m=new: running(m), timeout=30, what=f"{new.label} running")
            time.sleep(rng.uniform(0.0, 0.8))
            if len(group) > 1:
                victim = group.pop(0)
                if n % 3 == 2:
                    os.kill(victim.process.pid, signal.SIGKILL)
                    victim.process.wait(10)
                    changes.append(f"kill {victim.label}")
                else:
                    victim.process.send_signal(signal.SIGTERM)
                    assert victim.process.wait(20) == 0, f"{victim.label} did not stop cleanly"
                    changes.append(f"term {victim.label}")
                pipeline.processes.remove(victim)
            time.sleep(rng.uniform(0.1, 0.5))
        producer.join(60)
        assert not producer.is_alive()

        # No stall: the members left get every partition and drain the run.
        wait_for(
            lambda: len(set(stored_ids(settings))) >= ARTICLES,
            timeout=90,
            what=f"{ARTICLES} articles stored after {len(changes)} membership changes",
        )
        pipeline.check_alive()
    finally:
        pipeline.stop()
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == ARTICLES  # nothing lost, nothing extra
    assert set(ids) == {a.id for a in items}
    assert len(changes) >= 20


class Idle(Consumer):
    """Reads and drops: what matters here is which member owns which partition."""

    name = "wedge"
    topics = (UNIQUE,)

    def handle_batch(self, articles: list[Article]) -> None:
        pass


def owned(registry: CollectorRegistry) -> set[int]:
    """The partitions a runner owns: it exports a lag series for exactly those."""
    return {
        p
        for p in range(3)
        if registry.get_sample_value(
            "newswire_consumer_lag", {"consumer": Idle.name, "topic": UNIQUE, "partition": str(p)}
        )
        is not None
    }


def plain_member(settings: Settings, group: str, name: str) -> KafkaConsumer:
    """A kafka-python member without newswire: the one that leaves, and a bystander."""
    member = KafkaConsumer(
        bootstrap_servers=[settings.kafka.bootstrap],
        group_id=group,
        client_id=name,
        enable_auto_commit=False,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
    )
    member.subscribe([UNIQUE])
    return member


def test_a_group_wedged_by_its_leader_leaving_mid_join_recovers(settings: Settings) -> None:
    """Tansu 0.6 keeps a leader that sends LeaveGroup while another member's JoinGroup is
    pending as the leader of that join: the followers' SyncGroup fails at the same
    generation for good. newswire's member detects it and completes the join."""
    group = Idle().group
    registry = CollectorRegistry()
    runner = Runner(Idle(), settings, registry=registry)
    stop = threading.Event()
    polling: dict[str, threading.Event] = {}

    def poll(member: KafkaConsumer, name: str) -> None:
        while not stop.is_set() and not polling[name].is_set():
            member.poll(timeout_ms=50)

    def start_polling(member: KafkaConsumer, name: str) -> threading.Thread:
        polling[name] = threading.Event()
        thread = threading.Thread(target=poll, args=(member, name), name=name, daemon=True)
        thread.start()
        return thread

    # A joins first, alone: the leader of every join until it leaves.
    leader = plain_member(settings, group, "A")
    wait_for(
        lambda: bool(leader.poll(timeout_ms=100) or leader.assignment()),
        timeout=30,
        what="A joined",
    )
    leader_thread = start_polling(leader, "A")
    runner_thread = threading.Thread(target=runner.run, name="newswire", daemon=True)
    runner_thread.start()
    bystander = None
    try:
        wait_for(
            lambda: bool(owned(registry)) and bool(leader.assignment()),
            timeout=60,
            what="A and B stable",
        )
        # C starts joining: its first JoinGroup turns the group into a forming one led by A.
        bystander = plain_member(settings, group, "C")
        start_polling(bystander, "C")
        wait_for(
            lambda: bool(bystander._coordinator._generation.member_id),
            timeout=30,
            what="C's member id",
        )
        # ...and A leaves (LeaveGroup) while C's join is pending.
        polling["A"].set()
        leader_thread.join(10)
        leader.close()
        rejoins = {"consumer": Idle.name, "topic": UNIQUE}

        def recovered() -> bool:
            mine, theirs = owned(registry), {tp.partition for tp in bystander.assignment()}
            return bool(mine) and bool(theirs) and mine | theirs == {0, 1, 2}

        wait_for(recovered, timeout=90, what="B and C sharing the partitions after A left mid-join")
        assert registry.get_sample_value("newswire_consumer_group_rejoins_total", rejoins) == 1
    finally:
        stop.set()
        runner.stop()
        runner_thread.join(30)
        if bystander is not None:
            bystander.close()


def test_a_leader_closed_without_leaving_mid_join_does_not_wedge_the_group(
    settings: Settings,
) -> None:
    """The runner's way out when a join outlasts its stop budget: ``close(leave=False)``
    sends no LeaveGroup on either client, so the group drops the member after its session
    timeout instead of wedging (librdkafka's close() always leaves: the adapter drops
    the handle unclosed)."""
    group = "newswire.noleave"
    clients = open_clients(settings.kafka, settings.producer, check=False)
    leader = clients.consumer(group, "A")
    closed = False
    leader.subscribe([UNIQUE], on_assign=lambda _: None, on_revoke=lambda _: None)
    stop = threading.Event()

    def poll(member: KafkaConsumer) -> None:
        while not stop.is_set():
            member.poll(timeout_ms=50)

    def polled_leader_owns() -> bool:
        leader.poll(0.5, 10)
        return bool(leader.assignment())

    members = []
    try:
        wait_for(polled_leader_owns, timeout=30, what="A joined")
        follower = plain_member(settings, group, "B")
        members.append(follower)
        threading.Thread(target=poll, args=(follower,), daemon=True).start()
        wait_for(
            lambda: polled_leader_owns() and bool(follower.assignment()),
            timeout=60,
            what="A and B stable",
        )
        joiner = plain_member(settings, group, "C")
        members.append(joiner)
        threading.Thread(target=poll, args=(joiner,), daemon=True).start()
        wait_for(
            lambda: bool(joiner._coordinator._generation.member_id),
            timeout=30,
            what="C's member id",
        )
        leader.close(leave=False)  # while C's join is pending
        closed = True

        def shared() -> bool:
            mine, theirs = follower.assignment(), joiner.assignment()
            return (
                bool(mine)
                and bool(theirs)
                and {tp.partition for tp in mine | theirs}
                == {
                    0,
                    1,
                    2,
                }
            )

        wait_for(shared, timeout=60, what="B and C sharing the partitions after A went")
    finally:
        stop.set()
        if not closed:
            leader.close()
        for member in members:
            member.close()
