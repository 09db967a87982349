"""``TrainState``: the resumable state of a training run, and the model-selection rule it records.

It is saved as JSON in the resume checkpoint (``last.safetensors`` metadata) and in ``train_state.json``, with the
keys in field order; a state saved by another ecgscale version keeps the keys this one does not name (``extra``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecgscale.train.config import TrainConfig

__all__ = ["TrainState", "is_improvement", "stop_reason"]


def is_improvement(score: float, best: float | None, *, maximize: bool) -> bool:
    """Whether a validation ``score`` beats the ``best`` so far: the first score always does, a NaN never after it,
    and any finite score beats a NaN best."""
    return best is None or (
        math.isfinite(score) and (not math.isfinite(best) or (score > best if maximize else score < best))
    )


def stop_reason(config: TrainConfig, *, epoch: int, bad_epochs: int, out_of_time: bool) -> str | None:
    """Why training stops after 0-based ``epoch`` (``None``: it goes on): time budget, early stopping, last epoch."""
    if out_of_time:
        return "time_budget"
    if config.patience is not None and bad_epochs >= config.patience:
        return "early_stopping"
    if epoch + 1 >= config.epochs:
        return "completed"
    return None


@dataclass
class TrainState:
    """Where a run is (``epoch``/``step`` to do next, 0-based), its best epoch so far (1-based) and its counters.

    ``loss_sum``/``loss_count`` accumulate the current epoch's training loss; ``history`` holds one row per epoch.
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    status: str = "running"
    stop_reason: str | None = None
    best_epoch: int | None = None
    best_score: float | None = None
    best_thresholds: list[float] | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0
    train_step_seconds: float = 0.0
    train_cpu_seconds: float = 0.0
    records_trained: int = 0
    elapsed_seconds: float = 0.0
    steps_per_epoch: int = 0
    train_config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, config: TrainConfig, *, steps_per_epoch: int) -> TrainState:
        return cls(steps_per_epoch=steps_per_epoch, train_config=config.to_dict(), seed=config.seed)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainState:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object saved with the run (field order, then ``extra``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def train_loss(self) -> float:
        """Mean training loss of the current epoch so far."""
        return self.loss_sum / max(self.loss_count, 1)

    def add_step(self, step: int, *, loss_sum: float, n_records: int, seconds: float, cpu_seconds: float) -> None:
        """Count optimiser step ``step`` (0-based in its epoch) over ``n_records`` records (all processes)."""
        self.loss_sum += loss_sum
        self.loss_count += n_records
        self.global_step += 1
        self.step = step + 1
        self.records_trained += n_records
        self.train_step_seconds += seconds
        self.train_cpu_seconds += cpu_seconds

    def select(self, score: float, thresholds: list[float], *, epoch: int, maximize: bool) -> bool:
        """Model selection after 0-based ``epoch``: keep ``score`` and its thresholds if they improve on the best
        (``is_improvement``), else count a bad epoch for early stopping. Returns whether it improved."""
        improved = is_improvement(score, self.best_score, maximize=maximize)
        if improved:
            self.best_score = score
            self.best_epoch = epoch + 1
            self.best_thresholds = thresholds
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return improved

    def end_epoch(self, epoch: int, *, stop: str | None, elapsed_seconds: float) -> None:
        """Move to the start of the next epoch; ``stop`` (a :func:`stop_reason`) finishes the run."""
        self.epoch = epoch + 1
        self.step = 0
        self.loss_sum = 0.0
        self.loss_count = 0
        if stop is not None:
            self.status = "finished"
            self.stop_reason = stop
        self.elapsed_seconds = elapsed_seconds
