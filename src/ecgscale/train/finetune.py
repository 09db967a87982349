"""Fine-tuning: start a run from the weights of a trained run (``TrainConfig.init_from``).

The parent's ``model.safetensors`` is loaded through :func:`ecgscale.train.checkpoint.load_run` (safetensors,
never pickle). The architecture must be the parent's (same weights shapes; only ``n_classes`` and ``dropout``
may differ). The classifier head is kept when the label space is the parent's (same class keys, same order);
otherwise the new run keeps its freshly initialised head (``reset_head``: a head for the new label set) and
takes only the trunk. Two ways to protect what the trunk learned on the bigger data set:

- ``freeze_trunk``: trunk parameters get ``requires_grad=False`` and its batch-norm layers stay in eval mode
  (their running statistics are part of what was learned; in train mode they would drift to the new data);
- ``trunk_lr_factor`` < 1: the trunk trains at ``lr * factor`` (its own optimiser groups), the head at ``lr``.

What the run started from is written to its ``config.json`` under ``parent``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ecgscale.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from ecgscale.data.labels import LabelSpace

__all__ = ["init_from_run", "is_head_parameter", "optimizer_groups", "parent_model_config"]

log = logging.getLogger(__name__)

#: Model-config keys that may differ between a parent and its fine-tuned child (no weight depends on them).
_FREE_KEYS = frozenset({"n_classes", "dropout"})
_FROZEN_BN: dict[type, type] = {}


def is_head_parameter(name: str) -> bool:
    """Whether a parameter (``named_parameters`` name) belongs to the classifier head rather than the trunk."""
    return name.startswith("head.")


def _frozen_class(cls: type) -> type:
    """A subclass of a batch-norm class whose ``train()`` keeps the module in eval mode (same state dict keys)."""
    if cls not in _FROZEN_BN:

        def train(self: nn.Module, mode: bool = True) -> nn.Module:
            return nn.Module.train(self, False)

        _FROZEN_BN[cls] = type(f"Frozen{cls.__name__}", (cls,), {"train": train})
    return _FROZEN_BN[cls]


def _freeze_trunk(model: nn.Module) -> int:
    n = 0
    for name, param in model.named_parameters():
        if not is_head_parameter(name):
            param.requires_grad_(False)
            n += param.numel()
    for name, module in model.named_modules():
        if not name.startswith("head") and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.__class__ = _frozen_class(type(module))
            module.eval()
    return n


def optimizer_groups(model: nn.Module, *, lr: float, weight_decay: float, trunk_lr_factor: float = 1.0) -> list[dict]:
    """AdamW parameter groups: weights decay, biases and norms do not; the trunk at ``lr * trunk_lr_factor``.

    Frozen parameters (``requires_grad=False``) are left out. Each group carries ``lr_factor`` so a schedule
    with its own peak (one-cycle) can scale it per group.
    """
    groups = []
    for is_head in (False, True):
        factor = 1.0 if is_head else float(trunk_lr_factor)
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and is_head_parameter(n) == is_head]
        for decay in (True, False):
            chosen = [p for _, p in params if (p.ndim > 1) == decay]
            if chosen:
                groups.append(
                    {
                        "params": chosen,
                        "weight_decay": weight_decay if decay else 0.0,
                        "lr": lr * factor,
                        "lr_factor": factor,
                    }
                )
    return groups


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def init_from_run(
    model: nn.Module,
    run_dir: str | Path,
    *,
    label_space: LabelSpace,
    preprocess_hash: str | None = None,
    freeze_trunk: bool = False,
    trunk_lr_factor: float = 1.0,
) -> dict[str, Any]:
    """Load the parent run's weights into ``model`` (built for the new label space); returns the ``parent`` record.

    Raises ``CheckpointError`` for an unreadable parent and ``ConfigError`` for another architecture.
    """
    from ecgscale.train.checkpoint import load_run
    from ecgscale.train.rundir import MODEL_FILE

    run = Path(run_dir)
    if not (run / MODEL_FILE).is_file():
        raise CheckpointError(f"{run}: no {MODEL_FILE}; --init-from needs a finished (or best-saved) training run")
    parent = load_run(run)
    mine = model.config.to_dict()  # type: ignore[union-attr, operator]
    theirs = parent.model.config.to_dict()  # type: ignore[union-attr, operator]
    keys = sorted((set(mine) | set(theirs)) - _FREE_KEYS)
    diffs = [f"{k} {theirs.get(k)!r} → {mine.get(k)!r}" for k in keys if mine.get(k) != theirs.get(k)]
    if diffs:
        raise ConfigError(
            f"{run}: --init-from needs the parent's architecture; differs in {', '.join(diffs)} "
            "(leave --depth/--channels/--kernel unset to take the parent's)",
            key="init_from",
        )
    same_labels = parent.label_space.keys == list(label_space.keys)
    state = parent.model.state_dict()
    if not same_labels:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    result = model.load_state_dict(state, strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if same_labels or not k.startswith("head.")]
    if missing or unexpected:  # same config, so never expected: a damaged or foreign checkpoint
        why = f"weights do not fit (missing {missing[:5]}, unexpected {unexpected[:5]})"
        raise CheckpointError(f"{run / MODEL_FILE}: {why}")
    n_frozen = _freeze_trunk(model) if freeze_trunk else 0
    parent_hash = parent.config.get("preprocess_hash")
    if preprocess_hash is not None and parent_hash is not None and parent_hash != preprocess_hash:
        log.warning(
            "%s was trained on preprocessing %s, this cache has %s: the trunk sees inputs it was not trained on "
            "(rate, band-pass or standardisation differ; see `ecgscale inspect %s`)",
            run,
            parent_hash,
            preprocess_hash,
            run,
        )
    return {
        "run_dir": str(run.resolve()),
        "weights": MODEL_FILE,
        "weights_sha256": _sha256(run / MODEL_FILE),
        "label_space": parent.label_space.name,
        "n_classes": len(parent.label_space),
        "head": "kept" if same_labels else "new",
        "preprocess_hash": parent_hash,
        "same_preprocessing": preprocess_hash is None or parent_hash == preprocess_hash,
        "best_epoch": parent.config.get("best_epoch"),
        "best_score": parent.config.get("best_score"),
        "monitor": parent.config.get("monitor"),
        "freeze_trunk": bool(freeze_trunk),
        "frozen_parameters": n_frozen,
        "trunk_lr_factor": float(trunk_lr_factor),
    }


def parent_model_config(run_dir: str | Path) -> Mapping[str, Any]:
    """The model config of a run directory (``config.json``'s ``model``), to build a child of the same shape."""
    from ecgscale.train.rundir import RunDir

    cfg = RunDir(run_dir).read_config()
    if cfg.model is None:
        raise CheckpointError(f"{cfg.path}: no model config to fine-tune from")
    return cfg.model
