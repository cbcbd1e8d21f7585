"""What every command shares: settings from env + options, consoles, exit statuses."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from newswire.errors import NewswireError
from newswire.settings import Settings, unknown_variables

__all__ = [
    "EXIT_FAILED",
    "EXIT_REJECTED",
    "Bootstrap",
    "console",
    "fail",
    "load_settings",
    "out",
    "raise_on_sigterm",
]

console = Console(stderr=True)
out = Console()

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", "-b", help="Kafka bootstrap HOST:PORT [env NEWSWIRE_KAFKA__BOOTSTRAP]"
    ),
]

# Exit statuses.
EXIT_REJECTED = 1
EXIT_FAILED = 3


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
    # One line, however narrow the terminal (or none): operators grep for it.
    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
    return typer.Exit(EXIT_FAILED)


def raise_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so ``finally`` blocks clean up."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
