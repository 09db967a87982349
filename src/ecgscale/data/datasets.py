"""PyTorch view of a cache split: ``(x (12, window) float32, y (K,) float32)`` items plus a batched fast path.

Training items take a random window and, when ``augment`` is on, a per-lead amplitude scaling and small
Gaussian noise. All randomness of item ``i`` in epoch ``e`` comes from ``numpy.random.default_rng((seed, e,
record_index))``, so an item is the same whichever DataLoader worker builds it and whatever order it is asked
in; call :meth:`CacheDataset.set_epoch` before each epoch (with non-persistent workers, the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ecgscale.errors import ConfigError

if TYPE_CHECKING:
    from ecgscale.data.cache import EcgCache
    from ecgscale.data.labels import LabelSpace

__all__ = ["CacheDataset"]


class CacheDataset(Dataset):
    """Records ``indices`` of an :class:`~ecgscale.data.cache.EcgCache`; centre windows unless ``train``."""

    def __init__(
        self,
        cache: EcgCache,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        train: bool = False,
        seed: int = 0,
        augment: bool = False,
        scale_jitter: float = 0.1,
        noise_std: float = 0.02,
    ):
        if not 0 <= scale_jitter < 1:
            raise ConfigError(f"scale_jitter {scale_jitter} must be in [0, 1)", key="scale_jitter")
        if noise_std < 0:
            raise ConfigError(f"noise_std {noise_std} must be >= 0", key="noise_std")
        self.cache = cache
        self.indices = np.arange(len(cache), dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        self.train = bool(train)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.scale_jitter = float(scale_jitter)
        self.noise_std = float(noise_std)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return f"CacheDataset({len(self)} records, {mode}, window={self.window_length}, K={self.n_classes})"

    @property
    def window_length(self) -> int:
        return self.cache.window_length

    @property
    def n_classes(self) -> int:
        return len(self.cache.label_space)

    @property
    def label_space(self) -> LabelSpace:
        return self.cache.label_space

    @property
    def labels(self) -> np.ndarray:
        """uint8 ``(len(self), K)`` labels of this dataset (e.g. for positive weights)."""
        return self.cache.labels[self.indices]

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops/augmentation of ``epoch`` (deterministic per (seed, epoch, record))."""
        self.epoch = int(epoch)

    def _item_rng(self, record: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, int(record)))

    def _augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # x: (..., 12, L); scale per lead, then add white noise (standardised units)
        if self.scale_jitter > 0:
            x *= rng.uniform(1 - self.scale_jitter, 1 + self.scale_jitter, size=(*x.shape[:-1], 1)).astype(np.float32)
        if self.noise_std > 0:
            x += rng.normal(0.0, self.noise_std, size=x.shape).astype(np.float32)
        return x

    def _item_array(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        record = int(self.indices[pos])
        if not self.train:
            x, y = self.cache.get_batch([record])
            return x[0], y[0]
        rng = self._item_rng(record)
        x, y = self.cache.get_batch([record], rng=rng)
        if self.augment:
            x[0] = self._augment(x[0], rng)
        return x[0], y[0]

    def __getitem__(self, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= pos < len(self):
            raise IndexError(f"index {pos} out of range for a dataset of {len(self)} records")
        x, y = self._item_array(pos % len(self))
        return torch.from_numpy(x), torch.from_numpy(y)

    def get_batch(
        self, positions: Sequence[int] | np.ndarray, *, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once: ``(x (B, 12, window), y (B, K))`` float32 tensors.

        Eval mode: centre windows (``rng`` ignored). Train mode without ``rng``: exactly the items
        ``__getitem__`` gives (per-record generators). Train mode with ``rng``: crops and augmentation drawn from
        that one generator, vectorised — the fastest path for small models.
        """
        pos = np.asarray(positions, dtype=np.int64)
        records = self.indices[pos]
        if not self.train:
            x, y = self.cache.get_batch(records)
        elif rng is None:
            rngs = [self._item_rng(r) for r in records.tolist()]
            starts = np.array(
                [self.cache.window_starts([r], rng=g)[0] for r, g in zip(records, rngs, strict=True)], dtype=np.int64
            )
            x, y = self.cache.get_batch(records, starts=starts)
            if self.augment:
                for b, g in enumerate(rngs):
                    x[b] = self._augment(x[b], g)
        else:
            x, y = self.cache.get_batch(records, rng=rng)
            if self.augment:
                x = self._augment(x, rng)
        return torch.from_numpy(x), torch.from_numpy(y)

    def as_tensors(self, *, dtype: torch.dtype = torch.float16, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole dataset in memory: centre windows ``(N, 12, window)`` in ``dtype`` and labels ``(N, K)``.

        For evaluation and for trainers of small models that want to index tensors directly; float16 halves
        the memory (the cache stores float16 by default, so nothing is lost).
        """
        n = len(self)
        x_all = torch.empty((n, 12, self.window_length), dtype=dtype)
        y_all = torch.empty((n, self.n_classes), dtype=torch.float32)
        for a in range(0, n, chunk):
            x, y = self.cache.get_batch(self.indices[a : a + chunk])
            x_all[a : a + len(x)] = torch.from_numpy(x).to(dtype)
            y_all[a : a + len(y)] = torch.from_numpy(y)
        return x_all, y_all
