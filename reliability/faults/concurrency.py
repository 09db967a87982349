"""Concurrency faults: two writers on one cache, one run directory, one SQLite study, one PostgreSQL study.

Overlap is made certain, not hoped for: the first process is paused (SIGSTOP) once it holds what is contended
(the cache lock, the run-directory lock, a running trial) and resumed after the second has acted, so no check
depends on how fast a shared 2-core machine happens to be.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable
from pathlib import Path

from reliability.common import FaultResult, run_ecgscale
from reliability.faults._setup import (
    CACHE_ARGS,
    Child,
    fingerprint,
    one_line_error,
    synth_tree,
    tiny_cache,
    train_args,
    wait_for,
)
from reliability.sweeps import running_trial_of, sweep_worker_args

__all__ = [
    "prepare_killed_lock_released",
    "prepare_twice_same_out",
    "sweep_two_workers_postgres",
    "sweep_two_workers_sqlite",
    "train_twice_same_run_dir",
]

AREA = "concurrency"


def _same_cache(out: Path, ref: Path) -> str | None:
    """``None`` if ``out`` opens as a valid cache whose signals, labels and manifest equal the reference's."""
    from ecgscale.data.cache import open_cache
    from ecgscale.errors import EcgscaleError

    try:
        open_cache(out)
    except EcgscaleError as exc:
        return f"cache does not open: {exc}"
    for name in ("signals.bin", "labels.npy", "offsets.npy", "manifest.csv"):
        if (out / name).read_bytes() != (ref / name).read_bytes():
            return f"{name} differs from the reference build"
    return None


def _debris(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def _lock_info(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def prepare_twice_same_out(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """A second ``ecgscale prepare`` on the ``--out`` of a running one: refused at once, the first completes."""
    src = synth_tree(workdir / "src", n=60, seed=seed)
    ref = tiny_cache(src, workdir / "ref")
    result = FaultResult(
        AREA,
        "second `ecgscale prepare` on the same --out while the first is building (first paused holding the lock)",
        f"{iterations} overlapping pairs of real CLI processes",
        "second exits 2 with one line naming the first's pid and the folder; first exits 0; the cache equals an "
        "undisturbed build byte for byte; no .tmp-/.old-/lock debris",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        out = workdir / f"cache{i}"
        args = ("prepare", src, "--out", out, *CACHE_ARGS, "--workers", "2")
        with Child(*args, log=workdir / f"a{i}.log") as a:
            wait_for(lambda out=out: _lock_info(out.parent / f".{out.name}.lock.json"), timeout=120, what="lock")
            a.stop()
            try:
                b = run_ecgscale(*args, timeout=120)
            finally:
                a.cont()
            rc_a = a.wait(300)
        result.runs += 1
        if b.returncode != 2:
            result.failures.append(f"#{i}: second prepare exited {b.returncode}: {b.stderr.strip()[-300:]!r}")
        why = one_line_error(b.stderr, must=(f"another `ecgscale prepare` (pid {a.pid} on host", str(out)))
        if why:
            result.failures.append(f"#{i}: {why}")
        if rc_a != 0:
            result.failures.append(f"#{i}: first prepare exited {rc_a}: {a.output()[-300:]!r}")
        if (why := _same_cache(out, ref)) is not None:
            result.failures.append(f"#{i}: {why}")
        if _debris(out):
            result.failures.append(f"#{i}: left beside the cache: {_debris(out)}")
    result.seconds = time.perf_counter() - t0
    return result


def prepare_killed_lock_released(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """kill -9 of a prepare holding the lock (its pool workers orphaned): the next prepare is not refused."""
    rng = random.Random(seed)
    src = synth_tree(workdir / "src", n=240, seed=seed)
    ref = tiny_cache(src, workdir / "ref")
    result = FaultResult(
        AREA,
        "kill -9 of `ecgscale prepare --workers 2` while it holds the cache lock",
        f"{iterations} kills at seeded uniform times 0-0.6 s after the lock is taken",
        "a new prepare on the same --out is not refused (the kernel dropped the flock, orphaned pool workers do "
        "not hold it), completes, and the cache equals an undisturbed build; no debris afterwards",
        0,
    )
    t0 = time.perf_counter()
    landed = 0
    for i in range(iterations):
        out = workdir / f"cache{i}"
        args = ("prepare", src, "--out", out, *CACHE_ARGS, "--workers", "2")
        with Child(*args, log=workdir / f"a{i}.log") as a:
            wait_for(lambda out=out: _lock_info(out.parent / f".{out.name}.lock.json"), timeout=120, what="lock")
            time.sleep(rng.uniform(0.0, 0.6))
            a.kill()
            rc_a = a.wait(30)
        landed += rc_a == -9
        again = run_ecgscale(*args, timeout=300)
        result.runs += 1
        if again.returncode != 0:
            result.failures.append(f"#{i}: prepare after the kill exited {again.returncode}: {again.stderr[-300:]!r}")
            continue
        if (why := _same_cache(out, ref)) is not None:
            result.failures.append(f"#{i}: {why}")
        if _debris(out):
            result.failures.append(f"#{i}: left beside the cache: {_debris(out)}")
    result.seconds = time.perf_counter() - t0
    result.notes = f"{landed} of {iterations} kills landed before the build finished"
    return result


TRAIN_ARGS = train_args(3)


def train_twice_same_run_dir(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """A second ``ecgscale train`` (and ``train --resume``) into the run directory of a running one."""
    rng = random.Random(seed)
    src = synth_tree(workdir / "src", n=60, seed=seed)
    cache = tiny_cache(src, workdir / "cache")
    result = FaultResult(
        AREA,
        "second `ecgscale train` and `train --resume` into the --out of a running training; then kill -9 of the first",
        f"{iterations} overlaps (first paused holding the run-directory lock), {iterations} kills at seeded times",
        "both second commands exit 2 with one line naming the first's pid and the run directory, and change no "
        "byte in it; the first exits 0 and its run loads; after a kill -9, `train --resume` is not refused and "
        "finishes",
        0,
    )
    t0 = time.perf_counter()
    from ecgscale.errors import EcgscaleError
    from ecgscale.train.checkpoint import load_run

    for i in range(iterations):
        run = workdir / f"run{i}"
        args = ("train", "--cache", cache, "--out", run, *TRAIN_ARGS, "--seed", str(i))
        with Child(*args, log=workdir / f"a{i}.log") as a:
            wait_for(lambda run=run: _lock_info(run / ".ecgscale.lock.json"), timeout=120, what="run lock")
            a.stop()
            try:
                before = fingerprint(run)
                refused = [run_ecgscale(*args, timeout=120), run_ecgscale(*args, "--resume", timeout=120)]
                after = fingerprint(run)
            finally:
                a.cont()
            rc_a = a.wait(300)
        result.runs += 1
        for name, b in zip(("train", "train --resume"), refused, strict=True):
            if b.returncode != 2:
                result.failures.append(f"#{i}: second `{name}` exited {b.returncode}: {b.stderr.strip()[-300:]!r}")
            why = one_line_error(b.stderr, must=(f"another `ecgscale train` (pid {a.pid} on host", str(run)))
            if why:
                result.failures.append(f"#{i}: second `{name}`: {why}")
        if before != after:
            result.failures.append(f"#{i}: the refused commands changed the run directory")
        if rc_a != 0:
            result.failures.append(f"#{i}: first train exited {rc_a}: {a.output()[-300:]!r}")
        else:
            try:
                load_run(run)
            except EcgscaleError as exc:
                result.failures.append(f"#{i}: finished run does not load: {exc}")

        killed = workdir / f"killed{i}"
        kargs = ("train", "--cache", cache, "--out", killed, *TRAIN_ARGS, "--seed", str(i))
        with Child(*kargs, log=workdir / f"k{i}.log") as k:
            wait_for(lambda d=killed: _lock_info(d / ".ecgscale.lock.json"), timeout=120, what="run lock")
            time.sleep(rng.uniform(0.0, 1.0))
            k.kill()
            k.wait(30)
        resumed = run_ecgscale(*kargs, "--resume", timeout=300)
        result.runs += 1
        if resumed.returncode != 0:
            result.failures.append(
                f"#{i}: `train --resume` after kill -9 exited {resumed.returncode}: {resumed.stderr.strip()[-300:]!r}"
            )
    result.seconds = time.perf_counter() - t0
    return result


def _sweep_args(study: str, storage: str | None, grid: Path, studies: Path, cache: Path) -> list[str]:
    """Real-training worker arguments, with a grace period long enough that pausing a worker for a few seconds
    does not fail its trial."""
    return sweep_worker_args(study, storage, grid, studies, cache, grace_period=120)


SWEEP_GRID = """
name = "tiny4"
points = [
  {depth = 1, channels = 8, kernel_size = 3, gap = true},
  {depth = 1, channels = 8, kernel_size = 3, gap = false},
  {depth = 2, channels = 8, kernel_size = 5, gap = true},
  {depth = 1, channels = 8, kernel_size = 5, gap = true},
]
"""
SWEEP_POINTS = [("D1-C8-K3-gap", 0), ("D1-C8-K3-nogap", 0), ("D2-C8-K5-gap", 0), ("D1-C8-K5-gap", 0)]


def _two_workers(
    workdir: Path, *, iterations: int, seed: int, url_of: Callable[[Path, str], tuple[str, str]], label: str
) -> FaultResult:
    import optuna

    from ecgscale.study.storage import open_storage

    src = synth_tree(workdir / "src", n=60, seed=seed)
    cache = tiny_cache(src, workdir / "cache")
    grid = workdir / "grid.toml"
    grid.write_text(SWEEP_GRID)
    result = FaultResult(
        AREA,
        f"two concurrent `ecgscale sweep` workers on one {label} study (real training, 4-point grid)",
        f"{iterations} studies; the first worker is paused once it runs a trial until the second runs one",
        "both exit 0; every grid point COMPLETE exactly once; both workers completed trials; no 'database is "
        "locked' (or any) error in their output",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        study = f"{label.lower()}-two-{i}"
        storage, url = url_of(workdir, study)
        a = Child(*_sweep_args(study, storage, grid, workdir / "a", cache), log=workdir / f"{study}-a.log")
        with a:
            wait_for(lambda u=url, s=study, p=a.pid: running_trial_of(u, s, p), timeout=120, what="worker A trial")
            a.stop()
            try:
                b = Child(*_sweep_args(study, storage, grid, workdir / "b", cache), log=workdir / f"{study}-b.log")
                with b:
                    try:
                        wait_for(
                            lambda u=url, s=study, p=b.pid: running_trial_of(u, s, p),
                            timeout=120,
                            what="worker B trial",
                        )
                    finally:
                        a.cont()
                    rc_b = b.wait(300)
            finally:
                a.cont()
            rc_a = a.wait(300)
        result.runs += 1
        for name, rc, child in (("A", rc_a, a), ("B", rc_b, b)):
            text = child.output()
            if rc != 0:
                result.failures.append(f"{study}: worker {name} exited {rc}: {text[-300:]!r}")
            if "database is locked" in text or "Traceback" in text:
                result.failures.append(f"{study}: worker {name} logged an error: {text[-300:]!r}")
        st = optuna.load_study(study_name=study, storage=open_storage(url))
        complete = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        counts = collections.Counter((t.params["config"], t.params["seed"]) for t in complete)
        if sorted(counts) != sorted(SWEEP_POINTS) or set(counts.values()) != {1}:
            result.failures.append(f"{study}: COMPLETE trials per grid point {dict(counts)}")
        workers = {str(t.user_attrs.get("worker", "")).rsplit(":", 1)[-1] for t in complete}
        if workers != {str(a.pid), str(b.pid)}:
            result.failures.append(f"{study}: trials completed by pids {sorted(workers)}, workers {a.pid}, {b.pid}")
    result.seconds = time.perf_counter() - t0
    return result


def sweep_two_workers_sqlite(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """Two local workers share the study's SQLite file (``--studies-dir`` the same folder)."""

    def url_of(wd: Path, study: str) -> tuple[str, str]:
        db = (wd / "shared" / study / "study.db").resolve()
        return f"sqlite:///{db}", f"sqlite:///{db}"

    return _two_workers(workdir, iterations=iterations, seed=seed, url_of=url_of, label="SQLite")


def sweep_two_workers_postgres(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """Two workers on one PostgreSQL study (a throw-away server; ``PostgresUnavailable`` if none can start)."""
    from reliability.postgres import postgres_server

    with postgres_server() as server:
        return _two_workers(
            workdir, iterations=iterations, seed=seed, url_of=lambda wd, study: (server, server), label="PostgreSQL"
        )
