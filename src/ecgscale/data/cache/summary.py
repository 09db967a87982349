"""What a ``build_cache`` call reports: :class:`CacheSummary`, with a :class:`SkippedRecord` per unusable file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CacheSummary", "SkippedRecord", "summary_from_info"]


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    path: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class CacheSummary:
    """What a ``build_cache`` call did; ``status`` is ``built``, ``rebuilt``, ``up_to_date`` or ``resplit``."""

    out: Path
    status: str
    n_records: int
    n_found: int
    n_skipped: int
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: tuple[SkippedRecord, ...] = ()
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    records_per_source: dict[str, int] = field(default_factory=dict)
    n_unknown_codes: int = 0
    unknown_codes: dict[str, int] = field(default_factory=dict)
    split_counts: dict[str, int] = field(default_factory=dict)
    label_space: str = ""
    preprocess_hash: str = ""
    seconds: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.n_found / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "status": self.status,
            "n_records": self.n_records,
            "n_found": self.n_found,
            "n_skipped": self.n_skipped,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "label_counts": {k: dict(v) for k, v in self.label_counts.items()},
            "records_per_source": dict(self.records_per_source),
            "n_unknown_codes": self.n_unknown_codes,
            "unknown_codes": dict(self.unknown_codes),
            "split_counts": dict(self.split_counts),
            "label_space": self.label_space,
            "preprocess_hash": self.preprocess_hash,
            "seconds": self.seconds,
        }


def summary_from_info(
    out: Path, info: Mapping[str, Any], status: str, seconds: float, skipped: tuple[SkippedRecord, ...] = ()
) -> CacheSummary:
    """The summary of the cache whose ``cache.json`` is ``info``; ``skipped`` lists this build's skips."""
    counts = info.get("skipped", {})
    return CacheSummary(
        out=out,
        status=status,
        n_records=int(info["n_records"]),
        n_found=int(info.get("n_found", info["n_records"])),
        n_skipped=int(counts.get("n_skipped", 0)),
        skipped_by_reason=dict(counts.get("by_reason", {})),
        skipped=skipped,
        label_counts={k: dict(v) for k, v in info.get("label_counts", {}).items()},
        records_per_source=dict(info.get("records_per_source", {})),
        n_unknown_codes=int(info.get("unknown_codes", {}).get("n_occurrences", 0)),
        unknown_codes=dict(info.get("unknown_codes", {}).get("top", {})),
        split_counts=dict(info.get("split_counts", {})),
        label_space=str(info.get("label_space", {}).get("name", "")),
        preprocess_hash=str(info.get("preprocess_hash", "")),
        seconds=seconds,
    )
