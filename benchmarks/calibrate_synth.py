"""Calibrate the synthetic benchmark's difficulty: a small ResNet vs. a trivial baseline, AUROC per label group.

The benchmark is useful for a scale study only if (a) a small ResNet learns it (macro AUROC well above 0.5),
(b) it does not saturate (some label groups stay below 0.99), and (c) a trivial model scores clearly lower.
The trivial model is a logistic regression on per-lead summary statistics (mean, std, min, max,
percentiles, dominant frequency, band powers) — it sees amplitudes and spectra but no beat morphology.

Steps: generate ``--n`` records (default sources, seed 0) → ``build_cache`` at 100 Hz, 10 s windows →
logistic baseline (scikit-learn) and ResNet (``ecgscale.train.train_run``, CPU, ``--minutes`` budget) on the
same train/val/test split → macro AUROC per label group on the test split.

    python benchmarks/calibrate_synth.py [--n 4000] [--minutes 4] [--workdir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ecgscale.data.labels import LABEL_GROUPS, cinc2021_scored
from ecgscale.synth.baseline import fit_predict_summary_logistic


def group_aurocs(y: np.ndarray, p: np.ndarray, space) -> tuple[dict[str, float], dict[str, float]]:
    per_label: dict[str, float] = {}
    for k, cls in enumerate(space.classes):
        if 0 < y[:, k].sum() < len(y):
            per_label[cls.abbreviation] = float(roc_auc_score(y[:, k], p[:, k]))
    groups = {}
    for g, members in LABEL_GROUPS.items():
        vals = [per_label[m] for m in members if m in per_label]
        if vals:
            groups[g] = float(np.mean(vals))
    groups["macro"] = float(np.mean(list(per_label.values())))
    return groups, per_label


def logistic_baseline(
    cache, fs: float, *, band_powers: bool = False, train: str = "train", test: str = "test"
) -> np.ndarray:
    xtr, ytr = cache.get_batch(cache.indices(train))
    xte, _ = cache.get_batch(cache.indices(test))
    return fit_predict_summary_logistic(xtr, ytr, xte, fs, band_powers=band_powers)


def leave_one_source_out(cache, space, fs: float) -> dict[str, dict[str, float]]:
    """Macro AUROC of the logistic baseline on each source: trained with it (random split) vs. without it."""
    from ecgscale.data.splits import SplitConfig

    sources = sorted(cache.manifest["source"].unique())
    test_idx = cache.indices("test")
    src_of = cache.manifest["source"].to_numpy()
    p_in = logistic_baseline(cache, fs)
    out = {}
    for s in sources:
        sel = src_of[test_idx] == s
        y_in = cache.labels[test_idx[sel]]
        in_dist = group_aurocs(y_in, p_in[sel], space)[0]["macro"]
        loso = cache.with_split(SplitConfig(method="source", test_sources=(s,), fractions=(0.9, 0.1, 0.0)))
        y_out = loso.labels[loso.indices("test")]
        held_out = group_aurocs(y_out, logistic_baseline(loso, fs), space)[0]["macro"]
        out[s] = {"in_distribution": in_dist, "held_out": held_out}
    return out


def resnet(
    cache, space, run_dir: Path, minutes: float, seed: int, *, depth: int, channels: int, kernel: int, epochs: int
) -> np.ndarray:
    import torch

    from ecgscale.models import ResNet1dConfig
    from ecgscale.train import TrainConfig, load_run, train_run

    model_cfg = ResNet1dConfig(depth=depth, channels=channels, kernel_size=kernel, n_classes=len(space))
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        max_minutes=minutes,
        patience=None,
        seed=seed,
        device="cpu",
        precision="fp32",
        pos_weight=True,
        warmup_epochs=0.5,
    )
    train_run(cache, model_cfg, train_cfg, run_dir, progress=False)
    loaded = load_run(run_dir)
    te = cache.indices("test")
    probs = []
    with torch.no_grad():
        for i in range(0, len(te), 256):
            x, _ = cache.get_batch(te[i : i + 256])
            probs.append(torch.sigmoid(loaded.model(torch.from_numpy(x))).numpy())
    return np.concatenate(probs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--minutes", type=float, default=8.0, help="ResNet training budget (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--kernel", type=int, default=9)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--workdir", type=Path, default=None, help="keep data, cache and run here (default: temp)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--loso", action="store_true", help="also: logistic baseline leave-one-source-out")
    ap.add_argument("--json", type=Path, default=None, help="write the table as JSON")
    args = ap.parse_args()

    from ecgscale.data.cache import build_cache, open_cache
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.synth import generate

    work = args.workdir or Path(tempfile.mkdtemp(prefix="calib_synth_"))
    work.mkdir(parents=True, exist_ok=True)
    space = cinc2021_scored()
    try:
        data = work / "data"
        if not data.exists():
            generate(data, n=args.n, seed=args.seed, progress=False, workers=args.workers)
        cache_dir = work / "cache"
        config = PreprocessConfig(fs=100, window_s=10.0, max_store_s=10.0)
        build_cache([data], cache_dir, config=config, labels=space, workers=args.workers, progress=False)
        cache = open_cache(cache_dir).load()
        y_test = cache.labels[cache.indices("test")].astype(np.float64)

        t0 = time.perf_counter()
        lr_groups, lr_labels = group_aurocs(y_test, logistic_baseline(cache, config.fs), space)
        t_lr = time.perf_counter() - t0
        lrb_groups, lrb_labels = group_aurocs(y_test, logistic_baseline(cache, config.fs, band_powers=True), space)
        table = {
            "logistic": lr_groups,
            "logistic_per_label": lr_labels,
            "logistic_bands": lrb_groups,
            "logistic_bands_per_label": lrb_labels,
            "n": args.n,
            "n_test": len(y_test),
            "logistic_seconds": round(t_lr, 1),
        }
        if not args.skip_resnet:
            t0 = time.perf_counter()
            shutil.rmtree(work / "run", ignore_errors=True)
            probs = resnet(
                cache,
                space,
                work / "run",
                args.minutes,
                args.seed,
                depth=args.depth,
                channels=args.channels,
                kernel=args.kernel,
                epochs=args.epochs,
            )
            rn_groups, rn_labels = group_aurocs(y_test, probs, space)
            table.update(resnet=rn_groups, resnet_per_label=rn_labels, resnet_seconds=round(time.perf_counter() - t0))

        print(
            f"synthetic benchmark calibration: {args.n} records, test split {len(y_test)} records, "
            f"macro AUROC per label group"
        )
        print(f"{'group':<12}{'ResNet':>10}{'logistic':>10}{'+bands':>10}")
        for g in [*LABEL_GROUPS, "macro"]:
            rn = table.get("resnet", {}).get(g, float("nan"))
            print(f"{g:<12}{rn:>10.3f}{lr_groups.get(g, float('nan')):>10.3f}{lrb_groups.get(g, float('nan')):>10.3f}")
        if args.loso:
            table["loso_logistic"] = leave_one_source_out(cache, space, config.fs)
            print("leave-one-source-out, logistic baseline, macro AUROC on the source: in-distribution / held out")
            for src, v in table["loso_logistic"].items():
                print(f"  {src:<14}{v['in_distribution']:.3f} / {v['held_out']:.3f}")
        if args.json:
            args.json.write_text(json.dumps(table, indent=2) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
