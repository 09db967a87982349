"""Throughput of an ``axes`` sweep with 1 vs 2 worker processes, and the share of time spent outside training.

    .venv/bin/python benchmarks/bench_sweep.py [--preset tiny|demo|both] [--repeats N] [--launch command|processes]

Every run happens in this invocation, on synthetic caches built here, with the same 14-point reduced axes grid
(base D2 C16 K5; D ∈ {1, 2, 4}, C ∈ {8, 16, 32}, K ∈ {3, 5, 9}; GAP on/off), each worker one torch thread,
started exactly as a user would: one ``ecgscale sweep --workers N`` command (``--launch command``, the default),
or N ``ecgscale sweep`` commands on the same study (``--launch processes``, each paying its own start-up):

* ``tiny``: 300 records, 4 epochs (trials train for about a second): the worst case for fixed costs;
* ``demo``: 1000 records, 5 epochs, batch 64, lr 3e-3 (the sweep stage of ``ecgscale demo --preset full``):
  trials train for several seconds, as in real use, where trials are longer still.

Printed per preset and worker count, all from one run (ratios; absolute times on a shared machine mean little):

* trials/hour and the scaling efficiency = trials/hour(2 workers) / (2 × trials/hour(1 worker));
* outside-training share of worker wall time = 1 − Σ trial ``train_seconds`` / (workers × wall), split into
  process start/exit (interpreter, torch and optuna imports, storage, cache), between trials (optuna
  ask/tell, grid bookkeeping) and inside trials but outside training (test evaluation, per-source metrics,
  trial attributes);
* the same share in CPU time = 1 − Σ trial ``train_cpu_seconds`` / CPU (user + sys) of the worker processes,
  which the other jobs on a shared machine disturb far less than wall time;
* the steady-state share: the same, from each worker's first trial start to its last trial end (what a long
  sweep, whose process start and exit are amortised over many trials, pays per trial).

``--repeats N`` runs N seeds per grid point (14 × N trials per sweep). The load average is printed with the figures:
on a machine where other jobs keep the cores busy, neither the 2-worker speed-up nor the wall shares mean much.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
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

#: name -> (records, sweep CLI options)
PRESETS = {
    "tiny": (300, ["--epochs", "4"]),
    "demo": (1000, ["--epochs", "5", "--batch-size", "64", "--lr", "3e-3"]),
}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_workers(
    n: int, *, cache: Path, grid: Path, studies: Path, options: list[str], name: str, launch: str = "command"
) -> dict:
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
        *options,
        "--studies-dir",
        str(studies),
        "--threads",
        "1",
        "--no-progress",
        "--heartbeat-interval",
        "10",
    ]
    cpu0 = _children_cpu()
    start = datetime.now()
    t0 = time.perf_counter()
    if launch == "command":
        procs = [subprocess.Popen([*cmd, "--workers", str(n)], stdout=subprocess.DEVNULL)]
    else:
        procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(n)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return {"wall": wall, "cpu": _children_cpu() - cpu0, "start": start}


def measure(n: int, run: dict, name: str, studies: Path) -> dict:
    from optuna.trial import TrialState

    from ecgscale.study.results import load_study

    trials = load_study(name, studies_dir=studies).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    train = sum(t.user_attrs["train_seconds"] for t in trials)
    inside = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    cpu_train = [t.user_attrs.get("train_cpu_seconds") for t in trials]
    # Each worker's span from its first trial's start to its last trial's end; the rest of its wall is start/exit.
    spans: dict[str, list[datetime]] = {}
    for t in trials:
        s = spans.setdefault(t.user_attrs.get("worker", "?"), [t.datetime_start, t.datetime_complete])
        s[0], s[1] = min(s[0], t.datetime_start), max(s[1], t.datetime_complete)
    in_span = sum((b - a).total_seconds() for a, b in spans.values())
    total = n * run["wall"]
    first = sum((a - run["start"]).total_seconds() for a, _ in spans.values())
    # A worker with nothing left to start waits for the others' last trials (it would pick up their retries).
    study_end = max(b for _, b in spans.values())
    tail = sum((study_end - b).total_seconds() for _, b in spans.values())
    row = {
        "trials": len(trials),
        "wall": run["wall"],
        "tph": len(trials) / run["wall"] * 3600,
        "train_per_trial": train / len(trials),
        "outside": 1 - train / total,
        "start_exit": (total - in_span) / total,
        "start": first / total,
        "tail": tail / total,
        "between": (in_span - inside) / total,
        "inside": (inside - train) / total,
        "fixed": (total - train) / len(trials),
        "fixed_in_trial": (inside - train) / len(trials),
        # Steady state: from each worker's first trial start to its last trial end (process start/exit left out).
        "steady_outside": 1 - train / in_span,
        "steady_fixed": (in_span - train) / len(trials),
        "cpu": run["cpu"],
        "cpu_outside": None,
    }
    if all(c is not None for c in cpu_train):
        row["cpu_outside"] = 1 - sum(cpu_train) / run["cpu"]
        row["cpu_train_per_trial"] = sum(cpu_train) / len(trials)
        row["cpu_fixed"] = (run["cpu"] - sum(cpu_train)) / len(trials)
    return row


def bench(preset: str, work: Path, *, repeats: int = 1, launch: str = "command") -> None:
    from ecgscale.data.cache import build_cache
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.synth import generate

    records, options = PRESETS[preset]
    options = [*options, "--repeats", str(repeats)]  # more trials per worker amortise its start and exit
    tree, cache, studies = work / f"synth-{records}", work / f"cache-{records}", work / f"studies-{preset}"
    if not cache.exists():
        generate(tree, n=records, seed=0, format="cinc2021", progress=False)
        build_cache(
            [tree], cache, config=PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0), workers=1, progress=False
        )
    grid = work / "grid.toml"
    grid.write_text(GRID)
    shutil.rmtree(studies, ignore_errors=True)
    la = os.getloadavg()
    print(
        f"== preset {preset}: {records} records, sweep options {' '.join(options)}, workers launched as {launch}; "
        f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores",
        flush=True,
    )
    rows = {}
    for n in (1, 2):
        name = f"bench-{preset}-{n}w"
        run = run_workers(n, cache=cache, grid=grid, studies=studies, options=options, name=name, launch=launch)
        r = rows[n] = measure(n, run, name, studies)
        cpu = "" if r["cpu_outside"] is None else f"; CPU time outside training {r['cpu_outside']:.1%}"
        print(
            f"{n} worker(s): {r['trials']} trials in {r['wall']:.1f} s = {r['tph']:.0f} trials/hour, "
            f"{r['train_per_trial']:.2f} s training per trial; {r['cpu'] / r['wall']:.2f} cores used "
            f"(CPU time / wall: other jobs on the machine take the rest)\n"
            f"  wall time outside training {r['outside']:.1%} = process start/exit {r['start_exit']:.1%} "
            f"(start to first trial {r['start']:.1%}, waiting for the other worker's last trial {r['tail']:.1%}) "
            f"+ between trials {r['between']:.1%} + inside trials {r['inside']:.1%}{cpu}\n"
            f"  steady state (first trial start to last trial end of each worker): {r['steady_outside']:.1%} "
            f"outside training, {r['steady_fixed']:.3f} s per trial",
            flush=True,
        )
    eff = rows[2]["tph"] / (2 * rows[1]["tph"])
    r1 = rows[1]
    need = 9 * r1["fixed"]  # share F / (F + T) < 10%  <=>  T > 9 F
    cpu_fixed = f", {r1['cpu_fixed']:.2f} CPU-s" if r1.get("cpu_fixed") is not None else ""
    load = os.getloadavg()
    print(
        f"speed-up 2 vs 1 worker: {rows[2]['tph'] / rows[1]['tph']:.2f}x; scaling efficiency {eff:.0%} "
        f"(cores: {os.cpu_count()}, load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})\n"
        f"1 worker: {r1['outside']:.1%} of wall time outside training "
        f"({'meets' if r1['outside'] < 0.10 else 'misses'} the < 10% target); fixed cost {r1['fixed']:.2f} s"
        f"{cpu_fixed} per trial ({r1['fixed_in_trial']:.2f} s of it inside the trial) vs "
        f"{r1['train_per_trial']:.2f} s of training: under 10% once trials train > {need:.1f} s",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("tiny", "demo", "both"), default="both")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--repeats", type=int, default=1, help="seeds per grid point (14 x REPEATS trials per sweep)")
    ap.add_argument(
        "--launch",
        choices=("command", "processes"),
        default="command",
        help="N workers as one `sweep --workers N` command (default) or as N sweep commands",
    )
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for preset in ("tiny", "demo") if args.preset == "both" else (args.preset,):
            bench(preset, work, repeats=args.repeats, launch=args.launch)
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
