"""Benchmark the vectorised CinC 2021 scorer against the official loops (``_official_loops.py``) on the same data.

Data: N records × 26 scored classes with the class prevalences of the public training set (``Total`` column of
``dx_mapping_scored.csv``), at least one label per record, and a noisy classifier's probabilities rounded to 3
decimals (as output files often are, so there are ties) thresholded at 0.5.

Timed in the same run, on the same data:
* challenge metric, official AUROC/AUPRC, F-measure, accuracy: vectorised (all N records, best of 3) vs the loop
  port of ``evaluate_model.py`` — on all N records by default (about 10 s at 88,000), or on the first
  ``--loop-n`` records and extrapolated linearly to N (the loops are linear in N; the output says when it
  extrapolates). Agreement is checked to 1e-9 on the records both ran on.
* reading ``--io`` header + output-file pairs from disk with ``load_challenge_dirs`` (what ``ecgscale score``
  does before scoring), reported per record and extrapolated to N.
* ``compute_metrics`` with ``--bootstrap`` resamples of 10,000 × 26 vs the naive bootstrap (sklearn on each
  resample; a few resamples timed and extrapolated).
Timings depend on machine load; read the ratios.

    python benchmarks/bench_score.py [--n 88000] [--loop-n 0] [--bootstrap 1000] [--io 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import time
from importlib import resources

import numpy as np


def realistic_data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    from ecgscale.data.labels import cinc2021_weights

    keys, _ = cinc2021_weights()
    text = resources.files("ecgscale.data").joinpath("resources", "cinc2021", "dx_mapping_scored.csv").read_text()
    totals = {row["SNOMEDCTCode"].strip(): float(row["Total"]) for row in csv.DictReader(text.splitlines())}
    counts = np.array([sum(totals.get(c, 0.0) for c in key.split("|")) for key in keys])
    prevalence = counts / 88_253  # records in the public training set
    rng = np.random.default_rng(seed)
    labels = rng.random((n, len(keys))) < prevalence[None, :]
    empty = ~labels.any(axis=1)
    labels[empty, rng.choice(len(keys), size=int(empty.sum()), p=counts / counts.sum())] = True
    logits = np.where(labels, 1.5, -2.5) + rng.normal(0.0, 1.5, labels.shape)
    probs = np.round(1.0 / (1.0 + np.exp(-logits)), 3)
    return keys, labels, probs >= 0.5, probs


def _time(fn, *args, repeat: int = 1):
    """Result and the best of ``repeat`` wall times (best-of damps the noise of a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


def bench_scorer(n: int, loop_n: int, seed: int) -> dict:
    from _official_loops import (  # next to this script (python puts the script's folder on sys.path)
        reference_accuracy,
        reference_auc,
        reference_challenge_metric,
        reference_f_measure,
    )
    from ecgscale.data.labels import cinc2021_weights
    from ecgscale.metrics import challenge_metric, official_accuracy, official_auc, official_f_measure

    keys, labels, binary, probs = realistic_data(n, seed)
    _, weights = cinc2021_weights()
    nsr = keys.index("426783006")
    m = n if loop_n <= 0 or loop_n >= n else loop_n
    sub = slice(0, m)
    scale = n / m
    rows = []
    worst = 0.0
    parts = [
        (
            "challenge metric",
            lambda lab, b, p: challenge_metric(lab, b, keys),
            lambda lab, b, p: reference_challenge_metric(weights, lab, b, nsr),
        ),
        ("AUROC/AUPRC (official)", lambda lab, b, p: official_auc(lab, p), lambda lab, b, p: reference_auc(lab, p)),
        ("F-measure", lambda lab, b, p: official_f_measure(lab, b), lambda lab, b, p: reference_f_measure(lab, b)),
        ("accuracy", lambda lab, b, p: official_accuracy(lab, b), lambda lab, b, p: reference_accuracy(lab, b)),
    ]
    for name, vec, ref in parts:
        _, t_vec = _time(vec, labels, binary, probs, repeat=3)
        v_sub = vec(labels[sub], binary[sub], probs[sub])
        r_sub, t_ref = _time(ref, labels[sub], binary[sub], probs[sub])
        diff = _max_diff(v_sub, r_sub)
        worst = max(worst, diff)
        rows.append(
            {
                "part": name,
                "vectorised_s": t_vec,
                "loop_s": t_ref * scale,
                "ratio": t_ref * scale / t_vec,
                "max_abs_diff": diff,
            }
        )
    total_vec = sum(r["vectorised_s"] for r in rows)
    total_ref = sum(r["loop_s"] for r in rows)
    return {
        "n_records": n,
        "n_classes": len(keys),
        "loop_records": m,
        "loop_extrapolated": m < n,
        "parts": rows,
        "total_vectorised_s": total_vec,
        "total_loop_s": total_ref,
        "ratio": total_ref / total_vec,
        "max_abs_diff": worst,
        "agree_1e-9": worst <= 1e-9,
    }


def _max_diff(a, b) -> float:
    fa = np.atleast_1d(np.asarray(a if not isinstance(a, tuple) else np.concatenate([np.ravel(x) for x in a]), float))
    fb = np.atleast_1d(np.asarray(b if not isinstance(b, tuple) else np.concatenate([np.ravel(x) for x in b]), float))
    if not np.array_equal(np.isnan(fa), np.isnan(fb)):
        return float("inf")
    ok = ~np.isnan(fa)
    return float(np.max(np.abs(fa[ok] - fb[ok]), initial=0.0))


def bench_bootstrap(n_resamples: int, seed: int, naive_resamples: int = 5) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from ecgscale.data.labels import cinc2021_scored
    from ecgscale.metrics import compute_metrics

    _, labels, _, probs = realistic_data(10_000, seed)
    space = cinc2021_scored()
    result, t_ours = _time(lambda: compute_metrics(labels, probs, label_space=space, n_bootstrap=n_resamples))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(naive_resamples):  # what a first script does: index, then sklearn per class
        idx = rng.integers(0, len(labels), len(labels))
        y, p = labels[idx], probs[idx]
        for j in range(y.shape[1]):
            if 0 < y[:, j].sum() < len(y):
                roc_auc_score(y[:, j], p[:, j])
                average_precision_score(y[:, j], p[:, j])
        roc_auc_score(y.ravel(), p.ravel())
    t_naive = (time.perf_counter() - t0) / naive_resamples * n_resamples
    return {
        "records": len(labels),
        "resamples": n_resamples,
        "ours_s": t_ours,
        "naive_s_extrapolated": t_naive,
        "naive_resamples_timed": naive_resamples,
        "ratio": t_naive / t_ours,
        "macro_auroc": result["macro_auroc"],
        "macro_auroc_ci": result["ci"]["macro_auroc"],
    }


def bench_io(n_files: int, seed: int, n_target: int) -> dict:
    import tempfile
    from pathlib import Path

    from ecgscale.metrics import load_challenge_dirs, write_challenge_output

    keys, labels, binary, probs = realistic_data(n_files, seed)
    with tempfile.TemporaryDirectory() as tmp:
        ldir, odir = Path(tmp) / "labels", Path(tmp) / "outputs"
        ldir.mkdir()
        for i in range(n_files):
            rid = f"B{i:06d}"
            dx = ",".join(keys[j].split("|")[0] for j in np.flatnonzero(labels[i]))
            (ldir / f"{rid}.hea").write_text(f"{rid} 12 500 5000\n#Age: 60\n#Sex: Female\n#Dx: {dx}\n")
            write_challenge_output(odir / f"{rid}.csv", rid, keys, binary[i], probs[i], atomic=False)
        data, t = _time(load_challenge_dirs, ldir, odir)
    ok = bool((data.labels == labels).all() and (data.binary == binary).all() and np.allclose(data.scalar, probs))
    return {
        "files": n_files,
        "load_s": t,
        "per_record_ms": 1e3 * t / n_files,
        "extrapolated_s": t / n_files * n_target,
        "target_records": n_target,
        "round_trip_exact": ok,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=88_000, help="records to score (default 88,000)")
    ap.add_argument(
        "--loop-n",
        type=int,
        default=0,
        help="run the slow loops on this many records and extrapolate to --n (default 0: all records)",
    )
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of 10,000 x 26 (0 = skip)")
    ap.add_argument("--io", type=int, default=5000, help="header/output file pairs to read from disk (0 = skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()

    out = {"scorer": bench_scorer(args.n, args.loop_n, args.seed)}
    s = out["scorer"]
    how = (
        f"loops timed on {s['loop_records']:,} records and extrapolated linearly to {s['n_records']:,}"
        if s["loop_extrapolated"]
        else f"loops timed on all {s['n_records']:,} records"
    )
    print(f"Scoring {s['n_records']:,} records x {s['n_classes']} classes ({how})")
    print(f"{'part':<24}{'vectorised s':>14}{'loop s':>12}{'ratio':>10}{'max |diff|':>14}")
    for r in s["parts"]:
        print(
            f"{r['part']:<24}{r['vectorised_s']:>14.3f}{r['loop_s']:>12.2f}{r['ratio']:>9.0f}x{r['max_abs_diff']:>14.1e}"
        )
    print(f"{'total':<24}{s['total_vectorised_s']:>14.3f}{s['total_loop_s']:>12.2f}{s['ratio']:>9.0f}x")
    print(f"agreement vectorised vs loops within 1e-9: {s['agree_1e-9']} (max |diff| {s['max_abs_diff']:.1e})")
    if args.bootstrap > 0:
        b = bench_bootstrap(args.bootstrap, args.seed)
        out["bootstrap"] = b
        print(
            f"\ncompute_metrics with {b['resamples']} bootstrap resamples of {b['records']:,} x 26: "
            f"{b['ours_s']:.2f} s; naive sklearn-per-resample bootstrap (timed on {b['naive_resamples_timed']} "
            f"resamples, extrapolated): {b['naive_s_extrapolated']:.1f} s; ratio {b['ratio']:.0f}x"
        )
        lo, hi = b["macro_auroc_ci"]
        print(f"macro AUROC {b['macro_auroc']:.4f}, 95% CI [{lo:.4f}, {hi:.4f}]")
    if args.io > 0:
        io = bench_io(args.io, args.seed, args.n)
        out["io"] = io
        print(
            f"\nload_challenge_dirs: {io['files']:,} header + output files in {io['load_s']:.2f} s "
            f"({io['per_record_ms']:.2f} ms/record; ~{io['extrapolated_s']:.0f} s for {io['target_records']:,}), "
            f"round trip exact: {io['round_trip_exact']}"
        )
    if args.json:
        from ecgscale.fileio import write_json_atomic

        write_json_atomic(args.json, out)
    if not s["agree_1e-9"]:
        raise SystemExit("vectorised and loop implementations disagree by more than 1e-9")


if __name__ == "__main__":
    main()
