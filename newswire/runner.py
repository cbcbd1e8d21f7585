"""The consumer runtime: poll, decode, handle, produce, flush, commit — at least once.

For each polled batch:

1. every record is decoded here (not in kafka-python's deserializer, which
   would hide a bad record from the error policy); an undecodable record goes
   to the DLQ with its original bytes;
2. the consumer handles the decoded events; a retriable failure is retried
   with exponential backoff, a permanent one (or retries exhausted) sends the
   failing record — and only it — to the DLQ;
3. what the consumer emitted, and the DLQ records, are flushed and checked;
4. only then are the batch's offsets committed.

A crash anywhere before step 4 means the batch is delivered again: outputs may
repeat (at-least-once), nothing is lost. SIGTERM/SIGINT finish the batch,
commit and leave the group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from newswire import process
from newswire.consumer import Consumer, Context, Event, Skip
from newswire.dlq import dlq_headers
from newswire.errors import BrokerError, ConfigError, SerdeError, UnavailableError
from newswire.kafka import (
    Clients,
    CommitFailedError,
    ConsumerClient,
    ProducerClient,
    Record,
    TopicPartition,
    check_reachable,
    open_clients,
)
from newswire.metrics import ConsumerMetrics
from newswire.model import schema_of
from newswire.serde import Serde, serde_for
from newswire.settings import Settings
from newswire.topics import DLQ

__all__ = ["Runner", "is_retriable"]

log = logging.getLogger(__name__)


class _Abandoned(Exception):
    """Stop was requested while a batch was being retried: leave it uncommitted."""


def is_retriable(exc: BaseException) -> bool:
    """Whether trying again may succeed: newswire errors (and Kafka clients') say so."""
    return bool(getattr(exc, "retriable", False))


def _describe(partitions: Iterable[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(by_topic.items()))


def _log_batch(
    name: str,
    polled: Mapping[TopicPartition, Sequence[Record]],
    events: int,
    started: float,
    decoded: float,
    handled: float,
    flushed: float,
) -> None:
    """The DEBUG line of one batch: counts, sizes, times, partitions — never a record's text."""
    committed = time.perf_counter()
    records = sum(len(r) for r in polled.values())
    size = sum(len(record.value or b"") for r in polled.values() for record in r)
    log.debug(
        "%s: batch records=%d decoded=%d bytes=%d decode=%.1fms handle=%.1fms "
        "produce=%.1fms commit=%.1fms partitions=%s",
        name,
        records,
        events,
        size,
        (decoded - started) * 1000,
        (handled - decoded) * 1000,
        (flushed - handled) * 1000,
        (committed - flushed) * 1000,
        " ".join(f"{tp.topic}[{tp.partition}]:{len(r)}@{r[0].offset}" for tp, r in polled.items()),
    )


class Runner:
    """Runs one :class:`Consumer` in its group until stopped."""

    def __init__(
        self,
        consumer: Consumer,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        serde: Serde | None = None,
        clients: Clients | None = None,
        tune_gc: bool = False,
    ) -> None:
        self.consumer = consumer
        #: Freeze the heap after setup and collect young objects less often (a stage
        #: process: ``newswire consume``), see :mod:`newswire.process`.
        self.tune_gc = tune_gc
        # The broker is checked when run() starts, not here: a Runner is also built to
        # drive its batch logic directly (unit tests, benchmarks).
        self._check_broker = clients is None
        self.clients = clients or open_clients(settings.kafka, settings.producer, check=False)
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.serde = serde or serde_for(settings)
        # A consumer that declares the fields it reads gets a projected decode (faster).
        # (ingested_at too: the end-to-end latency metric reads it.)
        fields = consumer.fields
        if fields is not None and "ingested_at" not in fields:
            fields = (*fields, "ingested_at")
        self._fields = fields
        self.metrics = ConsumerMetrics.create(self.registry)
        self._stop = threading.Event()
        self._kafka: ConsumerClient | None = None
        self._producer: ProducerClient | None = None
        self._queued = 0  # records produced since the last flush
        self._out: Tally[str] = Tally()
        self._pending: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        #: The partitions the rebalance callbacks say this member owns, and those it
        #: exports a lag series for (always a subset: see :meth:`_update_lag`).
        self._owned: set[TopicPartition] = set()
        self._lagged: set[TopicPartition] = set()
        self._partition_counts: dict[str, int] = {}
        self._lag_updated = 0.0
        self._rejoins = 0  # the client's group_rejoins() as last exported
        self._per_event = type(consumer).handle_batch is Consumer.handle_batch

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and leave (signal-handler safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the runner gracefully."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_batches: int | None = None, until_idle: bool = False) -> None:
        """Consume until :meth:`stop`.

        *max_batches* stops after that many non-empty batches; *until_idle* at
        the first empty poll once partitions are assigned (tests, benchmarks).
        """
        s = self.settings
        if self._check_broker:
            check_reachable(s.kafka)
        self._producer = self.clients.producer(f"{self.consumer.name}-out", output=True)
        self._kafka = self.clients.consumer(self.consumer.group, self.consumer.name)
        self.consumer.bind(
            Context(
                settings=s,
                registry=self.registry,
                emit=self._emit,
                log=logging.getLogger(f"newswire.consumer.{self.consumer.name}"),
                serde=self.serde,
            )
        )
        if not self._setup():  # stopped while waiting: nothing was set up, nothing to commit
            self._kafka.close(leave=False)
            self._producer.close(timeout_s=10)
            log.info("%s: stopped before it was set up", self.consumer.name)
            return
        if self.tune_gc:
            process.tune_gc()
        self._kafka.subscribe(
            self.consumer.topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info(
            "%s: consuming %s as group %s",
            self.consumer.name,
            ",".join(self.consumer.topics),
            self.consumer.group,
        )
        batches = 0
        try:
            while not self._stop.is_set():
                try:
                    polled = self._kafka.poll(
                        s.runner.poll_timeout_ms / 1000, s.kafka.max_poll_records
                    )
                except BrokerError as exc:
                    log.warning("%s: poll failed: %s; retrying", self.consumer.name, exc)
                    self._stop.wait(s.runner.retry_backoff_ms / 1000)
                    continue
                self._count_rejoins()
                if not polled:
                    self._update_lag(every_s=0)
                    if until_idle and (batches or self._kafka.assignment()):
                        break
                    continue
                try:
                    self._process(polled)
                except _Abandoned:
                    log.info(
                        "%s: stopping mid-retry; the batch stays uncommitted", self.consumer.name
                    )
                    break
                except (BrokerError, UnavailableError) as exc:
                    # Outputs not acknowledged, or the schema registry is down while
                    # decoding: rewind and do the batch again.
                    log.warning("%s: %s; redoing the batch", self.consumer.name, exc)
                    for tp, records in polled.items():
                        self._kafka.seek(tp, records[0].offset)
                    self._stop.wait(s.runner.retry_backoff_ms / 1000)
                    continue
                batches += 1
                if max_batches is not None and batches >= max_batches:
                    break
        finally:
            self._shutdown()

    def _count_rejoins(self) -> None:
        """Export the joins the client completed after finding the group wedged."""
        rejoins = self._kafka.group_rejoins() if self._kafka is not None else 0
        if rejoins > self._rejoins:
            self.metrics.group_rejoins.labels(self.consumer.name, self.consumer.topics[0]).inc(
                rejoins - self._rejoins
            )
            self._rejoins = rejoins

    def _setup(self) -> bool:
        """Set the consumer up; wait out an outage of what it needs (False: stopped meanwhile).

        A dependency that is unreachable or restarting at start-up
        (:class:`~newswire.errors.UnavailableError`) is waited for with capped
        backoff, as a batch would; anything else (a ConfigError: no such
        database…) propagates and stops the stage.
        """
        s = self.settings.runner
        delay_ms = float(s.retry_backoff_ms)
        while True:
            try:
                self.consumer.setup()
                return True
            except UnavailableError as exc:
                self.metrics.unavailable.labels(self.consumer.name, self.consumer.topics[0]).set(1)
                log.warning(
                    "%s: %s; setting up again in %.1fs", self.consumer.name, exc, delay_ms / 1000
                )
            if self._stop.wait(delay_ms / 1000):
                return False
            delay_ms = min(delay_ms * 2, float(s.retry_backoff_max_ms))

    def _shutdown(self) -> None:
        leave = True
        try:
            self.commit_pending()
            leave = self._finish_join()
            self.commit_pending()
        finally:
            if self._kafka is not None:
                self._kafka.close(leave=leave)
                # Closed, it owns nothing: not every client calls the revoke callback
                # at close (kafka-python does not), and the registry may outlive it.
                for tp in set(self._lagged):
                    self.forget_partition(tp)
                self._owned.clear()
            if self._producer is not None:
                self._producer.close(timeout_s=10)
            self.consumer.close()
            log.info("%s: stopped", self.consumer.name)

    def _finish_join(self) -> bool:
        """Before leaving the group, let a join in flight complete; False if it did not.

        On Tansu 0.6 a leader that sends LeaveGroup while the group is forming stays
        the leader of that join, and the others' SyncGroup is refused for good
        (DESIGN §6). So a stop during a rebalance polls on — records fetched
        meanwhile are not handled, and not committed: the partition's next owner
        reads them — until the join completes (the revoke callback commits what is
        pending); then the member leaves. If it does not complete in time, the
        member closes without LeaveGroup and the group drops it after its session
        timeout. A leader stopped just as another member starts joining cannot see
        it; the members then detect the wedge and complete the join themselves
        (:meth:`ConsumerClient.group_rejoins`). Apache Kafka needs none of this and
        loses nothing by it: the wait is one join, bounded.
        """
        if self._kafka is None or not self._kafka.rebalancing():
            return True
        # A join lasts until every live member rejoined and dead ones timed out; 10 s
        # leaves room for a loaded machine and stays within a supervisor's stop timeout
        # (`newswire run` waits 15 s before SIGKILL).
        bound_s = 10.0
        deadline = time.monotonic() + bound_s
        log.info("%s: stopping during a rebalance: finishing the join first", self.consumer.name)
        while self._kafka.rebalancing():
            if time.monotonic() > deadline:
                log.warning(
                    "%s: the join did not complete within %.0fs; closing without leaving "
                    "(the group drops this member after its session timeout)",
                    self.consumer.name,
                    bound_s,
                )
                return False
            try:
                self._kafka.poll(0.1, 1)
            except BrokerError as exc:
                log.warning("%s: poll while finishing the join: %s", self.consumer.name, exc)
                return False
        return True

    # -- one batch ---------------------------------------------------------------------------

    def _process(self, polled: Mapping[TopicPartition, Sequence[Record]]) -> None:
        # The per-batch DEBUG line's clock readings are taken only when it is logged.
        debug = log.isEnabledFor(logging.DEBUG)
        started = time.perf_counter()
        events: list[Event] = []
        counts: Tally[str] = Tally()
        offsets: dict[TopicPartition, int] = {}
        for tp, records in polled.items():
            for record in records:
                counts[tp.topic] += 1
                event = self._decode(record)
                if event is not None:
                    events.append(event)
            offsets[tp] = records[-1].offset + 1
        decoded = time.perf_counter() if debug else 0.0
        if events:
            if self._per_event:
                for event in events:
                    self._handle([event])
            else:
                self._handle(events)
        handled = time.perf_counter() if debug else 0.0
        self._flush()
        flushed = time.perf_counter() if debug else 0.0
        # Only what is durable downstream becomes committable.
        self._pending.update(offsets)
        self.commit_pending()
        if debug:
            _log_batch(self.consumer.name, polled, len(events), started, decoded, handled, flushed)
        name = self.consumer.name
        elapsed = time.perf_counter() - started
        for topic, n in counts.items():
            self.metrics.records_in.labels(name, topic).inc(n)
            self.metrics.batch_size.labels(name, topic).observe(n)
            self.metrics.processing_seconds.labels(name, topic).observe(elapsed)
        self._observe_latency(events)
        for tp, records in polled.items():
            if tp in self._owned:  # not a partition revoked while the batch was in hand
                self._positions[tp] = records[-1].offset + 1
        self._update_lag()

    def _decode(self, record: Record) -> Event | None:
        value = record.value
        try:
            if value is None:
                raise SerdeError("record has no value (tombstone)")
            schema, data = self.serde.decode(value, self._fields)
        except SerdeError as exc:
            log.warning(
                "%s: topic=%r partition=%d offset=%d: undecodable, to DLQ: %s",
                self.consumer.name,
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            self._dead_letter(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                value or b"",
                exc,
                attempts=1,
            )
            return None
        return Event(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=value,
            schema=schema,
            record=data,
            headers=record.headers or (),
            timestamp_ms=record.timestamp,
        )

    def _handle(self, events: list[Event]) -> None:
        """Handle *events*, retrying retriable failures; isolate and dead-letter the rest."""
        # Fast path: the first attempt runs without tenacity. Building and driving a
        # Retrying costs ~20 us -- per record for per-event consumers (enrich, plug-ins
        # overriding handle()), about as much as kafka-python's send().
        try:
            self._call_handler(events)
        except Skip:  # raised by handle_batch: the whole batch is dropped on purpose
            self.metrics.skipped.labels(self.consumer.name, events[0].topic).inc(len(events))
            return
        except ConfigError:
            # The stage's configuration can never work (the database does not exist,
            # authentication failed…): not the records' fault. Stop, commit nothing.
            raise
        except Exception as exc:
            if is_retriable(exc):
                self._handle_with_retries(events, exc)
            else:
                self._fail(events, exc, attempts=1, first_failure=time.time())
            return
        self.metrics.unavailable.labels(self.consumer.name, self.consumer.topics[0]).set(0)

    def _handle_with_retries(self, events: list[Event], first: Exception) -> None:
        """Retry *events* whose first attempt raised the retriable *first*."""
        first_failure = time.time()
        pending = [first]  # attempt 1 already ran: replay its outcome to tenacity
        attempts = 0

        def count_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.metrics.retries.labels(
                self.consumer.name, events[0].topic, type(exc).__name__
            ).inc()
            log.warning(
                "%s: retriable failure on %s (attempt %d): %s",
                self.consumer.name,
                events[0].where,
                state.attempt_number,
                exc,
            )

        retrying = Retrying(
            stop=self._give_up,
            wait=wait_exponential(
                multiplier=self.settings.runner.retry_backoff_ms / 1000,
                max=self.settings.runner.retry_backoff_max_ms / 1000,
            ),
            retry=retry_if_exception(lambda e: is_retriable(e) and not self._stop.is_set()),
            before_sleep=count_retry,
            reraise=True,
            sleep=self._sleep,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if pending:
                        raise pending.pop()
                    self._call_handler(events)
            self.metrics.unavailable.labels(self.consumer.name, self.consumer.topics[0]).set(0)
            return
        except Skip:  # raised by handle_batch: the whole batch is dropped on purpose
            self.metrics.skipped.labels(self.consumer.name, events[0].topic).inc(len(events))
            return
        except Exception as exc:
            self._fail(events, exc, attempts=attempts, first_failure=first_failure)

    def _fail(
        self, events: list[Event], exc: Exception, *, attempts: int, first_failure: float
    ) -> None:
        """*events* failed for good: abandon (stopping), bisect, or dead-letter the one."""
        if isinstance(exc, ConfigError):
            raise exc  # e.g. the database went away for good during an outage: stop the stage
        if is_retriable(exc) and self._stop.is_set():
            # Shutting down mid-retry: leave the batch uncommitted for the next owner.
            raise _Abandoned from exc
        if len(events) > 1:
            # Find the culprits: re-run one by one, dead-letter only those that fail.
            for event in events:
                self._handle([event])
            return
        event = events[0]
        log.error(
            "%s: %s failed after %d attempt(s), to DLQ: %s: %s",
            self.consumer.name,
            event.where,
            attempts,
            type(exc).__name__,
            exc,
        )
        self._dead_letter(
            event.topic,
            event.partition,
            event.offset,
            event.key,
            event.value,
            exc,
            attempts=attempts,
            first_failure=first_failure,
        )

    def _give_up(self, state: RetryCallState) -> bool:
        """Stop retrying after max_retries, except while a dependency is unavailable."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UnavailableError):
            self.metrics.unavailable.labels(self.consumer.name, self.consumer.topics[0]).set(1)
            return self._stop.is_set()
        return bool(state.attempt_number > self.settings.runner.max_retries)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop request cuts a backoff short

    def _call_handler(self, events: list[Event]) -> None:
        if self._per_event:
            try:
                self.consumer.handle_event(events[0])
            except Skip:
                self.metrics.skipped.labels(self.consumer.name, events[0].topic).inc()
        else:
            self.consumer.handle_batch(events)

    # -- output --------------------------------------------------------------------------------

    def _emit(
        self,
        topic: str,
        value: BaseModel | dict[str, Any] | bytes,
        *,
        key: bytes | str | None = None,
        schema: str | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if isinstance(value, BaseModel):
            name = schema or schema_of(type(value))
            if name is None:
                raise SerdeError(f"no schema for {type(value).__name__}; pass schema=")
            data = self.serde.encode(name, value.model_dump(), topic=topic)
        elif isinstance(value, dict):
            if schema is None:
                raise SerdeError("emit() of a dict needs schema=")
            data = self.serde.encode(schema, value, topic=topic)
        else:
            data = value
        if isinstance(key, str):
            key = key.encode("utf-8")
        if partition is not None and partition >= self._partition_count(topic):
            partition = None  # topics not co-partitioned: let the key decide
        self._send(topic, data, key=key, partition=partition, headers=list(headers))
        self._out[topic] += 1

    def _partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            assert self._producer is not None
            count = len(self._producer.partitions_for(topic) or ())
            self._partition_counts[topic] = count
        return count

    def _send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        partition: int | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        assert self._producer is not None
        self._producer.produce(topic, value, key=key, partition=partition, headers=headers or None)
        self._queued += 1

    def _dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        exc: BaseException,
        *,
        attempts: int,
        first_failure: float | None = None,
    ) -> None:
        headers = dlq_headers(
            stage=self.consumer.name,
            error=exc,
            topic=topic,
            partition=partition,
            offset=offset,
            attempts=attempts,
            first_failure=first_failure or time.time(),
        )
        self._send(DLQ, value, key=key, partition=None, headers=headers)
        self.metrics.dlq.labels(self.consumer.name, topic, type(exc).__name__).inc()

    def _flush(self) -> None:
        """Flush and check every record sent for this batch; raise if any was not acknowledged."""
        if not self._queued:
            return
        assert self._producer is not None
        failed = self._producer.flush()
        queued, self._queued = self._queued, 0
        if failed:
            self._out.clear()
            raise BrokerError(
                f"{self.consumer.name}: {len(failed)} of {queued} records not acknowledged: "
                f"{failed[0].error}"
            )
        for topic, n in self._out.items():
            self.metrics.records_out.labels(self.consumer.name, topic).inc(n)
        self._out.clear()

    # -- rebalances, offsets and lag -----------------------------------------------------------

    def _on_revoke(self, revoked: list[TopicPartition]) -> None:
        # Offsets are committed after every batch, before the next poll in which a
        # rebalance can happen; this commits whatever is still pending.
        self.commit_pending()
        for tp in revoked:
            self._owned.discard(tp)
            self.forget_partition(tp)
        if revoked:
            log.info("%s: partitions revoked: %s", self.consumer.name, _describe(revoked))

    def _on_assign(self, assigned: list[TopicPartition]) -> None:
        # Eager protocols revoke everything and assign the full set; cooperative ones
        # revoke and assign increments: adding covers both.
        self._owned.update(assigned)
        if assigned:
            log.info("%s: partitions assigned: %s", self.consumer.name, _describe(assigned))

    def commit_pending(self) -> None:
        """Commit the offsets of the batches fully processed so far."""
        if not self._pending or self._kafka is None:
            return
        pending, self._pending = self._pending, {}
        try:
            self._kafka.commit(pending)
        except CommitFailedError as exc:
            # The group rebalanced under us: the new owner gets these records again.
            log.warning(
                "%s: commit failed after a rebalance (records will be redelivered): %s",
                self.consumer.name,
                exc,
            )
            return
        for topic in {tp.topic for tp in pending}:
            self.metrics.commits.labels(self.consumer.name, topic).inc()

    def forget_partition(self, tp: TopicPartition) -> None:
        """Drop the lag series of a partition this member no longer owns."""
        self._positions.pop(tp, None)
        self._lagged.discard(tp)
        with contextlib.suppress(KeyError):
            self.metrics.lag.remove(self.consumer.name, tp.topic, str(tp.partition))

    def _update_lag(self, *, every_s: float = 1.0) -> None:
        """Set the lag of every assigned partition, at most once per *every_s*."""
        now = time.monotonic()
        if now - self._lag_updated < every_s:
            return
        self._lag_updated = now
        assert self._kafka is not None
        # Only partitions both the client and the callbacks say are ours: mid-join a
        # client can still list partitions already revoked (kafka-python keeps its old
        # assignment until the join completes), and a series set for one of those would
        # never be removed — its revoke has passed.
        owned = self._kafka.assignment() & self._owned
        for tp in self._lagged - owned:
            self.forget_partition(tp)
        for tp in owned:
            # The high watermark of the last fetch response: right on Apache Kafka and on
            # Tansu, whose ListOffsets is short for batched producers (DESIGN §6). A
            # partition not fetched yet has no lag series until its first fetch.
            high = self._kafka.high_watermark(tp)
            if high is None:
                continue
            position = self._positions.get(tp)
            if position is None:
                position = self._kafka.position(tp)
            if position is None:
                continue
            self.metrics.lag.labels(self.consumer.name, tp.topic, str(tp.partition)).set(
                max(0, high - position)
            )
            self._lagged.add(tp)

    def _observe_latency(self, events: list[Event]) -> None:
        if not events:
            return
        now = dt.datetime.now(dt.UTC)
        observe = self.metrics.end_to_end_seconds.labels(self.consumer.name, events[0].topic)
        for event in events:
            ingested = event.record.get("ingested_at")
            if ingested is not None:
                observe.observe(max(0.0, (now - ingested).total_seconds()))
