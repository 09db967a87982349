"""The one place ecgscale calls ``wfdb``: fixed flags in, plain arrays out, errors re-raised with the path.

Used for WFDB records with ``.dat`` signal files (PTB-XL, plain WFDB folders). CinC 2021 ``.mat`` records
are read by :mod:`ecgscale.data.readers.cinc2021` without wfdb (see there why); the tests compare the two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from ecgscale.data.readers.base import UNITS_TO_MV
from ecgscale.errors import RecordError

__all__ = ["WfdbSignal", "read_wfdb"]


# wfdb reports "NU" (no units) or nothing for signals written without units; read them as mV.
_TO_MV = {**UNITS_TO_MV, "nu": 1.0, "": 1.0}


@dataclass(frozen=True, slots=True)
class WfdbSignal:
    signal: np.ndarray  # float32 mV, (n_leads, n_samples)
    fs: float
    lead_names: tuple[str, ...]
    comments: tuple[str, ...]


def _record_base(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in (".hea", ".dat", ".mat") else p


def read_wfdb(path: str | os.PathLike[str]) -> WfdbSignal:
    """Read a WFDB record (``.hea`` + signal files) as float32 millivolts, leads first."""
    base = _record_base(path)
    hea = f"{base}.hea"
    if not Path(hea).is_file():
        raise RecordError(hea, "header file not found", reason="missing_header")
    try:
        rec = wfdb.rdrecord(str(base), physical=True, return_res=64)
    except FileNotFoundError as exc:
        raise RecordError(hea, f"signal file not found: {exc.filename or exc}", reason="missing_signal") from exc
    except Exception as exc:  # wfdb's errors name neither file nor field; add the path
        raise RecordError(
            hea, f"wfdb cannot read the record: {type(exc).__name__}: {exc}", reason="unreadable"
        ) from exc
    if rec.p_signal is None:
        raise RecordError(hea, "the record has no signals", reason="empty")
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    units = [str(u or "").strip().lower() for u in (rec.units or [""] * sig.shape[0])]
    scale = np.array([_TO_MV.get(u, np.nan) for u in units])
    if np.isnan(scale).any():
        bad = sorted({u for u in units if u not in _TO_MV})
        raise RecordError(
            hea, f"unsupported signal units {bad}; allowed: mV, uV, V", reason="bad_header", field="units"
        )
    sig = sig * scale[:, None]
    return WfdbSignal(sig.astype(np.float32), float(rec.fs), tuple(rec.sig_name or ()), tuple(rec.comments or ()))
