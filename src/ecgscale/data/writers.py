"""Writers for the real ECG file formats: CinC 2021 (WFDB header + MATLAB v4) and Tianchi (Hefei) text.

Used by the synthetic benchmark (which must write hundreds of records per second per core, so this
module uses numpy and ``scipy.io.savemat`` only, never ``wfdb``) and by the reader tests, which check
the files against ``wfdb.rdrecord`` and ``scipy.io.loadmat``.

Record files are written in place, not atomically: a generator writing thousands of small files cannot
afford an fsync per file, and a half-written record is caught by the readers (``reason="truncated"``).

Quantisation: samples are rounded to the nearest ADC unit and **clipped** to ``[-32767, 32767]`` (int16
without ``-32768``, which WFDB format 16 reserves for "no sample" and would read back as NaN). At the
default gain of 1000 units/mV that is ±32.767 mV, far beyond any real ECG; ``write_cinc2021`` logs a
warning when it has to clip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.io

from ecgscale.data.records import STANDARD_LEADS

__all__ = [
    "TIANCHI_LEADS",
    "TIANCHI_UNIT_MV",
    "cinc2021_header_text",
    "wfdb_checksum",
    "write_cinc2021",
    "write_mat_v4",
    "write_tianchi",
    "write_tianchi_classes",
    "write_tianchi_labels",
]

log = logging.getLogger(__name__)

#: The eight leads stored in a Tianchi text file, in file order (the other four are derived).
TIANCHI_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: One Tianchi integer unit in millivolts (4.88 µV).
TIANCHI_UNIT_MV = 0.00488

_INT16_MAX = 32767  # -32768 is WFDB's "invalid sample" in format 16, so the range is symmetric
_DEFAULT_DATE = "01-Jan-2020 00:00:00"
_SEX_WORD = {"M": "Male", "F": "Female", None: "Unknown"}


def wfdb_checksum(digital: np.ndarray) -> np.ndarray:
    """Per-lead WFDB checksum of ``(n_leads, n)`` digital samples: their sum as a *signed* 16-bit integer.

    The challenge headers carry the signed form (e.g. ``-1716``) as the WFDB C library writes it;
    wfdb-python writes the same value modulo 2**16 as unsigned. Both read back fine.
    """
    total = np.asarray(digital, dtype=np.int64).sum(axis=1) % 65536
    return np.where(total > 32767, total - 65536, total).astype(np.int64)


def _quantize(signal_mv: np.ndarray, gain: float, *, what: str) -> np.ndarray:
    sig = np.asarray(signal_mv, dtype=np.float64)
    if sig.ndim != 2:
        raise ValueError(f"{what}: signal must be 2-D (n_leads, n_samples), got shape {sig.shape}")
    if not np.isfinite(sig).all():
        raise ValueError(f"{what}: signal contains NaN or infinite values; the file formats cannot store them")
    digital = np.rint(sig * gain)
    n_clipped = int(np.count_nonzero(np.abs(digital) > _INT16_MAX))
    if n_clipped:
        log.warning("%s: %d samples beyond ±%d ADC units clipped", what, n_clipped, _INT16_MAX)
        np.clip(digital, -_INT16_MAX, _INT16_MAX, out=digital)
    return digital.astype(np.int16)


def write_mat_v4(path: str | os.PathLike[str], values: np.ndarray, *, name: str = "val") -> Path:
    """Write one int16 matrix as a MATLAB v4 file exactly like the challenge's ``.mat`` files.

    ``scipy.io.savemat(format="4")`` produces the challenge layout byte for byte: a 20-byte header
    (type 30 = little-endian int16 full matrix, rows, cols, imagf 0, name length 4), ``val\\0``, then the
    data column-major, so the samples start at byte 24 interleaved like WFDB format ``16+24``.
    """
    arr = np.asarray(values)
    if arr.dtype != np.int16 or arr.ndim != 2:
        raise ValueError(f"write_mat_v4 expects a 2-D int16 array, got {arr.dtype} with shape {arr.shape}")
    out = Path(path)
    scipy.io.savemat(out, {name: arr}, format="4")
    return out


def cinc2021_header_text(
    record_id: str,
    digital: np.ndarray,
    fs: float,
    *,
    lead_names: Sequence[str],
    gain: float,
    comments: Sequence[str],
    date: str = _DEFAULT_DATE,
) -> str:
    """The ``.hea`` text of a CinC 2021 record for int16 ``digital`` samples (leads × samples)."""
    n_leads, n_samples = digital.shape
    fs_txt = f"{fs:g}"
    gain_txt = f"{gain:g}"
    checks = wfdb_checksum(digital)
    lines = [f"{record_id} {n_leads} {fs_txt} {n_samples} {date}".rstrip()]
    first = digital[:, 0] if n_samples else np.zeros(n_leads, dtype=np.int16)
    for lead, init, check in zip(lead_names, first.tolist(), checks.tolist(), strict=True):
        lines.append(f"{record_id}.mat 16+24 {gain_txt}/mV 16 0 {init} {check} 0 {lead}")
    lines.extend(f"#{c}" for c in comments)
    return "\n".join(lines) + "\n"


def _age_text(age: float | None) -> str:
    if age is None or not np.isfinite(age):
        return "Unknown"
    return f"{age:g}"


def _sex_text(sex: str | None) -> str:
    key = None if sex is None else sex.strip().upper()[:1] or None
    if key not in _SEX_WORD:
        raise ValueError(f"sex must be 'M', 'F' or None, got {sex!r}")
    return _SEX_WORD[key]


def write_cinc2021(
    directory: str | os.PathLike[str],
    record_id: str,
    signal_mv: np.ndarray,
    fs: float,
    *,
    lead_names: Sequence[str] = STANDARD_LEADS,
    age: float | None = None,
    sex: str | None = None,
    codes: Iterable[str] = (),
    gain: float = 1000.0,
    extra_comments: Mapping[str, str] | Sequence[str] | None = None,
    date: str = _DEFAULT_DATE,
) -> Path:
    """Write ``<record_id>.hea`` + ``<record_id>.mat`` like the PhysioNet/CinC 2021 training files.

    ``signal_mv`` is ``(n_leads, n_samples)`` in millivolts; it is stored as int16 ``round(mV * gain)``
    (clipped, see the module docstring). ``extra_comments`` are appended after ``#Sx`` as ``#key: value``
    (mapping) or verbatim lines (sequence). Returns the path of the ``.hea`` file.
    """
    if fs <= 0:
        raise ValueError(f"fs must be positive, got {fs!r}")
    if gain <= 0:
        raise ValueError(f"gain must be positive, got {gain!r}")
    lead_names = tuple(lead_names)
    digital = _quantize(signal_mv, gain, what=f"record {record_id}")
    if digital.shape[0] != len(lead_names):
        raise ValueError(
            f"record {record_id}: signal has {digital.shape[0]} leads but {len(lead_names)} lead names were given"
        )
    comments = [
        f"Age: {_age_text(age)}",
        f"Sex: {_sex_text(sex)}",
        "Dx: " + ",".join(str(c).strip() for c in codes),
        "Rx: Unknown",
        "Hx: Unknown",
        "Sx: Unknown",
    ]
    if isinstance(extra_comments, Mapping):
        comments.extend(f"{k}: {v}" for k, v in extra_comments.items())
    elif extra_comments:
        comments.extend(str(c).lstrip("#") for c in extra_comments)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_mat_v4(out / f"{record_id}.mat", digital)
    header = out / f"{record_id}.hea"
    text = cinc2021_header_text(record_id, digital, fs, lead_names=lead_names, gain=gain, comments=comments, date=date)
    header.write_text(text, encoding="ascii")
    return header


def write_tianchi(
    directory: str | os.PathLike[str],
    record_id: str,
    signal_mv: np.ndarray,
    *,
    lead_names: Sequence[str] | None = None,
) -> Path:
    """Write ``<record_id>.txt`` in the Tianchi (Hefei) layout: header ``I II V1 … V6``, integer 4.88 µV units.

    ``signal_mv`` holds either the 8 stored leads (``TIANCHI_LEADS`` order) or 12 leads (``STANDARD_LEADS``
    order unless ``lead_names`` says otherwise), from which I, II and V1–V6 are taken. The file is always
    500 Hz by convention; the caller is responsible for the rate.
    """
    sig = np.asarray(signal_mv)
    if sig.ndim != 2:
        raise ValueError(f"record {record_id}: signal must be 2-D (n_leads, n_samples), got shape {sig.shape}")
    if lead_names is None:
        lead_names = TIANCHI_LEADS if sig.shape[0] == len(TIANCHI_LEADS) else STANDARD_LEADS
    lead_names = tuple(lead_names)
    if len(lead_names) != sig.shape[0]:
        raise ValueError(f"record {record_id}: {sig.shape[0]} leads but {len(lead_names)} lead names")
    missing = [lead for lead in TIANCHI_LEADS if lead not in lead_names]
    if missing:
        raise ValueError(f"record {record_id}: a Tianchi file needs leads {TIANCHI_LEADS}; missing {missing}")
    stored = sig[[lead_names.index(lead) for lead in TIANCHI_LEADS]]
    units = _quantize(stored, 1.0 / TIANCHI_UNIT_MV, what=f"record {record_id}")
    # One %-format over the whole record is ~4x faster than ``np.savetxt`` (which formats row by row).
    row_fmt = " ".join(["%d"] * units.shape[0]) + "\n"
    body = (row_fmt * units.shape[1]) % tuple(units.T.ravel().tolist())
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record_id}.txt"
    path.write_text(" ".join(TIANCHI_LEADS) + "\n" + body, encoding="ascii")
    return path


def _tianchi_sex(sex: str | None) -> str:
    if sex is None or sex == "":
        return ""
    key = sex.strip().upper()
    if key in ("M", "MALE"):
        return "MALE"
    if key in ("F", "FEMALE"):
        return "FEMALE"
    raise ValueError(f"sex must be 'M', 'F', 'MALE', 'FEMALE' or empty, got {sex!r}")


def write_tianchi_labels(
    path: str | os.PathLike[str],
    rows: Iterable[tuple[str, float | None, str | None, Sequence[str]]],
) -> Path:
    """Write a Tianchi label file: one line ``<id>.txt<TAB><age><TAB><MALE|FEMALE|><TAB><name>...`` per row.

    ``rows`` are ``(record_id, age, sex, names)``; ``record_id`` may be given with or without ``.txt``,
    ``age`` ``None`` and ``sex`` ``None`` are written as empty fields.
    """
    lines = []
    for record_id, age, sex, names in rows:
        rid = record_id if record_id.endswith(".txt") else f"{record_id}.txt"
        age_txt = "" if age is None or not np.isfinite(age) else f"{age:g}"
        lines.append("\t".join([rid, age_txt, _tianchi_sex(sex), *names]))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def write_tianchi_classes(path: str | os.PathLike[str], names: Iterable[str]) -> Path:
    """Write a Tianchi class list (``hf_round*_arrythmia.txt``): one arrhythmia name per line, UTF-8."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return out
