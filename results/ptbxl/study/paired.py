"""Paired record-level comparisons between the trials of an ecgscale sweep (docs/real-data.md, the PTB-XL study).

    python results/ptbxl/study/paired.py STUDIES_DIR STUDY[,STUDY...] CACHE OUT.md [--pairs lead|base|gap]

STUDY may list several studies trained on the same cache with the same protocol (their trials are pooled by
configuration key, the first study winning a duplicate): the lead-set scale study pairs its 6- and 2-lead
trials with the axes study's 12-lead ones.

Every trial saved its fold-9 probabilities (``trials/N/predictions_test.npz``); this script scores each
comparison on the same records with :func:`ecgscale.metrics.paired.paired_auroc_difference` (the CI of a
difference, not of each arm; one seed per arm, so the records are the only sampling error we can show):

* ``lead``: each lead set against the 12-lead trial of the same architecture;
* ``base``: each architecture against the grid's base (GAP) on the same lead set;
* ``gap``: each no-GAP architecture against the same D/C/K with GAP.

Writes a Markdown table to OUT.md, the numbers to OUT.json and a figure (per-class differences with their
CIs, one colour per comparison) to OUT.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ecgscale.data.cache import open_cache
from ecgscale.metrics.paired import paired_auroc_difference
from ecgscale.study.grids import ArchPoint
from ecgscale.study.results import load_study


def _trials(studies: Path, names: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for study in names.split(","):
        st = load_study(study, None, studies_dir=studies)
        for t in st.get_trials(deepcopy=False):
            run = studies / study / "trials" / str(t.number)
            if t.state.name == "COMPLETE" and (run / "predictions_test.npz").is_file():
                out.setdefault(str(t.params["config"]), run)
    return out


def _pairs(keys: list[str], kind: str, base: str) -> list[tuple[str, str]]:
    points = {k: ArchPoint.from_key(k) for k in keys}
    out = []
    for k, p in sorted(points.items()):
        if kind == "lead" and p.leads != "12":
            ref = ArchPoint(p.depth, p.channels, p.kernel_size, p.gap).key
        elif kind == "gap" and not p.gap:
            ref = ArchPoint(p.depth, p.channels, p.kernel_size, True, p.leads).key
        elif kind == "base" and p.gap:
            b = ArchPoint.from_key(base)
            ref = ArchPoint(b.depth, b.channels, b.kernel_size, b.gap, p.leads).key
            if ref == k:
                continue
        else:
            continue
        if ref in points:
            out.append((ref, k))
    return out


def _figure(numbers: dict[str, dict], classes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = ["macro", *classes]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names) * max(1, len(numbers)) ** 0.5, 3.8), layout="constrained")
    width = 0.8 / max(1, len(numbers))
    for i, (label, d) in enumerate(numbers.items()):
        rows = [(d["macro_auroc_diff"], *d["macro_auroc_diff_ci"])]
        rows += [(d["per_class"][c]["diff"], *d["per_class"][c]["ci"]) for c in classes]
        mean, lo, hi = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
        x = np.arange(len(names)) + (i - (len(numbers) - 1) / 2) * width
        ax.bar(x, mean, width, label=label)
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt="none", ecolor="black", capsize=1.5, lw=0.8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("fold-9 AUROC difference (paired 95% CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=6)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", type=Path)
    ap.add_argument("study")
    ap.add_argument("cache", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--pairs", choices=("lead", "base", "gap"), default="lead")
    ap.add_argument("--base", default="D2-C64-K9-gap")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--figure-only", action="store_true", help="redraw OUT.png from an existing OUT.json")
    args = ap.parse_args()
    if args.figure_only:
        numbers = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
        classes = list(next(iter(numbers.values()))["per_class"])
        _figure(numbers, classes, args.out.with_suffix(".png"))
        return

    cache = open_cache(args.cache)
    classes = cache.label_space.keys
    runs = _trials(args.studies, args.study)
    rows, numbers = [], {}
    for ref, other in _pairs(list(runs), args.pairs, args.base):
        pa, pb = np.load(runs[ref] / "predictions_test.npz"), np.load(runs[other] / "predictions_test.npz")
        if not np.array_equal(pa["index"], pb["index"]):
            raise SystemExit(f"{ref} and {other} were scored on different records")
        y = cache.labels[pa["index"]]
        d = paired_auroc_difference(y, pa["prob"], pb["prob"], classes=classes, n_resamples=args.resamples)
        numbers[f"{other} - {ref}"] = d.to_dict()
        cells = [f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for v, lo, hi in zip(d.per_class, *d.per_class_ci, strict=True)]
        lo, hi = d.macro_ci
        rows.append(f"| {other} − {ref} | **{d.macro:+.4f}** [{lo:+.4f}, {hi:+.4f}] | " + " | ".join(cells) + " |")
    head = "| comparison (fold 9) | macro AUROC difference [95% CI] | " + " | ".join(classes) + " |"
    sep = "|" + "---|" * (len(classes) + 2)
    args.out.write_text("\n".join([head, sep, *rows]) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(numbers, indent=1), encoding="utf-8")
    _figure(numbers, classes, args.out.with_suffix(".png"))
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
