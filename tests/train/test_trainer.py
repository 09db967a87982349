"""The training loop on planted signals: it learns, is deterministic, stops early, stops on NaN, and takes its
thresholds from validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import expit
from torch import nn

from ecgscale.errors import ConfigError
from ecgscale.train import NonFiniteLossError, TrainConfig, Trainer, load_run
from ecgscale.train.checkpoint import load_resume_state, load_weights
from ecgscale.train.trainer import pos_weight_from_labels

FAST = TrainConfig(epochs=4, batch_size=32, lr=3e-3, precision="fp32", patience=None, checkpoint_every=0)


def _fit(planted, data, config=FAST, model=None, out_dir=None, **kw):
    (xt, yt), (xv, yv) = data
    model = model if model is not None else planted.tiny_resnet(seed=config.seed)
    trainer = Trainer(
        model, planted.space(), config, train_data=(xt, yt), val_data=(xv, yv), out_dir=out_dir, progress=False, **kw
    )
    return trainer.fit()


def test_learns_planted_signals_and_writes_a_run(planted, planted_data, tmp_path):
    cfg = TrainConfig(
        epochs=6, batch_size=32, lr=1e-2, precision="bf16", patience=None, checkpoint_every=0, pos_weight=True
    )
    res = _fit(planted, planted_data, cfg, out_dir=tmp_path / "run")
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.8 * losses[0]
    assert res.best_score > 0.9, res.history
    assert res.val_metrics["macro_auroc"] == pytest.approx(res.best_score)
    assert res.precision == "bf16" and res.stop_reason == "completed"
    state = json.loads((tmp_path / "run" / "train_state.json").read_text())
    assert state["records_trained"] == 6 * 256  # 8 full batches of 32 per epoch, nothing dropped or repeated
    assert res.records_per_s == pytest.approx(state["records_trained"] / state["train_step_seconds"], rel=1e-12)
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "val_macro_auroc", "lr"} <= set(header)
    cfg_json = json.loads((run / "config.json").read_text())
    assert cfg_json["best_epoch"] == res.best_epoch and cfg_json["status"] == "finished"
    assert cfg_json["train"] == cfg.to_dict() and cfg_json["model"]["depth"] == 2
    assert len(cfg_json["thresholds"]) == 4 and cfg_json["thresholds_source"] == "val"
    # The best checkpoint reproduces the best epoch's validation: evaluated as the trainer does (bf16 autocast,
    # batches of 32) its AUROC, loss and validation-tuned thresholds are the recorded ones, exactly.
    from ecgscale.metrics import compute_metrics, tune_thresholds
    from ecgscale.train.data import as_source
    from ecgscale.train.trainer import predict_logits

    loaded = load_run(run)
    xv, yv = planted_data[1]
    logits = predict_logits(
        loaded.model, as_source((xv, yv)), batch_size=32, device=torch.device("cpu"), amp_dtype=torch.bfloat16
    )
    probs = expit(logits.astype(np.float64)).astype(np.float32)  # the trainer's float32 probabilities
    best = res.history[res.best_epoch - 1]
    assert compute_metrics(yv, probs)["macro_auroc"] == best["val_macro_auroc"] == res.best_score
    assert max(h["val_macro_auroc"] for h in res.history) == res.best_score
    pos_weight = pos_weight_from_labels(planted_data[0][1], cfg.pos_weight_max)
    val_loss = float(nn.BCEWithLogitsLoss(pos_weight=pos_weight)(torch.from_numpy(logits), torch.from_numpy(yv)))
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-6)
    assert tune_thresholds(yv, probs) == pytest.approx(cfg_json["thresholds"], abs=1e-12)


def test_same_seed_same_metrics_different_seed_different(planted, planted_data):
    cfg = TrainConfig(**{**FAST.to_dict(), "epochs": 2})
    a = _fit(planted, planted_data, cfg)
    b = _fit(planted, planted_data, cfg)
    c = _fit(planted, planted_data, TrainConfig(**{**cfg.to_dict(), "seed": 1}))
    strip = [{k: v for k, v in h.items() if "seconds" not in k and k != "records_per_s"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if "seconds" not in k and k != "records_per_s"} for h in b.history]
    assert a.history[-1]["train_loss"] != c.history[-1]["train_loss"]


class ConstantModel(nn.Module):
    """Predicts the same logits for every record, so AUROC is 0.5 at every epoch: nothing ever improves."""

    def __init__(self, k: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(k))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0.0 * x.mean()


def test_early_stopping_after_patience(planted, planted_data):
    cfg = TrainConfig(epochs=10, batch_size=64, lr=1e-2, precision="fp32", patience=2, checkpoint_every=0)
    res = _fit(planted, planted_data, cfg, model=ConstantModel(4))
    assert res.stop_reason == "early_stopping"
    assert len(res.history) == 3 and res.best_epoch == 1
    assert [h["improved"] for h in res.history] == [True, False, False]


class Stop(Exception):
    pass


class NaNAfter(nn.Module):
    """Wraps a model; from the ``n``-th training forward on, its logits are NaN (a simulated divergence), or with
    ``crash=True`` that forward raises ``Stop`` instead (the same run cut at the same point without a NaN)."""

    def __init__(self, inner: nn.Module, n: int, crash: bool = False):
        super().__init__()
        self.inner = inner
        self.n = n
        self.crash = crash
        self.calls = 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                if self.crash:
                    raise Stop
                out = out * float("nan")
        return out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(planted, planted_data, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, precision="fp32", patience=None, checkpoint_every=2)
    model = NaNAfter(planted.tiny_resnet(), n=12)  # 8 steps per epoch: NaN at epoch 2, step 4
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 2, step 4") as err:
        _fit(planted, planted_data, cfg, model=model, out_dir=tmp_path / "run")
    assert err.value.epoch == 2 and err.value.step == 4
    run = tmp_path / "run"
    weights, meta = load_weights(run / "model.safetensors")
    model_state, optim_state, state = load_resume_state(run / "last.safetensors")
    assert meta["epoch"] == "1" and (state["epoch"], state["step"]) == (1, 2)  # the mid-epoch checkpoint
    assert json.loads((run / "train_state.json").read_text())["status"] == "diverged"
    # The kept checkpoints are the good ones, bit for bit: the same run cut by an exception at that same forward
    # (no NaN ever computed) leaves identical best weights and resume state.
    with pytest.raises(Stop):
        _fit(
            planted, planted_data, cfg, model=NaNAfter(planted.tiny_resnet(), n=12, crash=True), out_dir=tmp_path / "c"
        )
    clean_weights, _ = load_weights(tmp_path / "c" / "model.safetensors")
    clean_state, clean_optim, clean_train_state = load_resume_state(tmp_path / "c" / "last.safetensors")
    assert weights.keys() == clean_weights.keys() and model_state.keys() == clean_state.keys()
    assert all(torch.equal(weights[k], clean_weights[k]) for k in weights)
    assert all(torch.equal(model_state[k], clean_state[k]) for k in model_state)
    assert all(
        torch.equal(optim_state["state"][i][k], v) for i, st in clean_optim["state"].items() for k, v in st.items()
    )
    assert (clean_train_state["epoch"], clean_train_state["step"]) == (1, 2)


def test_thresholds_are_tuned_on_validation_only(planted, planted_data, tmp_path, monkeypatch):
    import ecgscale.metrics as metrics

    seen = []
    real = metrics.tune_thresholds

    def spy(y_true, y_prob, **kw):
        seen.append(np.asarray(y_true).copy())
        return real(y_true, y_prob, **kw)

    monkeypatch.setattr(metrics, "tune_thresholds", spy)
    res = _fit(planted, planted_data, TrainConfig(**{**FAST.to_dict(), "epochs": 2}), out_dir=tmp_path / "run")
    y_val = planted_data[1][1]
    assert len(seen) == 2 and all(np.array_equal(s, y_val) for s in seen)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["thresholds"]
    assert saved == res.thresholds and len(saved) == 4 and saved != [0.5] * 4


def test_bad_inputs_fail_before_training(planted, planted_data, tmp_path):
    (xt, yt), (xv, yv) = planted_data
    from ecgscale.models import build_resnet1d

    with pytest.raises(ConfigError, match=r"model\.n_classes"):  # a 5-class model on 4 labels
        Trainer(
            build_resnet1d(2, 8, 5, n_classes=5),
            planted.space(),
            FAST,
            train_data=(xt, yt),
            val_data=(xv, yv),
            progress=False,
        ).fit()
    no_gap = build_resnet1d(2, 8, 5, gap=False, n_classes=4, input_length=1000)
    with pytest.raises(ConfigError, match="input_length=1000"):
        Trainer(no_gap, planted.space(), FAST, train_data=(xt, yt), val_data=(xv, yv), progress=False).fit()
    with pytest.raises(ConfigError, match="CinC 2021"):
        Trainer(
            planted.tiny_resnet(),
            planted.space(),
            TrainConfig(monitor="challenge"),
            train_data=(xt, yt),
            val_data=(xv, yv),
            progress=False,
        ).fit()
    _fit(planted, planted_data, TrainConfig(**{**FAST.to_dict(), "epochs": 1}), out_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="already holds a run"):
        _fit(planted, planted_data, FAST, out_dir=tmp_path / "r")


def test_pos_weight_from_labels_is_clipped():
    y = np.zeros((100, 3))
    y[:50, 0] = 1  # 1:1 -> 1
    y[:2, 1] = 1  # 98:2 -> 49 -> clipped to 10
    w = pos_weight_from_labels(y, 10.0)  # class 2 has no positives -> 1
    assert w.tolist() == [1.0, 10.0, 1.0]


def test_time_budget_stops_after_one_step(planted, planted_data):
    cfg = TrainConfig(epochs=5, batch_size=32, precision="fp32", max_minutes=1e-9, checkpoint_every=0)
    res = _fit(planted, planted_data, cfg)
    assert res.stop_reason == "time_budget" and len(res.history) == 1
    assert res.history[0]["records_per_s"] == pytest.approx(32 / res.history[0]["epoch_seconds"], rel=1e-12)  # 1 step


def test_tensorboard_scalars_or_a_clear_message(planted, planted_data, tmp_path, caplog):
    import importlib.util
    import logging

    cfg = TrainConfig(epochs=1, batch_size=64, precision="fp32", checkpoint_every=0, tensorboard=True)
    with caplog.at_level(logging.WARNING, logger="ecgscale.train.trainer"):
        res = _fit(planted, planted_data, cfg, out_dir=tmp_path / "run")
    assert len(res.history) == 1  # training goes on either way
    if importlib.util.find_spec("tensorboard") is None:
        assert "pip install tensorboard" in caplog.text
    else:
        assert any((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
