"""The one typer application; command modules register on it (``cli/<area>.py``)."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.logging import RichHandler

__all__ = ["app", "console", "err_console"]

app = typer.Typer(
    name="ecgscale",
    help="Find the right scale of a 1-D ResNet for 12-lead ECG classification; train, evaluate, predict, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    """ecgscale command line. Every command has --help."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
