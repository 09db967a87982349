"""Two writers on one cache, one run directory, one study: the second is refused or shares the work cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reliability.faults import concurrency
from reliability.postgres import PostgresUnavailable

from ecgscale.errors import ConfigError
from ecgscale.fileio import writer_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from ecgscale.fileio import writer_lock
    with writer_lock(sys.argv[1], guards=sys.argv[2], action="ecgscale prepare", hint="wait"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def _holder(lock: Path, guards: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(guards)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_writer_lock_refuses_names_holder_and_dies_with_it(tmp_path: Path) -> None:
    lock, guards = tmp_path / ".c.lock", tmp_path / "c"
    holder = _holder(lock, guards)
    try:
        with pytest.raises(ConfigError) as err, writer_lock(lock, guards=guards, action="x", hint="choose another"):
            pass
        text = str(err.value)
        assert f"another `ecgscale prepare` (pid {holder.pid} on host" in text
        assert f"is writing {guards}; choose another" in text
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: the kernel drops the flock, no stale lock
        holder.wait()
    # re-entrant in one process
    with writer_lock(lock, guards=guards, action="x", hint="h"), writer_lock(lock, guards=guards, action="x", hint="h"):
        assert (tmp_path / ".c.lock.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # a clean release leaves nothing


def test_two_prepares_on_one_out(tmp_path: Path) -> None:
    result = concurrency.prepare_twice_same_out(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


def test_prepare_killed_leaves_no_stale_lock(tmp_path: Path) -> None:
    result = concurrency.prepare_killed_lock_released(tmp_path, iterations=2, seed=0)
    assert result.passed, result.summary()


@pytest.mark.slow
def test_two_trains_into_one_run_dir(tmp_path: Path) -> None:
    result = concurrency.train_twice_same_run_dir(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.slow
def test_two_sqlite_sweep_workers(tmp_path: Path) -> None:
    result = concurrency.sweep_two_workers_sqlite(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_postgres_sweep_workers(tmp_path: Path, require_or_skip) -> None:
    try:
        result = concurrency.sweep_two_workers_postgres(tmp_path, iterations=1, seed=0)
    except PostgresUnavailable as exc:
        require_or_skip(str(exc))
    assert result.passed, result.summary()
