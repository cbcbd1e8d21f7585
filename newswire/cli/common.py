"""What every command shares: settings from env + options, consoles, exit statuses."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from newswire.errors import NewswireError
from newswire.settings import Settings, unknown_variables

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_STATUS_HELP",
    "EXIT_USAGE",
    "Bootstrap",
    "console",
    "fail",
    "load_settings",
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


def load_settings(bootstrap: str | None = None, **overrides: Any) -> Settings:
    settings = Settings()
    if bootstrap:
        settings.kafka.bootstrap = bootstrap
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, name = dotted.partition("__")
        setattr(getattr(settings, section), name, value)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    warn_unknown_variables()
    return settings


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
    console.print(f"[red]error:[/red] {exc}")
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
