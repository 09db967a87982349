"""Two data-parallel CPU processes (torchrun, gloo) follow the single-process optimisation with the same global
batch: on a BatchNorm-free net the losses and metrics agree to float tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ecgscale.train import Trainer
from ecgscale.train.distributed import context_from_env


@pytest.mark.slow
def test_two_gloo_processes_match_single_process(planted, planted_data, worker_script, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("ecgscale_tests_train_worker_ddp", worker_script)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(worker_script),
            "ddp",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((out / "train_state.json").read_text())
    assert json.loads((out / "config.json").read_text())["world_size"] == 2

    (xt, yt), (xv, yv) = planted_data
    single = Trainer(
        planted.NoBNNet(seed=0),
        planted.space(),
        worker.DDP_CONFIG,
        train_data=(xt, yt),
        val_data=(xv, yv),
        progress=False,
    ).fit()
    assert len(ddp["history"]) == len(single.history) == worker.DDP_CONFIG.epochs
    for d, s in zip(ddp["history"], single.history, strict=True):
        for key in ("train_loss", "val_loss", "val_macro_auroc", "val_macro_auprc"):
            assert d[key] == pytest.approx(s[key], rel=1e-4, abs=1e-5), key
    assert ddp["records_trained"] == 256 * worker.DDP_CONFIG.epochs  # global records, counted over both ranks


def test_context_from_env():
    assert context_from_env({}) is None
    ctx = context_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.enabled) == (3, 4, 1, False, True)
