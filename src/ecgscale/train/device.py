"""Device and numeric precision: the one place that turns ``device``/``precision`` options into torch objects.

Training, evaluation and prediction (``ecgscale.infer``) all resolve their options here, and run the model under
:func:`autocast`, so ``auto`` means the same thing everywhere.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ecgscale.errors import ConfigError

__all__ = ["Precision", "autocast", "cpu_has_fast_bf16", "resolve_device", "resolve_precision"]


def resolve_device(
    name: str | torch.device | None,
    *,
    local_rank: int | None = 0,
    key: str = "train.device",
    hint: str = "use 'auto' or 'cpu'",
) -> torch.device:
    """``auto`` (or ``None``) → the local CUDA device if there is one, else CPU.

    ``local_rank`` is the CUDA device a bare ``cuda`` (and ``auto``) means: the process's local GPU under DDP;
    ``None`` leaves it bare (torch's current device). A CUDA device without CUDA is a ``ConfigError`` on ``key``
    ending with ``hint``.
    """
    if name is None or name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"got {str(name)!r} but no CUDA device is available; {hint}", key=key)
        if dev.index is None and local_rank is not None:
            dev = torch.device("cuda", local_rank)
    return dev


def cpu_has_fast_bf16() -> bool:
    """Whether the CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX); unknown (no /proc/cpuinfo): True.

    Without them bf16 autocast is emulated and much slower than fp32: on a 2-core AVX2 machine a D2-C64-K9
    training step took 2.7x the fp32 time (docs/training.md).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return True


@dataclass(frozen=True, slots=True)
class Precision:
    """A resolved precision: its name, the autocast dtype (``None``: plain fp32) and whether a GradScaler is used."""

    name: str
    amp_dtype: torch.dtype | None
    use_scaler: bool


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto`` = bf16 on CPUs with native bf16 instructions (fp32 on other CPUs), fp16 + scaler on CUDA."""
    if name == "auto":
        name = "fp16" if device.type == "cuda" else ("bf16" if cpu_has_fast_bf16() else "fp32")
    if name == "fp32":
        return Precision(name, None, False)
    if name == "bf16":
        return Precision(name, torch.bfloat16, False)
    return Precision(name, torch.float16, True)


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """Autocast to ``amp_dtype`` on ``device``'s type; ``None``: disabled (plain fp32)."""
    return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)
