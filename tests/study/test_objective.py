"""What one real trial costs besides training: the test split is predicted once, the run loaded once, the cost of
an architecture computed once per worker; the stored numbers are those of that one prediction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import ecgscale.models
from ecgscale.metrics import compute_metrics
from ecgscale.study.grids import ArchPoint
from ecgscale.study.objective import TrainRunner, TrialConfig, per_source_metrics
from ecgscale.train import evaluate as evaluate_mod
from ecgscale.train import load_run

pytestmark = pytest.mark.slow


def _counting(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_a_trial_predicts_the_test_split_once_and_reuses_costs(tiny_cache, tmp_path: Path, monkeypatch) -> None:
    predicts = _counting(monkeypatch, evaluate_mod, "predict_logits")
    loads = _counting(monkeypatch, evaluate_mod, "load_run")
    costs = _counting(monkeypatch, ecgscale.models, "cost")
    runner = TrainRunner(tiny_cache, min_source_records=1)
    arch = ArchPoint(1, 8, 3, True)
    outcomes = [
        runner(TrialConfig(arch, seed=s, train={"epochs": 1, "batch_size": 32}), tmp_path / f"t{s}", lambda e, v: None)
        for s in (0, 1)
    ]
    assert len(predicts) == 2 and len(loads) == 2  # one test prediction and one run load per trial, no more
    assert len(costs) == 1  # the second seed of the same architecture reuses its params/FLOPs
    assert outcomes[0].params == outcomes[1].params and outcomes[0].flops == outcomes[1].flops

    out = outcomes[1]
    run_dir = tmp_path / "t1"
    with np.load(run_dir / "predictions_test.npz", allow_pickle=False) as npz:
        prob, source, index = npz["prob"], npz["source"], npz["index"]
    run = load_run(run_dir)
    # the stored cost is the trained network's: its parameter count, and the FLOPs of one cache window
    assert out.params == sum(p.numel() for p in run.model.parameters())
    assert out.flops == ecgscale.models.cost(run.model.config, tiny_cache.window_length).flops
    y = tiny_cache.labels[index]
    overall = compute_metrics(y, prob, thresholds=run.thresholds, label_space=run.label_space)
    assert out.test_metrics["macro_auroc"] == pytest.approx(overall["macro_auroc"], abs=1e-6)
    assert set(out.per_source) == set(source.tolist())
    for src, got in out.per_source.items():
        mask = source == src
        want = compute_metrics(y[mask], prob[mask], thresholds=run.thresholds, label_space=run.label_space)
        assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-6)
        if np.isfinite(want["macro_auroc"]):  # undefined (no positive label in a tiny source) is left out
            assert got["macro_auroc"] == pytest.approx(want["macro_auroc"], abs=1e-6)
        else:
            assert "macro_auroc" not in got
    # the public helper gives the same numbers from its own prediction
    again = per_source_metrics(run_dir, tiny_cache, min_records=1)
    assert again.keys() == out.per_source.keys()
    for src in again:
        assert again[src] == pytest.approx(out.per_source[src], abs=1e-6)

    attrs = out.user_attrs()
    # CPU seconds of the whole train_run call: at least the CPU time the trainer counted in its training steps
    trainer_cpu = json.loads((run_dir / "train_state.json").read_text())["train_cpu_seconds"]
    assert attrs["train_cpu_seconds"] == out.train_cpu_seconds >= trainer_cpu > 0
    assert math.isclose(attrs["receptive_field_s"], attrs["receptive_field"] / tiny_cache.config.fs)
    assert (run_dir / "eval_test.json").is_file()


def test_a_crop_trained_no_gap_trial_gets_a_head_for_its_crops(tiny_cache, tmp_path) -> None:
    """A sweep with --recipe ptbxl (2.5 s crops) and GAP off: the flatten head must be built for the crop, not for
    the cache's whole window (every no-GAP trial of the PTB-XL study failed on exactly this)."""
    import json

    fs = float(tiny_cache.config.fs)
    runner = TrainRunner(tiny_cache, min_source_records=1)
    train = {"epochs": 1, "batch_size": 32, "crop_s": 2.0, "eval_stride_s": 1.0}
    out = runner(TrialConfig(ArchPoint(1, 8, 3, False), seed=0, train=train), tmp_path / "t", lambda e, v: None)
    assert np.isfinite(out.value)
    model = json.loads((tmp_path / "t" / "config.json").read_text())["model"]
    assert model["input_length"] == round(2.0 * fs) < int(tiny_cache.window_length)
    # parameters are the real (crop-sized) model's; FLOPs are per cache window, like every other trial's
    from ecgscale.models import ResNet1dConfig, cost

    real = ResNet1dConfig.from_dict(model)
    assert out.params == cost(real, real.input_length).params
    window = int(tiny_cache.window_length)
    at_window = cost(ResNet1dConfig.from_dict({**model, "input_length": window}), window)
    assert out.flops == at_window.flops
