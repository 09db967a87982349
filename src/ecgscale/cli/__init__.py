"""Command line: ``ecgscale <command> --help``. The only place that sets up logging, reads env vars and seeds."""

from __future__ import annotations

import logging
import sys

from rich.markup import escape

from ecgscale.cli import _app
from ecgscale.errors import EcgscaleError

# Importing a command module registers its commands on the shared app.
from ecgscale.cli import inspect as _inspect  # noqa: F401  isort: skip
from ecgscale.cli import prepare as _prepare  # noqa: F401  isort: skip
from ecgscale.cli import synth as _synth  # noqa: F401  isort: skip
from ecgscale.cli import rf as _rf  # noqa: F401  isort: skip
from ecgscale.cli import score as _score  # noqa: F401  isort: skip
from ecgscale.cli import train as _train  # noqa: F401  isort: skip
from ecgscale.cli import study as _study  # noqa: F401  isort: skip
from ecgscale.cli import report as _report  # noqa: F401  isort: skip
from ecgscale.cli import infer as _infer  # noqa: F401  isort: skip
from ecgscale.cli import leads as _leads  # noqa: F401  isort: skip

app = _app.app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: known errors print one clear line and exit 2, never a traceback."""
    try:
        # In non-standalone mode click returns typer.Exit's code instead of exiting: pass it on.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except EcgscaleError as exc:
        _app.err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _app.err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except OSError as exc:  # a full / read-only disk: one line naming the file, no traceback (-v adds it)
        line = _app.disk_error_message(exc)
        if line is None:
            raise
        logging.getLogger("ecgscale").debug("traceback of the disk error", exc_info=True)
        _app.err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
