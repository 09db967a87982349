"""Benchmark the synthetic generator: records/s per core and with 2 workers, against baselines in the same run.

Workload: the ``ptbxl_like`` profile at 500 Hz, 10 s, 12 leads, CinC 2021 files written (``.hea`` + ``.mat``).

Baselines measured in the same run, on the same machine state:

* **write only**: ``write_cinc2021`` of already generated signals, the floor any generator pays for the files;
* **naive render**: the same Gaussian waves evaluated the way a first script does it, one wave at a time over
  the whole time grid (``for wave in waves: dipole += amp * exp(...)``), against ``render_dipole``'s
  windowed single-pass evaluation;
* **masked render**: the previous ``render_dipole`` (boolean-masked gathers of the in-grid window samples),
  against the current one (out-of-grid samples weighted 0, no gathers); the two must agree bit for bit.

The machine is shared, so wall-clock numbers are noisy; single-process figures are therefore measured in CPU
time (``time.process_time``), the per-core rate, and the ratios are what to compare across runs.

    python benchmarks/bench_synth.py [--n 1000] [--big 20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ecgscale.data.writers import write_cinc2021
from ecgscale.synth import DEFAULT_SOURCES, generate, synth_record
from ecgscale.synth.dipole import Waves, render_dipole

PROFILE = "ptbxl_like"


def _run(out: Path, n: int, workers: int, seed: int = 0) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    c0, w0 = _cpu(), time.perf_counter()
    generate(out, n=n, seed=seed, sources=[PROFILE], fs=500, progress=False, workers=workers)
    return time.perf_counter() - w0, _cpu() - c0


def _cpu() -> float:
    """CPU seconds of this process plus its finished children (the pool workers, joined by ``generate``)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _naive_render(w: Waves, n: int, fs: float) -> np.ndarray:
    t = np.arange(n) / fs
    out = np.zeros((3, n))
    for c, s, a in zip(w.center, w.sigma, w.amp, strict=True):
        out += a[:, None] * np.exp(-0.5 * ((t - c) / s) ** 2)[None, :]
    return out


def _masked_render(w: Waves, n: int, fs: float) -> np.ndarray:
    """``render_dipole`` as it was before the zero-weight rewrite (kept here as the in-run baseline)."""
    out = np.zeros(3 * n)
    half = np.ceil(4.0 * w.sigma * fs).astype(np.int64)
    narrow = w.sigma < 0.016
    for mask in (narrow, ~narrow):
        if not mask.any():
            continue
        c, s, a = w.center[mask], w.sigma[mask], w.amp[mask]
        h = int(half[mask].max())
        idx = np.rint(c * fs).astype(np.int64)[:, None] + np.arange(-h, h + 1)[None, :]
        z = (idx / fs - c[:, None]) / s[:, None]
        g = np.exp(-0.5 * z * z)
        valid = (idx >= 0) & (idx < n)
        rows = np.nonzero(valid)[0]
        weights = (g[valid][None, :] * a[rows].T).ravel()
        bins = (idx[valid][None, :] + (np.arange(3) * n)[:, None]).ravel()
        out += np.bincount(bins, weights=weights, minlength=3 * n)
    return out.reshape(3, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="records per timed run")
    ap.add_argument("--big", type=int, default=0, help="also time this many records with 2 workers (e.g. 20000)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        _run(tmp / "warm", 20, 1)  # imports, caches
        wall1, cpu1 = _run(tmp / "w1", args.n, 1)
        wall2, cpu2 = _run(tmp / "w2", args.n, 2)

        profile = next(p for p in DEFAULT_SOURCES if p.name == PROFILE)
        rng = np.random.default_rng(0)
        recs = [synth_record(rng, profile, fs=500, duration_s=10.0) for _ in range(min(args.n, 300))]
        t0 = time.process_time()
        for i, r in enumerate(recs):
            write_cinc2021(tmp / "wo", f"W{i:05d}", r.signal, 500, age=r.params.age, sex=r.params.sex, codes=r.codes)
        write_only = time.process_time() - t0

        # Render comparison on realistic wave sets: one record's beats (~12 beats x ~9 waves).
        from ecgscale.synth.dipole import GROUP_T  # noqa: F401  (documents that T waves are included)

        waves = []
        for r in recs[:50]:
            rng2 = np.random.default_rng(1)
            from ecgscale.synth.morphology import beat_shapes
            from ecgscale.synth.rhythm import beat_train

            train = beat_train(rng2, r.params)
            shape = beat_shapes(r.params, rng2, 60.0 / r.measured["rate_bpm"]).N
            b = train.t.size
            waves.append(
                Waves(
                    (train.t[:, None] + shape.center[None]).ravel(),
                    np.tile(shape.sigma, b),
                    np.tile(shape.amp, (b, 1)),
                    np.tile(shape.group, b),
                )
            )
        t0 = time.process_time()
        for w in waves:
            fast = render_dipole(w, 5000, 500.0)
        t_fast = time.process_time() - t0
        t0 = time.process_time()
        for w in waves:
            slow = _naive_render(w, 5000, 500.0)
        t_slow = time.process_time() - t0
        err = float(np.abs(fast - slow).max())
        t0 = time.process_time()
        for w in waves:
            masked = _masked_render(w, 5000, 500.0)
        t_masked = time.process_time() - t0
        same = all(np.array_equal(render_dipole(w, 5000, 500.0), _masked_render(w, 5000, 500.0)) for w in waves)

        n = args.n
        print(f"synthetic benchmark, {PROFILE}: 12 leads, 500 Hz, 10 s, CinC 2021 files written")
        print(f"  workers=1: {n / wall1:8.0f} records/s wall, {n / cpu1:8.0f} records/s per CPU-second")
        print(
            f"  workers=2: {n / wall2:8.0f} records/s wall, {n / cpu2:8.0f} records/s per CPU-second "
            f"(wall x{wall1 / wall2:.2f} vs workers=1)"
        )
        print(
            f"  baseline write-only (write_cinc2021 of ready signals): {len(recs) / write_only:8.0f} records/s per "
            f"CPU-second; generating + writing costs x{(cpu1 / n) / (write_only / len(recs)):.1f} the write alone"
        )
        gen_only = cpu1 / n - write_only / len(recs)
        print(
            f"  generation alone (workers=1 CPU time minus the write baseline): {1.0 / gen_only:8.0f} records/s per "
            f"CPU-second; file writing is {100 * (1 - gen_only / (cpu1 / n)):.0f} % of the per-record cost"
        )
        print(
            f"  render (CPU time): windowed single pass {len(waves) / t_fast:8.0f} records/s vs naive per-wave "
            f"full grid {len(waves) / t_slow:8.0f} records/s (x{t_slow / t_fast:.1f} faster, max diff {err:.1e} mV)"
        )
        print(
            f"  render (CPU time): zero-weight single pass x{t_masked / t_fast:.2f} faster than the masked-gather "
            f"version it replaced ({'bit-identical' if same else 'DIFFERENT'})"
        )
        del masked
        if args.big:
            load = os.getloadavg()[0]
            wall_big, _ = _run(tmp / "big", args.big, 2)
            print(
                f"  {args.big} records with workers=2: {wall_big:.1f} s ({args.big / wall_big:.0f} records/s wall; "
                f"1-min load average {load:.1f} before the run)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
