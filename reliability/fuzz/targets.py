"""Fuzz targets over the readers: one function per target, ``bytes -> None``.

Contract of every target: the input parses to a valid result (checked here: a reader returning garbage is a
crash too) or raises one of the target's ``ALLOWED`` exception types, which are swallowed. Anything else
escapes and is a bug: atheris reports it as a crash, ``tests/reliability/test_fuzz_regressions.py`` replays it.

The byte layout each target expects is documented on the target (the seed corpus in ``corpus/<target>/`` is
written in it by ``reliability.fuzz.corpus``). Targets that need files write them to one per-process temporary
folder, on ``/dev/shm`` when it exists (RAM: a fuzzer writes tens of thousands of files a minute).
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ecgscale.data.readers.base import UNITS_TO_MV
from ecgscale.data.readers.cinc2021 import CincHeader, parse_cinc_header_text, read_cinc2021, read_wfdb_record
from ecgscale.data.readers.ptbxl import PTBXL_DATABASE, parse_scp_codes, ptbxl_refs
from ecgscale.data.readers.tianchi import TianchiLabel, read_tianchi, read_tianchi_classes, read_tianchi_labels
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.errors import RecordError

__all__ = ["ALLOWED", "TARGETS", "InvalidResult", "check_header", "check_record", "run_target"]


class InvalidResult(Exception):
    """A reader returned without an error but its result breaks an invariant (never in any ``ALLOWED``)."""


#: The exceptions each target may raise for a bad input: the project's documented error type, nothing else.
ALLOWED: dict[str, tuple[type[BaseException], ...]] = {
    "cinc_header": (RecordError,),
    "mat_v4": (RecordError,),
    "wfdb_record": (RecordError,),
    "tianchi_signal": (RecordError,),
    "tianchi_labels": (RecordError,),
    "ptbxl_scp_codes": (RecordError,),
}

_TMP: Path | None = None


def scratch_base() -> str | None:
    """``/dev/shm`` when it is writable (RAM), else the system default."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _tmp() -> Path:
    """One scratch folder per process, inside ``$ECGSCALE_FUZZ_SCRATCH`` when set (the runner removes that after
    the fuzzer exits: libFuzzer ends the process without running ``atexit``), else removed at exit."""
    global _TMP
    if _TMP is None:
        base = os.environ.get("ECGSCALE_FUZZ_SCRATCH") or scratch_base()
        _TMP = Path(tempfile.mkdtemp(prefix=f"ecgscale-fuzz-{os.getpid()}-", dir=base))
        atexit.register(shutil.rmtree, _TMP, True)
    return _TMP


def _fail(what: str) -> None:
    raise InvalidResult(what)


# ---------------------------------------------------------------------------------------------- invariants


def check_record(rec: object, *, n_leads: int | None = None, n_samples: int | None = None) -> EcgRecord:
    """The ``EcgRecord`` invariants every consumer relies on; raises ``InvalidResult`` naming the broken one."""
    if not isinstance(rec, EcgRecord):
        _fail(f"not an EcgRecord: {type(rec).__name__}")
    sig = rec.signal
    if not isinstance(sig, np.ndarray) or sig.dtype != np.float32 or sig.ndim != 2:
        _fail(f"signal must be a 2-D float32 array, got {type(sig).__name__} {getattr(sig, 'dtype', '')}")
    if sig.shape[0] < 1 or sig.shape[1] < 1:
        _fail(f"empty signal {sig.shape}")
    if not np.isfinite(sig).all():
        _fail("non-finite samples in a record returned as valid")
    if n_leads is not None and sig.shape[0] != n_leads:
        _fail(f"{sig.shape[0]} leads, the header declares {n_leads}")
    if n_samples is not None and sig.shape[1] != n_samples:
        _fail(f"{sig.shape[1]} samples, the header declares {n_samples}")
    if not isinstance(rec.fs, float | int) or not math.isfinite(rec.fs) or rec.fs <= 0:
        _fail(f"fs {rec.fs!r} is not a positive finite number")
    names = rec.lead_names
    if not isinstance(names, tuple) or len(names) != sig.shape[0]:
        _fail(f"{len(names)} lead names for {sig.shape[0]} leads")
    if any(n not in STANDARD_LEADS for n in names) or len(set(names)) != len(names):
        _fail(f"lead names {names} are not distinct standard names")
    if not isinstance(rec.codes, tuple) or any(not isinstance(c, str) or not c or c != c.strip() for c in rec.codes):
        _fail(f"codes {rec.codes!r} are not stripped non-empty strings")
    if len(set(rec.codes)) != len(rec.codes):
        _fail(f"duplicate codes {rec.codes!r}")
    if rec.age is not None and not (math.isfinite(rec.age) and 0 <= rec.age < 150):
        _fail(f"age {rec.age!r} out of range")
    if rec.sex not in (None, "M", "F"):
        _fail(f"sex {rec.sex!r}")
    if not isinstance(rec.record_id, str) or not rec.record_id:
        _fail(f"record_id {rec.record_id!r}")
    if not isinstance(rec.meta, Mapping) or any(not isinstance(v, str) for v in rec.meta.values()):
        _fail("meta must map names to strings")
    return rec


def check_header(h: object) -> CincHeader:
    """Invariants of a parsed WFDB header: per-lead tuples of one length, finite positive rate and gains."""
    if not isinstance(h, CincHeader):
        _fail(f"not a CincHeader: {type(h).__name__}")
    n = h.n_leads
    if n < 1:
        _fail("a header with no signals was accepted")
    per_lead = (h.signal_files, h.formats, h.byte_offsets, h.gains, h.baselines, h.units)
    if any(len(t) != n for t in per_lead):
        _fail(f"per-lead fields of unequal length {[len(t) for t in per_lead]} for {n} leads")
    if not (math.isfinite(h.fs) and h.fs > 0):
        _fail(f"fs {h.fs!r}")
    if h.n_samples is not None and h.n_samples < 0:
        _fail(f"n_samples {h.n_samples!r}")
    if any(not math.isfinite(g) or g == 0 for g in h.gains) or any(not math.isfinite(b) for b in h.baselines):
        _fail(f"gains {h.gains} / baselines {h.baselines} not finite and non-zero")
    if any(u.lower() not in UNITS_TO_MV for u in h.units):
        _fail(f"units {h.units}")
    if not h.record_id or "/" in h.record_id:
        _fail(f"record id {h.record_id!r}")
    # the lenient comment fields must never raise
    if h.age is not None and not 0 <= h.age < 150:
        _fail(f"age {h.age!r}")
    if h.sex not in (None, "M", "F"):
        _fail(f"sex {h.sex!r}")
    if any(not c for c in h.codes):
        _fail(f"codes {h.codes!r}")
    return h


# --------------------------------------------------------------------------------------------------- targets


def cinc_header(data: bytes) -> None:
    """The whole input is the raw bytes of a ``.hea`` file (``parse_cinc_header_text``)."""
    check_header(parse_cinc_header_text(data, _tmp() / "fuzz.hea"))


#: mat_v4 input layout: flags (1 byte) | claimed lead count (uint16 LE) | claimed sample count (uint64 LE) | .mat
MAT_PREFIX = struct.Struct("<BHQ")


def mat_header_text(n_leads: int, n_samples: int | None, mat_name: str = "m.mat") -> str:
    """A valid CinC header for ``n_leads`` (1..12) standard leads, optionally declaring ``n_samples``."""
    rec = f"m {n_leads} 500" + ("" if n_samples is None else f" {n_samples}")
    lines = [rec] + [f"{mat_name} 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in STANDARD_LEADS[:n_leads]]
    return "\n".join([*lines, "#Age: 50", "#Sex: Male", "#Dx: 426783006"]) + "\n"


def mat_v4(data: bytes) -> None:
    """A ``.mat`` file under a generated header (``read_cinc2021``).

    Layout (``MAT_PREFIX``): bit 0 of the flags says whether the header declares the sample count; the claimed
    lead count maps to 1..12 leads, the claimed sample count is used as is (up to 2**64, e.g. 10**12); the rest
    is the ``.mat`` file. So the fuzzer mutates the MATLAB bytes under a valid header and makes the header and
    the file disagree.
    """
    if len(data) < MAT_PREFIX.size:
        return
    flags, leads, samples = MAT_PREFIX.unpack_from(data)
    n_leads = 1 + leads % 12
    n_samples = samples if flags & 1 else None
    d = _tmp()
    (d / "m.hea").write_text(mat_header_text(n_leads, n_samples), encoding="ascii")
    (d / "m.mat").write_bytes(data[MAT_PREFIX.size :])
    check_record(read_cinc2021(d / "m.hea"), n_leads=n_leads, n_samples=n_samples)


#: The fixed ``.dat`` of wfdb_record mode 0: 12 leads x 50 samples, format 16 (written once per process).
WFDB_LEADS = 12
WFDB_SAMPLES = 50


def wfdb_header_text(n_samples: int = WFDB_SAMPLES, *, fmt: str = "16", name: str = "w") -> str:
    """A valid PTB-XL-like header for the fixed ``w.dat``."""
    lines = [f"{name} {WFDB_LEADS} 500 {n_samples}"]
    lines += [f"{name}.dat {fmt} 1000.0(0)/mV 16 0 0 0 0 {lead}" for lead in STANDARD_LEADS]
    return "\n".join([*lines, "# Age: 60", "# Dx: 426783006"]) + "\n"


def _fixed_dat() -> bytes:
    rng = np.random.default_rng(0)
    return rng.integers(-2000, 2000, (WFDB_SAMPLES, WFDB_LEADS), dtype="<i2").tobytes()


def wfdb_record(data: bytes) -> None:
    """``read_wfdb_record`` (wfdb ``.hea`` + ``.dat``, the PTB-XL path).

    Layout: byte 0 even → the rest is the header text, read with the fixed 12 x 50 format-16 ``w.dat``
    beside it; odd → the rest is the ``.dat`` bytes under the fixed header.
    """
    if not data:
        return
    d = _tmp()
    hea = d / "w.hea"
    if data[0] % 2 == 0:
        hea.write_bytes(data[1:])
        (d / "w.dat").write_bytes(_fixed_dat())
        check_record(read_wfdb_record(hea))
    else:
        hea.write_text(wfdb_header_text(), encoding="ascii")
        (d / "w.dat").write_bytes(data[1:])
        check_record(read_wfdb_record(hea), n_leads=WFDB_LEADS, n_samples=WFDB_SAMPLES)


def tianchi_signal(data: bytes) -> None:
    """The whole input is a Tianchi record ``<id>.txt`` (``read_tianchi``, labels not looked up)."""
    path = _tmp() / "T0001.txt"
    path.write_bytes(data)
    rec = check_record(read_tianchi(path, find_labels=False), n_leads=12)
    if rec.lead_names != STANDARD_LEADS:
        _fail(f"Tianchi record in lead order {rec.lead_names}")


_LABEL_COUNTER = 0


def tianchi_labels(data: bytes) -> None:
    """Byte 0 even → the rest is a label file (``read_tianchi_labels``); odd → a class list.

    Each input gets a new file name: the label table is cached by (path, mtime, size), which two inputs of the
    same size written within one clock tick would share.
    """
    global _LABEL_COUNTER
    if not data:
        return
    _LABEL_COUNTER += 1
    path = _tmp() / f"labels{_LABEL_COUNTER}.txt"
    path.write_bytes(data[1:])
    try:
        if data[0] % 2 == 0:
            table = read_tianchi_labels(path)
            for rid, row in table.items():
                # The row names the file "<rid>.txt" beside the label file: it must stay in that folder. (A record
                # id ".." is fine: its file is "...txt".)
                file = os.path.normpath(f"{rid}.txt") if isinstance(rid, str) else ""
                if not rid or "\x00" in rid or os.path.isabs(file) or file.split(os.sep)[0] == os.pardir:
                    _fail(f"record name {rid!r} accepted")
                if not rid.rpartition("/")[2].strip():
                    _fail(f"empty record id in {rid!r}")
                if not isinstance(row, TianchiLabel):
                    _fail(f"row of {rid!r} is {type(row).__name__}")
                if row.age is not None and not (math.isfinite(row.age) and 0 <= row.age < 150):
                    _fail(f"age {row.age!r}")
                if row.sex not in (None, "M", "F"):
                    _fail(f"sex {row.sex!r}")
                if any(not isinstance(n, str) or not n or n != n.strip() for n in row.names):
                    _fail(f"names {row.names!r}")
        else:
            names = read_tianchi_classes(path)
            if any(not isinstance(n, str) or not n or n != n.strip() for n in names) or len(set(names)) != len(names):
                _fail(f"class names {names!r}")
    finally:
        path.unlink()


_PTBXL_COLUMNS = "ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr\n"


def _ptbxl_root() -> Path:
    root = _tmp() / "ptbxl"
    hea = root / "records500" / "00000" / "00001_hr.hea"
    if not hea.is_file():
        hea.parent.mkdir(parents=True, exist_ok=True)
        hea.write_text(wfdb_header_text(name="00001_hr"), encoding="ascii")
    return root


def ptbxl_scp_codes(data: bytes) -> None:
    """Byte 0 even → the rest (UTF-8, undecodable bytes replaced) is one ``scp_codes`` cell (``parse_scp_codes``);
    odd → the rest is the body of a ``ptbxl_database.csv`` under the required column header (``ptbxl_refs``).
    """
    if not data:
        return
    if data[0] % 2 == 0:
        codes = parse_scp_codes(data[1:].decode("utf-8", errors="replace"))
        if not isinstance(codes, dict):
            _fail(f"scp_codes parsed to {type(codes).__name__}")
        for k, v in codes.items():
            if not isinstance(k, str) or not k or not isinstance(v, float) or not math.isfinite(v):
                _fail(f"scp_codes entry {k!r}: {v!r}")
        return
    root = _ptbxl_root()
    (root / PTBXL_DATABASE).write_bytes(_PTBXL_COLUMNS.encode() + data[1:])
    refs, skips = ptbxl_refs(root)
    real_root = os.path.realpath(root)
    for ref in refs:
        if os.path.commonpath([real_root, os.path.realpath(ref.path)]) != real_root:
            _fail(f"a CSV row escaped the data root: {ref.path}")
        if ref.extra["split"] not in ("train", "val", "test"):
            _fail(f"split {ref.extra['split']!r}")
        for k, v in ref.extra["scp_likelihood"].items():
            if not isinstance(k, str) or not math.isfinite(v):
                _fail(f"scp_codes entry {k!r}: {v!r}")
    for s in skips:
        if not s.reason or not str(s.message):
            _fail(f"skip without a reason: {s}")


#: Target name → function, in the order of the docs table.
TARGETS: dict[str, Callable[[bytes], None]] = {
    "cinc_header": cinc_header,
    "mat_v4": mat_v4,
    "wfdb_record": wfdb_record,
    "tianchi_signal": tianchi_signal,
    "tianchi_labels": tianchi_labels,
    "ptbxl_scp_codes": ptbxl_scp_codes,
}


def run_target(name: str, data: bytes) -> None:
    """Run one input through a target; an allowed error is a pass, anything else propagates."""
    try:
        TARGETS[name](data)
    except ALLOWED[name]:
        pass
