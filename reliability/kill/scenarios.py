"""Crash and resume: ``prepare``, ``train`` and ``sweep`` killed with SIGKILL at seeded points, then re-run.

Each scenario first runs its command once uninterrupted: that run is the reference the resumed runs must equal
byte for byte (cache files), number for number (training history, weights) or trial for trial (study), and its
wall time sets the window the random kill times are drawn from (the machine is shared and slow, so windows are
relative to the measured time, never fixed). A run that ends before its kill time is counted as "not killed",
not as a failure. Kill points take turns: a seeded uniform time over what is left of the run; a targeted moment
found by polling the output folder (the instant a temporary file or folder of an atomic write appears); and
"just before the k-th rename/rmtree" of the process, seeded k (``harness.KillPoint.rename``), which lands inside
windows of microseconds that polling cannot hit.

What is killed: the parent process alone (``kill -9 PID``, as an OOM-kill or a user does), or for a quarter of
the outside kills, drawn by the seed, its whole process group (as a job scheduler stopping the job does). Ctrl-C
is SIGINT, not tested here. After a parent-only kill, ``prepare``'s pool workers must exit by themselves.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliability.common import FaultResult, Scenario, ecgscale_cmd
from reliability.kill.harness import KillOutcome, KillPoint, count_renames, debris, kill_run, timed_run

__all__ = ["SCENARIOS", "prepare_killed", "prepare_rebuild_killed", "sweep_killed", "train_killed"]

AREA = "crash/resume"
CACHE_FILES = ("signals.bin", "labels.npy", "offsets.npy", "manifest.csv", "skipped.csv")
CACHE_TIMING_KEYS = ("created", "build_seconds")
HISTORY_TIMING_KEYS = ("epoch_seconds", "val_seconds", "records_per_s")
PREPARE_RECORDS = 300
PREPARE_ARGS = ("--workers", "2", "--no-progress")
# The cache an existing --rebuild replaces: other parameters, so it differs from the new one in every file.
OLD_CACHE_ARGS = ("--fs", "100", "--window", "5", "--max-store", "10")


# ------------------------------------------------------------------------------------------------ helpers
def _tally(outcomes: list[tuple[str, KillOutcome]]) -> tuple[int, str]:
    """Kills that landed, and a ``how_often`` text grouping them by how the point was chosen."""
    landed = [(kind, o) for kind, o in outcomes if o.killed]
    by_kind = collections.Counter(kind for kind, _ in landed)
    parts = ", ".join(f"{n} {kind}" for kind, n in by_kind.most_common())
    missed = len(outcomes) - len(landed)
    text = f"{len(landed)} kills ({parts})" + (f"; {missed} run(s) ended before their kill point" if missed else "")
    return len(landed), text


def _dir_has(folder: Path, prefix: str, suffix: str = "") -> Callable[[], bool]:
    """A poll: some entry of ``folder`` starts with ``prefix`` (and ends with ``suffix``)."""

    def check() -> bool:
        try:
            return any(e.name.startswith(prefix) and e.name.endswith(suffix) for e in _scan(folder))
        except OSError:
            return False

    return check


def _scan(folder: Path) -> list[Any]:
    with os.scandir(folder) as it:
        return list(it)


def _build_dirs(out: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in _scan(out.parent) if e.name.startswith(f".{out.name}.tmp-")]
    except OSError:
        return []


def _in_build_dir(out: Path, prefix: str, suffix: str = "") -> Callable[[], bool]:
    """A poll: the unfinished build folder of ``out`` holds an entry named ``prefix...suffix``."""

    def check() -> bool:
        return any(_dir_has(d, prefix, suffix)() for d in _build_dirs(out))

    return check


def _signals_at_least(out: Path, n_bytes: int) -> Callable[[], bool]:
    def check() -> bool:
        for d in _build_dirs(out):
            try:
                if (d / "signals.bin").stat().st_size >= n_bytes:
                    return True
            except OSError:
                pass
        return False

    return check


def _cache_json(path: Path) -> dict[str, Any]:
    info = json.loads((path / "cache.json").read_text(encoding="utf-8"))
    return {k: v for k, v in info.items() if k not in CACHE_TIMING_KEYS}


def _compare_cache(out: Path, ref: Path) -> list[str]:
    """Differences between two caches: every data file byte for byte, cache.json apart from timing fields."""
    diffs = [
        f"{name} differs from the reference build" for name in CACHE_FILES if not _same_bytes(out / name, ref / name)
    ]
    try:
        if _cache_json(out) != _cache_json(ref):
            diffs.append("cache.json differs from the reference build (timing fields excluded)")
    except (OSError, ValueError) as exc:
        diffs.append(f"cache.json unreadable: {exc}")
    return diffs


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _valid_cache(out: Path) -> str | None:
    """None if ``out`` opens as a cache whose arrays agree with cache.json, else the problem."""
    from ecgscale.data.cache import open_cache
    from ecgscale.errors import EcgscaleError

    try:
        cache = open_cache(out)
        n = int(cache.info["n_records"])
        if len(cache) != n or cache.labels.shape[0] != n or len(cache.offsets) != n + 1:
            return f"{out}: arrays disagree with cache.json ({n} records)"
        cache.signal(n - 1)  # the last record's block is readable
    except (EcgscaleError, OSError, ValueError, KeyError) as exc:
        return f"{out}: not a valid cache ({type(exc).__name__}: {exc})"
    return None


def _cache_debris(out: Path) -> list[str]:
    """``.tmp-``/``.old-`` folders of ``out`` beside it, and temp files inside it."""
    left = [
        e.name for e in _scan(out.parent) if e.name.startswith(f".{out.name}.") and ("tmp" in e.name or "old" in e.name)
    ]
    return left + [f"{out.name}/{d}" for d in debris(out)]


def _orphan_failures(tag: str, o: KillOutcome) -> list[str]:
    if o.orphans_alive:
        return [f"{tag}: worker process(es) {o.orphans_alive} still alive 15 s after their parent was killed"]
    return []


def _prepare_tree(workdir: Path, seed: int) -> Path:
    from ecgscale.synth import generate

    tree = workdir / "tree"
    if not tree.exists():
        generate(tree, n=PREPARE_RECORDS, seed=seed, format="cinc2021", progress=False)
    return tree


def _kill_point(
    rng: random.Random, i: int, events: list[tuple[str, Callable[[], bool]]], window: float, renames: int
) -> tuple[str, KillPoint]:
    """Kill ``i``: in turn a uniform time over ``window`` s, a polled event, and "just before rename k" (seeded k
    in ``1..renames``); a quarter of the outside kills hit the whole process group, the rest the parent alone."""
    group = rng.random() < 0.25
    who = "group" if group else "parent"
    kind = i % 3
    if kind == 1 and events:
        name, when = events[(i // 3) % len(events)]
        return f"the moment {name}", KillPoint(f"{name} ({who})", when=when, group=group)
    if kind == 2 and renames > 0:
        k = rng.randint(1, renames)
        return "just before a seeded rename/rmtree", KillPoint(f"before file operation {k} of {renames}", rename=k)
    t = rng.uniform(0.05, 1.0) * window
    return "at seeded uniform times", KillPoint(f"t={t:.2f}s ({who})", at_seconds=t, group=group)


# ------------------------------------------------------------------------------------------------ prepare
def prepare_killed(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``ecgscale prepare --workers 2`` killed; the cache is absent or complete, and a re-run equals a clean build."""
    t_start = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    tree = _prepare_tree(workdir, seed)
    ref = workdir / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    rc, duration, renames = count_renames(
        ecgscale_cmd("prepare", tree, "--out", ref, *PREPARE_ARGS), log_path=workdir / "ref.log"
    )
    if rc != 0:
        raise RuntimeError(f"reference prepare failed: {(workdir / 'ref.log').read_text()[-2000:]}")
    signals_size = (ref / "signals.bin").stat().st_size
    out = workdir / "out" / "cache"
    failures: list[str] = []
    outcomes: list[tuple[str, KillOutcome]] = []
    for i in range(iterations):
        shutil.rmtree(out.parent, ignore_errors=True)
        out.parent.mkdir(parents=True)
        events = [
            ("the build folder appeared", _dir_has(out.parent, f".{out.name}.tmp-")),
            ("signals.bin was half written", _signals_at_least(out, int(signals_size * rng.uniform(0.2, 0.9)))),
            ("labels.npy was written", _in_build_dir(out, "labels.npy")),
            ("cache.json's temp file appeared", _in_build_dir(out, ".cache.json.", ".tmp")),
            ("the finished build awaited its rename", _in_build_dir(out, "cache.json")),
        ]
        kind, point = _kill_point(rng, i, events, duration, len(renames))
        tag = f"kill {i + 1} ({point.label})"
        o = kill_run(ecgscale_cmd("prepare", tree, "--out", out, *PREPARE_ARGS), point, log_path=workdir / "kill.log")
        outcomes.append((kind, o))
        failures += _orphan_failures(tag, o)
        if not o.killed and o.returncode != 0:
            failures.append(f"{tag}: prepare ended with exit code {o.returncode} before the kill: {o.log[-300:]}")
        # After the kill: no cache, or the complete one.
        if out.exists():
            problem = _valid_cache(out)
            if problem:
                failures.append(f"{tag}: {problem}")
            else:
                failures += [f"{tag}: cache in place after the kill: {d}" for d in _compare_cache(out, ref)]
        rerun = workdir / "rerun.log"
        rc, _ = timed_run(ecgscale_cmd("prepare", tree, "--out", out, *PREPARE_ARGS), log_path=rerun)
        if rc != 0:
            failures.append(f"{tag}: re-run failed ({rc}): {rerun.read_text()[-300:]}")
            continue
        failures += [f"{tag}: after the re-run {d}" for d in _compare_cache(out, ref)]
        left = _cache_debris(out)
        if left:
            failures.append(f"{tag}: debris after the re-run: {left}")
    runs, how = _tally(outcomes)
    return FaultResult(
        area=AREA,
        fault="kill -9 during `ecgscale prepare --workers 2` (300 synthetic records), then the same command again",
        how_often=how,
        checked=(
            "after each kill: the cache folder absent, or opening and identical to a clean build; pool workers exit "
            "by themselves; after the re-run: all cache files byte-identical to an uninterrupted build (cache.json "
            "apart from timing fields), no .tmp-/.old- debris"
        ),
        runs=runs,
        failures=failures,
        seconds=time.monotonic() - t_start,
        notes=f"uninterrupted prepare: {duration:.1f} s; a quarter of the kills hit the whole process group",
    )


def prepare_rebuild_killed(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``prepare --rebuild`` over an existing cache killed: the old or the new cache is in place, never neither."""
    t_start = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    tree = _prepare_tree(workdir, seed)
    refs = {"new": workdir / "reference-new", "old": workdir / "reference-old"}
    for name, extra in (("new", ()), ("old", OLD_CACHE_ARGS)):
        shutil.rmtree(refs[name], ignore_errors=True)
        log = workdir / f"ref-{name}.log"
        rc, _ = timed_run(ecgscale_cmd("prepare", tree, "--out", refs[name], *PREPARE_ARGS, *extra), log_path=log)
        if rc != 0:
            raise RuntimeError(f"reference prepare failed: {log.read_text()[-2000:]}")
    out = workdir / "out" / "cache"
    cmd = ecgscale_cmd("prepare", tree, "--out", out, *PREPARE_ARGS, "--rebuild")
    # One uninterrupted rebuild over the old cache: its duration and its renames (the swap included).
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(refs["old"], out)
    rc, duration, renames = count_renames(cmd, log_path=workdir / "rebuild.log")
    if rc != 0:
        raise RuntimeError(f"uninterrupted rebuild failed: {(workdir / 'rebuild.log').read_text()[-2000:]}")
    signals_size = (refs["new"] / "signals.bin").stat().st_size
    failures: list[str] = []
    outcomes: list[tuple[str, KillOutcome]] = []
    for i in range(iterations):
        shutil.rmtree(out.parent, ignore_errors=True)
        out.parent.mkdir(parents=True)
        shutil.copytree(refs["old"], out)
        events = [
            ("the build folder appeared", _dir_has(out.parent, f".{out.name}.tmp-")),
            ("signals.bin was half written", _signals_at_least(out, int(signals_size * rng.uniform(0.2, 0.9)))),
            ("cache.json's temp file appeared", _in_build_dir(out, ".cache.json.", ".tmp")),
        ]
        kind, point = _kill_point(rng, i, events, duration, len(renames))
        tag = f"kill {i + 1} ({point.label})"
        o = kill_run(cmd, point, log_path=workdir / "kill.log")
        outcomes.append((kind, o))
        failures += _orphan_failures(tag, o)
        if not out.exists():
            failures.append(f"{tag}: neither the old nor the new cache is at {out} after the kill")
        else:
            problem = _valid_cache(out)
            if problem:
                failures.append(f"{tag}: {problem}")
            elif _compare_cache(out, refs["old"]) and _compare_cache(out, refs["new"]):
                failures.append(f"{tag}: the cache after the kill is neither the old nor the new one")
        rerun = workdir / "rerun.log"
        rc, _ = timed_run(cmd, log_path=rerun)
        if rc != 0:
            failures.append(f"{tag}: re-run failed ({rc}): {rerun.read_text()[-300:]}")
            continue
        failures += [f"{tag}: after the re-run {d}" for d in _compare_cache(out, refs["new"])]
        left = _cache_debris(out)
        if left:
            failures.append(f"{tag}: debris after the re-run: {left}")
    runs, how = _tally(outcomes)
    return FaultResult(
        area=AREA,
        fault="kill -9 during `ecgscale prepare --rebuild` replacing an existing cache",
        how_often=how,
        checked=(
            "after each kill: a valid cache at --out that is byte-identical to the old or to the new build; "
            "after the re-run: identical to a clean new build, no debris"
        ),
        runs=runs,
        failures=failures,
        seconds=time.monotonic() - t_start,
        notes=f"uninterrupted rebuild: {duration:.1f} s",
    )


# ------------------------------------------------------------------------------------------------ train
TRAIN_RECORDS = 160
TRAIN_ARGS = (
    *("-D", "2", "-C", "16", "-K", "7", "--epochs", "6", "--batch-size", "8", "--checkpoint-every", "3"),
    *("--precision", "fp32", "--device", "cpu", "--seed", "0", "--patience", "0", "--no-progress"),
)
KILLS_PER_RUN = 3
RUN_FILES = (
    "config.json",
    "train_state.json",
    "val_metrics.json",
    "metrics.jsonl",
    "metrics.csv",
    "model.safetensors",
    "last.safetensors",
)


def _tiny_cache(workdir: Path, seed: int) -> Path:
    """A 100 Hz, 5 s-window cache of synthetic records: a few seconds of CPU training."""
    from ecgscale.data.cache import build_cache
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.synth import generate

    cache = workdir / "cache"
    if not (cache / "cache.json").exists():
        tree = workdir / "tiny-tree"
        shutil.rmtree(tree, ignore_errors=True)
        generate(tree, n=TRAIN_RECORDS, seed=seed, format="cinc2021", progress=False)
        build_cache(
            [tree], cache, config=PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0), workers=1, progress=False
        )
    return cache


def _comparable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in HISTORY_TIMING_KEYS} for row in history]


def check_run_dir(run: Path) -> list[str]:
    """Every file of a (possibly killed) run directory is complete, and the files agree with each other.

    Files are written one after another (best weights, config, resume state, state copy, metrics), so after a
    kill a later file may lag an earlier one by one checkpoint, never more, and never hold a torn write.
    """
    import torch

    from ecgscale.errors import EcgscaleError
    from ecgscale.train.checkpoint import load_resume_state, load_run, load_weights, read_run_config

    problems: list[str] = []
    loaded: dict[str, Any] = {}
    for name in RUN_FILES:
        path = run / name
        if not path.exists():
            continue
        try:
            if name == "config.json":
                loaded[name] = read_run_config(run)
            elif name.endswith(".json"):
                loaded[name] = json.loads(path.read_text(encoding="utf-8"))
            elif name == "metrics.jsonl":
                loaded[name] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            elif name == "metrics.csv":
                with open(path, newline="", encoding="utf-8") as fh:
                    loaded[name] = list(csv.DictReader(fh))
            elif name == "model.safetensors":
                loaded[name] = load_weights(path, kind="weights")
            else:
                loaded[name] = load_resume_state(path)
        except (EcgscaleError, OSError, ValueError) as exc:
            problems.append(f"{name} is not complete: {type(exc).__name__}: {exc}")
    if "last.safetensors" not in loaded:
        return problems
    model_state, _, last = loaded["last.safetensors"]
    pos = (last["epoch"], last["step"])
    if "train_state.json" in loaded:
        copy = loaded["train_state.json"]
        if (copy["epoch"], copy["step"]) > pos or copy["history"] != last["history"][: len(copy["history"])]:
            problems.append(
                f"train_state.json (epoch {copy['epoch']}, step {copy['step']}) is ahead of last.safetensors {pos}"
            )
    if "metrics.jsonl" in loaded:
        rows = loaded["metrics.jsonl"]
        if rows != last["history"][: len(rows)] or len(last["history"]) - len(rows) not in (0, 1):
            problems.append(
                f"metrics.jsonl ({len(rows)} rows) disagrees with the resume state ({len(last['history'])} epochs)"
            )
    if (
        "metrics.csv" in loaded
        and "metrics.jsonl" in loaded
        and len(loaded["metrics.jsonl"]) - len(loaded["metrics.csv"]) not in (0, 1)
    ):
        problems.append("metrics.csv lags metrics.jsonl by more than one epoch")
    if "model.safetensors" in loaded:
        weights, meta = loaded["model.safetensors"]
        epoch = int(meta.get("epoch", -1))
        best = last.get("best_epoch")
        if epoch == best and last["step"] == 0 and last["epoch"] == best:
            # the best epoch is the one just finished: the best weights are the resume state's weights
            if weights.keys() != model_state.keys() or not all(
                torch.equal(weights[k], model_state[k]) for k in weights
            ):
                problems.append(
                    f"model.safetensors (epoch {epoch}) differs from the weights of the resume state at that epoch"
                )
        elif epoch != best and not (epoch == last["epoch"] + 1 and epoch > (best or 0)):
            problems.append(f"model.safetensors holds epoch {epoch}; the resume state says best epoch {best} at {pos}")
        config = loaded.get("config.json")
        if config is not None and config.get("best_epoch") != epoch:
            # config.json (thresholds) lags the best weights: prediction from this run must be refused, not mixed
            try:
                load_run(run)
                problems.append(
                    f"load_run accepts best weights of epoch {epoch} with config.json of best epoch "
                    f"{config.get('best_epoch')} (thresholds of another epoch)"
                )
            except EcgscaleError:
                pass
    return problems


def _replaced(path: Path) -> Callable[[], bool]:
    """A poll: ``path`` was created or atomically replaced (a new inode) since this call."""

    def ident() -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    first = ident()
    return lambda: (now := ident()) is not None and now != first


def _status(run: Path) -> str | None:
    """``running``/``finished`` from a run directory's train_state.json (None before the first checkpoint)."""
    try:
        return str(json.loads((run / "train_state.json").read_text(encoding="utf-8"))["status"])
    except (OSError, ValueError, KeyError):
        return None


def _progress(run: Path) -> int:
    """Optimiser steps a run directory has checkpointed (0 for none)."""
    try:
        return int(json.loads((run / "train_state.json").read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        return 0


def _train_cmd(cache: Path, out: Path, *extra: str) -> list[str]:
    return ecgscale_cmd("train", "--cache", cache, "--out", out, *TRAIN_ARGS, *extra)


def _compare_runs(run: Path, ref: Path) -> list[str]:
    import torch

    from ecgscale.train.checkpoint import load_resume_state, load_weights

    diffs = []
    a = json.loads((run / "metrics.jsonl").read_text().replace("\n", ",").rstrip(",").join("[]"))
    b = json.loads((ref / "metrics.jsonl").read_text().replace("\n", ",").rstrip(",").join("[]"))
    if _comparable(a) != _comparable(b):
        diffs.append("history (timings excluded) differs from the uninterrupted run")
    for name in ("model.safetensors", "last.safetensors"):
        wa = load_weights(run / name)[0] if name == "model.safetensors" else load_resume_state(run / name)[0]
        wb = load_weights(ref / name)[0] if name == "model.safetensors" else load_resume_state(ref / name)[0]
        if wa.keys() != wb.keys() or not all(torch.equal(wa[k], wb[k]) for k in wa):
            diffs.append(f"{name}: weights differ from the uninterrupted run")
    ca, cb = json.loads((run / "config.json").read_text()), json.loads((ref / "config.json").read_text())
    for key in ("best_epoch", "best_score", "thresholds", "status", "stop_reason"):
        if ca.get(key) != cb.get(key):
            diffs.append(f"config.json {key}: {ca.get(key)!r} vs uninterrupted {cb.get(key)!r}")
    return diffs


def train_killed(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``ecgscale train`` killed repeatedly and resumed with ``--resume``; it ends exactly like an uninterrupted run."""
    t_start = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = _tiny_cache(workdir, seed)
    ref = workdir / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    rc, duration, renames = count_renames(_train_cmd(cache, ref), log_path=workdir / "ref.log")
    if rc != 0:
        raise RuntimeError(f"reference training failed: {(workdir / 'ref.log').read_text()[-2000:]}")
    ref_state = json.loads((ref / "train_state.json").read_text())
    train_s = float(ref_state["elapsed_seconds"])  # the training part; startup (imports) is not worth killing in
    failures: list[str] = []
    outcomes: list[tuple[str, KillOutcome]] = []
    i = 0
    chain = 0
    while i < iterations:
        chain += 1
        run = workdir / f"run-{chain}"
        shutil.rmtree(run, ignore_errors=True)
        for _ in range(min(KILLS_PER_RUN, iterations - i)):
            if _status(run) == "finished":  # a kill missed and the run ended: the next kills need a new run
                break
            started = _replaced(run / "config.json")  # written when training starts, after the imports
            events = [
                ("the resume checkpoint's temp file appeared", _dir_has(run, ".last.safetensors.", ".tmp")),
                ("the best weights' temp file appeared", _dir_has(run, ".model.safetensors.", ".tmp")),
                ("metrics.jsonl's temp file appeared", _dir_has(run, ".metrics.jsonl.", ".tmp")),
                ("train_state.json's temp file appeared", _dir_has(run, ".train_state.json.", ".tmp")),
            ]
            left = max(0.1, 1.0 - _progress(run) / ref_state["global_step"])  # the part of the run still to train
            # a resumed run has fewer seconds and fewer file operations left than a whole one
            kind, point = _kill_point(rng, i, events, train_s * left, max(1, int(len(renames) * left * 0.8)))
            anchored = dataclasses.replace(point, anchor=started)
            tag = f"run {chain}, kill {i + 1} ({point.label})"
            o = kill_run(_train_cmd(cache, run, "--resume"), anchored, log_path=workdir / "kill.log")
            outcomes.append((kind, o))
            i += 1
            if not o.killed and o.returncode != 0:
                failures.append(f"{tag}: train ended with exit code {o.returncode}: {o.log[-400:]}")
            failures += [f"{tag}: {p}" for p in check_run_dir(run)]
        for _ in range(3):  # resume to the end (a finished run resumes to "nothing to do")
            rc, _ = timed_run(_train_cmd(cache, run, "--resume"), log_path=workdir / "resume.log")
            if rc == 0:
                break
        if rc != 0:
            failures.append(f"run {chain}: final resume failed ({rc}): {(workdir / 'resume.log').read_text()[-400:]}")
            continue
        failures += [f"run {chain}: {p}" for p in check_run_dir(run)]
        failures += [f"run {chain}: {d}" for d in _compare_runs(run, ref)]
        left = debris(run)
        if left:
            failures.append(f"run {chain}: temp files left in the run directory after the resume: {left}")
    runs, how = _tally(outcomes)
    return FaultResult(
        area=AREA,
        fault=f"kill -9 during `ecgscale train` (CPU, fp32, mid-epoch checkpoints), up to {KILLS_PER_RUN} kills per "
        "run, each followed by `train --resume`",
        how_often=how + f"; {chain} run(s) resumed to the end",
        checked=(
            "after each kill: every file in the run directory complete (safetensors load, JSON parses) and "
            "consistent (best weights vs resume state, metrics vs history); at the end: history (timings excluded), "
            "best and last weights, best epoch, score and thresholds identical to an uninterrupted run, no temp files"
        ),
        runs=runs,
        failures=failures,
        seconds=time.monotonic() - t_start,
        notes=f"uninterrupted run: {duration:.1f} s ({train_s:.1f} s of it training); fp32 pinned (bf16 autocast, "
        "the CPU default, is not compared)",
    )


# ------------------------------------------------------------------------------------------------ sweep
GRID = """
name = "kill"
seeds = [0, 1]
points = [
  {depth = 1, channels = 8, kernel_size = 3, gap = true},
  {depth = 2, channels = 8, kernel_size = 5, gap = false},
]
"""
SWEEP_ARGS = (
    *("--epochs", "3", "--batch-size", "16", "--threads", "1", "--heartbeat-interval", "1", "--grace-period", "2"),
    "--no-progress",
)


def _sweep_cmd(cache: Path, grid: Path, studies: Path, study: str) -> list[str]:
    return ecgscale_cmd(
        "sweep", "--study", study, "--grid", grid, "--cache", cache, "--studies-dir", studies, *SWEEP_ARGS
    )


def _trials(studies: Path, study: str) -> list[Any]:
    import optuna

    from ecgscale.study.storage import default_storage_url, open_storage

    url = default_storage_url(studies, study)
    try:
        return optuna.load_study(study_name=study, storage=open_storage(url)).get_trials(deepcopy=False)
    except KeyError:
        return []


def _point(t: Any) -> tuple[str, int] | None:
    return (str(t.params["config"]), int(t.params["seed"])) if "config" in t.params else None


def sweep_killed(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``ecgscale sweep`` (SQLite) killed repeatedly and re-run: every grid point COMPLETE exactly once."""
    from optuna.trial import TrialState

    t_start = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = _tiny_cache(workdir, seed)
    grid = workdir / "grid.toml"
    grid.write_text(GRID, encoding="utf-8")
    ref_studies = workdir / "reference"
    shutil.rmtree(ref_studies, ignore_errors=True)
    rc, duration, renames = count_renames(_sweep_cmd(cache, grid, ref_studies, "ref"), log_path=workdir / "ref.log")
    if rc != 0:
        raise RuntimeError(f"reference sweep failed: {(workdir / 'ref.log').read_text()[-2000:]}")
    reference = {_point(t): t.value for t in _trials(ref_studies, "ref") if t.state == TrialState.COMPLETE}
    failures: list[str] = []
    outcomes: list[tuple[str, KillOutcome]] = []
    i = chain = 0
    study = "killed"
    while i < iterations:
        chain += 1
        studies = workdir / f"studies-{chain}"
        shutil.rmtree(studies, ignore_errors=True)
        trial_root = studies / study / "trials"
        killed_running: set[int] = set()
        for _ in range(min(KILLS_PER_RUN, iterations - i)):
            trials = _trials(studies, study)
            before = {t.number for t in trials if t.state == TrialState.COMPLETE}
            if len(before) == len(reference):  # a kill missed and the sweep ended: the next kills need a new study
                break
            # only evaluations this run writes count, not those of trials finished earlier
            done = {p.parent.name for p in trial_root.glob("*/eval_test.json")}
            events = [
                ("a trial's resume checkpoint temp file appeared", _any_trial_has(trial_root, ".last.safetensors.")),
                (
                    "a trial's test evaluation was written (trial not yet COMPLETE)",
                    lambda root=trial_root, d=done: _new_eval(root, d),
                ),
            ]
            left = max(0.2, 1.0 - len(before) / len(reference))  # the part of the grid still to run
            kind, point = _kill_point(rng, i, events, duration * left, max(1, int(len(renames) * left * 0.8)))
            tag = f"study {chain}, kill {i + 1} ({point.label})"
            o = kill_run(_sweep_cmd(cache, grid, studies, study), point, log_path=workdir / "kill.log", timeout=600)
            outcomes.append((kind, o))
            i += 1
            if not o.killed and o.returncode != 0:
                failures.append(f"{tag}: sweep ended with exit code {o.returncode}: {o.log[-400:]}")
            trials = _trials(studies, study)
            killed_running |= {t.number for t in trials if t.state == TrialState.RUNNING}
            complete = collections.Counter(_point(t) for t in trials if t.state == TrialState.COMPLETE)
            dup = {p: n for p, n in complete.items() if n > 1}
            if dup:
                failures.append(f"{tag}: grid points COMPLETE more than once: {dup}")
            lost = before - {t.number for t in trials if t.state == TrialState.COMPLETE}
            if lost:
                failures.append(f"{tag}: trials {sorted(lost)} were COMPLETE before the kill and are not now")
        failures += [
            f"study {chain}: {p}"
            for p in _finish_sweep(
                workdir, _sweep_cmd(cache, grid, studies, study), studies, study, reference, killed_running
            )
        ]
    runs, how = _tally(outcomes)
    return FaultResult(
        area=AREA,
        fault=f"kill -9 during `ecgscale sweep` (SQLite, 2 configurations x 2 seeds, real training), up to "
        f"{KILLS_PER_RUN} kills per study, each followed by the same command",
        how_often=how + f"; {chain} studies run to the end",
        checked=(
            "after each kill: no grid point COMPLETE twice, no COMPLETE trial lost; at the end: every (configuration, "
            "seed) COMPLETE exactly once with the value of an uninterrupted sweep, killed trials FAIL, none left "
            "RUNNING/WAITING, study_results lists each point once"
        ),
        runs=runs,
        failures=failures,
        seconds=time.monotonic() - t_start,
        notes=f"uninterrupted sweep: {duration:.1f} s; heartbeat 1 s, grace period 2 s",
    )


def _any_trial_has(trial_root: Path, prefix: str) -> Callable[[], bool]:
    """A poll: some trial folder holds a temp file ``prefix...tmp``."""

    def check() -> bool:
        try:
            return any(_dir_has(Path(e.path), prefix, ".tmp")() for e in _scan(trial_root))
        except OSError:
            return False

    return check


def _finish_sweep(
    workdir: Path,
    cmd: list[str],
    studies: Path,
    study: str,
    reference: dict[tuple[str, int] | None, float | None],
    killed_running: set[int],
) -> list[str]:
    """Re-run a killed sweep to the end; the study must then hold each grid point exactly once, as the reference."""
    from optuna.trial import TrialState

    from ecgscale.study.results import study_results

    failures: list[str] = []
    text = ""
    for attempt in range(3):  # re-run until the study reports every point complete
        log = workdir / f"final-{attempt}.log"
        rc, _ = timed_run(cmd, log_path=log, timeout=600)
        text = log.read_text()
        if rc == 0 and "grid points complete" in text:
            break
    else:
        failures.append(f"the sweep did not complete after 3 re-runs: {text[-400:]}")
    trials = _trials(studies, study)
    complete = collections.Counter(_point(t) for t in trials if t.state == TrialState.COMPLETE)
    if sorted(complete) != sorted(reference) or set(complete.values()) != {1}:
        failures.append(f"COMPLETE trials per grid point {dict(complete)}; expected each of {sorted(reference)} once")
    by_number = {t.number: t for t in trials}
    for n in sorted(killed_running):
        if by_number[n].state not in (TrialState.FAIL, TrialState.COMPLETE):
            failures.append(f"trial {n}, running when its worker was killed, ended {by_number[n].state.name}")
    stuck = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if stuck:
        failures.append(f"trials {stuck} still RUNNING/WAITING after the sweep completed")
    for t in trials:
        if t.state == TrialState.COMPLETE and t.value != reference.get(_point(t)):
            want = reference.get(_point(t))
            failures.append(f"trial {t.number} {_point(t)}: value {t.value}, the uninterrupted sweep's {want}")
    try:
        table = study_results(study, studies_dir=studies)
        rows = collections.Counter(zip(table["config"], table["seed"], strict=True))
        if sorted(rows) != sorted(reference) or set(rows.values()) != {1}:
            failures.append(f"study_results lists {dict(rows)}; expected each grid point once")
    except Exception as exc:  # reported, not raised: the table is one of the checks
        failures.append(f"study_results failed: {type(exc).__name__}: {exc}")
    left = [d for d in debris(studies / study / "trials") if d.endswith(".tmp")]
    if left:
        failures.append(f"temp files left in trial folders: {left}")
    return failures


def _new_eval(trial_root: Path, done: set[str]) -> bool:
    return any(p.parent.name not in done for p in trial_root.glob("*/eval_test.json"))


SCENARIOS: list[Scenario] = [prepare_killed, prepare_rebuild_killed, train_killed, sweep_killed]
