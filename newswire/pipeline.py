"""``newswire run``: the whole pipeline on one machine.

Starts the embedded broker (unless given one), creates the topics, runs each
stage as its own process (``newswire consume NAME``), produces the documents,
and — with ``until_idle`` — waits until every stage has drained, judged from
the stages' own ``/metrics`` counters. The stages are the built-in consumers
(those registered by newswire itself) unless told otherwise; the topology —
who reads what — comes from each consumer's declared ``topics``, so the
kernel names no stage. Broker and processes are stopped on
every exit path; stage processes also die with this one (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from newswire import registry
from newswire.broker import EmbeddedBroker, die_with_parent
from newswire.consumer import Outcome
from newswire.errors import NewswireError, UnavailableError
from newswire.settings import Settings
from newswire.status import Samples, scrape, total
from newswire.topics import ALL_TOPICS, RAW, ensure_topics

__all__ = [
    "Pipeline",
    "ReportLine",
    "RunReport",
    "StageProcess",
    "default_stages",
    "parse_scale",
    "stage_topics",
]

log = logging.getLogger(__name__)

# What drained() reads of each stage's /metrics (and all it asks for).
_DRAIN_COUNTERS = ("newswire_consumer_records_in_total", "newswire_consumer_records_out_total")


def default_stages() -> dict[str, int]:
    """One instance of every built-in consumer (registered by newswire itself)."""
    return {found.name: 1 for found in registry.available(registry.CONSUMERS) if found.builtin}


def stage_topics(name: str) -> tuple[str, ...]:
    """The topics the consumer registered as *name* reads."""
    return tuple(registry.load(registry.CONSUMERS, name).topics)


@dataclass
class StageProcess:
    """One ``newswire consume NAME`` child process."""

    name: str
    instance: int
    process: subprocess.Popen[bytes]
    port_file: Path
    log_path: Path
    _port: int | None = None

    @property
    def label(self) -> str:
        """``dedup`` or ``dedup#2``."""
        return self.name if self.instance == 1 else f"{self.name}#{self.instance}"

    @property
    def port(self) -> int | None:
        """The metrics port the child bound (it writes it to ``port_file``)."""
        if self._port is None:
            with contextlib.suppress(OSError, ValueError):
                self._port = int(self.port_file.read_text().strip())
        return self._port

    def alive(self) -> bool:
        """Still running."""
        return self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (finish the batch, commit, leave), then SIGKILL if it does not exit."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s pid=%d did not stop in %.0fs; killing", self.label, self.process.pid, timeout_s
            )
            self.process.kill()
            self.process.wait(5)


@dataclass
class Pipeline:
    """The embedded pipeline: broker, topics, stage processes."""

    settings: Settings
    workdir: Path
    stages: Mapping[str, int] = field(default_factory=default_stages)
    broker: EmbeddedBroker | None = None
    processes: list[StageProcess] = field(default_factory=list)
    #: Stage name → the topics it reads (from the consumers' declarations).
    topology: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def check(self) -> None:
        """Ask every stage to check what it needs (its database…), before anything starts.

        A :class:`~newswire.errors.ConfigError` (bad URL, no such database,
        authentication failed, permission denied) propagates: nothing has started
        yet. An outage is logged; the stage waits it out once running.
        """
        for name in self.stages:
            consumer_class = registry.load(registry.CONSUMERS, name)
            try:
                consumer_class.check(self.settings)
            except UnavailableError as exc:
                log.warning("%s: %s; the stage will wait for it", name, exc)

    def start(self) -> None:
        """Check the stages, start the broker (unless given one), create topics, spawn stages."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.check()
        if self.broker is None and not self.settings.kafka.bootstrap:
            self.broker = EmbeddedBroker(log_path=self.workdir / "broker.log").start()
            self.settings.kafka.bootstrap = self.broker.bootstrap
        self.topology = {name: stage_topics(name) for name in self.stages}
        read = {t for topics in self.topology.values() for t in topics}
        ensure_topics(self.settings.kafka, (*ALL_TOPICS, *sorted(read - set(ALL_TOPICS))))
        for name, count in self.stages.items():
            for instance in range(1, count + 1):
                self.processes.append(self.spawn(name, instance))

    def spawn(self, name: str, instance: int = 1) -> StageProcess:
        """Start ``newswire consume NAME`` with this pipeline's settings in its environment."""
        tag = name if instance == 1 else f"{name}-{instance}"
        port_file = self.workdir / f"{tag}.port"
        port_file.unlink(missing_ok=True)
        log_path = self.workdir / f"{tag}.log"
        env = {
            **os.environ,
            **self.child_environment(),
            "NEWSWIRE_METRICS__PORT_FILE": str(port_file),
        }
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "newswire", "consume", name],
                env=env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        log.info("started %s pid=%d (log %s)", tag, process.pid, log_path)
        return StageProcess(name, instance, process, port_file, log_path)

    def child_environment(self) -> dict[str, str]:
        """The settings a stage process needs, as ``NEWSWIRE_*`` variables.

        Every kernel section and every plug-in section loaded (and maybe
        changed by an option) in this process; the child reads the rest of
        its environment itself.
        """
        return {
            **self.settings.environment(),
            "NEWSWIRE_METRICS__HOST": "127.0.0.1",
            "NEWSWIRE_METRICS__PORT": "0",
        }

    def check_alive(self) -> None:
        """Raise if a stage process has exited."""
        for stage in self.processes:
            if not stage.alive():
                tail = _tail(stage.log_path)
                raise NewswireError(
                    f"stage {stage.label} exited with status {stage.process.returncode}; "
                    f"last lines of {stage.log_path}:\n{tail}",
                    stage=stage.label,
                )

    def metrics(self, names: Iterable[str] = ()) -> dict[str, Samples]:
        """Every stage process's current samples, by process label; only the samples called
        *names* if given (prometheus-client's ``name[]`` filter)."""
        query = "&".join(f"name[]={name}" for name in names)
        path = f"/metrics?{query}" if query else "/metrics"
        found = {}
        for stage in self.processes:
            port = stage.port
            if port is None:
                continue
            with contextlib.suppress(OSError):
                found[stage.label] = scrape(f"http://127.0.0.1:{port}{path}")
        return found

    def drained(self, produced: int) -> bool:
        """Whether every stage has committed everything upstream has sent it."""
        # Polled while draining: only the two counters it reads. A full scrape of a stage
        # (~130 lines) costs ~1.6 ms of this process's CPU to parse, the filtered one ~0.3
        # (benchmarks/bench_e2e.py's finding, 2026-12-01).
        per_process = self.metrics(_DRAIN_COUNTERS)
        if len(per_process) < len(self.processes):
            return False
        merged: Samples = {}
        for samples in per_process.values():
            for key, value in samples.items():
                merged[key] = merged.get(key, 0.0) + value

        def consumed(stage: str, topic: str) -> float:
            return total(merged, "newswire_consumer_records_in_total", consumer=stage, topic=topic)

        def emitted_to(topic: str) -> float:
            # What every consumer sent to *topic*, plus the producer's records on RAW.
            sent = total(merged, "newswire_consumer_records_out_total", topic=topic)
            return sent + (produced if topic == RAW else 0)

        return all(
            consumed(stage, topic) >= emitted_to(topic)
            for stage, topics in self.topology.items()
            for topic in topics
        )

    def stage_samples(self) -> dict[str, Samples]:
        """Every stage's current samples, summed over its processes, by stage name."""
        merged: dict[str, Samples] = {}
        names = {p.label: p.name for p in self.processes}
        for label, samples in self.metrics().items():
            into = merged.setdefault(names[label], {})
            for key, value in samples.items():
                into[key] = into.get(key, 0.0) + value
        return merged

    def drain_progress(self) -> list[tuple[str, int, int]]:
        """``(stage, records consumed, lag)`` of every stage now, for a progress line."""
        samples = self.stage_samples()
        return [
            (
                name,
                round(total(samples.get(name, {}), "newswire_consumer_records_in_total")),
                round(total(samples.get(name, {}), "newswire_consumer_lag")),
            )
            for name in self.stages
        ]

    def report(self, *, read: int, rejected: int, failed: int, sent: int) -> RunReport:
        """What became of the documents: each stage's declared outcomes and the dead letters.

        The kernel knows no stage: each consumer says which of its counters
        count (``Consumer.outcomes``); the dead letters are the runtime's own
        ``newswire_consumer_dlq_total`` of every stage.
        """
        samples = self.stage_samples()
        lines: list[ReportLine] = []
        dead: dict[str, int] = {}
        for name in self.stages:
            consumer_class = registry.load(registry.CONSUMERS, name)
            mine = samples.get(name, {})
            where = consumer_class.where(self.settings)
            for outcome in consumer_class.outcomes:
                for title, count in _outcome_counts(outcome, mine):
                    lines.append(
                        ReportLine(name, title, count, outcome.terminal, where, outcome.title)
                    )
            dead[name] = round(total(mine, "newswire_consumer_dlq_total"))
        return RunReport(read, rejected, failed, sent, lines, dead)

    def wait_until_idle(
        self, produced: int, *, timeout_s: float = 600.0, tick: Callable[[], None] | None = None
    ) -> None:
        """Block until :meth:`drained` (raises on a dead stage or after *timeout_s*)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if self.drained(produced):
                return
            if tick is not None:
                tick()
            # Each poll scrapes every stage (~2 ms of CPU a stage, both sides): twice a
            # second keeps that near 1 % of a core; the exit comes at most 0.5 s late.
            time.sleep(0.5)
        raise NewswireError(f"the pipeline did not drain within {timeout_s:.0f}s")

    def stop(self) -> None:
        """Stop every stage (gracefully, in parallel), then the broker."""
        for stage in self.processes:
            if stage.alive():
                with contextlib.suppress(ProcessLookupError):
                    stage.process.send_signal(signal.SIGTERM)
        for stage in self.processes:
            stage.stop()
        self.processes.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> Pipeline:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class ReportLine:
    """One outcome of one stage in the run summary."""

    stage: str
    title: str
    count: int
    terminal: bool
    where: str | None = None
    #: The outcome's title without the split value (for the sum).
    outcome: str = ""


@dataclass(frozen=True)
class RunReport:
    """What became of a run's documents (see :meth:`Pipeline.report`)."""

    read: int
    rejected: int
    failed: int
    sent: int
    lines: list[ReportLine]
    dead_letters: dict[str, int]

    @property
    def dead_lettered(self) -> int:
        """Records sent to the DLQ by any stage."""
        return sum(self.dead_letters.values())

    @property
    def accounted(self) -> int:
        """Rejected + failed to send + every terminal outcome + dead-lettered."""
        ends = sum(line.count for line in self.lines if line.terminal)
        return self.rejected + self.failed + ends + self.dead_lettered

    @property
    def adds_up(self) -> bool:
        """Whether every document read is accounted for exactly once."""
        return self.accounted == self.read


def _outcome_counts(outcome: Outcome, samples: Samples) -> list[tuple[str, int]]:
    """``(title, count)`` of *outcome* in one stage's samples: one, or one per split value."""
    wanted = set(outcome.labels)
    matching = [
        (dict(labels), value)
        for (name, labels), value in samples.items()
        if name == outcome.metric and wanted <= set(labels)
    ]
    if outcome.split is None:
        return [(outcome.title, round(sum(v for _, v in matching)))]
    by_value: dict[str, float] = {}
    for labels, value in matching:
        key = labels.get(outcome.split, "")
        if key not in outcome.exclude:
            by_value[key] = by_value.get(key, 0.0) + value
    return [(f"{outcome.title} ({key})", round(n)) for key, n in sorted(by_value.items())]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def parse_scale(values: Iterable[str]) -> dict[str, int]:
    """``["dedup=2"]`` → the stage counts: 1 of each built-in stage unless given.

    A name that is not a built-in stage adds that consumer (a plug-in) to the pipeline.
    """
    stages = default_stages()
    for item in values:
        name, _, count = item.partition("=")
        if not count.isdigit() or int(count) < 1:
            raise NewswireError(f"--scale wants NAME=N with N ≥ 1, got {item!r}")
        stages[name.strip()] = int(count)
    return stages
