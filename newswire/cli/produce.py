"""``newswire produce``: documents, JSON lines and RSS/Atom feeds to articles.raw.

Sources are found through the registry (entry points ``newswire.sources``), the
built-in ones exactly like plug-ins; ``--format auto`` picks one per path by
its suffix (``.txt``/``.md`` documents, ``.jsonl``/``.ndjson`` JSON lines,
``.rss``/``.atom``/``.xml``/``.rdf`` feeds), ``-`` is JSON lines on stdin, an
``http(s)://`` URL a feed fetched once, and a file of unknown suffix is
sniffed from its first bytes. ``--follow URL`` polls feeds until stopped.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import CollectorRegistry
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from newswire import registry as plugins
from newswire.cli.common import (
    EXIT_FAILED,
    EXIT_REJECTED,
    Bootstrap,
    console,
    fail,
    load_settings,
    out,
    raise_on_sigterm,
    usage_error,
)
from newswire.errors import ConfigError, NewswireError
from newswire.publisher import Publisher, PublishSummary
from newswire.settings import Settings
from newswire.source import RejectsFile, Scan, Source, detect_file, scan
from newswire.topics import ensure_topics

log = logging.getLogger(__name__)

AUTO = "auto"
FOLLOW = "follow"
STDIN = "-"
_DEFAULT_FORMAT = "documents"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``300``, ``30s``, ``5m``, ``1h30m``, ``500ms``."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ConfigError(
                f"not a duration: {text!r} (examples: 30s, 5m, 1h30m)", value=text
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"a duration must be positive, got {text!r}", value=text)
    return seconds


def _source_classes() -> dict[str, type[Source]]:
    return {
        found.name: plugins.load(plugins.SOURCES, found.name)
        for found in plugins.available(plugins.SOURCES)
        if found.name != FOLLOW
    }


def detect(path: str, classes: dict[str, type[Source]]) -> str:
    """The source name for one path that is not a directory.

    A file no source recognises goes to the documents source, which says why it
    is not a document (a file named on the command line is never skipped quietly).
    """
    if path == STDIN:
        found = next((n for n, c in classes.items() if c.stdin), None)
        if found is None:
            raise ConfigError("no registered source reads standard input ('-')")
        return found
    scheme = path.partition("://")[0].lower() if "://" in path else ""
    if scheme:
        found = next((n for n, c in classes.items() if scheme in c.schemes), None)
        if found is None:
            raise ConfigError(f"no registered source reads {scheme}:// URLs: {path}", path=path)
        return found
    name, _why = detect_file(Path(path), classes)
    return name or (_DEFAULT_FORMAT if _DEFAULT_FORMAT in classes else next(iter(classes)))


def report_skipped(found: Scan) -> None:
    """One line with a count per reason of what directories held and nothing reads;
    each name at DEBUG."""
    for path, why in found.skipped_paths:
        log.debug("skipped %s: %s", path, why)
    if found.skipped:
        total = sum(found.skipped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in found.skipped.most_common())
        console.print(
            f"skipped {total} file{'s' if total != 1 else ''} in directories: {reasons}"
            " (names at DEBUG)",
            markup=False,
            highlight=False,
        )


def build_sources(
    paths: list[str],
    settings: Settings,
    *,
    fmt: str = AUTO,
    follow: list[str] | None = None,
) -> list[Source]:
    """The sources for *paths* (by ``--format`` or detected) and the feed follower.

    With ``--format auto`` a directory's files are matched by suffix, else sniffed
    (:func:`~newswire.source.scan`); what no source reads is reported, not read.
    """
    sources: list[Source] = []
    if paths:
        if fmt != AUTO:
            source_class = plugins.load(plugins.SOURCES, fmt)
            sources.append(source_class.from_paths(paths, settings.producer))
        else:
            classes = _source_classes()
            grouped: dict[str, list[str]] = defaultdict(list)
            directories = [
                Path(p) for p in paths if p != STDIN and "://" not in p and Path(p).is_dir()
            ]
            found = scan(directories, classes)
            report_skipped(found)
            for name, files in found.files.items():
                grouped[name].extend(files)
            for path in paths:
                if path == STDIN or "://" in path or not Path(path).is_dir():
                    grouped[detect(path, classes)].append(path)
            for name, names in grouped.items():
                sources.append(classes[name].from_paths(names, settings.producer))
    if follow:
        follower_class = plugins.load(plugins.SOURCES, FOLLOW)
        sources.append(follower_class.from_paths(follow, settings.producer))
    for source in sources:
        model = type(source).settings_model
        if model is not None:
            source.config = settings.section(source.name or type(source).__name__, model)
    return sources


class _CountColumn(ProgressColumn):
    """``7,031/20,000`` when the total is known, else ``7,031 read``."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(f"{done:,} read", style="progress.download")
        return Text(f"{done:,}/{int(task.total):,}", style="progress.download")


class _RateColumn(ProgressColumn):
    """Items per second over rich's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed is not None else "…/s", style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    """``eta 0:00:04`` when there is a total and a rate; nothing otherwise."""

    max_refresh = 0.5  # an ETA that changes every frame cannot be read

    def render(self, task: Task) -> Text:
        remaining = task.time_remaining
        if remaining is None:
            return Text("")
        minutes, seconds = divmod(int(remaining), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"eta {hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def progress_totals(sources: list[Source]) -> tuple[int | None, str]:
    """(items to read, or None when a source cannot say cheaply; what, for the bar)."""
    counts = [s.count() for s in sources]
    total = sum(c for c in counts if c is not None) if None not in counts else None
    sizes = [s.size() for s in sources]
    what = "producing"
    if sizes and None not in sizes:
        what += f" {_human_bytes(sum(s for s in sizes if s is not None))}"
    return total, what


def _stop_on_signals(sources: list[Source]) -> list[int]:
    """Feeds alone: SIGTERM and Ctrl-C end the followers gracefully, so the publisher's last
    flush waits (its full timeout) for the records in flight and commits their feed state.

    Raising KeyboardInterrupt instead may land inside a delivery report callback, which
    loses that report (a written record then counts as unconfirmed). A second signal
    interrupts. Returns the signals received (empty until a stop was asked for).
    """
    received: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise_on_sigterm()
        # From a thread: stop() sets an Event, whose lock this (main) thread may hold now.
        for source in sources:
            threading.Thread(target=source.stop).start()  # type: ignore[attr-defined]

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return received


def publish(
    publisher: Publisher, sources: list[Source], rejects: RejectsFile, progress: bool
) -> PublishSummary:
    """Publish with a progress bar when *progress* (never for a follower: it does not end).

    The bar shows what was read against the total when the sources can count
    cheaply (files, lines, feed entries), the input's size, the rate and an ETA.
    """
    if not progress:
        return publisher.publish(sources, rejects=rejects)
    total, what = progress_totals(sources)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        _CountColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        _EtaColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        return publisher.publish(
            sources, rejects=rejects, on_progress=lambda n: bar.advance(task, n)
        )


def print_produce_summary(summary: PublishSummary, rejects: RejectsFile) -> None:
    out.print(
        f"read {summary.read} documents: {summary.sent} sent, {summary.rejected} rejected, "
        f"{summary.failed} failed, in {summary.elapsed_s:.1f}s ({summary.rate:,.0f} docs/s)"
    )
    if summary.rejected:
        kinds = ", ".join(f"{k} {n}" for k, n in summary.rejects_by_kind.most_common())
        where = f"; rejects in {rejects.path}" if rejects.path is not None else ""
        out.print(f"rejected by reason: {kinds}{where}")


def quiet_http_logs() -> None:
    """httpx logs every request at INFO: a feed follower's polls would drown the log."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def producer_overrides(
    *,
    workers: int | None,
    every: str | None,
    state: Path | None,
    rejects: Path | None = None,
) -> dict[str, Any]:
    """``load_settings`` overrides of the producing options shared by produce and run."""
    return {
        "producer__workers": workers,
        "producer__feed_every_s": parse_duration(every) if every else None,
        "producer__feed_state_path": state,
        "producer__rejects_path": rejects,
    }


Format = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="auto (by suffix, then content), or a source name: documents, jsonl, feed.",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w", min=1, help="Processes that parse and encode (default: one per core)."
    ),
]
Follow = Annotated[
    list[str] | None,
    typer.Option("--follow", help="Poll this RSS/Atom feed URL until stopped (repeatable)."),
]
Every = Annotated[
    str | None, typer.Option(help="--follow: time between polls, e.g. 30s, 5m (default 5m).")
]
State = Annotated[
    Path | None,
    typer.Option(help="--follow: feed state file (default newswire-feeds.sqlite)."),
]


def produce(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Documents, JSON lines (- for stdin), RSS/Atom files or URLs; directories "
            "are searched recursively."
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    fmt: Format = AUTO,
    workers: Workers = None,
    follow: Follow = None,
    every: Every = None,
    state: State = None,
    rejects: Annotated[Path | None, typer.Option(help="JSONL file of rejected documents.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics on this port (0: free); --follow does.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate documents, JSON lines and feed entries and send them to articles.raw."""
    try:
        settings = load_settings(
            bootstrap,
            metrics__port=metrics_port,
            **producer_overrides(workers=workers, every=every, state=state, rejects=rejects),
        )
    except NewswireError as exc:
        raise fail(exc) from exc
    quiet_http_logs()
    if not paths and not follow:
        usage_error("give PATHS to produce, or --follow URL", "PATHS")
    raise_on_sigterm()
    rejects_file = RejectsFile(settings.producer.rejects_path)
    registry = CollectorRegistry()
    publisher = Publisher(settings, registry=registry)
    interrupted = False
    stopping: list[int] = []
    try:
        sources = build_sources(paths or [], settings, fmt=fmt, follow=follow)
        if follow and not paths:
            stopping = _stop_on_signals(sources)
        ensure_topics(settings.kafka)
        if follow or metrics_port is not None:
            _serve_metrics(settings, registry)
        summary = publish(publisher, sources, rejects_file, progress and not follow)
    except KeyboardInterrupt:
        interrupted = True
        summary = publisher.summary
    except NewswireError as exc:
        raise fail(exc) from exc
    finally:
        publisher.close()
        rejects_file.close()
    if interrupted or stopping:
        console.print("stopped")
    print_produce_summary(summary, rejects_file)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTED)


def _serve_metrics(settings: Settings, registry: CollectorRegistry) -> None:
    if not settings.metrics.enabled:
        return
    from newswire.metrics import serve_metrics
    from newswire.status import PRODUCER, announce

    _server, port = serve_metrics(registry, settings.metrics.host, settings.metrics.port)
    if settings.metrics.port_file is not None:
        settings.metrics.port_file.write_text(str(port))
    # Found by `newswire status --targets` like the stages are.
    announce(
        settings.metrics,
        consumer="producer",
        group="",
        port=port,
        bootstrap=settings.kafka.bootstrap,
        role=PRODUCER,
    )
