"""Open a run directory for inference: weights, labels, thresholds and the preprocessing it was trained with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ecgscale.errors import CheckpointError

__all__ = ["open_run", "preprocess_of"]


def preprocess_of(loaded: Any) -> Any:
    """The run's ``PreprocessConfig``, checked against the hash recorded at training time.

    A mismatch means ``config.json`` was edited or the pipeline's arithmetic changed since training
    (``PIPELINE_VERSION`` is part of the hash); predicting anyway would feed the model signals it never saw.
    """
    cfg_path = Path(loaded.run_dir) / "config.json"
    config = loaded.preprocess
    if config is None:
        raise CheckpointError(
            f"{cfg_path}: no 'preprocess' section; the run was trained on in-memory arrays, so "
            "ecgscale cannot know how to preprocess raw ECG files for it"
        )
    recorded = loaded.config.get("preprocess_hash")
    if not recorded:
        raise CheckpointError(
            f"{cfg_path}: no 'preprocess_hash'; cannot check that the preprocessing in "
            "config.json is the one the model was trained with"
        )
    if config.hash() != recorded:
        raise CheckpointError(
            f"{cfg_path}: preprocess_hash {recorded!r} does not match the 'preprocess' section (hash "
            f"{config.hash()!r} with this ecgscale's pipeline version); the config was edited or the preprocessing "
            "code changed since training: retrain, or predict with the ecgscale version that trained the run"
        )
    window = loaded.config.get("window")
    if window is not None and int(window) != config.window_samples:
        raise CheckpointError(
            f"{cfg_path}: 'window' is {window} samples but the preprocessing gives "
            f"{config.window_samples} ({config.window_s} s at {config.fs:g} Hz)"
        )
    return config


def open_run(run_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(LoadedRun, PreprocessConfig)`` of a trained run; every problem is a ``CheckpointError`` naming the file."""
    from ecgscale.train.checkpoint import load_run

    loaded = load_run(run_dir)
    return loaded, preprocess_of(loaded)
