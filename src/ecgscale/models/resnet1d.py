"""The scalable 1-D ResNet: depth D (residual blocks), width C (channels) and kernel K are the three knobs.

Layout (see ``docs/architecture.md`` for the diagram)::

    x (batch, n_leads, n_samples)
    stem:    Conv1d(n_leads, C, stem_kernel, stride=stem_stride) - BN - ReLU [- MaxPool1d(3, 2)]
    stages:  D basic blocks, ``blocks_per_stage`` per stage; the first block of stages 1..max_downsamples
             has stride 2 (time axis halved), later stages keep the length; width C everywhere
             (``channel_growth="constant"``) or doubled at each downsampling stage (``"double"``, capped)
    head:    GAP + Linear (any input length), or flatten + Linear (no GAP: fixed ``input_length``)

Every residual convolution has kernel K with 'same' padding K // 2, so K must be odd: an even kernel cannot be
padded symmetrically and would shift the feature map by half a sample per layer.

Speed: on CPU under bf16 autocast the model runs its trunk as ``(batch, C, 1, L)`` channels-last tensors through
``conv2d`` with a ``(1, K)`` view of each ``Conv1d`` weight (``ResNet1d.layout = "cl"``); the modules, their
parameters and the state dict are plain ``nn.Conv1d``/``nn.BatchNorm1d`` ones, so weights load into either layout
and into any code expecting a Conv1d ResNet. ``layout="ncl"`` runs ordinary ``Conv1d`` calls.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ecgscale.config import reject_unknown_keys
from ecgscale.errors import ConfigError

__all__ = [
    "BasicBlock1d",
    "ResNet1d",
    "ResNet1dConfig",
    "build_resnet1d",
]

ChannelGrowth = Literal["constant", "double"]
Layout = Literal["ncl", "cl"]
_GROWTHS = ("constant", "double")
_LAYOUTS = ("ncl", "cl")


def _check_int(key: str, value: Any, *, low: int, odd: bool = False, why: str = "") -> None:
    """One gate for integer options, so every message names the option, the value and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer >= {low}{why}, got {value!r} ({type(value).__name__})", key=key)
    if value < low or (odd and value % 2 == 0):
        allowed = f"an odd integer >= {low}" if odd else f"an integer >= {low}"
        raise ConfigError(f"must be {allowed}{why}, got {value}", key=key)


@dataclass(frozen=True, slots=True)
class ResNet1dConfig:
    """Everything that determines the architecture; saved with every run and rebuilt with ``ResNet1d(config)``.

    ``strides`` (one entry per block) overrides the stage schedule when given. ``input_length`` is required
    without GAP (the flattened head has a fixed size) and, when set, is checked at construction time.
    ``min_length`` is the shortest final feature map accepted by :meth:`validate_input_length`.
    """

    depth: int
    channels: int
    kernel_size: int
    gap: bool = True
    n_leads: int = 12
    n_classes: int = 26
    dropout: float = 0.0
    stem_kernel: int = 15
    stem_stride: int = 2
    stem_pool: bool = False
    blocks_per_stage: int = 2
    max_downsamples: int = 3
    strides: tuple[int, ...] | None = None
    channel_growth: ChannelGrowth = "constant"
    max_channels: int | None = None
    input_length: int | None = None
    min_length: int = 4
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        _check_int("depth", self.depth, low=1)
        _check_int("channels", self.channels, low=1)
        _check_int("kernel_size", self.kernel_size, low=1, odd=True, why=" (odd for symmetric 'same' padding)")
        _check_int("n_leads", self.n_leads, low=1)
        _check_int("n_classes", self.n_classes, low=1)
        _check_int("stem_kernel", self.stem_kernel, low=1, odd=True, why=" (odd for symmetric 'same' padding)")
        _check_int("stem_stride", self.stem_stride, low=1)
        _check_int("blocks_per_stage", self.blocks_per_stage, low=1)
        _check_int("max_downsamples", self.max_downsamples, low=0)
        _check_int("min_length", self.min_length, low=1)
        for key in ("gap", "stem_pool", "zero_init_residual"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"must be true or false, got {getattr(self, key)!r}", key=key)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConfigError(f"must be a number in [0, 1), got {self.dropout!r}", key="dropout")
        if self.channel_growth not in _GROWTHS:
            raise ConfigError(
                f"must be one of {', '.join(_GROWTHS)}, got {self.channel_growth!r}", key="channel_growth"
            )
        if self.max_channels is not None:
            _check_int("max_channels", self.max_channels, low=self.channels, why=" (at least channels)")
        if self.strides is not None:
            if isinstance(self.strides, list):  # from JSON
                object.__setattr__(self, "strides", tuple(self.strides))
            if not isinstance(self.strides, tuple) or len(self.strides) != self.depth:
                raise ConfigError(
                    f"must list one stride per block ({self.depth} for depth={self.depth}), got {self.strides!r}",
                    key="strides",
                )
            for i, s in enumerate(self.strides):
                _check_int(f"strides[{i}]", s, low=1)
        if self.input_length is not None:
            _check_int("input_length", self.input_length, low=1)
        elif not self.gap:
            raise ConfigError(
                "is required when gap=false (the flatten + linear head has a fixed size); "
                "pass the window length in samples, e.g. input_length=2500",
                key="input_length",
            )
        if self.input_length is not None:
            self.validate_input_length(self.input_length)

    # -- schedule ---------------------------------------------------------------------------------------------

    def block_strides(self) -> tuple[int, ...]:
        """Stride of each block: 2 at the first block of stages 1..max_downsamples, else 1 (or ``strides``)."""
        if self.strides is not None:
            return self.strides
        out = []
        for i in range(self.depth):
            stage, first = divmod(i, self.blocks_per_stage)
            out.append(2 if first == 0 and 1 <= stage <= self.max_downsamples else 1)
        return tuple(out)

    def block_channels(self) -> tuple[int, ...]:
        """Output width of each block: C, or doubled at every downsampling block (capped at ``max_channels``)."""
        width, out = self.channels, []
        cap = self.max_channels if self.max_channels is not None else math.inf
        for stride in self.block_strides():
            if self.channel_growth == "double" and stride > 1:
                width = int(min(width * 2, cap))
            out.append(width)
        return tuple(out)

    @property
    def out_channels(self) -> int:
        """Width of the last feature map (what the head sees per time step)."""
        return self.block_channels()[-1]

    def feature_lengths(self, n_samples: int) -> dict[str, int]:
        """Time length after the stem and after each block, for an input of ``n_samples``."""
        lengths: dict[str, int] = {}
        n = _conv_out(n_samples, self.stem_kernel, self.stem_stride, self.stem_kernel // 2)
        if self.stem_pool:
            n = _conv_out(n, 3, 2, 1)
        lengths["stem"] = n
        for i, s in enumerate(self.block_strides()):
            n = _conv_out(n, self.kernel_size, s, self.kernel_size // 2)
            lengths[f"block{i}"] = n
        return lengths

    def validate_input_length(self, n_samples: int) -> int:
        """Raise ``ConfigError`` unless the model can run on ``n_samples``; return the final feature length.

        Checked: the final time axis keeps at least ``min_length`` steps, every kernel tap can reach the
        signal (K <= 2 * length - 1 at every convolution), and a no-GAP model sees exactly ``input_length``.
        Called by the config itself when ``input_length`` is set, and by the trainer before training.
        """
        _check_int("n_samples", n_samples, low=1)
        if not self.gap and self.input_length is not None and n_samples != self.input_length:
            raise ConfigError(
                f"a no-GAP model built for input_length={self.input_length} samples cannot take "
                f"{n_samples} samples (the flatten + linear head has a fixed size)",
                key="n_samples",
            )
        lengths = self.feature_lengths(n_samples)
        final = lengths[f"block{self.depth - 1}"]
        if n_samples < self.stem_kernel // 2 + 1:
            raise ConfigError(
                f"stem_kernel={self.stem_kernel} is wider than 2 x {n_samples} - 1 samples of "
                f"input: use a smaller stem_kernel or longer input",
                key="stem_kernel",
            )
        seen = lengths["stem"]
        for i, s in enumerate(self.block_strides()):
            if self.kernel_size > 2 * seen - 1:
                raise ConfigError(
                    f"kernel_size={self.kernel_size} is too large for depth={self.depth} on {n_samples} samples: "
                    f"block {i} sees {seen} time steps, so kernel taps beyond +-{seen - 1} never touch the signal "
                    f"(allowed: odd kernel_size <= {2 * seen - 1} here; use a smaller kernel, fewer downsamplings "
                    f"(max_downsamples) or longer input)",
                    key="kernel_size",
                )
            seen = _conv_out(seen, self.kernel_size, s, self.kernel_size // 2)
        if final < self.min_length:
            n_down = sum(1 for s in self.block_strides() if s > 1)
            raise ConfigError(
                f"depth={self.depth} with {n_down} downsampling blocks (max_downsamples={self.max_downsamples}, "
                f"stem_stride={self.stem_stride}) reduces {n_samples} samples to {final} time steps; at least "
                f"min_length={self.min_length} are needed (use longer input, fewer downsamplings or a smaller "
                f"stem_stride)",
                key="depth",
            )
        return final

    # -- serialisation ----------------------------------------------------------------------------------------

    @property
    def tag(self) -> str:
        """Short human name, e.g. ``D8-C64-K9`` or ``D8-C64-K9-noGAP``."""
        return f"D{self.depth}-C{self.channels}-K{self.kernel_size}" + ("" if self.gap else "-noGAP")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["strides"] is not None:
            out["strides"] = list(out["strides"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResNet1dConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not silently become a default)."""
        _reject_unknown_options(data)
        missing = [k for k in ("depth", "channels", "kernel_size") if k not in data]
        if missing:
            raise ConfigError("is required in a model config", key=missing[0])
        values = dict(data)
        if isinstance(values.get("strides"), list):
            values["strides"] = tuple(values["strides"])
        return cls(**values)


def _conv_out(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# -- layers ---------------------------------------------------------------------------------------------------


class _Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters and state dict) that also runs on ``(N, C, 1, L)`` tensors.

    The 4-D path calls ``conv2d`` with a ``(1, K)`` view of the weight; with channels-last tensors oneDNN then
    keeps activations in one layout across the whole trunk instead of reordering around every convolution.

    A strided 1x1 convolution (the downsampling shortcut) is run as "keep every s-th sample, then a unit-stride
    1x1 convolution" -- the same function, with the same weights and gradients. Why: oneDNN's channels-last
    kernel for a 1x1 convolution with stride > 1 writes outside its buffers in training when the input has fewer
    channels than one SIMD register holds (< 8 on AVX2, < 16 on AVX-512), which corrupts the heap (SIGSEGV,
    glibc abort, hangs or silently wrong values). Isolated with plain ``F.conv2d`` on torch 2.13.0: every other
    shape the model uses (K > 1 strided, 1x1 unit-stride, the stem with 1-12 leads) is safe; see
    ``docs/architecture.md`` and ``tests/models/test_layout_crash_grid.py``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            stride = self.stride[0]
            if self.kernel_size[0] == 1 and stride > 1 and self.padding[0] == 0 and self.dilation[0] == 1:
                x = x[:, :, :, ::stride]
                stride = 1
            return F.conv2d(
                x,
                self.weight.unsqueeze(2),
                self.bias,
                (1, stride),
                (0, self.padding[0]),
                (1, self.dilation[0]),
                self.groups,
            )
        return self._conv_forward(x, self.weight, self.bias)


class _BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also accepts the ``(N, C, 1, L)`` trunk layout (normalisation is per channel)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input (got {input.dim()}-D input)")


class _MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` that also runs on the ``(N, C, 1, L)`` trunk layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.max_pool2d(
                x,
                (1, self.kernel_size),
                (1, self.stride),
                (0, self.padding),
                (1, self.dilation),
                ceil_mode=self.ceil_mode,
            )
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode)


class BasicBlock1d(nn.Module):
    """conv(K, stride) - BN - ReLU - dropout - conv(K) - BN, plus the shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 convolution (with the block's stride) + BN when the width or
    length changes. ``residual_path()`` and ``shortcut`` expose the structure so the receptive field and cost
    are computed from the layers actually built.
    """

    expansion: int = 1

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = _Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = _BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _Conv1d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.bn2 = _BatchNorm1d(out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                _Conv1d(in_channels, out_channels, 1, stride=stride, bias=False), _BatchNorm1d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def residual_path(self) -> list[nn.Module]:
        """The residual branch's layers in the order ``forward`` applies them."""
        return [self.conv1, self.bn1, self.relu, self.drop, self.conv2, self.bn2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


# -- model ----------------------------------------------------------------------------------------------------


class ResNet1d(nn.Module):
    """1-D ResNet for multi-label ECG classification: ``(batch, n_leads, n_samples)`` -> logits ``(batch, K)``.

    ``generator`` (a ``torch.Generator`` or an int seed) makes initialisation reproducible without touching
    the global RNG. ``layout`` is a run-time speed choice (``"cl"`` or ``"ncl"``), not part of the config: the
    parameters and outputs are the same in both.
    """

    def __init__(
        self, config: ResNet1dConfig, *, generator: torch.Generator | int | None = None, layout: Layout = "cl"
    ) -> None:
        super().__init__()
        if not isinstance(config, ResNet1dConfig):
            raise TypeError(f"config must be a ResNet1dConfig, got {type(config).__name__}")
        if layout not in _LAYOUTS:
            raise ConfigError(f"must be one of {', '.join(_LAYOUTS)}, got {layout!r}", key="layout")
        self.config = config
        self.layout: str = layout
        self._gap: bool = config.gap  # plain attributes keep forward TorchScript-compatible
        self._input_length: int = -1 if config.gap else int(config.input_length or -1)
        # torch's default layer init draws from the global RNG; with an injected generator that draw is
        # thrown away (overwritten in _init_weights), so fence it off to leave the caller's RNG untouched.
        with torch.random.fork_rng(devices=[], enabled=generator is not None):
            self._build(config)
        self._init_weights(generator)

    def _build(self, config: ResNet1dConfig) -> None:
        c = config.channels
        stem: list[nn.Module] = [
            _Conv1d(
                config.n_leads,
                c,
                config.stem_kernel,
                stride=config.stem_stride,
                padding=config.stem_kernel // 2,
                bias=False,
            ),
            _BatchNorm1d(c),
            nn.ReLU(inplace=True),
        ]
        if config.stem_pool:
            stem.append(_MaxPool1d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        self.stages = self._make_stages(config)
        self.head = self._make_head(config, config.n_classes)

    @staticmethod
    def _make_stage(in_channels: int, widths: list[int], strides: list[int], config: ResNet1dConfig) -> nn.Sequential:
        blocks = []
        for width, stride in zip(widths, strides, strict=True):
            blocks.append(BasicBlock1d(in_channels, width, config.kernel_size, stride=stride, dropout=config.dropout))
            in_channels = width
        return nn.Sequential(*blocks)

    def _make_stages(self, config: ResNet1dConfig) -> nn.Sequential:
        strides, widths = config.block_strides(), config.block_channels()
        stages, in_channels = [], config.channels
        for start in range(0, config.depth, config.blocks_per_stage):
            end = min(start + config.blocks_per_stage, config.depth)
            stages.append(self._make_stage(in_channels, list(widths[start:end]), list(strides[start:end]), config))
            in_channels = widths[end - 1]
        return nn.Sequential(*stages)

    @staticmethod
    def _make_head(config: ResNet1dConfig, n_outputs: int) -> nn.Linear:
        if config.gap:
            return nn.Linear(config.out_channels, n_outputs)
        if config.input_length is None:  # unreachable: ResNet1dConfig.__post_init__ requires it without GAP
            raise ConfigError("is required when gap=false", key="input_length")
        final = config.feature_lengths(config.input_length)[f"block{config.depth - 1}"]
        return nn.Linear(config.out_channels * final, n_outputs)

    def _init_weights(self, generator: torch.Generator | int | None) -> None:
        if next(self.parameters()).device.type == "meta":  # cost/RF on a config: nothing to initialise
            return
        gen = _as_generator(generator)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock1d):
                    nn.init.zeros_(m.bn2.weight)
        self._init_head(self.head, gen)

    @staticmethod
    def _init_head(head: nn.Linear, gen: torch.Generator | None) -> None:
        # Same distribution as nn.Linear's default, drawn from the injected generator.
        bound = 1.0 / math.sqrt(head.in_features)
        nn.init.uniform_(head.weight, -bound, bound, generator=gen)
        nn.init.uniform_(head.bias, -bound, bound, generator=gen)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_leads, n_samples)`` -> last feature map ``(batch, C_out, L_out)``."""
        if self.layout == "cl" and x.dim() == 3:
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            return self.stages(self.stem(x)).squeeze(2)
        return self.stages(self.stem(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Last feature map -> logits: global average over time, or flatten (no GAP)."""
        pooled = features.mean(dim=-1) if self._gap else features.flatten(1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._input_length > 0 and x.shape[-1] != self._input_length:
            if not torch.jit.is_scripting():
                raise ConfigError(
                    f"this no-GAP model takes exactly input_length={self._input_length} samples, got {x.shape[-1]}",
                    key="n_samples",
                )
            raise ValueError(f"n_samples: this no-GAP model takes exactly {self._input_length} samples")
        return self.forward_head(self.forward_features(x))

    def reset_head(self, n_outputs: int, *, generator: torch.Generator | int | None = None) -> None:
        """Replace the classifier with a fresh one for ``n_outputs`` classes (e.g. another label space)."""
        _check_int("n_outputs", n_outputs, low=1)
        device, dtype = self.head.weight.device, self.head.weight.dtype
        head = self._make_head(self.config, n_outputs).to(device=device, dtype=dtype)
        self._init_head(head, _as_generator(generator))
        self.head = head
        self.config = dataclasses.replace(self.config, n_classes=n_outputs)

    def validate_input_length(self, n_samples: int) -> int:
        """See :meth:`ResNet1dConfig.validate_input_length`."""
        return self.config.validate_input_length(n_samples)

    def extra_repr(self) -> str:
        return f"config={self.config.tag}, layout={self.layout}"


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")
    return torch.Generator().manual_seed(generator)


def _reject_unknown_options(options: Mapping[str, Any]) -> None:
    """A typo in an option name must be an error, not a silently ignored key or a default."""
    reject_unknown_keys(options, {f.name for f in dataclasses.fields(ResNet1dConfig)}, what="model")


def build_resnet1d(
    depth: int,
    channels: int,
    kernel_size: int,
    gap: bool = True,
    n_leads: int = 12,
    n_classes: int = 26,
    *,
    generator: torch.Generator | int | None = None,
    layout: Layout = "cl",
    **options: Any,
) -> ResNet1d:
    """Build the D x C x K ResNet; ``options`` are the other :class:`ResNet1dConfig` fields.

    Raises ``ConfigError`` naming the option for any invalid value or unknown option.
    """
    _reject_unknown_options(options)
    config = ResNet1dConfig(
        depth=depth,
        channels=channels,
        kernel_size=kernel_size,
        gap=gap,
        n_leads=n_leads,
        n_classes=n_classes,
        **options,
    )
    return ResNet1d(config, generator=generator, layout=layout)
