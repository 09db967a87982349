"""``ecgscale train --nproc 2`` and ``torchrun ... -m ecgscale train --ddp`` from the command line: both run two
data-parallel processes (gloo on CPU) and write one run.

What shows it was data-parallel and not one process: the run records ``world_size`` 2 and counts the records of
both ranks; the two ways of starting it give the same weights; and those differ from the single-process run of the
same command, because on CPU each process normalises its own half of every batch (see ``test_ddp.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.train import evaluate_run
from ecgscale.train.checkpoint import load_weights

pytestmark = pytest.mark.slow


def _train_args(tiny_cache, out: Path) -> list[str]:
    return [
        "train",
        "--cache",
        str(tiny_cache.path),
        "-D",
        "1",
        "-C",
        "8",
        "-K",
        "3",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--precision",
        "fp32",
        "--checkpoint-every",
        "0",
        "--no-progress",
        "--out",
        str(out),
    ]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def test_cli_nproc_and_torchrun_train_data_parallel(tiny_cache, tmp_path: Path) -> None:
    spawned, launched, single = tmp_path / "nproc2", tmp_path / "torchrun", tmp_path / "single"
    proc = _run([sys.executable, "-m", "ecgscale", *_train_args(tiny_cache, spawned), "--nproc", "2", "--json"])
    printed = json.loads(proc.stdout)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ecgscale"]
    _run([*torchrun, *_train_args(tiny_cache, launched), "--ddp"])
    res = CliRunner().invoke(app, _train_args(tiny_cache, single))
    assert res.exit_code == 0, (res.output, res.exception)

    one = json.loads((single / "train_state.json").read_text())
    assert json.loads((single / "config.json").read_text())["world_size"] == 1
    weights = {}
    for run in (spawned, launched):
        cfg = json.loads((run / "config.json").read_text())
        state = json.loads((run / "train_state.json").read_text())
        assert cfg["world_size"] == 2 and cfg["status"] == state["status"] == "finished", (cfg, state)
        assert state["records_trained"] == one["records_trained"]  # both ranks' shares, counted once
        weights[run.name], _ = load_weights(run / "model.safetensors")
    assert printed["best_epoch"] == json.loads((spawned / "config.json").read_text())["best_epoch"]

    # the two launchers run the same computation
    assert weights["nproc2"].keys() == weights["torchrun"].keys()
    for k, v in weights["nproc2"].items():
        torch.testing.assert_close(v, weights["torchrun"][k], rtol=1e-5, atol=1e-6, msg=k)
    # and it is not the single-process one (per-process BatchNorm statistics on CPU)
    alone, _ = load_weights(single / "model.safetensors")
    assert max(float((v - alone[k]).abs().max()) for k, v in weights["nproc2"].items()) > 1e-4

    report = evaluate_run(spawned, n_bootstrap=0, write=False)
    assert report["n_records"] == len(tiny_cache.indices("test"))
