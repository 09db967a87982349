"""Learning-rate schedules stepped once per optimiser step, with state that is plain JSON (no pickle)."""

from __future__ import annotations

import math

import torch

from ecgscale.train.config import TrainConfig

__all__ = ["WarmupCosine", "build_scheduler"]


class WarmupCosine:
    """LR factor: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine decay to ``final`` at ``total``.

    A callable object rather than a closure so ``LambdaLR.state_dict`` stores its fields, and a resumed run
    can check it rebuilt the same schedule.
    """

    def __init__(self, warmup_steps: int, total_steps: int, final: float = 0.0):
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.final = float(final)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule named by ``config.schedule`` over ``config.epochs * steps_per_epoch`` steps."""
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if config.schedule == "onecycle":
        # torch's one-cycle (Smith & Topin) also cycles Adam's beta1; the warm-up share follows warmup_epochs.
        pct = min(max(warmup / total, 0.01), 0.5)
        # Each group peaks at lr x its lr_factor (a fine-tuned trunk's slower rate, ecgscale.train.finetune).
        peaks = [config.lr * float(g.get("lr_factor", 1.0)) for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=pct)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total, final=0.01))
