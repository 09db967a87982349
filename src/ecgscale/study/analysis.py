"""The scale questions answered from a finished sweep (:func:`ecgscale.study.results.study_results` table).

* Performance vs D, C and K (per label group and per data source) with error bars over seeds.
* Receptive field vs performance: Spearman correlation, and the GAP − noGAP difference split at a receptive
  field threshold (does GAP help only when the field is local?).
* Cost vs performance: params, FLOPs and training time against the metric, with the Pareto front.
* Per-label best configuration, chosen on validation and reported on test, and the gain of a per-group choice
  over one global model.
* With a lead-set axis (``ecgscale.study.lead_sets``): the best configuration per lead set and the drop of each
  lead set against 12 leads per label group; the analyses above then use the 12-lead trials.

Every function takes the results DataFrame and returns a DataFrame; :func:`analyze_study` writes them all
(CSV + Markdown) with the figures and the findings stated from the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgscale.errors import StudyError
from ecgscale.fileio import write_text_atomic
from ecgscale.study.grids import AXES

__all__ = [
    "AnalysisReport",
    "analyze_study",
    "axis_table",
    "best_per_label",
    "config_means",
    "cost_table",
    "gap_effect",
    "markdown_table",
    "pareto_front",
    "rf_correlation",
    "targets",
]

ARCH = [*AXES, "gap"]


def targets(df: pd.DataFrame, metric: str = "macro_auroc", split: str = "test") -> dict[str, str]:
    """Display name → column of every score to analyse: ``all``, ``group:<g>``, ``source:<s>``."""
    out = {"all": f"{split}_{metric}"} if f"{split}_{metric}" in df.columns else {}
    for col in df.columns:
        if col.startswith(f"{split}_group_"):
            out[f"group:{col[len(split) + 7 :]}"] = col
    suffix = f"_{metric}"
    for col in df.columns:
        if col.startswith(f"{split}_source_") and col.endswith(suffix):
            out[f"source:{col[len(split) + 8 : -len(suffix)]}"] = col
    return out


def config_means(df: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: numeric columns averaged over seeds, plus ``n_seeds``."""
    num = [
        c
        for c in df.columns
        if c not in ARCH and c not in ("trial", "seed", "config") and pd.api.types.is_numeric_dtype(df[c])
    ]
    g = df.groupby(ARCH, as_index=False)
    out = g[num].mean()
    out["n_seeds"] = g.size()["size"].to_numpy()
    out.insert(
        0, "config", [f"D{d}-C{c}-K{k}-{'gap' if gp else 'nogap'}" for d, c, k, gp in out[ARCH].itertuples(index=False)]
    )
    return out


def _base_slice(df: pd.DataFrame, axis: str, base: Mapping[str, int] | None) -> pd.DataFrame:
    if base:
        others = [a for a in AXES if a != axis]
        mask = np.logical_and.reduce([df[a] == int(base[a]) for a in others])
        sl = df[mask]
        if sl[axis].nunique() >= 2:
            return sl
    return df  # factorial grid (or no usable base): marginal over the other factors


def axis_table(
    df: pd.DataFrame, axis: str, *, metric: str = "macro_auroc", base: Mapping[str, int] | None = None
) -> pd.DataFrame:
    """Mean, std and n over seeds of each target at each value of ``axis``, with and without GAP.

    With a ``base`` (axes grids) the other two factors are held at the base; otherwise each seed's score is first
    averaged over the other factors (the marginal effect).
    """
    if axis not in AXES:
        raise StudyError(f"axis {axis!r} is not one of {AXES}")
    sl = _base_slice(df, axis, base)
    rows = []
    for name, col in targets(df, metric).items():
        per_seed = sl.groupby([axis, "gap", "seed"])[col].mean().reset_index()
        agg = per_seed.groupby([axis, "gap"])[col].agg(["mean", "std", "count"]).reset_index()
        for r in agg.itertuples(index=False):
            rows.append(
                {
                    "axis": axis,
                    "value": int(getattr(r, axis)),
                    "gap": bool(r.gap),
                    "target": name,
                    "mean": float(r.mean),
                    "std": float(r.std) if r.count > 1 else float("nan"),
                    "n": int(r.count),
                }
            )
    return pd.DataFrame(rows, columns=["axis", "value", "gap", "target", "mean", "std", "n"])


def rf_correlation(df: pd.DataFrame, *, metric: str = "macro_auroc") -> pd.DataFrame:
    """Spearman ρ between receptive field (s) and each target, over architectures, per GAP setting and overall."""
    from scipy.stats import spearmanr

    cm = config_means(df)
    rows = []
    for name, col in targets(df, metric).items():
        for gap_label, sub in (("all", cm), ("gap", cm[cm.gap]), ("nogap", cm[~cm.gap])):
            sub = sub[[col, "receptive_field_s"]].dropna()
            if len(sub) >= 3 and sub["receptive_field_s"].nunique() > 1 and sub[col].nunique() > 1:
                res = spearmanr(sub["receptive_field_s"], sub[col])
                rho, p = float(res.statistic), float(res.pvalue)
            else:
                rho, p = float("nan"), float("nan")
            rows.append({"target": name, "gap": gap_label, "rho": rho, "p": p, "n": len(sub)})
    return pd.DataFrame(rows, columns=["target", "gap", "rho", "p", "n"])


def _t_ci(x: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def gap_effect(df: pd.DataFrame, *, metric: str = "macro_auroc", threshold_s: float | None = None) -> pd.DataFrame:
    """GAP − noGAP score of paired runs (same D, C, K, seed), split by receptive field below/above a threshold.

    The receptive field of the features does not depend on the head, so each pair has one field; the default
    threshold is the median field of the paired architectures.
    """
    keys = [*AXES, "seed"]
    cols = [c for c in targets(df, metric).values()]
    g = df[df.gap].set_index(keys)
    n = df[~df.gap].set_index(keys)
    common = g.index.intersection(n.index)
    if len(common) == 0:
        return pd.DataFrame(columns=["target", "rf_bin", "threshold_s", "n_pairs", "mean_diff", "ci_low", "ci_high"])
    rf = g.loc[common, "receptive_field_s"].astype(float)
    thr = float(np.median(rf)) if threshold_s is None else float(threshold_s)
    rows = []
    for name, col in targets(df, metric).items():
        if col not in cols:
            continue
        diff = g.loc[common, col].astype(float) - n.loc[common, col].astype(float)
        for label, mask in (
            (f"local (< {thr:.2f} s)", rf < thr),
            (f"global (>= {thr:.2f} s)", rf >= thr),
            ("all", rf == rf),
        ):
            d = diff[mask.to_numpy()].to_numpy()
            lo, hi = _t_ci(d)
            rows.append(
                {
                    "target": name,
                    "rf_bin": label,
                    "threshold_s": thr,
                    "n_pairs": int(np.isfinite(d).sum()),
                    "mean_diff": float(np.nanmean(d)) if len(d) else float("nan"),
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return pd.DataFrame(rows)


def pareto_front(df: pd.DataFrame, cost: str, metric: str) -> pd.DataFrame:
    """Rows no other row beats on both cost (lower) and metric (higher), sorted by cost.

    Hand-written (a sort and a running maximum) because neither scikit-learn nor scipy has a 2-D Pareto filter.
    """
    for c in (cost, metric):
        if c not in df.columns:
            raise StudyError(f"column {c!r} is not in the results (columns: {list(df.columns)})")
    d = df.dropna(subset=[cost, metric]).sort_values([cost, metric], ascending=[True, False])
    keep, best = [], -np.inf
    for idx, value in zip(d.index, d[metric].to_numpy(), strict=True):
        if value > best:
            keep.append(idx)
            best = value
    return d.loc[keep]


def cost_table(
    df: pd.DataFrame, *, metric: str = "macro_auroc", costs: Sequence[str] = ("params", "flops", "train_seconds")
) -> pd.DataFrame:
    """Per architecture: costs, the test metric, and whether it lies on each cost's Pareto front."""
    cm = config_means(df)
    col = f"test_{metric}"
    out = cm[
        ["config", *ARCH, *[c for c in costs if c in cm.columns], col, f"val_{metric}"]
        if f"val_{metric}" in cm.columns
        else ["config", *ARCH, *costs, col]
    ].copy()
    for c in costs:
        if c in cm.columns:
            front = pareto_front(cm, c, col)
            out[f"pareto_{c}"] = out.index.isin(front.index)
    return out.sort_values(col, ascending=False).reset_index(drop=True)


def best_per_label(df: pd.DataFrame, *, metric: str = "macro_auroc") -> pd.DataFrame:
    """For each label and label group: the architecture with the best VALIDATION score, its TEST score, and the
    gain over the one global model (best validation ``metric`` overall) on the same target."""
    cm = config_means(df)
    vcol = f"val_{metric}"
    if vcol not in cm.columns or cm.empty:
        raise StudyError(f"the results have no {vcol!r} column to select the global model")
    glob = cm.loc[cm[vcol].idxmax()]
    rows = []
    for kind in ("group", "label"):
        for col in [c for c in cm.columns if c.startswith(f"val_{kind}_")]:
            name = col[len(f"val_{kind}_") :]
            tcol = f"test_{kind}_{name}"
            if tcol not in cm.columns or cm[col].notna().sum() == 0:
                continue
            best = cm.loc[cm[col].idxmax()]
            rows.append(
                {
                    "kind": kind,
                    "target": name,
                    "best_config": best["config"],
                    **{a: best[a] for a in ARCH},
                    "val": float(best[col]),
                    "test": float(best[tcol]),
                    "global_config": glob["config"],
                    "global_test": float(glob[tcol]),
                    "gain": float(best[tcol] - glob[tcol]),
                }
            )
    return pd.DataFrame(rows)


@dataclass
class AnalysisReport:
    """Files written, the tables by name, and one-line findings computed from them."""

    out: Path
    files: list[Path] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)


def _fmt(x: Any, nd: int = 3, *, signed: bool = False) -> str:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "–" if not math.isfinite(f) else f"{f:+.{nd}f}" if signed else f"{f:.{nd}f}"


def _findings(tables: Mapping[str, pd.DataFrame], metric: str) -> list[str]:
    out = []
    rc = tables.get("rf_correlation")
    if rc is not None and not rc.empty:
        r = rc[(rc.target == "all") & (rc.gap == "all")]
        if len(r) and math.isfinite(r.rho.iloc[0]):
            rho, p, n = r.rho.iloc[0], r.p.iloc[0], r.n.iloc[0]
            verdict = (
                "a smaller receptive field scores higher"
                if rho < 0 and p < 0.05
                else "a larger receptive field scores higher"
                if rho > 0 and p < 0.05
                else "no significant relation between receptive field and score"
            )
            out.append(
                f"Receptive field vs test {metric}: Spearman rho = {rho:.2f} (p = {p:.3g}, n = {n} "
                f"architectures): {verdict}."
            )
    ge = tables.get("gap_effect")
    if ge is not None and not ge.empty:
        a = ge[ge.target == "all"]
        if len(a) >= 2:
            loc, glo = a.iloc[0], a.iloc[1]

            def sig(r: Any) -> str:
                return "helps" if r.ci_low > 0 else "hurts" if r.ci_high < 0 else "makes no clear difference"

            only = (loc.ci_low > 0) and not (glo.ci_low > 0)
            out.append(
                f"GAP − noGAP (test {metric}): {_fmt(loc.mean_diff, signed=True)} for {loc.rf_bin} fields "
                f"(95% CI {_fmt(loc.ci_low, signed=True)} to {_fmt(loc.ci_high, signed=True)}, "
                f"{loc.n_pairs} pairs), {_fmt(glo.mean_diff, signed=True)} for {glo.rf_bin} fields (95% CI "
                f"{_fmt(glo.ci_low, signed=True)} to {_fmt(glo.ci_high, signed=True)}, {glo.n_pairs} "
                f"pairs): GAP {sig(loc)} with local fields and {sig(glo)} with global ones"
                + ("; it helps ONLY when the field is local." if only else ".")
            )
    ct = tables.get("cost")
    if ct is not None and not ct.empty and "pareto_params" in ct.columns:
        front = ct[ct.pareto_params].sort_values("params")
        best = ct.iloc[0]
        out.append(
            f"Best test {metric}: {best['config']} ({_fmt(best[f'test_{metric}'])}, {int(best['params']):,} "
            f"params); Pareto front over params: {', '.join(front['config'])}."
        )
    bl = tables.get("best_per_label")
    if bl is not None and not bl.empty:
        grp = bl[bl.kind == "group"]
        if len(grp):
            out.append(
                f"Choosing the architecture per label group on validation changes test {metric} by "
                f"{_fmt(grp.gain.mean(), signed=True)} on average over {len(grp)} groups vs one global "
                f"model ({grp.iloc[0]['global_config']}); largest: {grp.loc[grp.gain.idxmax(), 'target']} "
                f"({_fmt(grp.gain.max(), signed=True)})."
            )
    for axis in AXES:
        t = tables.get(f"perf_vs_{axis}")
        if t is None or t.empty:
            continue
        a = t[t.target == "all"]
        if len(a):
            b = a.loc[a["mean"].idxmax()]
            out.append(
                f"Performance vs {axis}: best at {axis} = {b['value']} ({'GAP' if b['gap'] else 'no GAP'}, "
                f"test {metric} {_fmt(b['mean'])})."
            )
    return out


def markdown_table(df: pd.DataFrame, *, floatfmt: str = ".4f") -> str:
    """GitHub Markdown. Hand-written: ``DataFrame.to_markdown`` needs the optional ``tabulate`` package, and
    ``ecgscale.report`` (which has one) sits above ``study`` in the module graph."""

    def cell(v: Any) -> str:
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, float | np.floating):
            return "–" if not math.isfinite(float(v)) else format(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def analyze_study(
    df: pd.DataFrame,
    out: str | Path,
    *,
    metric: str = "macro_auroc",
    rf_threshold: float | None = None,
    grid: Mapping[str, Any] | None = None,
    figures: bool = True,
) -> AnalysisReport:
    """Write every table (CSV + Markdown), figure (PNG + SVG) and ``findings.md`` of a sweep into ``out``."""
    if df is None or df.empty:
        raise StudyError("the study has no complete trial to analyse")
    if f"test_{metric}" not in df.columns:
        raise StudyError(
            f"the results have no test_{metric!r} column; metrics present: "
            f"{sorted(c[5:] for c in df.columns if c.startswith('test_') and '_label_' not in c)}"
        )
    if "seed" not in df.columns:  # a search study: one seed per trial
        df = df.assign(seed=0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = (grid or {}).get("base")
    report = AnalysisReport(out)
    tables: dict[str, pd.DataFrame] = {"results": df.drop(columns=[c for c in ("run_dir", "worker") if c in df])}
    lead_lines: list[str] = []
    if "leads" in df.columns and df["leads"].nunique() > 1:
        # A lead-set axis: its own tables; every other analysis is of one lead set (12 leads when present).
        from ecgscale.study import lead_sets

        tables["best_per_lead_set"] = lead_sets.best_per_lead_set(df, metric=metric)
        sets = lead_sets.lead_sets_of(df)
        if lead_sets.REFERENCE in sets:
            tables["lead_set_drop"] = lead_sets.lead_set_drop(df, metric=metric)
        lead_lines = lead_sets.lead_findings(
            tables["best_per_lead_set"], tables.get("lead_set_drop", pd.DataFrame()), metric=metric
        )
        df = df[df["leads"] == sets[0]]
    for axis in AXES:
        tables[f"perf_vs_{axis}"] = axis_table(df, axis, metric=metric, base=base)
    tables["rf_correlation"] = rf_correlation(df, metric=metric)
    tables["gap_effect"] = gap_effect(df, metric=metric, threshold_s=rf_threshold)
    tables["cost"] = cost_table(df, metric=metric)
    tables["best_per_label"] = best_per_label(df, metric=metric)
    for name, t in tables.items():
        csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
        write_text_atomic(csv_path, t.to_csv(index=False))
        write_text_atomic(md_path, markdown_table(t))
        report.files += [csv_path, md_path]
    report.tables = tables
    report.findings = lead_lines + _findings(tables, metric)
    findings_path = out / "findings.md"
    write_text_atomic(
        findings_path, "# Findings (computed from the study)\n\n" + "".join(f"- {line}\n" for line in report.findings)
    )
    report.files.append(findings_path)
    if figures:
        from ecgscale.study import figures as fig

        report.files += fig.axis_figures(tables, out, metric=metric)
        ge = tables["gap_effect"]
        report.files += fig.rf_figure(
            df, out, metric=metric, threshold_s=float(ge.threshold_s.iloc[0]) if len(ge) else None
        )
        report.files += fig.cost_figure(df, out, metric=metric)
        if "lead_set_drop" in tables and not tables["lead_set_drop"].empty:
            report.files += fig.lead_set_figure(tables["lead_set_drop"], out, metric=metric)
    return report
