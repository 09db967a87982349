"""Open a run directory for inference: weights, labels, thresholds and the preprocessing it was trained with."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.train.checkpoint import LoadedRun

__all__ = ["open_run", "preprocess_of"]


def preprocess_of(loaded: LoadedRun) -> PreprocessConfig:
    """The run's ``PreprocessConfig``, checked against the hash recorded at training time
    (``RunConfig.checked_preprocess``)."""
    return loaded.config.checked_preprocess()


def open_run(run_dir: str | os.PathLike[str]) -> tuple[LoadedRun, PreprocessConfig]:
    """``(LoadedRun, PreprocessConfig)`` of a trained run; every problem is a ``CheckpointError`` naming the file."""
    from ecgscale.train.checkpoint import load_run

    loaded = load_run(run_dir)
    return loaded, preprocess_of(loaded)
