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
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from ecgscale.errors import CheckpointError, ConfigError, EcgscaleError
from ecgscale.fileio import csv_text, write_json_atomic, write_text_atomic, writer_lock
from ecgscale.train import checkpoint as ckpt
from ecgscale.train.config import TrainConfig
from ecgscale.train.data import BatchSource, DatasetSource, as_source, crop_batch, crop_positions, epoch_order
from ecgscale.train.schedule import build_scheduler
from ecgscale.train.windows import WindowSpec, aggregate_logits

__all__ = [
    "MONITOR_KEYS",
    "DistContext",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "eval_windows_of",
    "model_input_length",
    "pos_weight_from_labels",
    "predict_logits",
    "resolve_device",
    "resolve_precision",
]

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]

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


def resolve_device(name: str, dist: DistContext | None = None) -> torch.device:
    """``auto`` → the local CUDA device if there is one, else CPU; under DDP the process's local GPU."""
    local = dist.local_rank if dist is not None else 0
    if name == "auto":
        return torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"got {name!r} but no CUDA device is available; use 'auto' or 'cpu'", key="train.device")
        if dev.index is None:
            dev = torch.device("cuda", local)
    return dev


def cpu_has_fast_bf16() -> bool:
    """Whether the CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX); unknown (no /proc/cpuinfo): True.

    Without them bf16 autocast is emulated and much slower than fp32: on a 2-core AVX2 machine a D2-C64-K9
    training step took 2.7x the fp32 time (docs/training.md).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return True


def resolve_precision(name: str, device: torch.device) -> tuple[str, torch.dtype | None, bool]:
    """``(precision, autocast dtype or None, use GradScaler)``; ``auto`` = bf16 on CPUs with native bf16
    instructions (fp32 on other CPUs), fp16 + scaler on CUDA."""
    if name == "auto":
        name = "fp16" if device.type == "cuda" else ("bf16" if cpu_has_fast_bf16() else "fp32")
    if name == "fp32":
        return name, None, False
    if name == "bf16":
        return name, torch.bfloat16, False
    return name, torch.float16, True


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
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
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
        label_space: Any,
        config: TrainConfig,
        *,
        train_data: Any,
        val_data: Any,
        out_dir: str | os.PathLike[str] | None = None,
        run_info: Mapping[str, Any] | None = None,
        progress: bool = True,
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
        self.run_info = dict(run_info or {})
        self.progress = progress
        self.epoch_callback = epoch_callback
        self.dist = dist or DistContext()
        self._tb = None

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
        if self.out_dir is None or resume:
            return
        if (self.out_dir / ckpt.CONFIG_FILE).exists() or (self.out_dir / ckpt.LAST_FILE).exists():
            raise ConfigError(
                f"{self.out_dir} already holds a run; resume it (resume=True / --resume) or choose "
                "another output directory",
                key="out_dir",
            )

    # ------------------------------------------------------------------ files
    def _config_json(self, state: Mapping[str, Any], precision: str, device: torch.device) -> dict[str, Any]:
        from ecgscale import __version__

        model_cfg = getattr(self.model, "config", None)
        cfg: dict[str, Any] = {
            "format": ckpt.FORMAT,
            "format_version": ckpt.FORMAT_VERSION,
            "ecgscale_version": __version__,
            "git_sha": self._git_sha,
            "model": model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else None,
            "train": self.config.to_dict(),
            "label_space": self.label_space.to_dict() if hasattr(self.label_space, "to_dict") else None,
            "thresholds": state.get("best_thresholds"),
            "thresholds_source": "val",
            "best_epoch": state.get("best_epoch"),
            "best_score": state.get("best_score"),
            "monitor": self.config.monitor,
            "status": state.get("status"),
            "stop_reason": state.get("stop_reason"),
            "precision": precision,
            "device": str(device),
            "world_size": self.dist.world_size,
            "window": self.train_source.window,
            "crop": self.crop,
            "eval_windows": None if self.eval_windows is None else self.eval_windows.to_dict(),
            "n_train": len(self.train_source),
            "n_val": len(self.val_source),
        }
        for k, v in self.run_info.items():
            cfg.setdefault(k, v)
            if k in ("model", "preprocess", "preprocess_hash", "cache"):
                cfg[k] = v
        return cfg

    def _write_metrics(self, history: list[dict[str, Any]]) -> None:
        assert self.out_dir is not None
        lines = "".join(json.dumps(_jsonable(row)) + "\n" for row in history)
        write_text_atomic(self.out_dir / "metrics.jsonl", lines)
        write_text_atomic(self.out_dir / "metrics.csv", csv_text(history))

    def _save_resume(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        if self.out_dir is None or not self.dist.is_main:
            return
        for name, p in model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise NonFiniteLossError(
                    f"parameter {name!r} became non-finite at epoch {state['epoch'] + 1}, step {state['step']}; "
                    f"training stopped and the last good checkpoint in {self.out_dir} is kept",
                    epoch=state["epoch"] + 1,
                    step=state["step"],
                    run_dir=self.out_dir,
                )
        ckpt.save_resume_state(self.out_dir / ckpt.LAST_FILE, model.state_dict(), optimizer.state_dict(), state)
        write_json_atomic(self.out_dir / ckpt.STATE_FILE, state)

    # ------------------------------------------------------------------ main loop
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until the last epoch, early stopping or the time budget; see the module docstring.

        The run directory is locked for the whole fit (``ckpt.LOCK_FILE``): a second process training (or
        resuming) into the same directory is refused at once with a ``ConfigError`` naming the first.
        """
        cfg = self.config
        with self._run_dir_lock(), _deterministic(cfg.deterministic):
            return self._fit(cfg, resume)

    @contextlib.contextmanager
    def _run_dir_lock(self) -> Iterator[None]:
        if self.out_dir is None or not self.dist.is_main:  # DDP: rank 0 owns the files
            yield
            return
        out = self.out_dir
        created = not out.exists()
        lock = out / ckpt.LOCK_FILE
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

    def _fit(self, cfg: TrainConfig, resume: bool) -> TrainResult:
        t_start = time.perf_counter()
        dist = self.dist
        device = resolve_device(cfg.device, dist)
        precision, amp_dtype, use_scaler = resolve_precision(cfg.precision, device)
        self._check_out_dir(resume)
        if self.out_dir is not None and dist.is_main and self.out_dir.is_dir():
            ckpt.remove_partial_writes(self.out_dir)  # a killed predecessor's temp files (fit holds the dir's lock)
        self.model.to(device)
        self._check_inputs(device)
        self._git_sha = ckpt.git_sha() if dist.is_main and self.out_dir is not None else None

        model = self.model
        train_model: nn.Module = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            if device.type == "cuda":  # SyncBatchNorm has no CPU kernel; on CPU BN statistics stay per process
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.model = model
            train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

        n_train = len(self.train_source)
        global_batch = min(cfg.batch_size, n_train)
        steps_per_epoch = max(n_train // cfg.batch_size, 1)  # a last incomplete batch is dropped
        pos_weight = pos_weight_from_labels(self.train_source.labels, cfg.pos_weight_max) if cfg.pos_weight else None
        criterion = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else pos_weight.to(device))

        if cfg.trunk_lr_factor != 1.0:  # fine-tuning with a slower trunk: its own groups (ecgscale.train.finetune)
            from ecgscale.train.finetune import optimizer_groups

            groups = optimizer_groups(
                model, lr=cfg.lr, weight_decay=cfg.weight_decay, trunk_lr_factor=cfg.trunk_lr_factor
            )
        else:  # frozen parameters (requires_grad=False) are left out
            decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
            no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
            groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

        state: dict[str, Any] = {
            "epoch": 0,
            "step": 0,
            "global_step": 0,
            "status": "running",
            "stop_reason": None,
            "best_epoch": None,
            "best_score": None,
            "best_thresholds": None,
            "bad_epochs": 0,
            "history": [],
            "loss_sum": 0.0,
            "loss_count": 0,
            "train_step_seconds": 0.0,
            "train_cpu_seconds": 0.0,
            "records_trained": 0,
            "elapsed_seconds": 0.0,
            "steps_per_epoch": steps_per_epoch,
            "train_config": cfg.to_dict(),
            "seed": cfg.seed,
        }
        if resume:
            loaded = self._load_resume(model, optimizer, scheduler, scaler, cfg, steps_per_epoch)
            if loaded is not None:
                state = loaded
                if state["status"] == "finished":
                    log.info("run in %s is already finished; nothing to resume", self.out_dir)
                    if self.out_dir is not None and dist.is_main:
                        # The files written after the final resume state (state copy, metrics) lag it if the run
                        # was killed between them; they are derived from it, so rewrite them.
                        write_json_atomic(self.out_dir / ckpt.STATE_FILE, self._with_sched(state, scheduler, scaler))
                        self._write_metrics(state["history"])
                    return self._result(state, precision, device)
        elapsed_before = float(state["elapsed_seconds"])

        if self.out_dir is not None and dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.write_run_config(self.out_dir, self._config_json(state, precision, device))
            self._open_tensorboard()

        budget_s = None if cfg.max_minutes is None else cfg.max_minutes * 60.0
        progress = self._progress() if (self.progress and dist.is_main) else None
        task = None
        cuda_devices = [device] if device.type == "cuda" else []
        try:
            if progress is not None:
                progress.start()
                task = progress.add_task("train", total=steps_per_epoch, loss=float("nan"), val="")
            out_of_time = False
            for epoch in range(state["epoch"], cfg.epochs):
                order = epoch_order(n_train, cfg.seed, epoch)
                train_model.train()
                if progress is not None:
                    progress.reset(
                        task,
                        total=steps_per_epoch,
                        completed=state["step"],
                        description=f"epoch {epoch + 1}/{cfg.epochs}",
                    )
                t_epoch = time.perf_counter()
                t_step, c_step = time.perf_counter(), time.process_time()
                for step, x, y in self._epoch_batches(order, epoch, state["step"], steps_per_epoch, global_batch):
                    x = x.to(device, non_blocking=True)
                    y = y.to(device, non_blocking=True)
                    with torch.random.fork_rng(devices=cuda_devices):
                        torch.manual_seed(_step_seed(cfg.seed, epoch, step, dist.rank))
                        with torch.autocast(
                            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                        ):
                            logits = train_model(x)
                        loss = criterion(logits.float(), y)
                        over = budget_s is not None and (elapsed_before + time.perf_counter() - t_start) > budget_s
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

                            stats = stats.to(device)
                            tdist.all_reduce(stats)
                            stats = stats.cpu()
                        if stats[2] > 0:
                            self._diverged(state, epoch, step, "loss")
                        optimizer.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                    if cfg.grad_clip is not None:
                        scaler.unscale_(optimizer)
                        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                        if not use_scaler and not torch.isfinite(norm):
                            self._diverged(state, epoch, step, "gradient norm")
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    state["loss_sum"] += float(stats[0])
                    state["loss_count"] += int(stats[1])
                    state["global_step"] += 1
                    state["step"] = step + 1
                    state["records_trained"] += int(stats[1])
                    state["train_step_seconds"] += time.perf_counter() - t_step
                    state["train_cpu_seconds"] += time.process_time() - c_step
                    t_step, c_step = time.perf_counter(), time.process_time()
                    if progress is not None:
                        progress.update(task, advance=1, loss=state["loss_sum"] / max(state["loss_count"], 1))
                    if stats[3] > 0:
                        out_of_time = True
                        break
                    if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                        state["elapsed_seconds"] = elapsed_before + time.perf_counter() - t_start
                        self._save_resume(model, optimizer, self._with_sched(state, scheduler, scaler))
                train_seconds_epoch = time.perf_counter() - t_epoch
                self._end_epoch(
                    epoch,
                    state,
                    model,
                    optimizer,
                    scheduler,
                    scaler,
                    criterion,
                    device,
                    amp_dtype,
                    out_of_time,
                    train_seconds_epoch,
                    progress,
                    task,
                    elapsed_before,
                    t_start,
                    precision,
                )
                if state["status"] == "finished":
                    break
        finally:
            if progress is not None:
                progress.stop()
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        return self._result(state, precision, device)

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

    def _end_epoch(
        self,
        epoch: int,
        state: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        criterion: nn.Module,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        out_of_time: bool,
        epoch_seconds: float,
        progress: Any,
        task: Any,
        elapsed_before: float,
        t_start: float,
        precision: str,
    ) -> None:
        """Validate, keep the best weights and thresholds, decide on stopping, write the epoch's files."""
        from ecgscale.metrics import compute_metrics, tune_thresholds

        cfg = self.config
        t_val = time.perf_counter()
        logits = predict_logits(
            model,
            self.val_source,
            batch_size=cfg.batch_size,
            device=device,
            amp_dtype=amp_dtype,
            windows=self.eval_windows,
        )
        y_val = self.val_source.labels
        with torch.no_grad():
            val_loss = float(criterion(torch.from_numpy(logits).to(device), torch.from_numpy(y_val).to(device)))
        probs = _sigmoid(logits)
        thresholds = np.asarray(tune_thresholds(y_val, probs), dtype=np.float64)
        metrics = dict(compute_metrics(y_val, probs, thresholds=thresholds, label_space=self.label_space))
        metrics["val_loss"] = val_loss
        score = metrics.get(MONITOR_KEYS[cfg.monitor])
        score = float("nan") if score is None else float(score)
        metrics.setdefault(cfg.monitor, score)  # callbacks can always read the monitored value by its config name
        best = state["best_score"]
        improved = best is None or (
            math.isfinite(score) and (not math.isfinite(best) or (score > best if cfg.maximize else score < best))
        )
        if improved:
            state["best_score"] = score
            state["best_epoch"] = epoch + 1
            state["best_thresholds"] = thresholds.tolist()
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        train_loss = state["loss_sum"] / max(state["loss_count"], 1)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss}
        row["val_loss"] = val_loss
        row.update({f"val_{k}": metrics[k] for k in _HISTORY_METRICS if metrics.get(k) is not None})
        row.update(
            {
                "lr": float(optimizer.param_groups[0]["lr"]),
                "improved": bool(improved),
                "epoch_seconds": epoch_seconds,
                "val_seconds": time.perf_counter() - t_val,
                "records_per_s": state["loss_count"] / epoch_seconds if epoch_seconds > 0 else float("nan"),
            }
        )
        state["history"].append(_jsonable(row))
        stop_reason = None
        if out_of_time:
            stop_reason = "time_budget"
        elif cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
            stop_reason = "early_stopping"
        elif epoch + 1 >= cfg.epochs:
            stop_reason = "completed"
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_count=0)
        if stop_reason is not None:
            state["status"] = "finished"
            state["stop_reason"] = stop_reason
        state["elapsed_seconds"] = elapsed_before + time.perf_counter() - t_start

        if self.out_dir is not None and self.dist.is_main:
            if improved:
                ckpt.save_weights(
                    self.out_dir / ckpt.MODEL_FILE,
                    model.state_dict(),
                    kind="weights",
                    metadata={"epoch": str(epoch + 1), "score": repr(score)},
                )
                write_json_atomic(
                    self.out_dir / "val_metrics.json",
                    {"epoch": epoch + 1, "monitor": cfg.monitor, "metrics": _jsonable(metrics)},
                )
            ckpt.write_run_config(self.out_dir, self._config_json(state, precision, device))
            self._save_resume(model, optimizer, self._with_sched(state, scheduler, scaler))
            self._write_metrics(state["history"])
            if self._tb is not None:
                for k, v in state["history"][-1].items():
                    if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch" and v is not None:
                        self._tb.add_scalar(k, v, epoch + 1)
        if improved:
            self._best_metrics = _jsonable(metrics)
        msg = (
            f"epoch {epoch + 1}/{cfg.epochs}: train_loss {train_loss:.4f}, val_loss {val_loss:.4f}, "
            f"{cfg.monitor} {score:.4f}{' *' if improved else ''}"
        )
        if progress is not None:
            progress.update(task, val=f"{cfg.monitor} {score:.3f}")
            progress.console.print(msg, highlight=False)
        elif self.dist.is_main:
            log.info(msg)
        if self.epoch_callback is not None:
            self.epoch_callback(epoch + 1, metrics)

    def _with_sched(self, state: dict[str, Any], scheduler: Any, scaler: Any) -> dict[str, Any]:
        out = dict(state)
        sd = scheduler.state_dict()
        out["scheduler"] = json.loads(json.dumps(sd, default=_plain))
        out["scaler"] = scaler.state_dict() if scaler.is_enabled() else {}
        return out

    def _load_resume(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        cfg: TrainConfig,
        steps_per_epoch: int,
    ) -> dict[str, Any] | None:
        if self.out_dir is None:
            raise ConfigError("resume needs an output directory", key="out_dir")
        path = self.out_dir / ckpt.LAST_FILE
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
        if state.get("steps_per_epoch") != steps_per_epoch:
            raise CheckpointError(
                f"{path}: saved with {state.get('steps_per_epoch')} steps per epoch, the data now "
                f"gives {steps_per_epoch}; resume with the same data"
            )
        result = model.load_state_dict(model_state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"{path}: weights do not fit this model (missing {list(result.missing_keys)[:5]},"
                f" unexpected {list(result.unexpected_keys)[:5]})"
            )
        try:
            optimizer.load_state_dict(opt_state)
            scheduler.load_state_dict(state.pop("scheduler"))
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimiser/scheduler state does not fit this run ({exc})") from exc
        scaler_state = state.pop("scaler", {})
        if scaler.is_enabled() and scaler_state:
            scaler.load_state_dict(scaler_state)
        log.info("resuming %s at epoch %d, step %d", self.out_dir, state["epoch"] + 1, state["step"])
        return state

    def _diverged(self, state: dict[str, Any], epoch: int, step: int, what: str) -> None:
        where = f"epoch {epoch + 1}, step {step + 1}"
        kept = (
            f"; the last good checkpoint in {self.out_dir} is kept (resume is possible with a lower lr)"
            if self.out_dir is not None
            else ""
        )
        if self.out_dir is not None and self.dist.is_main:
            info = {k: v for k, v in state.items() if k not in ("history",)}
            info.update(status="diverged", stop_reason=f"non-finite {what} at {where}", history=state["history"])
            write_json_atomic(self.out_dir / ckpt.STATE_FILE, info)
        raise NonFiniteLossError(
            f"training stopped: non-finite {what} at {where}{kept}",
            epoch=epoch + 1,
            step=step + 1,
            run_dir=self.out_dir,
        )

    def _result(self, state: Mapping[str, Any], precision: str, device: torch.device) -> TrainResult:
        metrics = getattr(self, "_best_metrics", None)
        if metrics is None and self.out_dir is not None and (self.out_dir / "val_metrics.json").exists():
            metrics = json.loads((self.out_dir / "val_metrics.json").read_text(encoding="utf-8"))["metrics"]
        train_s = float(state["train_step_seconds"])
        cpu_s = float(state.get("train_cpu_seconds", 0.0))
        return TrainResult(
            run_dir=self.out_dir,
            best_epoch=int(state["best_epoch"] or 0),
            best_score=float("nan") if state["best_score"] is None else float(state["best_score"]),
            val_metrics=metrics or {},
            history=list(state["history"]),
            train_seconds=float(state["elapsed_seconds"]),
            records_per_s=state["records_trained"] / train_s if train_s > 0 else float("nan"),
            records_per_cpu_s=state["records_trained"] / cpu_s if cpu_s > 0 else float("nan"),
            stop_reason=str(state.get("stop_reason") or "completed"),
            thresholds=list(state.get("best_thresholds") or []),
            n_params=sum(p.numel() for p in self.model.parameters()),
            device=str(device),
            precision=precision,
            epochs_run=int(state["epoch"]),
        )

    # ------------------------------------------------------------------ display
    def _progress(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[val]}"),
            TimeElapsedColumn(),
        )

    def _open_tensorboard(self) -> None:
        if not self.config.tensorboard or self.out_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning(
                "tensorboard=True but the 'tensorboard' package is not installed (pip install tensorboard);"
                " training continues, scalars are still in metrics.csv/metrics.jsonl"
            )
            return
        self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))


def _plain(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
