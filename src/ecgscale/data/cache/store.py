"""Reading a cache: :class:`EcgCache` (``open_cache``), its signals memory-mapped and paged in only when used."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgscale.data.cache.layout import (
    CACHE_FORMAT_VERSION,
    INFO_FILE,
    MANIFEST_COLUMNS,
    N_LEADS,
    OPTIONAL_COLUMNS,
    STR_COLUMNS,
    split_counts,
)
from ecgscale.data.labels import LabelSpace
from ecgscale.data.splits import SPLIT_NAMES, SplitConfig, assign_splits
from ecgscale.data.transforms import PreprocessConfig, crop_starts, take_window, window
from ecgscale.errors import ConfigError, EcgscaleError
from ecgscale.fileio import read_json, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from ecgscale.data.datasets import CacheDataset

__all__ = ["EcgCache", "open_cache"]


class EcgCache:
    """A prepared cache opened read-only; signals are memory-mapped and only paged in when used."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        info_path = self.path / INFO_FILE
        if not info_path.is_file():
            raise ConfigError(f"{self.path} is not an ecgscale cache (no cache.json); run `ecgscale prepare` first")
        try:
            self.info: dict[str, Any] = read_json(info_path)
            if int(self.info.get("format_version", -1)) != CACHE_FORMAT_VERSION:
                raise ConfigError(
                    f"{info_path}: cache format {self.info.get('format_version')} is not supported"
                    f" (expected {CACHE_FORMAT_VERSION}); rebuild with `ecgscale prepare --rebuild`"
                )
            self.config = PreprocessConfig.from_dict(self.info["preprocess"])
            self.label_space = LabelSpace.from_dict(self.info["label_space"])
            self._offsets = np.load(self.path / "offsets.npy", allow_pickle=False)
            labels = np.load(self.path / "labels.npy", allow_pickle=False)
            manifest = _read_manifest(self.path / "manifest.csv")
        except EcgscaleError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{self.path}: cache is incomplete or corrupt ({type(exc).__name__}: {exc});"
                " rebuild with `ecgscale prepare --rebuild`"
            ) from exc
        n = int(self.info["n_records"])
        if len(manifest) != n or labels.shape != (n, len(self.label_space)) or len(self._offsets) != n + 1:
            raise ConfigError(
                f"{self.path}: manifest ({len(manifest)}), labels {labels.shape} and offsets"
                f" ({len(self._offsets) - 1}) disagree with {n} records; rebuild the cache"
            )
        expected = int(self._offsets[-1]) * N_LEADS * np.dtype(self.config.dtype).itemsize
        signals = self.path / "signals.bin"
        size = signals.stat().st_size if signals.is_file() else -1
        if size != expected:
            raise ConfigError(
                f"{signals}: {'missing' if size < 0 else f'{size} bytes'}, expected {expected} bytes"
                " (incomplete or corrupt cache); rebuild with `ecgscale prepare --rebuild`"
            )
        labels.flags.writeable = False
        self._labels = labels
        self._manifest = manifest
        self._signals: np.ndarray | None = None

    # -- pickling (DataLoader workers with spawn): reopen the memmap lazily instead of copying it
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_signals"] = None if isinstance(self._signals, np.memmap) else self._signals
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self._manifest)

    def __repr__(self) -> str:
        return (
            f"EcgCache({str(self.path)!r}, {len(self)} records, {self.label_space.name} ({len(self.label_space)}"
            f" classes), {self.config.fs:g} Hz, window {self.config.window_s:g} s)"
        )

    @property
    def signals(self) -> np.ndarray:
        """The flat signal array (memory-mapped unless :meth:`load` was called)."""
        if self._signals is None:
            total = int(self._offsets[-1]) * N_LEADS
            if total == 0:
                self._signals = np.zeros(0, dtype=self.config.dtype)
            else:
                self._signals = np.memmap(self.path / "signals.bin", dtype=self.config.dtype, mode="r", shape=(total,))
        return self._signals

    def load(self) -> EcgCache:
        """Read the whole signal file into RAM (for repeated epochs on small caches); returns ``self``."""
        self._signals = np.array(self.signals)
        return self

    @property
    def manifest(self) -> pd.DataFrame:
        return self._manifest.copy()

    @property
    def labels(self) -> np.ndarray:
        """uint8 ``(N, K)`` multi-hot matrix (read-only)."""
        return self._labels

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets.copy()

    @property
    def window_length(self) -> int:
        return self.config.window_samples

    @property
    def preprocess_hash(self) -> str:
        return self.config.hash()

    @property
    def split_config(self) -> SplitConfig:
        return SplitConfig.from_dict(self.info["split"])

    def indices(self, split: str | None = None) -> np.ndarray:
        """Record indices of a split (``train``, ``val``, ``test``; ``None``/``"all"`` for every record)."""
        if split is None or split == "all":
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLIT_NAMES:
            raise ConfigError(f"split {split!r} is not allowed (one of {', '.join(SPLIT_NAMES)}, all)", key="split")
        return np.flatnonzero(self._manifest["split"].to_numpy() == split).astype(np.int64)

    def _check_index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"record index {i} out of range for a cache of {len(self)} records")
        return i

    def _block(self, i: int) -> np.ndarray:
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return self.signals[a * N_LEADS : b * N_LEADS].reshape(N_LEADS, b - a)

    def signal(self, i: int) -> np.ndarray:
        """The stored float32 ``(12, n_i)`` signal of record ``i``."""
        return np.array(self._block(self._check_index(i)), dtype=np.float32)

    def window(self, i: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Float32 ``(12, window)``: centre crop, or a random crop when ``rng`` is given; zero padded if short."""
        return window(self._block(self._check_index(i)), self.window_length, rng=rng)

    def window_starts(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        length: int | None = None,
    ) -> np.ndarray:
        """Crop starts for ``indices``: centre (``rng=None``) or uniform random (vectorised); windows of
        ``length`` samples (default the cache's window). The rule is ``transforms.crop_starts``."""
        idx = np.asarray(indices, dtype=np.int64)
        length = self.window_length if length is None else int(length)
        return crop_starts(self._offsets[idx + 1] - self._offsets[idx], length, rng=rng)

    def get_batch(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        starts: np.ndarray | None = None,
        length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(x float32 (B, 12, length), y float32 (B, K))`` sliced straight from the memmap.

        The fast path for trainers: no per-item Python objects beyond one slice per record. Crops of ``length``
        samples (default the cache's window) are centred unless ``rng`` (random crops) or explicit ``starts``
        are given; a record shorter than ``length`` is zero-padded at the end.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ConfigError(f"indices must be 1-D, got shape {idx.shape}", key="indices")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"record indices out of range for a cache of {len(self)} records")
        length = self.window_length if length is None else int(length)
        if starts is None:
            starts = self.window_starts(idx, rng=rng, length=length)
        x = np.zeros((len(idx), N_LEADS, length), dtype=np.float32)
        sig = self.signals
        for b, (i, s) in enumerate(zip(idx.tolist(), np.asarray(starts).tolist(), strict=True)):
            a, e = int(self._offsets[i]), int(self._offsets[i + 1])
            take_window(sig[a * N_LEADS : e * N_LEADS].reshape(N_LEADS, e - a), length, s, out=x[b])
        return x, self._labels[idx].astype(np.float32)

    def dataset(
        self, split: str | None = None, *, train: bool = False, seed: int = 0, augment: bool = False
    ) -> CacheDataset:
        """A torch ``Dataset`` over one split (random crops when ``train``; centre crops otherwise)."""
        from ecgscale.data.datasets import CacheDataset

        return CacheDataset(self, self.indices(split), train=train, seed=seed, augment=augment)

    def with_split(self, config: SplitConfig) -> EcgCache:
        """A copy of this cache (sharing the signals) with the split recomputed in memory; nothing is written."""
        clone = object.__new__(EcgCache)
        clone.__dict__.update(self.__dict__)
        clone._manifest = self._manifest.copy()
        clone._manifest["split"] = assign_splits(clone._manifest, self._labels, config)
        clone.info = {**self.info, "split": config.to_dict(), "split_counts": split_counts(clone._manifest["split"])}
        return clone

    def resplit(self, config: SplitConfig) -> EcgCache:
        """Recompute the split and store it in ``manifest.csv``/``cache.json`` (no signal is re-read)."""
        clone = self.with_split(config)
        write_text_atomic(self.path / "manifest.csv", clone._manifest.to_csv(index=False))
        write_json_atomic(self.path / INFO_FILE, clone.info)
        self._manifest = clone._manifest
        self.info = clone.info
        return self


def _read_manifest(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={c: str for c in STR_COLUMNS}, keep_default_na=False, na_values={"age": [""]})
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"manifest.csv lacks columns {missing}")
    for col in OPTIONAL_COLUMNS:
        if col not in frame.columns:
            frame[col] = ""
    frame = frame[MANIFEST_COLUMNS]
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    for col in ("patient_id", "sex"):
        frame[col] = frame[col].where(frame[col] != "", None)
    return frame


def open_cache(path: str | os.PathLike[str]) -> EcgCache:
    """Open a cache written by :func:`build_cache` (``ConfigError`` if it is missing, foreign or incomplete)."""
    return EcgCache(path)
