"""``prepare`` on the real PTB-XL records (19,601 at 100 Hz, folds 1–9) against a naive loop, cold and warm.

Naive baseline: one process, ``wfdb.rdsamp`` + ``scipy.signal.resample`` (FFT) of each record to the default
prepare rate (250 Hz), every array appended to a list, ``np.save`` at the end. Ours: ``build_cache`` with the
default ``PreprocessConfig`` (250 Hz, 0.5–45 Hz band-pass, standardise, float16) and all cores.

Cold: the page cache is dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``, needs root) before each cold run;
if that is not permitted the script says so and the "cold" rows are not cold. Warm: every record file is read
once before the warm runs. Records/s are wall-clock; records per CPU-second count the parent and its workers.
The load average is printed before and after (the machine may be shared).

    python benchmarks/bench_prepare_ptbxl.py [--root PTBXL_ROOT] [--n N] [--workers W] [--skip-cold]

Without ``--root`` the shipped copy (``../shared/realdata``) is unpacked once into the tests' folder
(``.pytest_cache/d/realdata``) and reused.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


def ptbxl_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    folder = REPO / ".pytest_cache" / "d" / "realdata"
    if not (folder / "ptbxl" / "ecgscale-unpacked.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(REALDATA / "unpack.py"), str(folder)], check=True)
    return folder / "ptbxl"


def subset(root: Path, n: int | None, work: Path) -> Path:
    """``root`` itself, or a PTB-XL root of its first ``n`` records (database filtered, record files linked)."""
    if n is None:
        return root
    out = work / "subset"
    with open(root / "ptbxl_database.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [row for _, row in zip(range(n), reader, strict=False)]
        fields = reader.fieldnames or []
    out.mkdir()
    with open(out / "ptbxl_database.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    shutil.copy(root / "scp_statements.csv", out)
    for row in rows:
        for ext in (".hea", ".dat"):
            target = out / (row["filename_lr"] + ext)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(root / (row["filename_lr"] + ext))
    return out


def record_bases(root: Path) -> list[Path]:
    with open(root / "ptbxl_database.csv", encoding="utf-8", newline="") as fh:
        return [root / row["filename_lr"] for row in csv.DictReader(fh)]


def drop_page_cache() -> str | None:
    """Drop the page cache; the reason it could not be done, or ``None``."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
    except OSError as exc:
        return f"cannot drop the page cache ({exc.strerror}); 'cold' runs are not cold"
    return None


def warm_up(bases: list[Path]) -> None:
    for base in bases:
        for ext in (".hea", ".dat"):
            with open(f"{base}{ext}", "rb") as fh:
                fh.read()


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def naive(bases: list[Path], out: Path, fs: float) -> None:
    import scipy.signal
    import wfdb

    arrays = []
    for base in bases:
        sig, fields = wfdb.rdsamp(str(base))
        n = round(sig.shape[0] * fs / fields["fs"])
        arrays.append(scipy.signal.resample(sig, n, axis=0).astype(np.float32))
    np.save(out, np.stack(arrays))


def ours(root: Path, out: Path, fs: float, workers: int | None) -> None:
    from ecgscale.data.cache import build_cache
    from ecgscale.data.transforms import PreprocessConfig

    summary = build_cache(
        root, out, config=PreprocessConfig(fs=fs), ptbxl_fs=100, workers=workers, progress=False, rebuild=True
    )
    assert summary.n_skipped == 0, summary.skipped_by_reason


def timed(fn, *args) -> tuple[float, float]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0, cpu_seconds() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="a PTB-XL root with records100/ (default: the shipped copy, unpacked)")
    ap.add_argument("--n", type=int, default=None, help="first N records only (default: all)")
    ap.add_argument("--fs", type=float, default=250.0, help="target rate, both sides (default prepare: 250 Hz)")
    ap.add_argument("--workers", type=int, default=None, help="prepare workers (default: all cores)")
    ap.add_argument("--skip-cold", action="store_true")
    args = ap.parse_args()

    from ecgscale.data.cache.pool import available_cores as _available_cores

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_ptbxl_", dir=REPO / ".pytest_cache") as tmp:
        work = Path(tmp)
        root = subset(ptbxl_root(args.root), args.n, work)
        bases = record_bases(root)
        n = len(bases)
        print(f"{n} PTB-XL records at 100 Hz -> {args.fs:g} Hz; {_available_cores()} cores; workers {args.workers}")
        print("load average before:", " ".join(f"{v:.2f}" for v in load0))
        results: dict[str, tuple[float, float]] = {}
        note = None
        for state in ("cold", "warm"):
            if state == "cold" and args.skip_cold:
                continue
            for name, fn, fargs in (
                ("naive", naive, (bases, work / "naive.npy", args.fs)),
                ("prepare", ours, (root, work / "cache", args.fs, args.workers)),
            ):
                if state == "cold":
                    note = drop_page_cache() or note
                else:
                    warm_up(bases)
                results[f"{state} {name}"] = timed(fn, *fargs)
                wall, cpu = results[f"{state} {name}"]
                print(f"  {state:4s} {name:8s} wall {wall:7.1f} s  {n / wall:7.0f} rec/s  CPU {cpu:7.1f} s", flush=True)
        if note:
            print("NOTE:", note)
        print()
        print("| file cache | naive rec/s | prepare rec/s | × wall | naive rec/CPU-s | prepare rec/CPU-s | × CPU |")
        print("|---|---|---|---|---|---|---|")
        for state in ("cold", "warm"):
            if f"{state} naive" not in results:
                continue
            (nw, nc), (ow, oc) = results[f"{state} naive"], results[f"{state} prepare"]
            print(
                f"| {state} | {n / nw:.0f} | {n / ow:.0f} | **{nw / ow:.2f}** | {n / nc:.0f} | {n / oc:.0f} |"
                f" {nc / oc:.2f} |"
            )
        print("\nload average after:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
