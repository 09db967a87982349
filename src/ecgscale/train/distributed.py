"""Data-parallel training: DDP over gloo (CPU) or NCCL (CUDA); only rank 0 writes the run directory.

Two ways to start it:

- ``torchrun --nproc_per_node=2 -m ecgscale.train.distributed --cache CACHE --depth 8 --channels 32
  --kernel 9 --out RUN`` (or ``torchrun ... $(which ecgscale) train --ddp ...``): torchrun sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
- :func:`spawn_train` (``ecgscale train --nproc N``): N local processes via ``torch.multiprocessing.spawn``.

``TrainConfig.batch_size`` stays the global batch; each process takes an interleaved share of every global
batch of the seeded order (see ``Trainer._epoch_batches``), so the optimisation follows the single-process
run. Differences that remain: BatchNorm statistics are per process on CPU (``SyncBatchNorm`` needs CUDA; it
is used on CUDA) and floating-point summation order. Every process validates on the full validation split
itself (same weights, same numbers), so early stopping needs no extra communication.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ecgscale.errors import CheckpointError, ConfigError
from ecgscale.train.config import TrainConfig
from ecgscale.train.trainer import DistContext, TrainResult

__all__ = ["context_from_env", "init_distributed", "main", "result_from_run_dir", "spawn_train"]


def context_from_env(env: Mapping[str, str]) -> DistContext | None:
    """The process's place in a torchrun job from ``env`` (pass ``os.environ``), or ``None`` outside one."""
    if "WORLD_SIZE" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"torchrun environment is malformed ({exc})", key="WORLD_SIZE") from exc
    return DistContext(rank=rank, world_size=world, local_rank=local)


def init_distributed(ctx: DistContext, *, device: str = "auto", init_method: str = "env://") -> None:
    """Join the process group: NCCL when training on CUDA, gloo on CPU."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    use_cuda = torch.cuda.is_available() and device != "cpu"
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(backend=backend, init_method=init_method, rank=ctx.rank, world_size=ctx.world_size)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn_worker(
    rank: int,
    world: int,
    port: int,
    cache: str,
    model: dict[str, Any],
    train: dict[str, Any],
    out_dir: str,
    resume: bool,
    progress: bool,
) -> None:
    import torch.distributed as dist

    from ecgscale.train.run import train_run

    ctx = DistContext(rank=rank, world_size=world, local_rank=rank)
    cfg = TrainConfig.from_dict(train)
    init_distributed(ctx, device=cfg.device, init_method=f"tcp://127.0.0.1:{port}")
    try:
        train_run(cache, model, cfg, out_dir, resume=resume, progress=progress and rank == 0, dist=ctx)
    finally:
        dist.destroy_process_group()


def spawn_train(
    cache: str | os.PathLike[str],
    model_config: Any,
    train_config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    nproc: int,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Run ``train_run`` on ``nproc`` local processes (DDP) and return rank 0's result from the run directory."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ConfigError(f"got {nproc}; allowed: an integer >= 1", key="nproc")
    model = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    mp.spawn(
        _spawn_worker,
        args=(nproc, _free_port(), str(cache), model, train_config.to_dict(), str(out_dir), resume, progress),
        nprocs=nproc,
        join=True,
    )
    return result_from_run_dir(out_dir)


def result_from_run_dir(run_dir: str | os.PathLike[str]) -> TrainResult:
    """Rebuild the :class:`TrainResult` of a finished run from its files (``train_state.json`` and friends)."""
    from ecgscale.train.rundir import RunDir

    run = RunDir(run_dir)
    path = run.state_file
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the run did not complete an epoch")
    state = json.loads(path.read_text(encoding="utf-8"))
    cfg = run.read_config()
    metrics = run.read_val_metrics() or {}
    train_s = float(state.get("train_step_seconds") or 0.0)
    return TrainResult(
        run_dir=run.path,
        best_epoch=int(state.get("best_epoch") or 0),
        best_score=float("nan") if state.get("best_score") is None else float(state["best_score"]),
        val_metrics=metrics,
        history=list(state.get("history", [])),
        train_seconds=float(state.get("elapsed_seconds") or 0.0),
        records_per_s=state.get("records_trained", 0) / train_s if train_s > 0 else float("nan"),
        records_per_cpu_s=(
            state.get("records_trained", 0) / float(state["train_cpu_seconds"])
            if state.get("train_cpu_seconds")
            else float("nan")
        ),
        stop_reason=str(state.get("stop_reason") or state.get("status")),
        thresholds=list(state.get("best_thresholds") or []),
        n_params=0,
        device=str(cfg.get("device")),
        precision=str(cfg.get("precision")),
        epochs_run=int(state.get("epoch", 0)),
    )


def _parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m ecgscale.train.distributed",
        description="Data-parallel training of one ResNet1d under torchrun.",
    )
    p.add_argument("--cache", required=True, help="prepared cache directory")
    p.add_argument("--out", required=True, help="run directory to write (rank 0 writes)")
    p.add_argument("--depth", type=int, required=True)
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--kernel", type=int, required=True)
    p.add_argument("--no-gap", action="store_true", help="flatten + linear head (fixed input length)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="global batch")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--precision", default=defaults.precision)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--train-config", help="JSON file of further TrainConfig fields")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """torchrun entry point; see the module docstring."""
    import logging

    import torch.distributed as dist

    from ecgscale.data.cache import open_cache
    from ecgscale.train.run import train_run
    from ecgscale.train.trainer import model_input_length

    args = _parser().parse_args(argv)
    ctx = context_from_env(os.environ)
    if ctx is None:
        raise SystemExit("WORLD_SIZE is not set: launch with torchrun --nproc_per_node=N -m ecgscale.train.distributed")
    logging.basicConfig(level=logging.INFO if ctx.is_main else logging.WARNING, format="%(message)s")
    extra: dict[str, Any] = {}
    if args.train_config:
        extra = json.loads(Path(args.train_config).read_text(encoding="utf-8"))
    cfg = TrainConfig.from_dict(
        {
            **extra,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "precision": args.precision,
            "seed": args.seed,
        }
    )
    cache = open_cache(args.cache)
    model = {
        "depth": args.depth,
        "channels": args.channels,
        "kernel_size": args.kernel,
        "gap": not args.no_gap,
        "n_classes": len(cache.label_space),
    }
    if args.no_gap:
        model["input_length"] = model_input_length(cfg, float(cache.config.fs), int(cache.window_length))
    init_distributed(ctx, device=cfg.device)
    try:
        train_run(
            cache, model, cfg, args.out, resume=args.resume, progress=ctx.is_main and not args.no_progress, dist=ctx
        )
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
