"""A full or read-only disk under prepare, train, sweep, synth, export and predict: one clear line, nothing
corrupted, and it recovers.

Mounts a real tmpfs (we are root here and in CI); skipped with the reason where mounting is not permitted
(a failure under CI).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from reliability.faults import disk
from reliability.faults.tmpfs import fill, mount_unavailable_reason, tmpfs

from ecgscale.cli._app import disk_error_message
from ecgscale.fileio import as_disk_error, write_text_atomic


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory: pytest.TempPathFactory, require_or_skip) -> None:
    why = mount_unavailable_reason(tmp_path_factory.mktemp("probe"))
    if why:
        require_or_skip(why)


def test_disk_errors_name_the_file() -> None:
    """Every writer's way of saying "disk full" becomes one OSError naming the file; others pass through."""
    target = Path("/data/cache/signals.bin")
    got = as_disk_error(OSError(errno.ENOSPC, "No space left on device"), target)
    assert got is not None and got.errno == errno.ENOSPC and got.filename == str(target)
    rust = Exception("Error while serializing: I/O error: Read-only file system (os error 30)")
    assert as_disk_error(rust, target).errno == errno.EROFS  # type: ignore[union-attr]
    assert as_disk_error(FileNotFoundError(errno.ENOENT, "nope", "x"), target) is None
    assert as_disk_error(ValueError("bad value"), target) is None
    line = disk_error_message(OSError(errno.ENOSPC, "No space left on device", str(target)))
    assert line is not None and line.startswith(f"cannot write {target}: No space left on device; free some space")
    assert disk_error_message(OSError(errno.ENOENT, "No such file", "x")) is None
    # a permission error can come from a read (a data folder the user may not list): no "cannot write" there
    denied = disk_error_message(PermissionError(errno.EACCES, "Permission denied", "/data/in"))
    assert denied is not None and denied.startswith("cannot access /data/in: Permission denied; check its permissions")


@pytest.mark.root
def test_atomic_write_on_full_disk_keeps_old_file(can_mount: None, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "m", "64k") as mnt:
        target = mnt / "report.json"
        write_text_atomic(target, "old")
        filler = fill(mnt)
        with pytest.raises(OSError) as err:
            write_text_atomic(target, "x" * 100_000)
        assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
        assert target.read_text() == "old" and sorted(os.listdir(mnt)) == ["filler.bin", "report.json"]
        filler.unlink()


@pytest.mark.root
def test_prepare_on_full_disk(can_mount: None, tmp_path: Path) -> None:
    result = disk.prepare_disk_full(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.root
def test_prepare_on_read_only_disk(can_mount: None, tmp_path: Path) -> None:
    result = disk.prepare_read_only(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.root
@pytest.mark.slow
def test_train_disk_fills_midrun(can_mount: None, tmp_path: Path) -> None:
    result = disk.train_disk_full_midrun(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.root
@pytest.mark.slow
def test_sweep_disk_fills_midrun(can_mount: None, tmp_path: Path) -> None:
    result = disk.sweep_disk_full(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.root
def test_sweep_on_read_only_studies(can_mount: None, tmp_path: Path) -> None:
    result = disk.sweep_read_only(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.root
def test_synth_on_full_disk(can_mount: None, tmp_path: Path) -> None:
    result = disk.synth_disk_full(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


@pytest.mark.root
@pytest.mark.slow
def test_export_and_predict_into_read_only_folder(can_mount: None, tmp_path: Path) -> None:
    result = disk.export_predict_read_only(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


def test_storage_disk_errors_name_the_db() -> None:
    """SQLite's "disk full" / "readonly database", wrapped by SQLAlchemy and optuna, become an OSError naming the db."""
    import sqlite3

    import optuna
    import sqlalchemy.exc

    from ecgscale.study.storage import storage_disk_error

    url = "sqlite:////data/studies/s/study.db"
    full = sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise optuna.exceptions.StorageInternalError("commit failed") from full
        except optuna.exceptions.StorageInternalError:
            raise AssertionError("Should not reach.")  # noqa: B904 - what optuna's _run_trial does
    except AssertionError as exc:
        got = storage_disk_error(exc, url)
    assert got is not None and got.errno == errno.ENOSPC and got.filename == "/data/studies/s/study.db"
    ro = sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database"))
    assert storage_disk_error(ro, url).errno == errno.EROFS  # type: ignore[union-attr]
    locked = sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert storage_disk_error(locked, url) is None
    assert storage_disk_error(ValueError("x"), url) is None


def test_trial_without_heartbeat_is_requeued(tmp_path: Path) -> None:
    """A trial left RUNNING with no heartbeat row (its worker's disk filled, or it died, before the first beat)
    is failed and re-queued after the grace period; optuna's own fail_stale_trials never looks at it."""
    import optuna

    from ecgscale.study.storage import open_storage
    from ecgscale.study.sweep import _fail_silent_trials

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2])})
    optuna.storages.fail_stale_trials(study)
    assert study.trials[trial.number].state == optuna.trial.TrialState.RUNNING  # optuna alone: stuck forever
    _fail_silent_trials(study, grace_period=3600)  # still within the grace period: left alone
    assert study.trials[trial.number].state == optuna.trial.TrialState.RUNNING
    _fail_silent_trials(study, grace_period=0)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING], states
