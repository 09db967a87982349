"""The scale study per lead set: a sweep with a lead-set axis (``leads`` in the grid) answers

* which configuration is best for each lead set (chosen on validation, reported on test), and whether the
  optimal D/C/K moves when leads are removed;
* how much each lead set loses against 12 leads, overall and per label group (which labels need the
  precordial leads?): paired over the same architecture and seed, with a t-interval over the pairs, and as
  best-vs-best (each lead set's validation-chosen model against the 12-lead one);
* the challenge summary of CinC 2021, the mean of the 12-, 3- and 2-lead challenge metrics, when scored.

Input is the results table of :func:`ecgscale.study.results.trials_frame` with its ``leads`` column (tags
``12``, ``6``, ...; a table without it is a 12-lead study).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ecgscale.errors import StudyError

__all__ = ["REFERENCE", "best_per_lead_set", "lead_findings", "lead_set_drop", "lead_sets_of"]

#: The lead set every other is compared with.
REFERENCE = "12"
_ARCH = ["depth", "channels", "kernel_size", "gap"]


def lead_sets_of(df: pd.DataFrame) -> list[str]:
    """The lead-set tags present, largest set first (``["12"]`` for a table without a ``leads`` column)."""
    if "leads" not in df.columns:
        return [REFERENCE]
    tags = [str(t) for t in df["leads"].dropna().unique()]
    return sorted(tags, key=lambda t: (-_size(t), t))


def _size(tag: str) -> int:
    return int(tag) if tag.isdigit() else len(tag.split("+"))


def _subset(df: pd.DataFrame, tag: str) -> pd.DataFrame:
    return df if "leads" not in df.columns else df[df["leads"].astype(str) == tag]


def _means(df: pd.DataFrame) -> pd.DataFrame:
    num = [c for c in df.columns if c not in (*_ARCH, "trial", "seed") and pd.api.types.is_numeric_dtype(df[c])]
    g = df.groupby(_ARCH, as_index=False)
    out = g[num].mean()
    out["n_seeds"] = g.size()["size"].to_numpy()
    out.insert(0, "config", [f"D{d}-C{c}-K{k}-{'gap' if gp else 'nogap'}" for d, c, k, gp in out[_ARCH].to_numpy()])
    return out


def best_per_lead_set(df: pd.DataFrame, *, metric: str = "macro_auroc") -> pd.DataFrame:
    """Per lead set: the architecture with the best mean VALIDATION ``metric`` over seeds, its test score, its
    cost, and whether it is the architecture chosen for 12 leads (did the optimal scale move?)."""
    vcol, tcol = f"val_{metric}", f"test_{metric}"
    for col in (vcol, tcol):
        if col not in df.columns:
            raise StudyError(f"the results have no {col!r} column")
    rows: list[dict[str, Any]] = []
    for tag in lead_sets_of(df):
        cm = _means(_subset(df, tag))
        if cm.empty or cm[vcol].notna().sum() == 0:
            continue
        b = cm.loc[cm[vcol].idxmax()]
        row: dict[str, Any] = {"leads": tag, "n_configs": len(cm), "best_config": b["config"]}
        row.update({a: b[a] for a in _ARCH})
        row.update({"val": float(b[vcol]), "test": float(b[tcol])})
        for extra in ("params", "flops", "test_challenge"):
            if extra in cm.columns:
                row[extra] = b[extra]
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        ref = out[out["leads"] == REFERENCE]
        ref_config = ref["best_config"].iloc[0] if len(ref) else None
        out["same_as_12"] = out["best_config"] == ref_config if ref_config is not None else np.nan
        out["test_drop_vs_12"] = out["test"] - (float(ref["test"].iloc[0]) if len(ref) else np.nan)
    return out


def _targets(df: pd.DataFrame, metric: str) -> dict[str, str]:
    out = {"all": f"test_{metric}"}
    for col in df.columns:
        if col.startswith("test_group_"):
            out[f"group:{col[len('test_group_') :]}"] = col
    return out


def _t_interval(x: np.ndarray) -> tuple[float, float]:
    if len(x) < 2:
        return (float("nan"), float("nan"))
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    m = float(x.mean())
    return (m - half, m + half)


def lead_set_drop(df: pd.DataFrame, *, metric: str = "macro_auroc") -> pd.DataFrame:
    """Score of each lead set minus the 12-lead score, per target (``all`` and each ``group:<g>``).

    ``mean_diff`` and its 95% t-interval are over (architecture, seed) pairs trained on both lead sets, so the
    drop is not confounded with which architectures were run; ``best_diff`` compares the validation-chosen
    architecture of each set with the 12-lead one (both on test). Negative values are losses.
    """
    sets = lead_sets_of(df)
    if REFERENCE not in sets:
        raise StudyError(f"no 12-lead trials to compare with; lead sets present: {sets}")
    keys = [*_ARCH, "seed"]
    ref = _subset(df, REFERENCE).set_index(keys)
    best = best_per_lead_set(df, metric=metric).set_index("leads")
    rows = []
    for tag in sets:
        if tag == REFERENCE:
            continue
        sub = _subset(df, tag).set_index(keys)
        common = sub.index.intersection(ref.index)
        for name, col in _targets(df, metric).items():
            if col not in df.columns:
                continue
            diff = (sub.loc[common, col] - ref.loc[common, col]).dropna().to_numpy(dtype=float)
            lo, hi = _t_interval(diff)
            best_diff = float("nan")
            if tag in best.index and REFERENCE in best.index:
                b_cfg, r_cfg = best.loc[tag], best.loc[REFERENCE]
                b_rows = _subset(df, tag)
                r_rows = _subset(df, REFERENCE)
                b_score = b_rows[(b_rows[_ARCH] == b_cfg[_ARCH].to_numpy()).all(axis=1)][col].mean()
                r_score = r_rows[(r_rows[_ARCH] == r_cfg[_ARCH].to_numpy()).all(axis=1)][col].mean()
                best_diff = float(b_score - r_score)
            rows.append(
                {
                    "leads": tag,
                    "target": name,
                    "mean_diff": float(diff.mean()) if len(diff) else float("nan"),
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_pairs": len(diff),
                    "best_diff": best_diff,
                }
            )
    return pd.DataFrame(rows, columns=["leads", "target", "mean_diff", "ci_low", "ci_high", "n_pairs", "best_diff"])


def lead_findings(best: pd.DataFrame, drop: pd.DataFrame, *, metric: str = "macro_auroc") -> list[str]:
    """One-line statements computed from :func:`best_per_lead_set` and :func:`lead_set_drop`."""
    from ecgscale.metrics.lead_sets import challenge_summary

    out = []
    if not best.empty:
        parts = [f"{r.leads} leads: {r.best_config} (test {r.test:.3f})" for r in best.itertuples()]
        moved = [r.leads for r in best.itertuples() if r.leads != REFERENCE and not r.same_as_12]
        out.append(
            f"Best configuration per lead set (chosen on validation {metric}): "
            + "; ".join(parts)
            + ". "
            + (
                f"The optimal scale moves with fewer leads for: {', '.join(moved)}."
                if moved
                else "The same configuration wins for every lead set."
            )
        )
        if "test_challenge" in best.columns:
            summary = challenge_summary(dict(zip(best["leads"], best["test_challenge"], strict=True)))
            if summary is not None:
                out.append(
                    f"Challenge summary (mean test challenge metric of the 12-, 3- and 2-lead bests): {summary:.3f}."
                )
    for tag, part in drop.groupby("leads", sort=False):
        groups = part[part.target.str.startswith("group:")].sort_values("mean_diff")
        overall = part[part.target == "all"]
        if overall.empty:
            continue
        o = overall.iloc[0]
        if o.n_pairs >= 2 and np.isfinite(o.ci_low):
            spread = f"95% CI {o.ci_low:+.3f} to {o.ci_high:+.3f}, {o.n_pairs} paired trials"
        else:  # one (architecture, seed) pair: no spread over trials to show (a record-level bootstrap can)
            spread = f"{o.n_pairs} paired trial, no interval over trials"
        text = f"{tag} leads vs 12: test {metric} {o.mean_diff:+.3f} ({spread})"
        if len(groups):
            worst = groups.iloc[0]
            text += f"; largest loss in {worst.target[6:]} ({worst.mean_diff:+.3f})"
        out.append(text + ".")
    return out
