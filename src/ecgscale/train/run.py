"""``train_run``: train one ResNet1d configuration on a prepared cache into a run directory."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgscale.errors import ConfigError
from ecgscale.train.config import TrainConfig
from ecgscale.train.data import CacheSource
from ecgscale.train.trainer import DistContext, EpochCallback, Trainer, TrainResult, eval_windows_of

if TYPE_CHECKING:
    from ecgscale.data.cache import EcgCache
    from ecgscale.models import ResNet1d, ResNet1dConfig
    from ecgscale.progress import Progress

__all__ = ["build_model", "train_run"]


def build_model(
    model_config: ResNet1dConfig | Mapping[str, Any], *, n_classes: int, window: int, seed: int, n_leads: int = 12
) -> ResNet1d:
    """The network of ``model_config`` for ``n_classes`` outputs, checked against ``window`` input samples.

    ``n_leads`` is the size of the run's lead set (``TrainConfig.leads``): a config left at the default 12 input
    leads follows it; any other mismatch is an error.

    Bad D/C/K, a kernel too wide for the signal, or a no-GAP head built for another length raise
    ``ConfigError`` here, before any data is read for training.
    """
    from ecgscale.models import ResNet1d, ResNet1dConfig

    if isinstance(model_config, Mapping):
        model_config = ResNet1dConfig.from_dict(model_config)
    if not isinstance(model_config, ResNet1dConfig):
        raise ConfigError(f"expected a ResNet1dConfig or a dict, got {type(model_config).__name__}", key="model")
    if model_config.n_leads != n_leads:
        if model_config.n_leads != 12:
            raise ConfigError(
                f"got n_leads={model_config.n_leads} but the run's lead set has {n_leads} leads; set "
                "train.leads (--leads) and leave n_leads to follow it",
                key="model.n_leads",
            )
        model_config = dataclasses.replace(model_config, n_leads=n_leads)
    if model_config.n_classes != n_classes:
        raise ConfigError(
            f"got n_classes={model_config.n_classes} but the cache's label space has {n_classes} "
            f"classes; build the config with n_classes={n_classes}",
            key="model.n_classes",
        )
    model_config.validate_input_length(window)
    return ResNet1d(model_config, generator=seed)


def train_run(
    cache: EcgCache | str | os.PathLike[str],
    model_config: ResNet1dConfig | Mapping[str, Any],
    train_config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool | Progress = True,
    epoch_callback: EpochCallback | None = None,
    dist: DistContext | None = None,
) -> TrainResult:
    """Train on the cache's ``train`` split, select and threshold on ``val``, write everything to ``out_dir``.

    ``cache`` is an ``EcgCache`` or its path. With ``train_config.crop_s`` the model is built for (and, without
    GAP, must have ``input_length`` equal to) the crop length in samples, ``round(crop_s * fs)``.
    The run directory is described in ``ecgscale.train.rundir``;
    ``resume=True`` continues an interrupted run from its last checkpoint (same final metrics as an
    uninterrupted run). ``epoch_callback(epoch, val_metrics)`` (the ``compute_metrics`` dict plus ``val_loss`` and
    the monitored value under its config name, e.g. ``"challenge"``) runs after each epoch's checkpoint is written
    (the study layer reports to Optuna there; a prune exception propagates). ``progress``: ``True`` draws a bar
    per epoch (``ecgscale.progress.RichProgress``), or pass a ``Progress`` reporter; epoch lines go to the log
    when nothing shows them.
    """
    from ecgscale.data.cache import open_cache

    if not isinstance(train_config, TrainConfig):
        raise ConfigError(f"expected a TrainConfig, got {type(train_config).__name__}", key="train")
    if isinstance(cache, str | os.PathLike):
        cache = open_cache(cache)
    space = cache.label_space
    window = int(cache.window_length)
    fs = float(cache.config.fs)
    spec = eval_windows_of(train_config, fs, window)
    model_window = window if spec is None else spec.length  # the model sees crops in training and evaluation
    lead_set = train_config.lead_set
    model = build_model(
        model_config, n_classes=len(space), window=model_window, seed=train_config.seed, n_leads=len(lead_set)
    )
    # The lead subset is taken here, from the 12-lead cache's rows (see ecgscale.data.leads for why).
    train_src = CacheSource(cache, "train", leads=lead_set)
    val_src = CacheSource(cache, "val", leads=lead_set)
    for name, src in (("train", train_src), ("val", val_src)):
        if len(src) == 0:
            raise ConfigError(
                f"cache {cache.path} has no records in split {name!r}; rebuild or resplit it with "
                "non-zero train and val fractions",
                key="split",
            )
    parent = None
    if train_config.init_from is not None:  # fine-tuning: the parent's weights (ecgscale.train.finetune)
        from ecgscale.train.finetune import init_from_run

        parent = init_from_run(
            model,
            train_config.init_from,
            label_space=space,
            preprocess_hash=cache.preprocess_hash,
            freeze_trunk=train_config.freeze_trunk,
            trunk_lr_factor=train_config.trunk_lr_factor,
        )
    run_info = {
        "model": model.config.to_dict(),
        "preprocess": cache.config.to_dict(),
        "preprocess_hash": cache.preprocess_hash,
        "cache": str(Path(cache.path).resolve()),
        "split": cache.info.get("split"),
        "parent": parent,
        "leads": list(lead_set.names),
    }
    trainer = Trainer(
        model,
        space,
        train_config,
        train_data=train_src,
        val_data=val_src,
        out_dir=out_dir,
        run_info=run_info,
        progress=progress,
        epoch_callback=epoch_callback,
        dist=dist,
        fs=fs,
    )
    return trainer.fit(resume=resume)
