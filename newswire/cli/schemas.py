"""``newswire schemas list``, ``check`` (locally, or ``--registry``) and ``register``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from newswire.cli.common import EXIT_FAILED, fail, load_settings, out
from newswire.compat import check_store, describe
from newswire.errors import ConfigError, NewswireError
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, SIGHTING, SchemaStore
from newswire.topics import DUPLICATES, ENRICHED, RAW, UNIQUE

if TYPE_CHECKING:
    from newswire.serde.registry import RegistrySerde

schemas_app = typer.Typer(
    help="The Avro contracts in schemas/, and their subjects in a schema registry.",
    no_args_is_help=True,
)

#: What the built-in pipeline writes where: topic -> record (subject <topic>-value).
PIPELINE_TOPICS = {RAW: ARTICLE, UNIQUE: ARTICLE, DUPLICATES: SIGHTING, ENRICHED: ENRICHED_ARTICLE}

Directory = Annotated[
    Path | None, typer.Option(help="Schema directory [default: newswire's own schemas/].")
]
Registry = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Schema registry URL (default: env NEWSWIRE_SERDE__REGISTRY_URL; credentials "
        "from NEWSWIRE_SERDE__REGISTRY_AUTH).",
    ),
]
Topics = Annotated[
    list[str] | None,
    typer.Option(
        "--topic",
        help="TOPIC=RECORD, e.g. articles.scored=acme.Scored, repeatable (default: the "
        "pipeline's four topics and their records).",
    ),
]


def _topics(pairs: list[str] | None) -> dict[str, str]:
    if not pairs:
        return dict(PIPELINE_TOPICS)
    found = {}
    for pair in pairs:
        topic, sep, name = pair.partition("=")
        if not sep or not topic or not name:
            raise ConfigError(f"--topic {pair!r}: expected TOPIC=RECORD", value=pair)
        found[topic] = name
    return found


def _registry(url: str | None, directory: Path | None) -> RegistrySerde:
    from newswire.serde.registry import RegistrySerde

    settings = load_settings().serde
    if url:
        settings.registry_url = url
    if not settings.registry_url:
        raise ConfigError(
            "no schema registry: pass --registry URL or set NEWSWIRE_SERDE__REGISTRY_URL"
        )
    store = SchemaStore.from_dir(directory)
    settings.registry_auto_register = True
    return RegistrySerde.from_settings(settings, store)


@schemas_app.command("list")
def schemas_list(directory: Directory = None) -> None:
    """Every schema version with its CRC-64-AVRO fingerprint."""
    try:
        store = SchemaStore.from_dir(directory)
    except NewswireError as exc:
        raise fail(exc) from exc
    table = Table("record", "file", "fingerprint", "version")
    for row in describe(store):
        table.add_row(*row)
    out.print(table)


@schemas_app.command("check")
def schemas_check(
    directory: Directory = None, registry: Registry = None, topic: Topics = None
) -> None:
    """Check the schemas: locally against their history, and with --registry by the registry.

    Each current schema is checked against its earlier versions
    (schemas/history/<record>/*.avsc): only fully compatible changes are allowed (new
    fields with defaults). With --registry, the registry's compatibility endpoint also
    says whether each may be registered under <topic>-value (against the subject's
    latest version). Exit 3 if anything is incompatible.
    """
    try:
        store = SchemaStore.from_dir(directory)
    except NewswireError as exc:
        raise fail(exc) from exc
    pairs, problems = check_store(store)
    for problem in problems:
        out.print(f"[red]incompatible[/red] {problem}")
    out.print(
        f"checked {len(pairs)} schema change(s) across {len(store.current)} record(s): "
        f"{len(problems)} incompatible"
    )
    refused = 0
    if registry is not None:
        try:
            serde = _registry(registry, directory)
            table = Table("subject", "record", "registry says")
            for name, record in _topics(topic).items():
                verdict = serde.check(record, topic=name)
                refused += verdict is False
                said = {
                    True: "[green]compatible[/green]",
                    False: "[red]incompatible[/red]",
                    None: "new subject",
                }[verdict]
                table.add_row(f"{name}-value", record, said)
        except NewswireError as exc:
            raise fail(exc) from exc
        out.print(table)
        out.print(f"registry {serde.url}: {refused} incompatible")
    if problems or refused:
        raise typer.Exit(EXIT_FAILED)


@schemas_app.command("register")
def schemas_register(
    directory: Directory = None, registry: Registry = None, topic: Topics = None
) -> None:
    """Register the current schemas in the registry, under <topic>-value.

    Each schema goes under the subject of every topic it is written to (idempotent: a
    registered schema keeps its id). The stages also register on first use; this does
    it ahead of time, e.g. for NEWSWIRE_SERDE__REGISTRY_AUTO_REGISTER=false.
    """
    try:
        serde = _registry(registry, directory)
        table = Table("subject", "record", "schema id")
        for name, record in _topics(topic).items():
            table.add_row(f"{name}-value", record, str(serde.register(record, topic=name)))
    except NewswireError as exc:
        raise fail(exc) from exc
    out.print(table)
