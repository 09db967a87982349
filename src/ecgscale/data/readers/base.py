"""Objects and checks shared by every reader: record references, skips, lead names, codes, demographics."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgscale.data.leads import canonical_lead
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.errors import RecordError

__all__ = [
    "FORMATS",
    "UNITS_TO_MV",
    "Discovery",
    "RecordRef",
    "Skip",
    "check_signal",
    "normalize_leads",
    "parse_age",
    "parse_codes",
    "parse_sex",
    "record_from_ref",
    "source_of",
]

#: Format tags of :class:`RecordRef`.
FORMATS: tuple[str, ...] = ("cinc2021", "wfdb", "tianchi", "ptbxl", "sph", "code15")

#: Physical units of a WFDB signal (lower case) → factor to millivolts.
UNITS_TO_MV: dict[str, float] = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where one record lives and how to read it; cheap to pickle to worker processes.

    ``extra`` holds what discovery already learned without reading the signal (header or label-file
    fields: ``codes``, ``age``, ``sex``, ``fs``, ``n_samples``, ``patient_id``, PTB-XL ``split`` ...), so
    summaries and label statistics never have to open a signal file. Values are plain JSON types.
    """

    path: Path
    format: str
    source: str
    record_id: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"RecordRef.format must be one of {FORMATS}, got {self.format!r}")


def record_from_ref(
    ref: RecordRef,
    signal: np.ndarray,
    fs: float,
    lead_names: Sequence[str],
    *,
    path: Path | None = None,
    meta: Mapping[str, Any] | None = None,
) -> EcgRecord:
    """The record a reader returns: its signal, with the labels and demographics discovery put in ``ref.extra``."""
    extra = ref.extra
    return EcgRecord(
        record_id=ref.record_id,
        signal=signal,
        fs=fs,
        lead_names=tuple(lead_names),
        codes=tuple(extra.get("codes", ())),
        age=extra.get("age"),
        sex=extra.get("sex"),
        source=ref.source,
        patient_id=extra.get("patient_id"),
        path=ref.path if path is None else path,
        meta=dict(meta or {}),
    )


@dataclass(frozen=True, slots=True)
class Skip:
    """A file discovery could not use: ``reason`` is the ``RecordError.reason`` tag, ``message`` the full text."""

    path: Path
    reason: str
    message: str

    @classmethod
    def from_error(cls, exc: RecordError) -> Skip:
        return cls(Path(exc.path), exc.reason, str(exc))


@dataclass(frozen=True, slots=True)
class Discovery:
    """What :func:`ecgscale.data.readers.discover` found: readable record references and skipped files."""

    refs: list[RecordRef]
    skipped: list[Skip]

    @property
    def formats(self) -> list[str]:
        """The formats present, in :data:`FORMATS` order."""
        present = {r.format for r in self.refs}
        return [f for f in FORMATS if f in present]

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return dict(sorted(counts.items()))


def normalize_leads(names: Sequence[str], path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Standard spelling of lead names (case-insensitive: ``AVR`` → ``aVR``; ``DII`` → ``II``, see
    ``ecgscale.data.leads``); unknown or repeated names raise. A record may hold any subset, in any order."""
    out = []
    bad = []
    for name in names:
        std = canonical_lead(name)
        if std is None:
            bad.append(name)
        else:
            out.append(std)
    if bad:
        raise RecordError(
            path,
            f"unknown lead name(s) {bad}; allowed (any case): {list(STANDARD_LEADS)} (aliases DI, DII, DIII)",
            reason="bad_leads",
            field="leads",
        )
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise RecordError(
            path, f"lead(s) {dupes} appear more than once in {list(names)}", reason="bad_leads", field="leads"
        )
    return tuple(out)


def parse_codes(text: str | Iterable[str]) -> tuple[str, ...]:
    """Diagnosis codes from ``"a,b,,a,"`` (or an iterable): stripped, empties dropped, de-duplicated in order."""
    items = text.split(",") if isinstance(text, str) else text
    seen: dict[str, None] = {}
    for item in items:
        code = str(item).strip()
        if code:
            seen.setdefault(code, None)
    return tuple(seen)


def parse_age(value: object) -> float | None:
    """Age in years, or ``None`` for ``Unknown``/``NaN``/empty/negative/implausible (≥ 150) values."""
    if value is None:
        return None
    try:
        age = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(age) or age < 0 or age >= 150:
        return None
    return age


_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}


def parse_sex(value: object) -> str | None:
    """``"M"``, ``"F"`` or ``None`` from ``Male``/``Female``/``M``/``F``/``MALE``/``Unknown``/empty."""
    if value is None:
        return None
    return _SEX.get(str(value).strip().lower())


def source_of(path: Path) -> str:
    """The data source of a record file: the folder under ``training``, else the parent folder's name."""
    parts = path.parent.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].lower() == "training" and i + 1 < len(parts):
            return parts[i + 1]
    return path.parent.name


def check_signal(
    signal: np.ndarray, path: str | os.PathLike[str], lead_names: Sequence[str], *, finite: bool = False
) -> dict[str, str]:
    """Reject non-finite samples (``reason="non_finite"``); report all-zero leads as ``{"flat_leads": "V1,V2"}``.

    A flat lead is valid data (a disconnected electrode), so it is flagged, not rejected; NaN/inf have no
    meaning in a millivolt trace and would poison every downstream filter, so they are an error.
    ``finite=True`` skips the NaN scan when the samples came from integers.
    """
    ok = None if finite else np.isfinite(signal)
    if ok is not None and not ok.all():
        bad_leads = [lead for lead, good in zip(lead_names, ok.all(axis=1), strict=True) if not good]
        n_bad = int(signal.size - np.count_nonzero(ok))
        raise RecordError(
            path, f"{n_bad} NaN/infinite samples in lead(s) {bad_leads}", reason="non_finite", field="signal"
        )
    if signal.shape[1] == 0:
        raise RecordError(path, "the record has no samples", reason="empty", field="signal")
    flat = [lead for lead, nz in zip(lead_names, np.any(signal != 0, axis=1), strict=True) if not nz]
    return {"flat_leads": ",".join(flat)} if flat else {}
