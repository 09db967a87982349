"""The build's display on stderr: a spinner while records are found, a bar while they are prepared (rich)."""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["progress_bar", "spinner"]


def spinner(enabled: bool, text: str) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console

    return Console(stderr=True).status(text)


def progress_bar(enabled: bool, total: int | None) -> contextlib.AbstractContextManager[Any]:
    """A rich ``Progress`` with a ``rate`` field (``None`` when not ``enabled``); ``total`` may be unknown."""
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]prepare"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
