"""The run directory: the one owner of its layout and of ``config.json`` (write, read, validate).

A run directory holds

- ``config.json`` (:class:`RunConfig`): model config, train config, label space, preprocessing config and its
  hash, the per-class thresholds tuned on the validation split, best epoch/score, ecgscale version and git SHA;
- ``model.safetensors``: the best weights (by the monitored validation metric);
- ``last.safetensors``: the resume state in ONE file (weights ``model.*``, optimiser tensors ``optim.*``,
  and the JSON train state: epoch, step, history, scheduler and scaler state, in the safetensors metadata),
  so a kill at any moment leaves either the previous or the new state, never a mix;
- ``train_state.json``: a readable copy of that train state;
- ``val_metrics.json``: the validation metrics of the best epoch;
- ``metrics.jsonl`` / ``metrics.csv``: one row per epoch; ``tensorboard/`` when asked for;
- ``eval_<split>.json`` / ``eval_<split>_per_label.csv`` (``ecgscale.train.evaluate``), ``predictions_<split>.npz``;
- ``.ecgscale.lock`` (+ ``.json``): the writer lock of a training process, held for its whole run, so a second
  ``ecgscale train`` into the same directory is refused (``ecgscale.fileio.writer_lock``).

The safetensors files are read and written by ``ecgscale.train.checkpoint``; :class:`RunDir` names them all.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgscale.errors import CheckpointError, ConfigError
from ecgscale.fileio import read_json, write_json_atomic

if TYPE_CHECKING:
    from ecgscale.data.labels import LabelSpace
    from ecgscale.data.leads import LeadSet
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.train.config import TrainConfig
    from ecgscale.train.windows import WindowSpec

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "LAST_FILE",
    "LOCK_FILE",
    "MODEL_FILE",
    "STATE_FILE",
    "RunConfig",
    "RunDir",
]

FORMAT = "ecgscale-run"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "train_state.json"
LOCK_FILE = ".ecgscale.lock"
VAL_METRICS_FILE = "val_metrics.json"
METRICS_JSONL_FILE = "metrics.jsonl"
METRICS_CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"

# run_info entries a Trainer caller sets even where the trainer wrote its own value (train_run knows them better).
_RUN_INFO_WINS = ("model", "preprocess", "preprocess_hash", "cache")


@dataclass(frozen=True, eq=False)
class RunConfig(Mapping[str, Any]):
    """A run's ``config.json``, read-only: the format's keys as typed properties, and parsers that turn its
    sections into domain objects, every problem a ``CheckpointError`` naming the file.

    It is also a ``Mapping`` of the JSON as written (``cfg.get("window")`` reads as before), so runs written by
    any earlier ecgscale load unchanged: absent keys stay absent. ``path`` is where it was read from (or will be
    written to), for messages.
    """

    data: Mapping[str, Any]
    path: Path = Path(CONFIG_FILE)

    # ------------------------------------------------------------------ Mapping of the JSON
    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``config.json`` (a deep copy)."""
        return copy.deepcopy(dict(self.data))

    # ------------------------------------------------------------------ write side
    @classmethod
    def for_training(
        cls,
        *,
        model: Mapping[str, Any] | None,
        train: TrainConfig,
        label_space: Mapping[str, Any] | None,
        precision: str,
        device: str,
        world_size: int,
        window: int | None,
        crop: int | None,
        eval_windows: Mapping[str, Any] | None,
        n_train: int,
        n_val: int,
        git_sha: str | None,
        run_info: Mapping[str, Any] | None = None,
        path: Path = Path(CONFIG_FILE),
    ) -> RunConfig:
        """The config of a run starting (no best epoch yet); :meth:`with_progress` fills in what the epochs find.

        ``run_info`` adds entries (preprocessing, cache path, split, parent, leads, ...); of the trainer's own keys
        it overrides only ``model``, ``preprocess``, ``preprocess_hash`` and ``cache``.
        """
        from ecgscale import __version__

        data: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ecgscale_version": __version__,
            "git_sha": git_sha,
            "model": None if model is None else dict(model),
            "train": train.to_dict(),
            "label_space": None if label_space is None else dict(label_space),
            "thresholds": None,
            "thresholds_source": "val",
            "best_epoch": None,
            "best_score": None,
            "monitor": train.monitor,
            "status": None,
            "stop_reason": None,
            "precision": precision,
            "device": device,
            "world_size": world_size,
            "window": window,
            "crop": crop,
            "eval_windows": None if eval_windows is None else dict(eval_windows),
            "n_train": n_train,
            "n_val": n_val,
        }
        for k, v in (run_info or {}).items():
            data.setdefault(k, v)
            if k in _RUN_INFO_WINS:
                data[k] = v
        return cls(data, path)

    def with_progress(
        self,
        *,
        thresholds: list[float] | None,
        best_epoch: int | None,
        best_score: float | None,
        status: str | None,
        stop_reason: str | None,
    ) -> RunConfig:
        """A copy with the training progress: the best epoch's thresholds and score, the run's status."""
        data = dict(self.data)
        data.update(
            thresholds=thresholds, best_epoch=best_epoch, best_score=best_score, status=status, stop_reason=stop_reason
        )
        return RunConfig(data, self.path)

    # ------------------------------------------------------------------ read side
    @classmethod
    def from_dict(cls, data: Any, *, path: str | os.PathLike[str] = CONFIG_FILE) -> RunConfig:
        """Check that ``data`` is an ecgscale run config this version reads (``CheckpointError`` naming ``path``)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(f"{path}: not an ecgscale run config (format={got!r}, expected {FORMAT!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: written by a newer ecgscale (format_version={data['format_version']}, "
                f"this version reads <= {FORMAT_VERSION})"
            )
        for key in ("model", "label_space"):
            if key not in data:
                raise CheckpointError(f"{path}: missing key {key!r}")
        return cls(data, Path(path))

    @property
    def model(self) -> Mapping[str, Any] | None:
        """The ``ResNet1dConfig`` dict (``None``: the run trained a custom network)."""
        model = self.data.get("model")
        return model if isinstance(model, Mapping) else None

    @property
    def preprocess_hash(self) -> str | None:
        return self.data.get("preprocess_hash")

    @property
    def cache(self) -> str | None:
        """The path of the cache the run was trained on (``None``: trained on in-memory data)."""
        return self.data.get("cache")

    @property
    def window(self) -> int | None:
        """Samples of the training window (the cache's centre window)."""
        window = self.data.get("window")
        return None if window is None else int(window)

    @property
    def best_epoch(self) -> int | None:
        return self.data.get("best_epoch")

    @property
    def thresholds_source(self) -> str:
        return str(self.data.get("thresholds_source", "val"))

    def parse_label_space(self) -> LabelSpace:
        from ecgscale.data.labels import LabelSpace

        try:
            return LabelSpace.from_dict(self.data["label_space"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: invalid 'label_space' ({exc})") from exc

    def parse_preprocess(self) -> PreprocessConfig | None:
        """The ``PreprocessConfig`` of the run's cache; ``None`` for runs trained on in-memory arrays."""
        if not self.data.get("preprocess"):
            return None
        from ecgscale.data.transforms import PreprocessConfig

        return PreprocessConfig.from_dict(self.data["preprocess"])

    def checked_preprocess(self) -> PreprocessConfig:
        """The run's ``PreprocessConfig``, checked against the hash recorded at training time and the window.

        A mismatch means ``config.json`` was edited or the pipeline's arithmetic changed since training
        (``PIPELINE_VERSION`` is part of the hash); predicting anyway would feed the model signals it never saw.
        """
        config = self.parse_preprocess()
        if config is None:
            raise CheckpointError(
                f"{self.path}: no 'preprocess' section; the run was trained on in-memory arrays, so "
                "ecgscale cannot know how to preprocess raw ECG files for it"
            )
        recorded = self.preprocess_hash
        if not recorded:
            raise CheckpointError(
                f"{self.path}: no 'preprocess_hash'; cannot check that the preprocessing in "
                "config.json is the one the model was trained with"
            )
        if config.hash() != recorded:
            raise CheckpointError(
                f"{self.path}: preprocess_hash {recorded!r} does not match the 'preprocess' section (hash "
                f"{config.hash()!r} with this ecgscale's pipeline version); the config was edited or the "
                "preprocessing code changed since training: retrain, or predict with the ecgscale version that "
                "trained the run"
            )
        window = self.window
        if window is not None and window != config.window_samples:
            raise CheckpointError(
                f"{self.path}: 'window' is {window} samples but the preprocessing gives "
                f"{config.window_samples} ({config.window_s} s at {config.fs:g} Hz)"
            )
        return config

    def parse_thresholds(self, n_classes: int) -> np.ndarray:
        """The validation-tuned thresholds (0.5 each when none were tuned yet), one per class."""
        thr = self.data.get("thresholds")
        thresholds = np.full(n_classes, 0.5) if thr is None else np.asarray(thr, dtype=np.float64)
        if thresholds.shape != (n_classes,):
            raise CheckpointError(f"{self.path}: {thresholds.size} thresholds for {n_classes} classes")
        return thresholds

    def parse_leads(self) -> LeadSet:
        """The run's lead set (``leads``, else ``train.leads``; neither: all 12 leads), checked against the
        model's ``n_leads``."""
        from ecgscale.data.leads import parse_leads

        raw = self.data.get("leads")
        train = self.data.get("train")
        if raw is None and isinstance(train, Mapping):
            raw = train.get("leads")
        try:
            leads = parse_leads(raw)
        except ConfigError as exc:
            raise CheckpointError(f"{self.path}: invalid 'leads' ({exc})") from None
        model = self.data.get("model")
        n_leads = model.get("n_leads", 12) if isinstance(model, Mapping) else None
        if n_leads is not None and int(n_leads) != len(leads):
            raise CheckpointError(
                f"{self.path}: the model takes {n_leads} leads but the run's lead set is {len(leads)} leads "
                f"({', '.join(leads.names)})"
            )
        return leads

    def parse_eval_windows(self, *, aggregate: str | None = None) -> WindowSpec | None:
        """The evaluation windows (``None``: one centre window), optionally with another aggregation."""
        import dataclasses

        from ecgscale.train.windows import WindowSpec

        raw = self.data.get("eval_windows")
        spec = None if raw is None else WindowSpec.from_dict(raw)
        if aggregate is not None:
            if spec is None:
                if self.window is None:
                    raise ConfigError("the run records no window length; cannot aggregate windows", key="aggregate")
                spec = WindowSpec(length=self.window)  # one window per record: mean and max coincide
            spec = dataclasses.replace(spec, aggregate=aggregate)
        return spec


@dataclass(frozen=True, slots=True)
class RunDir:
    """The paths of a run directory's files, and its ``config.json`` read and written as a :class:`RunConfig`."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def last_file(self) -> Path:
        return self.path / LAST_FILE

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def val_metrics_file(self) -> Path:
        return self.path / VAL_METRICS_FILE

    @property
    def metrics_jsonl_file(self) -> Path:
        return self.path / METRICS_JSONL_FILE

    @property
    def metrics_csv_file(self) -> Path:
        return self.path / METRICS_CSV_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def eval_file(self, split: str, *, aggregate: str | None = None, per_label: bool = False) -> Path:
        """``eval_<split>[_<aggregate>].json``, or its ``..._per_label.csv``."""
        stem = f"eval_{split}" if aggregate is None else f"eval_{split}_{aggregate}"
        return self.path / (f"{stem}_per_label.csv" if per_label else f"{stem}.json")

    def predictions_file(self, split: str) -> Path:
        return self.path / f"predictions_{split}.npz"

    def holds_run(self) -> bool:
        """Whether a run was started here (a ``config.json`` or a resume state exists)."""
        return self.config_file.exists() or self.last_file.exists()

    def read_config(self) -> RunConfig:
        """``config.json``, checked to be an ecgscale run config; every problem a ``CheckpointError``."""
        path = self.config_file
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path}: run directory does not exist")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; {self.path} is not an ecgscale run directory")
        try:
            data = read_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
        return RunConfig.from_dict(data, path=path)

    def write_config(self, config: RunConfig) -> None:
        write_json_atomic(self.config_file, config.to_dict())

    def read_val_metrics(self) -> dict[str, Any] | None:
        """The best epoch's validation metrics (``None``: no epoch improved yet)."""
        if not self.val_metrics_file.exists():
            return None
        return json.loads(self.val_metrics_file.read_text(encoding="utf-8"))["metrics"]
