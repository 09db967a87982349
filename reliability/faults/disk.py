"""Disk faults on a real small tmpfs: full while writing, and read-only. Needs root (``TmpfsUnavailable`` else).

Each check compares against something real: the bytes of the previous cache or checkpoint, an undisturbed
reference run, the exact stderr of the CLI.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
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
from reliability.faults.tmpfs import fill, remount, tmpfs
from reliability.sweeps import sweep_worker_args

__all__ = [
    "export_predict_read_only",
    "prepare_disk_full",
    "prepare_read_only",
    "sweep_disk_full",
    "sweep_read_only",
    "synth_disk_full",
    "train_disk_full_midrun",
]

AREA = "disk"
NOSPACE = "No space left on device"
READONLY = "Read-only file system"


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or ".old-" in p.name or ".lock" in p.name)


def prepare_disk_full(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``prepare --rebuild`` onto a disk that fills up: the previous cache survives byte for byte."""
    rng = random.Random(seed)
    src = synth_tree(workdir / "src", n=60, seed=seed)
    result = FaultResult(
        AREA,
        "disk full during `ecgscale prepare --rebuild` (cache on a tmpfs filled by another writer)",
        f"{iterations} builds, the tmpfs filled to a seeded 0-64 kB of slack",
        "exit 1 with one 'error:' line naming the cache and 'No space left on device', no traceback; the "
        "previous cache opens and its files are unchanged; no temporary folder left; after space is freed the "
        "same command completes",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"mnt{i}", "8m") as mnt:
            out = mnt / "cache"
            first = run_ecgscale("prepare", src, "--out", out, *CACHE_ARGS, "--max-store", "8", timeout=300)
            if first.returncode != 0:
                raise RuntimeError(f"set-up prepare failed: {first.stderr[-500:]}")
            before = fingerprint(out)
            filler = fill(mnt)
            slack = rng.randrange(0, 64 * 1024, 4096)
            if slack:  # leave some room so the failure lands at a different write each time
                with open(filler, "r+b") as fh:
                    fh.truncate(max(filler.stat().st_size - slack, 0))
            args = ("prepare", src, "--out", out, *CACHE_ARGS, "--rebuild")
            full = run_ecgscale(*args, timeout=300)
            result.runs += 1
            if full.returncode != 1:
                result.failures.append(f"#{i}: exited {full.returncode}: {full.stderr.strip()[-300:]!r}")
            elif why := one_line_error(full.stderr, must=(str(out), NOSPACE)):
                result.failures.append(f"#{i}: {why}")
            if fingerprint(out) != before:
                result.failures.append(f"#{i}: the previous cache changed")
            if _debris(mnt):
                result.failures.append(f"#{i}: left on the disk: {_debris(mnt)}")
            filler.unlink()
            again = run_ecgscale(*args, timeout=300)
            if again.returncode != 0:
                result.failures.append(f"#{i}: after freeing space: exit {again.returncode}: {again.stderr[-300:]!r}")
    result.seconds = time.perf_counter() - t0
    return result


def prepare_read_only(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """A cache on a read-only disk: still usable and up to date; any write is refused with the reason."""
    src = synth_tree(workdir / "src", n=60, seed=seed)
    result = FaultResult(
        AREA,
        "read-only output: `ecgscale prepare` on a cache whose disk was remounted read-only, and a new --out there",
        f"{iterations} remounts x 3 commands (same parameters, --rebuild, new --out)",
        "same parameters: exit 0 'up to date'; --rebuild and a new --out: exit 1 with one line naming the path "
        "and 'Read-only file system', no traceback; the cache's files unchanged",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"mnt{i}", "8m") as mnt:
            out = mnt / "cache"
            if run_ecgscale("prepare", src, "--out", out, *CACHE_ARGS, timeout=300).returncode != 0:
                raise RuntimeError("set-up prepare failed")
            before = fingerprint(out)
            remount(mnt, "ro")
            try:
                same = run_ecgscale("prepare", src, "--out", out, *CACHE_ARGS, timeout=300)
                rebuild = run_ecgscale("prepare", src, "--out", out, *CACHE_ARGS, "--rebuild", timeout=300)
                new = run_ecgscale("prepare", src, "--out", mnt / "other", *CACHE_ARGS, timeout=300)
            finally:
                remount(mnt, "rw")
            changed = fingerprint(out) != before
        result.runs += 3
        if same.returncode != 0 or "up to date" not in " ".join(same.stdout.split()):  # rich wraps at 80
            result.failures.append(f"#{i}: same parameters: exit {same.returncode}: {same.stderr.strip()[-300:]!r}")
        for name, done, path in (("--rebuild", rebuild, mnt), ("new --out", new, mnt)):
            if done.returncode != 1:
                result.failures.append(f"#{i}: {name}: exit {done.returncode}: {done.stderr.strip()[-300:]!r}")
            elif why := one_line_error(done.stderr, must=(str(path), READONLY)):
                result.failures.append(f"#{i}: {name}: {why}")
        if changed:
            result.failures.append(f"#{i}: the cache changed")
    result.seconds = time.perf_counter() - t0
    return result


TRAIN_ARGS = train_args(4, "--patience", "0")


def _history(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:  # wall-clock fields differ between any two runs
        for key in ("epoch_seconds", "val_seconds", "records_per_s"):
            row.pop(key, None)
    return rows


def train_disk_full_midrun(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """The run directory's disk fills up after the first epoch's checkpoint; then space is freed and resumed."""
    from ecgscale.errors import EcgscaleError
    from ecgscale.train.checkpoint import LAST_FILE, load_resume_state, load_run

    src = synth_tree(workdir / "src", n=60, seed=seed)
    cache = tiny_cache(src, workdir / "cache")
    ref = workdir / "ref"
    done = run_ecgscale("train", "--cache", cache, "--out", ref, *TRAIN_ARGS, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"reference training failed: {done.stderr[-500:]}")
    result = FaultResult(
        AREA,
        "disk full in the middle of `ecgscale train` (run directory on a tmpfs filled after epoch 1's checkpoint)",
        f"{iterations} runs, the training paused while another writer fills the disk",
        "exit 1 with one line naming a file in the run directory and 'No space left on device', no traceback; "
        "every file of the run unchanged since the fill (checkpoints load); no temporary file; after freeing "
        "space `train --resume` finishes with the same per-epoch metrics as an undisturbed run",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"mnt{i}", "16m") as mnt:
            run = mnt / "run"
            args = ("train", "--cache", cache, "--out", run, *TRAIN_ARGS)
            with Child(*args, log=workdir / f"train{i}.log") as a:

                def epoch_done(run: Path = run) -> bool:
                    try:
                        return json.loads((run / "train_state.json").read_text())["epoch"] >= 1
                    except (OSError, ValueError, KeyError):
                        return False

                wait_for(epoch_done, timeout=300, what="the first epoch's checkpoint")
                a.stop()
                before = fingerprint(run)
                filler = fill(mnt)
                a.cont()
                rc = a.wait(300)
            result.runs += 1
            text = a.output()
            if rc != 1:
                result.failures.append(f"#{i}: exited {rc}: {text.strip()[-300:]!r}")
            elif why := one_line_error(text, must=(str(run), NOSPACE)):
                result.failures.append(f"#{i}: {why}")
            if fingerprint(run) != before:
                result.failures.append(f"#{i}: files of the run changed after the disk filled")
            if _debris(run):
                result.failures.append(f"#{i}: left in the run directory: {_debris(run)}")
            try:
                load_resume_state(run / LAST_FILE)
                load_run(run)
            except EcgscaleError as exc:
                result.failures.append(f"#{i}: last good checkpoint does not load: {exc}")
            filler.unlink()
            resumed = run_ecgscale(*args, "--resume", timeout=600)
            if resumed.returncode != 0:
                result.failures.append(
                    f"#{i}: resume after freeing space: exit {resumed.returncode}: {resumed.stderr.strip()[-300:]!r}"
                )
            elif _history(run) != _history(ref):
                result.failures.append(f"#{i}: resumed run's metrics differ from the undisturbed run")
    result.seconds = time.perf_counter() - t0
    return result


def _sweep_setup(workdir: Path, seed: int) -> tuple[Path, Path]:
    """The tiny cache and the 4-point grid of the concurrency scenarios (made once per workdir)."""
    from reliability.faults.concurrency import SWEEP_GRID

    src = synth_tree(workdir / "src", n=60, seed=seed)
    cache = workdir / "cache"
    if not (cache / "manifest.csv").exists():
        tiny_cache(src, cache)
    grid = workdir / "grid.toml"
    grid.write_text(SWEEP_GRID)
    return cache, grid


def _sweep_cli(study: str, grid: Path, cache: Path, studies: Path) -> list[str]:
    # One worker: a paused worker's trial is never failed by another, so a short grace period is safe, and a
    # trial left RUNNING by the full disk is re-queued 3 s after its last heartbeat when the sweep is resumed.
    return sweep_worker_args(study, None, grid, studies, cache, grace_period=3)


def _complete_trials(db: Path, study: str) -> dict[int, tuple]:
    """COMPLETE trials of the study (number -> params, value, user attrs), read with the project's own loader."""
    import optuna

    from ecgscale.study.results import load_study

    st = load_study(study, studies_dir=db.parent.parent)
    out = {
        t.number: (sorted(t.params.items()), t.value, json.dumps(t.user_attrs, sort_keys=True, default=str))
        for t in st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    }
    getattr(st._storage, "_backend", st._storage).engine.dispose()  # no reader left holding the WAL
    return out


def _n_complete(db: Path) -> int:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _exactly_once(db: Path, study: str) -> str | None:
    import collections

    from reliability.faults.concurrency import SWEEP_POINTS

    counts = collections.Counter(
        (dict(params)["config"], dict(params)["seed"]) for params, _, _ in _complete_trials(db, study).values()
    )
    if sorted(counts) != sorted(SWEEP_POINTS) or set(counts.values()) != {1}:
        return f"COMPLETE trials per grid point {dict(counts)}"
    return None


def sweep_disk_full(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """The studies folder (SQLite study + trial run directories) fills up after the sweep's first COMPLETE trial."""
    rng = random.Random(seed)
    cache, grid = _sweep_setup(workdir, seed)
    result = FaultResult(
        AREA,
        "disk full in the middle of `ecgscale sweep` (study.db and trial runs on a tmpfs filled after the first "
        "COMPLETE trial)",
        f"{iterations} sweeps of a 4-point grid, the worker paused while the tmpfs is filled to a seeded 0-64 kB "
        "of slack",
        "exit 1 with one 'error:' line naming a file on that disk and 'No space left on device', no traceback; the "
        "study opens and its COMPLETE trials are unchanged; after freeing space the same command exits 0 with "
        "every grid point COMPLETE exactly once",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"mnt{i}", "16m") as mnt:
            study = f"full{i}"
            db = mnt / "studies" / study / "study.db"
            args = _sweep_cli(study, grid, cache, mnt / "studies")
            with Child(*args, log=workdir / f"sweep{i}.log") as a:
                wait_for(lambda db=db: _n_complete(db) >= 1, timeout=300, what="the sweep's first COMPLETE trial")
                a.stop()
                filler = fill(mnt)
                slack = rng.randrange(0, 64 * 1024, 4096)
                if slack:  # the failure lands at a different write each time (checkpoint, metrics, study.db)
                    with open(filler, "r+b") as fh:
                        fh.truncate(max(filler.stat().st_size - slack, 0))
                held = _complete_trials(db, study)
                a.cont()
                rc = a.wait(300)
            result.runs += 1
            text = a.output()
            if rc == 0 and _n_complete(db) == 4:
                result.notes = "a sweep that finished inside the slack counts as a run"  # nothing to report
            elif rc != 1:
                result.failures.append(f"#{i}: exited {rc}: {text.strip()[-300:]!r}")
            elif why := one_line_error(text, must=(str(mnt), NOSPACE)):
                result.failures.append(f"#{i}: {why}")
            try:
                after = _complete_trials(db, study)
            except Exception as exc:  # any failure to open the study is the finding
                result.failures.append(f"#{i}: the study does not open after the disk filled: {exc!r}")
                after = {}
            if any(after.get(n) != trial for n, trial in held.items()):
                result.failures.append(f"#{i}: COMPLETE trials changed: {sorted(held)} -> {sorted(after)}")
            filler.unlink()
            again = run_ecgscale(*args, timeout=300)
            if again.returncode != 0:
                result.failures.append(f"#{i}: after freeing space: exit {again.returncode}: {again.stderr[-300:]!r}")
            elif why := _exactly_once(db, study):
                result.failures.append(f"#{i}: after freeing space: {why}")
    result.seconds = time.perf_counter() - t0
    return result


def sweep_read_only(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """A finished study whose folder was remounted read-only: writers refused, readers still work."""
    cache, grid = _sweep_setup(workdir, seed)
    result = FaultResult(
        AREA,
        "read-only studies folder: `ecgscale sweep` (resume), `analyze --out` and `report --out` into it, "
        "`analyze --out` elsewhere",
        f"{iterations} remounts x 4 commands",
        "sweep, analyze and report into it exit 1 with one line naming the path and 'Read-only file system', no "
        "traceback; analyze elsewhere exits 0 and writes the same files as on the writable disk; no byte of the "
        "studies folder changed",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"ro{i}", "16m") as mnt:
            study = f"ro{i}"
            studies = mnt / "studies"
            db = studies / study / "study.db"
            args = _sweep_cli(study, grid, cache, studies)
            done = run_ecgscale(*args, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"set-up sweep failed: {done.stderr[-500:]}")
            common = ("--study", study, "--studies-dir", studies)
            ref = workdir / f"analysis-rw{i}"
            if run_ecgscale("analyze", *common, "--out", ref, "--no-figures").returncode != 0:
                raise RuntimeError("set-up analyze failed")
            before = fingerprint(studies)
            remount(mnt, "ro")
            try:
                refused = {
                    "sweep": (run_ecgscale(*args, timeout=300), db),
                    "analyze --out inside": (
                        run_ecgscale("analyze", *common, "--out", studies / "analysis", "--no-figures"),
                        studies / "analysis",
                    ),
                    "report --out inside": (
                        run_ecgscale("report", *common, "--out", studies / "report"),
                        studies / "report",
                    ),
                }
                elsewhere = workdir / f"analysis-ro{i}"
                reader = run_ecgscale("analyze", *common, "--out", elsewhere, "--no-figures")
                changed = fingerprint(studies) != before
            finally:
                remount(mnt, "rw")
        result.runs += 4
        for name, (proc, path) in refused.items():
            if proc.returncode != 1:
                result.failures.append(f"#{i}: {name}: exit {proc.returncode}: {proc.stderr.strip()[-300:]!r}")
            elif why := one_line_error(proc.stderr, must=(str(path), READONLY)):
                result.failures.append(f"#{i}: {name}: {why}")
        if reader.returncode != 0:
            result.failures.append(f"#{i}: analyze elsewhere: exit {reader.returncode}: {reader.stderr[-300:]!r}")
        elif sorted(p.name for p in elsewhere.rglob("*")) != sorted(p.name for p in ref.rglob("*")):
            result.failures.append(f"#{i}: analyze elsewhere wrote other files than on a writable disk")
        if changed:
            result.failures.append(f"#{i}: the studies folder changed")
    result.seconds = time.perf_counter() - t0
    return result


def synth_disk_full(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``ecgscale synth`` onto a small disk that fills up part-way: one line, and no partial tree to be read later."""
    rng = random.Random(seed)
    result = FaultResult(
        AREA,
        "disk full during `ecgscale synth` (output on a 2 MB tmpfs, 400 records need more)",
        f"{iterations} runs, a seeded 0-1 MB of the disk taken by another file first",
        "exit 1 with one line naming the output and 'No space left on device', no traceback; nothing left on the "
        "disk but the other file (no partial record tree a later `prepare` could read); with space back the same "
        "command writes all 400 records",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"mnt{i}", "2m") as mnt:
            taken = mnt / "other.bin"
            taken.write_bytes(b"\0" * rng.randrange(0, 1 << 20, 4096))
            out = mnt / "synth"
            full = run_ecgscale("synth", "--out", out, "--n", "400", "--seed", str(seed + i), "--no-progress")
            result.runs += 1
            if full.returncode != 1:
                result.failures.append(f"#{i}: exited {full.returncode}: {full.stderr.strip()[-300:]!r}")
            elif why := one_line_error(full.stderr, must=(str(mnt), NOSPACE)):
                result.failures.append(f"#{i}: {why}")
            left = sorted(p.name for p in mnt.iterdir() if p != taken)
            if left:
                result.failures.append(f"#{i}: left on the disk: {left}")
            taken.unlink()
            remount(mnt, "size=256m")  # room for the whole tree: the same command must now complete
            again = run_ecgscale("synth", "--out", out, "--n", "400", "--seed", str(seed + i), "--no-progress")
            if again.returncode != 0:
                result.failures.append(f"#{i}: after freeing space: exit {again.returncode}: {again.stderr[-300:]!r}")
            elif len(list(out.rglob("*.hea"))) != 400:
                result.failures.append(f"#{i}: after freeing space: {len(list(out.rglob('*.hea')))} records, not 400")
    result.seconds = time.perf_counter() - t0
    return result


def export_predict_read_only(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``export`` and ``predict --out`` into a read-only folder: one line each; the run directory untouched."""
    src = synth_tree(workdir / "src", n=60, seed=seed)
    cache = tiny_cache(src, workdir / "cache")
    run = workdir / "run"
    done = run_ecgscale("train", "--cache", cache, "--out", run, *train_args(1), timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"set-up training failed: {done.stderr[-500:]}")
    before = fingerprint(run)
    record = sorted(src.rglob("*.hea"))[0]
    result = FaultResult(
        AREA,
        "read-only output: `ecgscale export` (ONNX, TorchScript) and `ecgscale predict --out` into a folder on a "
        "read-only disk",
        f"{iterations} remounts x 3 commands",
        "exit 1 with one line naming the output file and 'Read-only file system', no traceback; the run directory "
        "unchanged; the same commands succeed once the disk is writable",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        with tmpfs(workdir / f"mnt{i}", "16m") as mnt:
            remount(mnt, "ro")
            commands = {
                "export onnx": ("export", run, "--format", "onnx", "--out", mnt / "model.onnx"),
                "export torchscript": ("export", run, "--format", "torchscript", "--out", mnt / "model.pt"),
                "predict": ("predict", run, record, "--out", mnt / "pred.csv", "--no-progress"),
            }
            try:
                refused = {name: run_ecgscale(*args, timeout=300) for name, args in commands.items()}
            finally:
                remount(mnt, "rw")
            for name, done in refused.items():
                result.runs += 1
                if done.returncode != 1:
                    result.failures.append(f"#{i} {name}: exited {done.returncode}: {done.stderr.strip()[-300:]!r}")
                elif why := one_line_error(done.stderr, must=(str(mnt), READONLY)):
                    result.failures.append(f"#{i} {name}: {why}")
            for name, args in commands.items():
                again = run_ecgscale(*args, timeout=300)
                if again.returncode != 0:
                    tail = again.stderr.strip()[-300:]
                    result.failures.append(f"#{i} {name} on a writable disk: exit {again.returncode}: {tail!r}")
        if fingerprint(run) != before:
            result.failures.append(f"#{i}: the run directory changed")
    result.seconds = time.perf_counter() - t0
    return result
