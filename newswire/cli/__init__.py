"""The ``newswire`` command line (typer)."""

from newswire.cli.app import app, main

__all__ = ["app", "main"]
