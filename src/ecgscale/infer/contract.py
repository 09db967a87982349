"""What a trained run expects as input, read from its ``config.json``: the contract ``ecgscale inspect RUN_DIR``
prints in plain words, and that ``predict`` applies (every record is preprocessed by ``preprocess`` with the
run's own ``PreprocessConfig``: leads put in the run's order by name, resampled to its rate, filtered and
windowed as in training; readers convert header units to mV before that).

Only ``config.json`` is read, so the contract of a run whose weights were not shipped can still be inspected.
"""

from __future__ import annotations

import os
from typing import Any

from ecgscale.errors import CheckpointError

__all__ = ["is_run_dir", "run_contract"]


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a run directory (a ``config.json`` written by ecgscale's trainer)."""
    from ecgscale.train.rundir import RunDir

    run = RunDir(path)
    if not run.config_file.is_file():
        return False
    try:
        run.read_config()  # checks the format
    except CheckpointError:
        return False
    return True


def _seconds(samples: Any, fs: float) -> float | None:
    return None if samples is None or not fs else round(float(samples) / fs, 6)


def run_contract(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The input contract and outputs of a run as a JSON-ready dict (``CheckpointError`` if it is not a run)."""
    from ecgscale.train.rundir import RunDir

    run = RunDir(run_dir)
    cfg = run.read_config()
    pre = cfg.get("preprocess") or {}
    if not pre:
        raise CheckpointError(
            f"{cfg.path}: no 'preprocess' entry (trained on in-memory arrays): no file input contract"
        )
    fs = float(pre["fs"])
    model = cfg.get("model") or {}
    leads = list(cfg.parse_leads().names)  # the rule load_run applies, checked the same
    n_leads = int(model.get("n_leads", len(leads)))
    crop = cfg.get("crop")
    windows = cfg.get("eval_windows")
    space = cfg.get("label_space") or {}
    classes = [c.get("abbreviation") or c.get("key") for c in space.get("classes", [])]
    band = pre.get("bandpass")
    out: dict[str, Any] = {
        "run_dir": str(run.path),
        "weights_present": run.model_file.is_file(),
        "units": "mV",
        "leads": list(leads),
        "n_leads": n_leads,
        "fs": fs,
        "resampler": pre.get("resampler", "fft"),
        "bandpass_hz": None if band is None else [float(b) for b in band],
        "standardize": bool(pre.get("standardize", True)),
        "window_s": float(pre["window_s"]),
        "window_samples": cfg.get("window"),
        "max_store_s": pre.get("max_store_s"),
        "model_input_samples": crop if crop is not None else cfg.get("window"),
        "model_input_s": _seconds(crop if crop is not None else cfg.get("window"), fs),
        "eval_windows": None
        if not windows
        else {
            "length_s": _seconds(windows.get("length"), fs),
            "stride_s": _seconds(windows.get("stride"), fs),
            "aggregate": windows.get("aggregate"),
        },
        "preprocess_hash": cfg.get("preprocess_hash"),
        "preprocess": dict(pre),
        "label_space": space.get("name"),
        "classes": classes,
        "thresholds_source": cfg.get("thresholds_source"),
        "architecture": {k: model.get(k) for k in ("depth", "channels", "kernel_size", "gap")},
        "parent": cfg.get("parent"),
    }
    return out
