"""Plot generated records per class as standard 12-lead ECGs: ``docs/img/synth_<class>.png``.

Layout as printed by an electrocardiograph: four columns of 2.5 s (I/II/III, aVR/aVL/aVF, V1–V3, V4–V6) and
a 10 s lead II rhythm strip, on the usual grid (1 mm = 40 ms = 0.1 mV; 25 mm/s, 10 mm/mV).

    .venv/bin/python benchmarks/plot_synth.py [--out docs/img] [--per-class 2] [--classes AF,RBBB] [--clean]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecgscale.data.labels import cinc2021_scored
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.synth import DEFAULT_SOURCES, synth_record

LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))


def plot_ecg(ax, signal: np.ndarray, fs: float, title: str) -> None:
    """Draw one 12-lead record on ``ax`` in millimetres of paper (25 mm/s, 10 mm/mV)."""
    n = int(10 * fs)
    sig = signal[:, :n]
    row_h = 30.0  # mm per row
    width = 250.0
    rows = len(LAYOUT) + 1
    height = rows * row_h
    for x in np.arange(0, width + 0.1, 1.0):
        ax.axvline(x, color="#f6c6c6" if x % 5 else "#eb8f8f", lw=0.3 if x % 5 else 0.6, zorder=0)
    for y in np.arange(0, height + 0.1, 1.0):
        ax.axhline(y, color="#f6c6c6" if y % 5 else "#eb8f8f", lw=0.3 if y % 5 else 0.6, zorder=0)
    seg = int(2.5 * fs)
    for r, leads in enumerate(LAYOUT):
        base = height - (r + 0.5) * row_h
        for c, lead in enumerate(leads):
            k = STANDARD_LEADS.index(lead)
            y = sig[k, c * seg : (c + 1) * seg]
            x = c * 62.5 + np.arange(y.size) / fs * 25.0
            ax.plot(x, base + 10.0 * y, color="black", lw=0.6)
            ax.text(c * 62.5 + 1.0, base + 9.0, lead, fontsize=7)
    base = 0.5 * row_h
    y = sig[1]
    ax.plot(np.arange(y.size) / fs * 25.0, base + 10.0 * y, color="black", lw=0.6)
    ax.text(1.0, base + 9.0, "II", fontsize=7)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8, loc="left")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--classes", default=",".join(cinc2021_scored().abbreviations))
    ap.add_argument("--pool", type=int, default=6000, help="records drawn to find examples of each class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean", action="store_true", help="plot without recording artefacts")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
    found: dict[str, list] = {c: [] for c in wanted}
    rng = np.random.default_rng(args.seed)
    weights = np.array([s.weight for s in DEFAULT_SOURCES])
    for _ in range(args.pool):
        profile = DEFAULT_SOURCES[int(rng.choice(len(DEFAULT_SOURCES), p=weights / weights.sum()))]
        rec = synth_record(rng, profile, fs=500, duration_s=10.0, keep_clean=args.clean)
        for lab in rec.labels:
            if lab in found and len(found[lab]) < args.per_class:
                found[lab].append(rec)
        if all(len(v) >= args.per_class for v in found.values()):
            break
    args.out.mkdir(parents=True, exist_ok=True)
    for cls, recs in found.items():
        if not recs:
            print(f"{cls}: no example in {args.pool} records")
            continue
        fig, axes = plt.subplots(len(recs), 1, figsize=(11, 5.6 * len(recs)))
        for ax, rec in zip(np.atleast_1d(axes), recs, strict=True):
            m = rec.measured
            pr = "–" if m["pr_ms"] is None else f"{m['pr_ms']:.0f}"
            title = (
                f"{rec.params.source}  [{', '.join(rec.labels)}]  rate {m['rate_bpm']:.0f}/min  PR {pr} ms  "
                f"QRS {m['qrs_ms']:.0f} ms  QTc {m['qtc_ms']:.0f} ms  axis {m['axis_deg']:.0f}°"
            )
            plot_ecg(ax, rec.clean if args.clean else rec.signal, rec.params.fs, title)
        fig.tight_layout()
        path = args.out / f"synth_{cls}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
