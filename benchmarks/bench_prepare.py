"""Benchmark ``build_cache`` against a naive loop on the same files, in the same run.

Naive baseline (what a first script does): single process, ``wfdb.rdrecord`` + ``scipy.signal.resample`` (FFT)
per record, every array appended to a list, ``np.save`` at the end. Ours: ``build_cache`` with all cores
(read with the fast CinC reader, resampling + band-pass in one FFT, standardise, float16 written through shared
slots).

Both wall-clock records/s and records per CPU-second (parent + workers, from ``getrusage``) are printed: on a
shared machine the wall-clock ratio depends on how many cores other people leave free, the CPU-time ratio much
less so.

Memory: each build runs in a fresh subprocess for N and 2N records; the script reports the peak RSS of the
parent (``ru_maxrss``), of the largest worker (``RUSAGE_CHILDREN``) and the parent's peak of traced Python/numpy
allocations (``tracemalloc``), which must not grow with N.

    python benchmarks/bench_prepare.py [--n 400] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(out: Path, n: int, seed: int = 0) -> None:
    """N CinC 2021-format records, 500 Hz, 10 s (the synthetic generator when available)."""
    try:
        from ecgscale.synth import generate as synth_generate
    except ImportError:
        synth_generate = None
    if synth_generate is not None:
        # ptbxl_like: the 500 Hz, 10 s profile of the synthetic benchmark.
        synth_generate(out, n=n, seed=seed, format="cinc2021", sources=["ptbxl_like"], fs=500, progress=False)
        return
    from ecgscale.data.labels import cinc2021_scored
    from ecgscale.data.writers import write_cinc2021

    rng = np.random.default_rng(seed)
    codes = [c.codes[0] for c in cinc2021_scored().classes]
    t = np.arange(5000) / 500
    for i in range(n):
        beat = np.sin(2 * np.pi * rng.uniform(0.8, 1.8) * t) ** 15
        sig = beat[None, :] * rng.uniform(0.3, 1.5, (12, 1)) + 0.03 * rng.standard_normal((12, 5000))
        write_cinc2021(
            out / "training" / "synth" / "g1",
            f"B{i:05d}",
            sig.astype(np.float32),
            500,
            codes=(str(rng.choice(codes)),),
            age=60,
            sex="F",
        )


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call; CPU time is robust to other load on a shared machine."""
    c0, t0 = _cpu_seconds(), time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0, _cpu_seconds() - c0


def naive(src: Path, out: Path) -> float:
    import wfdb
    from scipy import signal as sps

    t0 = time.perf_counter()
    arrays = []
    for hea in sorted(src.rglob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        x = sps.resample(rec.p_signal, round(rec.sig_len * 250 / rec.fs), axis=0)
        arrays.append(x.T.astype(np.float32))
    np.save(out / "naive.npy", np.concatenate(arrays, axis=1))  # records may differ in length
    np.save(out / "naive_lengths.npy", np.array([a.shape[1] for a in arrays]))
    return time.perf_counter() - t0


def ours(src: Path, out: Path, workers: int | None, *, plain: bool = False) -> int:
    from ecgscale.data.cache import build_cache
    from ecgscale.data.transforms import PreprocessConfig

    # plain: only resampling (no band-pass, no standardisation), the same work as the naive loop
    config = PreprocessConfig(bandpass=None, standardize=False) if plain else PreprocessConfig()
    return build_cache([src], out, config=config, workers=workers, progress=False).n_records


def _memory_child(src: str, out: str, workers: int | None) -> None:
    """Runs in a subprocess: build a cache and report peak memory as JSON on stdout."""
    import resource
    import tracemalloc

    from ecgscale.data.cache import build_cache

    tracemalloc.start()
    summary = build_cache([src], out, workers=workers, progress=False)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "n": summary.n_records,
                "parent_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "parent_traced_mb": traced_peak / 2**20,
            }
        )
    )


def memory(src: Path, out: Path, workers: int | None) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--memory-child", str(src), str(out)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--memory-child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(*args.memory_child, args.workers)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        src_n, src_2n = tmp / "src_n", tmp / "src_2n"
        t0 = time.perf_counter()
        generate(src_n, args.n, seed=0)
        generate(src_2n, 2 * args.n, seed=1)
        print(f"generated {args.n} + {2 * args.n} CinC records (500 Hz, 10 s) in {time.perf_counter() - t0:.1f} s")
        print(f"cores: {os.cpu_count()}, workers: {args.workers or os.cpu_count()}")

        # Interleave the two so that load from other processes on a shared machine hits both alike.
        runs: dict[str, list[tuple[float, float]]] = {"naive": [], "default": [], "plain": [], "single": []}
        for rep in range(3):
            (tmp / f"naive{rep}").mkdir()
            runs["naive"].append(timed(naive, src_n, tmp / f"naive{rep}"))
            runs["default"].append(timed(ours, src_n, tmp / f"cache{rep}", args.workers))
            runs["plain"].append(timed(ours, src_n, tmp / f"plain{rep}", args.workers, plain=True))
            runs["single"].append(timed(ours, src_n, tmp / f"single{rep}", 1))
        n = args.n
        best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
        labels = {
            "naive": "naive: wfdb.rdrecord + scipy.signal.resample, 1 process",
            "default": "build_cache, default pipeline",
            "plain": "build_cache, resample only (no band-pass/standardise)",
            "single": "build_cache, default pipeline, 1 worker",
        }
        print(f"{'':<58}{'wall rec/s':>11}{'ratio':>7}{'rec/CPU-s':>11}{'ratio':>7}")
        for key, label in labels.items():
            wall, cpu = best[key]
            print(
                f"{label:<58}{n / wall:>11.1f}{best['naive'][0] / wall:>7.2f}{n / cpu:>11.1f}"
                f"{best['naive'][1] / cpu:>7.2f}"
            )
        print(
            f"speed-up of the default pipeline (wall): {best['naive'][0] / best['default'][0]:.2f}x "
            f"(target >= 3x); {n} records"
        )
        print("load average during the run:", " ".join(f"{v:.1f}" for v in os.getloadavg()))
        mem_n = memory(src_n, tmp / "mem_n", args.workers)
        mem_2n = memory(src_2n, tmp / "mem_2n", args.workers)
        print("peak memory          N={:<6d} 2N={:<6d} ratio".format(mem_n["n"], mem_2n["n"]))
        for key, label in (
            ("parent_rss_mb", "parent RSS (MB)"),
            ("worker_rss_mb", "worker RSS (MB)"),
            ("parent_traced_mb", "parent traced (MB)"),
        ):
            print(f"{label:<20} {mem_n[key]:<8.1f} {mem_2n[key]:<9.1f} {mem_2n[key] / max(mem_n[key], 1e-9):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
