"""Train/validation/test splits: multi-label stratified, by patient, official PTB-XL folds, or by source.

Stratification uses iterative stratification (``iterstrat.ml_stratifiers.MultilabelStratifiedShuffleSplit``,
Sechidis et al. 2011) at the *patient* level: the labels of a patient's records are OR-ed, patients are split,
and every record follows its patient, so no patient is in two splits. Records without a patient id are their
own group. The source of each group is appended as extra one-hot columns, so every source is spread over the
splits in proportion too. Splits depend only on the manifest order, the labels and the seed: the same cache and
seed always give the same split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from ecgscale.config import reject_unknown_keys
from ecgscale.errors import ConfigError

__all__ = ["SPLIT_NAMES", "SplitConfig", "assign_splits", "official_split_of_fold"]

log = logging.getLogger(__name__)

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
_METHODS = ("auto", "stratified", "official", "source")


@dataclass(frozen=True, slots=True)
class SplitConfig:
    """How records are assigned to train/val/test.

    ``method``: ``"stratified"`` (multi-label iterative stratification by patient), ``"official"`` (the PTB-XL
    ``strat_fold``: 1–8 train, 9 val, 10 test; records without a fold are stratified), ``"source"``
    (leave-one-source-out: ``test_sources`` are the test set, the rest is stratified into train/val by the
    train:val ratio of ``fractions``), ``"auto"`` (official when every record has an official split, else
    stratified).
    """

    method: str = "auto"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    group_by_patient: bool = True
    test_sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ConfigError(
                f"split method {self.method!r} is not allowed (one of {', '.join(_METHODS)})", key="method"
            )
        try:
            fr = tuple(float(f) for f in self.fractions)
        except (TypeError, ValueError):
            raise ConfigError(
                f"fractions {self.fractions!r} must be three numbers (train, val, test)", key="fractions"
            ) from None
        if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
            raise ConfigError(
                f"fractions {self.fractions!r} must be three non-negative numbers (train, val, test) summing to 1"
                " with train > 0",
                key="fractions",
            )
        object.__setattr__(self, "fractions", fr)
        if isinstance(self.test_sources, str):
            object.__setattr__(self, "test_sources", (self.test_sources,))
        object.__setattr__(self, "test_sources", tuple(str(s) for s in self.test_sources))
        if self.method == "source" and not self.test_sources:
            raise ConfigError("method 'source' needs test_sources (the held-out sources)", key="test_sources")
        if self.method != "source" and self.test_sources:
            raise ConfigError(
                f"test_sources is only used with method='source' (got method={self.method!r})", key="test_sources"
            )
        if not isinstance(self.seed, int | np.integer) or isinstance(self.seed, bool):
            raise ConfigError(f"seed {self.seed!r} must be an integer", key="seed")
        object.__setattr__(self, "seed", int(self.seed))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fractions"] = list(self.fractions)
        out["test_sources"] = list(self.test_sources)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitConfig:
        reject_unknown_keys(data, {f.name for f in fields(cls)}, what="split")
        kwargs = dict(data)
        if "fractions" in kwargs:
            kwargs["fractions"] = tuple(kwargs["fractions"])
        if "test_sources" in kwargs:
            kwargs["test_sources"] = tuple(kwargs["test_sources"])
        return cls(**kwargs)


def official_split_of_fold(fold: object) -> str:
    """PTB-XL recommended split of a ``strat_fold`` (1–8 train, 9 val, 10 test); ``""`` when unknown."""
    try:
        f = int(float(str(fold)))
    except (TypeError, ValueError):
        return ""
    if 1 <= f <= 8:
        return "train"
    return {9: "val", 10: "test"}.get(f, "")


def _column(manifest: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name in manifest.columns:
        return manifest[name].fillna("").astype(str).to_numpy()
    return np.full(n, "", dtype=object)


def _group_keys(manifest: pd.DataFrame, group_by_patient: bool) -> np.ndarray:
    n = len(manifest)
    sources = _column(manifest, "source", n)
    patients = _column(manifest, "patient_id", n)
    keys = np.empty(n, dtype=object)
    for i in range(n):
        pid = patients[i].strip()
        # A patient id is only meaningful within its source ("1" in PTB-XL is not "1" in Tianchi).
        keys[i] = f"p\x1f{sources[i]}\x1f{pid}" if (group_by_patient and pid and pid.lower() != "nan") else f"r\x1f{i}"
    return keys


def _msss(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(np.zeros((len(y), 1)), y))
    return train, test


def _stratify(
    labels: np.ndarray, keys: np.ndarray, sources: np.ndarray, fractions: Sequence[float], seed: int
) -> np.ndarray:
    """Split names for the given rows, stratified at the level of ``keys`` (patients)."""
    n = len(keys)
    out = np.full(n, "train", dtype=object)
    if n == 0:
        return out
    uniq, inverse = np.unique(keys.astype(str), return_inverse=True)
    g = len(uniq)
    y_group = np.zeros((g, labels.shape[1]), dtype=np.uint8)
    np.maximum.at(y_group, inverse, labels.astype(np.uint8))
    src_uniq, src_inv = np.unique(sources.astype(str), return_inverse=True)
    group_src = np.zeros(g, dtype=np.int64)
    group_src[inverse] = src_inv
    source_onehot = np.eye(len(src_uniq), dtype=np.uint8)[group_src]
    # A constant column keeps the target 2-D multi-label even with one class and one source.
    y = np.concatenate([y_group, source_onehot, np.ones((g, 1), dtype=np.uint8)], axis=1)

    train_f, val_f, test_f = fractions
    group_split = np.full(g, "train", dtype=object)
    if g < 3:
        log.warning("only %d patient group(s): all assigned to the training split", g)
        return group_split[inverse]
    rest = np.arange(g)
    if test_f > 0:
        tr, te = _msss(y, test_f, seed)
        group_split[te] = "test"
        rest = tr
    if val_f > 0 and len(rest) >= 2:
        rel = val_f / (train_f + val_f)
        tr, va = _msss(y[rest], rel, seed + 1)
        group_split[rest[va]] = "val"
    return group_split[inverse]


def assign_splits(manifest: pd.DataFrame, labels: np.ndarray, config: SplitConfig) -> np.ndarray:
    """``"train"``/``"val"``/``"test"`` for every manifest row.

    ``manifest`` needs ``source`` and ``patient_id`` columns (and ``official_split`` for the PTB-XL folds);
    ``labels`` is the ``(N, K)`` multi-hot matrix in the same row order.
    """
    n = len(manifest)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != n:
        raise ConfigError(f"labels shape {labels.shape} does not match {n} manifest rows", key="labels")
    keys = _group_keys(manifest, config.group_by_patient)
    sources = _column(manifest, "source", n)
    official = _column(manifest, "official_split", n)
    has_official = np.isin(official, SPLIT_NAMES)

    method = config.method
    if method == "auto":
        method = "official" if n > 0 and has_official.all() else "stratified"

    out = np.full(n, "train", dtype=object)
    if method == "stratified":
        out[:] = _stratify(labels, keys, sources, config.fractions, config.seed)
    elif method == "official":
        if not has_official.any():
            raise ConfigError(
                "no record has an official split (PTB-XL strat_fold); use method='stratified'", key="method"
            )
        out[has_official] = official[has_official]
        rest = ~has_official
        if rest.any():
            log.info("%d records without an official fold are split by stratification", int(rest.sum()))
            out[rest] = _stratify(labels[rest], keys[rest], sources[rest], config.fractions, config.seed)
    else:  # source
        present = sorted(set(sources.tolist()))
        missing = [s for s in config.test_sources if s not in present]
        if missing:
            raise ConfigError(
                f"test sources {missing} are not in the cache (sources: {', '.join(present)})", key="test_sources"
            )
        is_test = np.isin(sources, list(config.test_sources))
        if is_test.all():
            raise ConfigError(
                f"every record is from the test sources {list(config.test_sources)}; nothing is left to train on",
                key="test_sources",
            )
        out[is_test] = "test"
        train_f, val_f, _ = config.fractions
        rel = (train_f / (train_f + val_f), val_f / (train_f + val_f), 0.0)
        rest = ~is_test
        out[rest] = _stratify(labels[rest], keys[rest], sources[rest], rel, config.seed)
    if config.group_by_patient:
        _check_patients(keys, out)
    return out


def _check_patients(keys: np.ndarray, splits: np.ndarray) -> None:
    """Official folds can in principle mix a patient across splits; say so instead of leaking silently."""
    frame = pd.DataFrame({"k": keys.astype(str), "s": splits.astype(str)})
    n_splits = frame.groupby("k")["s"].nunique()
    leaking = int((n_splits > 1).sum())
    if leaking:
        log.warning("%d patient(s) have records in more than one split (from the official folds)", leaking)
