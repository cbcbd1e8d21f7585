"""``python -m newswire`` runs the CLI."""

from newswire.cli import main

main()
