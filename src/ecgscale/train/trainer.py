"""The training loop: multi-label BCE, AdamW, warm-up + cosine / one-cycle, early stopping, resumable checkpoints.

Reproducibility contract: everything random in a run is a function of the seed and the position in the run.
Weights are initialised from ``seed``; the record order of epoch ``e`` from ``(seed, e)``; crop positions and
dropout masks of step ``s`` from ``(seed, e, s)``. The resume state (weights, optimiser, scheduler, scaler,
loss accumulators) is saved at the end of every epoch and every ``checkpoint_every`` steps, so a run killed
at any point and resumed reaches the same final metrics as an uninterrupted one (bit-identical on CPU fp32).
Global torch state (RNG, deterministic-algorithm flag) is only touched inside restoring context managers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from ecgscale.errors import CheckpointError, ConfigError, EcgscaleError
from ecgscale.fileio import csv_text, write_json_atomic, write_text_atomic, writer_lock
from ecgscale.progress import NO_PROGRESS, Progress, ProgressTask, as_progress
from ecgscale.train import checkpoint as ckpt
from ecgscale.train.config import TrainConfig
from ecgscale.train.data import BatchSource, DatasetSource, as_source, crop_batch, crop_positions, epoch_order
from ecgscale.train.device import Precision, autocast, resolve_device, resolve_precision
from ecgscale.train.rundir import RunConfig, RunDir
from ecgscale.train.schedule import build_scheduler
from ecgscale.train.state import TrainState, stop_reason
from ecgscale.train.windows import WindowSpec, aggregate_logits

if TYPE_CHECKING:
    from ecgscale.data.labels import LabelSpace

__all__ = [
    "MONITOR_KEYS",
    "DistContext",
    "NonFiniteLossError",
    "TrainData",
    "TrainResult",
    "Trainer",
    "eval_windows_of",
    "model_input_length",
    "pos_weight_from_labels",
    "predict_logits",
]

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]
#: What a Trainer trains or validates on: a ``BatchSource``, an ``(x, y)`` pair of arrays, or a map-style dataset.
TrainData: TypeAlias = BatchSource | tuple[np.ndarray, np.ndarray] | torch.utils.data.Dataset

#: ``TrainConfig.monitor`` → key of the ``compute_metrics`` result (``val_loss`` is added by the trainer).
MONITOR_KEYS = {
    "macro_auroc": "macro_auroc",
    "challenge": "challenge_metric",
    "macro_auprc": "macro_auprc",
    "macro_f1": "macro_f1",
    "val_loss": "val_loss",
}
_HISTORY_METRICS = (
    "macro_auroc",
    "micro_auroc",
    "macro_auprc",
    "macro_f1",
    "macro_fbeta",
    "challenge_metric",
    "n_classes_scored",
)

# Train-config fields that may change between a run and its resumption without changing the optimisation.
_RESUME_FREE = frozenset({"device", "num_workers", "max_minutes", "tensorboard", "checkpoint_every"})


class NonFiniteLossError(EcgscaleError):
    """The loss became NaN/inf: training stopped, the last good checkpoint in the run directory is kept."""

    def __init__(self, message: str, *, epoch: int, step: int, run_dir: Path | None):
        self.epoch = epoch
        self.step = step
        self.run_dir = run_dir
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class DistContext:
    """Where this process sits in a data-parallel job (``world_size == 1``: a plain single-process run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


@dataclass
class TrainResult:
    """What a finished (or early-stopped, or out-of-time) run produced. Epochs are 1-based."""

    run_dir: Path | None
    best_epoch: int
    best_score: float
    val_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    train_seconds: float
    records_per_s: float
    records_per_cpu_s: float = float("nan")  # per CPU-second of this process (all threads): robust to other load
    stop_reason: str = "completed"
    thresholds: list[float] = field(default_factory=list)
    n_params: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    epochs_run: int = 0


def pos_weight_from_labels(labels: np.ndarray, max_weight: float) -> torch.Tensor:
    """BCE positive weight per class: negatives/positives in the training labels, clipped to [1, max_weight].

    Classes with no positive training record get weight 1 (there is nothing to up-weight).
    """
    y = np.asarray(labels, dtype=np.float64)
    pos = y.sum(axis=0)
    neg = len(y) - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return torch.tensor(np.clip(w, 1.0, max_weight), dtype=torch.float32)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    source: BatchSource,
    *,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    indices: np.ndarray | None = None,
    windows: WindowSpec | None = None,
) -> np.ndarray:
    """Logits ``(N, K) float32`` on the evaluation windows of ``source`` (model put in eval mode).

    ``windows=None``: one forward pass per record on its evaluation window. With a :class:`WindowSpec` the
    evaluation window is cut into windows of ``windows.length`` samples at ``windows.starts`` and each record's
    logit is that of its windows' aggregated probability (``ecgscale.train.windows.aggregate_logits``).
    """
    model.eval()
    idx = np.arange(len(source)) if indices is None else np.asarray(indices)
    out = []
    for start in range(0, len(idx), batch_size):
        x, _ = source.batch(idx[start : start + batch_size], None)
        n_windows = 1
        if windows is not None:
            starts = windows.starts(x.shape[-1])
            n_windows = len(starts)
            if x.shape[-1] < windows.length:
                x = torch.nn.functional.pad(x, (0, windows.length - x.shape[-1]))
            # (n_windows * B, leads, length), window-major: row w * B + b is window w of record b.
            x = torch.cat([x[..., s : s + windows.length] for s in starts])
        x = x.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(x)
        z = logits.float().cpu().numpy()
        if windows is not None:
            z = aggregate_logits(z.reshape(n_windows, -1, z.shape[-1]), windows.aggregate, axis=0).astype(np.float32)
        out.append(z)
    if not out:
        return np.zeros((0, source.labels.shape[1]), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # scipy's expit saturates cleanly for diverged logits instead of warning about overflow in exp.
    return expit(z.astype(np.float64)).astype(np.float32)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of a run; the caller's global setting is restored afterwards."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    try:
        if enabled:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench


def _step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, step, rank, 0xD209]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _jsonable(obj: Any) -> Any:
    """Metrics dicts may hold numpy values or pandas tables; make them plain JSON."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas DataFrame
        return _jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def eval_windows_of(config: TrainConfig, fs: float | None, window: int) -> WindowSpec | None:
    """The evaluation windows of a run: ``None`` (one centre window) unless ``config.crop_s`` is set."""
    if config.crop_s is None:
        return None
    if fs is None:
        raise ConfigError(
            "crop_s is in seconds and needs the sampling rate: pass fs= to the Trainer (train_run does)",
            key="train.crop_s",
        )
    return WindowSpec.from_seconds(
        fs, crop_s=config.crop_s, stride_s=config.eval_stride_s, aggregate=config.eval_aggregate, window=window
    )


def model_input_length(config: TrainConfig, fs: float | None, window: int) -> int:
    """Samples per model input: the crop of a crop-trained run, else the cache's whole window (what a no-GAP head's
    fixed ``input_length`` must be)."""
    spec = eval_windows_of(config, fs, window)
    return int(window) if spec is None else int(spec.length)


@dataclass
class _Clock:
    """Wall time of a run across resumptions: ``elapsed_before`` seconds in earlier processes, then this fit's."""

    t_start: float
    budget_s: float | None
    elapsed_before: float = 0.0

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def over_budget(self) -> bool:
        return self.budget_s is not None and self.elapsed() > self.budget_s


@dataclass
class _Fit:
    """What one ``fit`` works with: device and precision, the model (``train_model``: its DDP wrapper, if any),
    optimiser, schedule, scaler and loss, the run directory's base config, the clock and the progress task."""

    device: torch.device
    precision: Precision
    model: nn.Module
    train_model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    global_batch: int
    clock: _Clock
    run_config: RunConfig | None = None  # None: no files are written (in memory, or not the main process)
    display: ProgressTask | None = None  # one task over the fit, restarted each epoch
    tensorboard: Any = None
    best_metrics: dict[str, Any] | None = None  # validation metrics of this fit's best epoch

    @property
    def cuda_devices(self) -> list[torch.device]:
        return [self.device] if self.device.type == "cuda" else []


@dataclass(frozen=True, slots=True)
class _Validation:
    """One epoch's validation: the metrics (with ``val_loss`` and the monitored value), thresholds tuned on it."""

    metrics: dict[str, Any]
    thresholds: np.ndarray
    score: float
    val_loss: float
    seconds: float


class Trainer:
    """Fits ``model`` on any training/validation data yielding ``(x (leads, L), y (K,))``.

    ``train_data``/``val_data``: a :class:`~ecgscale.train.data.BatchSource`, an ``(x, y)`` pair of arrays,
    or a map-style dataset. ``out_dir=None`` trains in memory (no files, no resume). ``run_info`` adds
    entries to ``config.json`` (model config, preprocessing, cache path, ...). ``epoch_callback(epoch,
    val_metrics)`` runs after each epoch's checkpoint is written; whatever it raises propagates.
    """

    def __init__(
        self,
        model: nn.Module,
        label_space: LabelSpace,
        config: TrainConfig,
        *,
        train_data: TrainData,
        val_data: TrainData,
        out_dir: str | os.PathLike[str] | None = None,
        run_info: Mapping[str, Any] | None = None,
        progress: bool | Progress = True,
        epoch_callback: EpochCallback | None = None,
        dist: DistContext | None = None,
        fs: float | None = None,
    ):
        self.model = model
        self.label_space = label_space
        self.config = config
        self.train_source = as_source(train_data)
        self.val_source = as_source(val_data)
        self.fs = fs
        self.eval_windows = eval_windows_of(config, fs, int(self.val_source.window or 0))
        self.crop = None if self.eval_windows is None else self.eval_windows.length
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.run_dir = None if out_dir is None else RunDir(out_dir)
        self.run_info = dict(run_info or {})
        self.progress = progress
        self.epoch_callback = epoch_callback
        self.dist = dist or DistContext()

    @property
    def _writes_files(self) -> bool:
        """Whether this process writes the run directory (there is one, and under DDP rank 0 owns it)."""
        return self.run_dir is not None and self.dist.is_main

    # ------------------------------------------------------------------ checks
    def _check_inputs(self, device: torch.device) -> None:
        """Shape problems surface here, before the first optimiser step, with the model's own message."""
        k = len(self.label_space)
        for name, src in (("train", self.train_source), ("val", self.val_source)):
            if len(src) == 0:
                raise ConfigError(
                    f"the {name} data is empty; training needs records in both train and val", key=f"data.{name}"
                )
            if src.labels.ndim != 2 or src.labels.shape[1] != k:
                raise ConfigError(
                    f"{name} labels have shape {src.labels.shape}, expected (N, {k}) for label "
                    f"space {getattr(self.label_space, 'name', '?')!r}",
                    key=f"data.{name}",
                )
        if self.config.batch_size % self.dist.world_size:
            raise ConfigError(
                f"got {self.config.batch_size}; the global batch must divide evenly over "
                f"{self.dist.world_size} processes",
                key="train.batch_size",
            )
        x, _ = self.val_source.batch(np.arange(min(2, len(self.val_source))), None, self.crop)
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(x.to(device))
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"the model cannot take inputs of shape {tuple(x.shape[1:])}: {exc}", key="model"
            ) from exc
        if tuple(out.shape) != (x.shape[0], k):
            raise ConfigError(
                f"the model outputs shape {tuple(out.shape)} for a batch of {x.shape[0]}, expected "
                f"({x.shape[0]}, {k}) (one logit per class)",
                key="model.n_classes",
            )
        if self.config.monitor == "challenge":
            from ecgscale.metrics import compute_metrics

            probe = compute_metrics(
                self.val_source.labels, np.zeros_like(self.val_source.labels), label_space=self.label_space
            )
            if probe.get("challenge_metric") is None:
                raise ConfigError(
                    f"monitor 'challenge' needs the CinC 2021 scored label space, this run has "
                    f"{getattr(self.label_space, 'name', '?')!r}; use macro_auroc",
                    key="train.monitor",
                )

    def _check_out_dir(self, resume: bool) -> None:
        if self.run_dir is None or resume:
            return
        if self.run_dir.holds_run():
            raise ConfigError(
                f"{self.out_dir} already holds a run; resume it (resume=True / --resume) or choose "
                "another output directory",
                key="out_dir",
            )

    # ------------------------------------------------------------------ files
    def _base_run_config(self, precision: Precision, device: torch.device) -> RunConfig | None:
        """``config.json`` as the run starts; ``None`` when this process writes no files."""
        if self.run_dir is None or not self.dist.is_main:
            return None
        model_cfg = getattr(self.model, "config", None)
        return RunConfig.for_training(
            model=model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else None,
            train=self.config,
            label_space=self.label_space.to_dict() if hasattr(self.label_space, "to_dict") else None,
            precision=precision.name,
            device=str(device),
            world_size=self.dist.world_size,
            window=self.train_source.window,
            crop=self.crop,
            eval_windows=None if self.eval_windows is None else self.eval_windows.to_dict(),
            n_train=len(self.train_source),
            n_val=len(self.val_source),
            git_sha=ckpt.git_sha(),
            run_info=self.run_info,
            path=self.run_dir.config_file,
        )

    def _write_run_config(self, fx: _Fit, state: TrainState) -> None:
        if self.run_dir is None or fx.run_config is None:
            return
        self.run_dir.write_config(
            fx.run_config.with_progress(
                thresholds=state.best_thresholds,
                best_epoch=state.best_epoch,
                best_score=state.best_score,
                status=state.status,
                stop_reason=state.stop_reason,
            )
        )

    def _write_metrics(self, history: list[dict[str, Any]]) -> None:
        if self.run_dir is None:
            raise ValueError("_write_metrics needs a run directory")
        lines = "".join(json.dumps(_jsonable(row)) + "\n" for row in history)
        write_text_atomic(self.run_dir.metrics_jsonl_file, lines)
        write_text_atomic(self.run_dir.metrics_csv_file, csv_text(history))

    def _resume_dict(self, fx: _Fit, state: TrainState) -> dict[str, Any]:
        """The train state as saved for resumption: with the scheduler's and scaler's state."""
        out = state.to_dict()
        out["scheduler"] = json.loads(json.dumps(fx.scheduler.state_dict(), default=_plain))
        out["scaler"] = fx.scaler.state_dict() if fx.scaler.is_enabled() else {}
        return out

    def _save_resume(self, fx: _Fit, state: TrainState) -> None:
        saved = self._resume_dict(fx, state)
        if self.run_dir is None or not self.dist.is_main:
            return
        for name, p in fx.model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise NonFiniteLossError(
                    f"parameter {name!r} became non-finite at epoch {state.epoch + 1}, step {state.step}; "
                    f"training stopped and the last good checkpoint in {self.out_dir} is kept",
                    epoch=state.epoch + 1,
                    step=state.step,
                    run_dir=self.out_dir,
                )
        ckpt.save_resume_state(self.run_dir.last_file, fx.model.state_dict(), fx.optimizer.state_dict(), saved)
        write_json_atomic(self.run_dir.state_file, saved)

    def _write_epoch_files(self, fx: _Fit, state: TrainState, epoch: int, v: _Validation, improved: bool) -> None:
        """The best weights and their validation metrics (when improved), config, resume state and metrics."""
        if self.run_dir is None or not self.dist.is_main:
            return
        if improved:
            ckpt.save_weights(
                self.run_dir.model_file,
                fx.model.state_dict(),
                kind="weights",
                metadata={"epoch": str(epoch + 1), "score": repr(v.score)},
            )
            write_json_atomic(
                self.run_dir.val_metrics_file,
                {"epoch": epoch + 1, "monitor": self.config.monitor, "metrics": _jsonable(v.metrics)},
            )
        self._write_run_config(fx, state)
        self._save_resume(fx, state)
        self._write_metrics(state.history)
        if fx.tensorboard is not None:
            for k, val in state.history[-1].items():
                if isinstance(val, int | float) and not isinstance(val, bool) and k != "epoch" and val is not None:
                    fx.tensorboard.add_scalar(k, val, epoch + 1)

    # ------------------------------------------------------------------ main loop
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until the last epoch, early stopping or the time budget; see the module docstring.

        The run directory is locked for the whole fit (``RunDir.lock_file``): a second process training (or
        resuming) into the same directory is refused at once with a ``ConfigError`` naming the first.
        """
        with self._run_dir_lock(), _deterministic(self.config.deterministic):
            return self._fit(resume)

    @contextlib.contextmanager
    def _run_dir_lock(self) -> Iterator[None]:
        if self.run_dir is None or not self.dist.is_main:  # DDP: rank 0 owns the files
            yield
            return
        out = self.run_dir.path
        created = not out.exists()
        lock = self.run_dir.lock_file
        try:
            with writer_lock(
                lock, guards=out, action="ecgscale train", hint="wait for it to finish or choose another --out"
            ):
                yield
        except BaseException:
            # A run refused before it wrote anything leaves no empty directory behind.
            if created and out.is_dir() and {p.name for p in out.iterdir()} <= {lock.name, lock.name + ".json"}:
                shutil.rmtree(out, ignore_errors=True)
            raise

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.config
        fx = self._prepare(resume)
        state = TrainState.new(cfg, steps_per_epoch=fx.steps_per_epoch)
        if resume:
            loaded = self._load_resume(fx)
            if loaded is not None:
                state = loaded
                if state.finished:
                    log.info("run in %s is already finished; nothing to resume", self.out_dir)
                    if self.run_dir is not None and self.dist.is_main:
                        # The files written after the final resume state (state copy, metrics) lag it if the run
                        # was killed between them; they are derived from it, so rewrite them.
                        write_json_atomic(self.run_dir.state_file, self._resume_dict(fx, state))
                        self._write_metrics(state.history)
                    return self._result(state, fx)
        fx.clock.elapsed_before = float(state.elapsed_seconds)

        if self.run_dir is not None and self.dist.is_main:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            self._write_run_config(fx, state)
            fx.tensorboard = self._open_tensorboard()

        reporter = as_progress(self.progress) if self.dist.is_main else NO_PROGRESS
        fx.display = reporter.task("train", total=fx.steps_per_epoch, loss=float("nan"), val="")
        try:
            for epoch in range(state.epoch, cfg.epochs):
                t_epoch = time.perf_counter()
                out_of_time = self._train_epoch(fx, state, epoch)
                self._end_epoch(fx, state, epoch, out_of_time=out_of_time, epoch_seconds=time.perf_counter() - t_epoch)
                if state.finished:
                    break
        finally:
            fx.display.close()
            if fx.tensorboard is not None:
                fx.tensorboard.close()
                fx.tensorboard = None
        return self._result(state, fx)

    def _prepare(self, resume: bool) -> _Fit:
        """Resolve device and precision, check the inputs and the output directory, build optimiser and schedule."""
        cfg, dist = self.config, self.dist
        t_start = time.perf_counter()
        device = resolve_device(cfg.device, local_rank=dist.local_rank)
        precision = resolve_precision(cfg.precision, device)
        self._check_out_dir(resume)
        if self.run_dir is not None and dist.is_main and self.run_dir.path.is_dir():
            ckpt.remove_partial_writes(self.run_dir.path)  # a killed predecessor's temp files (fit holds the lock)
        self.model.to(device)
        self._check_inputs(device)
        run_config = self._base_run_config(precision, device)

        model = self.model
        train_model: nn.Module = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            if device.type == "cuda":  # SyncBatchNorm has no CPU kernel; on CPU BN statistics stay per process
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.model = model
            train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

        n_train = len(self.train_source)
        steps_per_epoch = max(n_train // cfg.batch_size, 1)  # a last incomplete batch is dropped
        pos_weight = pos_weight_from_labels(self.train_source.labels, cfg.pos_weight_max) if cfg.pos_weight else None
        criterion = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else pos_weight.to(device))
        optimizer = torch.optim.AdamW(self._optimizer_groups(model), lr=cfg.lr)
        return _Fit(
            device=device,
            precision=precision,
            model=model,
            train_model=train_model,
            criterion=criterion,
            optimizer=optimizer,
            scheduler=build_scheduler(optimizer, cfg, steps_per_epoch),
            scaler=torch.amp.GradScaler(device.type, enabled=precision.use_scaler),
            steps_per_epoch=steps_per_epoch,
            global_batch=min(cfg.batch_size, n_train),
            clock=_Clock(t_start, None if cfg.max_minutes is None else cfg.max_minutes * 60.0),
            run_config=run_config,
        )

    def _optimizer_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        cfg = self.config
        if cfg.trunk_lr_factor != 1.0:  # fine-tuning with a slower trunk: its own groups (ecgscale.train.finetune)
            from ecgscale.train.finetune import optimizer_groups

            return optimizer_groups(
                model, lr=cfg.lr, weight_decay=cfg.weight_decay, trunk_lr_factor=cfg.trunk_lr_factor
            )
        # frozen parameters (requires_grad=False) are left out
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def _train_epoch(self, fx: _Fit, state: TrainState, epoch: int) -> bool:
        """Train ``epoch`` from ``state.step`` on; returns whether the time budget ran out (the epoch then stops)."""
        cfg = self.config
        order = epoch_order(len(self.train_source), cfg.seed, epoch)
        fx.train_model.train()
        display = fx.display
        if display is not None:
            display.restart(
                total=fx.steps_per_epoch, completed=state.step, description=f"epoch {epoch + 1}/{cfg.epochs}"
            )
        t_step, c_step = time.perf_counter(), time.process_time()
        for step, x, y in self._epoch_batches(order, epoch, state.step, fx.steps_per_epoch, fx.global_batch):
            stats = self._train_step(fx, state, epoch, step, x, y)
            state.add_step(
                step,
                loss_sum=float(stats[0]),
                n_records=int(stats[1]),
                seconds=time.perf_counter() - t_step,
                cpu_seconds=time.process_time() - c_step,
            )
            t_step, c_step = time.perf_counter(), time.process_time()
            if display is not None:
                display.advance(loss=state.train_loss)
            if stats[3] > 0:
                return True
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < fx.steps_per_epoch:
                state.elapsed_seconds = fx.clock.elapsed()
                self._save_resume(fx, state)
        return False

    def _train_step(
        self, fx: _Fit, state: TrainState, epoch: int, step: int, x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """One optimiser step; returns ``[loss * n, n, non-finite loss?, over budget?]`` summed over processes.

        Dropout masks are drawn from a generator seeded by ``(seed, epoch, step, rank)``; the caller's RNG is
        restored afterwards.
        """
        cfg, dist = self.config, self.dist
        x = x.to(fx.device, non_blocking=True)
        y = y.to(fx.device, non_blocking=True)
        with torch.random.fork_rng(devices=fx.cuda_devices):
            torch.manual_seed(_step_seed(cfg.seed, epoch, step, dist.rank))
            with autocast(fx.device, fx.precision.amp_dtype):
                logits = fx.train_model(x)
            loss = fx.criterion(logits.float(), y)
            over = fx.clock.over_budget()
            stats = torch.tensor(
                [
                    float(loss.detach()) * len(y),
                    float(len(y)),
                    0.0 if torch.isfinite(loss).item() else 1.0,
                    float(over),
                ],
                dtype=torch.float64,
            )
            if dist.enabled:
                import torch.distributed as tdist

                stats = stats.to(fx.device)
                tdist.all_reduce(stats)
                stats = stats.cpu()
            if stats[2] > 0:
                self._diverged(state, epoch, step, "loss")
            fx.optimizer.zero_grad(set_to_none=True)
            fx.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            fx.scaler.unscale_(fx.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(fx.model.parameters(), cfg.grad_clip)
            if not fx.precision.use_scaler and not torch.isfinite(norm):
                self._diverged(state, epoch, step, "gradient norm")
        fx.scaler.step(fx.optimizer)
        fx.scaler.update()
        fx.scheduler.step()
        return stats

    def _epoch_batches(
        self, order: np.ndarray, epoch: int, start: int, steps: int, global_batch: int
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """``(step, x, y)`` of this process for steps ``start..steps-1`` of ``epoch``.

        Global batch ``s`` is ``order[s*B:(s+1)*B]``; process ``r`` of ``W`` takes every W-th record of it
        from the r-th (the interleave of ``DistributedSampler``), so W processes see exactly one global batch.
        """
        cfg, dist = self.config, self.dist
        mine = slice(dist.rank, None, dist.world_size)
        plan = []
        for step in range(start, steps):
            rows = order[step * global_batch : (step + 1) * global_batch]
            positions = crop_positions(len(rows), cfg.seed, epoch, step) if cfg.random_crop else None
            plan.append((step, rows[mine], None if positions is None else positions[mine]))
        source = self.train_source
        if isinstance(source, DatasetSource) and hasattr(source.dataset, "set_epoch"):
            source.dataset.set_epoch(epoch)  # e.g. CacheDataset: crops/augmentation drawn per (seed, epoch, record)
        if isinstance(source, DatasetSource) and cfg.num_workers > 0:
            # A generic dataset may do real work per item: let DataLoader workers do it, in the seeded order.
            loader = torch.utils.data.DataLoader(
                source.dataset,
                batch_sampler=[p[1].tolist() for p in plan],
                num_workers=cfg.num_workers,
                persistent_workers=False,
            )
            for (step, _, positions), (x, y) in zip(plan, loader, strict=True):
                x = torch.as_tensor(x, dtype=torch.float32)
                if self.crop is not None and x.shape[-1] != self.crop:
                    x = crop_batch(x, self.crop, positions)
                yield step, x, torch.as_tensor(y, dtype=torch.float32)
            return
        for step, rows, positions in plan:
            x, y = source.batch(rows, positions) if self.crop is None else source.batch(rows, positions, self.crop)
            yield step, x, y

    # ------------------------------------------------------------------ model selection
    def _validate(self, fx: _Fit) -> _Validation:
        """Predict the validation data, tune thresholds on it and compute the metrics and the monitored score."""
        from ecgscale.metrics import compute_metrics, tune_thresholds

        cfg = self.config
        t_val = time.perf_counter()
        logits = predict_logits(
            fx.model,
            self.val_source,
            batch_size=cfg.batch_size,
            device=fx.device,
            amp_dtype=fx.precision.amp_dtype,
            windows=self.eval_windows,
        )
        y_val = self.val_source.labels
        with torch.no_grad():
            val_loss = float(
                fx.criterion(torch.from_numpy(logits).to(fx.device), torch.from_numpy(y_val).to(fx.device))
            )
        probs = _sigmoid(logits)
        thresholds = np.asarray(tune_thresholds(y_val, probs), dtype=np.float64)
        metrics = dict(compute_metrics(y_val, probs, thresholds=thresholds, label_space=self.label_space))
        metrics["val_loss"] = val_loss
        score = metrics.get(MONITOR_KEYS[cfg.monitor])
        score = float("nan") if score is None else float(score)
        metrics.setdefault(cfg.monitor, score)  # callbacks can always read the monitored value by its config name
        return _Validation(metrics, thresholds, score, val_loss, time.perf_counter() - t_val)

    def _end_epoch(self, fx: _Fit, state: TrainState, epoch: int, *, out_of_time: bool, epoch_seconds: float) -> None:
        """Validate, keep the best weights and thresholds, decide on stopping, write the epoch's files."""
        cfg = self.config
        v = self._validate(fx)
        improved = state.select(v.score, v.thresholds.tolist(), epoch=epoch, maximize=cfg.maximize)
        train_loss = state.train_loss
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": v.val_loss}
        row.update({f"val_{k}": v.metrics[k] for k in _HISTORY_METRICS if v.metrics.get(k) is not None})
        row.update(
            {
                "lr": float(fx.optimizer.param_groups[0]["lr"]),
                "improved": bool(improved),
                "epoch_seconds": epoch_seconds,
                "val_seconds": v.seconds,
                "records_per_s": state.loss_count / epoch_seconds if epoch_seconds > 0 else float("nan"),
            }
        )
        state.history.append(_jsonable(row))
        stop = stop_reason(cfg, epoch=epoch, bad_epochs=state.bad_epochs, out_of_time=out_of_time)
        state.end_epoch(epoch, stop=stop, elapsed_seconds=fx.clock.elapsed())
        self._write_epoch_files(fx, state, epoch, v, improved)
        if improved:
            fx.best_metrics = _jsonable(v.metrics)
        if fx.display is not None:
            message = (
                f"epoch {epoch + 1}/{cfg.epochs}: train_loss {train_loss:.4f}, val_loss {v.val_loss:.4f}, "
                f"{cfg.monitor} {v.score:.4f}{' *' if improved else ''}"
            )
            fx.display.update(val=f"{cfg.monitor} {v.score:.3f}")
            if not fx.display.note(message) and self.dist.is_main:  # no display: the log has the epoch lines
                log.info(message)
        if self.epoch_callback is not None:
            self.epoch_callback(epoch + 1, v.metrics)

    def _load_resume(self, fx: _Fit) -> TrainState | None:
        if self.run_dir is None:
            raise ConfigError("resume needs an output directory", key="out_dir")
        cfg = self.config
        path = self.run_dir.last_file
        if not path.exists():
            log.info("no resume state in %s; starting a new run", self.out_dir)
            return None
        model_state, opt_state, state = ckpt.load_resume_state(path)
        # Keys added to TrainConfig after the state was saved take their defaults (the behaviour it was saved with).
        saved = {**TrainConfig().to_dict(), **dict(state.get("train_config", {}))}
        now = cfg.to_dict()
        diffs = sorted(k for k in set(saved) | set(now) if k not in _RESUME_FREE and saved.get(k) != now.get(k))
        if diffs:
            shown = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {now.get(k)!r}" for k in diffs)
            raise ConfigError(f"{path}: cannot resume with a different training config ({shown})", key="train")
        if state.get("steps_per_epoch") != fx.steps_per_epoch:
            raise CheckpointError(
                f"{path}: saved with {state.get('steps_per_epoch')} steps per epoch, the data now "
                f"gives {fx.steps_per_epoch}; resume with the same data"
            )
        result = fx.model.load_state_dict(model_state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"{path}: weights do not fit this model (missing {list(result.missing_keys)[:5]},"
                f" unexpected {list(result.unexpected_keys)[:5]})"
            )
        try:
            fx.optimizer.load_state_dict(opt_state)
            fx.scheduler.load_state_dict(state.pop("scheduler"))
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimiser/scheduler state does not fit this run ({exc})") from exc
        scaler_state = state.pop("scaler", {})
        if fx.scaler.is_enabled() and scaler_state:
            fx.scaler.load_state_dict(scaler_state)
        log.info("resuming %s at epoch %d, step %d", self.out_dir, state["epoch"] + 1, state["step"])
        return TrainState.from_dict(state)

    def _diverged(self, state: TrainState, epoch: int, step: int, what: str) -> None:
        where = f"epoch {epoch + 1}, step {step + 1}"
        kept = (
            f"; the last good checkpoint in {self.out_dir} is kept (resume is possible with a lower lr)"
            if self.out_dir is not None
            else ""
        )
        if self.run_dir is not None and self.dist.is_main:
            info = state.to_dict()
            history = info.pop("history")
            info.update(status="diverged", stop_reason=f"non-finite {what} at {where}", history=history)
            write_json_atomic(self.run_dir.state_file, info)
        raise NonFiniteLossError(
            f"training stopped: non-finite {what} at {where}{kept}",
            epoch=epoch + 1,
            step=step + 1,
            run_dir=self.out_dir,
        )

    def _result(self, state: TrainState, fx: _Fit) -> TrainResult:
        metrics = fx.best_metrics
        if metrics is None and self.run_dir is not None:
            metrics = self.run_dir.read_val_metrics()
        train_s = float(state.train_step_seconds)
        cpu_s = float(state.train_cpu_seconds)
        return TrainResult(
            run_dir=self.out_dir,
            best_epoch=int(state.best_epoch or 0),
            best_score=float("nan") if state.best_score is None else float(state.best_score),
            val_metrics=metrics or {},
            history=list(state.history),
            train_seconds=float(state.elapsed_seconds),
            records_per_s=state.records_trained / train_s if train_s > 0 else float("nan"),
            records_per_cpu_s=state.records_trained / cpu_s if cpu_s > 0 else float("nan"),
            stop_reason=str(state.stop_reason or "completed"),
            thresholds=list(state.best_thresholds or []),
            n_params=sum(p.numel() for p in self.model.parameters()),
            device=str(fx.device),
            precision=fx.precision.name,
            epochs_run=int(state.epoch),
        )

    def _open_tensorboard(self) -> Any:
        """A tensorboard ``SummaryWriter`` into the run directory, if asked for and installed (else ``None``)."""
        if not self.config.tensorboard or self.run_dir is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning(
                "tensorboard=True but the 'tensorboard' package is not installed (pip install tensorboard);"
                " training continues, scalars are still in metrics.csv/metrics.jsonl"
            )
            return None
        return SummaryWriter(log_dir=str(self.run_dir.tensorboard_dir))


def _plain(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
