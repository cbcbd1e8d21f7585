"""What every command shares: settings from env + options, consoles, exit statuses."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from newswire.errors import NewswireError
from newswire.settings import Settings, unknown_variables

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_STATUS_HELP",
    "EXIT_USAGE",
    "Bootstrap",
    "configure_logging",
    "console",
    "fail",
    "load_settings",
    "log_libraries_to",
    "out",
    "print_json",
    "raise_on_sigterm",
    "usage_error",
]

#: Width of stdout when it is not a terminal: rich would squeeze tables to 80 columns
#: (cut names, wrapped rows); piped, a row stays one line however long. COLUMNS still wins.
PIPED_WIDTH = 10_000


def _stdout_width() -> int | None:
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return None  # rich's own choice: COLUMNS, else the terminal's width
    return PIPED_WIDTH


console = Console(stderr=True)
out = Console(width=_stdout_width())

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", "-b", help="Kafka bootstrap HOST:PORT [env NEWSWIRE_KAFKA__BOOTSTRAP]"
    ),
]

# Exit statuses: one rule for every command (EXIT_STATUS_HELP, README's CLI section).
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2  # click's own status for a usage error
EXIT_FAILED = 3

#: The epilog of every command's --help.
EXIT_STATUS_HELP = (
    "Exit status: 0 all done; 1 some input rejected or records dead-lettered "
    "(articles show: no such article); 2 usage error; 3 failure."
)


def load_settings(
    bootstrap: str | None = None, *, stage: bool = False, **overrides: Any
) -> Settings:
    """Settings from the environment and the options; logging set up (see
    :func:`configure_logging`; *stage*: this process is a stage, its stderr its log)."""
    settings = Settings()
    if bootstrap:
        settings.kafka.bootstrap = bootstrap
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, name = dotted.partition("__")
        setattr(getattr(settings, section), name, value)
    configure_logging(settings, stage=stage)
    warn_unknown_variables()
    return settings


#: Loggers whose records are newswire's own lines, the ones the console shows.
OWN_LOGGERS = ("newswire", "consumers", "producers", "__main__")
#: Where a command other than `run` and `consume` writes the libraries' log records.
LIBRARY_LOG = "library.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _own(record: logging.LogRecord) -> bool:
    return any(record.name == p or record.name.startswith(p + ".") for p in OWN_LOGGERS)


class _Handlers:
    console: logging.Handler | None = None
    library: logging.Handler | None = None


def configure_logging(settings: Settings, *, stage: bool = False) -> None:
    """Console (stderr): newswire's own lines at ``NEWSWIRE_LOG_LEVEL``.

    The Kafka clients' chatter (kafka-python's "Task … ran for 0.301s … blocking
    the event loop", the harmless ``'NoneType' object has no attribute 'recv'``
    traceback it logs when a connection closes on shutdown) is no news to a user:
    libraries' records (WARNING and up; kafka-python's INFO is per-connection noise)
    go to a log file instead — ``library.log`` in the runtime directory, or the run's
    work directory (:func:`log_libraries_to`). A *stage* process (``consume``) writes
    everything to stderr: that is its log (``newswire run`` keeps one a stage).
    """
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if _Handlers.console is None:
        _Handlers.console = logging.StreamHandler(sys.stderr)
        _Handlers.console.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(_Handlers.console)
    for old in list(_Handlers.console.filters):
        _Handlers.console.removeFilter(old)
    if stage:
        log_libraries_to(None)
        return
    _Handlers.console.addFilter(_own)
    if _Handlers.library is None:
        from newswire.status import runtime_dir

        log_libraries_to(runtime_dir(settings.metrics) / LIBRARY_LOG)


def log_libraries_to(path: Path | None) -> None:
    """Send the libraries' log records to *path* (opened on the first record); None: none."""
    root = logging.getLogger()
    if _Handlers.library is not None:
        root.removeHandler(_Handlers.library)
        _Handlers.library.close()
        _Handlers.library = None
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(lambda record: not _own(record))
    root.addHandler(handler)
    _Handlers.library = handler


_warned = False


def warn_unknown_variables() -> None:
    """Warn once per process about each ``NEWSWIRE_*`` variable no setting reads."""
    global _warned
    if _warned:
        return
    _warned = True
    for name, closest in unknown_variables(dict(os.environ)):
        hint = f"; did you mean {closest}?" if closest else ""
        logging.getLogger("newswire.settings").warning(
            "%s is not a newswire setting and is ignored%s", name, hint
        )


def fail(exc: NewswireError) -> typer.Exit:
    """Print *exc* as one ``error:`` line; the Exit (status 3) for the caller to raise."""
    # One line, however narrow the terminal (or none): operators grep for it.
    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
    return typer.Exit(EXIT_FAILED)


def usage_error(message: str, option: str | None = None) -> NoReturn:
    """Options that contradict each other or are missing: a usage message, exit status 2."""
    raise typer.BadParameter(message, param_hint=option)


def print_json(value: Any) -> None:
    """One JSON document on stdout (``json.load`` reads it whole): no markup, no wrapping."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def raise_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so ``finally`` blocks clean up."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
