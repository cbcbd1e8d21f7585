"""A newswire stage's ``Runner`` run until it has handled N records, timed, for the benchmarks."""

from __future__ import annotations

import cProfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from procstat import cpu_of
from prometheus_client import CollectorRegistry

from newswire.runner import Runner

RECORDS_IN = "newswire_consumer_records_in_total"


@dataclass(frozen=True)
class Window:
    """What one timed run measured, from the first record to the batch that brought in the N-th."""

    records: int
    seconds: float
    cpu_s: float
    broker_cpu_s: float
    main_cpu_s: float
    complete: bool


def _mark(marks: dict[str, float], end: str, broker_pid: int | None, *, keep: bool) -> None:
    """Wall, process CPU, broker CPU and this thread's CPU, as ``t<end>``, ``cpu<end>``...
    (with *keep*, a mark already there stays: a caller may start the CPU window earlier)."""
    now = {
        f"t{end}": time.perf_counter(),
        f"cpu{end}": time.process_time(),
        f"bcpu{end}": cpu_of(broker_pid),
        f"main{end}": time.thread_time(),
    }
    for key, value in now.items():
        if keep:
            marks.setdefault(key, value)
        else:
            marks[key] = value


def run_until(
    runner: Runner,
    registry: CollectorRegistry,
    labels: dict[str, str],
    n: int,
    timeout_s: float,
    *,
    broker_pid: int | None = None,
    profile: cProfile.Profile | None = None,
    marks: dict[str, float] | None = None,
) -> Window:
    """Run *runner* in this thread until its records-in counter (*labels*, in *registry*)
    reaches *n*, or *timeout_s* passes; time it from the first polled batch it is handed to
    the end of the batch that reached *n* (its commit included), under *profile* if given.

    The runner's ``_process`` is wrapped to see those two moments: the group join and the
    first fetch stay out of the window. A start mark already in *marks* (``cpu0``, say, noted
    at ``subscribe``) is kept, so a caller can open the CPU window earlier than the wall one.
    """
    marks = {} if marks is None else marks
    process = runner._process

    def timed_process(polled: Any) -> None:
        if "t0" not in marks:
            _mark(marks, "0", broker_pid, keep=True)
            if profile is not None:
                profile.enable()
        process(polled)
        done = registry.get_sample_value(RECORDS_IN, labels) or 0
        if done >= n and "t1" not in marks:
            if profile is not None:
                profile.disable()
            _mark(marks, "1", broker_pid, keep=False)
            runner.stop()

    runner._process = timed_process  # type: ignore[method-assign]
    watchdog = threading.Timer(timeout_s, runner.stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        runner.run()
    finally:
        watchdog.cancel()
        if profile is not None:
            profile.disable()
    if "t1" not in marks:
        _mark(marks, "1", broker_pid, keep=False)
    done = int(registry.get_sample_value(RECORDS_IN, labels) or 0)

    def span(key: str) -> float:  # 0 when no record came (no start mark)
        return marks[f"{key}1"] - marks.get(f"{key}0", marks[f"{key}1"])

    return Window(done, span("t"), span("cpu"), span("bcpu"), span("main"), done >= n)


def counter_sums(registry: CollectorRegistry, names: Iterable[str]) -> dict[str, float]:
    """The samples of the counters *names* in *registry*, summed per topic, keyed
    ``name[topic]`` without the ``newswire_`` prefix (``consumer_dlq_total[articles.dlq]``)."""
    wanted = set(names)
    out: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name in wanted:
                key = f"{sample.name.removeprefix('newswire_')}[{sample.labels.get('topic')}]"
                out[key] = out.get(key, 0) + sample.value
    return out
