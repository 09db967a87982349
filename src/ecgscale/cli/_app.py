"""The one typer application; command modules register on it (``cli/<area>.py``)."""

from __future__ import annotations

import errno
import logging
import os

import typer
from rich.console import Console
from rich.logging import RichHandler

__all__ = ["app", "console", "disk_error_message", "err_console", "typed_on_command_line"]

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


_DISK_HINTS = {
    errno.ENOSPC: "free some space (or choose another output folder) and run the same command again",
    errno.EDQUOT: "your disk quota is used up; free some space and run the same command again",
    errno.EFBIG: "the file is larger than this filesystem allows; choose another output folder",
    errno.EROFS: "choose an output folder on a writable disk",
    errno.EACCES: "check its permissions (or choose another output folder)",
    errno.EPERM: "check its permissions (or choose another output folder)",
}
_WRITE_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})  # "cannot write"; else "cannot access"


def disk_error_message(exc: BaseException) -> str | None:
    """One line for a disk that cannot take a write (full, read-only, no permission, quota), else ``None``.

    Why: on a shared machine a full or read-only disk is an everyday event, not a bug; the user needs the
    file and the OS reason ("No space left on device"), not a traceback. Every ecgscale writer names the file
    (``ecgscale.fileio.as_disk_error``); an error without one still gets its reason printed.
    """
    if not isinstance(exc, OSError) or exc.errno not in _DISK_HINTS:
        return None
    reason = exc.strerror or os.strerror(exc.errno)
    verb = "cannot write" if exc.errno in _WRITE_ONLY else "cannot access"  # a permission error may be a read
    where = f"{verb} {os.fsdecode(exc.filename)}: " if exc.filename is not None else f"{verb}: "
    return f"{where}{reason}; {_DISK_HINTS[exc.errno]}"


def typed_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` (its Python parameter name) was given by the user, not left at its default: a
    recipe fills only the options the user did not type."""
    from click.core import ParameterSource

    source = ctx.get_parameter_source(name)
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
