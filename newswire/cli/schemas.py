"""``newswire schemas list`` and ``newswire schemas check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newswire.cli.common import EXIT_FAILED, fail, out
from newswire.compat import check_store, describe
from newswire.errors import NewswireError
from newswire.serde import SchemaStore

schemas_app = typer.Typer(help="The Avro contracts in schemas/.", no_args_is_help=True)

Directory = Annotated[
    Path | None, typer.Option(help="Schema directory [default: newswire's own schemas/].")
]


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
def schemas_check(directory: Directory = None) -> None:
    """Check each current schema against its earlier versions (schemas/history/<record>/*.avsc):
    only fully compatible changes are allowed (new fields with defaults)."""
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
    if problems:
        raise typer.Exit(EXIT_FAILED)
