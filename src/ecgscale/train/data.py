"""Batch sources for the trainer: the seeded record order and the batches it reads.

Every random choice of training (record order, crop positions) is a function of ``(seed, epoch, step)``,
so a run resumed mid-epoch reads exactly the batches an uninterrupted run would have read, and ``W``
data-parallel processes together read exactly the global batches of a single process.

Three sources share one small interface (``len``, ``labels``, ``window``, ``batch(indices, positions)``):

- :class:`ArraySource`: in-memory arrays (planted signals in tests, or anything already loaded);
- :class:`CacheSource`: one split of an :class:`ecgscale.data.cache.EcgCache`, the fast path: batches are
  sliced from the cache's stored signals in the main process, no ``DataLoader`` workers, no per-item tensors;
- :class:`DatasetSource`: any ``torch.utils.data.Dataset`` yielding ``(x (12, L), y (K,))``; its own
  augmentation is its business (and only reproducible if the dataset makes it so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ecgscale.data.transforms import crop_starts, take_window

__all__ = [
    "ArraySource",
    "BatchSource",
    "CacheSource",
    "DatasetSource",
    "as_source",
    "crop_batch",
    "crop_positions",
    "epoch_order",
    "fit_window",
]


class BatchSource(Protocol):
    """What the trainer reads: ``len`` records with labels ``(N, K)`` and windows of ``window`` samples."""

    labels: np.ndarray
    window: int | None

    def __len__(self) -> int: ...

    def batch(
        self, indices: np.ndarray, positions: np.ndarray | None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, leads, length or window) float32`` and ``y (B, K) float32`` for source rows ``indices``.

        ``positions`` (floats in [0, 1), one per row) choose random crop starts for training; ``None``
        means the evaluation window (centre crop, zero pad if short). ``length`` (default ``window``) is the
        crop length: training on crops shorter than the stored window (``TrainConfig.crop_s``).
        """
        ...


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch ``epoch``: a permutation of ``range(n)`` determined by ``(seed, epoch)``."""
    return np.random.default_rng([int(seed), int(epoch), 0x0EC6]).permutation(n)


def crop_positions(n: int, seed: int, epoch: int, step: int) -> np.ndarray:
    """Crop positions of the ``n`` records of global batch ``step``: floats in [0, 1) from ``(seed, epoch, step)``."""
    return np.random.default_rng([int(seed), int(epoch), int(step), 0xC407]).random(n)


def fit_window(signal: np.ndarray, window: int, position: float | None) -> np.ndarray:
    """A ``(leads, window)`` view or copy: crop at ``position`` (None = centre); a short record is zero-padded at
    the end. The crop rule is ``ecgscale.data.transforms.crop_starts``/``take_window``, as everywhere."""
    start = int(crop_starts(signal.shape[-1], window, positions=position))
    return take_window(signal, window, start)


def crop_batch(x: torch.Tensor, length: int, positions: np.ndarray | None) -> torch.Tensor:
    """Crop ``(B, leads, L)`` to ``(B, leads, length)`` at ``positions`` (None = centre); pads short rows as
    :func:`fit_window` does. For sources that only give whole windows (generic datasets)."""
    if x.shape[-1] == length and positions is None:
        return x
    rows = [fit_window(x[j].numpy(), length, None if positions is None else float(positions[j])) for j in range(len(x))]
    return torch.from_numpy(np.ascontiguousarray(np.stack(rows), dtype=np.float32))


class ArraySource:
    """Records held in memory: ``x`` is ``(N, leads, L)`` or a list of ``(leads, n_i)``; ``y`` is ``(N, K)``.

    With ``window=None`` every record must have the same length, which becomes the window.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor | Sequence[np.ndarray],
        y: np.ndarray | torch.Tensor,
        *,
        window: int | None = None,
    ):
        ys = np.asarray(y.numpy() if isinstance(y, torch.Tensor) else y, dtype=np.float32)
        if ys.ndim != 2:
            raise ValueError(f"labels must be (N, K), got shape {ys.shape}")
        if isinstance(x, torch.Tensor):
            x = x.numpy()
        if isinstance(x, np.ndarray):
            if x.ndim != 3:
                raise ValueError(f"signals must be (N, leads, L), got shape {x.shape}")
            self._stack: np.ndarray | None = np.ascontiguousarray(x, dtype=np.float32)
            self._signals: list[np.ndarray] = list(self._stack)
        else:
            self._stack = None
            self._signals = [np.asarray(s, dtype=np.float32) for s in x]
        if len(self._signals) != len(ys):
            raise ValueError(f"{len(self._signals)} signals but {len(ys)} label rows")
        lengths = {s.shape[-1] for s in self._signals}
        if window is None:
            if len(lengths) != 1:
                raise ValueError(f"records have different lengths {sorted(lengths)[:5]}...; pass window=")
            window = lengths.pop()
        self.window = int(window)
        self.labels = ys

    def __len__(self) -> int:
        return len(self.labels)

    def batch(
        self, indices: np.ndarray, positions: np.ndarray | None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        length = self.window if length is None else int(length)
        if self._stack is not None and self._stack.shape[-1] == length:
            x = self._stack[indices]  # fancy indexing copies: one vectorised gather, the common case
        else:
            x = np.stack(
                [
                    fit_window(self._signals[i], length, None if positions is None else positions[j])
                    for j, i in enumerate(indices)
                ]
            )
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(self.labels[indices])


class CacheSource:
    """One split of an ``EcgCache``: rows are the split's records; training crops random windows of them.

    ``leads`` (a lead set, ``ecgscale.data.leads``) keeps only those rows of the 12 stored leads in each batch.

    Batches come from ``EcgCache.get_batch`` (one slice per record straight from the signal array). A cache
    whose signal file is at most ``load_limit_mb`` is read into RAM once (``EcgCache.load``), so epochs after
    the first never touch the disk.
    """

    def __init__(self, cache: Any, split: str, *, load_limit_mb: float = 1024.0, leads: Any = None):
        from ecgscale.data.leads import parse_leads

        self.cache = cache
        self.split = split
        #: The lead set whose rows batches hold (``ecgscale.data.leads``; default all 12 stored leads).
        self.leads = parse_leads(leads)
        self.rows = np.asarray(cache.indices(split), dtype=np.int64)
        self.labels = np.asarray(cache.labels[self.rows], dtype=np.float32)
        self.window = int(cache.window_length)
        offsets = np.asarray(cache.offsets, dtype=np.int64)
        self._lengths = offsets[self.rows + 1] - offsets[self.rows]
        size_mb = int(offsets[-1]) * 12 * np.dtype(cache.config.dtype).itemsize / 2**20
        if size_mb <= load_limit_mb and isinstance(cache.signals, np.memmap):
            cache.load()

    def __len__(self) -> int:
        return len(self.rows)

    def batch(
        self, indices: np.ndarray, positions: np.ndarray | None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        length = self.window if length is None else int(length)
        starts = None  # centre crops
        if positions is not None:
            starts = crop_starts(self._lengths[indices], length, positions=positions)
        x, _ = self.cache.get_batch(self.rows[indices], starts=starts, length=length)
        if not self.leads.is_full:
            x = np.ascontiguousarray(self.leads.take(x))
        return torch.from_numpy(x), torch.from_numpy(self.labels[indices])


class DatasetSource:
    """Any map-style dataset of ``(x, y)`` pairs; labels are read once up front (``dataset.labels`` if present)."""

    def __init__(self, dataset: torch.utils.data.Dataset, *, labels: np.ndarray | None = None):
        self.dataset = dataset
        if labels is None:
            labels = getattr(dataset, "labels", None)
        if labels is None:
            labels = np.stack([np.asarray(dataset[i][1], dtype=np.float32) for i in range(len(dataset))])
        self.labels = np.asarray(labels, dtype=np.float32)
        first = dataset[0][0]
        self.window = int(first.shape[-1])

    def __len__(self) -> int:
        return len(self.labels)

    def batch(
        self, indices: np.ndarray, positions: np.ndarray | None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.dataset[int(i)] for i in indices]
        x = torch.stack([torch.as_tensor(it[0], dtype=torch.float32) for it in items])
        y = torch.stack([torch.as_tensor(it[1], dtype=torch.float32) for it in items])
        if length is not None and int(length) != x.shape[-1]:
            x = crop_batch(x, int(length), positions)  # the dataset's own window, cropped here
        return x, y


def as_source(data: Any) -> BatchSource:
    """Accept a source as is, a ``(x, y)`` pair of arrays, or a map-style dataset."""
    if hasattr(data, "batch") and hasattr(data, "labels") and hasattr(data, "window"):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return ArraySource(data[0], data[1])
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return DatasetSource(data)
    raise TypeError(f"cannot train on {type(data).__name__}: pass a BatchSource, an (x, y) pair or a Dataset")
