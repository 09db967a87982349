"""Training throughput (records/s) of ecgscale's training path against a naive PyTorch loop, in one run.

    .venv/bin/python benchmarks/bench_train.py [--n 300 --epochs 2 --depth 4 --channels 32 --kernel 9 ...]

Both train the same ResNet1d on the same synthetic CinC 2021 records (``ecgscale.synth.generate``; sources at
257-1000 Hz) at 250 Hz x 10 s windows with the same batch size:

- ours: ``train_run`` on a prepared cache (``ecgscale prepare`` once, outside the timed part): batches are
  sliced from the in-memory cache, bf16 autocast on CPU (``precision="auto"``);
- naive: a plain fp32 loop over a ``DataLoader`` whose dataset reads every record with ``wfdb.rdrecord`` and
  resamples it with ``scipy.signal.resample`` on every access (every epoch), then standardises and centre-crops.

Only training steps are timed (data loading included, validation excluded) over the same number of epochs.
One-time costs are paid before any timing (torch's lazy imports at the first optimiser step). The two are
measured alternately for ``--rounds`` rounds and the best round of each is compared, which keeps a busy
machine's load spikes from deciding the ratio; absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


class NaiveWfdbDataset(torch.utils.data.Dataset):
    """Reads and resamples the raw WFDB record on every ``__getitem__``: what a first training script does."""

    def __init__(self, headers: list[Path], space, fs: int, window: int):
        import wfdb

        self.records = [str(h.with_suffix("")) for h in headers]
        self.fs = fs
        self.window = window
        labels = []
        for rec in self.records:
            header = wfdb.rdheader(rec)
            codes = []
            for line in header.comments:
                if line.startswith("Dx:"):
                    codes = [c.strip() for c in line.split(":", 1)[1].split(",")]
            labels.append(space.encode(codes))
        self.labels = np.asarray(labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        import wfdb
        from scipy.signal import resample

        rec = wfdb.rdrecord(self.records[i])
        x = np.nan_to_num(rec.p_signal.T.astype(np.float32))
        n_out = round(x.shape[1] * self.fs / rec.fs)
        x = resample(x, n_out, axis=1).astype(np.float32)
        x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
        if x.shape[1] >= self.window:
            start = (x.shape[1] - self.window) // 2
            x = x[:, start : start + self.window]
        else:
            x = np.pad(x, ((0, 0), (0, self.window - x.shape[1])))
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.labels[i])


def naive_train(dataset, model_config: dict, epochs: int, batch_size: int, lr: float, seed: int) -> tuple[float, float]:
    """Records per wall second and per CPU second of a plain fp32 loop: DataLoader -> forward -> BCE -> AdamW."""
    from ecgscale.models import ResNet1d, ResNet1dConfig

    model = ResNet1d(ResNet1dConfig.from_dict(model_config), generator=seed)  # the same model, same layout
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed)
    )
    model.train()
    seen = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            seen += len(x)
    return seen / (time.perf_counter() - start), seen / (time.process_time() - cpu)


def _warm_up() -> None:
    """Pay torch's one-time lazy imports (first AdamW step, autocast) before anything is timed."""
    layer = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(layer.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(2, 4))
    out.float().sum().backward()
    torch.nn.utils.clip_grad_norm_(layer.parameters(), 1.0)
    opt.step()


def _parse_model(tag: str) -> dict:
    try:
        d, c, k = (int(part[1:]) for part in tag.upper().split("-"))
    except ValueError:
        raise SystemExit(f"--models: {tag!r} is not D<depth>-C<channels>-K<kernel>, e.g. D4-C32-K9") from None
    return {"depth": d, "channels": c, "kernel_size": k}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="synthetic records")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--models",
        default="D2-C16-K9,D4-C32-K9",
        help="comma-separated D-C-K tags; the data share of a step shrinks as the model grows",
    )
    p.add_argument("--fs", type=int, default=250)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3, help="alternating measurements of each; the best counts")
    p.add_argument("--workdir", type=Path, default=None, help="keep data here (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [_parse_model(t) for t in args.models.split(",") if t.strip()]

    from ecgscale.data.cache import build_cache, open_cache
    from ecgscale.data.labels import cinc2021_scored
    from ecgscale.data.splits import SplitConfig
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.synth import generate
    from ecgscale.train import TrainConfig, train_run

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = args.workdir or Path(tmp)
        tree = work / "synth"
        if not tree.exists():
            generate(tree, n=args.n, seed=args.seed, format="cinc2021", progress=False)
        config = PreprocessConfig(fs=args.fs, window_s=args.window, max_store_s=max(args.window, 10.0))
        t0 = time.perf_counter()
        build_cache(
            [tree],
            work / "cache",
            config=config,
            workers=1,
            progress=False,
            split=SplitConfig(method="stratified", fractions=(0.8, 0.2, 0.0)),
        )
        prepare_s = time.perf_counter() - t0
        cache = open_cache(work / "cache")
        window = cache.window_length
        manifest = cache.manifest
        train_paths = [Path(p).with_suffix(".hea") for p in manifest.loc[manifest["split"] == "train", "path"]]
        naive_ds = NaiveWfdbDataset(train_paths, cinc2021_scored(), args.fs, window)
        cfg = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=1e-3,
            precision="auto",
            seed=args.seed,
            patience=None,
            checkpoint_every=0,
            deterministic=False,
        )
        _warm_up()
        for spec in models:
            model = {**spec, "n_classes": len(cache.label_space)}
            ours_wall, ours_cpu, naive_wall, naive_cpu = [], [], [], []
            for r in range(args.rounds):
                res = train_run(cache, model, cfg, work / f"run-{r}-{time.time_ns()}", progress=False)
                ours_wall.append(res.records_per_s)
                ours_cpu.append(res.records_per_cpu_s)
                wall, cpu = naive_train(naive_ds, model, args.epochs, args.batch_size, 1e-3, args.seed)
                naive_wall.append(wall)
                naive_cpu.append(cpu)
            results.append(
                {
                    "model": f"D{spec['depth']}-C{spec['channels']}-K{spec['kernel_size']}",
                    "ours_precision": res.precision,
                    "ours_records_per_s": round(max(ours_wall), 1),
                    "naive_records_per_s": round(max(naive_wall), 1),
                    "speedup": round(max(ours_wall) / max(naive_wall), 2),
                    "ours_records_per_cpu_s": round(max(ours_cpu), 1),
                    "naive_records_per_cpu_s": round(max(naive_cpu), 1),
                    "speedup_cpu_time": round(max(ours_cpu) / max(naive_cpu), 2),
                    "rounds_ours": [round(v, 1) for v in ours_wall],
                    "rounds_naive": [round(v, 1) for v in naive_wall],
                }
            )

    out = {
        "records_train": len(naive_ds),
        "window_samples": window,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "prepare_seconds_once": round(prepare_s, 2),
        "models": results,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"training throughput: {out['records_train']} synthetic CinC records x {args.epochs} epochs, batch "
        f"{args.batch_size}, {window}-sample windows, {out['threads']} threads, best of {args.rounds} alternating "
        f"rounds; cache prepared once in {prepare_s:.1f} s"
    )
    print(
        "  ours  = train_run on the cache, bf16 autocast; naive = fp32 loop, DataLoader with wfdb.rdrecord + "
        "scipy.signal.resample per item"
    )
    print(
        f"  {'model':<12} {'ours rec/s':>11} {'naive rec/s':>12} {'speedup':>8}   {'per CPU-s: ours':>15} "
        f"{'naive':>8} {'ratio':>6}"
    )
    for r in results:
        print(
            f"  {r['model']:<12} {r['ours_records_per_s']:>11.1f} {r['naive_records_per_s']:>12.1f} "
            f"{r['speedup']:>7.2f}x   {r['ours_records_per_cpu_s']:>15.1f} {r['naive_records_per_cpu_s']:>8.1f} "
            f"{r['speedup_cpu_time']:>5.2f}x"
        )
    print("  target: >= 4x. Per-CPU-second figures are less sensitive to other load on the machine.")


if __name__ == "__main__":
    main()
