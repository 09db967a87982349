"""PhysioNet/CinC Challenge 2021 records: WFDB ``.hea`` header + MATLAB v4 ``.mat`` signal (``val``, int16).

Why not ``wfdb.rdrecord``: it takes ~1.2 ms per 10 s record against ~0.1 ms for parsing the header here
and ``scipy.io.loadmat`` of the ``.mat`` (88k records are read at every ``prepare``), and its errors name
neither the file nor the field. The values are identical (``tests/data/test_readers_cinc.py`` compares
them with wfdb on every rate and quirk). The header grammar followed is WFDB's ``header(5)``:

- record line ``name n_sig fs[/counter][(base)] [n_samples [date time]]``; ``fs`` defaults to 250;
- signal line ``file format[+offset] gain[(baseline)][/units] adc_res adc_zero init checksum block name``;
  a missing or zero gain means 200 units per mV (WFDB's default), the baseline defaults to the ADC zero;
- comment lines ``#Key: value`` (also ``# Key: value`` as wfdb writes them); ``Age``, ``Sex`` and ``Dx`` are
  parsed leniently (``Unknown``/``NaN`` ages, ``M``/``Male``, duplicate or empty codes in ``Dx``).

Digital ``-32768`` is WFDB's "no sample" marker in format 16 (wfdb reads it as NaN); such records are
rejected as ``reason="non_finite"`` like any record with NaN samples.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io

from ecgscale.data.readers.base import (
    UNITS_TO_MV,
    check_signal,
    normalize_leads,
    parse_age,
    parse_codes,
    parse_sex,
    source_of,
)
from ecgscale.data.readers.wfdb_io import read_wfdb
from ecgscale.data.records import EcgRecord
from ecgscale.errors import RecordError
from ecgscale.fileio import path_within

__all__ = [
    "CincHeader",
    "parse_cinc_header",
    "parse_cinc_header_text",
    "parse_comments",
    "read_cinc2021",
    "read_wfdb_record",
]

_GAIN_RE = re.compile(r"^(?P<gain>[^(/]*)(?:\((?P<baseline>[^)]*)\))?(?:/(?P<units>.*))?$")
_COMMENT_RE = re.compile(r"^#\s*(?P<key>[A-Za-z][\w ]*?)\s*:\s*(?P<value>.*?)\s*$")
_DEFAULT_GAIN = 200.0  # WFDB: a missing or zero gain means 200 ADC units per physical unit
_WFDB_NAN_16 = -32768


@dataclass(frozen=True, slots=True)
class CincHeader:
    """The parsed ``.hea`` of one record; per-lead tuples are in file order."""

    path: Path
    record_id: str
    fs: float
    n_samples: int | None
    signal_files: tuple[str, ...]
    formats: tuple[str, ...]
    byte_offsets: tuple[int, ...]
    gains: tuple[float, ...]
    baselines: tuple[float, ...]
    units: tuple[str, ...]
    lead_names: tuple[str, ...]
    comments: dict[str, str] = field(default_factory=dict)

    @property
    def n_leads(self) -> int:
        return len(self.lead_names)

    @property
    def age(self) -> float | None:
        return parse_age(self.comments.get("age"))

    @property
    def sex(self) -> str | None:
        return parse_sex(self.comments.get("sex"))

    @property
    def codes(self) -> tuple[str, ...]:
        return parse_codes(self.comments.get("dx", ""))


def parse_comments(lines: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``#Key: value`` comment lines → ``{"key": "value"}`` with lower-case keys (first occurrence wins)."""
    out: dict[str, str] = {}
    for line in lines:
        text = line if line.startswith("#") else "#" + line
        m = _COMMENT_RE.match(text.strip())
        if m:
            out.setdefault(m["key"].strip().lower(), m["value"])
    return out


def _number(text: str, path: Path, what: str, allowed: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordError(
            path, f"{what} {text!r} is not a number; expected {allowed}", reason="bad_header", field=what
        ) from None
    if not np.isfinite(value):
        raise RecordError(path, f"{what} {text!r} is not finite; expected {allowed}", reason="bad_header", field=what)
    return value


def _read_header_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(path, "header file not found", reason="missing_header") from None
    except OSError as exc:
        raise RecordError(path, f"cannot read the header: {exc}", reason="unreadable") from None
    return _decode_header(raw, path)


def _decode_header(raw: bytes, path: Path) -> str:
    if not raw.strip():
        raise RecordError(path, "the header file is empty", reason="empty")
    if b"\x00" in raw:
        raise RecordError(path, "the header holds binary data (NUL bytes), not WFDB header text", reason="bad_header")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(path, "the header is not text (invalid UTF-8)", reason="bad_header") from None


def _signal_spec(path: Path, i: int, fmt: str, gain_field: str, adc_zero: str) -> tuple[str, int, float, float, str]:
    """``(format, byte offset, gain, baseline, units)`` of one signal line's fields 2, 3 and 5."""
    fmt_base, _, offset = fmt.partition("+")
    fmt_base = fmt_base.split("x")[0].split(":")[0]
    byte_offset = int(_number(offset, path, "byte offset", "an integer")) if offset else 0
    m = _GAIN_RE.match(gain_field)
    if m is None:
        raise RecordError(
            path,
            f"signal line {i}: gain field {gain_field!r} is not gain[(baseline)][/units]",
            reason="bad_header",
            field="gain",
        )
    gain = _number(m["gain"], path, "gain", "ADC units per mV, e.g. 1000/mV") if m["gain"] else 0.0
    zero = _number(adc_zero, path, "ADC zero", "an integer")
    baseline = _number(m["baseline"], path, "baseline", "an integer") if m["baseline"] else zero
    unit = (m["units"] or "mV").strip()
    if unit.lower() not in UNITS_TO_MV:
        raise RecordError(
            path,
            f"signal line {i}: units {unit!r} not supported; allowed mV, uV, V",
            reason="bad_header",
            field="units",
        )
    return fmt_base, byte_offset, gain if gain != 0 else _DEFAULT_GAIN, baseline, unit


def parse_cinc_header(path: str | os.PathLike[str]) -> CincHeader:
    """Parse a WFDB header of a single-segment record; raises ``RecordError`` naming the file and field."""
    path = Path(path)
    return parse_cinc_header_text(_read_header_text(path), path)


def parse_cinc_header_text(text: str | bytes, path: str | os.PathLike[str]) -> CincHeader:
    """Parse the text (or raw bytes) of a WFDB header; ``path`` is only named in errors and kept on the result.

    Split from :func:`parse_cinc_header` so the grammar can be tested and fuzzed without files.
    """
    path = Path(path)
    if isinstance(text, bytes):
        text = _decode_header(text, path)
    elif "\x00" in text:
        raise RecordError(path, "the header holds binary data (NUL bytes), not WFDB header text", reason="bad_header")
    comments: list[str] = []
    body: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            comments.append(s)
        else:
            body.append(s.split("#", 1)[0].strip())  # WFDB allows trailing comments on specification lines
    if not body:
        raise RecordError(path, "no record line (only comments)", reason="bad_header", field="record line")
    rec = body[0].split()
    if len(rec) < 2:
        raise RecordError(
            path,
            f"record line {body[0]!r} needs at least a name and a signal count",
            reason="bad_header",
            field="record line",
        )
    record_id = rec[0]
    if "/" in record_id:
        raise RecordError(
            path, f"multi-segment records ({record_id!r}) are not supported", reason="bad_header", field="record line"
        )
    n_sig_f = _number(rec[1], path, "signal count", "a non-negative integer")
    if n_sig_f != int(n_sig_f) or n_sig_f < 1:
        raise RecordError(
            path, f"signal count {rec[1]!r} must be a positive integer", reason="bad_header", field="signal count"
        )
    n_sig = int(n_sig_f)
    fs = 250.0
    if len(rec) > 2:
        fs = _number(re.split(r"[/(]", rec[2], maxsplit=1)[0], path, "sampling frequency", "a positive number")
        if fs <= 0:
            raise RecordError(
                path, f"sampling frequency {rec[2]!r} must be positive", reason="bad_header", field="sampling frequency"
            )
    n_samples = None
    if len(rec) > 3:
        ns = _number(rec[3], path, "sample count", "a non-negative integer")
        if ns != int(ns) or ns < 0:
            raise RecordError(
                path,
                f"sample count {rec[3]!r} must be a non-negative integer",
                reason="bad_header",
                field="sample count",
            )
        n_samples = int(ns)
    sig_lines = body[1:]
    if len(sig_lines) != n_sig:
        raise RecordError(
            path,
            f"the record line declares {n_sig} signals but {len(sig_lines)} signal lines follow",
            reason="bad_header",
            field="signal count",
        )
    files, fmts, offsets, gains, baselines, units, names = [], [], [], [], [], [], []
    # The twelve signal lines of a record usually share format, gain and zero: parse each distinct triple once.
    parsed: dict[tuple[str, str, str], tuple[str, int, float, float, str]] = {}
    for i, line in enumerate(sig_lines, start=1):
        tok = line.split(maxsplit=8)
        if len(tok) < 9:
            raise RecordError(
                path,
                f"signal line {i} {line!r} has {len(tok)} fields; 9 are needed (…, lead name)",
                reason="bad_header",
                field=f"signal line {i}",
            )
        fname, fmt, gain_field, _res, adc_zero = tok[:5]
        key = (fmt, gain_field, adc_zero)
        spec = parsed.get(key)
        if spec is None:
            spec = parsed[key] = _signal_spec(path, i, fmt, gain_field, adc_zero)
        files.append(fname)
        fmts.append(spec[0])
        offsets.append(spec[1])
        gains.append(spec[2])
        baselines.append(spec[3])
        units.append(spec[4])
        names.append(tok[8].strip())
    return CincHeader(
        path,
        record_id,
        fs,
        n_samples,
        tuple(files),
        tuple(fmts),
        tuple(offsets),
        tuple(gains),
        tuple(baselines),
        tuple(units),
        tuple(names),
        parse_comments(comments),
    )


# MATLAB v4 precision digit P of the type code MOPT → bytes per element (double, single, int32, int16, uint16, uint8)
_MAT4_ITEMSIZE = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}
_MAT4_DTYPE = {0: "<f8", 1: "<f4", 2: "<i4", 3: "<i2", 4: "<u2", 5: "<u1"}
_MAT4_HEADER = 20  # five little-endian int32: MOPT, mrows, ncols, imagf, namlen


def _check_mat_v4_size(mat_path: Path, size: int, head: bytes | None = None) -> None:
    """A MATLAB v4 file shorter than its own header promises is truncated (scipy's message would be vaguer)."""
    if head is None:
        with open(mat_path, "rb") as fh:
            head = fh.read(_MAT4_HEADER)
    if len(head) < _MAT4_HEADER:
        raise RecordError(mat_path, f"truncated: {size} bytes, shorter than a MATLAB v4 header", reason="truncated")
    mopt, rows, cols, imagf, namlen = np.frombuffer(head, "<i4", count=5).tolist()
    if not (
        0 <= mopt < 100
        and mopt % 10 == 0
        and mopt // 10 in _MAT4_ITEMSIZE
        and imagf in (0, 1)
        and 0 < namlen < 64
        and rows >= 0
        and cols >= 0
    ):
        return  # not a little-endian v4 numeric matrix: leave the verdict to scipy.io.loadmat
    need = _MAT4_HEADER + namlen + rows * cols * _MAT4_ITEMSIZE[mopt // 10] * (2 if imagf else 1)
    if size < need:
        raise RecordError(
            mat_path, f"truncated: {size} bytes, but its {rows} x {cols} matrix needs {need}", reason="truncated"
        )


def _mat_v4_val(raw: bytes) -> np.ndarray | None:
    """``val`` of a MATLAB v4 file holding exactly one real little-endian matrix named ``val``, else ``None``.

    Why by hand: every CinC 2021 ``.mat`` is such a file (a 20-byte header, the name ``val``, int16 samples in
    column-major order), and ``scipy.io.loadmat`` spends about as long on its generic machinery as the rest of
    the read. Same dtype, shape and values as loadmat's array (``tests/data/test_mat_v4.py``), as a read-only
    Fortran-ordered view of ``raw`` (``read_cinc2021`` converts it to a C-ordered float32 signal in one pass).
    Any other file (several variables, big-endian, complex, text, v5) returns ``None`` and goes through
    loadmat, so its errors stay loadmat's.
    """
    if len(raw) < _MAT4_HEADER:
        return None
    mopt, rows, cols, imagf, namlen = np.frombuffer(raw, "<i4", count=5).tolist()
    if not (
        0 <= mopt < 100
        and mopt % 10 == 0
        and mopt // 10 in _MAT4_DTYPE
        and imagf == 0
        and namlen == 4
        and rows > 0
        and cols > 0
        and raw[_MAT4_HEADER : _MAT4_HEADER + 4] == b"val\x00"
    ):
        return None
    dtype = np.dtype(_MAT4_DTYPE[mopt // 10])
    offset = _MAT4_HEADER + namlen
    if len(raw) != offset + rows * cols * dtype.itemsize:  # more than one variable (or truncated): loadmat
        return None
    return np.frombuffer(raw, dtype, count=rows * cols, offset=offset).reshape(cols, rows).T


def _check_mat_version(mat_path: Path, raw: bytes) -> None:
    """Only MATLAB v4 files reach ``loadmat``: every CinC 2021 ``.mat`` is v4, and v4 sizes are checked.

    Why not v5/v7: their variables may be zlib-compressed and their cell/struct headers declare shapes that scipy
    allocates before reading (a 47 kB compressed file decodes to 48 MB; ``whosmat`` alone costs 120 MB on it),
    so a 1 MB file could take gigabytes. A v5 file is refused with the fix in the message instead.
    """
    try:
        major, _ = scipy.io.matlab.matfile_version(io.BytesIO(raw))
    except Exception as exc:  # not a MATLAB file at all: loadmat would fail the same way
        raise RecordError(mat_path, f"not a readable MATLAB file: {exc}", reason="unreadable") from None
    if major != 0:
        version = {1: "v5/v6/v7", 2: "v7.3 (HDF5)"}.get(major, f"version {major}")
        raise RecordError(
            mat_path,
            f"a MATLAB {version} file; CinC 2021 signal files are MATLAB v4 (re-save it with "
            "scipy.io.savemat(path, {'val': int16_matrix}, format='4'))",
            reason="unsupported",
        )


def _load_mat(header: CincHeader, mat_path: Path) -> np.ndarray:
    try:
        raw = mat_path.read_bytes()  # one read of a ~120 kB file; the header checks below look at these bytes
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise RecordError(
            mat_path, f"signal file named in {header.path.name} not found", reason="missing_signal"
        ) from None
    except OSError as exc:
        raise RecordError(mat_path, f"not a readable MATLAB file: {exc}", reason="unreadable") from None
    size = len(raw)
    if size == 0:
        raise RecordError(mat_path, "the signal file is empty", reason="empty")
    _check_mat_v4_size(mat_path, size, raw[:_MAT4_HEADER])
    fast = _mat_v4_val(raw)
    if fast is not None:
        return fast
    _check_mat_version(mat_path, raw)
    try:
        # From the bytes already read, not the path: scipy reads each variable with stream.read(n) for the n its
        # header claims, and a file object allocates n up front (2**31 name bytes, 10**12 samples); an in-memory
        # stream returns only what the file holds, so a lying header fails as "not enough bytes" instead.
        mat = scipy.io.loadmat(io.BytesIO(raw))
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError on malformed files
        raise RecordError(mat_path, f"not a readable MATLAB file: {exc}", reason="unreadable") from None
    val = mat.get("val")
    if val is None:
        arrays = [v for k, v in mat.items() if not k.startswith("__")]
        if len(arrays) != 1:
            raise RecordError(
                mat_path,
                f"no variable 'val' (found {sorted(k for k in mat if not k.startswith('__'))})",
                reason="unreadable",
                field="val",
            )
        val = arrays[0]
    val = np.asarray(val)
    if val.ndim != 2 or val.dtype.kind not in "iuf":
        raise RecordError(
            mat_path,
            f"'val' must be a 2-D numeric matrix, got {val.dtype} {val.shape}",
            reason="unreadable",
            field="val",
        )
    return val


def read_cinc2021(path: str | os.PathLike[str], *, source: str | None = None) -> EcgRecord:
    """Read one CinC 2021 record from its ``.hea`` (or ``.mat``) path."""
    path = Path(path)
    hea = path.with_suffix(".hea") if path.suffix.lower() in (".mat", "") else path
    header = parse_cinc_header(hea)
    lead_names = normalize_leads(header.lead_names, hea)
    if len(set(header.signal_files)) != 1 or not header.signal_files[0].lower().endswith(".mat"):
        raise RecordError(
            hea,
            f"signal files {sorted(set(header.signal_files))}: a CinC record has one .mat file; "
            "use the WFDB reader for .dat records",
            reason="bad_header",
            field="file name",
        )
    mat_path = path_within(hea.parent, header.signal_files[0], source=hea, field="file name")
    val = _load_mat(header, mat_path)
    if val.shape[0] != header.n_leads:
        raise RecordError(
            mat_path,
            f"'val' has {val.shape[0]} rows but the header declares {header.n_leads} leads",
            reason="shape_mismatch",
            field="val",
        )
    if header.n_samples is not None and val.shape[1] != header.n_samples:
        raise RecordError(
            mat_path,
            f"'val' has {val.shape[1]} samples but the header declares {header.n_samples}",
            reason="shape_mismatch",
            field="val",
        )
    # min() first: one fast reduction instead of a (leads, n) comparison on every record without a NaN marker
    if val.dtype == np.int16 and header.formats[0] == "16" and val.size and val.min() == _WFDB_NAN_16:
        n_nan = int(np.count_nonzero(val == _WFDB_NAN_16))
        raise RecordError(
            mat_path, f"{n_nan} samples hold -32768, WFDB's 'no sample' value (NaN)", reason="non_finite", field="val"
        )
    gains = np.asarray(header.gains, dtype=np.float64)[:, None]
    base = np.asarray(header.baselines, dtype=np.float64)[:, None]
    scale = np.asarray([UNITS_TO_MV[u.lower()] for u in header.units], dtype=np.float64)[:, None]
    if (
        val.dtype.itemsize <= 2
        and np.all(scale == 1.0)
        and np.all(base == np.rint(base))
        and np.all(gains == gains.astype(np.float32))
    ):
        # float32 arithmetic gives the same numbers as wfdb's float64 dac() rounded to float32: the
        # subtraction is exact and a float64 division rounded to float32 is the correctly rounded float32
        # quotient (53 >= 2*24 + 2), at half the memory traffic on 30-minute records. The subtraction casts
        # on the fly into a C-ordered array (val may be a Fortran-ordered view of the file's bytes).
        signal = np.empty(val.shape, dtype=np.float32)
        np.subtract(val, base.astype(np.float32), out=signal, dtype=np.float32)
        signal /= gains.astype(np.float32)
    else:
        signal = np.ascontiguousarray(((val.astype(np.float64) - base) / gains * scale).astype(np.float32))
    meta = {"format": "cinc2021", **check_signal(signal, mat_path, lead_names, finite=val.dtype.kind != "f")}
    for key in ("rx", "hx", "sx"):
        value = header.comments.get(key, "")
        if value and value.lower() != "unknown":
            meta[key] = value
    return EcgRecord(
        record_id=header.record_id,
        signal=signal,
        fs=header.fs,
        lead_names=lead_names,
        codes=header.codes,
        age=header.age,
        sex=header.sex,
        source=source if source is not None else source_of(hea),
        patient_id=None,
        path=hea,
        meta=meta,
    )


def read_wfdb_record(path: str | os.PathLike[str], *, source: str | None = None) -> EcgRecord:
    """Read a plain WFDB record (``.hea`` + ``.dat``) with wfdb; ``#Age/#Sex/#Dx`` comments are used if present."""
    path = Path(path)
    hea = path.with_suffix(".hea") if path.suffix.lower() in (".dat", "") else path
    rec = read_wfdb(hea)
    lead_names = normalize_leads(rec.lead_names, hea)
    meta = {"format": "wfdb", **check_signal(rec.signal, hea, lead_names)}
    comments = parse_comments(rec.comments)
    return EcgRecord(
        record_id=hea.stem,
        signal=rec.signal,
        fs=rec.fs,
        lead_names=lead_names,
        codes=parse_codes(comments.get("dx", "")),
        age=parse_age(comments.get("age")),
        sex=parse_sex(comments.get("sex")),
        source=source if source is not None else source_of(hea),
        path=hea,
        meta=meta,
    )
