"""GPU training throughput at the arithmetic limit: records/s and achieved FLOP/s as a fraction of the device's peak.

    .venv/bin/python benchmarks/bench_gpu.py [--cache CACHE] [--configs D2-C64-K9,D16-C256-K33] [--fs 250,500]

Runs on CUDA only; without a CUDA device it says so and exits with status 2 (``--allow-cpu`` runs the same code
on the CPU, to check the script, not to measure anything). In one run:

* the device's peak: a large bf16 matmul (fp32 on CPU), timed; FLOP/s = 2 n³ / time;
* per configuration and rate: forward + backward + AdamW steps on a batch already in device memory (10-s windows,
  the cache's layout), bf16 autocast on CUDA; records/s and achieved FLOP/s = records/s × 3 × forward FLOPs
  (``ecgscale.models.cost``; backward ≈ 2 × forward) as a fraction of the peak;
* with ``--cache``: the smallest configuration fed by a plain ``torch.utils.data.DataLoader`` over the cache's
  train split (random crops, ``--loader-workers`` processes, pinned memory) in the same run, the baseline an
  input-bound loop reaches;
* the projected GPU-hours of the ``paper`` grid (250 configurations) on the CinC-2021-size corpus (88,253 records,
  30 epochs) at 250 Hz: each configuration's FLOPs at the achieved FLOP/s of the measured configuration nearest
  in FLOPs per record (an estimate: only the measured configurations are measurements).

Issue 15's targets: the largest configurations at >= 50% of the bf16 peak; the paper grid <= 8 GPU-hours on one
H100-class device. Nothing here has been run on a GPU yet.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import torch

DEFAULT_CONFIGS = "D2-C64-K9,D4-C64-K9,D8-C128-K17,D16-C256-K33"
RECORDS, EPOCHS = 88253, 30  # the CinC 2021 training set, the paper's epochs


@dataclass
class Row:
    key: str
    fs: int
    batch: int
    records_per_s: float
    flops_per_record: int
    achieved: float


def parse_key(key: str) -> tuple[int, int, int]:
    parts = dict((p[0], int(p[1:])) for p in key.split("-") if p[:1] in "DCK" and p[1:].isdigit())
    if set(parts) != {"D", "C", "K"}:
        raise SystemExit(f"bad configuration {key!r}; expected e.g. D2-C64-K9")
    return parts["D"], parts["C"], parts["K"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int, repeats: int) -> float:
    """FLOP/s of an n × n matmul in bf16 on CUDA (fp32 on CPU), best of ``repeats``."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up (kernel selection)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 5)
    return 2 * n**3 / best


def train_steps(model: torch.nn.Module, batches, device: torch.device, steps: int) -> float:
    """Seconds per step over ``steps`` steps after 3 warm-up steps; ``batches`` yields (x, y) on any device."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    it = iter(batches)

    def step() -> None:
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast:
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def resident(x: torch.Tensor, y: torch.Tensor):
    while True:
        yield x, y


def measure(key: str, fs: int, batch: int, steps: int, device: torch.device, peak: float, n: int | None = None) -> Row:
    """One configuration trained on a batch held in device memory; ``n`` samples per record (default 10 s)."""
    from ecgscale.models import build_resnet1d, cost

    d, c, k = parse_key(key)
    n = int(fs * 10) if n is None else n
    model = build_resnet1d(d, c, k, gap=True, n_classes=26).to(device)
    flops = int(cost(model.config, n).flops)
    x = torch.randn(batch, 12, n, device=device)
    y = (torch.rand(batch, 26, device=device) < 0.1).float()
    sec = train_steps(model, resident(x, y), device, steps)
    rps = batch / sec
    return Row(key, fs, batch, rps, flops, rps * 3 * flops / peak)


def loader_baseline(
    cache_path: str, key: str, batch: int, steps: int, workers: int, device: torch.device, peak: float
) -> tuple[float, Row]:
    """records/s of the training step fed by a plain DataLoader over the cache (random crops), and the same step
    on a batch of the cache's window length held in device memory (the comparison at equal arithmetic)."""
    from ecgscale.data.cache import open_cache
    from ecgscale.models import build_resnet1d

    cache = open_cache(cache_path)
    held = measure(key, int(cache.config.fs), batch, steps, device, peak, n=int(cache.window_length))
    ds = cache.dataset("train", train=True, seed=0)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )

    def endless():
        while True:
            yield from loader

    d, c, k = parse_key(key)
    model = build_resnet1d(d, c, k, gap=True, n_classes=len(cache.label_space)).to(device)
    return batch / train_steps(model, endless(), device, steps), held


def project_paper_grid(rows: list[Row]) -> float:
    """GPU-hours of the paper grid at 250 Hz: each configuration at its nearest measured configuration's FLOP/s."""
    from ecgscale.models import ResNet1dConfig, cost
    from ecgscale.study.grids import paper_grid

    measured = [r for r in rows if r.fs == 250] or rows
    seconds = 0.0
    for p in paper_grid().points:
        cfg = ResNet1dConfig(
            depth=p.depth, channels=p.channels, kernel_size=p.kernel_size, gap=p.gap, n_classes=26, input_length=2500
        )
        flops = int(cost(cfg, 2500).flops)
        near = min(measured, key=lambda r: abs(r.flops_per_record - flops) / max(r.flops_per_record, flops))
        flops_per_s = near.records_per_s * 3 * near.flops_per_record
        seconds += RECORDS * EPOCHS * 3 * flops / flops_per_s
    return seconds / 3600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma-separated D-C-K keys (GAP on)")
    ap.add_argument("--fs", default="250,500", help="comma-separated rates (10-s windows)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--matmul", type=int, default=8192, help="matmul size for the peak")
    ap.add_argument("--cache", default=None, help="a prepared cache for the DataLoader baseline")
    ap.add_argument("--loader-workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--no-projection", action="store_true", help="skip the paper-grid projection")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU to check the script (not a measurement)")
    args = ap.parse_args()

    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    elif args.allow_cpu:
        device, name = torch.device("cpu"), "CPU (--allow-cpu: a check of the script, not a GPU measurement)"
    else:
        print("bench_gpu.py: no CUDA device here; run it on a GPU machine (--allow-cpu only checks the script)")
        sys.exit(2)
    peak = matmul_peak(device, args.matmul, repeats=3)
    print(f"device: {name}; torch {torch.__version__}; measured matmul peak {peak / 1e12:.3g} TFLOP/s", flush=True)
    rows = []
    for fs in (int(f) for f in args.fs.split(",")):
        for key in args.configs.split(","):
            r = measure(key.strip(), fs, args.batch, args.steps, device, peak)
            rows.append(r)
            print(
                f"{r.key} @ {fs} Hz, batch {r.batch}: {r.records_per_s:,.0f} records/s, "
                f"{r.records_per_s * 3 * r.flops_per_record / 1e12:.3g} TFLOP/s = {r.achieved:.1%} of the peak",
                flush=True,
            )
    if args.cache:
        small = min(rows, key=lambda r: r.flops_per_record)
        rps, held = loader_baseline(args.cache, small.key, args.batch, args.steps, args.loader_workers, device, peak)
        print(
            f"DataLoader baseline ({args.loader_workers} workers), {small.key} on the cache's windows "
            f"({held.fs} Hz): {rps:,.0f} records/s vs {held.records_per_s:,.0f} with the batch in device memory",
            flush=True,
        )
    if not args.no_projection:
        hours = project_paper_grid(rows)
        print(
            f"paper grid (250 configurations) x {RECORDS:,} records x {EPOCHS} epochs at 250 Hz: "
            f"~{hours:.1f} device-hours projected from the measured configurations (target <= 8 on an H100)",
            flush=True,
        )


if __name__ == "__main__":
    main()
