"""``newswire status`` and ``newswire top``: per consumer group, live."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from newswire.cli.common import load_settings, out
from newswire.status import GroupStatus, discover, snapshot

Interval = Annotated[float, typer.Option(help="Seconds between the two scrapes of each rate.")]


def _table(groups: list[GroupStatus]) -> Table:
    table = Table(
        "group",
        "members",
        "in/s",
        "out/s",
        "consumed",
        "lag",
        "dlq",
        "state",
        title="newswire consumers",
    )
    for g in groups:
        table.add_row(
            g.group,
            str(g.members),
            f"{g.in_per_s:,.0f}",
            f"{g.out_per_s:,.0f}",
            f"{g.records_in:,.0f}",
            f"{g.lag:,.0f}",
            f"{g.dlq:,.0f}",
            "[red]dependency down[/red]" if g.unavailable else "ok",
        )
    if not groups:
        table.caption = "no consumer processes running on this host"
    return table


def status(
    interval: Interval = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Per consumer group on this host: members, records/s in and out, lag, DLQ count."""
    settings = load_settings()
    groups = snapshot(discover(settings.metrics), interval)
    if as_json:
        out.print_json(json.dumps([asdict(g) for g in groups]))
    else:
        out.print(_table(groups))


def top(interval: Interval = 1.0) -> None:
    """`status`, refreshed live until Ctrl-C."""
    settings = load_settings()
    try:
        with Live(_table([]), console=out, auto_refresh=False) as live:
            while True:
                live.update(_table(snapshot(discover(settings.metrics), interval)), refresh=True)
    except KeyboardInterrupt:
        pass
