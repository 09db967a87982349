"""Two data-parallel CPU processes (torchrun, gloo) training the BatchNorm ResNet, against single-process training.

The trainer's documented behaviour on CPU (``docs/training.md``): ``SyncBatchNorm`` is used on CUDA only, so on CPU
each process normalises its own shard of the global batch with that shard's statistics; DDP averages the gradients
and, before every training forward, broadcasts rank 0's buffers, so the running statistics that survive (rank 0's
checkpoint and validation) are updated from rank 0's shards only. Process ``r`` of ``W`` takes records ``r, r+W,
...`` of each global batch.

So the exact single-process equivalent of 2-process DDP is the same ResNet whose BatchNorm layers, in training
mode, normalise the interleaved halves ``x[0::2]`` and ``x[1::2]`` separately and update their running statistics
from ``x[0::2]`` only ("per-process BN"). Stated tolerance: losses, AUROC/AUPRC and every weight and BN buffer agree
to 1e-5 relative / 1e-6 absolute (float32 all-reduce rounding; observed ~1e-7). Plain single-process training
(statistics of the whole batch of 32) differs by ~5e-3 in the same numbers, so the comparison does see how BN is
treated: SyncBatchNorm on CPU, unaveraged gradients or a different shard assignment would fail it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from ecgscale.train import Trainer
from ecgscale.train.checkpoint import load_resume_state
from ecgscale.train.distributed import context_from_env

KEYS = ("train_loss", "val_loss", "val_macro_auroc", "val_macro_auprc")
WORLD = 2


def _per_process_bn_forward(self: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm as W DDP processes on CPU compute it, in one process (training mode only)."""
    if not self.training:
        return nn.BatchNorm1d.forward(self, x)
    shards = [nn.BatchNorm1d.forward(self, x[0::WORLD])]  # rank 0: its running statistics are the ones kept
    for r in range(1, WORLD):  # other ranks: own batch statistics, their running-stat updates are overwritten
        shards.append(nn.functional.batch_norm(x[r::WORLD], None, None, self.weight, self.bias, True, 0.0, self.eps))
    return torch.stack(shards, dim=1).reshape(x.shape)  # back to the interleaved order of the global batch


def _with_per_process_bn(model: nn.Module) -> nn.Module:
    n = 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.forward = types.MethodType(_per_process_bn_forward, module)
            n += 1
    assert n >= 5  # stem + two convolutions per block (+ the downsampling shortcut): the ResNet is full of BN
    return model


@pytest.mark.slow
def test_two_gloo_processes_match_per_process_bn_single_process(planted, tmp_path, load_test_module):
    worker_script = Path(__file__).resolve().parent / "_ddp_worker.py"
    worker = load_test_module("ecgscale_tests_train_ddp_worker", worker_script)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
    proc = subprocess.run(
        [*cmd, str(worker_script), str(out)], capture_output=True, text=True, env=env, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((out / "train_state.json").read_text())
    assert json.loads((out / "config.json").read_text())["world_size"] == WORLD
    cfg = worker.DDP_CONFIG
    assert ddp["records_trained"] == 256 * cfg.epochs  # global records, counted over both ranks

    (xt, yt), (xv, yv) = worker.ddp_data()
    runs = {}
    for name, model in (("per_process_bn", _with_per_process_bn(worker.ddp_model())), ("plain", worker.ddp_model())):
        runs[name] = Trainer(
            model,
            planted.space(),
            cfg,
            train_data=(xt, yt),
            val_data=(xv, yv),
            out_dir=tmp_path / name,
            progress=False,
        ).fit()
    single = runs["per_process_bn"]
    assert len(ddp["history"]) == len(single.history) == cfg.epochs
    for d, s in zip(ddp["history"], single.history, strict=True):
        for key in KEYS:
            assert d[key] == pytest.approx(s[key], rel=1e-5, abs=1e-6), key
    ddp_weights, _, _ = load_resume_state(out / "last.safetensors")
    single_weights, _, _ = load_resume_state(tmp_path / "per_process_bn" / "last.safetensors")
    assert ddp_weights.keys() == single_weights.keys()
    assert any("running_var" in k for k in ddp_weights)
    for k, v in ddp_weights.items():
        torch.testing.assert_close(v, single_weights[k], rtol=1e-5, atol=1e-6, msg=k)

    # Whole-batch statistics are a different computation: the test above would notice SyncBatchNorm on CPU.
    plain = runs["plain"].history
    gap = max(abs(d[k] - p[k]) for d, p in zip(ddp["history"], plain, strict=True) for k in KEYS)
    assert gap > 1e-3


def test_context_from_env():
    assert context_from_env({}) is None
    ctx = context_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.enabled) == (3, 4, 1, False, True)
