"""The ``newswire`` command: one typer app, a module per command group."""

from __future__ import annotations

import typer

from newswire.cli import articles, broker, consume, dlq, produce, run, schemas, status

app = typer.Typer(
    name="newswire",
    help="Streaming ingestion of news articles on Kafka: produce, dedup, enrich, store.\n\n"
    "Settings come from NEWSWIRE_<SECTION>__<FIELD> variables (kafka, producer, runner, "
    "metrics); each consumer, source or store plug-in reads its own from "
    "NEWSWIRE_<NAME>__<FIELD> (NEWSWIRE_STORE__URL, NEWSWIRE_DEDUP__STATE_URL, "
    "NEWSWIRE_SQLITE__SYNCHRONOUS…); options override them, and an unknown NEWSWIRE_* "
    "variable is reported at start-up.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(broker.broker)
app.add_typer(broker.topics_app, name="topics")
app.command()(produce.produce)
app.command()(consume.consume)
app.add_typer(consume.consumers_app, name="consumers")
app.command()(run.run)
app.add_typer(dlq.dlq_app, name="dlq")
app.command()(status.status)
app.command()(status.top)
app.add_typer(articles.articles_app, name="articles")
app.add_typer(schemas.schemas_app, name="schemas")


def main() -> None:
    """Console-script entry point."""
    app()
