"""TrainConfig validation and round trip, and the learning-rate schedules."""

from __future__ import annotations

import itertools

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
    values = [f(s) for s in range(20)]
    assert values[0] < values[1] < values[3] < values[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[4:]))
    assert values[-1] < 0.05


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
    assert max(lrs) == pytest.approx(1e-2, rel=1e-3)
    assert lrs[0] < 1e-2 / 5 and lrs[-1] < 1e-2 / 10
    assert 8 <= lrs.index(max(lrs)) <= 11  # the peak sits at the end of the one-epoch warm-up
