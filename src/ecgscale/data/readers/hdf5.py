"""HDF5 corpora: SPH (one ``.h5`` per record + ``metadata.csv``) and CODE-15% (``exams.csv`` + ``exams_part*.hdf5``).

Both are read with ``h5py``, lazily: discovery reads only ``metadata.csv``/``exams.csv`` and each part file's
small ``exam_id`` vector, and a read opens the file and slices one record, so a 2 GB CODE-15% part is never
loaded. Declared shapes and chunk sizes are checked before any slice is read, so a lying or hostile file
costs at most ``MAX_READ_BYTES`` of memory.

- SPH (Liu et al., Scientific Data 2022): ``<ECG_ID>.h5`` holds dataset ``ecg`` shaped (12, n) in mV, leads in
  the standard order; ``metadata.csv`` gives ``ECG_ID`` (with or without ``.h5``), ``Patient_ID``, ``Age``,
  ``Sex``, ``N`` (samples), ``fs`` and ``SNOMEDCTCode`` (comma-separated SNOMED CT codes, so SPH records
  are scored in the CinC 2021 space by default). A ``.h5`` without a metadata row is skipped as ``no_labels``.
- CODE-15% (Ribeiro et al.): ``exams_part{i}.hdf5`` holds ``tracings`` (N, 4096, 12) float32 at 400 Hz, leads
  DI, DII, DIII, AVR, AVL, AVF, V1–V6, and ``exam_id`` (N,); 7 s and 10 s tracings are zero-padded at both
  ends to 4096 samples, and the padding is stripped here (the first to the last sample where any lead is
  non-zero). Units: read as mV (the dataset's README says "1e-4 V", but its amplitudes are those of mV).
  Labels are the ``exams.csv`` columns ``1dAVb RBBB LBBB SB ST AF`` that are true; rows with ``exam_id`` 0 are
  the parts' padding rows and are not records.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgscale.data.labels import LabelClass, LabelSpace, cinc2021_scored
from ecgscale.data.readers.base import (
    RecordRef,
    Skip,
    check_signal,
    parse_age,
    parse_codes,
    parse_sex,
    record_from_ref,
)
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.errors import RecordError

__all__ = [
    "CODE15_CLASSES",
    "CODE15_EXAMS",
    "CODE15_LEADS",
    "MAX_READ_BYTES",
    "SPH_METADATA",
    "code15_refs",
    "code15_space",
    "code15_to_snomed",
    "is_code15_folder",
    "is_sph_folder",
    "read_code15",
    "read_sph",
    "sph_refs",
]

SPH_METADATA = "metadata.csv"
CODE15_EXAMS = "exams.csv"
CODE15_FS = 400.0
#: CODE-15% lead order (DI, DII, DIII, AVR, AVL, AVF, V1–V6) in ecgscale's spelling.
CODE15_LEADS: tuple[str, ...] = STANDARD_LEADS
#: The six abnormality columns of ``exams.csv``, in the dataset's order.
CODE15_CLASSES: tuple[str, ...] = ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")
#: Their CinC 2021 counterparts (SNOMED CT codes of scored classes), used only when asked (``--labels cinc2021``).
_CODE15_SNOMED = {
    "1dAVb": "270492004",
    "RBBB": "59118001",
    "LBBB": "164909002",
    "SB": "426177001",
    "ST": "427084000",
    "AF": "164889003",
}
#: Most bytes one record read may decompress (one HDF5 chunk or one record slice).
MAX_READ_BYTES = 64 * 2**20
_MAX_LEADS = 16
_MAX_CSV_BYTES = 512 * 2**20
_SPH_DATASET = "ecg"


def code15_space() -> LabelSpace:
    """The six CODE-15% classes (keys as in ``exams.csv``), with their CinC 2021 abbreviations and groups."""
    scored = {code: c for c in cinc2021_scored().classes for code in c.codes}
    classes = []
    for name in CODE15_CLASSES:
        match = scored[_CODE15_SNOMED[name]]
        classes.append(LabelClass(name, (name,), match.abbreviation, match.name, match.group, True))
    return LabelSpace("code15", classes)


def code15_to_snomed() -> dict[str, str]:
    """CODE-15% class name → SNOMED CT code of the matching scored CinC 2021 class."""
    return dict(_CODE15_SNOMED)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # a dependency of the package, but a broken environment should say what to do
        raise ImportError("reading HDF5 corpora needs h5py: pip install h5py") from None
    return h5py


# --------------------------------------------------------------------------------------------------- shared
def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        size = path.stat().st_size
        if size > _MAX_CSV_BYTES:
            why = f"{size} bytes; a metadata table above {_MAX_CSV_BYTES} is refused"
            raise RecordError(path, why, reason="bad_header")
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RecordError(path, "not UTF-8 text", reason="bad_header") from None
    except OSError as exc:
        raise RecordError(path, f"cannot read: {exc}", reason="unreadable") from None
    if "\x00" in text:
        raise RecordError(path, "holds binary data (NUL bytes), not CSV text", reason="bad_header")
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise RecordError(path, f"not a readable CSV table: {exc}", reason="bad_header") from None
    return [{str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in rows]


def _open(path: Path) -> Any:
    """An open ``h5py.File``; any failure becomes a ``RecordError`` naming the file."""
    h5py = _h5py()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RecordError(path, "signal file not found", reason="missing_signal") from None
    except OSError as exc:
        raise RecordError(path, f"cannot read: {exc}", reason="unreadable") from None
    if size == 0:
        raise RecordError(path, "the file is empty", reason="empty")
    try:
        return h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise RecordError(path, f"not a readable HDF5 file: {exc}", reason="unreadable") from None


#: What h5py raises on a damaged file (HDF5's C errors surface as any of these, e.g. "wrong B-tree signature").
_H5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError)


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Any h5py failure on a damaged file (outside the checks that name the problem) becomes a ``RecordError``."""
    try:
        yield
    except RecordError:
        raise
    except _H5_ERRORS as exc:
        raise RecordError(path, f"not a readable HDF5 file: {type(exc).__name__}: {exc}", reason="unreadable") from None


def _dataset(fh: Any, name: str, path: Path, ndim: int) -> Any:
    h5py = _h5py()
    try:
        obj = fh.get(name)
        found = None if isinstance(obj, h5py.Dataset) else sorted(fh.keys())
        shape, dtype = (obj.shape, obj.dtype) if found is None else (None, None)
    except _H5_ERRORS as exc:
        raise RecordError(path, f"cannot open dataset {name!r}: {exc}", reason="unreadable", field=name) from None
    if found is not None:
        raise RecordError(path, f"no dataset {name!r} (found {found})", reason="unreadable", field=name)
    if len(shape) != ndim or dtype.kind not in "iuf":
        raise RecordError(
            path,
            f"dataset {name!r} must be a {ndim}-D numeric array, got {dtype} {shape}",
            reason="shape_mismatch",
            field=name,
        )
    return obj


def _check_chunks(ds: Any, path: Path, name: str) -> None:
    """Reading one record decompresses whole chunks: a chunk above ``MAX_READ_BYTES`` is refused up front."""
    try:
        chunks = ds.chunks
    except _H5_ERRORS as exc:
        raise RecordError(path, f"cannot read the layout of {name!r}: {exc}", reason="unreadable", field=name) from None
    if chunks is not None and math.prod(chunks) * ds.dtype.itemsize > MAX_READ_BYTES:
        raise RecordError(
            path,
            f"dataset {name!r} has chunks {chunks} above {MAX_READ_BYTES // 2**20} MiB; "
            "a single record cannot be read lazily (re-chunk it, e.g. one record per chunk)",
            reason="unsupported",
            field=name,
        )


def _read_slice(ds: Any, index: Any, path: Path, name: str) -> np.ndarray:
    try:
        return np.asarray(ds[index], dtype=np.float32)
    except _H5_ERRORS as exc:  # truncated file, broken filter, bad chunk
        raise RecordError(path, f"cannot read dataset {name!r}: {exc}", reason="unreadable", field=name) from None


# --------------------------------------------------------------------------------------------------- SPH
def is_sph_folder(files: list[str]) -> bool:
    return SPH_METADATA in files and any(f.lower().endswith(".h5") for f in files)


def _sph_id(text: str) -> str:
    return text[:-3] if text.lower().endswith(".h5") else text


def sph_refs(folder: str | os.PathLike[str]) -> tuple[list[RecordRef], list[Skip]]:
    """One reference per ``.h5`` of an SPH folder that has a ``metadata.csv`` row; the rest are skips."""
    folder = Path(folder)
    meta_path = folder / SPH_METADATA
    rows = _read_csv(meta_path)
    if rows and "ECG_ID" not in rows[0]:
        raise RecordError(meta_path, f"no ECG_ID column (found {sorted(rows[0])})", reason="bad_header", field="ECG_ID")
    by_id = {_sph_id(r["ECG_ID"]): r for r in rows if r.get("ECG_ID")}
    refs: list[RecordRef] = []
    skipped: list[Skip] = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".h5" and p.is_file()):
        row = by_id.get(path.stem)
        if row is None:
            skipped.append(Skip(path, "no_labels", f"{path}: no row in {meta_path.name} (ECG_ID {path.stem})"))
            continue
        extra: dict[str, Any] = {
            "codes": list(parse_codes(row.get("SNOMEDCTCode", ""))),
            "age": parse_age(row.get("Age")),
            "sex": parse_sex(row.get("Sex")),
            "patient_id": row.get("Patient_ID") or None,
            "fs": _positive(row.get("fs"), 500.0),
            "aha_codes": row.get("AHA_Code", ""),
        }
        n = _positive(row.get("N"), None)
        if n is not None:
            extra["n_samples"] = int(n)
        refs.append(RecordRef(path=path, format="sph", source="sph", record_id=path.stem, extra=extra))
    found = {r.record_id for r in refs} | {s.path.stem for s in skipped}
    for rid in sorted(set(by_id) - found):  # listed but absent, as PTB-XL rows without their record
        path = folder / f"{rid}.h5"
        skipped.append(Skip(path, "missing_signal", f"{path}: listed in {meta_path.name} but not found"))
    return refs, skipped


def _positive(text: str | None, default: float | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


def read_sph(ref: RecordRef) -> EcgRecord:
    """Read one SPH record (its metadata row already in ``ref.extra``)."""
    path = Path(ref.path)
    extra = ref.extra
    with _guard(path), _open(path) as fh:
        ds = _dataset(fh, _SPH_DATASET, path, 2)
        rows, cols = ds.shape
        transpose = rows > _MAX_LEADS and cols == len(STANDARD_LEADS)  # samples × leads: accepted, transposed
        n_leads, n_samples = (cols, rows) if transpose else (rows, cols)
        if n_leads != len(STANDARD_LEADS):
            raise RecordError(
                path,
                f"dataset 'ecg' has shape {ds.shape}; SPH records are 12 leads × samples",
                reason="shape_mismatch",
                field=_SPH_DATASET,
            )
        if n_leads * n_samples * 4 > MAX_READ_BYTES:
            raise RecordError(
                path,
                f"dataset 'ecg' declares {n_samples} samples per lead, above the {MAX_READ_BYTES // 2**20} MiB "
                "read limit",
                reason="too_large",
                field=_SPH_DATASET,
            )
        _check_chunks(ds, path, _SPH_DATASET)
        x = _read_slice(ds, (), path, _SPH_DATASET)
    signal = np.ascontiguousarray(x.T if transpose else x)
    expected = extra.get("n_samples")
    if expected is not None and int(expected) != signal.shape[1]:
        raise RecordError(
            path,
            f"'ecg' has {signal.shape[1]} samples but {SPH_METADATA} says N={expected}",
            reason="shape_mismatch",
            field=_SPH_DATASET,
        )
    meta = {"format": "sph", **check_signal(signal, path, STANDARD_LEADS)}
    if extra.get("aha_codes"):
        meta["aha_codes"] = str(extra["aha_codes"])
    return record_from_ref(ref, signal, float(extra.get("fs") or 500.0), STANDARD_LEADS, path=path, meta=meta)


# --------------------------------------------------------------------------------------------------- CODE-15%
def is_code15_folder(files: list[str]) -> bool:
    return CODE15_EXAMS in files and any(f.lower().startswith("exams_part") and f.endswith(".hdf5") for f in files)


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "1.0", "yes")


def _exam_table(path: Path) -> dict[int, dict[str, str]]:
    rows = _read_csv(path)
    if rows and "exam_id" not in rows[0]:
        raise RecordError(path, f"no exam_id column (found {sorted(rows[0])})", reason="bad_header", field="exam_id")
    out: dict[int, dict[str, str]] = {}
    for row in rows:
        try:
            out[int(float(row["exam_id"]))] = row
        except ValueError:
            continue  # a row without a usable id cannot match any tracing
    return out


def _part_exam_ids(part: Path) -> Iterator[tuple[int, int]]:
    """``(row, exam_id)`` of one part file, after checking its two datasets agree (read: ``exam_id`` only)."""
    with _guard(part), _open(part) as fh:
        tracings = _dataset(fh, "tracings", part, 3)
        ids = _dataset(fh, "exam_id", part, 1)
        n, n_samples, n_leads = tracings.shape
        if n_leads != len(CODE15_LEADS):
            raise RecordError(
                part, f"'tracings' has shape {tracings.shape}; CODE-15% is (N, samples, 12)", reason="shape_mismatch"
            )
        if ids.shape[0] != n:
            raise RecordError(
                part, f"'exam_id' has {ids.shape[0]} entries but 'tracings' {n} records", reason="shape_mismatch"
            )
        if n_samples * n_leads * 4 > MAX_READ_BYTES or n * ids.dtype.itemsize > MAX_READ_BYTES:
            raise RecordError(part, f"'tracings' declares {tracings.shape}, above the read limit", reason="too_large")
        _check_chunks(tracings, part, "tracings")
        exam_ids = _read_slice(ids, (), part, "exam_id") if ids.dtype.kind == "f" else np.asarray(ids[()])
    yield from ((i, int(e)) for i, e in enumerate(exam_ids.tolist()))


def code15_refs(folder: str | os.PathLike[str]) -> tuple[list[RecordRef], list[Skip]]:
    """One reference per labelled exam of the part files in ``folder``; unreadable parts and unlisted exams skip."""
    folder = Path(folder)
    table = _exam_table(folder / CODE15_EXAMS)
    refs: list[RecordRef] = []
    skipped: list[Skip] = []
    parts = sorted(p for p in folder.iterdir() if p.name.startswith("exams_part") and p.suffix == ".hdf5")
    for part in parts:
        try:
            pairs = list(_part_exam_ids(part))
        except RecordError as exc:
            skipped.append(Skip.from_error(exc))
            continue
        for row, exam_id in pairs:
            if exam_id == 0:  # the parts' padding rows: all-zero tracings, not exams
                continue
            info = table.get(exam_id)
            if info is None:
                message = f"{part} [row {row}]: exam_id {exam_id} has no row in {CODE15_EXAMS}"
                skipped.append(Skip(part, "no_labels", message))
                continue
            refs.append(
                RecordRef(
                    path=part,
                    format="code15",
                    source="code15",
                    record_id=str(exam_id),
                    extra=_code15_extra(info, row),
                )
            )
    return refs, skipped


def _code15_extra(info: Mapping[str, str], row: int) -> dict[str, Any]:
    sex = None
    if info.get("is_male", "") != "":
        sex = "M" if _truthy(info["is_male"]) else "F"
    return {
        "row": row,
        "codes": [c for c in CODE15_CLASSES if _truthy(info.get(c))],
        "age": parse_age(info.get("age")),
        "sex": sex,
        "patient_id": info.get("patient_id") or None,
        "fs": CODE15_FS,
    }


def read_code15(ref: RecordRef) -> EcgRecord:
    """Read one exam: one (samples, 12) slice of its part file, transposed, zero padding stripped."""
    part = Path(ref.path)
    row = int(ref.extra["row"])
    exam_id = int(ref.record_id)
    where = f"tracings[{row}]"
    with _guard(part), _open(part) as fh:
        tracings = _dataset(fh, "tracings", part, 3)
        ids = _dataset(fh, "exam_id", part, 1)
        if row >= min(tracings.shape[0], ids.shape[0]) or tracings.shape[2] != len(CODE15_LEADS):
            raise RecordError(part, f"no record at row {row} of 'tracings' {tracings.shape}", reason="shape_mismatch")
        if tracings.shape[1] * tracings.shape[2] * 4 > MAX_READ_BYTES:
            raise RecordError(part, f"'tracings' declares {tracings.shape[1]} samples per record", reason="too_large")
        _check_chunks(tracings, part, "tracings")
        if int(ids[row]) != exam_id:  # the file changed since discovery: never return another exam's tracing
            raise RecordError(
                part, f"row {row} holds exam_id {int(ids[row])}, expected {exam_id}", reason="shape_mismatch"
            )
        x = _read_slice(tracings, row, part, where)
    active = np.flatnonzero(np.any(x != 0, axis=1))
    if active.size == 0:
        raise RecordError(part, f"exam {exam_id} ({where}) is all zeros", reason="empty", field=where)
    signal = np.ascontiguousarray(x[active[0] : active[-1] + 1].T)
    meta = {"format": "code15", "row": str(row), **check_signal(signal, f"{part} [{where}]", CODE15_LEADS)}
    return record_from_ref(ref, signal, CODE15_FS, CODE15_LEADS, path=part, meta=meta)
