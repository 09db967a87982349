"""Benchmark ``ecgscale predict`` (``Predictor``) against a naive loop, in the same run, on the same files and model.

Data: ``--n`` synthetic records (500 Hz, 10 s, CinC 2021 ``.hea`` + ``.mat``, the ``ptbxl_like`` source of
``ecgscale.synth.generate``). Model: the "recommended"-size ResNet (default D=2, C=128, K=5, GAP) at 250 Hz with
10 s windows, trained for one short epoch on ``--train-n`` of the records (throughput does not depend on the
weights; the run directory is a real one, so the predictor's checks run as in production).

Timed, on CPU:

* **folder**: ``Predictor.predict_paths(folder)`` on all ``--n`` records, as ``ecgscale predict RUN FOLDER`` runs it
  (discovery, reading, preprocessing in a prefetch thread overlapping the forward pass, windows of
  ``--batch-size`` records per forward, ``torch.inference_mode``);
* **interleaved comparison** on ``--compare-n`` records split into ``--rounds`` disjoint subsets; in every round the
  same subset goes through (a) the batched predictor, (b) the batched predictor in the other precision (bf16
  autocast vs fp32), (c) ``Predictor.predict_record(path)`` one file at a time (its latencies give the median and
  p95), (d) a **naive** loop: ``wfdb.rdrecord`` → the same ``ecgscale.data.transforms.preprocess`` → one batch-1
  forward under ``torch.no_grad`` (what a user script typically does). Interleaving makes the load of a shared
  machine hit every variant alike; ratios are reported from the totals and as the median of per-round ratios.

The batched and naive probabilities are compared (max |difference|; they differ only by the float16 rounding the
predictor applies to match the training cache). Timings depend on machine load; read the ratios.

    python benchmarks/bench_predict.py [--n 1000] [--depth 2 --channels 128 --kernel 5] [--batch-size 64]
                                       [--precision fp32|bf16] [--compare-n 200 --rounds 5] [--workdir DIR]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _prepare(workdir: Path, n: int, train_n: int, depth: int, channels: int, kernel: int, seed: int) -> Path:
    """Records (generated once per workdir) and a run directory of the requested model size."""
    from ecgscale.data.cache import build_cache, open_cache
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.models import ResNet1dConfig
    from ecgscale.synth import generate
    from ecgscale.train import TrainConfig, train_run

    records = workdir / f"records_{n}"
    if not (records / "synth_summary.json").is_file():
        t0 = time.perf_counter()
        generate(
            records,
            n=n,
            seed=seed,
            format="cinc2021",
            sources=["ptbxl_like"],
            progress=False,
            workers=2,
            overwrite=True,
        )
        print(f"generated {n} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    tag = f"D{depth}-C{channels}-K{kernel}"
    run = workdir / f"run_{tag}"
    if not (run / "config.json").is_file():
        train_dir = workdir / "train_records"
        if not train_dir.exists():
            generate(train_dir, n=train_n, seed=seed + 1, format="cinc2021", sources=["ptbxl_like"], progress=False)
        cache_dir = workdir / "cache"
        build_cache([train_dir], cache_dir, config=PreprocessConfig(fs=250, window_s=10.0), workers=1, progress=False)
        cache = open_cache(cache_dir)
        cfg = ResNet1dConfig(depth=depth, channels=channels, kernel_size=kernel, n_classes=len(cache.label_space))
        t0 = time.perf_counter()
        train_run(cache, cfg, TrainConfig(epochs=1, batch_size=16, seed=seed), run, progress=False)
        print(f"trained {tag} for one epoch in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return run


class _Naive:
    """Per file: ``wfdb.rdrecord`` → the same preprocess → one forward of batch 1 (model loaded once)."""

    def __init__(self, run: Path) -> None:
        from ecgscale.data.transforms import PreprocessConfig
        from ecgscale.train import load_run

        loaded = load_run(run)
        self.model = loaded.model.eval()
        self.config = PreprocessConfig.from_dict(loaded.config["preprocess"])

    def __call__(self, f: Path) -> np.ndarray:
        import torch
        import wfdb

        from ecgscale.data.records import STANDARD_LEADS, EcgRecord
        from ecgscale.data.transforms import preprocess, window

        rec = wfdb.rdrecord(str(f.with_suffix("")))
        signal = np.asarray(rec.p_signal.T, dtype=np.float32)
        record = EcgRecord(f.stem, signal, float(rec.fs), tuple(rec.sig_name or STANDARD_LEADS))
        x = window(preprocess(record, self.config), self.config.window_samples)
        with torch.no_grad():
            return torch.sigmoid(self.model(torch.from_numpy(x)[None])).numpy()[0]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="records in the folder predicted as a whole")
    ap.add_argument("--train-n", type=int, default=48, help="records of the one-epoch training run")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--kernel", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--workers", type=int, default=1, help="Predictor reading threads")
    ap.add_argument(
        "--compare-n",
        type=int,
        default=200,
        help="records of the interleaved comparison (batched vs one-by-one vs naive)",
    )
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each variant on the same subset)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ecgscale_bench_predict",
        help="records and the run are generated here once and reused",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from ecgscale.infer import Predictor

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    run = _prepare(args.workdir, args.n, args.train_n, args.depth, args.channels, args.kernel, args.seed)
    records = args.workdir / f"records_{args.n}"
    files = sorted(records.rglob("*.hea"))
    predictor = Predictor(run, device="cpu", batch_size=args.batch_size, precision=args.precision, workers=args.workers)
    print(f"{predictor!r}; torch threads {torch.get_num_threads()}", file=sys.stderr)
    other = "bf16" if args.precision == "fp32" else "fp32"
    predictor_other = Predictor(run, device="cpu", batch_size=args.batch_size, precision=other, workers=args.workers)
    predictor.predict_record(files[0])  # warm-up (oneDNN kernels, filter designs)
    predictor_other.predict_record(files[0])

    # 1. The whole folder, as `ecgscale predict RUN FOLDER` does it.
    t0 = time.perf_counter()
    table, errors = predictor.predict_paths(records)
    folder_s = time.perf_counter() - t0
    if len(errors) or len(table) != len(files):
        raise SystemExit(f"expected {len(files)} predictions, got {len(table)} and {len(errors)} errors")

    # 2. Interleaved rounds on disjoint subsets: the machine's load (shared CPUs) hits every variant alike.
    compare = files[: min(args.compare_n, len(files))]
    subsets = [list(c) for c in np.array_split(np.asarray(compare, dtype=object), args.rounds) if len(c)]
    times = {"batched": 0.0, f"batched_{other}": 0.0, "one_by_one": 0.0, "naive": 0.0}
    round_ratios: dict[str, list[float]] = {
        "batched_vs_naive": [],
        "batched_vs_one_by_one": [],
        "one_by_one_vs_naive": [],
    }
    lat: list[float] = []
    naive = _Naive(run)
    naive(files[0])  # warm-up
    agreement = 0.0
    for subset in subsets:
        t1 = time.perf_counter()
        part = predictor.predict_paths(subset).table
        tb = time.perf_counter() - t1
        t1 = time.perf_counter()
        predictor_other.predict_paths(subset)
        times[f"batched_{other}"] += time.perf_counter() - t1
        # One-by-one and naive alternate file by file, so a burst of load hits both alike.
        to = tn = 0.0
        naive_probs = []
        for f in subset:
            t2 = time.perf_counter()
            predictor.predict_record(f)
            lat.append(time.perf_counter() - t2)
            to += lat[-1]
            t2 = time.perf_counter()
            naive_probs.append(naive(f))
            tn += time.perf_counter() - t2
        agreement = max(agreement, float(np.max(np.abs(part.filter(like="p_").to_numpy() - np.stack(naive_probs)))))
        times["batched"] += tb
        times["one_by_one"] += to
        times["naive"] += tn
        round_ratios["batched_vs_naive"].append(tn / tb)
        round_ratios["batched_vs_one_by_one"].append(to / tb)
        round_ratios["one_by_one_vs_naive"].append(tn / to)
    lat_ms = np.asarray(lat) * 1e3
    n_cmp = len(compare)
    rps = {k: n_cmp / v for k, v in times.items()}
    result = {
        "model": f"D{args.depth}-C{args.channels}-K{args.kernel}",
        "precision": args.precision,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "folder_records": len(files),
        "folder_records_per_s": round(len(files) / folder_s, 1),
        "compare_records": n_cmp,
        "rounds": len(subsets),
        "records_per_s": {k: round(v, 1) for k, v in rps.items()},
        "batched_ms_per_record": round(1e3 / rps["batched"], 2),
        "one_by_one_latency_ms_median": round(float(np.median(lat_ms)), 2),
        "one_by_one_latency_ms_p95": round(float(np.percentile(lat_ms, 95)), 2),
        "ratio_total": {
            "batched_vs_naive": round(rps["batched"] / rps["naive"], 2),
            f"batched_{args.precision}_vs_{other}": round(rps["batched"] / rps[f"batched_{other}"], 2),
            "batched_vs_one_by_one": round(rps["batched"] / rps["one_by_one"], 2),
            "one_by_one_vs_naive": round(rps["one_by_one"] / rps["naive"], 2),
        },
        "ratio_median_of_rounds": {k: round(float(np.median(v)), 2) for k, v in round_ratios.items()},
        "max_abs_diff_vs_naive": agreement,
    }
    r, m = result["ratio_total"], result["ratio_median_of_rounds"]
    print(
        f"model {result['model']} ({args.precision}, batch {args.batch_size}, {result['torch_threads']} torch "
        f"threads), records of 10 s at 500 Hz (CinC 2021 .hea/.mat)"
    )
    print(f"  folder of {len(files)} records : {result['folder_records_per_s']:8.1f} rec/s (ecgscale predict)")
    print(f"  interleaved, {n_cmp} records in {len(subsets)} rounds:")
    print(f"    batched      : {rps['batched']:8.1f} rec/s ({result['batched_ms_per_record']} ms/record amortised)")
    print(
        f"    batched {other:5s}: {rps[f'batched_{other}']:8.1f} rec/s ({args.precision} is "
        f"{r[f'batched_{args.precision}_vs_{other}']}x {other})"
    )
    print(
        f"    one by one   : {rps['one_by_one']:8.1f} rec/s (latency median {result['one_by_one_latency_ms_median']}"
        f" ms, p95 {result['one_by_one_latency_ms_p95']} ms)"
    )
    print(f"    naive loop   : {rps['naive']:8.1f} rec/s (wfdb.rdrecord + same preprocess + batch-1 forward)")
    print(
        f"  ratios (total / median of rounds): batched vs naive {r['batched_vs_naive']}x / "
        f"{m['batched_vs_naive']}x, batched vs one-by-one {r['batched_vs_one_by_one']}x / "
        f"{m['batched_vs_one_by_one']}x, one-by-one vs naive {r['one_by_one_vs_naive']}x / "
        f"{m['one_by_one_vs_naive']}x"
    )
    print(f"  max |p_batched - p_naive| = {agreement:.1e} (the predictor rounds through the cache's float16)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
