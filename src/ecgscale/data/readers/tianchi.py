"""Alibaba Tianchi "Hefei High-tech Cup" (2019) ECGs: one text file per record plus a label file.

A record ``<id>.txt`` holds a header ``I II V1 V2 V3 V4 V5 V6`` and rows of integers (500 Hz, 1 unit =
4.88 µV). The four missing limb leads are derived exactly (Einthoven/Goldberger): III = II − I,
aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2, and the record is returned in the standard 12-lead order.

The label file (``hf_round1_label.txt``, ``hf_round2_train.txt``; test-set subject files have no names) is
tab separated: ``<id>.txt``, age, ``MALE``/``FEMALE``/empty, then Chinese arrhythmia names, which become
the record's ``codes``. The class list (``hf_round*_arrythmia.txt``, sic) has one name per line.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgscale.data.readers.base import check_signal, normalize_leads, parse_age, parse_codes, parse_sex
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.data.writers import TIANCHI_LEADS, TIANCHI_UNIT_MV
from ecgscale.errors import RecordError
from ecgscale.fileio import path_within

__all__ = [
    "TIANCHI_FS",
    "TianchiLabel",
    "derive_limb_leads",
    "find_label_files",
    "is_class_file",
    "is_label_file",
    "label_file_refusals",
    "label_table",
    "read_tianchi",
    "read_tianchi_classes",
    "read_tianchi_labels",
    "tianchi_labels_for",
]

log = logging.getLogger(__name__)

TIANCHI_FS = 500.0
_LABEL_LINE_RE = re.compile(r"^[^\t\n]+\.txt\t")
_LOADTXT_ROW_RE = re.compile(r"(at row|row) (\d+)")


@dataclass(frozen=True, slots=True)
class TianchiLabel:
    """One row of a label file; ``names`` are the Chinese arrhythmia names (empty for test-set rows)."""

    age: float | None
    sex: str | None
    names: tuple[str, ...]
    label_file: str


def _decode(raw: bytes, path: Path) -> str:
    # The competition files are UTF-8; some redistributed copies are GB18030 (the Windows Chinese code page).
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise RecordError(path, "neither UTF-8 nor GB18030 text", reason="bad_labels")


def is_class_file(path: Path) -> bool:
    """A class list: ``hf_round1_arrythmia.txt`` / ``hf_round2_arrythmia.txt`` (or spelt ``arrhythmia``)."""
    name = path.name.lower()
    return name.endswith(".txt") and ("arrythmia" in name or "arrhythmia" in name)


def is_label_file(path: Path) -> bool:
    """A label/subject file: its first non-empty line starts ``<something>.txt<TAB>``."""
    if path.suffix.lower() != ".txt" or is_class_file(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    first = next((ln for ln in head.split(b"\n") if ln.strip()), b"")
    try:
        return bool(_LABEL_LINE_RE.match(first.decode("utf-8", errors="ignore").lstrip("\ufeff")))
    except ValueError:
        return False


def _not_a_record_name(path: Path, lineno: int, name: str) -> RecordError:
    return RecordError(
        path,
        f"line {lineno}: first field {name!r} is not a record file name '<id>.txt'",
        reason="bad_labels",
        field=f"line {lineno}",
    )


@functools.lru_cache(maxsize=16)
def _labels_cached(path: str, mtime_ns: int, size: int) -> tuple[dict[str, TianchiLabel], tuple[RecordError, ...]]:
    """The table of a label file and the rows refused for an unsafe record name (logged once per file version)."""
    p = Path(path)
    text = _decode(p.read_bytes(), p)
    out: dict[str, TianchiLabel] = {}
    refused: list[RecordError] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        name = fields[0].strip()
        if not name.endswith(".txt"):
            raise _not_a_record_name(p, lineno, name)
        try:  # the name is a file beside the label file: one that points elsewhere is never read, nor labelled
            inside = path_within(p.parent, name, source=p, field=f"line {lineno}")
        except RecordError as exc:
            log.warning("%s", exc)
            refused.append(exc)
            continue
        rid = inside.relative_to(p.parent).as_posix()[: -len(".txt")]  # "sub/../A1.txt" labels A1
        if not rid.rpartition("/")[2].strip():  # ".txt", "./.txt", "sub/ .txt": no record id
            raise _not_a_record_name(p, lineno, name)
        age = parse_age(fields[1]) if len(fields) > 1 else None
        sex_txt = fields[2].strip() if len(fields) > 2 else ""
        if sex_txt and sex_txt.upper() not in ("MALE", "FEMALE"):
            raise RecordError(
                p,
                f"line {lineno}: gender {sex_txt!r} is not MALE, FEMALE or empty",
                reason="bad_labels",
                field=f"line {lineno}",
            )
        label = TianchiLabel(age, parse_sex(sex_txt), parse_codes(fields[3:]), str(p))
        if rid in out:
            log.debug("%s: record %s listed twice; the first row is kept", p, rid)
            continue
        out[rid] = label
    return out, tuple(refused)


def _label_file(path: str | os.PathLike[str]) -> tuple[dict[str, TianchiLabel], tuple[RecordError, ...]]:
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise RecordError(p, "label file not found", reason="missing_labels") from None
    return _labels_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def label_table(path: str | os.PathLike[str]) -> Mapping[str, TianchiLabel]:
    """The cached, shared table of a label file (do not modify); re-read when the file changes."""
    return _label_file(path)[0]


def label_file_refusals(path: str | os.PathLike[str]) -> tuple[RecordError, ...]:
    """The rows of a label file left out because their record name is unsafe (``reason="unsafe_path"``).

    Discovery turns each into a skip, so they are counted by reason like every other unusable input.
    """
    return _label_file(path)[1]


def read_tianchi_labels(path: str | os.PathLike[str]) -> dict[str, TianchiLabel]:
    """Record id (without ``.txt``) → its label row (a copy of the cached table)."""
    return dict(label_table(path))


def read_tianchi_classes(path: str | os.PathLike[str]) -> list[str]:
    """The class names of a ``hf_round*_arrythmia.txt`` file, in file order, de-duplicated."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise RecordError(p, "class list not found", reason="missing_labels") from None
    return list(parse_codes(line for line in _decode(raw, p).splitlines()))


def find_label_files(directory: Path) -> list[Path]:
    """Label files in ``directory`` (not recursive), sorted by name."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and is_label_file(p)]


def tianchi_labels_for(record_path: Path) -> TianchiLabel | None:
    """The label row of a record file, from a label file in its folder or the folder above, else ``None``."""
    rid = record_path.stem
    for folder in (record_path.parent, record_path.parent.parent):
        for label_file in find_label_files(folder):
            row = label_table(label_file).get(rid)
            if row is not None:
                return row
    return None


def derive_limb_leads(eight: np.ndarray) -> np.ndarray:
    """``(8, n)`` leads I, II, V1–V6 → ``(12, n)`` in ``STANDARD_LEADS`` order (III, aVR, aVL, aVF derived)."""
    lead_i, lead_ii = eight[0], eight[1]
    out = np.empty((12, eight.shape[1]), dtype=eight.dtype)
    out[0] = lead_i
    out[1] = lead_ii
    out[2] = lead_ii - lead_i
    out[3] = -(lead_i + lead_ii) / 2
    out[4] = lead_i - lead_ii / 2
    out[5] = lead_ii - lead_i / 2
    out[6:] = eight[2:]
    return out


def _parse_rows(body: str, path: Path) -> np.ndarray:
    if not body.strip():
        raise RecordError(path, "no sample rows after the lead header", reason="empty")
    try:
        # numpy's C loadtxt is the fastest exact parser here (~2 ms per record, pandas ~4 ms) and its
        # messages say which row and column are wrong.
        values = np.loadtxt(io.StringIO(body), dtype=np.float64, ndmin=2, comments=None)
    except ValueError as exc:
        msg = str(exc)
        m = _LOADTXT_ROW_RE.search(msg)
        where = f" (file line {int(m[2]) + 1})" if m else ""
        raise RecordError(path, f"unreadable sample row{where}: {msg}", reason="bad_row") from None
    frac = np.isfinite(values) & (values != np.rint(values))  # NaN/inf are reported by check_signal
    if frac.any():
        row, col = (int(x) for x in np.argwhere(frac)[0])
        value = float(values[row, col])
        raise RecordError(
            path,
            f"non-integer value {value:g} at file line {row + 2}, column {col + 1}; "
            "Tianchi samples are integer units of 4.88 µV",
            reason="bad_row",
        )
    return values


def read_tianchi(
    path: str | os.PathLike[str],
    *,
    label: TianchiLabel | None = None,
    source: str = "tianchi",
    find_labels: bool = True,
) -> EcgRecord:
    """Read one Tianchi record; labels come from ``label`` or, if ``find_labels``, a nearby label file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(path, "record file not found", reason="missing_signal") from None
    if not raw.strip():
        raise RecordError(path, "the file is empty", reason="empty")
    if b"\x00" in raw:
        raise RecordError(path, "binary data (NUL bytes), not a Tianchi text record", reason="bad_header")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RecordError(path, "non-ASCII bytes in a Tianchi text record", reason="bad_header") from None
    header, _, body = text.partition("\n")
    names = header.split()
    leads = normalize_leads(names, path)
    if leads != TIANCHI_LEADS:
        raise RecordError(path, f"lead header {names} must be {list(TIANCHI_LEADS)}", reason="bad_leads", field="leads")
    values = _parse_rows(body, path)
    if values.shape[1] != len(TIANCHI_LEADS):
        raise RecordError(path, f"{values.shape[1]} columns per row, expected {len(TIANCHI_LEADS)}", reason="bad_row")
    signal = derive_limb_leads(values.T * TIANCHI_UNIT_MV).astype(np.float32)
    meta = {"format": "tianchi", **check_signal(signal, path, STANDARD_LEADS)}
    if label is None and find_labels:
        label = tianchi_labels_for(path)
    if label is not None:
        meta["label_file"] = label.label_file
    return EcgRecord(
        record_id=path.stem,
        signal=signal,
        fs=TIANCHI_FS,
        lead_names=STANDARD_LEADS,
        codes=label.names if label else (),
        age=label.age if label else None,
        sex=label.sex if label else None,
        source=source,
        path=path,
        meta=meta,
    )
