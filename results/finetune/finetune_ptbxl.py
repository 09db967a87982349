"""Fine-tuning vs training from scratch on a small PTB-XL set (issue 14), on CPU in a few minutes.

    python results/finetune/finetune_ptbxl.py CACHE OUT [--n-pre 3000] [--n-small 300] [--seeds 0]

``CACHE``: a PTB-XL superdiagnostic cache at 100 Hz without standardisation, split by folds 1-7 / 8 / 9 (the
README's ``cache/ptbxl9``). From it, by patient (no patient in two sets):

- pretrain set: ``--n-pre`` records of folds 1-7 (train), 600 of fold 8 (val);
- small set: ``--n-small`` other records of folds 1-7 (train), 300 other records of fold 8 (val), all of fold 9 (test).

The small set's classes are the same five in reverse order, so its head is never the parent's: every
fine-tuned run starts from the pretrained trunk and a fresh head (``reset_head``), as for a new label set.
Runs (D2-C64-K9, the ptbxl recipe's crops/windows, same epochs and seed per condition): scratch; fine-tune
(``init_from``); frozen trunk; trunk lr x0.1. Each is evaluated on fold 9 (macro AUROC, 200 bootstrap CIs).
Signals are taken from the cache (already band-passed; no second filter). Writes ``OUT/results.json`` and
prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ecgscale.data.cache import build_cache_from_records, open_cache
from ecgscale.data.labels import LabelSpace
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.data.splits import SplitConfig
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.train import TrainConfig, evaluate_run, train_run

ARCH = {"depth": 2, "channels": 64, "kernel_size": 9}
RECIPE = {"lr": 1e-2, "schedule": "onecycle", "crop_s": 2.5, "eval_stride_s": 1.25, "patience": None}


def _by_patient(manifest, idx: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """``idx`` grouped by patient, groups in a seeded random order."""
    pids = manifest["patient_id"].to_numpy()[idx]
    groups: dict[str, list[int]] = {}
    for i, p in zip(idx.tolist(), pids, strict=True):
        groups.setdefault(str(p) or f"rec{i}", []).append(i)
    keys = sorted(groups)
    rng.shuffle(keys)
    return [np.asarray(groups[k]) for k in keys]


def _take(groups: list[np.ndarray], n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    out: list[int] = []
    while groups and len(out) < n:
        out.extend(groups.pop(0).tolist())
    return np.asarray(out), groups


def _subset(src, roles: dict[str, np.ndarray], out: Path, space: LabelSpace) -> None:
    codes = src.manifest["codes"].to_numpy()
    pids = src.manifest["patient_id"].to_numpy()
    ids = src.manifest["record_id"].to_numpy()

    def records():
        for role, idx in roles.items():
            for i in idx.tolist():
                yield EcgRecord(
                    record_id=str(ids[i]),
                    signal=np.asarray(src.signal(i), dtype=np.float32),
                    fs=float(src.config.fs),
                    lead_names=STANDARD_LEADS,
                    codes=tuple(c for c in str(codes[i]).split(",") if c),
                    source="ptbxl",
                    patient_id=str(pids[i]),
                    meta={"split": role},
                )

    config = PreprocessConfig(
        fs=src.config.fs,
        window_s=src.config.window_s,
        max_store_s=src.config.window_s,
        bandpass=None,
        standardize=False,
    )
    build_cache_from_records(
        records(),
        out,
        labels=space,
        config=config,
        split=SplitConfig(method="official"),
        progress=False,
        rebuild=True,
        source="ptbxl",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n-pre", type=int, default=3000)
    ap.add_argument("--n-small", type=int, default=300)
    ap.add_argument("--pre-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=str, default="0")
    args = ap.parse_args()
    src = open_cache(args.cache)
    m = src.manifest
    rng = np.random.default_rng(0)
    train_groups = _by_patient(m, src.indices("train"), rng)
    val_groups = _by_patient(m, src.indices("val"), rng)
    pre_train, train_groups = _take(train_groups, args.n_pre)
    small_train, _ = _take(train_groups, args.n_small)
    pre_val, val_groups = _take(val_groups, 600)
    small_val, _ = _take(val_groups, 300)
    test = src.indices("test")
    space = src.label_space
    reversed_space = LabelSpace("ptbxl-superdiagnostic-reversed", list(reversed(space.classes)))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _subset(src, {"train": pre_train, "val": pre_val}, args.out / "cache_pre", space)
    _subset(src, {"train": small_train, "val": small_val, "test": test}, args.out / "cache_small", reversed_space)
    small = open_cache(args.out / "cache_small")
    results: dict[str, object] = {
        "n": {
            "pretrain_train": len(pre_train),
            "pretrain_val": len(pre_val),
            "small_train": len(small_train),
            "small_val": len(small_val),
            "test": len(test),
        },
        "seconds": {"caches": round(time.perf_counter() - t0, 1)},
        "runs": [],
    }
    for seed in [int(s) for s in args.seeds.split(",")]:
        pre_dir = args.out / f"pre_s{seed}"
        t = time.perf_counter()
        pre_cfg = TrainConfig(epochs=args.pre_epochs, batch_size=128, seed=seed, **RECIPE)
        train_run(args.out / "cache_pre", {**ARCH, "n_classes": len(space)}, pre_cfg, pre_dir, progress=False)
        results["seconds"][f"pretrain_s{seed}"] = round(time.perf_counter() - t, 1)
        conditions = {
            "scratch": {},
            "fine-tune": {"init_from": str(pre_dir)},
            "fine-tune, trunk lr x0.1": {"init_from": str(pre_dir), "trunk_lr_factor": 0.1},
            "frozen trunk (new head only)": {"init_from": str(pre_dir), "freeze_trunk": True},
        }
        for name, extra in conditions.items():
            run = args.out / f"{name.split(',')[0].split(' ')[0]}{'_slow' if 'x0.1' in name else ''}_s{seed}"
            t = time.perf_counter()
            cfg = TrainConfig(epochs=args.epochs, batch_size=32, seed=seed, **RECIPE, **extra)
            train_run(small, {**ARCH, "n_classes": len(reversed_space)}, cfg, run, progress=False)
            ev = evaluate_run(run, split="test", cache=small, n_bootstrap=200)
            metrics = ev["metrics"]
            ci = [round(v, 3) for v in metrics["ci"]["macro_auroc"]]
            results["runs"].append(
                {
                    "condition": name,
                    "seed": seed,
                    "macro_auroc": metrics["macro_auroc"],
                    "ci": ci,
                    "seconds": round(time.perf_counter() - t, 1),
                    "run_dir": str(run),
                }
            )
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results["n"]), json.dumps(results["seconds"]))
    print("| condition | seed | macro AUROC fold 9 | 95% CI | train s |\n|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['condition']} | {r['seed']} | {r['macro_auroc']:.3f} | {r['ci']} | {r['seconds']} |")


if __name__ == "__main__":
    main()
