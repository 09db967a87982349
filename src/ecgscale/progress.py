"""Progress reporting: what library code tells a display, and the one display ecgscale draws.

Library code (the cache build, training, prediction, synthesis, sweeps) never builds a progress bar: it reports
through a :class:`Progress`. ``progress.task(kind, total=...)`` starts a counted task (a
:class:`ProgressTask`: ``advance``, ``update``, ``restart``, ``note``, then ``close``); ``progress.status(text)``
covers work with no count (finding records). The CLI passes the reporter in; the Python API's
``progress=True``/``False`` resolve through :func:`as_progress` to :class:`RichProgress` / :data:`NO_PROGRESS`,
so both draw the same bars.

How each kind of task looks (its columns, stdout or stderr, kept or cleared when done) is the one table
``_LAYOUTS`` below; ``rich`` is imported when the first bar is drawn. A user's own reporter (a log line per
epoch, a notebook widget) implements the two protocols.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["NO_PROGRESS", "NoProgress", "Progress", "ProgressTask", "RichProgress", "as_progress"]


class ProgressTask(Protocol):
    """One counted task: ``total`` steps (``None``: unknown), shown until :meth:`close`."""

    def advance(self, n: int = 1, **fields: Any) -> None:
        """``n`` more steps done; ``fields`` are the task's named values (training: ``loss``)."""

    def update(self, *, completed: int | None = None, **fields: Any) -> None:
        """Set the count of steps done and/or named values."""

    def restart(self, *, total: int | None, completed: int = 0, description: str | None = None) -> None:
        """Count again from ``completed`` (a new epoch): the task's clock starts over."""

    def note(self, text: str) -> bool:
        """Show a line of text with the task; ``False`` when nothing shows it (the caller may log it instead)."""

    def close(self) -> None:
        """The task is over (called once, also on errors)."""


class Progress(Protocol):
    """What library code reports progress to: counted tasks and uncounted statuses."""

    def task(self, kind: str, *, total: int | None, description: str | None = None, **fields: Any) -> ProgressTask:
        """Start a task. ``kind`` names what is counted (``prepare``, ``train``, ``predict``, ``synth``,
        ``sweep``) and picks its look; ``description`` (default ``kind``) is its title; ``fields`` the initial
        named values."""

    def status(self, text: str) -> contextlib.AbstractContextManager[Any]:
        """Work with no count, shown while the ``with`` block runs."""


class _NoTask:
    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def update(self, *, completed: int | None = None, **fields: Any) -> None:
        pass

    def restart(self, *, total: int | None, completed: int = 0, description: str | None = None) -> None:
        pass

    def note(self, text: str) -> bool:
        return False

    def close(self) -> None:
        pass


class NoProgress:
    """Reports nowhere. Falsy, as ``progress=False`` is, so ``progress and is_main`` keeps its meaning."""

    def task(self, kind: str, *, total: int | None, description: str | None = None, **fields: Any) -> ProgressTask:
        return _NoTask()

    def status(self, text: str) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def __bool__(self) -> bool:
        return False


NO_PROGRESS = NoProgress()


@dataclass(frozen=True, slots=True)
class _Layout:
    """A bar's columns (names in ``_column``), whether it draws on stderr (commands whose stdout carries the
    result) and whether it is cleared when done."""

    columns: tuple[str, ...]
    stderr: bool = False
    transient: bool = False


_LAYOUTS: dict[str, _Layout] = {
    "prepare": _Layout(("title", "bar", "count", "rate", "elapsed", "remaining"), stderr=True),
    "train": _Layout(("title", "bar", "count", "loss", "val", "elapsed")),
    "predict": _Layout(("title", "bar", "count", "elapsed"), stderr=True, transient=True),
    "synth": _Layout(("name", "bar", "count", "remaining"), transient=True),
    "sweep": _Layout(("title", "bar", "count", "elapsed")),
}
_DEFAULT_LAYOUT = _Layout(("title", "bar", "count", "elapsed"))


def _column(name: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns: dict[str, Callable[[], Any]] = {
        "title": lambda: TextColumn("[bold]{task.description}"),
        "name": lambda: TextColumn("{task.description}"),
        "bar": BarColumn,
        "count": MofNCompleteColumn,
        "rate": lambda: TextColumn("{task.fields[rate]}"),  # records per second, see _RichTask.advance
        "loss": lambda: TextColumn("loss {task.fields[loss]:.4f}"),
        "val": lambda: TextColumn("{task.fields[val]}"),
        "elapsed": TimeElapsedColumn,
        "remaining": TimeRemainingColumn,
    }
    return columns[name]()


class _RichTask:
    """One rich ``Progress`` with one task, started when made."""

    def __init__(self, layout: _Layout, *, total: int | None, description: str, fields: dict[str, Any]) -> None:
        from rich.console import Console
        from rich.progress import Progress as RichBar

        self._rate = "rate" in layout.columns
        if self._rate:
            fields = {"rate": "", **fields}
        self._done = 0
        self._t0 = time.perf_counter()
        console = Console(stderr=True) if layout.stderr else None  # None: rich's own console on stdout
        self._bar = RichBar(*map(_column, layout.columns), console=console, transient=layout.transient)
        self._bar.start()
        self._id = self._bar.add_task(description, total=total, **fields)

    def advance(self, n: int = 1, **fields: Any) -> None:
        self._done += n
        if self._rate:
            fields["rate"] = f"{self._done / max(time.perf_counter() - self._t0, 1e-9):,.0f} rec/s"
        self._bar.update(self._id, advance=n, **fields)

    def update(self, *, completed: int | None = None, **fields: Any) -> None:
        self._bar.update(self._id, completed=completed, **fields)

    def restart(self, *, total: int | None, completed: int = 0, description: str | None = None) -> None:
        self._bar.reset(self._id, total=total, completed=completed, description=description)

    def note(self, text: str) -> bool:
        self._bar.console.print(text, highlight=False)
        return True

    def close(self) -> None:
        self._bar.stop()


class RichProgress:
    """The bars and spinner of the ``ecgscale`` commands (rich), one look per task kind (``_LAYOUTS``).

    Holds no state until a task starts, so it can be passed to a child process."""

    def task(self, kind: str, *, total: int | None, description: str | None = None, **fields: Any) -> ProgressTask:
        layout = _LAYOUTS.get(kind, _DEFAULT_LAYOUT)
        return _RichTask(layout, total=total, description=kind if description is None else description, fields=fields)

    def status(self, text: str) -> contextlib.AbstractContextManager[Any]:
        from rich.console import Console

        return Console(stderr=True).status(text)


def as_progress(progress: bool | Progress | None) -> Progress:
    """The reporter for a ``progress`` argument: ``True`` the default display (:class:`RichProgress`),
    ``False``/``None`` :data:`NO_PROGRESS`, a :class:`Progress` itself."""
    if progress is None or isinstance(progress, bool):
        return RichProgress() if progress else NO_PROGRESS
    return progress
