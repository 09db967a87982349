"""Find records under files and folders, detect their format, and read them; one bad file never stops a walk.

Detection, per folder (walked in sorted order, so results are deterministic):

- a folder holding ``ptbxl_database.csv`` is a PTB-XL database: one reference per CSV row (its
  ``records100``/``records500`` trees are not walked again as plain WFDB);
- ``<id>.hea`` whose signal file is ``.mat`` → ``cinc2021``; ``.dat`` → plain ``wfdb``;
- ``<id>.txt`` listed in a Tianchi label file in its folder or any folder above it (up to the path given)
  → ``tianchi``; a ``.txt`` with a lead header but no label row is skipped as ``no_labels`` (test sets);
  other ``.txt`` files (READMEs, class lists, label files) are not records;
- a ``.mat`` or ``.dat`` without its ``.hea`` is skipped as ``missing_header``;
- a folder holding ``exams.csv`` and ``exams_part*.hdf5`` is CODE-15%: one reference per exam (``code15``);
- ``<id>.h5`` beside a ``metadata.csv`` is an SPH record (``sph``); an ``.h5``/``.hdf5`` file outside such a
  folder is skipped as ``no_labels``.

Discovery reads headers and label files only (never a signal), so ``extra`` already carries codes, age, sex
and, for WFDB headers, ``fs``/``n_samples``: enough for label statistics of 88k records in seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ecgscale.data import labels as _labels
from ecgscale.data.readers.base import Discovery, RecordRef, Skip, normalize_leads, source_of
from ecgscale.data.readers.cinc2021 import parse_cinc_header, read_cinc2021, read_wfdb_record
from ecgscale.data.readers.hdf5 import (
    SPH_METADATA,
    code15_refs,
    code15_space,
    is_code15_folder,
    is_sph_folder,
    read_code15,
    read_sph,
    sph_refs,
)
from ecgscale.data.readers.label_table import TABLE_KEY
from ecgscale.data.readers.ptbxl import PTBXL_DATABASE, PTBXL_STATEMENTS, find_ptbxl_root, ptbxl_refs, read_ptbxl
from ecgscale.data.readers.tianchi import (
    TianchiLabel,
    find_label_files,
    is_class_file,
    is_label_file,
    label_file_refusals,
    label_table,
    read_tianchi,
    read_tianchi_classes,
)
from ecgscale.data.records import EcgRecord
from ecgscale.data.writers import TIANCHI_LEADS
from ecgscale.errors import RecordError
from ecgscale.fileio import path_within

__all__ = ["default_label_space", "discover", "read", "read_record"]


def _hea_ref(hea: Path) -> RecordRef:
    header = parse_cinc_header(hea)
    normalize_leads(header.lead_names, hea)
    files = sorted(set(header.signal_files))
    for name in files:
        if not os.path.isfile(path_within(hea.parent, name, source=hea, field="file name")):
            raise RecordError(hea.parent / name, f"signal file named in {hea.name} not found", reason="missing_signal")
    fmt = "cinc2021" if all(f.lower().endswith(".mat") for f in files) else "wfdb"
    return RecordRef(
        path=hea,
        format=fmt,
        source=source_of(hea),
        record_id=header.record_id,
        extra={
            "fs": header.fs,
            "n_samples": header.n_samples,
            "n_leads": header.n_leads,
            "codes": list(header.codes),
            "age": header.age,
            "sex": header.sex,
        },
    )


def _first_tokens(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        return fh.readline(256).decode("ascii", errors="replace").split()


def _looks_like_tianchi(path: Path) -> bool:
    """A lead header line: eight short tokens (lead names, right or wrong)."""
    try:
        tokens = _first_tokens(path)
    except OSError:
        return False
    return len(tokens) == len(TIANCHI_LEADS) and all(len(t) <= 4 for t in tokens)


def _tianchi_ref(path: Path, label: TianchiLabel, classes_file: Path | None) -> RecordRef:
    names = _first_tokens(path)
    if not names:
        if path.stat().st_size == 0:
            raise RecordError(path, "the file is empty", reason="empty")
        raise RecordError(
            path, f"first line is not the lead header {' '.join(TIANCHI_LEADS)}", reason="bad_leads", field="leads"
        )
    if normalize_leads(names, path) != TIANCHI_LEADS:
        raise RecordError(path, f"lead header {names} must be {list(TIANCHI_LEADS)}", reason="bad_leads", field="leads")
    return RecordRef(
        path=path,
        format="tianchi",
        source="tianchi",
        record_id=path.stem,
        extra={
            "fs": 500.0,
            "codes": list(label.names),
            "age": label.age,
            "sex": label.sex,
            "label_file": label.label_file,
            "classes_file": None if classes_file is None else str(classes_file),
        },
    )


@functools.lru_cache(maxsize=256)
def _label_files(folder: str) -> tuple[str, ...]:
    return tuple(str(p) for p in find_label_files(Path(folder)))


@functools.lru_cache(maxsize=256)
def _class_file(folder: str) -> str | None:
    try:
        found = sorted(p for p in Path(folder).iterdir() if p.is_file() and is_class_file(p))
    except OSError:
        return None
    return str(found[-1]) if found else None  # the latest round when both class lists sit together


def _tianchi_label(path: Path, top: Path) -> tuple[TianchiLabel | None, Path | None]:
    """The label row of ``path`` from the nearest label file between its folder and ``top`` (inclusive)."""
    folder = path.parent
    while True:
        for lf in _label_files(str(folder)):
            row = label_table(lf).get(path.stem)
            if row is not None:
                cf = _class_file(str(Path(lf).parent))
                return row, None if cf is None else Path(cf)
        if folder == top or folder.parent == folder or top not in folder.parents:
            return None, None
        folder = folder.parent


def _classify_file(path: Path, top: Path, refs: list[RecordRef], skipped: list[Skip]) -> None:
    suffix = path.suffix.lower()
    try:
        if suffix == ".hea":
            refs.append(_hea_ref(path))
        elif suffix in (".mat", ".dat"):
            if not path.with_suffix(".hea").is_file():
                raise RecordError(path, "signal file without its .hea header", reason="missing_header")
        elif suffix in (".h5", ".hdf5"):  # reached only outside SPH and CODE-15% folders
            raise RecordError(
                path,
                f"HDF5 file outside an SPH folder ({SPH_METADATA} beside .h5 records) or a CODE-15% folder "
                "(exams.csv beside exams_part*.hdf5)",
                reason="no_labels",
            )
        elif suffix == ".txt":
            if is_class_file(path):
                return
            if is_label_file(path):  # not a record; its rows with unsafe record names count as skips
                with contextlib.suppress(RecordError):  # a malformed label file is reported by its records
                    skipped.extend(Skip.from_error(exc) for exc in label_file_refusals(path))
                return
            label, classes = _tianchi_label(path, top)
            if label is not None and label.names:
                refs.append(_tianchi_ref(path, label, classes))
            elif label is not None:
                raise RecordError(
                    path,
                    f"Tianchi record whose row in {Path(label.label_file).name} has no "
                    "arrhythmia names (a test-set subject file?)",
                    reason="no_labels",
                )
            elif _looks_like_tianchi(path):
                raise RecordError(
                    path,
                    "Tianchi record without a label row in a label file of this or a parent "
                    "folder (test-set records are read with read_record)",
                    reason="no_labels",
                )
    except RecordError as exc:
        skipped.append(Skip.from_error(exc))
    except OSError as exc:
        skipped.append(Skip(path, "unreadable", f"{path}: {exc}"))


def discover(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, ptbxl_fs: int = 500) -> Discovery:
    """Walk files and folders and return readable record references plus the files skipped and why."""
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    refs: list[RecordRef] = []
    skipped: list[Skip] = []
    _label_files.cache_clear()  # folders may have changed since the last call
    _class_file.cache_clear()
    for given in paths:
        top = Path(given)
        if not top.exists():
            skipped.append(Skip(top, "not_found", f"{top}: no such file or directory"))
            continue
        if top.is_file():
            if top.name == PTBXL_DATABASE:
                found, bad = ptbxl_refs(top.parent, fs=ptbxl_fs)
                refs.extend(found)
                skipped.extend(bad)
            elif top.suffix.lower() == ".h5" and (top.parent / SPH_METADATA).is_file():
                _hdf5_refs(sph_refs, top.parent, refs, skipped, only=top)
            else:  # a single file: its label file may sit in its folder or the folder above, as for read_record
                _classify_file(top, top.parent.parent, refs, skipped)
            continue
        for folder, dirs, files in os.walk(top):
            dirs.sort()
            here = Path(folder)
            if PTBXL_DATABASE in files:
                try:
                    found, bad = ptbxl_refs(here, fs=ptbxl_fs)
                except RecordError as exc:
                    skipped.append(Skip.from_error(exc))
                else:
                    refs.extend(found)
                    skipped.extend(bad)
                dirs[:] = [d for d in dirs if not d.startswith("records")]
                continue
            claimed: tuple[str, ...] = ()
            if is_code15_folder(files):
                _hdf5_refs(code15_refs, here, refs, skipped)
                claimed += (".hdf5",)
            if is_sph_folder(files):
                _hdf5_refs(sph_refs, here, refs, skipped)
                claimed += (".h5",)
            for name in sorted(files):
                if not (claimed and name.lower().endswith(claimed)):
                    _classify_file(here / name, top, refs, skipped)
    if len(paths) == 1:  # one walk cannot reach a file twice; resolving 88k paths is not free
        return Discovery(refs, skipped)
    # The same record reached through two overlapping paths is kept once (a CODE-15% part holds many records).
    seen: set[tuple[str, str]] = set()
    unique = []
    for ref in refs:
        key = (os.path.realpath(ref.path), ref.record_id)
        if key not in seen:
            seen.add(key)
            unique.append(ref)
    return Discovery(unique, skipped)


def _hdf5_refs(
    finder: Callable[[Path], tuple[list[RecordRef], list[Skip]]],
    folder: Path,
    refs: list[RecordRef],
    skipped: list[Skip],
    *,
    only: Path | None = None,
) -> None:
    try:
        found, bad = finder(folder)
    except RecordError as exc:
        skipped.append(Skip.from_error(exc))
        return
    except OSError as exc:
        skipped.append(Skip(folder, "unreadable", f"{folder}: {exc}"))
        return
    if only is not None:
        found = [r for r in found if r.path.name == only.name]
        bad = [s for s in bad if s.path.name == only.name]
    refs.extend(found)
    skipped.extend(bad)


def read(ref: RecordRef) -> EcgRecord:
    """Read the record a :class:`RecordRef` points to; raises ``RecordError`` naming the file and problem.

    Labels (and patient, age, sex) that a labels table put into ``ref.extra`` replace those of the file.
    """
    record = _read(ref)
    extra = ref.extra
    if TABLE_KEY not in extra:
        return record
    return dataclasses.replace(
        record,
        codes=tuple(extra.get("codes", ())),
        patient_id=extra.get("patient_id", record.patient_id),
        age=extra.get("age", record.age),
        sex=extra.get("sex", record.sex),
    )


def _read(ref: RecordRef) -> EcgRecord:
    if ref.format == "sph":
        return read_sph(ref)
    if ref.format == "code15":
        return read_code15(ref)
    if ref.format == "cinc2021":
        return read_cinc2021(ref.path, source=ref.source)
    if ref.format == "wfdb":
        return read_wfdb_record(ref.path, source=ref.source)
    if ref.format == "tianchi":
        extra = ref.extra
        label = TianchiLabel(
            extra.get("age"), extra.get("sex"), tuple(extra.get("codes", ())), str(extra.get("label_file", ""))
        )
        return read_tianchi(ref.path, label=label, source=ref.source, find_labels=False)
    if ref.format == "ptbxl":
        return read_ptbxl(ref)
    raise RecordError(ref.path, f"unknown format {ref.format!r}", reason="unsupported")


@functools.lru_cache(maxsize=4)
def _ptbxl_index(root: str, fs: int, mtime_ns: int) -> dict[str, RecordRef]:
    found, _ = ptbxl_refs(root, fs=fs)
    return {str(r.path.resolve()): r for r in found}


def read_record(path: str | os.PathLike[str]) -> EcgRecord:
    """Read one record file (``.hea``, ``.mat``, ``.dat`` or Tianchi ``.txt``), its format detected.

    A Tianchi ``.txt`` gets its labels from a label file in its folder or the folder above; a ``.hea`` inside
    a PTB-XL tree gets its labels from ``ptbxl_database.csv``.
    """
    path = Path(path)
    if path.is_dir():
        raise RecordError(path, "is a folder; use discover() / `ecgscale inspect` for folders", reason="unsupported")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_tianchi(path)
    if suffix == ".h5":  # SPH: metadata (labels, rate) from metadata.csv beside it when present
        found: list[RecordRef] = []
        if (path.parent / SPH_METADATA).is_file():
            _hdf5_refs(sph_refs, path.parent, found, [], only=path)
        return read_sph(found[0] if found else RecordRef(path, "sph", "sph", path.stem, {}))
    if suffix == ".hdf5":
        raise RecordError(
            path,
            "a CODE-15% part file holds many records: use discover() / `ecgscale inspect FOLDER`",
            reason="unsupported",
        )
    if suffix in (".mat", ".dat", ""):
        path = path.with_suffix(".hea") if suffix else path.with_name(path.name + ".hea")
    elif suffix != ".hea":
        raise RecordError(
            path, f"unsupported file type {suffix!r}; expected .hea, .mat, .dat, .txt or .h5", reason="unsupported"
        )
    header = parse_cinc_header(path)
    if all(f.lower().endswith(".mat") for f in header.signal_files):
        return read_cinc2021(path)
    root = find_ptbxl_root(path)
    if root is not None:
        fs = 100 if header.fs == 100 else 500
        db = root / PTBXL_DATABASE
        ref = _ptbxl_index(str(root), fs, db.stat().st_mtime_ns).get(str(path.resolve()))
        if ref is not None:
            return read_ptbxl(ref)
    return read_wfdb_record(path)


def default_label_space(discovery: Discovery, *, ptbxl_task: str = "superdiagnostic") -> _labels.LabelSpace:
    """The label space a set of records is scored in by default (``labels="auto"`` of the cache).

    CinC 2021 and plain WFDB → the 26 scored CinC 2021 classes; Tianchi → the names of its class list
    (``hf_round*_arrythmia.txt``, else the names seen); PTB-XL → ``ptbxl_task`` from its
    ``scp_statements.csv``. Mixed formats raise: translate Tianchi/PTB-XL into CinC 2021 explicitly with
    ``labels.cinc2021_scored(aliases=...)``.
    """
    # SPH labels are SNOMED CT codes like CinC 2021's
    formats = set(discovery.formats) - {"wfdb", "sph"}
    formats |= {"cinc2021"} if {"wfdb", "sph"} & set(discovery.formats) else set()
    if not formats:
        raise RecordError("<discovery>", "no records found, so no label space can be chosen", reason="empty")
    if len(formats) > 1:
        raise RecordError(
            "<discovery>",
            f"records of several formats {sorted(formats)}: choose a label space "
            "explicitly (e.g. labels.cinc2021_scored(aliases=labels.tianchi_to_snomed()))",
            reason="mixed_formats",
        )
    fmt = formats.pop()
    if fmt == "cinc2021":
        return _labels.cinc2021_scored()
    if fmt == "code15":
        return code15_space()
    if fmt == "tianchi":
        class_files = sorted({r.extra.get("classes_file") for r in discovery.refs if r.extra.get("classes_file")})
        if class_files:
            names: list[str] = []
            for cf in class_files:
                names.extend(n for n in read_tianchi_classes(cf) if n not in names)
        else:
            names = sorted({c for r in discovery.refs for c in r.extra.get("codes", ())})
        return _labels.tianchi_space(names)
    roots = sorted({r.extra["root"] for r in discovery.refs if r.format == "ptbxl"})
    return _labels.ptbxl_space(ptbxl_task, Path(roots[0]) / PTBXL_STATEMENTS)
