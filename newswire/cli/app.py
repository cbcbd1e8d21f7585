"""``newswire`` commands: broker, topics, produce, consume, consumers, run."""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from newswire import registry as plugins
from newswire.broker import EmbeddedBroker
from newswire.errors import NewswireError
from newswire.metrics import serve_metrics
from newswire.publisher import Publisher, PublishSummary
from newswire.settings import Settings
from newswire.source import RejectsFile, Source
from newswire.topics import ALL_TOPICS, ensure_topics

app = typer.Typer(
    name="newswire",
    help="Streaming ingestion of news articles on Kafka: produce, dedup, enrich, store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Create and list the pipeline's topics.", no_args_is_help=True)
consumers_app = typer.Typer(help="Built-in and plug-in consumers.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(consumers_app, name="consumers")

console = Console(stderr=True)
out = Console()

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", "-b", help="Kafka bootstrap HOST:PORT [env NEWSWIRE_KAFKA__BOOTSTRAP]"
    ),
]

# Exit statuses.
EXIT_REJECTED = 1
EXIT_FAILED = 3


def _settings(bootstrap: str | None = None, **overrides: Any) -> Settings:
    settings = Settings()
    if bootstrap:
        settings.kafka.bootstrap = bootstrap
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, name = dotted.partition("__")
        setattr(getattr(settings, section), name, value)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return settings


def _fail(exc: NewswireError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(EXIT_FAILED)


def _raise_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so ``finally`` blocks clean up."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory only) until Ctrl-C."""
    _settings()
    _raise_on_sigterm()
    embedded = EmbeddedBroker(port or None)
    try:
        embedded.start()
        out.print(f"broker listening on {embedded.bootstrap} (memory only; Ctrl-C stops it)")
        assert embedded.process is not None
        embedded.process.wait()
    except KeyboardInterrupt:
        pass
    except NewswireError as exc:
        raise _fail(exc) from exc
    finally:
        embedded.stop()


@topics_app.command("create")
def topics_create(
    bootstrap: Bootstrap = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic.")] = None,
) -> None:
    """Create the pipeline's topics that do not exist yet."""
    settings = _settings(bootstrap, kafka__partitions=partitions)
    try:
        created = ensure_topics(settings.kafka)
    except NewswireError as exc:
        raise _fail(exc) from exc
    out.print(f"created: {', '.join(created) or 'none'}; topics: {', '.join(ALL_TOPICS)}")


@consumers_app.command("list")
def consumers_list() -> None:
    """List the consumers `newswire consume` can run."""
    table = Table("name", "kind", "class", "package")
    for found in plugins.available(plugins.CONSUMERS):
        table.add_row(
            found.name, "built-in" if found.builtin else "plug-in", found.target, found.distribution
        )
    out.print(table)


@app.command()
def consume(
    name: Annotated[str, typer.Argument(help="Consumer name (see `newswire consumers list`).")],
    bootstrap: Bootstrap = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (0: free).")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL, e.g. sqlite:///newswire.db")] = None,
) -> None:
    """Run one consumer in its own group (newswire.NAME) until SIGTERM/Ctrl-C."""
    from newswire.runner import Runner

    settings = _settings(bootstrap, metrics__port=metrics_port, store__url=store)
    try:
        consumer_class = plugins.load(plugins.CONSUMERS, name)
        registry = CollectorRegistry()
        if settings.metrics.enabled:
            _server, port = serve_metrics(registry, settings.metrics.host, settings.metrics.port)
            if settings.metrics.port_file is not None:
                settings.metrics.port_file.write_text(str(port))
        runner = Runner(consumer_class(), settings, registry=registry)
        runner.install_signal_handlers()
        runner.run()
    except NewswireError as exc:
        raise _fail(exc) from exc


def _document_sources(paths: list[Path], settings: Settings) -> list[Source]:
    source_class = plugins.load(plugins.SOURCES, "documents")
    return [source_class(paths, max_bytes=settings.producer.max_document_bytes)]


def _publish(
    publisher: Publisher, sources: list[Source], rejects: RejectsFile, progress: bool
) -> PublishSummary:
    if not progress:
        return publisher.publish(sources, rejects=rejects)
    total = sum(s.count() or 0 for s in sources) or None
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("produce", total=total)
        return publisher.publish(sources, rejects=rejects, on_item=lambda _item: bar.advance(task))


def _print_produce_summary(summary: PublishSummary, rejects: RejectsFile) -> None:
    out.print(
        f"read {summary.read} documents: {summary.sent} sent, {summary.rejected} rejected, "
        f"{summary.failed} failed, in {summary.elapsed_s:.1f}s ({summary.rate:,.0f} docs/s)"
    )
    if summary.rejected and rejects.path is not None:
        out.print(f"rejects: {rejects.path}")


@app.command()
def produce(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories of documents.")],
    bootstrap: Bootstrap = None,
    rejects: Annotated[Path | None, typer.Option(help="JSONL file of rejected documents.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate documents and send them to articles.raw.

    Exit status: 0 all sent, 1 some documents rejected, 3 failure.
    """
    settings = _settings(bootstrap, producer__rejects_path=rejects)
    rejects_file = RejectsFile(settings.producer.rejects_path)
    publisher = Publisher(settings)
    try:
        ensure_topics(settings.kafka)
        summary = _publish(publisher, _document_sources(paths, settings), rejects_file, progress)
    except NewswireError as exc:
        raise _fail(exc) from exc
    finally:
        publisher.close()
        rejects_file.close()
    _print_produce_summary(summary, rejects_file)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def run(
    paths: Annotated[list[Path] | None, typer.Argument(help="Documents to produce.")] = None,
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
) -> None:
    """Run the whole pipeline: broker, topics, dedup → enrich → store, then produce PATHS."""
    from newswire.pipeline import Pipeline, parse_scale

    settings = _settings(store__url=store, kafka__partitions=partitions)
    settings.kafka.bootstrap = bootstrap or ""
    if not bootstrap:
        # The embedded broker: fast group joins and failover (DESIGN §6).
        settings.kafka.session_timeout_ms = 2000
        settings.kafka.heartbeat_interval_ms = 500
    _raise_on_sigterm()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="newswire-run-") as tmp:
        work = workdir or Path(tmp)
        if not bootstrap:
            # Offsets of a memory-only broker mean nothing after it stops, and dedup
            # state records offsets: keep that state with the run.
            settings.dedup.state_url = f"sqlite:///{work / 'dedup-state.sqlite'}"
        rejects_file = RejectsFile(settings.producer.rejects_path)
        try:
            pipeline = Pipeline(settings, work, stages=parse_scale(scale or []))
            with pipeline:
                out.print(
                    f"pipeline up: broker {settings.kafka.bootstrap}, stages "
                    + ", ".join(p.label for p in pipeline.processes)
                    + f", logs in {work}"
                )
                summary = PublishSummary()
                if paths:
                    publisher = Publisher(settings)
                    try:
                        summary = _publish(
                            publisher,
                            _document_sources(paths, settings),
                            rejects_file,
                            sys.stderr.isatty(),
                        )
                    finally:
                        publisher.close()
                        rejects_file.close()
                    _print_produce_summary(summary, rejects_file)
                if until_idle:
                    pipeline.wait_until_idle(summary.sent, timeout_s=timeout)
                    _print_run_summary(settings, summary, time.perf_counter() - started)
                else:
                    out.print("running; Ctrl-C stops")
                    while True:
                        pipeline.check_alive()
                        time.sleep(0.5)
        except KeyboardInterrupt:
            out.print("stopping")
        except NewswireError as exc:
            raise _fail(exc) from exc


def _print_run_summary(settings: Settings, summary: PublishSummary, elapsed: float) -> None:
    from newswire.store import open_store

    store = open_store(settings.store.url)
    try:
        stored = store.count("articles")
        duplicates = store.duplicates_by_reason()
    finally:
        store.close()
    table = Table(title="newswire run", show_header=False)
    table.add_row("documents read", str(summary.read))
    table.add_row("rejected", str(summary.rejected))
    table.add_row("sent to articles.raw", str(summary.sent))
    table.add_row("articles in store", f"{stored} ({settings.store.url})")
    for reason in ("url", "content", "near"):
        table.add_row(f"duplicates ({reason})", str(duplicates.get(reason, 0)))
    table.add_row("elapsed", f"{elapsed:.1f}s")
    table.add_row("rate", f"{summary.read / elapsed:,.0f} documents/s" if elapsed else "-")
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
