"""The one place ecgscale calls ``wfdb``: fixed flags in, plain arrays out, errors re-raised with the path.

Used for WFDB records with ``.dat`` signal files (PTB-XL, plain WFDB folders). CinC 2021 ``.mat`` records
are read by :mod:`ecgscale.data.readers.cinc2021` without wfdb (see there why); the tests compare the two.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from ecgscale.data.readers.base import UNITS_TO_MV
from ecgscale.errors import RecordError
from ecgscale.fileio import path_within

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


# Bytes per sample of the uncompressed WFDB formats wfdb-python reads (wfdb.io._signal.BYTES_PER_SAMPLE).
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5}
_BYTES_PER_SAMPLE |= {"310": 4 / 3, "311": 4 / 3}


def _check_signal_files(base: Path, hea: str) -> None:
    """Check the header against its signal files before wfdb reads them: never trust a claimed length.

    Why: ``wfdb.rdrecord`` allocates ``n_samples x n_signals`` from the header before it reads a byte, so a
    header claiming 10**12 samples asks for terabytes (a MemoryError at best; a machine swapping for minutes
    when the claim is merely large). The claim is checked against the file sizes here, with wfdb's own header
    parser so both read the same numbers. Signal file names come from the header: they must stay in its folder
    (``ecgscale.fileio.path_within``). Multi-segment records name further headers and are refused.
    """
    try:
        head = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb's header errors are bare ValueError/Exception without the file
        raise RecordError(
            hea, f"wfdb cannot parse the header: {type(exc).__name__}: {exc}", reason="bad_header"
        ) from None
    if getattr(head, "n_seg", None) is not None or not isinstance(head, wfdb.Record):
        raise RecordError(hea, "multi-segment records are not supported", reason="unsupported")
    names = list(head.file_name or [])
    fmts = list(head.fmt or [])
    spf = list(head.samps_per_frame or [1] * len(names))
    offsets = list(head.byte_offset or [None] * len(names))
    if not names or not (len(names) == len(fmts) == len(spf) == len(offsets)):
        raise RecordError(hea, "signal lines without file names or formats", reason="bad_header")
    per_file: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        per_file.setdefault(str(name), []).append(i)
    n_samples = head.sig_len
    for name, signals in per_file.items():
        path = path_within(base.parent, name, source=hea, field="file name")
        first = signals[0]
        fmt = str(fmts[first])
        if fmt not in _BYTES_PER_SAMPLE:
            raise RecordError(
                hea,
                f"signal file {name}: format {fmt!r} not supported; allowed {sorted(_BYTES_PER_SAMPLE, key=int)}",
                reason="unsupported",
                field="format",
            )
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise RecordError(
                path, f"signal file named in {Path(hea).name} not found", reason="missing_signal"
            ) from None
        except OSError as exc:
            raise RecordError(path, f"cannot read the signal file: {exc}", reason="unreadable") from None
        if not path.is_file():
            raise RecordError(path, f"signal file named in {Path(hea).name} is not a file", reason="missing_signal")
        if n_samples is None:
            continue  # wfdb derives the length from the file size: bounded by the file
        frame = sum(int(spf[i] or 1) for i in signals)
        need = int(offsets[first] or 0) + math.ceil(int(n_samples) * frame * _BYTES_PER_SAMPLE[fmt])
        if size < need:
            raise RecordError(
                path,
                f"truncated: {size} bytes, but {Path(hea).name} declares {n_samples} samples of {len(signals)} "
                f"signal(s) in format {fmt}, which need {need}",
                reason="truncated",
            )


_FORMAT16_RE = re.compile(r"^16(?:\+\d+)?$")  # format 16, optional byte offset; no "x" frames, no ":" skew
_WFDB_NAN_16 = -32768


def _read_format16(base: Path, hea: str) -> WfdbSignal | None:
    """The common case read without wfdb: one format-16 ``.dat`` holding every signal; ``None`` otherwise.

    Why: ``wfdb.rdheader`` parses signal lines through pandas ``.loc`` (about 2.5 ms per header, and
    ``rdrecord`` parses it again), five times what reading and preprocessing a 10 s PTB-XL record costs
    (``docs/cache.md``, Performance). The header is parsed with the CinC 2021 header parser and the interleaved
    little-endian int16 frames are read with ``np.fromfile``; values are those of ``wfdb.rdrecord(physical=True)``
    rounded to float32, bit for bit (the same float32 arithmetic argument as ``read_cinc2021``;
    ``tests/realdata`` compares every header and a sample of PTB-XL signals with wfdb). Anything else — another
    format, several signal files, frames of several samples, skew, a length that is not exactly the file's,
    non-mV units, a default gain, a ``-32768`` ("no sample") value, a header our parser refuses — returns
    ``None`` and is read by wfdb exactly as before, so errors and edge cases stay wfdb's.
    """
    from ecgscale.data.readers.cinc2021 import parse_cinc_header_text  # cinc2021 imports this module

    try:
        raw = Path(hea).read_bytes()
        header = parse_cinc_header_text(raw, hea)
    except (OSError, RecordError):
        return None
    text = raw.decode("utf-8", errors="replace")
    spec_lines = [
        ln.split("#", 1)[0].split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    n_sig = header.n_leads
    if (
        header.n_samples is None
        or header.n_samples == 0
        or len(set(header.signal_files)) != 1
        or len(set(header.byte_offsets)) != 1
        or any(not _FORMAT16_RE.match(tok[1]) for tok in spec_lines[1:])
        or any(u.lower() != "mv" for u in header.units)
        or any(g == 200.0 for g in header.gains)  # possibly WFDB's default for a missing/zero gain: let wfdb decide
        or any(g != np.float32(g) or b != round(b) for g, b in zip(header.gains, header.baselines, strict=True))
    ):
        return None
    name = header.signal_files[0]
    if name.startswith("~") or name.lower().endswith((".mat", ".hea")):
        return None
    try:
        dat = path_within(base.parent, name, source=hea, field="file name")
        size = dat.stat().st_size
    except (RecordError, OSError):
        return None
    offset = header.byte_offsets[0]
    if size != offset + 2 * n_sig * header.n_samples:
        return None
    try:
        frames = np.fromfile(dat, dtype="<i2", count=n_sig * header.n_samples, offset=offset)
    except OSError:
        return None
    if frames.size != n_sig * header.n_samples or frames.min() == _WFDB_NAN_16:
        return None
    digital = frames.reshape(header.n_samples, n_sig).T
    signal = np.empty(digital.shape, dtype=np.float32)
    np.subtract(digital, np.asarray(header.baselines, dtype=np.float32)[:, None], out=signal, dtype=np.float32)
    signal /= np.asarray(header.gains, dtype=np.float32)[:, None]
    comments = tuple(ln.strip().strip(" \t#") for ln in text.splitlines() if ln.lstrip().startswith("#"))
    return WfdbSignal(signal, header.fs, header.lead_names, comments)


def read_wfdb(path: str | os.PathLike[str]) -> WfdbSignal:
    """Read a WFDB record (``.hea`` + signal files) as float32 millivolts, leads first."""
    base = _record_base(path)
    hea = f"{base}.hea"
    if not Path(hea).is_file():
        raise RecordError(hea, "header file not found", reason="missing_header")
    fast = _read_format16(base, hea)
    if fast is not None:
        return fast
    _check_signal_files(base, hea)
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
    fs = float(rec.fs) if isinstance(rec.fs, int | float) else math.nan
    if not (math.isfinite(fs) and fs > 0):  # wfdb reads "0" (and "0/1") as a rate and returns the record
        raise RecordError(
            hea, f"sampling frequency {rec.fs!r} must be a positive number", reason="bad_header", field="fs"
        )
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    units = [str(u or "").strip().lower() for u in (rec.units or [""] * sig.shape[0])]
    scale = np.array([_TO_MV.get(u, np.nan) for u in units])
    if np.isnan(scale).any():
        bad = sorted({u for u in units if u not in _TO_MV})
        raise RecordError(
            hea, f"unsupported signal units {bad}; allowed: mV, uV, V", reason="bad_header", field="units"
        )
    sig = sig * scale[:, None]
    # wfdb gives None for a signal line without a description: "" then fails the lead check with the file named
    names = tuple("" if n is None else str(n) for n in (rec.sig_name or ()))
    return WfdbSignal(sig.astype(np.float32), fs, names, tuple(rec.comments or ()))
