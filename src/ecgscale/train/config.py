"""How a network is trained: one frozen, validated, JSON-round-tripping configuration saved with every run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecgscale.config import reject_unknown_keys
from ecgscale.data.leads import LeadSet, parse_leads
from ecgscale.errors import ConfigError

__all__ = ["AGGREGATES", "MONITORS", "PRECISIONS", "SCHEDULES", "TrainConfig"]

#: Validation metrics that early stopping and best-checkpoint selection can follow (``val_loss`` is minimised).
MONITORS = ("macro_auroc", "challenge", "macro_auprc", "macro_f1", "val_loss")
SCHEDULES = ("cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AGGREGATES = ("mean", "max")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimisation settings of one run; ``dataclasses.replace`` makes variants, ``to_dict`` saves it.

    ``batch_size`` is the global batch: under data-parallel training each of ``W`` processes takes
    ``batch_size / W`` records of every step, so a run on 2 processes follows the same optimisation as one.
    ``precision="auto"`` means bf16 autocast on CPUs with AVX-512 BF16 or AMX (about twice as fast there), fp32
    on other CPUs (emulated bf16 is slower than fp32), and fp16 autocast with a ``GradScaler`` on CUDA.
    ``max_minutes`` is a wall-clock budget checked after every step.
    ``init_from`` is a run directory to start from (fine-tuning, ``ecgscale.train.finetune``): its weights, a
    new head when the label set differs; ``freeze_trunk`` trains only the head, ``trunk_lr_factor`` scales the
    trunk's learning rate.
    ``leads`` is the lead set the network takes (``ecgscale.data.leads``: ``"6"``, ``"I,II,V2"``, a list of
    names); it is stored as a tuple of standard names, or ``None`` for all 12 leads, so 12-lead configs equal
    those written before lead sets existed. The rows are taken from the 12-lead cache at batch assembly.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    grad_clip: float | None = 1.0
    pos_weight: bool = False
    pos_weight_max: float = 10.0
    patience: int | None = 10
    monitor: str = "macro_auroc"
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    max_minutes: float | None = None
    tensorboard: bool = False
    checkpoint_every: int = 50
    deterministic: bool = True
    random_crop: bool = True
    crop_s: float | None = None
    eval_stride_s: float | None = None
    eval_aggregate: str = "mean"
    init_from: str | None = None
    freeze_trunk: bool = False
    trunk_lr_factor: float = 1.0
    leads: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        def bad(key: str, allowed: str) -> ConfigError:
            return ConfigError(f"got {getattr(self, key)!r}; allowed: {allowed}", key=f"train.{key}")

        if not _is_int(self.epochs) or self.epochs < 1:
            raise bad("epochs", "an integer >= 1")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise bad("batch_size", "an integer >= 1")
        if not _is_pos(self.lr):
            raise bad("lr", "a finite number > 0")
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a finite number >= 0")
        if self.optimizer != "adamw":
            raise bad("optimizer", "'adamw'")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", " | ".join(SCHEDULES))
        if not _is_num(self.warmup_epochs) or self.warmup_epochs < 0:
            raise bad("warmup_epochs", "a finite number >= 0")
        if self.grad_clip is not None and not _is_pos(self.grad_clip):
            raise bad("grad_clip", "a finite number > 0, or None for no clipping")
        if not isinstance(self.pos_weight, bool):
            raise bad("pos_weight", "true or false")
        if not _is_num(self.pos_weight_max) or self.pos_weight_max < 1:
            raise bad("pos_weight_max", "a finite number >= 1")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 1):
            raise bad("patience", "an integer >= 1, or None for no early stopping")
        if self.monitor not in MONITORS:
            raise bad("monitor", " | ".join(MONITORS))
        if self.precision not in PRECISIONS:
            raise bad("precision", " | ".join(PRECISIONS))
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise bad("device", "'auto', 'cpu', 'cuda' or 'cuda:N'")
        if not _is_int(self.seed) or self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not _is_int(self.num_workers) or self.num_workers < 0:
            raise bad("num_workers", "an integer >= 0")
        if self.max_minutes is not None and not _is_pos(self.max_minutes):
            raise bad("max_minutes", "a finite number > 0, or None for no budget")
        if not _is_int(self.checkpoint_every) or self.checkpoint_every < 0:
            raise bad("checkpoint_every", "an integer >= 0 (steps between mid-epoch resume checkpoints; 0 = off)")
        if self.crop_s is not None and not _is_pos(self.crop_s):
            raise bad("crop_s", "a finite number of seconds > 0, or None for the whole window")
        if self.eval_stride_s is not None and not _is_pos(self.eval_stride_s):
            raise bad("eval_stride_s", "a finite number of seconds > 0, or None for the crop length")
        if self.eval_aggregate not in AGGREGATES:
            raise bad("eval_aggregate", " | ".join(AGGREGATES))
        for key in ("tensorboard", "deterministic", "random_crop"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "true or false")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise bad("init_from", "a run directory, or None to train from scratch")
        if not isinstance(self.freeze_trunk, bool):
            raise bad("freeze_trunk", "true or false")
        if not _is_pos(self.trunk_lr_factor) or self.trunk_lr_factor > 1:
            raise bad("trunk_lr_factor", "a number in (0, 1]")
        if self.init_from is None and (self.freeze_trunk or self.trunk_lr_factor != 1.0):
            raise bad("init_from", "a run directory: freeze_trunk and trunk_lr_factor apply only when fine-tuning")
        names = parse_leads(self.leads, key="train.leads").to_config()
        object.__setattr__(self, "leads", None if names is None else tuple(names))

    @property
    def lead_set(self) -> LeadSet:
        """The :class:`ecgscale.data.leads.LeadSet` this run trains on (all 12 leads when ``leads`` is None)."""
        return parse_leads(self.leads)

    @property
    def maximize(self) -> bool:
        """Whether a larger monitored value is better (all metrics except ``val_loss``)."""
        return self.monitor != "val_loss"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["leads"] = None if self.leads is None else list(self.leads)  # JSON-equal to what it reads back
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (e.g. ``config.json``); unknown keys are an error, missing keys take defaults."""
        reject_unknown_keys(data, {f.name for f in dataclasses.fields(cls)}, what="training")
        return cls(**dict(data))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_pos(value: Any) -> bool:
    return _is_num(value) and value > 0
