"""``evaluate_run``: score a trained run on a cache split with the thresholds tuned on VALIDATION.

Predictions use the run's evaluation windows (``config.json`` ``eval_windows``, the ones validation used for
model selection and thresholds): one centre window per record for a run trained on whole windows, or, for a run
trained on crops (``TrainConfig.crop_s``), windows of the crop length every ``stride`` samples across the centre
window, their probabilities combined by ``mean`` or ``max`` (``ecgscale.train.windows``). The stored signal
outside the centre window is not seen here; that is the predictor's job (``ecgscale.infer``).
Thresholds are never tuned on the evaluated split: they come from ``config.json``, tuned on ``val``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ecgscale.errors import CheckpointError, ConfigError
from ecgscale.fileio import atomic_path, csv_text, write_json_atomic, write_text_atomic
from ecgscale.train.checkpoint import LoadedRun, load_run
from ecgscale.train.data import CacheSource
from ecgscale.train.device import resolve_device, resolve_precision
from ecgscale.train.rundir import RunConfig, RunDir
from ecgscale.train.trainer import _jsonable, _sigmoid, predict_logits

if TYPE_CHECKING:
    from ecgscale.data.cache import EcgCache
    from ecgscale.data.labels import LabelSpace

__all__ = ["evaluate_run", "per_label_rows"]

log = logging.getLogger(__name__)


def _open_cache_for(run_dir: Path, cfg: RunConfig, cache: EcgCache | str | os.PathLike[str] | None) -> EcgCache:
    from ecgscale.data.cache import open_cache

    if cache is None:
        path = cfg.cache
        if not path:
            raise ConfigError(f"{run_dir}/config.json names no cache; pass cache= (--cache)", key="cache")
        if not Path(path).exists():
            raise ConfigError(f"the run's cache {path} does not exist any more; pass cache= (--cache)", key="cache")
        cache = path
    if isinstance(cache, str | os.PathLike):
        cache = open_cache(cache)
    return cache


def per_label_rows(metrics: Mapping[str, Any], label_space: LabelSpace) -> list[dict[str, Any]]:
    """The per-label table of ``compute_metrics`` as rows (class index, key, abbreviation, group, scores)."""
    table = metrics.get("per_label")
    rows: list[dict[str, Any]]
    if table is None:
        return []
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        rows = table.to_dict(orient="records")
    elif isinstance(table, Mapping):
        rows = [dict(v, label=k) if isinstance(v, Mapping) else {"label": k, "value": v} for k, v in table.items()]
    elif isinstance(table, Sequence):
        rows = [dict(r) for r in table]
    else:
        return []
    return [_jsonable(r) for r in rows]


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    cache: EcgCache | str | os.PathLike[str] | None = None,
    n_bootstrap: int = 200,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = "fp32",
    seed: int = 0,
    write: bool = True,
    by_source: bool = False,
    min_source_records: int = 10,
    save_predictions: bool = False,
    aggregate: str | None = None,
) -> dict[str, Any]:
    """Metrics of a run on ``split`` (default ``test``) with bootstrap 95% CIs; writes ``eval_<split>.json`` and
    ``eval_<split>_per_label.csv`` into the run directory (atomically) unless ``write=False``.

    ``cache`` defaults to the cache the run was trained on (its path is in ``config.json``); a cache with a
    different preprocessing hash or label space is refused, since the numbers would not mean what they say.

    The split is predicted once; everything else is derived from those probabilities. ``by_source=True`` adds
    ``per_source``: the metrics (no CIs) of each data source with at least ``min_source_records`` records of
    the split (a smaller source's AUROC would be noise). ``save_predictions=True`` writes them to
    ``predictions_<split>.npz`` (``index`` into the cache, ``prob`` float32 ``(N, K)``, ``source``).
    ``aggregate`` (``mean``/``max``) overrides the run's window aggregation for an analysis; the thresholds were
    still tuned under the run's own aggregation (``eval_windows`` in the result says what was used), and the files
    are then ``eval_<split>_<aggregate>.json``/``..._per_label.csv`` so the run's own evaluation is kept.
    """
    from ecgscale.metrics import compute_metrics

    run_files = RunDir(run_dir)
    run = run_files.path
    loaded = load_run(run)
    cfg = loaded.config
    cache = _open_cache_for(run, cfg, cache)
    want_hash = cfg.preprocess_hash
    if want_hash and cache.preprocess_hash != want_hash:
        raise ConfigError(
            f"cache {cache.path} was preprocessed differently (hash {cache.preprocess_hash}) from the "
            f"run's training cache (hash {want_hash}); evaluate on a cache built with the same "
            "preprocessing",
            key="cache",
        )
    if cache.label_space.keys != loaded.label_space.keys:
        raise ConfigError(
            f"cache {cache.path} has label space {cache.label_space.name!r} "
            f"({len(cache.label_space)} classes) but the run predicts {loaded.label_space.name!r} "
            f"({len(loaded.label_space)} classes)",
            key="cache",
        )
    source = CacheSource(cache, split, load_limit_mb=0, leads=loaded.leads)  # the run's rows of the 12-lead cache
    if len(source) == 0:
        raise ConfigError(f"cache {cache.path} has no records in split {split!r}", key="split")
    if source.window != cfg.get("window", source.window):
        raise CheckpointError(f"{run}: trained on {cfg.get('window')}-sample windows, cache gives {source.window}")
    spec = cfg.parse_eval_windows(aggregate=aggregate)
    dev = resolve_device(device)
    amp_dtype = resolve_precision(precision, dev).amp_dtype
    model = loaded.model.to(dev)
    logits = predict_logits(model, source, batch_size=batch_size, device=dev, amp_dtype=amp_dtype, windows=spec)
    probs = _sigmoid(logits)
    y = source.labels
    metrics = dict(
        compute_metrics(
            y, probs, thresholds=loaded.thresholds, label_space=loaded.label_space, n_bootstrap=n_bootstrap, seed=seed
        )
    )
    with torch.no_grad():
        metrics["loss"] = float(
            torch.nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(y))
        )
    per_label = per_label_rows(metrics, loaded.label_space)
    sources = cache.manifest["source"].to_numpy()[source.rows].astype(str) if by_source or save_predictions else None
    if save_predictions:
        path = run_files.predictions_file(split)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, index=source.rows, prob=probs.astype(np.float32), source=sources)
    result = {
        "run_dir": str(run.resolve()),
        "split": split,
        "n_records": len(source),
        "cache": str(Path(cache.path).resolve()),
        "preprocess_hash": cache.preprocess_hash,
        "model": cfg.get("model"),
        "leads": list(loaded.leads.names),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "best_epoch": cfg.best_epoch,
        "thresholds": loaded.thresholds.tolist(),
        "thresholds_source": cfg.thresholds_source,
        "window": "centre" if spec is None else "sliding",
        "eval_windows": None if spec is None else spec.to_dict(),
        "n_bootstrap": n_bootstrap,
        "label_space": loaded.label_space.name,
        "labels": loaded.label_space.abbreviations,
        "prevalence": np.asarray(y.mean(axis=0)).tolist(),
        "metrics": _jsonable({k: v for k, v in metrics.items() if k not in ("per_label", "per_group")}),
        "per_label": per_label,
        "per_group": _jsonable(metrics.get("per_group") or {}),
    }
    if by_source:
        assert sources is not None
        result["per_source"] = _per_source(y, probs, sources, loaded, min_records=min_source_records)
    if write:
        own = cfg.parse_eval_windows()
        # a re-scoring under another aggregation is an analysis beside the run's own evaluation, never over it
        other = None if spec is None or own is None or spec.aggregate == own.aggregate else spec.aggregate
        out = run_files.eval_file(split, aggregate=other)
        write_json_atomic(out, result)
        write_text_atomic(run_files.eval_file(split, aggregate=other, per_label=True), _csv(per_label))
        log.info("wrote %s", out)
    return result


def _per_source(
    y: np.ndarray, probs: np.ndarray, sources: np.ndarray, loaded: LoadedRun, *, min_records: int
) -> dict[str, dict[str, Any]]:
    """Scalar metrics of each source with at least ``min_records`` records, from the split's one prediction."""
    from ecgscale.metrics import compute_metrics

    out: dict[str, dict[str, Any]] = {}
    for src in sorted(set(sources.tolist())):
        mask = sources == src
        if int(mask.sum()) < min_records:
            continue
        m = compute_metrics(y[mask], probs[mask], thresholds=loaded.thresholds, label_space=loaded.label_space)
        out[src] = _jsonable({k: v for k, v in m.items() if k not in ("per_label", "per_group", "ci", "thresholds")})
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    """Per-label rows as CSV; a ``[low, high]`` interval becomes two columns ``<name>_low``/``<name>_high``."""
    flat = []
    for r in rows:
        out: dict[str, Any] = {}
        for k, v in r.items():
            if isinstance(v, list | tuple) and len(v) == 2:
                out[f"{k}_low"], out[f"{k}_high"] = v
            elif not isinstance(v, dict | list | tuple):
                out[k] = v
        flat.append(out)
    return csv_text(flat)
