"""The in-memory ECG record every reader returns and every consumer (cache, synth tests, predict) takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["STANDARD_LEADS", "EcgRecord"]

#: The lead order ecgscale normalises every record to.
STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True, slots=True)
class EcgRecord:
    """One ECG: ``signal`` is float32 millivolts shaped ``(n_leads, n_samples)``.

    ``codes`` are the record's diagnosis labels as the source gives them (SNOMED-CT codes for CinC 2021,
    class names for Tianchi, SCP statements for PTB-XL), de-duplicated in their original order. Codes that
    a label space does not know are kept here, never dropped.
    """

    record_id: str
    signal: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    codes: tuple[str, ...] = ()
    age: float | None = None
    sex: str | None = None  # "M", "F" or None
    source: str = ""
    patient_id: str | None = None
    path: Path | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def n_leads(self) -> int:
        return int(self.signal.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs
