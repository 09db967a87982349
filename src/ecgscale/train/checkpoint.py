"""Checkpoint files of a run directory: weights in safetensors, every file written atomically. No pickle.

The layout of a run directory and its ``config.json`` belong to :mod:`ecgscale.train.rundir`; this module reads and
writes its safetensors files (``model.safetensors``, the resume state ``last.safetensors``) and loads a whole run
back for prediction (:func:`load_run`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ecgscale.errors import CheckpointError
from ecgscale.fileio import atomic_path
from ecgscale.train.rundir import FORMAT, FORMAT_VERSION, LAST_FILE, LOCK_FILE, MODEL_FILE, RunConfig, RunDir

if TYPE_CHECKING:
    from ecgscale.data.labels import LabelSpace
    from ecgscale.data.leads import LeadSet
    from ecgscale.data.transforms import PreprocessConfig

__all__ = [
    "LAST_FILE",  # the file names are ecgscale.train.rundir's, kept importable from here
    "LOCK_FILE",
    "MODEL_FILE",
    "LoadedRun",
    "git_sha",
    "load_resume_state",
    "load_run",
    "load_weights",
    "read_run_config",
    "remove_partial_writes",
    "save_resume_state",
    "save_weights",
]

log = logging.getLogger(__name__)


def _meta(kind: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    from ecgscale import __version__

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind, "ecgscale": __version__}
    meta.update(extra or {})
    return meta


def save_weights(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    kind: str = "weights",
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a state dict as safetensors, atomically, tagged so :func:`load_weights` can recognise it."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=_meta(kind, metadata))


def load_weights(path: str | os.PathLike[str], *, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an ecgscale safetensors file: ``(tensors, metadata)``; anything else is a ``CheckpointError``."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file is missing")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118  (safe_open has no __iter__)
    except Exception as exc:  # the safetensors parser raises its own error types for garbage input
        raise CheckpointError(
            f"{p}: not a readable safetensors file ({type(exc).__name__}: {exc}); it is corrupt, truncated or "
            "in another format (ecgscale never reads pickled checkpoints)"
        ) from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{p}: safetensors file was not written by ecgscale (metadata format="
            f"{meta.get('format')!r}, expected {FORMAT!r})"
        )
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{p}: holds {meta.get('kind')!r} tensors, expected {kind!r}")
    return tensors, meta


def save_resume_state(
    path: str | os.PathLike[str],
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any],
    state: Mapping[str, Any],
) -> None:
    """One atomic file with weights, optimiser tensors and the JSON train state (see module docstring)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model_state.items()}
    for pid, pstate in optimizer_state["state"].items():
        for key, value in pstate.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            tensors[f"optim.{pid}.{key}"] = value
    full = dict(state)
    full["optimizer_param_groups"] = optimizer_state["param_groups"]
    save_weights(path, tensors, kind="resume", metadata={"train_state": json.dumps(full, default=_json_default)})


def load_resume_state(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict]:
    """``(model_state, optimizer_state, train_state)`` from :func:`save_resume_state`'s file."""
    tensors, meta = load_weights(path, kind="resume")
    try:
        state = json.loads(meta["train_state"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: resume checkpoint has no readable train state ({exc})") from exc
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    opt: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            opt.setdefault(int(pid), {})[key] = v
    groups = state.pop("optimizer_param_groups")
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return model_state, {"state": opt, "param_groups": groups}, state


# ``ecgscale.fileio.atomic_path``'s temporary files: ``.<final name>.<8 random chars>[suffix].tmp``.
_PARTIAL = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?\.tmp$")


def remove_partial_writes(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of atomic writes interrupted in ``run_dir``; returns what was removed.

    Why: a process killed inside an atomic write leaves its temporary file behind (the final name is never
    touched). Nothing reads it, but a run killed and resumed many times would pile up copies of the resume
    checkpoint. Call it only while holding the run directory's lock, so no live writer owns such a file.
    """
    removed = []
    for path in Path(run_dir).iterdir():
        if _PARTIAL.match(path.name) and path.is_file():
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
            log.info("removed %s, left by an interrupted write", path)
    return removed


@functools.cache
def git_sha() -> str | None:
    """The commit of the ecgscale source tree, if it is a git checkout (else ``None``); asked once per process."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def read_run_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """``config.json`` of a run, checked to be an ecgscale run config (``RunDir(run_dir).read_config()``)."""
    return RunDir(run_dir).read_config()


@dataclass(frozen=True)
class LoadedRun:
    """A trained run ready to predict: the model in eval mode on CPU, and what it needs to be used honestly."""

    model: torch.nn.Module
    config: RunConfig
    label_space: LabelSpace
    preprocess: PreprocessConfig | None  # None for runs trained on in-memory arrays
    thresholds: np.ndarray
    run_dir: Path
    leads: LeadSet  # the lead set the model takes (all 12 for runs written before lead sets)


def build_model_from_config(model_config: Mapping[str, Any]) -> torch.nn.Module:
    """Rebuild the network described by a run's ``config.json["model"]`` (a ``ResNet1dConfig`` dict)."""
    from ecgscale.models import ResNet1d, ResNet1dConfig

    return ResNet1d(ResNet1dConfig.from_dict(dict(model_config)))


def load_run(run_dir: str | os.PathLike[str], *, weights: str = MODEL_FILE) -> LoadedRun:
    """Load a run directory for prediction; every problem is a ``CheckpointError`` that names the file."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    if cfg.model is None:
        raise CheckpointError(
            f"{cfg.path}: 'model' holds no model config (the run was trained on a "
            "custom network; load its weights with load_weights)"
        )
    try:
        model = build_model_from_config(cfg.model)
    except Exception as exc:
        raise CheckpointError(f"{cfg.path}: cannot rebuild the model from 'model' ({exc})") from exc
    weights_file = run.path / weights
    state, meta = load_weights(weights_file)
    saved_epoch, best_epoch = meta.get("epoch"), cfg.best_epoch
    if weights == MODEL_FILE and saved_epoch is not None and "best_epoch" in cfg and str(best_epoch) != saved_epoch:
        # The best weights are written just before config.json: a kill between the two leaves weights of a newer
        # epoch beside the thresholds of the older best one. Predicting with that mix would be silently wrong.
        raise CheckpointError(
            f"{weights_file}: holds the weights of epoch {saved_epoch} but {cfg.path} describes best "
            f"epoch {best_epoch} (the run was stopped while saving); finish it with `ecgscale train --resume`"
        )
    if weights == LAST_FILE:
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{weights_file}: weights do not fit the model in config.json (missing {list(result.missing_keys)[:5]}"
            f", unexpected {list(result.unexpected_keys)[:5]}); the checkpoint belongs to another model"
        )
    model.eval()
    label_space = cfg.parse_label_space()
    return LoadedRun(
        model=model,
        config=cfg,
        label_space=label_space,
        preprocess=cfg.parse_preprocess(),
        thresholds=cfg.parse_thresholds(len(label_space)),
        run_dir=run.path,
        leads=cfg.parse_leads(),
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
