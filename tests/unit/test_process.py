"""GC tuning of a stage process: frozen after setup, generation 0 collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from newswire import Consumer, Event
from newswire.process import GEN0_THRESHOLD, tune_gc
from newswire.runner import Runner
from newswire.serde import ARTICLE, SingleObjectSerde
from newswire.settings import Settings
from newswire.testing import MemoryBroker
from tests.unit.support import record


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def tracked(obj: Any) -> bool:
    """Whether *obj* is in a collected generation (frozen objects are not)."""
    return any(o is obj for o in gc.get_objects())


def test_tune_gc_freezes_what_exists_and_raises_the_gen0_threshold(restored_gc: None) -> None:
    kept = [object()]
    assert tracked(kept)
    tune_gc()
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    assert gc.get_freeze_count() > 0
    assert not tracked(kept)
    assert tracked(later := [object()]) and later


class Remembers(Consumer):
    name = "remembers"
    topics = ("in",)

    def setup(self) -> None:
        self.model = [object()]  # stands for what a stage loads in setup

    def handle_event(self, event: Event) -> None:
        return None


def run(tune: bool) -> Remembers:
    broker = MemoryBroker()
    broker.append("in", SingleObjectSerde().encode(ARTICLE, record()))
    consumer = Remembers()
    Runner(consumer, Settings(), clients=broker, tune_gc=tune).run(until_idle=True)
    return consumer


def test_a_runner_asked_to_tune_the_gc_does_it_after_setup(restored_gc: None) -> None:
    consumer = run(tune=True)
    assert not tracked(consumer.model)  # frozen: setup had run
    assert gc.get_threshold()[0] == GEN0_THRESHOLD


def test_a_runner_leaves_the_gc_alone_by_default(restored_gc: None) -> None:
    before = gc.get_threshold()
    consumer = run(tune=False)
    assert tracked(consumer.model)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
