"""The ``newswire`` command: one typer app, a module per command group."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from newswire.cli import articles, broker, consume, dlq, produce, run, schemas, status
from newswire.cli.common import EXIT_STATUS_HELP

app = typer.Typer(
    name="newswire",
    help="Streaming ingestion of news articles on Kafka: produce, dedup, enrich, store.\n\n"
    "Settings come from NEWSWIRE_<SECTION>__<FIELD> variables (kafka, producer, runner, "
    "metrics); each consumer, source or store plug-in reads its own from "
    "NEWSWIRE_<NAME>__<FIELD> (NEWSWIRE_STORE__URL, NEWSWIRE_DEDUP__STATE_URL, "
    "NEWSWIRE_SQLITE__SYNCHRONOUS…); options override them, and an unknown NEWSWIRE_* "
    "variable is reported at start-up.\n\n" + EXIT_STATUS_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="DEBUG logs, and tracebacks with errors.")
    ] = False,
) -> None:
    if debug:
        os.environ["NEWSWIRE_LOG_LEVEL"] = "DEBUG"


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


def _debugging() -> bool:
    return "--debug" in sys.argv[1:] or os.environ.get("NEWSWIRE_LOG_LEVEL", "").upper() == "DEBUG"


def _state_exit_statuses(typer_app: typer.Typer) -> None:
    """Every command's --help ends with the one exit-status rule."""
    for command in typer_app.registered_commands:
        command.epilog = command.epilog or EXIT_STATUS_HELP
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _state_exit_statuses(group.typer_instance)


_state_exit_statuses(app)


def main() -> None:
    """Console-script entry point: an error nobody handled is one line and exit status 3
    (the traceback too with ``--debug`` or ``NEWSWIRE_LOG_LEVEL=DEBUG``)."""
    try:
        app()
    except Exception as exc:
        if _debugging():
            raise
        from newswire.cli.common import EXIT_FAILED, console

        console.print(
            f"[red]error:[/red] {escape(type(exc).__name__)}: {escape(str(exc))} "
            "(--debug shows the traceback)",
            soft_wrap=True,
            highlight=False,
        )
        sys.exit(EXIT_FAILED)
