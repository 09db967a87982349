"""Shared set-up of the fault scenarios: small seeded data, child processes, waiting and file fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from reliability.common import ecgscale_cmd

__all__ = [
    "CACHE_ARGS",
    "Child",
    "fingerprint",
    "one_line_error",
    "synth_tree",
    "tiny_cache",
    "train_args",
    "wait_for",
]

T = TypeVar("T")
# 100 Hz x 5 s windows, 10 s stored: a cache of 60 records is ~1.4 MB and trains in seconds.
CACHE_ARGS = ("--fs", "100", "--window", "5", "--max-store", "10", "--no-progress")


def train_args(epochs: int, *extra: str) -> tuple[str, ...]:
    """``ecgscale train`` options of a tiny deterministic run (D1-C8-K3, CPU fp32): seconds per epoch."""
    return ("-D", "1", "-C", "8", "-K", "3", "--epochs", str(epochs), "--batch-size", "16", "--precision", "fp32",
            "--device", "cpu", "--no-progress", *extra)  # fmt: skip


def synth_tree(folder: Path, *, n: int = 60, seed: int = 0) -> Path:
    """A seeded synthetic CinC 2021 tree (made once per folder)."""
    from ecgscale.synth import generate

    if not (folder / ".done").exists():
        generate(folder, n=n, seed=seed, format="cinc2021", progress=False, overwrite=True)
        (folder / ".done").write_text("")
    return folder


def tiny_cache(src: Path, out: Path) -> Path:
    """The tree prepared in-process with the same parameters as ``CACHE_ARGS`` (the reference for CLI builds)."""
    from ecgscale.data.cache import build_cache
    from ecgscale.data.transforms import PreprocessConfig

    build_cache([src], out, config=PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0), workers=1, progress=False)
    return out


def wait_for(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll until ``predicate`` is truthy; ``TimeoutError`` naming ``what`` (a set-up failure, not a verdict)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


class Child:
    """One ``ecgscale`` child process with its output in a log file; stop/continue/kill by pid."""

    def __init__(self, *args: str | os.PathLike[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        self._fh = open(log, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            ecgscale_cmd(*args),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Pause the command and its processes (``train``/``sweep`` train in a child they supervise), as Ctrl-Z
        pauses a terminal's job. The command first (stopped, it forks no new worker), then every process under
        it, so nothing is written once this returns."""
        from reliability.kill.harness import children_of

        os.kill(self.pid, signal.SIGSTOP)
        _wait_stopped(self.pid)
        self._stopped = children_of(self.pid)
        for pid in self._stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        for pid in self._stopped:
            _wait_stopped(pid)

    def cont(self) -> None:
        for pid in [self.pid, *getattr(self, "_stopped", [])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.cont()
                self.kill()
        self.wait(30)


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    """Return once ``pid`` is really stopped (state ``T`` in /proc) or gone: SIGSTOP is delivered asynchronously,
    and a process still running for a moment after ``kill`` returns could write after the caller's snapshot."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return  # gone, or no /proc (not Linux): nothing more to wait for
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.005)


def fingerprint(folder: Path, *, skip: Iterable[str] = ()) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest), lock files and ``skip`` names left out."""
    skipped = set(skip)
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".lock" not in p.name and p.name not in skipped:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_line_error(stderr: str, *, must: Iterable[str]) -> str | None:
    """``None`` if ``stderr`` is one ``error:`` line holding every string of ``must``, with no traceback; else why."""
    if "Traceback" in stderr:
        return f"traceback on stderr: {stderr.strip()[-400:]!r}"
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    if len(lines) != 1:
        return f"expected one 'error:' line, got {len(lines)}: {stderr.strip()[-400:]!r}"
    missing = [m for m in must if m not in lines[0]]
    if missing:
        return f"error line lacks {missing}: {lines[0]!r}"
    return None
