"""``newswire dlq list`` and ``newswire dlq replay``."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from newswire.cli.common import (
    EXIT_FAILED,
    Bootstrap,
    console,
    fail,
    load_settings,
    out,
    print_json,
    usage_error,
)
from newswire.dlq import DeadLetter, read_dead_letters, replay, replayed_letters
from newswire.errors import NewswireError

dlq_app = typer.Typer(help="The dead-letter topic (articles.dlq).", no_args_is_help=True)

Stage = Annotated[str | None, typer.Option(help="Only records dead-lettered by this stage.")]
Error = Annotated[str | None, typer.Option(help="Only records that failed with this error class.")]


def _matching(letters: list[DeadLetter], stage: str | None, error: str | None) -> list[DeadLetter]:
    return [
        letter
        for letter in letters
        if (stage is None or letter.stage == stage)
        and (error is None or letter.error_class == error)
    ]


def letter_record(
    partition: int, offset: int, letter: DeadLetter, *, payload: bool = False
) -> dict[str, Any]:
    """A dead letter as JSON: the same fields in ``dlq list --json``/``--jsonl`` and in
    ``run --dlq-out`` (``dlq_partition``/``dlq_offset``: where it is on the DLQ; the error
    headers as fields; ``bytes``: the value's size; with *payload*, ``key`` and ``value``
    base64)."""
    record: dict[str, Any] = {
        "dlq_partition": partition,
        "dlq_offset": offset,
        **{k: v for k, v in asdict(letter).items() if k not in ("key", "value")},
        "bytes": len(letter.value),
    }
    if payload:
        record["key"] = base64.b64encode(letter.key).decode() if letter.key is not None else None
        record["value"] = base64.b64encode(letter.value).decode()
    return record


@dlq_app.command("list")
def dlq_list(
    bootstrap: Bootstrap = None,
    stage: Stage = None,
    error: Error = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array of the letters instead of a table.")
    ] = False,
    as_jsonl: Annotated[
        bool, typer.Option("--jsonl", help="JSON lines: one letter (object) a line.")
    ] = False,
) -> None:
    """Show the records on the DLQ: where they came from and why they failed.

    --json and --jsonl print the same fields: dlq_partition, dlq_offset, stage,
    error_class, error_message, source_topic, source_partition, source_offset,
    attempts, first_failure, bytes.
    """
    if as_json and as_jsonl:
        usage_error("--json and --jsonl: choose one", "--jsonl")
    settings = load_settings(bootstrap)
    try:
        found = read_dead_letters(settings.kafka)
    except NewswireError as exc:
        raise fail(exc) from exc
    wanted = set(map(id, _matching([letter for _, _, letter in found], stage, error)))
    rows = [(p, o, letter) for p, o, letter in found if id(letter) in wanted]
    if as_json:
        print_json([letter_record(p, o, letter) for p, o, letter in rows])
        return
    if as_jsonl:
        for partition, offset, letter in rows:
            typer.echo(json.dumps(letter_record(partition, offset, letter), ensure_ascii=False))
        return
    table = Table("dlq", "stage", "error", "message", "source", "attempts", "first failure")
    for partition, offset, letter in rows:
        table.add_row(
            f"{partition}/{offset}",
            letter.stage,
            letter.error_class,
            letter.error_message[:80],
            f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}",
            str(letter.attempts),
            letter.first_failure,
        )
    out.print(table)
    out.print(f"{len(rows)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    bootstrap: Bootstrap = None,
    stage: Stage = None,
    error: Error = None,
    dry_run: Annotated[
        bool, typer.Option(help="Say what would be replayed; send nothing.")
    ] = False,
    again: Annotated[
        bool, typer.Option(help="Also send letters an earlier replay already sent.")
    ] = False,
) -> None:
    """Send dead letters back to their source topic once the cause is fixed — once: each
    acknowledged letter is marked on articles.dlq.replayed and later replays skip it.

    Exit status: 0 every selected letter acknowledged (or already replayed), 3 the broker
    did not acknowledge some (they stay unmarked: run it again)."""
    settings = load_settings(bootstrap)
    try:
        found = read_dead_letters(settings.kafka)
        wanted = set(map(id, _matching([letter for _, _, letter in found], stage, error)))
        letters = [item for item in found if id(item[2]) in wanted]
        if dry_run:
            done = set() if again else replayed_letters(settings.kafka)
            todo = [item for item in letters if (item[0], item[1]) not in done]
            out.print(
                f"would replay {len(todo)} record(s); {len(letters) - len(todo)} already replayed"
            )
            return
        result = replay(settings.kafka, settings.producer, letters, again=again)
    except NewswireError as exc:
        raise fail(exc) from exc
    out.print(
        f"replayed {len(result.acknowledged)} record(s) to their source topics (acknowledged)"
    )
    if result.already:
        out.print(f"{len(result.already)} record(s) already replayed before: not sent again")
    if result.skipped:
        out.print(f"skipped {len(result.skipped)} record(s) without a source topic")
    if result.unmarked:
        console.print(
            f"[yellow]warning:[/yellow] {len(result.unmarked)} replayed record(s) could not be "
            "marked as replayed; a later replay sends them again (harmless: idempotent)"
        )
    if result.failed:
        (partition, offset, first), why = result.failed[0]
        console.print(
            f"[red]error:[/red] {len(result.failed)} record(s) not acknowledged by the broker "
            f"at {settings.kafka.bootstrap}, e.g. dlq {partition}/{offset} → "
            f"{first.source_topic}: {why}"
        )
        raise typer.Exit(EXIT_FAILED)
