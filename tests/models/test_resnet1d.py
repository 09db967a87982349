"""ResNet1d: shapes, layouts, configs, errors, initialisation and heads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from ecgscale.errors import ConfigError
from ecgscale.models import BasicBlock1d, ResNet1d, ResNet1dConfig, build_resnet1d


@pytest.mark.parametrize("depth", [1, 2, 5, 16])
@pytest.mark.parametrize("kernel_size", [1, 3, 33])
@pytest.mark.parametrize("gap", [True, False])
def test_shapes_over_grid(depth: int, kernel_size: int, gap: bool) -> None:
    n = 500  # the tiny-cache window (100 Hz x 5 s): even D=16, K=33 must be valid on it
    for channels in (4, 8):
        model = build_resnet1d(
            depth, channels, kernel_size, gap=gap, n_classes=5, generator=0, input_length=None if gap else n
        )
        x = torch.randn(2, 12, n)
        feats = model.forward_features(x)
        final = model.config.feature_lengths(n)[f"block{depth - 1}"]
        assert feats.shape == (2, model.config.out_channels, final)
        assert model.validate_input_length(n) == final
        logits = model.forward_head(feats)
        assert logits.shape == (2, 5)
        assert torch.isfinite(logits).all()


def test_gap_model_accepts_any_valid_length_no_gap_only_its_own() -> None:
    gap = build_resnet1d(4, 8, 9, generator=0)
    for n in (500, 777, 2500):
        assert gap(torch.randn(1, 12, n)).shape == (1, 26)
    fixed = build_resnet1d(4, 8, 9, gap=False, input_length=600, generator=0)
    assert fixed(torch.randn(3, 12, 600)).shape == (3, 26)
    # head size follows the final feature map: C_out x L_out
    assert fixed.head.in_features == 8 * fixed.config.feature_lengths(600)["block3"]
    with pytest.raises(ConfigError, match=r"n_samples.*input_length=600.*601"):
        fixed.validate_input_length(601)
    with pytest.raises(ConfigError, match="n_samples"):
        fixed(torch.randn(1, 12, 601))


def test_schedule_downsamples_first_block_of_stages_and_caps() -> None:
    cfg = ResNet1dConfig(depth=16, channels=8, kernel_size=3)
    assert cfg.block_strides() == (1, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    model = ResNet1d(cfg)
    built = [b.conv1.stride[0] for stage in model.stages for b in stage]
    assert built == list(cfg.block_strides())
    assert len(model.stages) == 8
    double = ResNet1dConfig(depth=8, channels=16, kernel_size=3, channel_growth="double", max_channels=64)
    assert double.block_channels() == (16, 16, 32, 32, 64, 64, 64, 64)
    assert ResNet1d(double).head.in_features == 64
    custom = ResNet1dConfig(depth=3, channels=8, kernel_size=5, strides=(2, 1, 3))
    assert custom.feature_lengths(600) == {"stem": 300, "block0": 150, "block1": 150, "block2": 50}


def test_blocks_expose_structure_and_projection_only_when_needed() -> None:
    model = build_resnet1d(4, 8, 5, generator=0, channel_growth="double")
    blocks = [b for stage in model.stages for b in stage]
    assert all(isinstance(b, BasicBlock1d) for b in blocks)
    assert isinstance(blocks[0].shortcut, torch.nn.Identity)
    assert isinstance(blocks[2].shortcut, torch.nn.Sequential)  # stride 2 and 8 -> 16 channels
    assert blocks[2].shortcut[0].kernel_size == (1,) and blocks[2].shortcut[0].stride == (2,)
    assert [type(m).__name__ for m in blocks[0].residual_path()] == [
        "_Conv1d",
        "_BatchNorm1d",
        "ReLU",
        "Dropout",
        "_Conv1d",
        "_BatchNorm1d",
    ]
    assert all(b.conv1.kernel_size == (5,) and b.conv2.kernel_size == (5,) for b in blocks)


@pytest.mark.parametrize(
    "kwargs", [{}, {"gap": False, "input_length": 400, "stem_pool": True}, {"channel_growth": "double", "dropout": 0.2}]
)
def test_layouts_compute_the_same_function_with_one_state_dict(kwargs: dict) -> None:
    cl = build_resnet1d(3, 8, 7, generator=1, layout="cl", **kwargs).double().eval()
    ncl = build_resnet1d(3, 8, 7, generator=2, layout="ncl", **kwargs).double().eval()
    ncl.load_state_dict(cl.state_dict())
    x = torch.randn(2, 12, 400, dtype=torch.float64)
    torch.testing.assert_close(cl(x), ncl(x))
    torch.testing.assert_close(cl.forward_features(x), ncl.forward_features(x))
    # state dict is the plain Conv1d / BatchNorm1d one: 3-D conv weights, loadable into torch's own modules
    sd = cl.state_dict()
    assert sd["stem.0.weight"].shape == (8, 12, 15)
    plain = torch.nn.Conv1d(8, 8, 7, padding=3, bias=False)
    plain.load_state_dict({"weight": sd["stages.0.0.conv1.weight"]})


def test_bf16_autocast_training_step_reaches_every_parameter() -> None:
    model = build_resnet1d(2, 8, 5, n_classes=3, generator=0, dropout=0.1)
    x, y = torch.randn(4, 12, 500), torch.randint(0, 2, (4, 3)).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_compatible() -> None:
    model = build_resnet1d(2, 4, 3, gap=False, input_length=300, generator=0).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 12, 300)
    torch.testing.assert_close(scripted(x), model(x))


def test_config_round_trip_json() -> None:
    cfg = ResNet1dConfig(
        depth=3,
        channels=16,
        kernel_size=9,
        gap=False,
        input_length=1000,
        strides=(1, 2, 2),
        channel_growth="double",
        max_channels=32,
        dropout=0.1,
        n_classes=7,
        stem_pool=True,
    )
    back = ResNet1dConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.strides == (1, 2, 2)
    assert cfg.tag == "D3-C16-K9-noGAP"
    model = ResNet1d(back)
    assert model.config is back


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match="kernal_size"):
        ResNet1dConfig.from_dict({"depth": 2, "channels": 8, "kernal_size": 3})
    with pytest.raises(ConfigError, match="kernel_size"):
        ResNet1dConfig.from_dict({"depth": 2, "channels": 8})
    with pytest.raises(ConfigError, match="widht"):
        build_resnet1d(2, 8, 3, widht=4)


@pytest.mark.parametrize(
    ("kwargs", "key", "value"),
    [
        ({"depth": 0}, "depth", "0"),
        ({"depth": 2.5}, "depth", "2.5"),
        ({"channels": -4}, "channels", "-4"),
        ({"kernel_size": 4}, "kernel_size", "4"),
        ({"kernel_size": 0}, "kernel_size", "0"),
        ({"dropout": 1.0}, "dropout", "1.0"),
        ({"channel_growth": "triple"}, "channel_growth", "triple"),
        ({"stem_kernel": 8}, "stem_kernel", "8"),
        ({"strides": (2, 2)}, "strides", r"\(2, 2\)"),
        ({"strides": (1, 0, 1)}, r"strides\[1\]", "0"),
        ({"max_channels": 4}, "max_channels", "4"),
        ({"gap": False}, "input_length", "required"),
        ({"gap": "no"}, "gap", "'no'"),
    ],
)
def test_bad_options_name_parameter_and_value(kwargs: dict, key: str, value: str) -> None:
    base = {"depth": 3, "channels": 8, "kernel_size": 3}
    with pytest.raises(ConfigError, match=rf"{key}.*{value}"):
        ResNet1dConfig(**{**base, **kwargs})


def test_time_axis_collapse_is_refused_with_the_range() -> None:
    # 100 samples: stem -> 50, three stride-2 stages -> 7 < min_length 8
    with pytest.raises(ConfigError, match=r"depth.*100 samples to 7 time steps.*min_length=8"):
        ResNet1dConfig(depth=8, channels=4, kernel_size=3, input_length=100, min_length=8)
    # K=65 on a 32-step feature map: taps beyond +-31 never see the signal
    with pytest.raises(ConfigError, match=r"kernel_size=65.*allowed: odd kernel_size <= 63"):
        build_resnet1d(8, 4, 65, gap=False, input_length=500)
    cfg = ResNet1dConfig(depth=8, channels=4, kernel_size=65)  # fine until a length is given
    with pytest.raises(ConfigError, match="kernel_size=65"):
        cfg.validate_input_length(500)
    assert cfg.validate_input_length(5000) == 313
    with pytest.raises(ConfigError, match="n_samples"):
        cfg.validate_input_length(0)


def test_reset_head_keeps_features_and_updates_config() -> None:
    model = build_resnet1d(2, 8, 3, generator=0).eval()
    x = torch.randn(2, 12, 500)
    feats = model.forward_features(x)
    model.reset_head(4, generator=3)
    assert model(x).shape == (2, 4)
    assert model.config.n_classes == 4
    torch.testing.assert_close(model.forward_features(x), feats)
    other = build_resnet1d(2, 8, 3, generator=0)
    other.reset_head(4, generator=3)
    torch.testing.assert_close(other.head.weight, model.head.weight)
    fixed = build_resnet1d(2, 8, 3, gap=False, input_length=500, generator=0)
    fixed.reset_head(1)
    assert fixed(x).shape == (2, 1)
    with pytest.raises(ConfigError, match="n_outputs"):
        model.reset_head(0)


def test_initialisation_is_deterministic_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = build_resnet1d(3, 8, 5, generator=123)
    b = build_resnet1d(3, 8, 5, generator=torch.Generator().manual_seed(123))
    c = build_resnet1d(3, 8, 5, generator=124)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, pa), pb, pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if name.endswith("conv1.weight"):
            assert not torch.equal(pa, pc), name
    zero = build_resnet1d(2, 8, 3, generator=0, zero_init_residual=True)
    assert all(not b.bn2.weight.detach().any() for stage in zero.stages for b in stage)


def test_models_never_import_data() -> None:
    code = (
        "import sys, ecgscale.models, ecgscale.models.receptive; "
        "bad = [m for m in sys.modules if m.startswith('ecgscale.') and m.split('.')[1] "
        "not in ('models', 'config', 'errors')]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
