"""Figures of the scale analyses and of the search comparison (matplotlib, Agg backend; PNG + SVG each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgscale.fileio import atomic_path
from ecgscale.study.grids import AXES

__all__ = ["axis_figures", "best_so_far_figure", "cost_figure", "lead_set_figure", "rf_figure", "save_figure"]

_LABELS = {"depth": "depth D (residual blocks)", "channels": "channels C", "kernel_size": "kernel size K"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only, never a window (headless servers, worker processes)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically and close the figure."""
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{stem}.{ext}"
        with atomic_path(path, suffix=f".{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=100)
        paths.append(path)
    _plt().close(fig)
    return paths


def axis_figures(tables: Mapping[str, pd.DataFrame], out: Path, *, metric: str) -> list[Path]:
    """Performance vs D, C and K: label groups (left) and data sources (right); solid GAP, dashed no GAP."""
    plt = _plt()
    files: list[Path] = []
    for axis in AXES:
        t = tables.get(f"perf_vs_{axis}")
        if t is None or t.empty:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
        for ax, kind in zip(axes, ("group", "source"), strict=True):
            names = ["all", *[n for n in t.target.unique() if n.startswith(kind + ":")]]
            colors = plt.cm.tab10(np.linspace(0, 1, 10))
            for i, name in enumerate(names):
                for gap, style in ((True, "-"), (False, "--")):
                    s = t[(t.target == name) & (t.gap == gap)].sort_values("value")
                    if s.empty:
                        continue
                    ax.errorbar(
                        s["value"],
                        s["mean"],
                        yerr=s["std"].fillna(0),
                        fmt=style + "o",
                        ms=3,
                        capsize=2,
                        color="black" if name == "all" else colors[i % 10],
                        lw=2 if name == "all" else 1,
                        label=f"{name.split(':')[-1]}{'' if gap else ' (no GAP)'}",
                    )
            ax.set_xscale("log", base=2)
            ax.set_xlabel(_LABELS[axis])
            ax.set_title(f"by label {kind}" if kind == "group" else "by data source")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
        axes[0].set_ylabel(f"test {metric} (mean ± sd over seeds)")
        files += save_figure(fig, out, f"perf_vs_{axis}")
    return files


def rf_figure(df: pd.DataFrame, out: Path, *, metric: str, threshold_s: float | None = None) -> list[Path]:
    """Receptive field (s) vs test score per label group, GAP and no GAP in two colours."""
    from ecgscale.study.analysis import config_means, targets

    plt = _plt()
    cm = config_means(df)
    tg = {k: v for k, v in targets(df, metric).items() if not k.startswith("source:")}
    n = len(tg)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, layout="constrained")
    for ax, (name, col) in zip(axes.ravel(), tg.items(), strict=False):
        for gap, color in ((True, "tab:blue"), (False, "tab:orange")):
            s = cm[cm.gap == gap]
            ax.scatter(s["receptive_field_s"], s[col], s=14, color=color, label="GAP" if gap else "no GAP")
        if threshold_s is not None:
            ax.axvline(threshold_s, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_title(name.split(":")[-1], fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("receptive field of the features (s)")
    fig.supylabel(f"test {metric}")
    return save_figure(fig, out, "rf_vs_perf")


def cost_figure(
    df: pd.DataFrame, out: Path, *, metric: str, costs: Sequence[str] = ("params", "flops", "train_seconds")
) -> list[Path]:
    """Params, FLOPs and training time vs test score; the Pareto front drawn as a step line."""
    from ecgscale.study.analysis import config_means, pareto_front

    plt = _plt()
    cm = config_means(df)
    col = f"test_{metric}"
    costs = [c for c in costs if c in cm.columns and cm[c].notna().any()]
    fig, axes = plt.subplots(
        1, len(costs), figsize=(4.2 * len(costs), 3.6), squeeze=False, sharey=True, layout="constrained"
    )
    for ax, c in zip(axes[0], costs, strict=True):
        for gap, color in ((True, "tab:blue"), (False, "tab:orange")):
            s = cm[cm.gap == gap]
            ax.scatter(s[c], s[col], s=14, color=color, alpha=0.8, label="GAP" if gap else "no GAP")
        front = pareto_front(cm, c, col)
        ax.step(front[c], front[col], where="post", color="black", lw=1, label="Pareto front")
        positive = cm[c][cm[c] > 0]
        if len(positive) and positive.max() / positive.min() >= 10:  # log only where costs span decades
            ax.set_xscale("log")
        ax.set_xlabel(c.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(col.replace("_", " "))
    axes[0, 0].legend(fontsize=7)
    return save_figure(fig, out, "cost_vs_perf")


def best_so_far_figure(curves: pd.DataFrame, out: Path, *, ylabel: str = "best validation score so far") -> list[Path]:
    """Mean best-so-far curve per space with a band of ± one standard error over seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for space, s in curves.groupby("space", sort=False):
        agg = s.groupby("trial_index")["best"].agg(["mean", "std", "count"]).reset_index()
        se = agg["std"].fillna(0) / np.sqrt(agg["count"])
        x = agg["trial_index"] + 1
        ax.plot(x, agg["mean"], label=str(space))
        ax.fill_between(x, agg["mean"] - se, agg["mean"] + se, alpha=0.2)
    ax.set_xlabel("trials (budget)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, out, "best_so_far")


def lead_set_figure(drop: pd.DataFrame, out: Path, *, metric: str) -> list[Path]:
    """What each lead set loses against 12 leads, per target (all, then label groups): bars with 95% intervals.

    The intervals are over architectures (and seeds) trained on both sets, as in :func:`lead_set_drop`; a study
    with one architecture per set has none, and its bars stand alone.
    """
    plt = _plt()
    targets = list(dict.fromkeys(drop["target"]))
    sets = list(dict.fromkeys(drop["leads"]))
    fig, ax = plt.subplots(
        figsize=(max(5.0, 0.9 * len(targets) * max(1, len(sets)) / 2 + 2), 3.8), layout="constrained"
    )
    width = 0.8 / max(1, len(sets))
    x = np.arange(len(targets))
    for i, tag in enumerate(sets):
        s = drop[drop["leads"] == tag].set_index("target").reindex(targets)
        mean = s["mean_diff"].to_numpy(dtype=float)
        err = np.vstack([mean - s["ci_low"].to_numpy(dtype=float), s["ci_high"].to_numpy(dtype=float) - mean])
        ax.bar(x + (i - (len(sets) - 1) / 2) * width, mean, width, label=f"{tag} leads")
        ax.errorbar(
            x + (i - (len(sets) - 1) / 2) * width, mean, yerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=2
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [t.split(":")[-1] for t in targets], rotation=30, ha="right")
    ax.set_ylabel(f"test {metric}: lead set − 12 leads")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out, "lead_set_drop")
