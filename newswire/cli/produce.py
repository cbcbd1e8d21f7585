"""``newswire produce``: documents to articles.raw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newswire import registry as plugins
from newswire.cli.common import (
    EXIT_FAILED,
    EXIT_REJECTED,
    Bootstrap,
    console,
    fail,
    load_settings,
    out,
)
from newswire.errors import NewswireError
from newswire.publisher import Publisher, PublishSummary
from newswire.settings import Settings
from newswire.source import RejectsFile, Source
from newswire.topics import ensure_topics


def document_sources(paths: list[Path], settings: Settings) -> list[Source]:
    source_class = plugins.load(plugins.SOURCES, "documents")
    return [source_class(paths, max_bytes=settings.producer.max_document_bytes)]


def publish(
    publisher: Publisher, sources: list[Source], rejects: RejectsFile, progress: bool
) -> PublishSummary:
    if not progress:
        return publisher.publish(sources, rejects=rejects)
    total = sum(s.count() or 0 for s in sources) or None
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("produce", total=total)
        return publisher.publish(sources, rejects=rejects, on_item=lambda _item: bar.advance(task))


def print_produce_summary(summary: PublishSummary, rejects: RejectsFile) -> None:
    out.print(
        f"read {summary.read} documents: {summary.sent} sent, {summary.rejected} rejected, "
        f"{summary.failed} failed, in {summary.elapsed_s:.1f}s ({summary.rate:,.0f} docs/s)"
    )
    if summary.rejected and rejects.path is not None:
        out.print(f"rejects: {rejects.path}")


def produce(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories of documents.")],
    bootstrap: Bootstrap = None,
    rejects: Annotated[Path | None, typer.Option(help="JSONL file of rejected documents.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate documents and send them to articles.raw.

    Exit status: 0 all sent, 1 some documents rejected, 3 failure.
    """
    settings = load_settings(bootstrap, producer__rejects_path=rejects)
    rejects_file = RejectsFile(settings.producer.rejects_path)
    publisher = Publisher(settings)
    try:
        ensure_topics(settings.kafka)
        summary = publish(publisher, document_sources(paths, settings), rejects_file, progress)
    except NewswireError as exc:
        raise fail(exc) from exc
    finally:
        publisher.close()
        rejects_file.close()
    print_produce_summary(summary, rejects_file)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTED)
