"""PTB-XL 1.0.x: ``ptbxl_database.csv`` + ``scp_statements.csv`` + WFDB records at 100 or 500 Hz.

A record's ``codes`` are the SCP statements of its ``scp_codes`` dictionary, all of them whatever their
likelihood (as the PTB-XL benchmarking code does); the likelihoods are kept in ``RecordRef.extra``. The
benchmark's split is exposed as ``extra["split"]``: ``strat_fold`` 1–8 train, 9 val, 10 test. The task
label spaces (all, diagnostic, subdiagnostic, superdiagnostic, form, rhythm) are
:func:`ecgscale.data.labels.ptbxl_space`. Ages of 300 (PTB-XL's code for "over 89") read as unknown.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import logging
import math
import os
from pathlib import Path

from ecgscale.data.readers.base import RecordRef, Skip, check_signal, normalize_leads, parse_age, record_from_ref
from ecgscale.data.readers.wfdb_io import read_wfdb
from ecgscale.data.records import EcgRecord
from ecgscale.errors import RecordError
from ecgscale.fileio import path_within

__all__ = [
    "PTBXL_DATABASE",
    "PTBXL_STATEMENTS",
    "find_ptbxl_root",
    "parse_scp_codes",
    "ptbxl_refs",
    "ptbxl_split",
    "read_ptbxl",
]

log = logging.getLogger(__name__)

PTBXL_DATABASE = "ptbxl_database.csv"
PTBXL_STATEMENTS = "scp_statements.csv"
_FS_COLUMN = {500: "filename_hr", 100: "filename_lr"}
_MAX_SCP_CHARS = 10_000


def ptbxl_split(fold: int) -> str:
    """The benchmark split of a ``strat_fold``: 1–8 ``train``, 9 ``val``, 10 ``test``."""
    if fold == 10:
        return "test"
    if fold == 9:
        return "val"
    if 1 <= fold <= 8:
        return "train"
    raise ValueError(f"strat_fold must be 1..10, got {fold!r}")


def parse_scp_codes(text: str, *, path: Path | str = PTBXL_DATABASE, row: int | None = None) -> dict[str, float]:
    """``"{'NORM': 100.0, 'SR': 0.0}"`` → dict; parsed with ``ast.literal_eval`` (never ``eval``)."""
    where = f"row {row}" if row is not None else "scp_codes"
    shown = text if len(text) <= 200 else text[:200] + "…"

    def bad(problem: str) -> RecordError:
        return RecordError(path, f"{where}: scp_codes {shown!r} {problem}", reason="bad_labels", field="scp_codes")

    if len(text) > _MAX_SCP_CHARS:  # real cells are < 200 characters; literal_eval's cost grows with the text
        raise bad(f"is {len(text)} characters long (at most {_MAX_SCP_CHARS})")
    try:
        value = ast.literal_eval(text.strip()) if text.strip() else {}
    # Deep nesting ("- - - … 1", "[[[…]]]") exhausts the parser (RecursionError, MemoryError); a huge integer
    # literal exceeds int's digit limit (ValueError); an unhashable key ({[1]: 0}) is a TypeError.
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        raise bad("is not a dict literal") from None
    if not isinstance(value, dict):
        raise bad("is not a dict")
    out: dict[str, float] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k.strip():
            raise bad(f"has the key {k!r}; statements are non-empty strings")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise bad(f"gives {k!r} the likelihood {v!r}; expected a number")
        try:
            likelihood = float(v)
        except OverflowError:  # an integer beyond float's range
            raise bad(f"gives {k!r} a likelihood beyond float range") from None
        if not math.isfinite(likelihood):
            raise bad(f"gives {k!r} the likelihood {likelihood!r}; expected a finite number")
        out.setdefault(k.strip(), likelihood)
    return out


def find_ptbxl_root(path: Path, *, levels: int = 4) -> Path | None:
    """The PTB-XL folder (holding ``ptbxl_database.csv``) at or above ``path``, or ``None``."""
    folder = path if path.is_dir() else path.parent
    for _ in range(levels + 1):
        if (folder / PTBXL_DATABASE).is_file():
            return folder
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _int_or_none(text: str) -> int | None:
    """An integer cell (``"17"``, ``"17.0"``), or ``None`` for anything else (empty, ``nan``, ``inf``, words)."""
    try:
        return int(float(text))
    except (TypeError, ValueError, OverflowError):  # OverflowError: "inf" / "1e999" (found by fuzzing)
        return None


def ptbxl_refs(root: str | os.PathLike[str], *, fs: int = 500) -> tuple[list[RecordRef], list[Skip]]:
    """One reference per row of ``ptbxl_database.csv``; rows whose files are missing become skips."""
    if fs not in _FS_COLUMN:
        raise ValueError(f"PTB-XL records exist at 100 or 500 Hz, got fs={fs!r}")
    root = Path(root)
    db = root / PTBXL_DATABASE
    if not db.is_file():
        raise RecordError(db, "PTB-XL database file not found", reason="missing_labels")
    refs: list[RecordRef] = []
    skips: list[Skip] = []
    try:
        text = db.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(db, f"not UTF-8 text: {exc}", reason="bad_labels") from None
    except OSError as exc:
        raise RecordError(db, f"cannot read the database: {exc}", reason="unreadable") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    required = {"ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", _FS_COLUMN[fs]}
    n = 1
    try:
        missing = sorted(required - set(reader.fieldnames or ()))
        if missing:
            raise RecordError(db, f"missing column(s) {missing}", reason="bad_labels", field="columns")
        for n, row in enumerate(reader, start=2):
            try:
                ref = _ref_of_row(root, db, n, row, fs)
            except RecordError as exc:
                if exc.reason == "unsafe_path":  # never read; say so loudly, it may be an attack, not a typo
                    log.warning("%s", exc)
                skips.append(Skip.from_error(exc))
                continue
            refs.append(ref)
    except csv.Error as exc:  # a NUL byte, a field over csv's size limit, an unterminated quote at the end
        raise RecordError(db, f"row {n + 1}: not a readable CSV row: {exc}", reason="bad_labels") from None
    return refs, skips


def _ref_of_row(root: Path, db: Path, n: int, row: dict[str, str], fs: int) -> RecordRef:
    ecg_id = _int_or_none(row["ecg_id"])
    if ecg_id is None:
        raise RecordError(
            db, f"row {n}: ecg_id {row['ecg_id']!r} is not an integer", reason="bad_labels", field="ecg_id"
        )
    fold = _int_or_none(row["strat_fold"])
    if fold is None or not 1 <= fold <= 10:
        raise RecordError(
            db, f"row {n}: strat_fold {row['strat_fold']!r} must be 1..10", reason="bad_labels", field="strat_fold"
        )
    scp = parse_scp_codes(row["scp_codes"] or "", path=db, row=n)
    column = _FS_COLUMN[fs]
    name = (row[column] or "").strip()
    if not name:
        raise RecordError(db, f"row {n}: {column} is empty", reason="bad_labels", field=column)
    base = path_within(root, name, source=db, field=f"row {n} {column}")
    hea = base.with_name(base.name + ".hea") if base.suffix != ".hea" else base
    if not os.path.isfile(hea):  # not Path.is_file: a name over 255 bytes raises ENAMETOOLONG there
        raise RecordError(hea, f"record of ecg_id {ecg_id} (row {n}) not found", reason="missing_signal")
    sex_code = _int_or_none(row["sex"])
    patient = _int_or_none(row["patient_id"])
    return RecordRef(
        path=hea,
        format="ptbxl",
        source="ptb-xl",
        record_id=str(ecg_id),
        extra={
            "ecg_id": ecg_id,
            "patient_id": None if patient is None else str(patient),
            "age": parse_age(row["age"]),
            "sex": {0: "M", 1: "F"}.get(sex_code) if sex_code is not None else None,
            "codes": list(scp),
            "scp_likelihood": scp,
            "strat_fold": fold,
            "split": ptbxl_split(fold),
            "fs": fs,
            "root": str(root),
        },
    )


def read_ptbxl(ref: RecordRef) -> EcgRecord:
    """Read the WFDB record of a PTB-XL reference with wfdb (format 16 ``.dat``)."""
    rec = read_wfdb(ref.path)
    lead_names = normalize_leads(rec.lead_names, ref.path)
    extra = ref.extra
    meta = {
        "format": "ptbxl",
        "strat_fold": str(extra.get("strat_fold", "")),
        "split": str(extra.get("split", "")),
        "scp_codes": json.dumps(extra.get("scp_likelihood", {}), ensure_ascii=False),
        **check_signal(rec.signal, ref.path, lead_names),
    }
    return record_from_ref(ref, rec.signal, rec.fs, lead_names, meta=meta)
