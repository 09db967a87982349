"""Receptive field and cost of a built ResNet1d, computed by walking the layers it actually contains.

Both walks read kernel, stride, dilation and padding from the modules themselves (never from a parallel
formula that could drift from the code), and refuse a module they do not understand rather than guessing.

Receptive field: a GAP model's output depends on the whole input, so what we report (and what "receptive
field" means in the scaling paper) is the field of ONE position of the last feature map: the span of input
samples that can influence it, ignoring clipping at the edges of the record.

Cost: multiply-accumulates of convolutions, the linear head and batch norm (one MAC per element: the
eval-mode affine), for one record of ``n_samples``; FLOPs = 2 x MACs. ReLU, dropout, the residual additions,
pooling and the global average are not counted (memory-bound, a few percent of the total).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ecgscale.errors import ConfigError
from ecgscale.models.resnet1d import ResNet1d, ResNet1dConfig

__all__ = ["Cost", "ReceptiveField", "cost", "receptive_field"]

# Layers that act on each time step independently: they leave the receptive field and the length unchanged.
_POINTWISE = (nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Dropout, nn.Identity)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True, slots=True)
class ReceptiveField:
    """Receptive field of one position of the last feature map.

    ``samples``: width of the input span that can influence it. ``seconds``: the same at ``fs`` (None without
    ``fs``). ``jump``: input samples between neighbouring feature-map positions (the total stride).
    ``start``: first input sample seen by position 0 (negative: that part of the field lies in the padding).
    """

    samples: int
    seconds: float | None
    jump: int
    start: int = 0

    def span(self, position: int) -> tuple[int, int]:
        """Inclusive input-sample interval seen by feature-map ``position`` (unclipped)."""
        lo = self.start + position * self.jump
        return lo, lo + self.samples - 1

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "seconds": self.seconds, "jump": self.jump, "start": self.start}


@dataclass(frozen=True, slots=True)
class Cost:
    """Parameters and forward cost for ONE record; multiply by the batch size, and by ~3 for training."""

    params: int
    flops: int
    macs: int
    breakdown: Mapping[str, int] = field(default_factory=dict)  # MACs by layer kind: conv, linear, norm

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "flops": self.flops, "macs": self.macs, "breakdown": dict(self.breakdown)}


def _as_model(model_or_config: ResNet1d | ResNet1dConfig | Mapping[str, Any]) -> ResNet1d:
    if isinstance(model_or_config, ResNet1d):
        return model_or_config
    if isinstance(model_or_config, Mapping):
        model_or_config = ResNet1dConfig.from_dict(model_or_config)
    if isinstance(model_or_config, ResNet1dConfig):
        # Parameters on the meta device: no memory and no initialisation, even for a D=64, C=1024 model.
        with torch.device("meta"):
            return ResNet1d(model_or_config)
    raise TypeError(f"expected a ResNet1d, ResNet1dConfig or config dict, got {type(model_or_config).__name__}")


def _feature_modules(model: ResNet1d) -> list[nn.Module]:
    # The order of ResNet1d.forward_features; the empirical gradient test in tests/models guards it.
    return [model.stem, model.stages]


def _geometry(m: nn.Module) -> tuple[int, int, int, int] | None:
    """(kernel, stride, padding, dilation) of a layer that slides over time; None for pointwise layers."""
    if isinstance(m, nn.Conv1d):
        k, s, d = m.kernel_size[0], m.stride[0], m.dilation[0]
        if not isinstance(m.padding, str):
            return k, s, m.padding[0], d
        return k, s, d * (k - 1) // 2 if m.padding == "same" else 0, d  # 'same' / 'valid'
    if isinstance(m, nn.MaxPool1d | nn.AvgPool1d):
        if getattr(m, "ceil_mode", False):
            raise TypeError(f"{type(m).__name__} with ceil_mode=True is not supported by the layer walk")

        def one(v: Any) -> int:
            return int(v[0] if isinstance(v, tuple) else v)

        stride = m.stride if m.stride is not None else m.kernel_size
        return one(m.kernel_size), one(stride), one(m.padding), one(getattr(m, "dilation", 1))
    if isinstance(m, _POINTWISE + _NORMS):
        return None
    raise TypeError(
        f"cannot walk a {type(m).__name__}: the receptive field / cost walk knows Conv1d, "
        f"pooling, norms, activations, dropout, Sequential and residual blocks"
    )


def _children(m: nn.Module) -> Iterable[nn.Module] | None:
    return m.children() if isinstance(m, nn.Sequential) else None


# -- receptive field ------------------------------------------------------------------------------------------


def _rf_walk(modules: Iterable[nn.Module], lo: int, hi: int, jump: int) -> tuple[int, int, int]:
    """Input interval [lo, hi] (relative to position 0) and jump, pushed through ``modules`` in order."""
    for m in modules:
        if hasattr(m, "residual_path"):  # residual block: union of the two branches' fields
            a = _rf_walk(m.residual_path(), lo, hi, jump)
            b = _rf_walk([m.shortcut], lo, hi, jump)
            if a[2] != b[2]:
                raise TypeError(f"{type(m).__name__}: branches have different strides ({a[2]} vs {b[2]})")
            lo, hi, jump = min(a[0], b[0]), max(a[1], b[1]), a[2]
            continue
        kids = _children(m)
        if kids is not None:
            lo, hi, jump = _rf_walk(kids, lo, hi, jump)
            continue
        geom = _geometry(m)
        if geom is None:
            continue
        k, s, p, d = geom
        # Output position 0 reads layer-input positions -p .. -p + (k-1)d; each is itself a field [lo, hi].
        lo, hi, jump = lo - p * jump, hi + (d * (k - 1) - p) * jump, jump * s
    return lo, hi, jump


def receptive_field(
    model_or_config: ResNet1d | ResNet1dConfig | Mapping[str, Any], fs: float | None = None
) -> ReceptiveField:
    """Receptive field of one position of the last feature map (``forward_features``), from the built layers.

    ``fs`` (Hz) adds the span in seconds. For a GAP model the logits see the whole input; this is the field
    of the features being averaged, which is what decides how local the learned patterns are.
    """
    if fs is not None and (isinstance(fs, bool) or not isinstance(fs, int | float) or not fs > 0):
        raise ConfigError(f"must be a positive sampling rate in Hz, got {fs!r}", key="fs")
    model = _as_model(model_or_config)
    lo, hi, jump = _rf_walk(_feature_modules(model), 0, 0, 1)
    samples = hi - lo + 1
    return ReceptiveField(samples=samples, seconds=None if fs is None else samples / float(fs), jump=jump, start=lo)


# -- cost -----------------------------------------------------------------------------------------------------


def _cost_walk(modules: Iterable[nn.Module], channels: int, length: int, acc: dict[str, int]) -> tuple[int, int]:
    """Accumulate params and MACs of ``modules`` for one record; return the output (channels, length)."""
    for m in modules:
        if hasattr(m, "residual_path"):
            a = _cost_walk(m.residual_path(), channels, length, acc)
            b = _cost_walk([m.shortcut], channels, length, acc)
            if a != b:
                raise TypeError(f"{type(m).__name__}: branch outputs differ ({a} vs {b})")
            channels, length = a
            continue
        kids = _children(m)
        if kids is not None:
            channels, length = _cost_walk(kids, channels, length, acc)
            continue
        if isinstance(m, nn.Conv1d):
            if m.in_channels != channels:
                raise TypeError(f"Conv1d expects {m.in_channels} channels, the walk has {channels}")
            k, s, p, d = _geometry(m)  # type: ignore[misc]
            length = (length + 2 * p - d * (k - 1) - 1) // s + 1
            per_out = (m.in_channels // m.groups) * k
            acc["conv"] += m.out_channels * length * per_out
            acc["params"] += m.out_channels * per_out + (m.out_channels if m.bias is not None else 0)
            channels = m.out_channels
        elif isinstance(m, nn.BatchNorm1d | nn.SyncBatchNorm):  # DDP may convert BN to SyncBatchNorm
            acc["norm"] += channels * length
            acc["params"] += 2 * m.num_features if m.affine else 0
        elif isinstance(m, nn.MaxPool1d | nn.AvgPool1d):
            k, s, p, d = _geometry(m)  # type: ignore[misc]
            length = (length + 2 * p - d * (k - 1) - 1) // s + 1
        elif _geometry(m) is None and not any(True for _ in m.parameters(recurse=False)):
            continue  # activation / dropout / identity
        else:
            raise TypeError(f"cannot count the cost of a {type(m).__name__}")
    return channels, length


def cost(model_or_config: ResNet1d | ResNet1dConfig | Mapping[str, Any], n_samples: int | None = None) -> Cost:
    """Parameters and forward MACs/FLOPs of one record of ``n_samples`` (default: the config's input_length).

    Training costs about 3x the forward FLOPs (backward = grad w.r.t. activations + w.r.t. weights).
    """
    model = _as_model(model_or_config)
    config = model.config
    if n_samples is None:
        if config.input_length is None:
            raise ConfigError("is required for a model without a fixed input_length", key="n_samples")
        n_samples = config.input_length
    config.validate_input_length(n_samples)
    acc = {"conv": 0, "linear": 0, "norm": 0, "params": 0}
    channels, length = _cost_walk(_feature_modules(model), config.n_leads, n_samples, acc)
    head = model.head
    in_features = channels if config.gap else channels * length
    if head.in_features != in_features:
        raise TypeError(f"head expects {head.in_features} features, the walk gives {in_features}")
    acc["linear"] += head.in_features * head.out_features
    acc["params"] += head.in_features * head.out_features + (head.out_features if head.bias is not None else 0)
    macs = acc["conv"] + acc["linear"] + acc["norm"]
    breakdown = {k: acc[k] for k in ("conv", "linear", "norm")}
    return Cost(params=acc["params"], flops=2 * macs, macs=macs, breakdown=breakdown)
