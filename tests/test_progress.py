"""``ecgscale.progress``: the reporter a ``progress`` argument means, the no-op, the rich display, and library code
reporting through a user's own reporter instead of drawing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecgscale.progress import _LAYOUTS, NO_PROGRESS, RichProgress, as_progress


class _Task:
    def __init__(self, log: list[tuple[Any, ...]], kind: str) -> None:
        self.log, self.kind = log, kind

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.log.append(("advance", self.kind, n))

    def update(self, *, completed: int | None = None, **fields: Any) -> None:
        self.log.append(("update", self.kind, completed))

    def restart(self, *, total: int | None, completed: int = 0, description: str | None = None) -> None:
        self.log.append(("restart", self.kind, total, completed, description))

    def note(self, text: str) -> bool:
        self.log.append(("note", self.kind, text))
        return True

    def close(self) -> None:
        self.log.append(("close", self.kind))


class _Recorder:
    """A user's own reporter: records what library code reports."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def task(self, kind: str, *, total: int | None, description: str | None = None, **fields: Any) -> _Task:
        self.log.append(("task", kind, total))
        return _Task(self.log, kind)

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        self.log.append(("status", text.split(" ")[0]))
        yield


def test_as_progress() -> None:
    assert isinstance(as_progress(True), RichProgress)
    assert as_progress(False) is NO_PROGRESS and as_progress(None) is NO_PROGRESS
    assert not NO_PROGRESS  # falsy, as progress=False: `progress and is_main` keeps its meaning
    own = _Recorder()
    assert as_progress(own) is own


def test_no_progress_shows_nothing() -> None:
    task = NO_PROGRESS.task("train", total=3, loss=0.0, val="")
    task.advance(loss=1.0)
    task.update(completed=2)
    task.restart(total=3, completed=1, description="epoch 2/2")
    assert task.note("epoch 1/2: ...") is False  # the caller logs the line instead
    task.close()
    with NO_PROGRESS.status("finding records"):
        pass


@pytest.mark.parametrize("kind", [*sorted(_LAYOUTS), "other"])
def test_rich_progress_draws_every_kind(kind: str) -> None:
    task = RichProgress().task(kind, total=4, loss=float("nan"), val="")
    try:
        task.advance(loss=0.5)
        task.update(completed=2, val="auroc 0.900")
        task.restart(total=4, completed=1, description=f"{kind} again")
        assert task.note("a line above the bar") is True
    finally:
        task.close()


def test_rich_prepare_rate_is_records_per_second() -> None:
    task = RichProgress().task("prepare", total=None)
    try:
        task.advance()
        fields = task._bar.tasks[0].fields  # type: ignore[attr-defined]
        assert fields["rate"].endswith(" rec/s")
    finally:
        task.close()


def test_library_reports_through_a_given_reporter(tmp_path: Path) -> None:
    from ecgscale.data.cache import build_cache
    from ecgscale.synth import generate

    rec = _Recorder()
    generate(tmp_path / "synth", n=6, seed=0, progress=rec, workers=1)
    assert rec.log[0] == ("task", "synth", 6)
    assert sum(e[2] for e in rec.log if e[0] == "advance") == 6 and rec.log[-1] == ("close", "synth")

    rec.log.clear()
    build_cache([tmp_path / "synth"], tmp_path / "cache", workers=1, progress=rec)
    assert rec.log[0] == ("status", "finding") and rec.log[1] == ("task", "prepare", 6)
    assert [e for e in rec.log if e[0] == "advance"] == [("advance", "prepare", 1)] * 6
    assert rec.log[-1] == ("close", "prepare")
