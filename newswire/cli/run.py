"""``newswire run``: the whole pipeline on one machine."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.status import Status
from rich.table import Table

from newswire.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    LIBRARY_LOG,
    console,
    fail,
    load_settings,
    log_libraries_to,
    out,
    raise_on_sigterm,
    usage_error,
)
from newswire.cli.produce import (
    AUTO,
    Every,
    Follow,
    Format,
    State,
    Workers,
    build_sources,
    print_produce_summary,
    producer_overrides,
    publish,
    quiet_http_logs,
)
from newswire.errors import NewswireError
from newswire.publisher import Publisher, PublishSummary
from newswire.settings import Settings
from newswire.source import RejectsFile

if TYPE_CHECKING:
    from newswire.pipeline import Pipeline, RunReport


def run(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Documents, JSON lines (- for stdin), RSS/Atom files or URLs to produce."
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Store URL [default sqlite:///newswire.db]")
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option("--bootstrap", "-b", help="Use this broker instead of an embedded one."),
    ] = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit once every stage has drained.")
    ] = False,
    scale: Annotated[
        list[str] | None, typer.Option(help="Instances of a stage, e.g. dedup=2.")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Logs and state [default: a temp dir].")
    ] = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic.")] = None,
    timeout: Annotated[
        float, typer.Option(help="--until-idle: give up after this many seconds.")
    ] = 900.0,
    dlq_out: Annotated[
        Path,
        typer.Option(
            help="--until-idle with the embedded (memory-only) broker: dead letters are "
            "appended here before it stops."
        ),
    ] = Path("newswire-dlq.jsonl"),
    fmt: Format = AUTO,
    workers: Workers = None,
    follow: Follow = None,
    every: Every = None,
    state: State = None,
) -> None:
    """Run the whole pipeline: broker, topics, the built-in stages, then produce PATHS.

    The stages are the built-in consumers (dedup → enrich → store); --scale
    NAME=N adds instances, or a plug-in consumer. With --until-idle the summary
    accounts for every document: read = rejected + each stage's outcomes +
    dead-lettered. With --follow the feeds are polled until Ctrl-C, after PATHS.
    The exit status is 1 when documents were rejected or (--until-idle) records
    dead-lettered, 3 when some could not be sent.
    """
    from newswire.pipeline import Pipeline, parse_scale

    if follow and until_idle:
        usage_error("--follow never goes idle: use it without --until-idle", "--follow")
    try:
        settings = load_settings(
            store__url=store,
            kafka__partitions=partitions,
            **producer_overrides(workers=workers, every=every, state=state),
        )
    except NewswireError as exc:
        raise fail(exc) from exc
    quiet_http_logs()
    settings.kafka.bootstrap = bootstrap or ""
    if not bootstrap:
        # The embedded broker: fast group joins and failover (DESIGN §6).
        settings.kafka.session_timeout_ms = 2000
        settings.kafka.heartbeat_interval_ms = 500
    raise_on_sigterm()
    started = time.perf_counter()
    status = EXIT_OK
    with tempfile.TemporaryDirectory(prefix="newswire-run-") as tmp:
        work = workdir or Path(tmp)
        # The Kafka clients' chatter goes beside the stages' logs, not to the console.
        log_libraries_to(work / LIBRARY_LOG)
        if not bootstrap:
            # Offsets of a memory-only broker mean nothing after it stops: state that
            # records offsets lives with the run.
            settings.runner.state_dir = work
        rejects_file = RejectsFile(settings.producer.rejects_path)
        try:
            pipeline = Pipeline(settings, work, stages=parse_scale(scale or []))
            with pipeline:
                out.print(
                    f"pipeline up: broker {settings.kafka.bootstrap}, stages "
                    + ", ".join(p.label for p in pipeline.processes)
                    + f", logs in {work}"
                )
                registry = CollectorRegistry()
                _print_metrics_urls(pipeline, _serve_producer_metrics(settings, registry))
                summary = PublishSummary()
                if paths or follow:
                    publisher = Publisher(settings, registry=registry)
                    try:
                        summary = publish(
                            publisher,
                            build_sources(paths or [], settings, fmt=fmt, follow=follow),
                            rejects_file,
                            sys.stderr.isatty() and not follow,
                        )
                    except KeyboardInterrupt:  # --follow ends so: say what was done
                        publisher.close()
                        print_produce_summary(publisher.summary, rejects_file)
                        raise
                    finally:
                        publisher.close()
                        rejects_file.close()
                    print_produce_summary(summary, rejects_file)
                status = _exit_status(summary.rejected, summary.failed, dead_lettered=0)
                if until_idle:
                    with DrainProgress(pipeline, summary, console) as progress:
                        pipeline.wait_until_idle(
                            summary.sent, timeout_s=timeout, tick=progress.tick
                        )
                    report = _print_run_summary(
                        pipeline,
                        summary,
                        time.perf_counter() - started,
                        embedded=not bootstrap,
                        dlq_out=dlq_out,
                    )
                    status = _exit_status(report.rejected, report.failed, report.dead_lettered)
                else:
                    out.print("running; Ctrl-C stops")
                    while True:
                        pipeline.check_alive()
                        time.sleep(0.5)
        except KeyboardInterrupt:
            out.print("stopping")
        except NewswireError as exc:
            raise fail(exc) from exc
        finally:
            log_libraries_to(None)  # the work directory may be about to go
    if status != EXIT_OK:
        raise typer.Exit(status)


class DrainProgress:
    """While ``--until-idle`` waits: sent, each stage's records in and lag, what has ended.

    On a terminal a live status line (every second); otherwise (a log, a pipe) a line
    at once and then every ``every_s``. Each update scrapes every stage once (~2 ms of
    CPU a stage), so it is throttled, not done on each of the drain's polls.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        summary: PublishSummary,
        where: Console,
        every_s: float | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.summary = summary
        self.console = where
        self.live = where.is_terminal
        self.every_s = every_s if every_s is not None else (1.0 if self.live else 5.0)
        self._next = 0.0
        self._status: Status | None = None

    def line(self) -> str:
        """``draining: 48 sent; dedup 48 in lag 0; …; ended: 7 duplicate sightings, …``."""
        stages = "; ".join(
            f"{name} {n:,} in, lag {lag:,}" for name, n, lag in self.pipeline.drain_progress()
        )
        s = self.summary
        report = self.pipeline.report(
            read=s.read, rejected=s.rejected, failed=s.failed, sent=s.sent
        )
        ends: dict[str, int] = {}
        for line in report.lines:
            if line.terminal:
                title = line.outcome or line.title
                ends[title] = ends.get(title, 0) + line.count
        ended = ", ".join(f"{n:,} {title}" for title, n in ends.items())
        dead = f", {report.dead_lettered:,} dead-lettered" if report.dead_lettered else ""
        return f"draining: {s.sent:,} sent; {stages}; ended: {ended or 'none yet'}{dead}"

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        text = self.line()
        if not self.live:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def __enter__(self) -> DrainProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._status is not None:
            self._status.stop()


def _exit_status(rejected: int, failed: int, dead_lettered: int) -> int:
    """3 when documents could not be sent, 1 when some were rejected or dead-lettered."""
    if failed:
        return EXIT_FAILED
    return EXIT_REJECTED if rejected or dead_lettered else EXIT_OK


def _serve_producer_metrics(settings: Settings, registry: CollectorRegistry) -> str | None:
    """Serve this process's producer series like a stage does; announce them for `status`."""
    if not settings.metrics.enabled:
        return None
    from newswire.metrics import serve_metrics
    from newswire.status import PRODUCER, announce

    # Loopback and a free port, like the stages `run` starts.
    settings.metrics.host = "127.0.0.1"
    _server, port = serve_metrics(registry, settings.metrics.host, 0)
    announce(
        settings.metrics,
        consumer="producer",
        group="",
        port=port,
        bootstrap=settings.kafka.bootstrap,
        role=PRODUCER,
    )
    return f"http://127.0.0.1:{port}/metrics"


def _print_metrics_urls(pipeline: Pipeline, producer_url: str | None, wait_s: float = 15.0) -> None:
    """Print every process's /metrics URL (a stage's once it has bound its port)."""
    deadline = time.monotonic() + wait_s
    while any(s.port is None for s in pipeline.processes) and time.monotonic() < deadline:
        pipeline.check_alive()
        time.sleep(0.1)
    urls = [("producer", producer_url)] if producer_url else []
    urls += [
        (s.label, f"http://127.0.0.1:{s.port}/metrics" if s.port else "(not up yet)")
        for s in pipeline.processes
    ]
    if urls:
        # One line each: URLs stay whole (copyable) on a narrow terminal.
        out.print("metrics (`newswire status --targets FILE` writes them for Prometheus):")
        for label, url in urls:
            out.print(f"  {label:<10} {url}", soft_wrap=True)


def _print_run_summary(
    pipeline: Pipeline,
    summary: PublishSummary,
    elapsed: float,
    *,
    embedded: bool,
    dlq_out: Path,
) -> RunReport:
    """The run in numbers that add up: each stage's outcomes, the dead letters and where."""
    report = pipeline.report(
        read=summary.read, rejected=summary.rejected, failed=summary.failed, sent=summary.sent
    )
    table = Table(title="newswire run", show_header=False)
    table.add_row("documents read", str(report.read))
    table.add_row("rejected", str(report.rejected))
    if report.failed:
        table.add_row("failed to send", str(report.failed))
    table.add_row("sent to articles.raw", str(report.sent))
    for line in report.lines:
        where = f" ({line.where})" if line.where else ""
        table.add_row(f"{line.stage}: {line.title}", f"{line.count}{where}")
    dead = report.dead_lettered
    by_stage = ", ".join(f"{stage} {n}" for stage, n in report.dead_letters.items() if n)
    table.add_row("dead-lettered", f"{dead}" + (f" ({by_stage})" if by_stage else ""))
    if dead:
        table.add_row("dead letters", _keep_dead_letters(pipeline, embedded, dlq_out))
    ends: dict[str, int] = {}
    for line in report.lines:
        if line.terminal:
            ends[line.outcome or line.title] = ends.get(line.outcome or line.title, 0) + line.count
    terms = " + ".join(
        [f"{report.rejected} rejected"]
        + ([f"{report.failed} failed"] if report.failed else [])
        + [f"{n} {title}" for title, n in ends.items()]
        + [f"{dead} dead-lettered"]
    )
    verdict = "adds up" if report.adds_up else f"does not add up ({report.accounted} accounted)"
    table.add_row("accounted", f"{report.read} read = {terms}: {verdict}")
    table.add_row("elapsed", f"{elapsed:.1f}s")
    table.add_row("rate", f"{summary.read / elapsed:,.0f} documents/s" if elapsed else "-")
    out.print(table)
    if report.rejected or dead:
        why = [f"{report.rejected} document(s) rejected"] if report.rejected else []
        why += [f"{dead} record(s) dead-lettered"] if dead else []
        out.print(f"exit status 1: {' and '.join(why)} (see above)")
    return report


def _keep_dead_letters(pipeline: Pipeline, embedded: bool, path: Path) -> str:
    """Where the dead letters are: on the broker's DLQ topic, or (embedded) saved to *path*.

    The embedded broker keeps everything in memory and stops with the run, so
    its letters are written out first, one JSON object a line (``key`` and
    ``value`` base64, the error headers as fields), before it goes.
    """
    from newswire.cli.dlq import letter_record
    from newswire.dlq import read_dead_letters
    from newswire.topics import DLQ

    bootstrap = pipeline.settings.kafka.bootstrap
    if not embedded:
        return f"in {DLQ} on {bootstrap} (newswire dlq list -b {bootstrap})"
    letters = read_dead_letters(pipeline.settings.kafka)
    with path.open("a", encoding="utf-8") as f:
        for partition, offset, letter in letters:
            record = letter_record(partition, offset, letter, payload=True)
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return f"{len(letters)} appended to {path} (the embedded broker is memory-only)"
