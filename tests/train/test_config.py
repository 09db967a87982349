"""TrainConfig validation and round trip, and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from ecgscale.errors import ConfigError
from ecgscale.train import TrainConfig
from ecgscale.train.schedule import WarmupCosine, build_scheduler


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", 0),
        ("batch_size", 1.5),
        ("lr", -1.0),
        ("lr", float("nan")),
        ("schedule", "step"),
        ("monitor", "accuracy"),
        ("precision", "int8"),
        ("device", "tpu"),
        ("patience", 0),
        ("grad_clip", 0.0),
        ("pos_weight", "yes"),
        ("max_minutes", -5),
        ("optimizer", "sgd"),
        ("seed", -1),
    ],
)
def test_invalid_values_name_the_field(key, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{key: value})
    assert f"train.{key}" in str(err.value)
    assert repr(value) in str(err.value)


def test_round_trip_and_unknown_keys():
    cfg = TrainConfig(epochs=3, lr=1e-4, schedule="onecycle", patience=None, max_minutes=2.5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown training key"):
        TrainConfig.from_dict({**cfg.to_dict(), "learning_rate": 1.0})
    assert TrainConfig(monitor="val_loss").maximize is False


def test_warmup_cosine_shape():
    f = WarmupCosine(warmup_steps=4, total_steps=20, final=0.0)
    values = [f(s) for s in range(21)]
    # linear warm-up 1/5 .. 4/5, then half a cosine from 1 at step 4 to 0 at step 20
    expected = [0.2, 0.4, 0.6, 0.8] + [0.5 * (1 + math.cos(math.pi * (s - 4) / 16)) for s in range(4, 21)]
    assert values == pytest.approx(expected, abs=1e-15)
    g = WarmupCosine(warmup_steps=0, total_steps=10, final=0.1)
    assert [g(s) for s in (0, 5, 10, 15)] == pytest.approx([1.0, 0.55, 0.1, 0.1], abs=1e-15)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_scheduler_runs_all_steps_and_peaks_at_lr(schedule):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-2)
    sched = build_scheduler(opt, TrainConfig(epochs=3, lr=1e-2, schedule=schedule, warmup_epochs=1), 10)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    if schedule == "cosine":  # warm-up over 10 steps to lr, then cosine to 1 % of lr at step 30
        expected = [1e-2 * (s + 1) / 11 for s in range(10)]
        expected += [1e-2 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 20))) for s in range(10, 30)]
    else:  # one-cycle: cosine from lr/25 up to lr over the first third (peak at step 9), then down to lr/25e4
        lo, hi, end = 1e-2 / 25, 1e-2, 1e-2 / 25 / 1e4
        expected = [hi + (lo - hi) / 2 * (1 + math.cos(math.pi * s / 9)) for s in range(10)]
        expected += [end + (hi - end) / 2 * (1 + math.cos(math.pi * (s - 9) / 20)) for s in range(10, 30)]
    assert lrs == pytest.approx(expected, rel=1e-9)
