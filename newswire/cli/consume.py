"""``newswire consume NAME`` and ``newswire consumers list``."""

from __future__ import annotations

from typing import Annotated

import typer
from prometheus_client import CollectorRegistry
from rich.table import Table

from newswire import registry as plugins
from newswire.cli.common import Bootstrap, fail, load_settings, out
from newswire.errors import NewswireError
from newswire.metrics import serve_metrics
from newswire.status import announce

consumers_app = typer.Typer(help="Built-in and plug-in consumers.", no_args_is_help=True)


@consumers_app.command("list")
def consumers_list() -> None:
    """List the consumers `newswire consume` can run."""
    table = Table("name", "kind", "class", "package")
    for found in plugins.available(plugins.CONSUMERS):
        table.add_row(
            found.name, "built-in" if found.builtin else "plug-in", found.target, found.distribution
        )
    out.print(table)


def consume(
    name: Annotated[str, typer.Argument(help="Consumer name (see `newswire consumers list`).")],
    bootstrap: Bootstrap = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (0: free).")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL, e.g. sqlite:///newswire.db")] = None,
) -> None:
    """Run one consumer in its own group (newswire.NAME) until SIGTERM/Ctrl-C."""
    from newswire.runner import Runner

    settings = load_settings(bootstrap, stage=True, metrics__port=metrics_port, store__url=store)
    try:
        consumer = plugins.load(plugins.CONSUMERS, name)()
        registry = CollectorRegistry()
        if settings.metrics.enabled:
            _server, port = serve_metrics(registry, settings.metrics.host, settings.metrics.port)
            if settings.metrics.port_file is not None:
                settings.metrics.port_file.write_text(str(port))
            announce(
                settings.metrics,
                consumer=consumer.name,
                group=consumer.group,
                port=port,
                bootstrap=settings.kafka.bootstrap,
            )
        runner = Runner(consumer, settings, registry=registry, tune_gc=True)
        runner.install_signal_handlers()
        runner.run()
    except NewswireError as exc:
        raise fail(exc) from exc
