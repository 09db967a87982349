"""Receptive field and cost: the analytic layer walk against empirical measurements."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ecgscale.errors import ConfigError
from ecgscale.models import ReceptiveField, ResNet1dConfig, build_resnet1d, cost, receptive_field
from ecgscale.models.resnet1d import _MaxPool1d


class _AvgPool1d(torch.nn.AvgPool1d):
    """Average pool that also runs on the model's (N, C, 1, L) channels-last trunk."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return torch.nn.functional.avg_pool2d(x, (1, 3), (1, 2), (0, 1))
        return super().forward(x)


def _positive_weights(model: torch.nn.Module) -> None:
    """Make every path carry a positive signal so no gradient is exactly cancelled (or cut by ReLU)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv1d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen, dtype=m.weight.dtype) * 0.9 + 0.1)
            elif isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(1.0)
                m.bias.fill_(0.5)


def _empirical_span(model: torch.nn.Module, n: int, position: int) -> tuple[int, int]:
    x = torch.ones(1, 12, n, dtype=torch.float64, requires_grad=True)
    feats = model.forward_features(x)
    feats[0, 0, position].backward()
    nonzero = torch.nonzero(x.grad[0].abs().sum(0)).flatten()
    return int(nonzero.min()), int(nonzero.max())


@pytest.mark.parametrize(
    ("depth", "kernel", "options"),
    [
        (1, 3, {}),
        (2, 5, {}),
        (2, 1, {}),
        (4, 9, {"stem_pool": True}),
        (8, 9, {}),
        (3, 7, {"strides": (2, 1, 3), "stem_stride": 1, "stem_kernel": 5}),
        (5, 3, {"blocks_per_stage": 1, "max_downsamples": 4, "channel_growth": "double"}),
        (16, 3, {}),
    ],
)
@pytest.mark.parametrize("layout", ["cl", "ncl"])
def test_analytic_receptive_field_equals_gradient_span(depth: int, kernel: int, options: dict, layout: str) -> None:
    model = build_resnet1d(depth, 4, kernel, generator=0, layout=layout, **options).double().eval()
    if options.get("stem_pool"):
        # max pooling routes the gradient to one arg-max per window, so the gradient cannot show its span;
        # an average pool with the same geometry does (the walk reads kernel/stride/padding either way)
        assert isinstance(model.stem[-1], _MaxPool1d)
        model.stem[-1] = _AvgPool1d(3, 2, 1)
    _positive_weights(model)
    rf = receptive_field(model, fs=250)
    n = rf.samples + 4 * rf.jump + 64
    length = model.forward_features(torch.zeros(1, 12, n, dtype=torch.float64)).shape[-1]
    for position in {length // 2, 0, length - 1}:
        lo, hi = rf.span(position)
        assert _empirical_span(model, n, position) == (max(lo, 0), min(hi, n - 1)), position
    assert rf.seconds == pytest.approx(rf.samples / 250)
    assert rf.jump == n // length or abs(rf.jump * length - n) < rf.jump


def test_receptive_field_from_config_equals_model_and_grows_with_depth_and_kernel() -> None:
    cfg = ResNet1dConfig(depth=8, channels=256, kernel_size=9)  # built on the meta device: no memory
    rf = receptive_field(cfg, fs=250)
    assert rf == receptive_field(build_resnet1d(8, 4, 9, generator=0), fs=250)
    assert receptive_field(cfg.to_dict()) == ReceptiveField(rf.samples, None, rf.jump, rf.start)
    assert receptive_field(ResNet1dConfig(depth=16, channels=8, kernel_size=9)).samples > rf.samples
    assert receptive_field(ResNet1dConfig(depth=8, channels=8, kernel_size=17)).samples > rf.samples
    # width does not change the field
    assert receptive_field(ResNet1dConfig(depth=8, channels=16, kernel_size=9)) == receptive_field(cfg)
    with pytest.raises(ConfigError, match="fs"):
        receptive_field(cfg, fs=0)


@pytest.mark.parametrize(
    ("depth", "channels", "kernel", "options", "n"),
    [
        (1, 8, 3, {}, 500),
        (4, 16, 9, {"channel_growth": "double", "stem_pool": True}, 777),
        (3, 8, 5, {"gap": False, "input_length": 600, "strides": (1, 2, 3)}, 600),
        (8, 32, 17, {"dropout": 0.3, "max_channels": 64, "channel_growth": "double"}, 2500),
    ],
)
def test_cost_matches_flop_counter_and_parameter_count(
    depth: int, channels: int, kernel: int, options: dict, n: int
) -> None:
    model = build_resnet1d(depth, channels, kernel, generator=0, **options).eval()
    result = cost(model, n)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 12, n))
    # FlopCounterMode counts convolutions and matmuls (2 per MAC), not batch norm
    assert counter.get_total_flops() == 2 * (result.breakdown["conv"] + result.breakdown["linear"])
    assert result.params == sum(p.numel() for p in model.parameters())
    assert result.flops == 2 * result.macs == 2 * sum(result.breakdown.values())
    bn_elems = 0
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: _add(out))
        for m in model.modules()
        if isinstance(m, torch.nn.BatchNorm1d)
    ]
    seen: list[int] = []

    def _add(out: torch.Tensor) -> None:
        seen.append(out.numel())

    with torch.no_grad():
        model(torch.randn(1, 12, n))
    for h in hooks:
        h.remove()
    bn_elems = sum(seen)
    assert result.breakdown["norm"] == bn_elems
    assert cost(model.config, n) == result


def test_cost_scales_as_expected_and_validates_length() -> None:
    base = cost(ResNet1dConfig(depth=4, channels=64, kernel_size=9), 2500)
    wide = cost(ResNet1dConfig(depth=4, channels=128, kernel_size=9), 2500)
    assert 3.5 < wide.breakdown["conv"] / base.breakdown["conv"] < 4.0  # ~C^2 (the stem is linear in C)
    longer = cost(ResNet1dConfig(depth=4, channels=64, kernel_size=9), 5000)
    assert longer.breakdown["conv"] == pytest.approx(2 * base.breakdown["conv"], rel=0.01)
    assert longer.params == base.params
    fixed = ResNet1dConfig(depth=2, channels=8, kernel_size=3, gap=False, input_length=500)
    assert cost(fixed) == cost(fixed, 500)
    with pytest.raises(ConfigError, match="n_samples"):
        cost(fixed, 501)
    with pytest.raises(ConfigError, match="n_samples"):
        cost(ResNet1dConfig(depth=2, channels=8, kernel_size=3))
    with pytest.raises(ConfigError, match="kernel_size=33"):
        cost(ResNet1dConfig(depth=16, channels=8, kernel_size=33), 200)


def test_walk_follows_sync_batchnorm_conversion() -> None:
    model = build_resnet1d(2, 8, 3, generator=0)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(build_resnet1d(2, 8, 3, generator=0))
    assert isinstance(synced.stem[1], torch.nn.SyncBatchNorm)
    assert cost(synced, 500) == cost(model, 500)
    assert receptive_field(synced) == receptive_field(model)
    assert synced.state_dict().keys() == model.state_dict().keys()


def test_walk_refuses_layers_it_does_not_understand() -> None:
    model = build_resnet1d(2, 4, 3, generator=0)
    model.stem[1] = torch.nn.Conv2d(4, 4, 1)
    with pytest.raises(TypeError, match="Conv2d"):
        receptive_field(model)
    with pytest.raises(TypeError, match="Conv2d"):
        cost(model, 500)
