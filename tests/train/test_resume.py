"""A run killed mid-epoch (SIGKILL after its first mid-epoch checkpoint) and resumed ends exactly like an
uninterrupted run: same history, same best epoch, same weights (CPU, fp32)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ecgscale.train import Trainer
from ecgscale.train.checkpoint import load_weights


def _mid_epoch_state(run: Path) -> dict | None:
    try:
        state = json.loads((run / "train_state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if state["epoch"] == 1 and state["step"] > 0 else None


def _comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if "seconds" not in k and k != "records_per_s"} for h in history]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(planted, worker_script, tmp_path, load_test_module):
    worker = load_test_module("ecgscale_tests_train_worker", worker_script)
    killed = tmp_path / "killed"
    # Slow steps (50 ms) leave time to kill the process in epoch 2, after a mid-epoch checkpoint (every 2 steps).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic as this process (see conftest)
    proc = subprocess.Popen(
        [sys.executable, str(worker_script), "train", str(killed), "--slow", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = _mid_epoch_state(killed)
        if state is not None:
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail(f"worker ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
    assert state is not None, "no mid-epoch checkpoint within 60 s"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = json.loads((killed / "train_state.json").read_text())
    # killed mid-run, at (or, on a very busy machine, a step or two after) the mid-epoch checkpoint we saw
    assert before["status"] == "running" and (before["epoch"], before["step"]) >= (state["epoch"], state["step"])

    # resume in this process and compare with an uninterrupted run in this process
    (xt, yt), (xv, yv) = worker.resume_data()
    resumed = Trainer(
        planted.tiny_resnet(seed=0, dropout=0.2),
        planted.space(),
        worker.RESUME_CONFIG,
        train_data=(xt, yt),
        val_data=(xv, yv),
        out_dir=killed,
        progress=False,
    ).fit(resume=True)
    full = Trainer(
        planted.tiny_resnet(seed=0, dropout=0.2),
        planted.space(),
        worker.RESUME_CONFIG,
        train_data=(xt, yt),
        val_data=(xv, yv),
        out_dir=tmp_path / "full",
        progress=False,
    ).fit()
    assert _comparable(resumed.history) == _comparable(full.history)
    assert (resumed.best_epoch, resumed.best_score) == (full.best_epoch, full.best_score)
    assert resumed.thresholds == full.thresholds
    a, _ = load_weights(killed / "model.safetensors")
    b, _ = load_weights(tmp_path / "full" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # resuming a finished run trains nothing and returns the same result
    again = Trainer(
        planted.tiny_resnet(seed=0, dropout=0.2),
        planted.space(),
        worker.RESUME_CONFIG,
        train_data=(xt, yt),
        val_data=(xv, yv),
        out_dir=killed,
        progress=False,
    ).fit(resume=True)
    assert _comparable(again.history) == _comparable(full.history) and again.best_epoch == full.best_epoch


class Stop(Exception):
    pass


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_resume_after_an_epoch_callback_exception(planted, planted_data, tmp_path, schedule):
    """The study layer prunes by raising from the callback; the run stays resumable (scheduler state included)."""
    from ecgscale.train import TrainConfig

    cfg = TrainConfig(
        epochs=3, batch_size=64, lr=3e-3, precision="fp32", schedule=schedule, patience=None, checkpoint_every=0
    )
    (xt, yt), (xv, yv) = planted_data

    def stop_at_2(epoch, metrics):
        if epoch == 2:
            raise Stop

    def trainer(out, callback=None):
        return Trainer(
            planted.tiny_resnet(),
            planted.space(),
            cfg,
            train_data=(xt, yt),
            val_data=(xv, yv),
            out_dir=out,
            progress=False,
            epoch_callback=callback,
        )

    with pytest.raises(Stop):
        trainer(tmp_path / "a", stop_at_2).fit()
    resumed = trainer(tmp_path / "a").fit(resume=True)
    full = trainer(tmp_path / "b").fit()
    assert _comparable(resumed.history) == _comparable(full.history)
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in full.history]


@pytest.mark.slow
def test_cli_resume_refuses_a_changed_training_config(tiny_cache, tmp_path):
    """``ecgscale train --resume`` with another training setting is refused with the setting named and the run
    left alone; the same command (or one changing only a free setting such as --max-minutes) is accepted."""
    from typer.testing import CliRunner

    from ecgscale.cli import app
    from ecgscale.errors import ConfigError

    run = tmp_path / "run"
    base = ["train", "--cache", str(tiny_cache.path), "-D", "1", "-C", "8", "-K", "3", "--out", str(run)]
    base += ["--epochs", "1", "--batch-size", "32", "--precision", "fp32", "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(app, base)
    assert first.exit_code == 0, (first.output, first.exception)
    files = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}

    for change, key in ((["--lr", "0.01"], "lr"), (["--weight-decay", "0.5"], "weight_decay")):
        res = runner.invoke(app, [*base, *change, "--resume"])
        assert isinstance(res.exception, ConfigError), (change, res.output, res.exception)
        msg = str(res.exception)
        assert "cannot resume with a different training config" in msg and f"{key}: saved" in msg, msg
        assert ("lr: saved" in msg) == (key == "lr"), msg  # only the changed setting is named
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == files  # nothing written by the refusals

    for same in ([], ["--max-minutes", "5"]):
        res = runner.invoke(app, [*base, *same, "--resume"])
        assert res.exit_code == 0, (same, res.output, res.exception)
