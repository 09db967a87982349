"""Throughput of an ``axes`` sweep with 1 vs 2 worker processes, and the share of wall time outside training.

    .venv/bin/python benchmarks/bench_sweep.py [--records 300 --epochs 4 --out /tmp/bench_sweep]

Both runs happen in this invocation on the same synthetic cache and grid (a reduced axes grid: base D2 C16 K5,
D ∈ {1, 2, 4}, C ∈ {8, 16, 32}, K ∈ {3, 5, 9}, GAP on/off = 14 points), each worker with one torch thread:

* trials/hour of each run, and the scaling efficiency = trials/hour(2 workers) / (2 × trials/hour(1 worker));
* outside-training share = 1 − Σ trial train_seconds / (workers × wall): process start, evaluation of val and
  test, per-source predictions and the optuna storage (target < 10% for real trial lengths);
* per-trial bookkeeping share = 1 − Σ train_seconds / Σ trial_seconds (the part inside the trials).

All numbers come from the trial timings stored in the studies, measured in the same run, and are printed as
ratios; absolute times on a shared machine mean little.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = """
name = "bench-axes"
base = {depth = 2, channels = 16, kernel_size = 5}
[vary]
depth = [1, 2, 4]
channels = [8, 16, 32]
kernel_size = [3, 5, 9]
gap = [true, false]
"""


def run_workers(n: int, *, cache: Path, grid: Path, studies: Path, epochs: int, name: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "ecgscale",
        "-q",
        "sweep",
        "--study",
        name,
        "--cache",
        str(cache),
        "--grid",
        str(grid),
        "--epochs",
        str(epochs),
        "--studies-dir",
        str(studies),
        "--threads",
        "1",
        "--no-progress",
        "--heartbeat-interval",
        "10",
    ]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(n)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = ap.parse_args()

    from ecgscale.data.cache import build_cache
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.study.results import study_results
    from ecgscale.synth import generate

    work = args.out or Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tree, cache, studies = work / "synth", work / "cache", work / "studies"
        if not cache.exists():
            generate(tree, n=args.records, seed=0, format="cinc2021", progress=False)
            build_cache(
                [tree],
                cache,
                config=PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0),
                workers=1,
                progress=False,
            )
        grid = work / "grid.toml"
        grid.write_text(GRID)
        shutil.rmtree(studies, ignore_errors=True)
        rows = {}
        for n in (1, 2):
            name = f"bench-{n}w"
            wall = run_workers(n, cache=cache, grid=grid, studies=studies, epochs=args.epochs, name=name)
            df = study_results(name, studies_dir=studies)
            train, trial = float(df.train_seconds.sum()), float(df.trial_seconds.sum())
            rows[n] = {
                "trials": len(df),
                "wall": wall,
                "tph": len(df) / wall * 3600,
                "outside": 1 - train / (n * wall),
                "bookkeeping": 1 - train / trial,
                "fixed": (n * wall - train) / len(df),
                "train_per_trial": train / len(df),
            }
            print(
                f"{n} worker(s): {len(df)} trials in {wall:.1f} s = {rows[n]['tph']:.0f} trials/hour; "
                f"outside training {rows[n]['outside']:.1%} of worker time; "
                f"inside trials but outside training {rows[n]['bookkeeping']:.1%}"
            )
        eff = rows[2]["tph"] / (2 * rows[1]["tph"])
        print(
            f"speed-up 2 vs 1 worker: {rows[2]['tph'] / rows[1]['tph']:.2f}x; scaling efficiency {eff:.0%} "
            f"(cores: {os.cpu_count()}, load now: {os.getloadavg()[0]:.1f})"
        )
        r1 = rows[1]
        per_epoch = r1["train_per_trial"] / args.epochs
        need = 9 * r1["fixed"]  # share F / (F + T) < 10%  <=>  T > 9 F
        print(
            f"outside-training share (1 worker): {r1['outside']:.1%} "
            f"({'meets' if r1['outside'] < 0.10 else 'misses'} the < 10% target); fixed cost "
            f"{r1['fixed']:.2f} s per trial vs {r1['train_per_trial']:.2f} s of training; the share drops under 10% "
            f"once a trial trains > {need:.1f} s (~{need / max(per_epoch, 1e-9):.0f} epochs of this data set)"
        )
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
