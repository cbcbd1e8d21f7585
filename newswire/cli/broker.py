"""``newswire broker`` and ``newswire topics``."""

from __future__ import annotations

from typing import Annotated

import typer

from newswire.broker import EmbeddedBroker
from newswire.cli.common import Bootstrap, fail, load_settings, out, raise_on_sigterm
from newswire.errors import NewswireError
from newswire.topics import ALL_TOPICS, ensure_topics

topics_app = typer.Typer(help="Create and list the pipeline's topics.", no_args_is_help=True)


def broker(
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory only) until Ctrl-C."""
    load_settings()
    raise_on_sigterm()
    embedded = EmbeddedBroker(port or None)
    try:
        embedded.start()
        out.print(f"broker listening on {embedded.bootstrap} (memory only; Ctrl-C stops it)")
        assert embedded.process is not None
        embedded.process.wait()
    except KeyboardInterrupt:
        pass
    except NewswireError as exc:
        raise fail(exc) from exc
    finally:
        embedded.stop()


@topics_app.command("create")
def topics_create(
    bootstrap: Bootstrap = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic.")] = None,
) -> None:
    """Create the pipeline's topics that do not exist yet."""
    settings = load_settings(bootstrap, kafka__partitions=partitions)
    try:
        created = ensure_topics(settings.kafka)
    except NewswireError as exc:
        raise fail(exc) from exc
    out.print(f"created: {', '.join(created) or 'none'}; topics: {', '.join(ALL_TOPICS)}")
