"""Search spaces for the TPE search: architecture (D, C, K, GAP) plus training hyper-parameters.

* ``wide`` — the generic space a practitioner would search without prior knowledge: D 1–32 (log),
  C 8–512 (log), K 3–65 (odd), GAP on/off.
* ``narrow`` — follows the scale study's finding (shallow, wide, small kernels): D 1–8 (log), C 64–512 (log),
  K 3–9 (odd), GAP on/off.
* a TOML/YAML file with the same keys, or ``from-study:NAME`` — the region spanned by the top-q configurations
  of a finished sweep, padded by one grid step on each side (:func:`space_from_results`).

Both built-in spaces share the training ranges: lr 1e-4–1e-2 (log), weight decay 1e-6–1e-1 (log),
dropout 0–0.5, batch size {32, 64, 128}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgscale.config import reject_unknown_keys
from ecgscale.errors import ConfigError
from ecgscale.study.grids import AXES, _read_mapping, _toml

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

__all__ = [
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "load_space",
    "narrow_space",
    "sample_space",
    "space_from_results",
    "wide_space",
]


@dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int)) or not 1 <= self.low <= self.high:
            raise ConfigError(f"got [{self.low!r}, {self.high!r}]; allowed: integers with 1 <= low <= high")
        if self.step < 1 or (self.log and self.step != 1):
            raise ConfigError(f"got step {self.step!r}; allowed: >= 1, and 1 when log is true")

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step}


@dataclass(frozen=True, slots=True)
class FloatRange:
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        ok = all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (self.low, self.high)
        )
        if not ok or self.low > self.high or self.low < 0 or (self.log and self.low <= 0):
            raise ConfigError(f"got [{self.low!r}, {self.high!r}]; allowed: 0 <= low <= high (low > 0 when log)")

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Ranges the TPE sampler draws from; ``kernel_size`` has step 2 so every kernel is odd."""

    name: str
    depth: IntRange
    channels: IntRange
    kernel_size: IntRange
    gap: tuple[bool, ...] = (True, False)
    lr: FloatRange = FloatRange(1e-4, 1e-2, log=True)
    weight_decay: FloatRange = FloatRange(1e-6, 1e-1, log=True)
    dropout: FloatRange = FloatRange(0.0, 0.5)
    batch_size: tuple[int, ...] = (32, 64, 128)

    def __post_init__(self) -> None:
        if self.kernel_size.low % 2 == 0 or self.kernel_size.step % 2:
            raise ConfigError(
                f"got {self.kernel_size.to_dict()}; allowed: an odd low and an even step (odd kernels)",
                key="kernel_size",
            )
        if not self.gap or any(not isinstance(g, bool) for g in self.gap):
            raise ConfigError(f"got {self.gap!r}; allowed: a non-empty list of true/false", key="gap")
        if not self.batch_size or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.batch_size):
            raise ConfigError(f"got {self.batch_size!r}; allowed: a non-empty list of integers >= 1", key="batch_size")
        if self.dropout.high >= 1:
            raise ConfigError(f"got {self.dropout.to_dict()}; allowed: dropout below 1", key="dropout")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depth": self.depth.to_dict(),
            "channels": self.channels.to_dict(),
            "kernel_size": self.kernel_size.to_dict(),
            "gap": list(self.gap),
            "lr": self.lr.to_dict(),
            "weight_decay": self.weight_decay.to_dict(),
            "dropout": self.dropout.to_dict(),
            "batch_size": list(self.batch_size),
        }

    def to_toml(self) -> str:
        """The space as a TOML file that :func:`load_space` reads back equal (keys as in :meth:`to_dict`)."""
        return "".join(f"{key} = {_toml(value)}\n" for key, value in self.to_dict().items())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, file: str | None = None) -> SearchSpace:
        allowed = {"name", "depth", "channels", "kernel_size", "gap", "lr", "weight_decay", "dropout", "batch_size"}
        reject_unknown_keys(data, allowed, what="search-space", file=file)
        missing = sorted(set(AXES) - set(data))
        if missing:
            raise ConfigError(f"missing key(s) {missing}", file=file)
        kwargs: dict[str, Any] = {"name": str(data.get("name", "custom"))}
        for key in data:
            if key == "name":
                continue
            value = data[key]
            try:
                if key in AXES:
                    kwargs[key] = _int_range(value, odd=key == "kernel_size")
                elif key in ("lr", "weight_decay", "dropout"):
                    kwargs[key] = _float_range(value, log=key != "dropout")
                else:  # gap, batch_size: a list of choices (or one value)
                    kwargs[key] = tuple(value) if isinstance(value, list) else (value,)
                    replace(narrow_space(), **{key: kwargs[key]})  # validates the choices alone
            except ConfigError as exc:
                raise ConfigError(f"got {value!r}: {exc.problem}", file=file, key=key) from None
            except (TypeError, KeyError):
                raise ConfigError(
                    f"got {value!r}; allowed: [low, high] or a table with low, high (and log, step)", file=file, key=key
                ) from None
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(exc.problem, file=file, key=exc.key) from None


def _int_range(value: Any, *, odd: bool) -> IntRange:
    if isinstance(value, list) and len(value) == 2:
        value = {"low": value[0], "high": value[1]}
    if not isinstance(value, Mapping) or set(value) - {"low", "high", "log", "step"}:
        raise TypeError(value)
    step = value.get("step", 2 if odd else 1)
    log = bool(value.get("log", False))
    for v in (value["low"], value["high"], step):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError("low, high and step must be integers")
    return IntRange(value["low"], value["high"], log=log and not odd, step=step)


def _float_range(value: Any, *, log: bool) -> FloatRange:
    if isinstance(value, list) and len(value) == 2:
        value = {"low": value[0], "high": value[1]}
    if not isinstance(value, Mapping) or set(value) - {"low", "high", "log"}:
        raise TypeError(value)
    return FloatRange(value["low"], value["high"], log=bool(value.get("log", log)))


def wide_space() -> SearchSpace:
    return SearchSpace("wide", IntRange(1, 32, log=True), IntRange(8, 512, log=True), IntRange(3, 65, step=2))


def narrow_space() -> SearchSpace:
    return SearchSpace("narrow", IntRange(1, 8, log=True), IntRange(64, 512, log=True), IntRange(3, 9, step=2))


def load_space(path: str | Path) -> SearchSpace:
    """A search space from a TOML/YAML file (keys as in :meth:`SearchSpace.to_dict`; ``[low, high]`` shorthand)."""
    data = _read_mapping(Path(path))
    data.setdefault("name", Path(path).stem)
    return SearchSpace.from_dict(data, file=str(path))


def sample_space(trial: optuna.trial.Trial, space: SearchSpace) -> dict[str, Any]:
    """Draw one configuration: architecture keys plus ``lr``, ``weight_decay``, ``dropout``, ``batch_size``."""
    out: dict[str, Any] = {}
    for axis in AXES:
        r: IntRange = getattr(space, axis)
        out[axis] = trial.suggest_int(axis, r.low, r.high, log=r.log, step=r.step)
    out["gap"] = trial.suggest_categorical("gap", list(space.gap))
    for key in ("lr", "weight_decay", "dropout"):
        f: FloatRange = getattr(space, key)
        out[key] = f.low if f.low == f.high else trial.suggest_float(key, f.low, f.high, log=f.log)
    out["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_size))
    return out


def space_from_results(
    df: pd.DataFrame,
    *,
    metric: str = "val_macro_auroc",
    top_q: float = 0.2,
    base: SearchSpace | None = None,
    name: str = "from-study",
) -> SearchSpace:
    """Narrow a space to the region the best sweep configurations span, padded one grid step each side.

    Configurations are averaged over seeds first; the top ``top_q`` fraction (at least one) by ``metric``
    (validation, so the test set is not used to choose the space) defines the box. Training ranges come from
    ``base`` (default: the narrow space's).
    """
    if not 0 < top_q <= 1:
        raise ConfigError(f"got {top_q!r}; allowed: 0 < top_q <= 1", key="top_q")
    if df.empty or metric not in df.columns:
        raise ConfigError(f"the study has no finished trial with {metric!r}", key="metric")
    base = base or narrow_space()
    agg = df.groupby([*AXES, "gap"], as_index=False)[metric].mean().sort_values(metric, ascending=False)
    n_top = max(1, math.ceil(top_q * len(agg)))
    top = agg.head(n_top)
    ranges: dict[str, IntRange] = {}
    for axis in AXES:
        steps = sorted(int(v) for v in df[axis].unique())
        lo_i = steps.index(int(top[axis].min()))
        hi_i = steps.index(int(top[axis].max()))
        lo, hi = steps[max(0, lo_i - 1)], steps[min(len(steps) - 1, hi_i + 1)]
        if axis == "kernel_size":
            lo, hi = lo | 1, hi | 1
            ranges[axis] = IntRange(lo, max(lo, hi), step=2)
        else:
            ranges[axis] = IntRange(lo, hi, log=hi >= 2 * lo)
    gaps = tuple(sorted({bool(g) for g in top["gap"]}, reverse=True))
    return replace(
        base, name=name, depth=ranges["depth"], channels=ranges["channels"], kernel_size=ranges["kernel_size"], gap=gaps
    )
