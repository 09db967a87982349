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

__all__ = ["OFFICIAL_FOLDS", "SPLIT_NAMES", "SplitConfig", "assign_splits", "official_split_of_fold", "parse_folds"]

log = logging.getLogger(__name__)

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
_METHODS = ("auto", "stratified", "official", "source")
#: PTB-XL's recommended fold roles (train, val, test): strat_fold 1–8, 9, 10.
OFFICIAL_FOLDS: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] = (tuple(range(1, 9)), (9,), (10,))


def parse_folds(text: str, *, what: str = "folds") -> tuple[int, ...]:
    """``"1-7"``, ``"8"``, ``"1,3,5-7"`` → sorted fold numbers; ``ConfigError`` naming ``what`` otherwise."""
    out: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ConfigError(f"{what} {text!r}: {part!r} is not a fold number or a range like 1-7", key=what) from None
        if a < 1 or b < a:
            raise ConfigError(f"{what} {text!r}: {part!r} is not a range of folds >= 1", key=what)
        out.update(range(a, b + 1))
    if not out:
        raise ConfigError(f"{what} {text!r} names no fold", key=what)
    return tuple(sorted(out))


def _fold_list(folds: tuple[int, ...]) -> str:
    """``(1, 2, 3, 5)`` → ``"1-3, 5"`` for messages."""
    parts: list[str] = []
    items = sorted(folds)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class SplitConfig:
    """How records are assigned to train/val/test.

    ``method``: ``"stratified"`` (multi-label iterative stratification by patient), ``"official"`` (the PTB-XL
    ``strat_fold``: 1–8 train, 9 val, 10 test, or the roles given in ``folds``; records without a fold are
    stratified), ``"source"`` (leave-one-source-out: ``test_sources`` are the test set, the rest is stratified
    into train/val by the train:val ratio of ``fractions``), ``"auto"`` (official when every record has an
    official split, else stratified).

    ``folds``: ``(train_folds, val_folds, test_folds)`` for ``official`` (``None``: PTB-XL's 1–8/9/10). Every role
    needs at least one fold and no fold may be in two roles; records of folds in no role are left out of every
    split (``split == ""``). Giving ``folds`` with ``method="auto"`` means ``official``.
    """

    method: str = "auto"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    group_by_patient: bool = True
    test_sources: tuple[str, ...] = ()
    folds: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

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
        if self.folds is not None:
            object.__setattr__(self, "folds", self._check_folds(self.folds))
            if self.method == "auto":
                object.__setattr__(self, "method", "official")
            elif self.method != "official":
                raise ConfigError(
                    f"fold roles (train/val/test folds) are only used with method='official' (got {self.method!r})",
                    key="folds",
                )

    @staticmethod
    def _check_folds(folds: Any) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        if isinstance(folds, Mapping):
            reject_unknown_keys(folds, set(SPLIT_NAMES), what="folds")
            folds = tuple(folds.get(name, ()) for name in SPLIT_NAMES)
        try:
            roles = tuple(tuple(sorted({int(f) for f in role})) for role in folds)
        except (TypeError, ValueError):
            raise ConfigError(
                f"folds {folds!r} must be three lists of fold numbers (train, val, test)", key="folds"
            ) from None
        if len(roles) != 3:
            raise ConfigError(f"folds {folds!r} must be three lists of fold numbers (train, val, test)", key="folds")
        for name, role in zip(SPLIT_NAMES, roles, strict=True):
            if not role:
                raise ConfigError(f"no {name} fold given; every role (train, val, test) needs a fold", key="folds")
            if role[0] < 1:
                raise ConfigError(f"{name} folds {list(role)}: fold numbers start at 1", key="folds")
        owners: dict[int, list[str]] = {}
        for name, role in zip(SPLIT_NAMES, roles, strict=True):
            for f in role:
                owners.setdefault(f, []).append(name)
        twice = {f: names for f, names in sorted(owners.items()) if len(names) > 1}
        if twice:
            which = "; ".join(f"fold {f} is in {' and '.join(names)}" for f, names in twice.items())
            raise ConfigError(f"a fold can have only one role: {which}", key="folds")
        return roles  # type: ignore[return-value]

    @property
    def fold_roles(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The (train, val, test) folds of ``official``: ``folds`` or PTB-XL's 1–8/9/10."""
        return self.folds if self.folds is not None else OFFICIAL_FOLDS

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fractions"] = list(self.fractions)
        out["test_sources"] = list(self.test_sources)
        if self.folds is None:  # left out, so caches written before fold roles existed stay "up to date"
            del out["folds"]
        else:
            out["folds"] = {name: list(role) for name, role in zip(SPLIT_NAMES, self.folds, strict=True)}
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
        folds = _fold_numbers(manifest, n)
        if (folds > 0).any():
            has_official = folds > 0
            out[has_official] = _roles_of_folds(folds[has_official], config, strict=config.method == "official")
        elif config.folds is not None and config.folds != OFFICIAL_FOLDS:
            raise ConfigError(
                "no record has a PTB-XL fold number (strat_fold) in the manifest; a cache built before ecgscale"
                " recorded folds needs `ecgscale prepare --rebuild` for custom fold roles",
                key="folds",
            )
        elif not has_official.any():
            raise ConfigError(
                "no record has an official split (PTB-XL strat_fold); use method='stratified'", key="method"
            )
        else:
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


def _fold_numbers(manifest: pd.DataFrame, n: int) -> np.ndarray:
    """The ``fold`` column as integers (0: no fold), zeros when the manifest has none (older caches)."""
    if "fold" not in manifest.columns:
        return np.zeros(n, dtype=np.int64)
    values = pd.to_numeric(manifest["fold"], errors="coerce").fillna(0)  # "" and other non-numbers: no fold
    return values.to_numpy().astype(np.int64)


def _roles_of_folds(folds: np.ndarray, config: SplitConfig, *, strict: bool, warn_unused: bool = True) -> np.ndarray:
    """Split names of records by fold number; ``""`` for folds in no role.

    A role whose folds hold no record is a ``ConfigError`` naming them when ``strict`` (``official`` asked for, or
    fold roles given), a warning otherwise (``auto``).
    """
    out = np.full(len(folds), "", dtype=object)
    present = sorted(set(folds.tolist()))
    for name, role in zip(SPLIT_NAMES, config.fold_roles, strict=True):
        hit = np.isin(folds, role)
        if not hit.any():
            msg = (
                f"the {name} folds ({_fold_list(role)}) hold no records; folds present: {_fold_list(tuple(present))}."
                " Choose fold roles with records, e.g. --train-folds 1-7 --val-folds 8 --test-folds 9"
                " (PTB-XL without fold 10)"
            )
            if strict:
                raise ConfigError(msg, key="folds")
            if warn_unused:
                log.warning("%s", msg)
        out[hit] = name
    unused = sorted({int(f) for f in folds[out == ""]})
    if unused and warn_unused:
        log.warning(
            "records of fold(s) %s are in no role and left out of every split (%d records)",
            _fold_list(tuple(unused)),
            int((out == "").sum()),
        )
    return out


def _check_patients(keys: np.ndarray, splits: np.ndarray) -> None:
    """Official folds can in principle mix a patient across splits; say so instead of leaking silently."""
    used = splits.astype(str) != ""  # records of folds in no role are in no split
    frame = pd.DataFrame({"k": keys.astype(str)[used], "s": splits.astype(str)[used]})
    n_splits = frame.groupby("k")["s"].nunique()
    leaking = int((n_splits > 1).sum())
    if leaking:
        log.warning("%d patient(s) have records in more than one split (from the official folds)", leaking)
