"""One record made ready for the cache: read, preprocessed, rounded to the storage dtype, and described by its
manifest row. Never raises on a bad record: the result says why it was skipped, so one bad file cannot stop a build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ecgscale.data.records import EcgRecord
from ecgscale.data.splits import SPLIT_NAMES, official_split_of_fold
from ecgscale.data.transforms import PreprocessConfig, preprocess, to_storage
from ecgscale.errors import RecordError

__all__ = ["Prepared", "fold_of", "prepare_record", "prepare_ref"]

#: ``(True, row with its "signal")`` or ``(False, {"path", "reason", "message"})`` of a skipped record.
Prepared = tuple[bool, dict[str, Any]]


def prepare_ref(ref: Any, config: PreprocessConfig) -> Prepared:
    """Read and preprocess the record of ``ref`` (a ``readers.RecordRef``)."""
    from ecgscale.data.readers import read

    try:
        record = read(ref)
        x = preprocess(record, config)
    except RecordError as exc:
        return False, {"path": exc.path, "reason": exc.reason, "message": str(exc)}
    except Exception as exc:  # a reader bug on a strange file must not kill a 90k-record build
        return False, {
            "path": str(ref.path),
            "reason": "unexpected_error",
            "message": f"{ref.path}: {type(exc).__name__}: {exc}",
        }
    extra = ref.extra or {}
    return True, _row(record, x, config, fmt=ref.format, source=ref.source, extra=extra, ref_path=ref.path)


def prepare_record(record: EcgRecord, config: PreprocessConfig) -> Prepared:
    """:func:`prepare_ref` for a record already in memory (``build_cache_from_records``)."""
    where = str(record.path) if record.path is not None else f"<record {record.record_id}>"
    try:
        x = preprocess(record, config)
    except RecordError as exc:
        return False, {"path": where, "reason": exc.reason, "message": str(exc)}
    extra = {"split": str((record.meta or {}).get("split", ""))}  # a split the user fixed (method="official")
    return True, _row(record, x, config, fmt="memory", source="memory", extra=extra, ref_path=where)


def _row(
    record: EcgRecord,
    x: np.ndarray,
    config: PreprocessConfig,
    *,
    fmt: str,
    source: str,
    extra: Mapping[str, Any],
    ref_path: object,
) -> dict[str, Any]:
    """The manifest fields and stored signal of one preprocessed record."""
    x = to_storage(x, config.dtype)
    official = str(extra.get("split", "") or "")
    if official not in SPLIT_NAMES:
        official = official_split_of_fold(extra.get("strat_fold"))
    meta = record.meta or {}
    return {
        "record_id": record.record_id,
        "source": record.source or source,
        "format": fmt,
        "patient_id": "" if record.patient_id is None else str(record.patient_id),
        "age": np.nan if record.age is None else float(record.age),
        "sex": record.sex or "",
        "fs": float(record.fs),
        "n_samples": record.n_samples,
        "duration_s": round(record.duration_s, 4),
        "n_stored": int(x.shape[1]),
        "codes": tuple(record.codes),
        "flat_leads": str(meta.get("flat_leads", "")),
        "official_split": official,
        "fold": fold_of(extra.get("strat_fold")),
        "path": str(record.path if record.path is not None else ref_path),
        "signal": x,
    }


def fold_of(value: object) -> str:
    """A PTB-XL ``strat_fold`` as text for the manifest (``""`` when the record has none)."""
    try:
        fold = int(float(str(value)))
    except (TypeError, ValueError, OverflowError):
        return ""
    return str(fold) if fold >= 1 else ""
