"""Windows of a signal and how their outputs are combined: one implementation for training, evaluation and
prediction.

A model trained on crops of ``length`` samples is scored on a longer signal by cutting it into windows of
``length`` samples every ``stride`` samples (the last window aligned to the end of the signal, so every sample
is covered) and combining the windows' probabilities per record by their ``mean`` or ``max``.
:class:`WindowSpec` holds the three numbers; ``ecgscale.train`` evaluates validation (model selection and
threshold tuning) and test splits with it, and ``ecgscale.infer`` predicts new records with it, from the spec
recorded in the run's ``config.json`` (``eval_windows``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logit

from ecgscale.data.transforms import take_window
from ecgscale.errors import ConfigError
from ecgscale.train.config import AGGREGATES

__all__ = [
    "AGGREGATES",
    "WindowSpec",
    "aggregate_logits",
    "aggregate_probabilities",
    "cut_windows",
    "seconds_to_samples",
    "window_starts",
]

_EPS = 1e-12


def window_starts(n_samples: int, length: int, stride: int | None = None) -> list[int]:
    """Window starts covering ``n_samples``: every ``stride`` samples (default ``length``: no overlap), plus a
    last window ending at the last sample when the stride does not land there.

    A signal of at most one window gets the single start 0 (it is zero-padded to ``length``, as in training).
    """
    if length < 1:
        raise ConfigError(f"window length {length} must be at least 1 sample", key="length")
    stride = length if stride is None else int(stride)
    if stride < 1:
        raise ConfigError(f"window stride {stride} must be at least 1 sample", key="stride")
    if n_samples <= length:
        return [0]
    starts = list(range(0, n_samples - length + 1, stride))
    if starts[-1] != n_samples - length:
        starts.append(n_samples - length)
    return starts


def cut_windows(x: np.ndarray, length: int, stride: int | None = None) -> np.ndarray:
    """``(..., L)`` → ``(n_windows, ..., length)`` at :func:`window_starts`; a short signal is zero-padded."""
    n = x.shape[-1]
    if n < length:
        return take_window(x, length)[None]
    return np.stack([x[..., s : s + length] for s in window_starts(n, length, stride)])


def aggregate_probabilities(window_probs: np.ndarray, how: str, *, axis: int = 0) -> np.ndarray:
    """Combine window probabilities along ``axis`` by ``mean`` or ``max``."""
    if how == "mean":
        return window_probs.mean(axis=axis)
    if how == "max":
        return window_probs.max(axis=axis)
    raise ConfigError(f"got {how!r}; allowed: {' | '.join(AGGREGATES)}", key="aggregate")


def aggregate_logits(window_logits: np.ndarray, how: str, *, axis: int = 0) -> np.ndarray:
    """Logits of the aggregated probabilities: ``max`` of logits (exact, sigmoid is monotone) or
    ``logit(mean(sigmoid))`` (probabilities clipped to [1e-12, 1 - 1e-12])."""
    z = np.asarray(window_logits, dtype=np.float64)
    if how == "max":
        return z.max(axis=axis)
    from scipy.special import expit

    p = aggregate_probabilities(expit(z), how, axis=axis)
    return logit(np.clip(p, _EPS, 1.0 - _EPS))


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Windows of ``length`` samples every ``stride`` samples, outputs combined by ``aggregate``.

    ``stride=None`` means ``stride = length`` (adjacent windows, the last aligned to the end).
    """

    length: int
    stride: int | None = None
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 1:
            raise ConfigError(f"got {self.length!r}; allowed: an integer >= 1", key="eval_windows.length")
        if self.stride is not None and (
            isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1
        ):
            raise ConfigError(f"got {self.stride!r}; allowed: an integer >= 1 or null", key="eval_windows.stride")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(
                f"got {self.aggregate!r}; allowed: {' | '.join(AGGREGATES)}", key="eval_windows.aggregate"
            )

    def starts(self, n_samples: int) -> list[int]:
        return window_starts(n_samples, self.length, self.stride)

    def to_dict(self) -> dict[str, Any]:
        return {"length": self.length, "stride": self.stride, "aggregate": self.aggregate}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowSpec:
        from ecgscale.config import reject_unknown_keys

        reject_unknown_keys(data, {"length", "stride", "aggregate"}, what="eval_windows")
        return cls(**dict(data))

    @classmethod
    def from_seconds(
        cls, fs: float, *, crop_s: float | None, stride_s: float | None, aggregate: str, window: int
    ) -> WindowSpec:
        """The spec of a training config at ``fs``: ``crop_s`` (None: the whole ``window``) and ``stride_s``."""
        length = window if crop_s is None else seconds_to_samples(crop_s, fs, key="train.crop_s")
        stride = None if stride_s is None else seconds_to_samples(stride_s, fs, key="train.eval_stride_s")
        if length > window:
            raise ConfigError(
                f"a crop of {length} samples is longer than the stored {window}-sample window; use a crop_s of at "
                f"most {window / fs:g} s",
                key="train.crop_s",
            )
        return cls(length=int(length), stride=stride, aggregate=aggregate)


def seconds_to_samples(seconds: float, fs: float, *, key: str) -> int:
    """``round(seconds * fs)``, at least 1 sample."""
    n = round(float(seconds) * float(fs))
    if n < 1:
        raise ConfigError(f"{seconds:g} s at {fs:g} Hz is less than one sample", key=key)
    return int(n)
