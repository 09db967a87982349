"""The best configuration within a compute budget, read off a finished study's cost–performance Pareto front.

Selection is honest: configurations are ranked on the VALIDATION metric (``val_<metric>`` when the study has
it) averaged over repeats, and the TEST metric of the chosen one is reported beside it, so the number a user
quotes was not used to choose. Latency budgets need a measurement on this machine: each candidate is built
with :func:`ecgscale.models.build_resnet1d` and timed on one 10-s record (median of a few runs); the
measurements are cached in the study folder (``latency.json``) because they are slow and machine-specific.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgscale.commands import train_command
from ecgscale.errors import ConfigError, StudyError
from ecgscale.fileio import read_json, write_json_atomic

__all__ = [
    "BUDGET_KINDS",
    "CONFIG_COLUMNS",
    "LatencyCache",
    "Recommendation",
    "aggregate_configs",
    "measure_latency_ms",
    "pareto_configs",
    "recommend",
    "resolve_metric_columns",
]

log = logging.getLogger(__name__)

CONFIG_COLUMNS: tuple[str, ...] = ("depth", "channels", "kernel_size", "gap")
BUDGET_KINDS: dict[str, str] = {"params": "params", "flops": "flops", "latency_ms": "latency_ms"}
_COST_UNITS = {"params": "parameters", "flops": "FLOPs", "latency_ms": "ms"}


def resolve_metric_columns(df: pd.DataFrame, metric: str) -> tuple[str, str]:
    """(selection column, reported column) for ``metric``: validation to choose, test to report.

    Accepts the bare name (``macro_auroc``) or a prefixed one (``val_macro_auroc``); falls back to whatever
    single column exists so a study that stores only one split still works (then both are the same column).
    """
    base = metric.removeprefix("val_").removeprefix("test_")
    candidates = [f"val_{base}", base, f"test_{base}"]
    present = [c for c in candidates if c in df.columns]
    if not present:
        metric_like = sorted(c for c in df.columns if any(k in c for k in ("auroc", "auprc", "f1", "f2", "challenge")))
        raise ConfigError(
            f"{metric!r} is not a column of the study results; metric columns present: {metric_like}",
            key="--metric",
        )
    select = metric if metric in df.columns and metric.startswith("val_") else present[0]
    report = f"test_{base}" if f"test_{base}" in df.columns else select
    return select, report


def aggregate_configs(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per architecture (D, C, K, GAP): mean and spread (std over repeats) of the metric, costs.

    Columns: depth, channels, kernel_size, gap, n_repeats, params, flops, [receptive_field], [train_seconds],
    ``mean``/``std`` of the selection metric and ``test_mean``/``test_std`` of the reported metric, sorted by
    ``mean`` descending.
    """
    missing = [c for c in (*CONFIG_COLUMNS, "params", "flops") if c not in df.columns]
    if missing:
        raise StudyError(f"study results lack the columns {missing}; columns present: {list(df.columns)}")
    if df.empty:
        raise StudyError("the study has no finished trials to recommend from")
    select, report = resolve_metric_columns(df, metric)
    data = df.dropna(subset=[select])
    if data.empty:
        raise StudyError(f"no finished trial has a value for {select!r}")
    grouped = data.groupby(list(CONFIG_COLUMNS), sort=False, dropna=False)
    agg: dict[str, Any] = {
        "n_repeats": (select, "size"),
        "params": ("params", "first"),
        "flops": ("flops", "first"),
        "mean": (select, "mean"),
        "std": (select, "std"),
        "test_mean": (report, "mean"),
        "test_std": (report, "std"),
    }
    for extra in ("receptive_field", "receptive_field_s", "train_seconds"):
        if extra in data.columns:
            agg[extra] = (extra, "mean" if extra == "train_seconds" else "first")
    out = grouped.agg(**agg).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["test_std"] = out["test_std"].fillna(0.0)
    out["params"] = out["params"].astype(np.int64)
    out["flops"] = out["flops"].astype(np.int64)
    out.attrs.update(select_column=select, report_column=report, metric=metric)
    return out.sort_values(["mean", "params"], ascending=[False, True], ignore_index=True)


def pareto_configs(agg: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Configurations not dominated in (lower ``cost``, higher ``mean``), sorted by cost.

    Works on the per-configuration means of :func:`aggregate_configs` (not on single trials) so one lucky
    seed cannot put a configuration on the front.
    """
    if cost not in agg.columns:
        raise StudyError(f"no cost column {cost!r} in the configurations (columns: {list(agg.columns)})")
    ordered = agg.sort_values([cost, "mean"], ascending=[True, False], kind="mergesort")
    keep, best = [], -math.inf
    for idx, value in zip(ordered.index, ordered["mean"], strict=True):
        if value > best:
            keep.append(idx)
            best = value
    front = ordered.loc[keep].reset_index(drop=True)
    front.attrs.update(agg.attrs)
    return front


def _model_kwargs(row: Mapping[str, Any], n_samples: int, n_classes: int) -> dict[str, Any]:
    kwargs = {
        "depth": int(row["depth"]),
        "channels": int(row["channels"]),
        "kernel_size": int(row["kernel_size"]),
        "gap": bool(row["gap"]),
        "n_classes": int(n_classes),
    }
    if not kwargs["gap"]:
        kwargs["input_length"] = int(n_samples)
    return kwargs


def measure_latency_ms(
    model_kwargs: Mapping[str, Any], n_samples: int, *, n_windows: int = 1, repeats: int = 7, warmup: int = 2
) -> float:
    """Median CPU wall time (ms) of one forward pass over one record: ``n_windows`` windows of ``n_samples``
    (the model's input length) in one batch, the way prediction scores a record; inference mode."""
    import torch

    from ecgscale.models import build_resnet1d

    model = build_resnet1d(**model_kwargs).eval()
    x = torch.zeros(int(n_windows), 12, int(n_samples))
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


@dataclass(slots=True)
class LatencyCache:
    """Latency measurements kept in ``<study folder>/latency.json``, keyed by model, input length and threads."""

    path: Path | None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> LatencyCache:
        if path is None:
            return cls(None)
        p = Path(path)
        if not p.exists():
            return cls(p)
        try:
            data = read_json(p)
            entries = dict(data["entries"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: ignoring unreadable latency cache (%s); measuring again", p, exc)
            entries = {}
        return cls(p, entries)

    @staticmethod
    def key(model_kwargs: Mapping[str, Any], n_samples: int, threads: int, n_windows: int = 1) -> str:
        return (
            f"{json.dumps(dict(model_kwargs), sort_keys=True)}|n={n_samples}x{n_windows}|threads={threads}|"
            f"{platform.machine()}"
        )

    def get_or_measure(
        self,
        model_kwargs: Mapping[str, Any],
        n_samples: int,
        measure: Callable[[Mapping[str, Any], int], float],
        threads: int,
        n_windows: int = 1,
    ) -> float:
        k = self.key(model_kwargs, n_samples, threads, n_windows)
        if k in self.entries:
            return float(self.entries[k]["latency_ms"])
        value = float(measure(model_kwargs, n_samples))
        self.entries[k] = {
            "latency_ms": value,
            "n_samples": int(n_samples),
            "n_windows": int(n_windows),
            "threads": threads,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if self.path is not None:
            write_json_atomic(self.path, {"version": 1, "entries": self.entries})
        return value


@dataclass(frozen=True, slots=True, eq=False)
class Recommendation:
    """The chosen architecture, its expected metric, its costs and what it was compared with."""

    config: dict[str, Any]
    metric: str
    select_column: str
    report_column: str
    mean: float
    std: float
    test_mean: float
    test_std: float
    n_repeats: int
    cost: dict[str, float]
    budget_kind: str | None
    budget: float | None
    front: pd.DataFrame  # the Pareto front the choice was made on (cost column = budget kind or params)
    beaten: pd.DataFrame  # every configuration within the budget that scored lower, best first
    n_configs: int

    def train_command(
        self, cache: str = "CACHE", out: str = "runs/recommended", train: Mapping[str, Any] | None = None
    ) -> str:
        """The ``ecgscale train`` line for the chosen architecture; ``train`` (the study's protocol) adds the
        training settings its trials used, so the recommended model is trained as it was measured."""
        return train_command(cache=cache, architecture=self.config, train=train, out=out)

    def summary(self) -> str:
        c = self.config
        arch = f"D={c['depth']}, C={c['channels']}, K={c['kernel_size']}, {'GAP' if c['gap'] else 'no GAP'}"
        budget = "no budget" if self.budget_kind is None else f"{self.budget_kind} ≤ {self.budget:,.6g}"
        same = self.select_column == self.report_column
        perf = f"{self.select_column} {self.mean:.3f} ± {self.std:.3f}"
        if not same:
            perf += f" (test {self.test_mean:.3f} ± {self.test_std:.3f})"
        return (
            f"{arch}: {perf} over {self.n_repeats} repeat(s); {int(self.cost['params']):,} params, "
            f"{self.cost['flops'] / 1e6:,.1f} MFLOPs; {budget}; beat {len(self.beaten)} of "
            f"{self.n_configs - 1} other configurations"
        )

    def to_dict(self) -> dict[str, Any]:
        def rows(df: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(df.to_json(orient="records"))

        return {
            "config": self.config,
            "metric": self.metric,
            "select_column": self.select_column,
            "report_column": self.report_column,
            "mean": self.mean,
            "std": self.std,
            "test_mean": self.test_mean,
            "test_std": self.test_std,
            "n_repeats": self.n_repeats,
            "cost": self.cost,
            "budget": None if self.budget_kind is None else {"kind": self.budget_kind, "value": self.budget},
            "n_configs": self.n_configs,
            "pareto_front": rows(self.front),
            "beaten": rows(self.beaten),
            "train_command": self.train_command(),
        }


def _budget(budget_params: float | None, budget_flops: float | None, budget_latency_ms: float | None):
    given = {
        k: v
        for k, v in (("params", budget_params), ("flops", budget_flops), ("latency_ms", budget_latency_ms))
        if v is not None
    }
    if len(given) > 1:
        raise ConfigError(f"give at most one budget, got {sorted(given)}", key="--budget-*")
    if not given:
        return None, None
    kind, value = next(iter(given.items()))
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{value!r} is not a positive number", key=f"--budget-{kind.replace('_', '-')}")
    return kind, float(value)


def recommend(
    results: pd.DataFrame,
    *,
    metric: str = "macro_auroc",
    budget_params: float | None = None,
    budget_flops: float | None = None,
    budget_latency_ms: float | None = None,
    n_samples: int = 2500,
    n_windows: int = 1,
    n_classes: int | None = None,
    latency_cache: str | Path | None = None,
    measure: Callable[[Mapping[str, Any], int], float] | None = None,
    threads: int | None = None,
) -> Recommendation:
    """Choose the best configuration of a study's results within at most one compute budget.

    ``results`` is :func:`ecgscale.study.study_results` output (one row per finished trial). Latency is
    measured for the configurations on the params or FLOPs Pareto fronts only (the others cannot win at equal
    speed often enough to justify minutes of timing) with ``measure`` (default :func:`measure_latency_ms`) on
    one 10-s record: ``n_windows`` windows of the model's input length ``n_samples`` in one batch (1 × 2500 for
    10-s windows at 250 Hz), cached in ``latency_cache``.
    Raises ``ConfigError`` naming the smallest available cost when nothing fits the budget.
    """
    kind, value = _budget(budget_params, budget_flops, budget_latency_ms)
    agg = aggregate_configs(results, metric)
    select, report = agg.attrs["select_column"], agg.attrs["report_column"]
    cost_col = kind or "params"
    if kind == "latency_ms":
        if n_classes is None:
            n_classes = int(results["n_classes"].iloc[0]) if "n_classes" in results.columns else 26
        candidates = pd.concat([pareto_configs(agg, "params"), pareto_configs(agg, "flops")])
        candidates = candidates.drop_duplicates(subset=list(CONFIG_COLUMNS)).reset_index(drop=True)
        cache = LatencyCache.load(latency_cache)
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        fn = measure or (lambda kw, n: measure_latency_ms(kw, n, n_windows=n_windows))
        candidates["latency_ms"] = [
            cache.get_or_measure(_model_kwargs(row, n_samples, n_classes), n_samples, fn, threads, n_windows)
            for row in candidates.to_dict(orient="records")
        ]
        candidates.attrs.update(agg.attrs)
        pool = candidates
    else:
        pool = agg
    front = pareto_configs(pool, cost_col)
    fits = front if kind is None else front[front[cost_col] <= value]
    if fits.empty:
        smallest = pool.loc[pool[cost_col].idxmin()]
        unit = _COST_UNITS[cost_col]
        raise ConfigError(
            f"no configuration of the study fits {cost_col} ≤ {value:,.6g} {unit}; the smallest available is "
            f"{smallest[cost_col]:,.6g} {unit} (D={smallest['depth']}, C={smallest['channels']}, "
            f"K={smallest['kernel_size']})",
            key=f"--budget-{cost_col.replace('_', '-')}",
        )
    best = fits.sort_values(["mean", cost_col], ascending=[False, True]).iloc[0]
    config = {
        "depth": int(best["depth"]),
        "channels": int(best["channels"]),
        "kernel_size": int(best["kernel_size"]),
        "gap": bool(best["gap"]),
    }
    within = pool if kind is None else pool[pool[cost_col] <= value]
    is_best = np.logical_and.reduce([within[c] == best[c] for c in CONFIG_COLUMNS])
    beaten = within[~is_best & (within["mean"] < best["mean"])].sort_values("mean", ascending=False)
    cost = {"params": float(best["params"]), "flops": float(best["flops"])}
    if "latency_ms" in best.index:
        cost["latency_ms"] = float(best["latency_ms"])
    return Recommendation(
        config=config,
        metric=metric,
        select_column=select,
        report_column=report,
        mean=float(best["mean"]),
        std=float(best["std"]),
        test_mean=float(best["test_mean"]),
        test_std=float(best["test_std"]),
        n_repeats=int(best["n_repeats"]),
        cost=cost,
        budget_kind=kind,
        budget=value,
        front=front.reset_index(drop=True),
        beaten=beaten.reset_index(drop=True),
        n_configs=len(pool),
    )
