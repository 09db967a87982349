"""Writing a cache's files into a (staged) folder from prepared records: ``signals.bin`` streamed as the records
arrive, then ``offsets.npy``, ``labels.npy``, ``manifest.csv``, ``skipped.csv`` and, last, ``cache.json``."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgscale import __version__
from ecgscale.data.cache.layout import (
    CACHE_FORMAT_VERSION,
    INFO_FILE,
    MANIFEST_COLUMNS,
    N_LEADS,
    params_hash,
    split_counts,
)
from ecgscale.data.cache.rows import Prepared
from ecgscale.data.cache.summary import SkippedRecord
from ecgscale.data.labels import LabelSpace
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.splits import SplitConfig, assign_splits
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import ConfigError
from ecgscale.fileio import write_json_atomic, write_text_atomic
from ecgscale.progress import Progress, as_progress

__all__ = ["CacheSpec", "write_cache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CacheSpec:
    """What a cache is written with, besides its records: recorded in ``cache.json``.

    ``params`` identify the content (``builder.build_params``; a change means a rebuild); ``sources`` name the
    data in the error raised when no record is usable.
    """

    config: PreprocessConfig
    space: LabelSpace
    split: SplitConfig
    params: Mapping[str, Any]
    sources: tuple[str, ...]

    @property
    def params_hash(self) -> str:
        return params_hash(self.params)


def write_cache(
    folder: Path,
    spec: CacheSpec,
    results: Iterator[Prepared],
    skips: list[SkippedRecord],
    *,
    total: int | None,
    n_found: int | None,
    progress: bool | Progress,
) -> dict[str, Any]:
    """Write a cache into ``folder`` from prepared ``results`` (in order; ``total`` of them, if known) and return
    its ``cache.json``. Skipped results are appended to ``skips``; ``n_found`` (default: records + skips) counts
    the files found, skips included."""
    rows: list[dict[str, Any]] = []
    offsets = [0]
    dtype = np.dtype(spec.config.dtype)
    t0 = time.perf_counter()
    with (
        open(folder / "signals.bin", "wb") as fh,
        contextlib.closing(as_progress(progress).task("prepare", total=total)) as bar,
        contextlib.closing(results) as items,
    ):
        for ok, item in items:
            if ok:
                x = item.pop("signal")  # possibly a view of a worker's slot: written out before the next result
                if x.dtype != dtype:
                    x = x.astype(dtype)
                _append_block(fh, x)
                offsets.append(offsets[-1] + int(x.shape[1]))
                rows.append(item)
                del x
            else:
                skips.append(SkippedRecord(item["path"], item["reason"], item["message"]))
                log.warning("skipped %s (%s): %s", item["path"], item["reason"], item["message"])
            bar.advance()
        fh.flush()
        os.fsync(fh.fileno())
    if not rows:
        by_reason = Counter(s.reason for s in skips)
        raise ConfigError(
            f"no usable ECG record under {', '.join(spec.sources)}"
            + (f" ({len(skips)} skipped: {dict(by_reason)})" if skips else " (no record files found)"),
            key="paths",
        )

    space = spec.space
    label_mat = np.zeros((len(rows), len(space)), dtype=np.uint8)
    unknown_counter: Counter[str] = Counter()
    for i, r in enumerate(rows):
        codes = r["codes"]
        label_mat[i] = space.encode(codes)
        unknown = space.unknown(codes)
        unknown_counter.update(unknown)
        r["unknown_codes"] = ",".join(unknown)
        r["codes"] = ",".join(r["codes"])

    manifest = pd.DataFrame(rows)
    manifest.insert(0, "index", np.arange(len(rows)))
    manifest["split"] = ""
    manifest = manifest[MANIFEST_COLUMNS]
    manifest["split"] = assign_splits(manifest, label_mat, spec.split)

    np.save(folder / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(folder / "labels.npy", label_mat)
    write_text_atomic(folder / "manifest.csv", manifest.to_csv(index=False))
    skipped_frame = pd.DataFrame(
        [{"path": s.path, "reason": s.reason, "message": s.message} for s in skips],
        columns=["path", "reason", "message"],
    )
    write_text_atomic(folder / "skipped.csv", skipped_frame.to_csv(index=False))

    config = spec.config
    info = {
        "format_version": CACHE_FORMAT_VERSION,
        "ecgscale_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": dict(spec.params),
        "params_hash": spec.params_hash,
        "preprocess": config.to_dict(),
        "preprocess_hash": config.hash(),
        "label_space": space.to_dict(),
        "dtype": config.dtype,
        "fs": config.fs,
        "window_s": config.window_s,
        "window": config.window_samples,
        "n_leads": N_LEADS,
        "leads": list(STANDARD_LEADS),
        "n_records": len(rows),
        "n_found": n_found if n_found is not None else len(rows) + len(skips),
        "total_samples": int(offsets[-1]),
        "split": spec.split.to_dict(),
        "split_counts": split_counts(manifest["split"]),
        "records_per_source": {str(k): int(v) for k, v in manifest["source"].value_counts().sort_index().items()},
        "label_counts": _label_counts(manifest, label_mat, space),
        "unknown_codes": {
            "n_occurrences": int(sum(unknown_counter.values())),
            "n_distinct": len(unknown_counter),
            "top": dict(unknown_counter.most_common(50)),
        },
        "skipped": {"n_skipped": len(skips), "by_reason": dict(sorted(Counter(s.reason for s in skips).items()))},
        "build_seconds": round(time.perf_counter() - t0, 3),
    }
    write_json_atomic(folder / INFO_FILE, info)  # written last: its presence marks a complete cache
    return info


def _append_block(fh: Any, x: np.ndarray) -> None:
    fh.write(np.ascontiguousarray(x).data)  # the buffer itself: no bytes copy


def _label_counts(manifest: pd.DataFrame, label_mat: np.ndarray, space: LabelSpace) -> dict[str, dict[str, int]]:
    """Positive records per class (by abbreviation), per source; zero counts are left out.

    Two classes may share an abbreviation (Tianchi's RBBB and complete RBBB); those are told apart by key.
    """
    out: dict[str, dict[str, int]] = {}
    abbrs = space.abbreviations
    names = [a if abbrs.count(a) == 1 else f"{a} ({k})" for a, k in zip(abbrs, space.keys, strict=True)]
    for source in sorted(manifest["source"].unique()):
        mask = (manifest["source"] == source).to_numpy()
        sums = label_mat[mask].sum(axis=0)
        out[str(source)] = {names[k]: int(v) for k, v in enumerate(sums) if v > 0}
    return out
