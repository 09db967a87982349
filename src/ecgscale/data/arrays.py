"""Bring your own loader: build a cache from arrays or from any iterable of records, without writing files.

Two entry points, both ending in the same writer as ``ecgscale prepare`` (``cache.build_cache_from_records``),
so preprocessing, label encoding, splits and the on-disk format are those of any other cache::

    from ecgscale.data.arrays import build_cache_from_arrays
    build_cache_from_arrays(x, fs=500, lead_names=["i", "ii", ..., "v6"], labels=y, class_names=["AF", "LBBB"],
                            out="cache/mine", patient_ids=pids)

- ``build_cache_from_arrays(signals, fs, lead_names, labels, out=...)``: ``signals`` is one ``(N, leads,
  samples)`` array or a sequence of ``(leads, samples_i)`` arrays (lengths may differ); ``labels`` is an
  ``(N, K)`` 0/1 matrix with ``class_names`` (K names) or a sequence of N code lists.
- ``records_from_arrays(...)``: the same inputs as a lazy iterator of :class:`EcgRecord`, to mix with records
  from other sources before ``build_cache_from_records(records, out, labels=space)``.

The label space is the user's classes (``map_to="cinc2021"`` encodes them into the CinC 2021 scored classes
instead, see :func:`ecgscale.data.readers.label_table.user_label_space`). Input errors name the argument,
the record index and the shape received.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ecgscale.data.cache import CacheSummary, build_cache_from_records
from ecgscale.data.labels import LabelSpace
from ecgscale.data.readers.base import UNITS_TO_MV, normalize_leads, parse_sex
from ecgscale.data.readers.label_table import user_label_space
from ecgscale.data.records import EcgRecord
from ecgscale.data.splits import SplitConfig
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import ConfigError
from ecgscale.progress import Progress

__all__ = ["build_cache_from_arrays", "build_cache_from_records", "records_from_arrays"]


def _per_record(value: Any, n: int, what: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise ConfigError(f"has {len(items)} entries for {n} signals", key=what)
    return items


def _is_matrix(labels: Any) -> bool:
    """A 0/1 matrix (an array, or rows of numbers/booleans) rather than code lists (rows of strings)."""
    if isinstance(labels, np.ndarray):
        return True
    first = next(iter(labels), ())
    items = [first] if isinstance(first, str) else list(first)
    return bool(items) and all(isinstance(v, bool | int | float | np.number) for v in items)


def _codes(labels: Any, n: int, class_names: Sequence[str] | None) -> tuple[list[tuple[str, ...]], list[str]]:
    """Per-record code lists and the class list, from a 0/1 matrix + names or from code lists."""
    if _is_matrix(labels):
        mat = np.asarray(labels)
        if mat.ndim != 2 or mat.shape[0] != n:
            raise ConfigError(f"a 0/1 label matrix must be shaped ({n}, K), got {mat.shape}", key="labels")
        if class_names is None or len(class_names) != mat.shape[1]:
            got = None if class_names is None else len(class_names)
            raise ConfigError(f"{mat.shape[1]} label columns need as many class_names, got {got}", key="class_names")
        if not np.isin(mat, (0, 1)).all():
            raise ConfigError("a label matrix holds only 0 and 1 (or booleans)", key="labels")
        names = [str(c) for c in class_names]
        return [tuple(names[k] for k in np.flatnonzero(row)) for row in mat], names
    rows = _per_record(list(labels), n, "labels") or []
    lists = [(row,) if isinstance(row, str) else tuple(str(c) for c in row) for row in rows]
    names = [str(c) for c in class_names] if class_names is not None else sorted({c for r in lists for c in r})
    if not names:
        raise ConfigError("no class in any record; pass class_names", key="labels")
    return lists, names


def records_from_arrays(
    signals: np.ndarray | Sequence[np.ndarray],
    fs: float | Sequence[float],
    lead_names: Sequence[str],
    codes: Sequence[Sequence[str]] | None = None,
    *,
    record_ids: Sequence[str] | None = None,
    patient_ids: Sequence[str | None] | None = None,
    ages: Sequence[float | None] | None = None,
    sexes: Sequence[str | None] | None = None,
    units: str = "mV",
    source: str = "arrays",
) -> Iterator[EcgRecord]:
    """One :class:`EcgRecord` per signal, made lazily (float32 mV, leads named in ecgscale's spelling).

    ``lead_names`` name the rows of every signal (any case: ``i, ii, avr, v1`` …); ``units`` is mV, uV or V.
    """
    n = len(signals)
    if n == 0:
        raise ConfigError("no signals given", key="signals")
    leads = normalize_leads(list(lead_names), "<lead_names>")
    scale = UNITS_TO_MV.get(units.strip().lower())
    if scale is None:
        raise ConfigError(f"units {units!r} not supported; allowed mV, uV, V", key="units")
    rates = _per_record(fs, n, "fs")
    ids = _per_record(record_ids, n, "record_ids") or [f"{source}-{i:06d}" for i in range(n)]
    if len(set(ids)) != n:
        raise ConfigError("record ids must be unique", key="record_ids")
    pids = _per_record(patient_ids, n, "patient_ids")
    age_list = _per_record(ages, n, "ages")
    sex_list = _per_record(sexes, n, "sexes")
    code_lists = _per_record(codes, n, "codes") if codes is not None else [()] * n
    if rates is None or code_lists is None:  # never: both have defaults; keeps the types narrow
        raise ConfigError("fs and codes are required", key="fs")

    def make() -> Iterator[EcgRecord]:
        for i in range(n):
            x = np.asarray(signals[i])
            if x.ndim != 2 or x.shape[0] != len(leads) or x.dtype.kind not in "iuf":
                raise ConfigError(
                    f"signal {i} ({ids[i]}) must be numeric ({len(leads)} leads, samples), got {x.dtype} {x.shape}",
                    key="signals",
                )
            rate = float(rates[i])
            if not np.isfinite(rate) or rate <= 0:
                raise ConfigError(f"fs of signal {i} ({ids[i]}) must be a positive number, got {rates[i]!r}", key="fs")
            signal = np.array(x, dtype=np.float32)  # a copy: the caller's array is never aliased or changed
            if scale != 1.0:
                signal *= np.float32(scale)
            yield EcgRecord(
                record_id=str(ids[i]),
                signal=signal,
                fs=rate,
                lead_names=leads,
                codes=tuple(code_lists[i]),
                age=None if age_list is None or age_list[i] is None else float(age_list[i]),
                sex=None if sex_list is None else parse_sex(sex_list[i]),
                source=source,
                patient_id=None if pids is None or pids[i] is None else str(pids[i]),
            )

    return make()


def build_cache_from_arrays(
    signals: np.ndarray | Sequence[np.ndarray],
    fs: float | Sequence[float],
    lead_names: Sequence[str],
    labels: np.ndarray | Sequence[Sequence[str]],
    *,
    out: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    record_ids: Sequence[str] | None = None,
    patient_ids: Sequence[str | None] | None = None,
    ages: Sequence[float | None] | None = None,
    sexes: Sequence[str | None] | None = None,
    units: str = "mV",
    map_to: str | None = None,
    config: PreprocessConfig | None = None,
    split: SplitConfig | None = None,
    progress: bool | Progress = False,
    rebuild: bool = False,
    source: str = "arrays",
) -> CacheSummary:
    """Preprocess arrays into a cache at ``out`` (as ``ecgscale prepare`` would from files); returns its summary.

    Give ``patient_ids`` when a patient has several records, so the split keeps them together.
    """
    n = len(signals)
    code_lists, names = _codes(labels, n, class_names)
    space: LabelSpace = user_label_space(names, name=f"user:{source}", map_to=map_to)
    records = records_from_arrays(
        signals,
        fs,
        lead_names,
        code_lists,
        record_ids=record_ids,
        patient_ids=patient_ids,
        ages=ages,
        sexes=sexes,
        units=units,
        source=source,
    )
    return build_cache_from_records(
        records,
        out,
        labels=space,
        config=config,
        split=split,
        progress=progress,
        rebuild=rebuild,
        total=n,
        source=source,
    )
