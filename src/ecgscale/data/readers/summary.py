"""Plain-dict descriptions of one record or a discovered folder (what ``ecgscale inspect`` shows).

Folder summaries use only what discovery learned from headers and label files, never the signals, so a
full CinC 2021 tree (88k records) is summarised in seconds.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ecgscale.data import labels as _labels
from ecgscale.data.readers.base import Discovery
from ecgscale.data.readers.discover import default_label_space
from ecgscale.data.readers.ptbxl import PTBXL_STATEMENTS, find_ptbxl_root
from ecgscale.data.records import EcgRecord
from ecgscale.errors import RecordError

__all__ = ["describe_code", "describe_record", "summarize"]


def _group_of_snomed(code: str) -> str | None:
    scored = _labels.cinc2021_scored()
    i = scored.index_of(code)
    if i is not None:
        return scored.classes[i].group
    info = _labels.snomed_info(code)
    return _labels.group_of(info[0]) if info else None


def describe_code(code: str, fmt: str, *, scp_statements: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """What a label code means: abbreviation, name, label group, whether CinC 2021 scores it, or unknown."""
    out: dict[str, Any] = {
        "code": code,
        "known": False,
        "abbreviation": None,
        "name": None,
        "group": None,
        "scored": None,
    }
    if fmt == "tianchi":
        if code in _labels.TIANCHI_NAME_MAP:
            abbr = _labels.TIANCHI_NAME_MAP[code]
            snomed = _labels.tianchi_to_snomed().get(code)
            info = _labels.snomed_info(snomed) if snomed else None
            out.update(
                known=True,
                name=info[1] if info else code,
                abbreviation=abbr,
                group=_labels.group_of(abbr) if abbr else None,
                snomed=snomed,
            )
    elif fmt == "ptbxl":
        row = (scp_statements or {}).get(code)
        abbr = _labels.PTBXL_SCP_MAP.get(code)
        if row is not None or abbr is not None:
            out.update(
                known=True,
                abbreviation=code,
                name=(row or {}).get("description") or code,
                group=_labels.ptbxl_group(code),
                snomed=_labels.ptbxl_to_snomed().get(code),
            )
    else:
        info = _labels.snomed_info(code)
        if info is not None:
            abbr, name, scored = info
            out.update(known=True, abbreviation=abbr, name=name, group=_group_of_snomed(code), scored=scored)
    return out


def describe_record(record: EcgRecord) -> dict[str, Any]:
    """JSON-ready description of one record (identity, shape, demographics, codes with meanings, flags)."""
    fmt = str(record.meta.get("format", ""))
    statements = None
    if fmt == "ptbxl" and record.path is not None:
        root = find_ptbxl_root(Path(record.path))
        if root is not None and (root / PTBXL_STATEMENTS).is_file():
            statements = _labels.read_scp_statements(root / PTBXL_STATEMENTS)
    sig = record.signal
    return {
        "record_id": record.record_id,
        "path": None if record.path is None else str(record.path),
        "format": fmt,
        "source": record.source,
        "fs": record.fs,
        "n_samples": record.n_samples,
        "duration_s": round(record.duration_s, 3),
        "lead_names": list(record.lead_names),
        "age": record.age,
        "sex": record.sex,
        "patient_id": record.patient_id,
        "codes": [describe_code(c, fmt, scp_statements=statements) for c in record.codes],
        "flat_leads": [x for x in str(record.meta.get("flat_leads", "")).split(",") if x],
        "amplitude_mv": {"min": float(sig.min()), "max": float(sig.max())} if sig.size else None,
        "meta": {k: v for k, v in record.meta.items() if k not in ("format", "flat_leads")},
    }


def summarize(discovery: Discovery, *, label_space: _labels.LabelSpace | None = None) -> dict[str, Any]:
    """Records per format and source, label prevalence per class, unknown codes, skipped files by reason."""
    refs = discovery.refs
    space = label_space
    space_error = None
    if space is None and refs:
        try:
            space = default_label_space(discovery)
        except (RecordError, ValueError, OSError) as exc:
            space_error = str(exc)
    per_source = Counter(r.source for r in refs)
    per_format = Counter(r.format for r in refs)
    prevalence: list[dict[str, Any]] = []
    unknown = Counter()
    if space is not None and refs:
        hot = np.stack([space.encode(r.extra.get("codes", ())) for r in refs]).astype(np.int64)
        counts = hot.sum(axis=0)
        for cls, n in zip(space.classes, counts.tolist(), strict=True):
            prevalence.append(
                {
                    "key": cls.key,
                    "abbreviation": cls.abbreviation,
                    "name": cls.name,
                    "group": cls.group,
                    "count": int(n),
                    "fraction": n / len(refs),
                }
            )
        for r in refs:
            unknown.update(space.unknown(r.extra.get("codes", ())))
    fs_counts = Counter(float(r.extra["fs"]) for r in refs if r.extra.get("fs"))
    durations = [r.extra["n_samples"] / r.extra["fs"] for r in refs if r.extra.get("n_samples") and r.extra.get("fs")]
    return {
        "n_records": len(refs),
        "formats": dict(sorted(per_format.items())),
        "sources": dict(sorted(per_source.items())),
        "sampling_rates": {f"{k:g}": v for k, v in sorted(fs_counts.items())},
        "duration_s": (
            {"min": float(min(durations)), "median": float(np.median(durations)), "max": float(max(durations))}
            if durations
            else None
        ),
        "label_space": None if space is None else {"name": space.name, "n_classes": len(space)},
        "label_space_error": space_error,
        "prevalence": prevalence,
        "unlabelled_records": sum(1 for r in refs if not r.extra.get("codes")),
        "unknown_codes": dict(unknown.most_common()),
        "n_skipped": len(discovery.skipped),
        "skipped_by_reason": discovery.skipped_by_reason(),
        "skipped": [{"path": str(s.path), "reason": s.reason, "message": s.message} for s in discovery.skipped],
    }
