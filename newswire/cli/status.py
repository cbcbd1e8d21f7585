"""``newswire status`` and ``newswire top``: per cluster and consumer group, live."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Column, Table

from newswire.cli.common import load_settings, out, print_json
from newswire.settings import Settings
from newswire.status import Announced, GroupStatus, discover, file_sd, on_cluster, snapshot

Interval = Annotated[float, typer.Option(help="Seconds between the two scrapes of each rate.")]
OnCluster = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        "-b",
        help="Only processes on this cluster (any of its HOST:PORT addresses).",
    ),
]


def _table(groups: list[GroupStatus]) -> Table:
    # The names are what the table is for: never cut them (the numbers give way first).
    names = [
        Column(header, no_wrap=True, min_width=max((len(v) for v in values), default=0))
        for header, values in (
            ("cluster", [g.cluster for g in groups]),
            ("group", [g.group for g in groups]),
        )
    ]
    table = Table(
        *names,
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
            g.cluster,
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


def _processes(settings: Settings, bootstrap: str | None) -> list[Announced]:
    return [p for p in discover(settings.metrics) if on_cluster(p, bootstrap)]


def status(
    interval: Interval = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    bootstrap: OnCluster = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            help="Write the /metrics URLs of the running processes to this file as Prometheus "
            "file_sd JSON (- for stdout) instead of showing the table.",
        ),
    ] = None,
) -> None:
    """Per cluster and consumer group on this host: members, records/s in and out, lag, DLQ."""
    settings = load_settings()
    processes = _processes(settings, bootstrap)
    if targets is not None:
        text = json.dumps(file_sd(processes), indent=2) + "\n"
        if str(targets) == "-":
            sys.stdout.write(text)
        else:
            # Written whole, then renamed: Prometheus never reads half a file.
            targets.parent.mkdir(parents=True, exist_ok=True)
            partial = targets.with_name(f".{targets.name}.tmp")
            partial.write_text(text)
            partial.replace(targets)
        return
    groups = snapshot(processes, interval)
    if as_json:
        print_json([asdict(g) for g in groups])
    else:
        out.print(_table(groups))


def top(interval: Interval = 1.0, bootstrap: OnCluster = None) -> None:
    """`status`, refreshed live until Ctrl-C."""
    settings = load_settings()
    try:
        with Live(_table([]), console=out, auto_refresh=False) as live:
            while True:
                groups = snapshot(_processes(settings, bootstrap), interval)
                live.update(_table(groups), refresh=True)
    except KeyboardInterrupt:
        pass
