"""End to end on the shared ``tiny_cache``: train_run, the epoch callback, evaluate_run and the CLI."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from ecgscale.errors import ConfigError
from ecgscale.train import TrainConfig, evaluate_run, load_run, train_run

TINY = TrainConfig(epochs=2, batch_size=16, lr=3e-3, precision="bf16", patience=None, checkpoint_every=0)
MODEL = {"depth": 2, "channels": 8, "kernel_size": 5, "n_classes": 26}


class Prune(Exception):
    pass


@pytest.mark.slow
def test_callback_exception_propagates_after_a_consistent_checkpoint(tiny_cache, tmp_path):
    seen = []

    def callback(epoch, metrics):
        seen.append((epoch, metrics["macro_auroc"]))
        raise Prune

    with pytest.raises(Prune):
        train_run(tiny_cache, MODEL, TINY, tmp_path / "run", progress=False, epoch_callback=callback)
    assert [e for e, _ in seen] == [1]
    state = json.loads((tmp_path / "run" / "train_state.json").read_text())
    assert (state["epoch"], state["step"], len(state["history"])) == (1, 0, 1)
    res = train_run(tiny_cache, MODEL, TINY, tmp_path / "run", resume=True, progress=False)
    assert len(res.history) == 2 and res.epochs_run == 2
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["preprocess_hash"] == tiny_cache.preprocess_hash and cfg["cache"]
    assert load_run(tmp_path / "run").preprocess.hash() == tiny_cache.preprocess_hash


def test_bad_model_configs_fail_before_training(tiny_cache, tmp_path):
    with pytest.raises(ConfigError, match="kernel_size"):
        train_run(tiny_cache, {**MODEL, "kernel_size": 4}, TINY, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="n_classes"):
        train_run(tiny_cache, {**MODEL, "n_classes": 5}, TINY, tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="input_length=300"):
        train_run(tiny_cache, {**MODEL, "gap": False, "input_length": 300}, TINY, tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="depth"):  # 500 samples cannot survive 40 blocks of downsampling
        train_run(tiny_cache, {**MODEL, "depth": 40, "max_downsamples": 20}, TINY, tmp_path / "d", progress=False)
    assert not any((tmp_path / n).exists() for n in "abcd")


@pytest.mark.slow
def test_cli_train_then_evaluate(tiny_cache, tmp_path, monkeypatch):
    from ecgscale.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "--cache",
            str(tiny_cache.path),
            "-D",
            "2",
            "-C",
            "8",
            "-K",
            "5",
            "--no-gap",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--monitor",
            "challenge",
            "--out",
            str(run),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, (res.output, res.exception)
    assert "best epoch" in res.output and "ecgscale evaluate" in res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["gap"] is False and cfg["model"]["input_length"] == tiny_cache.window_length
    best_val = json.loads((run / "val_metrics.json").read_text())["metrics"]
    assert cfg["monitor"] == "challenge" and cfg["best_score"] == pytest.approx(best_val["challenge_metric"])

    import ecgscale.metrics as metrics

    def no_tuning(*a, **k):
        raise AssertionError("evaluation must not tune thresholds")

    monkeypatch.setattr(metrics, "tune_thresholds", no_tuning)
    res = runner.invoke(app, ["evaluate", str(run), "--n-bootstrap", "20", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    report = json.loads((run / "eval_test.json").read_text())
    assert json.loads(res.stdout)["metrics"] == report["metrics"]
    assert report["split"] == "test" and report["n_records"] == len(tiny_cache.indices("test"))
    assert report["thresholds"] == cfg["thresholds"] and report["thresholds_source"] == "val"
    assert report["metrics"]["challenge_metric"] is not None and len(report["metrics"]["ci"]["macro_auroc"]) == 2
    assert set(report["per_group"]) >= {"rhythm", "conduction"}
    rows = list(csv.DictReader((run / "eval_test_per_label.csv").open()))
    assert len(rows) == 26 and {"abbreviation", "auroc", "auroc_ci_low", "threshold"} <= set(rows[0])
    val = evaluate_run(run, split="val", n_bootstrap=0, write=False)
    assert val["n_records"] == len(tiny_cache.indices("val")) and not (run / "eval_val.json").exists()

    res = runner.invoke(
        app,
        [
            "train",
            "--cache",
            str(tiny_cache.path),
            "-D",
            "2",
            "-C",
            "8",
            "-K",
            "6",
            "--out",
            str(tmp_path / "bad"),
            "--no-progress",
        ],
    )
    assert isinstance(res.exception, ConfigError) and "kernel_size" in str(res.exception)


def test_trainer_accepts_a_cache_dataset(tiny_cache):
    """The generic path: CacheDataset items (per-(seed, epoch, record) crops) instead of the fast cache source."""
    from ecgscale.models import build_resnet1d
    from ecgscale.train import Trainer

    train = tiny_cache.dataset("train", train=True, seed=0)
    val = tiny_cache.dataset("val")
    cfg = TrainConfig(epochs=2, batch_size=16, precision="fp32", patience=None, checkpoint_every=0, num_workers=0)

    def fit():
        model = build_resnet1d(2, 8, 5, n_classes=len(tiny_cache.label_space), generator=0)
        return Trainer(model, tiny_cache.label_space, cfg, train_data=train, val_data=val, progress=False).fit()

    a, b = fit(), fit()
    assert train.epoch == 1  # set_epoch was called for the second epoch
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


@pytest.mark.slow
def test_train_run_leaves_the_callers_global_rng_and_flags_alone(tiny_cache, tmp_path):
    """Dropout masks, crops, data order and initialisation come from the run's own seeds: the global torch,
    numpy and Python RNG states and torch's deterministic-algorithms flag are the same after ``train_run``."""
    import random

    import numpy as np
    import torch

    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, precision="fp32", patience=None, crop_s=4.0, seed=3)
    torch.manual_seed(1234)
    np.random.seed(4321)
    random.seed(99)
    torch.use_deterministic_algorithms(False)
    before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    train_run(tiny_cache, {**MODEL, "dropout": 0.3}, cfg, tmp_path / "run", progress=False)
    assert torch.equal(torch.get_rng_state(), before[0])
    after_np = np.random.get_state()
    assert after_np[0] == before[1][0] and np.array_equal(after_np[1], before[1][1]) and after_np[2:] == before[1][2:]
    assert random.getstate() == before[2]
    assert not torch.are_deterministic_algorithms_enabled()
    # and the next draws are the ones the caller's seeds give
    torch.manual_seed(1234)
    want = torch.rand(3)
    torch.set_rng_state(before[0])
    assert torch.equal(torch.rand(3), want)
